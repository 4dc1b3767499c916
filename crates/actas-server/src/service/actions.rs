//! Signed actions (`signed_action = true` routes): a change the gateway holds, the agent
//! confirms on the console after proving again who they are, and the gateway then sends
//! with its ledger event, signed by the ledger key, as the `Actas-Receipt` header.
//!
//! Each step is one unit in the writer: held (the request and the `session.action_held`
//! event together), confirmed once by its own agent (a send token's hash kept), sent once
//! (the token used and the `session.signed_action` event together, before the product
//! gets anything), all only while the session stands.

use super::auth::{Secret, secret_hash};
use super::gateway::GatewayContext;
use super::sessions::random_hex;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, FieldChange, NewEvent};
use actas_core::ids::StaffId;
use actas_store::{Change, EventFilter, HeldAction, Unit};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a held action can be confirmed and sent.
pub const HOLD_FOR: Duration = Duration::from_secs(10 * 60);

/// A change to hold, as the gateway read it.
pub struct Hold {
    /// The method the product will receive.
    pub method: String,
    /// The canonical path.
    pub path: String,
    /// The query, as it will be sent.
    pub query: Option<String>,
    /// The body's `Content-Type`.
    pub content_type: Option<String>,
    /// The body, exactly as it will be sent.
    pub body: Vec<u8>,
    /// The request headers it will be sent with.
    pub headers: Vec<(String, String)>,
    /// The route's description.
    pub description: String,
    /// What it changes, masked.
    pub changes: Vec<FieldChange>,
}

impl Hold {
    /// An upper estimate of its receipt's size in bytes, before the event exists, for the
    /// session `ctx`: the event's fixed fields (ids, salt, links, times: well under
    /// 1 KiB), who acted as whom for which ticket, the description and path, each in its
    /// data and in its summary, the changes as JSON and in words (quotes as three UTF-8
    /// bytes each), the way they confirm (a provider's name), all base64url-encoded,
    /// with the header and signature.
    pub fn receipt_estimate(&self, ctx: &GatewayContext) -> usize {
        let changes = serde_json::to_string(&self.changes).map_or(usize::MAX / 8, |t| t.len());
        let path = self.path.len() + self.query.as_ref().map_or(0, String::len);
        let who = ctx.staff.email.as_str().len()
            + ctx.staff.name.as_str().len()
            + ctx.account.id.as_str().len()
            + ctx.account.name.as_str().len()
            + ctx.ticket.as_str().len();
        let body = 1024 + 256 + 2 * (who + self.description.len() + path) + 3 * changes;
        body * 4 / 3 + 256
    }
}

/// A held action as its agent sees it on the console.
pub struct HeldView {
    /// The action.
    pub action: HeldAction,
    /// Whose account it changes.
    pub account: String,
    /// Whether it can still be confirmed.
    pub open: bool,
}

/// A confirmed action, sent: what the gateway sends the product.
pub struct Sending {
    /// The action.
    pub action: HeldAction,
    /// Its `session.signed_action` event, signed: the `Actas-Receipt` header.
    pub receipt: String,
    /// The event's number in the ledger.
    pub seq: u64,
}

impl Service {
    /// Holds a signed action in a live session, with its `session.action_held` event.
    /// The answer is its id.
    pub async fn hold_action(&self, ctx: &GatewayContext, hold: Hold) -> ServiceResult<String> {
        let info = ctx.session.info();
        let now = Timestamp::now();
        let id = random_hex(16)?;
        let event = NewEvent::new(
            Actor::Staff(ctx.staff.clone()),
            EventData::ActionHeld {
                session: info.id,
                account: ctx.account.clone(),
                ticket: ctx.ticket.clone(),
                action: id.clone(),
                description: hold.description.clone(),
                changes: hold.changes.clone(),
                path: hold.path.clone(),
            },
        );
        let held = HeldAction {
            id: id.clone(),
            session: info.id,
            staff: ctx.staff.id,
            method: hold.method,
            path: hold.path,
            query: hold.query,
            content_type: hold.content_type,
            body: hold.body,
            headers: hold.headers,
            description: hold.description,
            changes: hold.changes,
            held_at: now,
            expires_at: now.plus(HOLD_FOR),
            confirmed_with: None,
            sent_at: None,
        };
        self.store
            .commit(Unit::new(
                vec![
                    Change::RequireLiveSession {
                        id: info.id,
                        at: now,
                    },
                    Change::HoldAction(Box::new(held)),
                ],
                move |_| vec![event],
            ))
            .await?;
        Ok(id)
    }

    /// A held action, for the agent who sent it (to anyone else it does not exist).
    pub async fn held_action(&self, staff: StaffId, id: &str) -> ServiceResult<HeldView> {
        let not_found = || ServiceError::NotFound("that held change was not found".into());
        let action = self
            .store
            .held_action(id)
            .await?
            .filter(|a| a.staff == staff)
            .ok_or_else(not_found)?;
        let session = self
            .store
            .session(action.session)
            .await?
            .ok_or_else(not_found)?;
        let account = self.account(&session.info().account).await?;
        let open = action.confirmed_with.is_none()
            && action.sent_at.is_none()
            && action.expires_at > Timestamp::now()
            && matches!(session, actas_core::session::Session::Active(_));
        Ok(HeldView {
            action,
            account: account.name.to_string(),
            open,
        })
    }

