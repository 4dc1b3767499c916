//! The customer's side, as the product passes it on with its app key: account sync,
//! consent, what the customer did (customer activity), access history and the names of
//! the staff who acted on the account.

use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::account::{AccountRef, Consent};
use actas_core::activity::ActivityKind;
use actas_core::app::AppRef;
use actas_core::event::{Actor, EventData, FieldChange, NewEvent};
use actas_core::ids::AccountId;
use actas_core::session::{EndReason, Session};
use actas_core::words;
use actas_store::{Account, Applied, Change, EventFilter, SessionsOf, StoreError, Unit};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The most events one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// One thing the customer did, as the product reports it (`POST /api/v1/events`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    /// The account.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
    pub account: String,
    /// The kind, e.g. `agreement_signed`: one the policy knows.
    #[serde(default)]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub kind: String,
    /// Values the kind's sentence names, e.g. `{"document": "the loan agreement LA-77"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
    /// What changed: `[{field, from, to}]`; values are masked by policy before recording.
    #[serde(default)]
    pub changes: Vec<ChangeInput>,
    /// Makes a retry safe: the same key from the same app is recorded once.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What `POST /api/v1/events` takes: one activity, or `{"events": [...]}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Reported {
    /// A batch, recorded all or nothing.
    Batch(Batch),
    /// One activity.
    One(ActivityInput),
}

/// Up to [`MAX_BATCH`] activities, recorded all or nothing.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The activities, in order.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<ActivityInput>,
}

/// One changed field as the product reports it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInput {
    /// The field, e.g. `email`.
    pub field: String,
    /// Before.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub from: Option<Value>,
    /// After.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub to: Option<Value>,
}

/// What became of one reported activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// Its ledger sequence number (absent for a repeat of an earlier idempotency key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// True when the idempotency key was seen before and nothing new was written.
    pub duplicate: bool,
}

/// A checked activity, ready to record once its account is read (by the commit itself).
#[derive(Clone)]
struct Checked {
    account: AccountId,
    activity: ActivityKind,
    description: String,
    changes: Vec<FieldChange>,
    idempotency: Option<(String, [u8; 32])>,
}

impl Checked {
    /// The event, naming the account as the commit read it.
    fn event(&self, account: AccountRef, app: &AppRef) -> NewEvent {
        NewEvent::new(
            Actor::Customer(account.clone()),
            EventData::CustomerActivity {
                account,
                activity: self.activity.clone(),
                description: self.description.clone(),
                changes: self.changes.clone(),
                reported_by: app.clone(),
            },
        )
    }
}

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The most sessions one page of an account's access history holds.
pub const MAX_PER_PAGE: u32 = 100;

/// The most changed fields one reported activity may carry.
pub const MAX_CHANGES: usize = 50;

/// The longest value before or after a change, in characters (JSON other than text
/// counts as written): an address or a phone number, never a document.
pub const MAX_CHANGE_VALUE: usize = 1000;

impl Service {
    /// Creates or updates an account for the product, recorded as the app's doing.
    pub async fn sync_account(
        &self,
        app: &AppRef,
        id: &str,
        name: &str,
        flags: &[String],
    ) -> ServiceResult<Account> {
        self.put_account(id, name, flags, Actor::App(app.clone()))
            .await
    }

