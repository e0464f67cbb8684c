//! Rollups of the activity stream: operations, bytes, errors and a latency histogram
//! (p50, p99) per client, user, share and operation, over the last second, minute and
//! hour. Every record counts: nothing is sampled.
//!
//! Records land in per-second buckets kept for a minute and in per-minute buckets kept
//! for an hour (so the hour window moves a minute at a time). A bucket holds counters
//! and a histogram per client, per user, per share and per operation: each record
//! counts four times, and memory grows with the sum of the distinct values (clients +
//! users + shares + operations), never with their product or with the rate. Latency
//! histograms keep one significant digit (p50 and p99 are within about 10 %), about
//! 1.5 KiB each.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use crate::activity::{OpObserver, OpRecord};
use crate::fasthash::Fast;

/// Who did what where: the finest grain the rollups keep.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub client: IpAddr,
    pub uid: Option<u32>,
    pub share: Option<Arc<str>>,
    pub protocol: &'static str,
    pub op: &'static str,
}

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Client,
    User,
    Share,
    Op,
    Protocol,
}

/// The window a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Second,
    Minute,
    Hour,
}

impl Window {
    fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    ops: u64,
    bytes: u64,
    errors: u64,
    /// Latency in microseconds.
    latency: Histogram<u32>,
}

/// One value of one grouping: what a bucket's counters are kept per.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Group {
    Client(IpAddr),
    User(Option<u32>),
    Share(Option<Arc<str>>),
    Op(&'static str),
    Protocol(&'static str),
}

impl Group {
    fn of(key: &Key) -> [Group; 5] {
        [
            Group::Client(key.client),
            Group::User(key.uid),
            Group::Share(key.share.clone()),
            Group::Op(key.op),
            Group::Protocol(key.protocol),
        ]
    }

    fn by(&self) -> GroupBy {
        match self {
            Group::Client(_) => GroupBy::Client,
            Group::User(_) => GroupBy::User,
            Group::Share(_) => GroupBy::Share,
            Group::Op(_) => GroupBy::Op,
            Group::Protocol(_) => GroupBy::Protocol,
        }
    }

    fn label(&self) -> String {
        match self {
            Group::Client(ip) => ip.to_canonical().to_string(),
            Group::User(uid) => {
                uid.map_or_else(|| "unknown user".to_string(), |u| format!("uid {u}"))
            }
            Group::Share(s) => s.as_deref().unwrap_or("-").to_string(),
            Group::Op(op) => op.to_string(),
            Group::Protocol(p) => p.to_string(),
        }
    }
}

impl Bucket {
    fn new() -> Self {
        Self {
            ops: 0,
            bytes: 0,
            errors: 0,
            // 1 µs to 10 min at 1 significant digit: about 1.5 KiB.
            latency: Histogram::new_with_bounds(1, 600_000_000, 1).expect("valid bounds"),
        }
    }

    fn add(&mut self, other: &Bucket) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.errors += other.errors;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

/// One value of a grouping over time: a chart's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub label: String,
    /// Bytes a second at each point.
    pub bytes_per_second: Vec<u64>,
    /// Median latency in microseconds at each point; none where nothing was timed.
    pub p50_us: Vec<Option<u64>>,
}

/// One line of a report: the API's own type.
pub use rushes_api::ActivityRow as Row;

type Slots = HashMap<Group, Bucket, Fast>;

#[derive(Default)]
struct State {
    /// (second, buckets), newest last, at most 60.
    seconds: VecDeque<(u64, Slots)>,
    /// (minute, buckets), newest last, at most 60.
    minutes: VecDeque<(u64, Slots)>,
    /// (minute, per share and path: counts), newest last, at most 60.
    paths: VecDeque<(u64, PathSlots)>,
    /// Keys the per-file tables: clients choose file names, so the hash is secret.
    path_key: std::hash::RandomState,
    /// Since start, per (protocol, operation) and per client: for Prometheus.
    totals: Totals,
}

/// Counters since rushesd started, never reset: what Prometheus scrapes.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// (protocol, operation) → (operations, bytes, errors).
    pub ops: HashMap<(&'static str, &'static str), (u64, u64, u64), Fast>,
    /// client → (operations, bytes).
    pub clients: HashMap<IpAddr, (u64, u64), Fast>,
}

