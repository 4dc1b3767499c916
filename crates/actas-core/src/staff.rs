//! Who the staff are: emails, display names and roles.

use crate::ids::StaffId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why staff details were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffError {
    /// Not an address of the form `name@domain.tld`.
    #[error("{0:?} is not an email address (expected something like sarah.lee@example.com)")]
    Email(String),
    /// Empty, too long or containing control characters.
    #[error("a name is 1 to 100 characters without control characters; got {0:?}")]
    Name(String),
    /// Not one of the four roles.
    #[error("{0:?} is not a role; use one of agent, lead, director, auditor")]
    Role(String),
}

/// A staff member's email address, lower-cased. Staff are named by email everywhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses and lower-cases an email address. Deliberately simple: one `@`, a non-empty
    /// local part, a domain with a dot, no spaces; deliverability is not our concern.
    pub fn parse(text: &str) -> Result<Self, StaffError> {
        let t = text.trim().to_lowercase();
        let valid = t.len() <= 254
            && !t.chars().any(|c| c.is_whitespace() || c.is_control())
            && match t.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Self(t))
        } else {
            Err(StaffError::Email(text.to_owned()))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = StaffError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}
impl FromStr for Email {
    type Err = StaffError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A person's or company's display name, e.g. "Sarah Lee" or "Acme Co".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims and checks a display name.
    pub fn parse(text: &str) -> Result<Self, StaffError> {
        let t = text.trim();
        if t.is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
            Err(StaffError::Name(text.to_owned()))
        } else {
            Ok(Self(t.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = StaffError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<DisplayName> for String {
    fn from(value: DisplayName) -> Self {
        value.0
    }
}
impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// What a staff member does in actas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works tickets; may request sessions when allow-listed.
    Agent,
    /// Approves or denies requests.
    Lead,
    /// Keeps the allow-list and policy.
    Director,
    /// Reads and verifies the ledger.
    Auditor,
}

impl Role {
    /// The role's name as written in commands and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Lead => "lead",
            Role::Director => "director",
            Role::Auditor => "auditor",
        }
    }
}

impl FromStr for Role {
    type Err = StaffError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "agent" => Ok(Role::Agent),
            "lead" => Ok(Role::Lead),
            "director" => Ok(Role::Director),
            "auditor" => Ok(Role::Auditor),
            _ => Err(StaffError::Role(s.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a staff member is named inside ledger events: enough to read the event alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRef {
    /// Internal id.
    pub id: StaffId,
    /// Email address.
    pub email: Email,
    /// Display name.
    pub name: DisplayName,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Sarah.Lee@Example.com ").map(|e| e.to_string()),
            Ok("sarah.lee@example.com".to_owned())
        );
        for bad in [
            "",
            "sarah",
            "sarah@",
            "@example.com",
            "a@b",
            "a b@c.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!("Director".parse::<Role>(), Ok(Role::Director));
        let err = "admin".parse::<Role>().expect_err("not a role");
        assert!(err.to_string().contains("agent, lead, director, auditor"));
    }

    #[test]
    fn display_names_refuse_empty_and_control_text() {
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
        assert_eq!(
            DisplayName::parse(" Acme Co ").map(|n| n.to_string()),
            Ok("Acme Co".into())
        );
    }
}
