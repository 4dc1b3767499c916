//! The weekly review of ended sessions (the seed's "review real sessions every week"):
//! which sessions a lead must look at, which first, and when a review is overdue.
//!
//! A session is flagged when something in it deserves a second pair of eyes: it changed
//! the customer's account, something was blocked, the account is sensitive, the scope
//! changed during it, or the customer revoked consent while it ran. Flagged sessions are
//! always reviewed; policy may sample the others. The sample is decided by a random
//! number 0–99 the store draws when the session is written and never shows the agent, so
//! it is the same on every page, for every lead, on every instance, and nobody knows in
//! advance which quiet session will be looked at.

use crate::Timestamp;
use crate::session::EndReason;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What a reviewer concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to follow up.
    Fine,
    /// Someone should look into it (the note says what).
    FollowUp,
}

impl Outcome {
    /// Parses `fine` or `follow_up`.
    pub fn parse(text: &str) -> Result<Self, ReviewError> {
        match text.trim() {
            "fine" => Ok(Self::Fine),
            "follow_up" => Ok(Self::FollowUp),
            other => Err(ReviewError::Outcome(other.to_owned())),
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fine => "fine",
            Self::FollowUp => "follow_up",
        }
    }

    /// In words, as a reviewer would say it.
    pub fn words(self) -> &'static str {
        match self {
            Self::Fine => "fine",
            Self::FollowUp => "needs follow-up",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a review can't be taken as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not one of the two outcomes.
    #[error("{0:?} is not an outcome; choose \"fine\" or \"follow_up\"")]
    Outcome(String),
    /// A follow-up with nothing to follow.
    #[error("say what needs following up")]
    FollowUpNeedsNote,
}

/// A reviewer's verdict: a follow-up always says what to follow up.
pub fn check_verdict(outcome: Outcome, has_note: bool) -> Result<(), ReviewError> {
    match (outcome, has_note) {
        (Outcome::FollowUp, false) => Err(ReviewError::FollowUpNeedsNote),
        _ => Ok(()),
    }
}

/// What the store knows about an ended session, counted from its ledger events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionFacts {
    /// Changes made (`session.action`).
    pub changes: u64,
    /// The agent's requests that were blocked.
    pub blocks: u64,
    /// Support notes written on it.
    pub notes: u64,
    /// Requests to change the session's scope.
    pub scope_changes: u64,
    /// The account carries a flag the policy calls sensitive.
    pub sensitive: bool,
    /// Why the session ended.
    pub end_reason: Option<EndReason>,
}

/// One reason a session needs a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum Flag {
    /// It changed the customer's account.
    Changes {
        /// How many changes.
        count: u64,
    },
    /// Something it asked for was blocked or refused.
    Blocked {
        /// How many.
        count: u64,
    },
    /// The account is sensitive.
    SensitiveAccount,
    /// The agent asked for a different scope during it.
    ScopeChanged {
        /// How many times.
        count: u64,
    },
    /// The customer revoked consent while it ran.
    ConsentRevoked,
    /// It changed the account and nobody wrote what was done (the banner's End and the
    /// time limits end a session without asking for a note).
    NoNote,
}

impl Flag {
    /// In words, for the queue: "2 changes", "a sensitive account".
    pub fn words(self) -> String {
        match self {
            Self::Changes { count } => crate::words::count(count, "change", "changes"),
            Self::Blocked { count } => {
                crate::words::count(count, "blocked attempt", "blocked attempts")
            }
            Self::SensitiveAccount => "a sensitive account".to_owned(),
            Self::ScopeChanged { count } => {
                crate::words::count(count, "scope change", "scope changes")
            }
            Self::ConsentRevoked => "the customer revoked consent during it".to_owned(),
            Self::NoNote => "no note of what was changed".to_owned(),
        }
    }
}

/// Why a session needs a review, most serious first; empty when nothing stands out.
pub fn flags(f: &SessionFacts) -> Vec<Flag> {
    let mut out = Vec::new();
    if f.end_reason == Some(EndReason::ConsentRevoked) {
        out.push(Flag::ConsentRevoked);
    }
    if f.changes > 0 {
        out.push(Flag::Changes { count: f.changes });
        if f.notes == 0 {
            out.push(Flag::NoNote);
        }
    }
    if f.blocks > 0 {
        out.push(Flag::Blocked { count: f.blocks });
    }
    if f.scope_changes > 0 || f.end_reason == Some(EndReason::ScopeChanged) {
        out.push(Flag::ScopeChanged {
            count: f.scope_changes.max(1),
        });
    }
    if f.sensitive {
        out.push(Flag::SensitiveAccount);
    }
    out
}

/// The review rules (`[review]` in the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewRules {
    /// How soon after a session ends its review is due (`within_days`, default 7).
    pub within: Duration,
    /// The share of unflagged sessions reviewed too, 0–100 (`sample_unflagged_percent`,
    /// default 10).
    pub sample_percent: u8,
}

impl Default for ReviewRules {
    fn default() -> Self {
        Self {
            within: Duration::from_secs(7 * 86_400),
            sample_percent: 10,
        }
    }
}

impl ReviewRules {
    /// When the review of a session that ended at `ended_at` is due.
    pub fn due(&self, ended_at: Timestamp) -> Timestamp {
        ended_at.plus(self.within)
    }

