//! The box's own settings through the API: host name, network, time, the admin password
//! (argon2, in rushes.toml), the NICs' live state, the supervisor's log, and power.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rushes_api as api;

use crate::clock::Chrony;
use crate::core::{Core, Event};
use crate::epoch::now;
use crate::error::{ApiErr, ApiResult};

/// Keys of rushes.toml this module writes (beside init's hostname and network).
const ADMIN: &str = "admin";
/// The keys of rushes.toml that make up [`api::Settings`].
const SETTINGS: [&str; 4] = ["hostname", "network", "timezone", "ntp"];

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn check_network(n: &api::NetworkSetting) -> ApiResult<()> {
    let bad = |what: String| Err(ApiErr::new(400, "bad-setting", what));
    if n.interface.is_empty() {
        return bad("a network entry needs an interface (a NIC name, or * for all)".into());
    }
    if let Some(addr) = &n.address {
        if addr.parse::<ipnet::IpNet>().is_err() {
            return Err(ApiErr::new(
                400,
                "bad-setting",
                format!("{addr:?} is not an address with a prefix length"),
            )
            .hint("write it as 10.10.0.5/24"));
        }
    }
    for ip in n.gateway.iter().chain(&n.dns) {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return bad(format!("{ip:?} is not an IP address"));
        }
    }
    // What init at boot would pass over, refused here with the reason instead.
    if let (Some(addr), Some(gw)) = (&n.address, &n.gateway) {
        let v4 = |s: &str| !s.contains(':');
        if v4(addr) != v4(gw) {
            return bad(format!("gateway {gw} is not of the same family as {addr}"));
        }
    }
    if n.dns.len() > 3 {
        return Err(ApiErr::new(
            400,
            "bad-setting",
            format!(
                "{} nameservers given; the system uses three at most",
                n.dns.len()
            ),
        ));
    }
    if let Some(mtu) = n.mtu {
        if !(576..=9216).contains(&mtu) {
            return Err(
                ApiErr::new(400, "bad-setting", format!("MTU {mtu} is out of range"))
                    .hint("use 1500 for standard frames or 9000 for jumbo frames"),
            );
        }
    }
    Ok(())
}

/// The NICs from sysfs and their IPv4/IPv6 addresses; loopback and virtual ones left out.
pub fn nics(sys: &Path) -> Vec<api::Nic> {
    let net = sys.join("class/net");
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut addrs: Vec<(String, String)> = Vec::new();
    if let Ok(ifaddrs) = nix::ifaddrs::getifaddrs() {
        for ifa in ifaddrs {
            let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
                continue;
            };
            let text = match (
                addr.as_sockaddr_in(),
                mask.as_sockaddr_in(),
                addr.as_sockaddr_in6(),
                mask.as_sockaddr_in6(),
            ) {
                (Some(a), Some(m), _, _) => {
                    format!("{}/{}", a.ip(), u32::from(m.ip()).count_ones())
                }
                (_, _, Some(a), Some(m)) => {
                    format!("{}/{}", a.ip(), u128::from(m.ip()).count_ones())
                }
                _ => continue,
            };
            addrs.push((ifa.interface_name, text));
        }
    }
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&net) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dir = e.path();
        // Physical and virtio NICs have a device; lo, bridges and tunnels do not.
        if name == "lo" || !dir.join("device").exists() {
            continue;
        }
        let up = read(&dir.join("carrier")).as_deref() == Some("1");
        out.push(api::Nic {
            mac: read(&dir.join("address")).unwrap_or_default(),
            link_up: up,
            speed_mbps: read(&dir.join("speed"))
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|s| up && *s > 0)
                .map(|s| s as u32),
            mtu: read(&dir.join("mtu"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            addresses: addrs
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, a)| a.clone())
                .collect(),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The appliance as a whole: host name, network and time settings, the clock, the admin
/// password, the supervisor's log, reset and power.
/// `password` as an argon2id hash with a fresh salt.
pub fn hash_password(password: &str) -> ApiResult<String> {
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| ApiErr::failed(format!("no randomness for the salt: {e}")))?;
    let salt = SaltString::encode_b64(&random)
        .map_err(|e| ApiErr::failed(format!("cannot encode the salt: {e}")))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| ApiErr::failed(format!("cannot hash the password: {e}")))?
        .to_string())
}

