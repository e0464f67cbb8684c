//! The management API: HTTP + JSON on a Unix socket, versioned under `/v1`, described by
//! the OpenAPI document it serves at `/v1/openapi.json`. Long operations answer
//! `202 Accepted` with a job to watch at `/v1/jobs/{id}`; every error has the body
//! `{"error": {"code", "message", "hint"}}`.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{FromRequest, Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use rushes_api as api;
use serde::de::DeserializeOwned;

use crate::daemon::Daemon;
use crate::error::ApiErr;

/// The OpenAPI 3 description of every route below.
pub const OPENAPI: &str = include_str!("openapi.json");

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = api::ErrorBody {
            error: api::ApiError {
                code: self.code.into(),
                message: self.message,
                hint: self.hint,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// A JSON body whose rejection (malformed JSON, wrong fields, wrong content type) comes
/// back in the API's error shape.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(ApiErr::bad_request(format!(
                "the request body is not valid: {}",
                rejection.body_text()
            ))
            .hint("see /v1/openapi.json for the fields each request takes")),
        }
    }
}

type Mgr = State<Arc<Daemon>>;

/// `/v1/activity/report?window=minute&by=client`.
#[derive(serde::Deserialize)]
struct ReportQuery {
    window: Option<String>,
    by: Option<String>,
}

/// `/v1/activity/top?window=hour&by=file&sort=bytes&limit=20`.
#[derive(serde::Deserialize)]
struct TopQuery {
    window: Option<String>,
    by: Option<String>,
    sort: Option<String>,
    limit: Option<usize>,
}

/// `/v1/audit?path=&user=&client=&op=&protocol=&since=&until=&limit=` and, for the
/// export, `format=csv|jsonl`.
#[derive(serde::Deserialize)]
struct AuditQuery {
    path: Option<String>,
    user: Option<String>,
    client: Option<String>,
    op: Option<String>,
    protocol: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    limit: Option<usize>,
    format: Option<String>,
}

impl AuditQuery {
    fn query(&self, default_limit: usize) -> crate::audit::Query {
        crate::audit::Query {
            path: self.path.clone(),
            user: self.user.clone(),
            client: self.client.clone(),
            op: self.op.clone(),
            protocol: self.protocol.clone(),
            since: self.since,
            until: self.until,
            limit: self.limit.unwrap_or(default_limit),
        }
    }
}

/// `/v1/logs?contains=TEXT&lines=N`.
#[derive(serde::Deserialize)]
struct LogQuery {
    contains: Option<String>,
    lines: Option<usize>,
}

/// Run blocking manager work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiErr> + Send + 'static,
) -> Result<T, ApiErr> {
    tokio::task::spawn_blocking(move || {
        // The blocking pool is shared with NFS calls, which leave a thread acting as the
        // last caller's user; management work is root's.
        rushes_nas::sys::run_as_root()
            .map_err(|e| ApiErr::failed(format!("cannot act as root: {e}")))?;
        f()
    })
    .await
    .map_err(|e| ApiErr::failed(format!("internal error: {e}")))?
}

