//! The service table and its supervisor: start in dependency order, capture output into
//! the log ring, restart with exponential backoff, check readiness, stop in reverse.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::log::Ring;

/// How a service shows it is ready.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Running is ready.
    Started,
    /// Accepts TCP connections on this local port.
    TcpPort(u16),
}

/// One line of the service table.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub argv: Vec<String>,
    /// Services that must be ready before this one starts.
    pub after: Vec<String>,
    pub ready: Readiness,
    /// Run on this terminal (`/dev/tty1`, `/dev/ttyS0`) as its controlling tty, with
    /// `TERM` set, instead of with its output captured into the log ring.
    pub tty: Option<(&'static str, &'static str)>,
    /// The account it runs as and the privileges it can never have.
    pub confinement: crate::confine::Confinement,
}

struct Service {
    spec: ServiceSpec,
    pid: Option<Pid>,
    output: Option<std::fs::File>,
    partial: Vec<u8>,
    failures: u32,
    started_at: Instant,
    next_start: Option<Instant>,
    ready: bool,
}

pub struct Supervisor {
    pub started: bool,
    services: Vec<Service>,
    pid1: bool,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A service that stayed up this long is considered healthy again: its backoff resets.
const STABLE: Duration = Duration::from_secs(60);

impl Supervisor {
    pub fn new(pid1: bool) -> Self {
        Self {
            started: false,
            services: Vec::new(),
            pid1,
        }
    }

    pub fn add(&mut self, spec: ServiceSpec) {
        self.services.push(Service {
            spec,
            pid: None,
            output: None,
            partial: Vec::new(),
            failures: 0,
            started_at: Instant::now(),
            next_start: Some(Instant::now()),
            ready: false,
        });
    }

    fn is_ready(&self, name: &str) -> bool {
        self.services.iter().any(|s| s.spec.name == name && s.ready)
    }

