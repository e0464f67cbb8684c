//! md RAID arrays through mdadm, and their live state from `/sys/block/mdN/md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rushes_api::RaidLevel;

use crate::{run, StorageError};

/// `/dev/md/NAME`, the device path mdadm gives an array called NAME.
pub fn device_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/md/{name}"))
}

/// The kernel name (`md127`) of the array called NAME, if it is assembled.
pub fn kernel_name(name: &str) -> Option<String> {
    let real = std::fs::canonicalize(device_path(name)).ok()?;
    Some(real.file_name()?.to_string_lossy().into_owned())
}

fn level_args(level: RaidLevel, disks: usize) -> Vec<String> {
    let (lvl, extra): (&str, &[&str]) = match level {
        // A one-disk "mirror" that can later take a second disk.
        RaidLevel::Single => ("1", &["--force"]),
        RaidLevel::Raid0 => ("0", &[]),
        RaidLevel::Raid1 => ("1", &[]),
        RaidLevel::Raid5 => ("5", &[]),
        RaidLevel::Raid6 => ("6", &[]),
        RaidLevel::Raid10 => ("10", &["--layout=n2"]),
    };
    let mut args = vec![format!("--level={lvl}"), format!("--raid-devices={disks}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    // A write-intent bitmap makes the resync after a power cut take seconds, not hours.
    if level.fault_tolerance(disks) > 0 {
        args.push("--bitmap=internal".into());
    }
    args
}

/// Create and start an array; its first resync runs in the background and the array is
/// usable at once.
pub fn create(name: &str, level: RaidLevel, devices: &[PathBuf]) -> Result<(), StorageError> {
    run(Command::new("mdadm")
        .arg("--create")
        .arg(device_path(name))
        .args(["--run", "--metadata=1.2", "--homehost=rushes"])
        .arg(format!("--name={name}"))
        .args(level_args(level, devices.len()))
        .args(devices))?;
    wait_for_node(name);
    Ok(())
}

/// udev makes `/dev/md/NAME` a moment after mdadm returns; on a busy machine it can
/// lag for many seconds. Wait briefly, then make the link ourselves (the same one udev
/// makes) from the array whose name mdadm reports as NAME.
fn wait_for_node(name: &str) {
    let path = device_path(name);
    let begun = std::time::Instant::now();
    while !path.exists() && begun.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if path.exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return;
    };
    for e in entries.flatten() {
        let kernel = e.file_name().to_string_lossy().into_owned();
        if !kernel.starts_with("md") {
            continue;
        }
        let Ok(out) = run(Command::new("mdadm")
            .args(["--detail", "--export"])
            .arg(format!("/dev/{kernel}")))
        else {
            continue;
        };
        let named = out.lines().any(|l| {
            l.strip_prefix("MD_DEVNAME=") == Some(name)
                || l.strip_prefix("MD_NAME=")
                    .is_some_and(|n| n.rsplit(':').next() == Some(name))
        });
        if named {
            let _ = std::fs::create_dir_all("/dev/md");
            match std::os::unix::fs::symlink(format!("../{kernel}"), &path) {
                Ok(()) => {
                    tracing::info!(array = name, %kernel, "udev was slow: linked /dev/md/{name} ourselves")
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    tracing::warn!(array = name, error = %e, "cannot link the array's device")
                }
            }
            return;
        }
    }
}

/// Assemble an array from the devices given, degraded if some members are missing.
pub fn assemble(name: &str, uuid: &str, devices: &[PathBuf]) -> Result<(), StorageError> {
    run(Command::new("mdadm")
        .arg("--assemble")
        .arg(device_path(name))
        .args(["--run", "--uuid"])
        .arg(uuid)
        .args(devices))?;
    wait_for_node(name);
    Ok(())
}

/// The array UUID mdadm reports for an assembled array.
pub fn uuid(name: &str) -> Result<String, StorageError> {
    let out = run(Command::new("mdadm")
        .args(["--detail", "--export"])
        .arg(device_path(name)))?;
    out.lines()
        .find_map(|l| l.strip_prefix("MD_UUID="))
        .map(str::to_string)
        .ok_or_else(|| StorageError::Command {
            what: format!("mdadm --detail {name}"),
            detail: "no MD_UUID in its answer".into(),
        })
}

pub fn stop(name: &str) -> Result<(), StorageError> {
    run(Command::new("mdadm").arg("--stop").arg(device_path(name)))?;
    Ok(())
}

/// Add a disk; md rebuilds onto it if the array lacks a member, else keeps it as a spare.
pub fn add(name: &str, disk: &Path) -> Result<(), StorageError> {
    run(Command::new("mdadm")
        .arg(device_path(name))
        .arg("--add")
        .arg(disk))?;
    Ok(())
}

/// Mark a member failed and take it out of the array.
pub fn fail_and_remove(name: &str, member: &str) -> Result<(), StorageError> {
    run(Command::new("mdadm")
        .arg(device_path(name))
        .args(["--fail", member, "--remove", member]))?;
    Ok(())
}

/// Take out members whose device has gone (a pulled disk).
pub fn remove_detached(name: &str) -> Result<(), StorageError> {
    run(Command::new("mdadm")
        .arg(device_path(name))
        .args(["--fail", "detached", "--remove", "detached"]))?;
    Ok(())
}

/// Reshape onto `raid_devices` members (after adding the new ones as spares).
pub fn grow(name: &str, raid_devices: usize) -> Result<(), StorageError> {
    run(Command::new("mdadm")
        .arg("--grow")
        .arg(device_path(name))
        .arg(format!("--raid-devices={raid_devices}")))?;
    Ok(())
}

pub fn zero_superblock(disk: &Path) -> Result<(), StorageError> {
    run(Command::new("mdadm").arg("--zero-superblock").arg(disk))?;
    Ok(())
}

/// Start a scrub: md reads every stripe and counts mismatches.
pub fn start_check(kernel: &str) -> Result<(), StorageError> {
    let path = format!("/sys/block/{kernel}/md/sync_action");
    std::fs::write(&path, "check").map_err(|e| StorageError::io(format!("cannot write {path}"), e))
}

/// Stop the array's running check or resync (`idle` in `sync_action`); md goes back to
/// it by itself only for a resync it needs.
pub fn stop_sync(kernel: &str) -> Result<(), StorageError> {
    let path = format!("/sys/block/{kernel}/md/sync_action");
    std::fs::write(&path, "idle").map_err(|e| StorageError::io(format!("cannot write {path}"), e))
}

/// A member as md sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Kernel name of the disk (`nvme0n1`).
    pub disk: String,
    /// md's flags: `in_sync`, `faulty`, `spare`, `write_mostly` …
    pub state: String,
    /// Role in the array, `None` for spares.
    pub slot: Option<u32>,
}

