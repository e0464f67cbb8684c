//! The appliance's disks, pools, shares, jobs and alerts: the state behind the management
//! API. Pools are md arrays with XFS mounted under `/pools/NAME`; shares are folders on
//! them served over NFS. Long work runs as jobs on their own threads; a monitor thread
//! keeps the inventory and the alerts current.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rushes_api as api;
use rushes_api::{Disk, JobState, MemberState, PoolClass, PoolState, Severity};
use rushes_nas::{Service, ShareConfig};
use rushes_storage::{inventory, md, wipe, xfs};

use crate::config::{ApplianceConfig, ConfigStore, PoolConfig, ShareEntry};

/// A refusal or failure, as the API reports it.
#[derive(Debug, Clone)]
pub struct ApiErr {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl ApiErr {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad-request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not-found", message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(500, "failed", message)
    }
}

pub type ApiResult<T> = Result<T, ApiErr>;

/// Where the manager works.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/sys`.
    pub sys: PathBuf,
    /// Pools are mounted at `pools_dir/NAME`.
    pub pools_dir: PathBuf,
    /// Scrub records live here.
    pub state_dir: PathBuf,
    /// The supervisor's log file that rushes-init keeps (`/run/rushes/log.txt`).
    pub log_file: PathBuf,
    /// Running as the appliance (PID 1 is rushes-init): the host name, reboot and power
    /// off act on this machine. Off in host mode.
    pub appliance: bool,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct ScrubRecord {
    finished: u64,
    mismatches: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) config: ApplianceConfig,
    /// The last NTP result, and the last error.
    pub(crate) clock: (Option<api::ClockSync>, Option<String>),
    config_problem: Option<String>,
    disks: Vec<Disk>,
    disks_scanned: Option<Instant>,
    disks_dirty: bool,
    jobs: Vec<api::Job>,
    next_job: u64,
    /// Disks a running job is about to use, by kernel name.
    claimed: HashMap<String, u64>,
    alerts: BTreeMap<String, api::Alert>,
    /// Why a pool could not be assembled or mounted.
    pool_problems: HashMap<String, String>,
    scrubs: HashMap<String, ScrubRecord>,
    /// Saved fabrics paths are being connected again on a thread of their own.
    pub(crate) fabric_retry_running: bool,
    pub(crate) fabric_retry_at: Option<Instant>,
    pub(crate) card: crate::card::CardRuntime,
}

/// Where the activity stream goes, made before the NFS service so it can feed them.
pub struct Streams {
    /// Queues records for the others: settled before they are read.
    pub recorder: Arc<rushes_nas::activity::Recorder>,
    pub live: Arc<rushes_nas::activity::LiveCounters>,
    pub rollups: Arc<rushes_nas::rollup::Rollups>,
    pub audit: Arc<crate::audit::AuditLog>,
    /// Shares and accounts, for naming users and paths in SMB and audit records.
    pub directory: Arc<std::sync::RwLock<crate::smb_audit::Directory>>,
}

/// `client`, `user`, `share`, `op` or `protocol`, as the activity reports take it.
fn group_by(by: &str) -> ApiResult<rushes_nas::rollup::GroupBy> {
    use rushes_nas::rollup::GroupBy;
    Ok(match by {
        "client" => GroupBy::Client,
        "user" => GroupBy::User,
        "share" => GroupBy::Share,
        "op" => GroupBy::Op,
        "protocol" => GroupBy::Protocol,
        other => {
            return Err(
                ApiErr::bad_request(format!("grouping {other:?} is not known"))
                    .hint("use client, user, share, op or protocol"),
            )
        }
    })
}

