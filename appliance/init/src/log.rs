//! The log ring: every line the services print, plus init's own messages, kept in memory
//! for the console to show and saved to RUSHES-CFG at shutdown.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Ring {
    lines: VecDeque<String>,
    capacity: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Record a line from `source` (a service name, or "init"), echoing it to the console.
    pub fn push(&mut self, source: &str, line: &str) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let entry = format!("{secs} {source}: {line}");
        crate::system::console(&entry);
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(entry);
    }

    pub fn lines(&self) -> impl Iterator<Item = &String> {
        self.lines.iter()
    }
}
