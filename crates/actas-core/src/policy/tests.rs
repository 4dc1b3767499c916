use super::*;
use crate::account::AccountFlag;

fn path(p: &str) -> CanonicalPath {
    CanonicalPath::parse(p, crate::gateway::path::TrailingSlash::Remove)
        .expect("canonical")
        .path
}

fn policy(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_toml(text, "policy.toml")
}

#[test]
fn the_starter_policy_is_valid() {
    let p = Policy::starter();
    assert_eq!(p.session, SessionLimits::default());
    assert_eq!(p.unclassified, MaskRule::Hide);
    assert!(p.capability(&CapabilityName::view()).is_some());
    assert!(!p.routes().is_empty());
}

#[test]
fn defaults_are_thirty_fifteen_and_five_minutes() {
    let p = policy("").expect("empty policy is valid");
    assert_eq!(p.session.hard_limit, Duration::from_secs(1800));
    assert_eq!(p.session.idle_limit, Duration::from_secs(900));
    assert_eq!(p.session.reauth_within, Duration::from_secs(300));
    assert_eq!(p.unclassified, MaskRule::Hide);
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let err = policy("[session]\nhard_limit_minutes = = 3\n").expect_err("bad toml");
    assert_eq!(err.line, Some(2), "{err}");
    assert!(
        err.to_string().starts_with("policy.toml, line 2: "),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_refused_with_their_line() {
    let err = policy("[session]\nhard_limit_minutes = 30\nidle_minutes = 3\n").expect_err("typo");
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.to_string().contains("idle_minutes"), "{err}");
}

#[test]
fn a_route_to_an_unknown_capability_names_the_route_field_and_line() {
    let text = "\
[capabilities.edit_settings]
risk = \"medium\"
description = \"Change settings\"

[[routes]]
route = \"POST /settings/tax\"
capability = \"edit_setings\"
description = \"changed the tax settings\"
";
    let err = policy(text).expect_err("unknown capability");
    assert_eq!(err.line, Some(7), "{err}");
    assert_eq!(err.field, "routes[0].capability");
    assert!(
        err.message.contains("edit_setings") && err.message.contains("edit_settings"),
        "{err}"
    );
}

#[test]
fn bad_risk_masking_and_limits_are_refused_precisely() {
    let err =
        policy("[capabilities.x]\nrisk = \"severe\"\ndescription = \"d\"\n").expect_err("risk");
    assert_eq!(
        (err.line, err.field.as_str()),
        (Some(2), "capabilities.x.risk")
    );

    let err = policy("[[masking]]\njson = \"card.number\"\nrule = \"last4\"\n").expect_err("path");
    assert_eq!((err.line, err.field.as_str()), (Some(2), "masking[0].json"));

    let err = policy("[[masking]]\njson = \"$.a\"\nrule = \"blur\"\n").expect_err("rule");
    assert_eq!((err.line, err.field.as_str()), (Some(3), "masking[0].rule"));

    let err = policy("[[masking]]\nrule = \"hide\"\n").expect_err("no target");
    assert_eq!(err.field, "masking[0]");

    let err =
        policy("[session]\nhard_limit_minutes = 10\nidle_limit_minutes = 20\n").expect_err("idle");
    assert_eq!(
        (err.line, err.field.as_str()),
        (Some(3), "session.idle_limit_minutes")
    );

    let err =
        policy("[capabilities.view]\nrisk = \"high\"\ndescription = \"d\"\n").expect_err("view");
    assert_eq!(err.field, "capabilities.view.risk");
}

#[test]
fn overlapping_routes_are_refused() {
    let text = "\
[[routes]]
route = \"GET /loans/{id}\"
capability = \"view\"
description = \"viewed loan {id}\"

[[routes]]
route = \"GET /loans/{loan}\"
capability = \"view\"
description = \"viewed loan {loan}\"
";
    let err = policy(text).expect_err("conflict");
    assert_eq!((err.line, err.field.as_str()), (Some(7), "routes[1].route"));
}

#[test]
fn scopes_refuse_unknown_and_forbidden_capabilities() {
    let p = Policy::starter();
    assert!(p.scope(["edit_settings"]).is_ok());
    assert_eq!(p.scope(["fly"]), Err(ScopeRefusal::Unknown("fly".into())));
    assert!(matches!(
        p.scope(["payments"]),
        Err(ScopeRefusal::Forbidden(_))
    ));
}

#[test]
fn durations_are_bounded_by_the_hard_limit() {
    let p = Policy::starter();
    assert_eq!(p.duration(None).map(SessionDuration::minutes), Ok(15));
    assert_eq!(p.duration(Some(30)).map(SessionDuration::minutes), Ok(30));
    assert_eq!(
        p.duration(Some(31)),
        Err(ScopeRefusal::Duration { given: 31, max: 30 })
    );
    assert!(p.duration(Some(0)).is_err());
}

#[test]
fn approval_needs_follow_risk_flags_and_consent() {
    let p = Policy::starter();
    let normal: Vec<AccountFlag> = vec![];
    let sensitive = vec![AccountFlag::parse("sensitive").expect("flag")];
    let view = p.scope([]).expect("scope");
    let edit = p.scope(["edit_settings"]).expect("scope");
    let export = p.scope(["export"]).expect("scope");

    let a = p.assess(&view, &normal, Consent::Allowed);
    assert_eq!(
        (a.risk, a.needs_lead, a.needs_code),
        (Risk::Low, false, false)
    );
    let a = p.assess(&edit, &normal, Consent::Allowed);
    assert_eq!(
        (a.risk, a.needs_lead, a.needs_code),
        (Risk::Medium, true, false)
    );
    let a = p.assess(&export, &normal, Consent::Allowed);
    assert_eq!(
        (a.risk, a.needs_lead, a.needs_code),
        (Risk::High, true, true)
    );
    let a = p.assess(&view, &sensitive, Consent::Allowed);
    assert_eq!((a.needs_lead, a.needs_code), (true, true));
    let a = p.assess(&view, &normal, Consent::CodeRequired);
    assert_eq!((a.needs_lead, a.needs_code), (false, true));
    assert!(p.allows_export(&export) && !p.allows_export(&edit));
}

#[test]
fn routes_resolve_to_capabilities_with_descriptions() {
    let p = Policy::starter();
    let m = p
        .route(Method::Post, &path("/payments/p-9"))
        .expect("route");
    assert_eq!(m.capability.as_str(), "payments");
    assert_eq!(m.description, "changed payment p-9");
    assert!(p.route(Method::Get, &path("/nowhere")).is_none());
}

#[test]
fn the_gateway_section_sets_what_unnamed_requests_need() {
    let p = Policy::starter();
    assert_eq!(p.gateway, GatewayRules::default());
    assert!(p.gateway.asset(&path("/assets/app.js")).is_some());
    assert!(p.gateway.asset(&path("/loans")).is_none());

    let p = Policy::from_toml(
        "[capabilities.edit_settings]\nrisk = \"medium\"\ndescription = \"d\"\n\n[gateway]\nunmatched_get = \"block\"\nunmatched_change = \"edit_settings\"\nstatic_assets = [\".png\"]\n",
        "t.toml",
    )
    .expect("valid");
    assert_eq!(p.gateway.unmatched_get, None);
    assert_eq!(
        p.gateway
            .unmatched_change
            .as_ref()
            .map(CapabilityName::as_str),
        Some("edit_settings")
    );
    assert!(
        p.gateway.asset(&path("/a.png")).is_some() && p.gateway.asset(&path("/a.js")).is_none()
    );

    let e = Policy::from_toml("\n[gateway]\nunmatched_get = \"peek\"\n", "t.toml")
        .expect_err("unknown capability");
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(3), "gateway.unmatched_get")
    );
    assert!(e.message.contains("\"block\" or a capability"), "{e}");
    let e = Policy::from_toml("[gateway]\nstatic_assets = [\" \"]\n", "t.toml")
        .expect_err("empty ending");
    assert_eq!(e.field, "gateway.static_assets[0]");
}

