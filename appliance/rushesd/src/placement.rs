//! Placement as the API offers it: the rules in force (rushes.toml's `[placement]`),
//! replacing them only with rules that pass their check, `simulate` over every share's
//! files, `explain` of one file, and runs that move the files the rules say are on the
//! wrong pool, as jobs. The rules, plans and moves are `rushes_placement`'s; this file
//! gathers what they look at (pools, shares, accounts, files) and words the answers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rushes_api::{self as api, JobTarget, Severity, TargetKind};
use rushes_placement::{
    evaluate::Trigger, file_facts, move_file, recover, scan_share, Action, DataPlaces, Fill,
    FillNow, MoveError, MoveSpec, MoveWatch, Names, Plan, Planner, PoolState, RuleError, RuleSet,
};

use crate::alerts::Raise;
use crate::core::Core;
use crate::error::{ApiErr, ApiResult};
use crate::jobs::Work;
use crate::pool_load::PoolLoad;
use crate::pools::Pools;

/// Moves listed in a plan unless the caller asks for another number.
const DEFAULT_LIST: usize = 20;

/// The job that moves files to where the rules want them.
pub const RUN_KIND: &str = "placement-run";

/// How often a move that met a writer or a busy reader is tried again in one run.
const RETRIES: u32 = 5;

/// How often the monitor looks whether a scheduled or watermark run is due.
const AUTO_CHECK: Duration = Duration::from_secs(30);

/// A pool past its high watermark starts a run at most this often.
const WATERMARK_PAUSE: Duration = Duration::from_secs(300);

/// Others moving more than this many bytes a second on the pools a move involves make
/// them busy...
const BUSY_CLIENTS: u64 = 16 << 20;
/// ...and a move then goes no faster than this, whatever the run's cap.
const BUSY_PACE: u64 = 16 << 20;

/// A move's pace: the run's cap, and no more than [`BUSY_PACE`] while others move more
/// than [`BUSY_CLIENTS`] bytes a second on its pools ([`PoolLoad`]: what their devices
/// do apart from the move; where a pool has no device with counters, what clients do
/// over NFS and SMB on the whole box).
fn move_pace(cap: Option<u64>, clients: u64) -> Option<u64> {
    if clients <= BUSY_CLIENTS {
        return cap;
    }
    Some(cap.map_or(BUSY_PACE, |c| c.min(BUSY_PACE)))
}

/// What the monitor remembers between its looks.
#[derive(Default)]
struct Auto {
    checked: Option<Instant>,
    watermark_run: Option<Instant>,
    /// Pools past their high watermark, since when.
    over_since: std::collections::HashMap<String, Instant>,
}

pub struct Placement {
    core: Arc<Core>,
    pools: Arc<Pools>,
    /// Where moved data is, shared with the NFS service.
    places: Arc<DataPlaces>,
    /// The rate the last run moved at (bytes a second), for simulate's estimate.
    measured: Mutex<Option<u64>>,
    auto: Mutex<Auto>,
    /// What clients read and write each second, so moves back off while they are busy.
    live: Arc<rushes_nas::activity::LiveCounters>,
}

/// A share as placement sees it.
struct ShareHome {
    name: String,
    pool: String,
    root: PathBuf,
}

fn run_target() -> JobTarget {
    JobTarget {
        kind: TargetKind::Paths,
        name: "placement".into(),
    }
}

/// Make every configured pool that is mounted reachable for moved data; its name and
/// mount point.
fn reach_mounted_pools(core: &Core, places: &DataPlaces) -> Vec<(String, PathBuf)> {
    let pools: Vec<String> = core.with_config(|c| c.pools.iter().map(|p| p.name.clone()).collect());
    let mut mounted = Vec::new();
    for pool in pools {
        let dir = core.paths.mountpoint(&pool);
        if !rushes_storage::xfs::is_mounted(&dir) {
            continue;
        }
        if let Err(e) = places.add_pool(&pool, &dir) {
            tracing::error!(%pool, error = %e, "cannot reach the pool's data folder; files moved there cannot be read");
        }
        mounted.push((pool, dir));
    }
    mounted
}

