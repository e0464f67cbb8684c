//! The management API of Rushes as data: what a disk, pool, share, job and alert look
//! like on the wire (JSON under `/v1` on `/run/rushes/api.sock`), the rules of RAID
//! levels a client needs to show capacity before confirming, and a blocking client.
//!
//! rushesd serves these types; `rushesctl` and the console are clients of them and of
//! nothing else.

pub mod admin;
pub mod calendar;
pub mod client;
mod fabrics;
pub mod media;
mod raid;
mod targets;
pub mod tls;
pub mod units;

pub use admin::*;
pub use client::{Client, ClientError};
pub use fabrics::*;
pub use raid::RaidLevel;
pub use targets::*;
pub use tls::{fingerprint, same_fingerprint};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where rushesd listens for management requests.
pub const DEFAULT_SOCKET: &str = "/run/rushes/api.sock";

/// How a disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Nvme,
    NvmeTcp,
    NvmeRdma,
    Sata,
    Sas,
    Usb,
    Virtio,
    /// A bay's namespace presented by the offload card (a ublk device).
    Card,
    Other,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::NvmeTcp => "nvme-tcp",
            Transport::NvmeRdma => "nvme-rdma",
            Transport::Sata => "sata",
            Transport::Sas => "sas",
            Transport::Usb => "usb",
            Transport::Virtio => "virtio",
            Transport::Card => "card",
            Transport::Other => "other",
        }
    }
}

/// A signature libblkid found on a device, by libblkid's name for it: `gpt`, `dos`,
/// `PMBR`, `linux_raid_member`, `xfs`, `crypto_LUKS`, `swap`, `bcache`, `LVM2_member` …
/// (`blkid -p` and `wipefs` print the same names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Signature(String);

