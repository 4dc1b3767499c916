//! Delivering notifications to the product: when a session on an account starts or ends,
//! the ledger writer puts a notification in the outbox in the same transaction as the
//! event, one per app with a webhook. This task sends them, signed (see
//! [`actas_core::webhook`]), and retries failures with exponential back-off, so a product
//! that is down for a while receives every notification once it is back.
//!
//! Every actas instance runs this task. Each round *claims* what is due (in the ledger
//! writer's transaction, skipping rows another transaction holds) with a lease long
//! enough to send them all, so one notification is sent by one instance; if that
//! instance dies before saying how the delivery went, the lease runs out and another
//! instance sends it (the `actas-webhook-id` header lets the product see a repeat).

use crate::service::Service;
use actas_core::Timestamp;
use actas_store::{Applied, Change, DueWebhook, Unit};
use std::time::Duration;
use tokio::sync::watch;

/// How delivery is paced.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryTiming {
    /// How often the outbox is read.
    pub poll: Duration,
    /// The wait after the first failure; it doubles with each further failure…
    pub first_retry: Duration,
    /// …up to this.
    pub max_retry: Duration,
    /// How long one delivery may take.
    pub timeout: Duration,
}

impl Default for DeliveryTiming {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The most notifications one round claims (and then sends one after another).
const CLAIM: u32 = 16;

impl DeliveryTiming {
    /// How long a round's claim hides its notifications from other instances: time to
    /// send every one of them at the longest, and then some.
    pub fn lease(&self) -> Duration {
        self.timeout
            .saturating_mul(CLAIM)
            .saturating_add(Duration::from_secs(10))
    }

    /// The wait before the next attempt after `failures` failures (at least 1).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doubled = self.first_retry.saturating_mul(
            1u32.checked_shl(failures.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        doubled.min(self.max_retry)
    }
}

/// Sends due notifications until `stopped` turns true.
pub async fn deliver(service: Service, timing: DeliveryTiming, mut stopped: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .timeout(timing.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5).min(timing.timeout))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "notifications can't be sent: no HTTP client");
            return;
        }
    };
    let mut tick = tokio::time::interval(timing.poll);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = deliver_due(&service, &client, timing).await {
                    tracing::warn!(error = %e, "the notification outbox could not be read");
                }
            }
            _ = stopped.changed() => break,
        }
    }
}

async fn deliver_due(
    service: &Service,
    client: &reqwest::Client,
    timing: DeliveryTiming,
) -> Result<(), actas_store::StoreError> {
    let now = Timestamp::now();
    // Idle is the usual case: a read, so an idle outbox never takes the ledger's lock.
    if !service.store().webhooks_due(now).await? {
        return Ok(());
    }
    let until = now.plus(timing.lease());
    let claimed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = claimed.clone();
    service
        .store()
        .commit(Unit::new(
            vec![Change::ClaimWebhooks {
                now,
                until,
                limit: CLAIM,
            }],
            move |applied| {
                if let Some(Applied::Webhooks(due)) = applied.first() {
                    *into
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = due.clone();
                }
                vec![]
            },
        ))
        .await?;
    let due: Vec<DueWebhook> = std::mem::take(
        &mut *claimed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for n in due {
        let change = match send(client, &n).await {
            Ok(()) => Change::WebhookDelivered {
                id: n.id,
                at: Timestamp::now(),
            },
            Err(why) => {
                tracing::warn!(app = %n.app.name, url = %n.url, error = %why, "a notification could not be delivered; it will be retried");
                Change::WebhookFailed {
                    id: n.id,
                    error: why,
                    retry_at: Timestamp::now().plus(timing.backoff(n.attempts + 1)),
                    claimed_until: until,
                }
            }
        };
        service
            .store()
            .commit(Unit::new(vec![change], |_| vec![]))
            .await?;
    }
    Ok(())
}

async fn send(client: &reqwest::Client, n: &DueWebhook) -> Result<(), String> {
    let timestamp = Timestamp::now().as_millis() / 1000;
    let signature = actas_core::webhook::signature(&n.secret, timestamp, n.body.as_bytes());
    let r = client
        .post(&n.url)
        .header("content-type", "application/json")
        .header("actas-webhook-id", n.id.to_string())
        .header("actas-webhook-timestamp", timestamp.to_string())
        .header("actas-signature", signature)
        .body(n.body.clone())
        .send()
        .await
        .map_err(|e| format!("could not reach {}: {e}", n.url))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("{} answered {}", n.url, r.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let t = DeliveryTiming::default();
        assert_eq!(t.backoff(1), Duration::from_secs(2));
        assert_eq!(t.backoff(2), Duration::from_secs(4));
        assert_eq!(t.backoff(5), Duration::from_secs(32));
        assert_eq!(t.backoff(9), Duration::from_secs(300));
        assert_eq!(t.backoff(64), Duration::from_secs(300));
    }
}
