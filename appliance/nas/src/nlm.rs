//! The network lock manager (NLM, program 100021, versions 1, 3 and 4): byte-range locks
//! and DOS share reservations for NFS clients, over TCP and UDP.
//!
//! The synchronous procedures answer in the reply. The `_MSG` procedures that macOS'
//! rpc.lockd sends answer by a separate `_RES` call to the client's lock manager, and a
//! blocked LOCK that is granted later is announced by a GRANTED call; both go out on
//! callback worker threads ([`Callbacks`]), found through the client's portmapper.
//! Locks themselves are kernel locks ([`crate::locks`]).

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock, Weak};

use crate::activity::OpRecord;
use crate::callback::{self, ClientQueue, Reach};
use crate::locks::{Granted, Holder, LockManager, Owner, Range, Request, Stat};
use crate::nsm::{Monitor, Peer};
use crate::rpc::{AcceptError, Origin};
use crate::xdr::{put_bool, put_opaque, put_u32, put_u64, Garbage, XdrReader};

pub use crate::programs::{NLM as PROGRAM, NLM_VERSIONS as VERSIONS};
/// LM_MAXSTRLEN and MAXNETOBJ_SZ.
const MAX_STRING: usize = 1024;

pub fn proc_name(procedure: u32) -> &'static str {
    const NAMES: [&str; 24] = [
        "NULL",
        "TEST",
        "LOCK",
        "CANCEL",
        "UNLOCK",
        "GRANTED",
        "TEST_MSG",
        "LOCK_MSG",
        "CANCEL_MSG",
        "UNLOCK_MSG",
        "GRANTED_MSG",
        "TEST_RES",
        "LOCK_RES",
        "CANCEL_RES",
        "UNLOCK_RES",
        "GRANTED_RES",
        "UNKNOWN",
        "UNKNOWN",
        "UNKNOWN",
        "UNKNOWN",
        "SHARE",
        "UNSHARE",
        "NM_LOCK",
        "FREE_ALL",
    ];
    NAMES.get(procedure as usize).copied().unwrap_or("UNKNOWN")
}

/// `nlm4_lock` (or v1/v3's `nlm_lock`) as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub caller_name: Vec<u8>,
    pub fh: Vec<u8>,
    pub oh: Vec<u8>,
    pub svid: i32,
    pub offset: u64,
    pub len: u64,
}

fn read_lock(r: &mut XdrReader<'_>, version: u32) -> Result<Lock, Garbage> {
    let caller_name = r.opaque(MAX_STRING)?.to_vec();
    let fh = r.opaque(MAX_STRING)?.to_vec();
    let oh = r.opaque(MAX_STRING)?.to_vec();
    let svid = r.u32()? as i32;
    let (offset, len) = if version == 4 {
        (r.u64()?, r.u64()?)
    } else {
        (u64::from(r.u32()?), u64::from(r.u32()?))
    };
    Ok(Lock {
        caller_name,
        fh,
        oh,
        svid,
        offset,
        len,
    })
}

fn put_lock(out: &mut Vec<u8>, version: u32, lock: &Lock) {
    put_opaque(out, &lock.caller_name);
    put_opaque(out, &lock.fh);
    put_opaque(out, &lock.oh);
    put_u32(out, lock.svid as u32);
    put_range(out, version, lock.offset, lock.len);
}

fn put_range(out: &mut Vec<u8>, version: u32, offset: u64, len: u64) {
    if version == 4 {
        put_u64(out, offset);
        put_u64(out, len);
    } else {
        // 32-bit clients: a range past 4 GiB is reported as reaching the end.
        put_u32(out, u32::try_from(offset).unwrap_or(u32::MAX));
        put_u32(out, u32::try_from(len).unwrap_or(0));
    }
}

fn put_res(out: &mut Vec<u8>, version: u32, cookie: &[u8], stat: Stat) {
    put_opaque(out, cookie);
    put_u32(out, stat.code(version));
}

