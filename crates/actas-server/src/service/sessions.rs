//! Support sessions: starting one from an approved request, ending it, the reaper that
//! ends sessions past their limits, and the single-use hand-off to the gateway.

use super::requests::hex_id;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{RequestId, SessionId};
use actas_core::request::RequestStatus;
use actas_core::session::{ActiveSession, EndReason, EndedSession, Session};
use actas_store::{Applied, Change, StaffRecord, StoreError, Unit};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a hand-off token is valid.
pub const HANDOFF_TTL: Duration = Duration::from_secs(60);

/// A single-use token the gateway exchanges for its own cookie. Shown once; only its
/// SHA-256 is stored.
pub struct HandoffToken(String);

impl std::fmt::Debug for HandoffToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandoffToken(…)")
    }
}

impl HandoffToken {
    /// The token's text (URL-safe).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub(super) fn random_hex(n: usize) -> ServiceResult<String> {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        ServiceError::Unexpected(StoreError::Unexpected(
            format!("no random source: {e}").into(),
        ))
    })?;
    Ok(hex_id(&bytes))
}

/// The `session.ended` events for every session an [`Change::EndSessionsOf`] among
/// `applied` ended, as `actor`'s doing (limits passed are actas's own).
pub(super) fn ended_events(applied: &[Applied], actor: &Actor) -> Vec<NewEvent> {
    applied
        .iter()
        .filter_map(|a| match a {
            Applied::Ended(ended) => Some(ended),
            _ => None,
        })
        .flatten()
        .map(|e| {
            NewEvent::session_ended(
                &e.session,
                e.staff.clone(),
                e.account.clone(),
                e.ticket.clone(),
                actor.clone(),
            )
        })
        .collect()
}

impl Service {
    /// Starts a session from an approved request. The staff member must have signed in
    /// within the policy's re-authentication window (`authenticated_at`), the customer's
    /// code must have been entered where needed, and they must have no other session.
    /// The session row and `session.started` commit together; only then is the hand-off
    /// token issued (invariant 2).
    pub async fn start_session(
        &self,
        staff: &StaffRecord,
        id: RequestId,
        authenticated_at: Timestamp,
    ) -> ServiceResult<(ActiveSession, HandoffToken)> {
        let now = Timestamp::now();
        let policy = self.policy();
        if now.since(authenticated_at) > policy.session.reauth_within {
            let how = match self.sign_on() {
                Some(p) => format!("at {} (start it from the console)", p.name()),
                None => "with your password".to_owned(),
            };
            return Err(ServiceError::Forbidden(format!(
                "please confirm it is you again {how}: starting a session needs a sign-in within the last {} minutes",
                policy.session.reauth_within.as_secs() / 60
            )));
        }
        let mut request = self.request(id).await?;
        // Sessions never nest. The one exception is a scope change: its request names the
        // running session, which ends (`scope_changed`) in the same transaction.
        let mut replacing = Vec::new();
        if let Some(active) = self.store.active_session_of(staff.id).await? {
            if request.for_session != Some(active.info().id) {
                return Err(ServiceError::Conflict(
                    "you already have an active support session; end it before starting another"
                        .into(),
                ));
            }
            let mut running = Session::Active(active);
            let ended = running
                .end(EndReason::ScopeChanged, Timestamp::now())
                .map_err(|e| ServiceError::Conflict(e.to_string()))?
                .clone();
            replacing.push(self.ending(&ended, Actor::Staff(staff.to_ref())).await?);
        }
        let account = self.account(&request.account).await?;
        let expected = request.status;
        request
            .use_for_session(staff.id, now)
            .map_err(|e| match e {
                actas_core::request::RequestError::NotRequester => {
                    ServiceError::Forbidden(e.to_string())
                }
                actas_core::request::RequestError::CodeMissing => ServiceError::invalid("code", e),
                other => ServiceError::Conflict(other.to_string()),
            })?;
        if expected != RequestStatus::Approved {
            return Err(ServiceError::Conflict(format!(
                "this request is {expected}"
            )));
        }
        let session = ActiveSession::start(
            SessionId::random(),
            request.id,
            staff.id,
            account.id.clone(),
            request.scope.clone(),
            request.mode,
            now,
            request.duration.get(),
            policy.session.hard_limit,
            policy.session.idle_limit,
        );
        let info = session.info().clone();
        let event = NewEvent::new(
            Actor::Staff(staff.to_ref()),
            EventData::SessionStarted {
                session: info.id,
                request: request.id,
                account: account.to_ref(),
                ticket: request.ticket.clone(),
                reason: request.reason.clone(),
                scope: info.scope.clone(),
                mode: info.mode,
                expires_at: info.expires_at,
            },
        );
        // Decided in the transaction that starts the session: the staff member is active
        // and on the allow-list for this risk, and the customer has not revoked consent.
        // A revocation or deactivation committed a moment earlier refuses the start; one
        // committed a moment later finds the session and ends it.
        let mut changes = vec![
            Change::RequireActiveStaff(staff.id),
            Change::RequireAllowed {
                staff: staff.id,
                risk: request.risk,
                reviewed_since: policy.grant_review.suspends_reviewed_before(now),
            },
            // A request that needed no code from the customer can only start while they
            // still ask for none.
            Change::RequireConsent {
                account: account.id.clone(),
                expected: (!request.needs_code).then_some(actas_core::account::Consent::Allowed),
            },
        ];
        let (ending, mut events): (Vec<Change>, Vec<NewEvent>) = replacing.into_iter().unzip();
        changes.extend(ending);
        changes.push(Change::UpdateRequest {
            request: request.clone(),
            expected,
        });
        changes.push(Change::InsertSession(info.clone()));
        events.push(event);
        self.store
            .commit(Unit::new(changes, move |_| events))
            .await?;
        // Durable: now the hand-off may be issued.
        let token = HandoffToken(random_hex(32)?);
        self.store
            .commit(Unit::new(
                vec![Change::InsertHandoff {
                    hash: token_hash(&token.0),
                    session: info.id,
                    expires_at: now.plus(HANDOFF_TTL),
                }],
                |_| vec![],
            ))
            .await?;
        Ok((session, token))
    }

