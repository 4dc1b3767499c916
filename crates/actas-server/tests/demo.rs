//! `actas demo` over real HTTP: the portal, the gateway in front of it with the example
//! policy, and the customer's side, as the tour in the README walks it.

mod common;

use actas_core::Timestamp;
use actas_core::staff::Email;
use actas_server::demo::{Demo, DemoSettings};
use actas_server::service::{Approval, RequestInput};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

async fn demo() -> Demo {
    Demo::start(DemoSettings {
        console_addr: ([127, 0, 0, 1], 0).into(),
        gateway_addr: ([127, 0, 0, 1], 0).into(),
        portal_addr: ([127, 0, 0, 1], 0).into(),
        database_url: common::demo_database().await,
        ..DemoSettings::default()
    })
    .await
    .expect("demo starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// Signs in to the portal as a customer; returns the cookie.
async fn customer(d: &Demo, id: &str) -> String {
    let r = client()
        .post(format!("http://{}/sign-in", d.portal_addr))
        .form(&[("id", id), ("password", &format!("{id}-demo"))])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{id} signs in");
    r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned()
}

#[tokio::test]
async fn the_demo_tour_works_end_to_end_over_http() {
    let d = demo().await;
    let portal = format!("http://{}", d.portal_addr);
    let http = client();

    // The portal itself: its own sign-in, a strict CSP, and the customer's own secrets.
    let r = http.get(format!("{portal}/")).send().await.expect("page");
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "signed-out visitors go to sign in"
    );
    let acme = customer(&d, "acme").await;
    let r = http
        .get(format!("{portal}/payments"))
        .header("cookie", &acme)
        .send()
        .await
        .expect("payments");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("script-src 'self'")
    );
    assert!(
        r.text()
            .await
            .expect("text")
            .contains("4111 1111 1111 4243")
    );

    // A forged assertion is refused, never taken for the customer.
    let r = http
        .get(format!("{portal}/"))
        .header("actas-assertion", "eyJhbGciOiJFZERTQSJ9.e30.AAAA")
        .send()
        .await
        .expect("forged");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Sarah acts as Acme Co through the gateway, with a scope for settings.
    let s = d.app.service();
    let sarah = common::staff(s, "sarah@northwind.example").await;
    let lee = common::staff(s, "lee@northwind.example").await;
    let request = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Customer asked to correct the VAT rate on invoices".into(),
                capabilities: vec!["edit_settings".into(), "edit_profile".into()],
                minutes: Some(15),
                mode: Some("live".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    s.approve_request(
        &lee,
        request.id,
        Approval {
            capabilities: Some(vec!["edit_settings".into()]),
            ..Approval::default()
        },
    )
    .await
    .expect("the lead narrows and approves");
    let (session, token) = s
        .start_session(&sarah, request.id, Timestamp::now())
        .await
        .expect("start");
    let gateway = format!("http://{}", d.app.gateway_addr().expect("gateway"));
    let entered = http
        .get(format!("{gateway}/__actas/enter?token={}", token.expose()))
        .send()
        .await
        .expect("enter");
    let gw = entered.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let page = |path: &str| {
        http.get(format!("{gateway}{path}"))
            .header("cookie", &gw)
            .header("accept", "text/html")
            .send()
    };
    for path in [
        "/",
        "/profile",
        "/address",
        "/settings",
        "/loans",
        "/payments",
        "/documents",
        "/agreement",
        "/security",
    ] {
        let r = page(path).await.expect("page");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let html = r.text().await.expect("text");
        assert!(html.contains("id=\"actas-banner\""), "banner on {path}");
        assert!(
            html.contains("Acme Co") && html.contains("Sarah Lee"),
            "{path}"
        );
        for secret in [
            "4111 1111 1111 4243",
            "4111111111114243",
            "QQ 01 07 13 C",
            "pt_live_acme",
            "acme-rc-",
            "sarah@acme.com",
        ] {
            assert!(!html.contains(secret), "{secret} leaked on {path}");
        }
    }
    assert!(
        page("/payments")
            .await
            .expect("payments")
            .text()
            .await
            .expect("text")
            .contains("•••• 4243")
    );
    let json = http
        .get(format!("{gateway}/api/summary"))
        .header("cookie", &gw)
        .send()
        .await
        .expect("summary")
        .text()
        .await
        .expect("text");
    assert!(
        !json.contains("4111111111114243") && !json.contains("QQ 01"),
        "{json}"
    );

    // Out of scope, forbidden, exports and the customer's own pages are refused.
    let post = |path: &str, form: &[(&str, &str)]| {
        http.post(format!("{gateway}{path}"))
            .header("cookie", &gw)
            .form(form)
            .send()
    };
    for (path, form) in [
        ("/profile", &[("phone", "+44 1")][..]),
        ("/payments", &[("amount", "100")][..]),
        ("/agreement/sign", &[("agree", "yes")][..]),
    ] {
        let r = post(path, form).await.expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            r.text()
                .await
                .expect("text")
                .contains("id=\"actas-banner\""),
            "the refusal carries the banner"
        );
    }
    assert_eq!(
        page("/transactions/export.csv")
            .await
            .expect("csv")
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        page("/access").await.expect("access").status(),
        StatusCode::FORBIDDEN
    );

    // An in-scope change goes through and reads in plain language with from and to.
    let r = post("/settings/tax", &[("tax_rate", "10%")])
        .await
        .expect("tax");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().get("actas-audit").is_none());
    let timeline = s
        .store()
        .events(
            &actas_store::EventFilter {
                session: Some(session.info().id),
                ..Default::default()
            },
            0,
            1000,
        )
        .await
        .expect("events");
    let sentences: Vec<&str> = timeline.iter().map(|e| e.body.summary.as_str()).collect();
    assert!(
        sentences.contains(&"Sarah Lee, acting as Acme Co, changed the tax rate from 20% to 10%"),
        "{sentences:?}"
    );
    s.end_session_by(&sarah, session.info().id)
        .await
        .expect("end");
    assert_eq!(
        page("/").await.expect("after").status(),
        StatusCode::FORBIDDEN,
        "nothing after the end"
    );

    // The customer sees it all under Account access and gets a verifiable extract.
    let access = http
        .get(format!("{portal}/access"))
        .header("cookie", &acme)
        .send()
        .await
        .expect("access")
        .text()
        .await
        .expect("text");
    for expected in [
        "Sarah Lee",
        "#4821",
        "Customer asked to correct the VAT rate on invoices",
        "the tax rate from 20% to 10%",
    ] {
        assert!(access.contains(expected), "{expected} missing: {access}");
    }
    let extract = http
        .get(format!("{portal}/access/extract"))
        .header("cookie", &acme)
        .send()
        .await
        .expect("extract")
        .text()
        .await
        .expect("text");
    actas_core::extract::verify_extract(&extract, None).expect("the extract holds");

    // What the customer does is reported to actas in plain language.
    let r = http
        .post(format!("{portal}/agreement/sign"))
        .header("cookie", &acme)
        .form(&[("agree", "yes")])
        .send()
        .await
        .expect("sign");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let events = s
        .store()
        .events(
            &actas_store::EventFilter {
                kind: Some("customer.activity".into()),
                ..Default::default()
            },
            0,
            100,
        )
        .await
        .expect("events");
    let said: Vec<&str> = events.iter().map(|e| e.body.summary.as_str()).collect();
    assert!(said.contains(&"Acme Co signed in"), "{said:?}");
    assert!(
        said.contains(&"Acme Co signed the loan agreement LA-71"),
        "{said:?}"
    );
    d.stop().await.expect("stop");
}

