//! Identifiers. Each can only be built valid, so storage and HTTP layers never pass raw
//! strings around.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The account id is empty, too long, or has characters outside the allowed set.
    #[error(
        "an account id is 1 to 64 characters: letters, digits and . _ : - (starting with a letter or digit); got {0:?}"
    )]
    Account(String),
    /// The text is not a valid id of the named kind.
    #[error("{kind} must be a UUID such as 7f1c9a8e-3b7d-4b5e-9a51-2f0c8d6e4a10; got {text:?}")]
    Uuid {
        /// Which id was expected.
        kind: &'static str,
        /// What was given.
        text: String,
    },
    /// A staff id must be a positive number.
    #[error("a staff id is a positive whole number; got {0:?}")]
    Staff(String),
}

/// A staff member's internal number (the database row). Staff are *named* by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StaffId(i64);

impl StaffId {
    /// Wraps a row id; ids start at 1.
    pub fn new(id: i64) -> Result<Self, IdError> {
        if id >= 1 {
            Ok(Self(id))
        } else {
            Err(IdError::Staff(id.to_string()))
        }
    }

    /// The row id.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for StaffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A customer account's id, as the product names it (e.g. `acme-co` or `acct_42`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Parses an account id.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok_len = (1..=64).contains(&text.len());
        let mut chars = text.chars();
        let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_rest =
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
        if ok_len && ok_first && ok_rest {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError::Account(text.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.0
    }
}

impl FromStr for AccountId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random id (UUID v4, 122 random bits).
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the hyphenated UUID form.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                Uuid::parse_str(text).map(Self).map_err(|_| IdError::Uuid {
                    kind: $kind,
                    text: text.to_owned(),
                })
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.hyphenated())
            }
        }
    };
}

uuid_id!(
    /// One support session.
    SessionId,
    "a session id"
);
uuid_id!(
    /// One access request.
    RequestId,
    "a request id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_accept_product_style_names_and_refuse_the_rest() {
        for ok in ["acme-co", "acct_42", "A", "tenant:7.eu"] {
            assert!(AccountId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-acme", "acme co", "a/b", &"x".repeat(65), "ümlaut"] {
            assert!(AccountId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uuid_ids_round_trip_and_refuse_garbage() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(&id.to_string()), Ok(id));
        let err = RequestId::parse("nope").expect_err("garbage");
        assert!(err.to_string().contains("a request id must be a UUID"));
    }

    #[test]
    fn staff_ids_are_positive() {
        assert!(StaffId::new(0).is_err());
        assert_eq!(StaffId::new(3).map(StaffId::get), Ok(3));
    }
}
