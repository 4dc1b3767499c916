//! The ledger's contract, on a real SQLite file and on a real PostgreSQL database: group
//! commit under concurrency, durability across a SIGKILL, O(log n) proofs, and detection
//! of tampering.

mod common;

use actas_core::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use actas_core::verify::Problem;
use actas_store::sqlite::{SqliteConfig, SqliteStore};
use actas_store::{EventFilter, HeadSchedule, Store, Unit};
use common::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn rare_heads() -> HeadSchedule {
    HeadSchedule {
        every_events: 1_000,
        every: Duration::from_secs(3600),
    }
}

async fn ten_thousand_appends_from_64_tasks_are_all_present_in_order_and_verify(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(rare_heads()).await;
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..157u64 {
                let n = t * 1000 + i;
                seqs.push(store.append(event(n)).await.expect("append").seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.truncate(all.len());
    let total = 64 * 157;
    assert!(total >= 10_000);
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        total as usize,
        "every append got its own sequence number"
    );
    assert_eq!(store.ledger_size().await.expect("size"), total);
    assert_eq!(
        *unique.iter().max().expect("max"),
        total,
        "gap-free: numbers are exactly 1..=n"
    );
    assert!(
        store.ledger_stats().batches() < store.ledger_stats().units(),
        "concurrent appends were grouped: {} batches for {} units",
        store.ledger_stats().batches(),
        store.ledger_stats().units()
    );
    store.close().await.expect("close");

    let store = fresh.open(rare_heads()).await;
    let report = store
        .verify(&public(), &mut |_, _| {})
        .await
        .expect("read")
        .expect("verifies");
    assert_eq!(report.events, total);
    assert!(
        report.heads >= 10,
        "a head every 1,000 events plus one at close: {}",
        report.heads
    );
    assert_eq!(
        report.newest_head,
        Some(total),
        "close signs a head over everything"
    );
    store.close().await.expect("close");
}
on_both!(
    ten_thousand_appends_from_64_tasks_are_all_present_in_order_and_verify,
    4
);

async fn a_change_and_its_event_commit_together_or_not_at_all(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(rare_heads()).await;
    let add = |email: &str| actas_store::Change::AddStaff {
        email: actas_core::staff::Email::parse(email).expect("email"),
        name: actas_core::staff::DisplayName::parse("Sam").expect("name"),
        role: actas_core::staff::Role::Agent,
        password_hash: "x".into(),
    };
    store
        .commit(Unit::change(add("sam@example.com"), staff_added(1)))
        .await
        .expect("first");
    let err = store
        .commit(Unit::change(add("SAM@example.com"), staff_added(2)))
        .await
        .expect_err("duplicate email");
    assert!(
        matches!(err, actas_store::StoreError::Duplicate(_)),
        "{err:?}"
    );
    assert_eq!(
        store.ledger_size().await.expect("size"),
        1,
        "the refused change wrote no event"
    );
    assert_eq!(store.list_staff().await.expect("staff").len(), 1);
    store.close().await.expect("close");
}
on_both!(a_change_and_its_event_commit_together_or_not_at_all, 2);

async fn one_refused_unit_does_not_sink_the_others_in_its_batch(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(rare_heads()).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let change = actas_store::Change::DisableStaff {
                staff: actas_core::ids::StaffId::new(999).expect("id"),
                at: actas_core::Timestamp::now(),
            };
            if i % 5 == 0 {
                store
                    .commit(Unit::change(change, staff_added(i + 1)))
                    .await
                    .map(|_| ())
            } else {
                store.append(event(i as u64)).await.map(|_| ())
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task").is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 40);
    assert_eq!(store.ledger_size().await.expect("size"), 40);
    store.close().await.expect("close");
    let store = fresh.open(rare_heads()).await;
    assert!(
        store
            .verify(&public(), &mut |_, _| {})
            .await
            .expect("read")
            .is_ok()
    );
    store.close().await.expect("close");
}
on_both!(one_refused_unit_does_not_sink_the_others_in_its_batch, 4);

async fn inclusion_proofs_verify_up_to_a_hundred_thousand_events_and_heads_are_consistent(
    backend: Backend,
) {
    let fresh = Fresh::new(backend).await;
    let store = fresh
        .open(HeadSchedule {
            every_events: 30_000,
            every: Duration::from_secs(3600),
        })
        .await;
    let n: u64 = 100_000;
    let mut next = 0u64;
    while next < n {
        let count = 2_000.min(n - next);
        let start = next;
        store
            .commit(Unit::new(vec![], move |_| {
                (start..start + count).map(event).collect()
            }))
            .await
            .expect("append");
        next += count;
    }
    store.sign_head_now().await.expect("head");
    let heads = store.tree_heads().await.expect("heads");
    assert!(heads.len() >= 2);
    let newest = heads.last().expect("newest").clone();
    assert_eq!(newest.head.size, n);
    for h in &heads {
        public().verify(h).expect("signed");
    }

    for seq in [1, 2, 3, 1_000, 32_768, 32_769, 65_537, 99_999, 100_000] {
        let ev = store
            .events(&EventFilter::default(), seq - 1, 1)
            .await
            .expect("event")
            .pop()
            .expect("present");
        assert_eq!(ev.body.seq, seq);
        assert_eq!(leaf_hash(ev.raw.as_bytes()), ev.leaf_hash);
        let proof = store.inclusion_proof(seq, n).await.expect("proof");
        assert!(
            proof.len() <= 17,
            "log2(100000) ≈ 17 hashes, got {}",
            proof.len()
        );
        verify_inclusion(seq - 1, n, &ev.leaf_hash, &proof, &newest.head.root)
            .expect("inclusion verifies");
        let other = leaf_hash(b"some other event");
        assert!(verify_inclusion(seq - 1, n, &other, &proof, &newest.head.root).is_err());
    }

    // One multi-leaf proof for every tenth event (sparse leaves, dense upper levels,
    // nodes shared between their paths sent once) leads to the signed root, and is far
    // smaller than a proof per event.
    let every_tenth: Vec<u64> = (1..=n).step_by(10).collect();
    let multi = store.multi_proof(&every_tenth, n).await.expect("proof");
    let leaves = store
        .events(&EventFilter::default(), 0, n as u32)
        .await
        .expect("events");
    let chosen: Vec<(u64, [u8; 32])> = every_tenth
        .iter()
        .map(|&seq| (seq - 1, leaves[seq as usize - 1].leaf_hash))
        .collect();
    assert_eq!(
        actas_core::merkle::root_from_multi(n, &chosen, &multi),
        Ok(newest.head.root)
    );
    assert!(multi.len() <= 4 * every_tenth.len(), "{}", multi.len());

    let old = &heads[0];
    let proof = store
        .consistency_proof(old.head.size, newest.head.size)
        .await
        .expect("proof");
    verify_consistency(
        old.head.size,
        newest.head.size,
        &old.head.root,
        &newest.head.root,
        &proof,
    )
    .expect("consistent");
    let mut wrong = old.head.root;
    wrong[0] ^= 1;
    assert!(
        verify_consistency(
            old.head.size,
            newest.head.size,
            &wrong,
            &newest.head.root,
            &proof
        )
        .is_err()
    );

    // Smaller ledgers: every size from 1 to 40 against its own root.
    let fresh2 = Fresh::new(backend).await;
    let store2 = fresh2.open(rare_heads()).await;
    for size in 1..=40u64 {
        store2.append(event(size)).await.expect("append");
        let head = store2.sign_head_now().await.expect("head").expect("grew");
        let odd: Vec<u64> = (1..=size).step_by(2).collect();
        let multi = store2.multi_proof(&odd, size).await.expect("proof");
        let mut chosen = Vec::new();
        for seq in 1..=size {
            let ev = store2
                .events(&EventFilter::default(), seq - 1, 1)
                .await
                .expect("ev")
                .pop()
                .expect("ev");
            let proof = store2.inclusion_proof(seq, size).await.expect("proof");
            verify_inclusion(seq - 1, size, &ev.leaf_hash, &proof, &head.head.root)
                .expect("verifies");
            if seq % 2 == 1 {
                chosen.push((seq - 1, ev.leaf_hash));
            }
        }
        assert_eq!(
            actas_core::merkle::root_from_multi(size, &chosen, &multi),
            Ok(head.head.root),
            "size {size}"
        );
    }
    store2.close().await.expect("close");
    store.close().await.expect("close");
}
on_both!(
    inclusion_proofs_verify_up_to_a_hundred_thousand_events_and_heads_are_consistent,
    2
);

async fn a_proof_from_a_tampered_ledger_does_not_verify_against_the_signed_head(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(rare_heads()).await;
    for i in 0..20 {
        store.append(event(i)).await.expect("append");
    }
    let head = store.sign_head_now().await.expect("head").expect("head");
    // An attacker with the file rewrites a stored node (the triggers are theirs to drop).
    fresh
        .tamper(
            "DROP TRIGGER merkle_nodes_no_update;
             UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 13",
            "ALTER TABLE merkle_nodes DISABLE TRIGGER USER;
             UPDATE merkle_nodes SET hash = decode(repeat('00', 32), 'hex') WHERE level = 0 AND idx = 13",
        )
        .await;
    let ev = store
        .events(&EventFilter::default(), 12, 1)
        .await
        .expect("ev")
        .pop()
        .expect("ev");
    let proof = store.inclusion_proof(13, 20).await.expect("proof");
    assert!(verify_inclusion(12, 20, &ev.leaf_hash, &proof, &head.head.root).is_err());
    store.close().await.expect("close");
}
on_both!(
    a_proof_from_a_tampered_ledger_does_not_verify_against_the_signed_head,
    2
);

async fn an_edited_event_is_named_by_verification(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(rare_heads()).await;
    for i in 0..30 {
        store.append(event(i)).await.expect("append");
    }
    store.sign_head_now().await.expect("head");
    fresh
        .tamper(
            "DROP TRIGGER ledger_events_no_update;
             UPDATE ledger_events SET body = replace(body, 'Check invoice', 'Check nothing') WHERE seq = 17",
            "ALTER TABLE ledger_events DISABLE TRIGGER USER;
             UPDATE ledger_events SET body = replace(body, 'Check invoice', 'Check nothing') WHERE seq = 17",
        )
        .await;
    let problem = store
        .verify(&public(), &mut |_, _| {})
        .await
        .expect("read")
        .expect_err("detected");
    assert_eq!(problem, Problem::Changed { seq: 17 });
    store.close().await.expect("close");
}
on_both!(an_edited_event_is_named_by_verification, 2);

async fn the_ledger_tables_refuse_updates_and_deletes(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let store = fresh.open(rare_heads()).await;
    for i in 0..3 {
        store.append(event(i)).await.expect("append");
    }
    store.sign_head_now().await.expect("head");
    for (sqlite, postgres) in [
        (
            "UPDATE ledger_events SET body = '{}' WHERE seq = 2",
            "UPDATE ledger_events SET body = '{}' WHERE seq = 2",
        ),
        (
            "DELETE FROM ledger_events WHERE seq = 3",
            "DELETE FROM ledger_events WHERE seq = 3",
        ),
        (
            "UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 0",
            "UPDATE merkle_nodes SET hash = '' WHERE level = 0 AND idx = 0",
        ),
        (
            "UPDATE tree_heads SET size = 1",
            "UPDATE tree_heads SET size = 1",
        ),
    ] {
        let err = fresh
            .try_sql(sqlite, postgres)
            .await
            .expect_err("the ledger is append-only");
        assert!(err.contains("append-only"), "{err}");
    }
    if backend == Backend::Postgres {
        for sql in [
            "DELETE FROM merkle_nodes",
            "DELETE FROM tree_heads",
            "TRUNCATE ledger_events",
            "DELETE FROM ledger_tip",
        ] {
            fresh.try_sql("", sql).await.expect_err(sql);
        }
    }
    assert!(
        store
            .verify(&public(), &mut |_, _| {})
            .await
            .expect("read")
            .is_ok()
    );
    store.close().await.expect("close");
}
on_both!(the_ledger_tables_refuse_updates_and_deletes, 2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_writer_reconnects_after_its_connection_is_cut() {
    let fresh = Fresh::new(Backend::Postgres).await;
    let store = fresh.open(rare_heads()).await;
    for i in 0..5 {
        store.append(event(i)).await.expect("append");
    }
    // The database ends every connection actas has (a restart or failover looks so).
    let name = fresh.name.clone().expect("a PostgreSQL database");
    fresh
        .tamper(
            "",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ),
        )
        .await;
    let mut next = None;
    for _ in 0..3 {
        // The first write may find the connection gone (and says nothing was changed);
        // the next opens a new one.
        if let Ok(a) = store.append(event(99)).await {
            next = Some(a.seq);
            break;
        }
    }
    assert_eq!(next, Some(6), "the ledger carries on, gap-free");
    store.sign_head_now().await.expect("head");
    let report = store
        .verify(&public(), &mut |_, _| {})
        .await
        .expect("read")
        .expect("verifies");
    assert_eq!(report.events, 6);
    store.close().await.expect("close");
}

/// The child half of the crash test: appends as fast as it can, printing each sequence
/// number once `append` has returned (i.e. once it is durable), until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_sigkilled_writer_loses_nothing_it_acknowledged as its child process"]
async fn crash_child() {
    let Ok(url) = std::env::var("ACTAS_CRASH_URL") else {
        return;
    };
    let store = open_url(
        &url,
        HeadSchedule {
            every_events: 500,
            every: Duration::from_millis(200),
        },
    )
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for t in 0..16u64 {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let a = store
                    .append(event(t * 1_000_000 + i))
                    .await
                    .expect("append");
                if tx.send(a.seq).is_err() {
                    break;
                }
            }
        });
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    while let Some(seq) = rx.recv().await {
        let _ = writeln!(out, "ACK {seq}");
        let _ = out.flush();
    }
}

