//! The one place every RPC passes through on its way out: who asked for what, on which
//! share, how many bytes, with what result and how fast.
//!
//! Records reach their [`OpObserver`]s (live counters, rollups, the audit log, `tracing`
//! events) through a [`Recorder`]: the request thread only queues the record, and one
//! thread hands the queue to the observers in batches, so recording adds neither lock
//! waits nor the observers' work to an answer.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One answered RPC.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub client: IpAddr,
    /// The uid the operation ran as, after squashing (`None` before it was known).
    pub uid: Option<u32>,
    /// User name, when the protocol names one (SMB does; NFS's AUTH_SYS gives a uid).
    pub user: Option<Arc<str>>,
    /// "nfs3", "mount3", "portmap" or "smb".
    pub protocol: &'static str,
    /// Operation name in capitals, e.g. "WRITE" (NFS procedures; SMB's are mapped onto
    /// the same words: OPEN, CREATE, READ, WRITE, RENAME, DELETE, MKDIR, …).
    pub op: &'static str,
    pub share: Option<Arc<str>>,
    /// The object operated on (file id), when the call named one.
    pub fileid: Option<u64>,
    /// The name in the directory for LOOKUP, CREATE, REMOVE, RENAME (source), …: NFS
    /// fills it only while `rushes::activity` debug events are on, since nothing else
    /// reads it (the path names the file).
    pub name: Option<String>,
    /// The path inside the share, when it is known (SMB always; NFS for operations that
    /// change the namespace or move data).
    pub path: Option<String>,
    /// RENAME's new path inside the share.
    pub to: Option<String>,
    /// Payload bytes read or written.
    pub bytes: u64,
    /// nfsstat3 / mountstat3 of the reply (0 is success; SMB failures are 1), or `None`
    /// when the RPC layer answered an error.
    pub status: Option<u32>,
    /// Why it failed, in words, when the protocol says (SMB's audit does).
    pub reason: Option<String>,
    /// Time to answer; `None` when the source cannot measure it (SMB's audit).
    pub latency: Option<Duration>,
    /// When it was answered, milliseconds since the epoch; 0 until a [`Recorder`] takes
    /// it (observers fed directly take the time they see it).
    pub time_ms: u64,
}

impl OpRecord {
    pub fn new(client: IpAddr, protocol: &'static str, op: &'static str) -> Self {
        Self {
            client,
            uid: None,
            user: None,
            protocol,
            op,
            share: None,
            fileid: None,
            name: None,
            path: None,
            to: None,
            bytes: 0,
            status: None,
            reason: None,
            latency: None,
            time_ms: 0,
        }
    }

    /// When it was answered, milliseconds since the epoch.
    pub fn time_ms(&self) -> u64 {
        if self.time_ms == 0 {
            now_ms()
        } else {
            self.time_ms
        }
    }
}

/// Receives every record.
pub trait OpObserver: Send + Sync {
    fn record(&self, op: &OpRecord);

    /// Several records, oldest first: observers that lock override this to lock once.
    fn record_batch(&self, ops: &[OpRecord]) {
        for op in ops {
            self.record(op);
        }
    }

    /// A record its maker has no more use for (a [`Recorder`] keeps it without a copy).
    fn record_owned(&self, op: OpRecord) {
        self.record(&op);
    }
}

/// Emits each record as a `tracing` event.
#[derive(Debug, Default)]
pub struct TracingObserver;

impl OpObserver for TracingObserver {
    fn record(&self, op: &OpRecord) {
        tracing::debug!(
            target: "rushes::activity",
            client = %op.client,
            uid = op.uid,
            protocol = op.protocol,
            op = op.op,
            share = op.share.as_deref(),
            fileid = op.fileid,
            name = op.name.as_deref(),
            bytes = op.bytes,
            status = op.status,
            path = op.path.as_deref(),
            latency_us = op.latency.map(|l| l.as_micros() as u64),
        );
    }
}

