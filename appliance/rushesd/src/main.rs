//! `rushesd`, the Rushes appliance daemon: serves shares over NFSv3 and manages disks,
//! pools and shares through the management API. `appliance` is how rushes-init runs it;
//! `host` serves directories of any Linux machine (development, tests, benchmarks);
//! `inventory` lists the machine's disks.

mod activity;
mod admin_plane;
mod alerts;
mod api;
mod audit;
mod backup;
mod card;
mod catalog;
mod clock;
mod config;
mod copy_outlook;
mod core;
mod daemon;
mod directory;
mod epoch;
mod error;
mod extensions;
mod fabrics;
mod hotplug;
mod jobs;
mod metrics;
mod openapi;
mod placement;
mod pool_load;
mod pools;
mod rates;
mod recall;
mod reconcile;
mod s3_endpoint;
mod samba;
mod settings;
mod shares;
mod smb;
mod smb_audit;
mod smb_lines;
mod smb_profile;
mod state_file;
mod support;
mod targets;
mod thumbnail;
mod update;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use crate::core::{Core, Paths};
use config::ConfigStore;
use rushes_nas::connections::ConnectionLimits;
use rushes_nas::{NfsServer, ServerConfig, Service, ShareConfig};

#[derive(Parser)]
#[command(name = "rushesd", version, about = "The Rushes NAS appliance daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the host variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// List the machine's disks: transport, size, model, serial, what is on them, and
    /// which one is the boot stick (never usable for a pool).
    Inventory {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run as the appliance: assemble and mount the pools listed in the config on
    /// RUSHES-CFG, serve their shares over NFS, and take management requests on the API
    /// socket. Extra [NAME=]DIR arguments are served too (the RAM share).
    Appliance {
        #[arg(long, default_value = "0.0.0.0:2049", value_name = "ADDR:PORT")]
        listen: SocketAddr,
        /// The management API's Unix socket.
        #[arg(long, default_value = rushes_api::DEFAULT_SOCKET, value_name = "PATH")]
        api: PathBuf,
        /// Pools and shares (and init's network settings), kept with a previous generation.
        #[arg(long, default_value = "/cfg/rushes.toml", value_name = "FILE")]
        config: PathBuf,
        /// The file-handle key and scrub records.
        #[arg(long, default_value = "/cfg/state", value_name = "DIR")]
        state_dir: PathBuf,
        /// Pools are mounted at DIR/NAME.
        #[arg(long, default_value = "/pools", value_name = "DIR")]
        pools_dir: PathBuf,
        /// Prometheus metrics at http://ADDR:PORT/metrics.
        #[arg(long, default_value = "0.0.0.0:9100", value_name = "ADDR:PORT")]
        metrics: SocketAddr,
        /// The portmapper (TCP and UDP), where clients ask for the NFS, MOUNT and lock
        /// manager ports.
        #[arg(long, default_value = "0.0.0.0:111", value_name = "ADDR:PORT")]
        portmap: SocketAddr,
        #[arg(value_name = "[NAME=]DIR")]
        dirs: Vec<String>,
    },
    /// Serve local directories over NFSv3, with MOUNT, NLM locking and its status monitor
    /// on the same port (TCP and UDP) and the portmapper on port 111.
    ///
    /// Each DIR is exported as /NAME, NAME being the folder's name unless given as
    /// NAME=DIR. Without --config every client may mount, read-write, with root squashed.
    /// Clients mount with: mount -t nfs HOST:/NAME /mnt (locking on). Without the
    /// portmapper on 111 (not root, or --portmap elsewhere) they must be told the port:
    /// mount -t nfs -o vers=3,port=PORT,mountport=PORT HOST:/NAME /mnt
    #[command(
        after_help = "Example config (--config shares.toml):\n\n  listen = \"0.0.0.0:2049\"\n  state_dir = \"/var/lib/rushes\"\n\n  [[share]]\n  name = \"projects\"\n  path = \"/srv/projects\"\n  [[share.rule]]\n  clients = [\"10.10.0.0/16\"]   # CIDR networks; first matching rule wins\n  access = \"rw\"                 # or \"ro\"\n  root_squash = true            # default\n  all_squash = false\n  anonuid = 65534\n  anongid = 65534\n\n  [[rate]]                      # render nodes: 1 GB/s together, at most\n  name = \"render-nodes\"\n  clients = [\"10.10.20.0/24\"]\n  cap_mb_s = 1000\n\n  [[rate]]                      # suite 3's playback goes first, up to 400 MB/s\n  name = \"suite-3\"\n  clients = [\"10.10.30.3/32\"]\n  reserve_mb_s = 400"
    )]
    Host {
        /// Address to listen on [default: 127.0.0.1:2049, or `listen` from --config].
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// TOML file with shares and per-share export rules.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where the file-handle key is kept, so handles survive restarts
        /// [default: /var/lib/rushes, or `state_dir` from --config].
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Also take management requests on this Unix socket; pools and shares are then
        /// kept in STATE_DIR/rushes.toml and pools mounted under STATE_DIR/pools.
        #[arg(long, value_name = "PATH")]
        api: Option<PathBuf>,
        /// Also serve Prometheus metrics at http://ADDR:PORT/metrics (needs --api).
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<SocketAddr>,
        /// Record no activity (no rollups, top lists or audit log): the benchmark's
        /// baseline for what recording costs.
        #[arg(long)]
        no_activity: bool,
        /// Keep the audit log in DIR while no pool is mounted (the appliance keeps it on
        /// its first pool). Without it, host mode keeps the newest 100,000 records in
        /// memory only.
        #[arg(long, value_name = "DIR")]
        audit_dir: Option<PathBuf>,
        /// Where the portmapper listens (TCP and UDP) [default: port 111 of the --listen
        /// address when run as root; otherwise only on the NFS port].
        #[arg(long, value_name = "ADDR:PORT")]
        portmap: Option<SocketAddr>,
        /// How long, after a restart, only locks that clients reclaim are granted (when
        /// clients held locks before it).
        #[arg(long, value_name = "SECONDS", default_value_t = rushes_nas::service::GRACE_PERIOD.as_secs())]
        grace_period: u64,
        /// How long a connection whose client sends one call at a time polls for its
        /// next call before sleeping (0: never). Up to that much CPU per call, for a
        /// shorter round trip.
        #[arg(long, value_name = "MICROSECONDS", default_value_t = rushes_nas::server::POLL_WINDOW.as_micros() as u64)]
        poll_window_us: u64,
        /// Threads answering calls that come while others of their connection are in
        /// flight, taking the clients' queues in turn [default: 4 a core, at least 16].
        #[arg(long, value_name = "N")]
        nfs_workers: Option<usize>,
        /// Connections one client address may have open; more are closed at once.
        #[arg(long, value_name = "N", default_value_t = ConnectionLimits::default().per_client)]
        max_connections_per_client: usize,
        /// A call must arrive whole within this many seconds of its first byte, or its
        /// connection is closed (a client sending half-records holds nothing for long).
        #[arg(long, value_name = "SECONDS", default_value_t = ConnectionLimits::default().record_timeout.as_secs_f64())]
        record_timeout: f64,
        /// A connection with no call for this many seconds is closed.
        #[arg(long, value_name = "SECONDS", default_value_t = ConnectionLimits::default().idle_timeout.as_secs_f64())]
        idle_timeout: f64,
        /// Warnings of one kind about one client are logged once in this many seconds,
        /// then as one line saying how many more there were.
        #[arg(long, value_name = "SECONDS", default_value_t = rushes_nas::peer_warnings::WINDOW.as_secs_f64())]
        warning_window: f64,
        /// Keep the media catalog of the folders served (needs --api): every file with
        /// its clip's technical metadata, searched with `rushesctl search`. The index is
        /// kept in STATE_DIR/catalog.
        #[arg(long)]
        catalog: bool,
        /// Also serve DIR over S3 at ADDR:PORT for other boxes' copies (needs --api):
        /// each key made with `rushesctl s3 key add NAME` signs for bucket DIR/NAME.
        #[arg(long, value_name = "ADDR:PORT=DIR")]
        s3_endpoint: Option<String>,
        /// Also serve the admin plane (the management API, logins, tokens) over HTTPS
        /// at ADDR:PORT (needs --api), with a certificate made in STATE_DIR/web at the
        /// first start.
        #[arg(long, value_name = "ADDR:PORT")]
        web: Option<SocketAddr>,
        /// Answer plain HTTP at ADDR:PORT with a redirect to --web.
        #[arg(long, value_name = "ADDR:PORT", requires = "web")]
        web_redirect: Option<SocketAddr>,
        /// A folder laid out like the boot partition (loader/entries, rushes/a, rushes/b)
        /// that `rushesctl update` writes bundles into, as the appliance does its slots.
        #[arg(long, value_name = "DIR")]
        esp: Option<PathBuf>,
        /// Take update bundles signed with the keys (*.pub) in DIR
        /// [default: /usr/share/rushes/update-keys, as on the appliance].
        #[arg(long, value_name = "DIR")]
        update_keys: Option<PathBuf>,
        /// Directories to serve, as DIR or NAME=DIR.
        #[arg(value_name = "[NAME=]DIR")]
        dirs: Vec<String>,
    },
}

