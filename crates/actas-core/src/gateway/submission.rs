//! What a request submits, and the rule that no masked value is ever written back
//! (invariant 16).
//!
//! The gateway serves masked values as placeholders that carry [`MASK_MARK`] (`•••• 4242`,
//! `s•••@acme.com`, `••• hidden`), and masked form controls carry them as their values
//! so the browser sends them back as they are rather than leaving the field out (which a
//! naive product would read as "cleared"). A submission that carries one is refused,
//! naming the fields — unless the route says the product treats a field left out as
//! unchanged (`partial_forms`), in which case those fields are left out before it is sent
//! on.

use crate::event::FieldChange;
use crate::policy::masking::{MASK_MARK, carries_placeholder};
use std::collections::HashMap;

/// Where a submitted field came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The query string.
    Query,
    /// The body: a form (URL-encoded or multipart) or JSON.
    Body,
}

/// One submitted field: its name (JSON members by their path, `address.city`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name.
    pub name: String,
    /// The value as text.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// What to do with a submission, by whether it carries placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    /// Nothing masked in it: send it on.
    Clean,
    /// The route takes partial forms: leave these fields out, send the rest on.
    Drop(Vec<String>),
    /// Refuse it: these fields would write a placeholder over the customer's data.
    Refuse(Vec<String>),
}

/// Decides on a submission: any field whose name or value carries a placeholder is
/// dropped where the route takes partial forms, and refuses the whole submission
/// otherwise. A placeholder in a name (a masked element's `name` attribute) can't be
/// left out meaningfully, so it always refuses.
pub fn write_back(fields: &[Field], partial_forms: bool) -> WriteBack {
    let mut carrying: Vec<String> = Vec::new();
    let mut in_names = false;
    for f in fields {
        if carries_placeholder(&f.name) {
            in_names = true;
        }
        if (carries_placeholder(&f.name) || carries_placeholder(&f.value))
            && !carrying.contains(&f.name)
        {
            carrying.push(f.name.clone());
        }
    }
    match (carrying.is_empty(), partial_forms && !in_names) {
        (true, _) => WriteBack::Clean,
        (false, true) => WriteBack::Drop(carrying),
        (false, false) => WriteBack::Refuse(carrying),
    }
}

/// A field's name for people: `address.city` as "address city", and a name that is itself
/// a placeholder as "a masked field".
pub fn field_words(name: &str) -> String {
    if name.contains(MASK_MARK) {
        "a masked field".to_owned()
    } else {
        name.replace(['_', '.'], " ")
    }
}

/// The change a signed action makes, for the agent to confirm: every submitted field
/// whose value differs from what `current` shows (values of one name joined by ", "),
/// from the value shown (`None` where the page shows none) to the one sent. Where
/// `current` is a whole form (`form`), a field it holds that the submission leaves out is
/// a change too, to nothing: a product reads an unticked box as "off". The values sent
/// are not masked here; the caller masks them as it masks any change it records.
pub fn changes(current: &[Field], submitted: &[Field], form: bool) -> Vec<FieldChange> {
    /// Values by name, names in first-seen order (a map, so a huge form stays linear).
    fn grouped(fields: &[Field]) -> (Vec<&str>, HashMap<&str, Vec<&str>>) {
        let mut order = Vec::new();
        let mut values: HashMap<&str, Vec<&str>> = HashMap::new();
        for f in fields.iter().filter(|f| f.name != "_method") {
            let entry = values.entry(f.name.as_str()).or_default();
            if entry.is_empty() {
                order.push(f.name.as_str());
            }
            entry.push(f.value.as_str());
        }
        (order, values)
    }
    let (shown_order, shown_values) = grouped(current);
    let (sent_order, sent_values) = grouped(submitted);
    let mut out: Vec<FieldChange> = Vec::new();
    for name in &sent_order {
        let to = &sent_values[name];
        // Lists compared as lists: one "a, b" is not the two values a and b.
        let from = shown_values.get(name);
        if from != Some(to) {
            out.push(FieldChange {
                field: (*name).to_owned(),
                from: from.map(|v| v.join(", ")),
                to: Some(to.join(", ")),
            });
        }
    }
    if form {
        for name in &shown_order {
            let from = shown_values[name].join(", ");
            if !sent_values.contains_key(name) {
                out.push(FieldChange {
                    field: (*name).to_owned(),
                    from: Some(from),
                    to: None,
                });
            }
        }
    }
    out
}

