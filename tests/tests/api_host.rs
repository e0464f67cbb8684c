//! The management API of a real rushesd (host mode, `--api`), through the same client
//! `rushesctl` uses: answers in JSON, refuses bad requests with errors an admin can act
//! on, and reports a damaged config instead of starting empty. Pools themselves need md
//! and run in the guest tests (pools_guest.rs).

use std::path::Path;
use std::time::{Duration, Instant};

use rushes_api::{Alert, Client, Disk, Job, Severity, Share, Status};
use rushes_tests::guest::write_share_file_blocking;
use rushes_tests::ServerProcess;

fn start(state: &Path) -> (ServerProcess, Client) {
    let (server, sock) = ServerProcess::start_with_api(state);
    (server, Client::new(sock))
}

/// (status, error code, message) of a raw request.
fn refused(c: &Client, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let resp = c.raw(method, path, Some(body.as_bytes())).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: error body is not JSON ({e}): {}",
            String::from_utf8_lossy(&resp.body)
        )
    });
    let err = &v["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    (
        resp.status,
        err["code"].as_str().unwrap_or_default().to_string(),
        err["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn the_api_answers_in_json_and_refuses_bad_requests_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, c) = start(dir.path());

    let status: Status = c.get("/v1/status").unwrap();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    let _disks: Vec<Disk> = c.get("/v1/disks").unwrap();
    assert!(c.get::<Vec<Job>>("/v1/jobs").unwrap().is_empty());
    assert!(c.get::<Vec<Share>>("/v1/shares").unwrap().is_empty());
    assert!(c.get::<Vec<Alert>>("/v1/alerts").unwrap().is_empty());
    let doc: serde_json::Value = c.get("/v1/openapi.json").unwrap();
    assert!(doc["paths"]["/v1/pools"]["post"].is_object());

    // Malformed and mistyped requests.
    let (st, code, msg) = refused(&c, "POST", "/v1/pools", r#"{"name": "#);
    assert_eq!((st, code.as_str()), (400, "bad-request"), "{msg}");
    let (st, _, msg) = refused(
        &c,
        "POST",
        "/v1/pools",
        r#"{"name":"m","level":"raid5","disks":["a","b","c"],"colour":1}"#,
    );
    assert!(st == 400 && msg.contains("colour"), "{st} {msg}");
    let (st, _, msg) = refused(
        &c,
        "POST",
        "/v1/pools",
        r#"{"name":"m","level":"raid9","disks":["a"]}"#,
    );
    assert!(st == 400 && msg.contains("raid9"), "{st} {msg}");
    let (st, code, _) = refused(&c, "GET", "/v2/pools", "");
    assert_eq!((st, code.as_str()), (404, "not-found"));
    let (st, code, _) = refused(&c, "PATCH", "/v1/pools", "{}");
    assert_eq!((st, code.as_str()), (405, "method-not-allowed"));
    let (st, code, _) = refused(&c, "GET", "/v1/jobs/abc", "");
    assert_eq!((st, code.as_str()), (400, "bad-request"));

    // Requests that are well formed but cannot be done.
    let (st, code, msg) = refused(
        &c,
        "POST",
        "/v1/pools",
        r#"{"name":"media","level":"raid5","disks":["nvme0n1"]}"#,
    );
    assert_eq!((st, code.as_str()), (400, "too-few-disks"), "{msg}");
    assert!(msg.contains("at least 3"), "{msg}");
    let (st, code, _) = refused(
        &c,
        "POST",
        "/v1/pools",
        r#"{"name":"Media/../x","level":"raid1","disks":["a","b"]}"#,
    );
    assert_eq!((st, code.as_str()), (400, "bad-name"));
    let (st, code, msg) = refused(
        &c,
        "POST",
        "/v1/pools",
        r#"{"name":"media","level":"raid1","disks":["no-such-disk","x"]}"#,
    );
    assert_eq!((st, code.as_str()), (400, "unknown-disk"), "{msg}");
    let (st, code, _) = refused(
        &c,
        "POST",
        "/v1/shares",
        r#"{"name":"../../etc","pool":"media"}"#,
    );
    assert_eq!((st, code.as_str()), (400, "bad-name"));
    let (st, code, _) = refused(
        &c,
        "POST",
        "/v1/shares",
        r#"{"name":"demo","pool":"media"}"#,
    );
    assert_eq!((st, code.as_str()), (409, "exists"));
    let (st, code, _) = refused(
        &c,
        "POST",
        "/v1/shares",
        r#"{"name":"projects","pool":"media"}"#,
    );
    assert_eq!((st, code.as_str()), (404, "not-found"));
    let (st, code, _) = refused(&c, "DELETE", "/v1/pools/media", r#"{"confirm":"media"}"#);
    assert_eq!((st, code.as_str()), (404, "not-found"));
    let (st, code, _) = refused(&c, "PUT", "/v1/shares/projects", r#"{"smb":false}"#);
    assert_eq!((st, code.as_str()), (404, "not-found"));
    let (st, _, msg) = refused(&c, "PUT", "/v1/shares/demo", r#"{"time_machin":true}"#);
    assert_eq!(st, 400, "a misspelt option is refused, not ignored: {msg}");

    // The typed client turns an API error into words with the hint.
    let err = c
        .post::<_, Job>(
            "/v1/pools",
            &serde_json::json!({"name":"m","level":"raid6","disks":["a","b"]}),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some("too-few-disks"));
    assert!(err.to_string().contains("hint:"), "{err}");
}

#[test]
fn a_damaged_config_falls_back_to_the_previous_generation_with_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let torn = "[[pool]]\nname = \"media\"\nlevel = ";
    std::fs::write(dir.path().join("rushes.toml"), torn).unwrap();
    std::fs::write(
        dir.path().join("rushes.toml.prev"),
        "hostname = \"bay-nas\"\n",
    )
    .unwrap();
    let (server, c) = start(dir.path());

    let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
    let alert = alerts
        .iter()
        .find(|a| a.id == "config-fallback")
        .unwrap_or_else(|| panic!("no config alert: {alerts:?}\n{}", server.log_text()));
    assert_eq!(alert.severity, Severity::Warning);
    assert!(
        alert.message.contains("previous generation"),
        "{}",
        alert.message
    );
    // Nothing was overwritten: the damaged file is still there to be looked at.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rushes.toml")).unwrap(),
        torn
    );
    // And the shares given on the command line are served regardless.
    assert!(server.log_text().contains("exported as /demo"));
}

#[test]
fn settings_the_admin_password_logs_and_power_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("log.txt"),
        "1 init: started udevd\n2 rushesd: serving NFS\n3 init: rushesd is ready\n",
    )
    .unwrap();
    let (server, c) = start(dir.path());
    let config = dir.path().join("rushes.toml");

    // First boot: no admin password yet.
    let setup: rushes_api::Setup = c.get("/v1/setup").unwrap();
    assert!(!setup.configured);
    let (st, code, _) = refused(&c, "PUT", "/v1/admin/password", r#"{"new":"short"}"#);
    assert_eq!((st, code.as_str()), (400, "weak-password"));
    let resp = c
        .raw(
            "PUT",
            "/v1/admin/password",
            Some(br#"{"new":"correct horse"}"#),
        )
        .unwrap();
    assert_eq!(resp.status, 204);
    assert!(c.get::<rushes_api::Setup>("/v1/setup").unwrap().configured);
    let stored = std::fs::read_to_string(&config).unwrap();
    assert!(
        stored.contains("$argon2id$") && !stored.contains("correct horse"),
        "{stored}"
    );

    // The lock: a wrong password is refused, the right one accepted.
    let (st, code, _) = refused(&c, "POST", "/v1/admin/login", r#"{"password":"guess"}"#);
    assert_eq!((st, code.as_str()), (403, "wrong-password"));
    let resp = c
        .raw(
            "POST",
            "/v1/admin/login",
            Some(br#"{"password":"correct horse"}"#),
        )
        .unwrap();
    assert_eq!(resp.status, 204);
    // Changing it needs the current one.
    let (st, code, _) = refused(&c, "PUT", "/v1/admin/password", r#"{"new":"another one"}"#);
    assert_eq!((st, code.as_str()), (403, "wrong-password"));

    // Settings are checked, stored beside the rest, and read back.
    let (st, code, _) = refused(&c, "PUT", "/v1/settings", r#"{"hostname":"bay 1"}"#);
    assert_eq!((st, code.as_str()), (400, "bad-setting"));
    let (_, _, msg) = refused(
        &c,
        "PUT",
        "/v1/settings",
        r#"{"network":[{"interface":"*","address":"10.0.0.5"}]}"#,
    );
    assert!(msg.contains("prefix length"), "{msg}");
    // Zones are tzdata's: a made-up name, and a file of tzdata that is not a zone, are refused.
    for bad in ["Mars/Olympus", "zone.tab", "../../etc/passwd"] {
        let body = format!(r#"{{"timezone":"{bad}"}}"#);
        let (st, _, msg) = refused(&c, "PUT", "/v1/settings", &body);
        assert!(st == 400 && msg.contains("time zone"), "{bad}: {st} {msg}");
    }
    let zones: Vec<String> = c.get("/v1/time/zones").unwrap();
    assert!(
        zones.len() > 300
            && zones.iter().any(|z| z == "Europe/London")
            && !zones.iter().any(|z| z.contains(".tab")),
        "{} zones: {:?}",
        zones.len(),
        &zones[..zones.len().min(5)]
    );
    let wanted: rushes_api::Settings = serde_json::from_str(
        r#"{"hostname":"edit-bay-nas","network":[{"interface":"*","address":"10.0.0.5/24","gateway":"10.0.0.1","mtu":9000}],"timezone":"Europe/London","ntp":["pool.ntp.org"]}"#,
    )
    .unwrap();
    let got: rushes_api::Settings = c.put("/v1/settings", &wanted).unwrap();
    assert_eq!(got, wanted);
    assert_eq!(
        c.get::<rushes_api::Settings>("/v1/settings").unwrap(),
        wanted
    );
    let stored = std::fs::read_to_string(&config).unwrap();
    assert!(
        stored.contains("hostname = \"edit-bay-nas\"") && stored.contains("$argon2id$"),
        "settings and password must both be kept: {stored}"
    );
    // A table this version does not know (a newer one wrote it before a rollback) is
    // kept, and does not blank the settings.
    std::fs::write(&config, format!("{stored}\n[future_table]\nkept = true\n")).unwrap();
    let mut server = server;
    server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let after = loop {
        match c.get::<rushes_api::Settings>("/v1/settings") {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("no API after the restart: {e}"),
        }
    };
    assert_eq!(after, wanted);
    let _: rushes_api::Settings = c.put("/v1/settings", &wanted).unwrap();
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("[future_table]"));
    // Host mode leaves this machine's name alone.
    assert_ne!(
        rustix::system::uname().nodename().to_string_lossy(),
        "edit-bay-nas"
    );

    let nics: Vec<rushes_api::Nic> = c.get("/v1/network").unwrap();
    assert!(nics.iter().all(|n| !n.name.is_empty() && n.name != "lo"));
    let logs: rushes_api::Logs = c.get("/v1/logs?contains=RUSHESD&lines=1").unwrap();
    assert_eq!(logs.lines, ["3 init: rushesd is ready"]);

    // Power acts only on the appliance.
    let (st, code, _) = refused(
        &c,
        "POST",
        "/v1/power",
        r#"{"action":"reboot","confirm":true}"#,
    );
    assert_eq!((st, code.as_str()), (409, "not-appliance"));
    let (st, code, _) = refused(&c, "POST", "/v1/power", r#"{"action":"reboot"}"#);
    assert_eq!((st, code.as_str()), (400, "not-confirmed"));
}

#[test]
fn the_clock_is_checked_against_a_real_ntp_server() {
    let chrony = rushes_tests::ntp::NtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_server, c) = start(dir.path());

    // A server that does not answer first, then chronyd: the next one is used.
    // (On another loopback address, so chronyd's choice shows by name.)
    let silent = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let settings = rushes_api::Settings {
        ntp: vec![
            silent.local_addr().unwrap().to_string(),
            format!("127.0.0.1:{}", chrony.port),
        ],
        ..Default::default()
    };
    let _: rushes_api::Settings = c.put("/v1/settings", &settings).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let clock = loop {
        let clock: rushes_api::Clock = c.get("/v1/time").unwrap();
        if clock.synced.is_some() {
            break clock;
        }
        assert!(Instant::now() < deadline, "no NTP result: {clock:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let synced = clock.synced.unwrap();
    assert_eq!(synced.server, "127.0.0.1", "{synced:?}");
    // Same machine, same clock: the offset is tiny; chronyd is one stratum below the
    // server's (8) and host mode's runs with -x, so it never sets this clock.
    assert!(synced.offset_ms.abs() < 500.0, "{synced:?}");
    assert_eq!(
        (synced.stratum, synced.leap.as_str()),
        (9, "Normal"),
        "{synced:?}"
    );
    assert!(synced.delay_ms >= 0.0, "{synced:?}");
    assert_eq!(clock.ntp, settings.ntp);
    // A server that could smuggle a line into chronyd's configuration is refused.
    let bad = rushes_api::Settings {
        ntp: vec!["pool.ntp.org\nallow all".into()],
        ..Default::default()
    };
    let err = c
        .put::<_, rushes_api::Settings>("/v1/settings", &bad)
        .unwrap_err();
    assert_eq!(err.code(), Some("bad-setting"), "{err}");
}

#[test]
fn nfs_activity_is_rolled_up_per_client_user_share_and_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path());
    let port = server.port();
    write_share_file_blocking(port, "/demo", "take1.mov", &vec![5u8; 3 << 20]);
    let report: rushes_api::ActivityReport = c
        .get("/v1/activity/report?window=minute&by=client")
        .unwrap();
    assert!(!report.sampled, "every operation is counted");
    let me = report
        .rows
        .iter()
        .find(|r| r.group == "127.0.0.1")
        .unwrap_or_else(|| panic!("no row for the client: {report:?}"));
    assert!(me.bytes >= 3 << 20, "{me:?}");
    assert!(me.p99_us >= me.p50_us && me.p50_us > Some(0), "{me:?}");
    let by_op: rushes_api::ActivityReport =
        c.get("/v1/activity/report?window=minute&by=op").unwrap();
    let write = by_op.rows.iter().find(|r| r.group == "WRITE").unwrap();
    assert_eq!(write.bytes, 3 << 20, "{by_op:?}");
    assert_eq!(
        by_op.rows[0].group, "WRITE",
        "the busiest by bytes comes first"
    );
    let by_user: rushes_api::ActivityReport =
        c.get("/v1/activity/report?window=hour&by=user").unwrap();
    assert!(
        by_user.rows.iter().any(|r| r.group == "uid 1000"),
        "{by_user:?}"
    );
    let by_share: rushes_api::ActivityReport =
        c.get("/v1/activity/report?window=minute&by=share").unwrap();
    let demo = by_share
        .rows
        .iter()
        .find(|r| r.group == "demo")
        .unwrap_or_else(|| panic!("no row for the share: {by_share:?}"));
    assert!(demo.bytes >= 3 << 20, "{demo:?}");
    let (status, code, _) = refused(&c, "GET", "/v1/activity/report?window=week", "");
    assert_eq!((status, code.as_str()), (400, "bad-request"));
}

/// GET `path` from a plain HTTP server on 127.0.0.1:`port`; the body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of the first sample line of `metrics` that starts with `series`.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

#[test]
fn nfs_operations_reach_the_top_lists_the_audit_log_and_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("demo");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::set_permissions(&share, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let metrics_port = rushes_tests::free_tcp_port();
    let sock = dir.path().join("api.sock");
    let server = ServerProcess::start(&[
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--api",
        sock.to_str().unwrap(),
        "--metrics",
        &format!("127.0.0.1:{metrics_port}"),
        &format!("demo={}", share.display()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = Client::new(sock);
    let port = server.port();
    write_share_file_blocking(port, "/demo", "reel1.mov", &vec![1u8; 2 << 20]);
    write_share_file_blocking(port, "/demo", "notes.txt", b"scene 4");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let user = rushes_tests::User::new(1000, 1000);
        let mut nfs = rushes_tests::Nfs::mount(port, "/demo", &user)
            .await
            .unwrap();
        let root = nfs.root.clone();
        nfs.remove(&root, "notes.txt").await.unwrap();
        // A FIFO, made by MKNOD, is audited as what it is.
        use rushes_tests::nfs3_client::nfs3_types::nfs3 as t;
        let made = nfs
            .conn
            .mknod(&t::MKNOD3args {
                where_: rushes_tests::dirop(&root, "render.pipe"),
                what: t::mknoddata3::NF3FIFO(Default::default()),
            })
            .await
            .unwrap();
        assert!(matches!(made, t::Nfs3Result::Ok(_)));
    });

    // Top files by bytes: the film first, with all of its bytes.
    let top: rushes_api::ActivityTop = c
        .get("/v1/activity/top?window=minute&by=file&sort=bytes")
        .unwrap();
    assert_eq!(top.rows[0].group, "demo/reel1.mov", "{top:?}");
    assert_eq!(top.rows[0].bytes, 2 << 20, "{top:?}");
    let dirs: rushes_api::ActivityTop = c.get("/v1/activity/top?by=dir&sort=ops").unwrap();
    assert_eq!(dirs.rows[0].group, "demo/", "{dirs:?}");

    // The audit log: who created and wrote the film, and who deleted the notes.
    let wait_audit = |query: &str, n: usize| -> Vec<rushes_api::AuditRecord> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<rushes_api::AuditRecord> = c.get(&format!("/v1/audit?{query}")).unwrap();
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let film = wait_audit("path=reel1", 2);
    let ops: Vec<&str> = film.iter().map(|r| r.op.as_str()).collect();
    assert_eq!(
        ops,
        ["WRITE", "CREATE"],
        "newest first, one WRITE: {film:?}"
    );
    assert!(
        film.iter().all(|r| r.user == "uid 1000"
            && r.client == "127.0.0.1"
            && r.protocol == "nfs3"
            && r.share == "demo"
            && r.path == "/reel1.mov"
            && r.result == "ok"
            && r.latency_us.is_some()),
        "{film:?}"
    );
    let fifo = wait_audit("path=render.pipe", 1);
    assert!(
        fifo.len() == 1
            && fifo[0].op == "MKNOD"
            && fifo[0].user == "uid 1000"
            && fifo[0].path == "/render.pipe",
        "{fifo:?}"
    );
    let removed = wait_audit("op=remove", 1);
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].path, "/notes.txt");
    let nothing: Vec<rushes_api::AuditRecord> = c.get("/v1/audit?user=intern").unwrap();
    assert!(nothing.is_empty(), "{nothing:?}");
    let csv = c
        .get_text("/v1/audit/export?format=csv&path=reel1")
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time_ms,client,user,protocol,share,op,path,to,bytes,latency_us,result"
    );
    assert!(
        lines[1].contains(",CREATE,/reel1.mov,"),
        "oldest first: {csv}"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let jsonl = c
        .get_text("/v1/audit/export?format=jsonl&op=remove")
        .unwrap();
    let back: rushes_api::AuditRecord = serde_json::from_str(jsonl.trim()).unwrap();
    assert_eq!(back.path, "/notes.txt");
    let status: rushes_api::AuditStatus = c.get("/v1/audit/status").unwrap();
    assert_eq!(
        status.pool, None,
        "no pool in host mode: records wait in memory"
    );
    assert!(status.waiting >= 4, "{status:?}");

    // Prometheus sees the same traffic.
    let metrics = http_get(metrics_port, "/metrics");
    assert!(
        sample(
            &metrics,
            "rushes_bytes_total{protocol=\"nfs3\",op=\"WRITE\"}"
        ) >= 2 << 20,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "rushes_operations_total{protocol=\"nfs3\",op=\"REMOVE\"}"
        ) >= 1
    );
    assert!(sample(&metrics, "rushes_client_bytes_total{client=\"127.0.0.1\"}") >= 2 << 20);
    assert!(metrics.contains("# TYPE rushes_operations_total counter"));
}

/// rushes.toml with two pools whose disks are not in this machine (so they are
/// "missing", as after a pulled bay) and a share on the first, for placement.
const TWO_POOLS: &str = r#"schema = 2

[[pool]]
name = "fast"
level = "raid1"
class = "fast"
uuid = "11111111:22222222:33333333:44444444"
members = ["S1", "S2"]

[[pool]]
name = "archive"
level = "raid6"
class = "capacity"
uuid = "55555555:66666666:77777777:88888888"
members = ["S3", "S4", "S5", "S6"]

[[share]]
name = "media"
pool = "fast"
"#;

#[test]
fn placement_rules_are_checked_whole_and_explain_says_why_for_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rushes.toml"), TWO_POOLS).unwrap();
    // The share's folder where its pool would be mounted, with real files in it.
    let share = dir.path().join("pools/fast/media");
    std::fs::create_dir_all(share.join("day1")).unwrap();
    std::fs::create_dir_all(share.join("grade")).unwrap();
    std::fs::write(share.join("day1/A001C003.mov"), vec![1u8; 3 << 20]).unwrap();
    std::fs::write(share.join("grade/hero.mov"), vec![2u8; 3 << 20]).unwrap();
    let (server, c) = start(dir.path());

    let none: rushes_api::Placement = c.get("/v1/placement").unwrap();
    assert!(
        none.rules.is_empty() && none.problems.is_empty(),
        "{none:?}"
    );

    // One bad file: every bad line is named, and nothing changes.
    let bad = "[[rule]]\nname = \"a\"\naction = \"place\"\npool = \"nearline\"\n\n\
               [[rule]]\nname = \"b\"\naction = \"pin\"\nsmaller_than = \"lots\"\n";
    let body = serde_json::json!({ "text": bad }).to_string();
    let (status, code, message) = refused(&c, "PUT", "/v1/placement", &body);
    assert_eq!((status, code.as_str()), (422, "rules-refused"), "{message}");
    assert!(
        message.contains(
            "line 1 (rule \"a\"): there is no pool \"nearline\": pools are fast, archive"
        ),
        "{message}"
    );
    assert!(
        message.contains("line 6 (rule \"b\"): smaller_than"),
        "{message}"
    );
    let still: rushes_api::Placement = c.get("/v1/placement").unwrap();
    assert!(still.rules.is_empty());

    let good = r#"
[[pool]]
name = "fast"
high = 85
low = 70

[[rule]]
name = "grading-stays"
path = "grade/**"
action = "pin"

[[rule]]
name = "old-rushes"
extension = ["mov"]
modified_older_than = "30d"
action = "place"
pool = "archive"

[[rule]]
name = "big-rushes"
larger_than = "2M"
action = "place"
pool = "archive"
"#;
    let set: rushes_api::Placement = c
        .put(
            "/v1/placement",
            &rushes_api::PlacementRules { text: good.into() },
        )
        .unwrap();
    let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["grading-stays", "old-rushes", "big-rushes"]);
    assert_eq!(set.rules[2].conditions, ["larger_than = \"2.0 MiB\""]);
    assert_eq!(set.watermarks[0].weight, "oldest-access");
    // Kept in rushes.toml, beside the pools and shares.
    let kept = std::fs::read_to_string(dir.path().join("rushes.toml")).unwrap();
    assert!(
        kept.contains("[placement]") || kept.contains("[[placement.rule]]"),
        "{kept}"
    );

    let e: rushes_api::PlacementExplain = c
        .get("/v1/placement/explain?path=media/day1/A001C003.mov")
        .unwrap();
    let why: Vec<(&str, bool, &str)> = e
        .verdicts
        .iter()
        .map(|v| (v.rule.as_str(), v.matched, v.why.as_str()))
        .collect();
    assert_eq!(
        why[0],
        (
            "grading-stays",
            false,
            "path day1/A001C003.mov does not match grade/**"
        )
    );
    assert_eq!(why[1].0, "old-rushes");
    assert!(
        !why[1].1 && why[1].2.ends_with("ago, not more than 30d"),
        "{why:?}"
    );
    assert_eq!(why[2], ("big-rushes", true, "size 3.0 MiB above 2.0 MiB"));
    assert_eq!(e.pool, "fast");
    assert_eq!(e.outcome, "rule big-rushes moves it from fast to archive");
    assert_eq!(e.at_create.as_deref(), Some("big-rushes"));
    let pinned: rushes_api::PlacementExplain = c
        .get("/v1/placement/explain?path=media/grade/hero.mov")
        .unwrap();
    assert_eq!(pinned.outcome, "rule grading-stays pins it on fast");
    for (path, status) in [
        ("media/day1/nothing.mov", 404),
        ("films/a.mov", 404),
        ("media/../../etc/passwd", 400),
        ("media", 400),
    ] {
        let resp = c
            .raw("GET", &format!("/v1/placement/explain?path={path}"), None)
            .unwrap();
        assert_eq!(
            resp.status,
            status,
            "{path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
    }

    // Simulate says what it could not look at: the pool is not mounted here.
    let plan: rushes_api::PlacementPlan = c
        .post("/v1/placement/simulate", &serde_json::json!({}))
        .unwrap();
    assert_eq!(plan.files_seen, 0);
    assert_eq!(plan.skipped, ["share media: pool fast is not mounted"]);
    assert!(
        plan.report.contains("not looked at: share media"),
        "{}",
        plan.report
    );
    drop(server);

    // A hand edit that no longer passes: refused at start, with its line in rushes.toml
    // and an alert, and nothing is in force.
    let edited = kept.replace("pool = \"archive\"", "pool = \"tape\"");
    std::fs::write(dir.path().join("rushes.toml"), &edited).unwrap();
    // The refusals point at the tables of the rules naming "tape", by their line in the file.
    let lines: Vec<&str> = edited.lines().collect();
    let expected: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"tape\""))
        .map(|(i, _)| {
            (0..i)
                .rev()
                .find(|&j| lines[j].starts_with("[[placement.rule]]"))
                .unwrap()
                + 1
        })
        .collect();
    let (server, c) = start(dir.path());
    let p: rushes_api::Placement = c.get("/v1/placement").unwrap();
    assert!(p.rules.is_empty());
    assert!(!p.problems.is_empty(), "{p:?}");
    assert!(
        p.problems
            .iter()
            .all(|q| q.reason.contains("there is no pool \"tape\"")),
        "{p:?}"
    );
    let got: Vec<usize> = p.problems.iter().map(|q| q.line).collect();
    assert_eq!(got, expected, "{p:?}\n{edited}");
    let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
    assert!(
        alerts.iter().any(|a| a.id == "placement-rules-refused"),
        "{alerts:?}\n{}",
        server.log_text()
    );
}

#[test]
fn rate_rules_in_the_managed_config_are_used_kept_and_a_bad_one_does_not_stop_serving() {
    let dir = tempfile::tempdir().unwrap();
    let rule =
        "[[rate]]\nname = \"render-nodes\"\nclients = [\"10.10.20.0/24\"]\ncap_mb_s = 1000\n";
    std::fs::write(dir.path().join("rushes.toml"), rule).unwrap();
    let (server, c) = start(dir.path());
    let rates = c.get::<rushes_api::Rates>("/v1/rates").unwrap().rules;
    assert_eq!(rates.len(), 1, "{}", server.log_text());
    assert_eq!(
        (rates[0].name.as_str(), rates[0].cap_mb_s, rates[0].now_mb_s),
        ("render-nodes", Some(1000), 0.0)
    );
    // The config store rewrites the file; the rule stays in it.
    let wanted: rushes_api::Settings = serde_json::from_str(
        r#"{"hostname":"edit-bay-nas","network":[],"timezone":"UTC","ntp":[]}"#,
    )
    .unwrap();
    let _: rushes_api::Settings = c.put("/v1/settings", &wanted).unwrap();
    let kept = std::fs::read_to_string(dir.path().join("rushes.toml")).unwrap();
    assert!(
        kept.contains("render-nodes") && kept.contains("edit-bay-nas"),
        "{kept}"
    );
    drop(server);

    // A rule that cannot be met as written: said in the log, and the box still serves.
    std::fs::write(
        dir.path().join("rushes.toml"),
        kept.replace("cap_mb_s = 1000", "cap_mb_s = 0"),
    )
    .unwrap();
    let (server, c) = start(dir.path());
    let rates: rushes_api::Rates = c.get("/v1/rates").unwrap();
    assert!(rates.rules.is_empty());
    assert!(
        rates
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("0 MB/s")),
        "{rates:?}"
    );
    let log = server.log_text();
    assert!(
        log.contains("the [[rate]] rules in rushes.toml are not used") && log.contains("0 MB/s"),
        "{log}"
    );
    let status: Status = c.get("/v1/status").unwrap();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    let alerts: Vec<Alert> = c.get("/v1/alerts/history").unwrap_or_default();
    let current: Vec<Alert> = c.get("/v1/alerts").unwrap();
    assert!(
        alerts.iter().chain(&current).any(|a| a
            .message
            .contains("[[rate]] rules in rushes.toml are not used")),
        "the alerts say what is wrong: {current:?} {alerts:?}"
    );
}

/// `rushesctl --socket SOCK ARGS…` with `input` on its standard input: (output, success).
fn rushesctl_with_input(sock: &Path, args: &[&str], input: &str) -> (String, bool) {
    let mut cmd = std::process::Command::new(rushes_tests::workspace_bin("rushesctl"));
    cmd.arg("--socket").arg(sock).args(args);
    let (out, code) = rushes_tests::output_with_input(cmd, input);
    (out, code == 0)
}

/// The newest job of kind `kind`.
fn last_job(c: &Client, kind: &str) -> Job {
    let jobs: Vec<Job> = c.get("/v1/jobs").unwrap();
    jobs.into_iter()
        .filter(|j| j.kind == kind)
        .max_by_key(|j| j.id)
        .unwrap_or_else(|| panic!("no {kind} job"))
}

/// A folder made for the test, set as target `name` with rushesctl.
fn folder_target(sock: &Path, name: &str) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    set_folder_target(sock, name, folder.path());
    folder
}

