//! SMB through Samba: `smb.conf` made from the shares, the accounts NFS and SMB share
//! (one uid and gid each, in `/etc/passwd` for smbd and in Samba's passdb for the
//! password), and smbd told to reload when either changes. rushes-init runs smbd.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::UserEntry;
use crate::manager::{ApiErr, ApiResult, Manager};
use rushes_api as api;

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
        "logging = stdout".into(),
        "log level = 1".into(),
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
        let tmp = self.conf.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.conf)?;
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

// ---- the manager's side: accounts and SMB shares through the API ----------------

/// The first uid handed out, and the group accounts join by default (`users`).
const FIRST_UID: u32 = 1000;
const DEFAULT_GID: u32 = 100;

impl Manager {
    /// Bring Samba in line with the config: accounts in `/etc/passwd`, the shares that
    /// are online and served over SMB in `smb.conf`, and the audit reader's directory.
    /// Cheap when nothing changed; the monitor calls it every tick.
    pub(crate) fn apply_smb(&self) {
        let (users, shares) = {
            let st = self.lock();
            (st.config.users.clone(), st.config.shares.clone())
        };
        let mut served = Vec::new();
        let mut directory = crate::smb_audit::Directory::default();
        for entry in shares.iter().filter(|s| s.smb) {
            let view = self.share(&entry.name);
            let Ok(view) = view else { continue };
            if !view.online {
                continue;
            }
            directory.shares.insert(
                entry.name.clone(),
                (entry.name.as_str().into(), PathBuf::from(&view.path)),
            );
            served.push(SmbShare {
                name: entry.name.clone(),
                path: PathBuf::from(&view.path),
                users: entry.users.clone(),
                time_machine: entry.time_machine,
            });
        }
        for u in &users {
            directory.uids.insert(u.name.clone(), u.uid);
        }
        *self
            .smb_directory
            .write()
            .unwrap_or_else(|p| p.into_inner()) = directory;
        let Some(samba) = &self.samba else { return };
        if let Err(e) = samba.write_accounts(&users) {
            tracing::error!(error = %e, "cannot write the accounts to /etc/passwd");
        }
        match samba.apply(&render(samba, &served)) {
            Ok(true) => tracing::info!(shares = served.len(), "SMB configuration written"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, conf = %samba.conf.display(), "cannot write the SMB configuration")
            }
        }
        self.announce(&served);
    }

    pub fn users(&self) -> Vec<api::User> {
        let users = self.lock().config.users.clone();
        let with_password = self
            .samba
            .as_ref()
            .map(|s| s.with_password())
            .unwrap_or_default();
        users
            .into_iter()
            .map(|u| api::User {
                smb_password: with_password.contains(&u.name),
                name: u.name,
                uid: u.uid,
                gid: u.gid,
            })
            .collect()
    }

    fn samba_or_refuse(&self) -> ApiResult<&Samba> {
        self.samba.as_ref().ok_or_else(|| {
            ApiErr::new(
                409,
                "no-smb",
                "SMB is served only by the appliance, not by `rushesd host`",
            )
        })
    }

    pub fn create_user(&self, req: api::CreateUser) -> ApiResult<api::User> {
        check_user_name(&req.name).map_err(|e| ApiErr::new(400, "bad-name", e))?;
        check_password(&req.password).map_err(|e| ApiErr::new(400, "bad-password", e))?;
        let samba = self.samba_or_refuse()?;
        let entry = {
            let st = self.lock();
            let users = &st.config.users;
            if users.iter().any(|u| u.name == req.name) {
                return Err(ApiErr::new(
                    409,
                    "exists",
                    format!("there is an account called {} already", req.name),
                )
                .hint("`rushesctl user passwd NAME` changes its password"));
            }
            let uid = match req.uid {
                Some(uid) if uid < FIRST_UID => {
                    return Err(ApiErr::new(
                        400,
                        "bad-uid",
                        format!("uid {uid} is a system account's"),
                    )
                    .hint(format!("use {FIRST_UID} or above")))
                }
                Some(uid) if users.iter().any(|u| u.uid == uid) => {
                    return Err(ApiErr::new(
                        409,
                        "uid-taken",
                        format!("uid {uid} belongs to another account"),
                    ))
                }
                Some(uid) => uid,
                None => (FIRST_UID..)
                    .find(|uid| !users.iter().any(|u| u.uid == *uid))
                    .unwrap_or(FIRST_UID),
            };
            UserEntry {
                name: req.name.clone(),
                uid,
                gid: req.gid.unwrap_or(DEFAULT_GID),
            }
        };
        // The account goes into the config first, so every later `apply_smb` (the
        // monitor's too) keeps it in /etc/passwd, where smbpasswd looks for it.
        self.save_config(|c| c.users.push(entry.clone()))
            .map_err(ApiErr::failed)?;
        self.apply_smb();
        if let Err(e) = samba.set_password(&entry.name, &req.password) {
            let _ = self.save_config(|c| c.users.retain(|u| u.name != entry.name));
            self.apply_smb();
            return Err(ApiErr::failed(e));
        }
        tracing::info!(user = %entry.name, uid = entry.uid, gid = entry.gid, "account added");
        Ok(api::User {
            name: entry.name,
            uid: entry.uid,
            gid: entry.gid,
            smb_password: true,
        })
    }

    pub fn set_user_password(&self, name: &str, req: api::UserPassword) -> ApiResult<()> {
        check_password(&req.password).map_err(|e| ApiErr::new(400, "bad-password", e))?;
        let samba = self.samba_or_refuse()?;
        self.user_entry(name)?;
        samba
            .set_password(name, &req.password)
            .map_err(ApiErr::failed)?;
        tracing::info!(user = name, "password changed");
        Ok(())
    }

    /// Forget an account. Its files keep their uid on the pools.
    pub fn delete_user(&self, name: &str) -> ApiResult<()> {
        self.user_entry(name)?;
        if let Some(samba) = &self.samba {
            samba.delete_password(name);
        }
        self.save_config(|c| {
            c.users.retain(|u| u.name != name);
            for s in &mut c.shares {
                s.users.retain(|u| u != name);
            }
        })
        .map_err(ApiErr::failed)?;
        self.apply_smb();
        tracing::info!(user = name, "account removed (its files keep their owner)");
        Ok(())
    }

    fn user_entry(&self, name: &str) -> ApiResult<UserEntry> {
        self.lock()
            .config
            .users
            .iter()
            .find(|u| u.name == name)
            .cloned()
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no account {name:?}"))
                    .hint("`rushesctl users` lists them")
            })
    }

    /// Account names a share lists must exist.
    pub(crate) fn check_share_users(&self, users: &[String]) -> ApiResult<()> {
        let st = self.lock();
        for u in users {
            if !st.config.users.iter().any(|e| &e.name == u) {
                return Err(ApiErr::bad_request(format!("there is no account {u:?}"))
                    .hint("add it first with `rushesctl user add`"));
            }
        }
        Ok(())
    }
}

