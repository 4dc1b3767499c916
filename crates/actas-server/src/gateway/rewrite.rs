//! Rewriting HTML on its way to the agent's browser (lol_html, streaming): the banner goes
//! in as the first thing in `<body>`, and elements matched by the policy's CSS selectors
//! are masked — `never` removes them, `hide` replaces their content, `last4` and `email`
//! keep only what the rule allows, in text and in `value` attributes alike.

use actas_core::policy::Policy;
use actas_core::policy::masking::{HIDDEN, MaskRule, MaskingRule, Target};
use bytes::Bytes;
use lol_html::html_content::{ContentType, Element, TextChunk};
use lol_html::send::SendHandlerTypes;
use lol_html::send::{ElementContentHandlers, HtmlRewriter, Settings};
use lol_html::{HandlerResult, MemorySettings, OutputSink, Selector};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The most the HTML parser may hold at once (a tag split across chunks, say). A page that
/// needs more is refused rather than growing memory without bound.
pub const PARSER_MEMORY: usize = 4 * 1024 * 1024;

/// The longest text node masked by `last4` or `email` that is held back to be masked whole;
/// a longer one is hidden entirely.
pub const MAX_MASKED_TEXT: usize = 64 * 1024;

/// The largest JSON document inside a page's `<script type="application/json">` that is
/// held back to be masked whole; a larger one is replaced by `null`.
pub const MAX_INLINE_JSON: usize = 1024 * 1024;

/// Why HTML could not be rewritten (the response is then refused, never passed through).
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// A policy selector is not valid CSS for the rewriter.
    #[error("the masking selector {selector:?} can't be used: {why}")]
    Selector {
        /// The selector.
        selector: String,
        /// What the rewriter said.
        why: String,
    },
    /// The page could not be parsed or rewritten.
    #[error("the page could not be rewritten: {0}")]
    Rewrite(String),
}

/// The HTML masking rules of a policy, with their selectors parsed once at start.
#[derive(Debug, Clone)]
pub struct HtmlMasker {
    rules: Vec<(Selector, MaskRule)>,
    /// For each rule that keeps the element (`hide`, `last4`, `email`): its elements'
    /// descendants, whose attributes are masked too (`<td class="card-number"><a
    /// href="/cards/4111…">`).
    inside: Vec<(Selector, MaskRule)>,
    links: Vec<(Selector, &'static str)>,
    body: Selector,
    /// `script[type]`: JSON data in a page is masked by the JSON rules.
    scripts: Selector,
    /// The policy's JSON rules and what unclassified JSON fields get, for inline JSON.
    json_rules: Arc<[MaskingRule]>,
    unclassified: MaskRule,
}

/// Where absolute links to the product can hide, and in which attribute.
const LINK_ATTRIBUTES: &[(&str, &str)] = &[
    ("a[href]", "href"),
    ("link[href]", "href"),
    ("area[href]", "href"),
    ("[src]", "src"),
    ("form[action]", "action"),
    ("[formaction]", "formaction"),
    ("meta[http-equiv]", "content"),
];

/// The product's origin as it appears in URLs that must stay on the gateway.
#[derive(Debug, Clone)]
pub struct ProductOrigin {
    /// `//host:port`: what every absolute or scheme-relative URL to it contains.
    needle: String,
}

impl ProductOrigin {
    /// From the product's base URL (`http://product:8082`); `None` if it names no host.
    pub fn new(origin: &str) -> Option<Self> {
        let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
        let authority = authority.trim_end_matches('/');
        (!authority.is_empty()).then(|| Self {
            needle: format!("//{authority}"),
        })
    }

