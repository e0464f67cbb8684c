//! A minimal portmapper (RFC 1833, version 2): tells clients that MOUNT and NFS listen on
//! this same TCP port, so `mount -o port=N,mountport=N` is not even needed.

use crate::mount;
use crate::nfs3;
use crate::rpc::AcceptError;
use crate::xdr::{put_bool, put_u32, XdrReader};

pub const PROGRAM: u32 = 100000;
pub const VERSION: u32 = 2;
const IPPROTO_TCP: u32 = 6;

pub fn proc_name(procedure: u32) -> &'static str {
    ["NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"]
        .get(procedure as usize)
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The programs we serve, as (program, version).
const SERVED: [(u32, u32); 3] = [
    (PROGRAM, VERSION),
    (mount::PROGRAM, mount::VERSION),
    (nfs3::PROGRAM, nfs3::VERSION),
];

pub fn dispatch(
    port: u16,
    procedure: u32,
    args: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AcceptError> {
    let mut r = XdrReader::new(args);
    match procedure {
        0 => {}
        // SET and UNSET: nobody registers with us.
        1 | 2 => put_bool(out, false),
        3 => {
            let (program, version, protocol) = (r.u32()?, r.u32()?, r.u32()?);
            let _port = r.u32()?;
            let served = protocol == IPPROTO_TCP && SERVED.contains(&(program, version));
            put_u32(out, if served { u32::from(port) } else { 0 });
        }
        4 => {
            for (program, version) in SERVED {
                put_bool(out, true);
                for v in [program, version, IPPROTO_TCP, u32::from(port)] {
                    put_u32(out, v);
                }
            }
            put_bool(out, false);
        }
        _ => return Err(AcceptError::ProcUnavail),
    }
    Ok(())
}
