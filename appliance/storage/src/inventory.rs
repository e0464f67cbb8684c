//! Every block device the machine has, from sysfs and udev's database: model, serial,
//! size, sector sizes, transport, partitions, and what is on it (every signature
//! libblkid knows, through `wipefs`). The boot stick is marked so it can never join a
//! pool, and a disk whose probe fails is treated as in use, never as free.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use rushes_api::{Disk, Signature, Transport};

use crate::StorageError;

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

/// What libblkid finds on a device: every signature it knows, and the md array's UUID
/// when the device is an md member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub signatures: Vec<Signature>,
    pub md_uuid: Option<String>,
}

/// How long one device's probe may take. A disk behind a lost NVMe-oF path or a dying
/// drive can hang a read; it is then reported as unknown rather than holding up the scan.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What libblkid finds (through util-linux's `wipefs`, which lists every signature it
/// finds, where `blkid -p` stops at the first) on each of `devs`, a disk and its
/// partitions or image files, in their order: one `wipefs` for them all, since under load every process started counts. Any device that cannot
/// be read fails the whole probe, which leaves the disk unknown, as it should.
pub fn probe_all(devs: &[PathBuf]) -> Result<Vec<Probe>, StorageError> {
    let names: Vec<String> = devs.iter().map(|d| d.display().to_string()).collect();
    let what = format!("probing {} with wipefs", names.join(" "));
    let (status, out, err) = crate::run_timed(
        Command::new("wipefs").arg("--json").args(devs),
        PROBE_TIMEOUT,
    )?;
    if !status.success() {
        let detail = match err.trim() {
            "" => format!("exit status {status}"),
            e => e.to_string(),
        };
        return Err(StorageError::Command { what, detail });
    }
    let by_device = parse_wipefs(&out).map_err(|detail| StorageError::Command { what, detail })?;
    Ok(devs
        .iter()
        .map(|d| {
            let base = d.file_name().map(|n| n.to_string_lossy().into_owned());
            by_device
                .iter()
                .find(|(dev, _)| Some(dev) == base.as_ref())
                .map(|(_, p)| p.clone())
                .unwrap_or_default()
        })
        .collect())
}

/// Signatures by device (wipefs names each by its file name). `wipefs --json` prints
/// nothing at all when no device has any.
fn parse_wipefs(out: &str) -> Result<Vec<(String, Probe)>, String> {
    #[derive(serde::Deserialize)]
    struct Listing {
        signatures: Vec<Found>,
    }
    #[derive(serde::Deserialize)]
    struct Found {
        device: String,
        #[serde(rename = "type")]
        kind: String,
        uuid: Option<String>,
    }
    if out.trim().is_empty() {
        return Ok(vec![]);
    }
    let listing: Listing =
        serde_json::from_str(out).map_err(|e| format!("unreadable output ({e}): {out}"))?;
    let mut by_device: Vec<(String, Probe)> = Vec::new();
    for found in listing.signatures {
        let i = match by_device.iter().position(|(d, _)| *d == found.device) {
            Some(i) => i,
            None => {
                by_device.push((found.device.clone(), Probe::default()));
                by_device.len() - 1
            }
        };
        let probe = &mut by_device[i].1;
        if found.kind == "linux_raid_member" {
            probe.md_uuid = found.uuid.as_deref().and_then(mdadm_uuid);
        }
        let sig = Signature::new(found.kind);
        if !probe.signatures.contains(&sig) {
            probe.signatures.push(sig);
        }
    }
    Ok(by_device)
}

