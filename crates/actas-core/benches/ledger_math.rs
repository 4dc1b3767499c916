//! Ledger math benchmarks: leaf hashing, proof generation and full verification.
//! Run with `cargo xtask bench`; figures are reported in BENCHMARKS.md.

use actas_core::Timestamp;
use actas_core::account::AccountRef;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::{AccountId, SessionId, StaffId};
use actas_core::merkle::{Hash, MemoryTree, leaf_hash, verify_inclusion};
use actas_core::policy::Policy;
use actas_core::staff::{DisplayName, Email, StaffRef};
use actas_core::text::TicketRef;
use actas_core::tree_head::{LedgerKey, TreeHead};
use actas_core::verify::{StoredEvent, Verifier};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use std::hint::black_box;

struct Row {
    body: String,
    leaf: Hash,
    session: String,
}

/// A realistic ledger: page views inside a session (about 450 bytes each).
fn ledger(n: u64) -> Vec<Row> {
    let p = Policy::starter();
    let staff = StaffRef {
        id: StaffId::new(7).expect("id"),
        email: Email::parse("sarah.lee@example.com").expect("email"),
        name: DisplayName::parse("Sarah Lee").expect("name"),
    };
    let account = AccountRef {
        id: AccountId::parse("acme-co").expect("id"),
        name: DisplayName::parse("Acme Co").expect("name"),
    };
    let ticket = TicketRef::parse("#4821", &p.ticket_pattern).expect("ticket");
    let session = SessionId::random();
    let mut prev = [0u8; 32];
    (1..=n)
        .map(|seq| {
            let data = EventData::PageViewed {
                session,
                account: account.clone(),
                ticket: ticket.clone(),
                path: format!("/loans/LA-{seq}"),
                description: format!("viewed loan LA-{seq}"),
            };
            let body = NewEvent::new(Actor::Staff(staff.clone()), data)
                .into_body(
                    seq,
                    Timestamp::from_millis(1_700_000_000_000 + seq as i64),
                    &prev,
                )
                .encode();
            let leaf = leaf_hash(body.as_bytes());
            prev = leaf;
            Row {
                body,
                leaf,
                session: session.to_string(),
            }
        })
        .collect()
}

fn hashing(c: &mut Criterion) {
    let rows = ledger(1);
    let body = rows[0].body.as_bytes();
    let mut g = c.benchmark_group("leaf_hash");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("event body ({} bytes)", body.len()), |b| {
        b.iter(|| leaf_hash(black_box(body)))
    });
    // Baseline in the same run: plain SHA-256 of the same bytes.
    g.bench_function("baseline: sha256 of the same bytes", |b| {
        b.iter(|| -> [u8; 32] { Sha256::digest(black_box(body)).into() })
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let mut tree = MemoryTree::new();
    for i in 0..1_000_000u64 {
        tree.push(leaf_hash(&i.to_be_bytes()));
    }
    let size = tree.size();
    let root = tree.root();
    let mut g = c.benchmark_group("proofs (1,000,000 leaves)");
    g.bench_function("inclusion proof: generate", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % size;
            tree.inclusion_proof(black_box(i), size).expect("proof")
        })
    });
    let proof = tree.inclusion_proof(123_456, size).expect("proof");
    let leaf = leaf_hash(&123_456u64.to_be_bytes());
    g.bench_function("inclusion proof: verify", |b| {
        b.iter(|| verify_inclusion(123_456, size, black_box(&leaf), &proof, &root))
    });
    g.bench_function("consistency proof: generate", |b| {
        b.iter(|| {
            tree.consistency_proof(black_box(654_321), size)
                .expect("proof")
        })
    });
    g.finish();
}

fn verification(c: &mut Criterion) {
    let n = 200_000u64;
    let rows = ledger(n);
    let key = LedgerKey::from_bytes(&[9; 32]).expect("key");
    let mut tree = MemoryTree::new();
    for r in &rows {
        tree.push(r.leaf);
    }
    let heads: Vec<_> = (1..=n / 1000)
        .map(|k| {
            let size = k * 1000;
            key.sign(TreeHead {
                size,
                time: Timestamp::from_millis(0),
                root: tree.root_at(size).expect("root"),
            })
        })
        .collect();
    let mut g = c.benchmark_group("full verification");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_with_input(
        BenchmarkId::new("verify events (one core)", n),
        &rows,
        |b, rows| {
            b.iter(|| {
                let mut v = Verifier::new(&key.public(), heads.clone()).expect("heads");
                for (i, r) in rows.iter().enumerate() {
                    let seq = i as u64 + 1;
                    v.push(StoredEvent {
                        seq,
                        time: 1_700_000_000_000 + seq as i64,
                        kind: "session.page_viewed",
                        account: Some("acme-co"),
                        session: Some(&r.session),
                        body: &r.body,
                        leaf_hash: r.leaf,
                    })
                    .expect("valid");
                }
                v.finish().expect("valid")
            })
        },
    );
    // Baseline in the same run: only hashing every body, nothing else.
    g.bench_with_input(
        BenchmarkId::new("baseline: leaf hashes only", n),
        &rows,
        |b, rows| {
            b.iter(|| {
                rows.iter()
                    .fold(0u8, |acc, r| acc ^ leaf_hash(r.body.as_bytes())[0])
            })
        },
    );
    g.finish();
}

criterion_group!(benches, hashing, proofs, verification);
criterion_main!(benches);
