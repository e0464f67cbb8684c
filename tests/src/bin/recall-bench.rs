//! `recall-bench`: how soon an editor gets the first bytes of a released file over NFS
//! (issue 20, goal <= 1 s on loopback), and how long the whole file takes to come back,
//! against the first read of the same file while it is on the box. Each clip is copied
//! to a folder target (or a local S3 server, --s3) and proven, then per run: read while
//! resident (the peer), released, the page cache dropped, and read again; the read that
//! came back is checked byte for byte. Needs root (a real rushesd, its trusted.*
//! records, dropping caches).

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_api::{self as api, Client};
use rushes_tests::bench::{drop_caches, median, wait_job};
use rushes_tests::nfs3_client::nfs3_types::nfs3::nfsstat3;
use rushes_tests::{Nfs, ServerProcess, User};

#[derive(Parser)]
#[command(about = "Time to first byte of a recall over NFS, against a resident file")]
struct Args {
    /// Where the share, the target and rushesd's state are made.
    #[arg(long, default_value = "/var/tmp/rushes-recall-bench")]
    dir: PathBuf,
    /// Size of each clip.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
    /// Clips, each released and recalled once.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Keep the copies on a local S3 server (`s3-target`) instead of a folder: a recall
    /// then pays S3's round trips.
    #[arg(long)]
    s3: bool,
}

const MIB: u64 = 1 << 20;

/// The first MiB read over NFS, how long until it came, and how many JUKEBOX answers
/// came first.
async fn first_mib(nfs: &mut Nfs, path: &str) -> Result<(Vec<u8>, Duration, u32)> {
    let root = nfs.root.clone();
    let dir = nfs
        .lookup(&root, "clips")
        .await
        .map_err(|e| anyhow::anyhow!("lookup clips: {e:?}"))?;
    let fh = nfs
        .lookup(&dir, path)
        .await
        .map_err(|e| anyhow::anyhow!("lookup {path}: {e:?}"))?;
    let start = Instant::now();
    let mut jukebox = 0;
    loop {
        match nfs.read(&fh, 0, MIB as u32).await {
            Ok((bytes, _)) => return Ok((bytes, start.elapsed(), jukebox)),
            Err(nfsstat3::NFS3ERR_JUKEBOX) => {
                jukebox += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => bail!("read {path}: {e:?}"),
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    let state = args.dir.join("state");
    let share = state.join("rushes");
    let clips = share.join("clips");
    let target = args.dir.join("target");
    std::fs::create_dir_all(&clips)?;
    std::fs::create_dir_all(&target)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777))?;
    }
    let sock = state.join("api.sock");
    let state_arg = state.to_str().context("utf-8")?.to_string();
    let sock_arg = sock.to_str().context("utf-8")?.to_string();
    let share_arg = format!("rushes={}", share.display());
    let server = ServerProcess::start(&["--state-dir", &state_arg, "--api", &sock_arg, &share_arg]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if Instant::now() > deadline {
            bail!("no API socket:\n{}", server.log_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let api = Client::new(&sock);
    // Kept until the end: the S3 server, when the copies are on one.
    let _store = if args.s3 {
        let store = rushes_tests::S3Target::start(&target, &["vault"], &[]);
        rushes_tests::bench::set_s3_target(&api, "vault", store.port)?;
        Some(store)
    } else {
        rushes_tests::bench::set_folder_target(&api, "vault", &target)?;
        None
    };
    let kind = if args.s3 {
        "a local S3 server (s3-target)"
    } else {
        "a folder target"
    };
    let size = args.size_mib * MIB;
    let mut firsts = Vec::new();
    for i in 0..args.runs {
        let mut bytes = vec![0u8; size as usize];
        blake3::Hasher::new_derive_key(&format!("recall-bench clip {i}"))
            .finalize_xof()
            .fill(&mut bytes);
        std::fs::write(clips.join(format!("A{i:03}.mov")), &bytes)?;
        firsts.push(bytes[..MIB as usize].to_vec());
    }
    let job: api::Job = api
        .post(
            "/v1/copies",
            &api::CopyFiles {
                target: "vault".into(),
                share: "rushes".into(),
                paths: vec!["clips".into()],
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let copied = Instant::now();
    wait_job(&api, job)?;
    println!(
        "copied {} clips of {} MiB to {kind} and proved them in {:.1} s",
        args.runs,
        args.size_mib,
        copied.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let mut nfs = rt
        .block_on(Nfs::mount(server.port(), "/rushes", &User::new(1000, 1000)))
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let (mut resident, mut recalled, mut whole, mut retries) =
        (Vec::new(), Vec::new(), Vec::new(), 0);
    for (i, first) in firsts.iter().enumerate() {
        let name = format!("A{i:03}.mov");
        drop_caches();
        let (got, took, _) = rt.block_on(first_mib(&mut nfs, &name))?;
        if got != *first {
            bail!("{name}: the resident read gave other bytes");
        }
        resident.push(took.as_secs_f64());
        let job: api::Job = api
            .post(
                "/v1/copies/release",
                &api::ReleaseFiles {
                    share: "rushes".into(),
                    paths: vec![format!("clips/{name}")],
                    copies: None,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        wait_job(&api, job)?;
        drop_caches();
        let asked = Instant::now();
        let (got, took, jukebox) = rt.block_on(first_mib(&mut nfs, &name))?;
        if got != *first {
            bail!("{name}: the recalled read gave other bytes");
        }
        recalled.push(took.as_secs_f64());
        retries += jukebox;
        // Back whole once its copies state is no longer migrated.
        loop {
            let state: api::FileCopies = api
                .get(&format!("/v1/copies?share=rushes&path=clips/{name}"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if state.state != api::CopyState::Migrated {
                break;
            }
            if asked.elapsed() > Duration::from_secs(1800) {
                bail!("{name} never came back whole");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        whole.push(asked.elapsed().as_secs_f64());
    }
    let ms = |v: &[f64]| median(v) * 1000.0;
    let whole_s = median(&whole);
    println!(
        "first MiB over NFS from {kind}, median of {} (goal <= 1000 ms): recalled {:.1} ms (worst {:.1} ms, {retries} JUKEBOX answers), resident {:.1} ms: {:.1}x the resident read",
        args.runs,
        ms(&recalled),
        recalled.iter().cloned().fold(0.0, f64::max) * 1000.0,
        ms(&resident),
        median(&recalled) / median(&resident).max(1e-9),
    );
    println!(
        "whole clip back and verified, median: {whole_s:.2} s ({:.0} MB/s)",
        size as f64 / 1e6 / whole_s.max(1e-9)
    );
    drop(nfs);
    drop(server);
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
