//! The front ends: ONC RPC over TCP (record marking) and UDP (one call a datagram),
//! limits, the duplicate request cache, and dispatch to the programs.
//!
//! Each TCP connection has a thread of its own that reads its calls and answers those
//! that come alone itself (one request in flight: no hand-off between threads); calls
//! that come while others are outstanding queue per client and user for a fixed set of
//! workers that take the queues in turn ([`crate::fair`]), up to [`MAX_IN_FLIGHT`] of a
//! connection at once. When that many are outstanding the thread stops reading,
//! so a client flooding requests is slowed by TCP itself instead of growing our
//! memory. A record larger than [`MAX_RECORD`] closes the connection: no legal call is
//! that big (a 1 MiB WRITE plus headers is far smaller). UDP carries the portmapper,
//! MOUNT, NLM and NSM (not NFS); past [`MAX_IN_FLIGHT`] datagrams being answered, more
//! are dropped, and the client sends them again.
//!
//! Every listener answers every program, so the portmapper's port (111) and the NFS port
//! (2049) serve alike; the portmapper tells clients to use the NFS port.
//!
//! What one client may hold of the server (connections, time to send a record, memory
//! for records still arriving) is in [`crate::connections`]; warnings about what clients
//! send are rate-limited per address and kind ([`crate::peer_warnings`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use std::io::{BufRead, Read, Write};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;

use crate::activity::OpRecord;
use crate::connections::{Admitted, Connection, ConnectionLimits, Connections, Expired};
use crate::drc::{CallKey, Lookup};
use crate::fair::{self, FairQueue, Flow};
use crate::nfs3::{self, FileTail, NfsCall, Written};
use crate::rpc::{self, AcceptError, CallError, Credential, Origin, Transport, RPC_VERSION};
use crate::service::Service;
use crate::{mount, nlm, nsm, portmap};

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

/// Largest RPC record accepted: a maximal WRITE (1 MiB) plus generous header room.
pub const MAX_RECORD: usize = nfs3::MAX_IO as usize + 64 * 1024;
/// Calls one connection may have outstanding before we stop reading from it.
pub const MAX_IN_FLIGHT: usize = 64;

/// An encoded reply (starting with four bytes reserved for the record mark), maybe
/// followed on the wire by file data.
struct Reply {
    encoded: Vec<u8>,
    tail: Option<FileTail>,
    /// The NFS procedure answered, for the connection's view of how its client works.
    nfs_procedure: Option<u32>,
    /// An UNSTABLE WRITE's range, to start writing to disk after the reply.
    written: Option<Written>,
}

impl Reply {
    fn encoded(encoded: Vec<u8>) -> Reply {
        Reply {
            encoded,
            tail: None,
            nfs_procedure: None,
            written: None,
        }
    }
}

/// How a connection's client sends WRITEs, told from the calls that come alone.
#[derive(Default)]
struct WritePattern {
    /// UNSTABLE WRITEs answered back to back just now.
    writes_in_a_row: u32,
    /// The client COMMITs after each WRITE (its last COMMIT came right after a single
    /// WRITE): start each WRITE's write-out at its reply.
    commits_each_write: bool,
}

impl WritePattern {
    /// Note the procedure just answered; whether its data should go to disk now.
    fn answered(&mut self, procedure: Option<u32>, wrote: bool) -> bool {
        const WRITE: u32 = 7;
        const COMMIT: u32 = 21;
        match procedure {
            Some(WRITE) if wrote => {
                self.writes_in_a_row += 1;
                if self.writes_in_a_row > 1 {
                    // WRITEs back to back: a stream, committed at its end.
                    self.commits_each_write = false;
                }
                self.commits_each_write
            }
            Some(COMMIT) => {
                self.commits_each_write = self.writes_in_a_row == 1;
                self.writes_in_a_row = 0;
                false
            }
            _ => {
                self.writes_in_a_row = 0;
                false
            }
        }
    }
}

/// Bound listeners serving a [`Service`].
pub struct NfsServer {
    listener: TcpListener,
    udp: UdpSocket,
    /// The portmapper's own TCP and UDP sockets (port 111), if it has them.
    portmap: Option<(TcpListener, UdpSocket)>,
    service: Arc<Service>,
    poll_window: Duration,
    limits: ConnectionLimits,
    /// Threads answering pipelined calls (see [`crate::fair`]).
    workers: usize,
}