    /// `value` with every URL on the product's origin made local to the gateway:
    /// `http://product:8082/x`, `https://product:8082/x` and the scheme-relative
    /// `//product:8082/x` all become `/x`, wherever they stand in the value (a meta
    /// refresh's `0; url=…`, say). `None` when there is nothing to change. A longer host
    /// or port that merely starts the same (`product:80823`) is left alone.
    pub fn keep_on_gateway(&self, value: &str) -> Option<String> {
        let needle = self.needle.as_str();
        if !value.contains(needle) {
            return None;
        }
        let mut out = String::with_capacity(value.len());
        let (mut rest, mut changed) = (value, false);
        while let Some(at) = rest.find(needle) {
            let after = &rest[at + needle.len()..];
            let ends = after.chars().next().is_none_or(|c| {
                matches!(c, '/' | '?' | '#' | ',' | '"' | '\'') || c.is_whitespace()
            });
            let before = &rest[..at];
            let scheme = ["https:", "http:"].iter().find(|s| {
                before.len() >= s.len() && before[before.len() - s.len()..].eq_ignore_ascii_case(s)
            });
            let start = before.len() - scheme.map_or(0, |s| s.len());
            // What precedes the URL must end a token: the value's start, a space, `=`, `,`.
            let bounded = before[..start]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || matches!(c, '=' | ',' | '"' | '\''));
            if ends && bounded {
                out.push_str(&before[..start]);
                if !after.starts_with('/') {
                    out.push('/');
                }
                changed = true;
            } else {
                out.push_str(&rest[..at + needle.len()]);
            }
            rest = after;
        }
        out.push_str(rest);
        changed.then_some(out)
    }
}

fn parse(selector: &str) -> Result<Selector, RewriteError> {
    Selector::from_str(selector).map_err(|e| RewriteError::Selector {
        selector: selector.to_owned(),
        why: e.to_string(),
    })
}

type Handler = (Cow<'static, Selector>, ElementContentHandlers<'static>);

impl HtmlMasker {
    /// Checks every HTML selector of the policy's masking rules; its JSON rules mask JSON
    /// data inside pages.
    pub fn new(policy: &Policy) -> Result<Self, RewriteError> {
        let rules = policy.masking();
        let mut out = Vec::new();
        let mut inside = Vec::new();
        for r in rules {
            if let Target::Html(selector) = &r.target {
                out.push((parse(selector)?, r.rule));
                if matches!(r.rule, MaskRule::Hide | MaskRule::Last4 | MaskRule::Email) {
                    inside.push((parse(&descendants_of(selector))?, r.rule));
                }
            }
        }
        let links = LINK_ATTRIBUTES
            .iter()
            .map(|(s, a)| Ok((parse(s)?, *a)))
            .collect::<Result<_, RewriteError>>()?;
        Ok(Self {
            rules: out,
            inside,
            links,
            body: parse("body")?,
            scripts: parse("script[type]")?,
            json_rules: rules
                .iter()
                .filter(|r| matches!(r.target, Target::Json(_)))
                .cloned()
                .collect(),
            unclassified: policy.unclassified,
        })
    }

    /// Every selector the rewriter matches on a page that has a product origin to keep links
    /// inside the gateway: the links', `body` for the banner, and the policy's. What lol_html
    /// must track on each page whatever the handlers then do — the benchmarks use it to
    /// measure the parser's cost for these selectors alone.
    pub fn selectors(&self) -> impl Iterator<Item = &Selector> {
        self.links
            .iter()
            .map(|(s, _)| s)
            .chain([&self.body, &self.scripts])
            .chain(self.rules.iter().map(|(s, _)| s))
            .chain(self.inside.iter().map(|(s, _)| s))
    }

    /// Rewrites a whole HTML document: masks it and puts `banner` (HTML) first in `<body>`.
    pub fn rewrite(&self, input: &[u8], banner: &str) -> Result<Vec<u8>, RewriteError> {
        self.rewrite_chunks([input], banner, None)
    }

