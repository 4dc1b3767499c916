//! What the gateway does with one request, decided once: [`decide`] takes the session,
//! the policy and the request as the gateway verified it (a canonical path, a method it
//! routes, what kind of request it is) and answers forward — as an asset, a page view, a
//! data read, a change, a live connection or a message on one — or block, with why in
//! plain words. The same function decides HTTP requests and WebSocket messages, and it is
//! pure, so every rule here is tested by table, not through a server.

pub mod answer;
pub mod path;
pub mod submission;

use crate::policy::routes::{Method, RouteAllows};
use crate::policy::{AssetTrust, Policy};
use crate::scope::{CapabilityName, Mode};
use crate::session::SessionInfo;
use path::CanonicalPath;
use std::fmt;

/// What kind of request reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// The browser loads a document to show (a navigation, a frame).
    Navigation,
    /// Anything else a page or a client fetches.
    Fetch,
    /// A WebSocket being opened.
    LiveOpen,
    /// A message the browser sends on an open WebSocket.
    LiveMessage,
}

/// A request as the gateway verified it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method the product will act on (`_method` overrides already applied).
    pub method: Method,
    /// The canonical path.
    pub path: &'a CanonicalPath,
    /// What kind of request it is.
    pub kind: RequestKind,
}

/// How a forwarded request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    /// A static asset the policy names: not recorded, and its answer must prove it is one.
    Asset(AssetTrust),
    /// A document the agent looks at.
    PageView,
    /// Anything else that reads the customer's data.
    DataRead,
    /// A change (any method but GET, HEAD and OPTIONS).
    Change,
    /// A WebSocket opened.
    LiveOpen,
    /// A message sent on a WebSocket.
    LiveMessage,
}

impl ForwardKind {
    /// Whether its ledger event must be durable before it is forwarded. Only assets are
    /// not recorded (invariant 14).
    pub fn is_recorded(self) -> bool {
        !matches!(self, ForwardKind::Asset(_))
    }
}

/// Why a request was blocked, in words that finish "… was not sent to the product: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockReason {
    /// A GET no route names, and the policy blocks those.
    UnnamedPage,
    /// A change no route names.
    UnnamedChange,
    /// A change in a read-only session.
    ReadOnly,
    /// The capability the route needs is not in the session's scope.
    OutOfScope(CapabilityName),
    /// An export without an approved export scope.
    Export,
    /// A message on a live connection, and the policy names no capability for them.
    LiveMessages,
    /// A signed action sent in a form the gateway can't show as a change (not a form
    /// or JSON, a file upload, or over a live connection), so it can't be confirmed.
    Unconfirmable,
    /// A signed action whose current values the product would not show.
    NoCurrentValues(String),
    /// A signed action whose body can be read more than one way (in words that finish
    /// "… and "), so what it changes can't be shown for certain.
    Ambiguous(String),
    /// A confirmed signed action that could not be sent (in words: why).
    NotSent(String),
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockReason::UnnamedPage => f.write_str("the policy blocks pages it does not name"),
            BlockReason::UnnamedChange => {
                f.write_str("this kind of change is not in the policy, so it is blocked")
            }
            BlockReason::ReadOnly => {
                f.write_str("this session is read-only, so nothing can be changed")
            }
            BlockReason::OutOfScope(cap) => {
                write!(f, "this session's scope does not include {cap}")
            }
            BlockReason::Export => {
                f.write_str("exports and bulk downloads need an approved export scope")
            }
            BlockReason::LiveMessages => {
                f.write_str("the policy names no capability for messages sent on a live connection")
            }
            BlockReason::Unconfirmable => f.write_str(
                "this change must be confirmed and signed, and only a form or JSON (not a file upload) can be shown as a change to confirm",
            ),
            BlockReason::NoCurrentValues(why) => write!(
                f,
                "this change must be confirmed from the values it replaces, and {why}"
            ),
            BlockReason::Ambiguous(why) => write!(
                f,
                "this change must be confirmed and signed, and {why}, so what it changes can't be shown for certain"
            ),
            BlockReason::NotSent(why) => write!(f, "this confirmed change was not sent: {why}"),
        }
    }
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it on.
    Forward {
        /// How it is recorded.
        kind: ForwardKind,
        /// The capability that allowed it (none for assets).
        capability: Option<CapabilityName>,
        /// What it does, in words that finish "Sarah Lee, acting as Acme Co, …".
        description: String,
        /// What its route allows beyond the defaults (nothing, where no route names it).
        allows: RouteAllows,
    },
    /// Hold it: the route is a signed action, so the change goes on only once the agent
    /// has seen it (from the values `current` shows to the ones sent), confirmed it and
    /// proved again who they are; it is then recorded with a signed receipt.
    Confirm {
        /// The capability that allows it.
        capability: CapabilityName,
        /// What it does, as for [`Decision::Forward`].
        description: String,
        /// What its route allows beyond the defaults.
        allows: RouteAllows,
        /// The page that shows the values it changes.
        current: String,
    },
    /// Refuse it.
    Block {
        /// The capability it needed, if any.
        capability: Option<CapabilityName>,
        /// Why.
        why: BlockReason,
    },
}

