//! Every block device the machine has, from sysfs and udev's database: model, serial,
//! size, sector sizes, transport, partitions, and what is on it (found by reading
//! superblock magics). The boot stick is marked so it can never join a pool.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use rushes_api::{Disk, Signature, Transport};

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// udev's properties of a block device (`/run/udev/data/bMAJ:MIN`, lines `E:KEY=VALUE`).
fn udev_props(udev: &Path, dev: &str) -> Vec<(String, String)> {
    let Some(text) = read(&udev.join(format!("b{dev}"))) else {
        return vec![];
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn prop<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn transport(sys_block: &Path, name: &str, sys_class_nvme: &Path) -> Transport {
    if name.starts_with("vd") {
        return Transport::Virtio;
    }
    if name.starts_with("ublkb") {
        return Transport::Card;
    }
    if let Some(ctrl) = crate::nvme::controllers_of(sys_block, name).first() {
        return match read(&sys_class_nvme.join(ctrl).join("transport")).as_deref() {
            Some("tcp") => Transport::NvmeTcp,
            Some("rdma") => Transport::NvmeRdma,
            _ => Transport::Nvme,
        };
    }
    let device = std::fs::canonicalize(sys_block.join(name).join("device")).unwrap_or_default();
    let path = device.to_string_lossy();
    if path.contains("/usb") {
        Transport::Usb
    } else if path.contains("/ata") {
        Transport::Sata
    } else if path.contains("/end_device-") || path.contains("/sas") {
        Transport::Sas
    } else {
        Transport::Other
    }
}

/// Read superblock magics from a device (or image file).
pub fn signatures(dev: &Path) -> Vec<Signature> {
    probe(dev).0
}

/// The md array UUID in a v1.2 (4 KiB) or v1.1 (0) superblock, written as mdadm does.
fn md_uuid(head: &[u8]) -> Option<String> {
    const MAGIC: [u8; 4] = [0xfc, 0x4e, 0x2b, 0xa9];
    let at = [4096usize, 0]
        .into_iter()
        .find(|&off| head.get(off..off + 4) == Some(&MAGIC[..]))?;
    let uuid = head.get(at + 16..at + 32)?;
    let hex: Vec<String> = uuid
        .chunks(4)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    Some(hex.join(":"))
}

/// md superblocks kept at the end of a device: 0.90 (64 KiB-aligned, 64 KiB from the
/// end) and 1.0 (8 KiB from the end, 4 KiB-aligned).
fn md_at_end(f: &mut std::fs::File) -> bool {
    const MAGIC: [u8; 4] = [0xfc, 0x4e, 0x2b, 0xa9];
    let Ok(size) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    if size < 128 * 1024 {
        return false;
    }
    let v090 = (size & !(64 * 1024 - 1)) - 64 * 1024;
    let v10 = (size - 8192) & !4095;
    [v090, v10].into_iter().any(|off| {
        let mut magic = [0u8; 4];
        f.seek(SeekFrom::Start(off)).is_ok() && f.read_exact(&mut magic).is_ok() && magic == MAGIC
    })
}

/// Signatures on a device, and the md array UUID when it is an md member.
fn probe(dev: &Path) -> (Vec<Signature>, Option<String>) {
    let Ok(mut f) = std::fs::File::open(dev) else {
        return (vec![], None);
    };
    // ZFS's first label ends its uberblocks at 256 KiB; everything else lives lower.
    let mut head = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    head.truncate(got);
    let tail_md = md_at_end(&mut f);
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    let mut found = Vec::new();
    if at(512, b"EFI PART") {
        found.push(Signature::Gpt);
    } else if at(510, &[0x55, 0xaa]) && !at(54, b"FAT") && !at(82, b"FAT32") {
        found.push(Signature::Mbr);
    }
    // md: v1.1 superblock at 0, v1.2 at 4 KiB (magic a92b4efc, little-endian).
    if at(0, &[0xfc, 0x4e, 0x2b, 0xa9]) || at(4096, &[0xfc, 0x4e, 0x2b, 0xa9]) || tail_md {
        found.push(Signature::MdRaid);
    }
    // ZFS: the uberblock array of label 0 starts at 128 KiB (magic 0x00bab10c, in the
    // pool's byte order).
    let uber = (0..128).map(|i| 128 * 1024 + i * 1024);
    if uber.into_iter().any(|off| {
        at(off, &[0x0c, 0xb1, 0xba, 0, 0, 0, 0, 0]) || at(off, &[0, 0, 0, 0, 0, 0xba, 0xb1, 0x0c])
    }) {
        found.push(Signature::Zfs);
    }
    if at(0, b"XFSB") {
        found.push(Signature::Xfs);
    }
    if at(1080, &[0x53, 0xef]) {
        found.push(Signature::Ext4);
    }
    if at(65600, b"_BHRfS_M") {
        found.push(Signature::Btrfs);
    }
    if (0..4).any(|s| at(s * 512, b"LABELONE")) {
        found.push(Signature::Lvm);
    }
    if at(54, b"FAT") || at(82, b"FAT32") {
        found.push(Signature::Vfat);
    }
    let _ = f.seek(SeekFrom::Start(0));
    (found, md_uuid(&head))
}

/// Where the inventory reads from: `/sys`, `/dev`, `/run/udev/data` (overridable for tests).
#[derive(Debug, Clone)]
pub struct Roots {
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub udev: PathBuf,
    pub proc_mountinfo: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            sys: "/sys".into(),
            dev: "/dev".into(),
            udev: "/run/udev/data".into(),
            proc_mountinfo: "/proc/self/mountinfo".into(),
        }
    }
}

