//! The gateway's side of the service: which session a gateway cookie stands for (kept in
//! memory, and confirmed by every commit), and the ledger records of what the gateway
//! does — each forwarded request durably *before* it is forwarded, each refusal, each
//! change's outcome (invariants 3, 4, 5, 13, 14). What to do with a request is decided by
//! `actas_core::gateway::decide`; this module only records it.

use super::auth::{Secret, secret_hash};
use super::sessions::random_hex;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::account::AccountRef;
use actas_core::event::{Actor, EventData, FieldChange, NewEvent};
use actas_core::gateway::ForwardKind;
use actas_core::gateway::path::CanonicalPath;
use actas_core::policy::routes::Method;
use actas_core::scope::CapabilityName;
use actas_core::session::{ActiveSession, Session, SessionError};
use actas_core::staff::StaffRef;
use actas_core::text::TicketRef;
use actas_store::{Change, GatewayLogin, StoreError, Unit};

/// How stale the stored idle clock may get before a request refreshes it.
pub const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Gateway cookies whose rows are kept in memory before the cache is cleared.
const GATEWAY_LOGINS_KEPT: usize = 4096;

/// What this process remembers of gateway cookies: each cookie's record (which never
/// changes) and its session as last seen live. Nothing here is trusted to say a session
/// still stands; see [`Service::gateway_context`].
#[derive(Default)]
pub struct GatewayCache {
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], CachedLogin>>,
}

/// One remembered cookie.
#[derive(Clone)]
struct CachedLogin {
    login: GatewayLogin,
    live: Option<ActiveSession>,
}

/// The cache, locked.
pub(super) struct CacheGuard<'a>(
    std::sync::MutexGuard<'a, std::collections::HashMap<[u8; 32], CachedLogin>>,
);

impl GatewayCache {
    pub(super) fn lock(&self) -> CacheGuard<'_> {
        CacheGuard(
            self.entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl CacheGuard<'_> {
    fn get(&self, hash: &[u8; 32]) -> Option<&CachedLogin> {
        self.0.get(hash)
    }

    fn insert(&mut self, hash: [u8; 32], login: GatewayLogin) {
        if self.0.len() >= GATEWAY_LOGINS_KEPT {
            self.0.clear();
        }
        self.0.insert(hash, CachedLogin { login, live: None });
    }

    fn remember_live(&mut self, hash: &[u8; 32], session: ActiveSession) {
        if let Some(entry) = self.0.get_mut(hash) {
            entry.live = Some(session);
        }
    }

    fn touched(&mut self, id: actas_core::ids::SessionId, at: Timestamp) {
        for entry in self.0.values_mut() {
            if let Some(s) = entry.live.as_mut().filter(|s| s.info().id == id) {
                let _ = s.touch(at);
            }
        }
    }

    fn forget_session(&mut self, id: actas_core::ids::SessionId) {
        for entry in self.0.values_mut() {
            if entry.live.as_ref().is_some_and(|s| s.info().id == id) {
                entry.live = None;
            }
        }
    }
}

/// What the gateway records of a request it forwards, once `decide` has let it through.
#[derive(Debug, Clone)]
pub struct ForwardRecord<'a> {
    /// How it is recorded.
    pub kind: ForwardKind,
    /// The method it is recorded as (`HEAD` as `GET`).
    pub method: Method,
    /// The canonical path.
    pub path: &'a CanonicalPath,
    /// What it does, from the route or the path.
    pub description: &'a str,
    /// For a change or a message: its fields, already masked by policy.
    pub fields: Vec<FieldChange>,
    /// For a message: its size in bytes.
    pub bytes: u64,
}

/// Who and what a live gateway session is about.
#[derive(Debug, Clone)]
pub struct GatewayContext {
    /// The session.
    pub session: ActiveSession,
    /// The staff member.
    pub staff: StaffRef,
    /// The account.
    pub account: AccountRef,
    /// The ticket.
    pub ticket: TicketRef,
    /// Whether the session was read from the store for this request (otherwise it is what
    /// this process last saw, and the commit confirms it).
    pub confirmed: bool,
}

