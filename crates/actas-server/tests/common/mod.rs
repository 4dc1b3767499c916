//! Shared set-up for the server's tests: staff, the allow-list and an account, made
//! through the service layer exactly as an operator would.
#![allow(dead_code, unreachable_pub)]

use actas_core::event::Actor;
use actas_core::scope::Risk;
use actas_core::staff::{DisplayName, Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::password::Password;
use actas_server::service::{AllowChange, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// actas on a fresh data directory (kept in the returned folder), serving the console
/// on a random port.
pub async fn serve() -> (tempfile::TempDir, Application) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = DataDir::new(dir.path().join("data"));
    data.init().expect("init");
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
    let data = DataDir::new(dir.path().join("data"));
    data.init().expect("init");
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