/// Threads answering pipelined calls unless told otherwise: four a core, at least 16,
/// so that disks see a queue deep enough while no client can take every core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(16, |n| (4 * n.get()).max(16))
}

/// How long a connection whose client sends its calls one at a time, each soon after
/// the last reply, polls for the next call before its thread sleeps (see
/// [`NfsServer::with_poll_window`]).
pub const POLL_WINDOW: Duration = Duration::from_micros(100);

/// A UDP socket on the same port as `tcp` (on an ephemeral TCP port, that UDP port may be
/// taken: try a few other ephemeral ports for both).
async fn bind_pair(addr: SocketAddr) -> std::io::Result<(TcpListener, UdpSocket)> {
    let mut last = None;
    for _ in 0..16 {
        let tcp = TcpListener::bind(addr).await?;
        let bound = tcp.local_addr()?;
        match UdpSocket::bind(bound).await {
            Ok(udp) => return Ok((tcp, udp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
}

impl NfsServer {
    /// Listen on `addr` (TCP and UDP); the service may be shared with whoever adds and
    /// removes shares.
    pub async fn bind(addr: SocketAddr, service: impl Into<Arc<Service>>) -> std::io::Result<Self> {
        let service = service.into();
        let (listener, udp) = bind_pair(addr).await?;
        service
            .port
            .store(listener.local_addr()?.port(), Ordering::Relaxed);
        Ok(Self {
            listener,
            udp,
            portmap: None,
            service,
            poll_window: POLL_WINDOW,
            limits: ConnectionLimits::default(),
            workers: default_workers(),
        })
    }

    /// Answer pipelined calls on this many threads.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Hold clients to these limits instead of the defaults.
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Poll for a chaining client's next call this long before sleeping (zero: never
    /// poll). Polling spends up to that much CPU per call to save the wake-up of a
    /// sleeping thread, which is most of a small call's round trip.
    pub fn with_poll_window(mut self, window: Duration) -> Self {
        self.poll_window = window;
        self
    }

    /// Also answer on `addr` (TCP and UDP), the portmapper's port: 111 for clients that
    /// are not told the ports.
    /// On failure the server is handed back, still serving on its own port.
    pub async fn with_portmap(mut self, addr: SocketAddr) -> Result<Self, (Self, std::io::Error)> {
        let (tcp, udp) = match bind_pair(addr).await {
            Ok(pair) => pair,
            Err(e) => return Err((self, e)),
        };
        let port = tcp.local_addr().map_or(addr.port(), |a| a.port());
        self.service.portmap_port.store(port, Ordering::Relaxed);
        self.portmap = Some((tcp, udp));
        Ok(self)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The portmapper's address, if it listens on a port of its own.
    pub fn portmap_addr(&self) -> Option<SocketAddr> {
        self.portmap.as_ref().and_then(|(t, _)| t.local_addr().ok())
    }

    /// Accept and serve connections and datagrams until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.service.announce_restart();
        let Self {
            listener,
            udp,
            portmap,
            service,
            poll_window,
            limits,
            workers,
        } = self;
        let connections = Connections::new(limits);
        let fair = match FairQueue::start(workers, Arc::clone(&service.rates)) {
            Ok(fair) => Arc::new(fair),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the NFS workers; not serving");
                return;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(watchdog(Arc::clone(&connections), Arc::clone(&service)));
        let serving = (
            Arc::clone(&service),
            Arc::clone(&connections),
            fair,
            poll_window,
        );
        tasks.spawn(accept_loop(listener, serving.clone()));
        tasks.spawn(serve_udp(udp, Arc::clone(&service)));
        if let Some((tcp, udp)) = portmap {
            tasks.spawn(accept_loop(tcp, serving));
            tasks.spawn(serve_udp(udp, Arc::clone(&service)));
        }
        shutdown.await;
        tasks.abort_all();
        tracing::info!("stopped accepting connections");
    }
}

/// Once a second: close the connections past their record or idle timeout, and write
/// the lines of warnings held back.
async fn watchdog(connections: Arc<Connections>, service: Arc<Service>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limits = *connections.limits();
    loop {
        tick.tick().await;
        for (peer, why) in connections.expire() {
            match why {
                Expired::HalfSentRecord => crate::peer_warn!(
                    service.warnings,
                    peer.ip(),
                    "half-sent record",
                    %peer,
                    timeout_s = limits.record_timeout.as_secs_f64(),
                    "a call did not arrive whole in time; connection closed"
                ),
                Expired::Idle => tracing::debug!(%peer, "idle connection closed"),
            }
        }
        service.warnings.log_held_back();
    }
}

/// What every connection is served with.
type Serving = (Arc<Service>, Arc<Connections>, Arc<FairQueue>, Duration);

async fn accept_loop(listener: TcpListener, (service, connections, fair, poll_window): Serving) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let stream = match stream.into_std().and_then(|s| {
                    s.set_nonblocking(false)?;
                    Ok(s)
                }) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "cannot take the connection; closed");
                        continue;
                    }
                };
                let admitted = match connections.admit(peer, &stream) {
                    Ok(admitted) => admitted,
                    Err(refused) => {
                        crate::peer_warn!(
                            service.warnings,
                            peer.ip(),
                            "connection refused",
                            %peer,
                            "{refused}; connection closed"
                        );
                        continue;
                    }
                };
                let (service, fair) = (service.clone(), fair.clone());
                let spawned = std::thread::Builder::new()
                    .name("nfs-conn".into())
                    .spawn(move || serve_connection(stream, admitted, service, fair, poll_window));
                if let Err(e) = spawned {
                    tracing::warn!(%peer, error = %e, "no thread for the connection; closed");
                }
            }
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin.
                crate::peer_warn!(
                    service.warnings,
                    crate::peer_warnings::OTHERS,
                    "accept failed",
                    error = %e,
                    "cannot accept a connection"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The largest datagram read: UDP carries no NFS, so no call comes near it.
const MAX_DATAGRAM: usize = 65_536;

async fn serve_udp(socket: UdpSocket, service: Arc<Service>) {
    let socket = Arc::new(socket);
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let per_client = InFlightByClient::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many UDP calls in flight; datagram dropped");
            continue;
        };
        let Some(turn) = ClientTurn::take(&per_client, peer.ip()) else {
            tracing::debug!(%peer, "the client has its share of UDP calls in flight; datagram dropped");
            continue;
        };
        let record = buf[..n].to_vec();
        let (service, socket) = (service.clone(), socket.clone());
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let origin = Origin {
                peer,
                local,
                transport: Transport::Udp,
            };
            if let Some(reply) = answer(&service, &origin, &record) {
                // No file data follows a UDP reply: READ is not served over UDP.
                let _ = socket.try_send_to(&reply.encoded[4..], peer);
            }
            drop(permit);
        });
    }
}

