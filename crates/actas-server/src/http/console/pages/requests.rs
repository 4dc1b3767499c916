//! One request: its state, the customer's code, starting the session, cancelling.

use super::{Done, Empty, FieldErrors, Me, Page, csrf_of, me, ok, see_other};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, Signed, render};
use crate::service::auth::{Authenticated, Via};
use crate::service::sign_on::Purpose;
use actas_core::ids::RequestId;
use actas_core::request::{AccessRequest, RequestStatus};
use actas_core::words;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    r: AccessRequest,
    account_name: String,
    scope: String,
    scope_ids: String,
    status: &'static str,
    time: String,
    mine: bool,
    needs_code: bool,
    can_start: bool,
    needs_password: bool,
    /// The identity provider to confirm at before starting, if staff sign in through one.
    step_up: Option<String>,
    /// Whether a password can confirm instead.
    passwords: bool,
    open: bool,
    errors: FieldErrors,
}

pub(super) fn request_id(id: &str) -> Result<RequestId, PageError> {
    RequestId::parse(id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such request."))
}

async fn request_page(
    state: &AppState,
    who: &Authenticated,
    id: &str,
    errors: FieldErrors,
    flash: Option<String>,
) -> Result<RequestPage, PageError> {
    let view = state.service.request_view(who, request_id(id)?).await?;
    let r = view.request;
    let open = !r.status.is_final() && !r.locked;
    let needs_code = r.needs_code && !r.code_confirmed && open;
    let can_start = r.status == RequestStatus::Approved && !needs_code && !r.locked;
    let csrf = csrf_of(who);
    Ok(RequestPage {
        me: me(who, &csrf),
        flash,
        csrf,
        scope: words::sentence(&words::scope(state.service.policy(), &r.scope)),
        scope_ids: r.scope.joined(),
        status: words::request_status(r.status),
        time: words::count(r.duration.minutes(), "minute", "minutes"),
        account_name: view.account.name.to_string(),
        mine: view.mine,
        needs_code,
        can_start,
        needs_password: view.needs_password,
        step_up: state.service.sign_on().map(|p| p.name().to_owned()),
        passwords: state.service.local_passwords(),
        open,
        r,
        errors,
    })
}

async fn with_errors(state: &AppState, who: &Authenticated, id: &str, errors: FieldErrors) -> Page {
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        render(&request_page(state, who, id, errors, None).await?)?,
    )
        .into_response())
}

pub(in crate::http::console) async fn request(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Page {
    ok(render(
        &request_page(&state, &who, &id, FieldErrors::default(), done.message()).await?,
    )?)
}

#[derive(Deserialize)]
pub(in crate::http::console) struct CodeForm {
    #[serde(default)]
    pub(super) code: String,
}

pub(in crate::http::console) async fn enter_code(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<CodeForm>,
) -> Page {
    match state
        .service
        .enter_code(who.staff(), request_id(&id)?, &f.code)
        .await
    {
        Ok(_) => see_other(&format!("/requests/{id}?done=code")),
        Err(e) => {
            let mut errors = FieldErrors::from(e)?;
            if let Some(m) = errors.other.take() {
                errors.code = Some(m);
            }
            with_errors(&state, &who, &id, errors).await
        }
    }
}

#[derive(Deserialize)]
pub(in crate::http::console) struct StartForm {
    #[serde(default)]
    password: String,
    /// `provider`: confirm at the identity provider rather than with a password.
    #[serde(default)]
    confirm: String,
}

pub(in crate::http::console) async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<StartForm>,
) -> Page {
    // Staff who sign in through the identity provider confirm who they are there, now,
    // before every session (with passwords off, always).
    let through_provider = state.service.sign_on().is_some()
        && f.password.is_empty()
        && (!state.service.local_passwords() || f.confirm == "provider");
    if through_provider && let Via::Cookie { token_hash, .. } = who.via() {
        return super::sign_in::to_provider(
            &state,
            Purpose::StepUp {
                request: request_id(&id)?,
                login: *token_hash,
            },
        )
        .await;
    }
    let authenticated_at = if f.password.is_empty() {
        who.authenticated_at()
    } else {
        match state.service.reauthenticate(&who, &f.password).await {
            Ok(t) => t,
            Err(e) => return with_errors(&state, &who, &id, FieldErrors::from(e)?).await,
        }
    };
    match state
        .service
        .start_session(who.staff(), request_id(&id)?, authenticated_at)
        .await
    {
        Ok((_, token)) => see_other(&format!("/session?handoff={}", token.expose())),
        Err(e) => with_errors(&state, &who, &id, FieldErrors::from(e)?).await,
    }
}

pub(in crate::http::console) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, _): Posted<Empty>,
) -> Page {
    state
        .service
        .cancel_request(who.staff(), request_id(&id)?)
        .await?;
    see_other(&format!("/requests/{id}?done=cancelled"))
}
