//! SQLite's write transaction for the ledger writer (see `crate::writer`): `BEGIN
//! IMMEDIATE` takes the database's write lock, so one batch at a time appends, across
//! processes too; `synchronous = FULL` makes the commit durable.
//!
//! The tip is derived from the last event and the newest head (SQLite needs no tip row:
//! its write lock already serialises every writer), and the frontier is re-read from the
//! stored nodes only when the file grew behind this writer's back.

use super::apply::apply;
use super::checks::read_checks;
use crate::change::{Applied, Change};
use crate::checks::Checks;
use crate::writer::{Rows, Tip, WriteTx, to_hash};
use crate::{StoreError, StoreResult};
use actas_core::merkle::{Frontier, Hash};
use actas_core::tree_head::SignedTreeHead;
use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::HashSet;

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::LedgerUnavailable(Box::new(e))
}

/// The writer's own connection.
pub(super) struct SqliteTx(pub(super) SqliteConnection);

#[async_trait]
impl WriteTx for SqliteTx {
    /// Opens the write transaction and reads the ledger's tip in it, in one round trip to
    /// the driver's thread (every trip is a thread hand-off, and a batch's latency is
    /// mostly made of them).
    async fn begin(&mut self, cached: Option<&Tip>) -> StoreResult<Tip> {
        // One read per batch: the last event and the newest head's size together.
        let row = sqlx::query(
            "BEGIN IMMEDIATE;
             SELECT e.seq, e.time, e.leaf_hash, (SELECT COALESCE(MAX(size), 0) FROM tree_heads)
             FROM (SELECT 1) LEFT JOIN (SELECT seq, time, leaf_hash FROM ledger_events ORDER BY seq DESC LIMIT 1) e",
        )
        .fetch_one(&mut self.0)
        .await
        .map_err(unavailable)?;
        let seq: Option<i64> = row.try_get(0).map_err(unavailable)?;
        let time: Option<i64> = row.try_get(1).map_err(unavailable)?;
        let leaf: Option<Vec<u8>> = row.try_get(2).map_err(unavailable)?;
        let head_size: i64 = row.try_get(3).map_err(unavailable)?;
        let on_disk = match (seq, time, leaf) {
            (Some(seq), Some(time), Some(leaf)) => Some((seq, time, leaf)),
            _ => None,
        };
        let size = on_disk.as_ref().map_or(0, |r| r.0 as u64);
        if let Some(tip) = cached
            && tip.size == size
        {
            return Ok(Tip {
                head_size: head_size as u64,
                ..tip.clone()
            });
        }
        let mut hashes = Vec::new();
        for id in Frontier::pieces_of(size) {
            let h: Vec<u8> =
                sqlx::query_scalar("SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?")
                    .bind(i64::from(id.level))
                    .bind(id.index as i64)
                    .fetch_one(&mut self.0)
                    .await
                    .map_err(unavailable)?;
            hashes.push(to_hash(&h)?);
        }
        let frontier = Frontier::from_pieces(size, hashes)
            .ok_or_else(|| StoreError::corrupt("the stored frontier is incomplete"))?;
        let (last_time, last_leaf) = match on_disk {
            Some((_, t, leaf)) => (t, to_hash(&leaf)?),
            None => (0, [0; 32]),
        };
        Ok(Tip {
            size,
            last_leaf,
            last_time,
            frontier,
            head_size: head_size as u64,
        })
    }

