//! What the ledger publishes about itself: the newest tree head as a C2SP checkpoint
//! note, consistency proofs between tree sizes, and the ledger keys with the heads each
//! signed, so a customer or a monitor can check extracts and heads without trusting the
//! file they were given.

use super::{Service, ServiceError, ServiceResult};
use actas_core::checkpoint::{Origin, Rotation, TrustedKey, key_history};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::extract::ConsistencyProof;
use actas_core::tree_head::LedgerKey;
use actas_core::tree_head::SignedTreeHead;
use actas_store::StoreError;
use actas_store::{Change, EventFilter, Unit};
use base64::Engine;
use serde::Serialize;

use actas_core::event::LEDGER_KEY_ROTATED as ROTATION_KIND;

/// How long the published ledger keys are served as last read: a key another instance
/// rotated to shows within this, and at once where the instance itself signs with a new
/// key.
pub const KEYS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The published ledger keys as last read.
#[derive(Clone)]
pub(super) struct Published {
    read_at: std::time::Instant,
    origin: String,
    keys: Vec<LedgerKeyInfo>,
}

/// A value kept while it is fresh, read again by one caller at a time: when it goes
/// stale, the first to ask reads it while the others wait and then take that reading,
/// so a burst of requests costs one read, not one each. (The lock is held across the
/// read on purpose. A crate such as moka does this and much more; one value doesn't
/// need it.)
pub(super) struct ReadOnce<T>(tokio::sync::Mutex<Option<T>>);

impl<T> Default for ReadOnce<T> {
    fn default() -> Self {
        Self(tokio::sync::Mutex::new(None))
    }
}

impl<T: Clone> ReadOnce<T> {
    /// The kept value if `fresh` says it still is, or else what `read` gives, kept.
    async fn get<E, F: Future<Output = Result<T, E>>>(
        &self,
        fresh: impl Fn(&T) -> bool,
        read: impl FnOnce() -> F,
    ) -> Result<T, E> {
        let mut kept = self.0.lock().await;
        if let Some(value) = kept.as_ref().filter(|v| fresh(v)) {
            return Ok(value.clone());
        }
        let value = read().await?;
        *kept = Some(value.clone());
        Ok(value)
    }
}

/// One ledger key as `/.well-known/actas-ledger-keys` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerKeyInfo {
    /// The Ed25519 public key, base64url.
    pub key: String,
    /// Its fingerprint: hex(SHA-256(key)[0..8]).
    pub key_id: String,
    /// The key as a signed-note verifier key, for checkpoint notes.
    pub note_verifier_key: String,
    /// Whether it signs heads now.
    pub current: bool,
    /// The smallest and largest tree size it signed a head for, if any.
    pub signed_heads: Option<SignedRange>,
    /// For a replaced key: the event that replaced it, the largest tree size it may
    /// sign a head for. A head it signed beyond that was forged with the old key.
    pub signs_up_to: Option<u64>,
}

/// The tree sizes a key signed heads for.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SignedRange {
    /// The first head's size.
    pub from_size: u64,
    /// The last head's size.
    pub to_size: u64,
    /// How many heads.
    pub heads: usize,
}

impl Service {
    /// The newest signed tree head, signing one now if the newest events are not yet
    /// covered (so what is built on it is complete up to this moment).
    pub async fn current_head(&self) -> ServiceResult<SignedTreeHead> {
        let size = self.store.ledger_size().await?;
        let latest = self
            .store
            .tree_heads()
            .await?
            .into_iter()
            .max_by_key(|h| h.head.size);
        let current = self.store.public_key().key_id();
        match latest {
            Some(h) if h.head.size >= size && size > 0 && h.key_id == current => Ok(h),
            _ => self.store.sign_head_now().await?.ok_or_else(|| {
                ServiceError::Unexpected(StoreError::Unexpected(
                    "no tree head could be signed".into(),
                ))
            }),
        }
    }

