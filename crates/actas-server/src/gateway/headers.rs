//! The product's response headers as the browser gets them (part of `response_filter`).
//!
//! - Only standard headers and those the policy names pass; any other is dropped and
//!   counted, since it could carry what masking hides.
//! - Exactly one `Content-Type`, set by the gateway for what it rewrote.
//! - A rewritten body is the gateway's: no `Content-Length`, `ETag` or `Last-Modified`
//!   of the product's, and `Cache-Control: no-store`, so neither the browser's cache nor
//!   Back after End session can show the customer's page again.
//! - `Location` stays on the gateway, and its query values are masked by the field rules
//!   like form fields (what no rule names is hidden).
//! - `Content-Disposition` file names are masked by the `filename` field rule.
//! - Cookies: actas's own names never pass (the product setting one is recorded); of the
//!   product's, only those the policy lists pass, without any `Domain`.

use super::response_filter::Answer;
use super::rewrite;
use actas_core::mask::is_name_like;
use actas_core::policy::masking::MaskRule;
use actas_core::policy::{Policy, is_actas_cookie};
use axum::http::{HeaderMap, HeaderValue, header};
use std::collections::BTreeSet;

/// What filtering the headers found to count or record.
#[derive(Default)]
pub(super) struct Dropped {
    /// Headers, cookies and query fields no rule classified, to count.
    pub(super) unclassified: BTreeSet<String>,
    /// actas's own cookie names the product tried to set, to record.
    pub(super) actas_cookies: Vec<String>,
}

/// The product's headers for the browser, onto `response`.
pub(super) fn product_headers(
    mut response: axum::http::response::Builder,
    headers: &HeaderMap,
    policy: &Policy,
    answer: &Answer,
    origins: &rewrite::Origins,
) -> (axum::http::response::Builder, Dropped) {
    let rules = &policy.gateway;
    let mut dropped = Dropped::default();
    let rewritten = answer.class.rewritten();
    let content_type = answer
        .class
        .content_type()
        .or_else(|| (!answer.content_type.is_empty()).then(|| answer.content_type.clone()));
    if let Some(v) = content_type.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response = response.header(header::CONTENT_TYPE, v);
    }
    if rewritten {
        response = response.header(header::CACHE_CONTROL, "no-store");
    }
    for (name, value) in headers {
        let n = name.as_str();
        if n == "content-length" {
            // Kept for a body passed on as it came (the client drops it itself when it
            // unpacks one); a rewritten body's length is not known ahead.
            if !rewritten {
                response = response.header(name, value);
            }
            continue;
        }
        if HOP_BY_HOP.contains(&n) || n == "x-content-type-options" {
            continue;
        }
        if !rules.passes_response_header(n) {
            // It could carry what masking hides: dropped, and counted for the team.
            dropped.unclassified.insert(format!("header {n}"));
            continue;
        }
        match n {
            // One Content-Type, set above.
            "content-type" => {}
            // The gateway's body: the product's validators and caching don't apply.
            "etag" | "last-modified" | "cache-control" | "expires" | "pragma" | "age"
                if rewritten => {}
            "location" | "content-location" => {
                let loc = value.to_str().unwrap_or("/");
                let local = origins.local(loc);
                let local = local.as_deref().unwrap_or(loc);
                let masked = masked_query(local, policy, &mut dropped.unclassified);
                if let Ok(v) = HeaderValue::from_str(masked.as_deref().unwrap_or(local)) {
                    response = response.header(name, v);
                }
            }
            "refresh" => {
                let text = value.to_str().unwrap_or("");
                let local = origins
                    .local_refresh(text)
                    .unwrap_or_else(|| text.to_owned());
                if let Ok(v) = HeaderValue::from_str(&local) {
                    response = response.header(name, v);
                }
            }
            "link" => {
                // `<url>; rel=…, <url>; rel=…`
                let text = value.to_str().unwrap_or("");
                let rewritten: Vec<String> = text
                    .split(',')
                    .map(|part| {
                        let p = part.trim();
                        match p.strip_prefix('<').and_then(|r| r.split_once('>')) {
                            Some((url, rest)) => {
                                let url = origins.local(url).unwrap_or_else(|| url.to_owned());
                                format!("<{url}>{rest}")
                            }
                            None => p.to_owned(),
                        }
                    })
                    .collect();
                if let Ok(v) = HeaderValue::from_str(&rewritten.join(", ")) {
                    response = response.header(name, v);
                }
            }
            "content-security-policy" | "content-security-policy-report-only" => {
                // Reports name the page and what it tried: they go nowhere off the gateway.
                let text = value.to_str().unwrap_or("");
                let kept: Vec<&str> = text
                    .split(';')
                    .filter(|d| {
                        let d = d.trim().to_ascii_lowercase();
                        !d.starts_with("report-uri") && !d.starts_with("report-to")
                    })
                    .collect();
                if let Ok(v) = HeaderValue::from_str(kept.join(";").trim()) {
                    response = response.header(name, v);
                }
            }
            "set-cookie" => {
                if let Some(v) = product_cookie(value, rules.cookies.as_slice(), &mut dropped) {
                    response = response.header(header::SET_COOKIE, v);
                }
            }
            "content-disposition" => {
                let v = masked_disposition(value, policy).unwrap_or_else(|| value.clone());
                response = response.header(header::CONTENT_DISPOSITION, v);
            }
            _ => response = response.header(name, value),
        }
    }
    (response, dropped)
}

/// How a field called `name` is shown, and whether no rule names it.
fn field_rule(policy: &Policy, name: &str) -> (MaskRule, bool) {
    match policy.field_rule(name) {
        Some(rule) => (rule, false),
        None => (policy.unclassified, true),
    }
}

