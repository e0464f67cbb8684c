//! Rate caps: a rule names clients (networks) and the most they may move together, in
//! READ and WRITE bytes a second ("render nodes at most 1 GB/s together"). A client over
//! its cap is slowed, never refused or cut off mid-call: its call that comes alone is
//! answered once the rule's debt is paid, and its queued calls stay queued while other
//! clients' are served (see [`crate::fair`]).
//!
//! Each rule is a token bucket filled at the cap and holding a tenth of a second of it
//! (at least 1 MiB): a call is let through while the bucket is not in debt and takes its
//! bytes, so the rate over any second stays within the cap plus one call.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One cap, as written in the configuration (`[[cap]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    /// What the rule is called in logs and the API ("render-nodes").
    pub name: String,
    /// The clients it covers, as networks ("10.0.20.0/24"); the first rule that covers
    /// a client is its rule.
    pub clients: Vec<ipnet::IpNet>,
    /// The most those clients may read and write together, in MB (10^6 bytes) a second.
    pub cap_mb_s: u64,
}

/// Why a set of caps is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateError {
    #[error("cap {0:?} covers no clients: give at least one network in `clients`")]
    NoClients(String),
    #[error("cap {0:?} is 0 MB/s: a cap must let something through (remove the rule for no cap)")]
    Zero(String),
    #[error("two caps are named {0:?}: names must be unique")]
    Duplicate(String),
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may go now; below zero, the debt to be paid before the next call.
    tokens: f64,
    filled_at: Instant,
}

#[derive(Debug)]
struct Cap {
    rule: RateRule,
    bucket: Mutex<Bucket>,
}

impl Cap {
    fn rate(&self) -> f64 {
        self.rule.cap_mb_s as f64 * 1e6
    }

    fn depth(&self) -> f64 {
        (self.rate() / 10.0).max((1 << 20) as f64)
    }

    fn fill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.filled_at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate()).min(self.depth());
        b.filled_at = now;
    }
}

/// The caps in force.
#[derive(Debug, Default)]
pub struct RateCaps {
    caps: Vec<Cap>,
}

impl RateCaps {
    pub fn new(rules: &[RateRule]) -> Result<Self, RateError> {
        let mut names = std::collections::HashSet::new();
        for r in rules {
            if r.clients.is_empty() {
                return Err(RateError::NoClients(r.name.clone()));
            }
            if r.cap_mb_s == 0 {
                return Err(RateError::Zero(r.name.clone()));
            }
            if !names.insert(r.name.as_str()) {
                return Err(RateError::Duplicate(r.name.clone()));
            }
        }
        let now = Instant::now();
        let caps = rules
            .iter()
            .map(|rule| {
                let cap = Cap {
                    rule: rule.clone(),
                    bucket: Mutex::new(Bucket {
                        tokens: 0.0,
                        filled_at: now,
                    }),
                };
                let depth = cap.depth();
                cap.bucket.lock().unwrap_or_else(|p| p.into_inner()).tokens = depth;
                cap
            })
            .collect();
        Ok(Self { caps })
    }

    pub fn is_empty(&self) -> bool {
        self.caps.is_empty()
    }

    /// The cap that covers `client`, if any.
    pub fn rule_for(&self, client: IpAddr) -> Option<usize> {
        if self.caps.is_empty() {
            return None;
        }
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.caps
            .iter()
            .position(|c| c.rule.clients.iter().any(|net| net.contains(&client)))
    }

    /// When the cap's debt is paid, if it is in debt at `now`.
    pub fn ready_at(&self, cap: usize, now: Instant) -> Option<Instant> {
        let c = self.caps.get(cap)?;
        let mut b = c.bucket.lock().unwrap_or_else(|p| p.into_inner());
        c.fill(&mut b, now);
        (b.tokens < 0.0).then(|| now + Duration::from_secs_f64(-b.tokens / c.rate()))
    }

    /// Take `bytes` from the cap's bucket (it may go into debt).
    pub fn take(&self, cap: usize, bytes: u64, now: Instant) {
        if let Some(c) = self.caps.get(cap) {
            let mut b = c.bucket.lock().unwrap_or_else(|p| p.into_inner());
            c.fill(&mut b, now);
            b.tokens -= bytes as f64;
        }
    }

    /// Wait until the cap is out of debt, then take `bytes`: for a call answered on the
    /// thread that read it.
    pub fn wait_and_take(&self, cap: usize, bytes: u64) {
        while let Some(at) = self.ready_at(cap, Instant::now()) {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        self.take(cap, bytes, Instant::now());
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &RateRule> {
        self.caps.iter().map(|c| &c.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, net: &str, cap_mb_s: u64) -> RateRule {
        RateRule {
            name: name.into(),
            clients: vec![net.parse().unwrap()],
            cap_mb_s,
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        assert_eq!(
            RateCaps::new(&[rule("render", "10.0.20.0/24", 0)]).unwrap_err(),
            RateError::Zero("render".into())
        );
        let mut empty = rule("render", "10.0.20.0/24", 100);
        empty.clients.clear();
        assert_eq!(
            RateCaps::new(&[empty]).unwrap_err(),
            RateError::NoClients("render".into())
        );
        assert_eq!(
            RateCaps::new(&[rule("a", "10.0.0.0/8", 1), rule("a", "10.0.0.0/8", 2)]).unwrap_err(),
            RateError::Duplicate("a".into())
        );
    }

    #[test]
    fn the_first_rule_covering_a_client_is_its_rule() {
        let caps = RateCaps::new(&[
            rule("render", "10.0.20.0/24", 1000),
            rule("all", "0.0.0.0/0", 5000),
        ])
        .unwrap();
        assert_eq!(caps.rule_for("10.0.20.7".parse().unwrap()), Some(0));
        assert_eq!(caps.rule_for("::ffff:10.0.20.7".parse().unwrap()), Some(0));
        assert_eq!(caps.rule_for("10.0.30.7".parse().unwrap()), Some(1));
        assert_eq!(caps.rule_for("fd00::1".parse().unwrap()), None);
    }

    #[test]
    fn a_cap_lets_its_rate_through_and_no_more() {
        // 100 MB/s: a 10 MB bucket, then 100 MB a second.
        let caps = RateCaps::new(&[rule("render", "10.0.20.0/24", 100)]).unwrap();
        let t0 = Instant::now();
        let mut now = t0;
        let mut moved = 0u64;
        // A client asking for 1 MiB whenever the cap lets it, for 10 simulated seconds.
        while now < t0 + Duration::from_secs(10) {
            match caps.ready_at(0, now) {
                Some(at) => now = at,
                None => {
                    caps.take(0, 1 << 20, now);
                    moved += 1 << 20;
                }
            }
        }
        let rate = moved as f64 / 10.0 / 1e6;
        assert!(
            (100.0..=102.5).contains(&rate),
            "moved {rate:.1} MB/s under a 100 MB/s cap"
        );
    }
}
