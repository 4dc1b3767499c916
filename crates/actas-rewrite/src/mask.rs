//! Masking the elements a policy's CSS selectors match, by element, not by text node:
//! `never` removes the element; `hide` replaces its content; `last4` and `email` gather
//! all the text inside it (across child elements, so a number split over several
//! `<span>`s can't show its middle) and write it out once, masked, before its end tag.
//! Every attribute of a masked element, and of the elements inside it, is masked by the
//! same rule, except `class` and names chosen by the page's authors (see
//! [`mask_attributes`]).

use super::{Handler, MASKED_ATTRIBUTE, MAX_MASKED_TEXT, SHOWN_ATTRIBUTE};
use actas_core::mask::is_name_like;
use actas_core::policy::masking::{HIDDEN, MaskRule};
use lol_html::html_content::{ContentType, Element, EndTag, TextChunk};
use lol_html::send::{ElementContentHandlers, SendHandlerTypes};
use lol_html::{HandlerResult, Selector};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

/// Elements whose `name` is a field's name, which a form submits (kept when it looks like
/// a name, `name="email"`, so the gateway can tell a masked field's placeholder coming
/// back; `name="card-4111111111114242"` is masked). Every other attribute of a masked
/// element — `id` included — is masked but `class`: an `id` can be the data itself.
const FIELD_ELEMENTS: &[&str] = &["input", "select", "textarea", "button"];

/// `<input type>` values kept as they are.
const INPUT_TYPES: &[&str] = &[
    "button",
    "checkbox",
    "color",
    "date",
    "datetime-local",
    "email",
    "file",
    "hidden",
    "image",
    "month",
    "number",
    "password",
    "radio",
    "range",
    "reset",
    "search",
    "submit",
    "tel",
    "text",
    "time",
    "url",
    "week",
];

/// Masks every attribute of `el` that could hold data by `rule`: all but `class`, the
/// gateway's own markers, names that look like names, a known `type`, and empty ones
/// (`data-secret`, `disabled`). Marks `el` as masked when it changed anything.
pub(super) fn mask_attributes(
    el: &mut Element<'_, '_, SendHandlerTypes>,
    rule: MaskRule,
) -> HandlerResult {
    if rule == MaskRule::Show {
        return Ok(());
    }
    let field = FIELD_ELEMENTS.contains(&el.tag_name().as_str());
    let data: Vec<(String, String)> = el
        .attributes()
        .iter()
        .map(|a| (a.name(), a.value()))
        .filter(|(name, value)| !value.is_empty() && !keeps(name, value, field))
        .collect();
    let changed = !data.is_empty();
    for (name, value) in data {
        let masked = rule.apply(&value).unwrap_or_else(|| HIDDEN.to_owned());
        el.set_attribute(&name, &masked)?;
    }
    if changed {
        el.set_attribute(MASKED_ATTRIBUTE, "")?;
    }
    Ok(())
}

/// Whether an attribute of a masked element keeps its value.
fn keeps(name: &str, value: &str, field: bool) -> bool {
    name == "class"
        || name.starts_with("data-actas-")
        || (field && name == "name" && is_name_like(value))
        || (field && name == "type" && INPUT_TYPES.contains(&value.to_ascii_lowercase().as_str()))
}

