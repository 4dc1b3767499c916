//! Whether a database's schema is the one this build knows: migrations are applied by
//! `actas migrate` (or at start when allowed), and a database a newer actas changed is
//! never used.

use crate::{StoreError, StoreResult};
use sqlx::migrate::Migrator;

/// How a database's schema compares with this build's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// Every migration this build knows is applied, and nothing else.
    Current,
    /// These migrations (descriptions, in order) are still to be applied.
    Behind(Vec<String>),
    /// The database has migrations this build doesn't know (a newer actas ran on it).
    Ahead(Vec<i64>),
}

impl Schema {
    /// Compares the versions applied to a database with the migrations `migrator` holds.
    pub(crate) fn compare(migrator: &Migrator, applied: &[i64]) -> Self {
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        let unknown: Vec<i64> = applied
            .iter()
            .copied()
            .filter(|v| !known.contains(v))
            .collect();
        if !unknown.is_empty() {
            return Schema::Ahead(unknown);
        }
        let pending: Vec<String> = migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect();
        if pending.is_empty() {
            Schema::Current
        } else {
            Schema::Behind(pending)
        }
    }
}

/// Whether opening a database of this schema must first apply migrations (`migrate`
/// allows it), or why it can't be used.
pub(crate) fn must_migrate(schema: Schema, migrate: bool) -> StoreResult<bool> {
    match schema {
        Schema::Current => Ok(false),
        Schema::Ahead(unknown) => Err(ahead(&unknown)),
        Schema::Behind(pending) if !migrate => Err(StoreError::Schema(format!(
            "the database needs {} before this version of actas can use it ({}): run `actas migrate`",
            if pending.len() == 1 {
                "a migration"
            } else {
                "migrations"
            },
            pending.join(", ")
        ))),
        Schema::Behind(_) => Ok(true),
    }
}

pub(crate) fn ahead(unknown: &[i64]) -> StoreError {
    let list: Vec<String> = unknown.iter().map(|v| format!("{v:04}")).collect();
    StoreError::Schema(format!(
        "the database was changed by a newer actas (migrations {} are unknown to this version), so this version won't use it: run the newer actas, or restore the backup taken before the upgrade",
        list.join(", ")
    ))
}
