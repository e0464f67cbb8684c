//! Config backup and restore: one file with the box's settings, pools, shares, accounts
//! (web and SMB passwords), rules, targets with their sealed secrets, API tokens, the
//! web certificate and the file-handle key, all sealed under a passphrase (argon2id,
//! then ChaCha20-Poly1305). Restored onto a fresh box, the pools are found again by the
//! md and XFS labels rushes.toml names, and every share and account comes back.
//!
//! The file: a text line `rushes-config-backup`, one line of JSON (format, version, when,
//! host, the KDF's salt and costs, the nonce), then the sealed tar, with the header as
//! the associated data so nothing of it can be changed either. A restore reads and checks
//! everything, in memory and bounded, before it writes a byte; then it replaces each file
//! by rename, and rushesd starts again on them.

use std::io::Read;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use rushes_api as api;

use crate::core::Core;
use crate::error::{ApiErr, ApiResult};
use crate::targets::{hex, unhex};

const MAGIC: &str = "rushes-config-backup";
/// The newest backup format this build reads and the one it writes: 2 compresses the
/// tar with zstd before sealing it (Samba's databases are mostly empty pages, and the
/// web console sends files of up to 760 KiB); 1 sealed the tar as it was.
const FORMAT: u32 = 2;
/// The largest backup taken (a restore holds it in memory).
const MAX_BACKUP: usize = 64 << 20;
/// The shortest passphrase of a backup saved into a share, where others can copy it.
const SHARED_PASSPHRASE: usize = 12;
/// The largest file in one.
const MAX_FILE: u64 = 16 << 20;
/// The state files a backup carries, relative to the state folder; and every file of
/// Samba's private folder (its password database).
/// The pools' scrub records and measured read rates come too, so a restored box does
/// not scrub and measure every pool at once.
const FILES: [&str; 9] = [
    "rushes.toml",
    "scrubs.json",
    "pool-read-rates.json",
    "api-tokens.json",
    "targets.key",
    "targets.sealed",
    "handle.key",
    "web/web-certificate.pem",
    "web/web-key.pem",
];
const SAMBA: &str = "samba";

/// The state files of a backup: each name (relative to the state folder) and its bytes.
type Files = Vec<(String, Vec<u8>)>;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    format: u32,
    version: String,
    created: u64,
    host: String,
    salt: String,
    nonce: String,
    m_kib: u32,
    t: u32,
    p: u32,
}

fn refused(why: impl Into<String>) -> ApiErr {
    ApiErr::new(422, "backup-refused", why).hint("nothing was changed")
}

fn key(passphrase: &str, h: &Header) -> ApiResult<LessSafeKey> {
    let salt = unhex(&h.salt)
        .filter(|salt| salt.len() <= 64)
        .ok_or_else(|| refused("the backup's header is damaged (salt)"))?;
    // Costs are bounded, so a crafted header cannot make the box spend minutes or GiBs.
    if h.m_kib > 256 * 1024 || h.t > 10 || h.p == 0 || h.p > 8 {
        return Err(refused(
            "the backup's key costs are out of range: it was not made by a Rushes box",
        ));
    }
    let params = argon2::Params::new(h.m_kib, h.t, h.p, Some(32))
        .map_err(|e| refused(format!("the backup's key costs are not usable: {e}")))?;
    let mut bytes = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, &mut bytes)
        .map_err(|e| ApiErr::failed(format!("cannot derive the backup key: {e}")))?;
    let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
        .map_err(|_| ApiErr::failed("cannot make the backup key"))?;
    Ok(LessSafeKey::new(key))
}

fn check_passphrase(p: &str) -> ApiResult<()> {
    if p.chars().count() < 8 {
        return Err(
            ApiErr::bad_request("the passphrase is shorter than 8 characters")
                .hint("a restore asks for it again: keep it apart from the file"),
        );
    }
    Ok(())
}

/// Where the file a backup calls `name` lives: rushes.toml where the config store keeps
/// it (on the appliance `/cfg/rushes.toml`, beside the state folder), the rest in the
/// state folder.
fn place(core: &Core, name: &str) -> PathBuf {
    if name == "rushes.toml" {
        core.config_path().to_path_buf()
    } else {
        core.paths.state_dir.join(name)
    }
}

