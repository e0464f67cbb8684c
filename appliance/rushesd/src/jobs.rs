//! The jobs service: every long-running task of the daemon, whatever it works on, is a
//! job with a kind, a target, progress in its own units, a state, and cancel where the
//! work allows it. Jobs are kept in `STATE_DIR/jobs.json`: after a restart of rushesd
//! each job that was running waits for its owner to take it up again, and one that no
//! owner can resume is marked failed with the reason.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rushes_api::{self as api, JobState, JobTarget};
use serde::{Deserialize, Serialize};

use crate::alerts::{damaged_file, Alerts};
use crate::epoch::now;
use crate::error::{ApiErr, ApiResult};
use crate::state_file::{read_state, write_state};

/// Ended jobs kept for the record; running ones are always kept.
pub const KEEP_ENDED: usize = 200;

/// The jobs file's layout; a file of another version is set aside, not misread.
const VERSION: u32 = 1;

/// Progress alone (no new step, no new state) is written at most this often.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// What a job waiting to be taken up after a restart says it is doing.
const WAITING: &str = "waiting to be taken up again after a restart of rushesd";

#[derive(Serialize, Deserialize)]
struct SavedJob {
    #[serde(flatten)]
    job: api::Job,
    /// What the owner needs to go on after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    next: u64,
    jobs: Vec<SavedJob>,
}

struct Entry {
    job: api::Job,
    resume: Option<serde_json::Value>,
    cancel: Arc<AtomicBool>,
    /// Left running by the previous rushesd, not yet taken up.
    interrupted: bool,
}

struct Inner {
    next: u64,
    entries: Vec<Entry>,
    saved: Option<Instant>,
}

pub struct Jobs {
    file: Option<PathBuf>,
    inner: Mutex<Inner>,
}

/// A job left running by the previous rushesd, for its owner to look at.
pub struct Interrupted {
    pub job: api::Job,
    pub resume: Option<serde_json::Value>,
}

/// The handle a job's work reports through.
pub struct Work {
    id: u64,
    jobs: Arc<Jobs>,
    cancel: Arc<AtomicBool>,
}

impl Work {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A new step whose progress is not counted.
    pub fn step(&self, step: &str) {
        self.jobs.update(self.id, |j| {
            j.step = step.into();
            j.progress = None;
            j.fraction = None;
        });
    }

    /// The step's progress at a rate the work knows itself (md reports its speed).
    pub fn progress_at(&self, step: &str, done: u64, total: u64, unit: &str, rate: Option<f64>) {
        let eta = rate
            .filter(|r| *r > 0.0)
            .map(|r| (total.saturating_sub(done) as f64 / r).ceil() as u64);
        self.jobs.update(self.id, |j| {
            j.step = step.into();
            j.fraction = (total > 0).then(|| done.min(total) as f64 / total as f64);
            j.progress = Some(api::Progress {
                done,
                total,
                unit: unit.into(),
                rate,
                eta_secs: eta,
            });
        });
    }

    /// The admin asked to stop: the work should end at the next safe point.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// What a restarted rushesd needs to go on with this job (kept in the jobs file).
    pub fn resume_with(&self, value: serde_json::Value) {
        let mut st = self.jobs.lock();
        if let Some(e) = st.entries.iter_mut().find(|e| e.job.id == self.id) {
            e.resume = Some(value);
        }
        self.jobs.save(&mut st);
    }
}

/// A panicking job's error, with the panic's text.
fn panicked(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("the job stopped on an internal error: {text}; the daemon goes on (please report it with `rushesctl logs`)")
}

