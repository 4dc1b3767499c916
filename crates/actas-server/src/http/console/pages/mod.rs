//! Console pages and form handlers, one module per area. Each handler parses its input,
//! asks the service (which decides who may see what, see `service::access`) and renders
//! the view model it gets back; the templates only display.

mod accounts;
mod actions;
mod allow_list;
mod approvals;
mod home;
mod logs;
mod requests;
mod reviews;
mod sessions;
mod settings;
mod sign_in;

pub(super) use accounts::{account, accounts, create_request, start_from_ticket};
pub(super) use actions::{action, confirm_action};
pub(super) use allow_list::{allow_list, confirm, grant, revoke};
pub(super) use approvals::{approve, deny, queue};
pub(super) use home::home;
pub(super) use logs::{account_audit, account_audit_csv, activity, activity_csv};
pub(super) use requests::{cancel, enter_code, request, start};
pub(super) use reviews::{review, reviews, week};
pub(super) use sessions::{
    add_note, end_session, page_copy, page_copy_raw, reissue_handoff, session, session_timeline,
};
pub(super) use settings::{begin_totp, confirm_totp, create_token, settings};
pub(super) use sign_in::{sign_in, sign_in_page, sign_on, sign_on_callback, sign_out};

use super::PageError;
use crate::service::ServiceError;
use crate::service::access::Abilities;
use crate::service::auth::{Authenticated, Via};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

type Page = Result<Response, PageError>;

/// The signed-in person, for the header: their name, and the menu their role opens.
pub(crate) struct Me {
    name: String,
    role: String,
    csrf: String,
    is_lead: bool,
    sees_log: bool,
    is_director: bool,
}

fn me(who: &Authenticated, csrf: &str) -> Option<Me> {
    let can = Abilities::of(who);
    Some(Me {
        name: who.staff().name.to_string(),
        role: who.staff().role.to_string(),
        csrf: csrf.to_owned(),
        is_lead: can.decides,
        sees_log: can.reads_log,
        is_director: can.keeps_allow_list,
    })
}

fn ok(html: Html<String>) -> Page {
    Ok(html.into_response())
}

fn see_other(to: &str) -> Page {
    Ok(Redirect::to(to).into_response())
}

fn csrf_of(who: &Authenticated) -> String {
    match who.via() {
        Via::Cookie { csrf, .. } => csrf.clone(),
        Via::ApiToken => String::new(),
    }
}

/// What was just done, named in the address a decision redirects to (`?done=approved`),
/// so the next page confirms it. Only these fixed words can be shown this way.
#[derive(Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}

impl Done {
    fn message(&self) -> Option<String> {
        let m = match self.done.as_str() {
            "approved" => "Approved. The requester has been told and can start the session.",
            "denied" => "Denied. The requester sees your note.",
            "cancelled" => "The request is cancelled.",
            "ended" => "The session has ended. Everything it did is in its timeline.",
            "granted" => "Granted. The change is recorded in the ledger with your reason.",
            "confirmed" => "Confirmed. The grant's next review is due in one review period.",
            "revoked" => "Revoked. Any session they had running has ended.",
            "code" => "The customer's code is confirmed.",
            "noted" => "Your note is recorded. The customer sees it in their access history.",
            "reviewed" => "Your review is recorded in the ledger.",
            _ => return None,
        };
        Some(m.to_owned())
    }
}

/// A form with nothing in it but its CSRF token.
#[derive(Deserialize)]
pub(super) struct Empty {}

/// Problems with a form, each shown beside its field.
#[derive(Default)]
struct FieldErrors {
    ticket: Option<String>,
    reason: Option<String>,
    capabilities: Option<String>,
    minutes: Option<String>,
    code: Option<String>,
    password: Option<String>,
    other: Option<String>,
}

impl FieldErrors {
    fn set(&mut self, field: &str, message: String) {
        let slot = match field {
            "ticket" => &mut self.ticket,
            "reason" => &mut self.reason,
            "capabilities" => &mut self.capabilities,
            "minutes" | "mode" => &mut self.minutes,
            "code" => &mut self.code,
            "password" => &mut self.password,
            _ => &mut self.other,
        };
        slot.get_or_insert(message);
    }

    fn from(e: ServiceError) -> Result<Self, PageError> {
        let mut out = FieldErrors::default();
        match e {
            ServiceError::Invalid { field, message } => out.set(&field, message),
            ServiceError::Forbidden(m) | ServiceError::Conflict(m) | ServiceError::NotFound(m) => {
                out.other = Some(m)
            }
            other => return Err(other.into()),
        }
        Ok(out)
    }
}

/// One ledger event as a line of a log or timeline.
struct Line {
    seq: u64,
    /// RFC 3339, for `<time datetime>`: the console's script shows the reader's clock.
    at: String,
    time: String,
    summary: String,
    session: Option<String>,
    /// This request's page, when a copy of it is kept: its number, to link it.
    copy: Option<u64>,
}

fn line(e: &actas_store::RecordedEvent) -> Line {
    Line {
        seq: e.body.seq,
        at: e.body.time.to_rfc3339(),
        time: actas_core::words::clock(e.body.time),
        summary: e.body.summary.clone(),
        session: e.body.session.map(|s| s.to_string()),
        copy: None,
    }
}
