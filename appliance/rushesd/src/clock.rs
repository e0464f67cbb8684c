//! The appliance's clock, kept by chronyd: the configuration rushesd writes from the NTP
//! servers in its settings (`/run/rushes/chrony.conf` and a sources file that
//! `chronyc reload sources` picks up when the list changes), and what chronyd reports
//! (`chronyc -c tracking`, `chronyc -c sources`) for the API.
//!
//! As the appliance, init runs chronyd on that configuration: it slews the clock, steps it
//! only while starting when it is off by more than 128 ms, marks the kernel's clock as
//! synchronised and has the kernel keep the RTC (`rtcsync`). In host mode rushesd runs its
//! own chronyd with `-x`, which measures against the servers but never touches the clock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::state_file::replace;
use rushes_api as api;

/// Where the appliance's chronyd keeps its socket and drift file (created by chronyd,
/// owned by the `_chrony` user it drops to).
const APPLIANCE_RUN: &str = "/run/chrony";

/// The files of one chronyd.
#[derive(Debug, Clone)]
pub struct Chrony {
    /// The configuration file chronyd is started with.
    pub conf: PathBuf,
    /// The folder of sources files (`sourcedir`).
    sources: PathBuf,
    /// chronyd's command socket, which chronyc talks to.
    socket: PathBuf,
    /// Host mode: chronyd is ours to run, with `-x`.
    own: bool,
}

impl Chrony {
    /// As the appliance: the configuration in `/run/rushes`, for init's chronyd.
    pub fn appliance(run: &Path) -> Self {
        Self {
            conf: run.join("chrony.conf"),
            sources: run.join("chrony.d"),
            socket: Path::new(APPLIANCE_RUN).join("chronyd.sock"),
            own: false,
        }
    }

    /// In host mode: everything under `dir`, and a chronyd that never sets the clock.
    pub fn host(dir: &Path) -> Self {
        Self {
            conf: dir.join("chrony.conf"),
            sources: dir.join("chrony.d"),
            socket: dir.join("run/chronyd.sock"),
            own: true,
        }
    }

    /// chronyd's configuration: no NTP or command port on the network, the servers from
    /// the sources folder, a step only while starting, the RTC kept by the kernel.
    fn config(&self) -> String {
        let run = self.socket.parent().unwrap_or(Path::new(APPLIANCE_RUN));
        format!(
            "# Written by rushesd; the servers are in {sources}/rushes.sources, from rushes.toml.\n\
             port 0\n\
             cmdport 0\n\
             bindcmdaddress {socket}\n\
             pidfile {run}/chronyd.pid\n\
             driftfile {run}/drift\n\
             sourcedir {sources}\n\
             # Step while starting (the first three updates) when off by more than 128 ms;\n\
             # slew after that, so files' times never jump under an edit.\n\
             makestep 0.128 3\n\
             rtcsync\n",
            sources = self.sources.display(),
            socket = self.socket.display(),
            run = run.display(),
        )
    }

    /// Write the configuration and the servers, before chronyd starts.
    pub fn prepare(&self, servers: &[String]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.sources)?;
        if let Some(dir) = self.socket.parent().filter(|_| self.own) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(dir)?;
            // chronyd refuses a socket folder that others can enter.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
        }
        replace(&self.conf, self.config().as_bytes())?;
        replace(
            &self.sources.join("rushes.sources"),
            sources(servers).as_bytes(),
        )
    }

    /// Host mode's chronyd: measures only (`-x`), in the foreground, logging to a file.
    /// It dies with the thread that started it (call this from a thread that lives as
    /// long as rushesd), so a killed rushesd leaves no chronyd behind.
    pub fn spawn(&self, log: &Path) -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("chronyd");
        cmd.args(["-d", "-x", "-u", "root", "-f"])
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?);
        // SAFETY: between fork and exec the closure only makes one system call (prctl),
        // which allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(Into::into)
            });
        }
        cmd.spawn()
    }

    /// Whether chronyd is ours to run (host mode).
    pub fn own(&self) -> bool {
        self.own
    }

    /// Give chronyd a new list of servers.
    pub fn set_servers(&self, servers: &[String]) -> Result<(), String> {
        replace(
            &self.sources.join("rushes.sources"),
            sources(servers).as_bytes(),
        )
        .map_err(|e| format!("cannot write chronyd's sources: {e}"))?;
        self.chronyc(&["reload", "sources"]).map(|_| ())
    }

    fn chronyc(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("chronyc")
            .arg("-h")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run chronyc: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let why = match err.trim().lines().last().unwrap_or("") {
                "" => text.trim().to_string(),
                line => line.to_string(),
            };
            return Err(format!("chronyd does not answer ({why})"));
        }
        Ok(text)
    }

    /// What chronyd says now: the server it follows and how far the clock is from it,
    /// or why there is none.
    pub fn status(&self) -> Result<Option<api::ClockSync>, String> {
        let tracking = self.chronyc(&["-c", "tracking"])?;
        let sources = self.chronyc(&["-c", "sources"])?;
        Ok(parse_status(&tracking, &sources))
    }
}

