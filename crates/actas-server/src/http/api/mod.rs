//! The JSON API under `/api/v1`: every console action, over the same service layer.
//! Errors are `{ "error": { "code", "message", "field" } }`.

mod customer;
mod views;

use super::AppState;
use super::auth::Staff;
use super::error::{self, ApiError};
use super::input::{Body, NoParams, OptionalBody, Params, PathParts};
use crate::service::access::{Auditor, Director, Lead};
use crate::service::auth::Via;
use crate::service::queries::LogQuery;
use crate::service::{AllowChange, Approval, RequestInput};
use actas_core::Timestamp;
use actas_core::ids::{AccountId, RequestId, SessionId};
use actas_core::scope::Risk;
use actas_core::staff::Email;
use actas_store::EventFilter;
use axum::extract::ConnectInfo;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use utoipa_axum::{router::OpenApiRouter, routes};
use views::{account_view, event_view, request_view, session_view};

pub(crate) type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// The `/api/v1` routes.
pub fn router() -> Router<AppState> {
    let (router, _) = operations().split_for_parts();
    router
        .layer(axum::extract::DefaultBodyLimit::max(
            super::input::BODY_LIMIT,
        ))
        // Last: they apply to the routes above.
        .method_not_allowed_fallback(wrong_method)
        .fallback(no_such_operation)
}

/// The OpenAPI 3.1 document of this API, generated from the handlers' annotations and
/// the types they parse (so a parameter, a body or a status can't change without it).
pub fn document() -> utoipa::openapi::OpenApi {
    operations().into_openapi()
}

/// The document as served at `/api/v1/openapi.json`, made once.
fn served_document() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    });
    &TEXT
}

/// Each operation with its handler and its description.
fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(me))
        .routes(routes!(home))
        .routes(routes!(create_token))
        .routes(routes!(begin_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(list_accounts))
        .routes(routes!(get_account, customer::put_account))
        .routes(routes!(customer::put_consent))
        .routes(routes!(customer::create_code))
        .routes(routes!(customer::access_history))
        .routes(routes!(customer::staff_who_acted))
        // An extract is large, and its bodies repeat their field names: sent to any client
        // that accepts gzip compressed in transit (about a fifth of its size; what is saved
        // is the same file), at the fast level. `json.gz` is compressed already.
        .merge(
            OpenApiRouter::default()
                .routes(routes!(customer::audit_extract))
                .layer(
                    tower_http::compression::CompressionLayer::new()
                        .quality(tower_http::CompressionLevel::Fastest)
                        .compress_when(
                            DefaultPredicate::new()
                                .and(NotForContentType::const_new("application/gzip")),
                        ),
                ),
        )
        .routes(routes!(customer::activity_stream))
        .routes(routes!(customer::post_events))
        .routes(routes!(crate::http::ledger::checkpoint))
        .routes(routes!(crate::http::ledger::consistency))
        .routes(routes!(list_requests, create_request))
        .routes(routes!(get_request))
        .routes(routes!(approve))
        .routes(routes!(deny))
        .routes(routes!(cancel))
        .routes(routes!(enter_code))
        .routes(routes!(my_session, start_session))
        .routes(routes!(reissue_handoff))
        .routes(routes!(get_session))
        .routes(routes!(end_session))
        .routes(routes!(add_note))
        .routes(routes!(review_session))
        .routes(routes!(page_copy))
        .routes(routes!(reviews))
        .routes(routes!(weekly_summary))
        .routes(routes!(allow_list, grant))
        .routes(routes!(revoke))
        .routes(routes!(confirm_grant))
        .routes(routes!(audit))
        .routes(routes!(rotate_assertion_key))
        .routes(routes!(openapi))
}

/// What the document says besides its operations: who it is for, how to authenticate,
/// and the error shape.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "actas staff API",
        version = "1",
        description = API_DESCRIPTION,
    ),
    servers((url = "/api/v1")),
    security(("cookie" = []), ("token" = [])),
    modifiers(&SecuritySchemes),
    components(schemas(error::ErrorBody, error::ErrorDetail), responses(
        error::NotJson, error::Unauthenticated, error::Forbidden, error::NotFound,
        error::Conflict, error::TooLarge, error::NotSentAsJson, error::Invalid,
        error::TooMany, error::Internal, error::LedgerUnavailable,
    )),
)]
struct ApiDoc;

/// The document's opening words: credentials, the error shape, limits.
const API_DESCRIPTION: &str = include_str!("description.md");

/// The three ways to authenticate, as the document's security schemes.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::auth::COOKIE,
                "The console's cookie, set by POST /sign-in. A request that changes something also sends X-CSRF-Token (from the sign-in's answer or GET /me) and the console's own Origin.",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A personal API token (POST /tokens). When a request carries both a token and the cookie, the token is used and the cookie is ignored."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "appKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An app key (`actas_app_…`) made with `actas app-key create`. Opens only the customer-side operations; staff operations refuse it."))
                    .build(),
            ),
        );
    }
}

