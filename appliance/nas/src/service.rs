//! The state shared by every connection: shares opened for serving, the handle key, the
//! write verifier, and the activity observer.

use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rustix::fs::{Mode, OFlags};

use crate::activity::{OpObserver, TracingObserver};
use crate::attrs::AttrCache;
use crate::drc::ReplyCache;
use crate::handle::HandleKey;
use crate::locks::Stat;
use crate::nlm::Nlm;
use crate::nsm::{Monitor, Peer};
use crate::share::rule_for;
use crate::share::{validate, ExportRule, ShareConfig, ShareError};
use crate::sys;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Share(#[from] ShareError),
    #[error("share {name:?}: cannot open {path}")]
    OpenShare {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("share {name:?}: {path} does not support persistent file handles; serve a directory on XFS, ext4, btrfs or tmpfs")]
    NoHandles {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("shares {a:?} and {b:?} hash to the same id; rename one of them")]
    IdClash { a: String, b: String },
    #[error("cannot load the file-handle key from {path}")]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Privileges(std::io::Error),
}

/// NFS handles of a share's files, keyed by inode number and birth time.
///
/// Listing a folder with READDIRPLUS needs each entry's handle, and `name_to_handle_at`
/// plus the MAC cost as much again as the `statx` that gives its attributes. A reused
/// inode number comes with a new birth time, so a cached handle can never name another
/// file; entries are only cached after a second `statx` confirmed the name still
/// pointed at the same inode.
#[derive(Debug, Default)]
pub struct HandleCache {
    map: Mutex<std::collections::HashMap<(u64, i64, u32), Vec<u8>>>,
}

impl HandleCache {
    /// Beyond this many entries (roughly 25 MiB) the cache starts over.
    const CAPACITY: usize = 262_144;

    pub fn get(&self, key: (u64, i64, u32)) -> Option<Vec<u8>> {
        self.map.lock().ok()?.get(&key).cloned()
    }

    pub fn insert(&self, key: (u64, i64, u32), fh: Vec<u8>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
            map.insert(key, fh);
        }
    }
}

/// A share opened for serving.
#[derive(Debug)]
pub struct Share {
    /// Stable id, derived from the name; also the `fsid` clients see.
    pub id: u32,
    pub name: Arc<str>,
    pub path: PathBuf,
    pub rules: Vec<ExportRule>,
    /// The share root, opened for reading: handles are decoded against it
    /// (`open_by_handle_at` refuses an O_PATH mount descriptor).
    pub root: OwnedFd,
    pub root_dev: u64,
    pub root_ino: u64,
    /// The NFS handle of the root, as MOUNT returns it.
    pub root_fh: Vec<u8>,
    pub handles: HandleCache,
    /// MKNOD may make device nodes here.
    pub allow_devices: bool,
    /// The file system is watched, so [`Service::attrs`] may answer for this share.
    pub attrs_watched: bool,
}

/// A mount a client announced with MNT (for MOUNT's DUMP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub client: IpAddr,
    pub path: String,
}

/// Serialises changes to one directory (create, remove, rename …) in user space.
///
/// The kernel serialises them anyway, on the directory's inode lock, but its waiters spin
/// while the owner runs; with many calls in flight on few CPUs that spinning ate more
/// time than the work. Waiters on these mutexes sleep instead.
pub struct DirLocks {
    shards: Vec<Mutex<()>>,
}

impl DirLocks {
    const SHARDS: usize = 64;

    fn new() -> Self {
        Self {
            shards: (0..Self::SHARDS).map(|_| Mutex::new(())).collect(),
        }
    }

    fn shard(&self, st: &rustix::fs::Stat) -> usize {
        (st.st_ino ^ st.st_dev.rotate_left(17)) as usize % Self::SHARDS
    }

