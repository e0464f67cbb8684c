//! `placement-bench`: how long `simulate` takes over a million files (issue 18 asks for
//! under 10 s), with a rule set like a facility's (patterns, ages, tags, a watermark),
//! and how fast a scan of a real folder gathers the facts it runs on.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::time::Instant;

use anyhow::{ensure, Result};
use clap::Parser;
use rushes_placement::{scan_share, simulate, FileFacts, Names, PoolState, RuleSet, TAGS_XATTR};

#[derive(Parser)]
#[command(about = "Time placement's simulate over many files, and a scan of a real folder")]
struct Args {
    /// Files simulate runs over.
    #[arg(long, default_value_t = 1_000_000)]
    files: u64,
    /// Files made in a real folder for the scan (0: no scan).
    #[arg(long, default_value_t = 50_000)]
    scan_files: u64,
    /// Where that folder is made (the file system the scan is timed on).
    #[arg(long, default_value = "/var/tmp")]
    scan_dir: std::path::PathBuf,
}

const RULES: &str = r#"
[[pool]]
name = "fast"
high = 80
low = 60

[[rule]]
name = "grading-stays"
path = "*/grade/**"
action = "pin"

[[rule]]
name = "no-caches"
file = "*.tmp"
action = "exclude"

[[rule]]
name = "heroes-fast"
tag = "hero"
action = "place"
pool = "fast"

[[rule]]
name = "proxies-archive"
file = "*_proxy.mov"
action = "place"
pool = "archive"

[[rule]]
name = "audio-archive"
extension = ["wav", "bwf"]
modified_older_than = "7d"
action = "place"
pool = "archive"

[[rule]]
name = "finished"
path = "finished/**"
accessed_older_than = "30d"
action = "place"
pool = "archive"

[[rule]]
name = "spill"
on = ["watermark"]
current_pool = "fast"
larger_than = "10M"
action = "place"
pool = "archive"
"#;

fn facts(i: u64, now: i64) -> FileFacts {
    let project = i % 40;
    let folder = match i % 7 {
        0 => "grade",
        1 => "renders",
        2 => "audio",
        _ => "rushes",
    };
    let top = if i.is_multiple_of(5) {
        "finished"
    } else {
        "projects"
    };
    let ext = match i % 9 {
        0 => "wav",
        1 => "tmp",
        2 => "exr",
        3 => "_proxy.mov",
        _ => ".mov",
    };
    let name = if ext.starts_with('_') || ext.starts_with('.') {
        format!("A{i:07}{ext}")
    } else {
        format!("A{i:07}.{ext}")
    };
    let mut xattrs = Vec::new();
    if i.is_multiple_of(97) {
        xattrs.push((TAGS_XATTR.to_string(), b"hero".to_vec()));
    }
    FileFacts {
        share: "media".into(),
        path: format!("{top}/p{project:02}/{folder}/day{}/{name}", i % 30),
        size: (i * 7919) % (4 << 30),
        uid: 1000 + (i % 20) as u32,
        gid: 2000,
        modified: now - (i % 90) as i64 * 86_400,
        modified_nsec: 0,
        accessed: now - (i % 60) as i64 * 86_400,
        created: Some(now - (i % 120) as i64 * 86_400),
        pool: "fast".into(),
        released: false,
        xattrs,
        being_written: false,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let names = Names {
        shares: vec!["media".into()],
        pools: vec!["fast".into(), "archive".into()],
        ..Names::default()
    };
    let rules = RuleSet::parse(RULES, &names).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let now = 1_800_000_000;
    let pools = vec![
        PoolState {
            name: "fast".into(),
            size: 2 << 50,
            used: 19 << 49,
            refuses: None,
        },
        PoolState {
            name: "archive".into(),
            size: 8 << 50,
            used: 1 << 50,
            refuses: None,
        },
    ];
    let started = Instant::now();
    let plan = simulate(
        &rules,
        &pools,
        (0..args.files).map(|i| facts(i, now)),
        now,
        Some(800 << 20),
    );
    let took = started.elapsed();
    ensure!(
        plan.files_seen == args.files,
        "simulate saw {} files",
        plan.files_seen
    );
    ensure!(
        !plan.moves.is_empty(),
        "the rules moved nothing: the bench measures nothing"
    );
    println!(
        "simulate: {} files, {} moves, in {:.2} s ({:.0} files/s; goal: {} files in < 10 s)",
        args.files,
        plan.moves.len(),
        took.as_secs_f64(),
        args.files as f64 / took.as_secs_f64(),
        args.files
    );
    if args.scan_files > 0 {
        let dir = tempfile::Builder::new()
            .prefix("placement-bench")
            .tempdir_in(&args.scan_dir)?;
        for i in 0..args.scan_files {
            let folder = dir.path().join(format!("p{:02}/day{}", i % 40, i % 30));
            if i < 1200 {
                std::fs::create_dir_all(&folder)?;
            }
            std::fs::write(folder.join(format!("A{i:07}.mov")), b"")?;
        }
        // Cold caches, as a scheduled run over a big share meets them.
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
        let started = Instant::now();
        let mut seen = 0u64;
        scan_share("media", dir.path(), "fast", &rules.xattr_names(), |_| {
            seen += 1
        })?;
        let took = started.elapsed();
        ensure!(
            seen == args.scan_files,
            "the scan found {seen} of {} files",
            args.scan_files
        );
        let rate = seen as f64 / took.as_secs_f64();
        println!(
            "scan: {seen} files in {:.2} s ({rate:.0} files/s, cold caches); 1M files would take {:.1} s",
            took.as_secs_f64(),
            1e6 / rate
        );
    }
    Ok(())
}
