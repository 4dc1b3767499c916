use super::path::{CanonicalPath, TrailingSlash};
use super::*;
use crate::Timestamp;
use crate::ids::{AccountId, RequestId, SessionId, StaffId};
use crate::policy::AssetTrust;
use crate::scope::Scope;
use proptest::prelude::*;
use std::time::Duration;

const POLICY: &str = r#"
[capabilities.edit_settings]
risk = "low"
description = "Change settings"

[capabilities.export]
risk = "high"
description = "Download the export"
export = true

[capabilities.account_access]
risk = "forbidden"
description = "The customer's own access settings"

[capabilities.chat]
risk = "medium"
description = "Write to the customer in the live chat"

[[routes]]
route = "POST /settings/tax"
capability = "edit_settings"
description = "changed the tax settings"

[[routes]]
route = "GET /transactions/export.csv"
capability = "export"
description = "downloaded the transactions export"

[[routes]]
route = "GET /access"
capability = "account_access"
description = "opened the customer's account access page"

[[routes]]
route = "GET /loans/{id}"
capability = "view"
description = "viewed loan {id}"

[[routes]]
route = "POST /loans/{id}/terms"
capability = "edit_settings"
description = "changed the terms of loan {id}"
signed_action = true
current = "GET /loans/{id}"

[[routes]]
route = "POST /settings/contact"
capability = "edit_settings"
description = "changed the contact details"
signed_action = true

[gateway]
static_assets = [".css", "/static/", "/favicon.ico"]
trusted_assets = ["/build/"]
websocket_capability = "chat"
"#;

fn policy() -> Policy {
    Policy::from_toml(POLICY, "policy.toml").expect("policy")
}

fn session(caps: &[&str], mode: Mode) -> SessionInfo {
    let now = Timestamp::now();
    SessionInfo {
        id: SessionId::random(),
        request: RequestId::random(),
        staff: StaffId::new(1).expect("id"),
        account: AccountId::parse("acme").expect("account"),
        scope: Scope::new(caps.iter().map(|c| CapabilityName::parse(c).expect("cap"))),
        mode,
        started_at: now,
        expires_at: now.plus(Duration::from_secs(900)),
        idle_limit: Duration::from_secs(900),
    }
}

fn canonical(raw: &str) -> CanonicalPath {
    CanonicalPath::parse(raw, TrailingSlash::Remove)
        .expect("canonical")
        .path
}

fn decide_on(s: &SessionInfo, method: Method, raw: &str, kind: RequestKind) -> Decision {
    let path = canonical(raw);
    decide(
        s,
        &policy(),
        &Request {
            method,
            path: &path,
            kind,
        },
    )
}

/// The decision as a short word, for the table.
fn outcome(d: &Decision) -> String {
    match d {
        Decision::Forward { kind, .. } => format!("{kind:?}"),
        Decision::Block { why, .. } => format!("Block({why})"),
        Decision::Confirm { current, .. } => format!("Confirm({current})"),
    }
}