async fn a_sigkilled_writer_loses_nothing_it_acknowledged(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ACTAS_CRASH_URL", fresh.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ACK ") {
                acked.push(n.trim().parse::<u64>().expect("number"));
                if acked.len() == 3_000 {
                    break;
                }
            }
        }
        acked
    })
    .await
    .expect("reader");
    // Kill it mid-stream, with appends still in flight.
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = child.wait();
    assert_eq!(
        acked.len(),
        3_000,
        "the child acknowledged appends before it was killed"
    );

    let store = fresh.open(rare_heads()).await;
    let size = store.ledger_size().await.expect("size");
    let max_acked = *acked.iter().max().expect("max");
    assert!(
        size >= max_acked,
        "every acknowledged append survived: size {size}, acked up to {max_acked}"
    );
    let present: HashSet<u64> = store
        .events(&EventFilter::default(), 0, u32::MAX)
        .await
        .expect("events")
        .iter()
        .map(|e| e.body.seq)
        .collect();
    for seq in &acked {
        assert!(
            present.contains(seq),
            "acknowledged event #{seq} is missing after the crash"
        );
    }
    let report = store
        .verify(&public(), &mut |_, _| {})
        .await
        .expect("read")
        .expect("ledger verifies after a crash");
    assert_eq!(report.events, size);
    // And the ledger carries on from where it stopped.
    let next = store.append(event(1)).await.expect("append after crash");
    assert_eq!(next.seq, size + 1);
    store.close().await.expect("close");
}
on_both!(a_sigkilled_writer_loses_nothing_it_acknowledged, 2);

