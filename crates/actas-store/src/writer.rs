//! The ledger writer: one task per store, group commit, over any backend's transaction.
//!
//! Units from all callers queue on a channel. The writer takes everything waiting (up to
//! [`MAX_BATCH`]), opens one write transaction that locks the ledger's tip ([`WriteTx`]:
//! SQLite's write lock, PostgreSQL's one-row tip `FOR UPDATE`), applies each unit inside
//! its own savepoint (so one refused change doesn't sink the others), appends the events
//! with their Merkle nodes from the tip's size + 1, and commits once, durably. Only then
//! is each caller answered. Under load many units share one flush, which is where group
//! commit's speed comes from.
//!
//! The algorithm (batching, idempotency claims, preconditions, savepoints, sequencing,
//! the Merkle frontier, the head schedule, replies) lives here once; a backend provides
//! only the statements. Because every batch reads the tip inside its locked transaction,
//! sequence numbers stay gap-free when several processes (or several actas instances on
//! one PostgreSQL database) append to the same ledger, and whichever batch crosses the
//! head schedule signs the head.

use crate::change::{Applied, Change, Unit};
use crate::checks::{Checks, is_check};
use crate::model::Appended;
use crate::{HeadSchedule, StoreError, StoreResult};
use actas_core::Timestamp;
use actas_core::event::AccountLink;
use actas_core::merkle::{Frontier, Hash};
use actas_core::tree_head::{LedgerKey, SignedTreeHead, TreeHead};
use async_trait::async_trait;
use std::collections::HashSet;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The most units committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// A store's way to its running writer: what every backend's `Store` methods that write
/// go through.
pub(crate) struct Handle {
    tx: mpsc::Sender<Msg>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stats: std::sync::Arc<crate::LedgerStats>,
}

impl Handle {
    /// Starts `writer` on a queue of `queue` units.
    pub(crate) fn start<T: WriteTx + 'static>(writer: Writer<T>, queue: usize) -> Self {
        let stats = writer.stats.clone();
        let (tx, rx) = mpsc::channel(queue.max(1));
        let task = tokio::spawn(writer.run(rx));
        Self {
            tx,
            task: tokio::sync::Mutex::new(Some(task)),
            stats,
        }
    }

    /// The writer's counters.
    pub(crate) fn stats(&self) -> &crate::LedgerStats {
        &self.stats
    }

    /// Whether the writer still takes work.
    pub(crate) fn running(&self) -> bool {
        !self.tx.is_closed()
    }

    async fn send(&self, msg: Msg) -> StoreResult<()> {
        self.tx
            .send(msg)
            .await
            .map_err(|_| StoreError::LedgerUnavailable("the ledger writer has stopped".into()))
    }

    fn gone(_: oneshot::error::RecvError) -> StoreError {
        StoreError::LedgerUnavailable("the ledger writer stopped before answering".into())
    }

    /// Commits a unit; durable when this returns.
    pub(crate) async fn commit(&self, mut unit: Unit) -> StoreResult<Vec<Appended>> {
        let (reply, rx) = oneshot::channel();
        unit.reply = Some(reply);
        self.send(Msg::Unit(unit)).await?;
        rx.await.map_err(Self::gone)?
    }

    /// Signs a head now, if the ledger grew since the last.
    pub(crate) async fn sign_head_now(&self) -> StoreResult<Option<SignedTreeHead>> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::SignHead(reply)).await?;
        rx.await.map_err(Self::gone)?
    }

    /// Drains the queue, signs a final head and stops the writer (once; later calls do
    /// nothing and succeed).
    pub(crate) async fn close(&self) -> StoreResult<()> {
        let Some(task) = self.task.lock().await.take() else {
            return Ok(());
        };
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Close(reply)).await?;
        let result = rx.await.map_err(Self::gone)?;
        let _ = task.await;
        result
    }
}

/// What the writer is asked to do.
pub(crate) enum Msg {
    Unit(Unit),
    SignHead(oneshot::Sender<StoreResult<Option<SignedTreeHead>>>),
    Close(oneshot::Sender<StoreResult<()>>),
}

/// The ledger's tip as a batch sees it: what the next event is appended to.
#[derive(Clone)]
pub(crate) struct Tip {
    /// Number of events.
    pub(crate) size: u64,
    /// The last event's leaf hash (zeros when empty).
    pub(crate) last_leaf: Hash,
    /// The last event's time, in milliseconds (times never go backwards).
    pub(crate) last_time: i64,
    /// The Merkle frontier over all events.
    pub(crate) frontier: Frontier,
    /// Size of the newest signed head.
    pub(crate) head_size: u64,
}

