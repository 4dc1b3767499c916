//! `Actas-Assertion`: how the gateway vouches to the product, request by request, that
//! "staff X is acting on customer Y's account, for ticket T, with scope S" (RFC 8693 `act`
//! claim). A JWT signed with EdDSA, valid for at most 60 seconds, bound to the product's
//! audience; the public keys are served at `/.well-known/jwks.json` on the console origin.
//!
//! The assertion key is separate from the ledger key: it can rotate without touching the
//! ledger's signed heads. It is generated at first start into the data directory (0600).

use actas_core::Timestamp;
use actas_core::ids::{AccountId, SessionId};
use actas_core::scope::{Mode, Scope};
use actas_core::staff::StaffRef;
use actas_core::text::TicketRef;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long an assertion is valid: long enough for one request to reach the product.
pub const ASSERTION_TTL: Duration = Duration::from_secs(60);

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The key file does not hold a 32-byte Ed25519 seed.
    #[error("the assertion key is not a 32-byte Ed25519 key")]
    Key,
    /// Signing failed.
    #[error("the assertion could not be signed: {0}")]
    Sign(String),
    /// A new key could not be saved.
    #[error("the new assertion key could not be saved: {0}")]
    Store(String),
}

/// The staff member inside the assertion (RFC 8693 actor claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActClaim {
    /// The staff member's email.
    pub sub: String,
    /// Their display name.
    pub name: String,
}

/// The assertion's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who issued it (the console's URL or "actas").
    pub iss: String,
    /// The product it is for.
    pub aud: String,
    /// The customer account acted on.
    pub sub: String,
    /// The staff member acting.
    pub act: ActClaim,
    /// The support session.
    pub sid: String,
    /// The capabilities allowed.
    pub scope: Vec<String>,
    /// read-only, live or mirror.
    pub mode: String,
    /// The ticket.
    pub ticket: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds), at most 60 s after `iat`.
    pub exp: i64,
}

/// What one assertion is about.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The session.
    pub session: SessionId,
    /// The account acted on.
    pub account: &'a AccountId,
    /// The staff member.
    pub staff: &'a StaffRef,
    /// The scope.
    pub scope: &'a Scope,
    /// The mode.
    pub mode: Mode,
    /// The ticket.
    pub ticket: &'a TicketRef,
}

/// How long a replaced key stays published: an assertion it signed lives at most
/// [`ASSERTION_TTL`], and a product's clock may be a little behind ours.
pub const RETIRED_KEY_PUBLISHED_FOR: Duration = Duration::from_secs(2 * ASSERTION_TTL.as_secs());

/// A replaced key, kept published (public half only) until its assertions have expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    /// The public key, base64url as in a JWK's `x`.
    pub x: String,
    /// When it stopped signing (milliseconds since the epoch).
    pub retired_at_ms: i64,
}

impl RetiredKey {
    /// Whether it must still be published at `now`.
    pub fn published_at(&self, now: Timestamp) -> bool {
        now.as_millis()
            < self
                .retired_at_ms
                .saturating_add(RETIRED_KEY_PUBLISHED_FOR.as_millis() as i64)
    }

    fn kid(&self) -> String {
        URL_SAFE_NO_PAD
            .decode(&self.x)
            .map(|public| kid_of(&public))
            .unwrap_or_default()
    }
}

/// A key's id: the first 8 bytes of its public key's SHA-256, in hex.
pub fn kid_of(public: &[u8]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

/// The public key of a 32-byte seed.
pub fn public_of(seed: &[u8; 32]) -> Result<[u8; 32], AssertionError> {
    Ok(SigningKey::from_bytes(seed).verifying_key().to_bytes())
}

/// A public key as a JWK's `x` (base64url).
pub fn x_of(public: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(public)
}

/// The public key a JWK's `x` holds, if it is one.
pub fn public_from_x(x: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(x).ok()?.try_into().ok()
}

fn jwk(x: &str, kid: &str) -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" })
}

struct Current {
    key: EncodingKey,
    kid: String,
    public: [u8; 32],
}

impl Current {
    fn new(seed: &[u8]) -> Result<Self, AssertionError> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| AssertionError::Key)?;
        let signing = SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der().map_err(|_| AssertionError::Key)?;
        let public = signing.verifying_key().to_bytes();
        Ok(Self {
            key: EncodingKey::from_ed_der(der.as_bytes()),
            kid: kid_of(&public),
            public,
        })
    }

    fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public)
    }
}

struct Keys {
    current: Current,
    retired: Vec<RetiredKey>,
}

/// Signs assertions with the current key and publishes the public keys: the current one
/// and any replaced one whose assertions may still be in flight.
pub struct AssertionSigner {
    keys: std::sync::RwLock<Keys>,
    issuer: String,
    audience: String,
    /// The last assertion signed for each session, with its `iat`. Claims have one-second
    /// resolution and Ed25519 is deterministic, so within the same second a new signature
    /// would be byte-for-byte the same token: reusing it saves the signing work (the
    /// largest CPU cost per gateway request) and changes nothing the product can see.
    recent: std::sync::Mutex<std::collections::HashMap<SessionId, (i64, String)>>,
}

