//! Software updates from the box (`/v1/update`): a signed bundle, from a path on the box
//! or a URL, checked before anything is written and then streamed into the idle boot
//! slot as a job; the slots as the boot loader sees them; and going back to the other
//! slot on purpose. The bundle format and its checks are rushes-update's; init blesses
//! the new slot once the stack is ready.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rushes_api as api;
use rushes_update::slots::{Esp, SlotState};
use rushes_update::{PublicKey, Refused};

use crate::core::Core;
use crate::error::{ApiErr, ApiResult};

/// Where the appliance's image keeps the keys it takes bundles from (mkimage --trust).
pub const APPLIANCE_KEYS: &str = "/usr/share/rushes/update-keys";
/// Where the boot partition is mounted while slots are read or written.
const ESP_MOUNT: &str = "/run/rushes/esp-update";
const ESP_DEVICES: [&str; 2] = [
    "/dev/disk/by-partlabel/RUSHES-BOOT",
    "/dev/disk/by-label/RUSHES-BOOT",
];

/// Where the slots are.
pub enum EspPlace {
    /// The appliance's RUSHES-BOOT partition, mounted for each look or write.
    Partition,
    /// A folder laid out like the ESP (host mode, `--esp`).
    Folder(PathBuf),
    /// None: host mode without `--esp`.
    Absent,
}

/// How updates are set up: the slots, the keys, what runs now.
pub struct UpdateSetup {
    pub esp: EspPlace,
    pub keys_dir: PathBuf,
    pub running_slot: Option<char>,
    pub version: String,
}

fn cmdline_value(key: &str) -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key).map(str::to_string))
}

impl UpdateSetup {
    /// The appliance: the slot and version this boot came from are on the kernel command
    /// line that the slot's boot entry gives.
    pub fn appliance() -> Self {
        Self {
            esp: EspPlace::Partition,
            keys_dir: APPLIANCE_KEYS.into(),
            running_slot: cmdline_value("rushes.slot=").and_then(|s| s.chars().next()),
            version: cmdline_value("rushes.version=")
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        }
    }

    /// Host mode: a folder laid out as an ESP stands for the boot partition, and the
    /// slot that would boot first counts as the running one.
    pub fn host(esp: Option<PathBuf>, keys_dir: Option<PathBuf>) -> Self {
        let running_slot = esp
            .as_deref()
            .and_then(|d| Esp::new(d).slots().ok())
            .and_then(|s| s.first().map(|s| s.name));
        Self {
            esp: esp.map_or(EspPlace::Absent, EspPlace::Folder),
            keys_dir: keys_dir.unwrap_or_else(|| PathBuf::from(APPLIANCE_KEYS)),
            running_slot,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The boot partition, mounted (and kept from every other thread) while this lives.
struct Mounted<'a> {
    path: PathBuf,
    mounted: bool,
    _only_us: std::sync::MutexGuard<'a, ()>,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.mounted {
            rustix::fs::sync();
            if let Err(e) = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::empty())
            {
                tracing::warn!(error = %e, "cannot unmount the boot partition");
            }
        }
    }
}

pub struct Updates {
    core: Arc<Core>,
    setup: UpdateSetup,
    busy: Arc<AtomicBool>,
    /// One thread at a time mounts and uses the boot partition.
    esp: std::sync::Mutex<()>,
}

/// Clears the busy flag when the work that set it ends, however it ends.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn refused(e: Refused) -> ApiErr {
    let hint = match &e {
        Refused::UnknownKey(_) | Refused::BadSignature => {
            "get the bundle from the image's maker again; `rushesctl update status` lists the keys this box trusts"
        }
        Refused::Truncated(_) | Refused::Payload { .. } | Refused::TrailingBytes => {
            "fetch the bundle again and compare its size with the published one"
        }
        _ => "see `rushesctl update status` for what this box runs",
    };
    ApiErr::new(422, "bundle-refused", e.to_string()).hint(hint)
}

