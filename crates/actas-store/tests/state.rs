//! State changes on a real SQLite file: each one read back as the domain type it was
//! written from, and each rule the database enforces refusing what it must.

mod common;

use actas_core::Timestamp;
use actas_core::account::{AccountFlag, Consent};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{AccountId, SessionId, StaffId};
use actas_core::policy::Policy;
use actas_core::request::{AccessRequest, NewRequest, RequestStatus};
use actas_core::scope::Mode;
use actas_core::session::{ActiveSession, EndReason, Session};
use actas_core::staff::{DisplayName, Email, Role};
use actas_core::text::{Reason, TicketRef};
use actas_store::{Applied, Change, HeadSchedule, Store, StoreError, Unit};
use common::*;
use std::time::Duration;

async fn add_staff(store: &dyn Store, email: &str, role: Role) -> StaffId {
    let out = store
        .commit(Unit::new(
            vec![Change::AddStaff {
                email: Email::parse(email).expect("email"),
                name: DisplayName::parse("Someone").expect("name"),
                role,
                password_hash: "$argon2id$placeholder".into(),
            }],
            |_| vec![staff_added(1)],
        ))
        .await;
    assert!(out.is_ok());
    store
        .staff_by_email(&Email::parse(email).expect("email"))
        .await
        .expect("read")
        .expect("added")
        .id
}

/// Commits a new `request`, with a note in the ledger.
async fn insert_request(store: &dyn Store, request: &AccessRequest) -> Result<(), StoreError> {
    store
        .commit(Unit::change(
            Change::InsertRequest(request.clone()),
            note_event(),
        ))
        .await
        .map(|_| ())
}

/// Commits `request` as changed from `expected`, with a note in the ledger.
async fn update_request(
    store: &dyn Store,
    request: &AccessRequest,
    expected: RequestStatus,
) -> Result<(), StoreError> {
    store
        .commit(Unit::change(
            Change::UpdateRequest {
                request: request.clone(),
                expected,
            },
            note_event(),
        ))
        .await
        .map(|_| ())
}

fn note_event() -> NewEvent {
    NewEvent::new(Actor::System, EventData::StaffDisabled { staff: staff(1) })
}

