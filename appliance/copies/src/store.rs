//! Copies on one target: uploaded with the file's facts as metadata, counted only once
//! read back, and audited later against what the target says it holds.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::{CopyError, Target};

/// Files up to this size go in one request; bigger ones in parts of this size.
const PART: usize = 8 << 20;
/// Parts in flight at once, per file.
const PARTS_IN_FLIGHT: usize = 4;
/// Where a folder target keeps each copy's facts: beside the copies, under this prefix.
const SIDECARS: &str = ".rushes-meta";
/// Where older versions of copies are kept on a target, under their key and the
/// modify time (ns) of the file they were copied from.
pub const VERSIONS: &str = ".rushes-versions";

/// What travels with a copy: enough to give the file back as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// blake3 of the bytes, hex.
    pub blake3: String,
}

/// A copy that counts: the target held these bytes when they were read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub target: String,
    pub key: String,
    pub facts: FileFacts,
    /// The target's own tag for the object, and its version where it keeps versions.
    pub e_tag: Option<String>,
    pub version: Option<String>,
    /// When it was last proven, seconds since the epoch.
    pub proven_at: u64,
}

/// What an audit found of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audit {
    /// Read back whole: the same bytes.
    Proven,
    /// There, but not what was copied.
    Changed(String),
    /// Gone from the target.
    Missing,
}

/// One target, open.
pub struct Store {
    name: String,
    store: Arc<dyn ObjectStore>,
    /// Whether objects carry our metadata (else it goes in a sidecar object).
    metadata: bool,
    /// A folder target's folder: a version kept there is a hard link, whose modify time
    /// must be set to when it stopped being current.
    folder: Option<std::path::PathBuf>,
}