/// The files of the state folder that go in, with their bytes.
fn gather(core: &Core) -> ApiResult<Files> {
    let state = &core.paths.state_dir;
    let mut out = Vec::new();
    let mut names: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    if let Ok(rd) = std::fs::read_dir(state.join(SAMBA)) {
        let mut samba: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| format!("{SAMBA}/{}", e.file_name().to_string_lossy()))
            .collect();
        samba.sort();
        names.extend(samba);
    }
    for name in names {
        match std::fs::read(place(core, &name)) {
            Ok(bytes) => out.push((name, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiErr::failed(format!("cannot read {name}: {e}"))),
        }
    }
    if !out.iter().any(|(n, _)| n == "rushes.toml") {
        return Err(
            ApiErr::new(409, "nothing-to-back-up", "this box has no settings yet")
                .hint("set it up first (the console's wizard)"),
        );
    }
    Ok(out)
}

/// A name a restore may write: one of [`FILES`], or a plain file name in Samba's folder.
fn allowed(name: &str) -> bool {
    FILES.contains(&name)
        || name.strip_prefix("samba/").is_some_and(|f| {
            !f.is_empty() && !f.contains('/') && f != "." && f != ".." && !f.starts_with('.')
        })
}

/// Seal `files` into a backup file of `format` (FORMAT for every backup made; 1 only in
/// tests) under `passphrase`, its header saying `version`.
fn seal(
    format: u32,
    files: &[(String, Vec<u8>)],
    version: &str,
    host: &str,
    now: u64,
    passphrase: &str,
) -> ApiResult<Vec<u8>> {
    let tar = crate::state_file::tar_of(files, "", 0o600, now)
        .map_err(|e| ApiErr::failed(format!("cannot pack the backup: {e}")))?;
    let mut plain = if format >= 2 {
        zstd::encode_all(&tar[..], 9)
            .map_err(|e| ApiErr::failed(format!("cannot compress the backup: {e}")))?
    } else {
        tar
    };
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; NONCE_LEN];
    rustix::rand::getrandom(&mut salt, rustix::rand::GetRandomFlags::empty())
        .and_then(|_| rustix::rand::getrandom(&mut nonce, rustix::rand::GetRandomFlags::empty()))
        .map_err(|e| ApiErr::failed(format!("no random numbers: {e}")))?;
    let header = Header {
        format,
        version: version.into(),
        created: now,
        host: host.into(),
        salt: hex(&salt),
        nonce: hex(&nonce),
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    let header_line = serde_json::to_string(&header).map_err(|e| ApiErr::failed(e.to_string()))?;
    key(passphrase, &header)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header_line.as_bytes()),
            &mut plain,
        )
        .map_err(|_| ApiErr::failed("cannot seal the backup"))?;
    let mut out = format!("{MAGIC}\n{header_line}\n").into_bytes();
    out.extend_from_slice(&plain);
    Ok(out)
}

pub fn backup(
    core: &Core,
    shares: &crate::shares::Shares,
    host: &str,
    req: api::ConfigBackup,
) -> ApiResult<api::ConfigBackupFile> {
    use base64::Engine;
    check_passphrase(&req.passphrase)?;
    if req.share.is_some() && req.passphrase.chars().count() < SHARED_PASSPHRASE {
        return Err(ApiErr::bad_request(format!(
            "a backup left in a share needs a passphrase of {SHARED_PASSPHRASE} characters at least"
        ))
        .hint("the share's clients can copy the file and try passphrases on it at leisure"));
    }
    let folder = req
        .share
        .as_deref()
        .map(|name| shares.served_folder(name))
        .transpose()?;
    let files = gather(core)?;
    let now = crate::epoch::now();
    let out = seal(
        FORMAT,
        &files,
        env!("CARGO_PKG_VERSION"),
        host,
        now,
        &req.passphrase,
    )?;
    let stamp = crate::epoch::file_stamp(now);
    let name = format!("rushes-config-{host}-{stamp}.backup");
    let saved_as = match folder {
        Some(folder) => {
            let path = folder.join(&name);
            save_sealed(&path, &out).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ApiErr::new(
                        409,
                        "backup-exists",
                        format!("{} is there already", path.display()),
                    )
                    .hint("backups are named by the second: make it again in a moment")
                } else {
                    ApiErr::failed(format!("cannot save the backup as {}: {e}", path.display()))
                        .hint("is the pool full or read-only? `rushesctl pools` says")
                }
            })?;
            Some(path.display().to_string())
        }
        None => None,
    };
    tracing::info!(
        files = files.len(),
        bytes = out.len(),
        saved_as = saved_as.as_deref().unwrap_or(""),
        "config backup made"
    );
    Ok(api::ConfigBackupFile {
        name,
        files: files.into_iter().map(|(n, _)| n).collect(),
        bytes: out.len() as u64,
        content: base64::engine::general_purpose::STANDARD.encode(&out),
        saved_as,
    })
}

