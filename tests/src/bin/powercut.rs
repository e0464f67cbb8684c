//! `powercut`: the appliance's power cut at random moments while clients write, then
//! booted again and checked, cycle after cycle. QEMU is killed outright (SIGKILL: no
//! shutdown, no flush of what the guest holds in memory) while NFS clients write files
//! with UNSTABLE writes and a COMMIT, or with FILE_SYNC writes, and, from one cycle on,
//! while the pool reshapes onto another disk. After each cut the box boots again, and
//! the run checks that it came up (in slot A, the good one), that its RAID-5 pool was
//! assembled and mounted, and that every file a client was told is on stable storage
//! (a COMMIT whose verifier matches the writes', or FILE_SYNC writes) reads back byte
//! for byte. What was written but not yet acknowledged may be lost; nothing else.
//! `make powercut` runs it (default 20 cycles); needs `make image` first.
//!
//! From the second cycle, every other cycle also cuts into a placement run that moves
//! four clips between the RAID-5 pool and an archive pool on a SATA disk, away and home
//! again in turn; the clips are checked after every cut like the writers' files.
//!
//! The fifth cut lands while an update bundle is written into slot B; the box must come
//! back in slot A with A booting next, or, if the bundle was written and chosen before
//! the cut, in slot B, blessed.
//!
//! An SMB client writes too (`tests/powercut/smb_writer.py`, PyPI's smbprotocol, which
//! unlike smbclient can send SMB2 FLUSH): a file it uploads counts as acknowledged once
//! the server answered its FLUSH, and is checked after the cut like the NFS writers'.
//!
//! The cut is the guest's: QEMU's disk images are files on the host, and what QEMU had
//! already written to them stays in the host's page cache. A real power cut also loses
//! what a disk's own cache held without a flush; this run does not model that.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_tests::guest::{ctl, payload, sh};
use rushes_tests::nfs3_client::nfs3_types::nfs3 as t;
use rushes_tests::vm::{copy_image, enable_debug_shell, Vm};
use rushes_tests::{Nfs, User};

#[derive(Parser)]
#[command(
    about = "Cut the appliance's power at random moments while clients write; boot it \
             again and check every acknowledged write, the pool and the boot slot"
)]
struct Args {
    /// Power cuts to make.
    #[arg(long, default_value_t = 20)]
    cycles: u32,
    /// The longest a cycle writes before its cut, in seconds (each picks a moment at
    /// random between 2 s and this).
    #[arg(long, default_value_t = 30)]
    max_seconds: u64,
    /// The cycle whose writes run beside a grow of the pool onto a fourth disk; the
    /// reshape then goes on across the next cuts. 0: no grow.
    #[arg(long, default_value_t = 3)]
    grow_at: u32,
    /// The random moments' seed (default: from the clock; printed, to run the same
    /// moments again).
    #[arg(long)]
    seed: Option<u64>,
    /// The Python that has PyPI's smbprotocol, for the SMB writer (`make powercut`
    /// makes this venv).
    #[arg(
        long,
        default_value = "/var/cache/rushes-tools/smbprotocol/bin/python3"
    )]
    smb_python: PathBuf,
    /// No SMB writer: NFS clients only.
    #[arg(long)]
    no_smb: bool,
    /// From this cycle on, every other cycle's writes run beside a placement run that
    /// moves the clips between the RAID-5 pool and an archive pool on a SATA disk
    /// (slowed, so the cut comes during a copy). 0: no moves.
    #[arg(long, default_value_t = 2)]
    move_from: u32,
    /// The cycle whose writes run beside an update being written into slot B (a
    /// bundle of the image's own kernel and initramfs, signed with the key `make image`
    /// made the image trust); the box must come back in slot A with A booting next, or
    /// in B, blessed, if the bundle was written and chosen before the cut. 0: no update.
    #[arg(long, default_value_t = 5)]
    update_at: u32,
}

