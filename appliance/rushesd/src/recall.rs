//! The recall queue: released files come back from their proven copies. One recall per
//! file, however many clients ask; a range a client waits for is fetched before the
//! rest; recalls a client waits for go before bulk ones (`rushesctl recall`). A file
//! comes back in place and is resident again only once its bytes hash as the copy that
//! was proven; a copy that gives other bytes is dropped from the file's record and
//! raises an alert, and the next copy is tried.

use std::collections::{HashMap, VecDeque};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use std::os::fd::AsFd;
use std::path::Path;

use rushes_api::{self as api, Severity};
use rushes_copies::{CopyError, Proof, Store};
use rushes_placement::stub::{Filling, RecallError, Recaller, Release};
use rushes_placement::DataPlaces;
use rustix::fs::Stat;

use crate::core::Core;
use crate::error::ApiResult;
use crate::targets::Targets;

/// What a bulk fetch asks a target for at once.
const CHUNK: u64 = 8 << 20;
/// How long a bulk fetch of one chunk may take before the recall is tried again later.
const BULK_WAIT: Duration = Duration::from_secs(120);
/// Times a bulk fetch is tried again when no copy can be reached, a second more
/// each time, before the recall stops (a client's next read starts it again).
const RETRIES: u64 = 5;
/// Recalls fetched at once.
const WORKERS: usize = 2;

/// One file coming back.
struct FileRecall {
    key: (u64, u64),
    /// Where the file is, for messages.
    path: String,
    filling: Filling,
    /// Its proven copies of these bytes, best first; a copy found bad goes.
    copies: Mutex<Vec<Proof>>,
    /// A client waits for it: it goes before bulk recalls.
    waited: AtomicBool,
    outcome: Mutex<Outcome>,
    settled: Condvar,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Queued,
    Running,
    Done,
    Failed(RecallError),
}

#[derive(Default)]
struct Queue {
    waited: VecDeque<Arc<FileRecall>>,
    bulk: VecDeque<Arc<FileRecall>>,
}

/// Every recall under way.
pub struct Recalls {
    /// Itself, for fetches that outlive their caller.
    me: std::sync::Weak<Recalls>,
    core: Arc<Core>,
    targets: Arc<Targets>,
    places: Arc<DataPlaces>,
    runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
    files: Mutex<HashMap<(u64, u64), Arc<FileRecall>>>,
    /// Targets open, with the generation of the targets they were opened at: a target
    /// changed meanwhile (its endpoint, its secret) is opened again.
    stores: Mutex<HashMap<String, (u64, Arc<Store>)>>,
    queue: Mutex<Queue>,
    work: Condvar,
}

impl FileRecall {
    /// Bytes back so far, and the file's size.
    fn progress(&self) -> (u64, u64) {
        (self.filling.back(), self.filling.size())
    }

    /// Wait up to `wait` for it to end: `None` while it is still under way.
    fn wait(&self, wait: Duration) -> Option<Result<(), RecallError>> {
        let outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        let (outcome, _) = self
            .settled
            .wait_timeout_while(outcome, wait, |o| {
                matches!(o, Outcome::Queued | Outcome::Running)
            })
            .unwrap_or_else(|p| p.into_inner());
        match &*outcome {
            Outcome::Done => Some(Ok(())),
            Outcome::Failed(e) => Some(Err(e.clone())),
            Outcome::Queued | Outcome::Running => None,
        }
    }
}

