//! The log ring: every line the services print, plus init's own messages, kept in memory
//! for the console to show and saved to RUSHES-CFG at shutdown.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the ring is mirrored for rushesd's `/v1/logs` (tmpfs; gone at power-off).
pub const LOG_FILE: &str = "/run/rushes/log.txt";

pub struct Ring {
    lines: VecDeque<String>,
    capacity: usize,
    /// The mirror file and how many bytes it holds.
    file: Option<(std::fs::File, u64)>,
    /// Echo the services' lines to the console too (init's own lines always are).
    echo_services: bool,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::with_capacity(capacity),
            capacity,
            file: None,
            echo_services: true,
        }
    }

    /// Record a line from `source` (a service name, or "init"), echoing it to the console.
    pub fn push(&mut self, source: &str, line: &str) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let entry = format!("{secs} {source}: {line}");
        if self.echo_services || source == "init" {
            crate::console::console(&entry);
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(entry);
        self.mirror();
    }

    /// Append the newest line to the mirror file; past 1 MiB, rewrite it from the ring.
    fn mirror(&mut self) {
        use std::io::Write;
        let Some(last) = self.lines.back() else {
            return;
        };
        if self.file.as_ref().is_none_or(|(_, len)| *len > 1 << 20) {
            let Ok(mut f) = std::fs::File::create(LOG_FILE) else {
                return; // /run not mounted yet: the next line tries again
            };
            let mut len = 0;
            for l in &self.lines {
                if writeln!(f, "{l}").is_ok() {
                    len += l.len() as u64 + 1;
                }
            }
            self.file = Some((f, len));
            return;
        }
        if let Some((f, len)) = self.file.as_mut() {
            if writeln!(f, "{last}").is_ok() {
                *len += last.len() as u64 + 1;
            }
        }
    }

    /// A console program now owns the serial line: from here on only init's own lines
    /// are echoed there (and the kernel's errors), so its screen stays readable. The
    /// rest stays in the ring, the log file and the console's Logs screen.
    pub fn quiet_services(&mut self) {
        if self.echo_services {
            self.echo_services = false;
            let _ = std::fs::write("/proc/sys/kernel/printk", "3 4 1 7");
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = &String> {
        self.lines.iter()
    }
}
