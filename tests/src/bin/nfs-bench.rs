//! `nfs-bench`: rushesd against a peer on the same backing folder, with the same
//! pipelined client, in the same run: NFS-Ganesha 4.3 (VFS FSAL, NFSv3, with NLM), or
//! rushesd itself with activity recording off (`--peer unrecorded`: what recording
//! costs). Prints a table of ratios (ours / peer; above 1.0 means ours is faster). Runs
//! as root.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_tests::bench::{self, expect_ok, median, Pipe};
use rushes_tests::bench_servers::{start_ganesha, start_rushesd, wait_mount, Server};
use rushes_tests::nfs3_client::nfs3_types::nfs3::nfs_fh3;
use rushes_tests::User;

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
    /// Repetitions of every workload, the two servers taking turns at each; the table
    /// shows medians. The sequential file and the files created are split among them.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Size of the sequential file, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: usize,
    /// Files created, stat-ed and removed (over all repetitions).
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// Entries of each folder listed (one folder per repetition, and `list` for the
    /// latency client).
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Seconds to wait before each metadata phase. ext4 scans inodes freed in the last
    /// 30 s when it allocates new ones, so without the pause a server's CREATE rate
    /// depends on whether the other server removed 10,000 files just before.
    #[arg(long, default_value_t = 31)]
    settle: u64,
    /// With `--peer unrecorded`: run rushesd with recording off in both places. The
    /// ratios then show the bench's own bias between its two server slots (the same
    /// server in both), to set beside the real comparison.
    #[arg(long)]
    calibrate: bool,
    /// Also time single requests with this client command (target/release/nfs-latency,
    /// over crates.io's nfs-rs): it gets `--target NAME=URL` for the peer, then rushesd.
    #[arg(long, value_name = "COMMAND")]
    latency_client: Option<String>,
    /// Only the single-request latencies (with --latency-client).
    #[arg(long, requires = "latency_client")]
    latency_only: bool,
    /// Time single requests with both servers running throughout (by default the one
    /// not being timed is stopped, so each is timed alone, as a box runs one).
    #[arg(long, requires = "latency_client")]
    both_running: bool,
}

/// Run the latency client against both servers, the peer first; its table goes to
/// stdout.
fn run_latency_client(command: &str, args: &Args, servers: &[Server; 2]) -> Result<()> {
    let mut words = command.split_whitespace();
    let program = words.next().context("--latency-client is empty")?;
    let mut cmd = Command::new(program);
    cmd.args(words);
    for server in servers {
        cmd.arg("--target").arg(format!(
            "{}=nfs://{}{}?nfsport={}&mountport={}&uid=0&gid=0",
            server.name,
            server.nfs.ip(),
            server.export,
            server.nfs.port(),
            server.mount.port()
        ));
    }
    // Each server timed alone: the other is stopped during its turn.
    if !args.both_running {
        for server in servers {
            cmd.arg("--pause")
                .arg(format!("{}={}", server.name, server.child.id()));
        }
    }
    cmd.arg("--entries").arg(args.entries.to_string());
    cmd.arg("--floor-dir").arg(args.dir.join("export"));
    eprintln!("timing single requests with {command}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run the latency client {program}"))?;
    anyhow::ensure!(status.success(), "the latency client failed ({status})");
    Ok(())
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
    /// Per server (the peer, rushesd): units (MB, operations, entries) per second,
    /// one value per repetition.
    values: [Vec<f64>; 2],
    /// Per server: the server's CPU time per unit of work, in microseconds, one value
    /// per repetition. Steadier than throughput on a shared machine, and it is what
    /// recording adds.
    cpu: [Vec<f64>; 2],
    /// Per server: the part of `cpu` spent in rushesd's activity threads.
    recording_cpu: [Vec<f64>; 2],
}

impl Row {
    fn new(label: String, unit: Unit) -> Self {
        Self {
            label,
            unit,
            values: Default::default(),
            cpu: Default::default(),
            recording_cpu: Default::default(),
        }
    }
}

