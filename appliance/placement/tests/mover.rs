//! The mover on real files (folders standing for pools): data moves and comes back with
//! the file keeping its inode, size, times and bytes; a change during the copy, a crash
//! at each point and readers in flight lose nothing. Needs root (`trusted.*` xattrs).

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rushes_placement::layout::{location_of, recover_freeing, DataPlaces, Resolved};
use rushes_placement::{move_file, recover, MoveError, MoveSpec, MoveWatch};
use rustix::fs::OFlags;

struct Box3 {
    _dir: tempfile::TempDir,
    root: PathBuf,
    places: Arc<DataPlaces>,
}

impl Box3 {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let places = Arc::new(DataPlaces::default());
        for pool in ["fast", "archive", "nearline"] {
            std::fs::create_dir_all(root.join(pool)).unwrap();
            places.add_pool(pool, &root.join(pool)).unwrap();
        }
        std::fs::create_dir_all(root.join("fast/media/day1")).unwrap();
        Self {
            _dir: dir,
            root,
            places,
        }
    }

    fn pool(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn file(&self, path: &str) -> PathBuf {
        self.root
            .join("fast/media")
            .join(path.trim_start_matches('/'))
    }

    fn spec(&self, path: &str, to: &str) -> MoveSpec {
        MoveSpec {
            share: "media".into(),
            share_root: self.root.join("fast/media"),
            path: path.into(),
            home: "fast".into(),
            home_root: self.pool("fast"),
            to: to.into(),
        }
    }

    fn mv(&self, path: &str, to: &str, watch: &mut dyn MoveWatch) -> Result<(), MoveError> {
        move_file(&self.places, &self.spec(path, to), &self.pool(to), watch).map(|_| ())
    }

    /// The file's bytes as a server reads them: through the namespace layer.
    fn read(&self, path: &str) -> Vec<u8> {
        let ns = std::fs::File::open(self.file(path)).unwrap();
        let mut st = rustix::fs::fstat(&ns).unwrap();
        let _t = self.places.enter(ns.as_fd(), &mut st, false).unwrap();
        match self
            .places
            .resolve(ns.as_fd(), &st, OFlags::RDONLY)
            .unwrap()
        {
            Resolved::InPlace => std::fs::read(self.file(path)).unwrap(),
            Resolved::Elsewhere(fd, _) => std::fs::read(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&fd)
            ))
            .unwrap(),
            Resolved::Released => panic!("{path} is released"),
        }
    }

    fn objects(&self, pool: &str) -> Vec<String> {
        let dir = self.pool(pool).join(".rushes/data/media");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn pool_of(&self, path: &str) -> Option<String> {
        let f = std::fs::File::open(self.file(path)).unwrap();
        location_of(f.as_fd()).unwrap().map(|l| l.pool)
    }

    /// Blocks the namespace inode holds on the home pool.
    fn blocks(&self, path: &str) -> u64 {
        std::fs::metadata(self.file(path)).unwrap().blocks()
    }

    fn journal(&self) -> usize {
        std::fs::read_dir(self.pool("fast/.rushes/moving"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn clip(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn write_old(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(old)
            .set_modified(old),
    )
    .unwrap();
}

#[derive(Default)]
struct Quiet;
impl MoveWatch for Quiet {}

#[test]
fn data_moves_away_and_back_and_the_file_keeps_its_inode_size_times_and_bytes() {
    let b = Box3::new();
    let bytes = clip(1, (5 << 20) + 123);
    write_old(&b.file("/day1/A001.mov"), &bytes);
    let before = std::fs::metadata(b.file("/day1/A001.mov")).unwrap();

    b.mv("/day1/A001.mov", "archive", &mut Quiet).unwrap();
    let after = std::fs::metadata(b.file("/day1/A001.mov")).unwrap();
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.len(), before.len());
    assert_eq!(after.mtime(), before.mtime(), "clients see the same mtime");
    assert_eq!(
        after.atime(),
        before.atime(),
        "the mover does not count as an access"
    );
    assert_eq!(after.blocks(), 0, "the home pool gives the space back");
    assert_eq!(b.pool_of("/day1/A001.mov").as_deref(), Some("archive"));
    assert_eq!(b.objects("archive").len(), 1, "{:?}", b.objects("archive"));
    assert_eq!(b.read("/day1/A001.mov"), bytes);
    assert_eq!(b.journal(), 0, "a finished move leaves no journal");

    // On to a third pool: the archive's copy is freed.
    b.mv("/day1/A001.mov", "nearline", &mut Quiet).unwrap();
    assert_eq!(b.pool_of("/day1/A001.mov").as_deref(), Some("nearline"));
    assert!(
        b.objects("archive").is_empty(),
        "{:?}",
        b.objects("archive")
    );
    assert_eq!(b.read("/day1/A001.mov"), bytes);

    // And home again: the data is in the namespace inode, the object gone.
    b.mv("/day1/A001.mov", "fast", &mut Quiet).unwrap();
    let home = std::fs::metadata(b.file("/day1/A001.mov")).unwrap();
    assert_eq!(b.pool_of("/day1/A001.mov"), None);
    assert!(home.blocks() * 512 >= home.len());
    assert_eq!(home.mtime(), before.mtime());
    assert!(b.objects("nearline").is_empty());
    assert_eq!(std::fs::read(b.file("/day1/A001.mov")).unwrap(), bytes);

    // A file smaller than a block gives its last block back too, so it is looked up.
    write_old(&b.file("/day1/note.txt"), b"slate 12, take 3");
    b.mv("/day1/note.txt", "archive", &mut Quiet).unwrap();
    assert_eq!(b.blocks("/day1/note.txt"), 0);
    assert_eq!(b.read("/day1/note.txt"), b"slate 12, take 3");

    // A move to where the data already is does nothing.
    assert!(move_file(
        &b.places,
        &b.spec("/day1/A001.mov", "fast"),
        &b.pool("fast"),
        &mut Quiet
    )
    .unwrap()
    .is_none());
}

/// Writes to the file partway through the copy, as a client would.
struct Meddler {
    path: PathBuf,
    done: bool,
}

impl MoveWatch for Meddler {
    fn progress(&mut self, done: u64, _total: u64) {
        if !self.done && done >= 1 << 20 {
            self.done = true;
            use std::io::Write;
            let mut f = std::fs::File::options()
                .append(true)
                .open(&self.path)
                .unwrap();
            f.write_all(b"one more frame").unwrap();
        }
    }
}

#[test]
fn a_file_changed_during_its_copy_is_not_switched_and_keeps_the_change() {
    let b = Box3::new();
    let bytes = clip(2, 4 << 20);
    write_old(&b.file("/day1/B.mov"), &bytes);
    let mut meddler = Meddler {
        path: b.file("/day1/B.mov"),
        done: false,
    };
    let err = b.mv("/day1/B.mov", "archive", &mut meddler).unwrap_err();
    assert!(matches!(err, MoveError::Changed(_)), "{err}");
    assert!(err.is_retry());
    assert_eq!(b.pool_of("/day1/B.mov"), None);
    assert!(b.objects("archive").is_empty(), "the copy is dropped");
    let mut want = bytes.clone();
    want.extend_from_slice(b"one more frame");
    assert_eq!(std::fs::read(b.file("/day1/B.mov")).unwrap(), want);
    assert_eq!(b.journal(), 0);

    // The same while recalling: the change went to the data's place, which stays.
    b.mv("/day1/B.mov", "archive", &mut Quiet).unwrap();
    let obj = b
        .pool("archive/.rushes/data/media")
        .join(&b.objects("archive")[0]);
    let mut meddler = Meddler {
        path: obj,
        done: false,
    };
    let err = b.mv("/day1/B.mov", "fast", &mut meddler).unwrap_err();
    assert!(matches!(err, MoveError::Changed(_)), "{err}");
    assert_eq!(b.pool_of("/day1/B.mov").as_deref(), Some("archive"));
    assert_eq!(b.blocks("/day1/B.mov"), 0);
    want.extend_from_slice(b"one more frame");
    assert_eq!(&b.read("/day1/B.mov")[..want.len()], &want[..]);
}

/// Dies (panics, leaving the disk as a kill -9 would) at one point of the move.
struct Crash {
    at_bytes: Option<u64>,
    after_switch: bool,
}

impl MoveWatch for Crash {
    fn progress(&mut self, done: u64, _total: u64) {
        if self.at_bytes.is_some_and(|at| done >= at) {
            panic!("power cut mid-copy");
        }
    }
    fn switched(&mut self) {
        if self.after_switch {
            panic!("power cut after the switch");
        }
    }
}

fn crash(b: &Box3, path: &str, to: &str, mut watch: Crash) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = b.mv(path, to, &mut watch);
    }));
    assert!(r.is_err(), "the move was cut");
}

