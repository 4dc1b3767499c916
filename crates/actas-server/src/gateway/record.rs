//! Phase 2, `decide` and `record`: the core's [`decide`] says what the request is and
//! whether it may go; if it may, its event is made durable here, before anything is sent
//! (invariants 3 and 14). Only assets the policy declares skip the event, and their
//! answers must then prove they are assets (see `response_filter`).

use super::GatewayState;
use super::context::ProxyCtx;
use super::error::GatewayError;
use super::request_filter::{Filtered, session_refused};
use crate::service::gateway::Forwarded;
use actas_core::event::FieldChange;
use actas_core::gateway::{Decision, ForwardKind, Request, decide};
use axum::http::{HeaderMap, header};

pub(super) async fn record(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    request: &Filtered,
) -> Result<(), GatewayError> {
    let (Some(session), Some(path), Some(method)) = (&ctx.session, &ctx.path, ctx.method) else {
        return Err(GatewayError::Internal(
            "the request was not read before it was decided",
        ));
    };
    let decision = decide(
        session.session.info(),
        state.service.policy(),
        &Request {
            method,
            path,
            kind: request.kind,
        },
    );
    let (kind, description) = match decision {
        Decision::Block { capability, why } => {
            return Err(GatewayError::Blocked { capability, why });
        }
        Decision::Forward {
            kind, description, ..
        } => (kind, description),
    };
    let fields = if kind == ForwardKind::Change {
        submitted_fields(state, &request.parts.headers, &request.body)
    } else {
        Vec::new()
    };
    state
        .service
        .record_forward(
            session,
            Forwarded {
                kind,
                method,
                path,
                description: &description,
                fields,
                bytes: request.body.len() as u64,
            },
        )
        .await
        .map_err(session_refused)?;
    ctx.forwarded = Some(kind);
    ctx.description = description;
    Ok(())
}

/// Submitted form fields, masked by the policy's JSON rules (`$.field`), for the record.
fn submitted_fields(state: &GatewayState, headers: &HeaderMap, body: &[u8]) -> Vec<FieldChange> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let doc = if is_form {
        let pairs: Vec<(String, String)> = serde_html_form::from_bytes(body).unwrap_or_default();
        serde_json::Value::Object(
            pairs
                .into_iter()
                .filter(|(k, _)| k != "_method")
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        )
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => return Vec::new(),
        }
    };
    masked_fields(state, doc)
}

/// A JSON object's fields masked by the policy, as the record of what was sent: for a
/// change's form or JSON body, and for a message on a live connection.
pub(super) fn masked_fields(state: &GatewayState, mut doc: serde_json::Value) -> Vec<FieldChange> {
    let policy = state.service.policy();
    actas_core::mask::mask_json(&mut doc, policy.masking(), policy.unclassified);
    match doc {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| FieldChange {
                field: k.replace('_', " "),
                from: None,
                to: Some(match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
            })
            .collect(),
        _ => Vec::new(),
    }
}
