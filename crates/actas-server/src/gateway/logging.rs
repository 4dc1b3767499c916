//! Phase 6, `logging`: runs for every request, whatever ended it. It records what the
//! ledger must hold of an ending other than the product's answer — a request refused
//! before it was sent (blocked), an answer not passed on or never given — before that
//! ending is answered; then it counts the request in `/metrics`
//! (`actas_gateway_requests_total{outcome}` and a latency histogram) and records the
//! outcome and status on the request's span (`gateway_request`, with its id, method and
//! path), which the proxy opened when the request arrived.

use super::GatewayState;
use super::context::ProxyCtx;
use super::error::{GatewayError, LedgerEntry};
use super::notice::notice;
use crate::service::ServiceError;
use actas_core::gateway::ForwardKind;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The gateway's counters: requests by outcome, and how long they took to be answered
/// (to the first byte of the answer; a streamed body goes on after).
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl GatewayMetrics {
    fn observe(&self, outcome: &'static str, elapsed: std::time::Duration) {
        if let Ok(mut m) = self.outcomes.lock() {
            *m.entry(outcome).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Requests counted so far with `outcome`.
    pub fn outcome(&self, outcome: &str) -> u64 {
        self.outcomes
            .lock()
            .map(|m| m.get(outcome).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP actas_gateway_requests_total Requests through the gateway, by how they ended."
        );
        let _ = writeln!(out, "# TYPE actas_gateway_requests_total counter");
        if let Ok(m) = self.outcomes.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "actas_gateway_requests_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP actas_gateway_request_duration_seconds Time until a gateway request was answered."
        );
        let _ = writeln!(
            out,
            "# TYPE actas_gateway_request_duration_seconds histogram"
        );
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "actas_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "actas_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "actas_gateway_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "actas_gateway_request_duration_seconds_count {count}");
    }
}

/// Runs one gateway request's phases in its span (named by `method`, or the method it
/// was sent with), then [`logging`] whatever ended them.
pub(super) async fn logged(
    state: &GatewayState,
    mut ctx: ProxyCtx,
    method: Option<&'static str>,
    phases: impl AsyncFnOnce(&mut ProxyCtx) -> Result<Response, GatewayError>,
) -> Response {
    let span = tracing::info_span!(
        "gateway_request",
        id = ctx.id,
        method = %method.unwrap_or(&ctx.method_sent),
        path = %ctx.path_sent,
        outcome = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    async {
        let ended = phases(&mut ctx).await;
        logging(state, &ctx, ended).await
    }
    .instrument(span)
    .await
}

pub(super) async fn logging(
    state: &GatewayState,
    ctx: &ProxyCtx,
    ended: Result<Response, GatewayError>,
) -> Response {
    let (outcome, response) = match ended {
        Ok(response) => {
            let outcome = match ctx.forwarded {
                Some(ForwardKind::Asset(_)) => "asset",
                Some(ForwardKind::LiveOpen) => "live",
                _ => "forwarded",
            };
            (outcome, response)
        }
        Err(error) => {
            let error = record_ending(state, ctx, error).await;
            (error.outcome(), answer(ctx, &error))
        }
    };
    let elapsed = ctx.started.elapsed();
    state.metrics.observe(outcome, elapsed);
    let span = tracing::Span::current();
    span.record("outcome", outcome);
    span.record("status", response.status().as_u16());
    tracing::debug!(
        micros = elapsed.as_micros() as u64,
        "gateway request answered"
    );
    response
}

/// Writes what the ledger must hold of `error`, and returns how to answer: a refusal
/// that can't be recorded because the ledger is down is answered as that (nothing was
/// sent), and one on a session that ended meanwhile as the session's end.
async fn record_ending(state: &GatewayState, ctx: &ProxyCtx, error: GatewayError) -> GatewayError {
    let (Some(entry), Some(session)) = (error.ledger(ctx), ctx.session.as_ref()) else {
        return error;
    };
    let method = ctx.method_text();
    let path = ctx.path_text();
    let recorded = match entry {
        LedgerEntry::Blocked { capability, why } => {
            match state
                .service
                .record_block(session, &method, path, capability, why)
                .await
            {
                Ok(()) => return error,
                Err(e) => e,
            }
        }
        LedgerEntry::AnswerRefused { why } => {
            match state
                .service
                .record_answer_refused(session, &method, path, why)
                .await
            {
                Ok(()) => return error,
                Err(e) => {
                    // Nothing can undo what was sent; the answer is still not shown, and
                    // the operator must hear that this record is missing (for an asset,
                    // the only record the request would have had).
                    tracing::error!(error = %e, request = ctx.id, "a refused answer could not be recorded");
                    return error;
                }
            }
        }
    };
    match recorded {
        ServiceError::Unavailable(_) => GatewayError::LedgerDown,
        ServiceError::Unauthenticated(m)
        | ServiceError::Forbidden(m)
        | ServiceError::Conflict(m)
        | ServiceError::NotFound(m) => GatewayError::SessionOver(m),
        other => {
            tracing::error!(error = %other, request = ctx.id, "a refusal could not be recorded");
            GatewayError::LedgerDown
        }
    }
}

/// The gateway's own answer for an ending.
fn answer(ctx: &ProxyCtx, error: &GatewayError) -> Response {
    if let GatewayError::NotCanonical(to) = error {
        return (
            error.status(),
            [
                (header::LOCATION, to.as_str()),
                (header::CACHE_CONTROL, "no-store"),
            ],
        )
            .into_response();
    }
    let (title, message) = error.words(ctx);
    let banner = match error {
        GatewayError::NoSession | GatewayError::SessionOver(_) => "",
        _ => ctx.banner.as_str(),
    };
    let mut response = notice(error.status(), title, &message, banner);
    if let GatewayError::Method(_) = error {
        response.headers_mut().insert(
            header::ALLOW,
            axum::http::HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    response
}
