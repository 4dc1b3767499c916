//! The gateway: the reverse proxy staff use while acting as a customer, on its own
//! origin. Each request goes through ordered phases — session check, route and scope,
//! record (durably), forward with a signed assertion, rewrite the response — and
//! anything that can't be checked, recorded or masked is refused, never passed through.
//!
//! Reserved paths under `/__actas/`: `enter` (hand-off), `status`, `end`, `banner.js`,
//! `banner.css`.
//!
//! What comes back is masked by kind: HTML streamed through [`rewrite`], JSON whole,
//! server-sent events event by event (`events`), WebSocket messages one by one
//! (`websocket`); a body that names no type or can't be unpacked is refused, and only
//! the response headers the policy lets through reach the browser.

mod events;
pub mod rewrite;
mod websocket;

use crate::assertion::{AssertionSigner, Subject};
use crate::config::HostHeader;
use crate::service::gateway::{Admission, GatewayContext, GatewayRequest};
use crate::service::{Service, ServiceError};
use actas_core::Timestamp;
use actas_core::event::FieldChange;
use actas_core::policy::GatewayRules;
use actas_core::policy::routes::Method;
use actas_core::session::Session;
use askama::Template;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt};
use rewrite::HtmlMasker;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// The gateway cookie: HttpOnly, and SameSite=Lax because the way in is a cross-origin
/// navigation from the console (a Strict cookie would not be sent on that redirect).
pub const GATEWAY_COOKIE: &str = "actas_gw";

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct GatewayState {
    /// The rules.
    pub service: Service,
    /// HTML masking rules, checked at start.
    pub masker: Arc<HtmlMasker>,
    /// Signs `Actas-Assertion`.
    pub assertions: Arc<AssertionSigner>,
    /// The product ("live").
    pub upstream: String,
    /// A separate copy of the product for `mirror` sessions, if any.
    pub mirror: Option<String>,
    /// The HTTP client to the product.
    pub client: reqwest::Client,
    /// The largest JSON body the gateway reads whole to mask (HTML is streamed).
    pub max_body: usize,
    /// Which `Host` the product sees.
    pub host: HostHeader,
    /// Whether to send `X-Forwarded-*` headers.
    pub forwarded_headers: bool,
}

/// The gateway's router.
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/__actas/enter", get(enter))
        .route("/__actas/status", get(status))
        .route("/__actas/end", post(end))
        .route(
            "/__actas/banner.js",
            get(|| async { asset("text/javascript", include_str!("../../static/banner.js")) }),
        )
        .route(
            "/__actas/banner.css",
            get(|| async { asset("text/css", include_str!("../../static/banner.css")) }),
        )
        .fallback(proxy)
        .with_state(state)
}

fn asset(kind: &str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, format!("{kind}; charset=utf-8"))],
        body,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "banner.html")]
struct Banner<'a> {
    account: &'a str,
    account_id: &'a str,
    staff: &'a str,
    ticket: &'a str,
    scope: String,
    minutes_left: u64,
    ends_ms: i64,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "gateway_notice.html")]
struct Notice<'a> {
    title: &'a str,
    message: &'a str,
    banner: String,
}

fn banner(ctx: &GatewayContext, csrf: &str) -> String {
    let info = ctx.session.info();
    let b = Banner {
        account: ctx.account.name.as_str(),
        account_id: ctx.account.id.as_str(),
        staff: ctx.staff.name.as_str(),
        ticket: ctx.ticket.as_str(),
        scope: format!("may {}", info.scope.joined()),
        minutes_left: ctx
            .session
            .time_left(Timestamp::now())
            .as_secs()
            .div_ceil(60),
        ends_ms: info.expires_at.as_millis(),
        csrf,
    };
    // A banner that can't be rendered must not silently disappear: the page is refused.
    b.render().unwrap_or_default()
}

fn notice(status: StatusCode, title: &str, message: &str, banner: String) -> Response {
    let page = Notice {
        title,
        message,
        banner,
    }
    .render()
    .unwrap_or_else(|_| title.to_owned());
    (status, Html(page)).into_response()
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    crate::http::auth::cookie(headers, GATEWAY_COOKIE).map(str::to_owned)
}

