//! The customer-side API, for the product's apps (app key in `Authorization: Bearer`):
//! account sync, consent, confirmation codes, customer activity, access history, the
//! staff who acted, and the verifiable audit extract.

use super::ApiResult;
use crate::http::AppState;
use crate::http::auth::{App, ReportingApp};
use crate::http::error::{self, ApiError};
use crate::http::input::{Body, NoParams, Params, PathParts, from_value};
use crate::service::customer::{ActivityInput, Batch, Reported};
use actas_core::event::Actor;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// `PUT /accounts/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountBody {
    /// The account's name as staff and the ledger show it.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: String,
    /// Flags the policy reads, e.g. `sensitive`: a lower-case letter, then up to 39
    /// lower-case letters, digits or `_`.
    #[serde(default)]
    #[schema(inline, value_type = Vec<Flag>)]
    flags: Vec<String>,
}

/// One account flag, as the document describes it (the service parses it as an
/// `AccountFlag`).
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
#[allow(dead_code)]
struct Flag(String);

#[utoipa::path(
    put,
    path = "/accounts/{id}",
    summary = "Create or update an account (app key): name and flags; recorded as the app's doing, removed flags named",
    security(("appKey" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id")),
    request_body(content = AccountBody, example = json!({"name": "Acme Co", "flags": []})),
    responses(
        (status = 200, description = "The account", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
pub(super) async fn put_account(
    State(state): State<AppState>,
    App(app): App,
    _: NoParams,
    PathParts(id): PathParts<String>,
    Body(b): Body<AccountBody>,
) -> ApiResult<Response> {
    let account = state
        .service
        .sync_account(&app, &id, &b.name, &b.flags)
        .await?;
    Ok(Json(json!({
        "id": account.id,
        "name": account.name,
        "flags": account.flags,
        "consent": account.consent.as_str(),
    }))
    .into_response())
}

/// `PUT /accounts/{id}/consent`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentBody {
    /// `allowed`, `code_required` (every session needs a code from the customer) or
    /// `revoked` (no session may start; running ones end).
    #[schema(pattern = "^(allowed|code_required|revoked)$")]
    consent: String,
}

#[utoipa::path(
    put,
    path = "/accounts/{id}/consent",
    summary = "Set the customer's consent (app key): allowed, code_required or revoked. Revoking ends the account's active sessions at once",
    security(("appKey" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id")),
    request_body(content = ConsentBody, example = json!({"consent": "code_required"})),
    responses(
        (status = 200, description = "The account's consent", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
pub(super) async fn put_consent(
    State(state): State<AppState>,
    App(app): App,
    _: NoParams,
    PathParts(id): PathParts<String>,
    Body(b): Body<ConsentBody>,
) -> ApiResult {
    let account = state.service.set_consent(&app, &id, &b.consent).await?;
    Ok(Json(
        json!({ "id": account.id, "consent": account.consent.as_str() }),
    ))
}

#[utoipa::path(
    post,
    path = "/accounts/{id}/confirmation-codes",
    summary = "Make a one-time confirmation code the customer reads to the agent (app key): single use, 10 minutes",
    security(("appKey" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id")),
    responses(
        (status = 201, description = "The code, shown once", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
pub(super) async fn create_code(
    State(state): State<AppState>,
    App(app): App,
    _: NoParams,
    PathParts(id): PathParts<String>,
) -> ApiResult<Response> {
    let account = state.service.account_ref(&id).await?;
    let (code, expires_at) = state
        .service
        .issue_code(&account.id, Actor::Customer(account.clone()), Some(app))
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "code": code.display(),
            "expires_at": expires_at,
            "message": "Read this code to the support agent. It works once, for 10 minutes.",
        })),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/events",
    summary = "Report what the customer did (app key): one event, or {\"events\": [...]} (up to 1,000, all or nothing). A retry with the same idempotency_key writes nothing new",
    security(("appKey" = [])),
    request_body(content = crate::service::customer::Reported, example = json!({"account": "acme", "kind": "agreement_signed", "details": {"document": "the loan agreement LA-77"}, "idempotency_key": "sign-LA-77"})),
    responses(
        (status = 201, description = "Recorded; in a batch, at least one event was new", body = Object),
        (status = 200, description = "Already recorded: every idempotency_key was seen before, nothing new was written (`duplicate: true`)", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
pub(super) async fn post_events(
    State(state): State<AppState>,
    ReportingApp(app): ReportingApp,
    _: NoParams,
    Body(b): Body<Value>,
) -> ApiResult<Response> {
    // Parsed by hand from a Value so an error can name the item and field.
    // Told apart by hand, so an error names the field (`events[3].kind`) rather than
    // saying that neither form fits.
    let reported = match b {
        Value::Object(m) if m.contains_key("events") => {
            Reported::Batch(from_value::<Batch>(Value::Object(m), "")?)
        }
        other => Reported::One(from_value::<ActivityInput>(other, "")?),
    };
    let (inputs, batch) = match reported {
        Reported::Batch(b) => (b.events, true),
        Reported::One(one) => (vec![one], false),
    };
    let recorded = state
        .service
        .record_activities(&app, &inputs, batch)
        .await?;
    let created = recorded.iter().any(|r| !r.duplicate);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = if batch {
        json!({ "events": recorded })
    } else {
        serde_json::to_value(&recorded[0]).unwrap_or(Value::Null)
    };
    Ok((status, Json(body)).into_response())
}

/// Paging for the access history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    /// The page, from 0.
    #[serde(default)]
    page: u32,
    /// Sessions a page, 1 to 100 (20 when left out).
    #[serde(default = "per_page")]
    #[param(minimum = 1, maximum = 100)]
    per_page: u32,
}

fn per_page() -> u32 {
    20
}

#[utoipa::path(
    get,
    path = "/accounts/{id}/access-history",
    summary = "Support sessions on the account, newest first, with staff, times, end reason, ticket, reason, scope, approver and what was done (app key)",
    security(("appKey" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id"), PageQuery),
    responses(
        (status = 200, description = "A page of sessions", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
pub(super) async fn access_history(
    State(state): State<AppState>,
    App(_app): App,
    PathParts(id): PathParts<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult {
    let sessions = state
        .service
        .access_history(&id, q.page, q.per_page)
        .await?;
    let next = (sessions.len() as u32 >= q.per_page).then_some(q.page.saturating_add(1));
    Ok(Json(
        json!({ "sessions": sessions, "page": q.page, "next_page": next }),
    ))
}

#[utoipa::path(
    get,
    path = "/accounts/{id}/staff-who-acted",
    summary = "The names and roles of everyone who acted as the customer, with dates (app key)",
    security(("appKey" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id")),
    responses(
        (status = 200, description = "The staff", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
pub(super) async fn staff_who_acted(
    State(state): State<AppState>,
    App(_app): App,
    _: NoParams,
    PathParts(id): PathParts<String>,
) -> ApiResult {
    let staff = state.service.staff_who_acted(&id).await?;
    Ok(Json(json!({ "account": id, "staff": staff })))
}

/// `?format=csv` for people; JSON (the verifiable form) otherwise, or `json.gz` for it
/// compressed. `?since=` an earlier
/// extract's tree size, for a consistency proof from it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtractQuery {
    /// `json` (the verifiable form, when left out), `json.gz` (the same, compressed) or
    /// `csv` (for people).
    #[serde(default)]
    #[param(inline)]
    format: Option<ExtractFormat>,
    /// An earlier extract's tree size, for a consistency proof from it.
    #[serde(default)]
    #[param(minimum = 1)]
    since: Option<u64>,
}

/// The forms an audit extract comes in.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
pub(super) enum ExtractFormat {
    /// The verifiable JSON.
    #[serde(rename = "json")]
    Json,
    /// The same JSON, gzip-compressed.
    #[serde(rename = "json.gz")]
    JsonGz,
    /// A CSV table for people.
    #[serde(rename = "csv")]
    Csv,
}

#[utoipa::path(
    get,
    path = "/accounts/{id}/audit-extract",
    summary = "The account's verifiable audit extract (app key): every event of the account, one multi-leaf proof against a signed tree head, and a signed account checkpoint that shows none is missing. ?format=csv gives a table for people (no proofs); ?since= an earlier extract's tree size adds the consistency proof from it. Format: docs/extract-format.md",
    security(("appKey" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id"), ExtractQuery),
    responses(
        (status = 200, description = "The extract, as a download: JSON, the same JSON gzip-compressed (`format=json.gz`) or a CSV table (`format=csv`)", content(
            (Object = "application/json"),
            (String = "application/gzip"),
            (String = "text/csv"),
        )),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
pub(super) async fn audit_extract(
    State(state): State<AppState>,
    App(_app): App,
    PathParts(id): PathParts<String>,
    Params(q): Params<ExtractQuery>,
) -> ApiResult<Response> {
    let extract = state.service.audit_extract(&id, q.since).await?;
    let json = || {
        serde_json::to_string(&extract).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })
    };
    let (kind, ext, body): (&str, &str, Vec<u8>) = match q.format.unwrap_or(ExtractFormat::Json) {
        ExtractFormat::Csv => (
            "text/csv; charset=utf-8",
            "csv",
            crate::service::extract::extract_csv(&extract).into_bytes(),
        ),
        ExtractFormat::Json => ("application/json", "json", json()?.into_bytes()),
        // The same JSON, compressed: a fifth of the size or less (its bodies repeat
        // their field names), which both verifiers open as they are.
        ExtractFormat::JsonGz => {
            let text = json()?;
            let packed = tokio::task::spawn_blocking(move || {
                crate::service::extract::compress(text.as_bytes())
            })
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
            ("application/gzip", "json.gz", packed)
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"audit-extract-{}.{ext}\"",
                    extract.account
                ),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// `?after=` for `GET /accounts/{id}/activity/stream`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    after: Option<u64>,
}

/// How often the stream looks for new events.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// How long one stream runs before it ends and the client resumes with `Last-Event-ID`
/// (EventSource does this by itself): the app key is checked again at each reconnect, so
/// a revoked key stops streaming within this.
const STREAM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// `GET /accounts/{id}/activity/stream`: the account's events as they commit, as
/// server-sent events (`event: activity`, `id:` the sequence number, `data:` the event as
/// JSON). It starts with the newest event (so a watcher knows at once whether support is
/// in the account), or after `Last-Event-ID` / `?after=` when resuming, and ends when the
/// server stops.
#[utoipa::path(
    get,
    path = "/accounts/{id}/activity/stream",
    summary = "The account's events as they commit, as server-sent events (app key): event 'activity', id the sequence number, data the event as JSON; starts with the newest event, or after Last-Event-ID / ?after= when resuming",
    security(("appKey" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id"), StreamQuery),
    responses(
        (status = 200, description = "A stream of server-sent events: `event: activity`, `id:` the sequence number, `data:` the event as JSON", content_type = "text/event-stream"),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
pub(super) async fn activity_stream(
    State(state): State<AppState>,
    App(_app): App,
    PathParts(id): PathParts<String>,
    Params(q): Params<StreamQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.after);
    // Checks the account exists either way, so a bad id is a 404, not an empty stream.
    let newest = state.service.account_activity_start(&id).await?;
    // A place among the open streams, held until this one ends.
    let place = state
        .live_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many live activity streams are open right now; try again in a minute",
            )
        })?;
    let after = resume.unwrap_or(newest.saturating_sub(1));
    let ends = tokio::time::Instant::now() + STREAM_LIFETIME;
    let service = state.service.clone();
    let stopping = state.stopping.clone();
    let stream = futures_util::stream::unfold(
        (after, std::collections::VecDeque::new(), false),
        move |(mut after, mut queued, mut first)| {
            let (service, id, mut stopping) = (service.clone(), id.clone(), stopping.clone());
            let _place = &place;
            async move {
                loop {
                    if let Some(a) = queued.pop_front() {
                        let a: crate::service::live::LiveActivity = a;
                        let event = Event::default()
                            .event("activity")
                            .id(a.seq.to_string())
                            .json_data(&a)
                            .unwrap_or_else(|_| Event::default().comment("unreadable"));
                        return Some((
                            Ok::<_, std::convert::Infallible>(event),
                            (after, queued, first),
                        ));
                    }
                    if *stopping.borrow() || tokio::time::Instant::now() >= ends {
                        return None;
                    }
                    if first {
                        tokio::select! {
                            _ = tokio::time::sleep(STREAM_POLL) => {}
                            _ = stopping.changed() => return None,
                        }
                    }
                    first = true;
                    match service.account_activity_after(&id, after, 100).await {
                        Ok(batch) => {
                            if let Some(last) = batch.last() {
                                after = last.seq;
                            }
                            queued.extend(batch);
                        }
                        // The account went away or the store failed: the stream ends, and
                        // the client reconnects with the last id it saw.
                        Err(e) => {
                            tracing::warn!(error = %e, "an activity stream stopped");
                            return None;
                        }
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
