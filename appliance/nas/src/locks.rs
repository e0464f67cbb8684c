//! Byte-range locks for NLM clients, held as real kernel locks on the shared files.
//!
//! Each lock owner (a client address, its process id `svid` and owner handle `oh`) gets
//! one open file description of each file it locks, and its locks are open file
//! description locks (`F_OFD_SETLK`) on it. So the kernel decides every conflict: NFS
//! owners against each other and against Samba (which takes OFD locks for SMB byte-range
//! locks) and local programs, and one owner's locks merge and split as POSIX says.
//! Closing the description drops the owner's locks, which is how FREE_ALL and a client's
//! reboot are carried out.
//!
//! Blocking requests wait in a queue that is retried whenever a lock is released here,
//! and once a second for releases elsewhere (Samba, local programs); a granted request
//! is announced to the client by a callback on a worker thread ([`crate::nlm`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::sys::{self, LockKind};

/// NLM's result codes (`nlm4_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Granted = 0,
    Denied = 1,
    DeniedNoLocks = 2,
    Blocked = 3,
    DeniedGrace = 4,
    Deadlock = 5,
    Rofs = 6,
    StaleFh = 7,
    Fbig = 8,
    Failed = 9,
}

impl Stat {
    /// The code on the wire: NLM v1 and v3 know only 0 to 4.
    pub fn code(self, version: u32) -> u32 {
        if version == 4 {
            return self as u32;
        }
        match self {
            Stat::Deadlock => Stat::Denied as u32,
            Stat::Rofs | Stat::StaleFh | Stat::Fbig | Stat::Failed => Stat::DeniedNoLocks as u32,
            other => other as u32,
        }
    }
}

/// Who holds a lock: one process on one client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub client: IpAddr,
    pub svid: i32,
    pub oh: Vec<u8>,
}

/// A byte range: `len` 0 reaches to the end of the file, and any length past what the
/// kernel's signed offsets hold does too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub len: u64,
}

impl Range {
    fn end(self) -> u64 {
        if self.len == 0 {
            u64::MAX
        } else {
            self.start.saturating_add(self.len)
        }
    }

    fn overlaps(self, other: Range) -> bool {
        self.start < other.end() && other.start < self.end()
    }

    /// The range as `struct flock` wants it, or None when it starts beyond what a
    /// signed 64-bit offset holds (NLM4_FBIG).
    fn kernel(self) -> Option<(i64, i64)> {
        let start = i64::try_from(self.start).ok()?;
        let len = match i64::try_from(self.len) {
            Ok(len) if start.checked_add(len).is_some() => len,
            _ => 0,
        };
        Some((start, len))
    }
}

/// The holder of a conflicting lock, for TEST's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub exclusive: bool,
    pub svid: i32,
    pub oh: Vec<u8>,
    pub range: Range,
}

/// One lock request.
#[derive(Debug, Clone)]
pub struct Request {
    pub owner: Owner,
    pub caller_name: String,
    pub fh: Vec<u8>,
    pub range: Range,
    pub exclusive: bool,
}

/// A blocked request that was granted later: the client is told by a callback.
#[derive(Debug)]
pub struct Granted<T> {
    pub request: Request,
    pub notice: T,
}

/// An open description of a file for one owner, with the ranges it holds there.
#[derive(Debug)]
struct Held {
    fd: OwnedFd,
    caller_name: String,
    ranges: Vec<(Range, bool)>,
}

impl Held {
    /// Record `range` as held (replacing what it overlaps, as the kernel does).
    fn add(&mut self, range: Range, exclusive: bool) {
        self.ranges = with(&self.ranges, range, exclusive);
    }
}

/// `ranges` with `range` held (`exclusive` or not), merged with the ranges of the same
/// kind it touches, as the kernel merges them: a client locking record after record
/// holds one range.
fn with(ranges: &[(Range, bool)], range: Range, exclusive: bool) -> Vec<(Range, bool)> {
    let mut kept = without(ranges, range);
    let (mut start, mut end) = (range.start, range.end());
    kept.retain(|&(r, x)| {
        let touches = x == exclusive && r.start <= end && start <= r.end();
        if touches {
            start = start.min(r.start);
            end = end.max(r.end());
        }
        !touches
    });
    let len = if end == u64::MAX { 0 } else { end - start };
    kept.push((Range { start, len }, exclusive));
    kept
}

