//! How init starts a child: without PID 1's blocked signals, and for the console, as
//! the session leader of its terminal.

use std::process::Command;

use nix::sys::signal::SigSet;

/// Children must not inherit init's blocked signals (SIGTERM, SIGCHLD …, which init
/// takes through a signalfd), or they could never be stopped.
pub fn clean_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; it only calls pthread_sigmask,
    // which is async-signal-safe, and touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(unblock_all_signals);
    }
}

/// Clear the signal mask a child inherited from PID 1.
fn unblock_all_signals() -> std::io::Result<()> {
    SigSet::empty()
        .thread_set_mask()
        .map_err(std::io::Error::from)
}

/// Like [`clean_signals`], and make the child a session leader whose controlling
/// terminal is its standard input (a console on tty1 or ttyS0, as getty would).
pub fn own_terminal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; pthread_sigmask, setsid and the
    // TIOCSCTTY ioctl are async-signal-safe and touch no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            unblock_all_signals()?;
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(std::io::stdin())?;
            Ok(())
        });
    }
}
