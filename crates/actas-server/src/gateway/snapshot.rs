//! Pages as the agent saw them: the masked HTML a page view sends (banner included) is
//! hashed and, within the policy's per-session limit, compressed as it streams — the same
//! bytes, in the same order, as the browser gets. When the whole page has gone out both
//! go to the service, which records the hash in the ledger and keeps the copy. A page
//! that breaks off or is cut off when the session ends is not kept: that is recorded as
//! a cut-off answer instead.

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
}

impl Keeper {
    /// A keeper for the page answering the page view `page_seq`.
    pub(super) fn new(
        state: &GatewayState,
        session: GatewayContext,
        page_seq: u64,
        path: &str,
    ) -> Self {
        Self {
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
            Some(z) => z.write_all(chunk).is_err() || z.get_ref().len() as u64 > self.limit,
            None => false,
        };
        if over {
            self.gzip = None;
        }
    }

    /// Hands the page over to be recorded, in the background: the agent's page has gone
    /// out and doesn't wait for it.
    fn finish(self) {
        let gzip = self.gzip.and_then(|z| z.finish().ok());
        let page = ServedPage {
            page_seq: self.page_seq,
            path: self.path,
            sha256: self.hasher.finalize().into(),
            bytes: self.bytes,
            gzip,
        };
        let (state, session) = (self.state, self.session);
        tokio::spawn(async move {
            if let Err(e) = state.service.keep_page(&session, page).await {
                tracing::error!(error = %e, "a served page's hash could not be recorded");
            }
        });
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
