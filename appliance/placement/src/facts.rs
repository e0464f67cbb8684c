//! What rules look at in a file, and the scan of a share's tree that gathers it.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, StatxFlags};

use crate::layout::{DataLocation, DATA_XATTR};

/// Folders of a share that are the box's own and never placed.
pub const OWN_FOLDER: &str = ".rushes";

/// One file, as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub share: String,
    /// Inside the share, `/`-separated, without a leading `/`.
    pub path: String,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub modified: i64,
    /// Nanoseconds past `modified`.
    pub modified_nsec: u32,
    pub accessed: i64,
    /// Birth time, where the file system keeps it (XFS and ext4 do).
    pub created: Option<i64>,
    /// The pool its data is on now.
    pub pool: String,
    /// Released to its copies: its bytes are on no pool.
    pub released: bool,
    /// The extended attributes the rules read, those the file has.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Some client has it open for writing: it moves once they close.
    pub being_written: bool,
}

impl FileFacts {
    /// The file's own name: what follows the last `/`.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The modify time in nanoseconds since the epoch, as copies record it.
    pub fn modified_ns(&self) -> i128 {
        i128::from(self.modified) * 1_000_000_000 + i128::from(self.modified_nsec)
    }

    pub fn xattr(&self, name: &str) -> Option<&[u8]> {
        self.xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Why a scan stopped.
#[derive(Debug, thiserror::Error)]
#[error("scanning {path}: {source}")]
pub struct ScanError {
    pub path: String,
    #[source]
    pub source: rustix::io::Errno,
}

/// Threads a scan reads folders and files' facts on. A walk of a share not in the page
/// cache waits on the disk for each inode and attribute block, and a disk answers
/// several reads at once: a million files read back in half the time with eight.
pub const SCAN_THREADS: usize = 8;

/// Walk the share `share` at `root` (home pool `home`), calling `visit` with each
/// regular file's facts, reading only the extended attributes in `xattrs`. Files and
/// folders that vanish during the walk are skipped; the box's own folders are not
/// entered. Folders are read on [`SCAN_THREADS`] threads, and `visit` runs on the
/// caller's, in no set order. Nothing is held in memory but the folders being walked
/// and some thousands of facts on their way.
pub fn scan_share(
    share: &str,
    root: &Path,
    home: &str,
    xattrs: &[String],
    mut visit: impl FnMut(FileFacts),
) -> Result<(), ScanError> {
    let top = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| ScanError {
        path: root.display().to_string(),
        source,
    })?;
    let wanted = wanted(xattrs);
    let work = Folders {
        state: std::sync::Mutex::new(Walk {
            queue: vec![(top, String::new())],
            reading: 0,
            failed: None,
        }),
        more: std::sync::Condvar::new(),
    };
    // Facts go in batches of a folder's (or BATCH) files: one hand-off each.
    let (send, facts) = std::sync::mpsc::sync_channel::<Vec<FileFacts>>(64);
    std::thread::scope(|scope| {
        for _ in 0..SCAN_THREADS {
            let send = send.clone();
            let (work, wanted) = (&work, &wanted);
            scope.spawn(move || {
                while let Some((dir_fd, prefix)) = work.next() {
                    let read = read_folder(&dir_fd, &prefix, share, home, wanted, &send, |sub| {
                        work.add(sub)
                    });
                    work.done(read.err().map(|source| ScanError {
                        path: format!("{}/{prefix}", root.display()),
                        source,
                    }));
                }
            });
        }
        drop(send);
        for batch in facts {
            batch.into_iter().for_each(&mut visit);
        }
    });
    match work
        .state
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .failed
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The folders a scan has still to read, shared by its threads.
struct Folders {
    state: std::sync::Mutex<Walk>,
    more: std::sync::Condvar,
}

/// The walk is over when no folder is queued or being read, or one could not be read.
struct Walk {
    queue: Vec<(OwnedFd, String)>,
    reading: usize,
    failed: Option<ScanError>,
}

impl Folders {
    fn lock(&self) -> std::sync::MutexGuard<'_, Walk> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next folder to read, once there is one; `None` when the walk is over.
    fn next(&self) -> Option<(OwnedFd, String)> {
        let mut w = self.lock();
        loop {
            if w.failed.is_some() {
                return None;
            }
            if let Some(dir) = w.queue.pop() {
                w.reading += 1;
                return Some(dir);
            }
            if w.reading == 0 {
                return None;
            }
            w = self.more.wait(w).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn add(&self, dir: (OwnedFd, String)) {
        self.lock().queue.push(dir);
        self.more.notify_one();
    }

    /// One folder read, or failed (the first failure ends the walk).
    fn done(&self, failed: Option<ScanError>) {
        let mut w = self.lock();
        w.reading -= 1;
        if w.failed.is_none() {
            w.failed = failed;
        }
        if w.failed.is_some() || (w.reading == 0 && w.queue.is_empty()) {
            self.more.notify_all();
        }
    }
}

/// Read one folder: its files' facts sent on, its folders handed to `sub`.
fn read_folder(
    dir_fd: &OwnedFd,
    prefix: &str,
    share: &str,
    home: &str,
    wanted: &[(String, CString)],
    send: &std::sync::mpsc::SyncSender<Vec<FileFacts>>,
    mut sub: impl FnMut((OwnedFd, String)),
) -> Result<(), rustix::io::Errno> {
    const BATCH: usize = 256;
    let dir = Dir::read_from(dir_fd)?;
    let mut batch = Vec::with_capacity(BATCH);
    for entry in dir {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." || (prefix.is_empty() && bytes == OWN_FOLDER.as_bytes())
        {
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        let path = if prefix.is_empty() {
            text.to_string()
        } else {
            format!("{prefix}/{text}")
        };
        match entry.file_type() {
            FileType::Directory => {
                if let Ok(fd) = rustix::fs::openat(
                    dir_fd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    sub((fd, path));
                }
                continue;
            }
            FileType::RegularFile | FileType::Unknown => {}
            _ => continue,
        }
        if let Some(facts) = facts_at(dir_fd, name, share, path, home, wanted) {
            batch.push(facts);
            // The caller stopped taking them: the walk is over for it.
            if batch.len() == BATCH && send.send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = send.send(batch);
    }
    Ok(())
}

/// The attributes to read: those asked for, and the location.
fn wanted(xattrs: &[String]) -> Vec<(String, CString)> {
    xattrs
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(DATA_XATTR))
        .filter_map(|n| CString::new(n).ok().map(|c| (n.to_string(), c)))
        .collect()
}

/// Why one file cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0} is not a path inside the share: no leading /, no .. and no empty parts")]
    Outside(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("{0} is not a regular file: only files' data is placed")]
    NotAFile(String),
}

/// The facts of the one file at `path` inside the share at `root`, read as a scan would
/// (symbolic links are not followed, anywhere on the way).
pub fn file_facts(
    share: &str,
    root: &Path,
    home: &str,
    path: &str,
    xattrs: &[String],
) -> Result<FileFacts, FileError> {
    let parts: Vec<&str> = path.split('/').collect();
    if path.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(FileError::Outside(path.to_string()));
    }
    let io = |source| FileError::Io {
        path: path.to_string(),
        source,
    };
    let mut dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let (name, folders) = parts.split_last().expect("a path has a part");
    for folder in folders {
        dir = rustix::fs::openat(
            &dir,
            *folder,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
    }
    let name = CString::new(*name).map_err(|_| FileError::Outside(path.to_string()))?;
    // A missing file is told apart from one that is there but not a file.
    rustix::fs::statx(&dir, &name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE).map_err(io)?;
    facts_at(&dir, &name, share, path.to_string(), home, &wanted(xattrs))
        .ok_or_else(|| FileError::NotAFile(path.to_string()))
}

/// The facts of `name` in `dir` (at `path` in the share), if it is a regular file.
fn facts_at(
    dir: &OwnedFd,
    name: &std::ffi::CStr,
    share: &str,
    path: String,
    home: &str,
    wanted: &[(String, CString)],
) -> Option<FileFacts> {
    let st = rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
    .ok()?;
    if FileType::from_raw_mode(st.stx_mode.into()) != FileType::RegularFile {
        return None;
    }
    let mut facts = FileFacts {
        share: share.to_string(),
        path,
        size: st.stx_size,
        uid: st.stx_uid,
        gid: st.stx_gid,
        modified: st.stx_mtime.tv_sec,
        modified_nsec: st.stx_mtime.tv_nsec,
        accessed: st.stx_atime.tv_sec,
        created: (st.stx_mask & StatxFlags::BTIME.bits() != 0).then_some(st.stx_btime.tv_sec),
        pool: home.to_string(),
        released: false,
        xattrs: Vec::new(),
        being_written: false,
    };
    read_xattrs(dir, name, wanted, &mut facts);
    Some(facts)
}

/// The wanted attributes of `name` in `dir`, through an O_PATH descriptor of it (a
/// path walk per attribute would cost more).
fn read_xattrs(
    dir: &OwnedFd,
    name: &std::ffi::CStr,
    wanted: &[(String, CString)],
    facts: &mut FileFacts,
) {
    let Ok(fd) = rustix::fs::openat(
        dir.as_fd(),
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    // getxattr does not take an O_PATH descriptor; its /proc path does.
    let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let mut buf = vec![0u8; 4096];
    for (text, c) in wanted {
        let mut got = rustix::fs::getxattr(proc.as_str(), c.as_c_str(), &mut buf);
        if got == Err(rustix::io::Errno::RANGE) {
            // A long one (the copies' record): asked its length, within the kernel's
            // bound on any xattr.
            let none: &mut [u8] = &mut [];
            if let Ok(len) = rustix::fs::getxattr(proc.as_str(), c.as_c_str(), none) {
                buf.resize(len.min(64 << 10), 0);
                got = rustix::fs::getxattr(proc.as_str(), c.as_c_str(), &mut buf);
            }
        }
        if let Ok(n) = got {
            let value = buf[..n].to_vec();
            if text == DATA_XATTR {
                if let Some(loc) = DataLocation::parse(&value) {
                    facts.pool = loc.pool;
                }
                facts.released = value.starts_with(crate::layout::RELEASED);
            } else {
                facts.xattrs.push((text.clone(), value));
            }
        }
    }
}
