//! `namespace-bench`: what the namespace over pools costs (issue 18), as paired ratios
//! from one run, the order alternating each repetition:
//!
//! - NFS through a service whose pools are open (every data call takes a ticket and a
//!   file with fewer blocks than bytes is looked up) against the same service with no
//!   pools, on the same folder: reads, writes and GETATTR (goal >= 0.95x);
//! - a file whose data was moved to the other pool, read through NFS, against a file
//!   whose data is in place (goal >= 0.9x);
//! - a move (copy, flush, read back from the disk, blake3, switch) against `cp` and a
//!   flush between the same two folders (goal >= 0.8x).
//!
//! Both services run in this process, as rushesd runs its NFS service; the client is
//! `rushes_tests::bench`'s pipelined one. Needs root (trusted.* xattrs, dropping caches).

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_nas::server::NfsServer;
use rushes_nas::service::Service;
use rushes_nas::share::ShareConfig;
use rushes_placement::{move_file, DataPlaces, MoveSpec, MoveWatch};
use rushes_tests::bench::{self, expect_ok, median, Pipe};
use rushes_tests::nfs3_client::nfs3_types::nfs3::nfs_fh3;
use rushes_tests::{Nfs, User};

#[derive(Parser)]
#[command(
    about = "Time NFS through the namespace over pools, reads of moved data, and moves against cp"
)]
struct Args {
    /// Where the two folders standing for pools are made (the file system measured).
    #[arg(long, default_value = "/var/tmp/rushes-namespace-bench")]
    dir: PathBuf,
    /// Size of the files read, written and moved.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
    /// Repetitions; each figure is the median of the paired ratios.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// GETATTR calls per repetition.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Calls in flight.
    #[arg(long, default_value_t = 8)]
    depth: usize,
}

const MIB: u64 = 1 << 20;

/// One served folder and a connection to it.
struct Served {
    addr: SocketAddr,
    root: nfs_fh3,
}

async fn serve(service: Service) -> Result<Served> {
    let server = NfsServer::bind("127.0.0.1:0".parse()?, service).await?;
    let addr = server.local_addr()?;
    tokio::spawn(server.run(std::future::pending()));
    let c = Nfs::mount(addr.port(), "/media", &User::root())
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    Ok(Served { addr, root: c.root })
}

fn pipe(s: &Served) -> Result<Pipe> {
    Pipe::connect(s.addr, User::root())
}

fn lookup(s: &Served, name: &str) -> Result<nfs_fh3> {
    bench::looked_up_handle(&pipe(s)?.call(3, &bench::lookup_args(&s.root, name))?)
}

/// Read the whole file in 1 MiB calls: MB/s.
fn read_rate(s: &Served, fh: &nfs_fh3, size: u64, depth: usize) -> Result<f64> {
    let calls = size.div_ceil(MIB) as usize;
    let took = pipe(s)?.run(
        calls,
        depth,
        |i| (6, bench::read_args(fh, i as u64 * MIB, MIB as u32)),
        expect_ok,
    )?;
    Ok(size as f64 / took.as_secs_f64() / 1e6)
}

/// Write a new file of `size` bytes in 1 MiB UNSTABLE calls, then COMMIT: MB/s. Starts
/// with nothing dirty left by the write before.
fn write_rate(s: &Served, name: &str, size: u64, depth: usize) -> Result<f64> {
    rustix::fs::sync();
    let mut p = pipe(s)?;
    let fh = bench::created_handle(&p.call(8, &bench::create_args(&s.root, name))?)?;
    let chunk = vec![0x5a; MIB as usize];
    let started = Instant::now();
    p.run(
        size.div_ceil(MIB) as usize,
        depth,
        |i| (7, bench::write_args(&fh, i as u64 * MIB, &chunk)),
        expect_ok,
    )?;
    expect_ok(&p.call(21, &bench::commit_args(&fh))?)?;
    let took = started.elapsed();
    expect_ok(&p.call(12, &bench::remove_args(&s.root, name))?)?;
    Ok(size as f64 / took.as_secs_f64() / 1e6)
}

