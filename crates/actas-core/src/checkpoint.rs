//! What the ledger key signs besides tree heads: an account's checkpoint (the end of
//! its history, which makes an extract provably complete) and the tree head as a C2SP
//! `tlog-checkpoint` signed note, the standard format transparency-log tools read.
//!
//! Every signed message starts with its own fixed prefix, so a signature over one kind
//! can never be taken for another.

use crate::Timestamp;
use crate::ids::AccountId;
use crate::merkle::Hash;
use crate::tree_head::{KeyError, KeyId, LedgerKey, PublicKey, TreeHead, b64_sig, hex_hash};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The prefix of a signed account checkpoint.
pub const ACCOUNT_CHECKPOINT_CONTEXT: &[u8] = b"actas-account-checkpoint-v1\n";

/// "Account `account` had `events` events, the last with leaf hash `last_leaf`, in the
/// ledger of `tree_size` events with root `root`", as of `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCheckpoint {
    /// The account.
    pub account: AccountId,
    /// How many events the account has, from its first.
    pub events: u64,
    /// The leaf hash of its last event (zeros when it has none).
    #[serde(with = "hex_hash")]
    pub last_leaf: Hash,
    /// The ledger size the history is counted in.
    pub tree_size: u64,
    /// That ledger's root.
    #[serde(with = "hex_hash")]
    pub root: Hash,
    /// When the checkpoint was made (ms since the epoch).
    pub time: Timestamp,
}

impl AccountCheckpoint {
    /// The exact bytes that are signed: the prefix, the account's length (u32 big-endian)
    /// and UTF-8 bytes, `events` (u64), `last_leaf`, `tree_size` (u64), `root`, `time`
    /// in ms (i64), all big-endian.
    pub fn message(&self) -> Vec<u8> {
        let account = self.account.as_str().as_bytes();
        let mut m = Vec::with_capacity(ACCOUNT_CHECKPOINT_CONTEXT.len() + account.len() + 92);
        m.extend_from_slice(ACCOUNT_CHECKPOINT_CONTEXT);
        m.extend_from_slice(&(account.len() as u32).to_be_bytes());
        m.extend_from_slice(account);
        m.extend_from_slice(&self.events.to_be_bytes());
        m.extend_from_slice(&self.last_leaf);
        m.extend_from_slice(&self.tree_size.to_be_bytes());
        m.extend_from_slice(&self.root);
        m.extend_from_slice(&self.time.as_millis().to_be_bytes());
        m
    }
}

/// An account checkpoint with the ledger key's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAccountCheckpoint {
    /// What is stated.
    #[serde(flatten)]
    pub checkpoint: AccountCheckpoint,
    /// Which key signed it.
    pub key_id: KeyId,
    /// Ed25519 over [`AccountCheckpoint::message`], base64url.
    #[serde(with = "b64_sig")]
    pub signature: [u8; 64],
}

impl LedgerKey {
    /// Signs an account checkpoint.
    pub fn sign_checkpoint(&self, checkpoint: AccountCheckpoint) -> SignedAccountCheckpoint {
        SignedAccountCheckpoint {
            signature: self.sign_bytes(&checkpoint.message()),
            key_id: self.public().key_id(),
            checkpoint,
        }
    }

    /// The tree head as a C2SP `tlog-checkpoint` signed note from the log `origin`
    /// (which is also the key's name in the note).
    pub fn sign_note(&self, origin: &Origin, head: &TreeHead) -> String {
        let text = checkpoint_text(origin, head);
        let mut sig = Vec::with_capacity(68);
        sig.extend_from_slice(&note_key_id(origin, &self.public()));
        sig.extend_from_slice(&self.sign_bytes(text.as_bytes()));
        format!("{text}\n\u{2014} {} {}\n", origin.0, STANDARD.encode(sig))
    }
}

impl PublicKey {
    /// Checks a signed account checkpoint.
    pub fn verify_checkpoint(&self, signed: &SignedAccountCheckpoint) -> Result<(), KeyError> {
        if signed.key_id != self.key_id() {
            return Err(KeyError::OtherKey {
                expected: self.key_id(),
                found: signed.key_id.clone(),
            });
        }
        self.verify_bytes(&signed.checkpoint.message(), &signed.signature)
    }

    /// The key as a signed-note verifier key: `<name>+<key id, 8 hex>+<base64(0x01 ‖ key)>`.
    pub fn note_verifier_key(&self, origin: &Origin) -> String {
        let mut k = vec![1u8];
        k.extend_from_slice(self.as_bytes());
        format!(
            "{}+{}+{}",
            origin.0,
            hex::encode(note_key_id(origin, self)),
            STANDARD.encode(k)
        )
    }
}

/// The prefix of a key rotation's endorsement.
pub const ROTATION_CONTEXT: &[u8] = b"actas-ledger-key-rotation-v1\n";

/// What the new key signs when it takes over: the prefix, the old key, the new key.
pub fn rotation_message(old: &PublicKey, new: &PublicKey) -> Vec<u8> {
    [ROTATION_CONTEXT, old.as_bytes(), new.as_bytes()].concat()
}

