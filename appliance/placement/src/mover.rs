//! Moving one file's data between pools without the file leaving its path: copy
//! (throttled, blake3 of what was read), read the copy back and compare, then switch the
//! location while no data call is in flight, and free the old place.
//!
//! Every move is written to its home pool's journal (`.rushes/moving/`) before a byte is
//! copied and removed once the old place is freed, so a restart after a crash finishes
//! or rolls back each move it finds ([`recover`]): until the switch the old place is
//! whole and named; after it the new one is.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{FallocateFlags, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::layout::{location_of, moving_dir, object_name, set_location, DataLocation, DataPlaces};

/// Bytes copied per read and write.
const CHUNK: usize = 1 << 20;

/// One file to move: where its namespace is and where its data should go.
#[derive(Debug, Clone)]
pub struct MoveSpec {
    pub share: String,
    /// The share's folder on its home pool.
    pub share_root: PathBuf,
    /// The file's path in the share (`/day1/A001.mov`).
    pub path: String,
    /// The share's home pool, and where it is mounted (its journal is there).
    pub home: String,
    pub home_root: PathBuf,
    /// The pool the data should be on.
    pub to: String,
}

/// What a move reports as it goes, and asks of its owner.
pub trait MoveWatch {
    /// `done` of `total` bytes copied (each window read back while the next is copied).
    fn progress(&mut self, _done: u64, _total: u64) {}
    /// Stop at the next chunk: the move is rolled back.
    fn cancelled(&self) -> bool {
        false
    }
    /// The rate (bytes/s) the move may go at now; `None` for as fast as it can.
    fn pace(&self) -> Option<u64> {
        None
    }
    /// The new place is recorded and the old one not yet freed.
    fn switched(&mut self) {}
}

/// A move that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub bytes: u64,
    pub from: String,
    pub to: String,
    pub blake3: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{path}: cannot {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        source: Errno,
    },
    #[error("{0}: not a regular file; only files' data moves")]
    NotFile(String),
    #[error("{0}: released to its copies; recall it first (rushesctl recall)")]
    Released(String),
    #[error("{0}: changed while it was copied; the copy was dropped and the next run moves it")]
    Changed(String),
    #[error("{0}: calls on it did not pause for the switch; the copy was dropped and the next run moves it")]
    Busy(String),
    #[error("{path}: the copy on {pool} reads back as blake3 {got}, not {want}: the pool may be failing; nothing was switched")]
    Verify {
        path: String,
        pool: String,
        want: String,
        got: String,
    },
    #[error("{path}: pool {pool} has {free} bytes free, the file needs {need}")]
    NoSpace {
        path: String,
        pool: String,
        free: u64,
        need: u64,
    },
    #[error("{0}: open over SMB; its data stays where it is until it is closed, and a later run moves it")]
    Open(String),
    #[error("the move was cancelled; the data stays where it was")]
    Cancelled,
    #[error("{0} (the data is in its new place; rushesd finishes the move when it starts again)")]
    Unfinished(Box<MoveError>),
}

impl MoveError {
    /// Whether the file is fine and only needs another try later.
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Changed(_) | Self::Busy(_))
    }
}

/// The journal's record of one move under way.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    share: String,
    share_root: PathBuf,
    path: String,
    ino: u64,
    /// Where the data was and where it goes (`POOL/OBJECT`; none for the home pool).
    from: Option<String>,
    to: Option<String>,
    /// The namespace inode's times before, put back once the data has moved.
    atime: (i64, i64),
    mtime: (i64, i64),
}

fn nonce() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Ctx<'a> {
    path: &'a str,
}

impl Ctx<'_> {
    fn io(&self, what: &'static str) -> impl FnOnce(Errno) -> MoveError + '_ {
        move |source| MoveError::Io {
            path: self.path.to_string(),
            what,
            source,
        }
    }
}

/// The namespace inode's identity for change checks: size and ctime.
fn identity(st: &rustix::fs::Stat) -> (i64, i64, i64) {
    (st.st_size, st.st_ctime, st.st_ctime_nsec as i64)
}

fn open_ns(spec: &MoveSpec) -> Result<OwnedFd, Errno> {
    let rel = spec.path.trim_start_matches('/');
    let root = rustix::fs::open(
        &spec.share_root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Beneath the share and through no symbolic link: a folder a client swapped for a
    // link after the plan cannot send the move (run as root) outside the share.
    rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOATIME,
        Mode::empty(),
        rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
    )
}

