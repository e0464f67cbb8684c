//! A real Linux NFS client (the guest kernel's, with nfs-common's mount.nfs, showmount
//! and rpc.statd) against `rushesd host`, as an edit suite mounts it: no options, locking
//! on. The guest is the client guest (out/client), on a link of its own to a network
//! namespace where rushesd listens with its portmapper on port 111.

use std::time::{Duration, Instant};

use rushes_tests::client::{ClientVm, TestNet};
use rushes_tests::{local_lock, local_lock_free, ServerProcess};

fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

/// Wait (a minute at most) until the server's log has `needle`; fail with the log.
fn wait_for_log(server: &ServerProcess, needle: &str, what: &str) {
    let started = Instant::now();
    while !server.log_text().contains(needle) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not in the server's log within a minute:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_linux_client_mounts_with_no_options_makes_special_files_and_its_locks_are_real() {
    let net = TestNet::new("nfsc").expect("a network namespace with a tap device");
    let share = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(share.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let lab = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let pm = format!("{}:111", net.server_ip);
    // /projects as an edit suite's share; /lab also lets root make device nodes.
    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut config,
        format!(
            "[[share]]\nname = \"projects\"\npath = \"{}\"\n[[share.rule]]\nroot_squash = false\n\n\
             [[share]]\nname = \"lab\"\npath = \"{}\"\nallow_devices = true\n[[share.rule]]\nroot_squash = false\n",
            share.path().display(),
            lab.path().display()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut server = ServerProcess::start_with_prefix(
        &net.prefix(),
        format!("{}:2049", net.server_ip).parse().unwrap(),
        &[
            "--state-dir",
            state.path().to_str().unwrap(),
            "--portmap",
            &pm,
            "--grace-period",
            "20",
            "--config",
            config.path().to_str().unwrap(),
        ],
        // The lock manager's debug lines say when a request waits.
        &[("RUST_LOG", "info,rushes_nas::nlm=debug")],
    );
    let work = tempfile::tempdir().unwrap();
    let mut vm = ClientVm::boot(&net, "suite-3", work.path()).expect("the client guest boots");
    let box_ip = net.server_ip;

    // showmount and the plain mounts, each well within what a user waits.
    let started = Instant::now();
    let shown = vm.sh(&format!("showmount -e {box_ip}"));
    assert!(shown.contains("/projects"), "{shown}");
    vm.sh(&format!(
        "mount -t nfs -o vers=3 {box_ip}:/projects /mnt/b && umount /mnt/b"
    ));
    vm.sh(&format!("mount -t nfs {box_ip}:/projects /mnt/a"));
    let took = started.elapsed();
    let mounts = vm.sh("grep /mnt/a /proc/mounts");
    assert!(
        mounts.contains("vers=3") && !mounts.contains("nolock"),
        "{mounts}"
    );
    assert!(
        took < Duration::from_secs(60),
        "showmount and two mounts took {took:?}"
    );
    eprintln!("showmount, mount -o vers=3 + umount, plain mount: {took:?} under TCG");
    vm.sh("echo cut-1 > /mnt/a/bin.avb");

    // Special files: a FIFO and a bound Unix socket are made on the box with the owner
    // and mode asked for, and behave as such on the client.
    vm.sh("mkfifo -m 640 /mnt/a/render.pipe && [ -p /mnt/a/render.pipe ]");
    vm.sh("nc.openbsd -lU /mnt/a/agent.sock >/dev/null 2>&1 & echo $! > /tmp/nc; sleep 2; [ -S /mnt/a/agent.sock ]");
    vm.sh("kill $(cat /tmp/nc)");
    let out = vm.sh("(echo frame-0001 > /mnt/a/render.pipe &); cat /mnt/a/render.pipe");
    assert!(out.contains("frame-0001"), "{out}");
    vm.sh("chmod 600 /mnt/a/render.pipe && chown 1000:1000 /mnt/a/render.pipe");
    vm.sh("ln /mnt/a/render.pipe /mnt/a/pipe.link && mv /mnt/a/agent.sock /mnt/a/agent-2.sock");
    vm.sh("rm /mnt/a/pipe.link && [ ! -e /mnt/a/pipe.link ]");
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::symlink_metadata(share.path().join("render.pipe")).unwrap();
        assert!(md.file_type().is_fifo());
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid(), md.nlink()),
            (0o600, 1000, 1000, 1)
        );
        let sock = std::fs::symlink_metadata(share.path().join("agent-2.sock")).unwrap();
        assert!(sock.file_type().is_socket());
    }
    // Device nodes: refused where the share does not allow them, made where it does.
    let (out, rc) = vm
        .run("mknod /mnt/a/sda b 8 0", Duration::from_secs(60))
        .unwrap();
    assert_ne!(rc, 0, "a device node on a media share: {out}");
    assert!(!share.path().join("sda").exists());
    vm.sh(&format!(
        "mount -t nfs {box_ip}:/lab /mnt/b && mknod /mnt/b/null c 1 3"
    ));
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::symlink_metadata(lab.path().join("null")).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
    }
    vm.sh("umount /mnt/b");
    let file = share.path().join("bin.avb");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "cut-1\n");

    // An editor's app locks the bin (flock over NFS is an NLM lock on the whole file):
    // the lock is a kernel lock on the box, so a local program (or Samba) is kept out.
    vm.sh("flock -n -o /mnt/a/bin.avb sleep 600 >/dev/null 2>&1 & echo $! > /tmp/holder");
    eventually(
        "the editor's lock on the box",
        Duration::from_secs(60),
        || !local_lock_free(&file),
    );
    // Another process cannot take it without waiting.
    let (_, rc) = vm
        .run("flock -n /mnt/a/bin.avb true", Duration::from_secs(120))
        .unwrap();
    assert_eq!(
        rc, 1,
        "a second locker must be refused while the first holds it"
    );

    // A process that waits for a lock someone else on the box holds (a local program, as
    // Samba would hold it) gets it once that holder lets go: the box calls the client's
    // lock manager back (GRANTED), well before the client's own 30 s re-poll. (Two
    // processes of one client wait for each other in the client's own kernel.)
    vm.sh("kill $(cat /tmp/holder)");
    eventually(
        "the editor's lock released",
        Duration::from_secs(60),
        || local_lock_free(&file),
    );
    let local = local_lock(&file).expect("a local lock");
    vm.sh("flock -o /mnt/a/bin.avb sh -c 'echo got > /tmp/waiter; sleep 600' >/dev/null 2>&1 & echo $! > /tmp/waiting");
    wait_for_log(
        &server,
        "waits for its holder",
        "the waiter's request queued on the box",
    );
    assert!(
        vm.sh("cat /tmp/waiter 2>/dev/null || echo none")
            .contains("none"),
        "the waiter must wait"
    );
    drop(local);
    let waited = eventually("the waiter's lock", Duration::from_secs(120), || {
        vm.run("cat /tmp/waiter", Duration::from_secs(60))
            .map(|(out, _)| out.contains("got"))
            .unwrap_or(false)
    });
    wait_for_log(&server, "granted by callback", "the grant by callback");
    eprintln!("blocked lock granted {waited:?} after the local holder let go");
    assert!(!local_lock_free(&file), "the waiter holds it on the box");

    // rushesd restarts: the client is told (SM_NOTIFY to its statd) and its lock manager
    // reclaims the lock within the grace period, as a kernel lock again.
    server.restart();
    let reclaimed = eventually("the reclaimed lock", Duration::from_secs(120), || {
        !local_lock_free(&file)
    });
    eprintln!("lock reclaimed {reclaimed:?} after the restart");
    wait_for_log(&server, "reclaim their locks", "the restart's SM_NOTIFY");
    wait_for_log(&server, "NLM lock reclaimed", "the reclaim");
    // The share still works through the same mount, and the special files' handles
    // and types survived the restart (seen through a new mount too).
    vm.sh("echo cut-2 >> /mnt/a/bin.avb && cat /mnt/a/bin.avb | grep -q cut-2");
    vm.sh("[ -p /mnt/a/render.pipe ] && [ -S /mnt/a/agent-2.sock ]");
    vm.sh(&format!(
        "mount -t nfs {box_ip}:/projects /mnt/b && [ -p /mnt/b/render.pipe ] && [ -S /mnt/b/agent-2.sock ] && umount /mnt/b"
    ));
    // The waiter lets go: the lock is gone from the box.
    vm.sh("kill $(cat /tmp/waiting); sleep 1; kill $(pidof sleep) 2>/dev/null; true");
    eventually("the released lock", Duration::from_secs(60), || {
        local_lock_free(&file)
    });
    vm.sh("umount /mnt/a");
}