/// One write transaction of a backend, as the writer drives it. Each method runs inside
/// the transaction [`WriteTx::begin`] opened; errors from any of them fail the whole
/// batch (the writer then calls [`WriteTx::rollback`] and tells every caller).
#[async_trait]
pub(crate) trait WriteTx: Send {
    /// Opens the transaction, takes the lock that serialises appends, and reads the tip.
    /// `cached` is the tip this writer last committed: a backend may reuse its frontier
    /// when the stored size still matches (nobody else appended meanwhile).
    async fn begin(&mut self, cached: Option<&Tip>) -> StoreResult<Tip>;
    /// Which of these idempotency keys were claimed before (authoritative: the lock is
    /// held).
    async fn claims_taken(
        &mut self,
        wanted: &[(i64, String)],
    ) -> StoreResult<HashSet<(i64, String)>>;
    /// Reads what the preconditions among `changes` need.
    async fn read_checks(&mut self, changes: &[&Change]) -> StoreResult<Checks>;
    /// Applies one state change.
    async fn apply(&mut self, change: Change) -> StoreResult<Applied>;
    /// Starts the savepoint guarding one unit.
    async fn savepoint(&mut self) -> StoreResult<()>;
    /// Keeps what the unit since the savepoint did.
    async fn release(&mut self) -> StoreResult<()>;
    /// Undoes what the unit since the savepoint did.
    async fn rollback_to_savepoint(&mut self) -> StoreResult<()>;
    /// Inserts the batch's rows, stores the new tip and `head` (if one is due), and
    /// commits durably.
    async fn commit(
        &mut self,
        rows: &Rows,
        tip: &Tip,
        head: Option<&SignedTreeHead>,
    ) -> StoreResult<()>;
    /// Abandons the open transaction, if any.
    async fn rollback(&mut self);
    /// The leaf hash and body of `account`'s newest event, if it has one.
    async fn last_account_event(&mut self, account: &str) -> StoreResult<Option<(Hash, String)>>;
    /// How many events `account` has (read only when its newest one predates account
    /// links, so its place in the history is not written in it).
    async fn count_account_events(&mut self, account: &str) -> StoreResult<u64>;
    /// The ledger key replacements among the events after `after`, up to `up_to` (or
    /// all of them), as `(seq, exact text)`, and the number of the last event the read
    /// covers. Run in the open transaction, or outside any.
    async fn rotations_after(
        &mut self,
        after: u64,
        up_to: Option<u64>,
    ) -> StoreResult<(u64, Vec<(u64, String)>)>;

    /// Whether a failed statement spoils the whole transaction (PostgreSQL's way), so
    /// every unit that runs one needs its own savepoint; SQLite undoes just the statement.
    fn failed_statement_aborts(&self) -> bool {
        false
    }
}

/// The group-commit writer over one backend's connection.
pub(crate) struct Writer<T: WriteTx> {
    /// The most units one transaction takes (1: one transaction per unit).
    max_batch: usize,
    conn: T,
    key: LedgerKey,
    schedule: HeadSchedule,
    tip: Option<Tip>,
    last_head_at: Instant,
    /// When the open transaction was granted the ledger's lock.
    locked_at: Option<Instant>,
    stats: std::sync::Arc<crate::LedgerStats>,
    /// Accounts' places in their histories, as of ledger size `accounts_at`: valid while
    /// nobody else appends (a batch that finds another size starts afresh).
    accounts: AccountTips,
    accounts_at: u64,
    /// The events read for ledger key replacements so far (`None`: none yet).
    rotations_seen: Option<u64>,
    /// Where the ledger replaced this writer's key, once a replacement was read: it
    /// signs no head past it.
    replaced_at: Option<u64>,
}

/// Each account's place in its history: how many events it has, and its newest leaf.
type AccountTips = rustc_hash::FxHashMap<String, AccountLink>;

/// The most accounts remembered between batches; past it the memory starts afresh.
const ACCOUNTS_REMEMBERED: usize = 100_000;

