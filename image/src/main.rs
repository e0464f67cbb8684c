//! `mkimage` builds `out/rushes.img`, the bootable Rushes image, from Debian packages:
//! no root, no loop devices, no network beyond the Debian mirror.
//!
//! Steps: resolve and download packages with apt (cached), unpack them with dpkg-deb,
//! keep only the kernel modules and firmware an appliance needs, add our binaries, pack
//! `/usr` as a squashfs root image and the rest, with what mounts it, as a zstd cpio
//! initramfs, and write a GPT disk with an EFI system partition (systemd-boot, slots A
//! and B with boot counting, each a kernel, an initramfs and a root image) and
//! RUSHES-CFG.

mod apt;
mod cpio;
mod disk;
mod extension;
mod manifest;
mod rootfs;
mod split;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use manifest::Manifest;

/// The root image's name, in the build folder, in out/ and in each slot.
const ROOT_IMAGE: &str = "root.sqfs";

#[derive(Parser)]
#[command(
    name = "mkimage",
    about = "Build the bootable Rushes disk image (out/rushes.img)"
)]
struct Args {
    /// The image manifest.
    #[arg(long, default_value = "image/manifest.toml")]
    manifest: PathBuf,
    /// Files copied into the root file system as they are.
    #[arg(long, default_value = "image/overlay")]
    overlay: PathBuf,
    /// Folder holding the builds of rushes-init, rushesd, rushesctl, rushes-console and rushes-card
    /// (target/release for `make image`, target/debug for `make test`).
    #[arg(long, default_value = "target/release")]
    bins: PathBuf,
    /// Download cache (packages and apt lists), kept between builds.
    #[arg(long, default_value = "/var/cache/rushes-mkimage")]
    cache: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Build the test client guest instead (a kernel and an initramfs in OUT/client, from
    /// image/client.toml and image/client-overlay): a Linux NFS client for the tests.
    #[arg(long)]
    client: bool,
    /// Put extension NAME (from the manifest's `[extensions.NAME]`) on the stick as a
    /// partition of its own; every extension is built beside the image in
    /// OUT/extensions either way.
    #[arg(long = "with-extension", value_name = "NAME")]
    with_extensions: Vec<String>,
    /// The version the image runs, as update bundles and `rushesctl update status` name it.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    version: String,
    /// A public key (from `rushes-bundle keygen`) whose signed update bundles the box
    /// takes; give one per key. An image without one cannot be updated from the box.
    #[arg(long = "trust", value_name = "KEY.pub")]
    trust: Vec<PathBuf>,
    /// zstd's level for the root image and the initramfs [default: 19 for the image, 9
    /// for the client]. The product's is 19: a tenth smaller than 9 (what the stick
    /// holds, what an update bundle carries) for a minute more of building, and no
    /// slower to read. `make test` builds its image at a lower one, for speed.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=19))]
    zstd_level: Option<i32>,
}

struct Progress {
    step: usize,
    total: usize,
    started: Instant,
}

impl Progress {
    fn next(&mut self, what: &str) {
        self.step += 1;
        eprintln!(
            "[{}/{}] {what} ({:.0?} so far)",
            self.step,
            self.total,
            self.started.elapsed()
        );
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let manifest: Manifest = toml::from_str(
        &std::fs::read_to_string(&args.manifest)
            .with_context(|| format!("cannot read {}", args.manifest.display()))?,
    )
    .with_context(|| format!("{} is not a valid manifest", args.manifest.display()))?;
    let mut p = Progress {
        step: 0,
        total: if args.client { 6 } else { 11 },
        started: Instant::now(),
    };
    let build = args
        .out
        .join(if args.client { "build-client" } else { "build" });
    let root = build.join("rootfs");
    let boot = build.join("boot");
    std::fs::create_dir_all(&build)?;

    p.next("refreshing package lists");
    let apt = apt::Apt::new(&args.cache, &manifest)?;
    apt.update()?;

    p.next("resolving and downloading packages");
    let kernel = apt.newest_matching(&manifest.kernel)?;
    let mut wanted = manifest.packages.clone();
    wanted.push(kernel.clone());
    wanted.extend(manifest.firmware_packages.iter().cloned());
    let packages = apt.fetch(&wanted)?;
    let boot_packages = apt.fetch(&manifest.boot_packages)?;
    eprintln!("      {} packages, kernel {kernel}", packages.len());

    p.next("unpacking");
    rootfs::skeleton(&root)?;
    for pkg in &packages {
        apt::unpack(&pkg.deb, &root)?;
    }
    if boot.exists() {
        std::fs::remove_dir_all(&boot)?;
    }
    std::fs::create_dir_all(&boot)?;
    for pkg in &boot_packages {
        apt::unpack(&pkg.deb, &boot)?;
    }

    p.next("trimming kernel modules and firmware");
    let vmlinuz = build.join("vmlinuz");
    let kversion = rootfs::take_kernel(&root, &vmlinuz)?;
    let (kept, dropped) = rootfs::trim_modules(&root, &kversion, &manifest.modules_keep)?;
    let fw_removed = rootfs::trim_firmware(&root, &manifest.firmware_keep)?;
    rootfs::trim(&root, &manifest.trim)?;
    eprintln!(
        "      modules: kept {kept}, dropped {dropped}; firmware: dropped {}",
        mib(fw_removed)
    );

    if args.client {
        p.next("adding the overlay");
        rootfs::copy_tree(&args.overlay, &root)?;
        rootfs::link_applets(&root, &manifest)?;
    } else {
        p.next(
            "adding rushes-init, rushesd, rushesctl, rushes-console, rushes-card and the overlay",
        );
        rootfs::copy_tree(&args.overlay, &root)?;
        rootfs::finish(&root, &args.bins, &manifest)?;
        if manifest.stub_icu_data {
            let saved = rootfs::stub_icu_data(&root, &build)?;
            eprintln!(
                "      ICU's data library replaced by an empty one: {} less",
                mib(saved)
            );
        }
        rootfs::trust_keys(&root, &args.trust)?;
    }

    // zstd's level for the root image and the initramfs.
    let level = args.zstd_level.unwrap_or(if args.client { 9 } else { 19 });
    // The product: /usr as a slot's root image, and an initramfs that mounts it. The
    // client's initramfs holds its whole root file system.
    let root_image = build.join(ROOT_IMAGE);
    let initramfs_root = if args.client {
        root.clone()
    } else {
        if manifest.boot_modules.is_empty() {
            anyhow::bail!(
                "{} lists no boot_modules: the initramfs could not reach the stick to mount the root image",
                args.manifest.display()
            );
        }
        p.next("packing /usr as the root image (squashfs, zstd)");
        split::root_image(&root, &root_image, level)?;
        let tree = build.join("initramfs");
        let modules = split::initramfs_tree(&root, &kversion, &manifest.boot_modules, &tree)?;
        eprintln!(
            "      root image {}; the initramfs holds init and {modules} boot modules",
            mib(std::fs::metadata(&root_image)?.len())
        );
        tree
    };

    p.next("packing the initramfs (cpio, zstd)");
    let initrd = build.join("initrd.zst");
    {
        let file = std::fs::File::create(&initrd)?;
        // On every core; the level as --zstd-level says.
        let mut enc = zstd::Encoder::new(std::io::BufWriter::new(file), level)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        enc.multithread(u32::try_from(cores).unwrap_or(1))?;
        cpio::write_tree(&initramfs_root, &mut enc)?;
        enc.finish()?.flush()?;
    }

    if args.client {
        let dir = args.out.join("client");
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(&vmlinuz, dir.join("vmlinuz"))?;
        std::fs::copy(&initrd, dir.join("initrd.zst"))?;
        let size = std::fs::metadata(&initrd).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "done in {:.0?}: {} (kernel {kversion}, initramfs {})",
            p.started.elapsed(),
            dir.display(),
            mib(size)
        );
        return Ok(());
    }

