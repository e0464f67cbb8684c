//! `rushes-card`: the offload card's engine as a host process (the emulated card). It
//! speaks NVMe/TCP to bays with the card's own initiator and presents their namespaces
//! as ublk devices (`serve`); `discover` and `probe` drive the initiator by hand, `rpc`
//! calls a card's management methods, and `bundle` packs firmware.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rushes_firmware::initiator::{self, Controller, Host, Options};

#[derive(Parser)]
#[command(
    name = "rushes-card",
    version,
    about = "The Rushes offload card's engine, run on the host as an emulated card"
)]
struct Cli {
    /// The host identity file rushesd keeps on RUSHES-CFG (`hostnqn=` and `hostid=`).
    #[arg(long, global = true, default_value = "/cfg/state/fabrics-host")]
    host_file: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read a discovery controller's log page with the card's initiator.
    Discover {
        /// `HOST:PORT` of the discovery controller.
        address: String,
    },
    /// Run as the emulated card: answer JSON-RPC on a socket, attach bays, present their
    /// namespaces as ublk devices.
    Serve {
        #[arg(long, default_value = rushes_firmware::card::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Where the firmware slots live.
        #[arg(long, default_value = "/cfg/state/card")]
        state: PathBuf,
    },
    /// Call one of a card's JSON-RPC methods and print the answer, e.g.
    /// `rushes-card rpc bay_attach '{"traddr":"10.0.0.9","trsvcid":"4420","subnqn":"nqn…"}'`.
    Rpc {
        method: String,
        #[arg(default_value = "{}")]
        params: String,
        #[arg(long, default_value = rushes_firmware::card::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Announce an NVMe/TCP discovery controller over mDNS (`_nvme-disc._tcp`) until
    /// stopped, for a bay that cannot announce itself (nvmet without avahi, a lab).
    Announce {
        /// The discovery controller's port.
        #[arg(long, default_value_t = 8009)]
        port: u16,
        /// The address to announce; by default the host's own addresses.
        #[arg(long)]
        address: Option<std::net::IpAddr>,
        /// The instance name.
        #[arg(long, default_value = "rushes-bay")]
        name: String,
    },
    /// Make a firmware bundle of a payload (the engine image).
    Bundle {
        payload: PathBuf,
        #[arg(long, default_value = rushes_firmware::emulated::MODEL)]
        model: String,
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "0.1.0")]
        min_host_version: String,
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Connect a subsystem, identify it and its namespaces, and optionally write a
    /// pattern and read it back.
    Probe {
        address: String,
        nqn: String,
        /// Write and read back this many MiB on namespace 1, in 4 KiB to 1 MiB commands.
        #[arg(long, default_value_t = 0)]
        verify_mib: u64,
        /// And this many KiB more (a small capture: 76 KiB is one 4, 8 and 64 KiB write).
        #[arg(long, default_value_t = 0)]
        verify_kib: u64,
        /// Negotiate CRC32C header and data digests.
        #[arg(long)]
        digests: bool,
        /// Write every PDU sent and received to this file (see `capture.rs`).
        #[arg(long)]
        capture: Option<PathBuf>,
    },
}

fn host(path: &PathBuf) -> Result<Host> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the host identity {}", path.display()))?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("{} has no {key}", path.display()))
    };
    Ok(Host::new(&field("hostnqn")?, &field("hostid")?)?)
}

