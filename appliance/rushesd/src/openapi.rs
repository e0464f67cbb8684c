//! The management API's OpenAPI document, generated rather than written: aide reads each
//! route's extractors and answer types, schemars gives every type's schema from
//! `rushes-api` (its doc comments become the descriptions), and the answers that are not
//! plain JSON (202 with a job, 201, 204, CSV exports, the error body) say here what they
//! are. A route that the document does not list is refused, so none can be served
//! undocumented.

use std::collections::HashSet;
use std::sync::Arc;

use aide::generate::GenContext;
use aide::openapi::{MediaType, OpenApi, Operation, Response as DocResponse, SchemaObject};
use aide::transform::TransformOperation;
use aide::OperationOutput;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rushes_api as api;
use schemars::JsonSchema;

use crate::error::ApiErr;

/// The operation's one-line summary, as `rushesctl` users and the document read it.
pub fn says(
    summary: &'static str,
) -> impl FnOnce(TransformOperation<'_>) -> TransformOperation<'_> {
    move |op| op.summary(summary)
}

/// The document's title and what it covers.
pub fn blank_document() -> OpenApi {
    OpenApi {
        info: aide::openapi::Info {
            title: "Rushes management API".into(),
            version: "1".into(),
            description: Some(
                "HTTP + JSON on the Unix socket /run/rushes/api.sock (root and the console). rushesctl \
                 and the console use nothing else. Long operations answer 202 with a job to \
                 watch at /v1/jobs/{id}; every error has the body {\"error\": {\"code\", \
                 \"message\", \"hint\"}}."
                    .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn json_response<T: JsonSchema>(ctx: &mut GenContext, op: &mut Operation) -> Option<DocResponse> {
    Json::<T>::operation_response(ctx, op)
}

/// A JSON answer with status `STATUS` (201 for what was made, 202 for the job that
/// does the work), documented as such.
pub struct Answer<const STATUS: u16, T>(pub T);

/// `202 Accepted` with a body, most often the job that does the work.
pub fn accepted<T>(body: T) -> Answer<202, T> {
    Answer(body)
}

/// `201 Created` with what was made.
pub fn created<T>(body: T) -> Answer<201, T> {
    Answer(body)
}

impl<const STATUS: u16, T: serde::Serialize> IntoResponse for Answer<STATUS, T> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(STATUS).unwrap_or(StatusCode::OK);
        (status, Json(self.0)).into_response()
    }
}

impl<const STATUS: u16, T: JsonSchema> OperationOutput for Answer<STATUS, T> {
    type Inner = T;
    fn operation_response(ctx: &mut GenContext, op: &mut Operation) -> Option<DocResponse> {
        json_response::<T>(ctx, op)
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        json_response::<T>(ctx, op)
            .map(|r| (Some(STATUS), r))
            .into_iter()
            .collect()
    }
}

/// A web login: the session's cookie set, and what the page needs of it (the CSRF token).
pub struct SessionStarted(pub rushes_api::SessionInfo, pub String);

impl IntoResponse for SessionStarted {
    fn into_response(self) -> Response {
        ([(axum::http::header::SET_COOKIE, self.1)], Json(self.0)).into_response()
    }
}

impl OperationOutput for SessionStarted {
    type Inner = rushes_api::SessionInfo;
    fn operation_response(ctx: &mut GenContext, op: &mut Operation) -> Option<DocResponse> {
        json_response::<rushes_api::SessionInfo>(ctx, op)
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        as_200(Self::operation_response(ctx, op))
    }
}

/// A logout: no body, and the cookie that clears the session in the browser.
pub struct SessionEnded(pub String);

impl IntoResponse for SessionEnded {
    fn into_response(self) -> Response {
        (
            StatusCode::NO_CONTENT,
            [(axum::http::header::SET_COOKIE, self.0)],
        )
            .into_response()
    }
}

impl OperationOutput for SessionEnded {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        vec![(Some(204), empty("logged out; the cookie is cleared"))]
    }
}

fn empty(description: &str) -> DocResponse {
    DocResponse {
        description: description.into(),
        ..Default::default()
    }
}

/// `202 Accepted` and no body: the appliance goes on to do it (reboot, power off).
pub struct Started;

impl IntoResponse for Started {
    fn into_response(self) -> Response {
        StatusCode::ACCEPTED.into_response()
    }
}

impl OperationOutput for Started {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        vec![(Some(202), empty("accepted: it happens now"))]
    }
}

/// A reset: the appliance restarts into the wizard (202), or host mode only forgets (204).
pub enum ResetDone {
    Restarting,
    Forgotten,
}

impl IntoResponse for ResetDone {
    fn into_response(self) -> Response {
        match self {
            Self::Restarting => StatusCode::ACCEPTED,
            Self::Forgotten => StatusCode::NO_CONTENT,
        }
        .into_response()
    }
}

impl OperationOutput for ResetDone {
    type Inner = ();
    fn inferred_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        vec![
            (
                Some(202),
                empty("reset; the appliance restarts into the first-boot wizard"),
            ),
            (Some(204), empty("reset (host mode: nothing restarts)")),
        ]
    }
}

