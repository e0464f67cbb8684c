//! ONC RPC v2 (RFC 5531) messages: parsing calls, AUTH_SYS credentials, building replies.
//!
//! Every reply buffer starts with four reserved bytes for the TCP record mark, so the
//! connection writer sends it without another copy.

use crate::xdr::{put_u32, Garbage, XdrReader};

pub const RPC_VERSION: u32 = 2;
const MSG_CALL: u32 = 0;
const MSG_REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;

pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;
/// RFC 5531 limits an authenticator body to 400 bytes.
const MAX_AUTH_BODY: usize = 400;
/// RFC 5531: the AUTH_SYS group list holds at most 16 supplementary groups.
const MAX_AUTH_SYS_GIDS: usize = 16;

/// The transport a call came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// Where a call came from and which of our addresses it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub peer: std::net::SocketAddr,
    pub local: std::net::SocketAddr,
    pub transport: Transport,
}

impl Origin {
    /// The address the call reached. A UDP socket bound to every address does not say
    /// which one, so it is found, when asked for (the portmapper's addresses, the name a
    /// locking client knows us by), as the one the kernel would answer from.
    pub fn local_ip(&self) -> std::net::IpAddr {
        if !self.local.ip().is_unspecified() {
            return self.local.ip();
        }
        let any = std::net::SocketAddr::new(self.local.ip(), 0);
        std::net::UdpSocket::bind(any)
            .and_then(|s| s.connect(self.peer).and_then(|()| s.local_addr()))
            .map_or(self.local.ip(), |a| a.ip())
    }
}

/// `accept_stat` values other than SUCCESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    ProgUnavail,
    ProgMismatch { low: u32, high: u32 },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

impl From<Garbage> for AcceptError {
    fn from(_: Garbage) -> Self {
        AcceptError::GarbageArgs
    }
}

/// `auth_stat` values for a denied call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    BadCred = 1,
    TooWeak = 5,
}

/// The credentials a caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Sys(AuthSys),
}

/// AUTH_SYS (AUTH_UNIX) credentials: who the client says the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSys {
    pub machine: String,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

/// The header of an RPC call; the procedure's arguments follow at `args_offset`.
#[derive(Debug, Clone)]
pub struct CallHeader {
    pub xid: u32,
    pub rpc_version: u32,
    pub program: u32,
    pub version: u32,
    pub procedure: u32,
    pub credential: Result<Credential, AuthError>,
    pub args_offset: usize,
}

/// Why a record could not be answered as an RPC call at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// Not even an xid and message type: nothing to reply to.
    Unparseable,
    /// A REPLY sent to a server, or a call header cut short: reply GARBAGE_ARGS to `xid`.
    Malformed { xid: u32 },
}

/// Parse the call header at the start of `record`.
pub fn parse_call(record: &[u8]) -> Result<CallHeader, CallError> {
    let mut r = XdrReader::new(record);
    let xid = r.u32().map_err(|_| CallError::Unparseable)?;
    let malformed = CallError::Malformed { xid };
    if r.u32().map_err(|_| malformed)? != MSG_CALL {
        return Err(malformed);
    }
    let mut fields = || -> Result<_, Garbage> {
        let rpc_version = r.u32()?;
        let program = r.u32()?;
        let version = r.u32()?;
        let procedure = r.u32()?;
        let cred_flavor = r.u32()?;
        let cred_body = r.opaque(MAX_AUTH_BODY)?;
        let _verf_flavor = r.u32()?;
        let _verf_body = r.opaque(MAX_AUTH_BODY)?;
        Ok((
            rpc_version,
            program,
            version,
            procedure,
            cred_flavor,
            cred_body,
        ))
    };
    let (rpc_version, program, version, procedure, cred_flavor, cred_body) =
        fields().map_err(|_| malformed)?;
    let credential = match cred_flavor {
        AUTH_NONE => Ok(Credential::None),
        AUTH_SYS => parse_auth_sys(cred_body).map(Credential::Sys),
        _ => Err(AuthError::TooWeak),
    };
    Ok(CallHeader {
        xid,
        rpc_version,
        program,
        version,
        procedure,
        credential,
        args_offset: r.position(),
    })
}

fn parse_auth_sys(body: &[u8]) -> Result<AuthSys, AuthError> {
    let mut r = XdrReader::new(body);
    let mut parse = || -> Result<AuthSys, Garbage> {
        let _stamp = r.u32()?;
        let machine = String::from_utf8_lossy(r.opaque(255)?).into_owned();
        let uid = r.u32()?;
        let gid = r.u32()?;
        let n = r.u32()? as usize;
        if n > MAX_AUTH_SYS_GIDS {
            return Err(Garbage);
        }
        let gids = (0..n).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
        Ok(AuthSys {
            machine,
            uid,
            gid,
            gids,
        })
    };
    parse().map_err(|_| AuthError::BadCred)
}