impl Signature {
    pub fn new(name: impl Into<String>) -> Self {
        Signature(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A block device the appliance sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Disk {
    /// Kernel name, e.g. `nvme0n1`.
    pub name: String,
    pub model: String,
    pub serial: String,
    pub wwn: Option<String>,
    pub size_bytes: u64,
    pub logical_sector: u32,
    pub physical_sector: u32,
    pub rotational: bool,
    pub transport: Transport,
    pub partitions: Vec<String>,
    /// Signatures on the whole disk and on its partitions, as libblkid names them.
    pub contents: Vec<Signature>,
    /// The UUID of the md array this disk is a member of, from its superblock.
    #[serde(default)]
    pub md_uuid: Option<String>,
    /// Holds RUSHES-BOOT, RUSHES-CFG or an image extension (RUSHES-X-NAME): the stick
    /// the appliance booted from, or what it carries beside it.
    pub boot: bool,
    /// What uses the disk now (`pool media`, `mounted`, `md127`), if anything.
    #[serde(default)]
    pub in_use_by: Option<String>,
    /// The drive's own health report (NVMe SMART log), where it gives one.
    #[serde(default)]
    pub health: Option<DiskHealth>,
}

/// Where a drive's health report comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HealthSource {
    /// The NVMe SMART / Health Information log page, read by rushesd itself.
    #[default]
    NvmeLog,
    /// ATA or SCSI SMART, through smartmontools' `smartctl --json`.
    Smart,
}

/// A drive's health as it reports it: NVMe's health log, or SATA/SAS SMART. Fields a
/// source does not report are null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiskHealth {
    #[serde(default)]
    pub source: HealthSource,
    pub temperature_c: Option<i32>,
    pub power_on_hours: Option<u64>,
    /// SMART's overall self-assessment (false: the drive says it is failing).
    #[serde(default)]
    pub smart_passed: Option<bool>,
    /// NVMe critical-warning bits: 0 means none.
    #[serde(default)]
    pub critical_warning: Option<u8>,
    #[serde(default)]
    pub available_spare_pct: Option<u8>,
    #[serde(default)]
    pub spare_threshold_pct: Option<u8>,
    /// Estimated share of the drive's rated endurance used (may exceed 100).
    #[serde(default)]
    pub percent_used: Option<u8>,
    #[serde(default)]
    pub media_errors: Option<u64>,
    /// ATA attribute 5 (or SCSI's grown defect list): sectors remapped so far.
    #[serde(default)]
    pub reallocated_sectors: Option<u64>,
    /// ATA attribute 197: sectors waiting to be remapped (unreadable now).
    #[serde(default)]
    pub pending_sectors: Option<u64>,
    /// ATA attribute 198: sectors found uncorrectable offline.
    #[serde(default)]
    pub uncorrectable_sectors: Option<u64>,
}

impl DiskHealth {
    /// What is wrong, in words, if anything.
    pub fn problem(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.smart_passed == Some(false) {
            why.push("a failing SMART self-assessment".to_string());
        }
        let w = self.critical_warning.unwrap_or(0);
        if w & 0x01 != 0 {
            why.push("spare capacity below its threshold".to_string());
        }
        if w & 0x02 != 0 {
            why.push("temperature out of range".to_string());
        }
        if w & 0x04 != 0 {
            why.push("reliability degraded by media errors".to_string());
        }
        if w & 0x08 != 0 {
            why.push("media switched to read-only".to_string());
        }
        if w & 0x10 != 0 {
            why.push("volatile-memory backup failed".to_string());
        }
        if let Some(used) = self.percent_used.filter(|&u| u >= 90) {
            why.push(format!("{used}% of its rated endurance used"));
        }
        if let Some(n) = self.media_errors.filter(|&n| n > 0) {
            why.push(format!("{n} media errors"));
        }
        if let Some(n) = self.pending_sectors.filter(|&n| n > 0) {
            why.push(format!("{n} sectors pending reallocation"));
        }
        if let Some(n) = self.uncorrectable_sectors.filter(|&n| n > 0) {
            why.push(format!("{n} uncorrectable sectors"));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    /// The drive says it is failing now (not only wearing).
    pub fn failing(&self) -> bool {
        self.smart_passed == Some(false) || self.critical_warning.is_some_and(|w| w != 0)
    }

    /// One short word for tables: `ok`, `FAILING` or `worn`.
    pub fn verdict(&self) -> &'static str {
        if self.failing() {
            "FAILING"
        } else if self.problem().is_some() {
            "worn"
        } else {
            "ok"
        }
    }
}

/// Speed class of a pool, after the disks under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PoolClass {
    /// Solid-state (NVMe, SSD): for the media being cut now.
    #[default]
    Fast,
    /// Spinning disks: for the bulk of a facility's footage.
    Capacity,
}

/// The state of a pool as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    /// Every member present and in sync.
    Online,
    /// Serving, with less redundancy than configured.
    Degraded,
    /// Not serving: too many members missing, or the file system does not mount.
    Failed,
    /// Configured, but its disks were not found.
    Missing,
}

/// A member disk's role in its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MemberState {
    InSync,
    /// Being written back into the array (rebuild or reshape).
    Rebuilding,
    Spare,
    Faulty,
    /// Configured as a member, but no such disk is present.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    /// Kernel name when present.
    pub disk: Option<String>,
    pub serial: String,
    pub state: MemberState,
}

/// md's background work on a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SyncProgress {
    /// `resync`, `recover`, `reshape`, `check` or `repair`.
    pub action: String,
    /// 0.0 to 1.0.
    pub fraction: f64,
    /// Current speed in bytes per second, when md reports it.
    pub bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pool {
    pub name: String,
    pub level: RaidLevel,
    pub class: PoolClass,
    pub state: PoolState,
    /// Plain words on what is wrong, when the state is not online.
    pub problem: Option<String>,
    /// Where the pool's file system is mounted (`/pools/NAME`).
    pub mountpoint: String,
    /// The md device (`/dev/md127`), when assembled.
    pub device: Option<String>,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub members: Vec<Member>,
    pub sync: Option<SyncProgress>,
    /// When md's last scrub (`check`) finished, seconds since the epoch.
    pub last_scrub: Option<u64>,
    /// Mismatches the last scrub found.
    pub scrub_mismatches: Option<u64>,
    /// How fast the pool reads, measured (several streams of direct 1 MiB reads): what
    /// reservations are checked against. None until it has been measured.
    #[serde(default)]
    pub read_mb_s: Option<f64>,
    /// When that was measured, seconds since the epoch.
    #[serde(default)]
    pub read_measured_at: Option<u64>,
}

/// Whether a rule's clients may change a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Rw,
    Ro,
}