/// Ranges past [`MAX_RANGES`] (an owner unlocking every other byte of what it holds):
/// kept as one range over all of them, of the strongest kind held. The kernel still
/// knows each lock exactly; the list only names holders for TEST and tells when the
/// owner holds nothing, which stays true of the one range until it is released whole.
fn bounded(ranges: Vec<(Range, bool)>) -> Vec<(Range, bool)> {
    if ranges.len() <= MAX_RANGES {
        return ranges;
    }
    let start = ranges.iter().map(|(r, _)| r.start).min().unwrap_or(0);
    let end = ranges
        .iter()
        .map(|(r, _)| r.end())
        .max()
        .unwrap_or(u64::MAX);
    let exclusive = ranges.iter().any(|&(_, x)| x);
    let len = if end == u64::MAX { 0 } else { end - start };
    vec![(Range { start, len }, exclusive)]
}

/// `ranges` less `cut`, split where `cut` goes through one.
fn without(ranges: &[(Range, bool)], cut: Range) -> Vec<(Range, bool)> {
    let mut kept = Vec::with_capacity(ranges.len() + 1);
    for &(r, excl) in ranges {
        if !r.overlaps(cut) {
            kept.push((r, excl));
            continue;
        }
        if r.start < cut.start {
            kept.push((
                Range {
                    start: r.start,
                    len: cut.start - r.start,
                },
                excl,
            ));
        }
        if cut.end() < r.end() {
            let len = if r.len == 0 { 0 } else { r.end() - cut.end() };
            kept.push((
                Range {
                    start: cut.end(),
                    len,
                },
                excl,
            ));
        }
    }
    kept
}

/// A DOS share reservation (NLM SHARE): the access a client opened with and the access
/// it denies others.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reservation {
    client: IpAddr,
    caller_name: String,
    oh: Vec<u8>,
    access: u32,
    deny: u32,
}

struct Waiting<T> {
    request: Request,
    /// The owner's own description, opened when the request came, used if it holds
    /// none of this file when the request is granted.
    fd: OwnedFd,
    notice: T,
    since: Instant,
}

struct Table<T> {
    held: HashMap<(Owner, Vec<u8>), Held>,
    waiting: VecDeque<Waiting<T>>,
    shares: HashMap<Vec<u8>, Vec<Reservation>>,
    /// What each client address holds, so that one client's flood meets its own limit
    /// long before the table's and the others keep getting locks.
    usage: HashMap<IpAddr, Usage>,
}

/// Descriptions held open for a client's locks, and its share reservations.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    held: usize,
    shares: usize,
}

impl<T> Table<T> {
    fn usage(&self, client: IpAddr) -> Usage {
        self.usage.get(&client).copied().unwrap_or_default()
    }

    fn count(&mut self, client: IpAddr, change: impl FnOnce(&mut Usage)) {
        let usage = self.usage.entry(client).or_default();
        change(usage);
        if usage.held == 0 && usage.shares == 0 {
            self.usage.remove(&client);
        }
    }

    fn insert_held(&mut self, key: (Owner, Vec<u8>), held: Held) {
        let client = key.0.client;
        if self.held.insert(key, held).is_none() {
            self.count(client, |u| u.held += 1);
        }
    }

    fn remove_held(&mut self, key: &(Owner, Vec<u8>)) {
        if self.held.remove(key).is_some() {
            self.count(key.0.client, |u| u.held -= 1);
        }
    }

    /// Whether `client` may have one more request waiting.
    fn may_wait(&self, client: IpAddr) -> bool {
        let limits = Limits::get();
        self.waiting.len() < limits.waiting
            && self
                .waiting
                .iter()
                .filter(|w| w.request.owner.client == client)
                .count()
                < limits.waiting_per_client
    }
}

/// Blocked requests are given up after this long unqueued by CANCEL (the client
/// re-sends a blocked LOCK every 30 s, which queues it again).
const WAIT_LIMIT: Duration = Duration::from_secs(600);
/// Share reservations at once, and a client's part of them.
const MAX_SHARES: usize = 65_536;
const MAX_SHARES_PER_CLIENT: usize = MAX_SHARES / 8;
/// Separate ranges one owner may hold in one file (each lock splits or adds one; a
/// client locking every other byte would otherwise grow the list without end).
const MAX_RANGES: usize = 4096;

/// How many lock descriptions may be open, from the process's limit on open files:
/// locks may take half of it (at most 65,536 held, 4,096 waiting), and one client
/// address an eighth of that, so a client flooding requests is answered DENIED_NOLOCKS
/// at its own limit while the others still get theirs and the server keeps descriptors
/// for everything else.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub held: usize,
    pub waiting: usize,
    pub held_per_client: usize,
    pub waiting_per_client: usize,
}