/// What `serve` runs.
struct ServeOptions {
    listen: SocketAddr,
    state_dir: PathBuf,
    shares: Vec<ShareConfig>,
    /// The API socket, the config file and the pools folder.
    management: Option<(PathBuf, PathBuf, PathBuf)>,
    /// The supervisor's log that the API shows.
    log_file: PathBuf,
    /// Acting on this machine (host name, power): only as the appliance.
    appliance: bool,
    /// Where Prometheus scrapes (with management only).
    metrics: Option<SocketAddr>,
    /// Feed the activity stream (rollups, top lists, audit log).
    activity: bool,
    /// The audit log's folder while no pool is mounted.
    audit_dir: Option<PathBuf>,
    /// The portmapper's own address (111), if any.
    portmap: Option<SocketAddr>,
    /// The NLM grace period after a restart.
    grace_period: std::time::Duration,
    /// How long a chaining client's connection polls for its next call.
    poll_window: std::time::Duration,
    /// What one client may hold of the server's connections.
    limits: ConnectionLimits,
    /// How long warnings of one kind about one client are gathered into one line.
    warning_window: std::time::Duration,
    /// Threads answering pipelined calls.
    workers: usize,
    /// Rate caps on groups of clients.
    caps: Vec<rushes_nas::rates::RateRule>,
    /// Keep the media catalog (with management only).
    catalog: bool,
    /// Host mode's S3 endpoint: where it listens, and the folder it serves.
    s3_endpoint: Option<(SocketAddr, PathBuf)>,
    /// The admin plane's HTTPS (with management only).
    web: Option<admin_plane::WebListen>,
    /// Where update bundles go and which keys they are taken from.
    update: update::UpdateSetup,
}

