//! An allow-list grant overdue for its review suspends what it allows, decided where the
//! data is: an approved request can't start a session, and a running session's hand-off
//! can't be re-issued, once the grant's last review is older than the policy allows —
//! even when the request was made before. Nothing is written when it is refused.

mod common;

use actas_core::Timestamp;
use actas_core::policy::SUSPENDED_FOR_REVIEW;
use actas_core::scope::Risk;
use actas_server::service::{RequestInput, ServiceError};

/// Sets Sarah's grant's last review a hundred days back (the policy reviews every 90).
async fn backdate_sarahs_review(dir: &tempfile::TempDir) {
    let long_ago = Timestamp::now().as_millis() - 100 * 86_400_000;
    let db = common::BackDoor::open(&dir.path().join("data")).await;
    db.execute(
        "UPDATE allow_list SET reviewed_at = $1 WHERE staff_id = (SELECT id FROM staff WHERE email = 'sarah@example.com')",
        vec![common::Bind::Int(long_ago)],
    )
    .await;
    db.close().await;
}

fn request() -> RequestInput {
    RequestInput {
        account: "acme".into(),
        ticket: "#4821".into(),
        reason: "Check the invoice tax rate".into(),
        capabilities: vec![],
        minutes: None,
        mode: Some("read-only".into()),
        for_session: None,
    }
}

#[tokio::test]
async fn an_overdue_grant_refuses_a_session_start_and_a_new_hand_off_and_writes_nothing() {
    let (dir, app) = common::serve().await;
    let s = app.service();
    common::team(s, Risk::High).await;
    let sarah = common::staff(s, "sarah@example.com").await;

    // Approved (by policy) while the grant was current; then the grant falls overdue.
    let approved = s.create_request(&sarah, request()).await.expect("request");
    backdate_sarahs_review(&dir).await;
    let before = s.store().ledger_size().await.expect("size");
    let refused = s
        .start_session(&sarah, approved.id, Timestamp::now())
        .await
        .expect_err("suspended");
    assert!(
        matches!(&refused, ServiceError::Forbidden(m) if m == SUSPENDED_FOR_REVIEW),
        "{refused:?}"
    );
    assert_eq!(s.store().ledger_size().await.expect("size"), before);
    assert!(
        s.store()
            .active_session_of(sarah.id)
            .await
            .expect("read")
            .is_none()
    );

    // A director confirms it: the same request starts.
    s.change_allow_list(
        &sarah.email,
        actas_server::service::AllowChange::Confirm,
        &actas_core::staff::Email::parse("dana@example.com").expect("email"),
        "Still on the billing rota",
    )
    .await
    .expect("confirm");
    s.start_session(&sarah, approved.id, Timestamp::now())
        .await
        .expect("starts once confirmed");

    // Overdue again while the session runs: its way in can't be re-issued.
    backdate_sarahs_review(&dir).await;
    let before = s.store().ledger_size().await.expect("size");
    let refused = s
        .reissue_handoff(&sarah, Timestamp::now())
        .await
        .expect_err("suspended");
    assert!(
        matches!(&refused, ServiceError::Forbidden(m) if m == SUSPENDED_FOR_REVIEW),
        "{refused:?}"
    );
    assert_eq!(s.store().ledger_size().await.expect("size"), before);
    // ... nor a new request made.
    let refused = s
        .create_request(&sarah, request())
        .await
        .expect_err("suspended");
    assert!(
        matches!(&refused, ServiceError::Forbidden(m) if m == SUSPENDED_FOR_REVIEW),
        "{refused:?}"
    );
}
