//! The ledger's public face: its ledger keys (`/.well-known/actas-ledger-keys`), its
//! newest tree head as a C2SP checkpoint note, consistency proofs between sizes, and the
//! `/verify` page where a customer checks an extract in the browser.

use crate::http::AppState;
use crate::http::api::ApiResult;
use crate::http::auth::{App, Staff};
use crate::http::error::{self, ApiError};
use crate::http::input::{NoParams, Params};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

/// Every ledger key, current and earlier, with the heads each signed. Public: it is
/// what customers check extracts with.
pub(crate) async fn keys(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.service.ledger_keys(&state.ledger_origin).await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(json!({
            "origin": state.ledger_origin.as_str(),
            "keys": keys,
        })),
    )
        .into_response())
}

/// `GET /api/v1/ledger/checkpoint`: the newest tree head as a signed note. Public, as
/// transparency-log checkpoints are: it is a root hash and a size.
#[utoipa::path(
    get,
    path = "/ledger/checkpoint",
    summary = "The newest signed tree head as a C2SP tlog-checkpoint signed note (Ed25519). Public",
    security(()),
    responses(
        (status = 200, description = "The note", content_type = "text/plain", body = String),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
pub(crate) async fn checkpoint(State(state): State<AppState>, _: NoParams) -> ApiResult<Response> {
    let note = state.service.checkpoint_note(&state.ledger_origin).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        note,
    )
        .into_response())
}

/// The product's app or signed-in staff: who may read consistency proofs.
pub(crate) struct AppOrStaff;

impl FromRequestParts<AppState> for AppOrStaff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let app_key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim().starts_with(crate::service::apps::APP_KEY_PREFIX));
        if app_key {
            App::from_request_parts(parts, state).await?;
        } else {
            Staff::from_request_parts(parts, state).await?;
        }
        Ok(Self)
    }
}

/// `?from=&to=`: two tree sizes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    from: u64,
    to: u64,
}

/// `GET /api/v1/ledger/consistency?from=&to=`: the RFC 9162 consistency proof between
/// two tree sizes, as an extract's `consistency` field carries it.
#[utoipa::path(
    get,
    path = "/ledger/consistency",
    summary = "The RFC 9162 consistency proof between two tree sizes (app key or staff): {from, to, proof (base64 of the concatenated hashes)}",
    security(("appKey" = []), ("cookie" = []), ("token" = [])),
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
pub(crate) async fn consistency(
    State(state): State<AppState>,
    _: AppOrStaff,
    Params(q): Params<ConsistencyQuery>,
) -> ApiResult<Response> {
    let proof = state.service.consistency(q.from, q.to).await?;
    Ok((StatusCode::OK, Json(proof)).into_response())
}

/// The verifier page: one static file, its script checking an extract with WebCrypto.
const VERIFY_PAGE: &str = include_str!("../../static/verify.html");

/// The page's Content-Security-Policy: only its own inline script and style (by hash), and
/// no network access at all (`connect-src 'none'`), so a dropped file can't leave the
/// browser.
fn verify_csp() -> &'static str {
    static CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let between = |open: &str, close: &str| {
            let start = VERIFY_PAGE.find(open).map_or(0, |i| i + open.len());
            let end = VERIFY_PAGE[start..]
                .find(close)
                .map_or(start, |i| start + i);
            let hash = Sha256::digest(&VERIFY_PAGE.as_bytes()[start..end]);
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(hash)
            )
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'none'; img-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
            between("<script>", "</script>"),
            between("<style>", "</style>")
        )
    });
    &CSP
}

/// `GET /verify`: the page, with this instance's published ledger keys written into it
/// (so it needs nothing from the network once loaded).
pub(crate) async fn verify_page(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.service.ledger_keys(&state.ledger_origin).await?;
    let published = json!({ "origin": state.ledger_origin.as_str(), "keys": keys })
        .to_string()
        .replace('<', "\\u003c");
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, verify_csp()),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        VERIFY_PAGE.replace("{{PUBLISHED}}", &published),
    )
        .into_response())
}
