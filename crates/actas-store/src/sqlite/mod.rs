//! The embedded store: one SQLite file in WAL mode.
//!
//! Reads go through a small connection pool; every write goes through the single
//! `writer` task, which owns its own connection with `synchronous = FULL`.

mod apply;
mod checks;
mod read;
mod tx;

use crate::change::Unit;
use crate::ledger::{self, NodeMap, RawLedger};
use crate::model::{Account, AllowEntry, Appended, EventFilter, RecordedEvent, StaffRecord};
use crate::schema;
pub use crate::schema::Schema;
use crate::writer;
pub use crate::writer::MAX_BATCH;
use crate::{HeadSchedule, LedgerStats, Store, StoreError, StoreResult};
use actas_core::ids::{AccountId, RequestId, SessionId, StaffId};
use actas_core::merkle::{Hash, NodeId};
use actas_core::request::AccessRequest;
use actas_core::session::{ActiveSession, Session};
use actas_core::staff::Email;
use actas_core::tree_head::{LedgerKey, PublicKey, SignedTreeHead};
use actas_core::verify::{Problem, Report};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How to open a SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// How often tree heads are signed.
    pub heads: HeadSchedule,
    /// How many units may wait for the writer before callers wait to enqueue.
    pub queue: usize,
    /// The most units the writer commits in one transaction (group commit). 1 makes it
    /// one transaction per unit: the baseline the benchmarks compare against.
    pub max_batch: usize,
    /// How often the write-ahead log is copied back into the database file, by a
    /// background task rather than by whichever commit crosses SQLite's threshold.
    pub checkpoint_every: Duration,
    /// Apply migrations this build knows and the database lacks when opening it; when
    /// false, such a database is refused until `actas migrate` has run. A database
    /// with migrations this build does not know is always refused.
    pub migrate: bool,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            heads: HeadSchedule::default(),
            queue: 8192,
            max_batch: writer::MAX_BATCH,
            checkpoint_every: Duration::from_secs(1),
            migrate: true,
        }
    }
}

/// The migrations this build carries.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

async fn schema_of(pool: &SqlitePool) -> StoreResult<Schema> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
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

/// The database at `path` for `store copy`, read through a pool: it must exist and be
/// at this build's schema.
pub(crate) async fn open_for_copy(path: &Path) -> StoreResult<SqlitePool> {
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "the SQLite file {}",
            path.display()
        )));
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(path).create_if_missing(false))
        .await
        .map_err(StoreError::unexpected)?;
    match schema_of(&pool).await? {
        Schema::Current => Ok(pool),
        Schema::Ahead(unknown) => Err(schema::ahead(&unknown)),
        Schema::Behind(_) => Err(StoreError::Schema(format!(
            "the SQLite file {} needs migrations first: run `actas migrate` on it, then copy",
            path.display()
        ))),
    }
}

/// Applies the migrations the database at `path` lacks (creating it if needed), and
/// says which, in order; refuses a database a newer actas changed.
pub async fn migrate(path: &Path) -> StoreResult<Vec<String>> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(path))
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

