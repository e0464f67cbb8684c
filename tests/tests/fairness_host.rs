//! Hostile and greedy clients against `rushesd host` on loopback: one client's flood of
//! pipelined READs does not hold up another client's or another user's queued calls, a
//! client sending garbage cannot drown the log, and half-sent records (slowloris) hold
//! neither connections nor memory for long, while another client keeps being served. Clients are played from
//! several loopback addresses (127.0.0.x) so that each is a machine of its own to the
//! server.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rushes_tests::bench::{self, Pipe};
use rushes_tests::nfs3_client::nfs3_types::nfs3::{self as t, nfs_fh3};
use rushes_tests::rawrpc::tcp_from;
use rushes_tests::{rpc_record, Nfs, ServerProcess, User};

fn share_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(d.path().join("clip"), b"still here").unwrap();
    d
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Mount the share from 127.0.0.1 and read the clip: the well-behaved client.
async fn read_clip(port: u16) -> Vec<u8> {
    let mut c = Nfs::mount(port, "/demo", &User::new(1000, 1000))
        .await
        .expect("mount");
    let r = c.root.clone();
    let clip = c.lookup(&r, "clip").await.expect("lookup");
    c.read(&clip, 0, 100).await.expect("read").0
}

/// Whether the server has closed `s` (end of stream or reset) within `wait`.
fn closed_by_server(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn log_lines_after(server: &ServerProcess, skip: usize) -> Vec<String> {
    server
        .log_text()
        .lines()
        .skip(skip)
        .map(str::to_string)
        .collect()
}

/// One connection's worth of garbage of the `kind`th sort, from `from`.
fn send_garbage(from: IpAddr, to: SocketAddr, kind: usize) -> std::io::Result<()> {
    let mut s = tcp_from(from, to)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    match kind {
        // A record announcing 2 GiB.
        0 => s.write_all(&0xffff_fff0u32.to_be_bytes())?,
        // An RPC header cut off after the program number.
        1 => {
            let mut r = 16u32.to_be_bytes().to_vec();
            r[0] |= 0x80;
            for w in [77u32, 0, 2, 100003] {
                r.extend_from_slice(&w.to_be_bytes());
            }
            s.write_all(&r)?
        }
        // GETATTR whose handle's length runs past the record.
        _ => s.write_all(&rpc_record(
            78,
            100003,
            3,
            1,
            Some(&User::new(1000, 1000)),
            &[0, 0, 0, 40, 1, 2],
        ))?,
    }
    // Wait for the answer or the close, as a client that wants to be noticed does.
    let mut buf = [0u8; 256];
    let _ = s.read(&mut buf);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_client_writes_a_few_lines_and_others_are_served() {
    let dir = share_dir();
    let state = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&[
        "--state-dir",
        state.path().to_str().unwrap(),
        "--warning-window",
        "3",
        &format!("demo={}", dir.path().display()),
    ]);
    let (addr, port) = (server.addr, server.port());
    let skip = server.log_text().lines().count();

    let flooder = std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0usize;
        while started.elapsed() < Duration::from_secs(4) {
            if send_garbage(ip(9), addr, sent % 3).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    // Meanwhile a well-behaved client is served, again and again.
    let mut reads = 0;
    while !flooder.is_finished() {
        assert_eq!(read_clip(port).await, b"still here");
        reads += 1;
    }
    let sent = flooder.join().unwrap();
    assert!(
        sent >= 300,
        "the flooder got only {sent} connections through: the bound was not tested"
    );
    assert!(reads >= 1);
    // The window (3 s) ends and the watchdog (once a second) writes what it held back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lines = log_lines_after(&server, skip);
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    // Three kinds, each at most once at the start of a window and once at its end, over
    // two or three windows.
    assert!(
        warnings.len() <= 18,
        "{sent} bad connections wrote {} warnings:\n{}",
        warnings.len(),
        lines.join("\n")
    );
    for kind in [
        "oversized record",
        "malformed call",
        "undecodable arguments",
    ] {
        assert!(
            warnings
                .iter()
                .any(|l| l.contains(&format!("kind=\"{kind}\"")) && l.contains("127.0.0.9")),
            "the first {kind} warning must get through:\n{}",
            lines.join("\n")
        );
    }
    let held_back: u64 = warnings
        .iter()
        .filter(|l| l.contains("more like this from 127.0.0.9 in the last 3 s"))
        .filter_map(|l| {
            l.split("held_back=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    eprintln!(
        "{sent} bad connections, {reads} good reads meanwhile: {} warnings, {held_back} held back",
        warnings.len()
    );
    assert!(
        held_back as usize + warnings.len() >= sent,
        "the lines must account for every bad connection ({sent}); they say {held_back} held back:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_records_hold_few_connections_little_memory_and_not_for_long() {
    let dir = share_dir();
    let state = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&[
        "--state-dir",
        state.path().to_str().unwrap(),
        "--record-timeout",
        "2",
        "--max-connections-per-client",
        "8",
        &format!("demo={}", dir.path().display()),
    ]);
    let (addr, port) = (server.addr, server.port());
    assert_eq!(read_clip(port).await, b"still here");
    let rss_before = server.rss_kib().unwrap();
    let skip = server.log_text().lines().count();

    // 20 connections from one machine, each announcing a 1 MiB call and sending 64 KiB.
    let mut half_sent = Vec::new();
    for _ in 0..20 {
        let mut s = tcp_from(ip(7), addr).unwrap();
        let _ = s.write_all(&((1u32 << 20) | 0x8000_0000).to_be_bytes());
        let _ = s.write_all(&vec![0u8; 64 * 1024]);
        half_sent.push(s);
    }
    // A dribbler from another machine: a byte every 200 ms, so it always seems busy.
    let dribbler = std::thread::spawn(move || {
        let mut s = tcp_from(ip(6), addr).unwrap();
        s.write_all(&((1u32 << 20) | 0x8000_0000).to_be_bytes())
            .unwrap();
        let started = Instant::now();
        while s.write_all(&[0]).is_ok() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(200));
        }
        started.elapsed()
    });
    std::thread::sleep(Duration::from_millis(300));
    let still_open = half_sent
        .iter()
        .filter(|s| !closed_by_server(s, Duration::from_millis(100)))
        .count();
    assert_eq!(
        still_open, 8,
        "one client gets 8 connections; the rest are closed at once"
    );
    // Meanwhile the others are served.
    assert_eq!(read_clip(port).await, b"still here");
    let grown_mib = server.rss_kib().unwrap().saturating_sub(rss_before) >> 10;
    assert!(
        grown_mib < 48,
        "half-sent records grew the server by {grown_mib} MiB"
    );

    // Past the record timeout (2 s) and the watchdog's second, every half-sent record's
    // connection is closed, the dribbler's too.
    for s in &half_sent {
        assert!(
            closed_by_server(s, Duration::from_secs(5)),
            "a half-sent record's connection is still open after its timeout"
        );
    }
    let dribbled = dribbler.join().unwrap();
    eprintln!("{still_open} half-sent connections held, grown {grown_mib} MiB, dribbler cut after {dribbled:?}");
    assert!(
        dribbled >= Duration::from_secs(2) && dribbled < Duration::from_secs(8),
        "the dribbler was cut off after {dribbled:?}"
    );
    assert!(server.is_running());
    assert_eq!(read_clip(port).await, b"still here");
    let lines = log_lines_after(&server, skip);
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    for from in ["127.0.0.7", "127.0.0.6"] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("kind=\"half-sent record\"") && l.contains(from))
                .count(),
            1,
            "one line for {from}'s half-sent records:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(
        count("kind=\"connection refused\""),
        1,
        "one line for the 12 refused connections:\n{}",
        lines.join("\n")
    );
}

