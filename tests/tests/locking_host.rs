//! What clients need around NFS, against `rushesd host` on loopback: the portmapper over
//! TCP and UDP (asked by Debian's rpcinfo and showmount and by libnfs, on port 111),
//! MOUNT over UDP, the answers that make Linux fall back to NFSv3, the duplicate request
//! cache, and NLM locks between two clients, with a blocked lock granted by a callback,
//! reclaim after a restart and a client's reboot notice. The second client is played by
//! hand-made RPC from 127.0.0.2, with a portmapper, lock manager and statd of its own.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rushes_tests::rawrpc::{
    accept_stat, lock_args, nlm_stat, opaque, tcp_call, test_args, udp_call, unlock_args, words,
};
use rushes_tests::{local_lock_free, word, Nfs, ServerProcess, User};

const NLM: u32 = 100021;
const NSM: u32 = 100024;

fn share_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

fn alice() -> User {
    User::new(1000, 1000)
}

fn getport(from: &UdpSocket, portmap: SocketAddr, prog: u32, vers: u32, proto: u32) -> u32 {
    let r = udp_call(
        from,
        portmap,
        0x5000 + prog + vers,
        100000,
        2,
        3,
        &words(&[prog, vers, proto, 0]),
    );
    assert_eq!(accept_stat(&r), 0);
    word(&r, 6)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (make deps installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

#[test]
fn portmapper_mount_over_udp_and_version_answers_are_what_clients_expect() {
    let dir = share_dir();
    std::fs::write(dir.path().join("clip.mov"), b"frames").unwrap();
    let state = tempfile::tempdir().unwrap();
    // A loopback address of its own, so its portmapper can have port 111 there, as
    // rpcinfo, showmount and libnfs expect.
    let ip = "127.0.0.77";
    let share = format!("share={}", dir.path().display());
    let server = ServerProcess::start_at(
        format!("{ip}:0").parse().unwrap(),
        &[
            "--state-dir",
            state.path().to_str().unwrap(),
            "--portmap",
            &format!("{ip}:111"),
            &share,
        ],
        &[],
    );
    let port = server.port();
    let pm: SocketAddr = format!("{ip}:111").parse().unwrap();
    assert_eq!(
        server.portmap,
        Some(pm),
        "the portmapper must have port 111 (is rpcbind running on this machine? stop it):\n{}",
        server.log_text()
    );
    let me = UdpSocket::bind("127.0.0.1:0").unwrap();

    // PMAP GETPORT over UDP: exactly what is served.
    assert_eq!(getport(&me, pm, 100003, 3, 6), u32::from(port));
    assert_eq!(
        getport(&me, pm, 100003, 3, 17),
        0,
        "NFS is not offered over UDP"
    );
    assert_eq!(getport(&me, pm, 100003, 4, 6), 0, "no NFSv4");
    assert_eq!(getport(&me, pm, 100005, 3, 17), u32::from(port));
    assert_eq!(getport(&me, pm, 100021, 4, 17), u32::from(port));
    assert_eq!(getport(&me, pm, 100024, 1, 6), u32::from(port));
    assert_eq!(getport(&me, pm, 100227, 3, 6), 0, "no NFS_ACL");

    // rpcbind v4 GETADDR over TCP: a universal address of the NFS port.
    let mut args = words(&[100003, 3]);
    opaque(&mut args, b"tcp");
    opaque(&mut args, b"");
    opaque(&mut args, b"");
    let r = tcp_call(pm, 7, 100000, 4, 3, &args);
    assert_eq!(accept_stat(&r), 0);
    let len = word(&r, 6) as usize;
    let uaddr = String::from_utf8(r[28..28 + len].to_vec()).unwrap();
    assert_eq!(uaddr, format!("{ip}.{}.{}", port >> 8, port & 0xff));

    // NFSv4 gets PROG_MISMATCH 3..3 (Linux then mounts v3 at once), NFS_ACL and unknown
    // programs PROG_UNAVAIL, over either transport and port.
    let nfs: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let v4 = tcp_call(nfs, 8, 100003, 4, 0, &[]);
    assert_eq!((accept_stat(&v4), word(&v4, 6), word(&v4, 7)), (2, 3, 3));
    assert_eq!(accept_stat(&tcp_call(pm, 9, 100227, 3, 0, &[])), 1);
    assert_eq!(
        accept_stat(&udp_call(&me, nfs, 10, 100003, 3, 0, &[])),
        1,
        "NFS over UDP"
    );
    assert_eq!(accept_stat(&udp_call(&me, nfs, 11, 400_000, 1, 0, &[])), 1);

    // MOUNT over UDP: the export list and a mount.
    let exports = udp_call(&me, nfs, 12, 100005, 3, 5, &[]);
    assert_eq!(accept_stat(&exports), 0);
    assert!(String::from_utf8_lossy(&exports).contains("/share"));
    let mut path = Vec::new();
    opaque(&mut path, b"/share");
    let mnt = udp_call(&me, nfs, 13, 100005, 3, 1, &path);
    assert_eq!((accept_stat(&mnt), word(&mnt, 6)), (0, 0), "MNT3_OK");
    // Garbage over UDP: GARBAGE_ARGS, and the server goes on.
    assert_eq!(
        accept_stat(&udp_call(&me, nfs, 14, 100005, 3, 1, &[0xff; 8])),
        4
    );
    assert_eq!(
        accept_stat(&udp_call(&me, pm, 15, 100000, 2, 3, &[0; 5])),
        4
    );

    // Real clients that ask the portmapper on 111 and are told no ports: Debian's
    // rpcinfo (rpcbind) and showmount (nfs-common), and libnfs.
    let listing = run("rpcinfo", &["-p", ip]);
    for needle in [
        "100000", "100003", "100005", "100021", "100024", "nfs", "mountd", "nlockmgr", "status",
    ] {
        assert!(
            listing.contains(needle),
            "rpcinfo -p lacks {needle}:\n{listing}"
        );
    }
    assert!(!listing.contains("100227"), "{listing}");
    run("rpcinfo", &["-T", "udp", ip, "100005", "3"]);
    run("rpcinfo", &["-T", "tcp", ip, "100021", "4"]);
    let shown = run("showmount", &["-e", ip]);
    assert!(shown.contains("/share"), "{shown}");
    let listed = run("nfs-ls", &[&format!("nfs://{ip}/share?uid=1000&gid=1000")]);
    assert!(listed.contains("clip.mov"), "{listed}");
}

#[tokio::test]
async fn a_retransmitted_remove_gets_the_first_reply_not_noent() {
    let dir = share_dir();
    let state = tempfile::tempdir().unwrap();
    let share = format!("share={}", dir.path().display());
    let server = ServerProcess::start(&["--state-dir", state.path().to_str().unwrap(), &share]);
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = c.root.clone();
    c.create(&root, "take-1.mov", 0o644).await.unwrap();
    let mut args = Vec::new();
    opaque(&mut args, &root.data.to_vec());
    opaque(&mut args, b"take-1.mov");
    let to: SocketAddr = server.addr;
    let first = tcp_call(to, 0xabc, 100003, 3, 12, &args);
    assert_eq!((accept_stat(&first), word(&first, 6)), (0, 0), "REMOVE ok");
    assert!(!dir.path().join("take-1.mov").exists());
    // The reply was "lost": the client reconnects and sends the call again, same xid.
    let again = tcp_call(to, 0xabc, 100003, 3, 12, &args);
    assert_eq!(again, first, "the retransmission gets the first reply");
    // A new call (new xid) is carried out: NOENT.
    let fresh = tcp_call(to, 0xabd, 100003, 3, 12, &args);
    assert_eq!(word(&fresh, 6), 2, "NFS3ERR_NOENT");
}

/// A client's RPC service on 127.0.0.2 (its portmapper, lock manager or statd): answers
/// every call with `results` and passes on (program, procedure, arguments).
fn fake_service(
    socket: UdpSocket,
    results: impl Fn(u32, u32, &[u8]) -> Vec<u8> + Send + 'static,
) -> mpsc::Receiver<(u32, u32, Vec<u8>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let call = &buf[..n];
            let (xid, prog, proc_) = (word(call, 0), word(call, 3), word(call, 5));
            // Skip the credential and verifier to reach the arguments.
            let cred_len = word(call, 7) as usize;
            let at = 32 + cred_len.div_ceil(4) * 4;
            let verf_len = word(&call[at..], 1) as usize;
            let args = call[at + 8 + verf_len.div_ceil(4) * 4..].to_vec();
            let mut reply = words(&[xid, 1, 0, 0, 0, 0]);
            reply.extend_from_slice(&results(prog, proc_, &args));
            let _ = socket.send_to(&reply, from);
            if tx.send((prog, proc_, args)).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_for(
    server: &ServerProcess,
    rx: &mpsc::Receiver<(u32, u32, Vec<u8>)>,
    prog: u32,
    proc_: u32,
    within: Duration,
) -> Vec<u8> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((p, q, args)) if p == prog && q == proc_ => return args,
            Ok(_) => {}
            Err(_) => panic!(
                "no call of program {prog} procedure {proc_} within {within:?}; server log:\n{}",
                server.log_text()
            ),
        }
    }
}

