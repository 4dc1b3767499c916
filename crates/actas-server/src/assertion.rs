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

/// Signs assertions with the current key and publishes the public keys.
pub struct AssertionSigner {
    key: EncodingKey,
    kid: String,
    public: [u8; 32],
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AssertionSigner(kid {})", self.kid)
    }
}

impl AssertionSigner {
    /// A signer from a 32-byte seed, for `audience`, issued as `issuer`.
    pub fn new(seed: &[u8], issuer: &str, audience: &str) -> Result<Self, AssertionError> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| AssertionError::Key)?;
        let signing = SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der().map_err(|_| AssertionError::Key)?;
        let public = signing.verifying_key().to_bytes();
        let kid = hex::encode(&Sha256::digest(public)[..8]);
        Ok(Self {
            key: EncodingKey::from_ed_der(der.as_bytes()),
            kid,
            public,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// The current key's id.
    pub fn kid(&self) -> &str {
        &self.kid
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
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &self.claims(subject, now), &self.key)
            .map_err(|e| AssertionError::Sign(e.to_string()))
    }

    /// The JSON Web Key Set the product verifies assertions with.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }]})
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
            (Algorithm::EdDSA, Some(signer.kid()))
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
}
