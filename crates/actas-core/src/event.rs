//! Ledger events: who did what, on whose behalf, and the exact bytes the ledger hashes.
//!
//! An event's *body* is one line of JSON with a fixed field order (see [`EventBody`]).
//! The body is stored verbatim and its bytes are the Merkle leaf input, so verifiers in
//! any language hash exactly what they read; nothing has to be re-serialized the same way.

use crate::account::{AccountRef, Consent};
use crate::ids::{AccountId, RequestId, SessionId};
use crate::merkle::Hash;
use crate::scope::{CapabilityName, Mode, Risk, Scope};
use crate::session::EndReason;
use crate::staff::{Role, StaffRef};
use crate::text::{Note, Reason, TicketRef};
use crate::{Timestamp, summary};
use serde::{Deserialize, Serialize};

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Actor {
    /// A staff member (inside a session: acting on behalf of the account).
    Staff(StaffRef),
    /// The customer, as reported by the product.
    Customer(AccountRef),
    /// actas itself (a limit passed, a request expired).
    System,
    /// One of the product's apps, by its app key (e.g. syncing an account).
    App(crate::app::AppRef),
}

/// One field's change, with values already masked by policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field in plain words, e.g. "tax rate".
    pub field: String,
    /// The value before, if there was one.
    pub from: Option<String>,
    /// The value after, if there is one.
    pub to: Option<String>,
}

/// One page of a [`EventData::PagesKept`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPage {
    /// The event of the request this page answered (a page view, a data read, a change).
    pub page: u64,
    /// The path.
    pub path: String,
    /// SHA-256 of the bytes sent to the agent's browser, hex.
    pub sha256: String,
    /// How many bytes were sent.
    pub bytes: u64,
    /// Whether a copy was kept; `false` when the session's copies reached the limit, or
    /// the page was cut short.
    pub kept: bool,
    /// The agent's client stopped reading before the page's end: the hash is of what
    /// was sent until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_short: bool,
}

/// The kind of a ledger key replacement ([`EventData::LedgerKeyRotated`]), which
/// readers of the ledger look for by name.
pub const LEDGER_KEY_ROTATED: &str = "keys.ledger_rotated";