/// libblkid writes an md array's UUID as 8-4-4-4-12; mdadm and sysfs as four groups of
/// eight joined by colons. Pools keep mdadm's form.
fn mdadm_uuid(blkid: &str) -> Option<String> {
    let hex: String = blkid.chars().filter(char::is_ascii_hexdigit).collect();
    (hex.len() == 32).then(|| {
        hex.as_bytes()
            .chunks(8)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":")
    })
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
        let mut unreadable = Vec::new();
        let devs: Vec<PathBuf> = std::iter::once(&name)
            .chain(&partitions)
            .map(|d| roots.dev.join(d))
            .collect();
        let (mut contents, md_uuid) = match probe_all(&devs) {
            Ok(found) => (
                found.iter().flat_map(|p| p.signatures.clone()).collect(),
                found.first().and_then(|p| p.md_uuid.clone()),
            ),
            Err(e) => {
                unreadable.push(e.to_string());
                (vec![], None)
            }
        };
        // The stick's own partitions, or an image extension (on the stick, or on a disk
        // of its own with no partition table).
        let of_the_stick =
            |l: &str| l == "RUSHES-CFG" || l == "RUSHES-BOOT" || l.starts_with("RUSHES-X-");
        let mut boot = prop(&props, "ID_FS_LABEL").is_some_and(of_the_stick);
        for part in &partitions {
            let part_dev = read(&base.join(part).join("dev")).unwrap_or_default();
            let pprops = udev_props(&roots.udev, &part_dev);
            let labels = [
                prop(&pprops, "ID_PART_ENTRY_NAME"),
                prop(&pprops, "ID_FS_LABEL"),
            ];
            if labels.iter().flatten().any(|l| of_the_stick(l)) {
                boot = true;
            }
        }
        let mut seen = HashSet::new();
        contents.retain(|c| seen.insert(c.clone()));
        if !unreadable.is_empty() {
            tracing::warn!(disk = %name, problem = %unreadable.join("; "), "cannot tell what is on a disk; it is treated as in use");
        }
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
        if !unreadable.is_empty() {
            users.push(format!("unknown contents ({})", unreadable.join("; ")));
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
        let transport = transport(&sys_block, &name, &sys_nvme);
        let health = match crate::nvme::controllers_of(&sys_block, &name).first() {
            Some(ctrl) => crate::health::nvme_health(&roots.dev.join(ctrl)),
            None if matches!(transport, Transport::Sata | Transport::Sas) => {
                crate::health::smart_health_cached(&roots.dev.join(&name), &serial)
            }
            None => None,
        };
        disks.push(Disk {
            transport,
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
            health,
            name,
        });
    }
    disks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    fn probe(dev: &Path) -> Result<Probe, StorageError> {
        Ok(probe_all(&[dev.to_path_buf()])?.remove(0))
    }

    #[test]
    fn libblkid_names_what_is_on_a_device_and_a_failed_probe_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk");
        std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
        assert_eq!(probe(&img).unwrap(), Probe::default(), "zeros hold nothing");
        let made = Command::new("mkswap").arg(&img).output().unwrap();
        assert!(made.status.success(), "{made:?}");
        assert_eq!(
            probe(&img).unwrap().signatures,
            vec![Signature::new("swap")]
        );
        let err = probe(&dir.path().join("gone")).unwrap_err().to_string();
        assert!(err.contains("probing") && err.contains("gone"), "{err}");
    }

    #[test]
    fn an_md_members_uuid_is_kept_in_mdadms_form() {
        let out = r#"{"signatures": [
            {"device":"vdb","offset":"0x1000","type":"linux_raid_member",
             "uuid":"3f0e5a1b-2c4d-6e7f-8091-a2b3c4d5e6f7","label":"rushes:media"},
            {"device":"vdb","offset":"0x200","type":"gpt","uuid":null,"label":null},
            {"device":"vdb","offset":"0x1fe","type":"PMBR","uuid":null,"label":null}]}"#;
        let found = parse_wipefs(out).unwrap();
        assert_eq!(found.len(), 1, "one device");
        let p = &found[0].1;
        assert_eq!(
            p.md_uuid.as_deref(),
            Some("3f0e5a1b:2c4d6e7f:8091a2b3:c4d5e6f7")
        );
        let names: Vec<&str> = p.signatures.iter().map(Signature::as_str).collect();
        assert_eq!(names, ["linux_raid_member", "gpt", "PMBR"]);
        assert!(parse_wipefs("").unwrap().is_empty());
        assert!(parse_wipefs("{\"signatures\": 7}").is_err());
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
        for dev in ["nvme0n1", "nvme0n1p1"] {
            std::fs::create_dir_all(&roots.dev).unwrap();
            std::fs::write(roots.dev.join(dev), vec![0u8; 64 << 10]).unwrap();
        }
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
        // A disk whose contents cannot be read is never offered as free.
        std::fs::remove_file(roots.dev.join("nvme0n1p1")).unwrap();
        std::fs::remove_dir_all(nvme.join("holders")).unwrap();
        std::fs::write(&roots.proc_mountinfo, "").unwrap();
        let d = &scan(&roots)[0];
        let user = d.in_use_by.as_deref().unwrap_or_default();
        assert!(user.starts_with("unknown contents (probing"), "{user}");
    }
}
