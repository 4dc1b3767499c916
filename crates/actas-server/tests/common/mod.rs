//! Shared set-up for the server's tests: staff, the allow-list and an account, made
//! through the service layer exactly as an operator would.
#![allow(dead_code, unreachable_pub)]

pub mod idp;

use actas_core::event::Actor;
use actas_core::scope::Risk;
use actas_core::staff::{DisplayName, Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::password::Password;
use actas_server::service::{AllowChange, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Which database the suite runs on: `ACTAS_TEST_BACKEND=postgres` (set by `cargo xtask
/// test` for its PostgreSQL pass) gives every data directory a PostgreSQL database of
/// its own; otherwise each has its SQLite file, the embedded default.
pub fn on_postgres() -> bool {
    std::env::var("ACTAS_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The prefix of every database the suite creates; `cargo xtask test` drops whatever
/// carries it once the PostgreSQL pass is over (a test's process ends with its test, so
/// the run, not the test, removes them).
pub const SUITE_DATABASE_PREFIX: &str = "actas_suite_";

/// A new, empty PostgreSQL database for one test, and its address.
pub async fn fresh_postgres() -> String {
    use sqlx::Connection;
    let server = std::env::var("ACTAS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "{SUITE_DATABASE_PREFIX}{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("PostgreSQL must be running for the suite's PostgreSQL pass");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let _ = admin.close().await;
    format!("{server}/{name}")
}

/// The database a test's demo uses on the suite's backend: `None` is the demo's own
/// SQLite file.
pub async fn demo_database() -> Option<String> {
    if on_postgres() {
        Some(fresh_postgres().await)
    } else {
        None
    }
}

/// `actas init` in `root`, on the suite's backend (see [`on_postgres`]).
pub async fn fresh_data(root: &std::path::Path) -> DataDir {
    let data = DataDir::new(root);
    data.init().expect("init");
    if on_postgres() {
        let url = fresh_postgres().await;
        let config = root.join("actas.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let with_url = text.replacen("[store]\n", &format!("[store]\nurl = \"{url}\"\n"), 1);
        assert_ne!(with_url, text, "actas init writes a [store] section");
        std::fs::write(&config, with_url).expect("write config");
    }
    data
}

/// The database of a data directory, opened behind actas's back: how tests set up what
/// the product can't (a review long ago, a forged page copy) and look at what it keeps.
/// Statements write their values `$1`, `$2`…, which both backends read.
pub enum BackDoor {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl BackDoor {
    /// The database of the data directory at `root`.
    pub async fn open(root: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(root.join("actas.toml")).expect("config");
        let url = text
            .lines()
            .find_map(|l| l.strip_prefix("url = \""))
            .and_then(|l| l.strip_suffix('"'))
            .map(str::to_owned);
        match url {
            Some(url) if url.starts_with("postgres") => {
                BackDoor::Postgres(sqlx::PgPool::connect(&url).await.expect("db"))
            }
            _ => BackDoor::Sqlite(
                sqlx::SqlitePool::connect(&format!("sqlite://{}", root.join("actas.db").display()))
                    .await
                    .expect("db"),
            ),
        }
    }

    /// Runs `sql` with `binds`.
    pub async fn execute(&self, sql: &str, binds: Vec<Bind>) {
        match self {
            BackDoor::Postgres(db) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = match b {
                        Bind::Int(v) => q.bind(v),
                        Bind::Bytes(v) => q.bind(v),
                    };
                }
                q.execute(db).await.expect("sql");
            }
            BackDoor::Sqlite(db) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = match b {
                        Bind::Int(v) => q.bind(v),
                        Bind::Bytes(v) => q.bind(v),
                    };
                }
                q.execute(db).await.expect("sql");
            }
        }
    }

    /// The one number `sql` selects.
    pub async fn number(&self, sql: &str) -> i64 {
        match self {
            BackDoor::Postgres(db) => sqlx::query_scalar(sql).fetch_one(db).await.expect("sql"),
            BackDoor::Sqlite(db) => sqlx::query_scalar(sql).fetch_one(db).await.expect("sql"),
        }
    }

    pub async fn close(self) {
        match self {
            BackDoor::Postgres(db) => db.close().await,
            BackDoor::Sqlite(db) => db.close().await,
        }
    }
}

/// A value bound to a statement run through a [`BackDoor`].
pub enum Bind {
    Int(i64),
    Bytes(Vec<u8>),
}

/// A fresh store in `dir` on the suite's backend (see [`on_postgres`]), signing with `key`.
pub async fn fresh_store(
    dir: &std::path::Path,
    key: actas_core::tree_head::LedgerKey,
) -> std::sync::Arc<dyn actas_store::Store> {
    let location = if on_postgres() {
        actas_store::Location::Postgres(fresh_postgres().await)
    } else {
        actas_store::Location::Sqlite(dir.join("a.db"))
    };
    actas_store::open(&location, key, actas_store::OpenOptions::default())
        .await
        .expect("open store")
}

/// actas on a fresh data directory (kept in the returned folder), serving the console
/// on a random port.
pub async fn serve() -> (tempfile::TempDir, Application) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = fresh_data(&dir.path().join("data")).await;
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("start");
    (dir, app)
}

/// actas as [`serve`] does, with the starter policy edited by `edit` first.
pub async fn serve_with_policy(
    edit: impl FnOnce(String) -> String,
) -> (tempfile::TempDir, Application) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = fresh_data(&dir.path().join("data")).await;
    let path = dir.path().join("data").join("policy.toml");
    let policy = std::fs::read_to_string(&path).expect("policy");
    std::fs::write(&path, edit(policy)).expect("write policy");
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("start");
    (dir, app)
}

