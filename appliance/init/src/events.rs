//! What wakes init's main loop: signals (through a signalfd), the ACPI power button,
//! services' output, and the watchdog it pets meanwhile; and what ends the loop.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use rustix::event::{PollFd, PollFlags, Timespec};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal as Sig};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::log::Ring;

/// What ends the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PowerOff,
    Reboot,
}

/// Signals init handles, through a signalfd.
pub enum Signal {
    Child,
    Terminate,
    CtrlAltDel,
}

pub struct Signals {
    fd: Option<SignalFd>,
}

impl Signals {
    pub fn new(ring: &mut Ring) -> Self {
        let mut set = SigSet::empty();
        for s in [
            Sig::SIGCHLD,
            Sig::SIGTERM,
            Sig::SIGINT,
            Sig::SIGPWR,
            Sig::SIGHUP,
        ] {
            set.add(s);
        }
        if let Err(e) = set.thread_block() {
            ring.push("init", &format!("cannot block signals: {e}"));
        }
        let fd = match SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Some(fd),
            Err(e) => {
                ring.push("init", &format!("cannot create a signalfd: {e}"));
                None
            }
        };
        Self { fd }
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    pub fn read(&mut self, ring: &mut Ring) -> Option<Signal> {
        let info = self.fd.as_mut()?.read_signal().ok()??;
        match Sig::try_from(info.ssi_signo as i32) {
            Ok(Sig::SIGCHLD) => Some(Signal::Child),
            Ok(Sig::SIGINT) => {
                ring.push("init", "ctrl-alt-del: rebooting");
                Some(Signal::CtrlAltDel)
            }
            Ok(Sig::SIGTERM) | Ok(Sig::SIGPWR) => {
                ring.push("init", "asked to power off");
                Some(Signal::Terminate)
            }
            _ => None,
        }
    }
}

/// ACPI power buttons (QEMU's `system_powerdown`, a server's front button).
pub struct PowerButtons {
    devices: Vec<std::fs::File>,
}

impl PowerButtons {
    pub fn open(ring: &mut Ring) -> Self {
        let mut devices = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/sys/class/input") {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with("event") {
                    continue;
                }
                let label =
                    std::fs::read_to_string(e.path().join("device/name")).unwrap_or_default();
                if label.contains("Power Button") {
                    match std::fs::File::open(format!("/dev/input/{name}")) {
                        Ok(f) => {
                            let _ = rustix::fs::fcntl_setfl(&f, rustix::fs::OFlags::NONBLOCK);
                            devices.push(f);
                        }
                        Err(e) => {
                            ring.push("init", &format!("cannot open power button {name}: {e}"))
                        }
                    }
                }
            }
        }
        Self { devices }
    }

    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.devices.iter().map(|f| f.as_fd()).collect()
    }

    /// Whether a KEY_POWER press is among the pending input events.
    pub fn pressed(&mut self, _ring: &mut Ring) -> bool {
        const EVENT: usize = 24; // struct input_event on 64-bit: timeval, type, code, value
        const EV_KEY: u16 = 1;
        const KEY_POWER: u16 = 116;
        let mut pressed = false;
        for dev in &mut self.devices {
            let mut buf = [0u8; EVENT * 16];
            while let Ok(n) = dev.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for ev in buf[..n].chunks_exact(EVENT) {
                    let kind = u16::from_ne_bytes([ev[16], ev[17]]);
                    let code = u16::from_ne_bytes([ev[18], ev[19]]);
                    let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
                    if kind == EV_KEY && code == KEY_POWER && value == 1 {
                        pressed = true;
                    }
                }
            }
        }
        pressed
    }
}

/// /dev/watchdog, when the machine has one: petted every tick, closed cleanly at the end.
pub struct Watchdog {
    dev: Option<std::fs::File>,
}

impl Watchdog {
    pub fn open(ring: &mut Ring) -> Self {
        let dev = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/watchdog")
            .ok();
        if dev.is_some() {
            ring.push("init", "hardware watchdog armed");
        }
        Self { dev }
    }

    pub fn pet(&mut self) {
        if let Some(d) = self.dev.as_mut() {
            let _ = d.write_all(b"\0");
        }
    }

    /// The magic close: disarm, so a clean shutdown is not taken for a hang.
    pub fn disarm(&mut self) {
        if let Some(mut d) = self.dev.take() {
            let _ = d.write_all(b"V");
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// What `wait` found ready.
pub struct Ready {
    pub signal: bool,
    pub power_button: bool,
    pub outputs: Vec<RawFd>,
}

/// poll(2) over init's descriptors. Ready descriptors are named by number, so the
/// caller can act on their owners (which the borrows here would otherwise hold).
pub fn wait(
    signal: Option<BorrowedFd<'_>>,
    buttons: Vec<BorrowedFd<'_>>,
    outputs: &[BorrowedFd<'_>],
    timeout: Duration,
) -> Ready {
    let signal_fd = signal.map(|f| f.as_raw_fd());
    let button_fds: Vec<RawFd> = buttons.iter().map(|f| f.as_raw_fd()).collect();
    let mut fds: Vec<PollFd<'_>> = signal
        .into_iter()
        .chain(buttons)
        .chain(outputs.iter().copied())
        .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
        .collect();
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    let n = rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0);
    let mut ready = Ready {
        signal: false,
        power_button: false,
        outputs: Vec::new(),
    };
    if n == 0 {
        return ready;
    }
    for p in fds.iter().filter(|p| !p.revents().is_empty()) {
        let fd = p.as_fd().as_raw_fd();
        if Some(fd) == signal_fd {
            ready.signal = true;
        } else if button_fds.contains(&fd) {
            ready.power_button = true;
        } else {
            ready.outputs.push(fd);
        }
    }
    ready
}