/// `--s3-endpoint ADDR:PORT=DIR`.
fn s3_endpoint_arg(text: &str) -> Result<(SocketAddr, PathBuf)> {
    let (addr, dir) = text
        .split_once('=')
        .context("give --s3-endpoint as ADDR:PORT=DIR")?;
    let addr = addr
        .parse()
        .with_context(|| format!("--s3-endpoint: {addr:?} is not ADDR:PORT"))?;
    Ok((addr, PathBuf::from(dir)))
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match try_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rushesd: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Take the whole open-file limit the system allows: every NLM lock holds a file
/// description, and the lock manager sizes its limits from this one.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(open_files = ?limit.maximum, "open-file limit raised"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit; fewer NLM locks can be held")
        }
    }
}

fn try_main() -> Result<()> {
    raise_open_files_limit();
    match Cli::parse().command {
        Command::Inventory { json } => inventory(json),
        Command::Host {
            listen,
            config,
            state_dir,
            api,
            metrics,
            no_activity,
            audit_dir,
            portmap,
            grace_period,
            poll_window_us,
            nfs_workers,
            max_connections_per_client,
            record_timeout,
            idle_timeout,
            warning_window,
            catalog,
            s3_endpoint,
            web,
            web_redirect,
            esp,
            update_keys,
            dirs,
        } => host(
            HostOptions {
                listen,
                config,
                state_dir,
                api,
                metrics,
                activity: !no_activity,
                audit_dir,
                portmap,
                grace_period: std::time::Duration::from_secs(grace_period),
                poll_window: std::time::Duration::from_micros(poll_window_us),
                limits: ConnectionLimits {
                    per_client: max_connections_per_client,
                    record_timeout: seconds("--record-timeout", record_timeout)?,
                    idle_timeout: seconds("--idle-timeout", idle_timeout)?,
                    ..Default::default()
                },
                warning_window: seconds("--warning-window", warning_window)?,
                workers: nfs_workers.unwrap_or_else(rushes_nas::server::default_workers),
                catalog,
                s3_endpoint: s3_endpoint.as_deref().map(s3_endpoint_arg).transpose()?,
                web: web.map(|https| admin_plane::WebListen {
                    https,
                    redirect: web_redirect,
                }),
                update: update::UpdateSetup::host(esp, update_keys),
            },
            &dirs,
        ),
        Command::Appliance {
            listen,
            api,
            config,
            state_dir,
            pools_dir,
            metrics,
            portmap,
            dirs,
        } => serve(ServeOptions {
            listen,
            state_dir,
            shares: dirs.iter().map(|d| share_arg(d)).collect::<Result<_>>()?,
            management: Some((api, config, pools_dir)),
            log_file: PathBuf::from("/run/rushes/log.txt"),
            appliance: true,
            metrics: Some(metrics),
            activity: true,
            audit_dir: None,
            portmap: Some(portmap),
            grace_period: rushes_nas::service::GRACE_PERIOD,
            poll_window: rushes_nas::server::POLL_WINDOW,
            limits: ConnectionLimits::default(),
            warning_window: rushes_nas::peer_warnings::WINDOW,
            workers: rushes_nas::server::default_workers(),
            caps: Vec::new(),
            catalog: true,
            s3_endpoint: None,
            web: Some(admin_plane::WebListen {
                https: SocketAddr::from(([0, 0, 0, 0], 443)),
                redirect: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            }),
            update: update::UpdateSetup::appliance(),
        }),
    }
}