    /// The newest signed tree head as a C2SP `tlog-checkpoint` signed note from
    /// `origin`. The heads the writer signed on its schedule: asking signs nothing new
    /// (the endpoint is public), except the very first head of a ledger that has none.
    pub async fn checkpoint_note(&self, origin: &Origin) -> ServiceResult<String> {
        // The newest head this instance's key signed: the writer signs none past the
        // key's replacement, so a note over it never claims more than the key may.
        let current = self.store.public_key().key_id();
        let newest = self
            .store
            .tree_heads()
            .await?
            .into_iter()
            .filter(|h| h.key_id == current)
            .max_by_key(|h| h.head.size);
        let head = match newest {
            Some(h) => h,
            None => self.current_head().await?,
        };
        Ok(self.store.ledger_key().sign_note(origin, &head.head))
    }

    /// The consistency proof from the tree of `from` events to the tree of `to`.
    pub async fn consistency(&self, from: u64, to: u64) -> ServiceResult<ConsistencyProof> {
        let size = self.store.ledger_size().await?;
        if to > size || to == 0 {
            return Err(ServiceError::invalid(
                "to",
                format!("the ledger has {size} events: give a size from 1 to {size}"),
            ));
        }
        if from == 0 || from > to {
            return Err(ServiceError::invalid(
                "from",
                format!("give a size from 1 to {to} (the `to` size)"),
            ));
        }
        Ok(ConsistencyProof {
            from,
            to,
            proof: self.store.consistency_proof(from, to).await?,
        })
    }

    /// The ledger key's fingerprint, shown where customers are told how to check.
    pub fn ledger_key_id(&self) -> String {
        self.store.public_key().key_id().to_string()
    }

    /// Every ledger key: the current one and earlier ones, each with the heads it signed.
    pub async fn ledger_keys(&self, origin: &Origin) -> ServiceResult<Vec<LedgerKeyInfo>> {
        let current = self.store.public_key().key_id().to_string();
        let fresh = |p: &Published| {
            p.read_at.elapsed() < KEYS_FRESH_FOR
                && p.origin == origin.as_str()
                && p.keys.iter().any(|k| k.current && k.key_id == current)
        };
        let published = self
            .published_keys
            .get(fresh, || async {
                Ok::<_, ServiceError>(Published {
                    keys: self.read_ledger_keys(origin).await?,
                    read_at: std::time::Instant::now(),
                    origin: origin.as_str().to_owned(),
                })
            })
            .await?;
        Ok(published.keys)
    }

    async fn read_ledger_keys(&self, origin: &Origin) -> ServiceResult<Vec<LedgerKeyInfo>> {
        let heads = self.store.tree_heads().await?;
        let current = self.store.public_key();
        let keys = self.ledger_key_history().await?;
        Ok(keys
            .iter()
            .map(|&TrustedKey { key: k, up_to }| {
                let id = k.key_id();
                let signed: Vec<u64> = heads
                    .iter()
                    .filter(|h| h.key_id == id)
                    .map(|h| h.head.size)
                    .collect();
                LedgerKeyInfo {
                    key: k.to_base64(),
                    key_id: id.to_string(),
                    note_verifier_key: k.note_verifier_key(origin),
                    current: k == current,
                    signs_up_to: up_to,
                    signed_heads: signed.first().zip(signed.last()).map(|(a, b)| SignedRange {
                        from_size: *a,
                        to_size: *b,
                        heads: signed.len(),
                    }),
                }
            })
            .collect())
    }

    /// Every ledger key, oldest first, as the ledger's own endorsed rotations lead back
    /// to them from the current key, each with the last tree size it may sign.
    pub async fn ledger_key_history(&self) -> ServiceResult<Vec<TrustedKey>> {
        let rotations = self.ledger_rotations().await?;
        key_history(self.store.public_key(), &rotations)
            .map_err(|e| ServiceError::Unexpected(StoreError::Unexpected(e.to_string().into())))
    }

