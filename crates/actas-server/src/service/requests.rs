//! Access requests: asking, approving (possibly narrower or shorter), denying, cancelling,
//! and the customer's confirmation code.

use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::code::{CODE_TTL, ConfirmationCode};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{AccountId, RequestId, SessionId};
use actas_core::request::{AccessRequest, NewRequest, RequestError, RequestStatus};
use actas_core::scope::Mode;
use actas_core::staff::Role;
use actas_core::text::{Note, Reason, TicketRef};
use actas_store::{Applied, Change, StaffRecord, StoreError, Unit};

/// What an agent asks for, as typed. Every field is checked and errors name the field.
#[derive(Debug, Clone, Default)]
pub struct RequestInput {
    /// The account id.
    pub account: String,
    /// The ticket reference.
    pub ticket: String,
    /// Why.
    pub reason: String,
    /// Capability names beyond `view`.
    pub capabilities: Vec<String>,
    /// Minutes; the policy's default when absent.
    pub minutes: Option<u64>,
    /// `read-only` (default), `live` or `mirror`.
    pub mode: Option<String>,
    /// Set to change the scope of the requester's running session: the new session
    /// replaces it when started.
    pub for_session: Option<SessionId>,
}

/// How a lead decides.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    /// A narrower set of capabilities, if narrowing.
    pub capabilities: Option<Vec<String>>,
    /// Fewer minutes, if shortening.
    pub minutes: Option<u64>,
    /// A note for the record.
    pub note: Option<String>,
}

fn refused(e: RequestError) -> ServiceError {
    match e {
        RequestError::OwnRequest | RequestError::NotRequester => {
            ServiceError::Forbidden(e.to_string())
        }
        RequestError::WiderScope => ServiceError::invalid("capabilities", e),
        RequestError::LongerDuration => ServiceError::invalid("minutes", e),
        RequestError::CodeMissing => ServiceError::invalid("code", e),
        _ => ServiceError::Conflict(e.to_string()),
    }
}

