//! The keys that sign the gateway's assertions, shared by every actas instance through
//! the database, and replacing them: a director's act, recorded.
//!
//! Each seed is sealed (ChaCha20-Poly1305, its key id as associated data) under a key
//! derived from the ledger signing key. The ledger key itself stays in each instance's
//! key file and never enters the database: whoever can write the database could
//! otherwise re-sign a rewritten history. Every instance needs that file anyway (it signs
//! tree heads), so sealing under it adds no secret to distribute, while the database
//! alone (a backup, a replica, its administrator) yields no signing key. A rotation made
//! through one instance is stored in the same transaction as its ledger event; the others
//! pick it up within [`KEY_REFRESH`] (and before answering for the JWKS), well inside an
//! assertion's lifetime, and the replaced key stays published until its last assertion
//! has expired.

use super::{Service, ServiceError, ServiceResult};
use crate::assertion::{AssertionSigner, RetiredKey};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::staff::Role;
use actas_store::{AssertionKeyRecord, Change, StaffRecord, StoreError, Unit};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

/// How often an instance looks for a key another instance put in place.
pub const KEY_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The key assertion seeds are sealed under in the database. Never printed.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(…)")
    }
}

impl SealKey {
    /// Derived from the ledger signing key's secret bytes.
    pub fn from_ledger_key(ledger_secret: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"actas v1: seals the assertion keys kept in the database\0");
        h.update(ledger_secret);
        Self(h.finalize().into())
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    /// `seed` sealed for `kid`: a random nonce, then the ciphertext and its tag.
    pub fn seal(&self, kid: &str, seed: &[u8; 32]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| format!("no random source: {e}"))?;
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: seed,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| "the assertion key could not be sealed".to_owned())?;
        Ok([&nonce[..], &sealed].concat())
    }

    /// What a row's tag covers: everything but `retired_at`, which a rotation sets later
    /// and which is therefore never trusted (see `Service::shared_keys`).
    fn tagged(
        kid: &str,
        public: &[u8; 32],
        created_at: Timestamp,
        sealed: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut data = Vec::with_capacity(64 + kid.len() + sealed.map_or(0, <[u8]>::len));
        data.extend_from_slice(b"actas assertion key row v1\0");
        data.extend_from_slice(&(kid.len() as u64).to_be_bytes());
        data.extend_from_slice(kid.as_bytes());
        data.extend_from_slice(public);
        data.extend_from_slice(&created_at.as_millis().to_be_bytes());
        if let Some(sealed) = sealed {
            data.push(1);
            data.extend_from_slice(sealed);
        } else {
            data.push(0);
        }
        data
    }

    /// A tag for a row: ChaCha20-Poly1305 over nothing, with the row as associated data
    /// (an AEAD with an empty message is a MAC); a random nonce, then the tag.
    pub fn tag(
        &self,
        kid: &str,
        public: &[u8; 32],
        created_at: Timestamp,
        sealed: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| format!("no random source: {e}"))?;
        let data = Self::tagged(kid, public, created_at, sealed);
        let tag = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &[],
                    aad: &data,
                },
            )
            .map_err(|_| "an assertion key could not be tagged".to_owned())?;
        Ok([&nonce[..], &tag].concat())
    }

    /// Whether `row` carries a tag this key made.
    pub fn stored_by_actas(&self, row: &AssertionKeyRecord) -> bool {
        if row.mac.len() < 12 || crate::assertion::kid_of(&row.public) != row.kid {
            return false;
        }
        let (nonce, tag) = row.mac.split_at(12);
        let data = Self::tagged(&row.kid, &row.public, row.created_at, row.sealed.as_deref());
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: tag,
                    aad: &data,
                },
            )
            .is_ok()
    }

    /// The seed sealed for `kid`, if this key sealed it for that id.
    pub fn unseal(&self, kid: &str, sealed: &[u8]) -> Result<[u8; 32], String> {
        let wrong = || {
            format!(
                "the assertion key {kid} in the database can't be opened with this instance's ledger key: every instance must have the same ledger key file"
            )
        };
        if sealed.len() < 12 {
            return Err(wrong());
        }
        let (nonce, body) = sealed.split_at(12);
        let seed = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        seed.try_into().map_err(|_| wrong())
    }
}