/// What a pass of retention did on a target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Copies of files no longer on the box, kept as versions from now on.
    pub retired: u64,
    /// Versions older than the retention, deleted, and their bytes.
    pub pruned: u64,
    pub pruned_bytes: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Store {
    pub fn open(target: &Target) -> Result<Self, CopyError> {
        let (store, metadata) = target.open()?;
        let folder = match &target.place {
            crate::TargetPlace::Folder { path } => Some(path.into()),
            _ => None,
        };
        Ok(Self {
            name: target.name.clone(),
            store,
            metadata,
            folder,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key of share `share`'s file `rel`: `SHARE/PATH`, as any S3 tool lists it.
    pub fn key(share: &str, rel: &str) -> String {
        format!("{share}/{}", rel.trim_start_matches('/'))
    }

    /// Copy `file` (share `share`'s `rel`) and prove the copy. The file is hashed, then
    /// sent while hashed again: a file that changed in between is not copied
    /// ([`CopyError::Changed`]); what the target stored is then read back whole and
    /// must hash the same, or the copy does not count.
    pub async fn put_verified(
        &self,
        share: &str,
        rel: &str,
        file: &Path,
    ) -> Result<Proof, CopyError> {
        self.put_verified_from(share, rel, file, file).await
    }

    /// [`Self::put_verified`] of a file whose bytes are read from `data` (where
    /// placement keeps them, for a file whose data moved to another pool) while its
    /// size, times, owner and mode are `file`'s.
    pub async fn put_verified_from(
        &self,
        share: &str,
        rel: &str,
        file: &Path,
        data: &Path,
    ) -> Result<Proof, CopyError> {
        let key = Self::key(share, rel);
        let location = Key::from(key.as_str());
        let read_err = |source| CopyError::File {
            path: file.display().to_string(),
            source,
        };
        let before = std::fs::metadata(file).map_err(read_err)?;
        let path = data.to_path_buf();
        let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<blake3::Hash> {
            let mut h = blake3::Hasher::new();
            h.update_reader(std::fs::File::open(&path)?)?;
            Ok(h.finalize())
        })
        .await
        .map_err(|e| read_err(std::io::Error::other(e.to_string())))?
        .map_err(read_err)?;
        let facts = FileFacts {
            size: before.len(),
            mode: before.mode(),
            uid: before.uid(),
            gid: before.gid(),
            mtime_ns: i128::from(before.mtime()) * 1_000_000_000 + i128::from(before.mtime_nsec()),
            blake3: hashed.to_hex().to_string(),
        };
        let changed = || CopyError::Changed {
            target: self.name.clone(),
            path: file.display().to_string(),
        };
        // Written to since it was hashed: checked before the copy is committed, so the
        // target never takes bytes of a file in the middle of a change.
        let untouched = || {
            std::fs::metadata(file).is_ok_and(|after| {
                after.len() == before.len()
                    && after.mtime() == before.mtime()
                    && after.mtime_nsec() == before.mtime_nsec()
            })
        };
        let attributes = if self.metadata {
            attributes(&facts)
        } else {
            Attributes::new()
        };
        let mut f = tokio::fs::File::open(data).await.map_err(read_err)?;
        let mut sent = blake3::Hasher::new();
        let put = if facts.size <= PART as u64 {
            let mut bytes = Vec::with_capacity(facts.size as usize);
            f.read_to_end(&mut bytes).await.map_err(read_err)?;
            sent.update(&bytes);
            if sent.finalize() != hashed || !untouched() {
                return Err(changed());
            }
            let opts = PutOptions {
                attributes,
                ..Default::default()
            };
            self.store
                .put_opts(&location, PutPayload::from(bytes), opts)
                .await
                .map_err(|e| CopyError::of(&self.name, "store the copy", e))?
        } else {
            let opts = PutMultipartOptions {
                attributes,
                ..Default::default()
            };
            let upload = self
                .store
                .put_multipart_opts(&location, opts)
                .await
                .map_err(|e| CopyError::of(&self.name, "start an upload", e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0u8; PART];
            loop {
                let n = f.read(&mut buf).await.map_err(read_err)?;
                if n == 0 {
                    break;
                }
                sent.update(&buf[..n]);
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    w.abort().await.ok();
                    return Err(CopyError::of(&self.name, "send a part", e));
                }
                w.write(&buf[..n]);
            }
            if sent.finalize() != hashed || !untouched() {
                // Not a byte of it is visible: an upload not completed leaves no object.
                w.abort().await.ok();
                return Err(changed());
            }
            w.finish()
                .await
                .map_err(|e| CopyError::of(&self.name, "finish the upload", e))?
        };
        if !self.metadata {
            let sidecar = Key::from(format!("{SIDECARS}/{key}.json"));
            let json = serde_json::to_vec(&facts).unwrap_or_default();
            self.store
                .put(&sidecar, PutPayload::from(json))
                .await
                .map_err(|e| CopyError::of(&self.name, "store the copy's facts", e))?;
        }
        let proof = Proof {
            target: self.name.clone(),
            key,
            facts,
            e_tag: put.e_tag,
            version: put.version,
            proven_at: 0,
        };
        match self.audit(&proof).await? {
            Audit::Proven => Ok(Proof {
                proven_at: now(),
                ..proof
            }),
            Audit::Changed(why) => Err(CopyError::Unproven {
                target: self.name.clone(),
                key: proof.key,
                why,
            }),
            Audit::Missing => Err(CopyError::Unproven {
                target: self.name.clone(),
                key: proof.key,
                why: "the target does not have it after storing it".into(),
            }),
        }
    }

    /// Read the copy `proof` names back from the target, whole, and say whether it is
    /// still what was copied (bytes and the facts stored with it). A big copy is read in
    /// ranges of a part's size, several at once (as fast S3 clients read), all of the
    /// same object (its tag, where the target gives one), and hashed in order.
    pub async fn audit(&self, proof: &Proof) -> Result<Audit, CopyError> {
        let location = Key::from(proof.key.as_str());
        // A small copy in one request; a big one looked at first, then read in ranges.
        let whole = proof.facts.size <= PART as u64;
        let opts = object_store::GetOptions::new().with_head(!whole);
        let got = match self.store.get_opts(&location, opts).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(Audit::Missing),
            Err(e) => return Err(CopyError::of(&self.name, "read the copy back", e)),
        };
        if self.metadata {
            let said = got
                .attributes
                .get(&Attribute::Metadata("rushesblake3".into()))
                .map(|v| v.to_string());
            if said.as_deref() != Some(proof.facts.blake3.as_str()) {
                return Ok(Audit::Changed(format!(
                    "its metadata gives blake3 {said:?}, not {}",
                    proof.facts.blake3
                )));
            }
        }
        let size = got.meta.size;
        if size != proof.facts.size {
            return Ok(Audit::Changed(format!(
                "it holds {size} bytes, not {}",
                proof.facts.size
            )));
        }
        let e_tag = got.meta.e_tag.clone();
        let read_err = |e| CopyError::of(&self.name, "read the copy back", e);
        let mut h = blake3::Hasher::new();
        if whole {
            h.update(&got.bytes().await.map_err(read_err)?);
        }
        let rest = (0..if whole { 0 } else { size })
            .step_by(PART)
            .map(|start| {
                let range = start..(start + PART as u64).min(size);
                let opts = object_store::GetOptions::new()
                    .with_range(Some(range))
                    .with_if_match(e_tag.clone());
                let location = location.clone();
                async move {
                    match self.store.get_opts(&location, opts).await {
                        Ok(got) => got.bytes().await.map(Some),
                        Err(object_store::Error::Precondition { .. })
                        | Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            });
        let mut ranges = futures_util::stream::iter(rest).buffered(PARTS_IN_FLIGHT);
        while let Some(bytes) = ranges.next().await {
            match bytes.map_err(read_err)? {
                Some(bytes) => h.update(&bytes),
                None => {
                    return Ok(Audit::Changed(
                        "it was replaced or removed while it was read back".into(),
                    ))
                }
            };
        }
        let read = h.finalize().to_hex().to_string();
        if read != proof.facts.blake3 {
            return Ok(Audit::Changed(format!(
                "its bytes hash {read}, not {}",
                proof.facts.blake3
            )));
        }
        Ok(Audit::Proven)
    }

    /// Bytes `range` of the copy `proof` names, for a recall. A copy whose size is not
    /// the proven one, or whose tag changed where the target gives one, is refused as
    /// [`CopyError::Unproven`]: its bytes are not what was proven. The caller hashes
    /// the whole file once it is back.
    pub async fn get_range(
        &self,
        proof: &Proof,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, CopyError> {
        let unproven = |why: String| CopyError::Unproven {
            target: self.name.clone(),
            key: proof.key.clone(),
            why,
        };
        let mut opts = object_store::GetOptions::new().with_range(Some(range.clone()));
        if self.metadata {
            opts = opts.with_if_match(proof.e_tag.clone());
        }
        let got = match self
            .store
            .get_opts(&Key::from(proof.key.as_str()), opts)
            .await
        {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(unproven("it is gone from the target".into()))
            }
            Err(object_store::Error::Precondition { .. }) => {
                return Err(unproven(
                    "it was replaced on the target since it was proven".into(),
                ))
            }
            Err(e) => return Err(CopyError::of(&self.name, "read a copy back", e)),
        };
        if got.meta.size != proof.facts.size {
            return Err(unproven(format!(
                "it holds {} bytes, not {}",
                got.meta.size, proof.facts.size
            )));
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| CopyError::of(&self.name, "read a copy back", e))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(unproven(format!(
                "it gave {} bytes for a range of {}",
                bytes.len(),
                range.end - range.start
            )));
        }
        Ok(bytes.to_vec())
    }

    /// Keep the copy `proof` names as an older version before a newer one takes its
    /// key: it is copied on the target to `.rushes-versions/KEY@MTIME_NS` (with a
    /// folder's sidecar), where any S3 tool finds it. `None` when the copy is gone.
    pub async fn keep_version(&self, proof: &Proof) -> Result<Option<String>, CopyError> {
        self.keep_as_version(&proof.key, proof.facts.mtime_ns).await
    }

    async fn keep_as_version(
        &self,
        key: &str,
        mtime_ns: i128,
    ) -> Result<Option<String>, CopyError> {
        let kept = format!("{VERSIONS}/{key}@{mtime_ns}");
        let mut pairs = vec![(key.to_string(), kept.clone())];
        if !self.metadata {
            pairs.push((
                format!("{SIDECARS}/{key}.json"),
                format!("{SIDECARS}/{kept}.json"),
            ));
        }
        for (i, (from, to)) in pairs.iter().enumerate() {
            match self
                .store
                .copy(&Key::from(from.as_str()), &Key::from(to.as_str()))
                .await
            {
                Ok(()) => {}
                Err(object_store::Error::NotFound { .. }) if i == 0 => return Ok(None),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(CopyError::of(&self.name, "keep an older version", e)),
            }
        }
        // A version's age runs from now (retention counts from it). An object store's
        // copy is a new object; a folder's is a hard link with the old modify time.
        if let Some(folder) = &self.folder {
            let file = std::fs::File::options()
                .write(true)
                .open(folder.join(&kept))
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            if let Err(source) = file {
                return Err(CopyError::File {
                    path: folder.join(&kept).display().to_string(),
                    source,
                });
            }
        }
        Ok(Some(kept))
    }

    /// Retention on this target for share `share`: the copy of every file the box no
    /// longer has (`on_box(PATH)` false) becomes a version, and versions older than
    /// `keep_secs` are deleted. Keys of other shares, and anything not under the
    /// share's prefix, are never touched.
    pub async fn keep_for(
        &self,
        share: &str,
        keep_secs: u64,
        on_box: impl Fn(&str) -> bool,
    ) -> Result<Retention, CopyError> {
        let mut done = Retention::default();
        let prefix = format!("{share}/");
        let mut gone = Vec::new();
        {
            let mut listing = self.store.list(Some(&Key::from(prefix.as_str())));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| CopyError::of(&self.name, "list its copies", e))?;
                let key = meta.location.to_string();
                let Some(rel) = key.strip_prefix(&prefix) else {
                    continue;
                };
                if !on_box(rel) {
                    gone.push(key);
                }
            }
        }
        for key in gone {
            let mtime_ns = self.facts(&key).await?.map_or(0, |f| f.mtime_ns);
            if self.keep_as_version(&key, mtime_ns).await?.is_some() {
                self.remove(&key).await?;
                done.retired += 1;
            }
        }
        let cutoff = std::time::SystemTime::now()
            .checked_sub(std::time::Duration::from_secs(keep_secs))
            .unwrap_or(std::time::UNIX_EPOCH);
        let mut old = Vec::new();
        {
            let versions = Key::from(format!("{VERSIONS}/{share}/"));
            let mut listing = self.store.list(Some(&versions));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| CopyError::of(&self.name, "list its versions", e))?;
                if std::time::SystemTime::from(meta.last_modified) < cutoff {
                    old.push((meta.location.to_string(), meta.size));
                }
            }
        }
        for (key, size) in old {
            self.remove(&key).await?;
            done.pruned += 1;
            done.pruned_bytes += size;
        }
        Ok(done)
    }

    /// Delete the copy at `key` (and a folder's sidecar of its facts).
    pub async fn remove(&self, key: &str) -> Result<(), CopyError> {
        let mut keys = vec![Key::from(key)];
        if !self.metadata {
            keys.push(Key::from(format!("{SIDECARS}/{key}.json")));
        }
        for k in keys {
            match self.store.delete(&k).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(CopyError::of(&self.name, "delete a copy", e)),
            }
        }
        Ok(())
    }

    /// The facts stored with the copy at `key` (from the object's metadata, or a
    /// folder's sidecar).
    pub async fn facts(&self, key: &str) -> Result<Option<FileFacts>, CopyError> {
        if !self.metadata {
            let sidecar = Key::from(format!("{SIDECARS}/{key}.json"));
            return match self.store.get(&sidecar).await {
                Ok(got) => {
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| CopyError::of(&self.name, "read a copy's facts", e))?;
                    Ok(serde_json::from_slice(&bytes).ok())
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(CopyError::of(&self.name, "read a copy's facts", e)),
            };
        }
        let got = match self
            .store
            .get_opts(
                &Key::from(key),
                object_store::GetOptions::new().with_head(true),
            )
            .await
        {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(CopyError::of(&self.name, "look at a copy", e)),
        };
        let a = &got.attributes;
        let get = |k: &'static str| a.get(&Attribute::Metadata(k.into())).map(|v| v.to_string());
        let num = |k| get(k).and_then(|v| v.parse::<u64>().ok());
        Ok((|| {
            Some(FileFacts {
                size: got.meta.size,
                mode: u32::try_from(num("rushesmode")?).ok()?,
                uid: u32::try_from(num("rushesuid")?).ok()?,
                gid: u32::try_from(num("rushesgid")?).ok()?,
                mtime_ns: get("rushesmtimens")?.parse().ok()?,
                blake3: get("rushesblake3")?,
            })
        })())
    }
}

/// The file's facts as object metadata (`x-amz-meta-rushes…` on S3). Names are letters
/// and digits only: Azure takes C# identifiers (no `-`), and proxies drop headers with
/// `_`.
fn attributes(facts: &FileFacts) -> Attributes {
    let mut a = Attributes::new();
    for (k, v) in [
        ("rushesblake3", facts.blake3.clone()),
        ("rushesmode", facts.mode.to_string()),
        ("rushesuid", facts.uid.to_string()),
        ("rushesgid", facts.gid.to_string()),
        ("rushesmtimens", facts.mtime_ns.to_string()),
    ] {
        a.insert(Attribute::Metadata(k.into()), v.into());
    }
    a
}
