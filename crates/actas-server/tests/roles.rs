//! Who sees what: every page and read endpoint, asked as every role, over real HTTP.
//! The console and the API take their answers from the same service queries, so the
//! table is one table.

mod common;

use actas_core::scope::Risk;
use common::Person;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The people asked, in the table's column order.
const PEOPLE: [&str; 5] = [
    "sarah@example.com",  // an agent on the allow-list, with a live session
    "ola@example.com",    // an agent off the allow-list
    "lee@example.com",    // a lead
    "dana@example.com",   // a director
    "audrey@example.com", // an auditor
];

const OK: u16 = 200;
const NO: u16 = 403;

#[tokio::test]
async fn every_page_and_read_answers_each_role_as_the_table_says() {
    let (_dir, app) = common::serve().await;
    let s = app.service();
    common::team(s, Risk::High).await;
    let base = format!("http://{}", app.console_addr());
    let mut people = Vec::new();
    for email in PEOPLE {
        people.push(Person::sign_in(&base, email).await);
    }
    let (sarah, lee) = (&people[0], &people[2]);

    // Sarah asks, Lee approves, Sarah starts: a request and a live session to ask about.
    let r = sarah
        .post(
            "/api/v1/requests",
            json!({ "account": "acme", "ticket": "#4821", "reason": "Check the invoice tax rate", "capabilities": ["edit_settings"] }),
        )
        .await;
    let request = r["id"].as_str().expect("id").to_owned();
    lee.post(&format!("/api/v1/requests/{request}/approve"), json!({}))
        .await;
    let started = sarah
        .post("/api/v1/sessions", json!({ "request": request }))
        .await;
    let session = started["id"].as_str().expect("session id").to_owned();
    // A second request, pending, so the queue has something in it.
    sarah
        .post(
            "/api/v1/requests",
            json!({ "account": "acme", "ticket": "#4822", "reason": "Look at the payment history", "capabilities": ["edit_settings"] }),
        )
        .await;

    let table: Vec<(String, [u16; 5])> = vec![
        // The console.
        ("/".into(), [OK, OK, OK, OK, OK]),
        ("/accounts".into(), [OK, OK, OK, OK, OK]),
        ("/accounts/acme".into(), [OK, OK, OK, OK, OK]),
        ("/accounts/acme/audit".into(), [NO, NO, OK, OK, OK]),
        (format!("/requests/{request}"), [OK, NO, OK, OK, OK]),
        ("/queue".into(), [NO, NO, OK, OK, NO]),
        ("/session".into(), [OK, OK, OK, OK, OK]),
        (format!("/sessions/{session}"), [OK, NO, OK, OK, OK]),
        ("/activity".into(), [NO, NO, OK, OK, OK]),
        ("/reviews".into(), [NO, NO, OK, OK, NO]),
        ("/reviews/week".into(), [NO, NO, OK, OK, NO]),
        ("/allow-list".into(), [NO, NO, NO, OK, NO]),
        ("/settings".into(), [OK, OK, OK, OK, OK]),
        // The JSON API.
        ("/api/v1/me".into(), [OK, OK, OK, OK, OK]),
        ("/api/v1/home".into(), [OK, OK, OK, OK, OK]),
        ("/api/v1/accounts".into(), [OK, OK, OK, OK, OK]),
        ("/api/v1/accounts/acme".into(), [OK, OK, OK, OK, OK]),
        (
            "/api/v1/requests?status=pending".into(),
            [NO, NO, OK, OK, NO],
        ),
        (format!("/api/v1/requests/{request}"), [OK, NO, OK, OK, OK]),
        ("/api/v1/sessions".into(), [OK, OK, OK, OK, OK]),
        (format!("/api/v1/sessions/{session}"), [OK, NO, OK, OK, OK]),
        ("/api/v1/allow-list".into(), [NO, NO, NO, OK, NO]),
        ("/api/v1/audit".into(), [NO, NO, OK, OK, OK]),
        ("/api/v1/reviews".into(), [NO, NO, OK, OK, NO]),
        ("/api/v1/reviews/weekly".into(), [NO, NO, OK, OK, NO]),
    ];
    let mut wrong = Vec::new();
    for (path, expected) in &table {
        for (i, person) in people.iter().enumerate() {
            let (got, body) = person.get(path).await;
            if got != expected[i] {
                wrong.push(format!(
                    "{path} as {}: {got}, expected {}",
                    PEOPLE[i], expected[i]
                ));
            }
            if got == NO && !path.starts_with("/api/") {
                // Refusals say why in words, and lead somewhere.
                assert!(!body.contains(">Forbidden<"), "{path}: {body}");
                assert!(
                    body.contains("href=\"/\""),
                    "{path} has no way back: {body}"
                );
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Who gets what, not only whether: each agent sees their own standing and session.
    let (_, me) = people[0].get("/api/v1/accounts/acme").await;
    assert!(me.contains("\"can_act_as\":true"), "{me}");
    let (_, me) = people[1].get("/api/v1/accounts/acme").await;
    assert!(me.contains("\"can_act_as\":false"), "{me}");
    let (_, mine) = people[0].get("/api/v1/sessions").await;
    assert!(mine.contains(&session), "{mine}");
    let (_, theirs) = people[1].get("/api/v1/sessions").await;
    assert!(theirs.contains("\"session\":null"), "{theirs}");
    // Each home holds what the role has waiting, and nothing of another role's.
    let mut sections = Vec::new();
    for person in &people {
        let (_, home) = person.get("/api/v1/home").await;
        let home: Value = serde_json::from_str(&home).expect("json");
        let has = |k: &str| !home[k].is_null();
        sections.push([
            has("queue"),
            has("awaiting_code"),
            has("grants"),
            has("ledger"),
            has("recent"),
        ]);
    }
    assert_eq!(
        sections,
        vec![
            [false, false, false, false, false],
            [false, false, false, false, false],
            [true, true, false, true, true],
            [true, true, true, true, true],
            [false, false, false, true, true],
        ],
        "queue, awaiting code, grants, ledger, recent for sarah, ola, lee, dana, audrey"
    );
    let (_, home) = people[0].get("/api/v1/home").await;
    let home: Value = serde_json::from_str(&home).expect("json");
    assert_eq!(home["requests"].as_array().map(Vec::len), Some(2), "{home}");
    assert_eq!(
        home["session"]["id"].as_str(),
        Some(session.as_str()),
        "{home}"
    );
    let (_, home) = people[2].get("/api/v1/home").await;
    let home: Value = serde_json::from_str(&home).expect("json");
    assert_eq!(home["queue"].as_array().map(Vec::len), Some(1), "{home}");

    // A new way into the running session, for its own staff member only: the same
    // session, a new single-use token, on the record; nobody without one gets any.
    let again = sarah.post("/api/v1/sessions/handoff", json!({})).await;
    assert_eq!(again["id"].as_str(), Some(session.as_str()), "{again}");
    assert_ne!(again["handoff"]["token"], started["handoff"]["token"]);
    let r = people[1]
        .http
        .post(format!("{base}/api/v1/sessions/handoff"))
        .header("cookie", &people[1].cookie)
        .header("x-csrf-token", &people[1].csrf)
        .header("origin", &base)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let (_, timeline) = people[4].get(&format!("/api/v1/sessions/{session}")).await;
    assert!(
        timeline.contains("was given a new link into their running session"),
        "{timeline}"
    );

    // Menus offer exactly what opens: an agent is not sent to a log they can't read.
    let (_, page) = people[0].get("/accounts/acme").await;
    assert!(!page.contains("/accounts/acme/audit"), "{page}");
    assert!(!page.contains("href=\"/activity\""), "{page}");
    let (_, page) = people[4].get("/accounts/acme").await;
    assert!(page.contains("/accounts/acme/audit"), "{page}");
}

#[tokio::test]
async fn a_director_confirms_a_grant_over_the_api_and_only_a_director_can() {
    let (_dir, app) = common::serve().await;
    common::team(app.service(), Risk::Medium).await;
    let base = format!("http://{}", app.console_addr());
    let dana = Person::sign_in(&base, "dana@example.com").await;
    let (s, list) = dana.get("/api/v1/allow-list").await;
    assert_eq!(s, OK);
    let list: Value = serde_json::from_str(&list).expect("json");
    let sarah = &list["allow_list"][0];
    assert_eq!(sarah["email"], "sarah@example.com");
    assert_eq!(sarah["suspended"], false);
    assert!(sarah["review_due"].as_str().is_some(), "{sarah}");
    let done = dana
        .post(
            "/api/v1/allow-list/confirm",
            json!({ "email": "sarah@example.com", "reason": "Still on the billing rota" }),
        )
        .await;
    assert_eq!(done["confirmed"], true);
    // A lead can't.
    let lee = Person::sign_in(&base, "lee@example.com").await;
    let r = lee
        .http
        .post(format!("{base}/api/v1/allow-list/confirm"))
        .header("cookie", &lee.cookie)
        .header("x-csrf-token", &lee.csrf)
        .header("origin", &base)
        .json(&json!({ "email": "sarah@example.com", "reason": "x" }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), NO);
    let log = app
        .service()
        .store()
        .events(
            &actas_store::EventFilter {
                kind: Some("allow.confirmed".into()),
                ..Default::default()
            },
            0,
            10,
        )
        .await
        .expect("events");
    assert_eq!(log.len(), 1, "one confirmation, the director's");
}
