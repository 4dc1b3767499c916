//! What the store returns: records read back as domain types.

use actas_core::Timestamp;
use actas_core::account::{AccountFlag, Consent};
use actas_core::event::EventBody;
use actas_core::ids::{AccountId, SessionId, StaffId};
use actas_core::merkle::Hash;
use actas_core::scope::Risk;
use actas_core::staff::{DisplayName, Email, Role, StaffRef};
use actas_core::text::Note;

/// A staff member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRecord {
    /// Row id.
    pub id: StaffId,
    /// Email, unique.
    pub email: Email,
    /// Display name.
    pub name: DisplayName,
    /// Role.
    pub role: Role,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// False once deactivated.
    pub active: bool,
    /// When added.
    pub created_at: Timestamp,
    /// Wrong passwords in a row.
    pub failed_sign_ins: u32,
    /// Sign-in is refused until then.
    pub locked_until: Option<Timestamp>,
    /// The authenticator-app secret, once two-step sign-in is on.
    pub totp: Option<TotpSecret>,
    /// A secret shown for enrolment and not yet confirmed.
    pub totp_pending: Option<TotpSecret>,
    /// Who they are at the identity provider (issuer, subject), once they signed in
    /// through it: later sign-ins must come from the same subject.
    pub subject: Option<(String, String)>,
}

/// A TOTP secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(pub Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl StaffRecord {
    /// How events name this person.
    pub fn to_ref(&self) -> StaffRef {
        StaffRef {
            id: self.id,
            email: self.email.clone(),
            name: self.name.clone(),
        }
    }
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// Who.
    pub staff: StaffRef,
    /// Up to which risk.
    pub max_risk: Risk,
    /// Granted by.
    pub granted_by: StaffRef,
    /// When.
    pub granted_at: Timestamp,
    /// Why.
    pub reason: Note,
    /// Revoked by, when, why.
    pub revoked: Option<(StaffRef, Timestamp, Note)>,
    /// When a director last confirmed it (at first, when it was granted); its review date
    /// counts from here.
    pub reviewed_at: Timestamp,
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The product's id.
    pub id: AccountId,
    /// Display name.
    pub name: DisplayName,
    /// Flags such as `sensitive`.
    pub flags: Vec<AccountFlag>,
    /// The customer's consent setting.
    pub consent: Consent,
}

impl Account {
    /// How events name this account.
    pub fn to_ref(&self) -> actas_core::account::AccountRef {
        actas_core::account::AccountRef {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }
}

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The event's sequence number.
    pub seq: u64,
    /// When it was recorded.
    pub time: Timestamp,
    /// Its leaf hash.
    pub leaf_hash: Hash,
}

/// An event read back from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The parsed body.
    pub body: EventBody,
    /// The body's exact text (what is hashed).
    pub raw: String,
    /// The recorded leaf hash.
    pub leaf_hash: Hash,
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this account's events.
    pub account: Option<AccountId>,
    /// Only this session's events.
    pub session: Option<SessionId>,
    /// Only this kind (e.g. `session.started`).
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
}

/// A confirmation code as stored: never the code itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// Its id.
    pub id: String,
    /// Its salt.
    pub salt: Vec<u8>,
    /// SHA-256 of salt and code.
    pub hash: Vec<u8>,
    /// Valid until.
    pub expires_at: Timestamp,
}

/// The gateway cookie's record: its session, its end token and the names a proxied
/// request needs, read in one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLogin {
    /// The session.
    pub session: actas_core::ids::SessionId,
    /// The token the banner's End button sends.
    pub csrf: String,
    /// The staff member.
    pub staff: actas_core::staff::StaffRef,
    /// The account.
    pub account: actas_core::account::AccountRef,
    /// The ticket.
    pub ticket: actas_core::text::TicketRef,
}

/// A console sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Who.
    pub staff: StaffId,
    /// The CSRF token for state-changing requests.
    pub csrf: String,
    /// The last time the password was checked.
    pub authenticated_at: Timestamp,
    /// Until when it is valid.
    pub expires_at: Timestamp,
    /// Whether it was signed out.
    pub ended: bool,
}

/// A JSON path the gateway hid because no masking rule classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnclassifiedField {
    /// The path, e.g. `$.loans[*].iban`.
    pub path: String,
    /// How many responses carried it.
    pub seen: u64,
    /// When it was first seen.
    pub first_seen: Timestamp,
    /// When it was last seen.
    pub last_seen: Timestamp,
}

