//! Verifiable audit extracts: every event of one account, one multi-leaf proof that
//! they are all in the ledger under a signed tree head, and a signed account checkpoint
//! (how many events the account has and which is last), so an extract shows both that
//! each event is exactly as recorded and that none is missing. Anyone can check one
//! offline with nothing but the file and the instance's public key. Leaf hashes of other
//! accounts' events, in the proof and in links, are salted: they reveal nothing.
//! The format is documented in `docs/extract-format.md`; format 1 (one proof per event,
//! no checkpoint) still verifies.

use crate::Timestamp;
use crate::checkpoint::SignedAccountCheckpoint;
use crate::ids::AccountId;
use crate::merkle::{Hash, leaf_hash, root_from_multi, verify_consistency, verify_inclusion};
use crate::tree_head::{KeyError, KeyId, PublicKey, SignedTreeHead};
use serde::{Deserialize, Serialize};

/// The format name every extract made today carries.
pub const EXTRACT_FORMAT: &str = "actas-audit-extract/2";
/// The first format: one inclusion proof per event, no checkpoint.
pub const EXTRACT_FORMAT_V1: &str = "actas-audit-extract/1";

/// An account's audit extract (format 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extract {
    /// Always [`EXTRACT_FORMAT`].
    pub format: String,
    /// Whose events these are.
    pub account: AccountId,
    /// The instance's public key (Ed25519, base64url), which signed the head and checkpoint.
    pub public_key: String,
    /// The signed tree head the proof leads to.
    pub tree_head: SignedTreeHead,
    /// The signed end of the account's history in that tree.
    pub checkpoint: SignedAccountCheckpoint,
    /// All the account's events, in ledger order.
    pub events: Vec<ExtractEvent>,
    /// One multi-leaf proof for all of them: node hashes, concatenated, base64.
    #[serde(with = "b64_hashes")]
    pub proof: Vec<Hash>,
    /// A consistency proof from an earlier tree size, when one was asked for (`?since=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<ConsistencyProof>,
}

/// One event of an extract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractEvent {
    /// Its position in the ledger (from 1); its leaf index is `seq - 1`.
    pub seq: u64,
    /// The event's exact recorded text: its leaf is SHA-256(0x00 ‖ these bytes).
    pub body: String,
}

/// "The tree of `to` events extends the tree of `from`" (RFC 9162 §2.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The older tree size.
    pub from: u64,
    /// The newer tree size.
    pub to: u64,
    /// The proof's hashes, concatenated, base64.
    #[serde(with = "b64_hashes")]
    pub proof: Vec<Hash>,
}

/// A format 1 extract, still readable.
#[derive(Deserialize)]
struct ExtractV1 {
    account: AccountId,
    public_key: String,
    tree_head: SignedTreeHead,
    events: Vec<ExtractEventV1>,
}

#[derive(Deserialize)]
struct ExtractEventV1 {
    seq: u64,
    body: String,
    proof: Vec<String>,
}

/// The fields of a body an extract's check reads (the rest is only hashed). A field
/// given twice is refused by the parse.
#[derive(Deserialize)]
struct BodyFields {
    seq: u64,
    time: Timestamp,
    kind: String,
    account: Option<AccountId>,
    session: Option<String>,
    prev: String,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    salt: Option<String>,
    #[serde(default)]
    account_index: Option<u64>,
    #[serde(default)]
    account_prev: Option<String>,
}