/// The `[[rate]]` rules of the managed config file (none when it does not exist yet).
/// The config store keeps keys it does not know as they are, so they survive its writes.
/// A duration given in seconds on the command line.
fn seconds(flag: &str, value: f64) -> Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} {value}: give a positive number of seconds"))
}

fn inventory(json: bool) -> Result<()> {
    use std::io::Write;
    let disks = rushes_storage::inventory::scan(&Default::default());
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &disks)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<10} {:<9} {:>10}  {:<24} {:<20} contents",
        "disk", "transport", "size", "model", "serial"
    )?;
    for d in &disks {
        let transport = d.transport.as_str();
        let contents: Vec<&str> = d.contents.iter().map(|c| c.as_str()).collect();
        let mut what = contents.join(",");
        if d.boot {
            what.push_str(" (boot stick: not for pools)");
        }
        writeln!(
            out,
            "{:<10} {:<9} {:>8.1} GB  {:<24} {:<20} {}",
            d.name,
            transport,
            d.size_bytes as f64 / 1e9,
            d.model,
            d.serial,
            what
        )?;
    }
    Ok(())
}

/// `DIR` or `NAME=DIR` from the command line.
fn share_arg(arg: &str) -> Result<ShareConfig> {
    let (name, dir) = match arg.split_once('=') {
        Some((name, dir)) => (name.to_string(), PathBuf::from(dir)),
        None => {
            let dir = PathBuf::from(arg);
            let canonical = dir
                .canonicalize()
                .with_context(|| format!("cannot serve {arg}"))?;
            let name = canonical
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .with_context(|| format!("{arg} has no folder name; give one as NAME={arg}"))?;
            (name, dir)
        }
    };
    Ok(ShareConfig {
        name,
        path: dir,
        rules: vec![Default::default()],
        allow_devices: false,
    })
}

/// `rushesd host`'s options.
struct HostOptions {
    listen: Option<SocketAddr>,
    config: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    api: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    activity: bool,
    audit_dir: Option<PathBuf>,
    portmap: Option<SocketAddr>,
    grace_period: std::time::Duration,
    poll_window: std::time::Duration,
    limits: ConnectionLimits,
    warning_window: std::time::Duration,
    workers: usize,
    catalog: bool,
    s3_endpoint: Option<(SocketAddr, PathBuf)>,
    web: Option<admin_plane::WebListen>,
    /// Where update bundles go and which keys they are taken from.
    update: update::UpdateSetup,
}