    async fn claims_taken(
        &mut self,
        wanted: &[(i64, String)],
    ) -> StoreResult<HashSet<(i64, String)>> {
        let mut taken = HashSet::new();
        for chunk in wanted.chunks(400) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT app_id, key FROM idempotency_keys WHERE (app_id, key) IN (VALUES ",
            );
            let mut list = q.separated(", ");
            for (app, key) in chunk {
                list.push("(")
                    .push_bind_unseparated(*app)
                    .push_unseparated(", ")
                    .push_bind_unseparated(key.clone())
                    .push_unseparated(")");
            }
            q.push(")");
            let rows: Vec<(i64, String)> = q
                .build_query_as()
                .fetch_all(&mut self.0)
                .await
                .map_err(unavailable)?;
            taken.extend(rows);
        }
        Ok(taken)
    }

    async fn read_checks(&mut self, changes: &[&Change]) -> StoreResult<Checks> {
        read_checks(&mut self.0, changes).await
    }

    async fn apply(&mut self, change: Change) -> StoreResult<Applied> {
        apply(&mut self.0, change).await
    }

    async fn savepoint(&mut self) -> StoreResult<()> {
        sqlx::query("SAVEPOINT unit")
            .execute(&mut self.0)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&mut self) -> StoreResult<()> {
        sqlx::query("RELEASE unit")
            .execute(&mut self.0)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        sqlx::query("ROLLBACK TO unit; RELEASE unit")
            .execute(&mut self.0)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The rows, a head when one is due, and the commit go in one round trip.
    async fn commit(
        &mut self,
        rows: &Rows,
        _tip: &Tip,
        head: Option<&SignedTreeHead>,
    ) -> StoreResult<()> {
        let notifications = rows.notifications()?;
        let mut q = QueryBuilder::<Sqlite>::new("");
        push_inserts(rows, &notifications, &mut q);
        if let Some(sth) = head {
            push_head(&mut q, sth);
        }
        q.push("COMMIT");
        q.build()
            .persistent(false)
            .execute(&mut self.0)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn last_account_event(&mut self, account: &str) -> StoreResult<Option<(Hash, String)>> {
        let row: Option<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT leaf_hash, body FROM ledger_events WHERE account = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(account)
        .fetch_optional(&mut self.0)
        .await
        .map_err(unavailable)?;
        row.map(|(leaf, body)| Ok((to_hash(&leaf)?, body)))
            .transpose()
    }

    async fn count_account_events(&mut self, account: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_events WHERE account = ?")
            .bind(account)
            .fetch_one(&mut self.0)
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
                .fetch_one(&mut self.0)
                .await
                .map_err(unavailable)?,
        };
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM ledger_events WHERE seq > ? AND seq <= ? AND kind = ? ORDER BY seq",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(up_to)
        .bind(actas_core::event::LEDGER_KEY_ROTATED)
        .fetch_all(&mut self.0)
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
        let _ = sqlx::query("ROLLBACK").execute(&mut self.0).await;
    }
}

/// Adds the statements inserting every row of the batch, each ended with `;`, to `q`: a
/// few multi-row INSERTs instead of one statement per row.
fn push_inserts<'a>(
    rows: &'a Rows,
    notifications: &'a [(String, i64)],
    q: &mut QueryBuilder<'a, Sqlite>,
) {
    for chunk in rows.claims.chunks(500) {
        q.push("INSERT INTO idempotency_keys (app_id, key, request_hash, created_at) ");
        q.push_values(chunk, |mut b, (app, key, hash, at)| {
            b.push_bind(*app)
                .push_bind(key)
                .push_bind(&hash[..])
                .push_bind(*at);
        });
        q.push("; ");
    }
    // SQLite allows 32,766 bound values per statement; stay well below.
    for chunk in rows.events.chunks(500) {
        q.push("INSERT INTO ledger_events (seq, time, kind, account, session, body, leaf_hash) ");
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.seq)
                .push_bind(e.time)
                .push_bind(&e.kind)
                .push_bind(&e.account)
                .push_bind(&e.session)
                .push_bind(&e.body)
                .push_bind(&e.leaf[..]);
        });
        q.push("; ");
    }
    for (body, time) in notifications {
        q.push(
            "INSERT INTO webhook_outbox (app_id, body, next_attempt_at, created_at) SELECT id, ",
        )
        .push_bind(body)
        .push(", ")
        .push_bind(*time)
        .push(", ")
        .push_bind(*time)
        .push(" FROM app_keys WHERE webhook_url IS NOT NULL AND revoked_at IS NULL; ");
    }
    for chunk in rows.nodes.chunks(1000) {
        q.push("INSERT INTO merkle_nodes (level, idx, hash) ");
        q.push_values(chunk, |mut b, (level, idx, hash)| {
            b.push_bind(*level).push_bind(*idx).push_bind(&hash[..]);
        });
        q.push("; ");
    }
}

/// Adds the statement storing a signed head.
fn push_head(q: &mut QueryBuilder<'_, Sqlite>, sth: &SignedTreeHead) {
    q.push("INSERT INTO tree_heads (size, time, root, key_id, signature) VALUES (")
        .push_bind(sth.head.size as i64)
        .push(", ")
        .push_bind(sth.head.time.as_millis())
        .push(", ")
        .push_bind(sth.head.root.to_vec())
        .push(", ")
        .push_bind(sth.key_id.as_str().to_owned())
        .push(", ")
        .push_bind(sth.signature.to_vec())
        .push("); ");
}
