//! The TCP front end: ONC RPC record marking, limits, and dispatch to the programs.
//!
//! Each connection has a reader task, a writer task and up to [`MAX_IN_FLIGHT`] calls
//! being answered on the blocking pool. When that many are outstanding the reader stops
//! reading, so a client flooding requests is slowed by TCP itself instead of growing our
//! memory. A record larger than [`MAX_RECORD`] closes the connection: no legal call is
//! that big (a 1 MiB WRITE plus headers is far smaller).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::activity::OpRecord;
use crate::nfs3::{self, FileTail, NfsCall};
use crate::rpc::{self, AcceptError, CallError, Credential, RPC_VERSION};
use crate::service::Service;
use crate::{mount, portmap};

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

/// A bound listener serving a [`Service`].
pub struct NfsServer {
    listener: TcpListener,
    service: Arc<Service>,
}

impl NfsServer {
    /// Listen on `addr`; the service may be shared with whoever adds and removes shares.
    pub async fn bind(addr: SocketAddr, service: impl Into<Arc<Service>>) -> std::io::Result<Self> {
        let service = service.into();
        let listener = TcpListener::bind(addr).await?;
        service
            .port
            .store(listener.local_addr()?.port(), Ordering::Relaxed);
        Ok(Self { listener, service })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept and serve connections until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let service = self.service.clone();
                        tokio::spawn(async move { serve_connection(stream, peer, service).await });
                    }
                    Err(e) => {
                        // EMFILE and friends: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
            }
        }
        tracing::info!("stopped accepting connections");
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, service: Arc<Service>) {
    let _ = stream.set_nodelay(true);
    tracing::debug!(%peer, "connection opened");
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
            if let Some(reply) = answer(&service, peer.ip(), &record) {
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

/// Answer one record; `None` when there is nothing to answer to.
fn answer(service: &Service, client: IpAddr, record: &[u8]) -> Option<Reply> {
    let encoded = |encoded: Vec<u8>| {
        Some(Reply {
            encoded,
            tail: None,
        })
    };
    let started = Instant::now();
    let call = match rpc::parse_call(record) {
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
        portmap::PROGRAM => ("portmap", portmap::proc_name(call.procedure)),
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
        (mount::PROGRAM, 1..=3) => mount::dispatch(
            service,
            client,
            call.version,
            call.procedure,
            args,
            &mut out,
            &mut rec,
        ),
        (mount::PROGRAM, _) => Err(AcceptError::ProgMismatch { low: 1, high: 3 }),
        (portmap::PROGRAM, portmap::VERSION) => {
            portmap::dispatch(service.port(), call.procedure, args, &mut out)
        }
        (portmap::PROGRAM, _) => Err(AcceptError::ProgMismatch { low: 2, high: 2 }),
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
