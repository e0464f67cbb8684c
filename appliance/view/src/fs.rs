//! The FUSE calls of one share's view over its folder on the home pool.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLock,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rushes_nas::sys::{self, KernelHandle, LockKind};
use rushes_placement::layout::{self, DataPlaces, OpenHold, Resolved};
use rushes_placement::stub::{self, RecallError};
use rustix::fs::{AtFlags, Mode, OFlags, Stat, Timespec, Timestamps};

use crate::dosattrib;

/// How long the kernel may trust a name or attributes before asking again. NFS clients
/// change the same tree, so this stays short.
const TTL: Duration = Duration::from_secs(1);

/// How long an open of a released file waits for its bytes: an SMB client gives up on
/// a request after about a minute.
const RECALL_WAIT: Duration = Duration::from_secs(45);

/// The layer's own xattrs: never shown, never set from outside.
const OWN_XATTRS: &[u8] = b"trusted.rushes.";

/// How far an fsync through the view asks the disk to go.
#[derive(Debug, Clone, Copy)]
enum DiskSync {
    /// fdatasync: the data and what is needed to read it back (a new size).
    Data,
    /// fsync: the data and every attribute.
    All,
}

impl DiskSync {
    /// Write `fd` to disk this far.
    fn of(self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        match self {
            Self::Data => rustix::fs::fdatasync(fd).map_err(errno),
            Self::All => rustix::fs::fsync(fd).map_err(errno),
        }
    }
}

/// A known inode: how to reopen it, and how many lookups the kernel holds on it.
struct Node {
    handle: KernelHandle,
    kind: rustix::fs::FileType,
    lookups: u64,
}

/// One open of a file.
struct OpenFile {
    ino: u64,
    /// The file its data is in (the home file, or the object on another pool), opened
    /// with the open's access: used for fsync, and for reads and writes when the kernel
    /// has no passthrough.
    fd: Arc<OwnedFd>,
    writes: bool,
    /// Opened for reading while released: the kernel asks us for every read (direct
    /// I/O, no backing file), answered by the recaller, ranges first, until the file is
    /// back.
    released: bool,
    /// Lock owners that locked through this open: their locks go with its close (an
    /// OFD lock's owner is the open itself, which no flush names).
    owners: Vec<u64>,
    /// Keeps the data where this open found it, taken under the open's ticket.
    _hold: Option<OpenHold>,
}

/// The object of an open file whose data is on another pool, and its home file (the
/// namespace file that keeps its size and times), held open so that its inode number
/// stays its own while the data is open: a number the file system gave to another file
/// after a client removed this one must never have this file's size and times put on it.
struct Elsewhere {
    data: Arc<OwnedFd>,
    home: Arc<OwnedFd>,
}

impl Elsewhere {
    /// The object and the home file, to use outside the table's lock.
    fn files(&self) -> (Arc<OwnedFd>, Arc<OwnedFd>) {
        (Arc::clone(&self.data), Arc::clone(&self.home))
    }
}

/// A file with at least one open.
#[derive(Default)]
struct OpenInode {
    opens: u32,
    writers: u32,
    /// The one backing file the kernel passes every open of this inode through to.
    backing: Option<Arc<BackingId>>,
    /// Data kept on another pool: its object, whose size and times count while writers
    /// have it open, and are given to the home file (held open here) at the last
    /// writer's close.
    elsewhere: Option<Elsewhere>,
}

/// An open's file: its stat, the file its data is in, the home file when that is
/// another (see [`Elsewhere`]), whether it writes, and its hold.
type Opened = (
    Stat,
    Arc<OwnedFd>,
    Option<Arc<OwnedFd>>,
    bool,
    Option<OpenHold>,
);

/// An open's look at a file: opened, or released (its bytes on copies elsewhere).
enum Found {
    Opened(Opened),
    Released(OwnedFd, Stat),
}

/// What a SETATTR asks to change.
struct Change {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

/// A folder's entries as read at a listing's start: inode, type, name.
type Entries = Arc<Vec<(u64, FileType, CString)>>;

/// One share's view.
pub struct View {
    share: String,
    places: Arc<DataPlaces>,
    /// The share's folder, opened for `open_by_handle_at`.
    root: OwnedFd,
    root_ino: u64,
    nodes: Mutex<HashMap<u64, Node>>,
    files: Mutex<HashMap<u64, OpenFile>>,
    inodes: Mutex<HashMap<u64, OpenInode>>,
    /// Listings in progress, by their handle.
    listings: Mutex<HashMap<u64, Entries>>,
    /// OFD lock descriptions, one per (inode, lock owner).
    locks: Mutex<HashMap<(u64, u64), Arc<OwnedFd>>>,
    next_fh: AtomicU64,
    passthrough: Arc<AtomicBool>,
    /// The share's folder as the kernel names it, to tell a file's path in the share.
    root_path: PathBuf,
    /// Told of each file closed by a writer.
    on_written: Option<OnWritten>,
}

/// Told the path inside the share of each file closed after it was opened for writing:
/// its writer is done with it (the catalog reads it again then).
pub type OnWritten = Arc<dyn Fn(&str) + Send + Sync>;

/// The path the kernel gives an open file or folder.
fn fd_path(fd: BorrowedFd<'_>) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn cname(name: &OsStr) -> Result<CString, Errno> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs())
    }
}

fn kind(mode: u32) -> FileType {
    fuse_type(rustix::fs::FileType::from_raw_mode(mode))
}

fn fuse_type(t: rustix::fs::FileType) -> FileType {
    match t {
        rustix::fs::FileType::Directory => FileType::Directory,
        rustix::fs::FileType::Symlink => FileType::Symlink,
        rustix::fs::FileType::Fifo => FileType::NamedPipe,
        rustix::fs::FileType::Socket => FileType::Socket,
        rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
        rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn timespec(t: TimeOrNow) -> Timespec {
    match t {
        TimeOrNow::Now => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        TimeOrNow::SpecificTime(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            },
            Err(e) => Timespec {
                tv_sec: -(e.duration().as_secs() as i64),
                tv_nsec: 0,
            },
        },
    }
}

const OMIT: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: rustix::fs::UTIME_OMIT,
};

