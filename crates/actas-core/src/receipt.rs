//! A signed action's receipt: its ledger event, signed on its own by the ledger key, so
//! the product can show the customer proof of exactly what support changed, and anyone
//! can check it offline against the published key.
//!
//! A receipt is a JWS (RFC 7515) in compact form, `alg` `EdDSA` (RFC 8037): the protected
//! header `{"alg":"EdDSA","kid":KEY_ID,"typ":"actas-receipt+jws"}`, the payload the
//! event's exact body text (what the ledger hashes, so its leaf hash is
//! SHA-256(0x00 ‖ payload)), and the Ed25519 signature over `header.payload` as JWS
//! defines it. Any JOSE library checks it; `actas audit verify-receipt` also reads the
//! event. Written here rather than with `jsonwebtoken` because the payload is the body's
//! exact bytes, not a claims set a library would re-encode; the tests check it with
//! `jsonwebtoken` all the same. No other statement the ledger key signs can be taken for
//! one: those start with their own `actas-…` prefix or a note's origin line and hold
//! line breaks, which a JWS signing input never does.

use crate::checkpoint::TrustedKey;
use crate::event::{BodyError, EventBody, EventData};
use crate::merkle::{Hash, leaf_hash};
use crate::tree_head::{KeyError, KeyId, LedgerKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The `typ` of a receipt's header.
pub const RECEIPT_TYPE: &str = "actas-receipt+jws";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    kid: String,
    typ: String,
}

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not three base64url parts.
    #[error("this is not a receipt: a receipt is three base64url parts joined by dots")]
    Shape,
    /// The header is not a receipt's.
    #[error("this is not an actas receipt: {0}")]
    Header(String),
    /// No key given has the header's key id.
    #[error("the receipt was signed by key {0}, which is not one of the ledger keys given")]
    UnknownKey(String),
    /// The signature does not match.
    #[error(
        "the receipt's signature does not match its contents: it was changed after it was signed, or forged"
    )]
    Signature,
    /// The payload is not an event body.
    #[error("the receipt's event can't be read: {0}")]
    Body(String),
    /// The event is not a signed action.
    #[error("the receipt's event is a {0} event, not a signed action")]
    NotSigned(String),
    /// The key had been replaced before the event: it could no longer sign for it.
    #[error(
        "the receipt is for event {seq}, but key {key} was replaced at event {up_to} and signs nothing after it"
    )]
    Replaced {
        /// The key's id.
        key: String,
        /// The event it was replaced at.
        up_to: u64,
        /// The receipt's event.
        seq: u64,
    },
}

/// A receipt that checked out.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The key that signed it.
    pub key_id: KeyId,
    /// The event.
    pub body: EventBody,
    /// Its leaf hash in the ledger, to find it in an extract.
    pub leaf_hash: Hash,
}

