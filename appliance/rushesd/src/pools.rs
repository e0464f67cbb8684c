//! Pools and disks: md arrays with XFS mounted under `/pools/NAME`, made, grown,
//! repaired, scrubbed and destroyed as jobs, with their alerts. A pool's long work goes
//! through the jobs service and is taken up again after a restart where md carries on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rushes_api::{self as api, Disk, JobTarget, MemberState, PoolClass, PoolState, Severity};
use rushes_storage::{md, speed, wipe, xfs};

use crate::alerts::Raise;
use crate::config::PoolConfig;
use crate::core::Core;
use crate::epoch::now;
use crate::error::{ApiErr, ApiResult};
use crate::jobs::Work;
use crate::state_file::{read_state, write_state};

/// The kinds of job this subsystem runs, and takes up after a restart.
const KINDS: [&str; 5] = [
    "create-pool",
    "grow-pool",
    "replace-disk",
    "scrub",
    "measure-pool",
];

#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct ScrubRecord {
    finished: u64,
    mismatches: u64,
}

/// A pool's measured read rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadRecord {
    pub mb_s: f64,
    /// Seconds since the epoch.
    pub at: u64,
}

#[derive(Default)]
struct State {
    /// Why a pool could not be assembled or mounted.
    problems: HashMap<String, String>,
    scrubs: HashMap<String, ScrubRecord>,
    reads: HashMap<String, ReadRecord>,
    /// When a pool was last measured without being asked, so a failing measurement is
    /// not retried at every look.
    measure_tried: HashMap<String, Instant>,
}

const READ_RATES: &str = "pool-read-rates.json";

pub struct Pools {
    core: Arc<Core>,
    state: Mutex<State>,
    /// Held while md arrays are created or changed: one layout change at a time.
    ops: Mutex<()>,
}

/// Frees a job's claimed disks and asks for a fresh look when the job ends, however it
/// ends.
struct Claims<'a> {
    core: &'a Core,
    job: u64,
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        self.core.inventory.release(self.job);
        self.core.poke();
    }
}

fn label(d: &Disk) -> String {
    if d.serial.is_empty() {
        d.name.clone()
    } else {
        format!("{} ({})", d.name, d.serial)
    }
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Pool names become md array names and folder names: keep them plain.
fn check_pool_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(
            ApiErr::new(400, "bad-name", format!("pool name {name:?} is not usable")).hint(
                "use 1-32 lower-case letters, digits, '-' or '_', starting with a letter or digit",
            ),
        )
    }
}