fn put_testres(
    out: &mut Vec<u8>,
    version: u32,
    cookie: &[u8],
    result: Result<Option<Holder>, Stat>,
) {
    put_opaque(out, cookie);
    match result {
        Ok(None) => put_u32(out, Stat::Granted.code(version)),
        Ok(Some(h)) => {
            put_u32(out, Stat::Denied.code(version));
            put_bool(out, h.exclusive);
            put_u32(out, h.svid as u32);
            put_opaque(out, &h.oh);
            put_range(out, version, h.range.start, h.range.len);
        }
        Err(stat) => put_u32(out, stat.code(version)),
    }
}

/// What a granted blocked LOCK needs to be announced: the GRANTED call's arguments.
#[derive(Debug, Clone)]
pub struct Notice {
    pub version: u32,
    pub cookie: Vec<u8>,
    pub exclusive: bool,
    pub lock: Lock,
    /// The address the client reached us at, for the status monitor.
    pub server: IpAddr,
}

/// A callback to send.
#[derive(Debug)]
pub enum Job {
    /// GRANTED for a blocked request the lock manager just gave out.
    Grant(Box<Granted<Notice>>),
    /// The `_RES` answer to a `_MSG` call.
    Res {
        client: IpAddr,
        version: u32,
        procedure: u32,
        body: Vec<u8>,
    },
}

/// Callbacks at most waiting to be sent; past this, `_RES` answers are dropped (the
/// client asks again) and grants are released.
const MAX_JOBS: usize = 1024;
/// Threads sending callbacks. A client's callbacks go out one at a time, so an
/// unreachable client ties up one of them, for a few seconds, and the others go on.
const WORKERS: usize = 4;

/// Where a grant that cannot be announced is released; set once the lock manager,
/// which needs the callbacks first, exists.
type LocksCell = Arc<OnceLock<Weak<LockManager<Notice>>>>;

/// The callback queue and its workers.
pub struct Callbacks {
    queue: ClientQueue<Job>,
    locks: LocksCell,
}

impl Callbacks {
    fn start(locks: LocksCell) -> Self {
        let release_to = Arc::clone(&locks);
        let queue = ClientQueue::start("nlm-callback", WORKERS, MAX_JOBS, move |job, skip| {
            send(job, skip, release_to.get())
        });
        Self { queue, locks }
    }

    fn queue(&self, job: Job) {
        let client = match &job {
            Job::Grant(g) => g.request.owner.client,
            Job::Res { client, .. } => *client,
        };
        if let Err(Job::Grant(g)) = self.queue.push(client, job) {
            tracing::warn!(%client, "too many NLM callbacks waiting; a granted lock is released");
            if let Some(locks) = self.locks.get().and_then(Weak::upgrade) {
                release(&locks, &g.request);
            }
        }
    }
}

fn release(locks: &LockManager<Notice>, req: &Request) {
    locks.unlock(&req.owner, &req.fh, req.range);
}

