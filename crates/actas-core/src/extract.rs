//! Verifiable audit extracts: every event of one account, each with its RFC 6962
//! inclusion proof against one signed tree head, plus the public key. Anyone can check
//! one offline — that each event is exactly as recorded and is part of the ledger the
//! instance signed — without seeing any other account's events: a proof is only hashes.
//! The format is documented in `docs/extract-format.md`.

use crate::Timestamp;
use crate::event::EventBody;
use crate::ids::AccountId;
use crate::merkle::{Hash, leaf_hash, verify_inclusion};
use crate::tree_head::{KeyError, KeyId, PublicKey, SignedTreeHead};
use serde::{Deserialize, Serialize};

/// The format name every extract carries.
pub const EXTRACT_FORMAT: &str = "actas-audit-extract/1";

/// An account's audit extract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extract {
    /// Always [`EXTRACT_FORMAT`].
    pub format: String,
    /// Whose events these are.
    pub account: AccountId,
    /// When it was made.
    pub generated_at: Timestamp,
    /// The instance's public key (Ed25519, base64url), which signed the tree head.
    pub public_key: String,
    /// The signed tree head every proof leads to.
    pub tree_head: SignedTreeHead,
    /// The account's events in ledger order.
    pub events: Vec<ExtractEvent>,
}

/// One event with its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractEvent {
    /// Its position in the ledger (from 1); its leaf index is `seq - 1`.
    pub seq: u64,
    /// The event's exact recorded text: its leaf is SHA-256(0x00 ‖ these bytes).
    pub body: String,
    /// The inclusion proof (RFC 9162 §2.1.3), hex hashes from the leaf upwards.
    pub proof: Vec<String>,
}

impl ExtractEvent {
    /// Pairs an event's text with its proof.
    pub fn new(seq: u64, body: String, proof: &[Hash]) -> Self {
        Self {
            seq,
            body,
            proof: proof.iter().map(crate::merkle::hash_hex).collect(),
        }
    }
}

/// Why an extract does not hold, saying where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractProblem {
    /// Not an extract at all, or damaged JSON.
    #[error("this is not a readable audit extract: {0}")]
    Unreadable(String),
    /// A format this verifier does not know.
    #[error("the extract's format is {0:?}; this verifier reads {EXTRACT_FORMAT:?}")]
    Format(String),
    /// The key in the extract is damaged.
    #[error("the public key in the extract is not valid: {0}")]
    Key(KeyError),
    /// The extract names a different key from the one the reader trusts.
    #[error(
        "the extract was signed by key {found}, not by the key you gave ({expected}); it may come from another instance, or be forged"
    )]
    OtherKey {
        /// The key given to the verifier.
        expected: KeyId,
        /// The key in the extract.
        found: KeyId,
    },
    /// The tree head's signature does not check out.
    #[error("the signed tree head does not verify: {0}")]
    Head(KeyError),
    /// One event does not hold.
    #[error("event #{seq} (number {position} in the extract) does not hold: {why}")]
    Event {
        /// Its ledger sequence number, as the extract states it.
        seq: u64,
        /// Its position in the extract, from 1.
        position: usize,
        /// What is wrong, in plain words.
        why: String,
    },
}

/// What a verified extract shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractReport {
    /// Whose events.
    pub account: AccountId,
    /// How many events.
    pub events: usize,
    /// The tree head they were proven against.
    pub tree_head: SignedTreeHead,
    /// The signing key's fingerprint.
    pub key_id: KeyId,
    /// The first and last event times, if any.
    pub span: Option<(Timestamp, Timestamp)>,
}

