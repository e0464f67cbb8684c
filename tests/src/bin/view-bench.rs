//! `view-bench`: what serving SMB through the FUSE view costs (issue 18): one smbd
//! serves the same folder twice, as `direct` (Samba on the folder, as before the
//! namespace) and as `view` (through `rushes-view` with passthrough, as the appliance
//! does), and Samba's own client times each row against both shares, the order
//! alternating each repetition; each figure is the median of the paired ratios
//! (direct's time over the view's: above 1.0 the view is faster). A calibration row
//! times `direct` against a second share on the same folder, for the bench's own noise.
//!
//! Rows: a sequential read and a sequential write (until flushed) of one large file
//! (goal >= 0.9x);
//! listing a folder of many files and making and removing small files (goal >= 0.8x).
//! Needs root, `smbd` and `smbclient` (`make deps`).

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_placement::DataPlaces;
use rushes_tests::bench::median;

#[derive(Parser)]
#[command(about = "Time Samba through the FUSE view against Samba on the folder directly")]
struct Args {
    /// Where the folder standing for a pool is made (the file system measured).
    #[arg(long, default_value = "/var/tmp/rushes-view-bench")]
    dir: PathBuf,
    /// Size of the file read and written.
    #[arg(long, default_value_t = 512)]
    size_mib: u64,
    /// Files in the folder listed.
    #[arg(long, default_value_t = 3000)]
    entries: usize,
    /// Small files made and removed per repetition.
    #[arg(long, default_value_t = 200)]
    files: usize,
    /// Repetitions; each figure is the median of the paired ratios.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// smbd's TCP port (not 445, so a running Samba is left alone).
    #[arg(long, default_value_t = 4455)]
    port: u16,
    /// Set up, warm, then serve `direct` and `view` until interrupted instead of timing
    /// (for profiling a row by hand: strace or perf on smbd and this process).
    #[arg(long)]
    serve: bool,
}

const MIB: u64 = 1 << 20;

