//! The approval queue, and a lead's decisions.

use super::requests::request_id;
use super::{Done, Me, Page, me, ok, see_other};
use crate::http::AppState;
use crate::http::console::{Posted, Signed, render};
use crate::service::Approval;
use crate::service::access::Lead;
use actas_core::words;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

#[derive(Deserialize)]
pub(in crate::http::console) struct ApproveForm {
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    note: String,
}

pub(in crate::http::console) async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<ApproveForm>,
) -> Page {
    let caps: Vec<String> = f.capabilities.into_iter().filter(|c| c != "view").collect();
    let decision = Approval {
        capabilities: Some(caps),
        minutes: f.minutes.trim().parse().ok(),
        note: Some(f.note),
    };
    state
        .service
        .approve_request(who.staff(), request_id(&id)?, decision)
        .await?;
    see_other("/queue?done=approved")
}

#[derive(Deserialize)]
pub(in crate::http::console) struct DenyForm {
    #[serde(default)]
    note: String,
}

pub(in crate::http::console) async fn deny(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<DenyForm>,
) -> Page {
    state
        .service
        .deny_request(who.staff(), request_id(&id)?, &f.note)
        .await?;
    see_other("/queue?done=denied")
}

struct QueueItem {
    id: String,
    requester: String,
    account: String,
    ticket: String,
    reason: String,
    minutes: u64,
    time: String,
    mode: String,
    risk: String,
    needs_code: bool,
    caps: Vec<(String, String)>,
    own: bool,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    view: String,
    items: Vec<QueueItem>,
}

pub(in crate::http::console) async fn queue(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Query(done): Query<Done>,
) -> Page {
    let lead = Lead::of(&who)?;
    let policy = state.service.policy();
    let items = state
        .service
        .queue(&lead)
        .await?
        .into_iter()
        .map(|q| {
            let r = q.request;
            QueueItem {
                id: r.id.to_string(),
                requester: q.requester,
                account: q.account,
                ticket: r.ticket.to_string(),
                reason: r.reason.to_string(),
                minutes: r.duration.minutes(),
                time: words::count(r.duration.minutes(), "minute", "minutes"),
                mode: r.mode.to_string(),
                risk: r.risk.to_string(),
                needs_code: r.needs_code,
                caps: r
                    .scope
                    .iter()
                    .filter(|c| c.as_str() != "view")
                    .map(|c| {
                        let described = policy
                            .capabilities()
                            .find(|p| &p.name == c)
                            .map_or_else(|| c.to_string(), |p| p.description.clone());
                        (c.to_string(), described)
                    })
                    .collect(),
                own: q.own,
            }
        })
        .collect();
    ok(render(&QueuePage {
        me: me(&who, &csrf),
        flash: done.message(),
        csrf,
        view: words::sentence(&words::scope(
            policy,
            &actas_core::scope::Scope::view_only(),
        )),
        items,
    })?)
}