/// What happened, with everything needed to describe it. The variant names the event's
/// kind (e.g. `session.started`); its fields are the event's structured details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "details")]
pub enum EventData {
    /// A staff member was added.
    #[serde(rename = "staff.added")]
    StaffAdded {
        /// Who.
        staff: StaffRef,
        /// As what.
        role: Role,
    },
    /// A staff member was deactivated.
    #[serde(rename = "staff.disabled")]
    StaffDisabled {
        /// Who.
        staff: StaffRef,
    },
    /// A deactivated staff member was made active again (by the identity provider's
    /// directory sync).
    #[serde(rename = "staff.reactivated")]
    StaffReactivated {
        /// Who.
        staff: StaffRef,
    },
    /// A staff member signed in to the console.
    #[serde(rename = "staff.signed_in")]
    SignedIn {
        /// Who.
        staff: StaffRef,
        /// The identity provider they signed in through; `None`: actas's own password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        through: Option<String>,
    },
    /// Someone the identity provider signed in was refused by actas.
    #[serde(rename = "staff.sign_in_refused")]
    SignInRefused {
        /// The identity provider's name.
        through: String,
        /// Who the provider said they are (their e-mail, or the provider's subject id
        /// when it gave none); `None` when the refusal came before any token.
        who: Option<String>,
        /// Why, in plain words.
        reason: String,
    },
    /// A staff member's role changed to follow their groups at the identity provider.
    #[serde(rename = "staff.role_changed")]
    RoleChanged {
        /// Who.
        staff: StaffRef,
        /// The role before.
        from: Role,
        /// The role now.
        to: Role,
        /// The identity provider whose groups decided it.
        through: String,
    },
    /// A staff member signed out.
    #[serde(rename = "staff.signed_out")]
    SignedOut {
        /// Who.
        staff: StaffRef,
    },
    /// A wrong password was given for a staff member's email.
    #[serde(rename = "staff.sign_in_failed")]
    SignInFailed {
        /// Whose account.
        staff: StaffRef,
        /// Wrong passwords in a row.
        failures: u32,
        /// Minutes sign-in is now locked for, if this failure locked it.
        locked_minutes: Option<u64>,
    },
    /// A staff member turned on two-step sign-in.
    #[serde(rename = "staff.totp_enabled")]
    TotpEnabled {
        /// Who.
        staff: StaffRef,
    },
    /// The gateway's assertion signing key was replaced. The old key stays published
    /// until the last assertion it signed has expired.
    #[serde(rename = "keys.assertion_rotated")]
    AssertionKeyRotated {
        /// The old key's id.
        old_kid: String,
        /// The new key's id.
        new_kid: String,
    },
    /// The ledger's signing key was replaced. Heads up to this event are signed with the
    /// old key, later ones with the new; the new key's endorsement (its signature over
    /// both keys, see [`crate::checkpoint::rotation_message`]) shows the hand-over was
    /// made by whoever holds it.
    #[serde(rename = "keys.ledger_rotated")]
    LedgerKeyRotated {
        /// The old public key, base64url.
        old_key: String,
        /// The new public key, base64url.
        new_key: String,
        /// The new key's signature over the rotation message, base64url.
        endorsement: String,
    },
    /// A new ledger key signed its first head, right after it replaced the old one.
    #[serde(rename = "keys.ledger_started")]
    LedgerKeyStarted {
        /// The new public key, base64url.
        key: String,
    },
    /// A staff member created a personal API token.
    #[serde(rename = "staff.api_token_created")]
    ApiTokenCreated {
        /// Whose.
        staff: StaffRef,
        /// Its name.
        name: String,
    },
    /// A director put a staff member on the allow-list (or changed their level).
    #[serde(rename = "allow.granted")]
    AllowGranted {
        /// Who may now act as customers.
        staff: StaffRef,
        /// Up to which risk.
        max_risk: Risk,
        /// Why.
        reason: Note,
    },
    /// A director reviewed a grant and kept it as it is (access recertification).
    #[serde(rename = "allow.confirmed")]
    AllowConfirmed {
        /// Whose grant.
        staff: StaffRef,
        /// Up to which risk, as confirmed.
        max_risk: Risk,
        /// Why it stays.
        reason: Note,
    },
    /// A director took a staff member off the allow-list.
    #[serde(rename = "allow.revoked")]
    AllowRevoked {
        /// Who.
        staff: StaffRef,
        /// Why.
        reason: Note,
    },
    /// An agent asked to act as a customer.
    #[serde(rename = "request.created")]
    RequestCreated {
        /// The request.
        request: RequestId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// Why.
        reason: Reason,
        /// What.
        scope: Scope,
        /// How long, in minutes.
        minutes: u64,
        /// Which mode.
        mode: Mode,
        /// The scope's highest risk.
        risk: Risk,
        /// The session whose scope this request would change, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_session: Option<SessionId>,
    },
    /// A request was approved by a lead or by policy.
    #[serde(rename = "request.approved")]
    RequestApproved {
        /// The request.
        request: RequestId,
        /// Who asked.
        requester: StaffRef,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// What was approved.
        scope: Scope,
        /// For how long, in minutes.
        minutes: u64,
        /// True when low risk on a normal account was approved by policy.
        by_policy: bool,
        /// The lead's note, if any.
        note: Option<Note>,
    },
    /// A lead denied a request.
    #[serde(rename = "request.denied")]
    RequestDenied {
        /// The request.
        request: RequestId,
        /// Who asked.
        requester: StaffRef,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// Why.
        note: Note,
    },
    /// The requester withdrew a request.
    #[serde(rename = "request.cancelled")]
    RequestCancelled {
        /// The request.
        request: RequestId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
    },
    /// A request ran out of time.
    #[serde(rename = "request.expired")]
    RequestExpired {
        /// The request.
        request: RequestId,
        /// Who asked.
        requester: StaffRef,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
    },
    /// A support session started.
    #[serde(rename = "session.started")]
    SessionStarted {
        /// The session.
        session: SessionId,
        /// The request it came from.
        request: RequestId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// Why.
        reason: Reason,
        /// What it may do.
        scope: Scope,
        /// Which mode.
        mode: Mode,
        /// When it ends at the latest.
        expires_at: Timestamp,
    },
    /// A new way into a running session was issued to its own staff member (the last
    /// link was used, expired or lost); the session is the same one.
    #[serde(rename = "session.handoff_reissued")]
    HandoffReissued {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
    },
    /// The staff member's note of what they did in a session, and why: shown on its
    /// timeline and in the customer's access history.
    #[serde(rename = "session.note")]
    SupportNote {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// What they wrote.
        note: Note,
    },
    /// A lead reviewed an ended session (the weekly review). Staff oversight: indexed
    /// by the session, not the account, so it is on the session's timeline and not in
    /// the customer's history.
    #[serde(rename = "session.reviewed")]
    SessionReviewed {
        /// The session.
        session: SessionId,
        /// Whose session it was.
        staff: StaffRef,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// What the reviewer concluded.
        outcome: crate::review::Outcome,
        /// The reviewer's note, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<Note>,
    },
    /// A page was viewed inside a session.
    #[serde(rename = "session.page_viewed")]
    PageViewed {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The path viewed.
        path: String,
        /// What it is, e.g. "viewed loan LA-77".
        description: String,
    },
    /// Pages the gateway finished serving in a session: the SHA-256 of the masked HTML
    /// each one sent (banner included), so a copy shown later can be checked against the
    /// ledger, and whether that copy was kept (policy `[snapshots]`). One event holds the
    /// pages of a second or so: the ledger then writes one record for many pages.
    #[serde(rename = "session.pages_kept")]
    PagesKept {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The pages, in the order they were served.
        pages: Vec<KeptPage>,
    },
    /// Someone opened the kept copy of a page an agent saw (the page itself, not only
    /// its record): the customer's data was shown again, so it is recorded like a view.
    #[serde(rename = "session.page_copy_opened")]
    PageCopyOpened {
        /// The session.
        session: SessionId,
        /// Whose session it was.
        staff: StaffRef,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The request's event the copy answered.
        page: u64,
        /// The path.
        path: String,
    },
    /// A change was made inside a session.
    #[serde(rename = "session.action")]
    ActionTaken {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The route's description, e.g. "changed the tax settings"; once the product has
        /// answered, its own words from `Actas-Audit` when it gave some.
        description: String,
        /// The fields changed, masked.
        changes: Vec<FieldChange>,
        /// The product's answer status, once known.
        status: Option<u16>,
        /// The canonical path the change was sent to (absent in events written before
        /// paths were recorded with changes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// A change on a route the policy makes a signed action was held, not sent: the agent
    /// must confirm it, proving again who they are, before it goes to the product.
    #[serde(rename = "session.action_held")]
    ActionHeld {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The held action's id, which its confirmation names.
        action: String,
        /// The route's description.
        description: String,
        /// What it would change, from the values the product showed to those sent, masked.
        changes: Vec<FieldChange>,
        /// The canonical path it was sent to.
        path: String,
    },
    /// A held signed action, confirmed by the agent after proving again who they are,
    /// was sent to the product with this event, signed by the ledger key, as its
    /// `Actas-Receipt`.
    #[serde(rename = "session.signed_action")]
    SignedAction {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The held action's id.
        action: String,
        /// The route's description.
        description: String,
        /// What it changes, masked (as confirmed).
        changes: Vec<FieldChange>,
        /// The method it was sent with.
        method: String,
        /// The canonical path it was sent to, with its query.
        path: String,
        /// SHA-256 (hex) of the exact body the product receives, so the product can tie
        /// the receipt to the request it got.
        body_sha256: String,
        /// How the agent proved who they are to confirm it ("their password", or the
        /// identity provider's name).
        confirmed_with: String,
    },
    /// An agent tried to confirm a held signed action and could not prove who they are
    /// (a wrong password, or the identity provider refused or did not sign them in), so
    /// it stays held, unsent.
    #[serde(rename = "session.action_not_confirmed")]
    ActionNotConfirmed {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The held action's id.
        action: String,
        /// The route's description.
        description: String,
        /// How they tried ("their password", or the identity provider's name).
        tried_with: String,
        /// Why it was not confirmed, in words.
        reason: String,
    },
    /// Data was read inside a session: anything but a page the agent navigated to (a
    /// page's own fetches, a script's API calls, a frame's content, a client's GET).
    #[serde(rename = "session.data_read")]
    DataRead {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The method (GET, or OPTIONS).
        method: String,
        /// The canonical path read.
        path: String,
        /// What the route says it is, e.g. "viewed loan LA-77", or "read /api/profile".
        description: String,
    },
    /// The agent's browser sent a message on a live connection (WebSocket) inside a
    /// session, recorded before it was sent on.
    #[serde(rename = "session.live_message")]
    LiveMessage {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The connection's canonical path.
        path: String,
        /// The message's size in bytes.
        bytes: u64,
        /// The fields of a JSON message, masked by policy.
        fields: Vec<FieldChange>,
    },
    /// The agent saw a masked field whole, because the session's approved scope reveals
    /// it; written before the answer that carried it went out.
    #[serde(rename = "session.field_revealed")]
    FieldRevealed {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The fields revealed, as the policy names them.
        fields: Vec<String>,
        /// The page or data read that carried them.
        path: String,
        /// The request the session was approved on.
        request: RequestId,
        /// Who approved it (`None`: the policy).
        approved_by: Option<StaffRef>,
    },
    /// The product answered (or failed to answer) a request that had been sent on, and
    /// the gateway did not pass the answer to the agent.
    #[serde(rename = "session.answer_refused")]
    AnswerRefused {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The request's method.
        method: String,
        /// The request's canonical path.
        path: String,
        /// Why, in plain words.
        why: String,
    },
    /// Something out of scope was refused inside a session.
    #[serde(rename = "session.blocked")]
    ActionBlocked {
        /// The session.
        session: SessionId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
        /// The capability it needed, if any.
        capability: Option<CapabilityName>,
        /// Why it was refused, in plain words.
        why: String,
    },
    /// A session ended.
    #[serde(rename = "session.ended")]
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Whose session it was.
        staff: StaffRef,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// Why.
        reason: EndReason,
        /// The limit passed, in minutes, for the time-limit reasons.
        limit_minutes: Option<u64>,
    },
    /// An account was added or its details changed.
    #[serde(rename = "account.updated")]
    AccountUpdated {
        /// Which account, with its name now.
        account: AccountRef,
        /// Its flags now.
        flags: Vec<crate::account::AccountFlag>,
        /// True when it was added.
        created: bool,
        /// Flags it no longer has.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<crate::account::AccountFlag>,
    },
    /// The customer made a one-time confirmation code.
    #[serde(rename = "code.issued")]
    CodeIssued {
        /// For which account.
        account: AccountRef,
        /// Until when it is valid.
        expires_at: Timestamp,
        /// The app that passed the code on to the customer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<crate::app::AppRef>,
    },
    /// An agent entered the customer's code correctly.
    #[serde(rename = "code.accepted")]
    CodeAccepted {
        /// The request it confirms.
        request: RequestId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
    },
    /// An agent entered a wrong code.
    #[serde(rename = "code.rejected")]
    CodeRejected {
        /// The request.
        request: RequestId,
        /// On which account.
        account: AccountRef,
        /// For which ticket.
        ticket: TicketRef,
        /// Wrong codes so far.
        failures: u32,
        /// True when this one locked the request.
        locked: bool,
    },
    /// The customer changed their consent setting.
    #[serde(rename = "consent.changed")]
    ConsentChanged {
        /// Which account.
        account: AccountRef,
        /// The new setting.
        consent: Consent,
        /// The app that passed on the customer's choice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<crate::app::AppRef>,
    },
    /// The customer did something in the product, as the product reported it.
    #[serde(rename = "customer.activity")]
    CustomerActivity {
        /// Whose account.
        account: AccountRef,
        /// What kind of thing.
        activity: crate::activity::ActivityKind,
        /// The policy's sentence for it, filled in (e.g. "signed the loan agreement LA-77").
        description: String,
        /// Values before and after, masked by policy.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<FieldChange>,
        /// The app that reported it.
        reported_by: crate::app::AppRef,
    },
    /// A director created an app key for the product.
    #[serde(rename = "keys.app_key_created")]
    AppKeyCreated {
        /// The app.
        app: crate::app::AppRef,
        /// Where session notifications go, if anywhere.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        webhook: Option<String>,
    },
    /// A director revoked an app key.
    #[serde(rename = "keys.app_key_revoked")]
    AppKeyRevoked {
        /// The app.
        app: crate::app::AppRef,
    },
}

