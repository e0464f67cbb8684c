//! The media catalog on a real rushesd (`rushesd host --catalog`) with a real NFSv3
//! client: a file already in the folder is found by the start scan, a clip written over
//! NFS is searchable as soon as it is committed, a rename keeps its record under the
//! new name, a removal drops it, a file copied in behind the box's back is found by a
//! scan that says what it fixed, a damaged file gets a record with its error, and a
//! query that does not read is refused at its position. The frames of a DPX sequence
//! copied over NFS are one clip whose frames and gaps follow frames added and removed,
//! and a JPEG still is found by the camera its EXIF names; results sort by size and
//! name, and an account's search leaves out what it may not read. Media are made by
//! ffmpeg.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rushes_api::media::{Clip, Found};
use rushes_tests::nfs3_client::nfs3_types::nfs3 as t;
use rushes_tests::{workspace_bin, Nfs, ServerProcess, User};

fn ffmpeg(out: &Path, args: &[&str]) -> Vec<u8> {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg runs (make deps installs it)");
    assert!(status.success(), "ffmpeg {args:?}");
    // A numbered pattern (`%07d`) makes files of other names.
    std::fs::read(out).unwrap_or_default()
}

fn search(c: &rushes_api::Client, q: &str) -> Found {
    c.get(&format!(
        "/v1/search?q={}",
        q.replace(' ', "%20").replace(':', "%3A")
    ))
    .unwrap_or_else(|e| panic!("search {q}: {e}"))
}

fn ids(found: &Found) -> Vec<String> {
    let mut ids: Vec<String> = found.clips.iter().map(Clip::id).collect();
    ids.sort();
    ids
}

