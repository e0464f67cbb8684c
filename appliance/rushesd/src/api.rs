//! The management API: HTTP + JSON on a Unix socket, versioned under `/v1`, described by
//! the OpenAPI document it serves at `/v1/openapi.json`. Long operations answer
//! `202 Accepted` with a job to watch at `/v1/jobs/{id}`; every error has the body
//! `{"error": {"code", "message", "hint"}}`.

use std::path::Path;
use std::sync::Arc;

use aide::axum::routing::{delete_with, get_with, post_with, put_with};
use aide::axum::ApiRouter;
use aide::generate::GenContext;
use aide::openapi::Operation;
use aide::OperationInput;
use axum::extract::{FromRequest, FromRequestParts, Path as UrlPath, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, NoContent, Response};
use axum::{Json, Router};
use rushes_api as api;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::daemon::Daemon;
use crate::error::ApiErr;
use crate::openapi::{self, accepted, created, says, Export, ResetDone, Started};

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

/// Query parameters whose rejection (a number that is not one) comes back in the API's
/// error shape, not as axum's plain text.
struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiErr;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(rejection) => Err(ApiErr::bad_request(format!(
                "the query is not valid: {}",
                rejection.body_text()
            ))
            .hint("see /v1/openapi.json for the parameters each request takes")),
        }
    }
}

impl<T: JsonSchema> OperationInput for Params<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Query::<T>::operation_input(ctx, operation)
    }
}

