//! Signed actions at the gateway (`signed_action = true` routes). A change on such a
//! route is never sent as it arrives: [`hold`] reads the values it replaces from the
//! product (the route's `current` page, itself a recorded read), shows the agent the
//! exact change — field, from, to, masked as usual — and keeps the request as it would be
//! sent, with a link to confirm it on the console. There the agent proves again who they
//! are; the console then sends the browser to [`send`] with a single-use token, which
//! records the `session.signed_action` event (the token used in the same unit) and sends
//! the held request with that event, signed by the ledger key, as `Actas-Receipt`.

use super::context::ProxyCtx;
use super::error::GatewayError;
use super::request_filter::{Filtered, enter_session, session_refused};
use super::submission::Submission;
use super::{GatewayState, forward, logging, upstream};
use crate::service::ServiceError;
use crate::service::actions::Hold;
use crate::service::gateway::ForwardRecord;
use actas_core::event::FieldChange;
use actas_core::gateway::path::CanonicalPath;
use actas_core::gateway::submission::{
    Field, Source, changes, json_changes, json_fields, strict_json,
};
use actas_core::gateway::{BlockReason, ForwardKind, RequestKind};
use actas_core::policy::masking::carries_placeholder;
use actas_core::policy::routes::Method;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::net::SocketAddr;

/// The most a signed action's receipt may weigh: it travels as one header, which
/// products' servers cap at 8 to 16 KiB.
const MAX_RECEIPT: usize = 7 * 1024;

#[derive(Template)]
#[template(path = "gateway_held.html")]
struct HeldPage<'a> {
    banner: &'a str,
    description: &'a str,
    changes: &'a [FieldChange],
    confirm: &'a str,
    minutes: u64,
}

