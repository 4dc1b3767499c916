//! The least any rewriter built on lol_html can cost for a policy: lol_html matching the
//! gateway's very selectors with handlers that do nothing. Shared by the criterion bench
//! (`benches/rewrite.rs`) and the load benchmark, which measures it in the same run as
//! the gateway.

use actas_server::gateway::rewrite::HtmlMasker;
use lol_html::html_content::Element;
use lol_html::{ElementContentHandlers, HandlerResult, HtmlRewriter, Settings};
use std::borrow::Cow;

/// Passes `page` through lol_html with `masker`'s selectors and empty handlers.
pub(crate) fn floor_rewrite(masker: &HtmlMasker, page: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len());
    let selectors = masker.selectors();
    let settings = selectors.iter().fold(Settings::new(), |s, selector| {
        s.append_element_content_handler((
            Cow::Borrowed(selector),
            ElementContentHandlers::default()
                .element(|_: &mut Element<'_, '_>| -> HandlerResult { Ok(()) }),
        ))
    });
    let mut r = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    if r.write(page).is_ok() {
        let _ = r.end();
    }
    out
}
