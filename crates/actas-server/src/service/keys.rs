//! Replacing the key that signs the gateway's assertions: a director's act, recorded.

use super::{Service, ServiceError, ServiceResult};
use crate::assertion::AssertionSigner;
use crate::config::DataDir;
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::staff::Role;
use actas_store::StaffRecord;

impl Service {
    /// Starts signing assertions with a new key; the old one stays published until its
    /// last assertion has expired. `by` is the director doing it (`None`: the operator,
    /// from the command line). Returns the old and new key ids.
    pub async fn rotate_assertion_key(
        &self,
        by: Option<&StaffRecord>,
        signer: &AssertionSigner,
        data: &DataDir,
    ) -> ServiceResult<(String, String)> {
        let actor = match by {
            Some(s) if s.active && s.role == Role::Director => Actor::Staff(s.to_ref()),
            Some(_) => {
                return Err(ServiceError::Forbidden(
                    "only a director can replace the assertion key".into(),
                ));
            }
            None => Actor::System,
        };
        // Refuse up front when the ledger can't be written, so a key is not replaced
        // without a record of it.
        self.store.ready().await?;
        let (old_kid, new_kid) = signer
            .rotate_in(data, Timestamp::now())
            .map_err(|e| ServiceError::Unexpected(actas_store::StoreError::unexpected(e)))?;
        self.store
            .append(NewEvent::new(
                actor,
                EventData::AssertionKeyRotated {
                    old_kid: old_kid.clone(),
                    new_kid: new_kid.clone(),
                },
            ))
            .await?;
        Ok((old_kid, new_kid))
    }
}