/// The handles of files in the share, looked up as uid 1000.
async fn handles<const N: usize>(port: u16, names: [&str; N]) -> [nfs_fh3; N] {
    let mut c = Nfs::mount(port, "/demo", &User::new(1000, 1000))
        .await
        .unwrap();
    let r = c.root.clone();
    let mut found = Vec::new();
    for name in names {
        found.push(c.lookup(&r, name).await.unwrap());
    }
    found.try_into().expect("one handle a name")
}

/// Render replies that come while `editor` sends two GETATTRs at once (pipelined, so the
/// server queues them as it queues the flood) and waits for both answers.
fn render_replies_meanwhile(editor: &mut Pipe, fh: &nfs_fh3, answered: &AtomicUsize) -> usize {
    let getattr = bench::pack(&t::GETATTR3args { object: fh.clone() });
    let before = answered.load(Ordering::Relaxed);
    editor
        .run(2, 2, |_| (1, getattr.clone()), bench::expect_ok)
        .expect("the editor's GETATTRs");
    answered.load(Ordering::Relaxed) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waits_behind_one_call_of_anothers_flood_not_behind_its_backlog() {
    let dir = share_dir();
    std::fs::write(dir.path().join("frames"), vec![7u8; 16 << 20]).unwrap();
    let state = tempfile::tempdir().unwrap();
    // One worker: the order in which queued calls are taken is all there is to see.
    let server = ServerProcess::start(&[
        "--state-dir",
        state.path().to_str().unwrap(),
        "--nfs-workers",
        "1",
        &format!("demo={}", dir.path().display()),
    ]);
    let addr = server.addr;
    let [frames, clip] = handles(server.port(), ["frames", "clip"]).await;

    // The render node (127.0.0.3, uid 1000) keeps 64 READs of 1 MiB in flight.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let render = {
        let (stop, answered, frames) = (stop.clone(), answered.clone(), frames.clone());
        std::thread::spawn(move || {
            let mut pipe = Pipe::connect_from(ip(3), addr, User::new(1000, 1000)).unwrap();
            pipe.keep_busy(64, &stop, &answered, |i| {
                (6, bench::read_args(&frames, (i as u64 % 16) << 20, 1 << 20))
            })
        })
    };
    while answered.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Another machine, and another user of the render node, each with calls queued
    // behind the flood: each waits for the call being answered and at most a few more,
    // where first come, first served would make it wait for the 64.
    let mut suite = Pipe::connect_from(ip(2), addr, User::new(1000, 1000)).unwrap();
    let mut other_user = Pipe::connect_from(ip(3), addr, User::new(2000, 2000)).unwrap();
    let mut waits = Vec::new();
    for _ in 0..15 {
        waits.push(render_replies_meanwhile(&mut suite, &clip, &answered));
        waits.push(render_replies_meanwhile(&mut other_user, &clip, &answered));
    }
    stop.store(true, Ordering::Relaxed);
    let served = render.join().unwrap().expect("the render client's READs");
    waits.sort();
    let median = waits[waits.len() / 2];
    eprintln!("render replies while two queued GETATTRs waited: median {median}, all {waits:?}; render served {served}");
    assert!(
        median <= 8,
        "queued GETATTRs waited for a median of {median} of the flood's 1 MiB READs: {waits:?}"
    );
    assert!(served > 200);
}

