//! Phase 5, `body`: the answer's body as its class says — HTML streamed through the
//! masking rewriter with the banner first in `<body>`, JSON read whole (up to the limit)
//! and masked, events masked one by one as they stream, assets and other answers passed
//! as they came — under the product's filtered headers, and always with `nosniff`, so the
//! browser takes the content for what it says it is.

use super::context::ProxyCtx;
use super::error::{AnswerRefusal, GatewayError};
use super::headers::product_headers;
use super::response_filter::{Answer, Class};
use super::{GatewayState, events, ndjson, rewrite, snapshot, websocket};
use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::{Stream, StreamExt};

pub(super) async fn body(
    state: &GatewayState,
    ctx: &ProxyCtx,
    answer: Answer,
) -> Result<Response, GatewayError> {
    let policy = state.service.policy();
    let (response, dropped) = product_headers(
        Response::builder().status(answer.upstream.status()),
        answer.upstream.headers(),
        policy,
        &answer,
        &state.origins,
    );
    state.service.note_unclassified(dropped.unclassified);
    if !dropped.actas_cookies.is_empty()
        && let Some(session) = &ctx.session
    {
        // Not a refusal of the answer, but the product reaching for actas's own cookies:
        // on the record before the answer goes out.
        let why = format!(
            "the product tried to set actas's own cookie {}, which was dropped",
            dropped.actas_cookies.join(", ")
        );
        if let Err(e) = state
            .service
            .record_answer_refused(session, &ctx.method_text(), ctx.path_text(), why)
            .await
        {
            tracing::error!(error = %e, "a dropped actas cookie could not be recorded");
            return Err(GatewayError::LedgerDown);
        }
    }
    let class = answer.class;
    let upstream = answer.upstream;
    let scope = &ctx
        .session
        .as_ref()
        .ok_or(GatewayError::Internal("an answer without a session"))?
        .session
        .info()
        .scope;
    if ctx.method_sent == "HEAD" {
        // The headers a GET would have had (less a rewritten body's length), no body.
        return response
            .header("x-content-type-options", "nosniff")
            .body(Body::empty())
            .map_err(|_| GatewayError::Internal("the answer's headers could not be passed on"));
    }
    // Every streamed body stops when the session does, and one that breaks off — the
    // product's connection, or a page that can't be masked — is recorded as such.
    let cutoff = Cutoff::new(state, ctx);
    let body =
        match class {
            // Streamed: each chunk is masked and sent on as it arrives, so memory stays
            // bounded whatever the page's size. A chunk that can't be rewritten ends the
            // response with an error (the browser gets a broken page, never an unmasked one).
            Class::Html(encoding) => {
                let rewriter = state.masker_for(scope).stream_page(&rewrite::Page {
                    banner: &ctx.banner,
                    origins: Some(state.origins.clone()),
                    encoding,
                    inline_scripts: ctx.allows.inline_scripts,
                });
                let reveals = cutoff.reveals();
                // The masked bytes of a recorded request's page are kept as the agent saw
                // them.
                let keeper = match (ctx.page_seq, &ctx.session) {
                    (Some(seq), Some(session)) if policy.snapshots.enabled() => {
                        Some(snapshot::Keeper::new(
                            state,
                            session.clone(),
                            seq,
                            ctx.path_text(),
                            // As the browser got it (XHTML goes out as HTML).
                            response
                                .headers_ref()
                                .and_then(|h| h.get(axum::http::header::CONTENT_TYPE))
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("text/html"),
                        ))
                    }
                    _ => None,
                };
                Body::from_stream(cutoff.guard(snapshot::kept(
                    rewritten_html(upstream.bytes_stream(), rewriter, state.clone(), reveals),
                    keeper,
                )))
            }
            // JSON is masked as a whole document, so it is read whole, up to the limit.
            Class::Json => {
                let raw = read_limited(upstream, state.max_body)
                    .await
                    .ok_or(GatewayError::Answer(AnswerRefusal::TooLarge))?;
                let mut v = serde_json::from_slice::<serde_json::Value>(&raw)
                    .map_err(|_| GatewayError::Answer(AnswerRefusal::Unmaskable))?;
                let rules = policy.masking_for(scope);
                let report = actas_core::mask::mask_json(&mut v, &rules, policy.unclassified);
                state.service.note_unclassified(report.unclassified);
                if !report.revealed.is_empty() {
                    cutoff
                        .reveals()
                        .record(report.revealed)
                        .await
                        .map_err(|_| GatewayError::LedgerDown)?;
                }
                Body::from(serde_json::to_vec(&v).map_err(|_| {
                    GatewayError::Internal("the masked answer could not be written")
                })?)
            }
            Class::Ndjson => Body::from_stream(
                cutoff.guard(masked_lines(upstream.bytes_stream(), state.clone())),
            ),
            Class::Events => Body::from_stream(
                cutoff.guard(masked_events(upstream.bytes_stream(), state.clone())),
            ),
            Class::Asset | Class::Passed => Body::from_stream(
                cutoff.guard(
                    upstream
                        .bytes_stream()
                        .map(|c| c.map_err(std::io::Error::other)),
                ),
            ),
        };
    response
        .header("x-content-type-options", "nosniff")
        .body(body)
        .map_err(|_| GatewayError::Internal("the answer's headers could not be passed on"))
}

