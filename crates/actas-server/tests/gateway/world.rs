//! The world every gateway test runs in: a small product on a random port that logs
//! every request it serves, actas in front of it with a test policy, and the agent's
//! browser (a real HTTP client, or raw bytes on a socket where a client would tidy the
//! request up). [`World::stop`] checks, for every test, that each request the product
//! served is accounted for in the ledger.

use super::common;
use actas_core::Timestamp;
use actas_core::event::EventData;
use actas_core::scope::Risk;
use actas_core::session::ActiveSession;
use actas_core::staff::Role;
use actas_server::app::{Application, ServeSettings};
use actas_server::service::{Approval, RequestInput};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Rows in the `/big` page: about 20 MiB, more than the whole-body limit.
pub(crate) const BIG_ROWS: usize = 80_000;

/// The whole-body limit the test gateway runs with, in MiB.
pub(crate) const MAX_BODY_MIB: usize = 1;

/// One request the product served: as it arrived there.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// The method (`MESSAGE` for a message on a WebSocket).
    pub(crate) method: String,
    /// The path, as the product received it.
    pub(crate) path: String,
    /// The headers.
    pub(crate) headers: HeaderMap,
}

/// What the product served, in order.
#[derive(Default)]
pub(crate) struct Seen(Mutex<Vec<Served>>);

impl Seen {
    fn push(&self, method: &str, path: &str, headers: HeaderMap) {
        self.0.lock().expect("lock").push(Served {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
        });
    }

    /// How many requests it served.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    /// Every request it served.
    pub(crate) fn all(&self) -> Vec<Served> {
        self.0.lock().expect("lock").clone()
    }

    /// The headers of the last request it served.
    pub(crate) fn last_headers(&self) -> HeaderMap {
        self.0
            .lock()
            .expect("lock")
            .last()
            .map(|s| s.headers.clone())
            .expect("the product served a request")
    }
}

/// Logs every request the product serves, before its handler runs.
async fn log(
    State(seen): State<Arc<Seen>>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    seen.push(
        request.method().as_str(),
        request.uri().path(),
        request.headers().clone(),
    );
    next.run(request).await
}

