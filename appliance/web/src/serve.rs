//! The HTTPS listener and what stands in front of the API on it: who is asking, what
//! their role allows, the CSRF check, the audit line, the security headers, and the
//! limits that cut slow or greedy clients off without starving anyone else.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rushes_api::{ApiError, ErrorBody};
use tower::ServiceExt;

use crate::certificate::Tls;
use crate::gate::{cookie_session, same_secret, Gate, Principal, Via};
use crate::policy::{self, Need};

/// The address a request came from (put on every request of the HTTPS listener).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// One admin action for the audit log: who, from where, what, and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAction {
    pub time_ms: u64,
    pub client: String,
    pub user: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl AdminAction {
    /// An action answered now.
    pub fn now(client: String, user: String, method: String, path: String, status: u16) -> Self {
        Self {
            time_ms: crate::since_epoch().as_millis() as u64,
            client,
            user,
            method,
            path,
            status,
        }
    }
}

/// Where admin actions are written.
pub type AuditSink = Arc<dyn Fn(AdminAction) + Send + Sync>;

/// A request's head must arrive within this, and a request must be answered within
/// [`REQUEST_TIMEOUT`]; a TLS handshake within [`HANDSHAKE_TIMEOUT`].
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once, in all and from one address.
const MAX_CONNECTIONS: usize = 512;
const MAX_PER_ADDRESS: usize = 32;
/// The largest request body.
pub const MAX_BODY: usize = 1 << 20;

/// The header a session's changes carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

struct Guard {
    gate: Arc<Gate>,
    audit: AuditSink,
    /// When each address last had a refusal without a login written down: such
    /// refusals are written once in [`QUIET_REFUSALS`] per address, so nobody can
    /// flood the audit log (and have it trimmed) without logging in.
    anonymous: Mutex<HashMap<IpAddr, std::time::Instant>>,
}

const QUIET_REFUSALS: Duration = Duration::from_secs(10);
/// The longest path an audit line keeps.
const AUDIT_PATH: usize = 200;

impl Guard {
    /// Whether a refusal of a request without a login from `ip` is written now.
    fn note_anonymous(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        let now = std::time::Instant::now();
        let mut seen = self.anonymous.lock().unwrap_or_else(|p| p.into_inner());
        if seen
            .get(&ip)
            .is_some_and(|at| now.duration_since(*at) < QUIET_REFUSALS)
        {
            return false;
        }
        if seen.len() >= 10_000 {
            seen.retain(|_, at| now.duration_since(*at) < QUIET_REFUSALS);
        }
        seen.insert(ip, now);
        true
    }
}

fn refusal(status: StatusCode, code: &str, message: String, hint: &str) -> Response {
    let body = ErrorBody {
        error: ApiError {
            code: code.into(),
            message,
            hint: Some(hint.into()),
        },
    };
    (status, Json(body)).into_response()
}

/// Who the headers prove the request comes from: a bearer token first, else a session
/// cookie.
fn authenticate(gate: &Gate, headers: &HeaderMap) -> Option<Principal> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let secret = auth.to_str().ok()?.strip_prefix("Bearer ")?;
        return gate.token(secret.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_session(v).and_then(|id| gate.session(id)))
}

/// A browser's change must carry its session's CSRF token, and when it says where it
/// comes from (`Origin`), that must be this box.
fn csrf_problem(headers: &HeaderMap, csrf: &str) -> Option<&'static str> {
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !sent.is_some_and(|s| same_secret(s, csrf)) {
        return Some("the request has no valid X-CSRF-Token header");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or("");
        if host.is_none_or(|h| origin != format!("https://{h}")) {
            return Some("the request comes from another site's page");
        }
    }
    None
}