#[derive(Deserialize)]
struct EnterQuery {
    token: String,
}

async fn enter(State(state): State<GatewayState>, Query(q): Query<EnterQuery>) -> Response {
    match state.service.enter_gateway(&q.token).await {
        Ok((_, cookie, _)) => {
            let set = format!(
                "{GATEWAY_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
                cookie.expose()
            );
            ([(header::SET_COOKIE, set)], Redirect::to("/")).into_response()
        }
        Err(e) => notice(
            StatusCode::FORBIDDEN,
            "This link can't be used",
            &format!("{e}. Start the session again from the actas console."),
            String::new(),
        ),
    }
}

async fn status(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    let Some(cookie) = cookie_value(&headers) else {
        return axum::Json(
            serde_json::json!({ "active": false, "message": "There is no support session here." }),
        )
        .into_response();
    };
    let body = match state.service.gateway_session(&cookie).await {
        Ok((Session::Active(a), _)) => match a.check(Timestamp::now()) {
            Ok(()) => serde_json::json!({
                "active": true,
                "ends_at_ms": a.info().expires_at.as_millis(),
                "seconds_left": a.time_left(Timestamp::now()).as_secs(),
            }),
            Err(_) => {
                serde_json::json!({ "active": false, "message": "This support session has reached its time limit." })
            }
        },
        Ok((Session::Ended(e), _)) => serde_json::json!({
            "active": false,
            "message": format!("This support session has ended ({}).", e.reason.as_str().replace('_', " ")),
        }),
        Err(_) => {
            serde_json::json!({ "active": false, "message": "There is no support session here." })
        }
    };
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

#[derive(Deserialize)]
struct EndForm {
    #[serde(default)]
    csrf: String,
}

async fn end(State(state): State<GatewayState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(cookie) = cookie_value(&headers) else {
        return notice(
            StatusCode::FORBIDDEN,
            "No support session",
            "There is no support session here.",
            String::new(),
        );
    };
    let Ok((session, login)) = state.service.gateway_session(&cookie).await else {
        return notice(
            StatusCode::FORBIDDEN,
            "No support session",
            "There is no support session here.",
            String::new(),
        );
    };
    let sent = serde_html_form::from_bytes::<EndForm>(&body)
        .map(|f| f.csrf)
        .unwrap_or_default();
    if sent.is_empty() || sent != login.csrf {
        return notice(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request was missing its security token.",
            String::new(),
        );
    }
    let staff = match state.service.store().staff(session.info().staff).await {
        Ok(Some(s)) => s,
        _ => {
            return notice(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Try again.",
                String::new(),
            );
        }
    };
    match state
        .service
        .end_session_by(&staff, session.info().id)
        .await
    {
        Ok(_) | Err(ServiceError::Conflict(_)) => notice(
            StatusCode::OK,
            "Support session ended",
            "You have left the customer's account. Everything you did is in the audit log.",
            String::new(),
        ),
        Err(e) => refusal(e, String::new()),
    }
}

fn refusal(e: ServiceError, banner: String) -> Response {
    match e {
        ServiceError::Unavailable(_) => notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Paused: the audit log can't be written",
            "Nothing was sent to the product. Try again in a moment.",
            banner,
        ),
        ServiceError::Unauthenticated(m) | ServiceError::Forbidden(m) => notice(
            StatusCode::FORBIDDEN,
            "This support session can't be used",
            &m,
            banner,
        ),
        other => notice(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            &other.to_string(),
            banner,
        ),
    }
}

fn is_navigation(state: &GatewayState, method: Method, headers: &HeaderMap, path: &str) -> bool {
    if method != Method::Get || state.service.policy().gateway.is_static_asset(path) {
        return false;
    }
    let dest = headers.get("sec-fetch-dest").and_then(|v| v.to_str().ok());
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    dest == Some("document") || (dest.is_none() && accept.contains("text/html"))
}

