//! SMB latency from Samba's own profile: with `smbd profiling level = on`, each smbd
//! process (one per client connection) counts every SMB2 command and the microseconds it
//! took, and stores the counters in `smbprofile.tdb` about once a second. full_audit has
//! no timing, so this is where SMB records get their latency: the mean of that client's
//! commands of the same kind over the last second they ran.
//!
//! The counters are a flat array of 64-bit values whose order is the order
//! `smbstatus --profile` prints them in; it is learnt from that output once, so a
//! different Samba build is read correctly or not at all (never misread).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The SMB2 commands whose latency an activity record can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    TreeConnect,
    Create,
    Close,
    Read,
    Write,
    SetInfo,
}

const COMMANDS: [(Command, &str); 6] = [
    (Command::TreeConnect, "smb2_tcon"),
    (Command::Create, "smb2_create"),
    (Command::Close, "smb2_close"),
    (Command::Read, "smb2_read"),
    (Command::Write, "smb2_write"),
    (Command::SetInfo, "smb2_setinfo"),
];

impl Command {
    /// The SMB2 command that does what an audit operation names: opens and creates are
    /// CREATE, a rename is SET_INFO, a delete happens at CLOSE (delete-on-close).
    pub fn for_op(op: &str) -> Option<Command> {
        Some(match op {
            "CONNECT" => Command::TreeConnect,
            "OPEN" | "CREATE" | "MKDIR" | "OPENDIR" => Command::Create,
            "READ" => Command::Read,
            "WRITE" => Command::Write,
            "RENAME" => Command::SetInfo,
            "DELETE" => Command::Close,
            _ => return None,
        })
    }
}

/// Where each command's count and time sit in a process's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Values per record, the leading magic included.
    values: usize,
    /// (count index, time index) per entry of `COMMANDS`.
    slots: [(usize, usize); COMMANDS.len()],
}

impl Layout {
    /// Learn the layout from `smbstatus --profile`: one `name: value` line per stored
    /// value, in storage order, between `**** Section ****` headings. The record starts
    /// with one magic value before them.
    pub fn learn(smbstatus: &str) -> Result<Layout, String> {
        let names: Vec<&str> = smbstatus
            .lines()
            .filter(|l| !l.starts_with("****"))
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
            .collect();
        let find = |name: String| {
            names
                .iter()
                .position(|n| *n == name)
                .map(|i| i + 1)
                .ok_or_else(|| format!("smbstatus --profile has no {name}"))
        };
        let mut slots = [(0, 0); COMMANDS.len()];
        for (slot, (_, name)) in slots.iter_mut().zip(COMMANDS) {
            *slot = (
                find(format!("{name}_count"))?,
                find(format!("{name}_time"))?,
            );
        }
        Ok(Layout {
            values: names.len() + 1,
            slots,
        })
    }

    fn counters(&self, values: &[u8]) -> Counters {
        let at = |i: usize| u64::from_ne_bytes(values[i * 8..i * 8 + 8].try_into().unwrap());
        let mut c = [(0, 0); COMMANDS.len()];
        for (c, (count, time)) in c.iter_mut().zip(self.slots) {
            *c = (at(count), at(time));
        }
        c
    }
}

/// (count, microseconds) per entry of `COMMANDS`.
type Counters = [(u64, u64); COMMANDS.len()];

fn minus(a: &Counters, b: &Counters) -> Counters {
    let mut d = *a;
    for (d, b) in d.iter_mut().zip(b) {
        d.0 = d.0.saturating_sub(b.0);
        d.1 = d.1.saturating_sub(b.1);
    }
    d
}

const TDB_MAGIC: u32 = 0x2601_1999;
/// A TDB record header: next, rec_len, key_len, data_len, full_hash, magic.
const RECORD_HEADER: usize = 24;

