//! Hand-made ONC RPC calls for the tests: records over UDP and TCP, their replies, and
//! the NLM v4 arguments a lock manager sends (independent of the server's own XDR code).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::{read_reply, rpc_record, word, User};

pub fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_be_bytes()).collect()
}

pub fn opaque(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + (4 - data.len() % 4) % 4, 0);
}

/// One call over UDP from `from`; the reply (without a record mark).
pub fn udp_call(
    from: &UdpSocket,
    to: SocketAddr,
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    args: &[u8],
) -> Vec<u8> {
    let record = rpc_record(xid, prog, vers, proc_, Some(&User::root()), args);
    from.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    from.send_to(&record[4..], to).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = from.recv_from(&mut buf).expect("an answer over UDP");
        if word(&buf[..n], 0) == xid {
            return buf[..n].to_vec();
        }
    }
}

/// One call over a new TCP connection; the reply.
pub fn tcp_call(
    to: SocketAddr,
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    args: &[u8],
) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&rpc_record(
        xid,
        prog,
        vers,
        proc_,
        Some(&User::new(1000, 1000)),
        args,
    ))
    .unwrap();
    read_reply(&mut s).unwrap()
}

/// accept_stat of a reply (0 SUCCESS, 1 PROG_UNAVAIL, 2 PROG_MISMATCH …); results at word 6.
pub fn accept_stat(reply: &[u8]) -> u32 {
    assert_eq!(
        (word(reply, 1), word(reply, 2)),
        (1, 0),
        "an accepted reply"
    );
    word(reply, 5)
}

/// nlm4_lock for `fh`, owner `svid`, the whole file.
pub fn nlm4_lock(fh: &[u8], svid: u32) -> Vec<u8> {
    let mut a = Vec::new();
    opaque(&mut a, b"suite-3");
    opaque(&mut a, fh);
    opaque(&mut a, format!("{svid}@suite-3").as_bytes());
    a.extend_from_slice(&words(&[svid, 0, 0, 0, 0]));
    a
}

pub fn lock_args(fh: &[u8], svid: u32, block: bool, reclaim: bool) -> Vec<u8> {
    let mut a = Vec::new();
    opaque(&mut a, b"cookie");
    a.extend_from_slice(&words(&[u32::from(block), 1]));
    a.extend_from_slice(&nlm4_lock(fh, svid));
    a.extend_from_slice(&words(&[u32::from(reclaim), 3]));
    a
}

pub fn test_args(fh: &[u8], svid: u32) -> Vec<u8> {
    let mut a = Vec::new();
    opaque(&mut a, b"cookie");
    a.extend_from_slice(&words(&[1]));
    a.extend_from_slice(&nlm4_lock(fh, svid));
    a
}

pub fn unlock_args(fh: &[u8], svid: u32) -> Vec<u8> {
    let mut a = Vec::new();
    opaque(&mut a, b"cookie");
    a.extend_from_slice(&nlm4_lock(fh, svid));
    a
}

/// The nlm4_stat of an NLM reply whose cookie is "cookie".
pub fn nlm_stat(reply: &[u8]) -> u32 {
    assert_eq!(accept_stat(reply), 0);
    word(reply, 6 + 1 + 2)
}

/// A TCP connection to `to` from the address `from` (any of 127.0.0.0/8 on loopback), so
/// one test can play several client machines.
pub fn tcp_from(from: std::net::IpAddr, to: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use rustix::net::{AddressFamily, SocketType};
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    rustix::net::bind(&socket, &SocketAddr::new(from, 0))?;
    rustix::net::connect(&socket, &to)?;
    Ok(std::net::TcpStream::from(socket))
}
