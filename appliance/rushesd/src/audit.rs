//! The audit log: who opened, created, changed, renamed or deleted what, when, from
//! where, over NFS and SMB. Kept as JSON lines on a pool (`.rushes-audit/` at the pool's
//! root, one file per UTC day), trimmed by size and age, searched and exported (CSV,
//! JSON lines) through the API.
//!
//! Reads and writes are logged once per file, client and minute (the rollups count
//! every one); everything else that names a file is logged each time. The activity
//! recorder's thread turns each batch of records straight into JSON lines (no copy of
//! the record, no owned strings) and hands them to a writer thread, so neither the NFS
//! workers nor the recorder wait for the disk.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rushes_api::{AuditRecord, AuditStatus};
use rushes_nas::activity::{OpObserver, OpRecord};

use crate::directory::Directory;

/// Defaults: a gigabyte, a quarter.
pub const MAX_BYTES: u64 = 1 << 30;
pub const MAX_DAYS: u32 = 90;
/// Records kept in memory while no pool is mounted.
const MAX_WAITING: usize = 100_000;
/// A file's reads (or writes) by one client are logged once in this many seconds.
const IO_EVERY_S: u64 = 60;

/// What a search keeps.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Part of the path (or of RENAME's new path).
    pub path: Option<String>,
    /// Account name, or `uid N`.
    pub user: Option<String>,
    pub client: Option<String>,
    /// Operation, any case.
    pub op: Option<String>,
    pub protocol: Option<String>,
    /// Seconds since the epoch, inclusive.
    pub since: Option<u64>,
    pub until: Option<u64>,
    /// Newest first, at most this many.
    pub limit: usize,
}

impl Query {
    fn keeps(&self, r: &AuditRecord) -> bool {
        let t = r.time_ms / 1000;
        self.path
            .as_deref()
            .is_none_or(|p| r.path.contains(p) || r.to.as_deref().is_some_and(|to| to.contains(p)))
            && self.user.as_deref().is_none_or(|u| r.user == u)
            && self.client.as_deref().is_none_or(|c| r.client == c)
            && self
                .op
                .as_deref()
                .is_none_or(|o| r.op.eq_ignore_ascii_case(o))
            && self.protocol.as_deref().is_none_or(|p| r.protocol == p)
            && self.since.is_none_or(|s| t >= s)
            && self.until.is_none_or(|u| t <= u)
    }
}

/// JSON lines of one UTC day, oldest first.
struct Lines {
    /// Days since the epoch.
    day: u64,
    count: usize,
    bytes: Vec<u8>,
}

impl Lines {
    /// Forget the oldest `n` lines.
    fn drop_oldest(&mut self, n: usize) {
        let cut = self
            .bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(n.saturating_sub(1))
            .map_or(self.bytes.len(), |(i, _)| i + 1);
        self.bytes.drain(..cut);
        self.count -= n.min(self.count);
    }

    /// The records, newest first.
    fn newest_first(&self) -> impl Iterator<Item = AuditRecord> + '_ {
        self.bytes
            .split(|b| *b == b'\n')
            .rev()
            .filter_map(|line| serde_json::from_slice(line).ok())
    }
}

/// Lines not yet written: while no pool is mounted, or the pool refuses them.
#[derive(Default)]
struct Waiting {
    runs: VecDeque<Lines>,
    count: usize,
}

impl Waiting {
    /// Keep at most `max` lines; returns how many were dropped.
    fn cap(&mut self, max: usize) -> u64 {
        let mut dropped = 0;
        while self.count > max {
            let Some(oldest) = self.runs.front_mut() else {
                break;
            };
            let n = (self.count - max).min(oldest.count);
            oldest.drop_oldest(n);
            self.count -= n;
            dropped += n as u64;
            if oldest.count == 0 {
                self.runs.pop_front();
            }
        }
        dropped
    }
}

struct Shared {
    /// (pool, folder) the log goes to.
    place: RwLock<Option<(String, PathBuf)>>,
    max_bytes: u64,
    max_days: u32,
    waiting: Mutex<Waiting>,
    dropped: AtomicU64,
}