fn send(job: Job, skip: bool, locks: Option<&Weak<LockManager<Notice>>>) -> Reach {
    match job {
        Job::Res { client, .. } if skip => {
            tracing::debug!(%client, "the client did not answer lately; its NLM answer is dropped");
            Reach::Skipped
        }
        Job::Grant(g) if skip => {
            let client = g.request.owner.client;
            tracing::info!(%client, "the client did not answer lately; its granted lock is released, not announced");
            if let Some(locks) = locks.and_then(Weak::upgrade) {
                release(&locks, &g.request);
            }
            Reach::Skipped
        }
        Job::Res {
            client,
            version,
            procedure,
            body,
        } => {
            let port = callback::getport(client, PROGRAM, version, crate::programs::IPPROTO_UDP);
            let reach = Reach::of(&port);
            match port {
                Ok(port) if port != 0 => {
                    let to = std::net::SocketAddr::new(client, port);
                    if let Err(e) = callback::send_udp(to, PROGRAM, version, procedure, &body) {
                        tracing::debug!(%client, error = %e, "cannot send an NLM answer");
                    }
                }
                Ok(_) => {
                    tracing::debug!(%client, "the client's lock manager is not registered; its NLM answer is dropped")
                }
                Err(e) => {
                    tracing::debug!(%client, error = %e, "the client's portmapper did not answer; its NLM answer is dropped")
                }
            }
            reach
        }
        Job::Grant(g) => {
            let n = &g.notice;
            let mut args = Vec::new();
            put_opaque(&mut args, &n.cookie);
            put_bool(&mut args, n.exclusive);
            put_lock(&mut args, n.version, &n.lock);
            let client = g.request.owner.client;
            let answer = callback::call_client(client, PROGRAM, n.version, 5, &args);
            let reach = Reach::of(&answer);
            let wanted = match &answer {
                Ok(body) => {
                    let mut r = XdrReader::new(body);
                    let stat = r.opaque(MAX_STRING).and_then(|_| r.u32());
                    stat == Ok(0)
                }
                Err(_) => false,
            };
            if wanted {
                tracing::info!(%client, svid = g.request.owner.svid, "blocked NLM lock granted by callback and taken");
                return reach;
            }
            // The client no longer waits for it, or cannot be reached: a lock nobody
            // knows it holds must not block anybody. A client that still wants it asks
            // again (Linux re-sends a blocked LOCK every 30 s).
            match answer {
                Ok(_) => {
                    tracing::debug!(%client, "the client declined a granted NLM lock; released")
                }
                Err(e) => {
                    tracing::info!(%client, error = %e, "cannot tell a client its blocked lock was granted; released")
                }
            }
            if let Some(locks) = locks.and_then(Weak::upgrade) {
                release(&locks, &g.request);
            }
            reach
        }
    }
}

/// The lock manager's state in the service.
pub struct Nlm {
    pub locks: Arc<LockManager<Notice>>,
    pub callbacks: Arc<Callbacks>,
    pub monitor: Monitor,
}

impl Nlm {
    pub fn new(monitor: Monitor, grace: Option<std::time::Duration>) -> Self {
        let cell = LocksCell::default();
        let callbacks = Arc::new(Callbacks::start(Arc::clone(&cell)));
        let grants = Arc::clone(&callbacks);
        let locks = LockManager::start(grace, move |g: Granted<Notice>| {
            grants.queue(Job::Grant(Box::new(g)));
        });
        let _ = cell.set(Arc::downgrade(&locks));
        Self {
            locks,
            callbacks,
            monitor,
        }
    }
}

fn request(origin: &Origin, lock: &Lock, exclusive: bool) -> Request {
    Request {
        owner: Owner {
            client: origin.peer.ip(),
            svid: lock.svid,
            oh: lock.oh.clone(),
        },
        caller_name: String::from_utf8_lossy(&lock.caller_name).into_owned(),
        fh: lock.fh.clone(),
        range: Range {
            start: lock.offset,
            len: lock.len,
        },
        exclusive,
    }
}

/// Opens the file a handle names for locking, as root (the share's rules applied), and
/// notes the share in the record.
pub type Opener<'a> = &'a dyn Fn(&[u8], bool, &mut OpRecord) -> Result<OwnedFd, Stat>;

