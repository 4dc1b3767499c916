//! The staff console: server-rendered pages (askama, escaped by default), every core step
//! working without JavaScript. Forms post back with a CSRF token and are checked against
//! the console's own origin, like the API.

mod pages;

use super::AppState;
use crate::service::auth::{Authenticated, Via};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The console routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route("/sign-in/sso", get(pages::sign_on))
        .route("/sign-in/sso/callback", get(pages::sign_on_callback))
        .route("/sign-out", post(pages::sign_out))
        .route("/accounts", get(pages::accounts))
        .route("/actions/{id}", get(pages::action))
        .route("/actions/{id}/confirm", post(pages::confirm_action))
        .route("/accounts/{id}", get(pages::account))
        .route("/accounts/{id}/requests", post(pages::create_request))
        .route("/accounts/{id}/audit", get(pages::account_audit))
        .route("/accounts/{id}/audit.csv", get(pages::account_audit_csv))
        .route("/requests/{id}", get(pages::request))
        .route("/requests/{id}/code", post(pages::enter_code))
        .route("/requests/{id}/start", post(pages::start))
        .route("/requests/{id}/cancel", post(pages::cancel))
        .route("/requests/{id}/approve", post(pages::approve))
        .route("/requests/{id}/deny", post(pages::deny))
        .route("/queue", get(pages::queue))
        .route("/start", get(pages::start_from_ticket))
        .route("/session", get(pages::session))
        .route("/session/handoff", post(pages::reissue_handoff))
        .route("/sessions/{id}", get(pages::session_timeline))
        .route("/sessions/{id}/end", post(pages::end_session))
        .route("/sessions/{id}/note", post(pages::add_note))
        .route("/sessions/{id}/review", post(pages::review))
        .route("/sessions/{id}/pages/{seq}", get(pages::page_copy))
        .route("/sessions/{id}/pages/{seq}/copy", get(pages::page_copy_raw))
        .route("/reviews", get(pages::reviews))
        .route("/reviews/week", get(pages::week))
        .route("/settings", get(pages::settings))
        .route("/settings/totp", post(pages::begin_totp))
        .route("/settings/totp/confirm", post(pages::confirm_totp))
        .route("/settings/tokens", post(pages::create_token))
        .route("/activity", get(pages::activity))
        .route("/activity.csv", get(pages::activity_csv))
        .route("/allow-list", get(pages::allow_list).post(pages::grant))
        .route("/allow-list/revoke", post(pages::revoke))
        .route("/allow-list/confirm", post(pages::confirm))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../../static/console.js"),
    )
        .into_response()
}

/// A page-rendering failure or a redirect to sign in (boxed: responses are large).
pub struct PageError(Box<Response>);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl PageError {
    fn sign_in() -> Self {
        PageError(Box::new(Redirect::to("/sign-in").into_response()))
    }

    /// To sign in, and back to `uri` afterwards (a GET page such as a helpdesk's link).
    fn sign_in_then(parts: &Parts) -> Self {
        // Only a page can be gone back to; a form sent with an expired sign-in can't be
        // replayed by a redirect.
        if parts.method != axum::http::Method::GET {
            return Self::sign_in();
        }
        let back = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let to = format!(
            "/sign-in?next={}",
            url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
        );
        PageError(Box::new(Redirect::to(&to).into_response()))
    }

    fn status(status: StatusCode, message: &str) -> Self {
        let heading = match status {
            StatusCode::FORBIDDEN => "Not for your role",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "That can't be done now",
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "Check the details",
            s if s.is_server_error() => "Something went wrong on our side",
            _ => "That didn't work",
        };
        let body = format!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width, initial-scale=1\"><title>{heading} · actas</title><link rel=stylesheet href=/static/console.css><main><h1>{heading}</h1><p>{}</p><p><a href=\"/\">Back to your start page</a></p></main>",
            htmlize::escape_text(message)
        );
        PageError(Box::new((status, Html(body)).into_response()))
    }
}

impl From<crate::service::ServiceError> for PageError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError as E;
        use actas_core::words;
        let message = match &e {
            E::Forbidden(m) | E::NotFound(m) | E::Conflict(m) => Some(words::sentence(m)),
            E::Invalid { .. } => Some(words::sentence(&e.to_string())),
            _ => None,
        };
        let api = super::error::ApiError::from(e);
        let response = api.into_response();
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return PageError::sign_in();
        }
        PageError::status(
            status,
            message
                .as_deref()
                .unwrap_or("That can't be done right now. Go back and try again in a moment."),
        )
    }
}

/// Renders a template into a page.
pub(crate) fn render<T: askama::Template>(t: &T) -> Result<Html<String>, PageError> {
    t.render().map(Html).map_err(|e| {
        tracing::error!(error = %e, "a page failed to render");
        PageError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The page could not be shown.",
        )
    })
}

/// A signed-in staff member on a console page (redirects to sign-in otherwise).
pub struct Signed(pub Authenticated, pub String);

impl FromRequestParts<AppState> for Signed {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = state
            .site
            .session_cookie(&parts.headers)
            .ok_or_else(|| PageError::sign_in_then(parts))?;
        let who = state
            .service
            .authenticate_cookie(token)
            .await
            .map_err(|_| PageError::sign_in_then(parts))?;
        let csrf = match who.via() {
            Via::Cookie { csrf, .. } => csrf.clone(),
            Via::ApiToken => String::new(),
        };
        Ok(Signed(who, csrf))
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// A posted console form from a signed-in staff member, whose CSRF token and origin
/// were checked; the only way a handler gets one.
pub struct Posted<T>(pub Authenticated, pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Signed(who, csrf) = Signed::from_request_parts(&mut parts, state).await?;
        if !state.site.same_origin(&parts.headers) {
            return Err(PageError::status(
                StatusCode::FORBIDDEN,
                "This form was sent from another site, so it was refused.",
            ));
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| {
                PageError::status(StatusCode::BAD_REQUEST, "The form could not be read.")
            })?;
        let sent: CsrfOnly = serde_html_form::from_bytes(&bytes).map_err(|_| {
            PageError::status(StatusCode::BAD_REQUEST, "The form could not be read.")
        })?;
        if sent.csrf.is_empty() || sent.csrf != csrf {
            return Err(PageError::status(
                StatusCode::FORBIDDEN,
                "This form is missing its security token. Reload the page and try again.",
            ));
        }
        let form: T = serde_html_form::from_bytes(&bytes).map_err(|e| {
            PageError::status(
                StatusCode::BAD_REQUEST,
                &format!("The form could not be read: {e}"),
            )
        })?;
        Ok(Posted(who, form))
    }
}
