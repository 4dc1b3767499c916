//! Applying [`Change`]s inside the writer's transaction.
//!
//! PostgreSQL port of `sqlite/apply.rs`. The writer runs every unit inside a savepoint
//! of one READ COMMITTED transaction that holds a row lock on `ledger_tip`, so every
//! writer of the database is serialised as SQLite's write lock serialises them, and the
//! read-then-write patterns below (a check, then the write it guards) stay safe. Unlike
//! SQLite, a failed statement aborts the whole (sub)transaction in PostgreSQL: after any
//! error from `apply` the writer must roll back to the unit's savepoint before it runs
//! another statement (nothing here runs a statement after one failed).

use super::read;
use crate::change::{Applied, Change, SessionsOf};
use crate::model::EndedRecord;
use crate::{StoreError, StoreResult};
use actas_core::Timestamp;
use actas_core::request::{AccessRequest, Approver};
use actas_core::session::Session;
use sqlx::PgConnection;

/// A unique violation (SQLSTATE 23505, primary keys included, as SQLite's
/// `is_unique_violation` covers both) is a `Conflict`; its message is PostgreSQL's
/// (`duplicate key value violates unique constraint "..."`), not SQLite's.
fn db(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return StoreError::Conflict(d.message().to_owned());
    }
    StoreError::unexpected(e)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

/// PostgreSQL's `rows_affected` counts the rows an UPDATE's WHERE matched, even when the new
/// values equal the old ones, as SQLite's `changes()` does, so the checks below carry over.
fn expect_one(rows: u64, what: impl FnOnce() -> StoreError) -> StoreResult<()> {
    if rows == 1 { Ok(()) } else { Err(what()) }
}