impl BodyFields {
    /// Reads a body and checks it is laid out exactly as actas writes one: the index
    /// fields first, then (version 2) the salt and account link, then `on_behalf_of`. So
    /// the fields read here are the only ones of their name, in their one place, and
    /// every verifier reads the same history from the same bytes.
    fn read(body: &str) -> Result<Self, String> {
        let f: Self = serde_json::from_str(body)
            .map_err(|e| format!("its recorded text is damaged ({e})"))?;
        let mut expected = String::with_capacity(320);
        crate::event::write_index_prefix(
            &mut expected,
            f.seq,
            f.time.as_millis(),
            &f.kind,
            f.account.as_ref().map(AccountId::as_str),
            f.session.as_deref(),
            &f.prev,
        );
        match (f.version, &f.salt, f.account_index, &f.account_prev) {
            (None, None, None, None) => {}
            (Some(2), Some(salt), Some(index), Some(link)) => {
                expected.push_str(&format!(
                    ",\"version\":2,\"salt\":{},\"account_index\":{index},\"account_prev\":{}",
                    serde_json::Value::from(salt.as_str()),
                    serde_json::Value::from(link.as_str())
                ));
            }
            _ => return Err("its version fields are damaged".into()),
        }
        expected.push_str(",\"on_behalf_of\":");
        if !body.starts_with(&expected) {
            return Err("it is not laid out as actas records events: it was changed".into());
        }
        Ok(f)
    }
}

/// Why an extract does not hold, saying where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractProblem {
    /// Not an extract at all, or damaged JSON.
    #[error("this is not a readable audit extract: {0}")]
    Unreadable(String),
    /// A format this verifier does not know.
    #[error(
        "the extract's format is {0:?}; this verifier reads {EXTRACT_FORMAT:?} and {EXTRACT_FORMAT_V1:?}"
    )]
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
    /// The account checkpoint's signature does not check out.
    #[error("the account checkpoint does not verify: {0}")]
    Checkpoint(KeyError),
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
    /// The events are not all the account's events the checkpoint counts.
    #[error("the extract is not complete: {0}")]
    Incomplete(String),
    /// The proof does not lead to the signed root.
    #[error(
        "the events are not exactly as recorded in the signed ledger: one of them, or the proof, was changed"
    )]
    Proof,
    /// A newer extract does not extend an older one.
    #[error("the newer extract does not extend the older one: {0}")]
    NotExtending(String),
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
    /// The signed checkpoint the history was proven complete up to (format 2); `None`
    /// for a format 1 extract, which can't show completeness.
    pub checkpoint: Option<SignedAccountCheckpoint>,
}

fn unreadable(e: serde_json::Error) -> ExtractProblem {
    ExtractProblem::Unreadable(format!("line {}, column {}: {e}", e.line(), e.column()))
}

/// The key to check with: the reader's, which must be the one in the extract.
fn check_key(own: &str, trusted: Option<&PublicKey>) -> Result<PublicKey, ExtractProblem> {
    let own = PublicKey::parse(own).map_err(ExtractProblem::Key)?;
    match trusted {
        Some(t) if t.key_id() != own.key_id() => Err(ExtractProblem::OtherKey {
            expected: t.key_id(),
            found: own.key_id(),
        }),
        Some(t) => Ok(*t),
        None => Ok(own),
    }
}

/// Checks an extract's text, offline. `trusted` is the instance's public key as the reader
/// knows it (from the operator, say); without it, the key in the extract is used, which
/// proves the extract is consistent but not who made it.
pub fn verify_extract(
    text: &str,
    trusted: Option<&PublicKey>,
) -> Result<ExtractReport, ExtractProblem> {
    verify_extract_text(text, trusted).map(|(report, _)| report)
}

