//! `nfs-bench`: rushesd against a peer on the same backing folder, with the same
//! pipelined client, in the same run: NFS-Ganesha 4.3 (VFS FSAL, NFSv3, no NLM), or
//! rushesd itself with activity recording off (`--peer unrecorded`: what recording
//! costs). Prints a table of ratios (ours / peer; above 1.0 means ours is faster). Runs
//! as root.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_tests::bench::{self, expect_ok, Pipe};
use rushes_tests::nfs3_client::nfs3_types::nfs3::nfs_fh3;
use rushes_tests::{Nfs, User};

#[derive(Parser)]
#[command(about = "Benchmark rushesd host against a peer on the same folder")]
struct Args {
    /// `ganesha`, or `unrecorded`: rushesd with activity recording off.
    #[arg(long, default_value = "ganesha", value_parser = ["ganesha", "unrecorded"])]
    peer: String,
    /// Backing folder (on a real disk; it is emptied first).
    #[arg(long, default_value = "/var/tmp/rushes-bench")]
    dir: PathBuf,
    /// The rushesd binary.
    #[arg(long, default_value = "target/release/rushesd")]
    rushesd: PathBuf,
    /// Runs of every workload on each server; the table shows medians.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Size of the sequential file, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: usize,
    /// Files created, stat-ed and removed.
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// Entries of the directory listed.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Seconds to wait before each metadata phase. ext4 scans inodes freed in the last
    /// 30 s when it allocates new ones, so without the pause a server's CREATE rate
    /// depends on whether the other server removed 10,000 files just before.
    #[arg(long, default_value_t = 31)]
    settle: u64,
}

struct Server {
    name: &'static str,
    child: Child,
    nfs: SocketAddr,
    mount: SocketAddr,
    export: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_mount(server: &Server) -> Result<Nfs> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = rushes_tests::nfs3_client::Nfs3ConnectionBuilder::new(
            rushes_tests::FromAddr("127.0.0.1".parse()?),
            "127.0.0.1",
            &server.export,
        )
        .mount_port(server.mount.port())
        .nfs3_port(server.nfs.port())
        .connect_from_privileged_port(false)
        .credential(User::root().credential())
        .mount()
        .await;
        match attempt {
            Ok(conn) => {
                let root = conn.root_nfs_fh3();
                return Ok(Nfs { conn, root });
            }
            Err(e) if Instant::now() > deadline => bail!("{} did not come up: {e:?}", server.name),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn start_ganesha(dir: &Path, export: &Path) -> Result<Server> {
    if Command::new("pgrep")
        .arg("-x")
        .arg("rpcbind")
        .status()?
        .success()
    {
        // already running
    } else {
        Command::new("rpcbind")
            .arg("-w")
            .status()
            .context("Ganesha needs rpcbind (Debian package rpcbind)")?;
    }
    let conf = dir.join("ganesha.conf");
    std::fs::write(
        &conf,
        format!(
            "NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = 22049; MNT_Port = 22048; Enable_NLM = false; \
             Enable_RQUOTA = false; Bind_addr = 127.0.0.1; }}\n\
             NFSV4 {{ Graceless = true; }}\n\
             EXPORT {{ Export_Id = 1; Path = {0}; Pseudo = /bench; Access_Type = RW; Squash = No_Root_Squash; \
             Protocols = 3; Transports = TCP; SecType = sys; FSAL {{ Name = VFS; }} }}\n\
             LOG {{ Default_Log_Level = WARN; }}\n",
            export.display()
        ),
    )?;
    let child = Command::new("ganesha.nfsd")
        .args(["-F", "-N", "NIV_WARN", "-f"])
        .arg(&conf)
        .arg("-L")
        .arg(dir.join("ganesha.log"))
        .arg("-p")
        .arg(dir.join("ganesha.pid"))
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start ganesha.nfsd (Debian packages nfs-ganesha, nfs-ganesha-vfs)")?;
    Ok(Server {
        name: "NFS-Ganesha",
        child,
        nfs: "127.0.0.1:22049".parse()?,
        mount: "127.0.0.1:22048".parse()?,
        export: export.display().to_string(),
    })
}

fn start_rushesd(
    bin: &Path,
    dir: &Path,
    export: &Path,
    port: u16,
    extra: &[&str],
    name: &'static str,
) -> Result<Server> {
    let conf = dir.join(format!("rushesd-{port}.toml"));
    std::fs::write(
        &conf,
        format!(
            "[[share]]\nname = \"bench\"\npath = \"{}\"\n[[share.rule]]\nroot_squash = false\n",
            export.display()
        ),
    )?;
    let child = Command::new(bin)
        .args(["host", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&conf)
        .args(extra)
        .arg("--state-dir")
        .arg(dir.join(format!("state-{port}")))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} (make bench builds it)", bin.display()))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    Ok(Server {
        name,
        child,
        nfs: addr,
        mount: addr,
        export: "/bench".into(),
    })
}

