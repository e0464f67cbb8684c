//! The one place every RPC passes through on its way out: who asked for what, on which
//! share, how many bytes, with what result and how fast.
//!
//! Today records become structured `tracing` events (target `rushes::activity`, level
//! DEBUG, so they cost a filter check unless enabled). Activity analytics, the catalog
//! and tiering will plug in their own [`OpObserver`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// One answered RPC.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub client: IpAddr,
    /// The uid the operation ran as, after squashing (`None` before it was known).
    pub uid: Option<u32>,
    /// "nfs3", "mount3" or "portmap".
    pub protocol: &'static str,
    /// Procedure name, e.g. "WRITE".
    pub op: &'static str,
    pub share: Option<Arc<str>>,
    /// The object operated on (file id), when the call named one.
    pub fileid: Option<u64>,
    /// The name in the directory for LOOKUP, CREATE, REMOVE, RENAME (source), …
    pub name: Option<String>,
    /// Payload bytes read or written.
    pub bytes: u64,
    /// nfsstat3 / mountstat3 of the reply, or `None` when the RPC layer answered an error.
    pub status: Option<u32>,
    pub latency: Duration,
}

impl OpRecord {
    pub fn new(client: IpAddr, protocol: &'static str, op: &'static str) -> Self {
        Self {
            client,
            uid: None,
            protocol,
            op,
            share: None,
            fileid: None,
            name: None,
            bytes: 0,
            status: None,
            latency: Duration::ZERO,
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
            latency_us = op.latency.as_micros() as u64,
        );
    }
}