impl Service {
    /// The request, or a clear "not found".
    pub async fn request(&self, id: RequestId) -> ServiceResult<AccessRequest> {
        self.store
            .request(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no request {id}")))
    }

    /// Every problem with typed request input, field by field (the console shows each
    /// beside its field; the API reports the first).
    pub fn request_input_problems(&self, input: &RequestInput) -> Vec<(&'static str, String)> {
        let policy = self.policy();
        let mut out = Vec::new();
        if let Err(e) = TicketRef::parse(&input.ticket, &policy.ticket_pattern) {
            out.push(("ticket", e.to_string()));
        }
        if let Err(e) = Reason::parse(&input.reason) {
            out.push(("reason", e.to_string()));
        }
        if let Err(e) = policy.scope(input.capabilities.iter().map(String::as_str)) {
            out.push(("capabilities", e.to_string()));
        }
        if let Err(e) = policy.duration(input.minutes) {
            out.push(("minutes", e.to_string()));
        }
        if let Some(m) = input
            .mode
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            && let Err(e) = m.parse::<Mode>()
        {
            out.push(("mode", e.to_string()));
        }
        out
    }

    /// An agent asks to act as a customer. Only allow-listed staff may, up to their risk
    /// level; forbidden capabilities and revoked consent are refused; low risk on a normal
    /// account is approved by policy at once (and recorded as such).
    pub async fn create_request(
        &self,
        requester: &StaffRecord,
        input: RequestInput,
    ) -> ServiceResult<AccessRequest> {
        let policy = self.policy();
        // Read for a quick answer (the API answers 403 before it looks at the input); the
        // commit below decides it, with the risk, in its transaction.
        let grant = self.store.allowed(requester.id).await?.ok_or_else(|| {
            ServiceError::Forbidden(
                "you are not on the allow-list, so you can't act as a customer; ask a director"
                    .into(),
            )
        })?;
        if policy
            .grant_review
            .suspended(grant.reviewed_at, Timestamp::now())
        {
            return Err(ServiceError::Forbidden(
                actas_core::policy::SUSPENDED_FOR_REVIEW.into(),
            ));
        }
        if !requester.active {
            return Err(ServiceError::Forbidden(
                "your staff account is deactivated".into(),
            ));
        }
        let account_id = AccountId::parse(input.account.trim())
            .map_err(|e| ServiceError::invalid("account", e))?;
        let account = self.account(&account_id).await.map_err(|_| {
            ServiceError::invalid("account", format!("there is no account {account_id}"))
        })?;
        let ticket = TicketRef::parse(&input.ticket, &policy.ticket_pattern)
            .map_err(|e| ServiceError::invalid("ticket", e))?;
        let reason =
            Reason::parse(&input.reason).map_err(|e| ServiceError::invalid("reason", e))?;
        let scope = policy
            .scope(input.capabilities.iter().map(String::as_str))
            .map_err(|e| ServiceError::invalid("capabilities", e))?;
        let duration = policy
            .duration(input.minutes)
            .map_err(|e| ServiceError::invalid("minutes", e))?;
        let mode: Mode = match input.mode.as_deref().map(str::trim) {
            None | Some("") => Mode::ReadOnly,
            Some(m) => m.parse().map_err(|e| ServiceError::invalid("mode", e))?,
        };
        let assessment = policy.assess(&scope, &account.flags, account.consent);
        if let Some(sid) = input.for_session {
            let active = self.store.active_session_of(requester.id).await?;
            if active
                .as_ref()
                .is_none_or(|a| a.info().id != sid || a.info().account != account.id)
            {
                return Err(ServiceError::invalid(
                    "for_session",
                    "a scope change must name your own running session on the same account",
                ));
            }
        }
        // Last of the checks on the input, so bad input never reaches the helpdesk; before
        // anything is written, so a refused ticket leaves nothing behind.
        self.check_ticket(ticket.as_str(), account.id.as_str())
            .await?;
        let now = Timestamp::now();
        let mut request = AccessRequest::create(
            NewRequest {
                requester: requester.id,
                account: account.id.clone(),
                ticket: ticket.clone(),
                reason: reason.clone(),
                scope: scope.clone(),
                duration,
                mode,
            },
            assessment,
            now,
        );
        request.for_session = input.for_session;
        let me = Actor::Staff(requester.to_ref());
        let mut events = vec![NewEvent::new(
            me,
            EventData::RequestCreated {
                request: request.id,
                account: account.to_ref(),
                ticket: ticket.clone(),
                reason,
                scope: scope.clone(),
                minutes: duration.minutes(),
                mode,
                risk: assessment.risk,
                for_session: input.for_session,
            },
        )];
        if request.status == RequestStatus::Approved {
            events.push(NewEvent::new(
                Actor::System,
                EventData::RequestApproved {
                    request: request.id,
                    requester: requester.to_ref(),
                    account: account.to_ref(),
                    ticket,
                    scope,
                    minutes: duration.minutes(),
                    by_policy: true,
                    note: None,
                },
            ));
        }
        // The rules the request was assessed on, decided again where they can't change
        // before the write: the requester is active and allowed at this risk, and the
        // customer's consent is what the assessment (code or no code) was based on.
        self.store
            .commit(Unit::new(
                vec![
                    Change::RequireActiveStaff(requester.id),
                    Change::RequireAllowed {
                        staff: requester.id,
                        risk: assessment.risk,
                        reviewed_since: policy.grant_review.suspends_reviewed_before(now),
                    },
                    Change::RequireConsent {
                        account: account.id.clone(),
                        expected: Some(account.consent),
                    },
                    Change::InsertRequest(request.clone()),
                ],
                move |_| events,
            ))
            .await?;
        Ok(request)
    }

    fn must_lead(&self, who: &StaffRecord) -> ServiceResult<()> {
        match who.role {
            Role::Lead | Role::Director if who.active => Ok(()),
            _ => Err(ServiceError::Forbidden(
                "only a support lead or a director can decide on requests".into(),
            )),
        }
    }

    /// A lead approves, optionally narrowing the scope or shortening the time. Never the
    /// requester (invariant 8).
    pub async fn approve_request(
        &self,
        lead: &StaffRecord,
        id: RequestId,
        decision: Approval,
    ) -> ServiceResult<AccessRequest> {
        self.must_lead(lead)?;
        let request = self.request(id).await?;
        let policy = self.policy();
        let narrowed = decision
            .capabilities
            .as_ref()
            .map(|caps| policy.scope(caps.iter().map(String::as_str)))
            .transpose()
            .map_err(|e| ServiceError::invalid("capabilities", e))?;
        let shorter = decision
            .minutes
            .map(|m| policy.duration(Some(m)))
            .transpose()
            .map_err(|e| ServiceError::invalid("minutes", e))?;
        let note = match decision.note.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(n) => Some(Note::parse(n).map_err(|e| ServiceError::invalid("note", e))?),
        };
        let kept = note.clone();
        self.decide(
            request,
            lead,
            |r, now| r.approve(lead.id, narrowed, shorter, kept, now),
            |r, requester, account| EventData::RequestApproved {
                request: r.id,
                requester,
                account,
                ticket: r.ticket.clone(),
                scope: r.scope.clone(),
                minutes: r.duration.minutes(),
                by_policy: false,
                note,
            },
        )
        .await
    }