/// One measured figure of one run.
#[derive(Clone, Copy)]
enum Unit {
    MBps,
    OpsPerSec,
    EntriesPerSec,
}

struct Row {
    label: String,
    unit: Unit,
    /// Per server (the peer, rushesd): one value per run.
    values: [Vec<f64>; 2],
}

fn per_second(n: f64, elapsed: Duration) -> f64 {
    n / elapsed.as_secs_f64()
}

fn run_workloads(
    args: &Args,
    server: &Server,
    root: &nfs_fh3,
    tag: &str,
    rows: &mut [Row],
    s: usize,
) -> Result<()> {
    let mut pipe = Pipe::connect(server.nfs, User::root())?;
    let chunk = vec![0x5au8; 1 << 20];
    let bytes = (args.size_mib << 20) as f64;
    let mut row = 0;
    // Sequential write then read, 1 MiB requests, 1 and 8 in flight.
    for depth in [1, 8] {
        let name = format!("seq-{tag}-qd{depth}");
        let fh = bench::created_handle(&pipe.call(8, &bench::create_args(root, &name))?)?;
        let write = pipe.run(
            args.size_mib,
            depth,
            |i| (7, bench::write_args(&fh, (i as u64) << 20, &chunk)),
            expect_ok,
        )?;
        let commit_started = Instant::now();
        expect_ok(&pipe.call(21, &bench::commit_args(&fh))?)?;
        let elapsed = write + commit_started.elapsed();
        rows[row].values[s].push(per_second(bytes / 1e6, elapsed));
        let read = pipe.run(
            args.size_mib,
            depth,
            |i| (6, bench::read_args(&fh, (i as u64) << 20, 1 << 20)),
            expect_ok,
        )?;
        rows[row + 1].values[s].push(per_second(bytes / 1e6, read));
        row += 2;
        expect_ok(&pipe.call(12, &bench::remove_args(root, &name))?)?;
    }
    // Metadata: create, stat (LOOKUP) and remove `files` files, 8 calls in flight.
    rustix::fs::sync();
    std::thread::sleep(Duration::from_secs(args.settle));
    let meta_name = format!("meta-{tag}");
    expect_ok(&pipe.call(9, &bench::mkdir_args(root, &meta_name))?)?;
    let meta = bench::looked_up_handle(&pipe.call(3, &bench::lookup_args(root, &meta_name))?)?;
    let n = args.files;
    let names: Vec<String> = (0..n).map(|i| format!("f{i:06}")).collect();
    let t_create = pipe.run(
        n,
        8,
        |i| (8, bench::create_args(&meta, &names[i])),
        expect_ok,
    )?;
    let t_stat = pipe.run(
        n,
        8,
        |i| (3, bench::lookup_args(&meta, &names[i])),
        expect_ok,
    )?;
    let t_remove = pipe.run(
        n,
        8,
        |i| (12, bench::remove_args(&meta, &names[i])),
        expect_ok,
    )?;
    for (k, t) in [t_create, t_stat, t_remove].into_iter().enumerate() {
        rows[row + k].values[s].push(per_second(n as f64, t));
    }
    row += 3;
    // Listing a big directory, READDIRPLUS, 64 KiB replies.
    let list = bench::looked_up_handle(&pipe.call(3, &bench::lookup_args(root, "list"))?)?;
    let started = Instant::now();
    let listed = bench::list_plus(&mut pipe, &list, 64 * 1024)?;
    let elapsed = started.elapsed();
    if listed != args.entries + 2 {
        bail!(
            "{} listed {listed} entries, expected {}",
            server.name,
            args.entries + 2
        );
    }
    rows[row].values[s].push(per_second(listed as f64, elapsed));
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn fmt(v: f64, unit: Unit) -> String {
    match unit {
        Unit::MBps => format!("{v:.0} MB/s"),
        Unit::OpsPerSec => format!("{v:.0} ops/s"),
        Unit::EntriesPerSec => format!("{v:.0} entries/s"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        rustix::process::geteuid().is_root(),
        "nfs-bench must run as root (both servers do)"
    );
    let export = args.dir.join("export");
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("cannot empty {}", args.dir.display()))?;
    }
    let list = export.join("list");
    std::fs::create_dir_all(&list)?;
    eprintln!("preparing {} entries in {}", args.entries, list.display());
    for i in 0..args.entries {
        std::fs::File::create(list.join(format!("frame_{i:07}.dpx")))?;
    }
    // Both servers export the same folder; each run works on names of its own.
    let peer = if args.peer == "ganesha" {
        start_ganesha(&args.dir, &export)?
    } else {
        start_rushesd(
            &args.rushesd,
            &args.dir,
            &export,
            24049,
            &["--no-activity"],
            "rushesd-unrecorded",
        )?
    };
    let rushesd = start_rushesd(&args.rushesd, &args.dir, &export, 23049, &[], "rushesd")?;
    let peer_name = peer.name;
    let servers = [peer, rushesd];
    let mut roots = Vec::new();
    for server in &servers {
        roots.push(wait_mount(server).await?.root);
    }

    let mut rows: Vec<Row> = Vec::new();
    for depth in [1, 8] {
        for op in ["write", "read"] {
            rows.push(Row {
                label: format!(
                    "sequential {op} {} MiB, 1 MiB requests, {depth} in flight",
                    args.size_mib
                ),
                unit: Unit::MBps,
                values: [vec![], vec![]],
            });
        }
    }
    for op in ["create", "stat (LOOKUP)", "remove"] {
        rows.push(Row {
            label: format!("{op} {} files, 8 in flight", args.files),
            unit: Unit::OpsPerSec,
            values: [vec![], vec![]],
        });
    }
    rows.push(Row {
        label: format!("list a {}-entry folder (READDIRPLUS)", args.entries),
        unit: Unit::EntriesPerSec,
        values: [vec![], vec![]],
    });

    for run in 0..args.runs {
        // Alternate who goes first, so neither always meets a warmer or cooler machine.
        let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let tag = format!("{}-{run}", servers[s].name);
            eprintln!("run {}/{}: {}", run + 1, args.runs, servers[s].name);
            run_workloads(&args, &servers[s], &roots[s], &tag, &mut rows, s)?;
        }
    }

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let against = if args.peer == "ganesha" {
        "NFS-Ganesha 4.3 (VFS FSAL)"
    } else {
        "rushesd with activity recording off (--no-activity)"
    };
    println!(
        "\nrushesd (activity recorded) vs {against}, NFSv3 over TCP on loopback, backing folder {} \
         ({} runs, medians; {} CPUs, kernel {})\n",
        export.display(),
        args.runs,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        kernel.trim()
    );
    println!("| workload | {peer_name} | rushesd | ratio (ours/peer) | ratio range |");
    println!("|---|---:|---:|---:|---:|");
    for row in &rows {
        let (g, r) = (median(&row.values[0]), median(&row.values[1]));
        // The worst and best ratio any pairing of runs could show: the noise band.
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = (
            min(&row.values[1]) / max(&row.values[0]),
            max(&row.values[1]) / min(&row.values[0]),
        );
        println!(
            "| {} | {} | {} | {:.2}x | {lo:.2}-{hi:.2}x |",
            row.label,
            fmt(g, row.unit),
            fmt(r, row.unit),
            r / g
        );
    }
    println!("\nper run ({peer_name} | rushesd):");
    for row in &rows {
        let show = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "  {}: {} | {}",
            row.label,
            show(&row.values[0]),
            show(&row.values[1])
        );
    }
    Ok(())
}
