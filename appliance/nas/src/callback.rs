//! Calls from this server to a client: the lock manager's GRANTED and `_RES` callbacks
//! and the status monitor's SM_NOTIFY, each found through the client's own portmapper.
//!
//! Every call is bounded: a few tries of a short timeout each, so a client that went
//! away costs its own callback a few seconds and nobody else anything (callbacks run on
//! their own threads, never on a request's).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::programs::{IPPROTO_TCP, IPPROTO_UDP, PORTMAP, PORTMAP_V2};
use crate::rpc::AUTH_SYS;
use crate::xdr::{put_opaque, put_u32, XdrReader};

/// How long one try waits for an answer.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries of a UDP call before giving up.
pub const TRIES: u32 = 3;
/// The largest reply read.
const MAX_REPLY: usize = 8192;

/// The port the client's portmapper listens on. Always 111 on real clients; tests that
/// play a client on a machine that has its own portmapper move it.
pub fn client_portmap_port() -> u16 {
    std::env::var("RUSHES_CLIENT_PORTMAP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(111)
}

fn call_message(xid: u32, program: u32, version: u32, procedure: u32, args: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + args.len());
    for v in [xid, 0, 2, program, version, procedure, AUTH_SYS] {
        put_u32(&mut m, v);
    }
    let mut cred = Vec::new();
    put_u32(&mut cred, 0); // stamp
    let host = rustix::system::uname();
    let name = host.nodename().to_bytes();
    put_opaque(&mut cred, &name[..name.len().min(64)]);
    for v in [0u32, 0, 0] {
        put_u32(&mut cred, v); // uid 0, gid 0, no groups
    }
    put_opaque(&mut m, &cred);
    put_u32(&mut m, 0);
    put_u32(&mut m, 0);
    m.extend_from_slice(args);
    m
}

fn new_xid() -> u32 {
    let mut b = [0u8; 4];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u32::from_ne_bytes(b)
}

/// The results of an accepted, successful reply to `xid`; an error otherwise.
fn results(reply: &[u8], xid: u32) -> io::Result<Option<Vec<u8>>> {
    let mut r = XdrReader::new(reply);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed RPC reply");
    if r.u32().map_err(|_| bad())? != xid {
        return Ok(None); // a late answer to an earlier try
    }
    if r.u32().map_err(|_| bad())? != 1 || r.u32().map_err(|_| bad())? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "call denied by the client",
        ));
    }
    let _verf_flavor = r.u32().map_err(|_| bad())?;
    let _verf = r.opaque(400).map_err(|_| bad())?;
    match r.u32().map_err(|_| bad())? {
        0 => Ok(Some(reply[r.position()..].to_vec())),
        stat => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the client does not take the call (accept_stat {stat})"),
        )),
    }
}

/// A UDP socket on an ephemeral port of `to`'s address family.
fn udp_socket_for(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = match to.ip() {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    UdpSocket::bind(SocketAddr::new(any, 0))
}

/// Call over UDP and wait for the answer's results.
pub fn call_udp(
    to: SocketAddr,
    program: u32,
    version: u32,
    procedure: u32,
    args: &[u8],
) -> io::Result<Vec<u8>> {
    let socket = udp_socket_for(to)?;
    socket.connect(to)?;
    socket.set_read_timeout(Some(TRY_TIMEOUT))?;
    let xid = new_xid();
    let msg = call_message(xid, program, version, procedure, args);
    let mut buf = vec![0u8; MAX_REPLY];
    for _ in 0..TRIES {
        socket.send(&msg)?;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => match results(&buf[..n], xid)? {
                    Some(r) => return Ok(r),
                    None => continue,
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer from {to}"),
    ))
}

/// Send a call over UDP without waiting for any answer (the `_RES` callbacks, whose
/// results are void and whose senders do not wait either).
pub fn send_udp(
    to: SocketAddr,
    program: u32,
    version: u32,
    procedure: u32,
    args: &[u8],
) -> io::Result<()> {
    let socket = udp_socket_for(to)?;
    socket.send_to(
        &call_message(new_xid(), program, version, procedure, args),
        to,
    )?;
    Ok(())
}

/// Call over TCP (one record each way) and wait for the answer's results.
pub fn call_tcp(
    to: SocketAddr,
    program: u32,
    version: u32,
    procedure: u32,
    args: &[u8],
) -> io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&to, TRY_TIMEOUT)?;
    s.set_read_timeout(Some(TRY_TIMEOUT * TRIES))?;
    let xid = new_xid();
    let msg = call_message(xid, program, version, procedure, args);
    s.write_all(&((msg.len() as u32) | 0x8000_0000).to_be_bytes())?;
    s.write_all(&msg)?;
    let mut reply = Vec::new();
    loop {
        let mut mark = [0u8; 4];
        s.read_exact(&mut mark)?;
        let mark = u32::from_be_bytes(mark);
        let len = (mark & 0x7fff_ffff) as usize;
        if reply.len() + len > MAX_REPLY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reply too large",
            ));
        }
        let at = reply.len();
        reply.resize(at + len, 0);
        s.read_exact(&mut reply[at..])?;
        if mark & 0x8000_0000 != 0 {
            break;
        }
    }
    results(&reply, xid)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "reply to another call"))
}