fn host(opts: HostOptions, dirs: &[String]) -> Result<()> {
    let HostOptions {
        listen,
        config,
        state_dir,
        api,
        metrics,
        activity,
        audit_dir,
        portmap,
        grace_period,
        poll_window,
        limits,
        warning_window,
        workers,
        catalog,
        s3_endpoint,
        web,
        update,
    } = opts;
    if web.is_some() && api.is_none() {
        bail!("--web needs --api: the admin plane serves the management API");
    }
    if s3_endpoint.is_some() && api.is_none() {
        bail!("--s3-endpoint needs --api: its keys are made through the management API");
    }
    if catalog && api.is_none() {
        bail!("--catalog needs --api: the catalog is searched through the management API");
    }
    let mut cfg = match config.as_deref() {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            toml::from_str::<ServerConfig>(&text)
                .with_context(|| format!("config {} is not valid", path.display()))?
        }
        None => ServerConfig::default(),
    };
    for dir in dirs {
        cfg.shares.push(share_arg(dir)?);
    }
    if cfg.shares.is_empty() && api.is_none() {
        bail!("nothing to serve: give at least one DIR, a --config with [[share]] entries, or --api (see rushesd host --help)");
    }
    let listen = listen
        .or(cfg.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 2049)));
    // Port 111 needs root; an unprivileged run answers portmap calls on the NFS port.
    let portmap = portmap.or_else(|| {
        rustix::process::geteuid()
            .is_root()
            .then(|| SocketAddr::new(listen.ip(), 111))
    });
    let state_dir = state_dir
        .or(cfg.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/rushes"));
    // Host mode reads a supervisor log from the state folder, if one is put there.
    let log_file = state_dir.join("log.txt");
    let management = api.map(|socket| {
        (
            socket,
            state_dir.join("rushes.toml"),
            state_dir.join("pools"),
        )
    });
    serve(ServeOptions {
        listen,
        state_dir,
        shares: cfg.shares,
        management,
        log_file,
        appliance: false,
        metrics,
        activity,
        audit_dir,
        portmap,
        grace_period,
        poll_window,
        limits,
        warning_window,
        workers,
        caps: cfg.caps,
        catalog,
        s3_endpoint,
        web,
        update,
    })
}

