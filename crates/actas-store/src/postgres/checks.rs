//! PostgreSQL's reads for the writer's preconditions (see `crate::checks`): one query per
//! table for a whole batch, inside the transaction that holds the row lock on `ledger_tip`
//! (which serialises every writer of the database, as SQLite's write lock does).
//!
//! Each kind is read with `= ANY($1)` over one bound array, so no list is chunked (SQLite
//! binds each id and splits long lists to stay under its variable limit).

use super::read;
use crate::change::Change;
use crate::checks::{Checks, Limits, Wanted};
use crate::{StoreError, StoreResult};
use actas_core::scope::Risk;
use sqlx::{PgConnection, Row};

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::LedgerUnavailable(Box::new(e))
}

/// Reads everything the preconditions among `changes` need: one query per kind.
pub(super) async fn read_checks(
    conn: &mut PgConnection,
    changes: &[&Change],
) -> StoreResult<Checks> {
    let wanted = Wanted::of(changes);
    let mut out = Checks::default();
    if !wanted.sessions.is_empty() {
        let rows = sqlx::query(
            "SELECT id, ended_at, expires_at, idle_limit_ms, last_seen FROM sessions WHERE id = ANY($1)",
        )
        .bind(&wanted.sessions)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        for row in rows {
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
    if !wanted.apps.is_empty() {
        let live: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM app_keys WHERE revoked_at IS NULL AND id = ANY($1)")
                .bind(&wanted.apps)
                .fetch_all(&mut *conn)
                .await
                .map_err(unavailable)?;
        out.live_apps.extend(live);
    }
    if !wanted.accounts.is_empty() {
        // `flags` is jsonb; the row reader takes it as text.
        let rows = sqlx::query(
            "SELECT id, name, flags::text AS flags, consent FROM accounts WHERE id = ANY($1)",
        )
        .bind(&wanted.accounts)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        for row in &rows {
            let account = read::account(row)?;
            out.accounts.insert(account.id.as_str().to_owned(), account);
        }
    }
    if !wanted.allowed.is_empty() {
        let rows = sqlx::query(
            "SELECT staff_id, max_risk, COALESCE(reviewed_at, granted_at) AS reviewed_at FROM allow_list WHERE revoked_at IS NULL AND staff_id = ANY($1)",
        )
        .bind(&wanted.allowed)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        for row in rows {
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
    if !wanted.staff.is_empty() {
        // `staff.active` is boolean in PostgreSQL (0/1 in SQLite).
        let rows = sqlx::query("SELECT id, active FROM staff WHERE id = ANY($1)")
            .bind(&wanted.staff)
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
        for row in rows {
            out.staff.insert(
                row.try_get::<i64, _>("id").map_err(unavailable)?,
                row.try_get::<bool, _>("active").map_err(unavailable)?,
            );
        }
    }
    Ok(out)
}
