//! The staff-side flow through the service layer on a real SQLite file: requests,
//! approvals, confirmation codes, sessions, the reaper and the hand-off.

mod common;

use actas_core::Timestamp;
use actas_core::account::Consent;
use actas_core::event::Actor;
use actas_core::policy::Policy;
use actas_core::request::RequestStatus;
use actas_core::scope::Risk;
use actas_core::session::{EndReason, Session};
use actas_core::staff::{DisplayName, Email, Role};
use actas_core::tree_head::LedgerKey;
use actas_server::password::Password;
use actas_server::service::{AllowChange, Approval, RequestInput, Service, ServiceError};
use actas_store::{Change, EventFilter, StaffRecord, Store, Unit};
use std::sync::Arc;
use std::time::Duration;

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    service: Service,
    lead: StaffRecord,
    agent: StaffRecord,
    junior: StaffRecord,
    outsider: StaffRecord,
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tmp");
    let key = LedgerKey::from_bytes(&[8; 32]).expect("key");
    let store = common::fresh_store(dir.path(), key).await;
    let service = Service::new(store.clone(), Arc::new(Policy::starter()));
    let pw = || Password::new("a-long-password".into()).expect("pw");
    let add = |e: &'static str, n: &'static str, r: Role| {
        let service = service.clone();
        async move {
            service
                .add_staff(email(e), DisplayName::parse(n).expect("n"), r, pw(), None)
                .await
                .expect("add");
            service
                .store()
                .staff_by_email(&email(e))
                .await
                .expect("read")
                .expect("exists")
        }
    };
    add("dana@example.com", "Dana Park", Role::Director).await;
    let lead = add("lee@example.com", "Lee Chen", Role::Lead).await;
    let agent = add("sarah@example.com", "Sarah Lee", Role::Agent).await;
    let junior = add("omar@example.com", "Omar Haddad", Role::Agent).await;
    let outsider = add("ola@example.com", "Ola Nowak", Role::Agent).await;
    for (who, risk) in [
        ("sarah@example.com", Risk::High),
        ("omar@example.com", Risk::Low),
    ] {
        service
            .change_allow_list(
                &email(who),
                AllowChange::Grant(risk),
                &email("dana@example.com"),
                "On the billing support rota",
            )
            .await
            .expect("grant");
    }
    service
        .put_account("acme", "Acme Co", &[], Actor::System)
        .await
        .expect("acme");
    service
        .put_account("vault", "Vault Ltd", &["sensitive".into()], Actor::System)
        .await
        .expect("vault");
    service
        .put_account("shy", "Shy Inc", &[], Actor::System)
        .await
        .expect("shy");
    set_consent(&*store, "shy", "Shy Inc", Consent::CodeRequired).await;
    World {
        _dir: dir,
        store,
        service,
        lead,
        agent,
        junior,
        outsider,
    }
}

async fn set_consent(store: &dyn Store, id: &str, name: &str, consent: Consent) {
    let account = actas_core::account::AccountRef {
        id: actas_core::ids::AccountId::parse(id).expect("id"),
        name: DisplayName::parse(name).expect("name"),
    };
    store
        .commit(Unit::new(
            vec![
                Change::PutAccount {
                    id: account.id.clone(),
                    name: account.name.clone(),
                    flags: vec![],
                },
                Change::SetConsent {
                    account: account.id.clone(),
                    consent,
                },
            ],
            move |_| {
                vec![actas_core::event::NewEvent::new(
                    Actor::Customer(account.clone()),
                    actas_core::event::EventData::ConsentChanged {
                        account,
                        consent,
                        via: None,
                    },
                )]
            },
        ))
        .await
        .expect("consent");
}

fn ask(account: &str, caps: &[&str]) -> RequestInput {
    RequestInput {
        account: account.into(),
        ticket: "#4821".into(),
        reason: "Check invoice tax rate after plan change".into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        minutes: None,
        mode: None,
        for_session: None,
    }
}

