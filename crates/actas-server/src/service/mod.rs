//! The service layer: every operation a front end offers, with its rules, over the
//! [`Store`]. The console, the JSON API and the CLI call the same functions, so no rule
//! lives only in a handler. Who may see what is decided in [`access`] and [`queries`].

pub mod access;
mod accounts;
pub mod actions;
mod allow;
pub mod apps;
pub mod auth;
pub mod customer;
mod directory;
pub mod extract;
pub mod gateway;
pub mod keys;
pub mod ledger;
pub mod live;
mod notes;
pub mod queries;
mod requests;
pub mod reviews;
mod sessions;
pub mod sign_on;
pub mod snapshots;
mod staff;
pub mod tickets;
mod unclassified;

pub use allow::AllowChange;
pub use requests::{Approval, RequestInput};
pub use sessions::{HANDOFF_TTL, HandoffToken};

use actas_core::policy::Policy;
use actas_store::{Store, StoreError};
use std::sync::Arc;

/// Why an operation was refused or failed. Front ends map these to exit codes or HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input; `field` names which.
    #[error("{field}: {message}")]
    Invalid {
        /// The input field, e.g. `reason` or `events[3].kind`.
        field: std::borrow::Cow<'static, str>,
        /// What is wrong.
        message: String,
    },
    /// Not signed in, or the credentials are wrong.
    #[error("{0}")]
    Unauthenticated(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The actor may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The state does not allow it (already done, changed meanwhile).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts in a short time: nothing was tried.
    #[error("{0}")]
    TooMany(String),
    /// The ledger can't be written: nothing was done.
    #[error("the audit ledger can't be written right now, so nothing was done")]
    Unavailable(#[source] StoreError),
    /// Anything else.
    #[error("something went wrong in storage")]
    Unexpected(#[source] StoreError),
}

impl ServiceError {
    /// Bad input in `field`.
    pub fn invalid(
        field: impl Into<std::borrow::Cow<'static, str>>,
        message: impl std::fmt::Display,
    ) -> Self {
        ServiceError::Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ServiceError::NotFound(format!("{what} was not found")),
            StoreError::Duplicate(what) => ServiceError::Conflict(format!("{what} already exists")),
            StoreError::Conflict(why) => ServiceError::Conflict(why),
            StoreError::Revoked(why) => ServiceError::Unauthenticated(why),
            StoreError::Refused(why) => ServiceError::Forbidden(why),
            e @ StoreError::LedgerUnavailable(_) => ServiceError::Unavailable(e),
            e @ (StoreError::Unexpected(_) | StoreError::Schema(_)) => ServiceError::Unexpected(e),
        }
    }
}

/// Result alias for services.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// The operations, bound to a store and a policy.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    unclassified: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    gateway_cache: Arc<gateway::GatewayCache>,
    app_cache: Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], actas_core::app::AppRef>>>,
    tickets: Option<Arc<tickets::TicketCheck>>,
    /// What the shared assertion keys are sealed under in the database.
    assertion_seal: Option<Arc<keys::SealKey>>,
    pages: Arc<snapshots::PageQueue>,
    /// The overdue-review count `/metrics` last read, and when.
    overdue: Arc<std::sync::Mutex<Option<(std::time::Instant, usize)>>>,
    /// Sign-in attempts allowed per address and per account, on top of the lockout.
    sign_in_limits: Arc<auth::SignInLimits>,
    /// The published ledger keys as last read (anyone may ask for them, and reading
    /// them goes through every signed tree head), for [`ledger::KEYS_FRESH_FOR`].
    published_keys: Arc<ledger::ReadOnce<ledger::Published>>,
    /// The company's identity provider, when staff sign in through one.
    sign_on: Option<Arc<sign_on::SignOn>>,
    /// Whether actas's own passwords are accepted.
    local_passwords: bool,
    /// SHA-256 of the identity provider's SCIM token, when its user sync is on.
    scim_token: Option<[u8; 32]>,
}

impl Service {
    /// Binds the services to a store and a policy.
    pub fn new(store: Arc<dyn Store>, policy: Arc<Policy>) -> Self {
        Self {
            store,
            policy,
            unclassified: Arc::default(),
            gateway_cache: Arc::default(),
            app_cache: Arc::default(),
            tickets: None,
            assertion_seal: None,
            pages: Arc::default(),
            overdue: Arc::default(),
            sign_in_limits: Arc::default(),
            published_keys: Arc::default(),
            sign_on: None,
            local_passwords: true,
            scim_token: None,
        }
    }

    /// Lets staff sign in through the identity provider `sign_on`.
    pub fn with_sign_on(mut self, sign_on: sign_on::SignOn) -> Self {
        self.sign_on = Some(Arc::new(sign_on));
        self
    }

    /// Turns actas's own passwords off (`[auth] local_passwords = false`): the identity
    /// provider is then the only way in.
    pub fn without_local_passwords(mut self) -> Self {
        self.local_passwords = false;
        self
    }

    /// Takes the identity provider's user sync (SCIM) with this bearer token.
    pub fn with_scim_token(mut self, token: &str) -> Self {
        self.scim_token = Some(auth::secret_hash(token));
        self
    }

    /// Whether staff may sign in with a password kept by actas.
    pub fn local_passwords(&self) -> bool {
        self.local_passwords
    }

    /// Shares the assertion keys through the database, sealed under `seal` (see
    /// [`keys`]).
    pub fn with_assertion_seal(mut self, seal: keys::SealKey) -> Self {
        self.assertion_seal = Some(Arc::new(seal));
        self
    }

    /// Checks every new request's ticket with the helpdesk first.
    pub fn with_ticket_check(mut self, check: tickets::TicketCheck) -> Self {
        self.tickets = Some(Arc::new(check));
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}
