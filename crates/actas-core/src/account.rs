//! Customer accounts as actas sees them: flags that change the rules, and consent.

use crate::ids::AccountId;
use crate::staff::DisplayName;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why an account detail was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A flag name that is not lower-case words joined by `_`.
    #[error(
        "{0:?} is not a flag name (lower-case letters, digits and _, e.g. sensitive or billing_owner)"
    )]
    Flag(String),
    /// Not one of the consent settings.
    #[error("{0:?} is not a consent setting; use one of allowed, code_required, revoked")]
    Consent(String),
}

/// A label on an account, such as `sensitive`, `billing_owner` or `workspace_admin`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountFlag(String);

impl AccountFlag {
    /// Parses a flag name.
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        let t = text.trim();
        let mut chars = t.chars();
        let ok = t.len() <= 40
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(t.to_owned()))
        } else {
            Err(AccountError::Flag(text.to_owned()))
        }
    }

    /// The flag's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountFlag {
    type Error = AccountError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<AccountFlag> for String {
    fn from(value: AccountFlag) -> Self {
        value.0
    }
}
impl fmt::Display for AccountFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// What the customer has said about support staff acting on their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// Staff may act within policy.
    #[default]
    Allowed,
    /// Every session needs a one-time code from the customer.
    CodeRequired,
    /// No session may start; active ones end.
    Revoked,
}

impl Consent {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Consent::Allowed => "allowed",
            Consent::CodeRequired => "code_required",
            Consent::Revoked => "revoked",
        }
    }
}

impl FromStr for Consent {
    type Err = AccountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "allowed" => Ok(Consent::Allowed),
            "code_required" => Ok(Consent::CodeRequired),
            "revoked" => Ok(Consent::Revoked),
            other => Err(AccountError::Consent(other.to_owned())),
        }
    }
}

impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How an account is named inside ledger events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    /// The product's id for it.
    pub id: AccountId,
    /// Its display name, e.g. "Acme Co".
    pub name: DisplayName,
}
