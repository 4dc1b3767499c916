//! The activity log, whole or of one account.

use super::{Line, Me, Page, line, me, ok};
use crate::http::AppState;
use crate::http::console::{PageError, Signed, render};
use crate::service::access::Auditor;
use crate::service::auth::Authenticated;
use crate::service::queries::LogQuery;
use actas_core::Timestamp;
use actas_core::ids::AccountId;
use actas_core::staff::Email;
use actas_store::EventFilter;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

/// How many of the newest matching events the log shows.
const SHOWN: usize = 500;

#[derive(Deserialize, Default)]
pub(in crate::http::console) struct LogFilter {
    #[serde(default)]
    account: String,
    #[serde(default)]
    staff: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

#[derive(Template)]
#[template(path = "log.html")]
struct LogPage {
    me: Option<Me>,
    flash: Option<String>,
    heading: String,
    action: String,
    show_account_filter: bool,
    f: LogFilter,
    error: Option<String>,
    events: Vec<Line>,
}

async fn log_page(
    state: &AppState,
    who: &Authenticated,
    csrf: &str,
    heading: String,
    action: String,
    account: Option<AccountId>,
    f: LogFilter,
) -> Page {
    let reader = Auditor::of(who)?;
    let mut error = None;
    let mut parse = |t: &str, name: &str| {
        if t.trim().is_empty() {
            return None;
        }
        let parsed = Timestamp::parse(t);
        if parsed.is_none() {
            error = Some(format!("{name}: {t:?} is not a date; write 2026-11-23"));
        }
        parsed
    };
    let since = parse(&f.since, "From");
    let until = parse(&f.until, "Before");
    let account = match account {
        Some(a) => Some(a),
        None if f.account.trim().is_empty() => None,
        None => match AccountId::parse(f.account.trim()) {
            Ok(a) => Some(a),
            Err(e) => {
                error = Some(format!("Account: {e}"));
                None
            }
        },
    };
    let staff = match f.staff.trim() {
        "" => None,
        s => match Email::parse(s) {
            Ok(e) => Some(e),
            Err(e) => {
                error = Some(format!("Staff: {e}"));
                None
            }
        },
    };
    let query = LogQuery {
        filter: EventFilter {
            account,
            session: None,
            kind: Some(f.kind.trim().to_owned()).filter(|k| !k.is_empty()),
            since,
            until,
        },
        staff,
        ..LogQuery::default()
    };
    let events = state
        .service
        .recent_activity(&reader, &query, SHOWN)
        .await?
        .iter()
        .map(line)
        .collect();
    ok(render(&LogPage {
        me: me(who, csrf),
        flash: None,
        heading,
        action,
        show_account_filter: true,
        f,
        error,
        events,
    })?)
}

pub(in crate::http::console) async fn activity(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Query(f): Query<LogFilter>,
) -> Page {
    log_page(
        &state,
        &who,
        &csrf,
        "Activity log".into(),
        "/activity".into(),
        None,
        f,
    )
    .await
}

pub(in crate::http::console) async fn account_audit(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Path(id): Path<String>,
    Query(f): Query<LogFilter>,
) -> Page {
    let id = AccountId::parse(&id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such account."))?;
    Auditor::of(&who)?;
    let account = state.service.account(&id).await?;
    let heading = format!("Audit log of {}", account.name);
    log_page(
        &state,
        &who,
        &csrf,
        heading,
        format!("/accounts/{id}/audit"),
        Some(id),
        f,
    )
    .await
}