async fn requests_sessions_and_accounts_round_trip_and_keep_their_rules(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let p = Policy::starter();
    let agent = add_staff(&*store, "agent@example.com", Role::Agent).await;
    let lead = add_staff(&*store, "lead@example.com", Role::Lead).await;

    let acme = AccountId::parse("acme").expect("id");
    store
        .commit(Unit::new(
            vec![
                Change::PutAccount {
                    id: acme.clone(),
                    name: DisplayName::parse("Acme Co").expect("name"),
                    flags: vec![AccountFlag::parse("sensitive").expect("flag")],
                },
                Change::SetConsent {
                    account: acme.clone(),
                    consent: Consent::CodeRequired,
                },
            ],
            |_| vec![note_event()],
        ))
        .await
        .expect("account");
    let account = store.account(&acme).await.expect("read").expect("exists");
    assert_eq!(account.consent, Consent::CodeRequired);
    assert_eq!(
        account.flags,
        vec![AccountFlag::parse("sensitive").expect("flag")]
    );

    let now = Timestamp::now();
    let mut request = edit_settings_request(&p, agent, &account, now);
    assert_eq!(request.status, RequestStatus::Pending);
    insert_request(&*store, &request).await.expect("insert");
    assert_eq!(
        store.request(request.id).await.expect("read").as_ref(),
        Some(&request)
    );

    // A lead approves; a second approval made on the same stale view is refused.
    let stale = request.clone();
    request
        .approve(lead, None, p.duration(Some(10)).ok(), None, now)
        .expect("approve");
    update_request(&*store, &request, RequestStatus::Pending)
        .await
        .expect("approved");
    let mut again = stale;
    again
        .approve(lead, None, None, None, now)
        .expect("in memory");
    let err = update_request(&*store, &again, RequestStatus::Pending)
        .await
        .expect_err("stale");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.request(request.id).await.expect("read").as_ref(),
        Some(&request)
    );

    // Even if code were wrong, the database refuses a requester approving their own request.
    let mut own = request.clone();
    own.id = actas_core::ids::RequestId::random();
    own.approver = Some(actas_core::request::Approver::Lead(agent));
    let err = insert_request(&*store, &own).await.expect_err("own");
    assert!(
        matches!(err, StoreError::Unexpected(_) | StoreError::Conflict(_)),
        "{err:?}"
    );

    // Start a session; a second one for the same staff member is refused.
    request.confirm_code(now).expect("code");
    let session = start_session(&*store, &p, &mut request, now).await;
    assert_eq!(
        store.active_session_of(agent).await.expect("read"),
        Some(session.clone())
    );
    let mut second = session.info().clone();
    second.id = SessionId::random();
    let err = store
        .commit(Unit::change(Change::InsertSession(second), note_event()))
        .await
        .expect_err("nested");
    assert!(
        err.to_string()
            .contains("already have an active support session"),
        "{err}"
    );

    // Touch, end, and refuse to end twice.
    let later = now.plus(Duration::from_secs(60));
    store
        .commit(Unit::change(
            Change::TouchSession {
                id: session.info().id,
                at: later,
            },
            note_event(),
        ))
        .await
        .expect("touch");
    store
        .commit(Unit::change(
            Change::EndSession {
                id: session.info().id,
                at: later,
                reason: EndReason::Manual,
            },
            note_event(),
        ))
        .await
        .expect("end");
    let err = store
        .commit(Unit::change(
            Change::EndSession {
                id: session.info().id,
                at: later,
                reason: EndReason::Manual,
            },
            note_event(),
        ))
        .await
        .expect_err("twice");
    assert!(matches!(err, StoreError::Conflict(_)));
    match store.session(session.info().id).await.expect("read") {
        Some(Session::Ended(e)) => {
            assert_eq!(e.reason, EndReason::Manual);
            assert_eq!(e.ended_at, later);
        }
        other => panic!("expected an ended session, got {other:?}"),
    }
    assert_eq!(store.active_session_of(agent).await.expect("read"), None);
    assert_eq!(
        store
            .request(request.id)
            .await
            .expect("read")
            .map(|r| r.status),
        Some(RequestStatus::Used)
    );

    // Allow-list: grant, revoke, and revoking again is refused.
    let director = add_staff(&*store, "director@example.com", Role::Director).await;
    let why = actas_core::text::Note::parse("Joined the rota").expect("note");
    store
        .commit(Unit::change(
            Change::GrantAllow {
                staff: agent,
                max_risk: actas_core::scope::Risk::Medium,
                by: director,
                reason: why.clone(),
            },
            note_event(),
        ))
        .await
        .expect("grant");
    assert_eq!(
        store
            .allowed(agent)
            .await
            .expect("read")
            .map(|a| a.max_risk),
        Some(actas_core::scope::Risk::Medium)
    );
    store
        .commit(Unit::change(
            Change::RevokeAllow {
                staff: agent,
                by: director,
                reason: why.clone(),
            },
            note_event(),
        ))
        .await
        .expect("revoke");
    assert!(store.allowed(agent).await.expect("read").is_none());
    assert!(store.allow_list().await.expect("list")[0].revoked.is_some());
    let err = store
        .commit(Unit::change(
            Change::RevokeAllow {
                staff: agent,
                by: director,
                reason: why,
            },
            note_event(),
        ))
        .await
        .expect_err("not on the list");
    assert!(matches!(err, StoreError::NotFound(_)));

    store
        .commit(Unit::new(
            vec![Change::DisableStaff {
                staff: lead,
                at: Timestamp::now(),
            }],
            |a: &[Applied]| {
                assert_eq!(a, [Applied::Done]);
                vec![note_event()]
            },
        ))
        .await
        .expect("disable");
    assert!(
        !store
            .staff(lead)
            .await
            .expect("read")
            .expect("exists")
            .active
    );
    store.close().await.expect("close");
    let store = fresh.open(HeadSchedule::default()).await;
    assert!(
        store
            .verify(&public(), &mut |_, _| {})
            .await
            .expect("read")
            .is_ok()
    );
    store.close().await.expect("close");
}
on_both!(requests_sessions_and_accounts_round_trip_and_keep_their_rules);

