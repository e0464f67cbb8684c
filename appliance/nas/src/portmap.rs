//! The portmapper (RFC 1833): PMAP version 2 and rpcbind versions 3 and 4, over TCP and
//! UDP. It answers for the programs this server itself serves and nothing else; nobody
//! may register with it (SET and UNSET answer false), and indirect calls (CALLIT,
//! INDIRECT) are refused, since relaying them is how portmappers amplify attacks.
//!
//! Clients ask it where MOUNT, NFS, NLM and NSM listen: Linux' mount.nfs, macOS'
//! mount_nfs and Windows' Client for NFS always do, unless told the ports.

use std::net::{IpAddr, SocketAddr};

use crate::programs;
use crate::rpc::AcceptError;
use crate::xdr::{put_bool, put_opaque, put_u32, XdrReader};

pub use programs::{IPPROTO_TCP, IPPROTO_UDP, PORTMAP as PROGRAM, PORTMAP_V2 as VERSION};
/// Longest netid or universal address we read ("tcp6", "::ffff:1.2.3.4.8.1").
const MAX_STRING: usize = 256;

pub fn proc_name(version: u32, procedure: u32) -> &'static str {
    let names: &[&str] = if version == VERSION {
        &["NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"]
    } else {
        &[
            "NULL",
            "SET",
            "UNSET",
            "GETADDR",
            "DUMP",
            "CALLIT",
            "GETTIME",
            "UADDR2TADDR",
            "TADDR2UADDR",
            "GETVERSADDR",
            "INDIRECT",
            "GETADDRLIST",
            "GETSTAT",
        ]
    };
    names.get(procedure as usize).copied().unwrap_or("UNKNOWN")
}

/// A transport a program is offered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn ipproto(self) -> u32 {
        match self {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        }
    }

    /// The rpcbind netid for this transport over `ip`'s family.
    fn netid(self, v6: bool) -> &'static str {
        match (self, v6) {
            (Proto::Tcp, false) => "tcp",
            (Proto::Udp, false) => "udp",
            (Proto::Tcp, true) => "tcp6",
            (Proto::Udp, true) => "udp6",
        }
    }

    fn from_netid(netid: &[u8]) -> Option<(Proto, bool)> {
        match netid {
            b"tcp" => Some((Proto::Tcp, false)),
            b"udp" => Some((Proto::Udp, false)),
            b"tcp6" => Some((Proto::Tcp, true)),
            b"udp6" => Some((Proto::Udp, true)),
            _ => None,
        }
    }
}

/// One (program, version, transport, port) that is really served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub program: u32,
    pub version: u32,
    pub proto: Proto,
    pub port: u16,
}

/// Where this server listens: what the portmapper describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Endpoints {
    /// NFS over TCP, and MOUNT, NLM and NSM over TCP and UDP.
    pub nfs_port: u16,
    /// The portmapper's own port (111), or 0 if it only answers on `nfs_port`.
    pub portmap_port: u16,
    /// Whether the listening addresses are IPv6 ones (tcp6/udp6 netids).
    pub v6: bool,
}

impl Endpoints {
    /// Everything served, in the order DUMP lists it.
    pub fn registrations(&self) -> Vec<Registration> {
        let mut out = Vec::new();
        let both = [Proto::Tcp, Proto::Udp];
        let pm_port = if self.portmap_port != 0 {
            self.portmap_port
        } else {
            self.nfs_port
        };
        for version in [4, 3, 2] {
            for proto in both {
                out.push(Registration {
                    program: PROGRAM,
                    version,
                    proto,
                    port: pm_port,
                });
            }
        }
        let mut add = |program: u32, versions: &[u32], protos: &[Proto]| {
            for &version in versions {
                for &proto in protos {
                    out.push(Registration {
                        program,
                        version,
                        proto,
                        port: self.nfs_port,
                    });
                }
            }
        };
        add(programs::NFS, &[programs::NFS_V3], &[Proto::Tcp]);
        add(programs::MOUNT, programs::MOUNT_VERSIONS, &both);
        add(programs::NLM, programs::NLM_VERSIONS, &both);
        add(programs::NSM, &[programs::NSM_V1], &both);
        out
    }