/// `location` with its query values masked by the field rules; `None` if nothing in it
/// needs masking.
fn masked_query(
    location: &str,
    policy: &Policy,
    unclassified: &mut BTreeSet<String>,
) -> Option<String> {
    let (before, rest) = location.split_once('?')?;
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut changed = false;
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &pairs {
        let (rule, unnamed) = field_rule(policy, name);
        if unnamed {
            unclassified.insert(format!(
                "query {}",
                if is_name_like(name) {
                    name.as_str()
                } else {
                    "*"
                }
            ));
        }
        let shown_name = if is_name_like(name) {
            name.clone()
        } else {
            rule.apply(name).unwrap_or_default()
        };
        match rule.apply(value) {
            Some(v) => {
                changed |= v != *value || shown_name != *name;
                out.append_pair(&shown_name, &v);
            }
            None => changed = true,
        }
    }
    if !changed {
        return None;
    }
    let mut rebuilt = before.to_owned();
    let query = out.finish();
    if !query.is_empty() {
        rebuilt.push('?');
        rebuilt.push_str(&query);
    }
    if let Some(f) = fragment {
        rebuilt.push('#');
        rebuilt.push_str(f);
    }
    Some(rebuilt)
}

/// A product's `Set-Cookie`, if it may pass: never an actas name (recorded), only a name
/// the policy lists (others counted), and never with a `Domain`, however it is spelled.
fn product_cookie(
    value: &HeaderValue,
    listed: &[String],
    dropped: &mut Dropped,
) -> Option<HeaderValue> {
    let text = String::from_utf8_lossy(value.as_bytes());
    let Ok(mut cookie) = cookie::Cookie::parse(text.trim().to_owned()) else {
        dropped
            .unclassified
            .insert("cookie (unreadable)".to_owned());
        return None;
    };
    let name = cookie.name().to_owned();
    if is_actas_cookie(&name) {
        dropped.actas_cookies.push(name);
        return None;
    }
    if !listed.contains(&name) {
        dropped.unclassified.insert(format!(
            "cookie {}",
            if is_name_like(&name) {
                name.as_str()
            } else {
                "*"
            }
        ));
        return None;
    }
    cookie.unset_domain();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// A `Content-Disposition` whose file name the `filename` field rule masks: the name is
/// replaced by a neutral one. `None` when it may stay as it is.
fn masked_disposition(value: &HeaderValue, policy: &Policy) -> Option<HeaderValue> {
    let text = value.to_str().unwrap_or("");
    if !text.to_ascii_lowercase().contains("filename") {
        return None;
    }
    if field_rule(policy, "filename").0 == MaskRule::Show {
        return None;
    }
    let kind = text.split(';').next().unwrap_or("attachment").trim();
    HeaderValue::from_str(&format!("{kind}; filename=\"download\"")).ok()
}

/// Headers of one connection, never passed on.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        Policy::from_toml(
            &format!(
                "[[masking]]\nfield = \"page\"\nrule = \"show\"\n[[masking]]\nfield = \"email\"\nrule = \"email\"\n{extra}"
            ),
            "t.toml",
        )
        .expect("policy")
    }

    #[test]
    fn location_query_values_are_masked_by_the_field_rules() {
        let p = policy("");
        let mut found = BTreeSet::new();
        assert_eq!(
            masked_query(
                "/done?page=2&email=sarah@acme.com&token=abc123#top",
                &p,
                &mut found
            )
            .as_deref(),
            Some(
                "/done?page=2&email=s%E2%80%A2%E2%80%A2%E2%80%A2%40acme.com&token=%E2%80%A2%E2%80%A2%E2%80%A2+hidden#top"
            )
        );
        assert_eq!(masked_query("/done?page=2", &p, &mut found), None);
        assert_eq!(masked_query("/done", &p, &mut found), None);
        assert!(found.contains("query token"), "{found:?}");
    }

    #[test]
    fn only_listed_product_cookies_pass_without_a_domain_and_actas_names_never() {
        let listed = vec!["session".to_owned()];
        let mut d = Dropped::default();
        let pass = |v: &str, d: &mut Dropped| {
            product_cookie(&HeaderValue::from_str(v).expect("v"), &listed, d)
                .map(|h| h.to_str().expect("ascii").to_owned())
        };
        let kept = pass(
            "session=abc; Path=/; Domain = .app.example ; HttpOnly",
            &mut d,
        )
        .expect("listed");
        assert!(!kept.to_ascii_lowercase().contains("domain"), "{kept}");
        assert!(
            kept.starts_with("session=abc") && kept.contains("HttpOnly"),
            "{kept}"
        );
        assert_eq!(pass("tracking=acme-4242", &mut d), None);
        for own in [
            "actas_gw=x",
            "ACTAS_GW=x",
            "__Host-actas_console=x",
            "__Secure-Actas_x=1",
        ] {
            assert_eq!(pass(own, &mut d), None, "{own}");
        }
        assert_eq!(d.actas_cookies.len(), 4);
        assert!(d.unclassified.contains("cookie tracking"));
    }

    #[test]
    fn file_names_follow_the_filename_rule() {
        let hidden = policy("");
        let v = HeaderValue::from_static("attachment; filename=\"acme-4111111111114242.csv\"");
        assert_eq!(
            masked_disposition(&v, &hidden)
                .map(|h| h.to_str().expect("a").to_owned())
                .as_deref(),
            Some("attachment; filename=\"download\"")
        );
        let shown = policy("[[masking]]\nfield = \"filename\"\nrule = \"show\"\n");
        assert_eq!(masked_disposition(&v, &shown), None);
    }
}