#[test]
fn a_restart_after_a_crash_at_any_point_finds_each_file_whole_in_one_place() {
    let b = Box3::new();
    let a = clip(3, 3 << 20);
    let c = clip(4, 3 << 20);
    write_old(&b.file("/day1/A.mov"), &a);
    write_old(&b.file("/day1/C.mov"), &c);

    // Cut mid-copy: rolled back, the partial copy removed.
    crash(
        &b,
        "/day1/A.mov",
        "archive",
        Crash {
            at_bytes: Some(2 << 20),
            after_switch: false,
        },
    );
    assert_eq!(b.journal(), 1);
    assert_eq!(
        b.objects("archive").len(),
        1,
        "the partial copy is still there"
    );
    // Cut after the switch, before the home pool's blocks were freed: finished.
    crash(
        &b,
        "/day1/C.mov",
        "archive",
        Crash {
            at_bytes: None,
            after_switch: true,
        },
    );
    // Renamed meanwhile: found by its inode.
    std::fs::rename(b.file("/day1/C.mov"), b.file("/C-renamed.mov")).unwrap();
    assert_eq!(b.journal(), 2);

    let mut got = recover(&b.places, &b.pool("fast"));
    got.sort_by(|x, y| x.path.cmp(&y.path));
    let outcomes: Vec<(&str, &str)> = got.iter().map(|r| (r.path.as_str(), r.outcome)).collect();
    assert_eq!(
        outcomes,
        [("/day1/A.mov", "rolled back"), ("/day1/C.mov", "finished")]
    );
    assert_eq!(b.journal(), 0);
    assert_eq!(b.pool_of("/day1/A.mov"), None);
    assert_eq!(std::fs::read(b.file("/day1/A.mov")).unwrap(), a);
    assert_eq!(b.pool_of("/C-renamed.mov").as_deref(), Some("archive"));
    assert_eq!(b.blocks("/C-renamed.mov"), 0);
    assert_eq!(b.read("/C-renamed.mov"), c);
    assert_eq!(
        b.objects("archive").len(),
        1,
        "only C's copy: {:?}",
        b.objects("archive")
    );

    // A recall cut mid-copy: the data stays on the archive and the home blocks go.
    crash(
        &b,
        "/C-renamed.mov",
        "fast",
        Crash {
            at_bytes: Some(2 << 20),
            after_switch: false,
        },
    );
    recover(&b.places, &b.pool("fast"));
    assert_eq!(b.pool_of("/C-renamed.mov").as_deref(), Some("archive"));
    assert_eq!(b.blocks("/C-renamed.mov"), 0);
    assert_eq!(b.read("/C-renamed.mov"), c);
}