async fn an_idempotency_key_is_claimed_once_even_by_units_in_the_same_batch(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let key_id = store
        .commit(Unit::new(
            vec![Change::AddAppKey {
                name: actas_core::app::AppName::parse("portal").expect("name"),
                key_hash: [1; 32],
                webhook_url: None,
                webhook_secret: None,
                by: None,
                at: Timestamp::now(),
            }],
            |_| vec![],
        ))
        .await
        .expect("app key");
    assert!(key_id.is_empty(), "no event for a bare change");
    let app = store.app_keys().await.expect("keys")[0].app.id;
    // Twenty retries of the same event at once: they land in the writer together.
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .commit(Unit::new(
                    vec![Change::ClaimIdempotencyKey {
                        app,
                        key: "retry-me".into(),
                        request_hash: [2; 32],
                        at: Timestamp::now(),
                    }],
                    move |_| vec![event(n)],
                ))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one claim wins");
    assert_eq!(
        store.ledger_size().await.expect("size"),
        1,
        "and only its event is written"
    );
    assert_eq!(
        store.idempotency_key(app, "retry-me").await.expect("read"),
        Some(vec![2; 32])
    );
    // Later, a unit mixing a taken key with other work is refused whole.
    let before = store.ledger_size().await.expect("size");
    let again = store
        .commit(Unit::new(
            vec![
                Change::ClaimIdempotencyKey {
                    app,
                    key: "fresh".into(),
                    request_hash: [3; 32],
                    at: Timestamp::now(),
                },
                Change::ClaimIdempotencyKey {
                    app,
                    key: "retry-me".into(),
                    request_hash: [2; 32],
                    at: Timestamp::now(),
                },
            ],
            |_| vec![event(99)],
        ))
        .await;
    assert!(matches!(again, Err(StoreError::Duplicate(_))), "{again:?}");
    assert_eq!(store.ledger_size().await.expect("size"), before);
    assert_eq!(
        store.idempotency_key(app, "fresh").await.expect("read"),
        None
    );
    store.close().await.expect("close");
}
on_both!(an_idempotency_key_is_claimed_once_even_by_units_in_the_same_batch);

/// An agent's live session on `acme` (consent allowed), with everything it rests on.
async fn live_session(store: &dyn Store) -> ActiveSession {
    let p = Policy::starter();
    let agent = add_staff(store, "agent@example.com", Role::Agent).await;
    let lead = add_staff(store, "lead@example.com", Role::Lead).await;
    let acme = AccountId::parse("acme").expect("id");
    store
        .commit(Unit::change(
            Change::PutAccount {
                id: acme.clone(),
                name: DisplayName::parse("Acme Co").expect("name"),
                flags: vec![],
            },
            note_event(),
        ))
        .await
        .expect("account");
    let now = Timestamp::now();
    let account = store.account(&acme).await.expect("read").expect("exists");
    let mut request = edit_settings_request(&p, agent, &account, now);
    insert_request(store, &request).await.expect("insert");
    if request.status == RequestStatus::Pending {
        request
            .approve(lead, None, None, None, now)
            .expect("approve");
        update_request(store, &request, RequestStatus::Pending)
            .await
            .expect("approved");
    }
    start_session(store, &p, &mut request, now).await
}

/// An agent's request to edit `account`'s settings for 20 minutes, assessed by policy.
fn edit_settings_request(
    p: &Policy,
    agent: StaffId,
    account: &actas_store::Account,
    now: Timestamp,
) -> AccessRequest {
    let scope = p.scope(["edit_settings"]).expect("scope");
    let assessment = p.assess(&scope, &account.flags, account.consent);
    AccessRequest::create(
        NewRequest {
            requester: agent,
            account: account.id.clone(),
            ticket: TicketRef::parse("#4821", &p.ticket_pattern).expect("ticket"),
            reason: Reason::parse("Check invoice tax rate after plan change").expect("reason"),
            scope,
            duration: p.duration(Some(20)).expect("minutes"),
            mode: Mode::Live,
        },
        assessment,
        now,
    )
}

