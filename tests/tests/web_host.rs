//! The admin plane over HTTPS, in host mode (`rushesd host --api --web`): curl (an
//! independent client that checks the certificate against the file the box made) and
//! remote rushesctl against it. Logins, roles, tokens, CSRF, the rate limit, the audit
//! lines, the security headers, the certificate and the limits on slow clients.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rushes_api::{Client, Role};
use rushes_tests::{free_tcp_port, output_with_input, workspace_bin, ServerProcess};
use serde_json::{json, Value};

const PASSWORD: &str = "cutting-room-7";

struct Box {
    server: ServerProcess,
    state: tempfile::TempDir,
    sock: PathBuf,
    web: SocketAddr,
    redirect: SocketAddr,
    /// Where remote rushesctl keeps pinned fingerprints.
    known: PathBuf,
}

impl Box {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more arguments for `rushesd host` (`--catalog`).
    fn start_with(more: &[&str]) -> Self {
        let state = tempfile::tempdir().unwrap();
        let web: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let redirect: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let audit = state.path().join("audit");
        let (web_at, redirect_at) = (web.to_string(), redirect.to_string());
        let mut args = vec![
            "--web",
            &web_at,
            "--web-redirect",
            &redirect_at,
            "--audit-dir",
            audit.to_str().unwrap(),
        ];
        args.extend_from_slice(more);
        let (server, sock) = ServerProcess::start_with_api_and(state.path(), &args);
        let b = Box {
            known: state.path().join("known-boxes"),
            server,
            state,
            sock,
            web,
            redirect,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(b.web).is_err() {
            assert!(
                Instant::now() < deadline,
                "no HTTPS:\n{}",
                b.server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b.socket()
            .send(
                "PUT",
                "/v1/admin/password",
                Some(&json!({ "new": PASSWORD })),
            )
            .unwrap();
        b
    }

    fn socket(&self) -> Client {
        Client::new(&self.sock)
    }

    fn cert(&self) -> PathBuf {
        self.state.path().join("web/web-certificate.pem")
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.web.port())
    }

    fn fingerprint(&self) -> String {
        let info: rushes_api::WebInfo = self.socket().get("/v1/web").unwrap();
        info.certificate.unwrap().fingerprint
    }

    /// `rushesctl --host … ARGS` with `input` on stdin: (stdout+stderr, exit code).
    fn remote(&self, args: &[&str], input: &str) -> (String, i32) {
        let mut cmd = Command::new(workspace_bin("rushesctl"));
        cmd.env("RUSHES_KNOWN_BOXES", &self.known)
            .env_remove("RUSHES_TOKEN")
            .env_remove("RUSHES_FINGERPRINT")
            .args(["--host", &self.web.to_string()])
            .args(args);
        output_with_input(cmd, input)
    }

    /// Install a certificate and key over remote rushesctl with `token`.
    fn install_certificate(&self, token: &str, cert: &Path, key: &Path) -> (String, i32) {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let args = [
            "--token",
            token,
            "web",
            "certificate",
            "--cert",
            cert,
            "--key",
            key,
        ];
        self.remote(&args, "")
    }
}

/// An HTTP answer as curl saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    took: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// One request with curl, checking the box's certificate against `cert`.
fn curl(cert: &Path, method: &str, url: &str, headers: &[String], body: Option<&str>) -> Answer {
    curl_from(None, cert, method, url, headers, body)
}

fn curl_from(
    source: Option<&str>,
    cert: &Path,
    method: &str,
    url: &str,
    headers: &[String],
    body: Option<&str>,
) -> Answer {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "30", "-H", "Expect:", "--cacert"])
        .arg(cert)
        .args(["-X", method]);
    if let Some(s) = source {
        cmd.args(["--interface", s]);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    cmd.arg(url);
    let started = Instant::now();
    let out = cmd.output().expect("curl (make deps installs it)");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        took,
    }
}