/// `MAJ:MIN` of every mounted block device (field 3 of mountinfo).
fn mounted_devices(mountinfo: &Path) -> HashSet<String> {
    read(mountinfo)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(2).map(str::to_string))
        .collect()
}

/// Names that are not disks: memory, loop and compressed-swap devices, md and dm.
fn is_disk(name: &str) -> bool {
    !["loop", "ram", "zram", "md", "dm-", "sr", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Scan every block device.
pub fn scan(roots: &Roots) -> Vec<Disk> {
    let sys_block = roots.sys.join("block");
    let sys_nvme = roots.sys.join("class/nvme");
    let mut names: Vec<String> = std::fs::read_dir(&sys_block)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| is_disk(n) && !crate::nvme::is_path_device(n));
    let mounted = mounted_devices(&roots.proc_mountinfo);
    names.sort();
    let mut disks = Vec::new();
    for name in names {
        let base = sys_block.join(&name);
        let dev = read(&base.join("dev")).unwrap_or_default();
        let props = udev_props(&roots.udev, &dev);
        let mut partitions: Vec<String> = std::fs::read_dir(&base)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("partition").exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        partitions.sort();
        let (mut contents, md_uuid) = probe(&roots.dev.join(&name));
        let mut boot = false;
        for part in &partitions {
            contents.extend(signatures(&roots.dev.join(part)));
            let part_dev = read(&base.join(part).join("dev")).unwrap_or_default();
            let pprops = udev_props(&roots.udev, &part_dev);
            let labels = [
                prop(&pprops, "ID_PART_ENTRY_NAME"),
                prop(&pprops, "ID_FS_LABEL"),
            ];
            if labels
                .iter()
                .flatten()
                .any(|l| *l == "RUSHES-CFG" || *l == "RUSHES-BOOT")
            {
                boot = true;
            }
        }
        contents.dedup();
        let mut users: Vec<String> = std::iter::once(&name)
            .chain(&partitions)
            .flat_map(|d| {
                let holders = if d == &name {
                    base.join("holders")
                } else {
                    base.join(d).join("holders")
                };
                std::fs::read_dir(holders)
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let part_devs = partitions
            .iter()
            .filter_map(|p| read(&base.join(p).join("dev")));
        if std::iter::once(dev.clone())
            .chain(part_devs)
            .any(|d| mounted.contains(&d))
        {
            users.push("mounted".into());
        }
        users.sort();
        users.dedup();
        let model = prop(&props, "ID_MODEL")
            .map(|m| m.replace('_', " "))
            .or_else(|| read(&base.join("device/model")))
            .unwrap_or_default();
        let serial = prop(&props, "ID_SERIAL_SHORT")
            .map(str::to_string)
            .or_else(|| read(&base.join("device/serial")))
            .unwrap_or_default();
        let num = |p: &str| {
            read(&base.join(p))
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        disks.push(Disk {
            transport: transport(&sys_block, &name, &sys_nvme),
            model,
            serial,
            wwn: prop(&props, "ID_WWN").map(str::to_string),
            size_bytes: num("size") * 512,
            logical_sector: num("queue/logical_block_size") as u32,
            physical_sector: num("queue/physical_block_size") as u32,
            rotational: num("queue/rotational") == 1,
            partitions,
            contents,
            md_uuid,
            boot,
            in_use_by: (!users.is_empty()).then(|| users.join(",")),
            health: crate::nvme::controllers_of(&sys_block, &name)
                .first()
                .and_then(|ctrl| crate::health::nvme_health(&roots.dev.join(ctrl))),
            name,
        });
    }
    disks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    #[test]
    fn signatures_are_found_by_their_magics() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk");
        let mut data = vec![0u8; 80 * 1024];
        data[512..520].copy_from_slice(b"EFI PART");
        data[4096..4100].copy_from_slice(&[0xfc, 0x4e, 0x2b, 0xa9]);
        std::fs::write(&img, &data).unwrap();
        assert_eq!(signatures(&img), vec![Signature::Gpt, Signature::MdRaid]);
        data[4096 + 16..4096 + 32].copy_from_slice(&[0xab; 16]);
        std::fs::write(&img, &data).unwrap();
        assert_eq!(
            probe(&img).1.as_deref(),
            Some("abababab:abababab:abababab:abababab")
        );
        let mut xfs = vec![0u8; 8192];
        xfs[..4].copy_from_slice(b"XFSB");
        std::fs::write(&img, &xfs).unwrap();
        assert_eq!(signatures(&img), vec![Signature::Xfs]);
        std::fs::write(&img, vec![0u8; 8192]).unwrap();
        assert!(signatures(&img).is_empty());
        // md 1.0 keeps its superblock near the end, ZFS its uberblocks at 128 KiB.
        let mut tail = vec![0u8; 1 << 20];
        let off = ((1 << 20) - 8192) & !4095;
        tail[off..off + 4].copy_from_slice(&[0xfc, 0x4e, 0x2b, 0xa9]);
        tail[130 * 1024..130 * 1024 + 8].copy_from_slice(&0x00ba_b10cu64.to_le_bytes());
        std::fs::write(&img, &tail).unwrap();
        assert_eq!(signatures(&img), vec![Signature::MdRaid, Signature::Zfs]);
    }

    #[test]
    fn scan_reads_sysfs_and_udev() {
        let root = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: root.path().join("sys"),
            dev: root.path().join("dev"),
            udev: root.path().join("udev"),
            proc_mountinfo: root.path().join("mountinfo"),
        };
        let nvme = roots.sys.join("block/nvme0n1");
        write(&nvme.join("dev"), "259:0");
        write(&nvme.join("size"), "16777216");
        write(&nvme.join("queue/logical_block_size"), "512");
        write(&nvme.join("queue/physical_block_size"), "4096");
        write(&nvme.join("queue/rotational"), "0");
        write(&nvme.join("device/serial"), "S1234");
        write(&nvme.join("device/model"), "Fast Disk");
        write(&roots.sys.join("class/nvme/nvme0/transport"), "tcp");
        write(&roots.sys.join("block/loop0/dev"), "7:0");
        write(&nvme.join("holders/md127/x"), "");
        write(&nvme.join("nvme0n1p1/partition"), "1");
        write(&nvme.join("nvme0n1p1/dev"), "259:1");
        write(
            &roots.proc_mountinfo,
            "29 1 259:1 / /mnt rw,relatime - xfs /dev/nvme0n1p1 rw\n",
        );
        let disks = scan(&roots);
        assert_eq!(disks.len(), 1, "loop devices are not disks");
        let d = &disks[0];
        assert_eq!(
            (d.size_bytes, d.transport, d.serial.as_str()),
            (8 << 30, Transport::NvmeTcp, "S1234")
        );
        assert_eq!(
            (d.logical_sector, d.physical_sector, d.rotational, d.boot),
            (512, 4096, false, false)
        );
        assert_eq!(d.in_use_by.as_deref(), Some("md127,mounted"));
    }
}