    /// A lead denies, with a note the requester and the audit log will read.
    pub async fn deny_request(
        &self,
        lead: &StaffRecord,
        id: RequestId,
        note: &str,
    ) -> ServiceResult<AccessRequest> {
        self.must_lead(lead)?;
        let note = Note::parse(note).map_err(|e| ServiceError::invalid("note", e))?;
        let request = self.request(id).await?;
        let kept = note.clone();
        self.decide(
            request,
            lead,
            |r, now| r.deny(lead.id, kept, now),
            |r, requester, account| EventData::RequestDenied {
                request: r.id,
                requester,
                account,
                ticket: r.ticket.clone(),
                note,
            },
        )
        .await
    }

    /// Applies one state-machine step to a request and commits it with its event, refusing
    /// if the request changed meanwhile.
    async fn decide(
        &self,
        mut request: AccessRequest,
        actor: &StaffRecord,
        step: impl FnOnce(&mut AccessRequest, Timestamp) -> Result<(), RequestError>,
        event: impl FnOnce(
            &AccessRequest,
            actas_core::staff::StaffRef,
            actas_core::account::AccountRef,
        ) -> EventData,
    ) -> ServiceResult<AccessRequest> {
        let expected = request.status;
        step(&mut request, Timestamp::now()).map_err(refused)?;
        let requester = self.staff_ref(request.requester).await?;
        let account = self.account(&request.account).await?;
        let event = NewEvent::new(
            Actor::Staff(actor.to_ref()),
            event(&request, requester, account.to_ref()),
        );
        self.store
            .commit(Unit::change(
                Change::UpdateRequest {
                    request: request.clone(),
                    expected,
                },
                event,
            ))
            .await?;
        Ok(request)
    }

    /// The requester withdraws their request.
    pub async fn cancel_request(
        &self,
        requester: &StaffRecord,
        id: RequestId,
    ) -> ServiceResult<AccessRequest> {
        let request = self.request(id).await?;
        self.decide(
            request,
            requester,
            |r, now| r.cancel(requester.id, now),
            |r, _, account| EventData::RequestCancelled {
                request: r.id,
                account,
                ticket: r.ticket.clone(),
            },
        )
        .await
    }