/// The live records of a TDB file whose key is a process id and whose data is
/// `layout.values` 64-bit values. The file is scanned rather than walked through its
/// hash chains: it is small, and the scan needs no knowledge of TDB's locking area.
pub fn records(tdb: &[u8], layout: &Layout) -> HashMap<u32, Counters> {
    let want = layout.values * 8;
    let mut found = HashMap::new();
    let mut off = 0;
    let word = |at: usize| u32::from_ne_bytes(tdb[at..at + 4].try_into().unwrap());
    while off + RECORD_HEADER + 4 + want <= tdb.len() {
        if word(off + 20) == TDB_MAGIC && word(off + 8) == 4 && word(off + 12) as usize == want {
            let pid = word(off + RECORD_HEADER);
            let data = &tdb[off + RECORD_HEADER + 4..off + RECORD_HEADER + 4 + want];
            found.insert(pid, layout.counters(data));
            off += RECORD_HEADER + 4 + want;
        } else {
            off += 4;
        }
    }
    found
}

/// How long a latency stays the client's latest for records that come after it.
const FRESH: Duration = Duration::from_secs(10);
/// Ticks an exited process waits for the parent smbd to fold its counters in.
const MERGE_TICKS: u32 = 5;

/// Follows smbd's profile and keeps each client's latest mean latency per command.
pub struct Profile {
    conf: PathBuf,
    tdb: PathBuf,
    parent_pid: PathBuf,
    layout: Option<Layout>,
    /// Counters of each smbd process at the last look.
    last: HashMap<u32, Counters>,
    /// smbd processes (pid → client) that ended, whose counters the parent smbd adds to
    /// its own record when it reaps them, and the ticks they waited.
    ended: HashMap<u32, (IpAddr, u32)>,
    latest: HashMap<(IpAddr, Command), (Duration, Instant)>,
    /// When to ask `smbstatus` again after it failed (it is slow: not every tick).
    /// `None` until the first try.
    retry_at: Option<Instant>,
}

/// How long to wait before asking `smbstatus` for the layout again.
const RETRY: Duration = Duration::from_secs(60);

impl Profile {
    /// Samba's smb.conf (for `smbstatus`), and its lock directory with the profile in
    /// `cache/` and `smbd.pid`.
    pub fn new(samba: &crate::samba::Samba) -> Profile {
        Profile {
            conf: samba.conf.clone(),
            tdb: samba.run.join("cache/smbprofile.tdb"),
            parent_pid: samba.run.join("smbd.pid"),
            layout: None,
            last: HashMap::new(),
            ended: HashMap::new(),
            latest: HashMap::new(),
            retry_at: None,
        }
    }

    fn layout(&mut self) -> Option<Layout> {
        // smbstatus has nothing to show until smbd has made its profile: asking before
        // then (rushesd starts before smbd) would fail and wait a minute to ask again.
        if self.layout.is_none() && !self.tdb.exists() {
            return None;
        }
        if self.layout.is_none() && self.retry_at.is_none_or(|at| Instant::now() >= at) {
            let first_try = self.retry_at.is_none();
            self.retry_at = Some(Instant::now() + RETRY);
            let learnt = std::process::Command::new("smbstatus")
                .arg(format!("--configfile={}", self.conf.display()))
                .arg("--profile")
                .output()
                .map_err(|e| format!("cannot run smbstatus: {e}"))
                .and_then(|o| Layout::learn(&String::from_utf8_lossy(&o.stdout)));
            match learnt {
                Ok(l) => self.layout = Some(l),
                Err(e) if first_try => {
                    tracing::warn!(error = %e, "cannot read Samba's profile: SMB records carry no latency");
                }
                Err(_) => {}
            }
        }
        self.layout
    }