/// UDP calls one client address may have in flight: a client flooding datagrams has its
/// own dropped past this, and the others' still find room.
const UDP_IN_FLIGHT_PER_CLIENT: usize = MAX_IN_FLIGHT / 4;

/// UDP calls in flight, by client address.
type InFlightByClient = Arc<Mutex<std::collections::HashMap<IpAddr, usize>>>;

/// One of a client's UDP calls in flight, given back when dropped.
struct ClientTurn {
    counts: InFlightByClient,
    client: IpAddr,
}

impl ClientTurn {
    fn take(counts: &InFlightByClient, client: IpAddr) -> Option<ClientTurn> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(client).or_insert(0);
        if *n >= UDP_IN_FLIGHT_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(ClientTurn {
            counts: Arc::clone(counts),
            client,
        })
    }
}

impl Drop for ClientTurn {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// A client that reads none of its replies for this long is disconnected, so that it
/// cannot hold the threads answering it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve one TCP connection on a thread of its own, with blocking I/O.
///
/// The short path: a call that arrives alone (nothing else of this connection being
/// answered, no further call already received) is answered on this thread and its reply
/// written from here, so one request in flight costs no hand-off between threads. Calls
/// that arrive while others are outstanding (a pipelining client) go to the blocking
/// pool, up to [`MAX_IN_FLIGHT`] at once; whoever finishes a reply writes it.
fn serve_connection(
    stream: std::net::TcpStream,
    conn: Admitted,
    service: Arc<Service>,
    fair: Arc<FairQueue>,
    poll_window: Duration,
) {
    let peer = conn.peer();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    tracing::debug!(%peer, "connection opened");
    let origin = Origin {
        peer,
        local: stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        transport: Transport::Tcp,
    };
    let writer = match stream.try_clone() {
        Ok(socket) => Arc::new(ReplyWriter {
            socket: Mutex::new(socket),
        }),
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot set up the connection; closing it");
            return;
        }
    };
    let in_flight = Arc::new(InFlight::default());
    let mut rd = std::io::BufReader::with_capacity(256 * 1024, stream);
    // The client is answering in a chain (its next call came soon after our last reply):
    // then poll for the next call a little while before sleeping.
    let mut chained = false;
    let mut replied_at: Option<Instant> = None;
    let mut pattern = WritePattern::default();
    // The rate rule this client is under, if any, looked up again when the admin
    // changes the rules; a reserved client's bulk work keeps the normal priority.
    let mut rules = service.rates.current();
    let mut cap = rules.rule_for(peer.ip());
    let mut reserved = cap.is_some_and(|c| rules.reserves(c));
    // Reading a pipelining client's big WRITEs is bulk work too.
    let mut priority = fair::Niceness::default();
    loop {
        if chained && rd.buffer().is_empty() {
            poll_for_call(rd.get_ref(), poll_window);
        }
        // Whether the client chains its calls is told by when the next call's first
        // bytes came, not by when all of it was read: reading a 1 MiB WRITE alone takes
        // longer than the window, and the COMMIT after it would find this thread asleep.
        match rd.fill_buf() {
            Ok([]) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                connection_ended(&service, &conn, &e);
                break;
            }
        }
        conn.record_started();
        chained = replied_at
            .take()
            .is_some_and(|at| at.elapsed() < 2 * poll_window);
        let record = match read_record(&mut rd, &conn) {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                connection_ended(&service, &conn, &e);
                break;
            }
        };
        conn.record_finished();
        if !service.rates.is_current(&rules) {
            rules = service.rates.current();
            cap = rules.rule_for(peer.ip());
            reserved = cap.is_some_and(|c| rules.reserves(c));
        }
        // Counted in all until answered; past the budget this connection waits here.
        let held = conn.connections().hold(record.len());
        let alone = in_flight.is_idle()
            && rd.buffer().is_empty()
            && rustix::io::ioctl_fionread(rd.get_ref()).unwrap_or(1) == 0;
        if alone {
            priority.bulk(false);
            conn.answering();
            let reply = if cap.is_none() && !rules.by_share() {
                answer(&service, &origin, &record)
            } else {
                let parsed = rpc::parse_call(&record);
                let call = scheduling(peer.ip(), &record, &parsed);
                let cap = if rules.by_share() {
                    rules.rule_for_call(peer.ip(), call.share)
                } else {
                    cap
                };
                if let Some(cap) = cap.filter(|_| call.cost > fair::SMALL_CALL) {
                    // Over its cap, the client's call waits here: slowed, not refused.
                    rules.wait_and_take(cap, call.cost);
                }
                answer_parsed(&service, &origin, &record, parsed, Instant::now())
            };
            conn.answered();
            if let Some(mut reply) = reply {
                let written = reply.written.take();
                let write_out = pattern.answered(reply.nfs_procedure, written.is_some());
                if let Err(e) = writer.send(reply) {
                    tracing::debug!(%peer, error = %e, "reply not sent; closing connection");
                    break;
                }
                if let Some(w) = written.filter(|_| write_out) {
                    w.start_write_out();
                }
            }
            replied_at = Some(Instant::now());
            continue;
        }
        // Calls in flight together: a stream, whose data the page cache gathers.
        pattern = WritePattern::default();
        in_flight.acquire();
        conn.answering();
        let (service, writer, in_flight) = (service.clone(), writer.clone(), in_flight.clone());
        let conn = conn.shared();
        let parsed = rpc::parse_call(&record);
        let mut call = scheduling(peer.ip(), &record, &parsed);
        if rules.by_share() {
            call.flow.share = call.share;
        }
        let reserved = if rules.by_share() {
            rules
                .rule_for_call(peer.ip(), call.share)
                .is_some_and(|c| rules.reserves(c))
        } else {
            reserved
        };
        if call.cost >= fair::BULK && !reserved {
            priority.bulk(true);
        }
        fair.push(
            call.flow,
            call.share,
            call.cost,
            Box::new(move || {
                let _held = held;
                let started = Instant::now();
                if let Some(reply) = answer_parsed(&service, &origin, &record, parsed, started) {
                    if let Err(e) = writer.send(reply) {
                        tracing::debug!(%peer, error = %e, "reply not sent; closing connection");
                        writer.close();
                    }
                }
                conn.answered();
                in_flight.release();
            }),
        );
    }
    tracing::debug!(%peer, "connection closed");
}