/// An app key's record (the key itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppKey {
    /// The app, as events name it.
    pub app: actas_core::app::AppRef,
    /// Where session notifications go, if anywhere.
    pub webhook_url: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A notification due for delivery, with where it goes and how to sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWebhook {
    /// The outbox row.
    pub id: i64,
    /// The app.
    pub app: actas_core::app::AppRef,
    /// Where it goes.
    pub url: String,
    /// The HMAC secret.
    pub secret: String,
    /// The JSON body.
    pub body: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// How the notification outbox stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Not yet delivered.
    pub pending: u64,
    /// Not yet delivered and failed at least once.
    pub failing: u64,
    /// Delivered.
    pub delivered: u64,
    /// The most recent failure's message, if any notification is failing.
    pub last_error: Option<String>,
}

/// A session that a change ended, with the names its `session.ended` event needs, read
/// in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedRecord {
    /// The session, as it ended (reason and time).
    pub session: actas_core::session::EndedSession,
    /// Whose session it was.
    pub staff: StaffRef,
    /// The account.
    pub account: actas_core::account::AccountRef,
    /// The ticket it was for.
    pub ticket: actas_core::text::TicketRef,
}

/// A lead's review of a session, the newest one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReview {
    /// The lead.
    pub reviewer: StaffId,
    /// The verdict.
    pub outcome: actas_core::review::Outcome,
    /// The lead's note.
    pub note: Option<actas_core::text::Note>,
    /// When.
    pub at: Timestamp,
}

/// An ended session with what its review needs: counts from its ledger events and the
/// newest review, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedForReview {
    /// The session.
    pub session: actas_core::session::EndedSession,
    /// Changes it made (`session.action` events).
    pub changes: u64,
    /// Requests of the agent's that were blocked (`session.blocked`; answers the gateway
    /// refused to show, such as an unlabelled favicon, are the product's doing, not the
    /// agent's, and not counted).
    pub blocks: u64,
    /// Requests made to change its scope.
    pub scope_changes: u64,
    /// Support notes written on it (`session.note`).
    pub notes: u64,
    /// A random number 0–99 drawn when the session was written: the review sample.
    pub review_bucket: u8,
    /// The ticket of the session's request.
    pub ticket: actas_core::text::TicketRef,
    /// The newest review.
    pub review: Option<SessionReview>,
}

/// Which ended sessions [`crate::Store::ended_sessions`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndedSessions {
    /// The review queue, oldest ended first: unreviewed sessions that need a review (by
    /// the same flags as `actas_core::review::flags`, or in the sample), sessions whose
    /// newest review asks for a follow-up, and sessions reviewed that ended at or after
    /// `reviewed_since`.
    Open {
        /// Reviewed sessions ended since then are included too.
        reviewed_since: Timestamp,
        /// Quiet sessions whose bucket is below this are in the sample.
        sample_percent: u8,
        /// Account flags that make a session need a review.
        sensitive_flags: Vec<String>,
    },
    /// Sessions that ended in `[from, to)`: a weekly summary.
    EndedBetween(Timestamp, Timestamp),
}

/// A kept copy of a page the gateway served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCopy {
    /// The path.
    pub path: String,
    /// The Content-Type it was served with.
    pub content_type: String,
    /// SHA-256 of the bytes served, as stored with the copy.
    pub sha256: [u8; 32],
    /// The bytes, gzip-compressed.
    pub gzip: Vec<u8>,
    /// When it was kept.
    pub kept_at: Timestamp,
}

/// A key that signs (or signed) the gateway's assertions, as every instance shares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionKeyRecord {
    /// The key id (as in the JWKS).
    pub kid: String,
    /// The Ed25519 public key.
    pub public: [u8; 32],
    /// The seed, sealed under the key derived from the ledger key; `None` for a replaced
    /// key of which only the public half was kept.
    pub sealed: Option<Vec<u8>>,
    /// The tag that shows actas stored the row (over kid, public key, `created_at` and
    /// `sealed`), checked by whoever reads it.
    pub mac: Vec<u8>,
    /// When it was made.
    pub created_at: actas_core::Timestamp,
    /// When it stopped signing; `None` for the key that signs now.
    pub retired_at: Option<actas_core::Timestamp>,
}

/// A sign-in through the identity provider between actas sending the browser there and
/// the browser coming back: kept in the database so any instance can finish it, and
/// taken (deleted) by the first that does, so a `state` works once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOnFlow {
    /// SHA-256 of the `state` sent to the provider.
    pub state_hash: [u8; 32],
    /// SHA-256 of the value in the browser's binding cookie: the flow finishes only in
    /// the browser that started it (login CSRF).
    pub binding_hash: [u8; 32],
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// What the sign-in is for (`sign_in`, or `step_up` before starting a session).
    pub purpose: String,
    /// For a step-up: SHA-256 of the console login it refreshes.
    pub login_hash: Option<[u8; 32]>,
    /// Where to go afterwards (a console path), or the request a step-up starts.
    pub then: Option<String>,
    /// When it began.
    pub created_at: actas_core::Timestamp,
    /// When it can no longer be finished.
    pub expires_at: actas_core::Timestamp,
}