async fn guard(State(g): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let peer_ip = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.ip().to_canonical());
    let client = peer_ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(AUDIT_PATH).collect();
    let changes = policy::changes(&method);
    let principal = authenticate(&g.gate, req.headers());
    let who = principal.as_ref().map(|p| p.user.clone());
    let checked: Result<Option<Principal>, Response> = match (policy::need(&method, route.as_deref()), principal) {
        (Need::Nobody, p) => Ok(p),
        (Need::Role(_), None) => Err(refusal(
            StatusCode::UNAUTHORIZED,
            "login-needed",
            "log in first: this needs a session or an API token".into(),
            "POST /v1/session with a user and password, or send `Authorization: Bearer TOKEN`; a token that expired or was revoked no longer works",
        )),
        (Need::Role(role), Some(p)) if p.role < role => Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{} is {} and this needs {role}", p.user, p.role),
            "ask an admin for a login or token with that role",
        )),
        (Need::Role(_), Some(p)) => match &p.via {
            Via::Session { csrf, .. } if changes => match csrf_problem(req.headers(), csrf) {
                Some(why) => Err(refusal(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    format!("refused: {why}"),
                    "send the csrf value of GET /v1/session in the X-CSRF-Token header",
                )),
                None => Ok(Some(p)),
            },
            _ => Ok(Some(p)),
        },
    };
    let (user, response) = match checked {
        // A page asked for without a login: the login page, not an API error.
        Err(refused)
            if refused.status() == StatusCode::UNAUTHORIZED
                && method == axum::http::Method::GET
                && !path.starts_with("/v1/") =>
        {
            (
                who.unwrap_or_else(|| "-".into()),
                axum::response::Redirect::to("/login").into_response(),
            )
        }
        Err(refused) => (who.unwrap_or_else(|| "-".into()), refused),
        Ok(principal) => {
            if let Some(p) = principal {
                req.extensions_mut().insert(p);
            }
            let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
                Ok(r) => r,
                Err(_) => refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    format!(
                        "the request took longer than {} s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                    "long work runs as a job: start it, then watch /v1/jobs/{id}",
                ),
            };
            (who.unwrap_or_else(|| "-".into()), response)
        }
    };
    let status = response.status();
    // A login is written by its handler, which knows the name it tried.
    let login = method == axum::http::Method::POST && route.as_deref() == Some("/v1/session");
    let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    let worth_a_line = if user == "-" {
        refused && g.note_anonymous(peer_ip)
    } else {
        changes || refused
    };
    if !login && worth_a_line {
        (g.audit)(AdminAction::now(
            client,
            user,
            method.to_string(),
            path,
            status.as_u16(),
        ));
    }
    response
}

/// The headers every answer carries: no script but the box's own, no framing, no
/// sniffing, no referrer, HTTPS only from now on, nothing cached.
async fn security_headers(req: Request, next: Next) -> Response {
    secured(next.run(req).await)
}

/// `response` with the headers every answer carries.
fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-opener-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    h.remove(header::SERVER);
    response
}

/// The web console's pages beside `api`, all behind the gate: what the HTTPS listener
/// serves.
pub fn console(api: Router, gate: Arc<Gate>, audit: AuditSink) -> Router {
    let pages = crate::pages::routes(api.clone());
    guarded(api.merge(pages), gate, audit)
}