/// Which clients may reach a share, and as whom: the same for the API, the config file
/// and the NFS service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRule {
    /// Client networks in CIDR form; the default covers every address.
    #[serde(default = "everyone")]
    #[schemars(with = "Vec<String>")]
    pub clients: Vec<ipnet::IpNet>,
    /// Read-write (default) or read-only.
    #[serde(default)]
    pub access: Access,
    /// Map uid 0 and gid 0 to the anonymous ids (default on).
    #[serde(default = "yes")]
    pub root_squash: bool,
    /// Map every caller to the anonymous ids.
    #[serde(default)]
    pub all_squash: bool,
    /// The uid squashed callers get (default 65534, "nobody").
    #[serde(default = "nobody")]
    pub anonuid: u32,
    /// The gid squashed callers get (default 65534, "nogroup").
    #[serde(default = "nobody")]
    pub anongid: u32,
}

impl ExportRule {
    /// Whether the rule covers `client` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn matches(&self, client: std::net::IpAddr) -> bool {
        let client = client.to_canonical();
        self.clients.iter().any(|net| net.contains(&client))
    }

    pub fn read_only(&self) -> bool {
        self.access == Access::Ro
    }
}

fn everyone() -> Vec<ipnet::IpNet> {
    vec![
        "0.0.0.0/0".parse().expect("valid"),
        "::/0".parse().expect("valid"),
    ]
}
fn yes() -> bool {
    true
}
fn nobody() -> u32 {
    65534
}

impl Default for ExportRule {
    fn default() -> Self {
        Self {
            clients: everyone(),
            access: Access::Rw,
            root_squash: true,
            all_squash: false,
            anonuid: nobody(),
            anongid: nobody(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Share {
    pub name: String,
    pub pool: String,
    /// The folder served.
    pub path: String,
    pub rules: Vec<ExportRule>,
    /// Serving now (its pool is mounted).
    pub online: bool,
    /// Served over SMB too, as `\\HOST\NAME`.
    #[serde(default)]
    pub smb: bool,
    /// Offered to Macs as a Time Machine destination.
    #[serde(default)]
    pub time_machine: bool,
    /// Accounts allowed over SMB; empty means every account.
    #[serde(default)]
    pub users: Vec<String>,
    /// NFS clients may make character and block device nodes (as an unsquashed root
    /// only). FIFOs and sockets are always allowed.
    #[serde(default)]
    pub allow_devices: bool,
}

/// A request to create a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    pub name: String,
    pub level: RaidLevel,
    /// Disks by kernel name (`nvme0n1`) or serial.
    pub disks: Vec<String>,
    /// Default: `fast` unless a disk is rotational.
    #[serde(default)]
    pub class: Option<PoolClass>,
    /// Disks (name or serial) whose current contents the admin agreed to erase.
    #[serde(default)]
    pub wipe: Vec<String>,
}

/// Add disks to a pool and grow it onto them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrowPool {
    pub disks: Vec<String>,
    #[serde(default)]
    pub wipe: Vec<String>,
}

/// Put a new disk in place of a failed or missing member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceDisk {
    /// The new disk, by name or serial.
    pub disk: String,
    /// The member to replace, by serial or name; default: the failed or missing one.
    #[serde(default)]
    pub old: Option<String>,
    #[serde(default)]
    pub wipe: bool,
}

/// Destroy a pool: `confirm` must repeat its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestroyPool {
    pub confirm: String,
}

/// A request to create a share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShare {
    pub name: String,
    pub pool: String,
    /// Default: one rule, every client read-write with root squashed.
    #[serde(default)]
    pub rules: Option<Vec<ExportRule>>,
    /// Serve it over SMB too (default yes).
    #[serde(default)]
    pub smb: Option<bool>,
    /// Offer it to Macs as a Time Machine destination (SMB).
    #[serde(default)]
    pub time_machine: bool,
    /// Accounts allowed over SMB; empty means every account.
    #[serde(default)]
    pub users: Vec<String>,
    /// Let NFS clients make device nodes (default no).
    #[serde(default)]
    pub allow_devices: bool,
}