/// Wanted nodes of a level are read in one scan when the scan covers at most this many
/// stored nodes per wanted one.
const DENSE: u64 = 8;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    writer: writer::Handle,
    /// The ledger key, for the statements signed outside the writer (checkpoints).
    key: LedgerKey,
    /// Dropping it stops the checkpointer.
    _checkpoints: tokio::sync::watch::Sender<()>,
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // Reads of a large ledger (an account's audit extract walks hundreds of thousands
        // of Merkle nodes) go through memory-mapped pages instead of a read call per
        // page, and each connection keeps more pages than SQLite's 2 MiB default.
        .pragma("mmap_size", "1073741824")
        .pragma("cache_size", "-32768")
        .disable_statement_logging()
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts
    /// the ledger writer, which signs heads with `key`.
    pub async fn open(path: &Path, key: LedgerKey, config: SqliteConfig) -> StoreResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options(path))
            .await
            .map_err(StoreError::unexpected)?;
        if schema::must_migrate(schema_of(&pool).await?, config.migrate)? {
            MIGRATOR.run(&pool).await.map_err(StoreError::unexpected)?;
        }
        // The writer never checkpoints: with SQLite's default, every thousandth page of WAL
        // makes one commit copy the log into the database and fsync it, a stall of
        // milliseconds for whoever waits on that commit. A background task checkpoints
        // instead (PASSIVE: it never blocks the writer or readers).
        let conn = options(path)
            .pragma("wal_autocheckpoint", "0")
            .connect()
            .await
            .map_err(StoreError::unexpected)?;
        let (checkpoints, mut stop) = tokio::sync::watch::channel(());
        let checkpointer = pool.clone();
        let every = config.checkpoint_every;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => break,
                }
                if checkpointer.is_closed() {
                    break;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&checkpointer)
                    .await
                {
                    tracing::warn!(error = %e, "could not checkpoint the ledger's WAL");
                }
            }
        });
        let signer = key.clone();
        let w = writer::Writer::new(
            tx::SqliteTx(conn),
            key,
            config.heads,
            Arc::new(LedgerStats::default()),
            config.max_batch,
        );
        Ok(Self {
            pool,
            writer: writer::Handle::start(w, config.queue),
            key: signer,
            _checkpoints: checkpoints,
        })
    }

    /// The writer's counters.
    pub fn stats(&self) -> &LedgerStats {
        self.writer.stats()
    }

    /// The read pool, for tests that need to look under the hood.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn point_nodes(&self, ids: &[NodeId]) -> StoreResult<NodeMap> {
        let mut out = NodeMap::with_capacity_and_hasher(ids.len(), Default::default());
        // One indexed point read per node: O(log n) reads for any proof.
        let mut conn = self.pool.acquire().await.map_err(StoreError::unexpected)?;
        for id in ids {
            let h: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?")
                    .bind(i64::from(id.level))
                    .bind(id.index as i64)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(StoreError::unexpected)?;
            let h = h.ok_or_else(|| {
                StoreError::corrupt(format!("merkle node {}/{} is missing", id.level, id.index))
            })?;
            out.insert(*id, writer::to_hash(&h)?);
        }
        Ok(out)
    }

    /// Many nodes at once, with a few hundred per statement: for building thousands of
    /// proofs together (an account's audit extract) without a query per node.
    /// The levels are shared between two connections read at the same time (each runs on
    /// its own driver thread), which is what a two-core machine can give.
    async fn nodes_batched(&self, ids: &[NodeId]) -> StoreResult<NodeMap> {
        let mut by_level: std::collections::BTreeMap<u8, Vec<u64>> = Default::default();
        for id in ids {
            by_level.entry(id.level).or_default().push(id.index);
        }
        let mut levels: Vec<(u8, Vec<u64>)> = by_level.into_iter().collect();
        for (_, indexes) in &mut levels {
            indexes.sort_unstable();
            indexes.dedup();
        }
        // Shared out by estimated cost, dearest first: a scanned node costs about one
        // unit, a looked-up one about ten.
        let cost = |indexes: &[u64]| match (indexes.first(), indexes.last()) {
            (Some(&lo), Some(&hi)) if hi - lo < indexes.len() as u64 * DENSE => hi - lo + 1,
            _ => indexes.len() as u64 * 10,
        };
        levels.sort_by_key(|(_, indexes)| std::cmp::Reverse(cost(indexes)));
        let (mut left, mut right) = (Vec::new(), Vec::new());
        let (mut left_cost, mut right_cost) = (0, 0);
        for level in levels {
            if left_cost <= right_cost {
                left_cost += cost(&level.1);
                left.push(level);
            } else {
                right_cost += cost(&level.1);
                right.push(level);
            }
        }
        let (mut out, other) =
            futures_util::future::try_join(self.levels(left), self.levels(right)).await?;
        out.extend(other);
        Ok(out)
    }

    /// The wanted nodes of some levels, read on one connection.
    ///
    /// An extract wants hundreds of thousands, and the driver's cost per row would be
    /// most of the time, so each statement answers one row: the indexes it found
    /// (`group_concat(idx)`) and their hashes concatenated (`group_concat(hash, '')`).
    /// Both aggregates see the same rows in the same order, whatever that order is, so
    /// the n-th index names the n-th hash (an `ORDER BY` inside them would sort, and
    /// cost more than the read). Dense needs (an extract touching much of a level) read
    /// the level's run of nodes in one ordered scan and keep the wanted ones; sparse
    /// ones look each node up by key (a scanned node costs about a tenth of a
    /// looked-up one).
    async fn levels(&self, levels: Vec<(u8, Vec<u64>)>) -> StoreResult<NodeMap> {
        let mut out = NodeMap::with_capacity_and_hasher(
            levels.iter().map(|(_, i)| i.len()).sum(),
            Default::default(),
        );
        if levels.is_empty() {
            return Ok(out);
        }
        let mut conn = self.pool.acquire().await.map_err(StoreError::unexpected)?;
        for (level, indexes) in levels {
            let (Some(&lo), Some(&hi)) = (indexes.first(), indexes.last()) else {
                continue;
            };
            let before = out.len();
            if (hi - lo + 1) <= (indexes.len() as u64).saturating_mul(DENSE) {
                const RUN: u64 = 65_536;
                let mut start = lo;
                while start <= hi {
                    let end = (start + RUN - 1).min(hi);
                    let found: Found = sqlx::query_as(
                        "SELECT group_concat(idx), CAST(group_concat(hash, '') AS BLOB), \
                         min(length(hash)), max(length(hash)) \
                         FROM merkle_nodes WHERE level = ? AND idx BETWEEN ? AND ?",
                    )
                    .bind(i64::from(level))
                    .bind(start as i64)
                    .bind(end as i64)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(StoreError::unexpected)?;
                    pair(level, found, &mut out, |i| {
                        indexes.binary_search(&i).is_ok()
                    })?;
                    start = end + 1;
                }
            } else {
                for chunk in indexes.chunks(500) {
                    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "SELECT group_concat(idx), CAST(group_concat(hash, '') AS BLOB), \
                         min(length(hash)), max(length(hash)) \
                         FROM merkle_nodes WHERE level = ",
                    );
                    q.push_bind(i64::from(level)).push(" AND idx IN (");
                    let mut list = q.separated(", ");
                    for i in chunk {
                        list.push_bind(*i as i64);
                    }
                    q.push(")");
                    let found = q
                        .build_query_as()
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(StoreError::unexpected)?;
                    pair(level, found, &mut out, |_| true)?;
                }
            }
            // The indexes are distinct, so each one wanted was found exactly when the
            // count is right.
            if out.len() - before != indexes.len() {
                return Err(StoreError::corrupt(format!(
                    "some of {} merkle nodes at level {level} are missing",
                    indexes.len()
                )));
            }
        }
        Ok(out)
    }
}

