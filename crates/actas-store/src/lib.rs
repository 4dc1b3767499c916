//! actas storage.
//!
//! [`Store`] is what the rest of actas uses; [`sqlite::SqliteStore`] is the embedded
//! implementation (one file, WAL). A PostgreSQL implementation follows the same trait so
//! callers don't change.
//!
//! Every state change is committed together with the ledger event that records it
//! ([`Unit`]), by one writer task per store that groups concurrent units into one
//! transaction (group commit). A caller is answered only once its unit is durable; if the
//! ledger can't be written, nothing changes and the caller gets an error (fail closed).
#![deny(missing_docs)]

mod change;
mod checks;
mod ledger;
mod model;
pub mod postgres;
mod schema;
pub mod sqlite;
mod stats;
mod writer;

pub use change::{Applied, Change, SessionsOf, Unit};
pub use model::{
    Account, AllowEntry, AppKey, Appended, CodeRecord, DueWebhook, EndedForReview, EndedRecord,
    EndedSessions, EventFilter, GatewayLogin, Login, OutboxStats, PageCopy, RecordedEvent,
    SessionReview, StaffRecord, TotpSecret, UnclassifiedField,
};
pub use stats::{BATCH_BUCKETS, LedgerStats};

use actas_core::ids::{AccountId, RequestId, SessionId, StaffId};
use actas_core::merkle::Hash;
use actas_core::request::AccessRequest;
use actas_core::session::{ActiveSession, Session};
use actas_core::staff::Email;
use actas_core::tree_head::{PublicKey, SignedTreeHead};
use actas_core::verify::{Problem, Report};
use async_trait::async_trait;
use std::time::Duration;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0} was not found")]
    NotFound(String),
    /// It already exists (e.g. a staff member with that email).
    #[error("{0} already exists")]
    Duplicate(String),
    /// The state changed under the caller (e.g. a request was decided meanwhile), or a
    /// rule the database enforces was hit (e.g. a second active session).
    #[error("{0}")]
    Conflict(String),
    /// A credential the change was made with was revoked meanwhile (e.g. an app key).
    #[error("{0}")]
    Revoked(String),
    /// A rule decided in the transaction refuses it (consent revoked, off the
    /// allow-list, deactivated), in plain words.
    #[error("{0}")]
    Refused(String),
    /// The database's schema is not the one this build of actas knows, in plain words
    /// (what to do about it included).
    #[error("{0}")]
    Schema(String),
    /// The ledger could not be written; nothing was changed.
    #[error("the audit ledger can't be written right now, so nothing was changed")]
    LedgerUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (I/O, a corrupt row).
    #[error("storage failed: {0}")]
    Unexpected(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any failure that is neither bad input nor a ledger outage.
    pub fn unexpected(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unexpected(Box::new(e))
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Unexpected(what.into().into())
    }
}

/// Result alias for storage.
pub type StoreResult<T> = Result<T, StoreError>;

/// When the ledger writer signs tree heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadSchedule {
    /// Sign after this many new events.
    pub every_events: u64,
    /// ... or after this long with new events.
    pub every: Duration,
}

impl Default for HeadSchedule {
    fn default() -> Self {
        Self {
            every_events: 1000,
            every: Duration::from_secs(10),
        }
    }
}

/// Everything actas keeps. Implemented for SQLite and (later) PostgreSQL; every
/// implementation passes the same tests against a real database.
#[async_trait]
pub trait Store: Send + Sync {
    /// Whether the database answers and the ledger writer is running.
    async fn ready(&self) -> StoreResult<()>;

    /// The ledger writer's counters.
    fn ledger_stats(&self) -> &LedgerStats;

    /// Commits a unit: its changes and its events in one transaction, durable on return.
    async fn commit(&self, unit: Unit) -> StoreResult<Vec<Appended>>;

    /// Appends one event with no state change.
    async fn append(&self, event: actas_core::event::NewEvent) -> StoreResult<Appended> {
        let mut out = self.commit(Unit::event(event)).await?;
        out.pop()
            .ok_or_else(|| StoreError::corrupt("the writer returned no event"))
    }

    /// The public half of the key that signs tree heads.
    fn public_key(&self) -> PublicKey;

    /// Signs a tree head over the whole ledger now, if it grew since the last one.
    async fn sign_head_now(&self) -> StoreResult<Option<SignedTreeHead>>;

    /// Drains the writer and signs a final head. Call at every clean shutdown.
    async fn close(&self) -> StoreResult<()>;

    /// Number of events in the ledger.
    async fn ledger_size(&self) -> StoreResult<u64>;