/// An account: one uid and gid on both protocols. NFS clients send the uid (AUTH_SYS);
/// SMB clients log in with the name and password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Has an SMB password (can log in over SMB).
    pub smb_password: bool,
    /// What the account may do on the admin plane (web and remote `rushesctl`) with the
    /// same password; `null`: no web login.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A request to add an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub password: String,
    /// Default: the next free uid from 1000. Give the uid the edit suites already use
    /// over NFS, so files keep one owner on both protocols.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Default: 100 (`users`).
    #[serde(default)]
    pub gid: Option<u32>,
    /// A role on the admin plane (web and remote `rushesctl`), logging in with the same
    /// password. None unless given.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A new SMB password for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPassword {
    pub password: String,
}

/// Change a share: each field given replaces what the share has; the others stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShare {
    /// NFS export rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<ExportRule>>,
    /// Served over SMB too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smb: Option<bool>,
    /// Offered to Macs as a Time Machine destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_machine: Option<bool>,
    /// Accounts allowed over SMB; empty means every account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// NFS clients may make device nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_devices: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its turn (or, after a restart, for its owner to take it up again).
    Queued,
    Running,
    Paused,
    /// Ended with an error: see `error`.
    Failed,
    Cancelled,
    Done,
}

impl JobState {
    /// Queued, running or paused: not ended.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Running | JobState::Paused
        )
    }
}

/// What kind of thing a job works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Pool,
    Share,
    /// A set of paths (moves, copies, recalls).
    Paths,
    Disk,
    Bay,
    Card,
    /// An object store or another site.
    Store,
    /// The appliance as a whole.
    Appliance,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Pool => "pool",
            TargetKind::Share => "share",
            TargetKind::Paths => "paths",
            TargetKind::Disk => "disk",
            TargetKind::Bay => "bay",
            TargetKind::Card => "card",
            TargetKind::Store => "store",
            TargetKind::Appliance => "appliance",
        }
    }
}

/// What a job works on: `pool media`, `card`, `paths /media/day1/*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct JobTarget {
    pub kind: TargetKind,
    /// Empty for targets that are one of a kind (the card, the appliance).
    #[serde(default)]
    pub name: String,
}

impl JobTarget {
    pub fn pool(name: &str) -> Self {
        Self {
            kind: TargetKind::Pool,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for JobTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.is_empty() {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{} {}", self.kind.as_str(), self.name)
        }
    }
}

/// How far a job's current step is, in the step's own units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    /// `bytes`, `files`, `disks` …
    pub unit: String,
    /// Units per second, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Seconds left at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<u64>,
}

/// Long work (pool create, grow, replace, scrub, and the coming moves and copies) that
/// a client can watch, and cancel where the work allows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    pub id: u64,
    /// `create-pool`, `grow-pool`, `replace-disk`, `scrub` …
    pub kind: String,
    pub target: JobTarget,
    pub state: JobState,
    /// What it is doing now, in words.
    pub step: String,
    /// The current step's progress, when it is counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// 0.0 to 1.0 of the current step, when known.
    pub fraction: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// `POST /v1/jobs/{id}/cancel` can stop it.
    #[serde(default)]
    pub cancellable: bool,
    /// Taken up again after a restart of rushesd.
    #[serde(default)]
    pub resumed: bool,
    /// Seconds since the epoch.
    pub started: u64,
    pub finished: Option<u64>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Something the admin should know or do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// Stable while the condition lasts (`pool-degraded:media`).
    pub id: String,
    pub severity: Severity,
    pub message: String,
    /// What to do about it.
    pub action: String,
    /// Seconds since the epoch.
    pub since: u64,
    /// The subsystem that raised it (`pools`, `fabrics`, `card` …).
    #[serde(default)]
    pub source: String,
    /// An event rather than a condition (a damaged file set aside): it stays until the
    /// admin dismisses it (`POST /v1/alerts/{id}/dismiss`).
    #[serde(default)]
    pub dismissable: bool,
}

/// An alert's life, kept in the history after it cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertRecord {
    pub id: String,
    pub severity: Severity,
    pub message: String,
    pub source: String,
    /// Seconds since the epoch.
    pub raised: u64,
    pub cleared: Option<u64>,
}

/// The appliance at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    pub version: String,
    pub hostname: String,
    pub uptime_secs: u64,
}

