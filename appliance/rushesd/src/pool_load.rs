//! How busy the pools a move involves are, apart from the move itself: the bytes a
//! second the block devices under their file systems read and write (the kernel's
//! counters in `/sys/dev/block/MAJ:MIN/stat`), less what the move costs them. Clients on
//! those pools count, and so does any other work there (a scrub, a rebuild, a copy
//! job); clients busy on a pool the move does not touch do not.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The span the rate is measured over: long enough that a window the mover flushes at
/// once (16 MiB) does not look like a client, short enough to notice one within seconds.
const SPAN: Duration = Duration::from_secs(3);
/// Counters are read at most this often (the mover asks at every chunk).
const EVERY: Duration = Duration::from_millis(250);
/// What the devices do for each byte moved: read from the source, written to the
/// target, and read back from the target's disk one window in eight (the mover's
/// DISK_CHECK; the other windows read back from the page cache). A source read from the
/// page cache costs the device nothing, so this may count too much for the move, never
/// too little: a move backs off a little late rather than for itself.
const MOVE_IO_PER_BYTE: f64 = 2.125;

/// One reading: when, the devices' bytes read and written so far, and the bytes the
/// move had copied by then.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    device_bytes: u64,
    moved: u64,
}

/// The devices under a move's pools and their recent readings.
pub struct PoolLoad {
    devices: Vec<(u32, u32)>,
    samples: Mutex<VecDeque<Sample>>,
}

/// Bytes read and written so far by block device `major:minor` (the counters count
/// 512-byte sectors, whatever the device's own size).
fn device_bytes((major, minor): (u32, u32)) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let read = fields.nth(2)??;
    let written = fields.nth(3)??;
    Some((read + written) * 512)
}

/// Bytes a second that were not the move's between two readings.
fn others_rate(old: Sample, new: Sample) -> u64 {
    let secs = new.at.duration_since(old.at).as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    let device = new.device_bytes.saturating_sub(old.device_bytes) as f64;
    let own = new.moved.saturating_sub(old.moved) as f64 * MOVE_IO_PER_BYTE;
    ((device - own).max(0.0) / secs) as u64
}

impl PoolLoad {
    /// The devices under the file systems mounted at `mountpoints` (one device once);
    /// `None` when one has no block device the kernel counts for (a network or virtual
    /// file system): the caller then goes by the box's client counters.
    pub fn of(mountpoints: &[&Path]) -> Option<Self> {
        let mut devices = Vec::new();
        for mount in mountpoints {
            let dev = std::fs::metadata(mount).ok()?.dev();
            let id = (
                rustix::fs::major(dev as rustix::fs::Dev),
                rustix::fs::minor(dev as rustix::fs::Dev),
            );
            device_bytes(id)?;
            if !devices.contains(&id) {
                devices.push(id);
            }
        }
        Some(Self {
            devices,
            samples: Mutex::default(),
        })
    }

    fn read(&self) -> Option<u64> {
        self.devices
            .iter()
            .try_fold(0u64, |sum, d| Some(sum + device_bytes(*d)?))
    }

    /// Bytes a second the pools' devices moved for others over the last few seconds,
    /// given the bytes the move has copied so far (`moved`, which only grows; a move
    /// tried again starts the readings afresh).
    pub fn others(&self, moved: u64) -> u64 {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.back().is_some_and(|s| moved < s.moved) {
            samples.clear();
        }
        if samples
            .back()
            .is_none_or(|s| now.duration_since(s.at) >= EVERY)
        {
            if let Some(device_bytes) = self.read() {
                samples.push_back(Sample {
                    at: now,
                    device_bytes,
                    moved,
                });
            }
            while samples.len() > 2 && now.duration_since(samples[1].at) >= SPAN {
                samples.pop_front();
            }
        }
        match (samples.front(), samples.back()) {
            (Some(old), Some(new)) => others_rate(*old, *new),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moves_own_bytes_are_not_counted_as_a_client() {
        let t = Instant::now();
        let at = |secs: u64, device_bytes: u64, moved: u64| Sample {
            at: t + Duration::from_secs(secs),
            device_bytes,
            moved,
        };
        let mib = 1 << 20;
        // A move of 100 MiB/s alone: the devices did what it costs them.
        assert_eq!(others_rate(at(0, 0, 0), at(2, 425 * mib, 200 * mib)), 0);
        // Its source came from the page cache: less than it costs, still no one else.
        assert_eq!(others_rate(at(0, 0, 0), at(2, 225 * mib, 200 * mib)), 0);
        // A client reading 50 MiB/s from one of the pools beside it.
        assert_eq!(
            others_rate(at(0, 0, 0), at(2, 525 * mib, 200 * mib)),
            50 * mib
        );
        // The move held back: all of it is someone else's.
        assert_eq!(others_rate(at(0, 0, 0), at(3, 90 * mib, 0)), 30 * mib);
        assert_eq!(others_rate(at(1, 0, 0), at(1, 9 * mib, 0)), 0);
    }

    /// The kernel's counters of the device under a folder, read as the mover reads
    /// them, count what is written there and not what is written elsewhere.
    #[test]
    fn a_pools_device_counts_what_is_written_to_it() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let Some(load) = PoolLoad::of(&[dir.path(), dir.path()]) else {
            panic!(
                "{} has no block device with counters in /sys/dev/block",
                dir.path().display()
            );
        };
        assert_eq!(load.devices.len(), 1, "one device counted once");
        let before = load.read().unwrap();
        let mut f = std::fs::File::create(dir.path().join("clip.mov")).unwrap();
        f.write_all(&vec![7u8; 32 << 20]).unwrap();
        f.sync_all().unwrap();
        let written = load.read().unwrap() - before;
        assert!(
            written >= 32 << 20,
            "32 MiB written and synced, the device counted {written} bytes"
        );
        // Nothing of it is the move's: it is all someone else's load.
        assert_eq!(load.others(0), 0, "one reading is no rate yet");
        std::thread::sleep(EVERY);
        f.write_all(&vec![7u8; 16 << 20]).unwrap();
        f.sync_all().unwrap();
        assert!(load.others(0) > 0);
        // A virtual file system has no counters: the box's counters are used instead.
        assert!(PoolLoad::of(&[Path::new("/proc")]).is_none());
    }
}