fn write_journal(dir: &Path, name: &str, j: &Journal) -> Result<PathBuf, Errno> {
    let errno = |e: std::io::Error| Errno::from_io_error(&e).unwrap_or(Errno::IO);
    std::fs::create_dir_all(dir).map_err(errno)?;
    let text = toml::to_string(j).map_err(|_| Errno::INVAL)?;
    let path = dir.join(format!("{name}.toml"));
    let tmp = dir.join(format!("{name}.tmp"));
    let f = std::fs::File::create(&tmp).map_err(errno)?;
    std::io::Write::write_all(&mut &f, text.as_bytes()).map_err(errno)?;
    f.sync_all().map_err(errno)?;
    std::fs::rename(&tmp, &path).map_err(errno)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(errno)?;
    Ok(path)
}

/// Copy `len` bytes of `src` to `dst`, at `watch`'s pace, telling `written` of each
/// window written: the blake3 of what was read.
fn copy(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    len: u64,
    watch: &mut dyn MoveWatch,
    cx: &Ctx<'_>,
    mut written: impl FnMut(u64, u64) -> bool,
) -> Result<blake3::Hash, MoveError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    let mut window = 0u64;
    while done < len {
        if watch.cancelled() {
            return Err(MoveError::Cancelled);
        }
        let chunk_started = Instant::now();
        let want = (len - done).min(CHUNK as u64) as usize;
        let n = rustix::io::pread(src, &mut buf[..want], done).map_err(cx.io("read the data"))?;
        if n == 0 {
            // Shorter than it was: a change the switch's check will see.
            break;
        }
        hasher.update(&buf[..n]);
        let mut w = 0;
        while w < n {
            w += rustix::io::pwrite(dst, &buf[w..n], done + w as u64)
                .map_err(cx.io("write the copy"))?;
        }
        done += n as u64;
        watch.progress(done, len);
        if done - window >= WINDOW || done == len {
            if !written(window, done) {
                // The read-back stopped; its error says why.
                break;
            }
            window = done;
        }
        // Paced chunk by chunk, so a pace that changes (clients got busy) holds at once.
        if let Some(rate) = watch.pace().filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(chunk_started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    if done > window {
        written(window, done);
    }
    Ok(hasher.finalize())
}

/// Bytes copied between read-backs: each window goes to the disk and is read back by a
/// second thread while the next one is copied.
const WINDOW: u64 = 16 << 20;

/// One window in this many (and the last) is read back from the disk itself rather than
/// from the page cache the flush left it in. Every byte is hashed as it reads back after
/// its flush, which proves the copy; the windows read from the disk prove the target
/// returns what it was given, at an eighth of the disk reads a full pass costs (a full
/// pass made a move cost half again what `cp` does on one disk).
const DISK_CHECK: u64 = 8;

/// Start writing `len` bytes of `fd` from `offset` to the disk (`wait`: and wait until
/// they are there, with any earlier writes of the range).
pub fn write_out(fd: BorrowedFd<'_>, offset: u64, len: u64, wait: bool) -> Result<(), Errno> {
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: sync_file_range only reads its integer arguments; an invalid descriptor or
    // range is reported through errno, which is returned.
    let rc = unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            offset as libc::off64_t,
            len as libc::off64_t,
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    }
}