/// The change a JSON signed action makes: each top-level member sent, compared whole
/// with the member `current` shows, so an emptied object or a shortened list is a change
/// like any other (flattened to leaves, `{"address": {}}` would show nothing). `shown` is
/// `sent` as it may be shown (masked by the caller); a member it no longer has was
/// removed by masking and shows as hidden. A body that isn't an object is one change,
/// of the whole document. Where the body is the whole resource (`whole`: a route that
/// doesn't take partial forms, as a `PUT` replaces it), a member `current` has and the
/// body leaves out is a change too, to nothing.
pub fn json_changes(
    current: &serde_json::Value,
    sent: &serde_json::Value,
    shown: &serde_json::Value,
    whole: bool,
) -> Vec<FieldChange> {
    /// A member as the change shows it: a string as itself, anything else as JSON.
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    let hidden = || crate::policy::masking::HIDDEN.to_owned();
    let Some(members) = sent.as_object() else {
        if current == sent {
            return Vec::new();
        }
        return vec![FieldChange {
            field: "the whole document".into(),
            from: Some(text(current)),
            to: Some(if shown.is_null() && !sent.is_null() {
                hidden()
            } else {
                text(shown)
            }),
        }];
    };
    let mut out: Vec<FieldChange> = members
        .iter()
        .filter(|(name, value)| current.get(name.as_str()) != Some(*value))
        .map(|(name, _)| FieldChange {
            field: name.clone(),
            from: current.get(name.as_str()).map(text),
            to: Some(shown.get(name.as_str()).map_or_else(hidden, text)),
        })
        .collect();
    if whole && let Some(shown_now) = current.as_object() {
        out.extend(
            shown_now
                .iter()
                .filter(|(name, _)| !members.contains_key(name.as_str()))
                .map(|(name, value)| FieldChange {
                    field: name.clone(),
                    from: Some(text(value)),
                    to: None,
                }),
        );
    }
    out
}

/// Parses JSON, refusing an object that names a member twice: products differ on which
/// of the two they take, so what such a body changes can't be shown for certain.
/// (`serde_json` keeps the last silently and no crate offers the check, hence this
/// visitor.) The error says which member.
pub fn strict_json(bytes: &[u8]) -> Result<serde_json::Value, String> {
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Strict(serde_json::Value);
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrictVisitor).map(Strict)
        }
    }
    struct StrictVisitor;
    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = serde_json::Value;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(serde_json::Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(out.into())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Strict(v) = map.next_value()?;
                if out.insert(key.clone(), v).is_some() {
                    return Err(de::Error::custom(format!(
                        "it names the member “{key}” twice"
                    )));
                }
            }
            Ok(out.into())
        }
    }
    let mut d = serde_json::Deserializer::from_slice(bytes);
    let Strict(v) = Strict::deserialize(&mut d).map_err(|e| strip_position(&e))?;
    d.end().map_err(|e| strip_position(&e))?;
    if let Some(n) = number_texts(bytes).find(|n| !held_exactly(n)) {
        let n: String = if n.chars().count() > 40 {
            n.chars().take(40).chain(['…']).collect()
        } else {
            n.to_owned()
        };
        return Err(format!(
            "it holds the number {n}, written with more digits than can be shown for certain \
             (it would read as {}); send it with fewer digits, or as a string",
            n.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| "nothing".to_owned(), |v| v.to_string())
        ));
    }
    Ok(v)
}

