//! The guide for the product's engineers (`docs/integrate.md`) shows how to verify an
//! `Actas-Assertion` in Python, Node and Rust (`examples/verify/`). This runs each of
//! them against a real gateway: a product on a random port receives the assertion, and
//! each verifier must accept it, naming the staff member and the account, and refuse it
//! tampered with or for another audience. `cargo xtask test` installs PyJWT and jose.

mod common;

// The example is written to be copied into a product, so its items are `pub`.
#[allow(unreachable_pub)]
#[path = "../../../examples/verify/verify.rs"]
mod verify;

use actas_core::Timestamp;
use actas_core::scope::Risk;
use actas_core::staff::Role;
use actas_server::app::{Application, ServeSettings};
use actas_server::service::RequestInput;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/verify")
}

/// actas with a gateway in front of a product that keeps the last assertion it got, a
/// session entered, and one page fetched: the assertion and the JWKS URL.
async fn assertion() -> (tempfile::TempDir, Application, String, String) {
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let kept = seen.clone();
    let product = axum::Router::new().route(
        "/",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let kept = kept.clone();
            async move {
                *kept.lock().expect("lock") = headers
                    .get("actas-assertion")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                axum::response::Html("<html><body>ok</body></html>")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, product).await.expect("product") });
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::fresh_data(&dir.path().join("data")).await;
    let config = data.path().join("actas.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace(
            "upstream = \"http://127.0.0.1:8082\"",
            &format!("upstream = \"{upstream}\""),
        ),
    )
    .expect("write");
    let app = Application::build(
        &data,
        ServeSettings {
            gateway_addr: Some(([127, 0, 0, 1], 0).into()),
            ..ServeSettings::on(([127, 0, 0, 1], 0).into())
        },
    )
    .await
    .expect("start");
    let s = app.service();
    common::add_staff(
        s,
        &[
            ("dana@example.com", "Dana Park", Role::Director),
            ("sarah@example.com", "Sarah Lee", Role::Agent),
        ],
    )
    .await;
    common::allow(s, "sarah@example.com", Risk::Low).await;
    common::acme(s).await;
    let sarah = common::staff(s, "sarah@example.com").await;
    let request = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Check why the invoices show the wrong tax rate".into(),
                capabilities: vec![],
                minutes: None,
                mode: None,
                for_session: None,
            },
        )
        .await
        .expect("request");
    let (_, token) = s
        .start_session(&sarah, request.id, Timestamp::now())
        .await
        .expect("start");
    let gateway = format!("http://{}", app.gateway_addr().expect("gateway"));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let entered = client
        .get(format!("{gateway}/__actas/enter?token={}", token.expose()))
        .send()
        .await
        .expect("enter");
    let cookie = entered.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let page = client
        .get(format!("{gateway}/"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    assert!(page.status().is_success());
    let assertion = seen
        .lock()
        .expect("lock")
        .clone()
        .expect("the product got an assertion");
    let jwks = format!("http://{}/.well-known/jwks.json", app.console_addr());
    (dir, app, assertion, jwks)
}

/// The same token with one character of its signature changed.
/// The token with one character of its signature changed. Not the last one: in base64url
/// the last character of a 64-byte signature carries 4 padding bits, and changing only
/// those leaves the decoded signature as it was (a lenient decoder then rightly accepts it).
fn tampered(token: &str) -> String {
    let at = token.rfind('.').expect("a signature") + 5;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

/// Runs a verifier script: its claims, or why it refused.
fn run(
    program: &str,
    script: &str,
    jwks: &str,
    audience: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    let out = Command::new(program)
        .arg(script)
        .args([jwks, audience, token])
        .current_dir(examples())
        .output()
        .unwrap_or_else(|e| panic!("{program} could not be run ({e}); `cargo xtask test` installs what the verifiers need"));
    if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn check(claims: &serde_json::Value) {
    assert_eq!(claims["sub"], "acme", "{claims}");
    assert_eq!(claims["act"]["sub"], "sarah@example.com", "{claims}");
    assert_eq!(claims["act"]["name"], "Sarah Lee", "{claims}");
    assert_eq!(claims["ticket"], "#4821", "{claims}");
    assert_eq!(claims["mode"], "read-only", "{claims}");
}

// Several threads: the verifier scripts run as blocking processes while the server
// answers their key requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_node_and_rust_examples_verify_a_real_assertion_and_refuse_forgeries() {
    let (_dir, app, token, jwks) = assertion().await;
    for (program, script) in [("python3", "verify.py"), ("node", "verify.mjs")] {
        let claims = run(program, script, &jwks, "product", &token)
            .unwrap_or_else(|e| panic!("{script} refused a real assertion: {e}"));
        check(&claims);
        assert!(
            run(program, script, &jwks, "product", &tampered(&token)).is_err(),
            "{script} accepted a tampered assertion"
        );
        assert!(
            run(program, script, &jwks, "another-product", &token).is_err(),
            "{script} accepted an assertion for another audience"
        );
    }
    let claims = verify::verify(&jwks, "product", &token)
        .await
        .expect("rust");
    assert_eq!(
        (claims.sub.as_str(), claims.act["sub"].as_str()),
        ("acme", Some("sarah@example.com"))
    );
    assert_eq!(
        (claims.mode.as_str(), claims.ticket.as_str()),
        ("read-only", "#4821")
    );
    assert!(!claims.sid.is_empty() && claims.scope.contains(&"view".to_owned()));
    assert!(
        verify::verify(&jwks, "product", &tampered(&token))
            .await
            .is_err()
    );
    assert!(
        verify::verify(&jwks, "another-product", &token)
            .await
            .is_err()
    );
    app.stop().await.expect("stop");
}
