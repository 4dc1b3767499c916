//! The rewriter, page by page.

use super::mask::descendants_of;
use super::*;
use actas_core::policy::Policy;
use std::sync::Arc;

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

/// A page fed in `pieces` to the test policy's masker, rewritten, without the marks the
/// gateway puts on what it masked (see `marks_and_locks`).
fn rewritten<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, origin: Option<&str>) -> String {
    let out = masker()
        .rewrite_chunks(pieces, "", origin)
        .expect("rewrite");
    unmarked(String::from_utf8(out).expect("utf-8"))
}

fn unmarked(page: String) -> String {
    page.replace(&format!(" {MASKED_ATTRIBUTE}=\"\""), "")
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
    let out = unmarked(
        String::from_utf8(
            masker()
                .rewrite(
                    PAGE.as_bytes(),
                    "<div id=actas-banner>Acting as Acme Co</div>",
                )
                .expect("rewrite"),
        )
        .expect("utf-8"),
    );
    assert!(
        out.contains(r#"<body class="portal"><div id=actas-banner>Acting as Acme Co</div><h1>"#),
        "{out}"
    );
    assert!(
        out.contains(r#"<span class="card-number">•••• 4242</span>"#),
        "{out}"
    );
    assert!(out.contains(r#"value="•••• 4242""#), "{out}");
    assert!(out.contains("s•••@acme.com"), "{out}");
    assert!(
        out.contains(r#"<div id="••• hidden">••• hidden</div>"#),
        "{out}"
    );
    // Attributes of masked elements, and of elements inside them, are masked too, all
    // but `class` (an `id` can be the data itself).
    assert!(
        out.contains(r#"<a class="email" href="m•••@acme.com" title="s•••@acme.com">"#),
        "{out}"
    );
    assert!(
        out.contains(r#"<a href="•••• 4242" data-card="•••• 4242">"#),
        "{out}"
    );
    assert!(
        out.contains(r#"<div id="••• hidden" data-value="••• hidden">"#),
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
        assert!(
            !out.contains("var shown"),
            "inline code is removed unless the route keeps it: {out}"
        );
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
fn a_bad_selector_is_refused_at_start() {
    let p = Policy::from_toml("[[masking]]\nhtml = \"div[\"\nrule = \"hide\"\n", "t.toml")
        .expect("policy");
    assert!(matches!(
        HtmlMasker::new(&p),
        Err(RewriteError::Selector { .. })
    ));
}

#[test]
fn last4_and_email_mask_an_elements_whole_text_however_it_is_split() {
    let page = r#"<body><span class="card-number">4111 <b>1111</b> <i>11<u>11</u></i> 4242</span>
<p class="email"><span>sarah</span>@<span>acme.com</span></p>
<span class="card-number" id="card-4111111111114242" style="background:url(/c/4111111111114242)" name="pan">x</span></body>"#;
    for size in [page.len(), 1, 7] {
        let out = rewritten(page.as_bytes().chunks(size), None);
        assert!(out.contains("•••• 4242"), "{out}");
        assert!(out.contains("s•••@acme.com"), "{out}");
        for secret in ["1111", "sarah", "4111111111114242", "url(/c/"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(
            out.contains(r#"name="••••""#),
            "an element that is not a form field keeps no name: {out}"
        );
        assert!(out.contains(r#"class="card-number""#), "{out}");
    }
}

fn form_masker() -> HtmlMasker {
    let p = Policy::from_toml(
        r##"
unclassified = "hide"
[[masking]]
field = "name"
rule = "show"
[[masking]]
json = "$.email"
rule = "email"
[[masking]]
field = "tax_rate"
rule = "show"
[[masking]]
html = "[data-secret]"
rule = "never"
[[masking]]
field = "pin"
rule = "never"
"##,
        "t.toml",
    )
    .expect("policy");
    HtmlMasker::new(&p).expect("selectors")
}

#[test]
fn form_fields_no_rule_names_are_hidden_and_masked_ones_can_only_go_back_as_placeholders() {
    let page = r#"<body><form method="post" action="/profile">
<input name="name" value="Acme Co">
<input name="email" value="sarah@acme.com">
<input name="backup_email" value="backup@acme.com">
<input name="empty_note" value="">
<textarea name="notes">VIP, call before noon</textarea>
<select name="tier"><option value="gold" selected>Gold</option></select>
<select name="tax_rate"><option value="20" selected>20%</option></select>
<input type="checkbox" name="is_vip" value="yes" checked>
<input name="pin" value="9921">
<div data-secret><input name="recovery" value="rc-aaaa"></div>
<input type="hidden" name="internal_id" value="cust_8812">
<input type="submit" value="Save profile">
</form></body>"#;
    let masker = form_masker();
    let mut stream = masker.stream("", None);
    let mut out = stream.feed(page.as_bytes()).expect("feed").to_vec();
    let unclassified = stream.take_unclassified();
    out.extend_from_slice(&stream.finish().expect("finish"));
    let out = String::from_utf8(out).expect("utf-8");
    for secret in [
        "backup@acme.com",
        "VIP, call",
        "Gold",
        "9921",
        "rc-aaaa",
        "cust_8812",
        "sarah@",
    ] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    // Classified and shown: untouched.
    assert!(
        out.contains(r#"<input name="name" value="Acme Co">"#),
        "{out}"
    );
    assert!(
        out.contains(r#"<option value="20" selected>20%</option>"#),
        "{out}"
    );
    assert!(
        out.contains(r#"<input type="submit" value="Save profile">"#),
        "{out}"
    );
    // Masked text fields are read-only with their placeholder.
    assert!(
        out.contains(
            r#"name="email" value="s•••@acme.com" data-actas-masked="" title="Masked by actas"#
        ) && out.contains(r#"readonly="""#),
        "{out}"
    );
    assert!(
        out.contains(r#"<input name="empty_note" value="""#),
        "an empty field stays empty: {out}"
    );
    // What the browser would leave out carries a hidden twin with the placeholder.
    for name in ["tier", "is_vip", "pin", "recovery"] {
        assert!(
            out.contains(&format!(
                r#"<input type="hidden" name="{name}" value="••• hidden" data-actas-masked>"#
            )),
            "{name}: {out}"
        );
    }
    assert!(out.contains("disabled"), "{out}");
    assert!(
        !out.contains("checked"),
        "a masked box does not say whether it is ticked: {out}"
    );
    let names: Vec<&str> = unclassified.iter().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "field backup_email",
            "field empty_note",
            "field internal_id",
            "field is_vip",
            "field notes",
            "field tier"
        ]
    );
}

/// A page through `masker` with the product at `http://product.local:8082` (also named
/// publicly as `https://app.example.com`), keeping inline scripts or not.
fn through_edges(page: &str, inline_scripts: bool) -> (String, Vec<String>) {
    let origins = Origins::new(
        ["http://product.local:8082", "https://app.example.com"],
        "http://gateway.local:8081/",
    );
    let mut stream = masker().stream_page(&Page {
        banner: "<div id=actas-banner></div>",
        origins: Some(Arc::new(origins)),
        encoding: encoding_rs::UTF_8,
        inline_scripts,
    });
    let mut out = stream.feed(page.as_bytes()).expect("feed").to_vec();
    let done = stream.finish_reporting().expect("finish");
    out.extend_from_slice(&done.rest);
    (
        unmarked(String::from_utf8(out).expect("utf-8")),
        done.unclassified.into_iter().collect(),
    )
}

#[test]
fn what_hides_in_comments_frames_noscript_and_scripts_is_removed() {
    let page = r#"<!-- card 4111111111114242 --><html><head><base href="https://elsewhere.example/"></head><body>
<!-- internal: sarah@acme.com -->
<noscript><p>4111111111114242</p></noscript>
<iframe srcdoc="<p>4111111111114242</p>"></iframe>
<script>window.__STATE__ = {"card":"4111111111114242"};</script>
<script>self.__next_f.push([1,"4111111111114242"])</script>
<script type="text/template"><p>{{card}} 4111111111114242</p></script>
<script type="module">import x from "/m.js"; x("4111111111114242")</script>
<script src="/app.js"></script>
<button onclick="reveal('4111111111114242')">Show</button>
<a href="javascript:alert('4111111111114242')">x</a>
</body></html>"#;
    let (out, noted) = through_edges(page, false);
    assert!(!out.contains("4111") && !out.contains("sarah@"), "{out}");
    assert!(
        !out.contains("<base"),
        "a base to another origin goes: {out}"
    );
    assert!(out.contains(r#"<script src="/app.js"></script>"#), "{out}");
    assert!(out.contains("<button>Show</button>"), "{out}");
    for kind in [
        "event handler attribute",
        "iframe srcdoc",
        "inline script",
        "javascript: URL",
        "script template",
    ] {
        assert!(noted.contains(&kind.to_owned()), "{kind}: {noted:?}");
    }
    // A route that keeps inline scripts keeps them (and their handlers).
    let (kept, _) = through_edges(page, true);
    assert!(
        kept.contains("window.__STATE__") && kept.contains("onclick"),
        "{kept}"
    );
    assert!(!kept.contains("<!--") && !kept.contains("srcdoc"), "{kept}");
}

#[test]
fn every_url_a_page_names_on_the_product_stays_on_the_gateway() {
    let page = r#"<html><head><base href="https://app.example.com/app/">
<link rel="stylesheet" href="HTTP://PRODUCT.LOCAL:8082/s.css">
<style>body{background:url("http://product.local:8082/bg.png")} @import 'https://app.example.com/x.css';</style>
<meta http-equiv="refresh" content="30; url=https://app.example.com/timeout"></head>
<body><img srcset="http://product.local:8082/a.png 1x, //app.example.com/b.png 2x" src="\\product.local:8082/c.png">
<video poster="https://app.example.com/p.png"></video><object data="http://user@product.local:8082/o.pdf"></object>
<svg><a href="https://app.example.com/svg"><image xlink:href="http://product.local:8082/i.png"/></a></svg>
<a href="https://app.example.com/loans" ping="https://app.example.com/track">l</a>
<div style="background-image:url(https://app.example.com/d.png)">d</div>
<form action="http:\\product.local:8082\save"><button formaction="https://app.example.com:443/other">b</button></form>
<a href="https://elsewhere.example/x">out</a></body></html>"#;
    let (out, _) = through_edges(page, false);
    assert!(
        !out.contains("product.local") && !out.contains("app.example.com"),
        "{out}"
    );
    for local in [
        r#"<base href="/app/">"#,
        r#"href="/s.css""#,
        r#"url("/bg.png")"#,
        "@import '/x.css'",
        "url=/timeout",
        r#"srcset="/a.png 1x, /b.png 2x""#,
        r#"src="/c.png""#,
        r#"poster="/p.png""#,
        r#"data="/o.pdf""#,
        r#"href="/svg""#,
        r#"xlink:href="/i.png""#,
        r#"ping="/track""#,
        "url(/d.png)",
        r#"action="/save""#,
        r#"formaction="/other""#,
        "https://elsewhere.example/x",
    ] {
        assert!(out.contains(local), "{local} missing: {out}");
    }
}

mod planted {
    //! Pages with secrets planted inside masked elements, in every way a page can hold
    //! them, fed in pieces of every size: no secret comes out.

    use super::*;
    use proptest::prelude::*;

    /// How a piece of the secret is held inside the masked element.
    #[derive(Debug, Clone)]
    enum Hold {
        Text,
        Nested(&'static str),
        Deeper,
        Attribute(&'static str),
        Comment,
    }

    fn hold() -> impl Strategy<Value = Hold> {
        prop_oneof![
            Just(Hold::Text),
            prop_oneof![Just("b"), Just("span"), Just("em"), Just("a")].prop_map(Hold::Nested),
            Just(Hold::Deeper),
            prop_oneof![
                Just("title"),
                Just("data-x"),
                Just("id"),
                Just("style"),
                Just("href"),
                Just("value")
            ]
            .prop_map(Hold::Attribute),
            Just(Hold::Comment),
        ]
    }

    fn place(piece: &str, how: &Hold) -> String {
        match how {
            Hold::Text => piece.to_owned(),
            Hold::Nested(tag) => format!("<{tag}>{piece}</{tag}>"),
            Hold::Deeper => format!("<span><b><i>{piece}</i></b></span>"),
            Hold::Attribute(attr) => format!("<span {attr}=\"x{piece}\">.</span>"),
            Hold::Comment => format!("<!--{piece}-->"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn no_planted_secret_survives(
            secret in "[A-Z]{16}",
            cuts in prop::collection::vec(1usize..15, 0..4),
            holds in prop::collection::vec(hold(), 5),
            wrapper in prop_oneof![
                Just(("<span class=\"card-number\">", "</span>", 4usize)),
                Just(("<div id=\"national-id\">", "</div>", 0)),
                Just(("<ul data-secret><li>", "</li></ul>", 0)),
                Just(("<td class=\"card-number\"><a href=\"/c\">", "</a></td>", 4)),
            ],
            piece_size in 1usize..64,
        ) {
            let mut points: Vec<usize> = cuts.into_iter().collect();
            points.sort_unstable();
            points.dedup();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([16]) {
                if p > last {
                    pieces.push(&secret[last..p]);
                    last = p;
                }
            }
            let inner: String = pieces
                .iter()
                .zip(holds.iter().cycle())
                .map(|(piece, how)| place(piece, how))
                .collect();
            let page = format!(
                "<html><body><p>before</p>{}{inner}{}<p>after</p></body></html>",
                wrapper.0, wrapper.1
            );
            let out = rewritten(page.as_bytes().chunks(piece_size), None);
            // What a rule may show: the last four characters for last4; nothing else.
            let hidden = &secret[..16 - wrapper.2];
            for w in hidden.as_bytes().windows(5) {
                let w = std::str::from_utf8(w).expect("ascii");
                prop_assert!(!out.contains(w), "{w} of {secret} in {out}\nfrom {page}");
            }
            prop_assert!(out.contains("before") && out.contains("after"), "{out}");
        }
    }
}
