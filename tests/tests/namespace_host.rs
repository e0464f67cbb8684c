//! The namespace over pools on the host: the NFS service (in this process, as rushesd
//! runs it) serves a share whose files' data the mover sends to another pool and back
//! while a real NFSv3 client (the nfs3_client crate) reads them through handles it took
//! before. Folders on this machine's file system stand for the pools; the appliance's
//! own run on md + XFS is in `pools_guest`. Needs root (`trusted.*` xattrs).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rushes_nas::server::NfsServer;
use rushes_nas::service::Service;
use rushes_nas::share::ShareConfig;
use rushes_placement::layout::location_of;
use rushes_placement::DataPlaces;
use rushes_tests::nfs3_client::nfs3_types::nfs3::{self as t, nfsstat3::*, stable_how};
use rushes_tests::{Nfs, User};

struct Pools {
    _dir: tempfile::TempDir,
    root: PathBuf,
    places: Arc<DataPlaces>,
}

impl Pools {
    /// The file's path on the home pool.
    fn file(&self, name: &str) -> PathBuf {
        self.root.join("fast/media").join(name)
    }

    fn pool_of(&self, name: &str) -> Option<String> {
        let f = std::fs::File::open(self.file(name)).unwrap();
        location_of(std::os::fd::AsFd::as_fd(&f))
            .unwrap()
            .map(|l| l.pool)
    }

