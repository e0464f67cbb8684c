//! The media catalog: every file of every share with its clip's technical metadata,
//! kept current from the activity stream (a file is read again once its writer is done:
//! COMMIT over NFS, a close by an SMB writer (the share's view tells), an SMB write
//! whose transfer is over, or no write for [`IDLE`];
//! renames and removals follow at once) and
//! by a reconciliation scan (at start, then daily, a job) that catches changes made
//! behind the box's back and says what it fixed. Each share's index is on the share's
//! pool (`.rushes-catalog/SHARE` beside the share's folder); a host's folders keep
//! theirs in the state directory.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rushes_api::{self as api, JobTarget};
use rushes_catalog::index::{search_all, Request, Sort};
use rushes_catalog::{Catalog as Index, Clip, Found};
use rushes_nas::activity::{OpObserver, OpRecord};
use rushes_nas::Service;

use crate::core::{self, Core};
use crate::error::{ApiErr, ApiResult};
use crate::thumbnail;

/// A file written without a COMMIT is read again once it has been left alone this long.
pub const IDLE: Duration = Duration::from_secs(1);
/// After a COMMIT, a moment for the writes still coming.
const SETTLE: Duration = Duration::from_millis(150);
/// Files a scan looks at in one share, at most.
const SCAN_LIMIT: usize = 5_000_000;
/// Between scheduled scans.
const SCAN_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How long a request for a thumbnail waits for ffmpeg before it is told to ask again.
const THUMBNAIL_WAIT: Duration = Duration::from_secs(20);
/// Clips waiting for their poster, at most; past that, posters are made when asked for.
const POSTER_QUEUE: usize = 1024;

/// What the activity stream says about a file.
#[derive(Debug)]
enum Change {
    Written,
    Committed,
    Renamed(String),
    Removed,
}

#[derive(Debug)]
struct Event {
    share: Arc<str>,
    path: String,
    change: Change,
}

/// The catalog's ear on the activity stream: cheap and never blocking (a full queue
/// asks for a scan instead).
#[derive(Clone)]
pub struct Feed {
    tx: SyncSender<Event>,
    overflowed: Arc<AtomicBool>,
}

/// The other end of a [`Feed`].
pub struct Events {
    rx: Receiver<Event>,
    overflowed: Arc<AtomicBool>,
}

pub fn feed() -> (Feed, Events) {
    let (tx, rx) = std::sync::mpsc::sync_channel(65_536);
    let overflowed = Arc::new(AtomicBool::new(false));
    (
        Feed {
            tx,
            overflowed: Arc::clone(&overflowed),
        },
        Events { rx, overflowed },
    )
}