impl Recalls {
    /// The queue, its fetchers started.
    pub fn start(core: Arc<Core>, targets: Arc<Targets>, places: Arc<DataPlaces>) -> Arc<Self> {
        let me = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            core,
            targets,
            places,
            runtime: std::sync::OnceLock::new(),
            files: Mutex::default(),
            stores: Mutex::default(),
            queue: Mutex::default(),
            work: Condvar::new(),
        });
        for i in 0..WORKERS {
            let weak = Arc::downgrade(&me);
            if let Err(e) = std::thread::Builder::new()
                .name(format!("recall-{i}"))
                .spawn(move || fetcher(weak))
            {
                tracing::error!(error = %e, "cannot start a recall fetcher; released files come back only as clients read them");
            }
        }
        me
    }

    /// The runtime fetches run on, started with the first.
    fn runtime(&self) -> Result<&tokio::runtime::Runtime, RecallError> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("recall-io")
            .enable_all()
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "cannot start the recall queue's runtime");
                RecallError::Later
            })?;
        Ok(self.runtime.get_or_init(|| rt))
    }

    /// The recall of the released file open at `ns` (stat `st`): the one under way, or a
    /// new one queued (`waited`: a client waits for it); `None` when the file is not
    /// released (any more).
    fn begin(
        &self,
        ns: BorrowedFd<'_>,
        st: &Stat,
        waited: bool,
    ) -> Result<Option<Arc<FileRecall>>, RecallError> {
        let key = (st.st_dev, st.st_ino);
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fr) = files.get(&key) {
            if waited && !fr.waited.swap(true, Ordering::SeqCst) {
                self.promote(fr);
            }
            return Ok(Some(Arc::clone(fr)));
        }
        let filling = match Filling::begin(&self.places, ns) {
            Ok(f) => f,
            Err(rustix::io::Errno::ALREADY) => return Ok(None),
            Err(e) => return Err(RecallError::Lost(format!("cannot open it to fill it: {e}"))),
        };
        let path = std::fs::read_link(rushes_nas::sys::proc_path(ns))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| format!("inode {}", st.st_ino));
        let copies: Vec<Proof> = crate::targets::recorded_fd(ns)
            .into_iter()
            .filter(|p| p.facts.blake3 == filling.blake3() && p.facts.size == filling.size())
            .collect();
        if copies.is_empty() {
            let why = "no proven copy of its bytes is recorded".to_string();
            self.lost(&path, &why);
            return Err(RecallError::Lost(why));
        }
        let fr = Arc::new(FileRecall {
            key,
            path,
            filling,
            copies: Mutex::new(copies),
            waited: AtomicBool::new(waited),
            outcome: Mutex::new(Outcome::Queued),
            settled: Condvar::new(),
        });
        files.insert(key, Arc::clone(&fr));
        drop(files);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if waited {
            q.waited.push_back(Arc::clone(&fr));
        } else {
            q.bulk.push_back(Arc::clone(&fr));
        }
        self.work.notify_one();
        Ok(Some(fr))
    }

    /// A client now waits for a bulk recall: it goes ahead of the bulk ones.
    fn promote(&self, fr: &Arc<FileRecall>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = q.bulk.iter().position(|o| Arc::ptr_eq(o, fr)) {
            if let Some(fr) = q.bulk.remove(i) {
                q.waited.push_back(fr);
            }
        }
    }

    fn lost(&self, path: &str, why: &str) {
        self.core.alerts.raise_event(
            "copies",
            crate::alerts::Raise::new(
                format!("recall-failed:{path}"),
                Severity::Critical,
                format!("{path} is released and cannot be brought back: {why}; it reads as an I/O error"),
                "check its copies (rushesctl copies) and its targets (rushesctl target check)",
            ),
        );
    }

    /// Target `name`, open as it is set now.
    fn store(&self, name: &str) -> Result<Arc<Store>, String> {
        let generation = self.targets.generation();
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, store)) = stores.get(name) {
            if *at == generation {
                return Ok(Arc::clone(store));
            }
        }
        let store = Arc::new(self.targets.open_store(name)?);
        stores.insert(name.to_string(), (generation, Arc::clone(&store)));
        Ok(store)
    }

    /// Fetch `range` of `fr` from its first copy that gives it, and put it in place.
    /// A copy whose bytes are not the proven ones is dropped and alerted; a target that
    /// cannot be reached now is passed over. `Later` when none could give it now.
    async fn fetch(&self, fr: &FileRecall, range: std::ops::Range<u64>) -> Result<(), RecallError> {
        let copies = fr.copies.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut unreachable = 0;
        for proof in copies {
            let store = match self.store(&proof.target) {
                Ok(store) => store,
                Err(e) => {
                    tracing::info!(file = %fr.path, target = %proof.target, error = %e, "a copy's target cannot be used now");
                    unreachable += 1;
                    continue;
                }
            };
            match store.get_range(&proof, range.clone()).await {
                Ok(bytes) => {
                    return fr.filling.put(range.start, &bytes).map_err(|e| {
                        RecallError::Lost(format!("cannot write its bytes back: {e}"))
                    })
                }
                Err(CopyError::Unproven { why, .. }) => self.drop_copy(fr, &proof, &why),
                Err(e) => {
                    tracing::info!(file = %fr.path, target = %proof.target, error = %e, "a copy cannot be read now");
                    unreachable += 1;
                }
            }
        }
        if unreachable > 0 {
            return Err(RecallError::Later);
        }
        let why = "every copy of its bytes is gone or changed".to_string();
        self.lost(&fr.path, &why);
        Err(RecallError::Lost(why))
    }

    /// [`Self::fetch`] as a task of its own, waited for at most `wait` from any thread
    /// (an NFS call's, a fetcher's). The task goes on when its caller stops waiting: a
    /// client told to ask again later finds the range back.
    fn fetch_waiting(
        &self,
        fr: &Arc<FileRecall>,
        range: std::ops::Range<u64>,
        wait: Option<Duration>,
    ) -> Result<(), RecallError> {
        let Some(me) = self.me.upgrade() else {
            return Err(RecallError::Later);
        };
        let fr = Arc::clone(fr);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime()?.spawn(async move {
            let _ = tx.send(me.fetch(&fr, range).await);
        });
        let got = match wait {
            Some(wait) => rx.recv_timeout(wait).ok(),
            None => rx.recv().ok(),
        };
        got.unwrap_or(Err(RecallError::Later))
    }

    /// `proof`'s copy gave other bytes than were proven: it no longer counts.
    fn drop_copy(&self, fr: &FileRecall, proof: &Proof, why: &str) {
        fr.copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p.target != proof.target);
        let mut kept = crate::targets::recorded_fd(fr.filling.fd());
        kept.retain(|p| p.target != proof.target);
        if let Err(e) = crate::targets::set_recorded_fd(fr.filling.fd(), &kept) {
            tracing::warn!(file = %fr.path, error = %e, "cannot drop a bad copy from the file's record");
        }
        self.core.alerts.raise_event(
            "copies",
            crate::targets::copy_failed(proof, &fr.path, "during a recall", why),
        );
    }

    /// Bring all of `fr` back, then make it resident.
    fn run(&self, fr: &Arc<FileRecall>) -> Result<(), RecallError> {
        loop {
            let mut tries = 0;
            while let Some(range) = fr.filling.next_missing(0, CHUNK) {
                match self.fetch_waiting(fr, range, Some(BULK_WAIT)) {
                    Ok(()) => tries = 0,
                    // A target that does not answer now may be back soon, or set anew.
                    Err(RecallError::Later) if tries < RETRIES => {
                        tries += 1;
                        std::thread::sleep(Duration::from_secs(tries));
                    }
                    Err(e) => return Err(e),
                }
            }
            let mut busy = 0;
            loop {
                match fr.filling.finish(&self.places) {
                    Ok(()) => return Ok(()),
                    Err(rushes_placement::stub::FinishError::Busy) if busy < 100 => {
                        busy += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(rushes_placement::stub::FinishError::Mismatch) => {
                        // Every range came from the copies in order; the first is the one
                        // that gave them. Drop it and start again from the next.
                        let first = fr
                            .copies
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .first()
                            .cloned();
                        if let Some(proof) = first {
                            self.drop_copy(
                                fr,
                                &proof,
                                "its bytes do not hash as they did when it was proven",
                            );
                        }
                        break;
                    }
                    Err(rushes_placement::stub::FinishError::Incomplete) => break,
                    Err(rushes_placement::stub::FinishError::Busy) => {
                        return Err(RecallError::Later)
                    }
                    Err(e) => return Err(RecallError::Lost(e.to_string())),
                }
            }
        }
    }

    fn settle(&self, fr: &Arc<FileRecall>, outcome: Outcome) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fr.key);
        *fr.outcome.lock().unwrap_or_else(|p| p.into_inner()) = outcome;
        fr.settled.notify_all();
    }

    fn next(&self) -> Option<Arc<FileRecall>> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(fr) = q.waited.pop_front().or_else(|| q.bulk.pop_front()) {
                return Some(fr);
            }
            let (guard, timeout) = self
                .work
                .wait_timeout(q, Duration::from_secs(5))
                .unwrap_or_else(|p| p.into_inner());
            q = guard;
            if timeout.timed_out() && q.waited.is_empty() && q.bulk.is_empty() {
                return None;
            }
        }
    }
}