/// Checks a newer extract and that it extends an older one of the same account: every
/// event of the older one is, unchanged, at the same place in the newer one, and the
/// newer extract's ledger contains the older one's (its consistency proof from the
/// older tree size, which the newer extract carries when fetched with `?since=`).
pub fn verify_extends(
    older: &str,
    newer: &str,
    trusted: Option<&PublicKey>,
) -> Result<ExtractReport, ExtractProblem> {
    let (old, old_x) = verify_extract_text(older, trusted)?;
    let (new, new_x) = verify_extract_text(newer, trusted)?;
    let (Some(old_x), Some(new_x)) = (old_x, new_x) else {
        return Err(ExtractProblem::NotExtending(
            "a format 1 extract can't be compared: both must be format 2".into(),
        ));
    };
    let not = |why: String| ExtractProblem::NotExtending(why);
    if old_x.account != new_x.account {
        return Err(not(format!(
            "the older one is of account {}, the newer of {}",
            old_x.account, new_x.account
        )));
    }
    if old.key_id != new.key_id {
        return Err(not(format!(
            "they were signed by different keys ({} and {})",
            old.key_id, new.key_id
        )));
    }
    for (i, e) in old_x.events.iter().enumerate() {
        match new_x.events.get(i) {
            Some(n) if n.seq == e.seq && n.body == e.body => {}
            _ => {
                return Err(not(format!(
                    "event #{} (number {} in the older extract) is not at its place in the newer one: it was removed or changed since",
                    e.seq,
                    i + 1
                )));
            }
        }
    }
    let (o, n) = (&old.tree_head.head, &new.tree_head.head);
    // The older checkpoint counted the account's events in the older tree: the newer
    // extract must hold exactly as many up to that size, or the older one left some out.
    let within = new_x.events.iter().filter(|e| e.seq <= o.size).count() as u64;
    if within != old_x.checkpoint.checkpoint.events {
        return Err(not(format!(
            "the older extract's signed checkpoint counts {} events of the account in the ledger's first {} events, but the newer one holds {within} there: the instance signed an incomplete checkpoint",
            old_x.checkpoint.checkpoint.events, o.size
        )));
    }
    if o.size > n.size {
        return Err(not(format!(
            "the newer extract's ledger has {} events, fewer than the older one's {}",
            n.size, o.size
        )));
    }
    if o.size == n.size {
        if o.root != n.root {
            return Err(not(format!(
                "both cover {} events but their roots differ: the ledger was rewritten",
                n.size
            )));
        }
    } else {
        let c = new_x
            .consistency
            .as_ref()
            .filter(|c| c.from == o.size && c.to == n.size)
            .ok_or_else(|| {
                not(format!(
                    "it carries no consistency proof from {} events; download it again with ?since={}",
                    o.size, o.size
                ))
            })?;
        verify_consistency(o.size, n.size, &o.root, &n.root, &c.proof).map_err(|_| {
            not(format!(
                "the ledger of {} events does not contain the older one of {}: it was rewritten",
                n.size, o.size
            ))
        })?;
    }
    Ok(new)
}

fn verify_extract_text(
    text: &str,
    trusted: Option<&PublicKey>,
) -> Result<(ExtractReport, Option<Extract>), ExtractProblem> {
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    // Most extracts are format 2: one parse. Anything else is read again as what it says.
    let extract = match serde_json::from_str::<Extract>(text) {
        Ok(e) if e.format == EXTRACT_FORMAT => e,
        Ok(e) => return verify_v1(text, e.format, trusted).map(|r| (r, None)),
        Err(err) => {
            let format = serde_json::from_str::<Format>(text)
                .map_err(|_| unreadable(err))?
                .format;
            return verify_v1(text, format, trusted).map(|r| (r, None));
        }
    };
    let report = verify_v2(&extract, trusted)?;
    Ok((report, Some(extract)))
}

/// The checks every event of an extract gets, in either format: in ledger order after the
/// event before (`last_seq`), inside the tree head of `size` events, its text laid out
/// exactly as actas writes events, saying its own `seq`, and of the extract's `account`.
fn read_event(
    seq: u64,
    body: &str,
    last_seq: u64,
    size: u64,
    account: &AccountId,
) -> Result<BodyFields, String> {
    if seq <= last_seq {
        return Err("events must be in ledger order, each once".into());
    }
    if seq == 0 || seq > size {
        return Err(format!(
            "it is not inside the signed tree head, which covers events 1 to {size}"
        ));
    }
    let body = BodyFields::read(body)?;
    if body.seq != seq {
        return Err(format!(
            "its text says it is event #{}, not #{seq}",
            body.seq
        ));
    }
    if body.account.as_ref() != Some(account) {
        return Err(format!("it is not an event of account {account}"));
    }
    Ok(body)
}