pub(super) async fn apply(conn: &mut PgConnection, change: Change) -> StoreResult<Applied> {
    let now = Timestamp::now().as_millis();
    match change {
        Change::AddStaff {
            email,
            name,
            role,
            password_hash,
        } => {
            let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM staff WHERE email = $1")
                .bind(email.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
            if taken.is_some() {
                return Err(StoreError::Duplicate(format!(
                    "a staff member with the email {email}"
                )));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO staff (email, name, role, password_hash, active, created_at) VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id",
            )
            .bind(email.as_str())
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
            let id = actas_core::ids::StaffId::new(id).map_err(StoreError::unexpected)?;
            Ok(Applied::Staff(id))
        }
        Change::DisableStaff { staff, at } => {
            let r = sqlx::query("UPDATE staff SET active = FALSE WHERE id = $1 AND active")
                .bind(staff.get())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict("that staff member is already deactivated".into())
            })?;
            sqlx::query(
                "UPDATE staff_logins SET ended_at = $1 WHERE staff_id = $2 AND ended_at IS NULL",
            )
            .bind(at.as_millis())
            .bind(staff.get())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE staff_id = $2 AND revoked_at IS NULL",
            )
            .bind(at.as_millis())
            .bind(staff.get())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::LinkSubject {
            staff,
            issuer,
            subject,
        } => {
            let linked: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM staff WHERE oidc_issuer = $1 AND oidc_subject = $2")
                    .bind(&issuer)
                    .bind(&subject)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?;
            match linked {
                Some((id,)) if id == staff.get() => return Ok(Applied::Done),
                Some(_) => {
                    return Err(StoreError::Conflict(
                        "this identity at the provider already belongs to another staff member"
                            .into(),
                    ));
                }
                None => {}
            }
            let r = sqlx::query(
                "UPDATE staff SET oidc_issuer = $1, oidc_subject = $2 WHERE id = $3 AND oidc_subject IS NULL",
            )
            .bind(&issuer)
            .bind(&subject)
            .bind(staff.get())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict(
                    "this staff member is linked to another identity at the provider".into(),
                )
            })?;
            Ok(Applied::Done)
        }
        Change::ReactivateStaff(staff) => {
            let r = sqlx::query(
                "UPDATE staff SET active = TRUE, failed_sign_ins = 0, locked_until = NULL WHERE id = $1 AND active = FALSE",
            )
            .bind(staff.get())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict("that staff member is already active".into())
            })?;
            Ok(Applied::Done)
        }
        Change::GrantAllow {
            staff,
            max_risk,
            by,
            reason,
        } => {
            sqlx::query(
                "INSERT INTO allow_list (staff_id, max_risk, granted_by, granted_at, reason, reviewed_at, reviewed_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (staff_id) DO UPDATE SET max_risk = excluded.max_risk, granted_by = excluded.granted_by,
                   granted_at = excluded.granted_at, reason = excluded.reason,
                   reviewed_at = excluded.reviewed_at, reviewed_by = excluded.reviewed_by,
                   revoked_by = NULL, revoked_at = NULL, revoke_reason = NULL",
            )
            .bind(staff.get())
            .bind(max_risk.as_str())
            .bind(by.get())
            .bind(now)
            .bind(reason.as_str())
            .bind(now)
            .bind(by.get())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::ConfirmAllow { staff, by } => {
            let r = sqlx::query(
                "UPDATE allow_list SET reviewed_at = $1, reviewed_by = $2 WHERE staff_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(by.get())
            .bind(staff.get())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::NotFound("a current allow-list entry for that staff member".into())
            })?;
            Ok(Applied::Done)
        }
        Change::RevokeAllow { staff, by, reason } => {
            let r = sqlx::query(
                "UPDATE allow_list SET revoked_by = $1, revoked_at = $2, revoke_reason = $3 WHERE staff_id = $4 AND revoked_at IS NULL",
            )
            .bind(by.get())
            .bind(now)
            .bind(reason.as_str())
            .bind(staff.get())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::NotFound("an allow-list entry for that staff member".into())
            })?;
            Ok(Applied::Done)
        }
        Change::PutAccount { id, name, flags } => {
            let before = sqlx::query(
                "SELECT id, name, flags::text AS flags, consent FROM accounts WHERE id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
            .map(|row| super::read::account(&row))
            .transpose()?;
            // `flags` is jsonb: PostgreSQL stores it normalised (e.g. `["a", "b"]`), so
            // it reads back as equal JSON, not the same text.
            sqlx::query(
                "INSERT INTO accounts (id, name, flags, consent, created_at, updated_at) VALUES ($1, $2, $3::jsonb, 'allowed', $4, $5)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, flags = excluded.flags,
                   updated_at = excluded.updated_at",
            )
            .bind(id.as_str())
            .bind(name.as_str())
            .bind(json(&flags))
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::AccountBefore(before))
        }
        Change::SetConsent { account, consent } => {
            let r = sqlx::query("UPDATE accounts SET consent = $1, updated_at = $2 WHERE id = $3")
                .bind(consent.as_str())
                .bind(now)
                .bind(account.as_str())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::NotFound(format!("account {account}"))
            })?;
            Ok(Applied::Done)
        }
        Change::EndSessionsOf { whose, reason, at } => {
            let found = match &whose {
                SessionsOf::Account(id) => {
                    read::active_sessions_named(conn, "s.account_id = $1", id.as_str().to_owned())
                        .await?
                }
                SessionsOf::Staff(id) => {
                    read::active_sessions_named(conn, "s.staff_id = $1", id.get()).await?
                }
                SessionsOf::StaffAbove { staff, risk } => {
                    // Risks are stored by name; their order is the enum's. `$1` is the
                    // staff id (the helper's one bind); the rank is a literal.
                    let clause = format!(
                        "s.staff_id = $1 AND (CASE r.risk WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 ELSE 3 END) > {}",
                        risk_rank(*risk)
                    );
                    read::active_sessions_named(conn, &clause, staff.get()).await?
                }
            };
            let mut ended = Vec::with_capacity(found.len());
            for (active, staff, account, ticket) in found {
                // Through `Session::end`, so a limit that already passed is what is recorded.
                let mut session = Session::Active(active);
                let done = session
                    .end(reason, at)
                    .map_err(|e| StoreError::Conflict(e.to_string()))?
                    .clone();
                end_session(conn, done.info.id, done.ended_at, done.reason).await?;
                ended.push(EndedRecord {
                    session: done,
                    staff,
                    account: account.to_ref(),
                    ticket,
                });
            }
            Ok(Applied::Ended(ended))
        }
        Change::InsertRequest(r) => {
            sqlx::query(
                "INSERT INTO access_requests (id, requester, account_id, ticket, reason, scope, minutes, mode, risk,
                   needs_code, code_confirmed, status, created_at, expires_at, approved_by, approver, decided_by, note, for_session)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            )
            .bind(r.id.to_string())
            .bind(r.requester.get())
            .bind(r.account.as_str())
            .bind(r.ticket.as_str())
            .bind(r.reason.as_str())
            .bind(json(&r.scope))
            .bind(i64::try_from(r.duration.minutes()).unwrap_or(i64::MAX))
            .bind(r.mode.as_str())
            .bind(r.risk.as_str())
            .bind(r.needs_code)
            .bind(r.code_confirmed)
            .bind(r.status.as_str())
            .bind(r.created_at.as_millis())
            .bind(r.expires_at.as_millis())
            .bind(approved_by(&r))
            .bind(approver_kind(&r))
            .bind(r.decided_by.map(|s| s.get()))
            .bind(r.note.as_ref().map(|n| n.as_str().to_owned()))
            .bind(r.for_session.map(|s| s.to_string()))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            if r.approver == Some(Approver::Policy) {
                record_decision(conn, &r, "approved", now).await?;
            }
            Ok(Applied::Done)
        }
        Change::UpdateRequest {
            request: r,
            expected,
        } => {
            let res = sqlx::query(
                "UPDATE access_requests SET scope = $1, minutes = $2, code_confirmed = $3,
                   status = $4, expires_at = $5, approved_by = $6, approver = $7, decided_by = $8, note = $9
                 WHERE id = $10 AND status = $11 AND locked_at IS NULL",
            )
            .bind(json(&r.scope))
            .bind(i64::try_from(r.duration.minutes()).unwrap_or(i64::MAX))
            .bind(r.code_confirmed)
            .bind(r.status.as_str())
            .bind(r.expires_at.as_millis())
            .bind(approved_by(&r))
            .bind(approver_kind(&r))
            .bind(r.decided_by.map(|s| s.get()))
            .bind(r.note.as_ref().map(|n| n.as_str().to_owned()))
            .bind(r.id.to_string())
            .bind(expected.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(res.rows_affected(), || {
                StoreError::Conflict(
                    "this request was changed by someone else meanwhile; reload it and try again"
                        .into(),
                )
            })?;
            if expected != r.status {
                match r.status {
                    actas_core::request::RequestStatus::Approved => {
                        record_decision(conn, &r, "approved", now).await?
                    }
                    actas_core::request::RequestStatus::Denied => {
                        record_decision(conn, &r, "denied", now).await?
                    }
                    _ => {}
                }
            }
            Ok(Applied::Done)
        }
        Change::InsertSession(s) => {
            let active: Option<String> = sqlx::query_scalar(
                "SELECT id FROM sessions WHERE staff_id = $1 AND ended_at IS NULL",
            )
            .bind(s.staff.get())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
            if active.is_some() {
                return Err(StoreError::Conflict(
                    "you already have an active support session; end it before starting another"
                        .into(),
                ));
            }
            // SQLite's `abs(random() % 100)` drew 0-99 from a random 64-bit integer;
            // PostgreSQL's `random()` is a double in [0, 1), so the same range is
            // `floor(random() * 100)`.
            sqlx::query(
                "INSERT INTO sessions (id, request_id, staff_id, account_id, scope, mode, started_at, expires_at, idle_limit_ms, last_seen, review_bucket)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, floor(random() * 100)::bigint)",
            )
            .bind(s.id.to_string())
            .bind(s.request.to_string())
            .bind(s.staff.get())
            .bind(s.account.as_str())
            .bind(json(&s.scope))
            .bind(s.mode.as_str())
            .bind(s.started_at.as_millis())
            .bind(s.expires_at.as_millis())
            .bind(i64::try_from(s.idle_limit.as_millis()).unwrap_or(i64::MAX))
            .bind(s.started_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::ReviewSession {
            session,
            reviewer,
            outcome,
            note,
            at,
        } => {
            let row: Option<(i64, Option<i64>)> =
                sqlx::query_as("SELECT staff_id, ended_at FROM sessions WHERE id = $1")
                    .bind(session.to_string())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?;
            match row {
                None => return Err(StoreError::NotFound(format!("session {session}"))),
                Some((_, None)) => {
                    return Err(StoreError::Conflict(
                        "this session is still running; it is reviewed after it ends".into(),
                    ));
                }
                Some((staff, Some(_))) if staff == reviewer.get() => {
                    return Err(StoreError::Refused(
                        "nobody reviews their own session; another lead does".into(),
                    ));
                }
                Some(_) => {}
            }
            sqlx::query(
                "INSERT INTO session_reviews (session_id, reviewer, outcome, note, reviewed_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(session.to_string())
            .bind(reviewer.get())
            .bind(outcome.as_str())
            .bind(note.as_ref().map(|n| n.as_str().to_owned()))
            .bind(at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::KeepPage {
            session,
            page_seq,
            path,
            content_type,
            sha256,
            bytes,
            gzip,
            at,
            max_session_bytes,
        } => {
            let used: Option<i64> =
                sqlx::query_scalar("SELECT gzip_bytes FROM page_copy_use WHERE session_id = $1")
                    .bind(session.to_string())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?;
            let used = used.unwrap_or(0).max(0) as u64 + gzip.len() as u64;
            if used > max_session_bytes {
                return Ok(Applied::Kept(false));
            }
            sqlx::query(
                "INSERT INTO page_copy_use (session_id, gzip_bytes) VALUES ($1, $2) \
                 ON CONFLICT (session_id) DO UPDATE SET gzip_bytes = excluded.gzip_bytes",
            )
            .bind(session.to_string())
            .bind(i64::try_from(used).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            sqlx::query(
                "INSERT INTO page_copies (session_id, page_seq, path, content_type, sha256, bytes, gzip, kept_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(session.to_string())
            .bind(i64::try_from(page_seq).map_err(StoreError::unexpected)?)
            .bind(path)
            .bind(content_type)
            .bind(&sha256[..])
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .bind(gzip)
            .bind(at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Kept(true))
        }
        Change::PrunePageCopies { before } => {
            let r = sqlx::query("DELETE FROM page_copies WHERE kept_at < $1")
                .bind(before.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(Applied::Pruned(r.rows_affected()))
        }
        Change::TouchSession { id, at } => {
            // SQLite's two-argument `max` is `GREATEST` (they differ only on NULLs, and
            // neither `last_seen` nor the bound time is ever NULL).
            let r = sqlx::query("UPDATE sessions SET last_seen = GREATEST(last_seen, $1) WHERE id = $2 AND ended_at IS NULL")
                .bind(at.as_millis())
                .bind(id.to_string())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict("this session has ended".into())
            })?;
            Ok(Applied::Done)
        }
        Change::InsertCode {
            id,
            account,
            salt,
            hash,
            created_at,
            expires_at,
        } => {
            sqlx::query(
                "INSERT INTO confirmation_codes (id, account_id, salt, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(account.as_str())
            .bind(salt)
            .bind(&hash[..])
            .bind(created_at.as_millis())
            .bind(expires_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::UseCode { id, request, at } => {
            let r = sqlx::query(
                "UPDATE confirmation_codes SET used_at = $1, used_for = $2 WHERE id = $3 AND used_at IS NULL AND expires_at > $4",
            )
            .bind(at.as_millis())
            .bind(request.to_string())
            .bind(id)
            .bind(at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict(
                    "that confirmation code has already been used or has expired".into(),
                )
            })?;
            Ok(Applied::Done)
        }
        Change::CodeFailed { request } => {
            let failures: Option<i64> = sqlx::query_scalar(
                "UPDATE access_requests SET code_failures = code_failures + 1,
                   locked_at = CASE WHEN code_failures + 1 >= $1 THEN $2 ELSE locked_at END
                 WHERE id = $3 AND locked_at IS NULL AND status IN ('pending', 'approved')
                 RETURNING code_failures",
            )
            .bind(i64::from(actas_core::request::MAX_CODE_FAILURES))
            .bind(now)
            .bind(request.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
            let failures = failures.ok_or_else(|| {
                StoreError::Conflict("this request is locked or no longer open".into())
            })?;
            Ok(Applied::CodeFailures(failures as u32))
        }
        Change::InsertHandoff {
            hash,
            session,
            expires_at,
        } => {
            sqlx::query(
                "INSERT INTO handoff_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(&hash[..])
            .bind(session.to_string())
            .bind(expires_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::HoldAction(held) => {
            let changes = serde_json::to_string(&held.changes)
                .map_err(|e| StoreError::Unexpected(e.into()))?;
            let headers = serde_json::to_string(&held.headers)
                .map_err(|e| StoreError::Unexpected(e.into()))?;
            // What earlier held actions would have sent is kept no longer than they
            // could be sent (and a margin, so an instance whose clock runs ahead never
            // empties one another may still send).
            sqlx::query("UPDATE held_actions SET body = ''::bytea, headers = '[]' WHERE expires_at <= $1 AND sent_at IS NULL AND (length(body) > 0 OR headers <> '[]')")
                .bind(held.held_at.as_millis() - crate::model::HELD_PURGE_MARGIN_MS)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            sqlx::query(
                "INSERT INTO held_actions (id, session_id, staff_id, method, path, query, content_type, body, headers, description, changes, held_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&held.id)
            .bind(held.session.to_string())
            .bind(held.staff.get())
            .bind(&held.method)
            .bind(&held.path)
            .bind(&held.query)
            .bind(&held.content_type)
            .bind(&held.body)
            .bind(headers)
            .bind(&held.description)
            .bind(changes)
            .bind(held.held_at.as_millis())
            .bind(held.expires_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::ConfirmAction {
            id,
            staff,
            token_hash,
            confirmed_with,
            at,
        } => {
            let r = sqlx::query("UPDATE held_actions SET token_hash = $1, confirmed_with = $2 WHERE id = $3 AND staff_id = $4 AND token_hash IS NULL AND sent_at IS NULL AND expires_at > $5")
                .bind(&token_hash[..])
                .bind(confirmed_with)
                .bind(id)
                .bind(staff.get())
                .bind(at.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict(
                    "that change has already been confirmed, or the time to confirm it has passed"
                        .into(),
                )
            })?;
            Ok(Applied::Done)
        }
        Change::SendAction { id, token_hash, at } => {
            let r = sqlx::query("UPDATE held_actions SET sent_at = $1, body = ''::bytea, headers = '[]' WHERE id = $2 AND token_hash = $3 AND sent_at IS NULL AND expires_at > $4")
                .bind(at.as_millis())
                .bind(id)
                .bind(&token_hash[..])
                .bind(at.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict(
                    "that confirmed change has already been sent, or the time to send it has passed".into(),
                )
            })?;
            Ok(Applied::Done)
        }
        Change::RedeemHandoff { hash, at } => {
            let r = sqlx::query("UPDATE handoff_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $3")
                .bind(at.as_millis())
                .bind(&hash[..])
                .bind(at.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict(
                    "that hand-off link has already been used or has expired".into(),
                )
            })?;
            Ok(Applied::Done)
        }
        Change::SignIn {
            token_hash,
            staff,
            csrf,
            at,
            authenticated_at,
            expires_at,
        } => {
            // Decided here, not only by whoever read the staff row before: guesses in
            // flight at once (on several instances) can't outrun a lock the fifth set.
            let locked: Option<Option<i64>> =
                sqlx::query_scalar("SELECT locked_until FROM staff WHERE id = $1")
                    .bind(staff.get())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?;
            if let Some(until) = locked.flatten().filter(|u| *u > at.as_millis()) {
                let until = Timestamp::from_millis(until).to_rfc3339();
                return Err(StoreError::Refused(format!(
                    "signing in to this account is locked until {} UTC after too many wrong passwords",
                    until.get(11..16).unwrap_or(&until)
                )));
            }
            sqlx::query(
                "INSERT INTO staff_logins (token_hash, staff_id, csrf, created_at, authenticated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&token_hash[..])
            .bind(staff.get())
            .bind(csrf)
            .bind(at.as_millis())
            .bind(authenticated_at.as_millis())
            .bind(expires_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            sqlx::query("UPDATE staff SET failed_sign_ins = 0, locked_until = NULL WHERE id = $1")
                .bind(staff.get())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::SignInFailed {
            staff,
            at,
            lock_after,
            lock_for,
        } => {
            let until = at.plus(lock_for).as_millis();
            let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                "UPDATE staff SET failed_sign_ins = failed_sign_ins + 1,
                   locked_until = CASE WHEN failed_sign_ins + 1 >= $1 THEN $2 ELSE locked_until END
                 WHERE id = $3 RETURNING failed_sign_ins, locked_until",
            )
            .bind(i64::from(lock_after))
            .bind(until)
            .bind(staff.get())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
            let (failures, locked) =
                row.ok_or_else(|| StoreError::NotFound("that staff member".into()))?;
            let locked = locked
                .filter(|l| *l > at.as_millis())
                .map(Timestamp::from_millis);
            Ok(Applied::SignInFailures(failures as u32, locked))
        }
        Change::SignOut { token_hash, at } => {
            let r = sqlx::query(
                "UPDATE staff_logins SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL",
            )
            .bind(at.as_millis())
            .bind(&token_hash[..])
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict("you are already signed out".into())
            })?;
            Ok(Applied::Done)
        }
        Change::Reauthenticate { token_hash, at } => {
            let r = sqlx::query("UPDATE staff_logins SET authenticated_at = $1 WHERE token_hash = $2 AND ended_at IS NULL")
                .bind(at.as_millis())
                .bind(&token_hash[..])
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict("you are signed out".into())
            })?;
            Ok(Applied::Done)
        }
        Change::SetRole { staff, role } => {
            let r = sqlx::query("UPDATE staff SET role = $1 WHERE id = $2")
                .bind(role.as_str())
                .bind(staff.get())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::NotFound("that staff member".into())
            })?;
            Ok(Applied::Done)
        }
        Change::BeginSignOn(flow) => {
            sqlx::query("DELETE FROM sign_on_flows WHERE expires_at <= $1")
                .bind(flow.created_at.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            sqlx::query(
                "INSERT INTO sign_on_flows (state_hash, binding_hash, nonce, verifier, purpose, login_hash, then_to, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&flow.state_hash[..])
            .bind(&flow.binding_hash[..])
            .bind(flow.nonce)
            .bind(flow.verifier)
            .bind(flow.purpose)
            .bind(flow.login_hash.map(|h| h.to_vec()))
            .bind(flow.then)
            .bind(flow.created_at.as_millis())
            .bind(flow.expires_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::TakeSignOn { state_hash, at } => {
            let row: Option<crate::model::SignOnRow> = sqlx::query_as(
                "DELETE FROM sign_on_flows WHERE state_hash = $1 RETURNING binding_hash, nonce, verifier, purpose, login_hash, then_to, created_at, expires_at",
            )
            .bind(&state_hash[..])
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
            crate::model::SignOnFlow::taken(state_hash, row, at).map(Applied::SignOn)
        }
        Change::CreateApiToken {
            id,
            staff,
            name,
            hash,
            at,
        } => {
            sqlx::query("INSERT INTO api_tokens (id, staff_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(staff.get())
                .bind(name)
                .bind(&hash[..])
                .bind(at.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::SetTotpPending { staff, secret } => {
            sqlx::query("UPDATE staff SET totp_pending = $1 WHERE id = $2")
                .bind(secret)
                .bind(staff.get())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::UseTotpCode { staff, step } => {
            let r = sqlx::query("UPDATE staff SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $3)")
                .bind(step as i64)
                .bind(staff.get())
                .bind(step as i64)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict(
                    "that authenticator code has been used already; wait for the next one".into(),
                )
            })?;
            Ok(Applied::Done)
        }
        Change::EnableTotp { staff, step } => {
            let r = sqlx::query("UPDATE staff SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1 WHERE id = $2 AND totp_pending IS NOT NULL")
                .bind(step as i64)
                .bind(staff.get())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict("start setting up the authenticator app first".into())
            })?;
            Ok(Applied::Done)
        }
        Change::InsertGatewayLogin {
            token_hash,
            session,
            csrf,
            staff,
            account,
            ticket,
            at,
        } => {
            sqlx::query(
                "INSERT INTO gateway_logins (token_hash, session_id, csrf, staff, account, ticket, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&token_hash[..])
            .bind(session.to_string())
            .bind(csrf)
            .bind(json(&staff))
            .bind(json(&account))
            .bind(ticket.as_str().to_owned())
                .bind(at.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::AddAppKey {
            name,
            key_hash,
            webhook_url,
            webhook_secret,
            by,
            at,
        } => {
            let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM app_keys WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
            if taken.is_some() {
                return Err(StoreError::Duplicate(format!("an app key named {name}")));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO app_keys (name, key_hash, webhook_url, webhook_secret, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(name.as_str())
            .bind(&key_hash[..])
            .bind(webhook_url)
            .bind(webhook_secret)
            .bind(by.map(|b| b.get()))
            .bind(at.as_millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::App(id))
        }
        Change::RevokeAppKey { id, at } => {
            let r = sqlx::query(
                "UPDATE app_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(at.as_millis())
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict("this app key is already revoked".into())
            })?;
            Ok(Applied::Done)
        }
        Change::ClaimIdempotencyKey {
            app,
            key,
            request_hash,
            at,
        } => {
            let r = sqlx::query(
                "INSERT INTO idempotency_keys (app_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(app)
            .bind(&key)
            .bind(&request_hash[..])
            .bind(at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            if r.rows_affected() == 0 {
                return Err(StoreError::Duplicate(format!(
                    "the idempotency key {key:?}"
                )));
            }
            Ok(Applied::Done)
        }
        Change::ClaimWebhooks { now, until, limit } => {
            // Rows another transaction holds are skipped, not waited for: each instance
            // claims what nobody else is claiming, and the lease hides it until `until`.
            let ids: Vec<i64> = sqlx::query_scalar(
                "WITH due AS ( \
                   SELECT o.id FROM webhook_outbox o JOIN app_keys a ON a.id = o.app_id \
                   WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $2 AND a.revoked_at IS NULL AND a.webhook_url IS NOT NULL AND a.webhook_secret IS NOT NULL \
                   ORDER BY o.id LIMIT $3 FOR UPDATE OF o SKIP LOCKED) \
                 UPDATE webhook_outbox w SET next_attempt_at = $1 FROM due WHERE w.id = due.id \
                 RETURNING w.id",
            )
            .bind(until.as_millis())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
            Ok(Applied::Webhooks(read::webhooks_by_id(conn, &ids).await?))
        }
        Change::SeedAssertionKeys(keys) => {
            let any: Option<String> = sqlx::query_scalar("SELECT kid FROM assertion_keys LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
            if any.is_none() {
                for key in &keys {
                    insert_assertion_key(conn, key).await?;
                }
            }
            Ok(Applied::Done)
        }
        Change::ResealAssertionKeys(keys) => {
            for key in &keys {
                let r =
                    sqlx::query("UPDATE assertion_keys SET sealed = $1, mac = $2 WHERE kid = $3")
                        .bind(key.sealed.as_deref())
                        .bind(&key.mac)
                        .bind(&key.kid)
                        .execute(&mut *conn)
                        .await
                        .map_err(db)?;
                expect_one(r.rows_affected(), || {
                    StoreError::Conflict(format!(
                        "the assertion key {} changed meanwhile; nothing was changed: try again",
                        key.kid
                    ))
                })?;
            }
            Ok(Applied::Done)
        }
        Change::RotateAssertionKey { key, replaces } => {
            let r = sqlx::query(
                "UPDATE assertion_keys SET retired_at = $1 WHERE retired_at IS NULL AND kid = $2",
            )
            .bind(key.created_at.as_millis())
            .bind(&replaces)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            expect_one(r.rows_affected(), || {
                StoreError::Conflict(
                    "the assertion key was replaced meanwhile (through another instance); nothing was changed: try again".into(),
                )
            })?;
            insert_assertion_key(conn, &key).await?;
            Ok(Applied::Done)
        }
        Change::WebhookDelivered { id, at } => {
            sqlx::query("UPDATE webhook_outbox SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2 AND delivered_at IS NULL")
                .bind(at.as_millis())
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::WebhookFailed {
            id,
            error,
            retry_at,
            claimed_until,
        } => {
            sqlx::query("UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3 AND delivered_at IS NULL AND next_attempt_at = $4")
                .bind(error)
                .bind(retry_at.as_millis())
                .bind(id)
                .bind(claimed_until.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(Applied::Done)
        }
        Change::CountUnclassified { paths, at } => {
            for (path, seen) in paths {
                // PostgreSQL needs the existing row's `seen` qualified by the table's
                // name in DO UPDATE (a bare `seen` is ambiguous with `excluded.seen`).
                sqlx::query(
                    "INSERT INTO unclassified_fields (path, seen, first_seen, last_seen) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (path) DO UPDATE SET seen = unclassified_fields.seen + excluded.seen, last_seen = excluded.last_seen",
                )
                .bind(path)
                .bind(i64::try_from(seen).unwrap_or(i64::MAX))
                .bind(at.as_millis())
                .bind(at.as_millis())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            }
            Ok(Applied::Done)
        }
        Change::RequireLiveSession { .. }
        | Change::RequireAppKey { .. }
        | Change::LoadAccount(_)
        | Change::RequireConsent { .. }
        | Change::RequireAllowed { .. }
        | Change::RequireActiveStaff(_)
        | Change::RequireLedgerKeyCurrent => Err(StoreError::corrupt(
            "preconditions are checked by the writer, not applied",
        )),
        Change::EndSession { id, at, reason } => {
            end_session(conn, id, at, reason).await?;
            Ok(Applied::Done)
        }
    }
}

/// A risk's place in order, as the SQL above ranks stored names.
fn risk_rank(risk: actas_core::scope::Risk) -> u8 {
    match risk {
        actas_core::scope::Risk::Low => 0,
        actas_core::scope::Risk::Medium => 1,
        actas_core::scope::Risk::High => 2,
        actas_core::scope::Risk::Forbidden => 3,
    }
}

/// Ends a session that is still active; `Conflict` if it has ended already.
async fn end_session(
    conn: &mut PgConnection,
    id: actas_core::ids::SessionId,
    at: Timestamp,
    reason: actas_core::session::EndReason,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
    )
    .bind(at.as_millis())
    .bind(reason.as_str())
    .bind(id.to_string())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    expect_one(r.rows_affected(), || {
        StoreError::Conflict("this session has already ended".into())
    })
}

fn approved_by(r: &AccessRequest) -> Option<i64> {
    match r.approver {
        Some(Approver::Lead(s)) => Some(s.get()),
        _ => None,
    }
}

fn approver_kind(r: &AccessRequest) -> Option<&'static str> {
    match r.approver {
        Some(Approver::Lead(_)) => Some("lead"),
        Some(Approver::Policy) => Some("policy"),
        None => None,
    }
}

async fn record_decision(
    conn: &mut PgConnection,
    r: &AccessRequest,
    decision: &str,
    now: i64,
) -> StoreResult<()> {
    let by = match decision {
        "denied" => r.decided_by.map(|s| s.get()),
        _ => approved_by(r),
    };
    sqlx::query(
        "INSERT INTO approvals (request_id, decision, decided_by, scope, minutes, note, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.id.to_string())
    .bind(decision)
    .bind(by)
    .bind(json(&r.scope))
    .bind(i64::try_from(r.duration.minutes()).unwrap_or(i64::MAX))
    .bind(r.note.as_ref().map(|n| n.as_str().to_owned()))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_assertion_key(
    conn: &mut sqlx::PgConnection,
    key: &crate::model::AssertionKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO assertion_keys (kid, public, sealed, mac, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.kid)
    .bind(&key.public[..])
    .bind(key.sealed.as_deref())
    .bind(&key.mac)
    .bind(key.created_at.as_millis())
    .bind(key.retired_at.map(|t| t.as_millis()))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}
