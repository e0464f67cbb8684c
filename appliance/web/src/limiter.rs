//! How many wrong passwords a source address and an account may send before their
//! logins are refused for a while. Only remote logins count: the console's lock is
//! checked on the Unix socket and is never locked out by what comes over the network.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures one address may make in [`WINDOW`] before it waits.
pub const PER_ADDRESS: u32 = 5;
/// Failures one account may take (from anywhere) in [`WINDOW`] before it waits.
pub const PER_ACCOUNT: u32 = 10;
/// How far back failures count.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first wait; each failure past the limit doubles it, up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most per table (a flood of addresses cannot fill memory).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

#[derive(Debug)]
struct Table<K> {
    limit: u32,
    entries: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            entries: HashMap::new(),
        }
    }

    /// How long `key` must still wait, if it must.
    fn wait(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let f = *self.entries.get(key)?;
        if now.duration_since(f.first) > WINDOW && now.duration_since(f.last) > MAX_WAIT {
            self.entries.remove(key);
            return None;
        }
        if f.count < self.limit {
            return None;
        }
        let doublings = (f.count - self.limit).min(10);
        let wait = (FIRST_WAIT * 2u32.pow(doublings)).min(MAX_WAIT);
        let until = f.last + wait;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: &K, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(key) {
            self.entries
                .retain(|_, f| now.duration_since(f.last) <= WINDOW);
            // Still full: the entry seen longest ago makes room, so a flood of new
            // keys can never stop a key from being counted.
            if self.entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        let f = self.entries.entry(key.clone()).or_insert(Failures {
            count: 0,
            first: now,
            last: now,
        });
        if now.duration_since(f.first) > WINDOW && f.count < self.limit {
            *f = Failures {
                count: 0,
                first: now,
                last: now,
            };
        }
        f.count += 1;
        f.last = now;
    }
}

/// The source a count is kept for: the address, or its /64 for IPv6 (one host holds a
/// whole /64).
fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        v4 => v4,
    }
}

/// Who is waiting, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Address(Duration),
    Account(Duration),
}

impl Refusal {
    pub fn retry_after(&self) -> Duration {
        match self {
            Refusal::Address(d) | Refusal::Account(d) => *d,
        }
    }
}

#[derive(Debug)]
pub struct Limiter {
    addresses: Table<IpAddr>,
    accounts: Table<String>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self {
            addresses: Table::new(PER_ADDRESS),
            accounts: Table::new(PER_ACCOUNT),
        }
    }
}

impl Limiter {
    /// Whether a login from `from` as `user` may be tried now. An admitted attempt is
    /// counted as a failure at once (a right password takes it back), so logins sent
    /// side by side are counted before any of them is checked.
    pub fn admit(&mut self, from: IpAddr, user: &str, now: Instant) -> Result<(), Refusal> {
        let from = source(from);
        if let Some(wait) = self.addresses.wait(&from, now) {
            return Err(Refusal::Address(wait));
        }
        if let Some(wait) = self.accounts.wait(&user.to_string(), now) {
            return Err(Refusal::Account(wait));
        }
        self.addresses.fail(&from, now);
        self.accounts.fail(&user.to_string(), now);
        Ok(())
    }

    /// A right password takes back the attempt counted for it at the address, and
    /// clears the account's count. The address keeps its other failures: a guesser who
    /// also holds a login of their own cannot wipe their count with it.
    pub fn succeeded(&mut self, from: IpAddr, user: &str) {
        let from = source(from);
        if let Some(f) = self.addresses.entries.get_mut(&from) {
            f.count = f.count.saturating_sub(1);
        }
        self.accounts.entries.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_waits_after_its_failures_and_the_wait_grows() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..PER_ADDRESS {
            assert!(l.admit(a, "admin", t0).is_ok());
        }
        let Err(Refusal::Address(wait)) = l.admit(a, "admin", t0) else {
            panic!("not refused")
        };
        assert_eq!(wait, FIRST_WAIT);
        // Another address is not held up by it.
        assert!(l.admit("10.0.0.10".parse().unwrap(), "admin", t0).is_ok());
        // After the wait one more try; a failure then doubles the wait.
        let t1 = t0 + FIRST_WAIT;
        assert!(l.admit(a, "admin", t1).is_ok());
        assert_eq!(
            l.admit(a, "admin", t1),
            Err(Refusal::Address(FIRST_WAIT * 2))
        );
    }

    #[test]
    fn an_account_guessed_from_many_addresses_waits_too() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..PER_ACCOUNT {
            let from = IpAddr::from([10, 0, 1, i as u8]);
            assert!(l.admit(from, "editor", t0).is_ok());
        }
        let fresh = IpAddr::from([10, 0, 2, 1]);
        assert!(matches!(
            l.admit(fresh, "editor", t0),
            Err(Refusal::Account(_))
        ));
        assert!(l.admit(fresh, "admin", t0).is_ok());
        // Counts fade once the window and the longest wait have passed.
        let later = t0 + WINDOW + MAX_WAIT + Duration::from_secs(1);
        assert!(l.admit(fresh, "editor", later).is_ok());
    }

    #[test]
    fn a_right_password_takes_back_only_its_own_attempt() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        // Four guesses at admin, then the guesser's own right password: the four stay.
        for _ in 0..PER_ADDRESS - 1 {
            assert!(l.admit(a, "admin", t0).is_ok());
        }
        assert!(l.admit(a, "viewer", t0).is_ok());
        l.succeeded(a, "viewer");
        assert!(l.admit(a, "admin", t0).is_ok());
        assert!(l.admit(a, "admin", t0).is_err());
    }

    #[test]
    fn attempts_side_by_side_are_counted_before_they_are_checked() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let admitted = (0..32).filter(|_| l.admit(a, "admin", t0).is_ok()).count();
        assert_eq!(admitted, PER_ADDRESS as usize);
    }

    #[test]
    fn a_flood_of_other_names_cannot_stop_an_account_being_counted() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            let from = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            let _ = l.admit(from, &format!("name-{i}"), t0);
        }
        for i in 0..PER_ACCOUNT {
            let _ = l.admit(IpAddr::from([172, 16, 0, i as u8]), "admin", t0);
        }
        assert!(matches!(
            l.admit(IpAddr::from([172, 16, 1, 1]), "admin", t0),
            Err(Refusal::Account(_))
        ));
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..PER_ADDRESS {
            let from: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert!(l.admit(from, "admin", t0).is_ok());
        }
        let next: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(matches!(
            l.admit(next, "admin", t0),
            Err(Refusal::Address(_))
        ));
    }
}