/// `api` behind the gate.
pub fn guarded(api: Router, gate: Arc<Gate>, audit: AuditSink) -> Router {
    let guard = Arc::new(Guard {
        gate,
        audit,
        anonymous: Mutex::default(),
    });
    api.layer(axum::middleware::from_fn_with_state(guard, self::guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Connections open per address, released when a connection ends.
#[derive(Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A place for one more connection from `ip`, if the limits allow it.
fn take_slot(
    counts: &Arc<Counts>,
    permits: &Arc<tokio::sync::Semaphore>,
    ip: IpAddr,
    per_address: usize,
) -> Option<Slot> {
    let permit = Arc::clone(permits).try_acquire_owned().ok()?;
    let mut c = counts.0.lock().unwrap_or_else(|p| p.into_inner());
    let n = c.entry(ip).or_insert(0);
    if *n >= per_address {
        return None;
    }
    *n += 1;
    Some(Slot {
        counts: Arc::clone(counts),
        ip,
        _permit: permit,
    })
}

/// Serve `app` over HTTPS on `listener` until the task is dropped.
pub async fn serve_https(listener: tokio::net::TcpListener, tls: Arc<Tls>, app: Router) {
    let counts = Arc::new(Counts::default());
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(slot) = take_slot(&counts, &permits, peer.ip().to_canonical(), MAX_PER_ADDRESS)
        else {
            tracing::warn!(%peer, "HTTPS: too many connections, in all or from this address; this one is closed");
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = socket.set_nodelay(true);
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    let app = app.clone();
                    async move {
                        match whole_body(req).await {
                            Ok(req) => app.oneshot(req).await,
                            Err(refused) => Ok::<_, Infallible>(refused),
                        }
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The request with its whole body read (at most [`MAX_BODY`] bytes, within
/// [`REQUEST_TIMEOUT`]) before anything answers it. An answer sent while the body is
/// still on its way (a refusal, say, which needs none of it) makes hyper close the
/// connection after it, without a word, under a client that may already be sending its
/// next request there: that request is lost. A body that cannot be read whole is refused
/// with `Connection: close`, so the client knows not to send more on this connection.
async fn whole_body(req: hyper::Request<hyper::body::Incoming>) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let closing = |status: StatusCode, code: &str, message: String, hint: &str| {
        let mut r = secured(refusal(status, code, message, hint));
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let too_large = || {
        closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the request's body is larger than {MAX_BODY} bytes"),
            "no request to the box needs more; a file goes over SMB or NFS",
        )
    };
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let read = axum::body::to_bytes(axum::body::Body::new(body), MAX_BODY);
    match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        // A chunked body past the limit, or one the client cut short.
        Ok(Err(e)) => Err(closing(
            StatusCode::BAD_REQUEST,
            "bad-body",
            format!("the request's body could not be read whole (at most {MAX_BODY} bytes): {e}"),
            "send the whole body, as its Content-Length or chunks announce",
        )),
        Err(_) => Err(closing(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request's body took longer than {} s to arrive",
                REQUEST_TIMEOUT.as_secs()
            ),
            "send the body at once after the headers",
        )),
    }
}

/// Answer plain HTTP on `listener` with a redirect to the same path over HTTPS on
/// `https_port`; nothing else is served there.
pub async fn serve_redirect(listener: tokio::net::TcpListener, https_port: u16) {
    // Few connections: a redirect takes one request, and idle ones must not use up the
    // descriptors NFS needs.
    const AT_ONCE: usize = 64;
    const PER_ADDRESS: usize = 8;
    let counts = Arc::new(Counts::default());
    let permits = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(slot) = take_slot(&counts, &permits, peer.ip().to_canonical(), PER_ADDRESS) else {
            continue;
        };
        let local = socket.local_addr().ok();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let to = redirect_target(&req, local, https_port);
                    async move {
                        let mut r = Response::new(axum::body::Body::empty());
                        *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                        if let Ok(v) = HeaderValue::from_str(&to) {
                            r.headers_mut().insert(header::LOCATION, v);
                        }
                        Ok::<_, Infallible>(r)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                .await;
        });
    }
}

/// `https://HOST[:PORT]/path?query`: the host the client asked for when it is a plain
/// name or address, else the address it reached.
fn redirect_target<B>(
    req: &hyper::Request<B>,
    local: Option<SocketAddr>,
    https_port: u16,
) -> String {
    let asked = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| match h.rsplit_once(':') {
            Some((name, port))
                if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') =>
            {
                name
            }
            _ => h,
        })
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 253
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        })
        .map(str::to_string);
    let host = asked.unwrap_or_else(|| match local.map(|l| l.ip()) {
        Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        Some(ip) => ip.to_string(),
        None => "localhost".into(),
    });
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("https://{host}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_keeps_the_host_and_path_and_drops_what_is_odd() {
        let req = |host: &str, path: &str| {
            hyper::Request::get(path)
                .header("host", host)
                .body(())
                .unwrap()
        };
        let local = Some("192.0.2.5:80".parse().unwrap());
        assert_eq!(
            redirect_target(&req("nas.local:80", "/a?b=1"), local, 443),
            "https://nas.local/a?b=1"
        );
        assert_eq!(
            redirect_target(&req("nas.local", "/"), local, 8443),
            "https://nas.local:8443/"
        );
        assert_eq!(
            redirect_target(&req("evil.com/x@y", "/"), local, 443),
            "https://192.0.2.5/"
        );
    }

    #[test]
    fn csrf_needs_the_token_and_this_box_as_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("box:8443"));
        assert!(csrf_problem(&h, "abc").is_some());
        h.insert(CSRF_HEADER, HeaderValue::from_static("abc"));
        assert!(csrf_problem(&h, "abc").is_none());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(csrf_problem(&h, "abc").is_some());
        h.insert(header::ORIGIN, HeaderValue::from_static("https://box:8443"));
        assert!(csrf_problem(&h, "abc").is_none());
        assert!(csrf_problem(&h, "abd").is_some());
    }
}