const POOL: &str = "media";
const EXPORT: &str = "/media";
/// The pool placement moves the clips to and from: one SATA disk.
const ARCHIVE: &str = "archive";
/// Clips that placement moves, written (FILE_SYNC) before the first cut.
const CLIPS: u32 = 4;
const CLIP_LEN: usize = 12 << 20;
/// The SMB writer's account (uid 1000, as the NFS writers).
const EDITOR: &str = "editor";
const EDITOR_PW: &str = "powercut-Editor-7";
const WRITERS: usize = 3;
const SHORT: Duration = Duration::from_secs(120);
/// A boot under TCG, with md assembling and XFS replaying its log.
const BOOT: Duration = Duration::from_secs(900);

/// Files written this many cycles back are removed once read back after the cut, so
/// that twenty cycles of writes do not fill the pool: by then each was read back whole
/// after every cut since it was written.
const KEEP_CYCLES: u32 = 2;

/// The cycle a writer's file was written in, from its name (`c07-w1-0003.bin`); none
/// for the clips.
fn written_in(name: &str) -> Option<u32> {
    name.strip_prefix('c')?.split_once('-')?.0.parse().ok()
}

/// Remove `names` from the share (already read back and found whole).
async fn retire(port: u16, names: &[String]) -> Result<()> {
    let mut nfs = Nfs::mount(port, EXPORT, &User::new(1000, 1000))
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let root = nfs.root.clone();
    for name in names {
        nfs.remove(&root, name)
            .await
            .map_err(|s| status(&format!("remove {name}"), s))?;
    }
    Ok(())
}

/// A file a client was told is on stable storage: its name and how it was made.
#[derive(Clone)]
struct Acked {
    name: String,
    seed: u32,
    len: usize,
}

/// xorshift64*: random moments and sizes, repeatable from a seed.
struct Moments(u64);

impl Moments {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn status(what: &str, s: t::nfsstat3) -> anyhow::Error {
    anyhow::anyhow!("{what}: {s:?}")
}

/// One writer's files until the power goes: each made, written in 1 MiB pieces
/// (UNSTABLE then a COMMIT, or FILE_SYNC every other file) and, once acknowledged,
/// put in the ledger. Errors after the cut are what a cut does; they end the writer.
async fn writer(
    port: u16,
    cycle: u32,
    k: usize,
    mut sizes: Moments,
    ledger: Arc<Mutex<Vec<Acked>>>,
) -> Result<()> {
    let user = User::new(1000, 1000);
    let mut nfs = Nfs::mount(port, EXPORT, &user)
        .await
        .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
    let root = nfs.root.clone();
    for i in 0u32.. {
        let name = format!("c{cycle:02}-w{k}-{i:04}.bin");
        let len = sizes.between(64 << 10, 4 << 20) as usize;
        let seed = cycle.wrapping_mul(1_000_003) ^ (k as u32) << 20 ^ i;
        let data = payload(seed, len);
        let fh = nfs
            .create(&root, &name, 0o644)
            .await
            .map_err(|s| status("create", s))?;
        let sync = i % 2 == 1;
        let how = if sync {
            t::stable_how::FILE_SYNC
        } else {
            t::stable_how::UNSTABLE
        };
        let mut verifiers = Vec::new();
        for (j, chunk) in data.chunks(1 << 20).enumerate() {
            let w = nfs
                .write(&fh, (j as u64) << 20, chunk, how)
                .await
                .map_err(|s| status("write", s))?;
            if sync && !matches!(w.committed, t::stable_how::FILE_SYNC) {
                bail!("{name}: a FILE_SYNC write answered {:?}", w.committed);
            }
            verifiers.push(w.verf.0);
        }
        if !sync {
            let verf = nfs.commit(&fh).await.map_err(|s| status("commit", s))?;
            // A verifier that changed means the server restarted between the writes and
            // the COMMIT: a client would write again. Not acknowledged.
            if verifiers.iter().any(|v| *v != verf) {
                continue;
            }
        }
        ledger
            .lock()
            .expect("ledger")
            .push(Acked { name, seed, len });
    }
    Ok(())
}

/// The SMB writer for one cycle: `smb_writer.py` started and logged in to the share
/// (it says `ready` once it can list it), so that its writes start with the NFS ones.
fn start_smb_writer(
    python: &Path,
    smb_port: u16,
) -> Result<(Child, ChildStdin, BufReader<ChildStdout>)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("powercut/smb_writer.py");
    let mut child = Command::new(python)
        .arg(&script)
        .args(["--port", &smb_port.to_string(), "--share", POOL])
        .args(["--user", EDITOR, "--password", EDITOR_PW])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} {} (make powercut installs smbprotocol; --no-smb runs without)",
                python.display(),
                script.display()
            )
        })?;
    let stdin = child.stdin.take().context("the SMB writer's stdin")?;
    let mut out = BufReader::new(child.stdout.take().context("the SMB writer's stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the SMB writer could not reach the share (it said {line:?})");
    }
    Ok((child, stdin, out))
}

