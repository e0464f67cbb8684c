//! Naming the file an operation touched, for the activity stream, without costing the
//! operation much: the kernel's name for a descriptor (read through a kept-open
//! `/proc/self/fd`), cached for directories and for files being read.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use rustix::fs::Stat;

/// Directory paths are trusted this long unless a rename or rmdir through NFS moved
/// things sooner (a rename through SMB or on the box shows after at most this).
const DIR_TTL: Duration = Duration::from_secs(5);
/// Entries kept per cache before it starts afresh.
const MAX_ENTRIES: usize = 65_536;

/// A cached path: when it was read (or the file's ctime, for files), and the path.
type Seen<K> = Mutex<HashMap<(u32, u64), (K, String)>>;

/// Directory paths: read by every namespace operation, so readers share the lock.
type SeenDirs = RwLock<HashMap<(u32, u64), ((u64, Instant), String), crate::fasthash::Fast>>;

pub struct PathNames {
    /// `/proc/self/fd`, opened once: each lookup is then one `readlinkat` of a number,
    /// not a walk through `/proc/self`.
    proc_fd: Option<OwnedFd>,
    /// Directories by (share id, inode): (rename generation, read at).
    dirs: SeenDirs,
    /// Files being read by (share id, inode): their ctime (seconds, nanoseconds). A
    /// rename, a link or a reused inode changes it.
    files: Seen<(i64, i64)>,
    /// Bumped by every rename and rmdir served, which may move directories.
    generation: AtomicU64,
}

impl Default for PathNames {
    fn default() -> Self {
        Self {
            proc_fd: rustix::fs::open(
                "/proc/self/fd",
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .ok(),
            dirs: RwLock::default(),
            files: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }
}

impl PathNames {
    /// The kernel's path of `fd`, inside `root`, as `/DIR/NAME`.
    pub fn of(&self, root: &std::path::Path, fd: BorrowedFd<'_>) -> Option<String> {
        let number = fd.as_raw_fd().to_string();
        let link = match &self.proc_fd {
            Some(dir) => rustix::fs::readlinkat(dir, number, Vec::new()).ok()?,
            None => rustix::fs::readlink(format!("/proc/self/fd/{number}"), Vec::new()).ok()?,
        };
        let link = std::path::PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(link.into_bytes()),
        );
        let inside = link.strip_prefix(root).ok()?;
        Some(format!("/{}", inside.to_string_lossy()))
    }

    /// The path of `name` in directory `dir` (inode `ino`) of share `share`.
    pub fn in_dir(
        &self,
        share: (u32, &std::path::Path),
        dir: BorrowedFd<'_>,
        ino: u64,
        name: &[u8],
    ) -> Option<String> {
        let generation = self.generation.load(Ordering::Relaxed);
        let key = (share.0, ino);
        let name = String::from_utf8_lossy(name);
        let joined = |dir: &str| {
            let mut path = String::with_capacity(dir.len() + 1 + name.len());
            path.push_str(dir);
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(&name);
            path
        };
        {
            let dirs = self.dirs.read().unwrap_or_else(|p| p.into_inner());
            if let Some((_, p)) = dirs
                .get(&key)
                .filter(|((g, at), _)| *g == generation && at.elapsed() < DIR_TTL)
            {
                return Some(joined(p));
            }
        }
        let p = self.of(share.1, dir)?;
        let path = joined(&p);
        let mut dirs = self.dirs.write().unwrap_or_else(|p| p.into_inner());
        if dirs.len() >= MAX_ENTRIES {
            dirs.clear();
        }
        dirs.insert(key, ((generation, Instant::now()), p));
        Some(path)
    }

    /// The path of a file being read, `st` being its attributes now.
    pub fn of_file(
        &self,
        share: (u32, &std::path::Path),
        fd: BorrowedFd<'_>,
        st: &Stat,
    ) -> Option<String> {
        let key = (share.0, st.st_ino);
        let seen = (st.st_ctime, st.st_ctime_nsec as i64);
        {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, path)) = files.get(&key) {
                if *at == seen {
                    return Some(path.clone());
                }
            }
        }
        let path = self.of(share.1, fd)?;
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.len() >= MAX_ENTRIES {
            files.clear();
        }
        files.insert(key, (seen, path.clone()));
        Some(path)
    }

    /// A rename or rmdir may have moved directories: forget their paths.
    pub fn moved(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_named_inside_the_share_and_renames_are_seen() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("reel1")).unwrap();
        std::fs::write(root.join("reel1/a.mov"), b"x").unwrap();
        let names = PathNames::default();
        let dir = std::fs::File::open(root.join("reel1")).unwrap();
        let share = (7, root.as_path());
        let ino = std::os::unix::fs::MetadataExt::ino(&dir.metadata().unwrap());
        use std::os::fd::AsFd;
        assert_eq!(
            names.in_dir(share, dir.as_fd(), ino, b"b.mov").as_deref(),
            Some("/reel1/b.mov")
        );
        std::fs::rename(root.join("reel1"), root.join("reel2")).unwrap();
        assert_eq!(
            names.in_dir(share, dir.as_fd(), ino, b"b.mov").as_deref(),
            Some("/reel1/b.mov"),
            "cached until a rename is served"
        );
        names.moved();
        assert_eq!(
            names.in_dir(share, dir.as_fd(), ino, b"b.mov").as_deref(),
            Some("/reel2/b.mov")
        );
        let file = std::fs::File::open(root.join("reel2/a.mov")).unwrap();
        let st = rustix::fs::fstat(&file).unwrap();
        assert_eq!(
            names.of_file(share, file.as_fd(), &st).as_deref(),
            Some("/reel2/a.mov")
        );
        std::fs::rename(root.join("reel2/a.mov"), root.join("reel2/c.mov")).unwrap();
        let st = rustix::fs::fstat(&file).unwrap();
        assert_eq!(
            names.of_file(share, file.as_fd(), &st).as_deref(),
            Some("/reel2/c.mov"),
            "a rename changes the ctime, so the file is named afresh"
        );
    }
}
