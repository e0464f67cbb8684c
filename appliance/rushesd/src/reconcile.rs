//! Copy rules kept true: a reconcile walks every share, and each file that a rule wants
//! copies of (`copies = N`, `targets = [...]`) gets them, on the rule's targets in
//! order, each proven and recorded on the file. With `audit = "30d"`, copies whose last
//! proof is older than that are read back first (a rolling sample of every copy). A
//! changed file's copy is replaced by a
//! new one and the old one is kept as a version on its target. Files a run leaves short
//! of their copies (a target down, a file being written) raise an alert until a run
//! brings them in line. It runs on the rules' schedule (`every`) and on demand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rushes_api::{self as api, JobTarget, Severity, TargetKind};
use rushes_copies::{Proof, Store};
use rushes_nas::Service;
use rushes_placement::RuleSet;

use crate::alerts::Raise;
use crate::core::Core;
use crate::error::{ApiErr, ApiResult};
use crate::placement::Placement;
use crate::targets::{
    copy_one, current_on, is_current, job_runtime, record, recorded_in, retention_secs,
    set_recorded, store_for, Reread, Targets, COPIES_XATTR,
};

const KIND: &str = "reconcile-copies";
/// Short files named in an alert or a job's error, at most.
const NAMED: usize = 10;

pub struct Reconcile {
    core: Arc<Core>,
    targets: Arc<Targets>,
    placement: Arc<Placement>,
    nas: Arc<Service>,
    /// When the last scheduled run began.
    last: Mutex<Option<Instant>>,
}

fn run_target() -> JobTarget {
    JobTarget {
        kind: TargetKind::Paths,
        name: "copies".into(),
    }
}

/// What one run did.
#[derive(Default)]
struct Tally {
    files: u64,
    wanted: u64,
    copied: u64,
    bytes: u64,
    versions: u64,
    /// Stale copies read back and proven again, and found bad (dropped).
    proven: u64,
    dropped: u64,
    /// Retention: copies of removed files kept as versions, versions past it deleted.
    kept: rushes_copies::Retention,
    /// Current copies on each target, and their bytes.
    stored: Stored,
    /// Bytes copied to each target, and the seconds spent copying them.
    sent: BTreeMap<String, (u64, f64)>,
    /// Files left short, with why.
    short: Vec<String>,
}

/// Copies and bytes per target, by the files' records.
#[derive(Default)]
struct Stored(BTreeMap<String, (u64, u64)>);

impl Stored {
    fn count(&mut self, target: &str, bytes: u64) {
        let e = self.0.entry(target.to_string()).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
}

impl Reconcile {
    pub fn new(
        core: Arc<Core>,
        targets: Arc<Targets>,
        placement: Arc<Placement>,
        nas: Arc<Service>,
    ) -> Arc<Self> {
        Arc::new(Self {
            core,
            targets,
            placement,
            nas,
            last: Mutex::new(None),
        })
    }

    /// The rules in force, when any keeps copies.
    fn copy_rules(&self) -> ApiResult<RuleSet> {
        let rules = self.placement.rules_in_force()?;
        if !rules.rules.iter().any(|r| r.copies.is_some()) {
            return Err(ApiErr::bad_request("no rule keeps copies").hint(
                "give a rule `copies` and `targets` (or add an `action = \"copy\"` rule) with rushesctl placement set",
            ));
        }
        Ok(rules)
    }

    /// Start a run now, as a job: every file of every share checked against the copy
    /// rules, and the copies it lacks made.
    pub fn run(self: &Arc<Self>) -> ApiResult<api::Job> {
        let rules = self.copy_rules()?;
        if let Some(job) = self.core.jobs.active_on(&run_target()) {
            return Err(ApiErr::new(
                409,
                "already-running",
                format!("copies are being reconciled already (job {})", job.id),
            )
            .hint("wait for it: rushesctl jobs"));
        }
        let w = self.core.jobs.create(KIND, run_target(), true);
        let me = Arc::clone(self);
        Ok(self.core.jobs.run(w, move |w| {
            let mut tally = me.reconcile(&rules, w)?;
            let summary = format!(
                "{} files looked at, {} kept by copy rules; {} copies made ({}), {} older versions kept; {} copies proven again, {} found bad; {} copies of removed files kept as versions, {} versions past their retention deleted ({})",
                tally.files,
                tally.wanted,
                tally.copied,
                rushes_api::units::show_size(tally.bytes),
                tally.versions,
                tally.proven,
                tally.dropped,
                tally.kept.retired,
                tally.kept.pruned,
                rushes_api::units::show_size(tally.kept.pruned_bytes),
            );
            tracing::info!(files = tally.files, copied = tally.copied, short = tally.short.len(), "copies reconciled");
            me.publish(&tally.short);
            me.targets.counted(std::mem::take(&mut tally.stored.0));
            for (target, (bytes, seconds)) in &tally.sent {
                me.targets.measured(target, *bytes, *seconds);
            }
            if tally.short.is_empty() {
                w.step(&format!("done: {summary}"));
                Ok(())
            } else {
                Err(format!(
                    "{summary}; {} files short of their copies: {}",
                    tally.short.len(),
                    named(&tally.short)
                ))
            }
        }))
    }

