//! Pages as the agent saw them. When the gateway has served an HTML answer in a session
//! it hands over the SHA-256 of the masked bytes it sent (banner included) and a gzip
//! copy of them; about once a second the waiting pages are recorded together — the copies
//! kept within the policy's per-session limit, the hashes in one `session.pages_kept`
//! event per session — so a reviewer who opens a copy later sees it checked against the
//! ledger.
//! Copies hold only what the gateway sent, never the product's raw answer, and are
//! deleted after the policy's `[snapshots] keep_days`.

use super::auth::Authenticated;
use super::gateway::GatewayContext;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, KeptPage, NewEvent};
use actas_core::ids::SessionId;
use actas_core::merkle::leaf_hash;
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
    /// The Content-Type it was served with.
    pub content_type: String,
    /// SHA-256 of the bytes sent.
    pub sha256: [u8; 32],
    /// How many bytes were sent.
    pub bytes: u64,
    /// The bytes, gzip-compressed; `None` when they outgrew the session's limit as they
    /// streamed, or the page was cut short (the hash is recorded all the same).
    pub gzip: Option<Vec<u8>>,
    /// The agent's client stopped reading before the end.
    pub cut_short: bool,
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
    /// The Content-Type it was served with.
    pub content_type: String,
    /// When it was served.
    pub served_at: Timestamp,
    /// The ledger's record of it: the event's number and the hash it holds (only an
    /// event whose stored leaf hash is its text's).
    pub recorded: Option<(u64, String)>,
    /// The SHA-256 of the copy as it is now.
    pub actual: String,
    /// The copy's hash is the one the ledger holds.
    pub matches: bool,
    /// The copy: the HTML the agent's browser received.
    pub html: Vec<u8>,
}

/// Compressed bytes of copies that may wait for a flush; past it, hashes wait alone.
pub const MAX_QUEUED: usize = 64 * 1024 * 1024;

/// Whose a waiting page is, as its event names them.
#[derive(Debug, Clone)]
struct Whose {
    session: SessionId,
    staff: actas_core::staff::StaffRef,
    account: actas_core::account::AccountRef,
    ticket: actas_core::text::TicketRef,
}

/// Pages served and not yet recorded.
#[derive(Default)]
pub struct PageQueue(std::sync::Mutex<Waiting>);

#[derive(Default)]
struct Waiting {
    waiting: Vec<(Whose, ServedPage)>,
    bytes: usize,
}

impl PageQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A copy is never inflated past this, whatever its stored size says; the gateway keeps
/// no copy of a larger page.
pub const MAX_COPY: u64 = 64 * 1024 * 1024;

impl Service {
    /// Takes a page the gateway finished serving, to be recorded with the next
    /// [`Service::flush_pages`] (about once a second): one ledger event then holds many
    /// pages. Past [`MAX_QUEUED`] bytes of waiting copies, a page's hash waits without its
    /// copy.
    pub fn queue_page(&self, ctx: &GatewayContext, mut page: ServedPage) {
        let mut q = self.pages.lock();
        let size = page.gzip.as_ref().map_or(0, Vec::len);
        if q.bytes + size > MAX_QUEUED {
            page.gzip = None;
        }
        q.bytes += page.gzip.as_ref().map_or(0, Vec::len);
        q.waiting.push((
            Whose {
                session: ctx.session.info().id,
                staff: ctx.staff.clone(),
                account: ctx.account.clone(),
                ticket: ctx.ticket.clone(),
            },
            page,
        ));
    }