struct Smbd {
    child: Child,
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// smbd serving `folder` as `direct` and `again`, and `view` as `view`.
fn start_smbd(dir: &Path, folder: &Path, view: &Path, port: u16) -> Result<Smbd> {
    let run = dir.join("samba");
    for d in ["private", "state", "cache", "lock", "ncalrpc"] {
        std::fs::create_dir_all(run.join(d))?;
    }
    let share = |name: &str, path: &Path| {
        format!(
            "[{name}]\npath = {}\nread only = no\nguest ok = yes\nguest only = yes\nforce user = root\n",
            path.display()
        )
    };
    // The appliance's settings that bear on the data path (samba.rs), without the audit.
    let conf = format!(
        "[global]\nserver role = standalone server\nsmb ports = {port}\ninterfaces = lo\n\
         bind interfaces only = yes\nmap to guest = Bad User\nguest account = root\n\
         multicast dns register = no\nprivate dir = {r}/private\nstate directory = {r}/state\n\
         cache directory = {r}/cache\nlock directory = {r}/lock\npid directory = {r}\n\
         ncalrpc dir = {r}/ncalrpc\nlog file = {r}/log\nlog level = 1\nload printers = no\n\
         printing = bsd\nprintcap name = /dev/null\ndisable spoolss = yes\n\
         server multi channel support = yes\nsmb2 leases = yes\nea support = yes\n\
         vfs objects = catia fruit streams_xattr\nfruit:metadata = stream\n\
         fruit:posix_rename = yes\n\n{}\n{}\n{}",
        share("direct", folder),
        share("again", folder),
        share("view", view),
        r = run.display(),
    );
    let conf_path = run.join("smb.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new("smbd")
        .args(["--foreground", "--no-process-group", "-s"])
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start smbd (install samba: make deps)")?;
    let smbd = Smbd { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!(
                "smbd did not listen on port {port}; see {}/log",
                run.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(smbd)
}

/// Run smbclient on `share` with `commands` (read from its standard input), timed.
fn smbclient(port: u16, share: &str, cwd: &Path, commands: &str) -> Result<Duration> {
    let started = Instant::now();
    let mut child = Command::new("smbclient")
        .arg(format!("//127.0.0.1/{share}"))
        .args(["-p", &port.to_string(), "-N", "-m", "SMB3"])
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start smbclient (install smbclient: make deps)")?;
    child
        .stdin
        .take()
        .context("smbclient's input")?
        .write_all(commands.as_bytes())?;
    let out = child.wait_with_output()?;
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || err.contains("NT_STATUS_") {
        bail!("smbclient on {share} ({commands:.60}...): {err}");
    }
    Ok(took)
}

/// One row: `work(share, rep)` timed on `a` and `b` in turn, the order alternating;
/// the median of `a`'s time over `b`'s.
fn paired(
    runs: usize,
    a: &str,
    b: &str,
    mut work: impl FnMut(&str, usize) -> Result<Duration>,
) -> Result<(f64, Vec<f64>)> {
    let mut ratios = Vec::new();
    for rep in 0..runs {
        let (ta, tb) = if rep % 2 == 0 {
            let ta = work(a, rep)?;
            (ta, work(b, rep)?)
        } else {
            let tb = work(b, rep)?;
            (work(a, rep)?, tb)
        };
        ratios.push(ta.as_secs_f64() / tb.as_secs_f64());
    }
    Ok((median(&ratios), ratios))
}

fn report(row: &str, goal: f64, (ratio, all): (f64, Vec<f64>)) {
    let spread: Vec<String> = all.iter().map(|r| format!("{r:.2}")).collect();
    let mark = if ratio >= goal { "ok" } else { "BELOW GOAL" };
    println!(
        "{row:<44} {ratio:>5.2}x  (goal {goal:.2}x, {mark}; runs {})",
        spread.join(" ")
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !rustix::process::geteuid().is_root() {
        bail!("view-bench needs root (FUSE mounts, trusted.* xattrs)");
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    let folder = args.dir.join("pool/share");
    let other = args.dir.join("other");
    let view_at = args.dir.join("view");
    let local = args.dir.join("local");
    for d in [&folder, &other, &view_at, &local] {
        std::fs::create_dir_all(d)?;
    }
    // The file read, the one written, the folder listed.
    let size = args.size_mib * MIB;
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut f = std::fs::File::create(folder.join("clip.mov"))?;
    for _ in 0..args.size_mib {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    std::fs::copy(folder.join("clip.mov"), local.join("upload.mov"))?;
    std::fs::write(local.join("small"), vec![1u8; 4096])?;
    std::fs::create_dir_all(folder.join("bin"))?;
    for i in 0..args.entries {
        std::fs::write(folder.join(format!("bin/shot-{i:05}.mov")), b"x")?;
    }

    // Pools open, as on the appliance: every open of the view takes a ticket.
    let places = Arc::new(DataPlaces::default());
    places.add_pool("pool", &args.dir.join("pool"))?;
    places.add_pool("other", &other)?;
    let view = rushes_view::mount("share", &folder, &view_at, Arc::clone(&places), None)?;
    println!(
        "view-bench: {} MiB file, {} entries listed, {} small files; {} repetitions; passthrough {}",
        args.size_mib,
        args.entries,
        args.files,
        args.runs,
        if view.passthrough() { "on" } else { "OFF" }
    );
    let _smbd = start_smbd(&args.dir, &folder, &view_at, args.port)?;
    let port = args.port;
    // Warm both paths once (page cache, smbd's processes, the view's inodes).
    for share in ["direct", "view", "again"] {
        smbclient(port, share, &local, "get clip.mov /dev/null\ncd bin\nls\n")?;
    }

    if args.serve {
        println!(
            "serving //127.0.0.1/direct and //127.0.0.1/view on port {port} (listed folder: bin); \
             ctrl-c ends (then `umount -l {}`)",
            view_at.display()
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let read =
        |share: &str, _rep: usize| smbclient(port, share, &local, "get clip.mov /dev/null\n");
    let write = |share: &str, rep: usize| {
        let name = format!("up-{share}-{rep}.mov");
        // Timed until the bytes are on the disk: otherwise the row measures how much
        // the page cache happened to take.
        let started = Instant::now();
        smbclient(port, share, &local, &format!("put upload.mov {name}\n"))?;
        std::fs::File::open(folder.join(&name))?.sync_all()?;
        let t = started.elapsed();
        std::fs::remove_file(folder.join(&name))?;
        rustix::fs::sync();
        Ok(t)
    };
    let list = |share: &str, _rep: usize| smbclient(port, share, &local, "cd bin\nls\nls\nls\n");
    let files = args.files;
    let create = |share: &str, rep: usize| {
        let dir = format!("new-{share}-{rep}");
        let mut cmds = format!("mkdir {dir}\ncd {dir}\n");
        for i in 0..files {
            cmds.push_str(&format!("put small f{i}\n"));
        }
        cmds.push_str("del f*\ncd ..\nrmdir ");
        cmds.push_str(&dir);
        cmds.push('\n');
        smbclient(port, share, &local, &cmds)
    };

    let mb = size as f64 / 1e6;
    let t = read("view", 0)?;
    println!(
        "one read through the view: {:.0} MB/s",
        mb / t.as_secs_f64()
    );
    report(
        &format!("sequential read, {} MiB", args.size_mib),
        0.9,
        paired(args.runs, "direct", "view", read)?,
    );
    report(
        &format!("sequential write, {} MiB", args.size_mib),
        0.9,
        paired(args.runs, "direct", "view", write)?,
    );
    report(
        &format!("listing {} entries, 3 times", args.entries),
        0.8,
        paired(args.runs, "direct", "view", list)?,
    );
    report(
        &format!("make, write and remove {} small files", args.files),
        0.8,
        paired(args.runs, "direct", "view", create)?,
    );
    let (calib, all) = paired(args.runs, "direct", "again", read)?;
    let spread = all
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    println!(
        "calibration: sequential read, direct against direct {calib:.2}x (runs {:.2}-{:.2}; the truth is 1.00x)",
        spread.0, spread.1
    );
    view.unmount();
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
