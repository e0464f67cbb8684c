//! Signed update bundles: their format, the checks a box makes before it writes anything,
//! and the A/B boot slots on the EFI system partition a bundle is written into.
//!
//! A bundle is one file, read front to back so that it can be streamed from a URL:
//!
//! ```text
//! "RUSHESBNDL"  u16 format  u32 manifest length  manifest (TOML)
//! 32-byte ed25519 public key  64-byte signature of "rushes-update\0" + manifest
//! the payload files, back to back, in the manifest's order
//! ```
//!
//! The manifest names the model, the version, the oldest version it may update, and each
//! payload file's size and blake3 hash. Everything up to the payload is read and checked
//! (length bounds, signature by a key the box trusts, model, versions) before a byte is
//! written; each payload file is hashed as it streams and counts only if it matches.

mod keys;
pub mod slots;

use std::cmp::Ordering;
use std::io::{Read, Write};
use std::path::Path;

pub use keys::{PublicKey, SecretKey};

/// What this build of the appliance is; a bundle for another model is refused.
pub const MODEL: &str = "rushes-x86_64";
/// The newest bundle format this build reads.
pub const FORMAT: u16 = 1;
const MAGIC: &[u8; 10] = b"RUSHESBNDL";
/// What the signature covers, ahead of the manifest's bytes.
const SIGNED_PREFIX: &[u8] = b"rushes-update\0";
/// The longest manifest read (it holds a few lines per file).
pub const MAX_MANIFEST: u32 = 64 * 1024;
/// The largest payload file taken (the ESP holding both slots is 256 MiB).
pub const MAX_FILE: u64 = 512 << 20;
/// The files a slot is made of, in the order a bundle carries them: the kernel, the
/// initramfs, and the root image (`/usr`, squashfs) the initramfs mounts.
pub const PAYLOAD: [&str; 3] = ["vmlinuz", "initrd.zst", "root.sqfs"];

/// Why a bundle was refused. Nothing has been written when any of these but
/// [`Refused::Payload`] and [`Refused::Io`] is returned.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("this is not a Rushes update bundle (it does not start with {MAGIC:?})")]
    NotABundle,
    #[error("the bundle is format {0}, newer than this box reads ({FORMAT}): update to an intermediate version first")]
    FromTheFuture(u16),
    #[error(
        "the bundle ends early, in its {0}: the download or copy was cut short; fetch it again"
    )]
    Truncated(&'static str),
    #[error(
        "the bundle's manifest claims {0} bytes, more than the {MAX_MANIFEST} a manifest may hold"
    )]
    ManifestTooLarge(u32),
    #[error("the bundle's manifest is not valid: {0}")]
    BadManifest(String),
    #[error("the bundle is signed by key {0}, which this box does not trust: only bundles signed with the keys built into its image are taken")]
    UnknownKey(String),
    #[error(
        "the bundle's signature does not match its manifest: it was changed after it was signed"
    )]
    BadSignature,
    #[error("the bundle is for model {bundle:?}; this box is {this:?}")]
    WrongModel { bundle: String, this: String },
    #[error("the bundle updates from version {min} on; this box runs {running}: apply an intermediate version first")]
    TooOld { running: String, min: String },
    #[error("payload file {name}: {why}")]
    Payload { name: String, why: String },
    #[error("the bundle has bytes after its payload: it is not the file that was signed")]
    TrailingBytes,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Refused {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Refused {
        let what = what.into();
        move |source| Refused::Io { what, source }
    }
}

/// The signed description of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub model: String,
    pub version: String,
    /// The oldest version this bundle may be applied on.
    pub min_version: String,
    /// When it was made (RFC 3339), for people.
    #[serde(default)]
    pub created: String,
    pub files: Vec<PayloadFile>,
}

/// One payload file: its name in the slot, its size and its blake3 hash (hex).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadFile {
    pub name: String,
    pub size: u64,
    pub blake3: String,
}

