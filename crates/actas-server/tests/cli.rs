//! The `actas` binary end to end: real processes on a real SQLite file.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn actas(data: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_actas"))
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn actas");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("actas ran");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(data: &Path, args: &[&str], stdin: &str) -> String {
    let r = actas(data, args, stdin);
    assert_eq!(r.code, 0, "actas {args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// A data directory with a director, three agents and allow-list changes: 10 events,
/// every one covered by a signed head (each command signs one as it ends).
fn ledger() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    ok(d, &["init"], "");
    ok(
        d,
        &[
            "staff",
            "add",
            "dana@example.com",
            "--name",
            "Dana Park",
            "--role",
            "director",
        ],
        "dana-password-1\n",
    );
    for (email, name) in [
        ("sarah@example.com", "Sarah Lee"),
        ("omar@example.com", "Omar Haddad"),
        ("li@example.com", "Li Wei"),
    ] {
        ok(
            d,
            &[
                "staff",
                "add",
                email,
                "--name",
                name,
                "--role",
                "agent",
                "--by",
                "dana@example.com",
            ],
            "agent-password-1\n",
        );
    }
    for (email, risk) in [
        ("sarah@example.com", "medium"),
        ("omar@example.com", "low"),
        ("li@example.com", "high"),
    ] {
        ok(
            d,
            &[
                "allow",
                "grant",
                email,
                "--max-risk",
                risk,
                "--by",
                "dana@example.com",
                "--reason",
                "Joined the billing support rota",
            ],
            "",
        );
    }
    ok(
        d,
        &[
            "allow",
            "revoke",
            "li@example.com",
            "--by",
            "dana@example.com",
            "--reason",
            "Moved to the platform team",
        ],
        "",
    );
    ok(
        d,
        &[
            "staff",
            "disable",
            "omar@example.com",
            "--by",
            "dana@example.com",
        ],
        "",
    );
    ok(
        d,
        &[
            "allow",
            "grant",
            "li@example.com",
            "--max-risk",
            "low",
            "--by",
            "dana@example.com",
            "--reason",
            "Back on the rota for cover",
        ],
        "",
    );
    dir
}

async fn tamper(data: &Path, statements: &[&str]) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("actas.db"))
        .connect()
        .await
        .expect("open db");
    for s in [
        "DROP TRIGGER IF EXISTS ledger_events_no_update",
        "DROP TRIGGER IF EXISTS ledger_events_no_delete",
        "DROP TRIGGER IF EXISTS tree_heads_no_update",
    ]
    .iter()
    .chain(statements)
    {
        sqlx::query(s)
            .execute(&mut conn)
            .await
            .expect("tamper statement");
    }
}

fn verify_fails(data: &Path) -> String {
    let r = actas(data, &["audit", "verify"], "");
    assert_eq!(r.code, 1, "verify must fail: {}{}", r.stdout, r.stderr);
    r.stderr
}

#[test]
fn a_clean_ledger_verifies_and_reads_in_plain_language() {
    let dir = ledger();
    let d = dir.path();
    let out = ok(d, &["audit", "verify"], "");
    assert!(
        out.contains("The ledger verifies: 10 events checked against"),
        "{out}"
    );
    let log = ok(d, &["audit", "log"], "");
    assert!(log.contains("Dana Park allowed Sarah Lee to act as customers up to medium risk: “Joined the billing support rota”"), "{log}");
    assert!(
        log.contains("Dana Park removed Li Wei from the allow-list: “Moved to the platform team”"),
        "{log}"
    );
    assert!(
        log.contains("Dana Park deactivated Omar Haddad (omar@example.com)"),
        "{log}"
    );
    let kinds = ok(d, &["audit", "log", "--kind", "allow.revoked"], "");
    assert_eq!(kinds.lines().count(), 1, "{kinds}");
    let list = ok(d, &["allow", "list"], "");
    assert!(
        list.contains("Li Wei (li@example.com): up to low risk — granted by Dana Park"),
        "{list}"
    );
    let staff = ok(d, &["staff", "list"], "");
    assert!(
        staff.contains("omar@example.com") && staff.contains("deactivated"),
        "{staff}"
    );
}

