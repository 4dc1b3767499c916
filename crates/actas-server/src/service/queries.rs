//! Every read a person or a client makes, as view models. Each query takes the handle
//! that proves the caller may see it ([`super::access`]) or the signed-in person, and
//! decides what that person sees; the console's pages and the API's handlers only render
//! the answer. (The CLI is the operator at the machine, with the database itself in hand,
//! and reads the store directly.)

use super::access::{Auditor, Director, Lead};
use super::auth::Authenticated;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::account::Consent;
use actas_core::event::Actor;
use actas_core::ids::{AccountId, RequestId, SessionId};
use actas_core::policy::Capability;
use actas_core::request::AccessRequest;
use actas_core::scope::Risk;
use actas_core::session::{ActiveSession, Session};
use actas_core::staff::Email;
use actas_store::{Account, AllowEntry, AppKey, EventFilter, OutboxStats, RecordedEvent};

/// The most accounts a search returns.
pub const SEARCH_LIMIT: usize = 100;

/// An account in a search, with whether the caller may ask to act as its customer.
#[derive(Debug, Clone)]
pub struct AccountListing {
    /// The account.
    pub account: Account,
    /// The caller is on the allow-list and the customer has not revoked consent.
    pub can_act_as: bool,
}

/// One account's page: the account, and what the caller may ask for on it.
#[derive(Debug, Clone)]
pub struct AccountView {
    /// The account.
    pub account: Account,
    /// Why the caller can't ask to act as this customer, in words; `None` when they can.
    pub why_not: Option<String>,
    /// The capabilities the caller may ask for: `view` first, then by risk.
    pub capabilities: Vec<Capability>,
}

/// A request as its requester, or a lead or auditor, sees it.
#[derive(Debug, Clone)]
pub struct RequestView {
    /// The request.
    pub request: AccessRequest,
    /// Its account.
    pub account: Account,
    /// Whether the caller made it.
    pub mine: bool,
    /// Starting it needs the password again (the last check is older than policy allows).
    pub needs_password: bool,
}

/// A request in the approval queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    /// The request.
    pub request: AccessRequest,
    /// Who asked, by name.
    pub requester: String,
    /// The account, by name.
    pub account: String,
    /// The caller asked for it (a lead can't approve their own).
    pub own: bool,
}

/// A session with its people and its timeline.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Who acted, by name.
    pub staff: String,
    /// The account.
    pub account: Account,
    /// Its events, oldest first.
    pub timeline: Vec<RecordedEvent>,
}

/// The caller's own running session.
#[derive(Debug, Clone)]
pub struct MySession {
    /// The session.
    pub session: ActiveSession,
    /// The account.
    pub account: Account,
    /// Its events so far, oldest first.
    pub timeline: Vec<RecordedEvent>,
}

/// What the activity log is asked for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// The store's filter.
    pub filter: EventFilter,
    /// Only events by this staff member.
    pub staff: Option<Email>,
    /// Only events after this sequence number (the API's paging).
    pub after: u64,
    /// At most this many.
    pub limit: u32,
}

/// A page of the activity log, newest first.
#[derive(Debug, Clone)]
pub struct ActivityPage {
    /// The events.
    pub events: Vec<RecordedEvent>,
    /// Where the next, older page starts (`before=` this), if there is one.
    pub older: Option<u64>,
}

/// The allow-list page: grants, the product's app keys and how notifications fare.
#[derive(Debug, Clone)]
pub struct AllowListView {
    /// Every grant, current and revoked.
    pub entries: Vec<AllowEntry>,
    /// The product's app keys.
    pub apps: Vec<AppKey>,
    /// Notifications to the product.
    pub outbox: OutboxStats,
}

/// The signed-in person as they see themselves.
#[derive(Debug, Clone)]
pub struct MeView {
    /// Up to which risk they may act as customers, if they are on the allow-list.
    pub allowed_up_to: Option<Risk>,
    /// Two-step sign-in is on.
    pub totp_on: bool,
}