impl Shared {
    /// Where the log goes now.
    fn place(&self) -> Option<(String, PathBuf)> {
        self.place.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The audit log, fed as an [`OpObserver`].
pub struct AuditLog {
    tx: mpsc::Sender<Lines>,
    shared: Arc<Shared>,
    /// Shares and accounts, for naming users.
    directory: Arc<RwLock<Directory>>,
    /// When each (client, protocol, operation, share, file) last had a read or write
    /// logged, by a hash of those: most reads and writes stop here.
    recent_io: Mutex<HashMap<u64, u64>>,
    /// The folder used while no pool is mounted (host mode's `--audit-dir`).
    fallback: Mutex<Option<PathBuf>>,
}

/// Operations that name a file and belong in the log.
fn audited(op: &str) -> bool {
    matches!(
        op,
        "OPEN"
            | "CREATE"
            | "MKDIR"
            | "RENAME"
            | "DELETE"
            | "REMOVE"
            | "RMDIR"
            | "SETATTR"
            | "SYMLINK"
            | "LINK"
            | "MKNOD"
            | "READ"
            | "WRITE"
    )
}

impl OpObserver for AuditLog {
    fn record(&self, op: &OpRecord) {
        self.record_batch(std::slice::from_ref(op));
    }

    fn record_batch(&self, ops: &[OpRecord]) {
        let directory = self.directory.read().unwrap_or_else(|p| p.into_inner());
        let mut recent = self.recent_io.lock().unwrap_or_else(|p| p.into_inner());
        let mut run: Option<Lines> = None;
        for op in ops {
            let Some(path) = &op.path else { continue };
            if !audited(op.op) {
                continue;
            }
            let time_ms = op.time_ms();
            if matches!(op.op, "READ" | "WRITE") && op.status == Some(0) {
                use std::hash::{Hash, Hasher};
                // A fixed-key hasher: keys stay the same for the process's life.
                let mut h = std::hash::DefaultHasher::new();
                (op.client, op.protocol, op.op, op.share.as_deref(), path).hash(&mut h);
                let key = h.finish();
                let secs = time_ms / 1000;
                if recent.get(&key).is_some_and(|at| secs < at + IO_EVERY_S) {
                    continue;
                }
                if recent.len() > 100_000 {
                    recent.retain(|_, at| secs < *at + IO_EVERY_S);
                }
                recent.insert(key, secs);
            }
            let day = time_ms / 1000 / 86_400;
            if run.as_ref().is_some_and(|r| r.day != day) {
                let _ = self.tx.send(run.take().expect("checked"));
            }
            let lines = run.get_or_insert_with(|| Lines {
                day,
                count: 0,
                bytes: Vec::new(),
            });
            let line = Line::of(op, path, time_ms, &directory);
            if serde_json::to_writer(&mut lines.bytes, &line).is_ok() {
                lines.bytes.push(b'\n');
                lines.count += 1;
            }
        }
        if let Some(lines) = run {
            let _ = self.tx.send(lines);
        }
    }
}

/// An audit line borrowed from its record: the same JSON as [`AuditRecord`], written
/// without building its strings.
#[derive(serde::Serialize)]
struct Line<'a> {
    time_ms: u64,
    #[serde(serialize_with = "display")]
    client: std::net::IpAddr,
    #[serde(serialize_with = "display")]
    user: UserName<'a>,
    protocol: &'a str,
    share: &'a str,
    op: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    bytes: u64,
    latency_us: Option<u64>,
    #[serde(serialize_with = "display")]
    result: Outcome<'a>,
}

impl<'a> Line<'a> {
    fn of(op: &'a OpRecord, path: &'a str, time_ms: u64, directory: &'a Directory) -> Self {
        let user = match (&op.user, op.uid) {
            (Some(name), _) => UserName::Named(name),
            (None, Some(uid)) => directory
                .uids
                .iter()
                .find(|(_, u)| **u == uid)
                .map_or(UserName::Uid(uid), |(name, _)| UserName::Named(name)),
            (None, None) => UserName::Unknown,
        };
        let result = match (op.status, &op.reason) {
            (Some(0), _) => Outcome::Ok,
            (_, Some(reason)) => Outcome::Said(reason),
            (Some(code), None) => Outcome::Code(code),
            (None, None) => Outcome::Refused,
        };
        Line {
            time_ms,
            client: op.client.to_canonical(),
            user,
            protocol: op.protocol,
            share: op.share.as_deref().unwrap_or("-"),
            op: op.op,
            path,
            to: op.to.as_deref(),
            bytes: op.bytes,
            latency_us: op.latency.map(|l| l.as_micros() as u64),
            result,
        }
    }
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The account name when known, else `uid N`.
enum UserName<'a> {
    Named(&'a str),
    Uid(u32),
    Unknown,
}

impl std::fmt::Display for UserName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserName::Named(name) => f.write_str(name),
            UserName::Uid(uid) => write!(f, "uid {uid}"),
            UserName::Unknown => f.write_str("unknown"),
        }
    }
}

