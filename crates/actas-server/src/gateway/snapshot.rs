//! Pages as the agent saw them: the masked HTML any recorded request in a session gets
//! (a page view, a page fetched by a script or a client, a change's answer; banner
//! included) is hashed and, within the policy's per-session limit, compressed as it
//! streams — the same bytes, in the same order, as the browser gets. When the whole page
//! has gone out both go to the service, which records the hash in the ledger and keeps
//! the copy. A page that breaks off (the session ended, the product's connection failed,
//! the agent's client stopped reading) keeps no copy, and the hash of what was sent until
//! then is recorded as cut short.

use super::GatewayState;
use crate::service::gateway::GatewayContext;
use crate::service::snapshots::ServedPage;
use axum::body::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::io::Write;

/// What is kept of one page as it streams.
pub(super) struct Keeper {
    state: GatewayState,
    session: GatewayContext,
    page_seq: u64,
    path: String,
    hasher: Sha256,
    bytes: u64,
    /// `None` once the copy outgrew the session's limit: the hash is kept all the same.
    gzip: Option<GzEncoder<Vec<u8>>>,
    limit: u64,
    content_type: String,
    /// Set once the page was handed over whole; otherwise dropping it records it as cut
    /// short.
    done: bool,
}

/// A page larger than this, before compression, keeps no copy (only its hash): a copy
/// is inflated whole to be shown.
pub(crate) const MAX_PAGE: u64 = crate::service::snapshots::MAX_COPY;

impl Keeper {
    /// A keeper for the page answering the page view `page_seq`.
    pub(super) fn new(
        state: &GatewayState,
        session: GatewayContext,
        page_seq: u64,
        path: &str,
        content_type: &str,
    ) -> Self {
        Self {
            content_type: content_type.to_owned(),
            done: false,
            limit: state.service.policy().snapshots.max_bytes_per_session,
            state: state.clone(),
            session,
            page_seq,
            path: path.to_owned(),
            hasher: Sha256::new(),
            bytes: 0,
            // The fastest level: the copy is written on the request's path.
            gzip: Some(GzEncoder::new(Vec::new(), Compression::fast())),
        }
    }

    fn add(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        let over = match self.gzip.as_mut() {
            Some(z) => {
                self.bytes > MAX_PAGE
                    || z.write_all(chunk).is_err()
                    || z.get_ref().len() as u64 > self.limit
            }
            None => false,
        };
        if over {
            self.gzip = None;
        }
    }

    /// Hands the page over to be recorded with the next flush: the agent's page has gone
    /// out and doesn't wait for it.
    fn finish(mut self) {
        self.done = true;
        let gzip = self.gzip.take().and_then(|z| z.finish().ok());
        self.hand_over(gzip, false);
    }

    fn hand_over(&mut self, gzip: Option<Vec<u8>>, cut_short: bool) {
        let page = ServedPage {
            page_seq: self.page_seq,
            path: std::mem::take(&mut self.path),
            content_type: std::mem::take(&mut self.content_type),
            sha256: std::mem::take(&mut self.hasher).finalize().into(),
            bytes: self.bytes,
            gzip,
            cut_short,
        };
        self.state.service.queue_page(&self.session, page);
    }
}

impl Drop for Keeper {
    /// A page dropped before its end was cut short: what was sent is recorded, no copy.
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.hand_over(None, true);
        }
    }
}

/// `body` as it is, with a copy kept by `keeper` (none when it is `None`).
pub(super) fn kept(
    body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    keeper: Option<Keeper>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(
        (Box::pin(body), keeper, false),
        |(mut body, mut keeper, done)| async move {
            if done {
                return None;
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    if let Some(k) = keeper.as_mut() {
                        k.add(&chunk);
                    }
                    Some((Ok(chunk), (body, keeper, false)))
                }
                // Broken off: nothing is kept of a page the agent saw only part of.
                Some(Err(e)) => Some((Err(e), (body, None, true))),
                None => {
                    if let Some(k) = keeper {
                        k.finish();
                    }
                    None
                }
            }
        },
    )
}
