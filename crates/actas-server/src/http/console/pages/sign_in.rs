//! Signing in and out.

use super::{Empty, Me, Page};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, render};
use crate::service::ServiceError;
use crate::service::sign_on::{FLOW_TTL, Finished, Purpose, binding_key};
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    me: Option<Me>,
    flash: Option<String>,
    email: String,
    error: Option<String>,
    next: Option<String>,
    /// The identity provider's name, when staff may sign in through it.
    provider: Option<String>,
    /// Whether actas's own passwords are accepted.
    passwords: bool,
    /// The sign-in form's own token, also set as a cookie (see [`FORM_COOKIE`]).
    csrf: String,
}

/// What names the cookie that carries the sign-in form's token: nobody is signed in
/// yet, so the form's token is checked against this cookie, which another site can
/// neither read nor set; a sign-in form posted from elsewhere (login CSRF) is refused.
const FORM_COOKIE: &str = "form";

impl SignInPage {
    fn new(state: &AppState, next: Option<String>) -> Self {
        Self::with_token(state, next, None)
    }

    /// The page for a browser that may already hold a form token (another tab's): it
    /// keeps that one, so signing in from either tab works.
    fn with_token(state: &AppState, next: Option<String>, held: Option<&str>) -> Self {
        let mut token = [0u8; 16];
        // Without randomness the form can't be sent at all: it fails closed.
        let csrf = match held.filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            Some(t) => t.to_owned(),
            None => getrandom::getrandom(&mut token)
                .map(|()| hex::encode(token))
                .unwrap_or_default(),
        };
        Self {
            me: None,
            flash: None,
            email: String::new(),
            error: None,
            next,
            provider: state.service.sign_on().map(|p| p.name().to_owned()),
            passwords: state.service.local_passwords(),
            csrf,
        }
    }

    /// The page with `status`, and the cookie its form's token is checked against.
    fn answer(&self, state: &AppState, status: StatusCode) -> Page {
        let cookie = state.site.binding_cookie(FORM_COOKIE, &self.csrf, 3600);
        Ok((status, [(header::SET_COOKIE, cookie)], render(self)?).into_response())
    }
}

/// After signing in through the provider: the console's cookie is SameSite=Strict, and
/// the browser arrived by a cross-site redirect, so it goes on with a navigation of its
/// own from this page (which a redirect would not be).
#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedInPage {
    to: String,
}

/// The page that sends the browser on after a step-up, its binding cookie cleared.
fn after_step_up(state: &AppState, key: &str, to: String) -> Page {
    Ok((
        [(header::SET_COOKIE, state.site.binding_cookie(key, "", 0))],
        render(&SignedInPage { to })?,
    )
        .into_response())
}