    /// The data objects kept on `pool` for the share.
    fn objects(&self, pool: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.join(pool).join(".rushes/data/media"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Move `name`'s data to `to`, trying again while a reader holds the switch off.
    fn mv(&self, name: &str, to: &str) {
        for _ in 0..50 {
            match rushes_tests::move_media(&self.places, &self.root, name, to) {
                Ok(_) => return,
                Err(e) if e.is_retry() => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => panic!("move of {name} to {to}: {e}"),
            }
        }
        panic!("the move of {name} to {to} never found a moment to switch");
    }
}

/// The NFS service over share `media` on pool `fast`, with pools `fast` and `archive`.
async fn serve() -> (Pools, u16, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for p in ["fast/media", "archive"] {
        std::fs::create_dir_all(root.join(p)).unwrap();
    }
    std::fs::set_permissions(
        root.join("fast/media"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let share = ShareConfig {
        name: "media".into(),
        path: root.join("fast/media"),
        rules: vec![Default::default()],
        allow_devices: false,
    };
    let service = Service::new(&[share], state.path()).unwrap();
    let places = Arc::clone(&service.places);
    for p in ["fast", "archive"] {
        places.add_pool(p, &root.join(p)).unwrap();
    }
    let server = NfsServer::bind("127.0.0.1:0".parse().unwrap(), service)
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let task = tokio::spawn(server.run(std::future::pending()));
    (
        Pools {
            _dir: dir,
            root,
            places,
        },
        port,
        task,
        state,
    )
}

fn clip(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

fn alice() -> User {
    User::new(1000, 1000)
}

async fn fileid(c: &mut Nfs, fh: &t::nfs_fh3) -> (u64, u64) {
    let a = c.getattr(fh).await.expect("GETATTR");
    (a.fileid, a.size)
}

async fn truncate(c: &mut Nfs, fh: &t::nfs_fh3, size: u64) {
    let attrs = t::sattr3 {
        size: t::set_size3::Some(size),
        ..Default::default()
    };
    c.setattr(fh, attrs).await.expect("SETATTR of the size");
}

fn blocks(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_read_over_nfs_keeps_its_handle_and_bytes_while_its_data_moves_between_pools() {
    let (pools, port, _server, _state) = serve().await;
    let pools = Arc::new(pools);
    let mut c = Nfs::mount(port, "/media", &alice()).await.unwrap();
    let bytes = clip(6 << 20, 1);
    let fh = c.put_file("A001C003.mov", &bytes).await.unwrap();
    let before = fileid(&mut c, &fh).await;

    // Two clients read the file over and over through the handle they hold, while the
    // data goes to the archive, comes home, and goes again.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (stop, fh, bytes) = (Arc::clone(&stop), fh.clone(), bytes.clone());
        let mut r = Nfs::mount(port, "/media", &alice()).await.unwrap();
        readers.push(tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                let got = r.read_all(&fh).await.expect("a read failed during a move");
                assert!(got == bytes, "a read during a move saw other bytes");
                reads += 1;
            }
            reads
        }));
    }
    let p = Arc::clone(&pools);
    tokio::task::spawn_blocking(move || {
        for to in ["archive", "fast", "archive"] {
            p.mv("A001C003.mov", to);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let reads = r.await.unwrap();
        assert!(reads > 0);
    }
    assert_eq!(pools.pool_of("A001C003.mov").as_deref(), Some("archive"));
    assert_eq!(
        blocks(&pools.file("A001C003.mov")),
        0,
        "the home pool holds no data"
    );
    assert_eq!(pools.objects("archive").len(), 1);
    assert_eq!(fileid(&mut c, &fh).await, before, "same file id and size");
    assert_eq!(c.read_all(&fh).await.unwrap(), bytes);
    let by_name = c.lookup(&c.root.clone(), "A001C003.mov").await.unwrap();
    assert_eq!(by_name, fh, "LOOKUP gives the same handle");

    // Writes to a file whose data is on the archive go there: an overwrite in the middle
    // and an append past the end; the size and times clients see follow.
    let mtime = c.getattr(&fh).await.unwrap().mtime;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut want = bytes.clone();
    want[1000..1010].copy_from_slice(b"0123456789");
    c.write(&fh, 1000, b"0123456789", stable_how::UNSTABLE)
        .await
        .unwrap();
    want.extend_from_slice(b"one more frame");
    c.write(
        &fh,
        bytes.len() as u64,
        b"one more frame",
        stable_how::FILE_SYNC,
    )
    .await
    .unwrap();
    c.commit(&fh).await.unwrap();
    let attr = c.getattr(&fh).await.unwrap();
    assert_eq!(attr.size, want.len() as u64);
    assert!(
        (attr.mtime.seconds, attr.mtime.nseconds) > (mtime.seconds, mtime.nseconds),
        "the write moved the file's mtime"
    );
    assert_eq!(c.read_all(&fh).await.unwrap(), want);
    assert_eq!(
        blocks(&pools.file("A001C003.mov")),
        0,
        "writes went to the archive"
    );
    assert_eq!(
        std::fs::read(&pools.objects("archive")[0]).unwrap(),
        want,
        "the archive's object holds the file's bytes"
    );

    // A truncate shortens both; to zero brings the (empty) data home.
    truncate(&mut c, &fh, 4096).await;
    assert_eq!(c.read_all(&fh).await.unwrap(), want[..4096]);
    assert_eq!(
        std::fs::metadata(&pools.objects("archive")[0])
            .unwrap()
            .len(),
        4096
    );
    truncate(&mut c, &fh, 0).await;
    assert_eq!(pools.pool_of("A001C003.mov"), None);
    assert!(
        pools.objects("archive").is_empty(),
        "the emptied file's object is freed"
    );
    c.write(&fh, 8192, b"after", stable_how::FILE_SYNC)
        .await
        .unwrap();
    let mut sparse = vec![0u8; 8192];
    sparse.extend_from_slice(b"after");
    assert_eq!(
        c.read_all(&fh).await.unwrap(),
        sparse,
        "a sparse file at home reads as itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_or_renaming_over_a_moved_file_frees_its_data_and_a_hard_link_keeps_it() {
    let (pools, port, _server, _state) = serve().await;
    let mut c = Nfs::mount(port, "/media", &alice()).await.unwrap();
    let root = c.root.clone();
    for (i, name) in ["gone.mov", "over.mov", "linked.mov"].iter().enumerate() {
        c.put_file(name, &clip(1 << 20, i as u8)).await.unwrap();
        pools.mv(name, "archive");
    }
    assert_eq!(pools.objects("archive").len(), 3);

    c.remove(&root, "gone.mov").await.unwrap();
    assert_eq!(pools.objects("archive").len(), 2, "REMOVE freed the data");

    let newer = c.put_file("newer.mov", &clip(4096, 9)).await.unwrap();
    c.conn
        .rename(&t::RENAME3args {
            from: rushes_tests::dirop(&root, "newer.mov"),
            to: rushes_tests::dirop(&root, "over.mov"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        pools.objects("archive").len(),
        1,
        "RENAME over it freed the data"
    );
    assert_eq!(c.read_all(&newer).await.unwrap(), clip(4096, 9));

    // A second name: removing one keeps the data for the other.
    std::fs::hard_link(pools.file("linked.mov"), pools.file("alias.mov")).unwrap();
    c.remove(&root, "linked.mov").await.unwrap();
    assert_eq!(pools.objects("archive").len(), 1);
    let alias = c.lookup(&root, "alias.mov").await.unwrap();
    assert_eq!(c.read_all(&alias).await.unwrap(), clip(1 << 20, 2));
    assert_eq!(
        c.lookup(&root, "gone.mov").await.unwrap_err(),
        NFS3ERR_NOENT
    );
}
