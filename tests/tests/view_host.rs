//! The FUSE view Samba serves shares through, mounted on the host over folders that
//! stand for pools (the appliance's run, with Samba on md + XFS, is in `pools_guest` and
//! `smb_guest`): files keep their inode numbers and bytes while the mover sends their
//! data to another pool, an open file holds its data where it is, writes and truncates
//! reach moved data, removal frees it, new files belong to their maker, the layer's
//! xattrs stay hidden, and byte-range locks meet the OFD locks NFS clients take.
//! Needs root and /dev/fuse.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rushes_nas::share::Caller;
use rushes_nas::sys::{self, LockKind};
use rushes_placement::layout::location_of;
use rushes_placement::{DataPlaces, MoveError};

struct Box {
    _dir: tempfile::TempDir,
    root: PathBuf,
    places: Arc<DataPlaces>,
    view: Option<rushes_view::ViewMount>,
    /// What the view said its writers closed, in order.
    closed: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Box {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for p in ["fast/media", "archive", "view"] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        std::fs::set_permissions(
            root.join("fast/media"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let places = Arc::new(DataPlaces::default());
        for p in ["fast", "archive"] {
            places.add_pool(p, &root.join(p)).unwrap();
        }
        let closed: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let log = Arc::clone(&closed);
        let view = rushes_view::mount(
            "media",
            &root.join("fast/media"),
            &root.join("view"),
            Arc::clone(&places),
            Some(Arc::new(move |path: &str| {
                log.lock().unwrap().push(path.to_string())
            })),
        )
        .expect("mount the view (root and /dev/fuse needed)");
        Self {
            _dir: dir,
            root,
            places,
            view: Some(view),
            closed,
        }
    }

    /// A file as Samba sees it.
    fn seen(&self, name: &str) -> PathBuf {
        self.root.join("view").join(name)
    }

    /// The file on the home pool.
    fn home(&self, name: &str) -> PathBuf {
        self.root.join("fast/media").join(name)
    }

    fn pool_of(&self, name: &str) -> Option<String> {
        let f = File::open(self.home(name)).unwrap();
        location_of(f.as_fd()).unwrap().map(|l| l.pool)
    }

    fn objects(&self, pool: &str) -> usize {
        std::fs::read_dir(self.root.join(pool).join(".rushes/data/media"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn try_move(&self, name: &str, to: &str) -> Result<(), MoveError> {
        rushes_tests::move_media(&self.places, &self.root, name, to)
    }

    /// Move, waiting for the view to hear of a close just made (FUSE sends it on its own).
    fn mv(&self, name: &str, to: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match self.try_move(name, to) {
                Ok(()) => break,
                Err(MoveError::Open(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("move of {name} to {to}: {e}"),
            }
        }
        assert_eq!(
            self.pool_of(name).unwrap_or_else(|| "fast".into()),
            to,
            "{name} moved"
        );
    }
}

impl Drop for Box {
    fn drop(&mut self) {
        if let Some(v) = self.view.take() {
            v.unmount();
        }
    }
}

fn clip(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn files_keep_inode_and_bytes_through_the_view_while_their_data_moves_and_an_open_file_holds_it() {
    let b = Box::new();
    assert!(
        b.view.as_ref().unwrap().passthrough(),
        "the kernel took FUSE passthrough"
    );
    // Written through the view: the file is on the home pool, same inode both ways.
    let data = clip(3 << 20, 7);
    std::fs::write(b.seen("take-1.mov"), &data).unwrap();
    assert_eq!(read(&b.home("take-1.mov")), data);
    let ino = std::fs::metadata(b.home("take-1.mov")).unwrap().ino();
    assert_eq!(std::fs::metadata(b.seen("take-1.mov")).unwrap().ino(), ino);

    // Away to the archive: read in place there, the same inode, size and bytes.
    b.mv("take-1.mov", "archive");
    assert_eq!(b.objects("archive"), 1);
    assert_eq!(std::fs::metadata(b.home("take-1.mov")).unwrap().blocks(), 0);
    let seen = std::fs::metadata(b.seen("take-1.mov")).unwrap();
    assert_eq!((seen.ino(), seen.len()), (ino, data.len() as u64));
    assert!(
        seen.blocks() * 512 >= seen.len(),
        "a moved file does not look sparse: {} blocks",
        seen.blocks()
    );
    assert_eq!(read(&b.seen("take-1.mov")), data);

    // Open through the view, its data stays where the open found it: a move waits for
    // the close, and a reader sees the same bytes all along.
    let mut open = File::open(b.seen("take-1.mov")).unwrap();
    let mut first = vec![0u8; 1 << 20];
    open.read_exact(&mut first).unwrap();
    match b.try_move("take-1.mov", "fast") {
        Err(MoveError::Open(_)) => {}
        other => panic!("a move of an open file must wait: {other:?}"),
    }
    assert_eq!(b.pool_of("take-1.mov").as_deref(), Some("archive"));
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).unwrap();
    first.extend(rest);
    assert_eq!(first, data);
    drop(open);
    // Closed: home again, and the object on the archive freed.
    b.mv("take-1.mov", "fast");
    assert_eq!(b.objects("archive"), 0);
    assert_eq!(read(&b.seen("take-1.mov")), data);
    assert_eq!(std::fs::metadata(b.seen("take-1.mov")).unwrap().ino(), ino);
}

#[test]
fn writes_and_truncates_reach_moved_data_and_removal_frees_it() {
    let b = Box::new();
    let data = clip(1 << 20, 3);
    std::fs::write(b.seen("grade.exr"), &data).unwrap();
    b.mv("grade.exr", "archive");

    // Appended through the view: the object grows, the view shows the new size while
    // the writer has it open, and the home file takes it at the close.
    let tail = clip(4096, 9);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(b.seen("grade.exr"))
        .unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(&tail).unwrap();
    f.sync_all().unwrap();
    let want = data.len() as u64 + tail.len() as u64;
    assert_eq!(
        std::fs::metadata(b.seen("grade.exr")).unwrap().len(),
        want,
        "size while the writer has it open"
    );
    // An fsync gives the home file (what NFS clients see) its new size at once, and
    // writes it to disk with the data, as NFS COMMIT does for moved data.
    assert_eq!(
        std::fs::metadata(b.home("grade.exr")).unwrap().len(),
        want,
        "the home file took the new size at the fsync"
    );
    drop(f);
    assert_eq!(
        std::fs::metadata(b.home("grade.exr")).unwrap().len(),
        want,
        "the home file took the new size at the close"
    );
    assert_eq!(b.pool_of("grade.exr").as_deref(), Some("archive"));
    let mut all = data.clone();
    all.extend(&tail);
    assert_eq!(read(&b.seen("grade.exr")), all);

    // Truncated through the view: both the home file and the data.
    OpenOptions::new()
        .write(true)
        .open(b.seen("grade.exr"))
        .unwrap()
        .set_len(1000)
        .unwrap();
    assert_eq!(read(&b.seen("grade.exr")), data[..1000]);
    assert_eq!(std::fs::metadata(b.home("grade.exr")).unwrap().len(), 1000);

    // Renamed through the view: same file; removed: its data is freed.
    std::fs::rename(b.seen("grade.exr"), b.seen("grade-v2.exr")).unwrap();
    assert_eq!(read(&b.seen("grade-v2.exr")), data[..1000]);
    assert_eq!(b.objects("archive"), 1);
    std::fs::remove_file(b.seen("grade-v2.exr")).unwrap();
    assert_eq!(b.objects("archive"), 0, "the removed file's data was freed");
    assert!(!b.home("grade-v2.exr").exists());
}

#[test]
fn a_moved_file_removed_while_open_never_hands_its_size_to_a_file_that_took_its_number() {
    let b = Box::new();
    // The test means something only where the file system gives freed numbers out
    // again (ext4, XFS; the appliance's pools are XFS): check that it does here.
    std::fs::write(b.home("gone.txt"), b"x").unwrap();
    let freed = std::fs::metadata(b.home("gone.txt")).unwrap().ino();
    std::fs::remove_file(b.home("gone.txt")).unwrap();
    let reused = (0..300).any(|i| {
        let p = b.home(&format!("probe-{i}.txt"));
        std::fs::write(&p, b"p").unwrap();
        std::fs::metadata(&p).unwrap().ino() == freed
    });
    assert!(
        reused,
        "this file system never gave a freed inode number out again: the test needs ext4 or XFS under its temporary folder"
    );
    let data = clip(1 << 20, 5);
    std::fs::write(b.seen("conform.mxf"), &data).unwrap();
    b.mv("conform.mxf", "archive");
    let ino = std::fs::metadata(b.home("conform.mxf")).unwrap().ino();
    // An SMB client writes the moved file; meanwhile its name goes (removed on the
    // pool, as an NFS client's REMOVE does).
    let mut writer = OpenOptions::new()
        .write(true)
        .open(b.seen("conform.mxf"))
        .unwrap();
    writer.seek(SeekFrom::End(0)).unwrap();
    writer.write_all(&clip(4096, 6)).unwrap();
    std::fs::remove_file(b.home("conform.mxf")).unwrap();
    // New files come, each seen through the view. The file system gives freed inode
    // numbers out again at once; while the writer has the file open, its number must
    // stay its own.
    let mut took_number = Vec::new();
    for i in 0..300 {
        let name = format!("new-{i}.txt");
        std::fs::write(b.home(&name), b"new").unwrap();
        if std::fs::metadata(b.seen(&name)).unwrap().ino() == ino {
            took_number.push(name);
        }
    }
    // The writer closes: the size it wrote goes to nobody else.
    drop(writer);
    for i in 0..300 {
        let name = format!("new-{i}.txt");
        let got = read(&b.home(&name));
        assert!(
            got == b"new",
            "{name} did not keep its own bytes: {} bytes now",
            got.len()
        );
    }
    assert!(
        took_number.is_empty(),
        "{took_number:?} got the inode number of a file still open"
    );
}

#[test]
fn new_files_belong_to_their_maker_and_the_layers_xattrs_stay_hidden() {
    let b = Box::new();
    // Made by uid 1000 (as smbd acting for an account): owned by it on the pool, with
    // exactly the mode asked for.
    let made = std::thread::spawn({
        let dir = b.seen("bins");
        let file = b.seen("edit.prproj");
        move || {
            sys::run_as(&Caller {
                uid: 1000,
                gid: 1000,
                gids: vec![],
            })
            .unwrap();
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(&file, b"project").unwrap();
        }
    })
    .join();
    assert!(made.is_ok(), "uid 1000 made a folder and a file");
    for name in ["bins", "edit.prproj"] {
        let m = std::fs::metadata(b.home(name)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 1000), "{name}'s owner");
    }

    // Samba's own xattrs pass through; the data location never shows and cannot be set.
    let view_file = b.seen("edit.prproj");
    let set = std::process::Command::new("setfattr")
        .args(["-n", "user.DOSATTRIB", "-v", "0x20"])
        .arg(&view_file)
        .status();
    if let Ok(status) = set {
        assert!(status.success(), "setfattr user.DOSATTRIB through the view");
        let mut buf = [0u8; 16];
        let f = File::open(b.home("edit.prproj")).unwrap();
        let n = rustix::fs::fgetxattr(&f, c"user.DOSATTRIB", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"0x20");
    }
    std::fs::write(b.seen("moved.mov"), clip(100_000, 1)).unwrap();
    b.mv("moved.mov", "archive");
    let f = File::open(b.seen("moved.mov")).unwrap();
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::flistxattr(&f, &mut names).unwrap();
    let names = String::from_utf8_lossy(&names[..n]).to_string();
    assert!(!names.contains("trusted.rushes"), "listed: {names}");
    let mut buf = [0u8; 256];
    assert_eq!(
        rustix::fs::fgetxattr(&f, c"trusted.rushes.data", &mut buf),
        Err(rustix::io::Errno::NODATA)
    );
    assert!(rustix::fs::fsetxattr(
        &f,
        c"trusted.rushes.data",
        b"fast/x",
        rustix::fs::XattrFlags::empty()
    )
    .is_err());
    assert_eq!(b.pool_of("moved.mov").as_deref(), Some("archive"));

    // A listing names every entry with its home inode and its size, a moved file's too.
    let mut listed: Vec<(String, u64, u64)> = std::fs::read_dir(b.seen(""))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.ino(),
                m.len(),
            )
        })
        .collect();
    listed.sort();
    let names: Vec<&str> = listed.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["bins", "edit.prproj", "moved.mov"]);
    for (name, ino, len) in &listed {
        let home = std::fs::symlink_metadata(b.home(name)).unwrap();
        assert_eq!((*ino, *len), (home.ino(), home.len()), "{name}");
    }
}

#[test]
fn byte_range_locks_through_the_view_meet_the_locks_nfs_clients_take() {
    let b = Box::new();
    std::fs::write(b.seen("bin.avb"), vec![0u8; 4096]).unwrap();
    // An NFS client's lock (NLM takes an OFD lock on the home file).
    let nfs = OpenOptions::new()
        .read(true)
        .write(true)
        .open(b.home("bin.avb"))
        .unwrap();
    assert!(sys::ofd_lock(nfs.as_fd(), LockKind::Write, 0, 100).unwrap());
    // smbd's lock on the same range through the view is refused; another range is not.
    let smb = OpenOptions::new()
        .read(true)
        .write(true)
        .open(b.seen("bin.avb"))
        .unwrap();
    assert!(
        !sys::ofd_lock(smb.as_fd(), LockKind::Write, 50, 10).unwrap(),
        "SMB must not lock what NFS holds"
    );
    assert!(sys::ofd_lock(smb.as_fd(), LockKind::Write, 200, 10).unwrap());
    // And the other way: NFS cannot take what SMB holds; once SMB closes, it can.
    let nfs2 = OpenOptions::new()
        .read(true)
        .write(true)
        .open(b.home("bin.avb"))
        .unwrap();
    assert!(!sys::ofd_lock(nfs2.as_fd(), LockKind::Read, 205, 1).unwrap());
    drop(smb);
    // The view hears of the close a moment after it (FUSE sends releases on its own).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !sys::ofd_lock(nfs2.as_fd(), LockKind::Read, 205, 1).unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "SMB's lock outlived its close"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The catalog reads a file again when its SMB writer closes it: the view says which
/// file, by its path in the share (wherever it was renamed to), and only for writers.
#[test]
fn the_view_tells_which_files_their_writers_closed() {
    let b = Box::new();
    std::fs::create_dir_all(b.seen("reel1")).unwrap();
    std::fs::write(b.seen("reel1/A001C001.mov"), clip(1 << 16, 1)).unwrap();
    // A reader's close says nothing.
    read(&b.seen("reel1/A001C001.mov"));
    // A file renamed while its writer has it open is told by its new name.
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(b.seen("reel1/A001C002.tmp"))
        .unwrap();
    f.write_all(b"take two").unwrap();
    std::fs::rename(b.seen("reel1/A001C002.tmp"), b.seen("reel1/A001C002.mov")).unwrap();
    drop(f);
    // FUSE sends the release on its own, just after close returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while b.closed.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        *b.closed.lock().unwrap(),
        ["reel1/A001C001.mov", "reel1/A001C002.mov"]
    );
}

/// Stands in for rushesd's recall queue (the real one, fetching from targets, is tried
/// through the view in `smb_guest`): a range is answered at once from the bytes it
/// keeps, as the queue fetches the range asked for first; the whole file comes back
/// only once the test lets it.
struct HeldRecall {
    places: std::sync::Weak<DataPlaces>,
    bytes: Vec<u8>,
    ranges: std::sync::atomic::AtomicUsize,
    let_back: (std::sync::Mutex<bool>, std::sync::Condvar),
}

impl rushes_placement::layout::Recaller for HeldRecall {
    fn read(
        &self,
        _ns: std::os::fd::BorrowedFd<'_>,
        _st: &rustix::fs::Stat,
        offset: u64,
        len: usize,
        _wait: std::time::Duration,
    ) -> Result<Vec<u8>, rushes_placement::layout::RecallError> {
        self.ranges
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let start = (offset as usize).min(self.bytes.len());
        let end = (start + len).min(self.bytes.len());
        Ok(self.bytes[start..end].to_vec())
    }

