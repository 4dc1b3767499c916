//! Words, not codes: how counts, durations, lists, times, end reasons and scopes read
//! wherever a person reads them — the console, the banner, the gateway's notices and the
//! customer's pages all format through here, so "1 minutes" can't come back in one place.

use crate::Timestamp;
use crate::policy::Policy;
use crate::request::RequestStatus;
use crate::scope::Scope;
use crate::session::EndReason;
use std::time::Duration;

/// `n` things, with the noun in the right number: "1 minute", "3 minutes", "no changes".
pub fn count(n: u64, one: &str, many: &str) -> String {
    match n {
        0 => format!("no {many}"),
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// A duration as a person says it, to the minute (seconds under a minute): "45 seconds",
/// "1 minute", "1 hour 5 minutes", "2 days 3 hours".
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        return count(secs, "second", "seconds").replace("no seconds", "0 seconds");
    }
    let minutes = secs / 60;
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let parts: Vec<String> = [(days, "day", "days"), (hours, "hour", "hours")]
        .into_iter()
        .chain(std::iter::once((mins, "minute", "minutes")))
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| count(n, one, many))
        .collect();
    // Days and minutes together are more precision than anyone reads.
    if days > 0 {
        return parts.into_iter().take(2).collect::<Vec<_>>().join(" ");
    }
    parts.join(" ")
}

/// Items as an English list: "a", "a and b", "a, b and c".
pub fn list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => format!(
            "{} and {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// Text as a sentence: a capital first letter and a full stop (unless it already ends
/// in one, or in `?` or `!`).
pub fn sentence(text: &str) -> String {
    let mut chars = text.trim().chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A message as a clause inside a sentence: no capital first letter, no full stop (the
/// opposite of [`sentence`]).
pub fn clause(text: &str) -> String {
    let trimmed = text.trim().trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why a session ended, as a sentence that reads alone, in the third person.
pub fn end_reason(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Manual => "The staff member ended it.",
        EndReason::HardLimit => "It reached its time limit.",
        EndReason::IdleLimit => "Nothing happened in it for too long.",
        EndReason::ConsentRevoked => "The customer withdrew their consent.",
        EndReason::RevokedByAdmin => "A director ended it.",
        EndReason::StaffDisabled => "The staff member's account was deactivated.",
        EndReason::ScopeChanged => "Its scope changed, and the work went on in a new session.",
    }
}

/// Where a request stands, for its requester and the leads.
pub fn request_status(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Pending => "Waiting for a lead to decide",
        RequestStatus::Approved => "Approved",
        RequestStatus::Denied => "Denied",
        RequestStatus::Expired => "Expired before it was used",
        RequestStatus::Cancelled => "Cancelled",
        RequestStatus::Used => "Used: a session was started from it",
    }
}

/// A scope in words, by the policy's descriptions of its capabilities, `view` first:
/// "See the account, its invoices and settings and change the billing address". A
/// capability the policy no longer has is named as it is.
pub fn scope(policy: &Policy, scope: &Scope) -> String {
    list(&scope_items(policy, scope))
}

/// Each capability of `scope` by its description, `view` first.
pub fn scope_items(policy: &Policy, scope: &Scope) -> Vec<String> {
    let mut names: Vec<&str> = scope.iter().map(|c| c.as_str()).collect();
    names.sort_by_key(|n| (*n != "view", *n));
    names
        .into_iter()
        .map(|n| {
            policy
                .capabilities()
                .find(|c| c.name.as_str() == n)
                .map_or_else(|| n.replace('_', " "), |c| lower_first(&c.description))
        })
        .collect()
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        // Keep acronyms and names ("VAT numbers", "Stripe") as they are.
        Some(c) if chars.clone().next().is_some_and(char::is_lowercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s.to_owned(),
    }
}

/// A moment as a clock time in UTC, for pages rendered before the reader's time zone is
/// known: "1 Dec 2026, 14:05 UTC". The console and the portal put it in a `<time>`
/// element whose `datetime` lets the browser show the reader's own clock.
pub fn clock(t: Timestamp) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = t.to_rfc3339();
    // RFC 3339 from Timestamp: YYYY-MM-DDTHH:MM:SS...Z
    let (Some(y), Some(m), Some(d), Some(hm)) =
        (iso.get(..4), iso.get(5..7), iso.get(8..10), iso.get(11..16))
    else {
        return iso;
    };
    let month = m
        .parse::<usize>()
        .ok()
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .copied()
        .unwrap_or(m);
    format!("{} {month} {y}, {hm} UTC", d.trim_start_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(count(0, "session", "sessions"), "no sessions");
        assert_eq!(count(1, "session", "sessions"), "1 session");
        assert_eq!(count(2, "session", "sessions"), "2 sessions");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let m = |n: u64| Duration::from_secs(n * 60);
        assert_eq!(duration(Duration::from_secs(0)), "0 seconds");
        assert_eq!(duration(Duration::from_secs(1)), "1 second");
        assert_eq!(duration(Duration::from_secs(59)), "59 seconds");
        assert_eq!(duration(m(1)), "1 minute");
        assert_eq!(duration(m(30)), "30 minutes");
        assert_eq!(duration(m(60)), "1 hour");
        assert_eq!(duration(m(65)), "1 hour 5 minutes");
        assert_eq!(duration(m(60 * 24 * 2 + 3 * 60 + 7)), "2 days 3 hours");
        assert_eq!(duration(m(60 * 24 * 7)), "7 days");
    }

    #[test]
    fn lists_and_sentences() {
        assert_eq!(list::<&str>(&[]), "");
        assert_eq!(list(&["a"]), "a");
        assert_eq!(list(&["a", "b"]), "a and b");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
        assert_eq!(sentence("only leads decide"), "Only leads decide.");
        assert_eq!(sentence("Done!"), "Done!");
        assert_eq!(sentence("  "), "");
        assert_eq!(sentence("écrit"), "Écrit.");
    }

    #[test]
    fn every_end_reason_is_a_sentence_without_codes() {
        for r in EndReason::ALL {
            let words = end_reason(r);
            assert!(!words.contains('_'), "{words}");
            assert_eq!(sentence(words), words);
        }
    }

    #[test]
    fn clock_times_are_words() {
        let t = Timestamp::parse("2026-12-01T09:05:00Z").expect("time");
        assert_eq!(clock(t), "1 Dec 2026, 09:05 UTC");
    }

    #[test]
    fn scopes_read_by_their_descriptions_view_first() {
        let policy = Policy::starter();
        let asked =
            Scope::new([crate::scope::CapabilityName::parse("edit_settings").expect("name")]);
        let words = scope(&policy, &asked);
        assert!(!words.contains('_'), "{words}");
        let view = policy
            .capabilities()
            .find(|c| c.name.as_str() == "view")
            .expect("view");
        assert!(
            words.starts_with(&lower_first(&view.description)),
            "{words}"
        );
    }
}
