//! Masking rules: which values the agent's browser may see, and how much of them.
//!
//! The rules are applied by the gateway to responses and by the ledger to before/after
//! values, so one definition serves both.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a masking rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// Not one of the five rules.
    #[error("{0:?} is not a masking rule; use one of show, last4, email, hide, never")]
    Rule(String),
    /// A field name with characters field names don't have.
    #[error(
        "{0:?} is not a field name: use letters, digits, _, -, . and [ ] (e.g. tax_rate or address[city])"
    )]
    FieldName(String),
    /// A JSON path that can't be read.
    #[error("{path:?} is not a JSON path: {why} (write e.g. $.card.number or $.loans[*].iban)")]
    JsonPath {
        /// The path.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// What the agent sees of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskRule {
    /// The value as it is.
    Show,
    /// Only the last four characters: `•••• 4242`.
    Last4,
    /// First letter and domain of an email: `s•••@acme.com`.
    Email,
    /// Replaced by a fixed placeholder, so the agent knows a value exists.
    Hide,
    /// Removed entirely, key and all.
    Never,
}

/// The mark every placeholder the gateway serves carries, so that one sent back (a masked
/// form field saved as it was shown) is recognised and never written over the real value.
pub const MASK_MARK: &str = "•••";

/// What a hidden value is replaced with.
pub const HIDDEN: &str = "••• hidden";

/// Whether `value` carries a placeholder the gateway served: it contains [`MASK_MARK`],
/// or the mark as a browser writes it when a page's charset can't hold it (the numeric
/// character references `&#8226;` or `&#x2022;`, three times).
pub fn carries_placeholder(value: &str) -> bool {
    if value.contains(MASK_MARK) {
        return true;
    }
    let lower = value.to_ascii_lowercase();
    lower.contains("&#8226;&#8226;&#8226;") || lower.contains("&#x2022;&#x2022;&#x2022;")
}

impl MaskRule {
    /// Applies the rule to one text value. `None` means the value (and its key) must be
    /// removed entirely.
    pub fn apply(self, value: &str) -> Option<String> {
        match self {
            MaskRule::Show => Some(value.to_owned()),
            MaskRule::Last4 => {
                let visible: Vec<char> = value.chars().filter(|c| c.is_alphanumeric()).collect();
                if visible.len() <= 4 {
                    // Too short to reveal any part of it safely.
                    Some("••••".to_owned())
                } else {
                    let tail: String = visible[visible.len() - 4..].iter().collect();
                    Some(format!("•••• {tail}"))
                }
            }
            MaskRule::Email => Some(match value.trim().split_once('@') {
                Some((local, rest)) if !local.is_empty() => {
                    // Only what reads as a domain follows the @: text after it (", card
                    // 4111…" in a masked paragraph) is not shown.
                    let domain: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '-'))
                        .collect();
                    let domain = domain.trim_end_matches('.');
                    if domain.is_empty() {
                        HIDDEN.to_owned()
                    } else {
                        let first: String = local.chars().take(1).collect();
                        format!("{first}{MASK_MARK}@{domain}")
                    }
                }
                _ => HIDDEN.to_owned(),
            }),
            MaskRule::Hide => Some(HIDDEN.to_owned()),
            MaskRule::Never => None,
        }
    }

    /// The rule's name.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskRule::Show => "show",
            MaskRule::Last4 => "last4",
            MaskRule::Email => "email",
            MaskRule::Hide => "hide",
            MaskRule::Never => "never",
        }
    }
}

impl FromStr for MaskRule {
    type Err = MaskError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "show" => Ok(MaskRule::Show),
            "last4" => Ok(MaskRule::Last4),
            "email" => Ok(MaskRule::Email),
            "hide" => Ok(MaskRule::Hide),
            "never" => Ok(MaskRule::Never),
            other => Err(MaskError::Rule(other.to_owned())),
        }
    }
}

impl fmt::Display for MaskRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An object key.
    Key(String),
    /// Any key of an object (`*`).
    AnyKey,
    /// Any element of an array (`[*]`).
    AnyIndex,
}

/// One step of a concrete location inside a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    /// Inside an object, under this key.
    Key(&'a str),
    /// Inside an array, at this position.
    Index(usize),
}

/// A JSON path such as `$.card.number`, `$.loans[*].iban` or `$.*.ssn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<PathStep>,
}

impl JsonPath {
    /// Parses the path syntax: `$` then `.key`, `.*` or `[*]` steps. Keys are letters,
    /// digits, `_` and `-`. Deliberately small: no filters, no recursive descent, so a
    /// rule always means exactly one set of places.
    pub fn parse(text: &str) -> Result<Self, MaskError> {
        let err = |why| MaskError::JsonPath {
            path: text.to_owned(),
            why,
        };
        let rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| err("it must start with $"))?;
        let mut steps = Vec::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    let mut key = String::new();
                    while let Some(&n) = chars.peek() {
                        if n == '.' || n == '[' {
                            break;
                        }
                        key.push(n);
                        chars.next();
                    }
                    if key == "*" {
                        steps.push(PathStep::AnyKey);
                    } else if !key.is_empty()
                        && key
                            .chars()
                            .all(|k| k.is_alphanumeric() || k == '_' || k == '-')
                    {
                        steps.push(PathStep::Key(key));
                    } else {
                        return Err(err("a key is letters, digits, _ or -"));
                    }
                }
                '[' => {
                    if chars.next() != Some('*') || chars.next() != Some(']') {
                        return Err(err("only [*] is supported inside brackets"));
                    }
                    steps.push(PathStep::AnyIndex);
                }
                _ => return Err(err("expected . or [*] after $")),
            }
        }
        if steps.is_empty() {
            return Err(err("it names no field"));
        }
        Ok(Self {
            text: text.trim().to_owned(),
            steps,
        })
    }

    /// Whether this path names exactly the location `at` (root first).
    pub fn matches(&self, at: &[Location<'_>]) -> bool {
        self.steps.len() == at.len()
            && self
                .steps
                .iter()
                .zip(at)
                .all(|(step, loc)| match (step, loc) {
                    (PathStep::Key(k), Location::Key(l)) => k == l,
                    (PathStep::AnyKey, Location::Key(_)) => true,
                    (PathStep::AnyIndex, Location::Index(_)) => true,
                    _ => false,
                })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The steps.
    pub fn steps(&self) -> &[PathStep] {
        &self.steps
    }
}

/// Where a masking rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Values at a JSON path in JSON bodies (and in before/after values in the ledger).
    Json(JsonPath),
    /// Elements matched by a CSS selector in HTML pages. Selector syntax is checked by the
    /// gateway's HTML rewriter when the gateway starts.
    Html(String),
    /// A field by name, wherever it is: a form control (`<input name="tax_rate">`) in
    /// pages and submissions, and a JSON member of that name at any depth. A JSON path
    /// rule for the same place is more specific and wins.
    Field(FieldName),
}

