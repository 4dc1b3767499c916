//! The allow-list: who may act as customers, up to which risk. Kept by directors; every
//! change is a ledger event in the director's name with their reason.

use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::scope::Risk;
use actas_core::session::EndReason;
use actas_core::staff::Email;
use actas_core::text::Note;
use actas_store::{Change, SessionsOf, Unit};

/// What a director asks of the allow-list.
#[derive(Debug, Clone)]
pub enum AllowChange {
    /// Allow up to this risk.
    Grant(Risk),
    /// Keep the grant as it is, after its review (access recertification).
    Confirm,
    /// Remove from the list.
    Revoke,
}

impl Service {
    /// Grants or revokes, as the director `by`, with a reason.
    pub async fn change_allow_list(
        &self,
        email: &Email,
        change: AllowChange,
        by: &Email,
        reason: &str,
    ) -> ServiceResult<()> {
        let reason = Note::parse(reason).map_err(|e| ServiceError::invalid("reason", e))?;
        let director = self.director(by).await?;
        let staff = self.active_staff(email, "email").await?;
        let actor = Actor::Staff(director.to_ref());
        let unit = match change {
            AllowChange::Grant(Risk::Forbidden) => {
                return Err(ServiceError::invalid(
                    "max-risk",
                    "forbidden capabilities can never be granted; use low, medium or high",
                ));
            }
            AllowChange::Grant(max_risk) => {
                // A lower level applies at once: a running session above it ends, found
                // in the same transaction.
                let who = staff.to_ref();
                Unit::new(
                    vec![
                        Change::GrantAllow {
                            staff: staff.id,
                            max_risk,
                            by: director.id,
                            reason: reason.clone(),
                        },
                        Change::EndSessionsOf {
                            whose: SessionsOf::StaffAbove {
                                staff: staff.id,
                                risk: max_risk,
                            },
                            reason: EndReason::RevokedByAdmin,
                            at: Timestamp::now(),
                        },
                    ],
                    move |applied| {
                        let mut events = vec![NewEvent::new(
                            actor.clone(),
                            EventData::AllowGranted {
                                staff: who,
                                max_risk,
                                reason,
                            },
                        )];
                        events.extend(super::sessions::ended_events(applied, &actor));
                        events
                    },
                )
            }
            AllowChange::Confirm if staff.id == director.id => {
                return Err(ServiceError::Forbidden(
                    "another director must review your own access".into(),
                ));
            }
            AllowChange::Confirm => {
                let Some(entry) = self.store.allowed(staff.id).await? else {
                    return Err(ServiceError::Conflict(format!(
                        "{email} is not on the allow-list"
                    )));
                };
                let (who, max_risk) = (staff.to_ref(), entry.max_risk);
                Unit::new(
                    vec![Change::ConfirmAllow {
                        staff: staff.id,
                        by: director.id,
                    }],
                    move |_| {
                        vec![NewEvent::new(
                            actor,
                            EventData::AllowConfirmed {
                                staff: who,
                                max_risk,
                                reason,
                            },
                        )]
                    },
                )
            }
            AllowChange::Revoke => {
                if self.store.allowed(staff.id).await?.is_none() {
                    return Err(ServiceError::Conflict(format!(
                        "{email} is not on the allow-list"
                    )));
                }
                // Off the list means out of the account too: their running session is
                // found and ended in the same transaction.
                let who = staff.to_ref();
                Unit::new(
                    vec![
                        Change::RevokeAllow {
                            staff: staff.id,
                            by: director.id,
                            reason: reason.clone(),
                        },
                        Change::EndSessionsOf {
                            whose: SessionsOf::Staff(staff.id),
                            reason: EndReason::RevokedByAdmin,
                            at: Timestamp::now(),
                        },
                    ],
                    move |applied| {
                        let mut events = vec![NewEvent::new(
                            actor.clone(),
                            EventData::AllowRevoked { staff: who, reason },
                        )];
                        events.extend(super::sessions::ended_events(applied, &actor));
                        events
                    },
                )
            }
        };
        self.store.commit(unit).await?;
        Ok(())
    }
}
