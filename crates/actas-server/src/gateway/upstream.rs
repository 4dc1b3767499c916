//! Phase 3, `upstream`: the recorded request goes to the product (or its mirror) with a
//! signed `Actas-Assertion`, and with only the browser's headers on the pass list
//! (`GatewayRules::passes_request_header`): never `Actas-*`, `Range`, routing overrides
//! such as `X-Original-URL`, or a name spelled with an underscore, which CGI-style
//! servers read as the dashed one. A change's outcome is recorded as soon as the product
//! answers, with its own account of what changed (`Actas-Audit`).

use super::context::ProxyCtx;
use super::error::GatewayError;
use super::request_filter::Filtered;
use super::{GatewayState, websocket};
use crate::assertion::Subject;
use crate::config::HostHeader;
use actas_core::Timestamp;
use actas_core::event::FieldChange;
use actas_core::policy::is_actas_cookie;
use actas_core::scope::Mode;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use std::net::SocketAddr;

/// What came back from the product.
pub(super) enum Forwarded {
    /// An HTTP answer, to be classified and masked.
    Http(reqwest::Response),
    /// A WebSocket, bridged: the upgrade answer for the browser.
    Live(Response),
}

pub(super) async fn upstream(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    request: Filtered,
    peer: SocketAddr,
) -> Result<Forwarded, GatewayError> {
    let (Some(session), Some(path)) = (ctx.session.clone(), ctx.path.clone()) else {
        return Err(GatewayError::Internal(
            "the request was not read before it was sent",
        ));
    };
    let info = session.session.info();
    ctx.base = base_for(state, info.mode)?;
    // The canonical path, which is the one the request spelled (others were redirected),
    // and the query as `record` left it.
    let query = request
        .query
        .as_deref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{}{path}{query}", ctx.base.trim_end_matches('/'));
    let assertion = assertion_for(state, &session)?;
    let mut headers = upstream_headers(state, &request.parts.headers, peer, &assertion);
    if let Some(receipt) = ctx.receipt.as_deref()
        && let Ok(v) = HeaderValue::from_str(receipt)
    {
        headers.insert(HeaderName::from_static("actas-receipt"), v);
    }
    if let Some(ws) = request.websocket {
        return websocket::bridge(state, ws, &url, headers, ctx, path)
            .await
            .map(Forwarded::Live);
    }
    let answer = state
        .client
        .request(request.parts.method.clone(), &url)
        .headers(headers)
        .body(request.body)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the product did not answer");
            GatewayError::Upstream
        })?;
    if ctx.is_change() {
        let (changes, said) = audited_changes(state, answer.headers());
        let description = said.unwrap_or_else(|| ctx.description.clone());
        state
            .service
            .record_outcome(
                &session,
                &path,
                &description,
                answer.status().as_u16(),
                changes,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the outcome of a change could not be recorded");
                GatewayError::OutcomeUnrecorded
            })?;
    }
    Ok(Forwarded::Http(answer))
}

/// The product's base URL for a session in `mode`: the mirror for mirror sessions.
pub(super) fn base_for(state: &GatewayState, mode: Mode) -> Result<String, GatewayError> {
    match (mode, &state.mirror) {
        (Mode::Mirror, Some(m)) => Ok(m.clone()),
        (Mode::Mirror, None) => Err(GatewayError::NoMirror),
        _ => Ok(state.upstream.clone()),
    }
}

/// `Host` and `X-Forwarded-*` for the product, as configured. They name the gateway's
/// public URL, never the client's `Host` (which Rails, for one, would read as the tenant
/// or the host of every URL it generates); what the browser sent of `X-Forwarded-*` or
/// `Forwarded` is never on the pass list.
fn forwarding_headers(state: &GatewayState, peer: SocketAddr, out: &mut HeaderMap) {
    let (scheme, host) = match state.public_url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest.split('/').next().unwrap_or(rest)),
        None => ("http", state.public_url.as_str()),
    };
    let host = HeaderValue::from_str(host).ok();
    if state.host == HostHeader::Browser
        && let Some(h) = &host
    {
        out.insert(header::HOST, h.clone());
    }
    if !state.forwarded_headers {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if let Ok(v) = HeaderValue::from_str(scheme) {
        out.insert(HeaderName::from_static("x-forwarded-proto"), v);
    }
    if let Some(h) = host {
        out.insert(HeaderName::from_static("x-forwarded-host"), h);
    }
}

