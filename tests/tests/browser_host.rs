//! The web console in a real browser: Debian's chromium, headless, driven through
//! chromedriver (WebDriver), against `rushesd host --web` with a real NFS client
//! writing. One browser session serves every scenario, in the order a person would
//! meet them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use rushes_tests::browser::{press, retype, wait_for_port, Browser};
use rushes_tests::{free_tcp_port, ServerProcess};
use serde_json::{json, Value};

const PASSWORD: &str = "cutting-room-7";
/// Poll `check` for up to `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    loop {
        match check().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => last = e,
        }
        assert!(Instant::now() < deadline, "{what} ({last})");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> Result<String, String> {
    c.find(Locator::Css(css))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())
}

async fn click(c: &Client, css: &str) {
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    el.click().await.unwrap_or_else(|e| panic!("{css}: {e}"));
}

/// The restore form's API call.
const RESTORE: &str = "POST /v1/config/restore";

/// Wait until the form sending `api` shows `words` in its `part` (`.error`, `.result`).
async fn form_comes_to_say(c: &Client, api: &str, part: &str, words: &str) {
    let css = format!("form[data-api='{api}'] {part}");
    eventually(20, &format!("{css} to say {words:?}"), || async {
        Ok(text_of(c, &css).await?.contains(words))
    })
    .await;
}