    /// Records the pages waiting since the last flush, in one transaction: each copy
    /// kept if its session's copies stay within the policy's limit (decided there), and
    /// one `session.pages_kept` event per session with every page's hash. If the ledger
    /// can't be written they wait for the next flush. How many pages were recorded.
    pub async fn flush_pages(&self) -> ServiceResult<usize> {
        let batch = {
            let mut q = self.pages.lock();
            q.bytes = 0;
            std::mem::take(&mut q.waiting)
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let at = Timestamp::now();
        let max = self.policy.snapshots.max_bytes_per_session;
        // Sessions in the order their first page came, each with its pages in order; and
        // for each page, whether it has a `KeepPage` change (whose result says if kept).
        let mut sessions: Vec<(Whose, Vec<(KeptPage, bool)>)> = Vec::new();
        let mut changes = Vec::new();
        for (whose, page) in &batch {
            let entry = match sessions
                .iter_mut()
                .position(|(w, _)| w.session == whose.session)
            {
                Some(i) => &mut sessions[i].1,
                None => {
                    sessions.push((whose.clone(), Vec::new()));
                    &mut sessions.last_mut().expect("just pushed").1
                }
            };
            let has_copy = page.gzip.is_some();
            if let Some(gzip) = &page.gzip {
                changes.push(Change::KeepPage {
                    session: whose.session,
                    page_seq: page.page_seq,
                    path: page.path.clone(),
                    content_type: page.content_type.clone(),
                    sha256: page.sha256,
                    bytes: page.bytes,
                    gzip: gzip.clone(),
                    at,
                    max_session_bytes: max,
                });
            }
            entry.push((
                KeptPage {
                    page: page.page_seq,
                    path: page.path.clone(),
                    sha256: hex(&page.sha256),
                    bytes: page.bytes,
                    kept: false,
                    cut_short: page.cut_short,
                },
                has_copy,
            ));
        }
        let recorded = batch.len();
        let result = self
            .store
            .commit(Unit::new(changes, move |applied| {
                // The `KeepPage` results, in the order the changes were made.
                let mut results = applied.iter().filter_map(|a| match a {
                    Applied::Kept(k) => Some(*k),
                    _ => None,
                });
                sessions
                    .into_iter()
                    .map(|(whose, pages)| {
                        let pages = pages
                            .into_iter()
                            .map(|(mut p, has_copy)| {
                                p.kept = has_copy && results.next().unwrap_or(false);
                                p
                            })
                            .collect();
                        NewEvent::new(
                            Actor::Staff(whose.staff),
                            EventData::PagesKept {
                                session: whose.session,
                                account: whose.account,
                                ticket: whose.ticket,
                                pages,
                            },
                        )
                    })
                    .collect()
            }))
            .await;
        match result {
            Ok(_) => Ok(recorded),
            Err(e) => {
                // Back in the queue for the next flush, before anything newer.
                let mut q = self.pages.lock();
                let newer = std::mem::take(&mut q.waiting);
                q.bytes = batch
                    .iter()
                    .chain(newer.iter())
                    .map(|(_, p)| p.gzip.as_ref().map_or(0, Vec::len))
                    .sum();
                q.waiting = batch.into_iter().chain(newer).collect();
                Err(e.into())
            }
        }
    }

    /// A kept page of a session, for whoever may read the session's timeline, checked
    /// against the ledger's record of it. `opened` says the page itself is about to be
    /// shown (not only its record), which is recorded first, like any view of the
    /// customer's data.
    pub async fn page_copy(
        &self,
        who: &Authenticated,
        id: SessionId,
        page_seq: u64,
        opened: bool,
    ) -> ServiceResult<PageCopyView> {
        let (session, staff, account) = self.readable_session(who, id).await?;
        let in_session = |e: &actas_store::RecordedEvent| e.body.session == Some(id);
        let served = self
            .store
            .events(
                &actas_store::EventFilter::default(),
                page_seq.saturating_sub(1),
                1,
            )
            .await?
            .into_iter()
            .find(|e| e.body.seq == page_seq && in_session(e))
            .ok_or_else(|| ServiceError::NotFound(format!("request {page_seq} of this session")))?;
        let kept_filter = actas_store::EventFilter {
            session: Some(id),
            kind: Some("session.pages_kept".into()),
            ..actas_store::EventFilter::default()
        };
        let recorded = self
            .store
            .events(&kept_filter, page_seq, 100_000)
            .await?
            .into_iter()
            .filter(|e| leaf_hash(e.raw.as_bytes()) == e.leaf_hash)
            .find_map(|e| match &e.body.data {
                EventData::PagesKept { pages, .. } => pages
                    .iter()
                    .find(|p| p.page == page_seq)
                    .map(|p| (e.body.seq, p.sha256.clone())),
                _ => None,
            });
        let copy = self.store.page_copy(id, page_seq).await?.ok_or_else(|| {
            ServiceError::NotFound(
                "no copy of this page is kept: it was not HTML, it was cut short, the session's copies had reached the policy's limit, or it is older than the policy keeps copies".into(),
            )
        })?;
        let mut html = Vec::new();
        flate2::read::GzDecoder::new(copy.gzip.as_slice())
            .take(MAX_COPY + 1)
            .read_to_end(&mut html)
            .map_err(|e| {
                ServiceError::Unexpected(actas_store::StoreError::unexpected(
                    std::io::Error::other(format!("the kept copy can't be read: {e}")),
                ))
            })?;
        let actual = hex(&Sha256::digest(&html));
        let matches = recorded.as_ref().is_some_and(|(_, h)| *h == actual);
        if opened && matches {
            let info = session.info();
            let (staff_ref, account_ref) = (self.staff_ref(info.staff).await?, account.to_ref());
            let ticket = self.request(info.request).await?.ticket;
            self.store
                .append(NewEvent::new(
                    Actor::Staff(who.staff().to_ref()),
                    EventData::PageCopyOpened {
                        session: id,
                        staff: staff_ref,
                        account: account_ref,
                        ticket,
                        page: page_seq,
                        path: copy.path.clone(),
                    },
                ))
                .await?;
        }
        Ok(PageCopyView {
            staff,
            account: account.name.to_string(),
            path: copy.path,
            content_type: copy.content_type,
            served_at: served.body.time,
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