    /// Rewrites a document arriving in pieces, collecting the output (for tests and small
    /// pages; the gateway streams with [`HtmlMasker::stream`]).
    pub fn rewrite_chunks<'a>(
        &self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        banner: &str,
        product_origin: Option<&str>,
    ) -> Result<Vec<u8>, RewriteError> {
        let mut stream = self.stream(banner, product_origin);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&stream.feed(chunk)?);
        }
        out.extend_from_slice(&stream.finish()?);
        Ok(out)
    }

    /// Starts rewriting one document. Absolute links to `product_origin` (e.g.
    /// `http://127.0.0.1:8082`) become relative, so following them stays inside the gateway.
    /// Memory stays bounded whatever the document's size: each fed chunk comes back
    /// rewritten, less whatever the parser must hold (at most [`PARSER_MEMORY`]).
    pub fn stream(&self, banner: &str, product_origin: Option<&str>) -> HtmlStream {
        let mut handlers: Vec<Handler> = Vec::new();
        if let Some(origin) = product_origin.and_then(ProductOrigin::new) {
            let origin = Arc::new(origin);
            for (selector, attribute) in &self.links {
                let origin = origin.clone();
                let attribute = *attribute;
                handlers.push((
                    Cow::Owned(selector.clone()),
                    ElementContentHandlers::default().element(
                        move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                            if let Some(local) = el
                                .get_attribute(attribute)
                                .and_then(|v| origin.keep_on_gateway(&v))
                            {
                                el.set_attribute(attribute, &local)?;
                            }
                            Ok(())
                        },
                    ),
                ));
            }
        }
        let banner = banner.to_owned();
        let mut banner_done = false;
        handlers.push((
            Cow::Owned(self.body.clone()),
            ElementContentHandlers::default().element(
                move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                    // Only the first <body>: a page can't push the banner down with another.
                    if !banner_done {
                        el.prepend(&banner, ContentType::Html);
                        banner_done = true;
                    }
                    Ok(())
                },
            ),
        ));
        for (selector, rule) in &self.rules {
            handlers.push((Cow::Owned(selector.clone()), mask_handlers(*rule)));
        }
        handlers.push((
            Cow::Owned(self.scripts.clone()),
            inline_json_handlers(self.json_rules.clone(), self.unclassified),
        ));
        for (selector, rule) in &self.inside {
            let rule = *rule;
            handlers.push((
                Cow::Owned(selector.clone()),
                ElementContentHandlers::default().element(
                    move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
                        mask_attributes(el, rule)
                    },
                ),
            ));
        }
        let out = Arc::new(Mutex::new(Vec::new()));
        let settings = handlers
            .into_iter()
            .fold(Settings::new_send(), |s, h| {
                s.append_element_content_handler(h)
            })
            .with_memory_settings(
                MemorySettings::new().with_max_allowed_memory_usage(PARSER_MEMORY),
            );
        HtmlStream {
            rewriter: HtmlRewriter::new(settings, Sink(out.clone())),
            out,
        }
    }
}

/// Attributes that say how an element is built or behaves, never what it holds: left as
/// they are on a masked element. Any other attribute — `value`, `title`, `alt`, `href`,
/// `placeholder`, `aria-label`, `data-*`, … — could repeat the masked value, so it is
/// masked by the same rule (fail closed: an attribute not listed here is masked).
const STRUCTURAL_ATTRIBUTES: &[&str] = &[
    "async",
    "autocomplete",
    "charset",
    "checked",
    "class",
    "colspan",
    "crossorigin",
    "decoding",
    "defer",
    "dir",
    "disabled",
    "draggable",
    "enctype",
    "for",
    "hidden",
    "id",
    "inputmode",
    "lang",
    "loading",
    "maxlength",
    "media",
    "method",
    "minlength",
    "multiple",
    "name",
    "nonce",
    "readonly",
    "rel",
    "required",
    "role",
    "rowspan",
    "scope",
    "selected",
    "size",
    "spellcheck",
    "style",
    "tabindex",
    "target",
    "translate",
    "type",
];

/// Masks every attribute of `el` that could hold data (see [`STRUCTURAL_ATTRIBUTES`]) by
/// `rule`; an empty one (`data-secret`) is left empty.
fn mask_attributes(el: &mut Element<'_, '_, SendHandlerTypes>, rule: MaskRule) -> HandlerResult {
    if rule == MaskRule::Show {
        return Ok(());
    }
    let data: Vec<(String, String)> = el
        .attributes()
        .iter()
        .map(|a| (a.name(), a.value()))
        .filter(|(name, value)| {
            !value.is_empty() && !STRUCTURAL_ATTRIBUTES.contains(&name.as_str())
        })
        .collect();
    for (name, value) in data {
        let masked = rule.apply(&value).unwrap_or_else(|| HIDDEN.to_owned());
        el.set_attribute(&name, &masked)?;
    }
    Ok(())
}

