//! The front ends: ONC RPC over TCP (record marking) and UDP (one call a datagram),
//! limits, the duplicate request cache, and dispatch to the programs.
//!
//! Each TCP connection has a reader task, a writer task and up to [`MAX_IN_FLIGHT`] calls
//! being answered on the blocking pool. When that many are outstanding the reader stops
//! reading, so a client flooding requests is slowed by TCP itself instead of growing our
//! memory. A record larger than [`MAX_RECORD`] closes the connection: no legal call is
//! that big (a 1 MiB WRITE plus headers is far smaller). UDP carries the portmapper,
//! MOUNT, NLM and NSM (not NFS); past [`MAX_IN_FLIGHT`] datagrams being answered, more
//! are dropped, and the client sends them again.
//!
//! Every listener answers every program, so the portmapper's port (111) and the NFS port
//! (2049) serve alike; the portmapper tells clients to use the NFS port.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::activity::OpRecord;
use crate::drc::{CallKey, Lookup};
use crate::nfs3::{self, FileTail, NfsCall};
use crate::rpc::{self, AcceptError, CallError, Credential, Origin, Transport, RPC_VERSION};
use crate::service::Service;
use crate::{mount, nlm, nsm, portmap};

/// Largest RPC record accepted: a maximal WRITE (1 MiB) plus generous header room.
pub const MAX_RECORD: usize = nfs3::MAX_IO as usize + 64 * 1024;
/// Calls one connection may have outstanding before we stop reading from it.
pub const MAX_IN_FLIGHT: usize = 64;

/// An encoded reply (starting with four bytes reserved for the record mark), maybe
/// followed on the wire by file data.
struct Reply {
    encoded: Vec<u8>,
    tail: Option<FileTail>,
}

/// Bound listeners serving a [`Service`].
pub struct NfsServer {
    listener: TcpListener,
    udp: UdpSocket,
    /// The portmapper's own TCP and UDP sockets (port 111), if it has them.
    portmap: Option<(TcpListener, UdpSocket)>,
    service: Arc<Service>,
}

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
        })
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
        } = self;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(accept_loop(listener, Arc::clone(&service)));
        tasks.spawn(serve_udp(udp, Arc::clone(&service)));
        if let Some((tcp, udp)) = portmap {
            tasks.spawn(accept_loop(tcp, Arc::clone(&service)));
            tasks.spawn(serve_udp(udp, Arc::clone(&service)));
        }
        shutdown.await;
        tasks.abort_all();
        tracing::info!("stopped accepting connections");
    }
}

async fn accept_loop(listener: TcpListener, service: Arc<Service>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let service = service.clone();
                tokio::spawn(async move { serve_connection(stream, peer, service).await });
            }
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
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
        let record = buf[..n].to_vec();
        let (service, socket) = (service.clone(), socket.clone());
        tokio::task::spawn_blocking(move || {
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

async fn serve_connection(stream: TcpStream, peer: SocketAddr, service: Arc<Service>) {
    let _ = stream.set_nodelay(true);
    tracing::debug!(%peer, "connection opened");
    let origin = Origin {
        peer,
        local: stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        transport: Transport::Tcp,
    };
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<(Reply, OwnedSemaphorePermit)>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_replies(wr, rx));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut rd = BufReader::with_capacity(256 * 1024, rd);
    loop {
        let record = match read_record(&mut rd).await {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let service = service.clone();
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(reply) = answer(&service, &origin, &record) {
                let _ = tx.blocking_send((reply, permit));
            }
        });
    }
    drop(tx);
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

/// Read one record (all its fragments). `Ok(None)` at a clean end of stream.
async fn read_record(
    rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut record = Vec::new();
    loop {
        let mark = match rd.read_u32().await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && record.is_empty() => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let last = mark & 0x8000_0000 != 0;
        let len = (mark & 0x7fff_ffff) as usize;
        if record.len() + len > MAX_RECORD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("RPC record larger than {MAX_RECORD} bytes"),
            ));
        }
        // Read into spare capacity: no zero-filling of a 1 MiB WRITE first.
        let want = record.len() + len;
        record.reserve_exact(len);
        while record.len() < want {
            let n = (&mut *rd)
                .take((want - record.len()) as u64)
                .read_buf(&mut record)
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        if last {
            return Ok(Some(record));
        }
    }
}

async fn write_replies(
    wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Reply, OwnedSemaphorePermit)>,
) -> std::io::Result<()> {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some((mut reply, permit)) = rx.recv().await {
        let tail_len = reply
            .tail
            .as_ref()
            .map_or(0, |t| t.len + crate::xdr::pad(t.len));
        let len = (reply.encoded.len() - 4 + tail_len) as u32 | 0x8000_0000;
        reply.encoded[..4].copy_from_slice(&len.to_be_bytes());
        wr.write_all(&reply.encoded).await?;
        if let Some(tail) = reply.tail {
            wr.flush().await?;
            send_file(&mut wr, &tail).await?;
            wr.write_all(&[0u8; 3][..crate::xdr::pad(tail.len)]).await?;
        }
        drop(permit);
        if rx.is_empty() {
            wr.flush().await?;
        }
    }
    wr.flush().await
}

/// Send `tail.len` bytes of the file to the socket with sendfile(2): from the page cache
/// to the socket without passing through our memory. Zeros stand in for bytes the file
/// no longer has (truncated since the reply was encoded), keeping the record's length.
async fn send_file(
    wr: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    tail: &FileTail,
) -> std::io::Result<()> {
    let mut offset = tail.offset;
    let mut left = tail.len;
    while left > 0 {
        let socket: &TcpStream = wr.get_ref().as_ref();
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(socket, &tail.file, Some(&mut offset), left)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                let zeros = vec![0u8; left];
                wr.write_all(&zeros).await?;
                left = 0;
            }
            Ok(n) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
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
    let parsed = rpc::parse_call(record);
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
            return Some(Reply {
                encoded,
                tail: None,
            });
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
    let encoded = |encoded: Vec<u8>| {
        Some(Reply {
            encoded,
            tail: None,
        })
    };
    let call = match parsed {
        Ok(call) => call,
        Err(CallError::Malformed { xid }) => {
            tracing::debug!(%client, xid, "malformed RPC header");
            return encoded(rpc::reply_accept_error(xid, AcceptError::GarbageArgs));
        }
        Err(CallError::Unparseable) => {
            tracing::debug!(%client, "record too short to be an RPC call; ignored");
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
            };
            let result = nfs.dispatch(call.procedure, args, &mut out);
            tail = nfs.tail.take();
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
        Ok(()) => Some(Reply { encoded: out, tail }),
        Err(e) => {
            if e == AcceptError::GarbageArgs {
                tracing::debug!(%client, protocol, op, "arguments did not decode: GARBAGE_ARGS");
            }
            encoded(rpc::reply_accept_error(call.xid, e))
        }
    }
}

fn is_v4_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}
