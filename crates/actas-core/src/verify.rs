//! Full ledger verification: every event, in order, against the hash chain, the Merkle
//! tree and every signed tree head. Streaming, so memory stays flat on any ledger size.
//!
//! It detects an edited event (its hash no longer matches), a removed event (a gap), a
//! reordering (an event's recorded position or link no longer fits), a truncated tail
//! (a signed head covers events that are gone), and a forged head (bad signature), and
//! names the first place it went wrong.

use crate::event::{BodyIndex, write_index_prefix};
use crate::merkle::{Frontier, Hash, leaf_hash};
use crate::tree_head::{KeyError, PublicKey, SignedTreeHead};
use std::fmt;

/// One event as stored: its index columns, its body and its recorded leaf hash.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// The `seq` column.
    pub seq: u64,
    /// The `time` column (ms).
    pub time: i64,
    /// The `kind` column.
    pub kind: &'a str,
    /// The `account` column.
    pub account: Option<&'a str>,
    /// The `session` column.
    pub session: Option<&'a str>,
    /// The body, verbatim.
    pub body: &'a str,
    /// The leaf hash recorded with the event.
    pub leaf_hash: Hash,
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A sequence number is missing.
    #[error("event #{seq} is missing: the ledger goes from #{before} to #{found}")]
    Missing {
        /// The missing number.
        seq: u64,
        /// The event before the gap.
        before: u64,
        /// The event found instead.
        found: u64,
    },
    /// The body's hash no longer matches.
    #[error(
        "event #{seq} was changed after it was recorded: its contents no longer match its hash"
    )]
    Changed {
        /// The event.
        seq: u64,
    },
    /// The body says something different from the index columns.
    #[error(
        "event #{seq} was changed after it was recorded: its {field} no longer matches its recorded contents"
    )]
    Index {
        /// The event.
        seq: u64,
        /// The column.
        field: &'static str,
    },
    /// The hash chain is broken before this event.
    #[error(
        "event #{seq} was changed, removed or moved: the next event, #{next}, no longer links to it"
    )]
    Unlinked {
        /// The first bad event.
        seq: u64,
        /// The event whose link broke.
        next: u64,
    },
    /// An event does not follow on from its account's previous event.
    #[error(
        "event #{seq} does not follow on from the previous event of account {account}: one of that account's events was changed, removed or moved"
    )]
    AccountUnlinked {
        /// The event whose account link broke.
        seq: u64,
        /// Its account.
        account: String,
    },
    /// The ledger's key replacements don't lead back from the trusted key.
    #[error("{0}")]
    KeyHistory(crate::checkpoint::HistoryError),
    /// The body can't be read.
    #[error("event #{seq} can't be read: {why}")]
    Unreadable {
        /// The event.
        seq: u64,
        /// What failed.
        why: String,
    },
    /// A head's root differs from the events.
    #[error(
        "the signed tree head of {time} covering events #1–#{size} does not match them: {which} was changed after it was signed"
    )]
    HeadMismatch {
        /// The changed event or range, in words.
        which: String,
        /// The head's size.
        size: u64,
        /// The head's time.
        time: String,
        /// The first event not covered by an earlier matching head.
        from: u64,
    },
    /// A head's signature is not valid.
    #[error("the tree head of {time} covering events #1–#{size} is not validly signed: {why}")]
    HeadSignature {
        /// The head's size.
        size: u64,
        /// The head's time.
        time: String,
        /// Why.
        why: KeyError,
    },
    /// A head covers more events than the ledger has.
    #[error(
        "event #{first_missing} is missing: the ledger ends at #{have}, but a signed tree head of {time} covers events up to #{size}"
    )]
    Truncated {
        /// The last event present.
        have: u64,
        /// The first missing one.
        first_missing: u64,
        /// The head's size.
        size: u64,
        /// The head's time.
        time: String,
    },
}