/// A path the API doesn't have, answered in its error shape.
async fn no_such_operation(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_operation",
        format!(
            "there is no operation at {}; /api/v1/openapi.json lists them",
            uri.path()
        ),
    )
    .on("path")
}

/// A path the API has, with a method it doesn't take there (the Allow header, which the
/// router adds, lists those it does).
async fn wrong_method(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} {} is not an operation; the Allow header lists the methods it takes",
            method,
            uri.path()
        ),
    )
    .on("method")
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    summary = "This document",
    security(()),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn openapi(_: NoParams) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        served_document(),
    )
        .into_response()
}

fn request_id(text: &str) -> ApiResult<RequestId> {
    RequestId::parse(text).map_err(|e| ApiError::invalid("id", e.to_string()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
    password: String,
    /// The authenticator code, when two-step sign-in is on.
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/sign-in",
    summary = "Sign in with email, password and (if on) an authenticator code; sets the console cookie and returns the CSRF token",
    security(()),
    request_body(content = SignIn, example = json!({"email": "sarah@example.com", "password": "a-long-password"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 429, response = error::TooMany),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn sign_in(
    State(state): State<AppState>,
    _: NoParams,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<SignIn>,
) -> ApiResult<Response> {
    // It sets the console's cookie: a page on another site must not sign a browser in.
    if !state.site.same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "a sign-in sent from another site is refused",
        ));
    }
    let signed = state
        .service
        .sign_in(&body.email, &body.password, body.totp.as_deref(), peer.ip())
        .await?;
    let cookie = state.site.cookie(
        signed.token.expose(),
        crate::service::auth::LOGIN_TTL.as_secs(),
    );
    let view = json!({
        "staff": { "email": signed.staff.email, "name": signed.staff.name, "role": signed.staff.role },
        "csrf": signed.csrf,
    });
    Ok(([(header::SET_COOKIE, cookie)], Json(view)).into_response())
}

#[utoipa::path(
    post,
    path = "/sign-out",
    summary = "End this console sign-in",
    responses(
        (status = 204, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn sign_out(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
) -> ApiResult<Response> {
    state.service.sign_out(&who).await?;
    let cookie = state.site.cookie("", 0);
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

#[utoipa::path(
    get,
    path = "/me",
    summary = "Who is signed in, their allow-list level and CSRF token",
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn me(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    headers: HeaderMap,
) -> ApiResult {
    let mine = state.service.me(&who).await?;
    let csrf = match who.via() {
        Via::Cookie { csrf, .. } if state.site.session_cookie(&headers).is_some() => {
            Some(csrf.clone())
        }
        _ => None,
    };
    Ok(Json(json!({
        "email": who.staff().email,
        "name": who.staff().name,
        "role": who.staff().role,
        "allowed_up_to": mine.allowed_up_to,
        "totp": mine.totp_on,
        "csrf": csrf,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

#[utoipa::path(
    post,
    path = "/tokens",
    summary = "Create a personal API token, shown once (console sign-in only)",
    request_body(content = NewToken, example = json!({"name": "laptop"})),
    responses(
        (status = 201, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn create_token(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    Body(body): Body<NewToken>,
) -> ApiResult<Response> {
    if matches!(who.via(), Via::ApiToken) {
        return Err(ApiError::forbidden(
            "create API tokens from the console, signed in with your password",
        ));
    }
    let token = state.service.create_api_token(&who, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token.expose(), "note": "shown once; store it safely" })),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/totp",
    summary = "Start two-step sign-in: returns an otpauth:// URI for the authenticator app",
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn begin_totp(State(state): State<AppState>, Staff(who): Staff, _: NoParams) -> ApiResult {
    let uri = state.service.begin_totp(&who).await?;
    Ok(Json(
        json!({ "otpauth_uri": uri, "next": "add it to your authenticator app, then confirm with a code" }),
    ))
}

#[utoipa::path(
    post,
    path = "/totp/confirm",
    summary = "Turn two-step sign-in on with a current code",
    request_body(content = CodeBody, example = json!({"code": "123456"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn confirm_totp(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    Body(b): Body<CodeBody>,
) -> ApiResult {
    state.service.confirm_totp(&who, &b.code).await?;
    Ok(Json(json!({ "totp": "on" })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Search {
    /// Part of an account's name or id; empty lists the first accounts.
    q: Option<String>,
}

#[utoipa::path(
    get,
    path = "/accounts",
    summary = "Search customer accounts (with can_act_as for the caller)",
    params(Search),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn list_accounts(
    State(state): State<AppState>,
    Staff(who): Staff,
    Params(search): Params<Search>,
) -> ApiResult {
    let found = state
        .service
        .search_accounts(&who, search.q.as_deref().unwrap_or_default())
        .await?;
    let list: Vec<Value> = found
        .iter()
        .map(|l| account_view(&l.account, l.can_act_as))
        .collect();
    Ok(Json(json!({ "accounts": list })))
}

#[utoipa::path(
    get,
    path = "/accounts/{id}",
    summary = "One account, with can_act_as for the caller",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description = "the account's id")),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn get_account(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
) -> ApiResult {
    let id = AccountId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?;
    let view = state.service.account_view(&who, &id).await?;
    let mut out = account_view(&view.account, view.why_not.is_none());
    out["why_not"] = json!(view.why_not);
    out["capabilities"] = json!(
        view.capabilities
            .iter()
            .map(|c| json!({ "name": c.name, "description": c.description, "risk": c.risk, "blocked": c.blocked }))
            .collect::<Vec<_>>()
    );
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRequestBody {
    /// The customer's account (its id).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
    account: String,
    /// The support ticket this is for, in the form the policy names (e.g. `#4821`).
    #[schema(min_length = 1)]
    ticket: String,
    /// Why, in words the customer will read; the policy sets the shortest.
    #[schema(min_length = 1)]
    reason: String,
    /// What to do in the account, beyond reading (the policy's capability names).
    #[serde(default)]
    capabilities: Vec<String>,
    /// For how long; the policy sets the longest.
    #[serde(default, deserialize_with = "super::input::whole_number")]
    #[schema(minimum = 1)]
    minutes: Option<u64>,
    /// `read-only`, `live` or `mirror`, as the policy allows.
    mode: Option<String>,
    /// Your running session, when this request changes its scope.
    #[schema(format = Uuid)]
    for_session: Option<String>,
}

#[utoipa::path(
    post,
    path = "/requests",
    summary = "Ask to act as a customer",
    request_body(content = NewRequestBody, example = json!({"account": "acme", "ticket": "#4821", "reason": "Check invoice tax rate after plan change", "capabilities": [], "minutes": 30})),
    responses(
        (status = 201, description = "The request, waiting for a decision (its `id` names it from then on)", body = Object,
        links(
            ("GetRequest" = (operation_id = "get_request", parameters(("id" = "$response.body#/id")), description = "The request just made")),
            ("Approve" = (operation_id = "approve", parameters(("id" = "$response.body#/id")), description = "The request just made")),
            ("Deny" = (operation_id = "deny", parameters(("id" = "$response.body#/id")), description = "The request just made")),
            ("Cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/id")), description = "The request just made")),
            ("EnterCode" = (operation_id = "enter_code", parameters(("id" = "$response.body#/id")), description = "The request just made")),
        )),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn create_request(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    Body(b): Body<NewRequestBody>,
) -> ApiResult<Response> {
    let for_session = b
        .for_session
        .as_deref()
        .map(|s| SessionId::parse(s).map_err(|e| ApiError::invalid("for_session", e.to_string())))
        .transpose()?;
    let r = state
        .service
        .create_request(
            who.staff(),
            RequestInput {
                account: b.account,
                ticket: b.ticket,
                reason: b.reason,
                capabilities: b.capabilities,
                minutes: b.minutes,
                mode: b.mode,
                for_session,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(request_view(&r))).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RequestList {
    /// Only `pending` can be listed (the approval queue); leave it out for the same.
    #[param(pattern = "^pending$")]
    status: Option<String>,
}

#[utoipa::path(
    get,
    path = "/requests",
    summary = "The approval queue (leads and directors)",
    params(RequestList),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn list_requests(
    State(state): State<AppState>,
    lead: Lead,
    Params(q): Params<RequestList>,
) -> ApiResult {
    match q.status.as_deref() {
        Some("pending") | None => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "status",
                format!("{other:?} can't be listed; use status=pending"),
            ));
        }
    }
    let queue = state.service.queue(&lead).await?;
    let list: Vec<Value> = queue
        .iter()
        .map(|q| {
            let mut v = request_view(&q.request);
            v["requester_name"] = json!(q.requester);
            v["account_name"] = json!(q.account);
            v
        })
        .collect();
    Ok(Json(json!({ "requests": list })))
}

#[utoipa::path(
    get,
    path = "/requests/{id}",
    summary = "One request",
    params(("id" = String, Path, format = Uuid, description = "the request's id")),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn get_request(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
) -> ApiResult {
    let view = state.service.request_view(&who, request_id(&id)?).await?;
    let mut out = request_view(&view.request);
    out["account_name"] = json!(view.account.name);
    out["needs_password"] = json!(view.needs_password);
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// Fewer capabilities than asked for; all of them when left out.
    capabilities: Option<Vec<String>>,
    /// Fewer minutes than asked for; as asked when left out.
    #[serde(default, deserialize_with = "super::input::whole_number")]
    #[schema(minimum = 1)]
    minutes: Option<u64>,
    note: Option<String>,
}

#[utoipa::path(
    post,
    path = "/requests/{id}/approve",
    summary = "Approve, optionally narrowing the scope or shortening the time (never your own request)",
    params(("id" = String, Path, format = Uuid, description = "the request's id")),
    request_body(content = ApproveBody, example = json!({"minutes": 30, "note": "Fine for this ticket"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn approve(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
    Body(b): Body<ApproveBody>,
) -> ApiResult {
    let r = state
        .service
        .approve_request(
            who.staff(),
            request_id(&id)?,
            Approval {
                capabilities: b.capabilities,
                minutes: b.minutes,
                note: b.note,
            },
        )
        .await?;
    Ok(Json(request_view(&r)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    /// In words the customer and the auditors will read.
    #[schema(min_length = 1, pattern = "[^\\s]")]
    note: String,
}

#[utoipa::path(
    post,
    path = "/requests/{id}/deny",
    summary = "Deny with a note",
    params(("id" = String, Path, format = Uuid, description = "the request's id")),
    request_body(content = NoteBody, example = json!({"note": "The ticket doesn't need access to the account"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn deny(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
    Body(b): Body<NoteBody>,
) -> ApiResult {
    let r = state
        .service
        .deny_request(who.staff(), request_id(&id)?, &b.note)
        .await?;
    Ok(Json(request_view(&r)))
}

#[utoipa::path(
    post,
    path = "/requests/{id}/cancel",
    summary = "Withdraw your request",
    params(("id" = String, Path, format = Uuid, description = "the request's id")),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 409, response = error::Conflict),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
) -> ApiResult {
    let r = state
        .service
        .cancel_request(who.staff(), request_id(&id)?)
        .await?;
    Ok(Json(request_view(&r)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

#[utoipa::path(
    post,
    path = "/requests/{id}/code",
    summary = "Enter the customer's one-time confirmation code",
    params(("id" = String, Path, format = Uuid, description = "the request's id")),
    request_body(content = CodeBody, example = json!({"code": "ABCDE-FGHJK"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn enter_code(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
    Body(b): Body<CodeBody>,
) -> ApiResult {
    let r = state
        .service
        .enter_code(who.staff(), request_id(&id)?, &b.code)
        .await?;
    Ok(Json(request_view(&r)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// The approved request to start.
    #[schema(format = Uuid)]
    request: String,
    /// Needed when the last password check is older than the policy allows.
    password: Option<String>,
}

#[utoipa::path(
    post,
    path = "/sessions",
    summary = "Start a support session from an approved request; returns a single-use hand-off token",
    request_body(content = StartBody, example = json!({"request": "12345678-1234-4234-8234-123456789012"})),
    responses(
        (status = 201, description = "The session, started, with its single-use hand-off", body = Object,
        links(
            ("GetSession" = (operation_id = "get_session", parameters(("id" = "$response.body#/id")), description = "The session just started")),
            ("EndSession" = (operation_id = "end_session", parameters(("id" = "$response.body#/id")), description = "The session just started")),
            ("AddNote" = (operation_id = "add_note", parameters(("id" = "$response.body#/id")), description = "The session just started")),
            ("Review" = (operation_id = "review_session", parameters(("id" = "$response.body#/id")), description = "The session just started")),
        )),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn start_session(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    Body(b): Body<StartBody>,
) -> ApiResult<Response> {
    let id =
        RequestId::parse(&b.request).map_err(|e| ApiError::invalid("request", e.to_string()))?;
    let authenticated_at = password_checked_at(&state, &who, b.password.as_deref()).await?;
    let (session, token) = state
        .service
        .start_session(who.staff(), id, authenticated_at)
        .await?;
    Ok(handed_off(session, &token))
}

/// A running session with its single-use way in, as a start or a re-issue answers.
fn handed_off(
    session: actas_core::session::ActiveSession,
    token: &crate::service::HandoffToken,
) -> Response {
    let mut view = session_view(&actas_core::session::Session::Active(session));
    view["handoff"] = json!({
        "token": token.expose(),
        "path": format!("/__actas/enter?token={}", token.expose()),
        "expires_in_seconds": crate::service::HANDOFF_TTL.as_secs(),
    });
    (StatusCode::CREATED, Json(view)).into_response()
}

/// The time of the caller's last password check: now, if the body carries the password
/// (checked again), else their sign-in's.
async fn password_checked_at(
    state: &AppState,
    who: &crate::service::auth::Authenticated,
    password: Option<&str>,
) -> ApiResult<Timestamp> {
    Ok(match password {
        Some(p) => state.service.reauthenticate(who, p).await?,
        None => who.authenticated_at(),
    })
}

#[utoipa::path(
    get,
    path = "/sessions",
    summary = "Your active session, if any",
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn my_session(State(state): State<AppState>, Staff(who): Staff, _: NoParams) -> ApiResult {
    let mine = state.service.my_session(&who).await?;
    Ok(Json(
        json!({ "session": mine.map(|m| session_view(&actas_core::session::Session::Active(m.session))) }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReissueBody {
    /// Needed when the last password check is older than the policy allows.
    password: Option<String>,
}

/// A new single-use hand-off into the caller's running session.
#[utoipa::path(
    post,
    path = "/sessions/handoff",
    summary = "A new single-use hand-off into your running session (the password too if your last check is older than the policy allows); never a second session",
    request_body(content = ReissueBody, example = json!({})),
    responses(
        (status = 201, description = "The running session, with a new single-use hand-off", body = Object,
        links(
            ("GetSession" = (operation_id = "get_session", parameters(("id" = "$response.body#/id")), description = "The running session")),
            ("EndSession" = (operation_id = "end_session", parameters(("id" = "$response.body#/id")), description = "The running session")),
            ("AddNote" = (operation_id = "add_note", parameters(("id" = "$response.body#/id")), description = "The running session")),
            ("Review" = (operation_id = "review_session", parameters(("id" = "$response.body#/id")), description = "The running session")),
        )),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn reissue_handoff(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    Body(b): Body<ReissueBody>,
) -> ApiResult<Response> {
    let authenticated_at = password_checked_at(&state, &who, b.password.as_deref()).await?;
    let (session, token) = state
        .service
        .reissue_handoff(who.staff(), authenticated_at)
        .await?;
    Ok(handed_off(session, &token))
}

/// The caller's start page, as data: their requests and session, and what their role
/// has waiting (absent sections are not for their role).
#[utoipa::path(
    get,
    path = "/home",
    summary = "Your start page as data: your requests and session, and what your role has waiting",
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn home(State(state): State<AppState>, Staff(who): Staff, _: NoParams) -> ApiResult {
    let h = state.service.home(&who).await?;
    let queue = |items: &Vec<crate::service::queries::QueueItem>| -> Vec<Value> {
        items
            .iter()
            .map(|q| {
                let mut v = request_view(&q.request);
                v["requester_name"] = json!(q.requester);
                v["account_name"] = json!(q.account);
                v
            })
            .collect()
    };
    Ok(Json(json!({
        "requests": h.mine.iter().map(|m| {
            let mut v = request_view(&m.request);
            v["account_name"] = json!(m.account);
            v
        }).collect::<Vec<_>>(),
        "session": h.session.map(|m| session_view(&actas_core::session::Session::Active(m.session))),
        "queue": h.queue.as_ref().map(queue),
        "awaiting_code": h.awaiting_code.as_ref().map(queue),
        "reviews": h.reviews.map(|(waiting, overdue)| json!({ "waiting": waiting, "overdue": overdue })),
        "grants": h.grants.map(|g| g.iter().map(|a| json!({
            "email": a.staff.email, "name": a.staff.name, "max_risk": a.max_risk,
            "granted_at": a.granted_at.to_rfc3339(),
        })).collect::<Vec<_>>()),
        "ledger": h.ledger.map(|l| json!({
            "size": l.size,
            "newest_head": l.newest_head.map(|(size, at)| json!({ "size": size, "signed_at": at.to_rfc3339() })),
        })),
        "recent": h.recent.map(|r| r.iter().map(event_view).collect::<Vec<_>>()),
    })))
}

#[utoipa::path(
    get,
    path = "/sessions/{id}",
    summary = "A session with its timeline in plain language (your own, or any as a lead, director or auditor)",
    params(("id" = String, Path, format = Uuid, description = "the session's id")),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn get_session(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
) -> ApiResult {
    let id = SessionId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?;
    let view = state.service.session_view(&who, id).await?;
    let mut out = session_view(&view.session);
    out["staff_name"] = json!(view.staff);
    out["account_name"] = json!(view.account.name);
    out["timeline"] = json!(view.timeline.iter().map(event_view).collect::<Vec<_>>());
    Ok(Json(out))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EndBody {
    /// What was done and why (needed, by policy, when the session made changes).
    #[serde(default)]
    note: String,
}

#[utoipa::path(
    post,
    path = "/sessions/{id}/end",
    summary = "End a session (yours, or any as a director), optionally with a note of what you did: policy may require one when the session changed something",
    params(("id" = String, Path, format = Uuid, description = "the session's id")),
    request_body(content = EndBody, example = json!({"note": "Corrected the invoice address as the ticket asked"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn end_session(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
    OptionalBody(b): OptionalBody<EndBody>,
) -> ApiResult {
    let id = SessionId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?;
    // The body is optional: `{}`, `{"note": "…"}` or nothing at all.
    let ended = state
        .service
        .end_session_with_note(who.staff(), id, &b.note)
        .await?;
    Ok(Json(session_view(&ended)))
}

#[utoipa::path(
    post,
    path = "/sessions/{id}/note",
    summary = "Add a note of what you did and why to one of your own sessions, running or ended (shown on its timeline and to the customer)",
    params(("id" = String, Path, format = Uuid, description = "the session's id")),
    request_body(content = NoteBody, example = json!({"note": "Checked the tax rate; it was right"})),
    responses(
        (status = 201, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn add_note(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts(id): PathParts<String>,
    Body(b): Body<NoteBody>,
) -> ApiResult<Response> {
    let id = SessionId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?;
    state
        .service
        .add_session_note(who.staff(), id, &b.note)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "session": id.to_string(), "noted": true })),
    )
        .into_response())
}

fn review_item(i: &crate::service::reviews::ReviewItem) -> Value {
    json!({
        "session": i.session.info.id.to_string(),
        "staff": { "email": i.staff.email, "name": i.staff.name },
        "account": { "id": i.account.id, "name": i.account.name },
        "ticket": i.ticket,
        "ended_at": i.session.ended_at.to_rfc3339(),
        "end_reason": i.session.reason,
        "flags": i.flags,
        "why": i.flags.iter().map(|f| f.words()).collect::<Vec<_>>(),
        "due": i.due.to_rfc3339(),
        "overdue": i.overdue,
        "own": i.own,
        "review": i.review.as_ref().map(|r| json!({
            "reviewer": { "email": r.reviewer.email, "name": r.reviewer.name },
            "outcome": r.outcome,
            "note": r.note,
            "reviewed_at": r.at.to_rfc3339(),
        })),
    })
}

#[utoipa::path(
    get,
    path = "/sessions/{id}/pages/{seq}",
    summary = "A page of a session as the agent saw it: the masked HTML the gateway served for the request `seq` (a page view, a page fetched by a script or client, a change's answer; banner included), with its SHA-256 now and as the ledger recorded it (`session.pages_kept`) and its `content_type`; when they match, the page in `html` (UTF-8) or `html_base64` (any other encoding), and the opening is recorded in the ledger (`session.page_copy_opened`, in the customer's history). For the session's own staff member, leads, directors and auditors",
    params(("id" = String, Path, format = Uuid, description = "the session's id"), ("seq" = u64, Path, description = "The page view's ledger event number")),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn page_copy(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
    PathParts((id, seq)): PathParts<(String, String)>,
) -> ApiResult {
    let id = SessionId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?;
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::invalid("seq", "a page view's event number, e.g. 42"))?;
    let c = state.service.page_copy(&who, id, seq, true).await?;
    // The page's own bytes: as text when they are UTF-8, else base64.
    let (html, html_base64) = match (c.matches, std::str::from_utf8(&c.html)) {
        (false, _) => (None, None),
        (true, Ok(text)) => (Some(text.to_owned()), None),
        (true, Err(_)) => (
            None,
            Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                &c.html,
            )),
        ),
    };
    Ok(Json(json!({
        "session": id.to_string(),
        "page": seq,
        "path": c.path,
        "staff_name": c.staff,
        "account_name": c.account,
        "served_at": c.served_at.to_rfc3339(),
        "sha256": c.actual,
        "recorded": c.recorded.as_ref().map(|(event, sha256)| json!({ "event": event, "sha256": sha256 })),
        "content_type": c.content_type,
        "matches": c.matches,
        "html": html,
        "html_base64": html_base64,
    })))
}

#[utoipa::path(
    get,
    path = "/reviews",
    summary = "Leads: the review queue. `waiting`: ended sessions to review, overdue first, then flagged (changes, changes with no note, blocked attempts, scope changes, consent revoked, sensitive accounts), then a policy sample of quiet ones drawn at random when each session was written, each with its due date and whether it is overdue (policy `[review] within_days`, default 7); `follow_ups`: sessions whose newest review asks for a follow-up, open until a later review finds them fine; `reviewed`: sessions reviewed that ended in the last review period",
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn reviews(State(state): State<AppState>, lead: Lead, _: NoParams) -> ApiResult {
    let q = state.service.review_queue(&lead).await?;
    Ok(Json(json!({
        "waiting": q.waiting.iter().map(review_item).collect::<Vec<_>>(),
        "overdue": q.overdue,
        "follow_ups": q.follow_ups.iter().map(review_item).collect::<Vec<_>>(),
        "reviewed": q.reviewed.iter().map(review_item).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    /// `fine`, or `follow_up` (which needs a note).
    #[schema(pattern = "^\\s*(fine|follow_up)\\s*$")]
    outcome: String,
    /// What was seen; needed for a follow-up.
    #[serde(default)]
    note: String,
}

#[utoipa::path(
    post,
    path = "/sessions/{id}/review",
    summary = "Leads: record your review of an ended session that is not your own: fine, or needs follow-up with a note (a ledger event on the session's timeline)",
    params(("id" = String, Path, format = Uuid, description = "the session's id")),
    request_body(content = ReviewBody, example = json!({"outcome": "fine", "note": ""})),
    responses(
        (status = 201, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 404, response = error::NotFound),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn review_session(
    State(state): State<AppState>,
    lead: Lead,
    _: NoParams,
    PathParts(id): PathParts<String>,
    Body(b): Body<ReviewBody>,
) -> ApiResult<Response> {
    let id = SessionId::parse(&id).map_err(|e| ApiError::invalid("id", e.to_string()))?;
    state
        .service
        .review_session(&lead, id, &b.outcome, &b.note)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "session": id.to_string(), "reviewed": true, "outcome": b.outcome.trim() })),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WeekQuery {
    /// A day of the week to sum up, as 2026-11-30 (or an RFC 3339 time); this week when
    /// left out or empty.
    #[serde(default)]
    #[param(pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}.*)?$")]
    week: String,
}

#[utoipa::path(
    get,
    path = "/reviews/weekly",
    summary = "Leads: the weekly summary, Monday to Monday UTC, for the team and each person: sessions ended, changes, blocked attempts, denied requests, wrong passwords and wrong codes, and the failures that repeated (three or more)",
    params(WeekQuery),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn weekly_summary(
    State(state): State<AppState>,
    lead: Lead,
    Params(q): Params<WeekQuery>,
) -> ApiResult {
    let day = match q.week.trim() {
        "" => Timestamp::now(),
        text => Timestamp::parse(text)
            .ok_or_else(|| ApiError::invalid("week", "the week is a date like 2026-11-30"))?,
    };
    let w = state.service.weekly_summary(&lead, day).await?;
    let counts = |c: &crate::service::reviews::WeekCounts| {
        json!({
            "sessions": c.sessions, "changes": c.changes, "blocks": c.blocks,
            "denied": c.denied, "failed_sign_ins": c.failed_sign_ins, "wrong_codes": c.wrong_codes,
            "repeated_failures": c.repeated_failures(),
        })
    };
    Ok(Json(json!({
        "from": w.from.to_rfc3339(),
        "to": w.to.to_rfc3339(),
        "incomplete": w.incomplete,
        "team": counts(&w.team),
        "people": w.people.iter().map(|(p, c)| {
            let mut v = counts(c);
            v["email"] = json!(p.email);
            v["name"] = json!(p.name);
            v
        }).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/allow-list",
    summary = "Who may act as customers (directors)",
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn allow_list(State(state): State<AppState>, director: Director, _: NoParams) -> ApiResult {
    let view = state.service.allow_list_view(&director).await?;
    let review = state.service.policy().grant_review;
    let now = Timestamp::now();
    let list: Vec<Value> = view
        .entries
        .iter()
        .map(|a| {
            json!({
                "email": a.staff.email,
                "name": a.staff.name,
                "max_risk": a.max_risk,
                "granted_by": a.granted_by.email,
                "granted_at": a.granted_at.to_rfc3339(),
                "reason": a.reason,
                "revoked": a.revoked.as_ref().map(|(by, at, why)| json!({ "by": by.email, "at": at.to_rfc3339(), "reason": why })),
                "reviewed_at": a.reviewed_at.to_rfc3339(),
                "review_due": review.due(a.reviewed_at).to_rfc3339(),
                "suspended": a.revoked.is_none() && review.suspended(a.reviewed_at, now),
            })
        })
        .collect();
    Ok(Json(json!({ "allow_list": list })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    email: String,
    max_risk: String,
    reason: String,
}

#[utoipa::path(
    post,
    path = "/keys/assertion/rotate",
    summary = "Replace the key that signs the gateway's assertions (directors). The old key stays in the JWKS until its last assertion has expired.",
    responses(
        (status = 200, description = "The old and new key ids, and the key set now published", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn rotate_assertion_key(
    State(state): State<AppState>,
    Staff(who): Staff,
    _: NoParams,
) -> ApiResult<Response> {
    let (old_kid, new_kid) = state
        .service
        .rotate_assertion_key(Some(who.staff()), &state.assertions)
        .await?;
    Ok(Json(json!({
        "old_kid": old_kid,
        "new_kid": new_kid,
        "jwks": state.assertions.jwks(),
    }))
    .into_response())
}

#[utoipa::path(
    post,
    path = "/allow-list",
    summary = "Allow a staff member up to a risk level (directors)",
    request_body(content = GrantBody, example = json!({"email": "sarah@example.com", "max_risk": "medium", "reason": "Handles billing tickets"})),
    responses(
        (status = 201, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn grant(
    State(state): State<AppState>,
    director: Director,
    _: NoParams,
    Body(b): Body<GrantBody>,
) -> ApiResult<Response> {
    let email = Email::parse(&b.email).map_err(|e| ApiError::invalid("email", e.to_string()))?;
    let risk: Risk = b
        .max_risk
        .parse()
        .map_err(|e: actas_core::scope::ScopeError| ApiError::invalid("max_risk", e.to_string()))?;
    state
        .service
        .change_allow_list(
            &email,
            AllowChange::Grant(risk),
            &director.staff().email,
            &b.reason,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "email": email, "max_risk": risk })),
    )
        .into_response())
}

/// A director's request about one grant: whose, and why.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantReasonBody {
    email: String,
    reason: String,
}

/// Revokes or confirms one grant as the calling director; the email it was about.
async fn change_one(
    state: &AppState,
    director: &Director,
    b: &GrantReasonBody,
    change: AllowChange,
) -> ApiResult<Email> {
    let email = Email::parse(&b.email).map_err(|e| ApiError::invalid("email", e.to_string()))?;
    state
        .service
        .change_allow_list(&email, change, &director.staff().email, &b.reason)
        .await?;
    Ok(email)
}

#[utoipa::path(
    post,
    path = "/allow-list/revoke",
    summary = "Take a staff member off the allow-list (directors)",
    request_body(content = GrantReasonBody, example = json!({"email": "sarah@example.com", "reason": "Moved to another team"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn revoke(
    State(state): State<AppState>,
    director: Director,
    _: NoParams,
    Body(b): Body<GrantReasonBody>,
) -> ApiResult {
    let email = change_one(&state, &director, &b, AllowChange::Revoke).await?;
    Ok(Json(json!({ "email": email, "revoked": true })))
}

/// A director reviews a grant and keeps it as it is.
#[utoipa::path(
    post,
    path = "/allow-list/confirm",
    summary = "Directors: confirm a grant after its review, with a reason (its next review counts from now; an overdue, suspended grant works again)",
    request_body(content = GrantReasonBody, example = json!({"email": "sarah@example.com", "reason": "Still handles billing tickets"})),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = error::NotJson),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 409, response = error::Conflict),
        (status = 413, response = error::TooLarge),
        (status = 415, response = error::NotSentAsJson),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
        (status = 503, response = error::LedgerUnavailable),
    ),
)]
async fn confirm_grant(
    State(state): State<AppState>,
    director: Director,
    _: NoParams,
    Body(b): Body<GrantReasonBody>,
) -> ApiResult {
    let email = change_one(&state, &director, &b, AllowChange::Confirm).await?;
    Ok(Json(json!({ "email": email, "confirmed": true })))
}

/// The most events one page of `GET /audit` holds.
const MAX_LOG_PAGE: u32 = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only this account's events (its id).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
    account: Option<String>,
    /// Only this session's events (its id).
    #[param(format = Uuid)]
    session: Option<String>,
    /// Only events of this kind, e.g. `session.started`.
    kind: Option<String>,
    /// From this time on: 2026-11-23 or an RFC 3339 time.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}")]
    since: Option<String>,
    /// Up to this time: 2026-11-23 or an RFC 3339 time.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}")]
    until: Option<String>,
    /// Only what this staff member did (their e-mail address).
    #[param(format = Email)]
    staff: Option<String>,
    /// Events after this sequence number (the last page's `next_after`).
    after: Option<u64>,
    /// How many events, 1 to 1000 (100 when left out).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/audit",
    summary = "The activity log in plain language (leads, directors, auditors)",
    params(AuditQuery),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 401, response = error::Unauthenticated),
        (status = 403, response = error::Forbidden),
        (status = 422, response = error::Invalid),
        (status = 500, response = error::Internal),
    ),
)]
async fn audit(
    State(state): State<AppState>,
    reader: Auditor,
    Params(q): Params<AuditQuery>,
) -> ApiResult {
    let time = |v: Option<String>, field: &'static str| -> ApiResult<Option<Timestamp>> {
        v.filter(|s| !s.trim().is_empty())
            .map(|t| {
                Timestamp::parse(&t).ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        format!("{t:?} is not a date; write 2026-11-23 or an RFC 3339 time"),
                    )
                })
            })
            .transpose()
    };
    let staff = q
        .staff
        .filter(|s| !s.trim().is_empty())
        .map(|s| Email::parse(s.trim()).map_err(|e| ApiError::invalid("staff", e.to_string())))
        .transpose()?;
    let filter = EventFilter {
        account: q
            .account
            .filter(|s| !s.is_empty())
            .map(|a| AccountId::parse(&a).map_err(|e| ApiError::invalid("account", e.to_string())))
            .transpose()?,
        session: q
            .session
            .filter(|s| !s.is_empty())
            .map(|s| SessionId::parse(&s).map_err(|e| ApiError::invalid("session", e.to_string())))
            .transpose()?,
        kind: q.kind.filter(|s| !s.is_empty()),
        since: time(q.since, "since")?,
        until: time(q.until, "until")?,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LOG_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit is 1 to {MAX_LOG_PAGE} events"),
        ));
    }
    let query = LogQuery {
        filter,
        staff,
        after: q.after.unwrap_or(0),
        limit,
    };
    let events = state.service.activity(&reader, &query).await?;
    let next = (events.len() as u32 == limit)
        .then(|| events.last().map(|e| e.body.seq))
        .flatten();
    Ok(Json(
        json!({ "events": events.iter().map(event_view).collect::<Vec<_>>(), "next_after": next }),
    ))
}