async fn summaries(store: &dyn Store) -> Vec<String> {
    store
        .events(&EventFilter::default(), 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.body.summary)
        .collect()
}

#[tokio::test]
async fn staff_off_the_allow_list_cannot_create_a_request() {
    let w = world().await;
    let err = w
        .service
        .create_request(&w.outsider, ask("acme", &[]))
        .await
        .expect_err("off the list");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    assert!(err.to_string().contains("not on the allow-list"));
    let err = w
        .service
        .create_request(&w.junior, ask("acme", &["edit_settings"]))
        .await
        .expect_err("above level");
    assert_eq!(
        err.to_string(),
        "this scope is medium risk, and you are allowed up to low risk"
    );
    assert!(
        w.store.pending_requests().await.expect("read").is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn bad_request_input_names_the_field_and_writes_nothing() {
    let w = world().await;
    let before = w.store.ledger_size().await.expect("size");
    let cases: Vec<(RequestInput, &str)> = vec![
        (
            RequestInput {
                reason: "need access".into(),
                ..ask("acme", &[])
            },
            "reason",
        ),
        (
            RequestInput {
                ticket: "4821".into(),
                ..ask("acme", &[])
            },
            "ticket",
        ),
        (
            RequestInput {
                account: "nobody".into(),
                ..ask("acme", &[])
            },
            "account",
        ),
        (ask("acme", &["fly"]), "capabilities"),
        (ask("acme", &["payments"]), "capabilities"),
        (
            RequestInput {
                minutes: Some(90),
                ..ask("acme", &[])
            },
            "minutes",
        ),
        (
            RequestInput {
                mode: Some("sideways".into()),
                ..ask("acme", &[])
            },
            "mode",
        ),
    ];
    for (input, field) in cases {
        match w.service.create_request(&w.agent, input).await {
            Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected an error on {field}, got {other:?}"),
        }
    }
    assert_eq!(w.store.ledger_size().await.expect("size"), before);
}

#[tokio::test]
async fn the_whole_flow_with_a_narrowing_lead_and_a_requester_who_cannot_approve_themselves() {
    let w = world().await;
    let r = w
        .service
        .create_request(&w.agent, ask("acme", &["edit_settings", "edit_profile"]))
        .await
        .expect("create");
    assert_eq!(r.status, RequestStatus::Pending);

    // Invariant 8: the requester cannot approve their own request, even as a lead would.
    let mut self_lead = w.agent.clone();
    self_lead.role = Role::Lead;
    let err = w
        .service
        .approve_request(&self_lead, r.id, Approval::default())
        .await
        .expect_err("own");
    assert!(
        err.to_string().contains("can't decide on your own request"),
        "{err}"
    );
    let err = w
        .service
        .approve_request(&w.junior, r.id, Approval::default())
        .await
        .expect_err("agent");
    assert!(matches!(err, ServiceError::Forbidden(_)));

    let approved = w
        .service
        .approve_request(
            &w.lead,
            r.id,
            Approval {
                capabilities: Some(vec!["edit_settings".into()]),
                minutes: Some(10),
                note: Some("Settings only".into()),
            },
        )
        .await
        .expect("approve");
    assert_eq!(approved.scope.joined(), "edit_settings, view");
    assert_eq!(approved.duration.minutes(), 10);

    // Re-authentication: a sign-in older than the policy allows is refused.
    let stale = Timestamp::now().plus(Duration::ZERO);
    let long_ago = Timestamp::from_millis(stale.as_millis() - 10 * 60_000);
    let err = w
        .service
        .start_session(&w.agent, r.id, long_ago)
        .await
        .expect_err("stale sign-in");
    assert!(
        err.to_string()
            .contains("confirm it is you again with your password"),
        "{err}"
    );

    let (session, token) = w
        .service
        .start_session(&w.agent, r.id, Timestamp::now())
        .await
        .expect("start");
    // Invariant 2: by the time a session is handed out, its start is in the ledger.
    let started = w
        .store
        .events(
            &EventFilter {
                kind: Some("session.started".into()),
                ..EventFilter::default()
            },
            0,
            10,
        )
        .await
        .expect("events");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].body.session, Some(session.info().id));

    // Invariant 4: one session at a time; a used request can't start another.
    let r2 = w
        .service
        .create_request(&w.agent, ask("acme", &[]))
        .await
        .expect("auto-approved");
    let err = w
        .service
        .start_session(&w.agent, r2.id, Timestamp::now())
        .await
        .expect_err("nested");
    assert!(
        err.to_string()
            .contains("already have an active support session"),
        "{err}"
    );
    let err = w
        .service
        .start_session(&w.agent, r.id, Timestamp::now())
        .await
        .expect_err("reused");
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");

    // The hand-off works once.
    let s = w
        .service
        .redeem_handoff(token.expose())
        .await
        .expect("redeem");
    assert_eq!(s.info().id, session.info().id);
    assert!(
        w.service.redeem_handoff(token.expose()).await.is_err(),
        "single use"
    );
    assert!(w.service.redeem_handoff("made-up-token").await.is_err());

    w.service
        .end_session(
            session.info().id,
            EndReason::Manual,
            Actor::Staff(w.agent.to_ref()),
        )
        .await
        .expect("end");
    let err = w
        .service
        .end_session(
            session.info().id,
            EndReason::Manual,
            Actor::Staff(w.agent.to_ref()),
        )
        .await
        .expect_err("twice");
    assert!(matches!(err, ServiceError::Conflict(_)));

    let said = summaries(&*w.store).await;
    for line in [
        "Sarah Lee asked to act as Acme Co for ticket #4821 (edit_profile, edit_settings, view; 15 minutes, read-only): “Check invoice tax rate after plan change”",
        "Lee Chen approved Sarah Lee's request to act as Acme Co for ticket #4821 (edit_settings, view; 10 minutes): “Settings only”",
        "Sarah Lee started a support session on Acme Co for ticket #4821: “Check invoice tax rate after plan change”",
        "Policy approved Sarah Lee's request to act as Acme Co for ticket #4821 (view; 15 minutes): low risk on a normal account",
        "Sarah Lee's session on Acme Co ended: Sarah Lee ended it",
    ] {
        assert!(
            said.iter().any(|s| s == line),
            "missing “{line}” in {said:#?}"
        );
    }
}

