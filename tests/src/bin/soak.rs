//! `soak`: hours of mixed NFS and SMB load on the appliance, booted in QEMU as `make run`
//! does, and what it does to rushesd over time. From the host, all at once and without
//! pause: large files written over NFS (UNSTABLE writes and a COMMIT) and read back,
//! small files created and removed, metadata (LOOKUP, GETATTR, ACCESS), NLM locks taken
//! and given back, and large files put and got over SMB with Samba's smbclient. Every
//! interval it prints a row: throughput and operations of each kind, errors, and
//! rushesd's resident memory and open descriptors, and the slowest fsync on the host's
//! disk and the slowest NLM NULL round trip to the guest (so that a minute in which
//! everything slowed says where the stall was); after a row with new errors, the
//! guest's last kernel and service messages. At the end, the first and last
//! samples side by side. Exits non-zero when any operation failed or read back wrong.
//! `make soak` runs it (default two hours); needs `make image` first.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_tests::guest::{ctl, payload, sh};
use rushes_tests::nfs3_client::nfs3_types::nfs3 as t;
use rushes_tests::rawrpc::{lock_args, nlm_stat, udp_call, unlock_args};
use rushes_tests::vm::{copy_image, enable_debug_shell, Vm};
use rushes_tests::{Nfs, User};

#[derive(Parser)]
#[command(
    about = "Mixed NFS and SMB load on the appliance in QEMU, with rushesd's memory \
                   and descriptors over time"
)]
struct Args {
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 120)]
    minutes: u64,
    /// Seconds between two rows of the report.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Size of each large file, in MiB (NFS and SMB).
    #[arg(long, default_value_t = 32)]
    large_mib: usize,
}

const SHARE: &str = "soak";
const EXPORT: &str = "/soak";
const EDITOR_PW: &str = "soak-Editor-7";
const SHORT: Duration = Duration::from_secs(120);

/// What the workers did since the start; the report takes differences.
#[derive(Default)]
struct Counters {
    nfs_written: AtomicU64,
    nfs_read: AtomicU64,
    smb_bytes: AtomicU64,
    small_files: AtomicU64,
    metadata_ops: AtomicU64,
    locks: AtomicU64,
    errors: AtomicU64,
    /// The slowest host-disk write+fsync and the slowest NLM NULL round trip to the
    /// guest since the last row, in microseconds: a minute whose calls all slowed says
    /// whether the host's disk or the guest stalled.
    host_fsync_max_us: AtomicU64,
    guest_null_max_us: AtomicU64,
    /// The first few errors, word for word.
    first_errors: Mutex<Vec<String>>,
}

impl Counters {
    fn error(&self, what: &str, e: impl std::fmt::Display) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        let line = format!("{what}: {e}");
        eprintln!("error: {line}");
        if n < 20 {
            self.first_errors.lock().expect("errors").push(line);
        }
    }
}

/// rushesd's resident memory (KiB) and open descriptors, read in the guest.
fn rushesd_sample(vm: &Vm) -> Result<(u64, u64)> {
    let (out, _) = vm.run(
        "for d in /proc/[0-9]*; do read c < $d/comm 2>/dev/null; if [ \"$c\" = rushesd ]; then \
         grep VmRSS $d/status; n=0; for f in $d/fd/*; do n=$((n+1)); done; echo fds=$n; break; fi; done",
        SHORT,
    )?;
    let rss = out
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no VmRSS for rushesd in {out:?}"))?;
    let fds = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("fds="))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no descriptor count for rushesd in {out:?}"))?;
    Ok((rss, fds))
}