/// Client B's services on 127.0.0.2: a portmapper naming its lock manager and statd,
/// a lock manager that takes every grant, and a statd that answers with void. The
/// server finds every client's portmapper on `portmap_port`
/// (`RUSHES_CLIENT_PORTMAP_PORT`).
struct ClientB {
    portmap_port: u16,
    /// Held so the portmapper keeps answering (it stops when nobody listens).
    _portmap_calls: mpsc::Receiver<(u32, u32, Vec<u8>)>,
    lockd_calls: mpsc::Receiver<(u32, u32, Vec<u8>)>,
    statd_calls: mpsc::Receiver<(u32, u32, Vec<u8>)>,
}

impl ClientB {
    fn start() -> ClientB {
        let lockd = UdpSocket::bind("127.0.0.2:0").unwrap();
        let statd = UdpSocket::bind("127.0.0.2:0").unwrap();
        let portmap = UdpSocket::bind("127.0.0.2:0").unwrap();
        let (lockd_port, statd_port) = (
            lockd.local_addr().unwrap().port(),
            statd.local_addr().unwrap().port(),
        );
        let portmap_port = portmap.local_addr().unwrap().port();
        let portmap_calls = fake_service(portmap, move |_, _, args| {
            let prog = u32::from_be_bytes(args[..4].try_into().unwrap());
            let port = match prog {
                NLM => lockd_port,
                NSM => statd_port,
                _ => 0,
            };
            words(&[u32::from(port)])
        });
        let lockd_calls = fake_service(lockd, |_, proc_, _| {
            let mut r = Vec::new();
            if proc_ == 5 {
                opaque(&mut r, b"cookie");
                r.extend_from_slice(&words(&[0]));
            }
            r
        });
        let statd_calls = fake_service(statd, |_, _, _| Vec::new());
        ClientB {
            portmap_port,
            _portmap_calls: portmap_calls,
            lockd_calls,
            statd_calls,
        }
    }

