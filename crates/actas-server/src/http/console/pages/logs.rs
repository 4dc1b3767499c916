//! The activity log, whole or of one account.

use super::{Line, Me, Page, line, me, ok};
use crate::http::AppState;
use crate::http::console::{PageError, Signed, render};
use crate::service::access::Auditor;
use crate::service::auth::Authenticated;
use crate::service::extract::csv_cell;
use crate::service::queries::LogQuery;
use actas_core::Timestamp;
use actas_core::ids::AccountId;
use actas_core::staff::Email;
use actas_store::EventFilter;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

/// How many events a page of the log shows.
const SHOWN: usize = 100;

/// The most rows one CSV download holds.
const CSV_ROWS: usize = 50_000;

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
    /// The page: events older than this sequence number.
    #[serde(default)]
    before: Option<u64>,
}

impl LogFilter {
    /// The filter's own fields as a query string (no page), to keep it in links.
    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("account", &self.account),
            ("staff", &self.staff),
            ("kind", &self.kind),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.trim().is_empty() {
                q.append_pair(k, v.trim());
            }
        }
        q.finish()
    }
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
    /// The link to the next, older page.
    older: Option<String>,
    /// The link to the first (newest) page, when this is not it.
    newest: Option<String>,
    /// The CSV of everything the filter matches.
    csv: String,
    /// The ledger key's fingerprint, which customers check their extracts against.
    ledger_key_id: String,
}

/// The filter parsed into a query; `error` names a field that could not be read.
fn log_query(account: Option<AccountId>, f: &LogFilter) -> (LogQuery, Option<String>) {
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
    (query, error)
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
    let (query, error) = log_query(account, &f);
    let page = state
        .service
        .activity_page(&reader, &query, f.before, SHOWN)
        .await?;
    let kept = f.query();
    let join = |extra: String| {
        let q = [kept.as_str(), extra.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        if q.is_empty() {
            action.clone()
        } else {
            format!("{action}?{q}")
        }
    };
    let older = page.older.map(|seq| join(format!("before={seq}")));
    let newest = f.before.map(|_| join(String::new()));
    let csv = {
        let base = format!("{action}.csv");
        if kept.is_empty() {
            base
        } else {
            format!("{base}?{kept}")
        }
    };
    let events = page.events.iter().map(line).collect();
    ok(render(&LogPage {
        me: me(who, csrf),
        flash: None,
        heading,
        action,
        show_account_filter: true,
        f,
        error,
        events,
        older,
        newest,
        csv,
        ledger_key_id: state.service.ledger_key_id(),
    })?)
}

/// The log as a CSV file, for auditors' spreadsheets: every event the filter matches,
/// newest first, with cells a spreadsheet reads as text, never as formulas.
async fn log_csv(
    state: &AppState,
    who: &Authenticated,
    account: Option<AccountId>,
    f: LogFilter,
) -> Page {
    let reader = Auditor::of(who)?;
    let (query, error) = log_query(account, &f);
    if let Some(e) = error {
        return Err(PageError::status(StatusCode::BAD_REQUEST, &e));
    }
    let page = state
        .service
        .activity_page(&reader, &query, None, CSV_ROWS)
        .await?;
    let mut out = String::from("seq,time,kind,summary,account,session,ticket\n");
    for e in &page.events {
        let b = &e.body;
        let cells = [
            b.seq.to_string(),
            b.time.to_rfc3339(),
            b.kind().to_owned(),
            b.summary.clone(),
            b.account
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            b.session.map(|s| s.to_string()).unwrap_or_default(),
            b.ticket
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    if page.older.is_some() {
        out.push_str(&csv_cell(&format!(
            "Only the newest {CSV_ROWS} events are in this file; narrow the filter (dates, account, kind) for the rest."
        )));
        out.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"actas-activity.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response())
}

pub(in crate::http::console) async fn activity_csv(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Query(f): Query<LogFilter>,
) -> Page {
    log_csv(&state, &who, None, f).await
}

pub(in crate::http::console) async fn account_audit_csv(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path(id): Path<String>,
    Query(f): Query<LogFilter>,
) -> Page {
    let id = AccountId::parse(&id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such account."))?;
    log_csv(&state, &who, Some(id), f).await
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
