//! The customer watching (the seed's "act on your account ourselves while you are
//! watching"): an account's events as they commit, for the product to show its customer
//! live. Read from the ledger, so every instance serves the same stream and a client that
//! reconnects with the last sequence number it saw misses nothing.

use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData};
use actas_core::ids::AccountId;
use actas_store::{EventFilter, RecordedEvent};
use serde::Serialize;

/// One event on an account, as its customer's live view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveActivity {
    /// The ledger sequence number (the stream's event id).
    pub seq: u64,
    /// When.
    pub time: Timestamp,
    /// The event kind, e.g. `session.page_viewed`.
    pub kind: String,
    /// The sentence.
    pub summary: String,
    /// The staff member acting, by name, for events in a session.
    pub staff: Option<String>,
    /// The session.
    pub session: Option<String>,
    /// Whether a support session is running after this event (`false` once it ended).
    pub in_session: bool,
    /// What the staff member is doing, in words ("viewed /payments"), for page views and
    /// changes.
    pub doing: Option<String>,
}

impl From<&RecordedEvent> for LiveActivity {
    fn from(e: &RecordedEvent) -> Self {
        let b = &e.body;
        let staff = match &b.actor {
            Actor::Staff(s) => Some(s.name.to_string()),
            _ => None,
        };
        let doing = match &b.data {
            EventData::PageViewed { description, .. }
            | EventData::ActionTaken { description, .. } => Some(description.clone()),
            EventData::DataRead { .. } => Some("reading your account's data".to_owned()),
            EventData::SessionStarted { .. } => Some("started a support session".to_owned()),
            _ => None,
        };
        Self {
            seq: b.seq,
            time: b.time,
            kind: b.kind().to_owned(),
            summary: b.summary.clone(),
            staff,
            session: b.session.map(|s| s.to_string()),
            // Only what staff do inside a running session says they are in the account; a
            // note or the end comes after.
            in_session: matches!(
                b.data,
                EventData::SessionStarted { .. }
                    | EventData::PageViewed { .. }
                    | EventData::ActionTaken { .. }
                    | EventData::ActionBlocked { .. }
                    | EventData::DataRead { .. }
                    | EventData::LiveMessage { .. }
                    | EventData::FieldRevealed { .. }
                    | EventData::AnswerRefused { .. }
                    | EventData::HandoffReissued { .. }
            ),
            doing,
        }
    }
}

impl Service {
    /// The account's events after `after`, oldest first, at most `limit`.
    pub async fn account_activity_after(
        &self,
        id: &str,
        after: u64,
        limit: u32,
    ) -> ServiceResult<Vec<LiveActivity>> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        self.account(&id).await?;
        let filter = EventFilter {
            account: Some(id),
            ..EventFilter::default()
        };
        Ok(self
            .store
            .events(&filter, after, limit)
            .await?
            .iter()
            .map(LiveActivity::from)
            .collect())
    }

    /// Where the account's stream starts for a new watcher: its newest event.
    pub async fn account_activity_start(&self, id: &str) -> ServiceResult<u64> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        self.account(&id).await?;
        let filter = EventFilter {
            account: Some(id),
            ..EventFilter::default()
        };
        Ok(self
            .store
            .events_before(&filter, u64::MAX, 1)
            .await?
            .first()
            .map_or(0, |e| e.body.seq))
    }
}