/// Starts a session on an approved request: the request marked used, the session stored.
async fn start_session(
    store: &dyn Store,
    p: &Policy,
    request: &mut AccessRequest,
    now: Timestamp,
) -> ActiveSession {
    request
        .use_for_session(request.requester, now)
        .expect("use");
    let session = ActiveSession::start(
        SessionId::random(),
        request.id,
        request.requester,
        request.account.clone(),
        request.scope.clone(),
        request.mode,
        now,
        request.duration.get(),
        p.session.hard_limit,
        p.session.idle_limit,
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
            |_| vec![note_event()],
        ))
        .await
        .expect("started");
    session
}

async fn preconditions_are_settled_inside_the_transaction_in_order(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let session = live_session(&*store).await;
    let id = session.info().id;
    let now = Timestamp::now();
    let live = |at: Timestamp| Change::RequireLiveSession { id, at };

    // A live session lets its unit through, and a loaded account names the event.
    let acme = AccountId::parse("acme").expect("id");
    store
        .commit(Unit::new(
            vec![live(now), Change::LoadAccount(acme.clone())],
            |applied: &[Applied]| {
                match &applied[1] {
                    Applied::Account(a) => assert_eq!(a.name.as_str(), "Acme Co"),
                    other => panic!("expected the account, got {other:?}"),
                }
                vec![note_event()]
            },
        ))
        .await
        .expect("live");

    // Past the hard limit or the idle limit, by the stored clock: refused, nothing written.
    let size = store.ledger_size().await.expect("size");
    let info = session.info();
    for at in [info.expires_at, now.plus(info.idle_limit)] {
        let err = store
            .commit(Unit::new(vec![live(at)], |_| vec![note_event()]))
            .await
            .expect_err("past a limit");
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
    let err = store
        .commit(Unit::new(
            vec![Change::LoadAccount(AccountId::parse("nobody").expect("id"))],
            |_| vec![note_event()],
        ))
        .await
        .expect_err("no such account");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.ledger_size().await.expect("size"), size);

    // The session is ended by one unit and required by the next ones, all sent at once:
    // whether they share a batch or not, none of the later ones gets through.
    let mut units = vec![store.commit(Unit::change(
        Change::EndSession {
            id,
            at: now,
            reason: EndReason::Manual,
        },
        note_event(),
    ))];
    for _ in 0..20 {
        units.push(store.commit(Unit::new(vec![live(now)], |_| vec![note_event()])));
    }
    let outcomes = futures_util::future::join_all(units).await;
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    for o in &outcomes[1..] {
        assert!(matches!(o, Err(StoreError::Conflict(_))), "{o:?}");
    }
    assert_eq!(store.ledger_size().await.expect("size"), size + 1);

    // An app key revoked by one unit fails the next unit that requires it.
    store
        .commit(Unit::new(
            vec![Change::AddAppKey {
                name: actas_core::app::AppName::parse("portal").expect("name"),
                key_hash: [7; 32],
                webhook_url: None,
                webhook_secret: None,
                by: None,
                at: now,
            }],
            |_| vec![],
        ))
        .await
        .expect("app key");
    let app = store.app_keys().await.expect("keys")[0].app.id;
    store
        .commit(Unit::new(vec![Change::RequireAppKey { app }], |_| {
            vec![note_event()]
        }))
        .await
        .expect("live key");
    let (revoked, refused) = futures_util::future::join(
        store.commit(Unit::new(
            vec![Change::RevokeAppKey { id: app, at: now }],
            |_| vec![],
        )),
        store.commit(Unit::new(vec![Change::RequireAppKey { app }], |_| {
            vec![note_event()]
        })),
    )
    .await;
    revoked.expect("revoke");
    assert!(
        matches!(refused, Err(StoreError::Revoked(_))),
        "{refused:?}"
    );
    store.close().await.expect("close");
}
on_both!(preconditions_are_settled_inside_the_transaction_in_order);