/// The names in the path, likewise refused in the API's error shape.
struct InPath<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for InPath<T> {
    type Rejection = ApiErr;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match UrlPath::<T>::from_request_parts(parts, state).await {
            Ok(UrlPath(v)) => Ok(InPath(v)),
            Err(rejection) => Err(ApiErr::bad_request(format!(
                "the path is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

impl<T: JsonSchema> OperationInput for InPath<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        UrlPath::<T>::operation_input(ctx, operation)
    }
}

/// The document describes the body as the JSON it is.
impl<T: JsonSchema> OperationInput for Body<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Json::<T>::operation_input(ctx, operation)
    }
}

type Mgr = State<Arc<Daemon>>;

/// `/v1/activity/report?window=minute&by=client`.
#[derive(serde::Deserialize, JsonSchema)]
struct ReportQuery {
    /// second, minute (the default) or hour.
    window: Option<String>,
    /// client (the default), user, share, op or protocol.
    by: Option<String>,
}

/// `/v1/search?q=codec:prores_4444 reel:A003&share=rushes&offset=0&limit=50`.
#[derive(serde::Deserialize, JsonSchema)]
struct SearchQuery {
    /// The query: free words and `field:value` terms (codec, reel, tape, scene, take,
    /// project, share, ext, format, circled, camera, name, width, height, fps, duration,
    /// channels, tc); empty finds every file.
    q: Option<String>,
    /// Only these shares, comma-separated.
    share: Option<String>,
    /// Results to skip (paging).
    offset: Option<usize>,
    /// Results in this page: 50 unless given, 1,000 at most.
    limit: Option<usize>,
    /// relevance (the default), name, path, modified, size, duration or timecode; a
    /// leading `-` reverses the order (`-modified`: newest first).
    sort: Option<String>,
    /// Only what this account may read: files its uid and groups may read, on shares
    /// it may use.
    #[serde(rename = "as")]
    as_account: Option<String>,
}

/// `/v1/activity/series?by=client&window=minute`.
#[derive(serde::Deserialize, JsonSchema)]
struct SeriesQuery {
    /// client (the default), user, share, op or protocol.
    by: Option<String>,
    /// minute (the default: a point a second) or hour (a point a minute).
    window: Option<String>,
}

/// `/v1/activity/top?window=hour&by=file&sort=bytes&limit=20`.
#[derive(serde::Deserialize, JsonSchema)]
struct TopQuery {
    /// minute (the default) or hour.
    window: Option<String>,
    /// file (the default), dir, client or user.
    by: Option<String>,
    /// bytes (the default) or ops.
    sort: Option<String>,
    /// How many to list (20 unless given).
    limit: Option<usize>,
}

/// `/v1/audit?path=&user=&client=&op=&protocol=&since=&until=&limit=`.
#[derive(serde::Deserialize, JsonSchema)]
struct AuditQuery {
    /// Records whose path (or a rename's new path) holds this text.
    path: Option<String>,
    /// Records of this account name, or `uid N`.
    user: Option<String>,
    /// Records from this client address.
    client: Option<String>,
    /// Records of this operation, in any case.
    op: Option<String>,
    /// nfs or smb.
    protocol: Option<String>,
    /// Records at or after this time (seconds since 1970, UTC).
    since: Option<u64>,
    /// Records at or before this time (seconds since 1970, UTC).
    until: Option<u64>,
    /// At most this many, newest first (1000 unless given; an export takes all).
    limit: Option<usize>,
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

/// `/v1/audit/export?format=csv|jsonl`, with the search's own parameters.
#[derive(serde::Deserialize, JsonSchema)]
struct ExportFormat {
    /// csv (the default) or jsonl.
    format: Option<String>,
}

/// `/v1/placement/explain?path=SHARE/PATH`.
#[derive(serde::Deserialize, JsonSchema)]
struct ExplainQuery {
    /// The file, as its share's name and its path inside it: `media/day1/A001.mov`.
    path: String,
}

/// `/v1/logs?contains=TEXT&lines=N`.
#[derive(serde::Deserialize, JsonSchema)]
struct LogQuery {
    /// Lines that hold this text.
    contains: Option<String>,
    /// The newest this many lines (500 unless given).
    lines: Option<usize>,
}

/// Run blocking manager work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiErr> + Send + 'static,
) -> Result<T, ApiErr> {
    tokio::task::spawn_blocking(move || {
        // The blocking pool also answers UDP calls (MOUNT, NLM, NSM), which may leave a
        // thread acting as their caller; management work is root's.
        rushes_nas::sys::run_as_root()
            .map_err(|e| ApiErr::failed(format!("cannot act as root: {e}")))?;
        f()
    })
    .await
    .map_err(|e| ApiErr::failed(format!("internal error: {e}")))?
}

/// A pool, share, account or alert, by the name or id in its path.
#[derive(serde::Deserialize, JsonSchema)]
struct Named {
    name: String,
}

#[derive(serde::Deserialize, JsonSchema)]
struct CopiesQuery {
    share: String,
    path: String,
}

#[derive(serde::Deserialize, JsonSchema)]
struct Id {
    id: String,
}

/// Every route, each with the summary the document shows. `router` serves them.
fn routes() -> ApiRouter<Arc<Daemon>> {
    ApiRouter::new()
        .api_route(
            "/v1/status",
            get_with(|State(m): Mgr| async move { Json(m.system.status()) }, says("Version, host name and uptime")),
        )
        .api_route(
            "/v1/disks",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.pools.disks())).await.map(Json) },
                says("Every block device, what is on it and what uses it; the boot stick is marked"),
            ),
        )
        .api_route(
            "/v1/pools",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.pools.pools())).await.map(Json) },
                says("Pools with their state, members, capacity and md's background work"),
            )
            .post_with(
                |State(m): Mgr, Body(req): Body<api::CreatePool>| async move {
                    blocking(move || m.pools.create_pool(req)).await.map(accepted)
                },
                says("Create a pool (md RAID + XFS); answers with the job that builds it. Disks with data need to be listed in `wipe`; the boot stick and disks in use are refused"),
            ),
        )
        .api_route(
            "/v1/pools/{name}",
            get_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.pools.pool(&name)).await.map(Json)
                },
                says("One pool"),
            )
            .delete_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::DestroyPool>| async move {
                    blocking(move || m.pools.destroy_pool(&name, req)).await.map(|()| NoContent)
                },
                says("Destroy a pool (its shares must be deleted first); `confirm` repeats the name"),
            ),
        )
        .api_route(
            "/v1/pools/{name}/grow",
            post_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::GrowPool>| async move {
                    blocking(move || m.pools.grow_pool(&name, req)).await.map(accepted)
                },
                says("Add disks and reshape onto them, then grow XFS (raid1, raid5, raid6)"),
            ),
        )
        .api_route(
            "/v1/pools/{name}/replace",
            post_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::ReplaceDisk>| async move {
                    blocking(move || m.pools.replace_disk(&name, req)).await.map(accepted)
                },
                says("Replace a failed, missing or named member with a new disk and rebuild"),
            ),
        )
        .api_route(
            "/v1/pools/{name}/measure",
            post_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.pools.measure_pool(&name)).await.map(accepted)
                },
                says("Measure how fast the pool reads (a few seconds of direct reads beside its clients): what rate reservations are checked against"),
            ),
        )
        .api_route(
            "/v1/pools/{name}/scrub",
            post_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.pools.scrub_pool(&name)).await.map(accepted)
                },
                says("Start a scrub (md check) now"),
            ),
        )
        .api_route(
            "/v1/shares",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.shares.shares())).await.map(Json) },
                says("Shares and whether they are being served"),
            )
            .post_with(
                |State(m): Mgr, Body(req): Body<api::CreateShare>| async move {
                    blocking(move || m.shares.create_share(req)).await.map(created)
                },
                says("Create a share: a folder on a pool, exported over NFS at once"),
            ),
        )
        .api_route(
            "/v1/shares/{name}",
            get_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.shares.share(&name)).await.map(Json)
                },
                says("One share"),
            )
            .put_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::UpdateShare>| async move {
                    blocking(move || m.shares.update_share(&name, req)).await.map(Json)
                },
                says("Change a share's export rules or SMB options"),
            )
            .delete_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.shares.delete_share(&name)).await.map(|()| NoContent)
                },
                says("Stop serving a share; its files stay on the pool"),
            ),
        )
        .api_route(
            "/v1/users",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.smb.users())).await.map(Json) },
                says("Accounts: one uid and gid on NFS and SMB, and whether each can log in over SMB"),
            )
            .post_with(
                |State(m): Mgr, Body(req): Body<api::CreateUser>| async move {
                    blocking(move || m.smb.create_user(req)).await.map(created)
                },
                says("Add an account with its SMB password (kept hashed in Samba's passdb on RUSHES-CFG)"),
            ),
        )
        .api_route(
            "/v1/users/{name}",
            delete_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || {
                        m.smb.delete_user(&name)?;
                        m.admin.gate.end_sessions_of(&name);
                        Ok(NoContent)
                    })
                    .await
                },
                says("Remove an account; its files keep their uid"),
            ),
        )
        .api_route(
            "/v1/users/{name}/password",
            put_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::UserPassword>| async move {
                    blocking(move || {
                        m.smb.set_user_password(&name, req)?;
                        m.admin.gate.end_sessions_of(&name);
                        Ok(NoContent)
                    })
                    .await
                },
                says("Set an account's SMB password"),
            ),
        )
        .api_route(
            "/v1/placement",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.placement.view())).await.map(Json) },
                says("The placement rules in force, in order, and the pools' watermarks; `problems` when the rules kept in rushes.toml are refused"),
            )
            .put_with(
                |State(m): Mgr, Body(req): Body<api::PlacementRules>| async move {
                    blocking(move || m.placement.set(req)).await.map(Json)
                },
                says("Put a rules file in force; a file with any bad rule is refused whole (422) with each line and reason, and nothing changes"),
            ),
        )
        .api_route(
            "/v1/placement/simulate",
            post_with(
                |State(m): Mgr, Body(req): Body<api::SimulateRequest>| async move {
                    blocking(move || {
                        let rules = m.placement.simulated_rules(&req)?;
                        let mut plan = m.placement.simulate(req)?;
                        let (copies, report) = m.reconcile.outlook(&rules);
                        plan.copies = copies;
                        plan.report.push_str(&report);
                        Ok(plan)
                    })
                    .await
                    .map(Json)
                },
                says("Run the rules in force (or `text`) over every share's files without moving anything: the moves, their bytes and time, what is held back and why, and the pools after"),
            ),
        )
        .api_route(
            "/v1/placement/run",
            post_with(
                |State(m): Mgr, Body(req): Body<api::PlacementRun>| async move {
                    blocking(move || m.placement.run(req)).await.map(accepted)
                },
                says("Move every file the rules in force place on another pool, as one job: each copy is read back against its blake3 before the file's data switches, and the file keeps its path, handle and inode; 409 while a run is under way"),
            ),
        )
        .api_route(
            "/v1/placement/explain",
            get_with(
                |State(m): Mgr, Params(ExplainQuery { path }): Params<ExplainQuery>| async move {
                    blocking(move || m.placement.explain(&path)).await.map(Json)
                },
                says("Which rule decides a file, why each rule before it did not match, and where its data is now"),
            ),
        )
        .api_route(
            "/v1/jobs",
            get_with(|State(m): Mgr| async move { Json(m.core.jobs.list()) }, says("Recent jobs, running and finished")),
        )
        .api_route(
            "/v1/jobs/{id}",
            get_with(
                |State(m): Mgr, InPath(Id { id }): InPath<Id>| async move {
                    let id = job_id(&id)?;
                    m.core.jobs.get(id)
                        .map(Json)
                        .ok_or_else(|| ApiErr::not_found(format!("there is no job {id}")).hint("`rushesctl jobs` lists them"))
                },
                says("One job: its step and progress"),
            ),
        )
        .api_route(
            "/v1/jobs/{id}/cancel",
            post_with(
                |State(m): Mgr, InPath(Id { id }): InPath<Id>| async move {
                    m.core.jobs.cancel(job_id(&id)?).map(accepted)
                },
                says("Ask a job to stop at its next safe point; 409 not-cancellable for work that cannot stop halfway"),
            ),
        )
        .api_route(
            "/v1/reset",
            post_with(
                |State(m): Mgr, Body(req): Body<api::Reset>| async move {
                    blocking(move || m.system.reset(req)).await.map(|rebooting| {
                        if rebooting {
                            ResetDone::Restarting
                        } else {
                            ResetDone::Forgotten
                        }
                    })
                },
                says("Reset every setting to the defaults (host name, network, admin password, pools, shares); the pools' data stays on their disks. The appliance restarts into the first-boot wizard (202); host mode only forgets (204)"),
            ),
        )
        .api_route(
            "/v1/time",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.system.clock())).await.map(Json) },
                says("The clock and its NTP servers as chronyd reports them: the server followed, offset, root delay, stratum, leap status, the kernel's synchronised flag, or why it is not synchronised"),
            ),
        )
        .api_route(
            "/v1/time/zones",
            get_with(
                || async { Json(rushes_api::calendar::zone_names()) },
                says("Every time zone name the appliance's tzdata has, sorted: what the settings' timezone may be"),
            ),
        )
        .api_route(
            "/v1/activity",
            get_with(
                |State(m): Mgr| async move { Json(m.activity.activity()) },
                says("Live NFS traffic: the last minute second by second, and the clients seen in the last five minutes"),
            ),
        )
        .api_route(
            "/v1/rates",
            get_with(
                |State(m): Mgr| async move { m.rates().map(Json) },
                says("The NFS rate rules (caps and reservations on groups of clients), each with what its clients read and write together now and what each of them gets (MB/s over the last minute), and the pools' measured read rate the reservations are checked against"),
            ),
        )
        .api_route(
            "/v1/rates/{name}",
            put_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::SetRate>| async move {
                    blocking(move || m.rates.set_rule(&name, req)).await.map(|()| NoContent)
                },
                says("Add a rate rule or change it, in force at once; reservations adding up to more than the pools' measured read rate are refused with the figures"),
            )
            .delete_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.rates.delete_rule(&name)).await.map(|()| NoContent)
                },
                says("Remove a rate rule; its clients go back to best effort at once"),
            ),
        )
        .api_route(
            "/v1/targets",
            get_with(
                |State(m): Mgr| async move { Json(m.targets.list()) },
                says("The targets copies can go to (S3, GCS, Azure Blob, a folder), never with their secrets"),
            ),
        )
        .api_route(
            "/v1/targets/{name}",
            put_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::SetTarget>| async move {
                    blocking(move || m.targets.set(&name, req)).await.map(|()| NoContent)
                },
                says("Add a target or change it; its secret is sealed and never shown again (left out, the one kept stays)"),
            )
            .delete_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.targets.delete(&name)).await.map(|()| NoContent)
                },
                says("Remove a target and its secret; copies already on it stay there"),
            ),
        )
        .api_route(
            "/v1/copies",
            get_with(
                |State(m): Mgr, Params(q): Params<CopiesQuery>| async move {
                    blocking(move || m.targets.copies_of(&q.share, &q.path)).await.map(Json)
                },
                says("A file's proven copies and where it stands: resident, premigrated (copies as it is now), dirty (changed since) or migrated (released to its copies)"),
            )
            .post_with(
                |State(m): Mgr, Body(req): Body<api::CopyFiles>| async move {
                    blocking(move || m.targets.copy_files(req)).await.map(accepted)
                },
                says("Copy files or folders of a share to a target, as a job: each file read back and proven, then recorded on the file"),
            ),
        )
        .api_route(
            "/v1/copies/audit",
            post_with(
                |State(m): Mgr, Body(req): Body<api::AuditCopies>| async move {
                    blocking(move || m.targets.audit_copies(req)).await.map(accepted)
                },
                says("Read back every recorded copy of files or folders of a share, as a job: each proven again, or dropped with a critical alert when changed or gone"),
            ),
        )
        .api_route(
            "/v1/copies/reconcile",
            post_with(
                |State(m): Mgr| async move {
                    blocking(move || m.reconcile.run()).await.map(accepted)
                },
                says("Bring every file in line with the copy rules now, as a job: each file a rule wants copies of gets the copies it lacks, proven and recorded; a changed file's older copy is kept as a version; files left short raise an alert"),
            ),
        )
        .api_route(
            "/v1/copies/release",
            post_with(
                |State(m): Mgr, Body(req): Body<api::ReleaseFiles>| async move {
                    blocking(move || m.recalls.release_files(req)).await.map(accepted)
                },
                says("Release files or folders of a share to their copies, as a job: a file with enough proven copies of its bytes as they are now gives its blocks back and stays as a stub (path, size, owner, times, handle); a read brings it back"),
            ),
        )
        .api_route(
            "/v1/copies/recall",
            post_with(
                |State(m): Mgr, Body(req): Body<api::RecallFiles>| async move {
                    blocking(move || m.recalls.recall_files(req)).await.map(accepted)
                },
                says("Bring released files or folders of a share back from their copies, as a job with progress in bytes; recalls clients wait for go first"),
            ),
        )
        .api_route(
            "/v1/s3",
            get_with(
                |State(m): Mgr| async move { Json(m.s3.show()) },
                says("This box's S3 endpoint for other boxes' copies: the pool it serves, where it listens, and its keys (never their secrets)"),
            )
            .put_with(
                |State(m): Mgr, Body(req): Body<api::S3EndpointEntry>| async move {
                    blocking(move || m.s3.set(req)).await.map(Json)
                },
                says("Serve a pool over S3 at an address, for other boxes' copies (every request signed with a key made here)"),
            ),
        )
        .api_route(
            "/v1/s3/keys",
            post_with(
                |State(m): Mgr, Body(req): Body<api::AddS3Key>| async move {
                    blocking(move || m.s3.add_key(req)).await.map(Json)
                },
                says("Make a key for another box: it reaches one bucket, named after it; its secret is in this answer and never shown again"),
            ),
        )
        .api_route(
            "/v1/s3/keys/{name}",
            delete_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.s3.delete_key(&name)).await.map(|()| NoContent)
                },
                says("Remove a key: requests it signs are refused from now on; its bucket stays"),
            ),
        )
        .api_route(
            "/v1/targets/{name}/check",
            post_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.targets.check(&name)).await.map(Json)
                },
                says("Put a small object on the target, read it back and remove it: whether copies can go there now, and the round trip's time"),
            ),
        )
        .api_route(
            "/v1/search",
            get_with(
                |State(m): Mgr, Params(q): Params<SearchQuery>| async move {
                    blocking(move || {
                        let shares: Option<Vec<String>> = q.share.as_deref().map(|s| {
                            s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
                        });
                        m.catalog()?.search(&crate::catalog::Search {
                            query: q.q.as_deref().unwrap_or(""),
                            shares: shares.as_deref(),
                            offset: q.offset.unwrap_or(0),
                            limit: q.limit.unwrap_or(50),
                            sort: q.sort.as_deref().unwrap_or("relevance"),
                            account: q.as_account.as_deref(),
                        })
                    })
                    .await
                    .map(Json)
                },
                says("Search the media catalog: clips whose fields match, a page of them in the order asked, and facet counts (codec, resolution, fps, camera, share) over all matches; with `as`, only what that account may read. A query that does not read is refused with its position"),
            ),
        )
        .api_route(
            "/v1/clips/{id}",
            get_with(
                |State(m): Mgr, InPath(Id { id }): InPath<Id>| async move {
                    blocking(move || m.catalog()?.clip(&id)).await.map(Json)
                },
                says("One clip of the catalog, by the id search gives (SHARE/PATH, URL-encoded)"),
            ),
        )
        .api_route(
            "/v1/clips/{id}/poster",
            get_with(
                |State(m): Mgr, InPath(Id { id }): InPath<Id>| async move {
                    blocking(move || m.catalog()?.thumbnail(&id, crate::thumbnail::Kind::Poster))
                        .await
                        .map(crate::openapi::Jpeg)
                },
                says("A clip's poster frame (JPEG, 320 pixels wide), made by ffmpeg in a confined process the first time it is asked for or as the clip lands, then kept until the clip changes"),
            ),
        )
        .api_route(
            "/v1/clips/{id}/strip",
            get_with(
                |State(m): Mgr, InPath(Id { id }): InPath<Id>| async move {
                    blocking(move || m.catalog()?.thumbnail(&id, crate::thumbnail::Kind::Strip))
                        .await
                        .map(crate::openapi::Jpeg)
                },
                says("Five frames across a clip side by side (JPEG, 800x90), made like the poster"),
            ),
        )
        .api_route(
            "/v1/catalog/scan",
            post_with(
                |State(m): Mgr| async move {
                    blocking(move || m.catalog()?.scan()).await.map(accepted)
                },
                says("Scan every share now for files changed behind the box's back (a job; the catalog also scans at start and daily)"),
            ),
        )
        .api_route(
            "/v1/activity/report",
            get_with(
                |State(m): Mgr, Params(q): Params<ReportQuery>| async move {
                    m.activity.activity_report(
                        q.window.as_deref().unwrap_or("minute"),
                        q.by.as_deref().unwrap_or("client"),
                    )
                    .map(Json)
                },
                says("Every NFS operation rolled up over the last second, minute or hour, per client, user, share or operation: ops, bytes, errors, rates, p50/p99 latency; busiest first; never sampled"),
            ),
        )
        .api_route(
            "/v1/activity/series",
            get_with(
                |State(m): Mgr, Params(q): Params<SeriesQuery>| async move {
                    m.activity
                        .activity_series(
                            q.window.as_deref().unwrap_or("minute"),
                            q.by.as_deref().unwrap_or("client"),
                        )
                        .map(Json)
                },
                says("Bytes a second and median latency over the last minute (a point a second) or hour (a point a minute) per client, user, share, op or protocol, busiest first: the consoles' charts"),
            ),
        )
        .api_route(
            "/v1/activity/top",
            get_with(
                |State(m): Mgr, Params(q): Params<TopQuery>| async move {
                    m.activity.activity_top(
                        q.window.as_deref().unwrap_or("minute"),
                        q.by.as_deref().unwrap_or("file"),
                        q.sort.as_deref().unwrap_or("bytes"),
                        q.limit.unwrap_or(20),
                    )
                    .map(Json)
                },
                says("The busiest files, folders, clients or users over the last minute or hour, by bytes or operations"),
            ),
        )
        .api_route(
            "/v1/audit",
            get_with(
                |State(m): Mgr, Params(q): Params<AuditQuery>| async move {
                    blocking(move || Ok(m.activity.audit().search(&q.query(1000)))).await.map(Json)
                },
                says("Search the audit log: who opened, created, changed, renamed or deleted what, when, from where (NFS and SMB)"),
            ),
        )
        .api_route(
            "/v1/audit/status",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.activity.audit().status())).await.map(Json) },
                says("Where the audit log is kept, its size, its oldest record and its limits"),
            ),
        )
        .api_route(
            "/v1/audit/export",
            get_with(
                |State(m): Mgr, Params(q): Params<AuditQuery>, Params(f): Params<ExportFormat>| async move {
                    let format = f.format.unwrap_or_else(|| "csv".into());
                    if format != "csv" && format != "jsonl" {
                        return Err(ApiErr::bad_request(format!("format {format:?} is not known"))
                            .hint("use csv or jsonl"));
                    }
                    let search = q.query(1_000_000);
                    let mut records = blocking(move || Ok(m.activity.audit().search(&search))).await?;
                    // Exports read oldest first, like a log.
                    records.reverse();
                    Ok(if format == "csv" {
                        Export { content_type: "text/csv", body: crate::audit::to_csv(&records) }
                    } else {
                        let mut body = String::new();
                        for r in &records {
                            body.push_str(&serde_json::to_string(r).unwrap_or_default());
                            body.push('\n');
                        }
                        Export { content_type: "application/x-ndjson", body }
                    })
                },
                says("Export matching audit records, oldest first, as CSV or JSON lines"),
            ),
        )
        .api_route(
            "/v1/alerts",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.alerts())).await.map(Json) },
                says("Current problems, most severe first, each with what to do"),
            ),
        )
        .api_route(
            "/v1/alerts/history",
            get_with(
                |State(m): Mgr| async move { Json(m.core.alerts.history()) },
                says("Alerts raised and cleared, newest first (the last 1000)"),
            ),
        )
        .api_route(
            "/v1/alerts/{id}/dismiss",
            post_with(
                |State(m): Mgr, InPath(Id { id }): InPath<Id>| async move {
                    m.core.alerts.dismiss(&id).map(|()| NoContent)
                },
                says("Take away an event alert once seen; conditions clear by themselves (409)"),
            ),
        )
        .api_route(
            "/v1/settings",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.system.settings())).await.map(Json) },
                says("Host name, network per NIC, time zone and NTP"),
            )
            .put_with(
                |State(m): Mgr, Body(req): Body<api::Settings>| async move {
                    blocking(move || m.system.put_settings(req)).await.map(Json)
                },
                says("Replace the settings; the host name applies at once, the rest at the next start"),
            ),
        )
        .api_route(
            "/v1/network",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.system.nics())).await.map(Json) },
                says("NICs as they are now: link, speed, MTU, addresses"),
            ),
        )
        .api_route(
            "/v1/setup",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.system.setup())).await.map(Json) },
                says("Whether first-boot setup is done, and the addresses to reach the box"),
            ),
        )
        .api_route(
            "/v1/admin/password",
            put_with(
                |State(m): Mgr, Body(req): Body<api::SetPassword>| async move {
                    blocking(move || {
                        m.system.set_password(req)?;
                        m.admin.gate.end_sessions_of("admin");
                        Ok(NoContent)
                    })
                    .await
                },
                says("Set the admin password (argon2 on RUSHES-CFG); the current one is needed once set"),
            ),
        )
        .api_route(
            "/v1/admin/login",
            post_with(
                |State(m): Mgr, Body(req): Body<api::Login>| async move {
                    blocking(move || m.system.login(req)).await.map(|()| NoContent)
                },
                says("Check the admin password (the console's lock); 403 wrong-password"),
            ),
        )
        .api_route(
            "/v1/logs",
            get_with(
                |State(m): Mgr, Params(q): Params<LogQuery>| async move {
                    blocking(move || Ok(m.system.logs(q.contains.as_deref(), q.lines.unwrap_or(500))))
                        .await
                        .map(Json)
                },
                says("The supervisor's log, oldest first"),
            ),
        )
        .api_route(
            "/v1/power",
            post_with(
                |State(m): Mgr, Body(req): Body<api::Power>| async move {
                    blocking(move || m.system.power(req)).await.map(|()| Started)
                },
                says("Reboot or power off the appliance (confirm: true)"),
            ),
        )
        .api_route(
            "/v1/fabrics",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.fabrics.fabrics())).await.map(Json) },
                says("NVMe-oF: this host's NQN, saved discovery addresses, and every subsystem with its paths' state and its namespaces"),
            ),
        )
        .api_route(
            "/v1/fabrics/discover",
            post_with(
                |State(m): Mgr, Body(req): Body<api::Discover>| async move {
                    blocking(move || m.fabrics.discover(req)).await.map(Json)
                },
                says("Read a discovery controller's log page (following referrals to chained bays); without an address, ask every saved one again"),
            ),
        )
        .api_route(
            "/v1/fabrics/connect",
            post_with(
                |State(m): Mgr, Body(req): Body<api::FabricPath>| async move {
                    blocking(move || m.fabrics.connect_fabric(req)).await.map(created)
                },
                says("Connect one path to a subsystem and save it; its namespaces join the disks"),
            ),
        )
        .api_route(
            "/v1/fabrics/disconnect",
            post_with(
                |State(m): Mgr, Body(req): Body<api::Disconnect>| async move {
                    blocking(move || m.fabrics.disconnect_fabric(req)).await.map(|()| NoContent)
                },
                says("Disconnect and forget a subsystem's paths (all, or the one at traddr:trsvcid); refused when a pool would lose its disks"),
            ),
        )
        .api_route(
            "/v1/card",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.card.card_status())).await.map(Json) },
                says("The offload card: mode, state, model, firmware slots, ports, errors, and the bay namespaces it presents"),
            )
            .put_with(
                |State(m): Mgr, Body(req): Body<api::CardMode>| async move {
                    blocking(move || m.card.set_card_mode(req)).await.map(Json)
                },
                says("Run the emulated card (mode emulated) or none (off); saved in rushes.toml"),
            ),
        )
        .api_route(
            "/v1/card/attach",
            post_with(
                |State(m): Mgr, Body(req): Body<api::FabricPath>| async move {
                    blocking(move || m.card.card_attach(req)).await.map(created)
                },
                says("Attach a bay through the card and save it; its namespaces appear as ublk disks"),
            ),
        )
        .api_route(
            "/v1/card/detach",
            post_with(
                |State(m): Mgr, Body(req): Body<api::CardDetach>| async move {
                    blocking(move || m.card.card_detach(req)).await.map(|()| NoContent)
                },
                says("Detach a bay from the card; refused while a pool uses its disks"),
            ),
        )
        .api_route(
            "/v1/card/firmware/stage",
            post_with(
                |State(m): Mgr, Body(req): Body<api::FirmwareStage>| async move {
                    blocking(move || m.card.card_stage(req)).await.map(Json)
                },
                says("Check a firmware bundle (SHA-256, model, minimum host version) and write it to the card's spare slot"),
            ),
        )
        .api_route(
            "/v1/card/firmware/activate",
            post_with(
                |State(m): Mgr| async move { blocking(move || m.card.card_activate()).await.map(Json) },
                says("Make the staged slot the active one"),
            ),
        )
        .api_route(
            "/v1/config/backup",
            post_with(
                |State(m): Mgr, Body(req): Body<api::ConfigBackup>| async move {
                    blocking(move || crate::backup::backup(&m.core, &m.shares, &m.system.status().hostname, req)).await.map(Json)
                },
                says("Back up the settings, pools, shares, accounts (web and SMB passwords), rules, targets with their secrets, tokens and certificates into one file sealed under a passphrase (base64 in `content`; with `share`, saved at the top of that share too)"),
            ),
        )
        .api_route(
            "/v1/config/restore",
            post_with(
                |State(m): Mgr, Body(req): Body<api::ConfigRestore>| async move {
                    blocking(move || crate::backup::restore(&m.core, req)).await.map(Json)
                },
                says("Restore a backup: checked whole first (passphrase, format, version, contents), so a wrong, damaged or newer one changes nothing; then rushesd starts again on it and finds the pools it names"),
            ),
        )
        .api_route(
            "/v1/support-bundle",
            post_with(
                |State(m): Mgr| async move { blocking(move || crate::support::bundle(&m)).await.map(Json) },
                says("Make a support bundle: versions, the log, the config with every secret removed, disks with SMART, pools, shares, alerts, jobs and network in one .tar.zst (base64 in `content`); never a password, key or token"),
            ),
        )
        .api_route(
            "/v1/update",
            get_with(
                |State(m): Mgr| async move { blocking(move || Ok(m.updates.status())).await.map(Json) },
                says("The version running, the two boot slots (state, version, which boots next) and the keys bundles are taken from"),
            ),
        )
        .api_route(
            "/v1/update/apply",
            post_with(
                |State(m): Mgr, Body(req): Body<api::UpdateApply>| async move {
                    blocking(move || m.updates.apply(req)).await.map(accepted)
                },
                says("Check a signed update bundle (a path on the box or an http(s) URL): signature, model, versions; a refused one is answered with the reason and nothing is written. Then a job streams it into the idle slot, which boots next (and now, with reboot)"),
            ),
        )
        .api_route(
            "/v1/update/rollback",
            post_with(
                |State(m): Mgr, Body(req): Body<api::UpdateRollback>| async move {
                    blocking(move || m.updates.rollback(req)).await.map(Json)
                },
                says("Make the other slot boot next (and reboot into it, with reboot); `confirm` must be true"),
            ),
        )
        .api_route(
            "/v1/card/firmware/rollback",
            post_with(
                |State(m): Mgr| async move { blocking(move || m.card.card_rollback()).await.map(Json) },
                says("Go back to the other firmware slot"),
            ),
        )
}