/// A `sign_on_flows` row as both backends read it: binding hash, nonce, verifier,
/// purpose, login hash, then, created, expires.
pub(crate) type SignOnRow = (
    Vec<u8>,
    String,
    String,
    String,
    Option<Vec<u8>>,
    Option<String>,
    i64,
    i64,
);

impl SignOnFlow {
    /// The flow a taken row holds, if it can still be finished at `at`.
    pub(crate) fn taken(
        state_hash: [u8; 32],
        row: Option<SignOnRow>,
        at: actas_core::Timestamp,
    ) -> crate::StoreResult<Self> {
        let gone = || {
            crate::StoreError::Conflict(
                "this sign-in was already finished, has expired, or was started elsewhere; please sign in again".into(),
            )
        };
        let (binding, nonce, verifier, purpose, login, then, created, expires) =
            row.ok_or_else(gone)?;
        if expires <= at.as_millis() {
            return Err(gone());
        }
        Ok(Self {
            state_hash,
            binding_hash: crate::writer::to_hash(&binding)?,
            nonce,
            verifier,
            purpose,
            login_hash: login.as_deref().map(crate::writer::to_hash).transpose()?,
            then,
            created_at: actas_core::Timestamp::from_millis(created),
            expires_at: actas_core::Timestamp::from_millis(expires),
        })
    }
}

/// A signed action held for its agent's confirmation (see `actas_core::gateway::Decision::Confirm`):
/// the exact request the gateway sends once it is confirmed, and what it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAction {
    /// Its id (random, unguessable), which the console's confirmation page names.
    pub id: String,
    /// The session it was held in.
    pub session: SessionId,
    /// The agent who sent it, the only one who can confirm it.
    pub staff: StaffId,
    /// The method the product receives.
    pub method: String,
    /// The canonical path.
    pub path: String,
    /// The query, as it will be sent.
    pub query: Option<String>,
    /// The body's `Content-Type`.
    pub content_type: Option<String>,
    /// The body, exactly as it will be sent (emptied once sent or expired).
    pub body: Vec<u8>,
    /// The request headers it is sent with, as the browser sent them (those the
    /// policy lets pass; emptied once sent or expired).
    pub headers: Vec<(String, String)>,
    /// The route's description.
    pub description: String,
    /// What it changes, masked.
    pub changes: Vec<actas_core::event::FieldChange>,
    /// When it was held.
    pub held_at: Timestamp,
    /// Until when it can be confirmed and sent.
    pub expires_at: Timestamp,
    /// How the agent proved who they are, once they confirmed it.
    pub confirmed_with: Option<String>,
    /// When it was sent, if it was.
    pub sent_at: Option<Timestamp>,
}

/// How long past its time a held action keeps its body and headers before they are
/// emptied: a margin for clocks that differ between instances.
pub(crate) const HELD_PURGE_MARGIN_MS: i64 = 60 * 60 * 1000;

/// The columns of `held_actions` a backend reads, in [`HELD_ACTION_COLUMNS`] order.
pub(crate) type HeldActionRow = (
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<u8>,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
);

/// The columns [`HeldActionRow`] holds.
pub(crate) const HELD_ACTION_COLUMNS: &str = "id, session_id, staff_id, method, path, query, content_type, body, headers, description, changes, held_at, expires_at, confirmed_with, sent_at";

impl HeldAction {
    /// Reads a row of `held_actions`.
    pub(crate) fn from_row(row: HeldActionRow) -> crate::StoreResult<Self> {
        let (
            id,
            session,
            staff,
            method,
            path,
            query,
            content_type,
            body,
            headers,
            description,
            changes,
            held_at,
            expires_at,
            confirmed_with,
            sent_at,
        ) = row;
        Ok(Self {
            id,
            session: SessionId::parse(&session).map_err(crate::StoreError::unexpected)?,
            staff: StaffId::new(staff)
                .map_err(|_| crate::StoreError::corrupt("a held action's staff id is not valid"))?,
            method,
            path,
            query,
            content_type,
            body,
            headers: serde_json::from_str(&headers)
                .map_err(|_| crate::StoreError::corrupt("a held action's headers are not valid"))?,
            description,
            changes: serde_json::from_str(&changes)
                .map_err(|_| crate::StoreError::corrupt("a held action's changes are not valid"))?,
            held_at: Timestamp::from_millis(held_at),
            expires_at: Timestamp::from_millis(expires_at),
            confirmed_with,
            sent_at: sent_at.map(Timestamp::from_millis),
        })
    }
}