/// Write a sealed backup into a share, whole or not at all: a client that lists the
/// folder never sees half of one. Readable by the share's clients (it is sealed),
/// never replacing a file already there.
fn save_sealed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // A name of this call's own: two backups at once never share (or remove) one.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{call}.part", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)?;
    let written = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        // The new name itself survives a power cut once the folder is synced.
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

fn too_large() -> ApiErr {
    refused(format!(
        "the backup is larger than {} MiB: it is not one this box made",
        MAX_BACKUP >> 20
    ))
}

/// The backup a restore names: sent whole (base64), or read by the box from a path or
/// URL; at most [`MAX_BACKUP`] bytes either way, checked before they are held.
fn backup_bytes(req: &api::ConfigRestore) -> ApiResult<Vec<u8>> {
    use base64::Engine;
    match (req.content.is_empty(), req.source.as_deref()) {
        (false, None) => {
            if req.content.len() > MAX_BACKUP / 3 * 4 + 4 {
                return Err(too_large());
            }
            base64::engine::general_purpose::STANDARD
                .decode(&req.content)
                .map_err(|e| refused(format!("the backup did not come whole: {e}")))
        }
        (true, Some(source)) => {
            let mut raw = Vec::new();
            crate::update::open_source(
                source,
                "backup",
                "/pools/media/admin/rushes-config-edit-bay-20261205-093000.backup",
            )?
            .take(MAX_BACKUP as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(|e| ApiErr::failed(format!("cannot read the backup at {source}: {e}")))?;
            if raw.len() > MAX_BACKUP {
                return Err(too_large());
            }
            Ok(raw)
        }
        (false, Some(_)) => Err(ApiErr::bad_request(
            "a restore takes the backup's content or its source, not both",
        )),
        (true, None) => Err(ApiErr::bad_request("no backup given")
            .hint("send the file as content (base64), or give its source: a path on the box or an http(s) URL")),
    }
}

/// Check a backup whole; the files it would write.
fn open(raw: &[u8], passphrase: &str) -> ApiResult<(Header, Files)> {
    let rest = raw
        .strip_prefix(format!("{MAGIC}\n").as_bytes())
        .ok_or_else(|| refused("this is not a Rushes config backup"))?;
    let end = rest
        .iter()
        .take(4096)
        .position(|b| *b == b'\n')
        .ok_or_else(|| refused("the backup's header is damaged"))?;
    let header_line = &rest[..end];
    let header: Header = serde_json::from_slice(header_line)
        .map_err(|e| refused(format!("the backup's header is damaged: {e}")))?;
    if header.format > FORMAT {
        return Err(refused(format!(
            "the backup is format {} (made by version {}), newer than this box reads ({FORMAT}): update the box first",
            header.format, header.version
        )));
    }
    if rushes_update::compare_versions(&header.version, env!("CARGO_PKG_VERSION"))
        == std::cmp::Ordering::Greater
    {
        return Err(refused(format!(
            "the backup was made by version {}, newer than this box's {}: update the box first",
            header.version,
            env!("CARGO_PKG_VERSION")
        )));
    }
    let nonce: [u8; NONCE_LEN] = unhex(&header.nonce)
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| refused("the backup's header is damaged (nonce)"))?;
    let mut sealed = rest[end + 1..].to_vec();
    let opening = key(passphrase, &header)?;
    let plain = opening
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header_line),
            &mut sealed,
        )
        .map_err(|_| refused("the passphrase is wrong, or the backup was changed or damaged"))?;
    let unpacked;
    let tar: &[u8] = if header.format >= 2 {
        // Bounded as the file was: a small file that unpacks to gigabytes is refused.
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(&plain[..])
            .and_then(|d| d.take(MAX_BACKUP as u64 + 1).read_to_end(&mut out))
            .map_err(|e| refused(format!("the backup's contents do not unpack: {e}")))?;
        if out.len() > MAX_BACKUP {
            return Err(refused(format!(
                "the backup unpacks to more than {} MiB: it is not one this box made",
                MAX_BACKUP >> 20
            )));
        }
        unpacked = out;
        &unpacked
    } else {
        plain
    };
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| refused(format!("the backup's contents do not read: {e}")))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| refused(format!("the backup's contents do not read: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| refused(format!("a name in the backup does not read: {e}")))?
            .to_string_lossy()
            .into_owned();
        if !allowed(&name) {
            return Err(refused(format!(
                "the backup holds {name:?}, which no backup holds"
            )));
        }
        if entry.size() > MAX_FILE {
            return Err(refused(format!(
                "{name} in the backup is larger than {} MiB",
                MAX_FILE >> 20
            )));
        }
        let mut bytes = Vec::new();
        entry
            .take(MAX_FILE)
            .read_to_end(&mut bytes)
            .map_err(|e| refused(format!("{name} in the backup does not read: {e}")))?;
        files.push((name, bytes));
    }
    let config = files
        .iter()
        .find(|(n, _)| n == "rushes.toml")
        .ok_or_else(|| refused("the backup holds no rushes.toml"))?;
    let text = std::str::from_utf8(&config.1)
        .map_err(|_| refused("rushes.toml in the backup is not text"))?;
    crate::config::ApplianceConfig::parse(text)
        .map_err(|e| refused(format!("rushes.toml in the backup is not valid: {e}")))?;
    Ok((header, files))
}