    /// Look at the profile once (call about once a second). `owners` maps smbd process
    /// ids to their clients, as learnt from the audit lines; processes that ended are
    /// taken out of it.
    pub fn sample(&mut self, owners: &mut HashMap<u32, IpAddr>) {
        let Some(layout) = self.layout() else {
            return;
        };
        let Ok(bytes) = std::fs::read(&self.tdb) else {
            return;
        };
        let now = records(&bytes, &layout);
        let parent = std::fs::read_to_string(&self.parent_pid)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        // Sessions whose smbd ended: the parent folds their counters in when it reaps
        // them, which may already show in this look.
        owners.retain(|pid, client| {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
            if !alive {
                self.ended.insert(*pid, (*client, 0));
            }
            alive
        });
        let mut moved: HashMap<IpAddr, Counters> = HashMap::new();
        let mut add = |client: IpAddr, d: &Counters| {
            let m = moved.entry(client).or_insert([(0, 0); COMMANDS.len()]);
            for (m, d) in m.iter_mut().zip(d) {
                m.0 += d.0;
                m.1 += d.1;
            }
        };
        for (pid, counters) in &now {
            if Some(*pid) == parent {
                continue;
            }
            let owner = owners.get(pid).or(self.ended.get(pid).map(|(c, _)| c));
            if let Some(client) = owner {
                let before = self.last.get(pid).copied().unwrap_or_default();
                add(*client, &minus(counters, &before));
            }
        }
        // The parent smbd serves no commands itself: what its counters gained is the
        // totals of children it reaped, less what was already seen of them.
        if let Some(parent) = parent {
            if let (Some(now_p), Some(last_p)) = (now.get(&parent), self.last.get(&parent)) {
                let mut gained = minus(now_p, last_p);
                if gained.iter().any(|(c, _)| *c > 0) && !self.ended.is_empty() {
                    for pid in self.ended.keys() {
                        if let Some(seen) = self.last.get(pid) {
                            gained = minus(&gained, seen);
                        }
                    }
                    for (client, _) in self.ended.values() {
                        add(*client, &gained);
                    }
                    for pid in std::mem::take(&mut self.ended).into_keys() {
                        self.last.remove(&pid);
                    }
                }
            }
        }
        self.ended.retain(|pid, (_, waited)| {
            *waited += 1;
            *waited < MERGE_TICKS || {
                self.last.remove(pid);
                false
            }
        });
        self.last.extend(now);
        self.last.retain(|pid, _| {
            Some(*pid) == parent || owners.contains_key(pid) || self.ended.contains_key(pid)
        });
        let at = Instant::now();
        for (client, counters) in moved {
            for ((command, _), (count, micros)) in COMMANDS.iter().zip(counters) {
                if let Some(mean) = micros.checked_div(count) {
                    self.latest
                        .insert((client, *command), (Duration::from_micros(mean), at));
                }
            }
        }
        self.latest.retain(|_, (_, seen)| seen.elapsed() < FRESH);
    }

