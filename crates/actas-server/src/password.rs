//! Staff passwords: argon2id, hashed off the async executor.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::fmt;

/// Why a password was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Shorter than 12 characters.
    #[error("a password needs at least 12 characters")]
    TooShort,
    /// Longer than 256 characters.
    #[error("a password can't be longer than 256 characters")]
    TooLong,
    /// Hashing failed.
    #[error("the password could not be hashed")]
    Hash,
}

/// A password as typed. Never printed, not even in debug output.
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// Checks length: 12 to 256 characters.
    pub fn new(text: String) -> Result<Self, PasswordError> {
        let n = text.chars().count();
        if n < 12 {
            Err(PasswordError::TooShort)
        } else if n > 256 {
            Err(PasswordError::TooLong)
        } else {
            Ok(Self(text))
        }
    }
}

/// Hashes a password with argon2id and a random salt, on a blocking thread (the hash is
/// deliberately slow and must not stall the executor).
pub async fn hash(password: Password) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).map_err(|_| PasswordError::Hash)?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
        Argon2::default()
            .hash_password(password.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::Hash)
    })
    .await
    .map_err(|_| PasswordError::Hash)?
}

/// Checks a password against a stored hash, on a blocking thread.
pub async fn verify(password: Password, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.0.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let h = hash(Password::new("correct horse battery".into()).expect("ok"))
            .await
            .expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify(
                Password::new("correct horse battery".into()).expect("ok"),
                h.clone()
            )
            .await
        );
        assert!(!verify(Password::new("wrong horse battery".into()).expect("ok"), h).await);
        assert_eq!(
            Password::new("short".into()).err(),
            Some(PasswordError::TooShort)
        );
        assert_eq!(
            format!("{:?}", Password::new("secret secret".into()).expect("ok")),
            "Password(…)"
        );
    }
}