impl Problem {
    /// The first bad sequence number, when one can be named.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            Problem::Missing { seq, .. }
            | Problem::Changed { seq }
            | Problem::Index { seq, .. }
            | Problem::Unlinked { seq, .. }
            | Problem::AccountUnlinked { seq, .. }
            | Problem::Unreadable { seq, .. } => Some(*seq),
            Problem::HeadMismatch { from, .. } => Some(*from),
            Problem::Truncated { first_missing, .. } => Some(*first_missing),
            Problem::HeadSignature { .. } => None,
            Problem::KeyHistory(crate::checkpoint::HistoryError::Broken { seq, .. })
            | Problem::KeyHistory(crate::checkpoint::HistoryError::Unendorsed { seq }) => {
                Some(*seq)
            }
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events checked.
    pub events: u64,
    /// Signed heads checked.
    pub heads: usize,
    /// The root over all events.
    pub root: Hash,
    /// The newest signed head's size, if any.
    pub newest_head: Option<u64>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "The ledger verifies: {} events checked against {} signed tree heads",
            self.events, self.heads
        )?;
        if let Some(n) = self.newest_head.filter(|n| *n < self.events) {
            {
                write!(
                    f,
                    " (events after #{n} are not yet covered by a signed head; they are checked by their links)"
                )?;
            }
        }
        Ok(())
    }
}

/// The kind of a ledger key replacement.
use crate::event::LEDGER_KEY_ROTATED as ROTATION_KIND;

/// A ledger key replacement, read from its event.
fn read_rotation(ev: &StoredEvent<'_>) -> Result<crate::checkpoint::Rotation, Problem> {
    let unreadable = |why: String| Problem::Unreadable { seq: ev.seq, why };
    let body = crate::event::EventBody::decode(ev.body).map_err(|e| unreadable(e.to_string()))?;
    crate::checkpoint::Rotation::from_event(ev.seq, &body.data)
        .unwrap_or_else(|| Err("it is not a key replacement".into()))
        .map_err(unreadable)
}

/// Checks a ledger fed to it event by event, in sequence order.
pub struct Verifier {
    heads: Vec<SignedTreeHead>,
    next_head: usize,
    frontier: Frontier,
    prev: Hash,
    prev_hex: [u8; 64],
    last_good_head: u64,
    prefix: String,
    /// Each account's history so far: its number of events and its last leaf hash.
    accounts: std::collections::HashMap<String, (u64, Hash)>,
    /// The key the reader trusts.
    key: PublicKey,
    /// The ledger key replacements met so far.
    rotations: Vec<crate::checkpoint::Rotation>,
    /// Whether a version 2 body was met: after one, every body is version 2.
    seen_v2: bool,
}

impl Verifier {
    /// Starts a verification by a reader who trusts `key`, the ledger's current key.
    /// Heads it signed are checked now; heads signed by earlier keys are checked at the
    /// end, against the key history the ledger's own rotation events give (each endorsed
    /// by the key after it, back from `key`; see [`crate::checkpoint::key_history`]).
    /// Heads are compared with the tree as the events arrive.
    pub fn new(key: &PublicKey, mut heads: Vec<SignedTreeHead>) -> Result<Self, Problem> {
        for h in heads.iter().filter(|h| h.key_id == key.key_id()) {
            key.verify(h).map_err(|why| Problem::HeadSignature {
                size: h.head.size,
                time: h.head.time.to_rfc3339(),
                why,
            })?;
        }
        heads.sort_by_key(|h| h.head.size);
        let mut prev_hex = [0u8; 64];
        let _ = hex::encode_to_slice([0u8; 32], &mut prev_hex);
        let mut v = Self {
            heads,
            next_head: 0,
            frontier: Frontier::new(),
            prev: [0; 32],
            prev_hex,
            last_good_head: 0,
            prefix: String::with_capacity(256),
            accounts: std::collections::HashMap::new(),
            key: *key,
            rotations: Vec::new(),
            seen_v2: false,
        };
        v.check_heads()?;
        Ok(v)
    }

    /// The number of events checked so far.
    pub fn checked(&self) -> u64 {
        self.frontier.size()
    }

