//! NVMe over Fabrics through the kernel's initiator: the host's identity, connecting and
//! disconnecting controllers through `/dev/nvme-fabrics`, reading a discovery
//! controller's log page (and following its referrals to chained bays), and the fabrics
//! controllers the kernel has, from sysfs. No libnvme and no nvme-cli: the option string
//! and the log page are the whole interface.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rushes_firmware::discovery::{LogEntry, LogPage, SUBTYPE_REFERRAL};

use crate::StorageError;

pub use rushes_firmware::discovery::DISCOVERY_NQN;
/// IANA's port for NVMe/TCP discovery; 4420, the I/O port, often answers it too.
pub const DISCOVERY_PORT: &str = "8009";
pub const IO_PORT: &str = "4420";

/// Who this appliance is to a bay: made once, kept on RUSHES-CFG, so a bay's access
/// lists keep naming the same host across reboots and image updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    pub hostnqn: String,
    pub hostid: String,
}

fn uuid_v4() -> Result<String, StorageError> {
    let mut b = [0u8; 16];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| StorageError::io("cannot draw random bytes for the host ID", e))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

impl HostIdentity {
    /// Read the identity from `path` (`hostnqn=` and `hostid=` lines), making and saving
    /// one the first time.
    pub fn load_or_create(path: &Path) -> Result<Self, StorageError> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            if let (Some(hostnqn), Some(hostid)) = (field("hostnqn"), field("hostid")) {
                return Ok(Self { hostnqn, hostid });
            }
            tracing::warn!(path = %path.display(), "the fabrics host identity is damaged: making a new one");
        }
        let hostid = uuid_v4()?;
        let id = Self {
            hostnqn: format!("nqn.2014-08.org.nvmexpress:uuid:{hostid}"),
            hostid,
        };
        let tmp = path.with_extension("new");
        let text = format!("hostnqn={}\nhostid={}\n", id.hostnqn, id.hostid);
        std::fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| StorageError::io(format!("cannot save {}", path.display()), e))?;
        tracing::info!(hostnqn = %id.hostnqn, "made the fabrics host identity");
        Ok(id)
    }
}

/// One path to a subsystem: where it is and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// `tcp` or `rdma`.
    pub transport: String,
    pub traddr: String,
    pub trsvcid: String,
    pub nqn: String,
}

impl Target {
    /// `tcp 10.0.0.9:4420`, for messages.
    pub fn address(&self) -> String {
        format!("{} {}:{}", self.transport, self.traddr, self.trsvcid)
    }
}

/// How long the kernel keeps a controller alive and keeps trying after a link loss.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Keep-alive interval the controller expects from us.
    pub keep_alive_s: u32,
    /// Retry interval while the link is down.
    pub reconnect_delay_s: u32,
    /// How long to keep trying (and keep I/O queued) before giving the controller up;
    /// after that rushesd connects it again itself when the bay is back.
    pub ctrl_loss_s: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            keep_alive_s: 5,
            reconnect_delay_s: 2,
            ctrl_loss_s: 600,
        }
    }
}

/// The option string `/dev/nvme-fabrics` takes to connect `target`.
pub fn connect_options(target: &Target, host: &HostIdentity, t: Timeouts) -> String {
    let mut o = format!(
        "transport={},traddr={},trsvcid={},nqn={},hostnqn={},hostid={}",
        target.transport, target.traddr, target.trsvcid, target.nqn, host.hostnqn, host.hostid
    );
    if target.nqn != DISCOVERY_NQN {
        o.push_str(&format!(
            ",keep_alive_tmo={},reconnect_delay={},ctrl_loss_tmo={}",
            t.keep_alive_s, t.reconnect_delay_s, t.ctrl_loss_s
        ));
    }
    o
}

/// `instance=4,cntlid=1` → 4.
pub fn parse_connect_reply(reply: &str) -> Option<u32> {
    reply
        .trim()
        .split(',')
        .find_map(|kv| kv.strip_prefix("instance="))
        .and_then(|n| n.parse().ok())
}

/// Where the kernel's fabrics interface lives (`/sys`, `/dev`; overridable for tests).
#[derive(Debug, Clone)]
pub struct Kernel {
    pub sys: PathBuf,
    pub dev: PathBuf,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            sys: "/sys".into(),
            dev: "/dev".into(),
        }
    }
}

