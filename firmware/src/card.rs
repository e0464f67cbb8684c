//! How rushesd drives an offload card: the [`OffloadCard`] trait, the JSON-RPC 2.0
//! messages behind it (the way BlueField SNAP and SPDK-based cards are driven: one JSON
//! object per line on a socket), and [`RpcCard`], the client for a card that answers on
//! a Unix socket (the emulated card; a real card's driver exposes the same methods).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the emulated card listens.
pub const DEFAULT_SOCKET: &str = "/run/rushes/card.sock";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    /// `up` or `down`.
    pub link: String,
    /// Link speed in Mb/s, when known.
    pub speed_mbps: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardInfo {
    pub model: String,
    pub serial: String,
    pub firmware_version: String,
    /// The firmware slot running: `A` or `B`.
    pub active_slot: String,
    pub ports: Vec<Port>,
    /// `tcp` or `rdma`.
    pub fabric: String,
    /// A host process standing in for the card.
    pub emulated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardHealth {
    /// `ok`, or `degraded` with the problems listed.
    pub state: String,
    pub temperature_c: Option<i32>,
    /// I/O errors since the card started.
    pub errors: u64,
    /// Commands in flight now.
    pub queue_depth: u64,
    pub attached: usize,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attach {
    pub traddr: String,
    pub trsvcid: String,
    pub subnqn: String,
    /// Negotiate CRC32C header and data digests.
    #[serde(default)]
    pub digests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedNamespace {
    pub subnqn: String,
    pub traddr: String,
    pub trsvcid: String,
    pub nsid: u32,
    /// The block device the host sees (`/dev/ublkb0`).
    pub device: String,
    pub size_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detach {
    pub subnqn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardConfig {
    /// `tcp` or `rdma`.
    pub fabric: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareSlot {
    /// `A` or `B`.
    pub slot: String,
    /// The version in the slot, if it holds one.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareState {
    pub active: String,
    /// The slot to run at the next activation, if one was staged.
    pub staged: Option<String>,
    pub slots: Vec<FirmwareSlot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// A firmware bundle the card can read.
    pub path: String,
    /// The host software's version, for the bundle's minimum.
    pub host_version: String,
}

/// Why a card call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CardError {
    #[error("the card does not answer on {socket}: {detail}")]
    Unreachable { socket: String, detail: String },
    #[error("the card refused {method}: {message}")]
    Refused { method: String, message: String },
    #[error("the card's answer to {method} is not understood: {detail}")]
    Protocol { method: String, detail: String },
}

/// What rushesd needs from any offload card.
pub trait OffloadCard {
    fn info(&self) -> Result<CardInfo, CardError>;
    fn health(&self) -> Result<CardHealth, CardError>;
    fn stats(&self) -> Result<Vec<AttachedNamespace>, CardError>;
    fn configure(&self, config: &CardConfig) -> Result<(), CardError>;
    fn attach(&self, bay: &Attach) -> Result<Vec<AttachedNamespace>, CardError>;
    fn detach(&self, subnqn: &str) -> Result<(), CardError>;
    fn firmware(&self) -> Result<FirmwareState, CardError>;
    fn stage_firmware(&self, stage: &Stage) -> Result<FirmwareState, CardError>;
    fn activate_firmware(&self) -> Result<FirmwareState, CardError>;
    fn rollback_firmware(&self) -> Result<FirmwareState, CardError>;
}

/// A JSON-RPC 2.0 request. Its `id` is a string, a number or null and comes back in the
/// answer; a request without one is a notification, which gets no answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub jsonrpc: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<serde_json::Value>,
    pub method: String,
    #[serde(default)]
    pub params: serde_json::Value,
}

/// The longest line either end of the card socket reads. A request or an answer is a
/// few hundred bytes (a stats answer with many bays a few KiB); a line that runs on
/// without its newline is refused here, not held.
pub const MAX_LINE: u64 = 1 << 20;

/// The next line of the card socket (its newline cut), read within [`MAX_LINE`] bytes;
/// `None` at the end of the stream. A longer line, or one that is not UTF-8, is an error
/// and the connection is not read further.
pub fn read_line(r: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = std::io::Read::take(&mut *r, MAX_LINE + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if n as u64 > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {} KiB", MAX_LINE >> 10),
        ));
    }
    String::from_utf8(buf).map(Some).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "a line that is not UTF-8")
    })
}

/// `"id": null` is an id (null); only a missing `id` makes a notification.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl Request {
    /// Read one line as a request, or the error answer the spec gives for it: -32700
    /// for what is not JSON, -32600 for JSON that is not a valid request.
    pub fn parse(line: &str) -> Result<Self, Response> {
        let refused = |code: i64, message: String| Response {
            jsonrpc: "2.0".into(),
            id: serde_json::Value::Null,
            result: None,
            error: Some(RpcError { code, message }),
        };
        let req = match serde_json::from_str::<Request>(line) {
            Ok(req) => req,
            Err(e) if serde_json::from_str::<serde_json::Value>(line).is_err() => {
                return Err(refused(-32700, format!("not JSON: {e}")))
            }
            Err(e) => return Err(refused(-32600, format!("not a JSON-RPC request: {e}"))),
        };
        match req.invalid() {
            Some(why) => Err(refused(-32600, why)),
            None => Ok(req),
        }
    }

    /// Why the spec refuses this request (-32600 Invalid Request), if it does.
    pub fn invalid(&self) -> Option<String> {
        if self.jsonrpc != "2.0" {
            return Some(format!("jsonrpc must be \"2.0\", not {:?}", self.jsonrpc));
        }
        match &self.id {
            None
            | Some(serde_json::Value::Null)
            | Some(serde_json::Value::String(_))
            | Some(serde_json::Value::Number(_)) => None,
            Some(other) => Some(format!("an id is a string, a number or null, not {other}")),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub jsonrpc: String,
    /// The request's id; null when the request could not be read.
    pub id: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    /// Read one line as the card's answer.
    pub fn parse(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| {
            let start: String = line.chars().take(200).collect();
            format!("{e}: {start:?}")
        })
    }
}