/// The range of a FUSE lock (`end` inclusive, `i64::MAX` for "to the end") as an
/// fcntl start and length (0: to the end).
fn lock_range(start: u64, end: u64) -> (i64, i64) {
    let start = start.min(i64::MAX as u64) as i64;
    if end >= i64::MAX as u64 {
        (start, 0)
    } else {
        (start, (end as i64 - start).saturating_add(1).max(0))
    }
}

fn lock_kind(typ: i32) -> Result<LockKind, Errno> {
    match typ {
        libc::F_RDLCK => Ok(LockKind::Read),
        libc::F_WRLCK => Ok(LockKind::Write),
        libc::F_UNLCK => Ok(LockKind::Unlock),
        _ => Err(Errno::EINVAL),
    }
}

impl View {
    pub(crate) fn new(
        share: &str,
        root: &Path,
        places: Arc<DataPlaces>,
        on_written: Option<OnWritten>,
    ) -> std::io::Result<Self> {
        let root = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let root_ino = rustix::fs::fstat(&root)?.st_ino;
        let root_path = fd_path(root.as_fd())?;
        // Checked now, so a file system without handles is refused at mount, not per call.
        sys::name_to_handle(root.as_fd(), c"")?;
        Ok(Self {
            share: share.into(),
            places,
            root,
            root_ino,
            nodes: Mutex::default(),
            files: Mutex::default(),
            inodes: Mutex::default(),
            listings: Mutex::default(),
            locks: Mutex::default(),
            next_fh: AtomicU64::new(1),
            passthrough: Arc::new(AtomicBool::new(false)),
            root_path,
            on_written,
        })
    }

    /// Where inode `ino` is now, as a path inside the share (`None` once it is removed).
    fn path_in_share(&self, ino: INodeNo) -> Option<String> {
        let fd = self.path_fd(ino).ok()?;
        let path = fd_path(fd.as_fd()).ok()?;
        let rel = path.strip_prefix(&self.root_path).ok()?;
        let rel = rel.to_str()?;
        (!rel.is_empty() && !rel.ends_with(" (deleted)")).then(|| rel.to_string())
    }

