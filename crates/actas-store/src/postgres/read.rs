//! Reading rows back as domain types. A row that no longer parses is reported as a
//! storage error, never silently skipped.
//!
//! The PostgreSQL port of `sqlite::read`. Where a function takes a SQL clause from its
//! caller together with one value, the clause names that value `$1` (it is always the
//! query's first bind). Text columns are ordered with `COLLATE "C"` so rows come back in
//! the byte order SQLite's BINARY collation gives, whatever the database's collation.

use crate::model::{Account, AllowEntry, EventFilter, RecordedEvent, StaffRecord};
use crate::writer::to_hash;
use crate::{StoreError, StoreResult};
use actas_core::Timestamp;
use actas_core::event::EventBody;
use actas_core::ids::{AccountId, RequestId, SessionId, StaffId};
use actas_core::policy::SessionDuration;
use actas_core::request::{AccessRequest, Approver};
use actas_core::scope::Scope;
use actas_core::session::{ActiveSession, EndedSession, Session, SessionInfo};
use actas_core::staff::{DisplayName, Email, StaffRef};
use actas_core::text::{Note, Reason, TicketRef};
use actas_core::tree_head::{KeyId, SignedTreeHead, TreeHead};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::time::Duration;

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("a stored {what} is not valid: {e}"))
}

fn col<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    name: &str,
) -> StoreResult<T> {
    row.try_get(name).map_err(StoreError::unexpected)
}

fn staff_id(v: i64) -> StoreResult<StaffId> {
    StaffId::new(v).map_err(|e| bad("staff id", e))
}

fn staff_ref(row: &PgRow, prefix: &str) -> StoreResult<StaffRef> {
    Ok(StaffRef {
        id: staff_id(col(row, &format!("{prefix}id"))?)?,
        email: Email::parse(&col::<String>(row, &format!("{prefix}email"))?)
            .map_err(|e| bad("email", e))?,
        name: DisplayName::parse(&col::<String>(row, &format!("{prefix}name"))?)
            .map_err(|e| bad("name", e))?,
    })
}

fn staff_record(row: &PgRow) -> StoreResult<StaffRecord> {
    let r = staff_ref(row, "")?;
    Ok(StaffRecord {
        id: r.id,
        email: r.email,
        name: r.name,
        role: col::<String>(row, "role")?
            .parse()
            .map_err(|e| bad("role", e))?,
        password_hash: col(row, "password_hash")?,
        // `active` is a boolean column in PostgreSQL (0/1 in SQLite).
        active: col::<bool>(row, "active")?,
        created_at: Timestamp::from_millis(col(row, "created_at")?),
        failed_sign_ins: col::<i64>(row, "failed_sign_ins")? as u32,
        locked_until: col::<Option<i64>>(row, "locked_until")?.map(Timestamp::from_millis),
        totp: col::<Option<Vec<u8>>>(row, "totp_secret")?.map(crate::model::TotpSecret),
        totp_pending: col::<Option<Vec<u8>>>(row, "totp_pending")?.map(crate::model::TotpSecret),
        subject: col::<Option<String>>(row, "oidc_issuer")?
            .zip(col::<Option<String>>(row, "oidc_subject")?),
    })
}

/// The staff member `clause` names; the clause's value is `$1` (e.g. `"email = $1"`).
pub(super) async fn staff_where<T>(
    pool: &PgPool,
    clause: &str,
    value: T,
) -> StoreResult<Option<StaffRecord>>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let sql = format!(
        "SELECT id, email, name, role, password_hash, active, created_at, failed_sign_ins, locked_until, totp_secret, totp_pending, oidc_issuer, oidc_subject FROM staff WHERE {clause}"
    );
    let row = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::unexpected)?;
    row.as_ref().map(staff_record).transpose()
}

