//! `nfs-latency`: the time of single NFSv3 requests, exactly one in flight, from a client
//! that is not ours (crates.io's nfs-rs, its own RPC and XDR code), against two servers
//! taking turns at every round. Prints p50 and p99 per operation and the ratio of the
//! peer's time to ours (above 1.0: ours answers faster), then one stream of 1 MiB READs,
//! one at a time, beside what `iperf3` moves over loopback in the same run. With
//! `--floor-dir`, the file system's own part of CREATE, REMOVE and COMMIT is timed too
//! (the same calls made locally on the export's folder), which bounds the ratio any
//! server could reach on those rows.
//!
//! nfs-bench starts the servers and passes `--target NAME=URL`, the peer first.

#![allow(clippy::print_stdout)] // a command-line report

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use futures::TryStreamExt;
use nfs_rs::Mount;

const MIB: usize = 1 << 20;
/// The client's version, pinned in tests/Cargo.toml.
const NFS_RS_VERSION: &str = "0.11.1";

#[derive(Parser)]
#[command(about = "Per-request NFSv3 latency, one request in flight, against two servers")]
struct Args {
    /// NAME=nfs://HOST/EXPORT?nfsport=..&mountport=..; the first is the peer, the last
    /// is rushesd.
    #[arg(long, required = true)]
    target: Vec<String>,
    /// Rounds; the servers take turns at each, in alternating order.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Calls of each small operation per round and server.
    #[arg(long, default_value_t = 500)]
    calls: usize,
    /// Entries of the folder `list` in each export (made by nfs-bench).
    #[arg(long, default_value_t = 5000)]
    entries: usize,
    /// Size of the file read as one stream, MiB.
    #[arg(long, default_value_t = 256)]
    stream_mib: usize,
    /// Skip the iperf3 loopback reference.
    #[arg(long)]
    no_iperf: bool,
    /// The exported folder on this machine: each round also makes the file system's part
    /// of CREATE (mknodat), REMOVE (unlinkat), WRITE (1 MiB carried over loopback TCP,
    /// then pwrite) and COMMIT (fsync after a 1 MiB write) there, with no NFS, taking its
    /// turn with the servers.
    #[arg(long, value_name = "DIR")]
    floor_dir: Option<PathBuf>,
    /// NAME=PID of a target's server process: while the other targets (and the floor)
    /// take their turn it is stopped (SIGSTOP), and continued for its own, so that each
    /// server is timed alone on the machine, as a box runs one. Without it both servers
    /// run throughout, and each one's idle threads, or the other's file system events
    /// (rushesd watches the whole file system), share the cores with the one timed.
    #[arg(long, value_name = "NAME=PID")]
    pause: Vec<String>,
}

/// Operations timed, in the order printed.
const OPS: [&str; 11] = [
    "NULL",
    "GETATTR",
    "LOOKUP",
    "ACCESS",
    "CREATE",
    "REMOVE",
    "READDIRPLUS (whole folder)",
    "READ 1 MiB",
    "WRITE 1 MiB (unstable)",
    "COMMIT 1 MiB",
    "READ 1 MiB, one stream",
];

/// The servers' processes stopped while others take their turn; every one is
/// continued when this is dropped: at the end, on an error, or on ctrl-c or SIGTERM
/// (`main` drops the run then). A SIGKILL of this program leaves them stopped.
struct Turns {
    /// Per target, its server's process, when given.
    pids: Vec<Option<rustix::process::Pid>>,
}

impl Turns {
    fn new(targets: &[(String, String)], pause: &[String]) -> Result<Self> {
        let mut pids = vec![None; targets.len()];
        for p in pause {
            let (name, pid) = p
                .split_once('=')
                .with_context(|| format!("--pause {p}: expected NAME=PID"))?;
            let i = targets
                .iter()
                .position(|(n, _)| n == name)
                .with_context(|| format!("--pause {p}: no --target is named {name}"))?;
            let pid = pid.parse().ok().and_then(rustix::process::Pid::from_raw);
            pids[i] = Some(pid.with_context(|| format!("--pause {p}: not a process id"))?);
        }
        Ok(Self { pids })
    }

    /// Slot `turn`'s server runs, every other given server is stopped (all of them for
    /// the floor's turn, whose slot is past the targets).
    fn take(&self, turn: usize) -> Result<()> {
        use rustix::process::{kill_process, Signal};
        for (i, pid) in self.pids.iter().enumerate() {
            let Some(pid) = *pid else { continue };
            let signal = if i == turn {
                Signal::CONT
            } else {
                Signal::STOP
            };
            kill_process(pid, signal)
                .with_context(|| format!("cannot signal process {}", pid.as_raw_nonzero()))?;
        }
        // A stopped process is off the cores once the signal is delivered; the one
        // continued is running again at once.
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    }
}

