//! Phase 2, `decide` and `record`: the core's [`decide`] says what the request is and
//! whether it may go (a POST's `_method` must be allowed as both); a submission carrying
//! a placeholder the gateway served is refused, or those fields left out where the route
//! takes partial forms (invariant 16); then the request's event is made durable here,
//! before anything is sent (invariants 3 and 14). Only assets the policy declares skip the
//! event, and their answers must then prove they are assets (see `response_filter`).

use super::GatewayState;
use super::context::ProxyCtx;
use super::error::GatewayError;
use super::request_filter::{Filtered, session_refused};
use crate::service::gateway::ForwardRecord;
use actas_core::event::FieldChange;
use actas_core::gateway::submission::{WriteBack, write_back};
use actas_core::gateway::{Decision, ForwardKind, Request, decide, decide_override};
use actas_core::policy::masking::carries_placeholder;

/// What `record` decided for a request that may go on.
pub(super) enum Recorded {
    /// Its event is durable: send it on.
    Forward,
    /// A signed action: hold it for confirmation (see `signed`), from the values this
    /// page shows.
    Confirm {
        /// The route's description.
        description: String,
        /// The page that shows the values it changes.
        current: String,
    },
}

pub(super) async fn record(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    request: &mut Filtered,
) -> Result<Recorded, GatewayError> {
    let (Some(session), Some(path)) = (&ctx.session, &ctx.path) else {
        return Err(GatewayError::Internal(
            "the request was not read before it was decided",
        ));
    };
    let policy = state.service.policy();
    let asked = Request {
        method: request.sent,
        path,
        kind: request.kind,
    };
    let decision = match request.overridden {
        Some(m) => decide_override(session.session.info(), policy, &asked, m),
        None => decide(session.session.info(), policy, &asked),
    };
    let (kind, description, allows, current) = match decision {
        Decision::Block { capability, why } => {
            return Err(GatewayError::Blocked { capability, why });
        }
        Decision::Forward {
            kind,
            description,
            allows,
            ..
        } => (kind, description, allows, None),
        Decision::Confirm {
            description,
            allows,
            current,
            capability,
        } => {
            ctx.capability = Some(capability);
            ctx.allows = allows;
            (ForwardKind::Change, description, allows, Some(current))
        }
    };
    // No masked value is ever written back (invariant 16): a placeholder the gateway
    // served refuses the submission, or is left out where the route takes partial forms.
    if request.submission.opaque_placeholder() {
        return Err(GatewayError::Placeholder(vec!["its body".to_owned()]));
    }
    match write_back(&request.submission.fields, allows.partial_forms) {
        WriteBack::Clean => {}
        WriteBack::Refuse(fields) => return Err(GatewayError::Placeholder(fields)),
        WriteBack::Drop(fields) => {
            let Some((query, body)) = request
                .submission
                .without_placeholders(request.query.as_deref(), &request.body)
            else {
                return Err(GatewayError::Placeholder(fields));
            };
            request.query = query;
            request.body = body;
        }
    }
    if let Some(current) = current {
        return Ok(Recorded::Confirm {
            description,
            current,
        });
    }
    let fields = if kind == ForwardKind::Change {
        let doc = serde_json::Value::Object(
            request
                .submission
                .body_fields()
                .filter(|f| !carries_placeholder(&f.name) && !carries_placeholder(&f.value))
                .map(|f| (f.name.clone(), serde_json::Value::String(f.value.clone())))
                .collect(),
        );
        masked_fields(state, doc)
    } else {
        Vec::new()
    };
    let method = ctx.method.unwrap_or(request.sent);
    let seq = state
        .service
        .record_forward(
            session,
            ForwardRecord {
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
    ctx.page_seq = seq;
    ctx.forwarded = Some(kind);
    ctx.description = description;
    ctx.allows = allows;
    Ok(Recorded::Forward)
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