    /// The latest mean latency of `client`'s `command`s, if seen lately.
    pub fn latency(&self, client: IpAddr, command: Command) -> Option<Duration> {
        self.latest.get(&(client, command)).map(|(d, _)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMBSTATUS: &str = "**** SMBD loop ****\nconnect_count: 1\ndisconnect_count: 0\n\
        **** SMB2 Calls ****\n\
        smb2_tcon_count: 1\nsmb2_tcon_time: 9\nsmb2_tcon_idle: 0\n\
        smb2_create_count: 4\nsmb2_create_time: 400\nsmb2_create_idle: 0\n\
        smb2_close_count: 4\nsmb2_close_time: 40\n\
        smb2_read_count: 2\nsmb2_read_time: 3000\nsmb2_read_inbytes: 1\nsmb2_read_outbytes: 2\n\
        smb2_write_count: 1\nsmb2_write_time: 7000\n\
        smb2_setinfo_count: 1\nsmb2_setinfo_time: 5\n";

    fn tdb_with(records: &[(u32, Vec<u64>)]) -> Vec<u8> {
        // A header and a freelist area the scan must step over, then the records, each
        // followed by slack as TDB leaves it.
        let mut out = b"TDB file\n".to_vec();
        out.resize(200, 0);
        for (pid, values) in records {
            let data_len = (values.len() * 8) as u32;
            for w in [0, 4 + data_len + 16, 4, data_len, 0xabcd, TDB_MAGIC] {
                out.extend_from_slice(&w.to_ne_bytes());
            }
            out.extend_from_slice(&pid.to_ne_bytes());
            for v in values {
                out.extend_from_slice(&v.to_ne_bytes());
            }
            out.extend_from_slice(&[0u8; 16]);
        }
        out
    }

    #[test]
    fn the_layout_is_learnt_from_smbstatus_and_reads_each_process_record() {
        let layout = Layout::learn(SMBSTATUS).unwrap();
        assert_eq!(layout.values, 19);
        // Values as smbstatus printed them, after the magic.
        let values: Vec<u64> = std::iter::once(0xfeed)
            .chain(
                SMBSTATUS
                    .lines()
                    .filter(|l| !l.starts_with("****"))
                    .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()),
            )
            .collect();
        let mut dead = tdb_with(&[(77, values.clone())]);
        // A deleted record is skipped.
        dead[200 + 20..200 + 24].copy_from_slice(&0xfee1_deadu32.to_ne_bytes());
        assert!(records(&dead, &layout).is_empty());
        let tdb = tdb_with(&[(41, values.clone()), (42, values)]);
        let found = records(&tdb, &layout);
        assert_eq!(found.len(), 2);
        let c = found[&42];
        assert_eq!(c[0], (1, 9)); // tcon
        assert_eq!(c[3], (2, 3000)); // read
        assert_eq!(c[5], (1, 5)); // setinfo
    }

    #[test]
    fn smbstatus_is_not_asked_before_smbd_has_made_its_profile() {
        let dir = tempfile::tempdir().unwrap();
        let mut profile = Profile::new(&crate::samba::Samba {
            conf: dir.path().join("smb.conf"),
            private: dir.path().join("private"),
            run: dir.path().to_path_buf(),
            etc: dir.path().join("etc"),
        });
        profile.sample(&mut HashMap::new());
        assert!(
            profile.retry_at.is_none(),
            "asked before smbd made its profile, so the next try would wait a minute"
        );
    }

    #[test]
    fn latency_is_each_clients_mean_and_an_ended_session_is_found_in_the_parent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cache")).unwrap();
        std::fs::write(dir.path().join("smbd.pid"), "1\n").unwrap();
        let mut profile = Profile::new(&crate::samba::Samba {
            conf: dir.path().join("smb.conf"),
            private: dir.path().join("private"),
            run: dir.path().to_path_buf(),
            etc: dir.path().join("etc"),
        });
        profile.layout = Some(Layout::learn(SMBSTATUS).unwrap());
        // Values in the test layout: [magic, connect, disconnect, tcon ×3, create ×3,
        // close ×2, read count, read time, read in, read out, write count, write time, …].
        let record = |read: (u64, u64), write: (u64, u64)| {
            let mut v = vec![0u64; 19];
            (v[11], v[12]) = read;
            (v[15], v[16]) = write;
            v
        };
        let (alive, ended) = (std::process::id(), u32::MAX - 1);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut owners = HashMap::from([(alive, a), (ended, b)]);
        let tdb = dir.path().join("cache/smbprofile.tdb");
        std::fs::write(
            &tdb,
            tdb_with(&[
                (1, record((0, 0), (0, 0))),
                (alive, record((0, 0), (2, 10_000))),
                (ended, record((1, 500), (0, 0))),
            ]),
        )
        .unwrap();
        profile.sample(&mut owners);
        assert_eq!(
            profile.latency(a, Command::Write),
            Some(Duration::from_millis(5))
        );
        assert_eq!(profile.latency(a, Command::Read), None);
        assert_eq!(
            profile.latency(b, Command::Read),
            Some(Duration::from_micros(500))
        );
        assert!(!owners.contains_key(&ended), "its process is gone");
        // The parent smbd reaped it and added its totals, 2 more reads (3 ms) included.
        std::fs::write(
            &tdb,
            tdb_with(&[
                (1, record((3, 3_500), (0, 0))),
                (alive, record((0, 0), (3, 10_400))),
            ]),
        )
        .unwrap();
        profile.sample(&mut owners);
        assert_eq!(
            profile.latency(b, Command::Read),
            Some(Duration::from_micros(1_500))
        );
        assert_eq!(
            profile.latency(a, Command::Write),
            Some(Duration::from_micros(400))
        );
    }

    #[test]
    fn an_unknown_samba_layout_is_refused_not_misread() {
        let err = Layout::learn("**** SMBD loop ****\nconnect_count: 1\n").unwrap_err();
        assert!(err.contains("smb2_tcon_count"), "{err}");
    }

    #[test]
    fn operations_map_to_the_smb2_command_that_does_them() {
        assert_eq!(Command::for_op("RENAME"), Some(Command::SetInfo));
        assert_eq!(Command::for_op("DELETE"), Some(Command::Close));
        assert_eq!(Command::for_op("MKDIR"), Some(Command::Create));
        assert_eq!(Command::for_op("DISCONNECT"), None);
    }
}