#[test]
fn each_kind_of_request_is_decided_as_the_table_says() {
    use Method::*;
    use RequestKind::*;
    let live = session(&["edit_settings", "chat"], Mode::Live);
    let read_only = session(&["edit_settings", "chat"], Mode::ReadOnly);
    let export = session(&["export"], Mode::ReadOnly);
    let chat = session(&["chat"], Mode::Live);
    let cases: &[(&SessionInfo, Method, &str, RequestKind, &str)] = &[
        (&live, Get, "/", Navigation, "PageView"),
        (&live, Get, "/", Fetch, "DataRead"),
        (&live, Head, "/", Fetch, "DataRead"),
        (&live, Options, "/", Fetch, "DataRead"),
        (&live, Get, "/loans/LA-7", Navigation, "PageView"),
        (&live, Post, "/settings/tax", Fetch, "Change"),
        (&live, Post, "/settings/tax", Navigation, "Change"),
        (
            &live,
            Post,
            "/loans/LA-7/terms",
            Navigation,
            "Confirm(/loans/LA-7)",
        ),
        (
            &live,
            Post,
            "/settings/contact",
            Fetch,
            "Confirm(/settings/contact)",
        ),
        (
            &live,
            Post,
            "/Settings/Contact.json",
            Fetch,
            "Confirm(/settings/contact)",
        ),
        (
            &read_only,
            Post,
            "/settings/contact",
            Fetch,
            "Block(this session is read-only, so nothing can be changed)",
        ),
        (
            &chat,
            Post,
            "/settings/contact",
            Fetch,
            "Block(this session's scope does not include edit_settings)",
        ),
        (
            &read_only,
            Post,
            "/settings/tax",
            Navigation,
            "Block(this session is read-only, so nothing can be changed)",
        ),
        (
            &live,
            Delete,
            "/settings/tax",
            Fetch,
            "Block(this kind of change is not in the policy, so it is blocked)",
        ),
        (
            &live,
            Get,
            "/transactions/export.csv",
            Fetch,
            "Block(this session's scope does not include export)",
        ),
        (
            &live,
            Head,
            "/transactions/export.csv",
            Fetch,
            "Block(this session's scope does not include export)",
        ),
        (&export, Get, "/transactions/export.csv", Fetch, "DataRead"),
        (
            &live,
            Get,
            "/access",
            Navigation,
            "Block(this session's scope does not include account_access)",
        ),
        (&live, Get, "/app.css", Fetch, "Asset(MustBePublic)"),
        (
            &live,
            Get,
            "/static/logo.png",
            Navigation,
            "Asset(MustBePublic)",
        ),
        (&live, Get, "/favicon.ico", Fetch, "Asset(MustBePublic)"),
        (&live, Get, "/build/app.js", Fetch, "Asset(Trusted)"),
        (&live, Head, "/app.css", Fetch, "Asset(MustBePublic)"),
        (&live, Get, "/static", Fetch, "DataRead"),
        (&live, Get, "/favicon.ico/x", Fetch, "DataRead"),
        (
            &live,
            Post,
            "/app.css",
            Fetch,
            "Block(this kind of change is not in the policy, so it is blocked)",
        ),
        (&live, Get, "/live", LiveOpen, "LiveOpen"),
        (&read_only, Get, "/live", LiveOpen, "LiveOpen"),
        (&live, Get, "/live", LiveMessage, "LiveMessage"),
        (
            &read_only,
            Get,
            "/live",
            LiveMessage,
            "Block(this session is read-only, so nothing can be changed)",
        ),
        (
            &session(&["edit_settings"], Mode::Live),
            Get,
            "/live",
            LiveMessage,
            "Block(this session's scope does not include chat)",
        ),
        // A message is never routed as the page it was opened on, nor as an asset.
        (&live, Get, "/app.css", LiveMessage, "LiveMessage"),
    ];
    for (s, method, path, kind, want) in cases {
        let got = decide_on(s, *method, path, *kind);
        assert_eq!(outcome(&got), *want, "{method} {path} as {kind:?}");
    }
}

#[test]
fn a_route_named_by_the_policy_wins_over_an_asset_pattern() {
    let text = format!(
        "{POLICY}\n[[routes]]\nroute = \"GET /static/report.css\"\ncapability = \"export\"\ndescription = \"downloaded the report\"\n"
    );
    let p = Policy::from_toml(&text, "policy.toml").expect("policy");
    let path = canonical("/static/report.css");
    let d = decide(
        &session(&[], Mode::ReadOnly),
        &p,
        &Request {
            method: Method::Get,
            path: &path,
            kind: RequestKind::Fetch,
        },
    );
    assert_eq!(
        outcome(&d),
        "Block(this session's scope does not include export)"
    );
}