/// What one cycle's SMB writer had acknowledged when the power went.
#[derive(Default, Clone, Copy)]
struct SmbAcked {
    files: usize,
    /// Of them, clips that placement moves, written again in place.
    clip_rewrites: usize,
}

/// The SMB writer's files until the power goes: each made on the host in `dir`, handed
/// to `smb_writer.py`, and put in the ledger once it says the server answered its
/// FLUSH. With `rewrite_clips`, every fourth file is one of the clips placement moves,
/// written again whole (truncated, then written) wherever its data is, moved or being
/// moved; while that write is unanswered the clip leaves the ledger, since what it
/// holds after a cut then may be the old bytes, the new or a mix. Ends when the writer
/// does (at the cut).
fn smb_writes(
    mut to: ChildStdin,
    mut from: BufReader<ChildStdout>,
    dir: PathBuf,
    cycle: u32,
    rewrite_clips: bool,
    mut sizes: Moments,
    ledger: Arc<Mutex<Vec<Acked>>>,
) -> SmbAcked {
    let mut acked = SmbAcked::default();
    let upload = dir.join(format!("smb-upload-{cycle}.bin"));
    let mut line = String::new();
    for i in 0u32.. {
        let seed = cycle.wrapping_mul(1_000_003) ^ 0xfu32 << 20 ^ i;
        let clip = rewrite_clips && i % 4 == 3;
        let (name, len) = if clip {
            let name = format!("clip-{}.mov", (i / 4) % CLIPS);
            ledger.lock().expect("ledger").retain(|f| f.name != name);
            (name, sizes.between(4 << 20, CLIP_LEN as u64) as usize)
        } else {
            let name = format!("c{cycle:02}-smb-{i:04}.bin");
            (name, sizes.between(64 << 10, 4 << 20) as usize)
        };
        if std::fs::write(&upload, payload(seed, len)).is_err()
            || writeln!(to, "{name} {}", upload.display()).is_err()
            || to.flush().is_err()
        {
            break;
        }
        line.clear();
        match from.read_line(&mut line) {
            Ok(n) if n > 0 && line.trim() == format!("acked {name}") => {
                ledger
                    .lock()
                    .expect("ledger")
                    .push(Acked { name, seed, len });
                acked.files += 1;
                acked.clip_rewrites += usize::from(clip);
            }
            _ => break,
        }
    }
    let _ = std::fs::remove_file(&upload);
    acked
}

