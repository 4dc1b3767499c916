//! Moving an installation from its SQLite file to a PostgreSQL database (`actas store
//! copy`): every table, row for row, read from one snapshot of the file and written in
//! one PostgreSQL transaction, with each value converted to the column's PostgreSQL type;
//! then the ledger's tip is set from what was copied. The ledger is verified in the
//! snapshot before anything is written and in the destination's transaction before it
//! commits, so a copy that doesn't verify is never left behind; nothing is signed.
//!
//! Written by hand: the two schemas are the same tables and columns, so the copy reads
//! the destination's column types and converts SQLite's storage classes to them, rather
//! than keeping a second description of the schema.

use crate::ledger::{self, EventRow, NodeMap, RawLedger};
use crate::writer::to_hash;
use crate::{StoreError, StoreResult};
use actas_core::Timestamp;
use actas_core::merkle::{Frontier, NodeId};
use actas_core::tree_head::{KeyId, PublicKey, SignedTreeHead, TreeHead};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::{
    Column, Connection, Database, PgConnection, Postgres, QueryBuilder, Row, SqliteConnection,
    TypeInfo, ValueRef,
};
use std::path::Path;
use tokio::sync::Mutex;

/// Every table, in an order that meets every foreign key (see [`copy`] for the one
/// that points back: `access_requests.for_session`).
const TABLES: &[&str] = &[
    "staff",
    "allow_list",
    "accounts",
    "access_requests",
    "approvals",
    "sessions",
    "confirmation_codes",
    "handoff_tokens",
    "staff_logins",
    "sign_on_flows",
    "api_tokens",
    "gateway_logins",
    "unclassified_fields",
    "app_keys",
    "idempotency_keys",
    "webhook_outbox",
    "session_reviews",
    "page_copies",
    "page_copy_use",
    "held_actions",
    "assertion_keys",
    "ledger_events",
    "merkle_nodes",
    "tree_heads",
];

/// Tables whose `id` PostgreSQL numbers: after copying, numbering continues after the
/// largest copied id.
const NUMBERED: &[&str] = &[
    "staff",
    "approvals",
    "app_keys",
    "webhook_outbox",
    "session_reviews",
];

/// Rows per INSERT statement.
const CHUNK: usize = 500;

/// What was copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// Each table and how many rows it got.
    pub tables: Vec<(String, u64)>,
    /// Events in the ledger, verified on both sides.
    pub events: u64,
    /// The newest signed head's size (0: none yet).
    pub head: u64,
}

/// One connection's view of a ledger, read inside its open transaction: what the copy
/// verifies on each side without opening a store (which would start a writer, and
/// might sign).
struct Snapshot<C>(Mutex<C>);

/// The statements a snapshot reads with, per database.
trait Dialect: Database {
    const NODE: &'static str;
    const EVENTS: &'static str;
}

impl Dialect for sqlx::Sqlite {
    const NODE: &'static str = "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?";
    const EVENTS: &'static str = "SELECT seq, time, kind, account, session, body, leaf_hash FROM ledger_events WHERE seq > ? ORDER BY seq LIMIT ?";
}

impl Dialect for Postgres {
    const NODE: &'static str = "SELECT hash FROM merkle_nodes WHERE level = $1 AND idx = $2";
    const EVENTS: &'static str = "SELECT seq, time, kind, account, session, body, leaf_hash FROM ledger_events WHERE seq > $1 ORDER BY seq LIMIT $2";
}

