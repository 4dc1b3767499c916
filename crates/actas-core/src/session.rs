//! The support session: `active → ended(reason)`, and an ended session never comes back.
//!
//! [`ActiveSession::end`] consumes the active session, so ending twice does not compile;
//! [`Session`] is the stored form, where every operation on an ended session is refused.

use crate::Timestamp;
use crate::ids::{AccountId, RequestId, SessionId, StaffId};
use crate::scope::{Mode, Scope};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a session ended. Each is recorded in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The staff member pressed End.
    Manual,
    /// The session reached its time limit.
    HardLimit,
    /// Nothing happened for the idle limit.
    IdleLimit,
    /// The customer revoked consent.
    ConsentRevoked,
    /// A director ended it.
    RevokedByAdmin,
    /// The staff member was deactivated.
    StaffDisabled,
    /// The scope changed; the work continues in a new session.
    ScopeChanged,
}

impl EndReason {
    /// Every reason, for listings and tests.
    pub const ALL: [EndReason; 7] = [
        EndReason::Manual,
        EndReason::HardLimit,
        EndReason::IdleLimit,
        EndReason::ConsentRevoked,
        EndReason::RevokedByAdmin,
        EndReason::StaffDisabled,
        EndReason::ScopeChanged,
    ];

    /// The reason's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Manual => "manual",
            EndReason::HardLimit => "hard_limit",
            EndReason::IdleLimit => "idle_limit",
            EndReason::ConsentRevoked => "consent_revoked",
            EndReason::RevokedByAdmin => "revoked_by_admin",
            EndReason::StaffDisabled => "staff_disabled",
            EndReason::ScopeChanged => "scope_changed",
        }
    }
}

impl FromStr for EndReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EndReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a session end reason"))
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who and what a session is about; fixed for its whole life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session.
    pub id: SessionId,
    /// The approved request it was started from.
    pub request: RequestId,
    /// The one staff member it serves.
    pub staff: StaffId,
    /// The one account it acts on.
    pub account: AccountId,
    /// What it may do.
    pub scope: Scope,
    /// Live, read-only or mirror.
    pub mode: Mode,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ends at the latest (start + approved duration, capped by the hard limit).
    pub expires_at: Timestamp,
    /// How long it may sit idle.
    pub idle_limit: Duration,
}

/// A session that is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    info: SessionInfo,
    last_seen: Timestamp,
}

/// A session that has ended, with when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    /// What it was.
    pub info: SessionInfo,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Why it ended.
    pub reason: EndReason,
}

impl ActiveSession {
    /// Starts a session. `duration` is the approved length; `hard_limit` caps it.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        id: SessionId,
        request: RequestId,
        staff: StaffId,
        account: AccountId,
        scope: Scope,
        mode: Mode,
        now: Timestamp,
        duration: Duration,
        hard_limit: Duration,
        idle_limit: Duration,
    ) -> Self {
        Self {
            info: SessionInfo {
                id,
                request,
                staff,
                account,
                scope,
                mode,
                started_at: now,
                expires_at: now.plus(duration.min(hard_limit)),
                idle_limit,
            },
            last_seen: now,
        }
    }

    /// Rebuilds an active session from storage.
    pub fn restore(info: SessionInfo, last_seen: Timestamp) -> Self {
        Self { info, last_seen }
    }

    /// Its fixed details.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// When it last served a request.
    pub fn last_seen(&self) -> Timestamp {
        self.last_seen
    }

    /// Whether it may still serve at `now`; if not, the limit it passed and when.
    pub fn check(&self, now: Timestamp) -> Result<(), (EndReason, Timestamp)> {
        let idle_deadline = self.last_seen.plus(self.info.idle_limit);
        if now >= self.info.expires_at && self.info.expires_at <= idle_deadline {
            Err((EndReason::HardLimit, self.info.expires_at))
        } else if now >= idle_deadline {
            Err((EndReason::IdleLimit, idle_deadline))
        } else if now >= self.info.expires_at {
            Err((EndReason::HardLimit, self.info.expires_at))
        } else {
            Ok(())
        }
    }

    /// Records activity at `now`, refreshing the idle clock. Fails with the limit passed,
    /// in which case the caller must end the session with that reason.
    pub fn touch(&mut self, now: Timestamp) -> Result<(), (EndReason, Timestamp)> {
        self.check(now)?;
        self.last_seen = self.last_seen.max(now);
        Ok(())
    }

    /// Time left before the hard limit.
    pub fn time_left(&self, now: Timestamp) -> Duration {
        self.info.expires_at.since(now)
    }

    /// Ends the session. Consumes it, so it can't be ended twice or used afterwards.
    pub fn end(self, reason: EndReason, at: Timestamp) -> EndedSession {
        EndedSession {
            info: self.info,
            ended_at: at,
            reason,
        }
    }
}

