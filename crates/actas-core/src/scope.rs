//! What a session may do: capabilities, their risk, the scope granted, and the mode.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Why a capability, risk or mode was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not a well-formed capability name.
    #[error(
        "{0:?} is not a capability name (lower-case letters, digits and _, starting with a letter, at most 40 characters)"
    )]
    Capability(String),
    /// Not one of the risk levels.
    #[error("{0:?} is not a risk level; use one of low, medium, high, forbidden")]
    Risk(String),
    /// Not one of the modes.
    #[error("{0:?} is not a mode; use one of read-only, live, mirror")]
    Mode(String),
}

/// How much harm a capability could do, which decides who must approve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Approved by policy on a normal account.
    Low,
    /// Needs a lead's approval.
    Medium,
    /// Needs a lead's approval and the customer's confirmation code.
    High,
    /// Can never be requested.
    Forbidden,
}

impl Risk {
    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Forbidden => "forbidden",
        }
    }
}

impl FromStr for Risk {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            "forbidden" => Ok(Risk::Forbidden),
            _ => Err(ScopeError::Risk(s.to_owned())),
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The name of a capability defined in policy, such as `view` or `edit_settings`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CapabilityName(String);

impl CapabilityName {
    /// The capability every scope includes.
    pub fn view() -> Self {
        Self("view".to_owned())
    }

    /// Parses a capability name.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        if crate::text::is_identifier(text, 40, &[]) {
            Ok(Self(text.to_owned()))
        } else {
            Err(ScopeError::Capability(text.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CapabilityName {
    type Error = ScopeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<CapabilityName> for String {
    fn from(value: CapabilityName) -> Self {
        value.0
    }
}
impl fmt::Display for CapabilityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A set of capabilities granted together. Always contains `view`: a session that cannot
/// see the account is useless, and every other capability implies seeing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeSet<CapabilityName>", into = "BTreeSet<CapabilityName>")]
pub struct Scope(BTreeSet<CapabilityName>);

impl Scope {
    /// Builds a scope from capability names, adding `view`.
    pub fn new(caps: impl IntoIterator<Item = CapabilityName>) -> Self {
        let mut set: BTreeSet<CapabilityName> = caps.into_iter().collect();
        set.insert(CapabilityName::view());
        Self(set)
    }

    /// The scope that only views.
    pub fn view_only() -> Self {
        Self::new([])
    }

    /// Whether `cap` is granted.
    pub fn allows(&self, cap: &CapabilityName) -> bool {
        self.0.contains(cap)
    }

    /// The capabilities, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &CapabilityName> {
        self.0.iter()
    }

    /// Whether every capability of `self` is also in `other` (used when a lead narrows).
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Names joined with ", ", e.g. "edit_settings, view".
    pub fn joined(&self) -> String {
        self.0
            .iter()
            .map(CapabilityName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl From<BTreeSet<CapabilityName>> for Scope {
    fn from(value: BTreeSet<CapabilityName>) -> Self {
        Self::new(value)
    }
}
impl From<Scope> for BTreeSet<CapabilityName> {
    fn from(value: Scope) -> Self {
        value.0
    }
}

/// Where the session's requests go and whether they may change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Mode {
    /// The live product; every non-GET request is blocked. The default.
    #[default]
    #[serde(rename = "read-only")]
    ReadOnly,
    /// The live product; changes allowed within scope.
    #[serde(rename = "live")]
    Live,
    /// A separate copy of the product ("mirror" upstream); changes do not touch live data.
    #[serde(rename = "mirror")]
    Mirror,
}

impl Mode {
    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadOnly => "read-only",
            Mode::Live => "live",
            Mode::Mirror => "mirror",
        }
    }
}

impl FromStr for Mode {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "read-only" | "readonly" | "read_only" => Ok(Mode::ReadOnly),
            "live" => Ok(Mode::Live),
            "mirror" => Ok(Mode::Mirror),
            _ => Err(ScopeError::Mode(s.to_owned())),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> CapabilityName {
        CapabilityName::parse(s).expect("valid")
    }

    #[test]
    fn every_scope_includes_view() {
        assert!(Scope::new([cap("edit_settings")]).allows(&CapabilityName::view()));
        let back: Scope = serde_json::from_str(r#"["export"]"#).expect("json");
        assert!(back.allows(&CapabilityName::view()));
        assert_eq!(back.joined(), "export, view");
    }

    #[test]
    fn names_risks_and_modes_parse_strictly() {
        assert!(CapabilityName::parse("Edit").is_err());
        assert!(CapabilityName::parse("1x").is_err());
        assert_eq!("HIGH".parse::<Risk>(), Ok(Risk::High));
        assert!("severe".parse::<Risk>().is_err());
        assert_eq!("read-only".parse::<Mode>(), Ok(Mode::ReadOnly));
        assert_eq!(Mode::default(), Mode::ReadOnly);
        assert!(Risk::Low < Risk::Medium && Risk::High < Risk::Forbidden);
    }
}
