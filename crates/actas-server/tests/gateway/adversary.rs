//! An agent who controls their own client: each test takes one class of request that
//! used to get around the gateway's record or its rules — headers that decide whether a
//! read is recorded, `HEAD`, spellings of a forbidden path, headers the product reads as
//! routing or identity, `Range`, method overrides, WebSocket messages, answers refused on
//! the way back, an upstream that fails after a change, oversized and packed requests —
//! and tries several members of it.

use super::world::*;
use actas_core::event::EventData;
use reqwest::StatusCode;

/// The ledger's events of a kind, as their summaries.
async fn said(w: &World, kind: &str) -> Vec<String> {
    events(w)
        .await
        .into_iter()
        .filter(|e| e.body.kind() == kind)
        .map(|e| e.body.summary)
        .collect()
}

#[tokio::test]
async fn every_read_is_recorded_whatever_headers_the_client_sends() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    // (headers, recorded as a page view?)
    let clients: &[(&[(&str, &str)], bool)] = &[
        (&[], false),
        (&[("accept", "*/*")], false),
        (&[("accept", "application/json")], false),
        (
            &[("sec-fetch-dest", "empty"), ("sec-fetch-mode", "cors")],
            false,
        ),
        (
            &[("sec-fetch-dest", "script"), ("sec-fetch-mode", "no-cors")],
            false,
        ),
        (
            &[("sec-fetch-dest", "iframe"), ("sec-fetch-mode", "navigate")],
            true,
        ),
        (
            &[
                ("sec-fetch-dest", "document"),
                ("sec-fetch-mode", "navigate"),
            ],
            true,
        ),
        (&[("accept", "text/html")], true),
    ];
    for (i, (headers, page)) in clients.iter().enumerate() {
        let before = (
            said(&w, "session.page_viewed").await.len(),
            said(&w, "session.data_read").await.len(),
        );
        let mut r = agent.get("/");
        for (k, v) in *headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.expect("page");
        assert_eq!(r.status(), StatusCode::OK, "client {i}");
        assert!(
            r.text().await.expect("text").contains("•••• 4242"),
            "client {i}: the customer's page came back, masked"
        );
        let after = (
            said(&w, "session.page_viewed").await.len(),
            said(&w, "session.data_read").await.len(),
        );
        let want = if *page {
            (before.0 + 1, before.1)
        } else {
            (before.0, before.1 + 1)
        };
        assert_eq!(after, want, "client {i} with {headers:?}");
    }
    assert!(
        said(&w, "session.data_read")
            .await
            .contains(&"Sarah Lee, acting as Acme Co, read /".to_owned())
    );
    w.stop().await;
}

#[tokio::test]
async fn head_is_decided_and_recorded_as_get() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let before = w.seen.len();
    let r = agent
        .client
        .head(format!("{}/transactions/export.csv", w.gateway))
        .header("cookie", &agent.cookie)
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.seen.len(), before, "the export was not asked for");
    assert!(
        said(&w, "session.blocked")
            .await
            .iter()
            .any(|s| s.starts_with(
                "Sarah Lee, acting as Acme Co, was blocked from GET /transactions/export.csv"
            )),
        "recorded as the GET it stands for"
    );
    let r = agent
        .client
        .head(format!("{}/api/profile", w.gateway))
        .header("cookie", &agent.cookie)
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        said(&w, "session.data_read")
            .await
            .contains(&"Sarah Lee, acting as Acme Co, read /api/profile".to_owned())
    );
    w.stop().await;
}

