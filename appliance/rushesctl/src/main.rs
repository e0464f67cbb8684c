//! `rushesctl`: the appliance's disks, pools, shares, jobs and alerts from a shell, through
//! the management API only. Human tables by default, `--json` for scripts.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rushes_api as api;
use rushes_api::{Client, ClientError, JobState, RaidLevel};

mod find;
mod output;
mod remote;

use output::{json, now_secs, out, table, Res};

#[derive(Parser)]
#[command(
    name = "rushesctl",
    version,
    about = "Manage a Rushes appliance: disks, pools, shares, NVMe-oF bays, jobs and alerts",
    after_help = "Examples:\n  rushesctl disks\n  rushesctl pool create media --level raid5 nvme0n1 nvme1n1 nvme2n1 nvme3n1 --wait\n  rushesctl share create projects --pool media\n  rushesctl pool replace media nvme4n1 --wait\n  rushesctl alerts\n  rushesctl fabric discover 10.0.0.9\n  rushesctl fabric connect nqn.2026-11.com.example:bay1 --address 10.0.0.9:4420"
)]
struct Cli {
    /// The management API socket.
    #[arg(long, global = true, env = "RUSHES_API", default_value = api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Manage the box at HOST[:PORT] over HTTPS (port 443 unless given) instead of this
    /// machine's socket; needs --token.
    #[arg(long, global = true, env = "RUSHES_HOST", value_name = "HOST[:PORT]")]
    host: Option<String>,
    /// The API token to send with --host (made with `rushesctl token create`).
    #[arg(long, global = true, env = "RUSHES_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The SHA-256 fingerprint the box's certificate must have (shown on its console and
    /// by `rushesctl web`); remembered in ~/.config/rushes/known-boxes. Without it, the
    /// one remembered is used, or asked for on first use.
    #[arg(long, global = true, env = "RUSHES_FINGERPRINT", value_name = "SHA256")]
    fingerprint: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Version, host name and uptime.
    Status,
    /// Back up the box's config into one file sealed under a passphrase (read from
    /// standard input), or restore one onto this box.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Write a support bundle: versions, the log, the config with every secret removed,
    /// disks with SMART, pools, shares, alerts, jobs and the network in one .tar.zst to
    /// send with a request for help. It never holds a password, key or token.
    SupportBundle {
        /// Where to write it [default: rushes-support-HOST-DATE.tar.zst here].
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// The clock: the NTP server chronyd follows, how far off the clock is, and whether
    /// the kernel marks it synchronised (and so keeps the RTC).
    Time,
    /// Every disk: transport, size, serial, what is on it, what uses it.
    Disks,
    /// Every pool with its state and capacity.
    Pools,
    /// Create, show, grow, repair, scrub or destroy a pool.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Every share.
    Shares,
    /// Create, show, change or delete a share.
    #[command(subcommand)]
    Share(ShareCmd),
    /// Every account: name, uid and gid (the same on NFS and SMB), and whether it has
    /// an SMB password.
    Users,
    /// Add or remove an account, or set its SMB password.
    #[command(subcommand)]
    User(UserCmd),
    /// The admin password (the console's lock), from the maintenance shell.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// API tokens for scripts and remote rushesctl: make, list, revoke.
    #[command(subcommand)]
    Token(remote::TokenCmd),
    /// The admin plane's HTTPS: where it listens, its certificate's fingerprint, and
    /// installing the facility's own certificate.
    #[command(subcommand)]
    Web(remote::WebCmd),
    /// Placement rules: which pool each file's data belongs on. Without a subcommand,
    /// lists the rules in force and the pools' watermarks.
    Placement {
        #[command(subcommand)]
        cmd: Option<PlacementCmd>,
    },
    /// Recent jobs with their progress; `rushesctl jobs watch ID` follows one,
    /// `rushesctl jobs cancel ID` stops one that can be stopped (a scrub).
    Jobs {
        #[command(subcommand)]
        watch: Option<JobsCmd>,
    },
    /// What needs the admin's attention, most severe first; `alerts history` lists
    /// raised and cleared ones, `alerts dismiss ID` takes away an event once seen.
    Alerts {
        #[command(subcommand)]
        cmd: Option<AlertsCmd>,
    },
    /// Who did what over NFS and SMB: operations, bytes, rates and latency over the
    /// last second, minute or hour, per client, user, share, operation or protocol,
    /// busiest first.
    Activity {
        #[arg(long, default_value = "minute", value_parser = ["second", "minute", "hour"])]
        window: String,
        #[arg(long, default_value = "client", value_parser = ["client", "user", "share", "op", "protocol"])]
        by: String,
    },
    /// The NFS rate rules (caps and reservations on groups of clients) and what each
    /// covered client reads and writes now (MB/s over the last minute); the same as
    /// `rate list`.
    Rates,
    /// Add, change or remove NFS rate rules: caps and playback reservations.
    #[command(subcommand)]
    Rate(RateCmd),
    /// Where copies can go: S3 and S3-compatible stores, Google Cloud Storage, Azure
    /// Blob, a folder (an LTFS tape, a gateway's mount).
    #[command(subcommand)]
    Target(TargetCmd),
    /// This box as an S3 endpoint where other Rushes boxes (or any S3 tool) keep their
    /// copies: which pool it serves, and the keys that sign for it.
    #[command(subcommand)]
    S3(S3Cmd),
    /// Copy files or folders of a share to a target, as a job: each file is read back
    /// from the target and proven before it counts, then recorded on the file.
    #[command(
        after_help = "Examples:\n  rushesctl copy projects jobs/2041-advert --to wasabi --wait\n  rushesctl copy rushes day1/A003C012.mov day1/A003C013.mov --to tape"
    )]
    Copy {
        share: String,
        #[arg(required = true)]
        paths: Vec<String>,
        /// The target (rushesctl target list).
        #[arg(long, value_name = "TARGET")]
        to: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// A file's proven copies and where it stands: resident (no copy), premigrated
    /// (copies of it as it is), dirty (changed since its last copy) or migrated
    /// (released to its copies).
    Copies { share: String, path: String },
    /// Bring every file in line with the copy rules now (rules with `copies` and
    /// `targets`, see rushesctl placement set), as a job: the copies a file lacks are
    /// made and proven; a changed file's older copy is kept as a version on its target.
    /// Runs by itself on the rules' schedule (`every`).
    Reconcile {
        #[command(flatten)]
        wait: Wait,
    },
    /// Release files or folders of a share to their copies, as a job: a file with
    /// enough proven copies of its bytes as they are now gives its blocks back and stays
    /// as a stub with its path, size, owner, times and NFS handle. A client that reads
    /// it brings it back (NFS clients are told to retry while it comes).
    #[command(after_help = "Examples:
  rushesctl release projects jobs/2039-feature --wait
  rushesctl release rushes day1 --copies 2")]
    Release {
        share: String,
        #[arg(required = true)]
        paths: Vec<String>,
        /// Proven copies a file must have to be released.
        #[arg(long, default_value_t = 1, value_name = "N")]
        copies: u32,
        #[command(flatten)]
        wait: Wait,
    },
    /// Bring released files or folders of a share back from their copies, as one job
    /// with progress in bytes; recalls that clients wait for go first.
    #[command(after_help = "Example:
  rushesctl recall projects jobs/2039-feature --wait")]
    Recall {
        share: String,
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Read back every recorded copy of files or folders of a share, as a job: each
    /// copy still whole is proven again; one changed or gone on its target no longer
    /// counts and raises a critical alert.
    Prove {
        share: String,
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Search the media catalog: every file of every share, with its clip's codec,
    /// picture, rate, timecode, reel, camera and sound fields.
    #[command(
        after_help = "Free words match names, paths and the fields people say; FIELD:VALUE terms match one field:\n  codec:prores_4444 reel:A003 tape:A003 scene:12 take:3 project:NAME circled:true\n  camera:alexa name:A003C012 share:rushes ext:mov format:wav\n  width:>=3840 height:<=1080 fps:23.976 channels:>2 duration:>30s (s, m, h)\n  tc:10:14:00:00-10:20:00:00 (clips whose timecode span overlaps it)\nAll terms must hold. Quote values with spaces: reel:\"A 003\"."
    )]
    Search {
        /// The query; nothing lists every file.
        query: Vec<String>,
        /// Only this share (repeat for more).
        #[arg(long)]
        share: Vec<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Order: relevance, or by name, path, modified, size, duration or timecode;
        /// a leading `-` reverses it (`-modified`: newest first).
        #[arg(long, default_value = "relevance", allow_hyphen_values = true)]
        sort: String,
        /// Only what this account may read: its shares, and files its uid and groups
        /// may read (the permissions NFS and SMB apply).
        #[arg(long = "as", value_name = "ACCOUNT")]
        as_account: Option<String>,
    },
    /// Everything the catalog knows of one clip, by the id `search` shows (SHARE/PATH).
    Clip {
        id: String,
        /// Save its poster frame (JPEG, 320 pixels wide) to this file.
        #[arg(long, value_name = "FILE")]
        poster: Option<PathBuf>,
        /// Save a strip of five frames across it (JPEG, 800x90) to this file.
        #[arg(long, value_name = "FILE")]
        strip: Option<PathBuf>,
    },
    /// The media catalog's upkeep.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// The busiest files, folders, clients or users over the last minute or hour.
    Top {
        #[arg(long, default_value = "file", value_parser = ["file", "dir", "client", "user"])]
        by: String,
        #[arg(long, default_value = "bytes", value_parser = ["bytes", "ops"])]
        sort: String,
        #[arg(long, default_value = "minute", value_parser = ["minute", "hour"])]
        window: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Search the audit log: who opened, created, changed, renamed or deleted what,
    /// when and from where, over NFS and SMB. Newest first.
    Audit {
        /// Part of the path (or of a rename's new path).
        #[arg(long)]
        path: Option<String>,
        /// Account name, or `uid N`.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        client: Option<String>,
        /// OPEN, CREATE, WRITE, RENAME, DELETE, … (any case).
        #[arg(long)]
        op: Option<String>,
        #[arg(long, value_parser = ["nfs3", "smb"])]
        protocol: Option<String>,
        /// How far back: `30m`, `2h`, `7d`, `1h30m`, or seconds since the epoch.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print every match, oldest first, as CSV or JSON lines (for a spreadsheet or
        /// a SIEM) instead of a table.
        #[arg(long, value_parser = ["csv", "jsonl"])]
        export: Option<String>,
        /// Where the log is kept and how big it is, instead of a search.
        #[arg(long)]
        status: bool,
    },
    /// Find Rushes appliances on this network as Macs do: listen for their mDNS
    /// announcements (SMB, Time Machine, NFS) and print each service with its address.
    /// Needs no API socket.
    Find {
        /// Seconds to listen.
        #[arg(long, default_value_t = 3)]
        listen: u64,
    },
    /// NVMe-oF bays: this host's NQN and every subsystem with its paths and disks.
    Fabrics,
    /// Discover, connect or disconnect NVMe-oF subsystems (NVMe/TCP, NVMe/RoCE).
    #[command(subcommand)]
    Fabric(FabricCmd),
    /// The offload card: its state, firmware and the bays it carries. Without a
    /// subcommand, shows the card.
    Card {
        #[command(subcommand)]
        command: Option<CardCmd>,
    },
    /// The box's software: the version running and its two boot slots; apply a signed
    /// update bundle into the idle slot, or go back to the other slot. Without a
    /// subcommand, shows the slots.
    #[command(
        after_help = "Examples:\n  rushesctl update\n  rushesctl update apply /pools/media/updates/rushes-0.2.0.bundle --reboot\n  rushesctl update apply https://updates.example.com/rushes-0.2.0.bundle\n  rushesctl update rollback --reboot"
    )]
    Update {
        #[command(subcommand)]
        command: Option<UpdateCmd>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Write the settings, pools, shares, accounts (web and SMB passwords), rules,
    /// targets with their secrets, tokens and certificates into one file, sealed under a
    /// passphrase read from standard input (8 characters at least; keep it apart).
    Backup {
        /// Where to write it [default: rushes-config-HOST-DATE.backup here].
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Restore a backup onto this box (the passphrase from standard input). It is
    /// checked whole first; a wrong passphrase or a damaged or newer backup changes
    /// nothing. rushesd then starts again on it and finds the pools it names.
    Restore {
        /// The backup file, here.
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        file: Option<std::path::PathBuf>,
        /// Where the box reads it instead: a path on the box (a backup saved into a
        /// share, /pools/POOL/SHARE/FILE) or an http(s) URL.
        #[arg(long, value_name = "PATH_OR_URL")]
        from: Option<String>,
    },
}

#[derive(Subcommand)]
enum UpdateCmd {
    /// Check a signed bundle (a path on the box, or an http(s) URL the box fetches) and
    /// write it into the idle slot, which then boots next. A refused bundle changes
    /// nothing; the reason is printed.
    Apply {
        /// `/pools/POOL/…/rushes-X.Y.Z.bundle` or `https://…`.
        source: String,
        /// Reboot into the new slot once it is written (it is blessed once the stack is
        /// ready, and the box comes back on this slot by itself if it never is).
        #[arg(long)]
        reboot: bool,
    },
    /// Make the other slot boot next: the version before, after an update has booted;
    /// the running one, when an update is written and not yet booted (which cancels it).
    Rollback {
        /// Reboot into it now.
        #[arg(long)]
        reboot: bool,
    },
}

#[derive(Subcommand)]
enum CardCmd {
    /// Run the emulated card (`emulated`) or none (`off`).
    Mode {
        mode: String,
        /// PCI IDs (`vendor:device`, hex) that mean the card is in this box; repeat
        /// for several.
        #[arg(long = "pci-id")]
        pci_ids: Vec<String>,
    },
    /// Attach a bay through the card; its namespaces appear as disks (`ublkbN`).
    Attach {
        nqn: String,
        /// `10.0.0.9` (port 4420) or `10.0.0.9:4421`.
        #[arg(long)]
        address: String,
    },
    /// Detach a bay from the card.
    Detach { nqn: String },
    /// Manage the card's firmware: `stage FILE`, then `activate`; `rollback` returns to
    /// the other slot.
    #[command(subcommand)]
    Firmware(FirmwareCmd),
}

#[derive(Subcommand)]
enum FirmwareCmd {
    /// Check a bundle (hash, model, host version) and write it to the spare slot.
    Stage { path: String },
    /// Run the staged slot.
    Activate,
    /// Run the other slot again.
    Rollback,
}

#[derive(Subcommand)]
enum FabricCmd {
    /// List the subsystems a bay's discovery controller offers, following referrals to
    /// chained bays. Without an address, ask every bay asked before.
    Discover {
        /// `10.0.0.9` (ports 8009, then 4420) or `10.0.0.9:8009`.
        address: Option<String>,
        /// NVMe/RoCE instead of NVMe/TCP.
        #[arg(long)]
        rdma: bool,
        /// Also ask every discovery controller that announces itself over mDNS
        /// (`_nvme-disc._tcp`).
        #[arg(long)]
        mdns: bool,
    },
    /// Connect a subsystem; its namespaces become disks. Connect it again at a second
    /// address for a second path (native multipath).
    Connect {
        nqn: String,
        /// Where it is: `10.0.0.9` (port 4420) or `10.0.0.9:4421`.
        #[arg(long)]
        address: String,
        #[arg(long)]
        rdma: bool,
    },
    /// Disconnect a subsystem (every path, or only the one at --address) and forget it.
    Disconnect {
        nqn: String,
        #[arg(long)]
        address: Option<String>,
    },
}

/// `10.0.0.9:4421` → (`10.0.0.9`, Some(`4421`)); `[fe80::1]:4420` too.
fn host_port(address: &str) -> (String, Option<String>) {
    if let Some((host, port)) = address
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
    {
        return (host.to_string(), port.strip_prefix(':').map(str::to_string));
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host.to_string(), Some(port.to_string())),
        _ => (address.to_string(), None),
    }
}