/// Where an event belongs: the columns the ledger indexes it by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventContext {
    /// The account it concerns.
    pub account: Option<AccountId>,
    /// The account staff were acting on behalf of, for events inside a session.
    pub on_behalf_of: Option<AccountId>,
    /// The session it happened in.
    pub session: Option<SessionId>,
    /// The ticket it was for.
    pub ticket: Option<TicketRef>,
}

impl EventData {
    /// The event's kind, e.g. `session.started`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::StaffAdded { .. } => "staff.added",
            EventData::StaffDisabled { .. } => "staff.disabled",
            EventData::StaffReactivated { .. } => "staff.reactivated",
            EventData::SignedIn { .. } => "staff.signed_in",
            EventData::SignInRefused { .. } => "staff.sign_in_refused",
            EventData::RoleChanged { .. } => "staff.role_changed",
            EventData::SignedOut { .. } => "staff.signed_out",
            EventData::SignInFailed { .. } => "staff.sign_in_failed",
            EventData::ApiTokenCreated { .. } => "staff.api_token_created",
            EventData::TotpEnabled { .. } => "staff.totp_enabled",
            EventData::AssertionKeyRotated { .. } => "keys.assertion_rotated",
            EventData::LedgerKeyRotated { .. } => "keys.ledger_rotated",
            EventData::LedgerKeyStarted { .. } => "keys.ledger_started",
            EventData::AllowGranted { .. } => "allow.granted",
            EventData::AllowRevoked { .. } => "allow.revoked",
            EventData::AllowConfirmed { .. } => "allow.confirmed",
            EventData::RequestCreated { .. } => "request.created",
            EventData::RequestApproved { .. } => "request.approved",
            EventData::RequestDenied { .. } => "request.denied",
            EventData::RequestCancelled { .. } => "request.cancelled",
            EventData::RequestExpired { .. } => "request.expired",
            EventData::SessionStarted { .. } => "session.started",
            EventData::HandoffReissued { .. } => "session.handoff_reissued",
            EventData::SupportNote { .. } => "session.note",
            EventData::SessionReviewed { .. } => "session.reviewed",
            EventData::PageViewed { .. } => "session.page_viewed",
            EventData::PagesKept { .. } => "session.pages_kept",
            EventData::PageCopyOpened { .. } => "session.page_copy_opened",
            EventData::ActionTaken { .. } => "session.action",
            EventData::ActionHeld { .. } => "session.action_held",
            EventData::SignedAction { .. } => "session.signed_action",
            EventData::ActionNotConfirmed { .. } => "session.action_not_confirmed",
            EventData::ActionBlocked { .. } => "session.blocked",
            EventData::DataRead { .. } => "session.data_read",
            EventData::LiveMessage { .. } => "session.live_message",
            EventData::AnswerRefused { .. } => "session.answer_refused",
            EventData::FieldRevealed { .. } => "session.field_revealed",
            EventData::SessionEnded { .. } => "session.ended",
            EventData::ConsentChanged { .. } => "consent.changed",
            EventData::CustomerActivity { .. } => "customer.activity",
            EventData::AppKeyCreated { .. } => "keys.app_key_created",
            EventData::AppKeyRevoked { .. } => "keys.app_key_revoked",
            EventData::AccountUpdated { .. } => "account.updated",
            EventData::CodeIssued { .. } => "code.issued",
            EventData::CodeAccepted { .. } => "code.accepted",
            EventData::CodeRejected { .. } => "code.rejected",
        }
    }

    /// Whether the product is notified of this event (by webhook): when a support session
    /// on one of its accounts starts and when it ends.
    pub fn notifies_product(&self) -> bool {
        matches!(
            self,
            EventData::SessionStarted { .. } | EventData::SessionEnded { .. }
        )
    }

    /// The account, session and ticket the event belongs to. Events that happen inside a
    /// session are on behalf of its account (invariant 13).
    pub fn context(&self) -> EventContext {
        let of = |a: &AccountRef| Some(a.id.clone());
        match self {
            EventData::StaffAdded { .. }
            | EventData::StaffDisabled { .. }
            | EventData::StaffReactivated { .. }
            | EventData::SignedIn { .. }
            | EventData::SignInRefused { .. }
            | EventData::RoleChanged { .. }
            | EventData::SignedOut { .. }
            | EventData::SignInFailed { .. }
            | EventData::ApiTokenCreated { .. }
            | EventData::TotpEnabled { .. }
            | EventData::AssertionKeyRotated { .. }
            | EventData::LedgerKeyRotated { .. }
            | EventData::LedgerKeyStarted { .. }
            | EventData::AppKeyCreated { .. }
            | EventData::AppKeyRevoked { .. }
            | EventData::AllowGranted { .. }
            | EventData::AllowRevoked { .. }
            | EventData::AllowConfirmed { .. } => EventContext::default(),
            EventData::SessionReviewed {
                session, ticket, ..
            } => EventContext {
                session: Some(*session),
                ticket: Some(ticket.clone()),
                ..EventContext::default()
            },
            EventData::RequestCreated {
                account, ticket, ..
            }
            | EventData::RequestApproved {
                account, ticket, ..
            }
            | EventData::RequestDenied {
                account, ticket, ..
            }
            | EventData::RequestCancelled {
                account, ticket, ..
            }
            | EventData::RequestExpired {
                account, ticket, ..
            } => EventContext {
                account: of(account),
                ticket: Some(ticket.clone()),
                ..EventContext::default()
            },
            EventData::SessionStarted {
                session,
                account,
                ticket,
                ..
            }
            | EventData::SessionEnded {
                session,
                account,
                ticket,
                ..
            }
            | EventData::HandoffReissued {
                session,
                account,
                ticket,
            }
            | EventData::SupportNote {
                session,
                account,
                ticket,
                ..
            } => EventContext {
                account: of(account),
                on_behalf_of: None,
                session: Some(*session),
                ticket: Some(ticket.clone()),
            },
            EventData::PageViewed {
                session,
                account,
                ticket,
                ..
            }
            | EventData::PagesKept {
                session,
                account,
                ticket,
                ..
            }
            | EventData::PageCopyOpened {
                session,
                account,
                ticket,
                ..
            }
            | EventData::ActionTaken {
                session,
                account,
                ticket,
                ..
            }
            | EventData::ActionHeld {
                session,
                account,
                ticket,
                ..
            }
            | EventData::SignedAction {
                session,
                account,
                ticket,
                ..
            }
            | EventData::ActionNotConfirmed {
                session,
                account,
                ticket,
                ..
            }
            | EventData::ActionBlocked {
                session,
                account,
                ticket,
                ..
            }
            | EventData::DataRead {
                session,
                account,
                ticket,
                ..
            }
            | EventData::LiveMessage {
                session,
                account,
                ticket,
                ..
            }
            | EventData::AnswerRefused {
                session,
                account,
                ticket,
                ..
            }
            | EventData::FieldRevealed {
                session,
                account,
                ticket,
                ..
            } => EventContext {
                account: of(account),
                on_behalf_of: of(account),
                session: Some(*session),
                ticket: Some(ticket.clone()),
            },
            EventData::ConsentChanged { account, .. }
            | EventData::CustomerActivity { account, .. }
            | EventData::AccountUpdated { account, .. }
            | EventData::CodeIssued { account, .. } => EventContext {
                account: of(account),
                ..EventContext::default()
            },
            EventData::CodeAccepted {
                account, ticket, ..
            }
            | EventData::CodeRejected {
                account, ticket, ..
            } => EventContext {
                account: of(account),
                ticket: Some(ticket.clone()),
                ..EventContext::default()
            },
        }
    }
}