async fn a_sessions_page_copies_stay_within_its_limit_across_pages_and_units(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let session = live_session(&*store).await.info().id;
    let keep = |seq: u64, size: usize| Change::KeepPage {
        session,
        page_seq: seq,
        path: format!("/p{seq}"),
        content_type: "text/html; charset=utf-8".into(),
        sha256: [seq as u8; 32],
        bytes: size as u64 * 3,
        gzip: vec![seq as u8; size],
        at: Timestamp::now(),
        max_session_bytes: 100_000,
    };
    let kept = |applied: &[actas_store::Applied]| -> Vec<bool> {
        applied
            .iter()
            .filter_map(|a| match a {
                actas_store::Applied::Kept(k) => Some(*k),
                _ => None,
            })
            .collect()
    };
    // 40 + 40 fit; the third 40 KB would pass 100 KB, in the same unit.
    let results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = results.clone();
    store
        .commit(Unit::new(
            vec![keep(1, 40_000), keep(2, 40_000), keep(3, 40_000)],
            move |applied| {
                *seen.lock().expect("lock") = kept(applied);
                vec![note_event()]
            },
        ))
        .await
        .expect("commit");
    assert_eq!(*results.lock().expect("lock"), vec![true, true, false]);
    // A later unit counts what was kept before: 15 KB still fits, 10 KB more doesn't.
    let seen = results.clone();
    store
        .commit(Unit::new(
            vec![keep(4, 15_000), keep(5, 10_000)],
            move |applied| {
                *seen.lock().expect("lock") = kept(applied);
                vec![note_event()]
            },
        ))
        .await
        .expect("commit");
    assert_eq!(*results.lock().expect("lock"), vec![true, false]);
    assert!(store.page_copy(session, 4).await.expect("read").is_some());
    assert!(store.page_copy(session, 3).await.expect("read").is_none());
    // Pruning takes copies older than asked, and only those.
    let later = Timestamp::now().plus(std::time::Duration::from_secs(60));
    let pruned = std::sync::Arc::new(std::sync::Mutex::new(0));
    let seen = pruned.clone();
    store
        .commit(Unit::new(
            vec![Change::PrunePageCopies {
                before: Timestamp::from_millis(0),
            }],
            move |applied| {
                if let [actas_store::Applied::Pruned(n)] = applied {
                    *seen.lock().expect("lock") = *n;
                }
                vec![]
            },
        ))
        .await
        .expect("prune nothing");
    assert_eq!(*pruned.lock().expect("lock"), 0);
    assert!(
        store
            .oldest_page_copy()
            .await
            .expect("read")
            .is_some_and(|t| t < later)
    );
}
on_both!(a_sessions_page_copies_stay_within_its_limit_across_pages_and_units);

async fn a_locked_sign_in_is_refused_in_the_transaction(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let id = add_staff(&*store, "ola@example.com", Role::Agent).await;
    let now = Timestamp::now();
    for _ in 0..5 {
        store
            .commit(Unit::change(
                Change::SignInFailed {
                    staff: id,
                    at: now,
                    lock_after: 5,
                    lock_for: Duration::from_secs(900),
                },
                note_event(),
            ))
            .await
            .expect("counted");
    }
    let before = store.ledger_size().await.expect("size");
    // A right password checked before the lock was set (on another instance, say)
    // still can't sign in: the lock is decided where it is stored.
    let err = store
        .commit(Unit::change(
            Change::SignIn {
                token_hash: [7; 32],
                staff: id,
                csrf: "csrf".into(),
                at: now,
                authenticated_at: now,
                expires_at: now.plus(Duration::from_secs(3600)),
            },
            note_event(),
        ))
        .await
        .expect_err("locked");
    assert!(
        matches!(&err, StoreError::Refused(m) if m.contains("locked until")),
        "{err:?}"
    );
    assert_eq!(store.ledger_size().await.expect("size"), before);
    assert!(store.login(&[7; 32]).await.expect("read").is_none());
    store.close().await.expect("close");
}
on_both!(a_locked_sign_in_is_refused_in_the_transaction);

