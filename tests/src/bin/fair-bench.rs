//! `fair-bench`: does one client's load stall another's calls? An "editor" (from
//! 127.0.0.2) makes one GETATTR, then one 1 MiB READ, at a time, first with the server to
//! itself, then while a "render" client (from 127.0.0.3) keeps 64 calls in flight of
//! 1 MiB WRITEs and READs. Both rushesd and NFS-Ganesha serve the same folder and take
//! turns at every round, the order alternating. Prints p50 and p99 of the editor's calls
//! idle and under load, the ratio of loaded p99 to idle p99 (goal: at most 2), and
//! Ganesha's loaded p99 over ours (above 1.0: ours is better). Then a playback phase on
//! rushesd alone: a reader paced to a rate that a `[[rate]]` rule reserves for it, alone
//! and while four render clients flood, beside the same reader from an address the rule
//! does not cover (goal: the reserved reader keeps 95 % of its rate). Runs as root.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use rushes_tests::bench::{self, expect_ok, Pipe};
use rushes_tests::bench_servers::{start_ganesha, start_rushesd, wait_mount, Server};
use rushes_tests::nfs3_client::nfs3_types::nfs3::{self as t, nfs_fh3};
use rushes_tests::User;

#[derive(Parser)]
#[command(
    about = "An editor's latency while another client floods the server: rushesd and NFS-Ganesha"
)]
struct Args {
    /// Backing folder (on a real disk; it is emptied first).
    #[arg(long, default_value = "/var/tmp/rushes-fair")]
    dir: PathBuf,
    /// The rushesd binary.
    #[arg(long, default_value = "target/release/rushesd")]
    rushesd: PathBuf,
    /// Rounds; in each, both servers run the idle and the loaded phase.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// The editor's GETATTRs per phase.
    #[arg(long, default_value_t = 5000)]
    getattrs: usize,
    /// The editor's 1 MiB READs per phase.
    #[arg(long, default_value_t = 300)]
    reads: usize,
    /// Calls the render client keeps in flight.
    #[arg(long, default_value_t = 64)]
    depth: usize,
    /// CPU priority (nice) of the render client's threads: 19 by default, so that on a
    /// machine where both clients share the server's cores, the render client's own work
    /// (it stands for another machine) does not take the editor's; 0 to let it compete.
    #[arg(long, default_value_t = 19)]
    render_nice: i32,
    /// The playback phase: the rate a reader paces itself to and rushesd reserves for it
    /// (`reserve_mb_s`), MB/s.
    #[arg(long, default_value_t = 1000)]
    playback_mb_s: u64,
    /// Render clients flooding during the playback phase (each as the render client).
    #[arg(long, default_value_t = 4)]
    flooders: u8,
    /// Seconds each playback measurement lasts.
    #[arg(long, default_value_t = 5.0)]
    playback_secs: f64,
    /// Size of each file read or written, MiB.
    #[arg(long, default_value_t = 256)]
    file_mib: u64,
}

const MIB: u64 = 1 << 20;
const GETATTR: u32 = 1;
const READ: u32 = 6;
const WRITE: u32 = 7;

/// The editor's latencies of one phase, in microseconds.
#[derive(Default, Clone)]
struct Samples {
    getattr: Vec<f64>,
    read: Vec<f64>,
}

struct Handles {
    stat: nfs_fh3,
    clip: nfs_fh3,
    render_src: nfs_fh3,
    render_out: nfs_fh3,
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn timed(pipe: &mut Pipe, procedure: u32, args: &[u8]) -> Result<f64> {
    let started = Instant::now();
    let body = pipe.call(procedure, args)?;
    let us = started.elapsed().as_secs_f64() * 1e6;
    expect_ok(&body)?;
    Ok(us)
}

/// The editor's calls, one at a time.
fn editor(addr: SocketAddr, h: &Handles, args: &Args, into: &mut Samples) -> Result<()> {
    let mut pipe = Pipe::connect_from(IpAddr::from([127, 0, 0, 2]), addr, User::root())?;
    let getattr = bench::pack(&t::GETATTR3args {
        object: h.stat.clone(),
    });
    for _ in 0..args.getattrs {
        into.getattr.push(timed(&mut pipe, GETATTR, &getattr)?);
    }
    for i in 0..args.reads as u64 {
        let read = bench::read_args(&h.clip, (i % args.file_mib) * MIB, MIB as u32);
        into.read.push(timed(&mut pipe, READ, &read)?);
    }
    Ok(())
}

/// The render client (from 127.0.0.3): `depth` 1 MiB WRITEs and READs in flight until
/// `stop`; returns MB/s.
fn render(addr: SocketAddr, h: &Handles, args: &Args, stop: &AtomicBool) -> Result<f64> {
    render_from(IpAddr::from([127, 0, 0, 3]), addr, h, args, stop)
}

fn render_from(
    source: IpAddr,
    addr: SocketAddr,
    h: &Handles,
    args: &Args,
    stop: &AtomicBool,
) -> Result<f64> {
    // The render client stands for another machine: its own CPU should not count
    // against the editor's calls on this one.
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), args.render_nice)?;
    let mut pipe = Pipe::connect_from(source, addr, User::root())?;
    let data = vec![0x5au8; MIB as usize];
    let started = Instant::now();
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let done = pipe.keep_busy(args.depth, stop, &answered, |i| {
        let offset = ((i as u64 / 2) % args.file_mib) * MIB;
        if i % 2 == 0 {
            (WRITE, bench::write_args(&h.render_out, offset, &data))
        } else {
            (READ, bench::read_args(&h.render_src, offset, MIB as u32))
        }
    })?;
    Ok(done as f64 * MIB as f64 / 1e6 / started.elapsed().as_secs_f64())
}

