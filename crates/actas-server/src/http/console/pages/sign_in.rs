//! Signing in and out.

use super::{Empty, Me, Page, ok};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, render};
use crate::service::ServiceError;
use askama::Template;
use axum::extract::State;
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
}

pub(in crate::http::console) async fn sign_in_page() -> Page {
    ok(render(&SignInPage {
        me: None,
        flash: None,
        email: String::new(),
        error: None,
    })?)
}

#[derive(Deserialize)]
pub(in crate::http::console) struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    totp: String,
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
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
        }
        Err(
            e @ (ServiceError::Unauthenticated(_)
            | ServiceError::Forbidden(_)
            | ServiceError::Invalid { .. }),
        ) => {
            let page = render(&SignInPage {
                me: None,
                flash: None,
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
