//! The parts of a page that carry data or leave the gateway without being text a rule
//! masks: one pass over every element's attributes, and handlers for the elements that
//! need one.
//!
//! - Every URL an attribute holds (`href`, `src`, `action`, `srcset`, `poster`, `data`,
//!   `ping`, SVG `href`/`xlink:href`, `url()` in `style`, a meta refresh) that resolves to
//!   the product is made local to the gateway ([`Origins`]). `<base href>` is made local
//!   too, and removed if it names another origin (relative links, the banner's End form
//!   among them, would leave the gateway).
//! - `srcdoc` is removed: a frame's whole document, unmasked.
//! - Comments and `<noscript>` are removed: the agent's browser runs scripts, and both
//!   can hold what masking never sees.
//! - Inline scripts that are not JSON data, script templates, event handler attributes
//!   (`onclick=…`) and `javascript:` URLs are removed unless the route keeps them
//!   (`inline_scripts = true`): they can carry page state (`window.__STATE__ = …`) that no
//!   rule masks. Each kind removed is counted for `actas policy unclassified`.
//! - `<style>` elements have their `url()` and `@import` made local.

use super::links::{Origins, URL_ATTRIBUTES};
use super::mask::HeldText;
use super::{Handler, MAX_INLINE_JSON};
use lol_html::html_content::{ContentType, Element, TextChunk};
use lol_html::send::{ElementContentHandlers, SendHandlerTypes};
use lol_html::{HandlerResult, Selector};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

fn selector(text: &str) -> Selector {
    #[allow(clippy::expect_used)]
    Selector::from_str(text).expect("a constant selector")
}

fn note(report: &Mutex<BTreeSet<String>>, what: &str) {
    report
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(what.to_owned());
}

/// The attribute pass, on every element.
pub(super) fn attributes(
    origins: Option<Arc<Origins>>,
    inline_scripts: bool,
    report: Arc<Mutex<BTreeSet<String>>>,
) -> Handler {
    (
        Cow::Owned(selector("*")),
        ElementContentHandlers::default().element(
            move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                element(el, origins.as_deref(), inline_scripts, &report)
            },
        ),
    )
}

fn element(
    el: &mut Element<'_, '_, SendHandlerTypes>,
    origins: Option<&Origins>,
    inline_scripts: bool,
    report: &Mutex<BTreeSet<String>>,
) -> HandlerResult {
    let attrs: Vec<(String, String)> = el
        .attributes()
        .iter()
        .map(|a| (a.name(), a.value()))
        .collect();
    let tag = el.tag_name();
    for (name, value) in attrs {
        if name.starts_with("on") && name.len() > 2 {
            if !inline_scripts {
                el.remove_attribute(&name);
                note(report, "event handler attribute");
            }
            continue;
        }
        if name == "srcdoc" {
            el.remove_attribute(&name);
            note(report, "iframe srcdoc");
            continue;
        }
        let is_url = URL_ATTRIBUTES.contains(&name.as_str());
        if is_url
            && value
                .trim_start()
                .get(..11)
                .is_some_and(|s| s.eq_ignore_ascii_case("javascript:"))
        {
            if !inline_scripts {
                el.remove_attribute(&name);
                note(report, "javascript: URL");
            }
            continue;
        }
        let Some(origins) = origins else { continue };
        let local = match name.as_str() {
            _ if is_url => origins.local(&value),
            "srcset" | "imagesrcset" => origins.local_srcset(&value),
            "ping" => {
                let urls: Vec<String> = value
                    .split_whitespace()
                    .map(|u| origins.local(u).unwrap_or_else(|| u.to_owned()))
                    .collect();
                Some(urls.join(" ")).filter(|v| *v != value)
            }
            "style" => origins.local_css(&value),
            "content"
                if tag == "meta"
                    && el
                        .get_attribute("http-equiv")
                        .is_some_and(|h| h.eq_ignore_ascii_case("refresh")) =>
            {
                origins.local_refresh(&value)
            }
            _ => None,
        };
        if let Some(local) = local {
            el.set_attribute(&name, &local)?;
        } else if tag == "base" && name == "href" && super::links::could_leave(&value) {
            // Another origin: every relative link would leave the gateway.
            el.remove();
            return Ok(());
        }
    }
    Ok(())
}

/// `<noscript>`: removed.
pub(super) fn noscript() -> Handler {
    (
        Cow::Owned(selector("noscript")),
        ElementContentHandlers::default().element(
            |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                el.remove();
                Ok(())
            },
        ),
    )
}

/// `<style>`: `url()` and `@import` made local, the text held back until whole.
pub(super) fn style(origins: Option<Arc<Origins>>) -> Handler {
    let mut held = HeldText::up_to(MAX_INLINE_JSON);
    (
        Cow::Owned(selector("style")),
        ElementContentHandlers::default().text(move |t: &mut TextChunk<'_>| -> HandlerResult {
            let Some(origins) = origins.as_deref() else {
                return Ok(());
            };
            let Some(whole) = held.hold(t) else {
                return Ok(());
            };
            match whole {
                // Too long to read whole: dropped, never passed unread.
                None => t.remove(),
                Some(css) => {
                    let out = origins.local_css(&css).unwrap_or(css);
                    t.replace(&out, ContentType::Html);
                }
            }
            Ok(())
        }),
    )
}

/// Whether a `<script type>` is JavaScript (an empty type is).
pub(super) fn is_javascript(kind: &str) -> bool {
    matches!(
        kind,
        "" | "text/javascript"
            | "application/javascript"
            | "module"
            | "application/ecmascript"
            | "text/ecmascript"
            | "text/jsx"
            | "text/babel"
    )
}