#[tokio::test]
async fn a_denied_request_records_its_note_and_cannot_be_used() {
    let w = world().await;
    let r = w
        .service
        .create_request(&w.agent, ask("acme", &["edit_settings"]))
        .await
        .expect("create");
    let err = w
        .service
        .deny_request(&w.lead, r.id, "  ")
        .await
        .expect_err("note needed");
    assert!(matches!(&err, ServiceError::Invalid { field, .. } if field == "note"));
    w.service
        .deny_request(&w.lead, r.id, "Ask the customer for a screenshot first")
        .await
        .expect("deny");
    assert!(
        w.service
            .start_session(&w.agent, r.id, Timestamp::now())
            .await
            .is_err()
    );
    assert!(
        summaries(&*w.store)
            .await
            .iter()
            .any(|s| s.ends_with("for ticket #4821: “Ask the customer for a screenshot first”"))
    );
}

#[tokio::test]
async fn sensitive_and_code_required_accounts_need_the_customers_code_which_works_once() {
    let w = world().await;
    let r = w
        .service
        .create_request(&w.agent, ask("shy", &[]))
        .await
        .expect("create");
    assert_eq!(
        r.status,
        RequestStatus::Approved,
        "low risk, but the customer asked for codes"
    );
    assert!(r.needs_code);
    let err = w
        .service
        .start_session(&w.agent, r.id, Timestamp::now())
        .await
        .expect_err("no code yet");
    assert!(err.to_string().contains("confirmation code"), "{err}");

    let shy = actas_core::ids::AccountId::parse("shy").expect("id");
    let (code, _) = w
        .service
        .issue_code(&shy, Actor::System, None)
        .await
        .expect("code");
    w.service
        .enter_code(&w.agent, r.id, &code.display().to_lowercase())
        .await
        .expect("right code");
    let (session, _) = w
        .service
        .start_session(&w.agent, r.id, Timestamp::now())
        .await
        .expect("start");
    w.service
        .end_session(session.info().id, EndReason::Manual, Actor::System)
        .await
        .expect("end");

    // The same code can't confirm a second request.
    let r2 = w
        .service
        .create_request(&w.agent, ask("shy", &[]))
        .await
        .expect("create");
    let err = w
        .service
        .enter_code(&w.agent, r2.id, &code.display())
        .await
        .expect_err("used");
    assert!(
        matches!(&err, ServiceError::Invalid { field, .. } if field == "code"),
        "{err:?}"
    );

    // Sensitive accounts need a lead and a code.
    let v = w
        .service
        .create_request(&w.agent, ask("vault", &[]))
        .await
        .expect("create");
    assert_eq!((v.status, v.needs_code), (RequestStatus::Pending, true));
}

