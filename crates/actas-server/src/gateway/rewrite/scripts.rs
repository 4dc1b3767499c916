//! Scripts in a page. JSON data a page carries for its scripts —
//! `<script type="application/json">`, `ld+json`, any `+json` type, as frameworks embed a
//! page's state — is masked by the policy's JSON rules like a JSON response, unclassified
//! fields hidden and counted. Each document is held back until whole (up to
//! [`MAX_INLINE_JSON`]); one that is too large or isn't JSON becomes `null`.

use super::mask::HeldText;
use super::{Handler, MAX_INLINE_JSON};
use actas_core::policy::masking::{MaskRule, MaskingRule};
use lol_html::html_content::{ContentType, Element, TextChunk};
use lol_html::send::{ElementContentHandlers, SendHandlerTypes};
use lol_html::{HandlerResult, Selector};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The handlers on `selector` (`script[type]`).
pub(super) fn inline_json(
    selector: &Selector,
    rules: Arc<[MaskingRule]>,
    unclassified: MaskRule,
    report: Arc<Mutex<BTreeSet<String>>>,
) -> Handler {
    let is_json = Arc::new(AtomicBool::new(false));
    let seen = is_json.clone();
    let mut held = HeldText::up_to(MAX_INLINE_JSON);
    let handlers = ElementContentHandlers::default()
        .element(
            move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                let kind = el.get_attribute("type").unwrap_or_default();
                let kind = kind.trim().to_ascii_lowercase();
                seen.store(
                    kind == "application/json" || kind == "text/json" || kind.ends_with("+json"),
                    Ordering::Relaxed,
                );
                Ok(())
            },
        )
        .text(move |t: &mut TextChunk<'_>| -> HandlerResult {
            if !is_json.load(Ordering::Relaxed) {
                return Ok(());
            }
            let Some(whole) = held.hold(t) else {
                return Ok(());
            };
            let Some(whole) = whole else {
                t.replace("null", ContentType::Html);
                return Ok(());
            };
            let masked = match serde_json::from_str::<serde_json::Value>(&whole) {
                Ok(mut doc) => {
                    let found = actas_core::mask::mask_json(&mut doc, &rules, unclassified);
                    report
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend(found.unclassified);
                    // `<` only occurs inside JSON strings, where `\u003c` means the same
                    // and can't close the script element.
                    serde_json::to_string(&doc)
                        .unwrap_or_else(|_| "null".to_owned())
                        .replace('<', "\\u003c")
                }
                Err(_) if whole.trim().is_empty() => whole,
                Err(_) => "null".to_owned(),
            };
            t.replace(&masked, ContentType::Html);
            Ok(())
        });
    (Cow::Owned(selector.clone()), handlers)
}