async fn a_rotation_replaces_only_the_assertion_key_it_saw(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let key = |kid: &str, at: i64| actas_store::AssertionKeyRecord {
        kid: kid.into(),
        public: [at as u8; 32],
        sealed: Some(vec![1, 2, 3]),
        mac: vec![4, 5, 6],
        created_at: Timestamp::from_millis(at),
        retired_at: None,
    };
    store
        .commit(Unit::new(
            vec![Change::SeedAssertionKeys(vec![key("k0", 1)])],
            |_| vec![],
        ))
        .await
        .expect("seed");
    // Seeding again (a second instance starting) changes nothing.
    store
        .commit(Unit::new(
            vec![Change::SeedAssertionKeys(vec![key("other", 2)])],
            |_| vec![],
        ))
        .await
        .expect("seed again");
    store
        .commit(Unit::change(
            Change::RotateAssertionKey {
                key: key("k1", 3),
                replaces: "k0".into(),
            },
            note_event(),
        ))
        .await
        .expect("rotate");
    let before = store.ledger_size().await.expect("size");
    // Another instance, which still thought k0 signed, rotates at the same time.
    let err = store
        .commit(Unit::change(
            Change::RotateAssertionKey {
                key: key("k2", 4),
                replaces: "k0".into(),
            },
            note_event(),
        ))
        .await
        .expect_err("k0 no longer signs");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.ledger_size().await.expect("size"), before, "no event");
    let keys = store.assertion_keys().await.expect("keys");
    let kids: Vec<(&str, bool)> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.retired_at.is_some()))
        .collect();
    assert_eq!(kids, vec![("k0", true), ("k1", false)]);
    store.close().await.expect("close");
}
on_both!(a_rotation_replaces_only_the_assertion_key_it_saw);

async fn a_sign_on_flow_is_taken_once_and_not_after_it_expires(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let now = Timestamp::now();
    let flow = |state: u8, expires_at: Timestamp| actas_store::SignOnFlow {
        state_hash: [state; 32],
        binding_hash: [9; 32],
        nonce: "n".into(),
        verifier: "v".into(),
        purpose: "sign_in".into(),
        login_hash: Some([3; 32]),
        then: Some("/queue".into()),
        created_at: now,
        expires_at,
    };
    let begin = |f| Unit::new(vec![Change::BeginSignOn(f)], |_| vec![]);
    let take = |state: u8, at: Timestamp| {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let out = seen.clone();
        let unit = Unit::new(
            vec![Change::TakeSignOn {
                state_hash: [state; 32],
                at,
            }],
            move |applied| {
                if let Some(actas_store::Applied::SignOn(f)) = applied.first() {
                    *out.lock().expect("lock") = Some(f.clone());
                }
                vec![]
            },
        );
        (unit, seen)
    };
    let live = flow(1, now.plus(Duration::from_secs(600)));
    store.commit(begin(live.clone())).await.expect("begin");
    store
        .commit(begin(flow(2, now.plus(Duration::from_secs(1)))))
        .await
        .expect("begin another");
    let (unit, seen) = take(1, now);
    store.commit(unit).await.expect("take");
    assert_eq!(seen.lock().expect("lock").clone(), Some(live), "as stored");
    // A replayed state finds nothing.
    let (unit, _) = take(1, now);
    let err = store.commit(unit).await.expect_err("twice");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Past its time it can't be finished either, and a later sign-in clears it away.
    let (unit, _) = take(2, now.plus(Duration::from_secs(2)));
    let err = store.commit(unit).await.expect_err("expired");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let mut later = flow(3, now.plus(Duration::from_secs(900)));
    later.created_at = now.plus(Duration::from_secs(5));
    store.commit(begin(later)).await.expect("begin later");
    let (unit, _) = take(2, now);
    assert!(
        store.commit(unit).await.is_err(),
        "the expired flow was deleted"
    );
    store.close().await.expect("close");
}
on_both!(a_sign_on_flow_is_taken_once_and_not_after_it_expires);

