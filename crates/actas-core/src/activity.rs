//! What customers do, as the product reports it: each kind of activity has a sentence
//! template such as `signed {document}`, so the ledger reads "Acme Co signed the loan
//! agreement LA-77". A handful of kinds are built in; the policy can declare more
//! (`[customer_events.<kind>]`) or reword these.
//!
//! Values named in a kind's template are part of the sentence the policy author wrote,
//! so they are shown as given; everything else the product sends (before/after values)
//! is masked by the policy's JSON rules like any other value (invariant 6).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Why an activity kind or template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    /// The kind's name is not a plain identifier.
    #[error(
        "an activity kind is 1 to 40 lowercase letters, digits or '_', starting with a letter (got {0:?})"
    )]
    Kind(String),
    /// The template is empty or its braces don't pair up.
    #[error("the description template {0:?} is empty or has an unclosed or empty {{placeholder}}")]
    Template(String),
    /// A value the template names is missing or is not text or a number.
    #[error("this kind of activity needs {0:?} (text or a number) to describe it")]
    Missing(String),
    /// A value the template names is too long to go into a sentence.
    #[error(
        "{0:?} is too long: a value in an activity's description is at most {MAX_DETAIL_CHARS} characters"
    )]
    TooLong(String),
}

/// The longest value (in characters) that fills a template's placeholder: a document's
/// name or an amount, never a document itself. It bounds the event the ledger keeps.
pub const MAX_DETAIL_CHARS: usize = 200;

/// The name of a kind of customer activity, e.g. `agreement_signed`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActivityKind(String);

impl ActivityKind {
    /// Parses a kind name.
    pub fn parse(text: &str) -> Result<Self, ActivityError> {
        if crate::text::is_identifier(text, 40, &[]) {
            Ok(Self(text.to_owned()))
        } else {
            Err(ActivityError::Kind(text.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActivityKind {
    type Error = ActivityError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ActivityKind> for String {
    fn from(value: ActivityKind) -> Self {
        value.0
    }
}

impl fmt::Display for ActivityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(String),
}

/// A sentence with `{placeholders}` filled from the values the product reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl ActivityTemplate {
    /// Parses a template such as `made a payment of {amount}`.
    pub fn parse(text: &str) -> Result<Self, ActivityError> {
        let bad = || ActivityError::Template(text.to_owned());
        if text.trim().is_empty() {
            return Err(bad());
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(bad)?;
            let name = after[..close].trim();
            if name.is_empty() || name.contains('{') {
                return Err(bad());
            }
            pieces.push(Piece::Value(name.to_owned()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(bad());
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self {
            source: text.to_owned(),
            pieces,
        })
    }

    /// The names of the values the template needs.
    pub fn needs(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Value(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Fills the template from `details`; a missing value is an error naming it.
    pub fn fill(&self, details: &Map<String, Value>) -> Result<String, ActivityError> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Value(name) => match details.get(name) {
                    Some(Value::String(s)) if s.trim().chars().count() > MAX_DETAIL_CHARS => {
                        return Err(ActivityError::TooLong(name.clone()));
                    }
                    Some(Value::String(s)) if !s.trim().is_empty() => out.push_str(s.trim()),
                    Some(Value::Number(n)) => out.push_str(&n.to_string()),
                    _ => return Err(ActivityError::Missing(name.clone())),
                },
            }
        }
        Ok(out)
    }
}

/// The kinds every policy has (a policy may reword them).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("signed_in", "signed in"),
    ("signed_out", "signed out"),
    ("profile_edited", "changed their profile"),
    ("payment_made", "made a payment of {amount}"),
    ("agreement_signed", "signed {document}"),
    ("document_uploaded", "uploaded {document}"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn details(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn templates_fill_from_the_reported_values() {
        let t = ActivityTemplate::parse("signed {document}").expect("template");
        assert_eq!(t.needs().collect::<Vec<_>>(), vec!["document"]);
        assert_eq!(
            t.fill(&details(json!({ "document": "the loan agreement LA-77" })))
                .expect("fill"),
            "signed the loan agreement LA-77"
        );
        let t = ActivityTemplate::parse("made a payment of {amount} to {payee}").expect("t");
        assert_eq!(
            t.fill(&details(json!({ "amount": 120, "payee": "Acme Bank" })))
                .expect("fill"),
            "made a payment of 120 to Acme Bank"
        );
        assert_eq!(
            t.fill(&details(json!({ "amount": 120 }))),
            Err(ActivityError::Missing("payee".into()))
        );
        assert_eq!(
            t.fill(&details(json!({ "amount": {"x": 1}, "payee": "p" }))),
            Err(ActivityError::Missing("amount".into()))
        );
    }

    #[test]
    fn a_value_longer_than_the_limit_is_refused_not_recorded() {
        let t = ActivityTemplate::parse("signed {document}").expect("template");
        let at_limit = "d".repeat(MAX_DETAIL_CHARS);
        assert!(t.fill(&details(json!({ "document": at_limit }))).is_ok());
        // Counted in characters, not bytes: 200 of "é" is 400 bytes and still fits.
        let wide = "é".repeat(MAX_DETAIL_CHARS);
        assert!(t.fill(&details(json!({ "document": wide }))).is_ok());
        let over = "d".repeat(MAX_DETAIL_CHARS + 1);
        assert_eq!(
            t.fill(&details(json!({ "document": over }))),
            Err(ActivityError::TooLong("document".into()))
        );
    }

    #[test]
    fn broken_templates_and_kinds_are_refused() {
        for bad in [
            "",
            "  ",
            "signed {document",
            "signed {}",
            "signed }x{",
            "a {b{c}}",
        ] {
            assert!(ActivityTemplate::parse(bad).is_err(), "{bad:?}");
        }
        for (kind, template) in BUILT_IN {
            assert!(ActivityKind::parse(kind).is_ok());
            assert!(ActivityTemplate::parse(template).is_ok());
        }
        assert!(ActivityKind::parse("Signed-In").is_err());
    }
}