impl Service {
    /// Exchanges a hand-off token for the gateway's own cookie (and its end token). The
    /// names the banner and the records need are kept with the cookie, so proxied requests
    /// don't look them up again.
    pub async fn enter_gateway(
        &self,
        handoff: &str,
    ) -> ServiceResult<(ActiveSession, Secret, String)> {
        let session = self.redeem_handoff(handoff).await?;
        let info = session.info();
        let staff = self.staff_ref(info.staff).await?;
        let account = self.account(&info.account).await?.to_ref();
        let ticket = self.request(info.request).await?.ticket;
        let token = random_hex(32)?;
        let csrf = random_hex(16)?;
        self.store
            .commit(Unit::new(
                vec![Change::InsertGatewayLogin {
                    token_hash: secret_hash(&token),
                    session: info.id,
                    csrf: csrf.clone(),
                    staff,
                    account,
                    ticket,
                    at: Timestamp::now(),
                }],
                |_| vec![],
            ))
            .await?;
        Ok((session, Secret::new(token), csrf))
    }

    /// The session behind a gateway cookie (live or not), read now, and the cookie's record.
    pub async fn gateway_session(&self, cookie: &str) -> ServiceResult<(Session, GatewayLogin)> {
        let hash = secret_hash(cookie);
        let login = self.gateway_login(&hash).await?;
        let session = self
            .store
            .session(login.session)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("session {}", login.session)))?;
        Ok((session, login))
    }

    /// The cookie's record: it never changes once written, so it is read from the store
    /// once and kept.
    async fn gateway_login(&self, hash: &[u8; 32]) -> ServiceResult<GatewayLogin> {
        if let Some(entry) = self.gateway_cache.lock().get(hash) {
            return Ok(entry.login.clone());
        }
        let login = self.store.gateway_login(hash).await?.ok_or_else(|| {
            ServiceError::Unauthenticated("open the session from the actas console first".into())
        })?;
        self.gateway_cache.lock().insert(*hash, login.clone());
        Ok(login)
    }

    /// The live context for a gateway cookie, for a proxied request.
    ///
    /// When this process saw the session live a moment ago and its limits haven't passed
    /// by the clock, that is used without a read: whatever [`Service::admit`] then commits
    /// carries a [`Change::RequireLiveSession`], so the writer's transaction confirms the
    /// session still stands (ended from the console, the CLI, a consent revocation or
    /// another gateway) before anything is recorded or forwarded. Otherwise the session
    /// is read, and ended here if a limit passed.
    pub async fn gateway_context(
        &self,
        cookie: &str,
    ) -> ServiceResult<(GatewayContext, GatewayLogin)> {
        let hash = secret_hash(cookie);
        let remembered = self.gateway_cache.lock().get(&hash).cloned();
        if let Some(entry) = remembered
            && let Some(session) = entry.live
            && session.check(Timestamp::now()).is_ok()
        {
            let ctx = GatewayContext {
                session,
                staff: entry.login.staff.clone(),
                account: entry.login.account.clone(),
                ticket: entry.login.ticket.clone(),
                confirmed: false,
            };
            return Ok((ctx, entry.login));
        }
        let (session, login) = self.gateway_session(cookie).await?;
        let ctx = self.live_context(session, &login).await?;
        self.gateway_cache
            .lock()
            .remember_live(&hash, ctx.session.clone());
        Ok((ctx, login))
    }

    /// Checks that a session may serve a request now and returns its context. A session
    /// past a limit is ended (and recorded) here, exactly once, and refused.
    pub async fn live_context(
        &self,
        session: Session,
        login: &GatewayLogin,
    ) -> ServiceResult<GatewayContext> {
        let now = Timestamp::now();
        let id = session.info().id;
        let mut checked = session.clone();
        match checked.serve(now) {
            Ok(()) => match session {
                Session::Active(a) => Ok(GatewayContext {
                    session: a,
                    staff: login.staff.clone(),
                    account: login.account.clone(),
                    ticket: login.ticket.clone(),
                    confirmed: true,
                }),
                Session::Ended(e) => Err(ServiceError::Forbidden(
                    SessionError::Ended(e.reason).to_string(),
                )),
            },
            Err(SessionError::Ended(reason)) => Err(ServiceError::Forbidden(
                SessionError::Ended(reason).to_string(),
            )),
            Err(SessionError::Expired(reason)) => {
                match self.end_session(id, reason, Actor::System).await {
                    Ok(_) | Err(ServiceError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                Err(ServiceError::Forbidden(
                    SessionError::Expired(reason).to_string(),
                ))
            }
        }
    }

    /// Reads a session again after its precondition failed or when nothing was committed
    /// to confirm it, forgetting what this process remembered of it: the answer is the
    /// plain reason it can't be used (ending it if a limit passed), or the context if it
    /// still can.
    async fn confirm_live(&self, ctx: &GatewayContext) -> ServiceResult<GatewayContext> {
        let id = ctx.session.info().id;
        self.gateway_cache.lock().forget_session(id);
        let session = self
            .store
            .session(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("session {id}")))?;
        let login = GatewayLogin {
            session: id,
            csrf: String::new(),
            staff: ctx.staff.clone(),
            account: ctx.account.clone(),
            ticket: ctx.ticket.clone(),
        };
        self.live_context(session, &login).await
    }

    /// Records a request durably before it is forwarded (invariants 3 and 14), in the
    /// transaction that confirms the session still stands and refreshes its idle clock.
    /// An asset writes no event, but its session is confirmed all the same. If the
    /// ledger can't be written the caller gets an error and must not forward. The answer
    /// is the event's number in the ledger, when one was written.
    pub async fn record_forward(
        &self,
        ctx: &GatewayContext,
        forwarded: ForwardRecord<'_>,
    ) -> ServiceResult<Option<u64>> {
        let info = ctx.session.info();
        let (session, account, ticket) = (info.id, ctx.account.clone(), ctx.ticket.clone());
        let path = forwarded.path.as_str().to_owned();
        let description = forwarded.description.to_owned();
        let event = match forwarded.kind {
            ForwardKind::Asset(_) => None,
            ForwardKind::PageView | ForwardKind::LiveOpen => Some(EventData::PageViewed {
                session,
                account,
                ticket,
                path,
                description,
            }),
            ForwardKind::DataRead => Some(EventData::DataRead {
                session,
                account,
                ticket,
                method: forwarded.method.to_string(),
                path,
                description,
            }),
            ForwardKind::Change => Some(EventData::ActionTaken {
                session,
                account,
                ticket,
                description,
                changes: forwarded.fields,
                status: None,
                path: Some(path),
            }),
            ForwardKind::LiveMessage => Some(EventData::LiveMessage {
                session,
                account,
                ticket,
                path,
                bytes: forwarded.bytes,
                fields: forwarded.fields,
            }),
        };
        self.commit_in_session(ctx, event.into_iter().collect())
            .await
    }

    /// Records a request the gateway refused before sending it on: out of scope, a path
    /// or method it can't read, too large. Committed only while the session stands (a
    /// request on an ended session is refused for that instead).
    pub async fn record_block(
        &self,
        ctx: &GatewayContext,
        method: &str,
        path: &str,
        capability: Option<CapabilityName>,
        why: String,
    ) -> ServiceResult<()> {
        let event = EventData::ActionBlocked {
            session: ctx.session.info().id,
            account: ctx.account.clone(),
            ticket: ctx.ticket.clone(),
            method: method.to_owned(),
            path: path.to_owned(),
            capability,
            why,
        };
        self.commit_in_session(ctx, vec![event]).await.map(|_| ())
    }

    /// Records that the agent is about to see masked `fields` whole on `path`, because the
    /// session's approved scope reveals them, naming who approved it. Committed while the
    /// session stands, before the answer that carries them goes out.
    pub async fn record_revealed(
        &self,
        ctx: &GatewayContext,
        fields: Vec<String>,
        path: &str,
    ) -> ServiceResult<()> {
        let info = ctx.session.info();
        let request = self.request(info.request).await?;
        let approved_by = match request.approver {
            Some(actas_core::request::Approver::Lead(id)) => Some(self.staff_ref(id).await?),
            _ => None,
        };
        let event = EventData::FieldRevealed {
            session: info.id,
            account: ctx.account.clone(),
            ticket: ctx.ticket.clone(),
            fields,
            path: path.to_owned(),
            request: info.request,
            approved_by,
        };
        self.commit_in_session(ctx, vec![event]).await.map(|_| ())
    }

    /// Records that an answer to a request already sent on was not passed to the agent
    /// (or never came). The request's own record is in the ledger, so this one is written
    /// even if the session has ended meanwhile: nothing that happened may go unrecorded.
    pub async fn record_answer_refused(
        &self,
        ctx: &GatewayContext,
        method: &str,
        path: &str,
        why: String,
    ) -> ServiceResult<()> {
        let event = NewEvent::new(
            Actor::Staff(ctx.staff.clone()),
            EventData::AnswerRefused {
                session: ctx.session.info().id,
                account: ctx.account.clone(),
                ticket: ctx.ticket.clone(),
                method: method.to_owned(),
                path: path.to_owned(),
                why,
            },
        );
        self.store.append(event).await?;
        Ok(())
    }

    /// Commits `events` (by the session's staff member) with the session's precondition
    /// and, every [`TOUCH_EVERY`], a refresh of its idle clock. With nothing to write, the
    /// session is read instead if this process has not confirmed it for this request.
    /// Commits `events` while the session stands; the first one's number in the ledger.
    async fn commit_in_session(
        &self,
        ctx: &GatewayContext,
        events: Vec<EventData>,
    ) -> ServiceResult<Option<u64>> {
        let info = ctx.session.info();
        let now = Timestamp::now();
        let actor = Actor::Staff(ctx.staff.clone());
        let events: Vec<NewEvent> = events
            .into_iter()
            .map(|e| NewEvent::new(actor.clone(), e))
            .collect();
        // The idle clock is refreshed at most every few seconds: a session may end up to that
        // much *sooner* than its idle limit, never later, and most requests then commit a
        // lone event, which the ledger writer groups cheaply.
        let touch = if now.since(ctx.session.last_seen()) >= TOUCH_EVERY {
            vec![Change::TouchSession {
                id: info.id,
                at: now,
            }]
        } else {
            Vec::new()
        };
        if touch.is_empty() && events.is_empty() {
            // Nothing to record, so nothing confirms the session on the way: read it.
            if !ctx.confirmed {
                self.confirm_live(ctx).await?;
            }
            return Ok(None);
        }
        let touched = !touch.is_empty();
        let mut changes = vec![Change::RequireLiveSession {
            id: info.id,
            at: now,
        }];
        changes.extend(touch);
        match self.store.commit(Unit::new(changes, move |_| events)).await {
            Ok(appended) => {
                if touched {
                    self.gateway_cache.lock().touched(info.id, now);
                }
                Ok(appended.first().map(|a| a.seq))
            }
            Err(e @ StoreError::LedgerUnavailable(_)) => Err(e.into()),
            Err(e) => {
                // The session ended or passed a limit since this process last saw it.
                self.confirm_live(ctx).await?;
                Err(e.into())
            }
        }
    }
}

impl Service {
    /// Records what the product answered to a change: its status and, when it sent an
    /// `Actas-Audit` header, what changed from and to (already masked by the caller).
    pub async fn record_outcome(
        &self,
        ctx: &GatewayContext,
        path: &CanonicalPath,
        description: &str,
        status: u16,
        changes: Vec<FieldChange>,
    ) -> ServiceResult<()> {
        let info = ctx.session.info();
        let event = NewEvent::new(
            Actor::Staff(ctx.staff.clone()),
            EventData::ActionTaken {
                session: info.id,
                account: ctx.account.clone(),
                ticket: ctx.ticket.clone(),
                description: description.to_owned(),
                changes,
                status: Some(status),
                path: Some(path.as_str().to_owned()),
            },
        );
        self.store.append(event).await?;
        Ok(())
    }
}
