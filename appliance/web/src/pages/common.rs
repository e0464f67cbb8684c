//! What every page shares: reading the API as the logged-in user, the frame around a
//! page (navigation, the CSRF token for app.js), and small ways of showing numbers.
//!
//! Every value is put into the page by maud, which escapes it: a file named
//! `<img src=x onerror=…>.mov` is shown as those characters, never as markup.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use rushes_api::{ErrorBody, Role};
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::gate::{Principal, Via};

/// The pages a role sees, in the navigation's order: (path, title, least role).
pub const PAGES: &[(&str, &str, Role)] = &[
    ("/ui", "Dashboard", Role::Viewer),
    ("/ui/activity", "Activity", Role::Viewer),
    ("/ui/search", "Search", Role::Viewer),
    ("/ui/placement", "Placement and copies", Role::Viewer),
    ("/ui/storage", "Pools and disks", Role::Viewer),
    ("/ui/shares", "Shares and accounts", Role::Viewer),
    ("/ui/jobs", "Jobs", Role::Viewer),
    ("/ui/alerts", "Alerts", Role::Viewer),
    ("/ui/settings", "Settings", Role::Admin),
];

/// A page being made: the API to read, and who is looking.
pub struct Page {
    pub api: Router,
    pub who: Principal,
}

/// Why a page could not read what it shows.
#[derive(Debug)]
pub struct Unread(pub String);

impl Page {
    /// GET an API path and read its JSON, as the API answers it to anyone allowed this
    /// page (pages only read; every change goes to /v1 from the browser, through the gate).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Unread> {
        let mut req = Request::get(path)
            .body(Body::empty())
            .map_err(|e| Unread(e.to_string()))?;
        // The API sees who is looking, as it would over HTTPS.
        req.extensions_mut().insert(self.who.clone());
        let resp = self
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| Unread(e.to_string()))?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .map_err(|e| Unread(e.to_string()))?;
        if !status.is_success() {
            let said = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| format!("the API answered {status}"));
            return Err(Unread(said));
        }
        serde_json::from_slice(&bytes).map_err(|e| Unread(format!("{path}: {e}")))
    }

    pub fn may(&self, role: Role) -> bool {
        self.who.role >= role
    }

    /// The page: navigation for this role, then `body`.
    pub fn frame(&self, title: &str, here: &str, body: Markup) -> Response {
        let csrf = match &self.who.via {
            Via::Session { csrf, .. } => csrf.as_str(),
            _ => "",
        };
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                (head(title, csrf))
                body {
                    header {
                        span.brand { "Rushes" }
                        nav {
                            @for (path, name, role) in PAGES {
                                @if self.may(*role) {
                                    a href=(path) class=[(*path == here).then_some("here")] { (name) }
                                }
                            }
                        }
                        span.who {
                            (self.who.user) " (" (self.who.role) ") "
                            button type="button" data-logout="" { "Log out" }
                        }
                    }
                    main {
                        h1 { (title) }
                        p.error #page-error hidden {}
                        (body)
                    }
                }
            }
        };
        Html(page.into_string()).into_response()
    }
}

/// A page's head: the stylesheet and the one script, both the box's own; `csrf` is
/// the session's token for app.js (empty on the login page).
pub fn head(title: &str, csrf: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="csrf-token" content=(csrf);
            title { (title) " · Rushes" }
            link rel="stylesheet" href="/static/app.css";
            script src="/static/app.js" defer {}
        }
    }
}

/// What could not be read, said in the page where it would have been.
pub fn unread(what: &str, e: &Unread) -> Markup {
    html! { p.error { "Cannot show " (what) ": " (e.0) } }
}

/// A byte count as people read it.
pub fn size(bytes: u64) -> String {
    rushes_api::units::show_size(bytes)
}

/// Seconds since the epoch as a UTC time.
pub fn when(secs: u64) -> String {
    rushes_api::calendar::utc_time(secs)
}

/// A fraction as a bar and a percentage.
pub fn bar(fraction: f64) -> Markup {
    let pct = (fraction.clamp(0.0, 1.0) * 100.0).round();
    html! { progress max="100" value=(pct) {} " " (pct) " %" }
}

/// A path segment or query value, percent-encoded.
pub fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A page that cannot be shown to this login.
pub fn refused(status: StatusCode, why: &str) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head("Refused", ""))
            body { main { p.error { (why) } p { a href="/ui" { "Back to the dashboard" } } } }
        }
    };
    (status, Html(page.into_string())).into_response()
}