#[test]
fn descriptions_name_the_route_or_the_path() {
    let s = session(&[], Mode::ReadOnly);
    let described = |method, path, kind| match decide_on(&s, method, path, kind) {
        Decision::Forward { description, .. } => description,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        described(Method::Get, "/LOANS/LA-77", RequestKind::Navigation),
        "viewed loan LA-77"
    );
    assert_eq!(
        described(Method::Get, "/billing", RequestKind::Navigation),
        "viewed /billing"
    );
    assert_eq!(
        described(Method::Get, "/api/profile", RequestKind::Fetch),
        "read /api/profile"
    );
    assert_eq!(
        described(Method::Get, "/live", RequestKind::LiveOpen),
        "opened a live connection to /live"
    );
}

/// The routes of [`POLICY`] (their capability) and paths no route names.
const ROUTES: &[(&str, Option<&str>)] = &[
    ("/transactions/export.csv", Some("export")),
    ("/access", Some("account_access")),
    ("/loans/LA-77", Some("view")),
    ("/billing/cards", None),
];

/// One way a framework may see a segment spelled: each letter as it is, upper-cased, or
/// percent-encoded (either hex case).
fn spelled(segment: &'static str) -> impl Strategy<Value = String> {
    let letters: Vec<BoxedStrategy<String>> = segment
        .chars()
        .map(|c| {
            let plain = Just(c.to_string()).boxed();
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                prop_oneof![
                    3 => plain,
                    1 => Just(c.to_ascii_uppercase().to_string()),
                    1 => Just(format!("%{:02X}", c as u32)),
                    1 => Just(format!("%{:02x}", c as u32)),
                ]
                .boxed()
            } else {
                plain
            }
        })
        .collect();
    letters.prop_map(|parts| parts.concat())
}

/// A separator between segments: one or more slashes or backslashes, maybe with `.` or
/// `x/..` detours in between.
fn separator() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => Just("/".to_owned()),
            1 => Just("\\".to_owned()),
            1 => Just("/./".to_owned()),
            1 => Just("/%2e/".to_owned()),
            1 => Just("/detour/../".to_owned()),
            1 => Just("/detour/%2E%2e/".to_owned()),
            1 => Just("//".to_owned()),
        ],
        1..3,
    )
    .prop_map(|parts| parts.concat())
}

