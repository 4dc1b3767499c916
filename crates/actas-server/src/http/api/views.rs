//! How domain types look in the JSON API.

use actas_core::request::{AccessRequest, Approver};
use actas_core::session::Session;
use actas_store::{Account, RecordedEvent};
use serde_json::{Value, json};

pub(super) fn account_view(a: &Account, can_act_as: bool) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "flags": a.flags,
        "consent": a.consent,
        // Whether the caller may ask to act as this customer (invariant 1: no button
        // for staff off the allow-list).
        "can_act_as": can_act_as && a.consent != actas_core::account::Consent::Revoked,
    })
}

pub(super) fn request_view(r: &AccessRequest) -> Value {
    json!({
        "id": r.id.to_string(),
        "requester": r.requester,
        "account": r.account,
        "ticket": r.ticket,
        "reason": r.reason,
        "scope": r.scope,
        "minutes": r.duration.minutes(),
        "mode": r.mode,
        "risk": r.risk,
        "status": r.status,
        "needs_code": r.needs_code,
        "code_confirmed": r.code_confirmed,
        "locked": r.locked,
        "approved_by": match r.approver {
            Some(Approver::Policy) => json!("policy"),
            Some(Approver::Lead(s)) => json!(s),
            None => Value::Null,
        },
        "note": r.note,
        "created_at": r.created_at.to_rfc3339(),
        "expires_at": r.expires_at.to_rfc3339(),
    })
}

pub(super) fn session_view(s: &Session) -> Value {
    let info = s.info();
    let (status, ended_at, reason) = match s {
        Session::Active(_) => ("active", None, None),
        Session::Ended(e) => ("ended", Some(e.ended_at.to_rfc3339()), Some(e.reason)),
    };
    json!({
        "id": info.id.to_string(),
        "request": info.request.to_string(),
        "staff": info.staff,
        "account": info.account,
        "scope": info.scope,
        "mode": info.mode,
        "started_at": info.started_at.to_rfc3339(),
        "expires_at": info.expires_at.to_rfc3339(),
        "status": status,
        "ended_at": ended_at,
        "end_reason": reason,
    })
}

pub(super) fn event_view(e: &RecordedEvent) -> Value {
    let b = &e.body;
    json!({
        "seq": b.seq,
        "time": b.time.to_rfc3339(),
        "kind": b.kind(),
        "summary": b.summary,
        "account": b.account,
        "on_behalf_of": b.on_behalf_of,
        "session": b.session.map(|s| s.to_string()),
        "ticket": b.ticket,
    })
}
