//! Staff sign-in: passwords (argon2id), console logins with a CSRF token, personal API
//! tokens, re-authentication, and the slow-down and lock after wrong passwords. Every
//! sign-in, sign-out and wrong password is a ledger event.

use super::sessions::random_hex;
use super::{Service, ServiceError, ServiceResult};
use crate::password::{self, Password};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::staff::Email;
use actas_store::{Applied, Change, StaffRecord, StoreError, Unit};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a console sign-in lasts.
pub const LOGIN_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Wrong passwords in a row that lock signing in.
pub const LOCK_AFTER: u32 = 5;
/// How long signing in stays locked.
pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);

const WRONG: &str = "the email or password is not right";

/// A secret shown once (a cookie value or an API token). Never printed.
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub(super) fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A successful sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The cookie value.
    pub token: Secret,
    /// The CSRF token the console puts in its forms.
    pub csrf: String,
    /// Who.
    pub staff: StaffRecord,
}

/// How a request proved who it comes from.
#[derive(Debug, Clone)]
pub enum Via {
    /// The console cookie; state-changing requests must carry this CSRF token.
    Cookie {
        /// SHA-256 of the cookie value.
        token_hash: [u8; 32],
        /// The login's CSRF token.
        csrf: String,
    },
    /// A personal API token (no ambient credential, so no CSRF).
    ApiToken,
}

/// An authenticated staff member. Only the service makes one, from a live sign-in or a
/// valid API token; every read and action starts from it (see [`super::access`]).
#[derive(Debug, Clone)]
pub struct Authenticated {
    staff: StaffRecord,
    authenticated_at: Timestamp,
    via: Via,
}

impl Authenticated {
    /// Who.
    pub fn staff(&self) -> &StaffRecord {
        &self.staff
    }

    /// When their password was last checked (API tokens: never, so starting a session
    /// through the API needs the password in the request).
    pub fn authenticated_at(&self) -> Timestamp {
        self.authenticated_at
    }

    /// How they proved who they are.
    pub fn via(&self) -> &Via {
        &self.via
    }
}

/// SHA-256 of a secret, the only form in which secrets are stored.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// How many sign-ins are tried, on top of the lockout (which counts wrong passwords for
/// each account across instances): from one address, and for one account, in this
/// instance. Past these, nothing is checked (no Argon2 work) until the bucket refills.
#[derive(Debug)]
pub(super) struct SignInLimits {
    by_address: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    by_account: governor::DefaultKeyedRateLimiter<String>,
}

/// Sign-ins per minute from one address (a whole office behind one proxy shares it).
const PER_ADDRESS_PER_MINUTE: u32 = 60;

/// Sign-ins per minute for one account, whoever tries.
const PER_ACCOUNT_PER_MINUTE: u32 = 10;

impl Default for SignInLimits {
    fn default() -> Self {
        let per_minute = |n: u32| {
            governor::Quota::per_minute(
                std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN),
            )
        };
        Self {
            by_address: governor::RateLimiter::keyed(per_minute(PER_ADDRESS_PER_MINUTE)),
            by_account: governor::RateLimiter::keyed(per_minute(PER_ACCOUNT_PER_MINUTE)),
        }
    }
}