    fn check_heads(&mut self) -> Result<(), Problem> {
        let size = self.frontier.size();
        while let Some(h) = self.heads.get(self.next_head) {
            if h.head.size != size {
                break;
            }
            if h.head.root != self.frontier.root() {
                let from = self.last_good_head + 1;
                return Err(Problem::HeadMismatch {
                    which: if from == size {
                        format!("event #{size}")
                    } else {
                        format!("one of events #{from}–#{size}")
                    },
                    size,
                    time: h.head.time.to_rfc3339(),
                    from,
                });
            }
            self.last_good_head = size;
            self.next_head += 1;
        }
        Ok(())
    }

    /// Checks the next event.
    pub fn push(&mut self, ev: StoredEvent<'_>) -> Result<(), Problem> {
        let expected = self.frontier.size() + 1;
        if ev.seq != expected {
            return Err(Problem::Missing {
                seq: expected,
                before: expected - 1,
                found: ev.seq,
            });
        }
        let computed = leaf_hash(ev.body.as_bytes());
        if computed != ev.leaf_hash {
            return Err(Problem::Changed { seq: ev.seq });
        }
        // Fast path: the body must begin exactly as its index columns and the chain say.
        let prev_hex = std::str::from_utf8(&self.prev_hex).unwrap_or("");
        write_index_prefix(
            &mut self.prefix,
            ev.seq,
            ev.time,
            ev.kind,
            ev.account,
            ev.session,
            prev_hex,
        );
        if !ev.body.starts_with(self.prefix.as_str()) {
            return Err(self.explain(&ev));
        }
        self.check_account_link(&ev, computed)?;
        if ev.kind == ROTATION_KIND {
            self.rotations.push(read_rotation(&ev)?);
        }
        self.frontier.push(computed, |_, _| {});
        self.prev = computed;
        let _ = hex::encode_to_slice(computed, &mut self.prev_hex);
        self.check_heads()
    }

    /// What follows the index prefix: nothing more for a version 1 body; for version 2,
    /// the salt and, for an event with an account, its place in the account's history,
    /// which must follow on from the account's previous event.
    fn check_account_link(&mut self, ev: &StoredEvent<'_>, leaf: Hash) -> Result<(), Problem> {
        const NEXT: &str = ",\"on_behalf_of\":";
        const SALT: &str = ",\"version\":2,\"salt\":\"";
        let rest = &ev.body[self.prefix.len()..];
        let layout = || Problem::Index {
            seq: ev.seq,
            field: "layout",
        };
        let link = if rest.starts_with(NEXT) {
            // Version 1: no salt, no link, anywhere in it; and never after version 2.
            #[derive(serde::Deserialize)]
            struct Later {
                version: Option<serde::de::IgnoredAny>,
                salt: Option<serde::de::IgnoredAny>,
                account_index: Option<serde::de::IgnoredAny>,
                account_prev: Option<serde::de::IgnoredAny>,
            }
            let later: Later = serde_json::from_str(ev.body).map_err(|_| layout())?;
            if self.seen_v2
                || later.version.is_some()
                || later.salt.is_some()
                || later.account_index.is_some()
                || later.account_prev.is_some()
            {
                return Err(Problem::Index {
                    seq: ev.seq,
                    field: "version",
                });
            }
            None
        } else {
            self.seen_v2 = true;
            let salted = rest.strip_prefix(SALT).ok_or_else(layout)?;
            let after = salted
                .get(32..)
                .filter(|_| salted.as_bytes()[..32].iter().all(u8::is_ascii_hexdigit))
                .and_then(|a| a.strip_prefix('"'))
                .ok_or_else(layout)?;
            Some(after)
        };
        let Some(account) = ev.account else {
            return match link {
                Some(after) if !after.starts_with(NEXT) => Err(layout()),
                _ => Ok(()),
            };
        };
        let (count, last) = self.accounts.get(account).copied().unwrap_or((0, [0; 32]));
        if let Some(after) = link {
            let expected = format!(
                ",\"account_index\":{count},\"account_prev\":\"{}\"{NEXT}",
                crate::merkle::hash_hex(&last)
            );
            if !after.starts_with(&expected) {
                return Err(Problem::AccountUnlinked {
                    seq: ev.seq,
                    account: account.to_owned(),
                });
            }
        }
        match self.accounts.get_mut(account) {
            Some(entry) => *entry = (count + 1, leaf),
            None => {
                self.accounts.insert(account.to_owned(), (count + 1, leaf));
            }
        }
        Ok(())
    }