/// Audit records as a file: CSV, or one JSON object per line.
pub struct Export {
    pub content_type: &'static str,
    pub body: String,
}

impl IntoResponse for Export {
    fn into_response(self) -> Response {
        (
            [(axum::http::header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}

impl OperationOutput for Export {
    type Inner = String;
    fn operation_response(_: &mut GenContext, _: &mut Operation) -> Option<DocResponse> {
        let text = || MediaType {
            schema: Some(SchemaObject {
                json_schema: schemars::json_schema!({"type": "string"}),
                example: None,
                external_docs: None,
            }),
            ..Default::default()
        };
        Some(DocResponse {
            description: "the records, oldest first".into(),
            content: [
                ("text/csv".to_string(), text()),
                ("application/x-ndjson".to_string(), text()),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        })
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        as_200(Self::operation_response(ctx, op))
    }
}

/// A response documented as what a 200 answers.
fn as_200(r: Option<DocResponse>) -> Vec<(Option<u16>, DocResponse)> {
    r.map(|r| (Some(200), r)).into_iter().collect()
}

/// A picture: a clip's thumbnail as JPEG.
pub struct Jpeg(pub Vec<u8>);

impl IntoResponse for Jpeg {
    fn into_response(self) -> Response {
        (
            [
                (axum::http::header::CONTENT_TYPE, "image/jpeg"),
                // Kept until the clip changes, which changes nothing here: a day.
                (axum::http::header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            self.0,
        )
            .into_response()
    }
}

impl OperationOutput for Jpeg {
    type Inner = Vec<u8>;
    fn operation_response(_: &mut GenContext, _: &mut Operation) -> Option<DocResponse> {
        Some(DocResponse {
            description: "the picture, JPEG".into(),
            content: [(
                "image/jpeg".to_string(),
                MediaType {
                    schema: Some(SchemaObject {
                        json_schema: schemars::json_schema!({"type": "string", "format": "binary"}),
                        example: None,
                        external_docs: None,
                    }),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        })
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        as_200(Self::operation_response(ctx, op))
    }
}

/// Every refusal and failure, whatever its status, has the one error body.
impl OperationOutput for ApiErr {
    type Inner = api::ErrorBody;
    fn operation_response(ctx: &mut GenContext, op: &mut Operation) -> Option<DocResponse> {
        let mut r = json_response::<api::ErrorBody>(ctx, op)?;
        r.description = "refused or failed: `error.code` says how (bad-request, not-found, \
                         conflict, ...), `message` what happened and `hint` what to do"
            .into();
        Some(r)
    }
    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        Self::operation_response(ctx, op)
            .map(|r| (None, r))
            .into_iter()
            .collect()
    }
}

/// The (METHOD, path) pairs the document lists, as axum names its routes.
pub fn operations(doc: &OpenApi) -> HashSet<(String, String)> {
    let mut found = HashSet::new();
    for (path, item) in doc.paths.iter().flat_map(|p| p.iter()) {
        let Some(item) = item.as_item() else { continue };
        for (method, _) in item.iter() {
            found.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    found
}

/// Refuse (500 `undocumented-route`) any route of `router` that `doc` does not list: one
/// added with axum's own `route` instead of aide's `api_route` fails every test that
/// calls it, rather than being served without a description.
pub fn only_documented<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    doc: &OpenApi,
) -> Router<S> {
    let known = Arc::new(operations(doc));
    router.route_layer(axum::middleware::from_fn(
        move |path: MatchedPath, req: Request, next: Next| {
            let known = Arc::clone(&known);
            async move {
                let method = match req.method().as_str() {
                    "HEAD" => "GET",
                    m => m,
                };
                if known.contains(&(method.to_string(), path.as_str().to_string())) {
                    next.run(req).await
                } else {
                    ApiErr::new(
                        500,
                        "undocumented-route",
                        format!("{method} {} is not in the OpenAPI document", path.as_str()),
                    )
                    .hint("declare the route with api_route so the document lists it")
                    .into_response()
                }
            }
        },
    ))
}