    p.next("building the extensions");
    for wanted in &args.with_extensions {
        if !manifest.extensions.contains_key(wanted) {
            anyhow::bail!(
                "there is no extension {wanted:?} in {} (it has: {:?})",
                args.manifest.display(),
                manifest.extensions.keys().collect::<Vec<_>>()
            );
        }
    }
    let mut extensions = Vec::new();
    for (name, ext) in &manifest.extensions {
        let built = extension::build(
            &apt,
            name,
            ext,
            &packages,
            &manifest,
            &build,
            &args.out,
            &args.cache,
        )?;
        eprintln!(
            "      {name}: {} packages, {} of files, {}",
            built.packages.len(),
            mib(built.bytes),
            built.image.display()
        );
        extensions.push(built);
    }

    p.next("writing the EFI system partition");
    let bootloader = boot.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    let esp = build.join("esp.img");
    // The slot's files, in rushes_update::PAYLOAD's order.
    let payload = [vmlinuz.as_path(), initrd.as_path(), root_image.as_path()];
    disk::esp(&esp, &bootloader, &payload, &args.version)?;

    p.next("writing RUSHES-CFG");
    let seed = build.join("cfg-seed");
    if seed.exists() {
        std::fs::remove_dir_all(&seed)?;
    }
    std::fs::create_dir_all(seed.join("logs"))?;
    std::fs::write(
        seed.join("README.txt"),
        "Rushes configuration and logs. Written by the appliance; keep it.\n",
    )?;
    let cfg = build.join("cfg.img");
    disk::cfg(&cfg, &seed)?;