pub(super) async fn list_staff(pool: &PgPool) -> StoreResult<Vec<StaffRecord>> {
    let rows = sqlx::query(
        "SELECT id, email, name, role, password_hash, active, created_at, failed_sign_ins, locked_until, totp_secret, totp_pending, oidc_issuer, oidc_subject FROM staff ORDER BY name COLLATE \"C\", email COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::unexpected)?;
    rows.iter().map(staff_record).collect()
}

pub(super) async fn allow_list(
    pool: &PgPool,
    only: Option<StaffId>,
) -> StoreResult<Vec<AllowEntry>> {
    // One bind used twice (SQLite bound the same value twice for its two `?`).
    let rows = sqlx::query(
        "SELECT a.max_risk, a.granted_at, a.reason, a.revoked_at, a.revoke_reason, a.reviewed_at,
                s.id AS id, s.email AS email, s.name AS name,
                g.id AS g_id, g.email AS g_email, g.name AS g_name,
                r.id AS r_id, r.email AS r_email, r.name AS r_name
         FROM allow_list a
         JOIN staff s ON s.id = a.staff_id
         JOIN staff g ON g.id = a.granted_by
         LEFT JOIN staff r ON r.id = a.revoked_by
         WHERE ($1::bigint IS NULL OR a.staff_id = $1::bigint)
         ORDER BY s.name COLLATE \"C\", s.email COLLATE \"C\"",
    )
    .bind(only.map(StaffId::get))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unexpected)?;
    rows.iter()
        .map(|row| {
            let revoked_at: Option<i64> = col(row, "revoked_at")?;
            let revoked = match revoked_at {
                Some(at) => Some((
                    staff_ref(row, "r_")?,
                    Timestamp::from_millis(at),
                    Note::parse(&col::<Option<String>>(row, "revoke_reason")?.unwrap_or_default())
                        .map_err(|e| bad("note", e))?,
                )),
                None => None,
            };
            Ok(AllowEntry {
                staff: staff_ref(row, "")?,
                max_risk: col::<String>(row, "max_risk")?
                    .parse()
                    .map_err(|e| bad("risk", e))?,
                granted_by: staff_ref(row, "g_")?,
                granted_at: Timestamp::from_millis(col(row, "granted_at")?),
                reason: Note::parse(&col::<String>(row, "reason")?).map_err(|e| bad("note", e))?,
                revoked,
                reviewed_at: Timestamp::from_millis(
                    col::<Option<i64>>(row, "reviewed_at")?.unwrap_or(col(row, "granted_at")?),
                ),
            })
        })
        .collect()
}

pub(super) async fn accounts(pool: &PgPool, only: Option<&AccountId>) -> StoreResult<Vec<Account>> {
    // `flags` is jsonb; read as text so `account` gets the JSON string it parses.
    let rows = sqlx::query(
        "SELECT id, name, flags::text AS flags, consent FROM accounts
         WHERE ($1::text IS NULL OR id = $1::text)
         ORDER BY name COLLATE \"C\", id COLLATE \"C\"",
    )
    .bind(only.map(AccountId::as_str))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unexpected)?;
    rows.iter().map(account).collect()
}

/// An `accounts` row (columns `id, name, flags, consent`; select `flags::text AS flags`,
/// as `flags` is jsonb).
pub(super) fn account(row: &PgRow) -> StoreResult<Account> {
    Ok(Account {
        id: AccountId::parse(&col::<String>(row, "id")?).map_err(|e| bad("account id", e))?,
        name: DisplayName::parse(&col::<String>(row, "name")?).map_err(|e| bad("name", e))?,
        flags: serde_json::from_str(&col::<String>(row, "flags")?)
            .map_err(|e| bad("flag list", e))?,
        consent: col::<String>(row, "consent")?
            .parse()
            .map_err(|e| bad("consent", e))?,
    })
}