impl<T: WriteTx> Writer<T> {
    /// A writer over `conn` that signs heads with `key` on `schedule`.
    pub(crate) fn new(
        conn: T,
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
            locked_at: None,
            stats,
            accounts: AccountTips::default(),
            accounts_at: 0,
            rotations_seen: None,
            replaced_at: None,
        }
    }

    /// Reads the key replacements after those already read. The first read covers the
    /// whole ledger and runs before any transaction (it must not hold the lock); later
    /// ones, under the lock, cover only the events since, up to `up_to`.
    async fn read_rotations(&mut self, up_to: Option<u64>) -> StoreResult<()> {
        if self.replaced_at.is_some() {
            return Ok(());
        }
        let after = self.rotations_seen.unwrap_or(0);
        if up_to.is_some_and(|n| n <= after) {
            return Ok(());
        }
        let (covered, found) = self.conn.rotations_after(after, up_to).await?;
        self.replaced_at = actas_core::checkpoint::replaced_at(
            &self.key.public(),
            found.iter().map(|(seq, text)| (*seq, text.as_str())),
        );
        self.rotations_seen = Some(covered.max(after));
        Ok(())
    }

    /// The head due over `tip`, signed, if this writer's key may still sign it: the
    /// replacements are read under the append lock, so one another instance committed is
    /// seen, and the batch's own `pending` events count too. A replaced key signs heads
    /// only up to its replacement; past it, nothing is signed, and the error says why.
    async fn sign_checked(
        &mut self,
        tip: &Tip,
        pending: &[EventRow],
    ) -> StoreResult<Result<Option<SignedTreeHead>, StoreError>> {
        if let Some(at) = self.replaced_as_of(tip, pending).await?
            && !actas_core::checkpoint::may_sign(tip.size, Some(at))
        {
            return Ok(Err(self.replaced(at, "tree heads")));
        }
        Ok(Ok(self.sign(tip)))
    }

    /// Where the ledger replaced this writer's key, as of `tip` (whose last `pending`
    /// events are this batch's own, not yet stored): read under the append lock.
    async fn replaced_as_of(
        &mut self,
        tip: &Tip,
        pending: &[EventRow],
    ) -> StoreResult<Option<u64>> {
        let stored = tip.size.saturating_sub(pending.len() as u64);
        self.read_rotations(Some(stored)).await?;
        Ok(self.replaced_at.or_else(|| {
            actas_core::checkpoint::replaced_at(
                &self.key.public(),
                pending
                    .iter()
                    .filter(|r| r.kind == actas_core::event::LEDGER_KEY_ROTATED)
                    .map(|r| (r.seq as u64, r.body.as_str())),
            )
        }))
    }

    /// The refusal to sign `what` with a key the ledger replaced at event `at`.
    fn replaced(&self, at: u64, what: &str) -> StoreError {
        StoreError::Conflict(format!(
            "this instance's ledger key {} was replaced at event #{at}, so it signs no more {what}; put the new ledger.key in its data directory and restart it",
            self.key.public().key_id()
        ))
    }

    /// Serves `rx` until it closes or is told to close.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
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
                // Once the ledger's lock is granted, the batch also takes what queued while
                // it waited (unless a control message is already waiting its turn).
                let top_up = if control.is_empty() {
                    Some(&mut rx)
                } else {
                    None
                };
                self.commit_batch(units, top_up, &mut control).await;
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
                    self.commit_batch(batch, None, &mut Vec::new()).await;
                }
                let result = self.sign_head_tx().await.map(|_| ());
                let _ = reply.send(result);
                break;
            }
        }
    }

    /// Commits `units` in one transaction. With `top_up`, units that queued while the
    /// transaction waited for the ledger's lock (another instance holding the tip) join
    /// the batch once it is granted, so a contended lock gives bigger batches rather than
    /// more of them; a control message met on the way is left in `control`.
    async fn commit_batch(
        &mut self,
        units: Vec<Unit>,
        top_up: Option<&mut mpsc::Receiver<Msg>>,
        control: &mut Vec<Msg>,
    ) {
        let started = Instant::now();
        let mut replies = Vec::with_capacity(units.len());
        let outcome = self.try_batch(units, top_up, control, &mut replies).await;
        let n = replies.len();
        match outcome {
            Ok((tip, appended)) => {
                self.tip = Some(tip);
                let held = self
                    .locked_at
                    .take()
                    .map_or_else(Default::default, |at| at.elapsed());
                self.stats
                    .record_batch(n, appended, started.elapsed(), held);
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
                self.conn.rollback().await;
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
        top_up: Option<&mut mpsc::Receiver<Msg>>,
        control: &mut Vec<Msg>,
        replies: &mut Vec<(
            Option<oneshot::Sender<StoreResult<Vec<Appended>>>>,
            StoreResult<Vec<Appended>>,
        )>,
    ) -> StoreResult<(Tip, u64)> {
        let mut pending: Vec<Unit> = units;
        // A failed first read of the key replacements fails the batch like a failed
        // begin: every caller is told.
        let first_read = match self.rotations_seen {
            None => self.read_rotations(None).await,
            Some(_) => Ok(()),
        };
        let began = match first_read {
            Ok(()) => self.conn.begin(self.tip.as_ref()).await,
            Err(e) => Err(e),
        };
        let prepared = match began {
            Ok(tip) => {
                self.locked_at = Some(Instant::now());
                if let Some(rx) = top_up {
                    while pending.len() < self.max_batch {
                        match rx.try_recv() {
                            Ok(Msg::Unit(u)) => pending.push(u),
                            Ok(other) => {
                                control.push(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                let changes: Vec<&Change> = pending.iter().flat_map(|u| u.changes.iter()).collect();
                self.prepare(&changes).await.map(|(t, c)| (tip, t, c))
            }
            Err(e) => Err(e),
        };
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
        if tip.size != self.accounts_at || self.accounts.len() > ACCOUNTS_REMEMBERED {
            self.accounts.clear();
        }
        let mut batch_accounts = AccountTips::default();
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
            // (Where a failed statement spoils the transaction, the refresh gets a
            // savepoint all the same, so it can't sink the rest of the batch.)
            let changes_state = unit.changes.iter().any(|c| {
                !matches!(
                    c,
                    Change::ClaimIdempotencyKey { .. }
                        | Change::TouchSession { .. }
                        | Change::RequireLedgerKeyCurrent
                ) && !is_check(c)
            });
            let guarded = changes_state
                || (self.conn.failed_statement_aborts()
                    && unit
                        .changes
                        .iter()
                        .any(|c| matches!(c, Change::TouchSession { .. })));
            let (unit_checks, batch_wide) = match checks.take() {
                Some(c) => (c, true),
                None => {
                    let wanted: Vec<&Change> =
                        unit.changes.iter().filter(|c| is_check(c)).collect();
                    (self.conn.read_checks(&wanted).await?, false)
                }
            };
            if guarded {
                self.conn.savepoint().await?;
            }
            let mut trial = tip.clone();
            let mark = rows.mark();
            let mut unit_accounts = AccountTips::default();
            let outcome = self
                .apply_unit(
                    unit,
                    &unit_checks,
                    &mut trial,
                    &mut rows,
                    (&batch_accounts, &mut unit_accounts),
                )
                .await;
            if batch_wide && !changes_state {
                checks = Some(unit_checks);
            }
            match outcome {
                Ok(appended) => {
                    if guarded {
                        self.conn.release().await?;
                    }
                    tip = trial;
                    batch_accounts.extend(unit_accounts);
                    claimed.extend(claims);
                    replies.push((reply, Ok(appended)));
                }
                Err(e) => {
                    if guarded {
                        self.conn.rollback_to_savepoint().await?;
                    }
                    rows.reset(mark);
                    replies.push((reply, Err(e)));
                }
            }
        }
        let appended = rows.events.len() as u64;
        let head = if tip.size >= tip.head_size + self.schedule.every_events {
            // The events are kept even so: heads by the current key will cover them.
            self.sign_checked(&tip, &rows.events)
                .await?
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a tree head was due and not signed");
                    None
                })
        } else {
            None
        };
        if head.is_some() {
            tip.head_size = tip.size;
        }
        self.conn.commit(&rows, &tip, head.as_ref()).await?;
        if head.is_some() {
            self.last_head_at = Instant::now();
        }
        self.accounts.extend(batch_accounts);
        self.accounts_at = tip.size;
        Ok((tip, appended))
    }

    /// Reads, in the open transaction, what the whole batch needs before any unit is
    /// applied: which of its idempotency keys are taken, and what its preconditions check
    /// (see `checks`).
    async fn prepare(
        &mut self,
        changes: &[&Change],
    ) -> StoreResult<(HashSet<(i64, String)>, Checks)> {
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
        let taken = self.conn.claims_taken(&claims).await?;
        let wanted: Vec<&Change> = changes.iter().copied().filter(|c| is_check(c)).collect();
        let checks = self.conn.read_checks(&wanted).await?;
        Ok((taken, checks))
    }

    /// Where `account`'s next event goes in its history: from this unit, the batch, the
    /// writer's memory, or (the first time) the ledger itself.
    async fn account_tip(
        &mut self,
        account: &str,
        (batch, unit): (&AccountTips, &AccountTips),
    ) -> StoreResult<AccountLink> {
        if let Some(t) = unit.get(account).or_else(|| batch.get(account)) {
            return Ok(*t);
        }
        if let Some(t) = self.accounts.get(account) {
            return Ok(*t);
        }
        let Some((leaf, body)) = self.conn.last_account_event(account).await? else {
            return Ok(AccountLink {
                index: 0,
                prev: [0; 32],
            });
        };
        let count = match actas_core::event::account_index_of(&body) {
            Some(index) => index + 1,
            None => self.conn.count_account_events(account).await?,
        };
        Ok(AccountLink {
            index: count,
            prev: leaf,
        })
    }

    async fn apply_unit(
        &mut self,
        unit: Unit,
        checks: &Checks,
        tip: &mut Tip,
        rows: &mut Rows,
        (batch_accounts, unit_accounts): (&AccountTips, &mut AccountTips),
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
                Change::RequireLedgerKeyCurrent => {
                    // The unit's first event would be the next one; a replaced key may
                    // sign only up to its replacement.
                    if let Some(at) = self.replaced_as_of(tip, &rows.events).await?
                        && !actas_core::checkpoint::may_sign(tip.size + 1, Some(at))
                    {
                        return Err(self.replaced(at, "receipts"));
                    }
                    applied.push(Applied::Done);
                }
                other => applied.push(self.conn.apply(other).await?),
            }
        }
        let events = (unit.events)(&applied);
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let notify = event.data.notifies_product();
            let seq = tip.size + 1;
            let time = Timestamp::now().as_millis().max(tip.last_time);
            let account = event.account();
            let link = match &account {
                Some(a) => Some(
                    self.account_tip(a.as_str(), (batch_accounts, unit_accounts))
                        .await?,
                ),
                None => None,
            };
            let mut salt = [0u8; 16];
            getrandom::getrandom(&mut salt)
                .map_err(|e| StoreError::corrupt(format!("no random source for a salt: {e}")))?;
            let record = event.into_private_body(
                seq,
                Timestamp::from_millis(time),
                &tip.last_leaf,
                salt,
                link,
            );
            let body = record.encode();
            if body.is_empty() {
                return Err(StoreError::corrupt("an event could not be encoded"));
            }
            let leaf = actas_core::merkle::leaf_hash(body.as_bytes());
            if let (Some(a), Some(link)) = (account, link) {
                unit_accounts.insert(
                    a.as_str().to_owned(),
                    AccountLink {
                        index: link.index + 1,
                        prev: leaf,
                    },
                );
            }
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
                self.conn.rollback().await;
                self.tip = None;
                Err(e)
            }
        }
    }
}

