//! SMB activity: Samba's full_audit lines, read from the system log socket, become the
//! same activity records NFS makes; the bytes each SMB client moves are read from its
//! TCP connections' counters (full_audit names every read and write but not its size),
//! and latencies from Samba's profile (`smb_profile`).
//!
//! rushesd owns `/dev/log`. Lines from other programs (mdadm, udhcpc, …) and smbd's own
//! log go to our log; smbd's failed logins are warnings rate-limited per client address
//! (a password guesser from one address writes one line a minute, not one a guess).
//! Senders block when the socket's queue is full, so audit lines wait rather than get
//! dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rushes_nas::activity::{OpObserver, OpRecord};

use crate::directory::Directory;
use crate::smb_lines::{is_samba_header, parse_audit, parse_failed_login, split_syslog, AuditLine};
use crate::smb_profile::{Command, Profile};

/// `path` relative to the share's folder, as `/DIR/FILE`.
fn inside(root: &Path, path: &str) -> String {
    match Path::new(path).strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path.to_string(),
    }
}

impl AuditLine {
    fn record(&self, dir: &Directory) -> OpRecord {
        let mut rec = OpRecord::new(self.client, "smb", self.op);
        rec.user = Some(self.user.as_str().into());
        rec.uid = dir.uids.get(&self.user).copied();
        let share = dir.shares.get(&self.share);
        rec.share = Some(
            share
                .map(|(name, _)| Arc::clone(name))
                .unwrap_or_else(|| self.share.as_str().into()),
        );
        let fix = |p: &Option<String>| {
            p.as_deref().map(|p| match share {
                Some((_, root)) => inside(root, p),
                None => p.to_string(),
            })
        };
        rec.path = fix(&self.path);
        rec.to = fix(&self.to);
        rec.status = Some(if self.ok { 0 } else { 1 });
        rec.reason = self.reason.clone();
        rec
    }
}

/// Records wait here: reads and writes for the bytes their client moves on the wire,
/// all of them for smbd's profile to show their latency.
#[derive(Default)]
struct Pending {
    /// Records other than reads and writes, and the ticks they waited.
    others: Vec<(OpRecord, u32)>,
    reads: Vec<OpRecord>,
    writes: Vec<OpRecord>,
    /// Bytes counted on the wire that no read or write has been given yet.
    unclaimed_in: u64,
    unclaimed_out: u64,
    /// Bytes counted in the last tick: a transfer is over when a tick counts none.
    last_in: u64,
    last_out: u64,
    /// Ticks the waiting records (or, with none, the unclaimed bytes) have waited.
    waited: u32,
}

/// Ticks after which waiting records go on with what was counted so far.
const MAX_WAIT_TICKS: u32 = 5;
/// Ticks a record waits for its latency: smbd stores its profile about once a second
/// after a command, so the second tick after the audit line has it.
const LATENCY_TICKS: u32 = 2;

/// An SMB client's latest mean latency for the SMB2 command that does `op`.
type Latency<'a> = &'a dyn Fn(IpAddr, &str) -> Option<Duration>;

/// Send `rec` on with its latency.
fn send(mut rec: OpRecord, latency: Latency<'_>, observer: &dyn OpObserver) {
    rec.latency = latency(rec.client, rec.op);
    observer.record_owned(rec);
}

/// Give `bytes` to `records`, evenly, and send them on.
fn share_out(records: Vec<OpRecord>, bytes: u64, latency: Latency<'_>, observer: &dyn OpObserver) {
    let n = records.len() as u64;
    for (i, mut rec) in records.into_iter().enumerate() {
        rec.bytes = bytes / n + u64::from((i as u64) < bytes % n);
        send(rec, latency, observer);
    }
}

/// What the reader keeps between datagrams.
#[derive(Default)]
struct Reader {
    pending: HashMap<IpAddr, Pending>,
    /// smbd process → its client, from the audit lines' syslog headers.
    owners: HashMap<u32, IpAddr>,
    /// Failed logins, logged once a window per client.
    warnings: rushes_nas::peer_warnings::PeerWarnings,
}

