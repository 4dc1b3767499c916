//! The per-request context every phase reads and fills in, so that `logging` knows what
//! the request was, how far it got, and what the ledger already holds of it.

use crate::service::gateway::GatewayContext;
use actas_core::gateway::ForwardKind;
use actas_core::gateway::path::CanonicalPath;
use actas_core::policy::routes::{Method, RouteAllows};
use axum::extract::Request;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Numbers requests in this process, for the span and for the reference an agent can
/// quote from an error page.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the phases know about one request.
pub(super) struct ProxyCtx {
    /// This request's number in this process.
    pub(super) id: u64,
    /// When it arrived.
    pub(super) started: Instant,
    /// The method as the browser sent it.
    pub(super) method_sent: String,
    /// The path as the browser sent it (without the query).
    pub(super) path_sent: String,
    /// The method it is decided and recorded as, once read (`HEAD` as `GET`, a POST's
    /// `_method` override applied).
    pub(super) method: Option<Method>,
    /// The canonical path, once read.
    pub(super) path: Option<CanonicalPath>,
    /// The live session, once checked.
    pub(super) session: Option<GatewayContext>,
    /// The gateway cookie, once found.
    pub(super) cookie: String,
    /// The banner every page and notice carries, once the session is known.
    pub(super) banner: String,
    /// How the request was recorded, once it was (its event is then durable).
    pub(super) forwarded: Option<ForwardKind>,
    /// The route's or the path's description of what it does.
    pub(super) description: String,
    /// The product's base URL it went to (live or mirror).
    pub(super) base: String,
    /// What its route allows beyond the defaults (inline scripts, partial forms).
    pub(super) allows: RouteAllows,
    /// The request's ledger event, when it wrote one (a page view, a data read, a
    /// change): an HTML answer's copy is kept under that number.
    pub(super) page_seq: Option<u64>,
    /// The capability a held signed action needs, for the record of a refusal.
    pub(super) capability: Option<actas_core::scope::CapabilityName>,
    /// A signed action's receipt, sent to the product as `Actas-Receipt`.
    pub(super) receipt: Option<String>,
}

impl ProxyCtx {
    pub(super) fn new(request: &Request) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            method_sent: request.method().as_str().to_owned(),
            path_sent: request.uri().path().to_owned(),
            method: None,
            path: None,
            session: None,
            cookie: String::new(),
            banner: String::new(),
            forwarded: None,
            description: String::new(),
            base: String::new(),
            allows: RouteAllows::default(),
            page_seq: None,
            capability: None,
            receipt: None,
        }
    }

    /// The method to name in the ledger: as decided, or as sent if it never was.
    pub(super) fn method_text(&self) -> String {
        self.method
            .map_or_else(|| self.method_sent.clone(), |m| m.to_string())
    }

    /// The path to name in the ledger: canonical, or as sent if it has no canonical form.
    pub(super) fn path_text(&self) -> &str {
        self.path.as_ref().map_or(&self.path_sent, |p| p.as_str())
    }

    /// Whether the request was sent on as a change (its outcome then matters).
    pub(super) fn is_change(&self) -> bool {
        self.forwarded == Some(ForwardKind::Change)
    }
}