/// Every error the API returns has this body, with an HTTP status to match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiError {
    /// Machine-readable: `bad-request`, `not-found`, `disk-is-boot`, `disk-in-use`,
    /// `disk-has-data`, `too-few-disks`, `bad-name`, `busy`, `exists`, `failed`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
    /// What to do about it.
    #[serde(default)]
    pub hint: Option<String>,
}

/// How one NIC gets its address; the same fields as `[[network]]` in rushes.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NetworkSetting {
    /// A NIC name, or `*` for every wired NIC without an entry of its own.
    pub interface: String,
    /// `10.10.0.5/24`; none means DHCP.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// 9000 for jumbo frames; none keeps the NIC's default.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// The box's own settings. Host name applies at once; network, time zone and NTP at the
/// next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub network: Vec<NetworkSetting>,
    /// IANA name, e.g. `Europe/London`.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub ntp: Vec<String>,
}

/// A network interface as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    pub link_up: bool,
    /// Mbit/s, when the link is up and the driver says.
    pub speed_mbps: Option<u32>,
    pub mtu: u32,
    /// `10.0.2.15/24` …
    pub addresses: Vec<String>,
}

/// Whether the first-boot setup has been done (an admin password exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Setup {
    pub configured: bool,
    pub hostname: String,
    /// Addresses clients can mount from.
    pub addresses: Vec<String>,
}

/// Set the admin password; `current` is required once one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    #[serde(default)]
    pub current: Option<String>,
    pub new: String,
}

/// Check the admin password (the console's lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub password: String,
}

/// Reboot or power off; `confirm` must be true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// `reboot` or `poweroff`.
    pub action: String,
    #[serde(default)]
    pub confirm: bool,
}

/// The box's software: what runs, the two boot slots, and the keys updates are taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateStatus {
    /// The image version running now.
    pub version: String,
    /// The hardware model bundles must be made for.
    pub model: String,
    /// The slot this boot came from (`a` or `b`); none in host mode without `--esp`.
    pub running_slot: Option<String>,
    /// Slots A and B in the order the boot loader tries them.
    pub slots: Vec<BootSlot>,
    /// Fingerprints of the keys whose bundles this box takes.
    pub trusted_keys: Vec<String>,
    /// What is wrong with the boot partition or the keys, if anything.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// One boot slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BootSlot {
    /// `a` or `b`.
    pub slot: String,
    /// `good` (came up and was blessed), `trying` (written, not yet blessed), `bad`
    /// (ran out of tries), or `empty`.
    pub state: String,
    /// Tries left before the boot loader gives up on it (only when `trying`).
    pub tries_left: Option<u32>,
    pub version: Option<String>,
    /// This boot came from it.
    pub running: bool,
    /// The boot loader starts it next.
    pub boots_next: bool,
}

/// Apply a signed update bundle: a path on the box or an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApply {
    /// `/pools/media/updates/rushes-0.2.0.bundle` or `https://…/rushes-0.2.0.bundle`.
    pub source: String,
    /// Reboot into the new slot once it is written.
    #[serde(default)]
    pub reboot: bool,
}

/// Make the other slot the one that boots next; `confirm` must be true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRollback {
    #[serde(default)]
    pub confirm: bool,
    /// Reboot into it now.
    #[serde(default)]
    pub reboot: bool,
}

/// A file the box hands out: a support bundle (`.tar.zst` of what someone helping needs,
/// never a password, key or token) or a config backup (sealed under its passphrase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HandedOutFile {
    /// A file name for it: `rushes-support-HOST-YYYYMMDD-HHMMSS.tar.zst`,
    /// `rushes-config-HOST-YYYYMMDD-HHMMSS.backup`.
    pub name: String,
    /// What is in it.
    pub files: Vec<String>,
    /// Its size.
    pub bytes: u64,
    /// The file itself, base64 (standard alphabet, padded).
    pub content: String,
    /// Where the box also saved it, when asked to (a backup into a share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_as: Option<String>,
}

/// `POST /v1/support-bundle`'s answer.
pub type SupportBundle = HandedOutFile;
/// `POST /v1/config/backup`'s answer.
pub type ConfigBackupFile = HandedOutFile;

