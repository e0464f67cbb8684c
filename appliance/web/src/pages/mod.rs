//! The web console's pages, made on the server from the API's answers (maud templates,
//! escaped by construction) with one script of the box's own, `app.js`, that sends
//! forms and buttons to the API with the session's CSRF token and refreshes the live
//! parts. Nothing is fetched from anywhere else: the assets are in the binary.

mod activity;
mod common;
mod dashboard;
mod search;
mod settings;
mod storage;
mod work;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, DOCTYPE};
use rushes_api::Role;

use crate::gate::Principal;
use common::{refused, Page};

/// The files under /static: (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
];

/// The pages' routes, reading the API through `api` (the router the gate stands in
/// front of). Every route here but /login and /static is behind a login (see
/// policy.rs).
pub fn routes(api: Router) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/login", get(login))
        .route("/static/{*file}", get(asset))
        .route("/ui", get(dashboard))
        .route("/ui/activity", get(activity_page))
        .route("/ui/activity/chart", get(activity_chart))
        .route("/ui/search", get(search_page))
        .route("/ui/clip", get(clip_page))
        .route("/ui/placement", get(placement_page))
        .route("/ui/storage", get(storage_page))
        .route("/ui/shares", get(shares_page))
        .route("/ui/jobs", get(jobs_page))
        .route("/ui/alerts", get(alerts_page))
        .route("/ui/settings", get(settings_page))
        .with_state(api)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        // `../`, or anything else that is not one of the few files: nothing to serve.
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

async fn login() -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (common::head("Log in", ""))
            body.login {
                main {
                    h1 { "Rushes" }
                    form #login {
                        label { "User " input name="user" value="admin" autocomplete="username" required; }
                        label { "Password " input type="password" name="password" autocomplete="current-password" required autofocus; }
                        button { "Log in" }
                        p.error hidden {}
                    }
                }
            }
        }
    };
    Html(page.into_string()).into_response()
}

/// The page being made for whoever the gate let in; pages need a login, so without one
/// the gate has already answered.
fn page(api: Router, req: &Request) -> Option<Page> {
    let who = req.extensions().get::<Principal>().cloned()?;
    Some(Page { api, who })
}

/// `?part=1` asks for the page's body alone (app.js refreshing it).
#[derive(serde::Deserialize, Default)]
struct Part {
    #[serde(default)]
    part: Option<u8>,
}

macro_rules! need_page {
    ($api:expr, $req:expr) => {
        match page($api, &$req) {
            Some(p) => p,
            None => return Redirect::to("/login").into_response(),
        }
    };
}

/// A page whose body refreshes itself every two seconds from `here?part=1`.
fn live(p: &Page, title: &str, here: &str, part: &Part, body: maud::Markup) -> Response {
    if part.part.is_some() {
        return Html(body.into_string()).into_response();
    }
    let refresh = format!("{here}?part=1");
    p.frame(
        title,
        here,
        html! { div data-refresh=(refresh) data-every="2000" { (body) } },
    )
}

async fn dashboard(State(api): State<Router>, Query(part): Query<Part>, req: Request) -> Response {
    let p = need_page!(api, req);
    let body = dashboard::body(&p).await;
    live(&p, "Dashboard", "/ui", &part, body)
}

async fn activity_page(
    State(api): State<Router>,
    Query(form): Query<activity::ActivityForm>,
    req: Request,
) -> Response {
    let p = need_page!(api, req);
    let body = activity::body(&p, &form).await;
    p.frame("Activity", "/ui/activity", body)
}

async fn activity_chart(
    State(api): State<Router>,
    Query(view): Query<activity::ChartView>,
    req: Request,
) -> Response {
    let p = need_page!(api, req);
    Html(activity::chart(&p, &view).await.into_string()).into_response()
}

async fn search_page(
    State(api): State<Router>,
    Query(form): Query<search::SearchForm>,
    req: Request,
) -> Response {
    let p = need_page!(api, req);
    let body = search::body(&p, &form).await;
    p.frame("Search", "/ui/search", body)
}

#[derive(serde::Deserialize)]
struct ClipId {
    id: String,
}

async fn clip_page(
    State(api): State<Router>,
    Query(ClipId { id }): Query<ClipId>,
    req: Request,
) -> Response {
    let p = need_page!(api, req);
    let (title, body) = search::clip(&p, &id).await;
    p.frame(&title, "/ui/search", body)
}

#[derive(serde::Deserialize, Default)]
struct Explain {
    #[serde(default)]
    explain: Option<String>,
}

async fn placement_page(
    State(api): State<Router>,
    Query(q): Query<Explain>,
    req: Request,
) -> Response {
    let p = need_page!(api, req);
    let body = work::placement(&p, q.explain.as_deref()).await;
    p.frame("Placement and copies", "/ui/placement", body)
}

async fn storage_page(State(api): State<Router>, req: Request) -> Response {
    let p = need_page!(api, req);
    let body = storage::pools(&p).await;
    p.frame("Pools and disks", "/ui/storage", body)
}

async fn shares_page(State(api): State<Router>, req: Request) -> Response {
    let p = need_page!(api, req);
    let body = storage::shares(&p).await;
    p.frame("Shares and accounts", "/ui/shares", body)
}

async fn jobs_page(State(api): State<Router>, Query(part): Query<Part>, req: Request) -> Response {
    let p = need_page!(api, req);
    let body = work::jobs(&p).await;
    if part.part.is_some() {
        return Html(body.into_string()).into_response();
    }
    p.frame(
        "Jobs",
        "/ui/jobs",
        html! { div data-refresh="/ui/jobs?part=1" data-every="2000" { (body) } },
    )
}

async fn alerts_page(State(api): State<Router>, req: Request) -> Response {
    let p = need_page!(api, req);
    let body = work::alerts(&p).await;
    p.frame("Alerts", "/ui/alerts", body)
}

async fn settings_page(State(api): State<Router>, req: Request) -> Response {
    let p = need_page!(api, req);
    if !p.may(Role::Admin) {
        return refused(StatusCode::FORBIDDEN, "Settings are an admin's.");
    }
    let body = settings::body(&p).await;
    p.frame("Settings", "/ui/settings", body)
}