fn addr(text: &str) -> Result<SocketAddr> {
    text.to_socket_addrs()
        .with_context(|| format!("{text:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{text:?} resolves to nothing"))
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn probe(c: &std::sync::Arc<Controller>, verify_bytes: u64) -> Result<serde_json::Value> {
    let mut verified = 0u64;
    if verify_bytes > 0 {
        let ns = c
            .namespaces
            .first()
            .context("the subsystem has no namespace")?;
        let bs = u64::from(ns.id.block_size);
        let sizes = [4096usize, 8192, 65536, 131072, c.max_transfer];
        let mut lba = 0u64;
        let mut written = Vec::new();
        let mut i = 0;
        while verified < verify_bytes {
            let len = sizes[i % sizes.len()].min(c.max_transfer);
            let blocks = len as u64 / bs;
            if lba + blocks > ns.id.blocks {
                break;
            }
            let data = pattern(lba, len);
            c.write(ns.nsid, lba, data)?;
            written.push((lba, len));
            lba += blocks;
            verified += len as u64;
            i += 1;
        }
        c.flush(ns.nsid)?;
        for (lba, len) in written {
            let back = c.read(ns.nsid, lba, (len as u64 / bs) as u32)?;
            if back != pattern(lba, len) {
                bail!("data read back at LBA {lba} ({len} bytes) differs from what was written");
            }
        }
    }
    Ok(serde_json::json!({
        "subnqn": c.subnqn,
        "cntlid": c.cntlid(),
        "serial": c.identity.serial,
        "model": c.identity.model,
        "firmware": c.identity.firmware,
        "max_transfer": c.max_transfer,
        "in_capsule_bytes": c.identity.in_capsule_bytes(),
        "namespaces": c.namespaces.iter().map(|n| serde_json::json!({
            "nsid": n.nsid, "blocks": n.id.blocks, "block_size": n.id.block_size,
        })).collect::<Vec<_>>(),
        "verified_bytes": verified,
    }))
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Cmd::Rpc {
            method,
            params,
            socket,
        } => {
            let params: serde_json::Value =
                serde_json::from_str(params).context("the parameters are not JSON")?;
            let card = rushes_firmware::card::RpcCard::new(socket);
            let out: serde_json::Value = card.call(method, &params)?;
            print_json(&out);
            return Ok(());
        }
        Cmd::Announce {
            port,
            address,
            name,
        } => {
            let daemon = mdns_sd::ServiceDaemon::new().context("cannot start mDNS")?;
            let host = format!("{name}.local.");
            let props = [("p", "tcp")];
            let info = match address {
                Some(ip) => mdns_sd::ServiceInfo::new(
                    "_nvme-disc._tcp.local.",
                    name,
                    &host,
                    *ip,
                    *port,
                    &props[..],
                ),
                None => mdns_sd::ServiceInfo::new(
                    "_nvme-disc._tcp.local.",
                    name,
                    &host,
                    "",
                    *port,
                    &props[..],
                )
                .map(|i| i.enable_addr_auto()),
            }
            .context("cannot describe the service")?;
            daemon.register(info).context("cannot announce")?;
            eprintln!("announcing _nvme-disc._tcp {name} port {port}; stop with Ctrl-C");
            loop {
                std::thread::park();
            }
        }
        Cmd::Bundle {
            payload,
            model,
            version,
            min_host_version,
            output,
        } => {
            let bytes = std::fs::read(payload)
                .with_context(|| format!("cannot read {}", payload.display()))?;
            let b = rushes_firmware::bundle::create(model, version, min_host_version, &bytes);
            std::fs::write(output, b)
                .with_context(|| format!("cannot write {}", output.display()))?;
            return Ok(());
        }
        _ => {}
    }
    let host = host(&cli.host_file)?;
    match cli.command {
        Cmd::Rpc { .. } | Cmd::Bundle { .. } | Cmd::Announce { .. } => {}
        Cmd::Serve { socket, state } => {
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let card =
                std::sync::Arc::new(rushes_firmware::emulated::EmulatedCard::new(&state, host));
            card.serve(&socket)
                .with_context(|| format!("cannot serve on {}", socket.display()))?;
        }
        Cmd::Discover { address } => {
            let page = initiator::discover(addr(&address)?, &host)?;
            let entries: Vec<_> = page
                .entries
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "subtype": e.subtype, "trtype": e.trtype, "traddr": e.traddr,
                        "trsvcid": e.trsvcid, "subnqn": e.subnqn, "portid": e.portid,
                    })
                })
                .collect();
            let out = serde_json::json!({"genctr": page.genctr, "numrec": page.numrec, "entries": entries});
            print_json(&out);
        }
        Cmd::Probe {
            address,
            nqn,
            verify_mib,
            verify_kib,
            digests,
            capture,
        } => {
            let recorded = capture.as_ref().map(|_| initiator::Capture::default());
            let opts = Options {
                digests,
                capture: recorded.clone(),
                ..Default::default()
            };
            let c = std::sync::Arc::new(Controller::connect(addr(&address)?, &nqn, &host, opts)?);
            let out = probe(&c, (verify_mib << 20) + (verify_kib << 10))?;
            drop(c);
            if let (Some(path), Some(recorded)) = (capture, recorded) {
                let pdus = recorded.lock().map(|p| p.clone()).unwrap_or_default();
                std::fs::write(&path, rushes_firmware::capture::encode(&pdus))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            print_json(&out);
        }
    }
    Ok(())
}

/// The command-line tools' answers go to standard output (the serving card logs to
/// standard error through tracing).
#[allow(clippy::print_stdout)]
fn print_json(v: &serde_json::Value) {
    println!("{v:#}");
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rushes-card: {e:#}");
            ExitCode::FAILURE
        }
    }
}