// ---- DNS-SD: how Macs find the box ------------------------------------------------

/// What is announced: (service type, instance, port, TXT records) each.
pub type Announced = Vec<(String, String, u16, Vec<(String, String)>)>;

/// The services to announce for these shares.
pub fn announcements(host: &str, shares: &[SmbShare]) -> Announced {
    let mut out = vec![
        (
            "_smb._tcp.local.".to_string(),
            host.to_string(),
            445,
            vec![],
        ),
        // Finder draws the box with a rack server's icon.
        (
            "_device-info._tcp.local.".to_string(),
            host.to_string(),
            9,
            vec![("model".to_string(), "RackMac".to_string())],
        ),
    ];
    let machines: Vec<&SmbShare> = shares.iter().filter(|s| s.time_machine).collect();
    if !machines.is_empty() {
        let mut txt = vec![("sys".to_string(), "waMa=0,adVF=0x100".to_string())];
        for (i, s) in machines.iter().enumerate() {
            txt.push((format!("dk{i}"), format!("adVN={},adVF=0x82", s.name)));
        }
        out.push(("_adisk._tcp.local.".to_string(), host.to_string(), 9, txt));
    }
    for s in shares {
        out.push((
            "_nfs._tcp.local.".to_string(),
            format!("{} on {host}", s.name),
            2049,
            vec![("path".to_string(), format!("/{}", s.name))],
        ));
    }
    out
}

impl Manager {
    /// Announce SMB, Time Machine and NFS over mDNS when what is served changed. Only the
    /// appliance announces; a development host keeps quiet.
    fn announce(&self, shares: &[SmbShare]) {
        if !self.paths.appliance {
            return;
        }
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let wanted = announcements(&host, shares);
        let mut guard = self.mdns.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_some_and(|(_, last)| *last == wanted) {
            return;
        }
        // Withdraw everything and announce afresh: shares change rarely.
        if let Some((daemon, last)) = guard.take() {
            for (ty, instance, _, _) in &last {
                let _ = daemon.unregister(&format!("{instance}.{ty}"));
            }
            let _ = daemon.shutdown();
        }
        let daemon = match mdns_sd::ServiceDaemon::new() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start mDNS: Macs will not see the box in Finder");
                return;
            }
        };
        let host_name = format!("{host}.local.");
        for (ty, instance, port, txt) in &wanted {
            let props: Vec<(&str, &str)> =
                txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let info = mdns_sd::ServiceInfo::new(ty, instance, &host_name, "", *port, &props[..])
                .map(|i| i.enable_addr_auto());
            match info.map(|i| daemon.register(i)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(service = %ty, error = %e, "cannot announce over mDNS")
                }
            }
        }
        tracing::info!(services = wanted.len(), "announced over mDNS");
        *guard = Some((daemon, wanted));
    }
}

/// Write `text` to `path` through a rename, unless it holds that already (the monitor
/// calls this every tick).
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    let tmp = path.with_extension("rushes-tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
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
            },
            UserEntry {
                name: "grader".into(),
                uid: 1001,
                gid: 2000,
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
    fn time_machine_shares_are_announced_as_disks() {
        let share = |name: &str, tm| SmbShare {
            name: name.into(),
            path: PathBuf::from("/x"),
            users: vec![],
            time_machine: tm,
        };
        let a = announcements("rushes", &[share("projects", false), share("backup", true)]);
        let find = |ty: &str| a.iter().filter(|s| s.0 == ty).collect::<Vec<_>>();
        assert_eq!(find("_smb._tcp.local.")[0].2, 445);
        let adisk = find("_adisk._tcp.local.");
        assert_eq!(adisk.len(), 1);
        assert!(adisk[0]
            .3
            .contains(&("dk0".to_string(), "adVN=backup,adVF=0x82".to_string())));
        assert_eq!(find("_nfs._tcp.local.").len(), 2);
        let a = announcements("rushes", &[share("projects", false)]);
        assert!(a.iter().all(|s| s.0 != "_adisk._tcp.local."));
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
