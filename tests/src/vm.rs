//! Booting `out/rushes.img` in QEMU exactly as `make run` does (image/qemu-run.sh), with
//! the serial console captured to a file, a QMP socket for the "buttons", and the second
//! serial port as a socket for the maintenance shell.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The image the tests boot (`RUSHES_IMAGE` overrides `out/rushes.img`).
pub fn image_path() -> PathBuf {
    let p = std::env::var_os("RUSHES_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("out/rushes.img"));
    assert!(
        p.exists(),
        "{} is missing: run `make image` (make test does this)",
        p.display()
    );
    p
}

/// A sparse copy of the image that a test may change and boot.
pub fn copy_image(dir: &Path) -> Result<PathBuf> {
    let to = dir.join("rushes.img");
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(image_path())
        .arg(&to)
        .status()?;
    anyhow::ensure!(status.success(), "cannot copy the image");
    Ok(to)
}

/// Image extension `name` as `make image` builds it beside the stick
/// (`out/extensions/NAME.img`, or beside `RUSHES_IMAGE`).
pub fn extension_path(name: &str) -> PathBuf {
    image_path()
        .parent()
        .map(|dir| dir.join("extensions"))
        .unwrap_or_else(|| repo().join("out/extensions"))
        .join(format!("{name}.img"))
}

/// The test overlay: the `tests` image extension (fio, smbclient, mount.cifs), which the
/// product image does not carry. Every guest gets it as a read-only virtio disk, and the
/// maintenance shell mounts it and puts its programs on its `PATH` ([`TOOLS_ENV`]).
pub fn test_tools_path() -> Result<PathBuf> {
    let p = extension_path("tests");
    anyhow::ensure!(
        p.exists(),
        "{} is missing: `make image` builds the test overlay beside the image",
        p.display()
    );
    Ok(p)
}

/// Run before every maintenance-shell command: the first time, mount the test overlay
/// (RUSHES-X-TESTS) read-only and add its programs and libraries to the shell's
/// environment, which later commands keep (the shell is one process). Its libraries are
/// only those the image lacks, so the box's own programs load what they always do. The
/// terminal echoes it with every command, and callers look for the first brace or
/// bracket of a JSON answer: it has none.
const TOOLS_ENV: &str = "test -n \"$RUSHES_TOOLS\" || if mkdir -p /run/rushes-tests && \
(grep -q ' /run/rushes-tests ' /proc/mounts || \
mount -o ro /dev/disk/by-label/RUSHES-X-TESTS /run/rushes-tests); then \
t=/run/rushes-tests; export RUSHES_TOOLS=$t PATH=$PATH:$t/usr/bin:$t/usr/sbin \
LD_LIBRARY_PATH=$(grep ^library_path $t/rushes-extension.toml | cut -d= -f2 | \
tr -d '\\133\\135\" ' | tr , '\\n' | while read d; do printf %s: $t/$d; done); \
fi >/dev/null 2>&1; ";

/// Byte range (offset, length) of the partition named `name` in a GPT image.
pub fn partition(image: &Path, name: &str) -> Result<(u64, u64)> {
    let disk = gpt::GptConfig::new().writable(false).open(image)?;
    for part in disk.partitions().values() {
        if part.name == name {
            return Ok((
                part.first_lba * 512,
                (part.last_lba - part.first_lba + 1) * 512,
            ));
        }
    }
    bail!("no partition {name} in {}", image.display())
}

/// Copy a partition out of the image into its own file.
pub fn extract(image: &Path, name: &str, to: &Path) -> Result<()> {
    let (offset, len) = partition(image, name)?;
    let mut src = std::fs::File::open(image)?;
    std::io::Seek::seek(&mut src, std::io::SeekFrom::Start(offset))?;
    let mut dst = std::fs::File::create(to)?;
    std::io::copy(&mut src.take(len), &mut dst)?;
    Ok(())
}

/// The image's own kernel and initramfs (slot A's, on its ESP), copied into `dir` under
/// their payload names: what an update bundle of the same build carries.
pub fn slot_payload(image: &Path, dir: &Path) -> Result<()> {
    let esp = dir.join("esp.img");
    extract(image, "RUSHES-BOOT", &esp)?;
    {
        let file = std::fs::File::open(&esp)?;
        let fs = fatfs::FileSystem::new(&file, fatfs::FsOptions::new())?;
        for name in rushes_update::PAYLOAD {
            let mut from = fs.root_dir().open_file(&format!("rushes/a/{name}"))?;
            let mut to = std::fs::File::create(dir.join(name))?;
            std::io::copy(&mut from, &mut to)?;
        }
    }
    std::fs::remove_file(&esp)?;
    Ok(())
}

/// The key `make image` made the image trust (`RUSHES_SIGNING_KEY`, as the Makefile sets).
pub fn signing_key() -> Result<rushes_update::SecretKey> {
    let path = std::env::var_os("RUSHES_SIGNING_KEY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".config/rushes/update-signing.key")
        });
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the image's signing key {}: `make image` makes it",
            path.display()
        )
    })?;
    rushes_update::SecretKey::parse(&text).with_context(|| {
        format!(
            "{} is no signing key from rushes-bundle keygen",
            path.display()
        )
    })
}

