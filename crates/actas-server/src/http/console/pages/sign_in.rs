//! Signing in and out.

use super::{Empty, Me, Page, ok};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, render};
use crate::service::ServiceError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    me: Option<Me>,
    flash: Option<String>,
    email: String,
    error: Option<String>,
    next: Option<String>,
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

pub(in crate::http::console) async fn sign_in_page(Query(q): Query<NextQuery>) -> Page {
    ok(render(&SignInPage {
        me: None,
        flash: None,
        email: String::new(),
        error: None,
        next: local_path(q.next.as_deref()),
    })?)
}

#[derive(Deserialize)]
pub(in crate::http::console) struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    totp: String,
    #[serde(default)]
    next: Option<String>,
}

pub(in crate::http::console) async fn sign_in(
    State(state): State<AppState>,
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
    match state
        .service
        .sign_in(&form.email, &form.password, Some(form.totp.as_str()))
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
            | ServiceError::Invalid { .. }),
        ) => {
            let page = render(&SignInPage {
                me: None,
                flash: None,
                next: local_path(form.next.as_deref()),
                email: form.email,
                error: Some(e.to_string()),
            })?;
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
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
