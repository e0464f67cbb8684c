//! NFSv3 (RFC 1813) procedures over local directories.
//!
//! Identity: every handle is decoded as root (`open_by_handle_at` needs it), then the
//! thread switches to the caller's squashed uid/gids and the kernel performs the
//! namespace operation, so permissions, ownership of new files, sticky and setgid
//! directories and ACLs behave exactly as for a local user. READ and WRITE check
//! permissions here, with the owner override knfsd also applies (a file created 0444
//! stays writable by the open that created it), then do the I/O on a descriptor opened
//! as root.

use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nfsserve::nfs::{
    fattr3, fsinfo3, ftype3, nfsstat3, nfstime3, post_op_attr, pre_op_attr, sattr3, set_atime,
    set_gid3, set_mode3, set_mtime, set_size3, set_uid3, specdata3, wcc_attr, wcc_data,
    FSF_CANSETTIME, FSF_HOMOGENEOUS, FSF_LINK, FSF_SYMLINK, NFS3_FHSIZE,
};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps, CWD};
use rustix::io::Errno;

use rushes_placement::layout::{DataLocation, DataPlaces, Doomed, IoTicket, Resolved};
use rushes_placement::stub::RecallError;

use crate::activity::OpRecord;
use crate::handle::HandleKey;
use crate::rpc::{AcceptError, AuthSys};
use crate::service::{Service, Share};
use crate::share::{rule_for, Caller, MapCaller};
use crate::sys::{self, KernelHandle};
use crate::xdr::{pad, put, put_bool, put_opaque, put_u32, put_u64, Garbage, XdrReader};

pub use crate::programs::{NFS as PROGRAM, NFS_V3 as VERSION};
/// Largest READ/WRITE payload, advertised in FSINFO as rtmax/wtmax.
pub const MAX_IO: u32 = 1 << 20;
/// READs of at least this many bytes send their data with sendfile(2) from the page
/// cache to the socket, with no copy through our memory; smaller ones are copied.
const SENDFILE_MIN: usize = 32 * 1024;
/// Preferred READDIR reply size advertised in FSINFO.
const DTPREF: u32 = 64 * 1024;

use nfsstat3::*;

type NfsResult<T> = Result<T, nfsstat3>;

const PROC_NAMES: [&str; 22] = [
    "NULL",
    "GETATTR",
    "SETATTR",
    "LOOKUP",
    "ACCESS",
    "READLINK",
    "READ",
    "WRITE",
    "CREATE",
    "MKDIR",
    "SYMLINK",
    "MKNOD",
    "REMOVE",
    "RMDIR",
    "RENAME",
    "LINK",
    "READDIR",
    "READDIRPLUS",
    "FSSTAT",
    "FSINFO",
    "PATHCONF",
    "COMMIT",
];

pub fn proc_name(procedure: u32) -> &'static str {
    PROC_NAMES
        .get(procedure as usize)
        .copied()
        .unwrap_or("UNKNOWN")
}

const ACCESS3_READ: u32 = 0x01;
const ACCESS3_LOOKUP: u32 = 0x02;
const ACCESS3_MODIFY: u32 = 0x04;
const ACCESS3_EXTEND: u32 = 0x08;
const ACCESS3_DELETE: u32 = 0x10;
const ACCESS3_EXECUTE: u32 = 0x20;

const UNSTABLE: u32 = 0;
const DATA_SYNC: u32 = 1;
const FILE_SYNC: u32 = 2;

/// Map a kernel error to the NFS status a client understands.
pub fn errno_stat(e: Errno) -> nfsstat3 {
    match e {
        Errno::PERM => NFS3ERR_PERM,
        Errno::NOENT => NFS3ERR_NOENT,
        Errno::NXIO => NFS3ERR_NXIO,
        Errno::ACCESS => NFS3ERR_ACCES,
        Errno::EXIST => NFS3ERR_EXIST,
        Errno::XDEV => NFS3ERR_XDEV,
        Errno::NODEV => NFS3ERR_NODEV,
        Errno::NOTDIR => NFS3ERR_NOTDIR,
        Errno::ISDIR => NFS3ERR_ISDIR,
        Errno::INVAL | Errno::LOOP => NFS3ERR_INVAL,
        Errno::FBIG => NFS3ERR_FBIG,
        Errno::NOSPC => NFS3ERR_NOSPC,
        Errno::ROFS => NFS3ERR_ROFS,
        Errno::MLINK => NFS3ERR_MLINK,
        Errno::NAMETOOLONG => NFS3ERR_NAMETOOLONG,
        Errno::NOTEMPTY => NFS3ERR_NOTEMPTY,
        Errno::DQUOT => NFS3ERR_DQUOT,
        Errno::STALE => NFS3ERR_STALE,
        Errno::NOTSUP => NFS3ERR_NOTSUPP,
        _ => NFS3ERR_IO,
    }
}

fn io_stat(e: std::io::Error) -> nfsstat3 {
    e.raw_os_error()
        .map(|n| errno_stat(Errno::from_raw_os_error(n)))
        .unwrap_or(NFS3ERR_IO)
}

fn nfstime(sec: i64, nsec: u64) -> nfstime3 {
    nfstime3 {
        seconds: sec as u32,
        nseconds: nsec as u32,
    }
}

fn ftype(mode: u32) -> ftype3 {
    match FileType::from_raw_mode(mode) {
        FileType::Directory => ftype3::NF3DIR,
        FileType::Symlink => ftype3::NF3LNK,
        FileType::BlockDevice => ftype3::NF3BLK,
        FileType::CharacterDevice => ftype3::NF3CHR,
        FileType::Fifo => ftype3::NF3FIFO,
        FileType::Socket => ftype3::NF3SOCK,
        _ => ftype3::NF3REG,
    }
}

/// What names one inode for as long as it exists, and not a later one that reuses its
/// number: the inode number with its birth time (when the file system reports one).
fn statx_identity(s: &rustix::fs::Statx) -> Option<(u64, i64, u32)> {
    (s.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0).then_some((
        s.stx_ino,
        s.stx_btime.tv_sec,
        s.stx_btime.tv_nsec,
    ))
}

fn statx_fattr(fsid: u32, s: &rustix::fs::Statx) -> fattr3 {
    let mode = u32::from(s.stx_mode);
    let time = |t: &rustix::fs::StatxTimestamp| nfstime(t.tv_sec, u64::from(t.tv_nsec));
    fattr3 {
        ftype: ftype(mode),
        mode: mode & 0o7777,
        nlink: s.stx_nlink,
        uid: s.stx_uid,
        gid: s.stx_gid,
        size: s.stx_size,
        used: s.stx_blocks * 512,
        rdev: specdata3 {
            specdata1: s.stx_rdev_major,
            specdata2: s.stx_rdev_minor,
        },
        fsid: u64::from(fsid),
        fileid: s.stx_ino,
        atime: time(&s.stx_atime),
        mtime: time(&s.stx_mtime),
        ctime: time(&s.stx_ctime),
    }
}

fn to_fattr(fsid: u32, st: &Stat) -> fattr3 {
    fattr3 {
        ftype: ftype(st.st_mode),
        mode: st.st_mode & 0o7777,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        used: st.st_blocks as u64 * 512,
        rdev: specdata3 {
            specdata1: rustix::fs::major(st.st_rdev),
            specdata2: rustix::fs::minor(st.st_rdev),
        },
        fsid: u64::from(fsid),
        fileid: st.st_ino,
        atime: nfstime(st.st_atime, st.st_atime_nsec),
        mtime: nfstime(st.st_mtime, st.st_mtime_nsec),
        ctime: nfstime(st.st_ctime, st.st_ctime_nsec),
    }
}