/// Operations and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ops: u64,
    pub bytes: u64,
}

/// One minute of per-file counts. A minute tracks at most [`MAX_PATHS`] files; the
/// operations on files past that are counted in `untracked`.
///
/// Compact, since every file created or removed adds one: an entry is 32 bytes in one
/// table, keyed by a keyed hash of (share, path), and the paths' bytes follow each other
/// in one string, so a new file costs no allocation of its own and the table stays
/// small enough to stay in cache.
#[derive(Default)]
struct PathSlots {
    files: HashMap<u64, PathEntry, PreHashed>,
    /// The paths' bytes, one after another.
    names: String,
    /// Shares named by the entries.
    shares: Vec<Arc<str>>,
    untracked: Counts,
}

/// One file's counts, and where its share and path are.
struct PathEntry {
    counts: Counts,
    share: u32,
    at: u32,
    len: u32,
}

impl PathEntry {
    /// Its path, in its minute's `names`.
    fn path_in<'a>(&self, names: &'a str) -> &'a str {
        &names[self.at as usize..(self.at + self.len) as usize]
    }
}

impl PathSlots {
    fn path(&self, e: &PathEntry) -> &str {
        e.path_in(&self.names)
    }

    /// The counts of `path` in `share` (hashed as `hash`), made if there is room.
    fn counts(&mut self, hash: u64, share: &Arc<str>, path: &str) -> &mut Counts {
        use std::collections::hash_map::Entry;
        let Self {
            files,
            names,
            shares,
            untracked,
        } = self;
        let full = files.len() >= MAX_PATHS || names.len() + path.len() > u32::MAX as usize;
        match files.entry(hash) {
            Entry::Occupied(e) => {
                let e = e.into_mut();
                // Two files with one hash (2^-64, and the key is secret): the second is
                // counted as untracked rather than merged into the first.
                let same = e.path_in(names) == path && *shares[e.share as usize] == **share;
                if same {
                    &mut e.counts
                } else {
                    untracked
                }
            }
            Entry::Vacant(_) if full => untracked,
            Entry::Vacant(v) => {
                let share = match shares.iter().position(|s| s == share) {
                    Some(i) => i,
                    None => {
                        shares.push(Arc::clone(share));
                        shares.len() - 1
                    }
                };
                let at = names.len() as u32;
                names.push_str(path);
                &mut v
                    .insert(PathEntry {
                        counts: Counts::default(),
                        share: share as u32,
                        at,
                        len: path.len() as u32,
                    })
                    .counts
            }
        }
    }
}

/// For keys that are hashes already.
#[derive(Default, Clone, Copy)]
struct PreHashedHasher(u64);

impl std::hash::Hasher for PreHashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with this; anything else is folded in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type PreHashed = std::hash::BuildHasherDefault<PreHashedHasher>;

/// Files tracked per minute for the top lists.
pub const MAX_PATHS: usize = 50_000;

/// What a top list ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    File,
    Dir,
}

/// A top list: the busiest files or folders, and what could not be told apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Top {
    /// `SHARE/PATH` and its counts, busiest first.
    pub rows: Vec<(String, Counts)>,
    /// Operations on files beyond the per-minute limit, not in `rows`.
    pub untracked: Counts,
}

/// Operations of one key in one second, counted together: a batch of records from one
/// client doing one thing costs one look-up per group, not one per record.
#[derive(Default)]
struct Tally {
    ops: u64,
    bytes: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn push(&mut self, bytes: u64, error: bool, latency_us: Option<u64>) {
        self.ops += 1;
        self.bytes += bytes;
        self.errors += u64::from(error);
        self.latencies_us.extend(latency_us);
    }

    fn clear(&mut self) {
        (self.ops, self.bytes, self.errors) = (0, 0, 0);
        self.latencies_us.clear();
    }
}