/// Start a reply buffer: record-mark space, xid, REPLY.
fn reply_start(xid: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity.max(64));
    out.extend_from_slice(&[0; 4]);
    put_u32(&mut out, xid);
    put_u32(&mut out, MSG_REPLY);
    out
}

/// A successful reply header; the procedure's results are appended by the caller.
pub fn reply_success(xid: u32, capacity: usize) -> Vec<u8> {
    let mut out = reply_start(xid, capacity);
    put_u32(&mut out, MSG_ACCEPTED);
    put_u32(&mut out, AUTH_NONE); // verifier flavor
    put_u32(&mut out, 0); // verifier length
    put_u32(&mut out, 0); // SUCCESS
    out
}

/// An accepted-but-failed reply (PROG_UNAVAIL, GARBAGE_ARGS, …).
pub fn reply_accept_error(xid: u32, err: AcceptError) -> Vec<u8> {
    let mut out = reply_start(xid, 40);
    put_u32(&mut out, MSG_ACCEPTED);
    put_u32(&mut out, AUTH_NONE);
    put_u32(&mut out, 0);
    match err {
        AcceptError::ProgUnavail => put_u32(&mut out, 1),
        AcceptError::ProgMismatch { low, high } => {
            put_u32(&mut out, 2);
            put_u32(&mut out, low);
            put_u32(&mut out, high);
        }
        AcceptError::ProcUnavail => put_u32(&mut out, 3),
        AcceptError::GarbageArgs => put_u32(&mut out, 4),
        AcceptError::SystemErr => put_u32(&mut out, 5),
    }
    out
}

/// A denied reply for a call whose RPC version is not 2.
pub fn reply_rpc_mismatch(xid: u32) -> Vec<u8> {
    let mut out = reply_start(xid, 32);
    put_u32(&mut out, MSG_DENIED);
    put_u32(&mut out, 0); // RPC_MISMATCH
    put_u32(&mut out, RPC_VERSION);
    put_u32(&mut out, RPC_VERSION);
    out
}

/// A denied reply for credentials we cannot accept.
pub fn reply_auth_error(xid: u32, err: AuthError) -> Vec<u8> {
    let mut out = reply_start(xid, 24);
    put_u32(&mut out, MSG_DENIED);
    put_u32(&mut out, 1); // AUTH_ERROR
    put_u32(&mut out, err as u32);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::put_opaque;

    fn call(cred_flavor: u32, cred: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        for v in [7, MSG_CALL, 2, 100003, 3, 1, cred_flavor] {
            put_u32(&mut m, v);
        }
        put_opaque(&mut m, cred);
        put_u32(&mut m, AUTH_NONE);
        put_u32(&mut m, 0);
        m.extend_from_slice(b"ARGS");
        m
    }

    fn auth_sys(uid: u32, gid: u32, gids: &[u32]) -> Vec<u8> {
        let mut b = Vec::new();
        put_u32(&mut b, 0);
        put_opaque(&mut b, b"edit-bay-3");
        put_u32(&mut b, uid);
        put_u32(&mut b, gid);
        put_u32(&mut b, gids.len() as u32);
        gids.iter().for_each(|g| put_u32(&mut b, *g));
        b
    }

    #[test]
    fn parses_auth_sys_call() {
        let m = call(AUTH_SYS, &auth_sys(1000, 100, &[4, 27]));
        let h = parse_call(&m).unwrap();
        assert_eq!(
            (h.xid, h.program, h.version, h.procedure),
            (7, 100003, 3, 1)
        );
        let Ok(Credential::Sys(a)) = h.credential else {
            panic!("expected AUTH_SYS")
        };
        assert_eq!(
            (a.uid, a.gid, a.gids, a.machine.as_str()),
            (1000, 100, vec![4, 27], "edit-bay-3")
        );
        assert_eq!(&m[h.args_offset..], b"ARGS");
    }

    #[test]
    fn too_many_groups_is_bad_cred() {
        let gids: Vec<u32> = (0..17).collect();
        let h = parse_call(&call(AUTH_SYS, &auth_sys(1, 1, &gids))).unwrap();
        assert_eq!(h.credential, Err(AuthError::BadCred));
    }

    #[test]
    fn unknown_flavor_is_too_weak() {
        let h = parse_call(&call(6, b"")).unwrap();
        assert_eq!(h.credential, Err(AuthError::TooWeak));
    }

    #[test]
    fn truncated_header_is_malformed_with_xid() {
        let m = call(AUTH_NONE, b"");
        assert_eq!(
            parse_call(&m[..20]).unwrap_err(),
            CallError::Malformed { xid: 7 }
        );
        assert_eq!(parse_call(&m[..3]).unwrap_err(), CallError::Unparseable);
    }
}
