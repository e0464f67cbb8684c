//! Targets of copies (`[[target]]` in rushes.toml): added, changed, removed and checked
//! through the API; and copies of files made on them by hand, as jobs, each recorded
//! on its file once proven (`trusted.rushes.copies`), so a file's state (resident,
//! premigrated, dirty) is read from the file itself. Their secrets are never in rushes.toml, the API, the logs or an
//! error: each is sealed (ChaCha20-Poly1305, bound to its target's name) with a key of
//! the box's own, and kept in the state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rushes_api::{
    self as api, AuditCopies, CopyFiles, CopyRecord, CopyState, FileCopies, JobTarget, SetTarget,
    Severity, TargetCheck, TargetEntry, TargetPlace, TargetTerms, TargetView,
};
use rushes_nas::Service;

use crate::core::Core;
use crate::error::{ApiErr, ApiResult};

pub struct Targets {
    core: Arc<Core>,
    nas: Arc<Service>,
    vault: Vault,
    /// Counts changes of targets, so what keeps one open opens it again.
    generation: std::sync::atomic::AtomicU64,
    /// Each target's last check, and what the last reconcile counted on it.
    health: Mutex<BTreeMap<String, api::TargetHealth>>,
    stored: Mutex<BTreeMap<String, api::TargetStored>>,
    /// The rate copies last went to each target, bytes a second (for simulate).
    rates: Mutex<BTreeMap<String, u64>>,
    /// Wakes the watcher when a target is set.
    changed: std::sync::Condvar,
}

/// Where a file's proven copies are recorded: JSON, a proof per target.
pub(crate) const COPIES_XATTR: &str = "trusted.rushes.copies";
/// Files one copy job takes, at most.
const COPY_LIMIT: usize = 1_000_000;

/// Sealed secrets, by target name, and the key that opens them.
struct Vault {
    key: PathBuf,
    sealed: PathBuf,
    /// One change at a time.
    lock: Mutex<()>,
}

/// Bytes as lower-case hex, as the sealed secrets and the backup's header keep them.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex back to bytes; None when it is not whole pairs of hex digits.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Write `bytes` to `path` readable by root alone, whole or not at all.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    crate::state_file::write_private_unplaced(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Vault {
    fn key(&self) -> Result<LessSafeKey, String> {
        let bytes = match std::fs::read(&self.key) {
            Ok(b) if b.len() == 32 => b,
            Ok(_) => {
                return Err(format!(
                    "{} is damaged: the targets' secrets cannot be opened; set each target's secret again",
                    self.key.display()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = vec![0u8; 32];
                SystemRandom::new()
                    .fill(&mut b)
                    .map_err(|_| "no randomness for the secrets' key".to_string())?;
                write_private(&self.key, &b)
                    .map_err(|e| format!("cannot keep {}: {e}", self.key.display()))?;
                b
            }
            Err(e) => return Err(format!("cannot read {}: {e}", self.key.display())),
        };
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| "the secrets' key is not usable".to_string())?;
        Ok(LessSafeKey::new(key))
    }

    fn all(&self) -> BTreeMap<String, String> {
        std::fs::read(&self.sealed)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn has(&self, name: &str) -> bool {
        self.all().contains_key(name)
    }

    fn get(&self, name: &str) -> Result<Option<String>, String> {
        let Some(sealed) = self.all().get(name).and_then(|s| unhex(s)) else {
            return Ok(None);
        };
        if sealed.len() < NONCE_LEN {
            return Err(format!("target {name}'s secret is damaged; set it again"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| format!("target {name}'s secret is damaged; set it again"))?;
        let mut body = body.to_vec();
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut body)
            .map_err(|_| format!("target {name}'s secret cannot be opened (damaged, or sealed with another key); set it again"))?;
        String::from_utf8(plain.to_vec())
            .map(Some)
            .map_err(|_| format!("target {name}'s secret is damaged; set it again"))
    }

    fn put(&self, name: &str, secret: &str) -> Result<(), String> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| "no randomness to seal a secret".to_string())?;
        let mut body = secret.as_bytes().to_vec();
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut body,
            )
            .map_err(|_| "cannot seal the secret".to_string())?;
        let mut all = self.all();
        all.insert(name.to_string(), hex(&[&nonce[..], &body].concat()));
        self.save(&all)
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.all();
        if all.remove(name).is_some() {
            self.save(&all)?;
        }
        Ok(())
    }

    fn save(&self, all: &BTreeMap<String, String>) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(all).map_err(|e| e.to_string())?;
        write_private(&self.sealed, &json)
            .map_err(|e| format!("cannot keep {}: {e}", self.sealed.display()))
    }
}