impl Pools {
    /// Assemble and mount the pools the config lists, and take up the pool jobs a
    /// previous rushesd left running.
    pub fn start(core: Arc<Core>) -> Arc<Self> {
        let scrubs = match read_state(&core.paths.state_dir.join("scrubs.json")) {
            Ok(s) => s.unwrap_or_default(),
            Err(problem) => {
                core.alerts.raise_event(
                    "pools",
                    crate::alerts::damaged_file(&core.paths.state_dir.join("scrubs.json"), problem),
                );
                HashMap::new()
            }
        };
        let reads = match read_state(&core.paths.state_dir.join(READ_RATES)) {
            Ok(r) => r.unwrap_or_default(),
            Err(problem) => {
                core.alerts.raise_event(
                    "pools",
                    crate::alerts::damaged_file(&core.paths.state_dir.join(READ_RATES), problem),
                );
                HashMap::new()
            }
        };
        let pools = Arc::new(Self {
            core,
            state: Mutex::new(State {
                scrubs,
                reads,
                ..Default::default()
            }),
            ops: Mutex::new(()),
        });
        pools.bring_up_pools();
        pools.take_up_jobs();
        pools
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ops_lock(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mountpoint(&self, pool: &str) -> PathBuf {
        self.core.paths.mountpoint(pool)
    }

    fn configs(&self) -> Vec<PoolConfig> {
        self.core.with_config(|c| c.pools.clone())
    }

    /// From the monitor: take pulled disks out of their arrays, start scrubs that are
    /// due, and publish the pools' alerts.
    pub fn tick(self: &Arc<Self>) {
        for pool in &self.configs() {
            let Some(kernel) = md::kernel_name(&pool.name) else {
                continue;
            };
            let Some(status) = md::status(&self.core.paths.sys, &kernel) else {
                continue;
            };
            let gone: Vec<&str> = status
                .members
                .iter()
                .filter(|m| !self.core.paths.sys.join("block").join(&m.disk).exists())
                .map(|m| m.disk.as_str())
                .collect();
            if !gone.is_empty() {
                tracing::warn!(pool = %pool.name, disks = ?gone, "member disks are gone: taking them out of the array");
                if let Err(e) = md::remove_detached(&pool.name) {
                    tracing::warn!(pool = %pool.name, error = %e, "cannot remove pulled members");
                }
            }
        }
        self.scheduled_scrubs();
        self.unmeasured_pools();
        self.publish_alerts();
    }

    /// The disks, with what uses each one named.
    pub fn disks(&self) -> Vec<Disk> {
        self.core.disks()
    }

    /// Resolve disks named by kernel name or serial, refusing the boot stick, disks in
    /// use, and disks with data the admin did not agree to wipe.
    fn pick_disks(&self, wanted: &[String], wipe: &[String]) -> ApiResult<Vec<Disk>> {
        // About to act on them: look at the disks as they are now.
        self.core.inventory.rescan();
        let disks = self.core.disks();
        let mut picked: Vec<Disk> = Vec::new();
        for want in wanted {
            let Some(d) = disks
                .iter()
                .find(|d| &d.name == want || (!d.serial.is_empty() && &d.serial == want))
            else {
                return Err(
                    ApiErr::new(400, "unknown-disk", format!("there is no disk {want:?}"))
                        .hint("`rushesctl disks` lists the disks by name and serial"),
                );
            };
            if picked.iter().any(|p| p.name == d.name) {
                return Err(ApiErr::bad_request(format!(
                    "disk {} is listed twice",
                    d.name
                )));
            }
            if d.boot {
                return Err(ApiErr::new(
                    409,
                    "disk-is-boot",
                    format!("{} is the Rushes boot stick: it holds RUSHES-BOOT and RUSHES-CFG and can never be part of a pool", label(d)),
                )
                .hint("choose other disks; `rushesctl disks` marks the boot stick"));
            }
            if let Some(user) = &d.in_use_by {
                return Err(ApiErr::new(
                    409,
                    "disk-in-use",
                    format!(
                        "{} is in use by {}",
                        label(d),
                        user.replace("mounted", "a mounted file system")
                    ),
                )
                .hint("choose a disk that `rushesctl disks` shows as free"));
            }
            let agreed = wipe
                .iter()
                .any(|w| w == &d.name || (!d.serial.is_empty() && w == &d.serial));
            if !d.contents.is_empty() && !agreed {
                let what: Vec<&str> = d.contents.iter().map(|c| c.as_str()).collect();
                return Err(ApiErr::new(
                    409,
                    "disk-has-data",
                    format!(
                        "{} ({}) is not empty: it holds {}",
                        d.name,
                        d.serial,
                        what.join(", ")
                    ),
                )
                .hint(format!(
                    "if its data may be erased, confirm with --wipe {}",
                    d.name
                )));
            }
            picked.push(d.clone());
        }
        Ok(picked)
    }

    /// Run `work` as the job `w`; its claimed disks are freed at the end.
    fn run_job(
        self: &Arc<Self>,
        w: Work,
        work: impl FnOnce(&Arc<Pools>, &Work) -> Result<(), String> + Send + 'static,
    ) -> api::Job {
        let me = Arc::clone(self);
        self.core.jobs.run(w, move |w| {
            let _claims = Claims {
                core: &me.core,
                job: w.id(),
            };
            work(&me, w)
        })
    }

    /// The part of a pool job that md does on its own, and what follows it: the part a
    /// restarted rushesd takes up again.
    fn sync_phase(&self, w: &Work, kind: &str, pool: &str) -> Result<(), String> {
        w.resume_with(serde_json::json!({ "phase": "sync" }));
        match kind {
            "create-pool" => {
                self.follow_sync(w, pool, "first sync; the pool is usable meanwhile")?;
            }
            "grow-pool" => {
                self.follow_sync(w, pool, "reshaping; the pool serves meanwhile")?;
                w.step("growing the file system");
                xfs::grow(&self.mountpoint(pool)).map_err(|e| e.to_string())?;
            }
            "replace-disk" => {
                let st = self.follow_sync(w, pool, "rebuilding; the pool serves meanwhile")?;
                if st.degraded > 0 {
                    return Err(format!(
                        "the rebuild ended with {} member(s) still missing",
                        st.degraded
                    ));
                }
            }
            "scrub" => {
                let st = self.follow_sync(w, pool, "checking every stripe")?;
                self.record_scrub(
                    pool,
                    ScrubRecord {
                        finished: now(),
                        mismatches: st.mismatch_cnt,
                    },
                );
            }
            other => return Err(format!("no sync phase for a {other}")),
        }
        Ok(())
    }

    /// Pool jobs the previous rushesd left running: those that were following md's own
    /// work go on following it (md carried on meanwhile); the others cannot be picked
    /// up halfway and say so.
    fn take_up_jobs(self: &Arc<Self>) {
        for left in self.core.jobs.interrupted(&KINDS) {
            let job = left.job;
            let pool = job.target.name.clone();
            let phase = left
                .resume
                .as_ref()
                .and_then(|r| r.get("phase"))
                .and_then(|p| p.as_str())
                .unwrap_or("");
            if phase != "sync" {
                self.core.jobs.give_up(
                    job.id,
                    &format!("rushesd restarted while this {} was in a step that cannot be picked up halfway; check the pool (rushesctl pool show {pool}) and start it again", job.kind),
                );
                continue;
            }
            if md::kernel_name(&pool).is_none() {
                self.core.jobs.give_up(
                    job.id,
                    &format!(
                        "rushesd restarted and pool {pool} is not assembled now; see its alert"
                    ),
                );
                continue;
            }
            let Some(w) = self.core.jobs.take_up(job.id) else {
                continue;
            };
            let kind = job.kind.clone();
            self.run_job(w, move |m, w| m.sync_phase(w, &kind, &pool));
        }
    }

    /// Follow md's background work on `pool` into job `w` until the array is idle and
    /// whole. md may take a moment to start, so idle counts only after `grace`. A
    /// cancelled job stops md's check (only checks can be cancelled).
    fn follow_sync(&self, w: &Work, pool: &str, what: &str) -> Result<md::ArrayStatus, String> {
        let begun = Instant::now();
        let grace = Duration::from_secs(3);
        loop {
            let kernel = md::kernel_name(pool)
                .ok_or_else(|| format!("the md array of pool {pool} is gone"))?;
            let st = md::status(&self.core.paths.sys, &kernel)
                .ok_or_else(|| format!("cannot read the state of {kernel}"))?;
            if w.cancelled() {
                if st.syncing() {
                    md::stop_sync(&kernel).map_err(|e| e.to_string())?;
                }
                let at = st
                    .sync_fraction()
                    .map(|f| format!(" at {:.0}%", f * 100.0))
                    .unwrap_or_default();
                return Err(format!("md's {} was stopped{at}", st.sync_action));
            }
            if st.syncing() {
                let fraction = st.sync_fraction();
                let speed = st
                    .sync_speed
                    .map(|k| format!(" at {} MB/s", k * 1024 / 1_000_000))
                    .unwrap_or_default();
                let pct = fraction
                    .map(|f| format!(" {:.0}%", f * 100.0))
                    .unwrap_or_default();
                let step = format!("{what} ({}){pct}{speed}", st.sync_action);
                match st.sync_completed {
                    Some((done, total)) => w.progress_at(
                        &step,
                        done * 512,
                        total * 512,
                        "bytes",
                        st.sync_speed.map(|k| (k * 1024) as f64),
                    ),
                    None => w.step(&step),
                }
            } else if begun.elapsed() > grace {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    pub fn create_pool(self: &Arc<Self>, req: api::CreatePool) -> ApiResult<api::Job> {
        check_pool_name(&req.name)?;
        if self.core.with_config(|c| c.pool(&req.name).is_some()) {
            return Err(ApiErr::new(
                409,
                "exists",
                format!("a pool called {} exists already", req.name),
            ));
        }
        let n = req.disks.len();
        if n < req.level.min_disks() {
            return Err(ApiErr::new(
                400,
                "too-few-disks",
                format!(
                    "{} needs at least {} disks; {n} given",
                    req.level,
                    req.level.min_disks()
                ),
            )
            .hint("add disks, or choose a level that needs fewer (raid1: 2, raid5: 3, raid6: 4)"));
        }
        if n > req.level.max_disks() {
            return Err(ApiErr::new(
                400,
                "too-many-disks",
                format!(
                    "{} takes at most {} disk(s); {n} given",
                    req.level,
                    req.level.max_disks()
                ),
            ));
        }
        let _ops = self.ops_lock();
        let disks = self.pick_disks(&req.disks, &req.wipe)?;
        let class = req.class.unwrap_or(if disks.iter().any(|d| d.rotational) {
            PoolClass::Capacity
        } else {
            PoolClass::Fast
        });
        let w = self
            .core
            .jobs
            .create("create-pool", JobTarget::pool(&req.name), false);
        self.core.inventory.claim(&disks, w.id());
        let smallest = disks.iter().map(|d| d.size_bytes).min().unwrap_or(0);
        tracing::info!(pool = %req.name, level = %req.level, disks = ?disks.iter().map(|d| &d.name).collect::<Vec<_>>(),
            usable = %gb(req.level.usable_bytes(n, smallest)), "creating pool");
        let name = req.name.clone();
        let level = req.level;
        Ok(self.run_job(w, move |m, w| {
            let paths: Vec<PathBuf> = disks
                .iter()
                .map(|d| PathBuf::from("/dev").join(&d.name))
                .collect();
            {
                let _ops = m.ops_lock();
                w.step("erasing the disks' old signatures");
                for p in &paths {
                    wipe::wipe(p).map_err(|e| e.to_string())?;
                }
                w.step("creating the md array");
                md::create(&name, level, &paths).map_err(|e| e.to_string())?;
                let uuid = md::uuid(&name).map_err(|e| e.to_string())?;
                w.step("making the XFS file system");
                let dev = md::device_path(&name);
                xfs::mkfs(&dev, &name).map_err(|e| e.to_string())?;
                w.step("mounting");
                xfs::mount(&dev, &m.mountpoint(&name)).map_err(|e| e.to_string())?;
                let pool = PoolConfig {
                    name: name.clone(),
                    level,
                    class,
                    uuid,
                    members: disks.iter().map(|d| d.serial.clone()).collect(),
                    scrub_days: 30,
                };
                m.core.save_config(|c| c.pools.push(pool))?;
                m.record_scrub(
                    &name,
                    ScrubRecord {
                        finished: now(),
                        mismatches: 0,
                    },
                );
            }
            m.core.inventory.release(w.id());
            m.core.poke();
            if level.fault_tolerance(paths.len()) > 0 {
                m.sync_phase(w, "create-pool", &name)?;
            }
            Ok(())
        }))
    }

    fn pool_config(&self, name: &str) -> ApiResult<PoolConfig> {
        self.core
            .with_config(|c| c.pool(name).cloned())
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no pool {name:?}"))
                    .hint("`rushesctl pools` lists them")
            })
    }

    fn assembled(&self, pool: &str) -> ApiResult<(String, md::ArrayStatus)> {
        md::kernel_name(pool)
            .and_then(|k| md::status(&self.core.paths.sys, &k).map(|s| (k, s)))
            .ok_or_else(|| {
                ApiErr::new(
                    409,
                    "pool-unavailable",
                    format!("pool {pool} is not assembled"),
                )
                .hint("check its disks with `rushesctl disks` and the alerts")
            })
    }

    fn busy_check(&self, pool: &str) -> ApiResult<()> {
        // A measurement takes a few seconds: other work waits for it, not refused.
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(15)
            && self
                .core
                .jobs
                .active_on(&JobTarget::pool(pool))
                .is_some_and(|j| j.kind == "measure-pool")
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(job) = self.core.jobs.active_on(&JobTarget::pool(pool)) {
            return Err(ApiErr::new(
                409,
                "busy",
                format!(
                    "pool {pool} is busy with job {} ({}: {})",
                    job.id, job.kind, job.step
                ),
            )
            .hint(format!("wait for it: rushesctl jobs watch {}", job.id)));
        }
        Ok(())
    }

    pub fn grow_pool(self: &Arc<Self>, name: &str, req: api::GrowPool) -> ApiResult<api::Job> {
        let pool = self.pool_config(name)?;
        if !pool.level.can_grow() {
            return Err(ApiErr::new(
                409,
                "cannot-grow",
                format!("a {} pool cannot be grown onto more disks", pool.level),
            )
            .hint("create a second pool on the new disks, or rebuild this one as raid5 or raid6"));
        }
        if req.disks.is_empty() {
            return Err(ApiErr::bad_request("name at least one disk to add"));
        }
        self.busy_check(name)?;
        let (_, status) = self.assembled(name)?;
        if status.degraded > 0 {
            return Err(
                ApiErr::new(409, "degraded", format!("pool {name} is degraded")).hint(format!(
                    "replace the failed disk first: rushesctl pool replace {name} DISK"
                )),
            );
        }
        let _ops = self.ops_lock();
        let disks = self.pick_disks(&req.disks, &req.wipe)?;
        let w = self
            .core
            .jobs
            .create("grow-pool", JobTarget::pool(name), false);
        self.core.inventory.claim(&disks, w.id());
        let name = name.to_string();
        let target = status.raid_disks as usize + disks.len();
        Ok(self.run_job(w, move |m, w| {
            {
                let _ops = m.ops_lock();
                w.step("erasing the new disks");
                for d in &disks {
                    let p = PathBuf::from("/dev").join(&d.name);
                    wipe::wipe(&p).map_err(|e| e.to_string())?;
                    md::add(&name, &p).map_err(|e| e.to_string())?;
                }
                w.step(&format!("reshaping onto {target} disks"));
                if let Err(e) = md::grow(&name, target) {
                    return Err(format!("{e}; the new disks stay in the pool as spares"));
                }
                let serials: Vec<String> = disks.iter().map(|d| d.serial.clone()).collect();
                m.core.save_config(|c| {
                    if let Some(p) = c.pools.iter_mut().find(|p| p.name == name) {
                        p.members.extend(serials);
                    }
                })?;
            }
            m.core.inventory.release(w.id());
            m.sync_phase(w, "grow-pool", &name)
        }))
    }

    pub fn replace_disk(
        self: &Arc<Self>,
        name: &str,
        req: api::ReplaceDisk,
    ) -> ApiResult<api::Job> {
        let pool = self.pool_config(name)?;
        self.busy_check(name)?;
        let (_, status) = self.assembled(name)?;
        let disks = self.core.disks();
        // The member to take out, if it is still in the array.
        let old_member = match &req.old {
            Some(old) => {
                let disk = disks.iter().find(|d| &d.name == old || &d.serial == old);
                let in_array = status.members.iter().find(|m| {
                    Some(m.disk.as_str()) == disk.map(|d| d.name.as_str()) || &m.disk == old
                });
                if in_array.is_none() && !pool.members.contains(old) {
                    return Err(ApiErr::bad_request(format!(
                        "{old} is not a member of pool {name}"
                    ))
                    .hint(format!("`rushesctl pool show {name}` lists its members")));
                }
                in_array.map(|m| m.disk.clone())
            }
            None => {
                let faulty = status.members.iter().find(|m| m.state.contains("faulty"));
                if faulty.is_none() && status.degraded == 0 {
                    return Err(ApiErr::new(
                        409,
                        "not-degraded",
                        format!("no member of pool {name} has failed"),
                    )
                    .hint("to swap a working disk, name it with --old"));
                }
                faulty.map(|m| m.disk.clone())
            }
        };
        let _ops = self.ops_lock();
        let wipe_list = if req.wipe {
            vec![req.disk.clone()]
        } else {
            vec![]
        };
        let new = self
            .pick_disks(std::slice::from_ref(&req.disk), &wipe_list)?
            .remove(0);
        let w = self
            .core
            .jobs
            .create("replace-disk", JobTarget::pool(name), false);
        self.core
            .inventory
            .claim(std::slice::from_ref(&new), w.id());
        let name = name.to_string();
        let old_serial = req.old.clone();
        Ok(self.run_job(w, move |m, w| {
            {
                let _ops = m.ops_lock();
                if let Some(old) = &old_member {
                    w.step(&format!("taking {old} out"));
                    md::fail_and_remove(&name, &format!("/dev/{old}"))
                        .map_err(|e| e.to_string())?;
                }
                let _ = md::remove_detached(&name);
                let p = PathBuf::from("/dev").join(&new.name);
                w.step("erasing the new disk");
                wipe::wipe(&p).map_err(|e| e.to_string())?;
                md::add(&name, &p).map_err(|e| e.to_string())?;
                // The config's member list: the new serial in place of the old one, or
                // of whichever configured member is no longer present.
                let present: Vec<String> = m.core.disks().into_iter().map(|d| d.serial).collect();
                let serial = new.serial.clone();
                m.core.save_config(|c| {
                    if let Some(pc) = c.pools.iter_mut().find(|p| p.name == name) {
                        let gone = pc
                            .members
                            .iter()
                            .position(|s| Some(s) == old_serial.as_ref() || !present.contains(s));
                        match gone {
                            Some(i) => pc.members[i] = serial,
                            None => pc.members.push(serial),
                        }
                    }
                })?;
            }
            m.core.inventory.release(w.id());
            m.core.poke();
            m.sync_phase(w, "replace-disk", &name)
        }))
    }

    pub fn scrub_pool(self: &Arc<Self>, name: &str) -> ApiResult<api::Job> {
        let pool = self.pool_config(name)?;
        self.busy_check(name)?;
        let (kernel, status) = self.assembled(name)?;
        if pool.level.fault_tolerance(status.raid_disks as usize) == 0 {
            return Err(ApiErr::new(
                409,
                "cannot-scrub",
                format!("a {} pool has no redundancy to check against", pool.level),
            ));
        }
        if status.syncing() {
            return Err(ApiErr::new(
                409,
                "busy",
                format!("pool {name} is busy: md is running {}", status.sync_action),
            ));
        }
        let w = self.core.jobs.create("scrub", JobTarget::pool(name), true);
        let name = name.to_string();
        Ok(self.run_job(w, move |m, w| {
            md::start_check(&kernel).map_err(|e| e.to_string())?;
            m.sync_phase(w, "scrub", &name)
        }))
    }

    /// Measure how fast the pool reads (a few seconds of direct reads from its md
    /// device, beside whatever it serves): what reservations are checked against.
    pub fn measure_pool(self: &Arc<Self>, name: &str) -> ApiResult<api::Job> {
        self.pool_config(name)?;
        self.busy_check(name)?;
        self.assembled(name)?;
        let w = self
            .core
            .jobs
            .create("measure-pool", JobTarget::pool(name), false);
        let name = name.to_string();
        Ok(self.run_job(w, move |m, w| {
            w.step("reading the pool: 4 streams of 1 MiB direct reads for up to 3 s");
            let rate = speed::measure_reads(&md::device_path(&name), speed::Budget::default())
                .map_err(|e| e.to_string())?;
            let record = ReadRecord {
                mb_s: (rate.mb_s() * 10.0).round() / 10.0,
                at: now(),
            };
            tracing::info!(pool = %name, mb_s = record.mb_s, bytes = rate.bytes, seconds = rate.elapsed.as_secs_f64(), "pool read rate measured");
            w.step(&format!("reads at {:.0} MB/s", record.mb_s));
            let mut st = m.lock();
            st.reads.insert(name.clone(), record);
            let path = m.core.paths.state_dir.join(READ_RATES);
            write_state(&path, &st.reads)
                .map_err(|e| format!("cannot record the rate in {}: {e}", path.display()))
        }))
    }

    /// The measured read rate of each configured pool (None: not measured yet).
    pub fn read_rates(&self) -> Vec<(String, Option<ReadRecord>)> {
        let pools = self.configs();
        let st = self.lock();
        pools
            .into_iter()
            .map(|p| {
                let read = st.reads.get(&p.name).copied();
                (p.name, read)
            })
            .collect()
    }

    /// Pools never measured are measured once they are whole and idle (a new pool after
    /// its first sync, a pool from an older release), so a reservation can be checked.
    fn unmeasured_pools(self: &Arc<Self>) {
        let unmeasured: Vec<String> = {
            let st = self.lock();
            self.configs()
                .into_iter()
                .filter(|p| !st.reads.contains_key(&p.name))
                .filter(|p| {
                    st.measure_tried
                        .get(&p.name)
                        .is_none_or(|at| at.elapsed() > Duration::from_secs(3600))
                })
                .map(|p| p.name)
                .collect()
        };
        for pool in unmeasured {
            let idle = md::kernel_name(&pool)
                .and_then(|k| md::status(&self.core.paths.sys, &k))
                .is_some_and(|s| !s.syncing() && s.degraded == 0)
                && xfs::is_mounted(&self.mountpoint(&pool))
                && self.core.jobs.active_on(&JobTarget::pool(&pool)).is_none();
            if idle {
                self.lock()
                    .measure_tried
                    .insert(pool.clone(), Instant::now());
                match self.measure_pool(&pool) {
                    Ok(job) => {
                        tracing::info!(pool, job = job.id, "measuring the new pool's read rate")
                    }
                    Err(e) => tracing::debug!(pool, error = %e.message, "pool not measured"),
                }
            }
        }
    }

    fn record_scrub(&self, pool: &str, rec: ScrubRecord) {
        let mut st = self.lock();
        st.scrubs.insert(pool.to_string(), rec);
        let path = self.core.paths.state_dir.join("scrubs.json");
        if let Err(e) = write_state(&path, &st.scrubs) {
            tracing::warn!(path = %path.display(), error = %e, "cannot record the scrub");
        }
    }

    fn scheduled_scrubs(self: &Arc<Self>) {
        let due: Vec<String> = {
            let pools = self.configs();
            let st = self.lock();
            pools
                .iter()
                .filter(|p| p.scrub_days > 0)
                .filter(|p| {
                    let last = st.scrubs.get(&p.name).map(|r| r.finished).unwrap_or(0);
                    now().saturating_sub(last) > u64::from(p.scrub_days) * 86_400
                })
                .map(|p| p.name.clone())
                .collect()
        };
        for pool in due {
            match self.scrub_pool(&pool) {
                Ok(job) => tracing::info!(pool, job = job.id, "scheduled scrub started"),
                Err(e) if e.code == "busy" || e.code == "pool-unavailable" => {}
                Err(e) => {
                    tracing::debug!(pool, error = %e.message, "no scheduled scrub");
                    // Not scrubbable (no redundancy): do not ask again for a period.
                    self.record_scrub(
                        &pool,
                        ScrubRecord {
                            finished: now(),
                            mismatches: 0,
                        },
                    );
                }
            }
        }
    }

    pub fn destroy_pool(&self, name: &str, req: api::DestroyPool) -> ApiResult<()> {
        self.pool_config(name)?;
        if req.confirm != name {
            return Err(ApiErr::new(
                400,
                "not-confirmed",
                format!("destroying pool {name} erases all its data; confirm by giving its name"),
            )
            .hint(format!("rushesctl pool destroy {name} --confirm {name}")));
        }
        self.busy_check(name)?;
        let shares: Vec<String> = self.core.with_config(|c| {
            c.shares
                .iter()
                .filter(|s| s.pool == name)
                .map(|s| s.name.clone())
                .collect()
        });
        if !shares.is_empty() {
            return Err(ApiErr::new(
                409,
                "pool-has-shares",
                format!("pool {name} still has shares: {}", shares.join(", ")),
            )
            .hint("delete them first with rushesctl share delete NAME"));
        }
        let _ops = self.ops_lock();
        let dir = self.mountpoint(name);
        if xfs::is_mounted(&dir) {
            xfs::unmount(&dir).map_err(|e| {
                ApiErr::new(409, "busy", e.to_string())
                    .hint("something still has files open on the pool")
            })?;
        }
        let members: Vec<String> = md::kernel_name(name)
            .and_then(|k| md::status(&self.core.paths.sys, &k))
            .map(|s| s.members.into_iter().map(|m| m.disk).collect())
            .unwrap_or_default();
        if md::kernel_name(name).is_some() {
            md::stop(name).map_err(|e| ApiErr::failed(e.to_string()))?;
        }
        for disk in members {
            if let Err(e) = md::zero_superblock(&Path::new("/dev").join(&disk)) {
                tracing::warn!(disk, error = %e, "cannot clear the md superblock");
            }
        }
        self.core
            .save_config(|c| c.pools.retain(|p| p.name != name))
            .map_err(ApiErr::failed)?;
        let _ = std::fs::remove_dir(&dir);
        {
            let mut st = self.lock();
            st.problems.remove(name);
            if st.reads.remove(name).is_some() {
                let path = self.core.paths.state_dir.join(READ_RATES);
                if let Err(e) = write_state(&path, &st.reads) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot forget the pool's read rate");
                }
            }
        }
        tracing::info!(pool = name, "pool destroyed");
        self.core.inventory.rescan();
        Ok(())
    }

    /// The pools with their live state.
    pub fn pools(&self) -> Vec<api::Pool> {
        let configs = self.configs();
        let disks = self.core.inventory.raw();
        let (problems, scrubs, reads) = {
            let st = self.lock();
            (st.problems.clone(), st.scrubs.clone(), st.reads.clone())
        };
        configs
            .iter()
            .map(|pc| {
                let mut view =
                    self.pool_view(pc, problems.get(&pc.name), scrubs.get(&pc.name), &disks);
                if let Some(read) = reads.get(&pc.name) {
                    view.read_mb_s = Some(read.mb_s);
                    view.read_measured_at = Some(read.at);
                }
                view
            })
            .collect()
    }

    pub fn pool(&self, name: &str) -> ApiResult<api::Pool> {
        self.pool_config(name)?;
        self.pools()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ApiErr::not_found(format!("there is no pool {name:?}")))
    }

    fn pool_view(
        &self,
        pc: &PoolConfig,
        problem: Option<&String>,
        scrub: Option<&ScrubRecord>,
        disks: &[Disk],
    ) -> api::Pool {
        let mountpoint = self.mountpoint(&pc.name);
        let kernel = md::kernel_name(&pc.name);
        let status = kernel
            .as_deref()
            .and_then(|k| md::status(&self.core.paths.sys, k));
        let serial_of = |disk: &str| {
            disks
                .iter()
                .find(|d| d.name == disk)
                .map(|d| d.serial.clone())
                .unwrap_or_default()
        };
        let mut members = Vec::new();
        if let Some(st) = &status {
            for m in &st.members {
                let state = if m.state.contains("faulty") {
                    MemberState::Faulty
                } else if m.state.contains("in_sync") {
                    MemberState::InSync
                } else if m.slot.is_some() && st.syncing() {
                    MemberState::Rebuilding
                } else {
                    MemberState::Spare
                };
                members.push(api::Member {
                    disk: Some(m.disk.clone()),
                    serial: serial_of(&m.disk),
                    state,
                });
            }
        }
        for serial in &pc.members {
            if !members.iter().any(|m| &m.serial == serial) {
                members.push(api::Member {
                    disk: None,
                    serial: serial.clone(),
                    state: MemberState::Missing,
                });
            }
        }
        let mounted = xfs::is_mounted(&mountpoint);
        let (size, used) = if mounted {
            xfs::usage(&mountpoint).unwrap_or((0, 0))
        } else {
            (0, 0)
        };
        let missing: Vec<&str> = members
            .iter()
            .filter(|m| matches!(m.state, MemberState::Missing | MemberState::Faulty))
            .map(|m| m.serial.as_str())
            .collect();
        let (state, problem) = match &status {
            None => (
                PoolState::Missing,
                Some(problem.cloned().unwrap_or_else(|| {
                    format!(
                        "its md array is not assembled; member disks: {}",
                        pc.members.join(", ")
                    )
                })),
            ),
            Some(st) if st.array_state == "inactive" || st.array_state == "clear" => (
                PoolState::Failed,
                Some(format!(
                    "too many disks are missing to run the array: {}",
                    missing.join(", ")
                )),
            ),
            Some(_) if !mounted => (
                PoolState::Failed,
                Some(
                    problem
                        .cloned()
                        .unwrap_or_else(|| "its file system is not mounted".into()),
                ),
            ),
            Some(st) if st.degraded > 0 => (
                PoolState::Degraded,
                Some(format!(
                    "{} of {} disks missing or failed{}",
                    st.degraded,
                    st.raid_disks,
                    if missing.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", missing.join(", "))
                    }
                )),
            ),
            Some(_) => (PoolState::Online, None),
        };
        api::Pool {
            name: pc.name.clone(),
            level: pc.level,
            class: pc.class,
            state,
            problem,
            mountpoint: mountpoint.display().to_string(),
            device: kernel.map(|k| format!("/dev/{k}")),
            size_bytes: size,
            used_bytes: used,
            members,
            sync: status
                .as_ref()
                .filter(|s| s.syncing())
                .map(|s| api::SyncProgress {
                    action: s.sync_action.clone(),
                    fraction: s.sync_fraction().unwrap_or(0.0),
                    bytes_per_sec: s.sync_speed.map(|k| k * 1024),
                }),
            last_scrub: scrub.map(|r| r.finished),
            scrub_mismatches: scrub.map(|r| r.mismatches),
            read_mb_s: None,
            read_measured_at: None,
        }
    }

