//! The ledger writer: one task, one connection, group commit.
//!
//! Units from all callers queue on a channel. The writer takes everything waiting (up to
//! [`MAX_BATCH`]), opens one `BEGIN IMMEDIATE` transaction, applies each unit inside its
//! own savepoint (so one refused change doesn't sink the others), appends the events with
//! their Merkle nodes, and commits once; with `synchronous = FULL` the commit is durable.
//! Only then is each caller answered. Under load many units share one fsync, which is
//! where group commit's speed comes from.
//!
//! The tip of the ledger (size, last leaf, frontier) is cached but re-read whenever the
//! file grew behind the writer's back (another `actas` process appended), so sequence
//! numbers stay gap-free across processes.

use super::apply::apply;
use super::checks::{Checks, is_check};
use crate::change::{Applied, Change, Unit};
use crate::model::Appended;
use crate::{HeadSchedule, StoreError, StoreResult};
use actas_core::Timestamp;
use actas_core::merkle::{Frontier, Hash};
use actas_core::tree_head::{LedgerKey, SignedTreeHead, TreeHead};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::HashSet;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The most units committed in one transaction.
pub const MAX_BATCH: usize = 1024;

pub(super) enum Msg {
    Unit(Unit),
    SignHead(oneshot::Sender<StoreResult<Option<SignedTreeHead>>>),
    Close(oneshot::Sender<StoreResult<()>>),
}

#[derive(Clone)]
struct Tip {
    size: u64,
    last_leaf: Hash,
    last_time: i64,
    frontier: Frontier,
    head_size: u64,
}

pub(super) struct Writer {
    /// The most units one transaction takes (1: one transaction per unit).
    max_batch: usize,
    conn: SqliteConnection,
    key: LedgerKey,
    schedule: HeadSchedule,
    tip: Option<Tip>,
    last_head_at: Instant,
    stats: std::sync::Arc<crate::LedgerStats>,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::LedgerUnavailable(Box::new(e))
}

