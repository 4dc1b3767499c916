//! Signed actions over real HTTP, with the demo (whose policy makes `POST /profile`, the contact details, one):
//! the gateway holds the change and shows it, the agent confirms it on the console with
//! their password, and the product gets it with a receipt that verifies offline — with
//! actas's own check, with `jsonwebtoken` (a JOSE implementation nobody here wrote), and
//! with `actas audit verify-receipt` — and fails with any byte changed.

mod common;

use actas_core::Timestamp;
use actas_server::demo::{Demo, DemoSettings, STAFF_PASSWORD};
use actas_server::service::{Approval, RequestInput};
use actas_store::EventFilter;
use reqwest::StatusCode;
use reqwest::redirect::Policy;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

fn cookie_of(r: &reqwest::Response) -> String {
    r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    text.split(start).nth(1)?.split(end).next()
}

/// Sarah signed in to the console: her cookie and CSRF token.
async fn console_sign_in(console: &str, email: &str) -> (String, String) {
    let http = client();
    let (token, form_cookie) = common::sign_in_form(console).await;
    let r = http
        .post(format!("{console}/sign-in"))
        .header("origin", console)
        .header("cookie", &form_cookie)
        .form(&[
            ("email", email),
            ("password", STAFF_PASSWORD),
            ("csrf", token.as_str()),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{email} signs in");
    let cookie = cookie_of(&r);
    let page = http
        .get(format!("{console}/accounts"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"")
        .expect("csrf")
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn a_signed_action_is_held_shown_confirmed_and_sent_with_a_receipt_that_verifies_offline() {
    let d = Demo::start(DemoSettings {
        console_addr: ([127, 0, 0, 1], 0).into(),
        gateway_addr: ([127, 0, 0, 1], 0).into(),
        portal_addr: ([127, 0, 0, 1], 0).into(),
        database_url: common::demo_database().await,
        ..DemoSettings::default()
    })
    .await
    .expect("demo starts");
    let http = client();
    let portal = format!("http://{}", d.portal_addr);
    let console = format!("http://{}", d.app.console_addr());
    let gateway = format!("http://{}", d.app.gateway_addr().expect("gateway"));
    let s = d.app.service();
    let sarah = common::staff(s, "sarah@northwind.example").await;
    let lee = common::staff(s, "lee@northwind.example").await;
    let request = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Customer renamed their business and asked us to update it".into(),
                capabilities: vec!["edit_profile".into()],
                minutes: Some(15),
                mode: Some("live".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    s.approve_request(&lee, request.id, Approval::default())
        .await
        .expect("approved");
    let (session, token) = s
        .start_session(&sarah, request.id, Timestamp::now())
        .await
        .expect("start");
    let entered = http
        .get(format!("{gateway}/__actas/enter?token={}", token.expose()))
        .send()
        .await
        .expect("enter");
    let gw = cookie_of(&entered);
    let old_name = {
        let page = http
            .get(format!("{gateway}/profile"))
            .header("cookie", &gw)
            .header("accept", "text/html")
            .send()
            .await
            .expect("profile page")
            .text()
            .await
            .expect("text");
        between(&page, "name=\"name\" value=\"", "\"")
            .expect("the contact form")
            .to_owned()
    };
    let new_name = "Acme Trading Ltd";

    // Sent as a browser would: held, shown, not sent.
    // The browser sends the masked fields' placeholders back; the route takes partial
    // forms, so they are left out, and only the name changes.
    let held = http
        .post(format!("{gateway}/profile"))
        .header("cookie", &gw)
        .header("sec-fetch-mode", "navigate")
        .form(&[
            ("name", new_name),
            ("email", "s•••@acme.com"),
            ("phone", "•••• 0123"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(held.status(), StatusCode::PRECONDITION_REQUIRED);
    let link = held.headers()["link"].to_str().expect("ascii").to_owned();
    let page = held.text().await.expect("text");
    assert!(page.contains("Confirm this change"), "{page}");
    assert!(
        page.contains(&old_name) && page.contains(new_name),
        "the page shows the change from and to: {page}"
    );
    let confirm_url = between(&page, "id=\"actas-confirm\" href=\"", "\"")
        .expect("the confirm link")
        .to_owned();
    assert_eq!(link, format!("<{confirm_url}>; rel=\"confirm\""));
    let action = confirm_url.rsplit('/').next().expect("id").to_owned();
    assert!(confirm_url.starts_with(&format!("{console}/actions/")));

    // The same change as a script or curl would send it: held too, never passed.
    let by_curl = http
        .post(format!("{gateway}/Profile.json"))
        .header("cookie", &gw)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{new_name}\"}}"))
        .send()
        .await
        .expect("post");
    assert!(
        by_curl.status() == StatusCode::PRECONDITION_REQUIRED || by_curl.status().is_client_error(),
        "{}",
        by_curl.status()
    );
    let opaque = http
        .post(format!("{gateway}/profile"))
        .header("cookie", &gw)
        .header("content-type", "text/plain")
        .body(format!("name={new_name}"))
        .send()
        .await
        .expect("post");
    assert_eq!(
        opaque.status(),
        StatusCode::FORBIDDEN,
        "a body that can't be shown as a change is refused"
    );
    // Nor can a number JSON readers would round, nor a header that isn't text: both are
    // refused, saying why, rather than shown as something other than what is sent.
    let rounded = http
        .post(format!("{gateway}/profile"))
        .header("cookie", &gw)
        .header("content-type", "application/json")
        .body(r#"{"name": "Acme", "phone": 44123456789012345678901}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(rounded.status(), StatusCode::FORBIDDEN);
    let why = rounded.text().await.expect("text");
    assert!(
        why.contains("the number 44123456789012345678901, written with more digits than can be shown for certain"),
        "{why}"
    );
    let unreadable = http
        .post(format!("{gateway}/profile"))
        .header("cookie", &gw)
        .header(
            "accept-language",
            reqwest::header::HeaderValue::from_bytes(b"fr-\xe9").expect("obs-text is allowed"),
        )
        .form(&[("name", new_name)])
        .send()
        .await
        .expect("post");
    assert_eq!(unreadable.status(), StatusCode::FORBIDDEN);
    let why = unreadable.text().await.expect("text");
    assert!(
        why.contains("its header accept-language is not plain text"),
        "{why}"
    );

    let acme = {
        let r = http
            .post(format!("{portal}/sign-in"))
            .form(&[("id", "acme"), ("password", "acme-demo")])
            .send()
            .await
            .expect("customer signs in");
        cookie_of(&r)
    };
    let portal_profile = || async {
        http.get(format!("{portal}/profile"))
            .header("cookie", &acme)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("text")
    };
    assert!(
        !portal_profile().await.contains(new_name),
        "nothing was sent"
    );

    // On the console: only Sarah sees it; a wrong password confirms nothing.
    let (sarah_cookie, sarah_csrf) = console_sign_in(&console, "sarah@northwind.example").await;
    let (lee_cookie, _) = console_sign_in(&console, "lee@northwind.example").await;
    let shown = http
        .get(format!("{console}/actions/{action}"))
        .header("cookie", &sarah_cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(shown.status(), StatusCode::OK);
    let shown = shown.text().await.expect("text");
    assert!(shown.contains(&old_name) && shown.contains(new_name));
    let by_lee = http
        .get(format!("{console}/actions/{action}"))
        .header("cookie", &lee_cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(
        by_lee.status(),
        StatusCode::NOT_FOUND,
        "another's held change"
    );
    let confirm = |password: &'static str| {
        http.post(format!("{console}/actions/{action}/confirm"))
            .header("cookie", &sarah_cookie)
            .header("origin", &console)
            .form(&[("csrf", sarah_csrf.as_str()), ("password", password)])
            .send()
    };
    let wrong = confirm("not-her-password").await.expect("confirm");
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .text()
            .await
            .expect("text")
            .contains("password is not right")
    );
    let confirmed = confirm(STAFF_PASSWORD).await.expect("confirm");
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    let send = confirmed.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(send.starts_with(&format!("{gateway}/__actas/send/{action}?token=")));
    let again = confirm(STAFF_PASSWORD).await.expect("confirm");
    assert_eq!(
        again.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "confirmed once"
    );

    // The send link needs the session's own cookie, and works once.
    let stranger = http.get(&send).send().await.expect("send");
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
    let sent = http
        .get(&send)
        .header("cookie", &gw)
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "the product's answer");
    assert!(
        portal_profile().await.contains(new_name),
        "sent once confirmed"
    );
    let replay = http
        .get(&send)
        .header("cookie", &gw)
        .send()
        .await
        .expect("send");
    assert_eq!(replay.status(), StatusCode::FORBIDDEN, "sent once");

    // The product kept the receipt and shows it to the customer.
    let access = http
        .get(format!("{portal}/access"))
        .header("cookie", &acme)
        .send()
        .await
        .expect("access")
        .text()
        .await
        .expect("text");
    let receipt = between(
        &access,
        "<textarea class=\"receipt\" readonly rows=\"3\" cols=\"60\">",
        "<",
    )
    .expect("the receipt on the customer's page")
    .trim()
    .to_owned();
    let key = s.store().public_key();
    let checked =
        actas_core::receipt::verify_receipt(&receipt, &[key.into()]).expect("the receipt verifies");
    assert_eq!(checked.body.session, Some(session.info().id));
    let actas_core::event::EventData::SignedAction {
        changes,
        path,
        confirmed_with,
        ..
    } = &checked.body.data
    else {
        panic!("not a signed action: {:?}", checked.body.data);
    };
    assert_eq!(path, "/profile");
    assert_eq!(confirmed_with, "their password");
    assert_eq!(changes.len(), 1, "only the name changes: {changes:?}");
    assert_eq!(changes[0].field, "name");
    assert_eq!(changes[0].from.as_deref(), Some(old_name.as_str()));
    assert_eq!(changes[0].to.as_deref(), Some(new_name));
    // The same event is in the ledger, and in the account's extract.
    let recorded = s
        .store()
        .events(&EventFilter::default(), checked.body.seq - 1, 1)
        .await
        .expect("event");
    assert_eq!(recorded[0].raw, checked.body.encode());
    let in_session = s
        .store()
        .events(
            &EventFilter {
                session: Some(session.info().id),
                ..EventFilter::default()
            },
            0,
            1000,
        )
        .await
        .expect("events");
    let kinds: Vec<String> = in_session
        .iter()
        .map(|e| e.body.kind().to_owned())
        .collect();
    for kind in [
        "session.action_held",
        "session.action_not_confirmed",
        "session.signed_action",
        "session.action",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    // The wrong password is on the account's history, in words, before the confirmation.
    let refused = in_session
        .iter()
        .find(|e| e.body.kind() == "session.action_not_confirmed")
        .expect("recorded");
    assert_eq!(
        refused.body.account.as_ref().map(|a| a.as_str().to_owned()),
        Some("acme".to_owned())
    );
    assert!(
        refused.body.summary.contains("with their password, but it was not confirmed: that password is not right; it stays held, not sent"),
        "{}",
        refused.body.summary
    );

    // Checked by a JOSE implementation nobody here wrote.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let decoding = jsonwebtoken::DecodingKey::from_ed_components(&key.to_base64()).expect("key");
    let decoded = jsonwebtoken::decode::<serde_json::Value>(&receipt, &decoding, &validation)
        .expect("jsonwebtoken accepts the receipt");
    assert_eq!(decoded.claims["kind"], "session.signed_action");
    assert_eq!(decoded.header.kid.as_deref(), Some(key.key_id().as_str()));

    // And offline with the command; one changed byte fails.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("receipt.txt");
    std::fs::write(&file, &receipt).expect("write");
    let verify = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_actas"))
            .args(["audit", "verify-receipt"])
            .arg(file)
            .args(["--key", &key.to_base64()])
            .output()
            .expect("runs")
    };
    let out = verify(&file);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Genuine"), "{said}");
    assert!(said.contains("contact details"), "{said}");
    let mut bytes = receipt.clone().into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let changed = dir.path().join("changed.txt");
    std::fs::write(&changed, &bytes).expect("write");
    let out = verify(&changed);
    assert!(!out.status.success(), "a changed receipt must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not hold"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the published keys: it holds; with its key said to be replaced before its
    // event, it does not.
    let published: serde_json::Value = http
        .get(format!("{console}/.well-known/actas-ledger-keys"))
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("json");
    let with_keys = |keys: &serde_json::Value| {
        let file_of_keys = dir.path().join("keys.json");
        std::fs::write(&file_of_keys, keys.to_string()).expect("write");
        std::process::Command::new(env!("CARGO_BIN_EXE_actas"))
            .args(["audit", "verify-receipt"])
            .arg(&file)
            .arg("--keys")
            .arg(&file_of_keys)
            .output()
            .expect("runs")
    };
    let out = with_keys(&published);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut replaced = published.clone();
    replaced["keys"][0]["signs_up_to"] = serde_json::json!(checked.body.seq - 1);
    let out = with_keys(&replaced);
    assert!(
        !out.status.success(),
        "a replaced key's later receipt must fail"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "but key {} was replaced at event {} and signs nothing after it",
            key.key_id(),
            checked.body.seq - 1
        )),
        "{said}"
    );
    d.app.stop().await.expect("stops");
}
