//! Released files (stubs): a file whose every byte is proven on copies elsewhere may
//! give its blocks back and keep only its namespace inode, with its path, size, owner,
//! mode, times, handle and inode number. Its `trusted.rushes.data` says [`RELEASED`] and
//! the blake3 of the bytes it gave back; servers that find it ask the box's
//! [`Recaller`] for the bytes.
//!
//! A release marks the file before it punches the hole, so no crash leaves a hole that
//! reads as zeros. A recall fills the namespace inode in place ([`Filling`]), ranges a
//! client waits for first; the mark goes only once every byte is back and hashes as the
//! proven copy did. Until then every read of the file goes through the recaller.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use rustix::fs::{FallocateFlags, OFlags, Stat, Timestamps};
use rustix::io::Errno;

use crate::layout::{location_of, DataPlaces, RecallHeld, DATA_XATTR};
pub use crate::layout::{RecallError, Recaller, RELEASED};

/// Whether the file open at `fd` (not `O_PATH`) is released.
pub fn is_released(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    match location_of(fd) {
        Err(Errno::NOMEDIUM) => Ok(true),
        Err(e) => Err(e),
        Ok(_) => Ok(false),
    }
}

/// The blake3 (hex) of the bytes the released file open at `fd` gave back; `None` when
/// it is not released.
pub fn released_blake3(fd: BorrowedFd<'_>) -> Result<Option<String>, Errno> {
    let mut buf = [0u8; 128];
    match rustix::fs::fgetxattr(fd, DATA_XATTR, &mut buf) {
        Ok(n) => Ok(buf[..n]
            .strip_prefix(RELEASED)
            .and_then(|rest| rest.strip_prefix(b":"))
            .and_then(|hash| std::str::from_utf8(hash).ok())
            .map(str::to_string)),
        Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a release found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Released now: its blocks are free.
    Done,
    /// It was released already.
    Already,
}

/// Why a file was not released; nothing about it changed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("it changed since its copy was proven (copy it again first)")]
    Changed,
    #[error("it is open for writing through SMB; released once it is closed")]
    Open,
    #[error("clients are using it; tried again later")]
    Busy,
    #[error("it is not a regular file")]
    NotAFile,
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

fn io(what: &'static str) -> impl Fn(Errno) -> ReleaseError {
    move |e| ReleaseError::Io {
        what,
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    }
}

/// Nanoseconds since the epoch of a stat's modify time.
pub fn mtime_ns(st: &Stat) -> i128 {
    i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec)
}

fn timespec(ns: i128) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as i64,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

fn keep_mtime(fd: BorrowedFd<'_>, mtime_ns: i128) -> Result<(), Errno> {
    rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: timespec(mtime_ns),
        },
    )
}

/// Give back the blocks of the file open read-write at `ns`, whose bytes hash as
/// `blake3` (hex) at size `size` and modify time `mtime_ns`, as proven on its copies.
/// The bytes are hashed again first: a file changed behind its times (a tool that
/// keeps them) is not released. Data kept on another pool is freed there.
pub fn release(
    places: &Arc<DataPlaces>,
    ns: BorrowedFd<'_>,
    size: u64,
    mtime_ns_proven: i128,
    blake3: &str,
) -> Result<Release, ReleaseError> {
    let before = rustix::fs::fstat(ns).map_err(io("read its attributes"))?;
    if rustix::fs::FileType::from_raw_mode(before.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(ReleaseError::NotAFile);
    }
    if is_released(ns).map_err(io("read where its data is"))? {
        return Ok(Release::Already);
    }
    if before.st_size as u64 != size || mtime_ns(&before) != mtime_ns_proven {
        return Err(ReleaseError::Changed);
    }
    let writes = places.writes(before.st_ino);
    {
        let data = crate::layout::read_data(Some(places), dup(ns).map_err(io("open it"))?.into())
            .map_err(io("reach its data"))?;
        // From the start, by offset: the descriptor's own position is the caller's.
        let got = hash_from_start(&data.file).map_err(|e| ReleaseError::Io {
            what: "read it",
            source: e,
        })?;
        if got != blake3 {
            return Err(ReleaseError::Changed);
        }
    }
    let Some(_switch) = places.switch(before.st_ino) else {
        return Err(ReleaseError::Busy);
    };
    let now = rustix::fs::fstat(ns).map_err(io("read its attributes"))?;
    let same = |a: &Stat, b: &Stat| {
        a.st_size == b.st_size
            && mtime_ns(a) == mtime_ns(b)
            && (a.st_ctime, a.st_ctime_nsec) == (b.st_ctime, b.st_ctime_nsec)
    };
    if !same(&before, &now) || places.writes(before.st_ino) != writes {
        return Err(ReleaseError::Changed);
    }
    if places.is_held(&now) {
        return Err(ReleaseError::Open);
    }
    let elsewhere = location_of(ns).map_err(io("read where its data is"))?;
    // Marked first, durably: a crash before the punch leaves a released file whose
    // bytes are still here, which a recall fetches again; never a hole read as data.
    let mark = [RELEASED, b":", blake3.as_bytes()].concat();
    rustix::fs::fsetxattr(ns, DATA_XATTR, &mark, rustix::fs::XattrFlags::empty())
        .map_err(io("mark it released"))?;
    rustix::fs::fsync(ns).map_err(io("mark it released"))?;
    if size > 0 {
        // Past the end to a 64 KiB boundary, so the last block goes too.
        rustix::fs::fallocate(
            ns,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            0,
            size.next_multiple_of(64 << 10),
        )
        .map_err(io("give its blocks back"))?;
    }
    keep_mtime(ns, mtime_ns_proven).map_err(io("keep its modify time"))?;
    rustix::fs::fsync(ns).map_err(io("give its blocks back"))?;
    if let Some(loc) = elsewhere {
        if let Err(e) = places.remove(&loc) {
            tracing::warn!(object = %loc.encode(), error = %e, "cannot free a released file's data on its pool");
        }
    }
    Ok(Release::Done)
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0)
}