/// Back the config up, sealed under `passphrase` (8 characters at least).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigBackup {
    pub passphrase: String,
    /// Also save the file at the top of this share, for a client to take off the box
    /// (the console's way, which has no browser to save it). It is sealed: anyone who
    /// can read the share can take it, and it is as safe as its passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
}

/// Restore a backup with its passphrase: the file itself (`content`, base64), or where
/// the box reads it (`source`: a path on the box or an http(s) URL); one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRestore {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
    /// A path on the box (e.g. a backup saved into a share: /pools/POOL/SHARE/FILE) or
    /// an http(s) URL the box fetches it from (the console's way, which has no file to
    /// send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub passphrase: String,
}

/// What a restore put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigRestored {
    pub files: Vec<String>,
    pub from_host: String,
    pub from_version: String,
    /// When the backup was made (seconds since the epoch).
    pub created: u64,
    /// rushesd starts again on the restored files now (on the appliance); in host mode
    /// it must be restarted.
    pub restarting: bool,
}

/// Recent lines of the supervisor's log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Logs {
    pub lines: Vec<String>,
}

/// Traffic in one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Throughput {
    /// Seconds since the epoch.
    pub at: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub ops: u64,
}

/// The rate rules in force and what their reservations stand on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rates {
    /// In order: the first rule that covers a client is its rule.
    pub rules: Vec<RateStatus>,
    /// The reservations added up, MB/s.
    pub reserved_mb_s: u64,
    /// What the pools read at together, as measured, MB/s; `null` when no pool has
    /// been measured. Reservations may add up to this much.
    pub measured_mb_s: Option<f64>,
    /// Pools whose read rate has not been measured yet.
    pub unmeasured: Vec<String>,
    /// Why the rules in rushes.toml are not in force, when they are not.
    pub problem: Option<String>,
}

/// A rate rule to add or change (`PUT /v1/rates/NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRate {
    /// The client networks it covers, in CIDR form ("10.0.20.0/24"); none: every client
    /// (of the shares it names).
    #[serde(default)]
    pub clients: Vec<String>,
    /// The shares it covers, by name; none: every share (of the clients it names).
    #[serde(default)]
    pub shares: Vec<String>,
    /// The most those clients may read and write together, MB/s.
    #[serde(default)]
    pub cap_mb_s: Option<u64>,
    /// The rate served to those clients before best effort, MB/s. Refused when the
    /// reservations would add up to more than the pools were measured to read at.
    #[serde(default)]
    pub reserve_mb_s: Option<u64>,
    /// Put it ahead of this rule (the first rule covering a client wins); by default a
    /// new rule goes last and a changed one stays where it is.
    #[serde(default)]
    pub before: Option<String>,
}

/// A rate rule (`[[rate]]`) and what its clients get now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RateStatus {
    pub name: String,
    /// The networks it covers (none: every client).
    pub clients: Vec<String>,
    /// The shares it covers (none: every share).
    #[serde(default)]
    pub shares: Vec<String>,
    /// The most its clients may read and write together, MB/s; `null` for no cap.
    pub cap_mb_s: Option<u64>,
    /// The rate served to its clients before others', MB/s; `null` for none.
    pub reserve_mb_s: Option<u64>,
    /// What its clients read and wrote together over the last minute, MB/s.
    pub now_mb_s: f64,
    /// Each client it covers that moved data in the last minute, busiest first; for a
    /// rule on shares, each of its shares (`address` is then the share's name).
    pub getting: Vec<ClientRate>,
}

/// What one client read and wrote over the last minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientRate {
    pub address: String,
    pub mb_s: f64,
}

/// A client seen lately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClientActivity {
    pub address: String,
    pub last_seen: u64,
    pub ops: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// Live NFS traffic: the last minute second by second, and who is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Activity {
    /// Oldest first.
    pub seconds: Vec<Throughput>,
    /// Clients seen in the last five minutes, busiest first.
    pub clients: Vec<ClientActivity>,
}