/// A target's name: what names files and keys, so plain.
fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(
            ApiErr::bad_request(format!("{name:?} is not a target name"))
                .hint("use letters, digits, - and _ (at most 64): wasabi, tape-1"),
        )
    }
}

fn check_place(place: &TargetPlace) -> ApiResult<()> {
    let empty = |what: &str| Err(ApiErr::bad_request(format!("the target's {what} is empty")));
    match place {
        TargetPlace::S3 {
            bucket,
            endpoint,
            access_key,
            fingerprint,
            ..
        } => {
            if bucket.is_empty() {
                return empty("bucket");
            }
            if access_key.is_empty() {
                return empty("access key");
            }
            if let Some(e) = endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(ApiErr::bad_request(format!("{e:?} is not an endpoint"))
                        .hint("give it as a URL: https://s3.example.com or http://10.0.0.5:9000"));
                }
            }
            if let Some(fp) = fingerprint {
                if !rushes_api::tls::same_fingerprint(fp, fp) {
                    return Err(ApiErr::bad_request(format!(
                        "{fp:?} is not a SHA-256 fingerprint"
                    ))
                    .hint("copy it from the other box's `rushesctl s3 show`: 32 bytes in hex, AB:CD:..."));
                }
                if !endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("https://"))
                {
                    return Err(ApiErr::bad_request(
                        "a fingerprint pins an https endpoint's certificate: give --endpoint https://...",
                    ));
                }
            }
        }
        TargetPlace::Gcs { bucket } if bucket.is_empty() => return empty("bucket"),
        TargetPlace::Azure {
            account, container, ..
        } if account.is_empty() || container.is_empty() => return empty("account or container"),
        TargetPlace::Folder { path } => {
            let p = std::path::Path::new(path);
            if !p.is_absolute() || p.parent().is_none() {
                return Err(
                    ApiErr::bad_request(format!("{path:?} is not a folder for copies"))
                        .hint("give the absolute path of a mounted folder other than /: /mnt/ltfs"),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_terms(terms: &TargetTerms) -> ApiResult<()> {
    if let Some(text) = &terms.retention {
        match rushes_api::calendar::parse_span(text) {
            Ok(secs) if secs >= 3600 => {}
            Ok(_) => {
                return Err(
                    ApiErr::bad_request(format!("a retention of {text} is under an hour"))
                        .hint("give it in days or weeks: 30d, 12w"),
                )
            }
            Err(why) => {
                return Err(ApiErr::bad_request(format!("retention {text:?}: {why}"))
                    .hint("give it in days or weeks: 30d, 12w"))
            }
        }
    }
    for (what, price) in [
        ("storage price", terms.price_gb_month),
        ("egress price", terms.egress_price_gb),
    ] {
        if price.is_some_and(|p| !p.is_finite() || p < 0.0) {
            return Err(ApiErr::bad_request(format!(
                "the {what} must be a number of 0 or more"
            )));
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often every target is checked when nothing changes.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl Targets {
    /// Record how target `name` answered, and keep the alerts of targets that cannot
    /// be reached in line with the last check of each.
    fn checked(&self, name: &str, health: api::TargetHealth) {
        lock(&self.health).insert(name.to_string(), health);
        self.publish_health();
    }

    fn publish_health(&self) {
        let known: Vec<String> = self
            .core
            .with_config(|c| c.targets.iter().map(|t| t.name.clone()).collect());
        let mut all = lock(&self.health);
        all.retain(|n, _| known.contains(n));
        let raised = all
            .iter()
            .filter(|(_, h)| !h.ok)
            .map(|(n, h)| {
                crate::alerts::Raise::new(
                    format!("target-unreachable:{n}"),
                    Severity::Warning,
                    format!(
                        "copy target {n} cannot be reached: {}",
                        h.error.as_deref().unwrap_or("no answer")
                    ),
                    format!("check its network, endpoint and credentials (rushesctl target check {n}); copies to it wait, and recalls use other copies"),
                )
            })
            .collect();
        drop(all);
        self.core.alerts.publish("targets", raised);
    }

    /// Keep `secret` sealed under `name` (the S3 endpoint's keys use `s3-key:NAME`,
    /// apart from targets' names, which have no `:`).
    pub(crate) fn seal(&self, name: &str, secret: &str) -> Result<(), String> {
        self.vault.put(name, secret)
    }

    pub(crate) fn unseal(&self, name: &str) -> Result<Option<String>, String> {
        self.vault.get(name)
    }

    pub(crate) fn forget(&self, name: &str) -> Result<(), String> {
        self.vault.remove(name)
    }

    /// Copies went to `target` at `bytes` in `seconds`: its rate for simulate.
    pub(crate) fn measured(&self, target: &str, bytes: u64, seconds: f64) {
        if bytes >= 1 << 20 && seconds > 0.0 {
            lock(&self.rates).insert(target.to_string(), (bytes as f64 / seconds) as u64);
        }
    }

    pub(crate) fn rate(&self, target: &str) -> Option<u64> {
        lock(&self.rates).get(target).copied()
    }

    /// Target `name`'s retention and prices.
    pub(crate) fn terms(&self, name: &str) -> Option<TargetTerms> {
        self.core.with_config(|c| {
            c.targets
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.terms.clone())
        })
    }

    /// What the last reconcile counted on each target.
    pub(crate) fn counted(&self, stored: BTreeMap<String, (u64, u64)>) {
        let now = crate::epoch::now();
        *lock(&self.stored) = stored
            .into_iter()
            .map(|(name, (files, bytes))| {
                (
                    name,
                    api::TargetStored {
                        files,
                        bytes,
                        counted_at: now,
                    },
                )
            })
            .collect();
    }

    /// Check every target now, then every few minutes, and at once when one is set or
    /// removed: the `target-unreachable` alerts follow. Runs on a thread of its own (a
    /// store that does not answer holds a check for up to 20 s).
    pub fn watch(self: Arc<Self>) {
        loop {
            let seen = self.generation();
            let names: Vec<String> = self
                .core
                .with_config(|c| c.targets.iter().map(|t| t.name.clone()).collect());
            for name in names {
                if let Err(e) = self.check(&name) {
                    tracing::debug!(target = %name, error = %e.message, "target gone before its check");
                }
            }
            self.publish_health();
            let mut guard = lock(&self.health);
            while self.generation() == seen {
                let (g, timeout) = self
                    .changed
                    .wait_timeout(guard, WATCH_EVERY)
                    .unwrap_or_else(|p| p.into_inner());
                guard = g;
                if timeout.timed_out() {
                    break;
                }
            }
        }
    }
}

/// Seconds a target keeps copies that are no longer current, when it has a retention.
pub(crate) fn retention_secs(terms: &TargetTerms) -> Option<u64> {
    terms
        .retention
        .as_deref()
        .and_then(|t| rushes_api::calendar::parse_span(t).ok())
}

impl Targets {
    pub fn new(core: Arc<Core>, nas: Arc<Service>) -> Arc<Self> {
        let state = core.paths.state_dir.clone();
        Arc::new(Self {
            nas,
            vault: Vault {
                key: state.join("targets.key"),
                sealed: state.join("targets.sealed"),
                lock: Mutex::new(()),
            },
            core,
            generation: Default::default(),
            health: Default::default(),
            stored: Default::default(),
            rates: Default::default(),
            changed: Default::default(),
        })
    }

    /// Changes when any target is set or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Under the watcher's lock, so it cannot miss the wake-up between its look at
        // the generation and its wait.
        let _watching = lock(&self.health);
        self.changed.notify_all();
    }

    pub fn list(&self) -> Vec<TargetView> {
        self.core
            .with_config(|c| c.targets.clone())
            .into_iter()
            .map(|t| TargetView {
                has_secret: self.vault.has(&t.name),
                health: lock(&self.health).get(&t.name).cloned(),
                stored: lock(&self.stored).get(&t.name).cloned(),
                name: t.name,
                terms: t.terms,
                place: t.place,
            })
            .collect()
    }

    pub fn set(&self, name: &str, req: SetTarget) -> ApiResult<()> {
        check_name(name)?;
        check_place(&req.place)?;
        let known = self.vault.has(name);
        if req.place.needs_secret() && req.secret.is_none() && !known {
            return Err(
                ApiErr::bad_request(format!("target {name} needs its secret"))
                    .hint("rushesctl target set reads it from standard input (--secret-stdin)"),
            );
        }
        if let Some(secret) = &req.secret {
            if secret.is_empty() {
                return Err(ApiErr::bad_request("the secret is empty"));
            }
            self.vault.put(name, secret).map_err(ApiErr::failed)?;
        }
        check_terms(&req.terms)?;
        let entry = TargetEntry {
            name: name.to_string(),
            terms: req.terms,
            place: req.place,
        };
        self.core
            .save_config(|c| match c.targets.iter_mut().find(|t| t.name == name) {
                Some(t) => *t = entry,
                None => c.targets.push(entry),
            })
            .map_err(ApiErr::failed)?;
        self.changed();
        tracing::info!(target = name, "copy target set");
        Ok(())
    }

    pub fn delete(&self, name: &str) -> ApiResult<()> {
        if !self
            .core
            .with_config(|c| c.targets.iter().any(|t| t.name == name))
        {
            return Err(ApiErr::not_found(format!("there is no target {name:?}"))
                .hint("rushesctl target list shows them"));
        }
        self.core
            .save_config(|c| c.targets.retain(|t| t.name != name))
            .map_err(ApiErr::failed)?;
        self.vault.remove(name).map_err(ApiErr::failed)?;
        self.changed();
        tracing::info!(target = name, "copy target removed");
        Ok(())
    }

    /// The target `name`, its secret opened, ready for the copies library.
    /// Target `name`, open: what recalls, reconciles and audits read and write through
    /// (an error in words).
    pub fn open_store(&self, name: &str) -> Result<rushes_copies::Store, String> {
        let target = self.target(name).map_err(|e| e.message)?;
        rushes_copies::Store::open(&target).map_err(|e| e.to_string())
    }

    fn target(&self, name: &str) -> ApiResult<rushes_copies::Target> {
        let entry = self
            .core
            .with_config(|c| c.targets.iter().find(|t| t.name == name).cloned())
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no target {name:?}"))
                    .hint("rushesctl target list shows them")
            })?;
        let secret = self.vault.get(name).map_err(ApiErr::failed)?;
        Ok(rushes_copies::Target {
            name: entry.name,
            place: entry.place,
            secret: secret.map(rushes_copies::Secret::new),
        })
    }

    /// Put a small object on target `name`, prove it and remove it: whether copies
    /// can go there now, and how long a round trip takes.
    pub fn check(&self, name: &str) -> ApiResult<TargetCheck> {
        let target = self.target(name)?;
        let started = Instant::now();
        let result = (|| -> Result<(), String> {
            let store = rushes_copies::Store::open(&target).map_err(|e| e.to_string())?;
            let probe = tempfile_in(&self.core.paths.state_dir).map_err(|e| e.to_string())?;
            // Each check its own object: the watcher's and an admin's may run at once.
            static CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let rel = format!("probe-{}-{n}", std::process::id());
            // Its own runtime: a check comes from the API's blocking threads and from
            // the watcher's thread alike.
            let runtime = job_runtime()?;
            let proof = runtime
                .block_on(store.put_verified(".rushes-check", &rel, &probe.0))
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(store.remove(&proof.key))
                .map_err(|e| e.to_string())
        })();
        // A pinned certificate that does not match fails as "error sending request":
        // say which certificate the endpoint showed instead.
        let result = result.map_err(|e| match pin_mismatch(&target.place) {
            Some(why) => format!("{why} ({e})"),
            None => e,
        });
        let took_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = &result {
            tracing::warn!(target = name, error = %e, "copy target check failed");
        }
        self.checked(
            name,
            api::TargetHealth {
                ok: result.is_ok(),
                checked_at: crate::epoch::now(),
                took_ms,
                error: result.clone().err(),
            },
        );
        Ok(TargetCheck {
            name: name.to_string(),
            ok: result.is_ok(),
            took_ms,
            error: result.err(),
        })
    }
}

/// For an S3 target that pins its endpoint's certificate: whether the endpoint shows
/// another one, in words.
fn pin_mismatch(place: &TargetPlace) -> Option<String> {
    let TargetPlace::S3 {
        endpoint: Some(endpoint),
        fingerprint: Some(pin),
        ..
    } = place
    else {
        return None;
    };
    let url = reqwest::Url::parse(endpoint).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let address = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
    let mut stream = rushes_api::tls::PinnedStream::connect(
        &address,
        Some(pin),
        std::time::Duration::from_secs(5),
    )
    .ok()?;
    // The handshake runs at the first flush; refused, it has seen the certificate.
    let _ = std::io::Write::flush(&mut stream);
    let seen = stream.seen()?;
    (!rushes_api::tls::same_fingerprint(&seen, pin)).then(|| {
        format!("the endpoint's certificate is {seen}, not the pinned {pin}: check the fingerprint with `rushesctl s3 show` on that box")
    })
}

impl Targets {
    /// The folder of share `share`, and `rel` made a path inside it (never outside).
    pub(crate) fn in_share(&self, share: &str, rel: &str) -> ApiResult<(PathBuf, String)> {
        let root = self
            .nas
            .shares()
            .into_iter()
            .find(|s| *s.name == *share)
            .map(|s| s.path.clone())
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no share {share:?}"))
                    .hint("rushesctl shares lists them")
            })?;
        let rel = rel.trim_matches('/');
        let inside = std::path::Path::new(rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            return Err(ApiErr::bad_request(format!(
                "{rel:?} is not a path inside share {share}"
            )));
        }
        Ok((root, rel.to_string()))
    }

    /// Copy `req.paths` of `req.share` to `req.target` as a job: every file (a folder's
    /// files, depth first), each proven and recorded on the file.
    pub fn copy_files(self: &Arc<Self>, req: CopyFiles) -> ApiResult<api::Job> {
        let target = self.target(&req.target)?;
        let (root, files) = self.files_of(&req.share, &req.paths)?;
        let w = self.core.jobs.create(
            "copy-files",
            JobTarget {
                kind: api::TargetKind::Store,
                name: req.target.clone(),
            },
            true,
        );
        let places = Arc::clone(&self.nas.places);
        let share = req.share.clone();
        let me = Arc::clone(self);
        Ok(self.core.jobs.run(w, move |w| {
            let runtime = job_runtime()?;
            let store = rushes_copies::Store::open(&target).map_err(|e| e.to_string())?;
            let started = Instant::now();
            let mut sent = 0u64;
            let total: u64 = files.iter().map(|(_, size)| size).sum();
            let (mut done, mut copied, mut failed) = (0u64, 0usize, Vec::new());
            let store = &store;
            let places = &places;
            let share = share.as_str();
            let root = &root;
            let mut copies =
                futures_util::stream::iter(files.iter().map(|(rel, size)| async move {
                    let home = root.join(rel);
                    let got = copy_one_async(store, places, share, rel, &home).await;
                    (rel, *size, home, got)
                }))
                .buffer_unordered(FILES_IN_FLIGHT);
            w.progress_at(
                &format!("copying to {}", target.name),
                0,
                total,
                "bytes",
                None,
            );
            runtime.block_on(async {
                while let Some((rel, size, home, got)) = copies.next().await {
                    if w.cancelled() {
                        return Err("cancelled".to_string());
                    }
                    match got {
                        Ok(proof) => {
                            sent += size;
                            if let Err(e) = record(&home, proof) {
                                failed.push(format!("{rel}: copied, but {e}"));
                            } else {
                                copied += 1;
                            }
                        }
                        Err(e) => failed.push(format!("{rel}: {e}")),
                    }
                    done += size;
                    w.progress_at(
                        &format!("copying to {}", target.name),
                        done,
                        total,
                        "bytes",
                        None,
                    );
                }
                Ok(())
            })?;
            me.measured(&target.name, sent, started.elapsed().as_secs_f64());
            let summary = format!(
                "{copied} of {} files copied to {} and proven",
                files.len(),
                target.name
            );
            tracing::info!(target = %target.name, copied, failed = failed.len(), "copy job done");
            if failed.is_empty() {
                w.step(&format!("done: {summary}"));
                Ok(())
            } else {
                Err(format!("{summary}; not copied: {}", failed.join("; ")))
            }
        }))
    }

    /// The files `paths` of `share` name (files, or a folder's files), from the share's
    /// folder; refused when a path is outside the share or names nothing.
    pub(crate) fn files_of(
        &self,
        share: &str,
        paths: &[String],
    ) -> ApiResult<(PathBuf, Vec<(String, u64)>)> {
        if paths.is_empty() {
            return Err(
                ApiErr::bad_request("no path given").hint("name files or folders of the share")
            );
        }
        let mut files = Vec::new();
        let mut root = PathBuf::new();
        for p in paths {
            let (r, rel) = self.in_share(share, p)?;
            let found = walk(&r, &rel, COPY_LIMIT.saturating_sub(files.len()));
            if found.is_empty() {
                return Err(ApiErr::not_found(format!(
                    "share {share} has no file at {rel:?}"
                )));
            }
            files.extend(found);
            root = r;
        }
        Ok((root, files))
    }

    /// Read back every recorded copy of the files `req.paths` name, as a job: a copy
    /// still whole is proven again (its time recorded); one changed or gone is dropped
    /// from the file's record and raises an alert, so the file no longer counts it.
    pub fn audit_copies(self: &Arc<Self>, req: AuditCopies) -> ApiResult<api::Job> {
        let (root, files) = self.files_of(&req.share, &req.paths)?;
        let w = self.core.jobs.create(
            "audit-copies",
            JobTarget {
                kind: api::TargetKind::Share,
                name: req.share.clone(),
            },
            true,
        );
        let me = Arc::clone(self);
        Ok(self.core.jobs.run(w, move |w| {
            let runtime = job_runtime()?;
            let mut stores: BTreeMap<String, Result<rushes_copies::Store, String>> =
                BTreeMap::new();
            let (mut proven, mut failed) = (0usize, Vec::new());
            for (i, (rel, _)) in files.iter().enumerate() {
                if w.cancelled() {
                    return Err("cancelled".into());
                }
                w.progress_at(
                    "reading copies back",
                    i as u64,
                    files.len() as u64,
                    "files",
                    None,
                );
                let home = root.join(rel);
                let mut kept = Vec::new();
                for proof in recorded(&home) {
                    let store = store_for(&mut stores, &me, &proof.target);
                    let target = proof.target.clone();
                    match me.reread(&runtime, store.as_ref(), proof, &req.share, rel) {
                        Reread::Proven(proof) => {
                            proven += 1;
                            kept.push(proof);
                        }
                        Reread::Dropped(why) => failed.push(format!("{rel} on {target}: {why}")),
                        Reread::Unreadable(proof, e) => {
                            failed.push(format!("{rel} on {target}: {e}"));
                            kept.push(proof);
                        }
                    }
                }
                if let Err(e) = set_recorded(&home, &kept) {
                    failed.push(format!("{rel}: {e}"));
                }
            }
            let summary = format!("{proven} copies proven again, {} failed", failed.len());
            tracing::info!(share = %req.share, proven, failed = failed.len(), "copy audit done");
            if failed.is_empty() {
                w.step(&format!("done: {summary}"));
                Ok(())
            } else {
                Err(format!("{summary}: {}", failed.join("; ")))
            }
        }))
    }

    /// Read the copy `proof` of `share`'s file `rel` back from `store`: proven again
    /// (its time now), changed or gone (a critical alert is raised and it no longer
    /// counts), or not readable now (kept as it was).
    pub(crate) fn reread(
        &self,
        runtime: &tokio::runtime::Runtime,
        store: Result<&rushes_copies::Store, &String>,
        mut proof: rushes_copies::Proof,
        share: &str,
        rel: &str,
    ) -> Reread {
        let outcome = match store {
            Ok(store) => runtime
                .block_on(store.audit(&proof))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match outcome {
            Ok(rushes_copies::Audit::Proven) => {
                proof.proven_at = crate::epoch::now();
                Reread::Proven(proof)
            }
            Ok(bad) => {
                let why = match bad {
                    rushes_copies::Audit::Changed(why) => why,
                    _ => "it is gone from the target".to_string(),
                };
                self.core.alerts.raise_event(
                    "copies",
                    copy_failed(&proof, &format!("{share}/{rel}"), "its audit", &why),
                );
                Reread::Dropped(why)
            }
            Err(e) => Reread::Unreadable(proof, e),
        }
    }

    /// What `share`'s file `path` has of copies, and where it stands.
    pub fn copies_of(&self, share: &str, path: &str) -> ApiResult<FileCopies> {
        let (root, rel) = self.in_share(share, path)?;
        let home = root.join(&rel);
        let meta = std::fs::metadata(&home)
            .map_err(|e| ApiErr::not_found(format!("share {share} has no file at {rel:?}: {e}")))?;
        let mtime_ns = {
            use std::os::unix::fs::MetadataExt;
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
        };
        let copies: Vec<CopyRecord> = recorded(&home)
            .into_iter()
            .map(|p| CopyRecord {
                current: p.facts.size == meta.len() && p.facts.mtime_ns == mtime_ns,
                target: p.target,
                key: p.key,
                size: p.facts.size,
                blake3: p.facts.blake3,
                proven_at: p.proven_at,
            })
            .collect();
        let released = std::fs::File::open(&home).ok().is_some_and(|f| {
            rushes_placement::stub::is_released(std::os::fd::AsFd::as_fd(&f)).unwrap_or(false)
        });
        let state = if released {
            CopyState::Migrated
        } else if copies.is_empty() {
            CopyState::Resident
        } else if copies.iter().any(|c| c.current) {
            CopyState::Premigrated
        } else {
            CopyState::Dirty
        };
        Ok(FileCopies {
            share: share.into(),
            path: rel,
            state,
            copies,
        })
    }
}

/// The alert for a copy that gave other bytes than were proven, or is gone, found by
/// `found_by` (an audit, a recall): it no longer counts.
pub(crate) fn copy_failed(
    proof: &rushes_copies::Proof,
    file: &str,
    found_by: &str,
    why: &str,
) -> crate::alerts::Raise {
    crate::alerts::Raise::new(
        format!("copy-failed:{}:{}", proof.target, proof.key),
        Severity::Critical,
        format!(
            "The copy of {file} on {} failed {found_by}: {why}; it no longer counts",
            proof.target
        ),
        "copy the file again (rushesctl copy), and find out who changed the target",
    )
}

/// Target `name`, opened once for the whole of a job.
pub(crate) fn store_for<'a>(
    stores: &'a mut BTreeMap<String, Result<rushes_copies::Store, String>>,
    targets: &Targets,
    name: &str,
) -> &'a Result<rushes_copies::Store, String> {
    stores
        .entry(name.to_string())
        .or_insert_with(|| targets.open_store(name))
}

