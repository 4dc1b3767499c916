//! Signing and checking the notifications actas sends the product (session started and
//! ended). Each carries `Actas-Webhook-Id`, `Actas-Webhook-Timestamp` (Unix seconds) and
//! `Actas-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A receiver
//! checks the signature, refuses a timestamp more than [`TOLERANCE`] away from its clock,
//! and remembers ids it has handled, so a captured notification can't be replayed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a notification's timestamp may be from the receiver's clock.
pub const TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a notification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature header is missing or not `v1=<hex>`.
    #[error("the signature header is missing or malformed")]
    Malformed,
    /// The signature does not match the body, timestamp and secret.
    #[error("the signature does not match")]
    BadSignature,
    /// Too old or too far in the future: possibly a replay.
    #[error("the timestamp is more than five minutes from now")]
    Stale,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this can't fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Actas-Signature` header value for a body sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a received notification: signature (in constant time) and freshness against
/// `now` (Unix seconds).
pub fn verify(
    secret: &str,
    timestamp: i64,
    header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    let hex_sig = header
        .trim()
        .strip_prefix("v1=")
        .ok_or(WebhookError::Malformed)?;
    let sig = hex::decode(hex_sig).map_err(|_| WebhookError::Malformed)?;
    mac(secret, timestamp, body)
        .verify_slice(&sig)
        .map_err(|_| WebhookError::BadSignature)?;
    if now.abs_diff(timestamp) > TOLERANCE.as_secs() {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_and_any_change_does_not() {
        let sig = signature(
            "whsec_abc",
            1_700_000_000,
            b"{\"type\":\"session.started\"}",
        );
        assert!(sig.starts_with("v1="));
        assert_eq!(
            verify(
                "whsec_abc",
                1_700_000_000,
                &sig,
                b"{\"type\":\"session.started\"}",
                1_700_000_010
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                "whsec_abc",
                1_700_000_000,
                &sig,
                b"{\"type\":\"session.ended\"}",
                1_700_000_010
            ),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(
                "whsec_other",
                1_700_000_000,
                &sig,
                b"{\"type\":\"session.started\"}",
                1_700_000_010
            ),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(
                "whsec_abc",
                1_700_000_001,
                &sig,
                b"{\"type\":\"session.started\"}",
                1_700_000_010
            ),
            Err(WebhookError::BadSignature),
            "the timestamp is signed too"
        );
        assert_eq!(
            verify(
                "whsec_abc",
                1_700_000_000,
                &sig,
                b"{\"type\":\"session.started\"}",
                1_700_000_400
            ),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify("whsec_abc", 1_700_000_000, "sha1=00", b"", 1_700_000_000),
            Err(WebhookError::Malformed)
        );
    }
}
