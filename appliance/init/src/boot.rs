//! The boot slot: which one we came up from, and blessing it once the stack is healthy,
//! so systemd-boot stops counting its tries (`rushes-a+2-1.conf` becomes `rushes-a.conf`).
//! A slot never blessed runs out of tries and is sorted after the other one.

use std::path::Path;
use std::time::Duration;

use crate::log::Ring;

const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
const ESP_MOUNT: &str = "/run/rushes/esp";

/// The slot on the kernel command line (`rushes.slot=a`).
pub fn slot() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rushes.slot=").map(str::to_string))
}

/// The entry systemd-boot started, from its EFI variable (UTF-16, after 4 attribute bytes).
fn selected_entry() -> Option<String> {
    let raw = std::fs::read(format!(
        "/sys/firmware/efi/efivars/LoaderEntrySelected-{LOADER_GUID}"
    ))
    .ok()?;
    let units: Vec<u16> = raw
        .get(4..)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

/// Rename the booted entry to drop its try counter.
pub fn bless(ring: &mut Ring) {
    let Some(entry) = selected_entry() else {
        ring.push("init", "not started by systemd-boot: nothing to bless");
        return;
    };
    let id = entry.trim_end_matches(".conf");
    let id = id.split('+').next().unwrap_or(id).to_string();
    let device = [
        "/dev/disk/by-partlabel/RUSHES-BOOT",
        "/dev/disk/by-label/RUSHES-BOOT",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    let Some(device) = device else {
        ring.push(
            "init",
            "boot partition RUSHES-BOOT not found: cannot bless the boot entry",
        );
        return;
    };
    let _ = std::fs::create_dir_all(ESP_MOUNT);
    if let Err(e) = rustix::mount::mount(
        device,
        ESP_MOUNT,
        "vfat",
        rustix::mount::MountFlags::empty(),
        None,
    ) {
        ring.push("init", &format!("cannot mount the boot partition: {e}"));
        return;
    }
    let entries = Path::new(ESP_MOUNT).join("loader/entries");
    let counted = std::fs::read_dir(&entries).ok().and_then(|rd| {
        rd.filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(&format!("{id}+")) && n.ends_with(".conf"))
    });
    match counted {
        Some(name) => {
            match std::fs::rename(entries.join(&name), entries.join(format!("{id}.conf"))) {
                Ok(()) => ring.push("init", &format!("boot entry {name} blessed: slot is good")),
                Err(e) => ring.push("init", &format!("cannot bless {name}: {e}")),
            }
        }
        None => ring.push("init", &format!("boot entry {id} already blessed")),
    }
    rustix::fs::sync();
    std::thread::sleep(Duration::from_millis(50));
    let _ = rustix::mount::unmount(ESP_MOUNT, rustix::mount::UnmountFlags::empty());
}
