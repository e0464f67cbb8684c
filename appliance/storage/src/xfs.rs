//! XFS on a pool's array: make, mount, grow, and how full it is.

use std::path::Path;
use std::process::Command;

use crate::{run, StorageError};

/// Make an XFS file system; mkfs.xfs reads the stripe geometry from md itself.
pub fn mkfs(device: &Path, label: &str) -> Result<(), StorageError> {
    // XFS labels hold at most 12 bytes.
    let label: String = label.chars().take(12).collect();
    run(Command::new("mkfs.xfs")
        .args(["-f", "-q", "-L"])
        .arg(label)
        .arg(device))?;
    Ok(())
}

/// Mount at `dir` (created if missing), without access-time updates.
pub fn mount(device: &Path, dir: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StorageError::io(format!("cannot create {}", dir.display()), e))?;
    rustix::mount::mount(
        device,
        dir,
        "xfs",
        rustix::mount::MountFlags::NOATIME,
        c"inode64",
    )
    .map_err(|e| {
        StorageError::io(
            format!("cannot mount {} on {}", device.display(), dir.display()),
            e,
        )
    })
}

pub fn unmount(dir: &Path) -> Result<(), StorageError> {
    rustix::mount::unmount(dir, rustix::mount::UnmountFlags::empty())
        .map_err(|e| StorageError::io(format!("cannot unmount {}", dir.display()), e))
}

/// Whether something is mounted at `dir` (it is on another device than its parent).
pub fn is_mounted(dir: &Path) -> bool {
    let (Ok(here), Some(Ok(up))) = (rustix::fs::stat(dir), dir.parent().map(rustix::fs::stat))
    else {
        return false;
    };
    here.st_dev != up.st_dev
}

/// Grow the mounted file system at `dir` to fill its device.
pub fn grow(dir: &Path) -> Result<(), StorageError> {
    run(Command::new("xfs_growfs").arg(dir))?;
    Ok(())
}

/// (size, used) in bytes of the file system at `dir`.
pub fn usage(dir: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(dir).ok()?;
    let size = st.f_blocks * st.f_frsize;
    let free = st.f_bfree * st.f_frsize;
    Some((size, size.saturating_sub(free)))
}