    /// Sets an account's consent, as the customer chose it in the product. Revoking ends
    /// every active session on the account at once (`consent_revoked`): the writer finds
    /// them in the same transaction as the change, so a session starting at that moment
    /// either is among them or is refused for the revoked consent.
    pub async fn set_consent(
        &self,
        app: &AppRef,
        id: &str,
        consent: &str,
    ) -> ServiceResult<Account> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        let consent: Consent = consent
            .parse()
            .map_err(|e| ServiceError::invalid("consent", e))?;
        let mut changes = vec![
            Change::LoadAccount(id.clone()),
            Change::SetConsent {
                account: id.clone(),
                consent,
            },
        ];
        if consent == Consent::Revoked {
            changes.push(Change::EndSessionsOf {
                whose: SessionsOf::Account(id.clone()),
                reason: EndReason::ConsentRevoked,
                at: Timestamp::now(),
            });
        }
        let app = app.clone();
        self.store
            .commit(Unit::new(changes, move |applied| {
                let Some(Applied::Account(account)) = applied.first() else {
                    return Vec::new();
                };
                let customer = Actor::Customer(account.to_ref());
                let mut events = vec![NewEvent::new(
                    customer.clone(),
                    EventData::ConsentChanged {
                        account: account.to_ref(),
                        consent,
                        via: Some(app),
                    },
                )];
                events.extend(super::sessions::ended_events(applied, &customer));
                events
            }))
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    ServiceError::NotFound(format!("there is no account {id}"))
                }
                other => other.into(),
            })?;
        self.account(&id).await
    }

    /// Checks one reported activity: the kind exists, its sentence can be filled, and
    /// before/after values are masked by policy. Whether the account exists is settled by
    /// the commit, which reads it. `at` names the item in a batch (`events[3]`) so errors
    /// point at it.
    fn check_activity(&self, input: &ActivityInput, at: &str) -> ServiceResult<Checked> {
        let field = |name: &str| format!("{at}{name}");
        let id = AccountId::parse(&input.account)
            .map_err(|e| ServiceError::invalid(field("account"), e))?;
        let kind = ActivityKind::parse(&input.kind)
            .map_err(|e| ServiceError::invalid(field("kind"), e))?;
        let policy = self.policy();
        let template = policy.activity(&kind).ok_or_else(|| {
            let known: Vec<String> = policy.activities().map(|(k, _)| k.to_string()).collect();
            ServiceError::invalid(
                field("kind"),
                format!(
                    "the policy has no kind of customer activity called {kind}; known: {}",
                    known.join(", ")
                ),
            )
        })?;
        let description = template.fill(&input.details).map_err(|e| match e {
            actas_core::activity::ActivityError::Missing(ref name)
            | actas_core::activity::ActivityError::TooLong(ref name) => {
                ServiceError::invalid(field(&format!("details.{name}")), &e)
            }
            other => ServiceError::invalid(field("details"), other),
        })?;
        if input.changes.len() > MAX_CHANGES {
            return Err(ServiceError::invalid(
                field("changes"),
                format!("one activity reports at most {MAX_CHANGES} changed fields"),
            ));
        }
        let mut changes = Vec::with_capacity(input.changes.len());
        for (i, c) in input.changes.iter().enumerate() {
            let name = c.field.trim();
            if name.is_empty() || name.len() > 80 {
                return Err(ServiceError::invalid(
                    field(&format!("changes[{i}].field")),
                    "name the field in 1 to 80 characters",
                ));
            }
            for (side, value) in [("from", &c.from), ("to", &c.to)] {
                let length = match value {
                    Some(Value::String(s)) => s.chars().count(),
                    Some(other) => other.to_string().chars().count(),
                    None => 0,
                };
                if length > MAX_CHANGE_VALUE {
                    return Err(ServiceError::invalid(
                        field(&format!("changes[{i}].{side}")),
                        format!(
                            "a value before or after a change is at most {MAX_CHANGE_VALUE} characters"
                        ),
                    ));
                }
            }
            changes.push(FieldChange {
                field: name.replace('_', " "),
                from: self.masked_value(name, c.from.as_ref()),
                to: self.masked_value(name, c.to.as_ref()),
            });
        }
        let idempotency = match &input.idempotency_key {
            Some(k) if k.trim().is_empty() || k.len() > MAX_IDEMPOTENCY_KEY => {
                return Err(ServiceError::invalid(
                    field("idempotency_key"),
                    format!("give 1 to {MAX_IDEMPOTENCY_KEY} characters"),
                ));
            }
            Some(k) => {
                let canonical = serde_json::to_vec(input).unwrap_or_default();
                Some((k.clone(), Sha256::digest(&canonical).into()))
            }
            None => None,
        };
        Ok(Checked {
            account: id,
            activity: kind,
            description,
            changes,
            idempotency,
        })
    }

    /// A before/after value, masked by the policy's JSON rules as `$.<field>` (the one
    /// rule for values the product reports, through the API or in `Actas-Audit`).
    pub fn masked_value(&self, field: &str, value: Option<&Value>) -> Option<String> {
        let value = value.filter(|v| !v.is_null())?;
        let key = field.trim().to_lowercase().replace(' ', "_");
        let mut doc = serde_json::json!({ key.clone(): value });
        let policy = self.policy();
        let report = actas_core::mask::mask_json(&mut doc, policy.masking(), policy.unclassified);
        self.note_unclassified(report.unclassified);
        doc.get(&key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Records what the customer did, as reported by `app`: every item is checked first,
    /// and if any is invalid nothing is written. Items whose idempotency key was used
    /// before are not written again; reusing a key for different content is refused.
    pub async fn record_activities(
        &self,
        app: &AppRef,
        inputs: &[ActivityInput],
        batch: bool,
    ) -> ServiceResult<Vec<Recorded>> {
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(ServiceError::invalid(
                "events",
                format!("send 1 to {MAX_BATCH} events"),
            ));
        }
        let mut checked = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let at = if batch {
                format!("events[{i}].")
            } else {
                String::new()
            };
            checked.push(self.check_activity(input, &at)?);
        }
        // A key repeated inside one batch is one event.
        let mut seen = std::collections::HashSet::new();
        for (i, c) in checked.iter().enumerate() {
            if let Some((key, _)) = &c.idempotency
                && !seen.insert(key.clone())
            {
                return Err(ServiceError::invalid(
                    format!("events[{i}].idempotency_key"),
                    "this key is used twice in the batch",
                ));
            }
        }
        // The first attempt claims every key without looking (a new key is the common
        // case, and the claim is atomic); if one was taken, later attempts look each key up
        // to tell a repeat from a reuse. Concurrent retries race to claim a key; the loser
        // finds it claimed next time.
        for attempt in 0..3 {
            match self.commit_activities(app, &checked, attempt > 0).await {
                Err(ServiceError::Conflict(_)) if attempt < 2 => continue,
                Err(ServiceError::NotFound(_)) => {
                    return Err(self.missing_account(&checked, batch).await);
                }
                Err(e @ ServiceError::Unauthenticated(_)) => {
                    self.forget_app(app.id);
                    return Err(e);
                }
                other => return other,
            }
        }
        Err(ServiceError::Conflict(
            "the same idempotency keys are being sent at the same time; try again".into(),
        ))
    }

    async fn commit_activities(
        &self,
        app: &AppRef,
        checked: &[Checked],
        look_first: bool,
    ) -> ServiceResult<Vec<Recorded>> {
        let mut out = vec![
            Recorded {
                seq: None,
                duplicate: true
            };
            checked.len()
        ];
        // The commit checks the app key is still live and reads each account, so the
        // request itself reads nothing before it.
        let mut changes = vec![Change::RequireAppKey { app: app.id }];
        let mut accounts = Vec::new();
        let mut fresh = Vec::new();
        let now = Timestamp::now();
        for (i, c) in checked.iter().enumerate() {
            if let Some((key, hash)) = &c.idempotency {
                let previous = if look_first {
                    self.store.idempotency_key(app.id, key).await?
                } else {
                    None
                };
                if let Some(previous) = previous {
                    if previous.as_slice() != hash {
                        return Err(ServiceError::invalid(
                            "idempotency_key",
                            format!(
                                "the key {key:?} was already used for a different event; use a new key for a new event"
                            ),
                        ));
                    }
                    continue;
                }
                changes.push(Change::ClaimIdempotencyKey {
                    app: app.id,
                    key: key.clone(),
                    request_hash: *hash,
                    at: now,
                });
            }
            if !accounts.contains(&c.account) {
                accounts.push(c.account.clone());
            }
            fresh.push(i);
        }
        if fresh.is_empty() {
            return Ok(out);
        }
        changes.extend(accounts.into_iter().map(Change::LoadAccount));
        let pending: Vec<Checked> = fresh.iter().map(|&i| checked[i].clone()).collect();
        let app = app.clone();
        let events = move |applied: &[Applied]| {
            let named: Vec<&Account> = applied
                .iter()
                .filter_map(|a| match a {
                    Applied::Account(account) => Some(account),
                    _ => None,
                })
                .collect();
            pending
                .iter()
                .filter_map(|c| {
                    let account = named.iter().find(|a| a.id == c.account)?;
                    Some(c.event(account.to_ref(), &app))
                })
                .collect()
        };
        let appended = self
            .store
            .commit(Unit::new(changes, events))
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(m) => ServiceError::Conflict(m),
                other => other.into(),
            })?;
        for (i, a) in fresh.into_iter().zip(appended) {
            out[i] = Recorded {
                seq: Some(a.seq),
                duplicate: false,
            };
        }
        Ok(out)
    }

    /// The error for a batch naming an account that doesn't exist: which item, and why.
    async fn missing_account(&self, checked: &[Checked], batch: bool) -> ServiceError {
        for (i, c) in checked.iter().enumerate() {
            match self.store.account(&c.account).await {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    let field = if batch {
                        format!("events[{i}].account")
                    } else {
                        "account".to_owned()
                    };
                    return ServiceError::invalid(
                        field,
                        format!("there is no account {}", c.account),
                    );
                }
                Err(e) => return e.into(),
            }
        }
        ServiceError::Conflict("an account was removed while the events were recorded".into())
    }

    /// Support sessions on an account, newest first, with what was done in each, for the
    /// customer (`page` from 0, `per_page` sessions a page).
    pub async fn access_history(
        &self,
        id: &str,
        page: u32,
        per_page: u32,
    ) -> ServiceResult<Vec<AccessRecord>> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ServiceError::invalid(
                "per_page",
                format!("per_page is 1 to {MAX_PER_PAGE} sessions a page"),
            ));
        }
        let account = self.account(&id).await?;
        let sessions = self
            .store
            .account_sessions(&account.id, page.saturating_mul(per_page), per_page)
            .await?;
        let mut out = Vec::with_capacity(sessions.len());
        for session in sessions {
            let info = session.info().clone();
            let staff = self.staff_ref(info.staff).await?;
            let role = self
                .store
                .staff(info.staff)
                .await?
                .map(|s| s.role.to_string())
                .unwrap_or_default();
            let request = self.request(info.request).await?;
            let approver = match request.approver {
                Some(actas_core::request::Approver::Lead(by)) => {
                    Some(self.staff_ref(by).await?.name.to_string())
                }
                _ => None,
            };
            let events = self
                .store
                .events(
                    &EventFilter {
                        session: Some(info.id),
                        ..EventFilter::default()
                    },
                    0,
                    10_000,
                )
                .await?;
            let (ended_at, end_reason, ended_because) = match &session {
                Session::Ended(e) => (
                    Some(e.ended_at),
                    Some(e.reason.as_str().to_owned()),
                    Some(words::end_reason(e.reason).to_owned()),
                ),
                Session::Active(_) => (None, None, None),
            };
            out.push(AccessRecord {
                session: info.id.to_string(),
                staff: staff.name.to_string(),
                role,
                started_at: info.started_at,
                ended_at,
                end_reason,
                ended_because,
                ticket: request.ticket.to_string(),
                reason: request.reason.to_string(),
                scope: info.scope.iter().map(|c| c.to_string()).collect(),
                scope_described: words::scope(&self.policy, &info.scope),
                mode: info.mode.to_string(),
                approved_by: approver.unwrap_or_else(|| "policy (low risk)".to_owned()),
                activity: events
                    .into_iter()
                    .map(|e| HistoryLine {
                        seq: e.body.seq,
                        time: e.body.time,
                        kind: e.body.kind().to_owned(),
                        summary: e.body.summary,
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Everyone who acted as the customer on an account: names, roles, first and last
    /// time, and how many sessions (a UK GDPR request's answer).
    pub async fn staff_who_acted(&self, id: &str) -> ServiceResult<Vec<StaffWhoActed>> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        let account = self.account(&id).await?;
        let mut by_staff: std::collections::BTreeMap<i64, StaffWhoActed> = Default::default();
        let mut page = 0;
        loop {
            let sessions = self.store.account_sessions(&account.id, page, 500).await?;
            if sessions.is_empty() {
                break;
            }
            page += 500;
            for s in sessions {
                let info = s.info();
                let started = info.started_at;
                match by_staff.get_mut(&info.staff.get()) {
                    Some(entry) => {
                        entry.sessions += 1;
                        entry.first_at = entry.first_at.min(started);
                        entry.last_at = entry.last_at.max(started);
                    }
                    None => {
                        let record = self.store.staff(info.staff).await?.ok_or_else(|| {
                            ServiceError::NotFound(format!("staff {}", info.staff))
                        })?;
                        by_staff.insert(
                            info.staff.get(),
                            StaffWhoActed {
                                name: record.name.to_string(),
                                role: record.role.to_string(),
                                first_at: started,
                                last_at: started,
                                sessions: 1,
                            },
                        );
                    }
                }
            }
        }
        let mut out: Vec<StaffWhoActed> = by_staff.into_values().collect();
        out.sort_by(|a, b| b.last_at.cmp(&a.last_at).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// The account as events name it.
    pub async fn account_ref(&self, id: &str) -> ServiceResult<AccountRef> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        Ok(self.account(&id).await?.to_ref())
    }
}

/// One support session on an account, as the customer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRecord {
    /// The session.
    pub session: String,
    /// Who acted.
    pub staff: String,
    /// Their role.
    pub role: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended (absent while it runs).
    pub ended_at: Option<Timestamp>,
    /// Why it ended, e.g. `manual`, `hard_limit`, `consent_revoked`.
    pub end_reason: Option<String>,
    /// Why it ended, as a sentence for people.
    pub ended_because: Option<String>,
    /// The ticket.
    pub ticket: String,
    /// The reason given.
    pub reason: String,
    /// What the scope allowed, by capability name.
    pub scope: Vec<String>,
    /// What the scope allowed, in the policy's words.
    pub scope_described: String,
    /// read-only, live or mirror.
    pub mode: String,
    /// Who approved it.
    pub approved_by: String,
    /// What was viewed, changed or blocked, in plain language.
    pub activity: Vec<HistoryLine>,
}

/// One line of a session's story.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLine {
    /// The ledger sequence number.
    pub seq: u64,
    /// When.
    pub time: Timestamp,
    /// The event kind.
    pub kind: String,
    /// The sentence.
    pub summary: String,
}

/// A staff member who acted on an account.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaffWhoActed {
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: String,
    /// Their first session on the account.
    pub first_at: Timestamp,
    /// Their latest.
    pub last_at: Timestamp,
    /// How many sessions.
    pub sessions: u32,
}
