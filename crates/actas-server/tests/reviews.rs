//! The weekly review over real HTTP: ended sessions wait for a lead, flagged ones first;
//! quiet ones only when sampled; a verdict is a ledger event on the session's timeline;
//! nobody reviews their own session or a running one; overdue reviews are shown and in
//! `/metrics`; the weekly summary counts each agent's week and the failures that piled up.

mod common;

use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::SessionId;
use actas_core::scope::Risk;
use actas_core::session::EndReason;
use actas_store::{Change, Unit};
use common::Person;
use serde_json::{Value, json};
use std::time::Duration;

/// Sarah asks for `capabilities` on acme for `ticket`, Lee approves, Sarah starts.
async fn session(sarah: &Person, lee: &Person, ticket: &str, capabilities: Value) -> String {
    let r = sarah
        .post(
            "/api/v1/requests",
            json!({ "account": "acme", "ticket": ticket, "reason": "Check the invoice tax rate", "capabilities": capabilities }),
        )
        .await;
    let id = r["id"].as_str().expect("id").to_owned();
    if r["status"] == "pending" {
        lee.post(&format!("/api/v1/requests/{id}/approve"), json!({}))
            .await;
    }
    let started = sarah
        .post("/api/v1/sessions", json!({ "request": id }))
        .await;
    started["id"].as_str().expect("session id").to_owned()
}

