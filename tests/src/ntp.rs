//! A real NTP server for tests: chronyd serving its own clock (stratum 8) on a loopback
//! port, with `-x` so it never adjusts this machine's clock.

/// chronyd serving its own clock on a loopback port, without touching this machine's.
pub struct NtpServer {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl NtpServer {
    /// Start one on a free port of 127.0.0.1 (guests reach it as 10.0.2.2).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_udp_port();
        let conf = dir.path().join("chrony.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbindaddress 127.0.0.1\ncmdport 0\nlocal stratum 8\nallow 127.0.0.1\npidfile {}\n",
                dir.path().join("chronyd.pid").display()
            ),
        )
        .unwrap();
        // -x: never adjust this machine's clock; -d: stay in the foreground.
        let child = std::process::Command::new("chronyd")
            .args(["-d", "-x", "-u", "root", "-f"])
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("chronyd.log")).unwrap())
            .spawn()
            .expect("chronyd (Debian package chrony; make deps installs it)");
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for NtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
