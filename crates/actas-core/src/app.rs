//! The product's apps: what calls actas's customer-side API with an app key. Every event
//! an app causes names it, so "who told actas this" is always on record.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an app name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an app name is 1 to 40 lowercase letters, digits, '-' or '_', starting with a letter (got {0:?})"
)]
pub struct AppNameError(pub String);

/// An app key's name, e.g. `portal`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

impl AppName {
    /// Parses a name.
    pub fn parse(text: &str) -> Result<Self, AppNameError> {
        if crate::text::is_identifier(text, 40, &['-']) {
            Ok(Self(text.to_owned()))
        } else {
            Err(AppNameError(text.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppName {
    type Error = AppNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AppName> for String {
    fn from(value: AppName) -> Self {
        value.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// An app as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRef {
    /// The key's id.
    pub id: i64,
    /// Its name.
    pub name: AppName,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_short_plain_identifiers() {
        assert!(AppName::parse("portal").is_ok());
        assert!(AppName::parse("billing-sync_2").is_ok());
        for bad in ["", "Portal", "1app", "a b", "x".repeat(41).as_str()] {
            assert!(AppName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