/// What reading a recorded copy back found.
pub(crate) enum Reread {
    /// Whole: proven again now.
    Proven(rushes_copies::Proof),
    /// Changed or gone, with why: it no longer counts.
    Dropped(String),
    /// The target could not be read now: neither proven again nor dropped.
    Unreadable(rushes_copies::Proof, String),
}

/// Regular files at `rel` under `root` (a file, or a folder's files as the catalog
/// walks them, hidden ones left), with sizes.
fn walk(root: &std::path::Path, rel: &str, limit: usize) -> Vec<(String, u64)> {
    let path = root.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => vec![(rel.to_string(), meta.len())],
        // Hidden files are left, as hidden folders are by the walk.
        Ok(meta) if meta.is_dir() => rushes_catalog::extract::walk(&path, limit)
            .into_iter()
            .filter(|(under, _, _)| !under.rsplit('/').next().unwrap_or("").starts_with('.'))
            .map(|(under, size, _)| match rel {
                "" => (under, size),
                _ => (format!("{rel}/{under}"), size),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A runtime for a job's talk with targets (jobs run on threads of their own).
pub(crate) fn job_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the job's runtime: {e}"))
}

/// Copy one file, reading its bytes where placement keeps them, under a ticket.
pub(crate) fn copy_one(
    runtime: &tokio::runtime::Runtime,
    store: &rushes_copies::Store,
    places: &Arc<rushes_placement::DataPlaces>,
    share: &str,
    rel: &str,
    home: &std::path::Path,
) -> Result<rushes_copies::Proof, String> {
    runtime.block_on(copy_one_async(store, places, share, rel, home))
}

/// [`copy_one`], for a job with several files in flight.
pub(crate) async fn copy_one_async(
    store: &rushes_copies::Store,
    places: &Arc<rushes_placement::DataPlaces>,
    share: &str,
    rel: &str,
    home: &std::path::Path,
) -> Result<rushes_copies::Proof, String> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(home).map_err(|e| format!("cannot open it: {e}"))?;
    let read = rushes_placement::layout::read_data(Some(places), file)
        .map_err(|e| format!("cannot reach its data: {e}"))?;
    let data = PathBuf::from(format!("/proc/self/fd/{}", read.file.as_raw_fd()));
    store
        .put_verified_from(share, rel, home, &data)
        .await
        .map_err(|e| e.to_string())
}

/// Files a copy job sends at once: small files are round trips more than bytes.
const FILES_IN_FLIGHT: usize = 4;

/// The copies a walked file records (its [`COPIES_XATTR`]).
pub(crate) fn recorded_in(facts: &rushes_placement::FileFacts) -> Vec<rushes_copies::Proof> {
    facts
        .xattr(COPIES_XATTR)
        .and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or_default()
}

/// Whether `proof` is a copy of the walked file as it is now (its size and modify time).
pub(crate) fn is_current(
    proof: &rushes_copies::Proof,
    facts: &rushes_placement::FileFacts,
) -> bool {
    proof.facts.size == facts.size && proof.facts.mtime_ns == facts.modified_ns()
}

/// How many of `targets` hold a current copy of the walked file, by `proofs`.
pub(crate) fn current_on(
    targets: &[String],
    proofs: &[rushes_copies::Proof],
    facts: &rushes_placement::FileFacts,
) -> u32 {
    targets
        .iter()
        .filter(|t| {
            proofs
                .iter()
                .any(|p| &p.target == *t && is_current(p, facts))
        })
        .count() as u32
}

/// The proofs recorded on the file at `home`.
pub(crate) fn recorded(home: &std::path::Path) -> Vec<rushes_copies::Proof> {
    open_for_xattrs(home)
        .map(|f| recorded_fd(std::os::fd::AsFd::as_fd(&f)))
        .unwrap_or_default()
}

/// The file at `home`, opened to read and set its xattrs (never a FIFO's wait).
fn open_for_xattrs(home: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(home)
}

/// The proofs recorded on the file open at `fd`.
pub(crate) fn recorded_fd(fd: std::os::fd::BorrowedFd<'_>) -> Vec<rushes_copies::Proof> {
    let mut buf = vec![0u8; 64 << 10];
    match rustix::fs::fgetxattr(fd, COPIES_XATTR, &mut buf) {
        Ok(n) => serde_json::from_slice(&buf[..n]).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The proofs on the file open at `fd` become `all`.
pub(crate) fn set_recorded_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    all: &[rushes_copies::Proof],
) -> Result<(), String> {
    if all.is_empty() {
        return match rustix::fs::fremovexattr(fd, COPIES_XATTR) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
            Err(e) => Err(format!("cannot update the file's copies: {e}")),
        };
    }
    let json = serde_json::to_vec(all).map_err(|e| e.to_string())?;
    rustix::fs::fsetxattr(fd, COPIES_XATTR, &json, rustix::fs::XattrFlags::empty())
        .map_err(|e| format!("cannot record the copies on the file: {e}"))
}

/// Record `proof` on the file at `home`, in place of that target's earlier one.
pub(crate) fn record(home: &std::path::Path, proof: rushes_copies::Proof) -> Result<(), String> {
    let mut all = recorded(home);
    all.retain(|p| p.target != proof.target);
    all.push(proof);
    set_recorded(home, &all)
}

/// The proofs on the file at `home` become `all`.
pub(crate) fn set_recorded(
    home: &std::path::Path,
    all: &[rushes_copies::Proof],
) -> Result<(), String> {
    let file = open_for_xattrs(home).map_err(|e| format!("cannot open it: {e}"))?;
    set_recorded_fd(std::os::fd::AsFd::as_fd(&file), all)
}

/// A small file of random bytes that goes when dropped.
struct Probe(PathBuf);

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_in(dir: &std::path::Path) -> std::io::Result<Probe> {
    let mut bytes = vec![0u8; 4096];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("no randomness"))?;
    let path = dir.join(format!(".target-probe-{}", hex(&bytes[..8])));
    std::fs::write(&path, &bytes)?;
    Ok(Probe(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_sealed_bound_to_their_name_and_never_kept_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault {
            key: dir.path().join("targets.key"),
            sealed: dir.path().join("targets.sealed"),
            lock: Mutex::new(()),
        };
        vault.put("wasabi", "wJalrXUtnFEMI/K7MDENG").unwrap();
        assert_eq!(
            vault.get("wasabi").unwrap().as_deref(),
            Some("wJalrXUtnFEMI/K7MDENG")
        );
        assert_eq!(vault.get("other").unwrap(), None);
        let on_disk = std::fs::read_to_string(&vault.sealed).unwrap();
        assert!(!on_disk.contains("wJalrXUtnFEMI"), "{on_disk}");
        // Moved to another target's name, it does not open.
        let mut all = vault.all();
        let sealed = all.remove("wasabi").unwrap();
        all.insert("tape".into(), sealed);
        vault.save(&all).unwrap();
        assert!(vault.get("tape").unwrap_err().contains("cannot be opened"));
        use std::os::unix::fs::PermissionsExt;
        for f in [&vault.key, &vault.sealed] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
}
