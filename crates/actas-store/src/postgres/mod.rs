//! The PostgreSQL store: several actas instances on one database.
//!
//! Reads go through a connection pool; every write goes through this instance's ledger
//! writer (one connection), whose batches serialise with every other instance's on the
//! one-row ledger tip (see `tx`). Nothing a rule depends on lives only in this process:
//! the same schema and the same changes as SQLite, in PostgreSQL's own types.

mod apply;
mod checks;
mod read;
mod state;
mod tx;

use crate::change::Unit;
use crate::ledger::{self, NodeMap, RawLedger};
use crate::model::{Account, AllowEntry, Appended, EventFilter, RecordedEvent, StaffRecord};
use crate::schema::{self, Schema};
use crate::writer::{self, to_hash};
use crate::{HeadSchedule, LedgerStats, Store, StoreError, StoreResult};
use actas_core::ids::{AccountId, RequestId, SessionId, StaffId};
use actas_core::merkle::{Hash, NodeId};
use actas_core::request::AccessRequest;
use actas_core::session::{ActiveSession, Session};
use actas_core::staff::Email;
use actas_core::tree_head::{LedgerKey, PublicKey, SignedTreeHead};
use actas_core::verify::{Problem, Report};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How to open a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// How often tree heads are signed (by whichever instance's batch crosses it).
    pub heads: HeadSchedule,
    /// How many units may wait for this instance's writer before callers wait.
    pub queue: usize,
    /// The most units the writer commits in one transaction.
    pub max_batch: usize,
    /// Connections in the read pool (the writer has its own).
    pub pool_size: u32,
    /// The longest any statement may run before the database cancels it.
    pub statement_timeout: Duration,
    /// How long to wait for a connection (from the pool, or a new one).
    pub connect_timeout: Duration,
    /// Apply migrations this build knows and the database lacks when opening it.
    pub migrate: bool,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            heads: HeadSchedule::default(),
            queue: 8192,
            max_batch: writer::MAX_BATCH,
            pool_size: 8,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            migrate: true,
        }
    }
}

/// The migrations this build carries for PostgreSQL.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn options(url: &str, config: &PgConfig) -> StoreResult<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        StoreError::Schema(format!("the PostgreSQL address {url:?} can't be used: {e}"))
    })?;
    Ok(options
        // Durable before a caller hears "done", whatever the server's default.
        .options([
            ("synchronous_commit", "on".to_owned()),
            (
                "statement_timeout",
                format!("{}ms", config.statement_timeout.as_millis().max(1)),
            ),
            // An instance that stalls (paused, cut off) mid-batch must not hold the
            // ledger's tip for every other instance: the database ends its transaction
            // after 10 s idle, and notices a dead peer within about a minute.
            ("idle_in_transaction_session_timeout", "10s".to_owned()),
            ("tcp_keepalives_idle", "30".to_owned()),
            ("tcp_keepalives_interval", "10".to_owned()),
            ("tcp_keepalives_count", "3".to_owned()),
        ])
        .disable_statement_logging())
}

async fn schema_of(pool: &PgPool) -> StoreResult<Schema> {
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(StoreError::unexpected)?;
    let applied: Vec<i64> = if has_table {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(StoreError::unexpected)?
    } else {
        Vec::new()
    };
    Ok(Schema::compare(&MIGRATOR, &applied))
}