/// An event to append: who did what. The ledger adds the sequence number, time and link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub data: EventData,
}

impl NewEvent {
    /// Pairs an actor with what they did.
    pub fn new(actor: Actor, data: EventData) -> Self {
        Self { actor, data }
    }

    /// The `session.ended` event for `ended`, done by `actor`; a limit that passed is
    /// actas's own doing, and names the limit in minutes.
    pub fn session_ended(
        ended: &crate::session::EndedSession,
        staff: StaffRef,
        account: AccountRef,
        ticket: TicketRef,
        actor: Actor,
    ) -> Self {
        let info = &ended.info;
        let limit_minutes = match ended.reason {
            EndReason::HardLimit => Some(info.expires_at.since(info.started_at).as_secs() / 60),
            EndReason::IdleLimit => Some(info.idle_limit.as_secs() / 60),
            _ => None,
        };
        let actor = match ended.reason {
            EndReason::HardLimit | EndReason::IdleLimit => Actor::System,
            _ => actor,
        };
        Self::new(
            actor,
            EventData::SessionEnded {
                session: info.id,
                staff,
                account,
                ticket,
                reason: ended.reason,
                limit_minutes,
            },
        )
    }

    /// The account whose history this event belongs to (the `account` column).
    pub fn account(&self) -> Option<AccountId> {
        self.data.context().account
    }