    /// Records, on the account's history, that `staff` tried to confirm their held
    /// action `id` with `tried_with` and could not prove who they are (`reason`); it
    /// stays held. The answer is the refusal to give them.
    pub async fn action_not_confirmed(
        &self,
        staff: StaffId,
        id: &str,
        tried_with: &str,
        reason: &str,
    ) -> ServiceResult<ServiceError> {
        let view = self.held_action(staff, id).await?;
        let session = self
            .store
            .session(view.action.session)
            .await?
            .ok_or_else(|| ServiceError::NotFound("that held change was not found".into()))?;
        let info = session.info();
        let account = self.account(&info.account).await?.to_ref();
        let ticket = self.request(info.request).await?.ticket;
        let event = NewEvent::new(
            Actor::Staff(self.staff_ref(staff).await?),
            EventData::ActionNotConfirmed {
                session: info.id,
                account,
                ticket,
                action: id.to_owned(),
                description: view.action.description.clone(),
                tried_with: tried_with.to_owned(),
                reason: reason.to_owned(),
            },
        );
        self.store.append(event).await?;
        Ok(ServiceError::Forbidden(format!(
            "The change was not confirmed: {reason}."
        )))
    }

    /// Confirms a held action for the agent who sent it, once they proved again who they
    /// are (`confirmed_with` says how, `authenticated_at` when): the answer is the
    /// single-use token the gateway sends it with.
    pub async fn confirm_action(
        &self,
        staff: StaffId,
        id: &str,
        confirmed_with: &str,
        authenticated_at: Timestamp,
    ) -> ServiceResult<Secret> {
        let view = self.held_action(staff, id).await?;
        // Identity providers give `auth_time` in whole seconds: a sign-in in the second
        // the change was held counts as after it.
        let held_second = Timestamp::from_millis(view.action.held_at.as_millis() / 1000 * 1000);
        if authenticated_at < held_second {
            return Err(ServiceError::invalid(
                "password",
                "prove who you are again, after the change was held, to confirm it",
            ));
        }
        if !view.open {
            return Err(ServiceError::Conflict(
                "that change has already been confirmed, or the time to confirm it has passed"
                    .into(),
            ));
        }
        let token = random_hex(32)?;
        let now = Timestamp::now();
        self.store
            .commit(Unit::new(
                vec![
                    Change::RequireLiveSession {
                        id: view.action.session,
                        at: now,
                    },
                    Change::ConfirmAction {
                        id: id.to_owned(),
                        staff,
                        token_hash: secret_hash(&token),
                        confirmed_with: confirmed_with.to_owned(),
                        at: now,
                    },
                ],
                |_| vec![],
            ))
            .await?;
        Ok(Secret::new(token))
    }

    /// Sends a confirmed action in its own session, once: uses its token and records
    /// its `session.signed_action` event together, then signs that event as the receipt.
    pub async fn send_action(
        &self,
        ctx: &GatewayContext,
        id: &str,
        token: &str,
    ) -> ServiceResult<Sending> {
        let info = ctx.session.info();
        let not_found = || ServiceError::NotFound("that confirmed change was not found".into());
        let action = self
            .store
            .held_action(id)
            .await?
            .filter(|a| a.session == info.id)
            .ok_or_else(not_found)?;
        let confirmed_with = action.confirmed_with.clone().ok_or_else(|| {
            ServiceError::Conflict("that change has not been confirmed on the console".into())
        })?;
        let now = Timestamp::now();
        let path = match &action.query {
            Some(q) => format!("{}?{q}", action.path),
            None => action.path.clone(),
        };
        let event = NewEvent::new(
            Actor::Staff(ctx.staff.clone()),
            EventData::SignedAction {
                session: info.id,
                account: ctx.account.clone(),
                ticket: ctx.ticket.clone(),
                action: action.id.clone(),
                description: action.description.clone(),
                changes: action.changes.clone(),
                method: action.method.clone(),
                path,
                body_sha256: hex::encode(Sha256::digest(&action.body)),
                confirmed_with,
            },
        );
        let appended = self
            .store
            .commit(Unit::new(
                vec![
                    Change::RequireLiveSession {
                        id: info.id,
                        at: now,
                    },
                    // Its receipt is signed with this instance's ledger key.
                    Change::RequireLedgerKeyCurrent,
                    Change::SendAction {
                        id: id.to_owned(),
                        token_hash: secret_hash(token),
                        at: now,
                    },
                ],
                move |_| vec![event],
            ))
            .await?;
        let seq = appended
            .first()
            .map(|a| a.seq)
            .ok_or_else(|| ServiceError::Conflict("the signed change was not recorded".into()))?;
        let recorded = self
            .store
            .events(&EventFilter::default(), seq - 1, 1)
            .await?
            .into_iter()
            .next()
            .filter(|e| e.body.seq == seq)
            .ok_or_else(|| ServiceError::Conflict("the signed change was not recorded".into()))?;
        Ok(Sending {
            receipt: self.store.ledger_key().sign_receipt(&recorded.raw),
            action,
            seq,
        })
    }
}
