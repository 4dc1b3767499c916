//! Several `actas serve` processes on one PostgreSQL database, each on port 0, behind no
//! load balancer at all: every request goes to whichever instance the test picks, as a
//! balancer with nothing sticky would send it. They share one gap-free ledger and every
//! rule: a console sign-in and its CSRF token, a hand-off, a session's end, a sign-in
//! lockout, the notification outbox and the assertion key. One instance killed with
//! SIGKILL under load loses nothing it acknowledged, and the others carry on.

mod common;

use actas_core::scope::Risk;
use actas_server::app::{Application, ServeSettings};
use common::{PASSWORD, Person};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One `actas serve` process.
struct Instance {
    child: Child,
    console: String,
    gateway: String,
}

impl Instance {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_actas"))
            .arg("--data")
            .arg(data)
            .args([
                "serve",
                "--console-addr",
                "127.0.0.1:0",
                "--gateway-addr",
                "127.0.0.1:0",
            ])
            .env_remove("ACTAS_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("actas serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut console, mut gateway) = (None, None);
        while console.is_none() || gateway.is_none() {
            let line = lines
                .next()
                .expect("actas serve said where it listens")
                .expect("line");
            if let Some(rest) = line.trim().strip_prefix("console and API: ") {
                console = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("gateway:") {
                gateway = rest.split_whitespace().next().map(str::to_owned);
            }
        }
        // Keep reading, so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Instance {
            child,
            console: console.expect("console"),
            gateway: gateway.expect("gateway"),
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM: finish requests, sign the ledger, exit 0.
    fn stop(mut self) {
        self.signal("-TERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "a clean stop: {status}");
    }

    /// SIGKILL: gone at once, mid-request.
    fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// What the product behind the gateway and the product's webhook endpoint saw.
#[derive(Default)]
struct Seen {
    /// The key id of each assertion the product was sent.
    kids: Mutex<Vec<String>>,
    /// The id of each notification delivered.
    webhooks: Mutex<Vec<String>>,
}

fn kid_of(assertion: &str) -> Option<String> {
    use base64::Engine;
    let header = assertion.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["kid"].as_str().map(str::to_owned)
}

/// A tiny product: any page, and a webhook endpoint, on one port.
async fn product(seen: Arc<Seen>) -> String {
    use axum::http::HeaderMap;
    let pages = seen.clone();
    let hooks = seen;
    let app = axum::Router::new()
        .route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap| {
                let hooks = hooks.clone();
                async move {
                    if let Some(id) = headers.get("actas-webhook-id").and_then(|v| v.to_str().ok())
                    {
                        hooks.webhooks.lock().expect("lock").push(id.to_owned());
                    }
                    "ok"
                }
            }),
        )
        .fallback(move |headers: HeaderMap| {
            let pages = pages.clone();
            async move {
                if let Some(kid) = headers
                    .get("actas-assertion")
                    .and_then(|v| v.to_str().ok())
                    .and_then(kid_of)
                {
                    pages.kids.lock().expect("lock").push(kid);
                }
                axum::response::Html(
                    "<!doctype html><html><head><title>Acme billing</title></head><body><h1>Invoices</h1><p>Plan: Pro</p></body></html>",
                )
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// An installation on a fresh PostgreSQL database: the team, the account and an app key
/// whose webhook goes to `product`, set up through one in-process instance; then `n`
/// data directories with the same files (what an operator copies to each machine).
async fn installation(n: usize, product: &str) -> (tempfile::TempDir, Vec<PathBuf>, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let first = dir.path().join("instance-0");
    let data = actas_server::config::DataDir::new(&first);
    data.init().expect("init");
    let url = common::fresh_postgres().await;
    let config = first.join("actas.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text
        .replacen("[store]\n", &format!("[store]\nurl = \"{url}\"\n"), 1)
        .replace(
            "upstream = \"http://127.0.0.1:8082\"",
            &format!("upstream = \"{product}\""),
        );
    std::fs::write(&config, text).expect("write config");
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("set-up instance");
    let s = app.service();
    common::team(s, Risk::High).await;
    let key = s
        .create_app_key(
            &actas_core::staff::Email::parse("dana@example.com").expect("email"),
            "portal",
            Some(&format!("{product}/hooks")),
        )
        .await
        .expect("app key");
    // A second account whose customer asks for a code before anyone acts on it.
    s.put_account("shy", "Shy Inc", &[], actas_core::event::Actor::System)
        .await
        .expect("account");
    s.set_consent(&key.app, "shy", "code_required")
        .await
        .expect("consent");
    let key = key.key.expose().to_owned();
    app.stop().await.expect("stop");
    let mut dirs = vec![first.clone()];
    for i in 1..n {
        let other = dir.path().join(format!("instance-{i}"));
        std::fs::create_dir(&other).expect("dir");
        for entry in std::fs::read_dir(&first).expect("read") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), other.join(entry.file_name())).expect("copy");
        }
        dirs.push(other);
    }
    (dir, dirs, key)
}

/// The same signed-in person, talking to another instance.
fn at(p: &Person, base: &str) -> Person {
    Person {
        http: p.http.clone(),
        base: base.to_owned(),
        cookie: p.cookie.clone(),
        csrf: p.csrf.clone(),
    }
}

async fn page(client: &reqwest::Client, gateway: &str, cookie: &str) -> u16 {
    client
        .get(format!("{gateway}/billing"))
        .header("cookie", cookie)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn post_event(client: &reqwest::Client, base: &str, key: &str, n: usize) -> bool {
    client
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(key)
        .json(
            &json!({ "account": "acme", "kind": "signed_in", "idempotency_key": format!("e-{n}") }),
        )
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED)
}

fn verify(data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_actas"))
        .arg("--data")
        .arg(data)
        .args(["audit", "verify"])
        .env_remove("ACTAS_DATABASE_URL")
        .output()
        .expect("actas audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the ledger verifies: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_one_ledger_and_every_rule() {
    let seen = Arc::new(Seen::default());
    let product = product(seen.clone()).await;
    let (_dir, dirs, app_key) = installation(3, &product).await;
    let ins: Vec<Instance> = dirs.iter().map(|d| Instance::start(d)).collect();
    let (a, b, c) = (&ins[0], &ins[1], &ins[2]);

    // A console sign-in, its CSRF token and a hand-off work on any instance.
    let sarah = Person::sign_in(&a.console, "sarah@example.com").await;
    let lee = Person::sign_in(&b.console, "lee@example.com").await;
    let (status, r) = sarah
        .try_post(
            "/api/v1/requests",
            json!({ "account": "acme", "ticket": "#4821", "reason": "Check invoice tax rate after plan change", "capabilities": [] }),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    let request = r["id"].as_str().expect("id").to_owned();
    if r["status"] == "pending" {
        lee.post(&format!("/api/v1/requests/{request}/approve"), json!({}))
            .await;
    }
    let started = at(&sarah, &c.console)
        .post("/api/v1/sessions", json!({ "request": request }))
        .await;
    let session = started["id"].as_str().expect("session").to_owned();
    let enter = started["handoff"]["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let entered = client
        .get(format!("{}{enter}", a.gateway))
        .send()
        .await
        .expect("enter");
    assert_eq!(entered.status(), 303);
    let cookie = entered.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();

    // Concurrent appends through all three: the product's events, page views through
    // each gateway, and notes in the console.
    let consoles: Vec<String> = ins.iter().map(|i| i.console.clone()).collect();
    let gateways: Vec<String> = ins.iter().map(|i| i.gateway.clone()).collect();
    let mut tasks = Vec::new();
    for t in 0..6usize {
        let (client, consoles, gateways, key, cookie) = (
            client.clone(),
            consoles.clone(),
            gateways.clone(),
            app_key.clone(),
            cookie.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..40usize {
                let n = t * 1000 + i;
                let accepted = if t % 2 == 0 {
                    post_event(&client, &consoles[n % 3], &key, n).await
                } else {
                    page(&client, &gateways[n % 3], &cookie).await == 200
                };
                assert!(accepted, "request {n} was refused");
                ok += 1;
            }
            ok
        }));
    }
    for i in 0..15usize {
        let note = at(&sarah, &consoles[i % 3])
            .try_post(
                &format!("/api/v1/sessions/{session}/note"),
                json!({ "note": format!("Checked invoice {i}") }),
            )
            .await;
        assert_eq!(note.0, 201, "{}", note.1);
    }
    let mut acknowledged = 15;
    for t in tasks {
        acknowledged += t.await.expect("task");
    }
    assert_eq!(acknowledged, 15 + 6 * 40);

    // A key rotation through A is honoured by B: B publishes the new key and, within
    // seconds, signs the product's assertions with it.
    let dana = Person::sign_in(&c.console, "dana@example.com").await;
    let rotated = at(&dana, &a.console)
        .post("/api/v1/keys/assertion/rotate", json!({}))
        .await;
    let new_kid = rotated["new_kid"].as_str().expect("kid").to_owned();
    let jwks: Value = client
        .get(format!("{}/.well-known/jwks.json", b.console))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert!(
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == new_kid.as_str()),
        "B publishes the key A put in place: {jwks}"
    );
    let mut signed_with_new = false;
    for _ in 0..60 {
        seen.kids.lock().expect("lock").clear();
        assert_eq!(page(&client, &b.gateway, &cookie).await, 200);
        if seen.kids.lock().expect("lock").contains(&new_kid) {
            signed_with_new = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(signed_with_new, "B signs with the rotated key within 15 s");

    // A session ended through A refuses its next request through B.
    at(&sarah, &a.console)
        .post(&format!("/api/v1/sessions/{session}/end"), json!({}))
        .await;
    let before = seen.kids.lock().expect("lock").len();
    let status = page(&client, &b.gateway, &cookie).await;
    assert_ne!(status, 200, "an ended session is over on every instance");
    assert_eq!(
        seen.kids.lock().expect("lock").len(),
        before,
        "nothing reached the product"
    );

    // A sign-in lockout holds across instances: wrong passwords spread over all three
    // lock the account, and the right one is then refused everywhere.
    for i in 0..5usize {
        let r = client
            .post(format!("{}/api/v1/sign-in", consoles[i % 3]))
            .json(&json!({ "email": "ola@example.com", "password": "not-her-password" }))
            .send()
            .await
            .expect("sign-in");
        assert_ne!(r.status(), 200);
    }
    for console in &consoles {
        let r = client
            .post(format!("{console}/api/v1/sign-in"))
            .json(&json!({ "email": "ola@example.com", "password": PASSWORD }))
            .send()
            .await
            .expect("sign-in");
        assert_ne!(r.status(), 200, "locked on {console} too");
        let body = r.text().await.expect("body");
        assert!(body.contains("locked"), "{body}");
    }

    // A confirmation code's tries are counted across instances: wrong codes through
    // A, B, C, A, B lock the request, and C then says so.
    let (status, r) = sarah
        .try_post(
            "/api/v1/requests",
            json!({ "account": "shy", "ticket": "#4822", "reason": "Check why the invoice failed", "capabilities": [] }),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    let coded = r["id"].as_str().expect("id").to_owned();
    if r["status"] == "pending" {
        lee.post(&format!("/api/v1/requests/{coded}/approve"), json!({}))
            .await;
    }
    for i in 0..5usize {
        let (status, body) = at(&sarah, &consoles[i % 3])
            .try_post(
                &format!("/api/v1/requests/{coded}/code"),
                json!({ "code": "000000" }),
            )
            .await;
        if i < 4 {
            assert_eq!(status, 422, "{body}");
            let left = format!("{} tries left", 4 - i);
            assert!(body.to_string().contains(&left), "{left}: {body}");
        } else {
            assert_eq!(status, 409, "the fifth wrong code locks it: {body}");
        }
    }
    let (status, body) = at(&sarah, &c.console)
        .try_post(
            &format!("/api/v1/requests/{coded}/code"),
            json!({ "code": "000000" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // Every notification (the session's start and end) is delivered exactly once,
    // though all three instances run the outbox.
    let mut waited = Duration::ZERO;
    while seen.webhooks.lock().expect("lock").len() < 2 && waited < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivered = seen.webhooks.lock().expect("lock").clone();
    let unique: std::collections::HashSet<&String> = delivered.iter().collect();
    assert!(delivered.len() >= 2, "{delivered:?}");
    assert_eq!(unique.len(), delivered.len(), "each once: {delivered:?}");

    for i in ins {
        i.stop();
    }
    let said = verify(&dirs[1]);
    let checked: u64 = said
        .split("The ledger verifies: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .expect("a count of events");
    assert!(
        checked >= acknowledged as u64,
        "every acknowledged append is in one gap-free ledger: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_under_load_loses_nothing_it_acknowledged() {
    let seen = Arc::new(Seen::default());
    let product = product(seen).await;
    let (_dir, dirs, app_key) = installation(2, &product).await;
    let mut ins: Vec<Instance> = dirs.iter().map(|d| Instance::start(d)).collect();
    let consoles: Vec<String> = ins.iter().map(|i| i.console.clone()).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let (consoles, key, stop, acked) = (
            consoles.clone(),
            app_key.clone(),
            stop.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = t * 1_000_000 + i;
                if post_event(&client, &consoles[n % 2], &key, n).await {
                    acked.lock().expect("lock").push(format!("e-{n}"));
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acked.lock().expect("lock").len();
    assert!(before_kill > 50, "load was running: {before_kill}");
    ins.remove(0).kill();
    // The other instance keeps serving.
    let after_kill = acked.lock().expect("lock").len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > after_kill + 20,
        "the survivor kept acknowledging: {} then {}",
        after_kill,
        acked.len()
    );
    ins.remove(0).stop();

    // Every acknowledged event is in the database, and the ledger verifies.
    let text = std::fs::read_to_string(dirs[1].join("actas.toml")).expect("config");
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("url = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("url")
        .to_owned();
    let db = sqlx::PgPool::connect(&url).await.expect("db");
    let present: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = ANY($1)")
            .bind(&acked)
            .fetch_one(&db)
            .await
            .expect("count");
    db.close().await;
    assert_eq!(
        present as usize,
        acked.len(),
        "no acknowledged event was lost"
    );
    verify(&dirs[1]);
}