/// What the queues and rate rules need of a call.
struct Scheduling {
    /// Whose queue it joins.
    flow: Flow,
    /// The share its file handle names (every NFSv3 call but NULL starts with one).
    share: Option<u32>,
    /// What it counts: READ the bytes asked for, WRITE the bytes sent, anything else
    /// [`fair::SMALL_CALL`].
    cost: u64,
}

fn scheduling(
    client: IpAddr,
    record: &[u8],
    parsed: &Result<rpc::CallHeader, CallError>,
) -> Scheduling {
    const READ: u32 = 6;
    const WRITE: u32 = 7;
    let Ok(call) = parsed else {
        return Scheduling {
            flow: Flow {
                client,
                uid: None,
                share: None,
            },
            share: None,
            cost: fair::SMALL_CALL,
        };
    };
    let uid = match &call.credential {
        Ok(Credential::Sys(sys)) => Some(sys.uid),
        _ => None,
    };
    let cost = match (call.program, call.procedure) {
        (nfs3::PROGRAM, READ) => {
            // READ3args: the handle (length and padded bytes), offset, count.
            let args = &record[call.args_offset..];
            let word = |at: usize| {
                args.get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            };
            word(0)
                .and_then(|fh| word(4 + fh.div_ceil(4) * 4 + 8))
                .map_or(fair::SMALL_CALL, |count| {
                    (count as u64).min(nfs3::MAX_IO as u64)
                })
        }
        (nfs3::PROGRAM, WRITE) => record.len() as u64,
        _ => fair::SMALL_CALL,
    };
    // nfs_fh3: its length, then our handle, whose bytes 1..5 are the share id.
    let share = (call.program == nfs3::PROGRAM && call.procedure != 0)
        .then(|| record.get(call.args_offset..)?.get(..9))
        .flatten()
        .filter(|fh| u32::from_be_bytes([fh[0], fh[1], fh[2], fh[3]]) >= 5)
        .map(|fh| u32::from_be_bytes([fh[5], fh[6], fh[7], fh[8]]));
    Scheduling {
        flow: Flow {
            client,
            uid,
            share: None,
        },
        share,
        cost: cost.max(fair::SMALL_CALL),
    }
}