/// The password every test staff member has.
pub const PASSWORD: &str = "a-long-password";

/// Adds staff members (email, name, role), with [`PASSWORD`].
pub async fn add_staff(service: &Service, staff: &[(&str, &str, Role)]) {
    for (email, name, role) in staff {
        service
            .add_staff(
                Email::parse(email).expect("email"),
                DisplayName::parse(name).expect("name"),
                *role,
                Password::new(PASSWORD.into()).expect("password"),
                None,
            )
            .await
            .expect("staff");
    }
}

/// The team most tests use: Dana (director), Lee (lead), Sarah and Ola (agents) and
/// Audrey (auditor); Sarah is allowed up to `sarah_up_to`; and the account `acme`.
pub async fn team(service: &Service, sarah_up_to: Risk) {
    add_staff(
        service,
        &[
            ("dana@example.com", "Dana Park", Role::Director),
            ("lee@example.com", "Lee Chen", Role::Lead),
            ("sarah@example.com", "Sarah Lee", Role::Agent),
            ("ola@example.com", "Ola Nowak", Role::Agent),
            ("audrey@example.com", "Audrey Kim", Role::Auditor),
        ],
    )
    .await;
    allow(service, "sarah@example.com", sarah_up_to).await;
    acme(service).await;
}

/// Dana (a director, who must exist) allows `email` up to `risk`.
pub async fn allow(service: &Service, email: &str, risk: Risk) {
    service
        .change_allow_list(
            &Email::parse(email).expect("email"),
            AllowChange::Grant(risk),
            &Email::parse("dana@example.com").expect("email"),
            "On the billing support rota",
        )
        .await
        .expect("grant");
}

/// The account `acme`, "Acme Co".
pub async fn acme(service: &Service) {
    service
        .put_account("acme", "Acme Co", &[], Actor::System)
        .await
        .expect("account");
}

/// A staff member by email, who must exist.
pub async fn staff(service: &Service, email: &str) -> actas_store::StaffRecord {
    service
        .store()
        .staff_by_email(&Email::parse(email).expect("email"))
        .await
        .expect("read")
        .expect("the staff member exists")
}

/// A staff member signed in over the JSON API, with their cookie and CSRF token.
pub struct Person {
    /// The client (redirects not followed).
    pub http: reqwest::Client,
    /// The console's base URL.
    pub base: String,
    /// `name=value` of the console cookie.
    pub cookie: String,
    /// The sign-in's CSRF token.
    pub csrf: String,
}

impl Person {
    /// Signs `email` in with [`PASSWORD`].
    pub async fn sign_in(base: &str, email: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let r = http
            .post(format!("{base}/api/v1/sign-in"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{email} signs in");
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a cookie")
            .to_owned();
        let body: Value = r.json().await.expect("json");
        Self {
            http,
            base: base.to_owned(),
            cookie,
            csrf: body["csrf"].as_str().expect("csrf").to_owned(),
        }
    }

    /// GETs `path` with the cookie: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// POSTs JSON to `path`, which must succeed.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.try_post(path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    /// POSTs JSON to `path`: status and body.
    pub async fn try_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header("origin", &self.base)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }
}

/// A request by `staff` to view Acme Co for ticket #4821 (view only, so no approval is
/// needed).
pub async fn view_request(
    service: &Service,
    staff: &actas_store::StaffRecord,
) -> actas_core::request::AccessRequest {
    service
        .create_request(
            staff,
            actas_server::service::RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Check invoice tax rate after plan change".into(),
                capabilities: vec![],
                minutes: None,
                mode: None,
                for_session: None,
            },
        )
        .await
        .expect("request")
}

/// The CSRF token a console page's forms carry.
pub fn csrf_on(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token on the page")
        .to_owned()
}

/// The console's password sign-in form as a browser gets it: the form's token, and the
/// cookie (`name=value`) it is checked against.
pub async fn sign_in_form(console: &str) -> (String, String) {
    let r = reqwest::get(format!("{console}/sign-in"))
        .await
        .expect("the sign-in page");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("_form="))
        .and_then(|c| c.split(';').next())
        .expect("the sign-in form's cookie")
        .to_owned();
    let page = r.text().await.expect("page");
    (csrf_on(&page), cookie)
}