/// Run `script` in the page and wait for the callback it is given (the last argument).
async fn in_page(c: &Client, script: &str) -> Value {
    c.execute_async(script, vec![])
        .await
        .expect("the script runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_watches_activity_searches_and_is_kept_safe() {
    let state = tempfile::tempdir().unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let (server, sock) =
        ServerProcess::start_with_api_and(state.path(), &["--catalog", "--web", &web.to_string()]);
    wait_for_port(web).expect("rushesd's HTTPS");
    rushes_api::Client::new(&sock)
        .send(
            "PUT",
            "/v1/admin/password",
            Some(&json!({ "new": PASSWORD })),
        )
        .unwrap();
    let port = server.port();
    // A clip whose name is markup, written by a real NFS client.
    let evil = "<img src=x onerror=alert(1)>.mov";
    tokio::task::spawn_blocking(move || {
        rushes_tests::guest::write_share_file_blocking(port, "/demo", evil, &[5u8; 8192])
    })
    .await
    .unwrap();

    let browser = Browser::start(1280, 1000).await.unwrap();
    let c = &browser.client;
    let base = format!("https://{web}");

    // Not logged in: the login page. A wrong password is answered late, in the page.
    c.goto(&format!("{base}/ui/activity")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    let password = c.find(Locator::Css("input[name=password]")).await.unwrap();
    password.send_keys("not-the-password").await.unwrap();
    let started = Instant::now();
    click(c, "#login button").await;
    eventually(10, "the wrong password is said", || async {
        Ok(text_of(c, "#login .error")
            .await?
            .contains("wrong user name or password"))
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // The right one: the dashboard.
    password.clear().await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    click(c, "#login button").await;
    eventually(10, "the dashboard after the login", || async {
        Ok(text_of(c, "h1").await? == "Dashboard")
    })
    .await;
    let dash = text_of(c, "main").await.unwrap();
    assert!(
        dash.contains("Throughput") && dash.contains("Alerts"),
        "{dash}"
    );

    // The session's cookie is out of the page's reach.
    let cookies = in_page(c, "arguments[0](document.cookie)").await;
    assert_eq!(cookies, json!(""), "a script can read the session cookie");
    // A change without the CSRF token is refused, even from the box's own page.
    let status = in_page(
        c,
        "fetch('/v1/tokens', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'x', role: 'viewer'})}).then(r => arguments[0](r.status))",
    )
    .await;
    assert_eq!(status, json!(403));

    // Add an account from the Shares and accounts page (host mode has no pools, so a
    // share cannot be made here; the form's path is the same).
    c.goto(&format!("{base}/ui/shares")).await.unwrap();
    let form = c
        .find(Locator::Css("form[data-api='POST /v1/users']"))
        .await
        .unwrap();
    for (field, text) in [
        ("input[name=name]", "colorist"),
        ("input[name=password]", "grade-pass-1"),
    ] {
        let input = form.find(Locator::Css(field)).await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    let role = form.find(Locator::Css("select[name=role]")).await.unwrap();
    role.select_by_value("viewer").await.unwrap();
    let add = form.find(Locator::Css("button")).await.unwrap();
    add.click().await.unwrap();
    eventually(10, "the new account listed", || async {
        let main = text_of(c, "main").await?;
        Ok(main.contains("colorist") && main.contains("viewer"))
    })
    .await;

    // Settings: the time zone changed from its form, the rest kept as it was.
    c.goto(&format!("{base}/ui/settings")).await.unwrap();
    let form = c
        .find(Locator::Css("form[data-api='PUT /v1/settings']"))
        .await
        .unwrap();
    let zone = form
        .find(Locator::Css("input[name=timezone]"))
        .await
        .unwrap();
    zone.clear().await.unwrap();
    zone.send_keys("Asia/Tokyo").await.unwrap();
    // And a fixed address with jumbo frames for every wired NIC, in the empty row.
    for (field, text) in [
        ("network.0.interface", "*"),
        ("network.0.address", "10.10.0.5/24"),
        ("network.0.gateway", "10.10.0.1"),
        ("network.0.dns", "10.10.0.2, 10.10.0.3"),
        ("network.0.mtu", "9000"),
    ] {
        form.find(Locator::Css(&format!("input[name='{field}']")))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    form.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let api = rushes_api::Client::new(&sock);
    eventually(10, "the time zone saved", || async {
        let set: rushes_api::Settings = api.get("/v1/settings").map_err(|e| e.to_string())?;
        Ok(set.timezone.as_deref() == Some("Asia/Tokyo"))
    })
    .await;
    let set: rushes_api::Settings = api.get("/v1/settings").unwrap();
    assert_eq!(
        set.network,
        [rushes_api::NetworkSetting {
            interface: "*".into(),
            address: Some("10.10.0.5/24".into()),
            gateway: Some("10.10.0.1".into()),
            dns: vec!["10.10.0.2".into(), "10.10.0.3".into()],
            mtu: Some(9000),
        }]
    );
    // The page shows the row back, and a new empty one under it.
    c.refresh().await.unwrap();
    let address = c
        .find(Locator::Css("input[name='network.0.address']"))
        .await
        .unwrap();
    assert_eq!(
        address.prop("value").await.unwrap().as_deref(),
        Some("10.10.0.5/24")
    );
    assert!(c
        .find(Locator::Css("input[name='network.1.interface']"))
        .await
        .is_ok());

    // Backup and support, from the same page: the browser saves the sealed config and a
    // support bundle; a changed setting comes back when the browser sends the file back.
    let backup_form = c
        .find(Locator::Css("form[data-api='POST /v1/config/backup']"))
        .await
        .unwrap();
    retype(&backup_form, "input[name=passphrase]", "vault-door-42")
        .await
        .unwrap();
    press(&backup_form, "button").await.unwrap();
    let saved = browser
        .downloaded("rushes-config-", Duration::from_secs(20))
        .await
        .unwrap();
    let sealed = std::fs::read(&saved).unwrap();
    assert!(sealed.starts_with(b"rushes-config-backup\n"), "{saved:?}");
    assert!(
        !sealed.windows(10).any(|w| w == b"Asia/Tokyo"),
        "the backup's settings are not sealed"
    );
    let said = text_of(c, "form[data-api='POST /v1/config/backup'] .result")
        .await
        .unwrap();
    assert!(said.starts_with("Saved rushes-config-"), "{said}");
    click(c, "button[data-api='POST /v1/support-bundle']").await;
    let bundle = browser
        .downloaded("rushes-support-", Duration::from_secs(30))
        .await
        .unwrap();
    let bytes = std::fs::read(&bundle).unwrap();
    assert!(
        bundle.to_string_lossy().ends_with(".tar.zst")
            && bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "{bundle:?}: not a zstd file"
    );
    let mut changed = api.get::<rushes_api::Settings>("/v1/settings").unwrap();
    changed.timezone = Some("Europe/Paris".into());
    api.send::<Value>("PUT", "/v1/settings", Some(&json!(changed)))
        .unwrap();
    let restore = |passphrase: &'static str| {
        let saved = saved.clone();
        async move {
            let form = c
                .find(Locator::Css(&format!("form[data-api='{RESTORE}']")))
                .await
                .unwrap();
            // (A file field takes the path of the file to send.)
            retype(&form, "input[name=content]", saved.to_str().unwrap())
                .await
                .unwrap();
            retype(&form, "input[name=passphrase]", passphrase)
                .await
                .unwrap();
            press(&form, "button").await.unwrap();
            // The page asks before it replaces anything.
            c.accept_alert().await.unwrap();
        }
    };
    restore("not-the-passphrase").await;
    form_comes_to_say(c, RESTORE, ".error", "passphrase is wrong").await;
    let toml = state.path().join("rushes.toml");
    assert!(std::fs::read_to_string(&toml)
        .unwrap()
        .contains("Europe/Paris"));
    c.refresh().await.unwrap();
    restore("vault-door-42").await;
    form_comes_to_say(c, RESTORE, ".result", "restart rushesd").await;
    let restored = std::fs::read_to_string(&toml).unwrap();
    assert!(
        restored.contains("Asia/Tokyo") && !restored.contains("Europe/Paris"),
        "{restored}"
    );

    // The activity chart moves while a client copies: its peak climbs from the few KiB
    // of the first file to the MiB a second of the copy, without a reload.
    c.goto(&format!("{base}/ui/activity")).await.unwrap();
    let legend = || async {
        let chart = c
            .find(Locator::Css("#chart"))
            .await
            .map_err(|e| e.to_string())?;
        chart.text().await.map_err(|e| e.to_string())
    };
    let before = legend().await.unwrap();
    assert!(
        before.contains("peak") && !before.contains("MiB/s"),
        "{before}"
    );
    let copying = tokio::task::spawn_blocking(move || {
        for i in 0..6 {
            rushes_tests::guest::write_share_file_blocking(
                port,
                "/demo",
                &format!("take-{i}.mov"),
                &vec![1u8; 2 << 20],
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    eventually(20, "the chart to move", || async {
        let now = legend().await?;
        Ok(now.contains("MiB/s") && now.contains("127.0.0.1"))
    })
    .await;
    let path_before = c
        .find(Locator::Css("#chart polyline"))
        .await
        .unwrap()
        .attr("points")
        .await
        .unwrap();
    eventually(10, "the line to change as the seconds pass", || async {
        let line = c
            .find(Locator::Css("#chart polyline"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(line.attr("points").await.map_err(|e| e.to_string())? != path_before)
    })
    .await;
    // The latency chart beside it has the client's line too.
    let latency = text_of(c, "#latency-chart").await.unwrap();
    assert!(
        latency.contains("127.0.0.1") && (latency.contains("µs") || latency.contains("ms")),
        "{latency}"
    );
    copying.await.unwrap();
    // Per share, and over the hour: the share's line, a point a minute.
    click(c, "p.choices a[href*='by=share']").await;
    eventually(10, "the charts per share", || async {
        Ok(text_of(c, "#chart").await?.contains("demo"))
    })
    .await;
    click(c, "p.choices a[href*='window=hour']").await;
    eventually(10, "the charts over the hour", || async {
        let chart = text_of(c, "#chart").await?;
        Ok(chart.contains("demo") && chart.contains("the last hour"))
    })
    .await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .query()
        .unwrap()
        .contains("by=share"));
    // The markup name is text in the top files, and nothing ran.
    let top = text_of(c, "main").await.unwrap();
    assert!(top.contains(evil), "{top}");
    assert!(
        c.get_alert_text().await.is_err(),
        "a script from a file name ran"
    );

    // Search, and open the clip.
    c.goto(&format!("{base}/ui/search")).await.unwrap();
    eventually(20, "the clip found", || async {
        c.goto(&format!("{base}/ui/search?q="))
            .await
            .map_err(|e| e.to_string())?;
        Ok(text_of(c, "table.results").await?.contains(evil))
    })
    .await;
    let link = c
        .find(Locator::XPath(
            "//table[contains(@class,'results')]//a[contains(., 'onerror')]",
        ))
        .await
        .unwrap();
    link.click().await.unwrap();
    eventually(10, "the clip's page", || async {
        Ok(text_of(c, "h1").await? == evil)
    })
    .await;
    let details = text_of(c, "main").await.unwrap();
    assert!(
        details.contains("Timecode") && details.contains("demo"),
        "{details}"
    );
    assert!(
        c.get_alert_text().await.is_err(),
        "a script from a file name ran"
    );
    let images = in_page(
        c,
        "arguments[0](document.querySelectorAll('img[src=x]').length)",
    )
    .await;
    assert_eq!(images, json!(0));

    // Logging out ends the session: the pages send the browser back to the login.
    click(c, "button[data-logout]").await;
    eventually(10, "the login page after logging out", || async {
        Ok(c.current_url().await.map_err(|e| e.to_string())?.path() == "/login")
    })
    .await;
    c.goto(&format!("{base}/ui")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");

    // A guesser at the login page: each wrong password answered late, and after five
    // (the wrong one at the start still counts: a right login does not wipe it) the
    // page says to wait, without checking the password at all.
    let password = c.find(Locator::Css("input[name=password]")).await.unwrap();
    for guess in 1..=5 {
        password.clear().await.unwrap();
        password.send_keys(&format!("guess-{guess}")).await.unwrap();
        click(c, "#login button").await;
        let wanted = if guess <= 4 {
            "wrong user name or password"
        } else {
            "too many failed logins from this address"
        };
        eventually(10, "the guess answered", || async {
            let said = text_of(c, "#login .error").await?;
            // Each answer replaces the last; the field is cleared before the next try.
            Ok(said.contains(wanted))
        })
        .await;
        if guess <= 4 {
            in_page(
                c,
                "document.querySelector('#login .error').textContent = ''; arguments[0]()",
            )
            .await;
        }
    }

    // Tokens sent by the browser itself, without the session: a viewer's reads but may
    // not change anything, a revoked one and an expired one are refused; and `../`
    // under /static finds nothing.
    let make = |name: &str, role: &str, expires: &str| -> rushes_api::CreatedToken {
        api.post(
            "/v1/tokens",
            &json!({ "name": name, "role": role, "expires": expires }),
        )
        .unwrap()
    };
    let viewer = make("desk-viewer", "viewer", "30d");
    let revoked = make("old-script", "admin", "30d");
    let expiring = make("night-job", "operator", "1h");
    api.send::<Value>("DELETE", "/v1/tokens/old-script", None)
        .unwrap();
    let status = |method: &str, path: &str, token: &str| {
        let body = if method == "GET" {
            "undefined".to_string()
        } else {
            "JSON.stringify({name: 'made-in-page', role: 'viewer'})".to_string()
        };
        format!(
            "fetch('{path}', {{method: '{method}', credentials: 'omit', \
             headers: {{'Authorization': 'Bearer {token}', 'Content-Type': 'application/json'}}, \
             body: {body}}}).then(r => arguments[0](r.status))"
        )
    };
    for (method, path, token, wanted) in [
        ("GET", "/v1/alerts", &viewer.secret, 200),
        ("POST", "/v1/tokens", &viewer.secret, 403),
        ("GET", "/v1/alerts", &revoked.secret, 401),
        ("GET", "/v1/jobs", &expiring.secret, 200),
    ] {
        let got = in_page(c, &status(method, path, token)).await;
        assert_eq!(got, json!(wanted), "{method} {path} with {token:.12}…");
    }
    // (The browser folds a plain `../` itself, so the dots and slashes go encoded, as
    // an attacker would send them.)
    for path in [
        "/static/..%2fapp.js",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    ] {
        let got = in_page(
            c,
            &format!("fetch('{path}', {{credentials: 'omit'}}).then(r => r.text().then(t => arguments[0]([r.status, t.includes('root:')])))"),
        )
        .await;
        assert_ne!(got[0], json!(200), "{path}: {got}");
        assert_eq!(got[1], json!(false), "{path}: {got}");
    }
    // An hour on (the tokens file says so), after a restart: the operator's token is
    // refused.
    let file = state.path().join("api-tokens.json");
    let mut tokens: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    for t in tokens.iter_mut().filter(|t| t["name"] == "night-job") {
        t["expires"] = json!(expiring.token.created - 1);
    }
    std::fs::write(&file, serde_json::to_vec(&tokens).unwrap()).unwrap();
    let mut server = server;
    server.restart();
    wait_for_port(web).expect("rushesd's HTTPS after the restart");
    let got = in_page(c, &status("GET", "/v1/jobs", &expiring.secret)).await;
    assert_eq!(got, json!(401));
    // And rushesd started on the restored settings.
    let set: rushes_api::Settings = api.get("/v1/settings").unwrap();
    assert_eq!(set.timezone.as_deref(), Some("Asia/Tokyo"));
    browser.close().await;
}