impl Service {
    /// The signed-in person's own standing.
    pub async fn me(&self, who: &Authenticated) -> ServiceResult<MeView> {
        let allowed = self.store.allowed(who.staff().id).await?;
        let staff = self.store.staff(who.staff().id).await?;
        Ok(MeView {
            allowed_up_to: allowed.map(|a| a.max_risk),
            totp_on: staff.is_some_and(|s| s.totp.is_some()),
        })
    }

    /// Accounts whose id or name contains `q` (all when empty), at most [`SEARCH_LIMIT`].
    /// Every staff member may search: finding the account is where a ticket starts.
    pub async fn search_accounts(
        &self,
        who: &Authenticated,
        q: &str,
    ) -> ServiceResult<Vec<AccountListing>> {
        let allowed = self.store.allowed(who.staff().id).await?.is_some();
        let q = q.trim().to_lowercase();
        Ok(self
            .store
            .list_accounts()
            .await?
            .into_iter()
            .filter(|a| {
                q.is_empty()
                    || a.id.as_str().to_lowercase().contains(&q)
                    || a.name.as_str().to_lowercase().contains(&q)
            })
            .take(SEARCH_LIMIT)
            .map(|account| AccountListing {
                can_act_as: allowed && account.consent != Consent::Revoked,
                account,
            })
            .collect())
    }

    /// One account, with what the caller may ask for on it.
    pub async fn account_view(
        &self,
        who: &Authenticated,
        id: &AccountId,
    ) -> ServiceResult<AccountView> {
        let account = self.account(id).await?;
        let allowed = self.store.allowed(who.staff().id).await?;
        let why_not = if account.consent == Consent::Revoked {
            Some(format!(
                "{} has revoked consent for support staff to act on the account.",
                account.name
            ))
        } else if allowed.is_none() {
            Some(
                "You are not on the allow-list, so you can't act as customers. A director can add you."
                    .into(),
            )
        } else if allowed.as_ref().is_some_and(|a| {
            self.policy
                .grant_review
                .suspended(a.reviewed_at, Timestamp::now())
        }) {
            Some(actas_core::words::sentence(
                actas_core::policy::SUSPENDED_FOR_REVIEW,
            ))
        } else {
            None
        };
        let mut capabilities: Vec<Capability> = self
            .policy
            .capabilities()
            .filter(|c| c.risk != Risk::Forbidden)
            .filter(|c| allowed.as_ref().is_some_and(|a| c.risk <= a.max_risk))
            .cloned()
            .collect();
        capabilities.sort_by_key(|c| (c.name.as_str() != "view", c.risk));
        Ok(AccountView {
            account,
            why_not,
            capabilities,
        })
    }

    /// A request, for its requester, or for a lead, director or auditor.
    pub async fn request_view(
        &self,
        who: &Authenticated,
        id: RequestId,
    ) -> ServiceResult<RequestView> {
        let request = self.request(id).await?;
        let mine = request.requester == who.staff().id;
        if !mine && Auditor::of(who).is_err() {
            return Err(ServiceError::Forbidden(
                "this is someone else's request".into(),
            ));
        }
        let account = self.account(&request.account).await?;
        let needs_password =
            Timestamp::now().since(who.authenticated_at()) > self.policy.session.reauth_within;
        Ok(RequestView {
            request,
            account,
            mine,
            needs_password,
        })
    }

    /// The approval queue, oldest first.
    pub async fn queue(&self, lead: &Lead) -> ServiceResult<Vec<QueueItem>> {
        let mut items = Vec::new();
        for request in self.store.pending_requests().await? {
            items.push(self.queue_item(lead, request).await?);
        }
        Ok(items)
    }

    /// The caller's running session, if they have one.
    pub async fn my_session(&self, who: &Authenticated) -> ServiceResult<Option<MySession>> {
        let Some(session) = self.store.active_session_of(who.staff().id).await? else {
            return Ok(None);
        };
        let id = session.info().id;
        let account = self.account(&session.info().account).await?;
        let timeline = self.session_events(id).await?;
        Ok(Some(MySession {
            session,
            account,
            timeline,
        }))
    }

