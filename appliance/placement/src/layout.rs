//! The namespace layer: a share's tree (every directory, inode, name, attribute) stays
//! on its home pool, and a file's data may live on another pool. Such a file's
//! namespace inode keeps its size with no blocks (a hole), and names where its data is
//! in the `trusted.rushes.data` xattr: `POOL/OBJECT`, the object under
//! `POOL/.rushes/data/`. A file without the xattr has its data in place.
//!
//! Servers resolve the location on every data call ([`DataPlaces::resolve`]) under an
//! [`IoTicket`]; the mover switches a location only once no ticket of that file's shard
//! is out, so no call reads the old place after it is given back.

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Where a file's data is when it is not in its namespace inode.
pub const DATA_XATTR: &str = "trusted.rushes.data";
const DATA_XATTR_C: &std::ffi::CStr = c"trusted.rushes.data";

/// Under a pool's root: moved data, and the journal of moves under way.
pub const DATA_DIR: &str = ".rushes/data";
pub const MOVING_DIR: &str = ".rushes/moving";
/// Under a pool's root: data whose file's last name is being removed, freed at start
/// when a crash came between the removal and the freeing ([`recover_freeing`]).
pub const FREEING_DIR: &str = ".rushes/freeing";

/// A location longer than this is not ours (pool names and object names are short).
const MAX_LOCATION: usize = 1024;

/// Data kept on `pool` as `POOL/.rushes/data/OBJECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLocation {
    pub pool: String,
    pub object: String,
}

impl DataLocation {
    /// The xattr's value, or `None` when it is not one we wrote.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let (pool, object) = text.split_once('/')?;
        let sane =
            |s: &str| !s.is_empty() && !s.split('/').any(|c| c.is_empty() || c == "." || c == "..");
        (sane(pool) && sane(object) && !pool.contains('/')).then(|| Self {
            pool: pool.into(),
            object: object.into(),
        })
    }

    pub fn encode(&self) -> String {
        format!("{}/{}", self.pool, self.object)
    }
}

/// Files this small are always looked up: a moved or released file keeps no data
/// blocks, but a block of extended attributes (Samba's ACL, the copies' record) can
/// make a small one look as if its data were here, and its hole would read as zeros.
pub const ALWAYS_LOOKED_UP: i64 = 256 << 10;

/// Whether a namespace inode's stat allows its data to be elsewhere: fewer blocks than
/// its size, or small enough for xattr blocks to hide that. A bigger file with its data
/// in place skips the xattr.
pub fn may_be_elsewhere(size: i64, blocks: i64) -> bool {
    size > 0 && (blocks.saturating_mul(512) < size || size <= ALWAYS_LOOKED_UP)
}

/// Whether a file has fewer blocks than bytes (sparse, or its data away): what a view
/// reports about allocation, not where data calls go.
pub fn has_fewer_blocks_than_bytes(size: i64, blocks: i64) -> bool {
    size > 0 && blocks.saturating_mul(512) < size
}