/// Copy `len` bytes of `src` to `dst` at `watch`'s pace, reading the copy back once it
/// is on the disk (some windows from the disk itself, [`DISK_CHECK`]): the blake3 of
/// what was read, and of what the copy read back. The read-back of each window overlaps
/// the copy of the next.
fn copy_and_read_back(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    len: u64,
    watch: &mut dyn MoveWatch,
    cx: &Ctx<'_>,
) -> Result<(blake3::Hash, blake3::Hash), MoveError> {
    std::thread::scope(|scope| {
        let (written, windows) = std::sync::mpsc::sync_channel::<(u64, u64)>(4);
        let checker = scope.spawn(move || -> Result<blake3::Hash, Errno> {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; CHUNK];
            for (k, (start, end)) in windows.into_iter().enumerate() {
                // On the disk first; then, for one window in DISK_CHECK and the last,
                // out of the page cache, so the read comes from the disk itself.
                write_out(dst, start, end - start, true)?;
                if (k as u64).is_multiple_of(DISK_CHECK) || end == len {
                    let _ = rustix::fs::fadvise(
                        dst,
                        start,
                        std::num::NonZeroU64::new(end - start),
                        rustix::fs::Advice::DontNeed,
                    );
                }
                let mut at = start;
                while at < end {
                    let want = (end - at).min(CHUNK as u64) as usize;
                    let n = rustix::io::pread(dst, &mut buf[..want], at)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    at += n as u64;
                }
            }
            Ok(hasher.finalize())
        });
        let copied = copy(src, dst, len, watch, cx, |start, end| {
            // Writing starts at once; the checker waits for it to end.
            let _ = write_out(dst, start, end - start, false);
            written.send((start, end)).is_ok()
        });
        drop(written);
        let checked = checker
            .join()
            .unwrap_or(Err(Errno::IO))
            .map_err(cx.io("read the copy back"));
        Ok((copied?, checked?))
    })
}

fn times(j: &Journal) -> Timestamps {
    let ts = |(s, n): (i64, i64)| rustix::time::Timespec {
        tv_sec: s,
        tv_nsec: n as _,
    };
    Timestamps {
        last_access: ts(j.atime),
        last_modification: ts(j.mtime),
    }
}

/// Give the namespace inode's blocks back (its data is elsewhere now), keeping its
/// size and the times clients see.
fn punch(ns: BorrowedFd<'_>, j: &Journal) -> Result<(), Errno> {
    let st = rustix::fs::fstat(ns)?;
    if st.st_size > 0 {
        // Past the end to a 64 KiB boundary: a punch only frees whole blocks, and the
        // last one must go too, or a small file would look as if its data were here.
        let len = (st.st_size as u64).next_multiple_of(64 << 10);
        rustix::fs::fallocate(
            ns,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            0,
            len,
        )?;
    }
    rustix::fs::futimens(ns, &times(j))?;
    rustix::fs::fsync(ns)
}

/// Free space on the pool mounted at `root`.
fn free_on(root: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(root).ok()?;
    Some(st.f_bavail * st.f_frsize)
}

/// Move `spec`'s file's data to `spec.to`. `to_root` is where that pool is mounted.
pub fn move_file(
    places: &DataPlaces,
    spec: &MoveSpec,
    to_root: &Path,
    watch: &mut dyn MoveWatch,
) -> Result<Option<Moved>, MoveError> {
    let cx = Ctx { path: &spec.path };
    let ns = open_ns(spec).map_err(cx.io("open the file"))?;
    let st = rustix::fs::fstat(&ns).map_err(cx.io("look at the file"))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(MoveError::NotFile(spec.path.clone()));
    }
    let from = match location_of(ns.as_fd()) {
        // Released: its bytes are on copies elsewhere, on no pool; a recall brings them.
        Err(Errno::NOMEDIUM) => return Err(MoveError::Released(spec.path.clone())),
        other => other.map_err(cx.io("read where its data is"))?,
    };
    let from_pool = from
        .as_ref()
        .map_or(spec.home.as_str(), |l| l.pool.as_str());
    if from_pool == spec.to {
        return Ok(None);
    }
    if places.is_held(&st) {
        return Err(MoveError::Open(spec.path.clone()));
    }
    let size = st.st_size as u64;
    if size == 0 {
        // Nothing to move; an empty file's data is always in place.
        if let Some(old) = &from {
            set_location(ns.as_fd(), None).map_err(cx.io("record the data's new place"))?;
            places.remove(old).map_err(cx.io("free the old place"))?;
        }
        return Ok(None);
    }
    let to_home = spec.to == spec.home;
    if !to_home {
        if let Some(free) = free_on(to_root).filter(|f| *f < size) {
            return Err(MoveError::NoSpace {
                path: spec.path.clone(),
                pool: spec.to.clone(),
                free,
                need: size,
            });
        }
    }
    let n = nonce();
    let to = (!to_home).then(|| DataLocation {
        pool: spec.to.clone(),
        object: object_name(&spec.share, st.st_ino, n),
    });
    let part = to.as_ref().map(|l| DataLocation {
        pool: l.pool.clone(),
        object: format!("{}.part", l.object),
    });
    let journal = Journal {
        share: spec.share.clone(),
        share_root: spec.share_root.clone(),
        path: spec.path.clone(),
        ino: st.st_ino,
        from: from.as_ref().map(DataLocation::encode),
        to: to.as_ref().map(DataLocation::encode),
        atime: (st.st_atime, st.st_atime_nsec as i64),
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
    };
    let jdir = moving_dir(&spec.home_root);
    let jname = format!("{:x}.{n:x}", st.st_ino);
    let jpath = write_journal(&jdir, &jname, &journal).map_err(cx.io("write the move journal"))?;

    let result = move_with_journal(places, spec, &ns, &st, (&from, &to, &part), &journal, watch);
    match &result {
        Ok(_) => {}
        // The journal stays: the restart's recovery finishes the move.
        Err(MoveError::Unfinished(_)) => return result.map(Some),
        Err(_) => {
            // Nothing switched: drop what was copied.
            if let Some(part) = &part {
                let _ = places.remove(part);
            } else if from.is_some() {
                // A recall's partial bytes are in the namespace inode: give them back.
                let _ = punch(ns.as_fd(), &journal);
            }
        }
    }
    let _ = std::fs::remove_file(&jpath);
    result.map(Some)
}

