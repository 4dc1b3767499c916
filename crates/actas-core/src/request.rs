//! The access request: `pending → approved | denied | expired | cancelled`,
//! `approved → used | expired`. A requester can never approve their own request.

use crate::Timestamp;
use crate::ids::{AccountId, RequestId, SessionId, StaffId};
use crate::policy::{Assessment, SessionDuration};
use crate::scope::{Mode, Risk, Scope};
use crate::text::{Note, Reason, TicketRef};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long a request waits for a decision before it expires.
pub const PENDING_TTL: Duration = Duration::from_secs(60 * 60);
/// How long an approval may wait before the session is started.
pub const APPROVED_TTL: Duration = Duration::from_secs(30 * 60);
/// Wrong confirmation codes a request survives; the fifth locks it (invariant 12).
pub const MAX_CODE_FAILURES: u32 = 5;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Waiting for a lead.
    Pending,
    /// Approved by a lead or by policy; a session may start.
    Approved,
    /// Refused by a lead.
    Denied,
    /// Not decided or not used in time.
    Expired,
    /// Withdrawn by the requester.
    Cancelled,
    /// A session was started from it.
    Used,
}

impl RequestStatus {
    /// The status's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Expired => "expired",
            RequestStatus::Cancelled => "cancelled",
            RequestStatus::Used => "used",
        }
    }

    /// Whether nothing more can happen to the request.
    pub fn is_final(self) -> bool {
        !matches!(self, RequestStatus::Pending | RequestStatus::Approved)
    }
}

impl FromStr for RequestStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => RequestStatus::Pending,
            "approved" => RequestStatus::Approved,
            "denied" => RequestStatus::Denied,
            "expired" => RequestStatus::Expired,
            "cancelled" => RequestStatus::Cancelled,
            "used" => RequestStatus::Used,
            other => return Err(format!("{other:?} is not a request status")),
        })
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who approved a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "by", content = "staff")]
pub enum Approver {
    /// Low risk on a normal account: approved by the policy itself.
    Policy,
    /// A lead, never the requester.
    Lead(StaffId),
}

/// Why a change to a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The requester tried to approve or deny their own request.
    #[error("you can't decide on your own request; another lead must approve or deny it")]
    OwnRequest,
    /// The request is not in a state that allows this.
    #[error("this request is {0}, so that can't be done")]
    WrongStatus(RequestStatus),
    /// The request expired before this.
    #[error("this request has expired; make a new one")]
    Expired,
    /// The narrowed scope adds capabilities that were not requested.
    #[error("an approval can narrow the scope but not widen it")]
    WiderScope,
    /// The shortened duration is longer than requested.
    #[error("an approval can shorten the time but not lengthen it")]
    LongerDuration,
    /// Only the requester may do this.
    #[error("only the person who made the request can do this")]
    NotRequester,
    /// The customer's code has not been entered yet.
    #[error("this request needs the customer's confirmation code first")]
    CodeMissing,
    /// Too many wrong codes were entered.
    #[error("this request is locked after 5 wrong confirmation codes; make a new request")]
    Locked,
}

/// An access request and its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// The request.
    pub id: RequestId,
    /// Who asked.
    pub requester: StaffId,
    /// For which account.
    pub account: AccountId,
    /// For which ticket.
    pub ticket: TicketRef,
    /// Why.
    pub reason: Reason,
    /// What was asked for, or what was approved once decided (possibly narrowed).
    pub scope: Scope,
    /// For how long, or what was approved (possibly shortened).
    pub duration: SessionDuration,
    /// Live, read-only or mirror.
    pub mode: Mode,
    /// The highest risk in the scope asked for.
    pub risk: Risk,
    /// Whether the customer's confirmation code is needed.
    pub needs_code: bool,
    /// Whether it has been given.
    pub code_confirmed: bool,
    /// Wrong codes entered so far.
    pub code_failures: u32,
    /// Set once too many wrong codes were entered; nothing more can be done with it.
    pub locked: bool,
    /// Where it is.
    pub status: RequestStatus,
    /// When it was made.
    pub created_at: Timestamp,
    /// When the current stage (pending or approved) runs out.
    pub expires_at: Timestamp,
    /// Who approved, once approved.
    pub approver: Option<Approver>,
    /// Who denied or cancelled, once decided that way.
    pub decided_by: Option<StaffId>,
    /// The note given with a denial or approval.
    pub note: Option<Note>,
    /// The session whose scope this request would change: starting from it ends that
    /// session (`scope_changed`) and starts a new one, so the original is never edited.
    pub for_session: Option<SessionId>,
}

/// What a new request asks for.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Who asks.
    pub requester: StaffId,
    /// For which account.
    pub account: AccountId,
    /// For which ticket.
    pub ticket: TicketRef,
    /// Why.
    pub reason: Reason,
    /// What.
    pub scope: Scope,
    /// How long.
    pub duration: SessionDuration,
    /// Which mode.
    pub mode: Mode,
}

