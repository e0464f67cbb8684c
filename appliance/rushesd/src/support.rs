//! The support bundle: one file a facility sends when it asks for help. It holds what
//! someone helping needs (versions and boot slots, the supervisor's log, rushes.toml with
//! every secret removed, disks with their SMART, pools, shares, accounts without their
//! passwords, targets without their secrets, alerts, jobs, the network, md's and the
//! mounts' state) and never a password, key, hash or token: the config is scrubbed by
//! the names of its keys, and the files that hold secrets (tokens, sealed secrets, the
//! certificate's key, the handle key) are never read.

use std::io::Write;

use rushes_api as api;

use crate::daemon::Daemon;
use crate::error::{ApiErr, ApiResult};

/// A config key whose value is a secret when its name holds one of these.
const SECRET_WORDS: [&str; 6] = ["password", "secret", "token", "hash", "key", "credential"];
/// What a removed value reads as.
const REMOVED: &str = "(removed for the support bundle)";

fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// Every value under a secret-sounding key, at any depth, replaced.
fn scrub(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                if secret_name(k) {
                    *v = toml::Value::String(REMOVED.into());
                } else {
                    scrub(v);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// rushes.toml as it is on disk with its secrets removed; a file that does not parse is
/// left out whole (it could hold anything), with a line saying so.
pub fn scrubbed_config(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(table) => {
            let mut value = toml::Value::Table(table);
            scrub(&mut value);
            toml::to_string(&value)
                .unwrap_or_else(|e| format!("# cannot write the scrubbed config: {e}\n"))
        }
        Err(e) => format!(
            "# rushes.toml does not parse ({}); left out, since it may hold secrets\n",
            e.message()
        ),
    }
}

/// The same for what the API answers: a target's access key id, say, goes too.
fn scrub_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if secret_name(k) && !v.is_null() && !v.is_boolean() {
                    *v = serde_json::Value::String(REMOVED.into());
                } else {
                    scrub_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_json),
        _ => {}
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut value = serde_json::to_value(v).unwrap_or_default();
    scrub_json(&mut value);
    let mut out = serde_json::to_vec_pretty(&value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// What goes in, file by file.
fn contents(d: &Daemon) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let status = d.system.status();
    let uname = rustix::system::uname();
    let update = d.updates.status();
    files.push((
        "versions.txt".into(),
        format!(
            "rushesd {}\nimage {} ({})\nrunning slot {}\nkernel {} {}\nhost {}\nup {} s\n",
            status.version,
            update.version,
            update.model,
            update.running_slot.as_deref().unwrap_or("-"),
            uname.sysname().to_string_lossy(),
            uname.release().to_string_lossy(),
            status.hostname,
            status.uptime_secs,
        )
        .into_bytes(),
    ));
    files.push(("update.json".into(), json(&update)));
    let config = std::fs::read_to_string(d.core.config_path()).unwrap_or_default();
    files.push(("rushes.toml".into(), scrubbed_config(&config).into_bytes()));
    let log = d.system.logs(None, 4000);
    files.push(("log.txt".into(), log.lines.join("\n").into_bytes()));
    files.push(("disks.json".into(), json(&d.pools.disks())));
    files.push(("pools.json".into(), json(&d.pools.pools())));
    files.push(("shares.json".into(), json(&d.shares.shares())));
    files.push(("users.json".into(), json(&d.smb.users())));
    files.push(("targets.json".into(), json(&d.targets.list())));
    files.push(("alerts.json".into(), json(&d.alerts())));
    files.push(("alerts-history.json".into(), json(&d.core.alerts.history())));
    files.push(("jobs.json".into(), json(&d.core.jobs.list())));
    files.push(("network.json".into(), json(&d.system.nics())));
    files.push(("settings.json".into(), json(&d.system.settings())));
    files.push(("card.json".into(), json(&d.card.card_status())));
    for (name, path) in [
        ("mdstat.txt", "/proc/mdstat"),
        ("mounts.txt", "/proc/mounts"),
    ] {
        if let Ok(bytes) = std::fs::read(path) {
            files.push((name.into(), bytes));
        }
    }
    files
}

/// Make the bundle (a zstd-compressed tar).
pub fn bundle(d: &Daemon) -> ApiResult<api::SupportBundle> {
    use base64::Engine;
    let now = crate::epoch::now();
    let files = contents(d);
    let failed = |e: std::io::Error| ApiErr::failed(format!("cannot make the support bundle: {e}"));
    let tar = crate::state_file::tar_of(&files, "rushes-support/", 0o644, now).map_err(failed)?;
    let mut encoder = zstd::Encoder::new(Vec::new(), 9).map_err(failed)?;
    encoder.write_all(&tar).map_err(failed)?;
    let packed = encoder.finish().map_err(failed)?;
    let host = d.system.status().hostname;
    let stamp = crate::epoch::file_stamp(now);
    tracing::info!(
        files = files.len(),
        bytes = packed.len(),
        "support bundle made"
    );
    Ok(api::SupportBundle {
        name: format!("rushes-support-{host}-{stamp}.tar.zst"),
        files: files.into_iter().map(|(n, _)| n).collect(),
        bytes: packed.len() as u64,
        content: base64::engine::general_purpose::STANDARD.encode(&packed),
        saved_as: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_at_any_depth_and_the_rest_kept() {
        let text = r#"
hostname = "edit-bay-nas"
[admin]
password_hash = "$argon2id$v=19$secret"
[[user]]
name = "editor"
web_password = "$argon2id$v=19$other"
[[target]]
name = "wasabi"
access_key = "AKIAFIXTURE"
[target.extra]
client_secret = "s3cr3t"
"#;
        let out = scrubbed_config(text);
        for gone in ["$argon2id", "AKIAFIXTURE", "s3cr3t"] {
            assert!(!out.contains(gone), "{gone} left in:\n{out}");
        }
        for kept in ["edit-bay-nas", "editor", "wasabi"] {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
        assert!(scrubbed_config("password = \"x").starts_with("# rushes.toml does not parse"));
        let answer = serde_json::json!([{"name": "wasabi", "access_key": "AKIAFIXTURE", "has_secret": true}]);
        let out = String::from_utf8(json(&answer)).unwrap();
        assert!(
            !out.contains("AKIAFIXTURE") && out.contains("wasabi"),
            "{out}"
        );
    }
}