/// One answer of a node read: the indexes found, their hashes concatenated, and the
/// shortest and longest hash (each must be 32 bytes, which the total alone can't show).
type Found = (Option<String>, Option<Vec<u8>>, Option<i64>, Option<i64>);

/// Adds to `out` the nodes of one `(group_concat(idx), group_concat(hash, ''))` answer
/// that `keep` wants, the n-th index naming the n-th hash.
fn pair(
    level: u8,
    (indexes, hashes, shortest, longest): Found,
    out: &mut NodeMap,
    keep: impl Fn(u64) -> bool,
) -> StoreResult<()> {
    if shortest.is_some_and(|n| n != 32) || longest.is_some_and(|n| n != 32) {
        return Err(StoreError::corrupt(format!(
            "the merkle nodes at level {level} hold a hash that is not 32 bytes"
        )));
    }
    let (indexes, hashes) = (indexes.unwrap_or_default(), hashes.unwrap_or_default());
    let mut hashes = hashes.chunks_exact(32);
    for index in indexes.split(',').filter(|i| !i.is_empty()) {
        let index: u64 = index
            .parse()
            .map_err(|_| StoreError::corrupt(format!("a merkle node index reads “{index}”")))?;
        let hash = hashes.next().ok_or_else(|| {
            StoreError::corrupt(format!("merkle node {level}/{index} has no hash"))
        })?;
        if keep(index) {
            out.insert(NodeId { level, index }, writer::to_hash(hash)?);
        }
    }
    if hashes.next().is_some() || !hashes.remainder().is_empty() {
        return Err(StoreError::corrupt(format!(
            "the merkle nodes at level {level} hold a hash that is not 32 bytes"
        )));
    }
    Ok(())
}

