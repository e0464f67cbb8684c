//! Which role each request needs, from its method and its route (the template, such as
//! `/v1/jobs/{id}/cancel`, never the path a client typed).
//!
//! Reading is a viewer's, except what holds secrets or the box's own log; running work
//! is an operator's; everything else — every change of configuration, and any route this
//! table does not know — is an admin's.

use axum::http::Method;
use rushes_api::Role;

/// What a request needs before it reaches the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone may ask: the login itself.
    Nobody,
    Role(Role),
}

/// Reads that are an admin's alone.
const ADMIN_READS: &[&str] = &[
    "/ui/settings",
    "/v1/s3",
    "/v1/tokens",
    "/v1/s3/keys",
    "/v1/logs",
    "/v1/settings",
];

/// Work an operator runs (POST unless said).
const OPERATOR_RUNS: &[&str] = &[
    "/v1/jobs/{id}/cancel",
    "/v1/alerts/{id}/dismiss",
    "/v1/copies",
    "/v1/copies/audit",
    "/v1/copies/recall",
    "/v1/copies/reconcile",
    "/v1/placement/run",
    "/v1/placement/simulate",
    "/v1/placement/explain",
    "/v1/catalog/scan",
    "/v1/pools/{name}/scrub",
    "/v1/pools/{name}/measure",
    "/v1/targets/{name}/check",
];

/// The role `method` on `route` needs; `route` is `None` when no route matched.
pub fn need(method: &Method, route: Option<&str>) -> Need {
    let Some(route) = route else {
        // Unknown paths answer 404 to a viewer; nothing is served without a login.
        return Need::Role(Role::Viewer);
    };
    match (method, route) {
        (&Method::POST, "/v1/session") => Need::Nobody,
        // The login page, and the stylesheet and script it needs.
        (&Method::GET, "/" | "/login" | "/static/{*file}") => Need::Nobody,
        // Looking at and ending one's own session.
        (&Method::GET | &Method::DELETE, "/v1/session") => Need::Role(Role::Viewer),
        (&Method::GET | &Method::HEAD, r) if ADMIN_READS.contains(&r) => Need::Role(Role::Admin),
        (&Method::GET | &Method::HEAD, _) => Need::Role(Role::Viewer),
        (&Method::POST, r) if OPERATOR_RUNS.contains(&r) => Need::Role(Role::Operator),
        _ => Need::Role(Role::Admin),
    }
}

/// Whether `method` changes something (and so needs a session's CSRF token).
pub fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_what_a_request_does() {
        let viewer = Need::Role(Role::Viewer);
        let operator = Need::Role(Role::Operator);
        let admin = Need::Role(Role::Admin);
        assert_eq!(need(&Method::POST, Some("/v1/session")), Need::Nobody);
        assert_eq!(need(&Method::GET, Some("/static/{*file}")), Need::Nobody);
        assert_eq!(need(&Method::GET, Some("/ui")), viewer);
        assert_eq!(need(&Method::GET, Some("/ui/settings")), admin);
        assert_eq!(need(&Method::GET, Some("/v1/pools")), viewer);
        assert_eq!(need(&Method::GET, Some("/v1/tokens")), admin);
        assert_eq!(need(&Method::POST, Some("/v1/jobs/{id}/cancel")), operator);
        assert_eq!(need(&Method::POST, Some("/v1/copies/recall")), operator);
        assert_eq!(need(&Method::POST, Some("/v1/shares")), admin);
        assert_eq!(need(&Method::DELETE, Some("/v1/jobs/{id}/cancel")), admin);
        // Discovery saves what answers into the config: an admin's.
        assert_eq!(need(&Method::POST, Some("/v1/fabrics/discover")), admin);
        assert_eq!(need(&Method::PUT, Some("/v1/anything/new")), admin);
        assert_eq!(need(&Method::GET, None), viewer);
        assert!(changes(&Method::DELETE) && !changes(&Method::GET));
    }
}