    pub(crate) fn passthrough_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.passthrough)
    }

    fn as_root() -> Result<(), Errno> {
        sys::run_as_root().map_err(|_| Errno::EPERM)
    }

    /// Reopen inode `ino` with `flags`.
    fn open_ino(&self, ino: INodeNo, flags: i32) -> Result<OwnedFd, Errno> {
        Self::as_root()?;
        if ino == INodeNo::ROOT {
            let fd = rustix::fs::openat(
                &self.root,
                c".",
                OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            return Ok(fd);
        }
        let handle = {
            let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.get(&ino.0).map(|n| n.handle.clone())
        }
        .ok_or(Errno::ESTALE)?;
        sys::open_by_handle(self.root.as_fd(), &handle, flags).map_err(|e| {
            if e.raw_os_error() == Some(libc::ESTALE) {
                Errno::ENOENT
            } else {
                io_errno(e)
            }
        })
    }

    fn path_fd(&self, ino: INodeNo) -> Result<OwnedFd, Errno> {
        self.open_ino(ino, libc::O_PATH | libc::O_NOFOLLOW)
    }

    fn dir_fd(&self, ino: INodeNo) -> Result<OwnedFd, Errno> {
        self.open_ino(ino, libc::O_PATH | libc::O_DIRECTORY)
    }

    /// The FUSE inode number of a home inode.
    fn fuse_ino(&self, ino: u64) -> INodeNo {
        if ino == self.root_ino {
            INodeNo::ROOT
        } else {
            INodeNo(ino)
        }
    }

    /// What the kernel is told of a file: its home inode's attributes, with the size and
    /// times of its data's object while writers have it open there, and blocks for every
    /// byte of a file whose data is elsewhere (it is not sparse, only away).
    fn attr(&self, st: &Stat, open: impl FnOnce() -> Option<OwnedFd>) -> FileAttr {
        let mut size = st.st_size as u64;
        let mut blocks = st.st_blocks as u64;
        let (mut mtime, mut ctime) = (
            time(st.st_mtime, st.st_mtime_nsec as i64),
            time(st.st_ctime, st.st_ctime_nsec as i64),
        );
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile {
            let written = {
                let inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
                inodes
                    .get(&st.st_ino)
                    .filter(|o| o.writers > 0)
                    .and_then(|o| o.elsewhere.as_ref().map(|e| Arc::clone(&e.data)))
            };
            if let Some(data) = written.and_then(|d| rustix::fs::fstat(&*d).ok()) {
                size = data.st_size as u64;
                blocks = data.st_blocks as u64;
                mtime = time(data.st_mtime, data.st_mtime_nsec as i64);
                ctime = ctime.max(time(data.st_ctime, data.st_ctime_nsec as i64));
            } else if layout::has_fewer_blocks_than_bytes(st.st_size, st.st_blocks)
                && open().is_some_and(|f| layout::location_of(f.as_fd()).ok().flatten().is_some())
            {
                blocks = size.div_ceil(512);
            }
        }
        FileAttr {
            ino: self.fuse_ino(st.st_ino),
            size,
            blocks,
            atime: time(st.st_atime, st.st_atime_nsec as i64),
            mtime,
            ctime,
            crtime: ctime,
            kind: kind(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    fn getattr_of(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let fd = self.path_fd(ino)?;
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        Ok(self.attr(&st, || self.readable(ino).ok()))
    }

    /// Inode `ino` opened to read its xattrs: regular files and folders only (opening
    /// anything else could wake a device or block on a pipe).
    fn readable(&self, ino: INodeNo) -> Result<OwnedFd, Errno> {
        let kind = if ino == INodeNo::ROOT {
            rustix::fs::FileType::Directory
        } else {
            let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.get(&ino.0).map(|n| n.kind).ok_or(Errno::ESTALE)?
        };
        match kind {
            rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory => self.open_ino(
                ino,
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOATIME | libc::O_NOFOLLOW,
            ),
            _ => Err(Errno::EPERM),
        }
    }

    /// Look `name` up in the folder open at `dir`, remembering it for later calls.
    fn entry_in(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<FileAttr, Errno> {
        let (st, handle, attr) = self.look(dir, name)?;
        self.remember(&st, handle);
        Ok(attr)
    }

    /// What `name` in the folder open at `dir` is: its stat, handle and attributes.
    fn look(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
    ) -> Result<(Stat, KernelHandle, FileAttr), Errno> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        let handle = sys::name_to_handle(dir, name).map_err(io_errno)?;
        let attr = self.attr(&st, || {
            rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY
                    | OFlags::NONBLOCK
                    | OFlags::NOATIME
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
        });
        Ok((st, handle, attr))
    }

    /// One more lookup the kernel holds on the inode with stat `st`.
    fn remember(&self, st: &Stat, handle: KernelHandle) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let node = nodes.entry(st.st_ino).or_insert(Node {
            handle: handle.clone(),
            kind: rustix::fs::FileType::from_raw_mode(st.st_mode),
            lookups: 0,
        });
        // An inode number used again by a new file: the newest handle is the one.
        node.handle = handle;
        node.kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        node.lookups += 1;
    }

    /// Give the entry open at `fd` (just made in the folder open at `dir`) to the caller,
    /// with exactly `mode`'s permission bits (the process's umask is not the caller's).
    /// Acts on the descriptor, never on a name, so a link swapped in cannot redirect it.
    fn own(
        &self,
        req: &Request,
        dir: BorrowedFd<'_>,
        fd: BorrowedFd<'_>,
        mode: Option<u32>,
    ) -> Result<(), Errno> {
        let dst = rustix::fs::fstat(dir).map_err(errno)?;
        // In a setgid folder the new entry already has the folder's group, as locally.
        let gid = (dst.st_mode & libc::S_ISGID == 0).then(|| rustix::fs::Gid::from_raw(req.gid()));
        rustix::fs::chownat(
            fd,
            c"",
            Some(rustix::fs::Uid::from_raw(req.uid())),
            gid,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        if let Some(mode) = mode {
            rustix::fs::chmod(
                sys::proc_path(fd).as_str(),
                Mode::from_raw_mode(mode & 0o7777),
            )
            .map_err(errno)?;
        }
        Ok(())
    }

    /// Give what `name` in `dir` was just made as (of type `kind`) to the caller, and
    /// look it up. Something else under the name by now is left alone.
    fn made(
        &self,
        req: &Request,
        dir: BorrowedFd<'_>,
        name: &CStr,
        kind: rustix::fs::FileType,
        mode: Option<u32>,
    ) -> Result<FileAttr, Errno> {
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != kind {
            return Err(Errno::EEXIST);
        }
        let mode = mode.filter(|_| kind != rustix::fs::FileType::Symlink);
        if let Err(e) = self.own(req, dir, fd.as_fd(), mode) {
            // Not left behind owned by root.
            if rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|now| now.st_ino == st.st_ino)
            {
                let flags = if kind == rustix::fs::FileType::Directory {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                let _ = rustix::fs::unlinkat(dir, name, flags);
            }
            return Err(e);
        }
        self.entry_in(dir, name)
    }

    /// Record an open of the file (stat `st`, taken under its ticket) whose data is in
    /// `data`, and the backing file every open of it is passed through to.
    fn opened(
        &self,
        st: &Stat,
        data: Arc<OwnedFd>,
        elsewhere: Option<Arc<OwnedFd>>,
        writes: bool,
        hold: Option<OpenHold>,
        register: impl FnOnce(&OwnedFd) -> std::io::Result<BackingId>,
    ) -> (u64, Option<Arc<BackingId>>) {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
        let open = inodes.entry(st.st_ino).or_insert_with(|| OpenInode {
            opens: 0,
            writers: 0,
            backing: None,
            elsewhere: elsewhere.map(|home| Elsewhere {
                data: Arc::clone(&data),
                home,
            }),
        });
        open.opens += 1;
        if writes {
            open.writers += 1;
        }
        if open.backing.is_none() && self.passthrough.load(Ordering::SeqCst) {
            match register(&data) {
                Ok(id) => open.backing = Some(Arc::new(id)),
                Err(e) => {
                    tracing::warn!(share = %self.share, ino = st.st_ino, error = %e, "the kernel refused passthrough; this view answers reads and writes itself");
                    self.passthrough.store(false, Ordering::SeqCst);
                }
            }
        }
        let backing = open.backing.clone();
        drop(inodes);
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(
            fh,
            OpenFile {
                ino: st.st_ino,
                fd: data,
                writes,
                released: false,
                owners: Vec::new(),
                _hold: hold,
            },
        );
        (fh, backing)
    }

    /// Record a read-only open of the released file `home` (stat `st`): no backing file
    /// and no hold, so the recall can make it resident while it is open.
    fn opened_released(&self, st: &Stat, home: OwnedFd) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.inodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(st.st_ino)
            .or_default()
            .opens += 1;
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(
            fh,
            OpenFile {
                ino: st.st_ino,
                fd: Arc::new(home),
                writes: false,
                released: true,
                owners: Vec::new(),
                _hold: None,
            },
        );
        fh
    }

    /// `size` bytes at `offset` of the file open at `home`, opened while it was
    /// released: from the recaller while it still is (the range first, the rest follows
    /// in the background), from where its data is once it is back.
    fn read_released(&self, home: &OwnedFd, offset: u64, size: usize) -> Result<Vec<u8>, Errno> {
        let mut st = rustix::fs::fstat(home).map_err(errno)?;
        let ticket = self
            .places
            .enter(home.as_fd(), &mut st, false)
            .map_err(errno)?;
        let mut elsewhere = None;
        match self.locate(home, &st, OFlags::RDONLY)? {
            Resolved::InPlace => {}
            Resolved::Elsewhere(fd, _) => elsewhere = Some(fd),
            Resolved::Released => {
                // The recall's end needs the file without calls in flight.
                drop(ticket);
                let recaller = self.places.recaller().ok_or(Errno::EIO)?;
                return recaller
                    .read(home.as_fd(), &st, offset, size, RECALL_WAIT)
                    .map_err(|e| self.recall_errno(&st, e));
            }
        }
        let fd = elsewhere.as_ref().map_or(home.as_fd(), |fd| fd.as_fd());
        let mut buf = vec![0u8; size];
        let n = rustix::io::pread(fd, &mut buf, offset).map_err(errno)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Open regular file `ino` with `flags`: where its data is, looked at under a ticket.
    /// A released file is brought back whole first (Samba's clients wait on the open).
    fn open_data(&self, ino: INodeNo, flags: i32) -> Result<Opened, Errno> {
        match self.open_found(ino, flags)? {
            Found::Opened(opened) => Ok(opened),
            Found::Released(home, st) => {
                self.recall(&home, &st)?;
                match self.open_found(ino, flags)? {
                    Found::Opened(opened) => Ok(opened),
                    Found::Released(..) => Err(Errno::EAGAIN),
                }
            }
        }
    }

    /// Bring the released file open at `home` (stat `st`) back, waiting for it.
    fn recall(&self, home: &OwnedFd, st: &Stat) -> Result<(), Errno> {
        let recaller = self.places.recaller().ok_or(Errno::EIO)?;
        Self::as_root()?;
        recaller
            .recall(home.as_fd(), st, RECALL_WAIT)
            .map_err(|e| self.recall_errno(st, e))
    }

    /// What a call on a released file answers when its bytes are not given.
    fn recall_errno(&self, st: &Stat, e: RecallError) -> Errno {
        match e {
            RecallError::Later => {
                tracing::info!(share = %self.share, ino = st.st_ino, "a released file is still on its way back; the client is told to try again");
                Errno::EAGAIN
            }
            RecallError::Lost(why) => {
                tracing::warn!(share = %self.share, ino = st.st_ino, why = %why, "a released file cannot be read: no copy gives its bytes back");
                Errno::EIO
            }
        }
    }

    fn open_found(&self, ino: INodeNo, flags: i32) -> Result<Found, Errno> {
        let access = flags & libc::O_ACCMODE;
        let writes = access != libc::O_RDONLY;
        let home = self.open_ino(ino, access | libc::O_NOFOLLOW | libc::O_NONBLOCK)?;
        let mut st = rustix::fs::fstat(&home).map_err(errno)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Ok(Found::Opened((st, Arc::new(home), None, writes, None)));
        }
        let _ticket = self
            .places
            .enter(home.as_fd(), &mut st, writes)
            .map_err(errno)?;
        // Under the ticket: a switch either sees the hold or ended before the look.
        let hold = Some(self.places.hold_open(&st));
        let access_flags = OFlags::from_bits_retain(access as u32);
        Ok(match self.locate(&home, &st, access_flags)? {
            Resolved::InPlace => Found::Opened((st, Arc::new(home), None, writes, hold)),
            Resolved::Elsewhere(fd, _) => {
                Found::Opened((st, Arc::new(fd), Some(Arc::new(home)), writes, hold))
            }
            // The ticket and the hold go: the recall's end needs the file to itself.
            Resolved::Released => Found::Released(home, st),
        })
    }

    /// Where the data of the file open at `home` (stat `st`, taken under its ticket) is:
    /// in place without a look when its blocks say so, else as its location says.
    fn locate(&self, home: &OwnedFd, st: &Stat, flags: OFlags) -> Result<Resolved, Errno> {
        if !self.places.needs_lookup(st) {
            return Ok(Resolved::InPlace);
        }
        Self::as_root()?;
        self.places.resolve(home.as_fd(), st, flags).map_err(|e| {
            tracing::warn!(share = %self.share, ino = st.st_ino, error = %e, "the file's data is on a pool that cannot be reached");
            Errno::EIO
        })
    }

    /// The last writer of a file whose data is elsewhere closed (or a writer asked for
    /// fsync): its home file takes the object's size and modify time, as an NFS write's
    /// would. With `sync`, the home file is then written to disk too (`fdatasync` where
    /// only the data was asked for, which still carries a new size): clients see the
    /// home file's size, so an fsync that left it in memory could lose what it promised
    /// at a power cut, as NFS COMMIT syncs both.
    fn settle_home(
        &self,
        ino: u64,
        (data, home): &(Arc<OwnedFd>, Arc<OwnedFd>),
        sync: Option<DiskSync>,
    ) -> Result<(), Errno> {
        let settle = || -> Result<(), Errno> {
            let dst = rustix::fs::fstat(&**data).map_err(errno)?;
            // The home file this open found, reopened through its own descriptor (also
            // if a client removed it meanwhile), never looked up again by number.
            Self::as_root()?;
            let home = rustix::fs::open(
                sys::proc_path(home.as_fd()).as_str(),
                OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            let mut st = rustix::fs::fstat(&home).map_err(errno)?;
            let _ticket = self
                .places
                .enter(home.as_fd(), &mut st, true)
                .map_err(errno)?;
            if st.st_size != dst.st_size {
                rustix::fs::ftruncate(&home, dst.st_size as u64).map_err(errno)?;
            }
            rustix::fs::futimens(
                &home,
                &Timestamps {
                    last_access: OMIT,
                    last_modification: Timespec {
                        tv_sec: dst.st_mtime,
                        tv_nsec: dst.st_mtime_nsec as i64,
                    },
                },
            )
            .map_err(errno)?;
            sync.map_or(Ok(()), |sync| sync.of(home.as_fd()))
        };
        let settled = settle();
        if let Err(e) = settled {
            tracing::warn!(share = %self.share, ino, error = %std::io::Error::from_raw_os_error(e.code()), "cannot give a moved file's new size to its namespace file");
        }
        settled
    }

    /// The open `fh` wrote to data kept elsewhere: give its size and time to the home
    /// file (and with `sync`, write it to disk).
    fn settle_written(&self, fh: FileHandle, sync: Option<DiskSync>) -> Result<(), Errno> {
        let ino = {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            match files.get(&fh.0) {
                Some(f) if f.writes => f.ino,
                _ => return Ok(()),
            }
        };
        let data = {
            let inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
            inodes
                .get(&ino)
                .and_then(|o| o.elsewhere.as_ref().map(Elsewhere::files))
        };
        match data {
            Some(data) => self.settle_home(ino, &data, sync),
            None => Ok(()),
        }
    }

    fn setattr_of(&self, ino: INodeNo, change: Change) -> Result<FileAttr, Errno> {
        let Change {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = change;
        let fd = self.path_fd(ino)?;
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        let is_link =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink;
        if let Some(size) = size {
            let wfd = self.open_ino(ino, libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW)?;
            let mut st = rustix::fs::fstat(&wfd).map_err(errno)?;
            let mut ticket = self
                .places
                .enter(wfd.as_fd(), &mut st, true)
                .map_err(errno)?;
            let mut elsewhere = None;
            for attempt in 0..2 {
                if !self.places.needs_lookup(&st) {
                    break;
                }
                match self.places.resolve(wfd.as_fd(), &st, OFlags::WRONLY) {
                    Ok(Resolved::Elsewhere(fd, loc)) => elsewhere = Some((fd, loc)),
                    Ok(Resolved::InPlace) => {}
                    // A new size needs the bytes back first.
                    Ok(Resolved::Released) if attempt == 0 => {
                        drop(ticket.take());
                        self.recall(&wfd, &st)?;
                        st = rustix::fs::fstat(&wfd).map_err(errno)?;
                        ticket = self
                            .places
                            .enter(wfd.as_fd(), &mut st, true)
                            .map_err(errno)?;
                        continue;
                    }
                    Ok(Resolved::Released) => return Err(Errno::EAGAIN),
                    Err(_) => return Err(Errno::EIO),
                }
                break;
            }
            let _ticket = ticket;
            self.places
                .truncate(
                    wfd.as_fd(),
                    &st,
                    elsewhere.as_ref().map(|(d, l)| (d.as_fd(), l)),
                    size,
                )
                .map_err(errno)?;
        }
        if let Some(mode) = mode.filter(|_| !is_link) {
            rustix::fs::chmod(
                sys::proc_path(fd.as_fd()).as_str(),
                Mode::from_raw_mode(mode & 0o7777),
            )
            .map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            rustix::fs::chownat(
                &fd,
                c"",
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        }
        if (atime.is_some() || mtime.is_some()) && !is_link {
            rustix::fs::utimensat(
                rustix::fs::CWD,
                sys::proc_path(fd.as_fd()).as_str(),
                &Timestamps {
                    last_access: atime.map_or(OMIT, timespec),
                    last_modification: mtime.map_or(OMIT, timespec),
                },
                AtFlags::empty(),
            )
            .map_err(errno)?;
        }
        self.getattr_of(ino)
    }

    /// A readable descriptor of inode `ino` for its xattrs (`None`: not a file or a
    /// folder, which have none a caller may set).
    fn xattr_fd(&self, ino: INodeNo) -> Result<Option<OwnedFd>, Errno> {
        match self.readable(ino) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::EPERM) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn lock_fd(&self, ino: u64, owner: u64) -> Result<Arc<OwnedFd>, Errno> {
        if let Some(fd) = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(ino, owner))
        {
            return Ok(Arc::clone(fd));
        }
        let fd = self
            .open_ino(
                INodeNo(ino),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_NOFOLLOW,
            )
            .or_else(|_| self.open_ino(INodeNo(ino), libc::O_RDONLY | libc::O_NONBLOCK))?;
        // Another call of the same owner may have made one meanwhile: that one stays,
        // with any lock it already holds.
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Arc::clone(
            locks.entry((ino, owner)).or_insert(Arc::new(fd)),
        ))
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<OwnedFd>, Errno> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .map(|f| Arc::clone(&f.fd))
            .ok_or(Errno::EBADF)
    }

    /// The entries of listing `fh` of folder `ino`, read afresh at its start (offset 0:
    /// a new listing or a rewind).
    fn listing(&self, ino: INodeNo, fh: FileHandle, offset: u64) -> Result<Entries, Errno> {
        if offset == 0 {
            let fd = self.open_ino(ino, libc::O_RDONLY | libc::O_DIRECTORY)?;
            let mut dir = rustix::fs::Dir::read_from(&fd).map_err(errno)?;
            let mut entries = Vec::new();
            while let Some(entry) = dir.read() {
                let entry = entry.map_err(errno)?;
                let ft = fuse_type(entry.file_type());
                entries.push((entry.ino(), ft, entry.file_name().to_owned()));
            }
            let entries = Arc::new(entries);
            self.listings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(fh.0, Arc::clone(&entries));
            return Ok(entries);
        }
        self.listings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .map(Arc::clone)
            .ok_or(Errno::EBADF)
    }

    fn real_ino(&self, ino: INodeNo) -> u64 {
        if ino == INodeNo::ROOT {
            self.root_ino
        } else {
            ino.0
        }
    }
}

fn reply_entry(reply: ReplyEntry, r: Result<FileAttr, Errno>) {
    match r {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn own_xattr(name: &OsStr) -> bool {
    name.as_bytes().starts_with(OWN_XATTRS)
}

impl Filesystem for View {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(InitFlags::FUSE_POSIX_LOCKS);
        // Listings carry their entries' attributes; lookups in one folder run at once.
        let _ = config.add_capabilities(
            InitFlags::FUSE_DO_READDIRPLUS
                | InitFlags::FUSE_READDIRPLUS_AUTO
                | InitFlags::FUSE_PARALLEL_DIROPS,
        );
        let passthrough = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok();
        self.passthrough.store(passthrough, Ordering::SeqCst);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(
            reply,
            (|| {
                let dir = self.dir_fd(parent)?;
                self.entry_in(dir.as_fd(), &cname(name)?)
            })(),
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(node) = nodes.get_mut(&ino.0) {
            node.lookups = node.lookups.saturating_sub(nlookup);
            if node.lookups == 0 {
                nodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.getattr_of(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = Change {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        match self.setattr_of(ino, change) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path_fd(ino)
            .and_then(|fd| rustix::fs::readlinkat(&fd, c"", Vec::new()).map_err(errno))
        {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(
            reply,
            (|| {
                let dir = self.dir_fd(parent)?;
                let name = cname(name)?;
                rustix::fs::mknodat(
                    &dir,
                    name.as_c_str(),
                    rustix::fs::FileType::from_raw_mode(mode),
                    Mode::from_raw_mode(mode & 0o7777),
                    u64::from(rdev),
                )
                .map_err(errno)?;
                let kind = rustix::fs::FileType::from_raw_mode(mode);
                self.made(req, dir.as_fd(), &name, kind, Some(mode))
            })(),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(
            reply,
            (|| {
                let dir = self.dir_fd(parent)?;
                let name = cname(name)?;
                rustix::fs::mkdirat(&dir, name.as_c_str(), Mode::from_raw_mode(mode & 0o7777))
                    .map_err(errno)?;
                // A setgid folder's subfolders keep the bit, as the kernel gave them.
                let dst = rustix::fs::fstat(&dir).map_err(errno)?;
                let mode = mode | (dst.st_mode & libc::S_ISGID);
                self.made(
                    req,
                    dir.as_fd(),
                    &name,
                    rustix::fs::FileType::Directory,
                    Some(mode),
                )
            })(),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            (|| {
                let dir = self.dir_fd(parent)?;
                let name = cname(name)?;
                let doomed = self.places.doomed(dir.as_fd(), &name);
                rustix::fs::unlinkat(&dir, name.as_c_str(), AtFlags::empty()).map_err(errno)?;
                if let Some(d) = doomed {
                    d.free(&self.places);
                }
                Ok(())
            })(),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            (|| {
                let dir = self.dir_fd(parent)?;
                rustix::fs::unlinkat(&dir, cname(name)?.as_c_str(), AtFlags::REMOVEDIR)
                    .map_err(errno)
            })(),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        reply_entry(
            reply,
            (|| {
                let dir = self.dir_fd(parent)?;
                let name = cname(link_name)?;
                rustix::fs::symlinkat(target, &dir, name.as_c_str()).map_err(errno)?;
                self.made(req, dir.as_fd(), &name, rustix::fs::FileType::Symlink, None)
            })(),
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            (|| {
                let from = self.dir_fd(parent)?;
                let to = self.dir_fd(newparent)?;
                let (name, newname) = (cname(name)?, cname(newname)?);
                let replaces = flags.is_empty();
                // A file renamed over: its data goes with it, unless it is the same file.
                let doomed = replaces
                    .then(|| self.places.doomed(to.as_fd(), &newname))
                    .flatten()
                    .filter(|_| {
                        let ino = |d: &OwnedFd, n: &CStr| {
                            rustix::fs::statat(d, n, AtFlags::SYMLINK_NOFOLLOW).map(|s| s.st_ino)
                        };
                        ino(&from, &name).ok() != ino(&to, &newname).ok()
                    });
                rustix::fs::renameat_with(
                    &from,
                    name.as_c_str(),
                    &to,
                    newname.as_c_str(),
                    rustix::fs::RenameFlags::from_bits_retain(flags.bits()),
                )
                .map_err(errno)?;
                if let Some(d) = doomed {
                    d.free(&self.places);
                }
                Ok(())
            })(),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply_entry(
            reply,
            (|| {
                let fd = self.path_fd(ino)?;
                let dir = self.dir_fd(newparent)?;
                let name = cname(newname)?;
                rustix::fs::linkat(&fd, c"", &dir, name.as_c_str(), AtFlags::EMPTY_PATH)
                    .map_err(errno)?;
                self.entry_in(dir.as_fd(), &name)
            })(),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // A released file opened for reading opens at once and is read range by range
        // while it comes back (an editor scrubs a clip without waiting for all of it);
        // one opened for writing comes back whole first.
        let found = if flags.0 & libc::O_ACCMODE == libc::O_RDONLY {
            match self.open_found(ino, flags.0) {
                Ok(Found::Released(home, st)) => {
                    let fh = self.opened_released(&st, home);
                    return reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
                }
                Ok(Found::Opened(opened)) => Ok(opened),
                Err(e) => Err(e),
            }
        } else {
            self.open_data(ino, flags.0)
        };
        let (st, data, elsewhere, writes, hold) = match found {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let (fh, backing) = self.opened(&st, data, elsewhere, writes, hold, |fd| {
            reply.open_backing(fd)
        });
        match backing {
            Some(id) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id),
            None => reply.opened(FileHandle(fh), FopenFlags::empty()),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Only without passthrough (the kernel reads the backing file itself otherwise),
        // or for an open of a released file.
        let size = size.min(1 << 20) as usize;
        let file = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .map(|f| (Arc::clone(&f.fd), f.released));
        let r = match file {
            None => Err(Errno::EBADF),
            Some((home, true)) => self.read_released(&home, offset, size),
            Some((fd, false)) => {
                let mut buf = vec![0u8; size];
                rustix::io::pread(&*fd, &mut buf, offset)
                    .map(|n| {
                        buf.truncate(n);
                        buf
                    })
                    .map_err(errno)
            }
        };
        match r {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.file(fh).and_then(|fd| {
            let mut done = 0;
            while done < data.len() {
                done +=
                    rustix::io::pwrite(&*fd, &data[done..], offset + done as u64).map_err(errno)?;
            }
            Ok(done as u32)
        });
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) waits for this, so a writer's close leaves the home file with the
        // moved data's size and time before the closer (or an NFS client) looks. A
        // failure is logged there; close promises nothing about the disk.
        let _ = self.settle_written(fh, None);
        // A close drops the closer's byte-range locks.
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(self.real_ino(ino), lock_owner.0));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let sync = if datasync {
            DiskSync::Data
        } else {
            DiskSync::All
        };
        // The data first, then the home file that gives it its size.
        let r = self
            .file(fh)
            .and_then(|fd| sync.of(fd.as_fd()))
            .and_then(|()| self.settle_written(fh, Some(sync)));
        reply_empty(reply, r);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let Some(file) = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0)
        else {
            return reply.ok();
        };
        let mut settle = None;
        let mut last = false;
        {
            let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(open) = inodes.get_mut(&file.ino) {
                open.opens = open.opens.saturating_sub(1);
                if file.writes {
                    open.writers = open.writers.saturating_sub(1);
                    if open.writers == 0 {
                        settle = open.elsewhere.as_ref().map(Elsewhere::files);
                    }
                }
                last = open.opens == 0;
            }
        }
        if let Some(data) = settle {
            // Logged there; a close promises nothing about the disk.
            let _ = self.settle_home(file.ino, &data, None);
        }
        if file.writes {
            // The kernel wrote through this open without us: a copy that overlapped it
            // must not be switched to.
            self.places.count_write(file.ino);
        }
        if !file.owners.is_empty() {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            for owner in &file.owners {
                locks.remove(&(file.ino, *owner));
            }
        }
        if last {
            // The hold and the backing file go with the last open; so do its locks.
            let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
            if inodes.get(&file.ino).is_some_and(|o| o.opens == 0) {
                inodes.remove(&file.ino);
                self.locks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|(ino, _), _| *ino != file.ino);
            }
        }
        reply.ok();
        if file.writes {
            if let (Some(tell), Some(path)) = (&self.on_written, self.path_in_share(ino)) {
                tell(&path);
            }
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.open_ino(ino, libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(_) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.listing(ino, fh, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        for (i, (eino, ft, name)) in entries.iter().enumerate().skip(offset as usize) {
            let full = reply.add(
                self.fuse_ino(*eino),
                i as u64 + 1,
                *ft,
                OsStr::from_bytes(name.as_bytes()),
            );
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        // Each entry's attributes come with the listing, so the kernel looks none up
        // one by one (Samba stats every entry it lists).
        let entries = match self.listing(ino, fh, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let dir = match self.dir_fd(ino) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        for (i, (_, _, name)) in entries.iter().enumerate().skip(offset as usize) {
            if name.as_bytes() == b"." || name.as_bytes() == b".." {
                continue;
            }
            // Gone since the folder was read: left out.
            let Ok((st, handle, attr)) = self.look(dir.as_fd(), name) else {
                continue;
            };
            let full = reply.add(
                attr.ino,
                i as u64 + 1,
                OsStr::from_bytes(name.as_bytes()),
                &TTL,
                &attr,
                Generation(0),
            );
            if full {
                break;
            }
            // The kernel holds a lookup on every entry it was given.
            self.remember(&st, handle);
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.listings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match rustix::fs::fstatvfs(&self.root) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        if own_xattr(name) {
            return reply.error(Errno::EPERM);
        }
        reply_empty(
            reply,
            (|| {
                let fd = self.xattr_fd(ino)?.ok_or(Errno::EPERM)?;
                let name = cname(name)?;
                // Offline is what a file is now, not what it keeps once recalled.
                let kept;
                let value = if name.as_bytes() == dosattrib::NAME {
                    kept = dosattrib::stored(value);
                    &kept[..]
                } else {
                    value
                };
                rustix::fs::fsetxattr(
                    &fd,
                    name.as_c_str(),
                    value,
                    rustix::fs::XattrFlags::from_bits_retain(flags as u32),
                )
                .map_err(errno)
            })(),
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if own_xattr(name) {
            return reply.error(Errno::NO_XATTR);
        }
        let r = (|| {
            let fd = self.xattr_fd(ino)?.ok_or(Errno::NO_XATTR)?;
            let name = cname(name)?;
            let mut buf = vec![0u8; 64 * 1024];
            let got = rustix::fs::fgetxattr(&fd, name.as_c_str(), &mut buf);
            // A released file is offline to SMB clients (Samba reads its attributes here).
            if name.as_bytes() == dosattrib::NAME && stub::is_released(fd.as_fd()) == Ok(true) {
                let stored = match got {
                    Ok(n) => Some(&buf[..n]),
                    Err(rustix::io::Errno::NODATA) => None,
                    Err(e) => return Err(errno(e)),
                };
                let mode = rustix::fs::fstat(&fd).map_err(errno)?.st_mode;
                return Ok(dosattrib::shown_offline(stored, mode));
            }
            buf.truncate(got.map_err(errno)?);
            Ok(buf)
        })();
        match r {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = (|| {
            let Some(fd) = self.xattr_fd(ino)? else {
                return Ok(Vec::new());
            };
            let mut buf = vec![0u8; 64 * 1024];
            let n = rustix::fs::flistxattr(&fd, &mut buf).map_err(errno)?;
            let mut out = Vec::with_capacity(n + dosattrib::NAME.len() + 1);
            let (mut has_dosattrib, mut placed) = (false, false);
            for name in buf[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
                if name.starts_with(OWN_XATTRS) {
                    placed |= name == layout::DATA_XATTR.as_bytes();
                } else {
                    has_dosattrib |= name == dosattrib::NAME;
                    out.extend_from_slice(name);
                    out.push(0);
                }
            }
            // A released file always has attributes to show (offline). Only a file with a
            // data pointer can be one: the rest of a listing costs no second look.
            if placed && !has_dosattrib && stub::is_released(fd.as_fd()) == Ok(true) {
                out.extend_from_slice(dosattrib::NAME);
                out.push(0);
            }
            Ok(out)
        })();
        match r {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if own_xattr(name) {
            return reply.error(Errno::EPERM);
        }
        reply_empty(
            reply,
            (|| {
                let fd = self.xattr_fd(ino)?.ok_or(Errno::NO_XATTR)?;
                rustix::fs::fremovexattr(&fd, cname(name)?.as_c_str()).map_err(errno)
            })(),
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The kernel checks permissions itself (`default_permissions`).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let made = (|| {
            let dir = self.dir_fd(parent)?;
            let name = cname(name)?;
            // Always a new file (FUSE asks only for a name it found free): an entry that
            // appeared meanwhile is not truncated or taken over.
            let open = OFlags::from_bits_retain((flags & libc::O_ACCMODE) as u32)
                | OFlags::CREATE
                | OFlags::EXCL
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(
                &dir,
                name.as_c_str(),
                open,
                Mode::from_raw_mode(mode & 0o7777),
            )
            .map_err(errno)?;
            if let Err(e) = self.own(req, dir.as_fd(), fd.as_fd(), Some(mode)) {
                let _ = rustix::fs::unlinkat(&dir, name.as_c_str(), AtFlags::empty());
                return Err(e);
            }
            let handle = sys::name_to_handle(fd.as_fd(), c"").map_err(io_errno)?;
            let mut st = rustix::fs::fstat(&fd).map_err(errno)?;
            let _ticket = self
                .places
                .enter(fd.as_fd(), &mut st, true)
                .map_err(errno)?;
            let hold = self.places.hold_open(&st);
            self.remember(&st, handle);
            Ok((self.attr(&st, || None), st, fd, hold))
        })();
        let (attr, st, fd, hold) = match made {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let (fh, backing) = self.opened(&st, Arc::new(fd), None, writes, Some(hold), |fd| {
            reply.open_backing(fd)
        });
        match backing {
            Some(id) => reply.created_passthrough(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
                &id,
            ),
            None => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
        }
    }

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        let r = (|| {
            let kind = lock_kind(typ)?;
            let fd = self.lock_fd(self.real_ino(ino), lock_owner.0)?;
            let (s, l) = lock_range(start, end);
            sys::ofd_conflict(fd.as_fd(), kind, s, l).map_err(io_errno)
        })();
        match r {
            Ok(None) => reply.locked(start, end, libc::F_UNLCK, 0),
            Ok(Some((exclusive, s, l))) => {
                let end = if l == 0 {
                    i64::MAX as u64
                } else {
                    (s + l - 1) as u64
                };
                let typ = if exclusive {
                    libc::F_WRLCK
                } else {
                    libc::F_RDLCK
                };
                reply.locked(s as u64, end, typ, 0)
            }
            Err(e) => reply.error(e),
        }
    }

    fn setlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let prepared = (|| {
            let kind = lock_kind(typ)?;
            let fd = self.lock_fd(self.real_ino(ino), lock_owner.0)?;
            if let Some(f) = self
                .files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&fh.0)
            {
                if !f.owners.contains(&lock_owner.0) {
                    f.owners.push(lock_owner.0);
                }
            }
            Ok((kind, fd))
        })();
        let (kind, fd) = match prepared {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let (s, l) = lock_range(start, end);
        match sys::ofd_lock(fd.as_fd(), kind, s, l) {
            Ok(true) => reply.ok(),
            Ok(false) if !sleep => reply.error(Errno::EAGAIN),
            Ok(false) => {
                // A blocking lock waits in a thread of its own, so no caller waits behind it.
                std::thread::spawn(move || {
                    reply_empty(
                        reply,
                        sys::ofd_lock_wait(fd.as_fd(), kind, s, l).map_err(io_errno),
                    )
                });
            }
            Err(e) => reply.error(io_errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.file(fh).and_then(|fd| {
                rustix::fs::fallocate(
                    &*fd,
                    rustix::fs::FallocateFlags::from_bits_retain(mode as u32),
                    offset,
                    length,
                )
                .map_err(errno)
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_lock_ranges_become_fcntl_ranges() {
        assert_eq!(lock_range(0, i64::MAX as u64), (0, 0));
        assert_eq!(lock_range(10, u64::MAX), (10, 0));
        assert_eq!(lock_range(10, 19), (10, 10));
        assert_eq!(lock_range(5, 5), (5, 1));
    }

    #[test]
    fn the_layers_own_xattrs_are_never_a_callers() {
        assert!(own_xattr(OsStr::new("trusted.rushes.data")));
        assert!(!own_xattr(OsStr::new("user.DOSATTRIB")));
        assert!(!own_xattr(OsStr::new("trusted.rushesx")));
    }
}