/// One `server` line per NTP server (`host`, `host:port`, `[v6]:port`), polled quickly
/// at first (`iburst`).
fn sources(servers: &[String]) -> String {
    let mut out = String::new();
    for s in servers {
        // rushes.toml may have been edited by hand: nothing else reaches chronyd.
        if !valid_server(s) {
            tracing::warn!(server = %s, "NTP server left out: not a host name or address");
            continue;
        }
        let (host, port) = split_server(s);
        out.push_str(&format!("server {host}"));
        if let Some(p) = port {
            out.push_str(&format!(" port {p}"));
        }
        out.push_str(" iburst\n");
    }
    out
}

/// `host:port` into its parts; a bare IPv6 address has no port.
fn split_server(s: &str) -> (String, Option<u16>) {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return (addr.ip().to_string(), Some(addr.port()));
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return (s.to_string(), None);
    }
    match s.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host.to_string(), port.parse().ok()),
        _ => (s.to_string(), None),
    }
}

/// A server the admin may name: an address, or a host name of letters, digits, '-' and
/// '.', each with an optional port. Nothing else reaches chronyd's configuration.
pub fn valid_server(s: &str) -> bool {
    let (host, _) = split_server(s);
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        })
}

/// chronyc's CSV: tracking is one line (reference id, name, stratum, reference time,
/// system time offset, … root delay at 10 … leap status at 13); sources one line per
/// source, `*` in the second field for the one selected.
fn parse_status(tracking: &str, sources: &str) -> Option<api::ClockSync> {
    let selected = sources
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[1] == "*")?;
    let t: Vec<&str> = tracking.trim().split(',').collect();
    if t.len() < 14 || t[13] == "Not synchronised" {
        return None;
    }
    let num = |i: usize| t[i].parse::<f64>().ok();
    Some(api::ClockSync {
        server: selected[2].to_string(),
        // chronyc gives NTP time minus ours: negative when our clock is fast.
        offset_ms: num(4)? * 1000.0,
        delay_ms: num(10)? * 1000.0,
        at: num(3)? as u64,
        stratum: t[2].parse().ok()?,
        leap: t[13].to_string(),
    })
}

/// The kernel's view: whether its clock is marked synchronised (adjtimex says not
/// TIME_ERROR), which chronyd sets when it controls the clock and has a source.
pub fn kernel_synchronised() -> bool {
    // SAFETY: a zeroed timex with modes 0 only reads the kernel's state into the struct,
    // which lives across the call.
    let state = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        libc::adjtimex(&mut tx)
    };
    state >= 0 && state != libc::TIME_ERROR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chronycs_report_reads_as_the_server_followed_and_the_offset() {
        let tracking = "7F000001,127.0.0.1,9,1796176282.586256897,-0.000002631,0.000000255,\
                        0.000000255,-0.074,0.000,6.442,0.000009131,0.000043213,2.0,Normal\n";
        let sources = "^,-,10.0.0.9,3,6,377,20,0.001,0.001,0.002\n\
                       ^,*,127.0.0.1,8,4,17,6,0.000000043,0.000000298,0.000004629\n";
        let s = parse_status(tracking, sources).unwrap();
        assert_eq!(
            (s.server.as_str(), s.stratum, s.at),
            ("127.0.0.1", 9, 1796176282)
        );
        assert!((s.offset_ms + 0.002631).abs() < 1e-9, "{s:?}");
        assert!((s.delay_ms - 0.009131).abs() < 1e-9, "{s:?}");
        // Nothing selected yet (every source still `?`), or chronyd unsynchronised.
        assert!(parse_status(tracking, "^,?,127.0.0.2,0,6,0,4294967295,0,0,0\n").is_none());
        let unsynced = tracking.replace("Normal", "Not synchronised");
        assert!(parse_status(&unsynced, sources).is_none());
    }

    #[test]
    fn servers_become_chrony_server_lines() {
        for bad in ["ntp1:x", "a b", "x\nallow all", "", "-x.org", "host:99999"] {
            assert!(!valid_server(bad), "{bad:?}");
        }
        let list = [
            "pool.ntp.org",
            "10.0.2.2:11123",
            "[::1]:123",
            "x\nallow all",
            "fe80::1",
        ];
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            sources(&list),
            "server pool.ntp.org iburst\nserver 10.0.2.2 port 11123 iburst\n\
             server ::1 port 123 iburst\nserver fe80::1 iburst\n"
        );
    }
}
