//! The gateway over real HTTP: a small product server on a random port behind it, and a
//! real client in front. Each test walks one of DESIGN.md's gateway invariants.

mod common;

use actas_core::Timestamp;
use actas_core::event::EventData;
use actas_core::scope::Risk;
use actas_core::session::ActiveSession;
use actas_core::staff::{Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::service::{Approval, RequestInput};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use std::sync::{Arc, Mutex};

/// Rows in the `/big` page: about 20 MiB, more than the 16 MiB whole-body limit.
const BIG_ROWS: usize = 80_000;

/// What the product saw of each request.
#[derive(Default)]
struct Seen(Mutex<Vec<HeaderMap>>);

async fn product(seen: Arc<Seen>) -> String {
    async fn page(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> Html<&'static str> {
        seen.0.lock().expect("lock").push(headers);
        Html(
            r#"<!doctype html><html><head><title>Billing</title></head><body><h1>Billing</h1>
<p>Card <span class="card-number">4111 1111 1111 4242</span></p><div data-secret>RECOVERY-CODE-XYZ</div></body></html>"#,
        )
    }
    async fn profile(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> impl IntoResponse {
        seen.0.lock().expect("lock").push(headers);
        (
            [
                ("actas-audit", "{\"field\":\"x\"}"),
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
                ("x-customer-email", "sarah@acme.com"),
            ],
            r#"{"name":"Acme Co","email":"sarah@acme.com","national_id":"AB123456C","card":{"number":"4111111111114242"},"internal":"VIP"}"#,
        )
    }
    async fn settings(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> impl IntoResponse {
        seen.0.lock().expect("lock").push(headers);
        (
            [(
                "actas-audit",
                r#"{"field":"name","from":"Acme","to":"Acme Café","description":"renamed the\ncompany  "}"#,
            )],
            "saved",
        )
    }
    async fn export(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> impl IntoResponse {
        seen.0.lock().expect("lock").push(headers);
        (
            [
                ("content-type", "text/csv"),
                ("content-disposition", "attachment; filename=t.csv"),
            ],
            "date,amount\n",
        )
    }
    /// A redirect to the product's own origin, absolute (`/go`) or scheme-relative
    /// (`/go?relative`).
    async fn go(headers: HeaderMap, uri: axum::http::Uri) -> impl IntoResponse {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let scheme = if uri.query() == Some("relative") {
            ""
        } else {
            "http:"
        };
        (
            axum::http::StatusCode::SEE_OTHER,
            [("location", format!("{scheme}//{host}/landing"))],
        )
    }
    async fn links(headers: HeaderMap) -> Html<String> {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Html(format!(
            r#"<html><body><a href="http://{host}/loans">Loans</a><a href="//{host}/cards">Cards</a></body></html>"#
        ))
    }
    async fn gzipped() -> impl IntoResponse {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(
            br#"<html><body><span class="card-number">4111 1111 1111 4242</span></body></html>"#,
        )
        .expect("gz");
        (
            [("content-type", "text/html"), ("content-encoding", "gzip")],
            e.finish().expect("gz"),
        )
    }
    async fn brotlied() -> impl IntoResponse {
        use std::io::Write;
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(br#"{"card":{"number":"4111111111114242"},"secret":"s3cr3t"}"#)
                .expect("br");
        }
        (
            [
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
            out,
        )
    }
    /// A page larger than the gateway's whole-body limit, sent in many small chunks, with
    /// a card number in each row.
    async fn big() -> impl IntoResponse {
        let head = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(
                b"<!doctype html><html><body><table>",
            ))
        });
        let rows = futures_util::stream::iter((0..BIG_ROWS).map(|i| {
            Ok(axum::body::Bytes::from(format!(
                "<tr><td>{i}</td><td class=\"card-number\">4111 1111 1111 4242</td><td>{}</td></tr>",
                "x".repeat(200)
            )))
        }));
        let tail = futures_util::stream::once(async {
            Ok(axum::body::Bytes::from_static(b"</table></body></html>"))
        });
        (
            [("content-type", "text/html; charset=utf-8")],
            axum::body::Body::from_stream(head.chain(rows).chain(tail)),
        )
    }
    /// A live feed: one message with secrets, one that isn't JSON, one binary, one plain;
    /// then it echoes what the browser sends, as JSON.
    async fn live(
        State(seen): State<Arc<Seen>>,
        headers: HeaderMap,
        ws: axum::extract::ws::WebSocketUpgrade,
    ) -> impl IntoResponse {
        use axum::extract::ws::Message;
        seen.0.lock().expect("lock").push(headers);
        ws.on_upgrade(|mut socket| async move {
            for m in [
                Message::Text(
                    r#"{"name":"Acme Co","card":{"number":"4111111111114242"},"internal":"VIP"}"#
                        .into(),
                ),
                Message::Text("card 4111111111114242".into()),
                Message::Binary(axum::body::Bytes::from_static(b"4111111111114242")),
                Message::Text(r#"{"name":"ready"}"#.into()),
            ] {
                if socket.send(m).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(Message::Text(t))) = socket.recv().await {
                let echo = serde_json::json!({ "name": t.as_str() }).to_string();
                if socket.send(Message::Text(echo.into())).await.is_err() {
                    return;
                }
            }
        })
    }
    /// The same secret three ways: in XHTML, with no Content-Type at all (a browser would
    /// guess it is a page), and as a plain text file.
    async fn xhtml() -> impl IntoResponse {
        (
            [("content-type", "application/xhtml+xml; charset=utf-8")],
            r#"<html xmlns="http://www.w3.org/1999/xhtml"><body><span class="card-number">4111 1111 1111 4242</span></body></html>"#,
        )
    }
    async fn untyped() -> axum::response::Response {
        axum::response::Response::new(axum::body::Body::from(
            r#"<html><body><span class="card-number">4111 1111 1111 4242</span></body></html>"#,
        ))
    }
    /// No Content-Type and no length given, but nothing in it.
    async fn nothing() -> axum::response::Response {
        axum::response::Response::new(axum::body::Body::from_stream(
            futures_util::stream::empty::<Result<axum::body::Bytes, std::io::Error>>(),
        ))
    }
    async fn text() -> &'static str {
        "release notes"
    }
    async fn packed() -> impl IntoResponse {
        (
            [
                ("content-type", "text/html"),
                ("content-encoding", "x-custom"),
            ],
            r#"<html><body><span class="card-number">4111 1111 1111 4242</span></body></html>"#,
        )
    }
    /// Server-sent events: one with secrets, one that isn't JSON, then the stream stays
    /// open, as a live feed does.
    async fn feed() -> impl IntoResponse {
        let events = futures_util::stream::iter([
            "event: update\ndata: {\"name\":\"Acme Co\",\"card\":{\"number\":\"4111111111114242\"},\"internal\":\"VIP\"}\n\n",
            "data: card 4111111111114242\n\n",
            ": still here\n\n",
        ])
        .map(|e| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(e.as_bytes())))
        .chain(futures_util::stream::pending());
        (
            [("content-type", "text/event-stream")],
            axum::body::Body::from_stream(events),
        )
    }
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/feed", get(feed))
        .route("/xhtml", get(xhtml))
        .route("/untyped", get(untyped))
        .route("/nothing", get(nothing))
        .route("/notes.txt", get(text))
        .route("/packed", get(packed))
        .route("/live", get(live))
        .route("/big", get(big))
        .route("/gz", get(gzipped))
        .route("/br", get(brotlied))
        .route("/go", get(go))
        .route("/links", get(links))
        .route("/api/profile", get(profile))
        .route("/settings/tax", post(settings))
        .route("/transactions/export.csv", get(export))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("product") });
    format!("http://{addr}")
}

