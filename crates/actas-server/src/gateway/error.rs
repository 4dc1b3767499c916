//! Every way a gateway request can end other than with the product's answer, and the one
//! place each becomes a status, a plain-language notice under the banner, a ledger entry
//! and a metrics outcome.

use super::context::ProxyCtx;
use actas_core::gateway::BlockReason;
use actas_core::gateway::path::PathRefusal;
use actas_core::scope::CapabilityName;
use axum::http::StatusCode;

/// Why the gateway answered itself instead of with the product's answer.
#[derive(Debug)]
pub(super) enum GatewayError {
    /// No gateway cookie.
    NoSession,
    /// The session has ended, passed a limit, or the cookie is unknown.
    SessionOver(String),
    /// The ledger can't be written: nothing was forwarded.
    LedgerDown,
    /// The path is not in canonical form: the browser is sent to the canonical one.
    NotCanonical(String),
    /// The path has no canonical form.
    Path(PathRefusal),
    /// A method the gateway does not route, or a `_method` override it can't read.
    Method(String),
    /// The request is malformed (a broken WebSocket upgrade, a body cut off).
    BadRequest(&'static str),
    /// The request body is larger than the gateway reads.
    TooLarge,
    /// A form or JSON body, or a query, the gateway can't read, so can't record or check.
    Unreadable(&'static str),
    /// The submission carries placeholders the gateway served, in these fields: saving
    /// it would write them over the customer's real values.
    Placeholder(Vec<String>),
    /// The request body is packed (`Content-Encoding`), so it can't be read to be recorded.
    PackedRequest(String),
    /// `decide` refused it.
    Blocked {
        /// The capability it needed.
        capability: Option<CapabilityName>,
        /// Why.
        why: BlockReason,
    },
    /// A mirror session, and no mirror is configured.
    NoMirror,
    /// The assertion could not be signed.
    Unvouched,
    /// The product did not answer a request that was recorded and sent.
    Upstream,
    /// A change was sent, but its outcome could not be recorded.
    OutcomeUnrecorded,
    /// The product's answer was not passed on.
    Answer(AnswerRefusal),
    /// Something in the gateway itself failed.
    Internal(&'static str),
}

/// Why the product's answer was not passed to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AnswerRefusal {
    /// Its class refuses it (no type, two, an export, a type that can't be masked).
    Class(actas_core::gateway::answer::Refusal),
    /// A page in a charset the gateway can't read.
    Charset(String),
    /// It is packed in an encoding the gateway can't unpack.
    Packed(String),
    /// JSON larger than the limit, or cut off.
    TooLarge,
    /// JSON that isn't JSON.
    Unmaskable,
    /// It came back on an asset path, and is not an asset the gateway may pass on.
    NotAnAsset(String),
}

impl AnswerRefusal {
    /// Why, in words that finish "… was not shown the answer to GET /x: ".
    fn why(&self) -> String {
        match self {
            AnswerRefusal::Class(refusal) => format!("it {refusal}"),
            AnswerRefusal::Charset(label) => format!(
                "it was a page in the charset {label}, which the gateway can't read to check it for secrets"
            ),
            AnswerRefusal::Packed(packing) => format!(
                "it was packed as {packing}, which the gateway can't unpack to check it for secrets"
            ),
            AnswerRefusal::TooLarge => {
                "it was too large to be checked for secrets, or did not arrive whole".into()
            }
            AnswerRefusal::Unmaskable => {
                "it said it was JSON but was not, so it could not be checked for secrets".into()
            }
            AnswerRefusal::NotAnAsset(why) => format!(
                "it was asked for as a static file, but {why}, so it could hold one customer's data"
            ),
        }
    }
}

/// What the ledger must hold of a request that ended in an error.
pub(super) enum LedgerEntry {
    /// Refused before anything was sent on.
    Blocked {
        /// The capability it needed.
        capability: Option<CapabilityName>,
        /// Why.
        why: String,
    },
    /// Sent on, and its answer not passed on (or never given).
    AnswerRefused {
        /// Why.
        why: String,
    },
}

impl GatewayError {
    /// The HTTP status.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoSession | GatewayError::SessionOver(_) => StatusCode::FORBIDDEN,
            GatewayError::LedgerDown | GatewayError::NoMirror => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::NotCanonical(_) => StatusCode::PERMANENT_REDIRECT,
            GatewayError::Path(_) | GatewayError::BadRequest(_) | GatewayError::Unreadable(_) => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::Placeholder(_) => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::PackedRequest(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::Blocked { .. }
            | GatewayError::Answer(AnswerRefusal::Class(
                actas_core::gateway::answer::Refusal::Export,
            )) => StatusCode::FORBIDDEN,
            GatewayError::Upstream | GatewayError::Answer(_) => StatusCode::BAD_GATEWAY,
            GatewayError::OutcomeUnrecorded => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Unvouched | GatewayError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The notice's title and its message, in plain words.
    pub(super) fn words(&self, ctx: &ProxyCtx) -> (&'static str, String) {
        // What was stopped, in words: a page, a deletion, or something sent.
        let path = ctx.path_text();
        let request = match ctx.method_text().as_str() {
            "GET" | "HEAD" => format!("The page {path} was not fetched from the product"),
            "DELETE" => format!("Deleting {path} was not passed on to the product"),
            _ => format!("What you sent to {path} was not passed on to the product"),
        };
        match self {
            GatewayError::NoSession => (
                "No support session",
                "Open the customer's account from the actas console.".into(),
            ),
            GatewayError::SessionOver(why) => {
                ("This support session can't be used", actas_core::words::sentence(why))
            }
            GatewayError::LedgerDown => (
                "Paused: the audit log can't be written",
                "Nothing was sent to the product. Try again in a moment.".into(),
            ),
            GatewayError::NotCanonical(to) => ("Moved", format!("This page is at {to}.")),
            GatewayError::Path(why) => (
                "Blocked by actas",
                format!("{request}: {why}."),
            ),
            GatewayError::Method(m) => (
                "Not allowed",
                format!(
                    "The gateway does not pass {m} requests, so {} was not sent to the product.",
                    ctx.path_text()
                ),
            ),
            GatewayError::BadRequest(what) => (
                "Refused",
                format!("{request}: {what}."),
            ),
            GatewayError::Unreadable(what) => (
                "Blocked by actas",
                format!(
                    "{request}: the gateway could not read {what}, so it could not be checked and recorded."
                ),
            ),
            GatewayError::Placeholder(fields) if ctx.method.is_some_and(|m| m.is_safe()) => (
                "Blocked by actas",
                format!(
                    "{request}: its address carried the masked placeholder of {} in place of a real value, and the product would have read the placeholder as data.",
                    field_list(fields)
                ),
            ),
            GatewayError::Placeholder(fields) => (
                "Nothing was saved",
                format!(
                    "{request}: it carried the masked placeholder of {}, which would have replaced the customer's real {}. A form with masked fields can't be saved as it is: ask the customer to make this change, or ask whoever keeps the actas policy whether this form may be saved without its masked fields.",
                    field_list(fields),
                    if fields.len() == 1 { "value" } else { "values" }
                ),
            ),
            GatewayError::TooLarge => (
                "Too large",
                format!(
                    "{request}: it is larger than the gateway accepts."
                ),
            ),
            GatewayError::PackedRequest(packing) => (
                "Blocked by actas",
                format!(
                    "{request}: it was packed as {packing}, which the gateway can't read to record it."
                ),
            ),
            GatewayError::Blocked { why, .. } => (
                "Blocked by actas",
                format!("{request}: {why}."),
            ),
            GatewayError::NoMirror => (
                "No mirror",
                "This session is in mirror mode, but no mirror of the product is configured.".into(),
            ),
            GatewayError::Unvouched => (
                "Something went wrong",
                format!(
                    "The request could not be vouched for, so it was not sent (reference {}).",
                    ctx.id
                ),
            ),
            GatewayError::Upstream if ctx.is_change() => (
                "The product did not answer",
                "The change was sent to the product, but no answer came back, so it may or may not have been made. Check the account before trying again.".into(),
            ),
            GatewayError::Upstream => (
                "The product did not answer",
                "Try again in a moment.".into(),
            ),
            GatewayError::OutcomeUnrecorded => (
                "The result could not be recorded",
                "The change was sent to the product, but its result could not be written to the audit log. Check the account before doing anything else.".into(),
            ),
            GatewayError::Answer(AnswerRefusal::Class(actas_core::gateway::answer::Refusal::Export)) => (
                "Blocked by actas",
                "Downloads and exports need an approved export scope.".into(),
            ),
            GatewayError::Answer(refusal) => (
                "Refused",
                format!("The product's answer was not shown: {}.", refusal.why()),
            ),
            GatewayError::Internal(what) => (
                "Something went wrong",
                format!("{} (reference {}).", actas_core::words::sentence(what), ctx.id),
            ),
        }
    }

    /// What the ledger must hold of it, if anything. Requests without a session, on an
    /// ended one, or that never reached a decision the product could see (a redirect to
    /// the canonical path) leave nothing to record; the rest are recorded as blocked
    /// (nothing was sent) or as an answer refused (it was).
    pub(super) fn ledger(&self, ctx: &ProxyCtx) -> Option<LedgerEntry> {
        let blocked = |why: String| LedgerEntry::Blocked {
            capability: None,
            why,
        };
        match self {
            GatewayError::NoSession
            | GatewayError::SessionOver(_)
            | GatewayError::LedgerDown
            | GatewayError::NotCanonical(_)
            | GatewayError::OutcomeUnrecorded => None,
            GatewayError::Path(why) => Some(blocked(why.to_string())),
            GatewayError::Method(m) => {
                Some(blocked(format!("the gateway does not pass {m} requests")))
            }
            GatewayError::BadRequest(what) => Some(blocked((*what).to_owned())),
            GatewayError::TooLarge => Some(blocked(
                "the request was larger than the gateway accepts".into(),
            )),
            GatewayError::Unreadable(what) => {
                Some(blocked(format!("the gateway could not read {what}")))
            }
            GatewayError::Placeholder(fields) => Some(blocked(format!(
                "it would have saved the masked placeholder of {} over the customer's real {}",
                field_list(fields),
                if fields.len() == 1 { "value" } else { "values" }
            ))),
            GatewayError::PackedRequest(p) => Some(blocked(format!(
                "the request was packed as {p}, which the gateway can't read to record it"
            ))),
            GatewayError::Blocked { capability, why } => Some(LedgerEntry::Blocked {
                capability: capability.clone(),
                why: why.to_string(),
            }),
            GatewayError::NoMirror => Some(blocked(
                "the session is in mirror mode and no mirror is configured".into(),
            )),
            GatewayError::Unvouched | GatewayError::Internal(_) if ctx.forwarded.is_none() => {
                Some(blocked("the gateway failed before sending it".into()))
            }
            GatewayError::Unvouched | GatewayError::Internal(_) => {
                Some(LedgerEntry::AnswerRefused {
                    why: "the gateway failed while handling the answer".into(),
                })
            }
            GatewayError::Upstream if ctx.is_change() => Some(LedgerEntry::AnswerRefused {
                why: "the product did not answer, so the change may or may not have been made"
                    .into(),
            }),
            GatewayError::Upstream => Some(LedgerEntry::AnswerRefused {
                why: "the product did not answer".into(),
            }),
            GatewayError::Answer(refusal) => {
                Some(LedgerEntry::AnswerRefused { why: refusal.why() })
            }
        }
    }

    /// The `outcome` label in `actas_gateway_requests_total`.
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            GatewayError::NoSession => "no_session",
            GatewayError::SessionOver(_) => "session_over",
            GatewayError::LedgerDown | GatewayError::OutcomeUnrecorded => "ledger_unavailable",
            GatewayError::NotCanonical(_) => "redirected",
            GatewayError::Path(_)
            | GatewayError::Method(_)
            | GatewayError::BadRequest(_)
            | GatewayError::Unreadable(_)
            | GatewayError::Placeholder(_)
            | GatewayError::TooLarge
            | GatewayError::PackedRequest(_)
            | GatewayError::Blocked { .. } => "blocked",
            GatewayError::Upstream => "upstream_failed",
            GatewayError::Answer(_) => "answer_refused",
            GatewayError::NoMirror | GatewayError::Unvouched | GatewayError::Internal(_) => "error",
        }
    }
}

/// Field names as people read them: "email", "email and phone", "name, email and phone".
fn field_list(fields: &[String]) -> String {
    let words: Vec<String> = fields
        .iter()
        .map(|f| actas_core::gateway::submission::field_words(f))
        .collect();
    match words.as_slice() {
        [] => "a field".to_owned(),
        _ => actas_core::words::list(&words),
    }
}
