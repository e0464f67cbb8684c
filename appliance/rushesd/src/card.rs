//! The offload card through the API: rushesd runs the emulated card (the card's engine
//! as a child process), finds it by its socket, configures it from `[card]` in
//! rushes.toml, attaches the saved bays through it, checks its firmware bundles, and
//! when the card fails, moves its bays to the kernel's NVMe/TCP path with an alert.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rushes_api::{self as api, Severity};
use rushes_firmware::card::{self, OffloadCard, RpcCard};
use rushes_storage::fabrics;

use crate::alerts::Raise;
use crate::core::Core;
use crate::error::{ApiErr, ApiResult};
use crate::fabrics::{check_field, check_transport, host_identity, target};

/// How often a failed card is started again before its bays move to the kernel path.
const RESTARTS: u32 = 3;

/// The card process and what became of it.
#[derive(Default)]
struct CardRuntime {
    child: Option<Child>,
    state: String,
    problem: Option<String>,
    restarts: u32,
    started: Option<Instant>,
    /// The card's bays run on the kernel's initiator because the card failed.
    fallback: bool,
    busy: bool,
    /// Health queries in a row the card did not answer.
    silent: u32,
    /// The running firmware differs from its active slot's, as the monitor last looked.
    firmware_mismatch: Option<Raise>,
}

/// `1FB3:0001` → (0x1fb3, 0x0001).
fn parse_pci_id(id: &str) -> Option<(u16, u16)> {
    let (v, d) = id.trim().split_once(':')?;
    Some((
        u16::from_str_radix(v, 16).ok()?,
        u16::from_str_radix(d, 16).ok()?,
    ))
}