/// GETATTR calls a second.
fn getattr_rate(s: &Served, fh: &nfs_fh3, calls: usize, depth: usize) -> Result<f64> {
    let args = bench::pack(fh);
    let took = pipe(s)?.run(calls, depth, |_| (1, args.clone()), expect_ok)?;
    Ok(calls as f64 / took.as_secs_f64())
}

fn drop_caches() -> Result<()> {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("cannot drop the kernel's caches")
}

fn make_file(path: &Path, size: u64, seed: u8) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let chunk: Vec<u8> = (0..MIB as usize)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    for _ in 0..size.div_ceil(MIB) {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    Ok(())
}

struct Quiet;
impl MoveWatch for Quiet {}

/// A row of paired figures: ours (the first) over the reference's, each repetition.
struct Row {
    what: &'static str,
    unit: &'static str,
    ours: Vec<f64>,
    reference: Vec<f64>,
}

impl Row {
    fn new(what: &'static str, unit: &'static str) -> Self {
        Self {
            what,
            unit,
            ours: Vec::new(),
            reference: Vec::new(),
        }
    }

    /// Measure both, the order alternating with `rep`.
    fn pair(
        &mut self,
        rep: usize,
        mut ours: impl FnMut() -> Result<f64>,
        mut reference: impl FnMut() -> Result<f64>,
    ) -> Result<()> {
        let (a, b) = if rep.is_multiple_of(2) {
            let a = ours()?;
            (a, reference()?)
        } else {
            let b = reference()?;
            (ours()?, b)
        };
        self.ours.push(a);
        self.reference.push(b);
        Ok(())
    }

