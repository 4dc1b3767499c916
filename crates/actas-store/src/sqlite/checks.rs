//! SQLite's reads for the writer's preconditions (see `crate::checks`): one query per
//! table for a whole batch, inside the transaction that holds SQLite's write lock.

use super::read;
use crate::change::Change;
use crate::checks::{Checks, Limits, Wanted};
use crate::{StoreError, StoreResult};
use actas_core::scope::Risk;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::LedgerUnavailable(Box::new(e))
}

/// Binds up to this many ids per `IN (...)` list, well under SQLite's limit.
const CHUNK: usize = 500;

/// Reads everything the preconditions among `changes` need: one query per kind.
pub(super) async fn read_checks(
    conn: &mut SqliteConnection,
    changes: &[&Change],
) -> StoreResult<Checks> {
    let wanted = Wanted::of(changes);
    let mut out = Checks::default();
    for chunk in wanted.sessions.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, ended_at, expires_at, idle_limit_ms, last_seen FROM sessions WHERE id IN (",
        );
        list(&mut q, chunk);
        for row in q.build().fetch_all(&mut *conn).await.map_err(unavailable)? {
            let limits = Limits {
                ended: row
                    .try_get::<Option<i64>, _>("ended_at")
                    .map_err(unavailable)?
                    .is_some(),
                expires_at: row.try_get("expires_at").map_err(unavailable)?,
                idle_limit_ms: row.try_get("idle_limit_ms").map_err(unavailable)?,
                last_seen: row.try_get("last_seen").map_err(unavailable)?,
            };
            out.sessions
                .insert(row.try_get("id").map_err(unavailable)?, limits);
        }
    }
    for chunk in wanted.apps.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id FROM app_keys WHERE revoked_at IS NULL AND id IN (",
        );
        ints(&mut q, chunk);
        let live: Vec<i64> = q
            .build_query_scalar()
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
        out.live_apps.extend(live);
    }
    for chunk in wanted.accounts.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, name, flags, consent FROM accounts WHERE id IN (",
        );
        list(&mut q, chunk);
        for row in q.build().fetch_all(&mut *conn).await.map_err(unavailable)? {
            let account = read::account(&row)?;
            out.accounts.insert(account.id.as_str().to_owned(), account);
        }
    }
    for chunk in wanted.allowed.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT staff_id, max_risk, COALESCE(reviewed_at, granted_at) AS reviewed_at FROM allow_list WHERE revoked_at IS NULL AND staff_id IN (",
        );
        ints(&mut q, chunk);
        for row in q.build().fetch_all(&mut *conn).await.map_err(unavailable)? {
            let risk: String = row.try_get("max_risk").map_err(unavailable)?;
            let risk: Risk = risk.parse().map_err(|e: actas_core::scope::ScopeError| {
                StoreError::corrupt(format!("allow-list risk: {e}"))
            })?;
            let reviewed: i64 = row.try_get("reviewed_at").map_err(unavailable)?;
            out.allowed.insert(
                row.try_get("staff_id").map_err(unavailable)?,
                (risk, reviewed),
            );
        }
    }
    for chunk in wanted.staff.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, active FROM staff WHERE id IN (");
        ints(&mut q, chunk);
        for row in q.build().fetch_all(&mut *conn).await.map_err(unavailable)? {
            out.staff.insert(
                row.try_get("id").map_err(unavailable)?,
                row.try_get("active").map_err(unavailable)?,
            );
        }
    }
    Ok(out)
}

fn list(q: &mut QueryBuilder<'_, Sqlite>, ids: &[String]) {
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(id.clone());
    }
    q.push(")");
}

fn ints(q: &mut QueryBuilder<'_, Sqlite>, ids: &[i64]) {
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    q.push(")");
}
