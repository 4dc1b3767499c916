//! WebSockets through the gateway. An upgrade passes only inside a live session and after
//! it has been recorded (it goes through the same phases as any request). Then the
//! gateway bridges the two connections and applies the same rules as to any request and
//! response:
//!
//! - messages from the product are masked: a text message that is JSON is masked by the
//!   policy's JSON rules, unclassified fields hidden; anything the gateway can't mask (text
//!   that isn't JSON, binary messages) is dropped, never passed on (invariant 6);
//! - each message from the browser is decided by the same `decide` as any request (the
//!   policy's `websocket_capability`, refused in read-only mode) and recorded before it
//!   is sent on; a refused one is recorded as blocked and goes nowhere;
//! - the session is checked again every [`RECHECK`]: when it ends (End button, time limit,
//!   revoked consent) the connection is closed with the reason.

use super::GatewayState;
use super::context::ProxyCtx;
use super::error::GatewayError;
use crate::service::gateway::{ForwardRecord, GatewayContext};
use actas_core::gateway::path::CanonicalPath;
use actas_core::gateway::{Decision, Request, RequestKind, decide};
use actas_core::policy::routes::Method;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message as Upstream;

/// How often an open connection checks that its session is still live.
pub(super) const RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The close code for "the support session ended" (the policy-violation code of RFC 6455).
const SESSION_ENDED: u16 = 1008;

/// Connects to the product's WebSocket at `url` (http → ws) with `headers`, then answers
/// the browser's upgrade and bridges the two. If the product refuses, so does the gateway.
pub(super) async fn bridge(
    state: &GatewayState,
    upgrade: WebSocketUpgrade,
    url: &str,
    headers: HeaderMap,
    ctx: &ProxyCtx,
    path: CanonicalPath,
) -> Result<Response, GatewayError> {
    let session = ctx.session.clone().ok_or(GatewayError::Internal(
        "a live connection without a session",
    ))?;
    let ws_url = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => url.to_owned(),
    };
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| GatewayError::Upstream)?;
    for (name, value) in &headers {
        if name != axum::http::header::HOST {
            request.headers_mut().append(name.clone(), value.clone());
        }
    }
    let (upstream, _) = tokio::time::timeout(
        state.connect_timeout,
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| {
        tracing::warn!("the product did not take a live connection in time");
        GatewayError::Upstream
    })?
    .map_err(|e| {
        tracing::warn!(error = %e, "the product refused a live connection");
        GatewayError::Upstream
    })?;
    let live = Live {
        state: state.clone(),
        cookie: ctx.cookie.clone(),
        session,
        path,
    };
    Ok(upgrade.on_upgrade(move |client| pump(live, client, upstream)))
}

/// What a bridged connection needs to decide on and record the browser's messages.
struct Live {
    state: GatewayState,
    cookie: String,
    session: GatewayContext,
    path: CanonicalPath,
}

impl Live {
    /// Decides on one message from the browser and records it (sent or blocked); true if
    /// it may be sent on. A message that can't be recorded is not sent.
    async fn admit(&self, text: Option<&str>, bytes: usize) -> Result<bool, String> {
        let decision = decide(
            self.session.session.info(),
            self.state.service.policy(),
            &Request {
                method: Method::Get,
                path: &self.path,
                kind: RequestKind::LiveMessage,
            },
        );
        let decided = match decision {
            // No route names a message, so none is a signed action; were one, it could
            // not be shown as a change to confirm.
            Decision::Confirm { capability, .. } => Err((
                Some(capability),
                actas_core::gateway::BlockReason::Unconfirmable,
            )),
            Decision::Block { capability, why } => Err((capability, why)),
            Decision::Forward {
                kind, description, ..
            } => Ok((kind, description)),
        };
        let recorded = match decided {
            Err((capability, why)) => {
                return match self
                    .state
                    .service
                    .record_block(
                        &self.session,
                        "MESSAGE",
                        self.path.as_str(),
                        capability,
                        why.to_string(),
                    )
                    .await
                {
                    Ok(()) => Ok(false),
                    Err(e) => Err(e.to_string()),
                };
            }
            Ok((kind, description)) => {
                let fields = text
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                    .map(|v| super::record::masked_fields(&self.state, v))
                    .unwrap_or_default();
                self.state
                    .service
                    .record_forward(
                        &self.session,
                        ForwardRecord {
                            kind,
                            method: Method::Get,
                            path: &self.path,
                            description: &description,
                            fields,
                            bytes: bytes as u64,
                        },
                    )
                    .await
            }
        };
        recorded.map(|_| true).map_err(|e| e.to_string())
    }
}

type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn pump(live: Live, mut client: WebSocket, mut upstream: UpstreamSocket) {
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let ended = loop {
        tokio::select! {
            from_browser = client.recv() => {
                let (outgoing, text, bytes) = match from_browser {
                    Some(Ok(Message::Text(t))) => {
                        let len = t.len();
                        (Upstream::text(t.as_str()), Some(t), len)
                    }
                    Some(Ok(Message::Binary(b))) => {
                        let len = b.len();
                        (Upstream::binary(b), None, len)
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                    // Pings are answered by the server itself.
                    Some(Ok(_)) => continue,
                };
                match live.admit(text.as_ref().map(|t| t.as_str()), bytes).await {
                    Ok(true) => {
                        if upstream.send(outgoing).await.is_err() {
                            break None;
                        }
                    }
                    Ok(false) => {}
                    Err(why) => {
                        tracing::warn!(why = %why, "a message on a live connection could not be recorded; the connection is closed");
                        break Some("the support session can't record messages right now".to_owned());
                    }
                }
            }
            from_product = upstream.next() => match from_product {
                Some(Ok(Upstream::Text(t))) => {
                    let Some(masked) = super::body::mask_json_text(&live.state, t.as_str()) else {
                        tracing::warn!("a message from the product that is not JSON was dropped: it can't be masked");
                        continue;
                    };
                    if client.send(Message::Text(masked.into())).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Upstream::Binary(_))) => {
                    tracing::warn!("a binary message from the product was dropped: it can't be masked");
                }
                Some(Ok(Upstream::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            },
            _ = recheck.tick() => {
                if let Some(why) = session_over(&live.state, &live.cookie).await {
                    break Some(why);
                }
            }
        }
    };
    let reason = ended.unwrap_or_default();
    let _ = client
        .send(Message::Close(Some(CloseFrame {
            code: if reason.is_empty() {
                1000
            } else {
                SESSION_ENDED
            },
            reason: reason.into(),
        })))
        .await;
    let _ = upstream.close(None).await;
}

/// Why the session can no longer be used, if it can't.
pub(super) async fn session_over(state: &GatewayState, cookie: &str) -> Option<String> {
    let live = match state.service.gateway_session(cookie).await {
        Ok((session, login)) => state.service.live_context(session, &login).await,
        Err(e) => Err(e),
    };
    live.err()
        .map(|_| "the support session has ended".to_owned())
}
