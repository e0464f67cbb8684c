//! Attributes of files already looked at, kept true by fanotify: READDIRPLUS and GETATTR
//! answer from here instead of asking the file system again.
//!
//! Every share's file system carries a fanotify mark that reports, with the object's
//! kernel handle, each change to a file or folder made by anyone (NFS, Samba, a local
//! process): data written or read (the access time), attributes, links, names made,
//! removed or moved. The kernel queues that report before the changing call returns.
//! So the rule that keeps the cache true is: read the whole queue, forgetting the objects
//! named there, before answering from the cache. A change that finished before a call
//! arrived is then always seen; one still running is concurrent with the call either way.
//!
//! An entry is filled after a `statx`; if a report about that object was read between
//! that `statx` and the filling, the entry is not kept (it may predate the change
//! reported). Without fanotify (not root, a file system that cannot report handles),
//! nothing is cached.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use nfsserve::nfs::fattr3;

use crate::sys::KernelHandle;

/// What is cached about one object of one share: its attributes and the NFS handle
/// clients get for it, kept inline so a lookup touches one place in memory.
#[derive(Clone)]
pub struct Cached {
    pub attr: fattr3,
    fh: [u8; Self::MAX_FH],
    fh_len: u8,
}

impl Cached {
    /// NFSv3 handles are at most 64 bytes.
    const MAX_FH: usize = 64;

    /// None when `fh` is longer than an NFSv3 handle may be.
    pub fn new(attr: fattr3, fh: &[u8]) -> Option<Self> {
        let mut inline = [0u8; Self::MAX_FH];
        inline.get_mut(..fh.len())?.copy_from_slice(fh);
        Some(Self {
            attr,
            fh: inline,
            fh_len: fh.len() as u8,
        })
    }

    pub fn fh(&self) -> &[u8] {
        &self.fh[..usize::from(self.fh_len)]
    }
}

/// A point in the report stream: an entry filled from a `statx` made after
/// `Generation` g is only kept if its object was not reported after g.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Generation(u64);

type KernelKey = (i32, Vec<u8>);

#[derive(Default)]
struct State {
    /// (share id, inode number) → what was cached.
    by_ino: Entries,
    /// Kernel handle → the entries it names (one per share that reached it).
    by_handle: HashMap<KernelKey, Vec<(u32, u64)>>,
    /// Reads of the report queue so far.
    generation: u64,
    /// The read at which each recently reported object was last reported, oldest first
    /// in `order`; what falls off the end is summed up by `forgotten_upto`.
    reported: HashMap<KernelKey, u64>,
    order: VecDeque<(KernelKey, u64)>,
    /// Fills from before this read cannot be checked any more and are refused.
    forgotten_upto: u64,
}

/// The cached entries: an index into a slab whose slots are filled in the order a
/// folder is first listed, so listing it again walks memory in order (see
/// [`Entries::get_after`]) instead of probing the index at random for each entry.
#[derive(Default)]
struct Entries {
    index: HashMap<(u32, u64), u32, crate::fasthash::Fast>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Slot {
    /// The entry this slot holds, or `None` when it is free.
    owner: Option<(u32, u64)>,
    cached: Cached,
}

impl Entries {
    fn get(&self, owner: &(u32, u64)) -> Option<(u32, &Cached)> {
        let i = *self.index.get(owner)?;
        Some((i, &self.slots.get(i as usize)?.cached))
    }

    /// Like [`Entries::get`], trying first the slot after `previous` (the last hit of
    /// the same listing). A slot is the entry of the owner it names, as long as it
    /// names one.
    fn get_after(&self, previous: Option<u32>, owner: &(u32, u64)) -> Option<(u32, &Cached)> {
        if let Some(next) = previous.and_then(|p| p.checked_add(1)) {
            if let Some(slot) = self.slots.get(next as usize) {
                if slot.owner.as_ref() == Some(owner) {
                    return Some((next, &slot.cached));
                }
            }
        }
        self.get(owner)
    }