/// A playback reader from `source`: 1 MiB READs of the clip, 8 in flight (a kernel
/// client's readahead), paced to `mb_s`, for `secs`; returns the MB/s it got.
fn playback(source: IpAddr, addr: SocketAddr, h: &Handles, mb_s: u64, secs: f64) -> Result<f64> {
    let mut pipe = Pipe::connect_from(source, addr, User::root())?;
    let stop = Arc::new(AtomicBool::new(false));
    let timer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let per_call = Duration::from_secs_f64(MIB as f64 / (mb_s as f64 * 1e6));
    let done = pipe.keep_busy(8, &stop, &answered, |i| {
        let due = started + per_call * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        (
            READ,
            bench::read_args(&h.clip, (i as u64 % 256) * MIB, MIB as u32),
        )
    })?;
    let _ = timer.join();
    Ok(done as f64 * MIB as f64 / 1e6 / started.elapsed().as_secs_f64())
}

/// The playback phase, on a rushesd that reserves `--playback-mb-s` for 127.0.0.4: a
/// reader paced to it alone, then while `--flooders` render clients flood, from the
/// reserved address and from one the rule does not cover (127.0.0.5).
async fn playback_phase(args: &Arc<Args>, export: &std::path::Path) -> Result<()> {
    let rule = format!(
        "\n[[rate]]\nname = \"suite-3\"\nclients = [\"127.0.0.4/32\"]\nreserve_mb_s = {}\n",
        args.playback_mb_s
    );
    let server = start_rushesd(
        &args.rushesd,
        &args.dir,
        export,
        23050,
        &[],
        "rushesd (with a reservation)",
        &rule,
    )?;
    let root = wait_mount(&server).await?.root;
    let mut pipe = Pipe::connect(server.nfs, User::root())?;
    let h = Arc::new(Handles {
        stat: lookup(&mut pipe, &root, "project.prproj")?,
        clip: lookup(&mut pipe, &root, "clip.mov")?,
        render_src: lookup(&mut pipe, &root, "render-src.exr")?,
        render_out: lookup(&mut pipe, &root, "render-out.exr")?,
    });
    let addr = server.nfs;
    let mut rows = Vec::new();
    for (who, last) in [
        ("reserved (127.0.0.4)", 4u8),
        ("not reserved (127.0.0.5)", 5),
    ] {
        let source = IpAddr::from([127, 0, 0, last]);
        eprintln!("playback, {who}: alone");
        let alone = playback(source, addr, &h, args.playback_mb_s, args.playback_secs)?;
        eprintln!("playback, {who}: with {} render clients", args.flooders);
        let stop = Arc::new(AtomicBool::new(false));
        let floods: Vec<_> = (0..args.flooders)
            .map(|n| {
                let (h, args, stop) = (Arc::clone(&h), Arc::clone(args), Arc::clone(&stop));
                let from = IpAddr::from([127, 0, 1, n + 1]);
                std::thread::spawn(move || render_from(from, addr, &h, &args, &stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let loaded = playback(source, addr, &h, args.playback_mb_s, args.playback_secs);
        stop.store(true, Ordering::Relaxed);
        let mut flooded = 0.0;
        for f in floods {
            flooded += f.join().expect("render thread")?;
        }
        rows.push((who, alone, loaded?, flooded));
    }
    println!(
        "\nA playback reader paced to {} MB/s (1 MiB READs, 8 in flight; {} s each), on a rushesd reserving {} MB/s for 127.0.0.4, alone and while {} render clients (nice {}) each keep {} 1 MiB WRITEs and READs in flight\n",
        args.playback_mb_s, args.playback_secs, args.playback_mb_s, args.flooders, args.render_nice, args.depth
    );
    println!("| reader | alone | under load | kept | render clients together |");
    println!("|---|---|---|---|---|");
    for (who, alone, loaded, flooded) in rows {
        println!(
            "| {who} | {alone:.0} MB/s | {loaded:.0} MB/s | {:.1} % | {flooded:.0} MB/s |",
            100.0 * loaded / alone
        );
    }
    Ok(())
}

fn lookup(pipe: &mut Pipe, root: &nfs_fh3, name: &str) -> Result<nfs_fh3> {
    bench::looked_up_handle(&pipe.call(3, &bench::lookup_args(root, name))?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(
        rustix::process::geteuid().is_root(),
        "fair-bench must run as root (both servers do)"
    );
    anyhow::ensure!(args.rounds > 0 && args.getattrs > 0 && args.reads > 0);
    let export = args.dir.join("export");
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("cannot empty {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&export)?;
    eprintln!(
        "preparing two {} MiB files in {}",
        args.file_mib,
        export.display()
    );
    let block = vec![0xa5u8; MIB as usize];
    for name in ["clip.mov", "render-src.exr"] {
        use std::io::Write;
        let mut f = std::fs::File::create(export.join(name))?;
        for _ in 0..args.file_mib {
            f.write_all(&block)?;
        }
    }
    std::fs::write(export.join("project.prproj"), b"bins")?;
    std::fs::write(export.join("render-out.exr"), b"")?;

    let servers: [Server; 2] = [
        start_ganesha(&args.dir, &export)?,
        start_rushesd(&args.rushesd, &args.dir, &export, 23049, &[], "rushesd", "")?,
    ];
    let mut handles = Vec::new();
    for server in &servers {
        let root = wait_mount(server).await?.root;
        let mut pipe = Pipe::connect(server.nfs, User::root())?;
        handles.push(Arc::new(Handles {
            stat: lookup(&mut pipe, &root, "project.prproj")?,
            clip: lookup(&mut pipe, &root, "clip.mov")?,
            render_src: lookup(&mut pipe, &root, "render-src.exr")?,
            render_out: lookup(&mut pipe, &root, "render-out.exr")?,
        }));
    }

    // [server][idle, loaded][round]
    let mut samples = vec![vec![Vec::<Samples>::new(); 2]; 2];
    let mut render_mbps = vec![Vec::new(); 2];
    for round in 0..args.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let addr = servers[s].nfs;
            let h = &handles[s];
            eprintln!(
                "round {} of {}: {}",
                round + 1,
                args.rounds,
                servers[s].name
            );
            let mut idle = Samples::default();
            editor(addr, h, &args, &mut idle)
                .with_context(|| format!("the editor, {} idle", servers[s].name))?;
            samples[s][0].push(idle);
            let mut loaded = Samples::default();
            let stop = Arc::new(AtomicBool::new(false));
            let load = {
                let (h, args, stop) = (Arc::clone(h), Arc::clone(&args), Arc::clone(&stop));
                std::thread::spawn(move || render(addr, &h, &args, &stop))
            };
            std::thread::sleep(Duration::from_millis(500));
            let edited = editor(addr, h, &args, &mut loaded);
            stop.store(true, Ordering::Relaxed);
            let mbps = load
                .join()
                .expect("render thread")
                .with_context(|| format!("the render client, {}", servers[s].name))?;
            edited.with_context(|| format!("the editor, {} under load", servers[s].name))?;
            samples[s][1].push(loaded);
            render_mbps[s].push(mbps);
        }
    }

    println!(
        "\nAn editor's calls, one at a time, idle and while a render client (nice {}) keeps {} 1 MiB WRITEs and READs in flight (µs; medians over {} rounds of each round's percentile)\n",
        args.render_nice, args.depth, args.rounds
    );
    println!(
        "| call | server | idle p50 | idle p99 | loaded p50 | loaded p99 | loaded p99 / idle p99 | render client meanwhile |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut loaded_p99 = [[0.0; 2]; 2];
    for (c, call) in ["GETATTR", "READ 1 MiB"].iter().enumerate() {
        for s in 0..2 {
            // The median over the rounds of each round's percentile: one bad moment of
            // the machine moves one round, not the figure.
            let figure = |phase: usize, p: f64| {
                let per_round: Vec<f64> = samples[s][phase]
                    .iter()
                    .map(|r| percentile(if c == 0 { &r.getattr } else { &r.read }, p))
                    .collect();
                bench::median(&per_round)
            };
            let (idle_p99, loaded_p50) = (figure(0, 0.99), figure(1, 0.5));
            loaded_p99[c][s] = figure(1, 0.99);
            println!(
                "| {call} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.0} MB/s |",
                servers[s].name,
                figure(0, 0.5),
                idle_p99,
                loaded_p50,
                loaded_p99[c][s],
                loaded_p99[c][s] / idle_p99,
                bench::median(&render_mbps[s]),
            );
        }
    }
    println!(
        "\nLoaded p99, Ganesha's over rushesd's (above 1.0: rushesd's editor waits less): GETATTR {:.2}x, READ {:.2}x",
        loaded_p99[0][0] / loaded_p99[0][1],
        loaded_p99[1][0] / loaded_p99[1][1]
    );
    drop(servers);
    playback_phase(&args, &export).await
}