/// Say why a connection ended on an error: what the client did wrong is a warning,
/// rate-limited per client and kind; a client going away is not.
fn connection_ended(service: &Service, conn: &Connection, e: &std::io::Error) {
    let peer = conn.peer();
    use std::io::ErrorKind::*;
    match (conn.expired(), e.kind()) {
        // The watchdog said so already.
        (Some(_), _) => {}
        (None, InvalidData) => crate::peer_warn!(
            service.warnings,
            peer.ip(),
            "oversized record",
            %peer,
            error = %e,
            "closing connection"
        ),
        (None, UnexpectedEof) => crate::peer_warn!(
            service.warnings,
            peer.ip(),
            "record cut short",
            %peer,
            "the client closed its connection in the middle of a call"
        ),
        (None, ConnectionReset | ConnectionAborted | BrokenPipe) => {
            tracing::debug!(%peer, error = %e, "connection reset by the client")
        }
        (None, _) => crate::peer_warn!(
            service.warnings,
            peer.ip(),
            "connection error",
            %peer,
            error = %e,
            "closing connection"
        ),
    }
}

/// Connection threads polling for their next call right now.
static POLLERS: AtomicUsize = AtomicUsize::new(0);

/// Wait up to `window` for a call to arrive on `socket`, spinning instead of sleeping:
/// waking a sleeping thread (and its idle core) costs far more than answering a GETATTR.
/// At most half the cores poll at once; the others sleep at once.
fn poll_for_call(socket: &std::net::TcpStream, window: Duration) {
    if window.is_zero() {
        return;
    }
    static MOST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let most = *MOST
        .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)));
    if POLLERS.fetch_add(1, Ordering::Relaxed) >= most {
        POLLERS.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let until = Instant::now() + window;
    while rustix::io::ioctl_fionread(socket).unwrap_or(1) == 0 && Instant::now() < until {
        std::thread::yield_now();
    }
    POLLERS.fetch_sub(1, Ordering::Relaxed);
}