    /// Assemble and mount every configured pool that is not up; problems are recorded.
    fn bring_up_pools(&self) {
        self.core.inventory.rescan();
        let pools = self.configs();
        let disks = self.core.inventory.raw();
        for pool in pools {
            let result = self.bring_up(&pool, &disks);
            let mut st = self.lock();
            match result {
                Ok(()) => {
                    st.problems.remove(&pool.name);
                }
                Err(problem) => {
                    tracing::error!(pool = %pool.name, %problem, "pool not available");
                    st.problems.insert(pool.name.clone(), problem);
                }
            }
        }
        self.core.inventory.rescan();
    }

    fn bring_up(&self, pool: &PoolConfig, disks: &[Disk]) -> Result<(), String> {
        if md::kernel_name(&pool.name).is_none() {
            let members: Vec<PathBuf> = disks
                .iter()
                .filter(|d| d.md_uuid.as_deref() == Some(pool.uuid.as_str()))
                .map(|d| PathBuf::from("/dev").join(&d.name))
                .collect();
            if members.is_empty() {
                return Err(format!(
                    "none of its disks ({}) is connected",
                    pool.members.join(", ")
                ));
            }
            md::assemble(&pool.name, &pool.uuid, &members).map_err(|e| e.to_string())?;
            tracing::info!(pool = %pool.name, disks = members.len(), "assembled");
        }
        let dir = self.mountpoint(&pool.name);
        if !xfs::is_mounted(&dir) {
            xfs::mount(&md::device_path(&pool.name), &dir).map_err(|e| e.to_string())?;
            tracing::info!(pool = %pool.name, dir = %dir.display(), "mounted");
        }
        Ok(())
    }