    /// A session's timeline: the staff member's own, or any for a lead, director or
    /// auditor.
    pub async fn session_view(
        &self,
        who: &Authenticated,
        id: SessionId,
    ) -> ServiceResult<SessionView> {
        let (session, staff, account) = self.readable_session(who, id).await?;
        let timeline = self.session_events(id).await?;
        Ok(SessionView {
            session,
            staff,
            account,
            timeline,
        })
    }

    /// A session the caller may read (their own, or any for a lead, director or
    /// auditor), with its staff member's name and its account.
    pub(super) async fn readable_session(
        &self,
        who: &Authenticated,
        id: SessionId,
    ) -> ServiceResult<(Session, String, Account)> {
        let session = self
            .store
            .session(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no session {id}")))?;
        let info = session.info();
        if info.staff != who.staff().id && Auditor::of(who).is_err() {
            return Err(ServiceError::Forbidden(
                "this is someone else's session".into(),
            ));
        }
        let staff = self
            .store
            .staff(info.staff)
            .await?
            .map_or_else(|| "Someone".into(), |s| s.name.to_string());
        let account = self.account(&info.account).await?;
        Ok((session, staff, account))
    }

    async fn session_events(&self, id: SessionId) -> ServiceResult<Vec<RecordedEvent>> {
        let filter = EventFilter {
            session: Some(id),
            ..EventFilter::default()
        };
        Ok(self.store.events(&filter, 0, 1000).await?)
    }

    /// Ledger events matching `q`, oldest first, at most `q.limit`.
    pub async fn activity(
        &self,
        _reader: &Auditor,
        q: &LogQuery,
    ) -> ServiceResult<Vec<RecordedEvent>> {
        let limit = q.limit.clamp(1, 1000);
        let Some(staff) = &q.staff else {
            return Ok(self.store.events(&q.filter, q.after, limit).await?);
        };
        // The store filters by account, session, kind and time; by whom is filtered here,
        // a page at a time.
        let by = |e: &RecordedEvent| matches!(&e.body.actor, Actor::Staff(s) if &s.email == staff);
        let mut out = Vec::new();
        let mut after = q.after;
        loop {
            let page = self.store.events(&q.filter, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.body.seq;
            out.extend(page.into_iter().filter(by));
            if out.len() >= limit as usize {
                out.truncate(limit as usize);
                break;
            }
        }
        Ok(out)
    }

    /// A page of the activity log, newest first: up to `n` events matching `q` (its
    /// `after` and `limit` aside) older than `before` (all when `None`), and where the
    /// next, older page starts if there is one.
    pub async fn activity_page(
        &self,
        _reader: &Auditor,
        q: &LogQuery,
        before: Option<u64>,
        n: usize,
    ) -> ServiceResult<ActivityPage> {
        let mut events = Vec::with_capacity(n);
        let mut cursor = before.unwrap_or(u64::MAX);
        let by = |e: &RecordedEvent| match &q.staff {
            None => true,
            Some(staff) => matches!(&e.body.actor, Actor::Staff(s) if &s.email == staff),
        };
        // One more than the page, to know whether there is an older one. The store filters
        // by account, session, kind and time; by whom is filtered here, a batch at a time.
        let want = n + 1;
        loop {
            let batch = self
                .store
                .events_before(
                    &q.filter,
                    cursor,
                    if q.staff.is_some() { 1000 } else { want as u32 },
                )
                .await?;
            let Some(last) = batch.last() else { break };
            cursor = last.body.seq;
            let full = batch.len() < if q.staff.is_some() { 1000 } else { want };
            events.extend(batch.into_iter().filter(by));
            if events.len() >= want || full {
                break;
            }
        }
        let older = (events.len() > n).then(|| {
            events.truncate(n);
            events.last().map(|e| e.body.seq)
        });
        Ok(ActivityPage {
            events,
            older: older.flatten(),
        })
    }

    /// The allow-list with the product's app keys and notification health.
    pub async fn allow_list_view(&self, _director: &Director) -> ServiceResult<AllowListView> {
        Ok(AllowListView {
            entries: self.store.allow_list().await?,
            apps: self.store.app_keys().await?,
            outbox: self.store.outbox_stats().await?,
        })
    }
}

/// One of the caller's own requests, with its account's name.
#[derive(Debug, Clone)]
pub struct MyRequest {
    /// The request.
    pub request: AccessRequest,
    /// The account, by name.
    pub account: String,
}

/// Where the ledger stands, for auditors.
#[derive(Debug, Clone)]
pub struct LedgerStatus {
    /// Events recorded.
    pub size: u64,
    /// The newest signed checkpoint: how many events it covers, and when it was signed.
    pub newest_head: Option<(u64, Timestamp)>,
}

/// A person's start page: what their role has waiting for them. A section is `None`
/// when the role doesn't see it, and empty when nothing is waiting.
#[derive(Debug, Clone)]
pub struct Home {
    /// Their own latest requests.
    pub mine: Vec<MyRequest>,
    /// Their running session.
    pub session: Option<MySession>,
    /// Leads: requests waiting for a decision.
    pub queue: Option<Vec<QueueItem>>,
    /// Leads: approved requests waiting for the customer's code.
    pub awaiting_code: Option<Vec<QueueItem>>,
    /// Leads: ended sessions waiting for their review (not their own), and how many of
    /// them are overdue.
    pub reviews: Option<(usize, usize)>,
    /// Directors: the allow-list's current grants.
    pub grants: Option<Vec<AllowEntry>>,
    /// Auditors: the ledger.
    pub ledger: Option<LedgerStatus>,
    /// Auditors: the newest events.
    pub recent: Option<Vec<RecordedEvent>>,
}

/// How many of a person's own requests their start page lists.
pub const MY_REQUESTS: u32 = 10;

impl Service {
    /// The caller's start page.
    pub async fn home(&self, who: &Authenticated) -> ServiceResult<Home> {
        let mut mine = Vec::new();
        for request in self.store.requests_of(who.staff().id, MY_REQUESTS).await? {
            let account = self.account(&request.account).await?.name.to_string();
            mine.push(MyRequest { request, account });
        }
        let session = self.my_session(who).await?;
        let (queue, awaiting_code, reviews) = match Lead::of(who) {
            Ok(lead) => {
                let queue = self.queue(&lead).await?;
                let mut waiting = Vec::new();
                for request in self.store.requests_awaiting_code().await? {
                    waiting.push(self.queue_item(&lead, request).await?);
                }
                // What this lead can review: not their own sessions.
                let reviews = self.review_queue(&lead).await?;
                let theirs = reviews.waiting.iter().filter(|i| !i.own);
                let overdue = theirs.clone().filter(|i| i.overdue).count();
                (Some(queue), Some(waiting), Some((theirs.count(), overdue)))
            }
            Err(_) => (None, None, None),
        };
        let grants = match Director::of(who) {
            Ok(_) => Some(
                self.store
                    .allow_list()
                    .await?
                    .into_iter()
                    .filter(|a| a.revoked.is_none())
                    .collect(),
            ),
            Err(_) => None,
        };
        let (ledger, recent) = match Auditor::of(who) {
            Ok(reader) => {
                let heads = self.store.tree_heads().await?;
                let ledger = LedgerStatus {
                    size: self.store.ledger_size().await?,
                    newest_head: heads.last().map(|h| (h.head.size, h.head.time)),
                };
                let recent = self
                    .activity_page(&reader, &LogQuery::default(), None, 10)
                    .await?
                    .events;
                (Some(ledger), Some(recent))
            }
            Err(_) => (None, None),
        };
        Ok(Home {
            mine,
            session,
            queue,
            awaiting_code,
            reviews,
            grants,
            ledger,
            recent,
        })
    }

    async fn queue_item(&self, lead: &Lead, request: AccessRequest) -> ServiceResult<QueueItem> {
        let requester = self
            .store
            .staff(request.requester)
            .await?
            .map_or_else(|| "someone".into(), |s| s.name.to_string());
        let account = self.account(&request.account).await?.name.to_string();
        Ok(QueueItem {
            own: request.requester == lead.staff().id,
            request,
            requester,
            account,
        })
    }
}