/// Write a partition file back into the image.
pub fn put_back(image: &Path, name: &str, from: &Path) -> Result<()> {
    let (offset, len) = partition(image, name)?;
    let data = std::fs::read(from)?;
    anyhow::ensure!(data.len() as u64 == len, "partition size changed");
    let mut dst = std::fs::OpenOptions::new().write(true).open(image)?;
    std::io::Seek::seek(&mut dst, std::io::SeekFrom::Start(offset))?;
    dst.write_all(&data)?;
    dst.sync_all()?;
    Ok(())
}

/// Run debugfs (e2fsprogs) on RUSHES-CFG of `image`: `write` opens it read-write.
pub fn debugfs(image: &Path, request: &str, write: bool) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("cfg.img");
    extract(image, "RUSHES-CFG", &cfg)?;
    let mut cmd = Command::new("debugfs");
    if write {
        cmd.arg("-w");
    }
    let out = cmd
        .arg("-R")
        .arg(request)
        .arg(&cfg)
        .output()
        .context("debugfs (e2fsprogs)")?;
    if write {
        put_back(image, "RUSHES-CFG", &cfg)?;
    }
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Plant the `debug-shell` flag on RUSHES-CFG: the guest then runs a root shell on
/// ttyS1, which [`Vm::shell`] and [`Vm::run`] use to act inside it.
pub fn enable_debug_shell(image: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let flag = dir.path().join("flag");
    std::fs::write(&flag, b"")?;
    debugfs(
        image,
        &format!("write {} debug-shell", flag.display()),
        true,
    )?;
    Ok(())
}

/// `e2fsck -fn` on RUSHES-CFG: Ok when the file system is clean.
pub fn fsck_cfg(image: &Path) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("cfg.img");
    extract(image, "RUSHES-CFG", &cfg)?;
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&cfg)
        .output()
        .context("e2fsck (e2fsprogs)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "RUSHES-CFG is not clean:\n{text}");
    Ok(text)
}

/// Where a guest test's time goes: each step's duration and the total so far, on stderr
/// (nextest shows it for a failed test, and for every guest test in CI's log).
pub struct Steps {
    test: &'static str,
    began: Instant,
    last: Instant,
}

impl Steps {
    pub fn new(test: &'static str) -> Self {
        let now = Instant::now();
        Steps {
            test,
            began: now,
            last: now,
        }
    }

    /// Mark the end of a step.
    pub fn done(&mut self, step: &str) {
        let now = Instant::now();
        eprintln!(
            "{}: {step}: {:.1} s (at {:.0} s)",
            self.test,
            (now - self.last).as_secs_f64(),
            (now - self.began).as_secs_f64()
        );
        self.last = now;
    }
}

/// The CPUs each test guest gets: 1 unless `RUSHES_TEST_VM_CPUS` says otherwise. CI's
/// two cores run two guests at once under TCG; with two virtual CPUs each they are
/// oversubscribed, and a guest kernel whose other CPU is not running waits on it (for
/// a lock, or an IPI): two guests booted side by side were ready in 45 s with two CPUs
/// each, 35 s with one (32 s and 37 s when each ran alone).
fn vm_cpus() -> String {
    std::env::var("RUSHES_TEST_VM_CPUS")
        .ok()
        .filter(|n| n.parse::<u8>().is_ok_and(|n| n > 0))
        .unwrap_or_else(|| "1".into())
}

