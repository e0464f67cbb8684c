//! `rushesd host` on loopback, driven by real NFSv3 clients: the nfs3_client crate (an
//! independent implementation) for exact protocol checks as chosen users, libnfs'
//! command-line tools as a second client, and hand-made RPC records for bad input.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rushes_tests::nfs3_client::nfs3_types::nfs3::{self as t, nfsstat3::*, stable_how};
use rushes_tests::{read_reply, rpc_record, word, Nfs, ServerProcess, User};

const ALICE: u32 = 1000;
const BOB: u32 = 1001;

fn alice() -> User {
    User::new(ALICE, ALICE)
}

fn bob() -> User {
    User::new(BOB, BOB)
}

/// A share directory with the given mode (0777: anyone may create in it).
fn share_dir(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

fn state_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("state dir")
}

/// Serve `dir` as /share with default rules.
fn serve(dir: &Path, state: &Path) -> ServerProcess {
    let share = format!("share={}", dir.display());
    ServerProcess::start(&["--state-dir", state.to_str().expect("utf8"), &share])
}

/// Serve from a TOML config.
fn serve_config(toml: &str, state: &Path) -> (ServerProcess, tempfile::NamedTempFile) {
    let mut cfg = tempfile::NamedTempFile::new().expect("config");
    cfg.write_all(toml.as_bytes()).expect("write config");
    let server = ServerProcess::start(&[
        "--state-dir",
        state.to_str().expect("utf8"),
        "--config",
        cfg.path().to_str().expect("utf8"),
    ]);
    (server, cfg)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn two_users_are_denied_each_others_private_files() {
    let dir = share_dir(0o777);
    let state = state_dir();
    let server = serve(dir.path(), state.path());
    let mut a = Nfs::mount(server.port(), "/share", &alice())
        .await
        .expect("mount as alice");
    let mut b = Nfs::mount(server.port(), "/share", &bob())
        .await
        .expect("mount as bob");
    let root = a.root.clone();

    let fa = a
        .create(&root, "alice.txt", 0o600)
        .await
        .expect("alice creates");
    a.write(&fa, 0, b"alice's notes", stable_how::FILE_SYNC)
        .await
        .expect("alice writes");
    let fb = b
        .create(&root, "bob.txt", 0o600)
        .await
        .expect("bob creates");
    b.write(&fb, 0, b"bob's notes", stable_how::FILE_SYNC)
        .await
        .expect("bob writes");

    // On disk, each file belongs to its creator.
    assert_eq!(
        std::fs::metadata(dir.path().join("alice.txt"))
            .unwrap()
            .uid(),
        ALICE
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("bob.txt")).unwrap().uid(),
        BOB
    );

    let fa_seen_by_bob = b
        .lookup(&root, "alice.txt")
        .await
        .expect("names are visible");
    assert_eq!(
        b.read(&fa_seen_by_bob, 0, 100).await.unwrap_err(),
        NFS3ERR_ACCES
    );
    assert_eq!(
        b.write(&fa_seen_by_bob, 0, b"x", stable_how::UNSTABLE)
            .await
            .unwrap_err(),
        NFS3ERR_ACCES
    );
    assert_eq!(a.read(&fb, 0, 100).await.unwrap_err(), NFS3ERR_ACCES);
    assert_eq!(a.read(&fa, 0, 100).await.unwrap().0, b"alice's notes");

    // ACCESS tells the truth to each of them.
    let rw = 0x01 | 0x04; // READ | MODIFY
    assert_eq!(a.access(&fa, rw).await.unwrap(), rw);
    assert_eq!(b.access(&fa_seen_by_bob, rw).await.unwrap(), 0);

    // Supplementary groups count: a 0640 file of group 3000 is readable by a member only.
    let team = a.create(&root, "team.txt", 0o640).await.unwrap();
    a.write(&team, 0, b"call sheet", stable_how::FILE_SYNC)
        .await
        .unwrap();
    std::os::unix::fs::chown(dir.path().join("team.txt"), None, Some(3000)).unwrap();
    let mut carol = Nfs::mount(
        server.port(),
        "/share",
        &User {
            uid: 1002,
            gid: 1002,
            gids: vec![3000],
        },
    )
    .await
    .unwrap();
    let team_c = carol.lookup(&root, "team.txt").await.unwrap();
    assert_eq!(carol.read(&team_c, 0, 100).await.unwrap().0, b"call sheet");
    assert_eq!(carol.access(&team_c, rw).await.unwrap(), 0x01);
    assert_eq!(
        carol
            .write(&team_c, 0, b"x", stable_how::UNSTABLE)
            .await
            .unwrap_err(),
        NFS3ERR_ACCES
    );
    let team_b = b.lookup(&root, "team.txt").await.unwrap();
    assert_eq!(b.read(&team_b, 0, 100).await.unwrap_err(), NFS3ERR_ACCES);

    // Sticky directories: bob cannot delete alice's file from a 1777 folder.
    let drop_box = a.mkdir(&root, "dropbox", 0o1777).await.unwrap();
    a.create(&drop_box, "mine", 0o644).await.unwrap();
    let drop_box_b = b.lookup(&root, "dropbox").await.unwrap();
    assert_eq!(
        b.remove(&drop_box_b, "mine").await.unwrap_err(),
        NFS3ERR_PERM
    );
}

