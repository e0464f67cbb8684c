//! Copies against real targets started by the tests: two S3 servers written apart
//! (s3s's file-system sample, `s3s-fs`, in this process with SigV4 signatures, and
//! moto's server from PyPI), Microsoft's Azure Storage emulator (Azurite, from npm) and a
//! folder. A copy counts once read back and carries the file's facts; the audit finds a
//! copy changed, replaced or removed behind our back; a file written to while it is
//! copied is not counted; wrong credentials are refused in words an admin can act on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rushes_copies::{Audit, CopyError, Secret, Store, Target, TargetPlace};

const ACCESS: &str = "rushes-test";
const SECRET: &str = "rushes-test-secret";

/// An S3 server on loopback keeping bucket `copies` under `root`.
async fn s3_server(root: &Path) -> SocketAddr {
    std::fs::create_dir_all(root.join("copies")).unwrap();
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS, SECRET));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let http =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let conn = http
                .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    addr
}

fn s3_target(addr: SocketAddr, secret: &str) -> Target {
    Target {
        name: "onprem-s3".into(),
        place: TargetPlace::S3 {
            bucket: "copies".into(),
            endpoint: Some(format!("http://{addr}")),
            region: "us-east-1".into(),
            access_key: ACCESS.into(),
            fingerprint: None,
        },
        secret: Some(Secret::new(secret)),
    }
}

/// A file of `len` bytes that no two calls with other seeds share.
fn media(dir: &Path, name: &str, len: usize, seed: u8) -> PathBuf {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_to_s3_are_proven_carry_the_files_facts_and_are_audited() {
    let server_root = tempfile::tempdir().unwrap();
    let addr = s3_server(server_root.path()).await;
    let store = Store::open(&s3_target(addr, SECRET)).unwrap();
    let files = tempfile::tempdir().unwrap();
    // One file sent in one request, one in parts (three of 8 MiB and the rest).
    let small = media(files.path(), "A001C001.wav", 300_000, 1);
    let big = media(files.path(), "A001C002.mov", (25 << 20) + 12_345, 2);
    for (path, rel) in [(&small, "day1/A001C001.wav"), (&big, "day1/A001C002.mov")] {
        let proof = store.put_verified("projects", rel, path).await.unwrap();
        assert_eq!(proof.key, format!("projects/{rel}"));
        assert!(proof.proven_at > 0);
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(proof.facts.size, bytes.len() as u64);
        assert_eq!(
            proof.facts.blake3,
            blake3::hash(&bytes).to_hex().to_string()
        );
        // The server holds the same bytes under the share and path, as any tool sees it.
        let held = server_root.path().join("copies/projects").join(rel);
        assert_eq!(std::fs::read(&held).unwrap(), bytes, "{}", held.display());
        // The file's facts travel as the object's metadata.
        let facts = store.facts(&proof.key).await.unwrap().unwrap();
        assert_eq!(facts, proof.facts);
        assert_eq!(store.audit(&proof).await.unwrap(), Audit::Proven);
    }
    let proof = store
        .put_verified("projects", "day1/A001C001.wav", &small)
        .await
        .unwrap();
    // Behind our back: a byte of the object changed, then the object removed.
    let held = server_root.path().join("copies/projects/day1/A001C001.wav");
    let mut bytes = std::fs::read(&held).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&held, &bytes).unwrap();
    match store.audit(&proof).await.unwrap() {
        Audit::Changed(why) => assert!(why.contains("hash"), "{why}"),
        other => panic!("a changed object audited as {other:?}"),
    }
    std::fs::remove_file(&held).unwrap();
    assert_eq!(store.audit(&proof).await.unwrap(), Audit::Missing);
}

