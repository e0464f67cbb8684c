//! Warnings about what clients send, rate-limited per client address and kind, so that
//! one client sending garbage cannot flush every real event out of the log.
//!
//! The first warning of a kind from an address is always logged. Others of the same kind
//! from the same address within [`WINDOW`] are counted, and when the window ends one line
//! says how many there were ("312 more like this from 10.0.0.9 in the last minute"). So
//! each address and kind writes at most two lines a minute, however fast it misbehaves.
//! Past [`MAX_TRACKED`] addresses and kinds at once, newcomers are counted together under
//! the unspecified address, so the table stays bounded during a flood from many sources.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the warnings of one kind from one address are gathered into one line.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Addresses and kinds tracked at once.
pub const MAX_TRACKED: usize = 4096;

/// The address under which warnings are counted when the table is full.
pub const OTHERS: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Warnings held back in a window that has ended: to be logged as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    pub peer: IpAddr,
    pub kind: &'static str,
    pub count: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    held_back: u64,
}

/// The windows open now, by address and kind.
#[derive(Debug)]
pub struct PeerWarnings {
    windows: Mutex<HashMap<(IpAddr, &'static str), Window>>,
    /// The window's length in milliseconds.
    window_ms: AtomicU64,
}

impl Default for PeerWarnings {
    fn default() -> Self {
        Self::with_window(WINDOW)
    }
}

impl PeerWarnings {
    pub fn with_window(window: Duration) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            window_ms: AtomicU64::new(window.as_millis() as u64),
        }
    }

    /// Gather warnings over `window` from now on.
    pub fn set_window(&self, window: Duration) {
        self.window_ms
            .store(window.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms.load(Ordering::Relaxed))
    }

    /// Whether a warning of `kind` about `peer` should be logged now (the first of its
    /// window); otherwise it is counted.
    pub fn admit(&self, peer: IpAddr, kind: &'static str) -> bool {
        self.admit_at(peer, kind, Instant::now())
    }

    fn admit_at(&self, peer: IpAddr, kind: &'static str, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let key = if windows.len() >= MAX_TRACKED && !windows.contains_key(&(peer, kind)) {
            (OTHERS, kind)
        } else {
            (peer, kind)
        };
        match windows.get_mut(&key) {
            // A window that has ended but not been swept yet still counts: its line is
            // written by the sweep, and the next window starts after it.
            Some(w) => {
                w.held_back += 1;
                false
            }
            None => {
                windows.insert(
                    key,
                    Window {
                        started: now,
                        held_back: 0,
                    },
                );
                true
            }
        }
    }

    /// Close the windows that have ended; those that held warnings back are returned for
    /// one line each.
    pub fn sweep(&self) -> Vec<HeldBack> {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&self, now: Instant) -> Vec<HeldBack> {
        let window = self.window();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        windows.retain(|&(peer, kind), w| {
            if now.duration_since(w.started) < window {
                return true;
            }
            if w.held_back > 0 {
                due.push(HeldBack {
                    peer,
                    kind,
                    count: w.held_back,
                });
            }
            false
        });
        due
    }

    /// Sweep and log what was held back.
    pub fn log_held_back(&self) {
        let window = self.window();
        let over = if window == WINDOW {
            "the last minute".to_string()
        } else {
            format!("the last {} s", window.as_secs_f64())
        };
        for h in self.sweep() {
            let whom = if h.peer == OTHERS {
                "other clients".to_string()
            } else {
                h.peer.to_string()
            };
            tracing::warn!(
                client = %h.peer,
                kind = h.kind,
                held_back = h.count,
                "{} more like this from {whom} in {over}",
                h.count
            );
        }
    }
}

/// Log a warning about a client, rate-limited per address and kind by `$limiter`
/// ([`PeerWarnings`]): `peer_warn!(limiter, ip, "kind", fields…, "message")`.
#[macro_export]
macro_rules! peer_warn {
    ($limiter:expr, $peer:expr, $kind:literal, $($rest:tt)+) => {
        if $limiter.admit($peer, $kind) {
            tracing::warn!(kind = $kind, $($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn the_first_of_each_kind_and_address_gets_through_and_the_rest_are_counted() {
        let w = PeerWarnings::default();
        let t0 = Instant::now();
        assert!(w.admit_at(ip(9), "bad record", t0));
        for _ in 0..500 {
            assert!(!w.admit_at(ip(9), "bad record", t0));
        }
        // Another kind from the same client, and the same kind from another client.
        assert!(w.admit_at(ip(9), "malformed call", t0));
        assert!(w.admit_at(ip(7), "bad record", t0));
        assert!(w.sweep_at(t0 + Duration::from_secs(59)).is_empty());
        let due = w.sweep_at(t0 + WINDOW);
        assert_eq!(
            due,
            vec![HeldBack {
                peer: ip(9),
                kind: "bad record",
                count: 500
            }]
        );
        // A new window: the first gets through again.
        assert!(w.admit_at(ip(9), "bad record", t0 + WINDOW));
        assert!(!w.admit_at(ip(9), "bad record", t0 + WINDOW));
    }

    #[test]
    fn a_flood_from_many_addresses_keeps_the_table_bounded() {
        let w = PeerWarnings::default();
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 0..(MAX_TRACKED as u32 + 1000) {
            if w.admit_at(IpAddr::from(i.to_be_bytes()), "bad record", t0) {
                logged += 1;
            }
        }
        // One line each for those tracked, one for the rest together.
        assert_eq!(logged, MAX_TRACKED + 1);
        assert!(w.windows.lock().unwrap().len() <= MAX_TRACKED + 1);
        let due = w.sweep_at(t0 + WINDOW);
        assert_eq!(
            due,
            vec![HeldBack {
                peer: OTHERS,
                kind: "bad record",
                count: 999
            }]
        );
        assert!(w.windows.lock().unwrap().is_empty());
    }
}
