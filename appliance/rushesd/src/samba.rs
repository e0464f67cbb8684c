//! Samba's files: `smb.conf` made from the shares, the accounts NFS and SMB share (one
//! uid and gid each, in `/etc/passwd` for smbd and in Samba's passdb for the password),
//! and smbd told to reload when either changes. rushes-init runs smbd.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::UserEntry;

/// Where Samba's files live.
#[derive(Debug, Clone)]
pub struct Samba {
    /// The generated `smb.conf` (rushes-init starts smbd with it).
    pub conf: PathBuf,
    /// passdb and secrets: kept on RUSHES-CFG so passwords survive a reboot.
    pub private: PathBuf,
    /// Locks, pid file, caches: RAM.
    pub run: PathBuf,
    /// `passwd` and `group`: smbd looks accounts up there.
    pub etc: PathBuf,
}

/// One share as Samba serves it.
#[derive(Debug, Clone)]
pub struct SmbShare {
    pub name: String,
    pub path: PathBuf,
    pub users: Vec<String>,
    pub time_machine: bool,
}

/// The syslog facility full_audit writes to; the audit reader keeps only its lines.
pub const AUDIT_FACILITY: &str = "local5";
/// The audit prefix: client address, user, share, and the smbd process (whose profile
/// holds the latency). Paths follow, absolute.
pub const AUDIT_PREFIX: &str = "%I|%u|%S|%d";

/// The operations full_audit reports. Reads and writes come from both the synchronous
/// and the asynchronous paths; directory opens are left out (every listing makes one).
const AUDIT_SUCCESS: &str =
    "connect disconnect create_file renameat unlinkat mkdirat pread pread_recv pwrite pwrite_recv";
const AUDIT_FAILURE: &str = "connect create_file renameat unlinkat mkdirat";

/// `smb.conf` for these shares. SMB2 and SMB3 only, no NetBIOS, no guest; large MTU
/// (Samba's default 8 MiB reads and writes) and multichannel on; vfs_fruit with
/// streams_xattr and catia so Finder's metadata, resource forks and names with `:` or
/// `*` work; full_audit for the activity stream.
pub fn render(samba: &Samba, shares: &[SmbShare]) -> String {
    let mut out = String::new();
    let private = samba.private.display();
    let run = samba.run.display();
    let global = [
        "# Made by rushesd from the shares in /cfg/rushes.toml: edits here are lost.".to_string(),
        "[global]".into(),
        "server role = standalone server".into(),
        "server min protocol = SMB2_10".into(),
        "disable netbios = yes".into(),
        "smb ports = 445".into(),
        "multicast dns register = no".into(),
        "security = user".into(),
        "map to guest = never".into(),
        "restrict anonymous = 2".into(),
        format!("passdb backend = tdbsam:{private}/passdb.tdb"),
        format!("private dir = {private}"),
        format!("state directory = {run}/state"),
        format!("cache directory = {run}/cache"),
        format!("lock directory = {run}"),
        format!("pid directory = {run}"),
        format!("ncalrpc dir = {run}/ncalrpc"),
        // Debian's image keeps no code pages; SMB2 and later speak UTF-16 anyway.
        "dos charset = ASCII".into(),
        // Everything smbd logs comes to rushesd over /dev/log (smb_audit.rs), failed
        // logins too (auth_audit logs failures at level 2, successes at 3): rushesd
        // writes them to its log, each client's failed logins once a minute at most.
        "logging = syslog@2".into(),
        "log level = 1 auth_audit:2".into(),
        // What Samba can bound: smbd forks a process per connection and has no cap per
        // client address, so the box's processes are capped in all (as NFS connections
        // are), and sessions with no open file are dropped after 15 idle minutes.
        "max smbd processes = 2048".into(),
        "deadtime = 15".into(),
        // Per-process counts and times of every SMB2 command, for the latency full_audit
        // cannot give (smb_profile.rs).
        "smbd profiling level = on".into(),
        "load printers = no".into(),
        "printing = bsd".into(),
        "printcap name = /dev/null".into(),
        "disable spoolss = yes".into(),
        "server multi channel support = yes".into(),
        "smb2 leases = yes".into(),
        "ea support = yes".into(),
        // Files keep the same owner and mode bits whichever protocol wrote them.
        "create mask = 0664".into(),
        "directory mask = 0775".into(),
        // full_audit first, so it sees what the client asked for rather than the
        // AppleDouble and stream work fruit does underneath.
        "vfs objects = full_audit catia fruit streams_xattr".into(),
        "fruit:aapl = yes".into(),
        "fruit:metadata = stream".into(),
        "fruit:model = MacSamba".into(),
        "fruit:posix_rename = yes".into(),
        "fruit:veto_appledouble = no".into(),
        "fruit:nfs_aces = no".into(),
        "fruit:wipe_intentionally_left_blank_rfork = yes".into(),
        "fruit:delete_empty_adfiles = yes".into(),
        format!("full_audit:prefix = {AUDIT_PREFIX}"),
        format!("full_audit:success = {AUDIT_SUCCESS}"),
        format!("full_audit:failure = {AUDIT_FAILURE}"),
        format!("full_audit:facility = {AUDIT_FACILITY}"),
        "full_audit:priority = notice".into(),
    ];
    for line in global {
        out.push_str(&line);
        out.push('\n');
    }
    for share in shares {
        out.push('\n');
        out.push_str(&format!("[{}]\n", share.name));
        out.push_str(&format!("path = {}\n", share.path.display()));
        out.push_str("read only = no\n");
        out.push_str("browseable = yes\n");
        if !share.users.is_empty() {
            out.push_str(&format!("valid users = {}\n", share.users.join(" ")));
        }
        if share.time_machine {
            out.push_str("fruit:time machine = yes\n");
        }
    }
    out
}