/// Listen on `socket` (normally `/dev/log`) until the process ends.
pub fn run(
    socket: &Path,
    samba: crate::samba::Samba,
    directory: Arc<RwLock<Directory>>,
    observer: Arc<dyn OpObserver>,
) {
    // The receiver's queue length is fixed when the socket is made: raise the default
    // (10 datagrams) first, so a busy smbd waits less.
    let _ = std::fs::write("/proc/sys/net/unix/max_dgram_qlen", "1024");
    let _ = std::fs::remove_file(socket);
    let sock = match UnixDatagram::bind(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(socket = %socket.display(), error = %e, "cannot listen for the system log: no SMB activity");
            return;
        }
    };
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666));
    let _ = sock.set_read_timeout(Some(Duration::from_millis(250)));
    let mut reader = Reader::default();
    let mut profile = Profile::new(&samba);
    let mut wire = WireCounters::new(445);
    let mut last_tick = Instant::now();
    let mut buf = vec![0u8; 8192];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                handle(&text, &directory, &mut reader);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                tracing::warn!(error = %e, "system log socket");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            profile.sample(&mut reader.owners);
            let moved = wire.sample();
            let latency = |client: IpAddr, op: &str| {
                Command::for_op(op).and_then(|c| profile.latency(client, c))
            };
            settle(&mut reader.pending, moved, &latency, &*observer);
            reader.warnings.log_held_back();
        }
    }
}

/// Take one datagram: an audit line becomes a record that waits (reads and writes for
/// their bytes, all for their latency); any other program's line goes to our log.
fn handle(text: &str, directory: &RwLock<Directory>, reader: &mut Reader) {
    let Some(syslog) = split_syslog(text) else {
        return;
    };
    if syslog.tag == "smbd" {
        if is_samba_header(syslog.text) {
            return;
        }
        if let Some(failed) = parse_failed_login(syslog.text) {
            rushes_nas::peer_warn!(
                reader.warnings,
                failed.client,
                "SMB login failed",
                client = %failed.client,
                user = failed.user,
                status = failed.status,
                "SMB login refused"
            );
            return;
        }
    }
    if syslog.tag != "smbd_audit" {
        tracing::info!(target: "syslog", program = syslog.tag, pid = syslog.pid, "{}", syslog.text.trim());
        return;
    }
    let Some(line) = parse_audit(syslog.text) else {
        tracing::debug!(line = syslog.text, "audit line not understood");
        return;
    };
    if let Some(pid) = line.pid {
        reader.owners.insert(pid, line.client);
    }
    let rec = line.record(&directory.read().unwrap_or_else(|p| p.into_inner()));
    let pending = reader.pending.entry(line.client).or_default();
    match (rec.op, line.ok) {
        ("READ", true) => pending.reads.push(rec),
        ("WRITE", true) => pending.writes.push(rec),
        _ => pending.others.push((rec, 0)),
    }
}

/// Once a second: add the bytes each client moved, and send on the reads and writes
/// whose transfer is over (a tick that counted no more bytes in their direction), or
/// that waited long enough (a long transfer: later reads and writes take the rest).
fn settle(
    pending: &mut HashMap<IpAddr, Pending>,
    moved: HashMap<IpAddr, (u64, u64)>,
    latency: Latency<'_>,
    observer: &dyn OpObserver,
) {
    for p in pending.values_mut() {
        p.last_in = 0;
        p.last_out = 0;
    }
    for (client, (received, sent)) in moved {
        let p = pending.entry(client).or_default();
        p.unclaimed_in += received;
        p.unclaimed_out += sent;
        p.last_in = received;
        p.last_out = sent;
    }
    pending.retain(|_, p| {
        for (rec, waited) in std::mem::take(&mut p.others) {
            if waited + 1 >= LATENCY_TICKS {
                send(rec, latency, observer);
            } else {
                p.others.push((rec, waited + 1));
            }
        }
        p.waited += 1;
        let overdue = p.waited >= MAX_WAIT_TICKS;
        if !p.writes.is_empty() && ((p.last_in == 0 && p.unclaimed_in > 0) || overdue) {
            share_out(
                std::mem::take(&mut p.writes),
                p.unclaimed_in,
                latency,
                observer,
            );
            p.unclaimed_in = 0;
        }
        if !p.reads.is_empty() && ((p.last_out == 0 && p.unclaimed_out > 0) || overdue) {
            share_out(
                std::mem::take(&mut p.reads),
                p.unclaimed_out,
                latency,
                observer,
            );
            p.unclaimed_out = 0;
        }
        if p.reads.is_empty() && p.writes.is_empty() {
            // Bytes no read or write claims were protocol traffic (listings, metadata).
            if overdue {
                p.unclaimed_in = 0;
                p.unclaimed_out = 0;
            }
            if p.unclaimed_in + p.unclaimed_out == 0 {
                p.waited = 0;
            }
        }
        overdue.then(|| p.waited = 0);
        !(p.reads.is_empty()
            && p.writes.is_empty()
            && p.others.is_empty()
            && p.unclaimed_in + p.unclaimed_out == 0)
    });
}

