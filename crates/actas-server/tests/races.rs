//! Rules decided inside the writer's transaction, each raced against the change that
//! would break it, many times at once over a real SQLite store. Without the decision in
//! the transaction, a read made before the other side's commit lets the first side write
//! on stale facts: a session that survives the revocation of consent, the allow-list or
//! the staff member, or a consent restored by an account sync with no event saying so.

mod common;

use actas_core::Timestamp;
use actas_core::account::Consent;
use actas_core::app::AppRef;
use actas_core::event::{Actor, EventData};
use actas_core::ids::AccountId;
use actas_core::scope::Risk;
use actas_core::staff::{Email, Role};
use actas_server::app::Application;
use actas_server::service::{AllowChange, RequestInput, Service};
use actas_store::StaffRecord;
use futures_util::future::join_all;

/// How many races run at once, each on its own agent and account.
const LANES: usize = 24;

/// How many times each lane races.
const ROUNDS: usize = 4;

struct Track {
    _dir: tempfile::TempDir,
    app: Application,
    app_key: AppRef,
}

impl Track {
    fn service(&self) -> &Service {
        self.app.service()
    }
}

/// actas with a director, `LANES` allow-listed agents (`agent{i}@example.com`) and as
/// many accounts (`acct{i}`), and an app key for the product's side.
async fn track() -> Track {
    let (dir, app) = common::serve().await;
    let s = app.service();
    common::add_staff(s, &[("dana@example.com", "Dana Park", Role::Director)]).await;
    let agents: Vec<(String, String, Role)> = (0..LANES)
        .map(|i| {
            (
                format!("agent{i}@example.com"),
                format!("Agent {i}"),
                Role::Agent,
            )
        })
        .collect();
    let refs: Vec<(&str, &str, Role)> = agents
        .iter()
        .map(|(e, n, r)| (e.as_str(), n.as_str(), *r))
        .collect();
    common::add_staff(s, &refs).await;
    for i in 0..LANES {
        common::allow(s, &format!("agent{i}@example.com"), Risk::High).await;
        s.put_account(
            &format!("acct{i}"),
            &format!("Account {i}"),
            &[],
            Actor::System,
        )
        .await
        .expect("account");
    }
    let key = s
        .create_app_key(
            &Email::parse("dana@example.com").expect("e"),
            "portal",
            None,
        )
        .await
        .expect("app key");
    Track {
        _dir: dir,
        app,
        app_key: key.app,
    }
}

/// An approved view-only request by agent `i` on account `i` (low risk: approved by
/// policy), if the rules still allow one.
async fn approved(t: &Track, i: usize) -> Option<(StaffRecord, actas_core::ids::RequestId)> {
    let agent = common::staff(t.service(), &format!("agent{i}@example.com")).await;
    let r = t
        .service()
        .create_request(
            &agent,
            RequestInput {
                account: format!("acct{i}"),
                ticket: "#4821".into(),
                reason: "Check why the invoices show the wrong tax rate".into(),
                capabilities: vec![],
                minutes: None,
                mode: None,
                for_session: None,
            },
        )
        .await
        .ok()?;
    Some((agent, r.id))
}

async fn consent_of(t: &Track, i: usize) -> Consent {
    t.service()
        .account(&AccountId::parse(&format!("acct{i}")).expect("id"))
        .await
        .expect("account")
        .consent
}

async fn sessions_on(t: &Track, i: usize) -> usize {
    let id = format!("acct{i}");
    t.service()
        .store()
        .active_sessions()
        .await
        .expect("sessions")
        .iter()
        .filter(|s| s.info().account.as_str() == id)
        .count()
}