/// Rules that place every clip (`.mov`) on `pool`, then a run of placement to do it,
/// slowed to 4 MB/s so that a cut lands during a copy.
fn start_move(vm: &Vm, pool: &str) -> Result<()> {
    sh(
        vm,
        &format!(
            "printf '[[rule]]\\nname = \"clips\"\\nextension = [\"mov\"]\\naction = \"place\"\\npool = \"{pool}\"\\n' > /tmp/rules.toml"
        ),
    );
    let (out, rc) = vm.run("rushesctl placement set /tmp/rules.toml", SHORT)?;
    if rc != 0 {
        bail!("placement set exited {rc}: {out}");
    }
    // The run a cut interrupted goes on by itself after the boot; this one waits for it.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (out, rc) = vm.run("rushesctl placement run --rate 4M", SHORT)?;
        if rc == 0 && out.contains("started job") {
            return Ok(());
        }
        if !out.contains("still under way") || Instant::now() > deadline {
            bail!("placement run exited {rc}: {out}");
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// A bundle of the image's own kernel and initramfs, signed with the key `make image`
/// made it trust, written into `dir` as `update.bundle`.
fn make_bundle(image: &Path, dir: &Path) -> Result<()> {
    rushes_tests::vm::slot_payload(image, dir)?;
    let mut out = std::fs::File::create(dir.join("update.bundle"))?;
    rushes_update::make(
        &mut out,
        &rushes_tests::vm::signing_key()?,
        "0.1.1",
        "0.1.0",
        "2026-12-07T00:00:00Z",
        &[
            &dir.join("vmlinuz"),
            &dir.join("initrd.zst"),
            &dir.join("root.sqfs"),
        ],
    )
    .context("cannot make the update bundle")?;
    Ok(())
}

/// Mount the share and read every acknowledged file back: (checked, missing, differing).
async fn verify(port: u16, ledger: &[Acked]) -> Result<(usize, Vec<String>, Vec<String>)> {
    let user = User::new(1000, 1000);
    // The pool is assembled and its XFS mounted after rushesd starts serving: until
    // then the share is not exported.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut nfs = loop {
        match Nfs::mount(port, EXPORT, &user).await {
            Ok(nfs) => break nfs,
            Err(e) if Instant::now() > deadline => bail!("the share never came back: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    let root = nfs.root.clone();
    let (mut missing, mut differing) = (Vec::new(), Vec::new());
    for f in ledger {
        let fh = match nfs.lookup(&root, &f.name).await {
            Ok(fh) => fh,
            Err(t::nfsstat3::NFS3ERR_NOENT) => {
                missing.push(f.name.clone());
                continue;
            }
            Err(s) => return Err(status(&format!("lookup {}", f.name), s)),
        };
        let back = nfs
            .read_all(&fh)
            .await
            .map_err(|s| status(&format!("read {}", f.name), s))?;
        if back != payload(f.seed, f.len) {
            differing.push(format!("{} ({} bytes, {} read)", f.name, f.len, back.len()));
        }
    }
    Ok((ledger.len(), missing, differing))
}

/// The pool's state and what it is doing, as `rushesctl pool show` says.
fn pool_state(vm: &Vm) -> Result<(String, String)> {
    let (out, rc) = vm.run(&format!("rushesctl --json pool show {POOL}"), SHORT)?;
    if rc != 0 {
        bail!("rushesctl pool show {POOL} exited {rc}: {out}");
    }
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .with_context(|| format!("rushesctl --json pool show: {out}"))?;
    let state = v["state"].as_str().unwrap_or("?").to_string();
    let work = match (v["sync"]["action"].as_str(), v["sync"]["fraction"].as_f64()) {
        (Some(action), Some(f)) => format!("{action} {:.0}%", f * 100.0),
        _ => "idle".into(),
    };
    Ok((state, work))
}

/// How many members the pool has, as `rushesctl pool show` says.
fn ctl_members(vm: &Vm) -> String {
    let (out, _) = vm
        .run(&format!("rushesctl --json pool show {POOL}"), SHORT)
        .unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(out.trim())
        .ok()
        .and_then(|v| v["members"].as_array().map(|m| m.len().to_string()))
        .unwrap_or_else(|| "? (rushesctl pool show did not answer)".into())
}

/// The slot the box says it booted from (`rushes: ready (slot a) ...`).
fn booted_slot(vm: &Vm) -> Option<char> {
    let console = vm.console();
    let at = console.rfind("rushes: ready (slot ")?;
    console[at + "rushes: ready (slot ".len()..].chars().next()
}

fn boot(image: &Path, dir: &Path, smb_port: u16) -> Result<(Vm, Duration)> {
    for sock in ["console.sock", "shell.sock", "qmp.sock"] {
        let _ = std::fs::remove_file(dir.join(sock));
    }
    let started = Instant::now();
    let smb_port = smb_port.to_string();
    let mut vm = Vm::boot_with(
        image,
        dir,
        &[("RUSHES_NVME_SIZE", "1G"), ("RUSHES_SMB_PORT", &smb_port)],
    )?;
    vm.wait_for("rushes: ready", 0, BOOT)?;
    Ok((vm, started.elapsed()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    // The test client panics when its connection breaks, which every cut does to the
    // writers (on the runtime's threads): one line each, not a backtrace. Any other
    // panic is reported as usual.
    let usual = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_runtime = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("tokio-"));
        if !on_runtime {
            return usual(info);
        }
        let what = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("?");
        eprintln!("  (a writer stopped: {what})");
    }));
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let mut moments = Moments(seed);
    println!(
        "powercut: {} cuts, seed {seed} (--seed {seed} cuts at the same moments)",
        args.cycles
    );
    let work = tempfile::tempdir()?;
    let image = copy_image(work.path())?;
    enable_debug_shell(&image)?;
    let smb_port = rushes_tests::free_tcp_port();
    println!("booting the appliance (under TCG this takes a minute or two)...");
    let (mut vm, took) = boot(&image, work.path(), smb_port)?;
    println!(
        "ready after {:.0} s; making a RAID-5 pool over three disks",
        took.as_secs_f64()
    );
    ctl(
        &vm,
        &format!("pool create {POOL} --level raid5 RUSHESNVME0 RUSHESNVME1 RUSHESNVME2"),
        0,
        SHORT,
    );
    sh(
        &vm,
        &format!("echo '{EDITOR_PW}' | rushesctl user add {EDITOR} --uid 1000"),
    );
    // The share comes once the pool is made and mounted (its first resync goes on
    // beside, and the first cuts come during it).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let online = matches!(pool_state(&vm), Ok((state, _)) if state == "online");
        let share = format!("rushesctl share create {POOL} --pool {POOL} --users {EDITOR}");
        if online && vm.run(&share, SHORT)?.1 == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the pool never came online to make its share on");
        }
        std::thread::sleep(Duration::from_secs(5));
    }

    let runtime = tokio::runtime::Runtime::new()?;
    let ledger: Arc<Mutex<Vec<Acked>>> = Arc::default();
    if args.move_from > 0 {
        ctl(
            &vm,
            &format!("pool create {ARCHIVE} --level single sda --wait"),
            0,
            3 * SHORT,
        );
        let clips: Vec<Acked> = (0..CLIPS)
            .map(|i| Acked {
                name: format!("clip-{i}.mov"),
                seed: 0x00c1_1900 + i,
                len: CLIP_LEN,
            })
            .collect();
        runtime.block_on(async {
            let mut nfs = Nfs::mount(vm.port, EXPORT, &User::new(1000, 1000))
                .await
                .map_err(|e| anyhow::anyhow!("mount: {e:?}"))?;
            for c in &clips {
                nfs.put_file(&c.name, &payload(c.seed, c.len))
                    .await
                    .map_err(|s| status(&format!("write {}", c.name), s))?;
            }
            anyhow::Ok(())
        })?;
        ledger.lock().expect("ledger").extend(clips);
        println!(
            "{CLIPS} clips of {} MiB written; placement moves them between {POOL} and {ARCHIVE} \
             from cycle {} on, every other cycle",
            CLIP_LEN >> 20,
            args.move_from
        );
    }
    let mut moves = 0u32;
    // The update's bundle, served to the guest over its user network (10.0.2.2).
    let web = if args.update_at > 0 {
        let updates = work.path().join("updates");
        std::fs::create_dir_all(&updates)?;
        make_bundle(&image, &updates)?;
        Some(rushes_tests::HttpFolder::serve(&updates))
    } else {
        None
    };
    let mut update_checked = false;
    // The slot every boot must come up in: A, until an update the cut did not stop
    // was booted and blessed.
    let mut good_slot = 'a';
    let (mut lost, mut bad_boots, mut pool_faults) = (Vec::new(), 0u32, Vec::new());
    let mut grown = false;
    let began = Instant::now();
    println!(
        "{:>5} {:>8} {:>16} {:>7} {:>5} {:>10} {:>18} {:>8} {:>7} {:>6} {:>7}",
        "cycle",
        "cut at s",
        "during",
        "boot s",
        "slot",
        "pool",
        "pool work",
        "checked",
        "missing",
        "differ",
        "smb ack"
    );
    let mut smb_acked = SmbAcked::default();
    // Files read back after every cut since they were written, then removed.
    let mut retired = 0usize;
    for cycle in 1..=args.cycles {
        let moving = args.move_from > 0
            && cycle >= args.move_from
            && (cycle - args.move_from).is_multiple_of(2);
        if moving {
            // Away to the archive, then home again, and so on.
            let to = if moves.is_multiple_of(2) {
                ARCHIVE
            } else {
                POOL
            };
            start_move(&vm, to)?;
            moves += 1;
        }
        let updating = cycle == args.update_at;
        if let Some(web) = web.as_ref().filter(|_| updating) {
            // In the background: the cut comes while the bundle is written into slot B.
            let url = web.url("10.0.2.2", "update.bundle");
            let (out, rc) = vm.run(
                &format!("(rushesctl update apply {url} >/tmp/update.out 2>&1 &)"),
                SHORT,
            )?;
            if rc != 0 {
                bail!("rushesctl update apply did not start: {out}");
            }
        }
        // What the cut comes during, beside the writes.
        let mut during = vec!["writes".to_string()];
        if cycle == args.grow_at {
            ctl(&vm, &format!("pool grow {POOL} RUSHESNVME3"), 0, SHORT);
            grown = true;
            during.push("grow".into());
        }
        if moving {
            during.push("move".into());
        }
        if updating {
            during.push("update".into());
        }
        if during.len() == 1 {
            if let Some((_, work)) = pool_state(&vm).ok().filter(|(_, work)| work != "idle") {
                during.push(work.split(' ').next().unwrap_or("").to_string());
            }
        }
        let during = during.join(", ");
        let cut_after = Duration::from_secs(moments.between(2, args.max_seconds.max(2)));
        let smb = if args.no_smb {
            None
        } else {
            let (child, to, from) = start_smb_writer(&args.smb_python, smb_port)?;
            let (dir, sizes, ledger) = (
                work.path().to_path_buf(),
                Moments(moments.next() | 1),
                Arc::clone(&ledger),
            );
            // From the first move on, the SMB writer also writes the clips again, wherever
            // their data is (on the archive, or half-way there).
            let rewrite_clips = args.move_from > 0 && cycle >= args.move_from;
            let writes = std::thread::spawn(move || {
                smb_writes(to, from, dir, cycle, rewrite_clips, sizes, ledger)
            });
            Some((child, writes))
        };
        let port = vm.port;
        let writers: Vec<_> = (0..WRITERS)
            .map(|k| {
                let sizes = Moments(moments.next() | 1);
                runtime.spawn(writer(port, cycle, k, sizes, Arc::clone(&ledger)))
            })
            .collect();
        std::thread::sleep(cut_after);
        // The cut: QEMU killed, as a pulled plug.
        drop(vm);
        for w in writers {
            w.abort();
        }
        let mut smb_this_cycle = SmbAcked::default();
        if let Some((mut child, writes)) = smb {
            let _ = child.kill();
            let _ = child.wait();
            smb_this_cycle = writes.join().unwrap_or_default();
            smb_acked.files += smb_this_cycle.files;
            smb_acked.clip_rewrites += smb_this_cycle.clip_rewrites;
        }
        let snapshot = ledger.lock().expect("ledger").clone();
        let (next, took) = match boot(&image, work.path(), smb_port) {
            Ok(b) => b,
            Err(e) => bail!("the box did not boot again after cut {cycle}: {e:#}"),
        };
        vm = next;
        let slot = booted_slot(&vm).unwrap_or('?');
        if updating && slot == 'b' {
            // The cut came after the update was written and set to boot next: the box
            // booted it, and it must be blessed; B is the good slot from now on.
            let blessed = vm
                .wait_for("blessed: slot is good", 0, Duration::from_secs(120))
                .is_ok();
            if blessed {
                good_slot = 'b';
            }
        }
        if slot != good_slot {
            bad_boots += 1;
        }
        let (checked, missing, differing) = runtime.block_on(verify(vm.port, &snapshot))?;
        let (state, work_now) = pool_state(&vm).unwrap_or_else(|e| (format!("? {e}"), "?".into()));
        if state != "online" && state != "degraded" {
            pool_faults.push(format!("cycle {cycle}: pool {state}"));
        }
        if updating {
            // Cut while B was written: A runs and boots next, whatever B holds. Cut after
            // B was written and chosen: B runs, blessed, and boots next.
            let (out, _) = vm.run("rushesctl update", SHORT)?;
            let upper = good_slot.to_ascii_uppercase();
            let runs = out.contains(&format!("running slot {upper}"));
            let next = out
                .lines()
                .any(|l| l.contains(&format!("slot {upper}")) && l.contains("boots next"));
            if !(runs && next) {
                bad_boots += 1;
            }
            println!(
                "        the update was cut into; the box runs slot {upper}; `rushesctl update` says:"
            );
            for line in out.lines() {
                println!("          {line}");
            }
            update_checked = true;
        }
        if args.move_from > 0 {
            let (out, _) = vm.run(&format!("rushesctl --json pool show {ARCHIVE}"), SHORT)?;
            let archive = serde_json::from_str::<serde_json::Value>(out.trim())
                .ok()
                .and_then(|v| v["state"].as_str().map(String::from))
                .unwrap_or_else(|| format!("? {out}"));
            if archive != "online" {
                pool_faults.push(format!("cycle {cycle}: pool {ARCHIVE} {archive}"));
            }
        }
        println!(
            "{:>5} {:>8.0} {:>16} {:>7.0} {:>5} {:>10} {:>18} {:>8} {:>7} {:>6} {:>7}",
            cycle,
            cut_after.as_secs_f64(),
            during,
            took.as_secs_f64(),
            slot.to_ascii_uppercase(),
            state,
            work_now,
            checked,
            missing.len(),
            differing.len(),
            smb_this_cycle.files
        );
        if moving {
            // Where the clips are after the cut: a run cut into moves them on after the
            // boot, so this says how far the moves had got, or have got since.
            let mut on_archive = 0;
            for i in 0..CLIPS {
                let (out, _) = vm.run(
                    &format!("rushesctl placement explain {POOL}/clip-{i}.mov"),
                    SHORT,
                )?;
                if out.contains(&format!("data on pool {ARCHIVE}")) {
                    on_archive += 1;
                }
            }
            println!("        after the boot, {on_archive} of {CLIPS} clips have their data on {ARCHIVE}");
        }
        for m in &missing {
            println!("        missing: {m}");
        }
        for d in &differing {
            println!("        differs: {d}");
        }
        // Counted once: what was lost leaves the ledger.
        let gone: Vec<String> = missing.iter().chain(&differing).cloned().collect();
        ledger
            .lock()
            .expect("ledger")
            .retain(|f| !gone.iter().any(|g| g.starts_with(&f.name)));
        lost.extend(gone);
        // Old files, read back whole just now, make room for the next cycles' writes.
        let old: Vec<String> = {
            let mut ledger = ledger.lock().expect("ledger");
            let (old, keep): (Vec<Acked>, Vec<Acked>) = ledger
                .drain(..)
                .partition(|f| written_in(&f.name).is_some_and(|c| c + KEEP_CYCLES <= cycle));
            *ledger = keep;
            old.into_iter().map(|f| f.name).collect()
        };
        runtime.block_on(retire(vm.port, &old))?;
        retired += old.len();
    }
    let acked = ledger.lock().expect("ledger").len() + retired;
    let (state, work_now) = pool_state(&vm).unwrap_or_else(|e| (format!("? {e}"), "?".into()));
    let members = ctl_members(&vm);
    println!();
    println!(
        "{} cuts in {:.0} min: {acked} files acknowledged, each read back after every cut \
         that followed ({retired} then removed after {KEEP_CYCLES} cycles to keep room); {} \
         SMB writes acknowledged, {} of them clips written again in place; {} lost or \
         differing; {moves} placement runs cut into; {}; {bad_boots} boots failed or came up \
         in the wrong slot; pool {state} ({work_now}){}",
        args.cycles,
        began.elapsed().as_secs_f64() / 60.0,
        smb_acked.files,
        smb_acked.clip_rewrites,
        lost.len(),
        if update_checked {
            "an update cut into"
        } else {
            "no update cut into"
        },
        if grown {
            format!(", {members} members after the grow onto a fourth disk")
        } else {
            String::new()
        }
    );
    for p in &pool_faults {
        println!("  {p}");
    }
    if !lost.is_empty() || bad_boots > 0 || !pool_faults.is_empty() {
        bail!("acknowledged data lost, a bad boot or a pool that did not come back");
    }
    println!("nothing acknowledged was lost");
    Ok(())
}
