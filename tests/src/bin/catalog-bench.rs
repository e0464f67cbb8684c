//! `catalog-bench`: the media catalog's speed. An index of N synthetic clips (1 M by
//! default) is built on disk, then queried: field queries and timecode-range queries,
//! p50 and p99 (goal: p99 <= 50 ms), with the process's resident memory once the index
//! is open and warm (goal: <= 300 MB). Then a corpus of real files made by ffmpeg is
//! read by our parsers and by ffprobe, one file at a time (goal: ours >= 5x), and a real
//! rushesd with the catalog on takes clips written and committed over NFS, each polled
//! until it is searchable (goal: p99 <= 2 s). Last, what the catalog costs the clients:
//! the same clips written over NFS to a rushesd with the catalog on and to one with it
//! off, round after round (goal: no slower than the noise between rounds).

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_api::media::{Camera, Clip, MediaInfo, Rational, Timecode, Video};
use rushes_catalog::Catalog;
use rushes_tests::nfs3_client::nfs3_types::nfs3 as t;
use rushes_tests::{Nfs, ServerProcess, User};

#[derive(Parser)]
#[command(
    about = "The media catalog: query latency over a large index, extraction against ffprobe, and commit-to-searchable latency"
)]
struct Args {
    /// Clips in the synthetic index.
    #[arg(long, default_value_t = 1_000_000)]
    clips: usize,
    /// Queries of each kind.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Clips written over NFS for the commit-to-searchable latency.
    #[arg(long, default_value_t = 40)]
    landed: usize,
    /// Rounds of the ingest comparison: clips written over NFS to a rushesd with the
    /// catalog on (posters included) and to one with it off, in turn.
    #[arg(long, default_value_t = 5)]
    ingest_rounds: usize,
    /// Where the index and the corpus go (on a real disk; emptied first).
    #[arg(long, default_value = "/var/tmp/rushes-catalog-bench")]
    dir: PathBuf,
    /// Only open the index in DIR/big/catalog/rushes, search it, and print this process's resident
    /// memory (the bench runs itself so, to measure a process that did not build it).
    #[arg(long, hide = true)]
    resident: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A line of /proc/self/status (`VmRSS`, `RssAnon`, `RssFile`), in MB.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A deterministic clip: camera rolls of 999 clips, days of 40 rolls, four codecs.
fn synthetic(i: usize) -> Clip {
    let roll = i / 999;
    let codecs = ["prores_4444", "prores_422_hq", "dnxhr", "h264"];
    let sizes = [(4096, 2160), (3840, 2160), (1920, 1080), (2048, 858)];
    let rates = [(24000, 1001), (24, 1), (25, 1), (30000, 1001)];
    let (w, h) = sizes[i % 4];
    let rate = rates[(i / 4) % 4];
    let fps = f64::from(rate.0) / f64::from(rate.1);
    let frames = 240 + (i * 7919) % 7200;
    // Each roll runs through the day: clip k starts a minute after clip k-1.
    let start = 6 * 3600 + (i % 999) * 60;
    let tc = format!(
        "{:02}:{:02}:{:02}:00",
        start / 3600 % 24,
        start / 60 % 60,
        start % 60
    );
    let reel = format!("{}{:03}", (b'A' + (roll % 4) as u8) as char, roll % 1000);
    Clip {
        share: "rushes".into(),
        path: format!("day{:03}/{reel}/{reel}C{:03}_{i}.mov", roll / 40, i % 999),
        size: 1 << 30,
        modified: 1_764_000_000 + i as u64,
        media: Some(MediaInfo {
            format: "quicktime".into(),
            duration_s: Some(frames as f64 / fps),
            video: Some(Video {
                codec: codecs[i % 4].into(),
                fourcc: "apch".into(),
                width: w,
                height: h,
                frame_rate: Rational::new(rate.0, rate.1),
                frames: Some(frames as u64),
                ..Default::default()
            }),
            timecode: Some(Timecode {
                start: tc,
                frame: 0,
                fps: fps.round() as u32,
                drop_frame: false,
            }),
            reel: Some(reel),
            camera: Camera {
                make: Some(["ARRI", "Sony", "RED", "Blackmagic"][roll % 4].into()),
                model: Some(["ALEXA 35", "VENICE 2", "V-RAPTOR", "URSA 12K"][roll % 4].into()),
                ..Default::default()
            },
            ..Default::default()
        }),
        error: None,
        members: Vec::new(),
    }
}

/// Where the synthetic index is: where `rushesd host --state-dir DIR/big` keeps share
/// `rushes`'s, so that the same index serves the queries and rushesd's memory.
fn index_dir(dir: &Path) -> PathBuf {
    dir.join("big/catalog/rushes")
}

fn build_index(dir: &Path, n: usize) -> Result<Catalog> {
    let catalog = Catalog::open(&index_dir(dir))?;
    let started = Instant::now();
    for i in 0..n {
        catalog.put(&synthetic(i))?;
        if (i + 1) % 100_000 == 0 {
            catalog.commit()?;
        }
    }
    catalog.commit()?;
    let took = started.elapsed();
    println!(
        "index: {n} clips in {:.1} s ({:.0} clips/s), {} on disk",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        du(&index_dir(dir))
    );
    Ok(catalog)
}

fn du(dir: &Path) -> String {
    let bytes: u64 = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn query_latency(
    catalog: &Catalog,
    kind: &str,
    queries: &[String],
) -> Result<(Duration, Duration)> {
    let mut times = Vec::new();
    let mut hits = 0;
    for q in queries {
        let started = Instant::now();
        let found = catalog.search(q, None, 0, 50)?;
        times.push(started.elapsed());
        hits += found.total;
    }
    times.sort();
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    println!(
        "query {kind:<14} p50 {:>9}  p99 {:>9}  ({} queries, {:.0} hits each on average)",
        ms(p50),
        ms(p99),
        queries.len(),
        hits as f64 / queries.len().max(1) as f64
    );
    Ok((p50, p99))
}

fn ffmpeg(out: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .context("ffmpeg (make deps installs it)")?;
    if !status.success() {
        bail!("ffmpeg {args:?} failed");
    }
    Ok(())
}

/// Real files: ProRes and H.264 in QuickTime/MP4, DNxHR in MXF, Broadcast WAV.
fn corpus(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let kinds: [(&str, &[&str]); 4] = [
        (
            "mov",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=24000/1001",
                "-f",
                "lavfi",
                "-i",
                "sine",
                "-t",
                "2",
                "-c:v",
                "prores_ks",
                "-c:a",
                "pcm_s24le",
                "-timecode",
                "10:00:00:00",
            ],
        ),
        (
            "mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine",
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-c:a",
                "aac",
            ],
        ),
        (
            "mxf",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=25",
                "-t",
                "1",
                "-c:v",
                "dnxhd",
                "-profile:v",
                "dnxhr_lb",
                "-pix_fmt",
                "yuv422p",
                "-timecode",
                "10:00:00:00",
            ],
        ),
        (
            "wav",
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=sample_rate=48000",
                "-t",
                "5",
                "-c:a",
                "pcm_s24le",
                "-write_bext",
                "1",
                "-metadata",
                "time_reference=1000",
            ],
        ),
    ];
    for (ext, args) in kinds {
        let file = dir.join(format!("sample.{ext}"));
        ffmpeg(&file, args)?;
        files.push(file);
    }
    Ok(files)
}

