//! The test client guest (`out/client/`, from image/client.toml): a Linux NFS client
//! with its own lock manager, statd and rpcbind, booted straight from a kernel and an
//! initramfs, on a network namespace of the test's own through a tap device, so the
//! server can call it back (GRANTED, SM_NOTIFY) as it would a real edit suite.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A network namespace with a tap device for one client guest: the server side of the
/// link is `server_ip` in the namespace, the guest is `client_ip`. Removed on drop.
pub struct TestNet {
    pub name: String,
    pub server_ip: &'static str,
    pub client_ip: &'static str,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl TestNet {
    /// Link-local addresses: the link exists only between the namespace and the guest.
    pub fn new(tag: &str) -> Result<Self> {
        let name = format!("rushes-{tag}-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let net = Self {
            name,
            server_ip: "169.254.78.1",
            client_ip: "169.254.78.2",
        };
        let ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", net.name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        ns(&["link", "set", "lo", "up"])?;
        ns(&["tuntap", "add", "dev", "tap0", "mode", "tap"])?;
        ns(&["addr", "add", "169.254.78.1/30", "dev", "tap0"])?;
        ns(&["link", "set", "tap0", "up"])?;
        Ok(net)
    }

    /// `ip netns exec NAME`, to put before a command.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .map(String::from)
            .to_vec()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A running client guest, driven through a shell on its serial console.
pub struct ClientVm {
    child: Option<Child>,
    input: UnixStream,
    output: Arc<Mutex<Vec<u8>>>,
    pub dir: PathBuf,
}

/// A QEMU netdev `id`: one end of an Ethernet link carried in UDP datagrams between two
/// guests on loopback (each side names its own port and the other's).
pub fn link_netdev(id: &str, local_port: u16, peer_port: u16) -> String {
    format!("socket,id={id},udp=127.0.0.1:{peer_port},localaddr=127.0.0.1:{local_port}")
}

/// Two free UDP ports on loopback, for the two ends of a [`link_netdev`] link.
pub fn link_ports() -> std::io::Result<(u16, u16)> {
    let a = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let b = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// The client guest's kernel and initramfs (`RUSHES_CLIENT_DIR` overrides `out/client`).
pub fn client_files() -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("RUSHES_CLIENT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("out/client"));
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.zst"));
    assert!(
        kernel.exists() && initrd.exists(),
        "{} is missing the client guest: run `make image` (make test does this)",
        dir.display()
    );
    (kernel, initrd)
}

impl ClientVm {
    /// Boot the client guest on `net`'s tap, named `hostname`; returns once its shell
    /// answers.
    pub fn boot(net: &TestNet, hostname: &str, dir: &Path) -> Result<Self> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.name, "qemu-system-x86_64"])
            .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]);
        Self::start(cmd, &format!("{}/30", net.client_ip), hostname, dir)
    }

    /// Boot the client guest on a point-to-point Ethernet link to another QEMU guest: a
    /// UDP tunnel from `local_port` to `peer_port` on loopback (the other guest's NIC
    /// has them the other way round). `ip` is the client's address with its prefix.
    pub fn boot_linked(
        local_port: u16,
        peer_port: u16,
        ip: &str,
        hostname: &str,
        dir: &Path,
    ) -> Result<Self> {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-netdev", &link_netdev("n0", local_port, peer_port)]);
        Self::start(cmd, ip, hostname, dir)
    }

    /// Start `cmd` (QEMU, its NIC's netdev `n0` given) as the client guest.
    fn start(mut cmd: Command, ip: &str, hostname: &str, dir: &Path) -> Result<Self> {
        let (kernel, initrd) = client_files();
        let sock = dir.join("client-console.sock");
        let append =
            format!("console=ttyS0 loglevel=3 panic=-1 rushes.ip={ip} rushes.name={hostname}");
        cmd.args(["-machine", "q35", "-m", "768", "-smp", "1", "-no-reboot"])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &append])
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .args(["-display", "none", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("unix:{},server=on,wait=on", sock.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("client-qemu.log"))?)
            .stderr(std::fs::File::create(dir.join("client-qemu.err"))?);
        let child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(e).context("QEMU did not open the client's serial socket")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let output = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (stream.try_clone()?, Arc::clone(&output));
        let mut log = std::fs::File::create(dir.join("client-console.log"))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = log.write_all(&buf[..n]);
                if let Ok(mut out) = sink.lock() {
                    out.extend_from_slice(&buf[..n]);
                }
            }
        });
        let mut vm = Self {
            child: Some(child),
            input: stream,
            output,
            dir: dir.to_path_buf(),
        };
        vm.wait_for("rushes-client ready", Duration::from_secs(300))?;
        // The shell may take a moment after the banner.
        vm.run("true", Duration::from_secs(60))?;
        Ok(vm)
    }

    fn text(&self) -> String {
        self.output
            .lock()
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .unwrap_or_default()
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "the client guest exited ({status}) before {needle:?}:\n{}\n{}",
                    self.text(),
                    std::fs::read_to_string(self.dir.join("client-qemu.err")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "no {needle:?} from the client guest within {timeout:?}:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run `command` in the guest's shell: what it printed and its exit status.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<(String, i32)> {
        let id = format!(
            "{}",
            Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()) ^ rand_u32()
        );
        let from = self.output.lock().map(|o| o.len()).unwrap_or(0);
        // The markers are made by the shell, so the echo of the line never holds them.
        let line = format!(
            "{{ {command} ; }} >/tmp/run.out 2>&1; r=$?; echo __o{id}\"\"__; cat /tmp/run.out; echo __r{id}\"\"__=$r\n"
        );
        self.input.write_all(line.as_bytes())?;
        let (start_mark, end_mark) = (format!("__o{id}__"), format!("__r{id}__="));
        let deadline = Instant::now() + timeout;
        loop {
            let all = self
                .output
                .lock()
                .map(|o| o[from.min(o.len())..].to_vec())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&all).replace('\r', "");
            if let (Some(s), Some(e)) = (text.find(&start_mark), text.find(&end_mark)) {
                let rc: String = text[e + end_mark.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if !rc.is_empty() && s < e {
                    let out = text[s + start_mark.len()..e].trim().to_string();
                    return Ok((out, rc.parse().unwrap_or(-1)));
                }
            }
            if Instant::now() > deadline {
                bail!("{command:?} did not finish within {timeout:?} in the client guest:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`run`](Self::run), which must exit 0.
    pub fn sh(&mut self, command: &str) -> String {
        let (out, rc) = self
            .run(command, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(rc, 0, "{command} exited {rc} in the client guest:\n{out}");
        out
    }
}

fn rand_u32() -> u128 {
    let mut b = [0u8; 4];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u128::from(u32::from_ne_bytes(b))
}

impl Drop for ClientVm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