pub(super) async fn request(pool: &PgPool, id: RequestId) -> StoreResult<Option<AccessRequest>> {
    let Some(row) = sqlx::query("SELECT * FROM access_requests WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .map_err(StoreError::unexpected)?
    else {
        return Ok(None);
    };
    let approver = match col::<Option<String>>(&row, "approver")?.as_deref() {
        Some("policy") => Some(Approver::Policy),
        Some("lead") => Some(Approver::Lead(staff_id(col(&row, "approved_by")?)?)),
        _ => None,
    };
    Ok(Some(AccessRequest {
        id,
        requester: staff_id(col(&row, "requester")?)?,
        account: AccountId::parse(&col::<String>(&row, "account_id")?)
            .map_err(|e| bad("account id", e))?,
        ticket: TicketRef::try_from(col::<String>(&row, "ticket")?)
            .map_err(|e| bad("ticket", e))?,
        reason: Reason::parse(&col::<String>(&row, "reason")?).map_err(|e| bad("reason", e))?,
        scope: serde_json::from_str::<Scope>(&col::<String>(&row, "scope")?)
            .map_err(|e| bad("scope", e))?,
        duration: SessionDuration::stored(col::<i64>(&row, "minutes")? as u64),
        mode: col::<String>(&row, "mode")?
            .parse()
            .map_err(|e| bad("mode", e))?,
        risk: col::<String>(&row, "risk")?
            .parse()
            .map_err(|e| bad("risk", e))?,
        // boolean columns in PostgreSQL (0/1 in SQLite).
        needs_code: col::<bool>(&row, "needs_code")?,
        code_confirmed: col::<bool>(&row, "code_confirmed")?,
        code_failures: col::<i64>(&row, "code_failures")? as u32,
        locked: col::<Option<i64>>(&row, "locked_at")?.is_some(),
        status: col::<String>(&row, "status")?
            .parse()
            .map_err(|e| bad("status", e))?,
        created_at: Timestamp::from_millis(col(&row, "created_at")?),
        expires_at: Timestamp::from_millis(col(&row, "expires_at")?),
        approver,
        decided_by: col::<Option<i64>>(&row, "decided_by")?
            .map(staff_id)
            .transpose()?,
        note: col::<Option<String>>(&row, "note")?
            .map(|n| Note::parse(&n).map_err(|e| bad("note", e)))
            .transpose()?,
        for_session: col::<Option<String>>(&row, "for_session")?
            .map(|s| SessionId::parse(&s).map_err(|e| bad("session id", e)))
            .transpose()?,
    }))
}

/// The session `clause` names; the clause's value is `$1` (e.g. `"id = $1"`,
/// `"staff_id = $1 AND ended_at IS NULL"`).
pub(super) async fn session_where<T>(
    pool: &PgPool,
    clause: &str,
    value: T,
) -> StoreResult<Option<Session>>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let sql = format!("SELECT * FROM sessions WHERE {clause}");
    let Some(row) = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::unexpected)?
    else {
        return Ok(None);
    };
    session(&row).map(Some)
}

/// A `sessions` row.
pub(super) fn session(row: &PgRow) -> StoreResult<Session> {
    let info = SessionInfo {
        id: SessionId::parse(&col::<String>(row, "id")?).map_err(|e| bad("session id", e))?,
        request: RequestId::parse(&col::<String>(row, "request_id")?)
            .map_err(|e| bad("request id", e))?,
        staff: staff_id(col(row, "staff_id")?)?,
        account: AccountId::parse(&col::<String>(row, "account_id")?)
            .map_err(|e| bad("account id", e))?,
        scope: serde_json::from_str::<Scope>(&col::<String>(row, "scope")?)
            .map_err(|e| bad("scope", e))?,
        mode: col::<String>(row, "mode")?
            .parse()
            .map_err(|e| bad("mode", e))?,
        started_at: Timestamp::from_millis(col(row, "started_at")?),
        expires_at: Timestamp::from_millis(col(row, "expires_at")?),
        idle_limit: Duration::from_millis(col::<i64>(row, "idle_limit_ms")? as u64),
    };
    let ended_at: Option<i64> = col(row, "ended_at")?;
    Ok(match ended_at {
        None => Session::Active(ActiveSession::restore(
            info,
            Timestamp::from_millis(col(row, "last_seen")?),
        )),
        Some(at) => Session::Ended(EndedSession {
            info,
            ended_at: Timestamp::from_millis(at),
            reason: col::<Option<String>>(row, "end_reason")?
                .unwrap_or_default()
                .parse()
                .map_err(|e: String| bad("end reason", e))?,
        }),
    })
}

/// The active sessions `clause` names (on `s`, the sessions table; `r` is the session's
/// request), each with the names a `session.ended` event needs, read in the caller's
/// transaction. The clause's value is `$1` (e.g. `"s.staff_id = $1"`).
pub(super) async fn active_sessions_named<T>(
    conn: &mut sqlx::PgConnection,
    clause: &str,
    value: T,
) -> StoreResult<Vec<(ActiveSession, StaffRef, crate::model::Account, TicketRef)>>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let sql = format!(
        "SELECT s.*, st.id AS staff_id_, st.email AS staff_email, st.name AS staff_name,
                a.name AS account_name, a.flags::text AS account_flags, a.consent AS account_consent,
                r.ticket AS ticket
         FROM sessions s
         JOIN staff st ON st.id = s.staff_id
         JOIN accounts a ON a.id = s.account_id
         JOIN access_requests r ON r.id = s.request_id
         WHERE s.ended_at IS NULL AND {clause}"
    );
    let rows = sqlx::query(&sql)
        .bind(value)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::unexpected)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let Session::Active(active) = session(row)? else {
            continue;
        };
        let staff = StaffRef {
            id: staff_id(col(row, "staff_id_")?)?,
            email: Email::parse(&col::<String>(row, "staff_email")?)
                .map_err(|e| bad("email", e))?,
            name: DisplayName::parse(&col::<String>(row, "staff_name")?)
                .map_err(|e| bad("name", e))?,
        };
        let account = Account {
            id: active.info().account.clone(),
            name: DisplayName::parse(&col::<String>(row, "account_name")?)
                .map_err(|e| bad("name", e))?,
            flags: serde_json::from_str(&col::<String>(row, "account_flags")?)
                .map_err(|e| bad("flag list", e))?,
            consent: col::<String>(row, "account_consent")?
                .parse()
                .map_err(|e| bad("consent", e))?,
        };
        let ticket =
            TicketRef::try_from(col::<String>(row, "ticket")?).map_err(|e| bad("ticket", e))?;
        out.push((active, staff, account, ticket));
    }
    Ok(out)
}