impl Drop for Turns {
    fn drop(&mut self) {
        for pid in self.pids.iter().flatten() {
            let _ = rustix::process::kill_process(*pid, rustix::process::Signal::CONT);
        }
    }
}

struct Samples {
    /// Microseconds, per operation index of [`OPS`].
    by_op: Vec<Vec<f64>>,
    /// Bytes and seconds of the one-stream reads.
    stream: (u64, f64),
}

impl Samples {
    fn new() -> Self {
        Self {
            by_op: vec![Vec::new(); OPS.len()],
            stream: (0, 0.0),
        }
    }
}

fn op(name: &str) -> usize {
    OPS.iter()
        .position(|o| *o == name)
        .expect("known operation")
}

/// Time one awaited call into `samples`.
async fn timed<T>(
    samples: &mut Samples,
    name: &str,
    call: impl std::future::Future<Output = nfs_rs::Result<T>>,
) -> Result<T> {
    let started = Instant::now();
    let out = call.await.with_context(|| format!("{name} failed"))?;
    samples.by_op[op(name)].push(started.elapsed().as_secs_f64() * 1e6);
    Ok(out)
}

/// One round of every operation on one server; the names are the round's own.
async fn one_round(
    mount: &dyn Mount,
    tag: &str,
    round: usize,
    args: &Args,
    samples: &mut Samples,
) -> Result<()> {
    let root = mount.getfh().await;
    for _ in 0..args.calls {
        timed(samples, "NULL", mount.null()).await?;
    }
    let names: Vec<String> = (0..args.calls)
        .map(|i| format!("lat-{tag}-{round}-{i:05}"))
        .collect();
    let mut handles = Vec::with_capacity(names.len());
    for name in &names {
        let made = timed(
            samples,
            "CREATE",
            mount.create(root.clone(), name, Some(0o644)),
        )
        .await?;
        handles.push(made.fh);
    }
    for fh in &handles {
        timed(samples, "GETATTR", mount.getattr(fh.clone())).await?;
    }
    for name in &names {
        timed(samples, "LOOKUP", mount.lookup(root.clone(), name)).await?;
    }
    for fh in &handles {
        timed(samples, "ACCESS", mount.access(fh.clone(), 0x1f)).await?;
    }
    for name in &names {
        timed(samples, "REMOVE", mount.remove(root.clone(), name)).await?;
    }
    let list = mount
        .lookup(root.clone(), "list")
        .await
        .context("the folder `list` is missing from the export")?
        .fh;
    for _ in 0..3 {
        let started = Instant::now();
        let mut seen = 0usize;
        let mut stream = mount.readdirplus(list.clone()).await;
        while stream.try_next().await?.is_some() {
            seen += 1;
        }
        samples.by_op[op("READDIRPLUS (whole folder)")].push(started.elapsed().as_secs_f64() * 1e6);
        if seen < args.entries {
            bail!(
                "listing `list` gave {seen} entries, expected {}",
                args.entries
            );
        }
    }
    let data = Bytes::from((0..MIB).map(|i| i as u8).collect::<Vec<u8>>());
    let big = format!("lat-{tag}-{round}-big");
    let file = mount.create(root.clone(), &big, Some(0o644)).await?.fh;
    let writes = (args.calls / 25).max(4);
    for i in 0..writes {
        let offset = (i * MIB) as u64;
        timed(
            samples,
            "WRITE 1 MiB (unstable)",
            mount.write(file.clone(), offset, data.clone()),
        )
        .await?;
        timed(
            samples,
            "COMMIT 1 MiB",
            mount.commit(file.clone(), offset, MIB as u32),
        )
        .await?;
    }
    for i in 0..writes {
        let got = timed(
            samples,
            "READ 1 MiB",
            mount.read(file.clone(), (i * MIB) as u64, MIB as u32),
        )
        .await?;
        if got.len() != MIB || got[..16] != data[..16] {
            bail!("READ of {big} at {i} MiB gave other bytes than written");
        }
    }
    mount.remove(root.clone(), &big).await?;
    // One stream: a file of --stream-mib read front to back, 1 MiB at a time.
    let stream = format!("lat-{tag}-{round}-stream");
    let file = mount.create(root.clone(), &stream, Some(0o644)).await?.fh;
    for i in 0..args.stream_mib {
        mount
            .write(file.clone(), (i * MIB) as u64, data.clone())
            .await?;
    }
    mount.commit(file.clone(), 0, 0).await?;
    let started = Instant::now();
    let mut moved = 0u64;
    for i in 0..args.stream_mib {
        let got = timed(
            samples,
            "READ 1 MiB, one stream",
            mount.read(file.clone(), (i * MIB) as u64, MIB as u32),
        )
        .await?;
        moved += got.len() as u64;
    }
    samples.stream.0 += moved;
    samples.stream.1 += started.elapsed().as_secs_f64();
    mount.remove(root, &stream).await?;
    Ok(())
}