fn extraction(files: &[PathBuf], rounds: usize) -> Result<()> {
    let root = files[0].parent().context("corpus folder")?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let started = Instant::now();
    for _ in 0..rounds {
        for name in &names {
            let clip = rushes_catalog::extract::extract(root, "bench", name).context("a file")?;
            if clip.error.is_some() || clip.media.is_none() {
                bail!("{name}: {:?}", clip.error);
            }
        }
    }
    let ours = started.elapsed();
    let started = Instant::now();
    for _ in 0..rounds {
        for file in files {
            let out = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_streams",
                    "-show_format",
                    "-of",
                    "json",
                ])
                .arg(file)
                .output()?;
            if !out.status.success() {
                bail!("ffprobe {}", file.display());
            }
        }
    }
    let theirs = started.elapsed();
    let n = (rounds * files.len()) as f64;
    println!(
        "extraction: ours {:.0} files/s, ffprobe {:.0} files/s: {:.1}x (goal >= 5x; {} files of 4 formats, {rounds} rounds)",
        n / ours.as_secs_f64(),
        n / theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64(),
        files.len()
    );
    Ok(())
}

/// A rushesd host serving `STATE/rushes` as `/rushes`, with the catalog on or off, its
/// API answering.
fn serve(state: &Path, catalog: bool) -> Result<(ServerProcess, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let share = state.join("rushes");
    std::fs::create_dir_all(&share)?;
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777))?;
    let sock = state.join("api.sock");
    let state_arg = state.to_str().context("utf-8")?.to_string();
    let sock_arg = sock.to_str().context("utf-8")?.to_string();
    let share_arg = format!("rushes={}", share.display());
    let mut args = vec!["--state-dir", &state_arg, "--api", &sock_arg];
    if catalog {
        args.push("--catalog");
    }
    args.push(&share_arg);
    let server = ServerProcess::start(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if Instant::now() > deadline {
            bail!("no API socket:\n{}", server.log_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((server, sock))
}

/// Write `clip` to `name` over NFS, 1 MiB at a time, and commit it.
async fn put(nfs: &mut Nfs, name: &str, clip: &[u8]) -> Result<()> {
    let root = nfs.root.clone();
    let fh = nfs
        .create(&root, name, 0o644)
        .await
        .map_err(|e| anyhow::anyhow!("create: {e:?}"))?;
    for (k, chunk) in clip.chunks(1 << 20).enumerate() {
        nfs.write(&fh, (k as u64) << 20, chunk, t::stable_how::UNSTABLE)
            .await
            .map_err(|e| anyhow::anyhow!("write: {e:?}"))?;
    }
    nfs.commit(&fh)
        .await
        .map_err(|e| anyhow::anyhow!("commit: {e:?}"))?;
    Ok(())
}

/// What cataloguing costs a client: rounds of `per_round` clips written to a rushesd
/// with the catalog on and to one with it off, the order swapped each round.
async fn ingest(dir: &Path, clip: &[u8], rounds: usize) -> Result<()> {
    let per_round = 20;
    let (on, _) = serve(&dir.join("ingest-on"), true)?;
    let (off, _) = serve(&dir.join("ingest-off"), false)?;
    let user = User::new(1000, 1000);
    let mount = |port| Nfs::mount(port, "/rushes", &user);
    let mut nfs_on = mount(on.port())
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let mut nfs_off = mount(off.port())
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let mb = (clip.len() * per_round) as f64 / 1e6;
    let (mut rates_on, mut rates_off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut rate = [0.0f64; 2];
        for pass in 0..2 {
            let catalogued = (round + pass) % 2 == 0;
            let nfs = if catalogued {
                &mut nfs_on
            } else {
                &mut nfs_off
            };
            let started = Instant::now();
            for i in 0..per_round {
                put(nfs, &format!("R{round:02}C{i:03}.mov"), clip).await?;
            }
            rate[usize::from(catalogued)] = mb / started.elapsed().as_secs_f64();
        }
        rates_off.push(rate[0]);
        rates_on.push(rate[1]);
        ratios.push(rate[1] / rate[0]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "ingest over NFS ({per_round} ProRes clips a round, {rounds} rounds, medians): catalog on {:.1} MB/s, off {:.1} MB/s; on/off {:.3} (rounds {:.3}-{:.3}; goal: the same within that spread)",
        median(&mut rates_on),
        median(&mut rates_off),
        median(&mut ratios.clone()),
        ratios.iter().cloned().fold(f64::INFINITY, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max),
    );
    Ok(())
}

/// Clips written over NFS and committed, each polled for until the catalog finds it.
async fn landing(dir: &Path, clip: &[u8], n: usize) -> Result<()> {
    let (server, sock) = serve(&dir.join("state"), true)?;
    let api = rushes_api::Client::new(&sock);
    let mut nfs = Nfs::mount(server.port(), "/rushes", &User::new(1000, 1000))
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let mut times = Vec::new();
    for i in 0..n {
        let name = format!("L{i:03}C001.mov");
        put(&mut nfs, &name, clip).await?;
        let committed = Instant::now();
        loop {
            let found: rushes_api::media::Found =
                api.get(&format!("/v1/search?q=name%3AL{i:03}C001"))?;
            if found
                .clips
                .iter()
                .any(|c| c.path == name && c.media.is_some())
            {
                times.push(committed.elapsed());
                break;
            }
            if committed.elapsed() > Duration::from_secs(30) {
                bail!("{name} was not searchable after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    times.sort();
    println!(
        "committed to searchable: p50 {}  p99 {}  (goal p99 <= 2 s; {n} clips over NFS)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    Ok(())
}

/// rushesd itself over a share of the synthetic clips' files (empty, with the clips'
/// sizes and times) and their index: its resident memory at its peak while its scan at
/// start looks at every file and finds each current, and after searches through its API.
fn rushesd_resident(dir: &Path, n: usize, queries: &[String]) -> Result<()> {
    let state = dir.join("big");
    let share = state.join("rushes");
    let started = Instant::now();
    for i in 0..n {
        let clip = synthetic(i);
        let path = share.join(&clip.path);
        if let Some(folder) = path.parent().filter(|f| !f.exists()) {
            std::fs::create_dir_all(folder)?;
        }
        let file = std::fs::File::create(&path)?;
        file.set_len(clip.size)?;
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(clip.modified))?;
    }
    println!(
        "rushesd's share: {n} files made in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let (server, sock) = serve(&state, true)?;
    let api = rushes_api::Client::new(&sock);
    let started = Instant::now();
    let summary = loop {
        let jobs: Vec<rushes_api::Job> = api.get("/v1/jobs")?;
        if let Some(scan) = jobs.iter().find(|j| j.kind == "catalog-scan") {
            match scan.state {
                rushes_api::JobState::Done => break scan.step.clone(),
                rushes_api::JobState::Failed | rushes_api::JobState::Cancelled => {
                    bail!("the scan at start ended: {:?}", scan.error)
                }
                _ => {}
            }
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("rushesd's scan at start did not end in 30 min");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mb = |key| server.status_kib(key).unwrap_or(0) as f64 / 1024.0;
    let peak = mb("VmHWM:");
    for q in queries {
        let _: rushes_api::media::Found = api.get(&format!(
            "/v1/search?q={}",
            q.replace('%', "%25")
                .replace(' ', "%20")
                .replace(':', "%3A")
                .replace('>', "%3E")
                .replace('=', "%3D")
        ))?;
    }
    println!(
        "rushesd with {n} clips: scan at start {:.0} s ({summary}); resident at its peak {peak:.0} MB, after {} searches {:.0} MB ({:.0} MB its own, {:.0} MB the index's files mapped; goal <= 300 MB)",
        started.elapsed().as_secs_f64(),
        queries.len(),
        mb("VmRSS:"),
        mb("RssAnon:"),
        mb("RssFile:"),
    );
    // A million files are not left behind on the machine's disk.
    drop(server);
    std::fs::remove_dir_all(&share)?;
    Ok(())
}

/// Open the index, search it with every kind of query, and say what this process holds.
fn resident(args: &Args) -> Result<()> {
    let catalog = Catalog::open(&index_dir(&args.dir))?;
    for q in [
        "codec:prores_4444 reel:A004",
        "fps:23.976 width:>=3840 camera:alexa",
        "tc:10:14:00:00-10:20:00:00",
        "A004C123",
        "",
    ] {
        catalog.search(q, None, 0, 50)?;
    }
    println!(
        "resident memory of a process that opened the index of {} clips and searched it: {:.0} MB ({:.0} MB of it the index's files mapped, which the kernel may drop; {:.0} MB its own; goal <= 300 MB)",
        catalog.len(),
        status_mb("VmRSS:"),
        status_mb("RssFile:"),
        status_mb("RssAnon:"),
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.resident {
        return resident(&args);
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    drop(build_index(&args.dir, args.clips)?);
    // Memory is measured in a process of its own that opens the index, as rushesd does
    // after a start: this one still holds what building it took.
    let out = Command::new(std::env::current_exe()?)
        .args(["--resident", "--dir"])
        .arg(&args.dir)
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let catalog = Catalog::open(&index_dir(&args.dir))?;
    // Queries over what the synthetic clips hold.
    let n = args.queries;
    let fields: Vec<String> = (0..n)
        .map(|i| match i % 4 {
            0 => format!("codec:prores_4444 reel:A{:03}", (i * 4) % 1000),
            1 => "fps:23.976 width:>=3840 camera:alexa".to_string(),
            2 => format!("camera:venice duration:>{}s", 60 + i % 200),
            _ => format!("reel:B{:03} codec:dnxhr", (i * 4 + 1) % 1000),
        })
        .collect();
    let ranges: Vec<String> = (0..n)
        .map(|i| {
            let h = 6 + i % 12;
            format!(
                "tc:{h:02}:14:00:00-{h:02}:20:00:00 reel:A{:03}",
                (i * 4) % 1000
            )
        })
        .collect();
    let (_, p99_fields) = query_latency(&catalog, "fields", &fields)?;
    let (_, p99_ranges) = query_latency(&catalog, "timecode range", &ranges)?;
    // A clip's name as an assistant types it (`A003C123`), for clips across the index.
    let words: Vec<String> = (0..n)
        .map(|i| {
            let clip = synthetic(i * 7919 % args.clips.max(1));
            clip.name()
                .split('_')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let (_, p99_free) = query_latency(&catalog, "free words", &words)?;
    println!(
        "query p99 against the 50 ms goal: fields {}, timecode ranges {}, free words {}",
        ms(p99_fields),
        ms(p99_ranges),
        ms(p99_free)
    );
    drop(catalog);
    rushesd_resident(&args.dir, args.clips, &fields)?;
    let files = corpus(&args.dir.join("corpus"))?;
    extraction(&files, 25)?;
    let clip = std::fs::read(&files[0])?;
    landing(&args.dir, &clip, args.landed).await?;
    ingest(&args.dir, &clip, args.ingest_rounds).await?;
    Ok(())
}
