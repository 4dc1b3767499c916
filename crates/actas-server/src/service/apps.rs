//! App keys: how the product calls actas's customer-side API. A director creates one (shown
//! once, stored as a SHA-256), optionally with a webhook for session notifications (its
//! HMAC secret shown once too), and can revoke it. Keys are separate from staff sign-in:
//! they start with `actas_app_`, are looked up in their own table, and open only the
//! customer-side endpoints.

use super::auth::{Secret, secret_hash};
use super::sessions::random_hex;
use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::app::{AppName, AppRef};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::staff::Email;
use actas_store::{AppKey, Applied, Change, StoreError, Unit};

/// Every app key starts with this, so it can't be mistaken for a staff API token.
pub const APP_KEY_PREFIX: &str = "actas_app_";

/// App keys remembered by [`Service::remembered_app`] before the memory is cleared.
const APP_KEYS_KEPT: usize = 1024;

/// A new app key and, if it has a webhook, the secret its notifications are signed with.
#[derive(Debug)]
pub struct NewAppKey {
    /// The app.
    pub app: AppRef,
    /// The key (shown once).
    pub key: Secret,
    /// The webhook's HMAC secret (shown once), if a webhook was given.
    pub webhook_secret: Option<Secret>,
}

/// Checks a webhook address: absolute http or https, with a host.
fn webhook_url(text: &str) -> ServiceResult<String> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| ServiceError::invalid("webhook", format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ServiceError::invalid(
            "webhook",
            "give an http:// or https:// address with a host",
        ));
    }
    Ok(url.to_string())
}

impl Service {
    /// Creates an app key. `by` is the director doing it.
    pub async fn create_app_key(
        &self,
        by: &Email,
        name: &str,
        webhook: Option<&str>,
    ) -> ServiceResult<NewAppKey> {
        let director = self.director(by).await?;
        let name = AppName::parse(name).map_err(|e| ServiceError::invalid("name", e))?;
        let webhook = webhook.map(webhook_url).transpose()?;
        let key = format!("{APP_KEY_PREFIX}{}", random_hex(32)?);
        let webhook_secret = match webhook {
            Some(_) => Some(format!("whsec_{}", random_hex(32)?)),
            None => None,
        };
        let actor = Actor::Staff(director.to_ref());
        let event_name = name.clone();
        let event_webhook = webhook.clone();
        self.store
            .commit(Unit::new(
                vec![Change::AddAppKey {
                    name: name.clone(),
                    key_hash: secret_hash(&key),
                    webhook_url: webhook,
                    webhook_secret: webhook_secret.clone(),
                    by: Some(director.id),
                    at: Timestamp::now(),
                }],
                move |applied| {
                    let id = applied
                        .iter()
                        .find_map(|a| match a {
                            Applied::App(id) => Some(*id),
                            _ => None,
                        })
                        .unwrap_or_default();
                    vec![NewEvent::new(
                        actor,
                        EventData::AppKeyCreated {
                            app: AppRef {
                                id,
                                name: event_name,
                            },
                            webhook: event_webhook,
                        },
                    )]
                },
            ))
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => {
                    ServiceError::Conflict(format!("there is already an app key named {name}"))
                }
                other => other.into(),
            })?;
        let app = self
            .store
            .app_keys()
            .await?
            .into_iter()
            .find(|k| k.app.name == name)
            .map(|k| k.app)
            .ok_or_else(|| {
                ServiceError::Unexpected(StoreError::Unexpected(
                    "the app key was written but can't be read back".into(),
                ))
            })?;
        Ok(NewAppKey {
            app,
            key: Secret::new(key),
            webhook_secret: webhook_secret.map(Secret::new),
        })
    }

    /// Revokes an app key by name; from then on it gets 401.
    pub async fn revoke_app_key(&self, by: &Email, name: &str) -> ServiceResult<AppRef> {
        let director = self.director(by).await?;
        let name = AppName::parse(name).map_err(|e| ServiceError::invalid("name", e))?;
        let key = self
            .store
            .app_keys()
            .await?
            .into_iter()
            .find(|k| k.app.name == name)
            .ok_or_else(|| ServiceError::NotFound(format!("there is no app key named {name}")))?;
        if key.revoked_at.is_some() {
            return Err(ServiceError::Conflict(format!(
                "the app key {name} is already revoked"
            )));
        }
        self.store
            .commit(Unit::change(
                Change::RevokeAppKey {
                    id: key.app.id,
                    at: Timestamp::now(),
                },
                NewEvent::new(
                    Actor::Staff(director.to_ref()),
                    EventData::AppKeyRevoked {
                        app: key.app.clone(),
                    },
                ),
            ))
            .await?;
        Ok(key.app)
    }

    /// Every app key, revoked ones too.
    pub async fn app_keys(&self) -> ServiceResult<Vec<AppKey>> {
        Ok(self.store.app_keys().await?)
    }

    /// The app a presented key belongs to, as this process remembers it: only for
    /// writes that check the key again in their own transaction
    /// ([`actas_store::Change::RequireAppKey`]), which is what
    /// [`Service::record_activities`] does.
    pub async fn remembered_app(&self, key: &str) -> ServiceResult<AppRef> {
        let hash = secret_hash(key);
        let known = self
            .app_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&hash)
            .cloned();
        if let Some(app) = known {
            return Ok(app);
        }
        let app = self.authenticate_app(key).await?;
        let mut cache = self
            .app_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= APP_KEYS_KEPT {
            cache.clear();
        }
        cache.insert(hash, app.clone());
        Ok(app)
    }

    /// Forgets a remembered app key (its commit found it revoked).
    pub(super) fn forget_app(&self, app: i64) {
        self.app_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, a| a.id != app);
    }

    /// The app a presented key belongs to, if it is a live app key (read now).
    pub async fn authenticate_app(&self, key: &str) -> ServiceResult<AppRef> {
        let refused = || ServiceError::Unauthenticated("this app key is not valid".into());
        if !key.starts_with(APP_KEY_PREFIX) {
            return Err(refused());
        }
        self.store
            .app_key_by_hash(&secret_hash(key))
            .await?
            .map(|k| k.app)
            .ok_or_else(refused)
    }
}