impl Jobs {
    /// The jobs kept in `file` (none without one). A damaged file is set aside and
    /// reported through `alerts`.
    pub fn open(file: Option<PathBuf>, alerts: &Alerts) -> Arc<Self> {
        let saved = match file.as_deref().map(|f| (f, read_state::<Saved>(f))) {
            Some((_, Ok(Some(s)))) if s.version == VERSION => Some(s),
            Some((f, Ok(Some(s)))) => {
                alerts.raise_event(
                    "jobs",
                    damaged_file(f, format!(
                        "the jobs file has layout version {}, this rushesd reads {VERSION}: its jobs were not read",
                        s.version
                    )),
                );
                None
            }
            Some((f, Err(problem))) => {
                alerts.raise_event("jobs", damaged_file(f, problem));
                None
            }
            Some((_, Ok(None))) | None => None,
        };
        let (next, entries) = match saved {
            Some(s) => {
                let entries = s
                    .jobs
                    .into_iter()
                    .map(|sj| {
                        let mut job = sj.job;
                        let interrupted = job.state.is_active();
                        if interrupted {
                            job.state = JobState::Queued;
                            job.step = WAITING.into();
                        }
                        Entry {
                            job,
                            resume: sj.resume,
                            cancel: Arc::default(),
                            interrupted,
                        }
                    })
                    .collect::<Vec<_>>();
                let next = entries
                    .iter()
                    .map(|e| e.job.id + 1)
                    .max()
                    .unwrap_or(1)
                    .max(s.next);
                (next, entries)
            }
            None => (1, Vec::new()),
        };
        Arc::new(Self {
            file,
            inner: Mutex::new(Inner {
                next,
                entries,
                saved: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, st: &mut Inner) {
        let Some(file) = &self.file else { return };
        let saved = Saved {
            version: VERSION,
            next: st.next,
            jobs: st
                .entries
                .iter()
                .map(|e| SavedJob {
                    job: e.job.clone(),
                    resume: e.resume.clone(),
                })
                .collect(),
        };
        if let Err(e) = write_state(file, &saved) {
            tracing::warn!(file = %file.display(), error = %e, "cannot keep the jobs");
        }
        st.saved = Some(Instant::now());
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut api::Job)) {
        let mut st = self.lock();
        let Some(e) = st.entries.iter_mut().find(|e| e.job.id == id) else {
            return;
        };
        let before = (e.job.state, e.job.step.clone());
        change(&mut e.job);
        let stepped = before.1 != e.job.step;
        if stepped {
            tracing::info!(job = id, kind = %e.job.kind, target = %e.job.target, step = %e.job.step, "job step");
        }
        if before.0 != e.job.state || stepped || st.saved.is_none_or(|t| t.elapsed() > SAVE_EVERY) {
            self.save(&mut st);
        }
    }

    /// A new running job; its work starts with [`Jobs::run`].
    pub fn create(self: &Arc<Self>, kind: &str, target: JobTarget, cancellable: bool) -> Work {
        let mut st = self.lock();
        let id = st.next;
        st.next += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        st.entries.push(Entry {
            job: api::Job {
                id,
                kind: kind.into(),
                target,
                state: JobState::Running,
                step: "starting".into(),
                progress: None,
                fraction: None,
                error: None,
                cancellable,
                resumed: false,
                started: now(),
                finished: None,
            },
            resume: None,
            cancel: Arc::clone(&cancel),
            interrupted: false,
        });
        // Forget the oldest ended jobs beyond the limit.
        let ended = st
            .entries
            .iter()
            .filter(|e| !e.job.state.is_active())
            .count();
        let mut excess = ended.saturating_sub(KEEP_ENDED);
        st.entries.retain(|e| {
            let drop = excess > 0 && !e.job.state.is_active();
            excess -= usize::from(drop);
            !drop
        });
        self.save(&mut st);
        Work {
            id,
            jobs: Arc::clone(self),
            cancel,
        }
    }

    /// Run `work` on a thread of its own as root. Its error fails the job (or, once the
    /// admin asked to cancel, ends it as cancelled); a panic fails it with the panic's
    /// text, and the daemon goes on.
    pub fn run(
        self: &Arc<Self>,
        work: Work,
        f: impl FnOnce(&Work) -> Result<(), String> + Send + 'static,
    ) -> api::Job {
        let id = work.id;
        let jobs = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| {
                    // A thread inherits its creator's identity, which may be an NFS
                    // caller's.
                    rushes_nas::sys::run_as_root()
                        .map_err(|e| format!("cannot act as root: {e}"))?;
                    f(&work)
                }));
                let result = result.unwrap_or_else(|panic| Err(panicked(&*panic)));
                jobs.finish(id, result, work.cancelled());
            });
        if let Err(e) = spawned {
            self.finish(id, Err(format!("cannot start a thread: {e}")), false);
        }
        self.get(id).expect("the job was just made")
    }

    /// Run short work as job `work` on this thread, so the caller answers when it ends;
    /// the job is kept, and a panic handled, as with [`Jobs::run`].
    pub fn run_here(
        &self,
        work: Work,
        f: impl FnOnce(&Work) -> Result<(), String>,
    ) -> Result<(), String> {
        let result = catch_unwind(AssertUnwindSafe(|| f(&work)))
            .unwrap_or_else(|panic| Err(panicked(&*panic)));
        self.finish(work.id, result.clone(), work.cancelled());
        result
    }

    fn finish(&self, id: u64, result: Result<(), String>, cancelled: bool) {
        self.update(id, |job| {
            job.finished = Some(now());
            match result {
                Ok(()) => {
                    job.state = JobState::Done;
                    // A last step that says what was done (`done: moved 3 files`) stays.
                    if !job.step.starts_with("done") {
                        job.step = "done".into();
                    }
                    job.fraction = Some(1.0);
                    if let Some(p) = &mut job.progress {
                        p.done = p.total;
                        p.eta_secs = None;
                    }
                    tracing::info!(job = id, kind = %job.kind, target = %job.target, "job done");
                }
                Err(e) if cancelled => {
                    tracing::warn!(job = id, kind = %job.kind, target = %job.target, detail = %e, "job cancelled");
                    job.state = JobState::Cancelled;
                    job.step = "cancelled".into();
                    job.error = Some(e);
                }
                Err(e) => {
                    tracing::error!(job = id, kind = %job.kind, target = %job.target, error = %e, "job failed");
                    job.state = JobState::Failed;
                    job.error = Some(e);
                }
            }
        });
    }

    /// Jobs of these kinds that the previous rushesd left running.
    pub fn interrupted(&self, kinds: &[&str]) -> Vec<Interrupted> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.interrupted && kinds.contains(&e.job.kind.as_str()))
            .map(|e| Interrupted {
                job: e.job.clone(),
                resume: e.resume.clone(),
            })
            .collect()
    }

    /// Take up an interrupted job again: it runs once more (through [`Jobs::run`]).
    pub fn take_up(self: &Arc<Self>, id: u64) -> Option<Work> {
        let cancel = {
            let mut st = self.lock();
            let e = st
                .entries
                .iter_mut()
                .find(|e| e.job.id == id && e.interrupted)?;
            e.interrupted = false;
            e.job.state = JobState::Running;
            e.job.resumed = true;
            e.job.step = "taken up again after a restart".into();
            let cancel = Arc::clone(&e.cancel);
            self.save(&mut st);
            cancel
        };
        tracing::info!(job = id, "job taken up again after a restart");
        Some(Work {
            id,
            jobs: Arc::clone(self),
            cancel,
        })
    }

    /// End an interrupted job that its owner cannot go on with, saying why.
    pub fn give_up(&self, id: u64, why: &str) {
        let mut st = self.lock();
        let Some(e) = st
            .entries
            .iter_mut()
            .find(|e| e.job.id == id && e.interrupted)
        else {
            return;
        };
        e.interrupted = false;
        e.job.state = JobState::Failed;
        e.job.finished = Some(now());
        e.job.error = Some(why.into());
        tracing::warn!(job = id, kind = %e.job.kind, target = %e.job.target, reason = why, "an interrupted job is not resumed");
        self.save(&mut st);
    }

    /// After every owner has looked: interrupted jobs nobody took up fail, honestly.
    pub fn give_up_the_rest(&self) {
        let left: Vec<(u64, String)> = self
            .lock()
            .entries
            .iter()
            .filter(|e| e.interrupted)
            .map(|e| (e.job.id, e.job.kind.clone()))
            .collect();
        for (id, kind) in left {
            self.give_up(
                id,
                &format!("rushesd restarted while this {kind} ran, and nothing of this daemon resumes that kind of job: check its target and start it again"),
            );
        }
    }

    pub fn list(&self) -> Vec<api::Job> {
        self.lock().entries.iter().map(|e| e.job.clone()).collect()
    }

    pub fn get(&self, id: u64) -> Option<api::Job> {
        self.lock()
            .entries
            .iter()
            .find(|e| e.job.id == id)
            .map(|e| e.job.clone())
    }

    /// A job that has not ended and works on `target`.
    pub fn active_on(&self, target: &JobTarget) -> Option<api::Job> {
        self.lock()
            .entries
            .iter()
            .find(|e| e.job.state.is_active() && &e.job.target == target)
            .map(|e| e.job.clone())
    }

    /// Any job that has not ended.
    pub fn any_active(&self) -> Option<api::Job> {
        self.lock()
            .entries
            .iter()
            .find(|e| e.job.state.is_active())
            .map(|e| e.job.clone())
    }

    /// Ask a job to stop at its next safe point.
    pub fn cancel(&self, id: u64) -> ApiResult<api::Job> {
        let mut st = self.lock();
        let Some(e) = st.entries.iter_mut().find(|e| e.job.id == id) else {
            return Err(ApiErr::not_found(format!("there is no job {id}"))
                .hint("`rushesctl jobs` lists them"));
        };
        if !e.job.state.is_active() {
            return Err(ApiErr::new(
                409,
                "job-ended",
                format!("job {id} has ended already ({:?})", e.job.state).to_lowercase(),
            ));
        }
        if !e.job.cancellable {
            return Err(ApiErr::new(
                409,
                "not-cancellable",
                format!("a {} cannot be stopped halfway", e.job.kind),
            )
            .hint("md finishes a layout change by itself; watch it with rushesctl jobs watch ID"));
        }
        e.cancel.store(true, Ordering::Relaxed);
        e.job.step = "cancelling".into();
        tracing::info!(job = id, kind = %e.job.kind, target = %e.job.target, "job cancel asked");
        let job = e.job.clone();
        self.save(&mut st);
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn wait_until_ended(jobs: &Jobs, id: u64) -> api::Job {
        let begun = Instant::now();
        loop {
            let job = jobs.get(id).unwrap();
            if !job.state.is_active() {
                return job;
            }
            assert!(begun.elapsed() < Duration::from_secs(10), "{job:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_job_reports_progress_with_rate_and_eta_and_ends_done() {
        let jobs = Jobs::open(None, &Alerts::open(None));
        let (go, wait) = mpsc::channel::<()>();
        let (seen, look) = mpsc::channel::<()>();
        let work = jobs.create("copy", JobTarget::pool("media"), false);
        let id = work.id();
        jobs.run(work, move |w| {
            w.progress_at("copying", 250, 1000, "bytes", Some(50.0));
            seen.send(()).unwrap();
            wait.recv().unwrap();
            Ok(())
        });
        look.recv().unwrap();
        let job = jobs.get(id).unwrap();
        assert_eq!(job.state, JobState::Running);
        let p = job.progress.unwrap();
        assert_eq!((p.done, p.total, p.unit.as_str()), (250, 1000, "bytes"));
        assert_eq!(p.eta_secs, Some(15));
        assert_eq!(job.fraction, Some(0.25));
        assert_eq!(jobs.active_on(&JobTarget::pool("media")).unwrap().id, id);
        go.send(()).unwrap();
        let job = wait_until_ended(&jobs, id);
        assert_eq!(job.state, JobState::Done);
        assert!(job.finished.is_some());
        assert!(jobs.active_on(&JobTarget::pool("media")).is_none());
    }

    #[test]
    fn a_done_job_keeps_a_last_step_that_says_what_was_done() {
        let jobs = Jobs::open(None, &Alerts::open(None));
        let said = jobs.create("placement-run", JobTarget::pool("media"), false);
        let said_id = said.id();
        jobs.run_here(said, |w| {
            w.step("done: moved 2 files (32 MB)");
            Ok(())
        })
        .unwrap();
        assert_eq!(
            jobs.get(said_id).unwrap().step,
            "done: moved 2 files (32 MB)"
        );
        let plain = jobs.create("scrub", JobTarget::pool("media"), false);
        let plain_id = plain.id();
        jobs.run_here(plain, |w| {
            w.step("checking");
            Ok(())
        })
        .unwrap();
        assert_eq!(jobs.get(plain_id).unwrap().step, "done");
    }

    #[test]
    fn a_panicking_job_fails_with_the_panic_text() {
        let jobs = Jobs::open(None, &Alerts::open(None));
        let work = jobs.create("index", JobTarget::pool("media"), false);
        let id = work.id();
        jobs.run(work, |_| panic!("the index is upside down"));
        let job = wait_until_ended(&jobs, id);
        assert_eq!(job.state, JobState::Failed);
        let error = job.error.unwrap();
        assert!(error.contains("the index is upside down"), "{error}");
    }

    #[test]
    fn short_work_runs_as_a_job_on_the_callers_thread() {
        let jobs = Jobs::open(None, &Alerts::open(None));
        let ok = jobs.create("firmware-stage", JobTarget::pool("x"), false);
        let ok_id = ok.id();
        assert_eq!(
            jobs.run_here(ok, |w| {
                w.step("writing slot B");
                Ok(())
            }),
            Ok(())
        );
        assert_eq!(jobs.get(ok_id).unwrap().state, JobState::Done);
        let bad = jobs.create("firmware-stage", JobTarget::pool("x"), false);
        let bad_id = bad.id();
        let e = jobs.run_here(bad, |_| Err("the bundle is for another card".into()));
        assert_eq!(e.unwrap_err(), "the bundle is for another card");
        let job = jobs.get(bad_id).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.error.as_deref(), Some("the bundle is for another card"));
    }

    #[test]
    fn cancel_stops_cancellable_jobs_and_refuses_the_others() {
        let jobs = Jobs::open(None, &Alerts::open(None));
        let work = jobs.create("scrub", JobTarget::pool("media"), true);
        let id = work.id();
        jobs.run(work, |w| {
            while !w.cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err("stopped at stripe 9".into())
        });
        let (go, wait) = mpsc::channel::<()>();
        let fixed = jobs.create("grow-pool", JobTarget::pool("media"), false);
        let fixed_id = fixed.id();
        jobs.run(fixed, move |_| {
            let _ = wait.recv();
            Ok(())
        });
        assert_eq!(jobs.cancel(fixed_id).unwrap_err().code, "not-cancellable");
        assert_eq!(jobs.cancel(999).unwrap_err().status, 404);
        assert_eq!(jobs.cancel(id).unwrap().step, "cancelling");
        let job = wait_until_ended(&jobs, id);
        assert_eq!(job.state, JobState::Cancelled);
        assert_eq!(jobs.cancel(id).unwrap_err().code, "job-ended");
        go.send(()).unwrap();
        wait_until_ended(&jobs, fixed_id);
    }

    #[test]
    fn after_a_restart_jobs_are_taken_up_by_their_owner_or_failed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jobs.json");
        let alerts = Alerts::open(None);
        let first = Jobs::open(Some(file.clone()), &alerts);
        let (_hold, wait) = mpsc::channel::<()>();
        let (seen, look) = mpsc::channel::<()>();
        let scrub = first.create("scrub", JobTarget::pool("media"), true);
        let scrub_id = scrub.id();
        let wait = Arc::new(Mutex::new(wait));
        let w2 = Arc::clone(&wait);
        first.run(scrub, move |w| {
            w.resume_with(serde_json::json!({"phase": "sync"}));
            seen.send(()).unwrap();
            let _ = w2.lock().unwrap().recv();
            Ok(())
        });
        look.recv().unwrap();
        let other = first.create("wipe", JobTarget::pool("old"), false);
        let other_id = other.id();
        first.run(other, move |_| {
            let _ = wait.lock().unwrap().recv();
            Ok(())
        });
        let done = first.create("scrub", JobTarget::pool("archive"), true);
        let done_id = done.id();
        first.run(done, |_| Ok(()));
        wait_until_ended(&first, done_id);
        // A second daemon reads what the first left, as after a crash.
        let second = Jobs::open(Some(file.clone()), &alerts);
        let left = second.interrupted(&["scrub"]);
        assert_eq!(left.len(), 1, "only the running scrub");
        assert_eq!(left[0].job.id, scrub_id);
        assert_eq!(left[0].job.state, JobState::Queued);
        assert_eq!(left[0].resume, Some(serde_json::json!({"phase": "sync"})));
        let work = second.take_up(scrub_id).unwrap();
        second.run(work, |_| Ok(()));
        let job = wait_until_ended(&second, scrub_id);
        assert_eq!(job.state, JobState::Done);
        assert!(job.resumed);
        second.give_up_the_rest();
        let wipe = second.get(other_id).unwrap();
        assert_eq!(wipe.state, JobState::Failed);
        assert!(wipe.error.unwrap().contains("restarted"));
        assert_eq!(second.get(done_id).unwrap().state, JobState::Done);
        // New ids follow the old ones.
        assert!(second.create("scrub", JobTarget::pool("x"), true).id() > done_id);
    }

    #[test]
    fn a_damaged_jobs_file_is_set_aside_with_an_alert() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jobs.json");
        std::fs::write(&file, b"\x00\x01 not json").unwrap();
        let alerts = Alerts::open(None);
        let jobs = Jobs::open(Some(file.clone()), &alerts);
        assert!(jobs.list().is_empty());
        let open = alerts.list();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].id, "state-file-damaged:jobs.json");
        assert!(open[0].message.contains("jobs.json"), "{}", open[0].message);
        // And the next job is kept in a fresh file.
        jobs.create("scrub", JobTarget::pool("media"), true);
        assert!(read_state::<Saved>(&file).unwrap().is_some());
    }
}