    /// Publish the pools' and disks' alerts as they stand.
    pub fn publish_alerts(&self) {
        let mut fresh: Vec<(String, Severity, String, String)> =
            self.pools().iter().flat_map(pool_alerts).collect();
        for d in &self.core.inventory.raw() {
            let Some(problem) = d.health.as_ref().and_then(|h| h.problem()) else {
                continue;
            };
            let critical = d.health.as_ref().is_some_and(|h| h.failing());
            fresh.push((
                format!("disk-health:{}", d.serial),
                if critical { Severity::Critical } else { Severity::Warning },
                format!("disk {} reports {problem}", label(d)),
                "plan to replace it: connect a new disk and run rushesctl pool replace POOL NEWDISK --old SERIAL".into(),
            ));
        }
        self.core.alerts.publish(
            "pools",
            fresh
                .into_iter()
                .map(|(id, severity, message, action)| Raise::new(id, severity, message, action))
                .collect(),
        );
    }
}

/// The alerts one pool's state calls for, as (id, severity, message, action).
fn pool_alerts(p: &api::Pool) -> Vec<(String, Severity, String, String)> {
    let mut fresh = Vec::new();
    let problem = p.problem.clone().unwrap_or_default();
    match p.state {
        PoolState::Degraded => {
            // md names its action `recover` for a moment after a member drops out even
            // with no spare to write to; only a member being written is a rebuild.
            let rebuilding = p.sync.as_ref().filter(|s| {
                s.action == "recover"
                    && p.members.iter().any(|m| m.state == MemberState::Rebuilding)
            });
            match rebuilding {
                Some(s) => fresh.push((
                    format!("pool-degraded:{}", p.name),
                    Severity::Warning,
                    format!("pool {} is rebuilding ({:.0}%): {problem}", p.name, s.fraction * 100.0),
                    "wait for the rebuild to finish; the pool serves meanwhile".into(),
                )),
                None => fresh.push((
                    format!("pool-degraded:{}", p.name),
                    Severity::Critical,
                    format!("pool {} is degraded: {problem}; {}", p.name, {
                        let lost = p
                            .members
                            .iter()
                            .filter(|m| matches!(m.state, MemberState::Missing | MemberState::Faulty))
                            .count();
                        let width = p.members.len().saturating_sub(lost);
                        match p.level.fault_tolerance(width + lost).saturating_sub(lost) {
                            0 => "it serves, but one more disk failure loses its data".to_string(),
                            n => format!("it serves and survives {n} more disk failure(s)"),
                        }
                    }),
                    format!("connect a new disk of at least the same size and run: rushesctl pool replace {} DISK", p.name),
                )),
            }
        }
        PoolState::Failed | PoolState::Missing => fresh.push((
            format!("pool-failed:{}", p.name),
            Severity::Critical,
            format!("pool {} is not serving: {problem}", p.name),
            "check that its disks are connected (rushesctl disks), then restart the appliance"
                .into(),
        )),
        PoolState::Online => {}
    }
    if p.size_bytes > 0 && p.used_bytes * 10 > p.size_bytes * 9 {
        fresh.push((
            format!("pool-full:{}", p.name),
            Severity::Warning,
            format!(
                "pool {} is {:.0}% full",
                p.name,
                p.used_bytes as f64 * 100.0 / p.size_bytes as f64
            ),
            format!("free space or grow it: rushesctl pool grow {} DISK", p.name),
        ));
    }
    if p.scrub_mismatches.unwrap_or(0) > 0 {
        fresh.push((
            format!("scrub-mismatch:{}", p.name),
            Severity::Warning,
            format!(
                "the last scrub of pool {} found {} mismatched sectors",
                p.name,
                p.scrub_mismatches.unwrap_or(0)
            ),
            "check the disks' health; a second scrub shows whether it recurs".into(),
        ));
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_stay_plain() {
        assert!(check_pool_name("media-01").is_ok());
        for bad in ["", "Media", "../x", "-x", "a/b", &"x".repeat(33)] {
            assert_eq!(check_pool_name(bad).unwrap_err().code, "bad-name", "{bad}");
        }
    }

    fn degraded_raid5(states: [MemberState; 4], action: &str) -> api::Pool {
        api::Pool {
            name: "media".into(),
            level: api::RaidLevel::Raid5,
            class: PoolClass::default(),
            state: PoolState::Degraded,
            problem: Some("1 of 4 disks missing".into()),
            mountpoint: "/pools/media".into(),
            device: Some("/dev/md127".into()),
            size_bytes: 3 << 30,
            used_bytes: 1 << 20,
            members: states
                .into_iter()
                .enumerate()
                .map(|(i, state)| api::Member {
                    disk: None,
                    serial: format!("S{i}"),
                    state,
                })
                .collect(),
            sync: Some(api::SyncProgress {
                action: action.into(),
                fraction: 0.0,
                bytes_per_sec: None,
            }),
            last_scrub: None,
            scrub_mismatches: None,
            read_mb_s: None,
            read_measured_at: None,
        }
    }

    #[test]
    fn a_pulled_disk_is_critical_until_a_new_one_is_being_written() {
        use MemberState::*;
        let severity = |pool: &api::Pool| {
            let alerts = pool_alerts(pool);
            assert_eq!(alerts.len(), 1, "{alerts:?}");
            assert_eq!(alerts[0].0, "pool-degraded:media");
            alerts[0].1
        };
        // md says `recover` for a moment after the pull, with nothing to write to.
        let pulled = degraded_raid5([InSync, InSync, InSync, Missing], "recover");
        assert_eq!(severity(&pulled), Severity::Critical);
        assert!(pool_alerts(&pulled)[0]
            .2
            .contains("one more disk failure loses its data"));
        let rebuilding = degraded_raid5([InSync, InSync, InSync, Rebuilding], "recover");
        assert_eq!(severity(&rebuilding), Severity::Warning);
        assert!(pool_alerts(&rebuilding)[0].2.contains("is rebuilding"));
    }
}
