//! What the ledger publishes about itself: the newest tree head as a C2SP checkpoint
//! note, consistency proofs between tree sizes, and the ledger keys with the heads each
//! signed, so a customer or a monitor can check extracts and heads without trusting the
//! file they were given.

use super::{Service, ServiceError, ServiceResult};
use actas_core::checkpoint::Origin;
use actas_core::extract::ConsistencyProof;
use actas_core::tree_head::{PublicKey, SignedTreeHead};
use actas_store::StoreError;
use serde::Serialize;

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
        match latest {
            Some(h) if h.head.size >= size && size > 0 => Ok(h),
            _ => self.store.sign_head_now().await?.ok_or_else(|| {
                ServiceError::Unexpected(StoreError::Unexpected(
                    "no tree head could be signed".into(),
                ))
            }),
        }
    }

    /// The newest tree head as a C2SP `tlog-checkpoint` signed note from `origin`.
    pub async fn checkpoint_note(&self, origin: &Origin) -> ServiceResult<String> {
        let head = self.current_head().await?;
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
        let heads = self.store.tree_heads().await?;
        let current = self.store.public_key();
        let mut keys: Vec<PublicKey> = self.retired_ledger_keys().await?;
        keys.push(current);
        Ok(keys
            .iter()
            .map(|k| {
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
                    current: *k == current,
                    signed_heads: signed.first().zip(signed.last()).map(|(a, b)| SignedRange {
                        from_size: *a,
                        to_size: *b,
                        heads: signed.len(),
                    }),
                }
            })
            .collect())
    }

    /// The ledger keys used before the current one, oldest first (none until a rotation).
    pub async fn retired_ledger_keys(&self) -> ServiceResult<Vec<PublicKey>> {
        Ok(Vec::new())
    }
}
