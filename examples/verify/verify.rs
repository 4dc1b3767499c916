//! How a product verifies actas's Actas-Assertion header, in Rust with `jsonwebtoken`
//! (and `reqwest` to fetch the keys). actas's test suite compiles this file into
//! tests/integrate.rs and runs it against a real gateway.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

/// The claims a product reads: who is acting (`act`) on which account (`sub`), in
/// which session, scope and mode, for which ticket.
#[derive(Debug, serde::Deserialize)]
pub struct Assertion {
    /// The customer account acted on.
    pub sub: String,
    /// The staff member acting: `{"sub": email, "name": …}`.
    pub act: serde_json::Value,
    /// The support session.
    pub sid: String,
    /// The capabilities allowed.
    pub scope: Vec<String>,
    /// read-only, live or mirror.
    pub mode: String,
    /// The ticket.
    pub ticket: String,
    /// Issued at and expires at (seconds).
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
}

/// Verifies `token` against the keys at `jwks_url` for `audience`; `Err` says why not.
pub async fn verify(jwks_url: &str, audience: &str, token: &str) -> Result<Assertion, String> {
    let jwks: JwkSet = reqwest::get(jwks_url)
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    // The key the token names; keys rotate, so look it up by kid.
    let kid = decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("no published key has that kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut rules = Validation::new(Algorithm::EdDSA); // never another algorithm
    rules.set_audience(&[audience]);
    rules.set_required_spec_claims(&["exp", "iat", "sub", "aud"]);
    rules.leeway = 0;
    let claims = decode::<Assertion>(token, &key, &rules)
        .map_err(|e| e.to_string())?
        .claims;
    if claims.exp - claims.iat > 60 {
        return Err("the assertion lives longer than actas issues them".into());
    }
    Ok(claims)
}