/// Per-connection byte counters of the SMB port, from the kernel's socket diagnostics.
/// One connection's counters: (peer address, peer port), (bytes received, bytes
/// acknowledged by the peer).
type Counted = ((IpAddr, u16), (u64, u64));

/// A connection closed between two looks is reported by the kernel as it goes (the
/// socket-destroy multicast group), with its final counters.
#[derive(Default)]
struct WireCounters {
    /// (client address and port) → (bytes received, bytes acknowledged by the client).
    last: HashMap<(IpAddr, u16), (u64, u64)>,
    /// Final counters of connections closed since the last look.
    closed: Arc<std::sync::Mutex<Vec<Counted>>>,
}

impl WireCounters {
    fn new(port: u16) -> Self {
        let w = Self::default();
        let closed = Arc::clone(&w.closed);
        let _ = std::thread::Builder::new()
            .name("smb-closed".into())
            .spawn(move || {
                if let Err(e) = watch_closed(port, &closed) {
                    tracing::warn!(error = %e, "cannot follow closed SMB connections: bytes of very short sessions are not counted");
                }
            });
        w
    }

    /// Bytes in and out per client since the last call.
    fn sample(&mut self) -> HashMap<IpAddr, (u64, u64)> {
        let now = match tcp_connections(445) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read TCP counters");
                HashMap::new()
            }
        };
        let mut moved: HashMap<IpAddr, (u64, u64)> = HashMap::new();
        let mut add = |peer: &(IpAddr, u16), counters: (u64, u64), before: (u64, u64)| {
            let m = moved.entry(peer.0).or_default();
            m.0 += counters.0.saturating_sub(before.0);
            m.1 += counters.1.saturating_sub(before.1);
        };
        let closed = std::mem::take(&mut *self.closed.lock().unwrap_or_else(|p| p.into_inner()));
        for (peer, counters) in closed {
            if now.contains_key(&peer) {
                continue; // the port was reused already: the live one counts
            }
            let before = self.last.remove(&peer).unwrap_or((0, 0));
            add(&peer, counters, before);
        }
        for (peer, counters) in &now {
            add(
                peer,
                *counters,
                self.last.get(peer).copied().unwrap_or((0, 0)),
            );
        }
        self.last = now;
        moved
    }
}

/// Listen to the kernel's TCP socket-destroy notifications (IPv4 and IPv6) and keep the
/// final counters of connections to `port`.
fn watch_closed(port: u16, closed: &std::sync::Mutex<Vec<Counted>>) -> std::io::Result<()> {
    use rustix::net::{netlink, AddressFamily, SocketType};
    let fd = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        Some(netlink::SOCK_DIAG),
    )?;
    // SKNLGRP_INET_TCP_DESTROY is group 1, SKNLGRP_INET6_TCP_DESTROY group 3.
    rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1 | (1 << 2)))?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = rustix::io::read(&fd, &mut buf)?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            if len < 16 || off + len > n {
                break;
            }
            let msg = &buf[off + 16..off + len];
            if let Some(family) = msg.first().copied() {
                if let Some(found) = parse_diag(msg, family, port) {
                    closed.lock().unwrap_or_else(|p| p.into_inner()).push(found);
                }
            }
            off += (len + 3) & !3;
        }
    }
}

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const TCP_LISTEN: u32 = 10;