/// Holds a signed action: reads what it replaces, records it held, and answers with the
/// change and where to confirm it (428: nothing was sent, so no client takes it as done).
pub(super) async fn hold(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    request: Filtered,
    peer: SocketAddr,
    description: String,
    current: &str,
) -> Result<Response, GatewayError> {
    let refuse = |why| GatewayError::Blocked {
        capability: ctx.capability.clone(),
        why,
    };
    // A file upload can't be shown as a change, nor a message on a live connection.
    if !request.submission.is_structured()
        || request.submission.is_multipart()
        || request.websocket.is_some()
    {
        return Err(refuse(BlockReason::Unconfirmable));
    }
    // JSON that names a member twice reads differently to different products.
    let sent_json = if request.submission.is_json() {
        Some(strict_json(&request.body).map_err(|why| refuse(BlockReason::Ambiguous(why)))?)
    } else {
        None
    };
    let headers = held_headers(state, &request.parts.headers).map_err(|name| {
        refuse(BlockReason::Ambiguous(format!(
            "its header {name} is not plain text"
        )))
    })?;
    let (Some(session), Some(path)) = (ctx.session.clone(), ctx.path.clone()) else {
        return Err(GatewayError::Internal(
            "the request was not read before it was held",
        ));
    };
    let method = ctx.method.unwrap_or(request.sent);
    let shown = current_values(state, ctx, &request, peer, current, &path, method)
        .await
        .map_err(|why| match why {
            Fetched::Refused(why) => refuse(BlockReason::NoCurrentValues(why)),
            Fetched::Failed(e) => e,
        })?;
    let unmarked = |f: &&Field| !carries_placeholder(&f.name) && !carries_placeholder(&f.value);
    let changes = match (shown, sent_json) {
        (Current::Json(current), Some(sent)) => {
            let policy = state.service.policy();
            let mut shown = sent.clone();
            actas_core::mask::mask_json(&mut shown, policy.masking(), policy.unclassified);
            let query: Vec<Field> = request
                .submission
                .fields
                .iter()
                .filter(|f| f.source == Source::Query)
                .filter(unmarked)
                .cloned()
                .collect();
            let whole = !ctx.allows.partial_forms;
            let mut all = json_changes(&current, &sent, &shown, whole);
            all.extend(masked(state, changes(&[], &query, false)));
            all
        }
        (current, _) => {
            let (shown, form) = match current {
                Current::Form(fields) => (fields, true),
                Current::Json(doc) => (json_fields(&doc), false),
            };
            let sent: Vec<Field> = request
                .submission
                .fields
                .iter()
                .filter(unmarked)
                .cloned()
                .collect();
            // Where the product keeps a field left out as it is, leaving one out changes
            // nothing.
            let form = form && !ctx.allows.partial_forms;
            masked(state, changes(&shown, &sent, form))
        }
    };
    let content_type = request
        .parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let hold = Hold {
        method: request.parts.method.as_str().to_owned(),
        path: path.as_str().to_owned(),
        query: request.query.clone(),
        content_type,
        body: request.body.to_vec(),
        headers,
        description: description.clone(),
        changes,
    };
    // The receipt travels as one header, which products' servers cap at 8 to 16 KiB.
    if hold.receipt_estimate(&session) > MAX_RECEIPT {
        return Err(refuse(BlockReason::NoCurrentValues(
            "the change is too large to be signed as a receipt".into(),
        )));
    }
    let held_changes = hold.changes.clone();
    let id = state
        .service
        .hold_action(&session, hold)
        .await
        .map_err(session_refused)?;
    let confirm = format!("{}/actions/{id}", state.console_url.trim_end_matches('/'));
    let page = HeldPage {
        banner: &ctx.banner,
        description: &description,
        changes: &held_changes,
        confirm: &confirm,
        minutes: crate::service::actions::HOLD_FOR.as_secs() / 60,
    }
    .render()
    .map_err(|_| GatewayError::Internal("the held change could not be shown"))?;
    let mut response = (StatusCode::PRECONDITION_REQUIRED, Html(page)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(link) = HeaderValue::from_str(&format!("<{confirm}>; rel=\"confirm\"")) {
        headers.insert(header::LINK, link);
    }
    Ok(response)
}

/// The request's headers the held change is sent with: those the policy lets pass, as
/// the browser sent them (not its cookies: the send's own, fresher, go instead). The
/// error names one that isn't text.
fn held_headers(
    state: &GatewayState,
    headers: &axum::http::HeaderMap,
) -> Result<Vec<(String, String)>, String> {
    let rules = &state.service.policy().gateway;
    headers
        .iter()
        .filter(|(name, _)| {
            *name != header::CONTENT_TYPE
                && *name != header::CONTENT_LENGTH
                && rules.passes_request_header(name.as_str())
        })
        .map(|(name, value)| {
            value
                .to_str()
                .map(|v| (name.as_str().to_owned(), v.to_owned()))
                .map_err(|_| name.as_str().to_owned())
        })
        .collect()
}

/// What the route's `current` page shows, masked.
enum Current {
    /// The form that sends the route, as a browser would send it: a whole form, where a
    /// field left out of the submission is a change too.
    Form(Vec<Field>),
    /// A JSON document.
    Json(serde_json::Value),
}

/// Why the current values could not be read.
enum Fetched {
    /// In words that finish "… and ".
    Refused(String),
    /// The gateway or the ledger failed.
    Failed(GatewayError),
}

/// The values `current` shows, masked as the agent would see them.
async fn current_values(
    state: &GatewayState,
    ctx: &ProxyCtx,
    request: &Filtered,
    peer: SocketAddr,
    current: &str,
    path: &CanonicalPath,
    method: Method,
) -> Result<Current, Fetched> {
    let Some(session) = &ctx.session else {
        return Err(Fetched::Failed(GatewayError::Internal("no session")));
    };
    let trailing = state.service.policy().gateway.trailing_slash;
    let page = CanonicalPath::parse(current, trailing)
        .map_err(|_| Fetched::Refused(format!("its page {current} can't be read")))?
        .path;
    // A read like any other: decided (the scope must allow it) and recorded before it
    // is sent.
    let read = actas_core::gateway::decide(
        session.session.info(),
        state.service.policy(),
        &actas_core::gateway::Request {
            method: Method::Get,
            path: &page,
            kind: RequestKind::Fetch,
        },
    );
    if let actas_core::gateway::Decision::Block { why, .. } = read {
        return Err(Fetched::Refused(format!(
            "reading {page} is refused: {why}"
        )));
    }
    state
        .service
        .record_forward(
            session,
            ForwardRecord {
                kind: ForwardKind::DataRead,
                method: Method::Get,
                path: &page,
                description: &format!("read {page} to show the change it confirms"),
                fields: Vec::new(),
                bytes: 0,
            },
        )
        .await
        .map_err(|e| Fetched::Failed(session_refused(e)))?;
    let info = session.session.info();
    let base = upstream::base_for(state, info.mode).map_err(Fetched::Failed)?;
    let assertion = upstream::assertion_for(state, session).map_err(Fetched::Failed)?;
    let mut headers = upstream::upstream_headers(state, &request.parts.headers, peer, &assertion);
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/html, application/json"),
    );
    let answer = state
        .client
        .get(format!("{}{page}", base.trim_end_matches('/')))
        .headers(headers)
        .send()
        .await
        .map_err(|_| Fetched::Failed(GatewayError::Upstream))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(Fetched::Refused(format!(
            "the product answered {page} with status {}",
            status.as_u16()
        )));
    }
    let kind = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let too_large = || Fetched::Refused(format!("{page} is too large to be read"));
    if answer
        .content_length()
        .is_some_and(|n| n > state.max_body as u64)
    {
        return Err(too_large());
    }
    let body = answer
        .bytes()
        .await
        .map_err(|_| Fetched::Failed(GatewayError::Upstream))?;
    if body.len() > state.max_body {
        return Err(too_large());
    }
    let policy = state.service.policy();
    if kind.starts_with("text/html") {
        // The policy's own masking, never what the scope reveals: the values shown go
        // into the ledger and the receipt.
        let masked = state
            .masker
            .rewrite(&body, "")
            .map_err(|_| Fetched::Refused(format!("{page} could not be read to mask it")))?;
        let html = String::from_utf8_lossy(&masked);
        let fields = super::rewrite::controls::form_values(
            &html,
            page.as_str(),
            path.as_str(),
            request.parts.method.as_str(),
        )
        .ok_or_else(|| {
            Fetched::Refused(format!(
                "{page} has no form that sends {method} {path}, so the values it replaces are unknown"
            ))
        })?;
        let fields = fields
            .into_iter()
            .map(|(name, value)| Field {
                name,
                value,
                source: Source::Body,
            })
            .collect();
        Ok(Current::Form(fields))
    } else if kind.starts_with("application/json") || kind.contains("+json") {
        let mut doc = strict_json(&body)
            .map_err(|why| Fetched::Refused(format!("{page} can't be read as JSON: {why}")))?;
        actas_core::mask::mask_json(&mut doc, policy.masking(), policy.unclassified);
        Ok(Current::Json(doc))
    } else {
        Err(Fetched::Refused(format!(
            "{page} is neither a page nor JSON, so the values it replaces are unknown"
        )))
    }
}