struct World {
    _dir: tempfile::TempDir,
    app: Application,
    gateway: String,
    seen: Arc<Seen>,
}

async fn world() -> World {
    let seen = Arc::new(Seen::default());
    let upstream = product(seen.clone()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let data = DataDir::new(dir.path().join("data"));
    data.init().expect("init");
    let config = data.path().join("actas.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let pointed = text.replace(
        "upstream = \"http://127.0.0.1:8082\"",
        &format!("upstream = \"{upstream}\""),
    );
    assert_ne!(pointed, text, "actas init writes the gateway's upstream");
    std::fs::write(&config, pointed).expect("write");
    let settings = ServeSettings {
        gateway_addr: Some(([127, 0, 0, 1], 0).into()),
        ..ServeSettings::on(([127, 0, 0, 1], 0).into())
    };
    let app = Application::build(&data, settings).await.expect("start");
    let s = app.service();
    common::add_staff(
        s,
        &[
            ("dana@example.com", "Dana Park", Role::Director),
            ("lee@example.com", "Lee Chen", Role::Lead),
            ("sarah@example.com", "Sarah Lee", Role::Agent),
        ],
    )
    .await;
    common::allow(s, "sarah@example.com", Risk::High).await;
    common::acme(s).await;
    let gateway = format!("http://{}", app.gateway_addr().expect("gateway runs"));
    World {
        _dir: dir,
        app,
        gateway,
        seen,
    }
}

/// The agent's browser inside a session: a client (redirects not followed) and the
/// gateway cookie it was given.
struct Agent {
    client: reqwest::Client,
    cookie: String,
    gateway: String,
}

impl Agent {
    /// A GET of `path` on the gateway, with the session cookie.
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.gateway))
            .header("cookie", &self.cookie)
    }

    /// A POST to `path` on the gateway, with the session cookie.
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.gateway))
            .header("cookie", &self.cookie)
    }
}