/// One worker's rounds until `until`; a round that fails (or panics, as the test
/// client does on a broken connection) is counted and the next one starts afresh.
async fn rounds<F, Fut>(name: &'static str, until: Instant, counters: Arc<Counters>, round: F)
where
    F: Fn(u64, Arc<Counters>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        match tokio::spawn(round(n, Arc::clone(&counters))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                counters.error(name, format!("{e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                counters.error(name, e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn status(what: &str, s: t::nfsstat3) -> anyhow::Error {
    anyhow::anyhow!("{what}: {s:?}")
}

/// A large file: UNSTABLE writes of 1 MiB, a COMMIT, then read back and compared.
async fn nfs_large(port: u16, n: u64, mib: usize, c: Arc<Counters>) -> Result<()> {
    let user = User::new(1000, 1000);
    let mut nfs = Nfs::mount(port, EXPORT, &user)
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let data = payload(n as u32, mib << 20);
    let name = "large.bin";
    let root = nfs.root.clone();
    let fh = match nfs.create(&root, name, 0o644).await {
        Err(t::nfsstat3::NFS3ERR_EXIST) => nfs
            .lookup(&root, name)
            .await
            .map_err(|s| status("lookup", s))?,
        other => other.map_err(|s| status("create", s))?,
    };
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        nfs.write(&fh, (i as u64) << 20, chunk, t::stable_how::UNSTABLE)
            .await
            .map_err(|s| status("write", s))?;
        c.nfs_written
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    nfs.commit(&fh).await.map_err(|s| status("commit", s))?;
    let back = nfs.read_all(&fh).await.map_err(|s| status("read", s))?;
    c.nfs_read.fetch_add(back.len() as u64, Ordering::Relaxed);
    if back.len() < data.len() || back[..data.len()] != data[..] {
        bail!("{name} read back differs from what was written and committed (round {n})");
    }
    Ok(())
}

/// Fifty small files made, looked at and removed in a folder of their own.
async fn nfs_small(port: u16, n: u64, c: Arc<Counters>) -> Result<()> {
    let user = User::new(1000, 1000);
    let mut nfs = Nfs::mount(port, EXPORT, &user)
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let root = nfs.root.clone();
    let dir = match nfs.mkdir(&root, "small", 0o755).await {
        Err(t::nfsstat3::NFS3ERR_EXIST) => nfs
            .lookup(&root, "small")
            .await
            .map_err(|s| status("lookup", s))?,
        other => other.map_err(|s| status("mkdir", s))?,
    };
    let body = payload(n as u32, 4096);
    for i in 0..50 {
        let name = format!("f{i:02}");
        let fh = match nfs.create(&dir, &name, 0o644).await {
            Err(t::nfsstat3::NFS3ERR_EXIST) => nfs
                .lookup(&dir, &name)
                .await
                .map_err(|s| status("lookup", s))?,
            other => other.map_err(|s| status("create", s))?,
        };
        nfs.write(&fh, 0, &body, t::stable_how::FILE_SYNC)
            .await
            .map_err(|s| status("write", s))?;
        c.small_files.fetch_add(1, Ordering::Relaxed);
    }
    for i in 0..50 {
        let name = format!("f{i:02}");
        let fh = nfs
            .lookup(&dir, &name)
            .await
            .map_err(|s| status("lookup", s))?;
        let attrs = nfs.getattr(&fh).await.map_err(|s| status("getattr", s))?;
        if attrs.size != body.len() as u64 {
            bail!("small/{name} is {} bytes, 4096 were written", attrs.size);
        }
        nfs.access(&fh, 0x3f)
            .await
            .map_err(|s| status("access", s))?;
        c.metadata_ops.fetch_add(3, Ordering::Relaxed);
    }
    for i in 0..50 {
        nfs.remove(&dir, &format!("f{i:02}"))
            .await
            .map_err(|s| status("remove", s))?;
    }
    Ok(())
}

/// An NLM lock on a file of the share, taken and given back (over UDP, as Linux does).
fn nlm_lock(port: u16, fh: &[u8], n: u64, c: &Counters) -> Result<()> {
    let nfs: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let me = UdpSocket::bind("127.0.0.1:0")?;
    let xid = (n as u32).wrapping_mul(2);
    let got = nlm_stat(&udp_call(
        &me,
        nfs,
        xid,
        100021,
        4,
        2,
        &lock_args(fh, 7, false, false),
    ));
    if got != 0 {
        bail!("NLM LOCK answered {got}, not granted");
    }
    let freed = nlm_stat(&udp_call(
        &me,
        nfs,
        xid + 1,
        100021,
        4,
        4,
        &unlock_args(fh, 7),
    ));
    if freed != 0 {
        bail!("NLM UNLOCK answered {freed}");
    }
    c.locks.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Once a second until `until`: a 4 KiB write and fsync in `work` (the host's disk,
/// where the guest's disk images are) and an NLM NULL call over UDP to the guest (its
/// kernel and rushesd answering), each timed; the slowest of each is kept for the row.
fn stall_probe(port: u16, work: PathBuf, until: Instant, c: Arc<Counters>) {
    const GIVE_UP: Duration = Duration::from_secs(60);
    let to: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let sock = match UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => return c.error("stall probe", e),
    };
    let _ = sock.set_read_timeout(Some(GIVE_UP));
    let probe_file = work.join("stall-probe.bin");
    let block = vec![0x5au8; 4096];
    let mut xid = 0x5000_0000u32;
    let mut buf = vec![0u8; 1024];
    while Instant::now() < until {
        let t = Instant::now();
        let wrote = std::fs::File::create(&probe_file).and_then(|mut f| {
            std::io::Write::write_all(&mut f, &block)?;
            f.sync_all()
        });
        if wrote.is_ok() {
            c.host_fsync_max_us
                .fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        xid = xid.wrapping_add(1);
        let record = rushes_tests::rpc_record(xid, 100021, 4, 0, None, &[]);
        let t = Instant::now();
        if sock.send_to(&record[4..], to).is_ok() {
            // Until our answer (a late one to an earlier call is skipped) or GIVE_UP.
            loop {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) if n >= 4 && buf[..4] != xid.to_be_bytes() => continue,
                    _ => break,
                }
            }
            c.guest_null_max_us
                .fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
    }
}

/// The guest's dirty and in-flight page cache, its I/O and CPU pressure, and what its
/// kernel and services said last: printed after a row with new errors.
fn guest_logs(vm: &Vm) {
    match vm.run(
        "grep -E '^(Dirty|Writeback):' /proc/meminfo; cat /proc/pressure/io /proc/pressure/cpu; \
         echo ---; dmesg | tail -n 15; echo ---; tail -n 40 /run/rushes/log.txt",
        SHORT,
    ) {
        Ok((out, _)) => {
            println!("--- the guest's last kernel and service messages:");
            for line in out.lines() {
                println!("    {line}");
            }
        }
        Err(e) => println!("--- the guest's logs could not be read: {e:#}"),
    }
}

/// A large file put over SMB with smbclient, got back and compared.
fn smb_large(smb_port: u16, work: &Path, n: u64, mib: usize, c: &Counters) -> Result<()> {
    let put = work.join("smb-put.bin");
    let got = work.join("smb-got.bin");
    let data = payload(n as u32 ^ 0x5a5a, mib << 20);
    std::fs::write(&put, &data)?;
    let _ = std::fs::remove_file(&got);
    let out = std::process::Command::new("smbclient")
        .arg(format!("//127.0.0.1/{SHARE}"))
        .args(["-p", &smb_port.to_string(), "-m", "SMB3"])
        .arg("-U")
        .arg(format!("editor%{EDITOR_PW}"))
        .arg("-c")
        .arg(format!(
            "put {} smb.bin; get smb.bin {}; ls",
            put.display(),
            got.display()
        ))
        .output()
        .context("cannot run smbclient (Debian package smbclient)")?;
    if !out.status.success() {
        bail!(
            "smbclient failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let back = std::fs::read(&got).context("smbclient got nothing back")?;
    if back != data {
        bail!("smb.bin read back over SMB differs from what was put (round {n})");
    }
    c.smb_bytes
        .fetch_add(2 * data.len() as u64, Ordering::Relaxed);
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let work = tempfile::tempdir()?;
    let image = copy_image(work.path())?;
    enable_debug_shell(&image)?;
    let smb_port = rushes_tests::free_tcp_port();
    let smb_port_s = smb_port.to_string();
    println!("booting the appliance (under TCG this takes a minute or two)...");
    let mut vm = Vm::boot_with(
        &image,
        work.path(),
        &[("RUSHES_NVME_SIZE", "4G"), ("RUSHES_SMB_PORT", &smb_port_s)],
    )?;
    vm.wait_for("rushes: ready", 0, Duration::from_secs(900))?;
    vm.wait_for("smbd is ready", 0, SHORT)?;
    ctl(
        &vm,
        "pool create soak --level single nvme0n1 --wait",
        0,
        SHORT,
    );
    sh(
        &vm,
        &format!("echo '{EDITOR_PW}' | rushesctl user add editor --uid 1000"),
    );
    ctl(
        &vm,
        &format!("share create {SHARE} --pool soak --users editor"),
        0,
        SHORT,
    );
    let port = vm.port;

    let runtime = tokio::runtime::Runtime::new()?;
    // The file the lock worker locks, made once.
    let lock_fh: Vec<u8> = runtime.block_on(async {
        let user = User::new(1000, 1000);
        let mut nfs = Nfs::mount(port, EXPORT, &user)
            .await
            .map_err(|e| anyhow::anyhow!("mount {EXPORT}: {e:?}"))?;
        let fh = nfs
            .put_file("locked.txt", b"locked by NLM")
            .await
            .map_err(|s| status("create locked.txt", s))?;
        anyhow::Ok(fh.data.to_vec())
    })?;

    let counters = Arc::new(Counters::default());
    let start = rushesd_sample(&vm)?;
    let began = Instant::now();
    let until = began + Duration::from_secs(args.minutes * 60);
    let mib = args.large_mib;
    let smb_dir: PathBuf = work.path().to_path_buf();
    let workers = {
        let c = Arc::clone(&counters);
        let lock_fh = Arc::new(lock_fh);
        runtime.spawn(async move {
            let large = rounds("NFS large file", until, Arc::clone(&c), move |n, c| {
                nfs_large(port, n, mib, c)
            });
            let small = rounds("NFS small files", until, Arc::clone(&c), move |n, c| {
                nfs_small(port, n, c)
            });
            let locks = rounds("NLM lock", until, Arc::clone(&c), move |n, c| {
                let fh = Arc::clone(&lock_fh);
                async move {
                    tokio::task::spawn_blocking(move || {
                        let r = nlm_lock(port, &fh, n, &c);
                        std::thread::sleep(Duration::from_millis(200));
                        r
                    })
                    .await?
                }
            });
            let smb = rounds("SMB large file", until, Arc::clone(&c), move |n, c| {
                let dir = smb_dir.clone();
                async move {
                    tokio::task::spawn_blocking(move || smb_large(smb_port, &dir, n, mib, &c))
                        .await?
                }
            });
            tokio::join!(large, small, locks, smb);
        })
    };
    let probe = {
        let c = Arc::clone(&counters);
        let dir = work.path().to_path_buf();
        std::thread::spawn(move || stall_probe(port, dir, until, c))
    };

    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>9} {:>5} {:>10} {:>10}",
        "min",
        "NFS w MB/s",
        "NFS r MB/s",
        "SMB MB/s",
        "small f/s",
        "meta op/s",
        "locks/s",
        "errors",
        "RSS MiB",
        "fds",
        "host ms",
        "guest ms"
    );
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>9} {:>5} {:>10} {:>10}",
        "", "", "", "", "", "", "", "", "", "", "(fsync)", "(NULL)"
    );
    let take = |c: &Counters| {
        [
            c.nfs_written.load(Ordering::Relaxed),
            c.nfs_read.load(Ordering::Relaxed),
            c.smb_bytes.load(Ordering::Relaxed),
            c.small_files.load(Ordering::Relaxed),
            c.metadata_ops.load(Ordering::Relaxed),
            c.locks.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
        ]
    };
    let mut last = take(&counters);
    let mut last_at = Instant::now();
    let mut end = start;
    while !workers.is_finished() {
        std::thread::sleep(
            Duration::from_secs(args.interval)
                .min(until.saturating_duration_since(Instant::now()) + Duration::from_secs(1)),
        );
        let now = take(&counters);
        let secs = last_at.elapsed().as_secs_f64().max(0.001);
        last_at = Instant::now();
        let per_s = |i: usize| (now[i] - last[i]) as f64 / secs;
        let (rss, fds) = match rushesd_sample(&vm) {
            Ok(s) => s,
            Err(e) => {
                counters.error("sampling rushesd", format!("{e:#}"));
                (0, 0)
            }
        };
        if rss > 0 {
            end = (rss, fds);
        }
        println!(
            "{:>6.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.1} {:>7} {:>9.1} {:>5} {:>10.1} {:>10.1}",
            began.elapsed().as_secs_f64() / 60.0,
            per_s(0) / 1e6,
            per_s(1) / 1e6,
            per_s(2) / 1e6,
            per_s(3),
            per_s(4),
            per_s(5),
            now[6],
            rss as f64 / 1024.0,
            fds,
            counters.host_fsync_max_us.swap(0, Ordering::Relaxed) as f64 / 1e3,
            counters.guest_null_max_us.swap(0, Ordering::Relaxed) as f64 / 1e3,
        );
        if now[6] > last[6] {
            guest_logs(&vm);
        }
        last = now;
        if Instant::now() > until + Duration::from_secs(600) {
            counters.error(
                "workers",
                "still busy ten minutes after the end: a call hangs",
            );
            break;
        }
    }
    let _ = probe.join();
    let total = take(&counters);
    println!();
    println!(
        "{:.0} min of load: NFS {:.0} MiB written and {:.0} MiB read back, SMB {:.0} MiB, \
         {} small files, {} metadata calls, {} NLM locks",
        began.elapsed().as_secs_f64() / 60.0,
        total[0] as f64 / 1048576.0,
        total[1] as f64 / 1048576.0,
        total[2] as f64 / 1048576.0,
        total[3],
        total[4],
        total[5]
    );
    println!(
        "rushesd: resident memory {:.1} MiB at the start, {:.1} MiB at the end; \
         open descriptors {} at the start, {} at the end",
        start.0 as f64 / 1024.0,
        end.0 as f64 / 1024.0,
        start.1,
        end.1
    );
    let errors = counters.errors.load(Ordering::Relaxed);
    if errors > 0 {
        println!("{errors} errors; the first ones:");
        for e in counters.first_errors.lock().expect("errors").iter() {
            println!("  {e}");
        }
        bail!("the soak saw {errors} errors");
    }
    println!("no errors");
    Ok(())
}