/// A fetcher thread: takes recalls, waited ones first, while the queue lives.
fn fetcher(queue: std::sync::Weak<Recalls>) {
    loop {
        let Some(me) = queue.upgrade() else { return };
        let Some(fr) = me.next() else { continue };
        *fr.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Outcome::Running;
        let outcome = match me.run(&fr) {
            Ok(()) => {
                tracing::info!(file = %fr.path, bytes = fr.filling.size(), "a released file is back");
                Outcome::Done
            }
            Err(e) => {
                tracing::warn!(file = %fr.path, error = ?e, "a recall stopped");
                Outcome::Failed(e)
            }
        };
        me.settle(&fr, outcome);
    }
}

impl Recaller for Recalls {
    fn read(
        &self,
        ns: BorrowedFd<'_>,
        st: &Stat,
        offset: u64,
        len: usize,
        wait: Duration,
    ) -> Result<Vec<u8>, RecallError> {
        let Some(fr) = self.begin(ns, st, true)? else {
            return read_plain(ns, offset, len);
        };
        if !fr.filling.has(offset, len as u64) {
            self.fetch_waiting(&fr, fr.filling.aligned(offset, len as u64), Some(wait))?;
        }
        fr.filling
            .read(offset, len)
            .map_err(|e| RecallError::Lost(format!("cannot read its bytes back: {e}")))
    }

