//! `reconcile-bench`: how long a copies reconcile takes when there is nothing to copy
//! (issue 20 asks for under 30 s over a million files). A share of N files, each
//! already recording a proven copy of itself as it is, under a rule that wants one copy
//! of every file: the reconcile walks them all, reads each record and makes nothing.
//! Needs root (rushesd's records are trusted.* attributes).

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use rushes_api::{self as api, Client};
use rushes_tests::bench::wait_job;
use rushes_tests::ServerProcess;

#[derive(Parser)]
#[command(about = "Time a copies reconcile with nothing to copy over many files")]
struct Args {
    /// Files in the share.
    #[arg(long, default_value_t = 1_000_000)]
    files: u64,
    /// Files per folder.
    #[arg(long, default_value_t = 1000)]
    per_folder: u64,
    /// Where the share and rushesd's state are made.
    #[arg(long, default_value = "/var/tmp/rushes-reconcile-bench")]
    dir: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    let state = args.dir.join("state");
    let share = state.join("demo");
    let vault = args.dir.join("vault");
    std::fs::create_dir_all(&vault)?;
    let made = Instant::now();
    for i in 0..args.files {
        let folder = share.join(format!("reel{:05}", i / args.per_folder));
        if i % args.per_folder == 0 {
            std::fs::create_dir_all(&folder)?;
        }
        let path = folder.join(format!("F{i:07}.dpx"));
        let file = std::fs::File::create(&path)?;
        let meta = file.metadata()?;
        // The record a proven copy of this file as it is leaves.
        let proof = serde_json::json!([{
            "target": "vault",
            "key": format!("demo/{}", path.strip_prefix(&share)?.display()),
            "facts": {
                "size": 0, "mode": meta.mode(), "uid": meta.uid(), "gid": meta.gid(),
                "mtime_ns": i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
                "blake3": blake3::hash(b"").to_hex().to_string(),
            },
            "e_tag": null, "version": null, "proven_at": 1_800_000_000u64
        }]);
        rustix::fs::fsetxattr(
            &file,
            c"trusted.rushes.copies",
            &serde_json::to_vec(&proof)?,
            rustix::fs::XattrFlags::empty(),
        )
        .context("recording a copy (trusted.* needs root)")?;
    }
    println!(
        "made {} files, each recording its copy, in {:.1} s",
        args.files,
        made.elapsed().as_secs_f64()
    );
    let (server, sock) = ServerProcess::start_with_api(&state);
    let api = Client::new(&sock);
    rushes_tests::bench::set_folder_target(&api, "vault", &vault)?;
    let _: api::Placement = api
        .put(
            "/v1/placement",
            &api::PlacementRules {
                text: "[[rule]]\nname = \"everything-once\"\naction = \"copy\"\ncopies = 1\ntargets = [\"vault\"]\n".into(),
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Cold: the page cache dropped, as a reconcile after a busy day finds it; then
    // warm, right after.
    let mut times = Vec::new();
    for cold in [true, false] {
        if cold {
            rushes_tests::bench::drop_caches();
        }
        let started = Instant::now();
        let job: api::Job = api
            .post("/v1/copies/reconcile", &())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let job = wait_job(&api, job)?;
        times.push(started.elapsed().as_secs_f64());
        ensure!(
            job.step
                .contains(&format!("{} files looked at", args.files))
                && job.step.contains("0 copies made"),
            "the reconcile did something else: {}",
            job.step
        );
    }
    println!(
        "no-op reconcile of {} files: {:.1} s with the page cache dropped first (goal < 30 s, {:.0} files/s), {:.1} s warm",
        args.files,
        times[0],
        args.files as f64 / times[0].max(1e-9),
        times[1]
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