impl AccessRequest {
    /// Creates a request. If the assessment needs no lead it is approved by policy at once.
    pub fn create(new: NewRequest, assessment: Assessment, now: Timestamp) -> Self {
        let auto = !assessment.needs_lead;
        Self {
            id: RequestId::random(),
            requester: new.requester,
            account: new.account,
            ticket: new.ticket,
            reason: new.reason,
            scope: new.scope,
            duration: new.duration,
            mode: new.mode,
            risk: assessment.risk,
            needs_code: assessment.needs_code,
            code_confirmed: false,
            code_failures: 0,
            locked: false,
            for_session: None,
            status: if auto {
                RequestStatus::Approved
            } else {
                RequestStatus::Pending
            },
            created_at: now,
            expires_at: now.plus(if auto { APPROVED_TTL } else { PENDING_TTL }),
            approver: auto.then_some(Approver::Policy),
            decided_by: None,
            note: None,
        }
    }

    fn live(&mut self, now: Timestamp) -> Result<(), RequestError> {
        if !self.status.is_final() && now >= self.expires_at {
            self.status = RequestStatus::Expired;
        }
        match self.status {
            RequestStatus::Expired => Err(RequestError::Expired),
            _ => Ok(()),
        }
    }

    /// Marks the request expired if its time has run out; returns whether it did now.
    pub fn expire_if_due(&mut self, now: Timestamp) -> bool {
        let before = self.status;
        let _ = self.live(now);
        before != self.status
    }

    /// A lead approves, optionally narrowing the scope or shortening the time.
    pub fn approve(
        &mut self,
        lead: StaffId,
        narrowed: Option<Scope>,
        shorter: Option<SessionDuration>,
        note: Option<Note>,
        now: Timestamp,
    ) -> Result<(), RequestError> {
        if lead == self.requester {
            return Err(RequestError::OwnRequest);
        }
        self.live(now)?;
        if self.status != RequestStatus::Pending {
            return Err(RequestError::WrongStatus(self.status));
        }
        if narrowed
            .as_ref()
            .is_some_and(|s| !s.is_subset_of(&self.scope))
        {
            return Err(RequestError::WiderScope);
        }
        if shorter.is_some_and(|d| d > self.duration) {
            return Err(RequestError::LongerDuration);
        }
        if let Some(scope) = narrowed {
            self.scope = scope;
        }
        if let Some(d) = shorter {
            self.duration = d;
        }
        self.status = RequestStatus::Approved;
        self.approver = Some(Approver::Lead(lead));
        self.note = note;
        self.expires_at = now.plus(APPROVED_TTL);
        Ok(())
    }

    /// A lead denies, with a note.
    pub fn deny(&mut self, lead: StaffId, note: Note, now: Timestamp) -> Result<(), RequestError> {
        if lead == self.requester {
            return Err(RequestError::OwnRequest);
        }
        self.live(now)?;
        if self.status != RequestStatus::Pending {
            return Err(RequestError::WrongStatus(self.status));
        }
        self.status = RequestStatus::Denied;
        self.decided_by = Some(lead);
        self.note = Some(note);
        Ok(())
    }

    /// The requester withdraws a pending or approved request.
    pub fn cancel(&mut self, by: StaffId, now: Timestamp) -> Result<(), RequestError> {
        if by != self.requester {
            return Err(RequestError::NotRequester);
        }
        self.live(now)?;
        if self.status.is_final() {
            return Err(RequestError::WrongStatus(self.status));
        }
        self.status = RequestStatus::Cancelled;
        self.decided_by = Some(by);
        Ok(())
    }

    /// Records a wrong code. Returns true when this failure locked the request.
    pub fn record_wrong_code(&mut self, now: Timestamp) -> Result<bool, RequestError> {
        if self.locked {
            return Err(RequestError::Locked);
        }
        self.live(now)?;
        if self.status.is_final() {
            return Err(RequestError::WrongStatus(self.status));
        }
        self.code_failures += 1;
        self.locked = self.code_failures >= MAX_CODE_FAILURES;
        Ok(self.locked)
    }

    /// Records that the customer's confirmation code was entered correctly.
    pub fn confirm_code(&mut self, now: Timestamp) -> Result<(), RequestError> {
        if self.locked {
            return Err(RequestError::Locked);
        }
        self.live(now)?;
        if self.status.is_final() {
            return Err(RequestError::WrongStatus(self.status));
        }
        self.code_confirmed = true;
        Ok(())
    }