    /// Makes a one-time code for an account: the customer asks for it in the product, which
    /// calls actas with its app key (`via`). Shown once; only a salted hash is kept.
    pub async fn issue_code(
        &self,
        account: &AccountId,
        actor: Actor,
        via: Option<actas_core::app::AppRef>,
    ) -> ServiceResult<(ConfirmationCode, Timestamp)> {
        let account = self.account(account).await?;
        let mut random = [0u8; 8 + 16 + 16];
        getrandom::getrandom(&mut random).map_err(|e| {
            ServiceError::Unexpected(StoreError::Unexpected(
                format!("no random source: {e}").into(),
            ))
        })?;
        let code = ConfirmationCode::from_random(random[..8].try_into().unwrap_or([0; 8]));
        let salt = random[8..24].to_vec();
        let id = hex_id(&random[24..]);
        let now = Timestamp::now();
        let expires_at = now.plus(CODE_TTL);
        let hash = code.hash(&salt);
        let event = NewEvent::new(
            actor,
            EventData::CodeIssued {
                account: account.to_ref(),
                expires_at,
                via,
            },
        );
        self.store
            .commit(Unit::change(
                Change::InsertCode {
                    id,
                    account: account.id.clone(),
                    salt,
                    hash,
                    created_at: now,
                    expires_at,
                },
                event,
            ))
            .await?;
        Ok((code, expires_at))
    }

    /// The agent enters the customer's code for their request. A wrong code is counted
    /// (atomically, so parallel guesses can't exceed the limit) and the fifth locks it.
    pub async fn enter_code(
        &self,
        agent: &StaffRecord,
        id: RequestId,
        typed: &str,
    ) -> ServiceResult<AccessRequest> {
        let mut request = self.request(id).await?;
        if request.requester != agent.id {
            return Err(ServiceError::Forbidden(
                "only the person who made the request can enter its code".into(),
            ));
        }
        if request.locked {
            return Err(ServiceError::Conflict(RequestError::Locked.to_string()));
        }
        if request.status.is_final() {
            return Err(ServiceError::Conflict(format!(
                "this request is {}, so no code is needed",
                request.status
            )));
        }
        let account = self.account(&request.account).await?;
        let now = Timestamp::now();
        let matched = match ConfirmationCode::parse(typed) {
            Ok(code) => self
                .store
                .open_codes(&account.id, now)
                .await?
                .into_iter()
                .find(|c| code.matches(&c.salt, &c.hash)),
            Err(_) => None,
        };
        let me = Actor::Staff(agent.to_ref());
        match matched {
            Some(code) => {
                let expected = request.status;
                request.confirm_code(now).map_err(refused)?;
                let event = NewEvent::new(
                    me,
                    EventData::CodeAccepted {
                        request: request.id,
                        account: account.to_ref(),
                        ticket: request.ticket.clone(),
                    },
                );
                self.store
                    .commit(Unit::new(
                        vec![
                            Change::UseCode {
                                id: code.id,
                                request: request.id,
                                at: now,
                            },
                            Change::UpdateRequest {
                                request: request.clone(),
                                expected,
                            },
                        ],
                        move |_| vec![event],
                    ))
                    .await?;
                Ok(request)
            }
            None => {
                let (account_ref, ticket, rid) =
                    (account.to_ref(), request.ticket.clone(), request.id);
                let out = self
                    .store
                    .commit(Unit::new(
                        vec![Change::CodeFailed { request: rid }],
                        move |applied| {
                            let failures = applied
                                .iter()
                                .find_map(|a| match a {
                                    Applied::CodeFailures(n) => Some(*n),
                                    _ => None,
                                })
                                .unwrap_or(0);
                            vec![NewEvent::new(
                                me,
                                EventData::CodeRejected {
                                    request: rid,
                                    account: account_ref,
                                    ticket,
                                    failures,
                                    locked: failures >= actas_core::request::MAX_CODE_FAILURES,
                                },
                            )]
                        },
                    ))
                    .await?;
                let _ = out;
                let request = self.request(id).await?;
                if request.locked {
                    Err(ServiceError::Conflict(RequestError::Locked.to_string()))
                } else {
                    Err(ServiceError::invalid(
                        "code",
                        format!(
                            "that code is not right (or has expired or been used); {} tries left",
                            actas_core::request::MAX_CODE_FAILURES
                                .saturating_sub(request.code_failures)
                        ),
                    ))
                }
            }
        }
    }

    pub(super) async fn staff_ref(
        &self,
        id: actas_core::ids::StaffId,
    ) -> ServiceResult<actas_core::staff::StaffRef> {
        Ok(self
            .store
            .staff(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("staff member {id}")))?
            .to_ref())
    }
}

pub(super) fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
