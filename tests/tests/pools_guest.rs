//! Pools in the booted image (QEMU, TCG), driven through `rushesctl` in the guest and NFS
//! from the host: a RAID-5 over four NVMe disks with a share on it survives a reboot with
//! its files intact, keeps serving with a disk pulled, rebuilds onto a hot-added disk,
//! grows onto another while serving, scrubs (a scrub outlives a crash of rushesd and is
//! cancelled), and refuses what it must refuse. Placement on a second pool: files move
//! to it while a client reads them through the handles it holds, a move cut by `kill -9`
//! of rushesd is rolled back and its run taken up again, and moved files read back after
//! a reboot. A config backup restored onto the box with its settings wiped finds both
//! pools again.

use std::time::{Duration, Instant};

use rushes_tests::guest::{
    ctl, ctl_json, payload, read_share_file, sh, sha256, unlock_console, wait_json,
    write_share_file, SHORT,
};
use rushes_tests::vm::{copy_image, enable_debug_shell, Vm};
use rushes_tests::{Nfs, User};
use serde_json::Value;

/// Under TCG a boot takes about half a minute here; CI machines may be slower.
const BOOT: Duration = Duration::from_secs(600);
/// md resync, rebuild and reshape of 1 GiB disks take well under two minutes under TCG.
const MD_WORK: Duration = Duration::from_secs(900);
const ENTER: &str = "\r";
const DOWN: &str = "\x1b[B";
const LEFT: &str = "\x1b[D";
const RIGHT: &str = "\x1b[C";

/// Open the console if it locked itself in a quiet spell (md's work takes minutes).
fn unlock_if_locked(vm: &mut Vm) {
    if vm.screen().contains("This console is locked") {
        unlock_console(vm, "cutting-room");
    }
}

/// md's resync/reshape speed limit for array `md`: KB/s, or `system` for the default.
fn md_speed_max(vm: &Vm, md: &str, limit: &str) {
    sh(
        vm,
        &format!("echo {limit} > /sys/block/{md}/md/sync_speed_max"),
    );
}

/// Start `action` (G grow, R replace) on pool media from the Pools screen, onto the
/// free disk with `serial` (a hot-added disk's kernel name depends on the order the
/// controllers came in); the job's id, as the console names it.
fn start_from_pools_screen(vm: &mut Vm, key: &str, serial: &str) -> u64 {
    unlock_if_locked(vm);
    vm.type_keys("p").unwrap();
    vm.wait_screen(&["G grow", "R replace a failed disk", ">media"], SHORT)
        .unwrap();
    vm.type_keys(key).unwrap();
    vm.wait_screen(&["  Disk  < "], SHORT).unwrap();
    let chosen = |vm: &Vm| {
        vm.screen()
            .lines()
            .any(|l| l.contains("  Disk  < ") && l.contains(&format!(" {serial} ")))
    };
    // The console learns of a new disk on its next snapshot (every 2 s, slower with
    // three guests on two cores): step through the choices until it is there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !chosen(vm) && Instant::now() < deadline {
        vm.type_keys(RIGHT).unwrap();
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(chosen(vm), "{serial} is not offered:\n{}", vm.screen());
    vm.type_keys(ENTER).unwrap();
    let said = vm
        .wait_screen(&["of pool media started (job "], SHORT)
        .unwrap();
    let tail = &said[said.find("started (job ").unwrap() + "started (job ".len()..];
    tail[..tail.find(')').unwrap()].parse().unwrap()
}

