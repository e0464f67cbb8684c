//! The disk image: a GPT with an EFI system partition (systemd-boot and the A/B slots,
//! each a kernel, an initramfs and a root image),
//! the RUSHES-CFG partition and any extensions asked for, written straight into a file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use rushes_update::slots;

const MIB: u64 = 1 << 20;
pub const ESP_MIB: u64 = 256;
pub const CFG_MIB: u64 = 64;

/// Build the ESP as a FAT32 image file.
pub fn esp(
    path: &Path,
    bootloader: &Path,
    payload: &[&Path; rushes_update::PAYLOAD.len()],
    version: &str,
) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.set_len(ESP_MIB * MIB)?;
    let mut label = *b"RUSHES-BOOT";
    label.make_ascii_uppercase();
    fatfs::format_volume(
        &file,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .volume_label(label),
    )?;
    let fs = fatfs::FileSystem::new(&file, fatfs::FsOptions::new())?;
    let root = fs.root_dir();
    let put = |dir: &fatfs::Dir<'_, &File>, name: &str, data: &[u8]| -> Result<()> {
        let mut f = dir.create_file(name)?;
        f.truncate()?;
        f.write_all(data)?;
        Ok(())
    };
    root.create_dir("EFI")?;
    let efi_boot = root.create_dir("EFI/BOOT")?;
    put(&efi_boot, "BOOTX64.EFI", &std::fs::read(bootloader)?)?;
    root.create_dir("loader")?;
    let loader = root.create_dir("loader/entries")?;
    // Entries sort by their sort-key (rushes_update::slots); an entry whose tries ran
    // out (+0-3) is sorted last, so a slot that cannot come up falls back to the other.
    put(
        &root.open_dir("loader")?,
        "loader.conf",
        b"timeout 0\nconsole-mode keep\neditor no\n",
    )?;
    root.create_dir("rushes")?;
    let files = payload
        .iter()
        .map(std::fs::read)
        .collect::<std::io::Result<Vec<_>>>()?;
    // A is written with the newer generation, so a fresh stick boots A first.
    for (slot, generation) in [('a', 2), ('b', 1)] {
        let dir = root.create_dir(&format!("rushes/{slot}"))?;
        for (name, bytes) in rushes_update::PAYLOAD.iter().zip(&files) {
            put(&dir, name, bytes)?;
        }
        let entry = slots::entry_text(slot, generation, version);
        put(&loader, &slots::entry_name(slot), entry.as_bytes())?;
    }
    Ok(())
}

/// Build RUSHES-CFG as an ext4 image (journalled: a power cut leaves it consistent).
pub fn cfg(path: &Path, seed: &Path) -> Result<()> {
    ext4(path, "RUSHES-CFG", seed, CFG_MIB, &[])
}

/// Write an ext4 file system of `mib` MiB labelled `label` into the file `path`,
/// holding the tree `seed` owned by root; `options` go to mke2fs as they are.
pub fn ext4(path: &Path, label: &str, seed: &Path, mib: u64, options: &[&str]) -> Result<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let status = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", label])
        .args(options)
        .args(["-E", "root_owner=0:0", "-d"])
        .arg(seed)
        .arg(path)
        .arg(format!("{mib}M"))
        .status()
        .context("cannot run mke2fs (Debian package e2fsprogs)")?;
    if !status.success() {
        bail!("mke2fs failed on {label}");
    }
    Ok(())
}

/// Write the GPT disk `image` holding the ESP and RUSHES-CFG images, and after them
/// each of `extensions` (label, file system image) in a partition of that name.
pub fn assemble(
    image: &Path,
    esp_img: &Path,
    cfg_img: &Path,
    extensions: &[(&str, &Path)],
) -> Result<()> {
    let mut ext_sizes = Vec::new();
    for (_, img) in extensions {
        let len = std::fs::metadata(img)?.len();
        ext_sizes.push(len.div_ceil(MIB) * MIB);
    }
    let total = MIB + ESP_MIB * MIB + CFG_MIB * MIB + ext_sizes.iter().sum::<u64>() + MIB;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(image)?;
    file.set_len(total)?;
    let mbr =
        gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(total / 512 - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(&mut file)?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(file, None)?;
    let esp_id = disk.add_partition(
        "RUSHES-BOOT",
        ESP_MIB * MIB,
        gpt::partition_types::EFI,
        0,
        Some(2048),
    )?;
    let cfg_id = disk.add_partition(
        "RUSHES-CFG",
        CFG_MIB * MIB,
        gpt::partition_types::LINUX_FS,
        0,
        Some(2048),
    )?;
    let mut written = vec![(esp_id, esp_img), (cfg_id, cfg_img)];
    for ((label, img), size) in extensions.iter().zip(&ext_sizes) {
        let id = disk.add_partition(label, *size, gpt::partition_types::LINUX_FS, 0, Some(2048))?;
        written.push((id, img));
    }
    let parts = disk.partitions().clone();
    let mut file = disk.write()?;
    for (id, img) in written {
        let first = parts.get(&id).context("partition missing")?.first_lba;
        file.seek(SeekFrom::Start(first * 512))?;
        let mut src = File::open(img)?;
        let mut buf = vec![0u8; 4 * MIB as usize];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])?;
        }
    }
    file.sync_all()?;
    Ok(())
}
