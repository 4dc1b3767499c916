//! The allow-list, kept by directors, with the product's app keys and notifications.

use super::{Done, Me, Page, csrf_of, me, ok, see_other};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, Signed, render};
use crate::service::access::Director;
use crate::service::auth::Authenticated;
use crate::service::{AllowChange, ServiceError};
use actas_core::scope::Risk;
use actas_core::staff::Email;
use actas_core::words;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

struct AllowRow {
    name: String,
    email: String,
    max_risk: String,
    granted_by: String,
    granted_at: String,
    reason: String,
    revoked: bool,
    review: String,
    overdue: bool,
}

struct AppRow {
    name: String,
    webhook: String,
    state: String,
}

#[derive(Template)]
#[template(path = "allow_list.html")]
struct AllowPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    entries: Vec<AllowRow>,
    review_every: String,
    overdue_rule: &'static str,
    due_count: usize,
    due_summary: String,
    error: Option<String>,
    apps: Vec<AppRow>,
    notifications: String,
    failing: bool,
}

async fn allow_page(
    state: &AppState,
    who: &Authenticated,
    error: Option<String>,
    flash: Option<String>,
) -> Result<AllowPage, PageError> {
    let director = Director::of(who)?;
    let view = state.service.allow_list_view(&director).await?;
    let review = state.service.policy().grant_review;
    let now = actas_core::Timestamp::now();
    let soon = now.plus(std::time::Duration::from_secs(14 * 86_400));
    let mut due_count = 0;
    let entries = view
        .entries
        .into_iter()
        .map(|a| {
            let due = review.due(a.reviewed_at);
            let overdue = a.revoked.is_none() && due < now;
            if a.revoked.is_none() && due < soon {
                due_count += 1;
            }
            let review_words = if overdue {
                format!(
                    "Overdue since {}{}",
                    words::clock(due),
                    if review.suspend_overdue {
                        ": suspended until confirmed"
                    } else {
                        ""
                    }
                )
            } else {
                format!("Due {}", words::clock(due))
            };
            (a, review_words, overdue)
        })
        .map(|(a, review, overdue)| AllowRow {
            review,
            overdue,
            name: a.staff.name.to_string(),
            email: a.staff.email.to_string(),
            max_risk: a.max_risk.to_string(),
            granted_by: a.granted_by.name.to_string(),
            granted_at: a.granted_at.to_rfc3339()[..10].to_owned(),
            reason: a.reason.to_string(),
            revoked: a.revoked.is_some(),
        })
        .collect();
    let apps = view
        .apps
        .into_iter()
        .map(|k| AppRow {
            name: k.app.name.to_string(),
            webhook: k
                .webhook_url
                .unwrap_or_else(|| "no notifications".to_owned()),
            state: match k.revoked_at {
                Some(t) => format!("revoked {}", &t.to_rfc3339()[..10]),
                None => "active".to_owned(),
            },
        })
        .collect();
    let outbox = view.outbox;
    let failing = outbox.failing > 0;
    let notifications = if failing {
        format!(
            "{} notifications to the product are failing and being retried; {} delivered. Last error: {}",
            outbox.failing,
            outbox.delivered,
            outbox.last_error.unwrap_or_default()
        )
    } else {
        format!(
            "All notifications delivered ({}); {} waiting.",
            outbox.delivered, outbox.pending
        )
    };
    let csrf = csrf_of(who);
    Ok(AllowPage {
        me: me(who, &csrf),
        flash,
        csrf,
        entries,
        review_every: words::duration(review.every),
        overdue_rule: if review.suspend_overdue {
            "A grant overdue for review is suspended: its staff member can't start anything until it is confirmed."
        } else {
            "A grant overdue for review stays in force (policy: keep)."
        },
        due_summary: format!(
            "{} due for review in the next two weeks or overdue.",
            words::sentence(&words::count(due_count as u64, "grant", "grants"))
                .trim_end_matches('.')
        ),
        due_count,
        error,
        apps,
        notifications,
        failing,
    })
}

pub(in crate::http::console) async fn allow_list(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Query(done): Query<Done>,
) -> Page {
    ok(render(
        &allow_page(&state, &who, None, done.message()).await?,
    )?)
}

/// Back to the list, or the list again with what was wrong.
async fn after_change(
    state: &AppState,
    who: &Authenticated,
    result: Result<(), ServiceError>,
    done: &str,
) -> Page {
    match result {
        Ok(()) => see_other(&format!("/allow-list?done={done}")),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::Forbidden(_)
            | ServiceError::Conflict(_)),
        ) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&allow_page(state, who, Some(e.to_string()), None).await?)?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(in crate::http::console) struct GrantForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    max_risk: String,
    #[serde(default)]
    reason: String,
}

pub(in crate::http::console) async fn grant(
    State(state): State<AppState>,
    Posted(who, f): Posted<GrantForm>,
) -> Page {
    let result = async {
        let email = Email::parse(&f.email).map_err(|e| ServiceError::invalid("email", e))?;
        let risk: Risk = f
            .max_risk
            .parse()
            .map_err(|e| ServiceError::invalid("max_risk", e))?;
        state
            .service
            .change_allow_list(
                &email,
                AllowChange::Grant(risk),
                &who.staff().email,
                &f.reason,
            )
            .await
    }
    .await;
    after_change(&state, &who, result, "granted").await
}

/// A director's form about one grant: whose, and why.
#[derive(Deserialize)]
pub(in crate::http::console) struct GrantReasonForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    reason: String,
}

/// Confirms or revokes one grant, then back to the list saying which.
async fn change_one(
    state: &AppState,
    who: &Authenticated,
    f: &GrantReasonForm,
    change: AllowChange,
    done: &str,
) -> Page {
    let result = async {
        let email = Email::parse(&f.email).map_err(|e| ServiceError::invalid("email", e))?;
        state
            .service
            .change_allow_list(&email, change, &who.staff().email, &f.reason)
            .await
    }
    .await;
    after_change(state, who, result, done).await
}

pub(in crate::http::console) async fn confirm(
    State(state): State<AppState>,
    Posted(who, f): Posted<GrantReasonForm>,
) -> Page {
    change_one(&state, &who, &f, AllowChange::Confirm, "confirmed").await
}

pub(in crate::http::console) async fn revoke(
    State(state): State<AppState>,
    Posted(who, f): Posted<GrantReasonForm>,
) -> Page {
    change_one(&state, &who, &f, AllowChange::Revoke, "revoked").await
}
