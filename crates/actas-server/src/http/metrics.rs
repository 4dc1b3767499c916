//! `/metrics` in the Prometheus text format: requests, gateway requests by outcome and
//! their latency, active sessions, pending approvals, ledger appends and batch sizes.
//!
//! Rendered here by hand rather than through a metrics library: the numbers live in
//! different places (the store's writer counters, the database, a request counter) and
//! are read at scrape time; the exposition format for a handful of counters, gauges and
//! one histogram is a few lines.

use super::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Requests served, by method, route pattern and status.
#[derive(Debug, Default)]
pub struct RequestCounter(Mutex<BTreeMap<(String, String, u16), u64>>);

impl RequestCounter {
    fn add(&self, method: &str, route: &str, status: u16) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
        }
    }

    fn snapshot(&self) -> Vec<((String, String, u16), u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

pub(super) async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    // The route pattern, not the raw path, so ids don't explode the label set.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .requests
        .add(&method, &route, response.status().as_u16());
    response
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.service.store();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP actas_http_requests_total HTTP requests served by the console listener."
    );
    let _ = writeln!(out, "# TYPE actas_http_requests_total counter");
    for ((method, route, status), n) in state.requests.snapshot() {
        let _ = writeln!(
            out,
            "actas_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
            label(&method),
            label(&route)
        );
    }
    let sessions = store.active_sessions().await.map(|s| s.len());
    let pending = store.pending_requests().await.map(|r| r.len());
    let _ = writeln!(
        out,
        "# HELP actas_sessions_active Support sessions currently active."
    );
    let _ = writeln!(out, "# TYPE actas_sessions_active gauge");
    if let Ok(n) = sessions {
        let _ = writeln!(out, "actas_sessions_active {n}");
    }
    let _ = writeln!(
        out,
        "# HELP actas_approvals_pending Access requests waiting for a lead."
    );
    let _ = writeln!(out, "# TYPE actas_approvals_pending gauge");
    if let Ok(n) = pending {
        let _ = writeln!(out, "actas_approvals_pending {n}");
    }
    let _ = writeln!(
        out,
        "# HELP actas_reviews_overdue Ended sessions waiting for a lead's review past the policy's review_within_days."
    );
    let _ = writeln!(out, "# TYPE actas_reviews_overdue gauge");
    if let Ok(n) = state.service.overdue_reviews().await {
        let _ = writeln!(out, "actas_reviews_overdue {n}");
    }
    if let Ok(o) = store.outbox_stats().await {
        for (name, help, kind, value) in [
            (
                "actas_notifications_pending",
                "Notifications to the product not yet delivered.",
                "gauge",
                o.pending,
            ),
            (
                "actas_notifications_failing",
                "Undelivered notifications that have failed at least once (retried with back-off).",
                "gauge",
                o.failing,
            ),
            (
                "actas_notifications_delivered_total",
                "Notifications delivered to the product.",
                "counter",
                o.delivered,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
    state.gateway_metrics.render(&mut out);
    let stats = store.ledger_stats();
    let _ = writeln!(
        out,
        "# HELP actas_ledger_appends_total Events appended to the ledger by this process."
    );
    let _ = writeln!(out, "# TYPE actas_ledger_appends_total counter");
    let _ = writeln!(out, "actas_ledger_appends_total {}", stats.events());
    let _ = writeln!(
        out,
        "# HELP actas_ledger_batch_size Units committed per ledger transaction (group commit)."
    );
    let _ = writeln!(out, "# TYPE actas_ledger_batch_size histogram");
    let mut cumulative = 0;
    for (bound, n) in actas_store::BATCH_BUCKETS.iter().zip(stats.batch_sizes()) {
        cumulative += n;
        let le = if *bound == u64::MAX {
            "+Inf".to_owned()
        } else {
            bound.to_string()
        };
        let _ = writeln!(
            out,
            "actas_ledger_batch_size_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "actas_ledger_batch_size_sum {}", stats.units());
    let _ = writeln!(out, "actas_ledger_batch_size_count {}", stats.batches());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}
