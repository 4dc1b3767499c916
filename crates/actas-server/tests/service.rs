//! The service layer over a real SQLite store.

mod common;

use actas_core::Timestamp;
use actas_core::account::Consent;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{AccountId, SessionId};
use actas_core::policy::Policy;
use actas_core::request::{AccessRequest, NewRequest, RequestStatus};
use actas_core::scope::Mode;
use actas_core::session::{ActiveSession, EndReason, Session};
use actas_core::staff::{DisplayName, Email, Role};
use actas_core::text::{Reason, TicketRef};
use actas_core::tree_head::LedgerKey;
use actas_server::password::Password;
use actas_server::service::{Service, ServiceError};
use actas_store::{Change, EventFilter, Unit};
use std::sync::Arc;

fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

fn pw() -> Password {
    Password::new("a-long-password".into()).expect("password")
}

#[tokio::test]
async fn deactivating_staff_ends_their_active_session_in_the_same_transaction() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = LedgerKey::from_bytes(&[3; 32]).expect("key");
    let store = common::fresh_store(dir.path(), key).await;
    let policy = Arc::new(Policy::starter());
    let service = Service::new(store.clone(), policy.clone());

    service
        .add_staff(
            email("dana@example.com"),
            DisplayName::parse("Dana Park").expect("n"),
            Role::Director,
            pw(),
            None,
        )
        .await
        .expect("director");
    let sarah = service
        .add_staff(
            email("sarah@example.com"),
            DisplayName::parse("Sarah Lee").expect("n"),
            Role::Agent,
            pw(),
            Some(&email("dana@example.com")),
        )
        .await
        .expect("agent");
    let err = service
        .add_staff(
            email("x@example.com"),
            DisplayName::parse("X").expect("n"),
            Role::Agent,
            pw(),
            Some(&email("sarah@example.com")),
        )
        .await
        .expect_err("agents can't add staff");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");

    let acme = AccountId::parse("acme").expect("id");
    let note = NewEvent::new(
        Actor::System,
        EventData::ConsentChanged {
            account: actas_core::account::AccountRef {
                id: acme.clone(),
                name: DisplayName::parse("Acme Co").expect("n"),
            },
            consent: Consent::Allowed,
            via: None,
        },
    );
    store
        .commit(Unit::change(
            Change::PutAccount {
                id: acme.clone(),
                name: DisplayName::parse("Acme Co").expect("n"),
                flags: vec![],
            },
            note.clone(),
        ))
        .await
        .expect("account");
    let now = Timestamp::now();
    let scope = policy.scope([]).expect("scope");
    let mut request = AccessRequest::create(
        NewRequest {
            requester: sarah.id,
            account: acme.clone(),
            ticket: TicketRef::parse("#4821", &policy.ticket_pattern).expect("t"),
            reason: Reason::parse("Check invoice tax rate after plan change").expect("r"),
            scope: scope.clone(),
            duration: policy.duration(None).expect("d"),
            mode: Mode::ReadOnly,
        },
        policy.assess(&scope, [], Consent::Allowed),
        now,
    );
    assert_eq!(
        request.status,
        RequestStatus::Approved,
        "low risk is approved by policy"
    );
    store
        .commit(Unit::change(
            Change::InsertRequest(request.clone()),
            note.clone(),
        ))
        .await
        .expect("request");
    request.use_for_session(sarah.id, now).expect("use");
    let session = ActiveSession::start(
        SessionId::random(),
        request.id,
        sarah.id,
        acme,
        scope,
        Mode::ReadOnly,
        now,
        request.duration.get(),
        policy.session.hard_limit,
        policy.session.idle_limit,
    );
    store
        .commit(Unit::new(
            vec![
                Change::UpdateRequest {
                    request: request.clone(),
                    expected: RequestStatus::Approved,
                },
                Change::InsertSession(session.info().clone()),
            ],
            move |_| vec![note],
        ))
        .await
        .expect("session");

    service
        .disable_staff(
            &email("sarah@example.com"),
            Some(&email("dana@example.com")),
        )
        .await
        .expect("disable");
    match store.session(session.info().id).await.expect("read") {
        Some(Session::Ended(e)) => assert_eq!(e.reason, EndReason::StaffDisabled),
        other => panic!("the session should have ended: {other:?}"),
    }
    let events = store
        .events(&EventFilter::default(), 0, 100)
        .await
        .expect("events");
    let summaries: Vec<&str> = events.iter().map(|e| e.body.summary.as_str()).collect();
    assert!(
        summaries.contains(
            &"Sarah Lee's session on Acme Co ended: Sarah Lee's staff account was deactivated"
        ),
        "{summaries:#?}"
    );
    assert!(
        summaries.contains(&"Dana Park deactivated Sarah Lee (sarah@example.com)"),
        "{summaries:#?}"
    );
    let err = service
        .disable_staff(&email("sarah@example.com"), None)
        .await
        .expect_err("twice");
    assert!(err.to_string().contains("is deactivated"), "{err}");
    store.close().await.expect("close");
}
