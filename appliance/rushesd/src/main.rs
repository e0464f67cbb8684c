//! `rushesd`, the Rushes appliance daemon. `host` serves directories of any Linux machine
//! over NFSv3 (development, tests, benchmarks, and the appliance's RAM share until pools
//! exist); `inventory` lists the machine's disks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rushes_nas::{NfsServer, ServerConfig, Service, ShareConfig};

#[derive(Parser)]
#[command(name = "rushesd", version, about = "The Rushes NAS appliance daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the machine's disks: transport, size, model, serial, what is on them, and
    /// which one is the boot stick (never usable for a pool).
    Inventory {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve local directories over NFSv3 (MOUNT, NFS and portmap on one TCP port).
    ///
    /// Each DIR is exported as /NAME, NAME being the folder's name unless given as
    /// NAME=DIR. Without --config every client may mount, read-write, with root squashed.
    /// Clients mount with: mount -t nfs -o vers=3,proto=tcp,port=PORT,mountport=PORT,nolock HOST:/NAME /mnt
    #[command(
        after_help = "Example config (--config shares.toml):\n\n  listen = \"0.0.0.0:2049\"\n  state_dir = \"/var/lib/rushes\"\n\n  [[share]]\n  name = \"projects\"\n  path = \"/srv/projects\"\n  [[share.rule]]\n  clients = [\"10.10.0.0/16\"]   # CIDR networks; first matching rule wins\n  access = \"rw\"                 # or \"ro\"\n  root_squash = true            # default\n  all_squash = false\n  anonuid = 65534\n  anongid = 65534"
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
        /// Directories to serve, as DIR or NAME=DIR.
        #[arg(value_name = "[NAME=]DIR")]
        dirs: Vec<String>,
    },
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

fn try_main() -> Result<()> {
    match Cli::parse().command {
        Command::Inventory { json } => inventory(json),
        Command::Host {
            listen,
            config,
            state_dir,
            dirs,
        } => host(listen, config.as_deref(), state_dir, &dirs),
    }
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
        let transport = serde_json::to_value(&d.transport)?
            .as_str()
            .unwrap_or("?")
            .to_string();
        let contents: Vec<String> = d
            .contents
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
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
    })
}

fn host(
    listen: Option<SocketAddr>,
    config: Option<&Path>,
    state_dir: Option<PathBuf>,
    dirs: &[String],
) -> Result<()> {
    let mut cfg = match config {
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
    if cfg.shares.is_empty() {
        bail!("nothing to serve: give at least one DIR or a --config with [[share]] entries (see rushesd host --help)");
    }
    let listen = listen
        .or(cfg.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 2049)));
    let state_dir = state_dir
        .or(cfg.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/rushes"));
    unblock_shutdown_signals();
    // Clients send the mode they want, already filtered by their own umask.
    rustix::process::umask(rustix::fs::Mode::empty());
    let service = Service::new(&cfg.shares, &state_dir)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(128)
        .thread_name("rushesd")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = NfsServer::bind(listen, service)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = server.local_addr()?;
        for share in &cfg.shares {
            tracing::info!(share = %share.name, path = %share.path.display(), "exported as /{}", share.name);
        }
        tracing::info!(%addr, "serving NFSv3, MOUNT and portmap");
        server.run(shutdown_signal()).await;
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