/// A replacement of the ledger key as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The rotation event's position: the old key signs heads up to here.
    pub seq: u64,
    /// The key replaced.
    pub old: PublicKey,
    /// The key that took over.
    pub new: PublicKey,
    /// The new key's signature over [`rotation_message`].
    pub endorsement: [u8; 64],
}

impl Rotation {
    /// The replacement an event records, if it is one (`None` for any other event);
    /// an error says what is damaged in it.
    pub fn from_event(seq: u64, data: &crate::event::EventData) -> Option<Result<Self, String>> {
        let crate::event::EventData::LedgerKeyRotated {
            old_key,
            new_key,
            endorsement,
        } = data
        else {
            return None;
        };
        let read = || {
            let key = |k: &str| PublicKey::parse(k).map_err(|e| e.to_string());
            let endorsement = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(endorsement.as_bytes())
                .ok()
                .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| "its endorsement is not a signature".to_owned())?;
            Ok(Self {
                seq,
                old: key(old_key)?,
                new: key(new_key)?,
                endorsement,
            })
        };
        Some(read())
    }
}

/// A ledger key a verifier trusts, and the largest tree size it may sign a head for
/// (`None`: the current key, no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key.
    pub key: PublicKey,
    /// Heads it signed cover at most this many events.
    pub up_to: Option<u64>,
}

impl From<PublicKey> for TrustedKey {
    /// A key trusted with no limit: the ledger's current one.
    fn from(key: PublicKey) -> Self {
        TrustedKey { key, up_to: None }
    }
}

/// Why the ledger's key history can't be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A rotation doesn't hand over to the key after it (or to the trusted key).
    #[error(
        "the key replacement at event #{seq} does not lead to key {expected}: the ledger's key history was tampered with"
    )]
    Broken {
        /// The rotation event.
        seq: u64,
        /// The key it should have handed over to.
        expected: KeyId,
    },
    /// The new key's endorsement does not verify.
    #[error(
        "the key replacement at event #{seq} is not endorsed by the key it names: it was forged"
    )]
    Unendorsed {
        /// The rotation event.
        seq: u64,
    },
}

/// Every key a verifier that trusts `current` should accept, walking the ledger's
/// rotations (oldest first) back from it: each rotation must hand over to the key after
/// it and carry that key's endorsement, so trust flows only from the key the reader
/// already trusts. Each earlier key may sign heads only up to its rotation.
pub fn key_history(
    current: PublicKey,
    rotations: &[Rotation],
) -> Result<Vec<TrustedKey>, HistoryError> {
    let mut trusted = vec![TrustedKey {
        key: current,
        up_to: None,
    }];
    let mut next = current;
    for r in rotations.iter().rev() {
        if r.new != next {
            return Err(HistoryError::Broken {
                seq: r.seq,
                expected: next.key_id(),
            });
        }
        r.new
            .verify_bytes(&rotation_message(&r.old, &r.new), &r.endorsement)
            .map_err(|_| HistoryError::Unendorsed { seq: r.seq })?;
        trusted.push(TrustedKey {
            key: r.old,
            up_to: Some(r.seq),
        });
        next = r.old;
    }
    trusted.reverse();
    Ok(trusted)
}

/// Where the ledger replaced `key`: the first of `rotations` (each an event's number
/// and exact text, of kind [`crate::event::LEDGER_KEY_ROTATED`]) that names it as the
/// old key. Such a key may sign heads only up to that event, as [`key_history`] trusts
/// it; a text that doesn't read as a replacement replaces nothing (verification reports
/// it).
pub fn replaced_at<'a>(
    key: &PublicKey,
    rotations: impl IntoIterator<Item = (u64, &'a str)>,
) -> Option<u64> {
    rotations.into_iter().find_map(|(seq, text)| {
        let body = crate::event::EventBody::decode(text).ok()?;
        let rotation = Rotation::from_event(seq, &body.data)?.ok()?;
        (rotation.old == *key).then_some(seq)
    })
}

/// Whether a key the ledger replaced at event `replaced_at` (if it did) may sign a head
/// over the first `size` events: only up to its replacement.
pub fn may_sign(size: u64, replaced_at: Option<u64>) -> bool {
    replaced_at.is_none_or(|at| size <= at)
}

impl LedgerKey {
    /// This (new) key's endorsement of taking over from `old`.
    pub fn endorse_takeover(&self, old: &PublicKey) -> [u8; 64] {
        self.sign_bytes(&rotation_message(old, &self.public()))
    }
}

/// A log's origin line, which names it (and its key, in notes): non-empty, printable,
/// no spaces and no `+` (the signed-note rules for a key name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// Checks an origin.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty()
            || text.len() > 200
            || text.contains('+')
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "{text:?} can't be a log origin: it must be non-empty, at most 200 characters, with no spaces and no '+'"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The origin's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of a C2SP checkpoint: origin, decimal size and base64 root, one per line.
pub fn checkpoint_text(origin: &Origin, head: &TreeHead) -> String {
    format!(
        "{}\n{}\n{}\n",
        origin.0,
        head.size,
        STANDARD.encode(head.root)
    )
}