#[tokio::test]
async fn no_spelling_of_a_forbidden_or_out_of_scope_path_reaches_the_product() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    // `/access` is forbidden for everyone; the export needs a scope this session lacks.
    let variants = [
        "/access/",
        "//access",
        "/access//",
        "/%61ccess",
        "/%61%63%63%65%73%73",
        "/./access",
        "/x/../access",
        "/%2e%2e/access",
        "/x/%2E%2e/access",
        "/\\access",
        "/x\\..\\access",
        "/access/.",
        "/transactions/export.csv/",
        "/transactions//export.csv",
        "/transactions/export%2ecsv",
        "/transactions/./export.csv",
        "/static/../transactions/export.csv",
        "/transactions/export.csv/x/..",
    ];
    let before = w.seen.len();
    for variant in variants {
        let (status, location) = agent.raw("GET", variant, "").await;
        assert_eq!(status, 308, "{variant} is redirected to its canonical form");
        let location = location.unwrap_or_else(|| panic!("{variant}: no Location"));
        assert!(
            location == "/access" || location == "/transactions/export.csv",
            "{variant} → {location}"
        );
        let (status, _) = agent.raw("GET", &location, "").await;
        assert_eq!(status, 403, "{variant} → {location} is refused");
    }
    // Spellings that are canonical already, and read the same by a case-blind framework.
    for canonical in ["/ACCESS", "/Access", "/Transactions/Export.CSV"] {
        let (status, _) = agent.raw("GET", canonical, "").await;
        assert_eq!(status, 403, "{canonical}");
    }
    // Spellings servers read in different ways have no canonical form: refused.
    for refused in [
        "/transactions/export.csv;.png",
        "/access;jsessionid=1",
        "/transactions/export.csv%00.png",
        "/transactions%2fexport.csv",
        "/%c0%ae%c0%ae/access",
        "/access%zz",
    ] {
        let (status, _) = agent.raw("GET", refused, "").await;
        assert_eq!(status, 400, "{refused}");
    }
    assert_eq!(w.seen.len(), before, "none of them reached the product");
    let blocked = said(&w, "session.blocked").await;
    assert!(
        blocked.iter().any(|s| s.contains(
            "was blocked from GET /transactions/export.csv;.png: the address has a semicolon"
        )),
        "{blocked:#?}"
    );
    assert!(
        blocked
            .iter()
            .any(|s| s.contains("was blocked from GET /Transactions/Export.CSV")),
        "{blocked:#?}"
    );
    assert!(
        !said(&w, "session.page_viewed")
            .await
            .iter()
            .chain(said(&w, "session.data_read").await.iter())
            .any(|s| s.to_lowercase().contains("access") || s.contains("export")),
        "no variant was recorded as an ordinary read"
    );
    // A redirect keeps the query, and a change is redirected with its method (308).
    let (status, location) = agent
        .raw("POST", "/settings//tax?x=1", "Content-Length: 0\r\n")
        .await;
    assert_eq!(
        (status, location.as_deref()),
        (308, Some("/settings/tax?x=1"))
    );
    w.stop().await;
}

#[tokio::test]
async fn headers_the_product_would_read_as_routing_identity_or_ranges_never_reach_it() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent
        .get("/")
        .header("actas_assertion", "forged")
        .header("x_forwarded_for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-original-url", "/access")
        .header("x-rewrite-url", "/access")
        .header("x-http-method-override", "DELETE")
        .header("authorization", "Bearer customer-token")
        .header("range", "bytes=60-90")
        .header("if-range", "\"v1\"")
        .header("x-custom-thing", "1")
        .header("accept-language", "en-GB")
        .header("x-csrf-token", "t")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.expect("text");
    assert!(page.contains("actas-banner"), "the whole page, not a range");
    let seen = w.seen.last_headers();
    for name in [
        "actas_assertion",
        "x_forwarded_for",
        "x-real-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "authorization",
        "range",
        "if-range",
        "x-custom-thing",
    ] {
        assert!(seen.get(name).is_none(), "{name} reached the product");
    }
    for name in ["accept-language", "x-csrf-token", "actas-assertion"] {
        assert!(seen.get(name).is_some(), "{name} should reach the product");
    }
    assert_eq!(
        seen.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
        Some("127.0.0.1")
    );
    w.stop().await;
}

