//! `boot-bench`: how long the image takes from the kernel's start to `rushes: ready`,
//! booted in QEMU as `make run` does (UEFI, the image as a USB stick, under TCG when
//! there is no KVM), and where the time goes: the firmware and boot loader before the
//! kernel, the kernel unpacking the initramfs, the rest of the kernel's start, init
//! mounting /usr from the slot's root image, udev and the stick's RUSHES-CFG, rushesd, and the services after it. The first boot (which
//! makes the box's keys and certificate) is reported apart from the boots after a reset,
//! which are what a box in service does. Needs `make image` first.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use rushes_tests::vm::{copy_image, image_path, Vm};

#[derive(Parser)]
#[command(about = "Time the image's boot, kernel start to `rushes: ready`, with its phases")]
struct Args {
    /// Boots after the first one (each a reset of the same machine).
    #[arg(long, default_value_t = 3)]
    again: usize,
}

/// One boot's phases, in seconds.
#[derive(Default, Clone)]
struct Boot {
    /// QEMU start or reset to the kernel's first line (firmware, boot loader, loading
    /// the kernel and initramfs from the stick).
    before_kernel: f64,
    /// The kernel unpacking the initramfs.
    unpack: f64,
    /// Kernel start to /init (unpacking included).
    kernel: f64,
    /// /init loading the stick's drivers and mounting the slot's root image on /usr.
    mount_usr: f64,
    /// /init to rushesd ready (udev, modules, RUSHES-CFG, rushesd's start).
    to_rushesd: f64,
    /// Kernel start to `rushes: ready`, as init reports it.
    total: f64,
}

/// The kernel's timestamp (`[   12.345678]`) on the line holding `needle`.
fn kernel_time(console: &str, needle: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains(needle))?;
    let inside = line.split_once('[')?.1.split_once(']')?.0;
    inside.trim().parse().ok()
}

/// Init's `…, 29.5 s after the kernel started` on its ready line.
fn ready_seconds(console: &str) -> Option<f64> {
    let line = console
        .lines()
        .find(|l| l.contains("rushes: ready") && l.contains("after the kernel started"))?;
    let (head, _) = line.rsplit_once(" s after the kernel started")?;
    head.rsplit_once(", ")?.1.parse().ok()
}

/// Wait for one boot from console offset `from`; `started` is when QEMU started or the
/// machine was reset. Returns the phases and the console offset after the boot.
fn one_boot(vm: &mut Vm, from: usize, started: Instant) -> Result<(Boot, usize)> {
    let kernel_seen = vm.wait_for("Linux version", from, Duration::from_secs(300))?;
    let before_kernel = started.elapsed().as_secs_f64();
    let end = vm.wait_for(
        "after the kernel started",
        kernel_seen,
        Duration::from_secs(600),
    )?;
    let console = vm.console();
    // From this boot's kernel on: the console may repeat an earlier boot's lines (the
    // log ring shown again) before a reset.
    let this = &console[kernel_seen..end];
    let at = |needle: &str| {
        kernel_time(this, needle).with_context(|| format!("no {needle:?} on the console"))
    };
    let unpack = at("Freeing initrd memory")? - at("Trying to unpack rootfs")?;
    let kernel = at("Run /init")?;
    // init's lines carry wall-clock seconds; the ready line gives the total since the
    // kernel started, and the gap between init's first line and rushesd's readiness is
    // measured on the same clock.
    let wall = |needle: &str| -> Result<f64> {
        let line = this
            .lines()
            .find(|l| l.contains(needle))
            .with_context(|| format!("no {needle:?} on the console"))?;
        line.split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .with_context(|| format!("no time on {line:?}"))
    };
    let to_rushesd = wall("init: rushesd is ready")? - wall("init: rushes-init started")?;
    // init: "/usr is slot a's root.sqfs on /dev/sda1 (/dev/loop0) in 1.2 s"
    let mount_usr = this
        .lines()
        .find(|l| l.contains("init: /usr is slot"))
        .and_then(|l| {
            l.rsplit_once(" in ")?
                .1
                .strip_suffix(" s")?
                .trim()
                .parse()
                .ok()
        })
        .context("init did not say when it mounted /usr")?;
    let total = ready_seconds(this).context("init's ready line gives no boot time")?;
    Ok((
        Boot {
            before_kernel,
            unpack,
            kernel,
            mount_usr,
            to_rushesd,
            total,
        },
        end,
    ))
}

/// A line of the table: its name and its figure of a boot.
type Row = (&'static str, fn(&Boot) -> f64);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let initramfs = image_path()
        .parent()
        .context("the image's folder")?
        .join("initrd.zst");
    let size = std::fs::metadata(&initramfs)
        .with_context(|| format!("{}: make image writes it", initramfs.display()))?
        .len();
    let root_image = std::fs::metadata(initramfs.with_file_name("root.sqfs"))
        .context("out/root.sqfs: make image writes it")?
        .len();
    let work = tempfile::tempdir()?;
    let image = copy_image(work.path())?;
    let started = Instant::now();
    // Two CPUs, as `make run` gives it (the tests give their guests one).
    let mut vm = Vm::boot_with(&image, work.path(), &[("RUSHES_VM_CPUS", "2")])?;
    let (first, mut from) = one_boot(&mut vm, 0, started)?;
    let mut boots = Vec::new();
    for i in 0..args.again {
        // Let the box settle (the console, chronyd) before the reset, as an admin would.
        std::thread::sleep(Duration::from_secs(5));
        let reset = Instant::now();
        vm.qmp(r#"{"execute":"system_reset"}"#)?;
        let (boot, end) = one_boot(&mut vm, from, reset)
            .with_context(|| format!("boot {} after a reset", i + 1))?;
        boots.push(boot);
        from = end;
    }
    // image/qemu-run.sh asks for no accelerator: QEMU emulates the CPU (TCG).
    println!(
        "boot-bench: out/rushes.img, initramfs {:.1} MiB (zstd), root image {:.1} MiB (squashfs), QEMU under TCG",
        size as f64 / (1 << 20) as f64,
        root_image as f64 / (1 << 20) as f64,
    );
    println!(
        "{:<34} {:>10} {:>16}",
        "phase (seconds)",
        "first boot",
        format!("again (median/{})", boots.len())
    );
    let rows: [Row; 6] = [
        ("firmware and loader, to kernel", |b| b.before_kernel),
        ("kernel unpacks the initramfs", |b| b.unpack),
        ("kernel start to /init", |b| b.kernel),
        ("/init mounts /usr from the stick", |b| b.mount_usr),
        ("/init to rushesd ready", |b| b.to_rushesd),
        ("kernel start to `rushes: ready`", |b| b.total),
    ];
    for (name, get) in rows {
        let again = if boots.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}", median(boots.iter().map(get).collect()))
        };
        println!("{name:<34} {:>10.1} {again:>16}", get(&first));
    }
    println!("goal: kernel start to `rushes: ready` <= 10 s under TCG");
    Ok(())
}