/// The location named by the namespace inode open at `fd` (not an `O_PATH` descriptor).
/// A released file's data is on no pool: `ENOMEDIUM` (see the `stub` module), so no caller
/// that knows only pools takes its hole for its bytes.
pub fn location_of(fd: BorrowedFd<'_>) -> Result<Option<DataLocation>, Errno> {
    let mut buf = [0u8; MAX_LOCATION];
    match rustix::fs::fgetxattr(fd, DATA_XATTR_C, &mut buf) {
        Ok(n) if buf[..n].starts_with(RELEASED) => Err(Errno::NOMEDIUM),
        Ok(n) => Ok(DataLocation::parse(&buf[..n])),
        Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Record `loc` as the data's place (`None`: in the namespace inode itself).
pub fn set_location(fd: BorrowedFd<'_>, loc: Option<&DataLocation>) -> Result<(), Errno> {
    match loc {
        Some(loc) => rustix::fs::fsetxattr(
            fd,
            DATA_XATTR_C,
            loc.encode().as_bytes(),
            rustix::fs::XattrFlags::empty(),
        ),
        None => match rustix::fs::fremovexattr(fd, DATA_XATTR_C) {
            Err(Errno::NODATA) => Ok(()),
            other => other,
        },
    }
}

/// How the `trusted.rushes.data` value of a released file begins; `:` and the blake3
/// (hex) of its bytes follow.
pub const RELEASED: &[u8] = b"@released";

/// Why a released file's bytes are not given now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecallError {
    /// On their way, or the target is slow or unreachable now: ask again later (NFS
    /// answers JUKEBOX, so the client retries instead of hanging).
    Later,
    /// No copy can give them back (every copy is gone or changed): an I/O error, never
    /// zeros.
    Lost(String),
}

/// Brings released files back from their copies: rushesd's recall queue.
pub trait Recaller: Send + Sync {
    /// Bytes `offset..offset + len` (cut at the end of the file) of the released file
    /// open at `ns` (stat `st`), fetched before the rest, which follows in the
    /// background. Gives up with [`RecallError::Later`] after `wait`.
    fn read(
        &self,
        ns: BorrowedFd<'_>,
        st: &rustix::fs::Stat,
        offset: u64,
        len: usize,
        wait: Duration,
    ) -> Result<Vec<u8>, RecallError>;

    /// Bring the whole released file open at `ns` back, waiting at most `wait` for it.
    fn recall(
        &self,
        ns: BorrowedFd<'_>,
        st: &rustix::fs::Stat,
        wait: Duration,
    ) -> Result<(), RecallError>;
}

/// The in-flight calls of one shard of files.
#[derive(Default)]
struct Shard {
    users: AtomicUsize,
    /// Data-changing calls that ended: a move whose count moved copied stale bytes.
    writes: AtomicU64,
    switching: AtomicBool,
    /// One switch at a time.
    switcher: Mutex<()>,
    /// Writes past the end of a file kept elsewhere grow its namespace inode one at a
    /// time, so a shorter write never shrinks what a longer one grew.
    growing: Mutex<()>,
}

const SHARDS: usize = 64;

/// How long a switch waits for calls in flight before it gives way and tries later.
pub const SWITCH_WAIT: Duration = Duration::from_millis(250);

/// Every pool's data folder, and the gate between data calls and location switches.
pub struct DataPlaces {
    /// Each pool's data folder, by path: a descriptor held open would keep the pool busy
    /// (no unmount when it is destroyed or exported), and a path finds a pool mounted
    /// again; a pool not mounted has no data folder, so nothing is written under its
    /// mount point instead.
    roots: RwLock<HashMap<String, PathBuf>>,
    shards: Vec<Shard>,
    /// Recalls under way: while any is, a namespace inode whose blocks are filling up
    /// may still have its data elsewhere, so every call reads the xattr.
    recalls: AtomicUsize,
    /// Pools in `roots`, read on every data call without the lock.
    pools: AtomicUsize,
    /// Files open through the FUSE view, by (device, inode), with how many opens each:
    /// an open file's reads and writes go straight to the file its data was in when it
    /// was opened, so its data stays there until the last close.
    held: Mutex<HashMap<(u64, u64), u32>>,
    /// What brings released files back from their copies; set, it makes every data call
    /// take a ticket even with no pool, so a release never races a write.
    recaller: std::sync::OnceLock<Arc<dyn Recaller>>,
}

impl Default for DataPlaces {
    fn default() -> Self {
        Self {
            pools: AtomicUsize::new(0),
            roots: RwLock::default(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            recalls: AtomicUsize::new(0),
            held: Mutex::default(),
            recaller: std::sync::OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for DataPlaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .roots
            .read()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("DataPlaces").field("pools", &names).finish()
    }
}

/// A data call in flight on one file: while any is out, its shard's locations hold.
pub struct IoTicket {
    places: Arc<DataPlaces>,
    shard: usize,
    writes: bool,
}

impl Drop for IoTicket {
    fn drop(&mut self) {
        let shard = &self.places.shards[self.shard];
        if self.writes {
            // Counted once the write is done, so a copy that overlapped it sees the change
            // even when the file system's ctime did not tick between the two.
            shard.writes.fetch_add(1, Ordering::SeqCst);
        }
        shard.users.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for IoTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoTicket")
            .field("shard", &self.shard)
            .finish()
    }
}

/// A location switch in progress: no data call of the shard is in flight until it drops.
pub struct Switch<'a> {
    shard: &'a Shard,
    _one: std::sync::MutexGuard<'a, ()>,
}

impl Drop for Switch<'_> {
    fn drop(&mut self) {
        self.shard.switching.store(false, Ordering::SeqCst);
    }
}

/// A file kept open through the FUSE view: its data does not move until this drops.
pub struct OpenHold {
    places: Arc<DataPlaces>,
    key: (u64, u64),
}

impl Drop for OpenHold {
    fn drop(&mut self) {
        let mut held = self.places.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl std::fmt::Debug for OpenHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenHold").field("key", &self.key).finish()
    }
}

/// The data of a file whose last name is about to go, freed once it has gone
/// ([`DataPlaces::doomed`]).
#[derive(Debug)]
pub struct Doomed {
    _ticket: Option<IoTicket>,
    loc: DataLocation,
    /// The file, to see that its last name is really gone (a link made meanwhile keeps
    /// it, and its data).
    file: OwnedFd,
    /// The freeing entry on the data's pool, until the data is freed or kept.
    entry: Option<PathBuf>,
}

impl Doomed {
    /// Free the data now that the file's last name is gone. One that cannot be freed is
    /// logged and stays on its pool, taking room but harming nothing.
    pub fn free(mut self, places: &DataPlaces) {
        if rustix::fs::fstat(&self.file).map_or(true, |st| st.st_nlink > 0) {
            tracing::info!(object = %self.loc.encode(), "a removed file still has a name; its data stays");
            return;
        }
        match places.remove(&self.loc) {
            Ok(()) => tracing::debug!(object = %self.loc.encode(), "a removed file's data freed"),
            Err(e) => {
                tracing::warn!(object = %self.loc.encode(), error = %e, "cannot free a removed file's data on its pool")
            }
        }
        if let Some(entry) = self.entry.take() {
            let _ = std::fs::remove_file(entry);
        }
    }
}

impl Drop for Doomed {
    /// Not freed: the name stayed (the removal failed, or renamed the file onto itself).
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            let _ = std::fs::remove_file(entry);
        }
    }
}