/// Which end of the ledger a page of events starts from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Range {
    /// `seq > n`, oldest first.
    After(u64),
    /// `seq < n`, newest first.
    Before(u64),
}

pub(super) async fn events(
    pool: &PgPool,
    f: &EventFilter,
    range: Range,
    limit: u32,
) -> StoreResult<Vec<RecordedEvent>> {
    // Only the filters given go into the statement, so the planner can use the account and
    // session indexes (a `$n IS NULL OR account = $n` form, planned once for any value,
    // would scan the whole ledger). `push_bind` numbers the placeholders.
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT body, leaf_hash FROM ledger_events WHERE seq ",
    );
    let order = match range {
        Range::After(n) => {
            q.push("> ").push_bind(i64::try_from(n).unwrap_or(i64::MAX));
            " ORDER BY seq LIMIT "
        }
        Range::Before(n) => {
            q.push("< ").push_bind(i64::try_from(n).unwrap_or(i64::MAX));
            " ORDER BY seq DESC LIMIT "
        }
    };
    if let Some(a) = &f.account {
        q.push(" AND account = ").push_bind(a.as_str().to_owned());
    }
    if let Some(sid) = f.session {
        q.push(" AND session = ").push_bind(sid.to_string());
    }
    if let Some(k) = &f.kind {
        q.push(" AND kind = ").push_bind(k.clone());
    }
    if let Some(t) = f.since {
        q.push(" AND time >= ").push_bind(t.as_millis());
    }
    if let Some(t) = f.until {
        q.push(" AND time < ").push_bind(t.as_millis());
    }
    q.push(order).push_bind(i64::from(limit));
    let rows = q
        .build()
        .fetch_all(pool)
        .await
        .map_err(StoreError::unexpected)?;
    rows.iter()
        .map(|row| {
            let raw: String = col(row, "body")?;
            Ok(RecordedEvent {
                body: EventBody::decode(&raw).map_err(|e| bad("event", e))?,
                leaf_hash: to_hash(&col::<Vec<u8>>(row, "leaf_hash")?)?,
                raw,
            })
        })
        .collect()
}

pub(super) async fn tree_heads(pool: &PgPool) -> StoreResult<Vec<SignedTreeHead>> {
    type HeadRow = (i64, i64, Vec<u8>, String, Vec<u8>);
    let rows: Vec<HeadRow> =
        sqlx::query_as("SELECT size, time, root, key_id, signature FROM tree_heads ORDER BY size")
            .fetch_all(pool)
            .await
            .map_err(StoreError::unexpected)?;
    rows.into_iter()
        .map(|(size, time, root, key_id, sig)| {
            Ok(SignedTreeHead {
                head: TreeHead {
                    size: size as u64,
                    time: Timestamp::from_millis(time),
                    root: to_hash(&root)?,
                },
                key_id: KeyId::parse(&key_id).ok_or_else(|| bad("key id", &key_id))?,
                signature: sig
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("signature", "not 64 bytes"))?,
            })
        })
        .collect()
}

/// A stored confirmation code that may still be used.
pub(super) async fn open_codes(
    pool: &PgPool,
    account: &AccountId,
    now: Timestamp,
) -> StoreResult<Vec<crate::model::CodeRecord>> {
    let rows: Vec<(String, Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT id, salt, code_hash, expires_at FROM confirmation_codes
         WHERE account_id = $1 AND used_at IS NULL AND expires_at > $2 ORDER BY created_at",
    )
    .bind(account.as_str())
    .bind(now.as_millis())
    .fetch_all(pool)
    .await
    .map_err(StoreError::unexpected)?;
    Ok(rows
        .into_iter()
        .map(|(id, salt, hash, expires)| crate::model::CodeRecord {
            id,
            salt,
            hash,
            expires_at: Timestamp::from_millis(expires),
        })
        .collect())
}