/// Why an operation on a stored session was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// It has ended.
    #[error("this session ended ({0}); start a new one for new work")]
    Ended(EndReason),
    /// It passed a limit just now and has been ended.
    #[error("this session has just ended ({0})")]
    Expired(EndReason),
}

/// A session as stored: active or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// Running.
    Active(ActiveSession),
    /// Over, for good.
    Ended(EndedSession),
}

impl Session {
    /// Its fixed details.
    pub fn info(&self) -> &SessionInfo {
        match self {
            Session::Active(a) => a.info(),
            Session::Ended(e) => &e.info,
        }
    }

    /// Serves a request at `now`: refreshes the idle clock, or ends the session if a limit
    /// has passed. An ended session is never revived.
    pub fn serve(&mut self, now: Timestamp) -> Result<(), SessionError> {
        match self {
            Session::Ended(e) => Err(SessionError::Ended(e.reason)),
            Session::Active(a) => match a.touch(now) {
                Ok(()) => Ok(()),
                Err((reason, at)) => {
                    let ended = a.clone().end(reason, at);
                    *self = Session::Ended(ended);
                    Err(SessionError::Expired(reason))
                }
            },
        }
    }

    /// Ends the session for `reason`. Ending an ended session is refused.
    pub fn end(
        &mut self,
        reason: EndReason,
        now: Timestamp,
    ) -> Result<&EndedSession, SessionError> {
        match self {
            Session::Ended(e) => Err(SessionError::Ended(e.reason)),
            Session::Active(a) => {
                // If a limit already passed, that limit is the true end reason.
                let (reason, at) = match a.check(now) {
                    Ok(()) => (reason, now),
                    Err(passed) => passed,
                };
                *self = Session::Ended(a.clone().end(reason, at));
                match self {
                    Session::Ended(e) => Ok(e),
                    Session::Active(_) => Err(SessionError::Ended(reason)),
                }
            }
        }
    }

    /// Whether it is active.
    pub fn is_active(&self) -> bool {
        matches!(self, Session::Active(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: u64 = 60_000;

    fn session(duration_min: u64) -> Session {
        Session::Active(ActiveSession::start(
            SessionId::random(),
            RequestId::random(),
            StaffId::new(1).expect("id"),
            AccountId::parse("acme").expect("id"),
            Scope::view_only(),
            Mode::ReadOnly,
            Timestamp::from_millis(0),
            Duration::from_millis(duration_min * MIN),
            Duration::from_millis(30 * MIN),
            Duration::from_millis(15 * MIN),
        ))
    }

    #[test]
    fn idle_and_hard_limits_end_the_session_with_the_right_reason() {
        let mut s = session(30);
        assert_eq!(s.serve(Timestamp::from_millis(14 * MIN as i64)), Ok(()));
        assert_eq!(
            s.serve(Timestamp::from_millis(29 * MIN as i64 + 1)),
            Err(SessionError::Expired(EndReason::IdleLimit))
        );
        let mut s = session(30);
        for m in (10..=30).step_by(10) {
            let r = s.serve(Timestamp::from_millis(m * MIN as i64));
            if m < 30 {
                assert_eq!(r, Ok(()));
            } else {
                assert_eq!(r, Err(SessionError::Expired(EndReason::HardLimit)));
            }
        }
        assert_eq!(
            s.serve(Timestamp::from_millis(31 * MIN as i64)),
            Err(SessionError::Ended(EndReason::HardLimit))
        );
    }

    #[test]
    fn the_requested_duration_is_capped_by_the_hard_limit() {
        let s = session(600);
        assert_eq!(s.info().expires_at, Timestamp::from_millis(30 * MIN as i64));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Wait(u64),
        Serve,
        End(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..20 * MIN).prop_map(Op::Wait),
            Just(Op::Serve),
            (0usize..EndReason::ALL.len()).prop_map(Op::End),
        ]
    }

    proptest! {
        #[test]
        fn no_sequence_revives_an_ended_session_or_serves_past_a_limit(
            duration in 1u64..60, ops in proptest::collection::vec(op(), 1..60)
        ) {
            let mut s = session(duration);
            let mut now = 0i64;
            let mut last_served = 0i64;
            let mut ended = false;
            let hard = s.info().expires_at.as_millis();
            for op in ops {
                match op {
                    Op::Wait(ms) => now += ms as i64,
                    Op::Serve => {
                        let r = s.serve(Timestamp::from_millis(now));
                        if r.is_ok() {
                            prop_assert!(!ended, "an ended session served a request");
                            prop_assert!(now < hard, "served past the hard limit");
                            prop_assert!(now - last_served < 15 * MIN as i64, "served after idle time");
                            last_served = now;
                        } else {
                            ended = true;
                        }
                    }
                    Op::End(i) => {
                        let r = s.end(EndReason::ALL[i], Timestamp::from_millis(now));
                        prop_assert_eq!(r.is_ok(), !ended, "end succeeded exactly when active");
                        ended = true;
                    }
                }
                prop_assert_eq!(s.is_active(), !ended);
            }
        }
    }
}