/// A card that answers JSON-RPC on a Unix socket.
#[derive(Debug, Clone)]
pub struct RpcCard {
    pub socket: PathBuf,
    pub timeout: Duration,
}

impl RpcCard {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: Duration::from_secs(60),
        }
    }

    pub fn call<P: Serialize, R: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, CardError> {
        let unreachable = |e: std::io::Error| CardError::Unreachable {
            socket: self.socket.display().to_string(),
            detail: e.to_string(),
        };
        let protocol = |detail: String| CardError::Protocol {
            method: method.into(),
            detail,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(unreachable)?;
        stream.set_read_timeout(Some(self.timeout)).ok();
        let req = Request {
            jsonrpc: "2.0".into(),
            id: Some(1.into()),
            method: method.into(),
            params: serde_json::to_value(params).map_err(|e| protocol(e.to_string()))?,
        };
        let mut line = serde_json::to_vec(&req).map_err(|e| protocol(e.to_string()))?;
        line.push(b'\n');
        stream.write_all(&line).map_err(unreachable)?;
        let answer = read_line(&mut BufReader::new(stream))
            .map_err(unreachable)?
            .unwrap_or_default();
        let resp = Response::parse(&answer).map_err(protocol)?;
        if resp.id != 1 {
            return Err(protocol(format!(
                "the answer is to request {}, not 1",
                resp.id
            )));
        }
        if let Some(err) = resp.error {
            return Err(CardError::Refused {
                method: method.into(),
                message: err.message,
            });
        }
        serde_json::from_value(resp.result.unwrap_or(serde_json::Value::Null))
            .map_err(|e| protocol(e.to_string()))
    }
}

impl OffloadCard for RpcCard {
    fn info(&self) -> Result<CardInfo, CardError> {
        self.call("card_get_info", &serde_json::json!({}))
    }
    fn health(&self) -> Result<CardHealth, CardError> {
        self.call("card_get_health", &serde_json::json!({}))
    }
    fn stats(&self) -> Result<Vec<AttachedNamespace>, CardError> {
        self.call("card_get_stats", &serde_json::json!({}))
    }
    fn configure(&self, config: &CardConfig) -> Result<(), CardError> {
        self.call::<_, serde_json::Value>("card_set_config", config)
            .map(|_| ())
    }
    fn attach(&self, bay: &Attach) -> Result<Vec<AttachedNamespace>, CardError> {
        self.call("bay_attach", bay)
    }
    fn detach(&self, subnqn: &str) -> Result<(), CardError> {
        self.call::<_, serde_json::Value>(
            "bay_detach",
            &Detach {
                subnqn: subnqn.into(),
            },
        )
        .map(|_| ())
    }
    fn firmware(&self) -> Result<FirmwareState, CardError> {
        self.call("firmware_get", &serde_json::json!({}))
    }
    fn stage_firmware(&self, stage: &Stage) -> Result<FirmwareState, CardError> {
        self.call("firmware_stage", stage)
    }
    fn activate_firmware(&self) -> Result<FirmwareState, CardError> {
        self.call("firmware_activate", &serde_json::json!({}))
    }
    fn rollback_firmware(&self) -> Result<FirmwareState, CardError> {
        self.call("firmware_rollback", &serde_json::json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_lines_are_read_within_their_bound() {
        let mut r: &[u8] = b"{\"a\":1}\n\nlast without newline";
        assert_eq!(read_line(&mut r).unwrap().as_deref(), Some("{\"a\":1}"));
        assert_eq!(read_line(&mut r).unwrap().as_deref(), Some(""));
        assert_eq!(
            read_line(&mut r).unwrap().as_deref(),
            Some("last without newline")
        );
        assert_eq!(read_line(&mut r).unwrap(), None);
        // A line that runs on past the bound is refused after MAX_LINE + 1 bytes.
        let long = vec![b'x'; MAX_LINE as usize + 10];
        let mut r: &[u8] = &long;
        let e = read_line(&mut r).unwrap_err();
        assert!(e.to_string().contains("longer than 1024 KiB"), "{e}");
        assert_eq!(r.len(), 9, "read no further than the bound");
        let mut r: &[u8] = b"\xff\xfe\n";
        assert!(read_line(&mut r).is_err());
    }

    #[test]
    fn a_request_line_parses_or_gets_the_specs_error() {
        let ok = Request::parse(r#"{"jsonrpc":"2.0","id":7,"method":"card_get_info"}"#).unwrap();
        assert_eq!(
            (ok.method.as_str(), ok.id),
            ("card_get_info", Some(7.into()))
        );
        let code = |line: &str| Request::parse(line).unwrap_err().error.unwrap().code;
        assert_eq!(code("{not json"), -32700);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), -32600);
        assert_eq!(code(r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#), -32600);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":[1],"method":"m"}"#), -32600);
    }
}