/// The ids of the sessions `clause` names, oldest first. The clause binds nothing (no
/// placeholders), e.g. `"ended_at IS NULL"`.
pub(super) async fn session_ids(pool: &PgPool, clause: &str) -> StoreResult<Vec<SessionId>> {
    let sql = format!("SELECT id FROM sessions WHERE {clause} ORDER BY started_at");
    let ids: Vec<String> = sqlx::query_scalar(&sql)
        .fetch_all(pool)
        .await
        .map_err(StoreError::unexpected)?;
    ids.iter()
        .map(|i| SessionId::parse(i).map_err(|e| bad("session id", e)))
        .collect()
}

/// The ids of the requests `clause` names, oldest first. The clause binds nothing (no
/// placeholders), e.g. `"status = 'pending'"`; `needs_code` and `code_confirmed` are
/// booleans (`needs_code AND NOT code_confirmed`).
pub(super) async fn request_ids(pool: &PgPool, clause: &str) -> StoreResult<Vec<RequestId>> {
    let sql = format!("SELECT id FROM access_requests WHERE {clause} ORDER BY created_at");
    let ids: Vec<String> = sqlx::query_scalar(&sql)
        .fetch_all(pool)
        .await
        .map_err(StoreError::unexpected)?;
    ids.iter()
        .map(|i| RequestId::parse(i).map_err(|e| bad("request id", e)))
        .collect()
}

/// A staff member's requests, newest first.
pub(super) async fn request_ids_of(
    pool: &PgPool,
    staff: StaffId,
    limit: u32,
) -> StoreResult<Vec<RequestId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM access_requests WHERE requester = $1 ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $2",
    )
    .bind(staff.get())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::unexpected)?;
    ids.iter()
        .map(|i| RequestId::parse(i).map_err(|e| bad("request id", e)))
        .collect()
}

fn app_ref(id: i64, name: &str) -> StoreResult<actas_core::app::AppRef> {
    Ok(actas_core::app::AppRef {
        id,
        name: actas_core::app::AppName::parse(name).map_err(|e| bad("app name", e))?,
    })
}

/// The app keys `clause` names, by name. With `bind`, the clause's value is `$1` (e.g.
/// `"key_hash = $1 AND revoked_at IS NULL"`); without, the clause has no placeholders.
pub(super) async fn app_keys(
    pool: &PgPool,
    clause: &str,
    bind: Option<&[u8]>,
) -> StoreResult<Vec<crate::AppKey>> {
    let sql = format!(
        "SELECT id, name, webhook_url, created_at, revoked_at FROM app_keys WHERE {clause} ORDER BY name COLLATE \"C\""
    );
    let mut q = sqlx::query_as::<_, (i64, String, Option<String>, i64, Option<i64>)>(&sql);
    if let Some(b) = bind {
        q = q.bind(b);
    }
    let rows = q.fetch_all(pool).await.map_err(StoreError::unexpected)?;
    rows.into_iter()
        .map(|(id, name, webhook_url, created, revoked)| {
            Ok(crate::AppKey {
                app: app_ref(id, &name)?,
                webhook_url,
                created_at: Timestamp::from_millis(created),
                revoked_at: revoked.map(Timestamp::from_millis),
            })
        })
        .collect()
}