impl State {
    /// Count operations of `key` that ended at `now` (seconds since the epoch).
    fn add(&mut self, key: &Key, tally: &Tally, now: u64) {
        let t = self.totals.ops.entry((key.protocol, key.op)).or_default();
        t.0 += tally.ops;
        t.1 += tally.bytes;
        t.2 += tally.errors;
        let c = self.totals.clients.entry(key.client).or_default();
        c.0 += tally.ops;
        c.1 += tally.bytes;
        // Only the current second is touched per record; a second is added into its
        // minute once, when the next second begins.
        if self.seconds.back().is_some_and(|(t, _)| *t < now) {
            let (at, done) = self.seconds.back().expect("checked");
            let minute = slot(&mut self.minutes, at / 60, 60);
            for (g, b) in done {
                minute.entry(g.clone()).or_insert_with(Bucket::new).add(b);
            }
        }
        let slots = slot(&mut self.seconds, now, 60);
        for g in Group::of(key) {
            let b = match slots.get_mut(&g) {
                Some(b) => b,
                None => slots.entry(g).or_insert_with(Bucket::new),
            };
            b.ops += tally.ops;
            b.bytes += tally.bytes;
            b.errors += tally.errors;
            for us in &tally.latencies_us {
                b.latency.saturating_record((*us).max(1));
            }
        }
    }

    /// Count one operation on `path` in `share`.
    fn add_path(&mut self, share: &Arc<str>, path: &str, bytes: u64, now: u64) {
        let minute = now / 60;
        let ring = &mut self.paths;
        if ring.back().is_none_or(|(t, _)| *t < minute) {
            ring.push_back((minute, PathSlots::default()));
            while ring.len() > 60 {
                ring.pop_front();
            }
        }
        let slots = &mut ring.back_mut().expect("just pushed").1;
        let hash = std::hash::BuildHasher::hash_one(&self.path_key, (&**share, path));
        let counts = slots.counts(hash, share, path);
        counts.ops += 1;
        counts.bytes += bytes;
    }
}

/// The rollups, fed as an [`OpObserver`].
#[derive(Default)]
pub struct Rollups {
    state: Mutex<State>,
}

fn slot(ring: &mut VecDeque<(u64, Slots)>, at: u64, keep: usize) -> &mut Slots {
    if ring.back().is_none_or(|(t, _)| *t < at) {
        ring.push_back((at, HashMap::default()));
        while ring.len() > keep {
            ring.pop_front();
        }
    }
    // A record from a clock that stepped back lands in the newest bucket.
    &mut ring.back_mut().expect("just pushed").1
}

impl Rollups {
    /// Count one operation that ended at `now` (seconds since the epoch).
    /// `latency_us` is `None` when the source could not time the operation.
    pub fn add(&self, key: Key, bytes: u64, error: bool, latency_us: Option<u64>, now: u64) {
        let mut tally = Tally::default();
        tally.push(bytes, error, latency_us);
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.add(&key, &tally, now);
    }

