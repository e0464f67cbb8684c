//! The machine: kernel file systems, udev, the network, RUSHES-CFG, the services init
//! starts, and the way down.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::thread::CapabilitySet;

use crate::child::clean_signals;
use crate::confine::Confinement;
use crate::console::console;
use crate::events::Action;
use crate::log::Ring;
use crate::services::{Readiness, ServiceSpec, Supervisor};

/// Where RUSHES-CFG is mounted.
pub const CFG: &str = "/cfg";
/// The RAM-backed share `/scratch`, for trying the box; its files vanish at power-off.
const RAM_SHARE: &str = "/run/rushes/share";

fn mount(ring: &mut Ring, source: &str, target: &str, fstype: &str, data: &str) -> bool {
    let _ = std::fs::create_dir_all(target);
    let data = std::ffi::CString::new(data).ok().filter(|d| !d.is_empty());
    match rustix::mount::mount(
        source,
        target,
        fstype,
        rustix::mount::MountFlags::empty(),
        data.as_deref(),
    ) {
        Ok(()) => true,
        Err(rustix::io::Errno::BUSY) => true, // already mounted (the kernel mounts devtmpfs itself)
        Err(e) => {
            ring.push("init", &format!("cannot mount {fstype} on {target}: {e}"));
            false
        }
    }
}

/// Kernel file systems, before anything else runs.
pub fn early(ring: &mut Ring) {
    mount(ring, "proc", "/proc", "proc", "");
    mount(ring, "sysfs", "/sys", "sysfs", "");
    mount(ring, "devtmpfs", "/dev", "devtmpfs", "mode=0755");
    mount(ring, "devpts", "/dev/pts", "devpts", "gid=5,mode=620");
    mount(ring, "tmpfs", "/dev/shm", "tmpfs", "mode=1777");
    mount(ring, "tmpfs", "/run", "tmpfs", "mode=0755");
    mount(ring, "tmpfs", "/tmp", "tmpfs", "mode=1777");
    let _ = std::fs::create_dir_all("/run/rushes");
    // /usr from the slot's root image, before anything runs from it (the efivarfs driver
    // below is one of the boot modules it loads).
    crate::root_image::mount_usr(ring);
    if Path::new("/sys/firmware/efi").exists() {
        mount(
            ring,
            "efivarfs",
            "/sys/firmware/efi/efivars",
            "efivarfs",
            "",
        );
    }
    // ctrl-alt-del becomes SIGINT for us instead of an immediate reboot.
    let _ = nix::sys::reboot::set_cad_enabled(false);
    if let Ok(name) = std::fs::read_to_string("/etc/hostname") {
        let _ = rustix::system::sethostname(name.trim().as_bytes());
    }
    let _ = std::fs::create_dir_all("/run/rushes");
    open_files_limit(ring);
    ring.push("init", "rushes-init started");
}

/// The kernel starts PID 1 with at most 4,096 open files, which every service inherits;
/// a NAS holds a description per locked file and per client connection. Services may
/// raise their own limit as far as this (rushesd does); the default stays 1,024, as
/// programs written for select(2) expect.
fn open_files_limit(ring: &mut Ring) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let limit = Rlimit {
        current: Some(1024),
        maximum: Some(524_288),
    };
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        ring.push("init", &format!("cannot raise the open-file limit: {e}"));
    }
}

/// Run a command to completion (bounded by `timeout`), logging its output.
fn run(ring: &mut Ring, argv: &[&str], timeout: Duration) -> bool {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env("PATH", "/usr/sbin:/usr/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    clean_signals(&mut cmd);
    let child = cmd.spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            ring.push("init", &format!("cannot run {}: {e}", argv.join(" ")));
            return false;
        }
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut text = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut text);
                }
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut text);
                }
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    ring.push(argv[0], line);
                }
                if !status.success() {
                    ring.push("init", &format!("{} failed: {status}", argv.join(" ")));
                }
                return status.success();
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                ring.push("init", &format!("{} timed out", argv.join(" ")));
                return false;
            }
        }
    }
}