/// The live state of an assembled array.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArrayStatus {
    pub level: String,
    pub raid_disks: u32,
    /// Members missing from a redundant array.
    pub degraded: u32,
    /// `clean`, `active`, `inactive`, `readonly` …
    pub array_state: String,
    /// `idle`, `resync`, `recover`, `reshape`, `check`, `repair`, `frozen`.
    pub sync_action: String,
    /// Sectors done and to do of the running action.
    pub sync_completed: Option<(u64, u64)>,
    /// KiB/s.
    pub sync_speed: Option<u64>,
    pub mismatch_cnt: u64,
    pub members: Vec<MemberStatus>,
    /// Size in bytes.
    pub size_bytes: u64,
}

impl ArrayStatus {
    /// Fraction of the running sync action done.
    pub fn sync_fraction(&self) -> Option<f64> {
        let (done, total) = self.sync_completed?;
        (total > 0).then(|| done as f64 / total as f64)
    }

    pub fn syncing(&self) -> bool {
        !matches!(self.sync_action.as_str(), "idle" | "" | "frozen")
    }
}

/// Read an array's state from sysfs (`sys` is `/sys` outside tests).
pub fn status(sys: &Path, kernel: &str) -> Option<ArrayStatus> {
    let base = sys.join("block").join(kernel);
    let md = base.join("md");
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let num = |p: &str| read(&md.join(p)).and_then(|s| s.parse::<u64>().ok());
    let array_state = read(&md.join("array_state"))?;
    let sync_completed = read(&md.join("sync_completed")).and_then(|s| {
        let (a, b) = s.split_once('/')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    });
    let mut members = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&md) {
        for e in rd.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            let Some(disk) = fname.strip_prefix("dev-") else {
                continue;
            };
            members.push(MemberStatus {
                disk: disk.to_string(),
                state: read(&e.path().join("state")).unwrap_or_default(),
                slot: read(&e.path().join("slot")).and_then(|s| s.parse().ok()),
            });
        }
    }
    members.sort_by(|a, b| a.slot.cmp(&b.slot).then(a.disk.cmp(&b.disk)));
    Some(ArrayStatus {
        level: read(&md.join("level")).unwrap_or_default(),
        raid_disks: num("raid_disks").unwrap_or(0) as u32,
        degraded: num("degraded").unwrap_or(0) as u32,
        array_state,
        sync_action: read(&md.join("sync_action")).unwrap_or_default(),
        sync_completed,
        sync_speed: num("sync_speed"),
        mismatch_cnt: num("mismatch_cnt").unwrap_or(0),
        members,
        size_bytes: read(&base.join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            * 512,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    #[test]
    fn a_recovering_raid5_reads_as_degraded_with_progress() {
        let sys = tempfile::tempdir().unwrap();
        let md = sys.path().join("block/md127/md");
        write(&sys.path().join("block/md127/size"), "6291456\n");
        write(&md.join("array_state"), "clean\n");
        write(&md.join("level"), "raid5\n");
        write(&md.join("raid_disks"), "4\n");
        write(&md.join("degraded"), "1\n");
        write(&md.join("sync_action"), "recover\n");
        write(&md.join("sync_completed"), "524288 / 2097152\n");
        write(&md.join("sync_speed"), "51200\n");
        write(&md.join("mismatch_cnt"), "0\n");
        for (disk, state, slot) in [
            ("nvme0n1", "in_sync", "0"),
            ("nvme1n1", "in_sync", "1"),
            ("nvme2n1", "in_sync", "2"),
            ("nvme4n1", "spare", "3"),
        ] {
            write(&md.join(format!("dev-{disk}/state")), state);
            write(&md.join(format!("dev-{disk}/slot")), slot);
        }
        let st = status(sys.path(), "md127").unwrap();
        assert_eq!((st.raid_disks, st.degraded, st.size_bytes), (4, 1, 3 << 30));
        assert!(st.syncing());
        assert_eq!(st.sync_fraction(), Some(0.25));
        assert_eq!(st.members[3].disk, "nvme4n1");
        assert_eq!(st.members[3].state, "spare");
        assert!(status(sys.path(), "md9").is_none());
    }

    #[test]
    fn redundant_levels_get_a_bitmap_and_single_is_a_one_disk_mirror() {
        let a = level_args(RaidLevel::Raid5, 4);
        assert!(
            a.contains(&"--level=5".to_string()) && a.contains(&"--bitmap=internal".to_string())
        );
        let a = level_args(RaidLevel::Single, 1);
        assert!(a.contains(&"--level=1".to_string()) && a.contains(&"--force".to_string()));
        assert!(!a.contains(&"--bitmap=internal".to_string()));
        assert!(!level_args(RaidLevel::Raid0, 2).contains(&"--bitmap=internal".to_string()));
    }
}
