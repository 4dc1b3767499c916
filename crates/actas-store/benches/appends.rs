//! Durable appends: the group-commit writer against a baseline of one transaction per
//! event, both on real SQLite files with `synchronous = FULL`, measured in the same run
//! at concurrency 1, 16 and 256. One iteration = one append from each of C concurrent
//! tasks; throughput is reported in events.

use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::StaffId;
use actas_core::merkle::{Frontier, Hash, leaf_hash};
use actas_core::staff::{DisplayName, Email, Role, StaffRef};
use actas_core::tree_head::LedgerKey;
use actas_store::sqlite::{SqliteConfig, SqliteStore};
use actas_store::{HeadSchedule, Store};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

fn event(n: u64) -> NewEvent {
    let staff = StaffRef {
        id: StaffId::new(1 + (n % 1000) as i64).expect("id"),
        email: Email::parse(&format!("agent{n}@example.com")).expect("email"),
        name: DisplayName::parse("Agent Smith").expect("name"),
    };
    NewEvent::new(
        Actor::System,
        EventData::StaffAdded {
            staff,
            role: Role::Agent,
        },
    )
}

fn key() -> LedgerKey {
    LedgerKey::from_bytes(&[5; 32]).expect("key")
}

/// The baseline: every append is its own `BEGIN IMMEDIATE … COMMIT` (one fsync each),
/// serialized by a mutex, writing the same rows as the real writer.
struct OneTxPerEvent {
    conn: Mutex<(SqliteConnection, Frontier, Hash, u64)>,
}

impl OneTxPerEvent {
    async fn append(&self, e: NewEvent) {
        let mut g = self.conn.lock().await;
        let (conn, frontier, prev, size) = &mut *g;
        let seq = *size + 1;
        let body = e.into_body(seq, Timestamp::now(), prev).encode();
        let leaf = leaf_hash(body.as_bytes());
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .expect("begin");
        sqlx::query("INSERT INTO ledger_events (seq, time, kind, account, session, body, leaf_hash) VALUES (?, ?, ?, NULL, NULL, ?, ?)")
            .bind(seq as i64)
            .bind(Timestamp::now().as_millis())
            .bind("staff.added")
            .bind(&body)
            .bind(&leaf[..])
            .execute(&mut *conn)
            .await
            .expect("insert");
        let mut nodes = Vec::new();
        frontier.push(leaf, |id, h| nodes.push((id, *h)));
        for (id, h) in nodes {
            sqlx::query("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)")
                .bind(i64::from(id.level))
                .bind(id.index as i64)
                .bind(&h[..])
                .execute(&mut *conn)
                .await
                .expect("node");
        }
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .expect("commit");
        *prev = leaf;
        *size = seq;
    }
}

fn appends(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let heads = HeadSchedule {
        every_events: 1000,
        every: Duration::from_secs(10),
    };

    let group_store = rt.block_on(async {
        Arc::new(
            SqliteStore::open(
                &dir.path().join("group.db"),
                key(),
                SqliteConfig {
                    heads,
                    ..SqliteConfig::default()
                },
            )
            .await
            .expect("open"),
        )
    });
    let baseline = rt.block_on(async {
        let path = dir.path().join("baseline.db");
        let s = SqliteStore::open(&path, key(), SqliteConfig::default())
            .await
            .expect("migrate");
        s.close().await.expect("close");
        let conn = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .connect()
            .await
            .expect("connect");
        Arc::new(OneTxPerEvent {
            conn: Mutex::new((conn, Frontier::new(), [0; 32], 0)),
        })
    });

    let mut g = c.benchmark_group("durable appends");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.warm_up_time(Duration::from_secs(1));
    for conc in [1u64, 16, 256] {
        g.throughput(Throughput::Elements(conc));
        g.bench_with_input(BenchmarkId::new("group commit", conc), &conc, |b, &conc| {
            b.iter_custom(|iters| {
                let store = group_store.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let tasks: Vec<_> = (0..conc)
                            .map(|t| {
                                let s = store.clone();
                                tokio::spawn(async move {
                                    s.append(event(i * 1000 + t)).await.expect("append")
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("task");
                        }
                    }
                    start.elapsed()
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("baseline: one transaction per event", conc),
            &conc,
            |b, &conc| {
                b.iter_custom(|iters| {
                    let base = baseline.clone();
                    rt.block_on(async move {
                        let start = Instant::now();
                        for i in 0..iters {
                            let tasks: Vec<_> = (0..conc)
                                .map(|t| {
                                    let s = base.clone();
                                    tokio::spawn(async move { s.append(event(i * 1000 + t)).await })
                                })
                                .collect();
                            for t in tasks {
                                t.await.expect("task");
                            }
                        }
                        start.elapsed()
                    })
                })
            },
        );
    }
    g.finish();
    rt.block_on(async { group_store.close().await.expect("close") });
}

criterion_group!(benches, appends);
criterion_main!(benches);