    fn insert(&mut self, owner: (u32, u64), cached: Cached) {
        let slot = Slot {
            owner: Some(owner),
            cached,
        };
        if let Some(&i) = self.index.get(&owner) {
            self.slots[i as usize] = slot;
            return;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(owner, i);
    }

    fn remove(&mut self, owner: &(u32, u64)) {
        if let Some(i) = self.index.remove(owner) {
            if let Some(slot) = self.slots.get_mut(i as usize) {
                slot.owner = None;
            }
            self.free.push(i);
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
    }

    fn len(&self) -> usize {
        self.index.len()
    }
}

impl State {
    /// Reports remembered for checking fills.
    const REPORTED: usize = 65_536;

    fn forget_all(&mut self) {
        self.by_ino.clear();
        self.by_handle.clear();
        self.reported.clear();
        self.order.clear();
        self.forgotten_upto = self.generation;
    }

    fn changed(&mut self, key: KernelKey) {
        if let Some(owners) = self.by_handle.remove(&key) {
            for owner in owners {
                self.by_ino.remove(&owner);
            }
        }
        let generation = self.generation;
        self.reported.insert(key.clone(), generation);
        self.order.push_back((key, generation));
        while self.order.len() > Self::REPORTED {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            self.forgotten_upto = self.forgotten_upto.max(at);
            if self.reported.get(&old) == Some(&at) {
                self.reported.remove(&old);
            }
        }
    }

    /// Whether a `statx` of `key` made at read `seen` may still be true.
    fn current(&self, key: &KernelKey, seen: u64) -> bool {
        seen >= self.forgotten_upto && self.reported.get(key).is_none_or(|at| *at <= seen)
    }
}

/// See the module's documentation.
pub struct AttrCache {
    notify: Option<OwnedFd>,
    state: Mutex<State>,
}

/// Changes reported: everything that changes what GETATTR returns for a file or a folder.
const MASK: u64 = libc::FAN_ACCESS
    | libc::FAN_MODIFY
    | libc::FAN_ATTRIB
    | libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_DELETE_SELF
    | libc::FAN_MOVE_SELF
    | libc::FAN_ONDIR;

impl AttrCache {
    /// Beyond this many entries (some 70 MiB) the cache starts over.
    const CAPACITY: usize = 262_144;

    /// A cache with its fanotify listener, or one that caches nothing when fanotify
    /// cannot be had (the reason is logged).
    pub fn new() -> Self {
        let flags =
            libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_FID | libc::FAN_NONBLOCK | libc::FAN_CLOEXEC;
        // SAFETY: fanotify_init takes two flag words and returns a new descriptor or -1.
        let fd = unsafe { libc::fanotify_init(flags, libc::O_RDONLY as libc::c_uint) };
        let notify = if fd < 0 {
            tracing::info!(error = %std::io::Error::last_os_error(), "no fanotify: file attributes are read from the file system every time");
            None
        } else {
            // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        Self {
            notify,
            state: Mutex::new(State::default()),
        }
    }

    /// Watch the whole file system `root` is on. Until this succeeds for a share, the
    /// share must not use the cache: `false` when it failed (logged).
    pub fn watch(&self, root: BorrowedFd<'_>) -> bool {
        let Some(notify) = &self.notify else {
            return false;
        };
        // SAFETY: both descriptors are open; an empty path names `root` itself
        // (AT_EMPTY_PATH is implied for fanotify_mark with a NULL path).
        let rc = unsafe {
            libc::fanotify_mark(
                notify.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                MASK,
                root.as_raw_fd(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            tracing::info!(error = %std::io::Error::last_os_error(), "cannot watch a share's file system: its attributes are read every time");
            return false;
        }
        true
    }

    /// Read every report queued so far and forget what they name. Call before answering
    /// from the cache.
    pub fn catch_up(&self) -> Generation {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = &self.notify {
            drain(notify.as_fd(), &mut state);
        }
        Generation(state.generation)
    }

    /// Hand what is cached about `ino` of `share` to `use_it` (without copying it out).
    /// `cursor` carries where the last entry of the same listing was found (start with
    /// `None`): the next is most often right after it.
    pub fn with<R>(
        &self,
        share: u32,
        ino: u64,
        cursor: &mut Option<u32>,
        use_it: impl FnOnce(&Cached) -> R,
    ) -> Option<R> {
        self.notify.as_ref()?;
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (at, cached) = state.by_ino.get_after(*cursor, &(share, ino))?;
        *cursor = Some(at);
        Some(use_it(cached))
    }

    /// Keep what a `statx` made at `seen` found, unless the object was reported since.
    pub fn fill(&self, seen: Generation, share: u32, kernel: &KernelHandle, cached: Cached) {
        if self.notify.is_none() {
            return;
        }
        let key = (kernel.handle_type, kernel.bytes.clone());
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.current(&key, seen.0) {
            return;
        }
        if state.by_ino.len() >= Self::CAPACITY {
            state.by_ino.clear();
            state.by_handle.clear();
        }
        let ino = cached.attr.fileid;
        let owners = state.by_handle.entry(key).or_default();
        if !owners.contains(&(share, ino)) {
            owners.push((share, ino));
        }
        state.by_ino.insert((share, ino), cached);
    }

    /// Read the reports every [`FOLLOW_EVERY`], so the queue does not overflow while
    /// nobody lists (runs until the process ends). Not on every report: a stream of
    /// reads would wake this thread once per READ, and the kernel merges repeated
    /// reports about one object while they wait.
    pub fn follow(self: std::sync::Arc<Self>) {
        if self.notify.is_none() {
            return;
        }
        loop {
            std::thread::sleep(FOLLOW_EVERY);
            self.catch_up();
        }
    }
}

/// How often reports are read when no listing reads them first.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl Default for AttrCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Room left in a read's buffer that proves the queue was empty: the kernel fills the
/// buffer while the next report fits, and no report (metadata, one FID record with a
/// handle of at most 128 bytes) comes near this size.
const LARGEST_REPORT: usize = 1024;

/// Read the reports queued so far, forgetting the objects they name. It stops at the
/// first read that leaves room for another report, which means the queue was empty
/// then: chasing reports that keep arriving (every read of a file on the file system
/// makes one) would take a core and hold the cache, one report per read.
fn drain(notify: BorrowedFd<'_>, state: &mut State) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match rustix::io::read(notify, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        state.generation += 1;
        each_report(&buf[..n], |report| match report {
            Report::Overflow => state.forget_all(),
            Report::Changed(key) => state.changed(key),
        });
        if n + LARGEST_REPORT <= buf.len() {
            return;
        }
    }
}

/// One fanotify report, as far as the cache cares.
#[derive(Debug, PartialEq, Eq)]
enum Report {
    /// Reports were lost: nothing cached can be trusted.
    Overflow,
    /// The object with this kernel handle changed.
    Changed(KernelKey),
}

/// `struct fanotify_event_metadata`: event_len u32, vers u8, reserved u8,
/// metadata_len u16, mask u64, fd i32, pid i32.
const METADATA_LEN: usize = 24;
/// `struct fanotify_event_info_header` (type u8, pad u8, len u16) and `fsid` (8 bytes),
/// then `struct file_handle` (handle_bytes u32, handle_type i32, f_handle).
const FID_HEADER: usize = 4 + 8 + 8;

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_ne_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Hand each report in `buf` (read from a `FAN_REPORT_FID` descriptor) to `report`.
/// Lengths come from the kernel but are checked against the buffer all the same: a bad
/// record ends the walk as an overflow (what it would have named is unknown).
fn each_report(mut buf: &[u8], mut report: impl FnMut(Report)) {
    while buf.len() >= METADATA_LEN {
        let event_len = u32_at(buf, 0) as usize;
        let metadata_len = u16_at(buf, 6).max(METADATA_LEN);
        if event_len < METADATA_LEN || event_len > buf.len() || metadata_len > event_len {
            return report(Report::Overflow);
        }
        let mask = u64::from_ne_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
        let (event, rest) = buf.split_at(event_len);
        buf = rest;
        if mask & libc::FAN_Q_OVERFLOW != 0 {
            report(Report::Overflow);
            continue;
        }
        let mut info = &event[metadata_len..];
        while info.len() >= 4 {
            let len = u16_at(info, 2);
            if len < 4 || len > info.len() {
                return report(Report::Overflow);
            }
            let (record, more) = info.split_at(len);
            info = more;
            // FAN_EVENT_INFO_TYPE_FID (1), DFID_NAME (2), DFID (3): a handle follows.
            if !(1..=3).contains(&record[0]) || record.len() < FID_HEADER {
                continue;
            }
            let bytes = u32_at(record, 12) as usize;
            let handle_type = u32_at(record, 16) as i32;
            let Some(handle) = record.get(FID_HEADER..FID_HEADER + bytes) else {
                return report(Report::Overflow);
            };
            report(Report::Changed((handle_type, handle.to_vec())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(mask: u64, handles: &[(i32, &[u8])]) -> Vec<u8> {
        let mut infos = Vec::new();
        for (t, h) in handles {
            let len = FID_HEADER + h.len();
            let padded = len.div_ceil(4) * 4;
            infos.push(1u8);
            infos.push(0);
            infos.extend_from_slice(&(padded as u16).to_ne_bytes());
            infos.extend_from_slice(&[0; 8]);
            infos.extend_from_slice(&(h.len() as u32).to_ne_bytes());
            infos.extend_from_slice(&t.to_ne_bytes());
            infos.extend_from_slice(h);
            infos.resize(infos.len() + padded - len, 0);
        }
        let mut e = Vec::new();
        e.extend_from_slice(&((METADATA_LEN + infos.len()) as u32).to_ne_bytes());
        e.push(3);
        e.push(0);
        e.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        e.extend_from_slice(&mask.to_ne_bytes());
        e.extend_from_slice(&(-1i32).to_ne_bytes());
        e.extend_from_slice(&0i32.to_ne_bytes());
        e.extend_from_slice(&infos);
        e
    }

    fn reports(buf: &[u8]) -> Vec<Report> {
        let mut got = Vec::new();
        each_report(buf, |r| got.push(r));
        got
    }

    #[test]
    fn reports_name_the_handles_and_overflow() {
        let mut buf = event(libc::FAN_MODIFY, &[(1, &[1, 2, 3, 4, 5, 6, 7, 8])]);
        buf.extend(event(libc::FAN_Q_OVERFLOW, &[]));
        buf.extend(event(libc::FAN_CREATE, &[(0x81, &[9; 12])]));
        let got = reports(&buf);
        assert_eq!(
            got,
            vec![
                Report::Changed((1, vec![1, 2, 3, 4, 5, 6, 7, 8])),
                Report::Overflow,
                Report::Changed((0x81, vec![9; 12])),
            ]
        );
    }

    #[test]
    fn malformed_reports_end_the_walk_as_an_overflow() {
        let good = event(libc::FAN_MODIFY, &[(1, &[7; 8])]);
        // event_len beyond the buffer
        let mut long = good.clone();
        long[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(reports(&long), vec![Report::Overflow]);
        // an info record longer than its event
        let mut bad_info = good.clone();
        bad_info[METADATA_LEN + 2..METADATA_LEN + 4].copy_from_slice(&500u16.to_ne_bytes());
        assert_eq!(reports(&bad_info), vec![Report::Overflow]);
        // a handle longer than its record
        let mut bad_handle = good.clone();
        bad_handle[METADATA_LEN + 12..METADATA_LEN + 16].copy_from_slice(&64u32.to_ne_bytes());
        assert_eq!(reports(&bad_handle), vec![Report::Overflow]);
        // a truncated buffer yields nothing more
        assert!(reports(&good[..10]).is_empty());
    }

    #[test]
    fn the_slot_after_the_last_hit_is_used_only_for_its_own_entry() {
        let entry = |ino: u64| {
            Cached::new(
                fattr3 {
                    fileid: ino,
                    ..Default::default()
                },
                &[ino as u8],
            )
            .unwrap()
        };
        let mut entries = Entries::default();
        for ino in [10, 11, 12] {
            entries.insert((1, ino), entry(ino));
        }
        let (at, first) = entries.get_after(None, &(1, 10)).unwrap();
        assert_eq!(first.attr.fileid, 10);
        assert_eq!(entries.get_after(Some(at), &(1, 11)).unwrap().1.fh(), &[11]);
        // 11 goes and 13 takes its slot: the slot after 10 now answers for 13 only.
        entries.remove(&(1, 11));
        assert!(entries.get_after(Some(at), &(1, 11)).is_none());
        entries.insert((1, 13), entry(13));
        assert!(entries.get_after(Some(at), &(1, 11)).is_none());
        assert_eq!(entries.get_after(Some(at), &(1, 13)).unwrap().1.fh(), &[13]);
        // Another share's entry with the same inode number is another entry.
        assert!(entries.get_after(Some(at), &(2, 13)).is_none());
        assert!(entries.get_after(Some(u32::MAX), &(1, 12)).is_some());
    }

    fn cached(cache: &AttrCache, share: u32, ino: u64) -> bool {
        cache.with(share, ino, &mut None, |_| ()).is_some()
    }

    /// A new folder, opened, whose file system `cache` watches.
    fn watched_folder(cache: &AttrCache) -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        let root = rustix::fs::open(
            dir.path(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        assert!(
            cache.watch(root.as_fd()),
            "fanotify is needed (run as root)"
        );
        (dir, root)
    }

    /// A file changed behind the cache's back is forgotten once the reports are read.
    #[test]
    fn a_change_by_another_process_is_seen_before_the_next_answer() {
        let cache = AttrCache::new();
        let (dir, root) = watched_folder(&cache);
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let kernel = crate::sys::name_to_handle(root.as_fd(), c"f").unwrap();
        let seen = cache.catch_up();
        let attr = fattr3 {
            fileid: 42,
            ..Default::default()
        };
        cache.fill(seen, 7, &kernel, Cached::new(attr, &[1]).unwrap());
        cache.catch_up();
        assert!(cached(&cache, 7, 42));
        let key = (kernel.handle_type, kernel.bytes.clone());
        assert!(cache.state.lock().unwrap().by_handle[&key].contains(&(7, 42)));
        std::fs::write(dir.path().join("f"), b"changed").unwrap();
        cache.catch_up();
        assert!(!cached(&cache, 7, 42), "the write was not noticed");
        // A fill from before a report is refused.
        let stale = cache.catch_up();
        std::fs::write(dir.path().join("f"), b"again").unwrap();
        cache.catch_up();
        cache.fill(stale, 7, &kernel, Cached::new(attr, &[1]).unwrap());
        assert!(
            !cached(&cache, 7, 42),
            "a fill older than a report was kept"
        );
    }

    /// One catch-up reads every report queued before it, even when they fill its
    /// buffer many times over: stopping at the first short read loses none of them.
    #[test]
    fn one_catch_up_reads_more_reports_than_one_read_holds() {
        let cache = AttrCache::new();
        let (dir, root) = watched_folder(&cache);
        // About 50 bytes a report: 2,000 files are several 16 KiB reads.
        let names: Vec<String> = (0..2000).map(|i| format!("f{i:04}")).collect();
        for name in &names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let seen = cache.catch_up();
        for (ino, name) in (1..).zip(&names) {
            let c = std::ffi::CString::new(name.as_str()).unwrap();
            let kernel = crate::sys::name_to_handle(root.as_fd(), &c).unwrap();
            let attr = fattr3 {
                fileid: ino,
                ..Default::default()
            };
            cache.fill(seen, 7, &kernel, Cached::new(attr, &[1]).unwrap());
        }
        assert!((1..=2000).all(|ino| cached(&cache, 7, ino)));
        for name in &names {
            std::fs::write(dir.path().join(name), b"changed").unwrap();
        }
        cache.catch_up();
        let kept: Vec<u64> = (1..=2000).filter(|&ino| cached(&cache, 7, ino)).collect();
        assert!(kept.is_empty(), "changed but still cached: {kept:?}");
    }
}