fn inside(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

impl Feed {
    fn send(&self, event: Event) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(event) {
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }

    /// A writer closed `path` of `share` (SMB, through the share's view): it is done.
    pub fn closed(&self, share: &Arc<str>, path: &str) {
        self.send(Event {
            share: Arc::clone(share),
            path: inside(path),
            change: Change::Committed,
        });
    }
}

impl OpObserver for Feed {
    fn record(&self, op: &OpRecord) {
        if op.status != Some(0) {
            return;
        }
        let (Some(share), Some(path)) = (&op.share, &op.path) else {
            return;
        };
        let change = match op.op {
            // SMB's writes come on once their transfer is over (no more bytes from
            // that client for a tick): the writer is done, as after an NFS COMMIT.
            "WRITE" if op.protocol == "smb" => Change::Committed,
            "WRITE" | "CREATE" | "SETATTR" => Change::Written,
            "COMMIT" => Change::Committed,
            "RENAME" => match &op.to {
                Some(to) => Change::Renamed(inside(to)),
                None => return,
            },
            "REMOVE" | "DELETE" | "RMDIR" => Change::Removed,
            _ => return,
        };
        self.send(Event {
            share: Arc::clone(share),
            path: inside(path),
            change,
        });
    }
}

/// A path as a scan remembers it: two paths of a share sharing a hash (about one
/// chance in 10^7 for a million files) would keep the record of a removed file.
fn path_hash(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

/// A file waiting to be read again.
struct Pending {
    last: Instant,
    committed: bool,
}

/// The file at `key` changed now: read it again [`SETTLE`] from now if its writer is
/// done (`committed`), else once it has been left alone for [`IDLE`].
fn due_after(
    pending: &mut HashMap<(Arc<str>, String), Pending>,
    key: (Arc<str>, String),
    committed: bool,
) {
    let p = pending.entry(key).or_insert(Pending {
        last: Instant::now(),
        committed,
    });
    p.last = Instant::now();
    p.committed = committed;
}

pub struct Catalog {
    core: Arc<Core>,
    nas: Arc<Service>,
    /// Each share's index, opened when first needed.
    indexes: Mutex<HashMap<String, Arc<Index>>>,
    /// Where host folders keep their indexes.
    state_dir: PathBuf,
    /// Clips whose poster is made in the background, when ffmpeg is there.
    posters: Option<SyncSender<Clip>>,
    /// What makes thumbnails: Debian's ffmpeg where it is installed, or the image
    /// extension's (looked for at start).
    thumbnails: Option<Arc<thumbnail::Maker>>,
}

impl Catalog {
    /// Follow `events` on a thread of its own, and scan every share now and daily.
    pub fn start(core: Arc<Core>, nas: Arc<Service>, events: Events) -> Arc<Self> {
        let ffmpeg = thumbnail::Ffmpeg::find();
        let (posters, poster_rx) = std::sync::mpsc::sync_channel(POSTER_QUEUE);
        let catalog = Arc::new(Self {
            state_dir: core.paths.state_dir.clone(),
            core,
            nas,
            indexes: Mutex::new(HashMap::new()),
            posters: ffmpeg.is_some().then_some(posters),
            thumbnails: ffmpeg.clone().map(|f| Arc::new(thumbnail::Maker::new(f))),
        });
        if let Some(ffmpeg) = &ffmpeg {
            tracing::info!(ffmpeg = %ffmpeg.path.display(), "the catalog makes thumbnails");
            let weak = Arc::downgrade(&catalog);
            let _ = std::thread::Builder::new()
                .name("posters".into())
                .spawn(move || {
                    while let Ok(clip) = poster_rx.recv() {
                        let Some(me) = weak.upgrade() else { return };
                        // One at a time, each waited for whole.
                        let wait = Duration::from_secs(600);
                        if let Err(e) = me.thumbnail_of(&clip, thumbnail::Kind::Poster, wait) {
                            tracing::debug!(clip = %clip.id(), error = %e.message, "no poster");
                        }
                    }
                });
        } else {
            tracing::info!(
                "no ffmpeg (neither Debian's installed nor the ffmpeg image extension): the catalog makes no thumbnails"
            );
        }
        let me = Arc::clone(&catalog);
        let _ = std::thread::Builder::new()
            .name("catalog".into())
            .spawn(move || me.follow(events));
        // A share deleted (or every share, at a reset) closes its index at once: its
        // files are on the pool, which must be free to unmount.
        let weak = Arc::downgrade(&catalog);
        catalog.core.on(move |event| {
            if let (core::Event::SharesChanged | core::Event::Reset, Some(me)) =
                (event, weak.upgrade())
            {
                me.forget_gone_shares();
            }
        });
        catalog
    }

    /// Close the indexes of shares no longer served.
    fn forget_gone_shares(&self) {
        let served: Vec<String> = self
            .nas
            .shares()
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        let gone: Vec<(String, Arc<Index>)> = {
            let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
            let names: Vec<String> = indexes
                .keys()
                .filter(|s| !served.contains(s))
                .cloned()
                .collect();
            names
                .into_iter()
                .filter_map(|n| indexes.remove(&n).map(|i| (n, i)))
                .collect()
        };
        // Whoever still has one (a commit of files that landed just before, a search)
        // lets go of it soon: wait, then close it with its merges done, so that its pool
        // can be unmounted as soon as this returns.
        for (share, mut index) in gone {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match Arc::try_unwrap(index) {
                    Ok(index) => {
                        if let Err(e) = index.close() {
                            tracing::warn!(share, error = %e, "closing a share's catalog index failed");
                        }
                        tracing::info!(
                            share,
                            "the catalog closed the index of a share that is gone"
                        );
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        index = still;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => {
                        tracing::warn!(share, "a share's catalog index is still in use after a minute; its pool may not unmount yet");
                        break;
                    }
                }
            }
        }
    }

    /// Where a share's index lives: beside the share's folder on its pool for the
    /// appliance's shares, in the state directory for a host's folders.
    fn index_dir(&self, share: &str, root: &Path) -> PathBuf {
        let managed = self
            .core
            .with_config(|c| c.shares.iter().any(|s| s.name == share));
        match (managed, root.parent()) {
            (true, Some(pool)) => pool.join(".rushes-catalog").join(share),
            _ => self.state_dir.join("catalog").join(share),
        }
    }

    /// Where a share's thumbnails are kept: beside its index, not in it.
    fn thumbnails_dir(&self, share: &str, root: &Path) -> PathBuf {
        PathBuf::from(format!("{}.thumbs", self.index_dir(share, root).display()))
    }

    /// Take the record of `share`/`path` out of `index`, and its thumbnails with it.
    fn drop_record(&self, index: &Index, share: &str, path: &str) {
        index.remove(share, path);
        if let Some(root) = self.root(share) {
            thumbnail::removed(
                &self.thumbnails_dir(share, &root),
                &format!("{share}/{path}"),
            );
        }
    }

    fn root(&self, share: &str) -> Option<PathBuf> {
        self.nas
            .shares()
            .into_iter()
            .find(|s| *s.name == *share)
            .map(|s| s.path.clone())
    }

    fn index(&self, share: &str) -> Result<Arc<Index>, String> {
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = indexes.get(share) {
            return Ok(Arc::clone(index));
        }
        let root = self
            .root(share)
            .ok_or_else(|| format!("there is no share {share:?}"))?;
        let dir = self.index_dir(share, &root);
        let index = Arc::new(Index::open(&dir).map_err(|e| e.to_string())?);
        indexes.insert(share.to_string(), Arc::clone(&index));
        Ok(index)
    }

    fn follow(self: Arc<Self>, events: Events) {
        if let Err(e) = rushes_nas::sys::run_as_root() {
            tracing::error!(error = %e, "the catalog cannot act as root; it is not kept");
            return;
        }
        let mut pending: HashMap<(Arc<str>, String), Pending> = HashMap::new();
        let mut next_scan = Instant::now();
        loop {
            match events.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(event) => {
                    self.take(event, &mut pending);
                    while let Ok(event) = events.rx.try_recv() {
                        self.take(event, &mut pending);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            self.read_due(&mut pending);
            let overflowed = events.overflowed.swap(false, Ordering::Relaxed);
            if overflowed || Instant::now() >= next_scan {
                if overflowed {
                    tracing::warn!(
                        "the catalog missed changes (too many at once); scanning the shares"
                    );
                }
                if let Err(e) = self.scan() {
                    tracing::debug!(error = %e.message, "no catalog scan now");
                }
                next_scan = Instant::now() + SCAN_EVERY;
            }
        }
    }

    fn take(&self, event: Event, pending: &mut HashMap<(Arc<str>, String), Pending>) {
        let key = (Arc::clone(&event.share), event.path.clone());
        match event.change {
            Change::Written => due_after(pending, key, false),
            Change::Committed => due_after(pending, key, true),
            // A frame of an image sequence renamed or removed changes its sequence's
            // record, which is read again from the frames left.
            Change::Renamed(to)
                if rushes_catalog::sequence::key(&event.path).is_some()
                    || rushes_catalog::sequence::key(&to).is_some() =>
            {
                pending.remove(&key);
                due_after(pending, (Arc::clone(&event.share), event.path), true);
                due_after(pending, (Arc::clone(&event.share), to), true);
            }
            Change::Removed if rushes_catalog::sequence::key(&event.path).is_some() => {
                due_after(pending, key, true);
            }
            Change::Renamed(to) => {
                if let Some(p) = pending.remove(&key) {
                    pending.insert((Arc::clone(&event.share), to.clone()), p);
                }
                if let Err(e) = self.renamed(&event.share, &event.path, &to) {
                    tracing::warn!(share = %event.share, from = %event.path, to, error = %e, "the catalog could not follow a rename");
                }
            }
            Change::Removed => {
                pending.remove(&key);
                if let Err(e) = self.removed(&event.share, &event.path) {
                    tracing::warn!(share = %event.share, path = %event.path, error = %e, "the catalog could not follow a removal");
                }
            }
        }
    }

    /// Read again the files whose writers are done.
    fn read_due(&self, pending: &mut HashMap<(Arc<str>, String), Pending>) {
        let due: Vec<(Arc<str>, String)> = pending
            .iter()
            .filter(|(_, p)| p.last.elapsed() >= if p.committed { SETTLE } else { IDLE })
            .map(|(k, _)| k.clone())
            .collect();
        let mut touched: HashMap<Arc<str>, Arc<Index>> = HashMap::new();
        // The frames of a sequence that came in together are read as one record, once.
        let mut records: std::collections::HashSet<(Arc<str>, String)> = Default::default();
        for key in due {
            pending.remove(&key);
            records.insert((key.0, rushes_catalog::extract::record_path(&key.1)));
        }
        for (share, path) in records {
            let (Some(root), Ok(index)) = (self.root(&share), self.index(&share)) else {
                continue;
            };
            let result = match rushes_catalog::extract::read_placed(
                &root,
                &share,
                &path,
                &self.nas.places,
            ) {
                Some(clip) => {
                    self.want_poster(&clip);
                    index.put(&clip)
                }
                None => {
                    self.drop_record(&index, &share, &path);
                    Ok(())
                }
            };
            match result {
                Ok(()) => {
                    touched.insert(share, index);
                }
                Err(e) => tracing::warn!(%share, path, error = %e, "cannot catalog a file"),
            }
        }
        for (share, index) in touched {
            if let Err(e) = index.commit() {
                tracing::warn!(%share, error = %e, "cannot save the catalog");
            }
        }
    }

    fn renamed(&self, share: &str, from: &str, to: &str) -> Result<(), String> {
        let index = self.index(share)?;
        let thumbs = self.root(share).map(|r| self.thumbnails_dir(share, &r));
        let mut moved = 0;
        let follow = |from: &str, to: &str| {
            if let Some(thumbs) = &thumbs {
                thumbnail::renamed(thumbs, &format!("{share}/{from}"), &format!("{share}/{to}"));
            }
        };
        if let Some(mut clip) = index.get(share, from).map_err(|e| e.to_string())? {
            index.remove(share, from);
            clip.path = to.to_string();
            index.put(&clip).map_err(|e| e.to_string())?;
            follow(from, to);
            moved += 1;
        }
        // A folder takes its files with it.
        let prefix = format!("{from}/");
        for path in index
            .paths_under(share, &prefix)
            .map_err(|e| e.to_string())?
        {
            if let Some(mut clip) = index.get(share, &path).map_err(|e| e.to_string())? {
                index.remove(share, &path);
                clip.path = format!("{to}/{}", &path[prefix.len()..]);
                index.put(&clip).map_err(|e| e.to_string())?;
                follow(&path, &clip.path);
                moved += 1;
            }
        }
        if moved > 0 {
            index.commit().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn removed(&self, share: &str, path: &str) -> Result<(), String> {
        let index = self.index(share)?;
        self.drop_record(&index, share, path);
        for under in index
            .paths_under(share, &format!("{path}/"))
            .map_err(|e| e.to_string())?
        {
            self.drop_record(&index, share, &under);
        }
        index.commit().map_err(|e| e.to_string())
    }

    /// Start a scan of every share as a job: files new or changed since they were
    /// catalogued are read, records of files gone are dropped.
    pub fn scan(self: &Arc<Self>) -> ApiResult<api::Job> {
        let target = JobTarget {
            kind: api::TargetKind::Appliance,
            name: "catalog".into(),
        };
        if let Some(job) = self.core.jobs.active_on(&target) {
            return Err(ApiErr::new(
                409,
                "busy",
                format!("the catalog is being scanned (job {})", job.id),
            )
            .hint(format!("rushesctl jobs watch {}", job.id)));
        }
        let w = self.core.jobs.create("catalog-scan", target, true);
        let me = Arc::clone(self);
        Ok(self.core.jobs.run(w, move |w| {
            let (mut added, mut changed, mut dropped, mut files) = (0u64, 0u64, 0u64, 0u64);
            for share in me.nas.shares() {
                let name = share.name.to_string();
                w.step(&format!("listing share {name}"));
                let index = me.index(&name)?;
                let in_catalog = index.len();
                // What the walk found, as 64-bit hashes of the paths: 16 MB for a share
                // of a million files, where the paths would take ten times that.
                let mut found: HashSet<u64> = HashSet::new();
                let mut failed: Option<String> = None;
                // Frames of a sequence come as their sequence's one record.
                rushes_catalog::extract::each_record(
                    &share.path,
                    SCAN_LIMIT,
                    |path, size, modified| {
                        if w.cancelled() {
                            failed = Some("cancelled".into());
                            return ControlFlow::Break(());
                        }
                        if files % 256 == 0 {
                            w.progress_at(
                                &format!("reading share {name}"),
                                files,
                                if in_catalog > files { in_catalog } else { 0 },
                                "files",
                                None,
                            );
                        }
                        files += 1;
                        found.insert(path_hash(&path));
                        let old = match index.get(&name, &path) {
                            Ok(old) => old,
                            Err(e) => {
                                failed = Some(e.to_string());
                                return ControlFlow::Break(());
                            }
                        };
                        let fresh = old
                            .as_ref()
                            .is_some_and(|c| c.size == size && c.modified == modified);
                        if fresh {
                            return ControlFlow::Continue(());
                        }
                        if let Some(clip) = rushes_catalog::extract::read_placed(
                            &share.path,
                            &name,
                            &path,
                            &me.nas.places,
                        ) {
                            me.want_poster(&clip);
                            if let Err(e) = index.put(&clip) {
                                failed = Some(e.to_string());
                                return ControlFlow::Break(());
                            }
                            if old.is_some() {
                                changed += 1;
                            } else {
                                added += 1;
                            }
                        }
                        ControlFlow::Continue(())
                    },
                );
                if let Some(why) = failed {
                    return Err(why);
                }
                index
                    .each_path_under(&name, "", |path| {
                        if !found.contains(&path_hash(path)) {
                            me.drop_record(&index, &name, path);
                            dropped += 1;
                        }
                    })
                    .map_err(|e| e.to_string())?;
                index.commit().map_err(|e| e.to_string())?;
            }
            let summary = format!(
                "done: {files} files looked at, {added} new, {changed} changed, {dropped} gone"
            );
            tracing::info!(files, added, changed, dropped, "catalog scan done");
            w.step(&summary);
            Ok(())
        }))
    }

    /// Clips matching `req.query` over every share, or those named, in the order asked;
    /// with an account, only what it may read.
    pub fn search(&self, req: &Search<'_>) -> ApiResult<Found> {
        let sort: Sort = req.sort.parse().map_err(|e: String| {
            ApiErr::bad_request(e).hint("sort by relevance, name, path, modified, size, duration or timecode; -modified is newest first")
        })?;
        let reader = req.account.map(|a| self.reader(a)).transpose()?;
        let mut indexes = Vec::new();
        let mut roots: HashMap<String, PathBuf> = HashMap::new();
        for share in self.nas.shares() {
            if req
                .shares
                .is_some_and(|s| !s.iter().any(|n| **n == *share.name))
            {
                continue;
            }
            if reader.as_ref().is_some_and(|r| !r.may_use(&share.name)) {
                continue;
            }
            roots.insert(share.name.to_string(), share.path.clone());
            match self.index(&share.name) {
                Ok(index) => indexes.push(index),
                Err(e) => {
                    tracing::warn!(share = %share.name, error = %e, "a share's catalog cannot be searched")
                }
            }
        }
        if let Some(wanted) = req.shares {
            for s in wanted {
                if !self.nas.shares().iter().any(|x| *x.name == **s) {
                    return Err(ApiErr::not_found(format!("there is no share {s:?}"))
                        .hint("rushesctl shares lists them"));
                }
            }
        }
        let refs: Vec<&Index> = indexes.iter().map(|i| i.as_ref()).collect();
        let may_read = |clip: &Clip| {
            reader.as_ref().is_none_or(|r| {
                roots
                    .get(&clip.share)
                    .is_some_and(|root| r.may_read(root, clip))
            })
        };
        let allowed: Option<&dyn Fn(&Clip) -> bool> = reader.as_ref().map(|_| &may_read as _);
        let found = search_all(
            &refs,
            &Request {
                text: req.query,
                shares: req.shares,
                offset: req.offset,
                limit: req.limit,
                sort,
                allowed,
            },
        );
        found.map_err(|e| match e {
            rushes_catalog::index::IndexError::Query(q) => {
                ApiErr::new(400, "bad-query", format!("the query does not read {q}"))
                    .hint(format!(
                        "fields: {}; e.g. codec:prores_4444 reel:A003 fps:23.976 width:>=3840 tc:10:14:00:00-10:20:00:00",
                        rushes_catalog::query::field_names().collect::<Vec<_>>().join(", ")
                    ))
            }
            other => ApiErr::failed(other.to_string()),
        })
    }

    /// The account `name` as the kernel checks it: the appliance's accounts first, then
    /// the system's (a host's users).
    fn reader(&self, name: &str) -> ApiResult<Reader> {
        let (configured, share_users) = self.core.with_config(|c| {
            (
                c.users
                    .iter()
                    .find(|u| u.name == name)
                    .map(|u| (u.uid, u.gid)),
                c.shares
                    .iter()
                    .map(|s| (s.name.clone(), s.users.clone()))
                    .collect::<HashMap<_, _>>(),
            )
        });
        let system = nix::unistd::User::from_name(name).ok().flatten();
        let (uid, gid) = configured
            .or_else(|| system.as_ref().map(|u| (u.uid.as_raw(), u.gid.as_raw())))
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no account {name:?}"))
                    .hint("rushesctl users lists them")
            })?;
        let gids = std::ffi::CString::new(name)
            .ok()
            .and_then(|n| nix::unistd::getgrouplist(&n, nix::unistd::Gid::from_raw(gid)).ok())
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![gid]);
        Ok(Reader {
            name: name.to_string(),
            caller: rushes_nas::share::Caller { uid, gid, gids },
            share_users,
            dirs: Mutex::new(HashMap::new()),
        })
    }

    /// Have `clip`'s poster made in the background when it has a picture (not when too
    /// many wait: then it is made when first asked for).
    fn want_poster(&self, clip: &Clip) {
        if let Some(posters) = &self.posters {
            if clip.media.as_ref().is_some_and(|m| m.video.is_some()) {
                let _ = posters.try_send(clip.clone());
            }
        }
    }

    /// A clip's thumbnail (JPEG), made now unless one newer than the clip is kept.
    pub fn thumbnail(&self, id: &str, kind: thumbnail::Kind) -> ApiResult<Vec<u8>> {
        let clip = self.clip(id)?;
        self.thumbnail_of(&clip, kind, THUMBNAIL_WAIT)
    }

    fn thumbnail_of(
        &self,
        clip: &Clip,
        kind: thumbnail::Kind,
        wait: Duration,
    ) -> ApiResult<Vec<u8>> {
        let root = self
            .root(&clip.share)
            .ok_or_else(|| ApiErr::not_found(format!("there is no share {:?}", clip.share)))?;
        let dir = self.thumbnails_dir(&clip.share, &root);
        let Some(thumbnails) = &self.thumbnails else {
            return Err(ApiErr::new(409, "no-ffmpeg", "no ffmpeg here, so no thumbnails are made")
                .hint("thumbnails need Debian's ffmpeg: on the appliance, the ffmpeg extension on the boot stick (make image RUSHES_EXTENSIONS=ffmpeg); for `rushesd host`, apt install ffmpeg"));
        };
        // A file whose data moved to another pool is read through the share's view,
        // which reads where the data is: ffmpeg runs as the file's owner, who may not
        // open placement's objects.
        let root = crate::smb::view_of_moved(&clip.share, &root.join(&clip.path)).unwrap_or(root);
        thumbnails.get(&dir, &root, clip, kind, wait).map_err(|e| match e {
            thumbnail::ThumbError::NoPicture(_) => ApiErr::new(404, "no-picture", e.to_string()),
            thumbnail::ThumbError::NoFfmpeg(_) => ApiErr::new(409, "no-ffmpeg", e.to_string())
                .hint("thumbnails need Debian's ffmpeg: on the appliance, the ffmpeg extension on the boot stick (make image RUSHES_EXTENSIONS=ffmpeg); for `rushesd host`, apt install ffmpeg"),
            thumbnail::ThumbError::Failed { .. } => ApiErr::new(422, "thumbnail-failed", e.to_string())
                .hint("the file's picture may be damaged; its other fields are still catalogued"),
            thumbnail::ThumbError::Store { .. } => ApiErr::failed(e.to_string()),
            thumbnail::ThumbError::Pending(_) => ApiErr::new(503, "thumbnail-pending", e.to_string())
                .hint("ffmpeg goes on making it at low priority: ask again in a few seconds"),
            thumbnail::ThumbError::Busy(_) => ApiErr::new(503, "busy", e.to_string())
                .hint("ask again once those are made"),
        })
    }

    /// One clip, by the id search gives it (`SHARE/PATH`).
    pub fn clip(&self, id: &str) -> ApiResult<Clip> {
        let (share, path) = id
            .split_once('/')
            .ok_or_else(|| ApiErr::bad_request(format!("{id:?} is not a clip id (SHARE/PATH)")))?;
        let index = self.index(share).map_err(ApiErr::not_found)?;
        // An image sequence's id as results show it, with its frame range, names it too.
        let path = rushes_catalog::sequence::key_of_label(path).unwrap_or_else(|| path.into());
        index
            .get(share, &path)
            .map_err(|e| ApiErr::failed(e.to_string()))?
            .ok_or_else(|| ApiErr::not_found(format!("the catalog has no clip {id:?}")))
    }
}

/// A search as the API takes it.
pub struct Search<'a> {
    pub query: &'a str,
    pub shares: Option<&'a [String]>,
    pub offset: usize,
    pub limit: usize,
    /// `relevance`, `name`, `-modified` … (see [`Sort`]).
    pub sort: &'a str,
    /// Only what this account may read.
    pub account: Option<&'a str>,
}

/// An account whose reach a search is kept to: the shares it may use (a share naming
/// its accounts is closed to the others, as Samba closes it) and the files its uid and
/// groups may read, asked of the kernel as that user, so permission bits, ACLs and every
/// folder on the way count exactly as they do for NFS and SMB.
struct Reader {
    name: String,
    caller: rushes_nas::share::Caller,
    share_users: HashMap<String, Vec<String>>,
    /// Folders already asked about in this search: whether the account may pass them.
    dirs: Mutex<HashMap<PathBuf, bool>>,
}

impl Reader {
    fn may_use(&self, share: &str) -> bool {
        self.share_users
            .get(share)
            .is_none_or(|users| users.is_empty() || users.contains(&self.name))
    }

    /// Whether the account may read `clip`'s file (an image sequence's first frame).
    fn may_read(&self, root: &Path, clip: &Clip) -> bool {
        let path = match clip.media.as_ref().and_then(|m| m.sequence.as_ref()) {
            Some(seq) => {
                let p = usize::from(seq.padding);
                clip.path
                    .replacen(&"#".repeat(p), &format!("{:0p$}", seq.first), 1)
            }
            None => clip.path.clone(),
        };
        let file = root.join(&path);
        // Most results share folders: ask about each folder once, then the file alone.
        if let Some(dir) = file.parent() {
            let known = self
                .dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(dir)
                .copied();
            let pass = match known {
                Some(pass) => pass,
                None => {
                    let pass = self.access(dir, rustix::fs::Access::EXEC_OK);
                    self.dirs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(dir.to_path_buf(), pass);
                    pass
                }
            };
            if !pass {
                return false;
            }
        }
        self.access(&file, rustix::fs::Access::READ_OK)
    }

    /// The kernel's answer for this account (its file-system ids on this thread only).
    fn access(&self, path: &Path, how: rustix::fs::Access) -> bool {
        if rushes_nas::sys::run_as(&self.caller).is_err() {
            return false;
        }
        rustix::fs::accessat(rustix::fs::CWD, path, how, rustix::fs::AtFlags::EACCESS).is_ok()
    }
}

impl Drop for Reader {
    /// Back to root for whatever this thread does next.
    fn drop(&mut self) {
        if let Err(e) = rushes_nas::sys::run_as_root() {
            tracing::error!(error = %e, "a search thread cannot go back to root");
        }
    }
}
