//! NVMe-oF bays through the API: discovery (with referrals to chained bays), connecting
//! and disconnecting subsystems, the paths' health as alerts, and keeping the saved
//! paths connected: at boot before pools are assembled, and again whenever a bay that
//! the kernel gave up on answers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rushes_api::{self as api, Severity};
use rushes_storage::fabrics::{self, HostIdentity, Kernel, Target};

use crate::alerts::Raise;
use crate::core::Core;
use crate::error::{ApiErr, ApiResult};

/// How long to listen for mDNS announcements of discovery controllers.
const MDNS_LISTEN: Duration = Duration::from_secs(4);

/// The mDNS service type discovery controllers announce (NVMe TP 8009).
pub(crate) const NVME_DISC_SERVICE: &str = "_nvme-disc._tcp.local.";

/// Discovery controllers that announce themselves over mDNS, heard within `listen`:
/// (address, port, transport). The TXT key `p` says the transport (`tcp` or `roce`).
fn announced(listen: Duration) -> Vec<(String, u16, String)> {
    let daemon = match mdns_sd::ServiceDaemon::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start mDNS");
            return Vec::new();
        }
    };
    let events = match daemon.browse(NVME_DISC_SERVICE) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot browse mDNS");
            let _ = daemon.shutdown();
            return Vec::new();
        }
    };
    let mut deadline = Instant::now() + listen;
    let mut extended = false;
    let mut found: Vec<(String, u16, String)> = Vec::new();
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            // A controller heard only at an IPv6 link-local address: its IPv4 record
            // often comes a moment later, and bays mostly listen on IPv4.
            if !extended && !found.is_empty() && found.iter().all(|(a, ..)| a.contains(':')) {
                extended = true;
                deadline = Instant::now() + listen;
                continue;
            }
            break;
        };
        match events.recv_timeout(left) {
            Ok(mdns_sd::ServiceEvent::ServiceResolved(info)) => {
                let transport = match info.get_property_val_str("p") {
                    Some("roce") | Some("rdma") => "rdma",
                    _ => "tcp",
                };
                for ip in info.get_addresses() {
                    // With its interface (`fe80::1%eth0`) when link-local: the kernel
                    // cannot reach one without it.
                    let entry = (ip.to_string(), info.get_port(), transport.to_string());
                    if !found.contains(&entry) {
                        found.push(entry);
                    }
                }
            }
            Ok(_) => {}
            Err(_) if Instant::now() < deadline => break,
            Err(_) => {}
        }
    }
    let _ = daemon.shutdown();
    // IPv4 first: what bays mostly listen on.
    found.sort_by_key(|(a, ..)| a.contains(':'));
    found
}

/// How many discovery controllers one discovery may read, referrals included.
const MAX_DISCOVERY_CONTROLLERS: usize = 16;
/// How often a saved path with no controller is tried again.
const RETRY: Duration = Duration::from_secs(15);

/// Field values go into the kernel's comma-separated option string: keep them plain.
pub(crate) fn check_field(what: &str, value: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 223
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=');
    if ok {
        Ok(())
    } else {
        Err(ApiErr::new(
            400,
            "bad-address",
            format!("{what} {value:?} is not usable"),
        )
        .hint("NQNs, addresses and ports are plain text without spaces, ',' or '='"))
    }
}

pub(crate) fn check_transport(transport: &str) -> ApiResult<()> {
    match transport {
        "tcp" | "rdma" => Ok(()),
        other => Err(ApiErr::new(
            400,
            "bad-transport",
            format!("transport {other:?} is not one Rushes connects"),
        )
        .hint("use tcp (NVMe/TCP) or rdma (NVMe/RoCE)")),
    }
}

pub(crate) fn target(p: &api::FabricPath) -> Target {
    Target {
        transport: p.transport.clone(),
        traddr: p.traddr.clone(),
        trsvcid: p.trsvcid.clone(),
        nqn: p.nqn.clone(),
    }
}

/// `10.0.0.9:8009` → (`10.0.0.9`, Some(`8009`)); `[fe80::1]:4420` and bare addresses too.
fn split_address(address: &str) -> (String, Option<String>) {
    if let Some(rest) = address.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once(']') {
            let port = port.strip_prefix(':').filter(|p| !p.is_empty());
            return (host.to_string(), port.map(str::to_string));
        }
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host.to_string(), Some(port.to_string())),
        _ => (address.to_string(), None),
    }
}