/// `ok`, or what went wrong.
enum Outcome<'a> {
    Ok,
    Said(&'a str),
    Code(u32),
    Refused,
}

impl std::fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Said(reason) => f.write_str(reason),
            Outcome::Code(code) => write!(f, "error {code}"),
            Outcome::Refused => f.write_str("refused"),
        }
    }
}

impl AuditLog {
    /// An admin action (who, from where, what, the answer): `protocol` is `https` for
    /// the network's admin plane and `console` for the root-only socket; the op is the
    /// HTTP method and the path the API path.
    pub fn admin(&self, protocol: &str, action: &rushes_web::AdminAction) {
        let record = AuditRecord {
            time_ms: action.time_ms,
            client: action.client.clone(),
            user: action.user.clone(),
            protocol: protocol.into(),
            share: "-".into(),
            op: action.method.clone(),
            path: action.path.clone(),
            to: None,
            bytes: 0,
            latency_us: None,
            result: if (200..400).contains(&action.status) {
                "ok".into()
            } else {
                format!("refused {}", action.status)
            },
        };
        let mut bytes = Vec::new();
        if serde_json::to_writer(&mut bytes, &record).is_ok() {
            bytes.push(b'\n');
            let _ = self.tx.send(Lines {
                day: action.time_ms / 1000 / 86_400,
                count: 1,
                bytes,
            });
        }
    }

    /// Start the writer thread.
    pub fn start(directory: Arc<RwLock<Directory>>, max_bytes: u64, max_days: u32) -> Arc<Self> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            place: RwLock::new(None),
            max_bytes,
            max_days,
            waiting: Mutex::default(),
            dropped: AtomicU64::new(0),
        });
        let writer = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_loop(&writer, rx));
        Arc::new(Self {
            tx,
            shared,
            directory,
            recent_io: Mutex::new(HashMap::new()),
            fallback: Mutex::new(None),
        })
    }

    /// Keep the log in `dir` while no pool is mounted.
    pub fn set_fallback(&self, dir: Option<PathBuf>) {
        *self.fallback.lock().unwrap_or_else(|p| p.into_inner()) = dir;
        self.set_place(None);
    }

    /// Write to `folder` on `pool` from now on (`None`: no pool is mounted, so the
    /// fallback folder if there is one, else memory).
    pub fn set_place(&self, place: Option<(String, PathBuf)>) {
        let place = place.or_else(|| {
            let fallback = self.fallback.lock().unwrap_or_else(|p| p.into_inner());
            fallback
                .as_ref()
                .map(|dir| (dir.display().to_string(), dir.clone()))
        });
        let mut cur = self.shared.place.write().unwrap_or_else(|p| p.into_inner());
        if *cur != place {
            match &place {
                Some((pool, dir)) => {
                    tracing::info!(pool = %pool, folder = %dir.display(), "audit log kept here")
                }
                None => tracing::warn!("no pool is mounted: audit records wait in memory"),
            }
            *cur = place;
        }
    }

    pub fn status(&self) -> AuditStatus {
        let place = self.shared.place();
        let files = place
            .as_ref()
            .map(|(_, d)| day_files(d))
            .unwrap_or_default();
        let oldest_ms = files.first().and_then(|(p, _)| {
            let f = std::fs::File::open(p).ok()?;
            let line = std::io::BufReader::new(f).lines().next()?.ok()?;
            serde_json::from_str::<AuditRecord>(&line)
                .ok()
                .map(|r| r.time_ms)
        });
        AuditStatus {
            pool: place.map(|(p, _)| p),
            files: files.len(),
            bytes: files.iter().map(|(_, len)| len).sum(),
            oldest_ms,
            max_bytes: self.shared.max_bytes,
            max_days: self.shared.max_days,
            waiting: self.shared.waiting.lock().map(|w| w.count).unwrap_or(0),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Records matching `q`, newest first, from the files and from memory.
    pub fn search(&self, q: &Query) -> Vec<AuditRecord> {
        let limit = q.limit.max(1);
        let mut found: Vec<AuditRecord> = Vec::new();
        {
            let waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            found.extend(
                waiting
                    .runs
                    .iter()
                    .rev()
                    .flat_map(Lines::newest_first)
                    .filter(|r| q.keeps(r))
                    .take(limit),
            );
        }
        let place = self.shared.place();
        let Some((_, dir)) = place else {
            return found;
        };
        for (file, _) in day_files(&dir).into_iter().rev() {
            if found.len() >= limit {
                break;
            }
            // The file's day: skip days wholly outside the window.
            let day_start = file
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(parse_day)
                .unwrap_or(0);
            if q.until.is_some_and(|u| day_start > u)
                || q.since.is_some_and(|s| day_start + 86_400 <= s)
            {
                continue;
            }
            let Ok(f) = std::fs::File::open(&file) else {
                continue;
            };
            let mut newest: VecDeque<AuditRecord> = VecDeque::new();
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                let Ok(r) = serde_json::from_str::<AuditRecord>(&line) else {
                    continue;
                };
                if q.keeps(&r) {
                    newest.push_back(r);
                    if newest.len() > limit - found.len() {
                        newest.pop_front();
                    }
                }
            }
            found.extend(newest.into_iter().rev());
        }
        found.truncate(limit);
        found
    }
}