    /// `rushesd host` serving a new share folder with `extra` arguments, finding every
    /// client's portmapper on B's port; with the share and state folders it uses.
    fn serve(&self, extra: &[&str]) -> (tempfile::TempDir, tempfile::TempDir, ServerProcess) {
        let dir = share_dir();
        let state = tempfile::tempdir().unwrap();
        let share = format!("share={}", dir.path().display());
        let mut args = vec!["--state-dir", state.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&share);
        let server = ServerProcess::start_at(
            "127.0.0.1:0".parse().unwrap(),
            &args,
            &[("RUSHES_CLIENT_PORTMAP_PORT", &self.portmap_port.to_string())],
        );
        (dir, state, server)
    }
}

#[tokio::test]
async fn nlm_locks_conflict_are_granted_by_callback_and_are_reclaimed_after_a_restart() {
    // Client B, on 127.0.0.2: a portmapper naming its lock manager and statd.
    let b_client = ClientB::start();
    let (lockd_calls, statd_calls) = (&b_client.lockd_calls, &b_client.statd_calls);
    let (dir, _state, mut server) = b_client.serve(&["--grace-period", "15"]);
    let mut c = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = c.root.clone();
    let fh = c
        .create(&root, "bin.avb", 0o644)
        .await
        .unwrap()
        .data
        .to_vec();
    let file = dir.path().join("bin.avb");
    let nfs = server.addr;
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.2:0").unwrap();

    // A locks the file; B sees A as the holder and cannot lock it; nor can a local program.
    assert_eq!(
        nlm_stat(&udp_call(
            &a,
            nfs,
            1,
            NLM,
            4,
            2,
            &lock_args(&fh, 11, false, false)
        )),
        0
    );
    let test = udp_call(&b, nfs, 2, NLM, 4, 1, &test_args(&fh, 22));
    assert_eq!(nlm_stat(&test), 1, "DENIED");
    assert_eq!(word(&test, 11), 11, "the holder is A's svid");
    assert_eq!(
        nlm_stat(&udp_call(
            &b,
            nfs,
            3,
            NLM,
            4,
            2,
            &lock_args(&fh, 22, false, false)
        )),
        1
    );
    assert!(!local_lock_free(&file), "NLM locks are kernel locks");

    // B asks to wait; once A unlocks, B's lock manager is called back with GRANTED.
    assert_eq!(
        nlm_stat(&udp_call(
            &b,
            nfs,
            4,
            NLM,
            4,
            2,
            &lock_args(&fh, 22, true, false)
        )),
        3,
        "BLOCKED"
    );
    assert_eq!(
        nlm_stat(&udp_call(&a, nfs, 5, NLM, 4, 4, &unlock_args(&fh, 11))),
        0
    );
    let granted = wait_for(&server, lockd_calls, NLM, 5, Duration::from_secs(10));
    assert!(
        granted.windows(8).any(|w| w == b"22@suite"),
        "GRANTED names B's lock"
    );
    let test = udp_call(&a, nfs, 6, NLM, 4, 1, &test_args(&fh, 11));
    assert_eq!(
        (nlm_stat(&test), word(&test, 11)),
        (1, 22),
        "B holds it now"
    );
    assert!(!local_lock_free(&file));

    // The asynchronous form macOS uses: TEST_MSG is answered by a TEST_RES call to the
    // asking client's lock manager.
    let r = udp_call(&b, nfs, 7, NLM, 4, 6, &test_args(&fh, 33));
    assert_eq!(accept_stat(&r), 0);
    let res = wait_for(&server, lockd_calls, NLM, 11, Duration::from_secs(10));
    assert_eq!(&res[4..10], b"cookie");
    assert_eq!(
        u32::from_be_bytes(res[12..16].try_into().unwrap()),
        1,
        "TEST_RES: DENIED"
    );
    // Malformed NLM: GARBAGE_ARGS.
    assert_eq!(
        accept_stat(&udp_call(&a, nfs, 8, NLM, 4, 2, &[0, 0, 0, 200])),
        4
    );

    // rushesd restarts: B is told (SM_NOTIFY to its statd), new locks wait out the grace
    // period, and B's reclaim is granted and held by the kernel again.
    server.restart();
    let nfs = server.addr;
    let notify = wait_for(&server, statd_calls, NSM, 6, Duration::from_secs(20));
    assert_eq!(
        &notify[4..13],
        b"127.0.0.1",
        "SM_NOTIFY names the server as B knows it"
    );
    assert_eq!(
        u32::from_be_bytes(notify[16..20].try_into().unwrap()) % 2,
        1,
        "state is odd while up"
    );
    assert!(
        local_lock_free(&file),
        "the restart dropped the kernel locks"
    );
    assert_eq!(
        nlm_stat(&udp_call(
            &a,
            nfs,
            9,
            NLM,
            4,
            2,
            &lock_args(&fh, 11, false, false)
        )),
        4,
        "DENIED_GRACE_PERIOD"
    );
    assert_eq!(
        nlm_stat(&udp_call(
            &b,
            nfs,
            10,
            NLM,
            4,
            2,
            &lock_args(&fh, 22, false, true)
        )),
        0,
        "reclaim granted"
    );
    assert!(!local_lock_free(&file));

    // B reboots and says so: its locks are released.
    let mut notice = Vec::new();
    opaque(&mut notice, b"suite-3");
    notice.extend_from_slice(&words(&[5]));
    assert_eq!(accept_stat(&udp_call(&b, nfs, 11, NSM, 1, 6, &notice)), 0);
    assert!(local_lock_free(&file), "SM_NOTIFY released B's locks");
    assert!(server.is_running());
}

