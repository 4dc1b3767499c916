//! Finding an account and asking to act as its customer.

use super::{FieldErrors, Me, Page, csrf_of, me, ok, see_other};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, Signed, render};
use crate::service::RequestInput;
use crate::service::access::Abilities;
use crate::service::queries::AccountView;
use actas_core::ids::AccountId;
use actas_store::Account;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

struct AccountRow {
    id: String,
    name: String,
    flags: String,
    consent: String,
}

fn row(a: &Account) -> AccountRow {
    let flags: Vec<&str> = a.flags.iter().map(|f| f.as_str()).collect();
    AccountRow {
        id: a.id.to_string(),
        name: a.name.to_string(),
        flags: if flags.is_empty() {
            "none".into()
        } else {
            flags.join(", ")
        },
        consent: a.consent.to_string().replace('_', " "),
    }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    me: Option<Me>,
    flash: Option<String>,
    q: String,
    accounts: Vec<AccountRow>,
}

#[derive(Deserialize)]
pub(in crate::http::console) struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub(in crate::http::console) async fn accounts(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Query(s): Query<SearchQuery>,
) -> Page {
    let found = state.service.search_accounts(&who, &s.q).await?;
    ok(render(&AccountsPage {
        me: me(&who, &csrf),
        flash: None,
        q: s.q,
        accounts: found.iter().map(|l| row(&l.account)).collect(),
    })?)
}

struct CapChoice {
    name: String,
    description: String,
    risk: String,
    blocked: Option<String>,
    checked: bool,
    always: bool,
}

#[derive(Default)]
struct RequestForm {
    ticket: String,
    reason: String,
    minutes: String,
    mode: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    account: AccountRow,
    can_act_as: bool,
    sees_log: bool,
    why_not: String,
    capabilities: Vec<CapChoice>,
    max_minutes: u64,
    form: RequestForm,
    errors: FieldErrors,
}

fn account_id(id: &str) -> Result<AccountId, PageError> {
    AccountId::parse(id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such account."))
}

async fn account_page(
    state: &AppState,
    who: &crate::service::auth::Authenticated,
    id: &str,
    form: RequestForm,
    chosen: &[String],
    errors: FieldErrors,
) -> Result<AccountPage, PageError> {
    let AccountView {
        account,
        why_not,
        capabilities,
    } = state.service.account_view(who, &account_id(id)?).await?;
    let policy = state.service.policy();
    let capabilities = capabilities
        .into_iter()
        .map(|c| CapChoice {
            checked: chosen.iter().any(|x| x == c.name.as_str()),
            always: c.name.as_str() == "view",
            name: c.name.to_string(),
            description: c.description,
            risk: c.risk.to_string(),
            blocked: c.blocked,
        })
        .collect();
    let form = RequestForm {
        minutes: if form.minutes.is_empty() {
            (policy.session.default_duration.as_secs() / 60).to_string()
        } else {
            form.minutes
        },
        mode: if form.mode.is_empty() {
            "read-only".into()
        } else {
            form.mode
        },
        ..form
    };
    let csrf = csrf_of(who);
    Ok(AccountPage {
        me: me(who, &csrf),
        flash: None,
        csrf,
        account: row(&account),
        can_act_as: why_not.is_none(),
        sees_log: Abilities::of(who).reads_log,
        why_not: why_not.unwrap_or_default(),
        capabilities,
        max_minutes: policy.session.hard_limit.as_secs() / 60,
        form,
        errors,
    })
}

pub(in crate::http::console) async fn account(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path(id): Path<String>,
) -> Page {
    let page = account_page(
        &state,
        &who,
        &id,
        RequestForm::default(),
        &[],
        FieldErrors::default(),
    )
    .await?;
    ok(render(&page)?)
}

#[derive(Deserialize)]
pub(in crate::http::console) struct TicketLink {
    #[serde(default)]
    account: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    reason: String,
}

/// The helpdesk's way in: `/start?account=…&ticket=…[&reason=…]` lands on the account's
/// request form with the ticket filled in, so the flow starts from the ticket, not from a
/// search (see docs/tickets.md for helpdesks' URL templates).
pub(in crate::http::console) async fn start_from_ticket(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Query(link): Query<TicketLink>,
) -> Page {
    let account = link.account.trim();
    if account.is_empty() {
        return Err(PageError::status(
            StatusCode::BAD_REQUEST,
            "This link names no account. Helpdesk links look like /start?account=acme&ticket=4821.",
        ));
    }
    let form = RequestForm {
        ticket: link.ticket.trim().to_owned(),
        reason: link.reason.trim().to_owned(),
        ..RequestForm::default()
    };
    let page = account_page(&state, &who, account, form, &[], FieldErrors::default()).await?;
    ok(render(&page)?)
}

#[derive(Deserialize)]
pub(in crate::http::console) struct NewRequestForm {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    mode: String,
}

pub(in crate::http::console) async fn create_request(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<NewRequestForm>,
) -> Page {
    let minutes = match f.minutes.trim() {
        "" => None,
        m => Some(m.parse::<u64>().unwrap_or(0)),
    };
    let caps: Vec<String> = f
        .capabilities
        .iter()
        .filter(|c| c.as_str() != "view")
        .cloned()
        .collect();
    let input = RequestInput {
        account: id.clone(),
        ticket: f.ticket.clone(),
        reason: f.reason.clone(),
        capabilities: caps.clone(),
        minutes,
        mode: Some(f.mode.clone()),
        for_session: None,
    };
    let problems = state.service.request_input_problems(&input);
    let outcome = if problems.is_empty() {
        state
            .service
            .create_request(who.staff(), input)
            .await
            .map_err(FieldErrors::from)
    } else {
        let mut errors = FieldErrors::default();
        for (field, message) in problems {
            errors.set(field, message);
        }
        Err(Ok(errors))
    };
    match outcome {
        Ok(r) => see_other(&format!("/requests/{}", r.id)),
        Err(errors) => {
            let errors = errors?;
            let form = RequestForm {
                ticket: f.ticket,
                reason: f.reason,
                minutes: f.minutes,
                mode: f.mode,
            };
            let page = account_page(&state, &who, &id, form, &caps, errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}
