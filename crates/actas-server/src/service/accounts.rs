//! Customer accounts: added from the command line for small set-ups or kept in step by the
//! product (`PUT /api/v1/accounts/{id}` with an app key); each change recorded, including
//! which flags were removed and by whom.

use super::{Service, ServiceError, ServiceResult};
use actas_core::account::{AccountFlag, AccountRef};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::AccountId;
use actas_core::staff::DisplayName;
use actas_store::{Account, Applied, Change, Unit};

impl Service {
    /// Creates or updates an account's name and flags; its consent is the customer's and
    /// is never touched here. Which flags were removed is worked out from the row as the
    /// write found it, so two syncs at once each record what they really changed.
    pub async fn put_account(
        &self,
        id: &str,
        name: &str,
        flags: &[String],
        actor: Actor,
    ) -> ServiceResult<Account> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        let name = DisplayName::parse(name).map_err(|e| ServiceError::invalid("name", e))?;
        let mut parsed = Vec::new();
        for f in flags {
            let flag = AccountFlag::parse(f).map_err(|e| ServiceError::invalid("flag", e))?;
            if !parsed.contains(&flag) {
                parsed.push(flag);
            }
        }
        parsed.sort();
        let account = AccountRef {
            id: id.clone(),
            name: name.clone(),
        };
        let flags = parsed.clone();
        self.store
            .commit(Unit::new(
                vec![Change::PutAccount {
                    id: id.clone(),
                    name,
                    flags: parsed,
                }],
                move |applied| {
                    let before = match applied.first() {
                        Some(Applied::AccountBefore(before)) => before.as_ref(),
                        _ => None,
                    };
                    let removed = before
                        .map(|a| {
                            a.flags
                                .iter()
                                .filter(|f| !flags.contains(f))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    vec![NewEvent::new(
                        actor,
                        EventData::AccountUpdated {
                            account,
                            flags,
                            created: before.is_none(),
                            removed,
                        },
                    )]
                },
            ))
            .await?;
        self.account(&id).await
    }

    /// An account by id, or a clear "not found".
    pub async fn account(&self, id: &AccountId) -> ServiceResult<Account> {
        self.store
            .account(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no account {id}")))
    }
}