/// `.jsonl` files of `dir`, oldest first, with their sizes.
fn day_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .collect();
    files.sort();
    files
}

/// `YYYY-MM-DD` for a time in seconds since the epoch (UTC).
pub fn day_name(secs: u64) -> String {
    rushes_api::calendar::utc_day(secs).to_string()
}

/// The first second of day `YYYY-MM-DD` (UTC).
fn parse_day(name: &str) -> Option<u64> {
    rushes_api::calendar::day_start(name.parse().ok()?)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How often the writer takes what has arrived. Sleeping rather than waiting on the
/// channel means a busy server does not wake this thread for every batch.
const WRITE_EVERY: Duration = Duration::from_millis(250);

fn write_loop(shared: &Shared, rx: mpsc::Receiver<Lines>) {
    let mut last_trim: Option<Instant> = None;
    loop {
        std::thread::sleep(WRITE_EVERY);
        let batch: Vec<Lines> = rx.try_iter().collect();
        if batch.is_empty() {
            match rx.try_recv() {
                Err(mpsc::TryRecvError::Disconnected) => return,
                _ => continue,
            }
        }
        let place = shared.place();
        let mut waiting = shared.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.count += batch.iter().map(|l| l.count).sum::<usize>();
        waiting.runs.extend(batch);
        let Some((_, dir)) = place else {
            let dropped = waiting.cap(MAX_WAITING);
            shared.dropped.fetch_add(dropped, Ordering::Relaxed);
            continue;
        };
        match append(&dir, &mut waiting) {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(folder = %dir.display(), error = %e, "cannot write the audit log; records wait in memory");
                let dropped = waiting.cap(MAX_WAITING);
                shared.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        drop(waiting);
        if last_trim.is_none_or(|at| at.elapsed() > Duration::from_secs(600)) {
            last_trim = Some(Instant::now());
            trim(&dir, shared.max_bytes, shared.max_days, now_ms() / 1000);
        }
    }
}

/// Append the waiting lines to their days' files, each run leaving `waiting` once it
/// is written (so a failure part way writes none twice). A file is opened and closed
/// each time: an open file would keep the pool from being unmounted.
fn append(dir: &Path, waiting: &mut Waiting) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    // rushesd runs with umask 0 (NFS clients send the modes they want), so the log's
    // modes are given: only root may change it.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)?;
    let mut open: Option<(u64, std::fs::File)> = None;
    while let Some(run) = waiting.runs.front() {
        let file = match &mut open {
            Some((day, f)) if *day == run.day => f,
            _ => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(dir.join(format!("{}.jsonl", day_name(run.day * 86_400))))?;
                &mut open.insert((run.day, f)).1
            }
        };
        file.write_all(&run.bytes)?;
        waiting.count -= run.count;
        waiting.runs.pop_front();
    }
    Ok(())
}

/// Delete whole days, oldest first, while the log is over `max_bytes` or a day is older
/// than `max_days`. Today's file is never deleted.
pub fn trim(dir: &Path, max_bytes: u64, max_days: u32, now: u64) {
    let files = day_files(dir);
    let mut total: u64 = files.iter().map(|(_, l)| l).sum();
    let today = day_name(now);
    for (file, len) in files {
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if name >= today.as_str() {
            break;
        }
        let old = parse_day(name).is_some_and(|d| d + u64::from(max_days) * 86_400 < now);
        if total <= max_bytes && !old {
            break;
        }
        match std::fs::remove_file(&file) {
            Ok(()) => {
                total -= len;
                tracing::info!(file = %file.display(), bytes = len, "old audit log removed");
            }
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "cannot remove"),
        }
    }
}

