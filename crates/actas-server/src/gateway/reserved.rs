//! The gateway's own paths under `/__actas/`: `enter` (the hand-off from the console),
//! `status` (what the banner's countdown asks), `end` (the banner's End button), and the
//! banner's script and style. They never reach the product.

use super::notice::notice;
use super::{GATEWAY_COOKIE, GatewayState};
use crate::service::ServiceError;
use actas_core::Timestamp;
use actas_core::session::Session;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// The reserved routes; everything else goes to the proxy.
pub(super) fn routes() -> Router<GatewayState> {
    Router::new()
        .route("/__actas/enter", get(enter))
        .route("/__actas/status", get(status))
        .route("/__actas/end", post(end))
        .route("/__actas/send/{id}", get(super::signed::send))
        .route(
            "/__actas/banner.js",
            get(|| async { asset("text/javascript", include_str!("../../static/banner.js")) }),
        )
        .route(
            "/__actas/banner.css",
            get(|| async { asset("text/css", include_str!("../../static/banner.css")) }),
        )
}

fn asset(kind: &str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, format!("{kind}; charset=utf-8"))],
        body,
    )
        .into_response()
}

/// The gateway cookie's value, if the browser sent one.
pub(super) fn cookie_value(headers: &HeaderMap) -> Option<String> {
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
            "",
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
            "message": format!("This support session has ended. {}", actas_core::words::end_reason(e.reason)),
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
    let no_session = || {
        notice(
            StatusCode::FORBIDDEN,
            "No support session",
            "There is no support session here.",
            "",
        )
    };
    let Some(cookie) = cookie_value(&headers) else {
        return no_session();
    };
    let Ok((session, login)) = state.service.gateway_session(&cookie).await else {
        return no_session();
    };
    let sent = serde_html_form::from_bytes::<EndForm>(&body)
        .map(|f| f.csrf)
        .unwrap_or_default();
    if sent.is_empty() || sent != login.csrf {
        return notice(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request was missing its security token.",
            "",
        );
    }
    let staff = match state.service.store().staff(session.info().staff).await {
        Ok(Some(s)) => s,
        _ => {
            return notice(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Try again.",
                "",
            );
        }
    };
    match state
        .service
        .end_session_by(&staff, session.info().id)
        .await
    {
        Ok(_) | Err(ServiceError::Conflict(_)) => {
            let mut page = notice(
                StatusCode::OK,
                "Support session ended",
                "You have left the customer's account. Everything you did is in the audit log.",
                "",
            );
            // The cookie goes too: browsers then drop the session's pages from their
            // back-forward cache.
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
                "{GATEWAY_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
            )) {
                page.headers_mut().insert(header::SET_COOKIE, v);
            }
            page
        }
        Err(ServiceError::Unavailable(_)) => notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Paused: the audit log can't be written",
            "The session could not be ended yet. Try again in a moment.",
            "",
        ),
        Err(e) => notice(
            StatusCode::FORBIDDEN,
            "This support session can't be ended here",
            &e.to_string(),
            "",
        ),
    }
}