    /// Each value of `by` over `window` ending at `now`, oldest point first, busiest (by
    /// bytes) first. Over a minute (or a second) a point is a second; over an hour it is
    /// a minute: its bytes a second on average, and the p50 of all its operations.
    pub fn series(&self, by: GroupBy, window: Window, now: u64) -> Vec<Series> {
        const POINTS: u64 = 60;
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let width = if window == Window::Hour { 60 } else { 1 };
        let last = now / width;
        let first = (last + 1).saturating_sub(POINTS);
        let mut points: HashMap<Group, Vec<Option<Bucket>>> = HashMap::new();
        let mut put = |at: u64, slots: &Slots| {
            if at < first || at > last {
                return;
            }
            for (g, b) in slots.iter().filter(|(g, _)| g.by() == by) {
                let line = points
                    .entry(g.clone())
                    .or_insert_with(|| vec![None; POINTS as usize]);
                line[(at - first) as usize]
                    .get_or_insert_with(Bucket::new)
                    .add(b);
            }
        };
        if window == Window::Hour {
            for (at, slots) in &st.minutes {
                put(*at, slots);
            }
            // The newest second is added into its minute only when the next begins.
            if let Some((at, slots)) = st.seconds.back() {
                put(at / 60, slots);
            }
        } else {
            for (at, slots) in &st.seconds {
                put(*at, slots);
            }
        }
        let mut out: Vec<Series> = points
            .into_iter()
            .map(|(g, line)| Series {
                label: g.label(),
                bytes_per_second: line
                    .iter()
                    .map(|b| b.as_ref().map_or(0, |b| b.bytes / width))
                    .collect(),
                p50_us: line
                    .iter()
                    .map(|b| {
                        b.as_ref()
                            .filter(|b| !b.latency.is_empty())
                            .map(|b| b.latency.value_at_quantile(0.5))
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| {
            let total = |s: &Series| s.bytes_per_second.iter().sum::<u64>();
            total(b).cmp(&total(a)).then(a.label.cmp(&b.label))
        });
        out
    }

    /// The counters since start.
    pub fn totals(&self) -> Totals {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .totals
            .clone()
    }

    /// Count one operation on `path` in `share`.
    pub fn add_path(&self, share: &Arc<str>, path: &str, bytes: u64, now: u64) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.add_path(share, path, bytes, now);
    }

    /// The busiest files (or folders) over the last minute or hour, by bytes or by
    /// operations, at most `limit`.
    pub fn top(&self, window: Window, by: TopBy, by_ops: bool, limit: usize, now: u64) -> Top {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let span = window.seconds().max(60);
        let mut sums: HashMap<String, Counts> = HashMap::new();
        let mut untracked = Counts::default();
        for (_, slots) in st
            .paths
            .iter()
            .filter(|(m, _)| m * 60 + 60 > now.saturating_sub(span) && *m <= now / 60)
        {
            untracked.ops += slots.untracked.ops;
            untracked.bytes += slots.untracked.bytes;
            for e in slots.files.values() {
                let (share, path, c) = (&slots.shares[e.share as usize], slots.path(e), &e.counts);
                {
                    let key = match by {
                        TopBy::File => format!("{share}{path}"),
                        TopBy::Dir => {
                            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                            format!("{share}{dir}/")
                        }
                    };
                    let e = sums.entry(key).or_default();
                    e.ops += c.ops;
                    e.bytes += c.bytes;
                }
            }
        }
        let mut rows: Vec<(String, Counts)> = sums.into_iter().collect();
        rows.sort_by(|a, b| {
            let (x, y) = if by_ops {
                ((b.1.ops, b.1.bytes), (a.1.ops, a.1.bytes))
            } else {
                ((b.1.bytes, b.1.ops), (a.1.bytes, a.1.ops))
            };
            x.cmp(&y).then(a.0.cmp(&b.0))
        });
        rows.truncate(limit);
        Top { rows, untracked }
    }

    /// The report for `window` ending at `now`, grouped by `by`, busiest (by bytes,
    /// then operations) first.
    pub fn report(&self, window: Window, by: GroupBy, now: u64) -> Vec<Row> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let span = window.seconds();
        let buckets: Vec<&Slots> = match window {
            // Whole minutes, and the newest second, which is not in its minute yet.
            Window::Hour => st
                .minutes
                .iter()
                .filter(|(m, _)| m * 60 + 60 > now.saturating_sub(span) && *m <= now / 60)
                .map(|(_, s)| s)
                .chain(
                    st.seconds
                        .back()
                        .filter(|(t, _)| *t + span > now && *t <= now)
                        .map(|(_, s)| s),
                )
                .collect(),
            _ => st
                .seconds
                .iter()
                .filter(|(s, _)| *s + span > now && *s <= now)
                .map(|(_, s)| s)
                .collect(),
        };
        let mut groups: HashMap<String, Bucket> = HashMap::new();
        for slots in buckets {
            for (g, b) in slots.iter().filter(|(g, _)| g.by() == by) {
                groups.entry(g.label()).or_insert_with(Bucket::new).add(b);
            }
        }
        let mut rows: Vec<Row> = groups
            .into_iter()
            .map(|(group, b)| Row {
                group,
                ops: b.ops,
                bytes: b.bytes,
                errors: b.errors,
                ops_per_s: b.ops as f64 / span as f64,
                bytes_per_s: b.bytes as f64 / span as f64,
                p50_us: (!b.latency.is_empty()).then(|| b.latency.value_at_quantile(0.5)),
                p99_us: (!b.latency.is_empty()).then(|| b.latency.value_at_quantile(0.99)),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then(b.ops.cmp(&a.ops))
                .then(a.group.cmp(&b.group))
        });
        rows
    }
}

impl OpObserver for Rollups {
    fn record(&self, op: &OpRecord) {
        self.record_batch(std::slice::from_ref(op));
    }

