//! Slots A and B on the EFI system partition, as systemd-boot sees them: each is a kernel,
//! an initramfs and a root image under `rushes/<slot>/` and a boot entry
//! `loader/entries/rushes-<slot>…`.
//!
//! systemd-boot starts the first entry in its order: entries whose tries ran out
//! (`+0-N`) last, the rest by `sort-key`. A slot's sort-key carries a generation that
//! grows with every update (`rushes-999997` comes before `rushes-999998`), so the slot
//! written last boots first. A new entry carries three tries (`+3`); init blesses it
//! (drops the counter) once the stack is ready, and an entry never blessed runs out of
//! tries, sorts last, and the box comes back on the other slot by itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{copy_payload_file, expect_end, Checked, Refused, PAYLOAD};

/// Tries a freshly written slot gets before systemd-boot gives up on it.
pub const TRIES: u32 = 3;
const GENERATION_BASE: u32 = 999_999;

/// The kernel command line of a slot running `version`.
pub fn cmdline(slot: char, version: &str) -> String {
    format!(
        "console=tty0 console=ttyS0,115200 panic=10 rushes.slot={slot} rushes.version={version}"
    )
}

/// The text of slot `slot`'s boot entry.
pub fn entry_text(slot: char, generation: u32, version: &str) -> String {
    format!(
        "title Rushes {version} (slot {upper})\nversion {version}\nsort-key rushes-{key:06}\nlinux /rushes/{slot}/vmlinuz\ninitrd /rushes/{slot}/initrd.zst\noptions {}\n",
        cmdline(slot, version),
        upper = slot.to_ascii_uppercase(),
        key = GENERATION_BASE.saturating_sub(generation),
    )
}

/// The file name of a new entry, with its tries.
pub fn entry_name(slot: char) -> String {
    format!("rushes-{slot}+{TRIES}.conf")
}

/// What systemd-boot will make of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotState {
    /// Blessed: it came up and its stack was ready.
    Good,
    /// Written and not yet blessed: this many tries left.
    Trying(u32),
    /// Its tries ran out without the stack getting ready.
    Bad,
    /// No entry or no files: nothing to boot.
    Empty,
}

/// One slot as it is on the ESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub name: char,
    pub state: SlotState,
    pub version: Option<String>,
    pub generation: u32,
    /// The entry's file name under loader/entries.
    pub entry: Option<String>,
}

/// The parts of an entry's file name: slot, tries left, tries done.
fn parse_entry_name(name: &str) -> Option<(char, Option<u32>)> {
    let stem = name.strip_suffix(".conf")?.strip_prefix("rushes-")?;
    let (slot, counter) = match stem.split_once('+') {
        Some((s, c)) => (s, Some(c)),
        None => (stem, None),
    };
    let slot = match slot {
        "a" => 'a',
        "b" => 'b',
        _ => return None,
    };
    let left = match counter {
        None => None,
        Some(c) => Some(c.split('-').next()?.parse().ok()?),
    };
    Some((slot, left))
}

/// The ESP (or, in host mode, a folder laid out like one).
pub struct Esp {
    root: PathBuf,
}

impl Esp {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn entries_dir(&self) -> PathBuf {
        self.root.join("loader/entries")
    }

    fn slot_dir(&self, slot: char) -> PathBuf {
        self.root.join("rushes").join(slot.to_string())
    }