    fn find(&self, program: u32, version: Option<u32>, proto: Proto) -> Option<Registration> {
        let regs = self.registrations();
        let exact = regs
            .iter()
            .find(|r| r.program == program && r.proto == proto && Some(r.version) == version);
        exact
            .or_else(|| {
                // rpcbind's GETADDR answers with any version of the program when the one
                // asked for is not there; GETVERSADDR passes an exact version.
                version
                    .is_none()
                    .then(|| {
                        regs.iter()
                            .find(|r| r.program == program && r.proto == proto)
                    })
                    .flatten()
            })
            .copied()
    }
}

/// The universal address of `ip` and `port` ("h1.h2.h3.h4.p1.p2", RFC 1833 §3).
pub fn uaddr(ip: IpAddr, port: u16) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    format!("{ip}.{}.{}", port >> 8, port & 0xff)
}

/// Read a universal address back ("10.0.0.1.8.1" → 10.0.0.1:2049).
pub fn parse_uaddr(text: &str) -> Option<SocketAddr> {
    let mut parts = text.rsplitn(3, '.');
    let lo: u8 = parts.next()?.parse().ok()?;
    let hi: u8 = parts.next()?.parse().ok()?;
    let ip: IpAddr = parts.next()?.parse().ok()?;
    Some(SocketAddr::new(ip, u16::from(hi) << 8 | u16::from(lo)))
}

/// Answer one portmapper call. `local` is the address the call reached, for the
/// addresses rpcbind hands out.
pub fn dispatch(
    endpoints: &Endpoints,
    local: IpAddr,
    version: u32,
    procedure: u32,
    args: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AcceptError> {
    let mut r = XdrReader::new(args);
    match (version, procedure) {
        (_, 0) => {}
        // SET and UNSET: nobody registers with us.
        (_, 1 | 2) => {
            skip_mapping(version, &mut r)?;
            put_bool(out, false);
        }
        (VERSION, 3) => {
            let (program, vers, protocol) = (r.u32()?, r.u32()?, r.u32()?);
            let _port = r.u32()?;
            let proto = match protocol {
                IPPROTO_TCP => Some(Proto::Tcp),
                IPPROTO_UDP => Some(Proto::Udp),
                _ => None,
            };
            let port = proto
                .and_then(|p| endpoints.find(program, Some(vers), p))
                .map_or(0, |reg| u32::from(reg.port));
            put_u32(out, port);
        }
        (VERSION, 4) => {
            for reg in endpoints.registrations() {
                put_bool(out, true);
                for v in [
                    reg.program,
                    reg.version,
                    reg.proto.ipproto(),
                    u32::from(reg.port),
                ] {
                    put_u32(out, v);
                }
            }
            put_bool(out, false);
        }
        // GETADDR (v3, v4) and GETVERSADDR (v4).
        (3 | 4, 3) | (4, 9) => {
            let (program, vers, netid) = read_rpcb(&mut r)?;
            let exact = procedure == 9;
            let found = Proto::from_netid(netid)
                .filter(|(_, v6)| *v6 == endpoints.v6)
                .and_then(|(proto, _)| {
                    endpoints
                        .find(program, Some(vers), proto)
                        .or_else(|| (!exact).then(|| endpoints.find(program, None, proto))?)
                });
            let addr = found.map_or(String::new(), |reg| uaddr(local, reg.port));
            put_opaque(out, addr.as_bytes());
        }
        (3 | 4, 4) => {
            for reg in endpoints.registrations() {
                put_bool(out, true);
                put_u32(out, reg.program);
                put_u32(out, reg.version);
                put_opaque(out, reg.proto.netid(endpoints.v6).as_bytes());
                put_opaque(out, uaddr(local, reg.port).as_bytes());
                put_opaque(out, b"superuser");
            }
            put_bool(out, false);
        }
        // GETTIME: seconds since 1970.
        (3 | 4, 6) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            put_u32(out, now as u32);
        }
        // UADDR2TADDR / TADDR2UADDR would convert addresses for a client's own use;
        // nothing asks a remote server for them.
        // GETADDRLIST (v4): every address of the version asked for, one per transport.
        (4, 11) => {
            let (program, vers, _netid) = read_rpcb(&mut r)?;
            for proto in [Proto::Tcp, Proto::Udp] {
                let Some(reg) = endpoints.find(program, Some(vers), proto) else {
                    continue;
                };
                put_bool(out, true);
                put_opaque(out, uaddr(local, reg.port).as_bytes());
                put_opaque(out, reg.proto.netid(endpoints.v6).as_bytes());
                // r_nc_semantics: NC_TPI_COTS_ORD (3) for TCP, NC_TPI_CLTS (1) for UDP.
                put_u32(out, if proto == Proto::Tcp { 3 } else { 1 });
                put_opaque(out, if endpoints.v6 { b"inet6" } else { b"inet" });
                put_opaque(out, if proto == Proto::Tcp { b"tcp" } else { b"udp" });
            }
            put_bool(out, false);
        }
        _ => return Err(AcceptError::ProcUnavail),
    }
    Ok(())
}