    fn recall(&self, ns: BorrowedFd<'_>, st: &Stat, wait: Duration) -> Result<(), RecallError> {
        match self.begin(ns, st, true)? {
            None => Ok(()),
            Some(fr) => fr.wait(wait).unwrap_or(Err(RecallError::Later)),
        }
    }
}

/// Bytes of a file that is back in place.
fn read_plain(ns: BorrowedFd<'_>, offset: u64, len: usize) -> Result<Vec<u8>, RecallError> {
    rushes_placement::stub::read_at(ns, offset, len)
        .map_err(|e| RecallError::Lost(format!("cannot read it: {e}")))
}

/// How often a recall job looks at its files' progress.
const JOB_TICK: Duration = Duration::from_millis(500);

impl Recalls {
    /// A cancellable job of kind `kind` on share `share`.
    fn share_job(&self, kind: &str, share: &str) -> crate::jobs::Work {
        self.core.jobs.create(
            kind,
            api::JobTarget {
                kind: api::TargetKind::Share,
                name: share.into(),
            },
            true,
        )
    }

    /// Release `req.paths` of `req.share` as a job: each file with enough proven copies
    /// of its bytes as they are now gives its blocks back and stays as a stub.
    pub fn release_files(self: &Arc<Self>, req: api::ReleaseFiles) -> ApiResult<api::Job> {
        let need = req.copies.unwrap_or(1).max(1) as usize;
        let (root, files) = self.targets.files_of(&req.share, &req.paths)?;
        let w = self.share_job("release-files", &req.share);
        let me = Arc::clone(self);
        Ok(self.core.jobs.run(w, move |w| {
            let total: u64 = files.iter().map(|(_, size)| size).sum();
            let (mut done, mut released, mut freed, mut already) = (0u64, 0usize, 0u64, 0usize);
            let mut kept = Vec::new();
            for (rel, size) in &files {
                if w.cancelled() {
                    return Err("cancelled".into());
                }
                w.progress_at("releasing", done, total, "bytes", None);
                match me.release_one(&root.join(rel), need) {
                    Ok(Release::Done) => {
                        released += 1;
                        freed += size;
                    }
                    Ok(Release::Already) => already += 1,
                    Err(why) => kept.push(format!("{rel}: {why}")),
                }
                done += size;
            }
            let summary = format!(
                "{released} files released ({}), {already} were already",
                rushes_api::units::show_size(freed)
            );
            tracing::info!(share = %req.share, released, freed, kept = kept.len(), "release job done");
            if kept.is_empty() {
                w.step(&format!("done: {summary}"));
                Ok(())
            } else {
                Err(format!("{summary}; {} kept: {}", kept.len(), kept.join("; ")))
            }
        }))
    }