/// Time one local syscall into `samples`.
fn timed_local<T>(
    samples: &mut Samples,
    name: &str,
    call: impl FnOnce() -> rustix::io::Result<T>,
) -> Result<T> {
    let started = Instant::now();
    let out = call().with_context(|| format!("{name} on the local folder failed"))?;
    samples.by_op[op(name)].push(started.elapsed().as_secs_f64() * 1e6);
    Ok(out)
}

/// One round of the file system's own work in `dir`, as [`one_round`] asks a server for
/// it: as many files made and removed in the same folder, the same 1 MiB writes each
/// followed by an fsync.
fn floor_round(dir: &Path, round: usize, args: &Args, samples: &mut Samples) -> Result<()> {
    use rustix::fs::{FileType, Mode, OFlags};
    let folder = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("cannot open {}", dir.display()))?;
    let names: Vec<String> = (0..args.calls)
        .map(|i| format!("lat-floor-{round}-{i:05}"))
        .collect();
    for name in &names {
        timed_local(samples, "CREATE", || {
            rustix::fs::mknodat(
                &folder,
                name.as_str(),
                FileType::RegularFile,
                Mode::from_raw_mode(0o644),
                0,
            )
        })?;
    }
    for name in &names {
        timed_local(samples, "REMOVE", || {
            rustix::fs::unlinkat(&folder, name.as_str(), rustix::fs::AtFlags::empty())
        })?;
    }
    let data: Vec<u8> = (0..MIB).map(|i| i as u8).collect();
    let big = format!("lat-floor-{round}-big");
    let file = rustix::fs::openat(
        &folder,
        big.as_str(),
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    // A WRITE's bytes must cross the loopback too: 1 MiB sent to a peer that answers
    // with 4 bytes once it has all of it, as a server answers a WRITE.
    let (mut wire, sink) = loopback_pair()?;
    for i in 0..(args.calls / 25).max(4) {
        let started = Instant::now();
        wire.write_all(&data)?;
        let mut ack = [0u8; 4];
        wire.read_exact(&mut ack)?;
        let written = rustix::io::pwrite(&file, &data, (i * MIB) as u64)
            .with_context(|| format!("pwrite to {big} failed"))?;
        samples.by_op[op("WRITE 1 MiB (unstable)")].push(started.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(written == MIB, "short write to {big}");
        timed_local(samples, "COMMIT 1 MiB", || rustix::fs::fsync(&file))?;
    }
    drop(file);
    drop(wire);
    sink.join()
        .map_err(|_| anyhow::anyhow!("the loopback peer panicked"))??;
    rustix::fs::unlinkat(&folder, big.as_str(), rustix::fs::AtFlags::empty())?;
    Ok(())
}

/// A TCP connection over loopback to a thread that reads 1 MiB at a time and answers
/// each with 4 bytes, until the connection closes.
fn loopback_pair() -> Result<(
    std::net::TcpStream,
    std::thread::JoinHandle<std::io::Result<()>>,
)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let wire = std::net::TcpStream::connect(listener.local_addr()?)?;
    wire.set_nodelay(true)?;
    let (mut peer, _) = listener.accept()?;
    peer.set_nodelay(true)?;
    let sink = std::thread::spawn(move || {
        let mut buf = vec![0u8; MIB];
        loop {
            match peer.read_exact(&mut buf) {
                Ok(()) => peer.write_all(&[0, 0, 0, 1])?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    Ok((wire, sink))
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut ordered = values.to_vec();
    ordered.sort_by(f64::total_cmp);
    ordered[((ordered.len() as f64 * p) as usize).min(ordered.len() - 1)]
}

/// What one TCP stream moves over loopback, bytes a second (iperf3, 3 s).
fn iperf3_loopback() -> Result<f64> {
    let port = "15201";
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start iperf3 (apt install iperf3)")?;
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("iperf3")
        .args(["-c", "127.0.0.1", "-p", port, "-t", "3", "-J"])
        .output()
        .context("cannot run iperf3")?;
    let _ = server.wait();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("iperf3 printed no JSON report")?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bits| bits / 8.0)
        .context("iperf3's report has no received rate")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let targets: Vec<(String, String)> = args
        .target
        .iter()
        .map(|t| {
            t.split_once('=')
                .map(|(n, u)| (n.to_string(), u.to_string()))
                .with_context(|| format!("--target {t}: expected NAME=URL"))
        })
        .collect::<Result<_>>()?;
    if targets.len() < 2 {
        bail!("give two --target: the peer, then rushesd");
    }
    // One thread, one call awaited at a time: exactly one request in flight.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let turns = Turns::new(&targets, &args.pause)?;
    let mut samples: Vec<Samples> = targets.iter().map(|_| Samples::new()).collect();
    let mut floor = Samples::new();
    runtime.block_on(async {
        // Interrupted (ctrl-c, or SIGTERM), the run ends here: dropping it drops `turns`,
        // which continues the servers; a stopped server would keep its port and its
        // mount busy, and the signal that should stop it pending.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let run = async {
            let mut mounts = Vec::new();
            for (name, url) in &targets {
                let mount = nfs_rs::parse_url_and_mount(url)
                    .await
                    .with_context(|| format!("cannot mount {name} at {url}"))?;
                mounts.push(mount);
            }
            // The servers, then the local floor (slot targets.len()), in alternating order.
            let slots = targets.len() + usize::from(args.floor_dir.is_some());
            for round in 0..args.rounds {
                let order: Vec<usize> = if round % 2 == 0 {
                    (0..slots).collect()
                } else {
                    (0..slots).rev().collect()
                };
                for s in order {
                    turns.take(s)?;
                    match args.floor_dir.as_deref().filter(|_| s == targets.len()) {
                        Some(dir) => floor_round(dir, round, &args, &mut floor)?,
                        None => {
                            one_round(&*mounts[s], &targets[s].0, round, &args, &mut samples[s])
                                .await?
                        }
                    }
                }
            }
            drop(turns);
            for mount in &mounts {
                let _ = mount.umount().await;
            }
            anyhow::Ok(())
        };
        tokio::select! {
            done = run => done,
            _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers were continued"),
            _ = terminate.recv() => bail!("terminated; the servers were continued"),
        }
    })?;
    let (peer, ours) = (&targets[0].0, &targets[targets.len() - 1].0);
    let (a, b) = (&samples[0], &samples[samples.len() - 1]);
    println!(
        "\nOne request in flight, crates.io nfs-rs {} as the client (one thread), {} rounds \
         taking turns{}, {} calls of each small operation per round; READDIRPLUS lists a \
         {}-entry folder\n",
        NFS_RS_VERSION,
        args.rounds,
        if args.pause.is_empty() {
            ""
        } else {
            " (the server not timed stopped)"
        },
        args.calls,
        args.entries
    );
    println!(
        "| operation | {peer} p50 | {peer} p99 | {ours} p50 | {ours} p99 | ratio p50 ({peer}/{ours}) | ratio p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, name) in OPS.iter().enumerate() {
        let (x, y) = (&a.by_op[i], &b.by_op[i]);
        let row = [
            percentile(x, 0.5),
            percentile(x, 0.99),
            percentile(y, 0.5),
            percentile(y, 0.99),
        ];
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}x | {:.2}x |",
            row[0],
            row[1],
            row[2],
            row[3],
            row[0] / row[2],
            row[1] / row[3]
        );
    }
    if args.floor_dir.is_some() {
        // A server's answer can be no faster than the file system's part plus a bare
        // round trip (ours: the NULL row).
        let trip = percentile(&b.by_op[op("NULL")], 0.5);
        println!(
            "\nThe file system's own part, the same calls made on the export's folder here \
             with no NFS (p50), and the best p50 ratio a server could show against {peer} \
             if it added nothing but a NULL's round trip ({trip:.0} µs):\n"
        );
        println!("| operation | local call | local p50 | {peer} p50 | best possible ratio |");
        println!("|---|---|---:|---:|---:|");
        for (name, call) in [
            ("CREATE", "mknodat"),
            ("REMOVE", "unlinkat"),
            (
                "WRITE 1 MiB (unstable)",
                "1 MiB over loopback TCP, then pwrite",
            ),
            ("COMMIT 1 MiB", "fsync after a 1 MiB pwrite"),
        ] {
            let local = percentile(&floor.by_op[op(name)], 0.5);
            let theirs = percentile(&a.by_op[op(name)], 0.5);
            println!(
                "| {name} | {call} | {local:.0} µs | {theirs:.0} µs | {:.2}x |",
                theirs / (local + trip)
            );
        }
    }
    let rate = |s: &Samples| s.stream.0 as f64 / s.stream.1;
    let (peer_rate, our_rate) = (rate(a), rate(b));
    print!(
        "\nOne stream of 1 MiB READs, one at a time: {peer} {:.0} MB/s, {ours} {:.0} MB/s ({:.2}x)",
        peer_rate / 1e6,
        our_rate / 1e6,
        our_rate / peer_rate
    );
    if args.no_iperf {
        println!();
    } else {
        let loopback = iperf3_loopback()?;
        println!(
            "; iperf3 over loopback {:.0} MB/s: {ours} reaches {:.0} %",
            loopback / 1e6,
            100.0 * our_rate / loopback
        );
    }
    Ok(())
}