    /// A new hand-off into the caller's own running session, when the last link was used,
    /// expired or lost (they left its page, or opened the gateway in another browser). The
    /// same re-authentication as a start applies; the new link is single use like the
    /// first, and issuing it is recorded. It never starts a second session.
    pub async fn reissue_handoff(
        &self,
        staff: &StaffRecord,
        authenticated_at: Timestamp,
    ) -> ServiceResult<(ActiveSession, HandoffToken)> {
        let now = Timestamp::now();
        let policy = self.policy();
        if now.since(authenticated_at) > policy.session.reauth_within {
            return Err(ServiceError::invalid(
                "password",
                format!(
                    "confirm your password: a new way into the session needs a sign-in within the last {}",
                    actas_core::words::duration(policy.session.reauth_within)
                ),
            ));
        }
        let session = self
            .store
            .active_session_of(staff.id)
            .await?
            .ok_or_else(|| ServiceError::Conflict("you have no running support session".into()))?;
        let info = session.info().clone();
        let account = self.account(&info.account).await?;
        let request = self.request(info.request).await?;
        let request_risk = request.risk;
        let token = HandoffToken(random_hex(32)?);
        let event = NewEvent::new(
            Actor::Staff(staff.to_ref()),
            EventData::HandoffReissued {
                session: info.id,
                account: account.to_ref(),
                ticket: request.ticket,
            },
        );
        // The session must still be running when the link is issued, decided in the same
        // transaction as the link and its record.
        self.store
            .commit(Unit::new(
                vec![
                    Change::RequireLiveSession {
                        id: info.id,
                        at: now,
                    },
                    Change::RequireActiveStaff(staff.id),
                    Change::RequireAllowed {
                        staff: staff.id,
                        risk: request_risk,
                        reviewed_since: policy.grant_review.suspends_reviewed_before(now),
                    },
                    Change::InsertHandoff {
                        hash: token_hash(&token.0),
                        session: info.id,
                        expires_at: now.plus(HANDOFF_TTL),
                    },
                ],
                move |_| vec![event],
            ))
            .await?;
        Ok((session, token))
    }