/// The signed-note key id of an Ed25519 key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key)[..4].
pub fn note_key_id(origin: &Origin, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(origin.0.as_bytes());
    h.update(b"\n\x01");
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_and_any_change_breaks_it() {
        let key = LedgerKey::from_bytes(&[5; 32]).expect("key");
        let cp = AccountCheckpoint {
            account: AccountId::parse("acme").expect("id"),
            events: 3,
            last_leaf: [1; 32],
            tree_size: 9,
            root: [2; 32],
            time: Timestamp::from_millis(7),
        };
        let signed = key.sign_checkpoint(cp);
        assert_eq!(key.public().verify_checkpoint(&signed), Ok(()));
        let json = serde_json::to_string(&signed).expect("json");
        let back: SignedAccountCheckpoint = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, signed);
        for change in 0..4 {
            let mut forged = signed.clone();
            match change {
                0 => forged.checkpoint.events = 2,
                1 => forged.checkpoint.last_leaf[0] = 9,
                2 => forged.checkpoint.tree_size = 8,
                _ => forged.checkpoint.account = AccountId::parse("acm").expect("id"),
            }
            assert_eq!(
                key.public().verify_checkpoint(&forged),
                Err(KeyError::BadSignature)
            );
        }
    }

    /// The signed-note specification's own example (Go's `sumdb/note` package): the
    /// same key signing the same text gives exactly the published signature line.
    #[test]
    fn notes_match_the_specification_example() {
        let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let seed = STANDARD.decode(skey).expect("base64");
        assert_eq!(seed[0], 1);
        let key = LedgerKey::from_bytes(&seed[1..]).expect("key");
        let name = Origin::parse("PeterNeumann").expect("name");
        assert_eq!(
            key.public().note_verifier_key(&name),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let mut sig = note_key_id(&name, &key.public()).to_vec();
        sig.extend_from_slice(&key.sign_bytes(text.as_bytes()));
        assert_eq!(
            STANDARD.encode(sig),
            "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        );
    }

    #[test]
    fn trust_flows_back_only_through_endorsed_rotations() {
        let k = |b: u8| LedgerKey::from_bytes(&[b; 32]).expect("key");
        let rotation = |seq, old: &LedgerKey, new: &LedgerKey| Rotation {
            seq,
            old: old.public(),
            new: new.public(),
            endorsement: new.endorse_takeover(&old.public()),
        };
        let chain = [rotation(10, &k(1), &k(2)), rotation(20, &k(2), &k(3))];
        let keys = key_history(k(3).public(), &chain).expect("chain");
        assert_eq!(
            keys.iter().map(|t| (t.key, t.up_to)).collect::<Vec<_>>(),
            vec![
                (k(1).public(), Some(10)),
                (k(2).public(), Some(20)),
                (k(3).public(), None)
            ]
        );
        // A rotation naming a key the reader doesn't trust, or endorsed by another key.
        assert!(matches!(
            key_history(k(4).public(), &chain),
            Err(HistoryError::Broken { seq: 20, .. })
        ));
        let mut forged = chain.clone();
        forged[0].endorsement = k(9).endorse_takeover(&k(1).public());
        assert_eq!(
            key_history(k(3).public(), &forged),
            Err(HistoryError::Unendorsed { seq: 10 })
        );
    }

    #[test]
    fn a_key_is_replaced_where_a_rotation_names_it_old_and_signs_only_up_to_there() {
        use crate::event::{Actor, EventData, NewEvent};
        let (old, new, other) = (
            LedgerKey::from_bytes(&[1; 32]).expect("key"),
            LedgerKey::from_bytes(&[2; 32]).expect("key"),
            LedgerKey::from_bytes(&[3; 32]).expect("key"),
        );
        let text = |seq: u64, from: &LedgerKey, to: &LedgerKey| {
            NewEvent::new(
                Actor::System,
                EventData::LedgerKeyRotated {
                    old_key: from.public().to_base64(),
                    new_key: to.public().to_base64(),
                    endorsement: base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(to.endorse_takeover(&from.public())),
                },
            )
            .into_body(seq, Timestamp::from_millis(1), &[0; 32])
            .encode()
        };
        let (first, second) = (text(7, &other, &old), text(40, &old, &new));
        let rotations = [
            (3, "not an event"),
            (7, first.as_str()),
            (40, second.as_str()),
        ];
        assert_eq!(replaced_at(&old.public(), rotations), Some(40));
        assert_eq!(replaced_at(&other.public(), rotations), Some(7));
        assert_eq!(replaced_at(&new.public(), rotations), None);
        assert!(may_sign(40, Some(40)) && may_sign(41, None));
        assert!(!may_sign(41, Some(40)));
    }

    #[test]
    fn origins_follow_the_key_name_rules() {
        assert!(Origin::parse("actas.example.com/ledger").is_ok());
        for bad in ["", "a b", "a+b", "a\nb"] {
            assert!(Origin::parse(bad).is_err(), "{bad:?}");
        }
    }
}