    /// Builds the body the ledger stores today (version 2) for this event at `seq`,
    /// `time`, after `prev`: with a fresh random `salt`, and its place in its account's
    /// history when it has an account.
    pub fn into_private_body(
        self,
        seq: u64,
        time: Timestamp,
        prev: &Hash,
        salt: [u8; 16],
        link: Option<AccountLink>,
    ) -> EventBody {
        let mut body = self.into_body(seq, time, prev);
        body.private = Some(Private { salt, link });
        body
    }

    /// Builds a version 1 body (no salt, no account link), as actas wrote before version 2:
    /// for tests that check old ledgers still verify.
    pub fn into_body(self, seq: u64, time: Timestamp, prev: &Hash) -> EventBody {
        let ctx = self.data.context();
        let summary = summary::summarize(&self.actor, &self.data);
        EventBody {
            seq,
            time,
            actor: self.actor,
            account: ctx.account,
            on_behalf_of: ctx.on_behalf_of,
            session: ctx.session,
            ticket: ctx.ticket,
            summary,
            data: self.data,
            prev: hex::encode(prev),
            private: None,
        }
    }
}

/// An event's place in its account's history: what makes an account's extract provably
/// complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLink {
    /// How many events of the account came before this one.
    pub index: u64,
    /// The leaf hash of the account's previous event (zeros for its first).
    pub prev: Hash,
}