/// Poll `q` until it finds `want`; how long that took.
fn until_found(c: &rushes_api::Client, q: &str, want: &[&str], what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let got = ids(&search(c, q));
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: {q} finds {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rushesctl(sock: &Path, args: &[&str]) -> (String, bool) {
    let out = Command::new(workspace_bin("rushesctl"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        out.status.success(),
    )
}

/// `rushesd host` keeping the catalog of `folder` as share `name`, its API up.
fn start(
    state: &Path,
    name: &str,
    folder: &Path,
) -> (ServerProcess, std::path::PathBuf, rushes_api::Client) {
    let sock = state.join("api.sock");
    let server = ServerProcess::start(&[
        "--state-dir",
        state.to_str().unwrap(),
        "--api",
        sock.to_str().unwrap(),
        "--catalog",
        &format!("{name}={}", folder.display()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = rushes_api::Client::new(&sock);
    (server, sock, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_are_catalogued_as_they_land_and_follow_renames_and_removals() {
    use std::os::unix::fs::PermissionsExt;
    let media = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let hq = ffmpeg(&media.path().join("hq.mov"), &[
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=24000/1001",
        "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1",
        "-c:v", "prores_ks", "-profile:v", "3", "-c:a", "pcm_s24le",
        "-timecode", "10:14:00:00", "-metadata:s:v:0", "reel_name=A003",
        "-metadata", "make=ARRI", "-metadata", "model=ALEXA 35",
    ]);
    #[rustfmt::skip]
    let proxy = ffmpeg(&media.path().join("proxy.mp4"), &[
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "1", "-c:v", "libx264",
    ]);

    let state = tempfile::tempdir().unwrap();
    let share = state.path().join("rushes");
    std::fs::create_dir_all(share.join("day1")).unwrap();
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(share.join("day1"), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Already there when rushesd starts: the start scan finds it.
    std::fs::write(share.join("day1/B001C001.mp4"), &proxy).unwrap();
    let (server, sock, c) = start(state.path(), "rushes", &share);
    until_found(
        &c,
        "codec:h264",
        &["rushes/day1/B001C001.mp4"],
        "the start scan",
    );

    // Written over NFS and committed: searchable at once.
    let mut nfs = Nfs::mount(server.port(), "/rushes", &User::new(1000, 1000))
        .await
        .unwrap();
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "A003C012.mov", 0o644).await.unwrap();
    for (i, chunk) in hq.chunks(64 << 10).enumerate() {
        nfs.write(&fh, (i as u64) << 16, chunk, t::stable_how::UNSTABLE)
            .await
            .unwrap();
    }
    nfs.commit(&fh).await.unwrap();
    let took = until_found(
        &c,
        "codec:prores_422_hq reel:A003 fps:23.976",
        &["rushes/A003C012.mov"],
        "a clip written over NFS",
    );
    eprintln!("committed over NFS to searchable: {took:?}");
    let found = search(&c, "camera:alexa tc:10:14:00:00-10:20:00:00");
    assert_eq!(ids(&found), ["rushes/A003C012.mov"]);
    let clip = &found.clips[0];
    let m = clip.media.as_ref().unwrap();
    assert_eq!(m.timecode.as_ref().unwrap().start, "10:14:00:00");
    assert_eq!(m.camera.model.as_deref(), Some("ALEXA 35"));
    assert_eq!(clip.size, hq.len() as u64);
    // Facets over every file.
    let all = search(&c, "");
    assert_eq!(all.total, 2);
    let codecs = all.facets.iter().find(|f| f.name == "codec").unwrap();
    assert_eq!(codecs.values.len(), 2, "{codecs:?}");

    // A rename keeps the record (nothing is read again) under the new name.
    nfs.conn
        .rename(&t::RENAME3args {
            from: rushes_tests::dirop(&root, "A003C012.mov"),
            to: rushes_tests::dirop(&root, "A003C012_selects.mov"),
        })
        .await
        .unwrap()
        .unwrap();
    until_found(
        &c,
        "reel:A003",
        &["rushes/A003C012_selects.mov"],
        "a renamed clip",
    );
    assert!(search(&c, "name:A003C012")
        .clips
        .iter()
        .all(|x| x.path == "A003C012_selects.mov"));
    let one: Clip = c.get("/v1/clips/rushes%2FA003C012_selects.mov").unwrap();
    assert_eq!(one.media.as_ref().unwrap().reel.as_deref(), Some("A003"));

    // Removed: gone.
    nfs.remove(&root, "A003C012_selects.mov").await.unwrap();
    until_found(&c, "reel:A003", &[], "a removed clip");

    // Behind the box's back: a copy made on the server, a damaged file, and a clip
    // removed. A scan (as an admin would start it) finds all three and says what it
    // fixed; the records of clips renamed and removed over NFS stay gone.
    std::fs::remove_file(share.join("day1/B001C001.mp4")).unwrap();
    std::fs::write(share.join("day1/A004C001.mov"), &hq).unwrap();
    std::fs::write(share.join("day1/A004C002.mov"), &hq[..hq.len() / 2]).unwrap();
    let (out, ok) = rushesctl(&sock, &["catalog", "scan", "--wait"]);
    assert!(ok, "{out}");
    let jobs: Vec<rushes_api::Job> = c.get("/v1/jobs").unwrap();
    let scan = jobs
        .iter()
        .filter(|j| j.kind == "catalog-scan")
        .max_by_key(|j| j.id)
        .unwrap();
    assert!(
        scan.step.contains("2 new") && scan.step.contains("1 gone"),
        "{scan:?}"
    );
    assert_eq!(search(&c, "codec:h264").total, 0);
    until_found(
        &c,
        "codec:prores_422_hq",
        &["rushes/day1/A004C001.mov"],
        "a scanned clip",
    );
    let damaged = search(&c, "A004C002");
    assert_eq!(ids(&damaged), ["rushes/day1/A004C002.mov"]);
    let error = damaged.clips[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("moov"), "{error}");

    // The command line, as an assistant uses it.
    let (out, ok) = rushesctl(&sock, &["search", "codec:prores_422_hq", "fps:23.976"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("rushes/day1/A004C001.mov")
            && out.contains("10:14:00:00")
            && out.contains("1-1 of 1"),
        "{out}"
    );
    let (out, ok) = rushesctl(&sock, &["search", "width:>=wide"]);
    assert!(!ok);
    assert!(out.contains("at character 7"), "{out}");

    // Thumbnails by ffmpeg: posters are made as clips land or are found by a scan,
    // without being asked for. At the lowest CPU priority they wait behind everything
    // else on a busy machine. The pictures of clips renamed or removed since are not
    // kept: only the clip that has a picture and is still there has one.
    let thumbs = state.path().join("catalog/rushes.thumbs");
    let posters = || {
        rushes_catalog::extract::walk(&thumbs, 100)
            .into_iter()
            .filter(|(p, _, _)| p.ends_with("-poster.jpg"))
            .count()
    };
    let kept = |id: &str| {
        let clip = Clip {
            share: "rushes".into(),
            path: id.into(),
            ..Default::default()
        };
        let hash = blake3::hash(clip.id().as_bytes()).to_hex();
        thumbs
            .join(&hash[..2])
            .join(format!("{}-poster.jpg", &hash[..32]))
            .exists()
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    while !kept("day1/A004C001.mov") {
        assert!(
            Instant::now() < deadline,
            "no poster of A004C001.mov in {}",
            thumbs.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(posters(), 1, "posters kept in {}", thumbs.display());
    let poster = c
        .get_bytes("/v1/clips/rushes%2Fday1%2FA004C001.mov/poster")
        .unwrap();
    assert_eq!(picture_size(&poster), (320, 180));
    let strip = c
        .get_bytes("/v1/clips/rushes%2Fday1%2FA004C001.mov/strip")
        .unwrap();
    assert_eq!(picture_size(&strip), (800, 90));
    let poster_file = state.path().join("poster.jpg");
    let (out, ok) = rushesctl(
        &sock,
        &[
            "clip",
            "rushes/day1/A004C001.mov",
            "--poster",
            poster_file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(std::fs::read(&poster_file).unwrap(), poster);
    // The damaged file has no picture to show; rushesd says so and goes on.
    let e = c
        .get_bytes("/v1/clips/rushes%2Fday1%2FA004C002.mov/poster")
        .unwrap_err();
    assert_eq!(e.code(), Some("no-picture"), "{e}");
    assert_eq!(
        ids(&search(&c, "codec:prores_422_hq")),
        ["rushes/day1/A004C001.mov"]
    );
}

/// A JPEG's width and height, as its frame header says.
fn picture_size(jpeg: &[u8]) -> (u32, u32) {
    let info =
        rushes_catalog::exif::parse_jpeg(&rushes_catalog::Source::memory(jpeg)).expect("a JPEG");
    let v = info.video.unwrap();
    (v.width, v.height)
}

/// Write `data` to a new file `name` in `dir` over NFS and commit it, as a client
/// copying a frame does.
async fn put(nfs: &mut Nfs, dir: &t::nfs_fh3, name: &str, data: &[u8]) {
    let fh = nfs.create(dir, name, 0o644).await.unwrap();
    for (i, chunk) in data.chunks(64 << 10).enumerate() {
        nfs.write(&fh, (i as u64) << 16, chunk, t::stable_how::UNSTABLE)
            .await
            .unwrap();
    }
    nfs.commit(&fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_sequences_are_one_clip_as_their_frames_land_and_stills_are_found_by_camera() {
    use std::os::unix::fs::PermissionsExt;
    let media = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    ffmpeg(&media.path().join("A005C001.%07d.dpx"), &[
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24",
        "-frames:v", "6", "-pix_fmt", "gbrp10le", "-start_number", "86400",
    ]);
    let still = ffmpeg(
        &media.path().join("still.jpg"),
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240",
            "-frames:v",
            "1",
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let share = state.path().join("scans");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (server, sock, c) = start(state.path(), "scans", &share);
    let mut nfs = Nfs::mount(server.port(), "/scans", &User::new(1000, 1000))
        .await
        .unwrap();
    let root = nfs.root.clone();
    let reel = nfs.mkdir(&root, "reel1", 0o755).await.unwrap();
    // Frames 86400-86405 but 86403, each copied over NFS.
    for n in [86400, 86401, 86402, 86404, 86405] {
        let name = format!("A005C001.{n:07}.dpx");
        put(
            &mut nfs,
            &reel,
            &name,
            &std::fs::read(media.path().join(&name)).unwrap(),
        )
        .await;
    }
    let took = until_found(
        &c,
        "A005C001 codec:dpx",
        &["scans/reel1/A005C001.#######.dpx"],
        "a sequence written over NFS",
    );
    eprintln!("a sequence's frames committed over NFS to searchable: {took:?}");
    let frames_of = |c: &rushes_api::Client| {
        let found = search(c, "A005C001");
        assert_eq!(found.total, 1, "{found:?}");
        found.clips[0]
            .media
            .as_ref()
            .unwrap()
            .sequence
            .clone()
            .unwrap()
    };
    // All five frames are in before the record says so: wait for the last of them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames_of(&c).frames != 5 {
        assert!(Instant::now() < deadline, "{:?}", frames_of(&c));
        std::thread::sleep(Duration::from_millis(50));
    }
    let seq = frames_of(&c);
    assert_eq!((seq.first, seq.last, seq.gap_count), (86400, 86405, 1));
    assert_eq!((seq.gaps[0].from, seq.gaps[0].to), (86403, 86403));
    let found = search(&c, "width:320 height:180");
    let clip = &found.clips[0];
    assert_eq!(clip.label(), "scans/reel1/A005C001.[0086400-0086405].dpx");
    assert_eq!(
        clip.media.as_ref().unwrap().video.as_ref().unwrap().bits,
        Some(10)
    );

    // The missing frame arrives, then the first is removed: the record follows.
    let name = "A005C001.0086403.dpx";
    put(
        &mut nfs,
        &reel,
        name,
        &std::fs::read(media.path().join(name)).unwrap(),
    )
    .await;
    nfs.remove(&reel, "A005C001.0086400.dpx").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = frames_of(&c);
        if (s.first, s.frames, s.gap_count) == (86401, 5, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The label people copy from the results table names the clip.
    let (out, ok) = rushesctl(
        &sock,
        &["clip", "scans/reel1/A005C001.[0086401-0086405].dpx"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("image sequence: 5 frames, 86401-86405"),
        "{out}"
    );
    let (out, ok) = rushesctl(&sock, &["search", "A005C001"]);
    assert!(ok, "{out}");
    assert!(out.contains("A005C001.[0086401-0086405].dpx"), "{out}");
    // Its strip: five of its frames side by side.
    let strip = c
        .get_bytes("/v1/clips/scans%2Freel1%2FA005C001.%23%23%23%23%23%23%23.dpx/strip")
        .unwrap();
    assert_eq!(picture_size(&strip), (800, 90));

    // A clip whose header reads but whose pictures are zeros: ffmpeg fails on it, in its
    // own process; rushesd says why and goes on serving.
    #[rustfmt::skip]
    let mut broken = ffmpeg(&media.path().join("broken.mov"), &[
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "1", "-c:v", "prores_ks",
    ]);
    let mdat = broken.windows(4).position(|w| w == b"mdat").unwrap();
    let size = u32::from_be_bytes(broken[mdat - 4..mdat].try_into().unwrap()) as usize;
    broken[mdat + 4..mdat - 4 + size].fill(0);
    put(&mut nfs, &root, "broken.mov", &broken).await;
    until_found(
        &c,
        "name:broken format:quicktime",
        &["scans/broken.mov"],
        "a clip with damaged pictures",
    );
    let e = c
        .get_bytes("/v1/clips/scans%2Fbroken.mov/poster")
        .unwrap_err();
    assert_eq!(e.code(), Some("thumbnail-failed"), "{e}");
    assert_eq!(search(&c, "codec:dpx").total, 1);
    nfs.remove(&root, "broken.mov").await.unwrap();
    until_found(&c, "name:broken", &[], "a removed clip");

    // A still with the camera's EXIF, found by camera.
    let exif = {
        // Make and model in a little-endian TIFF directory, in an APP1 segment.
        let mut ifd = 2u16.to_le_bytes().to_vec();
        let values_at = 8 + 2 + 2 * 12 + 4;
        let (make, model) = (b"Canon\0".to_vec(), b"Canon EOS R5\0".to_vec());
        for (tag, value, at) in [
            (0x010fu16, &make, values_at),
            (0x0110, &model, values_at + make.len()),
        ] {
            ifd.extend_from_slice(&tag.to_le_bytes());
            ifd.extend_from_slice(&2u16.to_le_bytes());
            ifd.extend_from_slice(&(value.len() as u32).to_le_bytes());
            ifd.extend_from_slice(&(at as u32).to_le_bytes());
        }
        ifd.extend_from_slice(&0u32.to_le_bytes());
        let tiff = [
            b"II*\0".as_slice(),
            &8u32.to_le_bytes(),
            &ifd,
            &make,
            &model,
        ]
        .concat();
        let mut app1 = vec![0xff, 0xe1];
        app1.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend(tiff);
        app1
    };
    let jpeg = [&still[..2], &exif, &still[2..]].concat();
    put(&mut nfs, &root, "IMG_0001.JPG", &jpeg).await;
    until_found(
        &c,
        "camera:canon format:jpeg",
        &["scans/IMG_0001.JPG"],
        "a still written over NFS",
    );

    // Sorted: by size, largest first (the sequence's frames together), and by name.
    let by_size: Found = c.get("/v1/search?q=&sort=-size").unwrap();
    assert_eq!(by_size.clips[0].path, "reel1/A005C001.#######.dpx");
    assert!(by_size.clips.windows(2).all(|w| w[0].size >= w[1].size));
    let by_name: Found = c.get("/v1/search?q=&sort=name").unwrap();
    let names: Vec<&str> = by_name.clips.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["A005C001.#######.dpx", "IMG_0001.JPG"]);
    let (out, ok) = rushesctl(&sock, &["search", "--sort", "loudness"]);
    assert!(
        !ok && out.contains("cannot be sorted by \"loudness\""),
        "{out}"
    );

    // Permission-true: files another account may not read are not in its results, nor
    // in its totals and facets. A folder only root may enter, and a file only root may
    // read, put there behind the box's back and found by a scan.
    std::fs::create_dir(share.join("private")).unwrap();
    std::fs::set_permissions(
        share.join("private"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(share.join("private/IMG_0002.JPG"), &jpeg).unwrap();
    std::fs::write(share.join("IMG_0003.JPG"), &jpeg).unwrap();
    std::fs::set_permissions(
        share.join("IMG_0003.JPG"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (out, ok) = rushesctl(&sock, &["catalog", "scan", "--wait"]);
    assert!(ok, "{out}");
    let admin = search(&c, "format:jpeg");
    assert_eq!(admin.total, 3, "{admin:?}");
    let nobody: Found = c.get("/v1/search?q=format%3Ajpeg&as=nobody").unwrap();
    assert_eq!(ids(&nobody), ["scans/IMG_0001.JPG"]);
    assert_eq!(nobody.total, 1);
    let shares = nobody.facets.iter().find(|f| f.name == "share").unwrap();
    assert_eq!(shares.values[0].count, 1, "{shares:?}");
    let (out, ok) = rushesctl(&sock, &["search", "--as", "nobody", "camera:canon"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("IMG_0001.JPG") && !out.contains("IMG_0002") && !out.contains("IMG_0003"),
        "{out}"
    );
    let (out, ok) = rushesctl(
        &sock,
        &["search", "--as", "no-such-account", "camera:canon"],
    );
    assert!(!ok && out.contains("there is no account"), "{out}");
}

/// A clip whose data placement moved to the capacity pool keeps only its name, size and
/// times on the home pool: the catalog reads its header where the data is (the scan of a
/// share rebuilt from scratch sees what the client sees), not the home file's hole.
#[test]
fn a_clip_whose_data_moved_to_another_pool_is_read_where_its_data_is() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for p in ["fast/media/day1", "archive"] {
        std::fs::create_dir_all(root.join(p)).unwrap();
    }
    let places = Arc::new(rushes_placement::DataPlaces::default());
    for p in ["fast", "archive"] {
        places.add_pool(p, &root.join(p)).unwrap();
    }
    #[rustfmt::skip]
    let hq = ffmpeg(&root.join("fast/media/day1/A005C001.mov"), &[
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=24000/1001", "-t", "1",
        "-c:v", "prores_ks", "-profile:v", "3", "-timecode", "11:02:00:00",
    ]);
    rushes_tests::move_media(&places, root, "day1/A005C001.mov", "archive").unwrap();
    let home = root.join("fast/media/day1/A005C001.mov");
    assert_eq!(
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&home).unwrap()),
        0,
        "the home file holds no data once it moved"
    );
    let share = root.join("fast/media");
    let clip = rushes_catalog::extract::read_placed(&share, "media", "day1/A005C001.mov", &places)
        .unwrap();
    assert_eq!(clip.error, None);
    assert_eq!(clip.size, hq.len() as u64);
    let media = clip.media.expect("the header read from the archive pool");
    assert_eq!(media.video.unwrap().codec, "prores_422_hq");
    assert_eq!(media.timecode.unwrap().start, "11:02:00:00");
    // The home file alone is a hole of the same size: nothing a parser can read.
    let blind = rushes_catalog::extract::read(&share, "media", "day1/A005C001.mov").unwrap();
    assert!(blind.media.is_none(), "{blind:?}");
}
