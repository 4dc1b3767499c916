//! `[tickets] verify_url`: before a request is made, actas asks the helpdesk — here a real
//! HTTP server started by the test — whether the ticket exists and is about the account.
//! Unknown tickets, tickets about another account and a helpdesk that can't be asked
//! all refuse the request, and nothing is written.

mod common;

use actas_core::scope::Risk;
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::service::{RequestInput, ServiceError};
use axum::http::{HeaderMap, StatusCode};
use std::sync::{Arc, Mutex};

/// The helpdesk: knows #4821 (about acme) and #5000 (about globex); checks actas's
/// signature with the secret it was given, and keeps what it was asked.
async fn helpdesk(secret: Arc<Mutex<String>>, asked: Arc<Mutex<Vec<String>>>) -> String {
    let app = axum::Router::new().route(
        "/tickets/check",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (secret, asked) = (secret.clone(), asked.clone());
            async move {
                let ts: i64 = headers["actas-webhook-timestamp"]
                    .to_str()
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let sig = headers["actas-signature"].to_str().unwrap_or("");
                let now = actas_core::Timestamp::now().as_millis() / 1000;
                let key = secret.lock().expect("lock").clone();
                if actas_core::webhook::verify(&key, ts, sig, &body, now).is_err() {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                let q: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let ticket = q["ticket"].as_str().unwrap_or("").to_owned();
                asked.lock().expect("lock").push(ticket.clone());
                match ticket.as_str() {
                    "#4821" => (
                        StatusCode::OK,
                        r##"{"ticket":"#4821","account":"acme"}"##.to_owned(),
                    ),
                    "#5000" => (
                        StatusCode::OK,
                        r##"{"ticket":"#5000","account":"globex"}"##.to_owned(),
                    ),
                    "#7777" => {
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        (
                            StatusCode::OK,
                            r##"{"ticket":"#7777","account":"acme"}"##.to_owned(),
                        )
                    }
                    _ => (StatusCode::NOT_FOUND, String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/tickets/check")
}

async fn actas_asking(url: &str) -> (tempfile::TempDir, DataDir, Application) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = DataDir::new(dir.path().join("data"));
    data.init().expect("init");
    let config = data.path().join("actas.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[tickets]\nverify_url = \"{url}\"\ntimeout_seconds = 1\n"
    ));
    std::fs::write(&config, text).expect("write");
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("start");
    common::team(app.service(), Risk::High).await;
    (dir, data, app)
}

fn ask(ticket: &str) -> RequestInput {
    RequestInput {
        account: "acme".into(),
        ticket: ticket.into(),
        reason: "Check the invoice tax rate".into(),
        capabilities: vec![],
        minutes: None,
        mode: None,
        for_session: None,
    }
}

#[tokio::test]
async fn only_a_ticket_the_helpdesk_confirms_for_the_account_makes_a_request() {
    let secret = Arc::new(Mutex::new(String::new()));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let url = helpdesk(secret.clone(), asked.clone()).await;
    let (_dir, data, app) = actas_asking(&url).await;
    // The helpdesk is given the secret actas made in its data directory.
    *secret.lock().expect("lock") = data.ticket_secret().expect("secret");
    let s = app.service();
    let sarah = common::staff(s, "sarah@example.com").await;

    let before = s.store().ledger_size().await.expect("size");
    for (ticket, says) in [
        ("#9999", "ticket #9999 is not known to the helpdesk"),
        (
            "#5000",
            "ticket #5000 is about another account (globex) in the helpdesk, not this one",
        ),
        (
            "#7777",
            "ticket #7777 could not be checked with the helpdesk (it did not answer in time)",
        ),
    ] {
        let err = s
            .create_request(&sarah, ask(ticket))
            .await
            .expect_err(ticket);
        match err {
            ServiceError::Invalid { field, message } => {
                assert_eq!(field, "ticket");
                assert!(message.starts_with(says), "{message}");
            }
            other => panic!("{ticket}: {other:?}"),
        }
    }
    assert_eq!(
        s.store().ledger_size().await.expect("size"),
        before,
        "nothing written"
    );
    assert_eq!(
        *asked.lock().expect("lock"),
        vec!["#9999", "#5000", "#7777"],
        "each was asked, signed"
    );

    // The same over the JSON API: 422, naming the ticket field, in words.
    let base = format!("http://{}", app.console_addr());
    let http = reqwest::Client::new();
    let signed = http
        .post(format!("{base}/api/v1/sign-in"))
        .json(&serde_json::json!({ "email": "sarah@example.com", "password": common::PASSWORD }))
        .send()
        .await
        .expect("sign in");
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let csrf = signed.json::<serde_json::Value>().await.expect("json")["csrf"]
        .as_str()
        .expect("csrf")
        .to_owned();
    let r = http
        .post(format!("{base}/api/v1/requests"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .header("origin", &base)
        .json(&serde_json::json!({ "account": "acme", "ticket": "#5000", "reason": "Check the invoice tax rate" }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let e: serde_json::Value = r.json().await.expect("json");
    assert_eq!(e["error"]["field"], "ticket", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("about another account"),
        "{e}"
    );
    assert_eq!(
        s.store().ledger_size().await.expect("size"),
        before + 1,
        "only the sign-in"
    );

    // A confirmed ticket makes the request.
    let r = s.create_request(&sarah, ask("#4821")).await.expect("made");
    assert_eq!(r.ticket.as_str(), "#4821");
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_helpdesk_that_is_down_or_rejects_the_signature_refuses_every_request() {
    // Nothing listens on this port: the helpdesk is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let (_dir, _data, app) = actas_asking(&format!("http://127.0.0.1:{port}/tickets")).await;
    let s = app.service();
    let sarah = common::staff(s, "sarah@example.com").await;
    let before = s.store().ledger_size().await.expect("size");
    let err = s
        .create_request(&sarah, ask("#4821"))
        .await
        .expect_err("down");
    assert!(
        err.to_string()
            .contains("could not be checked with the helpdesk (it could not be reached)"),
        "{err}"
    );
    app.stop().await.expect("stop");

    // A helpdesk that doesn't know actas's secret answers 401: refused too.
    let url = helpdesk(
        Arc::new(Mutex::new("another secret".into())),
        Arc::default(),
    )
    .await;
    let (_dir, _data, app) = actas_asking(&url).await;
    let s = app.service();
    let sarah = common::staff(s, "sarah@example.com").await;
    let err = s
        .create_request(&sarah, ask("#4821"))
        .await
        .expect_err("401");
    assert!(
        err.to_string().contains("it answered with status 401"),
        "{err}"
    );
    assert!(s.store().ledger_size().await.expect("size") >= before);
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_verify_url_that_is_not_a_web_address_stops_the_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = DataDir::new(dir.path().join("data"));
    data.init().expect("init");
    let config = data.path().join("actas.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("\n[tickets]\nverify_url = \"http://helpdesk.example/check\"\n");
    std::fs::write(&config, text).expect("write");
    let err = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("tickets.verify_url"), "{err}");
}