    /// Lock the directory `st` describes.
    pub fn lock(&self, st: &rustix::fs::Stat) -> std::sync::MutexGuard<'_, ()> {
        self.shards[self.shard(st)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lock two directories (RENAME, LINK) in a fixed order, so two calls cannot deadlock.
    pub fn lock_two(
        &self,
        a: &rustix::fs::Stat,
        b: &rustix::fs::Stat,
    ) -> (
        std::sync::MutexGuard<'_, ()>,
        Option<std::sync::MutexGuard<'_, ()>>,
    ) {
        let (x, y) = (self.shard(a), self.shard(b));
        let lock = |i: usize| {
            self.shards[i]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        match x.cmp(&y) {
            std::cmp::Ordering::Equal => (lock(x), None),
            std::cmp::Ordering::Less => (lock(x), Some(lock(y))),
            std::cmp::Ordering::Greater => {
                let second = lock(y);
                (lock(x), Some(second))
            }
        }
    }
}

/// Everything requests need, shared by all connections.
pub struct Service {
    /// Shares served now; the management API adds and removes them while serving.
    shares: RwLock<Vec<Arc<Share>>>,
    pub key: HandleKey,
    /// Changes every start, so clients resend UNSTABLE writes a crash may have lost.
    pub write_verifier: [u8; 8],
    pub observer: Box<dyn OpObserver>,
    /// Name the file each record is about (one `readlink` of `/proc/self/fd` per data or
    /// namespace operation): on with a real observer, off with the tracing default.
    pub record_paths: bool,
    /// Names files for activity records, with its caches.
    pub paths: crate::paths::PathNames,
    pub mounts: Mutex<Vec<MountEntry>>,
    /// The port NFS (TCP) and MOUNT, NLM and NSM (TCP and UDP) listen on.
    pub port: AtomicU16,
    /// The portmapper's own port (111), 0 when it answers only on `port`.
    pub portmap_port: AtomicU16,
    pub dir_locks: DirLocks,
    /// Replies to non-idempotent calls, for retransmissions.
    pub replies: ReplyCache,
    /// NLM locks, their callbacks and the status monitor.
    pub nlm: Nlm,
    /// Clients that held locks before this start, told once we listen.
    restart_notice: Mutex<Vec<Peer>>,
    /// Attributes already read, kept true by fanotify.
    pub attrs: Arc<AttrCache>,
    /// Where moved files' data is: every data call resolves through it.
    pub places: Arc<rushes_placement::DataPlaces>,
    /// Warnings about what clients send, rate-limited per address and kind.
    pub warnings: crate::peer_warnings::PeerWarnings,
    /// Caps and reservations on what groups of clients read and write; the admin may
    /// replace them while clients are served.
    pub rates: Arc<crate::rates::LiveRates>,
}

/// The grace period after a restart in which only reclaimed locks are granted (macOS'
/// lock manager waits 45 s too).
pub const GRACE_PERIOD: std::time::Duration = std::time::Duration::from_secs(45);

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("shares", &self.shares)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Open every share and load (or create) the handle key in `state_dir`.
    pub fn new(shares: &[ShareConfig], state_dir: &std::path::Path) -> Result<Self, ServiceError> {
        sys::check_privileges().map_err(ServiceError::Privileges)?;
        validate(shares)?;
        let key = HandleKey::load_or_create(state_dir).map_err(|source| ServiceError::Key {
            path: state_dir.join("handle.key"),
            source,
        })?;
        let attrs = Arc::new(AttrCache::new());
        let follower = Arc::clone(&attrs);
        let _ = std::thread::Builder::new()
            .name("nfs-attrs".into())
            .spawn(move || follower.follow());
        let mut opened: Vec<Arc<Share>> = Vec::new();
        for cfg in shares {
            let share = open_share(cfg, &key, &attrs)?;
            if let Some(other) = opened.iter().find(|s| s.id == share.id) {
                return Err(ServiceError::IdClash {
                    a: other.name.to_string(),
                    b: cfg.name.clone(),
                });
            }
            opened.push(Arc::new(share));
        }
        let (monitor, before) = match Monitor::open(&state_dir.join("nsm")) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(error = %e, dir = %state_dir.join("nsm").display(), "cannot keep the NLM status monitor's state; clients will not reclaim their locks after a restart");
                (Monitor::in_memory(), Vec::new())
            }
        };
        // Without clients to reclaim there is nothing to wait for.
        let grace = (!before.is_empty()).then_some(GRACE_PERIOD);
        let mut write_verifier = [0u8; 8];
        rustix::rand::getrandom(&mut write_verifier, rustix::rand::GetRandomFlags::empty())
            .map_err(|e| ServiceError::Privileges(e.into()))?;
        Ok(Self {
            shares: RwLock::new(opened),
            key,
            write_verifier,
            observer: Box::new(TracingObserver),
            record_paths: false,
            paths: Default::default(),
            mounts: Mutex::new(Vec::new()),
            port: AtomicU16::new(0),
            portmap_port: AtomicU16::new(0),
            dir_locks: DirLocks::new(),
            replies: ReplyCache::default(),
            nlm: Nlm::new(monitor, grace),
            restart_notice: Mutex::new(before),
            warnings: Default::default(),
            rates: Default::default(),
            attrs,
            places: Arc::default(),
        })
    }

    /// Hold groups of clients to these rate rules.
    pub fn with_rates(mut self, rules: crate::rates::RateRuleSet) -> Self {
        self.rates = Arc::new(crate::rates::LiveRates::new(rules));
        self
    }

    /// Replace the activity observer.
    pub fn with_observer(mut self, observer: Box<dyn OpObserver>) -> Self {
        self.observer = observer;
        self.record_paths = true;
        self
    }

    fn read_shares(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Share>>> {
        self.shares
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shares served now.
    pub fn shares(&self) -> Vec<Arc<Share>> {
        self.read_shares().clone()
    }

    pub fn share_by_id(&self, id: u32) -> Option<Arc<Share>> {
        self.read_shares().iter().find(|s| s.id == id).cloned()
    }

    /// The share a MOUNT path names: `/NAME` (or `NAME`).
    pub fn share_by_path(&self, path: &str) -> Option<Arc<Share>> {
        let name = path.trim_start_matches('/').trim_end_matches('/');
        self.read_shares()
            .iter()
            .find(|s| &*s.name == name)
            .cloned()
    }

    /// Serve `cfg` from now on, replacing a share of the same name (new rules take
    /// effect on the next call; handles clients hold stay valid).
    pub fn put_share(&self, cfg: &ShareConfig) -> Result<(), ServiceError> {
        validate(std::slice::from_ref(cfg))?;
        let share = Arc::new(open_share(cfg, &self.key, &self.attrs)?);
        let mut shares = self
            .shares
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(other) = shares
            .iter()
            .find(|s| s.id == share.id && s.name != share.name)
        {
            return Err(ServiceError::IdClash {
                a: other.name.to_string(),
                b: cfg.name.clone(),
            });
        }
        shares.retain(|s| s.name != share.name);
        shares.push(share);
        Ok(())
    }

    /// Stop serving the share called `name`; its handles go stale. False if unknown.
    pub fn remove_share(&self, name: &str) -> bool {
        let mut shares = self
            .shares
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = shares.len();
        shares.retain(|s| &*s.name != name);
        shares.len() != before
    }

    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// The file an NLM lock is on, opened as root for `client` (its export rule
    /// applied), or why not.
    pub fn open_for_lock(
        &self,
        client: IpAddr,
        fh: &[u8],
        exclusive: bool,
        rec: &mut crate::activity::OpRecord,
    ) -> Result<OwnedFd, Stat> {
        let svc = self;
        let decoded = svc.key.decode(fh).ok_or(Stat::StaleFh)?;
        let share = svc.share_by_id(decoded.share).ok_or(Stat::StaleFh)?;
        rec.share = Some(share.name.clone());
        let rule = rule_for(&share.rules, client).ok_or(Stat::Denied)?;
        if exclusive && rule.read_only() {
            return Err(Stat::Rofs);
        }
        sys::run_as_root().map_err(|_| Stat::Failed)?;
        let open = |flags| {
            sys::open_by_handle(
                std::os::fd::AsFd::as_fd(&share.root),
                &decoded.kernel,
                flags | libc::O_NOFOLLOW,
            )
        };
        let fd = open(libc::O_RDWR)
            .or_else(|_| open(libc::O_RDONLY))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ESTALE | libc::ENOENT) => Stat::StaleFh,
                Some(libc::EISDIR) => Stat::Denied,
                _ => Stat::Failed,
            })?;
        let st = rustix::fs::fstat(&fd).map_err(|_| Stat::Failed)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Stat::Denied);
        }
        Ok(fd)
    }

    /// What the portmapper describes.
    pub fn endpoints(&self, v6: bool) -> crate::portmap::Endpoints {
        crate::portmap::Endpoints {
            nfs_port: self.port(),
            portmap_port: self.portmap_port.load(Ordering::Relaxed),
            v6,
        }
    }

    /// Shorten (or lengthen) the grace period after a restart; a no-op when there is
    /// none (no client held locks before).
    pub fn with_grace_period(self, grace: std::time::Duration) -> Self {
        self.nlm.locks.set_grace(grace);
        self
    }

    /// Tell the clients that held locks before this start to reclaim them. Called once
    /// the listeners are bound, so the reclaims find us.
    pub fn announce_restart(&self) {
        let peers = std::mem::take(
            &mut *self
                .restart_notice
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if !peers.is_empty() {
            tracing::info!(
                clients = peers.len(),
                "restarted: telling NLM clients to reclaim their locks"
            );
        }
        self.nlm.monitor.notify_all(peers);
    }
}