impl Manifest {
    /// A manifest's bytes, read and checked against its own rules.
    pub fn parse(bytes: &[u8]) -> Result<Self, Refused> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Refused::BadManifest("it is not UTF-8".into()))?;
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| Refused::BadManifest(e.message().to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The manifest's own rules, apart from who signed it and which box reads it.
    pub fn check(&self) -> Result<(), Refused> {
        let bad = |why: String| Err(Refused::BadManifest(why));
        parse_version(&self.version).map_err(Refused::BadManifest)?;
        parse_version(&self.min_version).map_err(Refused::BadManifest)?;
        let names: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        if names != PAYLOAD {
            return bad(format!("it lists files {names:?}; a slot is {PAYLOAD:?}"));
        }
        for f in &self.files {
            if f.size == 0 || f.size > MAX_FILE {
                return bad(format!(
                    "{} is {} bytes; 1 to {MAX_FILE} are taken",
                    f.name, f.size
                ));
            }
            if f.blake3.len() != 64 || !f.blake3.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(format!("{}'s blake3 is not 64 hex digits", f.name));
            }
        }
        Ok(())
    }

    pub fn payload_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A bundle's front as it was read, before anything about it is trusted.
#[derive(Debug)]
pub struct RawHeader {
    pub format: u16,
    pub manifest: Vec<u8>,
    pub key: [u8; 32],
    pub signature: [u8; 64],
}

/// A bundle whose signature, model and versions were checked; its payload follows in
/// the reader it came from.
#[derive(Clone, Debug)]
pub struct Checked {
    pub manifest: Manifest,
    /// The fingerprint of the key that signed it.
    pub signer: String,
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), Refused> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Refused::Truncated(what)
        } else {
            Refused::Io {
                what: format!("cannot read the bundle's {what}"),
                source: e,
            }
        }
    })
}

/// Read a bundle's magic, format, manifest and signature, bounding every length
/// before it is allocated. Nothing is trusted yet.
pub fn read_header(r: &mut impl Read) -> Result<RawHeader, Refused> {
    let mut magic = [0u8; 10];
    match r.read_exact(&mut magic) {
        Ok(()) if &magic == MAGIC => {}
        Ok(()) => return Err(Refused::NotABundle),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Refused::NotABundle),
        Err(e) => return Err(Refused::io("cannot read the bundle")(e)),
    }
    let mut word = [0u8; 2];
    read_exact(r, &mut word, "header")?;
    let format = u16::from_be_bytes(word);
    if format > FORMAT {
        return Err(Refused::FromTheFuture(format));
    }
    if format == 0 {
        return Err(Refused::NotABundle);
    }
    let mut len = [0u8; 4];
    read_exact(r, &mut len, "header")?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MANIFEST {
        return Err(Refused::ManifestTooLarge(len));
    }
    let mut manifest = vec![0u8; len as usize];
    read_exact(r, &mut manifest, "manifest")?;
    let mut key = [0u8; 32];
    read_exact(r, &mut key, "signature")?;
    let mut signature = [0u8; 64];
    read_exact(r, &mut signature, "signature")?;
    Ok(RawHeader {
        format,
        manifest,
        key,
        signature,
    })
}

impl RawHeader {
    /// Check the signature with the box's trusted keys, then the manifest, the model and
    /// the versions against the running one.
    pub fn check(&self, trusted: &[PublicKey], running: &str) -> Result<Checked, Refused> {
        let signer = trusted
            .iter()
            .find(|k| k.bytes() == self.key)
            .ok_or_else(|| Refused::UnknownKey(keys::fingerprint(&self.key)))?;
        signer.verify(&signed_message(&self.manifest), &self.signature)?;
        let manifest = Manifest::parse(&self.manifest)?;
        if manifest.model != MODEL {
            return Err(Refused::WrongModel {
                bundle: manifest.model,
                this: MODEL.into(),
            });
        }
        if compare_versions(running, &manifest.min_version) == Ordering::Less {
            return Err(Refused::TooOld {
                running: running.into(),
                min: manifest.min_version,
            });
        }
        Ok(Checked {
            manifest,
            signer: signer.fingerprint(),
        })
    }
}

fn signed_message(manifest: &[u8]) -> Vec<u8> {
    let mut m = SIGNED_PREFIX.to_vec();
    m.extend_from_slice(manifest);
    m
}