impl Limits {
    /// The limits for this process's open-file limit, read once (rushesd raises it at
    /// start, before any lock is taken).
    pub fn get() -> Limits {
        static LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();
        *LIMITS.get_or_init(|| {
            let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX);
            Limits::for_open_files(usize::try_from(open_files).unwrap_or(usize::MAX))
        })
    }

    fn for_open_files(open_files: usize) -> Limits {
        let held = (open_files / 2).clamp(64, 65_536);
        let waiting = (held / 4).min(4096);
        Limits {
            held,
            waiting,
            held_per_client: held / 8,
            waiting_per_client: waiting / 8,
        }
    }
}

/// The lock table. `T` is what a granted blocked request carries back to whoever tells
/// the client (the callback's details).
pub struct LockManager<T> {
    table: Mutex<Table<T>>,
    changed: Condvar,
    grace_until: Mutex<Option<Instant>>,
    started: Instant,
}

impl<T: Send + 'static> LockManager<T> {
    /// A lock manager whose blocked requests, once granted, go to `granted`.
    pub fn start(
        grace: Option<Duration>,
        granted: impl Fn(Granted<T>) + Send + 'static,
    ) -> Arc<Self> {
        let manager = Arc::new(Self {
            table: Mutex::new(Table {
                held: HashMap::new(),
                waiting: VecDeque::new(),
                shares: HashMap::new(),
                usage: HashMap::new(),
            }),
            changed: Condvar::new(),
            grace_until: Mutex::new(grace.map(|g| Instant::now() + g)),
            started: Instant::now(),
        });
        let weak = Arc::downgrade(&manager);
        let _ = std::thread::Builder::new()
            .name("nlm-waiting".into())
            .spawn(move || retry_waiting(weak, granted));
        manager
    }

    fn table(&self) -> MutexGuard<'_, Table<T>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make a grace period in progress end `grace` after it began.
    pub fn set_grace(&self, grace: Duration) {
        let mut until = self.grace_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = until.as_mut() {
            *t = self.started + grace;
        }
    }

    /// In the grace period after a restart, only reclaims are granted.
    pub fn in_grace(&self) -> bool {
        let mut until = self.grace_until.lock().unwrap_or_else(|p| p.into_inner());
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                tracing::info!("NLM grace period over: new locks are granted");
                false
            }
            None => false,
        }
    }

    /// TEST: would `req` be granted? The holder of a conflicting lock if not (svid 0 and
    /// an empty owner for a holder that is not an NLM client: Samba, a local program).
    pub fn test(
        &self,
        req: &Request,
        open: impl FnOnce() -> Result<OwnedFd, Stat>,
    ) -> Result<Option<Holder>, Stat> {
        let (start, len) = req.range.kernel().ok_or(Stat::Fbig)?;
        let kind = if req.exclusive {
            LockKind::Write
        } else {
            LockKind::Read
        };
        let table = self.table();
        let key = (req.owner.clone(), req.fh.clone());
        let fresh;
        let fd = match table.held.get(&key) {
            Some(h) => h.fd.as_fd(),
            None => {
                fresh = open()?;
                fresh.as_fd()
            }
        };
        let Some((exclusive, kstart, klen)) =
            sys::ofd_conflict(fd, kind, start, len).map_err(|_| Stat::Failed)?
        else {
            return Ok(None);
        };
        let range = Range {
            start: kstart as u64,
            len: klen as u64,
        };
        let holder = table
            .held
            .iter()
            .filter(|((owner, fh), _)| *fh == req.fh && *owner != req.owner)
            .find(|(_, held)| {
                held.ranges
                    .iter()
                    .any(|(r, x)| r.overlaps(range) && *x == exclusive)
            })
            .map(|((owner, _), _)| (owner.svid, owner.oh.clone()));
        let (svid, oh) = holder.unwrap_or((0, Vec::new()));
        Ok(Some(Holder {
            exclusive,
            svid,
            oh,
            range,
        }))
    }

    /// LOCK: take `req` now, or queue it (`block`) to be granted when it can be.
    pub fn lock(
        &self,
        req: Request,
        block: Option<T>,
        open: impl FnOnce() -> Result<OwnedFd, Stat>,
    ) -> Stat {
        let Some((start, len)) = req.range.kernel() else {
            return Stat::Fbig;
        };
        let kind = if req.exclusive {
            LockKind::Write
        } else {
            LockKind::Read
        };
        let mut table = self.table();
        let key = (req.owner.clone(), req.fh.clone());
        if !table.held.contains_key(&key) {
            let limits = Limits::get();
            if table.held.len() >= limits.held
                || table.usage(req.owner.client).held >= limits.held_per_client
            {
                return Stat::DeniedNoLocks;
            }
            let fd = match open() {
                Ok(fd) => fd,
                Err(stat) => return stat,
            };
            match sys::ofd_lock(fd.as_fd(), kind, start, len) {
                Ok(true) => {
                    let mut held = Held {
                        fd,
                        caller_name: req.caller_name.clone(),
                        ranges: Vec::new(),
                    };
                    held.add(req.range, req.exclusive);
                    table.insert_held(key, held);
                    Stat::Granted
                }
                Ok(false) => Self::wait(&mut table, req, fd, block),
                Err(e) => lock_error(e),
            }
        } else {
            let held = table.held.get_mut(&key).expect("checked above");
            let after = with(&held.ranges, req.range, req.exclusive);
            if after.len() > MAX_RANGES {
                return Stat::DeniedNoLocks;
            }
            match sys::ofd_lock(held.fd.as_fd(), kind, start, len) {
                Ok(true) => {
                    held.ranges = after;
                    Stat::Granted
                }
                Ok(false) => match block {
                    Some(notice) => match sys::reopen(held.fd.as_fd()) {
                        Ok(fd) => Self::wait(&mut table, req, fd, Some(notice)),
                        Err(_) => Stat::DeniedNoLocks,
                    },
                    None => Stat::Denied,
                },
                Err(e) => lock_error(e),
            }
        }
    }

    fn wait(table: &mut Table<T>, req: Request, fd: OwnedFd, block: Option<T>) -> Stat {
        let Some(notice) = block else {
            return Stat::Denied;
        };
        let same = |w: &Waiting<T>| {
            w.request.owner == req.owner
                && w.request.fh == req.fh
                && w.request.range == req.range
                && w.request.exclusive == req.exclusive
        };
        if let Some(w) = table.waiting.iter_mut().find(|w| same(w)) {
            // A re-sent blocked request: it keeps its place; the newest notice counts.
            w.notice = notice;
            w.since = Instant::now();
            return Stat::Blocked;
        }
        if !table.may_wait(req.owner.client) {
            return Stat::DeniedNoLocks;
        }
        table.waiting.push_back(Waiting {
            request: req,
            fd,
            notice,
            since: Instant::now(),
        });
        Stat::Blocked
    }

    /// CANCEL: forget a blocked request. Granted even if it was not waiting.
    pub fn cancel(&self, req: &Request) -> Stat {
        let mut table = self.table();
        table.waiting.retain(|w| {
            !(w.request.owner == req.owner
                && w.request.fh == req.fh
                && w.request.range == req.range
                && w.request.exclusive == req.exclusive)
        });
        Stat::Granted
    }

    /// UNLOCK: release `range` of `owner`'s locks on `fh`. Granted even if none was held.
    pub fn unlock(&self, owner: &Owner, fh: &[u8], range: Range) -> Stat {
        let Some((start, len)) = range.kernel() else {
            return Stat::Fbig;
        };
        let mut table = self.table();
        let key = (owner.clone(), fh.to_vec());
        let Some(held) = table.held.get_mut(&key) else {
            return Stat::Granted;
        };
        // Never refused: a client forgets the lock whatever the answer.
        let after = bounded(without(&held.ranges, range));
        if let Err(e) = sys::ofd_lock(held.fd.as_fd(), LockKind::Unlock, start, len) {
            tracing::warn!(error = %e, "cannot release an NLM lock");
            return Stat::Failed;
        }
        held.ranges = after;
        if held.ranges.is_empty() {
            table.remove_held(&key);
        }
        drop(table);
        self.changed.notify_all();
        Stat::Granted
    }

    /// Drop every lock, waiting request and share reservation of a client: it rebooted
    /// (SM_NOTIFY) or said so itself (FREE_ALL). `name` is its caller_name, `ip` its
    /// address; either matches.
    pub fn free_client(&self, name: Option<&str>, ip: Option<IpAddr>) -> usize {
        let matches = |client: IpAddr, caller: &str| Some(client) == ip || Some(caller) == name;
        let mut table = self.table();
        let before = table.held.len();
        let Table {
            held,
            waiting,
            shares,
            usage,
        } = &mut *table;
        held.retain(|(owner, _), held| !matches(owner.client, &held.caller_name));
        let freed = before - held.len();
        waiting.retain(|w| !matches(w.request.owner.client, &w.request.caller_name));
        for list in shares.values_mut() {
            list.retain(|r| !matches(r.client, &r.caller_name));
        }
        shares.retain(|_, list| !list.is_empty());
        // Recount: a name may cover several addresses, an address several names.
        usage.clear();
        for (owner, _) in held.keys() {
            usage.entry(owner.client).or_default().held += 1;
        }
        for r in shares.values().flatten() {
            usage.entry(r.client).or_default().shares += 1;
        }
        drop(table);
        self.changed.notify_all();
        freed
    }

    /// SHARE: reserve `access` (1 read, 2 write, 3 both) on `fh`, denying others `deny`.
    pub fn share(
        &self,
        client: IpAddr,
        caller_name: &str,
        oh: &[u8],
        fh: &[u8],
        access: u32,
        deny: u32,
    ) -> Stat {
        let mut table = self.table();
        let mine = |r: &Reservation| r.client == client && r.oh == oh;
        let list = table.shares.get(fh).map_or(&[][..], Vec::as_slice);
        let clash = list
            .iter()
            .filter(|r| !mine(r))
            .any(|r| access & r.deny != 0 || deny & r.access != 0);
        if clash {
            return Stat::Denied;
        }
        if !list.iter().any(mine) {
            // A new reservation, not a renewed one: it counts against the limits.
            let total: usize = table.usage.values().map(|u| u.shares).sum();
            if total >= MAX_SHARES || table.usage(client).shares >= MAX_SHARES_PER_CLIENT {
                return Stat::DeniedNoLocks;
            }
            table.count(client, |u| u.shares += 1);
        }
        let list = table.shares.entry(fh.to_vec()).or_default();
        list.retain(|r| !mine(r));
        list.push(Reservation {
            client,
            caller_name: caller_name.to_string(),
            oh: oh.to_vec(),
            access,
            deny,
        });
        Stat::Granted
    }

    /// UNSHARE: drop a client's reservation on `fh`.
    pub fn unshare(&self, client: IpAddr, oh: &[u8], fh: &[u8]) -> Stat {
        let mut table = self.table();
        if let Some(list) = table.shares.get_mut(fh) {
            let before = list.len();
            list.retain(|r| !(r.client == client && r.oh == oh));
            let dropped = before - list.len();
            if list.is_empty() {
                table.shares.remove(fh);
            }
            if dropped > 0 {
                table.count(client, |u| u.shares -= dropped);
            }
        }
        Stat::Granted
    }

    /// Locks held now (owner and file pairs), and requests waiting.
    pub fn counts(&self) -> (usize, usize) {
        let table = self.table();
        (table.held.len(), table.waiting.len())
    }
}