    /// Whether `token` is an unused hand-off into `staff`'s own running session: the
    /// console shows a link only for such a token, so a link sent by someone else can't
    /// pass as one's own.
    pub async fn handoff_is_theirs(&self, staff: &StaffRecord, token: &str) -> ServiceResult<bool> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let Some(session) = self.store.handoff_session(&token_hash(token)).await? else {
            return Ok(false);
        };
        Ok(self
            .store
            .active_session_of(staff.id)
            .await?
            .is_some_and(|a| a.info().id == session))
    }

    /// Exchanges a hand-off token for its session, once: of two concurrent attempts
    /// with the same token, exactly one succeeds.
    pub async fn redeem_handoff(&self, token: &str) -> ServiceResult<ActiveSession> {
        let hash = token_hash(token);
        let invalid = || {
            ServiceError::Forbidden(
                "that hand-off link is not valid, has expired or was already used".into(),
            )
        };
        let id = self
            .store
            .handoff_session(&hash)
            .await?
            .ok_or_else(invalid)?;
        match self
            .store
            .commit(Unit::new(
                vec![Change::RedeemHandoff {
                    hash,
                    at: Timestamp::now(),
                }],
                |_| vec![],
            ))
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Err(invalid()),
            Err(e) => return Err(e.into()),
        }
        match self.store.session(id).await? {
            Some(Session::Active(a)) => Ok(a),
            _ => Err(ServiceError::Forbidden("this session has ended".into())),
        }
    }

    /// Ends a session for `reason`, as `actor`. If a limit had already passed, that limit
    /// is recorded as the reason instead. Ends each session exactly once: a second,
    /// concurrent end is refused by the store and writes nothing.
    pub async fn end_session(
        &self,
        id: SessionId,
        reason: EndReason,
        actor: Actor,
    ) -> ServiceResult<Session> {
        self.end_session_with(id, reason, actor, |_| Ok(vec![]))
            .await
    }

    /// As [`Service::end_session`], with more events committed in the same transaction
    /// (a support note), made from the session as it ends (or refusing the end).
    pub(super) async fn end_session_with(
        &self,
        id: SessionId,
        reason: EndReason,
        actor: Actor,
        extra: impl FnOnce(&EndedSession) -> ServiceResult<Vec<NewEvent>>,
    ) -> ServiceResult<Session> {
        let mut session = self
            .store
            .session(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no session {id}")))?;
        let ended = session
            .end(reason, Timestamp::now())
            .map_err(|e| ServiceError::Conflict(e.to_string()))?
            .clone();
        let (change, event) = self.ending(&ended, actor).await?;
        let mut events = vec![event];
        events.extend(extra(&ended)?);
        self.store
            .commit(Unit::new(vec![change], move |_| events))
            .await?;
        Ok(session)
    }

    /// Ends a session on someone's request: their own (`manual`) or, for a director, anyone's
    /// (`revoked_by_admin`). Nobody else may end it.
    pub async fn end_session_by(&self, who: &StaffRecord, id: SessionId) -> ServiceResult<Session> {
        let reason = self.end_reason_for(who, id).await?;
        self.end_session(id, reason, Actor::Staff(who.to_ref()))
            .await
    }

    /// Who may end a session, and with which reason: its own staff member (`manual`) or
    /// a director (`revoked_by_admin`).
    pub(super) async fn end_reason_for(
        &self,
        who: &StaffRecord,
        id: SessionId,
    ) -> ServiceResult<EndReason> {
        let session = self
            .store
            .session(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no session {id}")))?;
        if session.info().staff == who.id {
            Ok(EndReason::Manual)
        } else if who.role == actas_core::staff::Role::Director {
            Ok(EndReason::RevokedByAdmin)
        } else {
            Err(ServiceError::Forbidden(
                "only the staff member in the session or a director can end it".into(),
            ))
        }
    }

    /// The change and event that end a session, for committing alone or with other
    /// changes (a scope change ends the running session as the new one starts).
    pub(super) async fn ending(
        &self,
        ended: &EndedSession,
        actor: Actor,
    ) -> ServiceResult<(Change, NewEvent)> {
        let info = &ended.info;
        let staff = self.staff_ref(info.staff).await?;
        let account = self.account(&info.account).await?;
        let request = self.request(info.request).await?;
        let event = NewEvent::session_ended(ended, staff, account.to_ref(), request.ticket, actor);
        Ok((
            Change::EndSession {
                id: info.id,
                at: ended.ended_at,
                reason: ended.reason,
            },
            event,
        ))
    }

    /// Ends every active session past its hard or idle limit. Safe to run on several
    /// instances at once: each session is ended, and recorded, exactly once.
    pub async fn reap(&self) -> ServiceResult<usize> {
        self.reap_at(Timestamp::now()).await
    }

    /// [`Service::reap`] as if it were `now` (tests move the clock forward).
    pub async fn reap_at(&self, now: Timestamp) -> ServiceResult<usize> {
        let mut ended = 0;
        for s in self.store.active_sessions().await? {
            let Err((reason, _)) = s.check(now) else {
                continue;
            };
            match self.end_session(s.info().id, reason, Actor::System).await {
                Ok(_) => ended += 1,
                // Someone else ended it first: nothing to do.
                Err(ServiceError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ended)
    }
}