    fn record_batch(&self, ops: &[OpRecord]) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Records in a row with the same key and second are counted as one tally.
        let mut run: Option<(Key, u64)> = None;
        let mut tally = Tally::default();
        for op in ops {
            let now = op.time_ms() / 1000;
            let same = run.as_ref().is_some_and(|(k, at)| {
                *at == now
                    && k.client == op.client
                    && k.uid == op.uid
                    && k.op == op.op
                    && k.protocol == op.protocol
                    && k.share == op.share
            });
            if !same {
                if let Some((key, at)) = run.take() {
                    st.add(&key, &tally, at);
                }
                tally.clear();
                let key = Key {
                    client: op.client,
                    uid: op.uid,
                    share: op.share.clone(),
                    protocol: op.protocol,
                    op: op.op,
                };
                run = Some((key, now));
            }
            tally.push(
                op.bytes,
                op.status.is_none_or(|s| s != 0),
                op.latency
                    .map(|l| l.as_micros().min(u128::from(u64::MAX)) as u64),
            );
            if let (Some(share), Some(path)) = (&op.share, &op.path) {
                st.add_path(share, path, op.bytes, now);
            }
        }
        if let Some((key, at)) = run {
            st.add(&key, &tally, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: &str, uid: u32, share: &str, op: &'static str) -> Key {
        Key {
            client: client.parse().unwrap(),
            uid: Some(uid),
            share: Some(share.into()),
            protocol: "nfs3",
            op,
        }
    }

    #[test]
    fn reports_group_sum_and_rank_by_bytes() {
        let r = Rollups::default();
        let t = 1_000_000;
        for i in 0..100 {
            r.add(
                key("10.0.0.1", 1000, "projects", "READ"),
                1 << 20,
                false,
                Some(100 + i),
                t,
            );
        }
        r.add(
            key("10.0.0.2", 1001, "projects", "WRITE"),
            4096,
            false,
            Some(50),
            t,
        );
        r.add(
            key("10.0.0.2", 1001, "archive", "LOOKUP"),
            0,
            true,
            Some(20),
            t,
        );
        let by_client = r.report(Window::Second, GroupBy::Client, t);
        assert_eq!(by_client[0].group, "10.0.0.1");
        assert_eq!((by_client[0].ops, by_client[0].bytes), (100, 100 << 20));
        assert_eq!((by_client[1].ops, by_client[1].errors), (2, 1));
        // Latencies 100..199 µs: the median near 150, the 99th near 199 (2 digits).
        assert!(
            (145..=155).contains(&by_client[0].p50_us.unwrap()),
            "{by_client:?}"
        );
        assert!(
            (195..=200).contains(&by_client[0].p99_us.unwrap()),
            "{by_client:?}"
        );
        let by_share = r.report(Window::Second, GroupBy::Share, t);
        assert_eq!(by_share.len(), 2);
        assert_eq!(by_share[0].group, "projects");
        let by_user = r.report(Window::Second, GroupBy::User, t);
        assert_eq!(by_user[1].group, "uid 1001");
        // An untimed record (SMB's audit) counts, but leaves the percentiles alone.
        r.add(
            key("10.0.0.9", 1002, "projects", "RENAME"),
            0,
            false,
            None,
            t,
        );
        let smb = r.report(Window::Second, GroupBy::Client, t);
        let row = smb.iter().find(|r| r.group == "10.0.0.9").unwrap();
        assert_eq!((row.ops, row.p50_us, row.p99_us), (1, None, None));
    }

    #[test]
    fn series_give_each_client_its_bytes_and_latency_over_time() {
        let r = Rollups::default();
        // Latencies under 32 µs, which the histograms keep exactly.
        let t = 1_000_000 - 1_000_000 % 60 + 30;
        r.add(
            key("10.0.0.2", 1, "s", "WRITE"),
            10,
            false,
            Some(29),
            t - 121,
        );
        r.add(key("10.0.0.2", 1, "s", "WRITE"), 10, false, Some(17), t - 2);
        r.add(key("10.0.0.1", 1, "s", "READ"), 100, false, Some(4), t - 2);
        r.add(key("10.0.0.2", 1, "s", "WRITE"), 10, false, None, t - 1);
        r.add(key("10.0.0.1", 1, "s", "READ"), 120, false, Some(6), t);
        let minute = r.series(GroupBy::Client, Window::Minute, t);
        let labels: Vec<&str> = minute.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["10.0.0.1", "10.0.0.2"]);
        let reads = &minute[0];
        assert_eq!(reads.bytes_per_second.len(), 60);
        assert_eq!(reads.bytes_per_second[57..], [100, 0, 120]);
        assert_eq!(reads.p50_us[57..], [Some(4), None, Some(6)]);
        // The untimed write counts its bytes but has no latency.
        assert_eq!(minute[1].bytes_per_second[57..], [10, 10, 0]);
        assert_eq!(minute[1].p50_us[57..], [Some(17), None, None]);
        // The hour: a point a minute, the current one holding the newest second too.
        let hour = r.series(GroupBy::Client, Window::Hour, t);
        let writes = hour.iter().find(|s| s.label == "10.0.0.2").unwrap();
        assert_eq!(writes.bytes_per_second[56..], [0, 0, 0, 0]);
        assert_eq!(writes.p50_us[57], Some(29));
        assert_eq!(writes.p50_us[59], Some(17));
        let reads = hour.iter().find(|s| s.label == "10.0.0.1").unwrap();
        assert_eq!(reads.bytes_per_second[59], 220 / 60);
        assert_eq!(reads.p50_us[59], Some(4));
    }