    /// Slow path: parse the body to say which index column or link is wrong.
    fn explain(&self, ev: &StoredEvent<'_>) -> Problem {
        let idx = match BodyIndex::read(ev.body) {
            Ok(i) => i,
            Err(e) => {
                return Problem::Unreadable {
                    seq: ev.seq,
                    why: e.to_string(),
                };
            }
        };
        let field = if idx.seq != ev.seq {
            "position"
        } else if idx.time != ev.time {
            "time"
        } else if idx.kind != ev.kind {
            "kind"
        } else if idx.account.as_deref() != ev.account {
            "account"
        } else if idx.session.as_deref() != ev.session {
            "session"
        } else if idx.prev.as_bytes() != self.prev_hex {
            return Problem::Unlinked {
                seq: ev.seq.saturating_sub(1).max(1),
                next: ev.seq,
            };
        } else {
            "layout"
        };
        Problem::Index { seq: ev.seq, field }
    }

    /// Finishes: every head must have been reached, and every head signed by an earlier
    /// key must be signed by the key in force at its size.
    pub fn finish(self) -> Result<Report, Problem> {
        let have = self.frontier.size();
        let own = self.key.key_id();
        if self.heads.iter().any(|h| h.key_id != own) {
            let keys = crate::checkpoint::key_history(self.key, &self.rotations)
                .map_err(Problem::KeyHistory)?;
            for h in self.heads.iter().filter(|h| h.key_id != own) {
                let bad = |why| Problem::HeadSignature {
                    size: h.head.size,
                    time: h.head.time.to_rfc3339(),
                    why,
                };
                let key = keys
                    .iter()
                    .find(|k| {
                        k.key.key_id() == h.key_id && k.up_to.is_none_or(|n| h.head.size <= n)
                    })
                    .ok_or_else(|| {
                        bad(KeyError::OtherKey {
                            expected: own.clone(),
                            found: h.key_id.clone(),
                        })
                    })?;
                key.key.verify(h).map_err(bad)?;
            }
        }
        // Name the newest head when one was not reached: it shows how much is gone.
        if let Some(h) = self
            .heads
            .last()
            .filter(|_| self.next_head < self.heads.len())
        {
            return Err(Problem::Truncated {
                have,
                first_missing: have + 1,
                size: h.head.size,
                time: h.head.time.to_rfc3339(),
            });
        }
        Ok(Report {
            events: have,
            heads: self.heads.len(),
            root: self.frontier.root(),
            newest_head: self.heads.last().map(|h| h.head.size),
        })
    }