#[tokio::test]
async fn editing_one_events_summary_is_caught_and_named() {
    let dir = ledger();
    tamper(dir.path(), &["UPDATE ledger_events SET body = replace(body, 'Sarah Lee', 'Someone Else') WHERE seq = 5"]).await;
    let err = verify_fails(dir.path());
    assert!(
        err.contains("event #5 was changed after it was recorded"),
        "{err}"
    );
    assert!(err.contains("First bad event: #5."), "{err}");
}

/// Rewrites one event consistently, as an attacker who knows the hash function would:
/// new body, its correct leaf hash, and (optionally) its stored Merkle leaf node.
async fn forge(data: &Path, seq: i64, from: &str, to: &str, with_node: bool) {
    use sqlx::ConnectOptions;
    tamper(data, &["DROP TRIGGER IF EXISTS merkle_nodes_no_update"]).await;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("actas.db"))
        .connect()
        .await
        .expect("db");
    let body: String = sqlx::query_scalar("SELECT body FROM ledger_events WHERE seq = ?")
        .bind(seq)
        .fetch_one(&mut conn)
        .await
        .expect("body");
    let forged = body.replace(from, to);
    assert_ne!(forged, body, "the forgery must change something");
    let leaf = actas_core::merkle::leaf_hash(forged.as_bytes());
    sqlx::query("UPDATE ledger_events SET body = ?, leaf_hash = ? WHERE seq = ?")
        .bind(&forged)
        .bind(&leaf[..])
        .bind(seq)
        .execute(&mut conn)
        .await
        .expect("forge");
    if with_node {
        sqlx::query("UPDATE merkle_nodes SET hash = ? WHERE level = 0 AND idx = ?")
            .bind(&leaf[..])
            .bind(seq - 1)
            .execute(&mut conn)
            .await
            .expect("forge node");
    }
}

#[tokio::test]
async fn editing_an_event_and_its_hash_is_caught() {
    let dir = ledger();
    forge(dir.path(), 4, "Li Wei", "Nobody", false).await;
    let err = verify_fails(dir.path());
    // The head signed right after event #4 notices first; without it the link from #5 would.
    assert!(err.contains("event #4 was changed"), "{err}");
    assert!(err.contains("First bad event: #4."), "{err}");
}

#[tokio::test]
async fn deleting_an_event_is_caught_and_named() {
    let dir = ledger();
    tamper(dir.path(), &["DELETE FROM ledger_events WHERE seq = 6"]).await;
    let err = verify_fails(dir.path());
    assert!(
        err.contains("event #6 is missing: the ledger goes from #5 to #7"),
        "{err}"
    );
}

#[tokio::test]
async fn swapping_two_events_is_caught_and_named() {
    let dir = ledger();
    tamper(
        dir.path(),
        &[
            "UPDATE ledger_events SET seq = -3 WHERE seq = 3",
            "UPDATE ledger_events SET seq = 3 WHERE seq = 7",
            "UPDATE ledger_events SET seq = 7 WHERE seq = -3",
        ],
    )
    .await;
    let err = verify_fails(dir.path());
    assert!(
        err.contains("event #3 was changed after it was recorded: its position no longer matches"),
        "{err}"
    );
    assert!(err.contains("First bad event: #3."), "{err}");
}

#[tokio::test]
async fn truncating_the_tail_is_caught_and_named() {
    let dir = ledger();
    tamper(dir.path(), &["DELETE FROM ledger_events WHERE seq >= 8"]).await;
    let err = verify_fails(dir.path());
    assert!(
        err.contains("event #8 is missing: the ledger ends at #7, but a signed tree head"),
        "{err}"
    );
    assert!(err.contains("covers events up to #10"), "{err}");
}