/// Starts a session with `caps` in `mode` and enters the gateway as Sarah's browser.
async fn enter(w: &World, caps: &[&str], mode: &str) -> Agent {
    let s = w.app.service();
    let sarah = common::staff(s, "sarah@example.com").await;
    let lee = common::staff(s, "lee@example.com").await;
    let r = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Check invoice tax rate after plan change".into(),
                capabilities: caps.iter().map(|c| c.to_string()).collect(),
                minutes: None,
                mode: Some(mode.into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    if r.status == actas_core::request::RequestStatus::Pending {
        s.approve_request(&lee, r.id, Approval::default())
            .await
            .expect("approve");
    }
    let (_, token) = s
        .start_session(&sarah, r.id, Timestamp::now())
        .await
        .expect("start");
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let resp = client
        .get(format!(
            "{}/__actas/enter?token={}",
            w.gateway,
            token.expose()
        ))
        .send()
        .await
        .expect("enter");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let again = client
        .get(format!(
            "{}/__actas/enter?token={}",
            w.gateway,
            token.expose()
        ))
        .send()
        .await
        .expect("again");
    assert_eq!(
        again.status(),
        StatusCode::FORBIDDEN,
        "the hand-off works once"
    );
    Agent {
        client,
        cookie: cookie.split(';').next().expect("pair").to_owned(),
        gateway: w.gateway.clone(),
    }
}

/// Sarah and her running session.
async fn sarahs_session(w: &World) -> (actas_store::StaffRecord, ActiveSession) {
    let sarah = common::staff(w.app.service(), "sarah@example.com").await;
    let active = w
        .app
        .service()
        .store()
        .active_session_of(sarah.id)
        .await
        .expect("read")
        .expect("a running session");
    (sarah, active)
}

/// The ledger's events, oldest first.
async fn events(w: &World) -> Vec<actas_store::RecordedEvent> {
    w.app
        .service()
        .store()
        .events(&actas_store::EventFilter::default(), 0, 1000)
        .await
        .expect("events")
}

/// Each event as "kind summary".
async fn kinds(w: &World) -> Vec<String> {
    events(w)
        .await
        .into_iter()
        .map(|e| format!("{} {}", e.body.kind(), e.body.summary))
        .collect()
}

#[tokio::test]
async fn pages_carry_the_banner_and_secrets_never_reach_the_browser() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent
        .client
        .get(format!("{}/", w.gateway))
        .header(
            "cookie",
            format!(
                "{}; product_session=abc; actas_console=staff-sign-in",
                agent.cookie
            ),
        )
        .header("accept", "text/html")
        .header("actas-assertion", "forged")
        .header("actas-user", "admin")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.expect("text");
    assert!(
        page.contains("<body><div id=\"actas-banner\""),
        "banner first in body: {page}"
    );
    assert!(
        page.contains("Acting as Acme Co")
            && page.contains("Sarah Lee")
            && page.contains("End session")
    );
    assert!(
        page.contains("•••• 4242")
            && !page.contains("4111 1111 1111 4242")
            && !page.contains("RECOVERY-CODE"),
        "{page}"
    );

    // Invariant 10: what the product received.
    let seen = w
        .seen
        .0
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("a request");
    let assertion = seen
        .get("actas-assertion")
        .expect("assertion")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(assertion, "forged");
    assert!(
        seen.get("actas-user").is_none(),
        "client Actas-* headers are stripped"
    );
    // Forwarding headers are the gateway's own, never the browser's.
    let header = |name: &str| {
        seen.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(header("forwarded"), None);
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        header("x-forwarded-host"),
        w.gateway.strip_prefix("http://").map(str::to_owned)
    );
    assert_ne!(
        header("host"),
        header("x-forwarded-host"),
        "by default the product sees its own host"
    );
    let cookies = seen
        .get("cookie")
        .map(|c| c.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    assert!(
        cookies.contains("product_session=abc")
            && !cookies.contains("actas_gw")
            && !cookies.contains("actas_console"),
        "{cookies}"
    );
    let jwks: serde_json::Value = reqwest::get(format!(
        "http://{}/.well-known/jwks.json",
        w.app.console_addr()
    ))
    .await
    .expect("jwks")
    .json()
    .await
    .expect("json");
    let key =
        jsonwebtoken::DecodingKey::from_ed_components(jwks["keys"][0]["x"].as_str().expect("x"))
            .expect("key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["product"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&assertion, &key, &v)
        .expect("valid")
        .claims;
    assert_eq!(
        (claims["sub"].as_str(), claims["act"]["sub"].as_str()),
        (Some("acme"), Some("sarah@example.com"))
    );

    // JSON: classified fields masked, `never` removed, unclassified hidden, Actas-Audit stripped.
    let r = agent.get("/api/profile").send().await.expect("json");
    assert!(r.headers().get("actas-audit").is_none());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({ "name": "Acme Co", "email": "s***@acme.com", "card": { "number": "•••• 4242" }, "internal": "[hidden]" })
    );

    // Page views are recorded, on behalf of the customer.
    assert!(
        kinds(&w)
            .await
            .iter()
            .any(|k| k == "session.page_viewed Sarah Lee, acting as Acme Co, viewed /")
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn out_of_scope_writes_exports_and_read_only_changes_are_refused_and_recorded() {
    let w = world().await;
    let agent = enter(&w, &[], "live").await;
    let before = w.seen.0.lock().expect("lock").len();
    let r = agent
        .post("/settings/tax")
        .form(&[("rate", "10%")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text().await.expect("text").contains("actas-banner"),
        "the refusal page carries the banner"
    );
    let r = agent
        .get("/transactions/export.csv")
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        w.seen.0.lock().expect("lock").len(),
        before,
        "nothing blocked reached the product"
    );
    let k = kinds(&w).await;
    assert!(
        k.iter().any(|k| k.starts_with(
            "session.blocked Sarah Lee, acting as Acme Co, was blocked from POST /settings/tax"
        )),
        "{k:#?}"
    );
    assert!(k.iter().any(|k| k.starts_with("session.blocked Sarah Lee, acting as Acme Co, was blocked from GET /transactions/export.csv")), "{k:#?}");
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn an_in_scope_change_goes_through_and_is_recorded_with_its_fields() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let r = agent
        .post("/settings/tax")
        .form(&[("name", "Acme Co")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let k = kinds(&w).await;
    // Before forwarding: what was asked for. After: what the product says it changed.
    assert!(k.iter().any(|k| k == "session.action Sarah Lee, acting as Acme Co, sent a change (changed the tax settings) setting the name to Acme Co"), "{k:#?}");
    // UTF-8 in the product's JSON is read as such.
    assert!(k.iter().any(|k| k == "session.action Sarah Lee, acting as Acme Co, changed the name from Acme to Acme Café"), "{k:#?}");
    assert!(
        r.headers().get("actas-audit").is_none(),
        "the product's audit header never reaches the browser"
    );
    // The product's own description of the change is kept in the outcome's record, made
    // one line.
    let outcome = events(&w)
        .await
        .into_iter()
        .find_map(|e| match e.body.data {
            EventData::ActionTaken {
                description,
                status: Some(_),
                ..
            } => Some(description),
            _ => None,
        });
    assert_eq!(outcome.as_deref(), Some("renamed the company"));
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn read_only_mode_blocks_every_change_even_in_scope() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "read-only").await;
    let r = agent
        .post("/settings/tax")
        .form(&[("rate", "10%")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("text").contains("read-only"));
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn without_a_writable_ledger_nothing_is_forwarded() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let before = w.seen.0.lock().expect("lock").len();
    w.app.store().stop_writer().await;
    let r = agent
        .get("/")
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        w.seen.0.lock().expect("lock").len(),
        before,
        "invariant 3: nothing forwarded"
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn after_the_end_button_the_next_request_is_refused() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let page = agent
        .get("/")
        .header("accept", "text/html")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf")
        .to_owned();
    let r = agent
        .post("/__actas/end")
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .expect("end");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "the End form is CSRF-protected"
    );
    let r = agent
        .post("/__actas/end")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("end");
    assert_eq!(r.status(), StatusCode::OK);
    let status: serde_json::Value = agent
        .get("/__actas/status")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["active"], false);
    let before = w.seen.0.lock().expect("lock").len();
    let r = agent.get("/").send().await.expect("page");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.seen.0.lock().expect("lock").len(), before);
    assert!(
        kinds(&w)
            .await
            .iter()
            .any(|k| k == "session.ended Sarah Lee's session on Acme Co ended: Sarah Lee ended it")
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn redirects_and_absolute_links_keep_the_agent_on_the_gateway() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    for path in ["/go", "/go?relative"] {
        let r = agent.get(path).send().await.expect("go");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/landing", "{path}");
    }
    let page = agent
        .get("/links")
        .header("accept", "text/html")
        .send()
        .await
        .expect("links")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains(r#"<a href="/loans">"#) && page.contains(r#"<a href="/cards">"#),
        "{page}"
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn xhtml_is_masked_and_what_the_gateway_cant_read_is_refused() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let get = |path: &str| agent.get(path).send();
    // XHTML is rewritten like HTML, banner and all, and sent on as HTML.
    let r = get("/xhtml").await.expect("xhtml");
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    let page = r.text().await.expect("text");
    assert!(
        page.contains("•••• 4242") && !page.contains("4111 1111") && page.contains("actas-banner"),
        "{page}"
    );
    // No Content-Type: the browser would guess, so it is not shown at all.
    let r = get("/untyped").await.expect("untyped");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let page = r.text().await.expect("text");
    assert!(
        !page.contains("4111") && page.contains("did not say what kind of content"),
        "{page}"
    );
    // ... unless it turns out to hold nothing.
    let r = get("/nothing").await.expect("nothing");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("text"), "");
    // Packed in a way the gateway can't unpack: it can't be masked, so it is not shown.
    let r = get("/packed").await.expect("packed");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.headers().get("content-encoding").is_none());
    let page = r.text().await.expect("text");
    assert!(page.contains("packed as x-custom,"), "{page}");
    // What passes through unrewritten is never sniffed into something else.
    let r = get("/notes.txt").await.expect("notes");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn gzip_and_brotli_bodies_are_unpacked_and_masked() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent.get("/gz").send().await.expect("gz");
    assert!(r.headers().get("content-encoding").is_none());
    let page = r.text().await.expect("text");
    assert!(
        page.contains("•••• 4242") && !page.contains("4111 1111"),
        "{page}"
    );
    let r = agent.get("/br").send().await.expect("br");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({ "card": { "number": "•••• 4242" }, "secret": "[hidden]" })
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_page_larger_than_the_body_limit_streams_through_masked() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent
        .get("/big")
        .header("accept", "text/html")
        .send()
        .await
        .expect("big");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get("content-length").is_none(),
        "a rewritten page is streamed, not measured first"
    );
    let mut chunks = r.bytes_stream();
    let (mut bytes, mut pieces, mut masked) = (0usize, 0usize, 0usize);
    let masked_form = "•••• 4242".as_bytes();
    let count =
        |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).filter(|w| *w == needle).count();
    // What is left of the last chunk, so nothing hides across a boundary: shorter than the
    // masked form, so no whole match is counted twice.
    let mut carry: Vec<u8> = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("chunk");
        bytes += chunk.len();
        pieces += 1;
        carry.extend_from_slice(&chunk);
        assert_eq!(
            count(&carry, b"1111 1111"),
            0,
            "an unmasked card number got through"
        );
        masked += count(&carry, masked_form);
        carry = carry.split_off(carry.len().saturating_sub(masked_form.len() - 1));
    }
    assert!(bytes > 16 * 1024 * 1024, "{bytes} bytes");
    assert!(pieces > 1, "the page arrived in one piece");
    assert_eq!(masked, BIG_ROWS, "every row's card number is masked");
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn json_fields_no_rule_classifies_are_hidden_and_counted() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    for _ in 0..3 {
        let body: serde_json::Value = agent
            .get("/api/profile")
            .send()
            .await
            .expect("profile")
            .json()
            .await
            .expect("json");
        assert_eq!(body["internal"], "[hidden]");
    }
    // A header the policy doesn't name is dropped, standard ones pass.
    let r = agent.get("/api/profile").send().await.expect("profile");
    assert!(r.headers().get("x-customer-email").is_none());
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let s = w.app.service();
    s.flush_unclassified().await.expect("flush");
    let fields = s.unclassified_fields().await.expect("fields");
    let internal = fields
        .iter()
        .find(|f| f.path == "$.internal")
        .expect("$.internal is listed");
    assert_eq!(internal.seen, 4);
    let header = fields
        .iter()
        .find(|f| f.path == "header x-customer-email")
        .expect("the dropped header is listed");
    assert_eq!(header.seen, 4);
    assert!(
        fields.iter().all(|f| f.path != "$.name"),
        "classified fields are not listed: {fields:?}"
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn event_streams_are_masked_event_by_event_and_end_with_the_session() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent
        .get("/feed")
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("feed");
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.ends_with(":\n\n") {
        let chunk = body.next().await.expect("more").expect("chunk");
        seen.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    assert_eq!(
        seen,
        "event: update\ndata: {\"card\":{\"number\":\"•••• 4242\"},\"internal\":\"[hidden]\",\"name\":\"Acme Co\"}\n\n:\n\n",
        "the secret is masked, the event that isn't JSON dropped and the comment emptied"
    );

    // Ending the session ends the stream, though the product keeps it open.
    let (sarah, active) = sarahs_session(&w).await;
    w.app
        .service()
        .end_session_by(&sarah, active.info().id)
        .await
        .expect("end");
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut rest = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            rest.extend_from_slice(&chunk);
        }
        rest
    })
    .await
    .expect("the stream ends within 10 s");
    assert!(rest.is_empty(), "{rest:?}");
    w.app.stop().await.expect("stop");
}