    /// The leaf hash of the last event checked (all zeros before the first).
    pub fn last_leaf(&self) -> Hash {
        self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::event::{Actor, EventData, NewEvent};
    use crate::ids::StaffId;
    use crate::staff::{DisplayName, Email, Role, StaffRef};
    use crate::tree_head::{LedgerKey, TreeHead};

    struct Row {
        seq: u64,
        body: String,
        leaf: Hash,
    }

    fn ledger(n: u64) -> Vec<Row> {
        let mut prev = [0u8; 32];
        (1..=n)
            .map(|seq| {
                let staff = StaffRef {
                    id: StaffId::new(seq as i64).expect("id"),
                    email: Email::parse(&format!("s{seq}@example.com")).expect("email"),
                    name: DisplayName::parse(&format!("Staff {seq}")).expect("name"),
                };
                let body = NewEvent::new(
                    Actor::System,
                    EventData::StaffAdded {
                        staff,
                        role: Role::Agent,
                    },
                )
                .into_body(seq, Timestamp::from_millis(seq as i64), &prev)
                .encode();
                let leaf = leaf_hash(body.as_bytes());
                prev = leaf;
                Row { seq, body, leaf }
            })
            .collect()
    }

    fn check(rows: &[Row], heads: Vec<SignedTreeHead>, key: &LedgerKey) -> Result<Report, Problem> {
        let mut v = Verifier::new(&key.public(), heads)?;
        for r in rows {
            v.push(StoredEvent {
                seq: r.seq,
                time: r.seq as i64,
                kind: "staff.added",
                account: None,
                session: None,
                body: &r.body,
                leaf_hash: r.leaf,
            })?;
        }
        v.finish()
    }

    fn head(rows: &[Row], size: u64, key: &LedgerKey) -> SignedTreeHead {
        let mut f = Frontier::new();
        for r in &rows[..size as usize] {
            f.push(r.leaf, |_, _| {});
        }
        key.sign(TreeHead {
            size,
            time: Timestamp::from_millis(0),
            root: f.root(),
        })
    }

    #[test]
    fn a_consistent_rewrite_between_heads_is_caught_by_the_next_link() {
        let key = LedgerKey::from_bytes(&[1; 32]).expect("key");
        let mut rows = ledger(6);
        assert!(check(&rows, vec![head(&rows, 6, &key)], &key).is_ok());
        rows[2].body = rows[2].body.replace("Staff 3", "Staff X");
        rows[2].leaf = leaf_hash(rows[2].body.as_bytes());
        assert_eq!(
            check(&rows, vec![], &key),
            Err(Problem::Unlinked { seq: 3, next: 4 })
        );
    }

    #[test]
    fn index_columns_must_match_the_body() {
        let key = LedgerKey::from_bytes(&[1; 32]).expect("key");
        let rows = ledger(2);
        let mut v = Verifier::new(&key.public(), vec![]).expect("no heads");
        let r = &rows[0];
        let ev = StoredEvent {
            seq: 1,
            time: 1,
            kind: "staff.disabled",
            account: None,
            session: None,
            body: &r.body,
            leaf_hash: r.leaf,
        };
        assert_eq!(
            v.push(ev),
            Err(Problem::Index {
                seq: 1,
                field: "kind"
            })
        );
    }

    /// Version 1 events of an account, then version 2 ones: the first linked event
    /// counts the earlier ones, and a link that does not follow on is named.
    #[test]
    fn account_links_are_checked_across_the_version_change() {
        use crate::account::{AccountRef, Consent};
        use crate::event::AccountLink;
        let key = LedgerKey::from_bytes(&[1; 32]).expect("key");
        let acme = AccountRef {
            id: crate::ids::AccountId::parse("acme").expect("id"),
            name: DisplayName::parse("Acme").expect("name"),
        };
        let build = |wrong_index: bool| {
            let mut prev = [0u8; 32];
            let mut tip = AccountLink {
                index: 0,
                prev: [0; 32],
            };
            let mut rows = Vec::new();
            for seq in 1..=6u64 {
                let e = NewEvent::new(
                    Actor::Customer(acme.clone()),
                    EventData::ConsentChanged {
                        account: acme.clone(),
                        consent: Consent::Allowed,
                        via: None,
                    },
                );
                let time = Timestamp::from_millis(seq as i64);
                let mut link = tip;
                if wrong_index && seq == 5 {
                    link.index += 1;
                }
                let body = if seq <= 3 {
                    e.into_body(seq, time, &prev)
                } else {
                    e.into_private_body(seq, time, &prev, [seq as u8; 16], Some(link))
                }
                .encode();
                let leaf = leaf_hash(body.as_bytes());
                tip = AccountLink {
                    index: tip.index + 1,
                    prev: leaf,
                };
                prev = leaf;
                rows.push(Row { seq, body, leaf });
            }
            rows
        };
        let run = |rows: &[Row]| {
            let mut v = Verifier::new(&key.public(), vec![])?;
            for r in rows {
                v.push(StoredEvent {
                    seq: r.seq,
                    time: r.seq as i64,
                    kind: "consent.changed",
                    account: Some("acme"),
                    session: None,
                    body: &r.body,
                    leaf_hash: r.leaf,
                })?;
            }
            v.finish()
        };
        assert_eq!(run(&build(false)).map(|r| r.events), Ok(6));
        assert_eq!(
            run(&build(true)).map(|r| r.events),
            Err(Problem::AccountUnlinked {
                seq: 5,
                account: "acme".into()
            })
        );
    }
}
