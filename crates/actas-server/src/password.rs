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

/// How many Argon2 computations run at once: one per core. Each takes a core and about
/// 19 MiB for tens of milliseconds, so a burst of sign-ins waits its turn instead of
/// filling the blocking pool and the memory.
fn argon2_slots() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        std::sync::Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ))
    })
}

/// Runs `work` on a blocking thread once an Argon2 slot is free (the hash is
/// deliberately slow and must not stall the executor); `None` if it could not run. The
/// slot goes with the work, so a request given up on (its client gone) holds it until
/// the hash it started is done.
async fn in_slot<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let slot = argon2_slots().clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let done = work();
        drop(slot);
        done
    })
    .await
    .ok()
}

/// How many Argon2 computations have run, for the tests that show a refusal costs the
/// same whatever the reason.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn argon2() -> Argon2<'static> {
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Argon2::default()
}

/// Hashes a password with argon2id and a random salt.
pub async fn hash(password: Password) -> Result<String, PasswordError> {
    in_slot(move || {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).map_err(|_| PasswordError::Hash)?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
        argon2()
            .hash_password(password.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::Hash)
    })
    .await
    .unwrap_or(Err(PasswordError::Hash))
}

/// A hash nobody's password matches, made once, to check against where there is no real
/// one (an unknown e-mail, a staff member who signs in only through the identity
/// provider), so such a refusal takes as long as a wrong password.
async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            match Password::new("not-a-real-password-for-timing".into()) {
                Ok(p) => hash(p).await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        })
        .await
        .clone()
}

/// Checks a password against a stored hash. Where `stored` is no hash (none was set),
/// the password is checked against a dummy one all the same, and refused.
pub async fn verify(password: Password, stored: String) -> bool {
    let (stored, real) = match PasswordHash::new(&stored) {
        Ok(_) => (stored, true),
        Err(_) => (dummy_hash().await, false),
    };
    let matched = in_slot(move || {
        PasswordHash::new(&stored)
            .map(|h| argon2().verify_password(password.0.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    matched && real
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

    #[tokio::test]
    async fn a_missing_hash_costs_one_argon2_check_as_a_wrong_password_does() {
        let pw = || Password::new("correct horse battery".into()).expect("ok");
        let real = hash(pw()).await.expect("hash");
        let _ = dummy_hash().await;
        let runs = || RUNS.load(std::sync::atomic::Ordering::Relaxed);
        for stored in [real.clone(), String::new(), "not a hash".to_owned()] {
            let before = runs();
            let matched = verify(pw(), stored.clone()).await;
            assert_eq!(matched, stored == real, "{stored:?}");
            // Other tests may run Argon2 at the same time: at least this one ran.
            assert!(runs() > before, "{stored:?} was checked with Argon2");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_argon2_work_runs_at_once_than_there_are_slots() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let slots = argon2_slots().available_permits().max(1);
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..slots * 4)
            .map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                tokio::spawn(in_slot(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("ran");
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert!(peak.load(Ordering::SeqCst) <= cores, "at most one per core");
        assert!(peak.load(Ordering::SeqCst) >= 1);
    }
}