fn serve(opts: ServeOptions) -> Result<()> {
    let ServeOptions {
        listen,
        state_dir,
        shares,
        management,
        log_file,
        appliance,
        metrics,
        activity,
        audit_dir,
        portmap,
        grace_period,
        poll_window,
        limits,
        warning_window,
        workers,
        caps,
        catalog,
        s3_endpoint,
        web,
        update,
    } = opts;
    unblock_shutdown_signals();
    // Clients send the mode they want, already filtered by their own umask.
    rustix::process::umask(rustix::fs::Mode::empty());
    let live = Arc::new(rushes_nas::activity::LiveCounters::default());
    let rollups = Arc::new(rushes_nas::rollup::Rollups::default());
    let directory: Arc<std::sync::RwLock<directory::Directory>> = Arc::default();
    let audit = audit::AuditLog::start(Arc::clone(&directory), audit::MAX_BYTES, audit::MAX_DAYS);
    audit.set_fallback(audit_dir);
    let mut observers: Vec<Arc<dyn rushes_nas::activity::OpObserver>> = vec![
        Arc::new(rushes_nas::activity::TracingObserver),
        Arc::clone(&live) as Arc<dyn rushes_nas::activity::OpObserver>,
        Arc::clone(&rollups) as Arc<dyn rushes_nas::activity::OpObserver>,
        Arc::clone(&audit) as Arc<dyn rushes_nas::activity::OpObserver>,
    ];
    // The catalog hears of files as they are written, renamed and removed.
    let (catalog_feed, catalog_events) = match catalog && management.is_some() {
        true => {
            let (feed, events) = catalog::feed();
            observers.push(Arc::new(feed.clone()));
            (Some(feed), Some(events))
        }
        false => (None, None),
    };
    let recorder =
        rushes_nas::activity::Recorder::start(Arc::new(rushes_nas::activity::Tee(observers)));
    let observer: Arc<dyn rushes_nas::activity::OpObserver> = Arc::clone(&recorder) as _;
    // The appliance's rate rules are in its rushes.toml, put in force by the rates
    // subsystem; a host's come with --config.
    let rates_from_command_line = !caps.is_empty();
    let caps = rushes_nas::rates::RateRuleSet::new(&caps)
        .context("a [[rate]] rule in the config is not usable")?;
    for rule in caps.rules() {
        tracing::info!(rule = %rule.name, cap_mb_s = ?rule.cap_mb_s, reserve_mb_s = ?rule.reserve_mb_s, clients = ?rule.clients, "rate rule in force");
    }
    let service = Service::new(&shares, &state_dir)?
        .with_grace_period(grace_period)
        .with_rates(caps);
    service.warnings.set_window(warning_window);
    let service = Arc::new(if activity {
        service.with_observer(Box::new(Arc::clone(&observer)))
    } else {
        tracing::warn!("activity recording is off (--no-activity)");
        service
    });
    // The appliance serves SMB too (rushes-init runs smbd on the config made here).
    let samba = appliance.then(|| samba::Samba {
        conf: PathBuf::from("/run/rushes/smb.conf"),
        private: state_dir.join("samba"),
        run: PathBuf::from("/run/samba"),
        etc: PathBuf::from("/etc"),
    });
    let daemon = management.map(|(socket, config, pools_dir)| {
        // The core first, then each subsystem on it, in the order a boot needs: bays
        // before the pools on them, pools before their shares, shares before SMB.
        let core = Core::open(
            Paths {
                sys: "/sys".into(),
                pools_dir,
                state_dir: state_dir.clone(),
                log_file: log_file.clone(),
                appliance,
            },
            ConfigStore::new(config),
        );
        let fabrics = fabrics::Fabrics::start(Arc::clone(&core));
        let card = card::Card::start(Arc::clone(&core));
        let pools = pools::Pools::start(Arc::clone(&core));
        // Moved files' data reachable, and moves cut short settled, before any share is served.
        placement::open_places(&core, &service.places);
        let shares = shares::Shares::start(
            Arc::clone(&core),
            Arc::clone(&service),
            shares.iter().map(|s| s.name.clone()).collect(),
        );
        let smb = smb::Smb::start(
            Arc::clone(&core),
            Arc::clone(&shares),
            samba.clone(),
            Arc::clone(&directory),
            Arc::clone(&service.places),
            catalog_feed.map(|feed| {
                Arc::new(move |share: &Arc<str>, path: &str| feed.closed(share, path))
                    as smb::OnWritten
            }),
        );
        let system = settings::System::new(Arc::clone(&core));
        let placement = placement::Placement::start(
            Arc::clone(&core),
            Arc::clone(&pools),
            Arc::clone(&service.places),
            Arc::clone(&live),
        );
        let activity = activity::Activity::new(
            Arc::clone(&core),
            activity::Streams {
                recorder: Arc::clone(&recorder),
                live: Arc::clone(&live),
                rollups: Arc::clone(&rollups),
                audit: Arc::clone(&audit),
            },
        );
        let catalog = catalog_events
            .map(|events| catalog::Catalog::start(Arc::clone(&core), Arc::clone(&service), events));
        let rates = rates::Rates::start(
            Arc::clone(&core),
            Arc::clone(&service),
            Arc::clone(&pools),
            rates_from_command_line,
        );
        let targets = targets::Targets::new(Arc::clone(&core), Arc::clone(&service));
        let recalls = recall::Recalls::start(
            Arc::clone(&core),
            Arc::clone(&targets),
            Arc::clone(&service.places),
        );
        service
            .places
            .set_recaller(Arc::clone(&recalls) as Arc<dyn rushes_placement::stub::Recaller>);

        let reconcile = reconcile::Reconcile::new(
            Arc::clone(&core),
            Arc::clone(&targets),
            Arc::clone(&placement),
            Arc::clone(&service),
        );
        let updates = update::Updates::new(Arc::clone(&core), update);
        let admin = admin_plane::AdminPlane::new(Arc::clone(&core));
        admin.set_audit(Arc::clone(&activity));
        let s3 = s3_endpoint::S3Endpoint::new(
            Arc::clone(&core),
            Arc::clone(&targets),
            Arc::clone(&admin),
            s3_endpoint,
        );
        // Every job kind has had its chance to be taken up again.
        core.jobs.give_up_the_rest();
        let daemon = Arc::new(daemon::Daemon {
            core: Arc::clone(&core),
            pools,
            shares,
            fabrics,
            card,
            smb,
            system: Arc::clone(&system),
            activity,
            placement,
            rates,
            catalog,
            targets,
            recalls,
            reconcile,
            s3,
            admin,
            updates,
        });
        daemon.s3.apply();
        daemon.tick();
        if let Some(samba) = samba.clone() {
            let directory = Arc::clone(&directory);
            let observer = Arc::clone(&observer);
            let _ = std::thread::Builder::new()
                .name("smb-audit".into())
                .spawn(move || smb_audit::run(Path::new("/dev/log"), samba, directory, observer));
        }
        hotplug::watch(Arc::clone(&core));
        let _ = std::thread::Builder::new()
            .name("ntp".into())
            .spawn(move || system.keep_time());
        let watched = Arc::clone(&daemon.targets);
        let _ = std::thread::Builder::new()
            .name("target-watch".into())
            .spawn(move || watched.watch());
        let monitor = Arc::clone(&daemon);
        let _ = std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || monitor.monitor());
        (socket, daemon)
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(128)
        .thread_name("rushesd")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // The API's socket first: init calls the box ready once port 2049 listens.
        let daemon = match daemon {
            Some((socket, daemon)) => Some((api::listen(&socket)?, socket, daemon)),
            None => None,
        };
        let mut server = NfsServer::bind(listen, service)
            .await
            .with_context(|| format!("cannot listen on {listen} (TCP and UDP)"))?
            .with_poll_window(poll_window)
            .with_limits(limits)
            .with_workers(workers);
        if let Some(pm) = portmap {
            server = match server.with_portmap(pm).await {
                Ok(server) => server,
                Err((server, e)) => {
                    tracing::warn!(wanted = %pm, error = %e, "the portmapper cannot listen (is rpcbind running?); clients must be given port= and mountport=");
                    server
                }
            };
        }
        let addr = server.local_addr()?;
        if let Some(pm) = server.portmap_addr() {
            tracing::info!(portmap = %pm, "portmapper listening (TCP and UDP)");
        }
        for share in &shares {
            tracing::info!(share = %share.name, path = %share.path.display(), "exported as /{}", share.name);
        }
        tracing::info!(%addr, "serving NFSv3 (TCP), and MOUNT, NLM, NSM and portmap (TCP and UDP)");
        match daemon {
            Some((api, socket, daemon)) => {
                let scrape = {
                    let daemon = Arc::clone(&daemon);
                    async move {
                        match metrics {
                            // A port someone else holds costs the metrics, not the NAS.
                            Some(addr) => {
                                if let Err(e) = metrics::serve(addr, daemon).await {
                                    tracing::error!("{e:#}");
                                }
                                std::future::pending::<()>().await
                            }
                            None => std::future::pending::<()>().await,
                        }
                    }
                };
                let plane = {
                    let daemon = Arc::clone(&daemon);
                    async move {
                        if let Some(at) = web {
                            // A port someone else holds costs the web console, not the NAS.
                            if let Err(e) = daemon.admin.serve(at, api::router(Arc::clone(&daemon))).await {
                                tracing::error!("admin plane: {e:#}");
                            }
                        }
                        std::future::pending::<()>().await
                    }
                };
                tokio::select! {
                    _ = server.run(shutdown_signal()) => {}
                    r = api::serve(api, daemon) => r?,
                    _ = scrape => {}
                    _ = plane => {}
                }
                let _ = std::fs::remove_file(&socket);
            }
            None => server.run(shutdown_signal()).await,
        }
        anyhow::Ok(())
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    tracing::info!("stopped");
    Ok(())
}

/// A parent may leave SIGTERM and SIGINT blocked (PID 1 takes them through a signalfd,
/// and the mask is inherited): a blocked SIGTERM would never stop us. Called before the
/// runtime starts its threads, which inherit the mask.
fn unblock_shutdown_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    if let Err(e) = set.thread_unblock() {
        tracing::warn!(error = %e, "cannot unblock SIGTERM/SIGINT");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop rushesd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}
