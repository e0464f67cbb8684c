//! The media catalog on a real rushesd (`rushesd host --catalog`) with a real NFSv3
//! client: a file already in the folder is found by the start scan, a clip written over
//! NFS is searchable as soon as it is committed, a rename keeps its record under the
//! new name, a removal drops it, a file copied in behind the box's back is found by a
//! scan that says what it fixed, a damaged file gets a record with its error, and a
//! query that does not read is refused at its position. Media are made by ffmpeg.

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
    std::fs::read(out).unwrap()
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
    let sock = state.path().join("api.sock");
    let server = ServerProcess::start(&[
        "--state-dir",
        state.path().to_str().unwrap(),
        "--api",
        sock.to_str().unwrap(),
        "--catalog",
        &format!("rushes={}", share.display()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = rushes_api::Client::new(&sock);
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

    // Behind the box's back: a copy made on the server, and a damaged file. A scan
    // (as an admin would start it) finds both and says what it fixed.
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
    assert!(scan.step.contains("2 new"), "{scan:?}");
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
}