/// SET/UNSET's argument: a PMAP mapping (v2) or an rpcb (v3, v4).
fn skip_mapping(version: u32, r: &mut XdrReader<'_>) -> Result<(), AcceptError> {
    if version == VERSION {
        for _ in 0..4 {
            r.u32()?;
        }
    } else {
        read_rpcb(r)?;
    }
    Ok(())
}

/// An rpcb: program, version, netid, address and owner (the last two unused here).
fn read_rpcb<'a>(r: &mut XdrReader<'a>) -> Result<(u32, u32, &'a [u8]), AcceptError> {
    let program = r.u32()?;
    let version = r.u32()?;
    let netid = r.opaque(MAX_STRING)?;
    let _addr = r.opaque(MAX_STRING)?;
    let _owner = r.opaque(MAX_STRING)?;
    Ok((program, version, netid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: Endpoints = Endpoints {
        nfs_port: 2049,
        portmap_port: 111,
        v6: false,
    };
    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    fn call(version: u32, procedure: u32, args: &[u8]) -> Result<Vec<u8>, AcceptError> {
        let mut out = Vec::new();
        dispatch(&EP, HERE, version, procedure, args, &mut out).map(|()| out)
    }

    fn words(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn rpcb(program: u32, version: u32, netid: &str) -> Vec<u8> {
        let mut a = words(&[program, version]);
        put_opaque(&mut a, netid.as_bytes());
        put_opaque(&mut a, b"");
        put_opaque(&mut a, b"");
        a
    }

    fn string(reply: &[u8]) -> String {
        let mut r = XdrReader::new(reply);
        String::from_utf8(r.opaque(256).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn getport_names_exactly_what_is_served() {
        let port = |p, v, proto| {
            u32::from_be_bytes(
                call(2, 3, &words(&[p, v, proto, 0])).unwrap()[..4]
                    .try_into()
                    .unwrap(),
            )
        };
        assert_eq!(port(100003, 3, IPPROTO_TCP), 2049);
        assert_eq!(port(100003, 3, IPPROTO_UDP), 0, "no NFS over UDP");
        assert_eq!(port(100003, 4, IPPROTO_TCP), 0, "no NFSv4");
        assert_eq!(port(100005, 3, IPPROTO_UDP), 2049);
        assert_eq!(port(100005, 1, IPPROTO_TCP), 2049);
        assert_eq!(port(100005, 2, IPPROTO_TCP), 0);
        assert_eq!(port(100021, 4, IPPROTO_UDP), 2049);
        assert_eq!(port(100021, 1, IPPROTO_TCP), 2049);
        assert_eq!(port(100024, 1, IPPROTO_UDP), 2049);
        assert_eq!(port(100000, 2, IPPROTO_UDP), 111);
        assert_eq!(port(100227, 3, IPPROTO_TCP), 0, "no NFS_ACL");
        assert_eq!(port(100003, 3, 99), 0);
    }

    #[test]
    fn getaddr_answers_universal_addresses_for_the_netid() {
        let a = call(4, 3, &rpcb(100005, 3, "udp")).unwrap();
        assert_eq!(string(&a), "10.1.2.3.8.1");
        assert_eq!(
            parse_uaddr("10.1.2.3.8.1"),
            Some("10.1.2.3:2049".parse().unwrap())
        );
        // An IPv6 netid on an IPv4 server, and an unknown program: the empty address.
        assert_eq!(string(&call(4, 3, &rpcb(100005, 3, "udp6")).unwrap()), "");
        assert_eq!(string(&call(3, 3, &rpcb(100227, 3, "tcp")).unwrap()), "");
        // GETADDR falls back to another version; GETVERSADDR does not.
        assert_eq!(
            string(&call(3, 3, &rpcb(100003, 2, "tcp")).unwrap()),
            "10.1.2.3.8.1"
        );
        assert_eq!(string(&call(4, 9, &rpcb(100003, 2, "tcp")).unwrap()), "");
        assert_eq!(
            string(&call(4, 9, &rpcb(100003, 3, "tcp")).unwrap()),
            "10.1.2.3.8.1"
        );
    }

    #[test]
    fn dump_lists_every_registration_in_both_encodings() {
        let n = EP.registrations().len();
        let v2 = call(2, 4, &[]).unwrap();
        assert_eq!(v2.len(), n * 20 + 4);
        let v4 = call(4, 4, &[]).unwrap();
        let mut r = XdrReader::new(&v4);
        let mut seen = 0;
        while r.bool().unwrap() {
            let (_p, _v) = (r.u32().unwrap(), r.u32().unwrap());
            let netid = r.opaque(16).unwrap();
            assert!(netid == b"tcp" || netid == b"udp");
            parse_uaddr(std::str::from_utf8(r.opaque(64).unwrap()).unwrap()).unwrap();
            r.opaque(16).unwrap();
            seen += 1;
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn set_is_refused_and_callit_unavailable() {
        assert_eq!(call(2, 1, &words(&[1, 1, 6, 5])).unwrap(), words(&[0]));
        assert_eq!(call(4, 1, &rpcb(1, 1, "tcp")).unwrap(), words(&[0]));
        assert_eq!(call(2, 5, &[]), Err(AcceptError::ProcUnavail));
        assert_eq!(call(4, 10, &[]), Err(AcceptError::ProcUnavail));
    }

    #[test]
    fn malformed_arguments_are_garbage() {
        assert_eq!(call(2, 3, &words(&[1, 2])), Err(AcceptError::GarbageArgs));
        let mut huge = words(&[100003, 3]);
        put_u32(&mut huge, 1 << 30);
        assert_eq!(call(4, 3, &huge), Err(AcceptError::GarbageArgs));
        assert_eq!(call(4, 11, &[0; 3]), Err(AcceptError::GarbageArgs));
    }

    #[test]
    fn getaddrlist_gives_both_transports() {
        let a = call(4, 11, &rpcb(100021, 4, "tcp")).unwrap();
        let mut r = XdrReader::new(&a);
        let mut netids = Vec::new();
        while r.bool().unwrap() {
            r.opaque(64).unwrap();
            netids.push(r.opaque(8).unwrap().to_vec());
            r.u32().unwrap();
            r.opaque(8).unwrap();
            r.opaque(8).unwrap();
        }
        assert_eq!(netids, vec![b"tcp".to_vec(), b"udp".to_vec()]);
    }
}
