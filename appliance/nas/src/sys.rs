//! Thin safe wrappers over the Linux calls the file service needs and rustix/nix lack:
//! persistent kernel file handles, and per-thread file-system credentials.

use std::cell::RefCell;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::share::Caller;

/// Largest kernel handle we accept; it must fit in a 64-byte NFSv3 handle with our header.
pub const MAX_KERNEL_HANDLE: usize = 40;

/// A kernel file handle (`struct file_handle`), valid across reboots of the server for
/// file systems that support export (XFS, ext4, btrfs, tmpfs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelHandle {
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

/// `struct file_handle` with room for the largest handle any Linux file system makes.
#[repr(C)]
struct HandleBuf {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 128],
}

/// The kernel handle of `name` in `dir` (of `dir` itself when `name` is empty).
/// Symlinks are not followed.
pub fn name_to_handle(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<KernelHandle> {
    let mut buf = HandleBuf {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id: libc::c_int = 0;
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        0
    };
    // SAFETY: `buf` is a properly aligned `struct file_handle` whose `handle_bytes` states
    // the capacity of the trailing array; `name` is NUL-terminated; `mount_id` is a valid
    // out-pointer. The kernel writes at most `handle_bytes` bytes of handle data.
    let rc = unsafe {
        libc::name_to_handle_at(
            dir.as_raw_fd(),
            name.as_ptr(),
            (&mut buf as *mut HandleBuf).cast::<libc::file_handle>(),
            &mut mount_id,
            flags,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = buf.handle_bytes as usize;
    if len > MAX_KERNEL_HANDLE {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("file system handle of {len} bytes does not fit an NFSv3 handle"),
        ));
    }
    Ok(KernelHandle {
        handle_type: buf.handle_type,
        bytes: buf.f_handle[..len].to_vec(),
    })
}

/// Open the object a kernel handle names, on the file system `mount` belongs to.
/// Needs CAP_DAC_READ_SEARCH, so the calling thread must be running as root.
pub fn open_by_handle(
    mount: BorrowedFd<'_>,
    handle: &KernelHandle,
    flags: i32,
) -> io::Result<OwnedFd> {
    let mut buf = HandleBuf {
        handle_bytes: handle.bytes.len() as u32,
        handle_type: handle.handle_type,
        f_handle: [0; 128],
    };
    let len = handle.bytes.len().min(buf.f_handle.len());
    buf.f_handle[..len].copy_from_slice(&handle.bytes[..len]);
    buf.handle_bytes = len as u32;
    // SAFETY: `buf` is a valid `struct file_handle` of `handle_bytes` bytes; the kernel only
    // reads it. On success the return value is a new descriptor that we own.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            (&mut buf as *mut HandleBuf).cast::<libc::file_handle>(),
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/proc/self/fd/N`: lets path-only calls (chmod, utimensat, linkat) act on an O_PATH fd.
pub fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

thread_local! {
    /// The file-system identity this thread currently runs as; `None`: not known yet. A
    /// new thread inherits the identity of the thread that made it, which may have been
    /// acting as a caller (a connection thread starting a pool thread), so its first
    /// switch always sets every id.
    static THREAD_CALLER: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

/// Make the current thread's file-system accesses run as `caller`, so the kernel applies
/// permission checks, ownership of new files, sticky bits and ACLs exactly as for a local
/// user. Only the file-system uid/gid and this thread's group list change (not the
/// process's), so other threads are unaffected. Cheap when the identity is unchanged.
pub fn run_as(caller: &Caller) -> io::Result<()> {
    THREAD_CALLER.with(|current| {
        let mut current = current.borrow_mut();
        if current.as_ref() == Some(caller) {
            return Ok(());
        }
        // Each of these calls makes the thread new credentials: skip those that would
        // not change (most callers and root both have no supplementary groups).
        let known = current.as_ref();
        if known.is_none_or(|c| c.gids != caller.gids) {
            let gids: Vec<rustix::process::Gid> = caller
                .gids
                .iter()
                .map(|g| rustix::process::Gid::from_raw(*g))
                .collect();
            rustix::thread::set_thread_groups(&gids)?;
        }
        if known.is_none_or(|c| c.gid != caller.gid) {
            nix::unistd::setfsgid(nix::unistd::Gid::from_raw(caller.gid));
        }
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(caller.uid));
        // setfsuid reports no errors; read the value back to be sure it took.
        let now = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(u32::MAX));
        if now.as_raw() != caller.uid {
            // Not known any more: the next switch sets every id again.
            *current = None;
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "cannot switch file-system uid: rushesd must run as root",
            ));
        }
        *current = Some(caller.clone());
        Ok(())
    })
}

/// Switch the current thread back to root for handle decoding and server work.
pub fn run_as_root() -> io::Result<()> {
    run_as(&Caller::ROOT)
}

/// Refuse to start when the process cannot switch identities per thread.
pub fn check_privileges() -> io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "rushesd must run as root: it enforces each NFS user's permissions by acting as that user",
        ));
    }
    run_as(&Caller {
        uid: 65534,
        gid: 65534,
        gids: vec![],
    })?;
    run_as_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{open, Mode, OFlags};

    #[test]
    fn handle_roundtrip_and_stale_after_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let root = open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let h = name_to_handle(root.as_fd(), c"f").unwrap();
        let fd = open_by_handle(root.as_fd(), &h, libc::O_RDONLY).unwrap();
        assert_eq!(rustix::fs::fstat(&fd).unwrap().st_size, 1);
        drop(fd);
        std::fs::remove_file(&path).unwrap();
        let err = open_by_handle(root.as_fd(), &h, libc::O_RDONLY).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESTALE));
    }

    #[test]
    fn thread_identity_is_enforced_by_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"x").unwrap();
        rustix::fs::chmod(&secret, Mode::from_raw_mode(0o600)).unwrap();
        let user = Caller {
            uid: 4242,
            gid: 4242,
            gids: vec![],
        };
        let denied = std::thread::spawn(move || {
            run_as(&user).unwrap();
            open(&secret, OFlags::RDONLY, Mode::empty()).unwrap_err()
        })
        .join()
        .unwrap();
        assert_eq!(denied, rustix::io::Errno::ACCESS);
    }

    /// A thread made by a thread that acts as a user starts as that user (Linux copies
    /// the credentials); switching it to root must still take effect.
    #[test]
    fn a_thread_started_while_acting_as_a_user_can_become_root() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"x").unwrap();
        rustix::fs::chmod(&secret, Mode::from_raw_mode(0o600)).unwrap();
        let opened = std::thread::spawn(move || {
            run_as(&Caller {
                uid: 4242,
                gid: 4242,
                gids: vec![],
            })
            .unwrap();
            std::thread::spawn(move || {
                run_as_root().unwrap();
                open(&secret, OFlags::RDONLY, Mode::empty()).map(drop)
            })
            .join()
            .unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(opened, Ok(()), "the inner thread kept the user's identity");
    }
}

/// What an open file description lock asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Read,
    Write,
    Unlock,
}

impl LockKind {
    fn flock(self, start: i64, len: i64) -> libc::flock {
        let l_type = match self {
            LockKind::Read => libc::F_RDLCK,
            LockKind::Write => libc::F_WRLCK,
            LockKind::Unlock => libc::F_UNLCK,
        };
        // SAFETY: `flock` is plain old data; all-zero is a valid value (l_pid must be 0
        // for OFD locks).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = l_type as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = start;
        fl.l_len = len;
        fl
    }
}

/// Take (or release) an open file description lock without waiting: `Ok(false)` when
/// another description holds a conflicting one.
pub fn ofd_lock(fd: BorrowedFd<'_>, kind: LockKind, start: i64, len: i64) -> io::Result<bool> {
    let fl = kind.flock(start, len);
    match nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Take (or release) an open file description lock, waiting while another description
/// holds a conflicting one.
pub fn ofd_lock_wait(fd: BorrowedFd<'_>, kind: LockKind, start: i64, len: i64) -> io::Result<()> {
    let fl = kind.flock(start, len);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_OFD_SETLKW(&fl))?;
    Ok(())
}

/// The first lock of another description that conflicts with `kind` over the range:
/// (exclusive, start, length), or None.
pub fn ofd_conflict(
    fd: BorrowedFd<'_>,
    kind: LockKind,
    start: i64,
    len: i64,
) -> io::Result<Option<(bool, i64, i64)>> {
    let mut fl = kind.flock(start, len);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_OFD_GETLK(&mut fl))?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some((
        fl.l_type == libc::F_WRLCK as libc::c_short,
        fl.l_start,
        fl.l_len,
    )))
}

/// A new open file description of the file `fd` is open on, with the same access.
pub fn reopen(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let access = flags & rustix::fs::OFlags::RWMODE;
    Ok(rustix::fs::open(
        proc_path(fd),
        access | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}
