//! Customer accounts: added from the command line for small set-ups or kept in step by the
//! product (`PUT /api/v1/accounts/{id}` with an app key); each change recorded, including
//! which flags were removed and by whom.

use super::{Service, ServiceError, ServiceResult};
use actas_core::account::{AccountFlag, Consent};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::AccountId;
use actas_core::staff::DisplayName;
use actas_store::{Account, Change, Unit};

impl Service {
    /// Creates or updates an account's name and flags, keeping its consent setting.
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
        let existing = self.store.account(&id).await?;
        let removed: Vec<AccountFlag> = existing
            .as_ref()
            .map(|a| {
                a.flags
                    .iter()
                    .filter(|f| !parsed.contains(f))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let consent = existing.as_ref().map_or(Consent::Allowed, |a| a.consent);
        let account = Account {
            id: id.clone(),
            name: name.clone(),
            flags: parsed.clone(),
            consent,
        };
        let event = NewEvent::new(
            actor,
            EventData::AccountUpdated {
                account: account.to_ref(),
                flags: parsed.clone(),
                created: existing.is_none(),
                removed,
            },
        );
        self.store
            .commit(Unit::change(
                Change::PutAccount {
                    id,
                    name,
                    flags: parsed,
                    consent,
                },
                event,
            ))
            .await?;
        Ok(account)
    }

    /// An account by id, or a clear "not found".
    pub async fn account(&self, id: &AccountId) -> ServiceResult<Account> {
        self.store
            .account(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no account {id}")))
    }
}
