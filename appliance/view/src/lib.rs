//! The FUSE view through which Samba serves a share: the share's namespace on its home
//! pool, with each open file's reads and writes passed through by the kernel to wherever
//! placement keeps its data (FUSE passthrough, Linux 6.9+), so SMB never waits on us for
//! data and never sees that a file's data moved.
//!
//! What the view keeps:
//! - Inode numbers are the home file system's (the share's root is FUSE's inode 1), and
//!   each known inode is reopened by its kernel file handle, so nothing is held open
//!   between calls and a file renamed by NFS is still the same file here.
//! - An open file holds its data where it is ([`rushes_placement::layout::OpenHold`]):
//!   a move waits for the last close, because the kernel reads and writes the backing
//!   file it was given at open.
//! - Byte-range locks are OFD locks on the home file, the same locks NLM takes for NFS
//!   clients, so an SMB client and an NFS client contending for a range see each other.
//! - New files, folders and links belong to the caller (FUSE checks permissions with
//!   `default_permissions`; the view acts as root and gives the result its owner).
//! - `trusted.rushes.*` is the layer's own: hidden from listings, refused to callers.

mod dosattrib;
mod fs;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rushes_placement::layout::DataPlaces;

pub use fs::{OnWritten, View};

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot open share {share}'s folder {root}: {source}")]
    Root {
        share: String,
        root: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the mount point {path}: {source}")]
    MountPoint {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount share {share}'s view at {path}: {source} (is /dev/fuse there, and rushesd root?)")]
    Mount {
        share: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A share's view, mounted until [`ViewMount::unmount`] or drop.
pub struct ViewMount {
    share: String,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
    passthrough: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for ViewMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewMount")
            .field("share", &self.share)
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

/// How many threads answer one view's calls: opens, looks and lists block on the disk,
/// and a blocking lock waits in a thread of its own.
const THREADS: usize = 4;

/// Mount share `share` (its folder `root` on the home pool) at `mountpoint`;
/// `on_written` hears of each file a writer closes.
pub fn mount(
    share: &str,
    root: &Path,
    mountpoint: &Path,
    places: Arc<DataPlaces>,
    on_written: Option<OnWritten>,
) -> Result<ViewMount, ViewError> {
    // A view left mounted by a rushesd that was killed answers nothing: let it go first.
    let _ = rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH);
    std::fs::create_dir_all(mountpoint).map_err(|source| ViewError::MountPoint {
        path: mountpoint.to_path_buf(),
        source,
    })?;
    let view = View::new(share, root, places, on_written).map_err(|source| ViewError::Root {
        share: share.into(),
        root: root.to_path_buf(),
        source,
    })?;
    let passthrough = view.passthrough_flag();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(format!("rushes:{share}")),
        fuser::MountOption::Subtype("rushes".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(THREADS);
    config.clone_fd = true;
    let session = fuser::Session::new(view, mountpoint, &config)
        .and_then(fuser::Session::spawn)
        .map_err(|source| ViewError::Mount {
            share: share.into(),
            path: mountpoint.to_path_buf(),
            source,
        })?;
    let mounted = ViewMount {
        share: share.into(),
        mountpoint: mountpoint.to_path_buf(),
        session: Some(session),
        passthrough,
    };
    tracing::info!(share, mountpoint = %mountpoint.display(), passthrough = mounted.passthrough(), "share's view mounted");
    Ok(mounted)
}

impl ViewMount {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the kernel took passthrough: without it the view answers reads and writes
    /// itself (correct, slower).
    pub fn passthrough(&self) -> bool {
        self.passthrough.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Unmount. A file still open (Samba closing late) keeps the view alive until it is
    /// closed, detached from the tree, so a new view can be mounted at once.
    pub fn unmount(mut self) {
        self.detach();
    }

    fn detach(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if let Err(e) =
            rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::DETACH)
        {
            tracing::warn!(share = %self.share, error = %e, "cannot unmount the share's view");
        }
        // The session's threads end, and let go of the share's folder (a pool cannot be
        // unmounted while they hold it), once the kernel drops the connection: at once
        // when nothing is open. Waited for a little, not for a file Samba keeps open.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = session.join();
            let _ = tx.send(());
        });
        if rx.recv_timeout(std::time::Duration::from_secs(3)).is_err() {
            tracing::warn!(share = %self.share, "the share's view is still in use after its unmount; it ends when the last file is closed");
        }
        tracing::info!(share = %self.share, "share's view unmounted");
    }
}

impl Drop for ViewMount {
    fn drop(&mut self) {
        self.detach();
    }
}
