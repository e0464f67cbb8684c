//! Keeping the appliance's clock with the NTP servers in its settings: a small SNTP
//! client (RFC 4330) that asks each server in turn, steps the clock when it is off by
//! more than 128 ms (only as the appliance; host mode measures and leaves it), and
//! reports the last result for the API.

use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds between 1900 (NTP's epoch) and 1970.
const NTP_TO_UNIX: f64 = 2_208_988_800.0;

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An NTP timestamp (32.32 fixed point since 1900) from Unix seconds.
fn to_ntp(unix: f64) -> [u8; 8] {
    let t = unix + NTP_TO_UNIX;
    let secs = t.trunc() as u32;
    let frac = ((t.fract()) * 4_294_967_296.0) as u32;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&secs.to_be_bytes());
    b[4..].copy_from_slice(&frac.to_be_bytes());
    b
}

fn from_ntp(b: &[u8]) -> f64 {
    let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64;
    let frac = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as f64 / 4_294_967_296.0;
    secs + frac - NTP_TO_UNIX
}

/// A client request: version 4, mode 3 (client), our transmit time.
pub fn request(t1: f64) -> [u8; 48] {
    let mut p = [0u8; 48];
    p[0] = (4 << 3) | 3;
    p[40..48].copy_from_slice(&to_ntp(t1));
    p
}

/// The clock offset (server minus us, seconds) and round-trip delay from a reply,
/// checked as RFC 4330 asks: server mode, our timestamp echoed, a synchronised server.
pub fn offset(reply: &[u8], t1: f64, t4: f64) -> Result<(f64, f64), String> {
    if reply.len() < 48 {
        return Err("short reply".into());
    }
    let mode = reply[0] & 7;
    let stratum = reply[1];
    let leap = reply[0] >> 6;
    if mode != 4 {
        return Err(format!("not a server reply (mode {mode})"));
    }
    if stratum == 0 || stratum > 15 || leap == 3 {
        return Err("the server is not synchronised".into());
    }
    if reply[24..32] != to_ntp(t1) {
        return Err("the reply does not answer our request".into());
    }
    let t2 = from_ntp(&reply[32..40]);
    let t3 = from_ntp(&reply[40..48]);
    Ok((((t2 - t1) + (t3 - t4)) / 2.0, (t4 - t1) - (t3 - t2)))
}

/// Ask one server (`host` or `host:port`).
pub fn query(server: &str, timeout: Duration) -> Result<(f64, f64), String> {
    let with_port = if server.parse::<std::net::SocketAddr>().is_ok() {
        server.to_string()
    } else if server.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{server}]:123")
    } else if server.matches(':').count() == 1 {
        server.to_string()
    } else {
        format!("{server}:123")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server} has no address"))?;
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let t1 = now_unix();
    sock.send_to(&request(t1), addr)
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    let mut buf = [0u8; 512];
    let (n, _) = sock
        .recv_from(&mut buf)
        .map_err(|e| format!("no answer from {server}: {e}"))?;
    let t4 = now_unix();
    offset(&buf[..n], t1, t4)
}

/// Step the system clock by `offset` seconds.
pub fn step(offset: f64) -> std::io::Result<()> {
    let target = now_unix() + offset;
    let ts = rustix::time::Timespec {
        tv_sec: target.trunc() as i64,
        tv_nsec: (target.fract() * 1e9) as _,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_one_second_ahead_reads_as_plus_one() {
        let t1 = 1_800_000_000.25;
        let mut reply = [0u8; 48];
        reply[0] = (4 << 3) | 4;
        reply[1] = 2;
        reply[24..32].copy_from_slice(&to_ntp(t1));
        reply[32..40].copy_from_slice(&to_ntp(t1 + 1.010)); // received 10 ms later, +1 s
        reply[40..48].copy_from_slice(&to_ntp(t1 + 1.011));
        let (off, delay) = offset(&reply, t1, t1 + 0.021).unwrap();
        assert!((off - 1.0).abs() < 0.001, "{off}");
        assert!((delay - 0.020).abs() < 0.001, "{delay}");
        reply[1] = 0;
        assert!(
            offset(&reply, t1, t1).is_err(),
            "an unsynchronised server is refused"
        );
        assert_eq!(request(t1)[0], 0x23);
    }
}