#[tokio::test]
async fn the_log_is_checkpointed_in_the_background_not_by_a_waiting_commit() {
    async fn fill(store: &SqliteStore) {
        // Well over SQLite's default of a checkpoint every 1,000 pages of log.
        for chunk in 0..10u64 {
            store
                .commit(Unit::new(vec![], move |_| {
                    (chunk * 1_000..(chunk + 1) * 1_000).map(event).collect()
                }))
                .await
                .expect("append");
        }
    }
    let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);

    // With the background checkpointer held off, the commits leave the log alone: the
    // writer's connection never checkpoints, so no commit waits for one.
    let held = db();
    let store = SqliteStore::open(
        &held.path,
        key(),
        SqliteConfig {
            heads: rare_heads(),
            checkpoint_every: Duration::from_secs(3600),
            ..SqliteConfig::default()
        },
    )
    .await
    .expect("open");
    let before = size(&held.path);
    fill(&store).await;
    assert_eq!(size(&held.path), before, "a commit checkpointed the log");
    store.close().await.expect("close");

    // With it running, the log reaches the database file within moments.
    let db = db();
    let store = open(&db.path, rare_heads()).await;
    let before = size(&db.path);
    fill(&store).await;
    let mut waited = Duration::ZERO;
    while size(&db.path) <= before && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert!(size(&db.path) > before, "the log was never checkpointed");
    store.close().await.expect("close");
}

