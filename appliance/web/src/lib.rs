//! The admin plane over HTTPS: the box's certificate, logins, sessions, scoped API
//! tokens and roles in front of the management API, with the security headers and the
//! limits every answer and connection gets.
//!
//! rushesd builds the API's routes; this crate decides who may call them over the
//! network, and serves them there.

pub mod certificate;
pub mod gate;
pub mod limiter;
mod pages;
pub mod policy;
pub mod serve;

pub use certificate::{BoxCertificate, CertError, Tls};
pub use gate::{Gate, LoginError, Principal, TokenError, Via};
pub use serve::{console, guarded, serve_https, serve_redirect, AdminAction, AuditSink, Peer};

/// Time since the epoch, by the wall clock (zero if it reads before 1970).
fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