/// The appliance's NVMe-oF host identity (hostnqn, hostid), made once and kept in the
/// state folder: bays grant access by it.
pub fn host_identity(state_dir: &Path) -> ApiResult<HostIdentity> {
    HostIdentity::load_or_create(&state_dir.join("fabrics-host")).map_err(|e| {
        ApiErr::failed(e.to_string()).hint("check that RUSHES-CFG is mounted and writable")
    })
}

/// Saved paths being connected again, on a thread of their own.
#[derive(Default)]
struct Retry {
    running: bool,
    at: Option<Instant>,
}

pub struct Fabrics {
    core: Arc<Core>,
    retry: Mutex<Retry>,
}

impl Fabrics {
    /// Connect the saved paths (before pools are assembled, so a pool on a bay finds
    /// its disks).
    pub fn start(core: Arc<Core>) -> Arc<Self> {
        let fabrics = Arc::new(Self {
            core,
            retry: Mutex::default(),
        });
        fabrics.restore_fabrics();
        fabrics
    }

    /// From the monitor: reconnect what dropped, and publish the paths' alerts.
    pub fn tick(self: &Arc<Self>) {
        self.keep_fabrics();
        self.publish_alerts();
    }

    fn retry(&self) -> MutexGuard<'_, Retry> {
        self.retry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            sys: self.core.paths.sys.clone(),
            ..Default::default()
        }
    }

    fn fabric_host(&self) -> ApiResult<HostIdentity> {
        host_identity(&self.core.paths.state_dir)
    }

    fn fabrics_available(&self) -> ApiResult<Kernel> {
        let k = self.kernel();
        if k.available() {
            Ok(k)
        } else {
            Err(ApiErr::new(
                503,
                "no-fabrics",
                "this kernel has no NVMe-oF initiator (/dev/nvme-fabrics is missing)",
            )
            .hint("the appliance image loads nvme-tcp itself; on a host, run: modprobe nvme-tcp"))
        }
    }

    /// Every subsystem: saved paths and whatever the kernel has connected, with the
    /// namespaces each one brings.
    pub fn fabrics(&self) -> api::Fabrics {
        let kernel = self.kernel();
        let available = kernel.dev.join("nvme-fabrics").exists();
        let (saved, discovery) = self
            .core
            .with_config(|c| (c.fabrics.clone(), c.discovery.clone()));
        let controllers = kernel.controllers();
        let mut subsystems: BTreeMap<String, api::FabricSubsystem> = BTreeMap::new();
        let entry = |subs: &mut BTreeMap<String, api::FabricSubsystem>, nqn: &str| {
            subs.entry(nqn.to_string())
                .or_insert_with(|| api::FabricSubsystem {
                    nqn: nqn.to_string(),
                    paths: vec![],
                    namespaces: vec![],
                })
                .paths
                .len()
        };
        for p in &saved {
            entry(&mut subsystems, &p.nqn);
            let c = kernel_match(&controllers, p);
            subsystems
                .get_mut(&p.nqn)
                .expect("just added")
                .paths
                .push(api::PathState {
                    transport: p.transport.clone(),
                    traddr: p.traddr.clone(),
                    trsvcid: p.trsvcid.clone(),
                    controller: c.map(|c| c.name.clone()),
                    state: c.map_or("disconnected".into(), |c| c.state.clone()),
                    saved: true,
                });
        }
        for c in controllers
            .iter()
            .filter(|c| c.subsysnqn != fabrics::DISCOVERY_NQN)
        {
            entry(&mut subsystems, &c.subsysnqn);
            let sub = subsystems.get_mut(&c.subsysnqn).expect("just added");
            if !sub
                .paths
                .iter()
                .any(|p| p.controller.as_deref() == Some(&c.name))
            {
                sub.paths.push(api::PathState {
                    transport: c.transport.clone(),
                    traddr: c.traddr.clone(),
                    trsvcid: c.trsvcid.clone(),
                    controller: Some(c.name.clone()),
                    state: c.state.clone(),
                    saved: false,
                });
            }
        }
        let sys_block = self.core.paths.sys.join("block");
        for disk in self.core.disks() {
            let ctrls = rushes_storage::nvme::controllers_of(&sys_block, &disk.name);
            for sub in subsystems.values_mut() {
                if sub
                    .paths
                    .iter()
                    .any(|p| p.controller.as_ref().is_some_and(|c| ctrls.contains(c)))
                {
                    sub.namespaces.push(disk.name.clone());
                }
            }
        }
        let host = self.fabric_host().ok();
        api::Fabrics {
            hostnqn: host.as_ref().map(|h| h.hostnqn.clone()).unwrap_or_default(),
            hostid: host.map(|h| h.hostid).unwrap_or_default(),
            available,
            discovery: discovery
                .iter()
                .filter_map(|d| d.address.as_ref().map(|a| format!("{} {a}", d.transport)))
                .collect(),
            subsystems: subsystems.into_values().collect(),
        }
    }

    /// Ask a discovery controller (and the ones it refers to) what subsystems it has.
    /// An address that answers is remembered for the next bare discovery.
    pub fn discover(&self, req: api::Discover) -> ApiResult<api::DiscoveryResult> {
        check_transport(&req.transport)?;
        let mut asks: Vec<api::Discover> = match &req.address {
            Some(a) => vec![api::Discover {
                address: Some(a.trim().to_string()),
                transport: req.transport.clone(),
                mdns: false,
            }],
            None if req.mdns => Vec::new(),
            None => self.core.with_config(|c| c.discovery.clone()),
        };
        if req.mdns {
            for (addr, port, transport) in announced(MDNS_LISTEN) {
                let address = if addr.contains(':') {
                    format!("[{addr}]:{port}")
                } else {
                    format!("{addr}:{port}")
                };
                tracing::info!(%address, %transport, "a discovery controller announced itself over mDNS");
                if !asks.iter().any(|a| a.address.as_deref() == Some(&address)) {
                    asks.push(api::Discover {
                        address: Some(address),
                        transport,
                        mdns: false,
                    });
                }
            }
        }
        if asks.is_empty() {
            return Err(ApiErr::bad_request(if req.mdns {
                "no discovery controller announced itself over mDNS"
            } else {
                "no discovery address is saved yet"
            })
            .hint("give one: rushesctl fabric discover 10.0.0.9"));
        }
        let kernel = self.fabrics_available()?;
        let host = self.fabric_host()?;
        let controllers = kernel.controllers();
        let mut result = api::DiscoveryResult::default();
        for ask in &asks {
            let address = ask.address.clone().unwrap_or_default();
            let (traddr, port) = split_address(&address);
            check_field("address", &traddr)?;
            if let Some(p) = &port {
                check_field("port", p)?;
            }
            let found = kernel.discover_all(
                &ask.transport,
                &traddr,
                port.as_deref(),
                &host,
                MAX_DISCOVERY_CONTROLLERS,
            );
            for (via, e) in found.entries {
                let path = api::FabricPath {
                    nqn: e.subnqn.clone(),
                    transport: fabrics::transport_name(e.trtype).into(),
                    traddr: e.traddr.clone(),
                    trsvcid: e.trsvcid.clone(),
                };
                let connected = kernel_match(&controllers, &path).is_some();
                result.subsystems.push(api::FoundSubsystem {
                    path,
                    via,
                    connected,
                });
            }
            if !found.visited.is_empty() {
                let remembered = self.core.with_config(|c| {
                    c.discovery.iter().any(|d| {
                        d.address.as_deref() == Some(&address) && d.transport == ask.transport
                    })
                });
                if !remembered {
                    let ask = ask.clone();
                    if let Err(e) = self.core.save_config(|c| c.discovery.push(ask)) {
                        tracing::warn!(error = %e, "cannot remember the discovery address");
                    }
                }
            }
            result.visited.extend(found.visited);
            result.problems.extend(found.problems);
        }
        tracing::info!(
            subsystems = result.subsystems.len(),
            controllers = ?result.visited,
            problems = ?result.problems,
            "discovery"
        );
        if result.visited.is_empty() {
            return Err(ApiErr::new(
                502,
                "unreachable",
                format!("no discovery controller answered: {}", result.problems.join("; ")),
            )
            .hint("check the bay's address and that it allows this host's NQN (rushesctl fabrics shows it)"));
        }
        Ok(result)
    }

    /// Connect one path to a subsystem and save it, so it comes back at boot.
    pub fn connect_fabric(&self, req: api::FabricPath) -> ApiResult<api::FabricSubsystem> {
        check_transport(&req.transport)?;
        check_field("NQN", &req.nqn)?;
        check_field("address", &req.traddr)?;
        check_field("port", &req.trsvcid)?;
        if req.nqn == fabrics::DISCOVERY_NQN {
            return Err(
                ApiErr::bad_request("that is the discovery NQN, not a subsystem")
                    .hint("run rushesctl fabric discover ADDRESS to list the subsystems behind it"),
            );
        }
        let kernel = self.fabrics_available()?;
        let host = self.fabric_host()?;
        let t = target(&req);
        if kernel.find(&t).is_none() {
            let ctrl = kernel
                .connect(&t, &host, fabrics::Timeouts::default())
                .map_err(|e| {
                    ApiErr::new(502, "connect-failed", e.to_string()).hint(format!(
                        "check that the bay serves {} at {} to host {}",
                        t.nqn,
                        t.address(),
                        host.hostnqn
                    ))
                })?;
            tracing::info!(nqn = %t.nqn, address = %t.address(), controller = %ctrl, "connected");
            self.wait_for_namespaces(&ctrl, Duration::from_secs(10));
        }
        let saved = self.core.with_config(|c| c.fabrics.contains(&req));
        if !saved {
            let path = req.clone();
            self.core
                .save_config(|c| c.fabrics.push(path))
                .map_err(ApiErr::failed)?;
        }
        self.core.poke();
        self.core.inventory.rescan();
        self.fabrics()
            .subsystems
            .into_iter()
            .find(|s| s.nqn == req.nqn)
            .ok_or_else(|| ApiErr::failed("the subsystem vanished right after connecting"))
    }

    /// Drop paths to a subsystem and forget them. Refused when it would take away the
    /// last path to namespaces a pool uses.
    pub fn disconnect_fabric(&self, req: api::Disconnect) -> ApiResult<()> {
        let kernel = self.kernel();
        let view = self
            .fabrics()
            .subsystems
            .into_iter()
            .find(|s| s.nqn == req.nqn)
            .ok_or_else(|| {
                ApiErr::not_found(format!("no subsystem {} is connected or saved", req.nqn))
                    .hint("rushesctl fabrics lists them")
            })?;
        let chosen = |p: &api::PathState| {
            req.traddr.as_ref().is_none_or(|a| *a == p.traddr)
                && req.trsvcid.as_ref().is_none_or(|s| *s == p.trsvcid)
        };
        let (going, staying): (Vec<_>, Vec<_>) = view.paths.iter().partition(|p| chosen(p));
        if going.is_empty() {
            return Err(
                ApiErr::not_found(format!("{} has no path at that address", req.nqn))
                    .hint("rushesctl fabrics lists its paths"),
            );
        }
        let live_left = staying.iter().any(|p| p.state == "live");
        if !live_left {
            let users = self.core.users_of(&view.namespaces);
            if !users.is_empty() {
                return Err(ApiErr::new(
                    409,
                    "in-use",
                    format!(
                        "{} is in use: {}; disconnecting it would take those disks away",
                        req.nqn,
                        users.join(", ")
                    ),
                )
                .hint("destroy the pool on it first, or keep another path connected"));
            }
        }
        for p in &going {
            if let Some(ctrl) = &p.controller {
                kernel
                    .disconnect(ctrl)
                    .map_err(|e| ApiErr::failed(e.to_string()))?;
                tracing::info!(nqn = %req.nqn, controller = %ctrl, "disconnected");
            }
        }
        let gone: Vec<(String, String)> = going
            .iter()
            .map(|p| (p.traddr.clone(), p.trsvcid.clone()))
            .collect();
        let nqn = req.nqn.clone();
        self.core
            .save_config(|c| {
                c.fabrics.retain(|f| {
                    !(f.nqn == nqn && gone.contains(&(f.traddr.clone(), f.trsvcid.clone())))
                })
            })
            .map_err(ApiErr::failed)?;
        self.core.poke();
        self.core.inventory.rescan();
        Ok(())
    }

    /// Wait until controller `ctrl` shows a namespace (the kernel scans them just after
    /// connecting) or `limit` passes: a subsystem may have none.
    fn wait_for_namespaces(&self, ctrl: &str, limit: Duration) {
        let dir = self.core.paths.sys.join("class/nvme").join(ctrl);
        let begun = Instant::now();
        while begun.elapsed() < limit {
            // A namespace shows under its controller as `nvme4n1` (or, under
            // multipath, as the path device `nvme4c4n1`).
            let has_ns = std::fs::read_dir(&dir).is_ok_and(|rd| {
                rd.filter_map(|e| e.ok()).any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("nvme")
                        .is_some_and(|rest| rest.contains('n'))
                })
            });
            if has_ns {
                // udev reads the new disk's identity a moment later.
                std::thread::sleep(Duration::from_millis(500));
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Connect every saved path that has no controller. At boot this runs before pools
    /// are assembled, so a pool on a bay finds its disks.
    fn restore_fabrics(&self) {
        let saved = self.core.with_config(|c| c.fabrics.clone());
        // Loads the initiator's modules, so the API reports fabrics as available.
        let kernel = self.kernel();
        let available = kernel.available();
        if saved.is_empty() {
            return;
        }
        if !available {
            tracing::error!("saved NVMe-oF paths, but this kernel has no NVMe-oF initiator");
            return;
        }
        let host = match self.fabric_host() {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e.message, "no fabrics host identity");
                return;
            }
        };
        for p in &saved {
            let t = target(p);
            if kernel.find(&t).is_some() {
                continue;
            }
            match kernel.connect(&t, &host, fabrics::Timeouts::default()) {
                Ok(ctrl) => {
                    tracing::info!(nqn = %t.nqn, address = %t.address(), controller = %ctrl, "connected a saved path");
                    self.wait_for_namespaces(&ctrl, Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::warn!(nqn = %t.nqn, address = %t.address(), error = %e, "a saved path does not connect")
                }
            }
        }
        self.core.inventory.rescan();
    }

    /// From the monitor: saved paths the kernel gave up on (or that never came up) are
    /// tried again every 15 s, on a thread of their own so a dead bay never stalls
    /// the monitor.
    fn keep_fabrics(self: &Arc<Self>) {
        let none_saved = self.core.with_config(|c| c.fabrics.is_empty());
        let due = {
            let mut retry = self.retry();
            if none_saved || retry.running || retry.at.is_some_and(|t| t.elapsed() < RETRY) {
                false
            } else {
                retry.at = Some(Instant::now());
                true
            }
        };
        if !due {
            return;
        }
        let kernel = self.kernel();
        let controllers = kernel.controllers();
        let missing = self.core.with_config(|c| {
            c.fabrics
                .iter()
                .any(|p| kernel_match(&controllers, p).is_none())
        });
        if !missing {
            return;
        }
        self.retry().running = true;
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            let _ = rushes_nas::sys::run_as_root();
            me.restore_fabrics();
            me.retry().running = false;
            me.core.poke();
        });
    }

    /// Alerts for saved paths that are down: critical when no path to the subsystem is
    /// live (its namespaces are gone or frozen), a warning when another path carries it.
    pub fn publish_alerts(&self) {
        let mut out = Vec::new();
        if self.core.with_config(|c| c.fabrics.is_empty()) {
            self.core.alerts.publish("fabrics", out);
            return;
        }
        for sub in self.fabrics().subsystems {
            let live = sub.paths.iter().filter(|p| p.state == "live").count();
            for p in sub.paths.iter().filter(|p| p.saved && p.state != "live") {
                let (severity, effect) = if live == 0 {
                    (
                        Severity::Critical,
                        "no path to it works: its disks wait for it (I/O is held for up to 10 minutes)".to_string(),
                    )
                } else {
                    (
                        Severity::Warning,
                        format!("{live} other path(s) carry it meanwhile"),
                    )
                };
                out.push(Raise::new(
                    format!("fabric-path:{}@{}:{}", sub.nqn, p.traddr, p.trsvcid),
                    severity,
                    format!(
                        "NVMe-oF path to {} at {} {}:{} is {}; {effect}",
                        sub.nqn, p.transport, p.traddr, p.trsvcid, p.state
                    ),
                    "check the bay's power and its network link; the path comes back by itself when the bay answers",
                ));
            }
        }
        self.core.alerts.publish("fabrics", out);
    }
}

fn kernel_match<'a>(
    controllers: &'a [fabrics::Controller],
    p: &api::FabricPath,
) -> Option<&'a fabrics::Controller> {
    controllers.iter().find(|c| {
        c.subsysnqn == p.nqn
            && c.transport == p.transport
            && c.traddr == p.traddr
            && c.trsvcid == p.trsvcid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_address("10.0.0.9"), ("10.0.0.9".into(), None));
        assert_eq!(
            split_address("10.0.0.9:8009"),
            ("10.0.0.9".into(), Some("8009".into()))
        );
        assert_eq!(
            split_address("[fe80::1]:4420"),
            ("fe80::1".into(), Some("4420".into()))
        );
        assert_eq!(split_address("fe80::1"), ("fe80::1".into(), None));
    }

    #[test]
    fn option_string_injection_is_refused() {
        assert!(check_field("NQN", "nqn.2026-11.io.rushes:bay1").is_ok());
        for bad in ["a,hostnqn=x", "a=b", "a b", "", "a\nb"] {
            assert!(check_field("NQN", bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_transport("fc").is_err());
    }
}
