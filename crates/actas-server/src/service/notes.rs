//! Support notes (the seed's "document what you did and why"): the staff member's own
//! words on a session, written as it ends or afterwards, recorded in the ledger, and so
//! shown on the session's timeline and in the customer's access history.

use super::{Service, ServiceError, ServiceResult};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::SessionId;
use actas_core::session::{EndReason, Session, SessionInfo};
use actas_core::text::Note;
use actas_store::{EventFilter, StaffRecord, Unit};

impl Service {
    /// Ends the caller's session (or, for a director, anyone's) with an optional note of
    /// what was done, committed with the end. When policy asks for a note after changes,
    /// the staff member's own session that made changes can't end without one.
    pub async fn end_session_with_note(
        &self,
        who: &StaffRecord,
        id: SessionId,
        note: &str,
    ) -> ServiceResult<Session> {
        let note = parse_note(note)?;
        let reason = self.end_reason_for(who, id).await?;
        if reason == EndReason::Manual
            && self
                .policy
                .session
                .note_required(self.made_changes(id).await?, note.is_some())
        {
            return Err(ServiceError::invalid(
                "note",
                "this session changed the customer's account: write what you did and why before ending it",
            ));
        }
        let staff = who.to_ref();
        let noted = if reason == EndReason::Manual {
            note
        } else {
            None
        };
        let (account, ticket) = self.account_and_ticket(id).await?;
        self.end_session_with(id, reason, Actor::Staff(who.to_ref()), move |ended| {
            Ok(noted
                .map(|note| {
                    NewEvent::new(
                        Actor::Staff(staff),
                        EventData::SupportNote {
                            session: ended.info.id,
                            account,
                            ticket,
                            note,
                        },
                    )
                })
                .into_iter()
                .collect())
        })
        .await
    }

    /// Adds a note to one of the caller's own sessions, running or ended.
    pub async fn add_session_note(
        &self,
        who: &StaffRecord,
        id: SessionId,
        note: &str,
    ) -> ServiceResult<()> {
        let note = parse_note(note)?
            .ok_or_else(|| ServiceError::invalid("note", "write what you did and why"))?;
        let info = self.session_info(id).await?;
        if info.staff != who.id {
            return Err(ServiceError::Forbidden(
                "only the staff member who acted can write the session's note".into(),
            ));
        }
        let (account, ticket) = self.account_and_ticket(id).await?;
        let event = NewEvent::new(
            Actor::Staff(who.to_ref()),
            EventData::SupportNote {
                session: id,
                account,
                ticket,
                note,
            },
        );
        self.store
            .commit(Unit::new(vec![], move |_| vec![event]))
            .await?;
        Ok(())
    }

    /// Whether the session made any change (a `session.action` in the ledger).
    pub async fn made_changes(&self, id: SessionId) -> ServiceResult<bool> {
        let filter = EventFilter {
            session: Some(id),
            kind: Some("session.action".into()),
            ..EventFilter::default()
        };
        Ok(!self.store.events(&filter, 0, 1).await?.is_empty())
    }

    async fn session_info(&self, id: SessionId) -> ServiceResult<SessionInfo> {
        Ok(self
            .store
            .session(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no session {id}")))?
            .info()
            .clone())
    }

    async fn account_and_ticket(
        &self,
        id: SessionId,
    ) -> ServiceResult<(actas_core::account::AccountRef, actas_core::text::TicketRef)> {
        let info = self.session_info(id).await?;
        let account = self.account(&info.account).await?.to_ref();
        let ticket = self.request(info.request).await?.ticket;
        Ok((account, ticket))
    }
}

fn parse_note(text: &str) -> ServiceResult<Option<Note>> {
    match text.trim() {
        "" => Ok(None),
        t => Note::parse(t)
            .map(Some)
            .map_err(|e| ServiceError::invalid("note", e)),
    }
}
