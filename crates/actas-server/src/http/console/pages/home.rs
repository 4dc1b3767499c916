//! Each person's start page after sign-in: what their role has waiting for them.

use super::{Line, Me, Page, csrf_of, line, me, ok};
use crate::http::AppState;
use crate::http::console::{Signed, render};
use actas_core::Timestamp;
use actas_core::words;
use askama::Template;
use axum::extract::State;

struct RequestRow {
    id: String,
    account: String,
    ticket: String,
    status: &'static str,
    status_code: String,
    note: Option<String>,
    when: String,
    at: String,
}

struct LiveRow {
    account: String,
    time_left: String,
}

struct WaitingRow {
    id: String,
    requester: String,
    account: String,
    ticket: String,
    own: bool,
}

struct GrantRow {
    name: String,
    max_risk: String,
    since: String,
    review: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    me: Option<Me>,
    flash: Option<String>,
    name: String,
    mine: Vec<RequestRow>,
    session: Option<LiveRow>,
    queue: Option<Vec<WaitingRow>>,
    awaiting_code: Option<Vec<WaitingRow>>,
    reviews: Option<String>,
    reviews_overdue: bool,
    grants: Option<Vec<GrantRow>>,
    ledger: Option<String>,
    recent: Option<Vec<Line>>,
}

fn waiting(items: Vec<crate::service::queries::QueueItem>) -> Vec<WaitingRow> {
    items
        .into_iter()
        .map(|q| WaitingRow {
            id: q.request.id.to_string(),
            requester: q.requester,
            account: q.account,
            ticket: q.request.ticket.to_string(),
            own: q.own,
        })
        .collect()
}

pub(in crate::http::console) async fn home(
    State(state): State<AppState>,
    Signed(who, _): Signed,
) -> Page {
    let home = state.service.home(&who).await?;
    let now = Timestamp::now();
    let mine = home
        .mine
        .into_iter()
        .map(|m| RequestRow {
            id: m.request.id.to_string(),
            account: m.account,
            ticket: m.request.ticket.to_string(),
            status: words::request_status(m.request.status),
            status_code: m.request.status.to_string(),
            note: m.request.note.as_ref().map(ToString::to_string),
            when: words::clock(m.request.created_at),
            at: m.request.created_at.to_rfc3339(),
        })
        .collect();
    let session = home.session.map(|s| LiveRow {
        account: s.account.name.to_string(),
        time_left: words::duration(s.session.time_left(now)),
    });
    let review = state.service.policy().grant_review;
    let grants = home.grants.map(|g| {
        g.into_iter()
            .map(|a| {
                let due = review.due(a.reviewed_at);
                GrantRow {
                    name: a.staff.name.to_string(),
                    max_risk: a.max_risk.to_string(),
                    since: words::clock(a.granted_at),
                    review: if due < now {
                        format!("review overdue since {}", words::clock(due))
                    } else {
                        format!("next review due {}", words::clock(due))
                    },
                    overdue: due < now,
                }
            })
            .collect()
    });
    let ledger = home.ledger.map(|l| {
        let recorded = words::count(l.size, "event", "events");
        match l.newest_head {
            Some((size, at)) => format!(
                "{recorded} recorded. The newest signed checkpoint covers the first {} and was signed {}.",
                words::count(size, "event", "events"),
                words::clock(at)
            ),
            None => format!("{recorded} recorded. No checkpoint has been signed yet."),
        }
    });
    let csrf = csrf_of(&who);
    ok(render(&HomePage {
        me: me(&who, &csrf),
        flash: None,
        name: who.staff().name.to_string(),
        mine,
        session,
        queue: home.queue.map(waiting),
        awaiting_code: home.awaiting_code.map(waiting),
        reviews_overdue: home.reviews.is_some_and(|(_, overdue)| overdue > 0),
        reviews: home
            .reviews
            .map(|(waiting, overdue)| match (waiting, overdue) {
                (0, _) => "No session is waiting for a review.".to_owned(),
                (n, 0) => format!(
                    "{} waiting for your review.",
                    words::sentence(&words::count(
                        n as u64,
                        "ended session is",
                        "ended sessions are"
                    ))
                    .trim_end_matches('.')
                ),
                (n, late) => format!(
                    "{} waiting for your review; {} overdue.",
                    words::sentence(&words::count(
                        n as u64,
                        "ended session is",
                        "ended sessions are"
                    ))
                    .trim_end_matches('.'),
                    late
                ),
            }),
        grants,
        ledger,
        recent: home.recent.map(|r| r.iter().map(line).collect()),
    })?)
}