/// A consent change of one of three accounts.
fn account_event(n: u64) -> actas_core::event::NewEvent {
    use actas_core::account::{AccountRef, Consent};
    use actas_core::event::{Actor, EventData, NewEvent};
    let id = ["acme", "globex", "initech"][(n % 3) as usize];
    let account = AccountRef {
        id: actas_core::ids::AccountId::parse(id).expect("id"),
        name: actas_core::staff::DisplayName::parse(id).expect("name"),
    };
    NewEvent::new(
        Actor::Customer(account.clone()),
        EventData::ConsentChanged {
            account,
            consent: Consent::Allowed,
            via: None,
        },
    )
}

/// Ten thousand events of three accounts, written from concurrent tasks and across a
/// restart of the store (so the writer's memory of each account's history starts
/// afresh): every event is salted, each account's events link up in order, the whole
/// ledger verifies, and every pair of its signed heads is consistent.
async fn account_histories_link_and_every_pair_of_heads_is_consistent(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let schedule = HeadSchedule {
        every_events: 250,
        every: Duration::from_secs(3600),
    };
    for half in 0..2u64 {
        let store = fresh.open(schedule).await;
        let mut tasks = Vec::new();
        for t in 0..10u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50u64 {
                    let first = half * 5_000 + t * 500 + i * 10;
                    store
                        .commit(Unit::new(vec![], move |_| {
                            (first..first + 10).map(account_event).collect()
                        }))
                        .await
                        .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        store.close().await.expect("close");
    }
    let store = fresh.open(schedule).await;
    assert_eq!(store.ledger_size().await.expect("size"), 10_000);
    store
        .verify(&public(), &mut |_, _| {})
        .await
        .expect("read")
        .expect("verifies, account links included");
    for id in ["acme", "globex", "initech"] {
        let filter = EventFilter {
            account: Some(actas_core::ids::AccountId::parse(id).expect("id")),
            ..EventFilter::default()
        };
        let events = store.events(&filter, 0, 10_000).await.expect("events");
        assert!(events.len() > 3_000, "{id}");
        let mut prev = [0u8; 32];
        for (i, e) in events.iter().enumerate() {
            let private = e.body.private.expect("version 2");
            let link = private.link.expect("linked");
            assert_eq!((link.index, link.prev), (i as u64, prev), "{id} event {i}");
            prev = e.leaf_hash;
        }
        // What an extract reads: the account's numbers, then their exact texts (read in
        // lots, which 3,000 events cross), refused for any number not the account's.
        let account = actas_core::ids::AccountId::parse(id).expect("id");
        let seqs = store
            .account_event_seqs(&account, u64::MAX)
            .await
            .expect("seqs");
        let want: Vec<(u64, String)> = events.iter().map(|e| (e.body.seq, e.raw.clone())).collect();
        assert_eq!(
            seqs,
            want.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            "{id}"
        );
        let texts = store
            .account_event_texts(&account, &seqs)
            .await
            .expect("texts");
        assert!(
            texts == want,
            "{id}: the texts are the events' own, in order"
        );
        let early = store
            .account_event_seqs(&account, 5_000)
            .await
            .expect("seqs");
        assert_eq!(
            early,
            seqs.iter()
                .copied()
                .filter(|&s| s <= 5_000)
                .collect::<Vec<_>>()
        );
        let mut gap = seqs.clone();
        gap.remove(2_500);
        assert!(
            store.account_event_texts(&account, &gap).await.is_err(),
            "{id}: a gap"
        );
        let mut foreign = seqs.clone();
        foreign[2_500] += 1;
        assert!(
            store.account_event_texts(&account, &foreign).await.is_err(),
            "{id}: another account's event"
        );
    }
    let salts: HashSet<[u8; 16]> = store
        .events(&EventFilter::default(), 0, 10_000)
        .await
        .expect("events")
        .iter()
        .map(|e| e.body.private.expect("salted").salt)
        .collect();
    assert_eq!(salts.len(), 10_000, "every salt is fresh");
    let heads = store.tree_heads().await.expect("heads");
    assert!(heads.len() >= 20, "{}", heads.len());
    for (i, old) in heads.iter().enumerate() {
        for new in &heads[i..] {
            let proof = store
                .consistency_proof(old.head.size, new.head.size)
                .await
                .expect("proof");
            verify_consistency(
                old.head.size,
                new.head.size,
                &old.head.root,
                &new.head.root,
                &proof,
            )
            .unwrap_or_else(|e| panic!("{} to {}: {e}", old.head.size, new.head.size));
        }
    }
    store.close().await.expect("close");
}
on_both!(
    account_histories_link_and_every_pair_of_heads_is_consistent,
    4
);

/// Two instances on one ledger, and the operator replaces the key through one of them
/// while the other keeps running: that one may still append, but it signs no head past
/// the replacement (it reads replacements under the append lock, so it sees another
/// instance's), and the ledger still verifies under the new key.
async fn an_instance_whose_key_was_replaced_elsewhere_signs_no_more_heads(backend: Backend) {
    use actas_core::event::{Actor, EventData, NewEvent};
    use base64::Engine;
    let fresh = Fresh::new(backend).await;
    let first = fresh.open(rare_heads()).await;
    for n in 0..5 {
        first.append(event(n)).await.expect("append");
    }
    first.sign_head_now().await.expect("head").expect("grew");
    let signed_with_the_key = || {
        Unit::new(vec![actas_store::Change::RequireLedgerKeyCurrent], |_| {
            vec![event(99)]
        })
    };
    first
        .commit(signed_with_the_key())
        .await
        .expect("its key is current");
    // The other instance replaces the key and signs the last head of the old one.
    let second = fresh.open(rare_heads()).await;
    let new = actas_core::tree_head::LedgerKey::from_bytes(&[9; 32]).expect("key");
    let rotated = second
        .append(NewEvent::new(
            Actor::System,
            EventData::LedgerKeyRotated {
                old_key: public().to_base64(),
                new_key: new.public().to_base64(),
                endorsement: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(new.endorse_takeover(&public())),
            },
        ))
        .await
        .expect("rotation")
        .seq;
    let last = second.sign_head_now().await.expect("head").expect("grew");
    assert_eq!(
        last.head.size, rotated,
        "the old key signs up to its replacement"
    );
    second.close().await.expect("close");
    // The first instance, still on the old key, appends, but is refused anything signed
    // with it: a receipt's event, and a head.
    first.append(event(6)).await.expect("still appends");
    let refused = first
        .commit(signed_with_the_key())
        .await
        .expect_err("no receipt");
    assert!(
        refused.to_string().contains(&format!(
            "was replaced at event #{rotated}, so it signs no more receipts"
        )),
        "{refused}"
    );
    let refused = first.sign_head_now().await.expect_err("no head");
    assert!(
        refused.to_string().contains(&format!(
            "was replaced at event #{rotated}, so it signs no more tree heads"
        )),
        "{refused}"
    );
    // Nor does a batch that makes a head due sign one.
    for n in 7..1_010 {
        first.append(event(n)).await.expect("append");
    }
    let heads = first.tree_heads().await.expect("heads");
    assert_eq!(
        heads.last().map(|h| h.head.size),
        Some(rotated),
        "no head past it"
    );
    let _ = first.close().await;
}
on_both!(
    an_instance_whose_key_was_replaced_elsewhere_signs_no_more_heads,
    4
);