#[test]
fn readers_in_flight_never_see_anything_but_the_files_bytes_while_it_moves() {
    let b = Arc::new(Box3::new());
    let bytes = clip(5, 2 << 20);
    write_old(&b.file("/day1/P.mov"), &bytes);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (b, stop, bytes) = (Arc::clone(&b), Arc::clone(&stop), bytes.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    assert!(b.read("/day1/P.mov") == bytes, "a read saw other bytes");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for to in ["archive", "nearline", "fast", "archive", "fast"] {
        // A switch may give way to a slow reader; it is tried again.
        let mut tries = 0;
        loop {
            match b.mv("/day1/P.mov", to, &mut Quiet) {
                Ok(()) => break,
                Err(e) if e.is_retry() && tries < 20 => tries += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            b.pool_of("/day1/P.mov").as_deref(),
            (to != "fast").then_some(to)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

/// A crash between a removal and the freeing of the removed file's data: the restart
/// frees what no name holds any more, and keeps what the crash left named.
#[test]
fn a_removal_cut_short_by_a_crash_is_settled_at_start_and_loses_nothing() {
    let b = Box3::new();
    for name in ["gone.mov", "kept.mov"] {
        std::fs::write(b.file(name), vec![7u8; 300_000]).unwrap();
        b.mv(&format!("/{name}"), "archive", &mut Quiet).unwrap();
    }
    let objects = || {
        std::fs::read_dir(b.pool("archive").join(".rushes/data/media"))
            .unwrap()
            .count()
    };
    assert_eq!(objects(), 2);
    let dir = std::fs::File::open(b.file("")).unwrap();
    // gone.mov: its name went, then the crash, before its data was freed.
    let doomed = b
        .places
        .doomed(dir.as_fd(), c"gone.mov")
        .expect("moved data to free");
    std::fs::remove_file(b.file("gone.mov")).unwrap();
    std::mem::forget(doomed);
    // kept.mov: the crash came before its name went.
    std::mem::forget(
        b.places
            .doomed(dir.as_fd(), c"kept.mov")
            .expect("moved data"),
    );
    assert_eq!(objects(), 2, "a crash frees nothing");

    let mut done = recover_freeing(&b.places, &b.pool("archive"));
    done.sort_by(|x, y| x.path.cmp(&y.path));
    let outcomes: Vec<(&str, &str)> = done
        .iter()
        .map(|f| (f.path.file_name().unwrap().to_str().unwrap(), f.outcome))
        .collect();
    assert_eq!(outcomes, [("gone.mov", "freed"), ("kept.mov", "kept")]);
    assert_eq!(
        objects(),
        1,
        "the removed file's data freed, the other's kept"
    );
    assert_eq!(b.read("/kept.mov"), vec![7u8; 300_000]);
    assert!(
        recover_freeing(&b.places, &b.pool("archive")).is_empty(),
        "nothing left to settle"
    );
}

/// A removal that finishes, or one that fails, leaves no entry behind.
#[test]
fn a_finished_or_failed_removal_leaves_no_freeing_entry() {
    let b = Box3::new();
    std::fs::write(b.file("a.mov"), vec![1u8; 200_000]).unwrap();
    b.mv("/a.mov", "archive", &mut Quiet).unwrap();
    let dir = std::fs::File::open(b.file("")).unwrap();
    let entries = || {
        std::fs::read_dir(b.pool("archive").join(".rushes/freeing"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    drop(b.places.doomed(dir.as_fd(), c"a.mov").unwrap());
    assert_eq!(entries(), 0, "a removal that did not happen");
    let doomed = b.places.doomed(dir.as_fd(), c"a.mov").unwrap();
    assert_eq!(entries(), 1, "written before the name goes");
    std::fs::remove_file(b.file("a.mov")).unwrap();
    doomed.free(&b.places);
    assert_eq!(entries(), 0);
    // A link made between the look and the removal keeps the file, and its data.
    std::fs::write(b.file("b.mov"), vec![2u8; 200_000]).unwrap();
    b.mv("/b.mov", "archive", &mut Quiet).unwrap();
    let doomed = b.places.doomed(dir.as_fd(), c"b.mov").unwrap();
    std::fs::hard_link(b.file("b.mov"), b.file("b-linked.mov")).unwrap();
    std::fs::remove_file(b.file("b.mov")).unwrap();
    doomed.free(&b.places);
    assert_eq!(b.read("/b-linked.mov"), vec![2u8; 200_000]);
    assert_eq!(
        std::fs::read_dir(b.pool("archive").join(".rushes/data/media"))
            .unwrap()
            .count(),
        1,
        "a.mov's data freed, b.mov's kept for its other name"
    );
}

/// A folder swapped for a symbolic link after the plan: the move, run as root, does not
/// follow it out of the share.
#[test]
fn a_move_never_follows_a_link_out_of_the_share() {
    let b = Box3::new();
    let outside = b.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.mov"), vec![9u8; 100_000]).unwrap();
    std::os::unix::fs::symlink(&outside, b.file("day2")).unwrap();
    let err = b.mv("/day2/secret.mov", "archive", &mut Quiet).unwrap_err();
    assert!(matches!(err, MoveError::Io { .. }), "{err}");
    let blocks = std::fs::metadata(outside.join("secret.mov"))
        .unwrap()
        .blocks();
    assert!(blocks * 512 >= 100_000, "the file outside keeps its blocks");
    assert!(location_of(
        std::fs::File::open(outside.join("secret.mov"))
            .unwrap()
            .as_fd()
    )
    .unwrap()
    .is_none());
}
