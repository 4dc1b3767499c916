//! Masking JSON by policy: what the gateway applies to JSON responses and what the ledger
//! applies to before/after values (invariant 6).
//!
//! Each value is matched against the policy's JSON-path rules, most specific place first:
//! a rule on an object or array covers everything inside it. Values no rule classifies
//! get the policy's default (`hide` unless the policy says otherwise) and their paths are
//! reported, so the team can see what still needs classifying. `never` removes the key
//! (or the array element) entirely.

use crate::policy::masking::{Location, MaskRule, MaskingRule, Target};
use serde_json::Value;
use std::collections::BTreeSet;

/// What masking did, for counting and for `actas policy unclassified`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskReport {
    /// Paths (e.g. `$.loans[*].iban`) of values no rule classified.
    pub unclassified: BTreeSet<String>,
}

fn path_text(at: &[Location<'_>]) -> String {
    let mut out = String::from("$");
    for l in at {
        match l {
            Location::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Location::Index(_) => out.push_str("[*]"),
        }
    }
    out
}

fn rule_for(rules: &[&MaskingRule], at: &[Location<'_>]) -> Option<MaskRule> {
    rules.iter().find_map(|r| match &r.target {
        Target::Json(p) if p.matches(at) => Some(r.rule),
        _ => None,
    })
}

/// What to do with a value once a rule (or the default) applies to it.
fn apply(rule: MaskRule, value: &mut Value) -> bool {
    match rule {
        MaskRule::Show => true,
        MaskRule::Never => false,
        MaskRule::Hide => {
            *value = Value::String(crate::policy::masking::HIDDEN.to_owned());
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
                None => crate::policy::masking::HIDDEN.to_owned(),
            });
            true
        }
    }
}

/// Masks `value` (found at `at`) in place. Returns false when the value itself must be
/// removed.
fn walk(
    value: &mut Value,
    at: &[Location<'_>],
    rules: &[&MaskingRule],
    default: MaskRule,
    report: &mut MaskReport,
) -> bool {
    if let Some(rule) = rule_for(rules, at) {
        return apply(rule, value);
    }
    match value {
        Value::Object(map) => {
            let names: Vec<String> = map.keys().cloned().collect();
            for name in names {
                let mut inner = at.to_vec();
                inner.push(Location::Key(&name));
                let keep = map
                    .get_mut(&name)
                    .is_none_or(|child| walk(child, &inner, rules, default, report));
                if !keep {
                    map.remove(&name);
                }
            }
            true
        }
        Value::Array(items) => {
            let mut index = 0;
            items.retain_mut(|item| {
                let mut inner = at.to_vec();
                inner.push(Location::Index(index));
                index += 1;
                walk(item, &inner, rules, default, report)
            });
            true
        }
        _ => {
            report.unclassified.insert(path_text(at));
            apply(default, value)
        }
    }
}

/// Masks a JSON document by the JSON-path rules in `rules` (HTML rules are ignored),
/// with `default` for what no rule classifies.
pub fn mask_json(value: &mut Value, rules: &[MaskingRule], default: MaskRule) -> MaskReport {
    let json_rules: Vec<&MaskingRule> = rules
        .iter()
        .filter(|r| matches!(r.target, Target::Json(_)))
        .collect();
    let mut report = MaskReport::default();
    if !walk(value, &[], &json_rules, default, &mut report) {
        *value = Value::Null;
    }
    report
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
                "email": "s***@acme.com",
                "card": { "number": "•••• 4242", "brand": "[hidden]" },
                "loans": [{ "id": "LA-77", "iban": "•••• 5555", "rate": "[hidden]" }],
                "settings": { "tax": { "rate": "20%" } },
                "internal_notes": "[hidden]"
            })
        );
        let unclassified: Vec<&str> = report.unclassified.iter().map(String::as_str).collect();
        assert_eq!(
            unclassified,
            ["$.card.brand", "$.internal_notes", "$.loans[*].rate"]
        );
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
