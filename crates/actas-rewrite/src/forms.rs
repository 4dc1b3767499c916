//! Form controls, after the policy's rules have run on a page: what a control shows and
//! what the browser will send back.
//!
//! - A control whose `name` no rule classifies is hidden, like an unclassified JSON field
//!   (a new "backup email" on a profile page stays hidden until someone classifies it),
//!   and counted for `actas policy unclassified` as `field <name>`. `field` rules and
//!   top-level JSON rules (`$.name`) classify controls by name.
//! - A masked control is served so that the browser can only send its placeholder back,
//!   never leave it out (a naive product reads a missing field as "cleared"): text fields
//!   become `readonly` with the placeholder as their value; checkboxes, radio buttons and
//!   selects are `disabled` (which the browser leaves out) with a hidden twin carrying the
//!   placeholder; a control removed by `never` leaves a twin before its form's end. Each is
//!   marked `data-actas-masked` and titled so the agent sees why it can't be edited. The
//!   gateway then refuses a submission carrying a placeholder, or leaves it out where the
//!   route takes partial forms (see `record`).

use super::{Handler, MASKED_ATTRIBUTE, SHOWN_ATTRIBUTE, mask::mask_attributes};
use actas_core::policy::masking::{HIDDEN, MaskRule, MaskingRule, field_rule};
use lol_html::html_content::{ContentType, Element, EndTag};
use lol_html::send::{ElementContentHandlers, SendHandlerTypes};
use lol_html::{HandlerResult, Selector};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

/// What a masked control says when the agent points at it.
const MASKED_TITLE: &str = "Masked by actas: this field keeps its value when the form is saved";

/// Inputs whose `value` is a label, not data.
const LABEL_TYPES: &[&str] = &["submit", "button", "reset", "image"];

/// The names of controls masked out of the form being written, for twins at its end.
type Removed = Arc<Mutex<Vec<String>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A hidden input carrying `name`'s placeholder (a name that is data is masked too).
fn twin(name: &str) -> String {
    let name = if actas_core::mask::is_name_like(name) {
        name
    } else {
        HIDDEN
    };
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\" {MASKED_ATTRIBUTE}>",
        escape(name),
        HIDDEN
    )
}

/// `text` safe inside a double-quoted attribute.
fn escape(text: &str) -> String {
    htmlize::escape_attribute(text).into_owned()
}

/// The handlers: one on every form (twins for what was masked out of it), one on every
/// named control. Registered after the policy's rules, so they see what those did.
/// `rules` classify controls by name (`field` rules and top-level JSON rules).
pub(super) fn handlers(
    rules: Arc<[MaskingRule]>,
    default: MaskRule,
    unclassified: &Arc<Mutex<BTreeSet<String>>>,
    revealed: &Arc<Mutex<BTreeSet<String>>>,
) -> Vec<Handler> {
    let removed: Removed = Arc::default();
    let forms = removed.clone();
    let form = (
        Cow::Owned(Selector::from_str("form").unwrap_or_else(|_| unreachable_selector())),
        ElementContentHandlers::default().element(
            move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                lock(&forms).clear();
                if el.removed() || !el.can_have_content() {
                    return Ok(());
                }
                let forms = forms.clone();
                el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| -> HandlerResult {
                    let names = std::mem::take(&mut *lock(&forms));
                    let twins: String = names.iter().map(|n| twin(n)).collect();
                    end.before(&twins, ContentType::Html);
                    Ok(())
                }))
            },
        ),
    );
    let unclassified = unclassified.clone();
    let revealed = revealed.clone();
    let controls = (
        Cow::Owned(
            Selector::from_str("input[name], textarea[name], select[name]")
                .unwrap_or_else(|_| unreachable_selector()),
        ),
        ElementContentHandlers::default().element(
            move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                let fields = Fields {
                    rules: &rules,
                    default,
                    unclassified: &unclassified,
                    revealed: &revealed,
                };
                control(el, &fields, &removed)
            },
        ),
    );
    vec![form, controls]
}

/// How controls are classified, and where what that found is noted.
struct Fields<'a> {
    rules: &'a [MaskingRule],
    default: MaskRule,
    unclassified: &'a Mutex<BTreeSet<String>>,
    revealed: &'a Mutex<BTreeSet<String>>,
}

/// The selectors above are constants that parse; this is never reached.
fn unreachable_selector() -> Selector {
    #[allow(clippy::expect_used)]
    Selector::from_str("*").expect("a valid selector")
}

fn control(
    el: &mut Element<'_, '_, SendHandlerTypes>,
    fields: &Fields<'_>,
    removed: &Removed,
) -> HandlerResult {
    let name = el.get_attribute("name").unwrap_or_default();
    if el.removed() {
        // Masked out with what held it: the form still says the field exists.
        lock(removed).push(name);
        return Ok(());
    }
    let tag = el.tag_name().to_ascii_lowercase();
    let kind = el
        .get_attribute("type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if tag == "input" && LABEL_TYPES.contains(&kind.as_str()) {
        return Ok(());
    }
    if el.has_attribute(SHOWN_ATTRIBUTE) {
        el.remove_attribute(SHOWN_ATTRIBUTE);
        return Ok(());
    }
    if !el.has_attribute(MASKED_ATTRIBUTE) {
        let rule = match field_rule(fields.rules, &name) {
            Some(r) => {
                if r.reveals() {
                    lock(fields.revealed).insert(r.target_text());
                }
                r.rule
            }
            None => {
                lock(fields.unclassified).insert(format!("field {name}"));
                fields.default
            }
        };
        match rule {
            MaskRule::Show => return Ok(()),
            MaskRule::Never => {
                el.remove();
                lock(removed).push(name);
                return Ok(());
            }
            _ => {
                if tag == "textarea" {
                    el.set_inner_content(HIDDEN, ContentType::Text);
                }
                if tag == "select" {
                    el.set_inner_content(
                        &format!("<option selected>{HIDDEN}</option>"),
                        ContentType::Html,
                    );
                }
                // An empty field stays empty: sent back as it was, it changes nothing.
                mask_attributes(el, rule)?;
            }
        }
    }
    lock_control(el, &tag, &kind, &name)
}

/// Serves a masked control so that only its placeholder can go back.
fn lock_control(
    el: &mut Element<'_, '_, SendHandlerTypes>,
    tag: &str,
    kind: &str,
    name: &str,
) -> HandlerResult {
    el.set_attribute(MASKED_ATTRIBUTE, "")?;
    el.set_attribute("title", MASKED_TITLE)?;
    let toggles = tag == "input" && matches!(kind, "checkbox" | "radio");
    if tag == "select" || toggles {
        // The browser leaves a disabled control out; its twin says the field is masked.
        if toggles {
            el.remove_attribute("checked");
        }
        el.set_attribute("disabled", "")?;
        el.after(&twin(name), ContentType::Html);
    } else if tag == "input" && kind == "hidden" {
        // Its value is the placeholder already; nothing to show.
    } else {
        el.set_attribute("readonly", "")?;
        el.set_attribute("aria-readonly", "true")?;
    }
    Ok(())
}
