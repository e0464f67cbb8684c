//! Rate caps and reservations: a rule names clients (networks), shares, or both, and the
//! most their calls may move together in READ and WRITE bytes a second ("render nodes at
//! most 1 GB/s together"), or a rate served to them before anyone else's ("suite-3 gets
//! 400 MB/s", "the dailies share gets 300 MB/s"). A client over its cap is slowed, never
//! refused or cut off mid-call: its call that comes alone is answered once the rule's
//! debt is paid, and its queued calls stay queued while other clients' are served (see
//! [`crate::fair`]).
//!
//! A call's share is read from its file handle before the handle is checked (the check
//! comes when the call is answered): a client that forges one is scheduled under that
//! share's rule for the one call, whose answer is then a stale-handle error.
//!
//! Each rule is a token bucket filled at the cap and holding a tenth of a second of it
//! (at least 1 MiB): a call is let through while the bucket is not in debt and takes its
//! bytes, so the rate over any second stays within the cap plus one call.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One rule, as written in the configuration (`[[rate]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    /// What the rule is called in logs and the API ("render-nodes").
    pub name: String,
    /// The clients it covers, as networks ("10.0.20.0/24"); none: every client (of the
    /// shares it names). The first rule that covers a call is its rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ipnet::IpNet>,
    /// The shares it covers, by name; none: every share (of the clients it names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<String>,
    /// The most those clients may read and write together, in MB (10^6 bytes) a second.
    #[serde(default)]
    pub cap_mb_s: Option<u64>,
    /// The rate served to those clients before anyone else's calls, in MB a second.
    #[serde(default)]
    pub reserve_mb_s: Option<u64>,
}

/// Why a set of caps is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateError {
    #[error("rate rule {0:?} covers nobody in particular: give networks in `clients`, share names in `shares`, or both")]
    NoClients(String),
    #[error("rate rule {0:?} has a rate of 0 MB/s: a cap must let something through and a reservation must reserve something")]
    Zero(String),
    #[error("rate rule {0:?} neither caps nor reserves: give cap_mb_s, reserve_mb_s or both")]
    Empty(String),
    #[error("rate rule {name:?} reserves {reserve} MB/s but caps at {cap} MB/s: a reservation cannot exceed the cap")]
    ReserveOverCap {
        name: String,
        reserve: u64,
        cap: u64,
    },
    #[error("two rate rules are named {0:?}: names must be unique")]
    Duplicate(String),
}

#[derive(Debug)]
struct Bucket {
    /// Bytes a second it fills at.
    rate: f64,
    /// What it holds at most (and, for a reservation, owes at most).
    depth: f64,
    /// Bytes that may go now; below zero, the debt to be paid first.
    tokens: f64,
    filled_at: Instant,
}

impl Bucket {
    fn new(mb_s: u64, now: Instant) -> Mutex<Self> {
        let rate = mb_s as f64 * 1e6;
        let depth = (rate / 10.0).max((1 << 20) as f64);
        Mutex::new(Self {
            rate,
            depth,
            tokens: depth,
            filled_at: now,
        })
    }

    fn fill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.filled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.depth);
        self.filled_at = now;
    }
}