    /// The alert for files left short by the last run (cleared once none is).
    fn publish(&self, short: &[String]) {
        let raised = if short.is_empty() {
            Vec::new()
        } else {
            vec![Raise::new(
                "copies-short",
                Severity::Warning,
                format!(
                    "{} files have fewer proven copies than their rules want: {}",
                    short.len(),
                    named(short)
                ),
                "check the targets (rushesctl target check); the next reconcile (rushesctl reconcile) copies them",
            )]
        };
        self.core.alerts.publish("copies-rules", raised);
    }

    fn reconcile(&self, rules: &RuleSet, w: &crate::jobs::Work) -> Result<Tally, String> {
        let runtime = job_runtime()?;
        let mut stores: BTreeMap<String, Result<Store, String>> = BTreeMap::new();
        let mut xattrs = rules.xattr_names();
        xattrs.push(COPIES_XATTR.to_string());
        let homes = self.homes();
        let places = Arc::clone(&self.nas.places);
        let now = crate::epoch::now() as i64;
        let mut tally = Tally::default();
        for share in self.nas.shares() {
            let root: PathBuf = share.path.clone();
            let name = share.name.to_string();
            let home = homes.get(&name).cloned().unwrap_or_default();
            let scanned = rushes_placement::scan_share(&name, &root, &home, &xattrs, |facts| {
                if w.cancelled() {
                    return;
                }
                tally.files += 1;
                if tally.files.is_multiple_of(1000) {
                    w.step(&format!(
                        "{} files looked at, {} copies made",
                        tally.files, tally.copied
                    ));
                }
                let mut proofs = recorded_in(&facts);
                let home_path = root.join(&facts.path);
                // Copies whose last proof is older than `audit` are read back first, so
                // one found bad is replaced in this same run.
                if let Some(after) = rules.audit {
                    let stale = |p: &Proof| (now as u64).saturating_sub(p.proven_at) >= after;
                    if proofs.iter().any(stale) {
                        let mut kept = Vec::new();
                        for proof in std::mem::take(&mut proofs) {
                            if !stale(&proof) {
                                kept.push(proof);
                                continue;
                            }
                            let store = store_for(&mut stores, &self.targets, &proof.target);
                            match self.targets.reread(
                                &runtime,
                                store.as_ref(),
                                proof,
                                &name,
                                &facts.path,
                            ) {
                                Reread::Proven(p) => {
                                    tally.proven += 1;
                                    kept.push(p);
                                }
                                Reread::Dropped(_) => tally.dropped += 1,
                                Reread::Unreadable(p, _) => kept.push(p),
                            }
                        }
                        if let Err(e) = set_recorded(&home_path, &kept) {
                            tally.short.push(format!("{name}/{}: {e}", facts.path));
                        }
                        proofs = kept;
                    }
                }
                let current = |p: &Proof| is_current(p, &facts);
                for p in proofs.iter().filter(|p| facts.released || current(p)) {
                    tally.stored.count(&p.target, p.facts.size);
                }
                let Some(wish) = rules
                    .copies_for(&facts, now)
                    .and_then(|(_, r)| r.copies.as_ref())
                else {
                    return;
                };
                tally.wanted += 1;
                // A released file's copies are where its bytes are: nothing new to copy.
                if facts.released {
                    return;
                }
                let mut have = current_on(&wish.targets, &proofs, &facts);
                if have >= wish.copies {
                    return;
                }
                let file = format!("{name}/{}", facts.path);
                if facts.being_written {
                    tally.short.push(format!("{file} (being written)"));
                    return;
                }
                let mut errors = Vec::new();
                for target in &wish.targets {
                    if have >= wish.copies {
                        break;
                    }
                    if proofs.iter().any(|p| &p.target == target && current(p)) {
                        continue;
                    }
                    let store = match store_for(&mut stores, &self.targets, target) {
                        Ok(store) => store,
                        Err(e) => {
                            errors.push(format!("{target}: {e}"));
                            continue;
                        }
                    };
                    // The copy of an older version stays, under its time.
                    if let Some(old) = proofs.iter().find(|p| &p.target == target) {
                        match runtime.block_on(store.keep_version(old)) {
                            Ok(Some(_)) => tally.versions += 1,
                            Ok(None) => {}
                            Err(e) => {
                                errors.push(format!("{target}: {e}"));
                                continue;
                            }
                        }
                    }
                    let started = Instant::now();
                    match copy_one(&runtime, store, &places, &name, &facts.path, &home_path)
                        .and_then(|proof| record(&home_path, proof))
                    {
                        Ok(()) => {
                            have += 1;
                            tally.copied += 1;
                            tally.bytes += facts.size;
                            tally.stored.count(target, facts.size);
                            let sent = tally.sent.entry(target.clone()).or_default();
                            sent.0 += facts.size;
                            sent.1 += started.elapsed().as_secs_f64();
                        }
                        Err(e) => errors.push(format!("{target}: {e}")),
                    }
                }
                if have < wish.copies {
                    tally.short.push(format!(
                        "{file} ({have} of {}: {})",
                        wish.copies,
                        errors.join("; ")
                    ));
                }
            });
            if let Err(e) = scanned {
                tally.short.push(format!("share {name}: {e}"));
                // A share not read whole says nothing of which files are gone.
                continue;
            }
            if w.cancelled() {
                return Err("cancelled".into());
            }
            self.keep_for(&runtime, &mut stores, &name, &root, w, &mut tally);
        }
        Ok(tally)
    }