/// Account names go into `/etc/passwd`, `smb.conf` and command lines: keep them plain.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "account name {name:?} is not usable: use 1-32 lower-case letters, digits, '-' or '_', starting with a letter"
        ))
    }
}

pub fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() || password.len() > 127 || password.contains(['\n', '\r', '\0']) {
        return Err("a password is 1-127 characters, without line breaks".into());
    }
    Ok(())
}

impl Samba {
    /// Write `smb.conf` if it changed, and have smbd reload it. Returns whether it changed.
    pub fn apply(&self, text: &str) -> std::io::Result<bool> {
        if std::fs::read_to_string(&self.conf).ok().as_deref() == Some(text) {
            return Ok(false);
        }
        for dir in [
            self.private.clone(),
            self.run.join("state"),
            self.run.join("cache"),
            self.run.join("ncalrpc"),
        ] {
            std::fs::create_dir_all(&dir)?;
        }
        if let Some(dir) = self.conf.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::state_file::replace(&self.conf, text.as_bytes())?;
        self.reload();
        Ok(true)
    }

    /// SIGHUP to smbd's main process: it and its children read the config again.
    fn reload(&self) {
        let pid = std::fs::read_to_string(self.run.join("smbd.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            );
            tracing::info!(pid, "smbd told to reload its shares");
        }
    }

    /// Make `/etc/passwd` and `/etc/group` the image's own entries plus these accounts.
    /// The image's files are kept aside the first time, so accounts removed through the
    /// API leave no trace.
    pub fn write_accounts(&self, users: &[UserEntry]) -> std::io::Result<()> {
        let passwd = self.base("passwd")?;
        let group = self.base("group")?;
        let mut p = passwd.clone();
        let taken: BTreeSet<&str> = passwd.lines().filter_map(|l| l.split(':').next()).collect();
        for u in users.iter().filter(|u| !taken.contains(u.name.as_str())) {
            p.push_str(&format!(
                "{}:x:{}:{}:Rushes account:/nonexistent:/usr/sbin/nologin\n",
                u.name, u.uid, u.gid
            ));
        }
        let mut g = group.clone();
        let gids: BTreeSet<u32> = group
            .lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect();
        let wanted: BTreeSet<u32> = users.iter().map(|u| u.gid).collect();
        for gid in wanted.difference(&gids) {
            g.push_str(&format!("g{gid}:x:{gid}:\n"));
        }
        replace(&self.etc.join("passwd"), &p)?;
        replace(&self.etc.join("group"), &g)
    }

    /// The image's own copy of `/etc/NAME`, kept aside in the run folder.
    fn base(&self, name: &str) -> std::io::Result<String> {
        let kept = self.run.join(format!("{name}.image"));
        match std::fs::read_to_string(&kept) {
            Ok(t) => Ok(t),
            Err(_) => {
                std::fs::create_dir_all(&self.run)?;
                let mut t = std::fs::read_to_string(self.etc.join(name)).unwrap_or_default();
                if !t.is_empty() && !t.ends_with('\n') {
                    t.push('\n');
                }
                std::fs::write(&kept, &t)?;
                Ok(t)
            }
        }
    }

    /// Set (or add) the SMB password of an account that is in `/etc/passwd`.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), String> {
        let mut child = Command::new("smbpasswd")
            .arg("-c")
            .arg(&self.conf)
            .args(["-s", "-a", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run smbpasswd: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "{password}\n{password}");
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("smbpasswd: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "smbpasswd could not set the password of {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Forget an account's SMB password.
    pub fn delete_password(&self, name: &str) {
        let _ = Command::new("smbpasswd")
            .arg("-c")
            .arg(&self.conf)
            .args(["-x", name])
            .output();
    }

    /// The accounts that have an SMB password.
    pub fn with_password(&self) -> BTreeSet<String> {
        let Ok(out) = Command::new("pdbedit")
            .arg("-s")
            .arg(&self.conf)
            .arg("-L")
            .stderr(Stdio::null())
            .output()
        else {
            return BTreeSet::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').next())
            .map(str::to_string)
            .collect()
    }
}

/// Write `text` to `path` through a rename, unless it holds that already (the monitor
/// calls this every tick).
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    crate::state_file::replace(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samba(dir: &Path) -> Samba {
        Samba {
            conf: dir.join("smb.conf"),
            private: dir.join("private"),
            run: dir.join("run"),
            etc: dir.join("etc"),
        }
    }

    #[test]
    fn config_serves_each_share_with_its_users_and_time_machine() {
        let dir = tempfile::tempdir().unwrap();
        let text = render(
            &samba(dir.path()),
            &[
                SmbShare {
                    name: "projects".into(),
                    path: "/pools/fast/projects".into(),
                    users: vec!["editor".into(), "colorist".into()],
                    time_machine: false,
                },
                SmbShare {
                    name: "backup".into(),
                    path: "/pools/slow/backup".into(),
                    users: vec![],
                    time_machine: true,
                },
            ],
        );
        assert!(text.contains("server min protocol = SMB2_10"));
        assert!(text.contains("vfs objects = full_audit catia fruit streams_xattr"));
        let projects = text.split("[projects]").nth(1).unwrap();
        let projects = projects.split("\n[").next().unwrap();
        assert!(projects.contains("path = /pools/fast/projects"));
        assert!(projects.contains("valid users = editor colorist"));
        assert!(!projects.contains("time machine"));
        let backup = text.split("[backup]").nth(1).unwrap();
        assert!(backup.contains("fruit:time machine = yes"));
        assert!(!backup.contains("valid users"));
        assert!(text.contains(&format!(
            "passdb backend = tdbsam:{}/passdb.tdb",
            dir.path().join("private").display()
        )));
    }

    #[test]
    fn accounts_are_added_to_the_image_files_and_removed_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let s = samba(dir.path());
        std::fs::create_dir_all(&s.etc).unwrap();
        std::fs::write(s.etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(s.etc.join("group"), "root:x:0:\nusers:x:100:\n").unwrap();
        let users = [
            UserEntry {
                name: "editor".into(),
                uid: 1000,
                gid: 100,
                ..Default::default()
            },
            UserEntry {
                name: "grader".into(),
                uid: 1001,
                gid: 2000,
                ..Default::default()
            },
        ];
        s.write_accounts(&users).unwrap();
        let passwd = std::fs::read_to_string(s.etc.join("passwd")).unwrap();
        assert!(passwd.starts_with("root:x:0:0"));
        assert!(passwd.contains("\neditor:x:1000:100:"));
        assert!(passwd.contains("\ngrader:x:1001:2000:"));
        let group = std::fs::read_to_string(s.etc.join("group")).unwrap();
        assert!(group.contains("\ng2000:x:2000:\n"));
        assert_eq!(group.matches(":100:").count(), 1, "users exists already");
        s.write_accounts(&users[..1]).unwrap();
        let passwd = std::fs::read_to_string(s.etc.join("passwd")).unwrap();
        assert!(passwd.contains("editor") && !passwd.contains("grader"));
    }

    #[test]
    fn names_and_passwords_that_would_break_files_are_refused() {
        assert!(check_user_name("editor-2").is_ok());
        for bad in ["", "Editor", "ed:itor", "ed itor", "1editor", "a\nroot"] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("correct horse").is_ok());
        assert!(check_password("").is_err());
        assert!(check_password("two\nlines").is_err());
    }
}
