//! Adding, listing and deactivating staff.

use super::{Service, ServiceError, ServiceResult};
use crate::password::{self, Password};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::session::EndReason;
use actas_core::staff::{DisplayName, Email, Role, StaffRef};
use actas_store::{Applied, Change, SessionsOf, StaffRecord, Unit};

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
        self.not_taken(&email).await?;
        let password_hash = password::hash(password)
            .await
            .map_err(|e| ServiceError::invalid("password", e))?;
        self.insert_staff(email, name, role, password_hash, by)
            .await
            .map(|s| s.to_ref())
    }

    /// Adds a staff member who signs in only through the identity provider (no actas
    /// password): `actas staff add --no-password`, for `provisioning = "pre"`.
    pub async fn add_staff_without_password(
        &self,
        email: Email,
        name: DisplayName,
        role: Role,
        by: Option<&Email>,
    ) -> ServiceResult<StaffRef> {
        self.not_taken(&email).await?;
        self.insert_staff(email, name, role, NO_PASSWORD.to_owned(), by)
            .await
            .map(|s| s.to_ref())
    }

    async fn not_taken(&self, email: &Email) -> ServiceResult<()> {
        if self.store.staff_by_email(email).await?.is_some() {
            return Err(ServiceError::invalid(
                "email",
                format!("a staff member with the email {email} already exists"),
            ));
        }
        Ok(())
    }

    /// Stores a new staff member with `password_hash` and records who added them (`by`,
    /// a director, or `None`: actas itself).
    async fn insert_staff(
        &self,
        email: Email,
        name: DisplayName,
        role: Role,
        password_hash: String,
        by: Option<&Email>,
    ) -> ServiceResult<StaffRecord> {
        let actor = match by {
            Some(b) => Actor::Staff(self.director(b).await?.to_ref()),
            None => Actor::System,
        };
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
        self.store
            .staff_by_email(&email)
            .await?
            .ok_or_else(|| ServiceError::Conflict("the staff member was not added".into()))
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
        // Their session, if any, is found and ended by the writer in the same transaction,
        // so one starting at this moment can't be missed.
        let changes = vec![
            Change::DisableStaff {
                staff: staff.id,
                at: Timestamp::now(),
            },
            Change::EndSessionsOf {
                whose: SessionsOf::Staff(staff.id),
                reason: EndReason::StaffDisabled,
                at: Timestamp::now(),
            },
        ];
        let who = staff.to_ref();
        self.store
            .commit(Unit::new(changes, move |applied| {
                let mut events = super::sessions::ended_events(applied, &actor);
                events.push(NewEvent::new(
                    actor,
                    EventData::StaffDisabled { staff: who },
                ));
                events
            }))
            .await?;
        Ok(staff.to_ref())
    }
}

/// The password hash of staff who only sign in through the identity provider: not a PHC
/// string, so no password ever matches it.
pub(crate) const NO_PASSWORD: &str = "!signs-in-through-the-identity-provider";

impl Service {
    /// Adds a staff member the identity provider made (a first sign-in under
    /// `just_in_time`, or its user sync): no password, never on the allow-list.
    pub(crate) async fn provision_staff(
        &self,
        email: Email,
        name: DisplayName,
        role: Role,
    ) -> ServiceResult<StaffRecord> {
        self.insert_staff(email, name, role, NO_PASSWORD.to_owned(), None)
            .await
    }
}
