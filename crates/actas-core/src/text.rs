//! Free text with rules: the reason for a session, the ticket it belongs to, and notes.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The example every reason error shows, so the fix is obvious.
pub const GOOD_REASON_EXAMPLE: &str = "Check invoice tax rate after plan change";

/// Words that say nothing about *what* will be looked at or *why*. A reason made only of
/// these ("need access to help the customer") is refused as generic.
const GENERIC_WORDS: &[&str] = &[
    "a",
    "access",
    "account",
    "accounts",
    "an",
    "and",
    "as",
    "assist",
    "assistance",
    "at",
    "check",
    "checking",
    "customer",
    "customers",
    "debug",
    "debugging",
    "do",
    "fix",
    "fixing",
    "for",
    "from",
    "help",
    "helping",
    "i",
    "in",
    "into",
    "investigate",
    "investigating",
    "issue",
    "issues",
    "it",
    "log",
    "login",
    "look",
    "looking",
    "me",
    "my",
    "need",
    "needed",
    "needs",
    "of",
    "on",
    "please",
    "problem",
    "problems",
    "request",
    "requested",
    "see",
    "some",
    "something",
    "stuff",
    "support",
    "test",
    "testing",
    "the",
    "their",
    "them",
    "things",
    "this",
    "to",
    "user",
    "users",
    "verify",
    "want",
    "with",
    "work",
    "working",
];

/// Why a reason was refused. Each message says why and shows a good example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    /// Fewer than 15 characters.
    #[error(
        "the reason is too short: write at least 15 characters saying what you will look at and why, for example “{GOOD_REASON_EXAMPLE}”"
    )]
    TooShort,
    /// Fewer than three words.
    #[error(
        "the reason needs at least 3 words saying what you will look at and why, for example “{GOOD_REASON_EXAMPLE}”"
    )]
    TooFewWords,
    /// Only generic words such as "support" or "need access".
    #[error(
        "“{0}” is too general: the customer will read this later, so say what you will look at and why, for example “{GOOD_REASON_EXAMPLE}”"
    )]
    Generic(String),
    /// More than 500 characters.
    #[error("the reason is longer than 500 characters; keep it to one or two sentences")]
    TooLong,
    /// Contains control characters.
    #[error("the reason contains control characters; use plain text")]
    ControlCharacters,
}

/// Why a person needs to act on a customer's account, in words the customer will read.
///
/// At least 15 characters and 3 words, at most 500 characters, and not generic: at least
/// two words must say something specific (not "support", "need access", "help", …).
///
/// ```
/// use actas_core::text::Reason;
/// assert!(Reason::parse("Check invoice tax rate after plan change").is_ok());
/// let err = Reason::parse("need access").unwrap_err();
/// assert!(err.to_string().contains("too general"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    /// Checks a reason.
    pub fn parse(text: &str) -> Result<Self, ReasonError> {
        let t = text.trim();
        if t.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ReasonError::ControlCharacters);
        }
        if t.chars().count() > 500 {
            return Err(ReasonError::TooLong);
        }
        let words: Vec<String> = t
            .split(|c: char| !c.is_alphanumeric() && c != '#' && c != '-')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let specific = words
            .iter()
            .filter(|w| !GENERIC_WORDS.contains(&w.as_str()))
            .count();
        if specific < 2 && !t.is_empty() {
            return Err(ReasonError::Generic(t.to_owned()));
        }
        if t.chars().count() < 15 {
            return Err(ReasonError::TooShort);
        }
        if words.len() < 3 {
            return Err(ReasonError::TooFewWords);
        }
        Ok(Self(t.to_owned()))
    }

    /// The reason's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = ReasonError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<Reason> for String {
    fn from(value: Reason) -> Self {
        value.0
    }
}
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// The default ticket pattern: `#4821`, `SUP-4821`, or an https link to the ticket.
pub const DEFAULT_TICKET_PATTERN: &str =
    r"^(#[0-9]{1,12}|[A-Z][A-Z0-9]{1,9}-[0-9]{1,12}|https://[^\s]{3,500})$";

/// Why a ticket pattern or reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The reference does not match the team's ticket pattern.
    #[error(
        "“{given}” doesn't look like one of this team's ticket references; write it like #4821, SUP-4821 or a https link to the ticket"
    )]
    NoMatch {
        /// What was given.
        given: String,
        /// The pattern it had to match.
        pattern: String,
    },
    /// Empty, too long or containing spaces.
    #[error("a ticket reference is 1 to 512 characters without spaces; got {0:?}")]
    Shape(String),
    /// The pattern itself is not a valid regular expression.
    #[error("the ticket pattern is not a valid regular expression: {0}")]
    BadPattern(String),
}

/// The regular expression ticket references must match, from policy.
#[derive(Debug, Clone)]
pub struct TicketPattern(Regex);

