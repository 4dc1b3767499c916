//! Helpers shared by the store's tests: a fresh database file per test and simple events.
#![allow(dead_code, unreachable_pub)]

use actas_core::account::AccountRef;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{AccountId, RequestId, StaffId};
use actas_core::policy::Policy;
use actas_core::scope::Mode;
use actas_core::staff::{DisplayName, Email, Role, StaffRef};
use actas_core::text::{Reason, TicketRef};
use actas_core::tree_head::{LedgerKey, PublicKey};
use actas_store::HeadSchedule;
use actas_store::sqlite::{SqliteConfig, SqliteStore};
use std::path::{Path, PathBuf};

pub const KEY_SEED: [u8; 32] = [42; 32];

pub fn key() -> LedgerKey {
    LedgerKey::from_bytes(&KEY_SEED).expect("key")
}

pub fn public() -> PublicKey {
    key().public()
}

pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn db() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("actas.db");
    TestDb { dir, path }
}

pub async fn open(path: &Path, heads: HeadSchedule) -> SqliteStore {
    SqliteStore::open(
        path,
        key(),
        SqliteConfig {
            heads,
            ..SqliteConfig::default()
        },
    )
    .await
    .expect("open store")
}

pub fn staff(n: i64) -> StaffRef {
    StaffRef {
        id: StaffId::new(n).expect("id"),
        email: Email::parse(&format!("agent{n}@example.com")).expect("email"),
        name: DisplayName::parse(&format!("Agent {n}")).expect("name"),
    }
}

pub fn acme() -> AccountRef {
    AccountRef {
        id: AccountId::parse("acme").expect("id"),
        name: DisplayName::parse("Acme Co").expect("name"),
    }
}

/// A small but realistic event: an agent asks to act as Acme Co.
pub fn event(n: u64) -> NewEvent {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    let p = POLICY.get_or_init(Policy::starter);
    NewEvent::new(
        Actor::Staff(staff(1 + (n % 7) as i64)),
        EventData::RequestCreated {
            request: RequestId::random(),
            account: acme(),
            ticket: TicketRef::parse(&format!("#{}", 1000 + n), &p.ticket_pattern).expect("ticket"),
            reason: Reason::parse("Check invoice tax rate after plan change").expect("reason"),
            scope: p.scope(["edit_settings"]).expect("scope"),
            minutes: 15,
            mode: Mode::ReadOnly,
            risk: actas_core::scope::Risk::Medium,
            for_session: None,
        },
    )
}

pub fn staff_added(n: i64) -> NewEvent {
    NewEvent::new(
        Actor::System,
        EventData::StaffAdded {
            staff: staff(n),
            role: Role::Agent,
        },
    )
}