#[tokio::test]
async fn a_forged_tree_head_signature_is_caught() {
    let dir = ledger();
    tamper(
        dir.path(),
        &["UPDATE tree_heads SET signature = zeroblob(64) WHERE size = 5"],
    )
    .await;
    let err = verify_fails(dir.path());
    assert!(err.contains("the tree head of"), "{err}");
    assert!(
        err.contains("covering events #1–#5 is not validly signed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_head_over_a_rewritten_history_is_caught_even_with_a_valid_looking_chain() {
    let dir = ledger();
    // Rewrite the last event consistently (body, hash, Merkle node): only the signed head
    // still remembers the truth.
    forge(
        dir.path(),
        10,
        "Back on the rota for cover",
        "Approved by the CEO in person",
        true,
    )
    .await;
    let err = verify_fails(dir.path());
    assert!(
        err.contains("does not match them: event #10 was changed after it was signed"),
        "{err}"
    );
    assert!(err.contains("First bad event: #10."), "{err}");
}

#[test]
fn bad_input_gets_a_clear_message_and_changes_nothing() {
    let dir = ledger();
    let d = dir.path();
    let before = ok(d, &["audit", "log"], "");

    let r = actas(
        d,
        &[
            "staff",
            "add",
            "not-an-email",
            "--name",
            "X",
            "--role",
            "agent",
        ],
        "agent-password-1\n",
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("email: \"not-an-email\" is not an email address"),
        "{}",
        r.stderr
    );

    let r = actas(
        d,
        &[
            "staff",
            "add",
            "new@example.com",
            "--name",
            "New",
            "--role",
            "boss",
        ],
        "agent-password-1\n",
    );
    assert!(
        r.stderr
            .contains("role: \"boss\" is not a role; use one of agent, lead, director, auditor"),
        "{}",
        r.stderr
    );

    let r = actas(
        d,
        &[
            "staff",
            "add",
            "new@example.com",
            "--name",
            "New",
            "--role",
            "agent",
        ],
        "short\n",
    );
    assert!(
        r.stderr
            .contains("password: a password needs at least 12 characters"),
        "{}",
        r.stderr
    );

    let r = actas(
        d,
        &[
            "staff",
            "add",
            "sarah@example.com",
            "--name",
            "Sarah",
            "--role",
            "agent",
        ],
        "agent-password-1\n",
    );
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);

    let r = actas(
        d,
        &[
            "allow",
            "grant",
            "sarah@example.com",
            "--max-risk",
            "high",
            "--by",
            "sarah@example.com",
            "--reason",
            "Promoting myself today",
        ],
        "",
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("sarah@example.com is an agent, and only a director can do this"),
        "{}",
        r.stderr
    );

    let r = actas(
        d,
        &[
            "allow",
            "grant",
            "sarah@example.com",
            "--max-risk",
            "forbidden",
            "--by",
            "dana@example.com",
            "--reason",
            "x",
        ],
        "",
    );
    assert!(
        r.stderr
            .contains("forbidden capabilities can never be granted"),
        "{}",
        r.stderr
    );

    let r = actas(
        d,
        &[
            "allow",
            "revoke",
            "omar@example.com",
            "--by",
            "dana@example.com",
            "--reason",
            "Left",
        ],
        "",
    );
    assert!(
        r.stderr.contains("omar@example.com is deactivated"),
        "{}",
        r.stderr
    );

    let r = actas(
        d,
        &[
            "allow",
            "grant",
            "sarah@example.com",
            "--max-risk",
            "low",
            "--by",
            "dana@example.com",
            "--reason",
            "  ",
        ],
        "",
    );
    assert!(
        r.stderr.contains("reason: write a short note"),
        "{}",
        r.stderr
    );

    let r = actas(d, &["audit", "log", "--since", "last tuesday"], "");
    assert!(
        r.stderr.contains("since: \"last tuesday\" is not a date"),
        "{}",
        r.stderr
    );

    let r = actas(d, &["init"], "");
    assert!(
        r.stderr
            .contains("is already an actas data directory; nothing was changed"),
        "{}",
        r.stderr
    );

    assert_eq!(
        ok(d, &["audit", "log"], ""),
        before,
        "nothing was written by the refused commands"
    );
    ok(d, &["audit", "verify"], "");
}

#[test]
fn commands_before_init_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = actas(&dir.path().join("none"), &["staff", "list"], "");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("run `actas init` first"), "{}", r.stderr);
}

