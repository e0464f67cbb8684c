//! How fast a block device reads: several streams of large direct reads (around the page
//! cache, as a pool under load is read) spread over the device, for a bounded time. What
//! a pool can give is measured with it before the box promises a client a rate.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

/// One read: large enough that the device, not the call, sets the pace.
pub const CHUNK: usize = 1 << 20;

/// What a measurement may take at most.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Streams reading at once, each from its own part of the device.
    pub streams: usize,
    /// Time spent reading.
    pub time: Duration,
    /// Bytes read in all.
    pub bytes: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            streams: 4,
            time: Duration::from_secs(3),
            bytes: 8 << 30,
        }
    }
}

/// What was read and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadRate {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl ReadRate {
    /// MB (10^6 bytes) a second.
    pub fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-6) / 1e6
    }
}

/// Why a device could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum SpeedError {
    #[error("cannot open {path} for direct reads: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is empty or its size cannot be read")]
    Empty { path: String },
    #[error("reading {path} failed at byte {at}: {source}")]
    Read {
        path: String,
        at: u64,
        source: std::io::Error,
    },
}

/// Read `device` within `budget` and say how fast it went. Only reads: safe on a device
/// in use (a mounted pool).
pub fn measure_reads(device: &Path, budget: Budget) -> Result<ReadRate, SpeedError> {
    let path = device.display().to_string();
    let open = |flags| {
        rustix::fs::open(
            device,
            OFlags::RDONLY | OFlags::CLOEXEC | flags,
            Mode::empty(),
        )
    };
    // Direct reads where the device takes them (block devices do; tmpfs files in tests
    // do not), so the page cache does not flatter the figure.
    let fd = open(OFlags::DIRECT)
        .or_else(|_| open(OFlags::empty()))
        .map_err(|e| SpeedError::Open {
            path: path.clone(),
            source: e.into(),
        })?;
    let size = device_size(&fd)
        .filter(|&s| s >= CHUNK as u64)
        .ok_or(SpeedError::Empty { path: path.clone() })?;
    let streams = budget.streams.clamp(1, 64);
    // Each stream's part, whole chunks, so that every read stays aligned.
    let part = (size / streams as u64) / CHUNK as u64 * CHUNK as u64;
    let per_stream = (budget.bytes / streams as u64).max(CHUNK as u64);
    let started = Instant::now();
    let deadline = started + budget.time;
    let results: Vec<Result<u64, SpeedError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|i| {
                let (fd, path) = (&fd, &path);
                let start = if part == 0 { 0 } else { i as u64 * part };
                let end = if part == 0 { size } else { start + part };
                scope.spawn(move || {
                    read_stream(fd, path, start, end.min(start + per_stream), deadline)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(0)))
            .collect()
    });
    let elapsed = started.elapsed();
    let mut bytes = 0;
    for r in results {
        bytes += r?;
    }
    Ok(ReadRate { bytes, elapsed })
}

/// Read `[start, end)` in chunks until done or `deadline`; the bytes read.
fn read_stream(
    fd: &OwnedFd,
    path: &str,
    start: u64,
    end: u64,
    deadline: Instant,
) -> Result<u64, SpeedError> {
    // Direct I/O wants a buffer aligned to the device's block: take an aligned window
    // of a slightly larger one.
    let mut buf = vec![0u8; CHUNK + 4096];
    let skip = buf.as_ptr().align_offset(4096);
    let window = &mut buf[skip..skip + CHUNK];
    let mut at = start;
    while at < end && Instant::now() < deadline {
        let want = ((end - at) as usize).min(CHUNK);
        match rustix::io::pread(fd, &mut window[..want], at) {
            Ok(0) => break,
            Ok(n) => at += n as u64,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(SpeedError::Read {
                    path: path.into(),
                    at,
                    source: e.into(),
                })
            }
        }
    }
    Ok(at - start)
}

/// The size of a block device or a file, in bytes (where a seek to its end lands).
fn device_size(fd: &OwnedFd) -> Option<u64> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::End(0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_within_the_budget_and_its_rate_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        std::fs::write(&file, vec![7u8; 8 * CHUNK]).unwrap();
        let rate = measure_reads(
            &file,
            Budget {
                streams: 3,
                time: Duration::from_secs(10),
                bytes: 1 << 40,
            },
        )
        .unwrap();
        // Three parts of two whole chunks each: the odd 2 MiB at the end is not read.
        assert_eq!(rate.bytes, 6 * CHUNK as u64);
        assert!(rate.mb_s() > 0.0);
        let capped = measure_reads(
            &file,
            Budget {
                streams: 2,
                time: Duration::from_secs(10),
                bytes: 2 * CHUNK as u64,
            },
        )
        .unwrap();
        assert_eq!(capped.bytes, 2 * CHUNK as u64);
    }

    #[test]
    fn a_missing_or_tiny_device_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = measure_reads(&dir.path().join("nope"), Budget::default()).unwrap_err();
        assert!(e.to_string().starts_with("cannot open"), "{e}");
        let tiny = dir.path().join("tiny");
        std::fs::write(&tiny, b"x").unwrap();
        let e = measure_reads(&tiny, Budget::default()).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
    }
}
