//! The test vectors in `docs/extract-format.md` are what this code computes: a third
//! party writing a verifier from the document checks against the same numbers.

use actas_core::Timestamp;
use actas_core::checkpoint::{AccountCheckpoint, Origin};
use actas_core::ids::AccountId;
use actas_core::merkle::{MemoryTree, leaf_hash, multi_proof_ranges, node_hash};
use actas_core::tree_head::{LedgerKey, TreeHead};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Every value the document lists, by name.
fn vectors() -> Vec<(&'static str, String)> {
    let key = LedgerKey::from_bytes(&[9; 32]).expect("key");
    let mut out = vec![("public key", key.public().to_base64())];
    out.push(("key id", key.public().key_id().to_string()));
    out.push(("leaf of the empty body", hex::encode(leaf_hash(b""))));
    let mut tree = MemoryTree::new();
    for i in 0..7u8 {
        tree.push_data(&[i]);
    }
    out.push((
        "node of leaves 0 and 1",
        hex::encode(node_hash(&leaf_hash(&[0]), &leaf_hash(&[1]))),
    ));
    out.push(("root of 7 leaves", hex::encode(tree.root())));
    let ranges = multi_proof_ranges(&[1, 4], 7);
    let shown: Vec<String> = ranges
        .iter()
        .map(|r| format!("[{}, {})", r.start, r.start + r.len))
        .collect();
    out.push(("multi-leaf ranges for leaves 1 and 4 of 7", shown.join(" ")));
    let proof = tree.multi_proof(&[1, 4], 7).expect("proof");
    out.push((
        "multi-leaf proof for leaves 1 and 4 of 7",
        STANDARD.encode(proof.concat()),
    ));
    let head = TreeHead {
        size: 7,
        time: Timestamp::from_millis(1_764_547_200_000),
        root: tree.root(),
    };
    out.push(("tree head message", hex::encode(head.message())));
    let sth = key.sign(head);
    out.push((
        "tree head signature",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sth.signature),
    ));
    let cp = AccountCheckpoint {
        account: AccountId::parse("acme").expect("id"),
        events: 2,
        last_leaf: leaf_hash(&[4]),
        tree_size: 7,
        root: tree.root(),
        time: Timestamp::from_millis(1_764_547_200_500),
    };
    out.push(("checkpoint message", hex::encode(cp.message())));
    let signed = key.sign_checkpoint(cp);
    out.push((
        "checkpoint signature",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed.signature),
    ));
    let origin = Origin::parse("actas.example.com/ledger").expect("origin");
    out.push(("note", key.sign_note(&origin, &head)));
    out.push(("verifier key", key.public().note_verifier_key(&origin)));
    out
}

#[test]
fn the_documented_vectors_are_what_actas_computes() {
    let doc = include_str!("../../../docs/extract-format.md");
    for (name, value) in vectors() {
        if std::env::var_os("PRINT_VECTORS").is_some() {
            println!("{name}:\n{value}\n");
            continue;
        }
        for line in value.lines() {
            assert!(doc.contains(line), "the document lacks the {name}: {line}");
        }
    }
}