/// The elements inside those `selector` matches: `a, b.c` becomes `a *, b.c *`. The list
/// is split at commas outside brackets, parentheses and quotes (lol_html has no API to
/// build a selector, so this is done on the text; what it gets wrong fails to parse, and
/// the policy is refused at start).
fn descendants_of(selector: &str) -> String {
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

/// JSON data carried in a page — `<script type="application/json">`, `ld+json`, any
/// `+json` type, as frameworks embed a page's state — masked by the policy's JSON rules
/// like a JSON response, unclassified fields hidden. Each document is held back until
/// whole (up to [`MAX_INLINE_JSON`]); one that is too large or isn't JSON becomes `null`.
/// Scripts of other types pass as they are.
fn inline_json_handlers(
    rules: Arc<[MaskingRule]>,
    unclassified: MaskRule,
) -> ElementContentHandlers<'static> {
    let is_json = Arc::new(AtomicBool::new(false));
    let seen = is_json.clone();
    let mut held = HeldText::up_to(MAX_INLINE_JSON);
    ElementContentHandlers::default()
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
                    actas_core::mask::mask_json(&mut doc, &rules, unclassified);
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
        })
}

fn mask_handlers(rule: MaskRule) -> ElementContentHandlers<'static> {
    let handlers = ElementContentHandlers::default().element(
        move |el: &mut Element<'_, '_, SendHandlerTypes>| -> HandlerResult {
            match rule {
                MaskRule::Never => el.remove(),
                MaskRule::Hide => el.set_inner_content(HIDDEN, ContentType::Text),
                MaskRule::Last4 | MaskRule::Email | MaskRule::Show => {}
            }
            if rule != MaskRule::Never {
                mask_attributes(el, rule)?;
            }
            Ok(())
        },
    );
    if !matches!(rule, MaskRule::Last4 | MaskRule::Email) {
        return handlers;
    }
    // Text arrives in chunks: each text node is written out only whole and masked.
    let mut held = HeldText::up_to(MAX_MASKED_TEXT);
    handlers.text(move |t: &mut TextChunk<'_>| -> HandlerResult {
        let Some(whole) = held.hold(t) else {
            return Ok(());
        };
        let masked = match whole {
            None => HIDDEN.to_owned(),
            Some(text) if text.trim().is_empty() => text,
            Some(text) => rule.apply(text.trim()).unwrap_or_else(|| HIDDEN.to_owned()),
        };
        t.replace(&masked, ContentType::Text);
        Ok(())
    })
}

/// A text node held back chunk by chunk until it is whole, so that it can be masked as
/// one; memory stays bounded by `limit` (a longer node is given up on, never let through).
struct HeldText {
    pending: String,
    overflow: bool,
    limit: usize,
}

impl HeldText {
    fn up_to(limit: usize) -> Self {
        Self {
            pending: String::new(),
            overflow: false,
            limit,
        }
    }

    /// Takes `t` out of the output. On the node's last chunk returns the whole text, or
    /// `Some(None)` when it was longer than the limit; before that, `None`.
    fn hold(&mut self, t: &mut TextChunk<'_>) -> Option<Option<String>> {
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

/// Collects the rewriter's output between feeds.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(chunk);
    }
}