/// Applies the migrations the database at `url` lacks, and says which, in order;
/// refuses a database a newer actas changed. Safe to run from several instances at
/// once: sqlx takes an advisory lock while it migrates.
pub async fn migrate(url: &str) -> StoreResult<Vec<String>> {
    let config = PgConfig::default();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(config.connect_timeout)
        .connect_with(options(url, &config)?)
        .await
        .map_err(StoreError::unexpected)?;
    let applied = match schema_of(&pool).await? {
        Schema::Ahead(unknown) => Err(schema::ahead(&unknown)),
        Schema::Current => Ok(Vec::new()),
        Schema::Behind(pending) => MIGRATOR
            .run(&pool)
            .await
            .map(|()| pending)
            .map_err(StoreError::unexpected),
    };
    pool.close().await;
    applied
}

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: PgPool,
    writer: writer::Handle,
    /// The ledger key, for the statements signed outside the writer (checkpoints).
    key: LedgerKey,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…`), checks (or applies) its
    /// migrations and starts this instance's ledger writer, which signs heads with `key`.
    pub async fn open(url: &str, key: LedgerKey, config: PgConfig) -> StoreResult<Self> {
        let connect = options(url, &config)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .acquire_timeout(config.connect_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(StoreError::unexpected)?;
        if schema::must_migrate(schema_of(&pool).await?, config.migrate)? {
            MIGRATOR.run(&pool).await.map_err(StoreError::unexpected)?;
        }
        let conn = tokio::time::timeout(config.connect_timeout, connect.connect())
            .await
            .map_err(StoreError::unexpected)?
            .map_err(StoreError::unexpected)?;
        let signer = key.clone();
        let w = writer::Writer::new(
            tx::PgTx::new(conn, connect),
            key,
            config.heads,
            Arc::new(LedgerStats::default()),
            config.max_batch,
        );
        Ok(Self {
            pool,
            writer: writer::Handle::start(w, config.queue),
            key: signer,
        })
    }

    /// The read pool, for tests that need to look under the hood.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl RawLedger for PgStore {
    async fn size(&self) -> StoreResult<u64> {
        // The tip is updated in the transaction that appends, so it is exactly the
        // committed size.
        let n: i64 = sqlx::query_scalar("SELECT size FROM ledger_tip")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::unexpected)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn nodes(&self, ids: &[NodeId]) -> StoreResult<NodeMap> {
        let mut out = NodeMap::with_capacity_and_hasher(ids.len(), Default::default());
        for chunk in ids.chunks(50_000) {
            let levels: Vec<i64> = chunk.iter().map(|id| i64::from(id.level)).collect();
            let indexes: Vec<i64> = chunk.iter().map(|id| id.index as i64).collect();
            let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT n.level, n.idx, n.hash FROM merkle_nodes n
                 JOIN UNNEST($1::bigint[], $2::bigint[]) AS w(level, idx)
                   ON n.level = w.level AND n.idx = w.idx",
            )
            .bind(levels)
            .bind(indexes)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::unexpected)?;
            for (level, index, hash) in rows {
                let id = NodeId {
                    level: u8::try_from(level)
                        .map_err(|_| StoreError::corrupt("a merkle node's level"))?,
                    index: u64::try_from(index)
                        .map_err(|_| StoreError::corrupt("a merkle node's index"))?,
                };
                out.insert(id, to_hash(&hash)?);
            }
        }
        if let Some(missing) = ids.iter().find(|id| !out.contains_key(id)) {
            return Err(StoreError::corrupt(format!(
                "merkle node {}/{} is missing",
                missing.level, missing.index
            )));
        }
        Ok(out)
    }

    async fn event_rows(&self, after: u64, limit: u32) -> StoreResult<Vec<ledger::EventRow>> {
        type Row = (
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            String,
            Vec<u8>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, time, kind, account, session, body, leaf_hash FROM ledger_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        Ok(rows
            .into_iter()
            .map(
                |(seq, time, kind, account, session, body, leaf)| ledger::EventRow {
                    seq,
                    time,
                    kind,
                    account,
                    session,
                    body,
                    leaf,
                },
            )
            .collect())
    }

    async fn heads(&self) -> StoreResult<Vec<SignedTreeHead>> {
        read::tree_heads(&self.pool).await
    }
}

#[async_trait]
impl Store for PgStore {
    async fn commit(&self, unit: Unit) -> StoreResult<Vec<Appended>> {
        self.writer.commit(unit).await
    }

    async fn ready(&self) -> StoreResult<()> {
        if !self.writer.running() {
            return Err(StoreError::LedgerUnavailable(
                "the ledger writer has stopped".into(),
            ));
        }
        sqlx::query("SELECT size FROM ledger_tip")
            .execute(&self.pool)
            .await
            .map_err(StoreError::unexpected)?;
        Ok(())
    }

    fn ledger_stats(&self) -> &LedgerStats {
        self.writer.stats()
    }

    fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    fn ledger_key(&self) -> &LedgerKey {
        &self.key
    }

    async fn sign_head_now(&self) -> StoreResult<Option<SignedTreeHead>> {
        self.writer.sign_head_now().await
    }

    async fn close(&self) -> StoreResult<()> {
        let result = self.writer.close().await;
        self.pool.close().await;
        result
    }

    async fn close_reads(&self) {
        self.pool.close().await;
    }

    async fn stop_writer(&self) {
        let _ = self.writer.close().await;
    }

    async fn ledger_size(&self) -> StoreResult<u64> {
        RawLedger::size(self).await
    }

    async fn events(
        &self,
        filter: &EventFilter,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>> {
        read::events(&self.pool, filter, read::Range::After(after), limit).await
    }

    async fn events_before(
        &self,
        filter: &EventFilter,
        before: u64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>> {
        read::events(&self.pool, filter, read::Range::Before(before), limit).await
    }

    async fn tree_heads(&self) -> StoreResult<Vec<SignedTreeHead>> {
        read::tree_heads(&self.pool).await
    }

    async fn inclusion_proof(&self, seq: u64, size: u64) -> StoreResult<Vec<Hash>> {
        ledger::inclusion_proof(self, seq, size).await
    }

    async fn account_event_texts(
        &self,
        account: &AccountId,
        seqs: &[u64],
    ) -> StoreResult<Vec<(u64, String)>> {
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM ledger_events WHERE account = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
        )
        .bind(account.as_str())
        .bind(first as i64)
        .bind(last as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        let texts: Vec<(u64, String)> = rows
            .into_iter()
            .map(|(seq, body)| (u64::try_from(seq).unwrap_or(0), body))
            .collect();
        if texts.len() != seqs.len() || texts.iter().zip(seqs).any(|((a, _), b)| a != b) {
            return Err(StoreError::corrupt(format!(
                "the events of account {account} from #{first} to #{last} are not the ones asked for"
            )));
        }
        Ok(texts)
    }

    async fn account_event_seqs(&self, account: &AccountId, up_to: u64) -> StoreResult<Vec<u64>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM ledger_events WHERE account = $1 AND seq <= $2 ORDER BY seq",
        )
        .bind(account.as_str())
        .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        Ok(rows
            .into_iter()
            .map(|seq| u64::try_from(seq).unwrap_or(0))
            .collect())
    }

    async fn multi_proof(&self, seqs: &[u64], size: u64) -> StoreResult<Vec<Hash>> {
        ledger::multi_proof(self, seqs, size).await
    }

    async fn consistency_proof(&self, old: u64, new: u64) -> StoreResult<Vec<Hash>> {
        ledger::consistency_proof(self, old, new).await
    }

    async fn verify(
        &self,
        key: &PublicKey,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> StoreResult<Result<Report, Problem>> {
        ledger::verify(self, key, progress).await
    }

    async fn staff_by_email(&self, email: &Email) -> StoreResult<Option<StaffRecord>> {
        self.staff_by_email_(email).await
    }

    async fn staff(&self, id: StaffId) -> StoreResult<Option<StaffRecord>> {
        self.staff_(id).await
    }

    async fn list_staff(&self) -> StoreResult<Vec<StaffRecord>> {
        self.list_staff_().await
    }

    async fn allow_list(&self) -> StoreResult<Vec<AllowEntry>> {
        self.allow_list_().await
    }

    async fn allowed(&self, staff: StaffId) -> StoreResult<Option<AllowEntry>> {
        self.allowed_(staff).await
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        self.account_(id).await
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        self.list_accounts_().await
    }

    async fn request(&self, id: RequestId) -> StoreResult<Option<AccessRequest>> {
        self.request_(id).await
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        self.session_(id).await
    }

    async fn active_session_of(&self, staff: StaffId) -> StoreResult<Option<ActiveSession>> {
        self.active_session_of_(staff).await
    }

    async fn active_sessions(&self) -> StoreResult<Vec<ActiveSession>> {
        self.active_sessions_().await
    }

    async fn pending_requests(&self) -> StoreResult<Vec<AccessRequest>> {
        self.pending_requests_().await
    }

    async fn requests_awaiting_code(&self) -> StoreResult<Vec<AccessRequest>> {
        self.requests_awaiting_code_().await
    }

    async fn requests_of(&self, staff: StaffId, limit: u32) -> StoreResult<Vec<AccessRequest>> {
        self.requests_of_(staff, limit).await
    }

    async fn login(&self, token_hash: &[u8; 32]) -> StoreResult<Option<crate::Login>> {
        self.login_(token_hash).await
    }

    async fn api_token_owner(&self, hash: &[u8; 32]) -> StoreResult<Option<StaffId>> {
        self.api_token_owner_(hash).await
    }

    async fn gateway_login(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<crate::GatewayLogin>> {
        self.gateway_login_(token_hash).await
    }

    async fn held_action(&self, id: &str) -> StoreResult<Option<crate::model::HeldAction>> {
        let row: Option<crate::model::HeldActionRow> = sqlx::query_as(&format!(
            "SELECT {} FROM held_actions WHERE id = $1",
            crate::model::HELD_ACTION_COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        row.map(crate::model::HeldAction::from_row).transpose()
    }

    async fn handoff_session(&self, hash: &[u8; 32]) -> StoreResult<Option<SessionId>> {
        self.handoff_session_(hash).await
    }

    async fn app_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<crate::AppKey>> {
        self.app_key_by_hash_(hash).await
    }

    async fn app_keys(&self) -> StoreResult<Vec<crate::AppKey>> {
        self.app_keys_().await
    }

    async fn idempotency_key(&self, app: i64, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.idempotency_key_(app, key).await
    }

    async fn assertion_keys(&self) -> StoreResult<Vec<crate::AssertionKeyRecord>> {
        type Row = (String, Vec<u8>, Option<Vec<u8>>, Vec<u8>, i64, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT kid, public, sealed, mac, created_at, retired_at FROM assertion_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        rows.into_iter()
            .map(|(kid, public, sealed, mac, created, retired)| {
                Ok(crate::AssertionKeyRecord {
                    kid,
                    public: public
                        .try_into()
                        .map_err(|_| StoreError::corrupt("an assertion key is not 32 bytes"))?,
                    sealed,
                    mac,
                    created_at: actas_core::Timestamp::from_millis(created),
                    retired_at: retired.map(actas_core::Timestamp::from_millis),
                })
            })
            .collect()
    }

    async fn webhooks_due(&self, now: actas_core::Timestamp) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_outbox o JOIN app_keys a ON a.id = o.app_id \
             WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 AND a.revoked_at IS NULL \
             AND a.webhook_url IS NOT NULL AND a.webhook_secret IS NOT NULL)",
        )
        .bind(now.as_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::unexpected)
    }

    async fn outbox_stats(&self) -> StoreResult<crate::OutboxStats> {
        self.outbox_stats_().await
    }

    async fn account_sessions(
        &self,
        account: &AccountId,
        offset: u32,
        limit: u32,
    ) -> StoreResult<Vec<Session>> {
        self.account_sessions_(account, offset, limit).await
    }

    async fn ended_sessions(
        &self,
        which: crate::EndedSessions,
        limit: u32,
    ) -> StoreResult<Vec<crate::EndedForReview>> {
        self.ended_sessions_(which, limit).await
    }

    async fn page_copy(
        &self,
        session: SessionId,
        page_seq: u64,
    ) -> StoreResult<Option<crate::PageCopy>> {
        self.page_copy_(session, page_seq).await
    }

    async fn oldest_page_copy(&self) -> StoreResult<Option<actas_core::Timestamp>> {
        self.oldest_page_copy_().await
    }

    async fn unclassified_fields(&self) -> StoreResult<Vec<crate::UnclassifiedField>> {
        self.unclassified_fields_().await
    }

    async fn open_codes(
        &self,
        account: &AccountId,
        now: actas_core::Timestamp,
    ) -> StoreResult<Vec<crate::CodeRecord>> {
        self.open_codes_(account, now).await
    }
}