#[tokio::test]
async fn an_unreachable_client_and_a_lock_flood_hold_up_nobody_else() {
    use std::io::Write;
    // B (127.0.0.2) answers callbacks; C (127.0.0.3) has gone silent: its portmapper's
    // port takes datagrams and never answers, so every call to it waits out its tries.
    let b_client = ClientB::start();
    let c_pm = UdpSocket::bind(("127.0.0.3", b_client.portmap_port)).unwrap();
    let lockd_calls = &b_client.lockd_calls;
    let (_dir, _state, mut server) = b_client.serve(&[]);
    let mut nfs_client = Nfs::mount(server.port(), "/share", &alice()).await.unwrap();
    let root = nfs_client.root.clone();
    let mut handles = Vec::new();
    for name in ["a.avb", "b.avb", "c.avb", "d.avb", "e.avb", "shared.avb"] {
        let fh = nfs_client.create(&root, name, 0o644).await.unwrap();
        handles.push(fh.data.to_vec());
    }
    let (c_files, shared) = (&handles[..5], &handles[5]);
    let nfs = server.addr;
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.2:0").unwrap();
    let c = UdpSocket::bind("127.0.0.3:0").unwrap();
    let mut xid = 100;
    let mut call = |from: &UdpSocket, proc_: u32, args: Vec<u8>| {
        xid += 1;
        nlm_stat(&udp_call(from, nfs, xid, NLM, 4, proc_, &args))
    };

    // A holds every file; C waits for five of them, B for the last.
    for fh in &handles {
        assert_eq!(call(&a, 2, lock_args(fh, 11, false, false)), 0);
    }
    for fh in c_files {
        assert_eq!(call(&c, 2, lock_args(fh, 33, true, false)), 3, "BLOCKED");
    }
    assert_eq!(
        call(&b, 2, lock_args(shared, 22, true, false)),
        3,
        "BLOCKED"
    );
    // A lets go of C's files first, then of B's: five grants for the silent C are
    // queued ahead of B's, and each call to C waits seconds for an answer.
    for fh in c_files {
        assert_eq!(call(&a, 4, unlock_args(fh, 11)), 0);
    }
    assert_eq!(call(&a, 4, unlock_args(shared, 11)), 0);
    let granted = wait_for(&server, lockd_calls, NLM, 5, Duration::from_secs(3));
    assert!(
        granted.windows(8).any(|w| w == b"22@suite"),
        "B is told at once"
    );
    // C's grants are released rather than kept by a client that cannot be told: after
    // the first call to it times out, the rest are given up without waiting.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut free = 0;
    while free < c_files.len() {
        assert!(
            Instant::now() < deadline,
            "C's unannounced locks are still held; server log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
        free = c_files
            .iter()
            .filter(|fh| call(&a, 1, test_args(fh, 11)) == 0)
            .count();
    }
    drop(c_pm);

    // A floods blocking requests for B's file over TCP, one owner each, without waiting
    // for answers. A meets its own limit; C still queues and still locks.
    let mut flood = std::net::TcpStream::connect(nfs).unwrap();
    flood
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut replies = flood.try_clone().unwrap();
    const FLOOD: u32 = 5000;
    let reader = std::thread::spawn(move || {
        let mut stats = std::collections::HashMap::<u32, u32>::new();
        for _ in 0..FLOOD {
            let r = rushes_tests::read_reply(&mut replies).expect("every flooded call is answered");
            *stats.entry(nlm_stat(&r)).or_default() += 1;
        }
        stats
    });
    let shared_fh = shared.clone();
    let writer = std::thread::spawn(move || {
        for svid in 0..FLOOD {
            let args = lock_args(&shared_fh, 1000 + svid, true, false);
            let record = rushes_tests::rpc_record(0x10000 + svid, NLM, 4, 2, None, &args);
            flood.write_all(&record).unwrap();
        }
    });
    assert_eq!(
        call(&c, 2, lock_args(&handles[0], 34, false, false)),
        0,
        "C locks"
    );
    writer.join().unwrap();
    let stats = reader.join().unwrap();
    let (blocked, no_locks) = (
        stats.get(&3).copied().unwrap_or(0),
        stats.get(&2).copied().unwrap_or(0),
    );
    assert!(
        blocked > 0 && no_locks > 0,
        "the flood met A's limit: {stats:?}"
    );
    assert_eq!(blocked + no_locks, FLOOD, "{stats:?}");
    assert_eq!(
        call(&c, 2, lock_args(shared, 35, true, false)),
        3,
        "C's request still queues (BLOCKED, not DENIED_NOLOCKS)"
    );
    assert!(server.is_running());
}