#[derive(Subcommand)]
enum PlacementCmd {
    /// Put a rules file in force. A file with any bad rule is refused whole, each line
    /// with its reason, and nothing changes.
    #[command(
        after_help = "A rules file:\n\n  [[pool]]\n  name = \"fast\"\n  high = 85\n  low = 70\n\n  [[rule]]\n  name = \"grading-stays\"\n  path = \"*/grade/**\"\n  action = \"pin\"\n\n  [[rule]]\n  name = \"finished-to-archive\"\n  path = \"finished/**\"\n  accessed_older_than = \"30d\"\n  action = \"place\"\n  pool = \"archive\"\n\n  [[rule]]\n  name = \"spill\"\n  on = [\"watermark\"]\n  current_pool = \"fast\"\n  action = \"place\"\n  pool = \"archive\"\n\n  [[rule]]\n  name = \"grades-twice\"\n  path = \"*/grade/**\"\n  action = \"copy\"\n  copies = 2\n  targets = [\"wasabi\", \"tape\", \"site-b\"]\n\nConditions: share, path, file, extension, larger_than, smaller_than, owner, group,\n{modified,accessed,created}_{older,newer}_than, current_pool, tag, xattr.\nActions: place (with pool), pin, exclude, copy. Triggers (on): create, schedule, watermark.\nAny rule may keep copies (`copies` and `targets`); placement and copies each take the\nfirst rule that matches and says something of them. `rushesctl reconcile` makes them."
    )]
    Set {
        /// The rules file (TOML); `-` reads standard input.
        file: PathBuf,
    },
    /// Which files the rules would move where, how many bytes and how long, which
    /// moves would be held back and why, and the pools after. Nothing moves.
    Simulate {
        /// Try these rules instead of those in force.
        #[arg(long = "rule", value_name = "FILE")]
        rule: Option<PathBuf>,
        /// Moves listed (all are counted).
        #[arg(long, default_value_t = 20)]
        list: usize,
    },
    /// Which rule decides a file, why each rule before it did not, and where its data is.
    Explain {
        /// SHARE/PATH, e.g. media/day1/A001.mov.
        path: String,
    },
    /// Move every file the rules place on another pool than its data's, as one job.
    /// Each copy is read back and compared (blake3) before the file switches to it; the
    /// file keeps its path, NFS handle and inode, and clients go on reading meanwhile.
    /// Shares served over SMB are left out for now (see `simulate`).
    Run {
        /// The most the moves may read a second, e.g. 200M (none: as fast as the pools go).
        #[arg(long, value_parser = api::units::parse_size)]
        rate: Option<u64>,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Subcommand)]
enum JobsCmd {
    /// Follow a job until it ends.
    Watch { id: u64 },
    /// Ask a job to stop at its next safe point (scrubs can; layout changes cannot).
    Cancel { id: u64 },
}

#[derive(Subcommand)]
enum AlertsCmd {
    /// Alerts raised and cleared, newest first.
    History,
    /// Take away an event alert (a damaged state file set aside) once it is seen.
    Dismiss { id: String },
}