/// MB/s that `pipe` reads from `fh` (16 MiB long), `depth` 1 MiB READs in flight, for
/// `secs` seconds.
fn read_rate(mut pipe: Pipe, fh: nfs_fh3, depth: usize, secs: f64) -> f64 {
    read_rate_on(&mut pipe, &fh, depth, secs)
}

/// [`read_rate`] on a connection that stays open for more.
fn read_rate_on(pipe: &mut Pipe, fh: &nfs_fh3, depth: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let answered = AtomicUsize::new(0);
    let timer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let done = pipe
        .keep_busy(depth, &stop, &answered, |i| {
            (6, bench::read_args(fh, (i as u64 % 16) << 20, 1 << 20))
        })
        .expect("every READ answered: a capped client is slowed, never cut off");
    timer.join().unwrap();
    done as f64 * (1 << 20) as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// A server whose config has one `[[rate]]` rule, with what it needs kept alive.
struct RateServer {
    server: ServerProcess,
    _files: [tempfile::TempDir; 2],
    _config: tempfile::NamedTempFile,
}

/// Serve a share holding a 16 MiB `frames` under the `[[rate]]` rule `rule`; the server
/// and the handle of `frames`.
async fn serve_with_rate(rule: &str, extra: &[&str]) -> (RateServer, nfs_fh3) {
    let dir = share_dir();
    std::fs::write(dir.path().join("frames"), vec![7u8; 16 << 20]).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "[[share]]\nname = \"demo\"\npath = \"{}\"\n",
        dir.path().display()
    )
    .unwrap();
    if !rule.is_empty() {
        write!(config, "\n[[rate]]\n{rule}\n").unwrap();
    }
    let mut args = vec![
        "--state-dir",
        state.path().to_str().unwrap(),
        "--config",
        config.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args);
    let [frames] = handles(server.port(), ["frames"]).await;
    let server = RateServer {
        server,
        _files: [dir, state],
        _config: config,
    };
    (server, frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_group_of_clients_is_slowed_to_its_cap_and_the_others_are_not() {
    let api = tempfile::tempdir().unwrap();
    let sock = api.path().join("api.sock");
    let (server, frames) = serve_with_rate(
        "name = \"render-nodes\"\nclients = [\"127.0.0.3/32\", \"127.0.0.4/32\"]\ncap_mb_s = 40",
        &["--api", sock.to_str().unwrap()],
    )
    .await;
    let addr = server.server.addr;
    let user = || User::new(1000, 1000);

    // Two render nodes under one cap, pipelining, while a suite that is not capped reads.
    let nodes: Vec<_> = [3, 4]
        .into_iter()
        .map(|n| {
            let pipe = Pipe::connect_from(ip(n), addr, user()).unwrap();
            let fh = frames.clone();
            std::thread::spawn(move || read_rate(pipe, fh, 16, 3.0))
        })
        .collect();
    let suite = read_rate(
        Pipe::connect_from(ip(2), addr, user()).unwrap(),
        frames.clone(),
        4,
        3.0,
    );
    let together: f64 = nodes.into_iter().map(|n| n.join().unwrap()).sum();
    // One call at a time, a node is held to the cap as well.
    let alone = read_rate(
        Pipe::connect_from(ip(3), addr, user()).unwrap(),
        frames.clone(),
        1,
        2.0,
    );
    eprintln!("render nodes together {together:.1} MB/s, one alone {alone:.1} MB/s, the suite {suite:.1} MB/s");
    // The cap (40 MB/s) plus what the bucket held at the start (4 MB over 3 s).
    assert!(
        together <= 40.0 * 1.15 + 2.0,
        "two capped nodes read {together:.1} MB/s together under a 40 MB/s cap"
    );
    assert!(
        together >= 20.0,
        "the capped nodes were starved: {together:.1} MB/s"
    );
    assert!(
        alone <= 40.0 * 1.15 + 2.0,
        "one-at-a-time reads passed the cap: {alone:.1} MB/s"
    );
    // Well past anything the cap lets through (46 MB/s at most, above); not twice the
    // cap, which a dev-build rushesd beside an emulated guest in CI did not reach (76 MB/s).
    assert!(
        suite > 1.5 * 40.0,
        "a client under no cap was held back: {suite:.1} MB/s"
    );
    assert!(server.server.log_text().contains("rate rule in force"));

    // The API shows the rule and what each node it covers got; the suite is under none.
    let status: rushes_api::Rates = rushes_api::Client::new(sock).get("/v1/rates").unwrap();
    let rates = status.rules;
    assert_eq!(rates.len(), 1);
    let rule = &rates[0];
    assert_eq!(
        (rule.name.as_str(), rule.cap_mb_s, rule.reserve_mb_s),
        ("render-nodes", Some(40), None)
    );
    assert_eq!(rule.clients, ["127.0.0.3/32", "127.0.0.4/32"]);
    let mut getting: Vec<&str> = rule.getting.iter().map(|c| c.address.as_str()).collect();
    getting.sort();
    assert_eq!(getting, ["127.0.0.3", "127.0.0.4"], "{rates:?}");
    assert!(rule.getting.iter().all(|c| c.mb_s > 0.0), "{rates:?}");
    assert!((rule.now_mb_s - rule.getting.iter().map(|c| c.mb_s).sum::<f64>()).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_set_through_the_api_is_in_force_at_once_and_a_reservation_is_checked() {
    let api = tempfile::tempdir().unwrap();
    let sock = api.path().join("api.sock");
    let (server, frames) = serve_with_rate("", &["--api", sock.to_str().unwrap()]).await;
    let addr = server.server.addr;
    let c = rushes_api::Client::new(&sock);
    // One render node reading on one connection all along: rules change under it.
    let node = Pipe::connect_from(ip(3), addr, User::new(1000, 1000)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, answered, fh) = (stop.clone(), answered.clone(), frames.clone());
        let mut node = node;
        std::thread::spawn(move || {
            node.keep_busy(16, &stop, &answered, |i| {
                (6, bench::read_args(&fh, (i as u64 % 16) << 20, 1 << 20))
            })
            .expect("every READ answered: a capped client is slowed, never cut off")
        })
    };
    // MB/s over `secs` after `settle` seconds, from the replies counted meanwhile.
    let rate = |settle: f64, secs: f64| {
        std::thread::sleep(Duration::from_secs_f64(settle));
        let (from, at) = (answered.load(Ordering::Relaxed), Instant::now());
        std::thread::sleep(Duration::from_secs_f64(secs));
        let n = answered.load(Ordering::Relaxed) - from;
        n as f64 * (1 << 20) as f64 / 1e6 / at.elapsed().as_secs_f64()
    };
    let free = rate(0.3, 1.5);
    let cap = rushes_api::SetRate {
        clients: vec!["127.0.0.3/32".into()],
        shares: vec![],
        cap_mb_s: Some(20),
        reserve_mb_s: None,
        before: None,
    };
    c.send("PUT", "/v1/rates/render-nodes", Some(&cap)).unwrap();
    // The calls in flight and the bucket's first 2 MB go by first.
    let capped = rate(1.0, 3.0);
    c.send::<()>("DELETE", "/v1/rates/render-nodes", None)
        .unwrap();
    let freed = rate(0.5, 1.5);
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    eprintln!("one node: {free:.1} MB/s, under a 20 MB/s cap set meanwhile {capped:.1}, after it was removed {freed:.1}");
    assert!(free > 3.0 * 20.0, "uncapped, the node read {free:.1} MB/s");
    assert!(
        capped <= 20.0 * 1.15 + 1.0,
        "the cap set over the API did not hold a connection that was open already: {capped:.1} MB/s"
    );
    assert!(
        freed > 3.0 * 20.0,
        "removed, the cap still held: {freed:.1} MB/s"
    );

    // Rules are kept in the managed config, in the order asked.
    let config = server._files[1].path().join("rushes.toml");
    c.send("PUT", "/v1/rates/render-nodes", Some(&cap)).unwrap();
    let mut all = cap.clone();
    all.clients = vec!["127.0.0.0/8".into()];
    all.cap_mb_s = Some(900);
    c.send("PUT", "/v1/rates/everyone", Some(&all)).unwrap();
    all.before = Some("render-nodes".into());
    c.send("PUT", "/v1/rates/everyone", Some(&all)).unwrap();
    let status: rushes_api::Rates = c.get("/v1/rates").unwrap();
    let names: Vec<&str> = status.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["everyone", "render-nodes"]);
    let kept = std::fs::read_to_string(&config).unwrap();
    assert!(
        kept.find("everyone").unwrap() < kept.find("render-nodes").unwrap(),
        "{kept}"
    );

    // No pool here has a measured read rate: a reservation cannot be promised, and
    // the refusal says why; the rules in force stay as they were.
    let mut playback = cap.clone();
    playback.cap_mb_s = None;
    playback.reserve_mb_s = Some(400);
    let refused = c
        .send("PUT", "/v1/rates/suite-3", Some(&playback))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("no pool's read rate has been measured")
            && refused.contains("400 MB/s")
            && refused.contains("make a pool first"),
        "{refused}"
    );
    let bad = rushes_api::SetRate {
        clients: vec!["suite-3".into()],
        ..cap.clone()
    };
    let refused = c
        .send("PUT", "/v1/rates/suite-3", Some(&bad))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("\"suite-3\" is not a network"),
        "{refused}"
    );
    let status: rushes_api::Rates = c.get("/v1/rates").unwrap();
    assert_eq!(status.rules.len(), 2);
    assert_eq!((status.reserved_mb_s, status.measured_mb_s), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_a_share_holds_the_calls_on_that_share_and_no_others() {
    // Two shares; one client reads from both at once, on two connections.
    let (demo, other) = (share_dir(), share_dir());
    for dir in [&demo, &other] {
        std::fs::write(dir.path().join("frames"), vec![7u8; 16 << 20]).unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let api = tempfile::tempdir().unwrap();
    let sock = api.path().join("api.sock");
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "[[share]]\nname = \"demo\"\npath = \"{}\"\n[[share]]\nname = \"other\"\npath = \"{}\"\n",
        demo.path().display(),
        other.path().display()
    )
    .unwrap();
    let server = ServerProcess::start(&[
        "--state-dir",
        state.path().to_str().unwrap(),
        "--config",
        config.path().to_str().unwrap(),
        "--api",
        sock.to_str().unwrap(),
    ]);
    let [demo_frames] = handles(server.port(), ["frames"]).await;
    let other_frames = {
        let mut c = Nfs::mount(server.port(), "/other", &User::new(1000, 1000))
            .await
            .unwrap();
        let r = c.root.clone();
        c.lookup(&r, "frames").await.unwrap()
    };
    let rule = rushes_api::SetRate {
        clients: vec![],
        shares: vec!["demo".into()],
        cap_mb_s: Some(20),
        reserve_mb_s: None,
        before: None,
    };
    let c = rushes_api::Client::new(&sock);
    c.send("PUT", "/v1/rates/demo-share", Some(&rule)).unwrap();
    // A rule may not name a share that does not exist.
    let refused = c
        .send(
            "PUT",
            "/v1/rates/nowhere",
            Some(&rushes_api::SetRate {
                shares: vec!["nowhere".into()],
                ..rule.clone()
            }),
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("there is no share \"nowhere\""),
        "{refused}"
    );

    let addr = server.addr;
    let user = || User::new(1000, 1000);
    let on_demo = {
        let pipe = Pipe::connect_from(ip(3), addr, user()).unwrap();
        std::thread::spawn(move || read_rate(pipe, demo_frames, 16, 3.0))
    };
    let on_other = read_rate(
        Pipe::connect_from(ip(3), addr, user()).unwrap(),
        other_frames,
        16,
        3.0,
    );
    let on_demo = on_demo.join().unwrap();
    eprintln!("one client: {on_demo:.1} MB/s from the share capped at 20 MB/s, {on_other:.1} MB/s from the other");
    assert!(
        on_demo <= 20.0 * 1.15 + 1.0,
        "the share's cap did not hold: {on_demo:.1} MB/s"
    );
    assert!(
        on_other > 3.0 * 20.0,
        "the same client's calls on another share were held: {on_other:.1} MB/s"
    );
    let status: rushes_api::Rates = c.get("/v1/rates").unwrap();
    let shown = &status.rules[0];
    assert_eq!(shown.shares, ["demo"]);
    assert!(shown.clients.is_empty());
    assert_eq!(shown.getting.len(), 1, "{status:?}");
    assert_eq!(shown.getting[0].address, "demo");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_client_is_served_before_the_flooders() {
    // More than this server can give (one worker, a debug build): the suite's calls
    // always go first.
    let (server, frames) = serve_with_rate(
        "name = \"suite-3\"\nclients = [\"127.0.0.5/32\"]\nreserve_mb_s = 5000",
        &["--nfs-workers", "1"],
    )
    .await;
    let addr = server.server.addr;
    let user = || User::new(1000, 1000);
    // Three render nodes with 16 READs in flight each, and two suites with 4 each:
    // suite 3 (127.0.0.5) under the reservation, suite 4 (127.0.0.9) not.
    let readers: Vec<_> = [(6, 16), (7, 16), (8, 16), (9, 4)]
        .into_iter()
        .map(|(n, depth)| {
            let pipe = Pipe::connect_from(ip(n), addr, user()).unwrap();
            let fh = frames.clone();
            std::thread::spawn(move || read_rate(pipe, fh, depth, 3.0))
        })
        .collect();
    let reserved = read_rate(
        Pipe::connect_from(ip(5), addr, user()).unwrap(),
        frames.clone(),
        4,
        3.0,
    );
    let rates: Vec<f64> = readers.into_iter().map(|f| f.join().unwrap()).collect();
    let unreserved = rates[3];
    eprintln!(
        "suite 3 (reserved) {reserved:.1} MB/s, suite 4 {unreserved:.1} MB/s, render nodes {:?}",
        &rates[..3]
    );
    // Alone this reads about 2.2x; with QEMU guests busy on the same two cores (make
    // test) it measured 1.42x once. Without the reservation the two suites are the same
    // client and read the same, so 1.25x still says the reservation is honoured.
    assert!(
        reserved >= 1.25 * unreserved,
        "the reserved suite read {reserved:.1} MB/s, the same client without a reservation {unreserved:.1} MB/s"
    );
    assert!(rates.iter().all(|&r| r > 0.0), "best effort still moves");
}