fn open_share(
    cfg: &ShareConfig,
    key: &HandleKey,
    attrs: &AttrCache,
) -> Result<Share, ServiceError> {
    let open_err = |source: std::io::Error| ServiceError::OpenShare {
        name: cfg.name.clone(),
        path: cfg.path.clone(),
        source,
    };
    let root = rustix::fs::open(
        &cfg.path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| open_err(e.into()))?;
    let st = rustix::fs::fstat(&root).map_err(|e| open_err(e.into()))?;
    let kernel =
        sys::name_to_handle(root.as_fd(), c"").map_err(|source| ServiceError::NoHandles {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
            source,
        })?;
    // Decoding must work too (overlayfs, for one, makes handles it cannot open).
    sys::open_by_handle(root.as_fd(), &kernel, libc::O_PATH).map_err(|source| {
        ServiceError::NoHandles {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
            source,
        }
    })?;
    let id = crate::share_id::share_id(&cfg.name);
    let attrs_watched = attrs.watch(root.as_fd());
    Ok(Share {
        id,
        name: cfg.name.as_str().into(),
        path: cfg.path.clone(),
        rules: cfg.rules.clone(),
        root_fh: key.encode(id, &kernel),
        root,
        root_dev: st.st_dev,
        root_ino: st.st_ino,
        handles: HandleCache::default(),
        allow_devices: cfg.allow_devices,
        attrs_watched,
    })
}