    fn recall(
        &self,
        ns: std::os::fd::BorrowedFd<'_>,
        _st: &rustix::fs::Stat,
        wait: std::time::Duration,
    ) -> Result<(), rushes_placement::layout::RecallError> {
        use rushes_placement::layout::RecallError;
        let (lock, cv) = &self.let_back;
        let (back, _) = cv
            .wait_timeout_while(lock.lock().unwrap(), wait, |back| !*back)
            .unwrap();
        if !*back {
            return Err(RecallError::Later);
        }
        let places = self.places.upgrade().ok_or(RecallError::Later)?;
        let lost = |e: &dyn std::fmt::Display| RecallError::Lost(e.to_string());
        let filling = rushes_placement::stub::Filling::begin(&places, ns).map_err(|e| lost(&e))?;
        filling.put(0, &self.bytes).map_err(|e| lost(&e))?;
        filling.finish(&places).map_err(|e| lost(&e))
    }
}

#[test]
fn a_released_file_opens_at_once_for_reading_and_serves_ranges_while_it_comes_back() {
    use rushes_placement::stub;
    let b = Box::new();
    let data = clip(24 << 20, 5);
    std::fs::write(b.seen("A001C003.mov"), &data).unwrap();
    let home = OpenOptions::new()
        .read(true)
        .write(true)
        .open(b.home("A001C003.mov"))
        .unwrap();
    let st = rustix::fs::fstat(&home).unwrap();
    let hash = blake3::hash(&data).to_hex().to_string();
    stub::release(
        &b.places,
        home.as_fd(),
        data.len() as u64,
        stub::mtime_ns(&st),
        &hash,
    )
    .expect("release");
    assert!(stub::is_released(home.as_fd()).unwrap());
    // Its blocks given back (an xattr block may stay).
    let blocks = std::fs::metadata(b.home("A001C003.mov")).unwrap().blocks();
    assert!(blocks <= 16, "{blocks} blocks after the release");
    let recall = Arc::new(HeldRecall {
        places: Arc::downgrade(&b.places),
        bytes: data.clone(),
        ranges: Default::default(),
        let_back: Default::default(),
    });
    b.places.set_recaller(Arc::clone(&recall) as _);

    // Offline to SMB clients: Samba reads the DOS attributes it shows from
    // user.DOSATTRIB, which the view gives the offline bit (0x1000) while it is released.
    let seen = b.seen("A001C003.mov");
    assert_eq!(
        dos_attributes(&seen),
        Some(0x1000),
        "a stub with no attributes yet"
    );
    let names = xattr_names(&seen);
    assert!(names.contains(&"user.DOSATTRIB".to_string()), "{names:?}");
    // An SMB client makes it hidden (Samba writes back what it read, offline included):
    // hidden and offline shown, hidden alone stored.
    let hidden_offline = samba_dosattrib(0x1022);
    rustix::fs::setxattr(
        &seen,
        "user.DOSATTRIB",
        &hidden_offline,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    assert_eq!(dos_attributes(&seen), Some(0x1022));
    assert_eq!(
        dos_attributes(&b.home("A001C003.mov")),
        Some(0x22),
        "stored without offline"
    );

    // Opened for reading at once, though the whole file is not coming back yet; a read
    // at 20 MiB gets the clip's bytes there, still released on the pool.
    let started = std::time::Instant::now();
    let mut open = File::open(b.seen("A001C003.mov")).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a reader waited {:?} for the open",
        started.elapsed()
    );
    let mut part = vec![0u8; 1 << 20];
    open.seek(SeekFrom::Start(20 << 20)).unwrap();
    open.read_exact(&mut part).unwrap();
    assert!(part == data[20 << 20..21 << 20], "other bytes at 20 MiB");
    assert!(stub::is_released(home.as_fd()).unwrap());
    assert!(recall.ranges.load(std::sync::atomic::Ordering::SeqCst) > 0);

    // Back whole (a writer's open waits for that), the same open reads on in place.
    *recall.let_back.0.lock().unwrap() = true;
    recall.let_back.1.notify_all();
    drop(
        OpenOptions::new()
            .write(true)
            .open(b.seen("A001C003.mov"))
            .expect("a writer's open brings the file back"),
    );
    assert!(!stub::is_released(home.as_fd()).unwrap());
    let served = recall.ranges.load(std::sync::atomic::Ordering::SeqCst);
    let mut all = Vec::new();
    open.seek(SeekFrom::Start(0)).unwrap();
    open.read_to_end(&mut all).unwrap();
    assert!(all == data, "the clip read back whole differs");
    assert_eq!(
        recall.ranges.load(std::sync::atomic::Ordering::SeqCst),
        served,
        "a resident file's reads still went to the recaller"
    );
    drop(open);
    assert_eq!(read(&b.seen("A001C003.mov")), data);
    assert_eq!(
        dos_attributes(&seen),
        Some(0x22),
        "back on the box: online, still hidden"
    );
}

/// Samba 4.17's user.DOSATTRIB (version 5) with attributes `attrib` and a creation time.
fn samba_dosattrib(attrib: u32) -> Vec<u8> {
    let mut v = vec![0u8, 0, 5, 0, 5, 0, 0, 0, 0x11, 0, 0, 0];
    v.extend_from_slice(&attrib.to_le_bytes());
    v.extend_from_slice(&0x01dd86a98e084d0fu64.to_le_bytes());
    v
}

/// The DOS attributes in `path`'s user.DOSATTRIB (version 5, as Samba 4.17 writes it).
fn dos_attributes(path: &Path) -> Option<u32> {
    let mut buf = [0u8; 256];
    let n = rustix::fs::getxattr(path, "user.DOSATTRIB", &mut buf).ok()?;
    assert_eq!(&buf[..8], &[0, 0, 5, 0, 5, 0, 0, 0], "{:?}", &buf[..n]);
    Some(u32::from_le_bytes(buf[12..16].try_into().unwrap()))
}

fn xattr_names(path: &Path) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = rustix::fs::listxattr(path, &mut buf).unwrap();
    buf[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}
