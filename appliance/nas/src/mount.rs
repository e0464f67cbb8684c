//! The MOUNT protocol (RFC 1813 appendix I): hands out the handle of a share (or of a
//! folder inside it, `/NAME/sub/dir`) to clients an export rule admits, and lists the
//! exports.

use std::net::IpAddr;
use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags};

use crate::activity::OpRecord;
use crate::rpc::AcceptError;
use crate::service::{MountEntry, Service, Share};
use crate::share::rule_for;
use crate::sys;
use crate::xdr::{put_bool, put_opaque, put_u32, XdrReader};

pub use crate::programs::MOUNT as PROGRAM;
/// MNT is answered for version 3; the other procedures for versions 1 to 3, whose
/// encodings are identical (`showmount` asks with version 1).
pub const VERSION: u32 = 3;
const MNTPATHLEN: usize = 1024;

const MNT3_OK: u32 = 0;
const MNT3ERR_NOENT: u32 = 2;
const MNT3ERR_ACCES: u32 = 13;
const MNT3ERR_NOTDIR: u32 = 20;
const MNT3ERR_NAMETOOLONG: u32 = 63;
const MNT3ERR_SERVERFAULT: u32 = 10006;

const AUTH_SYS: u32 = 1;

pub fn proc_name(procedure: u32) -> &'static str {
    ["NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"]
        .get(procedure as usize)
        .copied()
        .unwrap_or("UNKNOWN")
}

pub fn dispatch(
    svc: &Service,
    client: IpAddr,
    version: u32,
    procedure: u32,
    args: &[u8],
    out: &mut Vec<u8>,
    rec: &mut OpRecord,
) -> Result<(), AcceptError> {
    let mut r = XdrReader::new(args);
    match procedure {
        0 => {}
        1 if version == VERSION => {
            let path = match r.opaque(usize::MAX) {
                Ok(p) if p.len() > MNTPATHLEN => {
                    put_u32(out, MNT3ERR_NAMETOOLONG);
                    rec.status = Some(MNT3ERR_NAMETOOLONG);
                    return Ok(());
                }
                Ok(p) => String::from_utf8_lossy(p).into_owned(),
                Err(_) => return Err(AcceptError::GarbageArgs),
            };
            rec.name = Some(path.clone());
            let status = mnt(svc, client, &path, out, rec);
            rec.status = Some(status);
        }
        2 => {
            let mounts = svc.mounts.lock().map(|m| m.clone()).unwrap_or_default();
            for m in mounts {
                put_bool(out, true);
                put_opaque(out, m.client.to_string().as_bytes());
                put_opaque(out, m.path.as_bytes());
            }
            put_bool(out, false);
        }
        3 => {
            let path = r.opaque(MNTPATHLEN)?;
            let path = String::from_utf8_lossy(path);
            if let Ok(mut mounts) = svc.mounts.lock() {
                mounts.retain(|m| !(m.client == client && m.path == path));
            }
        }
        4 => {
            if let Ok(mut mounts) = svc.mounts.lock() {
                mounts.retain(|m| m.client != client);
            }
        }
        5 => {
            for share in &svc.shares() {
                put_bool(out, true);
                put_opaque(out, format!("/{}", share.name).as_bytes());
                for rule in &share.rules {
                    for net in &rule.clients {
                        put_bool(out, true);
                        put_opaque(out, net.to_string().as_bytes());
                    }
                }
                put_bool(out, false);
            }
            put_bool(out, false);
        }
        _ => return Err(AcceptError::ProcUnavail),
    }
    Ok(())
}

/// The handle of `rest` (a `/`-separated path below the share root), walked one
/// component at a time without following symlinks or climbing out with `..`.
fn subdir_handle(svc: &Service, share: &Share, rest: &str) -> Result<Vec<u8>, u32> {
    let mut dir = rustix::fs::openat(
        &share.root,
        c".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| MNT3ERR_SERVERFAULT)?;
    for component in rest.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if component == ".." {
            return Err(MNT3ERR_ACCES);
        }
        dir = rustix::fs::openat(
            &dir,
            component,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => MNT3ERR_NOENT,
            rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP => MNT3ERR_NOTDIR,
            _ => MNT3ERR_ACCES,
        })?;
    }
    let kernel = sys::name_to_handle(dir.as_fd(), c"").map_err(|_| MNT3ERR_SERVERFAULT)?;
    Ok(svc.key.encode(share.id, &kernel))
}

fn mnt(svc: &Service, client: IpAddr, path: &str, out: &mut Vec<u8>, rec: &mut OpRecord) -> u32 {
    let trimmed = path.trim_start_matches('/');
    let (name, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let Some(share) = svc.share_by_path(name) else {
        crate::peer_warn!(svc.warnings, client, "mount of no share", %client, path, "mount refused: no such share");
        put_u32(out, MNT3ERR_NOENT);
        return MNT3ERR_NOENT;
    };
    rec.share = Some(share.name.clone());
    if rule_for(&share.rules, client).is_none() {
        crate::peer_warn!(svc.warnings, client, "mount refused", %client, share = %share.name, "mount refused: client matches no export rule");
        put_u32(out, MNT3ERR_ACCES);
        return MNT3ERR_ACCES;
    }
    let fh = if rest.trim_matches('/').is_empty() {
        share.root_fh.clone()
    } else {
        sys::run_as_root().ok();
        match subdir_handle(svc, &share, rest) {
            Ok(fh) => fh,
            Err(status) => {
                tracing::info!(%client, path, status, "mount refused: no such folder in the share");
                put_u32(out, status);
                return status;
            }
        }
    };
    put_u32(out, MNT3_OK);
    put_opaque(out, &fh);
    put_u32(out, 1);
    put_u32(out, AUTH_SYS);
    if let Ok(mut mounts) = svc.mounts.lock() {
        let entry = MountEntry {
            client,
            path: path.to_string(),
        };
        if !mounts.contains(&entry) {
            mounts.push(entry);
        }
    }
    tracing::info!(%client, share = %share.name, "mounted");
    MNT3_OK
}
