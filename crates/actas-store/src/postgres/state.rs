//! The PostgreSQL store's reads of state (staff, accounts, requests, sessions, sign-ins, apps, outbox, reviews, page copies).
//!
//! Each method here is the body of the [`crate::Store`] method of the same name without
//! the trailing underscore; `impl Store for PgStore` delegates to them.

use super::{PgStore, read};
use crate::model::{Account, AllowEntry, StaffRecord};
use crate::{StoreError, StoreResult};
use actas_core::ids::{AccountId, RequestId, SessionId, StaffId};
use actas_core::request::AccessRequest;
use actas_core::session::{ActiveSession, Session};
use actas_core::staff::Email;

impl PgStore {
    /// A staff member by email.
    pub(super) async fn staff_by_email_(&self, email: &Email) -> StoreResult<Option<StaffRecord>> {
        read::staff_where(&self.pool, "email = $1", email.as_str().to_owned()).await
    }

    /// A staff member by id.
    pub(super) async fn staff_(&self, id: StaffId) -> StoreResult<Option<StaffRecord>> {
        read::staff_where(&self.pool, "id = $1", id.get()).await
    }

    /// All staff, by name.
    pub(super) async fn list_staff_(&self) -> StoreResult<Vec<StaffRecord>> {
        read::list_staff(&self.pool).await
    }

    /// The allow-list, current and revoked entries.
    pub(super) async fn allow_list_(&self) -> StoreResult<Vec<AllowEntry>> {
        read::allow_list(&self.pool, None).await
    }

    /// A staff member's current allow-list entry, if not revoked.
    pub(super) async fn allowed_(&self, staff: StaffId) -> StoreResult<Option<AllowEntry>> {
        Ok(read::allow_list(&self.pool, Some(staff))
            .await?
            .into_iter()
            .find(|e| e.revoked.is_none()))
    }

    /// An account.
    pub(super) async fn account_(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        Ok(read::accounts(&self.pool, Some(id))
            .await?
            .into_iter()
            .next())
    }

    /// All accounts, by name.
    pub(super) async fn list_accounts_(&self) -> StoreResult<Vec<Account>> {
        read::accounts(&self.pool, None).await
    }

    /// An access request.
    pub(super) async fn request_(&self, id: RequestId) -> StoreResult<Option<AccessRequest>> {
        read::request(&self.pool, id).await
    }

    /// A session.
    pub(super) async fn session_(&self, id: SessionId) -> StoreResult<Option<Session>> {
        read::session_where(&self.pool, "id = $1", id.to_string()).await
    }