/// Submitted form fields, masked by the policy's JSON rules (`$.field`), for the record.
fn submitted_fields(state: &GatewayState, headers: &HeaderMap, body: &[u8]) -> Vec<FieldChange> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let mut doc = if is_form {
        let pairs: Vec<(String, String)> = serde_html_form::from_bytes(body).unwrap_or_default();
        serde_json::Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        )
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => return Vec::new(),
        }
    };
    let policy = state.service.policy();
    actas_core::mask::mask_json(&mut doc, policy.masking(), policy.unclassified);
    match doc {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| FieldChange {
                field: k.replace('_', " "),
                from: None,
                to: Some(match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `Host` and `X-Forwarded-*` for the product, as configured. What the browser sent of
/// `X-Forwarded-*` or `Forwarded` has already been dropped: it is never trusted.
fn forwarding_headers(
    state: &GatewayState,
    incoming: &HeaderMap,
    peer: SocketAddr,
    out: &mut HeaderMap,
) {
    let browser_host = incoming.get(header::HOST).cloned();
    if state.host == HostHeader::Browser
        && let Some(h) = &browser_host
    {
        out.insert(header::HOST, h.clone());
    }
    if !state.forwarded_headers {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    // The gateway's listener speaks plain HTTP; put TLS in front of it and this is what
    // that proxy saw, which the gateway can't know, so it says what it served.
    out.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    if let Some(h) = browser_host {
        out.insert(HeaderName::from_static("x-forwarded-host"), h);
    }
}

/// The headers the product receives: the browser's, less hop-by-hop headers, anything
/// `Actas-*`, forwarding headers it sent and the gateway's own cookie; plus the signed
/// assertion and forwarding headers as configured (invariant 10).
fn upstream_headers(
    state: &GatewayState,
    incoming: &HeaderMap,
    peer: SocketAddr,
    assertion: &str,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || n.starts_with("actas-")
            || n.starts_with("x-forwarded-")
            || n.starts_with("sec-websocket-")
            || n == "forwarded"
            || n == "cookie"
            || n == "accept-encoding"
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    forwarding_headers(state, incoming, peer, &mut out);
    let product_cookies: Vec<&str> = incoming
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| {
            // actas's own cookies never reach the product: the gateway's, and the
            // console's too (browsers send cookies by host, not port, so when the console
            // and the gateway share a host the console's sign-in would come along).
            !kv.is_empty()
                && kv.split_once('=').is_none_or(|(name, _)| {
                    let name = name.trim();
                    name != GATEWAY_COOKIE
                        && !name.starts_with("actas_")
                        && !name.starts_with("__Host-actas_")
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

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
];

async fn proxy(
    State(state): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let websocket = if parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    {
        match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(ws) => Some(ws),
            Err(rejection) => return rejection.into_response(),
        }
    } else {
        None
    };
    let Some(cookie) = cookie_value(&parts.headers) else {
        return notice(
            StatusCode::FORBIDDEN,
            "No support session",
            "Open the customer's account from the actas console.",
            String::new(),
        );
    };
    // Phase 1: the session is live (confirmed again by the record below, which also
    // refreshes its idle clock).
    let (ctx, login) = match state.service.gateway_context(&cookie).await {
        Ok(c) => c,
        Err(e) => return refusal(e, String::new()),
    };
    let active = ctx.session.clone();
    let csrf = login.csrf.clone();
    let bar = banner(&ctx, &csrf);
    if bar.is_empty() {
        return notice(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The banner could not be shown.",
            String::new(),
        );
    }
    let Ok(method) = Method::parse(parts.method.as_str()) else {
        return notice(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not allowed",
            "The gateway does not pass this kind of request.",
            bar,
        );
    };
    let path = parts.uri.path().to_owned();
    let body = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return notice(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The request is larger than the gateway accepts.",
                bar,
            );
        }
    };
    // Phases 2 and 3: route and scope, then the durable record.
    let req = GatewayRequest {
        method,
        path: &path,
        navigation: is_navigation(&state, method, &parts.headers, &path),
        live_connection: websocket.is_some(),
        fields: if method.is_safe() {
            Vec::new()
        } else {
            submitted_fields(&state, &parts.headers, &body)
        },
    };
    let description = match state.service.admit(&ctx, &req).await {
        Ok(Admission::Forward { description }) => description,
        Ok(Admission::Blocked { why }) => {
            return notice(
                StatusCode::FORBIDDEN,
                "Blocked by actas",
                &format!("{} {path} was not sent to the product: {why}.", method),
                bar,
            );
        }
        Err(e) => return refusal(e, bar),
    };
    // Phase 4: forward, with the signed assertion and without any client-supplied Actas-*
    // header or the gateway's own cookie.
    let info = active.info();
    let base = match (info.mode, &state.mirror) {
        (actas_core::scope::Mode::Mirror, Some(m)) => m.clone(),
        (actas_core::scope::Mode::Mirror, None) => {
            return notice(
                StatusCode::SERVICE_UNAVAILABLE,
                "No mirror",
                "This session is in mirror mode, but no mirror of the product is configured.",
                bar,
            );
        }
        _ => state.upstream.clone(),
    };
    let url = format!(
        "{}{}",
        base.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let subject = Subject {
        session: info.id,
        account: &info.account,
        staff: &ctx.staff,
        scope: &info.scope,
        mode: info.mode,
        ticket: &ctx.ticket,
    };
    let Ok(assertion) = state.assertions.sign(&subject, Timestamp::now()) else {
        return notice(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The request could not be vouched for, so it was not sent.",
            bar,
        );
    };
    let out = upstream_headers(&state, &parts.headers, peer, &assertion);
    if let Some(ws) = websocket {
        return websocket::bridge(&state, ws, &url, out, cookie, info.mode, bar).await;
    }
    let upstream = state
        .client
        .request(parts.method.clone(), &url)
        .headers(out)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(r) => r,
        Err(_) => {
            return notice(
                StatusCode::BAD_GATEWAY,
                "The product did not answer",
                "Try again in a moment.",
                bar,
            );
        }
    };
    // Phase 5: record the outcome of a change (with the product's own account of it), then
    // rewrite the response.
    if !method.is_safe() {
        let (changes, said) = audited_changes(&state, upstream.headers());
        let description = said.unwrap_or(description);
        if let Err(e) = state
            .service
            .record_outcome(&ctx, &description, upstream.status().as_u16(), changes)
            .await
        {
            tracing::error!(error = %e, "the outcome of a change could not be recorded");
            return notice(
                StatusCode::SERVICE_UNAVAILABLE,
                "The result could not be recorded",
                "The change was sent to the product, but its result could not be written to the audit log. Check the account before doing anything else.",
                bar,
            );
        }
    }
    respond(&state, &ctx, &cookie, upstream, bar, &base).await
}

async fn respond(
    state: &GatewayState,
    ctx: &GatewayContext,
    cookie: &str,
    mut upstream: reqwest::Response,
    bar: String,
    base: &str,
) -> Response {
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let attachment = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|d| d.to_ascii_lowercase().starts_with("attachment"));
    let policy = state.service.policy();
    if (attachment || content_type.starts_with("text/csv"))
        && !policy.allows_export(&ctx.session.info().scope)
    {
        return notice(
            StatusCode::FORBIDDEN,
            "Blocked by actas",
            "Downloads and exports need an approved export scope.",
            bar,
        );
    }
    // XHTML is read as HTML by the rewriter, and sent on as text/html so the browser reads
    // it the same way (the banner is HTML, not XML).
    let is_html =
        content_type.starts_with("text/html") || content_type.starts_with("application/xhtml+xml");
    let is_json = content_type.starts_with("application/json") || content_type.contains("+json");
    let is_events = content_type.starts_with("text/event-stream");
    let rewritten = is_html || is_json || is_events;
    // A browser would guess what an untyped body is, and might show it as a page: one
    // that was never masked and carries no banner. Only one that turns out empty passes.
    if content_type.is_empty()
        && may_have_body(status, &upstream)
        && !matches!(upstream.chunk().await, Ok(None))
    {
        return notice(
            StatusCode::BAD_GATEWAY,
            "Refused",
            "The product's answer did not say what kind of content it is, so it could not be checked for secrets, and it was not shown.",
            bar,
        );
    }
    // The client unpacks gzip, deflate and brotli as the body streams in, so everything
    // below sees plain bytes, and a compression bomb costs time, never memory. A body still
    // packed some other way can't be read to be masked, so it is not shown.
    let packed = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(unreadable)").trim())
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
    if let (true, Some(packing)) = (rewritten, packed) {
        return notice(
            StatusCode::BAD_GATEWAY,
            "Refused",
            &format!(
                "The product's answer is packed as {packing}, which the gateway can't unpack to check it for secrets, so it was not shown."
            ),
            bar,
        );
    }
    let body = if is_html {
        // Streamed: each chunk is masked and sent on as it arrives, so memory stays bounded
        // whatever the page's size. A chunk that can't be rewritten ends the response with
        // an error (the browser gets a broken page, never an unmasked one).
        let rewriter = state.masker.stream(&bar, Some(base));
        Body::from_stream(rewritten_html(upstream.bytes_stream(), rewriter))
    } else if is_json {
        // JSON is masked as a whole document, so it is read whole, up to the limit.
        let Some(raw) = read_limited(upstream, state.max_body).await else {
            return notice(
                StatusCode::BAD_GATEWAY,
                "Too large to check",
                "The product's answer is too large to be masked, or did not arrive whole, so it was not shown.",
                bar,
            );
        };
        match serde_json::from_slice::<serde_json::Value>(&raw) {
            Ok(mut v) => {
                let report =
                    actas_core::mask::mask_json(&mut v, policy.masking(), policy.unclassified);
                state.service.note_unclassified(report.unclassified);
                Body::from(serde_json::to_vec(&v).unwrap_or_default())
            }
            Err(_) => {
                return notice(
                    StatusCode::BAD_GATEWAY,
                    "Refused",
                    "The product's answer could not be masked, so it was not shown.",
                    bar,
                );
            }
        }
    } else if is_events {
        // Event by event, each event's JSON masked as it completes.
        Body::from_stream(masked_events(
            upstream.bytes_stream(),
            state.clone(),
            cookie.to_owned(),
        ))
    } else {
        Body::from_stream(upstream.bytes_stream())
    };
    let (response, dropped) = product_headers(
        Response::builder().status(status),
        &headers,
        &policy.gateway,
        &content_type,
        rewritten,
        base,
    );
    state.service.note_unclassified(dropped);
    // The browser takes the content for what it says it is, never for what it looks like:
    // a body passed through unrewritten can't be turned into a page without the banner.
    response
        .header("x-content-type-options", "nosniff")
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// The product's response headers as the browser gets them: hop-by-hop and `Actas-*`
/// headers dropped, and any header the policy doesn't let through (see
/// [`GatewayRules::passes_response_header`]) dropped and returned, named `header <name>`,
/// to be counted; `Location` and `Set-Cookie` kept on the gateway, XHTML labelled as HTML,
/// and `Content-Length` kept only for a body that is not `rewritten`.
fn product_headers(
    mut response: axum::http::response::Builder,
    headers: &HeaderMap,
    rules: &GatewayRules,
    content_type: &str,
    rewritten: bool,
    base: &str,
) -> (axum::http::response::Builder, BTreeSet<String>) {
    let mut dropped = BTreeSet::new();
    for (name, value) in headers {
        let n = name.as_str();
        if n == "content-length" {
            // Kept for a body passed on as it came (the client drops it itself when it
            // unpacks one); a rewritten body's length is not known ahead.
            if !rewritten {
                response = response.header(name, value);
            }
            continue;
        }
        if HOP_BY_HOP.contains(&n) || n == "x-content-type-options" {
            continue;
        }
        if !rules.passes_response_header(n) {
            // It could carry what masking hides: dropped, and counted for the team.
            dropped.insert(format!("header {n}"));
            continue;
        }
        match n {
            "content-type" if content_type.starts_with("application/xhtml+xml") => {
                // Same parameters (the charset), read as HTML.
                let params = &content_type["application/xhtml+xml".len()..];
                if let Ok(v) = HeaderValue::from_str(&format!("text/html{params}")) {
                    response = response.header(header::CONTENT_TYPE, v);
                }
            }
            "location" => {
                // Keep the browser inside the gateway.
                let loc = value.to_str().unwrap_or("/");
                let local = rewrite::ProductOrigin::new(base).and_then(|o| o.keep_on_gateway(loc));
                if let Ok(v) = HeaderValue::from_str(local.as_deref().unwrap_or(loc)) {
                    response = response.header(header::LOCATION, v);
                }
            }
            "set-cookie" => {
                // Cookies belong to the gateway origin: drop any Domain the product names.
                let kept: Vec<&str> = value
                    .to_str()
                    .unwrap_or("")
                    .split(';')
                    .filter(|p| !p.trim().to_ascii_lowercase().starts_with("domain="))
                    .collect();
                if let Ok(v) = HeaderValue::from_str(&kept.join(";")) {
                    response = response.header(header::SET_COOKIE, v);
                }
            }
            _ => response = response.header(name, value),
        }
    }
    (response, dropped)
}

/// Whether an answer may carry a body for the browser to show: not one that is
/// informational, a redirect, `204 No Content` or `304 Not Modified`, or says it is empty.
fn may_have_body(status: StatusCode, upstream: &reqwest::Response) -> bool {
    !(status.is_informational()
        || status.is_redirection()
        || status == StatusCode::NO_CONTENT
        || upstream.content_length() == Some(0))
}

/// Reads a whole body, or None when it is larger than `limit` or breaks off.
async fn read_limited(upstream: reqwest::Response, limit: usize) -> Option<Bytes> {
    if upstream.content_length().is_some_and(|n| n > limit as u64) {
        return None;
    }
    let mut out = Vec::new();
    let mut chunks = upstream.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.ok()?;
        if out.len() + chunk.len() > limit {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(Bytes::from(out))
}

/// An event stream masked event by event as it streams from the product. Like a
/// WebSocket, it ends when the session does (checked every [`websocket::RECHECK`]): a
/// browser that reconnects then meets the gateway's refusal.
fn masked_events(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    state: GatewayState,
    cookie: String,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut recheck = tokio::time::interval(websocket::RECHECK);
    recheck.reset();
    let start = (Box::pin(upstream), events::EventMasker::default(), recheck);
    futures_util::stream::unfold(start, move |(mut upstream, mut masker, mut recheck)| {
        let (state, cookie) = (state.clone(), cookie.clone());
        async move {
            loop {
                tokio::select! {
                    chunk = upstream.next() => {
                        let out = match chunk? {
                            Ok(chunk) => Ok(Bytes::from(
                                masker.feed(&chunk, &|data| mask_json_text(&state, data)),
                            )),
                            Err(e) => Err(std::io::Error::other(e)),
                        };
                        return Some((out, (upstream, masker, recheck)));
                    }
                    _ = recheck.tick() => {
                        if websocket::session_over(&state, &cookie).await.is_some() {
                            return None;
                        }
                    }
                }
            }
        }
    })
}

/// JSON text from the product (a WebSocket message, an event's data), masked by the
/// policy with unclassified fields counted; `None` when it isn't JSON.
fn mask_json_text(state: &GatewayState, text: &str) -> Option<String> {
    let mut v = serde_json::from_str::<serde_json::Value>(text).ok()?;
    let policy = state.service.policy();
    let report = actas_core::mask::mask_json(&mut v, policy.masking(), policy.unclassified);
    state.service.note_unclassified(report.unclassified);
    serde_json::to_string(&v).ok()
}

/// An HTML body masked chunk by chunk as it streams from the product.
fn rewritten_html(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    rewriter: rewrite::HtmlStream,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let upstream = Box::pin(upstream);
    futures_util::stream::unfold(
        (upstream, Some(rewriter)),
        |(mut upstream, rewriter)| async move {
            let mut rewriter = rewriter?;
            let step = match upstream.next().await {
                Some(Ok(chunk)) => rewriter.feed(&chunk).map(|out| (out, Some(rewriter))),
                Some(Err(e)) => Err(rewrite::RewriteError::Rewrite(e.to_string())),
                None => rewriter.finish().map(|out| (out, None)),
            };
            Some(match step {
                Ok((out, next)) => (Ok(out), (upstream, next)),
                Err(e) => (Err(std::io::Error::other(e)), (upstream, None)),
            })
        },
    )
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