/// The signing seed and the replaced keys still to publish, as the database has them.
struct Shared {
    kid: String,
    seed: [u8; 32],
    retired: Vec<RetiredKey>,
}

fn unexpected(why: String) -> ServiceError {
    ServiceError::Unexpected(StoreError::Unexpected(why.into()))
}

fn record(
    seal: &SealKey,
    seed: &[u8; 32],
    at: Timestamp,
    retired_at: Option<Timestamp>,
) -> Result<AssertionKeyRecord, String> {
    let public = crate::assertion::public_of(seed).map_err(|e| e.to_string())?;
    let kid = crate::assertion::kid_of(&public);
    let sealed = seal.seal(&kid, seed)?;
    Ok(AssertionKeyRecord {
        mac: seal.tag(&kid, &public, at, Some(&sealed))?,
        sealed: Some(sealed),
        kid,
        public,
        created_at: at,
        retired_at,
    })
}

impl Service {
    /// The key this service seals assertion keys under, once the application set it.
    fn seal_key(&self) -> ServiceResult<&SealKey> {
        self.assertion_seal
            .as_deref()
            .ok_or_else(|| unexpected("no key to seal assertion keys with".into()))
    }

    /// The keys as the database has them, trusting only rows actas tagged: the one
    /// signing is the newest tagged row with a seed (a row written behind actas's back
    /// is ignored, and un-retiring an older row changes nothing), and each replaced key
    /// counts as retired when its successor was made (never later than now).
    async fn shared_keys(&self) -> ServiceResult<Option<Shared>> {
        let seal = self.seal_key()?;
        let mut rows = self.store.assertion_keys().await?;
        let before = rows.len();
        rows.retain(|r| seal.stored_by_actas(r));
        if rows.len() < before {
            tracing::warn!(
                ignored = before - rows.len(),
                "assertion keys in the database that actas did not store are ignored"
            );
        }
        rows.sort_by_key(|r| (r.created_at, r.kid.clone()));
        let Some(at) = rows.iter().rposition(|r| r.sealed.is_some()) else {
            return Ok(None);
        };
        let current = &rows[at];
        let sealed = current
            .sealed
            .as_deref()
            .ok_or_else(|| unexpected("the current assertion key has no sealed seed".into()))?;
        let seed = seal.unseal(&current.kid, sealed).map_err(unexpected)?;
        let now = Timestamp::now();
        let retired = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(i, r)| {
                let successor = rows.get(i + 1).map_or(now, |next| next.created_at).min(now);
                RetiredKey {
                    x: crate::assertion::x_of(&r.public),
                    retired_at_ms: successor.as_millis(),
                }
            })
            .collect();
        Ok(Some(Shared {
            kid: current.kid.clone(),
            seed,
            retired,
        }))
    }

    /// The assertion keys every instance signs with: the database's, or, the first time
    /// (nothing stored yet), the ones in this data directory's key files, stored for the
    /// others. Returns the seed to sign with and the replaced keys to publish.
    pub async fn load_assertion_keys(
        &self,
        file_seed: &[u8],
        file_retired: &[RetiredKey],
    ) -> ServiceResult<([u8; 32], Vec<RetiredKey>)> {
        if self.shared_keys().await?.is_none() {
            let seal = self.seal_key()?;
            let seed: [u8; 32] = file_seed
                .try_into()
                .map_err(|_| unexpected("an assertion key is 32 bytes".into()))?;
            let now = Timestamp::now();
            let mut keys: Vec<AssertionKeyRecord> = file_retired
                .iter()
                .filter_map(|r| {
                    let public = crate::assertion::public_from_x(&r.x)?;
                    let kid = crate::assertion::kid_of(&public);
                    let at = Timestamp::from_millis(r.retired_at_ms);
                    Some(AssertionKeyRecord {
                        mac: seal.tag(&kid, &public, at, None).ok()?,
                        kid,
                        public,
                        sealed: None,
                        created_at: at,
                        retired_at: Some(at),
                    })
                })
                .collect();
            keys.push(record(seal, &seed, now, None).map_err(unexpected)?);
            self.store
                .commit(Unit::new(vec![Change::SeedAssertionKeys(keys)], |_| vec![]))
                .await?;
        }
        let shared = self
            .shared_keys()
            .await?
            .ok_or_else(|| unexpected("no assertion key was stored".into()))?;
        Ok((shared.seed, shared.retired))
    }

    /// Every assertion key row actas stored, sealed and tagged again under `new` (the
    /// seal key of the ledger key about to take over), for
    /// [`actas_store::Change::ResealAssertionKeys`].
    pub(crate) async fn resealed_assertion_keys(
        &self,
        new: &SealKey,
    ) -> ServiceResult<Vec<AssertionKeyRecord>> {
        let old = self.seal_key()?;
        let mut out = Vec::new();
        for row in self.store.assertion_keys().await? {
            if !old.stored_by_actas(&row) {
                continue;
            }
            let sealed = match &row.sealed {
                Some(s) => {
                    let seed = old.unseal(&row.kid, s).map_err(unexpected)?;
                    Some(new.seal(&row.kid, &seed).map_err(unexpected)?)
                }
                None => None,
            };
            out.push(AssertionKeyRecord {
                mac: new
                    .tag(&row.kid, &row.public, row.created_at, sealed.as_deref())
                    .map_err(unexpected)?,
                sealed,
                ..row
            });
        }
        Ok(out)
    }

    /// Makes `signer` use the key the database has, if another instance replaced it.
    pub async fn refresh_assertion_keys(&self, signer: &AssertionSigner) -> ServiceResult<()> {
        if let Some(shared) = self.shared_keys().await?
            && shared.kid != signer.kid()
        {
            signer
                .adopt(&shared.seed, shared.retired)
                .map_err(|e| unexpected(e.to_string()))?;
            tracing::info!(kid = %shared.kid, "now signing assertions with the key another instance put in place");
        }
        Ok(())
    }

    /// Starts signing assertions with a new key, for every instance; the old one stays
    /// published until its last assertion has expired. `by` is the director doing it
    /// (`None`: the operator, from the command line). The new key and the ledger event
    /// are one transaction. Returns the old and new key ids.
    pub async fn rotate_assertion_key(
        &self,
        by: Option<&StaffRecord>,
        signer: &AssertionSigner,
    ) -> ServiceResult<(String, String)> {
        let actor = match by {
            Some(s) if s.active && s.role == Role::Director => Actor::Staff(s.to_ref()),
            Some(_) => {
                return Err(ServiceError::Forbidden(
                    "only a director can replace the assertion key".into(),
                ));
            }
            None => Actor::System,
        };
        // Start from what the database has, in case another instance rotated meanwhile.
        self.refresh_assertion_keys(signer).await?;
        let old_kid = signer.kid();
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| unexpected(format!("no random source: {e}")))?;
        let now = Timestamp::now();
        let key = record(self.seal_key()?, &seed, now, None).map_err(unexpected)?;
        let new_kid = key.kid.clone();
        let event = NewEvent::new(
            actor,
            EventData::AssertionKeyRotated {
                old_kid: old_kid.clone(),
                new_kid: new_kid.clone(),
            },
        );
        self.store
            .commit(Unit::change(
                Change::RotateAssertionKey {
                    key,
                    replaces: old_kid.clone(),
                },
                event,
            ))
            .await?;
        signer
            .rotate(&seed, now)
            .map_err(|e| unexpected(e.to_string()))?;
        Ok((old_kid, new_kid))
    }
}