impl SignInLimits {
    /// Counts a sign-in from `from` for `email`, or says to wait.
    fn check(&self, from: std::net::IpAddr, email: &str) -> ServiceResult<()> {
        // Keys that have refilled are forgotten, so a flood of addresses can't grow it.
        if self.by_address.len() > 10_000 {
            self.by_address.retain_recent();
        }
        if self.by_account.len() > 10_000 {
            self.by_account.retain_recent();
        }
        if self.by_address.check_key(&from).is_err() {
            return Err(ServiceError::TooMany(
                "too many sign-ins from this address in the last minute; wait a minute and try again".into(),
            ));
        }
        if self
            .by_account
            .check_key(&email.trim().to_lowercase())
            .is_err()
        {
            return Err(ServiceError::TooMany(
                "too many sign-ins to this account in the last minute; wait a minute and try again"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Service {
    /// Checks an email, password and (when two-step sign-in is on) the authenticator
    /// code; on success opens a console login.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        totp: Option<&str>,
        from: std::net::IpAddr,
    ) -> ServiceResult<SignedIn> {
        if !self.local_passwords {
            return Err(self.passwords_off());
        }
        self.sign_in_limits.check(from, email)?;
        let unauthorized = || ServiceError::Unauthenticated(WRONG.into());
        let typed = Password::new(password.to_owned());
        let staff = match Email::parse(email) {
            Ok(e) => self.store.staff_by_email(&e).await?,
            Err(_) => None,
        };
        let Some(staff) = staff.filter(|s| s.active) else {
            if let Ok(p) = typed {
                // Checked against nothing, as long as a real check takes.
                let _ = password::verify(p, String::new()).await;
            }
            return Err(unauthorized());
        };
        self.check_password(&staff, password).await?;
        if let Some(secret) = &staff.totp {
            let Some(code) = totp.map(str::trim).filter(|c| !c.is_empty()) else {
                return Err(ServiceError::invalid(
                    "totp",
                    "enter the 6-digit code from your authenticator app",
                ));
            };
            let Some(step) = totp_step(&secret.0, &staff.email, code) else {
                self.count_failure(&staff).await?;
                return Err(ServiceError::Unauthenticated(
                    "that authenticator code is not right".into(),
                ));
            };
            // Each code works once: the login opens only with its step used, together.
            let used = Change::UseTotpCode {
                staff: staff.id,
                step,
            };
            let now = Timestamp::now();
            return match self
                .open_login(staff.clone(), now, LOGIN_TTL, None, Some(used))
                .await
            {
                Err(ServiceError::Conflict(reason)) => {
                    self.count_failure(&staff).await?;
                    Err(ServiceError::Unauthenticated(reason))
                }
                other => other,
            };
        }
        let now = Timestamp::now();
        self.open_login(staff, now, LOGIN_TTL, None, None).await
    }

    /// Opens a console login for `staff` lasting `ttl`, counting as authenticated at
    /// `authenticated_at`, recorded as a sign-in (`through` the identity provider, or
    /// with a password when `None`), with `also` in the same unit (an authenticator
    /// code used).
    pub(super) async fn open_login(
        &self,
        staff: StaffRecord,
        authenticated_at: Timestamp,
        ttl: Duration,
        through: Option<String>,
        also: Option<Change>,
    ) -> ServiceResult<SignedIn> {
        let now = Timestamp::now();
        let token = random_hex(32)?;
        let csrf = random_hex(16)?;
        let event = NewEvent::new(
            Actor::Staff(staff.to_ref()),
            EventData::SignedIn {
                staff: staff.to_ref(),
                through,
            },
        );
        let sign_in = Change::SignIn {
            token_hash: secret_hash(&token),
            staff: staff.id,
            csrf: csrf.clone(),
            at: now,
            authenticated_at,
            expires_at: now.plus(ttl),
        };
        self.store
            .commit(Unit::new(
                also.into_iter().chain([sign_in]).collect(),
                move |_| vec![event],
            ))
            .await?;
        Ok(SignedIn {
            token: Secret(token),
            csrf,
            staff,
        })
    }

    /// Why a password was refused when actas's own passwords are turned off.
    fn passwords_off(&self) -> ServiceError {
        let through = self
            .sign_on()
            .map_or("your identity provider", |p| p.name());
        ServiceError::Forbidden(format!(
            "passwords are turned off here; sign in with {through} instead"
        ))
    }

    /// Checks a staff member's password: refused while locked, slowed down after repeated
    /// failures, and every wrong password counted and recorded (the fifth locks).
    async fn check_password(&self, staff: &StaffRecord, password: &str) -> ServiceResult<()> {
        let now = Timestamp::now();
        if let Some(until) = staff.locked_until.filter(|u| *u > now) {
            return Err(ServiceError::Forbidden(format!(
                "signing in to this account is locked until {} UTC after too many wrong passwords",
                &until.to_rfc3339()[11..16]
            )));
        }
        // Slow down repeated guessing before the lock: 0.25 s per recent failure.
        if staff.failed_sign_ins >= 2 {
            tokio::time::sleep(Duration::from_millis(
                250 * u64::from(staff.failed_sign_ins.min(LOCK_AFTER)),
            ))
            .await;
        }
        let right = match Password::new(password.to_owned()) {
            Ok(p) => password::verify(p, staff.password_hash.clone()).await,
            Err(_) => false,
        };
        if !right {
            self.count_failure(staff).await?;
            return Err(ServiceError::Unauthenticated(WRONG.into()));
        }
        Ok(())
    }

    /// Counts and records a wrong password or code; the fifth in a row locks sign-in.
    async fn count_failure(&self, staff: &StaffRecord) -> ServiceResult<()> {
        let now = Timestamp::now();
        let who = staff.to_ref();
        let out = self
            .store
            .commit(Unit::new(
                vec![Change::SignInFailed {
                    staff: staff.id,
                    at: now,
                    lock_after: LOCK_AFTER,
                    lock_for: LOCK_FOR,
                }],
                move |applied| {
                    let (failures, locked) = applied
                        .iter()
                        .find_map(|a| match a {
                            Applied::SignInFailures(n, l) => Some((*n, *l)),
                            _ => None,
                        })
                        .unwrap_or((0, None));
                    vec![NewEvent::new(
                        Actor::System,
                        EventData::SignInFailed {
                            staff: who,
                            failures,
                            locked_minutes: locked.map(|_| LOCK_FOR.as_secs() / 60),
                        },
                    )]
                },
            ))
            .await;
        out?;
        Ok(())
    }

    /// Who a console cookie belongs to, if it is a live sign-in of an active staff member.
    pub async fn authenticate_cookie(&self, token: &str) -> ServiceResult<Authenticated> {
        let token_hash = secret_hash(token);
        let login = self
            .store
            .login(&token_hash)
            .await?
            .filter(|l| !l.ended && l.expires_at > Timestamp::now())
            .ok_or_else(|| ServiceError::Unauthenticated("please sign in".into()))?;
        let staff = self
            .store
            .staff(login.staff)
            .await?
            .filter(|s| s.active)
            .ok_or_else(|| ServiceError::Unauthenticated("please sign in".into()))?;
        Ok(Authenticated {
            staff,
            authenticated_at: login.authenticated_at,
            via: Via::Cookie {
                token_hash,
                csrf: login.csrf,
            },
        })
    }

    /// Who a personal API token belongs to.
    pub async fn authenticate_api_token(&self, token: &str) -> ServiceResult<Authenticated> {
        let id = self
            .store
            .api_token_owner(&secret_hash(token))
            .await?
            .ok_or_else(|| ServiceError::Unauthenticated("that API token is not valid".into()))?;
        let staff = self
            .store
            .staff(id)
            .await?
            .filter(|s| s.active)
            .ok_or_else(|| ServiceError::Unauthenticated("that API token is not valid".into()))?;
        Ok(Authenticated {
            staff,
            authenticated_at: Timestamp::from_millis(0),
            via: Via::ApiToken,
        })
    }

    /// Checks the password again (before starting a session); for console logins the new
    /// time is remembered. Wrong passwords count towards the lock like at sign-in.
    pub async fn reauthenticate(
        &self,
        who: &Authenticated,
        password: &str,
    ) -> ServiceResult<Timestamp> {
        if !self.local_passwords {
            return Err(self.passwords_off());
        }
        self.check_password(&who.staff, password)
            .await
            .map_err(|e| match e {
                ServiceError::Unauthenticated(_) => {
                    ServiceError::invalid("password", "that password is not right")
                }
                other => other,
            })?;
        let now = Timestamp::now();
        if let Via::Cookie { token_hash, .. } = &who.via {
            self.store
                .commit(Unit::new(
                    vec![Change::Reauthenticate {
                        token_hash: *token_hash,
                        at: now,
                    }],
                    |_| vec![],
                ))
                .await?;
        }
        Ok(now)
    }

    /// Ends a console login.
    pub async fn sign_out(&self, who: &Authenticated) -> ServiceResult<()> {
        let Via::Cookie { token_hash, .. } = &who.via else {
            return Err(ServiceError::Forbidden(
                "an API token doesn't sign out; revoke it instead".into(),
            ));
        };
        let event = NewEvent::new(
            Actor::Staff(who.staff.to_ref()),
            EventData::SignedOut {
                staff: who.staff.to_ref(),
            },
        );
        self.store
            .commit(Unit::change(
                Change::SignOut {
                    token_hash: *token_hash,
                    at: Timestamp::now(),
                },
                event,
            ))
            .await?;
        Ok(())
    }

    /// Creates a personal API token, shown once.
    pub async fn create_api_token(&self, who: &Authenticated, name: &str) -> ServiceResult<Secret> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(ServiceError::invalid(
                "name",
                "give the token a name of 1 to 80 characters, e.g. “billing script”",
            ));
        }
        let token = format!("actas_{}", random_hex(32)?);
        let event = NewEvent::new(
            Actor::Staff(who.staff.to_ref()),
            EventData::ApiTokenCreated {
                staff: who.staff.to_ref(),
                name: name.to_owned(),
            },
        );
        self.store
            .commit(Unit::change(
                Change::CreateApiToken {
                    id: random_hex(8)?,
                    staff: who.staff.id,
                    name: name.to_owned(),
                    hash: secret_hash(&token),
                    at: Timestamp::now(),
                },
                event,
            ))
            .await?;
        Ok(Secret(token))
    }
}

fn totp_for(secret: &[u8], email: &Email) -> Option<totp_rs::TOTP> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret.to_vec(),
        Some("actas".into()),
        email.to_string(),
    )
    .ok()
}