/// The numbers of a valid JSON document, as written, in document order. Hand-written
/// because `serde_json` keeps only a number's value, and its exact text needs the
/// `arbitrary_precision` feature, which would change how every other parse in the
/// program reads numbers (features are shared by the whole build).
fn number_texts(json: &[u8]) -> impl Iterator<Item = &str> {
    let mut at = 0;
    let mut in_string = false;
    std::iter::from_fn(move || {
        while let Some(&b) = json.get(at) {
            if in_string {
                match b {
                    b'\\' => at += 2,
                    b'"' => {
                        in_string = false;
                        at += 1;
                    }
                    _ => at += 1,
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'-' | b'0'..=b'9' => {
                    let start = at;
                    while json.get(at).is_some_and(|c| {
                        matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                    }) {
                        at += 1;
                    }
                    // Only ASCII was taken, so this is text.
                    return std::str::from_utf8(&json[start..at]).ok();
                }
                _ => {}
            }
            at += 1;
        }
        None
    })
}

/// Whether `serde_json` holds the JSON number `text` exactly: as a whole number of 64
/// bits, or as a double whose shortest form has the very value written. Otherwise the
/// change shown (and the comparison with the current value) would be of another number
/// than the product receives: `0.30000000000000001` reads as `0.3`, and two different
/// 25-digit account numbers as the same one.
pub fn held_exactly(text: &str) -> bool {
    if !text.contains(['.', 'e', 'E'])
        && (text.parse::<u64>().is_ok() || text.parse::<i64>().is_ok())
    {
        return true;
    }
    // The double serde_json itself reads (correctly rounded with `float_roundtrip`,
    // which this crate turns on; without it, one in ten long numbers reads one step off).
    match serde_json::from_str::<f64>(text) {
        Ok(v) if v.is_finite() => {
            decimal(text).is_some() && decimal(text) == decimal(&format!("{v:e}"))
        }
        _ => false,
    }
}

/// A decimal number's value, written `0.DIGITS × 10^exponent` with no leading or
/// trailing zero in DIGITS (and zero as no digits), so that equal values compare equal
/// however they are written (`1.50`, `15e-1`).
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{whole}{fraction}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0');
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    let exponent = i64::try_from(whole.len())
        .ok()?
        .checked_add(exponent)?
        .checked_sub(i64::try_from(leading).ok()?)?;
    Some((negative, digits.to_owned(), exponent))
}