    fn print(&self) {
        let ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.reference)
            .map(|(a, b)| a / b)
            .collect();
        let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {:.0} {} | {:.0} {} | {:.2}x | {low:.2}-{high:.2}x |",
            self.what,
            median(&self.ours),
            self.unit,
            median(&self.reference),
            self.unit,
            median(&ratios)
        );
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let size = args.size_mib * MIB;
    let _ = std::fs::remove_dir_all(&args.dir);
    let (home, archive) = (args.dir.join("fast"), args.dir.join("archive"));
    let share = home.join("media");
    std::fs::create_dir_all(&share)?;
    std::fs::create_dir_all(&archive)?;
    std::fs::set_permissions(&share, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    make_file(&share.join("home.bin"), size, 1)?;
    make_file(&share.join("away.bin"), size, 2)?;

    let state = tempfile::tempdir()?;
    let config = ShareConfig {
        name: "media".into(),
        path: share.clone(),
        rules: vec![Default::default()],
        allow_devices: false,
    };
    let plain = Service::new(std::slice::from_ref(&config), &state.path().join("plain"))?;
    let layered = Service::new(std::slice::from_ref(&config), &state.path().join("layered"))?;
    let places: Arc<DataPlaces> = Arc::clone(&layered.places);
    places.add_pool("fast", &home)?;
    places.add_pool("archive", &archive)?;

    let spec = |to: &str| MoveSpec {
        share: "media".into(),
        share_root: share.clone(),
        path: "/away.bin".into(),
        home: "fast".into(),
        home_root: home.clone(),
        to: to.into(),
    };
    let root_of = |pool: &str| {
        if pool == "fast" {
            home.clone()
        } else {
            archive.clone()
        }
    };
    let move_to = |to: &str| -> Result<f64> {
        drop_caches()?;
        let started = Instant::now();
        match move_file(&places, &spec(to), &root_of(to), &mut Quiet) {
            Ok(Some(_)) => Ok(size as f64 / started.elapsed().as_secs_f64() / 1e6),
            Ok(None) => bail!("away.bin is on {to} already"),
            Err(e) => bail!("move to {to}: {e}"),
        }
    };
    move_to("archive")?;

    let runtime = tokio::runtime::Runtime::new()?;
    let (plain, layered) = runtime
        .block_on(async { Ok::<_, anyhow::Error>((serve(plain).await?, serve(layered).await?)) })?;
    let home_fh = lookup(&layered, "home.bin")?;
    let away_fh = lookup(&layered, "away.bin")?;
    let plain_home = lookup(&plain, "home.bin")?;

    let mut through = [
        Row::new("READ 1 MiB, pools open vs none (warm)", "MB/s"),
        Row::new("WRITE 1 MiB + COMMIT, pools open vs none", "MB/s"),
        Row::new(
            "WRITE calibration: no pools vs no pools (truth 1.00x)",
            "MB/s",
        ),
        Row::new("GETATTR, pools open vs none", "ops/s"),
        Row::new("READ of data on the other pool vs in place (warm)", "MB/s"),
        Row::new("READ of data on the other pool vs in place (cold)", "MB/s"),
        Row::new("move (copy, flush, read back, blake3) vs cp + sync", "MB/s"),
    ];
    let d = args.depth;
    for rep in 0..args.runs {
        let [read, write, calibrate, attr, away_warm, away_cold, moves] = &mut through;
        // The last repetition's move dropped the caches: read once untimed, so both
        // servers read warm pages.
        read_rate(&layered, &home_fh, size, d)?;
        read_rate(&layered, &away_fh, size, d)?;
        read.pair(
            rep,
            || read_rate(&layered, &home_fh, size, d),
            || read_rate(&plain, &plain_home, size, d),
        )?;
        write.pair(
            rep,
            || write_rate(&layered, &format!("w-{rep}-ns.bin"), size, d),
            || write_rate(&plain, &format!("w-{rep}-plain.bin"), size, d),
        )?;
        calibrate.pair(
            rep,
            || write_rate(&plain, &format!("w-{rep}-a.bin"), size, d),
            || write_rate(&plain, &format!("w-{rep}-b.bin"), size, d),
        )?;
        attr.pair(
            rep,
            || getattr_rate(&layered, &home_fh, args.calls, d),
            || getattr_rate(&plain, &plain_home, args.calls, d),
        )?;
        away_warm.pair(
            rep,
            || read_rate(&layered, &away_fh, size, d),
            || read_rate(&layered, &home_fh, size, d),
        )?;
        away_cold.pair(
            rep,
            || {
                drop_caches()?;
                read_rate(&layered, &away_fh, size, d)
            },
            || {
                drop_caches()?;
                read_rate(&layered, &home_fh, size, d)
            },
        )?;
        // Timed home and away in turn (the other way untimed), ending on the archive for
        // the next repetition's reads; cp copies the in-place file between the folders.
        let timed_to = if rep.is_multiple_of(2) {
            "fast"
        } else {
            "archive"
        };
        if timed_to == "archive" {
            move_to("fast")?;
        }
        let copy = archive.join("cp.bin");
        moves.pair(
            rep,
            || move_to(timed_to),
            || {
                drop_caches()?;
                let started = Instant::now();
                let ok = std::process::Command::new("cp")
                    .arg(share.join("home.bin"))
                    .arg(&copy)
                    .status()?
                    .success()
                    && std::process::Command::new("sync")
                        .arg(&copy)
                        .status()?
                        .success();
                let took = started.elapsed();
                std::fs::remove_file(&copy)?;
                if !ok {
                    bail!("cp failed");
                }
                Ok(size as f64 / took.as_secs_f64() / 1e6)
            },
        )?;
        if timed_to == "fast" {
            move_to("archive")?;
        }
    }
    println!(
        "namespace-bench: {} MiB files, {} repetitions, {} calls in flight, on {}",
        args.size_mib,
        args.runs,
        args.depth,
        args.dir.display()
    );
    println!("| workload | ours | reference | ratio (median of pairs) | range |");
    println!("|---|---:|---:|---:|---:|");
    for row in &through {
        row.print();
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
