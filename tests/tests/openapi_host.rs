//! The OpenAPI document against the API that serves it (`rushesd host`): every field of
//! every answer is described, and schemathesis, generating requests from the document
//! and sending them over HTTPS through the admin plane's gate with an admin token, finds
//! no server error and no answer outside its schema.

use std::process::Command;

use rushes_api::Client;
use rushes_tests::guest::write_share_file_blocking;
use rushes_tests::openapi::{schemathesis_bin, undocumented};
use rushes_tests::ServerProcess;
use serde_json::Value;

#[test]
fn every_field_of_every_answer_is_in_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let (server, sock) = ServerProcess::start_with_api_and(dir.path(), &["--catalog"]);
    let c = Client::new(&sock);
    // Traffic, so the activity answers carry rows and the audit log records.
    write_share_file_blocking(server.port(), "/demo", "reel-1.mov", &[7u8; 256 << 10]);
    let doc: Value = c.get("/v1/openapi.json").unwrap();
    let (mut checked, mut found) = (0, Vec::new());
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        let url = match path.as_str() {
            // Not JSON, or the document itself.
            "/v1/audit/export" | "/v1/openapi.json" => continue,
            // One pool, share or job: host mode has none made through the API; likewise
            // a file of a configured share to explain (api_host.rs explains one).
            p if p.contains('{') || p == "/v1/placement/explain" => continue,
            // A browser's session: only over HTTPS (web_host.rs reads it there).
            "/v1/session" => continue,
            // A file's copies: the file the traffic wrote.
            "/v1/copies" => "/v1/copies?share=demo&path=reel-1.mov".to_string(),
            p => p.to_string(),
        };
        let resp = c.raw("GET", &url, None).unwrap();
        assert_eq!(
            resp.status,
            200,
            "GET {url}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "GET {path} documents no JSON answer");
        undocumented(&doc, schema, &body, &url, &mut found);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} answers checked");
    assert!(
        found.is_empty(),
        "fields the document does not describe: {found:#?}"
    );
    let activity: Value = c
        .get("/v1/activity/report?window=minute&by=client")
        .unwrap();
    assert!(
        !activity["rows"].as_array().unwrap().is_empty(),
        "the traffic was not seen: {activity}"
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let bin = schemathesis_bin();
    assert!(
        bin.exists(),
        "{} is missing: `make deps` installs schemathesis from PyPI",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let web = format!("127.0.0.1:{}", rushes_tests::free_tcp_port());
    let (server, sock) =
        ServerProcess::start_with_api_and(dir.path(), &["--catalog", "--web", &web]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(&web).is_err() {
        assert!(std::time::Instant::now() < deadline, "no HTTPS");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let token: rushes_api::CreatedToken = Client::new(&sock)
        .post(
            "/v1/tokens",
            &serde_json::json!({ "name": "schemathesis-run-7f3a", "role": "admin" }),
        )
        .unwrap();
    // The box's own certificate is the CA bundle: TLS is checked, not skipped.
    let cert = dir.path().join("web/web-certificate.pem");
    let out = Command::new(&bin)
        .current_dir(dir.path())
        .args([
            "run",
            &format!("https://{web}/v1/openapi.json"),
            "--tls-verify",
            cert.to_str().unwrap(),
            "--header",
            &format!("Authorization: Bearer {}", token.secret),
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            // Host mode acts on this machine's disks and network: no pool is created,
            // grown or rebuilt, no bay discovered, connected or attached, no card run.
            // Nor is the run's own token revoked (schemathesis learns its name from
            // GET /v1/tokens); web_host revokes tokens.
            "--exclude-path-regex",
            r"^/v1/(pools|pools/\{name\}/(grow|replace)|fabrics/(discover|connect)|card(/.*)?|tokens/\{name\})$",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            "--output-truncate",
            "false",
        ])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}\nrushesd:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    // It really ran the operations, not an empty selection.
    assert!(report.contains("passed"), "{report}");
}