fn to_wcc_attr(st: &Stat) -> wcc_attr {
    wcc_attr {
        size: st.st_size as u64,
        mtime: nfstime(st.st_mtime, st.st_mtime_nsec),
        ctime: nfstime(st.st_ctime, st.st_ctime_nsec),
    }
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Permission bits (4 read, 2 write, 1 execute) that apply to `caller` on `st`.
fn class_bits(st: &Stat, caller: &Caller) -> u32 {
    let mode = st.st_mode;
    if st.st_uid == caller.uid {
        (mode >> 6) & 7
    } else if caller.in_group(st.st_gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

/// Whether `caller` may do `want` (4/2/1) under the mode bits, as the kernel decides for
/// a local process (root may read and write anything, and execute what has an x bit).
fn may(st: &Stat, caller: &Caller, want: u32) -> bool {
    if caller.uid == 0 {
        return want & 1 == 0 || is_dir(st) || st.st_mode & 0o111 != 0;
    }
    class_bits(st, caller) & want == want
}

/// READ/WRITE permission: the owner may always do I/O on their own file (knfsd's owner
/// override), and a file that can be executed can be read (clients page in binaries).
fn may_io(st: &Stat, caller: &Caller, write: bool) -> bool {
    if caller.uid == 0 || st.st_uid == caller.uid {
        return true;
    }
    let bits = class_bits(st, caller);
    if write {
        bits & 2 != 0
    } else {
        bits & 5 != 0
    }
}

/// A directory entry name from the wire, checked.
fn entry_name(name: &[u8]) -> NfsResult<CString> {
    if name.is_empty() {
        return Err(NFS3ERR_NOENT);
    }
    if name.len() > 255 {
        return Err(NFS3ERR_NAMETOOLONG);
    }
    if name.contains(&b'/') {
        return Err(NFS3ERR_ACCES);
    }
    CString::new(name).map_err(|_| NFS3ERR_ACCES)
}

/// The name a call gave, for its record, when anything reads it: only the `tracing`
/// events do (the rollups and the audit log use the path), so most calls keep it
/// unallocated.
fn record_name(name: &[u8]) -> Option<String> {
    tracing::enabled!(target: "rushes::activity", tracing::Level::DEBUG)
        .then(|| String::from_utf8_lossy(name).into_owned())
}

/// Where `fd` is inside `share` now (for activity records), when recording.
fn share_path(svc: &Service, share: &Share, fd: BorrowedFd<'_>) -> Option<String> {
    svc.record_paths
        .then(|| svc.paths.of(&share.path, fd))
        .flatten()
}

/// A file handle argument resolved to its share and the identity the call runs as.
struct Obj {
    share: Arc<Share>,
    caller: Caller,
    read_only: bool,
    kernel: KernelHandle,
}

impl Obj {
    /// Open the object as root with `flags` (O_PATH, O_RDONLY, O_WRONLY …).
    fn open(&self, flags: i32) -> NfsResult<OwnedFd> {
        sys::run_as_root().map_err(|_| NFS3ERR_SERVERFAULT)?;
        sys::open_by_handle(
            self.share.root.as_fd(),
            &self.kernel,
            flags | libc::O_NOFOLLOW,
        )
        .map_err(io_stat)
    }

    /// Open the object for its data with `flags`, refusing special files before they
    /// are opened: opening a FIFO would block, and opening a device node would reach
    /// the device, so no client can get at the box's own disks through one. Directories
    /// pass only when `dirs` (COMMIT).
    fn open_data(&self, flags: i32, dirs: bool) -> NfsResult<OwnedFd> {
        let path = self.open(libc::O_PATH)?;
        let st = rustix::fs::fstat(&path).map_err(errno_stat)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory if dirs => {}
            FileType::Directory => return Err(NFS3ERR_ISDIR),
            _ => return Err(NFS3ERR_INVAL),
        }
        self.open(flags)
    }

    /// Switch this thread to the caller's identity for a kernel-checked operation.
    fn act(&self) -> NfsResult<()> {
        sys::run_as(&self.caller).map_err(|_| NFS3ERR_SERVERFAULT)
    }

    fn writable(&self) -> NfsResult<()> {
        if self.read_only {
            Err(NFS3ERR_ROFS)
        } else {
            Ok(())
        }
    }

    fn fattr(&self, st: &Stat) -> fattr3 {
        to_fattr(self.share.id, st)
    }

    fn is_share_root(&self, st: &Stat) -> bool {
        st.st_dev == self.share.root_dev && st.st_ino == self.share.root_ino
    }

    fn post_op(&self, fd: BorrowedFd<'_>) -> post_op_attr {
        match rustix::fs::fstat(fd) {
            Ok(st) => post_op_attr::attributes(self.fattr(&st)),
            Err(_) => post_op_attr::Void,
        }
    }

    /// The handle and attributes of the object behind `fd`, just made: its handle is
    /// minted and offered to the share's handle cache, so that looking the new object
    /// up does not mint it again.
    fn minted(&self, key: &HandleKey, fd: BorrowedFd<'_>) -> NfsResult<(Vec<u8>, fattr3)> {
        let wanted = rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME;
        let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, wanted).map_err(errno_stat)?;
        let kernel = sys::name_to_handle(fd, c"").map_err(io_stat)?;
        let fh = key.encode(self.share.id, &kernel);
        if let Some(id) = statx_identity(&st) {
            self.share.handles.insert(id, fh.clone());
        }
        Ok((fh, statx_fattr(self.share.id, &st)))
    }

    /// The NFS handle and attributes of `name` in `dir` (symlinks not followed).
    /// `..` of the share root is the root itself: nothing above a share is reachable.
    fn child(
        &self,
        key: &HandleKey,
        dir: BorrowedFd<'_>,
        dir_st: &Stat,
        name: &CStr,
    ) -> NfsResult<(Vec<u8>, fattr3)> {
        if name == c".." && self.is_share_root(dir_st) {
            return Ok((self.share.root_fh.clone(), self.fattr(dir_st)));
        }
        let wanted = rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME;
        let st =
            rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, wanted).map_err(errno_stat)?;
        if rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor) != self.share.root_dev {
            tracing::warn!(share = %self.share.name, name = ?name, "a share does not cross into other mounted file systems");
            return Err(NFS3ERR_ACCES);
        }
        let attr = statx_fattr(self.share.id, &st);
        let id = statx_identity(&st);
        if let Some(fh) = id.and_then(|id| self.share.handles.get(id)) {
            return Ok((fh, attr));
        }
        let kernel = sys::name_to_handle(dir, name).map_err(io_stat)?;
        let fh = key.encode(self.share.id, &kernel);
        if let Some(id) = id {
            // Cache only if the name still names the inode we stat-ed.
            let again = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, wanted).ok();
            if again.as_ref().and_then(statx_identity) == Some(id) {
                self.share.handles.insert(id, fh.clone());
            }
        }
        Ok((fh, attr))
    }
}