impl LedgerKey {
    /// The receipt for the event whose exact body text is `body`.
    pub fn sign_receipt(&self, body: &str) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            kid: self.public().key_id().to_string(),
            typ: RECEIPT_TYPE.into(),
        };
        // Serializing three strings can't fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(body.as_bytes())
        );
        let signature = self.sign_bytes(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Checks a receipt against the ledger's keys (the current one and earlier ones, each
/// trusted only up to its replacement, as `/.well-known/actas-ledger-keys` gives them),
/// and reads its event, which must be a signed action.
pub fn verify_receipt(text: &str, keys: &[TrustedKey]) -> Result<Receipt, ReceiptError> {
    let text = text.trim();
    let mut parts = text.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReceiptError::Shape);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| ReceiptError::Shape)
    };
    let header: Header = serde_json::from_slice(&decode(header_b64)?)
        .map_err(|e| ReceiptError::Header(format!("its header is not a receipt's ({e})")))?;
    if header.alg != "EdDSA" {
        return Err(ReceiptError::Header(format!(
            "it is signed with {}, not EdDSA",
            header.alg
        )));
    }
    if header.typ != RECEIPT_TYPE {
        return Err(ReceiptError::Header(format!(
            "its type is {:?}, not {RECEIPT_TYPE:?}",
            header.typ
        )));
    }
    let TrustedKey { key, up_to } = keys
        .iter()
        .find(|k| k.key.key_id().as_str() == header.kid)
        .ok_or_else(|| ReceiptError::UnknownKey(header.kid.clone()))?;
    let signature: [u8; 64] = decode(signature_b64)?
        .as_slice()
        .try_into()
        .map_err(|_| ReceiptError::Signature)?;
    let input = &text[..header_b64.len() + 1 + payload_b64.len()];
    key.verify_bytes(input.as_bytes(), &signature)
        .map_err(|e| match e {
            KeyError::BadSignature => ReceiptError::Signature,
            other => ReceiptError::Header(other.to_string()),
        })?;
    let payload = decode(payload_b64)?;
    let raw =
        String::from_utf8(payload).map_err(|_| ReceiptError::Body("it is not UTF-8".into()))?;
    let body = EventBody::decode(&raw).map_err(|e: BodyError| ReceiptError::Body(e.to_string()))?;
    if !matches!(body.data, EventData::SignedAction { .. }) {
        return Err(ReceiptError::NotSigned(body.kind().to_owned()));
    }
    if let Some(up_to) = *up_to
        && body.seq > up_to
    {
        return Err(ReceiptError::Replaced {
            key: header.kid,
            up_to,
            seq: body.seq,
        });
    }
    Ok(Receipt {
        key_id: key.key_id(),
        leaf_hash: leaf_hash(raw.as_bytes()),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::account::AccountRef;
    use crate::event::{Actor, FieldChange, NewEvent};
    use crate::ids::{AccountId, SessionId, StaffId};
    use crate::staff::{DisplayName, Email, StaffRef};
    use crate::text::TicketRef;

    fn signed_action() -> EventData {
        EventData::SignedAction {
            session: SessionId::random(),
            account: AccountRef {
                id: AccountId::parse("acme").expect("id"),
                name: DisplayName::parse("Acme Co").expect("name"),
            },
            ticket: TicketRef::try_from("#4821".to_owned()).expect("ticket"),
            action: "a1".into(),
            description: "changed the postal address".into(),
            changes: vec![FieldChange {
                field: "city".into(),
                from: Some("York".into()),
                to: Some("Leeds".into()),
            }],
            method: "POST".into(),
            path: "/address".into(),
            body_sha256: "00".repeat(32),
            confirmed_with: "their password".into(),
        }
    }

    fn body(data: EventData) -> String {
        let sarah = StaffRef {
            id: StaffId::new(1).expect("id"),
            email: Email::parse("sarah.lee@example.com").expect("email"),
            name: DisplayName::parse("Sarah Lee").expect("name"),
        };
        NewEvent::new(Actor::Staff(sarah), data)
            .into_private_body(
                7,
                Timestamp::from_millis(1_700_000_000_000),
                &[3; 32],
                [9; 16],
                Some(crate::event::AccountLink {
                    index: 2,
                    prev: [4; 32],
                }),
            )
            .encode()
    }

    fn key(seed: u8) -> LedgerKey {
        LedgerKey::from_bytes(&[seed; 32]).expect("key")
    }

    #[test]
    fn a_receipt_verifies_offline_and_any_changed_byte_fails() {
        let text = body(signed_action());
        let receipt = key(1).sign_receipt(&text);
        let keys = [key(2).public().into(), key(1).public().into()];
        let checked = verify_receipt(&receipt, &keys).expect("verifies");
        assert_eq!(checked.body.encode(), text);
        assert_eq!(checked.leaf_hash, leaf_hash(text.as_bytes()));
        assert_eq!(checked.key_id, key(1).public().key_id());
        for i in 0..receipt.len() {
            let mut bytes = receipt.clone().into_bytes();
            // Another base64url character (or another dot) in this place.
            bytes[i] = match bytes[i] {
                b'A' => b'B',
                b'.' => b'A',
                _ => b'A',
            };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert!(
                verify_receipt(&changed, &keys).is_err(),
                "byte {i} changed and the receipt still verified"
            );
        }
    }

    #[test]
    fn a_receipt_by_another_key_or_of_another_event_is_refused() {
        let text = body(signed_action());
        let receipt = key(1).sign_receipt(&text);
        assert_eq!(
            verify_receipt(&receipt, &[key(2).public().into()]).map(|_| ()),
            Err(ReceiptError::UnknownKey(
                key(1).public().key_id().to_string()
            ))
        );
        // Key 2's signature under key 1's id.
        let forged: Vec<&str> = receipt.split('.').collect();
        let other = key(2).sign_receipt(&text);
        let other_sig = other.rsplit('.').next().expect("sig");
        let forged = format!("{}.{}.{other_sig}", forged[0], forged[1]);
        assert_eq!(
            verify_receipt(&forged, &[key(1).public().into(), key(2).public().into()]).map(|_| ()),
            Err(ReceiptError::Signature)
        );
        let note = EventData::SupportNote {
            session: SessionId::random(),
            account: AccountRef {
                id: AccountId::parse("acme").expect("id"),
                name: DisplayName::parse("Acme Co").expect("name"),
            },
            ticket: TicketRef::try_from("#4821".to_owned()).expect("ticket"),
            note: crate::text::Note::parse("done").expect("note"),
        };
        let not_signed = key(1).sign_receipt(&body(note));
        assert!(matches!(
            verify_receipt(&not_signed, &[key(1).public().into()]),
            Err(ReceiptError::NotSigned(_))
        ));
        assert_eq!(
            verify_receipt("abc.def", &[key(1).public().into()]).map(|_| ()),
            Err(ReceiptError::Shape)
        );
    }

    #[test]
    fn a_receipt_by_a_key_replaced_before_its_event_is_refused() {
        let text = body(signed_action());
        let seq = EventBody::decode(&text).expect("body").seq;
        let receipt = key(1).sign_receipt(&text);
        let until = |up_to| {
            [TrustedKey {
                key: key(1).public(),
                up_to: Some(up_to),
            }]
        };
        assert!(
            verify_receipt(&receipt, &until(seq)).is_ok(),
            "up to its replacement"
        );
        assert_eq!(
            verify_receipt(&receipt, &until(seq - 1)).map(|_| ()),
            Err(ReceiptError::Replaced {
                key: key(1).public().key_id().to_string(),
                up_to: seq - 1,
                seq,
            })
        );
    }
}