/// A freeing entry: the data, and the name whose removal frees it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Freeing {
    object: String,
    path: PathBuf,
    ino: u64,
}

/// What [`recover_freeing`] did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    pub object: String,
    pub path: PathBuf,
    /// `freed` (the name had gone) or `kept` (it is still there).
    pub outcome: &'static str,
}

/// Settle the removals a crash cut short on the pool mounted at `pool_root`: data whose
/// file's name is gone is freed, data whose name is still there (the crash came before
/// the removal) is kept. Run before any share is served.
pub fn recover_freeing(places: &DataPlaces, pool_root: &Path) -> Vec<Freed> {
    let Ok(entries) = std::fs::read_dir(pool_root.join(FREEING_DIR)) else {
        return Vec::new();
    };
    let mut done = Vec::new();
    for entry in entries.flatten() {
        let file = entry.path();
        // A torn entry was never followed by its removal: nothing to free.
        let Some((f, loc)) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| toml::from_str::<Freeing>(&t).ok())
            .and_then(|f| DataLocation::parse(f.object.as_bytes()).map(|l| (f, l)))
        else {
            let _ = std::fs::remove_file(&file);
            continue;
        };
        // The data's pool, and the folder the name was in (its pool mounted), must be
        // there to tell; otherwise the entry waits for a start that has both.
        let folder_there = f.path.parent().is_some_and(|d| d.is_dir());
        if !places.has_pool(&loc.pool) || !folder_there {
            continue;
        }
        let named = rustix::fs::open(
            &f.path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .filter(|fd| rustix::fs::fstat(fd).is_ok_and(|st| st.st_ino == f.ino))
        .and_then(|fd| location_of(std::os::fd::AsFd::as_fd(&fd)).ok().flatten())
            == Some(loc.clone());
        let outcome = if named {
            "kept"
        } else {
            if places.remove(&loc).is_err() {
                continue;
            }
            "freed"
        };
        let _ = std::fs::remove_file(&file);
        done.push(Freed {
            object: f.object,
            path: f.path,
            outcome,
        });
    }
    done
}

/// A recall under way (see [`DataPlaces::recalls`]).
pub struct Recall<'a>(&'a AtomicUsize);