/// A running guest.
pub struct Vm {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    pub started: Instant,
    /// The serial console (ttyS0): keys go in here.
    serial: UnixStream,
    screen: std::sync::Arc<std::sync::Mutex<vt100::Parser>>,
}

impl Vm {
    /// Boot `image` with its VM state (EFI variables, data disks) under `dir`.
    pub fn boot(image: &Path, dir: &Path) -> Result<Self> {
        Self::boot_with(image, dir, &[])
    }

    /// Boot with extra image/qemu-run.sh settings (`RUSHES_NVME_SIZE` …).
    pub fn boot_with(image: &Path, dir: &Path, env: &[(&str, &str)]) -> Result<Self> {
        Self::boot_with_devices(image, dir, env, &[])
    }

    /// Boot with extra settings and extra QEMU arguments (`-device pci-testdev` …).
    pub fn boot_with_devices(
        image: &Path,
        dir: &Path,
        env: &[(&str, &str)],
        qemu_args: &[&str],
    ) -> Result<Self> {
        ensure_room(dir)?;
        let port = crate::free_tcp_port();
        let tools = test_tools_path()?;
        let child = Command::new(repo().join("image/qemu-run.sh"))
            .env("RUSHES_IMAGE", image)
            .env("RUSHES_VM_DIR", dir.join("vm"))
            .env("RUSHES_NFS_PORT", port.to_string())
            // Tests run side by side: none takes the host's port 111.
            .env("RUSHES_PORTMAP_PORT", "")
            .env("RUSHES_VM_MODE", "test")
            .env("RUSHES_VM_CPUS", vm_cpus())
            .envs(env.iter().copied())
            .arg("-serial")
            .arg(format!(
                "unix:{},server=on,wait=on",
                dir.join("console.sock").display()
            ))
            .arg("-serial")
            .arg(format!(
                "unix:{},server,nowait",
                dir.join("shell.sock").display()
            ))
            .arg("-qmp")
            .arg(format!(
                "unix:{},server,nowait",
                dir.join("qmp.sock").display()
            ))
            .arg("-drive")
            .arg(format!(
                "file={},if=none,id=testtools,format=raw,readonly=on",
                tools.display()
            ))
            .arg("-device")
            .arg("virtio-blk-pci,drive=testtools,serial=RUSHESTESTS")
            .args(qemu_args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("qemu.log"))?)
            .stderr(std::fs::File::create(dir.join("qemu.err"))?)
            .spawn()
            .context("cannot start image/qemu-run.sh")?;
        // QEMU waits for this connection before it starts the guest, so nothing the
        // serial console prints is lost. Everything is kept in console.log and fed to a
        // VT100 screen for the console's screens.
        let sock = dir.join("console.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(e).context("QEMU did not open the serial console socket")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let screen = std::sync::Arc::new(std::sync::Mutex::new(vt100::Parser::new(25, 80, 0)));
        let (mut reader, parser) = (stream.try_clone()?, std::sync::Arc::clone(&screen));
        let mut log = std::fs::File::create(dir.join("console.log"))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = log.write_all(&buf[..n]);
                if let Ok(mut p) = parser.lock() {
                    p.process(&buf[..n]);
                }
            }
        });
        Ok(Self {
            child: Some(child),
            dir: dir.to_path_buf(),
            port,
            started: Instant::now(),
            serial: stream,
            screen,
        })
    }

    /// What the serial console's screen shows now (80×25, as a VT100 would).
    pub fn screen(&self) -> String {
        self.screen
            .lock()
            .map(|p| p.screen().contents())
            .unwrap_or_default()
    }

    /// Type on the serial console.
    pub fn type_keys(&mut self, keys: &str) -> Result<()> {
        self.serial.write_all(keys.as_bytes())?;
        Ok(())
    }

    /// Wait until every needle is on the serial console's screen at once.
    pub fn wait_screen(&self, needles: &[&str], timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.screen();
            if needles.iter().all(|n| text.contains(n)) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                bail!(
                    "{needles:?} not on the serial console within {timeout:?}; it shows:\n{text}"
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("console.log")).unwrap_or_default())
            .into_owned()
    }

    /// Wait until `needle` appears in the console after byte `from`; returns the offset
    /// just past it.
    ///
    /// Waiting for a boot (`rushes: ready`), a guest whose kernel reports a timer that
    /// stopped firing is reset once, as the appliance's watchdog would reset a server:
    /// under TCG, with two guests' vCPUs on two host cores, a vCPU's timer now and then
    /// stops early in the kernel's start, and that boot never ends (seen in CI, stop 43).
    pub fn wait_for(&mut self, needle: &str, from: usize, timeout: Duration) -> Result<usize> {
        const DEAD_TIMER: &str = "kthread timer wakeup didn't happen";
        let mut deadline = Instant::now() + timeout;
        let mut was_reset = false;
        loop {
            let text = self.console();
            if let Some(pos) = text.get(from..).and_then(|t| t.find(needle)) {
                return Ok(from + pos + needle.len());
            }
            if needle.starts_with("rushes: ready")
                && !was_reset
                && text.get(from..).is_some_and(|t| t.contains(DEAD_TIMER))
            {
                eprintln!(
                    "the guest's kernel says a vCPU's timer stopped ({DEAD_TIMER:?}) before \
                     {needle:?}: resetting it once (QMP system_reset)"
                );
                self.qmp(r#"{"execute":"system_reset"}"#)?;
                was_reset = true;
                deadline = Instant::now() + timeout;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "QEMU exited ({status}) before {needle:?}; console:\n{}",
                    tail(&text)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "no {needle:?} on the console within {timeout:?}; console:\n{}",
                    tail(&text)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Send one QMP command (JSON) and return its answer line.
    pub fn qmp(&self, command: &str) -> Result<String> {
        let mut s = UnixStream::connect(self.dir.join("qmp.sock"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = std::io::BufReader::new(s.try_clone()?);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line)?; // greeting
        s.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line)?;
        s.write_all(command.as_bytes())?;
        s.write_all(b"\n")?;
        loop {
            line.clear();
            std::io::BufRead::read_line(&mut reader, &mut line)?;
            if line.contains("\"return\"") || line.contains("\"error\"") {
                return Ok(line);
            }
        }
    }

    /// Run `command` in the maintenance shell on ttyS1 and return what it printed.
    pub fn shell(&self, command: &str, timeout: Duration) -> Result<String> {
        let mut s = UnixStream::connect(self.dir.join("shell.sock"))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let id = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
        let marker = format!("__done_{id}__");
        // The quotes keep the marker out of the shell's echo of the command line, which
        // the line editor may also break anywhere to wrap it: only the output has it.
        s.write_all(format!("{TOOLS_ENV}{command}; echo __done_\"{id}\"__\n").as_bytes())?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => bail!("shell closed"),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            let text = String::from_utf8_lossy(&out);
            if text.contains(&marker) {
                return Ok(text.into_owned());
            }
            if Instant::now() > deadline {
                bail!("shell command {command:?} did not finish: {text}");
            }
        }
    }

    /// Run `command` in the maintenance shell; returns what it printed (stdout and
    /// stderr, without the shell's echo) and its exit status.
    pub fn run(&self, command: &str, timeout: Duration) -> Result<(String, i32)> {
        // The markers are computed by the shell, so the echoed command line never
        // contains them.
        let text = self.shell(
            &format!("{{ {command} ; }} >/tmp/run.out 2>&1; r=$?; echo __out$((6*7))__; cat /tmp/run.out; echo __rc$((6*7))__=$r"),
            timeout,
        )?;
        let start = text
            .find("__out42__")
            .with_context(|| format!("no output marker for {command:?}: {text}"))?
            + "__out42__".len();
        let end = text[start..]
            .find("__rc42__=")
            .with_context(|| format!("no status marker for {command:?}: {text}"))?
            + start;
        let rc: String = text[end + "__rc42__=".len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let out = text[start..end].replace('\r', "").trim().to_string();
        Ok((out, rc.parse().unwrap_or(-1)))
    }

    /// Write `text` to `path` in the guest (through base64, so any byte survives the
    /// line-based shell), e.g. a script to run with `sh path`.
    pub fn put_file(&self, path: &str, text: &[u8]) -> Result<()> {
        let encoded = base64(text);
        let (out, rc) = self.run(&format!("rm -f {path}.b64"), Duration::from_secs(30))?;
        anyhow::ensure!(rc == 0, "cannot prepare {path}: {out}");
        for chunk in encoded.as_bytes().chunks(768) {
            let chunk = std::str::from_utf8(chunk).expect("base64 is ASCII");
            let (out, rc) = self.run(
                &format!("echo {chunk} >> {path}.b64"),
                Duration::from_secs(30),
            )?;
            anyhow::ensure!(rc == 0, "cannot write {path}: {out}");
        }
        let (out, rc) = self.run(
            &format!("base64 -d {path}.b64 > {path} && rm {path}.b64"),
            Duration::from_secs(30),
        )?;
        anyhow::ensure!(rc == 0, "cannot decode {path}: {out}");
        Ok(())
    }

    /// Add an empty NVMe disk of `size` with `serial` to the free PCIe slot `port`
    /// (`hotplug0` …), as if it were slid into a bay: QMP blockdev-add and device_add.
    pub fn hot_add_nvme(&self, id: &str, serial: &str, size: &str, port: &str) -> Result<()> {
        let file = self.dir.join(format!("{id}.qcow2"));
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&file)
            .arg(size)
            .status()?;
        anyhow::ensure!(status.success(), "qemu-img create failed");
        let answer = self.qmp(&format!(
            r#"{{"execute":"blockdev-add","arguments":{{"driver":"qcow2","node-name":"{id}drive","file":{{"driver":"file","filename":"{}"}}}}}}"#,
            file.display()
        ))?;
        anyhow::ensure!(answer.contains("\"return\""), "blockdev-add: {answer}");
        let answer = self.qmp(&format!(
            r#"{{"execute":"device_add","arguments":{{"driver":"nvme","id":"{id}","serial":"{serial}","drive":"{id}drive","bus":"{port}"}}}}"#
        ))?;
        anyhow::ensure!(answer.contains("\"return\""), "device_add: {answer}");
        Ok(())
    }

    /// Pull a device out of the running guest (QMP device_del).
    pub fn pull(&self, id: &str) -> Result<()> {
        let answer = self.qmp(&format!(
            r#"{{"execute":"device_del","arguments":{{"id":"{id}"}}}}"#
        ))?;
        anyhow::ensure!(answer.contains("\"return\""), "device_del: {answer}");
        Ok(())
    }

    /// Wait for QEMU to exit by itself (the guest powered off).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().context("not running")?;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "the guest did not power off within {timeout:?}; console:\n{}",
                    tail(&self.console())
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // A failed test shows what the box said last; its folder is removed after.
        if std::thread::panicking() {
            eprintln!(
                "the guest's console, last lines:\n{}",
                tail(&self.console())
            );
            let qemu = std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default();
            if !qemu.trim().is_empty() {
                eprintln!("QEMU said:\n{}", tail(&qemu));
            }
            if let Some(free) = free_bytes(&self.dir) {
                eprintln!(
                    "free space where the guest's disks are ({}): {:.1} GiB",
                    self.dir.display(),
                    free as f64 / GIB as f64
                );
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const GIB: u64 = 1 << 30;

/// What one guest may write on the host: its copy of the image, its NVMe and SATA disks
/// as they fill (RAID sync, XFS, test clips) and its logs.
const GUEST_ROOM: u64 = 4 * GIB;

/// Bytes free to an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuse to boot a guest on a host disk too full for it. A full disk shows up inside
/// the guest as I/O errors on its pools (NFS3ERR_IO, a console log that stops), far from
/// the cause; this says what is wrong before anything starts.
fn ensure_room(dir: &Path) -> Result<()> {
    if let Some(free) = free_bytes(dir) {
        anyhow::ensure!(
            free >= GUEST_ROOM,
            "only {:.1} GiB free on the file system of {}; a guest needs up to {} GiB for \
             its disks: free some space (cargo clean, old out/ folders) or set TMPDIR to a \
             roomier disk",
            free as f64 / GIB as f64,
            dir.display(),
            GUEST_ROOM / GIB
        );
    }
    Ok(())
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Standard base64 (RFC 4648) with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), coded);
        }
    }
}