/// One document being rewritten; `Send`, so it can live inside a response body stream.
pub struct HtmlStream {
    rewriter: HtmlRewriter<'static, Sink>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl HtmlStream {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(
            &mut *self.out.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// Rewrites the next piece of the document and returns what is ready to send.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, RewriteError> {
        self.rewriter
            .write(chunk)
            .map_err(|e| RewriteError::Rewrite(e.to_string()))?;
        Ok(self.take())
    }

    /// Ends the document and returns the rest.
    pub fn finish(self) -> Result<Bytes, RewriteError> {
        let out = self.out.clone();
        self.rewriter
            .end()
            .map_err(|e| RewriteError::Rewrite(e.to_string()))?;
        Ok(Bytes::from(std::mem::take(
            &mut *out.lock().unwrap_or_else(PoisonError::into_inner),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actas_core::policy::Policy;

    fn masker() -> HtmlMasker {
        let p = Policy::from_toml(
            r##"
[[masking]]
html = ".card-number"
rule = "last4"
[[masking]]
html = "[data-secret]"
rule = "never"
[[masking]]
html = ".email"
rule = "email"
[[masking]]
html = "#national-id"
rule = "hide"
[[masking]]
json = "$.props.email"
rule = "email"
[[masking]]
json = "$.props.name"
rule = "show"
"##,
            "t.toml",
        )
        .expect("policy");
        HtmlMasker::new(&p).expect("selectors")
    }

    /// A page fed in `pieces` to the test policy's masker, rewritten.
    fn rewritten<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, origin: Option<&str>) -> String {
        let out = masker()
            .rewrite_chunks(pieces, "", origin)
            .expect("rewrite");
        String::from_utf8(out).expect("utf-8")
    }

    const PAGE: &str = r#"<!doctype html><html><head><script src="/app.js"></script></head>
<body class="portal"><h1>Payments</h1>
<p>Card: <span class="card-number">4111 1111 1111 4242</span></p>
<input class="card-number" name="card" value="4111111111114242">
<p class="email">sarah@acme.com</p>
<div id="national-id">AB 12 34 56 C</div>
<ul data-secret><li>recovery-code-aaaa-bbbb</li><li>recovery-code-cccc-dddd</li></ul>
<a class="email" href="mailto:sarah@acme.com" title="sarah@acme.com">Write</a>
<td class="card-number"><a href="/cards/4111111111114242" data-card="4111111111114242">card</a></td>
<div id="national-id" data-value="AB 12 34 56 C"></div>
<p>Balance: £1,200</p></body></html>"#;

    #[test]
    fn secrets_are_masked_and_the_banner_comes_first_in_body() {
        let out = String::from_utf8(
            masker()
                .rewrite(
                    PAGE.as_bytes(),
                    "<div id=actas-banner>Acting as Acme Co</div>",
                )
                .expect("rewrite"),
        )
        .expect("utf-8");
        assert!(
            out.contains(
                r#"<body class="portal"><div id=actas-banner>Acting as Acme Co</div><h1>"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"<span class="card-number">•••• 4242</span>"#),
            "{out}"
        );
        assert!(out.contains(r#"value="•••• 4242""#), "{out}");
        assert!(out.contains("s•••@acme.com"), "{out}");
        assert!(
            out.contains(r#"<div id="national-id">••• hidden</div>"#),
            "{out}"
        );
        // Attributes of masked elements, and of elements inside them, are masked too;
        // structural ones (`class`, `id`) are kept.
        assert!(
            out.contains(r#"<a class="email" href="m•••@acme.com" title="s•••@acme.com">"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<a href="•••• 4242" data-card="•••• 4242">"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<div id="national-id" data-value="••• hidden">"#),
            "{out}"
        );
        for secret in [
            "4111 1111 1111 4242",
            "4111111111114242",
            "sarah@acme.com",
            "AB 12 34 56 C",
            "recovery-code",
        ] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        assert!(
            out.contains("Balance: £1,200"),
            "the rest of the page is untouched"
        );
    }

    #[test]
    fn text_split_across_chunks_is_still_masked_whole() {
        // One byte at a time, as a slow upstream might send it.
        let out = rewritten(PAGE.as_bytes().chunks(1), None);
        assert!(
            out.contains(r#"<span class="card-number">•••• 4242</span>"#),
            "{out}"
        );
        assert!(
            !out.contains("1111") && !out.contains("recovery-code"),
            "{out}"
        );
    }

    #[test]
    fn absolute_links_to_the_product_stay_inside_the_gateway() {
        let page = br#"<body><a href="http://product.local:8082/loans/7">loan</a><a href="https://elsewhere.example/x">out</a>
<form action="http://product.local:8082/settings"><button formaction="http://product.local:8082">b</button></form>
<img src="//product.local:8082/logo.png"><meta http-equiv="refresh" content="0; url=http://product.local:8082/home"></body>"#;
        let out = rewritten([&page[..]], Some("http://product.local:8082"));
        assert!(!out.contains("product.local"), "{out}");
        for kept in [
            r#"href="/loans/7""#,
            r#"action="/settings""#,
            r#"formaction="/""#,
            r#"src="/logo.png""#,
            "url=/home",
            "https://elsewhere.example/x",
        ] {
            assert!(out.contains(kept), "{kept} missing: {out}");
        }
    }

    #[test]
    fn json_data_in_a_page_is_masked_by_the_json_rules() {
        let page = r#"<body><script id="__NEXT_DATA__" type="application/json">{"props":{"name":"\u003c/script><b>Acme","email":"sarah@acme.com","card":"4111111111114242"}}</script>
<script type="application/ld+json">not json 4111111111114242</script>
<script>var shown = "as it is";</script></body>"#;
        // One byte at a time too: the document is held back until whole.
        for chunk in [page.len(), 1] {
            let out = rewritten(page.as_bytes().chunks(chunk), None);
            assert!(
                out.contains(
                    r#"<script id="__NEXT_DATA__" type="application/json">{"props":{"card":"••• hidden","email":"s•••@acme.com","name":"\u003c/script>\u003cb>Acme"}}</script>"#
                ),
                "{out}"
            );
            assert!(
                out.contains(r#"<script type="application/ld+json">null</script>"#),
                "what isn't JSON is dropped: {out}"
            );
            assert!(out.contains(r#"var shown = "as it is";"#), "{out}");
            assert!(!out.contains("4111") && !out.contains("sarah@"), "{out}");
        }
    }

    #[test]
    fn text_too_long_to_hold_back_is_given_up_never_let_through() {
        let long_card = format!("4111 {} 4242", "1".repeat(MAX_MASKED_TEXT));
        let long_json = format!(
            r#"{{"props":{{"email":"sarah@acme.com","pad":"{}"}}}}"#,
            "x".repeat(MAX_INLINE_JSON)
        );
        let page = format!(
            r#"<body><span class="card-number">{long_card}</span><script type="application/json">{long_json}</script><p>after</p></body>"#
        );
        // In 4 KiB pieces, as a page arrives from the network.
        let out = rewritten(page.as_bytes().chunks(4096), None);
        assert!(
            out.contains(r#"<span class="card-number">••• hidden</span>"#),
            "a masked text node too long to hold is hidden"
        );
        assert!(
            out.contains(r#"<script type="application/json">null</script>"#),
            "JSON too large to hold becomes null"
        );
        assert!(!out.contains("4111") && !out.contains("sarah@"));
        assert!(out.contains("<p>after</p>"), "the rest of the page follows");
    }

    #[test]
    fn descendants_of_a_selector_list_keep_commas_inside_brackets() {
        assert_eq!(descendants_of(".a"), ".a *");
        assert_eq!(
            descendants_of(r#"td.card, [data-x="a,b"], :not(.x, .y)"#),
            r#"td.card *, [data-x="a,b"] *, :not(.x, .y) *"#
        );
    }

    #[test]
    fn every_form_of_a_product_url_is_made_local_and_lookalikes_are_not() {
        let o = ProductOrigin::new("http://product.local:8082").expect("origin");
        let local = |v: &str| o.keep_on_gateway(v);
        assert_eq!(
            local("http://product.local:8082/loans?x=1").as_deref(),
            Some("/loans?x=1")
        );
        assert_eq!(local("HTTPS://product.local:8082").as_deref(), Some("/"));
        assert_eq!(local("//product.local:8082/a#b").as_deref(), Some("/a#b"));
        assert_eq!(local("http://product.local:8082?q").as_deref(), Some("/?q"));
        assert_eq!(
            local("http://product.local:8082/a.png 1x, //product.local:8082/b.png 2x").as_deref(),
            Some("/a.png 1x, /b.png 2x")
        );
        assert_eq!(
            local("0; url=http://product.local:8082/home").as_deref(),
            Some("0; url=/home")
        );
        for other in [
            "http://product.local:80823/x",
            "http://evil.product.local:8082/x",
            "https://elsewhere.example/?next=x//product.local:8082",
            "/already/local",
        ] {
            assert_eq!(local(other), None, "{other}");
        }
    }

    #[test]
    fn a_bad_selector_is_refused_at_start() {
        let p = Policy::from_toml("[[masking]]\nhtml = \"div[\"\nrule = \"hide\"\n", "t.toml")
            .expect("policy");
        assert!(matches!(
            HtmlMasker::new(&p),
            Err(RewriteError::Selector { .. })
        ));
    }
}