/// What a version 2 body adds: a random salt (so a leaf hash reveals nothing about the
/// event, even when the rest of the body can be guessed) and the account link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Private {
    /// 128 random bits, drawn when the event is recorded.
    pub salt: [u8; 16],
    /// Its place in its account's history, when it has an account.
    pub link: Option<AccountLink>,
}

/// The body version that carries [`Private`].
pub const BODY_VERSION: u32 = 2;

/// An event as the ledger records it. Serialized with [`EventBody::encode`] into one line
/// of JSON, in this field order:
/// `seq, time, kind, account, session, prev, on_behalf_of, ticket, actor, summary, details`.
///
/// The fields the ledger indexes come first, so verification can check a row's index
/// columns against its body by comparing one prefix (see [`write_index_prefix`]) instead
/// of parsing every body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBody {
    /// Position in the ledger, from 1, gap-free.
    pub seq: u64,
    /// When it was recorded.
    pub time: Timestamp,
    /// What happened (`kind` and `details`).
    pub data: EventData,
    /// Who did it.
    pub actor: Actor,
    /// The account it concerns.
    pub account: Option<AccountId>,
    /// The account staff acted on behalf of, inside a session.
    pub on_behalf_of: Option<AccountId>,
    /// The session it happened in.
    pub session: Option<SessionId>,
    /// The ticket it was for.
    pub ticket: Option<TicketRef>,
    /// The plain-language sentence.
    pub summary: String,
    /// The leaf hash of the previous event (hex), all zeros for the first: a hash chain
    /// beside the Merkle tree, so verification names the exact event that was changed.
    pub prev: String,
    /// Version 2's salt and account link; `None` for a version 1 body.
    pub private: Option<Private>,
}

