//! State changes, each committed in one transaction with the events that record it.

use crate::model::Appended;
use actas_core::Timestamp;
use actas_core::account::{AccountFlag, Consent};
use actas_core::event::NewEvent;
use actas_core::ids::{AccountId, SessionId, StaffId};
use actas_core::request::{AccessRequest, RequestStatus};
use actas_core::scope::Risk;
use actas_core::session::{EndReason, SessionInfo};
use actas_core::staff::{DisplayName, Email, Role};
use actas_core::text::Note;

/// One state change. Each carries what it expects to find, so a change made on stale
/// information is refused (`Conflict`) instead of overwriting someone else's decision.
#[derive(Debug, Clone)]
pub enum Change {
    /// Adds a staff member; fails with `Duplicate` if the email is taken.
    AddStaff {
        /// Email.
        email: Email,
        /// Name.
        name: DisplayName,
        /// Role.
        role: Role,
        /// argon2id PHC string.
        password_hash: String,
    },
    /// Deactivates a staff member (must be active), ending their console sign-ins and
    /// revoking their API tokens, so reactivating them later brings none of those back.
    DisableStaff {
        /// Who.
        staff: StaffId,
        /// When.
        at: Timestamp,
    },
    /// Links a staff member to their identity at the identity provider (issuer and
    /// subject, which never change there, unlike an e-mail). Refused (`Conflict`) when
    /// they are linked to another subject or the subject to another staff member.
    LinkSubject {
        /// Who.
        staff: StaffId,
        /// The provider's issuer.
        issuer: String,
        /// The provider's `sub` for them.
        subject: String,
    },
    /// Makes a deactivated staff member active again (must be inactive); wrong-password
    /// counts start afresh.
    ReactivateStaff(StaffId),
    /// Puts a staff member on the allow-list, or changes their level.
    GrantAllow {
        /// Who.
        staff: StaffId,
        /// Up to which risk.
        max_risk: Risk,
        /// The director.
        by: StaffId,
        /// Why.
        reason: Note,
    },
    /// A director confirms a current grant as it is: its next review counts from now.
    /// Refused (`NotFound`) unless the staff member is on the allow-list.
    ConfirmAllow {
        /// Who.
        staff: StaffId,
        /// The director.
        by: StaffId,
    },
    /// Takes a staff member off the allow-list (must be on it).
    RevokeAllow {
        /// Who.
        staff: StaffId,
        /// The director.
        by: StaffId,
        /// Why.
        reason: Note,
    },
    /// Creates or updates an account's name and flags (`Applied::AccountBefore` says what
    /// it was). A new account starts with consent allowed; consent itself changes only
    /// by [`Change::SetConsent`], so a sync of names and flags can never undo the
    /// customer's choice.
    PutAccount {
        /// Id.
        id: AccountId,
        /// Name.
        name: DisplayName,
        /// Flags.
        flags: Vec<AccountFlag>,
    },
    /// Sets an account's consent, as the customer chose it; `NotFound` if there is no
    /// such account.
    SetConsent {
        /// Which account.
        account: AccountId,
        /// The customer's choice.
        consent: Consent,
    },
    /// Ends every active session of an account or of a staff member, decided in the
    /// transaction, so no session started a moment before can be missed
    /// (`Applied::Ended` lists them, with the names their events need). A session that
    /// already passed a limit is ended for that limit instead of `reason`.
    EndSessionsOf {
        /// Whose sessions.
        whose: SessionsOf,
        /// Why.
        reason: EndReason,
        /// When.
        at: Timestamp,
    },
    /// Records a new access request (and its policy approval, if any).
    InsertRequest(AccessRequest),
    /// Writes a request's new state, if it still has the `expected` status.
    UpdateRequest {
        /// The new state.
        request: AccessRequest,
        /// The status it must still have.
        expected: RequestStatus,
    },
    /// Records a started session. Refused if the staff member already has one.
    InsertSession(SessionInfo),
    /// Records a lead's review of a session. Refused unless the session has ended
    /// (`Conflict`) and the reviewer is someone other than its staff member (`Refused`),
    /// both decided in the transaction.
    ReviewSession {
        /// Which.
        session: SessionId,
        /// The lead.
        reviewer: StaffId,
        /// The verdict.
        outcome: actas_core::review::Outcome,
        /// The lead's note.
        note: Option<actas_core::text::Note>,
        /// When.
        at: Timestamp,
    },
    /// Keeps the masked copy of a page the gateway served, unless the session's copies
    /// would pass `max_session_bytes` (decided in the transaction; `Applied::Kept` says
    /// which).
    KeepPage {
        /// The session.
        session: SessionId,
        /// The request's ledger event.
        page_seq: u64,
        /// The path.
        path: String,
        /// The Content-Type it was served with.
        content_type: String,
        /// SHA-256 of the bytes served.
        sha256: [u8; 32],
        /// How many bytes were served.
        bytes: u64,
        /// The bytes, gzip-compressed.
        gzip: Vec<u8>,
        /// When.
        at: Timestamp,
        /// The most compressed bytes one session's copies may take.
        max_session_bytes: u64,
    },
    /// Deletes page copies kept before `before` (the policy's retention).
    PrunePageCopies {
        /// Copies older than this go.
        before: Timestamp,
    },
    /// Refreshes a session's idle clock, if it is still active.
    TouchSession {
        /// Which.
        id: SessionId,
        /// When.
        at: Timestamp,
    },
    /// Stores a confirmation code's salted hash for an account.
    InsertCode {
        /// The code's id.
        id: String,
        /// For which account.
        account: AccountId,
        /// Random salt.
        salt: Vec<u8>,
        /// SHA-256 of salt and code.
        hash: [u8; 32],
        /// Made at.
        created_at: Timestamp,
        /// Valid until.
        expires_at: Timestamp,
    },
    /// Marks a code used for a request; refused if it was used meanwhile.
    UseCode {
        /// The code's id.
        id: String,
        /// The request it confirmed.
        request: actas_core::ids::RequestId,
        /// When.
        at: Timestamp,
    },
    /// Counts a wrong confirmation code on a request, atomically; the fifth locks it.
    CodeFailed {
        /// The request.
        request: actas_core::ids::RequestId,
    },
    /// Stores a hand-off token's hash for a session.
    InsertHandoff {
        /// SHA-256 of the token.
        hash: [u8; 32],
        /// The session.
        session: SessionId,
        /// Valid until.
        expires_at: Timestamp,
    },
    /// Holds a signed action for its agent's confirmation.
    HoldAction(Box<crate::model::HeldAction>),
    /// Confirms a held action once, by its agent, while it is unexpired at `at`: keeps
    /// the SHA-256 of the token that sends it and how they proved who they are.
    ConfirmAction {
        /// The action.
        id: String,
        /// Who confirms it (only its agent can).
        staff: StaffId,
        /// SHA-256 of the send token.
        token_hash: [u8; 32],
        /// How they proved who they are.
        confirmed_with: String,
        /// When.
        at: Timestamp,
    },
    /// Marks a confirmed action sent, once, with its send token, while unexpired at `at`.
    SendAction {
        /// The action.
        id: String,
        /// SHA-256 of the send token.
        token_hash: [u8; 32],
        /// When.
        at: Timestamp,
    },
    /// Uses a hand-off token once, if it is unused and unexpired at `at`.
    RedeemHandoff {
        /// SHA-256 of the token.
        hash: [u8; 32],
        /// When.
        at: Timestamp,
    },
    /// Records a successful sign-in: a new console login, and the failure count reset.
    SignIn {
        /// SHA-256 of the cookie value.
        token_hash: [u8; 32],
        /// Who.
        staff: StaffId,
        /// The login's CSRF token.
        csrf: String,
        /// When.
        at: Timestamp,
        /// When they last proved who they are: `at` for a password, the identity
        /// provider's `auth_time` for a sign-in through it.
        authenticated_at: Timestamp,
        /// Until when the login is valid.
        expires_at: Timestamp,
    },
    /// Counts a wrong password, atomically; at `lock_after` failures sign-in is locked
    /// until `at + lock_for`.
    SignInFailed {
        /// Whose account.
        staff: StaffId,
        /// When.
        at: Timestamp,
        /// Failures that lock.
        lock_after: u32,
        /// For how long.
        lock_for: std::time::Duration,
    },
    /// Ends a console login.
    SignOut {
        /// SHA-256 of the cookie value.
        token_hash: [u8; 32],
        /// When.
        at: Timestamp,
    },
    /// Records that the password was checked again for a login.
    Reauthenticate {
        /// SHA-256 of the cookie value.
        token_hash: [u8; 32],
        /// When.
        at: Timestamp,
    },
    /// Changes a staff member's role (from their groups at the identity provider).
    SetRole {
        /// Whose.
        staff: StaffId,
        /// The new role.
        role: Role,
    },
    /// Remembers a sign-in sent to the identity provider (and forgets expired ones).
    BeginSignOn(crate::model::SignOnFlow),
    /// Takes the sign-in a `state` names, once: refused (`Conflict`) when it was already
    /// finished, never existed or has expired. Applied: [`Applied::SignOn`].
    TakeSignOn {
        /// SHA-256 of the `state` the provider sent back.
        state_hash: [u8; 32],
        /// When.
        at: Timestamp,
    },
    /// Stores a personal API token's hash.
    CreateApiToken {
        /// Its id.
        id: String,
        /// Whose.
        staff: StaffId,
        /// Its name, e.g. "laptop script".
        name: String,
        /// SHA-256 of the token.
        hash: [u8; 32],
        /// When.
        at: Timestamp,
    },
    /// Stores a TOTP secret shown for enrolment, replacing any earlier unconfirmed one.
    SetTotpPending {
        /// Whose.
        staff: StaffId,
        /// The secret.
        secret: Vec<u8>,
    },
    /// Turns two-step sign-in on with the pending secret, its code for `step` used.
    EnableTotp {
        /// Whose.
        staff: StaffId,
        /// The time step of the code that confirmed it.
        step: u64,
    },
    /// Uses an authenticator code: refused (`Conflict`) unless its time step is later
    /// than the last one used, so each code works once.
    UseTotpCode {
        /// Whose.
        staff: StaffId,
        /// Its time step (Unix time / 30 s).
        step: u64,
    },
    /// Stores the gateway cookie issued for a session.
    InsertGatewayLogin {
        /// SHA-256 of the cookie value.
        token_hash: [u8; 32],
        /// The session.
        session: SessionId,
        /// The token the banner sends to end the session.
        csrf: String,
        /// The staff member, as events name them.
        staff: actas_core::staff::StaffRef,
        /// The account, as events name it.
        account: actas_core::account::AccountRef,
        /// The session's ticket.
        ticket: actas_core::text::TicketRef,
        /// When.
        at: Timestamp,
    },
    /// Adds an app key (fails with `Duplicate` if the name is taken).
    AddAppKey {
        /// Its name.
        name: actas_core::app::AppName,
        /// SHA-256 of the key.
        key_hash: [u8; 32],
        /// Where session notifications go.
        webhook_url: Option<String>,
        /// The HMAC secret for them.
        webhook_secret: Option<String>,
        /// The director.
        by: Option<StaffId>,
        /// When.
        at: Timestamp,
    },
    /// Revokes an app key (it must not be revoked already).
    RevokeAppKey {
        /// Which.
        id: i64,
        /// When.
        at: Timestamp,
    },
    /// A precondition the writer decides under the append lock: refused (`Conflict`)
    /// when the ledger replaced this instance's key before the unit's first event, so
    /// nothing signed with that key (a signed action's receipt) is given out for it.
    RequireLedgerKeyCurrent,
    /// Claims an idempotency key for an app; `Duplicate` if it was claimed before.
    ClaimIdempotencyKey {
        /// The app.
        app: i64,
        /// The key.
        key: String,
        /// SHA-256 of what was sent with it.
        request_hash: [u8; 32],
        /// When.
        at: Timestamp,
    },
    /// A precondition: refused (`Conflict`) unless the session is active and within its
    /// hard and idle limits at `at`. It writes nothing; it lets the gateway act on what it
    /// already knows about a session while the writer's transaction, which holds the write
    /// lock, has the last word on whether the session still stands.
    RequireLiveSession {
        /// Which.
        id: SessionId,
        /// When the request it guards arrived.
        at: Timestamp,
    },
    /// A precondition: refused (`Refused`) if the account's customer has revoked consent,
    /// and (`Conflict`) if the consent is no longer `expected`, the setting a decision was
    /// based on (whether the customer's code is needed); `NotFound` if there is no such
    /// account.
    RequireConsent {
        /// Which account.
        account: AccountId,
        /// The consent the caller decided on, if it matters beyond "not revoked".
        expected: Option<Consent>,
    },
    /// A precondition: refused (`Refused`) unless the staff member is on the allow-list,
    /// up to at least `risk`.
    RequireAllowed {
        /// Who.
        staff: StaffId,
        /// The risk they act at.
        risk: Risk,
        /// Refused too if the grant was last reviewed before this (policy suspends
        /// overdue grants until a director confirms them); `None` when it doesn't.
        reviewed_since: Option<Timestamp>,
    },
    /// A precondition: refused (`Refused`) unless the staff member is active.
    RequireActiveStaff(StaffId),
    /// A precondition: refused (`Revoked`) if the app key has been revoked meanwhile.
    RequireAppKey {
        /// The app key's id.
        app: i64,
    },
    /// Reads an account as the transaction sees it (`Applied::Account`), so a unit's events
    /// can name it without a read before the commit; `NotFound` if there is none.
    LoadAccount(AccountId),
    /// Claims up to `limit` notifications due at `now` for this instance to deliver:
    /// each is hidden from every other instance's outbox until `until` (the lease), so
    /// one notification is sent by one instance; a lease that runs out (the instance
    /// died mid-delivery) lets another take it. `Applied::Webhooks` holds what was
    /// claimed, oldest first.
    ClaimWebhooks {
        /// Due at or before this.
        now: Timestamp,
        /// Hidden from other claims until then.
        until: Timestamp,
        /// At most this many.
        limit: u32,
    },
    /// Stores the assertion keys an installation starts with (its key file's), only if
    /// the database has none yet: the first instance to start brings them, the others
    /// use what it stored.
    SeedAssertionKeys(Vec<crate::model::AssertionKeyRecord>),
    /// Rewrites each stored assertion key's seal and tag (by `kid`), as a ledger key
    /// rotation re-seals them under the new ledger key. `Conflict` unless each row exists.
    ResealAssertionKeys(Vec<crate::model::AssertionKeyRecord>),
    /// Starts signing assertions with `key` (it must have no `retired_at`); the key that
    /// signed until now, which must be `replaces`, is retired at `key.created_at`.
    /// `Conflict` if another key was put in place meanwhile (two rotations at once).
    RotateAssertionKey {
        /// The new key.
        key: crate::model::AssertionKeyRecord,
        /// The id of the key it replaces.
        replaces: String,
    },
    /// Marks a notification delivered.
    WebhookDelivered {
        /// The outbox row.
        id: i64,
        /// When.
        at: Timestamp,
    },
    /// Records a failed delivery and when to try again.
    WebhookFailed {
        /// The outbox row.
        id: i64,
        /// Why, in short.
        error: String,
        /// When to try again.
        retry_at: Timestamp,
        /// The lease the delivery was claimed under (`ClaimWebhooks`' `until`): a report
        /// after the lease ran out, when another instance may hold it, changes nothing.
        claimed_until: Timestamp,
    },
    /// Adds to the counts of JSON paths no masking rule classified.
    CountUnclassified {
        /// Each path and how many times it was seen since the last count.
        paths: Vec<(String, u64)>,
        /// When.
        at: Timestamp,
    },
    /// Ends a session, if it is still active.
    EndSession {
        /// Which.
        id: SessionId,
        /// When.
        at: Timestamp,
        /// Why.
        reason: EndReason,
    },
}