fn accepted(job: api::Job) -> Response {
    (StatusCode::ACCEPTED, Json(job)).into_response()
}

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/status", get(|State(m): Mgr| async move { Json(m.system.status()) }))
        .route(
            "/v1/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .route(
            "/v1/disks",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.pools.disks())).await.map(Json) }),
        )
        .route(
            "/v1/pools",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.pools.pools())).await.map(Json) }).post(
                |State(m): Mgr, Body(req): Body<api::CreatePool>| async move {
                    blocking(move || m.pools.create_pool(req)).await.map(accepted)
                },
            ),
        )
        .route(
            "/v1/pools/{name}",
            get(|State(m): Mgr, UrlPath(name): UrlPath<String>| async move {
                blocking(move || m.pools.pool(&name)).await.map(Json)
            })
            .delete(
                |State(m): Mgr, UrlPath(name): UrlPath<String>, Body(req): Body<api::DestroyPool>| async move {
                    blocking(move || m.pools.destroy_pool(&name, req))
                        .await
                        .map(|()| StatusCode::NO_CONTENT)
                },
            ),
        )
        .route(
            "/v1/pools/{name}/grow",
            post(
                |State(m): Mgr, UrlPath(name): UrlPath<String>, Body(req): Body<api::GrowPool>| async move {
                    blocking(move || m.pools.grow_pool(&name, req)).await.map(accepted)
                },
            ),
        )
        .route(
            "/v1/pools/{name}/replace",
            post(
                |State(m): Mgr, UrlPath(name): UrlPath<String>, Body(req): Body<api::ReplaceDisk>| async move {
                    blocking(move || m.pools.replace_disk(&name, req)).await.map(accepted)
                },
            ),
        )
        .route(
            "/v1/pools/{name}/scrub",
            post(|State(m): Mgr, UrlPath(name): UrlPath<String>| async move {
                blocking(move || m.pools.scrub_pool(&name)).await.map(accepted)
            }),
        )
        .route(
            "/v1/shares",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.shares.shares())).await.map(Json) }).post(
                |State(m): Mgr, Body(req): Body<api::CreateShare>| async move {
                    blocking(move || m.shares.create_share(req))
                        .await
                        .map(|s| (StatusCode::CREATED, Json(s)))
                },
            ),
        )
        .route(
            "/v1/shares/{name}",
            get(|State(m): Mgr, UrlPath(name): UrlPath<String>| async move {
                blocking(move || m.shares.share(&name)).await.map(Json)
            })
            .put(
                |State(m): Mgr, UrlPath(name): UrlPath<String>, Body(req): Body<api::UpdateShare>| async move {
                    blocking(move || m.shares.update_share(&name, req)).await.map(Json)
                },
            )
            .delete(|State(m): Mgr, UrlPath(name): UrlPath<String>| async move {
                blocking(move || m.shares.delete_share(&name))
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/users",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.smb.users())).await.map(Json) }).post(
                |State(m): Mgr, Body(req): Body<api::CreateUser>| async move {
                    blocking(move || m.smb.create_user(req))
                        .await
                        .map(|u| (StatusCode::CREATED, Json(u)))
                },
            ),
        )
        .route(
            "/v1/users/{name}",
            delete(|State(m): Mgr, UrlPath(name): UrlPath<String>| async move {
                blocking(move || m.smb.delete_user(&name))
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/users/{name}/password",
            put(|State(m): Mgr, UrlPath(name): UrlPath<String>, Body(req): Body<api::UserPassword>| async move {
                blocking(move || m.smb.set_user_password(&name, req))
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route("/v1/jobs", get(|State(m): Mgr| async move { Json(m.core.jobs.list()) }))
        .route(
            "/v1/jobs/{id}",
            get(|State(m): Mgr, UrlPath(id): UrlPath<String>| async move {
                let id: u64 = id
                    .parse()
                    .map_err(|_| ApiErr::bad_request(format!("job id {id:?} is not a number")))?;
                m.core.jobs.get(id)
                    .map(Json)
                    .ok_or_else(|| ApiErr::not_found(format!("there is no job {id}")).hint("`rushesctl jobs` lists them"))
            }),
        )
        .route(
            "/v1/jobs/{id}/cancel",
            post(|State(m): Mgr, UrlPath(id): UrlPath<String>| async move {
                let id: u64 = id
                    .parse()
                    .map_err(|_| ApiErr::bad_request(format!("job id {id:?} is not a number")))?;
                m.core.jobs.cancel(id).map(accepted)
            }),
        )
        .route(
            "/v1/reset",
            post(|State(m): Mgr, Body(req): Body<api::Reset>| async move {
                blocking(move || m.system.reset(req)).await.map(|rebooting| {
                    if rebooting {
                        StatusCode::ACCEPTED
                    } else {
                        StatusCode::NO_CONTENT
                    }
                })
            }),
        )
        .route(
            "/v1/time",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.system.clock())).await.map(Json) }),
        )
        .route(
            "/v1/time/zones",
            get(|| async { Json(rushes_api::calendar::zone_names()) }),
        )
        .route("/v1/activity", get(|State(m): Mgr| async move { Json(m.activity.activity()) }))
        .route(
            "/v1/activity/report",
            get(|State(m): Mgr, Query(q): Query<ReportQuery>| async move {
                m.activity.activity_report(
                    q.window.as_deref().unwrap_or("minute"),
                    q.by.as_deref().unwrap_or("client"),
                )
                .map(Json)
            }),
        )
        .route(
            "/v1/activity/series",
            get(|State(m): Mgr, Query(q): Query<ReportQuery>| async move {
                m.activity.activity_series(q.by.as_deref().unwrap_or("client")).map(Json)
            }),
        )
        .route(
            "/v1/activity/top",
            get(|State(m): Mgr, Query(q): Query<TopQuery>| async move {
                m.activity.activity_top(
                    q.window.as_deref().unwrap_or("minute"),
                    q.by.as_deref().unwrap_or("file"),
                    q.sort.as_deref().unwrap_or("bytes"),
                    q.limit.unwrap_or(20),
                )
                .map(Json)
            }),
        )
        .route(
            "/v1/audit",
            get(|State(m): Mgr, Query(q): Query<AuditQuery>| async move {
                blocking(move || Ok(m.activity.audit().search(&q.query(1000)))).await.map(Json)
            }),
        )
        .route(
            "/v1/audit/status",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.activity.audit().status())).await.map(Json) }),
        )
        .route(
            "/v1/audit/export",
            get(|State(m): Mgr, Query(q): Query<AuditQuery>| async move {
                let format = q.format.clone().unwrap_or_else(|| "csv".into());
                if format != "csv" && format != "jsonl" {
                    return Err(ApiErr::bad_request(format!("format {format:?} is not known"))
                        .hint("use csv or jsonl"));
                }
                let mut records = blocking(move || Ok(m.activity.audit().search(&q.query(1_000_000)))).await?;
                // Exports read oldest first, like a log.
                records.reverse();
                let (kind, body) = if format == "csv" {
                    ("text/csv", crate::audit::to_csv(&records))
                } else {
                    let mut out = String::new();
                    for r in &records {
                        out.push_str(&serde_json::to_string(r).unwrap_or_default());
                        out.push('\n');
                    }
                    ("application/x-ndjson", out)
                };
                Ok(([(axum::http::header::CONTENT_TYPE, kind)], body).into_response())
            }),
        )
        .route(
            "/v1/alerts",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.alerts())).await.map(Json) }),
        )
        .route(
            "/v1/alerts/history",
            get(|State(m): Mgr| async move { Json(m.core.alerts.history()) }),
        )
        .route(
            "/v1/alerts/{id}/dismiss",
            post(|State(m): Mgr, UrlPath(id): UrlPath<String>| async move {
                m.core.alerts.dismiss(&id).map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/settings",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.system.settings())).await.map(Json) }).put(
                |State(m): Mgr, Body(req): Body<api::Settings>| async move {
                    blocking(move || m.system.put_settings(req)).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/network",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.system.nics())).await.map(Json) }),
        )
        .route(
            "/v1/setup",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.system.setup())).await.map(Json) }),
        )
        .route(
            "/v1/admin/password",
            axum::routing::put(|State(m): Mgr, Body(req): Body<api::SetPassword>| async move {
                blocking(move || m.system.set_password(req))
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/admin/login",
            post(|State(m): Mgr, Body(req): Body<api::Login>| async move {
                blocking(move || m.system.login(req)).await.map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/logs",
            get(|State(m): Mgr, Query(q): Query<LogQuery>| async move {
                blocking(move || Ok(m.system.logs(q.contains.as_deref(), q.lines.unwrap_or(500))))
                    .await
                    .map(Json)
            }),
        )
        .route(
            "/v1/power",
            post(|State(m): Mgr, Body(req): Body<api::Power>| async move {
                blocking(move || m.system.power(req)).await.map(|()| StatusCode::ACCEPTED)
            }),
        )
        .route(
            "/v1/fabrics",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.fabrics.fabrics())).await.map(Json) }),
        )
        .route(
            "/v1/fabrics/discover",
            post(|State(m): Mgr, Body(req): Body<api::Discover>| async move {
                blocking(move || m.fabrics.discover(req)).await.map(Json)
            }),
        )
        .route(
            "/v1/fabrics/connect",
            post(|State(m): Mgr, Body(req): Body<api::FabricPath>| async move {
                blocking(move || m.fabrics.connect_fabric(req))
                    .await
                    .map(|s| (StatusCode::CREATED, Json(s)))
            }),
        )
        .route(
            "/v1/fabrics/disconnect",
            post(|State(m): Mgr, Body(req): Body<api::Disconnect>| async move {
                blocking(move || m.fabrics.disconnect_fabric(req))
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/card",
            get(|State(m): Mgr| async move { blocking(move || Ok(m.card.card_status())).await.map(Json) }).put(
                |State(m): Mgr, Body(req): Body<api::CardMode>| async move {
                    blocking(move || m.card.set_card_mode(req)).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/card/attach",
            post(|State(m): Mgr, Body(req): Body<api::FabricPath>| async move {
                blocking(move || m.card.card_attach(req))
                    .await
                    .map(|s| (StatusCode::CREATED, Json(s)))
            }),
        )
        .route(
            "/v1/card/detach",
            post(|State(m): Mgr, Body(req): Body<api::CardDetach>| async move {
                blocking(move || m.card.card_detach(req))
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/card/firmware/stage",
            post(|State(m): Mgr, Body(req): Body<api::FirmwareStage>| async move {
                blocking(move || m.card.card_stage(req)).await.map(Json)
            }),
        )
        .route(
            "/v1/card/firmware/activate",
            post(|State(m): Mgr| async move { blocking(move || m.card.card_activate()).await.map(Json) }),
        )
        .route(
            "/v1/card/firmware/rollback",
            post(|State(m): Mgr| async move { blocking(move || m.card.card_rollback()).await.map(Json) }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            ApiErr::not_found(format!("no such API path: {uri}")).hint("the API lives under /v1; see /v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiErr::new(405, "method-not-allowed", "this path does not take that method")
                .hint("see /v1/openapi.json")
        })
        .with_state(daemon)
}

/// Serve the API on `socket` until the future is dropped. The socket is made afresh and
/// is reachable by root only.
pub async fn serve(socket: &Path, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %socket.display(), "management API listening");
    axum::serve(listener, router(daemon))
        .await
        .context("the management API stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (method, path) the router answers, as the OpenAPI document names them.
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/v1/status"),
        ("get", "/v1/openapi.json"),
        ("get", "/v1/disks"),
        ("get", "/v1/pools"),
        ("post", "/v1/pools"),
        ("get", "/v1/pools/{name}"),
        ("delete", "/v1/pools/{name}"),
        ("post", "/v1/pools/{name}/grow"),
        ("post", "/v1/pools/{name}/replace"),
        ("post", "/v1/pools/{name}/scrub"),
        ("get", "/v1/shares"),
        ("post", "/v1/shares"),
        ("get", "/v1/shares/{name}"),
        ("put", "/v1/shares/{name}"),
        ("delete", "/v1/shares/{name}"),
        ("get", "/v1/users"),
        ("post", "/v1/users"),
        ("delete", "/v1/users/{name}"),
        ("put", "/v1/users/{name}/password"),
        ("get", "/v1/jobs"),
        ("get", "/v1/jobs/{id}"),
        ("post", "/v1/jobs/{id}/cancel"),
        ("get", "/v1/alerts"),
        ("get", "/v1/alerts/history"),
        ("post", "/v1/alerts/{id}/dismiss"),
        ("get", "/v1/settings"),
        ("put", "/v1/settings"),
        ("get", "/v1/network"),
        ("get", "/v1/setup"),
        ("put", "/v1/admin/password"),
        ("post", "/v1/admin/login"),
        ("get", "/v1/logs"),
        ("post", "/v1/power"),
        ("get", "/v1/activity"),
        ("get", "/v1/activity/report"),
        ("get", "/v1/activity/top"),
        ("get", "/v1/activity/series"),
        ("get", "/v1/audit"),
        ("get", "/v1/audit/status"),
        ("get", "/v1/audit/export"),
        ("post", "/v1/reset"),
        ("get", "/v1/time"),
        ("get", "/v1/time/zones"),
        ("get", "/v1/fabrics"),
        ("post", "/v1/fabrics/discover"),
        ("post", "/v1/fabrics/connect"),
        ("post", "/v1/fabrics/disconnect"),
        ("get", "/v1/card"),
        ("put", "/v1/card"),
        ("post", "/v1/card/attach"),
        ("post", "/v1/card/detach"),
        ("post", "/v1/card/firmware/stage"),
        ("post", "/v1/card/firmware/activate"),
        ("post", "/v1/card/firmware/rollback"),
    ];

    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is missing from openapi.json"
            );
        }
        let documented: usize = paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "openapi.json documents routes the server lacks"
        );
    }
}