/// A READDIRPLUS entry's attributes and handle: from the attribute cache when `seen`
/// (the cache's catch-up for this call) allows it, else looked up in `dir` and offered to
/// the cache. `cursor` is where the listing's last cache hit was.
fn put_entry_plus(
    svc: &Service,
    obj: &Obj,
    (dir, dir_st): (BorrowedFd<'_>, &Stat),
    entry: &rustix::fs::RawDirEntry<'_>,
    seen: Option<crate::attrs::Generation>,
    cursor: &mut Option<u32>,
    out: &mut Vec<u8>,
) {
    let name = entry.file_name();
    // `.` and `..` are the folder's own and its parent's: not cached.
    let seen = seen.filter(|_| name != c"." && name != c"..");
    let hit = seen.and_then(|_| {
        svc.attrs.with(obj.share.id, entry.ino(), cursor, |hit| {
            put(out, &post_op_attr::attributes(hit.attr));
            put_bool(out, true);
            put_opaque(out, hit.fh());
        })
    });
    if hit.is_some() {
        return;
    }
    let Ok((fh, attr)) = obj.child(&svc.key, dir, dir_st, name) else {
        put(out, &post_op_attr::Void);
        put_bool(out, false);
        return;
    };
    put(out, &post_op_attr::attributes(attr));
    put_bool(out, true);
    put_opaque(out, &fh);
    // Only if the name still named this inode when it was looked at.
    let Some(seen) = seen.filter(|_| attr.fileid == entry.ino()) else {
        return;
    };
    if let (Some(decoded), Some(cached)) =
        (svc.key.decode(&fh), crate::attrs::Cached::new(attr, &fh))
    {
        svc.attrs.fill(seen, obj.share.id, &decoded.kernel, cached);
    }
}

/// The directory half of a call that changes a directory: its descriptor and its
/// attributes before the change (for wcc_data).
struct DirOp {
    obj: Obj,
    fd: OwnedFd,
    before: Stat,
}

impl DirOp {
    fn wcc(&self) -> wcc_data {
        wcc_data {
            before: pre_op_attr::attributes(to_wcc_attr(&self.before)),
            after: self.obj.post_op(self.fd.as_fd()),
        }
    }
}

/// File data that follows a reply's encoded part on the wire (READ's payload), sent by
/// the connection writer straight from the file.
#[derive(Debug)]
pub struct FileTail {
    pub file: OwnedFd,
    pub offset: u64,
    pub len: usize,
    /// Holds the file's data where it is until the bytes are sent.
    pub ticket: Option<IoTicket>,
}

/// The data that `name` in `dir` keeps on another pool when its last name is about to
/// go ([`DataPlaces::doomed`], looked at as root).
fn data_to_free(places: &Arc<DataPlaces>, dir: BorrowedFd<'_>, name: &CStr) -> Option<Doomed> {
    if !places.active() {
        return None;
    }
    sys::run_as_root().ok()?;
    places.doomed(dir, name)
}

/// Free `doomed`'s data now that its last name is gone.
fn free_data(places: &DataPlaces, doomed: Option<Doomed>) {
    if let Some(doomed) = doomed {
        if sys::run_as_root().is_ok() {
            doomed.free(places);
        }
    }
}

/// A moved file's data: the object open on its pool, and where that is.
type Elsewhere = Option<(OwnedFd, DataLocation)>;

/// How long a call on a released file waits for its bytes before it answers
/// NFS3ERR_JUKEBOX, so the client asks again instead of hanging on a slow target.
pub const RECALL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The data of a call on the regular file open at `fd` (not `O_PATH`; stat `st`): its
/// ticket ([`DataPlaces::enter`], which takes `st` again under it), and where the data
/// is: `None` when in the file itself, else the object on another pool opened with
/// `flags` (`O_WRONLY` for calls that change the data or the size). Leaves the thread as
/// root when it had to look. A released file's bytes are brought back whole first
/// (a change needs them all); one not back within [`RECALL_WAIT`] answers JUKEBOX.
fn data_call(
    places: &Arc<DataPlaces>,
    fd: BorrowedFd<'_>,
    st: &mut Stat,
    flags: OFlags,
) -> NfsResult<(Option<IoTicket>, Elsewhere)> {
    if let Some(found) = data_or_released(places, fd, st, flags)? {
        return Ok(found);
    }
    let recaller = places.recaller().ok_or(NFS3ERR_IO)?;
    recaller
        .recall(fd, st, RECALL_WAIT)
        .map_err(|e| recall_status(st, e))?;
    *st = rustix::fs::fstat(fd).map_err(errno_stat)?;
    data_or_released(places, fd, st, flags)?.ok_or(NFS3ERR_JUKEBOX)
}

/// [`data_call`], but a released file is `None` (and holds no ticket): its bytes come
/// from the recaller.
fn data_or_released(
    places: &Arc<DataPlaces>,
    fd: BorrowedFd<'_>,
    st: &mut Stat,
    flags: OFlags,
) -> NfsResult<Option<(Option<IoTicket>, Elsewhere)>> {
    let ticket = places
        .enter(fd, st, flags.contains(OFlags::WRONLY))
        .map_err(errno_stat)?;
    // A file with as many blocks as bytes has its data in place: no look-up at all.
    if !places.needs_lookup(st) {
        return Ok(Some((ticket, None)));
    }
    // The location is a trusted.* xattr and the object root's: looked up as root.
    sys::run_as_root().map_err(|_| NFS3ERR_SERVERFAULT)?;
    match places.resolve(fd, st, flags) {
        Ok(Resolved::InPlace) => Ok(Some((ticket, None))),
        Ok(Resolved::Elsewhere(obj, loc)) => Ok(Some((ticket, Some((obj, loc))))),
        Ok(Resolved::Released) => Ok(None),
        Err(e) => {
            tracing::warn!(ino = st.st_ino, error = %e, "the file's data is on a pool that cannot be reached");
            Err(NFS3ERR_IO)
        }
    }
}

/// What a call on a released file answers when its bytes are not given.
fn recall_status(st: &Stat, e: RecallError) -> nfsstat3 {
    match e {
        RecallError::Later => NFS3ERR_JUKEBOX,
        RecallError::Lost(why) => {
            tracing::warn!(ino = st.st_ino, why = %why, "a released file cannot be read: no copy gives its bytes back");
            NFS3ERR_IO
        }
    }
}

/// One NFSv3 call being answered.
pub struct NfsCall<'a> {
    pub svc: &'a Service,
    pub client: IpAddr,
    pub auth: Option<&'a AuthSys>,
    pub rec: &'a mut OpRecord,
    /// Set by READ when its data is to be sent from the file after the reply.
    pub tail: Option<FileTail>,
    /// Set by an UNSTABLE WRITE: the file and range it wrote, which the connection may
    /// start writing to disk after the reply (see [`Written`]).
    pub written: Option<Written>,
}

/// What an UNSTABLE WRITE left in the page cache: a connection whose client COMMITs
/// after each WRITE starts writing it to disk once the reply is sent, so the COMMIT
/// that comes next finds the data on its way and waits less.
#[derive(Debug)]
pub struct Written {
    pub file: OwnedFd,
    pub offset: u64,
    pub len: u64,
}

impl Written {
    /// Start the range's write-out; nothing waits for it.
    pub fn start_write_out(&self) {
        let _ = rushes_placement::mover::write_out(self.file.as_fd(), self.offset, self.len, false);
    }
}