/// The elements inside those `selector` matches: `a, b.c` becomes `a *, b.c *`. The list
/// is split at commas outside brackets, parentheses and quotes (lol_html has no API to
/// build a selector, so this is done on the text; what it gets wrong fails to parse, and
/// the policy is refused at start).
pub(super) fn descendants_of(selector: &str) -> String {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, None, 0);
    for (i, c) in selector.char_indices() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts
        .iter()
        .map(|p| format!("{} *", p.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text gathered inside one `last4` or `email` element, until its end tag.
#[derive(Default)]
struct Gathered {
    text: String,
    overflow: bool,
}

/// The elements whose text is being gathered, innermost last.
type Open = Arc<Mutex<Vec<Arc<Mutex<Gathered>>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The names of revealed rules met, shared with the stream.
pub(super) type Revealed = Arc<Mutex<BTreeSet<String>>>;

/// The handlers for one policy rule on `selector`; `reveals` names the rule, and where to
/// say it was met, when it shows a value the session was approved to see.
pub(super) fn rule_handlers(
    selector: &Selector,
    rule: MaskRule,
    reveals: Option<(String, Revealed)>,
) -> Handler {
    let open: Open = Arc::default();
    let opened = open.clone();
    let handlers = ElementContentHandlers::default().element(
        move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
            match rule {
                MaskRule::Never => {
                    el.remove();
                    return Ok(());
                }
                MaskRule::Show => {
                    if let Some((name, met)) = &reveals {
                        lock(met).insert(name.clone());
                    }
                    // Classified: the form-field pass must not hide it as unclassified.
                    el.set_attribute(SHOWN_ATTRIBUTE, "")?;
                    return Ok(());
                }
                MaskRule::Hide => {
                    if el.can_have_content() {
                        el.set_inner_content(HIDDEN, ContentType::Text);
                    }
                }
                MaskRule::Last4 | MaskRule::Email => {
                    if el.can_have_content() {
                        gather(el, &opened, rule)?;
                    }
                }
            }
            mask_attributes(el, rule)?;
            el.set_attribute(MASKED_ATTRIBUTE, "")?;
            Ok(())
        },
    );
    let handlers = if matches!(rule, MaskRule::Last4 | MaskRule::Email) {
        handlers.text(move |t: &mut TextChunk<'_>| -> HandlerResult {
            // Every piece of text inside goes to the innermost element being gathered,
            // and is written out only as part of its masked whole.
            if let Some(current) = lock(&open).last().cloned() {
                let mut g = lock(&current);
                if !g.overflow {
                    g.text.push_str(t.as_str());
                    if g.text.len() > MAX_MASKED_TEXT {
                        g.text.clear();
                        g.overflow = true;
                    }
                }
            }
            t.remove();
            Ok(())
        })
    } else {
        handlers
    };
    (Cow::Owned(selector.clone()), handlers)
}

/// Starts gathering `el`'s text; its end tag writes the text out masked. An element
/// closed implicitly (`<p>` by the next `<p>`) gets no end tag call: its text is lost,
/// never shown unmasked.
fn gather(
    el: &mut Element<'_, '_, SendHandlerTypes>,
    open: &Open,
    rule: MaskRule,
) -> HandlerResult {
    let mine: Arc<Mutex<Gathered>> = Arc::default();
    lock(open).push(mine.clone());
    let open = open.clone();
    el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| -> HandlerResult {
        lock(&open).retain(|g| !Arc::ptr_eq(g, &mine));
        let g = lock(&mine);
        let masked = if g.overflow {
            HIDDEN.to_owned()
        } else if g.text.trim().is_empty() {
            g.text.clone()
        } else {
            rule.apply(g.text.trim())
                .unwrap_or_else(|| HIDDEN.to_owned())
        };
        end.before(&masked, ContentType::Text);
        Ok(())
    }))
}

/// The handlers for what is inside a rule's elements: their attributes are masked too
/// (`<td class="card-number"><a href="/cards/4111…">`).
pub(super) fn inside_handlers(selector: &Selector, rule: MaskRule) -> Handler {
    (
        Cow::Owned(selector.clone()),
        ElementContentHandlers::default().element(
            move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                mask_attributes(el, rule)
            },
        ),
    )
}

/// A text node held back chunk by chunk until it is whole, so that it can be masked as
/// one; memory stays bounded by `limit` (a longer node is given up on, never let through).
pub(super) struct HeldText {
    pending: String,
    overflow: bool,
    limit: usize,
}

impl HeldText {
    pub(super) fn up_to(limit: usize) -> Self {
        Self {
            pending: String::new(),
            overflow: false,
            limit,
        }
    }

    /// Takes `t` out of the output. On the node's last chunk returns the whole text, or
    /// `Some(None)` when it was longer than the limit; before that, `None`.
    pub(super) fn hold(&mut self, t: &mut TextChunk<'_>) -> Option<Option<String>> {
        if !self.overflow {
            self.pending.push_str(t.as_str());
            if self.pending.len() > self.limit {
                self.pending.clear();
                self.overflow = true;
            }
        }
        if !t.last_in_text_node() {
            t.remove();
            return None;
        }
        let whole = std::mem::take(&mut self.pending);
        Some((!std::mem::take(&mut self.overflow)).then_some(whole))
    }
}