#[derive(Args)]
struct Wait {
    /// Follow the job until it ends, with its progress.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
enum PoolCmd {
    /// Make a pool (md RAID + XFS) of whole disks.
    #[command(
        after_help = "Levels: single (1 disk), raid0 (2+), raid1 (2+), raid5 (3+), raid6 (4+), raid10 (2+).\nDisks are named as `rushesctl disks` shows them, by kernel name or serial.\nA disk with data on it is refused unless named with --wipe."
    )]
    Create {
        name: String,
        #[arg(long, value_parser = parse_level)]
        level: RaidLevel,
        #[arg(required = true)]
        disks: Vec<String>,
        /// fast (SSD/NVMe) or capacity (HDD); default from the disks.
        #[arg(long, value_parser = parse_class)]
        class: Option<api::PoolClass>,
        /// Erase this disk's contents (repeat for each disk).
        #[arg(long, value_name = "DISK")]
        wipe: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// A pool's state, members and background work.
    Show { name: String },
    /// Add disks and reshape onto them; the file system grows when it is done.
    Grow {
        name: String,
        #[arg(required = true)]
        disks: Vec<String>,
        #[arg(long, value_name = "DISK")]
        wipe: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Rebuild onto DISK in place of the failed or missing member (or --old).
    Replace {
        name: String,
        disk: String,
        /// The member to replace, by serial or name.
        #[arg(long)]
        old: Option<String>,
        /// Erase DISK's contents.
        #[arg(long)]
        wipe: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Check every stripe now (md check).
    Scrub {
        name: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Measure how fast the pool reads (a few seconds of direct reads, beside what it
    /// serves): rate reservations are checked against it. New pools are measured by
    /// themselves; measure again after growing one.
    Measure {
        name: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Destroy a pool and its data; its shares must be deleted first.
    Destroy {
        name: String,
        /// Repeat the pool's name.
        #[arg(long, required = true)]
        confirm: String,
    },
}

#[derive(Args)]
struct RuleArgs {
    /// Client networks allowed (CIDR, comma-separated); default every client.
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    clients: Vec<ipnet::IpNet>,
    /// Clients may read but not change.
    #[arg(long)]
    read_only: bool,
    /// Trust the clients' root (default: root is squashed to nobody).
    #[arg(long)]
    no_root_squash: bool,
    /// Every client user becomes the anonymous user.
    #[arg(long)]
    all_squash: bool,
}

impl RuleArgs {
    fn rule(&self) -> api::ExportRule {
        let mut rule = api::ExportRule::default();
        if !self.clients.is_empty() {
            rule.clients = self.clients.clone();
        }
        rule.access = if self.read_only {
            api::Access::Ro
        } else {
            api::Access::Rw
        };
        rule.root_squash = !self.no_root_squash;
        rule.all_squash = self.all_squash;
        rule
    }
}

/// `2h` ago, `30m` ago, `7d` ago, or seconds since the epoch as they are.
fn when(text: &str) -> Result<u64, String> {
    let now = now_secs();
    if let Ok(epoch) = text.parse::<u64>() {
        return Ok(epoch);
    }
    let ago = rushes_api::calendar::parse_span(text)?;
    Ok(now.saturating_sub(ago))
}

/// A rules file's text, from a path or (`-`) standard input.
fn rules_text(file: &std::path::Path) -> Result<String, String> {
    let read = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    read.map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// A local file that cannot be read: said, and exit status 2 (a usage error).
/// A file the API hands out base64 (`content`), written to `output` or, by default, to
/// `name` here: where it went and its bytes, or why not.
fn save_handed_out(
    what: &str,
    name: &str,
    content: &str,
    output: &Option<std::path::PathBuf>,
) -> Result<(std::path::PathBuf, Vec<u8>), String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content)
        .map_err(|e| format!("the {what} did not come whole: {e}"))?;
    let path = output.clone().unwrap_or_else(|| name.into());
    std::fs::write(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((path, bytes))
}

fn unreadable(why: String) -> Res {
    eprintln!("rushesctl: {why}");
    Ok(ExitCode::from(2))
}

fn placement(cli: &Cli, c: &Client, cmd: Option<&PlacementCmd>) -> Res {
    match cmd {
        None => {
            let p: api::Placement = c.get("/v1/placement")?;
            if cli.json {
                json(&p);
                return Ok(ExitCode::SUCCESS);
            }
            for problem in &p.problems {
                out(&format!(
                    "REFUSED line {}{}: {}\n",
                    problem.line,
                    problem
                        .rule
                        .as_ref()
                        .map(|r| format!(" (rule {r:?})"))
                        .unwrap_or_default(),
                    problem.reason
                ));
            }
            if !p.problems.is_empty() {
                out("the rules in rushes.toml are refused, so nothing moves; fix them and `rushesctl placement set FILE`\n");
                return Ok(ExitCode::from(1));
            }
            if p.rules.is_empty() {
                out("no placement rules: every file's data stays on its share's pool\n");
            }
            let rows: Vec<Vec<String>> = p
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    vec![
                        (i + 1).to_string(),
                        r.name.clone(),
                        {
                            let what = match &r.pool {
                                Some(pool) => format!("{} {pool}", r.action),
                                None => r.action.clone(),
                            };
                            match r.copies {
                                Some(n) if r.action == "copy" => {
                                    format!("copy {n} on {}", r.targets.join(","))
                                }
                                Some(n) => format!("{what}, copies {n} on {}", r.targets.join(",")),
                                None => what,
                            }
                        },
                        r.on.join(","),
                        r.conditions.join(", "),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                out(&table(&["#", "RULE", "ACTION", "ON", "CONDITIONS"], &rows));
            }
            for w in &p.watermarks {
                out(&format!(
                    "pool {}: past {} % full, files leave ({} first) until it is under {} %\n",
                    w.pool, w.high, w.weight, w.low
                ));
            }
        }
        Some(PlacementCmd::Set { file }) => {
            let text = match rules_text(file) {
                Ok(text) => text,
                Err(why) => return unreadable(why),
            };
            let p: api::Placement = c.put("/v1/placement", &api::PlacementRules { text })?;
            if cli.json {
                json(&p);
            } else {
                out(&format!(
                    "{} rules in force; see what they would do with: rushesctl placement simulate\n",
                    p.rules.len()
                ));
            }
        }
        Some(PlacementCmd::Simulate { rule, list }) => {
            let text = match rule.as_deref().map(rules_text).transpose() {
                Ok(text) => text,
                Err(why) => return unreadable(why),
            };
            let plan: api::PlacementPlan = c.post(
                "/v1/placement/simulate",
                &api::SimulateRequest {
                    text,
                    list: Some(*list),
                },
            )?;
            if cli.json {
                json(&plan);
            } else {
                out(&plan.report);
            }
        }
        Some(PlacementCmd::Run { rate, wait }) => {
            let job: api::Job = c.post(
                "/v1/placement/run",
                &api::PlacementRun { rate_bytes: *rate },
            )?;
            return started(cli, c, job, wait.wait);
        }
        Some(PlacementCmd::Explain { path }) => {
            let e: api::PlacementExplain =
                c.get(&format!("/v1/placement/explain?path={}", encode(path)))?;
            if cli.json {
                json(&e);
                return Ok(ExitCode::SUCCESS);
            }
            out(&format!(
                "{}/{} ({}), data on pool {}\n",
                e.share,
                e.path,
                file_size(e.size_bytes),
                e.pool
            ));
            for v in &e.verdicts {
                out(&format!(
                    "  {} {}: {}\n",
                    if v.matched { "MATCH" } else { "no   " },
                    v.rule,
                    v.why
                ));
            }
            out(&format!("{}\n", e.outcome));
            if let Some(rule) = &e.at_create {
                out(&format!("new files like it are placed by rule {rule}\n"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encode a query value.
fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// Scan every share now for files changed behind the box's back (the catalog also
    /// scans at start and daily).
    Scan {
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Subcommand)]
enum RateCmd {
    /// The rules in order, what each covered client gets now, and what the
    /// reservations stand on.
    List,
    /// Add a rule or change it, in force at once. The first rule that covers a client
    /// is its rule.
    #[command(
        after_help = "Examples:\n  rushesctl rate set render-nodes --clients 10.10.20.0/24 --cap 1000\n  rushesctl rate set suite-3 --clients 10.10.30.3/32 --reserve 400\n  rushesctl rate set dailies --shares dailies --reserve 300\n\nRates are MB (10^6 bytes) a second of NFS reads and writes together. A reservation is\nrefused when the reservations would add up to more than the pools were measured to read\nat (rushesctl pools shows each pool's rate)."
    )]
    Set {
        name: String,
        /// Client networks in CIDR form, comma-separated or repeated [default: every
        /// client of the shares given].
        #[arg(long, value_delimiter = ',', required_unless_present = "shares")]
        clients: Vec<String>,
        /// Shares, comma-separated or repeated [default: every share of the clients
        /// given].
        #[arg(long, value_delimiter = ',')]
        shares: Vec<String>,
        /// The most those clients may move together, MB/s; they are slowed, never cut off.
        #[arg(long, value_name = "MB_S")]
        cap: Option<u64>,
        /// The rate served to them before anyone else's calls, MB/s.
        #[arg(long, value_name = "MB_S")]
        reserve: Option<u64>,
        /// Put the rule ahead of this one.
        #[arg(long, value_name = "RULE")]
        before: Option<String>,
    },
    /// Remove a rule; its clients go back to best effort at once.
    Delete { name: String },
}

// Parsed once per run: the size of one variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum TargetCmd {
    /// The targets copies can go to (their secrets are never shown).
    List,
    /// Add a target or change it. Its secret (S3's secret key, Azure's access key, GCS's
    /// service account JSON) is read from standard input, so it stays out of the
    /// shell's history and the process list; when changing a target, leave out
    /// --secret-stdin to keep the one it has.
    #[command(
        after_help = "Examples:\n  rushesctl target set wasabi --s3 rushes-copies --endpoint https://s3.eu-central-1.wasabisys.com --region eu-central-1 --access-key AKIA... --secret-stdin\n  rushesctl target set aws --s3 rushes-copies --region eu-west-2 --access-key AKIA... --secret-stdin\n  rushesctl target set blob --azure facilityacct/rushes --secret-stdin\n  rushesctl target set gcs --gcs rushes-copies --secret-stdin < service-account.json\n  rushesctl target set tape --folder /mnt/ltfs --retention 90d\n\nA target is set whole: what is left out (retention, prices) is cleared."
    )]
    Set {
        name: String,
        /// An S3 (or S3-compatible) bucket.
        #[arg(long, value_name = "BUCKET", group = "kind")]
        s3: Option<String>,
        /// A Google Cloud Storage bucket.
        #[arg(long, value_name = "BUCKET", group = "kind")]
        gcs: Option<String>,
        /// An Azure Blob account and container.
        #[arg(long, value_name = "ACCOUNT/CONTAINER", group = "kind")]
        azure: Option<String>,
        /// A folder on the box (an LTFS tape, a gateway's mount).
        #[arg(long, value_name = "PATH", group = "kind")]
        folder: Option<String>,
        /// The store's URL, for S3-compatible stores and private Azure endpoints.
        #[arg(long)]
        endpoint: Option<String>,
        /// The S3 region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The S3 access key id.
        #[arg(long)]
        access_key: Option<String>,
        /// Trust the https endpoint's certificate by this SHA-256 fingerprint alone:
        /// another Rushes box's own, as its `rushesctl s3 show` prints it.
        #[arg(long, value_name = "SHA256")]
        fingerprint: Option<String>,
        /// Read the secret from standard input.
        #[arg(long)]
        secret_stdin: bool,
        /// How long copies that are no longer current (older versions, removed files'
        /// copies) stay on the target before a reconcile deletes them: 90d, 12w.
        /// Without it they are kept for ever.
        #[arg(long, value_name = "SPAN")]
        retention: Option<String>,
        /// What a GB stored there costs a month, for simulate's costs.
        #[arg(long, value_name = "PRICE")]
        price_gb_month: Option<f64>,
        /// What a GB read back (a recall) costs.
        #[arg(long, value_name = "PRICE")]
        egress_price_gb: Option<f64>,
    },
    /// Remove a target (copies already on it stay there).
    Delete { name: String },
    /// Put a small object on the target, read it back and remove it.
    Check { name: String },
}

#[derive(Subcommand)]
enum S3Cmd {
    /// The endpoint: the pool it serves, where it listens, and its keys.
    Show,
    /// Serve a pool over S3 (objects in the pool's s3/ folder, a bucket a folder).
    #[command(
        after_help = "Example:\n  rushesctl s3 serve --pool archive --listen 0.0.0.0:9000\n  rushesctl s3 key add site-b\nThen on the other box:\n  rushesctl target set here --s3 site-b --endpoint http://THIS-BOX:9000 --access-key RUSH... --secret-stdin"
    )]
    Serve {
        #[arg(long)]
        pool: String,
        #[arg(long, default_value = "0.0.0.0:9000")]
        listen: String,
    },
    /// Make and remove the keys other boxes sign with.
    #[command(subcommand)]
    Key(S3KeyCmd),
}

#[derive(Subcommand)]
enum S3KeyCmd {
    /// Make a key for another box: it reaches one bucket, named NAME. Its secret is
    /// printed this once.
    Add { name: String },
    /// Remove a key: requests it signs are refused from now on (its bucket stays).
    Delete { name: String },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an account. The password is read from standard input (one line), so it
    /// stays out of the shell's history and the process list.
    Add {
        name: String,
        /// The uid the edit suites already use over NFS [default: next free from 1000].
        #[arg(long)]
        uid: Option<u32>,
        /// [default: 100, `users`]
        #[arg(long)]
        gid: Option<u32>,
        /// A role on the admin plane (web, remote rushesctl) with the same password:
        /// viewer, operator or admin [default: none].
        #[arg(long)]
        role: Option<api::Role>,
    },
    /// Set an account's password (SMB, and its web login), read from standard input.
    Passwd { name: String },
    /// Give an account a role on the admin plane (viewer, operator, admin), or `none`.
    Role { name: String, role: String },
    /// Remove an account; its files keep their uid.
    Remove { name: String },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Set the admin password, read from standard input. Once one is set, the current
    /// one is needed too: give `--current` and put it on the line before the new one.
    Password {
        #[arg(long)]
        current: bool,
    },
}

/// One line from standard input, without its line break.
fn password_from_stdin() -> Result<String, std::io::Error> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[derive(Subcommand)]
enum ShareCmd {
    /// Make a folder on a pool and serve it over NFS and SMB at once.
    Create {
        name: String,
        #[arg(long)]
        pool: String,
        #[command(flatten)]
        rule: RuleArgs,
        /// NFS only: do not serve it over SMB.
        #[arg(long)]
        no_smb: bool,
        /// Offer it to Macs as a Time Machine destination.
        #[arg(long)]
        time_machine: bool,
        /// Accounts allowed over SMB, comma-separated [default: every account].
        #[arg(long, value_delimiter = ',')]
        users: Vec<String>,
        /// Let NFS clients make character and block device nodes (root, unsquashed,
        /// only). FIFOs and sockets are always allowed.
        #[arg(long)]
        allow_devices: bool,
    },
    Show {
        name: String,
    },
    /// Replace a share's export rule.
    SetRule {
        name: String,
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Change how a share is served over SMB; options left out stay as they are.
    #[command(group(
        clap::ArgGroup::new("change")
            .required(true)
            .multiple(true)
            .args(["smb", "time_machine", "users", "all_users"])
    ))]
    SetSmb {
        name: String,
        /// Serve it over SMB (on) or NFS only (off).
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        smb: Option<bool>,
        /// Offer it to Macs as a Time Machine destination.
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        time_machine: Option<bool>,
        /// Accounts allowed over SMB, comma-separated.
        #[arg(long, value_delimiter = ',', conflicts_with = "all_users")]
        users: Option<Vec<String>>,
        /// Let every account in over SMB.
        #[arg(long)]
        all_users: bool,
    },
    /// Change what NFS clients may make on a share.
    SetNfs {
        name: String,
        /// Device nodes (MKNOD of character and block devices, by root only).
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        allow_devices: bool,
    },
    /// Stop serving a share; its files stay on the pool.
    Delete {
        name: String,
    },
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err("use on or off".into()),
    }
}

