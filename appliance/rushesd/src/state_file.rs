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