/// Reads a whole body, or None when it is larger than `limit` or breaks off.
async fn read_limited(upstream: reqwest::Response, limit: usize) -> Option<Bytes> {
    if upstream.content_length().is_some_and(|n| n > limit as u64) {
        return None;
    }
    let mut out = Vec::new();
    let mut chunks = upstream.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.ok()?;
        if out.len() + chunk.len() > limit {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(Bytes::from(out))
}

/// An event stream masked event by event as it streams from the product. Like a
/// WebSocket, it ends when the session does (checked every [`websocket::RECHECK`]): a
/// browser that reconnects then meets the gateway's refusal.
fn masked_events(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    state: GatewayState,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut masker = events::EventMasker::default();
    upstream.map(move |chunk| match chunk {
        Ok(chunk) => Ok(Bytes::from(
            masker.feed(&chunk, &|data| mask_json_text(&state, data)),
        )),
        Err(e) => Err(std::io::Error::other(e)),
    })
}

/// Newline-delimited JSON masked line by line as it streams from the product.
fn masked_lines(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    state: GatewayState,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let upstream = Box::pin(upstream);
    futures_util::stream::unfold(
        (upstream, Some(ndjson::NdjsonMasker::default())),
        move |(mut upstream, masker)| {
            let state = state.clone();
            async move {
                let mut masker = masker?;
                let mask = |line: &str| mask_json_text(&state, line);
                Some(match upstream.next().await {
                    Some(Ok(chunk)) => {
                        let out = Bytes::from(masker.feed(&chunk, &mask));
                        (Ok(out), (upstream, Some(masker)))
                    }
                    Some(Err(e)) => (Err(std::io::Error::other(e)), (upstream, None)),
                    None => (Ok(Bytes::from(masker.finish(&mask))), (upstream, None)),
                })
            }
        },
    )
}

/// What an answer needs to record the masked fields it shows whole.
#[derive(Clone)]
struct Reveals {
    state: GatewayState,
    session: Option<crate::service::gateway::GatewayContext>,
    path: String,
}

impl Reveals {
    /// Records `fields` as revealed on this answer's page; nothing when there are none.
    async fn record(&self, fields: std::collections::BTreeSet<String>) -> Result<(), String> {
        if fields.is_empty() {
            return Ok(());
        }
        let session = self.session.as_ref().ok_or("no session")?;
        self.state
            .service
            .record_revealed(session, fields.into_iter().collect(), &self.path)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "a revealed field could not be recorded; the answer is cut off");
                e.to_string()
            })
    }
}

/// What a streamed body needs to stop with its session and to record how it broke off.
#[derive(Clone)]
struct Cutoff {
    state: GatewayState,
    cookie: String,
    session: Option<crate::service::gateway::GatewayContext>,
    method: String,
    path: String,
}

impl Cutoff {
    fn new(state: &GatewayState, ctx: &ProxyCtx) -> Self {
        Self {
            state: state.clone(),
            cookie: ctx.cookie.clone(),
            session: ctx.session.clone(),
            method: ctx.method_text(),
            path: ctx.path_text().to_owned(),
        }
    }