impl<T: WriteTx> Writer<T> {
    async fn head_transaction(&mut self) -> StoreResult<(Tip, Option<SignedTreeHead>)> {
        if self.rotations_seen.is_none() {
            self.read_rotations(None).await?;
        }
        let mut tip = self.conn.begin(self.tip.as_ref()).await?;
        let sth = self.sign_checked(&tip, &[]).await??;
        if sth.is_some() {
            tip.head_size = tip.size;
        }
        self.conn
            .commit(&Rows::default(), &tip, sth.as_ref())
            .await?;
        Ok((tip, sth))
    }
}

/// One event row as the batch will insert it.
pub(crate) struct EventRow {
    pub(crate) seq: i64,
    pub(crate) time: i64,
    pub(crate) kind: String,
    pub(crate) account: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) body: String,
    pub(crate) leaf: Hash,
    /// Whether the product's apps are notified of it (through the outbox, in the same
    /// transaction, so a notification exists exactly when its event does).
    pub(crate) notify: bool,
}

/// The batch's ledger rows, written with a few multi-row INSERTs at the end of the
/// transaction instead of one statement per row.
#[derive(Default)]
pub(crate) struct Rows {
    pub(crate) events: Vec<EventRow>,
    /// Merkle nodes: level, index, hash.
    pub(crate) nodes: Vec<(i64, i64, Hash)>,
    /// Idempotency keys claimed: app, key, request hash, time.
    pub(crate) claims: Vec<(i64, String, [u8; 32], i64)>,
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

    /// The body of the notification each event that notifies the product's apps gets,
    /// with the event's time: one outbox row per live app with a webhook, written in the
    /// same transaction so a notification exists exactly when its event does.
    pub(crate) fn notifications(&self) -> StoreResult<Vec<(String, i64)>> {
        self.events
            .iter()
            .filter(|e| e.notify)
            .map(|e| {
                let event = serde_json::from_str::<serde_json::Value>(&e.body)
                    .map_err(StoreError::unexpected)?;
                let body = serde_json::json!({
                    "id": e.seq.to_string(),
                    "type": e.kind,
                    "time": actas_core::Timestamp::from_millis(e.time).to_rfc3339(),
                    "account": e.account,
                    "session": e.session,
                    "event": event,
                })
                .to_string();
                Ok((body, e.time))
            })
            .collect()
    }
}

/// A stored 32-byte hash, or the corruption it is.
pub(crate) fn to_hash(bytes: &[u8]) -> StoreResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("a stored hash is not 32 bytes"))
}