fn lock_error(e: std::io::Error) -> Stat {
    match e.raw_os_error() {
        Some(libc::EDEADLK) => Stat::Deadlock,
        Some(libc::ENOLCK) => Stat::DeniedNoLocks,
        Some(libc::EBADF) => Stat::Rofs,
        _ => {
            tracing::warn!(error = %e, "NLM lock failed");
            Stat::Failed
        }
    }
}

/// The waiting queue's thread: whenever locks were released (and once a second, for
/// releases by Samba or local programs), grant what now can be, in arrival order.
fn retry_waiting<T: Send + 'static>(manager: Weak<LockManager<T>>, granted: impl Fn(Granted<T>)) {
    loop {
        let Some(m) = manager.upgrade() else { return };
        let mut out = Vec::new();
        {
            let table = m.table();
            let (mut table, _) = m
                .changed
                .wait_timeout(table, Duration::from_secs(1))
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let mut i = 0;
            while i < table.waiting.len() {
                let w = &table.waiting[i];
                if now.duration_since(w.since) > WAIT_LIMIT {
                    table.waiting.remove(i);
                    continue;
                }
                let req = &w.request;
                let Some((start, len)) = req.range.kernel() else {
                    table.waiting.remove(i);
                    continue;
                };
                let kind = if req.exclusive {
                    LockKind::Write
                } else {
                    LockKind::Read
                };
                let key = (req.owner.clone(), req.fh.clone());
                let fd = table.held.get(&key).map_or(w.fd.as_fd(), |h| h.fd.as_fd());
                if !matches!(sys::ofd_lock(fd, kind, start, len), Ok(true)) {
                    i += 1;
                    continue;
                }
                let w = table.waiting.remove(i).expect("index in range");
                if !table.held.contains_key(&key) {
                    let held = Held {
                        fd: w.fd,
                        caller_name: w.request.caller_name.clone(),
                        ranges: Vec::new(),
                    };
                    table.insert_held(key.clone(), held);
                }
                let entry = table.held.get_mut(&key).expect("inserted above");
                entry.add(w.request.range, w.request.exclusive);
                out.push(Granted {
                    request: w.request,
                    notice: w.notice,
                });
            }
        }
        drop(m);
        for g in out {
            granted(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, len: u64) -> Range {
        Range { start, len }
    }

    #[test]
    fn ranges_split_and_merge_like_posix() {
        let mut h = Held {
            fd: rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDONLY,
                rustix::fs::Mode::empty(),
            )
            .unwrap(),
            caller_name: String::new(),
            ranges: Vec::new(),
        };
        h.add(r(0, 0), true);
        h.ranges = without(&h.ranges, r(10, 10));
        assert_eq!(h.ranges, vec![(r(0, 10), true), (r(20, 0), true)]);
        h.add(r(5, 20), false);
        h.ranges = without(&h.ranges, r(0, 5));
        let mut got = h.ranges.clone();
        got.sort_by_key(|(x, _)| x.start);
        assert_eq!(got, vec![(r(5, 20), false), (r(25, 0), true)]);
        h.ranges = without(&h.ranges, r(0, 0));
        assert!(h.ranges.is_empty());
    }

    #[test]
    fn kernel_ranges_clamp_to_signed_offsets() {
        assert_eq!(r(0, 0).kernel(), Some((0, 0)));
        assert_eq!(r(10, u64::MAX).kernel(), Some((10, 0)));
        assert_eq!(r(i64::MAX as u64 - 1, 5).kernel(), Some((i64::MAX - 1, 0)));
        assert_eq!(r(1 << 63, 1).kernel(), None);
        assert!(r(0, 10).overlaps(r(9, 1)) && !r(0, 10).overlaps(r(10, 0)));
    }

    #[test]
    fn old_versions_get_codes_they_know() {
        assert_eq!(Stat::StaleFh.code(4), 7);
        assert_eq!(Stat::StaleFh.code(1), 2);
        assert_eq!(Stat::Deadlock.code(3), 1);
        assert_eq!(Stat::DeniedGrace.code(1), 4);
    }

    fn owner(svid: i32) -> Owner {
        Owner {
            client: "10.0.0.5".parse().unwrap(),
            svid,
            oh: vec![svid as u8],
        }
    }

    fn req(svid: i32, range: Range, exclusive: bool, fh: &[u8]) -> Request {
        Request {
            owner: owner(svid),
            caller_name: "suite-3".into(),
            fh: fh.to_vec(),
            range,
            exclusive,
        }
    }

    /// A file in a folder of its own, to lock.
    fn lockable_file(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, b"bin").unwrap();
        (dir, path)
    }

    /// What the service's opener does: a fresh description of the file.
    fn open_for_locks(path: &std::path::Path) -> Result<OwnedFd, Stat> {
        rustix::fs::open(path, rustix::fs::OFlags::RDWR, rustix::fs::Mode::empty())
            .map_err(|_| Stat::StaleFh)
    }

    #[test]
    fn owners_conflict_through_the_kernel_and_waiters_are_granted_in_turn() {
        let (_dir, path) = lockable_file("bin.avb");
        let open = || open_for_locks(&path);
        let (tx, rx) = std::sync::mpsc::channel();
        let m = LockManager::start(None, move |g: Granted<u32>| {
            tx.send((g.request.owner.svid, g.notice)).unwrap()
        });
        assert_eq!(
            m.lock(req(1, r(0, 100), true, b"f"), None, open),
            Stat::Granted
        );
        // Same owner: upgrades and overlaps are its own business.
        assert_eq!(
            m.lock(req(1, r(50, 100), false, b"f"), None, open),
            Stat::Granted
        );
        // Another owner conflicts, and TEST names the holder.
        assert_eq!(
            m.lock(req(2, r(10, 1), false, b"f"), None, open),
            Stat::Denied
        );
        let holder = m.test(&req(2, r(0, 0), true, b"f"), open).unwrap().unwrap();
        assert_eq!(holder.svid, 1);
        // A local program's lock (another description) conflicts too, and TEST names
        // no NLM owner for it.
        let local = open().unwrap();
        assert!(sys::ofd_lock(local.as_fd(), LockKind::Write, 200, 10).unwrap());
        assert_eq!(
            m.lock(req(3, r(205, 1), false, b"f"), None, open),
            Stat::Denied
        );
        let holder = m
            .test(&req(3, r(205, 1), false, b"f"), open)
            .unwrap()
            .unwrap();
        assert_eq!(
            (holder.svid, holder.oh.len(), holder.range),
            (0, 0, r(200, 10))
        );
        drop(local);
        assert_eq!(
            m.lock(req(3, r(205, 1), false, b"f"), None, open),
            Stat::Granted
        );
        // Blocked requests are granted once the holder lets go.
        assert_eq!(
            m.lock(req(2, r(10, 1), true, b"f"), Some(7), open),
            Stat::Blocked
        );
        assert_eq!(
            m.lock(req(2, r(10, 1), true, b"f"), Some(8), open),
            Stat::Blocked,
            "re-sent: same place"
        );
        assert_eq!(m.counts().1, 1);
        assert_eq!(m.unlock(&owner(1), b"f", r(0, 0)), Stat::Granted);
        let (svid, notice) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((svid, notice), (2, 8));
        assert_eq!(
            m.test(&req(1, r(10, 1), false, b"f"), open)
                .unwrap()
                .unwrap()
                .svid,
            2
        );
        // A client that rebooted loses everything.
        assert_eq!(m.free_client(None, Some("10.0.0.5".parse().unwrap())), 2);
        assert_eq!(m.counts(), (0, 0));
        assert_eq!(m.test(&req(1, r(0, 0), true, b"f"), open).unwrap(), None);
    }

    #[test]
    fn cancel_takes_a_request_out_of_the_queue() {
        let (_dir, path) = lockable_file("f");
        let open = || open_for_locks(&path);
        let m = LockManager::start(None, |_: Granted<()>| panic!("nothing is granted"));
        assert_eq!(
            m.lock(req(1, r(0, 0), true, b"f"), None, open),
            Stat::Granted
        );
        assert_eq!(
            m.lock(req(2, r(0, 0), true, b"f"), Some(()), open),
            Stat::Blocked
        );
        assert_eq!(m.cancel(&req(2, r(0, 0), true, b"f")), Stat::Granted);
        assert_eq!(m.counts(), (1, 0));
        assert_eq!(m.unlock(&owner(1), b"f", r(0, 0)), Stat::Granted);
        std::thread::sleep(Duration::from_millis(100));
    }

    #[test]
    fn share_reservations_deny_what_others_opened() {
        let m = LockManager::start(None, |_: Granted<()>| {});
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(m.share(a, "a", b"o", b"f", 3, 2), Stat::Granted);
        assert_eq!(
            m.share(b, "b", b"o", b"f", 2, 0),
            Stat::Denied,
            "a denies writers"
        );
        assert_eq!(
            m.share(b, "b", b"o", b"f", 1, 1),
            Stat::Denied,
            "b would deny a's reads"
        );
        assert_eq!(m.share(b, "b", b"o", b"f", 1, 0), Stat::Granted);
        assert_eq!(m.unshare(a, b"o", b"f"), Stat::Granted);
        assert_eq!(m.share(b, "b", b"p", b"f", 2, 0), Stat::Granted);
    }

    fn request_from(client: &str, svid: i32, range: Range, fh: &[u8]) -> Request {
        Request {
            owner: Owner {
                client: client.parse().unwrap(),
                svid,
                oh: svid.to_be_bytes().to_vec(),
            },
            caller_name: client.into(),
            fh: fh.to_vec(),
            range,
            exclusive: true,
        }
    }

    #[test]
    fn limits_follow_the_open_file_limit() {
        let small = Limits::for_open_files(1024);
        assert_eq!((small.held, small.waiting), (512, 128));
        assert_eq!((small.held_per_client, small.waiting_per_client), (64, 16));
        let large = Limits::for_open_files(524_288);
        assert_eq!((large.held, large.waiting), (65_536, 4096));
        assert_eq!(Limits::for_open_files(0).held, 64);
    }

    #[test]
    fn a_client_flooding_locks_meets_its_own_limit_and_others_still_lock() {
        let (_dir, path) = lockable_file("bin.avb");
        let open = || open_for_locks(&path);
        let limits = Limits::get();
        let m = LockManager::start(None, |_: Granted<()>| {});
        // Held: each file handle is another description.
        let mut taken = 0;
        loop {
            let fh = format!("held-{taken}");
            // Shared locks: every description of the one file takes its own.
            let req = Request {
                exclusive: false,
                ..request_from("10.0.0.9", 1, r(0, 1), fh.as_bytes())
            };
            let stat = m.lock(req, None, open);
            if stat != Stat::Granted {
                assert_eq!(stat, Stat::DeniedNoLocks);
                break;
            }
            taken += 1;
            assert!(taken <= limits.held, "no limit on one client's locks");
        }
        assert_eq!(taken, limits.held_per_client);
        let other = Request {
            exclusive: false,
            ..request_from("10.0.0.10", 1, r(0, 1), b"held-0")
        };
        assert_eq!(
            m.lock(other, None, open),
            Stat::Granted,
            "another client still locks"
        );
        // Waiting: another flooder's blocked requests queue up to its own limit, and a
        // third client's still queue.
        let mut queued = 0;
        loop {
            let req = request_from("10.0.0.12", 100 + queued, r(0, 1), b"held-0");
            let stat = m.lock(req, Some(()), open);
            if stat != Stat::Blocked {
                assert_eq!(stat, Stat::DeniedNoLocks);
                break;
            }
            queued += 1;
            assert!(
                queued as usize <= limits.waiting,
                "no limit on one client's waiting"
            );
        }
        assert_eq!(queued as usize, limits.waiting_per_client);
        let other = request_from("10.0.0.11", 1, r(0, 1), b"held-0");
        assert_eq!(m.lock(other, Some(()), open), Stat::Blocked);
        // Once the flooder is gone, it may lock again.
        m.free_client(None, Some("10.0.0.9".parse().unwrap()));
        let again = Request {
            exclusive: false,
            ..request_from("10.0.0.9", 1, r(0, 1), b"after-free")
        };
        assert_eq!(m.lock(again, None, open), Stat::Granted);
    }

    #[test]
    fn one_owners_ranges_in_a_file_are_bounded_and_records_merge() {
        let (_dir, path) = lockable_file("f");
        let open = || open_for_locks(&path);
        let m = LockManager::start(None, |_: Granted<()>| {});
        let lock_as =
            |svid: i32, at: u64| m.lock(request_from("10.0.0.9", svid, r(at, 1), b"f"), None, open);
        let lock = |at: u64| lock_as(1, at);
        for i in 0..MAX_RANGES as u64 {
            assert_eq!(lock(2 * i), Stat::Granted);
        }
        let past = 2 * MAX_RANGES as u64;
        assert_eq!(lock(past), Stat::DeniedNoLocks, "one range too many");
        // Filling a gap joins its neighbours: room again. A lock held already adds
        // nothing and is granted at the limit.
        assert_eq!(lock(1), Stat::Granted);
        assert_eq!(lock(past), Stat::Granted);
        assert_eq!(lock(past + 2), Stat::DeniedNoLocks);
        assert_eq!(lock(4), Stat::Granted, "re-sent");
        // An UNLOCK is never refused (clients forget the lock whatever the answer),
        // also when it splits a range at the limit; the kernel releases just that byte.
        let owner = request_from("10.0.0.9", 1, r(0, 1), b"f").owner;
        assert_eq!(m.unlock(&owner, b"f", r(1, 1)), Stat::Granted);
        assert_eq!(lock_as(2, 1), Stat::Granted, "byte 1 was released");
        assert_eq!(lock_as(3, 0), Stat::Denied, "byte 0 is still held");
        assert_eq!(m.unlock(&owner, b"f", r(0, 0)), Stat::Granted);
        assert_eq!(m.counts(), (1, 0), "owner 1 holds nothing, owner 2 byte 1");
        // Record after record, as a database locks them: one range, never the limit.
        for i in 2..(2 * MAX_RANGES as u64 + 10) {
            assert_eq!(lock_as(4, i), Stat::Granted, "record {i}");
        }
    }

    #[test]
    fn a_client_flooding_share_reservations_meets_its_own_limit() {
        let m = LockManager::start(None, |_: Granted<()>| {});
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..MAX_SHARES_PER_CLIENT {
            let oh = i.to_be_bytes();
            assert_eq!(m.share(a, "a", &oh, b"f", 1, 0), Stat::Granted);
        }
        let next = MAX_SHARES_PER_CLIENT.to_be_bytes();
        assert_eq!(m.share(a, "a", &next, b"g", 1, 0), Stat::DeniedNoLocks);
        assert_eq!(
            m.share(a, "a", &0usize.to_be_bytes(), b"f", 3, 0),
            Stat::Granted,
            "renewed"
        );
        assert_eq!(
            m.share(b, "b", b"o", b"f", 1, 0),
            Stat::Granted,
            "others still share"
        );
        assert_eq!(m.unshare(a, &0usize.to_be_bytes(), b"f"), Stat::Granted);
        assert_eq!(
            m.share(a, "a", &next, b"g", 1, 0),
            Stat::Granted,
            "room again"
        );
        assert_eq!(m.free_client(Some("a"), None), 0);
        assert_eq!(
            m.share(a, "a", b"fresh", b"g", 1, 0),
            Stat::Granted,
            "a's count starts again"
        );
    }

    #[test]
    fn grace_period_ends() {
        let m = LockManager::start(Some(Duration::from_millis(50)), |_: Granted<()>| {});
        assert!(m.in_grace());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!m.in_grace());
    }
}
