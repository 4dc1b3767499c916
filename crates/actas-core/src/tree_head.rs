//! Signed tree heads: "at this time the ledger had this many events and this root",
//! signed with the instance's Ed25519 key.
//!
//! The signed message is fixed-width and documented so anyone can check it:
//! `"actas-tree-head-v1\n" ‖ size (u64, big-endian) ‖ time in ms (i64, big-endian) ‖ root (32 bytes)`.

use crate::Timestamp;
use crate::merkle::Hash;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The domain-separation prefix of the signed message.
pub const HEAD_CONTEXT: &[u8] = b"actas-tree-head-v1\n";

/// What a tree head states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// Number of events covered.
    pub size: u64,
    /// When it was made.
    pub time: Timestamp,
    /// The Merkle root of the first `size` events.
    #[serde(with = "hex_hash")]
    pub root: Hash,
}

impl TreeHead {
    /// The exact bytes that are signed.
    pub fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(HEAD_CONTEXT.len() + 48);
        m.extend_from_slice(HEAD_CONTEXT);
        m.extend_from_slice(&self.size.to_be_bytes());
        m.extend_from_slice(&self.time.as_millis().to_be_bytes());
        m.extend_from_slice(&self.root);
        m
    }
}

/// A tree head with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// What is stated.
    #[serde(flatten)]
    pub head: TreeHead,
    /// Which key signed it.
    pub key_id: KeyId,
    /// The Ed25519 signature over [`TreeHead::message`], base64url.
    #[serde(with = "b64_sig")]
    pub signature: [u8; 64],
}

/// A short fingerprint of a public key: the first 8 bytes of SHA-256(key), hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// A fingerprint read back from storage (16 hex digits).
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    /// The fingerprint's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key file does not hold 32 bytes.
    #[error("a signing key is 32 bytes")]
    Length,
    /// The public key text is not a valid Ed25519 key.
    #[error("not an Ed25519 public key (expected 32 bytes, base64url)")]
    Public,
    /// The signature does not match.
    #[error("the signature does not match the tree head and key")]
    BadSignature,
    /// Signed by a different key.
    #[error("signed by key {found}, not by {expected}")]
    OtherKey {
        /// The key expected.
        expected: KeyId,
        /// The key named in the head.
        found: KeyId,
    },
}

/// The instance's signing key. Never printed.
#[derive(Clone)]
pub struct LedgerKey(SigningKey);

impl fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LedgerKey({})", self.public().key_id())
    }
}

impl LedgerKey {
    /// A key from 32 secret bytes (generated with the OS's random source by the caller).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Length)?;
        Ok(Self(SigningKey::from_bytes(&arr)))
    }

    /// The secret bytes, for writing the key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs one of the ledger's typed statements (each with its own prefix, so no
    /// message of one kind can be taken for another).
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// Signs a tree head.
    pub fn sign(&self, head: TreeHead) -> SignedTreeHead {
        let signature = self.0.sign(&head.message()).to_bytes();
        SignedTreeHead {
            head,
            key_id: self.public().key_id(),
            signature,
        }
    }
}

/// A public key that checks tree heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses base64url (no padding) text of the 32 key bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| KeyError::Public)?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Public)?;
        VerifyingKey::from_bytes(&arr)
            .map(Self)
            .map_err(|_| KeyError::Public)
    }

    /// The key as base64url text (the form in JWKS `x` and in extracts).
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The key's fingerprint.
    pub fn key_id(&self) -> KeyId {
        KeyId(hex::encode(&Sha256::digest(self.0.as_bytes())[..8]))
    }

    /// Checks a signature over one of the ledger's typed statements (strict Ed25519).
    pub(crate) fn verify_bytes(
        &self,
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), KeyError> {
        self.0
            .verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| KeyError::BadSignature)
    }

    /// Checks a signed tree head.
    pub fn verify(&self, sth: &SignedTreeHead) -> Result<(), KeyError> {
        let own = self.key_id();
        if sth.key_id != own {
            return Err(KeyError::OtherKey {
                expected: own,
                found: sth.key_id.clone(),
            });
        }
        let sig = Signature::from_bytes(&sth.signature);
        self.0
            .verify_strict(&sth.head.message(), &sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

pub(crate) mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

pub(crate) mod b64_sig {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(sig))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> LedgerKey {
        LedgerKey::from_bytes(&[seed; 32]).expect("key")
    }

    #[test]
    fn a_signed_head_verifies_and_any_change_breaks_it() {
        let k = key(7);
        let head = TreeHead {
            size: 10,
            time: Timestamp::from_millis(5),
            root: [3; 32],
        };
        let sth = k.sign(head);
        assert_eq!(k.public().verify(&sth), Ok(()));

        let mut forged = sth.clone();
        forged.head.size = 9;
        assert_eq!(k.public().verify(&forged), Err(KeyError::BadSignature));
        let mut forged = sth.clone();
        forged.signature[0] ^= 1;
        assert_eq!(k.public().verify(&forged), Err(KeyError::BadSignature));
        assert!(matches!(
            key(8).public().verify(&sth),
            Err(KeyError::OtherKey { .. })
        ));
    }

    #[test]
    fn heads_and_keys_round_trip_as_text() {
        let k = key(1);
        let sth = k.sign(TreeHead {
            size: 1,
            time: Timestamp::from_millis(2),
            root: [9; 32],
        });
        let json = serde_json::to_string(&sth).expect("json");
        let back: SignedTreeHead = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, sth);
        assert_eq!(PublicKey::parse(&k.public().to_base64()), Ok(k.public()));
        assert!(PublicKey::parse("nope").is_err());
    }
}
