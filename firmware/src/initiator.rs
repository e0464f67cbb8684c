//! The card's NVMe/TCP initiator: queue pairs over TCP with many commands in flight,
//! and controllers (admin queue, keep-alive, I/O queues, namespaces) built on them.
//!
//! A queue is one TCP connection. Any thread submits commands on it; one reader thread
//! per queue takes PDUs off the wire, copies C2HData into the command's buffer, answers
//! R2Ts with H2CData, and calls the command's completion. Header and data digests
//! (CRC32C) are sent and checked when negotiated.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::command::{self, ControllerIdentity, Cqe, NamespaceIdentity, Sqe};
use crate::discovery::LogPage;
use crate::pdu::{self, flags, CommonHeader, DataHeader, FromController, ICReq, ICResp, PduType};

#[derive(Debug, Clone, thiserror::Error)]
pub enum InitiatorError {
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
    #[error("the target broke the protocol: {0}")]
    Protocol(String),
    #[error("{what} failed with status {}", Cqe::describe_status(*status))]
    Status { what: String, status: u16 },
    #[error("the connection is closed: {0}")]
    Closed(String),
    #[error("{0}")]
    Invalid(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitiatorError {
    let what = what.into();
    move |e| InitiatorError::Io {
        what,
        detail: e.to_string(),
    }
}

type Result<T> = std::result::Result<T, InitiatorError>;

/// What a command moves.
pub enum Data {
    None,
    /// The controller sends this many bytes.
    In(usize),
    /// The same, into a buffer the caller lends (and gets back with the completion), so
    /// a busy queue does not allocate and zero a buffer per read.
    InBuf(Vec<u8>, usize),
    /// We send these bytes.
    Out(Vec<u8>),
}

/// Called once per command, on the queue's reader thread: the completion and, for
/// `Data::In`, the bytes read.
pub type Done = Box<dyn FnOnce(Result<(Cqe, Vec<u8>)>) + Send>;

struct Pending {
    buf: Vec<u8>,
    done: Done,
}

/// What ICReq/ICResp settled.
#[derive(Debug, Clone, Copy)]
struct Negotiated {
    header_digest: bool,
    data_digest: bool,
    /// Controller PDU data alignment in bytes.
    cpda: usize,
    maxh2cdata: usize,
}

/// One PDU as it crossed the wire, for captures of real exchanges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPdu {
    /// Which connection (in the order they were opened).
    pub conn: u32,
    /// Sent by us (the host), or by the controller.
    pub from_host: bool,
    pub bytes: Vec<u8>,
}

/// Where a controller's queues record their PDUs when asked to.
pub type Capture = Arc<Mutex<Vec<CapturedPdu>>>;

fn record(capture: &Option<(Capture, u32)>, from_host: bool, bytes: &[u8]) {
    if let Some((c, conn)) = capture {
        lock(c).push(CapturedPdu {
            conn: *conn,
            from_host,
            bytes: bytes.to_vec(),
        });
    }
}

struct Shared {
    capture: Option<(Capture, u32)>,
    writer: Mutex<TcpStream>,
    pending: Mutex<HashMap<u16, Pending>>,
    free: Mutex<Vec<u16>>,
    freed: Condvar,
    closed: Mutex<Option<String>>,
    n: Negotiated,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One NVMe/TCP queue pair.
pub struct Queue {
    shared: Arc<Shared>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Writes up to this size go in the command capsule.
    pub in_capsule_max: usize,
}

impl Queue {
    /// Connect to `addr` and agree on digests; up to `depth` commands in flight.
    pub fn open(
        addr: SocketAddr,
        depth: u16,
        digests: bool,
        capture: Option<Capture>,
    ) -> Result<Self> {
        let capture = capture.map(|c| {
            let conn = lock(&c).iter().map(|p| p.conn + 1).max().unwrap_or(0);
            (c, conn)
        });
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(io_err(format!("connecting to {addr}")))?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let req = ICReq {
            pfv: 0,
            hpda: 0,
            header_digest: digests,
            data_digest: digests,
            maxr2t: 0,
        };
        stream
            .write_all(&req.encode())
            .map_err(io_err("sending ICReq"))?;
        record(&capture, true, &req.encode());
        let mut b = [0u8; 128];
        stream
            .read_exact(&mut b)
            .map_err(io_err("reading ICResp"))?;
        record(&capture, false, &b);
        let resp = ICResp::decode(&b).map_err(|e| InitiatorError::Protocol(e.to_string()))?;
        if resp.pfv != 0 {
            return Err(InitiatorError::Protocol(format!(
                "PDU format version {}",
                resp.pfv
            )));
        }
        stream.set_read_timeout(None).ok();
        let n = Negotiated {
            header_digest: resp.header_digest,
            data_digest: resp.data_digest,
            cpda: (usize::from(resp.cpda) + 1) * 4,
            maxh2cdata: (resp.maxh2cdata as usize).max(4096),
        };
        let reader_stream = stream.try_clone().map_err(io_err("cloning the socket"))?;
        let shared = Arc::new(Shared {
            capture,
            writer: Mutex::new(stream),
            pending: Mutex::new(HashMap::new()),
            free: Mutex::new((0..depth.max(1)).rev().collect()),
            freed: Condvar::new(),
            closed: Mutex::new(None),
            n,
        });
        let for_reader = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("nvmetcp-rx".into())
            .spawn(move || receive(for_reader, reader_stream))
            .map_err(io_err("starting the receive thread"))?;
        Ok(Self {
            shared,
            reader: Some(reader),
            in_capsule_max: 0,
        })
    }

