//! Checking a ticket with the helpdesk before a request is made (`[tickets]
//! verify_url`). The rule that judges the answer is `actas_core::ticket_check`; this is
//! the signed HTTP call, with its timeout.

use super::{Service, ServiceError, ServiceResult};
use actas_core::ticket_check::{self, TicketRefusal};
use std::time::Duration;

/// Where and how to ask the helpdesk.
#[derive(Debug, Clone)]
pub struct TicketCheck {
    url: String,
    secret: String,
    client: reqwest::Client,
}

impl TicketCheck {
    /// Asks `url`, signing with `secret`, waiting at most `timeout` for the answer.
    pub fn new(url: String, secret: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            url,
            secret,
            client,
        })
    }

    async fn ask(&self, ticket: &str, account: &str) -> Result<(), TicketRefusal> {
        let body = ticket_check::question(ticket, account);
        let now = actas_core::Timestamp::now().as_millis() / 1000;
        let answer = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("actas-webhook-timestamp", now.to_string())
            .header(
                "actas-signature",
                actas_core::webhook::signature(&self.secret, now, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                TicketRefusal::Unchecked(if e.is_timeout() {
                    "it did not answer in time".into()
                } else {
                    "it could not be reached".into()
                })
            })?;
        let status = answer.status().as_u16();
        // An answer is a few dozen bytes; more than this is not one.
        const MAX_ANSWER: usize = 16 * 1024;
        let mut answer = answer;
        let mut bytes = Vec::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|_| TicketRefusal::Unchecked("its answer could not be read".into()))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_ANSWER {
                return Err(TicketRefusal::Unchecked("its answer was too long".into()));
            }
        }
        ticket_check::judge(ticket, account, status, &bytes)
    }
}

impl Service {
    /// Asks the helpdesk about a ticket, when a check is configured: refused (naming the
    /// ticket field) unless the helpdesk confirms the ticket is about this account.
    pub(super) async fn check_ticket(&self, ticket: &str, account: &str) -> ServiceResult<()> {
        let Some(check) = &self.tickets else {
            return Ok(());
        };
        check.ask(ticket, account).await.map_err(|why| {
            tracing::info!(%ticket, %account, %why, "a ticket check refused a request");
            ServiceError::invalid("ticket", format!("ticket {ticket} {why}"))
        })
    }
}