#[tokio::test]
async fn a_session_started_while_consent_is_revoked_never_outlives_the_revocation() {
    let t = track().await;
    for _ in 0..ROUNDS {
        join_all((0..LANES).map(|i| {
            let t = &t;
            async move {
                let (agent, request) = approved(t, i).await.expect("request");
                let id = format!("acct{i}");
                let start = t.service().start_session(&agent, request, Timestamp::now());
                let revoke = t.service().set_consent(&t.app_key, &id, "revoked");
                let (started, revoked) = tokio::join!(start, revoke);
                revoked.expect("revoked");
                assert_eq!(consent_of(t, i).await, Consent::Revoked);
                assert_eq!(
                    sessions_on(t, i).await,
                    0,
                    "lane {i}: a session survived the revocation (start: {:?})",
                    started.as_ref().map(|_| "started")
                );
                t.service()
                    .set_consent(&t.app_key, &format!("acct{i}"), "allowed")
                    .await
                    .expect("allowed again");
            }
        }))
        .await;
    }
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn an_account_sync_never_undoes_a_consent_revoked_at_the_same_moment() {
    let t = track().await;
    for round in 0..ROUNDS {
        join_all((0..LANES).map(|i| {
            let t = &t;
            async move {
                let id = format!("acct{i}");
                let name = format!("Account {i} (renamed {round})");
                let flags = ["sensitive".to_owned()];
                let sync = t.service().sync_account(&t.app_key, &id, &name, &flags);
                let revoke = t.service().set_consent(&t.app_key, &id, "revoked");
                let (synced, revoked) = tokio::join!(sync, revoke);
                synced.expect("synced");
                revoked.expect("revoked");
                let account = t
                    .service()
                    .account(&AccountId::parse(&id).expect("id"))
                    .await
                    .expect("account");
                assert_eq!(account.consent, Consent::Revoked, "lane {i}");
                assert_eq!(account.name.as_str(), name);
                t.service()
                    .set_consent(&t.app_key, &id, "allowed")
                    .await
                    .expect("allowed again");
            }
        }))
        .await;
    }
    // Every consent the accounts ever had is in the ledger: the last event of each says
    // what the account holds now.
    let log = t
        .service()
        .store()
        .events(&actas_store::EventFilter::default(), 0, 100_000)
        .await
        .expect("events");
    for i in 0..LANES {
        let last = log.iter().rev().find_map(|e| match &e.body.data {
            EventData::ConsentChanged {
                account, consent, ..
            } if account.id.as_str() == format!("acct{i}") => Some(*consent),
            _ => None,
        });
        assert_eq!(last, Some(consent_of(&t, i).await), "lane {i}");
    }
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_session_started_while_its_agent_leaves_the_allow_list_or_is_deactivated_ends() {
    let t = track().await;
    let dana = Email::parse("dana@example.com").expect("e");
    for round in 0..ROUNDS {
        let deactivate = round == ROUNDS - 1;
        join_all((0..LANES).map(|i| {
            let (t, dana) = (&t, &dana);
            async move {
                let email = Email::parse(&format!("agent{i}@example.com")).expect("e");
                let (agent, request) = approved(t, i).await.expect("request");
                let start = t.service().start_session(&agent, request, Timestamp::now());
                let remove = async {
                    if deactivate {
                        t.service()
                            .disable_staff(&email, Some(dana))
                            .await
                            .map(|_| ())
                    } else {
                        t.service()
                            .change_allow_list(
                                &email,
                                AllowChange::Revoke,
                                dana,
                                "Moved to the billing team",
                            )
                            .await
                    }
                };
                let (_, removed) = tokio::join!(start, remove);
                removed.expect("removed");
                assert_eq!(
                    t.service()
                        .store()
                        .active_session_of(agent.id)
                        .await
                        .expect("read")
                        .map(|s| s.info().id),
                    None,
                    "lane {i}: the session outlived its agent's removal (deactivated: {deactivate})"
                );
                if !deactivate {
                    common::allow(t.service(), email.as_str(), Risk::High).await;
                }
            }
        }))
        .await;
    }
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn lowering_an_agents_level_ends_a_session_above_it_and_a_stricter_consent_stops_a_start() {
    let t = track().await;
    let s = t.service();
    let dana = Email::parse("dana@example.com").expect("e");
    // Agent 0 works at medium risk (a lead approves); the director lowers them to low.
    let agent = common::staff(s, "agent0@example.com").await;
    common::add_staff(s, &[("lee@example.com", "Lee Chen", Role::Lead)]).await;
    let lee = common::staff(s, "lee@example.com").await;
    let policy_caps: Vec<String> = s
        .policy()
        .capabilities()
        .filter(|c| c.risk == Risk::Medium)
        .map(|c| c.name.to_string())
        .take(1)
        .collect();
    assert_eq!(
        policy_caps.len(),
        1,
        "the starter policy has a medium capability"
    );
    let r = s
        .create_request(
            &agent,
            RequestInput {
                account: "acct0".into(),
                ticket: "#4821".into(),
                reason: "Correct the contact details the customer sent".into(),
                capabilities: policy_caps,
                minutes: None,
                mode: Some("live".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    s.approve_request(&lee, r.id, actas_server::service::Approval::default())
        .await
        .expect("approve");
    s.start_session(&agent, r.id, Timestamp::now())
        .await
        .expect("start");
    s.change_allow_list(
        &Email::parse("agent0@example.com").expect("e"),
        AllowChange::Grant(Risk::Low),
        &dana,
        "Back to view-only work for now",
    )
    .await
    .expect("lowered");
    assert!(
        s.store()
            .active_session_of(agent.id)
            .await
            .expect("read")
            .is_none(),
        "the medium-risk session ended with the lower level"
    );

    // Agent 1 has a low-risk request approved by policy, with no code; then the customer
    // asks for a code before anyone acts on the account.
    let (agent, request) = approved(&t, 1).await.expect("request");
    s.set_consent(&t.app_key, "acct1", "code_required")
        .await
        .expect("consent");
    let refused = s
        .start_session(&agent, request, Timestamp::now())
        .await
        .expect_err("the customer now asks for a code");
    assert!(
        refused
            .to_string()
            .contains("changed their consent setting"),
        "{refused}"
    );
    t.app.stop().await.expect("stop");
}