#[test]
fn policy_check_names_the_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, actas_core::policy::DEFAULT_POLICY).expect("write");
    let out = ok(
        dir.path(),
        &["policy", "check", good.to_str().expect("path")],
        "",
    );
    assert!(out.contains("is valid"), "{out}");
    assert!(
        out.contains("at most 30 minutes, ending after 15 idle minutes"),
        "{out}"
    );
    assert!(!out.contains("warning:"), "{out}");

    // Valid, but weaker: trusted assets pass unmarked and unrecorded, so it says so.
    let trusting = dir.path().join("trusting.toml");
    std::fs::write(
        &trusting,
        actas_core::policy::DEFAULT_POLICY.replacen(
            "[gateway]\n",
            "[gateway]\ntrusted_assets = [\"/build/\"]\n",
            1,
        ),
    )
    .expect("write");
    let out = ok(
        dir.path(),
        &["policy", "check", trusting.to_str().expect("path")],
        "",
    );
    assert!(
        out.contains(
            "warning: gateway.trusted_assets: /build/ is passed on without the product marking it"
        ),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[routes]]\nroute = \"POST /x\"\ncapability = \"nope\"\ndescription = \"did x\"\n",
    )
    .expect("write");
    let r = actas(
        dir.path(),
        &["policy", "check", bad.to_str().expect("path")],
        "",
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "bad.toml, line 3: routes[0].capability: there is no capability called \"nope\""
        ),
        "{}",
        r.stderr
    );
}

/// Runs SQL on the data directory's database, as an old or a newer actas would have left it.
fn sql(data: &Path, statements: &[&str]) {
    let db = data.join("actas.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("db");
        for s in statements {
            sqlx::query(s).execute(&pool).await.expect("sql");
        }
        pool.close().await;
    });
}

#[test]
fn migrate_applies_what_the_database_lacks_and_nothing_uses_a_schema_it_does_not_know() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    ok(d, &["init"], "");
    let out = ok(d, &["migrate"], "");
    assert!(out.contains("up to date"), "{out}");

    // The database as the version before page copies left it, with migrations turned off
    // at start: every command refuses it and says what to run.
    sql(
        d,
        &[
            "DROP TABLE page_copies",
            "DROP TABLE page_copy_use",
            "DELETE FROM _sqlx_migrations WHERE version = 11",
        ],
    );
    let config = d.join("actas.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let off = text.replace("migrate_on_start = true", "migrate_on_start = false");
    assert_ne!(off, text, "actas init writes [store] migrate_on_start");
    std::fs::write(&config, off).expect("write");
    let r = actas(d, &["staff", "list"], "");
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("needs a migration")
            && r.stderr.contains("0011 page copies")
            && r.stderr.contains("run `actas migrate`"),
        "{}",
        r.stderr
    );
    let out = ok(d, &["migrate"], "");
    assert!(
        out.contains("Applied 1 migration") && out.contains("0011 page copies"),
        "{out}"
    );
    ok(d, &["staff", "list"], "");
    ok(d, &["audit", "verify"], "");

    // A newer actas migrated it further: this version refuses it, whatever the setting.
    sql(
        d,
        &[
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (9999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
        ],
    );
    std::fs::write(&config, &text).expect("migrations on at start again");
    for args in [&["staff", "list"][..], &["migrate"][..]] {
        let r = actas(d, args, "");
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("changed by a newer actas") && r.stderr.contains("9999"),
            "{args:?}: {}",
            r.stderr
        );
    }
}
