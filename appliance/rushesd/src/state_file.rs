//! rushesd's own files, written whole: state kept as JSON (read back on start, set
//! aside when damaged) and generated configuration, each replaced through a rename so a
//! crash leaves the old file or the new one, never half of either.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::epoch::now;

/// Read a state file of rushesd's. A missing file is `None`; a damaged one (or one of
/// another layout) is renamed to `NAME.damaged-SECONDS` and reported, so the daemon
/// starts clean instead of failing again at every start.
pub fn read_state<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice(&text) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let aside = path.with_extension(format!("json.damaged-{}", now()));
            let moved = std::fs::rename(path, &aside);
            tracing::error!(file = %path.display(), error = %e, set_aside = %aside.display(), "a state file is damaged");
            Err(match moved {
                Ok(()) => format!(
                    "{} was damaged ({e}); it was set aside as {}",
                    path.display(),
                    aside.display()
                ),
                Err(m) => format!(
                    "{} is damaged ({e}) and cannot be set aside ({m})",
                    path.display()
                ),
            })
        }
    }
}

/// Write a state file through a rename, so a crash leaves the old or the new one.
pub fn write_state<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    replace(path, &text)
}

/// Replace `path` with `bytes` through a sibling file and a rename.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Write `bytes` to `path` (its folder made if needed), readable by root alone, and
/// sync it: the first half of a private file's replacement, which the caller finishes
/// with a rename once every file of the change is written.
pub fn write_private_unplaced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A tar of `files` (names under `prefix`, with `mode`, dated `now`), in memory: what
/// the support bundle and the config backup are made of.
pub fn tar_of(
    files: &[(String, Vec<u8>)],
    prefix: &str,
    mode: u32,
    now: u64,
) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_mtime(now);
        header.set_cksum();
        archive
            .append_data(&mut header, format!("{prefix}{name}"), bytes.as_slice())
            .map_err(|e| std::io::Error::new(e.kind(), format!("{name}: {e}")))?;
    }
    archive.into_inner()
}