    /// Whether an unflagged session whose random bucket (0–99, drawn when it was
    /// written) is `bucket` is in the sample: about `sample_percent` of sessions in all.
    pub fn sampled(&self, bucket: u8) -> bool {
        bucket < self.sample_percent
    }

    /// Whether a session with these flags and bucket is in the review queue at all.
    pub fn needs_review(&self, flags: &[Flag], bucket: u8) -> bool {
        !flags.is_empty() || self.sampled(bucket)
    }

    /// Whether an unreviewed session that ended at `ended_at` is overdue at `now`.
    pub fn overdue(&self, ended_at: Timestamp, now: Timestamp) -> bool {
        self.due(ended_at) < now
    }
}

/// The Monday 00:00 UTC that starts the week holding `t`: weekly summaries run Monday to
/// Monday.
pub fn week_start(t: Timestamp) -> Timestamp {
    const DAY: i64 = 86_400_000;
    let day = t.as_millis().div_euclid(DAY);
    // 1970-01-01 was a Thursday: day 0 is three days after a Monday.
    let monday = day - (day + 3).rem_euclid(7);
    Timestamp::from_millis(monday * DAY)
}

/// How many failed attempts of one kind in a week count as "repeated", and are listed
/// on the weekly summary on their own (the seed: "failed access attempts pile up and
/// nobody reviews them").
pub const REPEATED_FAILURES: u64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_session_has_no_flags_and_each_fact_raises_its_own() {
        assert!(flags(&SessionFacts::default()).is_empty());
        let all = flags(&SessionFacts {
            changes: 2,
            notes: 1,
            blocks: 1,
            scope_changes: 1,
            sensitive: true,
            end_reason: Some(EndReason::ConsentRevoked),
        });
        assert_eq!(
            all,
            vec![
                Flag::ConsentRevoked,
                Flag::Changes { count: 2 },
                Flag::Blocked { count: 1 },
                Flag::ScopeChanged { count: 1 },
                Flag::SensitiveAccount,
            ]
        );
        let words: Vec<String> = all.iter().map(|f| f.words()).collect();
        assert_eq!(
            words,
            [
                "the customer revoked consent during it",
                "2 changes",
                "1 blocked attempt",
                "1 scope change",
                "a sensitive account"
            ]
        );
        // Changes with nobody saying what was done are a flag of their own.
        let silent = flags(&SessionFacts {
            changes: 1,
            ..SessionFacts::default()
        });
        assert_eq!(silent, vec![Flag::Changes { count: 1 }, Flag::NoNote]);
        assert_eq!(Flag::NoNote.words(), "no note of what was changed");
        // A session ended for a scope change is flagged even if its request is elsewhere.
        let moved = flags(&SessionFacts {
            end_reason: Some(EndReason::ScopeChanged),
            ..SessionFacts::default()
        });
        assert_eq!(moved, vec![Flag::ScopeChanged { count: 1 }]);
    }

    #[test]
    fn the_sample_takes_the_share_policy_asks() {
        let rules = ReviewRules {
            sample_percent: 20,
            ..ReviewRules::default()
        };
        assert_eq!((0..100u8).filter(|b| rules.sampled(*b)).count(), 20);
        let none = ReviewRules {
            sample_percent: 0,
            ..ReviewRules::default()
        };
        let all = ReviewRules {
            sample_percent: 100,
            ..ReviewRules::default()
        };
        assert!((0..100u8).all(|b| !none.sampled(b) && all.sampled(b)));
        assert!(none.needs_review(&[Flag::SensitiveAccount], 0));
        assert!(!none.needs_review(&[], 0));
    }

    #[test]
    fn a_review_is_overdue_after_the_policy_window() {
        let rules = ReviewRules::default();
        let ended = Timestamp::from_millis(1_000_000);
        assert!(!rules.overdue(ended, ended.plus(Duration::from_secs(7 * 86_400))));
        assert!(rules.overdue(ended, ended.plus(Duration::from_secs(7 * 86_400 + 1))));
    }

    #[test]
    fn weeks_start_on_monday_at_midnight_utc() {
        // 2026-12-01 is a Tuesday; its week starts Monday 2026-11-30.
        let tuesday = Timestamp::parse("2026-12-01T15:16:00Z").expect("time");
        let monday = Timestamp::parse("2026-11-30").expect("date");
        assert_eq!(week_start(tuesday), monday);
        assert_eq!(week_start(monday), monday);
        let sunday_night = Timestamp::parse("2026-11-29T23:59:59Z").expect("time");
        assert_eq!(
            week_start(sunday_night),
            Timestamp::parse("2026-11-23").expect("date")
        );
    }

    #[test]
    fn a_follow_up_says_what_to_follow() {
        assert_eq!(Outcome::parse("fine"), Ok(Outcome::Fine));
        assert_eq!(Outcome::parse("follow_up"), Ok(Outcome::FollowUp));
        assert!(Outcome::parse("ok").is_err());
        assert_eq!(
            check_verdict(Outcome::FollowUp, false),
            Err(ReviewError::FollowUpNeedsNote)
        );
        assert_eq!(check_verdict(Outcome::Fine, false), Ok(()));
    }
}
