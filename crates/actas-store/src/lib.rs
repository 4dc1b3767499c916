//! actas storage.
//!
//! [`Store`] is what the rest of actas uses; [`sqlite::SqliteStore`] is the embedded
//! implementation (one file, WAL) and [`postgres::PgStore`] the one several actas
//! instances share. [`open`] picks one from a [`Location`] (`sqlite://…` or
//! `postgres://…`), so callers never name a concrete type.
//!
//! Every state change is committed together with the ledger event that records it
//! ([`Unit`]), by one writer task per store that groups concurrent units into one
//! transaction (group commit). A caller is answered only once its unit is durable; if the
//! ledger can't be written, nothing changes and the caller gets an error (fail closed).
#![deny(missing_docs)]

mod change;
mod checks;
pub mod copy;
mod ledger;
mod model;
pub mod postgres;
mod schema;
pub mod sqlite;
mod stats;
mod writer;

pub use change::{Applied, Change, SessionsOf, Unit};
pub use model::{
    Account, AllowEntry, AppKey, Appended, AssertionKeyRecord, CodeRecord, DueWebhook,
    EndedForReview, EndedRecord, EndedSessions, EventFilter, GatewayLogin, HeldAction, Login,
    OutboxStats, PageCopy, RecordedEvent, SessionReview, SignOnFlow, StaffRecord, TotpSecret,
    UnclassifiedField,
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

/// Where the database is: what `[store] url` (or `ACTAS_DATABASE_URL`) names.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database (`postgres://user:password@host:port/database?…`).
    Postgres(String),
}

impl Location {
    /// Reads `sqlite://path` (relative to `base` unless absolute) or `postgres://…`
    /// (`postgresql://` too).
    pub fn parse(url: &str, base: &std::path::Path) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Schema(
                    "the store's address `sqlite://` names no file: write sqlite://actas.db or an absolute path".into(),
                ));
            }
            return Ok(Location::Sqlite(base.join(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_owned()));
        }
        Err(StoreError::Schema(format!(
            "the store's address {:?} is neither sqlite://… nor postgres://…",
            redacted(url)
        )))
    }
}

/// A database address with any password replaced by `…`, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=…"),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let base = redacted_userinfo(url);
    match query {
        Some(q) => format!("{base}?{q}"),
        None => base,
    }
}

fn redacted_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "the SQLite file {}", path.display()),
            Location::Postgres(url) => write!(f, "the PostgreSQL database {}", redacted(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// How to open a store, whichever the backend.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// When tree heads are signed.
    pub heads: HeadSchedule,
    /// The most units committed in one transaction.
    pub max_batch: usize,
    /// Apply missing migrations on open (otherwise refuse until `actas migrate`).
    pub migrate: bool,
    /// PostgreSQL: connections in the read pool.
    pub pool_size: u32,
    /// PostgreSQL: the longest a statement may run.
    pub statement_timeout: Duration,
    /// PostgreSQL: how long to wait for a connection.
    pub connect_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        let pg = postgres::PgConfig::default();
        Self {
            heads: HeadSchedule::default(),
            max_batch: writer::MAX_BATCH,
            migrate: true,
            pool_size: pg.pool_size,
            statement_timeout: pg.statement_timeout,
            connect_timeout: pg.connect_timeout,
        }
    }
}

/// Opens the store at `location`, starting its ledger writer (which signs with `key`).
pub async fn open(
    location: &Location,
    key: actas_core::tree_head::LedgerKey,
    options: OpenOptions,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(match location {
        Location::Sqlite(path) => std::sync::Arc::new(
            sqlite::SqliteStore::open(
                path,
                key,
                sqlite::SqliteConfig {
                    heads: options.heads,
                    max_batch: options.max_batch,
                    migrate: options.migrate,
                    ..sqlite::SqliteConfig::default()
                },
            )
            .await?,
        ),
        Location::Postgres(url) => std::sync::Arc::new(
            postgres::PgStore::open(
                url,
                key,
                postgres::PgConfig {
                    heads: options.heads,
                    max_batch: options.max_batch,
                    migrate: options.migrate,
                    pool_size: options.pool_size,
                    statement_timeout: options.statement_timeout,
                    connect_timeout: options.connect_timeout,
                    ..postgres::PgConfig::default()
                },
            )
            .await?,
        ),
    })
}