    /// Every replacement of the ledger key, oldest first.
    pub async fn ledger_rotations(&self) -> ServiceResult<Vec<Rotation>> {
        let filter = EventFilter {
            kind: Some(ROTATION_KIND.to_owned()),
            ..EventFilter::default()
        };
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let events = self.store.events(&filter, after, 1_000).await?;
            let Some(last) = events.last() else { break };
            after = last.body.seq;
            for e in &events {
                if let Some(r) = Rotation::from_event(e.body.seq, &e.body.data) {
                    out.push(r.map_err(|why| {
                        ServiceError::Unexpected(StoreError::Unexpected(
                            format!(
                                "the key replacement at event #{} is damaged: {why}",
                                e.body.seq
                            )
                            .into(),
                        ))
                    })?);
                }
            }
        }
        Ok(out)
    }

    /// Replaces the ledger key with `new` (the operator's act, with every instance
    /// stopped): records the replacement, endorsed by the new key, and signs a last head
    /// with the old key over it. The caller then puts the new key in place.
    pub async fn rotate_ledger_key(&self, new: &LedgerKey) -> ServiceResult<SignedTreeHead> {
        let old = self.store.public_key();
        if new.public() == old {
            return Err(ServiceError::invalid(
                "key",
                "the new ledger key is the current one",
            ));
        }
        let endorsement = new.endorse_takeover(&old);
        // The assertion keys in the database are sealed under the ledger key: sealed
        // again under the new one, in the same transaction as the replacement.
        let resealed = self
            .resealed_assertion_keys(&super::keys::SealKey::from_ledger_key(&new.to_bytes()))
            .await?;
        self.store
            .commit(Unit::change(
                Change::ResealAssertionKeys(resealed),
                NewEvent::new(
                    Actor::System,
                    EventData::LedgerKeyRotated {
                        old_key: old.to_base64(),
                        new_key: new.public().to_base64(),
                        endorsement: base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(endorsement),
                    },
                ),
            ))
            .await?;
        self.store.sign_head_now().await?.ok_or_else(|| {
            ServiceError::Unexpected(StoreError::Unexpected(
                "no head could be signed over the key replacement".into(),
            ))
        })
    }

    /// Refuses to run with a ledger key the ledger says was replaced: heads it signed
    /// now would not verify.
    pub async fn check_ledger_key_current(&self) -> ServiceResult<()> {
        let current = self.store.public_key();
        if let Some(r) = self
            .ledger_rotations()
            .await?
            .iter()
            .find(|r| r.old == current)
        {
            return Err(ServiceError::Conflict(format!(
                "this instance's ledger key {} was replaced by key {} at event #{}; copy the new ledger.key (made by `actas audit rotate-key`) into this data directory",
                current.key_id(),
                r.new.key_id(),
                r.seq
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ReadOnce;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_callers_costs_one_read_and_a_stale_value_is_read_again() {
        let kept = Arc::new(ReadOnce::<(u32, usize)>::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let generation = Arc::new(AtomicUsize::new(0));
        let ask = |kept: Arc<ReadOnce<(u32, usize)>>,
                   reads: Arc<AtomicUsize>,
                   generation: Arc<AtomicUsize>| async move {
            let now = generation.load(Ordering::SeqCst);
            kept.get(
                |&(_, g)| g == now,
                || async {
                    reads.fetch_add(1, Ordering::SeqCst);
                    // A slow read (every signed head), during which the others arrive.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Ok::<_, ()>((7, now))
                },
            )
            .await
        };
        let burst: Vec<_> = (0..50)
            .map(|_| tokio::spawn(ask(kept.clone(), reads.clone(), generation.clone())))
            .collect();
        for b in burst {
            assert_eq!(b.await.expect("task"), Ok((7, 0)));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "fifty callers, one read");
        generation.store(1, Ordering::SeqCst);
        assert_eq!(
            ask(kept.clone(), reads.clone(), generation.clone()).await,
            Ok((7, 1))
        );
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "a stale value is read again"
        );
        // A failed read keeps nothing, and the next caller tries again.
        generation.store(2, Ordering::SeqCst);
        let failed = kept
            .get(
                |&(_, g)| g == 2,
                || async { Err::<(u32, usize), _>("down") },
            )
            .await;
        assert_eq!(failed, Err("down"));
        assert_eq!(ask(kept, reads.clone(), generation).await, Ok((7, 2)));
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }
}