impl<T: OpObserver + ?Sized> OpObserver for Arc<T> {
    fn record(&self, op: &OpRecord) {
        (**self).record(op)
    }
    fn record_batch(&self, ops: &[OpRecord]) {
        (**self).record_batch(ops)
    }
    fn record_owned(&self, op: OpRecord) {
        (**self).record_owned(op)
    }
}

/// Hands each record to several observers.
pub struct Tee(pub Vec<Arc<dyn OpObserver>>);

impl OpObserver for Tee {
    fn record(&self, op: &OpRecord) {
        for o in &self.0 {
            o.record(op);
        }
    }
    fn record_batch(&self, ops: &[OpRecord]) {
        for o in &self.0 {
            o.record_batch(ops);
        }
    }
}

/// Records queued and not yet handed on before a request thread hands them on itself.
const QUEUE: usize = 16_384;
/// How often the recorder thread hands the queue on.
const HAND_ON_EVERY: Duration = Duration::from_millis(50);
/// Records handed on under one lock of each observer.
const BATCH: usize = 4096;

/// Takes records off the request threads. Queuing a record is a slot in a bounded
/// channel: no lock, no copy, no wake-up (the recorder thread sleeps between rounds
/// rather than waiting on the channel). Every [`HAND_ON_EVERY`] the thread hands what
/// arrived to the observer in batches. Nothing is dropped: when the queue is full, the
/// request thread that found it full hands the queue on itself, then queues.
///
/// Readers call [`Recorder::settle`] first, which hands on everything queued so far: a
/// report made after an answer always counts that answer.
pub struct Recorder {
    queue: mpsc::SyncSender<OpRecord>,
    inbox: Mutex<mpsc::Receiver<OpRecord>>,
    observer: Arc<dyn OpObserver>,
}

impl Recorder {
    /// Start the recorder thread; it ends when the recorder is dropped.
    pub fn start(observer: Arc<dyn OpObserver>) -> Arc<Self> {
        let (queue, inbox) = mpsc::sync_channel(QUEUE);
        let recorder = Arc::new(Self {
            queue,
            inbox: Mutex::new(inbox),
            observer,
        });
        let weak: Weak<Self> = Arc::downgrade(&recorder);
        let spawned = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || loop {
                std::thread::sleep(HAND_ON_EVERY);
                match weak.upgrade() {
                    Some(recorder) => recorder.settle(),
                    None => return,
                }
            });
        if let Err(e) = spawned {
            // Readers and full queues still hand records on; only the timing suffers.
            tracing::error!(error = %e, "cannot start the activity recorder thread");
        }
        recorder
    }

    /// Hand every record queued so far to the observer.
    pub fn settle(&self) {
        let inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Vec::new();
        loop {
            batch.extend(inbox.try_iter().take(BATCH));
            if batch.is_empty() {
                return;
            }
            self.observer.record_batch(&batch);
            batch.clear();
        }
    }
}

impl OpObserver for Recorder {
    fn record(&self, op: &OpRecord) {
        self.record_owned(op.clone());
    }

    fn record_owned(&self, mut op: OpRecord) {
        if op.time_ms == 0 {
            op.time_ms = now_ms();
        }
        match self.queue.try_send(op) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(op)) => {
                self.settle();
                self.observer.record(&op);
            }
            // The inbox lives as long as the recorder: cannot happen.
            Err(mpsc::TrySendError::Disconnected(_)) => {}
        }
    }
}

/// One second of traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Second {
    /// Seconds since the epoch.
    pub at: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub ops: u64,
}

/// What one client has done lately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientTotals {
    /// Seconds since the epoch.
    pub last_seen: u64,
    pub ops: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

#[derive(Default)]
struct Live {
    seconds: VecDeque<Second>,
    clients: HashMap<IpAddr, ClientTotals, crate::fasthash::Fast>,
}

/// Live throughput per second (the last minute) and per client, for the dashboard.
/// One short lock per call; the full analytics come later.
#[derive(Default)]
pub struct LiveCounters {
    live: Mutex<Live>,
}

impl LiveCounters {
    const KEEP_SECONDS: usize = 120;