    /// Uses an approved request to start a session; only its requester can, once.
    pub fn use_for_session(&mut self, by: StaffId, now: Timestamp) -> Result<(), RequestError> {
        if by != self.requester {
            return Err(RequestError::NotRequester);
        }
        if self.locked {
            return Err(RequestError::Locked);
        }
        self.live(now)?;
        if self.status != RequestStatus::Approved {
            return Err(RequestError::WrongStatus(self.status));
        }
        if self.needs_code && !self.code_confirmed {
            return Err(RequestError::CodeMissing);
        }
        self.status = RequestStatus::Used;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use proptest::prelude::*;

    fn staff(n: i64) -> StaffId {
        StaffId::new(n).expect("id")
    }

    fn request(caps: &[&str]) -> AccessRequest {
        let p = Policy::starter();
        let scope = p.scope(caps.iter().copied()).expect("scope");
        let assessment = p.assess(&scope, [], crate::account::Consent::Allowed);
        AccessRequest::create(
            NewRequest {
                requester: staff(1),
                account: AccountId::parse("acme").expect("id"),
                ticket: TicketRef::parse("#4821", &p.ticket_pattern).expect("ticket"),
                reason: Reason::parse("Check invoice tax rate after plan change").expect("reason"),
                scope,
                duration: p.duration(None).expect("duration"),
                mode: Mode::ReadOnly,
            },
            assessment,
            Timestamp::from_millis(0),
        )
    }

    #[test]
    fn low_risk_is_approved_by_policy_and_medium_waits() {
        let r = request(&[]);
        assert_eq!(
            (r.status, r.approver),
            (RequestStatus::Approved, Some(Approver::Policy))
        );
        let r = request(&["edit_settings"]);
        assert_eq!((r.status, r.approver), (RequestStatus::Pending, None));
    }

    #[test]
    fn a_lead_can_narrow_but_not_widen() {
        let p = Policy::starter();
        let mut r = request(&["edit_settings", "edit_profile"]);
        let wider = p.scope(["export"]).expect("scope");
        let t = Timestamp::from_millis(1);
        assert_eq!(
            r.approve(staff(2), Some(wider), None, None, t),
            Err(RequestError::WiderScope)
        );
        let narrow = p.scope(["edit_settings"]).expect("scope");
        r.approve(staff(2), Some(narrow.clone()), None, None, t)
            .expect("approve");
        assert_eq!(r.scope, narrow);
        assert_eq!(r.approver, Some(Approver::Lead(staff(2))));
    }

    #[test]
    fn high_risk_needs_the_code_before_use() {
        let mut r = request(&["export"]);
        let t = Timestamp::from_millis(1);
        r.approve(staff(2), None, None, None, t).expect("approve");
        assert_eq!(
            r.use_for_session(staff(1), t),
            Err(RequestError::CodeMissing)
        );
        r.confirm_code(t).expect("code");
        assert_eq!(
            r.use_for_session(staff(3), t),
            Err(RequestError::NotRequester)
        );
        r.use_for_session(staff(1), t).expect("use");
        assert_eq!(
            r.use_for_session(staff(1), t),
            Err(RequestError::WrongStatus(RequestStatus::Used))
        );
    }

    #[test]
    fn undecided_requests_expire() {
        let mut r = request(&["edit_settings"]);
        let late = Timestamp::from_millis(PENDING_TTL.as_millis() as i64);
        assert_eq!(
            r.approve(staff(2), None, None, None, late),
            Err(RequestError::Expired)
        );
        assert_eq!(r.status, RequestStatus::Expired);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Approve(i64),
        Deny(i64),
        Cancel(i64),
        Use(i64),
        Code,
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1i64..4).prop_map(Op::Approve),
            (1i64..4).prop_map(Op::Deny),
            (1i64..4).prop_map(Op::Cancel),
            (1i64..4).prop_map(Op::Use),
            Just(Op::Code),
            (0u64..40 * 60_000).prop_map(Op::Wait),
        ]
    }

    fn allowed(from: RequestStatus, to: RequestStatus) -> bool {
        use RequestStatus::*;
        from == to
            || matches!(
                (from, to),
                (Pending, Approved | Denied | Expired | Cancelled)
                    | (Approved, Used | Expired | Cancelled)
            )
    }

    proptest! {
        #[test]
        fn no_sequence_lets_a_requester_approve_their_own_request_or_leave_a_final_state(
            caps in prop_oneof![Just(vec![]), Just(vec!["edit_settings"]), Just(vec!["export"])],
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            let mut r = request(&caps);
            let mut now = 0i64;
            for op in ops {
                let before = r.status;
                let t = Timestamp::from_millis(now);
                let _ = match op {
                    Op::Approve(s) => r.approve(staff(s), None, None, None, t),
                    Op::Deny(s) => r.deny(staff(s), Note::parse("no").expect("note"), t),
                    Op::Cancel(s) => r.cancel(staff(s), t),
                    Op::Use(s) => r.use_for_session(staff(s), t),
                    Op::Code => r.confirm_code(t),
                    Op::Wait(ms) => { now += ms as i64; Ok(()) }
                };
                prop_assert!(allowed(before, r.status), "{before} -> {}", r.status);
                prop_assert_ne!(r.approver, Some(Approver::Lead(r.requester)));
                prop_assert_ne!(r.decided_by.filter(|_| r.status == RequestStatus::Denied), Some(r.requester));
                if r.status == RequestStatus::Used && r.needs_code {
                    prop_assert!(r.code_confirmed);
                }
            }
        }
    }
}
