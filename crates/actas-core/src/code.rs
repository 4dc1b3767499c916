//! One-time confirmation codes (invariant 12): the customer reads one to the agent to
//! consent to a session.
//!
//! A code is 10 characters of Crockford base32 — 50 random bits — shown as `ABCDE-FGHJK`.
//! Only a salted SHA-256 of it is stored; it is single use, valid for 10 minutes, and five
//! wrong entries lock the request ([`crate::request::MAX_CODE_FAILURES`]). A fast hash is
//! enough here: 50 bits that expire in 10 minutes can't be searched offline in time.

use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// How long a code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);

/// Crockford's base32: no I, L, O or U, so codes read aloud without confusion.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why typed text is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a confirmation code is 10 letters and digits, like 7KQ2M-X9D4B; check it with the customer"
)]
pub struct CodeFormatError;

/// A confirmation code in its canonical form (10 characters, no dash).
#[derive(Clone, PartialEq, Eq)]
pub struct ConfirmationCode(String);

impl fmt::Debug for ConfirmationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfirmationCode(…)")
    }
}

impl ConfirmationCode {
    /// Makes a code from 50 random bits (the caller supplies at least 7 random bytes from
    /// the operating system's generator; only the first 50 bits are used).
    pub fn from_random(bytes: [u8; 8]) -> Self {
        let mut n = u64::from_be_bytes(bytes) >> 14;
        let mut chars = [0u8; 10];
        for c in chars.iter_mut().rev() {
            *c = ALPHABET[(n & 31) as usize];
            n >>= 5;
        }
        Self(String::from_utf8_lossy(&chars).into_owned())
    }

    /// Reads a code as typed: case, spaces and dashes don't matter; O reads as 0 and I or
    /// L as 1, as Crockford's alphabet intends.
    pub fn parse(text: &str) -> Result<Self, CodeFormatError> {
        let mut out = String::with_capacity(10);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                ' ' | '-' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(CodeFormatError);
            }
            out.push(c);
        }
        if out.len() == 10 {
            Ok(Self(out))
        } else {
            Err(CodeFormatError)
        }
    }

    /// The code as shown to the customer: `ABCDE-FGHJK`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..5], &self.0[5..])
    }

    /// The salted hash that is stored.
    pub fn hash(&self, salt: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"actas-confirmation-code-v1\n");
        h.update(salt);
        h.update(self.0.as_bytes());
        h.finalize().into()
    }

    /// Whether this code matches a stored hash (constant-time comparison).
    pub fn matches(&self, salt: &[u8], stored: &[u8]) -> bool {
        let mine = self.hash(salt);
        stored.len() == mine.len()
            && stored
                .iter()
                .zip(mine.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_fifty_bits_and_read_back_however_typed() {
        let a = ConfirmationCode::from_random([0xff; 8]);
        let b = ConfirmationCode::from_random([0x00; 8]);
        assert_eq!(a.display(), "ZZZZZ-ZZZZZ");
        assert_eq!(b.display(), "00000-00000");
        let c = ConfirmationCode::from_random([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]);
        let typed = c.display().to_lowercase().replace('-', " ");
        assert_eq!(ConfirmationCode::parse(&typed), Ok(c.clone()));
        assert!(ConfirmationCode::parse("12345").is_err());
        assert!(ConfirmationCode::parse("UUUUU-UUUUU").is_err());
        assert_eq!(
            ConfirmationCode::parse("oooooIIIII"),
            ConfirmationCode::parse("0000011111")
        );
    }

    #[test]
    fn only_the_right_code_and_salt_match() {
        let c = ConfirmationCode::parse("7KQ2M-X9D4B").expect("code");
        let stored = c.hash(b"salt");
        assert!(c.matches(b"salt", &stored));
        assert!(!c.matches(b"other", &stored));
        assert!(
            !ConfirmationCode::parse("7KQ2M-X9D4C")
                .expect("code")
                .matches(b"salt", &stored)
        );
        assert_eq!(format!("{c:?}"), "ConfirmationCode(…)");
    }
}