/// The method a request is matched and recorded as: `HEAD` is a `GET` that leaves out
/// the body, so it is whatever that `GET` is.
pub fn routing_method(method: Method) -> Method {
    match method {
        Method::Head => Method::Get,
        m => m,
    }
}

/// Decides on one request in a live session (the caller has checked it is live).
pub fn decide(session: &SessionInfo, policy: &Policy, request: &Request<'_>) -> Decision {
    let method = routing_method(request.method);
    let path = request.path;
    let message = request.kind == RequestKind::LiveMessage;
    let matched = if message {
        None
    } else {
        policy.route(method, path)
    };
    if matched.is_none()
        && method == Method::Get
        && matches!(request.kind, RequestKind::Navigation | RequestKind::Fetch)
        && let Some(trust) = policy.gateway.asset(path)
    {
        return Decision::Forward {
            kind: ForwardKind::Asset(trust),
            capability: None,
            description: format!("loaded {path}"),
            allows: RouteAllows::default(),
        };
    }
    let allows = matched.as_ref().map(|m| m.allows).unwrap_or_default();
    let signed = matched.as_ref().and_then(|m| m.signed.clone());
    let (capability, description) = match matched {
        Some(m) => (Some(m.capability), m.description),
        None => match request.kind {
            RequestKind::LiveMessage => (
                policy.gateway.websocket_capability.clone(),
                format!("sent a message on the live connection to {path}"),
            ),
            RequestKind::LiveOpen => (
                policy.gateway.unmatched_get.clone(),
                format!("opened a live connection to {path}"),
            ),
            _ if method.is_safe() => (
                policy.gateway.unmatched_get.clone(),
                match request.kind {
                    RequestKind::Navigation => format!("viewed {path}"),
                    _ => format!("read {path}"),
                },
            ),
            _ => (
                policy.gateway.unmatched_change.clone(),
                format!("{method} {path}"),
            ),
        },
    };
    let changes = message || !method.is_safe();
    let block = |why| Decision::Block {
        capability: capability.clone(),
        why,
    };
    let Some(cap) = capability.as_ref() else {
        return block(if message {
            BlockReason::LiveMessages
        } else if changes {
            BlockReason::UnnamedChange
        } else {
            BlockReason::UnnamedPage
        });
    };
    if changes && session.mode == Mode::ReadOnly {
        return block(BlockReason::ReadOnly);
    }
    if !session.scope.allows(cap) {
        return block(BlockReason::OutOfScope(cap.clone()));
    }
    let export = policy.capability(cap).is_some_and(|c| c.export);
    if export && !policy.allows_export(&session.scope) {
        return block(BlockReason::Export);
    }
    if let Some(current) = signed {
        return Decision::Confirm {
            capability: cap.clone(),
            description,
            allows,
            current,
        };
    }
    let kind = match request.kind {
        RequestKind::LiveMessage => ForwardKind::LiveMessage,
        RequestKind::LiveOpen => ForwardKind::LiveOpen,
        _ if changes => ForwardKind::Change,
        RequestKind::Navigation => ForwardKind::PageView,
        _ => ForwardKind::DataRead,
    };
    Decision::Forward {
        kind,
        capability,
        description,
        allows,
    }
}

/// Decides on a POST whose `_method` names `overridden`: frameworks that read `_method`
/// act on that method, and those that don't act on the POST, so both must be allowed.
/// A POST is always a change, whatever method it names (a `_method=GET` can't make it a
/// read, or an asset); the record names the route `overridden` matched if it is a
/// change, the POST's otherwise. Where either is a signed action, the request is held
/// for confirmation as that one.
pub fn decide_override(
    session: &SessionInfo,
    policy: &Policy,
    request: &Request<'_>,
    overridden: Method,
) -> Decision {
    let post = decide(
        session,
        policy,
        &Request {
            method: Method::Post,
            ..*request
        },
    );
    let named = decide(
        session,
        policy,
        &Request {
            method: overridden,
            ..*request
        },
    );
    match (post, named) {
        (block @ Decision::Block { .. }, _) | (_, block @ Decision::Block { .. }) => block,
        (confirm @ Decision::Confirm { .. }, _) | (_, confirm @ Decision::Confirm { .. }) => {
            confirm
        }
        (
            Decision::Forward {
                capability: post_capability,
                description: post_description,
                allows: post_allows,
                ..
            },
            Decision::Forward {
                capability,
                description,
                allows,
                ..
            },
        ) => {
            let (capability, description, allows) = if overridden.is_safe() {
                (post_capability, post_description, post_allows)
            } else {
                (capability, description, allows)
            };
            Decision::Forward {
                kind: ForwardKind::Change,
                capability,
                description,
                allows,
            }
        }
    }
}

#[cfg(test)]
mod tests;
