//! The customer-side API, for the product's apps (app key in `Authorization: Bearer`):
//! account sync, consent, confirmation codes, customer activity, access history, the
//! staff who acted, and the verifiable audit extract.

use super::ApiResult;
use crate::http::AppState;
use crate::http::auth::{App, ReportingApp};
use crate::http::error::ApiError;
use crate::http::input::{Body, NoParams, Params, PathParts, from_value};
use crate::service::customer::ActivityInput;
use actas_core::event::Actor;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// `PUT /accounts/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountBody {
    name: String,
    #[serde(default)]
    flags: Vec<String>,
}

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentBody {
    consent: String,
}

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

pub(super) async fn post_events(
    State(state): State<AppState>,
    ReportingApp(app): ReportingApp,
    _: NoParams,
    Body(b): Body<Value>,
) -> ApiResult<Response> {
    // Parsed by hand from a Value so an error can name the item and field.
    // A batch is `{"events": [...]}` and nothing else beside it.
    let (inputs, batch) = match b {
        Value::Object(mut m) if m.contains_key("events") => {
            if let Some(other) = m.keys().find(|k| *k != "events") {
                return Err(ApiError::invalid(
                    other.clone(),
                    format!("there is no field {other} beside events in a batch"),
                ));
            }
            let Some(Value::Array(items)) = m.remove("events") else {
                return Err(ApiError::invalid(
                    "events",
                    "events should be a list of events",
                ));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(from_value::<ActivityInput>(item, &format!("events[{i}]"))?);
            }
            (out, true)
        }
        other => (vec![from_value::<ActivityInput>(other, "")?], false),
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    #[serde(default)]
    page: u32,
    #[serde(default = "per_page")]
    per_page: u32,
}

fn per_page() -> u32 {
    20
}

pub(super) async fn access_history(
    State(state): State<AppState>,
    App(_): App,
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

pub(super) async fn staff_who_acted(
    State(state): State<AppState>,
    App(_): App,
    _: NoParams,
    PathParts(id): PathParts<String>,
) -> ApiResult {
    let staff = state.service.staff_who_acted(&id).await?;
    Ok(Json(json!({ "account": id, "staff": staff })))
}

/// `?format=csv` for people; JSON (the verifiable form) otherwise, or `json.gz` for it
/// compressed. `?since=` an earlier
/// extract's tree size, for a consistency proof from it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtractQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    since: Option<u64>,
}

pub(super) async fn audit_extract(
    State(state): State<AppState>,
    App(_): App,
    PathParts(id): PathParts<String>,
    Params(q): Params<ExtractQuery>,
) -> ApiResult<Response> {
    let extract = state.service.audit_extract(&id, q.since).await?;
    let json = || {
        serde_json::to_string(&extract).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })
    };
    let (kind, ext, body): (&str, &str, Vec<u8>) = match q.format.as_deref() {
        Some("csv") => (
            "text/csv; charset=utf-8",
            "csv",
            crate::service::extract::extract_csv(&extract).into_bytes(),
        ),
        None | Some("json") => ("application/json", "json", json()?.into_bytes()),
        // The same JSON, compressed: a fifth of the size or less (its bodies repeat
        // their field names), which both verifiers open as they are.
        Some("json.gz") => {
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
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("give json, json.gz or csv, not {other:?}"),
            ));
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
#[derive(Debug, Deserialize)]
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
pub(super) async fn activity_stream(
    State(state): State<AppState>,
    App(_): App,
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
