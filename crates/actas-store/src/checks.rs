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

use crate::change::{Applied, Change};
use crate::{StoreError, StoreResult};
use actas_core::account::Consent;
use actas_core::scope::Risk;
use std::collections::{HashMap, HashSet};

/// Whether a change is a precondition (it writes nothing).
pub(crate) fn is_check(change: &Change) -> bool {
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
pub(crate) struct Limits {
    pub(crate) ended: bool,
    pub(crate) expires_at: i64,
    pub(crate) idle_limit_ms: i64,
    pub(crate) last_seen: i64,
}

/// What a set of preconditions found, read together by a backend (`read_checks`).
#[derive(Default)]
pub(crate) struct Checks {
    pub(crate) sessions: HashMap<String, Limits>,
    pub(crate) live_apps: HashSet<i64>,
    pub(crate) accounts: HashMap<String, crate::model::Account>,
    /// Staff on the allow-list, and up to which risk.
    pub(crate) allowed: HashMap<i64, (Risk, i64)>,
    /// Staff, and whether each is active.
    pub(crate) staff: HashMap<i64, bool>,
}

/// What a backend reads for the preconditions among a batch's changes.
#[derive(Default)]
pub(crate) struct Wanted {
    pub(crate) sessions: Vec<String>,
    pub(crate) apps: Vec<i64>,
    pub(crate) accounts: Vec<String>,
    pub(crate) allowed: Vec<i64>,
    pub(crate) staff: Vec<i64>,
}

impl Wanted {
    /// The distinct keys the preconditions among `changes` read, by table.
    pub(crate) fn of(changes: &[&Change]) -> Self {
        let mut w = Wanted::default();
        for change in changes {
            match change {
                Change::RequireLiveSession { id, .. } => w.sessions.push(id.to_string()),
                Change::RequireAppKey { app } => w.apps.push(*app),
                Change::LoadAccount(id) | Change::RequireConsent { account: id, .. } => {
                    w.accounts.push(id.as_str().to_owned())
                }
                Change::RequireAllowed { staff, .. } => w.allowed.push(staff.get()),
                Change::RequireActiveStaff(id) => w.staff.push(id.get()),
                _ => {}
            }
        }
        Wanted {
            sessions: dedup(w.sessions),
            apps: dedup(w.apps),
            accounts: dedup(w.accounts),
            allowed: dedup(w.allowed),
            staff: dedup(w.staff),
        }
    }
}

impl Checks {
    /// The outcome of one precondition.
    pub(crate) fn check(&self, change: &Change) -> StoreResult<Applied> {
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

pub(crate) fn dedup<T: std::hash::Hash + Eq + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}