/// A bundle streamed over HTTP, read as a file is.
struct HttpBody {
    runtime: tokio::runtime::Handle,
    response: reqwest::Response,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for HttpBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.runtime.block_on(self.response.chunk()) {
                Ok(Some(bytes)) => {
                    self.chunk = bytes.to_vec();
                    self.at = 0;
                }
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(format!("the download failed: {e}"))),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

pub(crate) type Source = Box<dyn Read + Send>;

/// Open `source`, a path on the box or an http(s) URL, to read `what` (a bundle, a
/// backup) from; the hints say where such a file is usually found.
pub(crate) fn open_source(source: &str, what: &str, example: &str) -> ApiResult<Source> {
    if source.starts_with("http://") || source.starts_with("https://") {
        rushes_copies::install_tls();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ApiErr::failed("no async runtime to download with"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ApiErr::failed(format!("cannot make an HTTP client: {e}")))?;
        let response = runtime.block_on(client.get(source).send()).map_err(|e| {
            ApiErr::new(
                502,
                "download-failed",
                format!("cannot fetch {source}: {e}"),
            )
            .hint("check the URL and that the box reaches that server")
        })?;
        if !response.status().is_success() {
            return Err(ApiErr::new(
                502,
                "download-failed",
                format!("{source} answered {}", response.status()),
            ));
        }
        return Ok(Box::new(HttpBody {
            runtime,
            response,
            chunk: Vec::new(),
            at: 0,
        }));
    }
    let path = Path::new(source);
    if !path.is_absolute() {
        return Err(ApiErr::bad_request(format!(
            "{source:?} is neither an absolute path on the box nor an http(s) URL"
        ))
        .hint(format!(
            "copy the {what} onto a share and give its path under /pools, or give a URL"
        )));
    }
    // Not blocking: a FIFO or a device named here is refused below, not waited on.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| {
            ApiErr::not_found(format!("cannot open {source}: {e}")).hint(format!(
                "give the path of the {what} as the box sees it, e.g. {example}"
            ))
        })?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(ApiErr::bad_request(format!("{source} is not a file")));
    }
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
}

impl Updates {
    pub fn new(core: Arc<Core>, setup: UpdateSetup) -> Arc<Self> {
        Arc::new(Self {
            core,
            setup,
            busy: Arc::default(),
            esp: std::sync::Mutex::default(),
        })
    }

    fn keys(&self) -> (Vec<PublicKey>, Vec<String>) {
        PublicKey::load_dir(&self.setup.keys_dir)
    }

    fn mount(&self) -> ApiResult<(Esp, Mounted<'_>)> {
        let guard = self.esp.lock().unwrap_or_else(|e| e.into_inner());
        self.mount_with(guard)
    }

