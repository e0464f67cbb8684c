//! Driving a booted image from a test: `rushesctl` in the guest (as text or JSON, with
//! the exit status checked), polling until the API shows a state, shell commands, and
//! test data.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::vm::Vm;
use crate::{Nfs, User};

/// How long one management command may take under TCG.
pub const SHORT: Duration = Duration::from_secs(120);

/// Bytes that differ with `seed`, for files written and read back.
pub fn payload(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

/// The SHA-256 of `data` in hex, as the guest's `sha256sum` prints it.
pub fn sha256(data: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("data");
    std::fs::write(&f, data).expect("write");
    let out = std::process::Command::new("sha256sum")
        .arg(&f)
        .output()
        .expect("sha256sum (coreutils)");
    assert!(out.status.success(), "sha256sum failed: {out:?}");
    let hex = String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "sha256sum printed no digest: {out:?}"
    );
    hex
}

/// What someone else's disk may hold, made by the real tool on the host.
#[derive(Debug, Clone, Copy)]
pub enum Foreign {
    /// A LUKS2 volume (cryptsetup luksFormat).
    Luks,
    /// A swap area (mkswap).
    Swap,
    /// A bcache backing device (make-bcache -B).
    Bcache,
}

impl Foreign {
    /// libblkid's name for it.
    pub fn blkid_name(self) -> &'static str {
        match self {
            Foreign::Luks => "crypto_LUKS",
            Foreign::Swap => "swap",
            Foreign::Bcache => "bcache",
        }
    }

    /// The first bytes of a device the tool prepared: its whole header.
    pub fn header(self) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = dir.path().join("dev");
        let file = std::fs::File::create(&dev).expect("scratch device");
        file.set_len(32 << 20).expect("scratch device size");
        let key = dir.path().join("key");
        std::fs::write(&key, "not-a-secret").expect("key file");
        let key = key.display().to_string();
        let (tool, args, keep): (&str, Vec<&str>, usize) = match self {
            Foreign::Luks => (
                "cryptsetup",
                vec![
                    "luksFormat",
                    "--batch-mode",
                    "--type",
                    "luks2",
                    "--pbkdf",
                    "pbkdf2",
                    "--pbkdf-force-iterations",
                    "1000",
                    "--key-file",
                    &key,
                ],
                16 << 10,
            ),
            Foreign::Swap => ("mkswap", vec![], 4 << 10),
            Foreign::Bcache => ("make-bcache", vec!["-B"], 8 << 10),
        };
        let out = std::process::Command::new(tool)
            .args(args)
            .arg(&dev)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool} (make deps installs it): {e}"));
        assert!(out.status.success(), "{tool} failed: {out:?}");
        let mut bytes = std::fs::read(&dev).expect("read the header");
        bytes.truncate(keep);
        assert!(bytes.iter().any(|&b| b != 0), "{tool} wrote nothing");
        bytes
    }
}

/// Run a shell command in the guest; panics unless it exits 0.
pub fn sh(vm: &Vm, command: &str) -> String {
    let (out, rc) = vm
        .run(command, Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert_eq!(rc, 0, "{command} exited {rc}:\n{out}");
    out
}

/// kill -9 the console on the serial line (init starts it again).
pub fn kill_serial_console(vm: &Vm) {
    sh(
        vm,
        "for p in $(pidof rushes-console); do \
           grep -q -- --serial /proc/$p/cmdline && kill -9 $p; done; true",
    );
}

/// Open the locked serial console with the admin `password`.
pub fn unlock_console(vm: &mut Vm, password: &str) {
    vm.type_keys("\r").unwrap();
    vm.type_keys(&format!("{password}\r")).unwrap();
    vm.wait_screen(&["Dashboard"], SHORT).unwrap();
}

/// `rushesctl ARGS` in the guest; panics unless it exits with `want`.
pub fn ctl(vm: &Vm, args: &str, want: i32, timeout: Duration) -> String {
    let (out, rc) = vm
        .run(&format!("rushesctl {args}"), timeout)
        .unwrap_or_else(|e| panic!("rushesctl {args}: {e}"));
    assert_eq!(rc, want, "rushesctl {args} exited {rc}:\n{out}");
    out
}

/// `rushesctl --json ARGS`, parsed.
pub fn ctl_json(vm: &Vm, args: &str) -> Value {
    let out = ctl(vm, &format!("--json {args}"), 0, SHORT);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("rushesctl --json {args}: {e}\n{out}"))
}

/// Poll until `check` holds for `rushesctl --json ARGS`. A rushesctl that fails (rushesd
/// is down until init starts it again) counts as not yet.
pub fn wait_json(
    vm: &Vm,
    args: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match vm.run(&format!("rushesctl --json {args}"), SHORT) {
            Ok((out, 0)) => match serde_json::from_str::<Value>(&out) {
                Ok(v) if check(&v) => return v,
                Ok(v) => format!("{v:#}"),
                Err(e) => format!("not JSON ({e}): {out}"),
            },
            Ok((out, code)) => format!("rushesctl exited {code}: {out}"),
            Err(e) => format!("cannot run rushesctl: {e}"),
        };
        assert!(
            Instant::now() < deadline,
            "{what} not seen within {timeout:?}: {last}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Write `data` to `name` in share `export` (`/projects`) over NFS from the host, as
/// user 1000.
pub async fn write_share_file(port: u16, export: &str, name: &str, data: &[u8]) {
    let user = User::new(1000, 1000);
    let mut c = Nfs::mount(port, export, &user)
        .await
        .unwrap_or_else(|e| panic!("mount {export}: {e:?}"));
    c.put_file(name, data)
        .await
        .unwrap_or_else(|e| panic!("write {name}: {e:?}"));
}

/// Read `name` back from share `export` over NFS.
pub async fn read_share_file(port: u16, export: &str, name: &str) -> Vec<u8> {
    let user = User::new(1000, 1000);
    let mut c = Nfs::mount(port, export, &user)
        .await
        .unwrap_or_else(|e| panic!("mount {export}: {e:?}"));
    let root = c.root.clone();
    let fh = c
        .lookup(&root, name)
        .await
        .unwrap_or_else(|e| panic!("lookup {name}: {e:?}"));
    c.read_all(&fh)
        .await
        .unwrap_or_else(|e| panic!("read {name}: {e:?}"))
}

/// [`write_share_file`] from a test that has no runtime of its own.
pub fn write_share_file_blocking(port: u16, export: &str, name: &str, data: &[u8]) {
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(write_share_file(port, export, name, data));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each header, alone on a device, is what libblkid names it: the guest test's
    /// disks are foreign for the right reason.
    #[test]
    fn foreign_headers_are_what_libblkid_says_they_are() {
        for kind in [Foreign::Luks, Foreign::Swap, Foreign::Bcache] {
            let dir = tempfile::tempdir().unwrap();
            let dev = dir.path().join("dev");
            let mut bytes = kind.header();
            bytes.resize(1 << 20, 0);
            std::fs::write(&dev, &bytes).unwrap();
            let out = std::process::Command::new("wipefs")
                .arg("--json")
                .arg(&dev)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("\"type\": \"{}\"", kind.blkid_name())),
                "{kind:?}: {text}"
            );
        }
    }
}
