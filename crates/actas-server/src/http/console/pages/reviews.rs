//! The weekly review: the queue a lead works through, the verdict form on a session's
//! timeline, and the weekly summary per agent and for the team.

use super::{Me, Page, csrf_of, me, ok, see_other};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, Signed, render};
use crate::service::ServiceError;
use crate::service::access::Lead;
use crate::service::reviews::{ReviewItem, WeekCounts};
use actas_core::Timestamp;
use actas_core::review::week_start;
use actas_core::words;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use std::time::Duration;

struct ReviewRow {
    id: String,
    staff: String,
    account: String,
    ticket: String,
    ended: String,
    ended_at: String,
    why: String,
    due: String,
    overdue: bool,
    own: bool,
    verdict: Option<String>,
    follow_up: bool,
}

fn row(i: ReviewItem) -> ReviewRow {
    let why = if i.flags.is_empty() {
        "Nothing stood out; chosen at random for review".to_owned()
    } else {
        words::sentence(&words::list(
            &i.flags.iter().map(|f| f.words()).collect::<Vec<_>>(),
        ))
        .trim_end_matches('.')
        .to_owned()
    };
    let due = if i.overdue {
        format!("Overdue since {}", words::clock(i.due))
    } else {
        format!("Due {}", words::clock(i.due))
    };
    let follow_up = i
        .review
        .as_ref()
        .is_some_and(|r| r.outcome == actas_core::review::Outcome::FollowUp);
    let verdict = i.review.map(|r| {
        let note = r.note.map(|n| format!(": “{n}”")).unwrap_or_default();
        words::sentence(&format!(
            "{} by {} {}{note}",
            r.outcome.words(),
            r.reviewer.name,
            words::clock(r.at)
        ))
    });
    ReviewRow {
        id: i.session.info.id.to_string(),
        staff: i.staff.name.to_string(),
        account: i.account.name.to_string(),
        ticket: i.ticket.to_string(),
        ended: words::clock(i.session.ended_at),
        ended_at: i.session.ended_at.to_rfc3339(),
        why,
        due,
        overdue: i.overdue,
        own: i.own,
        verdict,
        follow_up,
    }
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    me: Option<Me>,
    flash: Option<String>,
    within: String,
    sample: u8,
    overdue: String,
    waiting: Vec<ReviewRow>,
    follow_ups: Vec<ReviewRow>,
    reviewed: Vec<ReviewRow>,
    week: String,
}

pub(in crate::http::console) async fn reviews(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Query(done): Query<super::Done>,
) -> Page {
    let lead = Lead::of(&who)?;
    let queue = state.service.review_queue(&lead).await?;
    let rules = state.service.policy().review;
    let csrf = csrf_of(&who);
    ok(render(&ReviewsPage {
        me: me(&who, &csrf),
        flash: done.message(),
        within: words::duration(rules.within),
        sample: rules.sample_percent,
        overdue: match queue.overdue {
            0 => String::new(),
            n => format!(
                "{} overdue for review.",
                words::sentence(&words::count(n as u64, "session is", "sessions are"))
                    .trim_end_matches('.')
            ),
        },
        waiting: queue.waiting.into_iter().map(row).collect(),
        follow_ups: queue.follow_ups.into_iter().map(row).collect(),
        reviewed: queue.reviewed.into_iter().map(row).collect(),
        week: day(week_start(Timestamp::now())),
    })?)
}

#[derive(Deserialize)]
pub(in crate::http::console) struct ReviewForm {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    note: String,
}

/// A lead's verdict on a session, from its timeline; back to the queue, or the
/// timeline again with what was wrong.
pub(in crate::http::console) async fn review(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<ReviewForm>,
) -> Page {
    let id = super::sessions::session_id(&id)?;
    let lead = Lead::of(&who)?;
    match state
        .service
        .review_session(&lead, id, &f.outcome, &f.note)
        .await
    {
        Ok(()) => see_other("/reviews?done=reviewed"),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::Forbidden(_)
            | ServiceError::Conflict(_)),
        ) => {
            let (status, message) = match e {
                ServiceError::Invalid { message, .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, message)
                }
                ServiceError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
                other => (StatusCode::CONFLICT, other.to_string()),
            };
            let mut page = super::sessions::timeline_page(&state, &who, id, None).await?;
            page.review_error = Some(words::sentence(&message));
            page.review_note = f.note;
            Ok((status, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

struct WeekRow {
    name: String,
    counts: WeekCounts,
    repeated: String,
}

#[derive(Template)]
#[template(path = "reviews_week.html")]
struct WeekPage {
    me: Option<Me>,
    flash: Option<String>,
    title: String,
    team: WeekCounts,
    people: Vec<WeekRow>,
    repeated: Vec<String>,
    previous: String,
    next: Option<String>,
    incomplete: bool,
}

#[derive(Deserialize, Default)]
pub(in crate::http::console) struct WeekQuery {
    #[serde(default)]
    week: String,
}

fn day(t: Timestamp) -> String {
    let text = t.to_rfc3339();
    text.get(..10).unwrap_or(&text).to_owned()
}

pub(in crate::http::console) async fn week(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Query(q): Query<WeekQuery>,
) -> Page {
    let lead = Lead::of(&who)?;
    let at = match q.week.trim() {
        "" => Timestamp::now(),
        text => Timestamp::parse(text).ok_or_else(|| {
            PageError::status(
                StatusCode::BAD_REQUEST,
                "The week is a date like 2026-11-30.",
            )
        })?,
    };
    let summary = state.service.weekly_summary(&lead, at).await?;
    let week = Duration::from_secs(7 * 86_400);
    let mut repeated = Vec::new();
    let people = summary
        .people
        .into_iter()
        .map(|(who, counts)| {
            let piled = counts.repeated_failures();
            if !piled.is_empty() {
                repeated.push(format!("{}: {}", who.name, words::list(&piled)));
            }
            WeekRow {
                name: who.name.to_string(),
                counts,
                repeated: words::list(&piled),
            }
        })
        .collect();
    let next = summary.to;
    let csrf = csrf_of(&who);
    ok(render(&WeekPage {
        me: me(&who, &csrf),
        flash: None,
        title: format!(
            "The week of {} to {}",
            day(summary.from),
            day(Timestamp::from_millis(summary.to.as_millis() - 1))
        ),
        team: summary.team,
        people,
        repeated,
        previous: day(Timestamp::from_millis(
            summary.from.as_millis() - week.as_millis() as i64,
        )),
        next: (next <= Timestamp::now()).then(|| day(next)),
        incomplete: summary.incomplete,
    })?)
}