#[test]
fn only_standard_response_headers_and_those_the_policy_names_pass() {
    let p = Policy::starter();
    for h in [
        "content-type",
        "cache-control",
        "set-cookie",
        "location",
        "etag",
    ] {
        assert!(p.gateway.passes_response_header(h), "{h}");
    }
    for h in ["x-total-count", "server", "refresh", "link", "actas-audit"] {
        assert!(!p.gateway.passes_response_header(h), "{h}");
    }
    let p = Policy::from_toml(
        "[gateway]\nresponse_headers = [\"X-Total-Count\"]\n",
        "t.toml",
    )
    .expect("valid");
    assert!(p.gateway.passes_response_header("x-total-count"));
    assert!(!p.gateway.passes_response_header("x-request-id"));

    let e = Policy::from_toml(
        "[gateway]\nresponse_headers = [\"x-ok\", \"bad header\"]\n",
        "t.toml",
    )
    .expect_err("not a name");
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(2), "gateway.response_headers[1]")
    );
    assert!(e.message.contains("not an HTTP header name"), "{e}");
    let e = Policy::from_toml(
        "[gateway]\nresponse_headers = [\"Actas-Audit\"]\n",
        "t.toml",
    )
    .expect_err("actas's own");
    assert!(e.message.contains("never pass"), "{e}");
}

