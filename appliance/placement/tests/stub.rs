//! Releasing a file to a stub and filling it back in place, on a real file system: the
//! stub keeps its size, inode and modify time with no blocks and says what its bytes
//! hash as; a fill is resident only once every byte is back and hashes right, and a
//! wrong byte leaves it released.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use rushes_placement::stub::{self, Filling, FinishError, Release, ReleaseError, GRANULE};
use rushes_placement::DataPlaces;

/// Bytes that do not repeat: blake3's output stream.
fn film(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    blake3::Hasher::new().finalize_xof().fill(&mut bytes);
    bytes
}

fn open_rw(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn a_released_file_keeps_its_place_and_comes_back_only_whole_and_right() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reel.mov");
    let bytes = film((3 * GRANULE + 12345) as usize);
    std::fs::write(&path, &bytes).unwrap();
    let before = std::fs::metadata(&path).unwrap();
    let mtime = i128::from(before.mtime()) * 1_000_000_000 + i128::from(before.mtime_nsec());
    let places = Arc::new(DataPlaces::default());
    let f = open_rw(&path);
    // Not released when its bytes are not the ones proven, nor when its times moved.
    assert!(matches!(
        stub::release(
            &places,
            f.as_fd(),
            bytes.len() as u64,
            mtime,
            &hash(b"other")
        ),
        Err(ReleaseError::Changed)
    ));
    assert!(matches!(
        stub::release(
            &places,
            f.as_fd(),
            bytes.len() as u64,
            mtime + 1,
            &hash(&bytes)
        ),
        Err(ReleaseError::Changed)
    ));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "nothing was given back"
    );
    assert_eq!(
        stub::release(&places, f.as_fd(), bytes.len() as u64, mtime, &hash(&bytes)).unwrap(),
        Release::Done
    );
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    // Its blocks given back (a block of xattrs may stay).
    assert!(after.blocks() <= 8, "{}", after.blocks());
    assert!(stub::is_released(f.as_fd()).unwrap());
    assert_eq!(
        stub::released_blake3(f.as_fd()).unwrap(),
        Some(hash(&bytes))
    );
    assert_eq!(
        stub::release(&places, f.as_fd(), bytes.len() as u64, mtime, &hash(&bytes)).unwrap(),
        Release::Already
    );
    // A fill with one wrong byte is not made resident: it stays released, empty again.
    let fill = Filling::begin(&places, f.as_fd()).unwrap();
    assert!(!fill.has(0, 1));
    let mut wrong = bytes.clone();
    wrong[GRANULE as usize + 7] ^= 1;
    let mut at = 0;
    while let Some(r) = fill.next_missing(0, 2 * GRANULE) {
        assert_eq!(r.start, at, "ranges come in order, granule-aligned");
        fill.put(r.start, &wrong[r.start as usize..r.end as usize])
            .unwrap();
        at = r.end;
    }
    assert_eq!(fill.back(), bytes.len() as u64);
    assert!(matches!(fill.finish(&places), Err(FinishError::Mismatch)));
    assert!(stub::is_released(f.as_fd()).unwrap());
    assert_eq!(fill.back(), 0);
    assert!(std::fs::metadata(&path).unwrap().blocks() <= 8);
    drop(fill);
    // A fill of the right bytes, the far end first: served from the file while the rest
    // is missing, then resident with its modify time.
    let fill = Filling::begin(&places, f.as_fd()).unwrap();
    let far = fill.aligned(3 * GRANULE + 100, 10);
    assert_eq!(far, 3 * GRANULE..bytes.len() as u64);
    fill.put(far.start, &bytes[far.start as usize..]).unwrap();
    assert!(fill.has(3 * GRANULE + 100, 10));
    assert_eq!(
        fill.read(3 * GRANULE + 100, 10).unwrap(),
        &bytes[(3 * GRANULE + 100) as usize..(3 * GRANULE + 110) as usize]
    );
    assert!(matches!(fill.finish(&places), Err(FinishError::Incomplete)));
    assert!(fill.put(5, b"x").is_err(), "puts are granule-aligned");
    while let Some(r) = fill.next_missing(0, GRANULE) {
        fill.put(r.start, &bytes[r.start as usize..r.end as usize])
            .unwrap();
    }
    fill.finish(&places).unwrap();
    assert!(!stub::is_released(f.as_fd()).unwrap());
    let back = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (back.ino(), back.mtime(), back.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec())
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