/// Each thread's CPU time so far, in nanoseconds (`/proc/PID/task/TID/schedstat`), and
/// whether it is one of rushesd's activity threads (the recorder and the audit writer).
fn thread_cpu(pid: u32) -> std::collections::HashMap<u32, (u64, bool)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Default::default();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let recording = matches!(comm.trim(), "recorder" | "audit");
            Some((
                tid,
                (stat.split_whitespace().next()?.parse().ok()?, recording),
            ))
        })
        .collect()
}

/// How long a server is left alone after each repetition before its CPU time is read:
/// longer than rushesd's activity threads wait between rounds (the audit writer's is
/// 250 ms), so the recording a repetition caused is charged to it, and none of it
/// runs during the other server's turn.
const DRAIN: Duration = Duration::from_millis(300);

/// One repetition of a workload on server `s`: `work` returns how many units it did;
/// their rate and the server's CPU time per unit (user and system, counted per thread,
/// so threads that start meanwhile count in full, while one that ends meanwhile, like
/// tokio's idle blocking threads after 10 s, is missed) go into `row`.
fn repetition(
    row: &mut Row,
    s: usize,
    server: &Server,
    work: impl FnOnce() -> Result<f64>,
) -> Result<()> {
    let before = thread_cpu(server.child.id());
    let started = Instant::now();
    let units = work().with_context(|| format!("{}: {}", server.name, row.label))?;
    let elapsed = started.elapsed();
    std::thread::sleep(DRAIN);
    let (mut cpu_ns, mut recording_ns) = (0, 0);
    for (tid, (ns, recording)) in thread_cpu(server.child.id()) {
        let spent = ns.saturating_sub(before.get(&tid).map_or(0, |b| b.0));
        cpu_ns += spent;
        if recording {
            recording_ns += spent;
        }
    }
    row.values[s].push(units / elapsed.as_secs_f64());
    row.cpu[s].push(cpu_ns as f64 / 1e3 / units);
    row.recording_cpu[s].push(recording_ns as f64 / 1e3 / units);
    Ok(())
}

