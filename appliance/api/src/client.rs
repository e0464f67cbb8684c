//! A blocking client for the management API, on its Unix socket or over HTTPS from
//! another machine (with an API token, the box's certificate pinned by its SHA-256
//! fingerprint): one HTTP/1.1 request per connection, JSON in and out. Small on purpose:
//! the console and `rushesctl` need nothing more, and it keeps them free of an async
//! runtime.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach rushesd at {path}: {source} (is rushesd running? rushes-init starts it at boot)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot reach the box at {address}: {source}")]
    Reach {
        address: String,
        source: std::io::Error,
    },
    /// The box showed a certificate other than the one pinned (or none is pinned yet).
    #[error("{}", match .pinned {
        None => format!("the box at {address} shows a certificate with fingerprint {seen}, which is not pinned yet"),
        Some(p) => format!("the box at {address} shows a certificate with fingerprint {seen}, not the pinned {p}: if the box's certificate was replaced on purpose, pin the new one with --fingerprint; otherwise something is in the way"),
    })]
    Fingerprint {
        address: String,
        seen: String,
        pinned: Option<String>,
    },
    #[error("talking to rushesd failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("rushesd sent an answer this client does not understand: {0}")]
    Protocol(String),
    /// The API refused or failed the request; `status` is the HTTP status.
    #[error("{}{}", .error.message, .error.hint.as_deref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Api { status: u16, error: ApiError },
}

impl ClientError {
    /// The API's error code (`disk-in-use` …), when the API answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Where the API is reached.
#[derive(Debug, Clone)]
enum Route {
    Socket(PathBuf),
    Https {
        /// `HOST:PORT`.
        address: String,
        token: Option<String>,
        /// The certificate's SHA-256 fingerprint that must be shown.
        pin: Option<String>,
    },
}

/// The least time a change (any method but GET) is given before the client gives up.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Client {
    route: Route,
    timeout: Duration,
}

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self {
            route: Route::Socket(socket.as_ref().to_path_buf()),
            timeout: Duration::from_secs(120),
        }
    }

    /// A client of the box at `address` (`HOST:PORT`) over HTTPS, sending `token`, and
    /// accepting only a certificate whose fingerprint is `pin` (with no pin, every
    /// request fails with [`ClientError::Fingerprint`] saying what the box shows).
    pub fn https(address: impl Into<String>, token: Option<String>, pin: Option<String>) -> Self {
        Self {
            route: Route::Https {
                address: address.into(),
                token,
                pin,
            },
            timeout: Duration::from_secs(120),
        }
    }

    /// How long a read (GET) may take before it fails (default two minutes). A change
    /// waits at least [`CHANGE_TIMEOUT`]: failing it early would report a failure for a
    /// change that may well be made (a console refreshing every second wants short reads,
    /// not a false "failed" on a password that a slow box took six seconds to set).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Send one request; `body` is sent as JSON when given. Any status is returned.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let body = body.unwrap_or_default();
        let (host, auth) = match &self.route {
            Route::Socket(_) => ("rushesd", String::new()),
            Route::Https { address, token, .. } => (
                address.as_str(),
                token
                    .as_ref()
                    .map(|t| format!("Authorization: Bearer {t}\r\n"))
                    .unwrap_or_default(),
            ),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let timeout = if method == "GET" {
            self.timeout
        } else {
            self.timeout.max(CHANGE_TIMEOUT)
        };
        let raw = match &self.route {
            Route::Socket(socket) => {
                let mut stream =
                    UnixStream::connect(socket).map_err(|source| ClientError::Connect {
                        path: socket.clone(),
                        source,
                    })?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                exchange(&mut stream, &request)?
            }
            Route::Https { address, pin, .. } => {
                let reach = |source| ClientError::Reach {
                    address: address.clone(),
                    source,
                };
                let mut stream =
                    crate::tls::PinnedStream::connect(address, pin.as_deref(), timeout)
                        .map_err(reach)?;
                let result = exchange(&mut stream, &request);
                match (result, stream.seen()) {
                    // The handshake stopped at a certificate that is not the pinned one.
                    (Err(_), Some(seen))
                        if !pin
                            .as_deref()
                            .is_some_and(|p| crate::tls::same_fingerprint(p, &seen)) =>
                    {
                        return Err(ClientError::Fingerprint {
                            address: address.clone(),
                            seen,
                            pinned: pin.clone(),
                        })
                    }
                    (result, _) => result?,
                }
            }
        };
        parse_response(&raw)
    }

    /// The answer of a request that succeeded, or the API's error in its words.
    fn checked(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let resp = self.raw(method, path, body)?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        let error = serde_json::from_slice::<crate::ErrorBody>(&resp.body)
            .map(|b| b.error)
            .unwrap_or_else(|_| ApiError {
                code: "failed".into(),
                message: format!(
                    "rushesd answered {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ),
                hint: None,
            });
        Err(ClientError::Api {
            status: resp.status,
            error,
        })
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<T, ClientError> {
        let resp = self.checked(method, path, body)?;
        serde_json::from_slice(&resp.body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call("GET", path, None)
    }

    /// A GET whose answer is text (CSV, JSON lines), not a JSON document.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let resp = self.checked("GET", path, None)?;
        String::from_utf8(resp.body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// A GET whose answer is bytes (a thumbnail).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        Ok(self.checked("GET", path, None)?.body)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call("POST", path, Some(&json(body)?))
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call("PUT", path, Some(&json(body)?))
    }

    /// A request whose answer carries no body (204 No Content, 202 Accepted): success,
    /// or the API's error.
    pub fn send<B: Serialize>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let body = body.map(json).transpose()?;
        self.checked(method, path, body.as_deref()).map(|_| ())
    }
}

/// Send a whole request and read the whole answer (the server closes after it).
fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> Result<Vec<u8>, ClientError> {
    // The server may answer (404, 405) and close before reading the whole request;
    // its answer is still there to read.
    match stream.write_all(request) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    let _ = stream.flush();
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without its close_notify: the answer is whole when
        // its length says so, which parse_response checks.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(raw)
}

fn json<B: Serialize>(body: &B) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Split a whole HTTP/1.1 answer (the server closed the connection after it).
fn parse_response(raw: &[u8]) -> Result<Response, ClientError> {
    let bad = |what: &str| ClientError::Protocol(what.to_string());
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(status_line))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = v.parse::<usize>().ok();
        }
    }
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("broken chunked body"))?;
    } else if let Some(n) = length {
        if body.len() < n {
            return Err(bad("the answer was cut short"));
        }
        body.truncate(n);
    }
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n")?;
        let size = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_length_or_chunks_are_read_whole() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"[1,2]");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    /// A slow box: a read gives up after the client's timeout, a change waits for its
    /// answer, so that a change the box makes is never reported as failed.
    #[test]
    fn reads_give_up_after_the_timeout_and_changes_wait_for_their_answer() {
        let dir = std::env::temp_dir().join(format!("rushes-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("api.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut conn, _) = listener.accept().unwrap();
                let mut head = [0u8; 1024];
                let _ = conn.read(&mut head).unwrap();
                std::thread::sleep(Duration::from_millis(1500));
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
            }
        });
        let client = Client::new(&socket).with_timeout(Duration::from_millis(300));
        assert!(client.raw("GET", "/v1/users", None).is_err());
        let changed = client.raw("POST", "/v1/users", Some(b"{}")).unwrap();
        assert_eq!((changed.status, changed.body.as_slice()), (200, &b"{}"[..]));
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