/// Sessions kept in the reuse cache before it is cleared.
const RECENT_LIMIT: usize = 4096;

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AssertionSigner(kid {})", self.kid())
    }
}

impl AssertionSigner {
    /// A signer from a 32-byte seed, for `audience`, issued as `issuer`.
    pub fn new(seed: &[u8], issuer: &str, audience: &str) -> Result<Self, AssertionError> {
        Self::with_retired(seed, Vec::new(), issuer, audience)
    }

    /// A signer that also publishes keys replaced earlier (see [`RetiredKey`]).
    pub fn with_retired(
        seed: &[u8],
        retired: Vec<RetiredKey>,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, AssertionError> {
        Ok(Self {
            keys: std::sync::RwLock::new(Keys {
                current: Current::new(seed)?,
                retired,
            }),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            recent: std::sync::Mutex::default(),
        })
    }

    fn recent(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<SessionId, (i64, String)>> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current key's id.
    pub fn kid(&self) -> String {
        self.keys().current.kid.clone()
    }

    /// Starts signing with `seed` at `now`; the key it replaces is returned so it can be
    /// kept (published) until its last assertion has expired.
    pub fn rotate(&self, seed: &[u8], now: Timestamp) -> Result<RetiredKey, AssertionError> {
        let next = Current::new(seed)?;
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let retired = RetiredKey {
            x: keys.current.x(),
            retired_at_ms: now.as_millis(),
        };
        keys.retired.retain(|k| k.published_at(now));
        keys.retired.push(retired.clone());
        keys.current = next;
        self.recent().clear();
        Ok(retired)
    }

    /// Signs with `seed` from now on and publishes exactly `retired` beside it: the keys
    /// as the database has them, after another instance replaced the key.
    pub fn adopt(&self, seed: &[u8], retired: Vec<RetiredKey>) -> Result<(), AssertionError> {
        let next = Current::new(seed)?;
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.current = next;
        keys.retired = retired;
        self.recent().clear();
        Ok(())
    }

    /// The replaced keys still published at `now`.
    pub fn retired(&self, now: Timestamp) -> Vec<RetiredKey> {
        self.keys()
            .retired
            .iter()
            .filter(|k| k.published_at(now))
            .cloned()
            .collect()
    }

    /// The claims for `subject` at `now`.
    pub fn claims(&self, subject: &Subject<'_>, now: Timestamp) -> Claims {
        let iat = now.as_millis() / 1000;
        Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.account.to_string(),
            act: ActClaim {
                sub: subject.staff.email.to_string(),
                name: subject.staff.name.to_string(),
            },
            sid: subject.session.to_string(),
            scope: subject.scope.iter().map(|c| c.to_string()).collect(),
            mode: subject.mode.to_string(),
            ticket: subject.ticket.to_string(),
            iat,
            exp: iat + ASSERTION_TTL.as_secs() as i64,
        }
    }

    /// A signed assertion for `subject`, valid from `now` for [`ASSERTION_TTL`].
    pub fn sign(&self, subject: &Subject<'_>, now: Timestamp) -> Result<String, AssertionError> {
        let claims = self.claims(subject, now);
        if let Some((iat, token)) = self.recent().get(&subject.session)
            && *iat == claims.iat
        {
            return Ok(token.clone());
        }
        let keys = self.keys();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.current.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &keys.current.key)
            .map_err(|e| AssertionError::Sign(e.to_string()))?;
        // Held while the keys are read, so a rotation can't slip a token signed with the
        // old key into the cache after clearing it.
        let mut recent = self.recent();
        if recent.len() >= RECENT_LIMIT {
            recent.clear();
        }
        recent.insert(subject.session, (claims.iat, token.clone()));
        Ok(token)
    }

    /// The JSON Web Key Set the product verifies assertions with, at `now`: the current
    /// key first, then replaced keys whose assertions may still be valid.
    pub fn jwks_at(&self, now: Timestamp) -> Value {
        let keys = self.keys();
        let mut out = vec![jwk(&keys.current.x(), &keys.current.kid)];
        out.extend(
            keys.retired
                .iter()
                .filter(|k| k.published_at(now))
                .map(|k| jwk(&k.x, &k.kid())),
        );
        json!({ "keys": out })
    }