impl Drop for Recall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A recall under way that outlives the call that began it (a released file's).
pub struct RecallHeld(Arc<DataPlaces>);

impl Drop for RecallHeld {
    fn drop(&mut self) {
        self.0.recalls.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for RecallHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecallHeld")
    }
}

/// Where a data call's bytes are.
#[derive(Debug)]
pub enum Resolved {
    /// In the namespace inode.
    InPlace,
    /// In this file on another pool.
    Elsewhere(OwnedFd, DataLocation),
    /// On no pool: the file is released, its bytes are on copies elsewhere
    /// ([`DataPlaces::recaller`] brings them).
    Released,
}

fn shard_of(ino: u64) -> usize {
    (ino.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS
}

impl DataPlaces {
    /// Pool `name`'s data is under `root/.rushes/data` (made when missing).
    pub fn add_pool(&self, name: &str, root: &Path) -> Result<(), Errno> {
        let dir = root.join(DATA_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
        if let Ok(mut roots) = self.roots.write() {
            roots.insert(name.to_string(), dir);
            self.pools.store(roots.len(), Ordering::SeqCst);
        }
        Ok(())
    }

    /// The ticket a data call on the file open at `fd` (stat `st`) takes before it looks
    /// at where the data is, when any file may be elsewhere (`writes` for calls that
    /// change the data or the size). `st` is taken again under the ticket: one taken
    /// before may predate a switch, and say the data is in place after the mover gave the
    /// blocks back.
    pub fn enter(
        self: &Arc<Self>,
        fd: BorrowedFd<'_>,
        st: &mut rustix::fs::Stat,
        writes: bool,
    ) -> Result<Option<IoTicket>, Errno> {
        if !self.active() {
            return Ok(None);
        }
        let ticket = self.take(st.st_ino, writes);
        *st = rustix::fs::fstat(fd)?;
        Ok(Some(ticket))
    }

    /// Whether pool `name`'s data is reachable.
    pub fn has_pool(&self, name: &str) -> bool {
        self.roots.read().is_ok_and(|r| r.contains_key(name))
    }

    fn root(&self, pool: &str) -> Result<PathBuf, Errno> {
        self.roots
            .read()
            .ok()
            .and_then(|r| r.get(pool).cloned())
            .ok_or(Errno::NXIO)
    }

    /// Open `loc`'s object with `flags` (`O_CREAT` makes the share's folder first).
    pub fn open(&self, loc: &DataLocation, flags: OFlags) -> Result<OwnedFd, Errno> {
        let root = self.root(&loc.pool)?;
        let path = root.join(&loc.object);
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let mode = Mode::from_raw_mode(0o600);
        match rustix::fs::open(&path, flags, mode) {
            Err(Errno::NOENT) if flags.contains(OFlags::CREATE) => {
                if let Some((dir, _)) = loc.object.rsplit_once('/') {
                    // Only the share's folder: a data folder that is not there means the
                    // pool is not mounted, and nothing is made under its mount point.
                    match rustix::fs::mkdir(root.join(dir), Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e),
                    }
                }
                rustix::fs::open(&path, flags, mode)
            }
            other => other,
        }
    }

    /// Rename object `from` to `to` on the same pool, durably.
    pub fn rename(&self, pool: &str, from: &str, to: &str) -> Result<(), Errno> {
        let root = self.root(pool)?;
        let to = root.join(to);
        rustix::fs::rename(root.join(from), &to)?;
        let dir = rustix::fs::open(
            to.parent().unwrap_or(&root),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::fsync(&dir)
    }

    /// Remove `loc`'s object; one already gone is fine.
    pub fn remove(&self, loc: &DataLocation) -> Result<(), Errno> {
        let root = self.root(&loc.pool)?;
        match rustix::fs::unlink(root.join(&loc.object)) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Count a change of `ino`'s data made where no ticket saw it (a file written
    /// through the FUSE view by the kernel itself), so a copy that overlapped it is not
    /// switched to.
    pub fn count_write(&self, ino: u64) {
        self.shards[shard_of(ino)]
            .writes
            .fetch_add(1, Ordering::SeqCst);
    }

    /// How many data-changing calls on `ino`'s shard have ended.
    pub fn writes(&self, ino: u64) -> u64 {
        self.shards[shard_of(ino)].writes.load(Ordering::SeqCst)
    }

    fn take(self: &Arc<Self>, ino: u64, writes: bool) -> IoTicket {
        let shard = shard_of(ino);
        let s = &self.shards[shard];
        loop {
            s.users.fetch_add(1, Ordering::SeqCst);
            if !s.switching.load(Ordering::SeqCst) {
                return IoTicket {
                    places: Arc::clone(self),
                    shard,
                    writes,
                };
            }
            s.users.fetch_sub(1, Ordering::SeqCst);
            while s.switching.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// Hold off data calls on `ino`'s shard: `None` if calls in flight did not end within
    /// [`SWITCH_WAIT`] (a slow client); the switch is tried again later.
    pub fn switch(&self, ino: u64) -> Option<Switch<'_>> {
        let shard = &self.shards[shard_of(ino)];
        let one = shard.switcher.lock().unwrap_or_else(|p| p.into_inner());
        shard.switching.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + SWITCH_WAIT;
        while shard.users.load(Ordering::SeqCst) > 0 {
            if Instant::now() > deadline {
                shard.switching.store(false, Ordering::SeqCst);
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Some(Switch { shard, _one: one })
    }

    /// Whether any pool's data is reachable or files may be released: without either no
    /// file can be elsewhere, and servers skip the tickets.
    pub fn active(&self) -> bool {
        self.pools.load(Ordering::Relaxed) > 0 || self.recaller.get().is_some()
    }

    /// Bring released files back with `recaller` from now on (set once).
    pub fn set_recaller(&self, recaller: Arc<dyn Recaller>) {
        let _ = self.recaller.set(recaller);
    }

    /// What brings released files back, when the box has one.
    pub fn recaller(&self) -> Option<&Arc<dyn Recaller>> {
        self.recaller.get()
    }

    /// Whether the file with stat `st` must be looked up ([`DataPlaces::resolve`]): it has
    /// fewer blocks than bytes, or a recall is under way somewhere.
    pub fn needs_lookup(&self, st: &rustix::fs::Stat) -> bool {
        self.recalls.load(Ordering::SeqCst) > 0 || may_be_elsewhere(st.st_size, st.st_blocks)
    }

    /// After a write ending at byte `end` of a file whose data is elsewhere: its namespace
    /// inode (open at `ns`, writable) grows to `end` when that is past its size, and its
    /// modify and change times move as the write's own would have. Call with the write's
    /// ticket held, as the writer.
    pub fn written(&self, ino: u64, ns: BorrowedFd<'_>, end: u64) -> Result<(), Errno> {
        let shard = &self.shards[shard_of(ino)];
        let _one = shard.growing.lock().unwrap_or_else(|p| p.into_inner());
        let st = rustix::fs::fstat(ns)?;
        if end > st.st_size as u64 {
            rustix::fs::ftruncate(ns, end)
        } else {
            let omit = rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            };
            let now = rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            };
            rustix::fs::futimens(
                ns,
                &rustix::fs::Timestamps {
                    last_access: omit,
                    last_modification: now,
                },
            )
        }
    }

    /// Keep the data of the file with stat `st` where it is until the hold drops: the
    /// FUSE view holds each file it has open. Take it under the file's ticket, so a
    /// switch either sees it or has finished before the open looks where the data is.
    pub fn hold_open(self: &Arc<Self>, st: &rustix::fs::Stat) -> OpenHold {
        let key = (st.st_dev, st.st_ino);
        *self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(0) += 1;
        OpenHold {
            places: Arc::clone(self),
            key,
        }
    }

    /// Whether the file with stat `st` is open through the FUSE view.
    pub fn is_held(&self, st: &rustix::fs::Stat) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&(st.st_dev, st.st_ino))
    }

    /// The data that `name` in `dir` keeps on another pool, when the name is a regular
    /// file's only link and about to go (a remove, or a rename over it): free it with
    /// [`Doomed::free`] once the name is gone. Holds the file's write ticket meanwhile,
    /// so no move switches its data. Call as root (the location is a trusted.* xattr).
    pub fn doomed(self: &Arc<Self>, dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> Option<Doomed> {
        if !self.active() {
            return None;
        }
        let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let single = rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::RegularFile
            && st.st_nlink == 1;
        if !single || !self.needs_lookup(&st) {
            return None;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOATIME | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let mut now = st;
        let ticket = self
            .enter(std::os::fd::AsFd::as_fd(&fd), &mut now, true)
            .ok()?;
        if now.st_ino != st.st_ino {
            return None;
        }
        let loc = location_of(std::os::fd::AsFd::as_fd(&fd)).ok()??;
        // Written down before the name goes, so a crash between the removal and the
        // freeing leaves nothing on the pool that no file names.
        let entry = match self.write_freeing(&loc, dir, name, st.st_ino) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::warn!(object = %loc.encode(), error = %e, "cannot record a removal before it; a crash now would leave its data on the pool");
                None
            }
        };
        Some(Doomed {
            _ticket: ticket,
            loc,
            file: fd,
            entry,
        })
    }

    /// The freeing entry of `loc`, whose name is `name` in `dir`, durable on its pool.
    fn write_freeing(
        &self,
        loc: &DataLocation,
        dir: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        ino: u64,
    ) -> Result<PathBuf, Errno> {
        let io = |e: std::io::Error| Errno::from_io_error(&e).unwrap_or(Errno::IO);
        let folder = rustix::fs::readlink(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir)),
            Vec::new(),
        )?;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(folder.as_bytes()))
            .join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let text = toml::to_string(&Freeing {
            object: loc.encode(),
            path,
            ino,
        })
        .map_err(|_| Errno::INVAL)?;
        let data = self.root(&loc.pool)?;
        let freeing = data.parent().unwrap_or(&data).join("freeing");
        std::fs::create_dir_all(&freeing).map_err(io)?;
        let entry = freeing.join(format!("{}.toml", loc.object.replace('/', "+")));
        let mut f = std::fs::File::create(&entry).map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::File::open(&freeing)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(entry)
    }

    /// Truncate the file open writable at `ns` (stat `st`), whose data is `elsewhere`
    /// when not in place, to `size`, under the call's write ticket. Cut to nothing, data
    /// kept elsewhere comes home (there is nothing left to keep there), unless the file
    /// is open through the FUSE view, whose writes go straight to that object.
    pub fn truncate(
        &self,
        ns: BorrowedFd<'_>,
        st: &rustix::fs::Stat,
        elsewhere: Option<(BorrowedFd<'_>, &DataLocation)>,
        size: u64,
    ) -> Result<(), Errno> {
        rustix::fs::ftruncate(ns, size)?;
        let Some((data, loc)) = elsewhere else {
            return Ok(());
        };
        if size == 0 && !self.is_held(st) {
            set_location(ns, None)?;
            if let Err(e) = self.remove(loc) {
                tracing::warn!(object = %loc.encode(), error = %e, "cannot free a truncated file's data on its pool");
            }
            Ok(())
        } else {
            rustix::fs::ftruncate(data, size)
        }
    }

    /// Mark a recall under way until the guard drops.
    pub fn recall(&self) -> Recall<'_> {
        self.recalls.fetch_add(1, Ordering::SeqCst);
        Recall(&self.recalls)
    }

    /// [`DataPlaces::recall`] for a recall that outlives the call.
    pub fn recall_held(self: &Arc<Self>) -> RecallHeld {
        self.recalls.fetch_add(1, Ordering::SeqCst);
        RecallHeld(Arc::clone(self))
    }

    /// Where the data of the namespace inode open at `ns` is, opened with `flags` when it
    /// is elsewhere. Call with a ticket held.
    pub fn resolve(
        &self,
        ns: BorrowedFd<'_>,
        st: &rustix::fs::Stat,
        flags: OFlags,
    ) -> Result<Resolved, Errno> {
        if self.recalls.load(Ordering::SeqCst) == 0 && !may_be_elsewhere(st.st_size, st.st_blocks) {
            return Ok(Resolved::InPlace);
        }
        match location_of(ns) {
            Ok(None) => Ok(Resolved::InPlace),
            Ok(Some(loc)) => {
                let fd = self.open(&loc, flags)?;
                Ok(Resolved::Elsewhere(fd, loc))
            }
            Err(Errno::NOMEDIUM) => Ok(Resolved::Released),
            Err(e) => Err(e),
        }
    }
}

