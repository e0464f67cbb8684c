//! The console (`rushes-console`) against a real rushesd in host mode, in a
//! pseudo-terminal of 80×25 read through a VT100 screen parser: what an admin at the
//! appliance's screen would see after each key.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rushes_tests::{workspace_bin, ServerProcess};

/// The console running in a pty, and the screen it has drawn so far.
struct Console {
    child: std::process::Child,
    master: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl Console {
    fn start(socket: &std::path::Path) -> Self {
        let size = nix::pty::Winsize {
            ws_row: 25,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        let stdio = |fd: &OwnedFd| Stdio::from(fd.as_fd().try_clone_to_owned().expect("dup"));
        let child = Command::new(workspace_bin("rushes-console"))
            .args(["--refresh", "1"])
            .env("RUSHES_API", socket)
            .env("TERM", "linux")
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave))
            .spawn()
            .expect("start rushes-console");
        drop(slave);
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(25, 80, 0)));
        let (mut reader, parser) = (master.try_clone().unwrap(), Arc::clone(&screen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buf[..n]);
            }
        });
        Self {
            child,
            master,
            screen,
        }
    }

    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Wait until every one of `needles` is on the screen at once.
    fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if needles.iter().all(|n| text.contains(n)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needles:?} not on the screen; it shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// With `RUSHES_UPDATE_CAPTURES=1`, keep the screen as `tui/docs/screens/NAME.txt`
    /// (80×25 text, what the README and issue notes show).
    fn capture(&self, name: &str) {
        if std::env::var_os("RUSHES_UPDATE_CAPTURES").is_none() {
            return;
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tui/docs/screens");
        std::fs::create_dir_all(&dir).unwrap();
        let text: Vec<String> = self
            .text()
            .lines()
            .map(|l| format!("{l:<80}").trim_end().to_string())
            .collect();
        std::fs::write(dir.join(format!("{name}.txt")), text.join("\n") + "\n").unwrap();
    }

    fn key(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_console_shows_each_screen_and_says_when_rushesd_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("demo");
    std::fs::create_dir(&share).unwrap();
    let sock = dir.path().join("api.sock");
    let mut server = ServerProcess::start(&[
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--api",
        sock.to_str().unwrap(),
        &format!("demo={}", share.display()),
    ]);
    while !sock.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut console = Console::start(&sock);

    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let dash = console.wait_for(&["Dashboard", "no pools yet", "everything is healthy", &host]);
    for key in ["D Dashboard", "K Disks", "P Pools", "S Shares", "A Alerts"] {
        assert!(dash.contains(key), "the menu lacks {key:?}:\n{dash}");
    }
    assert!(dash.lines().count() <= 25 && dash.lines().all(|l| l.chars().count() <= 80));
    console.capture("dashboard");

    console.key("k");
    console.wait_for(&["Disks", "DISK", "BUS", "SIZE", "SERIAL", "STATE"]);
    console.capture("disks");
    console.key("p");
    console.wait_for(&["Pools", "POOL", "LEVEL"]);
    console.key("s");
    console.wait_for(&["Shares", "SHARE", "CLIENTS"]);
    console.key("a");
    console.wait_for(&["No alerts: everything is healthy."]);
    console.key("\x1b");
    console.wait_for(&["Dashboard", "no pools yet"]);

    // rushesd gone: the console says so, in words, and keeps running.
    server.kill9();
    console.wait_for(&["does not answer", "cannot reach rushesd"]);
    console.capture("rushesd-gone");
    assert!(
        console.child.try_wait().unwrap().is_none(),
        "the console exited"
    );
}
