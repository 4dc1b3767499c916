//! The console listener's HTTP surface. Today: health, readiness and metrics; the
//! console pages and the JSON API mount here too.

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
mod health;
mod metrics;

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
}

/// The console listener's router.
pub fn console_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api::router())
        .merge(console::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