async fn product(seen: Arc<Seen>) -> String {
    async fn page() -> Html<&'static str> {
        Html(
            r#"<!doctype html><html><head><title>Billing</title></head><body><h1>Billing</h1>
<p>Card <span class="card-number">4111 1111 1111 4242</span></p><div data-secret>RECOVERY-CODE-XYZ</div></body></html>"#,
        )
    }
    async fn profile() -> impl IntoResponse {
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
    async fn settings() -> impl IntoResponse {
        (
            [(
                "actas-audit",
                r#"{"field":"name","from":"Acme","to":"Acme Café","description":"renamed the\ncompany  "}"#,
            )],
            Html("<!doctype html><html><body><p>Saved.</p></body></html>"),
        )
    }
    async fn export() -> impl IntoResponse {
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
        ws: axum::extract::ws::WebSocketUpgrade,
    ) -> impl IntoResponse {
        use axum::extract::ws::Message;
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
                seen.push("MESSAGE", "/live", HeaderMap::new());
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
    /// A download on a page route: caught by its headers, not by its path.
    async fn statement() -> impl IntoResponse {
        (
            [
                ("content-type", "application/pdf"),
                ("content-disposition", "attachment; filename=statement.pdf"),
            ],
            "%PDF-1.4 card 4111111111114242",
        )
    }
    /// JSON larger than the gateway's whole-body limit.
    async fn big_json() -> impl IntoResponse {
        let rows = "\"4111111111114242\",".repeat(MAX_BODY_MIB * 1024 * 1024 / 19 + 10);
        (
            [("content-type", "application/json")],
            format!("{{\"cards\":[{rows}\"end\"]}}"),
        )
    }
    /// A change the product takes and never answers: the connection drops.
    async fn no_answer() -> axum::response::Response {
        panic!("the product fell over while saving")
    }
    async fn public_css() -> impl IntoResponse {
        (
            [
                ("content-type", "text/css"),
                ("cache-control", "public, max-age=3600"),
            ],
            "body { color: black }",
        )
    }
    /// A script on an asset path that carries one customer's data.
    async fn private_script() -> impl IntoResponse {
        (
            [
                ("content-type", "text/javascript"),
                ("cache-control", "private, max-age=60"),
            ],
            "window.customer = { card: '4111111111114242' };",
        )
    }
    async fn cookie_css() -> impl IntoResponse {
        (
            [
                ("content-type", "text/css"),
                ("cache-control", "public, max-age=3600"),
                ("set-cookie", "tracking=acme-4242"),
            ],
            "body { color: black }",
        )
    }
    async fn unmarked_script() -> impl IntoResponse {
        (
            [("content-type", "text/javascript")],
            "console.log('built')",
        )
    }
    /// An asset path that redirects to where the file really is.
    async fn moved() -> impl IntoResponse {
        (
            axum::http::StatusCode::FOUND,
            [("location", "https://files.example/acme/passport.png")],
        )
    }
    /// A page that streams a row every 200 ms and never ends.
    async fn slow() -> impl IntoResponse {
        let rows = futures_util::stream::unfold(0u64, |i| async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from(format!("<p>row {i}</p>"))),
                i + 1,
            ))
        });
        let head = futures_util::stream::once(async {
            Ok(axum::body::Bytes::from_static(b"<html><body>"))
        });
        (
            [("content-type", "text/html")],
            axum::body::Body::from_stream(head.chain(rows)),
        )
    }
    /// A page that breaks off half-way.
    async fn broken() -> impl IntoResponse {
        let parts = futures_util::stream::once(async {
            Ok(axum::body::Bytes::from_static(b"<html><body><p>first half"))
        })
        .chain(futures_util::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Err(std::io::Error::other("the product fell over"))
        }));
        (
            [("content-type", "text/html")],
            axum::body::Body::from_stream(parts),
        )
    }
    /// What the product received, as JSON.
    async fn echo(body: axum::body::Bytes) -> impl IntoResponse {
        axum::Json(serde_json::json!({
            "received": String::from_utf8_lossy(&body)
        }))
    }
    /// A handler answering `body` as `content_type`.
    fn typed(
        content_type: &'static str,
        body: &'static str,
    ) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + 'static {
        move || std::future::ready(([("content-type", content_type)], body).into_response())
    }
    /// A page in ISO-8859-1, with a card number and an "é" in that charset.
    async fn latin1() -> impl IntoResponse {
        let mut page = b"<html><body><p>Caf".to_vec();
        page.push(0xe9);
        page.extend_from_slice(
            b"</p><span class=\"card-number\">4111 1111 1111 4242</span></body></html>",
        );
        ([("content-type", "text/html; charset=iso-8859-1")], page)
    }
    /// Two content types: the gateway would read one, the browser the other.
    async fn two_types() -> axum::response::Response {
        let mut r = axum::response::Response::new(axum::body::Body::from(
            "<html><body><span class=\"card-number\">4111 1111 1111 4242</span></body></html>",
        ));
        r.headers_mut().append(
            "content-type",
            axum::http::HeaderValue::from_static("text/plain"),
        );
        r.headers_mut().append(
            "content-type",
            axum::http::HeaderValue::from_static("text/html"),
        );
        r
    }
    /// A page that sets actas's own cookie, a cookie no rule names, and the product's
    /// session cookie with a Domain spelled oddly.
    async fn cookies() -> axum::response::Response {
        let mut r = Html("<html><body>cookies</body></html>").into_response();
        for c in [
            "actas_gw=stolen; Path=/",
            "tracking=acme-4242; Path=/",
            "product_session=fresh; Path=/; Domain = .product.example ; HttpOnly",
        ] {
            r.headers_mut()
                .append("set-cookie", axum::http::HeaderValue::from_static(c));
        }
        r
    }
    /// A redirect whose query carries the customer's data.
    async fn away() -> impl IntoResponse {
        (
            axum::http::StatusCode::SEE_OTHER,
            [(
                "location",
                "/welcome?email=sarah@acme.com&ref=4111111111114242",
            )],
        )
    }
    /// A page with the product's caching and validators.
    async fn tagged() -> impl IntoResponse {
        (
            [
                ("content-type", "text/html"),
                ("etag", "\"acme-4242\""),
                ("last-modified", "Mon, 30 Nov 2026 10:00:00 GMT"),
                ("cache-control", "public, max-age=3600"),
            ],
            "<html><body>tagged</body></html>",
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
        .route("/access", get(page))
        .route("/statement", get(statement))
        .route("/api/big", get(big_json))
        .route("/settings/notifications", post(no_answer))
        .route("/static/app.css", get(public_css))
        .route("/static/private.js", get(private_script))
        .route("/static/cookie.css", get(cookie_css))
        .route("/static/page.css", get(page))
        .route("/build/app.js", get(unmarked_script))
        .route("/static/moved.png", get(moved))
        .route("/slow", get(slow))
        .route("/stall", get(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            Html("<html><body>late</body></html>")
        }))
        .route("/broken", get(broken))
        .route("/echo", post(echo))
        .route("/users/{who}", get(page))
        .route("/feed.xml", get(typed("application/xml", "<card>4111111111114242</card>")))
        .route("/chart", get(typed("image/svg+xml", "<svg><text>4111111111114242</text></svg>")))
        .route("/config", get(typed("application/javascript", "var card = '4111111111114242';")))
        .route("/reports/{id}", get(typed("application/pdf", "%PDF-1.4 statement")))
        .route("/sheet", get(typed("application/vnd.ms-excel", "card\n4111111111114242\n")))
        .route("/lines", get(typed("application/x-ndjson", "{\"card\":{\"number\":\"4111111111114242\"}}\nnot json 4111111111114242\n{\"name\":\"Acme Co\"}\n")))
        .route("/textjson", get(typed("text/json", r#"{"card":{"number":"4111111111114242"},"name":"Acme Co"}"#)))
        .route("/utf16", get(typed("text/html; charset=utf-16", "<html><body>hi</body></html>")))
        .route("/latin1", get(latin1))
        .route("/twotypes", get(two_types))
        .route("/cookies", get(cookies))
        .route("/away", get(away))
        .route("/tagged", get(tagged))
        // Signed actions: a contact form and its JSON twin.
        .route("/contact", get(|| async { Html(r#"<html><body><form method="post" action="/contact"><input name="name" value="Acme Co"><input name="city" value="Lyon"></form></body></html>"#) }).post(|| async { (axum::http::StatusCode::SEE_OTHER, [("location", "/contact")]) }))
        .route("/api/contact", get(|| async { axum::Json(serde_json::json!({ "name": "Acme Co", "tags": ["vip", "eu"], "address": { "city": "Lyon" } })) }).put(|| async { axum::Json(serde_json::json!({ "saved": true })) }))
        .route("/access/contact", post(|| async { "saved" }))
        .route("/identity", get(|| async { Html(r#"<html><body><div id="passport">P123456789</div></body></html>"#) }))
        .route("/api/identity", get(|| async { axum::Json(serde_json::json!({ "passport": "P123456789" })) }))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found") })
        .layer(axum::middleware::from_fn_with_state(seen.clone(), log))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("product") });
    format!("http://{addr}")
}

/// A running product behind a running actas.
pub(crate) struct World {
    /// The folder holding actas's data directory (`data/`).
    pub(crate) dir: tempfile::TempDir,
    /// actas.
    pub(crate) app: Application,
    /// The gateway's base URL.
    pub(crate) gateway: String,
    /// What the product served.
    pub(crate) seen: Arc<Seen>,
}

/// What the test policy adds to the starter policy: a capability for live chat (the
/// policy's `websocket_capability`), the customer's own access page (forbidden), a page
/// route, and asset folders (`/static/`, and `/build/` trusted without a cache mark).
const POLICY_ADDITIONS: &str = r##"

[capabilities.chat]
risk = "medium"
description = "Write to the customer in the live chat"

[capabilities.account_access]
risk = "forbidden"
description = "See or change the customer's own access settings"

[[routes]]
route = "GET /access"
capability = "account_access"
description = "opened the customer's account access page"

[[routes]]
route = "GET /statement"
capability = "view"
description = "viewed the statement"

[[routes]]
route = "POST /echo"
capability = "edit_settings"
description = "saved a partial form"
partial_forms = true

[[masking]]
json = "$.received"
rule = "show"

[[gateway.pass_through]]
route = "GET /reports/{id}"
content_types = ["application/pdf"]

[[routes]]
route = "GET /contact"
capability = "view"
description = "viewed the contact details"

[[routes]]
route = "POST /contact"
capability = "edit_settings"
description = "changed the contact details"
signed_action = true

[[routes]]
route = "GET /api/contact"
capability = "view"
description = "read the contact details"

[[routes]]
route = "PUT /api/contact"
capability = "edit_settings"
description = "changed the contact details by API"
signed_action = true
current = "GET /api/contact"

[[masking]]
field = "city"
rule = "show"

[[masking]]
json = "$.tags[*]"
rule = "show"

[[masking]]
json = "$.address.city"
rule = "show"

[[routes]]
route = "POST /access/contact"
capability = "edit_settings"
description = "changed the access contact"
signed_action = true
current = "GET /access"

[capabilities.reveal_id]
risk = "medium"
description = "See the customer's passport number, for an identity check they asked for"

[[masking]]
html = "#passport"
rule = "hide"
reveal = "reveal_id"

[[masking]]
json = "$.passport"
rule = "hide"
reveal = "reveal_id"
"##;

/// Starts the product and actas with the test policy.
pub(crate) async fn world() -> World {
    world_with(|config| config).await
}

/// [`world`], with actas's configuration edited by `edit` first.
pub(crate) async fn world_with(edit: impl FnOnce(String) -> String) -> World {
    let seen = Arc::new(Seen::default());
    let upstream = product(seen.clone()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::fresh_data(&dir.path().join("data")).await;
    let config = data.path().join("actas.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let pointed = text.replace(
        "upstream = \"http://127.0.0.1:8082\"",
        &format!("upstream = \"{upstream}\""),
    );
    assert_ne!(pointed, text, "actas init writes the gateway's upstream");
    let limited = pointed.replace(
        "max_body_mib = 16",
        &format!("max_body_mib = {MAX_BODY_MIB}"),
    );
    assert_ne!(limited, pointed, "actas init writes the body limit");
    std::fs::write(&config, edit(limited)).expect("write");
    let policy_file = data.path().join("policy.toml");
    let policy = std::fs::read_to_string(&policy_file).expect("policy");
    let gateway = policy.replacen(
        "[gateway]\n",
        "[gateway]\nwebsocket_capability = \"chat\"\ntrusted_assets = [\"/build/\"]\ncookies = [\"product_session\"]\n",
        1,
    );
    let assets = gateway.replacen("static_assets = [", "static_assets = [\"/static/\", ", 1);
    assert!(
        assets != gateway && gateway != policy,
        "the starter policy has a [gateway] section"
    );
    // Page copies: a small per-session limit, so a big page outgrows it.
    let copies = assets.replacen("max_kb_per_session = 4096", "max_kb_per_session = 64", 1);
    assert_ne!(
        copies, assets,
        "the starter policy has a [snapshots] section"
    );
    std::fs::write(&policy_file, copies + POLICY_ADDITIONS).expect("policy");
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
        dir,
        app,
        gateway,
        seen,
    }
}

/// The agent's browser inside a session: a client (redirects not followed) and the
/// gateway cookie it was given.
pub(crate) struct Agent {
    /// The client.
    pub(crate) client: reqwest::Client,
    /// `actas_gw=…`.
    pub(crate) cookie: String,
    gateway: String,
}

impl Agent {
    /// A GET of `path` on the gateway, with the session cookie.
    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.gateway))
            .header("cookie", &self.cookie)
    }

    /// A PUT to `path` on the gateway, with the session cookie.
    pub(crate) fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .put(format!("{}{path}", self.gateway))
            .header("cookie", &self.cookie)
    }

    /// A POST to `path` on the gateway, with the session cookie.
    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.gateway))
            .header("cookie", &self.cookie)
    }
}

/// Starts a session with `caps` in `mode` and enters the gateway as Sarah's browser.
pub(crate) async fn enter(w: &World, caps: &[&str], mode: &str) -> Agent {
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
pub(crate) async fn sarahs_session(w: &World) -> (actas_store::StaffRecord, ActiveSession) {
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
pub(crate) async fn events(w: &World) -> Vec<actas_store::RecordedEvent> {
    w.app
        .service()
        .store()
        .events(&actas_store::EventFilter::default(), 0, 1000)
        .await
        .expect("events")
}

/// Each event as "kind summary".
pub(crate) async fn kinds(w: &World) -> Vec<String> {
    events(w)
        .await
        .into_iter()
        .map(|e| format!("{} {}", e.body.kind(), e.body.summary))
        .collect()
}

impl Agent {
    /// Sends `method target` as raw bytes, exactly as written (a client library would
    /// resolve dot segments and turn backslashes into slashes first), with the session
    /// cookie and `extra` header lines; the status and the `Location`, if any.
    pub(crate) async fn raw(
        &self,
        method: &str,
        target: &str,
        extra: &str,
    ) -> (u16, Option<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.gateway.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(host).await.expect("connect");
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nCookie: {}\r\n{extra}Connection: close\r\n\r\n",
            self.cookie
        );
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.expect("read");
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        let location = text
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("location: ").map(str::to_owned));
        (status, location)
    }
}

impl World {
    /// Checks that every request the product served in this test has its ledger event,
    /// written before it was served (the product logs a request as it arrives, and each
    /// event is durable before the gateway sends the request on), then stops actas.
    /// Only declared assets are exempt.
    pub(crate) async fn stop(self) {
        let policy = self.app.service().policy().clone();
        let mut served: BTreeMap<(String, String), usize> = BTreeMap::new();
        for s in self.seen.all() {
            let path = actas_core::gateway::path::CanonicalPath::parse(
                &s.path,
                actas_core::gateway::path::TrailingSlash::Remove,
            )
            .expect("the product receives canonical paths");
            assert!(!path.changed, "the product received {} as sent", s.path);
            let method = match s.method.as_str() {
                "GET" | "HEAD" => "GET",
                "OPTIONS" => "OPTIONS",
                "MESSAGE" => "MESSAGE",
                _ => "CHANGE",
            };
            let matched = ["GET", "HEAD"].contains(&s.method.as_str())
                && policy
                    .route(actas_core::policy::routes::Method::Get, &path.path)
                    .is_some();
            if method == "GET" && !matched && policy.gateway.asset(&path.path).is_some() {
                continue;
            }
            *served.entry((method.to_owned(), s.path)).or_default() += 1;
        }
        let mut recorded: BTreeMap<(String, String), usize> = BTreeMap::new();
        for e in events(&self).await {
            let key = match e.body.data {
                EventData::PageViewed { path, .. } => ("GET".to_owned(), path),
                EventData::DataRead { method, path, .. } => (method, path),
                EventData::ActionTaken {
                    status: None,
                    path: Some(path),
                    ..
                } => ("CHANGE".to_owned(), path),
                // A signed action is recorded, with its query, before it is sent.
                EventData::SignedAction { path, .. } => (
                    "CHANGE".to_owned(),
                    path.split('?').next().unwrap_or_default().to_owned(),
                ),
                EventData::LiveMessage { path, .. } => ("MESSAGE".to_owned(), path),
                _ => continue,
            };
            *recorded.entry(key).or_default() += 1;
        }
        for (key, n) in &served {
            let r = recorded.get(key).copied().unwrap_or(0);
            assert!(
                *n <= r,
                "the product served {n} × {key:?}, the ledger recorded {r}\nserved: {served:#?}\nrecorded: {recorded:#?}"
            );
        }
        self.app.stop().await.expect("stop");
    }
}