#[async_trait]
impl RawLedger for SqliteStore {
    async fn size(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM ledger_events")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::unexpected)?;
        Ok(n as u64)
    }

    async fn nodes(&self, ids: &[NodeId]) -> StoreResult<NodeMap> {
        self.point_nodes(ids).await
    }

    async fn many_nodes(&self, ids: &[NodeId]) -> StoreResult<NodeMap> {
        self.nodes_batched(ids).await
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
            "SELECT seq, time, kind, account, session, body, leaf_hash FROM ledger_events WHERE seq > ? ORDER BY seq LIMIT ?",
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
impl Store for SqliteStore {
    async fn commit(&self, unit: Unit) -> StoreResult<Vec<Appended>> {
        self.writer.commit(unit).await
    }

    async fn ready(&self) -> StoreResult<()> {
        if !self.writer.running() {
            return Err(StoreError::LedgerUnavailable(
                "the ledger writer has stopped".into(),
            ));
        }
        sqlx::query("SELECT 1")
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
        // An account's whole history can be 100,000 bodies, and the driver's cost per
        // row would be most of the time: the bodies come a few thousand at a time, each
        // lot one value, NUL-separated. A body is JSON, which can't hold a raw NUL, and
        // each lot's count is checked.
        let mut conn = self.pool.acquire().await.map_err(StoreError::unexpected)?;
        let mut out = Vec::with_capacity(seqs.len());
        for lot in seqs.chunks(2048) {
            let (Some(&first), Some(&last)) = (lot.first(), lot.last()) else {
                continue;
            };
            // As with the nodes, both aggregates see the rows in the same order.
            let (found, texts): (Option<String>, Option<Vec<u8>>) = sqlx::query_as(
                "SELECT group_concat(seq), CAST(group_concat(body, char(0)) AS BLOB) \
                 FROM ledger_events WHERE account = ? AND seq BETWEEN ? AND ?",
            )
            .bind(account.as_str())
            .bind(first as i64)
            .bind(last as i64)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::unexpected)?;
            let (found, texts) = (found.unwrap_or_default(), texts.unwrap_or_default());
            let found: Vec<u64> = found.split(',').filter_map(|s| s.parse().ok()).collect();
            let mut bodies: Vec<(u64, &[u8])> =
                found.into_iter().zip(texts.split(|&b| b == 0)).collect();
            // In whatever order the aggregate saw them (the index's, in practice).
            bodies.sort_unstable_by_key(|(seq, _)| *seq);
            if bodies.len() != lot.len()
                || texts.split(|&b| b == 0).count() != lot.len()
                || bodies.iter().zip(lot).any(|((a, _), b)| a != b)
            {
                return Err(StoreError::corrupt(format!(
                    "the events of account {account} from #{first} to #{last} are not the ones asked for"
                )));
            }
            for (seq, body) in bodies {
                let body = String::from_utf8(body.to_vec())
                    .map_err(|_| StoreError::corrupt(format!("event #{seq} is not UTF-8")))?;
                out.push((seq, body));
            }
        }
        Ok(out)
    }

    async fn account_event_seqs(&self, account: &AccountId, up_to: u64) -> StoreResult<Vec<u64>> {
        // One value, not a row per event (an account can have 100,000), sorted here.
        let list: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(seq) FROM ledger_events WHERE account = ? AND seq <= ?",
        )
        .bind(account.as_str())
        .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        let mut seqs = list
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|_| StoreError::corrupt(format!("an event number reads “{s}”")))
            })
            .collect::<StoreResult<Vec<u64>>>()?;
        seqs.sort_unstable();
        Ok(seqs)
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
        read::staff_where(&self.pool, "email = ?", email.as_str().to_owned()).await
    }

    async fn staff(&self, id: StaffId) -> StoreResult<Option<StaffRecord>> {
        read::staff_where(&self.pool, "id = ?", id.get()).await
    }

    async fn list_staff(&self) -> StoreResult<Vec<StaffRecord>> {
        read::list_staff(&self.pool).await
    }

    async fn allow_list(&self) -> StoreResult<Vec<AllowEntry>> {
        read::allow_list(&self.pool, None).await
    }

    async fn allowed(&self, staff: StaffId) -> StoreResult<Option<AllowEntry>> {
        Ok(read::allow_list(&self.pool, Some(staff))
            .await?
            .into_iter()
            .find(|e| e.revoked.is_none()))
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        Ok(read::accounts(&self.pool, Some(id))
            .await?
            .into_iter()
            .next())
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        read::accounts(&self.pool, None).await
    }

    async fn request(&self, id: RequestId) -> StoreResult<Option<AccessRequest>> {
        read::request(&self.pool, id).await
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        read::session_where(&self.pool, "id = ?", id.to_string()).await
    }

    async fn login(&self, token_hash: &[u8; 32]) -> StoreResult<Option<crate::Login>> {
        let row: Option<(i64, String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT staff_id, csrf, authenticated_at, expires_at, ended_at FROM staff_logins WHERE token_hash = ?",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        row.map(|(staff, csrf, auth, expires, ended)| {
            Ok(crate::Login {
                staff: StaffId::new(staff).map_err(StoreError::unexpected)?,
                csrf,
                authenticated_at: actas_core::Timestamp::from_millis(auth),
                expires_at: actas_core::Timestamp::from_millis(expires),
                ended: ended.is_some(),
            })
        })
        .transpose()
    }

    async fn api_token_owner(&self, hash: &[u8; 32]) -> StoreResult<Option<StaffId>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT staff_id FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        id.map(|i| StaffId::new(i).map_err(StoreError::unexpected))
            .transpose()
    }

    async fn gateway_login(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<crate::GatewayLogin>> {
        type Row = (String, String, String, String, String);
        let row: Option<Row> =
            sqlx::query_as("SELECT session_id, csrf, staff, account, ticket FROM gateway_logins WHERE token_hash = ?")
                .bind(&token_hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::unexpected)?;
        row.map(|(s, csrf, staff, account, ticket)| {
            Ok(crate::GatewayLogin {
                session: SessionId::parse(&s).map_err(StoreError::unexpected)?,
                csrf,
                staff: serde_json::from_str(&staff).map_err(StoreError::unexpected)?,
                account: serde_json::from_str(&account).map_err(StoreError::unexpected)?,
                ticket: actas_core::text::TicketRef::try_from(ticket)
                    .map_err(StoreError::unexpected)?,
            })
        })
        .transpose()
    }

    async fn held_action(&self, id: &str) -> StoreResult<Option<crate::model::HeldAction>> {
        let row: Option<crate::model::HeldActionRow> = sqlx::query_as(&format!(
            "SELECT {} FROM held_actions WHERE id = ?",
            crate::model::HELD_ACTION_COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        row.map(crate::model::HeldAction::from_row).transpose()
    }

    async fn handoff_session(&self, hash: &[u8; 32]) -> StoreResult<Option<SessionId>> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT session_id FROM handoff_tokens WHERE token_hash = ?")
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::unexpected)?;
        id.map(|i| SessionId::parse(&i).map_err(StoreError::unexpected))
            .transpose()
    }

    async fn active_sessions(&self) -> StoreResult<Vec<ActiveSession>> {
        let mut out = Vec::new();
        for id in read::session_ids(&self.pool, "ended_at IS NULL").await? {
            if let Some(Session::Active(a)) = self.session(id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn pending_requests(&self) -> StoreResult<Vec<AccessRequest>> {
        let mut out = Vec::new();
        for id in read::request_ids(&self.pool, "status = 'pending'").await? {
            if let Some(r) = self.request(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn requests_awaiting_code(&self) -> StoreResult<Vec<AccessRequest>> {
        let clause =
            "status = 'approved' AND needs_code AND NOT code_confirmed AND locked_at IS NULL";
        let mut out = Vec::new();
        for id in read::request_ids(&self.pool, clause).await? {
            if let Some(r) = self.request(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn requests_of(&self, staff: StaffId, limit: u32) -> StoreResult<Vec<AccessRequest>> {
        let mut out = Vec::new();
        for id in read::request_ids_of(&self.pool, staff, limit).await? {
            if let Some(r) = self.request(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn app_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<crate::AppKey>> {
        Ok(read::app_keys(
            &self.pool,
            "key_hash = ? AND revoked_at IS NULL",
            Some(&hash[..]),
        )
        .await?
        .into_iter()
        .next())
    }

    async fn app_keys(&self) -> StoreResult<Vec<crate::AppKey>> {
        read::app_keys(&self.pool, "1 = 1", None).await
    }

    async fn idempotency_key(&self, app: i64, key: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT request_hash FROM idempotency_keys WHERE app_id = ? AND key = ?")
            .bind(app)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::unexpected)
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
             WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ? AND a.revoked_at IS NULL \
             AND a.webhook_url IS NOT NULL AND a.webhook_secret IS NOT NULL)",
        )
        .bind(now.as_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::unexpected)
    }

    async fn outbox_stats(&self) -> StoreResult<crate::OutboxStats> {
        let (pending, failing, delivered): (i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(delivered_at IS NULL), 0), COALESCE(SUM(delivered_at IS NULL AND attempts > 0), 0), COALESCE(SUM(delivered_at IS NOT NULL), 0) FROM webhook_outbox",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        let last_error: Option<String> = sqlx::query_scalar(
            "SELECT last_error FROM webhook_outbox WHERE delivered_at IS NULL AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)?
        .flatten();
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(crate::OutboxStats {
            pending: n(pending),
            failing: n(failing),
            delivered: n(delivered),
            last_error,
        })
    }

    async fn account_sessions(
        &self,
        account: &AccountId,
        offset: u32,
        limit: u32,
    ) -> StoreResult<Vec<Session>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE account_id = ? ORDER BY started_at DESC, id LIMIT ? OFFSET ?",
        )
        .bind(account.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id = SessionId::parse(&id).map_err(StoreError::unexpected)?;
            if let Some(s) = self.session(id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn ended_sessions(
        &self,
        which: crate::EndedSessions,
        limit: u32,
    ) -> StoreResult<Vec<crate::EndedForReview>> {
        read::ended_sessions(&self.pool, which, limit).await
    }

    async fn page_copy(
        &self,
        session: SessionId,
        page_seq: u64,
    ) -> StoreResult<Option<crate::PageCopy>> {
        let row: Option<(String, String, Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT path, content_type, sha256, gzip, kept_at FROM page_copies WHERE session_id = ? AND page_seq = ?",
        )
        .bind(session.to_string())
        .bind(i64::try_from(page_seq).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        row.map(|(path, content_type, sha256, gzip, kept_at)| {
            Ok(crate::PageCopy {
                path,
                content_type,
                sha256: sha256
                    .try_into()
                    .map_err(|_| StoreError::corrupt("a page copy's hash is not 32 bytes"))?,
                gzip,
                kept_at: actas_core::Timestamp::from_millis(kept_at),
            })
        })
        .transpose()
    }

    async fn oldest_page_copy(&self) -> StoreResult<Option<actas_core::Timestamp>> {
        let at: Option<i64> = sqlx::query_scalar("SELECT min(kept_at) FROM page_copies")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::unexpected)?;
        Ok(at.map(actas_core::Timestamp::from_millis))
    }

    async fn unclassified_fields(&self) -> StoreResult<Vec<crate::UnclassifiedField>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT path, seen, first_seen, last_seen FROM unclassified_fields ORDER BY seen DESC, path",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        Ok(rows
            .into_iter()
            .map(|(path, seen, first, last)| crate::UnclassifiedField {
                path,
                seen: u64::try_from(seen).unwrap_or(0),
                first_seen: actas_core::Timestamp::from_millis(first),
                last_seen: actas_core::Timestamp::from_millis(last),
            })
            .collect())
    }

    async fn open_codes(
        &self,
        account: &AccountId,
        now: actas_core::Timestamp,
    ) -> StoreResult<Vec<crate::CodeRecord>> {
        read::open_codes(&self.pool, account, now).await
    }

    async fn active_session_of(&self, staff: StaffId) -> StoreResult<Option<ActiveSession>> {
        match read::session_where(&self.pool, "staff_id = ? AND ended_at IS NULL", staff.get())
            .await?
        {
            Some(Session::Active(a)) => Ok(Some(a)),
            _ => Ok(None),
        }
    }
}
