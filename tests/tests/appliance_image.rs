//! The bootable image, booted in QEMU (UEFI, USB stick, TCG) exactly as `make run` does.
//! One guest walks through the appliance's life: boot to ready, serve NFS to the host,
//! survive `kill -9` of rushesd, keep RUSHES-CFG across a reboot, power off cleanly on
//! the ACPI button, and take a signed update bundle from a URL into the idle slot, boot
//! it and bless it (one signed by a stranger refused), then roll back. A second guest
//! checks that a broken slot falls back to the other, and that a blank RUSHES-CFG is
//! formatted on first boot.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rushes_tests::guest::Foreign;
use rushes_tests::vm::{copy_image, debugfs, enable_debug_shell, fsck_cfg, Vm};
use rushes_tests::{Nfs, User};

/// Under TCG a boot takes about half a minute here; CI machines may be slower.
const BOOT: Duration = Duration::from_secs(600);

async fn nfs_roundtrip(port: u16, name: &str, payload: &[u8]) {
    let user = User::new(1000, 1000);
    let mut c = Nfs::mount(port, "/scratch", &user)
        .await
        .expect("mount the RAM share through the forwarded port");
    let fh = c.put_file(name, payload).await.expect("write over NFS");
    assert!(
        c.read_all(&fh).await.expect("read") == payload,
        "{name} read back different bytes"
    );
}

/// `rushesd inventory --json` in the guest: the disks, and the JSON for messages.
/// The sockets listening in the guest, from /proc/net (the image has no ss): protocol,
/// port, and whether only on loopback.
fn listening(vm: &Vm) -> BTreeSet<(String, u16, bool)> {
    // The quotes keep the section marks out of the shell's echo of the command.
    let out = vm
        .shell(
            "echo '=''=TCP'; cat /proc/net/tcp /proc/net/tcp6; echo '=''=UDP'; cat /proc/net/udp /proc/net/udp6",
            Duration::from_secs(30),
        )
        .unwrap();
    let mut found = BTreeSet::new();
    let mut proto = "";
    for line in out.lines() {
        match line.trim() {
            "==TCP" => proto = "tcp",
            "==UDP" => proto = "udp",
            _ => {}
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st …; TCP's LISTEN is 0A, an unconnected UDP
        // socket 07.
        let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
            continue;
        };
        let listens = matches!((proto, *state), ("tcp", "0A") | ("udp", "07"));
        let Some((addr, port)) = local.split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port, 16) else {
            continue;
        };
        // A UDP socket a client sends from (chronyd's to its NTP server, say) is
        // unconnected too, on a port from the kernel's ephemeral range: not a service.
        let ephemeral = proto == "udp" && (32768..=60999).contains(&port);
        if !listens || proto.is_empty() || ephemeral {
            continue;
        }
        let loopback = addr == "0100007F" || addr == "00000000000000000000000001000000";
        found.insert((proto.to_string(), port, loopback));
    }
    found
}

/// One process in the guest, from /proc/PID/status.
#[derive(Debug)]
struct Process {
    pid: u32,
    name: String,
    /// Effective user id.
    euid: u32,
    no_new_privs: bool,
    /// CapBnd: what it and everything it runs could ever hold.
    bounding: u64,
    /// Seccomp: 2 when a filter is installed.
    seccomp_filtered: bool,
    /// A kernel thread (no command line).
    kernel: bool,
}

/// Every process of the guest (the image has no ps that shows these).
fn processes(vm: &Vm) -> Vec<Process> {
    let (out, rc) = vm
        .run(
            // Shell built-ins only: a program per process is minutes under TCG.
            "for p in /proc/[0-9]*; do [ -r $p/status ] || continue; \
             u=; n=; b=; s=; while read k a e rest; do case $k in \
             Uid:) u=$e;; NoNewPrivs:) n=$a;; CapBnd:) b=$a;; Seccomp:) s=$a;; esac; \
             done < $p/status; \
             x=; read -r x < $p/cmdline; c=; read -r c < $p/comm; \
             echo \"proc ${p#/proc/} ${#x} $u $n $b $s $c\"; done",
            Duration::from_secs(300),
        )
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.strip_prefix("proc ")?.split_whitespace().collect();
            Some(Process {
                pid: f.first()?.parse().ok()?,
                kernel: *f.get(1)? == "0",
                euid: f.get(2)?.parse().ok()?,
                no_new_privs: *f.get(3)? == "1",
                bounding: u64::from_str_radix(f.get(4)?, 16).ok()?,
                seccomp_filtered: *f.get(5)? == "2",
                name: f.get(6..)?.join(" "),
            })
        })
        .collect()
}