type Places<'a> = (
    &'a Option<DataLocation>,
    &'a Option<DataLocation>,
    &'a Option<DataLocation>,
);

fn move_with_journal(
    places: &DataPlaces,
    spec: &MoveSpec,
    ns: &OwnedFd,
    st: &rustix::fs::Stat,
    (from, to, part): Places<'_>,
    journal: &Journal,
    watch: &mut dyn MoveWatch,
) -> Result<Moved, MoveError> {
    let cx = Ctx { path: &spec.path };
    let size = st.st_size as u64;
    // The source: the namespace inode, or the object it names.
    let src_obj = match from {
        Some(loc) => Some(
            places
                .open(loc, OFlags::RDONLY | OFlags::NOATIME)
                .map_err(cx.io("open the data's present place"))?,
        ),
        None => None,
    };
    let src = src_obj.as_ref().map_or(ns.as_fd(), |f| f.as_fd());
    let writes = places.writes(st.st_ino);
    let before = identity(&rustix::fs::fstat(src).map_err(cx.io("look at the data"))?);
    let dst_obj = match part {
        Some(part) => Some(
            places
                .open(
                    part,
                    OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC | OFlags::NOATIME,
                )
                .map_err(cx.io("make the copy"))?,
        ),
        None => None,
    };
    let dst = dst_obj.as_ref().map_or(ns.as_fd(), |f| f.as_fd());
    // Into the namespace inode: calls must not take its filling blocks for the data.
    let _recall = dst_obj.is_none().then(|| places.recall());
    let (want, got) = copy_and_read_back(src, dst, size, watch, &cx)?;
    rustix::fs::fsync(dst).map_err(cx.io("flush the copy"))?;
    watch.progress(size, size);
    if want != got {
        return Err(MoveError::Verify {
            path: spec.path.clone(),
            pool: spec.to.clone(),
            want: want.to_hex().to_string(),
            got: got.to_hex().to_string(),
        });
    }

    // The switch: no data call on the file is in flight until it ends.
    let Some(switch) = places.switch(st.st_ino) else {
        return Err(MoveError::Busy(spec.path.clone()));
    };
    // Opened through the view since the copy began: its reads and writes go straight
    // to the present place, which must stay.
    if places.is_held(st) {
        return Err(MoveError::Open(spec.path.clone()));
    }
    let now = identity(&rustix::fs::fstat(src).map_err(cx.io("look at the data"))?);
    if now != before || places.writes(st.st_ino) != writes {
        return Err(MoveError::Changed(spec.path.clone()));
    }
    if let (Some(part), Some(to)) = (part, to) {
        places
            .rename(&to.pool, &part.object, &to.object)
            .map_err(cx.io("name the copy"))?;
    }
    set_location(ns.as_fd(), to.as_ref()).map_err(cx.io("record the data's new place"))?;
    // Switched: from here a failure must not roll back (the new place is the data now,
    // and a recall's rollback would punch it); the journal stays for the restart's
    // recovery to finish the move.
    let unfinished = |e: MoveError| MoveError::Unfinished(Box::new(e));
    rustix::fs::fsync(ns).map_err(|e| unfinished(cx.io("flush the file")(e)))?;
    watch.switched();
    if from.is_none() {
        punch(ns.as_fd(), journal).map_err(|e| unfinished(cx.io("free the old place")(e)))?;
    } else {
        rustix::fs::futimens(ns, &times(journal))
            .map_err(|e| unfinished(cx.io("keep the file's times")(e)))?;
        rustix::fs::fsync(ns).map_err(|e| unfinished(cx.io("flush the file")(e)))?;
    }
    drop(switch);
    if let Some(old) = from {
        places
            .remove(old)
            .map_err(|e| unfinished(cx.io("free the old place")(e)))?;
    }
    Ok(Moved {
        bytes: size,
        from: from.as_ref().map_or(spec.home.clone(), |l| l.pool.clone()),
        to: spec.to.clone(),
        blake3: want.to_hex().to_string(),
    })
}