#[tokio::test]
async fn a_lead_reviews_flagged_sessions_first_and_nobody_reviews_their_own() {
    let (_dir, app) = common::serve_with_policy(|p| {
        p.replace(
            "sample_unflagged_percent = 10",
            "sample_unflagged_percent = 0",
        )
    })
    .await;
    let s = app.service();
    common::team(s, Risk::High).await;
    common::allow(s, "lee@example.com", Risk::High).await;
    let base = format!("http://{}", app.console_addr());
    let sarah = Person::sign_in(&base, "sarah@example.com").await;
    let lee = Person::sign_in(&base, "lee@example.com").await;
    let dana = Person::sign_in(&base, "dana@example.com").await;
    let ola = Person::sign_in(&base, "ola@example.com").await;

    // A quiet session: looked, changed nothing.
    let quiet = session(&sarah, &lee, "#1001", json!([])).await;
    sarah
        .post(&format!("/api/v1/sessions/{quiet}/end"), json!({}))
        .await;

    // A running session is not reviewed yet.
    let busy = session(&sarah, &lee, "#1002", json!(["edit_settings"])).await;
    let (status, body) = lee
        .try_post(
            &format!("/api/v1/sessions/{busy}/review"),
            json!({ "outcome": "fine" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("still running"), "{body}");

    // It changed something and had something blocked, as the gateway records them.
    let busy_id = SessionId::parse(&busy).expect("id");
    let acme = s.account(&"acme".parse().expect("id")).await.expect("acme");
    let ticket = s
        .store()
        .session(busy_id)
        .await
        .expect("read")
        .expect("session");
    let ticket = s
        .request(ticket.info().request)
        .await
        .expect("request")
        .ticket;
    let sarah_ref = common::staff(s, "sarah@example.com").await.to_ref();
    for data in [
        EventData::ActionTaken {
            session: busy_id,
            account: acme.to_ref(),
            ticket: ticket.clone(),
            description: "changed the tax settings".into(),
            changes: vec![],
            status: Some(200),
            path: Some("/settings/tax".into()),
        },
        EventData::ActionBlocked {
            session: busy_id,
            account: acme.to_ref(),
            ticket: ticket.clone(),
            method: "GET".into(),
            path: "/transactions/export.csv".into(),
            capability: None,
            why: "Exports are not part of this session".into(),
        },
    ] {
        s.store()
            .append(NewEvent::new(Actor::Staff(sarah_ref.clone()), data))
            .await
            .expect("append");
    }
    sarah
        .post(
            &format!("/api/v1/sessions/{busy}/end"),
            json!({ "note": "Fixed the tax rate" }),
        )
        .await;

    // Lee's own session, on an account now flagged sensitive.
    let leeds = {
        let r = lee
            .post(
                "/api/v1/requests",
                json!({ "account": "acme", "ticket": "#1003", "reason": "Look at the payment history", "capabilities": [] }),
            )
            .await;
        let id = r["id"].as_str().expect("id").to_owned();
        let started = lee.post("/api/v1/sessions", json!({ "request": id })).await;
        started["id"].as_str().expect("id").to_owned()
    };
    lee.post(&format!("/api/v1/sessions/{leeds}/end"), json!({}))
        .await;
    // Before the account is sensitive, the quiet session is not in the queue (sample 0).
    let (_, q) = lee.get("/api/v1/reviews").await;
    assert!(q.contains(&busy) && !q.contains(&quiet), "{q}");
    s.put_account("acme", "Acme Co", &["sensitive".to_owned()], Actor::System)
        .await
        .expect("flag");

    // The queue: flagged first; the quiet one is not sampled; Lee's own is marked.
    let (status, q) = lee.get("/api/v1/reviews").await;
    assert_eq!(status, 200, "{q}");
    let q: Value = serde_json::from_str(&q).expect("json");
    let waiting: Vec<&str> = q["waiting"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["session"].as_str().expect("id"))
        .collect();
    // Every session is on a sensitive account now, so the quiet one is flagged too; the
    // one with changes and blocks is first (due earliest among the flagged).
    assert!(waiting.contains(&busy.as_str()), "{q}");
    let busy_item = q["waiting"]
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["session"] == busy.as_str())
        .expect("busy");
    assert_eq!(
        busy_item["why"],
        json!(["1 change", "1 blocked attempt", "a sensitive account"]),
        "{busy_item}"
    );
    assert_eq!(busy_item["overdue"], false);
    let own = q["waiting"]
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["session"] == leeds.as_str())
        .expect("lee's own");
    assert_eq!(own["own"], true);

    // Agents and auditors don't review.
    let (status, _) = sarah.get("/api/v1/reviews").await;
    assert_eq!(status, 403);
    let (status, _) = ola
        .try_post(
            &format!("/api/v1/sessions/{busy}/review"),
            json!({ "outcome": "fine" }),
        )
        .await;
    assert_eq!(status, 403);

    // Bad verdicts say which field and why; nothing is written.
    let before = s.store().ledger_size().await.expect("size");
    for (body, field) in [
        (json!({ "outcome": "ok" }), "outcome"),
        (json!({ "outcome": "follow_up" }), "note"),
        (json!({ "outcome": "fine", "extra": 1 }), "extra"),
    ] {
        let (status, answer) = lee
            .try_post(&format!("/api/v1/sessions/{busy}/review"), body.clone())
            .await;
        assert!(status == 400 || status == 422, "{body}: {status} {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    // Nobody reviews their own session.
    let (status, answer) = lee
        .try_post(
            &format!("/api/v1/sessions/{leeds}/review"),
            json!({ "outcome": "fine" }),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("own session"), "{answer}");
    assert_eq!(s.store().ledger_size().await.expect("size"), before);

    // Lee's verdict is a ledger event on the session's timeline, in words.
    let (status, _) = lee
        .try_post(
            &format!("/api/v1/sessions/{busy}/review"),
            json!({ "outcome": "follow_up", "note": "Ask Sarah why the export was tried" }),
        )
        .await;
    assert_eq!(status, 201);
    let (_, timeline) = lee.get(&format!("/api/v1/sessions/{busy}")).await;
    assert!(
        timeline.contains("Lee Chen reviewed Sarah Lee's session on Acme Co for ticket #1002: needs follow-up: “Ask Sarah why the export was tried”"),
        "{timeline}"
    );
    // ... not in the customer's history: it is staff oversight.
    let acme = "acme".parse().expect("id");
    let seqs = s
        .store()
        .account_event_seqs(&acme, u64::MAX)
        .await
        .expect("events");
    let audit = s
        .store()
        .account_event_texts(&acme, &seqs)
        .await
        .expect("events");
    assert!(audit.iter().all(|(_, t)| !t.contains("session.reviewed")));
    // Dana reviews Lee's own session.
    dana.post(
        &format!("/api/v1/sessions/{leeds}/review"),
        json!({ "outcome": "fine" }),
    )
    .await;
    let (_, q) = lee.get("/api/v1/reviews").await;
    let q: Value = serde_json::from_str(&q).expect("json");
    let reviewed: Vec<&str> = q["reviewed"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["session"].as_str().expect("id"))
        .collect();
    assert!(reviewed.contains(&leeds.as_str()), "{q}");
    // A follow-up stays open until another review finds the session fine.
    let open: Vec<&str> = q["follow_ups"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["session"].as_str().expect("id"))
        .collect();
    assert_eq!(open, vec![busy.as_str()], "{q}");
    assert!(
        q["waiting"]
            .as_array()
            .expect("list")
            .iter()
            .all(|i| i["session"] != busy.as_str()),
        "{q}"
    );

    // The console shows the same queue and the verdict form, for leads only.
    let (status, page) = lee.get("/reviews").await;
    assert_eq!(status, 200);
    assert!(page.contains("Sessions to review"), "{page}");
    assert!(page.contains("Waiting for a follow-up"), "{page}");
    // Dana follows up and finds it fine: it leaves the follow-ups.
    dana.post(
        &format!("/api/v1/sessions/{busy}/review"),
        json!({ "outcome": "fine", "note": "Sarah explained: the customer asked for it" }),
    )
    .await;
    let (_, q) = lee.get("/api/v1/reviews").await;
    let q: Value = serde_json::from_str(&q).expect("json");
    assert_eq!(q["follow_ups"], json!([]), "{q}");
    let (_, page) = lee.get(&format!("/sessions/{quiet}")).await;
    assert!(page.contains("Record the review"), "{page}");
    let (_, page) = lee.get(&format!("/sessions/{leeds}")).await;
    assert!(!page.contains("Record the review"), "own session: {page}");
    let (_, page) = dana.get(&format!("/sessions/{quiet}")).await;
    assert!(page.contains("Record the review"), "{page}");
    let (status, _) = sarah.get("/reviews").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn quiet_sessions_are_sampled_by_policy_and_overdue_reviews_are_counted() {
    let (_dir, app) = common::serve_with_policy(|p| {
        p.replace(
            "sample_unflagged_percent = 10",
            "sample_unflagged_percent = 100",
        )
        .replace("within_days = 7", "within_days = 2")
    })
    .await;
    let s = app.service();
    common::team(s, Risk::High).await;
    let base = format!("http://{}", app.console_addr());
    let sarah = Person::sign_in(&base, "sarah@example.com").await;
    let lee = Person::sign_in(&base, "lee@example.com").await;

    // A quiet session, ended three days ago (the reaper's clock, set back by the test).
    let id = session(&sarah, &lee, "#2001", json!([])).await;
    let sid = SessionId::parse(&id).expect("id");
    let three_days_ago = Timestamp::from_millis(
        Timestamp::now().as_millis() - Duration::from_secs(3 * 86_400).as_millis() as i64,
    );
    s.store()
        .commit(Unit::new(
            vec![Change::EndSession {
                id: sid,
                at: three_days_ago,
                reason: EndReason::IdleLimit,
            }],
            |_| vec![],
        ))
        .await
        .expect("end");

    let (_, q) = lee.get("/api/v1/reviews").await;
    let q: Value = serde_json::from_str(&q).expect("json");
    assert_eq!(q["overdue"], 1, "{q}");
    let item = &q["waiting"][0];
    assert_eq!(item["session"], id.as_str());
    assert_eq!(item["flags"], json!([]), "sampled, not flagged");
    assert_eq!(item["overdue"], true);

    let (_, metrics) = lee.get("/metrics").await;
    assert!(metrics.contains("actas_reviews_overdue 1"), "{metrics}");
    let (_, home) = lee.get("/").await;
    assert!(home.contains("1 overdue"), "{home}");
    let (_, page) = lee.get("/reviews").await;
    assert!(page.contains("1 session is overdue for review"), "{page}");

    lee.post(
        &format!("/api/v1/sessions/{id}/review"),
        json!({ "outcome": "fine", "note": "Looked, changed nothing" }),
    )
    .await;
    let (_, metrics) = lee.get("/metrics").await;
    assert!(metrics.contains("actas_reviews_overdue 0"), "{metrics}");
}

#[tokio::test]
async fn the_weekly_summary_counts_each_agents_week_and_failures_that_piled_up() {
    let (_dir, app) = common::serve().await;
    let s = app.service();
    common::team(s, Risk::High).await;
    let base = format!("http://{}", app.console_addr());
    let sarah = Person::sign_in(&base, "sarah@example.com").await;
    let lee = Person::sign_in(&base, "lee@example.com").await;

    let id = session(&sarah, &lee, "#3001", json!([])).await;
    sarah
        .post(&format!("/api/v1/sessions/{id}/end"), json!({}))
        .await;
    // Ola guesses at a password four times; a request of Sarah's is denied.
    let http = reqwest::Client::new();
    for _ in 0..4 {
        let r = http
            .post(format!("{base}/api/v1/sign-in"))
            .json(&json!({ "email": "ola@example.com", "password": "not-the-password" }))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
    }
    let r = sarah
        .post(
            "/api/v1/requests",
            json!({ "account": "acme", "ticket": "#3002", "reason": "Look at the payment history", "capabilities": ["edit_settings"] }),
        )
        .await;
    let rid = r["id"].as_str().expect("id");
    lee.post(
        &format!("/api/v1/requests/{rid}/deny"),
        json!({ "note": "Not needed for this ticket" }),
    )
    .await;

    let (status, w) = lee.get("/api/v1/reviews/weekly").await;
    assert_eq!(status, 200, "{w}");
    let w: Value = serde_json::from_str(&w).expect("json");
    let person = |name: &str| {
        w["people"]
            .as_array()
            .expect("people")
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {w}"))
    };
    let sarah_week = person("Sarah Lee");
    assert_eq!(sarah_week["sessions"], 1);
    assert_eq!(sarah_week["denied"], 1);
    let ola_week = person("Ola Nowak");
    assert_eq!(ola_week["failed_sign_ins"], 4);
    assert_eq!(ola_week["repeated_failures"], json!(["4 wrong passwords"]));
    assert_eq!(w["team"]["sessions"], 1);
    assert_eq!(w["incomplete"], false);
    assert_eq!(w["team"]["failed_sign_ins"], 4);

    let (_, page) = lee.get("/reviews/week").await;
    assert!(page.contains("Ola Nowak: 4 wrong passwords"), "{page}");
    // Last week was empty; a bad date says how to write one.
    let (_, page) = lee.get("/reviews/week?week=2020-01-06").await;
    assert!(page.contains("Nothing happened this week"), "{page}");
    let (status, page) = lee.get("/reviews/week?week=last-week").await;
    assert_eq!(status, 400);
    assert!(page.contains("2026-11-30"), "{page}");
    let (status, body) = lee.get("/api/v1/reviews/weekly?week=soon").await;
    assert_eq!(status, 422);
    assert!(body.contains("\"field\":\"week\""), "{body}");
    let (status, _) = sarah.get("/api/v1/reviews/weekly").await;
    assert_eq!(status, 403);
}