/// One group of an activity report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActivityRow {
    /// A client address, `uid 1000`, a share name or an operation.
    pub group: String,
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
    pub ops_per_s: f64,
    pub bytes_per_s: f64,
    /// Latency percentiles, microseconds; `null` when nothing in the group was timed
    /// (SMB operations come from Samba's audit, which carries no timing).
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// Activity over a window, grouped one way, busiest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActivityReport {
    /// `second`, `minute` or `hour`.
    pub window: String,
    /// `client`, `user`, `share` or `op`.
    pub by: String,
    /// Whether the figures come from a sample of the operations (never, so far: every
    /// operation is counted).
    pub sampled: bool,
    pub rows: Vec<ActivityRow>,
}

/// One client (or user, share, …) over the last minute (a point a second) or hour (a
/// point a minute), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActivitySeries {
    pub group: String,
    /// Bytes a second at each point (over an hour, the minute's average).
    pub bytes_per_second: Vec<u64>,
    /// Median latency in microseconds at each point; null where nothing was timed.
    #[serde(default)]
    pub p50_us: Vec<Option<u64>>,
}

/// The busiest files, folders, clients or users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActivityTop {
    /// `minute` or `hour`.
    pub window: String,
    /// `file`, `dir`, `client` or `user`. Files and folders read `SHARE/PATH`.
    pub by: String,
    /// `bytes` or `ops`.
    pub sort: String,
    pub rows: Vec<ActivityRow>,
    /// Operations on files past the per-minute tracking limit (50,000 files a minute),
    /// which no file row includes. Zero unless the box is that busy.
    pub untracked_ops: u64,
    pub untracked_bytes: u64,
}

/// One line of the audit log: who did what to which file, when, from where, over which
/// protocol, and how it went. The same record for NFS and SMB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    pub client: String,
    /// The account name when known, else `uid N`.
    pub user: String,
    /// `nfs3` or `smb`; for admin actions, `https` (the network's admin plane) or
    /// `console` (the box's own socket), with the HTTP method as `op` and the API path
    /// as `path`.
    pub protocol: String,
    pub share: String,
    /// OPEN, CREATE, READ, WRITE, RENAME, DELETE, MKDIR, SETATTR, … (NFS procedures
    /// keep their names: REMOVE, RMDIR).
    pub op: String,
    /// Inside the share, from its root: `/reel1/a001.mov`.
    pub path: String,
    /// RENAME's new path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub bytes: u64,
    /// `null` for SMB (its audit has no timing).
    pub latency_us: Option<u64>,
    /// `ok`, or the error.
    pub result: String,
}

/// Where the audit log is kept and how much of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditStatus {
    /// The pool it is written to; `null` while no pool is mounted (records wait in
    /// memory, up to a limit, and the alert says so).
    pub pool: Option<String>,
    pub files: usize,
    pub bytes: u64,
    /// The oldest record kept, milliseconds since the epoch.
    pub oldest_ms: Option<u64>,
    pub max_bytes: u64,
    pub max_days: u32,
    /// Records waiting for a pool.
    pub waiting: usize,
    /// Records dropped because no pool came in time (the memory limit).
    pub dropped: u64,
}

/// Put every setting back to the defaults (`confirm` must be true): host name, network,
/// admin password, pools and shares are forgotten; the pools' data stays on their disks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    #[serde(default)]
    pub confirm: bool,
}

/// The NTP server chronyd follows, and how far the clock is from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClockSync {
    pub server: String,
    /// Server time minus ours now, milliseconds (chronyd slews this away).
    pub offset_ms: f64,
    /// Round trip to the root of the server's time (chronyd's root delay), milliseconds.
    pub delay_ms: f64,
    /// When chronyd last updated the clock from it, seconds since the epoch.
    pub at: u64,
    /// Our stratum (the server's plus one).
    pub stratum: u8,
    /// chronyd's leap status: `Normal`, `Insert second`, `Delete second`.
    pub leap: String,
}

/// The clock and its NTP servers, as chronyd reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Clock {
    /// Seconds since the epoch, now.
    pub now: u64,
    pub ntp: Vec<String>,
    pub synced: Option<ClockSync>,
    /// Why the clock is not synchronised, when it is not.
    pub error: Option<String>,
    /// The kernel marks its clock synchronised (and so keeps the RTC from it).
    #[serde(default)]
    pub kernel_synchronised: bool,
}

/// `PUT /v1/placement`, `POST /v1/placement/simulate`: a placement rules file as the
/// admin writes it (`[[pool]]` watermarks, `[[rule]]`s in order, `every`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementRules {
    /// The file's TOML text.
    pub text: String,
}

