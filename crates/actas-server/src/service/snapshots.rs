//! Pages as the agent saw them. When the gateway has served a page view it hands over
//! the SHA-256 of the masked bytes it sent (banner included) and, within the policy's
//! limit, a gzip copy of them; the hash goes into the ledger (`session.page_kept`) with
//! the copy, so a reviewer who opens the copy later sees it checked against the ledger.
//! Copies hold only what the gateway sent, never the product's raw answer, and are
//! deleted after the policy's `[snapshots] keep_days`.

use super::auth::Authenticated;
use super::gateway::GatewayContext;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::SessionId;
use actas_store::{Applied, Change, Unit};
use sha2::{Digest, Sha256};
use std::io::Read;

/// A page the gateway finished serving.
#[derive(Debug, Clone)]
pub struct ServedPage {
    /// The page view's ledger event.
    pub page_seq: u64,
    /// The path.
    pub path: String,
    /// SHA-256 of the bytes sent.
    pub sha256: [u8; 32],
    /// How many bytes were sent.
    pub bytes: u64,
    /// The bytes, gzip-compressed; `None` when they outgrew the session's limit as they
    /// streamed (the hash is recorded all the same).
    pub gzip: Option<Vec<u8>>,
}

/// A kept page, opened by a reviewer, with how it compares to the ledger.
#[derive(Debug, Clone)]
pub struct PageCopyView {
    /// Whose session, by name.
    pub staff: String,
    /// On which account, by name.
    pub account: String,
    /// The path.
    pub path: String,
    /// When it was served.
    pub served_at: Timestamp,
    /// The ledger's record of it: the event's number and the hash it holds.
    pub recorded: Option<(u64, String)>,
    /// The SHA-256 of the copy as it is now.
    pub actual: String,
    /// The copy's hash is the one the ledger holds.
    pub matches: bool,
    /// The copy: the HTML the agent's browser received.
    pub html: Vec<u8>,
}

/// A copy is never inflated past this, whatever its stored size says.
const MAX_COPY: u64 = 64 * 1024 * 1024;

impl Service {
    /// Records a served page's hash, with its copy when the session's copies are within
    /// the policy's limit (decided in the transaction).
    pub async fn keep_page(&self, ctx: &GatewayContext, page: ServedPage) -> ServiceResult<()> {
        let info = ctx.session.info();
        let (session, account, ticket) = (info.id, ctx.account.clone(), ctx.ticket.clone());
        let actor = Actor::Staff(ctx.staff.clone());
        let sha256 = hex(&page.sha256);
        let changes = match page.gzip {
            Some(gzip) => vec![Change::KeepPage {
                session,
                page_seq: page.page_seq,
                path: page.path.clone(),
                sha256: page.sha256,
                bytes: page.bytes,
                gzip,
                at: Timestamp::now(),
                max_session_bytes: self.policy.snapshots.max_bytes_per_session,
            }],
            None => Vec::new(),
        };
        let (path, seq, bytes) = (page.path, page.page_seq, page.bytes);
        self.store
            .commit(Unit::new(changes, move |applied| {
                let kept = applied.iter().any(|a| matches!(a, Applied::Kept(true)));
                vec![NewEvent::new(
                    actor,
                    EventData::PageKept {
                        session,
                        account,
                        ticket,
                        page: seq,
                        path,
                        sha256,
                        bytes,
                        kept,
                    },
                )]
            }))
            .await?;
        Ok(())
    }

    /// A kept page of a session, for whoever may read the session's timeline, checked
    /// against the ledger's record of it.
    pub async fn page_copy(
        &self,
        who: &Authenticated,
        id: SessionId,
        page_seq: u64,
    ) -> ServiceResult<PageCopyView> {
        let view = self.session_view(who, id).await?;
        let served_at = view
            .timeline
            .iter()
            .find(|e| e.body.seq == page_seq && e.body.kind() == "session.page_viewed")
            .map(|e| e.body.time)
            .ok_or_else(|| {
                ServiceError::NotFound(format!("page view {page_seq} of this session"))
            })?;
        let recorded = view.timeline.iter().find_map(|e| match &e.body.data {
            EventData::PageKept { page, sha256, .. } if *page == page_seq => {
                Some((e.body.seq, sha256.clone()))
            }
            _ => None,
        });
        let copy = self.store.page_copy(id, page_seq).await?.ok_or_else(|| {
            ServiceError::NotFound(
                "no copy of this page is kept: it was not an HTML page, the session's copies had reached the policy's limit, or it is older than the policy keeps copies".into(),
            )
        })?;
        let mut html = Vec::new();
        flate2::read::GzDecoder::new(copy.gzip.as_slice())
            .take(MAX_COPY)
            .read_to_end(&mut html)
            .map_err(|e| ServiceError::Conflict(format!("the kept copy can't be read: {e}")))?;
        let actual = hex(&Sha256::digest(&html));
        let matches = recorded.as_ref().is_some_and(|(_, h)| *h == actual);
        Ok(PageCopyView {
            staff: view.staff,
            account: view.account.name.to_string(),
            path: copy.path,
            served_at,
            recorded,
            actual,
            matches,
            html,
        })
    }

    /// Deletes page copies older than the policy keeps them; how many went.
    pub async fn prune_page_copies(&self, now: Timestamp) -> ServiceResult<u64> {
        let keep = self.policy.snapshots.keep;
        let before = Timestamp::from_millis(now.as_millis() - keep.as_millis() as i64);
        // Nothing to delete: no write at all.
        if self
            .store
            .oldest_page_copy()
            .await?
            .is_none_or(|oldest| oldest >= before)
        {
            return Ok(0);
        }
        let pruned = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = pruned.clone();
        self.store
            .commit(Unit::new(
                vec![Change::PrunePageCopies { before }],
                move |applied| {
                    let n = applied
                        .iter()
                        .map(|a| match a {
                            Applied::Pruned(n) => *n,
                            _ => 0,
                        })
                        .sum();
                    counted.store(n, std::sync::atomic::Ordering::Relaxed);
                    Vec::new()
                },
            ))
            .await?;
        Ok(pruned.load(std::sync::atomic::Ordering::Relaxed))
    }
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
