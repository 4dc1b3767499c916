//! The customer-side API over real HTTP: the product's app key, account sync, customer
//! activity with idempotency, consent, codes, access history and the staff who acted.

mod common;

use actas_core::Timestamp;
use actas_core::scope::Risk;
use actas_core::staff::{Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::service::RequestInput;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct World {
    dir: tempfile::TempDir,
    app: Application,
    base: String,
    key: String,
}

async fn world() -> World {
    let (dir, app) = common::serve().await;
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
    let key = s
        .create_app_key(&dana(), "portal", None)
        .await
        .expect("app key")
        .key
        .expose()
        .to_owned();
    let base = format!("http://{}/api/v1", app.console_addr());
    World {
        dir,
        app,
        base,
        key,
    }
}

fn dana() -> Email {
    Email::parse("dana@example.com").expect("email")
}

impl World {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(&self.key, method, path, body).await
    }

    async fn call_with(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("send");
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn kinds(&self, kind: &str) -> Vec<actas_store::RecordedEvent> {
        self.app
            .service()
            .store()
            .events(
                &actas_store::EventFilter {
                    kind: Some(kind.into()),
                    ..Default::default()
                },
                0,
                100_000,
            )
            .await
            .expect("events")
    }
}

#[tokio::test]
async fn app_keys_open_only_the_customer_side_and_stop_working_when_revoked() {
    let w = world().await;
    let (status, _) = w
        .call(reqwest::Method::GET, "/accounts/acme/staff-who-acted", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // An app key is not a staff credential.
    let (status, body) = w.call(reqwest::Method::GET, "/accounts", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = w
        .call(reqwest::Method::GET, "/requests?status=pending", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // And a staff token is not an app key.
    let s = w.app.service();
    let signed_in = s
        .sign_in(
            "dana@example.com",
            common::PASSWORD,
            None,
            std::net::Ipv4Addr::LOCALHOST.into(),
        )
        .await
        .expect("sign in");
    let who = s
        .authenticate_cookie(signed_in.token.expose())
        .await
        .expect("cookie");
    let token = s.create_api_token(&who, "laptop").await.expect("token");
    let (status, _) = w
        .call_with(
            token.expose(),
            reqwest::Method::GET,
            "/accounts/acme/staff-who-acted",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = w
        .call_with(
            "actas_app_forged",
            reqwest::Method::GET,
            "/accounts/acme/staff-who-acted",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Posting events remembers the key; revoking it still stops the next post at once,
    // with nothing written.
    let event = json!({ "account": "acme", "kind": "signed_in" });
    let (status, body) = w
        .call(reqwest::Method::POST, "/events", Some(event.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.revoke_app_key(&dana(), "portal").await.expect("revoke");
    let before = s.store().ledger_size().await.expect("size");
    let (status, body) = w.call(reqwest::Method::POST, "/events", Some(event)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(s.store().ledger_size().await.expect("size"), before);
    let (status, body) = w
        .call(reqwest::Method::GET, "/accounts/acme/staff-who-acted", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let revoked = w.kinds("keys.app_key_revoked").await;
    assert_eq!(
        revoked[0].body.summary,
        "Dana Park revoked the app key portal; the product can no longer use it"
    );
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn the_product_syncs_accounts_and_removing_a_sensitive_flag_is_recorded_as_its_doing() {
    let w = world().await;
    let (status, body) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/globex",
            Some(json!({ "name": "Globex", "flags": ["sensitive", "billing_owner"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["flags"], json!(["billing_owner", "sensitive"]));
    let (status, _) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/globex",
            Some(json!({ "name": "Globex", "flags": ["billing_owner"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let updates = w.kinds("account.updated").await;
    let last = updates.last().expect("update");
    assert_eq!(
        last.body.summary,
        "the product (app portal) updated the account Globex (globex; flags: billing_owner; removed: sensitive)"
    );
    assert!(
        last.raw.contains("\"portal\""),
        "the app is named in the record"
    );

    let (status, body) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/Not%20An%20Id",
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "id");
    let (status, body) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/initech",
            Some(json!({ "name": "Initech", "flags": ["Not A Flag"] })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "flag");
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn customer_activity_is_recorded_once_per_idempotency_key_with_plain_sentences() {
    let w = world().await;
    let event = json!({
        "account": "acme",
        "kind": "agreement_signed",
        "details": { "document": "the loan agreement LA-77" },
        "idempotency_key": "esign-77",
    });
    let (status, first) = w
        .call(reqwest::Method::POST, "/events", Some(event.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["duplicate"], false);
    for _ in 0..3 {
        let (status, again) = w
            .call(reqwest::Method::POST, "/events", Some(event.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["duplicate"], true);
    }
    let recorded = w.kinds("customer.activity").await;
    assert_eq!(recorded.len(), 1, "retries write nothing");
    assert_eq!(
        recorded[0].body.summary,
        "Acme Co signed the loan agreement LA-77"
    );

    // The same key for something else is refused.
    let mut other = event.clone();
    other["details"]["document"] = json!("the loan agreement LA-78");
    let (status, body) = w.call(reqwest::Method::POST, "/events", Some(other)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "idempotency_key");

    // Before/after values are masked by policy; unclassified ones are hidden.
    let (status, _) = w
        .call(
            reqwest::Method::POST,
            "/events",
            Some(json!({
                "account": "acme",
                "kind": "profile_edited",
                "changes": [
                    { "field": "email", "from": "sarah@acme.com", "to": "billing@acme.com" },
                    { "field": "national_id", "from": "AB123456C", "to": "CD654321A" },
                    { "field": "favourite_colour", "from": "red", "to": "blue" }
                ]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let edited = w.kinds("customer.activity").await;
    let raw = &edited.last().expect("edit").raw;
    for secret in [
        "sarah@acme.com",
        "billing@acme.com",
        "AB123456C",
        "CD654321A",
        "red",
        "blue",
    ] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    assert!(
        edited.last().expect("edit").body.summary.starts_with(
            "Acme Co changed their profile: the email from s•••@acme.com to b•••@acme.com"
        ),
        "{}",
        edited.last().expect("edit").body.summary
    );

    // Bad input names the field (and says why where it matters), and a batch with one bad
    // item writes nothing.
    let before = w.app.service().store().ledger_size().await.expect("size");
    for (body, field, why) in [
        (
            json!({ "account": "nobody", "kind": "signed_in" }),
            "account",
            None,
        ),
        (
            json!({ "account": "acme", "kind": "teleported" }),
            "kind",
            None,
        ),
        (
            json!({ "account": "acme", "kind": "payment_made" }),
            "details.amount",
            None,
        ),
        (
            json!({ "events": [
                { "account": "acme", "kind": "signed_in" },
                { "account": "acme", "kind": "signed_sideways" },
            ]}),
            "events[1].kind",
            None,
        ),
        (
            json!({ "events": [
                { "account": "acme", "kind": "signed_in" },
                { "account": "nobody", "kind": "signed_in" },
            ]}),
            "events[1].account",
            Some("there is no account nobody"),
        ),
        // A value is bounded, so a body at the size limit can't become a ledger event
        // twice its size.
        (
            json!({ "account": "acme", "kind": "agreement_signed",
                    "details": { "document": "d".repeat(201) } }),
            "details.document",
            Some("at most 200 characters"),
        ),
        (
            json!({ "account": "acme", "kind": "profile_edited",
                    "changes": [{ "field": "bio", "from": "", "to": "b".repeat(1001) }] }),
            "changes[0].to",
            Some("at most 1000 characters"),
        ),
        (
            json!({ "account": "acme", "kind": "profile_edited",
                    "changes": (0..51).map(|i| json!({ "field": format!("f{i}"), "to": "x" })).collect::<Vec<_>>() }),
            "changes",
            Some("at most 50 changed fields"),
        ),
        (json!({ "events": [], "extra": true }), "extra", None),
        (
            json!({ "events": [{ "account": "acme", "kind": "signed_in", "colour": "red" }] }),
            "events[0].colour",
            None,
        ),
    ] {
        let (status, err) = w.call(reqwest::Method::POST, "/events", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        if let Some(why) = why {
            assert!(
                err["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(why)),
                "{err}"
            );
        }
    }
    assert_eq!(
        w.app.service().store().ledger_size().await.expect("size"),
        before,
        "nothing of the batch was written"
    );
    let (status, ok) = w
        .call(
            reqwest::Method::POST,
            "/events",
            Some(json!({ "events": [
                { "account": "acme", "kind": "signed_in", "idempotency_key": "in-1" },
                { "account": "acme", "kind": "payment_made", "details": { "amount": "£120.00" } },
                { "account": "acme", "kind": "signed_out" },
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ok}");
    assert_eq!(ok["events"].as_array().expect("list").len(), 3);
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_hundred_clients_posting_at_once_lose_nothing_and_the_ledger_verifies() {
    let w = world().await;
    let base = w.base.clone();
    let key = w.key.clone();
    let mut tasks = Vec::new();
    for client in 0..100 {
        let base = base.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..5 {
                let body = json!({
                    "account": "acme",
                    "kind": "document_uploaded",
                    "details": { "document": format!("statement {client}-{n}") },
                    "idempotency_key": format!("upload-{client}-{n}"),
                });
                // Each event is sent twice, as a client retrying after a timeout would.
                for _ in 0..2 {
                    let r = http
                        .post(format!("{base}/events"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                        .expect("send");
                    assert!(r.status().is_success(), "{}", r.status());
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let uploads = w.kinds("customer.activity").await;
    assert_eq!(uploads.len(), 500, "every event once, none twice");
    let mut names: Vec<&str> = uploads.iter().map(|e| e.body.summary.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 500);
    let data = DataDir::new(w.dir.path().join("data"));
    let public = data.load().expect("load").key.public();
    let report = w
        .app
        .service()
        .store()
        .verify(&public, &mut |_, _| {})
        .await
        .expect("verify ran");
    assert!(report.is_ok(), "{report:?}");
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn consent_codes_history_and_the_staff_who_acted() {
    let w = world().await;
    let s = w.app.service();
    let sarah = common::staff(s, "sarah@example.com").await;

    // The customer asks for codes on every session.
    let (status, body) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/acme/consent",
            Some(json!({ "consent": "code_required" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/acme/consent",
            Some(json!({ "consent": "maybe" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "consent");

    let request = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Check invoice tax rate after plan change".into(),
                capabilities: vec![],
                minutes: None,
                mode: Some("read-only".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    assert!(
        s.start_session(&sarah, request.id, Timestamp::now())
            .await
            .is_err(),
        "no session without the customer's code"
    );
    let (status, code) = w
        .call(
            reqwest::Method::POST,
            "/accounts/acme/confirmation-codes",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{code}");
    let code = code["code"].as_str().expect("code").to_owned();
    s.enter_code(&sarah, request.id, &code)
        .await
        .expect("code accepted");
    let (session, _) = s
        .start_session(&sarah, request.id, Timestamp::now())
        .await
        .expect("start");
    let issued = w.kinds("code.issued").await;
    assert!(issued[0].raw.contains("\"portal\""), "the app is named");

    // Revoking consent ends the session at once.
    let (status, _) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/acme/consent",
            Some(json!({ "consent": "revoked" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let now = s
        .store()
        .session(session.info().id)
        .await
        .expect("read")
        .expect("session");
    match now {
        actas_core::session::Session::Ended(e) => {
            assert_eq!(e.reason.as_str(), "consent_revoked")
        }
        other => panic!("still active: {other:?}"),
    }
    let err = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4822".into(),
                reason: "Check invoice tax rate after plan change".into(),
                capabilities: vec![],
                minutes: None,
                mode: None,
                for_session: None,
            },
        )
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("revoked consent"), "{err}");

    // The customer's view of it.
    let (status, history) = w
        .call(reqwest::Method::GET, "/accounts/acme/access-history", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let first = &history["sessions"][0];
    assert_eq!(first["staff"], "Sarah Lee");
    assert_eq!(first["ticket"], "#4821");
    assert_eq!(first["reason"], "Check invoice tax rate after plan change");
    assert_eq!(first["end_reason"], "consent_revoked");
    assert_eq!(first["approved_by"], "policy (low risk)");
    let lines: Vec<&str> = first["activity"]
        .as_array()
        .expect("activity")
        .iter()
        .map(|l| l["summary"].as_str().expect("summary"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Sarah Lee started a support session")),
        "{lines:?}"
    );

    let (status, who) = w
        .call(reqwest::Method::GET, "/accounts/acme/staff-who-acted", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["staff"][0]["name"], "Sarah Lee");
    assert_eq!(who["staff"][0]["role"], "agent");
    assert_eq!(who["staff"][0]["sessions"], 1);
    let (status, _) = w
        .call(
            reqwest::Method::GET,
            "/accounts/nobody/staff-who-acted",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    w.app.stop().await.expect("stop");
}

#[tokio::test]
async fn an_extract_verifies_offline_holds_one_account_only_and_an_edit_is_located() {
    let w = world().await;
    let s = w.app.service();
    s.put_account("globex", "Globex", &[], actas_core::event::Actor::System)
        .await
        .expect("globex");
    for (account, doc) in [
        ("acme", "the loan agreement LA-77"),
        ("globex", "the secret merger plan"),
        ("acme", "the direct debit mandate DD-9"),
    ] {
        let (status, _) = w
            .call(
                reqwest::Method::POST,
                "/events",
                Some(json!({ "account": account, "kind": "agreement_signed", "details": { "document": doc } })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let r = reqwest::Client::new()
        .get(format!("{}/accounts/acme/audit-extract", w.base))
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("extract");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains("audit-extract-acme.json")
    );
    let text = r.text().await.expect("text");
    assert!(text.contains("LA-77") && text.contains("DD-9"));
    assert!(
        !text.contains("globex") && !text.contains("merger"),
        "nothing of another account"
    );
    let extract: Value = serde_json::from_str(&text).expect("json");
    let key = extract["public_key"].as_str().expect("key").to_owned();

    let file = w.dir.path().join("acme.json");
    std::fs::write(&file, &text).expect("write");
    let verify = |path: &std::path::Path, key: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_actas"));
        // No data directory is needed: point it at one that does not exist.
        cmd.args(["--data", "/nonexistent/actas", "audit", "verify-extract"])
            .arg(path);
        if let Some(k) = key {
            cmd.args(["--key", k]);
        }
        let out = cmd.output().expect("run actas");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, said) = verify(&file, Some(&key));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("Complete: all 3 events of account acme are exactly as recorded, and there are no others"),
        "{said}"
    );

    // The compressed form is the same JSON, gzip'd, and verifies as it is.
    let packed = reqwest::Client::new()
        .get(format!(
            "{}/accounts/acme/audit-extract?format=json.gz",
            w.base
        ))
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("extract");
    assert_eq!(packed.status(), StatusCode::OK);
    assert_eq!(packed.headers()["content-type"], "application/gzip");
    assert!(
        packed.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains("audit-extract-acme.json.gz")
    );
    let packed = packed.bytes().await.expect("bytes");
    // A gzip'd extract, opened.
    let opened = |bytes: &[u8]| -> Value {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut text)
            .expect("gzip");
        serde_json::from_str(&text).expect("json")
    };
    assert_eq!(
        opened(&packed)["events"],
        extract["events"],
        "the same events"
    );
    // Any client that accepts gzip gets the plain JSON download compressed in transit (a
    // fifth of its size), and saves the same JSON; `json.gz` is not compressed twice.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let fetch = |format: &'static str, accept: Option<&'static str>| {
        let mut get = raw
            .get(format!("{}/accounts/acme/audit-extract{format}", w.base))
            .bearer_auth(&w.key);
        if let Some(accept) = accept {
            get = get.header("accept-encoding", accept);
        }
        get.send()
    };
    let sent = fetch("", Some("br;q=1.0, gzip;q=0.8"))
        .await
        .expect("extract");
    assert_eq!(sent.status(), StatusCode::OK);
    assert_eq!(sent.headers()["content-encoding"], "gzip");
    assert_eq!(sent.headers()["content-type"], "application/json");
    assert!(
        sent.headers()["vary"]
            .to_str()
            .expect("ascii")
            .contains("accept-encoding")
    );
    let wire = sent.bytes().await.expect("bytes");
    assert_eq!(
        opened(&wire)["events"],
        extract["events"],
        "the same extract"
    );
    let plain = fetch("", None).await.expect("extract");
    assert!(
        plain.headers().get("content-encoding").is_none(),
        "asked for nothing"
    );
    let once = fetch("?format=json.gz", Some("gzip"))
        .await
        .expect("extract");
    assert!(
        once.headers().get("content-encoding").is_none(),
        "compressed once"
    );
    let once = once.bytes().await.expect("bytes");
    assert_eq!(
        opened(&once)["events"],
        extract["events"],
        "compressed once"
    );
    let gz = w.dir.path().join("acme.json.gz");
    std::fs::write(&gz, &packed).expect("write");
    let (code, said) = verify(&gz, Some(&key));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("Complete: all 3 events"), "{said}");
    // Another compressed file after it: refused, as the browser's verifier refuses it.
    let mut two = packed.to_vec();
    two.extend_from_slice(&packed);
    std::fs::write(&gz, &two).expect("write");
    let (code, said) = verify(&gz, Some(&key));
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("holds more after its compressed extract"),
        "{said}"
    );
    let mut broken = packed.to_vec();
    let middle = broken.len() / 2;
    broken[middle] ^= 0x55;
    std::fs::write(&gz, &broken).expect("write");
    let (code, said) = verify(&gz, Some(&key));
    assert_ne!(code, Some(0), "{said}");

    // One byte changed in an event's text: refused, naming the event.
    // The account's events: it being added, then LA-77, then DD-9 (the third).
    let seq = extract["events"][2]["seq"].as_u64().expect("seq");
    let edited = text.replacen("DD-9", "DD-8", 1);
    let bad = w.dir.path().join("edited.json");
    std::fs::write(&bad, edited).expect("write");
    let (code, said) = verify(&bad, Some(&key));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "event #{seq} (number 3 in the extract) does not hold"
        )),
        "{said}"
    );

    // Someone else's key is refused.
    let (code, said) = verify(&file, Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not by the key you gave"), "{said}");

    // A newer extract, fetched with ?since= the older one's tree size, extends it.
    let size = extract["tree_head"]["size"].as_u64().expect("size");
    let (status, _) = w
        .call(
            reqwest::Method::POST,
            "/events",
            Some(json!({ "account": "acme", "kind": "agreement_signed", "details": { "document": "the new terms NT-1" } })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let newer = reqwest::Client::new()
        .get(format!(
            "{}/accounts/acme/audit-extract?since={size}",
            w.base
        ))
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("extract")
        .text()
        .await
        .expect("text");
    let newer_file = w.dir.path().join("newer.json");
    std::fs::write(&newer_file, &newer).expect("write");
    let since = |old: &std::path::Path, new: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_actas"))
            .args(["--data", "/nonexistent/actas", "audit", "verify-extract"])
            .arg(new)
            .args(["--key", &key, "--since"])
            .arg(old)
            .output()
            .expect("run actas");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, said) = since(&file, &newer_file);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("It extends the older extract"), "{said}");
    // The same newer extract with an old event left out: it no longer extends the older
    // one (and on its own no longer matches its checkpoint).
    let mut cut: Value = serde_json::from_str(&newer).expect("json");
    cut["events"].as_array_mut().expect("events").remove(1);
    let cut_file = w.dir.path().join("cut.json");
    std::fs::write(&cut_file, cut.to_string()).expect("write");
    let (code, said) = since(&file, &cut_file);
    assert_eq!(code, Some(1), "{said}");
    let (code, said) = verify(&cut_file, Some(&key));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("missing before it"), "{said}");
    // Bad `since` is refused with the field named.
    let r = reqwest::Client::new()
        .get(format!("{}/accounts/acme/audit-extract?since=0", w.base))
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("extract");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let why: Value = r.json().await.expect("json");
    assert_eq!(why["error"]["field"], "since", "{why}");

    // Its output piped into a reader that stops at once: no panic.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_actas"))
        .args(["--data", "/nonexistent/actas", "audit", "verify-extract"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run actas");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");

    // And the CSV is for people.
    let r = reqwest::Client::new()
        .get(format!("{}/accounts/acme/audit-extract?format=csv", w.base))
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("csv");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    let csv = r.text().await.expect("text");
    assert!(
        csv.starts_with("\"seq\",\"time\",\"kind\",\"summary\"\n"),
        "{csv}"
    );
    // Every cell quoted, the sequence number too.
    for line in csv.lines() {
        assert!(line.starts_with('"') && line.ends_with('"'), "{line}");
    }
    assert!(
        csv.contains("\"Acme Co signed the loan agreement LA-77\""),
        "{csv}"
    );
    w.app.stop().await.expect("stop");
}

/// What the product's webhook receiver accepted: (id, timestamp, signature, body).
#[derive(Default)]
struct Inbox {
    down: std::sync::atomic::AtomicBool,
    refused: std::sync::atomic::AtomicUsize,
    accepted: std::sync::Mutex<Vec<(String, i64, String, String)>>,
}

async fn receiver(inbox: std::sync::Arc<Inbox>) -> String {
    use axum::extract::State;
    use axum::http::HeaderMap;
    async fn hook(
        State(inbox): State<std::sync::Arc<Inbox>>,
        headers: HeaderMap,
        body: String,
    ) -> axum::http::StatusCode {
        if inbox.down.load(std::sync::atomic::Ordering::SeqCst) {
            inbox
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
        }
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        inbox.accepted.lock().expect("lock").push((
            h("actas-webhook-id"),
            h("actas-webhook-timestamp").parse().unwrap_or(0),
            h("actas-signature"),
            body,
        ));
        axum::http::StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/hooks/actas", axum::routing::post(hook))
        .with_state(inbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    format!("http://{addr}/hooks/actas")
}

#[tokio::test]
async fn notifications_wait_out_a_product_outage_and_arrive_once_signed() {
    let inbox = std::sync::Arc::new(Inbox::default());
    inbox.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let url = receiver(inbox.clone()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::fresh_data(&dir.path().join("data")).await;
    let settings = ServeSettings {
        delivery: actas_server::notify::DeliveryTiming {
            poll: std::time::Duration::from_millis(50),
            first_retry: std::time::Duration::from_millis(100),
            max_retry: std::time::Duration::from_millis(400),
            timeout: std::time::Duration::from_secs(5),
        },
        ..ServeSettings::on(([127, 0, 0, 1], 0).into())
    };
    let app = Application::build(&data, settings).await.expect("start");
    let s = app.service();
    common::add_staff(
        s,
        &[
            ("dana@example.com", "Dana Park", Role::Director),
            ("sarah@example.com", "Sarah Lee", Role::Agent),
        ],
    )
    .await;
    common::allow(s, "sarah@example.com", Risk::High).await;
    common::acme(s).await;
    let key = s
        .create_app_key(&dana(), "portal", Some(&url))
        .await
        .expect("key");
    let secret = key
        .webhook_secret
        .expect("a webhook secret")
        .expose()
        .to_owned();
    let sarah = common::staff(s, "sarah@example.com").await;
    for n in 0..3 {
        let r = s
            .create_request(
                &sarah,
                RequestInput {
                    account: "acme".into(),
                    ticket: format!("#48{n}"),
                    reason: "Check invoice tax rate after plan change".into(),
                    capabilities: vec![],
                    minutes: None,
                    mode: Some("read-only".into()),
                    for_session: None,
                },
            )
            .await
            .expect("request");
        let (session, _) = s
            .start_session(&sarah, r.id, Timestamp::now())
            .await
            .expect("start");
        s.end_session_by(&sarah, session.info().id)
            .await
            .expect("end");
    }
    // The product is down: notifications are tried, refused, and kept.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while inbox.refused.load(std::sync::atomic::Ordering::SeqCst) < 12 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries were not retried"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = reqwest::get(format!("http://{}/metrics", app.console_addr()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("actas_notifications_failing 6"),
        "{metrics}"
    );
    assert!(inbox.accepted.lock().expect("lock").is_empty());

    // Back up: every notification arrives, once, signed.
    inbox.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while inbox.accepted.lock().expect("lock").len() < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let accepted = inbox.accepted.lock().expect("lock").clone();
    assert_eq!(accepted.len(), 6, "each notification once");
    let mut ids: Vec<&str> = accepted.iter().map(|a| a.0.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    let now = Timestamp::now().as_millis() / 1000;
    let mut kinds = Vec::new();
    for (_, ts, sig, body) in &accepted {
        actas_core::webhook::verify(&secret, *ts, sig, body.as_bytes(), now).expect("signed");
        let v: Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["account"], "acme");
        kinds.push(v["type"].as_str().expect("type").to_owned());
    }
    assert_eq!(kinds.iter().filter(|k| *k == "session.started").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "session.ended").count(), 3);
    let metrics = reqwest::get(format!("http://{}/metrics", app.console_addr()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("actas_notifications_failing 0")
            && metrics.contains("actas_notifications_delivered_total 6"),
        "{metrics}"
    );
    app.stop().await.expect("stop");
}

/// Reads a server-sent event stream until `n` events came, or 10 s passed.
async fn read_events(r: reqwest::Response, n: usize) -> Vec<(String, Value)> {
    use futures_util::StreamExt;
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events within 10 s")
            .expect("the stream goes on")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id:"))
                .map(|s| s.trim().to_owned());
            let data = block.lines().find_map(|l| l.strip_prefix("data:"));
            if let (Some(id), Some(data)) = (id, data) {
                out.push((id, serde_json::from_str(data.trim()).expect("json")));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_activity_stream_sends_an_accounts_events_as_they_commit_and_resumes() {
    let w = world().await;
    let url = format!("{}/accounts/acme/activity/stream", w.base);
    let http = reqwest::Client::new();
    // Staff credentials and no credentials don't open it.
    let r = http.get(&url).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(&url)
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    // A new event on the account arrives while the stream is open.
    let reading = tokio::spawn(read_events(r, 2));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, _) = w
        .call(
            reqwest::Method::PUT,
            "/accounts/acme/consent",
            Some(json!({ "consent": "code_required" })),
        )
        .await;
    assert!(s.is_success(), "{s}");
    let events = reading.await.expect("read");
    let (first_id, _) = &events[0];
    let (_, consent) = &events[1];
    assert_eq!(consent["kind"], "consent.changed", "{consent}");
    // Resuming after the first event gives the second again, and nothing before it.
    let r = http
        .get(&url)
        .bearer_auth(&w.key)
        .header("last-event-id", first_id)
        .send()
        .await
        .expect("send");
    let again = read_events(r, 1).await;
    assert_eq!(again[0].1["kind"], "consent.changed");
    // An account that isn't there is a 404, not an empty stream.
    let r = http
        .get(format!("{}/accounts/nobody/activity/stream", w.base))
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    w.app.stop().await.expect("stop");
}

/// The ledger's published checkpoint is a C2SP signed note that an implementation
/// nobody on the team wrote (Cloudflare's `signed_note`, ported from Go's
/// `sumdb/note`) accepts with the verifier key actas publishes; its size and root are
/// the newest signed tree head's. Consistency proofs are served between sizes, to the
/// product and to staff only, and the ledger keys are public.
#[tokio::test]
async fn the_checkpoint_is_a_standard_signed_note_and_consistency_proofs_hold() {
    use base64::Engine;
    use signed_note::{Note, StandardVerifier, VerifierList};
    let w = world().await;
    let console = w.base.trim_end_matches("/api/v1").to_owned();
    let http = reqwest::Client::new();

    // The crate agrees with the signed-note specification's own example.
    let example = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    let peter =
        StandardVerifier::new("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .expect("verifier key");
    let (verified, _) = Note::from_bytes(example.as_bytes())
        .expect("note")
        .verify(&VerifierList::new(vec![Box::new(peter)]))
        .expect("the example verifies");
    assert_eq!(verified.len(), 1);

    let keys: Value = http
        .get(format!("{console}/.well-known/actas-ledger-keys"))
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("json");
    let current = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["current"] == true)
        .expect("a current key")
        .clone();
    assert_eq!(current["key_id"], w.app.service().ledger_key_id().as_str());
    let origin = keys["origin"].as_str().expect("origin").to_owned();

    let r = http
        .get(format!("{}/ledger/checkpoint", w.base))
        .send()
        .await
        .expect("checkpoint");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let note = r.text().await.expect("text");
    let verifier = StandardVerifier::new(current["note_verifier_key"].as_str().expect("vkey"))
        .expect("the published verifier key parses");
    let parsed = Note::from_bytes(note.as_bytes()).expect("a well-formed note");
    let (verified, unverified) = parsed
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .expect("the checkpoint verifies");
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    // The tlog-checkpoint body: origin, decimal size, base64 root.
    let text = std::str::from_utf8(parsed.text())
        .expect("utf-8")
        .to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], origin);
    let size: u64 = lines[1].parse().expect("a decimal size");
    let root = base64::engine::general_purpose::STANDARD
        .decode(lines[2])
        .expect("a base64 root");
    let heads = w.app.service().store().tree_heads().await.expect("heads");
    let head = heads
        .iter()
        .find(|h| h.head.size == size)
        .expect("a signed head of that size");
    assert_eq!(root, head.head.root.to_vec());
    // One changed byte and it no longer verifies.
    let forged = note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
    let verifier =
        StandardVerifier::new(current["note_verifier_key"].as_str().expect("vkey")).expect("vkey");
    assert!(
        Note::from_bytes(forged.as_bytes())
            .expect("still well-formed")
            .verify(&VerifierList::new(vec![Box::new(verifier)]))
            .is_err()
    );

    // Consistency: grow the ledger, then prove the new head extends the old one.
    for doc in ["A-1", "A-2", "A-3"] {
        let (status, _) = w
            .call(
                reqwest::Method::POST,
                "/events",
                Some(json!({ "account": "acme", "kind": "agreement_signed", "details": { "document": doc } })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // Asking for the checkpoint again signs no new head (the endpoint is public).
    let heads_before = w
        .app
        .service()
        .store()
        .tree_heads()
        .await
        .expect("heads")
        .len();
    http.get(format!("{}/ledger/checkpoint", w.base))
        .send()
        .await
        .expect("checkpoint");
    assert_eq!(
        w.app
            .service()
            .store()
            .tree_heads()
            .await
            .expect("heads")
            .len(),
        heads_before
    );
    let newer = w.app.service().current_head().await.expect("head");
    let url = format!(
        "{}/ledger/consistency?from={size}&to={}",
        w.base, newer.head.size
    );
    assert_eq!(
        http.get(&url).send().await.expect("send").status(),
        StatusCode::UNAUTHORIZED,
        "not for anyone"
    );
    let sarah = common::Person::sign_in(&console, "sarah@example.com").await;
    let as_staff = sarah
        .http
        .get(&url)
        .header("cookie", &sarah.cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(as_staff.status(), StatusCode::OK);
    let proof: actas_core::extract::ConsistencyProof = http
        .get(&url)
        .bearer_auth(&w.key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    actas_core::merkle::verify_consistency(
        size,
        newer.head.size,
        &head.head.root,
        &newer.head.root,
        &proof.proof,
    )
    .expect("the newer head extends the older one");
    for (query, field) in [
        (format!("from=0&to={size}"), "from"),
        (format!("from={size}&to=999999"), "to"),
        (format!("from={}&to={size}", size + 1), "from"),
    ] {
        let r = http
            .get(format!("{}/ledger/consistency?{query}", w.base))
            .bearer_auth(&w.key)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let why: Value = r.json().await.expect("json");
        assert_eq!(why["error"]["field"], field, "{query}: {why}");
    }
    w.app.stop().await.expect("stop");
}

/// The operator replaces the ledger key: the replacement is in the ledger, endorsed by
/// the new key; both keys are published with the heads each signed; the whole ledger
/// and an extract made before still verify; an instance left with the old key refuses
/// to start.
#[tokio::test]
async fn a_rotated_ledger_key_keeps_old_heads_and_extracts_verifying() {
    let w = world().await;
    let data_path = w.dir.path().join("data");
    let data = actas_server::config::DataDir::new(&data_path);
    let before = w
        .app
        .service()
        .audit_extract("acme", None)
        .await
        .expect("extract");
    let before = serde_json::to_string(&before).expect("json");
    let old_secret = std::fs::read(data_path.join("ledger.key")).expect("old key");
    let old = w.app.service().store().public_key();
    w.app.stop().await.expect("stop");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_actas"))
        .arg("--data")
        .arg(&data_path)
        .args(["audit", "rotate-key"])
        .output()
        .expect("run actas");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "Key {} signed the ledger up to event #",
            old.key_id()
        )),
        "{said}"
    );
    assert!(!data_path.join("ledger.key.new").exists());

    // An instance still holding the old key is refused.
    let copy = tempfile::tempdir().expect("tmp");
    let stale = copy.path().join("data");
    std::fs::create_dir(&stale).expect("dir");
    // The database with its write-ahead log: the rotation may not be checkpointed yet.
    for f in [
        "actas.toml",
        "policy.toml",
        "actas.db",
        "actas.db-wal",
        "actas.db-shm",
        "assertion.key",
    ] {
        if data_path.join(f).exists() {
            std::fs::copy(data_path.join(f), stale.join(f)).expect("copy");
        }
    }
    std::fs::write(stale.join("ledger.key"), &old_secret).expect("old key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        stale.join("ledger.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("mode");
    let refused = actas_server::app::Application::build(
        &actas_server::config::DataDir::new(&stale),
        actas_server::app::ServeSettings::on(([127, 0, 0, 1], 0).into()),
    )
    .await;
    let why = refused.err().expect("refused").to_string();
    assert!(why.contains("was replaced by key"), "{why}");

    let app = actas_server::app::Application::build(
        &data,
        actas_server::app::ServeSettings::on(([127, 0, 0, 1], 0).into()),
    )
    .await
    .expect("starts with the new key");
    let s = app.service();
    let new = s.store().public_key();
    assert_ne!(new, old);
    // Right after the replacement, what is built on the newest head is the new key's.
    let fresh = serde_json::to_string(&s.audit_extract("acme", None).await.expect("extract"))
        .expect("json");
    assert!(actas_core::extract::verify_extract(&fresh, Some(&new)).is_ok());
    s.put_account("globex", "Globex", &[], actas_core::event::Actor::System)
        .await
        .expect("a new event");
    s.current_head().await.expect("a head by the new key");
    // Both keys published, each with the heads it signed.
    let keys: Value = reqwest::get(format!(
        "http://{}/.well-known/actas-ledger-keys",
        app.console_addr()
    ))
    .await
    .expect("keys")
    .json()
    .await
    .expect("json");
    let keys = keys["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0]["key_id"], old.key_id().as_str());
    assert_eq!(keys[0]["current"], false);
    assert_eq!(keys[1]["key_id"], new.key_id().as_str());
    assert!(
        keys[0]["signed_heads"]["to_size"].as_u64() < keys[1]["signed_heads"]["from_size"].as_u64()
    );
    // The whole ledger verifies against the new key, old heads included.
    let report = s
        .store()
        .verify(&new, &mut |_, _| {})
        .await
        .expect("read")
        .expect("verifies across the rotation");
    assert!(report.heads >= 2);
    // The extract made before still verifies with the old key; a new one with the new.
    assert!(actas_core::extract::verify_extract(&before, Some(&old)).is_ok());
    let after = serde_json::to_string(&s.audit_extract("acme", None).await.expect("extract"))
        .expect("json");
    assert!(actas_core::extract::verify_extract(&after, Some(&new)).is_ok());
    app.stop().await.expect("stop");
}