/// `POST /v1/placement/run`: move every file the rules in force say is on the wrong pool,
/// as one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementRun {
    /// The most bytes a second the moves may read (none: as fast as the pools go).
    #[serde(default)]
    pub rate_bytes: Option<u64>,
}

/// One refusal of a rules file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleProblem {
    pub line: usize,
    pub rule: Option<String>,
    pub reason: String,
}

/// One rule in force, as `rushesctl placement` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlacementRule {
    pub name: String,
    /// `place`, `pin`, `exclude` or `copy`.
    pub action: String,
    /// Where `place` puts the data.
    pub pool: Option<String>,
    /// Proven copies the rule keeps of its files, and on which targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `create`, `schedule`, `watermark`.
    pub on: Vec<String>,
    /// The rule's conditions, as written (`path = "grade/**"`).
    pub conditions: Vec<String>,
}

/// A pool's watermarks, in percent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PoolWatermark {
    pub pool: String,
    pub high: u8,
    pub low: u8,
    /// `oldest-access`, `oldest-modify` or `largest`: which files leave first.
    pub weight: String,
}

/// `GET /v1/placement`: the rules in force, in order, and the pools' watermarks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Placement {
    pub rules: Vec<PlacementRule>,
    pub watermarks: Vec<PoolWatermark>,
    /// Seconds between scheduled runs, if they are on.
    pub every_secs: Option<u64>,
    /// Why the rules kept in rushes.toml are not in force (a hand edit that does not
    /// pass), if they are not; then nothing moves.
    pub problems: Vec<RuleProblem>,
}

/// One file's data going from one pool to another, in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedMove {
    pub share: String,
    pub path: String,
    pub from: String,
    pub to: String,
    pub bytes: u64,
    pub rule: String,
    /// `rule` or `watermark`.
    pub because: String,
    /// Why the move cannot be made now, for a move held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// A pool before and after a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PoolOutlook {
    pub pool: String,
    pub size_bytes: u64,
    pub used_now: u64,
    pub used_after: u64,
    pub high: Option<u8>,
    pub low: Option<u8>,
    /// Still past its high watermark once the plan is done.
    pub above_high_after: bool,
}

/// `POST /v1/placement/simulate`: what the rules would do now, with nothing moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlacementPlan {
    pub files_seen: u64,
    /// The moves, up to `list` of them (all bytes and counts are of every move).
    pub moves: Vec<PlannedMove>,
    pub moves_total: u64,
    pub bytes: u64,
    /// Moves held back, each with its reason, up to `list` of them.
    pub held: Vec<PlannedMove>,
    pub held_total: u64,
    pub pools: Vec<PoolOutlook>,
    /// The measured move rate used for the estimate, bytes a second.
    pub rate: Option<u64>,
    pub seconds: Option<u64>,
    /// Shares that could not be looked at, and why.
    pub skipped: Vec<String>,
    /// What the copy rules would do now, per target.
    #[serde(default)]
    pub copies: Vec<CopyOutlook>,
    /// The plan in words, as `rushesctl placement simulate` prints it.
    pub report: String,
}

/// `POST /v1/placement/simulate` with other rules than those in force, and how many
/// moves to list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// A rules file to try instead of the rules in force.
    #[serde(default)]
    pub text: Option<String>,
    /// Moves and held moves listed (20 unless given).
    #[serde(default)]
    pub list: Option<usize>,
}

/// One rule's verdict on a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleVerdict {
    pub rule: String,
    pub matched: bool,
    /// How it matched, or the first reason it did not.
    pub why: String,
}

/// `GET /v1/placement/explain?path=SHARE/PATH`: which rule decides a file and why the
/// rules before it did not, and where its data is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlacementExplain {
    pub share: String,
    pub path: String,
    pub size_bytes: u64,
    /// The pool its data is on now.
    pub pool: String,
    /// Every rule up to the one that matched, in order.
    pub verdicts: Vec<RuleVerdict>,
    /// What the matching rule wants, in words ("place on archive", "pin"), or that no
    /// rule matched and the data stays.
    pub outcome: String,
    /// The rule that places the file's data when it is created, if one does.
    pub at_create: Option<String>,
}