    /// Events matching `filter` with `seq > after`, oldest first, at most `limit`.
    async fn events(
        &self,
        filter: &EventFilter,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>>;

    /// Events matching `filter` with `seq < before`, newest first, at most `limit`: the
    /// activity log's pages, read backwards.
    async fn events_before(
        &self,
        filter: &EventFilter,
        before: u64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>>;

    /// Every signed tree head, oldest first.
    async fn tree_heads(&self) -> StoreResult<Vec<SignedTreeHead>>;

    /// The inclusion proof of event `seq` in the tree of the first `size` events.
    async fn inclusion_proof(&self, seq: u64, size: u64) -> StoreResult<Vec<Hash>>;

    /// An account's events up to `up_to` (by sequence number), as `(seq, exact text)`,
    /// read through the account index without parsing: what an audit extract carries.
    async fn account_event_texts(
        &self,
        account: &AccountId,
        up_to: u64,
    ) -> StoreResult<Vec<(u64, String)>>;

    /// The sequence numbers of an account's events up to `up_to`, read from the account
    /// index alone: enough to start building their proofs while the texts are read.
    async fn account_event_seqs(&self, account: &AccountId, up_to: u64) -> StoreResult<Vec<u64>>;

    /// Inclusion proofs for many events against one tree size, built together (one
    /// fetch of every node they need, rather than a few queries per proof).
    async fn inclusion_proofs(&self, seqs: &[u64], size: u64) -> StoreResult<Vec<Vec<Hash>>>;

    /// The consistency proof from the first `old` events to the first `new`.
    async fn consistency_proof(&self, old: u64, new: u64) -> StoreResult<Vec<Hash>>;

    /// Checks the whole ledger against its signed heads; `progress(done, total)` is
    /// called as it goes. The outer error is a storage failure, the inner one a finding.
    async fn verify(
        &self,
        key: &PublicKey,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> StoreResult<Result<Report, Problem>>;

    /// A staff member by email.
    async fn staff_by_email(&self, email: &Email) -> StoreResult<Option<StaffRecord>>;

    /// A staff member by id.
    async fn staff(&self, id: StaffId) -> StoreResult<Option<StaffRecord>>;

    /// All staff, by name.
    async fn list_staff(&self) -> StoreResult<Vec<StaffRecord>>;

    /// The allow-list, current and revoked entries.
    async fn allow_list(&self) -> StoreResult<Vec<AllowEntry>>;

    /// A staff member's current allow-list entry, if not revoked.
    async fn allowed(&self, staff: StaffId) -> StoreResult<Option<AllowEntry>>;

    /// An account.
    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>>;

    /// All accounts, by name.
    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;

    /// An access request.
    async fn request(&self, id: RequestId) -> StoreResult<Option<AccessRequest>>;

    /// A session.
    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>>;

    /// A staff member's active session, if any.
    async fn active_session_of(&self, staff: StaffId) -> StoreResult<Option<ActiveSession>>;

    /// Every active session (for the reaper and the console).
    async fn active_sessions(&self) -> StoreResult<Vec<ActiveSession>>;

    /// Requests waiting for a lead, oldest first.
    async fn pending_requests(&self) -> StoreResult<Vec<AccessRequest>>;

    /// Approved requests still waiting for the customer's confirmation code (not locked),
    /// oldest first.
    async fn requests_awaiting_code(&self) -> StoreResult<Vec<AccessRequest>>;

    /// One staff member's own requests, newest first, at most `limit`.
    async fn requests_of(&self, staff: StaffId, limit: u32) -> StoreResult<Vec<AccessRequest>>;

    /// A console sign-in by the SHA-256 of its cookie value.
    async fn login(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Login>>;

    /// The staff member owning an unrevoked API token, by the token's SHA-256.
    async fn api_token_owner(&self, hash: &[u8; 32]) -> StoreResult<Option<StaffId>>;

    /// A gateway cookie's record, by the cookie's SHA-256.
    async fn gateway_login(&self, token_hash: &[u8; 32]) -> StoreResult<Option<GatewayLogin>>;

    /// The session a hand-off token (by its SHA-256) was issued for, used or not.
    async fn handoff_session(&self, hash: &[u8; 32]) -> StoreResult<Option<SessionId>>;

    /// An app key that is not revoked, by the SHA-256 of the key.
    async fn app_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<AppKey>>;

    /// Every app key, revoked ones too.
    async fn app_keys(&self) -> StoreResult<Vec<AppKey>>;

    /// The request hash recorded for an app's idempotency key, if the key was used.
    async fn idempotency_key(&self, app: i64, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Notifications due at `now`, oldest first.
    async fn due_webhooks(
        &self,
        now: actas_core::Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueWebhook>>;

    /// How the notification outbox stands.
    async fn outbox_stats(&self) -> StoreResult<OutboxStats>;

    /// Sessions on an account, newest first: `limit` of them after skipping `offset`.
    async fn account_sessions(
        &self,
        account: &AccountId,
        offset: u32,
        limit: u32,
    ) -> StoreResult<Vec<Session>>;

    /// Ended sessions with their review counts, newest ended first, at most `limit`.
    async fn ended_sessions(
        &self,
        which: EndedSessions,
        limit: u32,
    ) -> StoreResult<Vec<EndedForReview>>;

    /// The kept copy of a session's page view (`page_seq`), if it is kept.
    async fn page_copy(&self, session: SessionId, page_seq: u64) -> StoreResult<Option<PageCopy>>;

    /// When the oldest kept page copy was kept, if any is.
    async fn oldest_page_copy(&self) -> StoreResult<Option<actas_core::Timestamp>>;

    /// The JSON paths no masking rule classified, most often seen first.
    async fn unclassified_fields(&self) -> StoreResult<Vec<UnclassifiedField>>;

    /// An account's confirmation codes that are unused and unexpired at `now`.
    async fn open_codes(
        &self,
        account: &AccountId,
        now: actas_core::Timestamp,
    ) -> StoreResult<Vec<CodeRecord>>;
}
