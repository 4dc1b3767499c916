//! Settings: two-step sign-in and personal API tokens.

use super::requests::CodeForm;
use super::{Empty, Me, Page, csrf_of, me, ok, see_other};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, Signed, render};
use crate::service::ServiceError;
use crate::service::auth::Authenticated;
use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    totp_on: bool,
    otpauth: Option<String>,
    totp_error: Option<String>,
    new_token: Option<String>,
    token_error: Option<String>,
}

async fn settings_page(state: &AppState, who: &Authenticated) -> Result<SettingsPage, PageError> {
    let mine = state.service.me(who).await?;
    let csrf = csrf_of(who);
    Ok(SettingsPage {
        me: me(who, &csrf),
        flash: None,
        csrf,
        totp_on: mine.totp_on,
        otpauth: None,
        totp_error: None,
        new_token: None,
        token_error: None,
    })
}

pub(in crate::http::console) async fn settings(
    State(state): State<AppState>,
    Signed(who, _): Signed,
) -> Page {
    ok(render(&settings_page(&state, &who).await?)?)
}

pub(in crate::http::console) async fn begin_totp(
    State(state): State<AppState>,
    Posted(who, _): Posted<Empty>,
) -> Page {
    let uri = state.service.begin_totp(&who).await?;
    let page = SettingsPage {
        otpauth: Some(uri),
        ..settings_page(&state, &who).await?
    };
    ok(render(&page)?)
}

pub(in crate::http::console) async fn confirm_totp(
    State(state): State<AppState>,
    Posted(who, f): Posted<CodeForm>,
) -> Page {
    match state.service.confirm_totp(&who, &f.code).await {
        Ok(()) => see_other("/settings"),
        Err(ServiceError::Invalid { message, .. }) => {
            let page = SettingsPage {
                totp_error: Some(message),
                ..settings_page(&state, &who).await?
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(in crate::http::console) struct TokenForm {
    #[serde(default)]
    name: String,
}

pub(in crate::http::console) async fn create_token(
    State(state): State<AppState>,
    Posted(who, f): Posted<TokenForm>,
) -> Page {
    match state.service.create_api_token(&who, &f.name).await {
        Ok(token) => {
            let page = SettingsPage {
                new_token: Some(token.expose().to_owned()),
                ..settings_page(&state, &who).await?
            };
            let mut response = render(&page)?.into_response();
            // The token is on this page only: don't let any cache keep it.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err(ServiceError::Invalid { message, .. }) => {
            let page = SettingsPage {
                token_error: Some(message),
                ..settings_page(&state, &who).await?
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