/// A file's bytes opened for reading wherever placement keeps them, held there (a move
/// does not switch them away) while this lives.
pub struct DataRead {
    pub file: std::fs::File,
    _ticket: Option<IoTicket>,
}

/// The bytes of the namespace file `file` for reading: `file` itself, or the object on
/// another pool that holds its data, under a ticket. For readers other than NFS and the
/// view, which resolve per call: the catalog's header reads, copies to other sites.
/// Without `places` (no pools: a host's folders) the file is its own data.
pub fn read_data(places: Option<&Arc<DataPlaces>>, file: std::fs::File) -> Result<DataRead, Errno> {
    use std::os::fd::AsFd;
    let Some(places) = places else {
        return Ok(DataRead {
            file,
            _ticket: None,
        });
    };
    let mut st = rustix::fs::fstat(&file)?;
    let ticket = places.enter(file.as_fd(), &mut st, false)?;
    let file = match places.resolve(file.as_fd(), &st, OFlags::RDONLY)? {
        Resolved::InPlace => file,
        Resolved::Elsewhere(data, _) => std::fs::File::from(data),
        // Its bytes are on copies elsewhere: not fetched for a reader of this kind.
        Resolved::Released => return Err(Errno::NOMEDIUM),
    };
    Ok(DataRead {
        file,
        _ticket: ticket,
    })
}