pub(super) async fn webhooks_by_id(
    conn: &mut sqlx::PgConnection,
    ids: &[i64],
) -> StoreResult<Vec<crate::DueWebhook>> {
    type Row = (i64, i64, String, String, String, String, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT o.id, a.id, a.name, a.webhook_url, a.webhook_secret, o.body, o.attempts \
         FROM webhook_outbox o JOIN app_keys a ON a.id = o.app_id WHERE o.id = ANY($1) ORDER BY o.id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::unexpected)?;
    rows.into_iter()
        .map(|(id, app, name, url, secret, body, attempts)| {
            Ok(crate::DueWebhook {
                id,
                app: app_ref(app, &name)?,
                url,
                secret,
                body,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Ended sessions with their review counts (see [`crate::Store::ended_sessions`]): one
/// query, the counts read through the ledger's session index.
pub(super) async fn ended_sessions(
    pool: &PgPool,
    which: crate::EndedSessions,
    limit: u32,
) -> StoreResult<Vec<crate::EndedForReview>> {
    // SQLite let the WHERE clause name these select-list aliases; PostgreSQL does not, so
    // they are computed in a LATERAL subquery `c` the clause can name.
    const COUNTS: &str = "
         CROSS JOIN LATERAL (SELECT
           (SELECT count(*) FROM ledger_events e WHERE e.session = s.id AND e.kind = 'session.action') AS changes,
           (SELECT count(*) FROM ledger_events e WHERE e.session = s.id AND e.kind = 'session.blocked') AS blocks,
           (SELECT count(*) FROM access_requests q WHERE q.for_session = s.id) AS scope_changes,
           (SELECT count(*) FROM ledger_events e WHERE e.session = s.id AND e.kind = 'session.note') AS notes,
           (SELECT ticket FROM access_requests q WHERE q.id = s.request_id) AS ticket) c";
    // Binds: $1 and $2 as below, $3 the limit, $4 the sensitive flags (a JSON array).
    let (clause, order, a, b, flags) = match which {
        // The flags are decided here as `actas_core::review::flags` decides them (a test
        // holds the two together), so the queue reads only what needs a review.
        crate::EndedSessions::Open {
            reviewed_since,
            sample_percent,
            sensitive_flags,
        } => (
            "(r.id IS NULL AND (s.review_bucket < $2
                 OR s.end_reason IN ('consent_revoked', 'scope_changed')
                 OR c.changes > 0 OR c.blocks > 0 OR c.scope_changes > 0
                 OR EXISTS (SELECT 1 FROM accounts a, jsonb_array_elements_text(a.flags) AS f(value)
                            WHERE a.id = s.account_id
                              AND f.value IN (SELECT v.value FROM jsonb_array_elements_text($4::text::jsonb) AS v(value)))))
             OR r.outcome = 'follow_up'
             OR (r.id IS NOT NULL AND s.ended_at >= $1)",
            "ASC",
            reviewed_since.as_millis(),
            i64::from(sample_percent),
            serde_json::to_string(&sensitive_flags).map_err(StoreError::unexpected)?,
        ),
        // `$4` is bound either way (one statement shape); here it is only compared with itself.
        crate::EndedSessions::EndedBetween(from, to) => (
            "s.ended_at >= $1 AND s.ended_at < $2 AND $4::text = $4::text",
            "DESC",
            from.as_millis(),
            to.as_millis(),
            String::new(),
        ),
    };
    let sql = format!(
        "SELECT s.*, c.changes, c.blocks, c.scope_changes, c.notes, c.ticket,
           r.reviewer AS r_reviewer, r.outcome AS r_outcome, r.note AS r_note, r.reviewed_at AS r_at
         FROM sessions s
         {COUNTS}
         LEFT JOIN session_reviews r ON r.id =
           (SELECT max(sr.id) FROM session_reviews sr WHERE sr.session_id = s.id)
         WHERE s.ended_at IS NOT NULL AND ({clause})
         ORDER BY s.ended_at {order}, s.id COLLATE \"C\" LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(a)
        .bind(b)
        .bind(i64::from(limit))
        .bind(flags)
        .fetch_all(pool)
        .await
        .map_err(StoreError::unexpected)?;
    rows.iter()
        .map(|row| {
            let Session::Ended(session) = session(row)? else {
                return Err(StoreError::corrupt("an ended session without an end"));
            };
            let count = |name: &str| col::<i64>(row, name).map(|n| n.max(0) as u64);
            let review = match col::<Option<i64>>(row, "r_reviewer")? {
                None => None,
                Some(reviewer) => Some(crate::SessionReview {
                    reviewer: staff_id(reviewer)?,
                    outcome: actas_core::review::Outcome::parse(&col::<String>(row, "r_outcome")?)
                        .map_err(|e| bad("review outcome", e))?,
                    note: col::<Option<String>>(row, "r_note")?
                        .map(|n| Note::parse(&n).map_err(|e| bad("review note", e)))
                        .transpose()?,
                    at: Timestamp::from_millis(col(row, "r_at")?),
                }),
            };
            Ok(crate::EndedForReview {
                session,
                changes: count("changes")?,
                blocks: count("blocks")?,
                scope_changes: count("scope_changes")?,
                notes: count("notes")?,
                review_bucket: col::<i64>(row, "review_bucket")?.clamp(0, 99) as u8,
                ticket: actas_core::text::TicketRef::try_from(col::<String>(row, "ticket")?)
                    .map_err(|e| bad("ticket", e))?,
                review,
            })
        })
        .collect()
}