/// A fabrics controller the kernel has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// `nvme4`.
    pub name: String,
    pub transport: String,
    pub traddr: String,
    pub trsvcid: String,
    pub subsysnqn: String,
    /// `live`, `connecting` (link lost, the kernel retries), `resetting`, `deleting`…
    pub state: String,
}

/// `traddr=10.0.0.9,trsvcid=4420,src_addr=10.0.0.2` → (`10.0.0.9`, `4420`).
pub fn parse_address(text: &str) -> (String, String) {
    let field = |key: &str| {
        text.trim()
            .split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    };
    (field("traddr"), field("trsvcid"))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Kernel {
    fn fabrics_dev(&self) -> PathBuf {
        self.dev.join("nvme-fabrics")
    }

    /// Whether the kernel can do fabrics at all (the module loaded, or loadable). Only
    /// nvme-tcp is loaded here: the kernel loads nvme-rdma itself on the first RDMA
    /// connect, so a box without RDMA never carries the InfiniBand stack.
    pub fn available(&self) -> bool {
        if !self.fabrics_dev().exists() {
            let _ = std::process::Command::new("modprobe")
                .args(["-q", "nvme-tcp"])
                .stderr(std::process::Stdio::null())
                .status();
        }
        self.fabrics_dev().exists()
    }

    /// Every fabrics controller (PCIe controllers are local disks, not fabrics).
    pub fn controllers(&self) -> Vec<Controller> {
        let class = self.sys.join("class/nvme");
        let mut found: Vec<Controller> = std::fs::read_dir(&class)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let dir = class.join(&name);
                        let transport = read(&dir.join("transport"))?;
                        if transport == "pcie" {
                            return None;
                        }
                        let (traddr, trsvcid) =
                            parse_address(&read(&dir.join("address")).unwrap_or_default());
                        Some(Controller {
                            name,
                            transport,
                            traddr,
                            trsvcid,
                            subsysnqn: read(&dir.join("subsysnqn")).unwrap_or_default(),
                            state: read(&dir.join("state")).unwrap_or_default(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by_key(|c| {
            c.name
                .trim_start_matches("nvme")
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        found
    }

    /// The controller already connected to `target`, if any.
    pub fn find(&self, target: &Target) -> Option<Controller> {
        self.controllers().into_iter().find(|c| {
            c.subsysnqn == target.nqn
                && c.transport == target.transport
                && c.traddr == target.traddr
                && c.trsvcid == target.trsvcid
        })
    }

    /// Connect `target`; returns the new controller's name (`nvme4`). A second path to a
    /// subsystem already connected joins it under native multipath.
    pub fn connect(
        &self,
        target: &Target,
        host: &HostIdentity,
        timeouts: Timeouts,
    ) -> Result<String, StorageError> {
        let what = format!("connecting {} at {}", target.nqn, target.address());
        let options = connect_options(target, host, timeouts);
        tracing::info!(%options, "connecting an NVMe-oF controller");
        let mut dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.fabrics_dev())
            .map_err(|e| StorageError::io(format!("{what}: cannot open /dev/nvme-fabrics"), e))?;
        // The kernel takes the options in one write and answers on the same descriptor.
        dev.write_all(options.as_bytes()).map_err(|e| {
            StorageError::io(
                format!("{what}: the kernel refused (is the bay up, and does it allow this host?)"),
                e,
            )
        })?;
        let mut reply = String::new();
        let _ = dev.read_to_string(&mut reply);
        let instance = parse_connect_reply(&reply).ok_or_else(|| StorageError::Command {
            what: what.clone(),
            detail: format!("the kernel answered {reply:?}"),
        })?;
        Ok(format!("nvme{instance}"))
    }

    /// Delete controller `name` (`nvme4`): its namespaces go away with it.
    pub fn disconnect(&self, name: &str) -> Result<(), StorageError> {
        let path = self
            .sys
            .join("class/nvme")
            .join(name)
            .join("delete_controller");
        std::fs::write(&path, "1")
            .map_err(|e| StorageError::io(format!("cannot disconnect {name}"), e))
    }

    /// Read discovery controller `ctrl`'s log page whole: the header first for the
    /// number of records, then the records, then the header again; a generation counter
    /// that moved in between means the bay changed while we read, so read again.
    pub fn read_discovery_log(&self, ctrl: &str) -> Result<LogPage, StorageError> {
        let dev = self.dev.join(ctrl);
        let what = format!("reading the discovery log of {ctrl}");
        let get = |offset: u64, buf: &mut [u8]| {
            crate::nvme::get_log_page(&dev, 0x70, 0, offset, buf)
                .map_err(|e| StorageError::io(what.clone(), e))
        };
        for _ in 0..4 {
            let mut header = vec![0u8; 1024];
            get(0, &mut header)?;
            let first = LogPage::decode(&header).map_err(|e| StorageError::Command {
                what: what.clone(),
                detail: e.to_string(),
            })?;
            let records = first.numrec.min(1024) as usize;
            let mut page = vec![0u8; 1024 * (1 + records)];
            // 4 KiB at a time: what every controller's transfer size allows.
            for offset in (0..page.len()).step_by(4096) {
                let end = (offset + 4096).min(page.len());
                get(offset as u64, &mut page[offset..end])?;
            }
            let mut again = vec![0u8; 1024];
            get(0, &mut again)?;
            let page = LogPage::decode(&page).map_err(|e| StorageError::Command {
                what: what.clone(),
                detail: e.to_string(),
            })?;
            if LogPage::decode(&again).map(|p| p.genctr).ok() == Some(page.genctr) {
                return Ok(page);
            }
            tracing::info!(
                ctrl,
                "the discovery log changed while being read: reading again"
            );
        }
        Err(StorageError::Command {
            what,
            detail: "the log kept changing while it was read".into(),
        })
    }

    /// Connect to the discovery controller at `transport traddr:trsvcid`, read its log
    /// page and disconnect.
    pub fn discover(
        &self,
        transport: &str,
        traddr: &str,
        trsvcid: &str,
        host: &HostIdentity,
    ) -> Result<LogPage, StorageError> {
        let target = Target {
            transport: transport.into(),
            traddr: traddr.into(),
            trsvcid: trsvcid.into(),
            nqn: DISCOVERY_NQN.into(),
        };
        let ctrl = self.connect(&target, host, Timeouts::default())?;
        let page = self.read_discovery_log(&ctrl);
        if let Err(e) = self.disconnect(&ctrl) {
            tracing::warn!(error = %e, "cannot drop the discovery controller");
        }
        page
    }

    /// Discover from `traddr` (port `trsvcid`, or 8009 then 4420) and follow referrals
    /// to chained bays, at most `limit` discovery controllers in all.
    pub fn discover_all(
        &self,
        transport: &str,
        traddr: &str,
        trsvcid: Option<&str>,
        host: &HostIdentity,
        limit: usize,
    ) -> Discovery {
        let mut found = Discovery::default();
        let mut queue: Vec<(String, Vec<String>)> = vec![(
            traddr.to_string(),
            match trsvcid {
                Some(p) => vec![p.to_string()],
                None => vec![DISCOVERY_PORT.into(), IO_PORT.into()],
            },
        )];
        while let Some((addr, ports)) = queue.pop() {
            if found.visited.len() >= limit {
                found
                    .problems
                    .push(format!("stopped after {limit} discovery controllers"));
                break;
            }
            let mut errors = Vec::new();
            let mut page = None;
            for port in &ports {
                let key = format!("{addr}:{port}");
                if found.visited.contains(&key) {
                    page = Some(None);
                    break;
                }
                match self.discover(transport, &addr, port, host) {
                    Ok(p) => {
                        found.visited.push(key.clone());
                        page = Some(Some((key, p)));
                        break;
                    }
                    Err(e) => errors.push(format!("{key}: {e}")),
                }
            }
            match page {
                Some(Some((via, page))) => {
                    for entry in page.entries {
                        if entry.subtype == SUBTYPE_REFERRAL {
                            queue.push((entry.traddr.clone(), vec![entry.trsvcid.clone()]));
                            found.referrals.push(entry);
                        } else if entry.subnqn != DISCOVERY_NQN && !found.has(&entry) {
                            found.entries.push((via.clone(), entry));
                        }
                    }
                }
                Some(None) => {}
                None => found.problems.extend(errors),
            }
        }
        found
    }
}

/// What discovery found: subsystem entries with the discovery controller that listed
/// them, the referrals followed, and the controllers that could not be read.
#[derive(Debug, Default)]
pub struct Discovery {
    pub entries: Vec<(String, LogEntry)>,
    pub referrals: Vec<LogEntry>,
    pub visited: Vec<String>,
    pub problems: Vec<String>,
}

impl Discovery {
    fn has(&self, e: &LogEntry) -> bool {
        self.entries
            .iter()
            .any(|(_, x)| x.subnqn == e.subnqn && x.traddr == e.traddr && x.trsvcid == e.trsvcid)
    }
}

/// `tcp`/`rdma` for a log entry's transport type.
pub fn transport_name(trtype: u8) -> &'static str {
    match trtype {
        rushes_firmware::discovery::TRTYPE_RDMA => "rdma",
        rushes_firmware::discovery::TRTYPE_TCP => "tcp",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    fn host() -> HostIdentity {
        HostIdentity {
            hostnqn: "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-41d2-883f-0016d3cca427".into(),
            hostid: "1b4e28ba-2fa1-41d2-883f-0016d3cca427".into(),
        }
    }

    #[test]
    fn the_option_string_names_the_host_and_the_timeouts() {
        let t = Target {
            transport: "tcp".into(),
            traddr: "10.0.0.9".into(),
            trsvcid: "4420".into(),
            nqn: "nqn.2026-11.io.rushes:bay1".into(),
        };
        assert_eq!(
            connect_options(&t, &host(), Timeouts::default()),
            "transport=tcp,traddr=10.0.0.9,trsvcid=4420,nqn=nqn.2026-11.io.rushes:bay1,\
             hostnqn=nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-41d2-883f-0016d3cca427,\
             hostid=1b4e28ba-2fa1-41d2-883f-0016d3cca427,keep_alive_tmo=5,reconnect_delay=2,\
             ctrl_loss_tmo=600"
        );
        let d = Target {
            nqn: DISCOVERY_NQN.into(),
            ..t
        };
        assert!(!connect_options(&d, &host(), Timeouts::default()).contains("keep_alive"));
    }

    #[test]
    fn the_kernel_reply_and_addresses_parse() {
        assert_eq!(parse_connect_reply("instance=4,cntlid=1\n"), Some(4));
        assert_eq!(parse_connect_reply("nonsense"), None);
        assert_eq!(
            parse_address("traddr=10.0.0.9,trsvcid=4420,src_addr=10.0.0.2\n"),
            ("10.0.0.9".into(), "4420".into())
        );
    }

    #[test]
    fn the_host_identity_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fabrics-host");
        let a = HostIdentity::load_or_create(&path).unwrap();
        let b = HostIdentity::load_or_create(&path).unwrap();
        assert_eq!(a, b);
        assert!(a.hostnqn.ends_with(&a.hostid), "{a:?}");
        assert_eq!(a.hostid.len(), 36);
        assert_eq!(&a.hostid[14..15], "4", "a version-4 UUID: {}", a.hostid);
    }

    #[test]
    fn fabrics_controllers_come_from_sysfs_and_local_ones_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let k = Kernel {
            sys: dir.path().into(),
            dev: dir.path().join("dev"),
        };
        let c = dir.path().join("class/nvme");
        write(&c.join("nvme0/transport"), "pcie\n");
        write(&c.join("nvme10/transport"), "tcp\n");
        write(&c.join("nvme10/address"), "traddr=127.0.0.1,trsvcid=4421\n");
        write(&c.join("nvme10/subsysnqn"), "nqn.b\n");
        write(&c.join("nvme10/state"), "connecting\n");
        write(&c.join("nvme4/transport"), "tcp\n");
        write(&c.join("nvme4/address"), "traddr=127.0.0.1,trsvcid=4420\n");
        write(&c.join("nvme4/subsysnqn"), "nqn.a\n");
        write(&c.join("nvme4/state"), "live\n");
        let found = k.controllers();
        assert_eq!(
            found.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["nvme4", "nvme10"]
        );
        assert_eq!(found[1].state, "connecting");
        let t = Target {
            transport: "tcp".into(),
            traddr: "127.0.0.1".into(),
            trsvcid: "4420".into(),
            nqn: "nqn.a".into(),
        };
        assert_eq!(k.find(&t).map(|c| c.name), Some("nvme4".into()));
    }
}