/// Every TCP connection to local port `port`: (peer address, peer port) → (bytes
/// received, bytes acknowledged by the peer), from NETLINK_SOCK_DIAG with TCP_INFO.
pub fn tcp_connections(port: u16) -> std::io::Result<HashMap<(IpAddr, u16), (u64, u64)>> {
    use rustix::net::{netlink, AddressFamily, SocketType};
    let fd = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        Some(netlink::SOCK_DIAG),
    )?;
    let mut found = HashMap::new();
    for family in [AF_INET, AF_INET6] {
        // nlmsghdr (16) + inet_diag_req_v2 (56).
        let mut req = Vec::with_capacity(72);
        req.extend_from_slice(&72u32.to_ne_bytes());
        req.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        req.extend_from_slice(&(0x1u16 | 0x300).to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
        req.extend_from_slice(&1u32.to_ne_bytes()); // seq
        req.extend_from_slice(&0u32.to_ne_bytes()); // pid
        req.push(family);
        req.push(IPPROTO_TCP);
        req.push(1 << (2 - 1)); // idiag_ext: INET_DIAG_INFO
        req.push(0);
        // Every state: a connection the client already closed (CLOSE_WAIT, LAST_ACK)
        // still has its counters.
        req.extend_from_slice(&(!(1u32 << TCP_LISTEN)).to_ne_bytes());
        req.resize(72, 0);
        rustix::io::write(&fd, &req)?;
        let mut buf = vec![0u8; 65536];
        'dump: loop {
            let n = rustix::io::read(&fd, &mut buf)?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                if len < 16 || off + len > n {
                    break;
                }
                match kind {
                    3 => break 'dump, // NLMSG_DONE
                    2 => {
                        return Err(std::io::Error::other("sock_diag refused the request"));
                    }
                    _ => {
                        if let Some((peer, counters)) =
                            parse_diag(&buf[off + 16..off + len], family, port)
                        {
                            found.insert(peer, counters);
                        }
                    }
                }
                off += (len + 3) & !3;
            }
            if n == 0 {
                break;
            }
        }
    }
    Ok(found)
}