fn inventory(vm: &Vm) -> (Vec<serde_json::Value>, String) {
    let out = vm
        .shell("rushesd inventory --json", Duration::from_secs(60))
        .unwrap();
    let json =
        &out[out.find("\n[").expect("JSON in the inventory output") + 1..=out.rfind(']').unwrap()];
    (serde_json::from_str(json).unwrap(), json.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_boots_serves_restarts_rushesd_keeps_its_config_and_powers_off() {
    let work = tempfile::tempdir().unwrap();
    let mut steps = rushes_tests::vm::Steps::new("appliance_image");
    let image = copy_image(work.path()).unwrap();
    // The maintenance shell on ttyS1 lets the test act inside the guest.
    enable_debug_shell(&image).unwrap();
    steps.done("image copied");
    // The image's own kernel and initramfs, for the update bundles below.
    let updates = work.path().join("updates");
    std::fs::create_dir_all(&updates).unwrap();
    rushes_tests::vm::slot_payload(&image, &updates).unwrap();

    let mut vm = Vm::boot(&image, work.path()).unwrap();
    let kernel_at = vm
        .wait_for("Linux version", 0, BOOT)
        .map(|_| Instant::now());
    let ready = vm.wait_for("rushes: ready", 0, BOOT).unwrap();
    let boot_time = vm.started.elapsed();
    let kernel_to_ready = kernel_at.map(|t| t.elapsed()).unwrap_or_default();
    eprintln!("boot to ready: {boot_time:.1?} (kernel to ready {kernel_to_ready:.1?}), under TCG");
    vm.wait_for("blessed: slot is good", ready, Duration::from_secs(60))
        .expect("a healthy boot blesses its entry");
    assert!(
        vm.console().contains("hardware watchdog armed"),
        "the i6300esb watchdog was not picked up"
    );

    steps.done("boot to ready, blessed");
    // A file written over NFS from the host reads back identical.
    let payload: Vec<u8> = (0..3 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    nfs_roundtrip(vm.port, "from-host.bin", &payload).await;

    let rss = vm
        .shell(
            "grep VmRSS /proc/$(pidof rushesd)/status",
            Duration::from_secs(30),
        )
        .unwrap();
    eprintln!(
        "rushesd at idle: {}",
        rss.lines().find(|l| l.starts_with("VmRSS")).unwrap_or("?")
    );

    steps.done("a file written over nfs from");
    // The inventory sees QEMU's disks with their serials and sizes, and marks the stick.
    let (disks, json) = inventory(&vm);
    let json = json.as_str();
    let with = |transport: &str| -> Vec<&serde_json::Value> {
        disks
            .iter()
            .filter(|d| d["transport"] == transport)
            .collect()
    };
    let serials = |v: &[&serde_json::Value]| {
        let mut s: Vec<String> = v
            .iter()
            .map(|d| d["serial"].as_str().unwrap_or("").to_string())
            .collect();
        s.sort();
        s
    };
    let (nvme, sata, usb) = (with("nvme"), with("sata"), with("usb"));
    assert_eq!(
        serials(&nvme),
        ["RUSHESNVME0", "RUSHESNVME1", "RUSHESNVME2", "RUSHESNVME3"],
        "{json}"
    );
    assert!(
        nvme.iter()
            .all(|d| d["size_bytes"] == 8u64 << 30 && d["boot"] == false),
        "{json}"
    );
    assert_eq!(serials(&sata), ["RUSHESSATA0", "RUSHESSATA1"], "{json}");
    assert!(
        sata.iter()
            .all(|d| d["size_bytes"] == 16u64 << 30 && d["boot"] == false),
        "{json}"
    );
    steps.done("the inventory sees qemu's disks with");
    // SATA drives report SMART through smartctl (QEMU's ATA disks pass their
    // self-assessment), beside the NVMe drives' own health log.
    for d in sata.iter().chain(&nvme) {
        let want = if d["transport"] == "sata" {
            "smart"
        } else {
            "nvme-log"
        };
        assert_eq!(d["health"]["source"], want, "{d}");
    }
    assert!(
        sata.iter().all(|d| d["health"]["smart_passed"] == true),
        "{json}"
    );
    assert_eq!(usb.len(), 1, "{json}");
    assert!(
        usb[0]["boot"] == true
            && usb[0]["contents"]
                .as_array()
                .unwrap()
                .contains(&"gpt".into()),
        "{json}"
    );

    steps.done("sata drives report smart through smartctl");
    // Someone else's disks: a LUKS volume, a swap area and a bcache device, their headers
    // made by the real tools on the host, are each "has data, needs --wipe", named as
    // libblkid names them, in the inventory, rushesctl, and a refused pool.
    let foreign = [Foreign::Luks, Foreign::Swap, Foreign::Bcache];
    let mut targets = Vec::new();
    for (kind, d) in foreign.iter().zip(&nvme[1..]) {
        let name = d["name"].as_str().unwrap().to_string();
        vm.put_file("/tmp/header", &kind.header()).unwrap();
        let (out, rc) = vm
            .run(
                &format!("busybox dd if=/tmp/header of=/dev/{name} conv=notrunc,fsync 2>&1"),
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(rc, 0, "writing a {kind:?} header to {name}: {out}");
        targets.push((name, kind.blkid_name()));
    }
    let (after, _) = inventory(&vm);
    for (name, what) in &targets {
        let d = after.iter().find(|d| d["name"] == name.as_str()).unwrap();
        assert_eq!(d["contents"], serde_json::json!([what]), "{d}");
        assert!(d["in_use_by"].is_null(), "{d}");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let table = loop {
        let table = vm
            .shell("rushesctl disks", Duration::from_secs(60))
            .unwrap();
        if targets.iter().all(|(name, what)| {
            table.lines().any(|l| {
                l.starts_with(name.as_str())
                    && l.contains(&format!("has data: {what} (needs --wipe)"))
            })
        }) {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "rushesd's inventory never saw the headers:\n{table}"
        );
        std::thread::sleep(Duration::from_secs(5));
    };
    let (luks, swap) = (&targets[0].0, &targets[1].0);
    let out = vm
        .shell(
            &format!("rushesctl pool create theirs --level raid1 {luks} {swap}; echo rc=$?"),
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(
        out.contains("rc=1")
            && out.contains("holds crypto_LUKS")
            && out.contains(&format!("--wipe {luks}")),
        "a pool over a LUKS volume must be refused, naming it:\n{out}\n{table}"
    );

    steps.done("someone else's disks: a luks volume");
    // HTTPS copies to cloud targets have the system's roots to check certificates by.
    let roots = vm
        .shell(
            "grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt",
            Duration::from_secs(30),
        )
        .unwrap();
    let count: usize = roots
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    assert!(count > 100, "the image's CA bundle: {roots}");

    // kill -9 of rushesd: init restarts it and the share serves again.
    vm.shell("kill -9 $(pidof rushesd)", Duration::from_secs(30))
        .unwrap();
    let killed = vm
        .wait_for(
            "rushesd was killed by SIGKILL",
            ready,
            Duration::from_secs(60),
        )
        .unwrap();
    vm.wait_for("rushesd is ready", killed, Duration::from_secs(120))
        .unwrap();
    nfs_roundtrip(vm.port, "after-restart.bin", &payload[..1 << 20]).await;

    // kill -9 of the serial line's console: init starts it again, and the new one
    // takes the screen (the alternate screen is entered afresh after the kill).
    rushes_tests::guest::kill_serial_console(&vm);
    let console_killed = vm
        .wait_for(
            "console-ttyS0 was killed by SIGKILL",
            killed,
            Duration::from_secs(60),
        )
        .unwrap();
    vm.wait_for("\x1b[?1049h", console_killed, Duration::from_secs(60))
        .unwrap();

    steps.done("https copies to cloud targets have");
    // Settings changed before a reboot (ctrl-alt-del) are there, and applied, after it:
    // a host name, a time zone and a static address instead of DHCP.
    // The NTP server is a chronyd on the host's loopback (QEMU's 10.0.2.2).
    // rushesd's own tables beside them (a rate rule, and one no version knows yet) are
    // none of init's business and must not cost the box its address or name.
    let ntp = rushes_tests::ntp::NtpServer::start();
    let settings = format!(
        r#"printf 'hostname = "edit-bay-nas"\ntimezone = "Asia/Tokyo"\nntp = ["10.0.2.2:{}"]\n[[network]]\ninterface = "*"\naddress = "10.0.2.15/24"\ngateway = "10.0.2.2"\n[[rate]]\nname = "render"\nclients = ["10.0.9.0/24"]\ncap_mb_s = 400\n[future_table]\nkept = true\n' > /cfg/rushes.toml"#,
        ntp.port
    );
    let settings = settings.as_str();
    vm.shell(settings, Duration::from_secs(30)).unwrap();
    steps.done("settings changed before a reboot ctrl-alt-del");
    // Something written to RUSHES-CFG before a reboot (ctrl-alt-del) is there after it.
    vm.shell(
        "echo keep-me-42 > /cfg/marker && sync",
        Duration::from_secs(30),
    )
    .unwrap();
    let before = vm.console().len();
    vm.qmp(r#"{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}}"#)
        .unwrap();
    let again = vm
        .wait_for("rushes: rebooting now", before, Duration::from_secs(120))
        .unwrap();
    vm.wait_for("rushes: ready", again, BOOT).unwrap();
    let marker = vm
        .shell("cat /cfg/marker", Duration::from_secs(30))
        .unwrap();
    assert!(
        marker.contains("keep-me-42"),
        "RUSHES-CFG lost a file across the reboot: {marker}"
    );
    let after_reboot = vm.console()[again..].to_string();
    assert!(
        after_reboot.contains("static address 10.0.2.15/24"),
        "static address not applied"
    );
    assert!(
        !after_reboot.contains("started dhcp-"),
        "DHCP ran although an address was configured"
    );
    let hostname = vm
        .shell("cat /proc/sys/kernel/hostname", Duration::from_secs(30))
        .unwrap();
    assert!(
        hostname.contains("edit-bay-nas"),
        "host name not applied: {hostname}"
    );
    steps.done("something written to rushes-cfg before a");
    // The time zone: /etc/localtime points at tzdata's zone, and local time is JST.
    let zone = vm
        .shell("readlink /etc/localtime; date +%Z", Duration::from_secs(30))
        .unwrap();
    assert!(
        zone.contains("/usr/share/zoneinfo/Asia/Tokyo") && zone.contains("JST"),
        "time zone not applied: {zone}"
    );
    nfs_roundtrip(vm.port, "static.bin", &payload[..1 << 16]).await;

    steps.done("the time zone: etclocaltime points at");
    // Time from chronyd, which init runs on the configuration rushesd wrote from the
    // settings: it follows the host's server and the kernel marks its clock synchronised.
    let time = |vm: &Vm| -> serde_json::Value {
        let out = vm
            .shell("rushesctl --json time", Duration::from_secs(60))
            .unwrap();
        serde_json::from_str(&out[out.find('{').expect("JSON")..=out.rfind('}').unwrap()]).unwrap()
    };
    let synced = |t: &serde_json::Value| {
        t["synced"]["server"] == "10.0.2.2" && t["kernel_synchronised"] == true
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut t = time(&vm);
    while !synced(&t) {
        assert!(Instant::now() < deadline, "chronyd never synchronised: {t}");
        std::thread::sleep(Duration::from_secs(3));
        t = time(&vm);
    }
    steps.done("time from chronyd, which init runs");
    // The clock three seconds fast, and chronyd killed: init starts it again, and while
    // starting it steps the clock back (more than 128 ms off) instead of slewing.
    let count_steps = |vm: &Vm| -> usize {
        let out = vm
            .shell(
                "echo steps=$(grep -c 'System clock was stepped by' /run/rushes/log.txt)",
                Duration::from_secs(30),
            )
            .unwrap();
        let at = out.rfind("steps=").expect("the count") + "steps=".len();
        out[at..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let steps_before = count_steps(&vm);
    vm.shell(
        "date -s @$(( $(date +%s) + 3 )) >/dev/null && kill $(pidof chronyd)",
        Duration::from_secs(30),
    )
    .unwrap();
    let log = |vm: &Vm| {
        vm.shell("tail -n 40 /run/rushes/log.txt", Duration::from_secs(30))
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if count_steps(&vm) > steps_before && synced(&time(&vm)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chronyd did not step the clock back:\n{}",
            log(&vm)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let t = time(&vm);
    let host_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let guest_now = t["now"].as_f64().unwrap();
    assert!(
        (guest_now - host_now).abs() < 2.0,
        "the guest's clock is {:.1} s off the host's after the step: {t}\n{}",
        guest_now - host_now,
        log(&vm)
    );

    steps.done("the clock three seconds fast, and");
    // Only the services the README lists listen (NFS, SMB, the portmapper, metrics,
    // HTTPS and its redirect, mDNS), and nothing else, not even on loopback.
    let open = listening(&vm);
    let network: BTreeSet<&str> = open
        .iter()
        .filter(|(_, _, loopback)| !loopback)
        .map(|(proto, port, _)| match (proto.as_str(), port) {
            ("tcp", 80) => "tcp 80 (HTTPS redirect)",
            ("tcp", 111) => "tcp 111 (portmapper)",
            ("udp", 111) => "udp 111 (portmapper)",
            ("tcp", 443) => "tcp 443 (HTTPS: web console and API)",
            ("tcp", 445) => "tcp 445 (SMB)",
            ("tcp", 2049) => "tcp 2049 (NFS, MOUNT, NLM, NSM)",
            ("udp", 2049) => "udp 2049 (MOUNT, NLM, NSM)",
            ("udp", 5353) => "udp 5353 (mDNS)",
            ("tcp", 9100) => "tcp 9100 (metrics)",
            _ => "unexpected",
        })
        .collect();
    assert!(
        !network.contains("unexpected"),
        "a port nobody listed is open to the network: {open:?}"
    );
    steps.done("only the services the readme lists");
    // Exactly these (the README's list): one more is a service nobody reviewed, one
    // fewer a service that did not start.
    let expected: BTreeSet<&str> = [
        "tcp 80 (HTTPS redirect)",
        "tcp 111 (portmapper)",
        "udp 111 (portmapper)",
        "tcp 443 (HTTPS: web console and API)",
        "tcp 445 (SMB)",
        "tcp 2049 (NFS, MOUNT, NLM, NSM)",
        "udp 2049 (MOUNT, NLM, NSM)",
        "udp 5353 (mDNS)",
        "tcp 9100 (metrics)",
    ]
    .into();
    assert_eq!(network, expected, "listening: {open:?}");
    assert!(
        open.iter().all(|(_, _, loopback)| !loopback),
        "something listens on loopback only: {open:?}"
    );

    steps.done("exactly these the readme's list: one");
    // Least privilege: every service init starts has no_new_privs and a seccomp filter
    // (init's confine.rs: the system calls none of them makes), and has lost the
    // capabilities none of them uses (rebooting, tracing, setting the clock but for
    // chronyd); the console and chronyd do not run as root at all. Only init, kernel
    // threads and the maintenance shell (with what this check runs in it) are exempt.
    const SYS_PTRACE: u64 = 1 << 19;
    const SYS_BOOT: u64 = 1 << 22;
    const SYS_TIME: u64 = 1 << 25;
    let procs = processes(&vm);
    let shell_tools = ["sh", "cat"];
    let services: Vec<&Process> = procs
        .iter()
        .filter(|p| !p.kernel && p.pid != 1 && !shell_tools.contains(&p.name.as_str()))
        .collect();
    // (This box has a static address: no DHCP client runs.)
    for name in ["rushesd", "smbd", "chronyd", "rushes-console"] {
        assert!(
            services.iter().any(|p| p.name == name),
            "no {name} running: {procs:#?}"
        );
    }
    for p in &services {
        assert!(
            p.no_new_privs,
            "{} runs without no_new_privs: {p:?}",
            p.name
        );
        assert!(
            p.seccomp_filtered,
            "{} runs without its seccomp filter: {p:?}",
            p.name
        );
        assert_eq!(
            p.bounding & (SYS_BOOT | SYS_PTRACE),
            0,
            "{} could still reboot or trace: {p:?}",
            p.name
        );
        if p.name != "chronyd" {
            assert_eq!(
                p.bounding & SYS_TIME,
                0,
                "{} could set the clock: {p:?}",
                p.name
            );
        }
        if p.name == "rushes-console" {
            assert!(p.euid != 0 && p.bounding == 0, "the console runs as {p:?}");
        }
        if p.name == "chronyd" {
            assert!(p.euid != 0, "chronyd runs as root: {p:?}");
        }
    }

    steps.done("least privilege: every service init starts");
    // Updates from the box: a signed bundle fetched from a URL goes into the idle slot
    // (B), boots, is blessed; then a rollback on purpose goes back to A.
    let bundle = |key: &rushes_update::SecretKey, name: &str, version: &str| {
        let mut out = std::fs::File::create(updates.join(name)).unwrap();
        rushes_update::make(
            &mut out,
            key,
            version,
            "0.1.0",
            "2026-12-06T00:00:00Z",
            &[
                &updates.join("vmlinuz"),
                &updates.join("initrd.zst"),
                &updates.join("root.sqfs"),
            ],
        )
        .unwrap();
    };
    bundle(
        &rushes_tests::vm::signing_key().unwrap(),
        "good.bundle",
        "0.1.1",
    );
    bundle(
        &rushes_update::SecretKey::generate().unwrap(),
        "stranger.bundle",
        "0.1.1",
    );
    let web = rushes_tests::HttpFolder::serve(&updates);
    let (out, rc) = vm
        .run(
            &format!(
                "rushesctl update apply {}",
                web.url("10.0.2.2", "stranger.bundle")
            ),
            Duration::from_secs(300),
        )
        .unwrap();
    assert!(rc != 0 && out.contains("does not trust"), "{out}");
    let (out, _) = vm.run("rushesctl update", Duration::from_secs(60)).unwrap();
    assert!(
        out.contains("running slot A")
            && out
                .lines()
                .any(|l| l.contains("slot A") && l.contains("boots next")),
        "a refused bundle changed what boots: {out}"
    );
    let started = Instant::now();
    let from = vm.console().len();
    let (out, rc) = vm
        .run(
            &format!(
                "rushesctl update apply {} --reboot",
                web.url("10.0.2.2", "good.bundle")
            ),
            Duration::from_secs(900),
        )
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    eprintln!(
        "update of {} MiB written into slot B in {:.1?} under TCG",
        std::fs::metadata(updates.join("good.bundle"))
            .unwrap()
            .len()
            >> 20,
        started.elapsed()
    );
    let ready = vm.wait_for("rushes: ready (slot b)", from, BOOT).unwrap();
    vm.wait_for("blessed: slot is good", ready, Duration::from_secs(60))
        .expect("the updated slot is blessed once its stack is ready");
    let (out, _) = vm.run("rushesctl update", Duration::from_secs(60)).unwrap();
    assert!(
        out.contains("version 0.1.1")
            && out.contains("running slot B")
            && out
                .lines()
                .any(|l| l.contains("slot B") && l.contains("good") && l.contains("boots next")),
        "{out}"
    );
    let from = vm.console().len();
    let (out, rc) = vm
        .run(
            "rushesctl update rollback --reboot",
            Duration::from_secs(120),
        )
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    vm.wait_for("rushes: ready (slot a)", from, BOOT)
        .expect("a rollback boots the other slot");
    let (out, _) = vm.run("rushesctl update", Duration::from_secs(60)).unwrap();
    assert!(
        out.contains("version 0.1.0") && out.contains("running slot A"),
        "{out}"
    );
    drop(web);

    steps.done("updates from the box: a signed");
    // The ACPI power button: services stop, logs are saved, the machine powers off and
    // RUSHES-CFG is consistent.
    vm.qmp(r#"{"execute":"system_powerdown"}"#).unwrap();
    let status = vm.wait_exit(Duration::from_secs(180)).unwrap();
    assert!(status.success(), "QEMU ended with {status}");
    let console = vm.console();
    assert!(
        console.contains("power button pressed") && console.contains("rushes: powering off now")
    );
    assert!(
        !console.contains("did not stop in 10 s"),
        "a service ignored SIGTERM:\n{console}"
    );
    fsck_cfg(&image).unwrap();
    let logs = debugfs(&image, "ls -l /logs", false).unwrap();
    assert!(
        logs.contains("boot-"),
        "the supervisor's log was not saved to RUSHES-CFG: {logs}"
    );
    steps.done("the acpi power button: services stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_slot_falls_back_to_the_other_and_a_blank_cfg_is_formatted() {
    let work = tempfile::tempdir().unwrap();
    let image = copy_image(work.path()).unwrap();
    // Break slot A's root image on the ESP: its kernel and initramfs start, and init
    // cannot mount /usr.
    let esp = work.path().join("esp.img");
    rushes_tests::vm::extract(&image, "RUSHES-BOOT", &esp).unwrap();
    {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&esp)
            .unwrap();
        let fs = fatfs::FileSystem::new(&file, fatfs::FsOptions::new()).unwrap();
        let mut root = fs.root_dir().create_file("rushes/a/root.sqfs").unwrap();
        root.truncate().unwrap();
        std::io::Write::write_all(&mut root, b"this is not a squashfs image").unwrap();
    }
    rushes_tests::vm::put_back(&image, "RUSHES-BOOT", &esp).unwrap();
    // And blank RUSHES-CFG, as on a stick whose partition was never formatted.
    let cfg = work.path().join("cfg.img");
    rushes_tests::vm::extract(&image, "RUSHES-CFG", &cfg).unwrap();
    let size = std::fs::metadata(&cfg).unwrap().len();
    std::fs::write(&cfg, vec![0u8; size as usize]).unwrap();
    rushes_tests::vm::put_back(&image, "RUSHES-CFG", &cfg).unwrap();

    let mut vm = Vm::boot(&image, work.path()).unwrap();
    let ready = vm.wait_for("rushes: ready (slot b)", 0, BOOT * 2).unwrap();
    eprintln!(
        "fell back to slot B after {:.1?} under TCG",
        vm.started.elapsed()
    );
    assert!(
        vm.console()[..ready].contains("cannot mount the system from the boot stick"),
        "slot A should have failed first"
    );
    vm.wait_for("blessed", ready, Duration::from_secs(60))
        .unwrap();
    let console = vm.console();
    assert!(
        console.contains("has no usable file system: creating one")
            && console.contains("RUSHES-CFG mounted"),
        "a blank RUSHES-CFG must be formatted on first boot"
    );

    // Power off properly (the power button) before checking it: killing QEMU would be a
    // power cut, after which ext4 is consistent only once its journal is replayed.
    vm.qmp(r#"{"execute":"system_powerdown"}"#).unwrap();
    vm.wait_exit(Duration::from_secs(180)).unwrap();
    fsck_cfg(&image).unwrap();
}