/// Calls of one connection being answered on the pool, at most [`MAX_IN_FLIGHT`].
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    freed: Condvar,
}

impl InFlight {
    fn is_idle(&self) -> bool {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) == 0
    }

    /// Take a slot, waiting while all are taken: the connection is not read meanwhile,
    /// so a flooding client is slowed by TCP itself.
    fn acquire(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count >= MAX_IN_FLIGHT {
            count = self.freed.wait(count).unwrap_or_else(|e| e.into_inner());
        }
        *count += 1;
    }

    fn release(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        self.freed.notify_one();
    }
}

/// The sending side of a connection: one reply at a time, each whole.
struct ReplyWriter {
    socket: Mutex<std::net::TcpStream>,
}

impl ReplyWriter {
    fn send(&self, mut reply: Reply) -> std::io::Result<()> {
        let tail_len = reply
            .tail
            .as_ref()
            .map_or(0, |t| t.len + crate::xdr::pad(t.len));
        let len = (reply.encoded.len() - 4 + tail_len) as u32 | 0x8000_0000;
        reply.encoded[..4].copy_from_slice(&len.to_be_bytes());
        let mut socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        match reply.tail {
            None => socket.write_all(&reply.encoded),
            Some(tail) => {
                // The header waits for the data (MSG_MORE): one segment, not two.
                send_more(&socket, &reply.encoded)?;
                send_file(&mut socket, &tail)?;
                socket.write_all(&[0u8; 3][..crate::xdr::pad(tail.len)])
            }
        }
    }

    /// Shut the connection down (a reply could not be sent whole: the stream is no
    /// longer in step).
    fn close(&self) {
        let socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}

/// Write all of `bytes`, telling the kernel that more follows.
fn send_more(socket: &std::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(socket, bytes, rustix::net::SendFlags::MORE) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Read one record (all its fragments). `Ok(None)` at a clean end of stream. Beyond its
/// first [`SMALL_RECORD`](crate::connections::SMALL_RECORD) bytes, a record takes its
/// room from the budget all connections share, waiting for it if need be.
fn read_record(rd: &mut impl BufRead, conn: &Admitted) -> std::io::Result<Option<Vec<u8>>> {
    let mut record = Vec::new();
    let mut reserved = Vec::new();
    let mut budgeted = crate::connections::SMALL_RECORD;
    loop {
        let mut mark = [0u8; 4];
        if let Err(e) = rd.read_exact(&mut mark) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof && record.is_empty() {
                return Ok(None);
            }
            return Err(e);
        }
        let mark = u32::from_be_bytes(mark);
        let last = mark & 0x8000_0000 != 0;
        let len = (mark & 0x7fff_ffff) as usize;
        if record.len() + len > MAX_RECORD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("RPC record larger than {MAX_RECORD} bytes"),
            ));
        }
        let need = (record.len() + len).saturating_sub(budgeted);
        if need > 0 {
            match conn.connections().reserve(conn, need) {
                Some(r) => reserved.push(r),
                None => return Err(std::io::ErrorKind::TimedOut.into()),
            }
            budgeted += need;
        }
        // Reserve only what was announced (bounded above), then take it as it comes.
        record.reserve_exact(len);
        let got = rd.take(len as u64).read_to_end(&mut record)?;
        if got < len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if last {
            return Ok(Some(record));
        }
    }
}

