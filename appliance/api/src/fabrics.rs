//! NVMe over Fabrics: the bays' subsystems, the paths to them, and discovery.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn tcp() -> String {
    "tcp".into()
}

fn io_port() -> String {
    "4420".into()
}

/// One path to a subsystem, as the admin names it (and as `rushes.toml` keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FabricPath {
    pub nqn: String,
    /// `tcp` or `rdma`.
    #[serde(default = "tcp")]
    pub transport: String,
    pub traddr: String,
    #[serde(default = "io_port")]
    pub trsvcid: String,
}

/// Ask a discovery controller what it serves: `10.0.0.9` (ports 8009 then 4420) or
/// `10.0.0.9:8009`. Without an address, every remembered one is asked again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discover {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default = "tcp")]
    pub transport: String,
    /// Also ask the discovery controllers that announce themselves over mDNS
    /// (`_nvme-disc._tcp`) on the appliance's networks.
    #[serde(default)]
    pub mdns: bool,
}

/// A subsystem a discovery controller listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FoundSubsystem {
    #[serde(flatten)]
    pub path: FabricPath,
    /// The discovery controller that listed it (`10.0.0.9:8009`).
    pub via: String,
    /// This path is connected now.
    pub connected: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveryResult {
    pub subsystems: Vec<FoundSubsystem>,
    /// Discovery controllers read, the first one and every referral followed.
    pub visited: Vec<String>,
    /// Controllers that could not be reached or read, with why.
    pub problems: Vec<String>,
}

/// One path of a subsystem and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PathState {
    pub transport: String,
    pub traddr: String,
    pub trsvcid: String,
    /// The kernel's controller (`nvme4`), when there is one.
    pub controller: Option<String>,
    /// `live`, `connecting` (the link is down and the kernel retries), or
    /// `disconnected`.
    pub state: String,
    /// Kept in the config: connected again at boot and after a long outage.
    pub saved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FabricSubsystem {
    pub nqn: String,
    pub paths: Vec<PathState>,
    /// Its namespaces as disks (`nvme4n1`).
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Fabrics {
    /// Who this appliance is to the bays; made once and kept on RUSHES-CFG.
    pub hostnqn: String,
    pub hostid: String,
    /// The kernel has its NVMe-oF initiator (`/dev/nvme-fabrics`).
    pub available: bool,
    /// Discovery controllers asked before, asked again by a bare `discover`.
    pub discovery: Vec<String>,
    pub subsystems: Vec<FabricSubsystem>,
}

/// Drop a subsystem: every path, or only the one at `traddr`(:`trsvcid`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    pub nqn: String,
    #[serde(default)]
    pub traddr: Option<String>,
    #[serde(default)]
    pub trsvcid: Option<String>,
}

/// A port of the offload card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CardPort {
    pub name: String,
    pub link: String,
    pub speed_mbps: Option<u64>,
}

/// A bay namespace the card presents to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CardNamespace {
    pub nqn: String,
    pub traddr: String,
    pub trsvcid: String,
    pub nsid: u32,
    /// The block device it appears as (`/dev/ublkb0`).
    pub device: String,
    pub size_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CardSlot {
    pub slot: String,
    pub version: Option<String>,
}

/// The offload card: what it is, how it is doing, and what it carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CardStatus {
    /// `off`, or `emulated` (the card's engine as a host process).
    pub mode: String,
    /// `off`, `starting`, `ok`, `degraded`, or `failed` (its bays then go through the
    /// kernel's NVMe/TCP path).
    pub state: String,
    pub problem: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware_version: Option<String>,
    pub active_slot: Option<String>,
    pub staged_slot: Option<String>,
    pub slots: Vec<CardSlot>,
    pub fabric: String,
    pub ports: Vec<CardPort>,
    pub temperature_c: Option<i32>,
    pub errors: u64,
    pub queue_depth: u64,
    /// PCI functions found with the card's IDs (`0000:03:00.0 1fb3:0001`).
    #[serde(default)]
    pub pci: Vec<String>,
    /// Bays saved to go through the card.
    pub bays: Vec<FabricPath>,
    pub namespaces: Vec<CardNamespace>,
}

/// Detach a bay from the card.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardDetach {
    pub nqn: String,
}

/// Stage a firmware bundle (a file on the appliance) into the card's spare slot.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwareStage {
    pub path: String,
}

/// Turn the emulated card on (`emulated`) or off (`off`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardMode {
    pub mode: String,
    /// PCI IDs (`vvvv:dddd`, hex) of the offload card to look for; left out, the saved
    /// ones stay.
    #[serde(default)]
    pub pci_ids: Option<Vec<String>>,
}
