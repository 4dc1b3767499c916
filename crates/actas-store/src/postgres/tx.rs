//! PostgreSQL's write transaction for the ledger writer (see `crate::writer`).
//!
//! Each batch is one transaction at READ COMMITTED that takes the one-row `ledger_tip`
//! `FOR UPDATE` (size, last leaf, frontier, newest head), so batches from every actas
//! instance on the database append one after another from `size + 1`: one gap-free
//! sequence, never a `SEQUENCE`. The rows are inserted with `UNNEST` (one statement for
//! the whole batch), the tip is updated in the same statement, and the commit runs with
//! `synchronous_commit = on` (set on every connection), so a caller is answered only
//! once its events are durable. This is the row-lock pattern of Tessera's SQL drivers.

use super::apply::apply;
use super::checks::read_checks;
use crate::change::{Applied, Change};
use crate::checks::Checks;
use crate::writer::{Rows, Tip, WriteTx, to_hash};
use crate::{StoreError, StoreResult};
use actas_core::merkle::{Frontier, Hash};
use actas_core::tree_head::SignedTreeHead;
use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use std::collections::HashSet;

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::LedgerUnavailable(Box::new(e))
}

/// The writer's own connection, opened again when it was lost (a database restart or
/// failover, a dropped socket): the next batch reconnects rather than every write
/// failing until actas restarts.
pub(super) struct PgTx {
    conn: Option<PgConnection>,
    options: PgConnectOptions,
}

impl PgTx {
    pub(super) fn new(conn: PgConnection, options: PgConnectOptions) -> Self {
        Self {
            conn: Some(conn),
            options,
        }
    }

    /// The open connection (a batch only runs once `begin` made sure there is one).
    fn c(&mut self) -> StoreResult<&mut PgConnection> {
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::LedgerUnavailable("the database connection was lost".into()))
    }

    async fn connected(&mut self) -> StoreResult<&mut PgConnection> {
        if self.conn.is_none() {
            let conn = self.options.connect().await.map_err(unavailable)?;
            tracing::info!("the ledger writer reconnected to the database");
            self.conn = Some(conn);
        }
        self.c()
    }
}

/// The stored frontier: its hashes concatenated, 32 bytes each.
pub(super) fn decode_frontier(size: u64, bytes: &[u8]) -> StoreResult<Frontier> {
    let hashes: Vec<Hash> = bytes.chunks(32).map(to_hash).collect::<StoreResult<_>>()?;
    Frontier::from_pieces(size, hashes)
        .ok_or_else(|| StoreError::corrupt("the stored ledger tip's frontier is incomplete"))
}

#[async_trait]
impl WriteTx for PgTx {
    async fn begin(&mut self, _cached: Option<&Tip>) -> StoreResult<Tip> {
        let begun = sqlx::query("BEGIN ISOLATION LEVEL READ COMMITTED")
            .execute(self.connected().await?)
            .await;
        if let Err(e) = begun {
            // The connection may be gone: drop it, so the next batch opens a new one.
            self.conn = None;
            return Err(unavailable(e));
        }
        // Another instance may have appended since this writer's last batch: the tip is
        // always read, under the lock, never taken from the cache.
        let (size, last_leaf, last_time, frontier, head_size): (i64, Vec<u8>, i64, Vec<u8>, i64) =
            sqlx::query_as(
                "SELECT size, last_leaf, last_time, frontier, head_size FROM ledger_tip FOR UPDATE",
            )
            .fetch_one(self.c()?)
            .await
            .map_err(unavailable)?;
        let size =
            u64::try_from(size).map_err(|_| StoreError::corrupt("a negative ledger size"))?;
        Ok(Tip {
            size,
            last_leaf: to_hash(&last_leaf)?,
            last_time,
            frontier: decode_frontier(size, &frontier)?,
            head_size: u64::try_from(head_size).unwrap_or(0),
        })
    }

