//! The console listener's HTTP surface: the staff console's pages, the JSON API (staff
//! and, with app keys, the product), the identity provider's user sync (SCIM), the JWKS,
//! health, readiness and metrics.

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
mod health;
pub mod input;
pub mod ledger;
mod metrics;
pub mod scim;

pub use metrics::RequestCounter;

use crate::service::Service;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The operations.
    pub service: Service,
    /// Request counts for `/metrics`.
    pub requests: Arc<RequestCounter>,
    /// Where the console is served from (cookie flags, origin checks).
    pub site: auth::Site,
    /// The ledger's name in its checkpoint notes.
    pub ledger_origin: actas_core::checkpoint::Origin,
    /// Signs the gateway's assertions; its public keys are served as JWKS.
    pub assertions: Arc<crate::assertion::AssertionSigner>,
    /// The data directory (where a replaced assertion key is kept).
    pub data: crate::config::DataDir,
    /// Where agents open the product through the gateway, if it runs.
    pub gateway_url: Option<String>,
    /// The gateway's counters, shown in `/metrics`.
    pub gateway_metrics: Arc<crate::gateway::GatewayMetrics>,
    /// Turns true when the server stops: long-lived answers (the customer's live stream)
    /// end then, so a stop doesn't wait for them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Places for the customer's live activity streams: each polls the store, so their
    /// number is bounded ([`LIVE_STREAMS`]).
    pub live_streams: Arc<tokio::sync::Semaphore>,
}

/// How many live activity streams the console listener serves at once.
pub const LIVE_STREAMS: usize = 256;

/// The console listener's router.
pub fn console_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/actas-ledger-keys", get(ledger::keys))
        .route("/verify", get(ledger::verify_page))
        .nest("/api/v1", api::router())
        .nest("/scim/v2", scim::router(state.clone()))
        .merge(console::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The public keys that verify `Actas-Assertion` tokens: checked against the database
/// first, so a key another instance just put in place is published here too.
async fn jwks(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<serde_json::Value> {
    if let Err(e) = state
        .service
        .refresh_assertion_keys(&state.assertions)
        .await
    {
        tracing::warn!(error = %e, "could not check for a replaced assertion key");
    }
    axum::Json(state.assertions.jwks())
}
