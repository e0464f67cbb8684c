//! The small core every subsystem stands on: where the daemon works, the configuration
//! and its store, the disk inventory, the jobs and alerts services, the monitor's wake-up
//! and a few events. It knows no subsystem; subsystems reach each other only through
//! their own public methods or through these events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use rushes_api::{Disk, Severity};
use rushes_storage::{inventory, md};

use crate::alerts::{Alerts, Raise};
use crate::config::{ApplianceConfig, ConfigStore};
use crate::jobs::Jobs;

/// Where the daemon works.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/sys`.
    pub sys: PathBuf,
    /// Pools are mounted at `pools_dir/NAME`.
    pub pools_dir: PathBuf,
    /// Jobs, alerts, scrub records, the fabrics identity, Samba's passwords.
    pub state_dir: PathBuf,
    /// The supervisor's log file that rushes-init keeps (`/run/rushes/log.txt`).
    pub log_file: PathBuf,
    /// Running as the appliance (PID 1 is rushes-init): the host name, reboot and power
    /// off act on this machine. Off in host mode.
    pub appliance: bool,
}

impl Paths {
    /// Where pool `name` is mounted.
    pub fn mountpoint(&self, pool: &str) -> PathBuf {
        self.pools_dir.join(pool)
    }
}

/// What one subsystem tells the others, without knowing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Shares were added, changed or removed, or a pool under them came or went.
    SharesChanged,
    /// The configuration was reset to the defaults.
    Reset,
}

type Listener = Box<dyn Fn(Event) + Send + Sync>;

#[derive(Default)]
struct InventoryState {
    disks: Vec<Disk>,
    scanned: Option<Instant>,
    dirty: bool,
    /// Disks a running job is about to use, by kernel name.
    claimed: HashMap<String, u64>,
}

/// The machine's disks as the monitor last saw them, and the ones jobs have claimed.
pub struct Inventory {
    sys: PathBuf,
    state: Mutex<InventoryState>,
}

impl Inventory {
    fn lock(&self) -> MutexGuard<'_, InventoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Look at the disks now.
    pub fn rescan(&self) {
        let disks = inventory::scan(&inventory::Roots {
            sys: self.sys.clone(),
            ..Default::default()
        });
        let mut st = self.lock();
        let before: Vec<&str> = st.disks.iter().map(|d| d.name.as_str()).collect();
        let after: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        if before != after && st.scanned.is_some() {
            tracing::info!(disks = ?after, "disks changed");
        }
        st.disks = disks;
        st.scanned = Some(Instant::now());
        st.dirty = false;
    }

    /// A rescan is due: something changed, or 30 s passed.
    pub fn due(&self) -> bool {
        let st = self.lock();
        st.dirty
            || st
                .scanned
                .is_none_or(|t| t.elapsed() > Duration::from_secs(30))
    }

    /// The disks as scanned, without naming their users.
    pub fn raw(&self) -> Vec<Disk> {
        self.lock().disks.clone()
    }

    pub fn claim(&self, disks: &[Disk], job: u64) {
        let mut st = self.lock();
        for d in disks {
            st.claimed.insert(d.name.clone(), job);
        }
    }

    /// The job's disks now belong to an array, which says so itself.
    pub fn release(&self, job: u64) {
        self.lock().claimed.retain(|_, j| *j != job);
    }
}

pub struct Core {
    pub paths: Paths,
    store: ConfigStore,
    config: Mutex<ApplianceConfig>,
    pub inventory: Inventory,
    pub jobs: Arc<Jobs>,
    pub alerts: Arc<Alerts>,
    wake: (Mutex<bool>, Condvar),
    pub started: Instant,
    listeners: RwLock<Vec<Listener>>,
}

impl Core {
    /// Load the configuration (falling back to its previous generation, with an alert,
    /// when it is damaged) and the jobs and alerts kept in the state folder.
    pub fn open(paths: Paths, store: ConfigStore) -> Arc<Self> {
        let loaded = store.load();
        let alerts = Alerts::open(Some(paths.state_dir.join("alerts.json")));
        let jobs = Jobs::open(Some(paths.state_dir.join("jobs.json")), &alerts);
        match &loaded.problem {
            Some(problem) => {
                tracing::error!(%problem, "configuration");
                alerts.publish("config", vec![Raise::new(
                    "config-fallback",
                    Severity::Warning,
                    problem.clone(),
                    "check the last configuration change; the next change saved through the API writes a clean file",
                )]);
            }
            None => alerts.publish("config", vec![]),
        }
        Arc::new(Self {
            inventory: Inventory {
                sys: paths.sys.clone(),
                state: Mutex::new(InventoryState {
                    dirty: true,
                    ..Default::default()
                }),
            },
            paths,
            store,
            config: Mutex::new(loaded.config),
            jobs,
            alerts,
            wake: (Mutex::new(false), Condvar::new()),
            started: Instant::now(),
            listeners: RwLock::default(),
        })
    }

    fn config_lock(&self) -> MutexGuard<'_, ApplianceConfig> {
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where rushes.toml is.
    pub fn config_path(&self) -> &std::path::Path {
        &self.store.path
    }

    /// Read one thing from the configuration without copying all of it.
    pub fn with_config<T>(&self, f: impl FnOnce(&ApplianceConfig) -> T) -> T {
        f(&self.config_lock())
    }

    /// Change the configuration and write it (with its previous generation kept); the
    /// change is dropped if it cannot be written.
    pub fn save_config(&self, change: impl FnOnce(&mut ApplianceConfig)) -> Result<(), String> {
        let mut config = self.config_lock();
        let mut next = config.clone();
        change(&mut next);
        self.store
            .save(&next)
            .map_err(|e| format!("cannot write {}: {e}", self.store.path.display()))?;
        *config = next;
        drop(config);
        self.alerts.publish("config", vec![]);
        Ok(())
    }

    /// Ask the monitor for a fresh look (a device came or went).
    pub fn poke(&self) {
        self.inventory.lock().dirty = true;
        let (flag, cv) = &self.wake;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    /// Wait for a poke or `timeout`; answers whether it was poked.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, cv) = &self.wake;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = cv
            .wait_timeout_while(guard, timeout, |poked| !*poked)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, false)
    }

    /// Call `listener` on every event from now on.
    pub fn on(&self, listener: impl Fn(Event) + Send + Sync + 'static) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(listener));
    }

    /// Tell every listener, on this thread.
    pub fn emit(&self, event: Event) {
        for l in self
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            l(event);
        }
    }

    /// The inventory, with what uses each disk named in the admin's terms. It is the
    /// monitor's copy, rescanned on every block uevent, at least every 30 s, and by
    /// whatever changes disks; reading it does no I/O (the console asks every 2 s).
    pub fn disks(&self) -> Vec<Disk> {
        let pools = self.with_config(|c| c.pools.clone());
        let md_pools: HashMap<String, String> = pools
            .iter()
            .filter_map(|p| md::kernel_name(&p.name).map(|k| (k, p.name.clone())))
            .collect();
        let st = self.inventory.lock();
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
                } else if let Some(pool) = pools
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

    /// `nvme4n1 (pool media)` for each of `disks` that something uses.
    pub fn users_of(&self, disks: &[String]) -> Vec<String> {
        self.disks()
            .into_iter()
            .filter(|d| disks.contains(&d.name))
            .filter_map(|d| d.in_use_by.map(|u| format!("{} ({u})", d.name)))
            .collect()
    }
}