impl<'a> NfsCall<'a> {
    /// Answer procedure `procedure` with arguments `args`, appending results to `out`.
    pub fn dispatch(
        &mut self,
        procedure: u32,
        args: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AcceptError> {
        let mut r = XdrReader::new(args);
        let start = out.len();
        let result = match procedure {
            0 => Ok(()),
            1 => self.getattr(&mut r, out),
            2 => self.setattr(&mut r, out),
            3 => self.lookup(&mut r, out),
            4 => self.access(&mut r, out),
            5 => self.readlink(&mut r, out),
            6 => self.read(&mut r, out),
            7 => self.write(&mut r, out),
            8 => self.create(&mut r, out),
            9 => self.mkdir(&mut r, out),
            10 => self.symlink(&mut r, out),
            11 => self.mknod(&mut r, out),
            12 => self.remove(&mut r, out, false),
            13 => self.remove(&mut r, out, true),
            14 => self.rename(&mut r, out),
            15 => self.link(&mut r, out),
            16 => self.readdir(&mut r, out, false),
            17 => self.readdir(&mut r, out, true),
            18 => self.fsstat(&mut r, out),
            19 => self.fsinfo(&mut r, out),
            20 => self.pathconf(&mut r, out),
            21 => self.commit(&mut r, out),
            _ => return Err(AcceptError::ProcUnavail),
        };
        if result.is_err() {
            out.truncate(start);
            return Err(AcceptError::GarbageArgs);
        }
        if procedure != 0 && out.len() >= start + 4 {
            self.rec.status = Some(u32::from_be_bytes([
                out[start],
                out[start + 1],
                out[start + 2],
                out[start + 3],
            ]));
        }
        Ok(())
    }

    fn resolve(&mut self, fh: &[u8]) -> NfsResult<Obj> {
        let decoded = self.svc.key.decode(fh).ok_or(NFS3ERR_BADHANDLE)?;
        let share = self.svc.share_by_id(decoded.share).ok_or(NFS3ERR_STALE)?;
        self.rec.share = Some(share.name.clone());
        let Some(rule) = rule_for(&share.rules, self.client) else {
            tracing::debug!(client = %self.client, share = %share.name, "client matches no export rule");
            return Err(NFS3ERR_ACCES);
        };
        let caller = rule.map_caller(self.auth.map(|a| (a.uid, a.gid, a.gids.as_slice())));
        let read_only = rule.read_only();
        self.rec.uid = Some(caller.uid);
        Ok(Obj {
            share,
            caller,
            read_only,
            kernel: decoded.kernel,
        })
    }

    /// Resolve a directory handle for a call that will change it.
    fn dir_op(&mut self, fh: &[u8], name: &[u8]) -> NfsResult<(DirOp, CString)> {
        self.rec.name = record_name(name);
        let obj = self.resolve(fh)?;
        let fd = obj.open(libc::O_PATH)?;
        let before = rustix::fs::fstat(&fd).map_err(errno_stat)?;
        self.rec.fileid = Some(before.st_ino);
        if !is_dir(&before) {
            return Err(NFS3ERR_NOTDIR);
        }
        if self.svc.record_paths {
            self.rec.path = self.svc.paths.in_dir(
                (obj.share.id, &obj.share.path),
                fd.as_fd(),
                before.st_ino,
                name,
            );
        }
        obj.writable()?;
        let name = entry_name(name)?;
        Ok((DirOp { obj, fd, before }, name))
    }

    fn getattr(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open(libc::O_PATH)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            self.rec.fileid = Some(st.st_ino);
            Ok(obj.fattr(&st))
        })();
        match res {
            Ok(attr) => {
                put(out, &NFS3_OK);
                put(out, &attr);
            }
            Err(e) => put(out, &e),
        }
        Ok(())
    }

    fn setattr(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let attr: sattr3 = r.fixed_type()?;
        let guard = if r.bool()? {
            Some(r.fixed_type::<nfstime3>()?)
        } else {
            None
        };
        let mut wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open(libc::O_PATH)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            self.rec.fileid = Some(st.st_ino);
            self.rec.path = share_path(self.svc, &obj.share, fd.as_fd());
            wcc.before = pre_op_attr::attributes(to_wcc_attr(&st));
            obj.writable()?;
            if let Some(ctime) = guard {
                if ctime.seconds != st.st_ctime as u32 || ctime.nseconds != st.st_ctime_nsec as u32
                {
                    return Err(NFS3ERR_NOT_SYNC);
                }
            }
            let res = apply_sattr(&self.svc.places, &obj, fd.as_fd(), &st, &attr, true);
            wcc.after = obj.post_op(fd.as_fd());
            res
        })();
        put(out, &res.err().unwrap_or(NFS3_OK));
        put(out, &wcc);
        Ok(())
    }

    fn lookup(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let name = r.opaque(4096)?;
        self.rec.name = record_name(name);
        let mut dir_attr = post_op_attr::Void;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let dfd = obj.open(libc::O_PATH)?;
            let dst = rustix::fs::fstat(&dfd).map_err(errno_stat)?;
            self.rec.fileid = Some(dst.st_ino);
            dir_attr = post_op_attr::attributes(obj.fattr(&dst));
            if !is_dir(&dst) {
                return Err(NFS3ERR_NOTDIR);
            }
            let name = entry_name(name)?;
            obj.act()?;
            obj.child(&self.svc.key, dfd.as_fd(), &dst, &name)
        })();
        match res {
            Ok((child_fh, attr)) => {
                put(out, &NFS3_OK);
                put_opaque(out, &child_fh);
                put(out, &post_op_attr::attributes(attr));
            }
            Err(e) => put(out, &e),
        }
        put(out, &dir_attr);
        Ok(())
    }

    fn access(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let wanted = r.u32()?;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open(libc::O_PATH)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            self.rec.fileid = Some(st.st_ino);
            let c = &obj.caller;
            let dir = is_dir(&st);
            let mut granted = 0;
            if may(&st, c, 4) {
                granted |= ACCESS3_READ;
            }
            if dir && may(&st, c, 1) {
                granted |= ACCESS3_LOOKUP;
            }
            if may(&st, c, 2) {
                granted |= ACCESS3_MODIFY | ACCESS3_EXTEND;
                if dir && may(&st, c, 1) {
                    granted |= ACCESS3_DELETE;
                }
            }
            if !dir && may(&st, c, 1) {
                granted |= ACCESS3_EXECUTE;
            }
            if obj.read_only {
                granted &= !(ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE);
            }
            Ok((obj.fattr(&st), granted & wanted))
        })();
        match res {
            Ok((attr, granted)) => {
                put(out, &NFS3_OK);
                put(out, &post_op_attr::attributes(attr));
                put_u32(out, granted);
            }
            Err(e) => {
                put(out, &e);
                put(out, &post_op_attr::Void);
            }
        }
        Ok(())
    }

    fn readlink(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let mut attr = post_op_attr::Void;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open(libc::O_PATH)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            self.rec.fileid = Some(st.st_ino);
            attr = post_op_attr::attributes(obj.fattr(&st));
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                return Err(NFS3ERR_INVAL);
            }
            rustix::fs::readlinkat(&fd, c"", Vec::new()).map_err(errno_stat)
        })();
        match res {
            Ok(target) => {
                put(out, &NFS3_OK);
                put(out, &attr);
                put_opaque(out, target.as_bytes());
            }
            Err(e) => {
                put(out, &e);
                put(out, &attr);
            }
        }
        Ok(())
    }

    fn read(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let offset = r.u64()?;
        let count = r.u32()?.min(MAX_IO) as usize;
        let start = out.len();
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open_data(libc::O_RDONLY, false)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            self.rec.fileid = Some(st.st_ino);
            if self.svc.record_paths {
                self.rec.path =
                    self.svc
                        .paths
                        .of_file((obj.share.id, &obj.share.path), fd.as_fd(), &st);
            }
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {}
                FileType::Directory => return Err(NFS3ERR_ISDIR),
                _ => return Err(NFS3ERR_INVAL),
            }
            if !may_io(&st, &obj.caller, false) {
                return Err(NFS3ERR_ACCES);
            }
            let mut st = st;
            let Some((ticket, elsewhere)) =
                data_or_released(&self.svc.places, fd.as_fd(), &mut st, OFlags::RDONLY)?
            else {
                // Released: the range asked for is fetched first, the rest follows.
                let recaller = self.svc.places.recaller().ok_or(NFS3ERR_IO)?;
                let bytes = recaller
                    .read(fd.as_fd(), &st, offset, count, RECALL_WAIT)
                    .map_err(|e| recall_status(&st, e))?;
                put(out, &NFS3_OK);
                put(out, &post_op_attr::attributes(obj.fattr(&st)));
                put_u32(out, bytes.len() as u32);
                put_bool(out, offset + bytes.len() as u64 >= st.st_size as u64);
                put_opaque(out, &bytes);
                self.rec.bytes = bytes.len() as u64;
                return Ok(());
            };
            let fd = elsewhere.map_or(fd, |(data, _)| data);
            put(out, &NFS3_OK);
            put(out, &post_op_attr::attributes(obj.fattr(&st)));
            let size = st.st_size as u64;
            let available = size.saturating_sub(offset).min(count as u64) as usize;
            if available >= SENDFILE_MIN {
                // Count and eof from the size now; should the file shrink before the
                // writer sends, it pads with zeros so the reply stays well formed.
                put_u32(out, available as u32);
                put_bool(out, offset + available as u64 >= size);
                put_u32(out, available as u32);
                self.tail = Some(FileTail {
                    file: fd,
                    offset,
                    len: available,
                    ticket,
                });
                self.rec.bytes = available as u64;
                return Ok(());
            }
            // Small reads: copy into the reply. At most SENDFILE_MIN bytes, so a file
            // growing meanwhile cannot outrun the buffer; the client asks again.
            let limit = count.min(SENDFILE_MIN);
            let fields = out.len();
            out.extend_from_slice(&[0; 12]); // count, eof, data length
            out.reserve(limit + 3);
            let mut done = 0;
            while done < limit {
                let want = limit - done;
                let spare = &mut out.spare_capacity_mut()[..want];
                let n = rustix::io::pread(&fd, spare, offset + done as u64)
                    .map_err(errno_stat)?
                    .0
                    .len();
                if n == 0 {
                    break;
                }
                let new_len = out.len() + n;
                extend_initialised(out, new_len);
                done += n;
            }
            let eof = offset + done as u64 >= st.st_size as u64;
            out[fields..fields + 4].copy_from_slice(&(done as u32).to_be_bytes());
            out[fields + 4..fields + 8].copy_from_slice(&u32::from(eof).to_be_bytes());
            out[fields + 8..fields + 12].copy_from_slice(&(done as u32).to_be_bytes());
            out.extend_from_slice(&[0u8; 3][..pad(done)]);
            self.rec.bytes = done as u64;
            Ok(())
        })();
        if let Err(e) = res {
            out.truncate(start);
            put(out, &e);
            put(out, &post_op_attr::Void);
        }
        Ok(())
    }

    fn write(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let offset = r.u64()?;
        let _count = r.u32()?;
        let stable = r.u32()?;
        let data = r.opaque(MAX_IO as usize)?;
        if stable > FILE_SYNC {
            return Err(Garbage);
        }
        let mut wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            obj.writable()?;
            let fd = obj.open_data(libc::O_WRONLY, false)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            self.rec.fileid = Some(st.st_ino);
            self.rec.path = share_path(self.svc, &obj.share, fd.as_fd());
            wcc.before = pre_op_attr::attributes(to_wcc_attr(&st));
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(NFS3ERR_INVAL);
            }
            if !may_io(&st, &obj.caller, true) {
                return Err(NFS3ERR_ACCES);
            }
            let mut st = st;
            let (_ticket, elsewhere) =
                data_call(&self.svc.places, fd.as_fd(), &mut st, OFlags::WRONLY)?;
            let target = elsewhere.as_ref().map_or(fd.as_fd(), |(d, _)| d.as_fd());
            // Write as the caller, so the kernel clears setuid/setgid bits as it should.
            obj.act()?;
            let mut done = 0;
            while done < data.len() {
                let n = rustix::io::pwrite(target, &data[done..], offset + done as u64)
                    .map_err(errno_stat)?;
                if n == 0 {
                    return Err(NFS3ERR_IO);
                }
                done += n;
            }
            if elsewhere.is_some() {
                // The namespace file keeps the size and times clients see.
                let end = offset + done as u64;
                self.svc
                    .places
                    .written(st.st_ino, fd.as_fd(), end)
                    .map_err(errno_stat)?;
            }
            let sync = |f: BorrowedFd<'_>| match stable {
                UNSTABLE => Ok(()),
                DATA_SYNC => rustix::fs::fdatasync(f).map_err(errno_stat),
                _ => rustix::fs::fsync(f).map_err(errno_stat),
            };
            sync(target)?;
            if elsewhere.is_some() {
                sync(fd.as_fd())?;
            }
            wcc.after = obj.post_op(fd.as_fd());
            self.rec.bytes = done as u64;
            if stable == UNSTABLE && done > 0 {
                self.written = Some(Written {
                    file: elsewhere.map_or(fd, |(d, _)| d),
                    offset,
                    len: done as u64,
                });
            }
            Ok(done as u32)
        })();
        match res {
            Ok(count) => {
                put(out, &NFS3_OK);
                put(out, &wcc);
                put_u32(out, count);
                put_u32(out, stable);
                out.extend_from_slice(&self.svc.write_verifier);
            }
            Err(e) => {
                put(out, &e);
                put(out, &wcc);
            }
        }
        Ok(())
    }

    /// The handle and attributes of `name`, just made in `dir` with its mode, once the
    /// rest of `attr` (owner, times; never a size: only files have one) is applied.
    fn made(&mut self, dir: &DirOp, name: &CStr, attr: &sattr3) -> NfsResult<(Vec<u8>, fattr3)> {
        let fd = rustix::fs::openat(
            &dir.fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_stat)?;
        let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
        self.rec.fileid = Some(st.st_ino);
        let rest = sattr3 {
            mode: set_mode3::Void,
            size: set_size3::Void,
            ..*attr
        };
        apply_sattr(&self.svc.places, &dir.obj, fd.as_fd(), &st, &rest, false)?;
        dir.obj.minted(&self.svc.key, fd.as_fd())
    }

    /// Encode the reply of CREATE, MKDIR, SYMLINK and MKNOD.
    fn put_created(out: &mut Vec<u8>, res: NfsResult<(Vec<u8>, fattr3)>, dir_wcc: &wcc_data) {
        match res {
            Ok((fh, attr)) => {
                put(out, &NFS3_OK);
                put_bool(out, true);
                put_opaque(out, &fh);
                put(out, &post_op_attr::attributes(attr));
            }
            Err(e) => put(out, &e),
        }
        put(out, dir_wcc);
    }

    fn create(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let name = r.opaque(4096)?;
        let how = r.u32()?;
        let (attr, verifier) = match how {
            0 | 1 => (r.fixed_type::<sattr3>()?, None),
            2 => (sattr3::default(), Some(r.fixed::<8>()?)),
            _ => return Err(Garbage),
        };
        let mut dir_wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let (dir, name) = self.dir_op(fh, name)?;
            let mode = match attr.mode {
                set_mode3::mode(m) => m & 0o7777,
                set_mode3::Void if verifier.is_some() => 0o600,
                set_mode3::Void => 0o644,
            };
            dir.obj.act()?;
            let locked = self.svc.dir_locks.lock(&dir.before);
            let made = rustix::fs::mknodat(
                &dir.fd,
                &name,
                FileType::RegularFile,
                Mode::from_raw_mode(mode),
                0,
            );
            drop(locked);
            let existed = match made {
                Ok(()) => false,
                Err(Errno::EXIST) if how != 1 => true,
                Err(e) => return Err(errno_stat(e)),
            };
            let fd = rustix::fs::openat(
                &dir.fd,
                &name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno_stat)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            if existed && FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(NFS3ERR_EXIST);
            }
            if let Some(v) = verifier {
                let (atime, mtime) = (
                    u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                    u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                );
                if existed {
                    // A retransmitted EXCLUSIVE create finds its own verifier in the times.
                    if st.st_atime as u32 != atime || st.st_mtime as u32 != mtime {
                        return Err(NFS3ERR_EXIST);
                    }
                } else {
                    let ts = Timestamps {
                        last_access: Timespec {
                            tv_sec: i64::from(atime),
                            tv_nsec: 0,
                        },
                        last_modification: Timespec {
                            tv_sec: i64::from(mtime),
                            tv_nsec: 0,
                        },
                    };
                    rustix::fs::utimensat(&fd, c"", &ts, AtFlags::EMPTY_PATH)
                        .map_err(errno_stat)?;
                }
            } else {
                // The mode was set by mknod; an existing file only takes the size (O_TRUNC).
                let rest = sattr3 {
                    mode: set_mode3::Void,
                    ..if existed {
                        sattr3 {
                            size: attr.size,
                            ..sattr3::default()
                        }
                    } else {
                        attr
                    }
                };
                apply_sattr(&self.svc.places, &dir.obj, fd.as_fd(), &st, &rest, false)?;
            }
            dir_wcc = dir.wcc();
            dir.obj.minted(&self.svc.key, fd.as_fd())
        })();
        Self::put_created(out, res, &dir_wcc);
        Ok(())
    }

    fn mkdir(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let name = r.opaque(4096)?;
        let attr: sattr3 = r.fixed_type()?;
        let mut dir_wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let (dir, name) = self.dir_op(fh, name)?;
            let mode = match attr.mode {
                set_mode3::mode(m) => m & 0o7777,
                set_mode3::Void => 0o755,
            };
            dir.obj.act()?;
            let locked = self.svc.dir_locks.lock(&dir.before);
            let made = rustix::fs::mkdirat(&dir.fd, &name, Mode::from_raw_mode(mode));
            drop(locked);
            dir_wcc = dir.wcc();
            made.map_err(errno_stat)?;
            self.made(&dir, &name, &attr)
        })();
        Self::put_created(out, res, &dir_wcc);
        Ok(())
    }

    fn symlink(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let name = r.opaque(4096)?;
        let attr: sattr3 = r.fixed_type()?;
        let target = r.opaque(4096)?;
        let mut dir_wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let (dir, name) = self.dir_op(fh, name)?;
            let target = CString::new(target).map_err(|_| NFS3ERR_INVAL)?;
            dir.obj.act()?;
            let locked = self.svc.dir_locks.lock(&dir.before);
            let made = rustix::fs::symlinkat(&target, &dir.fd, &name);
            drop(locked);
            dir_wcc = dir.wcc();
            made.map_err(errno_stat)?;
            // Symlink permissions mean nothing on Linux; owner and times may be set.
            self.made(&dir, &name, &attr)
        })();
        Self::put_created(out, res, &dir_wcc);
        Ok(())
    }

    /// FIFOs and sockets on every writable share; character and block devices only
    /// where the share allows them, and then only for an unsquashed root.
    fn mknod(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let name = r.opaque(4096)?;
        let (kind, attr, rdev) = match read_mknod_what(r)? {
            Ok(what) => what,
            Err(status) => {
                // An unknown or unmakeable type (REG, DIR, LNK have their own calls).
                put(out, &status);
                put(out, &wcc_data::default());
                return Ok(());
            }
        };
        let mut dir_wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let (dir, name) = self.dir_op(fh, name)?;
            dir_wcc = dir.wcc();
            dir.obj.writable()?;
            if matches!(kind, FileType::CharacterDevice | FileType::BlockDevice) {
                if !dir.obj.share.allow_devices {
                    return Err(NFS3ERR_NOTSUPP);
                }
                if dir.obj.caller.uid != 0 {
                    return Err(NFS3ERR_PERM);
                }
            }
            let mode = match attr.mode {
                set_mode3::mode(m) => m & 0o7777,
                set_mode3::Void => 0o644,
            };
            dir.obj.act()?;
            let locked = self.svc.dir_locks.lock(&dir.before);
            let made = rustix::fs::mknodat(&dir.fd, &name, kind, Mode::from_raw_mode(mode), rdev);
            drop(locked);
            dir_wcc = dir.wcc();
            made.map_err(errno_stat)?;
            self.made(&dir, &name, &attr)
        })();
        Self::put_created(out, res, &dir_wcc);
        Ok(())
    }

    fn remove(
        &mut self,
        r: &mut XdrReader<'_>,
        out: &mut Vec<u8>,
        rmdir: bool,
    ) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let name = r.opaque(4096)?;
        let mut dir_wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let (dir, name) = self.dir_op(fh, name)?;
            let _locked = self.svc.dir_locks.lock(&dir.before);
            let doomed = (!rmdir)
                .then(|| data_to_free(&self.svc.places, dir.fd.as_fd(), &name))
                .flatten();
            dir.obj.act()?;
            let flags = if rmdir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            let res = rustix::fs::unlinkat(&dir.fd, &name, flags);
            if rmdir && res.is_ok() {
                self.svc.paths.moved();
            }
            if res.is_ok() {
                free_data(&self.svc.places, doomed);
            }
            dir_wcc = dir.wcc();
            res.map_err(errno_stat)
        })();
        put(out, &res.err().unwrap_or(NFS3_OK));
        put(out, &dir_wcc);
        Ok(())
    }

    fn rename(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let from_fh = r.opaque(NFS3_FHSIZE as usize)?;
        let from_name = r.opaque(4096)?;
        let to_fh = r.opaque(NFS3_FHSIZE as usize)?;
        let to_name = r.opaque(4096)?;
        let (mut from_wcc, mut to_wcc) = (wcc_data::default(), wcc_data::default());
        let res = (|| -> NfsResult<_> {
            let (from, from_name) = self.dir_op(from_fh, from_name)?;
            let from_path = self.rec.path.take();
            let (to, to_name) = self.dir_op(to_fh, to_name)?;
            self.rec.to = std::mem::replace(&mut self.rec.path, from_path);
            self.rec.name = record_name(from_name.as_bytes());
            if from.obj.share.id != to.obj.share.id {
                return Err(NFS3ERR_XDEV);
            }
            let _locked = self.svc.dir_locks.lock_two(&from.before, &to.before);
            // A file renamed over: its data goes with it, unless it is the same file.
            let replaced = data_to_free(&self.svc.places, to.fd.as_fd(), &to_name).filter(|_| {
                let ino = |d: &OwnedFd, n: &CStr| {
                    rustix::fs::statat(d, n, AtFlags::SYMLINK_NOFOLLOW).map(|s| s.st_ino)
                };
                ino(&from.fd, &from_name).ok() != ino(&to.fd, &to_name).ok()
            });
            from.obj.act()?;
            let res = rustix::fs::renameat(&from.fd, &from_name, &to.fd, &to_name);
            if res.is_ok() {
                self.svc.paths.moved();
                free_data(&self.svc.places, replaced);
            }
            from_wcc = from.wcc();
            to_wcc = to.wcc();
            res.map_err(errno_stat)
        })();
        put(out, &res.err().unwrap_or(NFS3_OK));
        put(out, &from_wcc);
        put(out, &to_wcc);
        Ok(())
    }

    fn link(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let dir_fh = r.opaque(NFS3_FHSIZE as usize)?;
        let name = r.opaque(4096)?;
        let mut file_attr = post_op_attr::Void;
        let mut dir_wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let file = self.resolve(fh)?;
            let ffd = file.open(libc::O_PATH)?;
            let (dir, name) = self.dir_op(dir_fh, name)?;
            if file.share.id != dir.obj.share.id {
                return Err(NFS3ERR_XDEV);
            }
            let _locked = self.svc.dir_locks.lock(&dir.before);
            dir.obj.act()?;
            // linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc link does not.
            let res = rustix::fs::linkat(
                CWD,
                sys::proc_path(ffd.as_fd()).as_str(),
                &dir.fd,
                &name,
                AtFlags::SYMLINK_FOLLOW,
            );
            file_attr = file.post_op(ffd.as_fd());
            dir_wcc = dir.wcc();
            res.map_err(errno_stat)
        })();
        put(out, &res.err().unwrap_or(NFS3_OK));
        put(out, &file_attr);
        put(out, &dir_wcc);
        Ok(())
    }

    fn readdir(
        &mut self,
        r: &mut XdrReader<'_>,
        out: &mut Vec<u8>,
        plus: bool,
    ) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let cookie = r.u64()?;
        let verifier = r.fixed::<8>()?;
        let (dircount, maxcount) = if plus {
            let d = r.u32()?;
            (d, r.u32()?)
        } else {
            let c = r.u32()?;
            (c, c)
        };
        let start = out.len();
        let mut dir_attr = post_op_attr::Void;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let pfd = obj.open(libc::O_PATH)?;
            let dst = rustix::fs::fstat(&pfd).map_err(errno_stat)?;
            self.rec.fileid = Some(dst.st_ino);
            dir_attr = post_op_attr::attributes(obj.fattr(&dst));
            if !is_dir(&dst) {
                return Err(NFS3ERR_NOTDIR);
            }
            // Cookies are the file system's own directory offsets, which XFS, ext4 and
            // tmpfs keep stable while the directory changes and across restarts. So the
            // verifier only has to tie a cookie to its directory: a keyed digest of it.
            let expected = self.svc.key.digest8(fh);
            if cookie != 0
                && verifier != [0; 8]
                && !constant_time_eq::constant_time_eq(&verifier, &expected)
            {
                return Err(NFS3ERR_BAD_COOKIE);
            }
            obj.act()?;
            let dfd = rustix::fs::openat(
                &pfd,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno_stat)?;
            if cookie != 0 {
                rustix::fs::seek(&dfd, rustix::fs::SeekFrom::Start(cookie))
                    .map_err(|_| NFS3ERR_BAD_COOKIE)?;
            }
            let limit = (maxcount.clamp(1024, 4 * MAX_IO)) as usize;
            let dir_limit = if plus {
                dircount.max(512) as usize
            } else {
                limit
            };
            put(out, &NFS3_OK);
            put(out, &dir_attr);
            out.extend_from_slice(&expected);
            // Entries' attributes may come from the cache when the caller could stat
            // them (search permission on the folder) and the cache has caught up.
            let seen = (plus
                && obj.share.attrs_watched
                && rustix::fs::accessat(&dfd, c".", rustix::fs::Access::EXEC_OK, AtFlags::EACCESS)
                    .is_ok())
            .then(|| self.svc.attrs.catch_up());
            let mut cursor = None;
            let mut buf = Vec::with_capacity(32 * 1024);
            let mut raw = rustix::fs::RawDir::new(&dfd, buf.spare_capacity_mut());
            let mut dir_bytes = 0;
            let mut entries = 0u32;
            let mut eof = true;
            while let Some(entry) = raw.next() {
                let entry = entry.map_err(errno_stat)?;
                let name = entry.file_name();
                let at_root_parent = name == c".." && obj.is_share_root(&dst);
                let fileid = if at_root_parent {
                    dst.st_ino
                } else {
                    entry.ino()
                };
                let name_len = name.to_bytes().len();
                let entry_dir_bytes = 8 + 4 + name_len + pad(name_len) + 8;
                // Encode in place; an entry that does not fit is rolled back.
                let entry_start = out.len();
                put_bool(out, true);
                put_u64(out, fileid);
                put_opaque(out, name.to_bytes());
                put_u64(out, entry.next_entry_cookie());
                if plus {
                    put_entry_plus(
                        self.svc,
                        &obj,
                        (dfd.as_fd(), &dst),
                        &entry,
                        seen,
                        &mut cursor,
                        out,
                    );
                }
                // 8 bytes stay free for the list terminator and eof.
                let fits =
                    out.len() - start + 8 <= limit && dir_bytes + entry_dir_bytes <= dir_limit;
                if !fits {
                    out.truncate(entry_start);
                    if entries == 0 {
                        return Err(NFS3ERR_TOOSMALL);
                    }
                    eof = false;
                    break;
                }
                dir_bytes += entry_dir_bytes;
                entries += 1;
            }
            put_bool(out, false);
            put_bool(out, eof);
            self.rec.bytes = u64::from(entries);
            Ok(())
        })();
        if let Err(e) = res {
            out.truncate(start);
            put(out, &e);
            put(out, &dir_attr);
        }
        Ok(())
    }

    fn fsstat(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open(libc::O_PATH)?;
            let vfs = rustix::fs::fstatvfs(&fd).map_err(errno_stat)?;
            Ok((obj.post_op(fd.as_fd()), vfs))
        })();
        match res {
            Ok((attr, v)) => {
                put(out, &NFS3_OK);
                put(out, &attr);
                for n in [
                    v.f_blocks * v.f_frsize,
                    v.f_bfree * v.f_frsize,
                    v.f_bavail * v.f_frsize,
                ] {
                    put_u64(out, n);
                }
                for n in [v.f_files, v.f_ffree, v.f_favail] {
                    put_u64(out, n);
                }
                put_u32(out, 0); // invarsec: may change at any time
            }
            Err(e) => {
                put(out, &e);
                put(out, &post_op_attr::Void);
            }
        }
        Ok(())
    }

    fn fsinfo(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open(libc::O_PATH)?;
            Ok(obj.post_op(fd.as_fd()))
        })();
        match res {
            Ok(attr) => {
                put(out, &NFS3_OK);
                put(
                    out,
                    &fsinfo3 {
                        obj_attributes: attr,
                        rtmax: MAX_IO,
                        rtpref: MAX_IO,
                        rtmult: 4096,
                        wtmax: MAX_IO,
                        wtpref: MAX_IO,
                        wtmult: 4096,
                        dtpref: DTPREF,
                        maxfilesize: i64::MAX as u64,
                        time_delta: nfstime3 {
                            seconds: 0,
                            nseconds: 1,
                        },
                        properties: FSF_LINK | FSF_SYMLINK | FSF_HOMOGENEOUS | FSF_CANSETTIME,
                    },
                );
            }
            Err(e) => {
                put(out, &e);
                put(out, &post_op_attr::Void);
            }
        }
        Ok(())
    }

    fn pathconf(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open(libc::O_PATH)?;
            Ok(obj.post_op(fd.as_fd()))
        })();
        match res {
            Ok(attr) => {
                put(out, &NFS3_OK);
                put(out, &attr);
                put_u32(out, 65000); // linkmax
                put_u32(out, 255); // name_max
                put_bool(out, true); // no_trunc
                put_bool(out, true); // chown_restricted
                put_bool(out, false); // case_insensitive
                put_bool(out, true); // case_preserving
            }
            Err(e) => {
                put(out, &e);
                put(out, &post_op_attr::Void);
            }
        }
        Ok(())
    }

    fn commit(&mut self, r: &mut XdrReader<'_>, out: &mut Vec<u8>) -> Result<(), Garbage> {
        let fh = r.opaque(NFS3_FHSIZE as usize)?;
        let _offset = r.u64()?;
        let _count = r.u32()?;
        let mut wcc = wcc_data::default();
        let res = (|| -> NfsResult<_> {
            let obj = self.resolve(fh)?;
            let fd = obj.open_data(libc::O_RDONLY, true)?;
            let st = rustix::fs::fstat(&fd).map_err(errno_stat)?;
            self.rec.fileid = Some(st.st_ino);
            self.rec.path = share_path(self.svc, &obj.share, fd.as_fd());
            wcc.before = pre_op_attr::attributes(to_wcc_attr(&st));
            let mut st = st;
            // A released file has nothing waiting to be written: no write reaches it.
            let found = data_or_released(&self.svc.places, fd.as_fd(), &mut st, OFlags::RDONLY)?;
            if let Some((_ticket, Some((data, _)))) = found {
                rustix::fs::fsync(&data).map_err(errno_stat)?;
            }
            rustix::fs::fsync(&fd).map_err(errno_stat)?;
            wcc.after = obj.post_op(fd.as_fd());
            Ok(())
        })();
        put(out, &res.err().unwrap_or(NFS3_OK));
        put(out, &wcc);
        if res.is_ok() {
            out.extend_from_slice(&self.svc.write_verifier);
        }
        Ok(())
    }
}