    /// Release the file at `home` if it has `need` proven copies of its bytes as they
    /// are now.
    fn release_one(&self, home: &Path, need: usize) -> Result<Release, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(home)
            .map_err(|e| format!("cannot open it: {e}"))?;
        let st = rustix::fs::fstat(&file).map_err(|e| format!("cannot look at it: {e}"))?;
        if rushes_placement::stub::is_released(file.as_fd()).unwrap_or(false) {
            return Ok(Release::Already);
        }
        if st.st_size == 0 {
            return Err("it is empty: there is nothing to release".into());
        }
        let mtime = rushes_placement::stub::mtime_ns(&st);
        let current: Vec<Proof> = crate::targets::recorded_fd(file.as_fd())
            .into_iter()
            .filter(|p| p.facts.size == st.st_size as u64 && p.facts.mtime_ns == mtime)
            .collect();
        if current.len() < need {
            return Err(format!(
                "it has {} proven copies as it is now and {need} are needed (rushesctl copy)",
                current.len()
            ));
        }
        let blake3 = current[0].facts.blake3.clone();
        if current.iter().any(|p| p.facts.blake3 != blake3) {
            return Err("its copies disagree about its bytes: audit them (rushesctl prove)".into());
        }
        rushes_placement::stub::release(
            &self.places,
            file.as_fd(),
            st.st_size as u64,
            mtime,
            &blake3,
        )
        .map_err(|e| e.to_string())
    }

    /// Bring `req.paths` of `req.share` back as a job with progress in bytes: every
    /// released file is queued, behind the recalls clients wait for.
    pub fn recall_files(self: &Arc<Self>, req: api::RecallFiles) -> ApiResult<api::Job> {
        let (root, files) = self.targets.files_of(&req.share, &req.paths)?;
        let w = self.share_job("recall-files", &req.share);
        let me = Arc::clone(self);
        Ok(self.core.jobs.run(w, move |w| {
            let mut under_way: Vec<(String, Arc<FileRecall>)> = Vec::new();
            let (mut resident, mut failed) = (0usize, Vec::new());
            for (rel, _) in &files {
                let opened = std::fs::File::open(root.join(rel));
                let found = opened.map_err(|e| e.to_string()).and_then(|f| {
                    let st = rustix::fs::fstat(&f).map_err(|e| e.to_string())?;
                    if !rushes_placement::stub::is_released(f.as_fd()).unwrap_or(false) {
                        return Ok(None);
                    }
                    match me.begin(f.as_fd(), &st, false) {
                        Ok(found) => Ok(found),
                        Err(e) => Err(said(&e)),
                    }
                });
                match found {
                    Ok(Some(h)) => under_way.push((rel.clone(), h)),
                    Ok(None) => resident += 1,
                    Err(e) => failed.push(format!("{rel}: {e}")),
                }
            }
            let total: u64 = under_way.iter().map(|(_, h)| h.progress().1).sum();
            let mut recalled = 0usize;
            let mut finished = 0u64;
            for (rel, h) in &under_way {
                loop {
                    if w.cancelled() {
                        return Err("cancelled; recalls already started go on".into());
                    }
                    let now = finished + h.progress().0;
                    w.progress_at(&format!("recalling {rel}"), now, total, "bytes", None);
                    match h.wait(JOB_TICK) {
                        None => continue,
                        Some(Ok(())) => recalled += 1,
                        Some(Err(e)) => failed.push(format!("{rel}: {}", said(&e))),
                    }
                    break;
                }
                finished += h.progress().1;
            }
            let summary = format!(
                "{recalled} files recalled ({}), {resident} were on the box",
                rushes_api::units::show_size(total)
            );
            tracing::info!(share = %req.share, recalled, failed = failed.len(), "recall job done");
            if failed.is_empty() {
                w.step(&format!("done: {summary}"));
                Ok(())
            } else {
                Err(format!(
                    "{summary}; {} not back: {}",
                    failed.len(),
                    failed.join("; ")
                ))
            }
        }))
    }
}

/// A recall's failure in words.
fn said(e: &RecallError) -> String {
    match e {
        RecallError::Later => {
            "its copies cannot be reached now (rushesctl target check); try again".into()
        }
        RecallError::Lost(why) => why.clone(),
    }
}