    p.next("writing the GPT disk image");
    let image = args.out.join("rushes.img");
    let on_stick: Vec<(&str, &Path)> = extensions
        .iter()
        .filter(|e| args.with_extensions.contains(&e.name))
        .map(|e| (e.label.as_str(), e.image.as_path()))
        .collect();
    disk::assemble(&image, &esp, &cfg, &on_stick)?;
    for (name, src) in rushes_update::PAYLOAD.iter().zip(payload) {
        std::fs::copy(src, args.out.join(name))?;
    }

    // The report: what went in, and what takes the space.
    let mut report = String::new();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    report.push_str(&format!(
        "image      {}  {}\n",
        image.display(),
        mib(size(&image))
    ));
    report.push_str(&format!("version    {}\n", args.version));
    report.push_str(&format!("kernel     {kversion}  {}\n", mib(size(&vmlinuz))));
    report.push_str(&format!("initramfs  zstd cpio  {}\n", mib(size(&initrd))));
    report.push_str(&format!(
        "root image squashfs (/usr)  {}\n",
        mib(size(&root_image))
    ));
    for e in &extensions {
        report.push_str(&format!(
            "extension  {} ({})  {} packages, {} of files, {} image{}\n",
            e.name,
            e.label,
            e.packages.len(),
            mib(e.bytes),
            mib(size(&e.image)),
            if on_stick.iter().any(|(l, _)| *l == e.label) {
                ", on the stick"
            } else {
                ", beside the stick"
            }
        ));
    }
    report.push_str("root file system, biggest parts (uncompressed):\n");
    for (dir, bytes) in rootfs::space_report(&root) {
        report.push_str(&format!("  {:<28} {}\n", dir.display(), mib(bytes)));
    }
    report.push_str("packages:\n");
    for pkg in packages.iter().chain(&boot_packages) {
        report.push_str(&format!("  {} {}\n", pkg.name, pkg.version));
    }
    std::fs::write(args.out.join("rushes.manifest.txt"), &report)?;
    eprint!("{report}");
    eprintln!("done in {:.0?}: {}", p.started.elapsed(), image.display());
    Ok(())
}
