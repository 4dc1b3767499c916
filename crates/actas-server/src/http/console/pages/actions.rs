//! A signed action held at the gateway: its agent sees the exact change and confirms it
//! by proving again who they are (their password, or a new sign-in at the identity
//! provider), and is sent back to the gateway,
//! which sends it with its signed receipt.

use super::{Me, Page, csrf_of, me, ok};
use crate::http::AppState;
use crate::http::console::{Posted, Signed, render};
use crate::service::ServiceError;
use crate::service::actions::HeldView;
use crate::service::auth::{Authenticated, Secret, Via};
use crate::service::sign_on::Purpose;
use actas_core::event::FieldChange;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "action.html")]
struct ActionPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    id: String,
    account: String,
    description: String,
    path: String,
    changes: Vec<FieldChange>,
    open: bool,
    passwords: bool,
    /// The identity provider's name, where staff can confirm there.
    provider: Option<String>,
    error: Option<String>,
}

fn page(
    who: &Authenticated,
    state: &AppState,
    view: HeldView,
    error: Option<String>,
) -> ActionPage {
    let csrf = csrf_of(who);
    ActionPage {
        me: me(who, &csrf),
        flash: None,
        csrf,
        id: view.action.id,
        account: view.account,
        description: view.action.description,
        path: format!("{} {}", view.action.method, view.action.path),
        changes: view.action.changes,
        open: view.open,
        passwords: state.service.local_passwords(),
        provider: state.service.sign_on().map(|p| p.name().to_owned()),
        error,
    }
}

pub(in crate::http::console) async fn action(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path(id): Path<String>,
) -> Page {
    let view = state.service.held_action(who.staff().id, &id).await?;
    ok(render(&page(&who, &state, view, None))?)
}

#[derive(Deserialize)]
pub(in crate::http::console) struct ConfirmForm {
    #[serde(default)]
    password: String,
    /// `provider`: confirm at the identity provider rather than with a password.
    #[serde(default)]
    confirm: String,
}

/// Where the browser goes once the change is confirmed: the gateway, with the
/// single-use token that sends it.
pub(in crate::http::console) fn send_url(state: &AppState, id: &str, token: &Secret) -> String {
    format!(
        "{}/__actas/send/{id}?token={}",
        state.gateway_url.as_deref().unwrap_or(""),
        token.expose()
    )
}

/// Confirms the change with the agent's password, or sends them to the identity
/// provider to sign in again (with passwords off, always), then sends the browser to
/// the gateway with the single-use token that sends it.
pub(in crate::http::console) async fn confirm_action(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<ConfirmForm>,
) -> Page {
    let through_provider = state.service.sign_on().is_some()
        && f.password.is_empty()
        && (!state.service.local_passwords() || f.confirm == "provider");
    if through_provider && let Via::Cookie { token_hash, .. } = who.via() {
        let view = state.service.held_action(who.staff().id, &id).await?;
        if !view.open {
            let page = page(&who, &state, view, None);
            return Ok((StatusCode::CONFLICT, render(&page)?).into_response());
        }
        return super::sign_in::to_provider(
            &state,
            Purpose::ConfirmAction {
                action: id,
                login: *token_hash,
            },
        )
        .await;
    }
    let result = async {
        let at = match state.service.reauthenticate(&who, &f.password).await {
            Ok(at) => at,
            // A wrong password is on the account's history too, as the held change is.
            Err(ServiceError::Invalid { field, message }) if field == "password" => {
                state
                    .service
                    .action_not_confirmed(who.staff().id, &id, "their password", &message)
                    .await?;
                return Err(ServiceError::invalid("password", message));
            }
            Err(e) => return Err(e),
        };
        state
            .service
            .confirm_action(who.staff().id, &id, "their password", at)
            .await
    }
    .await;
    match result {
        Ok(token) => Ok(Redirect::to(&send_url(&state, &id, &token)).into_response()),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::Conflict(_))) => {
            let message = match e {
                ServiceError::Invalid { message, .. } => message,
                other => other.to_string(),
            };
            let view = state.service.held_action(who.staff().id, &id).await?;
            let page = page(
                &who,
                &state,
                view,
                Some(actas_core::words::sentence(&message)),
            );
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