/// Wait until the Pools screen shows job `id`'s progress bar partly filled: some `#`
/// and some `.` between its brackets.
fn wait_partial_bar(vm: &Vm, id: u64, kind: &str) -> String {
    let line_start = format!("job {id} {kind} pool media: [");
    let deadline = Instant::now() + MD_WORK;
    loop {
        let screen = vm.screen();
        // A line caught while the console redraws it may not have its `]` yet.
        let line = screen.lines().find(|l| l.contains(&line_start));
        if let Some((line, open, close)) = line.and_then(|l| Some((l, l.find('[')?, l.find(']')?)))
        {
            let bar = &line[open + 1..close];
            if bar.contains('#') && bar.contains('.') {
                return line.trim().to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no partly filled bar for job {id}:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The open alert `id` in `rushesctl --json alerts`' answer.
fn open_alert<'a>(alerts: &'a Value, id: &str) -> Option<&'a Value> {
    alerts
        .as_array()
        .expect("alerts are a list")
        .iter()
        .find(|a| a["id"] == id)
}

/// The rules that keep reel-0 where it is (a `printf` format).
const PIN_REEL_0: &str =
    "[[rule]]\\nname = \"keep-reel-0\"\\nfile = \"reel-0.mov\"\\naction = \"pin\"\\n";

/// Put the rules `printf` makes of `format` in force; rushesctl's answer.
fn set_rules(vm: &Vm, format: &str) -> String {
    sh(vm, &format!("printf '{format}' > /tmp/rules.toml"));
    ctl(vm, "placement set /tmp/rules.toml", 0, SHORT)
}

fn pool_state(vm: &Vm) -> Value {
    ctl_json(vm, "pool show media")
}

async fn write_file(port: u16, name: &str, data: &[u8]) {
    write_share_file(port, "/projects", name, data).await
}

async fn read_file(port: u16, name: &str) -> Vec<u8> {
    read_share_file(port, "/projects", name).await
}

/// Log in to the web console as admin, and create share `name` on `pool` (SMB off) from
/// the Shares and accounts page's form, as a person would.
async fn create_share_in_browser(port: &str, password: &str, name: &str, pool: &str) {
    use fantoccini::Locator;
    let browser = rushes_tests::browser::Browser::start(1280, 1000)
        .await
        .unwrap();
    let c = &browser.client;
    let base = format!("https://127.0.0.1:{port}");
    // Under TCG the guest answers slowly: each step gets a minute.
    browser
        .log_in(&base, password, Duration::from_secs(60))
        .await
        .unwrap();
    c.goto(&format!("{base}/ui/shares")).await.unwrap();
    let form = c
        .find(Locator::Css("form[data-api='POST /v1/shares']"))
        .await
        .unwrap();
    form.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    let pools = form.find(Locator::Css("select[name=pool]")).await.unwrap();
    pools.select_by_value(pool).await.unwrap();
    // "over SMB too" is ticked by default.
    form.find(Locator::Css("input[name=smb]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    form.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The page reloads once the share is made: a moment with no table is no failure.
        let main = match c.find(Locator::Css("main table")).await {
            Ok(table) => table.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if main.contains(name) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new share is not listed: {main}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raid5_pool_serves_survives_reboot_a_pulled_disk_and_grows() {
    let work = tempfile::tempdir().unwrap();
    let mut steps = rushes_tests::vm::Steps::new("pools_guest");
    let image = copy_image(work.path()).unwrap();
    enable_debug_shell(&image).unwrap();
    let began = Instant::now();
    // The box's HTTPS (443) forwarded to the host, for the web console's browser.
    let https_port = rushes_tests::free_tcp_port().to_string();
    let mut vm = Vm::boot_with(
        &image,
        work.path(),
        &[
            ("RUSHES_NVME_SIZE", "1G"),
            ("RUSHES_HTTPS_PORT", &https_port),
        ],
    )
    .unwrap();
    let ready = vm.wait_for("rushes: ready", 0, BOOT).unwrap();

    steps.done("boot to ready");
    // The serial console's first-boot wizard, on a blank RUSHES-CFG.
    vm.wait_screen(&["Welcome to Rushes", "Press Enter to begin"], BOOT)
        .unwrap();
    vm.type_keys(ENTER).unwrap();
    vm.wait_screen(&["Step 1 of 4", "[rushes_]"], SHORT)
        .unwrap();
    vm.type_keys(&"\x7f".repeat(6)).unwrap();
    vm.type_keys("bay-nas").unwrap();
    vm.type_keys(ENTER).unwrap();
    let network = vm
        .wait_screen(&["Step 2 of 4", "DHCP (the default)", "link up"], SHORT)
        .unwrap();
    assert!(network.contains("10.0.2.15/24"), "{network}");
    steps.done("the serial console's first-boot wizard, on");
    // The NIC's speed as the kernel reports it (QEMU's virtio-net says 10 Gb/s).
    assert!(network.contains("link up 10 Gb/s"), "{network}");
    vm.type_keys(ENTER).unwrap();
    vm.wait_screen(&["Step 3 of 4"], SHORT).unwrap();
    vm.type_keys("cutting-room\tcutting-room\r").unwrap();
    vm.wait_screen(&["Step 4 of 4"], SHORT).unwrap();
    vm.type_keys(ENTER).unwrap();
    vm.wait_screen(
        &["Setup is saved", "Reach this box at: 10.0.2.15", "Windows:"],
        SHORT,
    )
    .unwrap();
    vm.type_keys(ENTER).unwrap();
    vm.wait_screen(&["Dashboard", "no pools yet"], SHORT)
        .unwrap();

    steps.done("the nic's speed as the kernel");
    // The inventory through the API: sizes, transports, serials, and the stick protected.
    let disks = ctl_json(&vm, "disks");
    let disks = disks.as_array().unwrap();
    let by_serial = |s: &str| {
        disks
            .iter()
            .find(|d| d["serial"] == s)
            .unwrap_or_else(|| panic!("no disk {s}: {disks:#?}"))
    };
    for i in 0..4 {
        let d = by_serial(&format!("RUSHESNVME{i}"));
        assert_eq!(
            (d["transport"].as_str(), d["size_bytes"].as_u64()),
            (Some("nvme"), Some(1 << 30))
        );
        // The drive's own health log (QEMU reports a healthy drive at 50 °C).
        assert!(
            d["health"]["temperature_c"].is_i64(),
            "no NVMe health log: {d}"
        );
        assert_eq!(d["health"]["critical_warning"], 0, "{d}");
    }
    for i in 0..2 {
        let d = by_serial(&format!("RUSHESSATA{i}"));
        assert_eq!(
            (d["transport"].as_str(), d["size_bytes"].as_u64()),
            (Some("sata"), Some(16 << 30))
        );
    }
    let stick = disks
        .iter()
        .find(|d| d["boot"] == true)
        .expect("the boot stick is marked");
    assert_eq!(stick["transport"], "usb");
    let stick = stick["name"].as_str().unwrap().to_string();

    steps.done("the inventory through the api: sizes");
    // Refusals, each with a reason an admin can act on.
    let out = ctl(
        &vm,
        &format!("pool create bad --level raid1 {stick} sda"),
        1,
        SHORT,
    );
    assert!(out.contains("boot stick"), "{out}");
    let out = ctl(
        &vm,
        "pool create bad --level raid5 nvme0n1 nvme1n1",
        1,
        SHORT,
    );
    assert!(out.contains("needs at least 3 disks"), "{out}");

    steps.done("refusals, each with a reason an");
    // RAID-5 over the four NVMe disks, made on the serial console's Disks screen. The
    // pool is usable while md's first sync runs.
    vm.type_keys("k").unwrap();
    vm.wait_screen(&["Space pick", "nvme0n1", "nvme3n1"], SHORT)
        .unwrap();
    for i in 0..4 {
        if i > 0 {
            vm.type_keys(DOWN).unwrap();
        }
        vm.type_keys(" ").unwrap();
        vm.wait_screen(&[&format!("[x] nvme{i}n1")], SHORT).unwrap();
    }
    vm.type_keys("c").unwrap();
    vm.wait_screen(&["Create a pool", "< raid6 >"], SHORT)
        .unwrap();
    vm.type_keys(LEFT).unwrap();
    let form = vm
        .wait_screen(&["< raid5 >", "survives 1 disk failure(s)"], SHORT)
        .unwrap();
    assert!(form.contains("Usable 3.2 GB"), "{form}");
    vm.type_keys(ENTER).unwrap();
    vm.wait_screen(&["Creating pool media"], SHORT).unwrap();
    let created = Instant::now();
    // md's create and mkfs.xfs under TCG, with the other guests on the same two cores:
    // minutes rather than seconds.
    wait_json(&vm, "pools", 3 * SHORT, "the new pool mounted", |v| {
        v[0]["size_bytes"].as_u64().unwrap_or(0) > 2 << 30
    });
    let out = ctl(&vm, "pool create other --level raid1 nvme0n1 sda", 1, SHORT);
    assert!(out.contains("in use by pool media"), "{out}");
    let out = ctl(&vm, "share create ../escape --pool media", 1, SHORT);
    assert!(out.contains("not usable"), "{out}");
    steps.done("raid-5 over the four nvme disks");
    // The share, from the console's Shares screen.
    vm.type_keys("s").unwrap();
    vm.wait_screen(&["C create a share"], SHORT).unwrap();
    vm.type_keys("c").unwrap();
    vm.wait_screen(&["Create a share", "< media >"], SHORT)
        .unwrap();
    vm.type_keys("projects").unwrap();
    vm.type_keys(ENTER).unwrap();
    vm.wait_screen(&["Share projects is served", "mount -t nfs"], SHORT)
        .unwrap();

    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("reel-{i}.mov"), payload(i, 6 << 20)))
        .collect();
    for (name, data) in &files {
        write_file(vm.port, name, data).await;
    }
    let jobs = ctl_json(&vm, "jobs");
    let create_job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "create-pool")
        .and_then(|j| j["id"].as_u64())
        .unwrap_or_else(|| panic!("no create-pool job: {jobs:#}"));
    ctl(&vm, &format!("jobs watch {create_job}"), 0, MD_WORK);
    eprintln!(
        "RAID-5 of 4 x 1 GiB created and synced in {:.0?} under TCG",
        created.elapsed()
    );
    assert_eq!(pool_state(&vm)["state"], "online");

    steps.done("the share, from the console's shares");
    // Once whole and idle, the new pool is measured by itself: what playback
    // reservations are checked against. A reservation it cannot give is refused with
    // the figures; one it can is in force, and its client (this host) is served.
    let media = wait_json(
        &vm,
        "pool show media",
        SHORT,
        "the new pool's read rate measured",
        |v| v["read_mb_s"].as_f64().is_some(),
    );
    let measured = media["read_mb_s"].as_f64().unwrap();
    assert!(measured >= 1.0, "{media:#}");
    ctl(&vm, "pool measure media --wait", 0, SHORT);
    let again = pool_state(&vm);
    assert!(
        again["read_measured_at"].as_u64() >= media["read_measured_at"].as_u64(),
        "{again:#}"
    );
    let measured = again["read_mb_s"].as_f64().unwrap();
    eprintln!("pool media (RAID-5 of 4 emulated NVMe, TCG) reads at {measured:.0} MB/s");
    let over = measured.ceil() as u64 + 50;
    let out = ctl(
        &vm,
        &format!("rate set suite-3 --clients 10.0.2.2/32 --reserve {over}"),
        1,
        SHORT,
    );
    assert!(
        out.contains(&format!(
            "add up to {over} MB/s, more than the pools can give"
        )) && out.contains(&format!("media {measured:.0} MB/s")),
        "{out}"
    );
    steps.done("once whole and idle, the new");
    // On a share, the share's pool is the limit.
    let out = ctl(
        &vm,
        &format!("rate set playback --shares projects --reserve {over}"),
        1,
        SHORT,
    );
    assert!(
        out.contains(&format!(
            "reservations on shares of pool media (playback) would add up to {over} MB/s"
        )) && out.contains(&format!("it reads at {measured:.0} MB/s")),
        "{out}"
    );
    let half = ((measured / 2.0) as u64).max(1);
    ctl(
        &vm,
        &format!("rate set suite-3 --clients 10.0.2.2/32 --reserve {half}"),
        0,
        SHORT,
    );
    let rates = ctl_json(&vm, "rates");
    assert_eq!(rates["reserved_mb_s"].as_u64(), Some(half), "{rates:#}");
    assert_eq!(rates["rules"][0]["name"], "suite-3", "{rates:#}");
    for (name, data) in &files {
        assert!(
            read_file(vm.port, name).await == *data,
            "{name} read back wrong"
        );
    }
    let listed = ctl(&vm, "rate list", 0, SHORT);
    assert!(
        listed.contains(&format!("reserved {half} of {measured:.0} MB/s")),
        "{listed}"
    );
    ctl(&vm, "rate delete suite-3", 0, SHORT);

    steps.done("on a share, the share's pool");
    // A second pool, on one SATA disk, for placement to move data to; and a share that
    // is served over NFS until SMB is turned on for it after its data moved.
    ctl(
        &vm,
        "pool create archive --level single sda --wait",
        0,
        3 * SHORT,
    );
    steps.done("a second pool, on one sata");
    // This share from the web console, in a real browser on the host.
    create_share_in_browser(&https_port, "cutting-room", "grading", "media").await;
    let grading = ctl_json(&vm, "share show grading");
    assert_eq!(
        (grading["pool"].as_str(), grading["smb"].as_bool()),
        (Some("media"), Some(false)),
        "{grading}"
    );
    let takes: Vec<(String, Vec<u8>)> = (1..=2)
        .map(|i| (format!("take-{i}.mov"), payload(20 + i, 16 << 20)))
        .collect();
    for (name, data) in &takes {
        write_share_file(vm.port, "/grading", name, data).await;
    }

    steps.done("this share from the web console");
    // Placement on the real pool: rules checked whole, explain of files written over
    // NFS, simulate over the share.
    let out = ctl(&vm, "placement", 0, SHORT);
    assert!(out.contains("no placement rules"), "{out}");
    sh(
        &vm,
        "printf '[[rule]]\\nname = \"to-tape\"\\naction = \"place\"\\npool = \"tape\"\\n' > /tmp/bad.toml",
    );
    let out = ctl(&vm, "placement set /tmp/bad.toml", 1, SHORT);
    assert!(
        out.contains(
            "line 1 (rule \"to-tape\"): there is no pool \"tape\": pools are media, archive"
        ),
        "{out}"
    );
    sh(
        &vm,
        "printf '[[pool]]\\nname = \"media\"\\nhigh = 90\\nlow = 75\\n\\n\
         [[rule]]\\nname = \"graded\"\\nshare = \"grading\"\\naction = \"place\"\\npool = \"archive\"\\n\\n\
         [[rule]]\\nname = \"keep-reel-0\"\\nfile = \"reel-0.mov\"\\naction = \"pin\"\\n\\n\
         [[rule]]\\nname = \"huge\"\\nlarger_than = \"100M\"\\naction = \"exclude\"\\n\\n\
         [[rule]]\\nname = \"reels\"\\nextension = [\"mov\"]\\naction = \"place\"\\npool = \"media\"\\n' > /tmp/rules.toml",
    );
    let out = ctl(&vm, "placement set /tmp/rules.toml", 0, SHORT);
    assert!(out.contains("4 rules in force"), "{out}");
    let out = ctl(&vm, "placement explain projects/reel-1.mov", 0, SHORT);
    for line in [
        "projects/reel-1.mov (6.3 MB), data on pool media",
        "no    keep-reel-0: name reel-1.mov does not match reel-0.mov",
        "no    huge: size 6.0 MiB is not above 100 MiB",
        "MATCH reels: extension .mov",
        "rule reels places it on media, where it is",
        "new files like it are placed by rule reels",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    let out = ctl(&vm, "placement explain projects/reel-0.mov", 0, SHORT);
    assert!(out.contains("rule keep-reel-0 pins it on media"), "{out}");
    let out = ctl(&vm, "placement explain projects/missing.mov", 1, SHORT);
    assert!(out.contains("missing.mov"), "{out}");
    let out = ctl(&vm, "placement simulate", 0, SHORT);
    assert!(out.contains(" would move"), "{out}");
    assert!(
        out.contains("; 2 would move"),
        "the two takes, no reel: {out}"
    );
    assert!(
        out.contains("media: ") && out.contains("(watermarks 90 % / 75 %)"),
        "{out}"
    );
    steps.done("placement on the real pool: rules");
    // An SMB share's files are looked at too: Samba reads them through the view.
    assert!(!out.contains("served over SMB"), "{out}");

    steps.done("an smb share's files are looked");
    // The run: both takes go to the archive, slowed so a client reads take-1 through
    // the handle it took before while its data moves.
    let mut reader = Nfs::mount(vm.port, "/grading", &User::new(1000, 1000))
        .await
        .unwrap();
    let root = reader.root.clone();
    let take1 = reader.lookup(&root, "take-1.mov").await.unwrap();
    let fileid = reader.getattr(&take1).await.unwrap().fileid;
    let out = ctl(&vm, "placement run --rate 2M", 0, SHORT);
    assert!(out.contains("started job"), "{out}");
    let run = ctl_json(&vm, "jobs")
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "placement-run")
        .expect("the run's job")["id"]
        .as_u64()
        .unwrap();
    let job = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == run)
            .cloned()
            .unwrap_or_default()
    };
    let mut reads = 0;
    let deadline = Instant::now() + 3 * SHORT;
    loop {
        let got = reader
            .read_all(&take1)
            .await
            .unwrap_or_else(|e| panic!("read {reads} of take-1 during its move: {e:?}"));
        assert!(got == takes[0].1, "read {reads} of take-1 saw other bytes");
        reads += 1;
        let step = job(&ctl_json(&vm, "jobs"))["step"].to_string();
        if step.contains("take-2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "take-2's move never began: {step}"
        );
    }
    // kill -9 of rushesd in the middle of take-2's copy: the restarted daemon rolls the
    // move back, takes the run up again and finishes it.
    sh(&vm, "kill -9 $(pidof rushesd)");
    drop(reader);
    assert!(reads >= 2, "only {reads} reads while take-1 moved");
    let ended = wait_json(&vm, "jobs", 3 * SHORT, "the run taken up and done", |v| {
        job(v)["state"] == "done"
    });
    assert_eq!(job(&ended)["resumed"], true, "{ended:#}");
    let log = sh(&vm, "grep 'cut short' /run/rushes/log.txt || true");
    assert!(
        log.contains("rolled back") || log.contains("finished"),
        "{log}"
    );
    // take-1 through the handle taken before its move and the restart: same file, same
    // bytes, no ESTALE.
    let mut reader = Nfs::mount(vm.port, "/grading", &User::new(1000, 1000))
        .await
        .unwrap();
    assert_eq!(reader.getattr(&take1).await.unwrap().fileid, fileid);
    assert!(reader.read_all(&take1).await.unwrap() == takes[0].1);
    assert_eq!(
        sh(&vm, "stat -c %b /pools/media/grading/take-1.mov").trim(),
        "0",
        "the home pool gave take-1's blocks back"
    );
    for (name, data) in &takes {
        let out = ctl(&vm, &format!("placement explain grading/{name}"), 0, SHORT);
        assert!(out.contains("data on pool archive"), "{out}");
        assert!(
            read_share_file(vm.port, "/grading", name).await == *data,
            "{name} after its move"
        );
    }
    assert_eq!(
        sh(&vm, "ls /pools/archive/.rushes/data/grading | wc -l").trim(),
        "2",
        "one copy each, nothing left over"
    );
    assert_eq!(
        sh(&vm, "ls -A /pools/media/.rushes/moving | wc -l").trim(),
        "0",
        "no move left in the journal"
    );
    steps.done("the run: both takes go to");
    // SMB turned on after the move: Samba serves the share through rushesd's FUSE view,
    // where the moved takes read as themselves (passed through to the archive's
    // objects), and a clip written over SMB lands in the share on the home pool.
    ctl(&vm, "share set-smb grading --smb on", 0, SHORT);
    sh(
        &vm,
        "echo 'grade-pass-1' | rushesctl user add colorist --uid 1000",
    );
    let mounts = sh(&vm, "grep ' /run/rushes/view/grading ' /proc/mounts");
    assert!(
        mounts.starts_with("rushes:grading /run/rushes/view/grading fuse"),
        "{mounts}"
    );
    let smb = |commands: &str| {
        vm.run(
            &format!(
                "cd /tmp && smbclient //127.0.0.1/grading -U colorist%grade-pass-1 -c '{commands}' 2>&1"
            ),
            SHORT,
        )
        .unwrap()
    };
    let (out, rc) = smb("get take-1.mov smb-take-1.mov; get take-2.mov smb-take-2.mov");
    assert_eq!(rc, 0, "{out}");
    for (i, (name, data)) in takes.iter().enumerate() {
        let sum = sh(&vm, &format!("sha256sum /tmp/smb-take-{}.mov", i + 1));
        assert!(sum.starts_with(&sha256(data)), "{name} over SMB: {sum}");
    }
    sh(
        &vm,
        "head -c 2000000 /dev/urandom > /tmp/take-3.mov; rm -f /tmp/smb-take-*.mov",
    );
    let (out, rc) = smb("put take-3.mov take-3.mov");
    assert_eq!(rc, 0, "{out}");
    let over_nfs = read_share_file(vm.port, "/grading", "take-3.mov").await;
    assert!(
        sh(&vm, "sha256sum /tmp/take-3.mov").starts_with(&sha256(&over_nfs)),
        "take-3 written over SMB, read over NFS"
    );
    let owner = sh(&vm, "stat -c %u /pools/media/grading/take-3.mov");
    assert_eq!(
        owner.trim(),
        "1000",
        "take-3 belongs to the account that wrote it"
    );

    steps.done("smb turned on after the move");
    // A file open over SMB keeps its data where the open found it: a run leaves take-3
    // (placed on the archive by the rules) on the home pool while an editor's client
    // reads it, the reader sees the same bytes to the end, and the run after the close
    // moves it.
    sh(
        &vm,
        "mkdir -p /mnt/g && mount -t cifs //127.0.0.1/grading /mnt/g \
         -o username=colorist,password=grade-pass-1,vers=3.1.1,cache=none",
    );
    sh(
        &vm,
        "rm -f /tmp/held /tmp/release; (exec 3</mnt/g/take-3.mov; head -c 500000 <&3 > /tmp/first; \
         touch /tmp/held; while [ ! -e /tmp/release ]; do sleep 0.2; done; cat <&3 > /tmp/rest; \
         touch /tmp/read) >/dev/null 2>&1 & true",
    );
    sh(
        &vm,
        "for i in $(seq 100); do [ -e /tmp/held ] && break; sleep 0.2; done; ls /tmp/held",
    );
    let run = |vm: &Vm| -> Value {
        let out = ctl(vm, "--json placement run --wait 2>/dev/null", 0, 3 * SHORT);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let job = run(&vm);
    assert!(
        job["step"]
            .as_str()
            .unwrap_or("")
            .contains("1 open over SMB"),
        "{job:#}"
    );
    let out = ctl(&vm, "placement explain grading/take-3.mov", 0, SHORT);
    assert!(out.contains("data on pool media"), "{out}");
    sh(
        &vm,
        "touch /tmp/release; for i in $(seq 100); do [ -e /tmp/read ] && break; sleep 0.2; done; ls /tmp/read",
    );
    assert!(
        sh(&vm, "cat /tmp/first /tmp/rest | sha256sum").starts_with(&sha256(&over_nfs)),
        "the SMB reader saw take-3's bytes to the end"
    );
    sh(&vm, "umount /mnt/g");
    steps.done("a file open over smb keeps");
    // Closed: moved by the next run (Samba hears of the close a moment later).
    let deadline = Instant::now() + SHORT;
    loop {
        let job = run(&vm);
        if job["step"]
            .as_str()
            .unwrap_or("")
            .contains("0 open over SMB")
        {
            break;
        }
        assert!(Instant::now() < deadline, "take-3 stayed open: {job:#}");
        std::thread::sleep(Duration::from_secs(2));
    }
    let out = ctl(&vm, "placement explain grading/take-3.mov", 0, SHORT);
    assert!(out.contains("data on pool archive"), "{out}");
    let (out, rc) = smb("get take-3.mov smb-take-3.mov");
    assert_eq!(rc, 0, "{out}");
    assert!(
        sh(&vm, "sha256sum /tmp/smb-take-3.mov").starts_with(&sha256(&over_nfs)),
        "take-3 over SMB after its move"
    );

    // rushesd killed while an SMB client has the share mounted: the restarted daemon
    // mounts a new view where the old one was, and the client's next reads go through
    // it (smbd reaches the share by its path again).
    sh(
        &vm,
        "mount -t cifs //127.0.0.1/grading /mnt/g \
         -o username=colorist,password=grade-pass-1,vers=3.1.1,cache=none",
    );
    let take1 = sha256(&takes[0].1);
    assert!(sh(&vm, "sha256sum /mnt/g/take-1.mov").starts_with(&take1));
    sh(&vm, "kill -9 $(pidof rushesd)");
    wait_json(&vm, "shares", 3 * SHORT, "rushesd back", |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    });
    let deadline = Instant::now() + SHORT;
    loop {
        let (out, rc) = vm.run("sha256sum /mnt/g/take-1.mov 2>&1", SHORT).unwrap();
        if rc == 0 && out.starts_with(&take1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the SMB client never read through the new view: {out}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    sh(&vm, "umount /mnt/g");

    steps.done("closed: moved by the next run");
    // Reboot from the console's Power screen (appliance_image presses ctrl-alt-del):
    // the pool is assembled from RUSHES-CFG and the files are intact.
    let before = vm.console().len();
    vm.type_keys("o").unwrap();
    vm.wait_screen(&["R  restart the appliance", "O  power it off"], SHORT)
        .unwrap();
    vm.type_keys("r").unwrap();
    vm.wait_screen(&["Really reboot the appliance?"], SHORT)
        .unwrap();
    vm.type_keys("y").unwrap();
    let again = vm.wait_for("rushes: rebooting now", before, SHORT).unwrap();
    vm.wait_for("rushes: ready", again, BOOT).unwrap();
    steps.done("reboot from the console's power screen");
    // Set up once, the console now starts locked; the admin password opens it.
    vm.wait_screen(&["This console is locked", "Reach this box at"], SHORT)
        .unwrap();
    vm.type_keys(ENTER).unwrap();
    vm.type_keys("not-it\r").unwrap();
    vm.wait_screen(&["Wrong password."], SHORT).unwrap();
    vm.type_keys("cutting-room\r").unwrap();
    vm.wait_screen(&["Dashboard", "media", "online"], SHORT)
        .unwrap();
    assert_eq!(pool_state(&vm)["state"], "online");
    steps.done("set up once, the console now");
    // The rules came back with the config.
    let placement = ctl_json(&vm, "placement");
    assert_eq!(
        placement["rules"].as_array().map(Vec::len),
        Some(4),
        "{placement}"
    );
    steps.done("the rules came back with the");
    // Moved files read through the namespace as soon as the box is up.
    for (name, data) in &takes {
        assert!(
            read_share_file(vm.port, "/grading", name).await == *data,
            "{name} after the reboot"
        );
    }
    for (name, data) in &files {
        assert!(
            read_file(vm.port, name).await == *data,
            "{name} changed across the reboot"
        );
        let (sum, _) = vm
            .run(&format!("sha256sum /pools/media/projects/{name}"), SHORT)
            .unwrap();
        assert!(sum.starts_with(&sha256(data)), "{name} on the pool: {sum}");
    }

    steps.done("moved files read through the namespace");
    // A watermark run: media's high mark set just above its fill, then a file written
    // past it. The monitor (it looks every 30 s) starts a run by itself that moves
    // media's files to the archive, oldest access first, until media is under its low
    // mark or nothing more may move (here: all but the pinned reel, since the low mark is
    // below the fill before the file was written).
    let media = pool_state(&vm);
    let size = media["size_bytes"].as_u64().unwrap();
    let pct = media["used_bytes"].as_u64().unwrap() * 100 / size;
    let run_ids = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "placement-run")
            .filter_map(|j| j["id"].as_u64())
            .collect()
    };
    let runs_before = run_ids(&ctl_json(&vm, "jobs"));
    sh(
        &vm,
        &format!(
            "printf '[[pool]]\\nname = \"media\"\\nhigh = {}\\nlow = {pct}\\n\\n\
             [[rule]]\\nname = \"keep-reel-0\"\\nfile = \"reel-0.mov\"\\naction = \"pin\"\\n\\n\
             [[rule]]\\nname = \"spill\"\\ncurrent_pool = \"media\"\\non = [\"watermark\"]\\n\
             action = \"place\"\\npool = \"archive\"\\n' > /tmp/rules.toml",
            pct + 1
        ),
    );
    let out = ctl(&vm, "placement set /tmp/rules.toml", 0, SHORT);
    assert!(out.contains("2 rules in force"), "{out}");
    let out = ctl(&vm, "placement explain projects/reel-1.mov", 0, SHORT);
    assert!(
        out.contains(&format!("under its high watermark {} %", pct + 1)),
        "the watermark rule waits for the mark: {out}"
    );
    // 2 % of the pool and 8 MiB more: past the high mark whatever the rounding.
    let filler = payload(21, (size / 50) as usize + (8 << 20));
    write_file(vm.port, "filler.mov", &filler).await;
    let done = wait_json(&vm, "jobs", 3 * SHORT, "a watermark run done", |v| {
        v.as_array().unwrap().iter().any(|j| {
            j["kind"] == "placement-run"
                && j["state"] == "done"
                && !runs_before.contains(&j["id"].as_u64().unwrap_or(0))
        })
    });
    let started_by_itself = run_ids(&done)
        .into_iter()
        .filter(|id| !runs_before.contains(id))
        .count();
    assert_eq!(started_by_itself, 1, "{done:#}");
    for name in ["filler.mov", "reel-1.mov", "reel-2.mov"] {
        let out = ctl(&vm, &format!("placement explain projects/{name}"), 0, SHORT);
        assert!(out.contains("data on pool archive"), "{out}");
    }
    let out = ctl(&vm, "placement explain projects/reel-0.mov", 0, SHORT);
    assert!(
        out.contains("data on pool media") && out.contains("rule keep-reel-0 pins it"),
        "{out}"
    );
    assert!(read_file(vm.port, "filler.mov").await == filler);
    // XFS gives freed blocks back in the background: media comes under its high mark.
    wait_json(
        &vm,
        "pool show media",
        3 * SHORT,
        "media under its high mark",
        |v| v["used_bytes"].as_u64().unwrap_or(u64::MAX) * 100 / size <= pct + 1,
    );
    // No watermarks from here on: the steps below write to media and must not start
    // runs.
    set_rules(&vm, PIN_REEL_0);

    steps.done("a watermark run: media's high mark");
    // Moves give way to clients: with a reader busy on media's disks (O_DIRECT reads of
    // its md device), a run moving a clip off media slows to the busy pace and its job
    // says why; the clip arrives whole once the reader stops. The clip is not in the page
    // cache, as a clip a rule moves seldom is: the move's own reads then cost the disks
    // what the mover counts for them.
    sh(
        &vm,
        "dd if=/dev/urandom of=/pools/media/grading/busy.mov bs=1M count=96 2>/dev/null",
    );
    let busy_sum = sh(
        &vm,
        "sha256sum < /pools/media/grading/busy.mov; sync; echo 3 > /proc/sys/vm/drop_caches",
    );
    set_rules(
        &vm,
        &format!(
            "{PIN_REEL_0}\\n[[rule]]\\nname = \"off-media\"\\nfile = \"busy.mov\"\\naction = \"place\"\\npool = \"archive\"\\n"
        ),
    );
    let runs_before = run_ids(&ctl_json(&vm, "jobs"));
    let md = pool_state(&vm)["device"]
        .as_str()
        .expect("media's md device")
        .to_string();
    sh(
        &vm,
        &format!(
            "(while :; do dd if={md} of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null; done) \
             >/dev/null 2>&1 & echo $! > /tmp/load.pid"
        ),
    );
    let out = ctl(&vm, "placement run", 0, SHORT);
    assert!(out.contains("started job"), "{out}");
    // The run's steps as they change, for a minute at most (each look takes a while
    // under TCG); then the reader stops.
    let seen = vm
        .run(
            &format!("end=$(( $(date +%s) + 60 )); while [ $(date +%s) -lt $end ]; do \
             s=$(rushesctl --json jobs | grep -o '\"step\": *\"[^\"]*busy.mov[^\"]*'); \
             echo \"$s\" >> /tmp/steps; echo \"$s\" | grep -q 'backing off' && break; sleep 0.2; done; \
             kill $(cat /tmp/load.pid); pkill -x dd; uniq /tmp/steps; \
             echo \"{md}: $(cat /sys/block/{md_name}/stat)\"",
                md_name = md.rsplit('/').next().unwrap_or_default()
            ),
            2 * SHORT,
        )
        .unwrap()
        .0;
    assert!(
        seen.contains("backing off: clients move"),
        "the move never said it gave way to the reader: {seen}"
    );
    eprintln!("the move as it gave way to the reader:\n{seen}");
    let done = wait_json(&vm, "jobs", 3 * SHORT, "the run done", |v| {
        v.as_array().unwrap().iter().any(|j| {
            j["kind"] == "placement-run"
                && j["state"] == "done"
                && !runs_before.contains(&j["id"].as_u64().unwrap_or(0))
        })
    });
    let step = done
        .as_array()
        .unwrap()
        .iter()
        .find(|j| {
            j["kind"] == "placement-run" && !runs_before.contains(&j["id"].as_u64().unwrap_or(0))
        })
        .map(|j| j["step"].to_string())
        .unwrap_or_default();
    assert!(step.contains("done: moved 1 files"), "{step}");
    let out = ctl(&vm, "placement explain grading/busy.mov", 0, SHORT);
    assert!(out.contains("data on pool archive"), "{out}");
    // Read through the namespace: the home file is a hole now.
    let moved = read_share_file(vm.port, "/grading", "busy.mov").await;
    assert!(
        busy_sum.starts_with(&sha256(&moved)),
        "the clip moved whole"
    );

    steps.done("moves give way to clients");
    // A pool that stays past its high watermark raises an alert once its alert_after is
    // over (here a minute; the monitor looks every 30 s): a filler pinned on media keeps
    // it there, since nothing may move. The alert goes once the pool is back under.
    let media = pool_state(&vm);
    let size = media["size_bytes"].as_u64().unwrap();
    let pct = media["used_bytes"].as_u64().unwrap() * 100 / size;
    set_rules(
        &vm,
        &format!(
            "[[pool]]\\nname = \"media\"\\nhigh = {}\\nlow = {pct}\\nalert_after = \"1m\"\\n\\n\
             [[rule]]\\nname = \"keep-all\"\\npath = \"**\"\\naction = \"pin\"\\n",
            pct + 1
        ),
    );
    sh(
        &vm,
        &format!(
            "dd if=/dev/urandom of=/pools/media/grading/stuck.mov bs=1M count={} 2>/dev/null && sync",
            size / 50 / (1 << 20) + 8
        ),
    );
    let alerts = wait_json(&vm, "alerts", 3 * SHORT, "the pool-stays-full alert", |v| {
        open_alert(v, "pool-stays-full:media").is_some()
    });
    let alert = open_alert(&alerts, "pool-stays-full:media").unwrap();
    assert!(
        alert["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("past its high watermark {} %", pct + 1)),
        "{alert:#}"
    );
    sh(&vm, "rm /pools/media/grading/stuck.mov && sync");
    wait_json(
        &vm,
        "alerts",
        3 * SHORT,
        "the alert gone with the filler",
        |v| open_alert(v, "pool-stays-full:media").is_none(),
    );
    set_rules(&vm, PIN_REEL_0);

    steps.done("a pool that stays past its high watermark");
    // Pull a member: the pool goes degraded with an alert and keeps serving.
    vm.pull("nvme1").unwrap();
    let alerts = wait_json(&vm, "alerts", SHORT, "a degraded alert", |v| {
        open_alert(v, "pool-degraded:media").is_some()
    });
    let alert = open_alert(&alerts, "pool-degraded:media").unwrap();
    assert_eq!(alert["severity"], "critical");
    assert!(
        alert["action"]
            .as_str()
            .unwrap()
            .contains("rushesctl pool replace media"),
        "{alert}"
    );
    vm.type_keys("d").unwrap();
    vm.wait_screen(&["DEGRADED", "! CRITICAL pool media is degraded"], SHORT)
        .unwrap();
    let pool = pool_state(&vm);
    assert_eq!(pool["state"], "degraded");
    assert!(
        pool["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["serial"] == "RUSHESNVME1" && m["state"] == "missing"),
        "{pool:#}"
    );
    assert!(
        read_file(vm.port, "reel-0.mov").await == files[0].1,
        "read while degraded"
    );
    let degraded_write = payload(7, 3 << 20);
    write_file(vm.port, "while-degraded.mov", &degraded_write).await;

    steps.done("pull a member: the pool goes");
    // A new disk in a free slot replaces it; the rebuild completes and the alert clears.
    vm.hot_add_nvme("nvme4", "RUSHESNVME4", "1G", "hotplug0")
        .unwrap();
    wait_json(&vm, "disks", SHORT, "the hot-added disk", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|d| d["serial"] == "RUSHESNVME4")
    });
    steps.done("a new disk in a free");
    // From the console's Pools screen, with md slowed so its progress bar is seen
    // part way.
    let md = pool_state(&vm)["device"]
        .as_str()
        .expect("the pool's md device")
        .trim_start_matches("/dev/")
        .to_string();
    md_speed_max(&vm, &md, "20000");
    let rebuild = Instant::now();
    let job = start_from_pools_screen(&mut vm, "r", "RUSHESNVME4");
    let line = wait_partial_bar(&vm, job, "replace-disk");
    eprintln!("the Pools screen during the rebuild: {line}");
    md_speed_max(&vm, &md, "system");
    ctl(&vm, &format!("jobs watch {job}"), 0, MD_WORK);
    eprintln!(
        "rebuild onto a 1 GiB disk: {:.0?} under TCG",
        rebuild.elapsed()
    );
    let pool = pool_state(&vm);
    assert_eq!(pool["state"], "online", "{pool:#}");
    assert!(
        open_alert(&ctl_json(&vm, "alerts"), "pool-degraded:media").is_none(),
        "the degraded alert did not clear"
    );

    steps.done("from the console's pools screen, with");
    // Grow by one disk while serving: reads and writes go on during the reshape.
    let size_before = pool["size_bytes"].as_u64().unwrap();
    vm.hot_add_nvme("nvme5", "RUSHESNVME5", "1G", "hotplug1")
        .unwrap();
    wait_json(&vm, "disks", SHORT, "the second hot-added disk", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|d| d["serial"] == "RUSHESNVME5")
    });
    // md's speed limit keeps the reshape going while the file is written, so the
    // write is proved to land during it, not after.
    md_speed_max(&vm, &md, "2000");
    let grow = Instant::now();
    let job = start_from_pools_screen(&mut vm, "g", "RUSHESNVME5");
    let deadline = Instant::now() + MD_WORK;
    while !sh(&vm, "cat /proc/mdstat").contains("reshape") {
        assert!(Instant::now() < deadline, "the reshape never started");
        std::thread::sleep(Duration::from_secs(1));
    }
    let during = payload(9, 4 << 20);
    write_file(vm.port, "during-reshape.mov", &during).await;
    // reel-0, pinned, is still on this pool (the watermark run took the others away).
    assert!(
        read_file(vm.port, "reel-0.mov").await == files[0].1,
        "read during the reshape"
    );
    let mdstat = sh(&vm, "cat /proc/mdstat");
    assert!(
        mdstat.contains("reshape"),
        "the reshape ended before the write did: {mdstat}"
    );
    let line = wait_partial_bar(&vm, job, "grow-pool");
    eprintln!("the Pools screen during the reshape: {line}");
    md_speed_max(&vm, &md, "system");
    ctl(&vm, &format!("jobs watch {job}"), 0, MD_WORK);
    eprintln!(
        "reshape 4 -> 5 disks and xfs_growfs: {:.0?} under TCG",
        grow.elapsed()
    );
    let pool = pool_state(&vm);
    assert_eq!(pool["members"].as_array().unwrap().len(), 5, "{pool:#}");
    assert!(
        pool["size_bytes"].as_u64().unwrap() > size_before + (800 << 20),
        "the file system did not grow: {size_before} -> {}",
        pool["size_bytes"]
    );
    steps.done("grow by one disk while serving");
    // Narrow the share to QEMU's user network from the Shares screen; the host's
    // requests arrive from 10.0.2.2, so they are still served.
    vm.type_keys("s").unwrap();
    vm.wait_screen(&["E edit its clients", ">projects"], SHORT)
        .unwrap();
    vm.type_keys("e").unwrap();
    vm.wait_screen(&["Who may mount this share", "0.0.0.0/0,::/0"], SHORT)
        .unwrap();
    vm.type_keys(&"\x7f".repeat(20)).unwrap();
    vm.type_keys("10.0.2.0/24\r").unwrap();
    vm.wait_screen(&["now follows the new rule", "10.0.2.0/24 rw"], SHORT)
        .unwrap();
    let share = ctl_json(&vm, "share show projects");
    assert_eq!(
        share["rules"][0]["clients"],
        serde_json::json!(["10.0.2.0/24"])
    );
    for (name, data) in [
        ("while-degraded.mov", &degraded_write),
        ("during-reshape.mov", &during),
    ] {
        assert!(
            read_file(vm.port, name).await == *data,
            "{name} after the grow"
        );
    }
    for (name, data) in &files {
        assert!(
            read_file(vm.port, name).await == *data,
            "{name} after the grow"
        );
    }

    steps.done("narrow the share to qemu's user");
    // A scrub on demand, from the Pools screen, finds nothing wrong.
    vm.type_keys("p").unwrap();
    vm.wait_screen(&["U scrub now", ">media"], SHORT).unwrap();
    vm.type_keys("u").unwrap();
    vm.wait_screen(&["Scrub of pool media started"], SHORT)
        .unwrap();
    let scrub = ctl_json(&vm, "jobs");
    let scrub = scrub
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "scrub")
        .expect("a scrub job")["id"]
        .clone();
    ctl(&vm, &format!("jobs watch {scrub}"), 0, MD_WORK);
    assert_eq!(pool_state(&vm)["scrub_mismatches"], 0);

    steps.done("a scrub on demand, from the");
    // A second scrub, slowed by md's speed limit so that it outlasts a crash of
    // rushesd: the jobs service kept it, the restarted daemon takes it up again (md
    // carried on meanwhile), and cancel stops md's check.
    md_speed_max(&vm, &md, "2000");
    let job = ctl_json(&vm, "pool scrub media");
    let id = job["id"].as_u64().unwrap();
    assert_eq!(
        job["target"],
        serde_json::json!({"kind": "pool", "name": "media"})
    );
    assert_eq!(job["cancellable"], true, "{job:#}");
    let of_job = |v: &Value| {
        v.as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let counted = wait_json(&vm, "jobs", SHORT, "the scrub's progress", |v| {
        of_job(v)["progress"]["unit"] == "bytes"
    });
    assert!(of_job(&counted)["progress"]["total"].as_u64().unwrap() > 0);
    sh(&vm, "kill -9 $(pidof rushesd)");
    let deadline = Instant::now() + SHORT;
    let taken_up = loop {
        // rushesd is down until init starts it again: rushesctl fails meanwhile.
        if let Ok((out, 0)) = vm.run("rushesctl --json jobs", SHORT) {
            let jobs: Value = serde_json::from_str(&out).unwrap();
            let j = of_job(&jobs);
            if j["resumed"] == true && j["state"] == "running" {
                break j;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the scrub was not taken up after the restart"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(
        sh(&vm, &format!("cat /sys/block/{md}/md/sync_action")).trim(),
        "check",
        "md went on checking while rushesd was down: {taken_up:#}"
    );
    steps.done("a second scrub, slowed by md's");
    // The console's dashboard lists it among the running jobs, with a progress bar.
    vm.type_keys("d").unwrap();
    vm.wait_screen(
        &["Running jobs", &format!("{id} scrub pool media [")],
        SHORT,
    )
    .unwrap();
    let out = ctl(&vm, &format!("jobs cancel {id}"), 0, SHORT);
    assert!(out.contains("stopping"), "{out}");
    let ended = wait_json(&vm, "jobs", SHORT, "the scrub cancelled", |v| {
        of_job(v)["state"] == "cancelled"
    });
    assert!(
        of_job(&ended)["error"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{ended:#}"
    );
    assert_eq!(
        sh(&vm, &format!("cat /sys/block/{md}/md/sync_action")).trim(),
        "idle"
    );
    let out = ctl(&vm, &format!("jobs cancel {id}"), 1, SHORT);
    assert!(out.contains("ended already"), "{out}");
    md_speed_max(&vm, &md, "system");

    steps.done("the console's dashboard lists it among");
    // A config backup, restored onto the same box made fresh (RUSHES-CFG's settings and
    // state removed, then a reboot): the pools are found again by the md UUIDs in the
    // restored rushes.toml, the shares are served, the files read the same.
    let out = ctl(
        &vm,
        "config backup -o /cfg/box.backup < /dev/null",
        1,
        SHORT,
    );
    assert!(out.contains("shorter than 8 characters"), "{out}");
    let states = |v: &Value| -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    p["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        s.sort();
        s
    };
    let pools_before = states(&ctl_json(&vm, "pools"));
    sh(
        &vm,
        "echo 'correct horse battery' | rushesctl config backup -o /cfg/box.backup",
    );
    sh(
        &vm,
        "rm -rf /cfg/rushes.toml /cfg/rushes.toml.prev /cfg/state && sync",
    );
    let before = vm.console().len();
    vm.qmp(r#"{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}}"#)
        .unwrap();
    let again = vm.wait_for("rushes: rebooting now", before, SHORT).unwrap();
    vm.wait_for("rushes: ready", again, BOOT).unwrap();
    let fresh = ctl_json(&vm, "pools");
    assert_eq!(
        fresh.as_array().map(Vec::len),
        Some(0),
        "a fresh box knows no pool: {fresh}"
    );
    let out = sh(
        &vm,
        "echo 'wrong horse battery' | rushesctl config restore /cfg/box.backup; echo rc=$?",
    );
    assert!(
        out.contains("passphrase is wrong") && out.contains("rc=1"),
        "{out}"
    );
    let out = sh(
        &vm,
        "echo 'correct horse battery' | rushesctl config restore /cfg/box.backup",
    );
    assert!(out.contains("rushesd is starting again on it"), "{out}");
    wait_json(&vm, "pools", MD_WORK, "the pools back as they were", |v| {
        states(v) == pools_before
    });
    let shares = wait_json(&vm, "shares", SHORT, "the shares back", |v| {
        v.as_array().unwrap().len() == 2
    });
    assert!(shares.to_string().contains("projects"), "{shares}");
    for (name, data) in &files {
        assert!(
            read_file(vm.port, name).await == *data,
            "{name} changed across the restore"
        );
    }
    steps.done("a config backup, restored onto the");
    // The console of a fresh box shows the wizard; started again, it knows the box is
    // set up (and locks, as after a reboot).
    sh(&vm, "kill $(pidof rushes-console)");
    vm.wait_screen(&["This console is locked"], SHORT).unwrap();

    steps.done("the console of a fresh box");
    // Destroying needs the name repeated and the shares gone; the disks are free after.
    let out = ctl(&vm, "pool destroy media --confirm medai", 1, SHORT);
    assert!(out.contains("confirm"), "{out}");
    let out = ctl(&vm, "pool destroy media --confirm media", 1, SHORT);
    assert!(out.contains("still has shares: projects"), "{out}");
    ctl(&vm, "share delete projects", 0, SHORT);
    ctl(&vm, "share delete grading", 0, SHORT);
    ctl(&vm, "pool destroy media --confirm media", 0, SHORT);
    ctl(&vm, "pool destroy archive --confirm archive", 0, SHORT);
    let disks = ctl_json(&vm, "disks");
    let nvme: Vec<&Value> = disks
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["transport"] == "nvme")
        .collect();
    assert!(
        nvme.len() == 5
            && nvme
                .iter()
                .all(|d| d["in_use_by"].is_null() && d["contents"].as_array().unwrap().is_empty()),
        "disks not freed: {nvme:#?}"
    );

    steps.done("destroying needs the name repeated and");
    // Power off from the Power screen (appliance_image uses the ACPI button). The
    // console may have locked itself in the quiet minutes of md's work.
    unlock_if_locked(&mut vm);
    let before = vm.console().len();
    vm.type_keys("o").unwrap();
    vm.wait_screen(&["O  power it off"], SHORT).unwrap();
    vm.type_keys("o").unwrap();
    vm.wait_screen(&["Really poweroff the appliance?"], SHORT)
        .unwrap();
    vm.type_keys("y").unwrap();
    vm.wait_for("rushes: powering off now", before, SHORT)
        .unwrap();
    let status = vm.wait_exit(SHORT * 2).unwrap();
    assert!(status.success(), "QEMU ended with {status}");
    let _ = ready;
    eprintln!("pools guest: {:.0?} in all under TCG", began.elapsed());
    steps.done("power off from the power screen");
}