pub struct Manager {
    pub(crate) paths: Paths,
    store: ConfigStore,
    nas: Arc<Service>,
    /// Share names served outside the config (host mode's folders, the RAM share).
    reserved: Vec<String>,
    state: Mutex<State>,
    /// Held while md arrays are created or changed: one layout change at a time.
    ops: Mutex<()>,
    wake: (Mutex<bool>, Condvar),
    started: Instant,
    /// Hands records to `live`, `rollups` and `audit`.
    recorder: Arc<rushes_nas::activity::Recorder>,
    /// Live NFS traffic for the dashboard: read through [`Manager::live`].
    live: Arc<rushes_nas::activity::LiveCounters>,
    /// Every NFS and SMB operation, rolled up per client, user, share and operation:
    /// read through [`Manager::rollups`].
    rollups: Arc<rushes_nas::rollup::Rollups>,
    /// Who opened, changed, renamed or deleted what.
    pub(crate) audit: Arc<crate::audit::AuditLog>,
    /// Samba's files (the appliance only; `rushesd host` serves no SMB).
    pub(crate) samba: Option<crate::smb::Samba>,
    /// Shares and accounts, for the SMB audit reader.
    pub(crate) smb_directory: Arc<std::sync::RwLock<crate::smb_audit::Directory>>,
    /// The mDNS responder and what it announces.
    pub(crate) mdns: Mutex<Option<(mdns_sd::ServiceDaemon, crate::smb::Announced)>>,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `nvme1n1 (SERIAL)`, or the name alone for a disk without a serial.
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

impl Manager {
    /// Load the config, assemble and mount the pools it lists, and serve their shares.
    pub fn start(
        paths: Paths,
        store: ConfigStore,
        nas: Arc<Service>,
        reserved: Vec<String>,
        streams: Streams,
        samba: Option<crate::smb::Samba>,
    ) -> Arc<Self> {
        let Streams {
            recorder,
            live,
            rollups,
            audit,
            directory,
        } = streams;
        let loaded = store.load();
        if let Some(problem) = &loaded.problem {
            tracing::error!(%problem, "configuration");
        }
        let scrubs = std::fs::read_to_string(paths.state_dir.join("scrubs.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mgr = Arc::new(Self {
            paths,
            store,
            nas,
            reserved,
            state: Mutex::new(State {
                config: loaded.config,
                config_problem: loaded.problem,
                disks_dirty: true,
                next_job: 1,
                scrubs,
                ..Default::default()
            }),
            ops: Mutex::new(()),
            wake: (Mutex::new(false), Condvar::new()),
            started: Instant::now(),
            recorder,
            live,
            rollups,
            audit,
            samba,
            smb_directory: directory,
            mdns: Mutex::new(None),
        });
        mgr.restore_fabrics();
        mgr.start_card();
        mgr.bring_up_pools();
        mgr.serve_shares();
        mgr.apply_smb();
        mgr.tick();
        mgr
    }

    /// The live counters, with every record answered so far counted.
    fn live(&self) -> &rushes_nas::activity::LiveCounters {
        self.recorder.settle();
        &self.live
    }