/// Send `tail.len` bytes of the file to the socket with sendfile(2): from the page cache
/// to the socket without passing through our memory. Zeros stand in for bytes the file
/// no longer has (truncated since the reply was encoded), keeping the record's length.
fn send_file(socket: &mut std::net::TcpStream, tail: &FileTail) -> std::io::Result<()> {
    let mut offset = tail.offset;
    let mut left = tail.len;
    while left > 0 {
        match rustix::fs::sendfile(&*socket, &tail.file, Some(&mut offset), left) {
            Ok(0) => {
                let zeros = vec![0u8; left];
                socket.write_all(&zeros)?;
                left = 0;
            }
            Ok(n) => left -= n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Calls whose replies the duplicate request cache keeps: those that change something
/// and would answer differently, or act twice, if carried out again.
fn non_idempotent(program: u32, procedure: u32) -> bool {
    match program {
        // SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK.
        nfs3::PROGRAM => matches!(procedure, 2 | 7..=15),
        // LOCK, CANCEL, UNLOCK, SHARE, UNSHARE, NM_LOCK.
        nlm::PROGRAM => matches!(procedure, 2..=4 | 20..=22),
        _ => false,
    }
}

/// Answer one record; `None` when there is nothing to answer (or nothing yet: a
/// retransmission of a call still being answered).
fn answer(service: &Service, origin: &Origin, record: &[u8]) -> Option<Reply> {
    let started = Instant::now();
    answer_parsed(service, origin, record, rpc::parse_call(record), started)
}

/// [`answer`] with the call's header parsed already (`started` when its answering began).
fn answer_parsed(
    service: &Service,
    origin: &Origin,
    record: &[u8],
    parsed: Result<rpc::CallHeader, CallError>,
    started: Instant,
) -> Option<Reply> {
    let call = match &parsed {
        Ok(call)
            if call.rpc_version == RPC_VERSION && non_idempotent(call.program, call.procedure) =>
        {
            call
        }
        _ => return answer_once(service, origin, record, parsed, started),
    };
    let key = CallKey::new(
        origin.peer.ip(),
        call.xid,
        call.program,
        call.version,
        call.procedure,
        &record[call.args_offset..],
    );
    match service.replies.begin(key) {
        Lookup::New => {}
        Lookup::InProgress => {
            tracing::debug!(client = %origin.peer, xid = call.xid, "retransmission of a call being answered; dropped");
            return None;
        }
        Lookup::Replay(encoded) => {
            tracing::debug!(client = %origin.peer, xid = call.xid, "retransmission answered from the reply cache");
            return Some(Reply::encoded(encoded));
        }
    }
    let reply = answer_once(service, origin, record, parsed, started);
    let keep = reply
        .as_ref()
        .filter(|r| r.tail.is_none())
        .map(|r| r.encoded.as_slice());
    service.replies.finish(key, keep);
    reply
}

/// Answer one call, parsed already (the duplicate request cache looked at its header).
fn answer_once(
    service: &Service,
    origin: &Origin,
    record: &[u8],
    parsed: Result<rpc::CallHeader, CallError>,
    started: Instant,
) -> Option<Reply> {
    let client = origin.peer.ip();
    let encoded = |encoded: Vec<u8>| Some(Reply::encoded(encoded));
    let call = match parsed {
        Ok(call) => call,
        Err(CallError::Malformed { xid }) => {
            crate::peer_warn!(service.warnings, client, "malformed call", %client, xid, "malformed RPC header; answered GARBAGE_ARGS");
            return encoded(rpc::reply_accept_error(xid, AcceptError::GarbageArgs));
        }
        Err(CallError::Unparseable) => {
            crate::peer_warn!(service.warnings, client, "malformed call", %client, "record too short to be an RPC call; ignored");
            return None;
        }
    };
    if call.rpc_version != RPC_VERSION {
        return encoded(rpc::reply_rpc_mismatch(call.xid));
    }
    let (protocol, op) = match call.program {
        nfs3::PROGRAM => ("nfs3", nfs3::proc_name(call.procedure)),
        mount::PROGRAM => ("mount3", mount::proc_name(call.procedure)),
        portmap::PROGRAM => ("portmap", portmap::proc_name(call.version, call.procedure)),
        nlm::PROGRAM => ("nlm", nlm::proc_name(call.procedure)),
        nsm::PROGRAM => ("nsm", nsm::proc_name(call.procedure)),
        _ => ("rpc", "UNKNOWN"),
    };
    let mut rec = OpRecord::new(client, protocol, op);
    let auth = match &call.credential {
        Ok(Credential::Sys(sys)) => Some(sys),
        Ok(Credential::None) => None,
        Err(e) => {
            rec.latency = Some(started.elapsed());
            service.observer.record_owned(rec);
            return encoded(rpc::reply_auth_error(call.xid, *e));
        }
    };
    let args = &record[call.args_offset..];
    let mut out = rpc::reply_success(call.xid, 256);
    let mut tail = None;
    let mut written = None;
    let result = match (call.program, call.version) {
        // NFS is not offered over UDP (the portmapper says so).
        (nfs3::PROGRAM, _) if origin.transport == Transport::Udp => Err(AcceptError::ProgUnavail),
        (nfs3::PROGRAM, nfs3::VERSION) => {
            let mut nfs = NfsCall {
                svc: service,
                client,
                auth,
                rec: &mut rec,
                tail: None,
                written: None,
            };
            let result = nfs.dispatch(call.procedure, args, &mut out);
            tail = nfs.tail.take();
            written = nfs.written.take();
            result
        }
        (nfs3::PROGRAM, _) => Err(AcceptError::ProgMismatch { low: 3, high: 3 }),
        (mount::PROGRAM, 1 | 3) => mount::dispatch(
            service,
            client,
            call.version,
            call.procedure,
            args,
            &mut out,
            &mut rec,
        ),
        (mount::PROGRAM, _) => Err(AcceptError::ProgMismatch { low: 1, high: 3 }),
        (portmap::PROGRAM, 2..=4) => portmap::dispatch(
            &service.endpoints(origin.local.is_ipv6() && !is_v4_mapped(origin.local.ip())),
            origin.local_ip(),
            call.version,
            call.procedure,
            args,
            &mut out,
        ),
        (portmap::PROGRAM, _) => Err(AcceptError::ProgMismatch { low: 2, high: 4 }),
        (nlm::PROGRAM, 1 | 3 | 4) => nlm::dispatch(
            &service.nlm,
            &|fh: &[u8], exclusive: bool, rec: &mut OpRecord| {
                service.open_for_lock(client, fh, exclusive, rec)
            },
            origin,
            call.version,
            call.procedure,
            args,
            &mut out,
            &mut rec,
        ),
        (nlm::PROGRAM, _) => Err(AcceptError::ProgMismatch { low: 1, high: 4 }),
        (nsm::PROGRAM, nsm::VERSION) => {
            match nsm::dispatch(
                &service.nlm.monitor,
                origin.peer,
                call.procedure,
                args,
                &mut out,
            ) {
                Ok(Some(rebooted)) => {
                    let freed = service
                        .nlm
                        .locks
                        .free_client(Some(&rebooted.name), Some(client));
                    service.nlm.monitor.forget(client);
                    tracing::info!(%client, freed, "locks of the rebooted client released");
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        }
        (nsm::PROGRAM, _) => Err(AcceptError::ProgMismatch { low: 1, high: 1 }),
        _ => Err(AcceptError::ProgUnavail),
    };
    rec.latency = Some(started.elapsed());
    service.observer.record_owned(rec);
    match result {
        Ok(()) => Some(Reply {
            encoded: out,
            tail,
            nfs_procedure: (call.program == nfs3::PROGRAM).then_some(call.procedure),
            written,
        }),
        Err(e) => {
            if e == AcceptError::GarbageArgs {
                crate::peer_warn!(service.warnings, client, "undecodable arguments", %client, protocol, op, "arguments did not decode; answered GARBAGE_ARGS");
            }
            encoded(rpc::reply_accept_error(call.xid, e))
        }
    }
}

fn is_v4_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

#[cfg(test)]
mod tests {
    use super::WritePattern;

    const WRITE: Option<u32> = Some(7);
    const COMMIT: Option<u32> = Some(21);
    const GETATTR: Option<u32> = Some(1);

    #[test]
    fn write_out_starts_only_for_clients_that_commit_each_write() {
        let mut p = WritePattern::default();
        // A stream: WRITEs back to back, one COMMIT at the end. The page cache gathers
        // it; nothing is started early.
        for _ in 0..4 {
            assert!(!p.answered(WRITE, true));
        }
        assert!(!p.answered(COMMIT, false));
        // A client that COMMITs each WRITE: from its second WRITE on, each WRITE's
        // data goes to disk at the reply.
        assert!(!p.answered(WRITE, true));
        assert!(!p.answered(COMMIT, false));
        assert!(p.answered(WRITE, true));
        assert!(!p.answered(COMMIT, false));
        assert!(p.answered(WRITE, true));
        // Back to a stream: the second WRITE in a row stops it.
        assert!(!p.answered(WRITE, true));
        assert!(!p.answered(COMMIT, false));
        // Something else between a WRITE and the COMMIT: not the pattern.
        assert!(!p.answered(WRITE, true));
        assert!(!p.answered(GETATTR, false));
        assert!(!p.answered(COMMIT, false));
        assert!(!p.answered(WRITE, true));
        // A FILE_SYNC WRITE leaves nothing to start.
        assert!(!p.answered(WRITE, false));
    }
}
