//! actas's HTML rewriter, on its own so it can be fuzzed alone (`cargo xtask fuzz`).
//!
//! Rewriting HTML on its way to the agent's browser (lol_html, streaming): the banner goes
//! in as the first thing in `<body>`, elements matched by the policy's CSS selectors are
//! masked by element ([`mask`]), JSON a page carries for its scripts is masked by the JSON
//! rules ([`scripts`]), form controls are classified by name and served so that only
//! their placeholders can go back ([`forms`]), and links to the product stay on the
//! gateway.

#![deny(missing_docs)]

pub mod controls;
mod edges;
mod forms;
#[doc(hidden)]
pub mod fuzzing;
mod links;
mod mask;
mod scripts;

pub use links::Origins;
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
    /// Each HTML rule's selector, its rule, and what it names when it reveals a value
    /// the session was approved to see.
    rules: Vec<(Selector, MaskRule, Option<String>)>,
    /// For each rule that keeps the element (`hide`, `last4`, `email`): its elements'
    /// descendants, whose attributes are masked too (`<td class="card-number"><a
    /// href="/cards/4111…">`).
    inside: Vec<(Selector, MaskRule)>,
    body: Selector,
    /// `script`: JSON data in a page is masked by the JSON rules, inline code removed.
    scripts: Selector,
    /// The policy's JSON rules and what unclassified JSON fields get, for inline JSON.
    json_rules: Arc<[MaskingRule]>,
    unclassified: MaskRule,
}

impl std::fmt::Debug for HtmlMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HtmlMasker")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

fn parse(selector: &str) -> Result<Selector, RewriteError> {
    Selector::from_str(selector).map_err(|e| RewriteError::Selector {
        selector: selector.to_owned(),
        why: e.to_string(),
    })
}

type Handler = (Cow<'static, Selector>, ElementContentHandlers<'static>);

/// What the rewriter needs to know about one page.
pub struct Page<'a> {
    /// The banner (HTML), first in `<body>`.
    pub banner: &'a str,
    /// The product's origins, for links to stay on the gateway (`None`: links are left).
    pub origins: Option<Arc<Origins>>,
    /// The page's encoding (one that keeps ASCII as ASCII).
    pub encoding: &'static encoding_rs::Encoding,
    /// Whether the route keeps inline scripts (`inline_scripts = true`).
    pub inline_scripts: bool,
}

impl HtmlMasker {
    /// Checks every HTML selector of the policy's masking rules; its JSON rules mask JSON
    /// data inside pages.
    pub fn new(policy: &Policy) -> Result<Self, RewriteError> {
        Self::with_rules(policy, policy.masking())
    }

    /// The masker for `rules` (the policy's, with what a session's scope reveals shown:
    /// [`Policy::masking_for`]).
    pub fn with_rules(policy: &Policy, rules: &[MaskingRule]) -> Result<Self, RewriteError> {
        let mut out = Vec::new();
        let mut inside = Vec::new();
        for r in rules {
            if let Target::Html(selector) = &r.target {
                out.push((
                    parse(selector)?,
                    r.rule,
                    r.reveals().then(|| r.target_text()),
                ));
                if matches!(r.rule, MaskRule::Hide | MaskRule::Last4 | MaskRule::Email) {
                    inside.push((parse(&mask::descendants_of(selector))?, r.rule));
                }
            }
        }
        Ok(Self {
            rules: out,
            inside,
            body: parse("body")?,
            scripts: parse("script")?,
            json_rules: rules
                .iter()
                .filter(|r| matches!(r.target, Target::Json(_) | Target::Field(_)))
                .cloned()
                .collect(),
            unclassified: policy.unclassified,
        })
    }