/// `MAJOR.MINOR.PATCH`, each a number; anything after a `-` or `+` (a pre-release or
/// build tag) is ignored in comparisons.
fn parse_version(v: &str) -> Result<[u64; 3], String> {
    let core = v.split(['-', '+']).next().unwrap_or(v);
    let parts: Vec<&str> = core.split('.').collect();
    let bad = || format!("version {v:?} is not MAJOR.MINOR.PATCH");
    if parts.len() != 3 {
        return Err(bad());
    }
    let mut out = [0u64; 3];
    for (o, p) in out.iter_mut().zip(parts) {
        *o = p.parse().map_err(|_| bad())?;
    }
    Ok(out)
}

/// Order two versions; one that does not parse sorts first (oldest).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (parse_version(a), parse_version(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Err(_), Ok(_)) => Ordering::Less,
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Err(_)) => Ordering::Equal,
    }
}

/// Copy one payload file of `entry.size` bytes from the bundle to `out`, hashing it;
/// `progress` hears how many bytes of this file are done.
pub fn copy_payload_file(
    bundle: &mut impl Read,
    entry: &PayloadFile,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<(), Refused> {
    let mut hasher = blake3::Hasher::new();
    let mut left = entry.size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = bundle.read(&mut buf[..want]).map_err(Refused::io(format!(
            "cannot read {} from the bundle",
            entry.name
        )))?;
        if n == 0 {
            return Err(Refused::Payload {
                name: entry.name.clone(),
                why: format!(
                    "the bundle ends {left} bytes short of it: the download or copy was cut short"
                ),
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(Refused::io(format!("cannot write {}", entry.name)))?;
        left -= n as u64;
        progress(entry.size - left);
    }
    let got = hasher.finalize().to_hex();
    if !got.as_str().eq_ignore_ascii_case(&entry.blake3) {
        return Err(Refused::Payload {
            name: entry.name.clone(),
            why: "its bytes do not hash as the signed manifest says: the bundle is damaged".into(),
        });
    }
    Ok(())
}

/// After the payload: nothing more may follow.
pub fn expect_end(bundle: &mut impl Read) -> Result<(), Refused> {
    let mut one = [0u8; 1];
    match bundle.read(&mut one) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Refused::TrailingBytes),
        Err(e) => Err(Refused::io("cannot read the bundle's end")(e)),
    }
}

fn with_path(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Make a bundle of `files` (in [`PAYLOAD`] order) signed with `key`.
pub fn make(
    out: &mut impl Write,
    key: &SecretKey,
    version: &str,
    min_version: &str,
    created: &str,
    files: &[&Path],
) -> std::io::Result<Manifest> {
    use std::io::{Error, ErrorKind};
    if files.len() != PAYLOAD.len() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("a bundle holds {PAYLOAD:?}, {} files given", files.len()),
        ));
    }
    let mut entries = Vec::new();
    for (name, path) in PAYLOAD.iter().zip(files) {
        let mut hasher = blake3::Hasher::new();
        let mut f = std::fs::File::open(path).map_err(with_path(path))?;
        let size = std::io::copy(&mut f, &mut hasher).map_err(with_path(path))?;
        entries.push(PayloadFile {
            name: (*name).into(),
            size,
            blake3: hasher.finalize().to_hex().to_string(),
        });
    }
    let manifest = Manifest {
        model: MODEL.into(),
        version: version.into(),
        min_version: min_version.into(),
        created: created.into(),
        files: entries,
    };
    manifest
        .check()
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
    let text = toml::to_string(&manifest).map_err(|e| Error::other(e.to_string()))?;
    let signature = key.sign(&signed_message(text.as_bytes()));
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT.to_be_bytes())?;
    let len = u32::try_from(text.len()).map_err(|_| Error::other("manifest too long"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(text.as_bytes())?;
    out.write_all(&key.public().bytes())?;
    out.write_all(&signature)?;
    for path in files {
        let mut f = std::fs::File::open(path).map_err(with_path(path))?;
        std::io::copy(&mut f, out).map_err(with_path(path))?;
    }
    out.flush()?;
    Ok(manifest)
}

#[cfg(test)]
mod tests;