/// One inet_diag_msg and its attributes: the peer and TCP_INFO's byte counters, if the
/// socket's local port is `port`.
fn parse_diag(msg: &[u8], family: u8, port: u16) -> Option<((IpAddr, u16), (u64, u64))> {
    if msg.len() < 72 {
        return None;
    }
    // inet_diag_sockid at 4: sport, dport (big-endian), src[16], dst[16].
    let sport = u16::from_be_bytes([msg[4], msg[5]]);
    if sport != port {
        return None;
    }
    let dport = u16::from_be_bytes([msg[6], msg[7]]);
    let dst = &msg[24..40];
    let peer: IpAddr = if family == AF_INET {
        IpAddr::from([dst[0], dst[1], dst[2], dst[3]])
    } else {
        IpAddr::from(<[u8; 16]>::try_from(dst).ok()?)
    }
    .to_canonical();
    let mut off = 72;
    while off + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[off], msg[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([msg[off + 2], msg[off + 3]]);
        if len < 4 || off + len > msg.len() {
            break;
        }
        // INET_DIAG_INFO: struct tcp_info; tcpi_bytes_acked at 120, tcpi_bytes_received
        // at 128.
        if kind == 2 && len >= 4 + 136 {
            let info = &msg[off + 4..off + len];
            let acked = u64::from_ne_bytes(info[120..128].try_into().ok()?);
            let received = u64::from_ne_bytes(info[128..136].try_into().ok()?);
            return Some(((peer, dport), (received, acked)));
        }
        off += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod failed_login_tests {
    use super::*;
    use crate::smb_lines::tests::FAILED;

    #[test]
    fn a_password_guesser_writes_one_line_however_many_guesses() {
        let directory = RwLock::new(Directory::default());
        let mut reader = Reader::default();
        reader.warnings.set_window(Duration::from_millis(200));
        for _ in 0..500 {
            handle(
                &format!("<29>Dec  5 19:01:00 smbd[18278]: {FAILED}"),
                &directory,
                &mut reader,
            );
        }
        assert!(
            reader.warnings.sweep().is_empty(),
            "the window is still open"
        );
        std::thread::sleep(Duration::from_millis(250));
        // The first was logged; the other 499 make the line at the window's end.
        let held = reader.warnings.sweep();
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].peer, held[0].kind, held[0].count),
            ("10.0.0.9".parse().unwrap(), "SMB login failed", 499)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// No latency known.
    fn none(_: IpAddr, _: &str) -> Option<Duration> {
        None
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<OpRecord>>);
    impl OpObserver for Seen {
        fn record(&self, op: &OpRecord) {
            self.0.lock().unwrap().push(op.clone());
        }
    }

    #[test]
    fn tcp_counters_show_the_bytes_of_each_connection_to_a_port() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7u8; 100_000]).unwrap();
        let mut got = vec![0u8; 100_000];
        server.read_exact(&mut got).unwrap();
        server.write_all(&[9u8; 5_000]).unwrap();
        let mut back = vec![0u8; 5_000];
        client.read_exact(&mut back).unwrap();
        let conns = tcp_connections(port).unwrap();
        let peer = client.local_addr().unwrap();
        let (received, acked) = conns[&(peer.ip(), peer.port())];
        assert_eq!(received, 100_000, "{conns:?}");
        assert_eq!(acked, 5_000, "{conns:?}");
        assert_eq!(conns.len(), 1, "only the connection to {port}: {conns:?}");
    }

    #[test]
    fn reads_without_measured_bytes_go_on_after_a_while_and_stray_bytes_are_dropped() {
        let seen = Seen::default();
        let mut reader = Reader::default();
        let dir = RwLock::new(Directory::default());
        handle(
            "<173>Nov 26 13:31:53 smbd_audit: 10.0.0.6|e|m|4242|pread_recv|ok|/x/a",
            &dir,
            &mut reader,
        );
        let pending = &mut reader.pending;
        for _ in 0..MAX_WAIT_TICKS {
            settle(pending, HashMap::new(), &none, &seen);
        }
        assert_eq!(seen.0.lock().unwrap()[0].bytes, 0);
        assert!(pending.is_empty());
        let client: IpAddr = "10.0.0.7".parse().unwrap();
        settle(pending, HashMap::from([(client, (100, 100))]), &none, &seen);
        for _ in 0..MAX_WAIT_TICKS {
            settle(pending, HashMap::new(), &none, &seen);
        }
        assert!(pending.is_empty(), "listing traffic is not kept forever");
    }

    #[test]
    fn closed_connections_report_their_final_counters() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let closed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let watcher = Arc::clone(&closed);
        std::thread::spawn(move || watch_closed(port, &watcher));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.write_all(&[1u8; 70_000]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let peer = client.local_addr().unwrap();
        drop(client);
        drop(server);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let got = closed.lock().unwrap().clone();
            if let Some((_, counters)) = got.iter().find(|(p, _)| *p == (peer.ip(), peer.port())) {
                // A FIN counts as one byte of sequence space.
                assert!((70_000..=70_001).contains(&counters.0), "{got:?}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no destroy notice: {got:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn wire_bytes_go_to_the_reads_and_writes_of_their_client() {
        let mut dir = Directory::default();
        dir.shares.insert(
            "media".into(),
            ("media".into(), PathBuf::from("/pools/fast/media")),
        );
        dir.uids.insert("editor".into(), 1000);
        let dir = RwLock::new(dir);
        let seen = Seen::default();
        let mut reader = Reader::default();
        for _ in 0..3 {
            handle(
                "<173>Nov 26 13:31:53 smbd_audit: 10.0.0.5|editor|media|4242|pwrite_recv|ok|/pools/fast/media/clip.mov",
                &dir,
                &mut reader,
            );
        }
        handle(
            "<173>Nov 26 13:31:53 smbd_audit: 10.0.0.5|editor|media|4242|unlinkat|ok|/pools/fast/media/old.mov",
            &dir,
            &mut reader,
        );
        let client: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(reader.owners[&4242], client, "smbd's pid names its client");
        // smbd's profile: this client's writes took 7 ms on average, its closes 2 ms.
        let latency = |c: IpAddr, op: &str| {
            (c == client).then(|| match op {
                "WRITE" => Duration::from_millis(7),
                _ => Duration::from_millis(2),
            })
        };
        let pending = &mut reader.pending;
        settle(
            pending,
            HashMap::from([(client, (2_000_000, 500))]),
            &latency,
            &seen,
        );
        assert!(
            seen.0.lock().unwrap().is_empty(),
            "the transfer is still going, and the delete waits for its latency"
        );
        settle(
            pending,
            HashMap::from([(client, (1_000_001, 0))]),
            &latency,
            &seen,
        );
        assert_eq!(seen.0.lock().unwrap().len(), 1, "the delete");
        settle(pending, HashMap::new(), &latency, &seen);
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), 4);
        let writes: Vec<&OpRecord> = seen.iter().filter(|r| r.op == "WRITE").collect();
        assert_eq!(writes.iter().map(|r| r.bytes).sum::<u64>(), 3_000_001);
        assert!(writes.iter().all(|r| r.path.as_deref() == Some("/clip.mov")
            && r.uid == Some(1000)
            && r.protocol == "smb"
            && r.latency == Some(Duration::from_millis(7))));
        assert_eq!(seen[0].path.as_deref(), Some("/old.mov"));
        assert_eq!(seen[0].latency, Some(Duration::from_millis(2)));
        assert!(pending
            .values()
            .all(|p| p.others.is_empty() && p.writes.is_empty()));
    }
}