impl TicketPattern {
    /// Compiles a pattern; it is anchored at both ends whatever is written.
    pub fn new(pattern: &str) -> Result<Self, TicketError> {
        let anchored = format!(
            "^(?:{})$",
            pattern.trim_start_matches('^').trim_end_matches('$')
        );
        Regex::new(&anchored)
            .map(Self)
            .map_err(|e| TicketError::BadPattern(e.to_string()))
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Default for TicketPattern {
    fn default() -> Self {
        // The default pattern is a constant checked by a unit test below.
        #[allow(clippy::unwrap_used)]
        Self::new(DEFAULT_TICKET_PATTERN).unwrap()
    }
}

/// A reference to the support ticket a session is for (`#4821`, `SUP-4821`, a link).
///
/// New references are checked against the policy's [`TicketPattern`]; references read
/// back from the ledger are checked only for shape, since the pattern may have changed
/// since they were written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketRef(String);

impl TicketRef {
    /// Checks a new ticket reference against the team's pattern.
    pub fn parse(text: &str, pattern: &TicketPattern) -> Result<Self, TicketError> {
        let t = text.trim();
        let shaped = Self::shape(t)?;
        if pattern.0.is_match(t) {
            Ok(shaped)
        } else {
            Err(TicketError::NoMatch {
                given: t.to_owned(),
                pattern: pattern.as_str().to_owned(),
            })
        }
    }

    fn shape(t: &str) -> Result<Self, TicketError> {
        if t.is_empty() || t.len() > 512 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err(TicketError::Shape(t.to_owned()))
        } else {
            Ok(Self(t.to_owned()))
        }
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TicketRef {
    type Error = TicketError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::shape(&value)
    }
}
impl From<TicketRef> for String {
    fn from(value: TicketRef) -> Self {
        value.0
    }
}
impl fmt::Display for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Why a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Blank.
    #[error("write a short note explaining the decision; it is kept in the audit log")]
    Empty,
    /// Over 1,000 characters.
    #[error("the note is longer than 1,000 characters")]
    TooLong,
}

/// A short explanation kept with a decision (a denial, an allow-list change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Note(String);

impl Note {
    /// Checks a note: not blank, at most 1,000 characters.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let t = text.trim();
        if t.is_empty() {
            Err(NoteError::Empty)
        } else if t.chars().count() > 1000 {
            Err(NoteError::TooLong)
        } else {
            Ok(Self(t.to_owned()))
        }
    }

    /// The note.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Note {
    type Error = NoteError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<Note> for String {
    fn from(value: Note) -> Self {
        value.0
    }
}
impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Whether `text` is a plain identifier: 1 to `max` characters, a lowercase ASCII letter
/// first, then lowercase letters, digits, `_` or any of `also`. The one rule behind
/// capability names, activity kinds and app names.
pub(crate) fn is_identifier(text: &str, max: usize, also: &[char]) -> bool {
    let mut chars = text.chars();
    text.len() <= max
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || also.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_reasons_are_accepted() {
        for ok in [
            GOOD_REASON_EXAMPLE,
            "Customer reports duplicate charge on March invoice",
            "Walk through the loan agreement e-signature that failed twice",
        ] {
            assert!(Reason::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn generic_reasons_are_refused_with_an_example() {
        for bad in [
            "support",
            "need access",
            "help",
            "checking",
            "test",
            "fix it",
            "Need access to help the customer",
            "Checking the account for support",
        ] {
            let err = Reason::parse(bad).expect_err(bad);
            let msg = err.to_string();
            assert!(msg.contains(GOOD_REASON_EXAMPLE), "{bad}: {msg}");
            assert!(matches!(err, ReasonError::Generic(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn short_or_two_word_reasons_are_refused() {
        assert_eq!(Reason::parse("Invoice tax"), Err(ReasonError::TooShort));
        assert_eq!(
            Reason::parse("Invoice-tax-rate-mismatch refund"),
            Err(ReasonError::TooFewWords)
        );
        assert_eq!(
            Reason::parse(&"invoice ".repeat(80)),
            Err(ReasonError::TooLong)
        );
    }

    #[test]
    fn the_default_ticket_pattern_accepts_the_three_usual_forms() {
        let p = TicketPattern::default();
        for ok in [
            "#4821",
            "SUP-4821",
            "https://support.example.com/tickets/4821",
        ] {
            assert!(TicketRef::parse(ok, &p).is_ok(), "{ok}");
        }
        for bad in [
            "4821",
            "sup-4821",
            "http://x.example/1",
            "#",
            "SUP-",
            "# 4821",
            "",
        ] {
            assert!(TicketRef::parse(bad, &p).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_team_pattern_replaces_the_default() {
        let p = TicketPattern::new(r"ZD[0-9]+").expect("valid");
        assert!(TicketRef::parse("ZD123", &p).is_ok());
        assert!(TicketRef::parse("#123", &p).is_err());
        assert!(TicketRef::parse("xZD123", &p).is_err(), "anchored");
        assert!(TicketPattern::new("(").is_err());
    }

    #[test]
    fn notes_must_say_something() {
        assert_eq!(Note::parse("  "), Err(NoteError::Empty));
        assert!(Note::parse("Scope too broad for a billing question").is_ok());
    }
}
