//! The checks the fuzz targets run (`fuzz/`, `cargo xtask fuzz`), and that the test
//! suite replays on the kept corpus (`fuzz/corpus/`): for any input, no panic, and no
//! planted secret in what comes out. Each check reads its input with `arbitrary`, so
//! the fuzzer explores page, document and URL shapes rather than raw bytes.
//!
//! Secrets are written in capital letters, which the generated text never holds, so a
//! secret in the output can only be one that was planted inside a masked element and
//! got through.

use crate::{HtmlMasker, Origins};
use actas_core::policy::Policy;
use arbitrary::{Arbitrary, Unstructured};

/// The policy every check masks by.
const POLICY: &str = r##"
unclassified = "hide"
[[masking]]
html = ".card-number"
rule = "last4"
[[masking]]
html = "#national-id"
rule = "hide"
[[masking]]
html = "[data-secret]"
rule = "never"
[[masking]]
html = ".email"
rule = "email"
[[masking]]
json = "$.card.number"
rule = "last4"
[[masking]]
json = "$.national_id"
rule = "never"
[[masking]]
field = "name"
rule = "show"
"##;

fn policy() -> &'static Policy {
    static POLICY_ONCE: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY_ONCE.get_or_init(|| {
        #[allow(clippy::expect_used)]
        Policy::from_toml(POLICY, "fuzzing.toml").expect("the fuzzing policy is valid")
    })
}

fn masker() -> &'static HtmlMasker {
    static MASKER: std::sync::OnceLock<HtmlMasker> = std::sync::OnceLock::new();
    MASKER.get_or_init(|| {
        #[allow(clippy::expect_used)]
        HtmlMasker::new(policy()).expect("the fuzzing policy's selectors parse")
    })
}

/// The planted secret: 20 capital letters.
const SECRET: &str = "QWERTYUIOPASDFGHJKLZ";

/// Text the generator writes: lower case, digits and harmless punctuation only; no `@`,
/// after which the email rule shows a domain by design.
fn text(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let len = u.int_in_range(0..=12)?;
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        let c = *u.choose(&[
            'a', 'b', 'c', 'x', 'y', 'z', '0', '1', '9', ' ', '.', '-', '&', ';', '#', '/',
        ])?;
        s.push(c);
    }
    Ok(s)
}

/// Elements whose content and end the tokenizer and browsers agree on (no implicit
/// closing, no raw text).
const TAGS: &[&str] = &[
    "span", "b", "i", "em", "strong", "div", "section", "label", "small", "code",
];
const ATTRS: &[&str] = &[
    "title",
    "data-x",
    "id",
    "style",
    "href",
    "value",
    "alt",
    "name",
    "aria-label",
];
const MASKED: &[(&str, usize)] = &[
    ("<span class=\"card-number\">", 4),
    ("<div id=\"national-id\">", 0),
    ("<div data-secret>", 0),
    ("<p class=\"email\">", 0),
];