/// A `serde_json` error in words, without its "at line 1 column 9".
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Every string in a JSON document as a field named by its path (`$` left out; array
/// positions as `[n]`), keys included, so a placeholder anywhere is found.
pub fn json_fields(value: &serde_json::Value) -> Vec<Field> {
    fn walk(v: &serde_json::Value, at: &str, out: &mut Vec<Field>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    let name = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    walk(child, &name, out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}[{i}]"), out);
                }
            }
            serde_json::Value::String(s) => out.push(Field {
                name: at.to_owned(),
                value: s.clone(),
                source: Source::Body,
            }),
            other => out.push(Field {
                name: at.to_owned(),
                value: other.to_string(),
                source: Source::Body,
            }),
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

/// Removes from a JSON document every member and element whose value (or key) carries a
/// placeholder, for a route that takes partial forms.
pub fn drop_json_placeholders(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, v| {
                !carries_placeholder(k)
                    && !matches!(v, serde_json::Value::String(s) if carries_placeholder(s))
            });
            map.values_mut().for_each(drop_json_placeholders);
        }
        serde_json::Value::Array(items) => {
            items.retain(|v| !matches!(v, serde_json::Value::String(s) if carries_placeholder(s)));
            items.iter_mut().for_each(drop_json_placeholders);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_number_serde_json_would_round_is_refused_so_the_change_shown_is_the_one_sent() {
        for held in [
            "0",
            "-0",
            "7",
            "-7",
            "1.50",
            "15e-1",
            "1E+2",
            "0.1",
            "0.3",
            "1e22",
            "5e-324",
            "18446744073709551615",
            "-9223372036854775808",
            "123456.789",
            "1.7976931348623157e308",
            // Doubles exactly, which serde_json reads one step off without float_roundtrip.
            "940734561514116.5",
            "0.9424502837770503",
            "956.0342718892493",
        ] {
            assert!(held_exactly(held), "{held}");
            let read: f64 = serde_json::from_str(held).expect("reads");
            assert_eq!(
                read,
                held.parse::<f64>().expect("a number"),
                "{held} reads exactly"
            );
            let doc = format!(r#"{{"amount": {held}, "list": [{held}]}}"#);
            assert!(strict_json(doc.as_bytes()).is_ok(), "{doc}");
        }
        for rounded in [
            "0.30000000000000001",
            "12345678901234567890123",
            "18446744073709551616",
            "-9223372036854775809",
            "1.00000000000000000001",
            "9007199254740993.0",
        ] {
            assert!(!held_exactly(rounded), "{rounded}");
            let doc = format!(r#"{{"a": "x\\", "b": "\"1\"", "amount": [1, {rounded}]}}"#);
            let err = strict_json(doc.as_bytes()).expect_err("refused");
            assert!(err.contains(&format!("the number {rounded}")), "{err}");
            assert!(err.contains("as a string"), "{err}");
        }
        // Inside strings, digits are text.
        assert!(
            strict_json(br#"{"n": "0.30000000000000001", "m": "\"0.30000000000000001"}"#).is_ok()
        );
        // A very long one is named in part.
        let long = format!("[0.{}]", "1".repeat(400));
        let err = strict_json(long.as_bytes()).expect_err("refused");
        assert!(err.contains('…') && err.len() < 300, "{err}");
    }

    proptest::proptest! {
        /// Whatever a double is, written as serde_json or JavaScript writes it, it is held.
        #[test]
        fn every_double_as_written_is_held_exactly(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let text = serde_json::to_string(&v).expect("a finite double");
            proptest::prop_assert!(held_exactly(&text), "{}", text);
            // And serde_json reads back the very double (what the change shows).
            let read: f64 = serde_json::from_str(&text).expect("reads");
            proptest::prop_assert_eq!(read.to_bits(), v.to_bits(), "{}", text);
            let exp = format!("{v:e}");
            proptest::prop_assert!(held_exactly(&exp), "{}", exp);
        }
    }

    #[test]
    fn json_members_are_compared_whole_so_emptied_and_shortened_values_are_changes() {
        let current = json!({
            "name": "Acme Co",
            "tags": ["a", "b"],
            "address": { "city": "Lyon", "zip": "69001" },
            "active": true
        });
        let sent = json!({
            "name": "Acme Co",
            "tags": ["a"],
            "address": {},
            "active": false,
            "note": "new"
        });
        let mut shown = sent.clone();
        shown["note"] = json!("n•••");
        let changes = json_changes(&current, &sent, &shown, false);
        let by: Vec<(&str, Option<&str>, Option<&str>)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.from.as_deref(), c.to.as_deref()))
            .collect();
        // In the order serde_json keeps members: by name.
        assert_eq!(
            by,
            vec![
                ("active", Some("true"), Some("false")),
                (
                    "address",
                    Some(r#"{"city":"Lyon","zip":"69001"}"#),
                    Some("{}")
                ),
                ("note", None, Some("n•••")),
                ("tags", Some(r#"["a","b"]"#), Some(r#"["a"]"#)),
            ]
        );
        // A member masking removed is shown as hidden, never as absent.
        let shown = json!({ "name": "Acme Co" });
        let changes = json_changes(&json!({}), &json!({ "card": "4111" }), &shown, false);
        assert_eq!(
            changes[0].to.as_deref(),
            Some(crate::policy::masking::HIDDEN)
        );
        // A body that is not an object is one change.
        let changes = json_changes(&json!([1, 2]), &json!([1]), &json!([1]), true);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "the whole document");
        assert!(json_changes(&json!([1]), &json!([1]), &json!([1]), true).is_empty());
        // Where the body is the whole resource, a member left out is removed.
        let sent = json!({ "name": "Acme Co" });
        let changes = json_changes(&current, &sent, &sent, true);
        let removed: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.to.as_deref()))
            .collect();
        assert_eq!(
            removed,
            vec![("active", None), ("address", None), ("tags", None)]
        );
        assert!(json_changes(&current, &sent, &sent, false).is_empty());
    }

    #[test]
    fn json_naming_a_member_twice_is_refused_at_any_depth() {
        assert_eq!(
            strict_json(br#"{"a":{"b":1,"c":[{"x":1}]},"d":null}"#),
            Ok(json!({"a":{"b":1,"c":[{"x":1}]},"d":null}))
        );
        assert_eq!(
            strict_json(br#"{"name":"Acme","name":"Evil"}"#),
            Err("it names the member “name” twice".into())
        );
        assert!(strict_json(br#"{"a":[{"k":1,"k":2}]}"#).is_err());
        assert!(strict_json(br#"{"a":1} trailing"#).is_err());
        assert!(strict_json(b"{").is_err());
        // Numbers as serde_json reads them.
        assert_eq!(
            strict_json(b"[1, -2, 3.5, 18446744073709551615]"),
            Ok(json!([1, -2, 3.5, 18446744073709551615u64]))
        );
    }

    fn field(name: &str, value: &str) -> Field {
        Field {
            name: name.into(),
            value: value.into(),
            source: Source::Body,
        }
    }

    #[test]
    fn a_placeholder_sent_back_is_refused_or_left_out_by_name() {
        let fields = [
            field("name", "Acme Co"),
            field("email", "s•••@acme.com"),
            field("phone", "•••• 0123"),
            field("phone", "•••• 0123"),
        ];
        assert_eq!(
            write_back(&fields, false),
            WriteBack::Refuse(vec!["email".into(), "phone".into()])
        );
        assert_eq!(
            write_back(&fields, true),
            WriteBack::Drop(vec!["email".into(), "phone".into()])
        );
        assert_eq!(write_back(&fields[..1], false), WriteBack::Clean);
        let named = [field("••• hidden", "x")];
        assert_eq!(
            write_back(&named, true),
            WriteBack::Refuse(vec!["••• hidden".into()]),
            "a masked name can't be left out"
        );
        assert_eq!(field_words("••• hidden"), "a masked field");
        assert_eq!(field_words("address.post_code"), "address post code");
    }

    #[test]
    fn a_signed_change_lists_what_differs_and_what_a_form_leaves_out() {
        let current = [
            field("email", "s•••@acme.com"),
            field("phone", "+44 20 7946 0000"),
            field("tags", "a"),
            field("tags", "b"),
            field("newsletter", "on"),
        ];
        let sent = [
            field("phone", "+44 20 7946 0000"),
            field("email", "new@acme.com"),
            field("tags", "a"),
            field("tags", "b"),
            field("city", "Leeds"),
            field("_method", "PUT"),
        ];
        let change = |f: &str, from: Option<&str>, to: Option<&str>| FieldChange {
            field: f.into(),
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        assert_eq!(
            changes(&current, &sent, true),
            [
                change("email", Some("s•••@acme.com"), Some("new@acme.com")),
                change("city", None, Some("Leeds")),
                change("newsletter", Some("on"), None),
            ]
        );
        assert_eq!(
            changes(&current, &sent, false).len(),
            2,
            "a JSON document's members left out are left as they are"
        );
        assert!(changes(&current[1..2], &sent[..1], true).is_empty());
        assert_eq!(
            changes(&current[2..4], &[field("tags", "a, b")], false).len(),
            1,
            "one value \"a, b\" is not the two values a and b"
        );
    }

    #[test]
    fn json_placeholders_are_found_anywhere_and_dropped_where_allowed() {
        let mut doc = json!({
            "name": "Acme",
            "contact": { "email": "s•••@acme.com", "tags": ["a", "•••• 4242"] },
            "•••• 4242": true
        });
        let fields = json_fields(&doc);
        let names: Vec<&str> = fields
            .iter()
            .filter(|f| carries_placeholder(&f.value) || carries_placeholder(&f.name))
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["contact.email", "contact.tags[1]", "•••• 4242"]);
        drop_json_placeholders(&mut doc);
        assert_eq!(doc, json!({ "name": "Acme", "contact": { "tags": ["a"] } }));
    }
}
