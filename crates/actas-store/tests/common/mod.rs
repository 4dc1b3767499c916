//! Helpers shared by the store's tests: a fresh database per test on either backend (a
//! SQLite file, or a PostgreSQL database created for the test and dropped after it), and
//! simple events. Every contract test runs on both.
#![allow(dead_code, unreachable_pub)]

use actas_core::account::AccountRef;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{AccountId, RequestId, StaffId};
use actas_core::policy::Policy;
use actas_core::scope::Mode;
use actas_core::staff::{DisplayName, Email, Role, StaffRef};
use actas_core::text::{Reason, TicketRef};
use actas_core::tree_head::{LedgerKey, PublicKey};
use actas_store::postgres::{PgConfig, PgStore};
use actas_store::sqlite::{SqliteConfig, SqliteStore};
use actas_store::{HeadSchedule, Store};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Which database a contract test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on (`ACTAS_TEST_POSTGRES`, or the
/// local one `cargo xtask test` makes sure is running).
pub fn postgres_server() -> String {
    std::env::var("ACTAS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A fresh, empty database of one backend, removed when dropped.
pub struct Fresh {
    pub backend: Backend,
    pub file: TestDb,
    /// The PostgreSQL database's name.
    pub name: Option<String>,
}

impl Fresh {
    pub async fn new(backend: Backend) -> Self {
        let name = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let name = format!(
                    "actas_store_{}_{}_{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("clock")
                        .subsec_nanos()
                );
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server()))
                    .await
                    .expect("PostgreSQL must be running for the store's contract tests (cargo xtask test starts it)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("create database");
                let _ = admin.close().await;
                Some(name)
            }
        };
        Fresh {
            backend,
            file: db(),
            name,
        }
    }

    /// Where the database is, as `actas` would be told.
    pub fn url(&self) -> String {
        match &self.name {
            Some(name) => format!("{}/{name}", postgres_server()),
            None => format!("sqlite://{}", self.file.path.display()),
        }
    }

    /// Opens the store on it (again, after a close, to see what was kept).
    pub async fn open(&self, heads: HeadSchedule) -> Arc<dyn Store> {
        open_url(&self.url(), heads).await
    }

    /// Runs `sql` on the database directly, as someone with the database's files or
    /// credentials could: `sqlite` or `postgres` is what each backend gets.
    pub async fn tamper(&self, sqlite: &str, postgres: &str) {
        self.try_sql(sqlite, postgres).await.expect("tamper");
    }

    /// Like `tamper`, saying what the database answered when it refused.
    pub async fn try_sql(&self, sqlite: &str, postgres: &str) -> Result<(), String> {
        let result = match &self.name {
            None => {
                let mut c = sqlx::SqliteConnection::connect(&self.url())
                    .await
                    .expect("connect");
                let r = sqlx::raw_sql(sqlite).execute(&mut c).await.map(|_| ());
                let _ = c.close().await;
                r
            }
            Some(_) => {
                let mut c = sqlx::PgConnection::connect(&self.url())
                    .await
                    .expect("connect");
                let r = sqlx::raw_sql(postgres).execute(&mut c).await.map(|_| ());
                let _ = c.close().await;
                r
            }
        };
        result.map_err(|e| e.to_string())
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        // Dropping needs async I/O, and a test's runtime may be gone: a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut admin) =
                    sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server())).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Opens the store at `url` (`sqlite://path` or `postgres://…`).
pub async fn open_url(url: &str, heads: HeadSchedule) -> Arc<dyn Store> {
    match url.strip_prefix("sqlite://") {
        Some(path) => Arc::new(open(Path::new(path), heads).await),
        None => Arc::new(
            PgStore::open(
                url,
                key(),
                PgConfig {
                    heads,
                    ..PgConfig::default()
                },
            )
            .await
            .expect("open PostgreSQL store"),
        ),
    }
}

/// Runs a contract test, `async fn name(backend: Backend)`, once per backend.
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        on_both!($name, 4);
    };
    ($name:ident, $threads:literal) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    };
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
