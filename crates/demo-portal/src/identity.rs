//! Who is asking: the customer, signed in with their own password, or a support agent
//! acting as them through actas, vouched for by an `Actas-Assertion` checked against
//! actas's JWKS (signature, `aud`, `exp`, `kid`). A request that carries an assertion is
//! judged by it alone: a bad one is refused, never treated as the customer.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The staff member inside an assertion.
#[derive(Debug, Clone, Deserialize)]
pub struct ActClaim {
    /// Their email.
    pub sub: String,
    /// Their name.
    pub name: String,
}

/// The claims the portal reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The customer account.
    pub sub: String,
    /// The staff member.
    pub act: ActClaim,
    /// The support session.
    pub sid: String,
    /// Allowed capabilities.
    pub scope: Vec<String>,
    /// read-only, live or mirror.
    pub mode: String,
    /// The ticket.
    pub ticket: String,
}

/// Who did something, as the portal records it.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The customer themself.
    Customer,
    /// Support staff acting as the customer.
    Staff(Claims),
}

impl Actor {
    /// How the activity log names them.
    pub fn describe(&self, customer: &str) -> String {
        match self {
            Actor::Customer => customer.to_owned(),
            Actor::Staff(c) => format!(
                "{} (support, ticket {}) acting as {customer}",
                c.act.name, c.ticket
            ),
        }
    }
}

/// Why an assertion was refused.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// actas's keys could not be fetched.
    #[error("actas's keys could not be fetched: {0}")]
    Keys(String),
    /// No key with the assertion's `kid`.
    #[error("the assertion names a key actas does not publish")]
    UnknownKey,
    /// Signature, audience or expiry is wrong.
    #[error("the assertion is not valid: {0}")]
    Invalid(String),
}

/// actas's published keys, fetched on demand and refreshed when an unknown `kid` shows up
/// (at most every few seconds, so a flood of forged kids can't hammer actas).
pub struct Verifier {
    jwks_url: String,
    audience: String,
    client: reqwest::Client,
    keys: Mutex<(HashMap<String, String>, Option<Instant>)>,
}

const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

impl Verifier {
    /// Verifies against the keys at `jwks_url`, for `audience`.
    pub fn new(jwks_url: String, audience: String) -> Self {
        Self {
            jwks_url,
            audience,
            client: reqwest::Client::new(),
            keys: Mutex::new((HashMap::new(), None)),
        }
    }

    fn key(&self, kid: &str) -> Option<String> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .get(kid)
            .cloned()
    }

    async fn refresh(&self) -> Result<(), AssertionError> {
        {
            let g = self
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if g.1.is_some_and(|t| t.elapsed() < REFRESH_AT_MOST_EVERY) {
                return Ok(());
            }
        }
        let jwks: serde_json::Value = self
            .client
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| AssertionError::Keys(e.to_string()))?
            .json()
            .await
            .map_err(|e| AssertionError::Keys(e.to_string()))?;
        let mut fresh = HashMap::new();
        for k in jwks["keys"].as_array().into_iter().flatten() {
            if let (Some(kid), Some(x)) = (k["kid"].as_str(), k["x"].as_str()) {
                fresh.insert(kid.to_owned(), x.to_owned());
            }
        }
        *self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (fresh, Some(Instant::now()));
        Ok(())
    }

    /// Checks an assertion and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AssertionError> {
        let header = decode_header(token).map_err(|e| AssertionError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AssertionError::Invalid("not signed with EdDSA".into()));
        }
        let kid = header.kid.ok_or(AssertionError::UnknownKey)?;
        let x = match self.key(&kid) {
            Some(x) => x,
            None => {
                self.refresh().await?;
                self.key(&kid).ok_or(AssertionError::UnknownKey)?
            }
        };
        let key = DecodingKey::from_ed_components(&x)
            .map_err(|e| AssertionError::Invalid(e.to_string()))?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "aud", "sub"]);
        v.leeway = 5;
        decode::<Claims>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| AssertionError::Invalid(e.to_string()))
    }
}