    fn start(&mut self, i: usize, ring: &mut Ring) {
        let spec = self.services[i].spec.clone();
        let plan = match spec.confinement.plan() {
            Ok(plan) => plan,
            Err(e) => return self.retry_later(i, ring, &e),
        };
        let pipe = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                ring.push("init", &format!("{}: cannot create a pipe: {e}", spec.name));
                self.services[i].next_start = Some(Instant::now() + Duration::from_secs(5));
                return;
            }
        };
        let (read_end, write_end): (OwnedFd, OwnedFd) = pipe;
        let stderr = match write_end.try_clone() {
            Ok(fd) => fd,
            Err(e) => {
                ring.push(
                    "init",
                    &format!("{}: cannot duplicate a pipe: {e}", spec.name),
                );
                return;
            }
        };
        let mut cmd = Command::new(&spec.argv[0]);
        cmd.args(&spec.argv[1..]).env("PATH", "/usr/sbin:/usr/bin");
        match spec.tty {
            Some((tty, term)) => {
                let open = || std::fs::OpenOptions::new().read(true).write(true).open(tty);
                let (Ok(a), Ok(b), Ok(c)) = (open(), open(), open()) else {
                    ring.push("init", &format!("{}: cannot open {tty}", spec.name));
                    return;
                };
                cmd.stdin(a).stdout(b).stderr(c).env("TERM", term);
                crate::child::own_terminal(&mut cmd);
                // Nothing to capture: the pipe's write end is dropped with `cmd`.
                drop((write_end, stderr));
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::from(write_end))
                    .stderr(Stdio::from(stderr))
                    .process_group(0);
                crate::child::clean_signals(&mut cmd);
            }
        }
        // After the signal mask and the terminal, which need root: the confinement.
        // SAFETY: runs in the forked child before exec; `Plan::apply` makes only raw
        // system calls (prctl, setgroups, setgid, setuid) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || plan.apply());
        }
        let svc = &mut self.services[i];
        match cmd.spawn() {
            Ok(child) => {
                let _ = rustix::fs::fcntl_setfl(&read_end, rustix::fs::OFlags::NONBLOCK);
                svc.pid = Some(Pid::from_raw(child.id() as i32));
                svc.output = Some(std::fs::File::from(read_end));
                svc.started_at = Instant::now();
                svc.next_start = None;
                svc.ready = matches!(spec.ready, Readiness::Started);
                ring.push(
                    "init",
                    &format!("started {} (pid {})", spec.name, child.id()),
                );
                if spec.tty.is_some_and(|(tty, _)| tty == "/dev/ttyS0") {
                    ring.quiet_services();
                }
            }
            Err(e) => self.retry_later(i, ring, &e.to_string()),
        }
    }

    /// Service `i` could not be started: say why, and try again after its backoff.
    fn retry_later(&mut self, i: usize, ring: &mut Ring, why: &str) {
        let svc = &mut self.services[i];
        svc.failures += 1;
        let delay = backoff(svc.failures);
        svc.next_start = Some(Instant::now() + delay);
        ring.push(
            "init",
            &format!(
                "cannot start {}: {why}; retrying in {delay:?}",
                svc.spec.name
            ),
        );
    }

    /// Start what is due, and check readiness.
    pub fn tick(&mut self, ring: &mut Ring) {
        let now = Instant::now();
        for i in 0..self.services.len() {
            let due = self.services[i].pid.is_none()
                && self.services[i].next_start.is_some_and(|t| t <= now);
            let deps_ready = self.services[i]
                .spec
                .after
                .clone()
                .iter()
                .all(|d| self.is_ready(d));
            if due && deps_ready {
                self.start(i, ring);
            }
            let svc = &mut self.services[i];
            if svc.pid.is_some() && !svc.ready {
                if let Readiness::TcpPort(port) = svc.spec.ready {
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                    if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                        .is_ok()
                    {
                        svc.ready = true;
                        ring.push("init", &format!("{} is ready", svc.spec.name));
                    }
                }
            }
        }
    }

    /// All services are running and ready.
    pub fn healthy(&self) -> bool {
        self.services.iter().all(|s| s.pid.is_some() && s.ready)
    }

    pub fn output_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.services
            .iter()
            .filter_map(|s| s.output.as_ref().map(|f| f.as_fd()))
            .collect()
    }

    /// Move complete lines from a service's pipe into the ring.
    pub fn drain_output(&mut self, fd: RawFd, ring: &mut Ring) {
        let Some(svc) = self
            .services
            .iter_mut()
            .find(|s| s.output.as_ref().is_some_and(|f| f.as_raw_fd() == fd))
        else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match svc.output.as_mut().map(|f| f.read(&mut buf)) {
                Some(Ok(0)) => {
                    svc.output = None;
                    break;
                }
                Some(Ok(n)) => svc.partial.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        while let Some(pos) = svc.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = svc.partial.drain(..=pos).collect();
            ring.push(&svc.spec.name, String::from_utf8_lossy(&line).trim_end());
        }
        if svc.partial.len() > 16 * 1024 {
            let line: Vec<u8> = std::mem::take(&mut svc.partial);
            ring.push(&svc.spec.name, &String::from_utf8_lossy(&line));
        }
    }

    /// Collect every exited child: services get restarted, orphans are just reaped.
    pub fn reap(&mut self, ring: &mut Ring) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let Some(pid) = status.pid() else { return };
            let Some(svc) = self.services.iter_mut().find(|s| s.pid == Some(pid)) else {
                continue; // an orphan re-parented to us
            };
            let ran = svc.started_at.elapsed();
            if ran > STABLE {
                svc.failures = 0;
            }
            svc.failures += 1;
            let delay = backoff(svc.failures);
            svc.pid = None;
            svc.ready = false;
            svc.next_start = Some(Instant::now() + delay);
            let why = match status {
                WaitStatus::Exited(_, code) => format!("exited with status {code}"),
                WaitStatus::Signaled(_, sig, _) => format!("was killed by {sig}"),
                other => format!("stopped ({other:?})"),
            };
            ring.push(
                "init",
                &format!(
                    "{} {why} after {ran:.0?}; restarting in {delay:?}",
                    svc.spec.name
                ),
            );
        }
    }

    /// Stop every service, last started first: SIGTERM, then SIGKILL after a grace period.
    pub fn stop_all(&mut self, ring: &mut Ring) {
        for i in (0..self.services.len()).rev() {
            let Some(pid) = self.services[i].pid else {
                continue;
            };
            let name = self.services[i].spec.name.clone();
            ring.push("init", &format!("stopping {name}"));
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Ok(WaitStatus::StillAlive) => {
                        ring.push("init", &format!("{name} did not stop in 10 s: killing it"));
                        let _ = kill(pid, Signal::SIGKILL);
                        let _ = waitpid(pid, None);
                        break;
                    }
                    _ => break,
                }
            }
            let fd = self.services[i].output.as_ref().map(|f| f.as_raw_fd());
            if let Some(fd) = fd {
                self.drain_output(fd, ring);
            }
            self.services[i].pid = None;
            self.services[i].next_start = None;
        }
        if self.pid1 {
            // Whatever else is left (orphans of services).
            let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
            std::thread::sleep(Duration::from_millis(500));
            let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
            while waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
                .is_ok_and(|s| s != WaitStatus::StillAlive)
            {}
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_30s() {
        let d: Vec<_> = (1..=8).map(backoff).collect();
        assert_eq!(d[0], Duration::from_secs(1));
        assert_eq!(d[3], Duration::from_secs(8));
        assert_eq!(d[7], Duration::from_secs(30));
    }
}