    fn mount_with<'a>(
        &'a self,
        guard: std::sync::MutexGuard<'a, ()>,
    ) -> ApiResult<(Esp, Mounted<'a>)> {
        let no_esp = || {
            ApiErr::new(
                409,
                "no-boot-partition",
                "this rushesd has no boot slots to update",
            )
            .hint("host mode: start rushesd host with --esp DIR")
        };
        match &self.setup.esp {
            EspPlace::Absent => Err(no_esp()),
            EspPlace::Folder(dir) => Ok((
                Esp::new(dir),
                Mounted {
                    path: dir.clone(),
                    mounted: false,
                    _only_us: guard,
                },
            )),
            EspPlace::Partition => {
                let device = ESP_DEVICES
                    .into_iter()
                    .find(|p| Path::new(p).exists())
                    .ok_or_else(|| {
                        ApiErr::failed("the boot partition RUSHES-BOOT is not there")
                            .hint("the stick the box booted from may have been pulled")
                    })?;
                let _ = std::fs::create_dir_all(ESP_MOUNT);
                // Left mounted by a rushesd that was killed mid-update.
                let _ = rustix::mount::unmount(ESP_MOUNT, rustix::mount::UnmountFlags::empty());
                rustix::mount::mount(
                    device,
                    ESP_MOUNT,
                    "vfat",
                    rustix::mount::MountFlags::NOATIME,
                    None,
                )
                .map_err(|e| {
                    ApiErr::failed(format!("cannot mount the boot partition {device}: {e}"))
                })?;
                Ok((
                    Esp::new(ESP_MOUNT),
                    Mounted {
                        path: ESP_MOUNT.into(),
                        mounted: true,
                        _only_us: guard,
                    },
                ))
            }
        }
    }

    fn take_busy(&self) -> ApiResult<Busy> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(ApiErr::new(
                409,
                "update-busy",
                "an update or rollback is already being written",
            )
            .hint("see `rushesctl jobs`"));
        }
        Ok(Busy(Arc::clone(&self.busy)))
    }

    pub fn status(&self) -> api::UpdateStatus {
        let (keys, mut problems) = self.keys();
        if keys.is_empty() {
            problems.push(format!(
                "no update keys in {}: this image takes no bundles (build it with mkimage --trust KEY.pub)",
                self.setup.keys_dir.display()
            ));
        }
        // While an update is being written, the slots are not looked at.
        let mounted = match self.esp.try_lock() {
            Ok(guard) => self.mount_with(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => self.mount_with(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => Err(ApiErr::new(
                409,
                "update-busy",
                "an update is being written: the slots are shown once it is done",
            )),
        };
        let slots = match mounted {
            Ok((esp, _mounted)) => match esp.slots() {
                Ok(slots) => slots,
                Err(e) => {
                    problems.push(format!("cannot read the boot entries: {e}"));
                    Vec::new()
                }
            },
            Err(e) => {
                problems.push(e.message.clone());
                Vec::new()
            }
        };
        let next = slots.first().map(|s| s.name);
        api::UpdateStatus {
            version: self.setup.version.clone(),
            model: rushes_update::MODEL.into(),
            running_slot: self.setup.running_slot.map(String::from),
            slots: slots
                .iter()
                .map(|s| api::BootSlot {
                    slot: s.name.to_string(),
                    state: match s.state {
                        SlotState::Good => "good",
                        SlotState::Trying(_) => "trying",
                        SlotState::Bad => "bad",
                        SlotState::Empty => "empty",
                    }
                    .into(),
                    tries_left: match s.state {
                        SlotState::Trying(n) => Some(n),
                        _ => None,
                    },
                    version: s.version.clone(),
                    running: Some(s.name) == self.setup.running_slot,
                    boots_next: Some(s.name) == next && s.state != SlotState::Empty,
                })
                .collect(),
            trusted_keys: keys.iter().map(PublicKey::fingerprint).collect(),
            problems,
        }
    }

    fn idle_slot(&self) -> ApiResult<char> {
        match self.setup.running_slot {
            Some('a') => Ok('b'),
            Some('b') => Ok('a'),
            _ => Err(ApiErr::new(409, "no-slot", "this boot did not come from slot A or B")
                .hint("the box was not started by its boot loader (rushes.slot= is missing from the kernel command line)")),
        }
    }

    /// Check the bundle's front here, so a refused one is answered at once with its
    /// reason; then stream its payload into the idle slot as a job.
    pub fn apply(self: &Arc<Self>, req: api::UpdateApply) -> ApiResult<api::Job> {
        let idle = self.idle_slot()?;
        let (keys, _) = self.keys();
        if keys.is_empty() {
            return Err(ApiErr::new(
                409,
                "no-update-keys",
                "this image trusts no update keys, so it takes no bundles",
            )
            .hint("the image was built without mkimage --trust KEY.pub"));
        }
        let busy = self.take_busy()?;
        // The boot partition must be there before the source is opened.
        drop(self.mount()?);
        let mut source = open_source(
            &req.source,
            "bundle",
            "/pools/media/updates/rushes-0.2.0.bundle",
        )?;
        let checked = rushes_update::read_header(&mut source)
            .and_then(|raw| raw.check(&keys, &self.setup.version))
            .map_err(|e| {
                tracing::warn!(source = %req.source, error = %e, "update bundle refused");
                refused(e)
            })?;
        let manifest = checked.manifest.clone();
        tracing::info!(source = %req.source, version = %manifest.version, signer = %checked.signer, slot = %idle, "update bundle accepted: writing the idle slot");
        let work = self.core.jobs.create(
            "update",
            api::JobTarget {
                kind: api::TargetKind::Appliance,
                name: format!("slot {} ← {}", idle.to_ascii_uppercase(), manifest.version),
            },
            false,
        );
        let me = Arc::clone(self);
        Ok(self.core.jobs.run(work, move |w| {
            let _busy = busy;
            let (esp, _mounted) = me.mount().map_err(|e| e.message)?;
            let step = format!("writing version {} into slot {}", manifest.version, idle.to_ascii_uppercase());
            let started = Instant::now();
            let mut last = Instant::now();
            esp.install(idle, &checked, &mut source, |done, total| {
                if last.elapsed() >= Duration::from_millis(500) || done == total {
                    last = Instant::now();
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    w.progress_at(&step, done, total, "bytes", Some(rate));
                }
            })
            .map_err(|e| {
                tracing::error!(error = %e, slot = %idle, "update not applied; the running slot is untouched");
                format!("{e}; the running slot is untouched, slot {} is left empty", idle.to_ascii_uppercase())
            })?;
            tracing::info!(version = %manifest.version, slot = %idle, "update written: the slot boots next, with 3 tries to come up");
            w.step(&format!(
                "slot {} holds version {}; it boots next{}",
                idle.to_ascii_uppercase(),
                manifest.version,
                if req.reboot { ": rebooting" } else { "" }
            ));
            if req.reboot {
                // The job ends first, so whoever follows it sees it done.
                let me = Arc::clone(&me);
                let _ = std::thread::Builder::new()
                    .name("update-reboot".into())
                    .spawn(move || me.reboot());
            }
            Ok(())
        }))
    }

    /// Make the slot that does not boot next the one that does (with fresh tries), and
    /// reboot into it if asked.
    pub fn rollback(self: &Arc<Self>, req: api::UpdateRollback) -> ApiResult<api::UpdateStatus> {
        if !req.confirm {
            return Err(ApiErr::new(
                400,
                "not-confirmed",
                "rollback needs confirm: true",
            ));
        }
        self.idle_slot()?;
        let _busy = self.take_busy()?;
        {
            let (esp, _mounted) = self.mount()?;
            let slots = esp
                .slots()
                .map_err(|e| ApiErr::failed(format!("cannot read the boot entries: {e}")))?;
            // The slot that does not boot next: after an update and its reboot, the one
            // before; with an update written and not yet booted, the running one.
            let other = match slots.first().map(|s| s.name) {
                Some('a') => 'b',
                _ => 'a',
            };
            let target = slots
                .iter()
                .find(|s| s.name == other)
                .expect("both slots are listed");
            if target.state == SlotState::Empty {
                return Err(ApiErr::new(
                    409,
                    "slot-empty",
                    format!(
                        "slot {} holds nothing to go back to",
                        other.to_ascii_uppercase()
                    ),
                )
                .hint("apply a bundle instead"));
            }
            let version = target.version.clone().unwrap_or_else(|| "unknown".into());
            esp.promote(other, &version)
                .map_err(|e| ApiErr::failed(format!("cannot rewrite the boot entry: {e}")))?;
            tracing::warn!(slot = %other, %version, "rollback: the other slot boots next");
        }
        let status = self.status();
        if req.reboot {
            let me = Arc::clone(self);
            let _ = std::thread::Builder::new()
                .name("update-reboot".into())
                .spawn(move || me.reboot());
        }
        Ok(status)
    }

    fn reboot(&self) {
        if !self.core.paths.appliance {
            tracing::info!("host mode: not rebooting the machine");
            return;
        }
        // Let the API answer first; rushes-init takes SIGINT as a reboot.
        std::thread::sleep(Duration::from_secs(2));
        if let Err(e) = crate::settings::ask_init(rustix::process::Signal::INT) {
            tracing::error!(error = %e, "cannot ask init to reboot");
        }
    }
}