async fn a_held_action_is_confirmed_once_sent_once_and_then_kept_without_its_body(
    backend: Backend,
) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(HeadSchedule::default()).await;
    let session = live_session(&*store).await;
    let staff = session.info().staff;
    let now = Timestamp::now();
    let held = |id: &str, at: Timestamp| actas_store::HeldAction {
        id: id.into(),
        session: session.info().id,
        staff,
        method: "POST".into(),
        path: "/profile".into(),
        query: None,
        content_type: Some("application/x-www-form-urlencoded".into()),
        body: b"name=Acme+Trading".to_vec(),
        headers: vec![
            ("x-csrf-token".into(), "t0k3n".into()),
            ("origin".into(), "https://gw.example".into()),
        ],
        description: "changed the contact details".into(),
        changes: vec![actas_core::event::FieldChange {
            field: "name".into(),
            from: Some("Acme Co".into()),
            to: Some("Acme Trading".into()),
        }],
        held_at: at,
        expires_at: at.plus(Duration::from_secs(600)),
        confirmed_with: None,
        sent_at: None,
    };
    let hold =
        |h: actas_store::HeldAction| Unit::new(vec![Change::HoldAction(Box::new(h))], |_| vec![]);
    let confirm = |id: &str, token: u8| {
        Unit::new(
            vec![Change::ConfirmAction {
                id: id.into(),
                staff,
                token_hash: [token; 32],
                confirmed_with: "their password".into(),
                at: Timestamp::now(),
            }],
            |_| vec![],
        )
    };
    let send = |id: &str, token: u8| {
        Unit::new(
            vec![Change::SendAction {
                id: id.into(),
                token_hash: [token; 32],
                at: Timestamp::now(),
            }],
            |_| vec![],
        )
    };
    let a = held("a", now);
    store.commit(hold(a.clone())).await.expect("hold");
    assert_eq!(
        store.held_action("a").await.expect("read"),
        Some(a.clone()),
        "read back as held, headers and all"
    );
    // Another staff member can't confirm it; its own agent can, once.
    let other = store
        .commit(Unit::new(
            vec![Change::ConfirmAction {
                id: "a".into(),
                staff: StaffId::new(staff.get() + 1000).expect("id"),
                token_hash: [9; 32],
                confirmed_with: "their password".into(),
                at: now,
            }],
            |_| vec![],
        ))
        .await;
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    store.commit(confirm("a", 1)).await.expect("confirm");
    assert!(matches!(
        store.commit(confirm("a", 2)).await,
        Err(StoreError::Conflict(_))
    ));
    // Sent only with its token, once; then its body and headers are gone.
    assert!(matches!(
        store.commit(send("a", 2)).await,
        Err(StoreError::Conflict(_))
    ));
    store.commit(send("a", 1)).await.expect("send");
    assert!(matches!(
        store.commit(send("a", 1)).await,
        Err(StoreError::Conflict(_))
    ));
    let sent = store.held_action("a").await.expect("read").expect("kept");
    assert!(sent.sent_at.is_some());
    assert!(sent.body.is_empty() && sent.headers.is_empty(), "{sent:?}");
    assert_eq!(sent.changes, a.changes, "what it changed is kept");
    // One whose time passed unsent (by more than the hour kept for clocks that differ)
    // loses its body and headers at the next hold; so does one with no body (a DELETE).
    let past = |id: &str, body: Vec<u8>| actas_store::HeldAction {
        held_at: Timestamp::from_millis(now.as_millis() - 4_300_000),
        expires_at: Timestamp::from_millis(now.as_millis() - 3_700_000),
        body,
        ..held(id, now)
    };
    store
        .commit(hold(past("b", b"x=1".to_vec())))
        .await
        .expect("hold");
    store.commit(hold(past("d", vec![]))).await.expect("hold");
    // Just past its time: within the margin, kept.
    let recent = actas_store::HeldAction {
        held_at: Timestamp::from_millis(now.as_millis() - 700_000),
        expires_at: Timestamp::from_millis(now.as_millis() - 100_000),
        ..held("e", now)
    };
    store.commit(hold(recent)).await.expect("hold");
    store.commit(hold(held("c", now))).await.expect("hold");
    let read = |id: &'static str| {
        let store = store.clone();
        async move { store.held_action(id).await.expect("read").expect("kept") }
    };
    for id in ["b", "d"] {
        let purged = read(id).await;
        assert!(purged.body.is_empty() && purged.headers.is_empty(), "{id}");
    }
    for id in ["c", "e"] {
        let kept = read(id).await;
        assert!(
            !kept.body.is_empty() && !kept.headers.is_empty(),
            "{id} keeps its request"
        );
    }
    store.close().await.expect("close");
}
on_both!(a_held_action_is_confirmed_once_sent_once_and_then_kept_without_its_body);
