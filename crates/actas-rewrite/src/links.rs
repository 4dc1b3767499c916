//! Keeping the agent's browser on the gateway: every URL a page or a header names is
//! resolved as the browser will resolve it (the WHATWG URL parser of the `url` crate,
//! against the page's address on the gateway), and one whose origin is the product's —
//! any of the origins it answers on — is rewritten to the same path on the gateway,
//! whatever its spelling: `HTTP://Product`, `//product`, `\\product`, `http:\\product`,
//! `http://user@product`, `http://2130706433/` for 127.0.0.1, leading zeros, tabs and
//! newlines inside. Entities are already decoded by the HTML parser.

use url::{Host, Url};

/// The origins the product answers on, and where the gateway stands.
#[derive(Debug, Clone)]
pub struct Origins {
    /// Host and port (the scheme's default where none is named) of each product origin.
    product: Vec<(Host<String>, u16)>,
    /// The address pages are resolved against: the gateway's public URL.
    base: Url,
}

/// A URL's host (a domain without its trailing dot, which names the same host) and port.
fn host_port(url: &Url) -> Option<(Host<String>, u16)> {
    let host = match url.host()? {
        Host::Domain(d) => Host::Domain(d.trim_end_matches('.').to_ascii_lowercase()),
        other => other.to_owned(),
    };
    Some((host, url.port_or_known_default()?))
}

/// Whether a port is the default of http or https: a product named on one of them is
/// reached on the other too (it redirects there), so both are its.
fn is_web_default(port: u16) -> bool {
    port == 80 || port == 443
}

impl Origins {
    /// The product's `origins` (its upstream first, then any public ones the policy
    /// names), for pages seen on `gateway` (the gateway's public URL).
    pub fn new<'a>(origins: impl IntoIterator<Item = &'a str>, gateway: &str) -> Self {
        let mut product = Vec::new();
        for o in origins {
            if let Some(hp) = Url::parse(o).ok().as_ref().and_then(host_port)
                && !product.contains(&hp)
            {
                product.push(hp);
            }
        }
        let base = Url::parse(gateway)
            .or_else(|_| Url::parse("http://gateway.invalid/"))
            .unwrap_or_else(|_| unreachable_base());
        Self { product, base }
    }

    /// Whether `url` is on one of the product's origins (by host and port: a page that
    /// names the product over `https` while the gateway reaches it over `http` is still
    /// the product).
    pub fn is_product(&self, url: &Url) -> bool {
        matches!(url.scheme(), "http" | "https" | "ws" | "wss")
            && host_port(url).is_some_and(|(host, port)| {
                self.product.iter().any(|(h, p)| {
                    *h == host && (*p == port || (is_web_default(*p) && is_web_default(port)))
                })
            })
    }

    /// `value` (one URL, as an attribute holds it) made local to the gateway when it
    /// resolves to the product; `None` when it needs no change. A value that isn't
    /// absolute or scheme-relative resolves against the page itself, on the gateway.
    pub fn local(&self, value: &str) -> Option<String> {
        let trimmed = value.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
        if !could_leave(trimmed) {
            return None;
        }
        let url = self.base.join(trimmed).ok()?;
        if !self.is_product(&url) {
            return None;
        }
        // One leading slash: `//x` on the gateway would name the host `x`.
        let mut local = format!("/{}", url.path().trim_start_matches('/'));
        if let Some(q) = url.query() {
            local.push('?');
            local.push_str(q);
        }
        if let Some(f) = url.fragment() {
            local.push('#');
            local.push_str(f);
        }
        Some(local)
    }

    /// A `srcset` with each image URL made local.
    pub fn local_srcset(&self, value: &str) -> Option<String> {
        let mut changed = false;
        let parts: Vec<String> = value
            .split(',')
            .map(|candidate| {
                let c = candidate.trim();
                let (url, descriptor) = c.split_once(char::is_whitespace).unwrap_or((c, ""));
                match self.local(url) {
                    Some(l) => {
                        changed = true;
                        format!("{l} {descriptor}").trim_end().to_owned()
                    }
                    None => c.to_owned(),
                }
            })
            .collect();
        changed.then(|| parts.join(", "))
    }

    /// A meta refresh or `Refresh` header (`5; url=…`) with its URL made local.
    pub fn local_refresh(&self, value: &str) -> Option<String> {
        let lower = value.to_ascii_lowercase();
        let at = lower.find("url")?;
        let rest = &value[at + 3..];
        let eq = rest.find('=')?;
        let target = rest[eq + 1..]
            .trim()
            .trim_matches(|c| c == '\'' || c == '"');
        let local = self.local(target)?;
        Some(format!("{}url={local}", &value[..at]))
    }

    /// CSS (a `style` attribute, a `<style>` element) with every `url(…)` and `@import`
    /// string that names the product made local.
    pub fn local_css(&self, css: &str) -> Option<String> {
        let lower = css.to_ascii_lowercase();
        let mut out = String::with_capacity(css.len());
        let mut changed = false;
        let mut i = 0;
        while i < css.len() {
            let next_url = lower[i..].find("url(").map(|p| (p + i, 4));
            let next_import = lower[i..].find("@import").map(|p| (p + i, 7));
            let Some((at, skip)) = [next_url, next_import].into_iter().flatten().min() else {
                break;
            };
            let start = at + skip;
            let after = &css[start..];
            let lead = after.len() - after.trim_start().len();
            let body = &after[lead..];
            let (quote, inner_start) = match body.chars().next() {
                Some(q @ ('"' | '\'')) => (Some(q), 1),
                _ => (None, 0),
            };
            let close: &[char] = match quote {
                Some('"') => &['"'],
                Some(_) => &['\''],
                None if skip == 4 => &[')'],
                None => &[';', ' '],
            };
            let inner = &body[inner_start..];
            let end = inner.find(close).unwrap_or(inner.len());
            let target = &inner[..end];
            out.push_str(&css[i..start + lead + inner_start]);
            match self.local(target) {
                Some(l) => {
                    out.push_str(&l);
                    changed = true;
                }
                None => out.push_str(target),
            }
            i = start + lead + inner_start + end;
        }
        out.push_str(&css[i..]);
        changed.then_some(out)
    }
}

