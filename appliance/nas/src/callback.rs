//! Calls from this server to a client: the lock manager's GRANTED and `_RES` callbacks
//! and the status monitor's SM_NOTIFY, each found through the client's own portmapper.
//!
//! Every call is bounded: a few tries of a short timeout each, so a client that went
//! away costs its own callback a few seconds and nobody else anything (callbacks run on
//! their own threads, never on a request's).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

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