/// The values sent, masked by the policy as any change's are (the values shown were
/// masked as the page was), each on its own under its real name, so no two fields can be
/// taken for one; a value the policy removes entirely is shown as hidden, never as absent.
fn masked(state: &GatewayState, changes: Vec<FieldChange>) -> Vec<FieldChange> {
    let policy = state.service.policy();
    changes
        .into_iter()
        .map(|c| {
            let to = c.to.map(|value| {
                let mut doc = serde_json::json!({ c.field.as_str(): value });
                actas_core::mask::mask_json(&mut doc, policy.masking(), policy.unclassified);
                match doc.as_object().and_then(|m| m.values().next()) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => actas_core::policy::masking::HIDDEN.to_owned(),
                }
            });
            FieldChange { to, ..c }
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct SendQuery {
    token: String,
}

/// Sends a confirmed signed action: `GET /__actas/send/{id}?token=…`, where the console
/// sends the browser once the agent confirmed it. Runs the proxy's later phases on the
/// held request, and `logging` whatever ends it.
pub(super) async fn send(
    State(state): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Query(q): Query<SendQuery>,
    request: Request,
) -> Response {
    let ctx = ProxyCtx::new(&request);
    logging::logged(&state, ctx, Some("SEND"), async |ctx| {
        send_phases(&state, ctx, peer, &id, &q.token, request).await
    })
    .await
}

async fn send_phases(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    peer: SocketAddr,
    id: &str,
    token: &str,
    request: Request,
) -> Result<Response, GatewayError> {
    let (parts, _) = request.into_parts();
    enter_session(state, ctx, &parts.headers).await?;
    let Some(session) = ctx.session.clone() else {
        return Err(GatewayError::NoSession);
    };
    let sending = state
        .service
        .send_action(&session, id, token)
        .await
        .map_err(|e| match e {
            // A wrong, used or late link: refused and recorded as such.
            e @ (ServiceError::NotFound(_)
            | ServiceError::Conflict(_)
            | ServiceError::Invalid { .. }) => GatewayError::Blocked {
                capability: None,
                why: BlockReason::NotSent(actas_core::words::clause(&e.to_string())),
            },
            other => session_refused(other),
        })?;
    let held = sending.action;
    let trailing = state.service.policy().gateway.trailing_slash;
    let path = CanonicalPath::parse(&held.path, trailing)
        .map_err(GatewayError::Path)?
        .path;
    let method =
        Method::parse(&held.method).map_err(|_| GatewayError::Method(held.method.clone()))?;
    ctx.method = Some(method);
    ctx.path = Some(path.clone());
    ctx.forwarded = Some(ForwardKind::Change);
    ctx.description = held.description.clone();
    ctx.page_seq = Some(sending.seq);
    ctx.receipt = Some(sending.receipt);
    let uri = match &held.query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut builder = axum::http::Request::builder()
        .method(held.method.as_str())
        .uri(uri);
    // As the browser sent the change (a product may check its Origin or CSRF header),
    // with the cookies it has now.
    for (name, value) in &held.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    for value in parts.headers.get_all(header::COOKIE) {
        builder = builder.header(header::COOKIE, value);
    }
    if let Some(kind) = &held.content_type {
        builder = builder.header(header::CONTENT_TYPE, kind);
    }
    let (held_parts, ()) = builder
        .body(())
        .map_err(|_| GatewayError::Internal("the held change could not be rebuilt"))?
        .into_parts();
    let body = Bytes::from(held.body);
    let submission: Submission = super::submission::read(&held_parts, &body).await?;
    let query = held.query;
    forward(
        state,
        ctx,
        Filtered {
            parts: held_parts,
            body,
            query,
            submission,
            sent: method,
            overridden: None,
            websocket: None,
            kind: RequestKind::Navigation,
        },
        peer,
    )
    .await
}
