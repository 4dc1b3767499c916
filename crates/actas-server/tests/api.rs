//! The JSON API over real HTTP on a random port, with a real SQLite file behind it.

mod common;

use actas_core::scope::Risk;
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct TestApp {
    _dir: tempfile::TempDir,
    app: Application,
    base: String,
}

impl TestApp {
    async fn start() -> Self {
        let (dir, app) = common::serve().await;
        let s = app.service();
        common::team(s, Risk::High).await;
        let base = format!("http://{}", app.console_addr());
        Self {
            _dir: dir,
            app,
            base,
        }
    }

    async fn sign_in(&self, email: &str) -> Client {
        self.sign_in_with(email, "a-long-password")
            .await
            .expect("signed in")
    }

    async fn sign_in_with(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Client, (StatusCode, Value)> {
        self.sign_in_full(email, password, None).await
    }

    async fn sign_in_full(
        &self,
        email: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<Client, (StatusCode, Value)> {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/api/v1/sign-in", self.base))
            .json(&json!({ "email": email, "password": password, "totp": totp }))
            .send()
            .await
            .expect("send");
        let status = r.status();
        let set_cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body: Value = r.json().await.expect("json");
        if status != StatusCode::OK {
            return Err((status, body));
        }
        let set_cookie = set_cookie.expect("a cookie");
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().expect("pair").to_owned();
        Ok(Client {
            http,
            base: self.base.clone(),
            cookie: Some(cookie),
            csrf: body["csrf"].as_str().map(str::to_owned),
            bearer: None,
        })
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
    bearer: Option<String>,
}

impl Client {
    fn with(&self, mut rb: reqwest::RequestBuilder, csrf: bool) -> reqwest::RequestBuilder {
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        if let Some(b) = &self.bearer {
            rb = rb.bearer_auth(b);
        }
        if csrf {
            if let Some(t) = &self.csrf {
                rb = rb.header("x-csrf-token", t);
            }
            rb = rb.header("origin", &self.base);
        }
        rb
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .with(self.http.get(format!("{}{path}", self.base)), false)
            .send()
            .await
            .expect("send");
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .with(
                self.http.post(format!("{}{path}", self.base)).json(&body),
                true,
            )
            .send()
            .await
            .expect("send");
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post_raw(
        &self,
        path: &str,
        body: Value,
        csrf: Option<&str>,
        origin: Option<&str>,
    ) -> StatusCode {
        let mut rb = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        if let Some(t) = csrf {
            rb = rb.header("x-csrf-token", t);
        }
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        rb.send().await.expect("send").status()
    }
}

fn ask(caps: &[&str], reason: &str) -> Value {
    json!({ "account": "acme", "ticket": "#4821", "reason": reason, "capabilities": caps })
}

const REASON: &str = "Check invoice tax rate after plan change";

#[tokio::test]
async fn the_staff_flow_end_to_end_over_http() {
    let t = TestApp::start().await;
    let sarah = t.sign_in("sarah@example.com").await;
    let lee = t.sign_in("lee@example.com").await;
    let ola = t.sign_in("ola@example.com").await;

    // Invariant 1: the control exists only for allow-listed staff, and the API refuses the rest.
    let (s, acme) = sarah.get("/api/v1/accounts/acme").await;
    assert_eq!(
        (s, acme["can_act_as"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (_, acme) = ola.get("/api/v1/accounts/acme").await;
    assert_eq!(acme["can_act_as"].as_bool(), Some(false));
    let (s, e) = ola.post("/api/v1/requests", ask(&[], REASON)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");

    let (s, r) = sarah
        .post("/api/v1/requests", ask(&["edit_settings"], REASON))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "pending");
    let id = r["id"].as_str().expect("id").to_owned();

    // Invariant 8 over HTTP: the requester can't approve (and isn't a lead anyway).
    let (s, _) = sarah
        .post(&format!("/api/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, queue) = lee.get("/api/v1/requests?status=pending").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(queue["requests"].as_array().map(Vec::len), Some(1));
    let (s, r) = lee
        .post(
            &format!("/api/v1/requests/{id}/approve"),
            json!({ "minutes": 10, "note": "Ten minutes is plenty" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["status"].as_str(), r["minutes"].as_u64()),
        (Some("approved"), Some(10))
    );

    let (s, started) = sarah
        .post("/api/v1/sessions", json!({ "request": id }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    assert!(
        started["handoff"]["path"]
            .as_str()
            .expect("path")
            .starts_with("/__actas/enter?token=")
    );
    let session = started["id"].as_str().expect("id").to_owned();

    // Invariant 4: no second session.
    let (_, r2) = sarah.post("/api/v1/requests", ask(&[], REASON)).await;
    let (s, e) = sarah
        .post("/api/v1/sessions", json!({ "request": r2["id"] }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");

    let (_, mine) = sarah.get("/api/v1/sessions").await;
    assert_eq!(mine["session"]["id"].as_str(), Some(session.as_str()));
    let (s, _) = ola
        .post(&format!("/api/v1/sessions/{session}/end"), json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "only the agent or a director ends it"
    );
    let (s, ended) = sarah
        .post(&format!("/api/v1/sessions/{session}/end"), json!({}))
        .await;
    assert_eq!(
        (s, ended["end_reason"].as_str()),
        (StatusCode::OK, Some("manual"))
    );

    let (s, log) = lee.get("/api/v1/audit?kind=session.ended").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        log["events"][0]["summary"],
        "Sarah Lee's session on Acme Co ended: Sarah Lee ended it"
    );
    let (s, _) = sarah.get("/api/v1/audit").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let audrey = t.sign_in("audrey@example.com").await;
    let (s, log) = audrey.get("/api/v1/audit?account=acme&limit=500").await;
    assert_eq!(s, StatusCode::OK);
    assert!(log["events"].as_array().expect("events").len() >= 5);
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn cookie_requests_that_change_state_need_the_csrf_token_and_our_origin() {
    let t = TestApp::start().await;
    let sarah = t.sign_in("sarah@example.com").await;
    let before = t.app.service().store().ledger_size().await.expect("size");
    let csrf = sarah.csrf.clone().expect("csrf");
    let body = ask(&[], REASON);
    assert_eq!(
        sarah
            .post_raw("/api/v1/requests", body.clone(), None, Some(&t.base))
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        sarah
            .post_raw(
                "/api/v1/requests",
                body.clone(),
                Some("wrong"),
                Some(&t.base)
            )
            .await,
        StatusCode::FORBIDDEN
    );
    // The gateway is another origin: even with the token, its pages can't act.
    let gateway = "http://127.0.0.1:8081";
    assert_eq!(
        sarah
            .post_raw("/api/v1/requests", body.clone(), Some(&csrf), Some(gateway))
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.app.service().store().ledger_size().await.expect("size"),
        before,
        "nothing was written"
    );
    assert_eq!(
        sarah
            .post_raw("/api/v1/requests", body, Some(&csrf), Some(&t.base))
            .await,
        StatusCode::CREATED
    );

    // Personal API tokens carry no ambient credential, so they need no CSRF token.
    let (s, tok) = sarah
        .post("/api/v1/tokens", json!({ "name": "billing script" }))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let api = Client {
        http: reqwest::Client::new(),
        base: t.base.clone(),
        cookie: None,
        csrf: None,
        bearer: tok["token"].as_str().map(str::to_owned),
    };
    let (s, me) = api.get("/api/v1/me").await;
    assert_eq!(
        (s, me["email"].as_str()),
        (StatusCode::OK, Some("sarah@example.com"))
    );
    let (s, _) = api.post("/api/v1/requests", ask(&[], REASON)).await;
    assert_eq!(s, StatusCode::CREATED);
    let bad = Client {
        bearer: Some("actas_nope".into()),
        ..api
    };
    assert_eq!(bad.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn wrong_passwords_slow_down_then_lock_signing_in_and_are_recorded() {
    let t = TestApp::start().await;
    for i in 1..=5 {
        let (s, body) = t
            .sign_in_with("sarah@example.com", "not-the-password")
            .await
            .err()
            .expect("refused");
        assert_eq!(s, StatusCode::UNAUTHORIZED, "try {i}: {body}");
        assert_eq!(
            body["error"]["message"],
            "the email or password is not right"
        );
    }
    let (s, body) = t
        .sign_in_with("sarah@example.com", "a-long-password")
        .await
        .err()
        .expect("locked");
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("locked until"),
        "{body}"
    );
    // Unknown emails get the same answer as wrong passwords.
    let (s, body) = t
        .sign_in_with("nobody@example.com", "a-long-password")
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (s, body["error"]["message"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("the email or password is not right")
        )
    );
    let lee = t.sign_in("lee@example.com").await;
    let (_, log) = lee.get("/api/v1/audit?kind=staff.sign_in_failed").await;
    let last = log["events"]
        .as_array()
        .expect("events")
        .last()
        .expect("one")
        .clone();
    assert_eq!(
        last["summary"],
        "Someone gave a wrong password for Sarah Lee (sarah@example.com) 5 times in a row; signing in is locked for 15 minutes"
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field_and_changes_nothing() {
    let t = TestApp::start().await;
    let sarah = t.sign_in("sarah@example.com").await;
    let before = t.app.service().store().ledger_size().await.expect("size");
    let cases = [
        (ask(&[], "need access"), "reason"),
        (
            json!({ "account": "acme", "ticket": "4821", "reason": REASON }),
            "ticket",
        ),
        (
            json!({ "account": "no such", "ticket": "#1", "reason": REASON }),
            "account",
        ),
        (ask(&["payments"], REASON), "capabilities"),
        (
            json!({ "account": "acme", "ticket": "#1", "reason": REASON, "minutes": 999 }),
            "minutes",
        ),
        (
            json!({ "account": "acme", "ticket": "#1", "reason": REASON, "mode": "wild" }),
            "mode",
        ),
        (json!({ "account": "acme", "ticket": "#1" }), "reason"),
        (
            json!({ "account": "acme", "ticket": "#1", "reason": REASON, "minutes": "ten" }),
            "minutes",
        ),
    ];
    for (body, field) in cases {
        let (s, e) = sarah.post("/api/v1/requests", body.clone()).await;
        assert!(s.is_client_error(), "{body}: {s}");
        assert_eq!(e["error"]["field"], field, "{body}: {e}");
        assert!(!e["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    let (s, e) = sarah
        .post("/api/v1/sessions", json!({ "request": "not-a-uuid" }))
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("request"))
    );
    let (s, e) = sarah
        .get("/api/v1/requests/12345678-1234-4234-8234-123456789012")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(
        t.app.service().store().ledger_size().await.expect("size"),
        before,
        "nothing was written"
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn without_a_writable_ledger_no_session_starts_and_nothing_changes() {
    let t = TestApp::start().await;
    let sarah = t.sign_in("sarah@example.com").await;
    let (_, r) = sarah.post("/api/v1/requests", ask(&[], REASON)).await;
    let before = t.app.service().store().ledger_size().await.expect("size");
    t.app.store().stop_writer().await;
    let (s, e) = sarah
        .post("/api/v1/sessions", json!({ "request": r["id"] }))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert_eq!(e["error"]["code"], "ledger_unavailable");
    let (_, mine) = sarah.get("/api/v1/sessions").await;
    assert_eq!(
        mine["session"],
        Value::Null,
        "no session exists without its session.started event"
    );
    let (s, _) = sarah.post("/api/v1/requests", ask(&[], REASON)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        t.app.service().store().ledger_size().await.expect("size"),
        before
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn two_step_sign_in_with_an_authenticator_app() {
    let t = TestApp::start().await;
    let sarah = t.sign_in("sarah@example.com").await;
    let (s, begun) = sarah.post("/api/v1/totp", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let uri = begun["otpauth_uri"].as_str().expect("uri").to_owned();
    assert!(
        uri.starts_with("otpauth://totp/actas:sarah%40example.com?"),
        "{uri}"
    );
    let app = totp_rs::TOTP::from_url(&uri).expect("parses");
    let (s, e) = sarah
        .post("/api/v1/totp/confirm", json!({ "code": "000000" }))
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("code"))
    );
    let enrolled = app.generate_current().expect("code");
    let (s, _) = sarah
        .post("/api/v1/totp/confirm", json!({ "code": enrolled }))
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, e) = t
        .sign_in_full("sarah@example.com", "a-long-password", None)
        .await
        .err()
        .expect("needs the code");
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("totp"))
    );
    let (s, _) = t
        .sign_in_full("sarah@example.com", "a-long-password", Some("123456"))
        .await
        .err()
        .expect("wrong code");
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Each code works once: the one that turned it on, then the next one, once.
    let (s, e) = t
        .sign_in_full("sarah@example.com", "a-long-password", Some(&enrolled))
        .await
        .err()
        .expect("the code that turned it on is used");
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has been used already")),
        "{e}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let next = app.generate(now + 30);
    assert!(
        t.sign_in_full("sarah@example.com", "a-long-password", Some(&next))
            .await
            .is_ok()
    );
    let (s, _) = t
        .sign_in_full("sarah@example.com", "a-long-password", Some(&next))
        .await
        .err()
        .expect("replayed");
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a code works once");
    let lee = t.sign_in("lee@example.com").await;
    let (_, log) = lee.get("/api/v1/audit?kind=staff.totp_enabled").await;
    assert_eq!(
        log["events"][0]["summary"],
        "Sarah Lee turned on two-step sign-in with an authenticator app"
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes_that_are_served() {
    let t = TestApp::start().await;
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{}/api/v1/openapi.json", t.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let id = "12345678-1234-4234-8234-123456789012";
    for (path, ops) in paths {
        for method in ops.as_object().expect("ops").keys() {
            let url = format!("{}/api/v1{}", t.base, path.replace("{id}", id));
            let r = match method.as_str() {
                "get" => http.get(&url).send().await,
                "post" => http.post(&url).json(&json!({})).send().await,
                "put" => http.put(&url).json(&json!({})).send().await,
                other => panic!("undocumented method {other}"),
            }
            .expect("send");
            assert_ne!(
                r.status(),
                StatusCode::NOT_FOUND,
                "{method} {path} is documented but not served"
            );
            assert_ne!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
        }
    }
    // And the other way round: every route goes through `routes!`, which documents it.
    let source = include_str!("../src/http/api/mod.rs");
    assert!(
        !source.contains(".route("),
        "a route registered without routes! would be served but not documented"
    );
    assert!(paths.len() > 30, "{}", paths.len());
    // Every link between operations names one that exists, by a parameter it has.
    let mut by_id = std::collections::HashMap::new();
    for ops in paths.values() {
        for op in ops.as_object().expect("ops").values() {
            if let Some(id) = op["operationId"].as_str() {
                by_id.insert(id.to_owned(), op.clone());
            }
        }
    }
    let mut links = 0;
    for ops in paths.values() {
        for op in ops.as_object().expect("ops").values() {
            for response in op["responses"].as_object().expect("responses").values() {
                let Some(found) = response.get("links").and_then(Value::as_object) else {
                    continue;
                };
                for (name, link) in found {
                    let target = link["operationId"].as_str().expect("operationId");
                    let to = by_id
                        .get(target)
                        .unwrap_or_else(|| panic!("{name}: no {target}"));
                    for (param, expr) in link["parameters"].as_object().expect("parameters") {
                        assert!(
                            to["parameters"]
                                .as_array()
                                .is_some_and(|ps| ps.iter().any(|p| p["name"] == param.as_str())),
                            "{name}: {target} has no parameter {param}"
                        );
                        assert_eq!(expr, "$response.body#/id", "{name}");
                        links += 1;
                    }
                }
            }
        }
    }
    assert!(links >= 13, "{links} links");
    // Every reference in the document resolves.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 100, "{}", found.len());
    for r in found {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(
            doc.pointer(pointer).is_some(),
            "{r} names nothing in the document"
        );
    }
    // What is served is what the code generates.
    let generated = serde_json::to_value(actas_server::http::api::document()).expect("document");
    assert_eq!(doc, generated, "the served document is the generated one");
    if let Ok(to) = std::env::var("ACTAS_WRITE_OPENAPI") {
        std::fs::write(to, serde_json::to_string_pretty(&doc).expect("text")).expect("write");
    }
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_director_replaces_the_assertion_key_and_the_old_one_stays_published() {
    let t = TestApp::start().await;
    let jwks = |base: String| async move {
        let v: Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect::<Vec<_>>()
    };
    let before = jwks(t.base.clone()).await;
    assert_eq!(before.len(), 1);

    let sarah = t.sign_in("sarah@example.com").await;
    let (status, _) = sarah.post("/api/v1/keys/assertion/rotate", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only a director may");
    assert_eq!(jwks(t.base.clone()).await, before);

    let dana = t.sign_in("dana@example.com").await;
    let (status, body) = dana.post("/api/v1/keys/assertion/rotate", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_kid = body["new_kid"].as_str().expect("new kid").to_owned();
    assert_eq!(body["old_kid"], before[0].as_str());
    let after = jwks(t.base.clone()).await;
    assert_eq!(
        after,
        vec![new_kid.clone(), before[0].clone()],
        "the new key signs; the old one is published until its assertions expire"
    );

    let (_, log) = dana.get("/api/v1/audit?kind=keys.assertion_rotated").await;
    let events = log["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{log}");
    assert!(
        events[0]["summary"]
            .as_str()
            .expect("summary")
            .starts_with("Dana Park replaced the key that signs the gateway's assertions"),
        "{log}"
    );

    // After a restart the new key is the one in use and the old one is still published.
    let data = DataDir::new(t._dir.path().join("data"));
    t.app.stop().await.expect("stop");
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("restart");
    assert_eq!(
        jwks(format!("http://{}", app.console_addr())).await,
        vec![new_kid, before[0].clone()]
    );
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn an_assertion_key_written_behind_actas_back_is_never_used_or_published() {
    let t = TestApp::start().await;
    let jwks = || async {
        let v: Value = reqwest::get(format!("{}/.well-known/jwks.json", t.base))
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect::<Vec<_>>()
    };
    let before = jwks().await;
    let kid = t.app.assertions().kid();
    // Someone with the database (not the ledger key) adds a key of their own, made
    // later than ours so it would look current, and retires ours.
    use base64::Engine;
    let forged_seed = [9u8; 32];
    let public = actas_server::assertion::public_of(&forged_seed).expect("public");
    let forged_kid = actas_server::assertion::kid_of(&public);
    let db = common::BackDoor::open(&t._dir.path().join("data")).await;
    db.execute(
        "UPDATE assertion_keys SET retired_at = $1",
        vec![common::Bind::Int(actas_core::Timestamp::now().as_millis())],
    )
    .await;
    db.execute(
        &format!(
            "INSERT INTO assertion_keys (kid, public, sealed, mac, created_at, retired_at) VALUES ('{forged_kid}', $1, $2, $3, $4, NULL)"
        ),
        vec![
            common::Bind::Bytes(public.to_vec()),
            common::Bind::Bytes(vec![0; 60]),
            common::Bind::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                    .expect("b64"),
            ),
            common::Bind::Int(actas_core::Timestamp::now().as_millis() + 60_000),
        ],
    )
    .await;
    db.close().await;
    let after = jwks().await;
    assert!(!after.contains(&forged_kid), "{after:?}");
    assert_eq!(after, before, "the published keys are what actas stored");
    assert_eq!(
        t.app.assertions().kid(),
        kid,
        "the signing key is unchanged"
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_sign_in_from_another_site_is_refused() {
    let t = TestApp::start().await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/sign-in", t.base))
        .header("origin", "https://evil.example")
        .json(&json!({ "email": "sarah@example.com", "password": "a-long-password" }))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none(), "no cookie");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "cross_site");
    // Without Origin (a script, not a browser) it works as before.
    assert!(
        t.sign_in_full("sarah@example.com", "a-long-password", None)
            .await
            .is_ok()
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn sign_ins_are_limited_per_account_and_per_address_before_any_password_is_checked() {
    let t = TestApp::start().await;
    let attempt = |email: String| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/sign-in", t.base))
            .json(&json!({ "email": email, "password": "not-the-password" }))
            .send()
    };
    // One account: ten in a minute, then refused in words, whoever tries.
    for _ in 0..10 {
        let r = attempt("nobody@example.com".into()).await.expect("post");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = attempt("Nobody@Example.com".into()).await.expect("post");
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the same account"
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too many sign-ins to this account")),
        "{body}"
    );
    // Another account from the same address still gets its answer.
    let r = attempt("someone@example.com".into()).await.expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // One address: sixty in a minute, whichever accounts (the allowance refills by one
    // a second meanwhile, so a few more get through while these run).
    let mut answered = 12;
    let refused = loop {
        let r = attempt(format!("guess{answered}@example.com"))
            .await
            .expect("post");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        answered += 1;
        assert!(answered < 120, "never limited");
    };
    assert!(answered >= 60, "sixty are answered first, not {answered}");
    let body: Value = refused.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too many sign-ins from this address")),
        "{body}"
    );
    t.app.stop().await.expect("stop");
}

/// Checks one refusal: the status, a JSON body in the error shape, the field named, and
/// a message in words (no parser's text).
async fn refused_as(r: reqwest::Response, status: StatusCode, field: &str, what: &str) -> Value {
    assert_eq!(r.status(), status, "{what}");
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("application/json"), "{what}: {kind}");
    let body: Value = r.json().await.expect("json");
    let e = &body["error"];
    assert!(
        e["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: {body}"
    );
    assert_eq!(e["field"], field, "{what}: {body}");
    let message = e["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: {body}");
    for internal in [
        "Failed to",
        "invalid digit",
        "deserialize",
        "expected value",
        "at line",
        "target type",
        "invalid type",
    ] {
        assert!(!message.contains(internal), "{what}: {message}");
    }
    body
}

#[tokio::test]
async fn every_operation_refuses_malformed_input_in_the_one_error_shape_naming_the_field() {
    let t = TestApp::start().await;
    let dana = t.sign_in("dana@example.com").await;
    let (_, made) = dana
        .post("/api/v1/tokens", json!({ "name": "table" }))
        .await;
    let token = made["token"].as_str().expect("token").to_owned();
    let director = actas_core::staff::Email::parse("dana@example.com").expect("email");
    let key = t
        .app
        .service()
        .create_app_key(&director, "portal", None)
        .await
        .expect("app key")
        .key
        .expose()
        .to_owned();
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{}/api/v1/openapi.json", t.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = "12345678-1234-4234-8234-123456789012";
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("ops") {
            let method: reqwest::Method = method.to_uppercase().parse().expect("method");
            let app = op["security"]
                .as_array()
                .is_some_and(|s| s.first().is_some_and(|f| f.get("appKey").is_some()));
            let credential = if app { &key } else { &token };
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let segments: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let url_with = |bad: Option<(&str, &str)>, query: &str| {
                let mut p = path.clone();
                for s in &segments {
                    let value = match bad {
                        Some((name, v)) if name == *s => v,
                        _ if *s == "seq" => "1",
                        _ => id,
                    };
                    p = p.replace(&format!("{{{s}}}"), value);
                }
                format!("{}/api/v1{p}{query}", t.base)
            };
            let send = |url: String, body: Option<(&'static str, Vec<u8>)>| {
                let mut rb = http.request(method.clone(), url).bearer_auth(credential);
                if let Some((kind, bytes)) = body {
                    rb = rb.header("content-type", kind).body(bytes);
                }
                rb.send()
            };
            let what = |case: &str| format!("{method} {path}: {case}");
            // A parameter the operation doesn't have.
            let r = send(url_with(None, "?zz_unknown=1"), None)
                .await
                .expect("send");
            refused_as(
                r,
                StatusCode::UNPROCESSABLE_ENTITY,
                "zz_unknown",
                &what("unknown parameter"),
            )
            .await;
            checked += 1;
            // A whole-number parameter that isn't one.
            for p in &params {
                let name = p["name"].as_str().expect("name");
                if p["in"] == "query" && p["schema"]["type"] == "integer" {
                    let r = send(url_with(None, &format!("?{name}=-1")), None)
                        .await
                        .expect("send");
                    refused_as(
                        r,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        name,
                        &what(&format!("{name}=-1")),
                    )
                    .await;
                    checked += 1;
                }
            }
            // A path segment that isn't text once decoded, or isn't a number.
            for s in &segments {
                let bad = if *s == "seq" { "x" } else { "%FF" };
                let r = send(url_with(Some((s, bad)), ""), None)
                    .await
                    .expect("send");
                refused_as(
                    r,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    s,
                    &what(&format!("{s}={bad}")),
                )
                .await;
                checked += 1;
            }
            if op.get("requestBody").is_some() {
                let cases: [(&'static str, &[u8], StatusCode, &str); 5] = [
                    ("application/json", b"{", StatusCode::BAD_REQUEST, "body"),
                    ("application/json", b"{]", StatusCode::BAD_REQUEST, "body"),
                    (
                        "text/plain",
                        b"{}",
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "body",
                    ),
                    (
                        "application/json",
                        b"{\"zz_unknown\": 1}",
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "zz_unknown",
                    ),
                    (
                        "application/json",
                        b"[1, 2]",
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "body",
                    ),
                ];
                for (kind, bytes, status, field) in cases {
                    let case = format!("{kind} {}", String::from_utf8_lossy(bytes));
                    let r = send(url_with(None, ""), Some((kind, bytes.to_vec())))
                        .await
                        .expect("send");
                    refused_as(r, status, field, &what(&case)).await;
                    checked += 1;
                }
                let big = vec![b' '; 3 * 1024 * 1024];
                let r = send(url_with(None, ""), Some(("application/json", big)))
                    .await
                    .expect("send");
                let body =
                    refused_as(r, StatusCode::PAYLOAD_TOO_LARGE, "body", &what("3 MiB")).await;
                assert_eq!(body["error"]["code"], "too_large");
            }
            // A method the path doesn't take.
            let r = http
                .request(reqwest::Method::DELETE, url_with(None, ""))
                .bearer_auth(credential)
                .send()
                .await
                .expect("send");
            assert!(r.headers().get("allow").is_some(), "{}", what("DELETE"));
            refused_as(r, StatusCode::METHOD_NOT_ALLOWED, "method", &what("DELETE")).await;
        }
    }
    assert!(checked > 100, "{checked} cases");
    // A path the API doesn't have.
    let r = http
        .get(format!("{}/api/v1/no-such-thing", t.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    refused_as(r, StatusCode::NOT_FOUND, "path", "an unknown route").await;
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn the_role_is_checked_before_the_input_and_limits_are_refused_not_clamped() {
    let t = TestApp::start().await;
    let sarah = t.sign_in("sarah@example.com").await;
    for path in [
        "/api/v1/audit?limit=-1",
        "/api/v1/requests?status=everything",
        "/api/v1/reviews/weekly?week=soon",
    ] {
        let (s, e) = sarah.get(path).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{path}: an agent learns nothing from a 422: {e}"
        );
    }
    let (s, e) = sarah
        .post("/api/v1/allow-list", json!({ "email": 5 }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let audrey = t.sign_in("audrey@example.com").await;
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
    ] {
        let (s, e) = audrey.get(&format!("/api/v1/audit?{q}")).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{q}: {e}"
        );
    }
    let (s, _) = audrey.get("/api/v1/audit?limit=1000").await;
    assert_eq!(s, StatusCode::OK);
    t.app.stop().await.expect("stop");
}

/// schemathesis, installed by `cargo xtask prereqs` (and `cargo xtask test`) into a venv
/// under `target/`.
const SCHEMATHESIS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/schemathesis/bin/schemathesis"
);

#[tokio::test]
async fn schemathesis_finds_nothing_the_document_and_the_code_disagree_on() {
    assert!(
        std::path::Path::new(SCHEMATHESIS).exists(),
        "schemathesis is missing at {SCHEMATHESIS}: run `cargo xtask prereqs`"
    );
    let t = TestApp::start().await;
    common::acme(t.app.service()).await;
    let mut tokens = Vec::new();
    for (who, email) in [
        ("a director", "dana@example.com"),
        ("an agent", "sarah@example.com"),
    ] {
        let c = t.sign_in(email).await;
        let (s, made) = c
            .post("/api/v1/tokens", json!({ "name": "schemathesis" }))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{made}");
        tokens.push((who, made["token"].as_str().expect("token").to_owned()));
    }
    let director = actas_core::staff::Email::parse("dana@example.com").expect("email");
    let key = t
        .app
        .service()
        .create_app_key(&director, "portal", None)
        .await
        .expect("app key")
        .key
        .expose()
        .to_owned();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    for (who, token) in tokens {
        let mut run = std::process::Command::new(SCHEMATHESIS);
        run.args(["--no-color", "--config-file", config, "run"])
            .arg(format!("{}/api/v1/openapi.json", t.base))
            .args(["--url", &format!("{}/api/v1", t.base)])
            .args(["--checks", "all", "--phases", "examples,fuzzing,stateful"])
            // Bounded, and the same cases each run: a failure here reproduces.
            .args(["--max-examples", "10", "--seed", "1"])
            .env("ACTAS_ST_TOKEN", &token)
            .env("ACTAS_ST_APP_KEY", &key);
        // On a blocking thread: the server answers on this one meanwhile.
        let out = tokio::task::spawn_blocking(move || run.output())
            .await
            .expect("join")
            .expect("run schemathesis");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis as {who} found disagreements:\n{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report.contains("Tested: 42"), "as {who}:\n{report}");
    }
    t.app.stop().await.expect("stop");
}