    /// Send a command; `done` runs when it completes (or the queue fails).
    pub fn submit(&self, mut sqe: Sqe, data: Data, done: Done) {
        if let Some(why) = lock(&self.shared.closed).clone() {
            done(Err(InitiatorError::Closed(why)));
            return;
        }
        let cid = {
            let mut free = lock(&self.shared.free);
            loop {
                if let Some(cid) = free.pop() {
                    break cid;
                }
                if let Some(why) = lock(&self.shared.closed).clone() {
                    drop(free);
                    done(Err(InitiatorError::Closed(why)));
                    return;
                }
                free = self
                    .shared
                    .freed
                    .wait_timeout(free, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        };
        sqe.set_cid(cid);
        let (buf, capsule_data) = match data {
            Data::None => (Vec::new(), Vec::new()),
            Data::In(len) => (vec![0u8; len], Vec::new()),
            Data::InBuf(mut buf, len) => {
                buf.resize(len, 0);
                (buf, Vec::new())
            }
            Data::Out(bytes) => {
                let in_capsule = bytes.len() <= self.in_capsule_max || sqe.0[39] == 0x01;
                if in_capsule {
                    sqe.sgl_in_capsule(bytes.len() as u32);
                    (Vec::new(), bytes)
                } else {
                    (bytes, Vec::new())
                }
            }
        };
        lock(&self.shared.pending).insert(cid, Pending { buf, done });
        let n = self.shared.n;
        let pdu = pdu::capsule_cmd(&sqe.0, &capsule_data, n.header_digest, n.data_digest);
        record(&self.shared.capture, true, &pdu);
        let sent = lock(&self.shared.writer).write_all(&pdu);
        if let Err(e) = sent {
            fail_all(&self.shared, format!("sending a command: {e}"));
        }
    }

    /// Send a command and wait for it.
    pub fn execute(&self, sqe: Sqe, data: Data) -> Result<(Cqe, Vec<u8>)> {
        let (tx, rx) = mpsc::channel();
        self.submit(
            sqe,
            data,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| InitiatorError::Closed("no answer within 30 s".into()))?
    }

    /// `execute`, with a failed status as an error.
    pub fn run(&self, what: &str, sqe: Sqe, data: Data) -> Result<(Cqe, Vec<u8>)> {
        let (cqe, buf) = self.execute(sqe, data)?;
        if cqe.ok() {
            Ok((cqe, buf))
        } else {
            Err(InitiatorError::Status {
                what: what.into(),
                status: cqe.status,
            })
        }
    }

    /// Why the queue stopped, if it did.
    pub fn closed(&self) -> Option<String> {
        lock(&self.shared.closed).clone()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let _ = lock(&self.shared.writer).shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            // The last holder may be a completion running on the receive thread itself
            // (it ends on its own once the socket is shut): joining it from there fails.
            if r.thread().id() != std::thread::current().id() {
                let _ = r.join();
            }
        }
    }
}

fn fail_all(shared: &Shared, why: String) {
    {
        let mut closed = lock(&shared.closed);
        if closed.is_none() {
            *closed = Some(why.clone());
        }
    }
    let drained: Vec<Pending> = lock(&shared.pending).drain().map(|(_, p)| p).collect();
    for p in drained {
        (p.done)(Err(InitiatorError::Closed(why.clone())));
    }
    shared.freed.notify_all();
}

fn complete(shared: &Shared, cid: u16, result: Result<Cqe>) {
    let Some(p) = lock(&shared.pending).remove(&cid) else {
        return;
    };
    lock(&shared.free).push(cid);
    shared.freed.notify_one();
    (p.done)(result.map(|c| (c, p.buf)));
}

/// The reader thread: one PDU at a time until the connection ends.
fn receive(shared: Arc<Shared>, mut stream: TcpStream) {
    let why = loop {
        match receive_one(&shared, &mut stream) {
            Ok(()) => {}
            Err(e) => break e.to_string(),
        }
    };
    fail_all(&shared, why);
}

fn receive_one(shared: &Shared, stream: &mut TcpStream) -> Result<()> {
    let mut ch = [0u8; 8];
    stream
        .read_exact(&mut ch)
        .map_err(io_err("reading a PDU"))?;
    let h = CommonHeader::decode(&ch).map_err(|e| InitiatorError::Protocol(e.to_string()))?;
    if h.plen > 16 << 20 {
        return Err(InitiatorError::Protocol(format!("PDU of {} bytes", h.plen)));
    }
    if h.pdu_type == PduType::C2HData {
        return receive_c2h(shared, stream, h, &ch);
    }
    let mut pdu = vec![0u8; h.plen as usize];
    pdu[..8].copy_from_slice(&ch);
    stream
        .read_exact(&mut pdu[8..])
        .map_err(io_err("reading a PDU"))?;
    record(&shared.capture, false, &pdu);
    let protocol = |e: pdu::PduError| InitiatorError::Protocol(e.to_string());
    match pdu::from_controller(&pdu).map_err(protocol)? {
        FromController::Response(cqe) => {
            let cqe = Cqe::decode(&cqe);
            complete(shared, cqe.cid, Ok(cqe));
        }
        FromController::ReadyToTransfer(d) => {
            let data = {
                let pending = lock(&shared.pending);
                let p = pending.get(&d.cccid).ok_or_else(|| {
                    InitiatorError::Protocol(format!("R2T for unknown command {}", d.cccid))
                })?;
                let (off, len) = (d.offset as usize, d.length as usize);
                if off + len > p.buf.len() {
                    return Err(InitiatorError::Protocol("R2T past the data".into()));
                }
                p.buf[off..off + len].to_vec()
            };
            send_h2c(shared, &d, &data)?;
        }
        FromController::Ended { fes } => {
            return Err(InitiatorError::Protocol(format!(
                "the controller ended the connection (error {fes:#x})"
            )));
        }
        FromController::Unexpected(other) => {
            return Err(InitiatorError::Protocol(format!(
                "unexpected PDU {other:?}"
            )))
        }
    }
    Ok(())
}

/// C2HData, read straight into the command's buffer: the header (and its digest)
/// first, then the data into place, then the data digest. No copy of the data through
/// a PDU buffer: it is the bulk of every read.
fn receive_c2h(
    shared: &Shared,
    stream: &mut TcpStream,
    h: CommonHeader,
    ch: &[u8; 8],
) -> Result<()> {
    let protocol = |m: &str| InitiatorError::Protocol(m.into());
    let hlen = usize::from(h.hlen);
    let hd = if h.flags & flags::HDGSTF != 0 { 4 } else { 0 };
    let mut head = vec![0u8; hlen + hd];
    head[..8].copy_from_slice(ch);
    stream
        .read_exact(&mut head[8..])
        .map_err(io_err("reading a PDU"))?;
    if hd > 0 {
        let want = u32::from_le_bytes(head[hlen..hlen + 4].try_into().expect("4 bytes"));
        if pdu::digest(&head[..hlen]) != want {
            return Err(protocol("header digest mismatch"));
        }
    }
    let d = DataHeader::decode(&head).map_err(|e| InitiatorError::Protocol(e.to_string()))?;
    let (pdo, len, off) = (usize::from(d.pdo), d.length as usize, d.offset as usize);
    let dd = if h.flags & flags::DDGSTF != 0 { 4 } else { 0 };
    if pdo < hlen + hd || pdo + len + dd != h.plen as usize {
        return Err(protocol("C2HData whose lengths do not add up"));
    }
    let mut pad = vec![0u8; pdo - hlen - hd];
    stream
        .read_exact(&mut pad)
        .map_err(io_err("reading a PDU"))?;
    // The buffer leaves the table while the socket fills it, so submitters never wait
    // on the network; only this thread completes commands, so it cannot vanish.
    let mut buf = {
        let mut pending = lock(&shared.pending);
        let p = pending
            .get_mut(&d.cccid)
            .ok_or_else(|| protocol("data for an unknown command"))?;
        std::mem::take(&mut p.buf)
    };
    let filled = (|| {
        if off + len > buf.len() {
            return Err(protocol("C2HData past the buffer"));
        }
        stream
            .read_exact(&mut buf[off..off + len])
            .map_err(io_err("reading a PDU"))?;
        let mut digest_bytes = [0u8; 4];
        if dd > 0 {
            stream
                .read_exact(&mut digest_bytes)
                .map_err(io_err("reading a PDU"))?;
            if pdu::digest(&buf[off..off + len]) != u32::from_le_bytes(digest_bytes) {
                return Err(protocol("data digest mismatch"));
            }
        }
        if shared.capture.is_some() {
            let mut whole = head.clone();
            whole.extend_from_slice(&pad);
            whole.extend_from_slice(&buf[off..off + len]);
            whole.extend_from_slice(&digest_bytes[..dd]);
            record(&shared.capture, false, &whole);
        }
        Ok(())
    })();
    if let Some(p) = lock(&shared.pending).get_mut(&d.cccid) {
        p.buf = buf;
    }
    filled?;
    if d.flags & flags::LAST_PDU != 0 && d.flags & flags::SUCCESS != 0 {
        let cqe = Cqe {
            result: 0,
            sqhd: 0,
            cid: d.cccid,
            status: 0,
        };
        complete(shared, d.cccid, Ok(cqe));
    }
    Ok(())
}

/// Answer an R2T: the requested range in H2CData PDUs of at most MAXH2CDATA bytes.
fn send_h2c(shared: &Shared, r2t: &DataHeader, data: &[u8]) -> Result<()> {
    let n = shared.n;
    let mut w = lock(&shared.writer);
    let chunks = data.chunks(n.maxh2cdata).count();
    for (i, chunk) in data.chunks(n.maxh2cdata).enumerate() {
        let hd: usize = if n.header_digest { 4 } else { 0 };
        let dd: usize = if n.data_digest { 4 } else { 0 };
        let pdo = (24 + hd).div_ceil(n.cpda) * n.cpda;
        let mut fl = 0;
        if n.header_digest {
            fl |= flags::HDGSTF;
        }
        if n.data_digest {
            fl |= flags::DDGSTF;
        }
        if i + 1 == chunks {
            fl |= flags::LAST_PDU;
        }
        let header = DataHeader {
            pdu_type: PduType::H2CData,
            flags: fl,
            cccid: r2t.cccid,
            ttag: r2t.ttag,
            offset: r2t.offset + (i * n.maxh2cdata) as u32,
            length: chunk.len() as u32,
            pdo: pdo as u8,
            plen: (pdo + chunk.len() + dd) as u32,
        };
        let mut b = Vec::with_capacity(pdo + chunk.len() + dd);
        b.extend_from_slice(&header.encode());
        if n.header_digest {
            b.extend_from_slice(&pdu::digest(&b[..24]).to_le_bytes());
        }
        b.resize(pdo, 0);
        b.extend_from_slice(chunk);
        if n.data_digest {
            b.extend_from_slice(&pdu::digest(chunk).to_le_bytes());
        }
        record(&shared.capture, true, &b);
        w.write_all(&b).map_err(io_err("sending H2CData"))?;
    }
    Ok(())
}

/// Who the card is to the bays.
#[derive(Debug, Clone)]
pub struct Host {
    pub hostnqn: String,
    pub hostid: [u8; 16],
}

impl Host {
    /// From a host NQN and a UUID text (`1b4e28ba-2fa1-…`).
    pub fn new(hostnqn: &str, hostid: &str) -> Result<Self> {
        let hex: String = hostid.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 {
            return Err(InitiatorError::Invalid(format!(
                "host ID {hostid:?} is not a UUID"
            )));
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)
                .map_err(|_| InitiatorError::Invalid(format!("host ID {hostid:?} is not hex")))?;
        }
        Ok(Self {
            hostnqn: hostnqn.into(),
            hostid: id,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub io_queues: u16,
    pub queue_depth: u16,
    pub digests: bool,
    pub keep_alive: Duration,
    /// Wait between attempts to connect again after a link loss.
    pub reconnect_delay: Duration,
    /// Give the controller up after this long without a link (I/O fails then).
    pub ctrl_loss: Duration,
    /// Record every PDU sent and received.
    pub capture: Option<Capture>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            io_queues: 2,
            queue_depth: 64,
            digests: false,
            keep_alive: Duration::from_secs(15),
            reconnect_delay: Duration::from_secs(2),
            ctrl_loss: Duration::from_secs(600),
            capture: None,
        }
    }
}

/// Open queue `qid` and send it Fabrics Connect.
fn connect_queue(
    addr: SocketAddr,
    qid: u16,
    depth: u16,
    cntlid: u16,
    subnqn: &str,
    host: &Host,
    opts: &Options,
) -> Result<(Queue, u16)> {
    let q = Queue::open(addr, depth, opts.digests, opts.capture.clone())?;
    let kato = if qid == 0 {
        opts.keep_alive.as_millis() as u32
    } else {
        0
    };
    let data = command::connect_data(&host.hostid, cntlid, subnqn, &host.hostnqn);
    let (cqe, _) = q.run(
        &format!("connecting queue {qid} of {subnqn}"),
        command::connect(qid, depth, kato),
        Data::Out(data.to_vec()),
    )?;
    Ok((q, cqe.result as u16))
}

/// Enable the controller behind an admin queue: CC.EN = 1, then wait for CSTS.RDY
/// for as long as CAP.TO allows.
fn enable(admin: &Queue) -> Result<()> {
    let (cap, _) = admin.run(
        "reading CAP",
        command::property_get(command::PROP_CAP, true),
        Data::None,
    )?;
    let timeout = Duration::from_millis(((cap.result >> 24) & 0xff).max(1) * 500);
    admin.run(
        "enabling the controller",
        command::property_set(command::PROP_CC, command::CC_ENABLE),
        Data::None,
    )?;
    let begun = Instant::now();
    loop {
        let (csts, _) = admin.run(
            "reading CSTS",
            command::property_get(command::PROP_CSTS, false),
            Data::None,
        )?;
        if csts.result & 1 == 1 {
            return Ok(());
        }
        if csts.result & 2 != 0 {
            return Err(InitiatorError::Protocol(
                "the controller reports a fatal status".into(),
            ));
        }
        if begun.elapsed() > timeout {
            return Err(InitiatorError::Protocol(
                "the controller never became ready".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A namespace of a connected controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespace {
    pub nsid: u32,
    pub id: NamespaceIdentity,
}

/// The queues of one association with the controller.
struct Association {
    admin: Arc<Queue>,
    io: Vec<Arc<Queue>>,
    cntlid: u16,
    /// Ends this association's keep-alive thread.
    stop: Arc<AtomicBool>,
}

/// Connect the admin queue, enable the controller and connect the I/O queues.
fn associate(
    addr: SocketAddr,
    subnqn: &str,
    host: &Host,
    opts: &Options,
    in_capsule: usize,
) -> Result<Association> {
    let (admin, cntlid) = connect_queue(addr, 0, 32, 0xffff, subnqn, host, opts)?;
    enable(&admin)?;
    let mut io = Vec::new();
    for qid in 1..=opts.io_queues.max(1) {
        let (mut q, _) = connect_queue(addr, qid, opts.queue_depth, cntlid, subnqn, host, opts)?;
        q.in_capsule_max = in_capsule;
        io.push(Arc::new(q));
    }
    let admin = Arc::new(admin);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (admin, stop) = (Arc::downgrade(&admin), Arc::clone(&stop));
        let every = opts.keep_alive / 3;
        std::thread::Builder::new()
            .name("nvmetcp-kato".into())
            .spawn(move || keep_alive(admin, stop, every))
            .map_err(io_err("starting keep-alive"))?;
    }
    Ok(Association {
        admin,
        io,
        cntlid,
        stop,
    })
}

/// A command waiting for the link to come back.
struct Parked {
    sqe: Sqe,
    data: Data,
    done: Done,
}

impl Data {
    /// A copy kept to send the command again after a reconnection.
    fn duplicate(&self) -> Data {
        match self {
            Data::None => Data::None,
            Data::In(n) | Data::InBuf(_, n) => Data::In(*n),
            Data::Out(v) => Data::Out(v.clone()),
        }
    }
}

/// A connected NVMe/TCP controller: admin queue with keep-alive, I/O queues, and its
/// namespaces. When the link drops, commands in flight are held, the controller is
/// connected again every `reconnect_delay`, and the held commands are sent again; only
/// after `ctrl_loss` do they fail.
pub struct Controller {
    pub addr: SocketAddr,
    pub subnqn: String,
    pub identity: ControllerIdentity,
    pub namespaces: Vec<Namespace>,
    host: Host,
    opts: Options,
    link: std::sync::RwLock<Association>,
    next: AtomicUsize,
    parked: Mutex<Vec<Parked>>,
    reconnecting: AtomicBool,
    /// Bytes per I/O command at most.
    pub max_transfer: usize,
    /// Times the link was lost and made again.
    pub reconnects: AtomicUsize,
}

impl Controller {
    pub fn connect(addr: SocketAddr, subnqn: &str, host: &Host, opts: Options) -> Result<Self> {
        let (admin, _) = connect_queue(addr, 0, 32, 0xffff, subnqn, host, &opts)?;
        enable(&admin)?;
        let (_, ctrl) = admin.run(
            "Identify Controller",
            command::identify(1, 0),
            Data::In(4096),
        )?;
        let identity = ControllerIdentity::decode(&ctrl);
        let (_, list) = admin.run(
            "listing namespaces",
            command::identify(2, 0),
            Data::In(4096),
        )?;
        let mut namespaces = Vec::new();
        for nsid in command::namespace_ids(&list) {
            let (_, ns) = admin.run(
                "Identify Namespace",
                command::identify(0, nsid),
                Data::In(4096),
            )?;
            namespaces.push(Namespace {
                nsid,
                id: NamespaceIdentity::decode(&ns),
            });
        }
        drop(admin);
        let link = associate(addr, subnqn, host, &opts, identity.in_capsule_bytes())?;
        Ok(Self {
            addr,
            subnqn: subnqn.into(),
            max_transfer: identity.max_transfer(),
            identity,
            namespaces,
            host: host.clone(),
            opts,
            link: std::sync::RwLock::new(link),
            next: AtomicUsize::new(0),
            parked: Mutex::new(Vec::new()),
            reconnecting: AtomicBool::new(false),
            reconnects: AtomicUsize::new(0),
        })
    }

    pub fn cntlid(&self) -> u16 {
        self.link.read().unwrap_or_else(|p| p.into_inner()).cntlid
    }

    /// Submit an I/O command on the next queue, round robin. A command the link drops
    /// is held and sent again once the controller is back.
    pub fn submit_io(self: &Arc<Self>, sqe: Sqe, data: Data, done: Done) {
        if self.reconnecting.load(Ordering::Acquire) {
            self.park(Parked { sqe, data, done });
            return;
        }
        let queue = {
            let link = self.link.read().unwrap_or_else(|p| p.into_inner());
            let i = self.next.fetch_add(1, Ordering::Relaxed) % link.io.len();
            Arc::clone(&link.io[i])
        };
        let keep = data.duplicate();
        let me = Arc::downgrade(self);
        queue.submit(
            sqe,
            data,
            Box::new(move |r| match (r, me.upgrade()) {
                (Err(InitiatorError::Closed(_)), Some(c)) => c.park(Parked {
                    sqe,
                    data: keep,
                    done,
                }),
                (r, _) => done(r),
            }),
        );
    }

    fn park(self: &Arc<Self>, p: Parked) {
        lock(&self.parked).push(p);
        if self
            .reconnecting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let me = Arc::clone(self);
            let _ = std::thread::Builder::new()
                .name("nvmetcp-reconnect".into())
                .spawn(move || me.reconnect());
        }
    }

    /// Connect again until it works or `ctrl_loss` passes, then send the held commands.
    fn reconnect(self: Arc<Self>) {
        tracing::warn!(subnqn = %self.subnqn, addr = %self.addr, "link lost: reconnecting");
        let begun = Instant::now();
        let outcome = loop {
            std::thread::sleep(self.opts.reconnect_delay);
            match associate(
                self.addr,
                &self.subnqn,
                &self.host,
                &self.opts,
                self.identity.in_capsule_bytes(),
            ) {
                Ok(link) => {
                    let old = std::mem::replace(
                        &mut *self.link.write().unwrap_or_else(|p| p.into_inner()),
                        link,
                    );
                    old.stop.store(true, Ordering::Relaxed);
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(subnqn = %self.subnqn, after = ?begun.elapsed(), "reconnected");
                    break Ok(());
                }
                Err(e) if begun.elapsed() >= self.opts.ctrl_loss => break Err(e),
                Err(e) => tracing::debug!(error = %e, "still unreachable"),
            }
        };
        self.reconnecting.store(false, Ordering::Release);
        let held: Vec<Parked> = std::mem::take(&mut *lock(&self.parked));
        match outcome {
            Ok(()) => {
                for p in held {
                    self.submit_io(p.sqe, p.data, p.done);
                }
            }
            Err(e) => {
                tracing::error!(subnqn = %self.subnqn, error = %e, "gave the controller up");
                for p in held {
                    (p.done)(Err(e.clone()));
                }
            }
        }
    }

    fn block_size(&self, nsid: u32) -> Result<u32> {
        self.namespaces
            .iter()
            .find(|n| n.nsid == nsid)
            .map(|n| n.id.block_size)
            .ok_or_else(|| InitiatorError::Invalid(format!("no namespace {nsid}")))
    }

    /// Read `blocks` blocks at `lba` (blocking).
    pub fn read(self: &Arc<Self>, nsid: u32, lba: u64, blocks: u32) -> Result<Vec<u8>> {
        let bytes = blocks * self.block_size(nsid)?;
        let (tx, rx) = mpsc::channel();
        self.submit_io(
            command::read_write(false, nsid, lba, blocks, bytes),
            Data::In(bytes as usize),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let (cqe, buf) = wait(rx)?;
        status(cqe, "read").map(|()| buf)
    }

    /// Write whole blocks at `lba` (blocking).
    pub fn write(self: &Arc<Self>, nsid: u32, lba: u64, data: Vec<u8>) -> Result<()> {
        let bs = self.block_size(nsid)?;
        if data.is_empty() || !data.len().is_multiple_of(bs as usize) {
            return Err(InitiatorError::Invalid(format!(
                "a write is whole {bs}-byte blocks"
            )));
        }
        let blocks = (data.len() / bs as usize) as u32;
        let (tx, rx) = mpsc::channel();
        self.submit_io(
            command::read_write(true, nsid, lba, blocks, data.len() as u32),
            Data::Out(data),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let (cqe, _) = wait(rx)?;
        status(cqe, "write")
    }

    pub fn flush(self: &Arc<Self>, nsid: u32) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.submit_io(
            command::flush(nsid),
            Data::None,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let (cqe, _) = wait(rx)?;
        status(cqe, "flush")
    }

    /// Why the link is down, while it is.
    pub fn failed(&self) -> Option<String> {
        if !self.reconnecting.load(Ordering::Acquire) {
            return None;
        }
        let link = self.link.read().unwrap_or_else(|p| p.into_inner());
        Some(
            link.admin
                .closed()
                .or_else(|| link.io.iter().find_map(|q| q.closed()))
                .unwrap_or_else(|| "reconnecting".into()),
        )
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.link
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .stop
            .store(true, Ordering::Relaxed);
    }
}

fn wait(rx: mpsc::Receiver<Result<(Cqe, Vec<u8>)>>) -> Result<(Cqe, Vec<u8>)> {
    rx.recv_timeout(Duration::from_secs(700))
        .map_err(|_| InitiatorError::Closed("no answer".into()))?
}

fn status(cqe: Cqe, what: &str) -> Result<()> {
    if cqe.ok() {
        Ok(())
    } else {
        Err(InitiatorError::Status {
            what: what.into(),
            status: cqe.status,
        })
    }
}

fn keep_alive(admin: std::sync::Weak<Queue>, stop: Arc<AtomicBool>, every: Duration) {
    let tick = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    loop {
        std::thread::sleep(tick);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        waited += tick;
        if waited < every {
            continue;
        }
        waited = Duration::ZERO;
        let Some(q) = admin.upgrade() else { return };
        if q.closed().is_some() {
            return;
        }
        q.submit(command::keep_alive(), Data::None, Box::new(|_| {}));
    }
}

/// Read a discovery controller's whole log page with our own initiator: the header
/// for the record count, the records, and the header again to check the generation.
pub fn discover(addr: SocketAddr, host: &Host) -> Result<LogPage> {
    let opts = Options::default();
    let (admin, _) = connect_queue(
        addr,
        0,
        32,
        0xffff,
        crate::discovery::DISCOVERY_NQN,
        host,
        &opts,
    )?;
    enable(&admin)?;
    let read = |offset: u64, len: usize| -> Result<Vec<u8>> {
        admin
            .run(
                "reading the discovery log",
                command::get_log_page(0x70, len as u32, offset),
                Data::In(len),
            )
            .map(|(_, b)| b)
    };
    for _ in 0..4 {
        let header = LogPage::decode(&read(0, 1024)?)
            .map_err(|e| InitiatorError::Protocol(e.to_string()))?;
        let len = 1024 * (1 + header.numrec.min(1024) as usize);
        let mut page = Vec::with_capacity(len);
        for off in (0..len).step_by(4096) {
            page.extend(read(off as u64, (len - off).min(4096))?);
        }
        let again = LogPage::decode(&read(0, 1024)?)
            .map_err(|e| InitiatorError::Protocol(e.to_string()))?;
        let page = LogPage::decode(&page).map_err(|e| InitiatorError::Protocol(e.to_string()))?;
        if again.genctr == page.genctr {
            return Ok(page);
        }
    }
    Err(InitiatorError::Protocol(
        "the discovery log kept changing while it was read".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_id_parses_from_uuid_text() {
        let h = Host::new("nqn.x", "1b4e28ba-2fa1-41d2-883f-0016d3cca427").unwrap();
        assert_eq!(h.hostid[0], 0x1b);
        assert_eq!(h.hostid[15], 0x27);
        assert!(Host::new("nqn.x", "nope").is_err());
    }
}
