//! `rushes-init`, PID 1 of the Rushes appliance. It mounts the kernel file systems,
//! starts udev, brings up the network, mounts RUSHES-CFG, and supervises the services
//! that do the real work; it never panics, and on power-off it stops them in reverse
//! order, saves their logs and syncs before the machine goes down.
//!
//! # Design
//! One thread, one loop: `poll` over a signalfd (SIGCHLD, SIGTERM, SIGINT from
//! ctrl-alt-del, SIGPWR), the power button's input device and the services' output
//! pipes, with a one-second tick for restarts, readiness and the watchdog. Logic beyond
//! that belongs in rushesd.

mod boot;
mod child;
mod confine;
mod console;
mod events;
mod log;
mod root_image;
mod services;
mod settings;
mod system;

use std::time::{Duration, Instant};

use crate::events::Action;
use crate::log::Ring;
use crate::services::Supervisor;

fn main() {
    let pid1 = rustix::process::getpid().is_init();
    // A panic in PID 1 would take the kernel down: every step below logs and survives,
    // and the loop itself is restarted if anything unexpected unwinds.
    let mut ring = Ring::new(4000);
    if pid1 {
        system::early(&mut ring);
    }
    let mut sup = Supervisor::new(pid1);
    loop {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&mut sup, &mut ring, pid1)
        }));
        match result {
            Ok(action) => {
                system::shutdown(&mut sup, &mut ring, action, pid1);
                if !pid1 {
                    return;
                }
                // reboot(2) does not return; if it failed, keep supervising.
            }
            Err(_) => {
                ring.push("init", "internal error in the supervisor loop; continuing");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn run(sup: &mut Supervisor, ring: &mut Ring, pid1: bool) -> Action {
    if !sup.started {
        system::boot_sequence(sup, ring, pid1);
        sup.started = true;
    }
    let mut signals = events::Signals::new(ring);
    let mut power_button = events::PowerButtons::open(ring);
    let mut watchdog = events::Watchdog::open(ring);
    let mut last_tick = Instant::now();
    let mut announced = false;
    let mut gave_up_waiting = false;
    let booted = Instant::now();
    loop {
        let fds = sup.output_fds();
        let timeout = Duration::from_millis(500);
        let ready = events::wait(signals.fd(), power_button.fds(), &fds, timeout);
        for fd in ready.outputs {
            sup.drain_output(fd, ring);
        }
        if ready.power_button && power_button.pressed(ring) {
            ring.push("init", "power button pressed: powering off");
            return Action::PowerOff;
        }
        if ready.signal {
            match signals.read(ring) {
                Some(events::Signal::Child) => sup.reap(ring),
                Some(events::Signal::Terminate) => return Action::PowerOff,
                Some(events::Signal::CtrlAltDel) => return Action::Reboot,
                None => {}
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            sup.reap(ring);
            sup.tick(ring);
            watchdog.pet();
            if !announced && sup.healthy() {
                announced = true;
                let address = system::addresses().join(", ");
                let slot = boot::slot().unwrap_or_else(|| "?".into());
                // Seconds since the kernel started (the boot time `make bench` reports).
                let since_kernel = std::fs::read_to_string("/proc/uptime")
                    .ok()
                    .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
                    .map(|s| format!(", {s:.1} s after the kernel started"))
                    .unwrap_or_default();
                let line = format!(
                    "rushes: ready (slot {slot}) serving NFS on {address} port 2049{since_kernel}"
                );
                ring.push("init", &line);
                console::console(&line);
                if pid1 {
                    boot::bless(ring);
                }
            }
            // A new slot whose stack never gets ready is rebooted, so that its tries
            // run out and the boot loader goes back to the good one.
            if pid1 && !announced && !gave_up_waiting && booted.elapsed() >= boot::READY_DEADLINE {
                gave_up_waiting = true;
                if boot::not_ready(ring) {
                    return Action::Reboot;
                }
            }
        }
    }
}
