//! The identity provider's user sync (SCIM 2.0, spoken in `http::scim`): it adds staff,
//! and deactivates them the moment they leave — which ends their live session in the
//! same transaction (`staff_disabled`) and refuses their console cookie from then on.
//! Deactivated staff are never deleted: the ledger names them.

use super::{Service, ServiceError, ServiceResult};
use crate::service::auth::secret_hash;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::StaffId;
use actas_core::staff::{DisplayName, Email, Role};
use actas_store::{Change, StaffRecord, Unit};

impl Service {
    /// Whether `bearer` is the configured SCIM token (compared in constant time).
    pub fn directory_allows(&self, bearer: &str) -> bool {
        match &self.scim_token {
            Some(want) => subtle::ConstantTimeEq::ct_eq(&secret_hash(bearer)[..], &want[..]).into(),
            None => false,
        }
    }

    /// Whether the user sync is configured at all.
    pub fn directory_enabled(&self) -> bool {
        self.scim_token.is_some()
    }

    /// Every staff member, oldest first.
    pub async fn directory_users(&self) -> ServiceResult<Vec<StaffRecord>> {
        Ok(self.store.list_staff().await?)
    }

    /// One staff member by id.
    pub async fn directory_user(&self, id: StaffId) -> ServiceResult<StaffRecord> {
        self.store
            .staff(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no user {}", id.get())))
    }

    /// Adds a staff member the provider pushed: an agent without a password (they sign
    /// in through the provider), never on the allow-list; inactive if pushed so.
    pub async fn directory_create(
        &self,
        email: Email,
        name: DisplayName,
        active: bool,
    ) -> ServiceResult<StaffRecord> {
        if self.store.staff_by_email(&email).await?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "a staff member with the e-mail {email} already exists"
            )));
        }
        let staff = self.provision_staff(email, name, Role::Agent).await?;
        if !active {
            return self.directory_set_active(staff.id, false).await;
        }
        Ok(staff)
    }

    /// Deactivates (ending their live session) or reactivates a staff member; doing
    /// what is already so changes nothing.
    pub async fn directory_set_active(
        &self,
        id: StaffId,
        active: bool,
    ) -> ServiceResult<StaffRecord> {
        let staff = self.directory_user(id).await?;
        if staff.active != active {
            if active {
                let event = NewEvent::new(
                    Actor::System,
                    EventData::StaffReactivated {
                        staff: staff.to_ref(),
                    },
                );
                self.store
                    .commit(Unit::change(Change::ReactivateStaff(id), event))
                    .await?;
            } else {
                self.disable_staff(&staff.email, None).await?;
            }
        }
        self.directory_user(id).await
    }
}
