//! Rewriting HTML on its way to the agent's browser (lol_html, streaming): the banner goes
//! in as the first thing in `<body>`, and elements matched by the policy's CSS selectors
//! are masked — `never` removes them, `hide` replaces their content, `last4` and `email`
//! keep only what the rule allows, in text and in `value` attributes alike.

use actas_core::policy::masking::{HIDDEN, MaskRule, MaskingRule, Target};
use lol_html::html_content::ContentType;
use lol_html::{HtmlRewriter, Selector, Settings, element, text};
use std::cell::RefCell;
use std::rc::Rc;
use std::str::FromStr;

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

/// The HTML masking rules of a policy, checked once.
#[derive(Debug, Clone)]
pub struct HtmlMasker {
    rules: Vec<(String, MaskRule)>,
}

impl HtmlMasker {
    /// Checks every HTML selector in `rules` (JSON rules are ignored here).
    pub fn new(rules: &[MaskingRule]) -> Result<Self, RewriteError> {
        let mut out = Vec::new();
        for r in rules {
            if let Target::Html(selector) = &r.target {
                Selector::from_str(selector).map_err(|e| RewriteError::Selector {
                    selector: selector.clone(),
                    why: e.to_string(),
                })?;
                out.push((selector.clone(), r.rule));
            }
        }
        Ok(Self { rules: out })
    }

    /// Rewrites a whole HTML document: masks it and puts `banner` (HTML) first in `<body>`.
    pub fn rewrite(&self, input: &[u8], banner: &str) -> Result<Vec<u8>, RewriteError> {
        self.rewrite_chunks([input], banner, None)
    }

    /// Rewrites a document arriving in pieces, as a proxied body does. Absolute links to
    /// `product_origin` (e.g. `http://127.0.0.1:8082`) become relative, so following them
    /// stays inside the gateway.
    pub fn rewrite_chunks<'a>(
        &self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        banner: &str,
        product_origin: Option<&str>,
    ) -> Result<Vec<u8>, RewriteError> {
        let mut output = Vec::new();
        let mut handlers = Vec::new();
        if let Some(origin) = product_origin
            .map(|o| o.trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
        {
            for (selector, attribute) in [
                ("a[href]", "href"),
                ("link[href]", "href"),
                ("area[href]", "href"),
                ("[src]", "src"),
                ("form[action]", "action"),
                ("[formaction]", "formaction"),
                ("meta[http-equiv]", "content"),
            ] {
                let origin = origin.clone();
                handlers.push(element!(selector, move |el| {
                    if let Some(v) = el.get_attribute(attribute)
                        && v.contains(&origin)
                    {
                        let local = v.replace(&format!("{origin}/"), "/").replace(&origin, "/");
                        el.set_attribute(attribute, &local)?;
                    }
                    Ok(())
                }));
            }
        }
        let banner = banner.to_owned();
        handlers.push(element!("body", move |el| {
            el.prepend(&banner, ContentType::Html);
            Ok(())
        }));
        for (selector, rule) in &self.rules {
            let rule = *rule;
            handlers.push(element!(selector.as_str(), move |el| {
                match rule {
                    MaskRule::Never => el.remove(),
                    MaskRule::Hide => {
                        el.set_inner_content(HIDDEN, ContentType::Text);
                        if el.get_attribute("value").is_some() {
                            el.set_attribute("value", HIDDEN)?;
                        }
                    }
                    MaskRule::Last4 | MaskRule::Email => {
                        if let Some(v) = el.get_attribute("value") {
                            let masked = rule.apply(&v).unwrap_or_else(|| HIDDEN.to_owned());
                            el.set_attribute("value", &masked)?;
                        }
                    }
                    MaskRule::Show => {}
                }
                Ok(())
            }));
            if matches!(rule, MaskRule::Last4 | MaskRule::Email) {
                // Text arrives in chunks: hold each text node back until it is whole,
                // then write out only its masked form.
                let pending = Rc::new(RefCell::new(String::new()));
                handlers.push(text!(selector.as_str(), move |t| {
                    pending.borrow_mut().push_str(t.as_str());
                    if t.last_in_text_node() {
                        let whole = std::mem::take(&mut *pending.borrow_mut());
                        let masked = if whole.trim().is_empty() {
                            whole
                        } else {
                            rule.apply(whole.trim())
                                .unwrap_or_else(|| HIDDEN.to_owned())
                        };
                        t.replace(&masked, ContentType::Text);
                    } else {
                        t.remove();
                    }
                    Ok(())
                }));
            }
        }
        // Selectors were checked in `new`, so the macros' parsing can't fail here.
        let settings = handlers
            .into_iter()
            .fold(Settings::new(), |s, h| s.append_element_content_handler(h));
        let mut rewriter =
            HtmlRewriter::new(settings, |chunk: &[u8]| output.extend_from_slice(chunk));
        for chunk in chunks {
            rewriter
                .write(chunk)
                .map_err(|e| RewriteError::Rewrite(e.to_string()))?;
        }
        rewriter
            .end()
            .map_err(|e| RewriteError::Rewrite(e.to_string()))?;
        Ok(output)
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
"##,
            "t.toml",
        )
        .expect("policy");
        HtmlMasker::new(p.masking()).expect("selectors")
    }

    const PAGE: &str = r#"<!doctype html><html><head><script src="/app.js"></script></head>
<body class="portal"><h1>Payments</h1>
<p>Card: <span class="card-number">4111 1111 1111 4242</span></p>
<input class="card-number" name="card" value="4111111111114242">
<p class="email">sarah@acme.com</p>
<div id="national-id">AB 12 34 56 C</div>
<ul data-secret><li>recovery-code-aaaa-bbbb</li><li>recovery-code-cccc-dddd</li></ul>
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
        assert!(out.contains("s***@acme.com"), "{out}");
        assert!(
            out.contains(r#"<div id="national-id">[hidden]</div>"#),
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
        let out = masker()
            .rewrite_chunks(PAGE.as_bytes().chunks(1), "", None)
            .expect("rewrite");
        let out = String::from_utf8(out).expect("utf-8");
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
<img src="http://product.local:8082/logo.png"><meta http-equiv="refresh" content="0; url=http://product.local:8082/home"></body>"#;
        let out = masker()
            .rewrite_chunks([&page[..]], "", Some("http://product.local:8082"))
            .expect("rewrite");
        let out = String::from_utf8(out).expect("utf-8");
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
    fn a_bad_selector_is_refused_at_start() {
        let p = Policy::from_toml("[[masking]]\nhtml = \"div[\"\nrule = \"hide\"\n", "t.toml")
            .expect("policy");
        assert!(matches!(
            HtmlMasker::new(p.masking()),
            Err(RewriteError::Selector { .. })
        ));
    }
}