    /// Retention on every target that has one, for share `name` (walked whole just
    /// now, from `root`): copies of files no longer on the box become versions, and
    /// versions past the retention are deleted.
    fn keep_for(
        &self,
        runtime: &tokio::runtime::Runtime,
        stores: &mut BTreeMap<String, Result<Store, String>>,
        name: &str,
        root: &std::path::Path,
        w: &crate::jobs::Work,
        tally: &mut Tally,
    ) {
        let kept: Vec<(String, u64)> = self.core.with_config(|c| {
            c.targets
                .iter()
                .filter_map(|t| Some((t.name.clone(), retention_secs(&t.terms)?)))
                .collect()
        });
        // Only a file certainly not there is gone: any other answer keeps its copy.
        let on_box = |rel: &str| {
            rel.split('/').any(|part| part == "..")
                || !matches!(
                    std::fs::symlink_metadata(root.join(rel)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound
                )
        };
        for (target, secs) in kept {
            w.step(&format!("retention on {target} for share {name}"));
            let done = store_for(stores, &self.targets, &target)
                .as_ref()
                .map_err(|e| e.clone())
                .and_then(|store| {
                    runtime
                        .block_on(store.keep_for(name, secs, &on_box))
                        .map_err(|e| e.to_string())
                });
            match done {
                Ok(done) => {
                    tally.kept.retired += done.retired;
                    tally.kept.pruned += done.pruned;
                    tally.kept.pruned_bytes += done.pruned_bytes;
                }
                Err(e) => tally
                    .short
                    .push(format!("retention on {target} for share {name}: {e}")),
            }
        }
    }

    /// Each share's home pool.
    fn homes(&self) -> BTreeMap<String, String> {
        self.core.with_config(|c| {
            c.shares
                .iter()
                .map(|s| (s.name.clone(), s.pool.clone()))
                .collect()
        })
    }

    /// What `rules` would copy now, per target, and in words (for simulate): one walk
    /// of every share, copying nothing.
    pub fn outlook(&self, rules: &RuleSet) -> (Vec<api::CopyOutlook>, String) {
        let mut xattrs = rules.xattr_names();
        xattrs.push(COPIES_XATTR.to_string());
        let homes = self.homes();
        let mut outlook = crate::copy_outlook::CopyOutlook::new(rules, crate::epoch::now() as i64);
        let mut unread = String::new();
        for share in self.nas.shares() {
            let name = share.name.to_string();
            let home = homes.get(&name).cloned().unwrap_or_default();
            if let Err(e) = rushes_placement::scan_share(&name, &share.path, &home, &xattrs, |f| {
                outlook.judge(&f)
            }) {
                unread.push_str(&format!("copies not looked at in share {name}: {e}\n"));
            }
        }
        let (copies, mut report) = outlook.finish(&self.targets);
        report.push_str(&unread);
        (copies, report)
    }

    /// The monitor's look: a run starts by itself when the rules' schedule is due and
    /// a rule keeps copies.
    pub fn tick(self: &Arc<Self>) {
        let Ok(rules) = self.copy_rules() else {
            return;
        };
        let Some(every) = rules.every else {
            return;
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed().as_secs() < every) {
            return;
        }
        if self.core.jobs.active_on(&run_target()).is_some() {
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        tracing::info!("copies reconcile started by the schedule");
        if let Err(e) = self.run() {
            tracing::warn!(error = %e.message, "cannot start a copies reconcile");
        }
    }
}

/// The first files of `short`, and how many more.
fn named(short: &[String]) -> String {
    let mut text = short
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if short.len() > NAMED {
        text.push_str(&format!("; and {} more", short.len() - NAMED));
    }
    text
}