/// Target `name` set to the folder `path`.
fn set_folder_target(sock: &Path, name: &str, path: &Path) {
    let path = path.to_str().unwrap();
    let (out, ok) = rushesctl_with_input(sock, &["target", "set", name, "--folder", path], "");
    assert!(ok, "{out}");
}

/// Target `name` set to an S3 store on loopback port `port`.
fn set_s3_target(sock: &Path, name: &str, port: u16) {
    let endpoint = format!("http://127.0.0.1:{port}");
    let args = [
        "target",
        "set",
        name,
        "--s3",
        name,
        "--endpoint",
        &endpoint,
        "--access-key",
        "AK",
        "--secret-stdin",
    ];
    let (out, ok) = rushesctl_with_input(sock, &args, "secret\n");
    assert!(ok, "{out}");
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

#[test]
fn copy_targets_keep_their_secrets_sealed_and_a_check_says_whether_copies_can_go() {
    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-very-secret";
    let state = tempfile::tempdir().unwrap();
    let (_server, c) = start(state.path());
    let sock = state.path().join("api.sock");
    // An S3 target whose store is not there, its secret typed on standard input.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let set_wasabi = |more: &[&str], input: &str| {
        let mut args = vec!["target", "set", "wasabi", "--s3", "rushes-copies"];
        args.extend(["--endpoint", &endpoint, "--access-key", "AKIAEXAMPLE"]);
        args.extend(more);
        rushesctl_with_input(&sock, &args, input)
    };
    let (out, ok) = set_wasabi(&["--secret-stdin"], &format!("{SECRET}\n"));
    assert!(ok, "{out}");
    let list: Vec<rushes_api::TargetView> = c.get("/v1/targets").unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].has_secret, "{list:?}");
    // The secret is nowhere in the clear: not in the API's answers, not in rushes.toml,
    // not in any file rushesd keeps.
    let raw = c.raw("GET", "/v1/targets", None).unwrap();
    assert!(!String::from_utf8_lossy(&raw.body).contains(SECRET));
    let config = std::fs::read_to_string(state.path().join("rushes.toml")).unwrap();
    assert!(
        config.contains("[[target]]") && config.contains("AKIAEXAMPLE"),
        "{config}"
    );
    for file in files_under(state.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{} holds the secret",
            file.display()
        );
    }
    // Checked: the store is not there, and the check says so without the secret.
    let (out, ok) = rushesctl_with_input(&sock, &["target", "check", "wasabi"], "");
    assert!(!ok, "{out}");
    assert!(out.contains("target wasabi is not usable"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    // Changed without a secret: the one kept stays.
    let (out, ok) = set_wasabi(&["--region", "eu-central-1"], "");
    assert!(ok, "{out}");
    let list: Vec<rushes_api::TargetView> = c.get("/v1/targets").unwrap();
    assert!(list[0].has_secret, "{list:?}");
    // A folder, checked: a copy put there, read back and removed, nothing left behind.
    let tape = folder_target(&sock, "tape");
    let check: rushes_api::TargetCheck = c.post("/v1/targets/tape/check", &()).unwrap();
    assert!(check.ok, "{check:?}");
    assert!(
        files_under(tape.path()).is_empty(),
        "{:?}",
        files_under(tape.path())
    );
    // Refused: a new S3 target without its secret, a name that is not one.
    let (status, _, message) = refused(
        &c,
        "PUT",
        "/v1/targets/aws",
        r#"{"kind":"s3","bucket":"b","access_key":"AK"}"#,
    );
    assert_eq!(status, 400);
    assert!(message.contains("needs its secret"), "{message}");
    let (status, _, _) = refused(
        &c,
        "PUT",
        "/v1/targets/no%20spaces",
        r#"{"kind":"folder","path":"/mnt"}"#,
    );
    assert_eq!(status, 400);
    // Removed, with its secret.
    c.send::<()>("DELETE", "/v1/targets/wasabi", None).unwrap();
    let sealed = std::fs::read_to_string(state.path().join("targets.sealed")).unwrap();
    assert!(!sealed.contains("wasabi"), "{sealed}");
    let (status, _, _) = refused(&c, "POST", "/v1/targets/wasabi/check", "null");
    assert_eq!(status, 404);
}

/// Copies made by hand: a folder of a share copied to a target as a job, each file
/// proven and recorded on it, its state read back (premigrated, then dirty once
/// changed, premigrated again once copied again); paths outside the share and targets
/// that are not there refused.
#[test]
fn files_copied_by_hand_are_proven_recorded_and_show_where_they_stand() {
    let state = tempfile::tempdir().unwrap();
    let (_server, c) = start(state.path());
    let sock = state.path().join("api.sock");
    let job = state.path().join("demo/jobs/2041-advert");
    std::fs::create_dir_all(job.join("audio")).unwrap();
    let grade: Vec<u8> = (0..(9 << 20)).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(job.join("grade.mov"), &grade).unwrap();
    std::fs::write(job.join("audio/mix.wav"), b"RIFF a mix").unwrap();
    let tape = folder_target(&sock, "tape");
    let state_of = |path: &str| -> rushes_api::FileCopies {
        let (out, ok) = rushesctl_with_input(&sock, &["--json", "copies", "demo", path], "");
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    assert_eq!(
        state_of("jobs/2041-advert/grade.mov").state,
        rushes_api::CopyState::Resident
    );
    let (out, ok) = rushesctl_with_input(
        &sock,
        &["copy", "demo", "jobs/2041-advert", "--to", "tape", "--wait"],
        "",
    );
    assert!(ok, "{out}");
    let copy = last_job(&c, "copy-files");
    assert!(
        copy.step.contains("2 of 2 files copied to tape and proven"),
        "{copy:?}"
    );
    assert_eq!(
        std::fs::read(tape.path().join("demo/jobs/2041-advert/grade.mov")).unwrap(),
        grade
    );
    let grade_copies = state_of("jobs/2041-advert/grade.mov");
    assert_eq!(grade_copies.state, rushes_api::CopyState::Premigrated);
    assert_eq!(grade_copies.copies.len(), 1);
    assert_eq!(grade_copies.copies[0].target, "tape");
    assert_eq!(
        grade_copies.copies[0].blake3,
        blake3::hash(&grade).to_hex().to_string()
    );
    // Changed on the box: dirty until copied again.
    std::fs::write(job.join("audio/mix.wav"), b"RIFF the final mix").unwrap();
    assert_eq!(
        state_of("jobs/2041-advert/audio/mix.wav").state,
        rushes_api::CopyState::Dirty
    );
    let (out, ok) = rushesctl_with_input(
        &sock,
        &[
            "copy",
            "demo",
            "jobs/2041-advert/audio/mix.wav",
            "--to",
            "tape",
            "--wait",
        ],
        "",
    );
    assert!(ok, "{out}");
    let mix = state_of("jobs/2041-advert/audio/mix.wav");
    assert_eq!(mix.state, rushes_api::CopyState::Premigrated);
    assert_eq!(mix.copies.len(), 1, "one record a target: {mix:?}");
    // Proven again by an audit; a copy changed on the target behind our back no longer
    // counts, and says so in a critical alert.
    let mut held = std::fs::read(tape.path().join("demo/jobs/2041-advert/grade.mov")).unwrap();
    held[4096] ^= 0xff;
    std::fs::write(tape.path().join("demo/jobs/2041-advert/grade.mov"), &held).unwrap();
    let (out, ok) =
        rushesctl_with_input(&sock, &["prove", "demo", "jobs/2041-advert", "--wait"], "");
    assert!(!ok, "a failed audit fails its job: {out}");
    let audit = last_job(&c, "audit-copies");
    let error = audit.error.clone().unwrap_or_default();
    assert!(
        error.contains("1 copies proven again, 1 failed"),
        "{audit:?}"
    );
    assert!(error.contains("grade.mov on tape"), "{error}");
    assert_eq!(
        state_of("jobs/2041-advert/grade.mov").state,
        rushes_api::CopyState::Resident
    );
    let mix_again = state_of("jobs/2041-advert/audio/mix.wav");
    assert_eq!(mix_again.state, rushes_api::CopyState::Premigrated);
    assert!(mix_again.copies[0].proven_at >= mix.copies[0].proven_at);
    let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
    let alert = alerts
        .iter()
        .find(|a| a.id == "copy-failed:tape:demo/jobs/2041-advert/grade.mov")
        .unwrap_or_else(|| panic!("{alerts:?}"));
    assert_eq!(alert.severity, Severity::Critical);
    assert!(alert.message.contains("failed its audit"), "{alert:?}");
    // Refused: outside the share, a target that is not there, nothing to copy.
    let body = r#"{"target":"tape","share":"demo","paths":["../../etc/passwd"]}"#;
    assert_eq!(refused(&c, "POST", "/v1/copies", body).0, 400);
    let body = r#"{"target":"s4","share":"demo","paths":["jobs"]}"#;
    assert_eq!(refused(&c, "POST", "/v1/copies", body).0, 404);
    let body = r#"{"target":"tape","share":"demo","paths":["no/such/file"]}"#;
    assert_eq!(refused(&c, "POST", "/v1/copies", body).0, 404);
}

/// An S3 endpoint that takes connections and never answers, until dropped: a target
/// that hangs.
struct Hanging {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hanging {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Release and recall: a file with a proven copy gives its blocks back and stays a stub
/// with its size, modify time and inode; its copies' target hanging, an NFS read is
/// told to come back later (JUKEBOX) instead of hanging; the target set anew, a read
/// of the far end is served while the rest is still on its way; a recall job brings
/// the whole file back, resident with the same bytes; a stub whose copy is gone reads
/// as an I/O error, never zeros, and raises an alert.
#[test]
fn released_files_keep_their_place_and_come_back_when_read() {
    use rushes_tests::nfs3_client::nfs3_types::nfs3::nfsstat3;
    use std::os::unix::fs::MetadataExt;
    let state = tempfile::tempdir().unwrap();
    let (server, c) = start(state.path());
    let sock = state.path().join("api.sock");
    let cut = state.path().join("demo/cut");
    std::fs::create_dir_all(&cut).unwrap();
    let mut film = vec![0u8; 24 << 20];
    blake3::Hasher::new().finalize_xof().fill(&mut film);
    std::fs::write(cut.join("reel.mov"), &film).unwrap();
    // A small file too: its one block of xattrs must not pass for its data.
    let notes: Vec<u8> = film[..3000].iter().map(|b| b | 1).collect();
    std::fs::write(cut.join("notes.txt"), &notes).unwrap();
    let tape = folder_target(&sock, "tape");
    let state_of = |path: &str| -> rushes_api::FileCopies {
        let (out, ok) = rushesctl_with_input(&sock, &["--json", "copies", "demo", path], "");
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    // Not released without a proven copy.
    let (out, ok) = rushesctl_with_input(&sock, &["release", "demo", "cut", "--wait"], "");
    assert!(!ok, "{out}");
    assert!(out.contains("0 proven copies"), "{out}");
    let (out, ok) = rushesctl_with_input(
        &sock,
        &["copy", "demo", "cut", "--to", "tape", "--wait"],
        "",
    );
    assert!(ok, "{out}");
    let before = std::fs::metadata(cut.join("reel.mov")).unwrap();
    let (out, ok) = rushesctl_with_input(&sock, &["release", "demo", "cut", "--wait"], "");
    assert!(ok, "{out}");
    let after = std::fs::metadata(cut.join("reel.mov")).unwrap();
    assert_eq!(
        (
            after.ino(),
            after.len(),
            after.mtime(),
            after.mtime_nsec(),
            after.mode()
        ),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec(),
            before.mode()
        )
    );
    // Its blocks given back: what is left is the xattrs' (its copies' record).
    assert!(after.blocks() <= 16, "{}", after.blocks());
    assert_eq!(
        state_of("cut/reel.mov").state,
        rushes_api::CopyState::Migrated
    );

    let port = server.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let user = rushes_tests::User::new(1000, 1000);
    let mut nfs = rt
        .block_on(rushes_tests::Nfs::mount(port, "/demo", &user))
        .unwrap();
    let root = nfs.root.clone();
    let dir = rt.block_on(nfs.lookup(&root, "cut")).unwrap();
    let fh = rt.block_on(nfs.lookup(&dir, "reel.mov")).unwrap();
    // The target hangs: the read is told to come back later, within seconds.
    let hanging = Hanging::start();
    set_s3_target(&sock, "tape", hanging.port);
    let asked = Instant::now();
    let far = 20u64 << 20;
    assert_eq!(
        rt.block_on(nfs.read(&fh, far, 1 << 20)).unwrap_err(),
        nfsstat3::NFS3ERR_JUKEBOX
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        rt.block_on(nfs.getattr(&fh)).unwrap().size,
        film.len() as u64
    );
    // The target is a folder again: the far end is served first, while the file's
    // recall still waits on the hanging store.
    set_folder_target(&sock, "tape", tape.path());
    let (bytes, eof) = rt.block_on(nfs.read(&fh, far, 1 << 20)).unwrap();
    assert!(!eof);
    assert!(
        bytes == film[far as usize..far as usize + (1 << 20)],
        "the range read is the film's"
    );
    assert_eq!(
        state_of("cut/reel.mov").state,
        rushes_api::CopyState::Migrated,
        "the whole file is not back yet"
    );
    let small = rt.block_on(nfs.lookup(&dir, "notes.txt")).unwrap();
    assert!(rt.block_on(nfs.read_all(&small)).unwrap() == notes);
    drop(hanging);
    // One job brings the whole file back: resident, the same bytes, times and inode.
    let (out, ok) = rushesctl_with_input(&sock, &["recall", "demo", "cut", "--wait"], "");
    assert!(ok, "{out}");
    let back = std::fs::metadata(cut.join("reel.mov")).unwrap();
    assert_eq!(
        (back.ino(), back.len(), back.mtime(), back.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    assert!(back.blocks() * 512 >= back.len(), "{}", back.blocks());
    assert!(std::fs::read(cut.join("reel.mov")).unwrap() == film);
    assert!(rt.block_on(nfs.read_all(&fh)).unwrap() == film);
    assert_eq!(
        state_of("cut/reel.mov").state,
        rushes_api::CopyState::Premigrated
    );
    // Released again, and its only copy removed behind our back: an I/O error, never
    // zeros, and a critical alert.
    let (out, ok) = rushesctl_with_input(&sock, &["release", "demo", "cut/reel.mov", "--wait"], "");
    assert!(ok, "{out}");
    std::fs::remove_file(tape.path().join("demo/cut/reel.mov")).unwrap();
    assert_eq!(
        rt.block_on(nfs.read(&fh, 0, 4096)).unwrap_err(),
        nfsstat3::NFS3ERR_IO
    );
    let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.id.starts_with("recall-failed:") && a.severity == Severity::Critical),
        "{alerts:?}"
    );
}

/// Copy rules kept true by a reconcile: the files a rule names get their copies on its
/// targets, and no others; a second run has nothing to do; a changed file is copied
/// again with its older copy kept as a version; a target that cannot take a copy
/// leaves the file short, in the job's error and an alert, until a run once it is back.
#[test]
fn copy_rules_are_kept_by_a_reconcile_with_versions_and_an_alert_for_short_files() {
    let state = tempfile::tempdir().unwrap();
    let (_server, c) = start(state.path());
    let sock = state.path().join("api.sock");
    let share = state.path().join("demo");
    std::fs::create_dir_all(share.join("grade")).unwrap();
    std::fs::create_dir_all(share.join("notes")).unwrap();
    let mut grade = vec![0u8; 3 << 20];
    blake3::Hasher::new().finalize_xof().fill(&mut grade);
    std::fs::write(share.join("grade/a.mov"), &grade).unwrap();
    std::fs::write(share.join("grade/b.mov"), b"a short grade").unwrap();
    std::fs::write(share.join("notes/n.txt"), b"not kept by any rule").unwrap();
    let tape = folder_target(&sock, "tape");
    let vault = folder_target(&sock, "vault");
    let rules = state.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"grades-twice\"\naction = \"copy\"\npath = \"grade/**\"\ncopies = 2\ntargets = [\"tape\", \"vault\"]\n",
    )
    .unwrap();
    let (out, ok) = rushesctl_with_input(&sock, &["placement", "set", rules.to_str().unwrap()], "");
    assert!(ok, "{out}");
    let (out, ok) = rushesctl_with_input(&sock, &["placement"], "");
    assert!(ok && out.contains("copy 2 on tape,vault"), "{out}");
    let last_run = || last_job(&c, "reconcile-copies");
    // Simulate says what a reconcile would copy where, and what it would cost at the
    // tape's prices.
    let tape_path = tape.path().to_str().unwrap();
    let priced = [
        "target",
        "set",
        "tape",
        "--folder",
        tape_path,
        "--price-gb-month",
        "20",
        "--egress-price-gb",
        "90",
    ];
    let (out, ok) = rushesctl_with_input(&sock, &priced, "");
    assert!(ok, "{out}");
    let simulate = || -> rushes_api::PlacementPlan {
        let asked = rushes_api::SimulateRequest {
            text: None,
            list: None,
        };
        c.post("/v1/placement/simulate", &asked).unwrap()
    };
    let plan = simulate();
    let grades = (3 << 20) + 13;
    let on = |plan: &rushes_api::PlacementPlan, t: &str| {
        plan.copies
            .iter()
            .find(|o| o.target == t)
            .cloned()
            .unwrap_or_else(|| panic!("{plan:?}"))
    };
    let tape_plan = on(&plan, "tape");
    assert_eq!((tape_plan.files, tape_plan.bytes), (2, grades), "{plan:?}");
    assert_eq!(tape_plan.stored_after, grades);
    let month = tape_plan.storage_cost_month.unwrap();
    assert!((month - grades as f64 / 1e9 * 20.0).abs() < 1e-9, "{month}");
    let egress = tape_plan.egress_cost.unwrap();
    assert!(
        (egress - grades as f64 / 1e9 * 90.0).abs() < 1e-9,
        "{egress}"
    );
    assert_eq!(on(&plan, "vault").storage_cost_month, None);
    let (out, ok) = rushesctl_with_input(&sock, &["placement", "simulate"], "");
    assert!(ok, "{out}");
    assert!(
        out.contains("to tape: 2 files") && out.contains("a month") && out.contains("no price set"),
        "{out}"
    );
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(ok, "{out}");
    assert!(
        last_run().step.contains("4 copies made"),
        "{:?}",
        last_run()
    );
    for t in [&tape, &vault] {
        assert_eq!(
            std::fs::read(t.path().join("demo/grade/a.mov")).unwrap(),
            grade
        );
        assert!(t.path().join("demo/grade/b.mov").exists());
        assert!(!t.path().join("demo/notes").exists(), "no rule keeps notes");
    }
    let copies: rushes_api::FileCopies = c.get("/v1/copies?share=demo&path=grade/a.mov").unwrap();
    assert_eq!(copies.state, rushes_api::CopyState::Premigrated);
    assert_eq!(copies.copies.len(), 2);
    // Each target says what it holds, by the files' records, and how it answered.
    let targets: Vec<rushes_api::TargetView> = c.get("/v1/targets").unwrap();
    for t in &targets {
        let stored = t.stored.as_ref().unwrap_or_else(|| panic!("{t:?}"));
        assert_eq!((stored.files, stored.bytes), (2, (3 << 20) + 13), "{t:?}");
        assert!(t.health.as_ref().is_some_and(|h| h.ok), "{t:?}");
    }
    // Nothing to do the second time, and simulate knew it.
    let plan = simulate();
    let tape_plan = on(&plan, "tape");
    assert_eq!(
        (tape_plan.files, tape_plan.stored_after),
        (0, grades),
        "{plan:?}"
    );
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(ok, "{out}");
    assert!(
        last_run().step.contains("0 copies made"),
        "{:?}",
        last_run()
    );
    // Changed: copied again, the older copy kept under its time on both targets.
    let old_mtime = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(share.join("grade/a.mov")).unwrap();
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
    };
    std::thread::sleep(Duration::from_millis(20));
    let mut regraded = grade.clone();
    regraded[1000] ^= 0x55;
    std::fs::write(share.join("grade/a.mov"), &regraded).unwrap();
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(ok, "{out}");
    assert!(
        last_run().step.contains("2 copies made")
            && last_run().step.contains("2 older versions kept"),
        "{:?}",
        last_run()
    );
    for t in [&tape, &vault] {
        assert_eq!(
            std::fs::read(t.path().join("demo/grade/a.mov")).unwrap(),
            regraded
        );
        let kept = t
            .path()
            .join(format!(".rushes-versions/demo/grade/a.mov@{old_mtime}"));
        assert_eq!(std::fs::read(&kept).unwrap(), grade, "{}", kept.display());
    }
    // With `audit`, copies proven long ago are read back by the next run: one changed
    // on its target behind our back is found, alerted and made again.
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(&rules, format!("audit = \"30d\"\n{rules_text}")).unwrap();
    let (out, ok) = rushesctl_with_input(&sock, &["placement", "set", rules.to_str().unwrap()], "");
    assert!(ok, "{out}");
    let a = std::fs::File::open(share.join("grade/a.mov")).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let n = rustix::fs::fgetxattr(&a, c"trusted.rushes.copies", &mut buf).unwrap();
    let mut proofs: Vec<serde_json::Value> = serde_json::from_slice(&buf[..n]).unwrap();
    for p in &mut proofs {
        p["proven_at"] = 0.into();
    }
    let aged = serde_json::to_vec(&proofs).unwrap();
    rustix::fs::fsetxattr(
        &a,
        c"trusted.rushes.copies",
        &aged,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut bad = regraded.clone();
    bad[7] ^= 1;
    std::fs::write(tape.path().join("demo/grade/a.mov"), &bad).unwrap();
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(ok, "{out}");
    let step = last_run().step;
    assert!(
        step.contains("1 copies made") && step.contains("1 copies proven again, 1 found bad"),
        "{step}"
    );
    assert_eq!(
        std::fs::read(tape.path().join("demo/grade/a.mov")).unwrap(),
        regraded
    );
    let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.id == "copy-failed:tape:demo/grade/a.mov"),
        "{alerts:?}"
    );
    let copies: rushes_api::FileCopies = c.get("/v1/copies?share=demo&path=grade/a.mov").unwrap();
    assert!(copies.copies.iter().all(|c| c.proven_at > 0), "{copies:?}");
    // The vault's store is not there: the changed file is short of a copy, and says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    set_s3_target(&sock, "vault", closed);
    // Watched: a target set anew is checked at once, and one that cannot be reached
    // raises an alert that names it.
    let alert_on = |present: bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
            let found = alerts.iter().find(|a| a.id == "target-unreachable:vault");
            if found.is_some() == present {
                return found.cloned();
            }
            assert!(Instant::now() < deadline, "{alerts:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let unreachable = alert_on(true).unwrap();
    assert!(
        unreachable
            .message
            .contains("copy target vault cannot be reached"),
        "{unreachable:?}"
    );
    let (out, ok) = rushesctl_with_input(&sock, &["target", "list"], "");
    assert!(ok && out.contains("UNREACHABLE"), "{out}");
    std::fs::write(share.join("grade/b.mov"), b"a longer, regraded short grade").unwrap();
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(!ok, "{out}");
    let error = last_run().error.unwrap_or_default();
    assert!(
        error.contains("1 files short of their copies: demo/grade/b.mov (1 of 2"),
        "{error}"
    );
    let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
    let short = alerts
        .iter()
        .find(|a| a.id == "copies-short")
        .unwrap_or_else(|| panic!("{alerts:?}"));
    assert!(short.message.contains("demo/grade/b.mov"), "{short:?}");
    // Back: the next run brings it in line and the alert goes.
    set_folder_target(&sock, "vault", vault.path());
    alert_on(false);
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(ok, "{out}");
    let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
    assert!(!alerts.iter().any(|a| a.id == "copies-short"), "{alerts:?}");
    assert_eq!(
        std::fs::read(vault.path().join("demo/grade/b.mov")).unwrap(),
        b"a longer, regraded short grade"
    );

    // Retention: a target keeps copies that are no longer current for its span, then
    // a reconcile deletes them. A span under an hour is refused.
    let keep_on_tape = |span: &str| {
        let args = [
            "target",
            "set",
            "tape",
            "--folder",
            tape_path,
            "--retention",
            span,
        ];
        rushesctl_with_input(&sock, &args, "")
    };
    let (out, ok) = keep_on_tape("5m");
    assert!(!ok && out.contains("under an hour"), "{out}");
    let (out, ok) = keep_on_tape("30d");
    assert!(ok, "{out}");
    let (out, ok) = rushesctl_with_input(&sock, &["target", "list"], "");
    assert!(
        ok && out.contains("30d") && out.contains("for ever"),
        "{out}"
    );
    // A file removed from the box: its copy on the tape becomes a version; the vault,
    // with no retention, keeps it where it was.
    let b_mtime = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(share.join("grade/b.mov")).unwrap();
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
    };
    std::fs::remove_file(share.join("grade/b.mov")).unwrap();
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(ok, "{out}");
    let step = last_run().step;
    assert!(
        step.contains("1 copies of removed files kept as versions")
            && step.contains("0 versions past their retention deleted"),
        "{step}"
    );
    assert!(!tape.path().join("demo/grade/b.mov").exists());
    assert_eq!(
        std::fs::read(
            tape.path()
                .join(format!(".rushes-versions/demo/grade/b.mov@{b_mtime}"))
        )
        .unwrap(),
        b"a longer, regraded short grade"
    );
    assert!(vault.path().join("demo/grade/b.mov").exists());
    // A month later (the versions' times set back): every version on the tape is
    // deleted with its facts, the current copies stay, and the vault keeps all.
    let versions = files_under(&tape.path().join(".rushes-versions/demo"));
    assert!(versions.len() >= 2, "{versions:?}");
    let month_ago = std::time::SystemTime::now() - Duration::from_secs(31 * 86_400);
    for v in &versions {
        std::fs::File::options()
            .write(true)
            .open(v)
            .unwrap()
            .set_modified(month_ago)
            .unwrap();
    }
    let (out, ok) = rushesctl_with_input(&sock, &["reconcile", "--wait"], "");
    assert!(ok, "{out}");
    let step = last_run().step;
    assert!(
        step.contains(&format!(
            "{} versions past their retention deleted",
            versions.len()
        )),
        "{step}"
    );
    assert!(files_under(&tape.path().join(".rushes-versions")).is_empty());
    assert!(files_under(&tape.path().join(".rushes-meta/.rushes-versions")).is_empty());
    assert_eq!(
        std::fs::read(tape.path().join("demo/grade/a.mov")).unwrap(),
        regraded
    );
    assert!(!files_under(&vault.path().join(".rushes-versions")).is_empty());
}

/// An S3 target on `port` (s3-target's key and secret), named `name`, bucket `bucket`.
fn s3_target_at(name: &str, bucket: &str, port: u16) -> rushes_copies::Target {
    rushes_copies::Target {
        name: name.into(),
        place: rushes_copies::TargetPlace::S3 {
            bucket: bucket.into(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: "us-east-1".into(),
            access_key: "AK".into(),
            fingerprint: None,
        },
        secret: Some(rushes_copies::Secret::new("secret")),
    }
}

/// Stores as they really misbehave. One that answers late and throttles (503 SlowDown
/// on every third request) is waited for, and its copies are proven. One that throttles
/// every request fails the copy with its reason and keeps nothing. One that answers a
/// write with success and then holds other bytes never gets a copy counted.
#[test]
fn slow_throttling_and_lying_targets_never_get_a_copy_counted_that_they_do_not_hold() {
    use rushes_copies::{Audit, CopyError, Store};
    use rushes_tests::S3Target;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    // One file sent in one request, one in three parts.
    let clips: Vec<(&str, Vec<u8>)> = vec![
        (
            "day1/A001C001.wav",
            rushes_tests::guest::payload(1, 300_000),
        ),
        (
            "day1/A001C002.mov",
            rushes_tests::guest::payload(2, (20 << 20) + 777),
        ),
    ];
    for (rel, bytes) in &clips {
        let path = files.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }

    let busy_root = tempfile::tempdir().unwrap();
    let busy = S3Target::start(
        busy_root.path(),
        &["copies"],
        &["--delay-ms", "150", "--throttle-every", "3"],
    );
    let store = Store::open(&s3_target_at("busy", "copies", busy.port)).unwrap();
    for (rel, bytes) in &clips {
        let proof = rt
            .block_on(store.put_verified("projects", rel, &files.path().join(rel)))
            .unwrap_or_else(|e| panic!("{rel} to a slow, throttling store: {e}"));
        let held = busy_root.path().join("copies/projects").join(rel);
        assert_eq!(&std::fs::read(&held).unwrap(), bytes, "{}", held.display());
        assert_eq!(rt.block_on(store.audit(&proof)).unwrap(), Audit::Proven);
    }

    let refusing_root = tempfile::tempdir().unwrap();
    let refusing = S3Target::start(
        refusing_root.path(),
        &["copies"],
        &["--throttle-every", "1"],
    );
    let store = Store::open(&s3_target_at("refusing", "copies", refusing.port)).unwrap();
    let (rel, _) = &clips[0];
    let e = rt
        .block_on(store.put_verified("projects", rel, &files.path().join(rel)))
        .unwrap_err();
    assert!(matches!(e, CopyError::Target { .. }), "{e:?}");
    let said = e.to_string();
    assert!(
        said.contains("target refusing could not") && said.contains("SlowDown"),
        "{said}"
    );
    assert!(!refusing_root.path().join("copies/projects").exists());

    let liar_root = tempfile::tempdir().unwrap();
    let liar = S3Target::start(liar_root.path(), &["copies"], &["--lie"]);
    let store = Store::open(&s3_target_at("liar", "copies", liar.port)).unwrap();
    for (rel, bytes) in &clips {
        let e = rt
            .block_on(store.put_verified("projects", rel, &files.path().join(rel)))
            .unwrap_err();
        assert!(matches!(e, CopyError::Unproven { .. }), "{rel}: {e:?}");
        assert!(e.to_string().contains("hash"), "{e}");
        // The lie was told: it holds as many bytes, not the same ones.
        let held = std::fs::read(liar_root.path().join("copies/projects").join(rel)).unwrap();
        assert_eq!(held.len(), bytes.len());
        assert_ne!(&held, bytes);
    }
}

/// rushesd killed with SIGKILL in the middle of a multipart upload: the target holds no
/// object at the key, the file records no copy, and after a restart the copy is made
/// whole and proven. A target that lies about what it stored fails the copy job, and the
/// file records nothing of it.
#[test]
fn a_copy_cut_by_kill_9_counts_for_nothing_and_is_made_whole_after_restart() {
    use rushes_tests::S3Target;
    let state = tempfile::tempdir().unwrap();
    let (mut server, c) = start(state.path());
    let sock = state.path().join("api.sock");
    let clip = rushes_tests::guest::payload(7, 48 << 20);
    let reel = state.path().join("demo/reel");
    std::fs::create_dir_all(&reel).unwrap();
    std::fs::write(reel.join("A001C003.mov"), &clip).unwrap();
    let state_of = |path: &str| -> rushes_api::FileCopies {
        let (out, ok) = rushesctl_with_input(&sock, &["--json", "copies", "demo", path], "");
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };

    let slow_root = tempfile::tempdir().unwrap();
    let slow = S3Target::start(slow_root.path(), &["slow"], &["--delay-ms", "700"]);
    set_s3_target(&sock, "slow", slow.port);
    let copy_to = |target: &str, wait: bool| {
        let mut args = vec!["copy", "demo", "reel/A001C003.mov", "--to", target];
        if wait {
            args.push("--wait");
        }
        rushesctl_with_input(&sock, &args, "")
    };
    let (out, ok) = copy_to("slow", false);
    assert!(ok, "{out}");
    // Killed once the first part is on the target, with the rest still to come.
    let part_sent = || {
        std::fs::read_dir(slow_root.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !part_sent() {
        assert!(Instant::now() < deadline, "no part reached the target");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    let object = slow_root.path().join("slow/demo/reel/A001C003.mov");
    assert!(!object.exists(), "a cut upload left an object");

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get::<Status>("/v1/status").is_err() {
        assert!(Instant::now() < deadline, "no API after restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = state_of("reel/A001C003.mov");
    assert_eq!(before.state, rushes_api::CopyState::Resident, "{before:?}");
    assert!(before.copies.is_empty(), "{before:?}");
    let (out, ok) = copy_to("slow", true);
    assert!(ok, "{out}");
    assert!(std::fs::read(&object).unwrap() == clip, "the copy is whole");
    let after = state_of("reel/A001C003.mov");
    assert_eq!(after.state, rushes_api::CopyState::Premigrated, "{after:?}");
    assert_eq!(after.copies.len(), 1);

    let liar_root = tempfile::tempdir().unwrap();
    let liar = S3Target::start(liar_root.path(), &["liar"], &["--lie"]);
    set_s3_target(&sock, "liar", liar.port);
    let (out, ok) = copy_to("liar", true);
    assert!(!ok, "a lying target's copy job must fail: {out}");
    let copy = last_job(&c, "copy-files");
    let error = copy.error.clone().unwrap_or_default();
    assert!(error.contains("not proven"), "{copy:?}");
    let last = state_of("reel/A001C003.mov");
    assert_eq!(
        last.copies.len(),
        1,
        "only the slow target's copy: {last:?}"
    );
    assert_eq!(last.copies[0].target, "slow");
}

/// One box keeps its copies on another over S3: box B serves a folder (host mode's
/// `--s3-endpoint`) over HTTPS with its own certificate and makes a key for box A; A
/// pins that certificate by its fingerprint and copies a clip there with the key, and
/// B's folder holds the bytes in A's bucket. Another certificate's fingerprint, plain
/// HTTP, a wrong secret and another site's bucket are refused, and once deleted on B
/// the key signs nothing.
#[test]
fn one_box_keeps_its_copies_on_another_over_s3() {
    let b_state = tempfile::tempdir().unwrap();
    let store = b_state.path().join("s3");
    let port = rushes_tests::free_tcp_port();
    let endpoint_arg = format!("127.0.0.1:{port}={}", store.display());
    let (_b, b_sock) =
        ServerProcess::start_with_api_and(b_state.path(), &["--s3-endpoint", &endpoint_arg]);
    let (out, ok) = rushesctl_with_input(&b_sock, &["--json", "s3", "key", "add", "site-a"], "");
    assert!(ok, "{out}");
    let key: rushes_api::NewS3Key =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(key.bucket, "site-a");
    let (out, ok) = rushesctl_with_input(&b_sock, &["s3", "show"], "");
    assert!(
        ok && out.contains(&format!("serving S3 at 127.0.0.1:{port}")),
        "{out}"
    );
    let shown: rushes_api::S3Service = rushes_api::Client::new(&b_sock).get("/v1/s3").unwrap();
    let fingerprint = shown.fingerprint.expect("the certificate it serves with");
    assert!(out.contains(&fingerprint), "{out}");
    assert!(
        !out.contains(&key.secret),
        "the secret is shown once only: {out}"
    );
    let (out, ok) = rushesctl_with_input(&b_sock, &["s3", "key", "add", "site-c"], "");
    assert!(ok, "{out}");

    let a_state = tempfile::tempdir().unwrap();
    let (_a, a) = start(a_state.path());
    let a_sock = a_state.path().join("api.sock");
    let clip = rushes_tests::guest::payload(11, (12 << 20) + 5);
    std::fs::create_dir_all(a_state.path().join("demo/reel")).unwrap();
    std::fs::write(a_state.path().join("demo/reel/B002C004.mov"), &clip).unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let set_at = |name: &str, bucket: &str, secret: &str, url: &str, pin: Option<&str>| {
        let mut args = vec![
            "target",
            "set",
            name,
            "--s3",
            bucket,
            "--endpoint",
            url,
            "--access-key",
            &key.access_key,
            "--secret-stdin",
        ];
        if let Some(pin) = pin {
            args.extend(["--fingerprint", pin]);
        }
        let (out, ok) = rushesctl_with_input(&a_sock, &args, &format!("{secret}\n"));
        assert!(ok, "{out}");
    };
    let set = |name: &str, bucket: &str, secret: &str| {
        set_at(name, bucket, secret, &url, Some(&fingerprint))
    };
    let check = |name: &str| -> rushes_api::TargetCheck {
        a.post(&format!("/v1/targets/{name}/check"), &()).unwrap()
    };
    set("site-b", "site-a", &key.secret);
    assert!(check("site-b").ok, "{:?}", check("site-b"));
    let (out, ok) = rushesctl_with_input(
        &a_sock,
        &[
            "copy",
            "demo",
            "reel/B002C004.mov",
            "--to",
            "site-b",
            "--wait",
        ],
        "",
    );
    assert!(ok, "{out}");
    assert!(
        std::fs::read(store.join("site-a/demo/reel/B002C004.mov")).unwrap() == clip,
        "box B holds the copy in box A's bucket"
    );
    // Another certificate's fingerprint is refused before anything is sent; so is B's
    // certificate with no fingerprint (it chains to no CA) and plain HTTP.
    let other = "AB:".repeat(31) + "AB";
    set_at("spoofed", "site-a", &key.secret, &url, Some(&other));
    let spoofed = check("spoofed");
    assert!(
        !spoofed.ok
            && spoofed
                .error
                .as_deref()
                .unwrap_or("")
                .contains(&format!("certificate is {fingerprint}, not the pinned")),
        "{spoofed:?}"
    );
    set_at("unpinned", "site-a", &key.secret, &url, None);
    assert!(!check("unpinned").ok, "an unpinned self-signed certificate");
    let plain = format!("http://127.0.0.1:{port}");
    set_at("plain", "site-a", &key.secret, &plain, None);
    assert!(!check("plain").ok, "plain HTTP to the HTTPS endpoint");
    let (out, ok) = rushesctl_with_input(
        &a_sock,
        &[
            "target",
            "set",
            "mispinned",
            "--s3",
            "site-a",
            "--endpoint",
            &plain,
            "--access-key",
            "AK",
            "--fingerprint",
            &fingerprint,
            "--secret-stdin",
        ],
        "x\n",
    );
    assert!(!ok && out.contains("https endpoint"), "{out}");
    // A wrong secret, and another site's bucket, are refused.
    set("forged", "site-a", "not-the-secret");
    let forged = check("forged");
    assert!(!forged.ok, "{forged:?}");
    assert!(
        forged
            .error
            .as_deref()
            .unwrap_or("")
            .contains("refused our credentials"),
        "{forged:?}"
    );
    set("nosy", "site-c", &key.secret);
    assert!(!check("nosy").ok, "a key reaches its own bucket only");
    assert!(store.join("site-c").read_dir().unwrap().next().is_none());
    // Deleted on B: it signs nothing from now on.
    let (out, ok) = rushesctl_with_input(&b_sock, &["s3", "key", "delete", "site-a"], "");
    assert!(ok, "{out}");
    assert!(!check("site-b").ok);
}

/// A kernel and an initramfs standing in for an image's, and bundles of them.
struct Payload {
    dir: tempfile::TempDir,
}

impl Payload {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("vmlinuz"),
            rushes_tests::guest::payload(0, 3 << 20),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("initrd.zst"),
            rushes_tests::guest::payload(1, 2 << 20),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("root.sqfs"),
            rushes_tests::guest::payload(2, 9 << 20),
        )
        .unwrap();
        Self { dir }
    }

    fn bundle(
        &self,
        key: &rushes_update::SecretKey,
        version: &str,
        min: &str,
    ) -> std::path::PathBuf {
        let path = self.dir.path().join(format!(
            "rushes-{version}-{}.bundle",
            key.public().fingerprint()
        ));
        let mut out = std::fs::File::create(&path).unwrap();
        rushes_update::make(
            &mut out,
            key,
            version,
            min,
            "2026-12-06T00:00:00Z",
            &[
                &self.dir.path().join("vmlinuz"),
                &self.dir.path().join("initrd.zst"),
                &self.dir.path().join("root.sqfs"),
            ],
        )
        .unwrap();
        path
    }
}

/// Whether one line of `out` holds every one of `words`.
fn has_line(out: &str, words: &[&str]) -> bool {
    out.lines().any(|l| words.iter().all(|w| l.contains(w)))
}

/// Every regular file under `root` with its bytes.
fn tree(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_signed_bundle_goes_into_the_idle_slot_and_bad_ones_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let esp = dir.path().join("esp");
    rushes_update::slots::Esp::create(
        &esp,
        "0.1.0",
        [b"kernel 0.1.0", b"initrd 0.1.0", b"root 0.1.0"],
    )
    .unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = rushes_update::SecretKey::generate().unwrap();
    std::fs::write(keys.join("maker.pub"), key.public().to_line()).unwrap();
    let state = dir.path().join("state");
    let (_server, sock) = ServerProcess::start_with_api_and(
        &state,
        &[
            "--esp",
            esp.to_str().unwrap(),
            "--update-keys",
            keys.to_str().unwrap(),
        ],
    );
    let c = Client::new(sock.clone());
    let ctl = |args: &[&str]| rushesctl_with_input(&sock, args, "");
    let status = || -> rushes_api::UpdateStatus { c.get("/v1/update").unwrap() };

    let s = status();
    assert_eq!(s.running_slot.as_deref(), Some("a"));
    assert_eq!(s.trusted_keys, [key.public().fingerprint()]);
    assert!(
        s.slots[0].slot == "a" && s.slots[0].running && s.slots[0].boots_next,
        "{s:?}"
    );

    let payload = Payload::new();
    // Refused before anything is written, each with its reason.
    let stranger = rushes_update::SecretKey::generate().unwrap();
    let before = tree(&esp);
    let not_a_bundle = dir.path().join("notes.txt");
    std::fs::write(&not_a_bundle, "grade notes for reel 3, not an update").unwrap();
    for (bundle, says) in [
        (
            payload.bundle(&stranger, "0.2.0", "0.1.0"),
            "does not trust",
        ),
        (
            payload.bundle(&key, "0.9.0", "0.5.0"),
            "updates from version 0.5.0 on; this box runs 0.1.0",
        ),
        (not_a_bundle.clone(), "not a Rushes update bundle"),
    ] {
        let (out, ok) = ctl(&["update", "apply", bundle.to_str().unwrap()]);
        assert!(!ok && out.contains(says), "{}: {out}", bundle.display());
        assert!(
            tree(&esp) == before,
            "a refused bundle changed the boot partition: {out}"
        );
    }
    let (out, ok) = ctl(&["update", "apply", "/no/such/file.bundle"]);
    assert!(
        !ok && out.contains("cannot open /no/such/file.bundle"),
        "{out}"
    );

    // A good one: written into B, which boots next with three tries; A untouched.
    let good = payload.bundle(&key, "0.2.0", "0.1.0");
    let (out, ok) = ctl(&["update", "apply", good.to_str().unwrap()]);
    assert!(
        ok && has_line(&out, &["slot B", "trying (3 left)", "0.2.0", "boots next"]),
        "{out}"
    );
    assert_eq!(
        std::fs::read(esp.join("rushes/b/initrd.zst")).unwrap(),
        std::fs::read(payload.dir.path().join("initrd.zst")).unwrap()
    );
    assert_eq!(
        std::fs::read(esp.join("rushes/b/root.sqfs")).unwrap(),
        std::fs::read(payload.dir.path().join("root.sqfs")).unwrap()
    );
    assert_eq!(
        std::fs::read(esp.join("rushes/a/initrd.zst")).unwrap(),
        b"initrd 0.1.0"
    );
    let s = status();
    let b = &s.slots[0];
    assert!(
        b.slot == "b" && b.boots_next && b.state == "trying" && b.tries_left == Some(3),
        "{s:?}"
    );
    assert_eq!(b.version.as_deref(), Some("0.2.0"));
    let (out, _) = ctl(&["update"]);
    assert!(
        has_line(&out, &["slot B", "trying (3 left)", "0.2.0", "boots next"])
            && has_line(&out, &["slot A", "0.1.0", "running"]),
        "{out}"
    );

    // Going back on purpose before the reboot cancels the update: A boots next again.
    let (out, ok) = ctl(&["update", "rollback"]);
    assert!(ok, "{out}");
    let s = status();
    assert!(s.slots[0].slot == "a" && s.slots[0].boots_next, "{s:?}");

    // A bundle cut short: refused as the payload streams; B is left empty, A boots.
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.bundle");
    std::fs::write(&cut, &bytes[..bytes.len() - 4096]).unwrap();
    let (out, ok) = ctl(&["update", "apply", cut.to_str().unwrap()]);
    assert!(
        !ok && out.contains("4096 bytes short") && out.contains("the running slot is untouched"),
        "{out}"
    );
    let s = status();
    assert!(s.slots[0].slot == "a" && s.slots[0].boots_next, "{s:?}");
    assert_eq!(
        s.slots.iter().find(|x| x.slot == "b").unwrap().state,
        "empty"
    );
    assert_eq!(
        std::fs::read(esp.join("rushes/a/vmlinuz")).unwrap(),
        b"kernel 0.1.0"
    );

    // From a URL, as a box fetches a published bundle.
    let web = rushes_tests::HttpFolder::serve(good.parent().unwrap());
    let url = web.url("127.0.0.1", good.file_name().unwrap().to_str().unwrap());
    let (out, ok) = ctl(&["update", "apply", &url]);
    assert!(
        ok && has_line(&out, &["slot B", "0.2.0", "boots next"]),
        "{out}"
    );
    assert_eq!(status().slots[0].slot, "b");
}

/// Copy the tree `from` into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The fixtures of earlier versions' state, oldest first.
fn state_fixtures() -> Vec<std::path::PathBuf> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut versions: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("state-"))
        .map(|e| e.path())
        .collect();
    versions.sort();
    assert!(
        !versions.is_empty(),
        "no fixtures in {}",
        fixtures.display()
    );
    versions
}

/// A copy of `fixture` to run a rushesd on: DIR/state (with the demo share in it) and
/// DIR/archive, the folder target, where its rushes.toml says.
fn fixture_state(fixture: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    copy_tree(&fixture.join("state"), &state);
    copy_tree(&fixture.join("demo"), &state.join("demo"));
    copy_tree(&fixture.join("archive"), &dir.path().join("archive"));
    for name in ["rushes.toml", "rushes.toml.prev"] {
        let text = std::fs::read_to_string(state.join(name)).unwrap();
        let here = dir.path().to_str().unwrap();
        std::fs::write(state.join(name), text.replace("@FIXTURE@", here)).unwrap();
    }
    dir
}

/// A rushesd (with its admin plane) on a copy of the newest state fixture.
struct FixtureBox {
    fixture: std::path::PathBuf,
    dir: tempfile::TempDir,
    state: std::path::PathBuf,
    web: String,
    server: ServerProcess,
    sock: std::path::PathBuf,
}

impl FixtureBox {
    fn start() -> Self {
        let fixture = state_fixtures().pop().unwrap();
        let dir = fixture_state(&fixture);
        let state = dir.path().join("state");
        let web = format!("127.0.0.1:{}", rushes_tests::free_tcp_port());
        let (server, sock) = ServerProcess::start_with_api_and(&state, &["--web", &web]);
        Self {
            fixture,
            dir,
            state,
            web,
            server,
            sock,
        }
    }
}

/// Each `tests/fixtures/state-VERSION` is what a rushesd of that version left after an
/// admin set it up (`tests/fixtures/make-state.sh`). Today's rushesd must take it as
/// it is: the accounts with their roles and passwords, the API token, the targets with
/// their sealed secret, the jobs and alerts, the web certificate and the file-handle
/// key (so clients' handles and pinned fingerprints stay good), and rewrite
/// rushes.toml without losing any of it.
#[test]
fn state_written_by_earlier_versions_loads() {
    for fixture in state_fixtures() {
        let dir = fixture_state(&fixture);
        let state = dir.path().join("state");
        let kept = |name: &str| std::fs::read(state.join(name)).unwrap();
        let (handle_key, certificate) = (kept("handle.key"), kept("web/web-certificate.pem"));
        let web = rushes_tests::free_tcp_port().to_string();
        let web = format!("127.0.0.1:{web}");
        let (server, sock) = ServerProcess::start_with_api_and(&state, &["--web", &web]);
        let c = Client::new(sock.clone());
        let what = fixture.file_name().unwrap().to_string_lossy().into_owned();

        let users: serde_json::Value = c.get("/v1/users").unwrap();
        let user = |name: &str| {
            users
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{what}: account {name} lost: {users}"))
        };
        assert_eq!(user("editor")["uid"], 1500, "{what}");
        assert_eq!(user("editor")["role"], "operator", "{what}");
        assert_eq!(user("colourist")["uid"], 1501, "{what}");
        let tokens: serde_json::Value = c.get("/v1/tokens").unwrap();
        assert!(
            tokens
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "lobby-screen" && t["role"] == "viewer"),
            "{what}: {tokens}"
        );
        let targets: Vec<rushes_api::TargetView> = c.get("/v1/targets").unwrap();
        let wasabi = targets
            .iter()
            .find(|t| t.name == "wasabi")
            .expect("target wasabi");
        assert!(
            wasabi.has_secret,
            "{what}: the sealed secret was lost: {targets:?}"
        );
        assert!(
            targets.iter().any(|t| t.name == "archive"),
            "{what}: {targets:?}"
        );
        let jobs: Vec<Job> = c.get("/v1/jobs").unwrap();
        assert!(
            jobs.iter()
                .any(|j| j.kind == "copy-files" && j.state == rushes_api::JobState::Done),
            "{what}: {jobs:?}"
        );
        // The archive's copy is read from the folder target as it was written.
        let (out, ok) = rushesctl_with_input(&sock, &["target", "check", "archive"], "");
        assert!(ok, "{what}: {out}");
        let alerts: Vec<Alert> = c.get("/v1/alerts").unwrap();
        assert!(
            !alerts
                .iter()
                .any(|a| a.message.contains("rushes.toml") || a.message.contains("seal")),
            "{what}: the old state was taken as damaged: {alerts:?}"
        );
        // A change now rewrites rushes.toml with everything of before still in it.
        let (out, ok) = rushesctl_with_input(
            &sock,
            &["user", "add", "assistant", "--uid", "1502"],
            "assistant-pass\n",
        );
        assert!(ok, "{what}: {out}");
        let toml = std::fs::read_to_string(state.join("rushes.toml")).unwrap();
        for kept in [
            "editor",
            "colourist",
            "assistant",
            "wasabi",
            "AKIAFIXTURE",
            "archive",
        ] {
            assert!(
                toml.contains(kept),
                "{what}: {kept} lost from rushes.toml:\n{toml}"
            );
        }
        assert_eq!(
            kept("handle.key"),
            handle_key,
            "{what}: the file-handle key changed"
        );
        assert_eq!(
            kept("web/web-certificate.pem"),
            certificate,
            "{what}: the web certificate was made anew"
        );
        drop(server);
    }
}

/// The support bundle of a box set up with accounts, tokens, targets with secrets and a
/// certificate: one file, everything someone helping needs, and none of the secrets.
#[test]
fn the_support_bundle_holds_what_helps_and_no_secret() {
    let FixtureBox {
        fixture,
        dir,
        state,
        web: _,
        server: _server,
        sock,
    } = FixtureBox::start();
    let ctl = |args: &[&str], input: &str| rushesctl_with_input(&sock, args, input);
    // Secrets of today beside the fixture's.
    let (out, ok) = ctl(
        &["user", "add", "assistant", "--role", "viewer"],
        "assistant-pass-31\n",
    );
    assert!(ok, "{out}");
    let (made, ok) = ctl(&["token", "create", "wall-display", "--role", "viewer"], "");
    assert!(ok, "{made}");
    let new_token = made
        .split_whitespace()
        .find(|w| w.starts_with("rushes_"))
        .unwrap()
        .to_string();
    let old_token = std::fs::read_to_string(fixture.join("token.txt"))
        .unwrap()
        .trim()
        .to_string();

    let file = dir.path().join("support.tar.zst");
    let (out, ok) = ctl(&["support-bundle", "-o", file.to_str().unwrap()], "");
    assert!(ok && out.contains("files"), "{out}");
    let tar = zstd::decode_all(std::fs::File::open(&file).unwrap()).unwrap();
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let text = |name: &str| {
        String::from_utf8_lossy(
            files
                .get(&format!("rushes-support/{name}"))
                .unwrap_or_else(|| panic!("no {name} in {:?}", files.keys())),
        )
        .into_owned()
    };
    assert!(
        text("versions.txt").contains("rushesd 0.1.0"),
        "{}",
        text("versions.txt")
    );
    assert!(text("rushes.toml").contains("editor") && text("rushes.toml").contains("wasabi"));
    assert!(text("users.json").contains("assistant"));
    assert!(text("jobs.json").contains("copy-files"));
    assert!(
        text("alerts-history.json").contains("wasabi") || text("alerts.json").contains("wasabi")
    );
    for name in [
        "log.txt",
        "disks.json",
        "pools.json",
        "shares.json",
        "targets.json",
        "network.json",
        "update.json",
    ] {
        text(name);
    }

    let keep_out = |what: &str, needle: &[u8]| {
        assert!(!needle.is_empty());
        for (name, bytes) in &files {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{name} holds {what}"
            );
        }
    };
    let state_file = |name: &str| std::fs::read(state.join(name)).unwrap();
    keep_out("a password", b"assistant-pass-31");
    keep_out("a password", b"cutting-room-7");
    keep_out("a password hash", b"$argon2id");
    keep_out("today's token", new_token.as_bytes());
    keep_out("the fixture's token", old_token.as_bytes());
    let tokens: serde_json::Value = serde_json::from_slice(&state_file("api-tokens.json")).unwrap();
    for t in tokens.as_array().unwrap() {
        keep_out("a token's hash", t["hash"].as_str().unwrap().as_bytes());
    }
    keep_out("the S3 secret", b"not-a-real-secret-key-0123456789");
    keep_out("the S3 access key", b"AKIAFIXTURE");
    keep_out("the certificate's key", b"PRIVATE KEY");
    keep_out("the sealing key", &state_file("targets.key"));
    keep_out("the file-handle key", &state_file("handle.key"));
}

/// A config backup of a box set up from the 0.1.0 fixture, restored onto a fresh box:
/// refused with a wrong passphrase or damaged (nothing written), then taken whole.
#[test]
fn a_config_backup_restores_onto_a_fresh_box() {
    let FixtureBox {
        dir,
        state,
        web,
        server: old_box,
        sock,
        ..
    } = FixtureBox::start();
    let file = dir.path().join("box.backup");
    let (out, ok) = rushesctl_with_input(
        &sock,
        &["config", "backup", "-o", file.to_str().unwrap()],
        "correct horse battery\n",
    );
    assert!(ok && out.contains("sealed under the passphrase"), "{out}");
    drop(old_box);
    let backup = std::fs::read(&file).unwrap();
    assert!(
        !backup.windows(11).any(|w| w == b"AKIAFIXTURE")
            && !backup.windows(9).any(|w| w == b"$argon2id"),
        "the backup shows what it should seal"
    );

    let fresh = tempfile::tempdir().unwrap();
    let (mut new_box, new_sock) = ServerProcess::start_with_api_and(fresh.path(), &["--web", &web]);
    // The fresh box makes its certificate as its admin plane starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fresh.path().join("web/web-key.pem").exists()
        || std::net::TcpStream::connect(&web).is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the fresh box's admin plane did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = tree(fresh.path());
    let (out, ok) = rushesctl_with_input(
        &new_sock,
        &["config", "restore", file.to_str().unwrap()],
        "wrong horse battery\n",
    );
    assert!(!ok && out.contains("passphrase is wrong"), "{out}");
    let mut damaged = backup.clone();
    let n = damaged.len();
    damaged[n - 100] ^= 1;
    let damaged_file = dir.path().join("damaged.backup");
    std::fs::write(&damaged_file, &damaged).unwrap();
    let (out, ok) = rushesctl_with_input(
        &new_sock,
        &["config", "restore", damaged_file.to_str().unwrap()],
        "correct horse battery\n",
    );
    assert!(!ok && out.contains("changed or damaged"), "{out}");
    // Read by the box itself (--from), the same checks: damaged, and a file that is
    // no backup.
    let (out, ok) = rushesctl_with_input(
        &new_sock,
        &[
            "config",
            "restore",
            "--from",
            damaged_file.to_str().unwrap(),
        ],
        "correct horse battery\n",
    );
    assert!(!ok && out.contains("changed or damaged"), "{out}");
    let (out, ok) = rushesctl_with_input(
        &new_sock,
        &["config", "restore", "--from", "/etc/hostname"],
        "correct horse battery\n",
    );
    assert!(!ok && out.contains("not a Rushes config backup"), "{out}");
    let after = tree(fresh.path());
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        changed.is_empty() && after.len() == before.len(),
        "a refused restore changed the box: {changed:?}"
    );

    let (out, ok) = rushesctl_with_input(
        &new_sock,
        &["config", "restore", file.to_str().unwrap()],
        "correct horse battery\n",
    );
    assert!(ok && out.contains("restart rushesd to take it"), "{out}");
    new_box.restart();
    let c = Client::new(new_sock.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.get::<Status>("/v1/status").is_err() {
        assert!(
            Instant::now() < deadline,
            "rushesd did not come back after the restore"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let users: serde_json::Value = c.get("/v1/users").unwrap();
    for name in ["editor", "colourist"] {
        assert!(
            users.as_array().unwrap().iter().any(|u| u["name"] == name),
            "{name}: {users}"
        );
    }
    let tokens: serde_json::Value = c.get("/v1/tokens").unwrap();
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "lobby-screen"),
        "{tokens}"
    );
    let targets: Vec<rushes_api::TargetView> = c.get("/v1/targets").unwrap();
    assert!(
        targets.iter().any(|t| t.name == "wasabi" && t.has_secret),
        "the target's sealed secret did not come back: {targets:?}"
    );
    for kept in ["handle.key", "web/web-certificate.pem", "targets.key"] {
        assert_eq!(
            std::fs::read(fresh.path().join(kept)).unwrap(),
            std::fs::read(state.join(kept)).unwrap(),
            "{kept} differs from the old box's"
        );
    }
}