    /// The rollups, with every record answered so far counted.
    pub(crate) fn rollups(&self) -> &rushes_nas::rollup::Rollups {
        self.recorder.settle();
        &self.rollups
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ops_lock(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mountpoint(&self, pool: &str) -> PathBuf {
        self.paths.pools_dir.join(pool)
    }

    /// Ask the monitor for a fresh look (a device came or went).
    pub fn poke(&self) {
        self.lock().disks_dirty = true;
        let (flag, cv) = &self.wake;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    /// Run the monitor until the process ends: inventory, pulled disks, scheduled
    /// scrubs, alerts.
    pub fn monitor(self: &Arc<Self>) {
        let (flag, cv) = &self.wake;
        loop {
            let poked = {
                let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
                let (mut guard, _) = cv
                    .wait_timeout_while(guard, Duration::from_secs(2), |poked| !*poked)
                    .unwrap_or_else(|p| p.into_inner());
                std::mem::replace(&mut *guard, false)
            };
            if poked {
                // Let udev write its data about a new device before reading it.
                std::thread::sleep(Duration::from_millis(300));
            }
            self.tick();
            self.keep_fabrics();
            self.keep_card();
            self.scheduled_scrubs();
        }
    }

    /// One look at everything: rescan disks when due, drop pulled members, refresh alerts.
    pub fn tick(&self) {
        let rescan = {
            let st = self.lock();
            st.disks_dirty
                || st
                    .disks_scanned
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(30))
        };
        if rescan {
            self.rescan();
        }
        let pools = self.lock().config.pools.clone();
        for pool in &pools {
            let Some(kernel) = md::kernel_name(&pool.name) else {
                continue;
            };
            let Some(status) = md::status(&self.paths.sys, &kernel) else {
                continue;
            };
            let gone: Vec<&str> = status
                .members
                .iter()
                .filter(|m| !self.paths.sys.join("block").join(&m.disk).exists())
                .map(|m| m.disk.as_str())
                .collect();
            if !gone.is_empty() {
                tracing::warn!(pool = %pool.name, disks = ?gone, "member disks are gone: taking them out of the array");
                if let Err(e) = md::remove_detached(&pool.name) {
                    tracing::warn!(pool = %pool.name, error = %e, "cannot remove pulled members");
                }
            }
        }
        self.refresh_alerts();
        self.apply_smb();
        self.place_audit_log();
    }

    /// The audit log goes on the first pool of the config that is mounted.
    fn place_audit_log(&self) {
        let pools = self.lock().config.pools.clone();
        let place = pools.iter().find_map(|p| {
            let dir = self.mountpoint(&p.name);
            xfs::is_mounted(&dir).then(|| (p.name.clone(), dir.join(".rushes-audit")))
        });
        self.audit.set_place(place);
    }

    pub(crate) fn rescan(&self) {
        let disks = inventory::scan(&inventory::Roots {
            sys: self.paths.sys.clone(),
            ..Default::default()
        });
        let mut st = self.lock();
        let before: Vec<String> = st.disks.iter().map(|d| d.name.clone()).collect();
        let after: Vec<String> = disks.iter().map(|d| d.name.clone()).collect();
        if before != after && st.disks_scanned.is_some() {
            tracing::info!(disks = ?after, "disks changed");
        }
        st.disks = disks;
        st.disks_scanned = Some(Instant::now());
        st.disks_dirty = false;
    }

    /// The inventory, with what uses each disk named in the admin's terms. It is the
    /// monitor's copy, rescanned on every block uevent, at least every 30 s, and by
    /// whatever changes disks; reading it does no I/O (the console asks every 2 s).
    pub fn disks(&self) -> Vec<Disk> {
        let st = self.lock();
        let md_pools: HashMap<String, String> = st
            .config
            .pools
            .iter()
            .filter_map(|p| md::kernel_name(&p.name).map(|k| (k, p.name.clone())))
            .collect();
        st.disks
            .iter()
            .cloned()
            .map(|mut d| {
                if let Some(job) = st.claimed.get(&d.name) {
                    d.in_use_by = Some(format!("job {job}"));
                } else if let Some(users) = &d.in_use_by {
                    let named: Vec<String> = users
                        .split(',')
                        .map(|u| match md_pools.get(u) {
                            Some(pool) => format!("pool {pool}"),
                            None => u.to_string(),
                        })
                        .collect();
                    d.in_use_by = Some(named.join(","));
                } else if let Some(pool) = st
                    .config
                    .pools
                    .iter()
                    .find(|p| d.md_uuid.as_deref() == Some(p.uuid.as_str()))
                {
                    // A member of a configured pool that is not assembled now.
                    d.in_use_by = Some(format!("pool {}", pool.name));
                }
                d
            })
            .collect()
    }

    /// Resolve disks named by kernel name or serial, refusing the boot stick, disks in
    /// use, and disks with data the admin did not agree to wipe.
    fn pick_disks(&self, wanted: &[String], wipe: &[String]) -> ApiResult<Vec<Disk>> {
        // About to act on them: look at the disks as they are now.
        self.rescan();
        let disks = self.disks();
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

    fn claim(&self, disks: &[Disk], job: u64) {
        let mut st = self.lock();
        for d in disks {
            st.claimed.insert(d.name.clone(), job);
        }
    }

    /// The job's disks now belong to an array, which says so itself.
    fn release(&self, job: u64) {
        self.lock().claimed.retain(|_, j| *j != job);
    }

    fn new_job(&self, kind: &str, pool: &str) -> u64 {
        let mut st = self.lock();
        let id = st.next_job;
        st.next_job += 1;
        st.jobs.push(api::Job {
            id,
            kind: kind.into(),
            pool: pool.into(),
            state: JobState::Running,
            step: "starting".into(),
            fraction: None,
            error: None,
            started: now(),
            finished: None,
        });
        // Keep the last 100 jobs.
        let excess = st.jobs.len().saturating_sub(100);
        st.jobs.drain(..excess);
        id
    }

    fn set_step(&self, id: u64, step: &str, fraction: Option<f64>) {
        let mut st = self.lock();
        if let Some(job) = st.jobs.iter_mut().find(|j| j.id == id) {
            if job.step != step {
                tracing::info!(job = id, kind = %job.kind, pool = %job.pool, step, "job step");
            }
            job.step = step.into();
            job.fraction = fraction;
        }
    }

    /// Run `work` as job `id` on its own thread; claimed disks are freed at the end.
    fn run_job(
        self: &Arc<Self>,
        id: u64,
        work: impl FnOnce(&Arc<Manager>) -> Result<(), String> + Send + 'static,
    ) -> api::Job {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                // A thread inherits its creator's identity, which may be an NFS caller's.
                let result = rushes_nas::sys::run_as_root()
                    .map_err(|e| format!("cannot act as root: {e}"))
                    .and_then(|()| work(&me));
                me.release(id);
                let mut st = me.lock();
                if let Some(job) = st.jobs.iter_mut().find(|j| j.id == id) {
                    job.finished = Some(now());
                    match result {
                        Ok(()) => {
                            job.state = JobState::Done;
                            job.step = "done".into();
                            job.fraction = Some(1.0);
                            tracing::info!(job = id, kind = %job.kind, pool = %job.pool, "job done");
                        }
                        Err(e) => {
                            tracing::error!(job = id, kind = %job.kind, pool = %job.pool, error = %e, "job failed");
                            job.state = JobState::Failed;
                            job.error = Some(e);
                        }
                    }
                }
                drop(st);
                me.poke();
            })
            .ok();
        self.job(id).expect("just created")
    }

    pub fn job(&self, id: u64) -> Option<api::Job> {
        self.lock().jobs.iter().find(|j| j.id == id).cloned()
    }

    pub fn jobs(&self) -> Vec<api::Job> {
        self.lock().jobs.clone()
    }

    /// Follow md's background work on `pool` into job `id` until the array is idle and
    /// whole. md may take a moment to start, so idle counts only after `grace`.
    fn follow_sync(&self, id: u64, pool: &str, what: &str) -> Result<md::ArrayStatus, String> {
        let begun = Instant::now();
        let grace = Duration::from_secs(3);
        loop {
            let kernel = md::kernel_name(pool)
                .ok_or_else(|| format!("the md array of pool {pool} is gone"))?;
            let st = md::status(&self.paths.sys, &kernel)
                .ok_or_else(|| format!("cannot read the state of {kernel}"))?;
            if st.syncing() {
                let fraction = st.sync_fraction();
                let speed = st
                    .sync_speed
                    .map(|k| format!(" at {} MB/s", k * 1024 / 1_000_000))
                    .unwrap_or_default();
                let pct = fraction
                    .map(|f| format!(" {:.0}%", f * 100.0))
                    .unwrap_or_default();
                self.set_step(
                    id,
                    &format!("{what} ({}){pct}{speed}", st.sync_action),
                    fraction,
                );
            } else if begun.elapsed() > grace {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    pub(crate) fn save_config(
        &self,
        change: impl FnOnce(&mut ApplianceConfig),
    ) -> Result<(), String> {
        let mut st = self.lock();
        let mut next = st.config.clone();
        change(&mut next);
        self.store
            .save(&next)
            .map_err(|e| format!("cannot write {}: {e}", self.store.path.display()))?;
        st.config = next;
        st.config_problem = None;
        Ok(())
    }

    // ---- pools -------------------------------------------------------------------

    pub fn create_pool(self: &Arc<Self>, req: api::CreatePool) -> ApiResult<api::Job> {
        check_pool_name(&req.name)?;
        if self.lock().config.pool(&req.name).is_some() {
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
        let id = self.new_job("create-pool", &req.name);
        self.claim(&disks, id);
        let smallest = disks.iter().map(|d| d.size_bytes).min().unwrap_or(0);
        tracing::info!(pool = %req.name, level = %req.level, disks = ?disks.iter().map(|d| &d.name).collect::<Vec<_>>(),
            usable = %gb(req.level.usable_bytes(n, smallest)), "creating pool");
        let name = req.name.clone();
        let level = req.level;
        Ok(self.run_job(id, move |m| {
            let paths: Vec<PathBuf> = disks
                .iter()
                .map(|d| PathBuf::from("/dev").join(&d.name))
                .collect();
            {
                let _ops = m.ops_lock();
                m.set_step(id, "erasing the disks' old signatures", None);
                for p in &paths {
                    wipe::wipe(p).map_err(|e| e.to_string())?;
                }
                m.set_step(id, "creating the md array", None);
                md::create(&name, level, &paths).map_err(|e| e.to_string())?;
                let uuid = md::uuid(&name).map_err(|e| e.to_string())?;
                m.set_step(id, "making the XFS file system", None);
                let dev = md::device_path(&name);
                xfs::mkfs(&dev, &name).map_err(|e| e.to_string())?;
                m.set_step(id, "mounting", None);
                xfs::mount(&dev, &m.mountpoint(&name)).map_err(|e| e.to_string())?;
                let pool = PoolConfig {
                    name: name.clone(),
                    level,
                    class,
                    uuid,
                    members: disks.iter().map(|d| d.serial.clone()).collect(),
                    scrub_days: 30,
                };
                m.save_config(|c| c.pools.push(pool))?;
                m.record_scrub(
                    &name,
                    ScrubRecord {
                        finished: now(),
                        mismatches: 0,
                    },
                );
            }
            m.release(id);
            m.poke();
            if level.fault_tolerance(paths.len()) > 0 {
                m.follow_sync(id, &name, "first sync; the pool is usable meanwhile")?;
            }
            Ok(())
        }))
    }

    fn pool_config(&self, name: &str) -> ApiResult<PoolConfig> {
        self.lock().config.pool(name).cloned().ok_or_else(|| {
            ApiErr::not_found(format!("there is no pool {name:?}"))
                .hint("`rushesctl pools` lists them")
        })
    }

    fn assembled(&self, pool: &str) -> ApiResult<(String, md::ArrayStatus)> {
        md::kernel_name(pool)
            .and_then(|k| md::status(&self.paths.sys, &k).map(|s| (k, s)))
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
        let st = self.lock();
        if let Some(job) = st
            .jobs
            .iter()
            .find(|j| j.pool == pool && j.state == JobState::Running)
        {
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
        let id = self.new_job("grow-pool", name);
        self.claim(&disks, id);
        let name = name.to_string();
        let target = status.raid_disks as usize + disks.len();
        Ok(self.run_job(id, move |m| {
            {
                let _ops = m.ops_lock();
                m.set_step(id, "erasing the new disks", None);
                for d in &disks {
                    let p = PathBuf::from("/dev").join(&d.name);
                    wipe::wipe(&p).map_err(|e| e.to_string())?;
                    md::add(&name, &p).map_err(|e| e.to_string())?;
                }
                m.set_step(id, &format!("reshaping onto {target} disks"), None);
                if let Err(e) = md::grow(&name, target) {
                    return Err(format!("{e}; the new disks stay in the pool as spares"));
                }
                let serials: Vec<String> = disks.iter().map(|d| d.serial.clone()).collect();
                m.save_config(|c| {
                    if let Some(p) = c.pools.iter_mut().find(|p| p.name == name) {
                        p.members.extend(serials);
                    }
                })?;
            }
            m.release(id);
            m.follow_sync(id, &name, "reshaping; the pool serves meanwhile")?;
            m.set_step(id, "growing the file system", None);
            xfs::grow(&m.mountpoint(&name)).map_err(|e| e.to_string())?;
            Ok(())
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
        let disks = self.disks();
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
        let id = self.new_job("replace-disk", name);
        self.claim(std::slice::from_ref(&new), id);
        let name = name.to_string();
        let old_serial = req.old.clone();
        Ok(self.run_job(id, move |m| {
            {
                let _ops = m.ops_lock();
                if let Some(old) = &old_member {
                    m.set_step(id, &format!("taking {old} out"), None);
                    md::fail_and_remove(&name, &format!("/dev/{old}"))
                        .map_err(|e| e.to_string())?;
                }
                let _ = md::remove_detached(&name);
                let p = PathBuf::from("/dev").join(&new.name);
                m.set_step(id, "erasing the new disk", None);
                wipe::wipe(&p).map_err(|e| e.to_string())?;
                md::add(&name, &p).map_err(|e| e.to_string())?;
                // The config's member list: the new serial in place of the old one, or
                // of whichever configured member is no longer present.
                let present: Vec<String> = m.disks().into_iter().map(|d| d.serial).collect();
                let serial = new.serial.clone();
                m.save_config(|c| {
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
            m.release(id);
            m.poke();
            let st = m.follow_sync(id, &name, "rebuilding; the pool serves meanwhile")?;
            if st.degraded > 0 {
                return Err(format!(
                    "the rebuild ended with {} member(s) still missing",
                    st.degraded
                ));
            }
            Ok(())
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
        let id = self.new_job("scrub", name);
        let name = name.to_string();
        Ok(self.run_job(id, move |m| {
            md::start_check(&kernel).map_err(|e| e.to_string())?;
            let st = m.follow_sync(id, &name, "checking every stripe")?;
            m.record_scrub(
                &name,
                ScrubRecord {
                    finished: now(),
                    mismatches: st.mismatch_cnt,
                },
            );
            Ok(())
        }))
    }

    fn record_scrub(&self, pool: &str, rec: ScrubRecord) {
        let mut st = self.lock();
        st.scrubs.insert(pool.to_string(), rec);
        let path = self.paths.state_dir.join("scrubs.json");
        if let Ok(text) = serde_json::to_string(&st.scrubs) {
            let tmp = path.with_extension("json.new");
            if std::fs::write(&tmp, text)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .is_err()
            {
                tracing::warn!(path = %path.display(), "cannot record the scrub");
            }
        }
    }

    fn scheduled_scrubs(self: &Arc<Self>) {
        let due: Vec<String> = {
            let st = self.lock();
            st.config
                .pools
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
        let shares: Vec<String> = self
            .lock()
            .config
            .shares
            .iter()
            .filter(|s| s.pool == name)
            .map(|s| s.name.clone())
            .collect();
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
            .and_then(|k| md::status(&self.paths.sys, &k))
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
        self.save_config(|c| c.pools.retain(|p| p.name != name))
            .map_err(ApiErr::failed)?;
        let _ = std::fs::remove_dir(&dir);
        self.lock().pool_problems.remove(name);
        tracing::info!(pool = name, "pool destroyed");
        self.rescan();
        Ok(())
    }

    /// The pools with their live state.
    pub fn pools(&self) -> Vec<api::Pool> {
        let (configs, problems, scrubs, disks) = {
            let st = self.lock();
            (
                st.config.pools.clone(),
                st.pool_problems.clone(),
                st.scrubs.clone(),
                st.disks.clone(),
            )
        };
        configs
            .iter()
            .map(|pc| self.pool_view(pc, problems.get(&pc.name), scrubs.get(&pc.name), &disks))
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
            .and_then(|k| md::status(&self.paths.sys, k));
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
        }
    }

    /// Assemble and mount every configured pool that is not up; problems are recorded.
    fn bring_up_pools(&self) {
        self.rescan();
        let (pools, disks) = {
            let st = self.lock();
            (st.config.pools.clone(), st.disks.clone())
        };
        for pool in pools {
            let result = self.bring_up(&pool, &disks);
            let mut st = self.lock();
            match result {
                Ok(()) => {
                    st.pool_problems.remove(&pool.name);
                }
                Err(problem) => {
                    tracing::error!(pool = %pool.name, %problem, "pool not available");
                    st.pool_problems.insert(pool.name.clone(), problem);
                }
            }
        }
        self.rescan();
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

    // ---- shares ------------------------------------------------------------------

    fn share_config(&self, entry: &ShareEntry) -> ShareConfig {
        ShareConfig {
            name: entry.name.clone(),
            path: self.mountpoint(&entry.pool).join(&entry.name),
            rules: entry.rules.clone(),
            allow_devices: entry.allow_devices,
        }
    }

    fn serve_shares(&self) {
        let shares = self.lock().config.shares.clone();
        for entry in shares {
            let cfg = self.share_config(&entry);
            if !xfs::is_mounted(&self.mountpoint(&entry.pool)) {
                tracing::warn!(share = %entry.name, pool = %entry.pool, "share offline: its pool is not available");
                continue;
            }
            match self.nas.put_share(&cfg) {
                Ok(()) => {
                    tracing::info!(share = %entry.name, path = %cfg.path.display(), "exported as /{}", entry.name)
                }
                Err(e) => tracing::error!(share = %entry.name, error = %e, "cannot serve share"),
            }
        }
    }

    fn share_view(&self, entry: &ShareEntry) -> api::Share {
        let cfg = self.share_config(entry);
        api::Share {
            name: entry.name.clone(),
            pool: entry.pool.clone(),
            path: cfg.path.display().to_string(),
            rules: entry.rules.clone(),
            online: self.nas.share_by_path(&entry.name).is_some(),
            smb: entry.smb,
            time_machine: entry.time_machine,
            users: entry.users.clone(),
            allow_devices: entry.allow_devices,
        }
    }

    pub fn shares(&self) -> Vec<api::Share> {
        let shares = self.lock().config.shares.clone();
        shares.iter().map(|s| self.share_view(s)).collect()
    }

    pub fn share(&self, name: &str) -> ApiResult<api::Share> {
        let entry = self.share_entry(name)?;
        Ok(self.share_view(&entry))
    }

    fn share_entry(&self, name: &str) -> ApiResult<ShareEntry> {
        self.lock()
            .config
            .shares
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no share {name:?}"))
                    .hint("`rushesctl shares` lists them")
            })
    }

    pub fn create_share(&self, req: api::CreateShare) -> ApiResult<api::Share> {
        let rules: Vec<rushes_nas::ExportRule> = match &req.rules {
            Some(rules) => rules.clone(),
            None => vec![Default::default()],
        };
        self.check_share_users(&req.users)?;
        let entry = ShareEntry {
            name: req.name.clone(),
            pool: req.pool.clone(),
            rules,
            smb: req.smb.unwrap_or(true),
            time_machine: req.time_machine,
            users: req.users.clone(),
            allow_devices: req.allow_devices,
        };
        let cfg = self.share_config(&entry);
        rushes_nas::share::validate(std::slice::from_ref(&cfg)).map_err(|e| {
            ApiErr::new(400, "bad-name", e.to_string())
                .hint("a share is a folder directly on its pool: its name cannot contain '/' or start with '.'")
        })?;
        {
            let st = self.lock();
            if st.config.shares.iter().any(|s| s.name == req.name)
                || self.reserved.contains(&req.name)
            {
                return Err(ApiErr::new(
                    409,
                    "exists",
                    format!("a share called {} exists already", req.name),
                ));
            }
        }
        self.pool_config(&req.pool)?;
        let pool_dir = self.mountpoint(&req.pool);
        if !xfs::is_mounted(&pool_dir) {
            return Err(ApiErr::new(
                409,
                "pool-unavailable",
                format!("pool {} is not mounted", req.pool),
            )
            .hint("see `rushesctl pool show` and the alerts"));
        }
        match std::fs::create_dir(&cfg.path) {
            Ok(()) => {
                // Edit suites write as their own users: the folder starts open to all,
                // and the admin narrows it (or the export rules) as the facility needs.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&cfg.path, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| {
                        ApiErr::failed(format!(
                            "cannot set the mode of {}: {e}",
                            cfg.path.display()
                        ))
                    })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(ApiErr::failed(format!(
                    "cannot create {}: {e}",
                    cfg.path.display()
                )))
            }
        }
        self.nas
            .put_share(&cfg)
            .map_err(|e| ApiErr::failed(e.to_string()))?;
        if let Err(e) = self.save_config(|c| c.shares.push(entry.clone())) {
            self.nas.remove_share(&entry.name);
            return Err(ApiErr::failed(e));
        }
        self.apply_smb();
        tracing::info!(share = %entry.name, path = %cfg.path.display(), smb = entry.smb, "share created, exported as /{}", entry.name);
        Ok(self.share_view(&entry))
    }

    /// Change a share's export rules or SMB options; what the request leaves out stays.
    pub fn update_share(&self, name: &str, req: api::UpdateShare) -> ApiResult<api::Share> {
        let mut entry = self.share_entry(name)?;
        if let Some(users) = &req.users {
            self.check_share_users(users)?;
            entry.users = users.clone();
        }
        if let Some(rules) = req.rules {
            entry.rules = rules;
        }
        if let Some(smb) = req.smb {
            entry.smb = smb;
        }
        if let Some(time_machine) = req.time_machine {
            entry.time_machine = time_machine;
        }
        if let Some(allow) = req.allow_devices {
            entry.allow_devices = allow;
        }
        let cfg = self.share_config(&entry);
        rushes_nas::share::validate(std::slice::from_ref(&cfg))
            .map_err(|e| ApiErr::bad_request(e.to_string()))?;
        if self.nas.share_by_path(name).is_some() {
            self.nas
                .put_share(&cfg)
                .map_err(|e| ApiErr::failed(e.to_string()))?;
        }
        self.save_config(|c| {
            if let Some(s) = c.shares.iter_mut().find(|s| s.name == name) {
                *s = entry.clone();
            }
        })
        .map_err(ApiErr::failed)?;
        self.apply_smb();
        tracing::info!(share = name, smb = entry.smb, time_machine = entry.time_machine, users = ?entry.users, "share changed");
        Ok(self.share_view(&entry))
    }

    /// Stop serving a share and forget it; its folder and files stay on the pool.
    pub fn delete_share(&self, name: &str) -> ApiResult<()> {
        self.share_entry(name)?;
        self.save_config(|c| c.shares.retain(|s| s.name != name))
            .map_err(ApiErr::failed)?;
        self.nas.remove_share(name);
        self.apply_smb();
        tracing::info!(share = name, "share deleted (its files stay on the pool)");
        Ok(())
    }

    // ---- alerts and status ------------------------------------------------------

    pub fn alerts(&self) -> Vec<api::Alert> {
        self.refresh_alerts();
        let mut alerts: Vec<api::Alert> = self.lock().alerts.values().cloned().collect();
        alerts.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
        alerts
    }

    fn refresh_alerts(&self) {
        let pools = self.pools();
        let shares = self.shares();
        let mut fresh: Vec<(String, Severity, String, String)> = Vec::new();
        if let Some(problem) = self.lock().config_problem.clone() {
            fresh.push((
                "config-fallback".into(),
                Severity::Warning,
                problem,
                "check the last configuration change; the next change saved through the API writes a clean file".into(),
            ));
        }
        for p in &pools {
            let problem = p.problem.clone().unwrap_or_default();
            match p.state {
                PoolState::Degraded => {
                    let rebuilding = p.sync.as_ref().filter(|s| s.action == "recover");
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
                    "check that its disks are connected (rushesctl disks), then restart the appliance".into(),
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
        }
        let disks = self.lock().disks.clone();
        for d in &disks {
            let Some(problem) = d.health.as_ref().and_then(|h| h.problem()) else {
                continue;
            };
            let critical = d.health.as_ref().is_some_and(|h| h.critical_warning != 0);
            fresh.push((
                format!("disk-health:{}", d.serial),
                if critical { Severity::Critical } else { Severity::Warning },
                format!("disk {} reports {problem}", label(d)),
                "plan to replace it: connect a new disk and run rushesctl pool replace POOL NEWDISK --old SERIAL".into(),
            ));
        }
        for s in shares.iter().filter(|s| !s.online) {
            fresh.push((
                format!("share-offline:{}", s.name),
                Severity::Warning,
                format!(
                    "share {} is offline because pool {} is not available",
                    s.name, s.pool
                ),
                "bring the pool back (see its alert); the share returns with it after a restart"
                    .into(),
            ));
        }
        fresh.extend(self.fabric_alerts());
        fresh.extend(self.card_alerts());
        let mut st = self.lock();
        let old = std::mem::take(&mut st.alerts);
        for (id, severity, message, action) in fresh {
            let since = old.get(&id).map(|a| a.since).unwrap_or_else(now);
            if !old.contains_key(&id) {
                tracing::warn!(alert = %id, %message, "alert raised");
            }
            st.alerts.insert(
                id.clone(),
                api::Alert {
                    id,
                    severity,
                    message,
                    action,
                    since,
                },
            );
        }
        for id in old.keys().filter(|id| !st.alerts.contains_key(*id)) {
            tracing::info!(alert = %id, "alert cleared");
        }
    }

    /// Stop serving a share (a reset forgets them all).
    pub(crate) fn nas_remove_share(&self, name: &str) {
        self.nas.remove_share(name);
    }

    /// The last minute of NFS traffic and the clients seen in the last five minutes.
    pub fn activity(&self) -> api::Activity {
        api::Activity {
            seconds: self
                .live()
                .seconds(60)
                .into_iter()
                .map(|s| api::Throughput {
                    at: s.at,
                    read_bytes: s.read_bytes,
                    write_bytes: s.write_bytes,
                    ops: s.ops,
                })
                .collect(),
            clients: self
                .live()
                .clients(300)
                .into_iter()
                .map(|(ip, c)| api::ClientActivity {
                    address: ip.to_canonical().to_string(),
                    last_seen: c.last_seen,
                    ops: c.ops,
                    read_bytes: c.read_bytes,
                    write_bytes: c.write_bytes,
                })
                .collect(),
        }
    }

    /// Activity over `window` (`second`, `minute`, `hour`) grouped `by` `client`,
    /// `user`, `share` or `op`.
    pub fn activity_report(&self, window: &str, by: &str) -> ApiResult<api::ActivityReport> {
        use rushes_nas::rollup::{GroupBy, Window};
        let g = group_by(by)?;
        let w = match window {
            "second" => Window::Second,
            "minute" => Window::Minute,
            "hour" => Window::Hour,
            other => {
                return Err(
                    ApiErr::bad_request(format!("window {other:?} is not known"))
                        .hint("use second, minute or hour"),
                )
            }
        };
        let mut rows = self.rollups().report(w, g, now());
        if g == GroupBy::User {
            self.name_users(rows.iter_mut().map(|r| &mut r.group));
        }
        Ok(api::ActivityReport {
            window: window.into(),
            by: by.into(),
            sampled: false,
            rows,
        })
    }

    /// Bytes per second over the last minute per client (or user, share, operation,
    /// protocol), busiest first: the console's sparklines.
    pub fn activity_series(&self, by: &str) -> ApiResult<Vec<api::ActivitySeries>> {
        let g = group_by(by)?;
        let mut series: Vec<api::ActivitySeries> = self
            .rollups()
            .series(g, 60, now())
            .into_iter()
            .map(|(group, bytes_per_second)| api::ActivitySeries {
                group,
                bytes_per_second,
            })
            .collect();
        if g == rushes_nas::rollup::GroupBy::User {
            self.name_users(series.iter_mut().map(|s| &mut s.group));
        }
        Ok(series)
    }

    /// `uid 1000` becomes `editor (uid 1000)` for accounts the box knows.
    fn name_users<'a>(&self, labels: impl Iterator<Item = &'a mut String>) {
        let users = self.lock().config.users.clone();
        for label in labels {
            let uid = label
                .strip_prefix("uid ")
                .and_then(|u| u.parse::<u32>().ok());
            if let Some(u) = uid.and_then(|uid| users.iter().find(|u| u.uid == uid)) {
                *label = format!("{} (uid {})", u.name, u.uid);
            }
        }
    }

    /// The busiest files, folders, clients or users over the last minute or hour, by
    /// bytes or by operations.
    pub fn activity_top(
        &self,
        window: &str,
        by: &str,
        sort: &str,
        limit: usize,
    ) -> ApiResult<api::ActivityTop> {
        use rushes_nas::rollup::{TopBy, Window};
        let (w, span) = match window {
            "minute" => (Window::Minute, 60.0),
            "hour" => (Window::Hour, 3600.0),
            other => {
                return Err(
                    ApiErr::bad_request(format!("window {other:?} is not known"))
                        .hint("top lists cover a minute or an hour"),
                )
            }
        };
        let by_ops = match sort {
            "bytes" => false,
            "ops" => true,
            other => {
                return Err(ApiErr::bad_request(format!("sort {other:?} is not known"))
                    .hint("use bytes or ops"))
            }
        };
        let limit = limit.clamp(1, 1000);
        let (mut rows, untracked) = match by {
            "file" | "dir" => {
                let t = self.rollups().top(
                    w,
                    if by == "file" {
                        TopBy::File
                    } else {
                        TopBy::Dir
                    },
                    by_ops,
                    limit,
                    now(),
                );
                let rows = t
                    .rows
                    .into_iter()
                    .map(|(group, c)| api::ActivityRow {
                        group,
                        ops: c.ops,
                        bytes: c.bytes,
                        errors: 0,
                        ops_per_s: c.ops as f64 / span,
                        bytes_per_s: c.bytes as f64 / span,
                        p50_us: None,
                        p99_us: None,
                    })
                    .collect();
                (rows, t.untracked)
            }
            "client" | "user" => {
                let mut rows = self.rollups().report(w, group_by(by)?, now());
                if by_ops {
                    rows.sort_by(|a, b| b.ops.cmp(&a.ops).then(b.bytes.cmp(&a.bytes)));
                }
                rows.truncate(limit);
                (rows, Default::default())
            }
            other => {
                return Err(ApiErr::bad_request(format!("top {other:?} is not known"))
                    .hint("use file, dir, client or user"))
            }
        };
        if by == "user" {
            self.name_users(rows.iter_mut().map(|r| &mut r.group));
        }
        Ok(api::ActivityTop {
            window: window.into(),
            by: by.into(),
            sort: sort.into(),
            rows,
            untracked_ops: untracked.ops,
            untracked_bytes: untracked.bytes,
        })
    }

    pub fn status(&self) -> api::Status {
        api::Status {
            version: env!("CARGO_PKG_VERSION").into(),
            hostname: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }
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
}