    async fn claims_taken(
        &mut self,
        wanted: &[(i64, String)],
    ) -> StoreResult<HashSet<(i64, String)>> {
        if wanted.is_empty() {
            return Ok(HashSet::new());
        }
        let (apps, keys): (Vec<i64>, Vec<String>) = wanted.iter().cloned().unzip();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT k.app_id, k.key FROM idempotency_keys k
             JOIN UNNEST($1::bigint[], $2::text[]) AS w(app_id, key)
               ON k.app_id = w.app_id AND k.key = w.key",
        )
        .bind(apps)
        .bind(keys)
        .fetch_all(self.c()?)
        .await
        .map_err(unavailable)?;
        Ok(rows.into_iter().collect())
    }

    async fn read_checks(&mut self, changes: &[&Change]) -> StoreResult<Checks> {
        read_checks(self.c()?, changes).await
    }

    async fn apply(&mut self, change: Change) -> StoreResult<Applied> {
        apply(self.c()?, change).await
    }

    async fn savepoint(&mut self) -> StoreResult<()> {
        sqlx::query("SAVEPOINT unit")
            .execute(self.c()?)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&mut self) -> StoreResult<()> {
        sqlx::query("RELEASE SAVEPOINT unit")
            .execute(self.c()?)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        // A failed statement aborts the transaction up to the savepoint in PostgreSQL;
        // rolling back to it makes the transaction usable again.
        sqlx::query("ROLLBACK TO SAVEPOINT unit")
            .execute(self.c()?)
            .await
            .map_err(unavailable)?;
        sqlx::query("RELEASE SAVEPOINT unit")
            .execute(self.c()?)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn commit(
        &mut self,
        rows: &Rows,
        tip: &Tip,
        head: Option<&SignedTreeHead>,
    ) -> StoreResult<()> {
        let notifications = rows.notifications()?;
        let (bodies, times): (Vec<String>, Vec<i64>) = notifications.into_iter().unzip();
        let heads: Vec<&SignedTreeHead> = head.into_iter().collect();
        let frontier: Vec<u8> = tip.frontier.pieces().concat();
        // Every row of the batch and the new tip in one statement: data-modifying CTEs run
        // together, so a batch costs one round trip however many units it holds.
        sqlx::query(
            "WITH claims AS (
                INSERT INTO idempotency_keys (app_id, key, request_hash, created_at)
                SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bytea[], $4::bigint[])
             ), events AS (
                INSERT INTO ledger_events (seq, time, kind, account, session, body, leaf_hash)
                SELECT * FROM UNNEST($5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[])
             ), nodes AS (
                INSERT INTO merkle_nodes (level, idx, hash)
                SELECT * FROM UNNEST($12::bigint[], $13::bigint[], $14::bytea[])
             ), outbox AS (
                INSERT INTO webhook_outbox (app_id, body, next_attempt_at, created_at)
                SELECT a.id, n.body, n.t, n.t
                FROM UNNEST($15::text[], $16::bigint[]) WITH ORDINALITY AS n(body, t, ord)
                CROSS JOIN app_keys a
                WHERE a.webhook_url IS NOT NULL AND a.revoked_at IS NULL
                ORDER BY n.ord, a.id
             ), heads AS (
                INSERT INTO tree_heads (size, time, root, key_id, signature)
                SELECT * FROM UNNEST($17::bigint[], $18::bigint[], $19::bytea[], $20::text[], $21::bytea[])
             )
             UPDATE ledger_tip SET size = $22, last_leaf = $23, last_time = $24, frontier = $25, head_size = $26",
        )
        .bind(rows.claims.iter().map(|c| c.0).collect::<Vec<i64>>())
        .bind(rows.claims.iter().map(|c| c.1.clone()).collect::<Vec<String>>())
        .bind(rows.claims.iter().map(|c| c.2.to_vec()).collect::<Vec<Vec<u8>>>())
        .bind(rows.claims.iter().map(|c| c.3).collect::<Vec<i64>>())
        .bind(rows.events.iter().map(|e| e.seq).collect::<Vec<i64>>())
        .bind(rows.events.iter().map(|e| e.time).collect::<Vec<i64>>())
        .bind(rows.events.iter().map(|e| e.kind.clone()).collect::<Vec<String>>())
        .bind(rows.events.iter().map(|e| e.account.clone()).collect::<Vec<Option<String>>>())
        .bind(rows.events.iter().map(|e| e.session.clone()).collect::<Vec<Option<String>>>())
        .bind(rows.events.iter().map(|e| e.body.clone()).collect::<Vec<String>>())
        .bind(rows.events.iter().map(|e| e.leaf.to_vec()).collect::<Vec<Vec<u8>>>())
        .bind(rows.nodes.iter().map(|n| n.0).collect::<Vec<i64>>())
        .bind(rows.nodes.iter().map(|n| n.1).collect::<Vec<i64>>())
        .bind(rows.nodes.iter().map(|n| n.2.to_vec()).collect::<Vec<Vec<u8>>>())
        .bind(bodies)
        .bind(times)
        .bind(heads.iter().map(|h| h.head.size as i64).collect::<Vec<i64>>())
        .bind(heads.iter().map(|h| h.head.time.as_millis()).collect::<Vec<i64>>())
        .bind(heads.iter().map(|h| h.head.root.to_vec()).collect::<Vec<Vec<u8>>>())
        .bind(heads.iter().map(|h| h.key_id.as_str().to_owned()).collect::<Vec<String>>())
        .bind(heads.iter().map(|h| h.signature.to_vec()).collect::<Vec<Vec<u8>>>())
        .bind(tip.size as i64)
        .bind(tip.last_leaf.to_vec())
        .bind(tip.last_time)
        .bind(frontier)
        .bind(tip.head_size as i64)
        .execute(self.c()?)
        .await
        .map_err(unavailable)?;
        sqlx::query("COMMIT")
            .execute(self.c()?)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn failed_statement_aborts(&self) -> bool {
        true
    }

    async fn last_account_event(&mut self, account: &str) -> StoreResult<Option<(Hash, String)>> {
        let row: Option<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT leaf_hash, body FROM ledger_events WHERE account = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(account)
        .fetch_optional(self.c()?)
        .await
        .map_err(unavailable)?;
        row.map(|(leaf, body)| Ok((to_hash(&leaf)?, body)))
            .transpose()
    }

    async fn count_account_events(&mut self, account: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_events WHERE account = $1")
            .bind(account)
            .fetch_one(self.c()?)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn rotations_after(
        &mut self,
        after: u64,
        up_to: Option<u64>,
    ) -> StoreResult<(u64, Vec<(u64, String)>)> {
        let up_to = match up_to {
            Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
            None => sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM ledger_events")
                .fetch_one(self.connected().await?)
                .await
                .map_err(unavailable)?,
        };
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM ledger_events WHERE seq > $1 AND seq <= $2 AND kind = $3 ORDER BY seq",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(up_to)
        .bind(actas_core::event::LEDGER_KEY_ROTATED)
        .fetch_all(self.connected().await?)
        .await
        .map_err(unavailable)?;
        Ok((
            u64::try_from(up_to).unwrap_or(0),
            rows.into_iter()
                .map(|(seq, body)| (u64::try_from(seq).unwrap_or(0), body))
                .collect(),
        ))
    }

    async fn rollback(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if sqlx::query("ROLLBACK").execute(conn).await.is_err() {
            // Not even a rollback goes through: the connection is lost.
            self.conn = None;
        }
    }
}