    /// A console sign-in by the SHA-256 of its cookie value.
    pub(super) async fn login_(&self, token_hash: &[u8; 32]) -> StoreResult<Option<crate::Login>> {
        let row: Option<(i64, String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT staff_id, csrf, authenticated_at, expires_at, ended_at FROM staff_logins WHERE token_hash = $1",
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

    /// The staff member owning an unrevoked API token, by the token's SHA-256.
    pub(super) async fn api_token_owner_(&self, hash: &[u8; 32]) -> StoreResult<Option<StaffId>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT staff_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        id.map(|i| StaffId::new(i).map_err(StoreError::unexpected))
            .transpose()
    }

    /// A gateway cookie's record, by the cookie's SHA-256.
    pub(super) async fn gateway_login_(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<crate::GatewayLogin>> {
        type Row = (String, String, String, String, String);
        let row: Option<Row> = sqlx::query_as(
            "SELECT session_id, csrf, staff, account, ticket FROM gateway_logins WHERE token_hash = $1",
        )
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

    /// The session a hand-off token (by its SHA-256) was issued for, used or not.
    pub(super) async fn handoff_session_(&self, hash: &[u8; 32]) -> StoreResult<Option<SessionId>> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT session_id FROM handoff_tokens WHERE token_hash = $1")
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::unexpected)?;
        id.map(|i| SessionId::parse(&i).map_err(StoreError::unexpected))
            .transpose()
    }

    /// Every active session (for the reaper and the console).
    pub(super) async fn active_sessions_(&self) -> StoreResult<Vec<ActiveSession>> {
        let mut out = Vec::new();
        for id in read::session_ids(&self.pool, "ended_at IS NULL").await? {
            if let Some(Session::Active(a)) = self.session_(id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Requests waiting for a lead, oldest first.
    pub(super) async fn pending_requests_(&self) -> StoreResult<Vec<AccessRequest>> {
        let mut out = Vec::new();
        for id in read::request_ids(&self.pool, "status = 'pending'").await? {
            if let Some(r) = self.request_(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Approved requests still waiting for the customer's confirmation code (not locked),
    /// oldest first.
    pub(super) async fn requests_awaiting_code_(&self) -> StoreResult<Vec<AccessRequest>> {
        // `needs_code` and `code_confirmed` are `boolean` columns in PostgreSQL.
        let clause =
            "status = 'approved' AND needs_code AND NOT code_confirmed AND locked_at IS NULL";
        let mut out = Vec::new();
        for id in read::request_ids(&self.pool, clause).await? {
            if let Some(r) = self.request_(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// One staff member's own requests, newest first, at most `limit`.
    pub(super) async fn requests_of_(
        &self,
        staff: StaffId,
        limit: u32,
    ) -> StoreResult<Vec<AccessRequest>> {
        let mut out = Vec::new();
        for id in read::request_ids_of(&self.pool, staff, limit).await? {
            if let Some(r) = self.request_(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// An app key that is not revoked, by the SHA-256 of the key.
    pub(super) async fn app_key_by_hash_(
        &self,
        hash: &[u8; 32],
    ) -> StoreResult<Option<crate::AppKey>> {
        Ok(read::app_keys(
            &self.pool,
            "key_hash = $1 AND revoked_at IS NULL",
            Some(&hash[..]),
        )
        .await?
        .into_iter()
        .next())
    }

    /// Every app key, revoked ones too.
    pub(super) async fn app_keys_(&self) -> StoreResult<Vec<crate::AppKey>> {
        read::app_keys(&self.pool, "1 = 1", None).await
    }

    /// The request hash recorded for an app's idempotency key, if the key was used.
    pub(super) async fn idempotency_key_(
        &self,
        app: i64,
        key: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        // `key` is a non-reserved keyword in PostgreSQL, usable as a column name as is.
        sqlx::query_scalar(
            "SELECT request_hash FROM idempotency_keys WHERE app_id = $1 AND key = $2",
        )
        .bind(app)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unexpected)
    }

    /// Notifications due at `now`, oldest first.
    /// How the notification outbox stands.
    pub(super) async fn outbox_stats_(&self) -> StoreResult<crate::OutboxStats> {
        // SQLite summed boolean expressions (0/1); PostgreSQL counts with FILTER, which is
        // a bigint and 0 (not NULL) over no rows.
        let (pending, failing, delivered): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE delivered_at IS NULL), \
                    count(*) FILTER (WHERE delivered_at IS NULL AND attempts > 0), \
                    count(*) FILTER (WHERE delivered_at IS NOT NULL) \
             FROM webhook_outbox",
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

    /// Sessions on an account, newest first: `limit` of them after skipping `offset`.
    pub(super) async fn account_sessions_(
        &self,
        account: &AccountId,
        offset: u32,
        limit: u32,
    ) -> StoreResult<Vec<Session>> {
        // `COLLATE "C"` orders the tie-breaking ids by their bytes, as SQLite's BINARY
        // collation does, whatever the database's default collation is.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE account_id = $1 ORDER BY started_at DESC, id COLLATE \"C\" LIMIT $2 OFFSET $3",
        )
        .bind(account.as_str())
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unexpected)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id = SessionId::parse(&id).map_err(StoreError::unexpected)?;
            if let Some(s) = self.session_(id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Ended sessions with their review counts, newest ended first, at most `limit`.
    pub(super) async fn ended_sessions_(
        &self,
        which: crate::EndedSessions,
        limit: u32,
    ) -> StoreResult<Vec<crate::EndedForReview>> {
        read::ended_sessions(&self.pool, which, limit).await
    }

    /// The kept copy of a session's page view (`page_seq`), if it is kept.
    pub(super) async fn page_copy_(
        &self,
        session: SessionId,
        page_seq: u64,
    ) -> StoreResult<Option<crate::PageCopy>> {
        type Row = (String, String, Vec<u8>, Vec<u8>, i64);
        let row: Option<Row> = sqlx::query_as(
            "SELECT path, content_type, sha256, gzip, kept_at FROM page_copies WHERE session_id = $1 AND page_seq = $2",
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

    /// When the oldest kept page copy was kept, if any is.
    pub(super) async fn oldest_page_copy_(&self) -> StoreResult<Option<actas_core::Timestamp>> {
        // `min` of a bigint column is a bigint (NULL over no rows).
        let at: Option<i64> = sqlx::query_scalar("SELECT min(kept_at) FROM page_copies")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::unexpected)?;
        Ok(at.map(actas_core::Timestamp::from_millis))
    }

    /// The JSON paths no masking rule classified, most often seen first.
    pub(super) async fn unclassified_fields_(&self) -> StoreResult<Vec<crate::UnclassifiedField>> {
        // `COLLATE "C"`: paths of equal counts in byte order, as SQLite's BINARY collation.
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT path, seen, first_seen, last_seen FROM unclassified_fields ORDER BY seen DESC, path COLLATE \"C\"",
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

    /// An account's confirmation codes that are unused and unexpired at `now`.
    pub(super) async fn open_codes_(
        &self,
        account: &AccountId,
        now: actas_core::Timestamp,
    ) -> StoreResult<Vec<crate::CodeRecord>> {
        read::open_codes(&self.pool, account, now).await
    }

    /// A staff member's active session, if any.
    pub(super) async fn active_session_of_(
        &self,
        staff: StaffId,
    ) -> StoreResult<Option<ActiveSession>> {
        match read::session_where(
            &self.pool,
            "staff_id = $1 AND ended_at IS NULL",
            staff.get(),
        )
        .await?
        {
            Some(Session::Active(a)) => Ok(Some(a)),
            _ => Ok(None),
        }
    }
}