/// Who goes first in repetition `rep`: alternating, so neither server always meets a
/// warmer or cooler machine.
fn order(rep: usize) -> [usize; 2] {
    if rep.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// Every workload, the two servers taking turns at each repetition of each one, so
/// that each pair of figures was measured within a second of each other: the noise of
/// a shared machine drifts over minutes, and a pair shares it.
fn run_workloads(
    args: &Args,
    servers: &[Server; 2],
    roots: &[nfs_fh3],
    rows: &mut [Row],
) -> Result<()> {
    let mut pipes = [
        Pipe::connect(servers[0].nfs, User::root())?,
        Pipe::connect(servers[1].nfs, User::root())?,
    ];
    let reps = args.runs;
    let chunk = vec![0x5au8; 1 << 20];
    // Each repetition writes its own part of the file; each reads the whole file.
    let part_mib = (args.size_mib / reps).max(1);
    let file_mib = part_mib * reps;
    let mut row = 0;
    for depth in [1, 8] {
        let mut files = Vec::new();
        for s in 0..2 {
            let name = format!("seq-{}-qd{depth}", servers[s].name);
            files.push(bench::created_handle(
                &pipes[s].call(8, &bench::create_args(&roots[s], &name))?,
            )?);
        }
        for rep in 0..reps {
            for s in order(rep) {
                let fh = &files[s];
                let pipe = &mut pipes[s];
                let first = rep * part_mib;
                repetition(&mut rows[row], s, &servers[s], || {
                    pipe.run(
                        part_mib,
                        depth,
                        |i| {
                            let at = ((first + i) as u64) << 20;
                            (7, bench::write_args(fh, at, &chunk))
                        },
                        expect_ok,
                    )?;
                    expect_ok(&pipe.call(21, &bench::commit_args(fh))?)?;
                    Ok((part_mib << 20) as f64 / 1e6)
                })?;
            }
        }
        for rep in 0..reps {
            for s in order(rep) {
                let fh = &files[s];
                let pipe = &mut pipes[s];
                repetition(&mut rows[row + 1], s, &servers[s], || {
                    pipe.run(
                        file_mib,
                        depth,
                        |i| (6, bench::read_args(fh, (i as u64) << 20, 1 << 20)),
                        expect_ok,
                    )?;
                    Ok((file_mib << 20) as f64 / 1e6)
                })?;
            }
        }
        for s in 0..2 {
            let name = format!("seq-{}-qd{depth}", servers[s].name);
            expect_ok(&pipes[s].call(12, &bench::remove_args(&roots[s], &name))?)?;
        }
        row += 2;
    }
    // Metadata, 8 calls in flight: each repetition creates (and later removes) its own
    // share of the files; each looks up all of them.
    rustix::fs::sync();
    std::thread::sleep(Duration::from_secs(args.settle));
    // One folder for both servers, each with names of its own: where ext4 places a
    // folder changes its REMOVE cost by up to a fifth, which two folders would add to
    // the comparison.
    expect_ok(&pipes[0].call(9, &bench::mkdir_args(&roots[0], "meta"))?)?;
    let mut metas = Vec::new();
    for s in 0..2 {
        metas.push(bench::looked_up_handle(
            &pipes[s].call(3, &bench::lookup_args(&roots[s], "meta"))?,
        )?);
    }
    let per_rep = (args.files / reps).max(1);
    let names: Vec<Vec<String>> = (0..2)
        .map(|s| {
            (0..per_rep * reps)
                .map(|i| format!("s{s}-f{i:06}"))
                .collect()
        })
        .collect();
    let part = |s: usize, rep: usize| &names[s][rep * per_rep..(rep + 1) * per_rep];
    for (k, procedure) in [(0, 8u32), (1, 3), (2, 12)] {
        for rep in 0..reps {
            for s in order(rep) {
                let meta = &metas[s];
                let pipe = &mut pipes[s];
                let these = if procedure == 3 {
                    &names[s][..]
                } else {
                    part(s, rep)
                };
                repetition(&mut rows[row + k], s, &servers[s], || {
                    pipe.run(
                        these.len(),
                        8,
                        |i| {
                            let args = match procedure {
                                8 => bench::create_args(meta, &these[i]),
                                3 => bench::lookup_args(meta, &these[i]),
                                _ => bench::remove_args(meta, &these[i]),
                            };
                            (procedure, args)
                        },
                        expect_ok,
                    )?;
                    Ok(these.len() as f64)
                })?;
            }
        }
    }
    row += 3;
    // Listing a big directory, READDIRPLUS, 64 KiB replies: each repetition has a
    // folder of its own that neither server has listed, read once after the kernel's
    // caches are dropped (what an editor opening a card's folder meets), then again at
    // once (what the next client's listing meets).
    for rep in 0..reps {
        for s in order(rep) {
            let dir = bench::looked_up_handle(
                &pipes[s].call(3, &bench::lookup_args(&roots[s], &list_folder(rep)))?,
            )?;
            drop_caches()?;
            for warm in [0, 1] {
                repetition(&mut rows[row + warm], s, &servers[s], || {
                    let listed = bench::list_plus(&mut pipes[s], &dir, 64 * 1024)?;
                    if listed != args.entries + 2 {
                        bail!(
                            "{} listed {listed} entries of {}, expected {}",
                            servers[s].name,
                            list_folder(rep),
                            args.entries + 2
                        );
                    }
                    Ok(listed as f64)
                })?;
            }
        }
    }
    row += 2;
    // Locking: LOCK and UNLOCK of one file, one call at a time, as an application that
    // locks its project file around each save.
    let mut locked = Vec::new();
    let mut lockers = Vec::new();
    for s in 0..2 {
        let name = format!("lock-{}", servers[s].name);
        locked.push(bench::created_handle(
            &pipes[s].call(8, &bench::create_args(&roots[s], &name))?,
        )?);
        lockers.push(Pipe::connect(servers[s].nlm, User::root())?.for_program(100021, 4));
    }
    let nlm_granted = |body: &[u8]| -> Result<()> {
        // nlm4_res: the cookie ("cookie", 4 + 8 bytes), then the status.
        let stat = body
            .get(12..16)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        anyhow::ensure!(stat == Some(0), "NLM status {stat:?}");
        Ok(())
    };
    for rep in 0..reps {
        for s in order(rep) {
            let fh = locked[s].data.to_vec();
            let pipe = &mut lockers[s];
            repetition(&mut rows[row], s, &servers[s], || {
                pipe.run(
                    LOCK_PAIRS * 2,
                    1,
                    |i| {
                        if i % 2 == 0 {
                            (2, rushes_tests::rawrpc::lock_args(&fh, 1, false, false))
                        } else {
                            (4, rushes_tests::rawrpc::unlock_args(&fh, 1))
                        }
                    },
                    nlm_granted,
                )?;
                Ok(LOCK_PAIRS as f64)
            })?;
        }
    }
    row += 1;
    // Retransmissions: every CREATE and REMOVE is sent again with its xid, as a client
    // does after a reconnect; the second answer must be the first one (a REMOVE carried
    // out twice would answer NOENT).
    let mut repeated_noent = [0usize; 2];
    let mut reconnected = [
        Pipe::connect(servers[0].nfs, User::root())?,
        Pipe::connect(servers[1].nfs, User::root())?,
    ];
    for rep in 0..reps {
        for s in order(rep) {
            let meta = &metas[s];
            let pipe = &mut pipes[s];
            let again = &mut reconnected[s];
            let noent = &mut repeated_noent[s];
            repetition(&mut rows[row], s, &servers[s], || {
                for i in 0..RETRANSMITTED {
                    let name = format!("r{s}-{rep}-{i}");
                    for answer in pipe.call_twice(again, 8, &bench::create_args(meta, &name))? {
                        expect_ok(&answer)?;
                    }
                    let [first, second] =
                        pipe.call_twice(again, 12, &bench::remove_args(meta, &name))?;
                    expect_ok(&first)?;
                    if expect_ok(&second).is_err() {
                        *noent += 1;
                    }
                }
                Ok(RETRANSMITTED as f64)
            })?;
        }
    }
    for s in 0..2 {
        eprintln!(
            "{}: {} of {} retransmitted REMOVEs were carried out again (NOENT)",
            servers[s].name,
            repeated_noent[s],
            RETRANSMITTED * reps
        );
    }
    Ok(())
}

/// The folder repetition `rep` lists.
fn list_folder(rep: usize) -> String {
    format!("list-{rep}")
}

/// Write back and drop the kernel's page, dentry and inode caches, so the next listing
/// reads the folder from the disk.
fn drop_caches() -> Result<()> {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("cannot drop the kernel's caches")
}

/// LOCK + UNLOCK pairs in each repetition.
const LOCK_PAIRS: usize = 2000;
/// Files created and removed, each call twice, in each repetition.
const RETRANSMITTED: usize = 500;

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
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    // `list` for the latency client, `list-N` for the listing repetitions.
    let mut folders = Vec::new();
    if args.latency_client.is_some() {
        folders.push("list".to_string());
    }
    if !args.latency_only {
        folders.extend((0..args.runs).map(list_folder));
    }
    std::fs::create_dir_all(&export)?;
    eprintln!(
        "preparing {} folders of {} entries in {}",
        folders.len(),
        args.entries,
        export.display()
    );
    for folder in &folders {
        let list = export.join(folder);
        std::fs::create_dir_all(&list)?;
        for i in 0..args.entries {
            std::fs::File::create(list.join(format!("frame_{i:07}.dpx")))?;
        }
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
            "",
        )?
    };
    anyhow::ensure!(
        !args.calibrate || args.peer == "unrecorded",
        "--calibrate needs --peer unrecorded"
    );
    let ours: &[&str] = if args.calibrate {
        &["--no-activity"]
    } else {
        &[]
    };
    let rushesd = start_rushesd(
        &args.rushesd,
        &args.dir,
        &export,
        23049,
        ours,
        "rushesd",
        "",
    )?;
    let peer_name = peer.name;
    let servers = [peer, rushesd];
    let mut roots = Vec::new();
    for server in &servers {
        roots.push(wait_mount(server).await?.root);
    }

    let part_mib = (args.size_mib / args.runs).max(1);
    let per_rep = (args.files / args.runs).max(1);
    let mut rows: Vec<Row> = Vec::new();
    for depth in [1, 8] {
        for what in [
            format!("write {part_mib} MiB"),
            format!("read {} MiB", part_mib * args.runs),
        ] {
            rows.push(Row::new(
                format!("sequential {what}, 1 MiB requests, {depth} in flight"),
                Unit::MBps,
            ));
        }
    }
    for (op, n) in [
        ("create", per_rep),
        ("stat (LOOKUP)", per_rep * args.runs),
        ("remove", per_rep),
    ] {
        rows.push(Row::new(
            format!("{op} {n} files, 8 in flight"),
            Unit::OpsPerSec,
        ));
    }
    rows.push(Row::new(
        format!(
            "list a {}-entry folder (READDIRPLUS), first time, kernel's caches dropped",
            args.entries
        ),
        Unit::EntriesPerSec,
    ));
    rows.push(Row::new(
        "list the same folder again at once".to_string(),
        Unit::EntriesPerSec,
    ));
    rows.push(Row::new(
        format!("NLM LOCK + UNLOCK pairs ({LOCK_PAIRS}), 1 in flight"),
        Unit::OpsPerSec,
    ));
    rows.push(Row::new(
        format!("CREATE + REMOVE, each sent again with its xid on a 2nd connection ({RETRANSMITTED} files)"),
        Unit::OpsPerSec,
    ));

    eprintln!(
        "{} repetitions of each workload, the servers taking turns",
        args.runs
    );
    if let Some(client) = &args.latency_client {
        run_latency_client(client, &args, &servers)?;
        if args.latency_only {
            return Ok(());
        }
    }
    run_workloads(&args, &servers, &roots, &mut rows)?;

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let against = if args.peer == "ganesha" {
        "NFS-Ganesha 4.3 (VFS FSAL)"
    } else {
        "rushesd with activity recording off (--no-activity)"
    };
    let ours = if args.calibrate {
        "CALIBRATION: rushesd with recording off in the second slot too (ratios are the bench's own bias)"
    } else {
        "rushesd (activity recorded)"
    };
    println!(
        "\n{ours} vs {against}, NFSv3 over TCP on loopback, backing folder {} \
         ({} repetitions, the servers taking turns; medians; {} CPUs, kernel {})\n",
        export.display(),
        args.runs,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        kernel.trim()
    );
    println!(
        "| workload | {peer_name} | rushesd | ratio (ours/peer) | ratio range | paired ratio, median (range) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    // Each run's ratio: the two servers ran back to back, so they met the same machine.
    let paired = |v: &[Vec<f64>; 2]| -> Vec<f64> {
        v[1].iter()
            .zip(&v[0])
            .map(|(ours, peer)| ours / peer)
            .collect()
    };
    for row in &rows {
        let (g, r) = (median(&row.values[0]), median(&row.values[1]));
        // The worst and best ratio any pairing of runs could show: the noise band.
        let (lo, hi) = (
            min(&row.values[1]) / max(&row.values[0]),
            max(&row.values[1]) / min(&row.values[0]),
        );
        let p = paired(&row.values);
        println!(
            "| {} | {} | {} | {:.2}x | {lo:.2}-{hi:.2}x | {:.2}x ({:.2}-{:.2}x) |",
            row.label,
            fmt(g, row.unit),
            fmt(r, row.unit),
            r / g,
            median(&p),
            min(&p),
            max(&p)
        );
    }
    println!(
        "\nserver CPU time per unit of work (user + system, all threads, including {} ms after each repetition; above 1.0 means rushesd spends more):\n",
        DRAIN.as_millis()
    );
    println!(
        "| workload | {peer_name} | rushesd | ratio (ours/peer) | paired ratio, median (range) | rushesd's activity threads |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let per = match row.unit {
            Unit::MBps => "µs/MB",
            Unit::OpsPerSec => "µs/op",
            Unit::EntriesPerSec => "µs/entry",
        };
        let (g, r) = (median(&row.cpu[0]), median(&row.cpu[1]));
        let p = paired(&row.cpu);
        println!(
            "| {} | {g:.1} {per} | {r:.1} {per} | {:.2}x | {:.2}x ({:.2}-{:.2}x) | {:.2} {per} |",
            row.label,
            r / g,
            median(&p),
            min(&p),
            max(&p),
            median(&row.recording_cpu[1]),
        );
    }
    println!("\nper repetition ({peer_name} | rushesd):");
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
