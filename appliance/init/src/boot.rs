//! The boot slot: which one we came up from, and blessing it once the stack is healthy,
//! so systemd-boot stops counting its tries (`rushes-a+2-1.conf` becomes `rushes-a.conf`).
//! A slot never blessed runs out of tries and is sorted after the other one: a slot that
//! panics reboots by itself (panic=10), and one whose stack never gets ready is rebooted
//! by [`give_up`] once the other slot is known good.

use std::path::Path;
use std::time::Duration;

use crate::log::Ring;

const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// Where RUSHES-BOOT is mounted while init looks at or writes to it.
pub const ESP_MOUNT: &str = "/run/rushes/esp";

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

/// How long a freshly written slot's stack has to get ready before init reboots it.
pub const READY_DEADLINE: Duration = Duration::from_secs(300);

/// Whether a boot whose stack is not ready should be given up: it came from an entry
/// still counting tries (written by an update, never blessed), and the other slot's
/// entry was blessed, so the boot loader has a good slot to go back to. A fresh stick
/// (both slots counting) keeps trying rather than rebooting for ever.
pub fn should_give_up(selected: &str, entries: &[String]) -> bool {
    // systemd-boot names the entry with or without its counter, depending on its version.
    let stem = selected.trim_end_matches(".conf");
    let id = stem.split('+').next().unwrap_or(stem);
    let counting = entries
        .iter()
        .any(|e| e.starts_with(&format!("{id}+")) && e.ends_with(".conf"));
    if !counting {
        return false;
    }
    let other = match id {
        "rushes-a" => "rushes-b.conf",
        "rushes-b" => "rushes-a.conf",
        _ => return false,
    };
    entries.iter().any(|e| e == other)
}

/// Mount the ESP, run `f` on its `loader/entries` folder, unmount.
fn with_entries<T>(ring: &mut Ring, f: impl FnOnce(&Path, &mut Ring) -> T) -> Option<T> {
    let device = [
        "/dev/disk/by-partlabel/RUSHES-BOOT",
        "/dev/disk/by-label/RUSHES-BOOT",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    let Some(device) = device else {
        ring.push("init", "boot partition RUSHES-BOOT not found");
        return None;
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
        return None;
    }
    let out = f(&Path::new(ESP_MOUNT).join("loader/entries"), ring);
    rustix::fs::sync();
    std::thread::sleep(Duration::from_millis(50));
    let _ = rustix::mount::unmount(ESP_MOUNT, rustix::mount::UnmountFlags::empty());
    Some(out)
}

/// The stack did not get ready within [`READY_DEADLINE`]: true when this boot should be
/// given up (see [`should_give_up`]), said on the console either way.
pub fn not_ready(ring: &mut Ring) -> bool {
    let Some(selected) = selected_entry() else {
        return false;
    };
    let give_up = with_entries(ring, |entries, _| {
        let names: Vec<String> = std::fs::read_dir(entries)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        should_give_up(&selected, &names)
    })
    .unwrap_or(false);
    if give_up {
        ring.push(
            "init",
            &format!("the stack is not ready after {}s on the new slot ({selected}): rebooting so the boot loader goes back to the good slot once this one's tries run out", READY_DEADLINE.as_secs()),
        );
    } else {
        ring.push(
            "init",
            &format!(
                "the stack is not ready after {}s; no known-good slot to go back to, so waiting",
                READY_DEADLINE.as_secs()
            ),
        );
    }
    give_up
}

/// Rename the booted entry to drop its try counter.
pub fn bless(ring: &mut Ring) {
    let Some(entry) = selected_entry() else {
        ring.push("init", "not started by systemd-boot: nothing to bless");
        return;
    };
    let id = entry.trim_end_matches(".conf");
    let id = id.split('+').next().unwrap_or(id).to_string();
    with_entries(ring, |entries, ring| {
        let counted = std::fs::read_dir(entries).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with(&format!("{id}+")) && n.ends_with(".conf"))
        });
        match counted {
            Some(name) => {
                match std::fs::rename(entries.join(&name), entries.join(format!("{id}.conf"))) {
                    Ok(()) => {
                        ring.push("init", &format!("boot entry {name} blessed: slot is good"))
                    }
                    Err(e) => ring.push("init", &format!("cannot bless {name}: {e}")),
                }
            }
            None => ring.push("init", &format!("boot entry {id} already blessed")),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unblessed_slot_with_a_good_one_to_go_back_to_is_given_up() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // After an update: B counting its tries, A blessed.
        assert!(should_give_up(
            "rushes-b+2-1.conf",
            &names(&["rushes-a.conf", "rushes-b+2-1.conf"])
        ));
        assert!(should_give_up(
            "rushes-a",
            &names(&["rushes-b.conf", "rushes-a+0-3.conf"])
        ));
        // A fresh stick: both counting, nothing known good.
        assert!(!should_give_up(
            "rushes-a+2-1.conf",
            &names(&["rushes-a+2-1.conf", "rushes-b+3.conf"])
        ));
        // A blessed slot is never given up.
        assert!(!should_give_up(
            "rushes-a.conf",
            &names(&["rushes-a.conf", "rushes-b.conf"])
        ));
        // An entry that is not ours.
        assert!(!should_give_up("other+1.conf", &names(&["rushes-a.conf"])));
    }
}
