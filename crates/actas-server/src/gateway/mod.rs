//! The gateway: the reverse proxy staff use while acting as a customer, on its own
//! origin. Every request passes the same ordered phases, as pingora's `ProxyHttp` does,
//! with one per-request context ([`context::ProxyCtx`]) carried through them; each phase
//! has its own file:
//!
//! 1. [`request_filter`]: the session is live; the method is one the gateway routes; the
//!    path is read canonically (a request that spells it otherwise is redirected to the
//!    canonical form, or refused where it has none); the body fits the limit.
//! 2. [`record`]: `actas_core::gateway::decide` says forward — as an asset, a page view,
//!    a data read, a change, a live connection — or block; a forwarded request's event is
//!    durable before anything is sent (only declared assets skip this).
//! 3. [`upstream`]: the request goes to the product with a signed assertion and only the
//!    headers on the pass list; a change's outcome is recorded with the product's
//!    `Actas-Audit`.
//! 4. [`response_filter`]: the answer is classified once (HTML, JSON, event stream,
//!    asset, or passed as it is) or refused; the product's headers are filtered.
//! 5. [`body`]: HTML streamed through the masking rewriter with the banner, JSON masked
//!    whole, events one by one.
//! 6. [`logging`]: runs whatever ended the request: records what the ledger must hold
//!    (a refusal on either side, an upstream failure after a recorded change), counts it
//!    in `/metrics` and closes the request's span. [`error::GatewayError`] is the one
//!    place an ending becomes a status, a notice under the banner, and a ledger entry.
//!
//! Reserved paths under `/__actas/` are in [`reserved`]; WebSockets in [`websocket`];
//! event streams in `events`; the HTML rewriter in [`rewrite`].

mod body;
mod context;
mod error;
mod events;
mod headers;
pub mod logging;
mod ndjson;
mod notice;
mod record;
mod request_filter;
mod reserved;
mod response_filter;
mod signed;
mod snapshot;
/// The HTML rewriter (its own crate, `actas-rewrite`, so it can be fuzzed alone).
pub use actas_rewrite as rewrite;
mod submission;
mod upstream;
mod websocket;

use crate::assertion::AssertionSigner;
use crate::config::HostHeader;
use crate::service::Service;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use context::ProxyCtx;
use error::GatewayError;
use rewrite::HtmlMasker;
use std::net::SocketAddr;
use std::sync::Arc;

pub use logging::GatewayMetrics;

/// The gateway cookie: HttpOnly, and SameSite=Lax because the way in is a cross-origin
/// navigation from the console (a Strict cookie would not be sent on that redirect).
pub const GATEWAY_COOKIE: &str = "actas_gw";

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct GatewayState {
    /// The rules.
    pub service: Service,
    /// HTML masking rules, checked at start.
    pub masker: Arc<HtmlMasker>,
    /// Signs `Actas-Assertion`.
    pub assertions: Arc<AssertionSigner>,
    /// The product ("live").
    pub upstream: String,
    /// A separate copy of the product for `mirror` sessions, if any.
    pub mirror: Option<String>,
    /// The HTTP client to the product (with its connect and answer timeouts).
    pub client: reqwest::Client,
    /// How long connecting to the product may take, live connections included.
    pub connect_timeout: std::time::Duration,
    /// The largest body the gateway reads whole: a request's, and a JSON answer's to mask
    /// (HTML is streamed).
    pub max_body: usize,
    /// Which `Host` the product sees.
    pub host: HostHeader,
    /// Whether to send `X-Forwarded-*` headers.
    pub forwarded_headers: bool,
    /// The gateway's public URL (`http://127.0.0.1:8081`, `https://support-gw.example`):
    /// its host and scheme are what the product is told the browser asked for, whatever
    /// `Host` a client sends.
    pub public_url: String,
    /// Counts and timings for `/metrics`.
    pub metrics: Arc<GatewayMetrics>,
    /// The console's public URL, where an agent confirms a signed action.
    pub console_url: String,
    /// The product's origins, for links and redirects to stay on the gateway.
    pub origins: Arc<rewrite::Origins>,
    /// Maskers for sessions whose scope reveals masked fields, by the capabilities that
    /// reveal them (built the first time such a session needs one).
    pub revealing: Arc<
        std::sync::Mutex<
            std::collections::HashMap<Vec<actas_core::scope::CapabilityName>, Arc<HtmlMasker>>,
        >,
    >,
}

impl GatewayState {
    /// The HTML masker for a session with `scope`: the policy's, or one that shows what
    /// the scope reveals.
    fn masker_for(&self, scope: &actas_core::scope::Scope) -> Arc<HtmlMasker> {
        let policy = self.service.policy();
        let reveals = policy.reveals_in(scope);
        if reveals.is_empty() {
            return self.masker.clone();
        }
        let mut cache = self
            .revealing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = cache.get(&reveals) {
            return m.clone();
        }
        // The policy's selectors were checked at start, so these parse too; if they
        // somehow didn't, nothing is revealed.
        let masker = HtmlMasker::with_rules(policy, &policy.masking_for(scope))
            .map(Arc::new)
            .unwrap_or_else(|_| self.masker.clone());
        cache.insert(reveals, masker.clone());
        masker
    }
}

/// The gateway's router.
pub fn router(state: GatewayState) -> Router {
    reserved::routes().fallback(proxy).with_state(state)
}

/// One proxied request, through the phases in order; whatever ends it, `logging` runs.
async fn proxy(
    State(state): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let ctx = ProxyCtx::new(&request);
    logging::logged(&state, ctx, None, async |ctx| {
        phases(&state, ctx, peer, request).await
    })
    .await
}

async fn phases(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    peer: SocketAddr,
    request: Request,
) -> Result<Response, GatewayError> {
    let mut request = request_filter::request_filter(state, ctx, request).await?;
    if let record::Recorded::Confirm {
        description,
        current,
    } = record::record(state, ctx, &mut request).await?
    {
        return signed::hold(state, ctx, request, peer, description, &current).await;
    }
    forward(state, ctx, request, peer).await
}

/// Phases 3 to 5 for a recorded request.
async fn forward(
    state: &GatewayState,
    ctx: &mut ProxyCtx,
    request: request_filter::Filtered,
    peer: SocketAddr,
) -> Result<Response, GatewayError> {
    match upstream::upstream(state, ctx, request, peer).await? {
        upstream::Forwarded::Live(response) => Ok(response),
        upstream::Forwarded::Http(answer) => {
            let answer = response_filter::response_filter(state, ctx, answer).await?;
            body::body(state, ctx, answer).await
        }
    }
}