    /// Both slots, in the order systemd-boot will try them.
    pub fn slots(&self) -> std::io::Result<Vec<Slot>> {
        let mut slots: Vec<Slot> = ['a', 'b']
            .into_iter()
            .map(|name| Slot {
                name,
                state: SlotState::Empty,
                version: None,
                generation: 0,
                entry: None,
            })
            .collect();
        for entry in std::fs::read_dir(self.entries_dir())? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some((name, left)) = parse_entry_name(&file) else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            };
            let generation = field("sort-key ")
                .and_then(|k| k.strip_prefix("rushes-")?.parse::<u32>().ok())
                .map(|k| GENERATION_BASE.saturating_sub(k))
                .unwrap_or(0);
            let files = PAYLOAD
                .iter()
                .all(|f| self.slot_dir(name).join(f).is_file());
            let slot = slots.iter_mut().find(|s| s.name == name).expect("a or b");
            slot.entry = Some(file);
            slot.generation = generation;
            slot.version = field("version ");
            slot.state = match (files, left) {
                (false, _) => SlotState::Empty,
                (true, None) => SlotState::Good,
                (true, Some(0)) => SlotState::Bad,
                (true, Some(n)) => SlotState::Trying(n),
            };
        }
        slots.sort_by_key(|s| {
            (
                matches!(s.state, SlotState::Bad | SlotState::Empty),
                std::cmp::Reverse(s.generation),
                s.name,
            )
        });
        Ok(slots)
    }

    fn remove_entries(&self, slot: char) -> Result<(), Refused> {
        for s in self
            .slots()
            .map_err(Refused::io("cannot read the boot entries"))?
        {
            if let (true, Some(entry)) = (s.name == slot, s.entry) {
                std::fs::remove_file(self.entries_dir().join(&entry))
                    .map_err(Refused::io(format!("cannot remove boot entry {entry}")))?;
            }
        }
        sync_dir(&self.entries_dir())
    }

    /// Write the payload that follows a checked header into `slot`, then its entry, so
    /// that it boots next. The slot's entry goes first, so a cut between here and the end
    /// leaves a slot that is not booted rather than half of one.
    pub fn install(
        &self,
        slot: char,
        checked: &Checked,
        bundle: &mut impl std::io::Read,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), Refused> {
        let dir = self.slot_dir(slot);
        let need = checked.manifest.payload_bytes();
        let freed: u64 = PAYLOAD
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum();
        let stat = rustix::fs::statvfs(&self.root)
            .map_err(|e| Refused::io("cannot read the boot partition's free space")(e.into()))?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if need > free.saturating_add(freed) {
            return Err(Refused::Payload {
                name: "bundle".into(),
                why: format!(
                    "it needs {need} bytes in slot {slot}; the boot partition has {} with the slot's old files removed",
                    free.saturating_add(freed)
                ),
            });
        }
        self.remove_entries(slot)?;
        std::fs::create_dir_all(&dir)
            .map_err(Refused::io(format!("cannot create {}", dir.display())))?;
        for f in PAYLOAD {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let mut done_before = 0;
        for entry in &checked.manifest.files {
            let path = dir.join(&entry.name);
            let result = (|| {
                let mut file = std::fs::File::create(&path)
                    .map_err(Refused::io(format!("cannot create {}", path.display())))?;
                copy_payload_file(bundle, entry, &mut file, |n| {
                    progress(done_before + n, need)
                })?;
                file.sync_all()
                    .map_err(Refused::io(format!("cannot write {}", path.display())))
            })();
            if let Err(e) = result {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            done_before += entry.size;
        }
        expect_end(bundle)?;
        sync_dir(&dir)?;
        self.promote(slot, &checked.manifest.version)
    }

    /// Make `slot` (which holds `version`) the one that boots next, with fresh tries.
    pub fn promote(&self, slot: char, version: &str) -> Result<(), Refused> {
        let slots = self
            .slots()
            .map_err(Refused::io("cannot read the boot entries"))?;
        let generation = slots.iter().map(|s| s.generation).max().unwrap_or(0) + 1;
        let entries = self.entries_dir();
        let tmp = entries.join(format!(".rushes-{slot}.new"));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(entry_text(slot, generation, version).as_bytes())?;
            f.sync_all()
        })();
        result.map_err(Refused::io("cannot write the new boot entry"))?;
        self.remove_entries(slot)?;
        std::fs::rename(&tmp, entries.join(entry_name(slot)))
            .map_err(Refused::io("cannot put the new boot entry in place"))?;
        sync_dir(&entries)
    }

    /// Lay out both slots with the same payload (kernel, initramfs, root image), A first
    /// (as `mkimage` writes the ESP), for host mode and tests.
    pub fn create(
        root: &Path,
        version: &str,
        payload: [&[u8]; PAYLOAD.len()],
    ) -> std::io::Result<Self> {
        let esp = Self::new(root);
        std::fs::create_dir_all(esp.entries_dir())?;
        for (slot, generation) in [('a', 2), ('b', 1)] {
            let dir = esp.slot_dir(slot);
            std::fs::create_dir_all(&dir)?;
            for (name, bytes) in PAYLOAD.iter().zip(payload) {
                std::fs::write(dir.join(name), bytes)?;
            }
            std::fs::write(
                esp.entries_dir().join(entry_name(slot)),
                entry_text(slot, generation, version),
            )?;
        }
        Ok(esp)
    }
}

fn sync_dir(dir: &Path) -> Result<(), Refused> {
    let f =
        std::fs::File::open(dir).map_err(Refused::io(format!("cannot open {}", dir.display())))?;
    rustix::fs::syncfs(&f)
        .map_err(|e| Refused::io(format!("cannot sync {}", dir.display()))(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_give_slot_and_tries() {
        assert_eq!(parse_entry_name("rushes-a.conf"), Some(('a', None)));
        assert_eq!(parse_entry_name("rushes-b+3.conf"), Some(('b', Some(3))));
        assert_eq!(parse_entry_name("rushes-a+2-1.conf"), Some(('a', Some(2))));
        assert_eq!(parse_entry_name("rushes-b+0-3.conf"), Some(('b', Some(0))));
        assert_eq!(parse_entry_name("rushes-c.conf"), None);
        assert_eq!(parse_entry_name("rushes-a+x.conf"), None);
        assert_eq!(parse_entry_name("other.conf"), None);
    }

    #[test]
    fn the_newest_generation_boots_first_and_a_slot_out_of_tries_last() {
        let dir = tempfile::tempdir().unwrap();
        let esp = Esp::create(dir.path(), "1.0.0", [b"k", b"i", b"r"]).unwrap();
        let order =
            |esp: &Esp| -> Vec<char> { esp.slots().unwrap().iter().map(|s| s.name).collect() };
        assert_eq!(order(&esp), ['a', 'b'], "a fresh image boots A");
        esp.promote('b', "1.0.0").unwrap();
        assert_eq!(order(&esp), ['b', 'a']);
        let slots = esp.slots().unwrap();
        assert_eq!(slots[0].state, SlotState::Trying(3));
        // systemd-boot counts B's tries down to nothing: A boots again.
        let entries = dir.path().join("loader/entries");
        std::fs::rename(
            entries.join("rushes-b+3.conf"),
            entries.join("rushes-b+0-3.conf"),
        )
        .unwrap();
        assert_eq!(order(&esp), ['a', 'b']);
        assert_eq!(esp.slots().unwrap()[1].state, SlotState::Bad);
        // Promoting A again keeps it first, with a newer generation than B's.
        esp.promote('a', "1.0.0").unwrap();
        let slots = esp.slots().unwrap();
        assert_eq!(slots[0].name, 'a');
        assert!(slots[0].generation > 2, "{slots:?}");
        assert_eq!(
            std::fs::read_dir(&entries).unwrap().count(),
            2,
            "one entry per slot, nothing left over"
        );
    }
}