#[tokio::test]
async fn the_sensitive_customer_gives_a_code_and_the_revoked_one_gets_no_session() {
    let d = demo().await;
    let s = d.app.service();
    let sarah = common::staff(s, "sarah@northwind.example").await;
    let lee = common::staff(s, "lee@northwind.example").await;
    let input = |account: &str| RequestInput {
        account: account.into(),
        ticket: "#77".into(),
        reason: "Customer cannot see their latest statement".into(),
        capabilities: vec![],
        minutes: None,
        mode: Some("read-only".into()),
        for_session: None,
    };
    let err = s
        .create_request(&sarah, input("initech"))
        .await
        .expect_err("revoked");
    assert!(err.to_string().contains("revoked consent"), "{err}");

    let request = s
        .create_request(&sarah, input("globex"))
        .await
        .expect("request");
    s.approve_request(&lee, request.id, Approval::default())
        .await
        .expect("approve");
    assert!(
        s.start_session(&sarah, request.id, Timestamp::now())
            .await
            .is_err(),
        "no session without the customer's code"
    );
    let globex = customer(&d, "globex").await;
    let page = client()
        .post(format!("http://{}/access/code", d.portal_addr))
        .header("cookie", &globex)
        .send()
        .await
        .expect("code")
        .text()
        .await
        .expect("text");
    let code = page
        .split("id=\"code\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the page shows the code")
        .to_owned();
    s.enter_code(&sarah, request.id, &code)
        .await
        .expect("the code works");
    s.start_session(&sarah, request.id, Timestamp::now())
        .await
        .expect("start");
    d.stop().await.expect("stop");
}

