//! `actas store copy`: an installation used on SQLite moves to PostgreSQL with every row,
//! the ledger verified on both sides, and carries on there from where it stopped.

mod common;

use actas_core::scope::Risk;
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::service::RequestInput;
use std::process::Command;

fn actas(data: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_actas"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("ACTAS_DATABASE_URL")
        .output()
        .expect("actas");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_installation_moves_to_postgres_and_carries_on_there() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("data");
    let data = DataDir::new(&root);
    data.init().expect("init");
    // A used installation: staff, a grant, an account, a request, a session with a
    // note, an app key, a rotated assertion key.
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("start");
    let s = app.service();
    common::team(s, Risk::High).await;
    let sarah = common::staff(s, "sarah@example.com").await;
    let dana = common::staff(s, "dana@example.com").await;
    let r = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Check the invoice tax rate".into(),
                capabilities: vec![],
                minutes: None,
                mode: Some("read-only".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    let (session, _) = s
        .start_session(&sarah, r.id, actas_core::Timestamp::now())
        .await
        .expect("start");
    // A scope change asked for during the session: a request that points back at it
    // (the one link the copy makes after the sessions are in).
    let scope_change = s
        .create_request(
            &sarah,
            RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Also correct the billing address".into(),
                capabilities: vec!["edit_settings".into()],
                minutes: None,
                mode: Some("read-only".into()),
                for_session: Some(session.info().id),
            },
        )
        .await
        .expect("scope change");
    s.create_app_key(&dana.email, "portal", Some("http://127.0.0.1:9/hooks"))
        .await
        .expect("app key");
    s.rotate_assertion_key(Some(&dana), app.assertions())
        .await
        .expect("rotate");
    let kid = app.assertions().kid();
    let size = app.store().ledger_size().await.expect("size");
    app.stop().await.expect("stop");

    let url = common::fresh_postgres().await;
    let (ok, out) = actas(
        &root,
        &["store", "copy", "--from", "sqlite://actas.db", "--to", &url],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "The ledger in the SQLite file {} verifies: {size} events",
            root.join("actas.db").display()
        )),
        "{out}"
    );
    assert!(out.contains("verifies too: the same"), "{out}");

    // Copying again into the same database is refused: it is not empty any more.
    let (ok, again) = actas(
        &root,
        &["store", "copy", "--from", "sqlite://actas.db", "--to", &url],
    );
    assert!(!ok, "{again}");
    assert!(again.contains("already holds an installation"), "{again}");

    // Pointed at PostgreSQL, the installation carries on: the same staff and session,
    // the rotated assertion key, and the ledger continuing from its last event.
    let config = root.join("actas.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen("[store]\n", &format!("[store]\nurl = \"{url}\"\n"), 1),
    )
    .expect("config");
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("start on PostgreSQL");
    assert_eq!(app.assertions().kid(), kid, "the same assertion key");
    let moved = app
        .store()
        .request(scope_change.id)
        .await
        .expect("read")
        .expect("the scope change was copied");
    assert_eq!(
        moved.for_session,
        Some(session.info().id),
        "it still points at its session"
    );
    let s = app.service();
    let sarah = common::staff(s, "sarah@example.com").await;
    assert!(
        app.store()
            .active_session_of(sarah.id)
            .await
            .expect("read")
            .is_some(),
        "her session is still running"
    );
    common::Person::sign_in(&format!("http://{}", app.console_addr()), "lee@example.com").await;
    let after = app.store().ledger_size().await.expect("size");
    assert!(
        after > size,
        "the sign-in was recorded after the copied events"
    );
    app.stop().await.expect("stop");
    let (ok, verified) = actas(&root, &["audit", "verify"]);
    assert!(ok, "{verified}");
}