/// Writes the [`RawLedger`] reads once per connection type (the SQL differs only in
/// placeholders, which [`Dialect`] holds).
macro_rules! snapshot_reads {
    ($conn:ty, $db:ty) => {
        #[async_trait]
        impl RawLedger for Snapshot<$conn> {
            async fn size(&self) -> StoreResult<u64> {
                let mut c = self.0.lock().await;
                let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM ledger_events")
                    .fetch_one(&mut *c)
                    .await
                    .map_err(failed("the ledger could not be read"))?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn nodes(&self, ids: &[NodeId]) -> StoreResult<NodeMap> {
                let mut c = self.0.lock().await;
                let mut out = NodeMap::with_capacity_and_hasher(ids.len(), Default::default());
                for id in ids {
                    let h: Vec<u8> = sqlx::query_scalar(<$db as Dialect>::NODE)
                        .bind(i64::from(id.level))
                        .bind(id.index as i64)
                        .fetch_one(&mut *c)
                        .await
                        .map_err(failed("a node of the ledger is missing"))?;
                    out.insert(*id, to_hash(&h)?);
                }
                Ok(out)
            }

            async fn event_rows(&self, after: u64, limit: u32) -> StoreResult<Vec<EventRow>> {
                type Raw = (
                    i64,
                    i64,
                    String,
                    Option<String>,
                    Option<String>,
                    String,
                    Vec<u8>,
                );
                let mut c = self.0.lock().await;
                let rows: Vec<Raw> = sqlx::query_as(<$db as Dialect>::EVENTS)
                    .bind(i64::try_from(after).unwrap_or(i64::MAX))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *c)
                    .await
                    .map_err(failed("the ledger could not be read"))?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, time, kind, account, session, body, leaf)| EventRow {
                        seq,
                        time,
                        kind,
                        account,
                        session,
                        body,
                        leaf,
                    })
                    .collect())
            }

            async fn heads(&self) -> StoreResult<Vec<SignedTreeHead>> {
                type Raw = (i64, i64, Vec<u8>, String, Vec<u8>);
                let mut c = self.0.lock().await;
                let rows: Vec<Raw> = sqlx::query_as(
                    "SELECT size, time, root, key_id, signature FROM tree_heads ORDER BY size",
                )
                .fetch_all(&mut *c)
                .await
                .map_err(failed("the signed heads could not be read"))?;
                rows.into_iter()
                    .map(|(size, time, root, key_id, sig)| {
                        Ok(SignedTreeHead {
                            head: TreeHead {
                                size: u64::try_from(size).unwrap_or(0),
                                time: Timestamp::from_millis(time),
                                root: to_hash(&root)?,
                            },
                            key_id: KeyId::parse(&key_id)
                                .ok_or_else(|| StoreError::corrupt("a head's key id"))?,
                            signature: sig
                                .as_slice()
                                .try_into()
                                .map_err(|_| StoreError::corrupt("a head's signature"))?,
                        })
                    })
                    .collect()
            }
        }
    };
}

snapshot_reads!(SqliteConnection, sqlx::Sqlite);
snapshot_reads!(PgConnection, Postgres);

/// Verifies the ledger `snapshot` reads against `key`: its event count and newest head.
async fn verified(
    snapshot: &impl RawLedger,
    key: &PublicKey,
    side: &str,
) -> StoreResult<(u64, u64)> {
    let heads = snapshot.heads().await?;
    let head = heads.last().map_or(0, |h| h.head.size);
    match ledger::verify(snapshot, key, &mut |_, _| {}).await? {
        Ok(report) => Ok((report.events, head)),
        Err(problem) => Err(StoreError::Refused(format!(
            "the ledger in {side} does not verify ({problem}), so nothing was copied"
        ))),
    }
}

fn failed(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Unexpected(format!("{what}: {e}").into())
}

/// A value as SQLite stored it.
enum Value {
    Null,
    Int(i64),
    Real,
    Text(String),
    Blob(Vec<u8>),
}

fn read_value(row: &sqlx::sqlite::SqliteRow, i: usize) -> StoreResult<Value> {
    let raw = row
        .try_get_raw(i)
        .map_err(failed("a row could not be read"))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().name().to_owned();
    Ok(match kind.as_str() {
        "INTEGER" | "BOOLEAN" => Value::Int(row.try_get(i).map_err(failed("an integer"))?),
        "REAL" => Value::Real,
        "BLOB" => Value::Blob(row.try_get(i).map_err(failed("bytes"))?),
        _ => Value::Text(row.try_get(i).map_err(failed("text"))?),
    })
}