/// A job's id from its path, refused in the API's words when it is not a number.
fn job_id(id: &str) -> Result<u64, ApiErr> {
    id.parse()
        .map_err(|_| ApiErr::bad_request(format!("job id {id:?} is not a number")))
}

/// Put by the root-only socket's server on each request it takes.
#[derive(Clone, Copy)]
struct OnSocket;

/// Who called: over HTTPS, whom the gate let in (nobody on the login route); on the
/// root-only socket, root.
struct Caller {
    principal: Option<rushes_web::Principal>,
    peer: Option<std::net::SocketAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<rushes_web::Peer>().map(|p| p.0);
        // Root only when the socket's server says so; anything else is whoever the
        // gate let in, or nobody.
        let principal = match parts.extensions.get::<OnSocket>() {
            Some(_) => Some(rushes_web::Principal::socket()),
            None => parts.extensions.get::<rushes_web::Principal>().cloned(),
        };
        Ok(Caller { principal, peer })
    }
}

impl OperationInput for Caller {}

impl Caller {
    fn principal(&self) -> Result<&rushes_web::Principal, ApiErr> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiErr::new(401, "login-needed", "log in first"))
    }

    /// The web session this request came with.
    fn session(&self) -> Result<&str, ApiErr> {
        match self.principal.as_ref().map(|p| &p.via) {
            Some(rushes_web::Via::Session { id, .. }) => Ok(id),
            _ => Err(ApiErr::not_found("this request comes with no web session")
                .hint("a session is made by POST /v1/session over HTTPS; tokens and the socket have none")),
        }
    }
}

