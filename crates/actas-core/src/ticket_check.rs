//! Asking the helpdesk about a ticket before a request is made (`[tickets] verify_url`):
//! what actas sends, and how the answer is judged. actas POSTs
//! `{"ticket": "...", "account": "..."}` signed like its webhooks
//! (`Actas-Webhook-Timestamp`, `Actas-Signature: v1=<hex HMAC-SHA256>`, see
//! [`crate::webhook`]); the helpdesk answers `200 {"ticket": "<as asked>", "account":
//! "<id>"}` for a ticket it has, naming the account the ticket is about, or `404` for one
//! it doesn't. The answer must name the ticket asked about, so an endpoint that merely
//! echoes the question passes nothing it wasn't told. Anything
//! else — no answer in time, another status, an unreadable body — refuses the request:
//! a check that can't be made is not a check that passed.

use serde_json::Value;

/// Why the helpdesk's answer refuses a request; each reads after "Ticket #4821 …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketRefusal {
    /// The helpdesk has no such ticket.
    #[error("is not known to the helpdesk")]
    Unknown,
    /// The ticket is about another account.
    #[error("is about another account ({0}) in the helpdesk, not this one")]
    OtherAccount(String),
    /// The helpdesk could not be asked, or its answer could not be read.
    #[error(
        "could not be checked with the helpdesk ({0}), so no request was made; try again in a moment"
    )]
    Unchecked(String),
}

/// The body actas sends for `ticket` on `account`.
pub fn question(ticket: &str, account: &str) -> Vec<u8> {
    serde_json::json!({ "ticket": ticket, "account": account })
        .to_string()
        .into_bytes()
}

/// Judges the helpdesk's answer (`status`, `body`) about a ticket asked for `account`.
pub fn judge(ticket: &str, account: &str, status: u16, body: &[u8]) -> Result<(), TicketRefusal> {
    match status {
        200 => {
            let answer = serde_json::from_slice::<Value>(body).ok();
            let field = |k: &str| {
                answer
                    .as_ref()
                    .and_then(|v| v.get(k).and_then(Value::as_str).map(str::to_owned))
            };
            if field("ticket").as_deref() != Some(ticket) {
                return Err(TicketRefusal::Unchecked(
                    "its answer was not about this ticket".into(),
                ));
            }
            let named = field("account").ok_or_else(|| {
                TicketRefusal::Unchecked("its answer did not name the ticket's account".into())
            })?;
            if named == account {
                Ok(())
            } else {
                Err(TicketRefusal::OtherAccount(named))
            }
        }
        404 => Err(TicketRefusal::Unknown),
        s => Err(TicketRefusal::Unchecked(format!(
            "it answered with status {s}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_ticket_about_this_account_passes() {
        let judge = |account, status, body| judge("#4821", account, status, body);
        assert_eq!(
            judge("acme", 200, br##"{"ticket":"#4821","account":"acme"}"##),
            Ok(())
        );
        assert_eq!(
            judge("acme", 200, br##"{"ticket":"#4821","account":"globex"}"##),
            Err(TicketRefusal::OtherAccount("globex".into()))
        );
        assert_eq!(judge("acme", 404, b""), Err(TicketRefusal::Unknown));
        for (status, body) in [
            (200, &b"not json"[..]),
            (200, br#"{"exists":true}"#),
            (200, br##"{"ticket":"#4821","account":7}"##),
            // An echo of another question, or an answer without the ticket.
            (200, br##"{"ticket":"#9999","account":"acme"}"##),
            (200, br#"{"account":"acme"}"#),
            (500, b""),
            (302, b""),
            (401, b""),
        ] {
            assert!(
                matches!(
                    judge("acme", status, body),
                    Err(TicketRefusal::Unchecked(_))
                ),
                "{status} {body:?}"
            );
        }
    }

    #[test]
    fn the_question_names_ticket_and_account() {
        let q: Value = serde_json::from_slice(&question("#4821", "acme")).expect("json");
        assert_eq!(q["ticket"], "#4821");
        assert_eq!(q["account"], "acme");
    }
}