#[test]
fn customer_event_kinds_are_built_in_and_declared() {
    use crate::activity::ActivityKind;
    let p = Policy::starter();
    let kind = |k: &str| ActivityKind::parse(k).expect("kind");
    assert_eq!(
        p.activity(&kind("agreement_signed")).map(|t| t.as_str()),
        Some("signed {document}")
    );
    assert!(p.activity(&kind("address_changed")).is_some());
    assert!(p.activity(&kind("teleported")).is_none());
    let e = Policy::from_toml(
        "[customer_events.renewed]\ndescription = \"renewed {plan\"\n",
        "t.toml",
    )
    .expect_err("bad template");
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(2), "customer_events.renewed.description")
    );
}

#[test]
fn the_shipped_example_policy_is_valid() {
    let text = include_str!("../../../../examples/policy.toml");
    let p = Policy::from_toml(text, "examples/policy.toml").expect("the example policy is valid");
    assert!(p.route(Method::Post, &path("/settings/tax")).is_some());
    assert!(p.allows_export(&p.scope(["export"]).expect("scope")));
}

#[test]
fn the_gateway_section_refuses_what_would_weaken_it_naming_the_line() {
    let caps = "[capabilities.chat]\nrisk = \"medium\"\ndescription = \"Chat\"\n\n[gateway]\n";
    let refused = [
        (
            "websocket_capability = \"view\"",
            "gateway.websocket_capability",
            "other than view",
        ),
        (
            "websocket_capability = \"talk\"",
            "gateway.websocket_capability",
            "\"talk\"",
        ),
        (
            "trailing_slash = \"sometimes\"",
            "gateway.trailing_slash",
            "\"remove\" or \"keep\"",
        ),
        (
            "request_headers = [\"X_Custom\"]",
            "gateway.request_headers[0]",
            "underscore",
        ),
        (
            "request_headers = [\"Range\"]",
            "gateway.request_headers[0]",
            "range is set by the gateway",
        ),
        (
            "request_headers = [\"X-Forwarded-Host\"]",
            "gateway.request_headers[0]",
            "can't be passed on",
        ),
        (
            "request_headers = [\"Actas-Assertion\"]",
            "gateway.request_headers[0]",
            "actas's own",
        ),
        (
            "static_assets = [\"css\"]",
            "gateway.static_assets[0]",
            "neither a file ending",
        ),
        (
            "static_assets = [\".\"]",
            "gateway.static_assets[0]",
            "not a file ending",
        ),
        (
            "trusted_assets = [\"/static//\"]",
            "gateway.trusted_assets[0]",
            "plain form",
        ),
        (
            "static_assets = [\"/\"]",
            "gateway.static_assets[0]",
            "plain form",
        ),
    ];
    for (line, field, says) in refused {
        let e = policy(&format!("{caps}{line}\n")).expect_err(line);
        assert_eq!((e.line, e.field.as_str()), (Some(6), field), "{line}: {e}");
        assert!(e.message.contains(says), "{line}: {e}");
    }
    let p = policy(&format!(
        "{caps}websocket_capability = \"chat\"\ntrailing_slash = \"keep\"\ncase_sensitive = true\nrequest_headers = [\"Authorization\"]\nstatic_assets = [\"/static/\", \".css\"]\ntrusted_assets = [\"/favicon.ico\"]\n"
    ))
    .expect("valid");
    let g = &p.gateway;
    assert_eq!(
        g.websocket_capability.as_ref().map(CapabilityName::as_str),
        Some("chat")
    );
    assert_eq!(g.trailing_slash, crate::gateway::path::TrailingSlash::Keep);
    assert!(g.case_sensitive);
    assert!(g.passes_request_header("authorization"));
    assert!(!g.passes_request_header("x_forwarded_for") && !g.passes_request_header("range"));
    assert_eq!(g.asset(&path("/favicon.ico")), Some(AssetTrust::Trusted));
    assert_eq!(g.warnings().len(), 2, "the trusted asset and authorization");
}

#[test]
fn route_paths_are_written_canonically() {
    let e = policy(
        "[[routes]]\nroute = \"GET /access/\"\ncapability = \"view\"\ndescription = \"viewed access\"\n",
    )
    .expect_err("trailing slash");
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(2), "routes[0].route"),
        "{e}"
    );
    assert!(e.message.contains("write the path as \"/access\""), "{e}");
}

#[test]
fn a_head_route_is_refused_since_head_is_matched_as_get() {
    let e = policy(
        "[[routes]]\nroute = \"HEAD /x\"\ncapability = \"view\"\ndescription = \"checked x\"\n",
    )
    .expect_err("head");
    assert!(e.message.contains("write the route as GET"), "{e}");
}