/// Put a backup's files in place. Everything is checked first; each file is then
/// written beside its place and renamed over it.
pub fn restore(core: &Core, req: api::ConfigRestore) -> ApiResult<api::ConfigRestored> {
    let (header, files) = open(&backup_bytes(&req)?, &req.passphrase)?;
    let mut written: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (name, bytes) in &files {
        let path = place(core, name);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".restoring");
        let tmp = PathBuf::from(tmp);
        if let Err(e) = crate::state_file::write_private_unplaced(&tmp, bytes) {
            for (tmp, _) in &written {
                let _ = std::fs::remove_file(tmp);
            }
            let _ = std::fs::remove_file(&tmp);
            return Err(
                ApiErr::failed(format!("cannot write {name}: {e}")).hint("nothing was changed")
            );
        }
        written.push((tmp, path));
    }
    for (tmp, path) in &written {
        std::fs::rename(tmp, path)
            .map_err(|e| ApiErr::failed(format!("cannot put {} in place: {e}", path.display())))?;
    }
    tracing::warn!(from_host = %header.host, from_version = %header.version, files = files.len(), "config restored from a backup: rushesd starts again on it");
    let restart = core.paths.appliance;
    if restart {
        // init restarts rushesd, which then reads the restored files (and assembles the
        // pools they name); the answer goes out first.
        let _ = std::thread::Builder::new()
            .name("restart".into())
            .spawn(|| {
                std::thread::sleep(std::time::Duration::from_secs(2));
                std::process::exit(0);
            });
    }
    Ok(api::ConfigRestored {
        files: files.into_iter().map(|(n, _)| n).collect(),
        from_host: header.host,
        from_version: header.version,
        created: header.created,
        restarting: restart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(files: &[(&str, &str)], version: &str) -> Vec<u8> {
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(n, b)| (n.to_string(), b.as_bytes().to_vec()))
            .collect();
        seal(
            FORMAT,
            &files,
            version,
            "edit-bay-nas",
            1_796_000_000,
            "correct horse",
        )
        .unwrap()
    }

    #[test]
    fn a_backup_opens_with_its_passphrase_only_and_newer_or_odd_ones_are_refused() {
        let config = "schema = 2\nhostname = \"edit-bay-nas\"\n";
        let good = sealed(
            &[("rushes.toml", config), ("samba/passdb.tdb", "tdb")],
            env!("CARGO_PKG_VERSION"),
        );
        let (header, files) = open(&good, "correct horse").unwrap();
        assert_eq!(header.host, "edit-bay-nas");
        assert_eq!(files[0], ("rushes.toml".into(), config.as_bytes().to_vec()));
        let msg = |r: ApiResult<(Header, Files)>| r.err().expect("refused").message;
        assert!(msg(open(&good, "wrong horse")).contains("passphrase is wrong"));
        let future = sealed(&[("rushes.toml", config)], "99.0.0");
        assert!(msg(open(&future, "correct horse")).contains("newer than this box's"));
        let escape = sealed(
            &[("rushes.toml", config), ("etc/shadow", "x")],
            env!("CARGO_PKG_VERSION"),
        );
        assert!(msg(open(&escape, "correct horse")).contains("which no backup holds"));
        let bad_config = sealed(&[("rushes.toml", "schema = [")], env!("CARGO_PKG_VERSION"));
        assert!(msg(open(&bad_config, "correct horse")).contains("not valid"));
        assert!(msg(open(b"not a backup", "correct horse")).contains("not a Rushes config backup"));
    }

    #[test]
    fn a_restore_takes_the_file_sent_or_one_the_box_reads_and_never_both() {
        use base64::Engine;
        let good = sealed(
            &[("rushes.toml", "schema = 2\n")],
            env!("CARGO_PKG_VERSION"),
        );
        let req = |content: &[u8], source: Option<&std::path::Path>| api::ConfigRestore {
            content: base64::engine::general_purpose::STANDARD.encode(content),
            source: source.map(|p| p.display().to_string()),
            passphrase: "correct horse".into(),
        };
        assert_eq!(backup_bytes(&req(&good, None)).unwrap(), good);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rushes-config-nas.backup");
        std::fs::write(&file, &good).unwrap();
        assert_eq!(backup_bytes(&req(b"", Some(&file))).unwrap(), good);
        let msg = |r: ApiResult<Vec<u8>>| r.expect_err("refused").message;
        assert!(msg(backup_bytes(&req(&good, Some(&file)))).contains("not both"));
        assert!(msg(backup_bytes(&req(b"", None))).contains("no backup given"));
        assert!(
            msg(backup_bytes(&req(b"", Some(&dir.path().join("gone"))))).contains("cannot open")
        );
        let relative = api::ConfigRestore {
            source: Some("rushes-config-nas.backup".into()),
            ..req(b"", None)
        };
        assert!(msg(backup_bytes(&relative)).contains("neither an absolute path"));
        // A FIFO is refused, not waited on.
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(msg(backup_bytes(&req(b"", Some(&fifo)))).contains("is not a file"));
        // A file too large to be a backup is refused after MAX_BACKUP bytes, not held.
        let huge = dir.path().join("huge");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(MAX_BACKUP as u64 + 1)
            .unwrap();
        assert!(msg(backup_bytes(&req(b"", Some(&huge)))).contains("larger than 64 MiB"));
    }

    #[test]
    fn backups_are_compressed_and_the_first_format_still_opens() {
        let config = "schema = 2\nhostname = \"edit-bay-nas\"\n";
        // Samba's databases: a few records in pages of zeros.
        let mut tdb = vec![0u8; 800 << 10];
        tdb[..3].copy_from_slice(b"tdb");
        let files = vec![
            ("rushes.toml".to_string(), config.as_bytes().to_vec()),
            ("samba/passdb.tdb".to_string(), tdb.clone()),
        ];
        let now = seal(
            FORMAT,
            &files,
            env!("CARGO_PKG_VERSION"),
            "nas",
            1,
            "correct horse",
        )
        .unwrap();
        assert!(now.len() < 64 << 10, "{} bytes", now.len());
        let first = seal(1, &files, "0.1.0", "nas", 1, "correct horse").unwrap();
        assert!(first.len() > 800 << 10);
        for sealed in [now, first] {
            let (_, back) = open(&sealed, "correct horse").unwrap();
            assert_eq!(back[1], ("samba/passdb.tdb".to_string(), tdb.clone()));
        }
    }

    #[test]
    fn only_the_backups_own_files_may_be_written() {
        for ok in ["rushes.toml", "web/web-key.pem", "samba/passdb.tdb"] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "../etc/passwd",
            "samba/../rushes.toml",
            "samba/",
            "samba/.x",
            "etc/shadow",
            "/rushes.toml",
            "samba/a/b",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
    }
}