/// Answer one NLM call.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    nlm: &Nlm,
    open_file: Opener<'_>,
    origin: &Origin,
    version: u32,
    procedure: u32,
    args: &[u8],
    out: &mut Vec<u8>,
    rec: &mut OpRecord,
) -> Result<(), AcceptError> {
    if procedure >= 20 && version < 3 {
        return Err(AcceptError::ProcUnavail);
    }
    let client = origin.peer.ip();
    nlm.callbacks.queue.heard_from(client);
    let mut r = XdrReader::new(args);
    // The `_MSG` procedures (6 to 9) answer as the synchronous ones (1 to 4) would, in a
    // `_RES` call (11 to 14) instead of the reply.
    let (base, msg) = match procedure {
        6..=9 => (procedure - 5, true),
        p => (p, false),
    };
    let mut body = Vec::new();
    let stat = match base {
        0 => None,
        1 => {
            let cookie = r.opaque(MAX_STRING)?.to_vec();
            let exclusive = r.bool()?;
            let lock = read_lock(&mut r, version)?;
            let result = if nlm.locks.in_grace() {
                Err(Stat::DeniedGrace)
            } else {
                let req = request(origin, &lock, exclusive);
                nlm.locks.test(&req, || open_file(&lock.fh, false, rec))
            };
            let stat = match &result {
                Ok(None) => Stat::Granted,
                Ok(Some(_)) => Stat::Denied,
                Err(s) => *s,
            };
            put_testres(&mut body, version, &cookie, result);
            Some(stat)
        }
        2 | 22 => {
            let cookie = r.opaque(MAX_STRING)?.to_vec();
            let block = r.bool()?;
            let exclusive = r.bool()?;
            let lock = read_lock(&mut r, version)?;
            let reclaim = r.bool()?;
            let _state = r.u32()?;
            let stat = if nlm.locks.in_grace() && !reclaim {
                Stat::DeniedGrace
            } else {
                let req = request(origin, &lock, exclusive);
                let server = origin.local_ip();
                let notice = (block && base == 2).then(|| Notice {
                    version,
                    cookie: cookie.clone(),
                    exclusive,
                    lock: lock.clone(),
                    server,
                });
                if base == 2 {
                    // Monitored before the lock is granted, so a restart just after it
                    // still tells the client to reclaim.
                    nlm.monitor.monitor(Peer {
                        client,
                        server,
                        caller_name: req.caller_name.clone(),
                    });
                }
                let stat = nlm
                    .locks
                    .lock(req, notice, || open_file(&lock.fh, exclusive, rec));
                if stat == Stat::Blocked {
                    tracing::debug!(%client, svid = lock.svid, "NLM lock request waits for its holder");
                }
                if reclaim && stat == Stat::Granted {
                    tracing::info!(%client, svid = lock.svid, "NLM lock reclaimed after a restart");
                }
                stat
            };
            put_res(&mut body, version, &cookie, stat);
            Some(stat)
        }
        3 => {
            let cookie = r.opaque(MAX_STRING)?.to_vec();
            let _block = r.bool()?;
            let exclusive = r.bool()?;
            let lock = read_lock(&mut r, version)?;
            let stat = if nlm.locks.in_grace() {
                Stat::DeniedGrace
            } else {
                nlm.locks.cancel(&request(origin, &lock, exclusive))
            };
            put_res(&mut body, version, &cookie, stat);
            Some(stat)
        }
        4 => {
            let cookie = r.opaque(MAX_STRING)?.to_vec();
            let lock = read_lock(&mut r, version)?;
            let stat = if nlm.locks.in_grace() {
                Stat::DeniedGrace
            } else {
                let req = request(origin, &lock, false);
                nlm.locks.unlock(&req.owner, &req.fh, req.range)
            };
            put_res(&mut body, version, &cookie, stat);
            Some(stat)
        }
        // GRANTED is for a client's lock manager; we hold no blocked requests elsewhere.
        5 => {
            let cookie = r.opaque(MAX_STRING)?.to_vec();
            r.bool()?;
            read_lock(&mut r, version)?;
            put_res(&mut body, version, &cookie, Stat::Denied);
            Some(Stat::Denied)
        }
        // GRANTED_MSG and the `_RES` answers: nothing here waits for them.
        10..=15 => None,
        20 | 21 => {
            let cookie = r.opaque(MAX_STRING)?.to_vec();
            let caller_name = String::from_utf8_lossy(r.opaque(MAX_STRING)?).into_owned();
            let fh = r.opaque(MAX_STRING)?.to_vec();
            let oh = r.opaque(MAX_STRING)?.to_vec();
            let deny = r.u32()?;
            let access = r.u32()?;
            let reclaim = r.bool()?;
            if deny > 3 || access > 3 {
                return Err(AcceptError::GarbageArgs);
            }
            let stat = if nlm.locks.in_grace() && !(reclaim && base == 20) {
                Stat::DeniedGrace
            } else if base == 20 {
                match open_file(&fh, false, rec) {
                    Ok(_) => nlm
                        .locks
                        .share(client, &caller_name, &oh, &fh, access, deny),
                    Err(stat) => stat,
                }
            } else {
                nlm.locks.unshare(client, &oh, &fh)
            };
            put_opaque(&mut body, &cookie);
            put_u32(&mut body, stat.code(version));
            put_u32(&mut body, 0); // sequence
            Some(stat)
        }
        23 => {
            let name = String::from_utf8_lossy(r.opaque(MAX_STRING)?).into_owned();
            let _state = r.u32()?;
            let freed = nlm.locks.free_client(Some(&name), None);
            tracing::info!(%client, name, freed, "NLM FREE_ALL: the client's locks are released");
            None
        }
        _ => return Err(AcceptError::ProcUnavail),
    };
    if let Some(stat) = stat {
        rec.status = Some(stat as u32);
    }
    if msg {
        nlm.callbacks.queue(Job::Res {
            client,
            version,
            procedure: base + 10,
            body,
        });
    } else {
        out.extend_from_slice(&body);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(_version: u32) -> Lock {
        Lock {
            caller_name: b"suite-3".to_vec(),
            fh: vec![1; 40],
            oh: b"1234@suite-3".to_vec(),
            svid: 1234,
            offset: 4096,
            len: 100,
        }
    }

    #[test]
    fn locks_roundtrip_in_both_widths() {
        for version in [1, 3, 4] {
            let mut out = Vec::new();
            put_lock(&mut out, version, &lock(version));
            let expected = 4 + 8 + 4 + 40 + 4 + 12 + 4 + if version == 4 { 16 } else { 8 };
            assert_eq!(out.len(), expected);
            let mut r = XdrReader::new(&out);
            assert_eq!(read_lock(&mut r, version).unwrap(), lock(version));
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn malformed_locks_are_garbage() {
        let mut out = Vec::new();
        put_lock(&mut out, 4, &lock(4));
        for cut in [0, 3, 11, 30, out.len() - 1] {
            assert_eq!(read_lock(&mut XdrReader::new(&out[..cut]), 4), Err(Garbage));
        }
        // A length past what the wire holds, or past the protocol's limit.
        let mut huge = Vec::new();
        put_u32(&mut huge, 2000);
        huge.extend_from_slice(&[0; 2000]);
        assert_eq!(read_lock(&mut XdrReader::new(&huge), 4), Err(Garbage));
    }

    #[test]
    fn test_results_name_the_holder() {
        let mut out = Vec::new();
        let holder = Holder {
            exclusive: true,
            svid: 9,
            oh: b"oh".to_vec(),
            range: Range { start: 1, len: 0 },
        };
        put_testres(&mut out, 4, b"c", Ok(Some(holder)));
        let mut r = XdrReader::new(&out);
        assert_eq!(r.opaque(8).unwrap(), b"c");
        assert_eq!(r.u32().unwrap(), 1);
        assert!(r.bool().unwrap());
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.opaque(8).unwrap(), b"oh");
        assert_eq!((r.u64().unwrap(), r.u64().unwrap()), (1, 0));
        let mut old = Vec::new();
        put_testres(&mut old, 1, b"", Err(Stat::StaleFh));
        assert_eq!(&old[4..], &2u32.to_be_bytes());
    }

    #[test]
    fn procedure_names() {
        assert_eq!(proc_name(7), "LOCK_MSG");
        assert_eq!(proc_name(23), "FREE_ALL");
        assert_eq!(proc_name(17), "UNKNOWN");
        assert_eq!(proc_name(99), "UNKNOWN");
    }
}