/// Opens the gateway's WebSocket at `/live` with the session cookie.
async fn open_live(
    w: &World,
    cookie: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/live", w.gateway.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    let pair = cookie.split(';').next().expect("pair").to_owned();
    request
        .headers_mut()
        .insert("cookie", pair.parse().expect("header"));
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<String> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
        {
            Some(Ok(Message::Text(t))) => return Some(t.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn websockets_pass_only_in_a_session_are_recorded_and_masked() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = world().await;
    assert!(
        open_live(&w, "actas_gw=forged").await.is_err(),
        "no session, no live connection"
    );

    let agent = enter(&w, &[], "read-only").await;
    let mut ws = open_live(&w, &agent.cookie).await.expect("upgrade");
    let first: serde_json::Value =
        serde_json::from_str(&next_text(&mut ws).await.expect("first")).expect("json");
    assert_eq!(
        first,
        serde_json::json!({ "name": "Acme Co", "card": { "number": "•••• 4242" }, "internal": "[hidden]" })
    );
    // The text that isn't JSON and the binary message can't be masked: they never arrive.
    assert_eq!(
        next_text(&mut ws).await.as_deref(),
        Some(r#"{"name":"ready"}"#)
    );
    // Read-only: what the browser sends does not reach the product (no echo comes back).
    ws.send(Message::text("rename the account"))
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), ws.next())
            .await
            .is_err(),
        "nothing was echoed"
    );

    // Invariant 10 holds for the upgrade too, and the opening is in the ledger.
    let seen = w
        .seen
        .0
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("seen");
    assert!(seen.get("actas-assertion").is_some());
    let cookies = seen
        .get("cookie")
        .map(|v| v.to_str().expect("ascii").to_owned());
    assert!(!cookies.unwrap_or_default().contains("actas_gw"));
    let log = w
        .app
        .service()
        .store()
        .events(&actas_store::EventFilter::default(), 0, 1000)
        .await
        .expect("events");
    assert!(
        log.iter()
            .any(|e| e.body.summary
                == "Sarah Lee, acting as Acme Co, opened a live connection to /live"),
        "the opening is recorded"
    );

    // Ending the session closes the connection.
    let s = w.app.service();
    let (sarah, active) = sarahs_session(&w).await;
    s.end_session_by(&sarah, active.info().id)
        .await
        .expect("end");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("closed within 10 s");
    let frame = closed.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("ended"), "{}", frame.reason);
    assert!(
        open_live(&w, &agent.cookie).await.is_err(),
        "and can't be reopened"
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn in_a_live_session_browser_messages_reach_the_product() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = world().await;
    let agent = enter(&w, &[], "live").await;
    let mut ws = open_live(&w, &agent.cookie).await.expect("upgrade");
    next_text(&mut ws).await.expect("first");
    next_text(&mut ws).await.expect("ready");
    ws.send(Message::text("hello")).await.expect("send");
    assert_eq!(
        next_text(&mut ws).await.as_deref(),
        Some(r#"{"name":"hello"}"#)
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn revoking_consent_mid_session_stops_the_gateway_at_the_next_request() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let page = || async {
        agent
            .get("/")
            .header("accept", "text/html")
            .send()
            .await
            .expect("page")
    };
    assert_eq!(page().await.status(), StatusCode::OK);
    let s = w.app.service();
    let key = s
        .create_app_key(
            &Email::parse("dana@example.com").expect("e"),
            "portal",
            None,
        )
        .await
        .expect("key");
    let r = reqwest::Client::new()
        .put(format!(
            "http://{}/api/v1/accounts/acme/consent",
            w.app.console_addr()
        ))
        .bearer_auth(key.key.expose())
        .json(&serde_json::json!({ "consent": "revoked" }))
        .send()
        .await
        .expect("consent");
    assert_eq!(r.status(), StatusCode::OK);
    let before = w.seen.0.lock().expect("lock").len();
    let r = page().await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("text").contains("ended"));
    assert_eq!(
        w.seen.0.lock().expect("lock").len(),
        before,
        "nothing reached the product"
    );
    let ended = kinds(&w).await;
    assert!(
        ended
            .iter()
            .any(|k| k
                == "session.ended Sarah Lee's session on Acme Co ended: Acme Co revoked consent"),
        "{ended:?}"
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_session_ended_behind_the_gateways_back_gets_nothing_more() {
    // The gateway remembers a session it saw live; ending it without telling the gateway
    // (as another actas process or the CLI would) must still stop the very next request,
    // whether it is recorded (a page) or not (an asset).
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let get = |path: &'static str, html: bool| {
        let r = agent.get(path);
        if html {
            r.header("accept", "text/html")
        } else {
            r
        }
    };
    assert_eq!(
        get("/", true).send().await.expect("page").status(),
        StatusCode::OK
    );
    let s = w.app.service();
    let (sarah, active) = sarahs_session(&w).await;
    s.store()
        .commit(actas_store::Unit::change(
            actas_store::Change::EndSession {
                id: active.info().id,
                at: Timestamp::now(),
                reason: actas_core::session::EndReason::Manual,
            },
            actas_core::event::NewEvent::new(
                actas_core::event::Actor::System,
                actas_core::event::EventData::StaffDisabled {
                    staff: sarah.to_ref(),
                },
            ),
        ))
        .await
        .expect("ended elsewhere");
    let before = w.seen.0.lock().expect("lock").len();
    for (path, html) in [("/", true), ("/api/profile", false)] {
        let r = get(path, html).send().await.expect("request");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(r.text().await.expect("text").contains("ended"), "{path}");
    }
    assert_eq!(
        w.seen.0.lock().expect("lock").len(),
        before,
        "nothing reached the product"
    );
    w.app.stop().await.expect("stop");
}