/// What applying a change produced, for building its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to report.
    Done,
    /// A staff member was added with this id.
    Staff(StaffId),
    /// An app key was added with this id.
    App(i64),
    /// A wrong code was counted; this many so far.
    CodeFailures(u32),
    /// A wrong password was counted: failures in a row, and the lock if it locked.
    SignInFailures(u32, Option<Timestamp>),
    /// The account a `LoadAccount` read.
    Account(crate::model::Account),
    /// What a `PutAccount` found before it wrote (`None`: it created the account).
    AccountBefore(Option<crate::model::Account>),
    /// The sessions an `EndSessionsOf` ended.
    Ended(Vec<crate::model::EndedRecord>),
    /// Whether a `KeepPage` kept its copy.
    Kept(bool),
    /// How many copies a `PrunePageCopies` deleted.
    Pruned(u64),
    /// The notifications a `ClaimWebhooks` claimed.
    Webhooks(Vec<crate::model::DueWebhook>),
    /// The sign-in a `TakeSignOn` took.
    SignOn(crate::model::SignOnFlow),
}

/// Whose sessions [`Change::EndSessionsOf`] ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionsOf {
    /// Every session on an account.
    Account(AccountId),
    /// A staff member's session.
    Staff(StaffId),
    /// A staff member's session, if its request's risk is above `risk` (their
    /// allow-list level was lowered).
    StaffAbove {
        /// Whose.
        staff: StaffId,
        /// The highest risk they may still act at.
        risk: Risk,
    },
}

/// Builds a unit's events once its changes are applied (e.g. to name a new staff id).
pub(crate) type EventsFn = Box<dyn FnOnce(&[Applied]) -> Vec<NewEvent> + Send>;

/// Changes and the events that record them: committed together or not at all.
pub struct Unit {
    pub(crate) changes: Vec<Change>,
    pub(crate) events: EventsFn,
    pub(crate) reply: Option<tokio::sync::oneshot::Sender<crate::StoreResult<Vec<Appended>>>>,
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit")
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl Unit {
    /// Just an event.
    pub fn event(event: NewEvent) -> Self {
        Self::new(vec![], move |_| vec![event])
    }

    /// One change and the event recording it.
    pub fn change(change: Change, event: NewEvent) -> Self {
        Self::new(vec![change], move |_| vec![event])
    }

    /// Changes and a function building their events from what the changes produced.
    pub fn new(
        changes: Vec<Change>,
        events: impl FnOnce(&[Applied]) -> Vec<NewEvent> + Send + 'static,
    ) -> Self {
        Self {
            changes,
            events: Box::new(events),
            reply: None,
        }
    }
}