#[test]
fn passing_authorization_or_a_client_ip_header_is_warned_or_refused() {
    let p = policy("[gateway]\nrequest_headers = [\"Authorization\"]\n").expect("valid");
    assert!(
        p.gateway
            .warnings()
            .iter()
            .any(|w| w.contains("authorization")),
        "{:?}",
        p.gateway.warnings()
    );
    for never in [
        "X-Real-IP",
        "True-Client-IP",
        "Proxy-Authorization",
        "Expect",
    ] {
        assert!(
            policy(&format!("[gateway]\nrequest_headers = [\"{never}\"]\n")).is_err(),
            "{never}"
        );
    }
}

#[test]
fn a_rule_another_names_first_is_reported_as_shadowed() {
    let p = policy(
        "[[masking]]\njson = \"$.email\"\nrule = \"email\"\n[[masking]]\nfield = \"email\"\nrule = \"show\"\n[[masking]]\njson = \"$.email\"\nrule = \"show\"\n",
    )
    .expect("valid");
    let shadowed = p.shadowed_rules();
    assert_eq!(shadowed.len(), 1, "{shadowed:?}");
    assert!(
        shadowed[0].starts_with("masking[2] (json = \"$.email\", show) never applies"),
        "{shadowed:?}"
    );
}

#[test]
fn a_note_is_required_only_after_changes_and_only_when_policy_asks() {
    let mut limits = Policy::starter().session;
    assert!(
        limits.note_after_changes,
        "the starter policy asks for notes"
    );
    assert!(limits.note_required(true, false));
    assert!(!limits.note_required(true, true));
    assert!(!limits.note_required(false, false));
    limits.note_after_changes = false;
    assert!(!limits.note_required(true, false));
    let off =
        Policy::from_toml("[session]\nnote_after_changes = false\n", "p.toml").expect("policy");
    assert!(!off.session.note_after_changes);
}

#[test]
fn grants_are_due_for_review_and_overdue_ones_are_suspended_unless_policy_keeps_them() {
    let review = Policy::starter().grant_review;
    assert_eq!(review.every, Duration::from_secs(90 * 86_400));
    let day = Duration::from_secs(86_400);
    let granted = Timestamp::parse("2026-01-01").expect("date");
    assert_eq!(
        review.due(granted),
        Timestamp::parse("2026-04-01").expect("date")
    );
    assert!(!review.suspended(granted, granted.plus(day * 89)));
    assert!(review.suspended(granted, granted.plus(day * 91)));
    let keep = Policy::from_toml(
        "[allow_list]\ngrant_review_days = 30\noverdue = \"keep\"\n",
        "p.toml",
    )
    .expect("policy")
    .grant_review;
    assert_eq!(keep.every, day * 30);
    assert!(!keep.suspended(granted, granted.plus(day * 365)));
    for (bad, field) in [
        (
            "[allow_list]\ngrant_review_days = 0\n",
            "allow_list.grant_review_days",
        ),
        ("[allow_list]\noverdue = \"ignore\"\n", "allow_list.overdue"),
    ] {
        let Err(e) = Policy::from_toml(bad, "p.toml") else {
            panic!("{bad} was accepted");
        };
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn session_reviews_and_page_copies_follow_policy_and_refuse_nonsense() {
    let starter = Policy::starter();
    assert_eq!(starter.review.within, Duration::from_secs(7 * 86_400));
    assert_eq!(starter.review.sample_percent, 10);
    assert_eq!(starter.snapshots.keep, Duration::from_secs(90 * 86_400));
    assert!(starter.snapshots.enabled());
    let p = Policy::from_toml(
        "[review]\nwithin_days = 3\nsample_unflagged_percent = 100\n[snapshots]\nkeep_days = 0\n",
        "p.toml",
    )
    .expect("policy");
    assert_eq!(p.review.within, Duration::from_secs(3 * 86_400));
    assert_eq!(p.review.sample_percent, 100);
    assert!(!p.snapshots.enabled());
    for (bad, field) in [
        ("[review]\nwithin_days = 0\n", "review.within_days"),
        (
            "[review]\nsample_unflagged_percent = 101\n",
            "review.sample_unflagged_percent",
        ),
        (
            "[snapshots]\nmax_kb_per_session = 1\n",
            "snapshots.max_kb_per_session",
        ),
    ] {
        let Err(e) = Policy::from_toml(bad, "p.toml") else {
            panic!("{bad} was accepted");
        };
        assert_eq!(e.field, field, "{e}");
    }
}