    /// `body`, checked against the session every [`websocket::RECHECK`]: when the
    /// session ends (End, a time limit, revoked consent) the body is cut off, with an
    /// error, so the browser never takes it for whole. A body that fails on its own is
    /// recorded as an answer not passed on.
    fn guard(
        self,
        body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let mut recheck = tokio::time::interval(websocket::RECHECK);
        recheck.reset();
        let start = (Box::pin(body), recheck, false);
        futures_util::stream::unfold(start, move |(mut body, mut recheck, done)| {
            let cutoff = self.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    tokio::select! {
                        chunk = body.next() => {
                            let chunk = chunk?;
                            if let Err(e) = &chunk {
                                cutoff.record(format!("it broke off as it streamed ({e}), so the agent saw part of it"));
                            }
                            let failed = chunk.is_err();
                            return Some((chunk, (body, recheck, failed)));
                        }
                        _ = recheck.tick() => {
                            if websocket::session_over(&cutoff.state, &cutoff.cookie).await.is_some() {
                                let ended = std::io::Error::other("the support session ended");
                                return Some((Err(ended), (body, recheck, true)));
                            }
                        }
                    }
                }
            }
        })
    }

    /// What this answer needs to record what it reveals.
    fn reveals(&self) -> Reveals {
        Reveals {
            state: self.state.clone(),
            session: self.session.clone(),
            path: self.path.clone(),
        }
    }

    /// Records, in the background, that the answer broke off: the agent's connection is
    /// already being answered and can't wait.
    fn record(&self, why: String) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let (state, method, path) = (self.state.clone(), self.method.clone(), self.path.clone());
        tokio::spawn(async move {
            if let Err(e) = state
                .service
                .record_answer_refused(&session, &method, &path, why)
                .await
            {
                tracing::error!(error = %e, "a cut-off answer could not be recorded");
            }
        });
    }
}

/// JSON text from the product (a WebSocket message, an event's data), masked by the
/// policy with unclassified fields counted; `None` when it isn't JSON.
pub(super) fn mask_json_text(state: &GatewayState, text: &str) -> Option<String> {
    let mut v = serde_json::from_str::<serde_json::Value>(text).ok()?;
    let policy = state.service.policy();
    let report = actas_core::mask::mask_json(&mut v, policy.masking(), policy.unclassified);
    state.service.note_unclassified(report.unclassified);
    serde_json::to_string(&v).ok()
}

/// An HTML body masked chunk by chunk as it streams from the product; what each piece
/// reveals is recorded before the piece goes out.
fn rewritten_html(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    rewriter: rewrite::HtmlStream,
    state: GatewayState,
    reveals: Reveals,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let upstream = Box::pin(upstream);
    futures_util::stream::unfold(
        (upstream, Some(rewriter)),
        move |(mut upstream, rewriter)| {
            let (state, reveals) = (state.clone(), reveals.clone());
            async move {
                let mut rewriter = rewriter?;
                let step = match upstream.next().await {
                    Some(Ok(chunk)) => rewriter.feed(&chunk).map(|out| {
                        // Unclassified fields met so far, counted for the team.
                        state
                            .service
                            .note_unclassified(rewriter.take_unclassified());
                        let met = rewriter.take_revealed();
                        (out, met, Some(rewriter))
                    }),
                    Some(Err(e)) => Err(rewrite::RewriteError::Rewrite(e.to_string())),
                    None => rewriter.finish_reporting().map(|done| {
                        state.service.note_unclassified(done.unclassified);
                        (done.rest, done.revealed, None)
                    }),
                };
                let step = match step {
                    Ok((out, met, next)) => match reveals.record(met).await {
                        Ok(()) => Ok((out, next)),
                        Err(e) => Err(rewrite::RewriteError::Rewrite(e)),
                    },
                    Err(e) => Err(e),
                };
                Some(match step {
                    Ok((out, next)) => (Ok(out), (upstream, next)),
                    Err(e) => (Err(std::io::Error::other(e)), (upstream, None)),
                })
            }
        },
    )
}