/// The body's wire form (field order is the format; see `docs`).
#[derive(Serialize, Deserialize)]
struct Wire<K, D> {
    seq: u64,
    time: Timestamp,
    kind: K,
    account: Option<AccountId>,
    session: Option<SessionId>,
    prev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_prev: Option<String>,
    on_behalf_of: Option<AccountId>,
    ticket: Option<TicketRef>,
    actor: Actor,
    summary: String,
    details: D,
}

#[derive(Serialize, Deserialize)]
struct Tagged<K, D> {
    kind: K,
    details: D,
}

/// Why an event body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not the JSON a body is.
    #[error("event body is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but its version fields don't hold together.
    #[error("event body is not valid: {0}")]
    Version(&'static str),
}

fn hex_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], BodyError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| BodyError::Version(what))?;
    Ok(out)
}

impl EventBody {
    /// The body's JSON text: the exact bytes that are hashed.
    pub fn encode(&self) -> String {
        // Serializing these plain types cannot fail (string keys only, no failing
        // Serialize impls); an empty body would fail verification loudly.
        let tagged = serde_json::to_value(&self.data).unwrap_or_default();
        let details = tagged
            .get("details")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let wire = Wire {
            seq: self.seq,
            time: self.time,
            kind: self.data.kind(),
            account: self.account.clone(),
            session: self.session,
            prev: self.prev.clone(),
            version: self.private.map(|_| BODY_VERSION),
            salt: self.private.map(|p| hex::encode(p.salt)),
            account_index: self.private.and_then(|p| p.link).map(|l| l.index),
            account_prev: self
                .private
                .and_then(|p| p.link)
                .map(|l| hex::encode(l.prev)),
            on_behalf_of: self.on_behalf_of.clone(),
            ticket: self.ticket.clone(),
            actor: self.actor.clone(),
            summary: self.summary.clone(),
            details,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a stored body.
    pub fn decode(text: &str) -> Result<Self, BodyError> {
        let w: Wire<String, serde_json::Value> = serde_json::from_str(text)?;
        let private = match (w.version, w.salt, w.account_index, w.account_prev) {
            (None, None, None, None) => None,
            (Some(BODY_VERSION), Some(salt), index, prev) => {
                let link = match (index, prev) {
                    (Some(index), Some(prev)) => Some(AccountLink {
                        index,
                        prev: hex_array(&prev, "its account_prev is not a hash")?,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(BodyError::Version(
                            "account_index and account_prev go together",
                        ));
                    }
                };
                if link.is_some() != w.account.is_some() {
                    return Err(BodyError::Version(
                        "a version 2 body links exactly the events that have an account",
                    ));
                }
                Some(Private {
                    salt: hex_array(&salt, "its salt is not 32 hex digits")?,
                    link,
                })
            }
            (Some(BODY_VERSION), None, _, _) => {
                return Err(BodyError::Version("a version 2 body has a salt"));
            }
            (Some(_), _, _, _) => return Err(BodyError::Version("an unknown body version")),
            (None, _, _, _) => {
                return Err(BodyError::Version(
                    "salt and account link fields come with a version",
                ));
            }
        };
        let data: EventData = serde_json::from_value(serde_json::to_value(Tagged {
            kind: w.kind,
            details: w.details,
        })?)?;
        Ok(Self {
            seq: w.seq,
            time: w.time,
            data,
            actor: w.actor,
            account: w.account,
            on_behalf_of: w.on_behalf_of,
            session: w.session,
            ticket: w.ticket,
            summary: w.summary,
            prev: w.prev,
            private,
        })
    }

    /// The event's kind.
    pub fn kind(&self) -> &'static str {
        self.data.kind()
    }
}

/// Writes the exact beginning every body with these index values has:
/// `{"seq":…,"time":…,"kind":…,"account":…,"session":…,"prev":"…"`. Strings are escaped
/// as JSON, so different values always give different prefixes.
pub fn write_index_prefix(
    out: &mut String,
    seq: u64,
    time: i64,
    kind: &str,
    account: Option<&str>,
    session: Option<&str>,
    prev_hex: &str,
) {
    use std::fmt::Write;
    fn json_str(out: &mut String, v: Option<&str>) {
        match v {
            Some(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
            None => out.push_str("null"),
        }
    }
    out.clear();
    let _ = write!(out, "{{\"seq\":{seq},\"time\":{time},\"kind\":");
    json_str(out, Some(kind));
    out.push_str(",\"account\":");
    json_str(out, account);
    out.push_str(",\"session\":");
    json_str(out, session);
    out.push_str(",\"prev\":");
    json_str(out, Some(prev_hex));
}

/// The `account_index` a version 2 body states, if it has one (read without decoding
/// the rest of the event).
pub fn account_index_of(body: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Index {
        account_index: Option<u64>,
    }
    serde_json::from_str::<Index>(body).ok()?.account_index
}

/// The index fields of a body, read by a full parse: used to explain a mismatch found by
/// the prefix comparison.
#[derive(Debug, Deserialize)]
pub struct BodyIndex {
    /// Sequence number.
    pub seq: u64,
    /// Time.
    pub time: i64,
    /// Kind.
    pub kind: String,
    /// Account.
    pub account: Option<String>,
    /// Session.
    pub session: Option<String>,
    /// Previous leaf hash, hex.
    pub prev: String,
}

impl BodyIndex {
    /// Reads the index fields of a body.
    pub fn read(text: &str) -> Result<Self, BodyError> {
        Ok(serde_json::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StaffId;
    use crate::staff::{DisplayName, Email, StaffRef};

    #[test]
    fn everything_done_inside_a_session_is_on_behalf_of_its_account() {
        use crate::account::AccountRef;
        use crate::ids::{AccountId, SessionId};
        let account = AccountRef {
            id: AccountId::parse("acme").expect("id"),
            name: DisplayName::parse("Acme Co").expect("name"),
        };
        let ticket = TicketRef::try_from("#1".to_owned()).expect("ticket");
        let session = SessionId::random();
        let inside = [
            EventData::PageViewed {
                session,
                account: account.clone(),
                ticket: ticket.clone(),
                path: "/".into(),
                description: "viewed /".into(),
            },
            EventData::ActionTaken {
                session,
                account: account.clone(),
                ticket: ticket.clone(),
                description: "d".into(),
                changes: vec![],
                status: None,
                path: Some("/".into()),
            },
            EventData::DataRead {
                session,
                account: account.clone(),
                ticket: ticket.clone(),
                method: "GET".into(),
                path: "/api".into(),
                description: "read /api".into(),
            },
            EventData::LiveMessage {
                session,
                account: account.clone(),
                ticket: ticket.clone(),
                path: "/live".into(),
                bytes: 2,
                fields: vec![],
            },
            EventData::AnswerRefused {
                session,
                account: account.clone(),
                ticket: ticket.clone(),
                method: "GET".into(),
                path: "/".into(),
                why: "w".into(),
            },
            EventData::ActionBlocked {
                session,
                account: account.clone(),
                ticket: ticket.clone(),
                method: "POST".into(),
                path: "/".into(),
                capability: None,
                why: "w".into(),
            },
        ];
        for data in inside {
            let ctx = data.context();
            assert_eq!(
                ctx.on_behalf_of.as_ref(),
                Some(&account.id),
                "{}",
                data.kind()
            );
            assert_eq!(ctx.session, Some(session));
        }
    }

    #[test]
    fn bodies_round_trip_and_start_with_their_index_prefix() {
        let staff = StaffRef {
            id: StaffId::new(1).expect("id"),
            email: Email::parse("sarah@example.com").expect("email"),
            name: DisplayName::parse("Sarah \"Quotes\" Lee").expect("name"),
        };
        let body = NewEvent::new(
            Actor::Staff(staff.clone()),
            EventData::StaffDisabled { staff },
        )
        .into_body(7, Timestamp::from_millis(99), &[1; 32]);
        let text = body.encode();
        assert_eq!(EventBody::decode(&text).expect("decode"), body);
        let mut prefix = String::new();
        write_index_prefix(
            &mut prefix,
            7,
            99,
            "staff.disabled",
            None,
            None,
            &hex::encode([1u8; 32]),
        );
        assert!(text.starts_with(&prefix), "{text}");
        write_index_prefix(
            &mut prefix,
            7,
            99,
            "staff.disabled",
            Some("acme"),
            None,
            &hex::encode([1u8; 32]),
        );
        assert!(!text.starts_with(&prefix));
    }
}