/// A file an editor is still writing is not copied: its bytes changed between the hash
/// and the upload, and the target keeps nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_to_while_it_is_copied_is_not_counted_and_leaves_nothing() {
    use std::os::unix::fs::FileExt;
    let server_root = tempfile::tempdir().unwrap();
    let addr = s3_server(server_root.path()).await;
    let store = Store::open(&s3_target(addr, SECRET)).unwrap();
    let files = tempfile::tempdir().unwrap();
    let clip = media(files.path(), "D001C001.mov", 24 << 20, 8);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (clip, stop) = (clip.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&clip).unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_at(&i.to_le_bytes(), (i * 4099) % (24 << 20))
                    .unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let e = store
        .put_verified("projects", "D001C001.mov", &clip)
        .await
        .unwrap_err();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(matches!(e, CopyError::Changed { .. }), "{e:?}");
    assert!(e.to_string().contains("copied again later"), "{e}");
    assert!(!server_root
        .path()
        .join("copies/projects/D001C001.mov")
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_in_words_an_admin_can_act_on() {
    let server_root = tempfile::tempdir().unwrap();
    let addr = s3_server(server_root.path()).await;
    let store = Store::open(&s3_target(addr, "not-the-secret")).unwrap();
    let files = tempfile::tempdir().unwrap();
    let clip = media(files.path(), "A002C001.mov", 4096, 3);
    let e = store
        .put_verified("projects", "A002C001.mov", &clip)
        .await
        .unwrap_err();
    assert!(matches!(e, CopyError::Refused { .. }), "{e:?}");
    let said = e.to_string();
    assert!(
        said.contains("onprem-s3 refused our credentials")
            && said.contains("access key and secret"),
        "{said}"
    );
    assert!(!said.contains("not-the-secret"), "{said}");
    // Nothing was stored.
    assert!(!server_root.path().join("copies/projects").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_to_a_folder_keep_their_facts_beside_them() {
    let tape = tempfile::tempdir().unwrap();
    let store = Store::open(&Target {
        name: "ltfs".into(),
        place: TargetPlace::Folder {
            path: tape.path().display().to_string(),
        },
        secret: None,
    })
    .unwrap();
    let files = tempfile::tempdir().unwrap();
    let clip = media(files.path(), "B001C001.mxf", (9 << 20) + 7, 4);
    let proof = store
        .put_verified("archive", "2026/B001C001.mxf", &clip)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(tape.path().join("archive/2026/B001C001.mxf")).unwrap(),
        std::fs::read(&clip).unwrap()
    );
    assert_eq!(store.facts(&proof.key).await.unwrap().unwrap(), proof.facts);
    assert_eq!(store.audit(&proof).await.unwrap(), Audit::Proven);
    std::fs::write(tape.path().join("archive/2026/B001C001.mxf"), b"short").unwrap();
    match store.audit(&proof).await.unwrap() {
        Audit::Changed(why) => assert!(why.contains("5 bytes"), "{why}"),
        other => panic!("a truncated copy audited as {other:?}"),
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `what`, started by the test, listens on `port`.
fn wait_for(port: u16, what: &str, seconds: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// moto's S3 server (PyPI; `make deps` installs it), on a port of its own, until dropped.
struct Moto {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Moto {
    fn start() -> Self {
        let bin = std::env::var("RUSHES_MOTO")
            .unwrap_or_else(|_| "/var/cache/rushes-tools/moto/bin/moto_server".into());
        assert!(
            Path::new(&bin).exists(),
            "{bin} is missing: `make deps` installs moto's server"
        );
        let port = free_port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for(port, "moto", 30);
        Self { child, addr }
    }

    /// A plain, unsigned request, as a client behind our back would make it (moto does
    /// not check signatures): the status line of the answer.
    fn plain(&self, method: &str, path: &str, body: &[u8]) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same copies against a second S3 written apart from s3s: moto's server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_to_motos_s3_are_proven_and_an_object_replaced_behind_our_back_is_found() {
    let moto = Moto::start();
    assert!(
        moto.plain("PUT", "/copies", b"").contains("200"),
        "bucket made"
    );
    let store = Store::open(&s3_target(moto.addr, SECRET)).unwrap();
    let files = tempfile::tempdir().unwrap();
    let small = media(files.path(), "C001C001.wav", 70_000, 5);
    let big = media(files.path(), "C001C002.mov", (17 << 20) + 3, 6);
    let mut proofs = Vec::new();
    for (path, rel) in [(&small, "C001C001.wav"), (&big, "reel/C001C002.mov")] {
        let proof = store.put_verified("dailies", rel, path).await.unwrap();
        assert_eq!(store.facts(&proof.key).await.unwrap().unwrap(), proof.facts);
        assert_eq!(store.audit(&proof).await.unwrap(), Audit::Proven);
        proofs.push(proof);
    }
    // Replaced by another upload to the same key (another box, another tool), then
    // removed.
    let other = media(files.path(), "other.wav", 70_000, 7);
    store
        .put_verified("dailies", "C001C001.wav", &other)
        .await
        .unwrap();
    match store.audit(&proofs[0]).await.unwrap() {
        Audit::Changed(why) => assert!(why.contains("blake3"), "{why}"),
        other => panic!("a replaced object audited as {other:?}"),
    }
    store.remove(&proofs[1].key).await.unwrap();
    assert_eq!(store.audit(&proofs[1]).await.unwrap(), Audit::Missing);
}

/// Azurite's well-known development account and key.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Microsoft's Azure Storage emulator (npm's azurite; `make deps` installs it), its blob
/// service on a port of its own, until dropped.
struct Azurite {
    child: std::process::Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Azurite {
    fn start() -> Self {
        let bin = std::env::var("RUSHES_AZURITE").unwrap_or_else(|_| {
            "/var/cache/rushes-tools/azurite/node_modules/.bin/azurite-blob".into()
        });
        assert!(
            Path::new(&bin).exists(),
            "{bin} is missing: `make deps` installs Azurite"
        );
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--silent", "--skipApiVersionCheck", "--location"])
            .arg(data.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for(port, "Azurite", 60);
        Self {
            child,
            port,
            _data: data,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    /// Run Microsoft's own Python client (azure-storage-blob, beside moto in its venv)
    /// against the emulator: `script` gets `svc`, a BlobServiceClient.
    fn python(&self, script: &str) -> String {
        let python = std::env::var("RUSHES_MOTO")
            .map(|m| Path::new(&m).with_file_name("python"))
            .unwrap_or_else(|_| "/var/cache/rushes-tools/moto/bin/python".into());
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={};",
            self.endpoint()
        );
        let out = std::process::Command::new(python)
            .arg("-c")
            .arg(format!(
                "from azure.storage.blob import BlobServiceClient\nsvc = BlobServiceClient.from_connection_string({conn:?})\n{script}"
            ))
            .output()
            .expect("python from the venv `make deps` makes");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azure Blob, against Azurite: copies proven with their facts as blob metadata, which
/// Microsoft's own client reads back; a blob overwritten by that client is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_to_azure_blob_are_proven_and_readable_by_microsofts_client() {
    let azurite = Azurite::start();
    azurite.python("svc.create_container('copies')");
    let store = Store::open(&Target {
        name: "azure".into(),
        place: TargetPlace::Azure {
            account: AZURITE_ACCOUNT.into(),
            container: "copies".into(),
            endpoint: Some(azurite.endpoint()),
        },
        secret: Some(Secret::new(AZURITE_KEY)),
    })
    .unwrap();
    let files = tempfile::tempdir().unwrap();
    let small = media(files.path(), "E001C001.wav", 50_000, 9);
    let big = media(files.path(), "E001C002.mov", (18 << 20) + 5, 10);
    let mut proofs = Vec::new();
    for (path, rel) in [(&small, "E001C001.wav"), (&big, "day2/E001C002.mov")] {
        let proof = store.put_verified("grading", rel, path).await.unwrap();
        assert_eq!(store.facts(&proof.key).await.unwrap().unwrap(), proof.facts);
        assert_eq!(store.audit(&proof).await.unwrap(), Audit::Proven);
        proofs.push(proof);
    }
    // Microsoft's client sees the blob under the share and path, with our metadata.
    let seen = azurite.python(
        "b = svc.get_blob_client('copies', 'grading/day2/E001C002.mov')\n\
         p = b.get_blob_properties()\n\
         print(p.size, p.metadata.get('rushesblake3'))",
    );
    assert_eq!(
        seen.trim(),
        format!("{} {}", proofs[1].facts.size, proofs[1].facts.blake3)
    );
    azurite.python(
        "svc.get_blob_client('copies', 'grading/E001C001.wav').upload_blob(b'other bytes', overwrite=True)",
    );
    assert!(matches!(
        store.audit(&proofs[0]).await.unwrap(),
        Audit::Changed(_)
    ));
}

/// Retention on S3: the copy of a file the box no longer has becomes a version (a new
/// object, whose age starts now), and versions older than the retention are deleted;
/// another share's copies, under a prefix that starts the same, are never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_removed_files_as_versions_then_deletes_them_when_old() {
    let server_root = tempfile::tempdir().unwrap();
    let addr = s3_server(server_root.path()).await;
    let store = Store::open(&s3_target(addr, SECRET)).unwrap();
    let files = tempfile::tempdir().unwrap();
    let kept = media(files.path(), "kept.mov", 5000, 5);
    let gone = media(files.path(), "gone.mov", 7000, 6);
    store.put_verified("proj", "kept.mov", &kept).await.unwrap();
    let gone_proof = store.put_verified("proj", "gone.mov", &gone).await.unwrap();
    store
        .put_verified("proj2", "gone.mov", &gone)
        .await
        .unwrap();
    let month = 30 * 86_400;
    let done = store
        .keep_for("proj", month, |rel| rel == "kept.mov")
        .await
        .unwrap();
    assert_eq!((done.retired, done.pruned), (1, 0), "{done:?}");
    let bucket = server_root.path().join("copies");
    let version = bucket.join(format!(
        ".rushes-versions/proj/gone.mov@{}",
        gone_proof.facts.mtime_ns
    ));
    assert_eq!(
        std::fs::read(&version).unwrap(),
        std::fs::read(&gone).unwrap()
    );
    assert!(!bucket.join("proj/gone.mov").exists());
    assert!(bucket.join("proj/kept.mov").exists());
    assert!(
        bucket.join("proj2/gone.mov").exists(),
        "another share's copy"
    );
    // Not old yet: kept. Two months on: deleted.
    let done = store.keep_for("proj", month, |_| true).await.unwrap();
    assert_eq!(done.pruned, 0, "{done:?}");
    std::fs::File::options()
        .write(true)
        .open(&version)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(2 * month))
        .unwrap();
    let done = store.keep_for("proj", month, |_| true).await.unwrap();
    assert_eq!((done.pruned, done.pruned_bytes), (1, 7000), "{done:?}");
    assert!(!version.exists());
    assert!(bucket.join("proj/kept.mov").exists());
}