#[tokio::test]
async fn a_method_override_is_decided_as_the_method_it_names() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let before = w.seen.len();
    // POST /settings/tax is in scope; DELETE /settings/tax is in no route.
    let r = agent
        .post("/settings/tax")
        .form(&[("_method", "DELETE")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = agent
        .post("/settings/tax?_method=delete")
        .form(&[("rate", "10%")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = agent
        .post("/settings/tax")
        .form(&[("_method", "PURGE")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(w.seen.len(), before);
    let blocked = said(&w, "session.blocked").await;
    assert_eq!(
        blocked
            .iter()
            .filter(|s| s.contains("was blocked from DELETE /settings/tax"))
            .count(),
        2,
        "{blocked:#?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn answers_refused_on_the_way_back_are_recorded() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    // (path, status, why the ledger gives)
    let cases = [
        ("/statement", 403, "it was a download"),
        ("/untyped", 502, "it did not say what kind of content it is"),
        ("/packed", 502, "it was packed as x-custom"),
        ("/api/big", 502, "it was too large to be checked"),
        (
            "/static/private.js",
            502,
            "it was asked for as a static file, but the product did not mark it as the same for every user",
        ),
        (
            "/static/cookie.css",
            502,
            "it was asked for as a static file, but the product set a cookie with it",
        ),
        (
            "/static/page.css",
            502,
            "it was asked for as a static file, but it is text/html, not an image, font, style sheet or script",
        ),
    ];
    for (path, status, why) in cases {
        let r = agent.get(path).send().await.expect("get");
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body = r.text().await.expect("text");
        assert!(!body.contains("4111111111114242"), "{path}: {body}");
        let refused = said(&w, "session.answer_refused").await;
        assert!(
            refused.iter().any(|s| s.starts_with(&format!(
                "Sarah Lee, acting as Acme Co, was not shown the answer to GET {path}: {why}"
            ))),
            "{path}: {refused:#?}"
        );
    }
    // Assets the product marks public pass, unrecorded; a trusted folder needs no mark.
    let events_before = events(&w).await.len();
    for path in ["/static/app.css", "/build/app.js"] {
        let r = agent.get(path).send().await.expect("asset");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(
        events(&w).await.len(),
        events_before,
        "assets are not recorded"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_change_the_product_never_answers_is_recorded_as_unknown() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let r = agent
        .post("/settings/notifications")
        .form(&[("email_notifications", "off")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(
        r.text()
            .await
            .expect("text")
            .contains("may or may not have been made")
    );
    let log = events(&w).await;
    let sent = log.iter().any(|e| {
        matches!(&e.body.data, EventData::ActionTaken { status: None, path: Some(p), .. } if p == "/settings/notifications")
    });
    assert!(sent, "the change was recorded before it was sent");
    assert!(
        said(&w, "session.answer_refused").await.contains(
            &"Sarah Lee, acting as Acme Co, was not shown the answer to POST /settings/notifications: the product did not answer, so the change may or may not have been made".to_owned()
        )
    );
    w.stop().await;
}

#[tokio::test]
async fn requests_the_gateway_cant_read_are_refused_and_recorded() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let before = w.seen.len();
    let large = "x".repeat(MAX_BODY_MIB * 1024 * 1024 + 1);
    let r = agent
        .post("/settings/tax")
        .form(&[("note", large.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = agent
        .post("/settings/tax")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0, 0])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = agent.raw("PROPFIND", "/settings/tax", "").await;
    assert_eq!(status, 405);
    assert_eq!(w.seen.len(), before, "none reached the product");
    let blocked = said(&w, "session.blocked").await;
    for want in [
        "was blocked from POST /settings/tax: the request was larger than the gateway accepts",
        "was blocked from POST /settings/tax: the request was packed as gzip",
        "was blocked from PROPFIND /settings/tax: the gateway does not pass PROPFIND requests",
    ] {
        assert!(
            blocked.iter().any(|s| s.contains(want)),
            "{want}: {blocked:#?}"
        );
    }
    w.stop().await;
}

#[tokio::test]
async fn gateway_requests_are_counted_by_outcome() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    agent.get("/").send().await.expect("page");
    agent
        .get("/transactions/export.csv")
        .send()
        .await
        .expect("blocked");
    agent.get("/static/app.css").send().await.expect("asset");
    agent.raw("GET", "/access/", "").await;
    let metrics = reqwest::get(format!("http://{}/metrics", w.app.console_addr()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for outcome in ["forwarded", "blocked", "asset", "redirected"] {
        assert!(
            metrics.contains(&format!(
                "actas_gateway_requests_total{{outcome=\"{outcome}\"}} 1"
            )),
            "{outcome}: {metrics}"
        );
    }
    assert!(
        metrics.contains("actas_gateway_request_duration_seconds_count 4"),
        "{metrics}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_method_override_can_never_make_a_post_safe_or_ambiguous() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "read-only").await;
    let before = w.seen.len();
    // (body, content type, status): each would reach a POST handler as something else.
    let cases: &[(&str, &str, u16)] = &[
        // A read-only session: `_method=GET` does not make the POST a read.
        (
            "_method=GET&rate=10",
            "application/x-www-form-urlencoded",
            403,
        ),
        ("_method=get", "application/x-www-form-urlencoded", 403),
        // Given twice, or in two places, frameworks disagree on which wins.
        (
            "_method=GET&_method=DELETE",
            "application/x-www-form-urlencoded",
            405,
        ),
        (r#"{"_method":"HEAD"}"#, "application/json", 403),
        ("_method=GET", "APPLICATION/X-WWW-FORM-URLENCODED", 403),
    ];
    for (body, kind, status) in cases {
        let r = agent
            .post("/settings/tax")
            .header("content-type", *kind)
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), *status, "{body} as {kind}");
    }
    let r = agent
        .post("/settings/tax?_method=GET")
        .form(&[("_method", "DELETE")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 405, "in the query and the body");
    // `_method=GET` on an asset path is still a POST, never an unrecorded asset.
    let r = agent
        .post("/static/app.css")
        .form(&[("_method", "GET")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A multipart form's `_method` counts too.
    let form = reqwest::multipart::Form::new().text("_method", "delete");
    let r = agent
        .post("/settings/tax")
        .multipart(form)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.seen.len(), before, "none reached the product");
    w.stop().await;
}

#[tokio::test]
async fn a_format_suffix_or_another_spelling_of_a_character_reaches_no_route_unseen() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let before = w.seen.len();
    for path in [
        "/transactions/export.json",
        "/transactions/export",
        "/transactions/export.csv.zip",
        "/access.json",
        "/access.html",
    ] {
        let (status, _) = agent.raw("GET", path, "").await;
        assert_eq!(status, 403, "{path}");
    }
    // One spelling per character: what may stand raw stands raw.
    let (status, location) = agent.raw("GET", "/users/%40me", "").await;
    assert_eq!((status, location.as_deref()), (308, Some("/users/@me")));
    // A letter some servers fold to ASCII (ſ → s): refused where routes ignore case.
    let (status, _) = agent.raw("GET", "/acce%C5%BFs", "").await;
    assert_eq!(status, 400);
    assert_eq!(w.seen.len(), before);
    let (status, _) = agent.raw("GET", "/users/@me", "").await;
    assert_eq!(status, 200);
    w.stop().await;
}

#[tokio::test]
async fn an_asset_is_checked_even_without_a_body_and_never_redirects_off_the_gateway() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let head = agent
        .client
        .head(format!("{}/static/private.js", w.gateway))
        .header("cookie", &agent.cookie)
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::BAD_GATEWAY);
    let r = agent.get("/static/moved.png").send().await.expect("moved");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.headers().get("location").is_none());
    let refused = said(&w, "session.answer_refused").await;
    assert!(
        refused
            .iter()
            .any(|s| s.contains("GET /static/moved.png") && s.contains("redirect")),
        "{refused:#?}"
    );
    assert!(
        refused.iter().any(|s| s.contains("GET /static/private.js")),
        "{refused:#?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn the_product_hears_the_gateways_host_whatever_host_the_client_sends() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let (status, _) = agent.raw("GET", "/", "").await;
    assert_eq!(status, 200);
    // A raw request whose Host names another tenant.
    let host = w.gateway.trim_start_matches("http://").to_owned();
    let spoofed = agent
        .client
        .get(format!("{}/", w.gateway))
        .header("cookie", &agent.cookie)
        .header("host", "othertenant.app.example")
        .send()
        .await
        .expect("page");
    assert_eq!(spoofed.status(), StatusCode::OK);
    let seen = w.seen.last_headers();
    assert_eq!(
        seen.get("x-forwarded-host").and_then(|v| v.to_str().ok()),
        Some(host.as_str())
    );
    w.stop().await;
}

#[tokio::test]
async fn a_streaming_page_stops_with_the_session_and_one_that_breaks_off_is_recorded() {
    use futures_util::StreamExt;
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent.get("/broken").send().await.expect("broken");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.is_err(), "the browser sees it broke off");
    let mut recorded = false;
    for _ in 0..50 {
        if said(&w, "session.answer_refused")
            .await
            .iter()
            .any(|s| s.contains("GET /broken") && s.contains("broke off"))
        {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recorded, "the break is in the ledger");

    let r = agent.get("/slow").send().await.expect("slow");
    let mut body = r.bytes_stream();
    body.next().await.expect("a first row").expect("bytes");
    let (sarah, active) = sarahs_session(&w).await;
    w.app
        .service()
        .end_session_by(&sarah, active.info().id)
        .await
        .expect("end");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match body.next().await {
                Some(Ok(_)) => {}
                Some(Err(_)) => return true,
                None => return false,
            }
        }
    })
    .await
    .expect("the page stops within 10 s");
    assert!(ended, "it is cut off, not ended as if whole");
    w.stop().await;
}

#[tokio::test]
async fn a_placeholder_sent_back_is_refused_with_the_fields_named_or_left_out_where_allowed() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let before = w.seen.len();
    let r = agent
        .post("/settings/tax")
        .form(&[
            ("name", "Acme Co"),
            ("email", "s•••@acme.com"),
            ("phone", "•••• 0123"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.expect("text");
    assert!(
        page.contains("masked placeholder of email and phone") && page.contains("actas-banner"),
        "{page}"
    );
    for (body, kind) in [
        (
            r#"{"contact":{"email":"s•••@acme.com"}}"#,
            "application/json",
        ),
        ("note: ••• hidden", "text/plain"),
    ] {
        let r = agent
            .post("/settings/tax")
            .header("content-type", kind)
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{kind}");
    }
    let form = reqwest::multipart::Form::new()
        .text("name", "Acme")
        .text("card", "•••• 4242");
    let r = agent
        .post("/settings/tax")
        .multipart(form)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = agent.get("/?q=s•••@acme.com").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "a query too");
    assert_eq!(w.seen.len(), before, "none reached the product");
    assert!(
        said(&w, "session.blocked").await.iter().any(|s| s.contains(
            "it would have saved the masked placeholder of email and phone over the customer's real values"
        ))
    );
    // A route that takes partial forms: the masked fields are left out, the rest saved.
    let r = agent
        .post("/echo")
        .form(&[("name", "Acme Co"), ("email", "s•••@acme.com")])
        .send()
        .await
        .expect("partial");
    assert_eq!(r.status(), StatusCode::OK);
    let echoed: serde_json::Value = r.json().await.expect("json");
    assert_eq!(echoed["received"], "name=Acme+Co");
    w.stop().await;
}

#[tokio::test]
async fn what_the_gateway_cant_mask_is_refused_unless_the_policy_passes_it_for_the_route() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    // (path, status, what the ledger says it was)
    let refused = [
        ("/feed.xml", 502, "it was application/xml"),
        ("/chart", 502, "it was image/svg+xml"),
        ("/config", 502, "it was application/javascript"),
        ("/sheet", 403, "it was a download"),
        (
            "/twotypes",
            502,
            "it named more than one kind of content (text/plain, text/html)",
        ),
        ("/utf16", 502, "it was a page in the charset utf-16"),
    ];
    for (path, status, why) in refused {
        let r = agent.get(path).send().await.expect("get");
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert!(!r.text().await.expect("text").contains("4111"), "{path}");
        assert!(
            said(&w, "session.answer_refused")
                .await
                .iter()
                .any(|s| s.contains(&format!("GET {path}: {why}"))),
            "{path}"
        );
    }
    // The policy passes PDFs for /reports/{id}: as they are, with one content type.
    let r = agent.get("/reports/7").send().await.expect("pdf");
    assert_eq!(r.status(), StatusCode::OK);
    let types: Vec<_> = r.headers().get_all("content-type").iter().collect();
    assert_eq!(types, ["application/pdf"]);
    // NDJSON line by line, text/json whole; a page in ISO-8859-1 masked in its charset.
    let lines = agent.get("/lines").send().await.expect("lines");
    assert_eq!(lines.headers()["content-type"], "application/x-ndjson");
    assert_eq!(
        lines.text().await.expect("text"),
        "{\"card\":{\"number\":\"•••• 4242\"}}\n{\"name\":\"Acme Co\"}\n"
    );
    let tj: serde_json::Value = agent
        .get("/textjson")
        .send()
        .await
        .expect("json")
        .json()
        .await
        .expect("json");
    assert_eq!(tj["card"]["number"], "•••• 4242");
    let r = agent.get("/latin1").send().await.expect("latin1");
    assert_eq!(
        r.headers()["content-type"],
        "text/html; charset=windows-1252"
    );
    let bytes = r.bytes().await.expect("bytes");
    let (page, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
    assert!(
        page.contains("Café") && page.contains("4242") && !page.contains("1111"),
        "{page}"
    );
    assert!(page.contains("actas-banner"), "{page}");
    w.stop().await;
}

#[tokio::test]
async fn product_headers_carry_no_data_and_never_touch_actas_cookies() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent.get("/cookies").send().await.expect("cookies");
    assert_eq!(r.status(), StatusCode::OK);
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(
        set[0].starts_with("product_session=fresh")
            && !set[0].to_ascii_lowercase().contains("domain"),
        "{set:?}"
    );
    assert!(
        said(&w, "session.answer_refused")
            .await
            .iter()
            .any(|s| s.contains("the product tried to set actas's own cookie actas_gw"))
    );
    // Location: query values masked by the field rules.
    let r = agent.get("/away").send().await.expect("away");
    let location = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(
        location.starts_with("/welcome?")
            && !location.contains("sarah")
            && !location.contains("4111"),
        "{location}"
    );
    // A rewritten page carries no validator of the product's and is never cached.
    let r = agent.get("/tagged").send().await.expect("tagged");
    assert!(r.headers().get("etag").is_none() && r.headers().get("last-modified").is_none());
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Nor is a notice.
    let r = agent
        .get("/transactions/export.csv")
        .send()
        .await
        .expect("blocked");
    assert_eq!(r.headers()["cache-control"], "no-store");
    w.stop().await;
}

#[tokio::test]
async fn a_masked_field_is_revealed_only_to_an_approved_scope_and_each_reveal_is_recorded() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    for path in ["/identity", "/api/identity"] {
        let body = agent
            .get(path)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        assert!(!body.contains("P123456789"), "{path}: {body}");
    }
    assert!(said(&w, "session.field_revealed").await.is_empty());
    let (sarah, active) = sarahs_session(&w).await;
    w.app
        .service()
        .end_session_by(&sarah, active.info().id)
        .await
        .expect("end");
    // A lead approved reveal_id: the passport number is shown, and each answer that
    // carried it is on the record first, naming the field, the page and the approval.
    let agent = enter(&w, &["reveal_id"], "read-only").await;
    let page = agent
        .get("/identity")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains("P123456789"), "{page}");
    let json: serde_json::Value = agent
        .get("/api/identity")
        .send()
        .await
        .expect("json")
        .json()
        .await
        .expect("json");
    assert_eq!(json["passport"], "P123456789");
    let revealed = said(&w, "session.field_revealed").await;
    assert_eq!(revealed.len(), 2, "{revealed:#?}");
    assert!(
        revealed.contains(&"Sarah Lee, acting as Acme Co, saw the passport unmasked on /identity (approved by Lee Chen)".to_owned()),
        "{revealed:#?}"
    );
    assert!(
        revealed.iter().any(|s| s.contains("on /api/identity")),
        "{revealed:#?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_product_that_does_not_answer_in_time_is_cut_off_and_recorded() {
    let w = world_with(|config| {
        let edited = config.replacen(
            "answer_timeout_seconds = 120",
            "answer_timeout_seconds = 1",
            1,
        );
        assert_ne!(edited, config, "actas init writes the answer timeout");
        edited
    })
    .await;
    let agent = enter(&w, &[], "read-only").await;
    // The product answers after 10 s; the gateway waits 1 s.
    let r = agent.get("/stall").send().await.expect("stall");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(
        r.text()
            .await
            .expect("page")
            .contains("The product did not answer")
    );
    let refused = said(&w, "session.answer_refused").await;
    assert!(
        refused
            .iter()
            .any(|s| s.contains("GET /stall") && s.contains("did not answer")),
        "{refused:#?}"
    );
    w.stop().await;
}