/// The admin plane's own routes: web sessions, API tokens, the HTTPS certificate and
/// accounts' roles.
fn admin_plane_routes() -> ApiRouter<Arc<Daemon>> {
    ApiRouter::new()
        .api_route(
            "/v1/session",
            post_with(
                |State(m): Mgr, caller: Caller, Body(req): Body<api::NewSession>| async move {
                    let Some(peer) = caller.peer else {
                        return Err(ApiErr::new(409, "not-https", "web logins are made over HTTPS")
                            .hint("the socket is root's: it needs no login"));
                    };
                    let (info, cookie) = m.admin.login(peer, req, Arc::clone(&m.system)).await?;
                    Ok(openapi::SessionStarted(info, cookie))
                },
                says("Log in over HTTPS: `admin` with the admin password, or an account that has a role; sets the session cookie and answers the CSRF token its changes must carry. Wrong passwords are answered late, and many make the address or the account wait (429)"),
            )
            .get_with(
                |State(m): Mgr, caller: Caller| async move {
                    let id = caller.session()?;
                    m.admin.gate.session_info(id).map(Json).ok_or_else(|| {
                        ApiErr::new(401, "login-needed", "the session has ended")
                    })
                },
                says("This browser's session: who, the role, and the CSRF token"),
            )
            .delete_with(
                |State(m): Mgr, caller: Caller| async move {
                    let id = caller.session()?;
                    Ok::<_, ApiErr>(openapi::SessionEnded(m.admin.gate.logout(id)))
                },
                says("Log out: the session ends and its cookie is cleared"),
            ),
        )
        .api_route(
            "/v1/tokens",
            get_with(
                |State(m): Mgr| async move { Json(m.admin.gate.tokens()) },
                says("API tokens: name, role, expiry, last use (never the tokens themselves)"),
            )
            .post_with(
                |State(m): Mgr, caller: Caller, Body(req): Body<api::NewToken>| async move {
                    let by = caller.principal()?.clone();
                    blocking(move || m.admin.create_token(req, &by)).await.map(created)
                },
                says("Make an API token with a role (never more than the maker's) and an expiry; the secret is in this answer only, kept as a hash"),
            ),
        )
        .api_route(
            "/v1/tokens/{name}",
            delete_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>| async move {
                    blocking(move || m.admin.revoke_token(&name)).await.map(|()| NoContent)
                },
                says("Revoke an API token: requests with it are refused from now on"),
            ),
        )
        .api_route(
            "/v1/web",
            get_with(
                |State(m): Mgr| async move { Json(m.admin.info()) },
                says("Where HTTPS listens and the certificate it shows, with its SHA-256 fingerprint"),
            ),
        )
        .api_route(
            "/v1/web/certificate",
            put_with(
                |State(m): Mgr, Body(req): Body<api::InstallCertificate>| async move {
                    blocking(move || m.admin.install_certificate(req)).await.map(Json)
                },
                says("Install the facility's certificate and key (PEM); checked first (X.509, valid now, the key matches), and a refused one leaves the old in use"),
            ),
        )
        .api_route(
            "/v1/users/{name}/role",
            put_with(
                |State(m): Mgr, InPath(Named { name }): InPath<Named>, Body(req): Body<api::SetRole>| async move {
                    blocking(move || {
                        let user = m.smb.set_user_role(&name, req.role)?;
                        m.admin.gate.end_sessions_of(&name);
                        Ok(user)
                    })
                    .await
                    .map(Json)
                },
                says("Give an account a role on the admin plane (it logs in with its own password), or take it away; its open sessions end"),
            ),
        )
}

