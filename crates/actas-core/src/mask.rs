//! Masking JSON by policy: what the gateway applies to JSON responses and what the ledger
//! applies to before/after values (invariant 6).
//!
//! Each value is matched against the policy's rules, the most specific first: a JSON path
//! naming exactly its place, then a `field` rule naming its key. A rule on an object or
//! array covers what is inside it unless something inside has a rule of its own, which
//! then wins; `show` on a container never shows what is inside by itself — each value
//! inside needs its own rule, or it is unclassified. Values no rule classifies get the
//! policy's default (`hide` unless the policy says otherwise) and their paths are reported,
//! so the team can see what still needs classifying. `never` removes the key (or the
//! array element) entirely.
//!
//! Object keys are data too when they don't look like names (`"4111111111114242": {…}`,
//! `"sarah@acme.com": …`): such a key is masked like its value, and reported as `*`.

use crate::policy::masking::{HIDDEN, Location, MaskRule, MaskingRule, Target};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// What masking did, for counting and for `actas policy unclassified`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskReport {
    /// Paths (e.g. `$.loans[*].iban`) of values no rule classified.
    pub unclassified: BTreeSet<String>,
    /// The rules (by what they name) that revealed a value the session was approved to
    /// see: each is recorded as a `field_revealed` event.
    pub revealed: BTreeSet<String>,
}

