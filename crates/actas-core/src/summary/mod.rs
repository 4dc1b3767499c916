//! Plain-language sentences for every event kind, written into the ledger with the event.
//!
//! They read like a careful colleague wrote them: names, not ids; the ticket; the reason
//! in quotes; before and after values. Tests pin each sentence.

use crate::event::{Actor, EventData, FieldChange};
use crate::session::EndReason;

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::Staff(s) => s.name.to_string(),
        Actor::Customer(a) => a.name.to_string(),
        Actor::System => "actas".to_owned(),
        Actor::App(a) => format!("the product (app {})", a.name),
    }
}

fn article(role: &str) -> &'static str {
    if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn changes_text(changes: &[FieldChange]) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|c| match (&c.from, &c.to) {
            (Some(from), Some(to)) => format!("the {} from {from} to {to}", c.field),
            (None, Some(to)) => format!("the {} to {to}", c.field),
            (Some(from), None) => format!("the {} (was {from}), removing it", c.field),
            (None, None) => format!("the {}", c.field),
        })
        .collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// The sentence for an event done by `actor`.
pub fn summarize(actor: &Actor, data: &EventData) -> String {
    let who = actor_name(actor);
    let by_system = matches!(actor, Actor::System);
    match data {
        EventData::StaffAdded { staff, role } => {
            let role = role.as_str();
            if by_system {
                format!(
                    "{} ({}) was added as {} {role}",
                    staff.name,
                    staff.email,
                    article(role)
                )
            } else {
                format!(
                    "{who} added {} ({}) as {} {role}",
                    staff.name,
                    staff.email,
                    article(role)
                )
            }
        }
        EventData::StaffDisabled { staff } => {
            if by_system {
                format!("{} ({}) was deactivated", staff.name, staff.email)
            } else {
                format!("{who} deactivated {} ({})", staff.name, staff.email)
            }
        }
        EventData::StaffReactivated { staff } => {
            format!("{} ({}) was made active again", staff.name, staff.email)
        }
        EventData::SignedIn {
            staff,
            through: None,
        } => format!("{} signed in", staff.name),
        EventData::SignedIn {
            staff,
            through: Some(provider),
        } => format!("{} signed in through {provider}", staff.name),
        EventData::SignInRefused {
            through,
            who: Some(who),
            reason,
        } => format!("{through} signed in {who}, but actas refused them: {reason}"),
        EventData::SignInRefused {
            through,
            who: None,
            reason,
        } => format!("A sign-in through {through} was refused: {reason}"),
        EventData::RoleChanged {
            staff,
            from,
            to,
            through,
        } => format!(
            "{} is now {} {} (was {} {}), following their groups at {through}",
            staff.name,
            article(to.as_str()),
            to.as_str(),
            article(from.as_str()),
            from.as_str()
        ),
        EventData::SignedOut { staff } => format!("{} signed out", staff.name),
        EventData::SignInFailed {
            staff,
            failures,
            locked_minutes,
        } => match locked_minutes {
            Some(m) => format!(
                "Someone gave a wrong password for {} ({}) {failures} times in a row; signing in is locked for {m} minutes",
                staff.name, staff.email
            ),
            None => format!(
                "Someone gave a wrong password for {} ({}); {failures} in a row",
                staff.name, staff.email
            ),
        },
        EventData::TotpEnabled { staff } => {
            format!(
                "{} turned on two-step sign-in with an authenticator app",
                staff.name
            )
        }
        EventData::AssertionKeyRotated { old_kid, new_kid } => format!(
            "{who} replaced the key that signs the gateway's assertions (key {old_kid} is now {new_kid}); the old key stays published until its last assertion expires"
        ),
        EventData::LedgerKeyRotated {
            old_key, new_key, ..
        } => {
            let id = |k: &str| {
                crate::tree_head::PublicKey::parse(k)
                    .map(|k| k.key_id().to_string())
                    .unwrap_or_else(|_| "(unreadable)".into())
            };
            format!(
                "{who} replaced the key that signs the ledger: key {} signed it up to here, key {} signs it from now on; both stay published, and extracts signed with either still verify",
                id(old_key),
                id(new_key)
            )
        }
        EventData::LedgerKeyStarted { key } => format!(
            "Key {} started signing the ledger",
            crate::tree_head::PublicKey::parse(key)
                .map(|k| k.key_id().to_string())
                .unwrap_or_else(|_| "(unreadable)".into())
        ),
        EventData::ApiTokenCreated { staff, name } => {
            format!("{} created a personal API token named “{name}”", staff.name)
        }
        EventData::AllowGranted {
            staff,
            max_risk,
            reason,
        } => format!(
            "{who} allowed {} to act as customers up to {max_risk} risk: “{reason}”",
            staff.name
        ),
        EventData::AllowConfirmed {
            staff,
            max_risk,
            reason,
        } => format!(
            "{who} reviewed {}'s access and kept it, up to {max_risk} risk: “{reason}”",
            staff.name
        ),
        EventData::AllowRevoked { staff, reason } => {
            format!(
                "{who} removed {} from the allow-list: “{reason}”",
                staff.name
            )
        }
        EventData::RequestCreated {
            account,
            ticket,
            reason,
            scope,
            minutes,
            mode,
            for_session,
            ..
        } => match for_session {
            Some(_) => format!(
                "{who} asked to change the scope of the session on {} for ticket {ticket} to {} ({minutes} minutes, {mode}): “{reason}”",
                account.name,
                scope.joined()
            ),
            None => format!(
                "{who} asked to act as {} for ticket {ticket} ({}; {minutes} minutes, {mode}): “{reason}”",
                account.name,
                scope.joined()
            ),
        },
        EventData::RequestApproved {
            requester,
            account,
            ticket,
            scope,
            minutes,
            by_policy,
            note,
            ..
        } => {
            let what = format!(
                "{}'s request to act as {} for ticket {ticket} ({}; {minutes} minutes)",
                requester.name,
                account.name,
                scope.joined()
            );
            match (by_policy, note) {
                (true, _) => format!("Policy approved {what}: low risk on a normal account"),
                (false, Some(note)) => format!("{who} approved {what}: “{note}”"),
                (false, None) => format!("{who} approved {what}"),
            }
        }
        EventData::RequestDenied {
            requester,
            account,
            ticket,
            note,
            ..
        } => format!(
            "{who} denied {}'s request to act as {} for ticket {ticket}: “{note}”",
            requester.name, account.name
        ),
        EventData::RequestCancelled {
            account, ticket, ..
        } => {
            format!(
                "{who} cancelled the request to act as {} for ticket {ticket}",
                account.name
            )
        }
        EventData::RequestExpired {
            requester,
            account,
            ticket,
            ..
        } => format!(
            "{}'s request to act as {} for ticket {ticket} expired before it was used",
            requester.name, account.name
        ),
        EventData::SessionStarted {
            account,
            ticket,
            reason,
            ..
        } => format!(
            "{who} started a support session on {} for ticket {ticket}: “{reason}”",
            account.name
        ),
        EventData::SupportNote { account, note, .. } => {
            format!("{who} noted what they did on {}: “{note}”", account.name)
        }
        EventData::PagesKept { pages, .. } => {
            let paths: Vec<&str> = pages.iter().map(|p| p.path.as_str()).collect();
            let shown = if paths.len() > 4 {
                format!("{} and {} more", paths[..3].join(", "), paths.len() - 3)
            } else {
                crate::words::list(&paths)
            };
            let kept = pages.iter().filter(|p| p.kept).count() as u64;
            let cut = pages.iter().filter(|p| p.cut_short).count() as u64;
            let over = pages.len() as u64 - kept - cut;
            let mut text = format!(
                "actas recorded the SHA-256 of {} as {who} saw {} ({shown})",
                crate::words::count(pages.len() as u64, "page", "pages"),
                if pages.len() == 1 { "it" } else { "them" }
            );
            if kept > 0 {
                text.push_str(&format!(
                    " and kept a masked copy of {}",
                    if kept == pages.len() as u64 {
                        if kept == 1 {
                            "it".to_owned()
                        } else {
                            "each".to_owned()
                        }
                    } else {
                        crate::words::count(kept, "page", "pages")
                    }
                ));
            }
            if cut > 0 {
                text.push_str(&format!(
                    "; {} cut short when the browser stopped reading",
                    crate::words::count(cut, "page was", "pages were")
                ));
            }
            if over > 0 {
                text.push_str(&format!(
                    "; {} kept no copy, as the session's copies reached the policy's limit",
                    crate::words::count(over, "page", "pages")
                ));
            }
            text
        }
        EventData::PageCopyOpened { staff, path, .. } => format!(
            "{who} opened the kept copy of {path} as {} saw it",
            staff.name
        ),
        EventData::SessionReviewed {
            staff,
            account,
            ticket,
            outcome,
            note,
            ..
        } => {
            let said = note
                .as_ref()
                .map(|n| format!(": “{n}”"))
                .unwrap_or_default();
            format!(
                "{who} reviewed {}'s session on {} for ticket {ticket}: {}{said}",
                staff.name,
                account.name,
                outcome.words()
            )
        }
        EventData::HandoffReissued {
            account, ticket, ..
        } => format!(
            "{who} was given a new link into their running session on {} for ticket {ticket}",
            account.name
        ),
        EventData::PageViewed {
            account,
            description,
            ..
        } => {
            format!("{who}, acting as {}, {description}", account.name)
        }
        EventData::ActionTaken {
            account,
            description,
            changes,
            status,
            ..
        } => {
            let what = if changes.is_empty() {
                description.clone()
            } else {
                format!("changed {}", changes_text(changes))
            };
            match status {
                // Recorded before the request goes to the product: what was asked for.
                None if changes.is_empty() => {
                    format!(
                        "{who}, acting as {}, sent a change: {description}",
                        account.name
                    )
                }
                None => format!(
                    "{who}, acting as {}, sent a change ({description}) setting {}",
                    account.name,
                    changes_text(changes)
                ),
                Some(s) if *s >= 400 => format!(
                    "{who}, acting as {}, tried to make a change ({description}), but the product refused it (status {s})",
                    account.name
                ),
                Some(_) => format!("{who}, acting as {}, {what}", account.name),
            }
        }
        EventData::ActionHeld {
            account,
            description,
            changes,
            ..
        } => {
            let what = match changes.is_empty() {
                true => "nothing the page showed".to_owned(),
                false => changes_text(changes),
            };
            format!(
                "{who}, acting as {}, asked to make a change that must be confirmed and signed ({description}), setting {what}; it was held, not sent, until they confirm it",
                account.name
            )
        }
        EventData::SignedAction {
            account,
            description,
            changes,
            confirmed_with,
            ..
        } => {
            let what = match changes.is_empty() {
                true => String::new(),
                false => format!(" setting {}", changes_text(changes)),
            };
            format!(
                "{who}, acting as {}, confirmed a change after proving who they are with {confirmed_with}, and it was sent with a signed receipt ({description}){what}",
                account.name
            )
        }
        EventData::ActionNotConfirmed {
            account,
            description,
            tried_with,
            reason,
            ..
        } => format!(
            "{who}, acting as {}, tried to confirm a held change ({description}) with {tried_with}, but it was not confirmed: {reason}; it stays held, not sent",
            account.name
        ),
        EventData::ActionBlocked {
            account,
            method,
            path,
            why,
            ..
        } if method == "MESSAGE" => format!(
            "{who}, acting as {}, was blocked from sending a message on the live connection to {path}: {why}",
            account.name
        ),
        EventData::ActionBlocked {
            account,
            method,
            path,
            why,
            ..
        } => format!(
            "{who}, acting as {}, was blocked from {method} {path}: {why}",
            account.name
        ),
        EventData::DataRead {
            account,
            method,
            path,
            ..
        } => match method.as_str() {
            "GET" => format!("{who}, acting as {}, read {path}", account.name),
            other => format!("{who}, acting as {}, read {path} ({other})", account.name),
        },
        EventData::LiveMessage {
            account,
            path,
            fields,
            ..
        } => {
            let mut said = format!(
                "{who}, acting as {}, sent a message on the live connection to {path}",
                account.name
            );
            if !fields.is_empty() {
                said.push_str(" setting ");
                said.push_str(&changes_text(fields));
            }
            said
        }
        EventData::FieldRevealed {
            account,
            fields,
            path,
            approved_by,
            ..
        } => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| {
                    f.trim_start_matches(['$', '.', '#'])
                        .replace(['_', '-', '.'], " ")
                })
                .collect();
            let by = match approved_by {
                Some(lead) => format!("approved by {}", lead.name),
                None => "approved by policy".to_owned(),
            };
            format!(
                "{who}, acting as {}, saw {} unmasked on {path} ({by})",
                account.name,
                match fields.as_slice() {
                    [one] => format!("the {one}"),
                    [rest @ .., last] => format!("the {} and {last}", rest.join(", ")),
                    [] => "a masked field".to_owned(),
                }
            )
        }
        EventData::AnswerRefused {
            account,
            method,
            path,
            why,
            ..
        } => format!(
            "{who}, acting as {}, was not shown the answer to {method} {path}: {why}",
            account.name
        ),
        EventData::SessionEnded {
            staff,
            account,
            reason,
            limit_minutes,
            ..
        } => {
            let why = match reason {
                EndReason::Manual => format!("{} ended it", staff.name),
                EndReason::HardLimit => match limit_minutes {
                    Some(m) => format!("it reached its {m}-minute limit"),
                    None => "it reached its time limit".to_owned(),
                },
                EndReason::IdleLimit => match limit_minutes {
                    Some(m) => format!("idle for {m} minutes"),
                    None => "idle for too long".to_owned(),
                },
                EndReason::ConsentRevoked => format!("{} revoked consent", account.name),
                EndReason::RevokedByAdmin => format!("{who} ended it"),
                EndReason::StaffDisabled => {
                    format!("{}'s staff account was deactivated", staff.name)
                }
                EndReason::ScopeChanged => {
                    "the scope changed, so the work continues in a new session".to_owned()
                }
            };
            format!("{}'s session on {} ended: {why}", staff.name, account.name)
        }
        EventData::AccountUpdated {
            account,
            flags,
            created,
            removed,
        } => {
            let flags: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
            let mut flags = if flags.is_empty() {
                "no flags".to_owned()
            } else {
                format!("flags: {}", flags.join(", "))
            };
            if !removed.is_empty() {
                let removed: Vec<&str> = removed.iter().map(|f| f.as_str()).collect();
                flags.push_str(&format!("; removed: {}", removed.join(", ")));
            }
            if *created {
                format!(
                    "{who} added the account {} ({}; {flags})",
                    account.name, account.id
                )
            } else {
                format!(
                    "{who} updated the account {} ({}; {flags})",
                    account.name, account.id
                )
            }
        }
        EventData::CodeIssued {
            account,
            expires_at,
            ..
        } => format!(
            "{} made a one-time confirmation code for support staff, valid until {} UTC",
            account.name,
            &expires_at.to_rfc3339()[11..16]
        ),
        EventData::CodeAccepted {
            account, ticket, ..
        } => {
            format!(
                "{who} entered {}'s confirmation code for ticket {ticket}",
                account.name
            )
        }
        EventData::CodeRejected {
            account,
            ticket,
            failures,
            locked,
            ..
        } => {
            if *locked {
                format!(
                    "{who} entered a wrong confirmation code for {} (ticket {ticket}) for the {failures}th time; the request is now locked",
                    account.name
                )
            } else {
                format!(
                    "{who} entered a wrong confirmation code for {} (ticket {ticket}); {} tries left",
                    account.name,
                    crate::request::MAX_CODE_FAILURES.saturating_sub(*failures)
                )
            }
        }
        EventData::CustomerActivity {
            account,
            description,
            changes,
            ..
        } => {
            if changes.is_empty() {
                format!("{} {description}", account.name)
            } else {
                format!("{} {description}: {}", account.name, changes_text(changes))
            }
        }
        EventData::AppKeyCreated { app, webhook } => match webhook {
            Some(url) => format!(
                "{who} created the app key {} for the product, with session notifications sent to {url}",
                app.name
            ),
            None => format!("{who} created the app key {} for the product", app.name),
        },
        EventData::AppKeyRevoked { app } => format!(
            "{who} revoked the app key {}; the product can no longer use it",
            app.name
        ),
        EventData::ConsentChanged {
            account, consent, ..
        } => {
            use crate::account::Consent;
            match consent {
                Consent::Allowed => format!(
                    "{} allowed support staff to act on the account",
                    account.name
                ),
                Consent::CodeRequired => format!(
                    "{} asked that support staff need a confirmation code for every session",
                    account.name
                ),
                Consent::Revoked => format!(
                    "{} revoked consent for support staff to act on the account",
                    account.name
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests;