/// The name of a form field or JSON member a `field` rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldName(String);

impl FieldName {
    /// A field name: letters, digits, `_`, `-`, `.`, `[` and `]` (as frameworks name
    /// nested fields, `address[city]`), 1 to 100 of them.
    pub fn parse(text: &str) -> Result<Self, MaskError> {
        let t = text.trim();
        let ok = !t.is_empty()
            && t.len() <= 100
            && t.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'));
        if ok {
            Ok(Self(t.to_owned()))
        } else {
            Err(MaskError::FieldName(t.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A masking rule from policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskingRule {
    /// Where it applies.
    pub target: Target,
    /// What the agent sees.
    pub rule: MaskRule,
    /// The capability that reveals it (`reveal = "reveal_id"`): a session whose approved
    /// scope includes it sees the value whole, and each answer that carries it is
    /// recorded as a `field_revealed` event.
    pub reveal: Option<crate::scope::CapabilityName>,
}

impl MaskingRule {
    /// Whether this rule is a reveal in force: the value is shown because the session
    /// was approved to see it.
    pub fn reveals(&self) -> bool {
        self.reveal.is_some() && self.rule == MaskRule::Show
    }

    /// What the rule names, as people read it: `$.national_id`, `#national-id`, `tax_rate`.
    pub fn target_text(&self) -> String {
        match &self.target {
            Target::Json(p) => p.as_str().to_owned(),
            Target::Html(h) => h.clone(),
            Target::Field(f) => f.as_str().to_owned(),
        }
    }
}

/// The rule for a form field or JSON member called `name` among `rules`: a `field` rule,
/// else a top-level JSON rule (`$.name`), as a submitted form is recorded.
pub fn field_rule<'r>(rules: &'r [MaskingRule], name: &str) -> Option<&'r MaskingRule> {
    rules
        .iter()
        .find(|r| matches!(&r.target, Target::Field(f) if f.as_str() == name))
        .or_else(|| {
            rules
                .iter()
                .find(|r| matches!(&r.target, Target::Json(p) if p.matches(&[Location::Key(name)])))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_shows_only_what_it_promises() {
        assert_eq!(MaskRule::Show.apply("x"), Some("x".into()));
        assert_eq!(
            MaskRule::Last4.apply("4111 1111 1111 4242"),
            Some("•••• 4242".into())
        );
        assert_eq!(MaskRule::Last4.apply("123"), Some("••••".into()));
        assert_eq!(
            MaskRule::Email.apply("sarah@acme.com"),
            Some("s•••@acme.com".into())
        );
        assert_eq!(MaskRule::Email.apply("not-an-email"), Some(HIDDEN.into()));
        assert_eq!(
            MaskRule::Email.apply("sarah@acme.com, card 4111111111114242"),
            Some("s•••@acme.com".into()),
            "only the domain follows the @"
        );
        assert_eq!(MaskRule::Email.apply("sarah@ 4111"), Some(HIDDEN.into()));
        assert_eq!(MaskRule::Hide.apply("secret"), Some(HIDDEN.into()));
        assert_eq!(MaskRule::Never.apply("secret"), None);
    }

    #[test]
    fn placeholders_are_recognised_however_a_browser_encodes_them() {
        for sent in [
            "•••• 4242",
            "s•••@acme.com",
            HIDDEN,
            "s&#8226;&#8226;&#8226;@acme.com",
            "&#X2022;&#x2022;&#x2022; hidden",
        ] {
            assert!(carries_placeholder(sent), "{sent}");
        }
        for real in [
            "4111111111114242",
            "sarah@acme.com",
            "•• two bullets",
            "&#8226;",
        ] {
            assert!(!carries_placeholder(real), "{real}");
        }
    }

    #[test]
    fn json_paths_match_with_wildcards() {
        let p = JsonPath::parse("$.loans[*].iban").expect("valid");
        assert!(p.matches(&[
            Location::Key("loans"),
            Location::Index(3),
            Location::Key("iban")
        ]));
        assert!(!p.matches(&[
            Location::Key("loans"),
            Location::Key("x"),
            Location::Key("iban")
        ]));
        assert!(!p.matches(&[Location::Key("loans"), Location::Index(0)]));
        let any = JsonPath::parse("$.*.ssn").expect("valid");
        assert!(any.matches(&[Location::Key("customer"), Location::Key("ssn")]));
    }

    #[test]
    fn malformed_json_paths_are_refused() {
        for bad in ["card.number", "$", "$.", "$[0]", "$.a b", "$x"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