fn verify_v2(
    extract: &Extract,
    trusted: Option<&PublicKey>,
) -> Result<ExtractReport, ExtractProblem> {
    let key = check_key(&extract.public_key, trusted)?;
    key.verify(&extract.tree_head)
        .map_err(ExtractProblem::Head)?;
    key.verify_checkpoint(&extract.checkpoint)
        .map_err(ExtractProblem::Checkpoint)?;
    let head = extract.tree_head.head;
    let cp = &extract.checkpoint.checkpoint;
    let incomplete = |why: String| ExtractProblem::Incomplete(why);
    if cp.account != extract.account {
        return Err(incomplete(format!(
            "its checkpoint is for account {}, not {}",
            cp.account, extract.account
        )));
    }
    if cp.tree_size != head.size || cp.root != head.root {
        return Err(incomplete(
            "its checkpoint is for another tree head than the extract's".into(),
        ));
    }
    let mut leaves: Vec<(u64, Hash)> = Vec::with_capacity(extract.events.len());
    let mut times = None;
    let mut prev: Hash = [0; 32];
    let mut last_seq = 0;
    let mut linked = false;
    for (i, e) in extract.events.iter().enumerate() {
        let bad = |why: String| ExtractProblem::Event {
            seq: e.seq,
            position: i + 1,
            why,
        };
        let body =
            read_event(e.seq, &e.body, last_seq, head.size, &extract.account).map_err(bad)?;
        last_seq = e.seq;
        match (
            body.version,
            &body.salt,
            body.account_index,
            &body.account_prev,
        ) {
            (None, None, None, None) if linked => {
                return Err(bad(
                    "it is a version 1 event after version 2 ones, which actas never writes: it was changed".into(),
                ));
            }
            (None, None, None, None) => {}
            (Some(2), Some(_), Some(index), Some(link)) => {
                linked = true;
                if index != i as u64 {
                    return Err(bad(format!(
                        "it says it is the account's event number {}, but it is number {} here: {} event(s) of the account are missing before it",
                        index + 1,
                        i + 1,
                        index.saturating_sub(i as u64)
                    )));
                }
                if *link != crate::merkle::hash_hex(&prev) {
                    return Err(bad(if i == 0 {
                        "it says the account had an earlier event, which is not here".into()
                    } else {
                        "it does not follow on from the event before it here: that one was changed, or one between them removed".into()
                    }));
                }
            }
            _ => return Err(bad("its version fields are damaged".into())),
        }
        let leaf = leaf_hash(e.body.as_bytes());
        prev = leaf;
        leaves.push((e.seq - 1, leaf));
        times = Some(match times {
            None => (body.time, body.time),
            Some((first, _)) => (first, body.time),
        });
    }
    if cp.events != extract.events.len() as u64 {
        return Err(incomplete(format!(
            "the signed checkpoint counts {} events of account {}, and the extract holds {}",
            cp.events,
            extract.account,
            extract.events.len()
        )));
    }
    if cp.last_leaf != prev {
        // The count matched, so the last event itself is not the one recorded.
        let (position, last) = extract
            .events
            .iter()
            .enumerate()
            .next_back()
            .ok_or_else(|| {
                incomplete("the checkpoint names a last event, and there is none".into())
            })?;
        return Err(ExtractProblem::Event {
            seq: last.seq,
            position: position + 1,
            why: "it is not the account's last event as the signed checkpoint names it: its text was changed".into(),
        });
    }
    if leaves.is_empty() {
        if !extract.proof.is_empty() {
            return Err(ExtractProblem::Proof);
        }
    } else {
        let root = root_from_multi(head.size, &leaves, &extract.proof)
            .map_err(|_| ExtractProblem::Proof)?;
        if root != head.root {
            return Err(ExtractProblem::Proof);
        }
    }
    if let Some(c) = &extract.consistency
        && (c.to != head.size || c.from > c.to)
    {
        return Err(ExtractProblem::Unreadable(format!(
            "its consistency proof is for sizes {} to {}, not to {}",
            c.from, c.to, head.size
        )));
    }
    Ok(ExtractReport {
        account: extract.account.clone(),
        events: extract.events.len(),
        key_id: key.key_id(),
        tree_head: extract.tree_head.clone(),
        span: times,
        checkpoint: Some(extract.checkpoint.clone()),
    })
}