/// The signed assertion of who is acting for whom, now, in this session: what every
/// request the gateway sends the product carries.
pub(super) fn assertion_for(
    state: &GatewayState,
    session: &crate::service::gateway::GatewayContext,
) -> Result<String, GatewayError> {
    let info = session.session.info();
    let subject = Subject {
        session: info.id,
        account: &info.account,
        staff: &session.staff,
        scope: &info.scope,
        mode: info.mode,
        ticket: &session.ticket,
    };
    state
        .assertions
        .sign(&subject, Timestamp::now())
        .map_err(|_| GatewayError::Unvouched)
}

/// The headers the product receives: the browser's that the policy lets pass, its
/// product cookies (never actas's own), and the signed assertion and forwarding headers
/// as configured (invariant 10).
pub(super) fn upstream_headers(
    state: &GatewayState,
    incoming: &HeaderMap,
    peer: SocketAddr,
    assertion: &str,
) -> HeaderMap {
    let rules = &state.service.policy().gateway;
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if rules.passes_request_header(name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    forwarding_headers(state, peer, &mut out);
    let product_cookies: Vec<&str> = incoming
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| {
            // Only the product's cookies the policy lists; actas's own never reach the
            // product: the gateway's, and the console's too (browsers send cookies by
            // host, not port, so when the console and the gateway share a host the
            // console's sign-in would come along).
            kv.split_once('=').is_some_and(|(name, _)| {
                let name = name.trim();
                !is_actas_cookie(name) && rules.cookies.iter().any(|c| c == name)
            })
        })
        .collect();
    if !product_cookies.is_empty()
        && let Ok(v) = HeaderValue::from_str(&product_cookies.join("; "))
    {
        out.insert(header::COOKIE, v);
    }
    // Ask for plain bodies: they are masked before they leave.
    out.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Ok(v) = HeaderValue::from_str(assertion) {
        out.insert(HeaderName::from_static("actas-assertion"), v);
    }
    out
}

/// The product's `Actas-Audit` header — `{"field", "from", "to", "description"}` or a
/// list of them — as field changes, masked by the policy like any JSON (field names match
/// `$.field_name`), and the product's own description of the change, if it gave one.
fn audited_changes(
    state: &GatewayState,
    headers: &reqwest::header::HeaderMap,
) -> (Vec<FieldChange>, Option<String>) {
    let Some(raw) = headers.get("actas-audit") else {
        return (Vec::new(), None);
    };
    // Read as bytes: the product's JSON may hold UTF-8 ("Zoë"), which `to_str` refuses.
    let items = match serde_json::from_slice::<serde_json::Value>(raw.as_bytes()) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(v @ serde_json::Value::Object(_)) => vec![v],
        _ => return (Vec::new(), None),
    };
    let items = &items[..items.len().min(MAX_AUDITED)];
    let changes = items
        .iter()
        .filter_map(|item| {
            let field = item.get("field")?.as_str()?.trim();
            if field.is_empty() {
                return None;
            }
            Some(FieldChange {
                field: field.replace('_', " "),
                from: state.service.masked_value(field, item.get("from")),
                to: state.service.masked_value(field, item.get("to")),
            })
        })
        .collect();
    let mut said: Vec<String> = Vec::new();
    for d in items
        .iter()
        .filter_map(|i| i.get("description")?.as_str())
        .filter_map(product_words)
    {
        if !said.contains(&d) {
            said.push(d);
        }
    }
    (changes, product_words(&said.join("; ")))
}

/// The most `Actas-Audit` items one answer may record.
const MAX_AUDITED: usize = 50;

/// The longest description, in characters, taken from the product for one answer.
const MAX_DESCRIPTION: usize = 200;

/// A description the product wrote, made fit for a ledger sentence: control characters
/// and runs of whitespace become single spaces, and it is cut at [`MAX_DESCRIPTION`]
/// characters. It is recorded as written, so the product writes it as the routes' are
/// ("renamed the company"); it is the product's prose, and secrets belong in `from` and
/// `to`, which are masked.
fn product_words(raw: &str) -> Option<String> {
    let words: Vec<&str> = raw
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let text: String = words.join(" ").chars().take(MAX_DESCRIPTION).collect();
    (!text.is_empty()).then_some(text)
}