/// PCI functions under `sys` whose vendor and device IDs are in `ids`:
/// `0000:03:00.0 1fb3:0001`.
pub(crate) fn pci_functions(sys: &std::path::Path, ids: &[String]) -> Vec<String> {
    let wanted: Vec<(u16, u16)> = ids.iter().filter_map(|i| parse_pci_id(i)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let dir = sys.join("bus/pci/devices");
    let read_id = |slot: &std::path::Path, file: &str| {
        std::fs::read_to_string(slot.join(file))
            .ok()
            .and_then(|t| u16::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
    };
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let path = e.path();
                    let id = (read_id(&path, "vendor")?, read_id(&path, "device")?);
                    wanted.contains(&id).then(|| {
                        format!(
                            "{} {:04x}:{:04x}",
                            e.file_name().to_string_lossy(),
                            id.0,
                            id.1
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The card's view of a namespace, in the API's terms.
fn namespace_view(n: card::AttachedNamespace) -> api::CardNamespace {
    api::CardNamespace {
        nqn: n.subnqn,
        traddr: n.traddr,
        trsvcid: n.trsvcid,
        nsid: n.nsid,
        device: n.device,
        size_bytes: n.size_bytes,
        read_ops: n.read_ops,
        write_ops: n.write_ops,
        read_bytes: n.read_bytes,
        write_bytes: n.write_bytes,
        errors: n.errors,
    }
}

fn card_error(e: card::CardError) -> ApiErr {
    match e {
        card::CardError::Refused { message, .. } => ApiErr::new(409, "card-refused", message),
        other => ApiErr::new(503, "card-unreachable", other.to_string())
            .hint("see `rushesctl card` and the alerts"),
    }
}

pub struct Card {
    core: Arc<Core>,
    rt: Mutex<CardRuntime>,
}

impl Card {
    /// Start the card if `[card]` asks for it (see [`Card::start_card`]).
    pub fn start(core: Arc<Core>) -> Arc<Self> {
        let card = Arc::new(Self {
            core,
            rt: Mutex::default(),
        });
        card.start_card();
        card
    }

    /// From the monitor: keep the card running, look at its firmware, and publish its
    /// alerts. The card is asked here only, never for an API or metrics request.
    pub fn tick(self: &Arc<Self>) {
        self.keep_card();
        let running = matches!(self.rt().state.as_str(), "ok" | "degraded");
        let mismatch = if running { self.firmware_alert() } else { None };
        self.rt().firmware_mismatch = mismatch;
        self.publish_alerts();
    }

    fn rt(&self) -> MutexGuard<'_, CardRuntime> {
        self.rt.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn card_socket(&self) -> PathBuf {
        self.core
            .paths
            .log_file
            .parent()
            .map(|d| d.join("card.sock"))
            .unwrap_or_else(|| card::DEFAULT_SOCKET.into())
    }

    fn card(&self) -> RpcCard {
        let mut c = RpcCard::new(self.card_socket());
        c.timeout = Duration::from_secs(30);
        c
    }

    /// The engine binary: beside rushesd, else on PATH.
    fn card_binary() -> PathBuf {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rushes-card")))
            .filter(|p| p.exists())
            .unwrap_or_else(|| "rushes-card".into())
    }

    /// Start the card if `[card]` asks for it, configure it, and attach the saved bays.
    /// A card that does not come up hands its bays to the kernel path.
    fn start_card(&self) {
        let settings = self.core.with_config(|c| c.card.clone());
        if settings.mode != "emulated" {
            let mut st = self.rt();
            st.state = "off".into();
            return;
        }
        self.rt().problem = None;
        if let Err(e) = host_identity(&self.core.paths.state_dir) {
            self.card_failed(format!("no host identity for the card: {}", e.message));
            return;
        }
        let _ = Command::new("modprobe").args(["-q", "ublk_drv"]).status();
        let _ = Command::new("modprobe").args(["-q", "nvme-tcp"]).status();
        let socket = self.card_socket();
        let mut probe = self.card();
        probe.timeout = Duration::from_secs(2);
        let adopted = probe.info().is_ok();
        if adopted {
            // A card that outlived a restart of rushesd keeps its bays and devices.
            tracing::info!(socket = %socket.display(), "found a running card");
        } else {
            let _ = std::fs::remove_file(&socket);
            self.spawn_card(&socket);
            if self.rt().state == "failed" {
                return;
            }
        }
        let card = self.card();
        let begun = Instant::now();
        let info = loop {
            match card.info() {
                Ok(info) => break info,
                Err(e) if begun.elapsed() > Duration::from_secs(15) => {
                    self.card_failed(format!("the card did not answer: {e}"));
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        self.rt().started = Some(Instant::now());
        self.configure_card(&card, &info, &settings);
    }

    fn spawn_card(&self, socket: &std::path::Path) {
        let child = Command::new(Self::card_binary())
            .arg("--host-file")
            .arg(self.core.paths.state_dir.join("fabrics-host"))
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .arg("--state")
            .arg(self.core.paths.state_dir.join("card"))
            .stdin(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                self.card_failed(format!("cannot start the card's engine: {e}"));
                return;
            }
        };
        let mut st = self.rt();
        st.child = Some(child);
        st.state = "starting".into();
    }

    fn configure_card(
        &self,
        card: &RpcCard,
        info: &card::CardInfo,
        settings: &crate::config::CardSettings,
    ) {
        tracing::info!(model = %info.model, serial = %info.serial, firmware = %info.firmware_version, "card up");
        if let Err(e) = card.configure(&card::CardConfig {
            fabric: settings.fabric.clone(),
        }) {
            self.card_failed(format!("the card refused its configuration: {e}"));
            return;
        }
        for bay in &settings.bays {
            let attach = card::Attach {
                traddr: bay.traddr.clone(),
                trsvcid: bay.trsvcid.clone(),
                subnqn: bay.nqn.clone(),
                digests: false,
            };
            let already = card
                .stats()
                .is_ok_and(|ns| ns.iter().any(|n| n.subnqn == bay.nqn));
            if already {
                continue;
            }
            match card.attach(&attach) {
                Ok(ns) => {
                    tracing::info!(nqn = %bay.nqn, namespaces = ns.len(), "bay attached through the card")
                }
                Err(e) => {
                    tracing::warn!(nqn = %bay.nqn, error = %e, "the card cannot attach a saved bay: it goes through the kernel instead");
                    self.kernel_fallback(bay);
                    let mut st = self.rt();
                    st.problem = Some(format!(
                        "{}: {e}; it runs on the kernel's NVMe/TCP path",
                        bay.nqn
                    ));
                }
            }
        }
        {
            let mut st = self.rt();
            st.state = if st.problem.is_some() {
                "degraded"
            } else {
                "ok"
            }
            .into();
            st.fallback = false;
        }
        // The ublk devices appear a moment after the attach answers.
        std::thread::sleep(Duration::from_millis(500));
        self.core.inventory.rescan();
    }

    /// The card is gone for good: say so, and connect its bays with the kernel's
    /// initiator so their disks come back.
    fn card_failed(&self, why: String) {
        tracing::error!(problem = %why, "offload card failed: its bays move to the kernel's NVMe/TCP path");
        let bays = self.core.with_config(|c| c.card.bays.clone());
        {
            let mut st = self.rt();
            st.state = "failed".into();
            st.problem = Some(why);
            st.fallback = true;
            if let Some(mut c) = st.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for bay in bays {
            self.kernel_fallback(&bay);
        }
        self.core.poke();
    }

    /// Connect `bay` with the kernel's initiator, because the card cannot carry it.
    fn kernel_fallback(&self, bay: &api::FabricPath) {
        let kernel = rushes_storage::fabrics::Kernel::default();
        if !kernel.available() {
            return;
        }
        let Ok(host) = host_identity(&self.core.paths.state_dir) else {
            return;
        };
        let t = target(bay);
        if kernel.find(&t).is_some() {
            return;
        }
        match kernel.connect(&t, &host, fabrics::Timeouts::default()) {
            Ok(ctrl) => {
                tracing::warn!(nqn = %t.nqn, controller = %ctrl, "bay connected through the kernel instead of the card")
            }
            Err(e) => {
                tracing::error!(nqn = %t.nqn, error = %e, "the bay is unreachable by the kernel path too")
            }
        }
    }

    /// From the monitor: notice a card process that ended, start it again (up to three
    /// times), then give its bays to the kernel.
    fn keep_card(self: &Arc<Self>) {
        let exited = {
            let mut st = self.rt();
            if st.busy || st.fallback {
                return;
            }
            match st.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => {
                    st.child = None;
                    Some(status.to_string())
                }
                _ => None,
            }
        };
        let status = match exited {
            Some(status) => status,
            None => {
                self.refresh_card_health();
                let st = self.rt();
                if st.state == "failed" && st.child.is_none() {
                    st.problem.clone().unwrap_or_default()
                } else {
                    return;
                }
            }
        };
        let again = {
            let mut st = self.rt();
            st.restarts += 1;
            st.state = "failed".into();
            st.problem = Some(format!("the card's engine stopped ({status})"));
            st.busy = true;
            st.restarts <= RESTARTS
        };
        tracing::error!(%status, "the offload card stopped");
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            let _ = rushes_nas::sys::run_as_root();
            if again {
                std::thread::sleep(Duration::from_secs(2));
                me.start_card();
            } else {
                me.card_failed(format!(
                    "the card's engine stopped {RESTARTS} times; last: {status}"
                ));
            }
            me.rt().busy = false;
            me.core.poke();
        });
    }

    /// The card's own view of its health (a bay it lost), for the alerts.
    fn refresh_card_health(&self) {
        let running = {
            let st = self.rt();
            matches!(st.state.as_str(), "ok" | "degraded")
        };
        if !running {
            return;
        }
        let mut card = self.card();
        card.timeout = Duration::from_secs(2);
        let health = card.health();
        if let Err(card::CardError::Unreachable { detail, .. }) = &health {
            // A card rushesd adopted has no child to wait for: a dead socket is how
            // it shows it stopped.
            let mut st = self.rt();
            st.silent += 1;
            if st.silent >= 3 && st.child.is_none() {
                st.silent = 0;
                st.state = "failed".into();
                st.problem = Some(format!("the card stopped answering: {detail}"));
            }
            return;
        }
        if let Ok(h) = health {
            let mut st = self.rt();
            st.silent = 0;
            if h.state == "ok" {
                st.state = "ok".into();
                st.problem = None;
            } else {
                st.state = "degraded".into();
                st.problem = h.problems.first().cloned();
            }
        }
    }

    fn stop_card(&self) {
        if let Some(mut c) = self.rt().child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn card_status(&self) -> api::CardStatus {
        let settings = self.core.with_config(|c| c.card.clone());
        let (state, problem) = {
            let st = self.rt();
            (st.state.clone(), st.problem.clone())
        };
        let mut status = api::CardStatus {
            pci: pci_functions(&self.core.paths.sys, &settings.pci_ids),
            mode: settings.mode.clone(),
            state: if state.is_empty() {
                "off".into()
            } else {
                state
            },
            problem,
            fabric: settings.fabric.clone(),
            bays: settings.bays.clone(),
            ..Default::default()
        };
        if settings.mode == "off" || status.state == "failed" {
            return status;
        }
        let mut card = self.card();
        card.timeout = Duration::from_secs(3);
        if let Ok(info) = card.info() {
            status.model = Some(info.model);
            status.serial = Some(info.serial);
            status.firmware_version = Some(info.firmware_version);
            status.active_slot = Some(info.active_slot);
            status.fabric = info.fabric;
            status.ports = info
                .ports
                .into_iter()
                .map(|p| api::CardPort {
                    name: p.name,
                    link: p.link,
                    speed_mbps: p.speed_mbps,
                })
                .collect();
        }
        if let Ok(h) = card.health() {
            status.temperature_c = h.temperature_c;
            status.errors = h.errors;
            status.queue_depth = h.queue_depth;
            if h.state != "ok" {
                status.state = h.state;
                status.problem = h.problems.first().cloned().or(status.problem);
            }
        }
        if let Ok(fw) = card.firmware() {
            status.staged_slot = fw.staged;
            status.slots = fw
                .slots
                .into_iter()
                .map(|s| api::CardSlot {
                    slot: s.slot,
                    version: s.version,
                })
                .collect();
        }
        if let Ok(ns) = card.stats() {
            status.namespaces = ns.into_iter().map(namespace_view).collect();
        }
        status
    }

    /// Turn the emulated card on or off (saved in `[card]`).
    pub fn set_card_mode(&self, req: api::CardMode) -> ApiResult<api::CardStatus> {
        if let Some(ids) = req.pci_ids {
            for id in &ids {
                if parse_pci_id(id).is_none() {
                    return Err(ApiErr::bad_request(format!("{id:?} is not a PCI ID"))
                        .hint("write it as vendor:device in hex, e.g. 1fb3:0001"));
                }
            }
            self.core
                .save_config(|c| c.card.pci_ids = ids)
                .map_err(ApiErr::failed)?;
        }
        let mode = req.mode.as_str();
        if mode != "off" && mode != "emulated" {
            return Err(
                ApiErr::bad_request(format!("card mode {mode:?} is not known"))
                    .hint("use emulated or off"),
            );
        }
        let current = self.core.with_config(|c| c.card.mode.clone());
        if current != mode {
            if mode == "off" && !self.core.with_config(|c| c.card.bays.is_empty()) {
                return Err(
                    ApiErr::new(409, "in-use", "bays are attached through the card")
                        .hint("detach them first: rushesctl card detach NQN"),
                );
            }
            let m = mode.to_string();
            self.core
                .save_config(|c| c.card.mode = m)
                .map_err(ApiErr::failed)?;
            if mode == "off" {
                self.stop_card();
                *self.rt() = Default::default();
            } else {
                self.start_card();
            }
        }
        Ok(self.card_status())
    }

    fn running_card(&self) -> ApiResult<RpcCard> {
        let mode = self.core.with_config(|c| c.card.mode.clone());
        let st = self.rt();
        if mode != "emulated" {
            return Err(ApiErr::new(409, "no-card", "no offload card is in use")
                .hint("turn the emulated card on: rushesctl card mode emulated"));
        }
        if st.fallback {
            return Err(ApiErr::new(
                503,
                "card-failed",
                format!(
                    "the card failed: {}",
                    st.problem.clone().unwrap_or_default()
                ),
            )
            .hint("its bays run on the kernel's NVMe/TCP path; restart the appliance to try the card again"));
        }
        drop(st);
        Ok(self.card())
    }

    /// Attach a bay through the card and save it.
    pub fn card_attach(&self, req: api::FabricPath) -> ApiResult<Vec<api::CardNamespace>> {
        check_transport(&req.transport)?;
        check_field("NQN", &req.nqn)?;
        check_field("address", &req.traddr)?;
        check_field("port", &req.trsvcid)?;
        let kernel = fabrics::Kernel {
            sys: self.core.paths.sys.clone(),
            ..Default::default()
        };
        let saved = self
            .core
            .with_config(|c| c.fabrics.iter().any(|p| p.nqn == req.nqn));
        if saved || kernel.controllers().iter().any(|c| c.subsysnqn == req.nqn) {
            return Err(ApiErr::new(
                409,
                "connected",
                format!("{} is connected through the kernel's initiator", req.nqn),
            )
            .hint("one host path per bay: disconnect it first (rushesctl fabric disconnect), or leave it there"));
        }
        let card = self.running_card()?;
        let attached = card
            .attach(&card::Attach {
                traddr: req.traddr.clone(),
                trsvcid: req.trsvcid.clone(),
                subnqn: req.nqn.clone(),
                digests: false,
            })
            .map_err(card_error)?;
        let saved = self.core.with_config(|c| c.card.bays.contains(&req));
        if !saved {
            let bay = req.clone();
            self.core
                .save_config(|c| c.card.bays.push(bay))
                .map_err(ApiErr::failed)?;
        }
        std::thread::sleep(Duration::from_millis(500));
        self.core.inventory.rescan();
        Ok(attached.into_iter().map(namespace_view).collect())
    }

    pub fn card_detach(&self, req: api::CardDetach) -> ApiResult<()> {
        let status = self.card_status();
        let devices: Vec<String> = status
            .namespaces
            .iter()
            .filter(|n| n.nqn == req.nqn)
            .map(|n| n.device.trim_start_matches("/dev/").to_string())
            .collect();
        let users = self.core.users_of(&devices);
        if !users.is_empty() {
            return Err(ApiErr::new(
                409,
                "in-use",
                format!("{} is in use: {}", req.nqn, users.join(", ")),
            )
            .hint("destroy the pool on it first"));
        }
        let card = self.running_card()?;
        card.detach(&req.nqn).map_err(card_error)?;
        let nqn = req.nqn.clone();
        self.core
            .save_config(|c| c.card.bays.retain(|b| b.nqn != nqn))
            .map_err(ApiErr::failed)?;
        self.core.inventory.rescan();
        Ok(())
    }

    /// Check a bundle here first (hash, model, host version), then stage it.
    /// Run a firmware step as a job of its own (kept in the jobs' record with its
    /// outcome); the API answers when it ends, with the card's status or the refusal.
    fn firmware_job(
        &self,
        kind: &str,
        step: &str,
        f: impl FnOnce() -> ApiResult<()>,
    ) -> ApiResult<api::CardStatus> {
        let target = api::JobTarget {
            kind: api::TargetKind::Card,
            name: String::new(),
        };
        let work = self.core.jobs.create(kind, target, false);
        let mut refused = None;
        let result = self.core.jobs.run_here(work, |w| {
            w.step(step);
            f().map_err(|e| {
                let message = e.message.clone();
                refused = Some(e);
                message
            })
        });
        match (result, refused) {
            (Ok(()), _) => Ok(self.card_status()),
            (Err(_), Some(e)) => Err(e),
            (Err(message), None) => Err(ApiErr::failed(message)),
        }
    }

    pub fn card_stage(&self, req: api::FirmwareStage) -> ApiResult<api::CardStatus> {
        let card = self.running_card()?;
        self.firmware_job(
            "firmware-stage",
            "checking the bundle and writing it to the spare slot",
            || {
                let info = card.info().map_err(card_error)?;
                let host_version = env!("CARGO_PKG_VERSION");
                rushes_firmware::bundle::verify(
                    std::path::Path::new(&req.path),
                    &info.model,
                    host_version,
                )
                .map_err(|e| {
                    ApiErr::new(400, "bad-bundle", format!("{}: {e}", req.path))
                        .hint("get the bundle made for this card again; nothing was changed")
                })?;
                card.stage_firmware(&card::Stage {
                    path: req.path.clone(),
                    host_version: host_version.into(),
                })
                .map_err(card_error)?;
                Ok(())
            },
        )
    }

    pub fn card_activate(&self) -> ApiResult<api::CardStatus> {
        let card = self.running_card()?;
        self.firmware_job("firmware-activate", "activating the staged slot", || {
            card.activate_firmware().map_err(card_error).map(drop)
        })
    }

    pub fn card_rollback(&self) -> ApiResult<api::CardStatus> {
        let card = self.running_card()?;
        self.firmware_job(
            "firmware-rollback",
            "going back to the previous slot",
            || card.rollback_firmware().map_err(card_error).map(drop),
        )
    }

    /// The card's alerts: failed (its bays moved to the kernel path), degraded, or
    /// running other firmware than its active slot's.
    pub fn publish_alerts(&self) {
        let st = self.rt();
        let mut alerts = match st.state.as_str() {
            "failed" => vec![Raise::new(
                "card-failed",
                Severity::Critical,
                format!(
                    "the offload card failed: {}{}",
                    st.problem.clone().unwrap_or_default(),
                    if st.fallback {
                        "; its bays now run on the kernel's NVMe/TCP path"
                    } else {
                        "; starting it again"
                    }
                ),
                "pools on its bays may need `rushesctl pool replace` for members that moved; check the card's log in the Logs screen",
            )],
            "degraded" => vec![Raise::new(
                "card-degraded",
                Severity::Warning,
                format!(
                    "the offload card reports: {}",
                    st.problem.clone().unwrap_or_default()
                ),
                "check the bay it names: power and network",
            )],
            _ => vec![],
        };
        if matches!(st.state.as_str(), "ok" | "degraded") {
            alerts.extend(st.firmware_mismatch.clone());
        }
        drop(st);
        self.core.alerts.publish("card", alerts);
    }

    /// The card runs other firmware than its active slot holds (a failed activation,
    /// or a slot rewritten under it).
    fn firmware_alert(&self) -> Option<Raise> {
        let mut card = self.card();
        card.timeout = Duration::from_secs(1);
        let info = card.info().ok()?;
        let fw = card.firmware().ok()?;
        let slot = fw.slots.iter().find(|s| s.slot == info.active_slot)?;
        let held = slot.version.as_deref()?;
        (held != info.firmware_version).then(|| {
            Raise::new(
                "card-firmware-mismatch",
                Severity::Warning,
                format!(
                    "the offload card runs firmware {} but its active slot {} holds {}",
                    info.firmware_version, info.active_slot, held
                ),
                "activate the slot again (rushesctl card firmware activate) or roll back; the card keeps serving meanwhile",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_is_found_by_its_pci_ids() {
        let dir = tempfile::tempdir().unwrap();
        let dev = |slot: &str, vendor: &str, device: &str| {
            let d = dir.path().join("bus/pci/devices").join(slot);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("vendor"), format!("{vendor}\n")).unwrap();
            std::fs::write(d.join("device"), format!("{device}\n")).unwrap();
        };
        dev("0000:00:01.0", "0x8086", "0x29c0");
        dev("0000:03:00.0", "0x1b36", "0x0005");
        assert_eq!(
            pci_functions(dir.path(), &["1B36:0005".into()]),
            ["0000:03:00.0 1b36:0005"]
        );
        assert!(pci_functions(dir.path(), &[]).is_empty());
        assert!(pci_functions(dir.path(), &["8086:0001".into()]).is_empty());
        assert_eq!(parse_pci_id("nope"), None);
    }
}
