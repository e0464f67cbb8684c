//! The emulated card: the card's engine run as a host process. It answers the card's
//! JSON-RPC methods on a Unix socket, attaches bays with the card's own NVMe/TCP
//! initiator, presents their namespaces as ublk devices, and keeps the two firmware
//! slots a real card has.

use std::io::{BufReader, Write};
use std::net::ToSocketAddrs;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::bundle;
use crate::card::{
    Attach, AttachedNamespace, CardConfig, CardHealth, CardInfo, Detach, FirmwareSlot,
    FirmwareState, Port, Request, Response, RpcError, Stage,
};
use crate::export::{self, Export};
use crate::initiator::{Controller, Host, Options};

/// The model an emulated card reports, and the model its bundles must name.
pub const MODEL: &str = "Rushes emulated K200-LP";

struct Bay {
    attach: Attach,
    controller: Arc<Controller>,
    exports: Vec<Export>,
}

pub struct EmulatedCard {
    state_dir: PathBuf,
    host: Host,
    serial: String,
    fabric: Mutex<String>,
    bays: Mutex<Vec<Bay>>,
    firmware: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The NICs the card would have as ports: every non-loopback interface.
fn ports() -> Vec<Port> {
    let mut ports: Vec<Port> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lo")
                .map(|name| {
                    let dir = Path::new("/sys/class/net").join(&name);
                    let read = |f: &str| {
                        std::fs::read_to_string(dir.join(f))
                            .ok()
                            .map(|s| s.trim().to_string())
                    };
                    Port {
                        link: read("operstate").unwrap_or_else(|| "unknown".into()),
                        speed_mbps: read("speed")
                            .and_then(|s| s.parse::<i64>().ok())
                            .filter(|s| *s > 0)
                            .map(|s| s as u64),
                        name,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports
}

impl EmulatedCard {
    pub fn new(state_dir: &Path, host: Host) -> Self {
        let _ = std::fs::create_dir_all(state_dir);
        let serial = format!(
            "EMU-{}",
            host.hostid[..4]
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        );
        Self {
            state_dir: state_dir.into(),
            host,
            serial,
            fabric: Mutex::new("tcp".into()),
            bays: Mutex::new(Vec::new()),
            firmware: Mutex::new(()),
        }
    }

    // ---- firmware slots ------------------------------------------------------------

    fn slot_path(&self, slot: &str) -> PathBuf {
        self.state_dir.join(format!("slot-{slot}.bundle"))
    }

    fn read_marker(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state_dir.join(name))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| s == "A" || s == "B")
    }

    fn write_marker(&self, name: &str, value: Option<&str>) -> Result<(), String> {
        let path = self.state_dir.join(name);
        match value {
            Some(v) => {
                let tmp = path.with_extension("new");
                std::fs::write(&tmp, v)
                    .and_then(|()| std::fs::rename(&tmp, &path))
                    .map_err(|e| format!("cannot record the {name} slot: {e}"))
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    fn active(&self) -> String {
        self.read_marker("active").unwrap_or_else(|| "A".into())
    }

    fn slot_version(&self, slot: &str) -> Option<String> {
        let text = std::fs::read(self.slot_path(slot)).ok()?;
        let mut lines = text.split(|&b| b == b'\n');
        let _magic = lines.next()?;
        let manifest: bundle::Manifest = serde_json::from_slice(lines.next()?).ok()?;
        Some(manifest.version)
    }

    fn firmware_state(&self) -> FirmwareState {
        FirmwareState {
            active: self.active(),
            staged: self.read_marker("staged"),
            slots: ["A", "B"]
                .iter()
                .map(|s| FirmwareSlot {
                    slot: s.to_string(),
                    version: self.slot_version(s),
                })
                .collect(),
        }
    }

    fn stage(&self, req: Stage) -> Result<FirmwareState, String> {
        let _held = lock(&self.firmware);
        let (manifest, _) = bundle::verify(Path::new(&req.path), MODEL, &req.host_version)
            .map_err(|e| e.to_string())?;
        let target = if self.active() == "A" { "B" } else { "A" };
        let tmp = self.slot_path(target).with_extension("new");
        std::fs::copy(&req.path, &tmp)
            .and_then(|_| std::fs::rename(&tmp, self.slot_path(target)))
            .map_err(|e| format!("cannot write slot {target}: {e}"))?;
        self.write_marker("staged", Some(target))?;
        tracing::info!(slot = target, version = %manifest.version, "firmware staged");
        Ok(self.firmware_state())
    }

    fn activate(&self) -> Result<FirmwareState, String> {
        let _held = lock(&self.firmware);
        let staged = self
            .read_marker("staged")
            .ok_or("no firmware is staged: stage a bundle first")?;
        self.write_marker("active", Some(&staged))?;
        self.write_marker("staged", None)?;
        tracing::info!(slot = %staged, "firmware slot activated");
        Ok(self.firmware_state())
    }

    fn rollback(&self) -> Result<FirmwareState, String> {
        let _held = lock(&self.firmware);
        let other = if self.active() == "A" { "B" } else { "A" };
        if other == "A" || self.slot_version(other).is_some() {
            self.write_marker("active", Some(other))?;
            self.write_marker("staged", None)?;
            tracing::info!(slot = other, "firmware rolled back");
            Ok(self.firmware_state())
        } else {
            Err(format!("slot {other} holds no firmware to roll back to"))
        }
    }

    // ---- bays ----------------------------------------------------------------------

    fn attached(&self) -> Vec<AttachedNamespace> {
        lock(&self.bays)
            .iter()
            .flat_map(|b| {
                b.exports.iter().map(|e| AttachedNamespace {
                    subnqn: b.attach.subnqn.clone(),
                    traddr: b.attach.traddr.clone(),
                    trsvcid: b.attach.trsvcid.clone(),
                    nsid: e.nsid,
                    device: e.device(),
                    size_bytes: e.size_bytes,
                    read_ops: e.stats.read_ops.load(Ordering::Relaxed),
                    write_ops: e.stats.write_ops.load(Ordering::Relaxed),
                    read_bytes: e.stats.read_bytes.load(Ordering::Relaxed),
                    write_bytes: e.stats.write_bytes.load(Ordering::Relaxed),
                    errors: e.stats.errors.load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    fn attach(&self, req: Attach) -> Result<Vec<AttachedNamespace>, String> {
        if *lock(&self.fabric) != "tcp" {
            return Err("the card is configured for RDMA, which the emulated card lacks".into());
        }
        if lock(&self.bays)
            .iter()
            .any(|b| b.attach.subnqn == req.subnqn)
        {
            return Err(format!("{} is attached already", req.subnqn));
        }
        let addr = format!("{}:{}", req.traddr, req.trsvcid)
            .to_socket_addrs()
            .map_err(|e| format!("{}:{} is not an address: {e}", req.traddr, req.trsvcid))?
            .next()
            .ok_or("the address resolves to nothing")?;
        let opts = Options {
            digests: req.digests,
            ..Default::default()
        };
        let controller = Arc::new(
            Controller::connect(addr, &req.subnqn, &self.host, opts).map_err(|e| e.to_string())?,
        );
        let mut exports = Vec::new();
        for ns in controller.namespaces.clone() {
            match export::export(Arc::clone(&controller), ns, 1, 64) {
                Ok(e) => exports.push(e),
                Err(e) => {
                    for x in exports {
                        x.stop();
                    }
                    return Err(e);
                }
            }
        }
        tracing::info!(subnqn = %req.subnqn, namespaces = exports.len(), "bay attached");
        let subnqn = req.subnqn.clone();
        lock(&self.bays).push(Bay {
            attach: req,
            controller,
            exports,
        });
        Ok(self
            .attached()
            .into_iter()
            .filter(|a| a.subnqn == subnqn)
            .collect())
    }

    fn detach(&self, req: Detach) -> Result<(), String> {
        let bay = {
            let mut bays = lock(&self.bays);
            let i = bays
                .iter()
                .position(|b| b.attach.subnqn == req.subnqn)
                .ok_or_else(|| format!("{} is not attached", req.subnqn))?;
            bays.remove(i)
        };
        for e in bay.exports {
            e.stop();
        }
        tracing::info!(subnqn = %req.subnqn, "bay detached");
        Ok(())
    }

    fn health(&self) -> CardHealth {
        let bays = lock(&self.bays);
        let mut problems = Vec::new();
        let (mut errors, mut depth) = (0, 0);
        for b in bays.iter() {
            if let Some(why) = b.controller.failed() {
                problems.push(format!("{}: connection lost: {why}", b.attach.subnqn));
            }
            for e in &b.exports {
                errors += e.stats.errors.load(Ordering::Relaxed);
                depth += e.stats.in_flight.load(Ordering::Relaxed);
            }
        }
        CardHealth {
            state: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            }
            .into(),
            temperature_c: None,
            errors,
            queue_depth: depth,
            attached: bays.len(),
            problems,
        }
    }

    fn info(&self) -> CardInfo {
        let active = self.active();
        CardInfo {
            model: MODEL.into(),
            serial: self.serial.clone(),
            firmware_version: self
                .slot_version(&active)
                .unwrap_or_else(|| format!("{} (factory)", env!("CARGO_PKG_VERSION"))),
            active_slot: active,
            ports: ports(),
            fabric: lock(&self.fabric).clone(),
            emulated: true,
        }
    }

    /// Answer one request.
    pub fn handle(&self, req: Request) -> Response {
        let id = req.id.clone().unwrap_or(Value::Null);
        fn params<T: DeserializeOwned>(v: Value) -> Result<T, (i64, String)> {
            serde_json::from_value(v).map_err(|e| (-32602, format!("invalid params: {e}")))
        }
        let refuse = |e: String| (-32000, e);
        let result: Result<Value, (i64, String)> = (|| {
            Ok(match req.method.as_str() {
                "card_get_info" => json!(self.info()),
                "card_get_health" => json!(self.health()),
                "card_get_stats" => json!(self.attached()),
                "card_set_config" => {
                    let c: CardConfig = params(req.params)?;
                    match c.fabric.as_str() {
                        "tcp" => *lock(&self.fabric) = c.fabric,
                        "rdma" => {
                            return Err(refuse(
                                "the emulated card has no RDMA-capable port; use tcp".into(),
                            ))
                        }
                        other => return Err(refuse(format!("unknown fabric {other:?}"))),
                    }
                    json!({})
                }
                "bay_attach" => json!(self.attach(params(req.params)?).map_err(refuse)?),
                "bay_detach" => {
                    self.detach(params(req.params)?).map_err(refuse)?;
                    json!({})
                }
                "firmware_get" => json!(self.firmware_state()),
                "firmware_stage" => json!(self.stage(params(req.params)?).map_err(refuse)?),
                "firmware_activate" => json!(self.activate().map_err(refuse)?),
                "firmware_rollback" => json!(self.rollback().map_err(refuse)?),
                other => return Err((-32601, format!("no method {other}"))),
            })
        })();
        match result {
            Ok(v) => Response {
                jsonrpc: "2.0".into(),
                id,
                result: Some(v),
                error: None,
            },
            Err((code, message)) => {
                tracing::warn!(method = %req.method, %message, "refused");
                Response {
                    jsonrpc: "2.0".into(),
                    id,
                    result: None,
                    error: Some(RpcError { code, message }),
                }
            }
        }
    }

    /// The answer to one line of JSON-RPC, or none for a notification.
    pub fn answer(&self, line: &str) -> Option<Response> {
        let req = match Request::parse(line) {
            Ok(req) => req,
            Err(refused) => return Some(refused),
        };
        let notification = req.id.is_none();
        let resp = self.handle(req);
        (!notification).then_some(resp)
    }

    fn connection(&self, stream: UnixStream) {
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        loop {
            let line = match crate::card::read_line(&mut reader) {
                Ok(Some(line)) => line,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "card socket: a request is refused and its connection closed");
                    return;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let Some(resp) = self.answer(&line) else {
                continue;
            };
            let mut out = serde_json::to_vec(&resp).unwrap_or_default();
            out.push(b'\n');
            if writer.write_all(&out).is_err() {
                return;
            }
        }
    }

    /// Serve requests on `socket` until the process ends; every connection gets its own
    /// thread, so a slow attach never blocks a health query.
    pub fn serve(self: Arc<Self>, socket: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(socket);
        export::remove_stale_devices();
        let listener = UnixListener::bind(socket)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        tracing::info!(socket = %socket.display(), model = MODEL, "card ready");
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let me = Arc::clone(&self);
            std::thread::spawn(move || me.connection(stream));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(dir: &Path) -> EmulatedCard {
        let host = Host::new(
            "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        )
        .unwrap();
        EmulatedCard::new(dir, host)
    }

    fn answer(card: &EmulatedCard, line: &str) -> Option<Value> {
        card.answer(line).map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn ids_are_strings_numbers_or_null_and_notifications_get_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let card = card(dir.path());
        let info = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"card_get_info"}}"#);
        for id in [r#""a-7""#, "42", "null"] {
            let a = answer(&card, &info(id)).unwrap();
            assert_eq!(a["id"], serde_json::from_str::<Value>(id).unwrap(), "{a}");
            assert!(a["result"]["serial"].is_string(), "{a}");
        }
        let note = r#"{"jsonrpc":"2.0","method":"card_get_info"}"#;
        assert!(
            answer(&card, note).is_none(),
            "a notification is not answered"
        );
        let bad = answer(&card, &info(r#"{"x":1}"#)).unwrap();
        assert_eq!(
            (bad["id"].clone(), bad["error"]["code"].clone()),
            (Value::Null, json!(-32600))
        );
        let old = r#"{"jsonrpc":"1.0","id":1,"method":"card_get_info"}"#;
        assert_eq!(answer(&card, old).unwrap()["error"]["code"], -32600);
        let garbage = answer(&card, "{not json").unwrap();
        assert_eq!(
            (garbage["id"].clone(), garbage["error"]["code"].clone()),
            (Value::Null, json!(-32700))
        );
        let unknown = answer(&card, r#"{"jsonrpc":"2.0","id":"u","method":"nope"}"#).unwrap();
        assert_eq!(
            (unknown["id"].clone(), unknown["error"]["code"].clone()),
            (json!("u"), json!(-32601))
        );
    }
}