/// Binds `v` as a value of the PostgreSQL column type `ty`.
fn bind(
    b: &mut sqlx::query_builder::Separated<'_, '_, Postgres, &'static str>,
    v: Value,
    ty: &str,
    column: &str,
) -> StoreResult<()> {
    let wrong = |had: &str| {
        StoreError::Unexpected(format!("the column {column} holds {had}, not {ty}").into())
    };
    match (ty, v) {
        ("boolean", Value::Null) => b.push_bind(None::<bool>),
        ("boolean", Value::Int(n)) => b.push_bind(n != 0),
        ("bigint" | "integer", Value::Null) => b.push_bind(None::<i64>),
        ("bigint" | "integer", Value::Int(n)) => b.push_bind(n),
        ("bytea", Value::Null) => b.push_bind(None::<Vec<u8>>),
        ("bytea", Value::Blob(bytes)) => b.push_bind(bytes),
        ("jsonb", Value::Null) => b.push_bind(None::<String>).push_unseparated("::jsonb"),
        ("jsonb", Value::Text(t)) => b.push_bind(t).push_unseparated("::jsonb"),
        ("text", Value::Null) => b.push_bind(None::<String>),
        ("text", Value::Text(t)) => b.push_bind(t),
        ("text", Value::Int(n)) => b.push_bind(n.to_string()),
        (_, Value::Real) => return Err(wrong("a real number")),
        (_, Value::Blob(_)) => return Err(wrong("bytes")),
        (_, Value::Int(_)) => return Err(wrong("a number")),
        (_, Value::Text(_)) => return Err(wrong("text")),
        (_, Value::Null) => return Err(wrong("nothing")),
    };
    Ok(())
}

/// Copies everything in the SQLite database at `from` (which must be at this build's
/// schema) into the PostgreSQL database at `to` (migrated here, and which must hold
/// nothing yet), verifying the ledger against `key` on both sides. One snapshot of the
/// source, one transaction on the destination: a failure leaves it as it was.
pub async fn copy(from: &Path, to: &str, key: &PublicKey) -> StoreResult<Copied> {
    let pool = crate::sqlite::open_for_copy(from).await?;
    let mut source = pool
        .acquire()
        .await
        .map_err(failed("the SQLite database could not be opened"))?
        .detach();
    // One read transaction: every table as of the same moment, even if something
    // still writes to the file.
    sqlx::query("BEGIN")
        .execute(&mut source)
        .await
        .map_err(failed("no snapshot of the SQLite database"))?;
    let source = Snapshot(Mutex::new(source));
    let (events, head) = verified(&source, key, &from.display().to_string()).await?;
    crate::postgres::migrate(to).await?;
    let mut tx = PgConnection::connect(to)
        .await
        .map_err(failed("the PostgreSQL database could not be reached"))?;
    sqlx::query("BEGIN")
        .execute(&mut tx)
        .await
        .map_err(failed("no transaction on the destination"))?;
    // Held until the commit: no instance appends while the copy runs.
    sqlx::query("SELECT size FROM ledger_tip FOR UPDATE")
        .execute(&mut tx)
        .await
        .map_err(failed("the destination's ledger could not be locked"))?;
    for table in TABLES {
        let used: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
            .fetch_one(&mut tx)
            .await
            .map_err(failed("the destination could not be read"))?;
        if used {
            return Err(StoreError::Refused(format!(
                "the PostgreSQL database already holds an installation (its {table} table has rows), so nothing was copied: copy into an empty database"
            )));
        }
    }
    let mut source_conn = source.0.into_inner();
    let mut out = Copied::default();
    let mut later_links: Vec<(String, String)> = Vec::new();
    for table in TABLES {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut tx)
        .await
        .map_err(failed("the destination's columns could not be read"))?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let select = format!(
            "SELECT {} FROM {table}",
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let insert = format!(
            "INSERT INTO {table} ({}) ",
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut rows = sqlx::query(&select).fetch(&mut source_conn);
        let mut chunk: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
        let mut copied = 0u64;
        loop {
            let row = rows
                .try_next()
                .await
                .map_err(failed("the SQLite database could not be read"))?;
            if let Some(row) = &row {
                let mut values = Vec::with_capacity(columns.len());
                for (i, col) in row.columns().iter().enumerate() {
                    let mut v = read_value(row, i)?;
                    // A scope change's request points at its session, which is copied
                    // after the requests: linked once the sessions are in.
                    if *table == "access_requests"
                        && col.name() == "for_session"
                        && let Value::Text(session) = &v
                    {
                        let id_at = names.iter().position(|n| *n == "id").unwrap_or(0);
                        if let Ok(Value::Text(id)) = read_value(row, id_at) {
                            later_links.push((id, session.clone()));
                        }
                        v = Value::Null;
                    }
                    values.push(v);
                }
                chunk.push(values);
            }
            if chunk.len() == CHUNK || (row.is_none() && !chunk.is_empty()) {
                let mut q = QueryBuilder::<Postgres>::new(&insert);
                q.push("VALUES ");
                let n = chunk.len();
                for (r, values) in chunk.drain(..).enumerate() {
                    q.push("(");
                    let mut sep = q.separated(", ");
                    for (v, (name, ty)) in values.into_iter().zip(&columns) {
                        bind(&mut sep, v, ty, &format!("{table}.{name}"))?;
                    }
                    q.push(")");
                    if r + 1 < n {
                        q.push(", ");
                    }
                }
                q.build()
                    .execute(&mut tx)
                    .await
                    .map_err(failed(&format!("rows of {table} could not be written")))?;
                copied += n as u64;
            }
            if row.is_none() {
                break;
            }
        }
        drop(rows);
        if *table == "sessions" {
            for (request, session) in later_links.drain(..) {
                sqlx::query("UPDATE access_requests SET for_session = $1 WHERE id = $2")
                    .bind(session)
                    .bind(request)
                    .execute(&mut tx)
                    .await
                    .map_err(failed("a scope change's session could not be linked"))?;
            }
        }
        out.tables.push(((*table).to_owned(), copied));
    }
    for table in NUMBERED {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut tx)
        .await
        .map_err(failed("numbering could not be continued"))?;
    }
    set_tip(&mut tx).await?;
    let _ = sqlx::query("ROLLBACK").execute(&mut source_conn).await;
    let _ = source_conn.close().await;
    pool.close().await;
    // The copy, verified in its own transaction before it is committed.
    let dest = Snapshot(Mutex::new(tx));
    let copied = verified(&dest, key, "the copy").await?;
    if copied != (events, head) {
        return Err(StoreError::Refused(format!(
            "the copy holds {} events (newest head over {}), not the {events} (over {head}) of the original, so it was not kept",
            copied.0, copied.1
        )));
    }
    let mut tx = dest.0.into_inner();
    sqlx::query("COMMIT")
        .execute(&mut tx)
        .await
        .map_err(failed("the copy could not be committed"))?;
    let _ = tx.close().await;
    out.events = events;
    out.head = head;
    Ok(out)
}

