//! Rewriting HTML on its way to the agent's browser (lol_html, streaming): the banner goes
//! in as the first thing in `<body>`, elements matched by the policy's CSS selectors are
//! masked by element ([`mask`]), JSON a page carries for its scripts is masked by the JSON
//! rules ([`scripts`]), form controls are classified by name and served so that only
//! their placeholders can go back ([`forms`]), and links to the product stay on the
//! gateway.

mod forms;
mod mask;
mod scripts;
#[cfg(test)]
mod tests;

use actas_core::policy::Policy;
use actas_core::policy::masking::{MaskRule, MaskingRule, Target};
use bytes::Bytes;
use lol_html::html_content::{ContentType, Element};
use lol_html::send::SendHandlerTypes;
use lol_html::send::{ElementContentHandlers, HtmlRewriter, Settings};
use lol_html::{HandlerResult, MemorySettings, OutputSink, Selector};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

/// Marks an element the gateway masked (on the page for the banner's style sheet, and for
/// the form-field pass, which runs after the policy's rules).
const MASKED_ATTRIBUTE: &str = "data-actas-masked";

/// Marks, for the form-field pass only, an element a `show` rule classified; removed
/// before the page leaves.
const SHOWN_ATTRIBUTE: &str = "data-actas-shown";

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
#[derive(Clone)]
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
    /// The policy, for classifying form fields by name.
    policy: Arc<Policy>,
}

impl std::fmt::Debug for HtmlMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HtmlMasker")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
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
                    inside.push((parse(&mask::descendants_of(selector))?, r.rule));
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
                .filter(|r| matches!(r.target, Target::Json(_) | Target::Field(_)))
                .cloned()
                .collect(),
            unclassified: policy.unclassified,
            policy: Arc::new(policy.clone()),
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
        self.stream_in(banner, product_origin, encoding_rs::UTF_8)
    }

    /// [`HtmlMasker::stream`] for a document in `encoding`, which must keep ASCII as
    /// ASCII (any other is read as UTF-8); what the rewriter inserts is written in it.
    pub fn stream_in(
        &self,
        banner: &str,
        product_origin: Option<&str>,
        encoding: &'static encoding_rs::Encoding,
    ) -> HtmlStream {
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
            handlers.push(mask::rule_handlers(selector, *rule));
        }
        let unclassified: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        handlers.push(scripts::inline_json(
            &self.scripts,
            self.json_rules.clone(),
            self.unclassified,
            unclassified.clone(),
        ));
        for (selector, rule) in &self.inside {
            handlers.push(mask::inside_handlers(selector, *rule));
        }
        handlers.extend(forms::handlers(&self.policy, &unclassified));
        let out = Arc::new(Mutex::new(Vec::new()));
        let settings = handlers
            .into_iter()
            .fold(Settings::new_send(), |s, h| {
                s.append_element_content_handler(h)
            })
            .with_memory_settings(
                MemorySettings::new().with_max_allowed_memory_usage(PARSER_MEMORY),
            )
            .with_encoding(
                lol_html::AsciiCompatibleEncoding::new(encoding)
                    .unwrap_or_else(lol_html::AsciiCompatibleEncoding::utf_8),
            );
        HtmlStream {
            rewriter: HtmlRewriter::new(settings, Sink(out.clone())),
            out,
            unclassified,
        }
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
    unclassified: Arc<Mutex<BTreeSet<String>>>,
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

    /// The JSON fields and form fields no rule classified, met so far (each once).
    pub fn take_unclassified(&self) -> BTreeSet<String> {
        std::mem::take(
            &mut *self
                .unclassified
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
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