/// A spelling of one of [`ROUTES`], and the index of the route it spells.
fn variant() -> impl Strategy<Value = (usize, String)> {
    (0..ROUTES.len()).prop_flat_map(|i| {
        let segments: Vec<&'static str> = ROUTES[i].0.split('/').skip(1).collect();
        let parts: Vec<BoxedStrategy<String>> = segments
            .into_iter()
            .map(|s| (separator(), spelled(s)).prop_map(|(a, b)| a + &b).boxed())
            .collect();
        (
            Just(i),
            parts,
            prop_oneof![Just(""), Just("/"), Just("//"), Just("/."), Just("/x/..")],
        )
            .prop_map(|(i, parts, tail)| (i, parts.concat() + tail))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the spelling, the capability decided is the one the canonical path's
    /// route names, and the canonical path is what the product would receive.
    #[test]
    fn every_spelling_of_a_route_is_decided_as_the_route(v in variant()) {
        let (i, raw) = v;
        let (route, capability) = ROUTES[i];
        let read = CanonicalPath::parse(&raw, TrailingSlash::Remove);
        let canonical = read.expect("a variant always has a canonical form");
        prop_assert!(
            canonical.path.as_str().eq_ignore_ascii_case(route),
            "{raw} read as {}", canonical.path
        );
        let again = CanonicalPath::parse(canonical.path.as_str(), TrailingSlash::Remove)
            .expect("canonical");
        prop_assert!(!again.changed, "the canonical form is stable: {}", canonical.path);
        prop_assert_eq!(canonical.changed, raw != canonical.path.as_str());
        let s = session(&["export"], Mode::ReadOnly);
        let p = policy();
        let d = decide(&s, &p, &Request { method: Method::Get, path: &canonical.path, kind: RequestKind::Fetch });
        let decided = match &d {
            Decision::Forward { capability, .. } | Decision::Block { capability, .. } => {
                capability.as_ref().map(|c| c.as_str().to_owned())
            }
            Decision::Confirm { capability, .. } => Some(capability.as_str().to_owned()),
        };
        let want = capability.unwrap_or("view");
        prop_assert_eq!(decided.as_deref(), Some(want), "{} decided as {:?}", raw, d);
    }

    /// Anything at all either reads as a canonical path that reads as itself, or is
    /// refused; it never panics, and the canonical form has none of the spellings a
    /// framework would read differently.
    #[test]
    fn any_path_is_canonical_or_refused(raw in "[/\\\\a-zA-Z0-9%.;~_\\-]{0,40}") {
        if let Ok(c) = CanonicalPath::parse(&raw, TrailingSlash::Remove) {
            let p = c.path.as_str();
            prop_assert!(p.starts_with('/'));
            prop_assert!(!p.contains("//") && !p.contains('\\'));
            prop_assert!(!p.contains("/./") && !p.ends_with("/.") && !p.contains("/../") && !p.ends_with("/.."));
            prop_assert!(p == "/" || !p.ends_with('/'));
            let again = CanonicalPath::parse(p, TrailingSlash::Remove).expect("canonical");
            prop_assert!(!again.changed);
        }
    }
}

#[test]
fn assets_match_in_the_routes_case_rule() {
    let p = policy();
    assert_eq!(
        p.gateway.asset(&canonical("/STATIC/x.png")),
        Some(AssetTrust::MustBePublic)
    );
    assert_eq!(
        p.gateway.asset(&canonical("/x.CSS")),
        Some(AssetTrust::MustBePublic)
    );
    assert_eq!(p.gateway.asset(&canonical("/static-reports/x")), None);
    assert_eq!(p.gateway.asset(&canonical("/x.csv")), None);
}

#[test]
fn a_signed_action_is_held_whatever_method_override_names_it() {
    let live = session(&["edit_settings"], Mode::Live);
    let path = canonical("/settings/contact");
    let asked = Request {
        method: Method::Post,
        path: &path,
        kind: RequestKind::Navigation,
    };
    for overridden in [Method::Get, Method::Put, Method::Delete] {
        let d = decide_override(&live, &policy(), &asked, overridden);
        assert!(
            matches!(&d, Decision::Confirm { current, .. } if current == "/settings/contact")
                || matches!(&d, Decision::Block { .. }),
            "POST with _method={overridden} was {d:?}"
        );
        assert!(!matches!(d, Decision::Forward { .. }));
    }
}

#[test]
fn a_signed_action_must_be_a_change_and_current_a_page() {
    let base = "[capabilities.edit]\nrisk = \"low\"\ndescription = \"Edit\"\n[[routes]]\ncapability = \"edit\"\ndescription = \"d\"\n";
    let refused = |extra: &str| {
        Policy::from_toml(&format!("{base}{extra}"), "policy.toml")
            .expect_err("refused")
            .to_string()
    };
    assert!(
        refused("route = \"GET /x\"\nsigned_action = true\n")
            .contains("a signed action is a change"),
    );
    assert!(
        refused("route = \"POST /x\"\ncurrent = \"GET /x\"\n").contains("only a signed action"),
    );
    assert!(
        refused("route = \"POST /x\"\nsigned_action = true\ncurrent = \"POST /y\"\n")
            .contains("GET /profile"),
    );
    assert!(
        refused("route = \"POST /x/{id}\"\nsigned_action = true\ncurrent = \"GET /y/{other}\"\n")
            .contains("other"),
    );
    assert!(
        refused("route = \"POST /x\"\nsigned_action = true\ncurrent = \"GET /a/../b\"\n")
            .contains("/b"),
    );
}
