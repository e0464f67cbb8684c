//! The one place every RPC passes through on its way out: who asked for what, on which
//! share, how many bytes, with what result and how fast.
//!
//! Today records become structured `tracing` events (target `rushes::activity`, level
//! DEBUG, so they cost a filter check unless enabled). Activity analytics, the catalog
//! and tiering will plug in their own [`OpObserver`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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
    /// The name in the directory for LOOKUP, CREATE, REMOVE, RENAME (source), …
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
        }
    }
}

/// Receives every record. Called on the request's worker thread: keep it cheap.
pub trait OpObserver: Send + Sync {
    fn record(&self, op: &OpRecord);
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
}

/// Hands each record to several observers.
pub struct Tee(pub Vec<Arc<dyn OpObserver>>);

impl OpObserver for Tee {
    fn record(&self, op: &OpRecord) {
        for o in &self.0 {
            o.record(op);
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
    clients: HashMap<IpAddr, ClientTotals, crate::rollup::Fast>,
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

impl OpObserver for LiveCounters {
    fn record(&self, op: &OpRecord) {
        let now = now_secs();
        let (read, write) = match op.op {
            "READ" => (op.bytes, 0),
            "WRITE" => (0, op.bytes),
            _ => (0, 0),
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.seconds.back().is_none_or(|s| s.at != now) {
            live.seconds.push_back(Second {
                at: now,
                ..Default::default()
            });
            if live.seconds.len() > Self::KEEP_SECONDS {
                live.seconds.pop_front();
            }
        }
        if let Some(s) = live.seconds.back_mut() {
            s.read_bytes += read;
            s.write_bytes += write;
            s.ops += 1;
        }
        let c = live.clients.entry(op.client).or_default();
        c.last_seen = now;
        c.ops += 1;
        c.read_bytes += read;
        c.write_bytes += write;
        if live.clients.len() > 4096 {
            live.clients
                .retain(|_, c| now.saturating_sub(c.last_seen) < 3600);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