    /// The last `n` seconds up to now, oldest first, with idle seconds as zeros.
    pub fn seconds(&self, n: usize) -> Vec<Second> {
        let now = now_secs();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        (0..n as u64)
            .rev()
            .map(|ago| {
                let at = now.saturating_sub(ago);
                live.seconds
                    .iter()
                    .find(|s| s.at == at)
                    .copied()
                    .unwrap_or(Second {
                        at,
                        ..Default::default()
                    })
            })
            .collect()
    }

    /// Clients seen in the last `within` seconds, busiest first.
    pub fn clients(&self, within: u64) -> Vec<(IpAddr, ClientTotals)> {
        let now = now_secs();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(IpAddr, ClientTotals)> = live
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_seen) <= within)
            .map(|(ip, c)| (*ip, *c))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.1.ops));
        out
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Live {
    fn count(&mut self, op: &OpRecord) {
        let now = op.time_ms() / 1000;
        let (read, write) = match op.op {
            "READ" => (op.bytes, 0),
            "WRITE" => (0, op.bytes),
            _ => (0, 0),
        };
        if self.seconds.back().is_none_or(|s| s.at < now) {
            self.seconds.push_back(Second {
                at: now,
                ..Default::default()
            });
            if self.seconds.len() > LiveCounters::KEEP_SECONDS {
                self.seconds.pop_front();
            }
        }
        // A record from a clock that stepped back lands in the newest second.
        if let Some(s) = self.seconds.back_mut() {
            s.read_bytes += read;
            s.write_bytes += write;
            s.ops += 1;
        }
        let c = self.clients.entry(op.client).or_default();
        c.last_seen = c.last_seen.max(now);
        c.ops += 1;
        c.read_bytes += read;
        c.write_bytes += write;
        if self.clients.len() > 4096 {
            self.clients
                .retain(|_, c| now.saturating_sub(c.last_seen) < 3600);
        }
    }
}

impl OpObserver for LiveCounters {
    fn record(&self, op: &OpRecord) {
        self.record_batch(std::slice::from_ref(op));
    }

    fn record_batch(&self, ops: &[OpRecord]) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for op in ops {
            live.count(op);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorder_hands_on_every_record_and_settles_before_reads() {
        let live = Arc::new(LiveCounters::default());
        let recorder = Recorder::start(Arc::clone(&live) as Arc<dyn OpObserver>);
        let mut w = OpRecord::new("10.0.0.7".parse().unwrap(), "nfs3", "WRITE");
        w.bytes = 10;
        // More than the queue holds, from two threads: the overflow is handed on by
        // the threads that find the queue full, and nothing is lost.
        let n = QUEUE as u64 * 3;
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..n {
                        recorder.record_owned(w.clone());
                    }
                });
            }
        });
        recorder.settle();
        let clients = live.clients(60);
        assert_eq!(clients[0].1.ops, 2 * n);
        assert_eq!(clients[0].1.write_bytes, 2 * n * 10);
        // One more: counted as soon as a reader settles, without waiting for a round.
        recorder.record(&w);
        recorder.settle();
        assert_eq!(live.clients(60)[0].1.ops, 2 * n + 1);
    }

    #[test]
    fn counters_add_up_per_second_and_per_client() {
        let live = LiveCounters::default();
        let mut w = OpRecord::new("10.0.0.7".parse().unwrap(), "nfs3", "WRITE");
        w.bytes = 1 << 20;
        live.record(&w);
        live.record(&w);
        let mut r = OpRecord::new("10.0.0.8".parse().unwrap(), "nfs3", "READ");
        r.bytes = 4096;
        live.record(&r);
        let secs = live.seconds(5);
        assert_eq!(secs.len(), 5);
        let total: u64 = secs.iter().map(|s| s.write_bytes).sum();
        assert_eq!(total, 2 << 20);
        let clients = live.clients(60);
        assert_eq!(clients[0].0.to_string(), "10.0.0.7");
        assert_eq!((clients[0].1.ops, clients[1].1.read_bytes), (2, 4096));
    }
}
