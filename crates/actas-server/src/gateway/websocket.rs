//! WebSockets through the gateway. An upgrade passes only inside a live session and after
//! it has been recorded (it goes through the same admission as any request). Then the
//! gateway bridges the two connections and applies the same rules as to any response:
//!
//! - messages from the product are masked: a text message that is JSON is masked by the
//!   policy's JSON rules, unclassified fields hidden; anything the gateway can't mask (text
//!   that isn't JSON, binary messages) is dropped, never passed on (invariant 6);
//! - messages from the browser reach the product only when the session may change things
//!   (not in read-only mode), since a message can be a change the gateway can't classify;
//! - the session is checked again every [`RECHECK`]: when it ends (End button, time limit,
//!   revoked consent) the connection is closed with the reason.

use super::{GatewayState, notice};
use actas_core::scope::Mode;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
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
    cookie: String,
    mode: Mode,
    bar: String,
) -> Response {
    let ws_url = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => url.to_owned(),
    };
    let mut request = match ws_url.as_str().into_client_request() {
        Ok(r) => r,
        Err(_) => {
            return notice(
                StatusCode::BAD_GATEWAY,
                "The product can't be reached",
                "The live connection's address is not valid.",
                bar,
            );
        }
    };
    for (name, value) in &headers {
        if name != axum::http::header::HOST {
            request.headers_mut().append(name.clone(), value.clone());
        }
    }
    let upstream = match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            tracing::warn!(error = %e, "the product refused a live connection");
            return notice(
                StatusCode::BAD_GATEWAY,
                "The product did not accept the live connection",
                "Try again in a moment.",
                bar,
            );
        }
    };
    let state = state.clone();
    upgrade.on_upgrade(move |client| pump(state, client, upstream, cookie, mode))
}

type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn pump(
    state: GatewayState,
    mut client: WebSocket,
    mut upstream: UpstreamSocket,
    cookie: String,
    mode: Mode,
) {
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let ended = loop {
        tokio::select! {
            from_browser = client.recv() => match from_browser {
                Some(Ok(Message::Text(t))) if mode != Mode::ReadOnly => {
                    if upstream.send(Upstream::text(t.as_str())).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Binary(b))) if mode != Mode::ReadOnly => {
                    if upstream.send(Upstream::binary(b)).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                // Pings are answered by the server itself; in read-only mode the browser's
                // messages go nowhere.
                Some(Ok(_)) => {}
            },
            from_product = upstream.next() => match from_product {
                Some(Ok(Upstream::Text(t))) => {
                    let Some(masked) = super::mask_json_text(&state, t.as_str()) else {
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
                if let Some(why) = session_over(&state, &cookie).await {
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