/// Checks an extract's text, offline. `trusted` is the instance's public key as the reader
/// knows it (from the operator, say); without it, the key in the extract is used, which
/// proves the extract is consistent but not who made it.
pub fn verify_extract(
    text: &str,
    trusted: Option<&PublicKey>,
) -> Result<ExtractReport, ExtractProblem> {
    let extract: Extract = serde_json::from_str(text).map_err(|e| {
        ExtractProblem::Unreadable(format!("line {}, column {}: {e}", e.line(), e.column()))
    })?;
    if extract.format != EXTRACT_FORMAT {
        return Err(ExtractProblem::Format(extract.format));
    }
    let own = PublicKey::parse(&extract.public_key).map_err(ExtractProblem::Key)?;
    let key = match trusted {
        Some(t) if t.key_id() != own.key_id() => {
            return Err(ExtractProblem::OtherKey {
                expected: t.key_id(),
                found: own.key_id(),
            });
        }
        Some(t) => *t,
        None => own,
    };
    key.verify(&extract.tree_head)
        .map_err(ExtractProblem::Head)?;
    let head = extract.tree_head.head;
    let mut last_seq = 0;
    for (i, e) in extract.events.iter().enumerate() {
        let bad = |why: String| ExtractProblem::Event {
            seq: e.seq,
            position: i + 1,
            why,
        };
        if e.seq <= last_seq {
            return Err(bad("events must be in ledger order, each once".into()));
        }
        last_seq = e.seq;
        if e.seq == 0 || e.seq > head.size {
            return Err(bad(format!(
                "it is not inside the signed tree head, which covers events 1 to {}",
                head.size
            )));
        }
        let body = EventBody::decode(&e.body)
            .map_err(|err| bad(format!("its recorded text is damaged ({err})")))?;
        if body.seq != e.seq {
            return Err(bad(format!(
                "its text says it is event #{}, not #{}",
                body.seq, e.seq
            )));
        }
        if body.account.as_ref() != Some(&extract.account)
            && body.on_behalf_of.as_ref() != Some(&extract.account)
        {
            return Err(bad(format!(
                "it is not an event of account {}",
                extract.account
            )));
        }
        let mut proof = Vec::with_capacity(e.proof.len());
        for p in &e.proof {
            let mut h = [0u8; 32];
            hex::decode_to_slice(p, &mut h)
                .map_err(|_| bad("its proof holds something that is not a hash".into()))?;
            proof.push(h);
        }
        verify_inclusion(
            e.seq - 1,
            head.size,
            &leaf_hash(e.body.as_bytes()),
            &proof,
            &head.root,
        )
        .map_err(|_| {
            bad("it is not exactly as recorded in the signed ledger: its text or its proof was changed".into())
        })?;
    }
    let times: Vec<Timestamp> = extract
        .events
        .iter()
        .filter_map(|e| EventBody::decode(&e.body).ok().map(|b| b.time))
        .collect();
    Ok(ExtractReport {
        account: extract.account,
        events: extract.events.len(),
        key_id: key.key_id(),
        tree_head: extract.tree_head,
        span: times.first().copied().zip(times.last().copied()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, EventData, NewEvent};
    use crate::merkle::MemoryTree;
    use crate::staff::DisplayName;
    use crate::tree_head::{LedgerKey, TreeHead};

    fn account(id: &str) -> crate::account::AccountRef {
        crate::account::AccountRef {
            id: AccountId::parse(id).expect("id"),
            name: DisplayName::parse(id).expect("name"),
        }
    }

    /// A small ledger of two accounts' events and an extract of `acme`'s.
    fn extract() -> (String, LedgerKey) {
        let key = LedgerKey::from_bytes(&[9; 32]).expect("key");
        let mut tree = MemoryTree::new();
        let mut prev = [0u8; 32];
        let mut bodies = Vec::new();
        for seq in 1..=7u64 {
            let who = if seq % 2 == 0 { "acme" } else { "globex" };
            let body = NewEvent::new(
                Actor::Customer(account(who)),
                EventData::ConsentChanged {
                    account: account(who),
                    consent: crate::account::Consent::Allowed,
                    via: None,
                },
            )
            .into_body(seq, Timestamp::from_millis(1_000 * seq as i64), &prev)
            .encode();
            prev = leaf_hash(body.as_bytes());
            tree.push_data(body.as_bytes());
            bodies.push((seq, who, body));
        }
        let head = key.sign(TreeHead {
            size: 7,
            time: Timestamp::from_millis(9_000),
            root: tree.root(),
        });
        let events = bodies
            .into_iter()
            .filter(|(_, who, _)| *who == "acme")
            .map(|(seq, _, body)| {
                let proof = tree.inclusion_proof(seq - 1, 7).expect("proof");
                ExtractEvent::new(seq, body, &proof)
            })
            .collect();
        let e = Extract {
            format: EXTRACT_FORMAT.into(),
            account: AccountId::parse("acme").expect("id"),
            generated_at: Timestamp::from_millis(10_000),
            public_key: key.public().to_base64(),
            tree_head: head,
            events,
        };
        (serde_json::to_string_pretty(&e).expect("json"), key)
    }

    #[test]
    fn a_true_extract_verifies_and_holds_only_its_account() {
        let (text, key) = extract();
        let report = verify_extract(&text, Some(&key.public())).expect("holds");
        assert_eq!(report.events, 3);
        assert!(!text.contains("globex"), "nothing of another account");
    }

    #[test]
    fn any_one_byte_edit_is_caught_and_located() {
        let (text, key) = extract();
        let bytes = text.as_bytes();
        let mut caught = 0;
        // Flip each byte inside the events to another printable one.
        let start = text.find("\"events\"").expect("events");
        for i in start..bytes.len() {
            if !bytes[i].is_ascii_alphanumeric() {
                continue;
            }
            let mut edited = bytes.to_vec();
            edited[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let Ok(edited) = String::from_utf8(edited) else {
                continue;
            };
            let problem = verify_extract(&edited, Some(&key.public())).expect_err("edit caught");
            if let ExtractProblem::Event { .. } | ExtractProblem::Unreadable(_) = problem {
                caught += 1;
            } else {
                panic!("unexpected problem for byte {i}: {problem}");
            }
        }
        assert!(caught > 100, "{caught}");
    }

    #[test]
    fn the_wrong_key_or_a_forged_head_is_refused() {
        let (text, _) = extract();
        let other = LedgerKey::from_bytes(&[3; 32]).expect("key").public();
        assert!(matches!(
            verify_extract(&text, Some(&other)),
            Err(ExtractProblem::OtherKey { .. })
        ));
        let mut e: Extract = serde_json::from_str(&text).expect("json");
        e.tree_head.head.size = 8;
        let forged = serde_json::to_string(&e).expect("json");
        assert!(matches!(
            verify_extract(&forged, None),
            Err(ExtractProblem::Head(_))
        ));
    }
}