/// The granule of what a recall has back: ranges are fetched and counted in these.
pub const GRANULE: u64 = 1 << 20;

/// A released file being filled back in place from a copy. Reads of the ranges back
/// are served from the file itself; the mark goes at [`Filling::finish`].
pub struct Filling {
    ns: OwnedFd,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    blake3: String,
    /// One bit per [`GRANULE`]: back.
    have: Mutex<Vec<u64>>,
    _recall: RecallHeld,
}

impl std::fmt::Debug for Filling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filling")
            .field("ino", &self.ino)
            .field("size", &self.size)
            .finish()
    }
}

/// Why a filled file was not made resident.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("the bytes fetched do not hash as the proven copy did")]
    Mismatch,
    #[error("ranges are still missing")]
    Incomplete,
    #[error("clients are using it; tried again later")]
    Busy,
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

impl Filling {
    /// Begin filling the released file open at `ns` (any access: it is opened again
    /// read-write through its descriptor). It keeps the size and modify time it has now,
    /// and its bytes must hash as the mark says. Every data call looks where data is
    /// until this drops.
    pub fn begin(places: &Arc<DataPlaces>, ns: BorrowedFd<'_>) -> Result<Self, Errno> {
        let rw = rustix::fs::open(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ns)),
            OFlags::RDWR | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&rw)?;
        let blake3 = released_blake3(rw.as_fd())?.ok_or(Errno::ALREADY)?;
        let size = st.st_size as u64;
        let granules = size.div_ceil(GRANULE) as usize;
        Ok(Self {
            ns: rw,
            ino: st.st_ino,
            size,
            mtime_ns: mtime_ns(&st),
            blake3,
            have: Mutex::new(vec![0; granules.div_ceil(64)]),
            _recall: places.recall_held(),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file, open read-write.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ns.as_fd()
    }

    /// The blake3 (hex) its bytes must hash as.
    pub fn blake3(&self) -> &str {
        &self.blake3
    }

    fn granules(offset: u64, len: u64) -> std::ops::Range<u64> {
        offset / GRANULE..(offset + len).div_ceil(GRANULE)
    }

    /// Whether bytes `offset..offset + len` (cut at the end) are back.
    pub fn has(&self, offset: u64, len: u64) -> bool {
        let len = len.min(self.size.saturating_sub(offset));
        if len == 0 {
            return true;
        }
        let have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        Self::granules(offset, len).all(|g| have[(g / 64) as usize] & (1 << (g % 64)) != 0)
    }

    /// Bytes back so far.
    pub fn back(&self) -> u64 {
        let have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        let granules: u64 = have.iter().map(|w| u64::from(w.count_ones())).sum();
        (granules * GRANULE).min(self.size)
    }

    /// The first granule-aligned range at or after `from` not back yet, at most `max`
    /// long.
    pub fn next_missing(&self, from: u64, max: u64) -> Option<std::ops::Range<u64>> {
        let have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        let missing = |g: u64| have[(g / 64) as usize] & (1 << (g % 64)) == 0;
        let total = self.size.div_ceil(GRANULE);
        let first = (from / GRANULE..total).find(|g| missing(*g))?;
        let mut end = first + 1;
        while end < total && missing(end) && (end - first) * GRANULE < max {
            end += 1;
        }
        Some(first * GRANULE..(end * GRANULE).min(self.size))
    }

    /// The granule-aligned range that holds `offset..offset + len`, cut at the end.
    pub fn aligned(&self, offset: u64, len: u64) -> std::ops::Range<u64> {
        let g = Self::granules(offset, len.max(1));
        (g.start * GRANULE).min(self.size)..(g.end * GRANULE).min(self.size)
    }

    /// Put fetched bytes at `offset` (granule-aligned; whole granules, or up to the end).
    /// The file keeps the modify time clients know.
    pub fn put(&self, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        if !offset.is_multiple_of(GRANULE)
            || offset + bytes.len() as u64 > self.size
            || (!(bytes.len() as u64).is_multiple_of(GRANULE)
                && offset + bytes.len() as u64 != self.size)
        {
            return Err(Errno::INVAL);
        }
        let mut done = 0;
        while done < bytes.len() {
            let n = rustix::io::pwrite(&self.ns, &bytes[done..], offset + done as u64)?;
            if n == 0 {
                return Err(Errno::IO);
            }
            done += n;
        }
        keep_mtime(self.ns.as_fd(), self.mtime_ns)?;
        let mut have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        for g in Self::granules(offset, bytes.len() as u64) {
            have[(g / 64) as usize] |= 1 << (g % 64);
        }
        Ok(())
    }

    /// Bytes `offset..offset + len` (cut at the end), which must be back.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let len = (len as u64).min(self.size.saturating_sub(offset)) as usize;
        read_at(self.ns.as_fd(), offset, len)
    }

    /// Every byte is back: check that they hash as the proven copy did, then make the
    /// file resident (no mark, the modify time it had). A mismatch gives the blocks back
    /// and leaves the file released.
    pub fn finish(&self, places: &Arc<DataPlaces>) -> Result<(), FinishError> {
        let fio = |what: &'static str| {
            move |e: Errno| FinishError::Io {
                what,
                source: std::io::Error::from_raw_os_error(e.raw_os_error()),
            }
        };
        if self.back() < self.size {
            return Err(FinishError::Incomplete);
        }
        rustix::fs::fsync(&self.ns).map_err(fio("write it out"))?;
        let file = std::fs::File::from(dup(self.ns.as_fd()).map_err(fio("read it back"))?);
        let got = hash_from_start(&file).map_err(|e| FinishError::Io {
            what: "read it back",
            source: e,
        })?;
        if got != self.blake3 {
            let _ = self.forget();
            return Err(FinishError::Mismatch);
        }
        let Some(_switch) = places.switch(self.ino) else {
            return Err(FinishError::Busy);
        };
        match rustix::fs::fremovexattr(&self.ns, DATA_XATTR) {
            Ok(()) | Err(Errno::NODATA) => {}
            Err(e) => return Err(fio("clear its released mark")(e)),
        }
        keep_mtime(self.ns.as_fd(), self.mtime_ns).map_err(fio("keep its modify time"))?;
        rustix::fs::fsync(&self.ns).map_err(fio("write it out"))
    }

    /// Give back what was fetched (the copy was bad): the file stays released.
    pub fn forget(&self) -> Result<(), Errno> {
        if self.size > 0 {
            rustix::fs::fallocate(
                &self.ns,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                0,
                self.size.next_multiple_of(64 << 10),
            )?;
        }
        keep_mtime(self.ns.as_fd(), self.mtime_ns)?;
        self.have
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .for_each(|w| *w = 0);
        Ok(())
    }
}

/// Up to `len` bytes of the file open at `fd` from `offset`, fewer at its end.
pub fn read_at(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = rustix::io::pread(fd, &mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

/// The blake3 (hex) of `file`'s bytes, read from the start with `pread`.
fn hash_from_start(file: &std::fs::File) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut reader = std::io::BufReader::with_capacity(
        1 << 20,
        ReadAt {
            file: file.try_clone()?,
            at: 0,
        },
    );
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Reads a file from the start with `pread`, leaving its shared offset alone.
struct ReadAt {
    file: std::fs::File,
    at: u64,
}

impl std::io::Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
