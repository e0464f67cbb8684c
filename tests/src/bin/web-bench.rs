//! `web-bench`: the web console in headless chromium on loopback (issue 21): the time
//! to a rendered dashboard (goal <= 300 ms) and to a Search page of 50 clips with their
//! posters (goal <= 500 ms), from the navigation's start in the browser; and the logins
//! the rate limit lets through: right passwords a second, and a wrong-password guesser
//! from one address. There is no peer to compare with here (no other NAS's web console
//! runs on this machine), so the goals are the yardstick.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_api::tls::PinnedStream;
use rushes_tests::bench::median;
use rushes_tests::browser::{wait_for_port, Browser};
use rushes_tests::{free_tcp_port, ServerProcess};
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "Web console page times in headless chromium, and logins the rate limit lets through"
)]
struct Args {
    /// Page loads of each kind measured (after one to warm up).
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Clips in the catalog (the Search page shows 50).
    #[arg(long, default_value_t = 60)]
    clips: usize,
    /// Seconds the wrong-password guesser keeps trying.
    #[arg(long, default_value_t = 20)]
    guess_secs: u64,
}

const PASSWORD: &str = "cutting-room-7";

/// One POST /v1/session over TLS: the answer's status.
fn login(web: SocketAddr, pin: &str, password: &str) -> Result<u16> {
    let mut s = PinnedStream::connect(&web.to_string(), Some(pin), Duration::from_secs(30))?;
    let body = json!({ "user": "admin", "password": password }).to_string();
    let req = format!(
        "POST /v1/session HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {text:?}"))
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let state = tempfile::tempdir()?;
    let share = state.path().join("demo");
    std::fs::create_dir_all(&share)?;
    // One short clip made by ffmpeg, copied under many names: each is its own clip with
    // its own poster.
    let first = share.join("A001C001.mov");
    let made = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-t",
            "2",
            "-c:v",
            "mpeg4",
            "-y",
        ])
        .arg(&first)
        .status()
        .context("ffmpeg (make deps installs it)")?;
    if !made.success() {
        bail!("ffmpeg could not make the clip");
    }
    for i in 2..=args.clips {
        std::fs::copy(&first, share.join(format!("A001C{i:03}.mov")))?;
    }
    let web: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse()?;
    let (_server, sock) =
        ServerProcess::start_with_api_and(state.path(), &["--catalog", "--web", &web.to_string()]);
    wait_for_port(web)?;
    let api = rushes_api::Client::new(&sock);
    api.send(
        "PUT",
        "/v1/admin/password",
        Some(&json!({ "new": PASSWORD })),
    )?;
    let pin = api
        .get::<rushes_api::WebInfo>("/v1/web")?
        .certificate
        .context("no certificate")?
        .fingerprint;
    // The catalog scans at start; wait until it has every clip.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found: rushes_api::media::Found = api.get("/v1/search?q=&limit=1")?;
        if found.total >= args.clips {
            break;
        }
        if Instant::now() > deadline {
            bail!("the catalog has {} of {} clips", found.total, args.clips);
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // Tall enough that all 50 results, and their posters, are on the first screen.
    let browser = Browser::start(1280, 6000).await?;
    let c = &browser.client;
    let base = format!("https://{web}");
    browser
        .log_in(&base, PASSWORD, Duration::from_secs(20))
        .await?;

    // The navigation's start to its load event, as the browser measured it.
    let loaded = "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;";
    // … and to the moment every poster on the page has arrived.
    let posters = "const done = arguments[0]; const imgs = Array.from(document.querySelectorAll('img.poster')); \
        const check = () => imgs.every(i => i.complete && i.naturalWidth > 0) ? done([performance.now(), imgs.length]) : setTimeout(check, 5); check();";
    let search = format!("{base}/ui/search?q=");
    let started = Instant::now();
    c.goto(&search).await?;
    let first: Vec<f64> = serde_json::from_value(c.execute_async(posters, vec![]).await?)?;
    let first_wall = started.elapsed();
    let (mut dash, mut found) = (Vec::new(), Vec::new());
    for _ in 0..=args.runs {
        c.goto(&format!("{base}/ui")).await?;
        dash.push(
            c.execute(loaded, vec![])
                .await?
                .as_f64()
                .unwrap_or(f64::NAN),
        );
        c.goto(&search).await?;
        let r: Vec<f64> = serde_json::from_value(c.execute_async(posters, vec![]).await?)?;
        if r[1] < 50.0 {
            bail!("the Search page shows {} posters, not 50", r[1]);
        }
        found.push(r[0]);
    }
    // The first of each warmed the caches.
    dash.remove(0);
    found.remove(0);

    browser.close().await;

    // Logins: right passwords one after another for 5 s (argon2 is the cost).
    let t0 = Instant::now();
    let mut right = 0u32;
    while t0.elapsed() < Duration::from_secs(5) {
        if login(web, &pin, PASSWORD)? == 200 {
            right += 1;
        }
    }
    let right_per_s = right as f64 / t0.elapsed().as_secs_f64();
    // A guesser on one address: how many of its guesses are even checked.
    let t0 = Instant::now();
    let (mut checked, mut refused) = (0u32, 0u32);
    while t0.elapsed() < Duration::from_secs(args.guess_secs) {
        match login(web, &pin, "guess")? {
            403 => checked += 1,
            429 => refused += 1,
            other => bail!("a wrong password answered {other}"),
        }
    }
    let secs = t0.elapsed().as_secs_f64();

    println!(
        "web-bench: rushesd's web console, headless chromium on loopback ({} runs each)",
        args.runs
    );
    println!(
        "  dashboard rendered          p50 {:6.1} ms  p90 {:6.1} ms  (goal <= 300 ms)",
        median(&dash),
        percentile(&dash, 0.9)
    );
    println!(
        "  search, 50 clips + posters  p50 {:6.1} ms  p90 {:6.1} ms  (goal <= 500 ms)",
        median(&found),
        percentile(&found, 0.9)
    );
    println!(
        "  search, first time          {:6.1} ms in the page, {:.0} ms in all (posters made by ffmpeg then)",
        first[0],
        first_wall.as_secs_f64() * 1000.0
    );
    println!("  logins, right password      {right_per_s:6.1} a second, one after another");
    println!(
        "  a guesser on one address    {checked} guesses checked in {secs:.0} s ({:.2} a second), {refused} refused unchecked (429)",
        checked as f64 / secs
    );
    Ok(())
}
