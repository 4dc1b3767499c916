//! Scripts in a page. JSON data a page carries for its scripts —
//! `<script type="application/json">`, `ld+json`, any `+json` type, as frameworks embed a
//! page's state — is masked by the policy's JSON rules like a JSON response, unclassified
//! fields hidden and counted. Each document is held back until whole (up to
//! [`MAX_INLINE_JSON`]); one that is too large or isn't JSON becomes `null`.
//!
//! Inline JavaScript (`window.__STATE__ = …`, `self.__next_f.push(…)`) and script
//! templates (`text/template`, `text/x-handlebars-template`) carry data no rule can mask,
//! so they are removed — and counted — unless the route keeps them. Scripts loaded from a
//! `src` are kept: they are assets, and pass only as the gateway's asset rules allow.

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

/// The handlers on `selector` (`script`).
pub(super) fn scripts(
    selector: &Selector,
    rules: Arc<[MaskingRule]>,
    unclassified: MaskRule,
    inline_scripts: bool,
    report: Arc<Mutex<BTreeSet<String>>>,
) -> Handler {
    let is_json = Arc::new(AtomicBool::new(false));
    let seen = is_json.clone();
    let noted = report.clone();
    let mut held = HeldText::up_to(MAX_INLINE_JSON);
    let handlers = ElementContentHandlers::default()
        .element(
            move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                let kind = el.get_attribute("type").unwrap_or_default();
                let kind = kind.trim().to_ascii_lowercase();
                let json =
                    kind == "application/json" || kind == "text/json" || kind.ends_with("+json");
                seen.store(json, Ordering::Relaxed);
                if json || el.has_attribute("src") || inline_scripts {
                    return Ok(());
                }
                el.remove();
                noted.lock().unwrap_or_else(PoisonError::into_inner).insert(
                    if super::edges::is_javascript(&kind) {
                        "inline script".to_owned()
                    } else {
                        "script template".to_owned()
                    },
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