/// A place in the document as the report names it: array positions as `[*]`, keys that
/// are data as `*`.
fn path_text(at: &[Location<'_>]) -> String {
    let mut out = String::from("$");
    for l in at {
        match l {
            Location::Key(k) if is_name_like(k) => {
                out.push('.');
                out.push_str(k);
            }
            Location::Key(_) => out.push_str(".*"),
            Location::Index(_) => out.push_str("[*]"),
        }
    }
    out
}

/// Whether an object key looks like a name a program chose (`card`, `tax_rate`,
/// `line2`) rather than data (`4111111111114242`, `sarah@acme.com`, `2024-11-30`): it
/// starts with a letter, `_` or `$`, holds only letters, digits, `_`, `$`, `-` and `.`,
/// is at most 64 long, and has no run of six digits or more.
pub fn is_name_like(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
    let mut digits = 0;
    let rest_ok = key.chars().all(|c| {
        digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
        digits < 6 && (c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-' | '.'))
    });
    first_ok && rest_ok && key.len() <= 64
}

/// The rule naming this very place: a JSON path to it, else a field rule naming its key.
fn own_rule<'r>(rules: &[&'r MaskingRule], at: &[Location<'_>]) -> Option<&'r MaskingRule> {
    rules
        .iter()
        .copied()
        .find(|r| matches!(&r.target, Target::Json(p) if p.matches(at)))
        .or_else(|| match at.last() {
            Some(Location::Key(k)) => rules
                .iter()
                .copied()
                .find(|r| matches!(&r.target, Target::Field(f) if f.as_str() == *k)),
            _ => None,
        })
}

/// Whether some place inside `value` (at `at`) has a rule of its own.
fn has_rule_inside(value: &Value, at: &[Location<'_>], rules: &[&MaskingRule]) -> bool {
    let check = |inner: &[Location<'_>], child: &Value| {
        own_rule(rules, inner).is_some() || has_rule_inside(child, inner, rules)
    };
    match value {
        Value::Object(map) => map.iter().any(|(k, child)| {
            let mut inner = at.to_vec();
            inner.push(Location::Key(k));
            check(&inner, child)
        }),
        Value::Array(items) => items.iter().enumerate().any(|(i, child)| {
            let mut inner = at.to_vec();
            inner.push(Location::Index(i));
            check(&inner, child)
        }),
        _ => false,
    }
}

/// What to do with a value once a rule (or the default) applies to it as a whole.
fn apply(rule: MaskRule, value: &mut Value) -> bool {
    match rule {
        MaskRule::Show => true,
        MaskRule::Never => false,
        MaskRule::Hide => {
            *value = Value::String(HIDDEN.to_owned());
            true
        }
        MaskRule::Last4 | MaskRule::Email => {
            let text = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            *value = Value::String(match text.and_then(|t| rule.apply(&t)) {
                Some(masked) => masked,
                None => HIDDEN.to_owned(),
            });
            true
        }
    }
}

/// The rules in force while masking one document.
struct Masking<'r> {
    rules: Vec<&'r MaskingRule>,
    default: MaskRule,
    report: MaskReport,
}

impl Masking<'_> {
    /// Masks `value` (found at `at`, under a container whose rule is `inherited`) in
    /// place. Returns false when the value itself must be removed.
    fn walk(
        &mut self,
        value: &mut Value,
        at: &[Location<'_>],
        inherited: Option<MaskRule>,
    ) -> bool {
        let found = own_rule(&self.rules, at);
        if let Some(r) = found.filter(|r| r.reveals())
            && !value.is_null()
        {
            self.report.revealed.insert(r.target_text());
        }
        let own = found.map(|r| r.rule);
        let container = matches!(value, Value::Object(_) | Value::Array(_));
        if !container {
            return match own.or(inherited) {
                Some(rule) => apply(rule, value),
                None => {
                    self.report.unclassified.insert(path_text(at));
                    apply(self.default, value)
                }
            };
        }
        // A container: its own rule covers it whole, unless something inside has a rule
        // of its own. `show` is never inherited: what is inside needs its own rule.
        let covering = own.or(inherited).filter(|r| *r != MaskRule::Show);
        if let Some(rule) = covering
            && !has_rule_inside(value, at, &self.rules)
        {
            return apply(rule, value);
        }
        match value {
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (key, mut child) in old {
                    let masked_key = {
                        let mut inner = at.to_vec();
                        inner.push(Location::Key(&key));
                        let rule_here = own_rule(&self.rules, &inner).map(|r| r.rule).or(covering);
                        if !self.walk(&mut child, &inner, covering) {
                            continue;
                        }
                        if is_name_like(&key) {
                            None
                        } else {
                            match self.data_key(&key, rule_here, &inner, map) {
                                Some(k) => Some(k),
                                None => continue,
                            }
                        }
                    };
                    map.insert(masked_key.unwrap_or(key), child);
                }
                true
            }
            Value::Array(items) => {
                let old = std::mem::take(items);
                for (index, mut item) in old.into_iter().enumerate() {
                    let mut inner = at.to_vec();
                    inner.push(Location::Index(index));
                    if self.walk(&mut item, &inner, covering) {
                        items.push(item);
                    }
                }
                true
            }
            _ => true,
        }
    }

    /// A key that is data, masked like a value by `rule` (or the default, reported as
    /// unclassified); `None` removes the member. Masked keys that would collide are
    /// numbered.
    fn data_key(
        &mut self,
        key: &str,
        rule: Option<MaskRule>,
        at: &[Location<'_>],
        taken: &Map<String, Value>,
    ) -> Option<String> {
        let rule = rule.unwrap_or_else(|| {
            self.report.unclassified.insert(path_text(at));
            self.default
        });
        let masked = rule.apply(key)?;
        if masked == key || !taken.contains_key(&masked) {
            return Some(masked);
        }
        (2..)
            .map(|n| format!("{masked} ({n})"))
            .find(|k| !taken.contains_key(k))
    }
}

/// Masks a JSON document by the policy's JSON path and field rules (HTML rules are
/// ignored), with `default` for what no rule classifies.
pub fn mask_json(value: &mut Value, rules: &[MaskingRule], default: MaskRule) -> MaskReport {
    let mut masking = Masking {
        rules: rules
            .iter()
            .filter(|r| matches!(r.target, Target::Json(_) | Target::Field(_)))
            .collect(),
        default,
        report: MaskReport::default(),
    };
    if !masking.walk(value, &[], None) {
        *value = Value::Null;
    }
    masking.report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use proptest::prelude::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy::from_toml(
            r#"
unclassified = "hide"
[[masking]]
json = "$.card.number"
rule = "last4"
[[masking]]
json = "$.email"
rule = "email"
[[masking]]
json = "$.name"
rule = "show"
[[masking]]
json = "$.national_id"
rule = "never"
[[masking]]
json = "$.loans[*].id"
rule = "show"
[[masking]]
json = "$.loans[*].iban"
rule = "last4"
[[masking]]
json = "$.recovery_codes"
rule = "never"
[[masking]]
json = "$.settings"
rule = "show"
"#,
            "test.toml",
        )
        .expect("policy")
    }

    fn mask(mut v: Value) -> (Value, MaskReport) {
        let p = policy();
        let r = mask_json(&mut v, p.masking(), p.unclassified);
        (v, r)
    }

    #[test]
    fn each_rule_applies_at_its_path_and_the_rest_is_hidden() {
        let (out, report) = mask(json!({
            "name": "Acme Co",
            "email": "sarah@acme.com",
            "card": { "number": "4111 1111 1111 4242", "brand": "visa" },
            "national_id": "AB123456C",
            "recovery_codes": ["aaaa-bbbb", "cccc-dddd"],
            "loans": [{ "id": "LA-77", "iban": "GB33BUKB20201555555555", "rate": 4.5 }],
            "settings": { "tax": { "rate": "20%" } },
            "internal_notes": "VIP, do not upset"
        }));
        assert_eq!(
            out,
            json!({
                "name": "Acme Co",
                "email": "s•••@acme.com",
                "card": { "number": "•••• 4242", "brand": "••• hidden" },
                "loans": [{ "id": "LA-77", "iban": "•••• 5555", "rate": "••• hidden" }],
                // `show` on a container shows nothing inside by itself.
                "settings": { "tax": { "rate": "••• hidden" } },
                "internal_notes": "••• hidden"
            })
        );
        let unclassified: Vec<&str> = report.unclassified.iter().map(String::as_str).collect();
        assert_eq!(
            unclassified,
            [
                "$.card.brand",
                "$.internal_notes",
                "$.loans[*].rate",
                "$.settings.tax.rate"
            ]
        );
    }

    fn masked_by(rules: &str, doc: Value) -> (Value, Vec<String>) {
        let p = Policy::from_toml(rules, "t.toml").expect("policy");
        let mut doc = doc;
        let r = mask_json(&mut doc, p.masking(), p.unclassified);
        (doc, r.unclassified.into_iter().collect())
    }

    #[test]
    fn the_most_specific_rule_wins_and_show_never_reaches_inside() {
        let rules = r#"
[[masking]]
json = "$.profile"
rule = "show"
[[masking]]
json = "$.profile.name"
rule = "show"
[[masking]]
json = "$.profile.ssn"
rule = "never"
[[masking]]
json = "$.card"
rule = "hide"
[[masking]]
json = "$.card.last4"
rule = "show"
[[masking]]
json = "$.vault"
rule = "never"
[[masking]]
json = "$.address"
rule = "hide"
"#;
        let (out, unclassified) = masked_by(
            rules,
            json!({
                "profile": { "name": "Acme", "ssn": "078-05-1120", "backup_email": "b@acme.com" },
                "card": { "last4": "4242", "number": "4111111111114242" },
                "vault": { "codes": ["a", "b"] },
                "address": { "street": "1 High St", "city": "Leeds" }
            }),
        );
        assert_eq!(
            out,
            json!({
                "profile": { "name": "Acme", "backup_email": "••• hidden" },
                "card": { "last4": "4242", "number": "••• hidden" },
                "address": "••• hidden"
            })
        );
        assert_eq!(unclassified, ["$.profile.backup_email"]);
    }

    #[test]
    fn field_rules_name_a_key_at_any_depth_below_json_paths() {
        let rules = r#"
[[masking]]
field = "email"
rule = "email"
[[masking]]
json = "$.owner.email"
rule = "hide"
[[masking]]
field = "name"
rule = "show"
"#;
        let (out, _) = masked_by(
            rules,
            json!({ "contacts": [{ "name": "Sam", "email": "sam@acme.com" }], "owner": { "email": "o@acme.com" } }),
        );
        assert_eq!(
            out,
            json!({ "contacts": [{ "name": "Sam", "email": "s•••@acme.com" }], "owner": { "email": "••• hidden" } })
        );
    }

    #[test]
    fn keys_that_are_data_are_masked_like_values_and_reported_as_a_wildcard() {
        let rules = r#"
[[masking]]
json = "$.cards.*"
rule = "last4"
[[masking]]
json = "$.ok_2fa"
rule = "show"
"#;
        let (out, unclassified) = masked_by(
            rules,
            json!({
                "cards": { "4111111111114242": "visa", "5500000000000004": "mc" },
                "sarah@acme.com": "owner",
                "account_41111111": "x",
                "ok_2fa": true
            }),
        );
        let text = out.to_string();
        for secret in [
            "4111111111114242",
            "5500000000000004",
            "sarah@acme.com",
            "41111111",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(out["cards"]["•••• 4242"], "••••");
        assert_eq!(out["ok_2fa"], true, "a name with a short number is a name");
        assert!(
            unclassified
                .iter()
                .all(|p| !p.contains('@') && !p.contains("4111")),
            "{unclassified:?}"
        );
        assert!(unclassified.contains(&"$.*".to_owned()), "{unclassified:?}");
        // Two data keys that mask alike don't overwrite each other.
        let (out, _) = masked_by("", json!({ "a@x.com": 1, "b@x.com": 2 }));
        assert_eq!(out.as_object().map(|m| m.len()), Some(2), "{out}");
    }

    proptest! {
        #[test]
        fn secrets_under_never_hide_or_unclassified_keys_never_survive(
            secret in "[A-Za-z0-9]{12,24}",
            key in "[a-z]{3,10}",
            nest in 0usize..3,
        ) {
            prop_assume!(!["name", "settings", "loans", "email", "card"].contains(&key.as_str()));
            let mut inner = json!({ key.clone(): secret.clone(), "national_id": secret.clone() });
            for _ in 0..nest {
                inner = json!({ "wrap": [inner] });
            }
            let doc = json!({ "national_id": secret.clone(), "recovery_codes": [secret.clone()], "extra": inner });
            let (out, _) = mask(doc);
            let text = serde_json::to_string(&out).expect("json");
            prop_assert!(!text.contains(&secret), "{text}");
        }
    }
}