/// Sets the ledger's tip from the copied events, nodes and heads; returns the size.
async fn set_tip(tx: &mut PgConnection) -> StoreResult<u64> {
    let last: Option<(i64, i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, time, leaf_hash FROM ledger_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed("the copied ledger could not be read"))?;
    let Some((size, time, leaf)) = last else {
        return Ok(0);
    };
    let size_u = u64::try_from(size).map_err(|_| StoreError::corrupt("a negative sequence"))?;
    let mut hashes = Vec::new();
    for id in Frontier::pieces_of(size_u) {
        let h: Vec<u8> =
            sqlx::query_scalar("SELECT hash FROM merkle_nodes WHERE level = $1 AND idx = $2")
                .bind(i64::from(id.level))
                .bind(id.index as i64)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed("a node of the copied ledger is missing"))?;
        hashes.push(to_hash(&h)?);
    }
    let frontier = Frontier::from_pieces(size_u, hashes)
        .ok_or_else(|| StoreError::corrupt("the copied frontier is incomplete"))?;
    sqlx::query(
        "UPDATE ledger_tip SET size = $1, last_leaf = $2, last_time = $3, frontier = $4, \
         head_size = (SELECT COALESCE(max(size), 0) FROM tree_heads)",
    )
    .bind(size)
    .bind(leaf)
    .bind(time)
    .bind(frontier.pieces().concat())
    .execute(&mut *tx)
    .await
    .map_err(failed("the ledger's tip could not be set"))?;
    Ok(size_u)
}