/// Everything between the kernel file systems and the steady state.
pub fn boot_sequence(sup: &mut Supervisor, ring: &mut Ring, pid1: bool) {
    if !pid1 {
        return;
    }
    // udev first: it loads the drivers for what the machine has.
    let udevd = [
        "/usr/lib/systemd/systemd-udevd",
        "/lib/systemd/systemd-udevd",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or("/usr/lib/systemd/systemd-udevd");
    sup.add(ServiceSpec {
        name: "udevd".into(),
        argv: vec![udevd.into()],
        after: vec![],
        ready: Readiness::Started,
        tty: None,
        confinement: Confinement::Root {
            keep: CapabilitySet::empty(),
        },
    });
    sup.tick(ring);
    // Until udevd answers: events triggered before it listens would be lost. Should
    // the ping fail, a pause as long as udevd's start usually takes.
    if !run(
        ring,
        &["udevadm", "control", "--ping", "--timeout=10"],
        Duration::from_secs(15),
    ) {
        std::thread::sleep(Duration::from_millis(200));
    }
    run(
        ring,
        &["udevadm", "trigger", "--type=subsystems", "--action=add"],
        Duration::from_secs(30),
    );
    run(
        ring,
        &["udevadm", "trigger", "--type=devices", "--action=add"],
        Duration::from_secs(30),
    );
    run(
        ring,
        &["udevadm", "settle", "--timeout=60"],
        Duration::from_secs(70),
    );
    // One modprobe for all (each program started costs a lot under emulation).
    run(
        ring,
        &[
            "modprobe",
            "-q",
            "-a",
            "evdev",
            "button",
            "ext4",
            "vfat",
            "nls_cp437",
            "nls_iso8859_1",
        ],
        Duration::from_secs(20),
    );

    mount_cfg(ring);
    let _ = std::fs::create_dir_all(RAM_SHARE);
    let _ = rustix::fs::chmod(RAM_SHARE, rustix::fs::Mode::from_raw_mode(0o1777));

    let settings = load_settings(ring);
    match settings.checked_hostname() {
        Some(Ok(name)) if rustix::system::sethostname(name.as_bytes()).is_ok() => {
            ring.push("init", &format!("host name {name}"));
        }
        Some(Ok(name)) => ring.push("init", &format!("cannot set host name {name}")),
        Some(Err(why)) => ring.push("init", &why),
        None => {}
    }
    match settings.checked_timezone() {
        Some(Ok(zone)) => {
            let file = Path::new("/usr/share/zoneinfo").join(zone);
            if file.is_file() {
                let _ = std::fs::remove_file("/etc/localtime");
                match std::os::unix::fs::symlink(&file, "/etc/localtime") {
                    Ok(()) => ring.push("init", &format!("time zone {zone}")),
                    Err(e) => ring.push("init", &format!("cannot set time zone {zone}: {e}")),
                }
            } else {
                ring.push(
                    "init",
                    &format!("time zone {zone:?} is unknown: keeping UTC"),
                );
            }
        }
        Some(Err(why)) => ring.push("init", &why),
        None => {}
    }

    // Network: loopback, then each wired NIC, static when the settings give an address,
    // DHCP otherwise.
    run(
        ring,
        &["ip", "link", "set", "lo", "up"],
        Duration::from_secs(5),
    );
    for nic in wired_nics() {
        let (plan, problems) = settings.network(&nic).map(|n| n.plan()).unwrap_or_default();
        for problem in problems {
            let file = crate::settings::FILE;
            ring.push("init", &format!("{nic}: {problem} (check {file})"));
        }
        if let Some(mtu) = plan.mtu {
            let mtu = mtu.to_string();
            run(
                ring,
                &["ip", "link", "set", "dev", &nic, "mtu", &mtu],
                Duration::from_secs(5),
            );
        }
        if let crate::settings::Addressing::Static { .. } = plan.addressing {
            static_address(ring, &nic, &plan.addressing);
            continue;
        }
        sup.add(ServiceSpec {
            name: format!("dhcp-{nic}"),
            argv: [
                "udhcpc",
                "-f",
                "-i",
                &nic,
                "-s",
                "/usr/share/rushes/udhcpc.script",
                "-t",
                "5",
                "-T",
                "2",
                "-A",
                "5",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            after: vec![],
            ready: Readiness::Started,
            tty: None,
            confinement: Confinement::Root {
                keep: CapabilitySet::empty(),
            },
        });
    }
    // A maintenance shell on the second serial port, only when RUSHES-CFG carries the
    // `debug-shell` flag (service engineers and the end-to-end tests set it).
    if Path::new(CFG).join("debug-shell").exists() && Path::new("/dev/ttyS1").exists() {
        ring.push("init", "debug-shell flag found: root shell on ttyS1");
        sup.add(ServiceSpec {
            name: "debug-shell".into(),
            // Commands come through a pipe so that ash does not turn interactive; the
            // line itself is the shell's terminal, owned by it alone.
            argv: ["/bin/sh", "-c", "cat | /bin/sh"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            after: vec![],
            ready: Readiness::Started,
            tty: Some(("/dev/ttyS1", "vt100")),
            confinement: Confinement::Unconfined,
        });
    }
    sup.add(ServiceSpec {
        name: "rushesd".into(),
        argv: [
            "/usr/sbin/rushesd",
            "appliance",
            &format!("scratch={RAM_SHARE}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        after: vec!["udevd".into()],
        ready: Readiness::TcpPort(2049),
        tty: None,
        confinement: Confinement::Root {
            keep: CapabilitySet::empty(),
        },
    });
    // SMB: Samba's smbd, on the smb.conf rushesd writes from the shares before it
    // answers on 2049 (and tells smbd to reload when the shares change).
    if Path::new("/usr/sbin/smbd").exists() {
        sup.add(ServiceSpec {
            name: "smbd".into(),
            argv: [
                "/usr/sbin/smbd",
                "--foreground",
                "--no-process-group",
                // No --debug-stdout: smbd logs to rushesd's /dev/log (smb.conf's
                // `logging`), which rate-limits what clients can make it say.
                "--configfile=/run/rushes/smb.conf",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            after: vec!["rushesd".into()],
            ready: Readiness::TcpPort(445),
            tty: None,
            confinement: Confinement::Root {
                keep: CapabilitySet::empty(),
            },
        });
    }
    // Time: chronyd on the configuration rushesd writes from the settings' NTP servers
    // before it answers (it hands chronyd later changes itself, through chronyc).
    if Path::new("/usr/sbin/chronyd").exists() {
        sup.add(ServiceSpec {
            name: "chronyd".into(),
            argv: ["/usr/sbin/chronyd", "-d", "-f", "/run/rushes/chrony.conf"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            after: vec!["rushesd".into()],
            ready: Readiness::Started,
            tty: None,
            confinement: Confinement::Root {
                // It sets the clock; Debian builds it to run as _chrony, keeping only this.
                keep: CapabilitySet::SYS_TIME,
            },
        });
    }
    // The console on the screen and on the serial line, once rushesd answers.
    for (tty, term) in [("/dev/tty1", "linux"), ("/dev/ttyS0", "vt100")] {
        if !Path::new(tty).exists() {
            continue;
        }
        let serial = tty.contains("ttyS");
        let mut argv = vec!["/usr/sbin/rushes-console".to_string()];
        if serial {
            argv.push("--serial".into());
        }
        sup.add(ServiceSpec {
            name: format!("console-{}", tty.trim_start_matches("/dev/")),
            argv,
            after: vec!["rushesd".into()],
            ready: Readiness::Started,
            tty: Some((tty, term)),
            // The console needs only its terminal (opened here) and the management socket,
            // which rushesd opens to this account's group.
            confinement: Confinement::User("rushes-console"),
        });
    }
}

/// Configure `nic` with a checked static address instead of DHCP.
fn static_address(ring: &mut Ring, nic: &str, addressing: &crate::settings::Addressing) {
    let crate::settings::Addressing::Static { gateway, dns, .. } = addressing else {
        return;
    };
    let Some(address) = addressing.cidr() else {
        return;
    };
    run(
        ring,
        &["ip", "link", "set", "dev", nic, "up"],
        Duration::from_secs(5),
    );
    if !run(
        ring,
        &["ip", "addr", "replace", &address, "dev", nic],
        Duration::from_secs(5),
    ) {
        let file = crate::settings::FILE;
        ring.push(
            "init",
            &format!("{nic}: address {address} could not be set; check {file}"),
        );
        return;
    }
    if let Some(gw) = gateway {
        let gw = gw.to_string();
        let argv = ["ip", "route", "replace", "default", "via", &gw, "dev", nic];
        run(ring, &argv, Duration::from_secs(5));
    }
    if !dns.is_empty() {
        let text: String = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
        let _ = std::fs::write("/run/resolv.conf", text);
    }
    let lease = format!("{nic} {address} (static)\n");
    let _ = std::fs::write(format!("/run/rushes/lease-{nic}"), lease);
    ring.push("init", &format!("{nic}: static address {address}"));
}

fn read_settings(path: &Path) -> Result<Option<crate::settings::Settings>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => crate::settings::Settings::parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Load the settings. A damaged file falls back to the previous generation, then to the
/// defaults (DHCP everywhere), never to a box that cannot be reached.
fn load_settings(ring: &mut Ring) -> crate::settings::Settings {
    use crate::settings::{Settings, FILE, PREVIOUS};
    match read_settings(Path::new(FILE)) {
        Ok(Some(s)) => return s,
        Ok(None) => return Settings::default(),
        Err(e) => ring.push(
            "init",
            &format!("{FILE} is damaged ({e}); trying the previous generation"),
        ),
    }
    match read_settings(Path::new(PREVIOUS)) {
        Ok(Some(s)) => {
            ring.push("init", &format!("using {PREVIOUS}"));
            s
        }
        _ => {
            ring.push(
                "init",
                "no usable settings: DHCP on every NIC, default host name",
            );
            Settings::default()
        }
    }
}

fn wired_nics() -> Vec<String> {
    let mut nics: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("device").exists() && !e.path().join("wireless").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    nics.sort();
    nics
}

/// The addresses DHCP gave us (from the lease files our udhcpc hook writes).
pub fn addresses() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/run/rushes")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("lease-"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .map(|s| s.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    if out.is_empty() {
        out.push("no address yet".into());
    }
    out
}

fn find_device(names: &[&str], wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(p) = names.iter().find(|p| Path::new(p).exists()) {
            return Some(p.to_string());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Mount RUSHES-CFG on /cfg, making its file system if the partition is blank.
fn mount_cfg(ring: &mut Ring) {
    let device = find_device(
        &[
            "/dev/disk/by-label/RUSHES-CFG",
            "/dev/disk/by-partlabel/RUSHES-CFG",
        ],
        Duration::from_secs(15),
    );
    let Some(device) = device else {
        ring.push(
            "init",
            "RUSHES-CFG not found: settings will not survive a reboot (RAM only)",
        );
        mount(ring, "tmpfs", CFG, "tmpfs", "mode=0755");
        return;
    };
    if !mount(ring, &device, CFG, "ext4", "") {
        ring.push(
            "init",
            &format!("RUSHES-CFG on {device} has no usable file system: creating one"),
        );
        if run(
            ring,
            &["mkfs.ext4", "-q", "-F", "-L", "RUSHES-CFG", &device],
            Duration::from_secs(60),
        ) {
            mount(ring, &device, CFG, "ext4", "");
        } else {
            mount(ring, "tmpfs", CFG, "tmpfs", "mode=0755");
        }
    }
    let _ = std::fs::create_dir_all(format!("{CFG}/logs"));
    let _ = std::fs::create_dir_all(format!("{CFG}/state"));
    ring.push("init", &format!("RUSHES-CFG mounted from {device}"));
}

/// Save the log ring to RUSHES-CFG, keeping the last ten boots' logs.
fn save_logs(ring: &Ring) {
    let dir = Path::new(CFG).join("logs");
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    logs.sort();
    while logs.len() >= 10 {
        let _ = std::fs::remove_file(logs.remove(0));
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text: String = ring.lines().map(|l| format!("{l}\n")).collect();
    let path = dir.join(format!("boot-{stamp}.log"));
    if let Ok(mut f) = std::fs::File::create(&path) {
        let _ = f.write_all(text.as_bytes());
        let _ = f.sync_all();
    }
}

/// Stop everything, save the logs, sync, unmount and power off or reboot.
pub fn shutdown(sup: &mut Supervisor, ring: &mut Ring, action: Action, pid1: bool) {
    ring.push("init", &format!("shutting down ({action:?})"));
    sup.stop_all(ring);
    if !pid1 {
        return;
    }
    save_logs(ring);
    rustix::fs::sync();
    for target in [CFG, "/run/rushes/esp"] {
        if let Err(e) = rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()) {
            if e != rustix::io::Errno::INVAL {
                ring.push(
                    "init",
                    &format!("cannot unmount {target}: {e}; remounting read-only"),
                );
                let _ = rustix::mount::mount_remount(target, rustix::mount::MountFlags::RDONLY, "");
            }
        }
    }
    crate::root_image::release_usr();
    rustix::fs::sync();
    console(&format!(
        "rushes: {} now",
        if action == Action::Reboot {
            "rebooting"
        } else {
            "powering off"
        }
    ));
    let how = match action {
        Action::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
        Action::PowerOff => nix::sys::reboot::RebootMode::RB_POWER_OFF,
    };
    let Err(e) = nix::sys::reboot::reboot(how);
    ring.push("init", &format!("reboot(2) failed: {e}"));
    // Still running: services need /usr again.
    crate::root_image::mount_usr(ring);
}