/// Whether `password` is the one `hash` (argon2) was made from.
pub fn matches_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub struct System {
    core: Arc<Core>,
    chrony: Chrony,
    /// Host mode's own chronyd (the appliance's is init's).
    chronyd: Mutex<Option<std::process::Child>>,
}

impl System {
    pub fn new(core: Arc<Core>) -> Arc<Self> {
        let chrony = if core.paths.appliance {
            let run = core
                .paths
                .log_file
                .parent()
                .unwrap_or(Path::new("/run/rushes"));
            Chrony::appliance(run)
        } else {
            Chrony::host(&core.paths.state_dir.join("chrony"))
        };
        let me = Arc::new(Self {
            core,
            chrony,
            chronyd: Mutex::default(),
        });
        // Before rushesd answers, so init's chronyd starts on this configuration.
        if let Err(e) = me.chrony.prepare(&me.settings().ntp) {
            tracing::warn!(error = %e, conf = %me.chrony.conf.display(), "cannot write chronyd's configuration");
        }
        me
    }

    /// Host mode: keep our own measuring chronyd running.
    fn supervise_chronyd(&self) {
        if !self.chrony.own() {
            return;
        }
        let mut child = self.chronyd.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = child.as_mut() {
            match c.try_wait() {
                Ok(None) => return,
                Ok(Some(status)) => tracing::warn!(%status, "chronyd ended; starting it again"),
                Err(e) => tracing::warn!(error = %e, "cannot ask after chronyd"),
            }
        }
        let log = self.core.paths.state_dir.join("chrony/chronyd.log");
        *child = match self.chrony.spawn(&log) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start chronyd (Debian package chrony); the clock is not checked");
                None
            }
        };
    }

    /// Give chronyd the configured NTP servers whenever they change, forever (and keep
    /// host mode's chronyd running).
    pub fn keep_time(&self) {
        let mut given: Option<Vec<String>> = None;
        loop {
            self.supervise_chronyd();
            let list = self.settings().ntp;
            if given.as_ref() != Some(&list) {
                match self.chrony.set_servers(&list) {
                    Ok(()) => {
                        tracing::info!(servers = ?list, "chronyd has the NTP servers");
                        given = Some(list);
                    }
                    // chronyd is starting, or restarting: it reads the file when it does.
                    Err(e) => tracing::debug!(error = %e, "chronyd did not take the servers yet"),
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    pub fn clock(&self) -> api::Clock {
        let ntp = self.settings().ntp;
        let (synced, error) = match self.chrony.status() {
            Ok(Some(sync)) => (Some(sync), None),
            Ok(None) if ntp.is_empty() => (None, None),
            Ok(None) => (None, Some("no server answers yet".to_string())),
            Err(e) => (None, Some(e)),
        };
        api::Clock {
            now: now(),
            ntp,
            synced,
            error,
            kernel_synchronised: crate::clock::kernel_synchronised(),
        }
    }

    pub fn settings(&self) -> api::Settings {
        // Only these keys: the file may hold tables this version does not know (written
        // by a newer one before a rollback), which must not blank the settings shown.
        let mine: toml::Table = self.core.with_config(|c| {
            SETTINGS
                .iter()
                .filter_map(|k| Some((k.to_string(), c.other.get(*k)?.clone())))
                .collect()
        });
        mine.try_into().unwrap_or_default()
    }

    pub fn put_settings(&self, new: api::Settings) -> ApiResult<api::Settings> {
        if let Some(h) = &new.hostname {
            if !valid_hostname(h) {
                return Err(ApiErr::new(
                    400,
                    "bad-setting",
                    format!("host name {h:?} is not usable"),
                )
                .hint("use up to 63 letters, digits and '-', not starting or ending with '-'"));
            }
        }
        for n in &new.network {
            check_network(n)?;
        }
        if let Some(bad) = new.ntp.iter().find(|s| !crate::clock::valid_server(s)) {
            return Err(ApiErr::new(
                400,
                "bad-setting",
                format!("NTP server {bad:?} is not a host name or address"),
            )
            .hint(
                "use a name or address, optionally with :PORT, e.g. pool.ntp.org or 10.0.0.1:123",
            ));
        }
        if let Some(zone) = &new.timezone {
            if let Err(why) = api::calendar::zone(zone) {
                return Err(ApiErr::new(400, "bad-setting", why)
                    .hint("use a name such as Europe/London, America/Los_Angeles or UTC (GET /v1/time/zones lists them)"));
            }
        }
        let value = toml::Table::try_from(&new).map_err(|e| ApiErr::failed(e.to_string()))?;
        self.core
            .save_config(|c| {
                for key in SETTINGS {
                    c.other.remove(key);
                }
                c.other.extend(value);
            })
            .map_err(ApiErr::failed)?;
        if let (Some(h), true) = (&new.hostname, self.core.paths.appliance) {
            if let Err(e) = rustix::system::sethostname(h.as_bytes()) {
                tracing::warn!(error = %e, "cannot set the host name now; it applies at the next start");
            }
        }
        tracing::info!("settings changed");
        Ok(self.settings())
    }

    fn password_hash(&self) -> Option<String> {
        self.core.with_config(|c| {
            c.other
                .get(ADMIN)
                .and_then(|a| a.get("password"))
                .and_then(|p| p.as_str())
                .map(str::to_string)
        })
    }

    pub fn setup(&self) -> api::Setup {
        api::Setup {
            configured: self.password_hash().is_some(),
            hostname: self.status().hostname,
            addresses: nics(&self.core.paths.sys)
                .into_iter()
                .flat_map(|n| n.addresses)
                .filter(|a| !a.starts_with("fe80"))
                .collect(),
        }
    }

    /// Whether `password` is the admin password (false while none is set).
    pub fn is_admin_password(&self, password: &str) -> bool {
        let Some(hash) = self.password_hash() else {
            return false;
        };
        matches_hash(&hash, password)
    }

    pub fn set_password(&self, req: api::SetPassword) -> ApiResult<()> {
        if self.password_hash().is_some()
            && !req
                .current
                .as_deref()
                .is_some_and(|c| self.is_admin_password(c))
        {
            std::thread::sleep(Duration::from_secs(1));
            return Err(ApiErr::new(
                403,
                "wrong-password",
                "the current admin password is not right",
            ));
        }
        if req.new.chars().count() < 8 {
            return Err(ApiErr::new(
                400,
                "weak-password",
                "the admin password must have at least 8 characters",
            ));
        }
        let hash = hash_password(&req.new)?;
        self.core
            .save_config(|c| {
                let mut admin = toml::Table::new();
                admin.insert("password".into(), toml::Value::String(hash));
                c.other.insert(ADMIN.into(), toml::Value::Table(admin));
            })
            .map_err(ApiErr::failed)?;
        tracing::info!("admin password set");
        Ok(())
    }

    pub fn login(&self, req: api::Login) -> ApiResult<()> {
        if self.is_admin_password(&req.password) {
            return Ok(());
        }
        // Slow down guessing.
        std::thread::sleep(Duration::from_secs(1));
        tracing::warn!("wrong admin password entered");
        Err(ApiErr::new(
            403,
            "wrong-password",
            "that is not the admin password",
        ))
    }

    pub fn nics(&self) -> Vec<api::Nic> {
        nics(&self.core.paths.sys)
    }

    /// The last `lines` lines of the supervisor's log that contain `filter`.
    pub fn logs(&self, filter: Option<&str>, lines: usize) -> api::Logs {
        let text = std::fs::read_to_string(&self.core.paths.log_file).unwrap_or_default();
        let mut picked: Vec<String> = text
            .lines()
            .filter(|l| filter.is_none_or(|f| l.to_lowercase().contains(&f.to_lowercase())))
            .map(str::to_string)
            .collect();
        let excess = picked.len().saturating_sub(lines);
        picked.drain(..excess);
        api::Logs { lines: picked }
    }

    /// Forget every setting; on the appliance, restart into the first-boot wizard.
    /// Answers whether a restart is under way.
    pub fn reset(&self, req: api::Reset) -> ApiResult<bool> {
        if !req.confirm {
            return Err(ApiErr::new(
                400,
                "not-confirmed",
                "a reset needs confirm: true",
            ));
        }
        if let Some(job) = self.core.jobs.any_active() {
            return Err(ApiErr::new(
                409,
                "busy",
                format!("job {} ({} of {}) is running", job.id, job.kind, job.target),
            )
            .hint("wait for it to finish, then reset"));
        }
        self.core
            .save_config(|c| *c = crate::config::ApplianceConfig::default())
            .map_err(ApiErr::failed)?;
        self.core.emit(Event::Reset);
        tracing::warn!("settings reset to the defaults through the API");
        if self.core.paths.appliance {
            self.power(api::Power {
                action: "reboot".into(),
                confirm: true,
            })?;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn status(&self) -> api::Status {
        api::Status {
            version: env!("CARGO_PKG_VERSION").into(),
            hostname: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            uptime_secs: self.core.started.elapsed().as_secs(),
        }
    }

    pub fn power(&self, req: api::Power) -> ApiResult<()> {
        let signal = match req.action.as_str() {
            "reboot" => rustix::process::Signal::INT,
            "poweroff" => rustix::process::Signal::TERM,
            other => {
                return Err(
                    ApiErr::bad_request(format!("unknown power action {other:?}"))
                        .hint("use reboot or poweroff"),
                )
            }
        };
        if !req.confirm {
            return Err(ApiErr::new(
                400,
                "not-confirmed",
                format!("{} needs confirm: true", req.action),
            ));
        }
        if !self.core.paths.appliance {
            return Err(ApiErr::new(
                409,
                "not-appliance",
                "this rushesd runs in host mode; it does not reboot or power off the machine",
            ));
        }
        tracing::warn!(action = %req.action, "power action requested through the API");
        ask_init(signal).map_err(|e| ApiErr::failed(format!("cannot signal init: {e}")))
    }
}

/// Ask rushes-init to reboot (SIGINT, as ctrl-alt-del) or power off (SIGTERM).
pub fn ask_init(signal: rustix::process::Signal) -> rustix::io::Result<()> {
    let init = rustix::process::Pid::from_raw(1).expect("1 is a valid pid");
    rustix::process::kill_process(init, signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(valid_hostname("edit-bay-nas") && !valid_hostname("-x") && !valid_hostname("a b"));
        let mut n = api::NetworkSetting {
            interface: "enp1s0".into(),
            address: Some("10.10.0.5/24".into()),
            gateway: Some("10.10.0.1".into()),
            dns: vec!["10.10.0.1".into()],
            mtu: Some(9000),
        };
        assert!(check_network(&n).is_ok());
        n.address = Some("10.10.0.5".into());
        assert_eq!(
            check_network(&n).unwrap_err().hint.as_deref(),
            Some("write it as 10.10.0.5/24")
        );
        n.address = Some("10.10.0.5/24".into());
        n.gateway = Some("2001:db8::1".into());
        assert!(check_network(&n).is_err(), "a v6 gateway for a v4 address");
        n.gateway = Some("10.10.0.1".into());
        n.dns = ["10.10.0.1", "1.1.1.1", "8.8.8.8", "9.9.9.9"]
            .map(String::from)
            .into();
        assert!(check_network(&n).is_err(), "a fourth nameserver");
        n.dns.pop();
        assert!(check_network(&n).is_ok());
        n.address = None;
        n.mtu = Some(100);
        assert!(check_network(&n).is_err());
    }
}