/// A piece of a page, outside or inside a masked element.
fn node(
    u: &mut Unstructured<'_>,
    depth: u32,
    secret: Option<&str>,
    out: &mut String,
) -> arbitrary::Result<()> {
    match u.int_in_range(0..=4)? {
        0 | 1 => out.push_str(&escape(&text(u)?)),
        2 if depth < 4 => {
            let tag = *u.choose(TAGS)?;
            out.push('<');
            out.push_str(tag);
            for _ in 0..u.int_in_range(0..=2)? {
                let attr = *u.choose(ATTRS)?;
                out.push_str(&format!(" {attr}=\"{}\"", escape(&text(u)?)));
            }
            out.push('>');
            for _ in 0..u.int_in_range(0..=3)? {
                node(u, depth + 1, secret, out)?;
            }
            out.push_str(&format!("</{tag}>"));
        }
        3 => out.push_str(&format!("<!--{}-->", text(u)?.replace('-', ""))),
        _ => {}
    }
    if let Some(s) = secret {
        // Inside a masked element: a piece of the secret, held somehow.
        let how = u.int_in_range(0..=3)?;
        out.push_str(&match how {
            0 => s.to_owned(),
            1 => format!("<b>{s}</b>"),
            2 => format!("<span title=\"{s}\">.</span>"),
            _ => format!("<i><em>{s}</em></i>"),
        });
    }
    Ok(())
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// Builds a page with the secret split across a masked element, masks it fed in pieces,
/// and panics if any five letters of what the rule hides come out.
pub fn html(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(page) = build_page(&mut u) else { return };
    let (page, shown) = page;
    let piece = u.int_in_range(1..=64usize).unwrap_or(7);
    let mut stream = masker().stream("<div id=actas-banner></div>", None);
    let mut out = Vec::new();
    for chunk in page.as_bytes().chunks(piece) {
        match stream.feed(chunk) {
            Ok(b) => out.extend_from_slice(&b),
            Err(_) => return,
        }
    }
    match stream.finish() {
        Ok(b) => out.extend_from_slice(&b),
        Err(_) => return,
    }
    let out = String::from_utf8_lossy(&out);
    let hidden = &SECRET[..SECRET.len() - shown];
    for w in hidden.as_bytes().windows(5) {
        let w = String::from_utf8_lossy(w);
        assert!(!out.contains(w.as_ref()), "{w} came out of {page}\n→ {out}");
    }
}

fn build_page(u: &mut Unstructured<'_>) -> arbitrary::Result<(String, usize)> {
    let mut page = String::from("<html><body>");
    for _ in 0..u.int_in_range(0..=3)? {
        node(u, 0, None, &mut page)?;
    }
    let (open, shown) = *u.choose(MASKED)?;
    let close = match open {
        o if o.starts_with("<span") => "</span>",
        o if o.starts_with("<p") => "</p>",
        _ => "</div>",
    };
    // Email masking shows a first letter and what follows an @, which the secret has
    // none of: so nothing of it may show.
    page.push_str(open);
    let mut cuts: Vec<usize> = (0..u.int_in_range(0..=4)?)
        .map(|_| u.int_in_range(1..=SECRET.len() - 1))
        .collect::<arbitrary::Result<_>>()?;
    cuts.sort_unstable();
    cuts.dedup();
    let mut last = 0;
    for c in cuts.into_iter().chain([SECRET.len()]) {
        node(u, 1, Some(&SECRET[last..c]), &mut page)?;
        last = c;
    }
    page.push_str(close);
    for _ in 0..u.int_in_range(0..=3)? {
        node(u, 0, None, &mut page)?;
    }
    page.push_str("</body></html>");
    Ok((page, shown))
}

/// Raw bytes as a page, in pieces: never a panic.
pub fn html_raw(data: &[u8]) {
    let origins = Origins::new(["http://product.test:8082"], "http://gateway.test/");
    let mut stream = masker().stream_page(&crate::Page {
        banner: "<div id=actas-banner></div>",
        origins: Some(std::sync::Arc::new(origins)),
        encoding: encoding_rs::UTF_8,
        inline_scripts: false,
    });
    let piece = (data.first().copied().unwrap_or(7) as usize % 61) + 1;
    for chunk in data.chunks(piece) {
        if stream.feed(chunk).is_err() {
            return;
        }
    }
    let _ = stream.finish();
}

/// A JSON value the generator builds.
#[derive(Debug, Arbitrary)]
enum Json {
    Text(u8),
    Number(i32),
    Flag(bool),
    Null,
    List(Vec<Json>),
    Object(Vec<(u8, Json)>),
    Secret,
}

const KEYS: &[&str] = &[
    "name",
    "card",
    "number",
    "national_id",
    "loans",
    "x",
    "email",
    "items",
];

fn value(j: &Json, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    match j {
        Json::Text(n) => Value::String(format!("t{n}")),
        Json::Number(n) => Value::from(*n),
        Json::Flag(b) => Value::Bool(*b),
        Json::Null => Value::Null,
        Json::List(items) if depth < 5 => {
            Value::Array(items.iter().map(|i| value(i, depth + 1)).collect())
        }
        Json::Object(members) if depth < 5 => Value::Object(
            members
                .iter()
                .map(|(k, v)| {
                    (
                        KEYS[*k as usize % KEYS.len()].to_owned(),
                        value(v, depth + 1),
                    )
                })
                .collect(),
        ),
        Json::Secret | Json::List(_) | Json::Object(_) => Value::String(SECRET.to_owned()),
    }
}

/// A JSON document with the secret anywhere no `show` rule names (`name` is shown, so a
/// secret there is taken out), and in a key that is data: masked, it never comes out.
pub fn json(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(tree) = Json::arbitrary(&mut u) else {
        return;
    };
    let mut doc = value(&tree, 0);
    strip_shown(&mut doc);
    if let serde_json::Value::Object(map) = &mut doc {
        // A key that is data (it has an @), as an email used as a key is.
        map.insert(
            format!("{}@{}", &SECRET[..10], &SECRET[10..]),
            serde_json::Value::from(1),
        );
    }
    let p = policy();
    actas_core::mask::mask_json(&mut doc, p.masking(), p.unclassified);
    let out = doc.to_string();
    let hidden = &SECRET[..SECRET.len() - 4];
    for w in hidden.as_bytes().windows(5) {
        let w = String::from_utf8_lossy(w);
        assert!(!out.contains(w.as_ref()), "{w} came out: {out}");
    }
}

/// Takes the secret out of every place a `show` rule names (`name` at any depth).
fn strip_shown(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if map.get("name").is_some_and(|n| n.as_str() == Some(SECRET)) {
                map.insert("name".into(), serde_json::Value::Null);
            }
            map.values_mut().for_each(strip_shown);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_shown),
        _ => {}
    }
}

/// Any text as a URL in a page: whatever the url crate resolves to the product stays
/// on the gateway once rewritten.
pub fn urls(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let origins = Origins::new(
        ["http://product.test:8082", "https://app.example.com"],
        "http://gateway.test:8081/",
    );
    let base = url::Url::parse("http://gateway.test:8081/").ok();
    let Some(base) = base else { return };
    let resolved = base.join(value.trim()).ok();
    let out = origins.local(&value).unwrap_or_else(|| value.to_string());
    if resolved.as_ref().is_some_and(|u| origins.is_product(u)) {
        let after = base.join(out.trim()).ok();
        assert!(
            after.as_ref().is_some_and(|u| !origins.is_product(u)),
            "{value:?} → {out:?} still names the product"
        );
    }
}