#[derive(Deserialize)]
pub(in crate::http::console) struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a path on this console only (never another site, which
/// `//host` or `/\host` would be to a browser), the start page otherwise.
fn local_path(next: Option<&str>) -> Option<String> {
    let n = next?.trim();
    let local = n.starts_with('/')
        && !n.starts_with("//")
        && !n.contains('\\')
        && !n.chars().any(char::is_control)
        && !n.starts_with("/sign-in");
    local.then(|| n.to_owned())
}

pub(in crate::http::console) async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Page {
    let held = state.site.binding(&headers, FORM_COOKIE);
    SignInPage::with_token(&state, local_path(q.next.as_deref()), held)
        .answer(&state, StatusCode::OK)
}

/// Sends the browser to the identity provider for `purpose`, bound to this browser.
pub(in crate::http::console) async fn to_provider(state: &AppState, purpose: Purpose) -> Page {
    let started = state.service.begin_sign_on(purpose).await?;
    let binding =
        state
            .site
            .binding_cookie(&started.key, started.binding.expose(), FLOW_TTL.as_secs());
    Ok(([(header::SET_COOKIE, binding)], Redirect::to(&started.url)).into_response())
}

/// Sends the browser to the identity provider to sign in.
pub(in crate::http::console) async fn sign_on(
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
) -> Page {
    to_provider(
        &state,
        Purpose::SignIn {
            then: local_path(q.next.as_deref()),
        },
    )
    .await
}

#[derive(Deserialize)]
pub(in crate::http::console) struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the identity provider sends the browser back.
pub(in crate::http::console) async fn sign_on_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Page {
    let refused = |message: String| -> Page {
        let mut page = SignInPage::new(&state, None);
        page.error = Some(message);
        page.answer(&state, StatusCode::FORBIDDEN)
    };
    let Some(flow_state) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return refused(
            "You were not signed in: the identity provider sent you back without the sign-in's state. Please sign in again.".into(),
        );
    };
    // Only the error's code, as RFC 6749 spells them: the description is free text
    // anyone could send, and this goes into the ledger.
    let error = q
        .error
        .as_deref()
        .filter(|e| {
            !e.is_empty()
                && e.len() <= 64
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .unwrap_or("no sign-in code");
    let _ = &q.error_description;
    let code = q.code.as_deref().filter(|c| !c.is_empty()).ok_or(error);
    let key = binding_key(flow_state);
    let binding = state.site.binding(&headers, &key);
    match state
        .service
        .finish_sign_on(flow_state, code, binding)
        .await
    {
        // A step-up: on to the session, or to the gateway to send the confirmed change.
        Ok(Finished::Started(token)) => {
            after_step_up(&state, &key, format!("/session?handoff={}", token.expose()))
        }
        Ok(Finished::Confirmed(action, token)) => after_step_up(
            &state,
            &key,
            super::actions::send_url(&state, &action, &token),
        ),
        Ok(Finished::SignedIn(signed, then)) => {
            // Short-lived: renewed by asking the provider again (see `console_sign_in`).
            let cookie = state.site.cookie(
                signed.token.expose(),
                state.service.policy().session.console_sign_in.as_secs(),
            );
            let page = render(&SignedInPage {
                to: local_path(then.as_deref()).unwrap_or_else(|| "/".to_owned()),
            })?;
            Ok((
                AppendHeaders([
                    (header::SET_COOKIE, cookie),
                    (header::SET_COOKIE, state.site.binding_cookie(&key, "", 0)),
                ]),
                page,
            )
                .into_response())
        }
        Err(
            e @ (ServiceError::Unauthenticated(_)
            | ServiceError::Forbidden(_)
            | ServiceError::NotFound(_)
            | ServiceError::Invalid { .. }
            | ServiceError::Conflict(_)),
        ) => refused(e.to_string()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(in crate::http::console) struct SignInForm {
    email: String,
    password: String,
    /// The form's token ([`FORM_COOKIE`]).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    totp: String,
    #[serde(default)]
    next: Option<String>,
}

pub(in crate::http::console) async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    // No login yet, so no CSRF token: the origin check stops cross-site sign-in forms.
    if !state.site.same_origin(&headers) {
        return Err(PageError::status(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, so it was refused.",
        ));
    }
    let form: SignInForm = serde_html_form::from_bytes(&body).map_err(|_| {
        PageError::status(StatusCode::BAD_REQUEST, "Enter your email and password.")
    })?;
    // The form's token must be the one this browser was given with it (with passwords
    // off there is no form, and the service says so).
    let given = state
        .site
        .binding(&headers, FORM_COOKIE)
        .unwrap_or_default();
    let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), form.csrf.as_bytes()).into();
    if state.service.local_passwords() && (!same || given.is_empty()) {
        let mut page = SignInPage::new(&state, local_path(form.next.as_deref()));
        page.email = form.email;
        page.error = Some(
            "This sign-in form had expired or was sent from another page, so nothing was checked. Please sign in again here.".into(),
        );
        return page.answer(&state, StatusCode::FORBIDDEN);
    }
    match state
        .service
        .sign_in(
            &form.email,
            &form.password,
            Some(form.totp.as_str()),
            peer.ip(),
        )
        .await
    {
        Ok(signed) => {
            let cookie = state.site.cookie(
                signed.token.expose(),
                crate::service::auth::LOGIN_TTL.as_secs(),
            );
            let to = local_path(form.next.as_deref()).unwrap_or_else(|| "/".to_owned());
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response())
        }
        Err(
            e @ (ServiceError::Unauthenticated(_)
            | ServiceError::Forbidden(_)
            | ServiceError::TooMany(_)
            | ServiceError::Invalid { .. }),
        ) => {
            let status = match e {
                ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
                ServiceError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut page = SignInPage::new(&state, local_path(form.next.as_deref()));
            page.email = form.email;
            page.error = Some(e.to_string());
            page.answer(&state, status)
        }
        Err(e) => Err(e.into()),
    }
}

pub(in crate::http::console) async fn sign_out(
    State(state): State<AppState>,
    Posted(who, _): Posted<Empty>,
) -> Page {
    state.service.sign_out(&who).await?;
    Ok((
        [(header::SET_COOKIE, state.site.cookie("", 0))],
        Redirect::to("/sign-in"),
    )
        .into_response())
}