#[tokio::test]
async fn the_portal_takes_only_fresh_assertions_for_itself_signed_by_actas() {
    use actas_core::ids::{AccountId, SessionId};
    use actas_core::policy::Policy;
    use actas_core::staff::{DisplayName, StaffRef};
    use actas_core::text::TicketRef;
    use actas_server::assertion::{AssertionSigner, Subject};
    let d = demo().await;
    let seed = std::fs::read(d.data.join("assertion.key")).expect("the demo's assertion key");
    let policy = Policy::starter();
    let account = AccountId::parse("acme").expect("id");
    let staff = StaffRef {
        id: actas_core::ids::StaffId::new(3).expect("id"),
        email: Email::parse("sarah@northwind.example").expect("email"),
        name: DisplayName::parse("Sarah Lee").expect("name"),
    };
    let scope = policy.scope(["view"]).expect("scope");
    let ticket = TicketRef::parse("#1", &policy.ticket_pattern).expect("ticket");
    let subject = Subject {
        session: SessionId::random(),
        account: &account,
        staff: &staff,
        scope: &scope,
        mode: actas_core::scope::Mode::ReadOnly,
        ticket: &ticket,
    };
    let issuer = "actas";
    let ask = |token: String| {
        let portal = d.portal_addr;
        async move {
            client()
                .get(format!("http://{portal}/loans"))
                .header("actas-assertion", token)
                .send()
                .await
                .expect("portal")
                .status()
        }
    };
    let right = AssertionSigner::new(&seed, issuer, actas_server::demo::AUDIENCE).expect("signer");
    assert_eq!(
        ask(right.sign(&subject, Timestamp::now()).expect("sign")).await,
        StatusCode::OK,
        "a fresh assertion from actas for this portal"
    );
    let elsewhere = AssertionSigner::new(&seed, issuer, "another-product").expect("signer");
    assert_eq!(
        ask(elsewhere.sign(&subject, Timestamp::now()).expect("sign")).await,
        StatusCode::UNAUTHORIZED,
        "an assertion for another product"
    );
    let two_minutes_ago = Timestamp::from_millis(Timestamp::now().as_millis() - 120_000);
    assert_eq!(
        ask(right.sign(&subject, two_minutes_ago).expect("sign")).await,
        StatusCode::UNAUTHORIZED,
        "an expired assertion"
    );
    let stranger =
        AssertionSigner::new(&[7; 32], issuer, actas_server::demo::AUDIENCE).expect("signer");
    assert_eq!(
        ask(stranger.sign(&subject, Timestamp::now()).expect("sign")).await,
        StatusCode::UNAUTHORIZED,
        "an assertion signed by a key actas does not publish"
    );
    d.stop().await.expect("stop");
}