fn lock(b: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
struct Rule {
    rule: RateRule,
    /// The handle ids of the shares it names.
    share_ids: Vec<u32>,
    cap: Option<Mutex<Bucket>>,
    reserve: Option<Mutex<Bucket>>,
}

/// A set of rate rules with their buckets. A set never changes: new rules make a new
/// set, swapped in whole through [`LiveRates`].
#[derive(Debug, Default)]
pub struct RateRuleSet {
    rules: Vec<Rule>,
    reserving: bool,
    /// Some rule names shares: a connection's calls may fall under different rules.
    by_share: bool,
    /// Which set this is (0: the empty default set).
    id: u64,
}

/// Gives each set made its own id, so that who cached a rule index can tell it is stale.
static SETS_MADE: AtomicU64 = AtomicU64::new(0);

/// The rule set in force, which the admin may replace while clients are served.
#[derive(Debug, Default)]
pub struct LiveRates {
    current: RwLock<Arc<RateRuleSet>>,
    /// The id of the current set, read without the lock on every call.
    id: AtomicU64,
}

impl LiveRates {
    pub fn new(set: RateRuleSet) -> Self {
        Self {
            id: AtomicU64::new(set.id),
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<RateRuleSet> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether `set` is still the one in force.
    pub fn is_current(&self, set: &RateRuleSet) -> bool {
        self.id.load(Ordering::Acquire) == set.id
    }

    /// Put `set` in force: calls already waiting are counted under it from their next
    /// turn; its buckets start full.
    pub fn replace(&self, set: RateRuleSet) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        self.id.store(set.id, Ordering::Release);
        *current = Arc::new(set);
    }
}

impl RateRuleSet {
    pub fn new(rules: &[RateRule]) -> Result<Self, RateError> {
        let mut names = std::collections::HashSet::new();
        for r in rules {
            let name = || r.name.clone();
            if r.clients.is_empty() && r.shares.is_empty() {
                return Err(RateError::NoClients(name()));
            }
            match (r.cap_mb_s, r.reserve_mb_s) {
                (None, None) => return Err(RateError::Empty(name())),
                (Some(0), _) | (_, Some(0)) => return Err(RateError::Zero(name())),
                (Some(cap), Some(reserve)) if reserve > cap => {
                    return Err(RateError::ReserveOverCap {
                        name: name(),
                        reserve,
                        cap,
                    })
                }
                _ => {}
            }
            if !names.insert(r.name.as_str()) {
                return Err(RateError::Duplicate(name()));
            }
        }
        let now = Instant::now();
        Ok(Self {
            rules: rules
                .iter()
                .map(|r| Rule {
                    rule: r.clone(),
                    share_ids: r
                        .shares
                        .iter()
                        .map(|s| crate::share_id::share_id(s))
                        .collect(),
                    cap: r.cap_mb_s.map(|c| Bucket::new(c, now)),
                    reserve: r.reserve_mb_s.map(|c| Bucket::new(c, now)),
                })
                .collect(),
            reserving: rules.iter().any(|r| r.reserve_mb_s.is_some()),
            by_share: rules.iter().any(|r| !r.shares.is_empty()),
            id: SETS_MADE.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// Which set this is: two sets never share an id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether any rule reserves a rate.
    pub fn reserving(&self) -> bool {
        self.reserving
    }

    /// Whether some rule names shares, so that the rule of a call depends on its share
    /// and not on its client alone.
    pub fn by_share(&self) -> bool {
        self.by_share
    }

    /// The rule that covers every call of `client`, if the rules do not depend on the
    /// share (see [`Self::by_share`]); otherwise the rule for calls of no share.
    pub fn rule_for(&self, client: IpAddr) -> Option<usize> {
        self.rule_for_call(client, None)
    }

    /// The rule that covers a call from `client` on the share whose handle id is
    /// `share` (None: a call without a handle, which only client rules cover).
    pub fn rule_for_call(&self, client: IpAddr, share: Option<u32>) -> Option<usize> {
        if self.rules.is_empty() {
            return None;
        }
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.rules.iter().position(|c| {
            (c.rule.clients.is_empty() || c.rule.clients.iter().any(|net| net.contains(&client)))
                && (c.share_ids.is_empty() || share.is_some_and(|s| c.share_ids.contains(&s)))
        })
    }

    /// When the rule's cap is out of debt, if it is in debt at `now`.
    pub fn ready_at(&self, rule: usize, now: Instant) -> Option<Instant> {
        let mut b = lock(self.rules.get(rule)?.cap.as_ref()?);
        b.fill(now);
        (b.tokens < 0.0).then(|| now + Duration::from_secs_f64(-b.tokens / b.rate))
    }

    /// Whether the rule reserves a rate.
    pub fn reserves(&self, rule: usize) -> bool {
        self.rules.get(rule).is_some_and(|r| r.reserve.is_some())
    }

    /// Whether the rule's clients have moved less than their reservation lately, so
    /// that their calls go first.
    pub fn reserved_due(&self, rule: usize, now: Instant) -> bool {
        let Some(bucket) = self.rules.get(rule).and_then(|r| r.reserve.as_ref()) else {
            return false;
        };
        let mut b = lock(bucket);
        b.fill(now);
        b.tokens > 0.0
    }

    /// Count `bytes` moved by the rule's clients (the cap may go into debt).
    pub fn take(&self, rule: usize, bytes: u64, now: Instant) {
        let Some(r) = self.rules.get(rule) else {
            return;
        };
        if let Some(cap) = &r.cap {
            let mut b = lock(cap);
            b.fill(now);
            b.tokens -= bytes as f64;
        }
        if let Some(reserve) = &r.reserve {
            let mut b = lock(reserve);
            b.fill(now);
            b.tokens = (b.tokens - bytes as f64).max(-b.depth);
        }
    }

    /// Wait until the rule's cap is out of debt, then count `bytes`: for a call answered
    /// on the thread that read it.
    pub fn wait_and_take(&self, rule: usize, bytes: u64) {
        while let Some(at) = self.ready_at(rule, Instant::now()) {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        self.take(rule, bytes, Instant::now());
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &RateRule> {
        self.rules.iter().map(|c| &c.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, net: &str, cap_mb_s: u64) -> RateRule {
        RateRule {
            name: name.into(),
            clients: vec![net.parse().unwrap()],
            shares: Vec::new(),
            cap_mb_s: Some(cap_mb_s),
            reserve_mb_s: None,
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        assert_eq!(
            RateRuleSet::new(&[rule("render", "10.0.20.0/24", 0)]).unwrap_err(),
            RateError::Zero("render".into())
        );
        let mut empty = rule("render", "10.0.20.0/24", 100);
        empty.clients.clear();
        assert_eq!(
            RateRuleSet::new(&[empty]).unwrap_err(),
            RateError::NoClients("render".into())
        );
        assert_eq!(
            RateRuleSet::new(&[rule("a", "10.0.0.0/8", 1), rule("a", "10.0.0.0/8", 2)])
                .unwrap_err(),
            RateError::Duplicate("a".into())
        );
        let mut neither = rule("suite", "10.0.30.0/24", 1);
        neither.cap_mb_s = None;
        assert_eq!(
            RateRuleSet::new(std::slice::from_ref(&neither)).unwrap_err(),
            RateError::Empty("suite".into())
        );
        let mut over = rule("suite", "10.0.30.0/24", 300);
        over.reserve_mb_s = Some(400);
        let e = RateRuleSet::new(&[over]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rate rule \"suite\" reserves 400 MB/s but caps at 300 MB/s: a reservation cannot exceed the cap"
        );
    }

    #[test]
    fn a_reservation_is_due_until_its_rate_has_been_moved() {
        let mut suite = rule("suite-3", "10.0.30.0/24", 1);
        suite.cap_mb_s = None;
        suite.reserve_mb_s = Some(400);
        let caps = RateRuleSet::new(&[suite]).unwrap();
        let t0 = Instant::now();
        // 400 MB/s: 40 MB in the bucket at first.
        assert!(caps.reserved_due(0, t0));
        caps.take(0, 40_000_000, t0);
        assert!(!caps.reserved_due(0, t0));
        // A tenth of a second later, 40 MB more are due.
        assert!(caps.reserved_due(0, t0 + Duration::from_millis(101)));
        // No cap: nothing ever waits for it.
        assert_eq!(caps.ready_at(0, t0), None);
    }

    #[test]
    fn the_first_rule_covering_a_client_is_its_rule() {
        let caps = RateRuleSet::new(&[
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
    fn a_rule_on_shares_covers_the_calls_on_them_from_the_clients_it_names() {
        let mut dailies = rule("dailies", "10.0.0.0/8", 300);
        dailies.clients.clear();
        dailies.shares = vec!["dailies".into()];
        let mut suite = rule("suite-3", "10.0.30.3/32", 100);
        suite.shares = vec!["grade".into(), "conform".into()];
        let caps = RateRuleSet::new(&[dailies, suite, rule("all", "10.0.0.0/8", 5000)]).unwrap();
        assert!(caps.by_share());
        let id = crate::share_id::share_id;
        let (suite_ip, other) = ("10.0.30.3".parse().unwrap(), "10.0.40.1".parse().unwrap());
        // Every client's calls on the share, and only those.
        assert_eq!(caps.rule_for_call(other, Some(id("dailies"))), Some(0));
        assert_eq!(caps.rule_for_call(suite_ip, Some(id("dailies"))), Some(0));
        // The suite's calls on its two shares; its others and other clients' fall through.
        assert_eq!(caps.rule_for_call(suite_ip, Some(id("conform"))), Some(1));
        assert_eq!(caps.rule_for_call(suite_ip, Some(id("projects"))), Some(2));
        assert_eq!(caps.rule_for_call(other, Some(id("grade"))), Some(2));
        // A call without a handle (NULL, MOUNT) is under client rules only.
        assert_eq!(caps.rule_for_call(suite_ip, None), Some(2));
        // Rules naming neither clients nor shares would cover everyone by accident.
        let mut nobody = rule("x", "10.0.0.0/8", 1);
        nobody.clients.clear();
        assert_eq!(
            RateRuleSet::new(&[nobody]).unwrap_err(),
            RateError::NoClients("x".into())
        );
    }

    #[test]
    fn a_cap_lets_its_rate_through_and_no_more() {
        // 100 MB/s: a 10 MB bucket, then 100 MB a second.
        let caps = RateRuleSet::new(&[rule("render", "10.0.20.0/24", 100)]).unwrap();
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