    /// Every selector the rewriter matches on a page: the attribute pass (`*`), `body` for
    /// the banner, scripts, styles and `noscript`, the form-field pass, and the policy's.
    /// What lol_html must track on each page whatever the handlers then do — the
    /// benchmarks use it to measure the parser's cost for these selectors alone.
    pub fn selectors(&self) -> Vec<Selector> {
        let fixed = [
            "*",
            "noscript",
            "style",
            "form",
            "input[name], textarea[name], select[name]",
        ];
        fixed
            .iter()
            .filter_map(|s| Selector::from_str(s).ok())
            .chain([self.body.clone(), self.scripts.clone()])
            .chain(self.rules.iter().map(|(s, _, _)| s.clone()))
            .chain(self.inside.iter().map(|(s, _)| s.clone()))
            .collect()
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
        let origins = product_origin.map(|o| Origins::new([o], "http://gateway.invalid/"));
        self.stream_page(&Page {
            banner,
            origins: origins.map(Arc::new),
            encoding: encoding_rs::UTF_8,
            inline_scripts: false,
        })
    }

    /// Starts rewriting one document of a page as [`Page`] describes it.
    pub fn stream_page(&self, page: &Page<'_>) -> HtmlStream {
        let banner = page.banner;
        let encoding = page.encoding;
        let unclassified: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let mut handlers: Vec<Handler> = vec![
            edges::attributes(
                page.origins.clone(),
                page.inline_scripts,
                unclassified.clone(),
            ),
            edges::noscript(),
            edges::style(page.origins.clone()),
        ];
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
        let revealed: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        for (selector, rule, reveals) in &self.rules {
            handlers.push(mask::rule_handlers(
                selector,
                *rule,
                reveals.clone().map(|name| (name, revealed.clone())),
            ));
        }
        handlers.push(scripts::scripts(
            &self.scripts,
            self.json_rules.clone(),
            self.unclassified,
            page.inline_scripts,
            unclassified.clone(),
        ));
        for (selector, rule) in &self.inside {
            handlers.push(mask::inside_handlers(selector, *rule));
        }
        handlers.extend(forms::handlers(
            self.json_rules.clone(),
            self.unclassified,
            &unclassified,
            &revealed,
        ));
        let out = Arc::new(Mutex::new(Vec::new()));
        let settings = handlers
            .into_iter()
            .fold(Settings::new_send(), |s, h| {
                s.append_element_content_handler(h)
            })
            // Comments are removed: they can hold what masking never sees.
            .append_document_content_handler(
                lol_html::send::DocumentContentHandlers::default().comments(
                    |c: &mut lol_html::html_content::Comment<'_>| -> HandlerResult {
                        c.remove();
                        Ok(())
                    },
                ),
            )
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
            revealed,
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

/// The end of a document: its last bytes, and what was met since the last take.
pub struct Finished {
    /// The last bytes.
    pub rest: Bytes,
    /// Fields no rule classified.
    pub unclassified: BTreeSet<String>,
    /// Fields revealed.
    pub revealed: BTreeSet<String>,
}

/// One document being rewritten; `Send`, so it can live inside a response body stream.
pub struct HtmlStream {
    rewriter: HtmlRewriter<'static, Sink>,
    out: Arc<Mutex<Vec<u8>>>,
    unclassified: Arc<Mutex<BTreeSet<String>>>,
    revealed: Arc<Mutex<BTreeSet<String>>>,
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

    /// The fields shown whole because the session's scope reveals them, met so far: the
    /// caller records them before passing on what carries them.
    pub fn take_revealed(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.revealed.lock().unwrap_or_else(PoisonError::into_inner))
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

    /// Ends the document and returns the rest, with the fields no rule classified that
    /// were met since the last [`HtmlStream::take_unclassified`].
    pub fn finish_reporting(self) -> Result<Finished, RewriteError> {
        let (report, revealed) = (self.unclassified.clone(), self.revealed.clone());
        let rest = self.finish()?;
        let take = |m: &Mutex<BTreeSet<String>>| {
            std::mem::take(&mut *m.lock().unwrap_or_else(PoisonError::into_inner))
        };
        Ok(Finished {
            rest,
            unclassified: take(&report),
            revealed: take(&revealed),
        })
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