/// The time step (Unix time / 30 s) a code is good for, if it is one of the current step
/// or the one on either side (clocks drift), compared in constant time.
fn totp_step(secret: &[u8], email: &Email, code: &str) -> Option<u64> {
    let totp = totp_for(secret, email)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs()
        / totp.step;
    let mut found = None;
    // Every candidate is computed and compared, so the answer takes as long either way.
    for step in [now.saturating_sub(1), now, now + 1] {
        let expected = totp.generate(step * totp.step);
        let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

impl Service {
    /// Starts two-step sign-in: a new secret, returned as an `otpauth://` URI for the
    /// authenticator app (shown once; confirmed with [`Service::confirm_totp`]).
    pub async fn begin_totp(&self, who: &Authenticated) -> ServiceResult<String> {
        let mut secret = vec![0u8; 20];
        getrandom::getrandom(&mut secret).map_err(|e| {
            ServiceError::Unexpected(StoreError::Unexpected(
                format!("no random source: {e}").into(),
            ))
        })?;
        let uri = totp_for(&secret, &who.staff.email)
            .map(|t| t.get_url())
            .ok_or_else(|| {
                ServiceError::Unexpected(StoreError::Unexpected(
                    "could not build the authenticator link".into(),
                ))
            })?;
        self.store
            .commit(Unit::new(
                vec![Change::SetTotpPending {
                    staff: who.staff.id,
                    secret,
                }],
                |_| vec![],
            ))
            .await?;
        Ok(uri)
    }

    /// Turns two-step sign-in on once the app shows a matching code.
    pub async fn confirm_totp(&self, who: &Authenticated, code: &str) -> ServiceResult<()> {
        let staff = self
            .store
            .staff(who.staff.id)
            .await?
            .ok_or_else(|| ServiceError::Unauthenticated("please sign in".into()))?;
        let pending = staff.totp_pending.clone().ok_or_else(|| {
            ServiceError::Conflict("start setting up the authenticator app first".into())
        })?;
        let Some(step) = totp_step(&pending.0, &staff.email, code.trim()) else {
            return Err(ServiceError::invalid(
                "code",
                "that code doesn't match; check the app's clock and try the newest code",
            ));
        };
        let event = NewEvent::new(
            Actor::Staff(staff.to_ref()),
            EventData::TotpEnabled {
                staff: staff.to_ref(),
            },
        );
        self.store
            .commit(Unit::change(
                Change::EnableTotp {
                    staff: staff.id,
                    step,
                },
                event,
            ))
            .await?;
        Ok(())
    }
}