    #[test]
    fn top_files_and_folders_rank_by_bytes_or_operations() {
        let r = Rollups::default();
        let t = 1_000_000 - 1_000_000 % 60;
        let projects: Arc<str> = "projects".into();
        for _ in 0..3 {
            r.add_path(&projects, "/reel1/a.mov", 1 << 20, t);
        }
        for _ in 0..10 {
            r.add_path(&projects, "/reel1/b.xml", 100, t + 1);
        }
        r.add_path(&projects, "/reel2/c.mov", 5 << 20, t + 61);
        let by_bytes = r.top(Window::Hour, TopBy::File, false, 10, t + 90);
        let names: Vec<&str> = by_bytes.rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "projects/reel2/c.mov",
                "projects/reel1/a.mov",
                "projects/reel1/b.xml"
            ]
        );
        let by_ops = r.top(Window::Hour, TopBy::File, true, 1, t + 90);
        assert_eq!(by_ops.rows[0].0, "projects/reel1/b.xml");
        assert_eq!(
            by_ops.rows[0].1,
            Counts {
                ops: 10,
                bytes: 1000
            }
        );
        let dirs = r.top(Window::Hour, TopBy::Dir, false, 10, t + 90);
        assert_eq!(dirs.rows[0].0, "projects/reel2/");
        assert_eq!(dirs.rows[1].1.ops, 13);
        let minute = r.top(Window::Minute, TopBy::File, false, 10, t + 125);
        assert_eq!(
            minute.rows.len(),
            1,
            "only the second minute is within 60 s"
        );
    }

    #[test]
    fn past_the_file_limit_operations_are_counted_as_untracked() {
        let r = Rollups::default();
        let share: Arc<str> = "s".into();
        for i in 0..MAX_PATHS + 10 {
            r.add_path(&share, &format!("/f{i}"), 1, 60);
        }
        let top = r.top(Window::Minute, TopBy::File, false, 5, 60);
        assert_eq!(top.untracked, Counts { ops: 10, bytes: 10 });
        assert_eq!(top.rows.len(), 5);
    }

    #[test]
    fn a_batch_counts_as_its_records_one_by_one() {
        let t = 1_000_000u64;
        let mut batch = Vec::new();
        for i in 0..200u64 {
            // Runs of one key, interleaved clients, a second boundary, errors.
            let client = if i % 7 < 4 { "10.0.0.1" } else { "10.0.0.2" };
            let mut op = OpRecord::new(
                client.parse().unwrap(),
                "nfs3",
                ["READ", "LOOKUP"][(i / 50) as usize % 2],
            );
            op.uid = Some(1000 + (i % 3 == 0) as u32);
            op.share = Some("projects".into());
            op.bytes = i * 10;
            op.status = Some((i % 11 == 0) as u32);
            op.latency = Some(std::time::Duration::from_micros(10 + i));
            op.time_ms = (t + i / 120) * 1000;
            batch.push(op);
        }
        let batched = Rollups::default();
        batched.record_batch(&batch);
        let single = Rollups::default();
        for op in &batch {
            single.record(op);
        }
        for by in [
            GroupBy::Client,
            GroupBy::User,
            GroupBy::Share,
            GroupBy::Op,
            GroupBy::Protocol,
        ] {
            for w in [Window::Second, Window::Minute] {
                let (a, b) = (batched.report(w, by, t + 1), single.report(w, by, t + 1));
                assert_eq!(a, b, "{by:?} {w:?}");
                assert!(!a.is_empty());
            }
        }
        assert_eq!(batched.totals().ops, single.totals().ops);
    }

    #[test]
    fn files_sharing_a_hash_are_not_merged() {
        let mut slots = PathSlots::default();
        let (projects, archive): (Arc<str>, Arc<str>) = ("projects".into(), "archive".into());
        slots.counts(42, &projects, "/reel1/a.mov").ops += 1;
        slots.counts(42, &projects, "/reel1/a.mov").ops += 1;
        slots.counts(42, &projects, "/reel1/b.mov").ops += 1;
        slots.counts(42, &archive, "/reel1/a.mov").ops += 1;
        slots.counts(7, &archive, "/reel1/a.mov").ops += 1;
        let e = &slots.files[&42];
        assert_eq!((slots.path(e), e.counts.ops), ("/reel1/a.mov", 2));
        assert_eq!(slots.untracked.ops, 2, "the other file and the other share");
        assert_eq!(slots.shares.len(), 2, "each share kept once");
        assert_eq!(slots.path(&slots.files[&7]), "/reel1/a.mov");
    }

    #[test]
    fn windows_keep_what_is_inside_them_and_drop_the_rest() {
        let r = Rollups::default();
        let t = 1_000_000 - 1_000_000 % 60; // on a minute boundary
        r.add(key("10.0.0.1", 1, "s", "READ"), 10, false, Some(5), t);
        r.add(key("10.0.0.1", 1, "s", "READ"), 20, false, Some(5), t + 30);
        r.add(key("10.0.0.1", 1, "s", "READ"), 40, false, Some(5), t + 90);
        let sum = |w, now| {
            r.report(w, GroupBy::Op, now)
                .first()
                .map_or(0, |row: &Row| row.bytes)
        };
        assert_eq!(sum(Window::Second, t + 90), 40);
        assert_eq!(
            sum(Window::Second, t + 91),
            0,
            "a second later, it left the 1 s window"
        );
        assert_eq!(sum(Window::Minute, t + 90), 40, "t+30 is 60 s old");
        assert_eq!(sum(Window::Minute, t + 60), 20);
        assert_eq!(sum(Window::Hour, t + 90), 70);
        // The hour is counted in whole minutes: the first minute leaves it once all of
        // that minute is more than an hour old.
        assert_eq!(sum(Window::Hour, t + 3600 + 59), 70);
        assert_eq!(
            sum(Window::Hour, t + 3600 + 60),
            40,
            "the first minute has aged out"
        );
        let rate = r.report(Window::Minute, GroupBy::Op, t + 60)[0].bytes_per_s;
        assert!((rate - 20.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn records_from_the_observer_count_errors_by_status() {
        let r = Rollups::default();
        let mut op = OpRecord::new("10.0.0.3".parse().unwrap(), "nfs3", "REMOVE");
        op.status = Some(2);
        r.record(&op);
        op.status = Some(0);
        r.record(&op);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let rows = r.report(Window::Minute, GroupBy::Client, now);
        assert_eq!((rows[0].ops, rows[0].errors), (2, 1));
    }
}
