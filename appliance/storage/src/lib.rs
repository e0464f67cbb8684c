//! Disks and pools of the Rushes appliance: what block devices the machine has
//! ([`inventory`]), and the md RAID arrays ([`md`]) with XFS on them ([`xfs`]) that
//! pools are made of. Everything here acts on real devices through Debian's mdadm and
//! xfsprogs and the kernel's sysfs; the policy (which disks, what to do when one fails)
//! is rushesd's.

pub mod fabrics;
pub mod health;
pub mod inventory;
pub mod md;
pub mod nvme;
pub mod speed;
pub mod wipe;
pub mod xfs;

use std::process::Command;

/// Why a storage command failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl StorageError {
    pub fn io(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        StorageError::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Run a tool and return its standard output; its error output becomes the error.
pub(crate) fn run(cmd: &mut Command) -> Result<String, StorageError> {
    let what = format!("{cmd:?}").replace('"', "");
    tracing::info!(command = %what, "running");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| StorageError::io(format!("cannot run {what}"), e))?;
    if !out.status.success() {
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        if detail.is_empty() {
            detail = format!("exit status {}", out.status);
        }
        return Err(StorageError::Command { what, detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run a tool that reads a device, which can hang on a dying drive or a lost path: its
/// exit status, output and error output, or an error if it is still running after
/// `timeout` (it is killed, and reaped when it can be).
pub(crate) fn run_timed(
    cmd: &mut Command,
    timeout: std::time::Duration,
) -> Result<(std::process::ExitStatus, String, String), StorageError> {
    use std::io::Read;
    use std::process::Stdio;
    let what = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StorageError::io(format!("cannot run {what}"), e))?;
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                // A process stuck in the kernel may not die at once; reap it elsewhere.
                std::thread::spawn(move || child.wait());
                return Err(StorageError::Command {
                    what,
                    detail: format!("no answer in {} s", timeout.as_secs()),
                });
            }
            Err(e) => return Err(StorageError::io(what, e)),
        }
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    Ok((status, out, err))
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Write a fake sysfs or device file, creating its folders.
    pub fn write(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}