/// The share path of inode `ino` under `root` (this file system only, `.rushes` skipped).
fn find_inode(root: &Path, ino: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::symlink_metadata(root).ok()?.dev();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if rel.as_os_str().is_empty() && name == ".rushes" {
                continue;
            }
            let Ok(md) = e.metadata() else { continue };
            let child = rel.join(&name);
            if md.ino() == ino && md.is_file() {
                return Some(format!("/{}", child.display()));
            }
            if md.is_dir() && md.dev() == dev {
                stack.push(child);
            }
        }
    }
    None
}

/// What [`recover`] did with one move it found in a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub share: String,
    pub path: String,
    /// `finished` (the switch had happened) or `rolled back`.
    pub outcome: &'static str,
}

/// Finish or roll back every move in `home_root`'s journal, before the pool's shares are
/// served again. Pools named by the journal must be in `places`; a move on a pool that
/// is missing is left for a later start.
pub fn recover(places: &DataPlaces, home_root: &Path) -> Vec<Recovered> {
    let dir = moving_dir(home_root);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut done = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let Some(j) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| toml::from_str::<Journal>(&t).ok())
        else {
            continue;
        };
        let from = j
            .from
            .as_deref()
            .and_then(|t| DataLocation::parse(t.as_bytes()));
        let to =
            j.to.as_deref()
                .and_then(|t| DataLocation::parse(t.as_bytes()));
        let reachable =
            |l: &Option<DataLocation>| l.as_ref().is_none_or(|l| places.has_pool(&l.pool));
        if !reachable(&from) || !reachable(&to) {
            continue;
        }
        let spec = MoveSpec {
            share: j.share.clone(),
            share_root: j.share_root.clone(),
            path: j.path.clone(),
            home: String::new(),
            home_root: home_root.to_path_buf(),
            to: String::new(),
        };
        let is_it = |fd: &OwnedFd| rustix::fs::fstat(fd).is_ok_and(|st| st.st_ino == j.ino);
        // Renamed since: looked for by its inode.
        let ns = open_ns(&spec).ok().filter(is_it).or_else(|| {
            let found = find_inode(&j.share_root, j.ino)?;
            let found = MoveSpec {
                path: found,
                ..spec.clone()
            };
            open_ns(&found).ok().filter(is_it)
        });
        let part = to.as_ref().map(|l| DataLocation {
            pool: l.pool.clone(),
            object: format!("{}.part", l.object),
        });
        let outcome = match ns {
            // The file is gone (or its path names another now): neither place is used.
            None => {
                if let Some(p) = &part {
                    let _ = places.remove(p);
                }
                "rolled back"
            }
            Some(ns) => {
                let now = location_of(ns.as_fd()).ok().flatten();
                if now == to {
                    // Switched: free the old place.
                    match &from {
                        None => {
                            let _ = punch(ns.as_fd(), &j);
                        }
                        Some(old) => {
                            let _ = places.remove(old);
                        }
                    }
                    "finished"
                } else {
                    match &part {
                        Some(p) => {
                            let _ = places.remove(p);
                            if let Some(t) = &to {
                                let _ = places.remove(t);
                            }
                        }
                        // A recall cut short: its bytes in the namespace inode go.
                        None => {
                            let _ = punch(ns.as_fd(), &j);
                        }
                    }
                    "rolled back"
                }
            }
        };
        let _ = std::fs::remove_file(&path);
        done.push(Recovered {
            share: j.share,
            path: j.path,
            outcome,
        });
    }
    done
}