/// Log in as `user`; the cookie header and the CSRF header to send with it.
fn login(b: &Box, user: &str, password: &str) -> (String, String) {
    let a = curl(
        &b.cert(),
        "POST",
        &b.url("/v1/session"),
        &[],
        Some(&json!({ "user": user, "password": password }).to_string()),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let cookie = a.header("set-cookie").unwrap().to_string();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    (
        format!("cookie: {pair}"),
        format!("x-csrf-token: {}", a.body["csrf"].as_str().unwrap()),
    )
}

/// The audit log's records of `protocol`, once one of them is `wanted` (the writer
/// thread puts records down in the background).
fn audit(b: &Box, protocol: &str, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records: Vec<Value> = b
            .socket()
            .get(&format!("/v1/audit?protocol={protocol}&limit=1000"))
            .unwrap();
        if records.iter().any(&wanted) || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn https_serves_the_api_only_to_logins_and_tokens_with_the_right_role() {
    let b = Box::start();
    let cert = b.cert();

    // Nothing without a login, and every answer carries the security headers.
    let a = curl(&cert, "GET", &b.url("/v1/status"), &[], None);
    assert_eq!((a.status, a.code()), (401, "login-needed"), "{a:?}");
    let csp = a.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert!(a
        .header("strict-transport-security")
        .unwrap()
        .contains("max-age="));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
    assert!(a.header("server").is_none(), "a version banner: {a:?}");

    // Plain HTTP only redirects.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!(
            "http://127.0.0.1:{}/v1/status?x=1",
            b.redirect.port()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("308 https://127.0.0.1:{}/v1/status?x=1", b.web.port())
    );

    // A wrong password is answered late and refused.
    let body = json!({ "user": "admin", "password": "not-it" }).to_string();
    let a = curl(&cert, "POST", &b.url("/v1/session"), &[], Some(&body));
    assert_eq!((a.status, a.code()), (403, "wrong-password"), "{a:?}");
    assert!(
        a.took >= Duration::from_millis(900),
        "answered in {:?}",
        a.took
    );

    // The admin logs in; a change without the session's CSRF token is refused.
    let (cookie, csrf) = login(&b, "admin", PASSWORD);
    let a = curl(
        &cert,
        "GET",
        &b.url("/v1/status"),
        std::slice::from_ref(&cookie),
        None,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let me = curl(
        &cert,
        "GET",
        &b.url("/v1/session"),
        std::slice::from_ref(&cookie),
        None,
    );
    assert_eq!(
        (me.body["user"].as_str(), me.body["role"].as_str()),
        (Some("admin"), Some("admin"))
    );
    let token = json!({ "name": "wall-screen", "role": "viewer" }).to_string();
    let a = curl(
        &cert,
        "POST",
        &b.url("/v1/tokens"),
        std::slice::from_ref(&cookie),
        Some(&token),
    );
    assert_eq!((a.status, a.code()), (403, "csrf"), "{a:?}");
    // … and so is one from another site's page, even with the token.
    let evil = "origin: https://evil.example".to_string();
    let a = curl(
        &cert,
        "POST",
        &b.url("/v1/tokens"),
        &[cookie.clone(), csrf.clone(), evil],
        Some(&token),
    );
    assert_eq!((a.status, a.code()), (403, "csrf"), "{a:?}");
    let a = curl(
        &cert,
        "POST",
        &b.url("/v1/tokens"),
        &[cookie.clone(), csrf.clone()],
        Some(&token),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let viewer = a.body["secret"].as_str().unwrap().to_string();
    assert!(
        !std::fs::read_to_string(b.state.path().join("api-tokens.json"))
            .unwrap()
            .contains(&viewer)
    );

    // A viewer token reads, and is refused on an admin call.
    let bearer = format!("authorization: Bearer {viewer}");
    let a = curl(
        &cert,
        "GET",
        &b.url("/v1/shares"),
        std::slice::from_ref(&bearer),
        None,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let share = json!({ "name": "grading", "pool": "none" }).to_string();
    let a = curl(
        &cert,
        "POST",
        &b.url("/v1/shares"),
        std::slice::from_ref(&bearer),
        Some(&share),
    );
    assert_eq!((a.status, a.code()), (403, "forbidden"), "{a:?}");
    let a = curl(
        &cert,
        "GET",
        &b.url("/v1/tokens"),
        std::slice::from_ref(&bearer),
        None,
    );
    assert_eq!(a.status, 403, "{a:?}");

    // An account with the operator role logs in with its own password: it may run
    // work (cancel a job) but not change configuration.
    let socket = b.socket();
    let _: rushes_api::User = socket
        .post(
            "/v1/users",
            &json!({ "name": "assist", "password": "assist-pass-1", "role": "operator" }),
        )
        .unwrap();
    let (op_cookie, op_csrf) = login(&b, "assist", "assist-pass-1");
    let a = curl(
        &cert,
        "POST",
        &b.url("/v1/jobs/999/cancel"),
        &[op_cookie.clone(), op_csrf.clone()],
        None,
    );
    assert_eq!(a.status, 404, "an operator reaches the job call: {a:?}");
    let a = curl(
        &cert,
        "POST",
        &b.url("/v1/shares"),
        &[op_cookie.clone(), op_csrf.clone()],
        Some(&share),
    );
    assert_eq!((a.status, a.code()), (403, "forbidden"), "{a:?}");
    // Taking the role away ends the session.
    socket
        .send(
            "PUT",
            "/v1/users/assist/role",
            Some(&json!({ "role": null })),
        )
        .unwrap();
    let a = curl(&cert, "GET", &b.url("/v1/status"), &[op_cookie], None);
    assert_eq!(a.status, 401, "{a:?}");

    // Revoked: refused from then on.
    socket
        .send::<()>("DELETE", "/v1/tokens/wall-screen", None)
        .unwrap();
    let a = curl(&cert, "GET", &b.url("/v1/shares"), &[bearer], None);
    assert_eq!((a.status, a.code()), (401, "login-needed"), "{a:?}");

    // Logging out ends the session.
    let a = curl(
        &cert,
        "DELETE",
        &b.url("/v1/session"),
        &[cookie.clone(), csrf.clone()],
        None,
    );
    assert_eq!(a.status, 204, "{a:?}");
    assert!(a.header("set-cookie").unwrap().contains("Max-Age=0"));
    let a = curl(&cert, "GET", &b.url("/v1/status"), &[cookie], None);
    assert_eq!(a.status, 401, "{a:?}");

    // Every admin action is in the audit log: who, from where, what, the answer.
    let records = audit(&b, "https", |r| r["user"] == "token:wall-screen");
    let has = |user: &str, op: &str, path: &str, result: &str| {
        records.iter().any(|r| {
            r["user"] == user
                && r["op"] == op
                && r["path"] == path
                && r["result"] == result
                && r["client"] == "127.0.0.1"
        })
    };
    assert!(
        has("admin", "LOGIN", "/v1/session", "refused 403"),
        "{records:#?}"
    );
    assert!(has("admin", "LOGIN", "/v1/session", "ok"), "{records:#?}");
    assert!(has("admin", "POST", "/v1/tokens", "ok"), "{records:#?}");
    assert!(
        has("admin", "POST", "/v1/tokens", "refused 403"),
        "{records:#?}"
    );
    assert!(
        has("token:wall-screen", "POST", "/v1/shares", "refused 403"),
        "{records:#?}"
    );
    let deleted = |r: &Value| {
        r["op"] == "DELETE"
            && r["path"] == "/v1/tokens/wall-screen"
            && r["user"] == "root (console)"
    };
    let console = audit(&b, "console", deleted);
    assert!(console.iter().any(deleted), "{console:#?}");
}

#[test]
fn wrong_passwords_make_the_address_wait_but_not_the_console_or_other_addresses() {
    let b = Box::start();
    let cert = b.cert();
    let wrong = json!({ "user": "admin", "password": "guess" }).to_string();
    for _ in 0..5 {
        let a = curl(&cert, "POST", &b.url("/v1/session"), &[], Some(&wrong));
        assert_eq!(a.status, 403, "{a:?}");
    }
    // The sixth is refused at once, the right password too, and says how long to wait.
    let right = json!({ "user": "admin", "password": PASSWORD }).to_string();
    let a = curl(&cert, "POST", &b.url("/v1/session"), &[], Some(&right));
    assert_eq!((a.status, a.code()), (429, "too-many-logins"), "{a:?}");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("try again in"));
    assert!(a.took < Duration::from_millis(900), "{:?}", a.took);
    // The console's lock on the socket still opens.
    b.socket()
        .send(
            "POST",
            "/v1/admin/login",
            Some(&json!({ "password": PASSWORD })),
        )
        .unwrap();
    // Another address logs in.
    let a = curl_from(
        Some("127.0.0.2"),
        &cert,
        "POST",
        &b.url("/v1/session"),
        &[],
        Some(&right),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let limited = |r: &Value| r["op"] == "LOGIN" && r["result"] == "refused 429";
    let records = audit(&b, "https", limited);
    assert!(records.iter().any(limited), "{records:#?}");
}

#[test]
fn remote_rushesctl_pins_the_box_and_manages_it_with_a_token() {
    let b = Box::start();
    let fp = b.fingerprint();
    let local = |args: &[&str]| {
        let out = Command::new(workspace_bin("rushesctl"))
            .arg("--socket")
            .arg(&b.sock)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(local(&["web", "show"]).contains(&fp));
    let made = local(&[
        "token",
        "create",
        "edit-bay",
        "--role",
        "admin",
        "--expires",
        "30d",
    ]);
    let admin = made.lines().last().unwrap().trim().to_string();
    assert!(admin.starts_with("rushes_"), "{made}");
    let made = local(&["token", "create", "lobby", "--role", "viewer"]);
    let viewer = made.lines().last().unwrap().trim().to_string();

    // First contact: not pinned yet, so nothing is sent and the fingerprint is shown.
    let (out, code) = b.remote(&["--token", &admin, "status"], "");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&fp) && out.contains("--fingerprint"), "{out}");
    // A wrong fingerprint is refused.
    let other = fp.replace(&fp[..2], if &fp[..2] == "00" { "11" } else { "00" });
    let (out, code) = b.remote(&["--token", &admin, "--fingerprint", &other, "status"], "");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not the pinned"), "{out}");
    // The right one works and is remembered.
    let (out, code) = b.remote(&["--token", &admin, "--fingerprint", &fp, "status"], "");
    assert_eq!(code, 0, "{out}");
    let (out, code) = b.remote(&["--token", &admin, "users"], "");
    assert_eq!(code, 0, "{out}");
    // Commands that change things work remotely too.
    let (out, code) = b.remote(
        &[
            "--token", &admin, "user", "add", "colorist", "--role", "viewer",
        ],
        "grade-pass-1\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("web login as viewer"), "{out}");
    let (out, code) = b.remote(&["--token", &admin, "token", "list"], "");
    assert!(
        code == 0 && out.contains("edit-bay") && out.contains("lobby"),
        "{out}"
    );
    assert!(!out.contains(&admin), "a token shown back: {out}");
    // A viewer's token is refused on an admin command, with the reason.
    let (out, code) = b.remote(
        &[
            "--token", &viewer, "token", "create", "more", "--role", "admin",
        ],
        "",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("needs admin"), "{out}");
    // No token: a login is asked for.
    let (out, code) = b.remote(&["pools"], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("log in first"), "{out}");

    // A bad certificate is refused and the old one stays in use.
    let dir = b.state.path();
    let bad = dir.join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (out, code) = b.install_certificate(&admin, &bad, &bad);
    assert_eq!(code, 1, "{out}");
    assert_eq!(b.fingerprint(), fp);
    // The facility's own (made here with openssl) goes in; the pin then no longer
    // matches until the new fingerprint is given.
    let (cert, key) = (dir.join("facility.pem"), dir.join("facility.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=nas.facility.example",
            "-addext",
            "subjectAltName=DNS:nas.facility.example,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (out, code) = b.install_certificate(&admin, &cert, &key);
    assert_eq!(code, 0, "{out}");
    let new_fp = b.fingerprint();
    assert_ne!(new_fp, fp);
    assert!(out.contains(&new_fp), "{out}");
    let (out, code) = b.remote(&["--token", &admin, "status"], "");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not the pinned"), "{out}");
    let (out, code) = b.remote(&["--token", &admin, "--fingerprint", &new_fp, "status"], "");
    assert_eq!(code, 0, "{out}");
    // curl trusts it by the facility's own certificate file.
    let a = curl(
        &cert,
        "GET",
        &b.url("/v1/status"),
        &[format!("authorization: Bearer {admin}")],
        None,
    );
    assert_eq!(a.status, 200, "{a:?}");
}

#[test]
fn an_expired_token_is_refused() {
    let b = Box::start();
    let made: rushes_api::CreatedToken = b
        .socket()
        .post(
            "/v1/tokens",
            &json!({ "name": "night-job", "role": Role::Operator, "expires": "1h" }),
        )
        .unwrap();
    let bearer = format!("authorization: Bearer {}", made.secret);
    let a = curl(
        &b.cert(),
        "GET",
        &b.url("/v1/jobs"),
        std::slice::from_ref(&bearer),
        None,
    );
    assert_eq!(a.status, 200, "{a:?}");
    // An hour later (the file says so), after a restart.
    let file = b.state.path().join("api-tokens.json");
    let mut tokens: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    tokens[0]["expires"] = json!(made.token.created - 1);
    std::fs::write(&file, serde_json::to_vec(&tokens).unwrap()).unwrap();
    let mut b = b;
    b.server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(b.web).is_err() {
        assert!(Instant::now() < deadline, "no HTTPS after the restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = curl(&b.cert(), "GET", &b.url("/v1/jobs"), &[bearer], None);
    assert_eq!((a.status, a.code()), (401, "login-needed"), "{a:?}");
}

#[test]
fn slow_and_greedy_clients_are_cut_off_and_the_admin_still_gets_in() {
    let b = Box::start();
    // Forty connections from one address that never say anything: past 32 they are
    // closed at once, and the rest when the handshake's time is up.
    let mut idle = Vec::new();
    for _ in 0..40 {
        let s = socket_from("127.0.0.3", b.web);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        idle.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let closed_at_once = idle
        .iter_mut()
        .filter_map(|s| {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            matches!(s.read(&mut [0u8; 1]), Ok(0)).then_some(())
        })
        .count();
    assert!(
        closed_at_once >= 8,
        "only {closed_at_once} of the 40 closed at once"
    );
    // Meanwhile NFS is served, and the admin logs in and works from another address.
    let started = Instant::now();
    rushes_tests::guest::write_share_file_blocking(
        b.server.port(),
        "/demo",
        "during.mov",
        &[3u8; 1 << 20],
    );
    assert_eq!(
        std::fs::read(b.state.path().join("demo/during.mov"))
            .unwrap()
            .len(),
        1 << 20
    );
    let (cookie, _) = login(&b, "admin", PASSWORD);
    let a = curl(
        &b.cert(),
        "GET",
        &b.url("/v1/status"),
        std::slice::from_ref(&cookie),
        None,
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // An oversized body is refused, not read whole; the session still works.
    let huge = format!(
        "{{\"user\":\"admin\",\"password\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let path = b.state.path().join("huge.json");
    std::fs::write(&path, huge).unwrap();
    // The box answers 413 as soon as it reads the length and stops reading: curl, still
    // sending, sees either that answer or the connection cut under it (exit 55 or 56),
    // whichever comes first. Both are a refusal; a 2xx, or a wait for the whole body, is
    // not.
    let sent = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "30", "-H", "Expect:", "--cacert"])
        .arg(b.cert())
        .args([
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", path.display()))
        .arg(b.url("/v1/session"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let status: Option<u16> = said
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok());
    let cut = matches!(out.status.code(), Some(55 | 56));
    assert!(
        status == Some(413) || (cut && status.is_none()),
        "a 2 MiB login was not refused for its size: {:?} {said} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the refusal took {:?}",
        sent.elapsed()
    );
    // The silent ones are closed when the handshake's time runs out.
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in &mut idle {
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        let mut byte = [0u8; 1];
        assert!(
            matches!(s.read(&mut byte), Ok(0) | Err(_)),
            "an idle connection is still open"
        );
    }
    let a = curl(&b.cert(), "GET", &b.url("/v1/status"), &[cookie], None);
    assert_eq!(a.status, 200, "{a:?}");
}

/// A TCP connection to `to` from the loopback address `from`.
fn socket_from(from: &str, to: SocketAddr) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    bind(&fd, &local).unwrap();
    connect(&fd, &to).unwrap();
    TcpStream::from(fd)
}

/// The page's text as curl got it (curl_from keeps only JSON bodies).
fn page_text(b: &Box, path: &str, headers: &[String]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--path-as-is",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(b.cert());
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(b.url(path)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn the_web_console_shows_each_page_escapes_names_and_serves_only_its_own_files() {
    let b = Box::start_with(&["--catalog"]);
    // A file whose name is markup, written by a real NFS client.
    let evil = "<img src=x onerror=alert(1)>.mov";
    rushes_tests::guest::write_share_file_blocking(b.server.port(), "/demo", evil, &[9u8; 4096]);

    // No login: the login page, which needs no script of anyone else's.
    let (code, _) = page_text(&b, "/ui", &[]);
    assert_eq!(code, 303);
    let (code, login_page) = page_text(&b, "/login", &[]);
    assert_eq!(code, 200);
    assert!(
        login_page.contains("<script src=\"/static/app.js\""),
        "{login_page}"
    );
    assert_eq!(login_page.matches("<script").count(), 1, "{login_page}");
    let (code, js) = page_text(&b, "/static/app.js", &[]);
    assert!(code == 200 && js.contains("X-CSRF-Token"));
    // Only the box's own files: `../` and the like find nothing.
    for path in [
        "/static/../v1/status",
        "/static/%2e%2e/v1/status",
        "/static/..%2fapp.js",
        "/static/app.js/..",
        "/static/",
    ] {
        let (code, body) = page_text(&b, path, &[]);
        assert!(code == 404 || code == 303, "{path}: {code} {body}");
        assert!(!body.contains("uptime"), "{path}: {body}");
    }

    let (cookie, _) = login(&b, "admin", PASSWORD);
    let session = std::slice::from_ref(&cookie);
    for (path, title) in [
        ("/ui", "Dashboard"),
        ("/ui/activity", "Activity"),
        ("/ui/search", "Search"),
        ("/ui/placement", "Placement and copies"),
        ("/ui/storage", "Pools and disks"),
        ("/ui/shares", "Shares and accounts"),
        ("/ui/jobs", "Jobs"),
        ("/ui/alerts", "Alerts"),
        ("/ui/settings", "Settings"),
    ] {
        let (code, page) = page_text(&b, path, session);
        assert_eq!(code, 200, "{path}: {page}");
        assert!(
            page.contains(&format!("<h1>{title}</h1>")),
            "{path}: {page}"
        );
        assert!(
            !page.contains("Cannot show"),
            "{path} could not read the API: {page}"
        );
    }
    // Settings show the certificate's fingerprint.
    let (_, settings) = page_text(&b, "/ui/settings", session);
    assert!(settings.contains(&b.fingerprint()), "{settings}");

    // The file's name is shown as text on the activity page and in search.
    let escaped = "&lt;img src=x onerror=alert(1)&gt;.mov";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, activity) = page_text(&b, "/ui/activity", session);
        let (_, search) = page_text(&b, "/ui/search?q=", session);
        assert!(
            !activity.contains(evil) && !search.contains(evil),
            "a name went in as markup"
        );
        if activity.contains(escaped) && search.contains(escaped) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the name is not shown:\n{activity}\n{search}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A viewer sees the pages, but not Settings (nor its link).
    let socket = b.socket();
    let _: rushes_api::User = socket
        .post(
            "/v1/users",
            &json!({ "name": "runner", "password": "runner-pass-1", "role": "viewer" }),
        )
        .unwrap();
    let (viewer, _) = login(&b, "runner", "runner-pass-1");
    let (code, dash) = page_text(&b, "/ui", std::slice::from_ref(&viewer));
    assert_eq!(code, 200);
    assert!(!dash.contains("/ui/settings"), "{dash}");
    let (_, shares) = page_text(&b, "/ui/shares", std::slice::from_ref(&viewer));
    assert!(shares.contains("<h1>Shares and accounts</h1>") && !shares.contains("Create a share"));
    let (code, _) = page_text(&b, "/ui/settings", &[viewer]);
    assert_eq!(code, 403);
}

#[test]
fn a_request_refused_before_its_body_arrives_leaves_the_connection_usable() {
    // A client sends its headers, then its body a moment later (a loaded machine, a slow
    // link); the box may refuse it on the headers alone (no login, no CSRF token, no
    // such method). The connection must still take the client's next request: browsers
    // and HTTP libraries send it there at once, and a POST lost that way is not resent.
    // Python's ssl, a TLS client that is not ours, drives it.
    let b = Box::start();
    let script = r#"
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False
host, port = sys.argv[2].rsplit(":", 1)
def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return "EOF"
        data += d
    head, _, body = data.partition(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    while length and len(body) < length[0]:
        d = s.recv(65536)
        if not d:
            return "EOF"
        body += d
    return head.split(b"\r\n")[0].decode()
for method, path, extra in [("TRACE", "/v1/session", ""), ("POST", "/v1/copies/audit", ""), ("POST", "/v1/session", "")]:
    s = ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
    body = b'{"user":"a","password":"bbbbbbbb"}'
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: box\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode())
    time.sleep(0.3)
    s.sendall(body)
    first = answer(s)
    time.sleep(0.3)
    try:
        s.sendall(b"GET /v1/session HTTP/1.1\r\nHost: box\r\n\r\n")
        second = answer(s)
    except OSError as e:
        second = "EOF (" + type(e).__name__ + ")"
    print(f"{method} {path}: {first} / then {second}")
"#;
    let out = Command::new("python3")
        .args(["-c", script, b.cert().to_str().unwrap(), &b.web.to_string()])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in lines {
        assert!(
            line.contains(" / then HTTP/1.1 401"),
            "the next request on the connection was lost: {line}"
        );
    }
}