/// The document for [`routes`], with `/v1/openapi.json` itself in it.
pub fn document() -> (Router<Arc<Daemon>>, serde_json::Value) {
    let served: Arc<std::sync::OnceLock<serde_json::Value>> = Arc::default();
    let answer = Arc::clone(&served);
    let mut doc = openapi::blank_document();
    let router = routes()
        .merge(admin_plane_routes())
        .api_route(
            "/v1/openapi.json",
            get_with(
                move || {
                    let doc = answer.get().cloned().unwrap_or_default();
                    async move { Json(doc) }
                },
                says("This document"),
            ),
        )
        .finish_api(&mut doc);
    let router = openapi::only_documented(router, &doc);
    let value = serde_json::to_value(&doc).unwrap_or_default();
    let _ = served.set(value.clone());
    (router, value)
}

pub fn router(daemon: Arc<Daemon>) -> Router {
    let (router, _) = document();
    router
        .fallback(|uri: axum::http::Uri| async move {
            ApiErr::not_found(format!("no such API path: {uri}"))
                .hint("the API lives under /v1; see /v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiErr::new(
                405,
                "method-not-allowed",
                "this path does not take that method",
            )
            .hint("see /v1/openapi.json")
        })
        .with_state(daemon)
}

/// The account the appliance's console runs as (init starts it without root): its group
/// may use the socket too. Where there is no such group (rushesd on a host), root alone.
const CONSOLE_GROUP: &str = "rushes-console";

