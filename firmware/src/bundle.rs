//! The card's firmware bundle: one file holding a manifest (model, version, minimum host
//! version, size and SHA-256 of the payload) and the payload, the engine image the card
//! runs. A card keeps two slots, A and B: a bundle is staged into the slot not running,
//! activated, and rolled back to the other slot if the new one misbehaves.
//!
//! Layout: the line `RUSHES-FIRMWARE 1`, the manifest as one line of JSON, then the
//! payload bytes.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &str = "RUSHES-FIRMWARE 1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The card model this firmware is for.
    pub model: String,
    pub version: String,
    /// The oldest host software (rushesd) that can drive it.
    pub min_host_version: String,
    pub size: u64,
    /// SHA-256 of the payload, lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("cannot read the bundle: {0}")]
    Io(String),
    #[error("this is not a Rushes firmware bundle (no {MAGIC:?} line)")]
    NotABundle,
    #[error("the bundle's manifest is damaged: {0}")]
    Manifest(String),
    #[error("the payload is {got} bytes; the manifest says {want}")]
    Size { want: u64, got: u64 },
    #[error("the payload's SHA-256 is {got}; the manifest says {want}: the bundle is damaged or was altered")]
    Hash { want: String, got: String },
    #[error("the bundle is for a {bundle}, not this {card}")]
    Model { bundle: String, card: String },
    #[error("the bundle needs host software {need} or newer; this is {have}")]
    HostTooOld { need: String, have: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Make a bundle of `payload`.
pub fn create(model: &str, version: &str, min_host_version: &str, payload: &[u8]) -> Vec<u8> {
    let manifest = Manifest {
        model: model.into(),
        version: version.into(),
        min_host_version: min_host_version.into(),
        size: payload.len() as u64,
        sha256: sha256(payload),
    };
    let mut out = format!(
        "{MAGIC}\n{}\n",
        serde_json::to_string(&manifest).expect("a manifest serializes")
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// `1.10.2` > `1.9`: dotted numbers compared field by field.
fn version_at_least(have: &str, need: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.split(['.', '-'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (h, n) = (parse(have), parse(need));
    for i in 0..h.len().max(n.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or(0),
            n.get(i).copied().unwrap_or(0),
        );
        if a != b {
            return a > b;
        }
    }
    true
}

/// The largest bundle read: the engine image is a few MiB; nothing near this is a bundle.
pub const MAX_BUNDLE: u64 = 256 << 20;
/// The longest manifest line read.
const MAX_MANIFEST: usize = 64 << 10;

/// Read a bundle and check it whole: its payload's size and hash, that it is for
/// `card_model`, and that `host_version` is new enough. Returns the manifest and the
/// payload.
pub fn verify(
    path: &Path,
    card_model: &str,
    host_version: &str,
) -> Result<(Manifest, Vec<u8>), BundleError> {
    let file = std::fs::File::open(path).map_err(|e| BundleError::Io(e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| BundleError::Io(e.to_string()))?
        .len();
    if size > MAX_BUNDLE {
        return Err(BundleError::Io(format!(
            "{} is {size} bytes, more than a firmware bundle can be ({MAX_BUNDLE})",
            path.display()
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_BUNDLE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BundleError::Io(e.to_string()))?;
    check(&bytes, card_model, host_version)
}

/// The line at the start of `bytes` (without its newline) and what follows it, if a
/// newline comes within `max` bytes.
fn line(bytes: &[u8], max: usize) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().take(max + 1).position(|b| *b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// [`verify`] on a bundle's bytes.
pub fn check(
    bytes: &[u8],
    card_model: &str,
    host_version: &str,
) -> Result<(Manifest, Vec<u8>), BundleError> {
    let Some((magic, rest)) = line(bytes, MAGIC.len() + 1) else {
        return Err(BundleError::NotABundle);
    };
    if magic.strip_suffix(b"\r").unwrap_or(magic) != MAGIC.as_bytes() {
        return Err(BundleError::NotABundle);
    }
    let Some((manifest, payload)) = line(rest, MAX_MANIFEST) else {
        return Err(BundleError::Manifest(format!(
            "no manifest line of at most {MAX_MANIFEST} bytes after the first"
        )));
    };
    let manifest: Manifest =
        serde_json::from_slice(manifest).map_err(|e| BundleError::Manifest(e.to_string()))?;
    if payload.len() as u64 != manifest.size {
        return Err(BundleError::Size {
            want: manifest.size,
            got: payload.len() as u64,
        });
    }
    let got = sha256(payload);
    if got != manifest.sha256 {
        return Err(BundleError::Hash {
            want: manifest.sha256.clone(),
            got,
        });
    }
    if manifest.model != card_model {
        return Err(BundleError::Model {
            bundle: manifest.model.clone(),
            card: card_model.into(),
        });
    }
    if !version_at_least(host_version, &manifest.min_host_version) {
        return Err(BundleError::HostTooOld {
            need: manifest.min_host_version.clone(),
            have: host_version.into(),
        });
    }
    Ok((manifest, payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join("fw.bundle");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn a_bundle_round_trips_and_its_manifest_is_one_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let b = create("K200-LP", "2.1.0", "0.1.0", b"engine");
        let text = String::from_utf8_lossy(&b);
        assert!(text.starts_with("RUSHES-FIRMWARE 1\n{\"model\":\"K200-LP\""));
        let (m, payload) = verify(&write(dir.path(), &b), "K200-LP", "0.1.0").unwrap();
        assert_eq!(
            (m.version.as_str(), payload.as_slice()),
            ("2.1.0", &b"engine"[..])
        );
        assert_eq!(m.sha256, sha256(b"engine"));
    }

    #[test]
    fn a_damaged_or_foreign_bundle_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = create("K200-LP", "2.1.0", "0.3", b"engine");
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            verify(&write(dir.path(), &b), "K200-LP", "1.0"),
            Err(BundleError::Hash { .. })
        ));
        let b = create("K200-LP", "2.1.0", "0.3", b"engine");
        assert!(matches!(
            verify(&write(dir.path(), &b), "BlueField-3", "1.0"),
            Err(BundleError::Model { .. })
        ));
        assert!(matches!(
            verify(&write(dir.path(), &b), "K200-LP", "0.2.9"),
            Err(BundleError::HostTooOld { .. })
        ));
        assert_eq!(
            verify(&write(dir.path(), b"PK\x03\x04zip"), "K200-LP", "1.0"),
            Err(BundleError::NotABundle)
        );
        let mut short = create("K200-LP", "2.1.0", "0.3", b"engine");
        short.pop();
        assert!(matches!(
            verify(&write(dir.path(), &short), "K200-LP", "1.0"),
            Err(BundleError::Size { .. })
        ));
    }

    #[test]
    fn versions_compare_by_number_not_by_text() {
        assert!(version_at_least("1.10.0", "1.9"));
        assert!(!version_at_least("1.9", "1.10"));
        assert!(version_at_least("0.1.0", "0.1"));
    }
}