/// The records as CSV, with a header line.
pub fn to_csv(records: &[AuditRecord]) -> String {
    fn field(s: &str) -> String {
        // A cell a spreadsheet would take for a formula (a file or user named
        // `=HYPERLINK(…)`) is kept as text.
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out =
        String::from("time_ms,client,user,protocol,share,op,path,to,bytes,latency_us,result\n");
    for r in records {
        let cols = [
            r.time_ms.to_string(),
            field(&r.client),
            field(&r.user),
            field(&r.protocol),
            field(&r.share),
            field(&r.op),
            field(&r.path),
            field(r.to.as_deref().unwrap_or("")),
            r.bytes.to_string(),
            r.latency_us.map(|l| l.to_string()).unwrap_or_default(),
            field(&r.result),
        ];
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: &'static str, path: &str) -> OpRecord {
        let mut r = OpRecord::new("10.0.0.4".parse().unwrap(), "nfs3", kind);
        r.uid = Some(1000);
        r.share = Some("projects".into());
        r.path = Some(path.into());
        r.status = Some(0);
        r.latency = Some(Duration::from_micros(250));
        r
    }

    fn wait_for(log: &AuditLog, q: &Query, n: usize) -> Vec<AuditRecord> {
        for _ in 0..100 {
            let found = log.search(q);
            if found.len() >= n {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log.search(q)
    }

    #[test]
    fn records_land_on_the_pool_and_searches_find_them_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = Directory::default();
        names.uids.insert("editor".into(), 1000);
        let log = AuditLog::start(Arc::new(RwLock::new(names)), MAX_BYTES, MAX_DAYS);
        log.record(&op("CREATE", "/reel1/a001.mov"));
        for _ in 0..50 {
            log.record(&op("WRITE", "/reel1/a001.mov"));
        }
        let mut rename = op("RENAME", "/reel1/a001.mov");
        rename.to = Some("/reel1/final.mov".into());
        log.record(&rename);
        log.record(&op("GETATTR", "/reel1/final.mov")); // not audited
        let mut no_path = op("REMOVE", "/x");
        no_path.path = None;
        log.record(&no_path); // names nothing
        let all = Query {
            limit: 100,
            ..Default::default()
        };
        // No pool yet: records wait in memory and searches still see them.
        let found = wait_for(&log, &all, 3);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(log.status().waiting, 3);
        log.set_place(Some(("media".into(), dir.path().join(".rushes-audit"))));
        log.record(&op("DELETE", "/reel2/b.mov"));
        let found = wait_for(&log, &all, 4);
        assert_eq!(log.status().waiting, 0, "written out once a pool is there");
        let ops: Vec<&str> = found.iter().map(|r| r.op.as_str()).collect();
        assert_eq!(
            ops,
            ["DELETE", "RENAME", "WRITE", "CREATE"],
            "one WRITE a minute"
        );
        assert_eq!(found[1].user, "editor", "uid 1000 is the editor account");
        assert_eq!(found[1].to.as_deref(), Some("/reel1/final.mov"));
        let renamed = log.search(&Query {
            path: Some("final.mov".into()),
            op: Some("rename".into()),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(renamed.len(), 1);
        let none = log.search(&Query {
            user: Some("intern".into()),
            limit: 10,
            ..Default::default()
        });
        assert!(none.is_empty());
        let status = log.status();
        assert_eq!((status.files, status.pool.as_deref()), (1, Some("media")));
        let csv = to_csv(&found);
        assert!(csv.starts_with("time_ms,client,user,"));
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.contains(",editor,nfs3,projects,RENAME,/reel1/a001.mov,/reel1/final.mov,"));
    }

    #[test]
    fn lines_read_back_as_audit_records() {
        let mut names = Directory::default();
        names.uids.insert("editor".into(), 1000);
        let mut smb = OpRecord::new("::ffff:10.0.0.9".parse().unwrap(), "smb", "DELETE");
        smb.uid = Some(1234);
        smb.share = Some("projects".into());
        smb.status = Some(1);
        smb.reason = Some("NT_STATUS_ACCESS_DENIED".into());
        smb.time_ms = 1_795_700_000_123;
        let line = serde_json::to_string(&Line::of(&smb, "/a \"b\".mov", smb.time_ms, &names));
        let back: AuditRecord = serde_json::from_str(&line.unwrap()).unwrap();
        assert_eq!(
            back,
            AuditRecord {
                time_ms: 1_795_700_000_123,
                client: "10.0.0.9".into(),
                user: "uid 1234".into(),
                protocol: "smb".into(),
                share: "projects".into(),
                op: "DELETE".into(),
                path: "/a \"b\".mov".into(),
                to: None,
                bytes: 0,
                latency_us: None,
                result: "NT_STATUS_ACCESS_DENIED".into(),
            }
        );
    }

    #[test]
    fn waiting_lines_past_the_limit_are_dropped_oldest_first_and_counted() {
        let mut waiting = Waiting::default();
        let nobody = Directory::default();
        for day in [20_000, 20_001] {
            let mut run = Lines {
                day,
                count: 0,
                bytes: Vec::new(),
            };
            for i in 0..4 {
                let r = op("CREATE", &format!("/d{day}/f{i}"));
                let line = Line::of(&r, r.path.as_deref().unwrap(), day * 86_400_000, &nobody);
                serde_json::to_writer(&mut run.bytes, &line).unwrap();
                run.bytes.push(b'\n');
                run.count += 1;
            }
            waiting.count += run.count;
            waiting.runs.push_back(run);
        }
        assert_eq!(waiting.cap(5), 3);
        let left: Vec<String> = waiting
            .runs
            .iter()
            .rev()
            .flat_map(Lines::newest_first)
            .map(|r| r.path)
            .collect();
        assert_eq!(
            left,
            [
                "/d20001/f3",
                "/d20001/f2",
                "/d20001/f1",
                "/d20001/f0",
                "/d20000/f3"
            ]
        );
        assert_eq!(waiting.cap(3), 2, "a whole run, then part of the next");
        assert_eq!((waiting.count, waiting.runs.len()), (3, 1));
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &mut waiting).unwrap();
        assert_eq!((waiting.count, waiting.runs.len()), (0, 0));
        let file = dir
            .path()
            .join(format!("{}.jsonl", day_name(20_001 * 86_400)));
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
    }

    #[test]
    fn the_log_is_not_writable_by_others_under_rushesds_umask() {
        use std::os::unix::fs::PermissionsExt;
        // rushesd's umask (no other test here depends on the umask).
        rustix::process::umask(rustix::fs::Mode::empty());
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(".rushes-audit");
        let mut waiting = Waiting::default();
        waiting.runs.push_back(Lines {
            day: 20_000,
            count: 1,
            bytes: b"{}\n".to_vec(),
        });
        waiting.count = 1;
        append(&folder, &mut waiting).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o750);
        assert_eq!(
            mode(&folder.join(format!("{}.jsonl", day_name(20_000 * 86_400)))),
            0o640
        );
    }

    #[test]
    fn old_and_oversized_days_are_trimmed_but_never_today() {
        let dir = tempfile::tempdir().unwrap();
        let now = parse_day("2026-11-26").unwrap() + 3600;
        for (day, size) in [
            ("2026-07-01", 10),
            ("2026-11-20", 400),
            ("2026-11-25", 400),
            ("2026-11-26", 900),
        ] {
            std::fs::write(dir.path().join(format!("{day}.jsonl")), vec![b'x'; size]).unwrap();
        }
        trim(dir.path(), 1000, 90, now);
        let left: Vec<String> = day_files(dir.path())
            .iter()
            .map(|(p, _)| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            ["2026-11-26"],
            "over 1000 bytes until only today is left"
        );
        std::fs::write(dir.path().join("2026-11-25.jsonl"), b"x").unwrap();
        std::fs::write(dir.path().join("2026-07-01.jsonl"), b"x").unwrap();
        trim(dir.path(), 1 << 20, 90, now);
        assert_eq!(day_files(dir.path()).len(), 2, "July is past 90 days");
    }

    #[test]
    fn days_are_named_in_utc() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(1_795_700_000), "2026-11-26");
        assert_eq!(parse_day("2026-11-26"), Some(1_795_651_200));
        assert_eq!(day_name(parse_day("2024-02-29").unwrap()), "2024-02-29");
    }
}