/// Make the API's socket at `socket`, afresh, reachable by root and by the console's
/// account where the machine has it. Done before the NFS port opens: init calls the box
/// ready when port 2049 listens, and the console and rushesctl must find the API then.
pub fn listen(socket: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name(CONSOLE_GROUP) {
        std::os::unix::fs::chown(socket, None, Some(group.gid.as_raw())).with_context(|| {
            format!("cannot give {} to group {CONSOLE_GROUP}", socket.display())
        })?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    }
    tracing::info!(socket = %socket.display(), "management API listening");
    Ok(listener)
}

/// Serve the API on `listener` (from [`listen`]) until the future is dropped.
pub async fn serve(listener: tokio::net::UnixListener, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    use anyhow::Context;
    let admin = Arc::clone(&daemon.admin);
    let audited = router(daemon).layer(axum::middleware::from_fn(
        move |mut req: Request, next: axum::middleware::Next| {
            let admin = Arc::clone(&admin);
            async move {
                req.extensions_mut().insert(OnSocket);
                let (method, path) = (req.method().clone(), req.uri().path().to_string());
                let response = next.run(req).await;
                if rushes_web::policy::changes(&method) {
                    admin.record(
                        "console",
                        &rushes_web::AdminAction::now(
                            "local".into(),
                            rushes_web::Principal::socket().user,
                            method.to_string(),
                            path,
                            response.status().as_u16(),
                        ),
                    );
                }
                response
            }
        },
    ));
    axum::serve(listener, audited)
        .await
        .context("the management API stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v` names a schema of the document.
    fn dangling_refs(v: &serde_json::Value, schemas: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(|r| r.as_str()) {
                    let name = r.trim_start_matches("#/components/schemas/");
                    if schemas.get(name).is_none() {
                        out.push(r.to_string());
                    }
                }
                o.values().for_each(|v| dangling_refs(v, schemas, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| dangling_refs(v, schemas, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_in_the_document_with_a_summary_its_answers_and_whole_schemas() {
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&errors);
        aide::generate::on_error(move |e| seen.lock().unwrap().push(e.to_string()));
        let (_, doc) = document();
        assert!(
            errors.lock().unwrap().is_empty(),
            "aide: {:?}",
            errors.lock().unwrap()
        );
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let paths = doc["paths"].as_object().expect("paths");
        let mut operations = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let what = format!("{method} {path}");
                assert!(
                    op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{what} has no summary"
                );
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|k| k.starts_with('2')),
                    "{what} documents no success: {responses:?}"
                );
                // Whatever takes input can be refused, in the one error shape.
                if method != "get" || path.contains('{') {
                    assert_eq!(
                        responses["default"]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{what} does not document the error body"
                    );
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        assert!(
                            path.contains(&format!("{{{}}}", p["name"].as_str().unwrap())),
                            "{what}: parameter {p} is not in the path"
                        );
                    }
                }
                let braces = path.matches('{').count();
                let in_path = op["parameters"]
                    .as_array()
                    .map_or(0, |ps| ps.iter().filter(|p| p["in"] == "path").count());
                assert_eq!(braces, in_path, "{what}: a path parameter is undocumented");
            }
        }
        // The routes as the CLI, the console and the README use them.
        assert!(operations >= 54, "only {operations} operations documented");
        let mut dangling = Vec::new();
        dangling_refs(&doc, &doc["components"]["schemas"], &mut dangling);
        assert!(dangling.is_empty(), "references to no schema: {dangling:?}");
        // The types' doc comments are the fields' descriptions.
        let pool = &doc["components"]["schemas"]["CreatePool"]["properties"];
        assert!(
            pool["wipe"]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{pool}"
        );
    }

    #[tokio::test]
    async fn a_route_the_document_does_not_list_is_refused() {
        use tower::ServiceExt;
        let mut doc = openapi::blank_document();
        let router: Router = ApiRouter::new()
            .api_route(
                "/v1/listed",
                get_with(|| async { Json(1u32) }, says("listed")),
            )
            .route("/v1/unlisted", axum::routing::get(|| async { "served" }))
            .finish_api(&mut doc);
        let router = openapi::only_documented(router, &doc);
        let call = |path: &str| {
            let req = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            router.clone().oneshot(req)
        };
        assert_eq!(call("/v1/listed").await.unwrap().status(), StatusCode::OK);
        let refused = call("/v1/unlisted").await.unwrap();
        assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: api::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error.code, "undocumented-route");
    }
}