impl Writer {
    pub(super) fn new(
        conn: SqliteConnection,
        key: LedgerKey,
        schedule: HeadSchedule,
        stats: std::sync::Arc<crate::LedgerStats>,
        max_batch: usize,
    ) -> Self {
        Self {
            conn,
            key,
            schedule,
            max_batch: max_batch.clamp(1, MAX_BATCH),
            tip: None,
            last_head_at: Instant::now(),
            stats,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval(
            self.schedule
                .every
                .max(std::time::Duration::from_millis(10)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = tick.tick() => {
                    if self.last_head_at.elapsed() >= self.schedule.every
                        && let Err(e) = self.sign_head_tx().await
                    {
                        tracing::error!(error = %e, "could not sign a tree head");
                    }
                    continue;
                }
            };
            let Some(first) = first else {
                let _ = self.sign_head_tx().await;
                break;
            };
            let mut units = Vec::new();
            let mut control = Vec::new();
            match first {
                Msg::Unit(u) => units.push(u),
                other => control.push(other),
            }
            while units.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(Msg::Unit(u)) => units.push(u),
                    Ok(other) => {
                        control.push(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if !units.is_empty() {
                self.commit_batch(units).await;
            }
            let mut closing = None;
            for msg in control {
                match msg {
                    Msg::SignHead(reply) => {
                        let _ = reply.send(self.sign_head_tx().await);
                    }
                    Msg::Close(reply) => closing = Some(reply),
                    Msg::Unit(_) => {}
                }
            }
            if let Some(reply) = closing {
                // Drain what is still queued, then sign the final head.
                rx.close();
                let mut rest = Vec::new();
                while let Some(m) = rx.recv().await {
                    if let Msg::Unit(u) = m {
                        rest.push(u);
                    }
                }
                for chunk in rest.chunks_mut(self.max_batch) {
                    let batch: Vec<Unit> = chunk
                        .iter_mut()
                        .map(|u| std::mem::replace(u, Unit::new(vec![], |_| vec![])))
                        .collect();
                    self.commit_batch(batch).await;
                }
                let result = self.sign_head_tx().await.map(|_| ());
                let _ = reply.send(result);
                break;
            }
        }
    }

    /// Opens the write transaction and reads the ledger's tip in it, in one round trip to
    /// the driver's thread (every trip is a thread hand-off, and a batch's latency is
    /// mostly made of them).
    async fn begin(&mut self) -> StoreResult<Tip> {
        // One read per batch: the last event and the newest head's size together.
        let row = sqlx::query(
            "BEGIN IMMEDIATE;
             SELECT e.seq, e.time, e.leaf_hash, (SELECT COALESCE(MAX(size), 0) FROM tree_heads)
             FROM (SELECT 1) LEFT JOIN (SELECT seq, time, leaf_hash FROM ledger_events ORDER BY seq DESC LIMIT 1) e",
        )
        .fetch_one(&mut self.conn)
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
        if let Some(tip) = &self.tip
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
                    .fetch_one(&mut self.conn)
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

    async fn commit_batch(&mut self, units: Vec<Unit>) {
        let started = Instant::now();
        let n = units.len();
        let mut replies = Vec::with_capacity(n);
        let outcome = self.try_batch(units, &mut replies).await;
        match outcome {
            Ok((tip, appended)) => {
                self.tip = Some(tip);
                self.stats.record_batch(n, appended, started.elapsed());
                for (reply, result) in replies {
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
            }
            Err(e) => {
                // Nothing of this batch is durable: every caller is told so.
                tracing::error!(error = %e, "ledger batch failed; nothing was changed");
                self.tip = None;
                let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
                let msg = e.to_string();
                for (reply, _) in replies {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(StoreError::LedgerUnavailable(msg.clone().into())));
                    }
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn try_batch(
        &mut self,
        units: Vec<Unit>,
        replies: &mut Vec<(
            Option<oneshot::Sender<StoreResult<Vec<Appended>>>>,
            StoreResult<Vec<Appended>>,
        )>,
    ) -> StoreResult<(Tip, u64)> {
        let mut pending: Vec<Unit> = units;
        let changes: Vec<&Change> = pending.iter().flat_map(|u| u.changes.iter()).collect();
        let prepared = self.prepare(&changes).await;
        drop(changes);
        let (mut tip, taken, checks) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                // Nothing was applied; every caller hears the ledger is unavailable.
                for mut u in pending.drain(..) {
                    replies.push((
                        u.reply.take(),
                        Err(StoreError::LedgerUnavailable("".into())),
                    ));
                }
                return Err(e);
            }
        };
        let mut checks = Some(checks);
        let mut claimed: HashSet<(i64, String)> = HashSet::new();
        let mut rows = Rows::default();
        for mut unit in pending.drain(..) {
            let reply = unit.reply.take();
            let claims: Vec<(i64, String)> = unit
                .changes
                .iter()
                .filter_map(|c| match c {
                    Change::ClaimIdempotencyKey { app, key, .. } => Some((*app, key.clone())),
                    _ => None,
                })
                .collect();
            if let Some((_, key)) = claims
                .iter()
                .find(|k| taken.contains(*k) || claimed.contains(*k))
            {
                replies.push((
                    reply,
                    Err(StoreError::Duplicate(format!(
                        "the idempotency key {key:?}"
                    ))),
                ));
                continue;
            }
            // Units whose only changes are (already checked) claims, preconditions and an
            // idle-clock refresh (one statement) can't fail half-way, so like units without
            // changes they need no savepoint, and they change nothing a precondition reads
            // in a way that matters: a refreshed idle clock only lets a session live longer.
            let guarded = unit.changes.iter().any(|c| {
                !matches!(
                    c,
                    Change::ClaimIdempotencyKey { .. } | Change::TouchSession { .. }
                ) && !is_check(c)
            });
            let (unit_checks, batch_wide) = match checks.take() {
                Some(c) => (c, true),
                None => {
                    let wanted: Vec<&Change> =
                        unit.changes.iter().filter(|c| is_check(c)).collect();
                    (Checks::read(&mut self.conn, &wanted).await?, false)
                }
            };
            if guarded {
                sqlx::query("SAVEPOINT unit")
                    .execute(&mut self.conn)
                    .await
                    .map_err(unavailable)?;
            }
            let mut trial = tip.clone();
            let mark = rows.mark();
            let outcome = self
                .apply_unit(unit, &unit_checks, &mut trial, &mut rows)
                .await;
            if batch_wide && !guarded {
                checks = Some(unit_checks);
            }
            match outcome {
                Ok(appended) => {
                    if guarded {
                        sqlx::query("RELEASE unit")
                            .execute(&mut self.conn)
                            .await
                            .map_err(unavailable)?;
                    }
                    tip = trial;
                    claimed.extend(claims);
                    replies.push((reply, Ok(appended)));
                }
                Err(e) => {
                    if guarded {
                        sqlx::query("ROLLBACK TO unit")
                            .execute(&mut self.conn)
                            .await
                            .map_err(unavailable)?;
                        sqlx::query("RELEASE unit")
                            .execute(&mut self.conn)
                            .await
                            .map_err(unavailable)?;
                    }
                    rows.reset(mark);
                    replies.push((reply, Err(e)));
                }
            }
        }
        // The rows, a head when one is due, and the commit go in one round trip.
        let mut q = QueryBuilder::<Sqlite>::new("");
        rows.push_inserts(&mut q)?;
        let appended = rows.events.len() as u64;
        let head = if tip.size >= tip.head_size + self.schedule.every_events {
            self.sign(&tip)
        } else {
            None
        };
        self.commit_with(q, head.as_ref()).await?;
        if head.is_some() {
            tip.head_size = tip.size;
            self.last_head_at = Instant::now();
        }
        Ok((tip, appended))
    }

    /// Opens the transaction and reads what the whole batch needs before any unit is
    /// applied: the ledger's tip, which of its idempotency keys are taken, and what its
    /// preconditions check (see `checks`).
    async fn prepare(
        &mut self,
        changes: &[&Change],
    ) -> StoreResult<(Tip, HashSet<(i64, String)>, Checks)> {
        let tip = self.begin().await?;
        // Idempotency keys are claimed for the whole batch at once: one read of which are
        // taken (authoritative, as this transaction holds the write lock) and one multi-row
        // insert at the end, instead of a savepoint and an insert per unit.
        let claims: Vec<(i64, String)> = changes
            .iter()
            .filter_map(|c| match c {
                Change::ClaimIdempotencyKey { app, key, .. } => Some((*app, key.clone())),
                _ => None,
            })
            .collect();
        let taken = self.claims_taken(claims).await?;
        let wanted: Vec<&Change> = changes.iter().copied().filter(|c| is_check(c)).collect();
        let checks = Checks::read(&mut self.conn, &wanted).await?;
        Ok((tip, taken, checks))
    }

    /// Which of the batch's idempotency keys were claimed before.
    async fn claims_taken(
        &mut self,
        wanted: Vec<(i64, String)>,
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
                .fetch_all(&mut self.conn)
                .await
                .map_err(unavailable)?;
            taken.extend(rows);
        }
        Ok(taken)
    }

    async fn apply_unit(
        &mut self,
        unit: Unit,
        checks: &Checks,
        tip: &mut Tip,
        rows: &mut Rows,
    ) -> StoreResult<Vec<Appended>> {
        // Preconditions first, so a failed one leaves nothing of the unit behind.
        let mut outcomes = Vec::new();
        for change in unit.changes.iter().filter(|c| is_check(c)) {
            outcomes.push(checks.check(change)?);
        }
        let mut outcomes = outcomes.into_iter();
        let mut applied: Vec<Applied> = Vec::with_capacity(unit.changes.len());
        for change in unit.changes {
            if is_check(&change) {
                applied.push(
                    outcomes
                        .next()
                        .ok_or_else(|| StoreError::corrupt("a precondition went missing"))?,
                );
                continue;
            }
            match change {
                Change::ClaimIdempotencyKey {
                    app,
                    key,
                    request_hash,
                    at,
                } => {
                    rows.claims.push((app, key, request_hash, at.as_millis()));
                    applied.push(Applied::Done);
                }
                other => applied.push(apply(&mut self.conn, other).await?),
            }
        }
        let events = (unit.events)(&applied);
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let notify = event.data.notifies_product();
            let seq = tip.size + 1;
            let time = Timestamp::now().as_millis().max(tip.last_time);
            let record = event.into_body(seq, Timestamp::from_millis(time), &tip.last_leaf);
            let body = record.encode();
            if body.is_empty() {
                return Err(StoreError::corrupt("an event could not be encoded"));
            }
            let leaf = actas_core::merkle::leaf_hash(body.as_bytes());
            rows.events.push(EventRow {
                seq: seq as i64,
                time,
                kind: record.kind().to_owned(),
                account: record.account.as_ref().map(|a| a.as_str().to_owned()),
                session: record.session.map(|s| s.to_string()),
                leaf,
                body,
                notify,
            });
            let nodes = &mut rows.nodes;
            tip.frontier.push(leaf, |id, h| {
                nodes.push((i64::from(id.level), id.index as i64, *h))
            });
            tip.size = seq;
            tip.last_leaf = leaf;
            tip.last_time = time;
            out.push(Appended {
                seq,
                time: Timestamp::from_millis(time),
                leaf_hash: leaf,
            });
        }
        Ok(out)
    }

    /// A signed head over the tip, if the ledger grew since the last one.
    fn sign(&self, tip: &Tip) -> Option<SignedTreeHead> {
        if tip.size == 0 || tip.size <= tip.head_size {
            return None;
        }
        Some(self.key.sign(TreeHead {
            size: tip.size,
            time: Timestamp::from_millis(Timestamp::now().as_millis().max(tip.last_time)),
            root: tip.frontier.root(),
        }))
    }

    /// Signs a head in its own transaction, if the ledger grew since the last one.
    async fn sign_head_tx(&mut self) -> StoreResult<Option<SignedTreeHead>> {
        self.last_head_at = Instant::now();
        match self.head_transaction().await {
            Ok((tip, sth)) => {
                self.tip = Some(tip);
                Ok(sth)
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
                self.tip = None;
                Err(e)
            }
        }
    }
}

impl Writer {
    async fn head_transaction(&mut self) -> StoreResult<(Tip, Option<SignedTreeHead>)> {
        let mut tip = self.begin().await?;
        let sth = self.sign(&tip);
        self.commit_with(QueryBuilder::new(""), sth.as_ref())
            .await?;
        if sth.is_some() {
            tip.head_size = tip.size;
        }
        Ok((tip, sth))
    }

    /// Runs the statements in `q`, stores `head` if given, and commits: one round trip.
    async fn commit_with(
        &mut self,
        mut q: QueryBuilder<'_, Sqlite>,
        head: Option<&SignedTreeHead>,
    ) -> StoreResult<()> {
        if let Some(sth) = head {
            push_head(&mut q, sth);
        }
        q.push("COMMIT");
        q.build()
            .persistent(false)
            .execute(&mut self.conn)
            .await
            .map_err(unavailable)?;
        Ok(())
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

struct EventRow {
    seq: i64,
    time: i64,
    kind: String,
    account: Option<String>,
    session: Option<String>,
    body: String,
    leaf: Hash,
    /// Whether the product's apps are notified of it (through the outbox, in the same
    /// transaction, so a notification exists exactly when its event does).
    notify: bool,
}

/// The batch's ledger rows, written with a few multi-row INSERTs at the end of the
/// transaction instead of one statement per row.
#[derive(Default)]
struct Rows {
    events: Vec<EventRow>,
    nodes: Vec<(i64, i64, Hash)>,
    /// Idempotency keys claimed: app, key, request hash, time.
    claims: Vec<(i64, String, [u8; 32], i64)>,
}

impl Rows {
    fn mark(&self) -> (usize, usize, usize) {
        (self.events.len(), self.nodes.len(), self.claims.len())
    }

    fn reset(&mut self, (events, nodes, claims): (usize, usize, usize)) {
        self.events.truncate(events);
        self.nodes.truncate(nodes);
        self.claims.truncate(claims);
    }

    /// Adds the statements inserting every row, each ended with `;`, to `q`.
    fn push_inserts<'a>(&'a self, q: &mut QueryBuilder<'a, Sqlite>) -> StoreResult<()> {
        for chunk in self.claims.chunks(500) {
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
        for chunk in self.events.chunks(500) {
            q.push(
                "INSERT INTO ledger_events (seq, time, kind, account, session, body, leaf_hash) ",
            );
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
        for e in self.events.iter().filter(|e| e.notify) {
            let body = serde_json::json!({
                "id": e.seq.to_string(),
                "type": e.kind,
                "time": actas_core::Timestamp::from_millis(e.time).to_rfc3339(),
                "account": e.account,
                "session": e.session,
                "event": serde_json::from_str::<serde_json::Value>(&e.body).map_err(StoreError::unexpected)?,
            })
            .to_string();
            q.push("INSERT INTO webhook_outbox (app_id, body, next_attempt_at, created_at) SELECT id, ")
                .push_bind(body)
                .push(", ")
                .push_bind(e.time)
                .push(", ")
                .push_bind(e.time)
                .push(" FROM app_keys WHERE webhook_url IS NOT NULL AND revoked_at IS NULL; ");
        }
        for chunk in self.nodes.chunks(1000) {
            q.push("INSERT INTO merkle_nodes (level, idx, hash) ");
            q.push_values(chunk, |mut b, (level, idx, hash)| {
                b.push_bind(*level).push_bind(*idx).push_bind(&hash[..]);
            });
            q.push("; ");
        }
        Ok(())
    }
}

pub(super) fn to_hash(bytes: &[u8]) -> StoreResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("a stored hash is not 32 bytes"))
}