/// Applies the migrations the database at `location` lacks and names them, in order.
pub async fn migrate(location: &Location) -> StoreResult<Vec<String>> {
    match location {
        Location::Sqlite(path) => sqlite::migrate(path).await,
        Location::Postgres(url) => postgres::migrate(url).await,
    }
}

/// Everything actas keeps. Implemented for SQLite and PostgreSQL; both pass the same
/// contract tests against a real database.
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

    /// The ledger key, which also signs account checkpoints and checkpoint notes.
    fn ledger_key(&self) -> &actas_core::tree_head::LedgerKey;

    /// Signs a tree head over the whole ledger now, if it grew since the last one.
    async fn sign_head_now(&self) -> StoreResult<Option<SignedTreeHead>>;

    /// Drains the writer and signs a final head. Call at every clean shutdown.
    async fn close(&self) -> StoreResult<()>;

    /// Closes the read connections without signing anything: for commands that only
    /// read, so reading never vouches for events it did not check.
    async fn close_reads(&self);

    /// Stops the ledger writer but keeps reads working: from then on every write fails
    /// closed. This is what a failed disk or a lost database looks like to the rest of
    /// actas, and how the tests show that nothing happens without its ledger event.
    async fn stop_writer(&self);

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

    /// The account's events `seqs` (increasing, as [`Store::account_event_seqs`] gave
    /// them), as `(seq, exact text)`, read through the account index without parsing:
    /// what an audit extract carries. Any of them not the account's is an error.
    async fn account_event_texts(
        &self,
        account: &AccountId,
        seqs: &[u64],
    ) -> StoreResult<Vec<(u64, String)>>;

    /// The sequence numbers of an account's events up to `up_to`, read from the account
    /// index alone: enough to start building their proofs while the texts are read.
    async fn account_event_seqs(&self, account: &AccountId, up_to: u64) -> StoreResult<Vec<u64>>;

    /// One multi-leaf proof that the events `seqs` (in increasing order) are in the tree
    /// of the first `size` events: every node the proof needs, fetched at once.
    async fn multi_proof(&self, seqs: &[u64], size: u64) -> StoreResult<Vec<Hash>>;

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

    /// A held signed action, by its id.
    async fn held_action(&self, id: &str) -> StoreResult<Option<HeldAction>>;

    /// An app key that is not revoked, by the SHA-256 of the key.
    async fn app_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<AppKey>>;

    /// Every app key, revoked ones too.
    async fn app_keys(&self) -> StoreResult<Vec<AppKey>>;

    /// The request hash recorded for an app's idempotency key, if the key was used.
    async fn idempotency_key(&self, app: i64, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// The assertion keys, oldest first: the one signing now has no `retired_at`.
    async fn assertion_keys(&self) -> StoreResult<Vec<AssertionKeyRecord>>;

    /// Whether any notification is due at `now` (a read: the outbox claims through the
    /// writer only when there is something to claim).
    async fn webhooks_due(&self, now: actas_core::Timestamp) -> StoreResult<bool>;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_read_from_its_address_and_never_shows_a_password() {
        let base = std::path::Path::new("/srv/actas");
        assert_eq!(
            Location::parse("sqlite://actas.db", base).expect("sqlite"),
            Location::Sqlite(base.join("actas.db"))
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/actas.db", base).expect("absolute"),
            Location::Sqlite("/var/lib/actas.db".into())
        );
        let pg = Location::parse("postgres://actas:s3cret@db:5432/actas", base).expect("pg");
        assert_eq!(
            pg.to_string(),
            "the PostgreSQL database postgres://actas:…@db:5432/actas"
        );
        assert!(!format!("{pg:?}").contains("s3cret"));
        let err = Location::parse("mysql://root:hunter2@db/actas", base).expect_err("unknown");
        assert!(err.to_string().contains("neither sqlite"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(Location::parse("sqlite://", base).is_err());
        let q = Location::parse(
            "postgres://db/actas?user=a&password=pw1&sslmode=require",
            base,
        )
        .expect("pg");
        assert_eq!(
            q.to_string(),
            "the PostgreSQL database postgres://db/actas?user=a&password=…&sslmode=require"
        );
    }
}
