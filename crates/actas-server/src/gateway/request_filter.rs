//! Phase 1, `request_filter`: what the request is, read from what the gateway can check
//! itself. The session behind the cookie is live; the method is one the gateway routes;
//! the path is read canonically ([`CanonicalPath`]) — a request that spells it otherwise
//! is redirected to the canonical form, so the product only ever receives paths the
//! policy matched in that same form; the body is read whole, up to the limit, and must
//! not be packed (it could not be recorded). Nothing the client claims decides whether
//! the request is recorded; its `Sec-Fetch-*` and `Accept` headers only say whether the
//! ledger calls it a page view or a data read.

use super::GatewayState;
use super::context::ProxyCtx;
use super::error::GatewayError;
use super::notice::banner;
use super::reserved::cookie_value;
use super::submission::{self, Submission};
use crate::service::ServiceError;
use actas_core::gateway::RequestKind;
use actas_core::gateway::path::{CanonicalPath, PathRefusal};
use actas_core::policy::routes::Method;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

/// A request the gateway has read and may decide on.
pub(super) struct Filtered {
    /// The browser's request line and headers.
    pub(super) parts: Parts,
    /// Its body, whole (as it will be sent on).
    pub(super) body: Bytes,
    /// Its query (as it will be sent on).
    pub(super) query: Option<String>,
    /// Its fields, read.
    pub(super) submission: Submission,
    /// The method it was sent with, as routed (`HEAD` as `GET`).
    pub(super) sent: Method,
    /// A POST's `_method`, the method the product may act on instead.
    pub(super) overridden: Option<Method>,
    /// The WebSocket upgrade, when it opens one.
    pub(super) websocket: Option<WebSocketUpgrade>,
    /// What kind of request it is.
    pub(super) kind: RequestKind,
}

pub(super) async fn request_filter(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    request: Request,
) -> Result<Filtered, GatewayError> {
    let (mut parts, body) = request.into_parts();
    let websocket = if is_upgrade(&parts.headers) {
        match WebSocketUpgrade::from_request_parts(&mut parts, state).await {
            Ok(ws) => Some(ws),
            Err(rejection) => {
                tracing::debug!(status = %rejection.into_response().status(), "a malformed WebSocket upgrade");
                return Err(GatewayError::BadRequest(
                    "its WebSocket upgrade was malformed",
                ));
            }
        }
    } else {
        None
    };
    enter_session(state, ctx, &parts.headers).await?;
    let sent = Method::parse(parts.method.as_str())
        .map_err(|_| GatewayError::Method(parts.method.as_str().to_owned()))?;
    let policy = state.service.policy();
    let path = CanonicalPath::parse(parts.uri.path(), policy.gateway.trailing_slash)
        .map_err(GatewayError::Path)?;
    if path.changed {
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return Err(GatewayError::NotCanonical(format!("{}{query}", path.path)));
    }
    let lookalike = !policy.gateway.case_sensitive && path.path.has_ascii_lookalikes();
    ctx.path = Some(path.path);
    let sent = actas_core::gateway::routing_method(sent);
    ctx.method = Some(sent);
    if lookalike {
        return Err(GatewayError::Path(PathRefusal::Lookalike));
    }
    if let Some(packing) = packed(&parts.headers) {
        return Err(GatewayError::PackedRequest(packing));
    }
    let body = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if too_large {
                GatewayError::TooLarge
            } else {
                GatewayError::BadRequest("its body did not arrive whole")
            });
        }
    };
    let submission = submission::read(&parts, &body).await?;
    // Rails, Laravel, Symfony and Express's method-override read a POST's `_method` as
    // the method the request really is: it is decided as that too (see `record`).
    let overridden = if sent == Method::Post {
        submission.method_override()?
    } else {
        None
    };
    if let Some(m) = overridden {
        ctx.method = Some(m);
    }
    let kind = if websocket.is_some() {
        RequestKind::LiveOpen
    } else if is_navigation(&parts.headers) {
        RequestKind::Navigation
    } else {
        RequestKind::Fetch
    };
    let query = parts.uri.query().map(str::to_owned);
    Ok(Filtered {
        parts,
        body,
        query,
        submission,
        sent,
        overridden,
        websocket,
        kind,
    })
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// A session that can't serve: ended, past a limit, unknown — or a ledger that can't
/// confirm it.
pub(super) fn session_refused(e: ServiceError) -> GatewayError {
    match e {
        ServiceError::Unavailable(_) => GatewayError::LedgerDown,
        ServiceError::Unauthenticated(m)
        | ServiceError::Forbidden(m)
        | ServiceError::Conflict(m)
        | ServiceError::NotFound(m) => GatewayError::SessionOver(m),
        other => {
            tracing::error!(error = %other, "a gateway session could not be read");
            GatewayError::Internal("the session could not be read")
        }
    }
}

/// The request body's packing, if it is packed.
fn packed(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_ENCODING)?;
    let text = value.to_str().unwrap_or("(unreadable)").trim();
    (!text.is_empty() && !text.eq_ignore_ascii_case("identity")).then(|| text.to_owned())
}

/// Whether the browser is loading a document to show (a navigation or a frame), by its
/// `Sec-Fetch-*` headers, or, from a client that sends none, by asking for HTML. This
/// only names the event (page view or data read); every request is recorded either way.
fn is_navigation(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (get("sec-fetch-mode"), get("sec-fetch-dest")) {
        (Some(mode), _) if mode.eq_ignore_ascii_case("navigate") => true,
        (_, Some(dest)) => matches!(dest, "document" | "iframe" | "frame"),
        (Some(_), None) => false,
        (None, None) => get("accept").is_some_and(|a| a.contains("text/html")),
    }
}

/// The session the request's gateway cookie names, still live, into `ctx` with the
/// banner every answer carries: what any request inside a session starts with.
pub(super) async fn enter_session(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    headers: &axum::http::HeaderMap,
) -> Result<(), GatewayError> {
    ctx.cookie = cookie_value(headers).ok_or(GatewayError::NoSession)?;
    let (session, login) = state
        .service
        .gateway_context(&ctx.cookie)
        .await
        .map_err(session_refused)?;
    ctx.banner = banner(&session, state.service.policy(), &login.csrf);
    ctx.session = Some(session);
    if ctx.banner.is_empty() {
        return Err(GatewayError::Internal("the banner could not be shown"));
    }
    Ok(())
}
