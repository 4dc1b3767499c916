//! Adding, listing and deactivating staff.

use super::{Service, ServiceError, ServiceResult};
use crate::password::{self, Password};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::session::EndReason;
use actas_core::staff::{DisplayName, Email, Role, StaffRef};
use actas_store::{Applied, Change, StaffRecord, Unit};

impl Service {
    /// Finds an active staff member by email, or says plainly who is missing.
    pub async fn active_staff(
        &self,
        email: &Email,
        field: &'static str,
    ) -> ServiceResult<StaffRecord> {
        match self.store.staff_by_email(email).await? {
            Some(s) if s.active => Ok(s),
            Some(_) => Err(ServiceError::invalid(
                field,
                format!("{email} is deactivated"),
            )),
            None => Err(ServiceError::invalid(
                field,
                format!("there is no staff member with the email {email}"),
            )),
        }
    }

    /// Finds an active director by email (the one who performs an administrative act).
    pub async fn director(&self, email: &Email) -> ServiceResult<StaffRecord> {
        let d = self.active_staff(email, "by").await?;
        if d.role == Role::Director {
            Ok(d)
        } else {
            Err(ServiceError::Forbidden(format!(
                "{} is {} {}, and only a director can do this",
                d.email,
                if d.role == Role::Agent || d.role == Role::Auditor {
                    "an"
                } else {
                    "a"
                },
                d.role
            )))
        }
    }

    /// Adds a staff member. `by` is the director doing it, or `None` for the operator
    /// setting actas up from the command line (recorded as actas itself).
    pub async fn add_staff(
        &self,
        email: Email,
        name: DisplayName,
        role: Role,
        password: Password,
        by: Option<&Email>,
    ) -> ServiceResult<StaffRef> {
        let actor = match by {
            Some(b) => Actor::Staff(self.director(b).await?.to_ref()),
            None => Actor::System,
        };
        if self.store.staff_by_email(&email).await?.is_some() {
            return Err(ServiceError::invalid(
                "email",
                format!("a staff member with the email {email} already exists"),
            ));
        }
        let password_hash = password::hash(password)
            .await
            .map_err(|e| ServiceError::invalid("password", e))?;
        let (e, n) = (email.clone(), name.clone());
        let change = Change::AddStaff {
            email: email.clone(),
            name,
            role,
            password_hash,
        };
        self.store
            .commit(Unit::new(vec![change], move |applied| {
                applied
                    .iter()
                    .filter_map(|a| match a {
                        Applied::Staff(id) => Some(*id),
                        _ => None,
                    })
                    .map(|id| {
                        let staff = StaffRef {
                            id,
                            email: e.clone(),
                            name: n.clone(),
                        };
                        NewEvent::new(actor.clone(), EventData::StaffAdded { staff, role })
                    })
                    .collect()
            }))
            .await?;
        let added = self
            .store
            .staff_by_email(&email)
            .await?
            .ok_or_else(|| ServiceError::Conflict("the staff member was not added".into()))?;
        Ok(added.to_ref())
    }

    /// Deactivates a staff member and, in the same transaction, ends their active session
    /// (`staff_disabled`).
    pub async fn disable_staff(
        &self,
        email: &Email,
        by: Option<&Email>,
    ) -> ServiceResult<StaffRef> {
        let actor = match by {
            Some(b) => Actor::Staff(self.director(b).await?.to_ref()),
            None => Actor::System,
        };
        let staff = self.active_staff(email, "email").await?;
        let mut changes = Vec::new();
        let mut events = Vec::new();
        let now = Timestamp::now();
        if let Some(active) = self.store.active_session_of(staff.id).await? {
            // Through `Session::end`, so a limit that already passed is what gets recorded.
            let mut session = actas_core::session::Session::Active(active);
            let ended = session
                .end(EndReason::StaffDisabled, now)
                .map_err(|e| ServiceError::Conflict(e.to_string()))?
                .clone();
            let (change, event) = self.ending(&ended, actor.clone()).await?;
            changes.push(change);
            events.push(event);
        }
        changes.push(Change::DisableStaff(staff.id));
        events.push(NewEvent::new(
            actor,
            EventData::StaffDisabled {
                staff: staff.to_ref(),
            },
        ));
        self.store
            .commit(Unit::new(changes, move |_| events))
            .await?;
        Ok(staff.to_ref())
    }
}
