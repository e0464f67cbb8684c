//! `copy-bench`: copy throughput to an S3 store (issue 20, goal >= 1.2x rclone): the
//! same files of a share copied to the same local S3 server (`s3-target`) by a rushesd
//! copy job (each file proven by reading it back) and by `rclone copy`, taking turns each
//! round with the page cache dropped before each run; the ratio is the median of the
//! rounds' ratios. Needs root (a real rushesd and its trusted.* records) and rclone.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_api::{self as api, Client};
use rushes_tests::bench::{drop_caches, median, wait_job};
use rushes_tests::{S3Target, ServerProcess};

#[derive(Parser)]
#[command(about = "Copy throughput to a local S3 server: a rushesd copy job against rclone copy")]
struct Args {
    /// Where the share, the store and rushesd's state are made.
    #[arg(long, default_value = "/var/tmp/rushes-copy-bench")]
    dir: PathBuf,
    /// Clips of --clip-mib each (sent in parts).
    #[arg(long, default_value_t = 4)]
    clips: usize,
    #[arg(long, default_value_t = 128)]
    clip_mib: usize,
    /// Small files of 256 KiB each (a sidecar, a still, an audio stem).
    #[arg(long, default_value_t = 200)]
    small: usize,
    /// Rounds; each runs both copiers once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rclone = Command::new("rclone").arg("version").output();
    let version = match rclone {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => bail!("rclone is not installed (make deps installs it)"),
    };
    let _ = std::fs::remove_dir_all(&args.dir);
    let state = args.dir.join("state");
    let share = state.join("demo");
    let files = share.join("job");
    let store_root = args.dir.join("store");
    std::fs::create_dir_all(&files)?;
    std::fs::create_dir_all(&store_root)?;
    let mut total = 0u64;
    for i in 0..args.clips + args.small {
        let len = if i < args.clips {
            args.clip_mib << 20
        } else {
            256 << 10
        };
        let mut bytes = vec![0u8; len];
        blake3::Hasher::new_derive_key(&format!("copy-bench file {i}"))
            .finalize_xof()
            .fill(&mut bytes);
        let name = if i < args.clips {
            format!("A{i:03}C001.mov")
        } else {
            format!("stills/S{i:04}.tif")
        };
        let path = files.join(&name);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(&path, &bytes)?;
        total += len as u64;
    }
    let s3 = S3Target::start(&store_root, &["bench"], &[]);
    let (server, sock) = ServerProcess::start_with_api(&state);
    let api = Client::new(&sock);
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    rushes_tests::bench::set_s3_target(&api, "bench", s3.port)?;
    let ours = || -> Result<f64> {
        let _ = std::fs::remove_dir_all(store_root.join("bench/demo"));
        drop_caches();
        let started = Instant::now();
        let job: api::Job = api
            .post(
                "/v1/copies",
                &api::CopyFiles {
                    target: "bench".into(),
                    share: "demo".into(),
                    paths: vec!["job".into()],
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        wait_job(&api, job)?;
        Ok(started.elapsed().as_secs_f64())
    };
    let theirs = || -> Result<f64> {
        let _ = std::fs::remove_dir_all(store_root.join("bench/rclone"));
        drop_caches();
        let started = Instant::now();
        let out = Command::new("rclone")
            .env("RCLONE_CONFIG", "/dev/null")
            // rclone 1.60 fails to start with it set, even for an http:// endpoint.
            .env_remove("AWS_CA_BUNDLE")
            .args(["copy", "--s3-provider", "Other", "--s3-endpoint", &endpoint])
            .args([
                "--s3-access-key-id",
                "AK",
                "--s3-secret-access-key",
                "secret",
            ])
            .args(["--s3-region", "us-east-1"])
            .arg(&files)
            .arg(":s3:bench/rclone/job")
            .output()?;
        if !out.status.success() {
            bail!(
                "rclone copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let (mut ratios, mut our_times, mut their_times) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let (a, b) = if round % 2 == 0 {
            let a = ours()?;
            (a, theirs()?)
        } else {
            let b = theirs()?;
            (ours()?, b)
        };
        println!("round {round}: rushesd {a:.2} s, rclone {b:.2} s");
        ratios.push(b / a.max(1e-9));
        our_times.push(a);
        their_times.push(b);
    }
    // Both wrote every file whole.
    for i in 0..args.clips {
        let name = format!("A{i:03}C001.mov");
        let want = std::fs::read(files.join(&name))?;
        for copier in ["demo", "rclone"] {
            if std::fs::read(store_root.join(format!("bench/{copier}/job/{name}")))? != want {
                bail!("{copier}'s copy of {name} is not the file");
            }
        }
    }
    let mb = total as f64 / 1e6;
    println!(
        "copy to a local S3 server, {} clips of {} MiB and {} files of 256 KiB ({:.0} MB), median of {} rounds: rushesd {:.0} MB/s (each copy read back and proven), {version} {:.0} MB/s: {:.2}x rclone (goal >= 1.2x)",
        args.clips,
        args.clip_mib,
        args.small,
        mb,
        args.rounds,
        mb / median(&our_times),
        mb / median(&their_times),
        median(&ratios)
    );
    drop(server);
    drop(s3);
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
