//! Preconditions inside the writer's transaction: [`Change::RequireLiveSession`],
//! [`Change::RequireAppKey`], [`Change::LoadAccount`], and the rules a request or a
//! session must meet when it is made — [`Change::RequireConsent`],
//! [`Change::RequireAllowed`] and [`Change::RequireActiveStaff`].
//!
//! They decide rules where the data is, so nothing can change between the check and the
//! write (a consent revoked, an agent taken off the allow-list while their session
//! starts), and they let a hot path (a page view through the gateway, an event from the
//! product) skip its own read before committing: the writer reads what a whole batch's preconditions
//! need with one query per table, inside the transaction that holds SQLite's write lock,
//! so nothing — not even another `actas` process — can change it before the commit. The
//! answers stay valid for the batch until a unit with other changes (which might end a
//! session, revoke a key or change an account) is applied; after that each unit's
//! preconditions are read again for that unit alone.

use super::read;
use crate::change::{Applied, Change};
use crate::{StoreError, StoreResult};
use actas_core::account::Consent;
use actas_core::scope::Risk;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::{HashMap, HashSet};

/// Whether a change is a precondition (it writes nothing).
pub(super) fn is_check(change: &Change) -> bool {
    matches!(
        change,
        Change::RequireLiveSession { .. }
            | Change::RequireAppKey { .. }
            | Change::LoadAccount(_)
            | Change::RequireConsent { .. }
            | Change::RequireAllowed { .. }
            | Change::RequireActiveStaff(_)
    )
}

/// A session's limits as stored.
struct Limits {
    ended: bool,
    expires_at: i64,
    idle_limit_ms: i64,
    last_seen: i64,
}

/// What a set of preconditions found, read together.
#[derive(Default)]
pub(super) struct Checks {
    sessions: HashMap<String, Limits>,
    live_apps: HashSet<i64>,
    accounts: HashMap<String, crate::model::Account>,
    /// Staff on the allow-list, and up to which risk.
    allowed: HashMap<i64, (Risk, i64)>,
    /// Staff, and whether each is active.
    staff: HashMap<i64, bool>,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::LedgerUnavailable(Box::new(e))
}

/// Binds up to this many ids per `IN (...)` list, well under SQLite's limit.
const CHUNK: usize = 500;

impl Checks {
    /// Reads everything the preconditions among `changes` need: one query per kind.
    pub(super) async fn read(
        conn: &mut SqliteConnection,
        changes: &[&Change],
    ) -> StoreResult<Self> {
        let mut sessions = Vec::new();
        let mut apps = Vec::new();
        let mut accounts = Vec::new();
        let mut allowed = Vec::new();
        let mut staff = Vec::new();
        for change in changes {
            match change {
                Change::RequireLiveSession { id, .. } => sessions.push(id.to_string()),
                Change::RequireAppKey { app } => apps.push(*app),
                Change::LoadAccount(id) | Change::RequireConsent { account: id, .. } => {
                    accounts.push(id.as_str().to_owned())
                }
                Change::RequireAllowed { staff, .. } => allowed.push(staff.get()),
                Change::RequireActiveStaff(id) => staff.push(id.get()),
                _ => {}
            }
        }
        let mut out = Checks::default();
        for chunk in dedup(sessions).chunks(CHUNK) {
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
        for chunk in dedup(apps).chunks(CHUNK) {
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
        for chunk in dedup(accounts).chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT id, name, flags, consent FROM accounts WHERE id IN (",
            );
            list(&mut q, chunk);
            for row in q.build().fetch_all(&mut *conn).await.map_err(unavailable)? {
                let account = read::account(&row)?;
                out.accounts.insert(account.id.as_str().to_owned(), account);
            }
        }
        for chunk in dedup(allowed).chunks(CHUNK) {
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
        for chunk in dedup(staff).chunks(CHUNK) {
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

    /// The outcome of one precondition.
    pub(super) fn check(&self, change: &Change) -> StoreResult<Applied> {
        match change {
            Change::RequireLiveSession { id, at } => {
                let at = at.as_millis();
                match self.sessions.get(&id.to_string()) {
                    None => Err(StoreError::NotFound(format!("session {id}"))),
                    Some(s) if s.ended => {
                        Err(StoreError::Conflict("this session has ended".into()))
                    }
                    Some(s) if at >= s.expires_at => Err(StoreError::Conflict(
                        "this session has reached its time limit".into(),
                    )),
                    Some(s) if at >= s.last_seen.saturating_add(s.idle_limit_ms) => Err(
                        StoreError::Conflict("this session has been idle too long".into()),
                    ),
                    Some(_) => Ok(Applied::Done),
                }
            }
            Change::RequireAppKey { app } => {
                if self.live_apps.contains(app) {
                    Ok(Applied::Done)
                } else {
                    Err(StoreError::Revoked("this app key is not valid".into()))
                }
            }
            Change::LoadAccount(id) => self
                .accounts
                .get(id.as_str())
                .cloned()
                .map(Applied::Account)
                .ok_or_else(|| StoreError::NotFound(format!("account {id}"))),
            Change::RequireConsent { account, expected } => {
                match self.accounts.get(account.as_str()) {
                    None => Err(StoreError::NotFound(format!("account {account}"))),
                    Some(a) if a.consent == Consent::Revoked => Err(StoreError::Refused(format!(
                        "{} has revoked consent for support staff to act on the account; ask the customer to allow it again",
                        a.name
                    ))),
                    Some(a) if expected.is_some_and(|e| e != a.consent) => {
                        Err(StoreError::Refused(format!(
                            "{} changed their consent setting since this was asked for (it is now {}); make a new request",
                            a.name,
                            a.consent.as_str().replace('_', " ")
                        )))
                    }
                    Some(_) => Ok(Applied::Done),
                }
            }
            Change::RequireAllowed {
                staff,
                risk,
                reviewed_since,
            } => match self.allowed.get(&staff.get()) {
                None => Err(StoreError::Refused(
                    "you are not on the allow-list, so you can't act as a customer; ask a director"
                        .into(),
                )),
                Some((max, _)) if risk > max => Err(StoreError::Refused(format!(
                    "this scope is {risk} risk, and you are allowed up to {max} risk"
                ))),
                Some((_, reviewed))
                    if reviewed_since.is_some_and(|since| *reviewed < since.as_millis()) =>
                {
                    Err(StoreError::Refused(
                        actas_core::policy::SUSPENDED_FOR_REVIEW.into(),
                    ))
                }
                Some(_) => Ok(Applied::Done),
            },
            Change::RequireActiveStaff(id) => match self.staff.get(&id.get()) {
                Some(true) => Ok(Applied::Done),
                _ => Err(StoreError::Refused(
                    "your staff account is deactivated".into(),
                )),
            },
            _ => Err(StoreError::corrupt("not a precondition")),
        }
    }
}

fn dedup<T: std::hash::Hash + Eq + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
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