/// The object name for inode `ino` of share `share`, unique per move.
pub fn object_name(share: &str, ino: u64, nonce: u64) -> String {
    format!("{share}/{ino:x}.{nonce:x}")
}

/// Whether the pool mounted at `pool_root` holds data of files of share `share`.
pub fn holds_share_data(pool_root: &Path, share: &str) -> bool {
    std::fs::read_dir(pool_root.join(DATA_DIR).join(share)).is_ok_and(|mut d| d.next().is_some())
}

/// `root`'s folder of moves under way.
pub fn moving_dir(pool_root: &Path) -> PathBuf {
    pool_root.join(MOVING_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_refuse_what_we_did_not_write() {
        let loc = DataLocation {
            pool: "archive".into(),
            object: "media/1f.2a".into(),
        };
        assert_eq!(DataLocation::parse(loc.encode().as_bytes()), Some(loc));
        for bad in [
            &b""[..],
            b"archive",
            b"archive/",
            b"/media/x",
            b"archive/../x",
            b"archive/media//x",
            b"\xff/x",
        ] {
            assert_eq!(DataLocation::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn files_with_fewer_blocks_than_bytes_and_small_ones_are_looked_up() {
        assert!(may_be_elsewhere(4096, 0));
        assert!(may_be_elsewhere(1 << 20, 8));
        assert!(!may_be_elsewhere(0, 0));
        // A small file's one block may be its xattrs'.
        assert!(may_be_elsewhere(4096, 8));
        assert!(may_be_elsewhere(4000, 8));
        assert!(!may_be_elsewhere(1 << 20, 2048));
        assert!(!may_be_elsewhere(ALWAYS_LOOKED_UP + 1, 2048));
        assert!(!has_fewer_blocks_than_bytes(4096, 8));
    }

    #[test]
    fn a_switch_waits_for_calls_in_flight_and_gives_way_to_a_slow_one() {
        let places = Arc::new(DataPlaces::default());
        let t = places.take(7, false);
        // A call in flight longer than the wait: the switch gives way.
        assert!(places.switch(7).is_none());
        // Another shard's call does not hold it.
        let other = (0..1000).find(|i| shard_of(*i) != shard_of(7)).unwrap();
        let _t2 = places.take(other, false);
        drop(t);
        let sw = places.switch(7).expect("no call in flight");
        // A call that starts during the switch waits for its end.
        let p2 = Arc::clone(&places);
        let started = Instant::now();
        let waiter = std::thread::spawn(move || {
            let _t = p2.take(7, false);
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(sw);
        assert!(waiter.join().unwrap() >= Duration::from_millis(50));
    }

    #[test]
    fn a_write_counts_once_it_has_ended_and_reads_never_do() {
        let places = Arc::new(DataPlaces::default());
        let before = places.writes(9);
        drop(places.take(9, false));
        assert_eq!(places.writes(9), before, "a read changes nothing");
        let w = places.take(9, true);
        assert_eq!(
            places.writes(9),
            before,
            "a write under way has not changed the data yet"
        );
        drop(w);
        assert_eq!(places.writes(9), before + 1);
    }
}