/// Apply a client's `sattr3` to the object behind `fd` (an O_PATH descriptor).
/// Size changes need write permission (or ownership); mode, owner and times are the
/// kernel's call, made as the caller. `check_size` is false right after creating the
/// file, whose creator may always set its size.
fn apply_sattr(
    places: &Arc<DataPlaces>,
    obj: &Obj,
    fd: BorrowedFd<'_>,
    st: &Stat,
    attr: &sattr3,
    check_size: bool,
) -> NfsResult<()> {
    // -1 is no id: chown would take it as "leave as it is" and answer OK for a change it
    // did not make. Refused before anything is changed.
    if matches!(attr.uid, set_uid3::uid(u32::MAX)) || matches!(attr.gid, set_gid3::gid(u32::MAX)) {
        return Err(NFS3ERR_INVAL);
    }
    let file_type = FileType::from_raw_mode(st.st_mode);
    if let set_size3::size(size) = attr.size {
        match file_type {
            FileType::RegularFile => {}
            FileType::Directory => return Err(NFS3ERR_ISDIR),
            _ => return Err(NFS3ERR_INVAL),
        }
        if check_size && !may_io(st, &obj.caller, true) {
            return Err(NFS3ERR_ACCES);
        }
        sys::run_as_root().map_err(|_| NFS3ERR_SERVERFAULT)?;
        let wfd = rustix::fs::open(
            sys::proc_path(fd).as_str(),
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_stat)?;
        let mut st = *st;
        let (_ticket, elsewhere) = data_call(places, wfd.as_fd(), &mut st, OFlags::WRONLY)?;
        obj.act()?;
        if elsewhere.is_some() {
            sys::run_as_root().map_err(|_| NFS3ERR_SERVERFAULT)?;
        }
        places
            .truncate(
                wfd.as_fd(),
                &st,
                elsewhere.as_ref().map(|(data, loc)| (data.as_fd(), loc)),
                size,
            )
            .map_err(errno_stat)?;
    }
    obj.act()?;
    if let set_mode3::mode(mode) = attr.mode {
        if file_type != FileType::Symlink {
            rustix::fs::chmod(
                sys::proc_path(fd).as_str(),
                Mode::from_raw_mode(mode & 0o7777),
            )
            .map_err(errno_stat)?;
        }
    }
    let uid = match attr.uid {
        set_uid3::uid(u) => Some(rustix::process::Uid::from_raw(u)),
        set_uid3::Void => None,
    };
    let gid = match attr.gid {
        set_gid3::gid(g) => Some(rustix::process::Gid::from_raw(g)),
        set_gid3::Void => None,
    };
    if uid.is_some() || gid.is_some() {
        rustix::fs::chownat(
            fd,
            c"",
            uid,
            gid,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno_stat)?;
    }
    let omit = Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    };
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    let client = |t: nfstime3| Timespec {
        tv_sec: i64::from(t.seconds),
        tv_nsec: i64::from(t.nseconds),
    };
    let times = Timestamps {
        last_access: match attr.atime {
            set_atime::DONT_CHANGE => omit,
            set_atime::SET_TO_SERVER_TIME => now,
            set_atime::SET_TO_CLIENT_TIME(t) => client(t),
        },
        last_modification: match attr.mtime {
            set_mtime::DONT_CHANGE => omit,
            set_mtime::SET_TO_SERVER_TIME => now,
            set_mtime::SET_TO_CLIENT_TIME(t) => client(t),
        },
    };
    if times.last_access.tv_nsec != rustix::fs::UTIME_OMIT
        || times.last_modification.tv_nsec != rustix::fs::UTIME_OMIT
    {
        rustix::fs::utimensat(
            fd,
            c"",
            &times,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno_stat)?;
    }
    Ok(())
}