    /// The key set now.
    pub fn jwks(&self) -> Value {
        self.jwks_at(Timestamp::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actas_core::ids::StaffId;
    use actas_core::policy::Policy;
    use actas_core::staff::{DisplayName, Email};
    use jsonwebtoken::{DecodingKey, Validation, decode};

    fn subject_parts() -> (AccountId, StaffRef, Scope, TicketRef) {
        let p = Policy::starter();
        (
            AccountId::parse("acme").expect("id"),
            StaffRef {
                id: StaffId::new(1).expect("id"),
                email: Email::parse("sarah@example.com").expect("email"),
                name: DisplayName::parse("Sarah Lee").expect("name"),
            },
            p.scope(["edit_settings"]).expect("scope"),
            TicketRef::parse("#4821", &p.ticket_pattern).expect("ticket"),
        )
    }

    fn decoding_key(signer: &AssertionSigner) -> DecodingKey {
        let jwks = signer.jwks();
        let x = jwks["keys"][0]["x"].as_str().expect("x");
        DecodingKey::from_ed_components(x).expect("key")
    }

    fn validation(aud: &str) -> Validation {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[aud]);
        v.set_issuer(&["actas"]);
        v.leeway = 0;
        v
    }

    #[test]
    fn assertions_verify_with_the_published_key_and_carry_the_actor() {
        let signer = AssertionSigner::new(&[7; 32], "actas", "product").expect("signer");
        let (account, staff, scope, ticket) = subject_parts();
        let session = SessionId::random();
        let subject = Subject {
            session,
            account: &account,
            staff: &staff,
            scope: &scope,
            mode: Mode::Live,
            ticket: &ticket,
        };
        let token = signer.sign(&subject, Timestamp::now()).expect("signed");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::EdDSA, Some(signer.kid().as_str()))
        );
        let data = decode::<Claims>(&token, &decoding_key(&signer), &validation("product"))
            .expect("valid");
        let c = data.claims;
        assert_eq!(
            (c.sub.as_str(), c.act.sub.as_str(), c.act.name.as_str()),
            ("acme", "sarah@example.com", "Sarah Lee")
        );
        assert_eq!(c.sid, session.to_string());
        assert_eq!(c.scope, ["edit_settings", "view"]);
        assert_eq!((c.mode.as_str(), c.ticket.as_str()), ("live", "#4821"));
        assert!(c.exp - c.iat <= 60);
    }

    #[test]
    fn the_wrong_audience_an_old_assertion_or_another_key_is_refused() {
        let signer = AssertionSigner::new(&[7; 32], "actas", "product").expect("signer");
        let (account, staff, scope, ticket) = subject_parts();
        let subject = Subject {
            session: SessionId::random(),
            account: &account,
            staff: &staff,
            scope: &scope,
            mode: Mode::ReadOnly,
            ticket: &ticket,
        };
        let token = signer.sign(&subject, Timestamp::now()).expect("signed");
        assert!(
            decode::<Claims>(
                &token,
                &decoding_key(&signer),
                &validation("another-product")
            )
            .is_err()
        );
        let old = signer
            .sign(
                &subject,
                Timestamp::from_millis(Timestamp::now().as_millis() - 120_000),
            )
            .expect("signed");
        assert!(
            decode::<Claims>(&old, &decoding_key(&signer), &validation("product")).is_err(),
            "expired after 60 s"
        );
        let other = AssertionSigner::new(&[8; 32], "actas", "product").expect("signer");
        assert!(decode::<Claims>(&token, &decoding_key(&other), &validation("product")).is_err());
    }

    #[test]
    fn a_replaced_key_is_published_until_its_last_assertion_has_expired() {
        let (account, staff, scope, ticket) = subject_parts();
        let subject = Subject {
            session: SessionId::random(),
            account: &account,
            staff: &staff,
            scope: &scope,
            mode: Mode::Live,
            ticket: &ticket,
        };
        let signer = AssertionSigner::new(&[7; 32], "actas", "product").expect("signer");
        let now = Timestamp::now();
        let old_token = signer.sign(&subject, now).expect("sign");
        let old_kid = signer.kid();
        let old_key = decoding_key(&signer);
        signer.rotate(&[8; 32], now).expect("rotate");
        assert_ne!(signer.kid(), old_kid);

        let new_token = signer.sign(&subject, now).expect("sign");
        let header = jsonwebtoken::decode_header(&new_token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(signer.kid().as_str()));
        assert!(
            decode::<Claims>(&new_token, &decoding_key(&signer), &validation("product")).is_ok()
        );

        let kids = |at: Timestamp| -> Vec<String> {
            signer.jwks_at(at)["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k["kid"].as_str().expect("kid").to_owned())
                .collect()
        };
        assert_eq!(kids(now), vec![signer.kid(), old_kid.clone()]);
        // The old token still verifies with the key published for it.
        let published = signer.jwks_at(now);
        let x = published["keys"][1]["x"].as_str().expect("x");
        let still = DecodingKey::from_ed_components(x).expect("key");
        assert!(decode::<Claims>(&old_token, &still, &validation("product")).is_ok());
        assert!(decode::<Claims>(&old_token, &old_key, &validation("product")).is_ok());

        let later = Timestamp::from_millis(
            now.as_millis() + RETIRED_KEY_PUBLISHED_FOR.as_millis() as i64 + 1,
        );
        assert!(
            later.as_millis() - now.as_millis() > ASSERTION_TTL.as_millis() as i64,
            "published at least as long as an assertion lives"
        );
        assert_eq!(kids(later), vec![signer.kid()]);
    }
}
