//! Who may see what. Each role's reads take a handle that only this module mints, after
//! the role check, so a page or an API handler can't reach a lead's view without a
//! [`Lead`], whatever it forgets to check. The console and the JSON API get their handles
//! from the same functions, so the two can't drift apart.

use super::auth::Authenticated;
use super::{ServiceError, ServiceResult};
use actas_core::staff::Role;
use actas_store::StaffRecord;

/// A lead or a director: decides on requests and sees the approval queue.
#[derive(Debug, Clone)]
pub struct Lead(StaffRecord);

/// A director: keeps the allow-list and the product's app keys.
#[derive(Debug, Clone)]
pub struct Director(StaffRecord);

/// Someone who reads the activity log and any session's timeline: a lead, a director or
/// an auditor. Agents see only their own requests and sessions.
#[derive(Debug, Clone)]
pub struct Auditor(StaffRecord);

impl Lead {
    /// The lead's handle, or why not.
    pub fn of(who: &Authenticated) -> ServiceResult<Self> {
        match who.staff().role {
            Role::Lead | Role::Director => Ok(Self(who.staff().clone())),
            _ => Err(ServiceError::Forbidden(
                "only leads and directors decide on requests and review sessions".into(),
            )),
        }
    }

    /// Who.
    pub fn staff(&self) -> &StaffRecord {
        &self.0
    }
}

impl Director {
    /// The director's handle, or why not.
    pub fn of(who: &Authenticated) -> ServiceResult<Self> {
        match who.staff().role {
            Role::Director => Ok(Self(who.staff().clone())),
            _ => Err(ServiceError::Forbidden(
                "only directors keep the allow-list".into(),
            )),
        }
    }

    /// Who.
    pub fn staff(&self) -> &StaffRecord {
        &self.0
    }
}

impl Auditor {
    /// The reader's handle, or why not.
    pub fn of(who: &Authenticated) -> ServiceResult<Self> {
        match who.staff().role {
            Role::Lead | Role::Director | Role::Auditor => Ok(Self(who.staff().clone())),
            Role::Agent => Err(ServiceError::Forbidden(
                "the activity log is for leads, directors and auditors".into(),
            )),
        }
    }

    /// Who.
    pub fn staff(&self) -> &StaffRecord {
        &self.0
    }
}

/// What the signed-in person's role lets them open, for menus: the same checks as the
/// handles, so a link is shown exactly when the page behind it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abilities {
    /// The approval queue.
    pub decides: bool,
    /// The activity log and every session's timeline.
    pub reads_log: bool,
    /// The allow-list.
    pub keeps_allow_list: bool,
}

impl Abilities {
    /// What `who` may open.
    pub fn of(who: &Authenticated) -> Self {
        Self {
            decides: Lead::of(who).is_ok(),
            reads_log: Auditor::of(who).is_ok(),
            keeps_allow_list: Director::of(who).is_ok(),
        }
    }
}