#[tokio::test]
async fn root_is_squashed_unless_a_rule_says_otherwise() {
    let (sq, nosq, all) = (share_dir(0o777), share_dir(0o777), share_dir(0o777));
    let state = state_dir();
    let (server, _cfg) = serve_config(
        &format!(
            r#"
            [[share]]
            name = "squashed"
            path = "{}"
            [[share]]
            name = "trusted"
            path = "{}"
            [[share.rule]]
            clients = ["127.0.0.0/8"]
            root_squash = false
            [[share]]
            name = "guest"
            path = "{}"
            [[share.rule]]
            all_squash = true
            anonuid = 2000
            anongid = 2001
            "#,
            sq.path().display(),
            nosq.path().display(),
            all.path().display()
        ),
        state.path(),
    );
    let mut root_sq = Nfs::mount(server.port(), "/squashed", &User::root())
        .await
        .unwrap();
    let r = root_sq.root.clone();
    root_sq.create(&r, "by-root", 0o644).await.unwrap();
    let md = std::fs::metadata(sq.path().join("by-root")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (65534, 65534),
        "root must be squashed to nobody"
    );

    // Squashed root cannot read a private file either.
    std::fs::write(sq.path().join("private"), b"x").unwrap();
    std::fs::set_permissions(
        sq.path().join("private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let p = root_sq.lookup(&r, "private").await.unwrap();
    assert_eq!(root_sq.read(&p, 0, 10).await.unwrap_err(), NFS3ERR_ACCES);

    let mut root_trusted = Nfs::mount(server.port(), "/trusted", &User::root())
        .await
        .unwrap();
    let r = root_trusted.root.clone();
    root_trusted.create(&r, "by-root", 0o644).await.unwrap();
    assert_eq!(
        std::fs::metadata(nosq.path().join("by-root"))
            .unwrap()
            .uid(),
        0
    );
    // A caller presenting gid -1 (which setfsgid takes as "leave it") right after
    // root's call on the same connection gets the anonymous group, not root's.
    let mut no_gid = Nfs::mount(server.port(), "/trusted", &User::new(ALICE, u32::MAX))
        .await
        .unwrap();
    let r = no_gid.root.clone();
    root_trusted
        .create(&r, "by-root-again", 0o644)
        .await
        .unwrap();
    no_gid.create(&r, "by-no-gid", 0o644).await.unwrap();
    let md = std::fs::metadata(nosq.path().join("by-no-gid")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (ALICE, 65534),
        "gid -1 must not keep root's group"
    );

    let mut guest = Nfs::mount(server.port(), "/guest", &alice()).await.unwrap();
    let r = guest.root.clone();
    guest.create(&r, "by-alice", 0o644).await.unwrap();
    let md = std::fs::metadata(all.path().join("by-alice")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (2000, 2001),
        "all_squash maps everyone to anonuid/anongid"
    );
}

#[tokio::test]
async fn clients_outside_the_rules_are_refused_at_mount_and_at_every_call() {
    let (local, ro) = (share_dir(0o777), share_dir(0o777));
    std::fs::write(ro.path().join("master.mov"), b"frames").unwrap();
    let state = state_dir();
    let (server, _cfg) = serve_config(
        &format!(
            r#"
            [[share]]
            name = "local"
            path = "{}"
            [[share.rule]]
            clients = ["127.0.0.1/32"]
            [[share]]
            name = "library"
            path = "{}"
            [[share.rule]]
            clients = ["127.0.0.0/8"]
            access = "ro"
            "#,
            local.path().display(),
            ro.path().display()
        ),
        state.path(),
    );
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let refused = Nfs::mount_from(other, server.port(), "/local", &alice()).await;
    let err = format!(
        "{:?}",
        refused.err().expect("mount from 127.0.0.2 must fail")
    );
    assert!(err.contains("ACCES"), "expected MNT3ERR_ACCES, got {err}");

    // A handle learned by an allowed client does not help a refused one.
    let mut ok = Nfs::mount(server.port(), "/local", &alice()).await.unwrap();
    let r = ok.root.clone();
    let f = ok.create(&r, "cut.edl", 0o666).await.unwrap();
    let mut args = Vec::new();
    args.extend_from_slice(&(f.data.len() as u32).to_be_bytes());
    args.extend_from_slice(&f.data.to_vec());
    args.resize(4 + f.data.len().div_ceil(4) * 4, 0);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((other, 0).into()).unwrap();
    let stream = socket
        .connect(server.addr)
        .await
        .unwrap()
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    let mut stream = stream;
    for (xid, procedure) in [(1, 1u32), (2, 4), (3, 18)] {
        // GETATTR, ACCESS (needs an extra word), FSSTAT
        let mut a = args.clone();
        if procedure == 4 {
            a.extend_from_slice(&0x3fu32.to_be_bytes());
        }
        stream
            .write_all(&rpc_record(xid, 100003, 3, procedure, Some(&alice()), &a))
            .unwrap();
        let reply = read_reply(&mut stream).unwrap();
        assert_eq!(word(&reply, 5), 0, "accepted");
        assert_eq!(
            word(&reply, 6),
            13,
            "procedure {procedure} must answer NFS3ERR_ACCES"
        );
    }

    // Read-only rule: reads work, changes are refused, ACCESS says so.
    let mut lib = Nfs::mount(server.port(), "/library", &alice())
        .await
        .unwrap();
    let r = lib.root.clone();
    let m = lib.lookup(&r, "master.mov").await.unwrap();
    assert_eq!(lib.read(&m, 0, 100).await.unwrap().0, b"frames");
    assert_eq!(
        lib.write(&m, 0, b"x", stable_how::FILE_SYNC)
            .await
            .unwrap_err(),
        NFS3ERR_ROFS
    );
    assert_eq!(
        lib.create(&r, "new", 0o644).await.unwrap_err(),
        NFS3ERR_ROFS
    );
    assert_eq!(
        lib.remove(&r, "master.mov").await.unwrap_err(),
        NFS3ERR_ROFS
    );
    assert_eq!(lib.access(&r, 0x1f).await.unwrap() & 0x1c, 0);
}

#[tokio::test]
async fn handles_survive_a_restart_and_go_stale_only_when_the_file_is_gone() {
    let dir = share_dir(0o777);
    let state = state_dir();
    let mut server = serve(dir.path(), state.path());
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = c.root.clone();
    let sub = c.mkdir(&root, "reel1", 0o755).await.unwrap();
    let f = c.create(&sub, "A001.mov", 0o644).await.unwrap();
    c.write(&f, 0, b"take one", stable_how::FILE_SYNC)
        .await
        .unwrap();
    let before = c.getattr(&f).await.unwrap();
    drop(c);

    let status = server.terminate();
    assert!(
        status.success(),
        "SIGTERM must end rushesd cleanly, got {status}"
    );
    server.restart();

    // No new MOUNT: the old handles are used directly, as a client does after a reboot.
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    assert_eq!(c.root, root, "root handle is stable");
    let after = c
        .getattr(&f)
        .await
        .expect("handle from before the restart works");
    assert_eq!(after.fileid, before.fileid);
    assert_eq!(c.read(&f, 0, 100).await.unwrap().0, b"take one");
    assert_eq!(c.lookup(&sub, "A001.mov").await.unwrap(), f);

    // Gone behind the server's back: stale, not some other file.
    std::fs::remove_file(dir.path().join("reel1/A001.mov")).unwrap();
    assert_eq!(c.getattr(&f).await.unwrap_err(), NFS3ERR_STALE);
    // Gone through NFS, same thing.
    c.conn
        .rmdir(&t::RMDIR3args {
            object: rushes_tests::dirop(&root, "reel1"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.getattr(&sub).await.unwrap_err(), NFS3ERR_STALE);
}

#[tokio::test]
async fn nothing_outside_a_share_is_reachable() {
    let outer = tempfile::tempdir().unwrap();
    let inside = outer.path().join("share");
    std::fs::create_dir(&inside).unwrap();
    std::fs::write(outer.path().join("outside.txt"), b"not yours").unwrap();
    std::fs::create_dir(inside.join("sub")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", inside.join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc", inside.join("etc")).unwrap();
    let state = state_dir();
    let server = serve(&inside, state.path());
    let mut c = Nfs::mount(server.port(), "/share", &User::new(0, 0))
        .await
        .unwrap();
    let root = c.root.clone();
    let root_id = c.getattr(&root).await.unwrap().fileid;

    // `..` of the root is the root; `..` of a folder is its parent.
    assert_eq!(c.lookup(&root, "..").await.unwrap(), root);
    let sub = c.lookup(&root, "sub").await.unwrap();
    let parent = c.lookup(&sub, "..").await.unwrap();
    assert_eq!(c.getattr(&parent).await.unwrap().fileid, root_id);
    // Names are single components.
    assert_eq!(
        c.lookup(&root, "../outside.txt").await.unwrap_err(),
        NFS3ERR_ACCES
    );

    // Symlinks are objects, never followed by the server.
    let esc = c.lookup(&root, "escape").await.unwrap();
    assert!(matches!(
        c.getattr(&esc).await.unwrap().type_,
        t::ftype3::NF3LNK
    ));
    assert_eq!(c.read(&esc, 0, 100).await.unwrap_err(), NFS3ERR_INVAL);
    let etc = c.lookup(&root, "etc").await.unwrap();
    assert_eq!(c.lookup(&etc, "passwd").await.unwrap_err(), NFS3ERR_NOTDIR);
    assert_eq!(
        c.create(&etc, "planted", 0o644).await.unwrap_err(),
        NFS3ERR_NOTDIR
    );
    let link = c
        .conn
        .readlink(&t::READLINK3args {
            symlink: esc.clone(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.data.0.to_vec(), b"../outside.txt");

    // Crafted handles: any change to a real one is refused.
    for i in 0..root.data.len() {
        let mut forged = root.data.to_vec();
        forged[i] ^= 0x01;
        let fh = t::nfs_fh3 {
            data: rushes_tests::nfs3_client::nfs3_types::xdr_codec::Opaque::owned(forged),
        };
        assert_eq!(
            c.getattr(&fh).await.unwrap_err(),
            NFS3ERR_BADHANDLE,
            "byte {i} flipped"
        );
    }
    // A handle minted by another server (another key) is refused too.
    let other_state = state_dir();
    let other = serve(&inside, other_state.path());
    let mut o = Nfs::mount(other.port(), "/share", &User::root())
        .await
        .unwrap();
    assert_eq!(o.getattr(&sub).await.unwrap_err(), NFS3ERR_BADHANDLE);
}

#[tokio::test]
async fn committed_unstable_writes_survive_kill_9_and_the_verifier_changes() {
    let dir = share_dir(0o777);
    let state = state_dir();
    let mut server = serve(dir.path(), state.path());
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, "render.exr", 0o644).await.unwrap();
    let payload = data(3 << 20, 7);
    let mut verf = None;
    for (i, chunk) in payload.chunks(1 << 20).enumerate() {
        let w = c
            .write(&f, (i as u64) << 20, chunk, stable_how::UNSTABLE)
            .await
            .unwrap();
        assert_eq!(w.count as usize, chunk.len());
        assert_eq!(w.committed, stable_how::UNSTABLE);
        assert!(
            verf.is_none_or(|v| v == w.verf.0),
            "verifier is constant while the server runs"
        );
        verf = Some(w.verf.0);
    }
    let committed = c.commit(&f).await.unwrap();
    assert_eq!(Some(committed), verf);
    drop(c);

    server.kill9();
    server.restart();
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    assert!(
        c.read_all(&f).await.unwrap() == payload,
        "committed data must survive kill -9"
    );
    let w = c.write(&f, 0, b"x", stable_how::FILE_SYNC).await.unwrap();
    assert_eq!(w.committed, stable_how::FILE_SYNC);
    assert_ne!(
        Some(w.verf.0),
        verf,
        "a restarted server must change its write verifier"
    );
}

#[tokio::test]
async fn a_100k_entry_directory_lists_completely_without_repeats() {
    let dir = share_dir(0o777);
    let seq = dir.path().join("seq");
    std::fs::create_dir(&seq).unwrap();
    const N: usize = 100_000;
    for i in 0..N {
        std::fs::File::create(seq.join(format!("frame_{i:07}.dpx"))).unwrap();
    }
    let state = state_dir();
    let server = serve(dir.path(), state.path());
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = c.root.clone();
    let seq_fh = c.lookup(&root, "seq").await.unwrap();

    for (plus, count) in [(false, 8192), (true, 32768)] {
        let started = Instant::now();
        let entries = c.list(&seq_fh, count, plus).await.unwrap();
        let names: HashSet<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            entries.len(),
            N + 2,
            "READDIR{} returned {} entries",
            if plus { "PLUS" } else { "" },
            entries.len()
        );
        assert_eq!(names.len(), entries.len(), "no entry may repeat");
        assert!(names.contains(".") && names.contains(".."));
        assert!(names.contains("frame_0000000.dpx") && names.contains("frame_0099999.dpx"));
        eprintln!(
            "listed {N} entries (plus={plus}) in {:?}",
            started.elapsed()
        );
    }

    // A cookie presented with another directory's verifier is refused.
    let r = c
        .conn
        .readdir(&t::READDIR3args {
            dir: seq_fh.clone(),
            cookie: 0,
            cookieverf: t::cookieverf3::default(),
            count: 4096,
        })
        .await
        .unwrap()
        .unwrap();
    let cookie = r.reply.entries.0.last().unwrap().cookie;
    let bad = t::READDIR3args {
        dir: seq_fh.clone(),
        cookie,
        cookieverf: t::cookieverf3([9; 8]),
        count: 4096,
    };
    match c.conn.readdir(&bad).await.unwrap() {
        t::Nfs3Result::Err((status, _)) => assert_eq!(status, NFS3ERR_BAD_COOKIE),
        t::Nfs3Result::Ok(_) => panic!("a wrong cookie verifier must be refused"),
    }
    // A count too small for any reply is read as 1 KiB, the least the server answers
    // with: a short first page (not the whole folder), never an empty one.
    let tiny = t::READDIR3args {
        dir: seq_fh.clone(),
        cookie: 0,
        cookieverf: t::cookieverf3::default(),
        count: 10,
    };
    match c.conn.readdir(&tiny).await.unwrap() {
        t::Nfs3Result::Ok(r) => {
            let n = r.reply.entries.0.len();
            assert!(
                (1..64).contains(&n) && !r.reply.eof,
                "a 10-byte count gave {n} entries, eof {}",
                r.reply.eof
            );
        }
        t::Nfs3Result::Err((status, _)) => panic!("a tiny count was refused with {status:?}"),
    }

    // libnfs, a second client, sees every entry as well.
    let url = format!(
        "nfs://127.0.0.1/share/seq?nfsport={0}&mountport={0}&uid={ALICE}&gid={ALICE}",
        server.port()
    );
    let out = std::process::Command::new("nfs-ls")
        .arg(&url)
        .output()
        .expect("nfs-ls (Debian libnfs-utils) must be installed");
    assert!(
        out.status.success(),
        "nfs-ls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|n| n.starts_with("frame_"))
        .collect();
    assert_eq!(listed.len(), N);
}

#[tokio::test]
async fn link_symlink_rename_setattr_and_mknod() {
    let dir = share_dir(0o777);
    let state = state_dir();
    let (server, _cfg) = serve_config(
        &format!(
            "[[share]]\nname = \"share\"\npath = \"{}\"\n[[share.rule]]\nroot_squash = false\n",
            dir.path().display()
        ),
        state.path(),
    );
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = c.root.clone();
    let a = c.mkdir(&root, "a", 0o755).await.unwrap();
    let b = c.mkdir(&root, "b", 0o755).await.unwrap();
    let f = c.create(&a, "shot.mov", 0o644).await.unwrap();
    c.write(&f, 0, b"0123456789abcdef", stable_how::FILE_SYNC)
        .await
        .unwrap();

    // LINK, into another folder.
    c.conn
        .link(&t::LINK3args {
            file: f.clone(),
            link: rushes_tests::dirop(&b, "hard.mov"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.getattr(&f).await.unwrap().nlink, 2);
    assert_eq!(c.lookup(&b, "hard.mov").await.unwrap(), f);

    // SYMLINK and READLINK.
    let s = c
        .conn
        .symlink(&t::SYMLINK3args {
            where_: rushes_tests::dirop(&root, "latest"),
            symlink: t::symlinkdata3 {
                symlink_attributes: Default::default(),
                symlink_data: b"a/shot.mov".to_vec().into(),
            },
        })
        .await
        .unwrap()
        .unwrap();
    let s = s.obj.unwrap();
    let target = c
        .conn
        .readlink(&t::READLINK3args { symlink: s })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.data.0.to_vec(), b"a/shot.mov");
    assert_eq!(
        std::fs::read_link(dir.path().join("latest")).unwrap(),
        Path::new("a/shot.mov")
    );

    // RENAME across folders keeps the handle.
    c.conn
        .rename(&t::RENAME3args {
            from: rushes_tests::dirop(&a, "shot.mov"),
            to: rushes_tests::dirop(&b, "final.mov"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.lookup(&a, "shot.mov").await.unwrap_err(), NFS3ERR_NOENT);
    assert_eq!(c.lookup(&b, "final.mov").await.unwrap(), f);
    assert_eq!(c.read(&f, 0, 4).await.unwrap().0, b"0123");

    // SETATTR: size, mode (0 stays 0), times; ownership by root only.
    c.setattr(
        &f,
        t::sattr3 {
            size: t::set_size3::Some(4),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(c.getattr(&f).await.unwrap().size, 4);
    c.setattr(
        &f,
        t::sattr3 {
            mode: t::set_mode3::Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        c.getattr(&f).await.unwrap().mode,
        0,
        "chmod 0 must give mode 0"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("b/final.mov"))
            .unwrap()
            .mode()
            & 0o7777,
        0
    );
    c.setattr(
        &f,
        t::sattr3 {
            mode: t::set_mode3::Some(0o640),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let when = t::nfstime3 {
        seconds: 1_700_000_000,
        nseconds: 5,
    };
    c.setattr(
        &f,
        t::sattr3 {
            mtime: t::set_mtime::SET_TO_CLIENT_TIME(when),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mt = c.getattr(&f).await.unwrap().mtime;
    assert_eq!((mt.seconds, mt.nseconds), (1_700_000_000, 5));
    assert_eq!(
        c.setattr(
            &f,
            t::sattr3 {
                uid: t::set_uid3::Some(BOB),
                ..Default::default()
            }
        )
        .await
        .unwrap_err(),
        NFS3ERR_PERM,
        "only root may give a file away"
    );
    let mut r = Nfs::mount(server.port(), "/share", &User::root())
        .await
        .unwrap();
    r.setattr(
        &f,
        t::sattr3 {
            uid: t::set_uid3::Some(BOB),
            gid: t::set_gid3::Some(BOB),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let md = std::fs::metadata(dir.path().join("b/final.mov")).unwrap();
    assert_eq!((md.uid(), md.gid()), (BOB, BOB));
    // uid or gid -1 is no id (chown would leave the owner as it is): refused, with
    // nothing of the call done, even the mode beside it (found by the `calls` fuzzer).
    for (uid, gid) in [
        (t::set_uid3::Some(u32::MAX), t::set_gid3::None),
        (t::set_uid3::None, t::set_gid3::Some(u32::MAX)),
    ] {
        assert_eq!(
            r.setattr(
                &f,
                t::sattr3 {
                    mode: t::set_mode3::Some(0o600),
                    uid,
                    gid,
                    ..Default::default()
                }
            )
            .await
            .unwrap_err(),
            NFS3ERR_INVAL
        );
    }
    let md = std::fs::metadata(dir.path().join("b/final.mov")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (BOB, BOB, 0o640));
    // Bob may not change a file of someone else's times, nor alice now.
    assert_eq!(
        c.setattr(
            &f,
            t::sattr3 {
                mtime: t::set_mtime::SET_TO_CLIENT_TIME(when),
                ..Default::default()
            }
        )
        .await
        .unwrap_err(),
        NFS3ERR_PERM
    );

    // RMDIR of a non-empty folder.
    let rm = c
        .conn
        .rmdir(&t::RMDIR3args {
            object: rushes_tests::dirop(&root, "b"),
        })
        .await
        .unwrap();
    assert!(matches!(rm, t::Nfs3Result::Err((NFS3ERR_NOTEMPTY, _))));
}

#[tokio::test]
async fn fsinfo_advertises_1mib_and_1mib_requests_work() {
    let dir = share_dir(0o777);
    let state = state_dir();
    let server = serve(dir.path(), state.path());
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = c.root.clone();
    let info = c
        .conn
        .fsinfo(&t::FSINFO3args {
            fsroot: root.clone(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.rtmax, info.wtmax), (1 << 20, 1 << 20));
    assert_eq!((info.rtpref, info.wtpref), (1 << 20, 1 << 20));
    assert!(info.properties & 0x3 == 0x3, "LINK and SYMLINK supported");
    let f = c.create(&root, "big", 0o644).await.unwrap();
    let payload = data(1 << 20, 3);
    assert_eq!(
        c.write(&f, 0, &payload, stable_how::FILE_SYNC)
            .await
            .unwrap()
            .count,
        1 << 20
    );
    let (back, eof) = c.read(&f, 0, 1 << 20).await.unwrap();
    assert!(back == payload && eof);
    let (tail, eof) = c.read(&f, (1 << 20) - 10, 1 << 20).await.unwrap();
    assert!(tail.len() == 10 && eof);
}

/// Connect, send `record`, return the reply (or the error if the server hung up).
fn exchange(port: u16, record: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(record)?;
    read_reply(&mut s)
}

#[tokio::test]
async fn bad_input_is_answered_and_other_clients_keep_being_served() {
    let dir = share_dir(0o777);
    std::fs::write(dir.path().join("clip"), b"still here").unwrap();
    let state = state_dir();
    let mut server = serve(dir.path(), state.path());
    let port = server.port();
    let u = alice();

    // Arguments cut short: GARBAGE_ARGS (accept_stat 4).
    let reply = exchange(
        port,
        &rpc_record(10, 100003, 3, 1, Some(&u), &[0, 0, 0, 40, 1, 2]),
    )
    .unwrap();
    assert_eq!(
        (word(&reply, 0), word(&reply, 2), word(&reply, 5)),
        (10, 0, 4)
    );
    // A length field claiming 4 GiB: GARBAGE_ARGS, no allocation.
    let reply = exchange(port, &rpc_record(11, 100003, 3, 3, Some(&u), &[0xff; 16])).unwrap();
    assert_eq!(word(&reply, 5), 4);
    // Unknown program, wrong version, unknown procedure, wrong RPC version.
    assert_eq!(
        word(
            &exchange(port, &rpc_record(12, 400_123, 1, 0, None, &[])).unwrap(),
            5
        ),
        1
    );
    let mismatch = exchange(port, &rpc_record(13, 100003, 4, 0, None, &[])).unwrap();
    assert_eq!(
        (word(&mismatch, 5), word(&mismatch, 6), word(&mismatch, 7)),
        (2, 3, 3)
    );
    assert_eq!(
        word(
            &exchange(port, &rpc_record(14, 100003, 3, 99, None, &[])).unwrap(),
            5
        ),
        3
    );
    let mut bad_rpc = rpc_record(15, 100003, 3, 0, None, &[]);
    bad_rpc[15] = 3; // rpcvers = 3
    let denied = exchange(port, &bad_rpc).unwrap();
    assert_eq!(
        (word(&denied, 2), word(&denied, 3)),
        (1, 0),
        "MSG_DENIED, RPC_MISMATCH"
    );
    // An unknown auth flavour: AUTH_ERROR.
    let mut weird_auth = rpc_record(16, 100003, 3, 0, None, &[]);
    weird_auth[4 + 24..4 + 28].copy_from_slice(&7u32.to_be_bytes());
    let denied = exchange(port, &weird_auth).unwrap();
    assert_eq!((word(&denied, 2), word(&denied, 3)), (1, 1));

    // An oversized record: the connection is dropped, nothing else happens.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&0xffff_fff0u32.to_be_bytes()).unwrap();
    let _ = s.write_all(&[0u8; 65536]);
    assert!(
        read_reply(&mut s).is_err(),
        "oversized record must close the connection"
    );

    // A flood from one connection that never reads its replies is bounded: once its
    // replies back up, the server stops reading from it instead of queueing more. Each
    // request asks for 1 MiB, so an unbounded server would hold gigabytes.
    let mut c = Nfs::mount(port, "/share", &alice()).await.unwrap();
    let r = c.root.clone();
    let big = c.create(&r, "big", 0o644).await.unwrap();
    c.write(&big, 0, &data(1 << 20, 1), stable_how::UNSTABLE)
        .await
        .unwrap();
    let mut read_args = (big.data.len() as u32).to_be_bytes().to_vec();
    read_args.extend_from_slice(&big.data.to_vec());
    read_args.resize(4 + big.data.len().div_ceil(4) * 4, 0);
    read_args.extend_from_slice(&0u64.to_be_bytes());
    read_args.extend_from_slice(&(1u32 << 20).to_be_bytes());
    let flood_record = rpc_record(17, 100003, 3, 6, Some(&alice()), &read_args);
    let flooder = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let started = Instant::now();
        let mut sent = 0usize;
        while started.elapsed() < Duration::from_secs(3) {
            match s.write(&flood_record) {
                Ok(n) => sent += n,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        (sent / flood_record.len(), s)
    });
    // Meanwhile a normal client is served.
    let clip = c.lookup(&r, "clip").await.unwrap();
    assert_eq!(c.read(&clip, 0, 100).await.unwrap().0, b"still here");
    let (requests, _flood_conn) = flooder.join().unwrap();
    // The flooder really sent its load: far more than the server may hold unread.
    assert!(
        requests >= 256,
        "the flooder sent only {requests} requests: the bound was not tested"
    );
    let rss_mib = server.rss_kib().expect("server memory") >> 10;
    assert!(
        rss_mib < 256,
        "server holds {rss_mib} MiB after {requests} unread 1 MiB READs: the per-connection bound failed"
    );
    assert!(
        server.is_running(),
        "server must survive bad input:\n{}",
        server.log_text()
    );
    assert_eq!(c.read(&clip, 0, 100).await.unwrap().0, b"still here");
}

#[test]
fn libnfs_copies_a_file_in_and_out() {
    let dir = share_dir(0o777);
    let state = state_dir();
    let server = serve(dir.path(), state.path());
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("in.bin");
    let payload = data(5 << 20, 11);
    std::fs::write(&src, &payload).unwrap();
    let url = format!(
        "nfs://127.0.0.1/share/copy.bin?nfsport={0}&mountport={0}&uid={ALICE}&gid={ALICE}",
        server.port()
    );
    let run = |a: &str, b: &str| {
        let out = std::process::Command::new("nfs-cp")
            .args([a, b])
            .output()
            .expect("nfs-cp (libnfs-utils)");
        assert!(
            out.status.success(),
            "nfs-cp {a} {b}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(src.to_str().unwrap(), &url);
    assert!(std::fs::read(dir.path().join("copy.bin")).unwrap() == payload);
    let back = work.path().join("out.bin");
    run(&url, back.to_str().unwrap());
    assert!(std::fs::read(back).unwrap() == payload);
}

#[test]
fn host_mode_command_line_errors_are_clear() {
    let bin = rushes_tests::rushesd_bin();
    let out = std::process::Command::new(&bin)
        .arg("host")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to serve"));

    let out = std::process::Command::new(&bin)
        .args(["host", "/definitely/not/here"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));

    let mut cfg = tempfile::NamedTempFile::new().unwrap();
    cfg.write_all(b"[[share]]\nname = \"../up\"\npath = \"/tmp\"\n")
        .unwrap();
    let out = std::process::Command::new(&bin)
        .args(["host", "--config"])
        .arg(cfg.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("share name \"../up\" is not usable"));

    let help = std::process::Command::new(&bin)
        .args(["host", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--config") && help.contains("root_squash") && help.contains("mount -t nfs")
    );
}

/// MKNOD through `c`: the new node's handle, or the status.
async fn mknod(
    c: &mut Nfs,
    dir: &t::nfs_fh3,
    name: &str,
    what: t::mknoddata3,
) -> Result<t::nfs_fh3, t::nfsstat3> {
    match c
        .conn
        .mknod(&t::MKNOD3args {
            where_: rushes_tests::dirop(dir, name),
            what,
        })
        .await
        .unwrap()
    {
        t::Nfs3Result::Ok(ok) => match ok.obj {
            t::Nfs3Option::Some(fh) => Ok(fh),
            t::Nfs3Option::None => panic!("MKNOD gave no handle"),
        },
        t::Nfs3Result::Err((status, _)) => Err(status),
    }
}

fn mode(m: u32) -> t::sattr3 {
    t::sattr3 {
        mode: t::set_mode3::Some(m),
        ..Default::default()
    }
}

fn device(major: u32, minor: u32) -> t::devicedata3 {
    t::devicedata3 {
        dev_attributes: mode(0o600),
        spec: t::specdata3 {
            specdata1: major,
            specdata2: minor,
        },
    }
}

#[tokio::test]
async fn fifos_and_sockets_are_made_devices_only_where_allowed_and_never_opened() {
    use std::os::unix::fs::FileTypeExt;
    let media = share_dir(0o777);
    let lab = share_dir(0o777);
    let state = state_dir();
    let (mut server, _cfg) = serve_config(
        &format!(
            "[[share]]\nname = \"media\"\npath = \"{}\"\n[[share.rule]]\nroot_squash = false\n\n\
             [[share]]\nname = \"lab\"\npath = \"{}\"\nallow_devices = true\n[[share.rule]]\nroot_squash = false\n",
            media.path().display(),
            lab.path().display()
        ),
        state.path(),
    );
    let mut c = Nfs::mount(server.port(), "/media", &alice()).await.unwrap();
    let root = c.root.clone();

    // A FIFO and a socket, with the mode asked for and the caller as owner.
    let fifo = mknod(
        &mut c,
        &root,
        "render.pipe",
        t::mknoddata3::NF3FIFO(mode(0o640)),
    )
    .await
    .unwrap();
    let sock = mknod(
        &mut c,
        &root,
        "agent.sock",
        t::mknoddata3::NF3SOCK(mode(0o600)),
    )
    .await
    .unwrap();
    let md = std::fs::symlink_metadata(media.path().join("render.pipe")).unwrap();
    assert!(md.file_type().is_fifo());
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid()),
        (0o640, ALICE, ALICE)
    );
    assert!(std::fs::symlink_metadata(media.path().join("agent.sock"))
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(c.getattr(&fifo).await.unwrap().type_, t::ftype3::NF3FIFO);
    assert_eq!(c.getattr(&sock).await.unwrap().type_, t::ftype3::NF3SOCK);
    let looked = c.lookup(&root, "render.pipe").await.unwrap();
    assert_eq!(looked, fifo, "LOOKUP gives the same handle");
    let listed = c.list(&root, 8192, true).await.unwrap();
    assert!(listed.iter().any(|(n, _)| n == "agent.sock"));
    // A second MKNOD of the same name: EXIST.
    assert_eq!(
        mknod(
            &mut c,
            &root,
            "render.pipe",
            t::mknoddata3::NF3FIFO(mode(0o640))
        )
        .await
        .unwrap_err(),
        NFS3ERR_EXIST
    );

    // The server never opens a special file for data: READ, WRITE and COMMIT of the FIFO
    // answer INVAL at once (opening it would wait for a writer).
    assert_eq!(c.read(&fifo, 0, 10).await.unwrap_err(), NFS3ERR_INVAL);
    assert_eq!(
        c.write(&fifo, 0, b"x", stable_how::FILE_SYNC)
            .await
            .unwrap_err(),
        NFS3ERR_INVAL
    );
    assert_eq!(c.commit(&fifo).await.unwrap_err(), NFS3ERR_INVAL);

    // chmod, link, rename and remove work on them as on a file.
    c.setattr(&fifo, mode(0o600)).await.unwrap();
    assert_eq!(c.getattr(&fifo).await.unwrap().mode & 0o7777, 0o600);
    let linked = c
        .conn
        .link(&t::LINK3args {
            file: fifo.clone(),
            link: rushes_tests::dirop(&root, "pipe.link"),
        })
        .await
        .unwrap();
    assert!(matches!(linked, t::Nfs3Result::Ok(_)));
    assert_eq!(
        std::fs::symlink_metadata(media.path().join("render.pipe"))
            .unwrap()
            .nlink(),
        2
    );
    let renamed = c
        .conn
        .rename(&t::RENAME3args {
            from: rushes_tests::dirop(&root, "agent.sock"),
            to: rushes_tests::dirop(&root, "agent-2.sock"),
        })
        .await
        .unwrap();
    assert!(matches!(renamed, t::Nfs3Result::Ok(_)));
    c.remove(&root, "pipe.link").await.unwrap();

    // Device nodes: not on a share that does not allow them, even for root; on one that
    // does, for an unsquashed root only; and never opened either.
    assert_eq!(
        mknod(&mut c, &root, "null", t::mknoddata3::NF3CHR(device(1, 3)))
            .await
            .unwrap_err(),
        NFS3ERR_NOTSUPP
    );
    let mut root_media = Nfs::mount(server.port(), "/media", &User::root())
        .await
        .unwrap();
    let r = root_media.root.clone();
    assert_eq!(
        mknod(
            &mut root_media,
            &r,
            "sda",
            t::mknoddata3::NF3BLK(device(8, 0))
        )
        .await
        .unwrap_err(),
        NFS3ERR_NOTSUPP
    );
    let mut lab_alice = Nfs::mount(server.port(), "/lab", &alice()).await.unwrap();
    let lr = lab_alice.root.clone();
    assert_eq!(
        mknod(
            &mut lab_alice,
            &lr,
            "null",
            t::mknoddata3::NF3CHR(device(1, 3))
        )
        .await
        .unwrap_err(),
        NFS3ERR_PERM
    );
    let mut lab_root = Nfs::mount(server.port(), "/lab", &User::root())
        .await
        .unwrap();
    let lr = lab_root.root.clone();
    let null = mknod(
        &mut lab_root,
        &lr,
        "null",
        t::mknoddata3::NF3CHR(device(1, 3)),
    )
    .await
    .unwrap();
    let md = std::fs::symlink_metadata(lab.path().join("null")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
    let attr = lab_root.getattr(&null).await.unwrap();
    assert_eq!(
        (attr.type_, attr.rdev.specdata1, attr.rdev.specdata2),
        (t::ftype3::NF3CHR, 1, 3)
    );
    assert_eq!(
        lab_root.read(&null, 0, 10).await.unwrap_err(),
        NFS3ERR_INVAL
    );

    // A type MKNOD does not make (NF3REG) is BADTYPE; an unknown one is GARBAGE_ARGS.
    let mut args = (root.data.len() as u32).to_be_bytes().to_vec();
    args.extend_from_slice(&root.data.to_vec());
    args.resize(4 + root.data.len().div_ceil(4) * 4, 0);
    args.extend_from_slice(&4u32.to_be_bytes());
    args.extend_from_slice(b"regf");
    let mut reg = args.clone();
    reg.extend_from_slice(&1u32.to_be_bytes());
    let reply = exchange(
        server.port(),
        &rpc_record(40, 100003, 3, 11, Some(&alice()), &reg),
    )
    .unwrap();
    assert_eq!(
        (word(&reply, 5), word(&reply, 6)),
        (0, 10007),
        "NFS3ERR_BADTYPE"
    );
    let mut odd = args;
    odd.extend_from_slice(&99u32.to_be_bytes());
    let reply = exchange(
        server.port(),
        &rpc_record(41, 100003, 3, 11, Some(&alice()), &odd),
    )
    .unwrap();
    assert_eq!(word(&reply, 5), 4, "GARBAGE_ARGS");

    // Their handles survive a restart.
    server.restart();
    let mut c = Nfs::mount(server.port(), "/media", &alice()).await.unwrap();
    assert_eq!(c.getattr(&fifo).await.unwrap().type_, t::ftype3::NF3FIFO);
}

/// What READDIRPLUS said about an entry, beside what the file system says now.
fn listed_matches_disk(path: &Path, attr: &t::fattr3) -> Result<(), String> {
    let md = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let disk = (
        md.ino(),
        md.size(),
        md.mode() & 0o7777,
        md.nlink() as u32,
        md.uid(),
        md.gid(),
        (md.atime() as u32, md.atime_nsec() as u32),
        (md.mtime() as u32, md.mtime_nsec() as u32),
        (md.ctime() as u32, md.ctime_nsec() as u32),
    );
    let listed = (
        attr.fileid,
        attr.size,
        attr.mode,
        attr.nlink,
        attr.uid,
        attr.gid,
        (attr.atime.seconds, attr.atime.nseconds),
        (attr.mtime.seconds, attr.mtime.nseconds),
        (attr.ctime.seconds, attr.ctime.nseconds),
    );
    if disk == listed {
        Ok(())
    } else {
        Err(format!(
            "{}: listed (ino, size, mode, nlink, uid, gid, atime, mtime, ctime) {listed:?}, on disk {disk:?}",
            path.display()
        ))
    }
}

/// READDIRPLUS answers repeated listings from an attribute cache. Whatever changes a file
/// on the server's own disk, behind NFS's back (a write, chmod, chown, a hard link made
/// and removed, a rename, times set, a truncate, a read moving the access time, a file
/// replaced under the same name), shows in the very next listing.
#[tokio::test]
async fn a_listing_shows_changes_made_behind_the_servers_back_at_once() {
    let dir = share_dir(0o777);
    let folder = dir.path().join("bin");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..20 {
        std::fs::write(
            folder.join(format!("clip{i:02}.mov")),
            data(100 + i, i as u8),
        )
        .unwrap();
    }
    let state = state_dir();
    let server = serve(dir.path(), state.path());
    let mut c = Nfs::mount(server.port(), "/share", &User::new(0, 0))
        .await
        .unwrap();
    let root = c.root.clone();
    let bin = c.lookup(&root, "bin").await.unwrap();
    let check = |listing: &[rushes_tests::PlusEntry], when: &str| {
        let mut names: Vec<&str> = Vec::new();
        for rushes_tests::PlusEntry { name, attr, .. } in listing {
            if name == "." || name == ".." {
                continue;
            }
            let attr = attr
                .as_ref()
                .unwrap_or_else(|| panic!("{when}: {name} listed without attributes"));
            if let Err(e) = listed_matches_disk(&folder.join(name), attr) {
                panic!("{when}: {e}");
            }
            names.push(name);
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        names.sort();
        assert_eq!(names, on_disk, "{when}: the listing's names");
    };
    // Twice: the second answers from what the first looked at.
    for pass in ["first listing", "second listing"] {
        let listing = c.list_plus(&bin, 65536).await.unwrap();
        check(&listing, pass);
    }
    let f = |i: usize| folder.join(format!("clip{i:02}.mov"));
    type Change<'a> = Box<dyn Fn() + 'a>;
    let changes: Vec<(&str, Change<'_>)> = vec![
        (
            "a write",
            Box::new(move || std::fs::write(f(0), data(5000, 9)).unwrap()),
        ),
        (
            "a chmod",
            Box::new(move || {
                std::fs::set_permissions(f(1), std::fs::Permissions::from_mode(0o600)).unwrap()
            }),
        ),
        (
            "a chown",
            Box::new(move || std::os::unix::fs::chown(f(2), Some(4321), Some(4322)).unwrap()),
        ),
        (
            "a hard link",
            Box::new(move || std::fs::hard_link(f(3), f(3).with_extension("link")).unwrap()),
        ),
        (
            "the link removed",
            Box::new(move || std::fs::remove_file(f(3).with_extension("link")).unwrap()),
        ),
        (
            "a rename",
            Box::new(move || std::fs::rename(f(4), f(4).with_extension("old")).unwrap()),
        ),
        (
            "times set",
            Box::new(move || {
                let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
                std::fs::File::options()
                    .write(true)
                    .open(f(5))
                    .unwrap()
                    .set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
                    .unwrap();
            }),
        ),
        (
            "a read moving the access time",
            Box::new(move || {
                std::fs::read(f(5)).unwrap();
            }),
        ),
        (
            "a truncate",
            Box::new(move || {
                std::fs::File::options()
                    .write(true)
                    .open(f(6))
                    .unwrap()
                    .set_len(3)
                    .unwrap()
            }),
        ),
        (
            "a file replaced under its name",
            Box::new(move || {
                std::fs::remove_file(f(7)).unwrap();
                std::fs::write(f(7), b"new").unwrap();
            }),
        ),
        (
            "a new file",
            Box::new(move || std::fs::write(f(30), b"late").unwrap()),
        ),
        (
            "a file removed",
            Box::new(move || std::fs::remove_file(f(8)).unwrap()),
        ),
    ];
    for (what, change) in changes {
        change();
        let listing = c.list_plus(&bin, 65536).await.unwrap();
        check(&listing, &format!("after {what}"));
    }
}