/// Whether a URL could name another origin: it has a scheme, or starts as a
/// scheme-relative one (`//`, with backslashes as browsers read them). Anything else is a
/// path on the page's own origin, the gateway.
pub(super) fn could_leave(value: &str) -> bool {
    let cleaned: String = value
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let b = cleaned.as_bytes();
    if b.len() >= 2 && matches!(b[0], b'/' | b'\\') && matches!(b[1], b'/' | b'\\') {
        return true;
    }
    match cleaned.find(':') {
        Some(colon) => {
            let scheme = &cleaned[..colon];
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

/// A URL that always parses.
fn unreachable_base() -> Url {
    #[allow(clippy::expect_used)]
    Url::parse("http://localhost/").expect("a valid URL")
}

/// Attributes that hold one URL.
pub(super) const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "poster",
    "data",
    "cite",
    "background",
    "longdesc",
    "manifest",
    "xlink:href",
    "icon",
    "codebase",
    "archive",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origins() -> Origins {
        Origins::new(
            ["http://127.0.0.1:8082", "https://app.example.com"],
            "http://127.0.0.1:8081/",
        )
    }

    #[test]
    fn every_spelling_of_the_products_origin_is_made_local() {
        let o = origins();
        for (value, local) in [
            ("http://127.0.0.1:8082/loans?x=1#a", "/loans?x=1#a"),
            ("HTTP://127.0.0.1:8082", "/"),
            ("//127.0.0.1:8082/cards", "/cards"),
            ("\\\\127.0.0.1:8082/cards", "/cards"),
            ("http:\\\\127.0.0.1:8082\\cards", "/cards"),
            ("http://user:pw@127.0.0.1:8082/x", "/x"),
            ("http://2130706433:8082/x", "/x"),
            ("http://0x7f.1:8082/x", "/x"),
            ("http://127.000.000.001:8082/x", "/x"),
            ("ht\ttp://127.0.0.1:8082/x", "/x"),
            (" https://APP.example.com/settings ", "/settings"),
            ("https://app.example.com:443/a", "/a"),
            ("http://app.example.com/a", "/a"),
            ("wss://app.example.com/live", "/live"),
        ] {
            assert_eq!(o.local(value).as_deref(), Some(local), "{value:?}");
        }
        for other in [
            "http://127.0.0.1:80823/x",
            "http://evil.app.example.com/x",
            "https://elsewhere.example/?next=//127.0.0.1:8082",
            "/already/local",
            "relative/path",
            "mailto:s@acme.com",
            "javascript:alert(1)",
            "#top",
        ] {
            assert_eq!(o.local(other), None, "{other}");
        }
    }

    #[test]
    fn lists_refreshes_and_css_are_rewritten_where_they_name_the_product() {
        let o = origins();
        assert_eq!(
            o.local_srcset("http://127.0.0.1:8082/a.png 1x, //app.example.com/b.png 2x, /c.png 3x")
                .as_deref(),
            Some("/a.png 1x, /b.png 2x, /c.png 3x")
        );
        assert_eq!(
            o.local_refresh("0; URL='http://127.0.0.1:8082/home'")
                .as_deref(),
            Some("0; url=/home")
        );
        assert_eq!(
            o.local_css("a{background:url( \"https://app.example.com/x.png\" )} @import 'http://127.0.0.1:8082/s.css'; b{background:url(/ok.png)}").as_deref(),
            Some("a{background:url( \"/x.png\" )} @import '/s.css'; b{background:url(/ok.png)}")
        );
        assert_eq!(o.local_css("a{color:red}"), None);
    }

    proptest! {
        /// Whatever the url crate resolves to the product's origin, the rewrite makes
        /// local: it resolves to the gateway.
        #[test]
        fn what_resolves_to_the_product_never_stays_on_it(
            scheme in prop_oneof![Just("http:"), Just("HTTPS:"), Just("hTtP:"), Just("")],
            slashes in prop_oneof![Just("//"), Just("\\\\"), Just("/\\"), Just("\\/")],
            user in prop_oneof![Just(""), Just("a@"), Just("a:b@")],
            host in prop_oneof![
                Just("127.0.0.1"), Just("2130706433"), Just("0x7f000001"), Just("127.1"),
                Just("0177.0.0.1"), Just("127.0.0.01"), Just("app.example.com"), Just("APP.Example.COM"),
                Just("app.example.com."), Just("evil.example"), Just("127.0.0.2")
            ],
            port in prop_oneof![Just(":8082"), Just(":08082"), Just(""), Just(":443"), Just(":80")],
            path in "(/[a-z]{0,5}){0,3}",
            tab in proptest::bool::ANY,
        ) {
            let mut value = format!("{scheme}{slashes}{user}{host}{port}{path}");
            if tab {
                value.insert(1, '\t');
            }
            let o = origins();
            let resolved = o.base.join(value.trim()).ok();
            let out = o.local(&value).unwrap_or_else(|| value.clone());
            let after = o.base.join(out.trim()).ok();
            if resolved.as_ref().is_some_and(|u| o.is_product(u)) {
                prop_assert!(after.as_ref().is_some_and(|u| !o.is_product(u)), "{value:?} → {out:?}");
            }
        }
    }
}