fn verify_v1(
    text: &str,
    format: String,
    trusted: Option<&PublicKey>,
) -> Result<ExtractReport, ExtractProblem> {
    if format != EXTRACT_FORMAT_V1 {
        return Err(ExtractProblem::Format(format));
    }
    let extract: ExtractV1 = serde_json::from_str(text).map_err(unreadable)?;
    let key = check_key(&extract.public_key, trusted)?;
    key.verify(&extract.tree_head)
        .map_err(ExtractProblem::Head)?;
    let head = extract.tree_head.head;
    let mut last_seq = 0;
    let mut times = None;
    for (i, e) in extract.events.iter().enumerate() {
        let bad = |why: String| ExtractProblem::Event {
            seq: e.seq,
            position: i + 1,
            why,
        };
        let body =
            read_event(e.seq, &e.body, last_seq, head.size, &extract.account).map_err(bad)?;
        last_seq = e.seq;
        if body.version.is_some() {
            // Format 1 predates version 2 bodies: this is a newer extract relabelled, so
            // its completeness check would be skipped.
            return Err(bad(
                "it is a version 2 event in a format 1 extract, which actas never made: the file was relabelled".into(),
            ));
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
        times = Some(match times {
            None => (body.time, body.time),
            Some((first, _)) => (first, body.time),
        });
    }
    Ok(ExtractReport {
        account: extract.account,
        events: extract.events.len(),
        key_id: key.key_id(),
        tree_head: extract.tree_head,
        span: times,
        checkpoint: None,
    })
}

/// Hashes as one base64 string of their concatenated bytes: the compact form proofs take.
pub mod b64_hashes {
    use crate::merkle::Hash;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the hashes.
    pub fn serialize<S: Serializer>(hashes: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(hashes.concat()))
    }

    /// Reads them back; the length must be a multiple of 32 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 32 != 0 {
            return Err(serde::de::Error::custom(
                "a proof is a whole number of 32-byte hashes",
            ));
        }
        Ok(bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::AccountCheckpoint;
    use crate::event::{AccountLink, Actor, EventData, NewEvent};
    use crate::merkle::MemoryTree;
    use crate::staff::DisplayName;
    use crate::tree_head::{LedgerKey, TreeHead};
    use std::collections::HashMap;

    fn account(id: &str) -> crate::account::AccountRef {
        crate::account::AccountRef {
            id: AccountId::parse(id).expect("id"),
            name: DisplayName::parse(id).expect("name"),
        }
    }

    /// A ledger in memory, written as the writer writes it.
    struct Ledger {
        key: LedgerKey,
        tree: MemoryTree,
        events: Vec<(String, String)>,
        tips: HashMap<String, AccountLink>,
        prev: Hash,
    }

    impl Ledger {
        fn new() -> Self {
            Self {
                key: LedgerKey::from_bytes(&[9; 32]).expect("key"),
                tree: MemoryTree::new(),
                events: Vec::new(),
                tips: HashMap::new(),
                prev: [0; 32],
            }
        }

        /// Appends a consent change of `who`, as a version 2 body (or 1, as before).
        fn push(&mut self, who: &str, private: bool, salt: u8) -> String {
            let seq = self.events.len() as u64 + 1;
            let event = NewEvent::new(
                Actor::Customer(account(who)),
                EventData::ConsentChanged {
                    account: account(who),
                    consent: crate::account::Consent::Allowed,
                    via: None,
                },
            );
            let time = Timestamp::from_millis(1_000 * seq as i64);
            let tip = self.tips.get(who).copied().unwrap_or(AccountLink {
                index: 0,
                prev: [0; 32],
            });
            let body = if private {
                event.into_private_body(seq, time, &self.prev, [salt; 16], Some(tip))
            } else {
                event.into_body(seq, time, &self.prev)
            }
            .encode();
            let leaf = leaf_hash(body.as_bytes());
            self.tips.insert(
                who.to_owned(),
                AccountLink {
                    index: tip.index + 1,
                    prev: leaf,
                },
            );
            self.prev = leaf;
            self.tree.push(leaf);
            self.events.push((who.to_owned(), body.clone()));
            body
        }

        fn head(&self, size: u64) -> SignedTreeHead {
            self.key.sign(TreeHead {
                size,
                time: Timestamp::from_millis(99_000),
                root: self.tree.root_at(size).expect("root"),
            })
        }

        /// The extract of `who` in the tree of the first `size` events.
        fn extract(&self, who: &str, size: u64, since: Option<u64>) -> Extract {
            let events: Vec<ExtractEvent> = self.events[..size as usize]
                .iter()
                .enumerate()
                .filter(|(_, (w, _))| w == who)
                .map(|(i, (_, body))| ExtractEvent {
                    seq: i as u64 + 1,
                    body: body.clone(),
                })
                .collect();
            let indices: Vec<u64> = events.iter().map(|e| e.seq - 1).collect();
            let head = self.head(size);
            let checkpoint = self.key.sign_checkpoint(AccountCheckpoint {
                account: AccountId::parse(who).expect("id"),
                events: events.len() as u64,
                last_leaf: events
                    .last()
                    .map_or([0; 32], |e| leaf_hash(e.body.as_bytes())),
                tree_size: size,
                root: head.head.root,
                time: Timestamp::from_millis(100_000),
            });
            Extract {
                format: EXTRACT_FORMAT.into(),
                account: AccountId::parse(who).expect("id"),
                public_key: self.key.public().to_base64(),
                tree_head: head,
                checkpoint,
                proof: self.tree.multi_proof(&indices, size).expect("proof"),
                consistency: since.map(|from| ConsistencyProof {
                    from,
                    to: size,
                    proof: self.tree.consistency_proof(from, size).expect("proof"),
                }),
                events,
            }
        }
    }

    /// Two accounts' events, acme's first two written before version 2.
    fn ledger() -> Ledger {
        let mut l = Ledger::new();
        for seq in 1..=12u8 {
            let who = if seq % 3 == 0 { "acme" } else { "globex" };
            l.push(who, seq > 6, seq);
        }
        l
    }

    fn text(e: &Extract) -> String {
        serde_json::to_string_pretty(e).expect("json")
    }

    fn check(e: &Extract, key: &LedgerKey) -> Result<ExtractReport, ExtractProblem> {
        verify_extract(&text(e), Some(&key.public()))
    }

    #[test]
    fn a_true_extract_is_complete_and_holds_only_its_account() {
        let l = ledger();
        let e = l.extract("acme", 12, None);
        let report = check(&e, &l.key).expect("holds");
        assert_eq!(report.events, 4);
        assert_eq!(report.checkpoint.expect("checkpoint").checkpoint.events, 4);
        assert!(!text(&e).contains("globex"), "nothing of another account");
        // An account with no events has an empty, complete extract.
        let none = l.extract("initech", 12, None);
        assert_eq!(check(&none, &l.key).expect("holds").events, 0);
    }

    #[test]
    fn every_tamper_class_is_refused() {
        let l = ledger();
        let good = l.extract("acme", 12, None);
        let key = &l.key;
        // Edit: one byte of any event's text.
        for i in 0..good.events.len() {
            let mut e = good.clone();
            e.events[i].body = e.events[i].body.replace("allowed", "allowes");
            assert!(check(&e, key).is_err(), "edit of event {i}");
        }
        // Delete in the middle, at the start, at the tail.
        for i in 0..good.events.len() {
            let mut e = good.clone();
            e.events.remove(i);
            let p = check(&e, key).expect_err("deletion caught");
            assert!(
                matches!(
                    p,
                    ExtractProblem::Event { .. } | ExtractProblem::Incomplete(_)
                ),
                "deleting {i}: {p}"
            );
        }
        // Reorder.
        let mut e = good.clone();
        e.events.swap(1, 2);
        assert!(check(&e, key).is_err());
        // Insert another account's event (with its true proof it still can't pass).
        let other = l.extract("globex", 12, None);
        let mut e = good.clone();
        e.events.insert(1, other.events[3].clone());
        e.events.sort_by_key(|x| x.seq);
        assert!(matches!(check(&e, key), Err(ExtractProblem::Event { .. })));
        // Forge the checkpoint: fewer events, then a different last event.
        let mut e = good.clone();
        e.events.pop();
        e.checkpoint.checkpoint.events -= 1;
        assert!(matches!(check(&e, key), Err(ExtractProblem::Checkpoint(_))));
        // Replace the key: everything re-signed by another key is refused against the true
        // one, and shows up as another key without it.
        let mut forger = Ledger::new();
        forger.key = LedgerKey::from_bytes(&[3; 32]).expect("key");
        for (who, _) in &l.events {
            forger.push(who, true, 1);
        }
        let forged = forger.extract("acme", 12, None);
        assert!(matches!(
            check(&forged, key),
            Err(ExtractProblem::OtherKey { .. })
        ));
        // A proof hash changed.
        let mut e = good.clone();
        e.proof[0][0] ^= 1;
        assert_eq!(check(&e, key), Err(ExtractProblem::Proof));
        // Link fields out of their place, or given twice: refused before anything is
        // read from them.
        let mut e = good.clone();
        let last = e.events.len() - 1;
        let body = e.events[last].body.clone();
        let from = body.find(",\"version\":2").expect("version 2");
        let to = body.find(",\"on_behalf_of\":").expect("on_behalf_of");
        e.events[last].body = format!(
            "{}{}{}}}",
            &body[..from],
            &body[to..body.len() - 1],
            &body[from..to]
        );
        let p = check(&e, key).expect_err("refused");
        assert!(p.to_string().contains("laid out"), "{p}");
        let mut e = good.clone();
        let body = &e.events[last].body;
        e.events[last].body = format!("{},\"account\":\"acme\"}}", &body[..body.len() - 1]);
        assert!(check(&e, key).is_err());
    }

    #[test]
    fn a_newer_extract_must_extend_an_older_one() {
        let mut l = ledger();
        let old = l.extract("acme", 12, None);
        for seq in 13..=20u8 {
            l.push(if seq % 2 == 0 { "acme" } else { "globex" }, true, seq);
        }
        let new = l.extract("acme", 20, Some(12));
        let key = Some(l.key.public());
        let report = verify_extends(&text(&old), &text(&new), key.as_ref()).expect("extends");
        assert_eq!(report.events, 8);
        // Without the consistency proof it says how to get one.
        let bare = l.extract("acme", 20, None);
        let p = verify_extends(&text(&old), &text(&bare), key.as_ref()).expect_err("no proof");
        assert!(p.to_string().contains("?since=12"), "{p}");
        // A newer extract of a rewritten history: an older event changed and everything
        // re-signed by the instance's own key; the checkpoint and proof hold on their
        // own, but it no longer extends the older one.
        let mut fork = Ledger::new();
        for (i, (who, _)) in l.events.iter().enumerate() {
            fork.push(who, i >= 6, if i == 7 { 77 } else { i as u8 + 1 });
        }
        let forked = fork.extract("acme", 20, Some(12));
        assert!(verify_extract(&text(&forked), key.as_ref()).is_ok());
        assert!(matches!(
            verify_extends(&text(&old), &text(&forked), key.as_ref()),
            Err(ExtractProblem::NotExtending(_))
        ));
        // The instance itself signed an older checkpoint that left the account's last
        // event out: that extract holds on its own, but the newer one shows the lie.
        let mut lying = old.clone();
        lying.events.pop();
        let mut cp = lying.checkpoint.checkpoint.clone();
        cp.events -= 1;
        cp.last_leaf = leaf_hash(lying.events.last().expect("event").body.as_bytes());
        lying.checkpoint = l.key.sign_checkpoint(cp);
        let indices: Vec<u64> = lying.events.iter().map(|e| e.seq - 1).collect();
        lying.proof = l.tree.multi_proof(&indices, 12).expect("proof");
        assert!(verify_extract(&text(&lying), key.as_ref()).is_ok());
        let p = verify_extends(&text(&lying), &text(&new), key.as_ref()).expect_err("caught");
        assert!(p.to_string().contains("incomplete checkpoint"), "{p}");
        // The older extract's last event removed from the newer one.
        let mut cut = new.clone();
        cut.events.remove(3);
        assert!(verify_extends(&text(&old), &text(&cut), key.as_ref()).is_err());
    }

    /// Every 32-byte value an extract carries: proof nodes and the links in its bodies.
    fn hashes_in(e: &Extract) -> Vec<Hash> {
        let mut seen = e.proof.clone();
        for ev in &e.events {
            for word in ev.body.split('"') {
                let mut h = [0u8; 32];
                if word.len() == 64 && hex::decode_to_slice(word, &mut h).is_ok() {
                    seen.push(h);
                }
            }
        }
        seen
    }

    /// Whether guessing the time of one of globex's events (to the millisecond, within
    /// 13 seconds), with everything else about it known except its salt, finds a leaf
    /// hash that acme's extract carries.
    fn guessed(l: &Ledger) -> bool {
        let seen = hashes_in(&l.extract("acme", 12, None));
        l.events
            .iter()
            .enumerate()
            .filter(|(_, (who, _))| who == "globex")
            .any(|(i, (_, body))| {
                let time = format!("\"time\":{},", 1_000 * (i as i64 + 1));
                // The salt is what the guesser doesn't have: it is left out.
                let salt = format!(",\"salt\":\"{}\"", hex::encode([i as u8 + 1; 16]));
                let known = body.replace(&salt, "");
                (0..=13_000i64).any(|ms| {
                    let candidate = known.replace(&time, &format!("\"time\":{ms},"));
                    seen.contains(&leaf_hash(candidate.as_bytes()))
                })
            })
    }

    /// Another account's events are predictable JSON: without a salt, a guess is
    /// confirmed against the leaf hashes an extract carries; with one, never.
    #[test]
    fn other_accounts_events_cannot_be_guessed_from_the_hashes_an_extract_carries() {
        let mut unsalted = Ledger::new();
        let mut salted = Ledger::new();
        for seq in 1..=12u8 {
            let who = if seq % 3 == 0 { "acme" } else { "globex" };
            unsalted.push(who, false, seq);
            salted.push(who, true, seq);
        }
        assert!(
            guessed(&unsalted),
            "a version 1 leaf is confirmed by a guess"
        );
        // The same extract of salted events does carry globex's (salted) leaves…
        let seen = hashes_in(&salted.extract("acme", 12, None));
        assert!(seen.contains(&leaf_hash(salted.events[1].1.as_bytes())));
        // …but no guess without the salt matches one.
        assert!(!guessed(&salted), "a salted leaf is not guessed");
    }

    #[test]
    fn a_format_1_extract_still_verifies() {
        let format_1 = |l: &Ledger| {
            let head = l.head(12);
            let events: Vec<serde_json::Value> = l
                .events
                .iter()
                .enumerate()
                .filter(|(_, (w, _))| w == "acme")
                .map(|(i, (_, body))| {
                    let proof: Vec<String> = l
                        .tree
                        .inclusion_proof(i as u64, 12)
                        .expect("proof")
                        .iter()
                        .map(crate::merkle::hash_hex)
                        .collect();
                    serde_json::json!({"seq": i + 1, "body": body, "proof": proof})
                })
                .collect();
            serde_json::json!({
                "format": EXTRACT_FORMAT_V1,
                "account": "acme",
                "generated_at": 100_000,
                "public_key": l.key.public().to_base64(),
                "tree_head": head,
                "events": events,
            })
            .to_string()
        };
        let mut old = Ledger::new();
        for seq in 1..=12u8 {
            old.push(if seq % 3 == 0 { "acme" } else { "globex" }, false, seq);
        }
        let l = old;
        let v1 = format_1(&l);
        let report = verify_extract(&v1, Some(&l.key.public())).expect("holds");
        assert_eq!(report.events, 4);
        assert!(report.checkpoint.is_none());
        let edited = v1.replacen("allowed", "allowes", 1);
        assert!(verify_extract(&edited, Some(&l.key.public())).is_err());
        // A newer ledger's events relabelled as format 1 (to skip the completeness check).
        let newer = ledger();
        let relabelled = format_1(&newer);
        let p = verify_extract(&relabelled, Some(&newer.key.public())).expect_err("refused");
        assert!(p.to_string().contains("relabelled"), "{p}");
    }
}
