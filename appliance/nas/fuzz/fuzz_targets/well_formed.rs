//! Well-formed RPC calls around fuzzed arguments, over the TCP stream the server reads:
//! the first byte of the input picks the program and version among those a target
//! names, the second the procedure, the third the credential and whether the share's
//! root handle (from a real MNT) comes first in the arguments.

use std::sync::OnceLock;

use crate::common;

fn call(xid: u32, program: u32, version: u32, procedure: u32, uid: u32, args: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    for w in [xid, 0, 2, program, version, procedure, 1] {
        c.extend_from_slice(&w.to_be_bytes());
    }
    // AUTH_SYS: stamp, machine name "fuzz", uid, gid, one more group.
    let mut body = Vec::new();
    for w in [0u32, 4] {
        body.extend_from_slice(&w.to_be_bytes());
    }
    body.extend_from_slice(b"fuzz");
    for w in [uid, uid, 1, 100] {
        body.extend_from_slice(&w.to_be_bytes());
    }
    c.extend_from_slice(&(body.len() as u32).to_be_bytes());
    c.extend_from_slice(&body);
    // AUTH_NONE verifier.
    c.extend_from_slice(&[0; 8]);
    c.extend_from_slice(args);
    c
}

/// The share's root handle, as MNT gives it to clients (XDR opaque, with its length).
fn root_handle() -> &'static [u8] {
    static HANDLE: OnceLock<Vec<u8>> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let mut path = Vec::new();
        path.extend_from_slice(&6u32.to_be_bytes());
        path.extend_from_slice(b"/share\0\0");
        let reply = common::harness()
            .udp_datagram(&call(1, 100005, 3, 1, 0, &path))
            .expect("MNT answers");
        // mark(4) xid(4) REPLY(4) MSG_ACCEPTED(4) verifier(8) SUCCESS(4) status(4)
        let rest = &reply[32..];
        assert_eq!(&reply[28..32], &[0; 4], "MNT of the share failed");
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        rest[..4 + len].to_vec()
    })
}

/// One call of `programs`' made from `data`, sent to the server as a TCP record.
pub fn send(programs: &[(u32, u32)], data: &[u8]) {
    let [pick, procedure, flags, rest @ ..] = data else {
        return;
    };
    let (program, version) = programs[*pick as usize % programs.len()];
    let uid = if flags & 1 == 0 { 1000 } else { 0 };
    let mut args = Vec::new();
    if flags & 2 != 0 {
        args.extend_from_slice(root_handle());
    }
    args.extend_from_slice(rest);
    let record = call(
        u32::from_be_bytes([*pick, *procedure, *flags, 0x5a]),
        program,
        version,
        u32::from(*procedure % 32),
        uid,
        &args,
    );
    let mut stream = Vec::with_capacity(record.len() + 4);
    stream.extend_from_slice(&(0x8000_0000u32 | record.len() as u32).to_be_bytes());
    stream.extend_from_slice(&record);
    let _ = common::harness().tcp_stream(&stream);
}