fn parse_level(s: &str) -> Result<RaidLevel, String> {
    RaidLevel::parse(s).ok_or_else(|| "use single, raid0, raid1, raid5, raid6 or raid10".into())
}

fn parse_class(s: &str) -> Result<api::PoolClass, String> {
    match s {
        "fast" => Ok(api::PoolClass::Fast),
        "capacity" => Ok(api::PoolClass::Capacity),
        _ => Err("use fast or capacity".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match &cli.host {
        Some(host) => remote::client(host, cli.token.clone(), cli.fingerprint.as_deref()),
        None => Client::new(&cli.socket),
    };
    let mut result = run(&cli, &client);
    if let Err(e) = &result {
        // Nothing was sent yet: the handshake stopped at the certificate.
        if let Some(pinned) = remote::first_use(e, cli.token.clone()) {
            result = run(&cli, &pinned);
        }
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rushesctl: {e}");
            match e {
                ClientError::Api { .. } => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1_000_000_000_000 {
        format!("{:.1} TB", bytes as f64 / 1e12)
    } else {
        format!("{:.1} GB", bytes as f64 / 1e9)
    }
}

/// A file's size: MB under a GB, as disks' sizes above.
fn file_size(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        size(bytes)
    } else if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{bytes} bytes")
    }
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn run(cli: &Cli, c: &Client) -> Res {
    match &cli.command {
        Cmd::Config(ConfigCmd::Backup { output }) => {
            let passphrase = password_from_stdin()?;
            let b: api::ConfigBackupFile = c.post(
                "/v1/config/backup",
                &api::ConfigBackup {
                    passphrase,
                    share: None,
                },
            )?;
            let (path, bytes) = match save_handed_out("backup", &b.name, &b.content, output) {
                Ok(saved) => saved,
                Err(why) => return unreadable(why),
            };
            out(&format!(
                "{}: {} ({} bytes), sealed under the passphrase\n",
                path.display(),
                b.files.join(", "),
                bytes.len()
            ));
        }
        Cmd::Config(ConfigCmd::Restore { file, from }) => {
            use base64::Engine;
            // clap asks for one of the two; the box refuses a restore naming neither.
            let (content, named) = match file {
                Some(file) => match std::fs::read(file) {
                    Ok(bytes) => (
                        base64::engine::general_purpose::STANDARD.encode(&bytes),
                        file.display().to_string(),
                    ),
                    Err(e) => return unreadable(format!("cannot read {}: {e}", file.display())),
                },
                None => (String::new(), from.clone().unwrap_or_default()),
            };
            let passphrase = password_from_stdin()?;
            let r: api::ConfigRestored = c.post(
                "/v1/config/restore",
                &api::ConfigRestore {
                    content,
                    source: from.clone().filter(|_| file.is_none()),
                    passphrase,
                },
            )?;
            out(&format!(
                "restored {named} from {} (version {}): {}\n",
                r.from_host,
                r.from_version,
                if r.restarting {
                    "rushesd is starting again on it"
                } else {
                    "restart rushesd to take it"
                }
            ));
        }
        Cmd::SupportBundle { output } => {
            let b: api::SupportBundle = c.post("/v1/support-bundle", &serde_json::json!({}))?;
            let (path, bytes) = match save_handed_out("support bundle", &b.name, &b.content, output)
            {
                Ok(saved) => saved,
                Err(why) => return unreadable(why),
            };
            out(&format!(
                "{}: {} files, {} bytes (open with: tar --zstd -xf {})\n",
                path.display(),
                b.files.len(),
                bytes.len(),
                path.display()
            ));
        }
        Cmd::Status => {
            let s: api::Status = c.get("/v1/status")?;
            if cli.json {
                json(&s);
            } else {
                out(&format!(
                    "{} running Rushes {}, up {} s\n",
                    s.hostname, s.version, s.uptime_secs
                ));
            }
        }
        Cmd::Time => {
            let t: api::Clock = c.get("/v1/time")?;
            if cli.json {
                json(&t);
            } else {
                let kernel = if t.kernel_synchronised {
                    "synchronised (the RTC is kept from it)"
                } else {
                    "not synchronised"
                };
                let state = match (&t.synced, &t.error) {
                    (Some(s), _) => format!(
                        "synced with {}: offset {:+.3} ms, root delay {:.3} ms, stratum {}, leap {}",
                        s.server, s.offset_ms, s.delay_ms, s.stratum, s.leap
                    ),
                    (None, Some(e)) => format!("not synced: {e}"),
                    (None, None) => "not synced: no NTP server is set".into(),
                };
                out(&format!(
                    "servers: {}\nclock:   {state}\nkernel:  {kernel}\n",
                    if t.ntp.is_empty() {
                        "none".into()
                    } else {
                        t.ntp.join(", ")
                    }
                ));
            }
        }
        Cmd::Disks => {
            let disks: Vec<api::Disk> = c.get("/v1/disks")?;
            if cli.json {
                json(&disks);
            } else {
                let rows: Vec<Vec<String>> = disks
                    .iter()
                    .map(|d| {
                        let contents: Vec<&str> = d.contents.iter().map(|s| s.as_str()).collect();
                        let state = if d.boot {
                            "boot stick (never for pools)".to_string()
                        } else if let Some(u) = &d.in_use_by {
                            format!("in use: {u}")
                        } else if contents.is_empty() {
                            "free".to_string()
                        } else {
                            format!("has data: {} (needs --wipe)", contents.join(","))
                        };
                        let health = match &d.health {
                            None => "-".to_string(),
                            Some(h) => {
                                let temp = h
                                    .temperature_c
                                    .map(|t| format!("{t}°C "))
                                    .unwrap_or_default();
                                let source = match h.source {
                                    api::HealthSource::NvmeLog => "nvme",
                                    api::HealthSource::Smart => "smart",
                                };
                                match h.problem() {
                                    Some(p) => format!("{temp}{} ({source}): {p}", h.verdict()),
                                    None => format!("{temp}ok ({source})"),
                                }
                            }
                        };
                        vec![
                            d.name.clone(),
                            d.transport.as_str().into(),
                            size(d.size_bytes),
                            d.model.clone(),
                            d.serial.clone(),
                            contents.join(","),
                            health,
                            state,
                        ]
                    })
                    .collect();
                out(&table(
                    &[
                        "DISK",
                        "TRANSPORT",
                        "SIZE",
                        "MODEL",
                        "SERIAL",
                        "CONTENTS",
                        "HEALTH",
                        "STATE",
                    ],
                    &rows,
                ));
            }
        }
        Cmd::Pools => {
            let pools: Vec<api::Pool> = c.get("/v1/pools")?;
            if cli.json {
                json(&pools);
            } else if pools.is_empty() {
                out("no pools yet: rushesctl pool create NAME --level raid5 DISK... (see rushesctl disks)\n");
            } else {
                let rows: Vec<Vec<String>> = pools
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.level.to_string(),
                            word(&p.class),
                            word(&p.state),
                            size(p.size_bytes),
                            size(p.used_bytes),
                            p.members.len().to_string(),
                            p.read_mb_s.map_or("-".into(), |r| format!("{r:.0}")),
                            p.sync
                                .as_ref()
                                .map(|s| format!("{} {:.0}%", s.action, s.fraction * 100.0))
                                .or_else(|| p.problem.clone())
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                out(&table(
                    &[
                        "POOL",
                        "LEVEL",
                        "CLASS",
                        "STATE",
                        "SIZE",
                        "USED",
                        "DISKS",
                        "READ MB/S",
                        "NOTE",
                    ],
                    &rows,
                ));
            }
        }
        Cmd::Pool(cmd) => return pool(cli, c, cmd),
        Cmd::Shares => {
            let shares: Vec<api::Share> = c.get("/v1/shares")?;
            if cli.json {
                json(&shares);
            } else if shares.is_empty() {
                out("no shares yet: rushesctl share create NAME --pool POOL\n");
            } else {
                let rows: Vec<Vec<String>> = shares.iter().map(share_row).collect();
                out(&table(
                    &["SHARE", "POOL", "STATE", "PROTOCOLS", "PATH", "CLIENTS"],
                    &rows,
                ));
            }
        }
        Cmd::Share(cmd) => return share(cli, c, cmd),
        Cmd::Top {
            by,
            sort,
            window,
            limit,
        } => {
            let t: api::ActivityTop = c.get(&format!(
                "/v1/activity/top?window={window}&by={by}&sort={sort}&limit={limit}"
            ))?;
            if cli.json {
                json(&t);
            } else if t.rows.is_empty() {
                out(&format!("nothing in the last {window}\n"));
            } else {
                let rows: Vec<Vec<String>> = t
                    .rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.group.clone(),
                            r.ops.to_string(),
                            format!("{:.1}", r.bytes as f64 / 1e6),
                            format!("{:.2}", r.bytes_per_s / 1e6),
                        ]
                    })
                    .collect();
                out(&table(&[&by.to_uppercase(), "OPS", "MB", "MB/S"], &rows));
                if t.untracked_ops > 0 {
                    out(&format!(
                        "{} operations ({:.1} MB) on files past the tracking limit are not listed\n",
                        t.untracked_ops,
                        t.untracked_bytes as f64 / 1e6
                    ));
                }
            }
        }
        Cmd::Audit {
            path,
            user,
            client,
            op,
            protocol,
            since,
            until,
            limit,
            export,
            status,
        } => {
            if *status {
                let s: api::AuditStatus = c.get("/v1/audit/status")?;
                if cli.json {
                    json(&s);
                } else {
                    out(&format!(
                        "audit log on pool {}: {} day files, {:.1} MB (keeps {:.0} MB, {} days){}\n",
                        s.pool.as_deref().unwrap_or("(none mounted: records wait in memory)"),
                        s.files,
                        s.bytes as f64 / 1e6,
                        s.max_bytes as f64 / 1e6,
                        s.max_days,
                        if s.dropped > 0 {
                            format!("; {} records dropped while no pool was mounted", s.dropped)
                        } else {
                            String::new()
                        }
                    ));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut q = Vec::new();
            for (k, v) in [
                ("path", path),
                ("user", user),
                ("client", client),
                ("op", op),
                ("protocol", protocol),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(v)));
                }
            }
            for (k, v) in [("since", since), ("until", until)] {
                if let Some(v) = v {
                    let secs = when(v)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                    q.push(format!("{k}={secs}"));
                }
            }
            if let Some(format) = export {
                q.push(format!("format={format}"));
                let text = c.get_text(&format!("/v1/audit/export?{}", q.join("&")))?;
                out(&text);
                return Ok(ExitCode::SUCCESS);
            }
            q.push(format!("limit={limit}"));
            let records: Vec<api::AuditRecord> = c.get(&format!("/v1/audit?{}", q.join("&")))?;
            if cli.json {
                json(&records);
            } else if records.is_empty() {
                out("no matching records\n");
            } else {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        let what = match &r.to {
                            Some(to) => format!("{} -> {to}", r.path),
                            None => r.path.clone(),
                        };
                        vec![
                            rushes_api::calendar::utc_time(r.time_ms / 1000),
                            r.client.clone(),
                            r.user.clone(),
                            r.protocol.clone(),
                            r.op.clone(),
                            format!("{}:{what}", r.share),
                            r.result.clone(),
                        ]
                    })
                    .collect();
                out(&table(
                    &[
                        "TIME (UTC)",
                        "CLIENT",
                        "USER",
                        "PROTO",
                        "OP",
                        "SHARE:PATH",
                        "RESULT",
                    ],
                    &rows,
                ));
            }
        }
        Cmd::Users => {
            let users: Vec<api::User> = c.get("/v1/users")?;
            if cli.json {
                json(&users);
            } else if users.is_empty() {
                out("no accounts yet: rushesctl user add NAME\n");
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.name.clone(),
                            u.uid.to_string(),
                            u.gid.to_string(),
                            if u.smb_password { "yes" } else { "no" }.into(),
                        ]
                    })
                    .collect();
                out(&table(&["USER", "UID", "GID", "SMB PASSWORD"], &rows));
            }
        }
        Cmd::Admin(AdminCmd::Password { current }) => {
            let current = if *current {
                Some(password_from_stdin()?)
            } else {
                None
            };
            let new = password_from_stdin()?;
            c.send(
                "PUT",
                "/v1/admin/password",
                Some(&api::SetPassword { current, new }),
            )?;
            out("admin password set\n");
        }
        Cmd::User(cmd) => match cmd {
            UserCmd::Add {
                name,
                uid,
                gid,
                role,
            } => {
                let password = password_from_stdin()?;
                let u: api::User = c.post(
                    "/v1/users",
                    &api::CreateUser {
                        name: name.clone(),
                        password,
                        uid: *uid,
                        gid: *gid,
                        role: *role,
                    },
                )?;
                if cli.json {
                    json(&u);
                } else {
                    out(&format!(
                        "account {} added: uid {}, gid {}, on NFS{}{}\n",
                        u.name,
                        u.uid,
                        u.gid,
                        if u.smb_password { " and SMB" } else { "" },
                        u.role
                            .map(|r| format!("; web login as {r}"))
                            .unwrap_or_default()
                    ));
                }
            }
            UserCmd::Role { name, role } => {
                let role = match role.as_str() {
                    "none" => None,
                    r => match r.parse::<api::Role>() {
                        Ok(r) => Some(r),
                        Err(e) => {
                            eprintln!("rushesctl: {e}, or none");
                            return Ok(ExitCode::from(2));
                        }
                    },
                };
                let u: api::User =
                    c.put(&format!("/v1/users/{name}/role"), &api::SetRole { role })?;
                if cli.json {
                    json(&u);
                } else {
                    out(&match u.role {
                        Some(r) => format!("{name} logs in to the admin plane as {r}\n"),
                        None => format!("{name} has no web login now\n"),
                    });
                }
            }
            UserCmd::Passwd { name } => {
                let password = password_from_stdin()?;
                c.send(
                    "PUT",
                    &format!("/v1/users/{name}/password"),
                    Some(&api::UserPassword { password }),
                )?;
                out(&format!("password of {name} changed\n"));
            }
            UserCmd::Remove { name } => {
                c.send::<()>("DELETE", &format!("/v1/users/{name}"), None)?;
                out(&format!(
                    "account {name} removed; its files keep uid and gid\n"
                ));
            }
        },
        Cmd::Fabric(cmd) => return fabric(cli, c, cmd),
        Cmd::Token(cmd) => return remote::token(cli.json, c, cmd),
        Cmd::Web(cmd) => return remote::web(cli.json, c, cmd),
        Cmd::Rates => show_rates(cli, c)?,
        Cmd::Search {
            query,
            share,
            limit,
            offset,
            sort,
            as_account,
        } => {
            let mut path = format!(
                "/v1/search?q={}&limit={limit}&offset={offset}&sort={}",
                encode(&query.join(" ")),
                encode(sort)
            );
            if let Some(account) = as_account {
                path.push_str(&format!("&as={}", encode(account)));
            }
            if !share.is_empty() {
                path.push_str(&format!("&share={}", encode(&share.join(","))));
            }
            let found: api::media::Found = c.get(&path)?;
            if cli.json {
                json(&found);
            } else {
                out(&search_results(&found, *offset));
            }
        }
        Cmd::Clip { id, poster, strip } => {
            let at = format!("/v1/clips/{}", encode(id).replace('/', "%2F"));
            for (kind, file) in [("poster", poster), ("strip", strip)] {
                if let Some(file) = file {
                    let jpeg = c.get_bytes(&format!("{at}/{kind}"))?;
                    std::fs::write(file, &jpeg).map_err(|e| {
                        ClientError::Protocol(format!("cannot write {}: {e}", file.display()))
                    })?;
                    out(&format!(
                        "{kind} saved to {} ({} bytes)\n",
                        file.display(),
                        jpeg.len()
                    ));
                }
            }
            if poster.is_some() || strip.is_some() {
                return Ok(ExitCode::SUCCESS);
            }
            let clip: api::media::Clip = c.get(&at)?;
            if cli.json {
                json(&clip);
            } else {
                let frames = clip
                    .media
                    .as_ref()
                    .and_then(|m| m.sequence.as_ref())
                    .map(|s| format!("image sequence: {}\n", s.describe()))
                    .unwrap_or_default();
                out(&format!(
                    "{}\n{frames}{}\n",
                    clip.label(),
                    serde_json::to_string_pretty(&clip).unwrap_or_default()
                ));
            }
        }
        Cmd::Catalog(CatalogCmd::Scan { wait }) => {
            let job: api::Job = c.post("/v1/catalog/scan", &serde_json::json!({}))?;
            return started(cli, c, job, wait.wait);
        }
        Cmd::Rate(cmd) => match cmd {
            RateCmd::List => show_rates(cli, c)?,
            RateCmd::Set {
                name,
                clients,
                shares,
                cap,
                reserve,
                before,
            } => {
                c.send(
                    "PUT",
                    &format!("/v1/rates/{name}"),
                    Some(&api::SetRate {
                        clients: clients.clone(),
                        shares: shares.clone(),
                        cap_mb_s: *cap,
                        reserve_mb_s: *reserve,
                        before: before.clone(),
                    }),
                )?;
                out(&format!("rate rule {name} is in force\n"));
            }
            RateCmd::Delete { name } => {
                c.send::<()>("DELETE", &format!("/v1/rates/{name}"), None)?;
                out(&format!(
                    "rate rule {name} removed; its clients are best effort now\n"
                ));
            }
        },
        Cmd::Copy {
            share,
            paths,
            to,
            wait,
        } => {
            let job: api::Job = c.post(
                "/v1/copies",
                &api::CopyFiles {
                    target: to.clone(),
                    share: share.clone(),
                    paths: paths.clone(),
                },
            )?;
            return started(cli, c, job, wait.wait);
        }
        Cmd::Prove { share, paths, wait } => {
            let job: api::Job = c.post(
                "/v1/copies/audit",
                &api::AuditCopies {
                    share: share.clone(),
                    paths: paths.clone(),
                },
            )?;
            return started(cli, c, job, wait.wait);
        }
        Cmd::Release {
            share,
            paths,
            copies,
            wait,
        } => {
            let job: api::Job = c.post(
                "/v1/copies/release",
                &api::ReleaseFiles {
                    share: share.clone(),
                    paths: paths.clone(),
                    copies: Some(*copies),
                },
            )?;
            return started(cli, c, job, wait.wait);
        }
        Cmd::Reconcile { wait } => {
            let job: api::Job = c.post("/v1/copies/reconcile", &())?;
            return started(cli, c, job, wait.wait);
        }
        Cmd::Recall { share, paths, wait } => {
            let job: api::Job = c.post(
                "/v1/copies/recall",
                &api::RecallFiles {
                    share: share.clone(),
                    paths: paths.clone(),
                },
            )?;
            return started(cli, c, job, wait.wait);
        }
        Cmd::Copies { share, path } => {
            let copies: api::FileCopies = c.get(&format!(
                "/v1/copies?share={}&path={}",
                encode(share),
                encode(path)
            ))?;
            if cli.json {
                json(&copies);
            } else {
                let state = match copies.state {
                    api::CopyState::Resident => "resident (no copy proven)",
                    api::CopyState::Premigrated => "premigrated (proven copies of it as it is)",
                    api::CopyState::Dirty => "dirty (changed since its last copy)",
                    api::CopyState::Migrated => {
                        "migrated (released: its bytes are on its copies; a read brings them back)"
                    }
                };
                let rows: Vec<Vec<String>> = copies
                    .copies
                    .iter()
                    .map(|r| {
                        vec![
                            r.target.clone(),
                            r.key.clone(),
                            r.size.to_string(),
                            rushes_api::calendar::utc_time(r.proven_at),
                            if r.current { "yes" } else { "no, older" }.to_string(),
                        ]
                    })
                    .collect();
                out(&format!(
                    "{share}/{}: {state}\n{}",
                    copies.path,
                    table(
                        &["TARGET", "KEY", "BYTES", "PROVEN (UTC)", "CURRENT"],
                        &rows
                    )
                ));
            }
        }
        Cmd::S3(cmd) => {
            let show = |s: &api::S3Service| {
                let mut text = match (&s.endpoint, &s.serving) {
                    (_, Some(at)) => format!(
                        "serving S3 at {at}, HTTPS with the certificate {}\n",
                        s.fingerprint.as_deref().unwrap_or("?")
                    ),
                    (Some(e), None) => format!(
                        "set to serve pool {} at {}, but not serving: {}\n",
                        e.pool,
                        e.listen,
                        s.problem.as_deref().unwrap_or("not started yet")
                    ),
                    (None, None) => "not serving S3 (rushesctl s3 serve --pool NAME)\n".into(),
                };
                for k in &s.keys {
                    text.push_str(&format!(
                        "  key {} ({}) for bucket {}\n",
                        k.name, k.access_key, k.name
                    ));
                }
                text
            };
            match cmd {
                S3Cmd::Show => {
                    let s: api::S3Service = c.get("/v1/s3")?;
                    if cli.json {
                        json(&s);
                    } else {
                        out(&show(&s));
                    }
                }
                S3Cmd::Serve { pool, listen } => {
                    let s: api::S3Service = c.put(
                        "/v1/s3",
                        &api::S3EndpointEntry {
                            listen: listen.clone(),
                            pool: pool.clone(),
                        },
                    )?;
                    out(&show(&s));
                }
                S3Cmd::Key(S3KeyCmd::Add { name }) => {
                    let k: api::NewS3Key =
                        c.post("/v1/s3/keys", &api::AddS3Key { name: name.clone() })?;
                    if cli.json {
                        json(&k);
                    } else {
                        let s: api::S3Service = c.get("/v1/s3")?;
                        out(&format!(
                            "key {} for bucket {}\n  access key: {}\n  secret:     {}\nThe secret is shown this once. On the other box:\n  rushesctl target set NAME --s3 {} --endpoint https://THIS-BOX:PORT --fingerprint {} --access-key {} --secret-stdin\n",
                            k.name,
                            k.bucket,
                            k.access_key,
                            k.secret,
                            k.bucket,
                            s.fingerprint.as_deref().unwrap_or("FINGERPRINT"),
                            k.access_key
                        ));
                    }
                }
                S3Cmd::Key(S3KeyCmd::Delete { name }) => {
                    c.send::<()>("DELETE", &format!("/v1/s3/keys/{name}"), None)?;
                    out(&format!("key {name} removed; its bucket stays\n"));
                }
            }
        }
        Cmd::Target(cmd) => match cmd {
            TargetCmd::List => {
                let targets: Vec<api::TargetView> = c.get("/v1/targets")?;
                if cli.json {
                    json(&targets);
                } else {
                    let rows: Vec<Vec<String>> = targets
                        .iter()
                        .map(|t| {
                            let place = match &t.place {
                                api::TargetPlace::S3 {
                                    bucket, endpoint, ..
                                } => match endpoint {
                                    Some(e) => format!("{bucket} at {e}"),
                                    None => bucket.clone(),
                                },
                                api::TargetPlace::Gcs { bucket } => bucket.clone(),
                                api::TargetPlace::Azure {
                                    account, container, ..
                                } => format!("{account}/{container}"),
                                api::TargetPlace::Folder { path } => path.clone(),
                            };
                            vec![
                                t.name.clone(),
                                t.place.kind().to_string(),
                                place,
                                if t.has_secret { "kept" } else { "-" }.to_string(),
                                t.terms
                                    .retention
                                    .clone()
                                    .unwrap_or_else(|| "for ever".into()),
                                match &t.health {
                                    None => "not yet".into(),
                                    Some(h) if h.ok => format!("ok, {} ms", h.took_ms),
                                    Some(h) => format!(
                                        "UNREACHABLE: {}",
                                        h.error.as_deref().unwrap_or("no answer")
                                    ),
                                },
                                match &t.stored {
                                    None => "-".into(),
                                    Some(c) => {
                                        format!("{} ({})", c.files, api::units::show_size(c.bytes))
                                    }
                                },
                            ]
                        })
                        .collect();
                    out(&table(
                        &[
                            "TARGET",
                            "KIND",
                            "WHERE",
                            "SECRET",
                            "OLD COPIES KEPT",
                            "LAST CHECK",
                            "COPIES",
                        ],
                        &rows,
                    ));
                }
            }
            TargetCmd::Set {
                name,
                s3,
                gcs,
                azure,
                folder,
                endpoint,
                region,
                access_key,
                fingerprint,
                secret_stdin,
                retention,
                price_gb_month,
                egress_price_gb,
            } => {
                let usage = |why: &str| {
                    ClientError::Protocol(format!("{why} (rushesctl target set --help shows how)"))
                };
                let place = if let Some(bucket) = s3 {
                    api::TargetPlace::S3 {
                        bucket: bucket.clone(),
                        endpoint: endpoint.clone(),
                        region: region.clone(),
                        access_key: access_key
                            .clone()
                            .ok_or_else(|| usage("an S3 target needs --access-key"))?,
                        fingerprint: fingerprint.clone(),
                    }
                } else if let Some(bucket) = gcs {
                    api::TargetPlace::Gcs {
                        bucket: bucket.clone(),
                    }
                } else if let Some(at) = azure {
                    let (account, container) = at
                        .split_once('/')
                        .ok_or_else(|| usage("give --azure as ACCOUNT/CONTAINER"))?;
                    api::TargetPlace::Azure {
                        account: account.into(),
                        container: container.into(),
                        endpoint: endpoint.clone(),
                    }
                } else if let Some(path) = folder {
                    api::TargetPlace::Folder { path: path.clone() }
                } else {
                    return Err(usage(
                        "say what kind of target: --s3, --gcs, --azure or --folder",
                    ));
                };
                let secret = if *secret_stdin {
                    let text = std::io::read_to_string(std::io::stdin()).map_err(|e| {
                        ClientError::Protocol(format!("cannot read the secret: {e}"))
                    })?;
                    Some(text.trim_end_matches(['\n', '\r']).to_string())
                } else {
                    None
                };
                c.send(
                    "PUT",
                    &format!("/v1/targets/{name}"),
                    Some(&api::SetTarget {
                        terms: api::TargetTerms {
                            retention: retention.clone(),
                            price_gb_month: *price_gb_month,
                            egress_price_gb: *egress_price_gb,
                        },
                        place,
                        secret,
                    }),
                )?;
                out(&format!(
                    "target {name} is set; `rushesctl target check {name}` tries it\n"
                ));
            }
            TargetCmd::Delete { name } => {
                c.send::<()>("DELETE", &format!("/v1/targets/{name}"), None)?;
                out(&format!("target {name} removed; copies on it stay there\n"));
            }
            TargetCmd::Check { name } => {
                let check: api::TargetCheck = c.post(&format!("/v1/targets/{name}/check"), &())?;
                if cli.json {
                    json(&check);
                } else if check.ok {
                    out(&format!(
                        "target {name}: a copy put, read back and removed in {} ms\n",
                        check.took_ms
                    ));
                } else {
                    out(&format!(
                        "target {name} is not usable: {}\n",
                        check.error.as_deref().unwrap_or("no reason given")
                    ));
                    return Ok(ExitCode::FAILURE);
                }
            }
        },
        Cmd::Activity { window, by } => {
            let r: api::ActivityReport =
                c.get(&format!("/v1/activity/report?window={window}&by={by}"))?;
            if cli.json {
                json(&r);
            } else {
                let rows: Vec<Vec<String>> = r
                    .rows
                    .iter()
                    .map(|a| {
                        vec![
                            a.group.clone(),
                            a.ops.to_string(),
                            format!("{:.1}", a.ops_per_s),
                            format!("{:.2}", a.bytes_per_s / 1e6),
                            a.p50_us
                                .map_or("-".to_string(), |us| format!("{:.2}", us as f64 / 1000.0)),
                            a.p99_us
                                .map_or("-".to_string(), |us| format!("{:.2}", us as f64 / 1000.0)),
                            a.errors.to_string(),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    out(&format!("no NFS or SMB activity in the last {window}\n"));
                } else {
                    out(&table(
                        &[
                            &by.to_uppercase(),
                            "OPS",
                            "OPS/S",
                            "MB/S",
                            "P50 MS",
                            "P99 MS",
                            "ERRORS",
                        ],
                        &rows,
                    ));
                }
            }
        }
        Cmd::Card { command } => return card(cli, c, command.as_ref()),
        Cmd::Update { command } => return update(cli, c, command.as_ref()),
        Cmd::Find { listen } => {
            let found = match find::browse(Duration::from_secs(*listen)) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("rushesctl: cannot listen for mDNS announcements: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            if cli.json {
                json(&found);
            } else if found.is_empty() {
                out(&format!(
                    "nothing announced itself within {listen} s: is the appliance on this network segment (mDNS does not cross routers)?\n"
                ));
            } else {
                let rows: Vec<Vec<String>> = found
                    .iter()
                    .map(|f| {
                        vec![
                            f.service.clone(),
                            f.name.clone(),
                            f.port.to_string(),
                            f.txt
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(" "),
                            f.addresses.join(" "),
                        ]
                    })
                    .collect();
                out(&table(
                    &["SERVICE", "NAME", "PORT", "TXT", "ADDRESSES"],
                    &rows,
                ));
            }
        }
        Cmd::Fabrics => {
            let f: api::Fabrics = c.get("/v1/fabrics")?;
            if cli.json {
                json(&f);
            } else {
                out(&format!("host NQN: {}\n", f.hostnqn));
                if !f.available {
                    out("this kernel has no NVMe-oF initiator\n");
                }
                if !f.discovery.is_empty() {
                    out(&format!("discovery: {}\n", f.discovery.join(", ")));
                }
                let mut rows = Vec::new();
                for s in &f.subsystems {
                    for (i, p) in s.paths.iter().enumerate() {
                        rows.push(vec![
                            if i == 0 { s.nqn.clone() } else { String::new() },
                            format!("{} {}:{}", p.transport, p.traddr, p.trsvcid),
                            p.controller.clone().unwrap_or_else(|| "-".into()),
                            p.state.clone(),
                            if p.saved { "yes" } else { "no" }.into(),
                            if i == 0 {
                                s.namespaces.join(" ")
                            } else {
                                String::new()
                            },
                        ]);
                    }
                }
                if rows.is_empty() {
                    out("no subsystems; find some with: rushesctl fabric discover ADDRESS\n");
                } else {
                    out(&table(
                        &["SUBSYSTEM", "PATH", "CONTROLLER", "STATE", "SAVED", "DISKS"],
                        &rows,
                    ));
                }
            }
        }
        Cmd::Placement { cmd } => return placement(cli, c, cmd.as_ref()),
        Cmd::Jobs {
            watch: Some(JobsCmd::Watch { id }),
        } => return watch(cli, c, *id),
        Cmd::Jobs {
            watch: Some(JobsCmd::Cancel { id }),
        } => {
            let job: api::Job = c.post(&format!("/v1/jobs/{id}/cancel"), &serde_json::json!({}))?;
            if cli.json {
                json(&job);
            } else {
                out(&format!(
                    "job {id} ({} of {}) is stopping; follow it with: rushesctl jobs watch {id}\n",
                    job.kind, job.target
                ));
            }
        }
        Cmd::Jobs { watch: None } => {
            let jobs: Vec<api::Job> = c.get("/v1/jobs")?;
            if cli.json {
                json(&jobs);
            } else {
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.to_string(),
                            j.kind.clone(),
                            j.target.to_string(),
                            word(&j.state),
                            progress_words(j),
                            j.error.clone().unwrap_or_else(|| j.step.clone()),
                        ]
                    })
                    .collect();
                out(&table(
                    &["JOB", "KIND", "TARGET", "STATE", "PROGRESS", "STEP"],
                    &rows,
                ));
            }
        }
        Cmd::Alerts {
            cmd: Some(AlertsCmd::History),
        } => {
            let history: Vec<api::AlertRecord> = c.get("/v1/alerts/history")?;
            if cli.json {
                json(&history);
            } else {
                let rows: Vec<Vec<String>> = history
                    .iter()
                    .map(|r| {
                        vec![
                            rushes_api::calendar::utc_time(r.raised),
                            r.cleared
                                .map(rushes_api::calendar::utc_time)
                                .unwrap_or_else(|| "open".into()),
                            word(&r.severity),
                            r.source.clone(),
                            r.message.clone(),
                        ]
                    })
                    .collect();
                out(&table(
                    &["RAISED", "CLEARED", "SEVERITY", "SOURCE", "MESSAGE"],
                    &rows,
                ));
            }
        }
        Cmd::Alerts {
            cmd: Some(AlertsCmd::Dismiss { id }),
        } => {
            c.send("POST", &format!("/v1/alerts/{id}/dismiss"), None::<&()>)?;
            out(&format!("alert {id} dismissed\n"));
        }
        Cmd::Alerts { cmd: None } => {
            let alerts: Vec<api::Alert> = c.get("/v1/alerts")?;
            if cli.json {
                json(&alerts);
            } else if alerts.is_empty() {
                out("no alerts: everything is healthy\n");
            } else {
                for a in &alerts {
                    out(&format!(
                        "{:<8}  {}\n          next: {}\n",
                        word(&a.severity).to_uppercase(),
                        a.message,
                        a.action
                    ));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn share_row(s: &api::Share) -> Vec<String> {
    let clients: Vec<String> = s
        .rules
        .iter()
        .map(|r| {
            let nets: Vec<String> = r.clients.iter().map(|n| n.to_string()).collect();
            format!("{} {}", nets.join(","), word(&r.access))
        })
        .collect();
    vec![
        s.name.clone(),
        s.pool.clone(),
        if s.online { "serving" } else { "offline" }.into(),
        match (s.smb, s.time_machine) {
            (false, _) => "NFS".into(),
            (true, false) => "NFS+SMB".into(),
            (true, true) => "NFS+SMB (Time Machine)".into(),
        },
        s.path.clone(),
        clients.join("; "),
    ]
}

/// `41% of 8.0 GB, 120 MB/s, 2 min left`, or empty when the step is not counted.
fn progress_words(j: &api::Job) -> String {
    let Some(p) = &j.progress else {
        return String::new();
    };
    let amount = |n: f64| {
        if p.unit == "bytes" {
            format!("{:.1} GB", n / 1e9)
        } else {
            format!("{n:.0} {}", p.unit)
        }
    };
    let mut words = format!(
        "{:.0}% of {}",
        j.fraction.unwrap_or(0.0) * 100.0,
        amount(p.total as f64)
    );
    if let Some(rate) = p.rate {
        if p.unit == "bytes" {
            words.push_str(&format!(", {:.0} MB/s", rate / 1e6));
        } else {
            words.push_str(&format!(", {rate:.0} {}/s", p.unit));
        }
    }
    if let Some(eta) = p.eta_secs {
        words.push_str(&match eta {
            0..=90 => format!(", {eta} s left"),
            91..=5400 => format!(", {} min left", eta.div_ceil(60)),
            _ => format!(", {:.1} h left", eta as f64 / 3600.0),
        });
    }
    words
}

fn started(cli: &Cli, c: &Client, job: api::Job, wait: bool) -> Res {
    if cli.json && !wait {
        json(&job);
        return Ok(ExitCode::SUCCESS);
    }
    if !wait {
        out(&format!(
            "started job {} ({}); follow it with: rushesctl jobs watch {}\n",
            job.id, job.kind, job.id
        ));
        return Ok(ExitCode::SUCCESS);
    }
    watch(cli, c, job.id)
}

/// Follow a job: a redrawn progress line on a terminal, one line per step otherwise.
fn watch(cli: &Cli, c: &Client, id: u64) -> Res {
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        let job: api::Job = c.get(&format!("/v1/jobs/{id}"))?;
        let line = match job.fraction {
            Some(f) if job.state == JobState::Running => {
                let filled = (f.clamp(0.0, 1.0) * 30.0) as usize;
                format!(
                    "[{}{}] {}",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    job.step
                )
            }
            _ => job.step.clone(),
        };
        if line != last {
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else if job.state == JobState::Running {
                // Step changes, and progress in 10% steps, so logs stay readable.
                let coarse = |s: &str| s.split(" (").next().unwrap_or(s).to_string();
                let tenth = job.fraction.map(|f| (f * 10.0) as u32);
                let prev_tenth = last.split('|').nth(1).and_then(|t| t.parse::<u32>().ok());
                if coarse(&job.step) != coarse(last.split('|').next().unwrap_or(""))
                    || tenth != prev_tenth
                {
                    eprintln!("job {id}: {}", job.step);
                }
            }
            last = if tty {
                line
            } else {
                format!(
                    "{}|{}",
                    job.step,
                    job.fraction.map(|f| (f * 10.0) as u32).unwrap_or(99)
                )
            };
        }
        if !job.state.is_active() {
            if tty {
                eprintln!();
            }
            if cli.json {
                json(&job);
            }
            return match job.state {
                JobState::Done => {
                    if !cli.json {
                        out(&format!("job {id} ({} of {}) done\n", job.kind, job.target));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                _ => {
                    eprintln!(
                        "rushesctl: job {id} ({} of {}) {}: {}",
                        job.kind,
                        job.target,
                        word(&job.state),
                        job.error.unwrap_or_default()
                    );
                    Ok(ExitCode::from(1))
                }
            };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pool(cli: &Cli, c: &Client, cmd: &PoolCmd) -> Res {
    match cmd {
        PoolCmd::Create {
            name,
            level,
            disks,
            class,
            wipe,
            wait,
        } => {
            let job: api::Job = c.post(
                "/v1/pools",
                &api::CreatePool {
                    name: name.clone(),
                    level: *level,
                    disks: disks.clone(),
                    class: *class,
                    wipe: wipe.clone(),
                },
            )?;
            started(cli, c, job, wait.wait)
        }
        PoolCmd::Show { name } => {
            let p: api::Pool = c.get(&format!("/v1/pools/{name}"))?;
            if cli.json {
                json(&p);
            } else {
                let mut s = format!(
                    "pool {}: {} {}, {}\n  size {} ({} used), mounted at {}{}\n",
                    p.name,
                    p.level,
                    word(&p.class),
                    word(&p.state),
                    size(p.size_bytes),
                    size(p.used_bytes),
                    p.mountpoint,
                    p.device
                        .as_deref()
                        .map(|d| format!(" from {d}"))
                        .unwrap_or_default()
                );
                if let Some(problem) = &p.problem {
                    s.push_str(&format!("  problem: {problem}\n"));
                }
                if let Some(sync) = &p.sync {
                    s.push_str(&format!(
                        "  md is running {}: {:.1}%\n",
                        sync.action,
                        sync.fraction * 100.0
                    ));
                }
                match (p.read_mb_s, p.read_measured_at) {
                    (Some(rate), Some(at)) => s.push_str(&format!(
                        "  reads at {rate:.0} MB/s (measured {})\n",
                        rushes_api::calendar::utc_time(at)
                    )),
                    _ => s.push_str("  read rate not measured yet\n"),
                }
                let rows: Vec<Vec<String>> = p
                    .members
                    .iter()
                    .map(|m| {
                        vec![
                            m.disk.clone().unwrap_or_else(|| "-".into()),
                            m.serial.clone(),
                            word(&m.state),
                        ]
                    })
                    .collect();
                s.push_str(&table(&["DISK", "SERIAL", "STATE"], &rows));
                out(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
        PoolCmd::Grow {
            name,
            disks,
            wipe,
            wait,
        } => {
            let job: api::Job = c.post(
                &format!("/v1/pools/{name}/grow"),
                &api::GrowPool {
                    disks: disks.clone(),
                    wipe: wipe.clone(),
                },
            )?;
            started(cli, c, job, wait.wait)
        }
        PoolCmd::Replace {
            name,
            disk,
            old,
            wipe,
            wait,
        } => {
            let job: api::Job = c.post(
                &format!("/v1/pools/{name}/replace"),
                &api::ReplaceDisk {
                    disk: disk.clone(),
                    old: old.clone(),
                    wipe: *wipe,
                },
            )?;
            started(cli, c, job, wait.wait)
        }
        PoolCmd::Scrub { name, wait } => {
            let job: api::Job =
                c.post(&format!("/v1/pools/{name}/scrub"), &serde_json::json!({}))?;
            started(cli, c, job, wait.wait)
        }
        PoolCmd::Measure { name, wait } => {
            let job: api::Job =
                c.post(&format!("/v1/pools/{name}/measure"), &serde_json::json!({}))?;
            started(cli, c, job, wait.wait)
        }
        PoolCmd::Destroy { name, confirm } => {
            c.send(
                "DELETE",
                &format!("/v1/pools/{name}"),
                Some(&api::DestroyPool {
                    confirm: confirm.clone(),
                }),
            )?;
            out(&format!("pool {name} destroyed\n"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A page of search results as a table, then the facet counts.
fn search_results(found: &api::media::Found, offset: usize) -> String {
    if found.total == 0 {
        return "no clip matches\n".into();
    }
    let rows: Vec<Vec<String>> = found
        .clips
        .iter()
        .map(|clip| {
            let c = clip.summary();
            vec![
                clip.label(),
                c.codec,
                c.picture,
                c.fps,
                c.duration,
                c.timecode,
                c.reel,
            ]
        })
        .collect();
    let mut s = table(
        &[
            "CLIP", "CODEC", "PICTURE", "FPS", "DURATION", "TIMECODE", "REEL",
        ],
        &rows,
    );
    s.push_str(&format!(
        "{}-{} of {}\n",
        offset + 1,
        offset + found.clips.len(),
        found.total
    ));
    for line in found.facets.iter().filter_map(|f| f.line()) {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

fn show_rates(cli: &Cli, c: &Client) -> Result<(), ClientError> {
    let rates: api::Rates = c.get("/v1/rates")?;
    if cli.json {
        json(&rates);
        return Ok(());
    }
    let mut s = String::new();
    if let Some(problem) = &rates.problem {
        s.push_str(&format!(
            "the rules in rushes.toml are not used: {problem}\n"
        ));
    }
    if rates.rules.is_empty() {
        s.push_str(
            "no rate rules: no client is capped or has a reservation (rushesctl rate set --help)\n",
        );
    } else {
        let mb = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}"));
        let mut rows = Vec::new();
        for r in &rates.rules {
            let covers = match (r.clients.is_empty(), r.shares.is_empty()) {
                (false, true) => r.clients.join(","),
                (true, false) => format!("shares {}", r.shares.join(",")),
                _ => format!("{} on {}", r.clients.join(","), r.shares.join(",")),
            };
            rows.push(vec![
                r.name.clone(),
                covers,
                mb(r.cap_mb_s),
                mb(r.reserve_mb_s),
                format!("{:.1}", r.now_mb_s),
            ]);
            for client in &r.getting {
                rows.push(vec![
                    format!("  {}", client.address),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("{:.1}", client.mb_s),
                ]);
            }
        }
        s.push_str(&table(
            &[
                "RULE / CLIENT",
                "COVERS",
                "CAP MB/S",
                "RESERVED MB/S",
                "NOW MB/S",
            ],
            &rows,
        ));
    }
    match rates.measured_mb_s {
        Some(total) => s.push_str(&format!(
            "reserved {} of {total:.0} MB/s the pools were measured to read at\n",
            rates.reserved_mb_s
        )),
        None => {
            s.push_str("no pool's read rate is measured yet: reservations cannot be promised\n")
        }
    }
    if !rates.unmeasured.is_empty() {
        s.push_str(&format!(
            "not measured yet: {} (rushesctl pool measure NAME)\n",
            rates.unmeasured.join(", ")
        ));
    }
    out(&s);
    Ok(())
}

fn show_card(cli: &Cli, s: &api::CardStatus) {
    if cli.json {
        json(s);
        return;
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    out(&format!(
        "card: {} ({}){}\n",
        s.state,
        s.mode,
        s.problem
            .as_ref()
            .map(|p| format!(": {p}"))
            .unwrap_or_default()
    ));
    for p in &s.pci {
        out(&format!("PCI: {p}\n"));
    }
    if s.model.is_some() {
        out(&format!(
            "model {}  serial {}  firmware {} (slot {})  fabric {}\n",
            opt(&s.model),
            opt(&s.serial),
            opt(&s.firmware_version),
            opt(&s.active_slot),
            s.fabric
        ));
        let slots: Vec<String> = s
            .slots
            .iter()
            .map(|x| format!("{}: {}", x.slot, opt(&x.version)))
            .collect();
        out(&format!(
            "slots {}{}  errors {}  in flight {}\n",
            slots.join(", "),
            s.staged_slot
                .as_ref()
                .map(|x| format!("  (staged: {x})"))
                .unwrap_or_default(),
            s.errors,
            s.queue_depth
        ));
        for p in &s.ports {
            out(&format!(
                "port {} {}{}\n",
                p.name,
                p.link,
                p.speed_mbps
                    .map(|m| format!(" {m} Mb/s"))
                    .unwrap_or_default()
            ));
        }
    }
    let rows: Vec<Vec<String>> = s
        .namespaces
        .iter()
        .map(|n| {
            vec![
                n.device.clone(),
                n.nqn.clone(),
                n.nsid.to_string(),
                size(n.size_bytes),
                format!("{}/{}", n.read_ops, n.write_ops),
                n.errors.to_string(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out(&table(
            &[
                "DEVICE",
                "SUBSYSTEM",
                "NSID",
                "SIZE",
                "READS/WRITES",
                "ERRORS",
            ],
            &rows,
        ));
    }
}

fn show_update(cli: &Cli, s: &api::UpdateStatus) {
    if cli.json {
        json(s);
        return;
    }
    let mut text = format!(
        "version {}  model {}  running slot {}\n",
        s.version,
        s.model,
        s.running_slot.as_deref().unwrap_or("-").to_uppercase()
    );
    for slot in &s.slots {
        text.push_str(&format!(
            "  slot {}  {:<16} {:<12} {}{}\n",
            slot.slot.to_uppercase(),
            match slot.tries_left {
                Some(n) => format!("trying ({n} left)"),
                None => slot.state.clone(),
            },
            slot.version.as_deref().unwrap_or("-"),
            if slot.running { "running  " } else { "" },
            if slot.boots_next { "boots next" } else { "" },
        ));
    }
    text.push_str(&format!(
        "bundles taken from keys: {}\n",
        if s.trusted_keys.is_empty() {
            "none".to_string()
        } else {
            s.trusted_keys.join(", ")
        }
    ));
    for p in &s.problems {
        text.push_str(&format!("problem: {p}\n"));
    }
    out(&text);
}

fn update(cli: &Cli, c: &Client, cmd: Option<&UpdateCmd>) -> Res {
    match cmd {
        None => {
            let s: api::UpdateStatus = c.get("/v1/update")?;
            show_update(cli, &s);
        }
        Some(UpdateCmd::Apply { source, reboot }) => {
            // A file given by a relative path on the box is sent as the box sees it.
            let source = match (source.contains("://"), cli.host.is_some()) {
                (false, false) => std::path::absolute(source)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| source.clone()),
                _ => source.clone(),
            };
            let job: api::Job = c.post(
                "/v1/update/apply",
                &api::UpdateApply {
                    source,
                    reboot: *reboot,
                },
            )?;
            let code = watch(cli, c, job.id)?;
            if code == ExitCode::SUCCESS && !*reboot {
                let s: api::UpdateStatus = c.get("/v1/update")?;
                show_update(cli, &s);
            }
            return Ok(code);
        }
        Some(UpdateCmd::Rollback { reboot }) => {
            let s: api::UpdateStatus = c.post(
                "/v1/update/rollback",
                &api::UpdateRollback {
                    confirm: true,
                    reboot: *reboot,
                },
            )?;
            show_update(cli, &s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn card(cli: &Cli, c: &Client, cmd: Option<&CardCmd>) -> Res {
    match cmd {
        None => show_card(cli, &c.get("/v1/card")?),
        Some(CardCmd::Mode { mode, pci_ids }) => show_card(
            cli,
            &c.put(
                "/v1/card",
                &api::CardMode {
                    mode: mode.clone(),
                    pci_ids: (!pci_ids.is_empty()).then(|| pci_ids.clone()),
                },
            )?,
        ),
        Some(CardCmd::Attach { nqn, address }) => {
            let (traddr, port) = host_port(address);
            let ns: Vec<api::CardNamespace> = c.post(
                "/v1/card/attach",
                &api::FabricPath {
                    nqn: nqn.clone(),
                    transport: "tcp".into(),
                    traddr,
                    trsvcid: port.unwrap_or_else(|| "4420".into()),
                },
            )?;
            if cli.json {
                json(&ns);
            } else {
                let devices: Vec<&str> = ns.iter().map(|n| n.device.as_str()).collect();
                out(&format!(
                    "{nqn} attached through the card: {}\n",
                    devices.join(" ")
                ));
            }
        }
        Some(CardCmd::Detach { nqn }) => {
            c.send(
                "POST",
                "/v1/card/detach",
                Some(&api::CardDetach { nqn: nqn.clone() }),
            )?;
            out(&format!("{nqn} detached from the card\n"));
        }
        Some(CardCmd::Firmware(f)) => {
            let s: api::CardStatus = match f {
                FirmwareCmd::Stage { path } => c.post(
                    "/v1/card/firmware/stage",
                    &api::FirmwareStage { path: path.clone() },
                )?,
                FirmwareCmd::Activate => {
                    c.post("/v1/card/firmware/activate", &serde_json::json!({}))?
                }
                FirmwareCmd::Rollback => {
                    c.post("/v1/card/firmware/rollback", &serde_json::json!({}))?
                }
            };
            show_card(cli, &s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fabric(cli: &Cli, c: &Client, cmd: &FabricCmd) -> Res {
    let transport = |rdma: bool| if rdma { "rdma" } else { "tcp" }.to_string();
    match cmd {
        FabricCmd::Discover {
            address,
            rdma,
            mdns,
        } => {
            let r: api::DiscoveryResult = c.post(
                "/v1/fabrics/discover",
                &api::Discover {
                    address: address.clone(),
                    transport: transport(*rdma),
                    mdns: *mdns,
                },
            )?;
            if cli.json {
                json(&r);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = r
                .subsystems
                .iter()
                .map(|s| {
                    vec![
                        s.path.nqn.clone(),
                        format!("{} {}:{}", s.path.transport, s.path.traddr, s.path.trsvcid),
                        s.via.clone(),
                        if s.connected { "connected" } else { "-" }.into(),
                    ]
                })
                .collect();
            out(&table(
                &["SUBSYSTEM", "ADDRESS", "LISTED BY", "STATE"],
                &rows,
            ));
            out(&format!(
                "{} subsystem(s) from {} discovery controller(s): {}\n",
                r.subsystems.len(),
                r.visited.len(),
                r.visited.join(", ")
            ));
            for p in &r.problems {
                out(&format!("could not read: {p}\n"));
            }
            if r.subsystems.iter().any(|s| !s.connected) {
                out("connect one with: rushesctl fabric connect NQN --address ADDRESS:PORT\n");
            }
        }
        FabricCmd::Connect { nqn, address, rdma } => {
            let (traddr, port) = host_port(address);
            let s: api::FabricSubsystem = c.post(
                "/v1/fabrics/connect",
                &api::FabricPath {
                    nqn: nqn.clone(),
                    transport: transport(*rdma),
                    traddr,
                    trsvcid: port.unwrap_or_else(|| "4420".into()),
                },
            )?;
            if cli.json {
                json(&s);
            } else {
                out(&format!(
                    "{} connected over {} path(s); disks: {}\n",
                    s.nqn,
                    s.paths.iter().filter(|p| p.state == "live").count(),
                    if s.namespaces.is_empty() {
                        "none yet".to_string()
                    } else {
                        s.namespaces.join(" ")
                    }
                ));
            }
        }
        FabricCmd::Disconnect { nqn, address } => {
            let (traddr, trsvcid) = match address {
                Some(a) => {
                    let (h, p) = host_port(a);
                    (Some(h), p)
                }
                None => (None, None),
            };
            c.send(
                "POST",
                "/v1/fabrics/disconnect",
                Some(&api::Disconnect {
                    nqn: nqn.clone(),
                    traddr,
                    trsvcid,
                }),
            )?;
            out(&format!("{nqn} disconnected\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn share(cli: &Cli, c: &Client, cmd: &ShareCmd) -> Res {
    let show = |s: &api::Share| {
        if cli.json {
            json(s);
        } else {
            out(&table(
                &["SHARE", "POOL", "STATE", "PROTOCOLS", "PATH", "CLIENTS"],
                &[share_row(s)],
            ));
        }
    };
    match cmd {
        ShareCmd::Create {
            name,
            pool,
            rule,
            no_smb,
            time_machine,
            users,
            allow_devices,
        } => {
            let s: api::Share = c.post(
                "/v1/shares",
                &api::CreateShare {
                    name: name.clone(),
                    pool: pool.clone(),
                    rules: Some(vec![rule.rule()]),
                    smb: Some(!no_smb),
                    time_machine: *time_machine,
                    users: users.clone(),
                    allow_devices: *allow_devices,
                },
            )?;
            show(&s);
            if !cli.json {
                out(&format!(
                    "clients mount it with: mount -t nfs ADDRESS:/{0} /mnt (macOS Finder: nfs://ADDRESS/{0})\n",
                    s.name
                ));
                if s.smb {
                    out(&format!(
                        "or over SMB: smb://ADDRESS/{0} (Finder), \\\\ADDRESS\\{0} (Windows)\n",
                        s.name
                    ));
                }
            }
        }
        ShareCmd::Show { name } => show(&c.get(&format!("/v1/shares/{name}"))?),
        ShareCmd::SetRule { name, rule } => show(&c.put(
            &format!("/v1/shares/{name}"),
            &api::UpdateShare {
                rules: Some(vec![rule.rule()]),
                ..Default::default()
            },
        )?),
        ShareCmd::SetSmb {
            name,
            smb,
            time_machine,
            users,
            all_users,
        } => {
            let users = if *all_users {
                Some(Vec::new())
            } else {
                users.clone()
            };
            show(&c.put(
                &format!("/v1/shares/{name}"),
                &api::UpdateShare {
                    smb: *smb,
                    time_machine: *time_machine,
                    users,
                    ..Default::default()
                },
            )?)
        }
        ShareCmd::SetNfs {
            name,
            allow_devices,
        } => show(&c.put(
            &format!("/v1/shares/{name}"),
            &api::UpdateShare {
                allow_devices: Some(*allow_devices),
                ..Default::default()
            },
        )?),
        ShareCmd::Delete { name } => {
            c.send::<()>("DELETE", &format!("/v1/shares/{name}"), None)?;
            out(&format!(
                "share {name} deleted; its files stay on the pool\n"
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["long".into(), "x".into()],
                vec!["s".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A     BB\nlong  x\ns     y\n");
    }

    #[test]
    fn the_cli_parses_what_the_help_shows() {
        let cli = Cli::try_parse_from([
            "rushesctl",
            "pool",
            "create",
            "media",
            "--level",
            "raid5",
            "nvme0n1",
            "nvme1n1",
            "nvme2n1",
            "--wipe",
            "nvme1n1",
            "--wait",
        ])
        .unwrap();
        let Cmd::Pool(PoolCmd::Create {
            level,
            disks,
            wipe,
            wait,
            ..
        }) = cli.command
        else {
            panic!("not a pool create")
        };
        assert_eq!(
            (level, disks.len(), wipe.len(), wait.wait),
            (RaidLevel::Raid5, 3, 1, true)
        );
        assert!(
            Cli::try_parse_from(["rushesctl", "pool", "create", "m", "--level", "raid7", "a"])
                .is_err()
        );
    }
}