/// Every mounted pool's data reachable for the NAS, then the moves a crash cut short
/// finished or rolled back and the removals it cut short settled, before any share is
/// served.
pub fn open_places(core: &Core, places: &DataPlaces) {
    for (pool, dir) in reach_mounted_pools(core, places) {
        for r in recover(places, &dir) {
            tracing::warn!(%pool, share = %r.share, path = %r.path, outcome = r.outcome, "a move cut short by a restart");
        }
        for f in rushes_placement::layout::recover_freeing(places, &dir) {
            tracing::warn!(%pool, object = %f.object, path = %f.path.display(), outcome = f.outcome, "a removal cut short by a restart");
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn problems(errors: &[RuleError]) -> Vec<api::RuleProblem> {
    errors
        .iter()
        .map(|e| api::RuleProblem {
            line: e.line,
            rule: e.rule.clone(),
            reason: e.reason.clone(),
        })
        .collect()
}

/// A rules file refused: every reason, one a line.
fn refused(errors: &[RuleError]) -> ApiErr {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ApiErr::new(422, "rules-refused", lines.join("\n"))
        .hint("fix the lines named and send the whole file again; nothing was changed")
}

impl Placement {
    /// Placement over `pools`, moving data through `places` (opened by [`open_places`]);
    /// a run the previous rushesd left going is started again.
    pub fn start(
        core: Arc<Core>,
        pools: Arc<Pools>,
        places: Arc<DataPlaces>,
        live: Arc<rushes_nas::activity::LiveCounters>,
    ) -> Arc<Self> {
        let me = Arc::new(Self {
            core,
            pools,
            places,
            measured: Mutex::new(None),
            auto: Mutex::default(),
            live,
        });
        me.publish_alerts();
        me.take_up_runs();
        me
    }

    /// A run cut short by a restart goes on: its moves were finished or rolled back by
    /// [`open_places`], and the rules say again what is left.
    fn take_up_runs(self: &Arc<Self>) {
        for left in self.core.jobs.interrupted(&[RUN_KIND]) {
            let rate = left
                .resume
                .as_ref()
                .and_then(|r| r.get("rate_bytes"))
                .and_then(|r| r.as_u64());
            let Some(w) = self.core.jobs.take_up(left.job.id) else {
                continue;
            };
            let me = Arc::clone(self);
            self.core.jobs.run(w, move |w| me.run_moves(w, rate));
        }
    }

    /// What rules may name: the shares and pools configured, the accounts.
    fn names(&self) -> Names {
        self.core.with_config(|c| Names {
            shares: c.shares.iter().map(|s| s.name.clone()).collect(),
            pools: c.pools.iter().map(|p| p.name.clone()).collect(),
            users: c.users.iter().map(|u| (u.name.clone(), u.uid)).collect(),
            groups: Vec::new(),
            targets: c.targets.iter().map(|t| t.name.clone()).collect(),
        })
    }

    /// The rules kept in rushes.toml, checked against the box as it is now; their lines
    /// are those of the file on disk when it reads as TOML.
    fn in_force(&self) -> Result<RuleSet, Vec<RuleError>> {
        let on_disk = std::fs::read_to_string(self.core.config_path())
            .ok()
            .filter(|t| t.parse::<toml::Table>().is_ok());
        let text = match on_disk {
            Some(text) => text,
            None => self.core.with_config(|c| c.to_toml()).unwrap_or_default(),
        };
        RuleSet::parse_config(&text, &self.names())
    }

    /// The rules in force, or why they are refused.
    pub fn rules_in_force(&self) -> ApiResult<RuleSet> {
        self.in_force().map_err(|errors| refused(&errors))
    }

    /// Rules kept in rushes.toml that no longer pass (a hand edit, a pool or share
    /// they name removed) raise an alert: nothing moves until they are fixed.
    pub fn publish_alerts(&self) {
        let raised = match self.in_force() {
            Ok(_) => Vec::new(),
            Err(errors) => vec![Raise::new(
                "placement-rules-refused",
                Severity::Warning,
                format!(
                    "the placement rules in rushes.toml are refused, so no data moves: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                "fix them and send them again with `rushesctl placement set FILE`",
            )],
        };
        self.core.alerts.publish("placement", raised);
    }

    pub fn view(&self) -> api::Placement {
        match self.in_force() {
            Ok(rules) => view_of(&rules),
            Err(errors) => api::Placement {
                problems: problems(&errors),
                ..api::Placement::default()
            },
        }
    }

    /// Put `text` in force, if every rule of it passes.
    pub fn set(&self, req: api::PlacementRules) -> ApiResult<api::Placement> {
        let rules = RuleSet::parse(&req.text, &self.names()).map_err(|e| refused(&e))?;
        let table: toml::Table = req
            .text
            .parse()
            .map_err(|e: toml::de::Error| ApiErr::bad_request(e.to_string()))?;
        self.core
            .save_config(|c| c.placement = (!table.is_empty()).then_some(table))
            .map_err(ApiErr::failed)?;
        tracing::info!(rules = rules.rules.len(), "placement rules in force");
        self.publish_alerts();
        Ok(view_of(&rules))
    }

    fn pool_states(&self) -> Vec<PoolState> {
        self.pools
            .pools()
            .into_iter()
            .map(|p| PoolState {
                refuses: match p.state {
                    api::PoolState::Online => None,
                    api::PoolState::Degraded => Some("it is degraded".into()),
                    api::PoolState::Failed => Some("it has failed".into()),
                    api::PoolState::Missing => Some("its disks are missing".into()),
                },
                name: p.name,
                size: p.size_bytes,
                used: p.used_bytes,
            })
            .collect()
    }

    /// Shares with their home pool and where their files are.
    fn shares(&self) -> Vec<ShareHome> {
        self.core.with_config(|c| {
            c.shares
                .iter()
                .map(|s| ShareHome {
                    name: s.name.clone(),
                    pool: s.pool.clone(),
                    root: self.core.paths.mountpoint(&s.pool).join(&s.name),
                })
                .collect()
        })
    }

    /// What `rules` would move now, over every share whose files may move, and the shares
    /// not looked at with the reason.
    fn plan(&self, rules: &RuleSet) -> (Plan, Vec<String>) {
        let pools = self.pool_states();
        let wanted = rules.xattr_names();
        let rate = *self.measured.lock().unwrap_or_else(|p| p.into_inner());
        let mut planner = Planner::new(rules, &pools, now(), rate);
        let mut skipped = Vec::new();
        for share in self.shares() {
            if !rushes_storage::xfs::is_mounted(&self.core.paths.mountpoint(&share.pool)) {
                skipped.push(format!(
                    "share {}: pool {} is not mounted",
                    share.name, share.pool
                ));
                continue;
            }
            if let Err(e) = scan_share(&share.name, &share.root, &share.pool, &wanted, |f| {
                planner.judge(&f)
            }) {
                skipped.push(format!("share {}: {e}", share.name));
            }
        }
        (planner.finish(), skipped)
    }

    /// The rules a simulate runs: `req.text`, or those in force.
    pub fn simulated_rules(&self, req: &api::SimulateRequest) -> ApiResult<RuleSet> {
        match &req.text {
            Some(text) => RuleSet::parse(text, &self.names()).map_err(|e| refused(&e)),
            None => self.in_force().map_err(|e| {
                refused(&e).hint(
                    "the rules in force are refused; fix them, or simulate others with --rule FILE",
                )
            }),
        }
    }

    /// Run the rules in force (or `req.text`) over every file, moving nothing.
    pub fn simulate(&self, req: api::SimulateRequest) -> ApiResult<api::PlacementPlan> {
        let rules = self.simulated_rules(&req)?;
        let list = req.list.unwrap_or(DEFAULT_LIST).min(10_000);
        let (plan, skipped) = self.plan(&rules);
        let mut report = plan.report(list);
        for s in &skipped {
            report.push_str(&format!("not looked at: {s}\n"));
        }
        let planned = |m: &rushes_placement::Move, held: Option<String>| api::PlannedMove {
            share: m.share.clone(),
            path: m.path.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            bytes: m.bytes,
            rule: m.rule.clone(),
            because: match m.because {
                rushes_placement::Because::Rule => "rule".into(),
                rushes_placement::Because::Watermark => "watermark".into(),
            },
            held,
        };
        Ok(api::PlacementPlan {
            files_seen: plan.files_seen,
            moves: plan
                .moves
                .iter()
                .take(list)
                .map(|m| planned(m, None))
                .collect(),
            moves_total: plan.moves.len() as u64,
            bytes: plan.bytes,
            held: plan
                .held
                .iter()
                .take(list)
                .map(|h| planned(&h.wanted, Some(h.reason.clone())))
                .collect(),
            held_total: plan.held.len() as u64,
            pools: plan.pools.clone(),
            rate: plan.rate,
            seconds: plan.seconds,
            skipped,
            copies: Vec::new(),
            report,
        })
    }

    /// Which rule decides `path` (`SHARE/PATH/IN/IT`), and why the others before it did not.
    pub fn explain(&self, path: &str) -> ApiResult<api::PlacementExplain> {
        let rules = self.in_force().map_err(|e| {
            refused(&e)
                .hint("the rules in force are refused; fix them first (`rushesctl placement`)")
        })?;
        let trimmed = path.trim_start_matches('/');
        let (share, inside) = trimmed.split_once('/').ok_or_else(|| {
            ApiErr::bad_request(format!(
                "{path:?} names no file: give SHARE/PATH, e.g. media/day1/A001.mov"
            ))
        })?;
        let ShareHome {
            pool: home, root, ..
        } = self
            .shares()
            .into_iter()
            .find(|s| s.name == share)
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no share {share:?}"))
                    .hint("`rushesctl shares` lists them")
            })?;
        let facts =
            file_facts(share, &root, &home, inside, &rules.xattr_names()).map_err(|e| match e {
                rushes_placement::FileError::Io { .. } => ApiErr::not_found(e.to_string()),
                _ => ApiErr::bad_request(e.to_string()),
            })?;
        let pools = self.pool_states();
        let fill = FillNow {
            rules: &rules,
            pools: &pools,
        };
        let at = now();
        let verdicts = rules.explain(&facts, at, Trigger::Schedule, &fill);
        let decision = rules.decide(&facts, at, Trigger::Schedule, &fill);
        let outcome = match (&decision.action, decision.rule) {
            (Some(Action::Place(to)), Some(i)) if *to == facts.pool => {
                format!(
                    "rule {} places it on {to}, where it is",
                    rules.rules[i].name
                )
            }
            (Some(Action::Place(to)), Some(i)) => {
                format!(
                    "rule {} moves it from {} to {to}",
                    rules.rules[i].name, facts.pool
                )
            }
            (Some(Action::Pin), Some(i)) => {
                format!("rule {} pins it on {}", rules.rules[i].name, facts.pool)
            }
            (Some(Action::Exclude), Some(i)) => {
                format!("rule {} excludes it: no rule moves it", rules.rules[i].name)
            }
            _ => format!("no rule matches: its data stays on {}", facts.pool),
        };
        let at_create = rules
            .decide(&facts, at, Trigger::Create, &fill)
            .rule
            .map(|i| rules.rules[i].name.clone());
        Ok(api::PlacementExplain {
            share: share.to_string(),
            path: inside.to_string(),
            size_bytes: facts.size,
            pool: facts.pool.clone(),
            verdicts: verdicts
                .into_iter()
                .map(|v| api::RuleVerdict {
                    rule: v.rule,
                    matched: v.matched,
                    why: v.why,
                })
                .collect(),
            outcome,
            at_create,
        })
    }
}

/// Why a run starts by itself now, if it should: the schedule (`every`) is due since the
/// last run began (`last_run` seconds ago, none if never), or a pool that watermark rules
/// empty is past its high watermark and no watermark run began in the last pause.
fn due(
    every: Option<u64>,
    last_run: Option<u64>,
    over: &[String],
    watermark_run_ago: Option<Duration>,
) -> Option<String> {
    if let Some(every) = every {
        if last_run.is_none_or(|ago| ago >= every) {
            return Some(format!(
                "the schedule: every {}",
                rushes_placement::units::show_span(every)
            ));
        }
    }
    if !over.is_empty() && watermark_run_ago.is_none_or(|ago| ago >= WATERMARK_PAUSE) {
        return Some(format!("past the high watermark: {}", over.join(", ")));
    }
    None
}

/// A pool past its high watermark.
struct Over {
    pool: String,
    /// How full it is, in percent.
    pct: u64,
    high: u8,
    /// For how long it has been past `high`...
    since: Duration,
    /// ...and after how long that is an alert (its `alert_after`).
    after: Duration,
}

/// Alerts for pools past their high watermark longer than their `alert_after`.
fn full_alerts(over: &[Over]) -> Vec<Raise> {
    over.iter()
        .filter(|o| o.since >= o.after)
        .map(|Over { pool, pct, high, since, .. }| {
            Raise::new(
                format!("pool-stays-full:{pool}"),
                Severity::Warning,
                format!(
                    "pool {pool} is {pct} % full, past its high watermark {high} % for {}: placement runs are not bringing it down",
                    rushes_placement::units::show_span(since.as_secs())
                ),
                "see why with `rushesctl placement simulate` (moves held back, or no watermark rule for the pool); add a rule or room on the target",
            )
        })
        .collect()
}

impl Placement {
    /// The monitor's look: start a run when the schedule is due or a pool that watermark
    /// rules empty is past its high watermark, and raise an alert for a pool that stays
    /// past it.
    pub fn tick(self: &Arc<Self>) {
        let mut auto = self.auto.lock().unwrap_or_else(|p| p.into_inner());
        if auto.checked.is_some_and(|t| t.elapsed() < AUTO_CHECK) {
            return;
        }
        auto.checked = Some(Instant::now());
        let Ok(rules) = self.in_force() else {
            return;
        };
        let pools = self.pool_states();
        let fill = FillNow {
            rules: &rules,
            pools: &pools,
        };
        let mut over = Vec::new();
        for p in &pools {
            let Some(w) = rules.watermark(&p.name).filter(|_| fill.over_high(&p.name)) else {
                auto.over_since.remove(&p.name);
                continue;
            };
            let since = *auto
                .over_since
                .entry(p.name.clone())
                .or_insert_with(Instant::now);
            let pct = rushes_placement::plan::percent(p.used, p.size);
            over.push(Over {
                pool: p.name.clone(),
                pct,
                high: w.high,
                since: since.elapsed(),
                after: Duration::from_secs(w.alert_after),
            });
        }
        self.core
            .alerts
            .publish("placement-pools", full_alerts(&over));
        if self.core.jobs.active_on(&run_target()).is_some() {
            return;
        }
        let emptied: Vec<String> = over
            .iter()
            .filter(|o| rules.empties(&o.pool))
            .map(|o| o.pool.clone())
            .collect();
        let last_run = self
            .core
            .jobs
            .list()
            .iter()
            .filter(|j| j.kind == RUN_KIND)
            .map(|j| j.started)
            .max()
            .map(|t| (now().max(0) as u64).saturating_sub(t));
        let Some(why) = due(
            rules.every,
            last_run,
            &emptied,
            auto.watermark_run.map(|t| t.elapsed()),
        ) else {
            return;
        };
        if !emptied.is_empty() {
            auto.watermark_run = Some(Instant::now());
        }
        drop(auto);
        tracing::info!(reason = %why, "placement run started by itself");
        if let Err(e) = self.run(api::PlacementRun::default()) {
            tracing::warn!(error = %e.message, "cannot start a placement run");
        }
    }

    /// Start a run: every file the rules in force place on another pool than its data's
    /// is moved there, one at a time, as one job.
    pub fn run(self: &Arc<Self>, req: api::PlacementRun) -> ApiResult<api::Job> {
        if let Some(job) = self.core.jobs.active_on(&run_target()) {
            return Err(ApiErr::new(
                409,
                "run-under-way",
                format!("placement run {} is still under way", job.id),
            )
            .hint(format!("follow it with `rushesctl jobs watch {}`", job.id)));
        }
        self.in_force().map_err(|e| {
            refused(&e)
                .hint("the rules in force are refused; fix them first (`rushesctl placement`)")
        })?;
        let work = self.core.jobs.create(RUN_KIND, run_target(), true);
        work.resume_with(serde_json::json!({ "rate_bytes": req.rate_bytes }));
        let me = Arc::clone(self);
        Ok(self
            .core
            .jobs
            .run(work, move |w| me.run_moves(w, req.rate_bytes)))
    }

    fn run_moves(&self, w: &Work, rate: Option<u64>) -> Result<(), String> {
        w.step("looking at every file");
        let rules = self
            .in_force()
            .map_err(|e| format!("the rules in force are refused: {}", e[0]))?;
        // Pools made since the start are reachable too.
        reach_mounted_pools(&self.core, &self.places);
        let (plan, skipped) = self.plan(&rules);
        let shares: std::collections::HashMap<String, ShareHome> = self
            .shares()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        for s in &skipped {
            tracing::info!(reason = %s, "placement run: not looked at");
        }
        let total: u64 = plan.moves.iter().map(|m| m.bytes).sum();
        let started = Instant::now();
        let (mut moved, mut bytes_done, mut failed) = (0u64, 0u64, Vec::new());
        let mut open = 0u64;
        // Each pair of pools' devices, read across the run's moves between them (a move
        // of a small file is over before two readings make a rate).
        let mut loads: std::collections::HashMap<(String, String), Option<PoolLoad>> =
            std::collections::HashMap::new();
        for m in &plan.moves {
            if w.cancelled() {
                return Err(format!(
                    "stopped after {moved} of {} moves; each file is whole on one pool",
                    plan.moves.len()
                ));
            }
            let Some(share) = shares.get(&m.share) else {
                continue;
            };
            let spec = MoveSpec {
                share: m.share.clone(),
                share_root: share.root.clone(),
                path: m.path.clone(),
                home: share.pool.clone(),
                home_root: self.core.paths.mountpoint(&share.pool),
                to: m.to.clone(),
            };
            let to_root = self.core.paths.mountpoint(&m.to);
            let load = loads
                .entry((m.from.clone(), m.to.clone()))
                .or_insert_with(|| PoolLoad::of(&[&self.core.paths.mountpoint(&m.from), &to_root]));
            let mut watch = RunWatch {
                w,
                live: &self.live,
                load: load.as_ref(),
                moved: bytes_done,
                what: format!(
                    "moving {}/{} to {}",
                    m.share,
                    m.path.trim_start_matches('/'),
                    m.to
                ),
                base: bytes_done,
                total,
                started,
                rate,
                backing_off: Default::default(),
            };
            let mut tries = 0;
            let result = loop {
                match move_file(&self.places, &spec, &to_root, &mut watch) {
                    Err(e) if e.is_retry() && tries < RETRIES && !w.cancelled() => {
                        tries += 1;
                        tracing::info!(share = %m.share, path = %m.path, reason = %e, "move tried again");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    other => break other,
                }
            };
            match result {
                Ok(done) => {
                    if let Some(done) = done {
                        tracing::info!(share = %m.share, path = %m.path, from = %done.from, to = %done.to, bytes = done.bytes, blake3 = %done.blake3, rule = %m.rule, "moved");
                        moved += 1;
                    }
                }
                Err(MoveError::Cancelled) => continue,
                Err(MoveError::Open(_)) => {
                    tracing::info!(share = %m.share, path = %m.path, "open over SMB: left where it is for a later run");
                    open += 1;
                }
                Err(e) => {
                    tracing::warn!(share = %m.share, path = %m.path, error = %e, "move failed");
                    failed.push(format!("{}{e}", m.share));
                }
            }
            bytes_done += m.bytes;
        }
        let secs = started.elapsed().as_secs_f64();
        if moved > 0 && secs > 0.0 {
            *self.measured.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((bytes_done as f64 / secs) as u64);
        }
        self.core.alerts.publish(
            "placement-moves",
            match failed.first() {
                None => Vec::new(),
                Some(first) => vec![Raise::new(
                    "placement-moves-failing",
                    Severity::Warning,
                    format!(
                        "{} of {} moves failed in the last placement run; the first: {first}",
                        failed.len(),
                        plan.moves.len()
                    ),
                    "the files are whole where they were; see `rushesctl logs` for each, fix the cause and run `rushesctl placement run` again",
                )],
            },
        );
        if !failed.is_empty() {
            return Err(format!(
                "{} of {} moves failed: {}",
                failed.len(),
                plan.moves.len(),
                failed.join("; ")
            ));
        }
        w.step(&format!(
            "done: moved {moved} files ({}); {} held back; {open} open over SMB, left for a later run",
            rushes_placement::units::show_size(bytes_done),
            plan.held.len()
        ));
        Ok(())
    }
}

/// A move's progress as the run's job shows it.
struct RunWatch<'a> {
    w: &'a Work,
    live: &'a rushes_nas::activity::LiveCounters,
    /// The devices under the move's two pools, when they have counters.
    load: Option<&'a PoolLoad>,
    /// Bytes the run has copied so far.
    moved: u64,
    what: String,
    /// Bytes of the run's moves before this one.
    base: u64,
    total: u64,
    started: Instant,
    rate: Option<u64>,
    /// What others moved a second on the move's pools when it last backed off for them.
    backing_off: std::cell::Cell<Option<u64>>,
}

impl MoveWatch for RunWatch<'_> {
    fn progress(&mut self, done: u64, file_total: u64) {
        // The copy's bytes; the check reads each window back while the next is copied.
        let so_far = self.base + done.min(file_total);
        self.moved = so_far;
        let secs = self.started.elapsed().as_secs_f64();
        let rate = (secs > 0.5).then(|| so_far as f64 / secs);
        // Says why the move is slow while it gives way to clients.
        let step = match self.backing_off.get() {
            Some(others) => format!(
                "{}, backing off: clients move {}/s on its pools",
                self.what,
                rushes_placement::units::show_size(others)
            ),
            None => self.what.clone(),
        };
        self.w.progress_at(&step, so_far, self.total, "bytes", rate);
    }

    fn cancelled(&self) -> bool {
        self.w.cancelled()
    }

    fn pace(&self) -> Option<u64> {
        let others = match self.load {
            Some(load) => load.others(self.moved),
            // The last whole second's client bytes (the current one is still filling).
            None => self
                .live
                .seconds(2)
                .first()
                .map_or(0, |s| s.read_bytes + s.write_bytes),
        };
        let pace = move_pace(self.rate, others);
        self.backing_off.set((pace != self.rate).then_some(others));
        pace
    }
}

fn view_of(rules: &RuleSet) -> api::Placement {
    api::Placement {
        rules: rules
            .rules
            .iter()
            .map(|r| api::PlacementRule {
                name: r.name.clone(),
                action: match &r.action {
                    Action::Place(_) => "place",
                    Action::Pin => "pin",
                    Action::Exclude => "exclude",
                    Action::Copy => "copy",
                }
                .into(),
                pool: match &r.action {
                    Action::Place(p) => Some(p.clone()),
                    _ => None,
                },
                copies: r.copies.as_ref().map(|c| c.copies),
                targets: r
                    .copies
                    .as_ref()
                    .map(|c| c.targets.clone())
                    .unwrap_or_default(),
                on: r.triggers.words().into_iter().map(String::from).collect(),
                conditions: r.conditions.iter().map(|c| c.to_string()).collect(),
            })
            .collect(),
        watermarks: rules
            .watermarks
            .iter()
            .map(|w| api::PoolWatermark {
                pool: w.pool.clone(),
                high: w.high,
                low: w.low,
                weight: match w.weight {
                    rushes_placement::Weight::OldestAccess => "oldest-access",
                    rushes_placement::Weight::OldestModify => "oldest-modify",
                    rushes_placement::Weight::Largest => "largest",
                }
                .into(),
            })
            .collect(),
        every_secs: rules.every,
        problems: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_by_itself_when_the_schedule_is_due_or_a_pool_is_full() {
        let day = 86_400;
        // Never run, or a day since the last: the schedule is due.
        assert!(due(Some(day), None, &[], None)
            .unwrap()
            .contains("every 1d"));
        assert!(due(Some(day), Some(day), &[], None).is_some());
        assert_eq!(due(Some(day), Some(day - 1), &[], None), None);
        assert_eq!(
            due(None, None, &[], None),
            None,
            "no schedule, nothing full"
        );
        // A full pool starts one, but not again within the pause.
        let fast = vec!["fast".to_string()];
        assert!(due(None, Some(10), &fast, None)
            .unwrap()
            .contains("past the high watermark: fast"));
        assert_eq!(
            due(None, Some(10), &fast, Some(Duration::from_secs(60))),
            None
        );
        assert!(due(None, Some(10), &fast, Some(WATERMARK_PAUSE)).is_some());
    }

    #[test]
    fn moves_slow_down_while_clients_are_busy() {
        let mib = 1 << 20;
        assert_eq!(
            move_pace(None, 0),
            None,
            "a quiet box: as fast as the pools go"
        );
        assert_eq!(move_pace(Some(200 * mib), BUSY_CLIENTS), Some(200 * mib));
        assert_eq!(move_pace(None, 400 * mib), Some(BUSY_PACE));
        assert_eq!(move_pace(Some(200 * mib), 400 * mib), Some(BUSY_PACE));
        assert_eq!(
            move_pace(Some(mib), 400 * mib),
            Some(mib),
            "a lower cap holds"
        );
    }

    #[test]
    fn a_pool_past_its_high_watermark_alerts_only_once_it_stays_there() {
        let after = Duration::from_secs(rushes_placement::rules::STAYS_FULL_SECS);
        let over = |since: u64| {
            vec![Over {
                pool: "fast".to_string(),
                pct: 91,
                high: 85,
                since: Duration::from_secs(since),
                after,
            }]
        };
        assert!(
            full_alerts(&over(60)).is_empty(),
            "a run may still bring it down"
        );
        let raised = full_alerts(&over(after.as_secs()));
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].id, "pool-stays-full:fast");
        assert!(
            raised[0]
                .message
                .contains("91 % full, past its high watermark 85 % for 15m"),
            "{}",
            raised[0].message
        );
    }
}