/// Ask `ip`'s portmapper (PMAP GETPORT over UDP) where `program` `version` listens on
/// `ipproto` (6 TCP, 17 UDP); 0 when it is not registered there.
pub fn getport(ip: IpAddr, program: u32, version: u32, ipproto: u32) -> io::Result<u16> {
    let mut args = Vec::new();
    for v in [program, version, ipproto, 0] {
        put_u32(&mut args, v);
    }
    let to = SocketAddr::new(ip, client_portmap_port());
    let reply = call_udp(to, PORTMAP, PORTMAP_V2, 3, &args)?;
    let port = XdrReader::new(&reply)
        .u32()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "malformed GETPORT reply"))?;
    Ok(port as u16)
}

/// Call `program` on `ip`, found through its portmapper: over UDP where it listens on
/// UDP, else over TCP.
pub fn call_client(
    ip: IpAddr,
    program: u32,
    version: u32,
    procedure: u32,
    args: &[u8],
) -> io::Result<Vec<u8>> {
    match getport(ip, program, version, IPPROTO_UDP)? {
        0 => match getport(ip, program, version, IPPROTO_TCP)? {
            0 => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("program {program} version {version} is not registered on {ip}"),
            )),
            port => call_tcp(SocketAddr::new(ip, port), program, version, procedure, args),
        },
        port => call_udp(SocketAddr::new(ip, port), program, version, procedure, args),
    }
}

/// How long a client that let a callback time out is taken for unreachable: its next
/// callbacks are given up at once instead of each waiting out the timeouts again.
pub const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

/// What became of one callback, as its sender saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The client answered, or refused at once: it is there.
    Answered,
    /// Nothing came back before the timeouts.
    Silent,
    /// Not called: the client was taken for unreachable.
    Skipped,
}

impl Reach {
    /// How a callback's outcome bears on the client being there.
    pub fn of<T>(result: &io::Result<T>) -> Reach {
        match result {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                Reach::Silent
            }
            _ => Reach::Answered,
        }
    }
}

/// Callbacks waiting to go out, per client, and the clients taken for unreachable.
struct Queue<J> {
    jobs: HashMap<IpAddr, VecDeque<J>>,
    /// Clients with jobs and no worker on them, in turn.
    turn: VecDeque<IpAddr>,
    /// Clients a worker is calling now.
    busy: HashSet<IpAddr>,
    unreachable: HashMap<IpAddr, Instant>,
    /// False once the queue's owner has gone: the workers end.
    open: bool,
}

struct Shared<J> {
    queue: Mutex<Queue<J>>,
    work: Condvar,
    max_jobs: usize,
}

impl<J> Shared<J> {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue<J>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Callback workers that never let one client hold up another: a client's callbacks go
/// out one at a time and clients take turns, so a client that went away ties up one
/// worker, never all of them; and once one of its callbacks has timed out, its next ones
/// are given up at once (the sender is told to skip) until it is heard from again or
/// [`UNREACHABLE_FOR`] has passed.
pub struct ClientQueue<J> {
    shared: Arc<Shared<J>>,
}

impl<J: Send + 'static> ClientQueue<J> {
    /// Start `workers` threads named `name-N`, which hand each job to `send` with
    /// whether to skip the call (the client is taken for unreachable). At most
    /// `max_jobs` wait at once.
    pub fn start(
        name: &str,
        workers: usize,
        max_jobs: usize,
        send: impl Fn(J, bool) -> Reach + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: HashMap::new(),
                turn: VecDeque::new(),
                busy: HashSet::new(),
                unreachable: HashMap::new(),
                open: true,
            }),
            work: Condvar::new(),
            max_jobs,
        });
        let send = Arc::new(send);
        for i in 0..workers {
            let (shared, send) = (Arc::clone(&shared), Arc::clone(&send));
            let _ = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&shared, &*send));
        }
        Self { shared }
    }

    /// Queue `job` for `client`; the job back if the queue is full, or if the client
    /// has its share of it (an eighth) waiting already: a client whose callbacks go
    /// nowhere while it keeps calling us cannot fill the queue for the others.
    pub fn push(&self, client: IpAddr, job: J) -> Result<(), J> {
        let mut q = self.shared.queue();
        let queued: usize = q.jobs.values().map(VecDeque::len).sum();
        let mine = q.jobs.get(&client).map_or(0, VecDeque::len);
        if queued >= self.shared.max_jobs || mine >= (self.shared.max_jobs / 8).max(1) {
            return Err(job);
        }
        let jobs = q.jobs.entry(client).or_default();
        jobs.push_back(job);
        if jobs.len() == 1 && !q.busy.contains(&client) {
            q.turn.push_back(client);
        }
        drop(q);
        self.shared.work.notify_one();
        Ok(())
    }

    /// `client` just called us: it is reachable again.
    pub fn heard_from(&self, client: IpAddr) {
        self.shared.queue().unreachable.remove(&client);
    }
}