#[tokio::test]
async fn five_wrong_codes_lock_the_request_even_when_guessed_in_parallel() {
    let w = world().await;
    let r = w
        .service
        .create_request(&w.agent, ask("shy", &[]))
        .await
        .expect("create");
    let shy = actas_core::ids::AccountId::parse("shy").expect("id");
    let (code, _) = w
        .service
        .issue_code(&shy, Actor::System, None)
        .await
        .expect("code");
    let mut tasks = Vec::new();
    for i in 0..12 {
        let service = w.service.clone();
        let agent = w.agent.clone();
        tasks.push(tokio::spawn(async move {
            service
                .enter_code(&agent, r.id, &format!("AAAAA-AAA{:02}", i % 10))
                .await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("task").is_err());
    }
    let locked = w.service.request(r.id).await.expect("read");
    assert!(locked.locked);
    assert_eq!(
        locked.code_failures, 5,
        "no more than five wrong tries were ever counted"
    );
    let err = w
        .service
        .enter_code(&w.agent, r.id, &code.display())
        .await
        .expect_err("locked");
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(
        w.service
            .start_session(&w.agent, r.id, Timestamp::now())
            .await
            .is_err()
    );
    assert!(
        summaries(&*w.store)
            .await
            .iter()
            .any(|s| s.ends_with("for the 5th time; the request is now locked"))
    );
}

#[tokio::test]
async fn the_reaper_ends_idle_and_hard_limited_sessions_once_each_even_run_twice_at_once() {
    let w = world().await;
    let mut ids = Vec::new();
    for agent in [&w.agent, &w.junior] {
        let r = w
            .service
            .create_request(
                agent,
                RequestInput {
                    minutes: Some(30),
                    ..ask("acme", &[])
                },
            )
            .await
            .expect("create");
        let (s, _) = w
            .service
            .start_session(agent, r.id, Timestamp::now())
            .await
            .expect("start");
        ids.push(s.info().id);
    }
    // 20 minutes on, both are idle (limit 15) but within their 30 minutes.
    let later = Timestamp::now().plus(Duration::from_secs(20 * 60));
    let (a, b) = tokio::join!(w.service.reap_at(later), w.service.reap_at(later));
    assert_eq!(
        a.expect("reap") + b.expect("reap"),
        2,
        "each session ended exactly once"
    );
    assert_eq!(w.service.reap_at(later).await.expect("reap"), 0);
    for id in ids {
        match w.store.session(id).await.expect("read") {
            Some(Session::Ended(e)) => assert_eq!(e.reason, EndReason::IdleLimit),
            other => panic!("not ended: {other:?}"),
        }
    }
    let ended: Vec<String> = summaries(&*w.store)
        .await
        .into_iter()
        .filter(|s| s.contains("ended: idle for 15 minutes"))
        .collect();
    assert_eq!(ended.len(), 2, "{ended:#?}");

    let r = w
        .service
        .create_request(&w.agent, ask("acme", &[]))
        .await
        .expect("create");
    let (s, _) = w
        .service
        .start_session(&w.agent, r.id, Timestamp::now())
        .await
        .expect("start");
    // Keep it busy so only the hard limit applies.
    let store = w.store.clone();
    for m in [10u64, 20] {
        store
            .commit(Unit::new(
                vec![Change::TouchSession {
                    id: s.info().id,
                    at: Timestamp::now().plus(Duration::from_secs(m * 60)),
                }],
                |_| vec![],
            ))
            .await
            .expect("touch");
    }
    assert_eq!(
        w.service
            .reap_at(Timestamp::now().plus(Duration::from_secs(25 * 60)))
            .await
            .expect("reap"),
        1
    );
    match w.store.session(s.info().id).await.expect("read") {
        Some(Session::Ended(e)) => assert_eq!(e.reason, EndReason::HardLimit),
        other => panic!("not ended: {other:?}"),
    }
    assert!(
        summaries(&*w.store)
            .await
            .iter()
            .any(|s| s == "Sarah Lee's session on Acme Co ended: it reached its 15-minute limit")
    );
}

#[tokio::test]
async fn revoked_consent_refuses_new_requests_with_a_clear_message() {
    let w = world().await;
    set_consent(&*w.store, "acme", "Acme Co", Consent::Revoked).await;
    let err = w
        .service
        .create_request(&w.agent, ask("acme", &[]))
        .await
        .expect_err("revoked");
    assert!(
        err.to_string().contains("Acme Co has revoked consent"),
        "{err}"
    );
}

#[tokio::test]
async fn a_scope_change_is_a_new_linked_request_that_replaces_the_session_when_started() {
    let w = world().await;
    let r = w
        .service
        .create_request(&w.agent, ask("acme", &[]))
        .await
        .expect("view");
    let (first, _) = w
        .service
        .start_session(&w.agent, r.id, Timestamp::now())
        .await
        .expect("start");
    let change = w
        .service
        .create_request(
            &w.agent,
            RequestInput {
                for_session: Some(first.info().id),
                ..ask("acme", &["edit_settings"])
            },
        )
        .await
        .expect("scope change");
    assert_eq!(change.for_session, Some(first.info().id));
    // Someone else's or a made-up session can't be named.
    let err = w
        .service
        .create_request(
            &w.junior,
            RequestInput {
                for_session: Some(first.info().id),
                ..ask("acme", &[])
            },
        )
        .await
        .expect_err("not theirs");
    assert!(
        matches!(&err, ServiceError::Invalid { field, .. } if field == "for_session"),
        "{err:?}"
    );
    w.service
        .approve_request(&w.lead, change.id, Approval::default())
        .await
        .expect("approve");
    let (second, _) = w
        .service
        .start_session(&w.agent, change.id, Timestamp::now())
        .await
        .expect("replace");
    match w.store.session(first.info().id).await.expect("read") {
        Some(Session::Ended(e)) => assert_eq!(e.reason, EndReason::ScopeChanged),
        other => panic!("the first session should have ended: {other:?}"),
    }
    assert_eq!(
        w.store
            .active_session_of(w.agent.id)
            .await
            .expect("read")
            .map(|s| s.info().id),
        Some(second.info().id)
    );
    let said = summaries(&*w.store).await;
    assert!(said.iter().any(|s| s.starts_with("Sarah Lee asked to change the scope of the session on Acme Co for ticket #4821 to edit_settings, view")), "{said:#?}");
    assert!(said.iter().any(|s| s == "Sarah Lee's session on Acme Co ended: the scope changed, so the work continues in a new session"));
}
