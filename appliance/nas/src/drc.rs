//! The duplicate request cache: a retransmitted non-idempotent call gets the reply its
//! first transmission got, instead of being carried out twice.
//!
//! Clients resend every outstanding call with the same xid after a reconnect or a
//! timeout. Carried out again, a REMOVE answers NOENT, a MKDIR or an exclusive CREATE
//! answers EXIST and a SETATTR that truncates may undo newer writes. As in knfsd
//! (`fs/nfsd/nfscache.c`), an entry is keyed by the client's address, the xid, the
//! program, version and procedure, and a checksum of the arguments' length and first 256
//! bytes (which tells a reused xid from a retransmission). Only non-idempotent calls are
//! kept, and only their encoded replies (a few hundred bytes). Unlike knfsd the client's
//! port is not in the key: the cache then survives a reconnect from another port, which
//! macOS and Windows make. A duplicate of a call still being answered gets no answer;
//! the client will send it again.
//!
//! The cache is bounded (entries and bytes) and entries expire after two minutes.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reply is kept.
pub const EXPIRY: Duration = Duration::from_secs(120);
/// Entries kept at most (about 16 MiB of replies at the reply size limit).
pub const CAPACITY: usize = 32_768;
/// Replies longer than this are not kept (no non-idempotent reply comes near it).
pub const MAX_REPLY: usize = 512;
const SHARDS: usize = 16;
/// Bytes of arguments the checksum covers.
const SUM_BYTES: usize = 256;

/// What identifies one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub client: IpAddr,
    pub xid: u32,
    pub program: u32,
    pub version: u32,
    pub procedure: u32,
    pub sum: u64,
}

impl CallKey {
    pub fn new(
        client: IpAddr,
        xid: u32,
        program: u32,
        version: u32,
        procedure: u32,
        args: &[u8],
    ) -> Self {
        let head = &args[..args.len().min(SUM_BYTES)];
        let hash = blake3::hash(head);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&hash.as_bytes()[..8]);
        Self {
            client,
            xid,
            program,
            version,
            procedure,
            sum: u64::from_le_bytes(sum) ^ (args.len() as u64).rotate_left(48),
        }
    }
}

/// What [`ReplyCache::begin`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A new call: answer it, then [`ReplyCache::finish`] it.
    New,
    /// The call is being answered now: send nothing.
    InProgress,
    /// Answered before: send this reply again.
    Replay(Vec<u8>),
}

#[derive(Debug)]
enum Entry {
    InProgress,
    Done(Vec<u8>),
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<CallKey, (Entry, Instant)>,
    /// Insertion order, for expiry and eviction (a key may appear after its entry left).
    order: VecDeque<(CallKey, Instant)>,
}

impl Shard {
    fn trim(&mut self, now: Instant, capacity: usize) {
        while let Some(&(key, at)) = self.order.front() {
            let expired = now.duration_since(at) >= EXPIRY;
            if !expired && self.entries.len() <= capacity {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|(_, t)| *t == at) {
                self.entries.remove(&key);
            }
        }
    }
}

/// The cache; one per server, shared by every connection and transport.
#[derive(Debug)]
pub struct ReplyCache {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    per_shard: usize,
}

impl Default for ReplyCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl ReplyCache {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &CallKey) -> std::sync::MutexGuard<'_, Shard> {
        let mut h = self.hasher.build_hasher();
        std::hash::Hash::hash(key, &mut h);
        self.shards[h.finish() as usize % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Look `key` up; a new call is marked in progress.
    pub fn begin(&self, key: CallKey) -> Lookup {
        let now = Instant::now();
        let mut shard = self.shard(&key);
        shard.trim(now, self.per_shard);
        match shard.entries.get(&key) {
            Some((Entry::Done(reply), at)) if now.duration_since(*at) < EXPIRY => {
                return Lookup::Replay(reply.clone())
            }
            Some((Entry::InProgress, at)) if now.duration_since(*at) < EXPIRY => {
                return Lookup::InProgress
            }
            _ => {}
        }
        shard.entries.insert(key, (Entry::InProgress, now));
        shard.order.push_back((key, now));
        Lookup::New
    }

    /// Keep the reply of a call [`begin`](Self::begin) saw as new (`None`: forget it,
    /// e.g. when there was nothing to reply or the reply is too long to keep).
    pub fn finish(&self, key: CallKey, reply: Option<&[u8]>) {
        let mut shard = self.shard(&key);
        match reply.filter(|r| r.len() <= MAX_REPLY) {
            Some(reply) => {
                if let Some((entry, _)) = shard.entries.get_mut(&key) {
                    *entry = Entry::Done(reply.to_vec());
                }
            }
            None => {
                shard.entries.remove(&key);
            }
        }
    }

    /// Entries held now (in progress or answered).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.entries.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32, args: &[u8]) -> CallKey {
        CallKey::new("10.0.0.9".parse().unwrap(), xid, 100003, 3, 12, args)
    }

    #[test]
    fn a_retransmission_gets_the_first_reply() {
        let cache = ReplyCache::default();
        assert_eq!(cache.begin(key(1, b"remove clip")), Lookup::New);
        assert_eq!(cache.begin(key(1, b"remove clip")), Lookup::InProgress);
        cache.finish(key(1, b"remove clip"), Some(b"NFS3_OK"));
        assert_eq!(
            cache.begin(key(1, b"remove clip")),
            Lookup::Replay(b"NFS3_OK".to_vec())
        );
    }

    #[test]
    fn a_reused_xid_with_other_arguments_is_a_new_call() {
        let cache = ReplyCache::default();
        assert_eq!(cache.begin(key(1, b"remove a")), Lookup::New);
        cache.finish(key(1, b"remove a"), Some(b"ok"));
        assert_eq!(cache.begin(key(1, b"remove b")), Lookup::New);
        let other_client = CallKey {
            client: "10.0.0.10".parse().unwrap(),
            ..key(1, b"remove a")
        };
        assert_eq!(cache.begin(other_client), Lookup::New);
        let other_proc = CallKey {
            procedure: 13,
            ..key(1, b"remove a")
        };
        assert_eq!(cache.begin(other_proc), Lookup::New);
    }

    #[test]
    fn long_replies_and_unanswered_calls_are_forgotten() {
        let cache = ReplyCache::default();
        assert_eq!(cache.begin(key(2, b"x")), Lookup::New);
        cache.finish(key(2, b"x"), Some(&[0; MAX_REPLY + 1]));
        assert_eq!(cache.begin(key(2, b"x")), Lookup::New);
        cache.finish(key(2, b"x"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = ReplyCache::with_capacity(SHARDS * 8);
        for xid in 0..10_000 {
            assert_eq!(cache.begin(key(xid, b"w")), Lookup::New);
            cache.finish(key(xid, b"w"), Some(b"ok"));
        }
        assert!(
            cache.len() <= SHARDS * 8 + SHARDS,
            "{} entries",
            cache.len()
        );
        // The newest survive eviction.
        assert_eq!(
            cache.begin(key(9_999, b"w")),
            Lookup::Replay(b"ok".to_vec())
        );
    }

    #[test]
    fn the_checksum_covers_the_length_beyond_the_first_bytes() {
        let a = vec![7u8; 300];
        let mut b = a.clone();
        b.push(7);
        assert_ne!(key(3, &a), key(3, &b));
    }
}