impl<J> Drop for ClientQueue<J> {
    fn drop(&mut self) {
        self.shared.queue().open = false;
        self.shared.work.notify_all();
    }
}

fn work<J>(s: &Shared<J>, send: &dyn Fn(J, bool) -> Reach) {
    loop {
        let (client, job, skip) = {
            let mut q = s.queue();
            loop {
                if !q.open {
                    return;
                }
                if let Some(client) = q.turn.pop_front() {
                    let Some(job) = q.jobs.get_mut(&client).and_then(VecDeque::pop_front) else {
                        continue;
                    };
                    q.busy.insert(client);
                    let now = Instant::now();
                    let skip = q.unreachable.get(&client).is_some_and(|&until| now < until);
                    break (client, job, skip);
                }
                q = s.work.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let reach = send(job, skip);
        let mut q = s.queue();
        q.busy.remove(&client);
        if reach == Reach::Silent {
            let now = Instant::now();
            if q.unreachable.len() >= 4096 {
                q.unreachable.retain(|_, until| *until > now);
            }
            q.unreachable.insert(client, now + UNREACHABLE_FOR);
        }
        if q.jobs.get(&client).is_some_and(|jobs| !jobs.is_empty()) {
            q.turn.push_back(client);
        } else {
            q.jobs.remove(&client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_silent_client_holds_up_one_worker_and_its_next_callbacks_are_skipped() {
        let gone: IpAddr = "10.0.0.9".parse().unwrap();
        let there: IpAddr = "10.0.0.10".parse().unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let queue = ClientQueue::start(
            "test-callback",
            4,
            64,
            move |(client, n): (IpAddr, u32), skip| {
                let silent = client.to_string() == "10.0.0.9";
                if silent && !skip {
                    std::thread::sleep(Duration::from_millis(400));
                }
                let _ = tx.lock().unwrap().send((client, n, skip, Instant::now()));
                match (skip, silent) {
                    (true, _) => Reach::Skipped,
                    (false, true) => Reach::Silent,
                    (false, false) => Reach::Answered,
                }
            },
        );
        let start = Instant::now();
        for n in 0..4 {
            queue.push(gone, (gone, n)).unwrap();
        }
        queue.push(there, (there, 0)).unwrap();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        }
        // The reachable client is not kept waiting behind the silent one's callbacks.
        let (client, _, skip, at) = seen[0];
        assert_eq!((client, skip), (there, false));
        assert!(at - start < Duration::from_millis(300), "{:?}", at - start);
        // The silent client was called once; the rest were given up without a call,
        // in order.
        let gone_calls: Vec<(u32, bool)> = seen[1..].iter().map(|s| (s.1, s.2)).collect();
        assert_eq!(
            gone_calls,
            vec![(0, false), (1, true), (2, true), (3, true)]
        );
        // Once it calls us, it is called again.
        queue.heard_from(gone);
        queue.push(gone, (gone, 4)).unwrap();
        let (_, n, skip, _) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((n, skip), (4, false));
    }

    #[test]
    fn a_full_queue_hands_the_job_back() {
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        let hold_rx = Mutex::new(hold_rx);
        let queue = ClientQueue::start("test-full", 1, 16, move |_: u32, _| {
            let _ = hold_rx.lock().unwrap().recv();
            Reach::Answered
        });
        // One client meets its share of the queue (an eighth: 2 of 16) while another
        // still gets in; the worker may or may not have taken the first job yet.
        let (c, d): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut n = 0;
        while queue.push(c, n).is_ok() {
            n += 1;
            assert!(n < 10, "one client takes more than its share");
        }
        assert!(n <= 3, "{n} jobs of one client queued");
        assert_eq!(queue.push(c, 99), Err(99));
        assert_eq!(queue.push(d, 100), Ok(()), "another client still gets in");
        drop(hold_tx);
    }
}