/// Mark `new_len` bytes of `out` as initialised after `pread` filled its spare capacity.
/// MKNOD's `mknoddata3`: the type to make, its attributes and device number; an error
/// status (BADTYPE) for a type MKNOD does not make.
#[allow(clippy::type_complexity)]
fn read_mknod_what(
    r: &mut XdrReader<'_>,
) -> Result<Result<(FileType, sattr3, u64), nfsstat3>, Garbage> {
    const NF3BLK: u32 = 3;
    const NF3CHR: u32 = 4;
    const NF3SOCK: u32 = 6;
    const NF3FIFO: u32 = 7;
    Ok(Ok(match r.u32()? {
        kind @ (NF3CHR | NF3BLK) => {
            let attr: sattr3 = r.fixed_type()?;
            let (major, minor) = (r.u32()?, r.u32()?);
            let kind = if kind == NF3CHR {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            (kind, attr, rustix::fs::makedev(major, minor))
        }
        NF3SOCK => (FileType::Socket, r.fixed_type()?, 0),
        NF3FIFO => (FileType::Fifo, r.fixed_type()?, 0),
        1..=7 => return Ok(Err(NFS3ERR_BADTYPE)),
        _ => return Err(Garbage),
    }))
}

fn extend_initialised(out: &mut Vec<u8>, new_len: usize) {
    debug_assert!(new_len <= out.capacity());
    // SAFETY: the caller passes a length whose bytes beyond the current length were just
    // written by `pread` into `spare_capacity_mut()`, so they are initialised.
    unsafe { out.set_len(new_len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: nfsstat3, b: nfsstat3) -> bool {
        a as u32 == b as u32
    }

    fn st(mode: u32, uid: u32, gid: u32) -> Stat {
        // SAFETY: `Stat` is a plain C struct; all-zero is a valid value.
        let mut s: Stat = unsafe { std::mem::zeroed() };
        s.st_mode = mode;
        s.st_uid = uid;
        s.st_gid = gid;
        s
    }

    fn user(uid: u32, gid: u32, gids: &[u32]) -> Caller {
        Caller {
            uid,
            gid,
            gids: gids.to_vec(),
        }
    }

    #[test]
    fn mode_bits_by_class() {
        let f = st(0o100640, 1000, 100);
        assert!(may(&f, &user(1000, 1, &[]), 6));
        assert!(may(&f, &user(2000, 100, &[]), 4) && !may(&f, &user(2000, 100, &[]), 2));
        assert!(may(&f, &user(2000, 7, &[100]), 4));
        assert!(!may(&f, &user(2000, 7, &[]), 4));
        assert!(may(&f, &Caller::ROOT, 6) && !may(&f, &Caller::ROOT, 1));
    }

    #[test]
    fn owner_override_for_io_only() {
        let f = st(0o100444, 1000, 100);
        assert!(may_io(&f, &user(1000, 100, &[]), true));
        assert!(!may(&f, &user(1000, 100, &[]), 2));
        assert!(!may_io(&f, &user(1001, 100, &[]), true));
        let x = st(0o100711, 1000, 100);
        assert!(may_io(&x, &user(1001, 5, &[]), false));
    }

    #[test]
    fn names_are_single_components() {
        assert!(entry_name(b"clip_0001.dpx").is_ok());
        assert!(same(entry_name(b"a/b").unwrap_err(), NFS3ERR_ACCES));
        assert!(same(entry_name(b"").unwrap_err(), NFS3ERR_NOENT));
        assert!(same(
            entry_name(&[b'a'; 256]).unwrap_err(),
            NFS3ERR_NAMETOOLONG
        ));
        assert!(same(entry_name(b"a\0b").unwrap_err(), NFS3ERR_ACCES));
    }

    fn words(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn mknod_what_decodes_each_type_and_refuses_the_rest() {
        // NF3FIFO with mode 0640 set, nothing else.
        let fifo = words(&[7, 1, 0o640, 0, 0, 0, 0, 0]);
        let (kind, attr, rdev) = read_mknod_what(&mut XdrReader::new(&fifo))
            .unwrap()
            .unwrap();
        assert_eq!((kind, rdev), (FileType::Fifo, 0));
        assert!(matches!(attr.mode, set_mode3::mode(0o640)));
        let sock = words(&[6, 0, 0, 0, 0, 0, 0]);
        let (kind, ..) = read_mknod_what(&mut XdrReader::new(&sock))
            .unwrap()
            .unwrap();
        assert_eq!(kind, FileType::Socket);
        // NF3CHR 1:3 and NF3BLK 8:0 carry their device numbers.
        let chr = words(&[4, 0, 0, 0, 0, 0, 0, 1, 3]);
        let (kind, _, rdev) = read_mknod_what(&mut XdrReader::new(&chr)).unwrap().unwrap();
        assert_eq!(
            (kind, rdev),
            (FileType::CharacterDevice, rustix::fs::makedev(1, 3))
        );
        let blk = words(&[3, 0, 0, 0, 0, 0, 0, 8, 0]);
        let (kind, _, rdev) = read_mknod_what(&mut XdrReader::new(&blk)).unwrap().unwrap();
        assert_eq!(
            (kind, rdev),
            (FileType::BlockDevice, rustix::fs::makedev(8, 0))
        );
        // REG, DIR and LNK have calls of their own: BADTYPE. Anything else is garbage,
        // and so is a device without its numbers.
        for t in [1, 2, 5] {
            let status = read_mknod_what(&mut XdrReader::new(&words(&[t])))
                .unwrap()
                .unwrap_err();
            assert!(same(status, NFS3ERR_BADTYPE));
        }
        assert!(read_mknod_what(&mut XdrReader::new(&words(&[99]))).is_err());
        assert!(read_mknod_what(&mut XdrReader::new(&words(&[4, 0, 0, 0, 0, 0, 0, 1]))).is_err());
        assert!(read_mknod_what(&mut XdrReader::new(&[])).is_err());
    }
}
