//! The gateway's everyday work over real HTTP: pages carry the banner and are masked,
//! changes are recorded with their fields, what can't be checked is refused, live
//! connections and event streams end with the session.

use super::world::*;
use actas_core::Timestamp;
use actas_core::event::EventData;
use actas_core::staff::Email;
use futures_util::StreamExt;
use reqwest::StatusCode;

#[tokio::test]
async fn pages_carry_the_banner_and_secrets_never_reach_the_browser() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent
        .client
        .get(format!("{}/", w.gateway))
        .header(
            "cookie",
            format!(
                "{}; product_session=abc; actas_console=staff-sign-in",
                agent.cookie
            ),
        )
        .header("accept", "text/html")
        .header("actas-assertion", "forged")
        .header("actas-user", "admin")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.expect("text");
    assert!(
        page.contains("<body><div id=\"actas-banner\""),
        "banner first in body: {page}"
    );
    assert!(
        page.contains("Acting as Acme Co")
            && page.contains("Sarah Lee")
            && page.contains("End session")
    );
    assert!(
        page.contains("•••• 4242")
            && !page.contains("4111 1111 1111 4242")
            && !page.contains("RECOVERY-CODE"),
        "{page}"
    );

    // Invariant 10: what the product received.
    let seen = w.seen.last_headers();
    let assertion = seen
        .get("actas-assertion")
        .expect("assertion")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(assertion, "forged");
    assert!(
        seen.get("actas-user").is_none(),
        "client Actas-* headers are stripped"
    );
    // Forwarding headers are the gateway's own, never the browser's.
    let header = |name: &str| {
        seen.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(header("forwarded"), None);
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        header("x-forwarded-host"),
        w.gateway.strip_prefix("http://").map(str::to_owned)
    );
    assert_ne!(
        header("host"),
        header("x-forwarded-host"),
        "by default the product sees its own host"
    );
    let cookies = seen
        .get("cookie")
        .map(|c| c.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    assert!(
        cookies.contains("product_session=abc")
            && !cookies.contains("actas_gw")
            && !cookies.contains("actas_console"),
        "{cookies}"
    );
    let jwks: serde_json::Value = reqwest::get(format!(
        "http://{}/.well-known/jwks.json",
        w.app.console_addr()
    ))
    .await
    .expect("jwks")
    .json()
    .await
    .expect("json");
    let key =
        jsonwebtoken::DecodingKey::from_ed_components(jwks["keys"][0]["x"].as_str().expect("x"))
            .expect("key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["product"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&assertion, &key, &v)
        .expect("valid")
        .claims;
    assert_eq!(
        (claims["sub"].as_str(), claims["act"]["sub"].as_str()),
        (Some("acme"), Some("sarah@example.com"))
    );

    // JSON: classified fields masked, `never` removed, unclassified hidden, Actas-Audit stripped.
    let r = agent.get("/api/profile").send().await.expect("json");
    assert!(r.headers().get("actas-audit").is_none());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({ "name": "Acme Co", "email": "s•••@acme.com", "card": { "number": "•••• 4242" }, "internal": "••• hidden" })
    );

    // Page views are recorded, on behalf of the customer.
    assert!(
        kinds(&w)
            .await
            .iter()
            .any(|k| k == "session.page_viewed Sarah Lee, acting as Acme Co, viewed /")
    );
    w.stop().await;
}

#[tokio::test]
async fn out_of_scope_writes_exports_and_read_only_changes_are_refused_and_recorded() {
    let w = world().await;
    let agent = enter(&w, &[], "live").await;
    let before = w.seen.len();
    let r = agent
        .post("/settings/tax")
        .form(&[("rate", "10%")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text().await.expect("text").contains("actas-banner"),
        "the refusal page carries the banner"
    );
    let r = agent
        .get("/transactions/export.csv")
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.seen.len(), before, "nothing blocked reached the product");
    let k = kinds(&w).await;
    assert!(
        k.iter().any(|k| k.starts_with(
            "session.blocked Sarah Lee, acting as Acme Co, was blocked from POST /settings/tax"
        )),
        "{k:#?}"
    );
    assert!(k.iter().any(|k| k.starts_with("session.blocked Sarah Lee, acting as Acme Co, was blocked from GET /transactions/export.csv")), "{k:#?}");
    w.stop().await;
}

#[tokio::test]
async fn an_in_scope_change_goes_through_and_is_recorded_with_its_fields() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let r = agent
        .post("/settings/tax")
        .form(&[("name", "Acme Co")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let k = kinds(&w).await;
    // Before forwarding: what was asked for. After: what the product says it changed.
    assert!(k.iter().any(|k| k == "session.action Sarah Lee, acting as Acme Co, sent a change (changed the tax settings) setting the name to Acme Co"), "{k:#?}");
    // UTF-8 in the product's JSON is read as such.
    assert!(k.iter().any(|k| k == "session.action Sarah Lee, acting as Acme Co, changed the name from Acme to Acme Café"), "{k:#?}");
    assert!(
        r.headers().get("actas-audit").is_none(),
        "the product's audit header never reaches the browser"
    );
    // The product's own description of the change is kept in the outcome's record, made
    // one line.
    let outcome = events(&w)
        .await
        .into_iter()
        .find_map(|e| match e.body.data {
            EventData::ActionTaken {
                description,
                status: Some(_),
                ..
            } => Some(description),
            _ => None,
        });
    assert_eq!(outcome.as_deref(), Some("renamed the company"));
    w.stop().await;
}

#[tokio::test]
async fn a_session_that_changed_something_ends_with_a_note_the_customer_reads() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let r = agent
        .post("/settings/tax")
        .form(&[("name", "Acme Co")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let s = w.app.service();
    let (sarah, active) = sarahs_session(&w).await;
    let id = active.info().id;
    // It changed the account: ending it needs a note, and nothing is ended without one.
    let err = s
        .end_session_with_note(&sarah, id, "  ")
        .await
        .expect_err("a note is needed");
    assert!(
        matches!(&err, actas_server::service::ServiceError::Invalid { field, .. } if field == "note"),
        "{err:?}"
    );
    assert!(
        s.store()
            .active_session_of(sarah.id)
            .await
            .expect("read")
            .is_some()
    );
    s.end_session_with_note(
        &sarah,
        id,
        "Corrected the company name, as asked on the ticket",
    )
    .await
    .expect("ended with the note");
    // The note and the end are one commit; the customer reads the note with the session.
    let history = s.access_history("acme", 0, 10).await.expect("history");
    let lines: Vec<&str> = history[0]
        .activity
        .iter()
        .map(|l| l.summary.as_str())
        .collect();
    assert!(
        lines.iter().any(|l| l
            == &"Sarah Lee noted what they did on Acme Co: “Corrected the company name, as asked on the ticket”"),
        "{lines:#?}"
    );
    let ended = lines
        .iter()
        .position(|l| l.contains("session on Acme Co ended"))
        .expect("end");
    let noted = lines
        .iter()
        .position(|l| l.contains("noted what they did"))
        .expect("note");
    assert_eq!(noted, ended + 1, "{lines:#?}");
    // More can be added afterwards, by the same staff member only.
    s.add_session_note(&sarah, id, "Also told the customer where the setting lives")
        .await
        .expect("a later note");
    let lee = super::common::staff(s, "lee@example.com").await;
    assert!(
        s.add_session_note(&lee, id, "Not my session")
            .await
            .is_err()
    );
    w.stop().await;
}

#[tokio::test]
async fn read_only_mode_blocks_every_change_even_in_scope() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "read-only").await;
    let r = agent
        .post("/settings/tax")
        .form(&[("rate", "10%")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("text").contains("read-only"));
    w.stop().await;
}

#[tokio::test]
async fn without_a_writable_ledger_nothing_is_forwarded() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let before = w.seen.len();
    w.app.store().stop_writer().await;
    let r = agent
        .get("/")
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(w.seen.len(), before, "invariant 3: nothing forwarded");
    w.stop().await;
}

#[tokio::test]
async fn after_the_end_button_the_next_request_is_refused() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let page = agent
        .get("/")
        .header("accept", "text/html")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf")
        .to_owned();
    let r = agent
        .post("/__actas/end")
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .expect("end");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "the End form is CSRF-protected"
    );
    let r = agent
        .post("/__actas/end")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("end");
    assert_eq!(r.status(), StatusCode::OK);
    let status: serde_json::Value = agent
        .get("/__actas/status")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["active"], false);
    let before = w.seen.len();
    let r = agent.get("/").send().await.expect("page");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.seen.len(), before);
    assert!(
        kinds(&w)
            .await
            .iter()
            .any(|k| k == "session.ended Sarah Lee's session on Acme Co ended: Sarah Lee ended it")
    );
    w.stop().await;
}

#[tokio::test]
async fn redirects_and_absolute_links_keep_the_agent_on_the_gateway() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    for path in ["/go", "/go?relative"] {
        let r = agent.get(path).send().await.expect("go");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/landing", "{path}");
    }
    let page = agent
        .get("/links")
        .header("accept", "text/html")
        .send()
        .await
        .expect("links")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains(r#"<a href="/loans">"#) && page.contains(r#"<a href="/cards">"#),
        "{page}"
    );
    w.stop().await;
}

#[tokio::test]
async fn xhtml_is_masked_and_what_the_gateway_cant_read_is_refused() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let get = |path: &str| agent.get(path).send();
    // XHTML is rewritten like HTML, banner and all, and sent on as HTML.
    let r = get("/xhtml").await.expect("xhtml");
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    let page = r.text().await.expect("text");
    assert!(
        page.contains("•••• 4242") && !page.contains("4111 1111") && page.contains("actas-banner"),
        "{page}"
    );
    // No Content-Type: the browser would guess, so it is not shown at all.
    let r = get("/untyped").await.expect("untyped");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let page = r.text().await.expect("text");
    assert!(
        !page.contains("4111") && page.contains("did not say what kind of content"),
        "{page}"
    );
    // ... unless it turns out to hold nothing.
    let r = get("/nothing").await.expect("nothing");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("text"), "");
    // Packed in a way the gateway can't unpack: it can't be masked, so it is not shown.
    let r = get("/packed").await.expect("packed");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.headers().get("content-encoding").is_none());
    let page = r.text().await.expect("text");
    assert!(page.contains("packed as x-custom,"), "{page}");
    // Plain text can't be masked, so it is refused (the policy may pass a type for a
    // route); what the gateway sends is never sniffed into something else.
    let r = get("/notes.txt").await.expect("notes");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    assert!(
        kinds(&w).await.iter().any(|k| k.contains(
            "was not shown the answer to GET /notes.txt: it was text/plain, which the gateway can't check for secrets"
        ))
    );
    w.stop().await;
}

#[tokio::test]
async fn gzip_and_brotli_bodies_are_unpacked_and_masked() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent.get("/gz").send().await.expect("gz");
    assert!(r.headers().get("content-encoding").is_none());
    let page = r.text().await.expect("text");
    assert!(
        page.contains("•••• 4242") && !page.contains("4111 1111"),
        "{page}"
    );
    let r = agent.get("/br").send().await.expect("br");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({ "card": { "number": "•••• 4242" }, "secret": "••• hidden" })
    );
    w.stop().await;
}

#[tokio::test]
async fn a_page_larger_than_the_body_limit_streams_through_masked() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent
        .get("/big")
        .header("accept", "text/html")
        .send()
        .await
        .expect("big");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get("content-length").is_none(),
        "a rewritten page is streamed, not measured first"
    );
    let mut chunks = r.bytes_stream();
    let (mut bytes, mut pieces, mut masked) = (0usize, 0usize, 0usize);
    let masked_form = "•••• 4242".as_bytes();
    let count =
        |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).filter(|w| *w == needle).count();
    // What is left of the last chunk, so nothing hides across a boundary: shorter than the
    // masked form, so no whole match is counted twice.
    let mut carry: Vec<u8> = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("chunk");
        bytes += chunk.len();
        pieces += 1;
        carry.extend_from_slice(&chunk);
        assert_eq!(
            count(&carry, b"1111 1111"),
            0,
            "an unmasked card number got through"
        );
        masked += count(&carry, masked_form);
        carry = carry.split_off(carry.len().saturating_sub(masked_form.len() - 1));
    }
    assert!(bytes > 16 * 1024 * 1024, "{bytes} bytes");
    assert!(pieces > 1, "the page arrived in one piece");
    assert_eq!(masked, BIG_ROWS, "every row's card number is masked");
    w.stop().await;
}

#[tokio::test]
async fn json_fields_no_rule_classifies_are_hidden_and_counted() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    for _ in 0..3 {
        let body: serde_json::Value = agent
            .get("/api/profile")
            .send()
            .await
            .expect("profile")
            .json()
            .await
            .expect("json");
        assert_eq!(body["internal"], "••• hidden");
    }
    // A header the policy doesn't name is dropped, standard ones pass.
    let r = agent.get("/api/profile").send().await.expect("profile");
    assert!(r.headers().get("x-customer-email").is_none());
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let s = w.app.service();
    s.flush_unclassified().await.expect("flush");
    let fields = s.unclassified_fields().await.expect("fields");
    let internal = fields
        .iter()
        .find(|f| f.path == "$.internal")
        .expect("$.internal is listed");
    assert_eq!(internal.seen, 4);
    let header = fields
        .iter()
        .find(|f| f.path == "header x-customer-email")
        .expect("the dropped header is listed");
    assert_eq!(header.seen, 4);
    assert!(
        fields.iter().all(|f| f.path != "$.name"),
        "classified fields are not listed: {fields:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn event_streams_are_masked_event_by_event_and_end_with_the_session() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let r = agent
        .get("/feed")
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("feed");
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.ends_with(":\n\n") {
        let chunk = body.next().await.expect("more").expect("chunk");
        seen.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    assert_eq!(
        seen,
        "event: update\ndata: {\"card\":{\"number\":\"•••• 4242\"},\"internal\":\"••• hidden\",\"name\":\"Acme Co\"}\n\n:\n\n",
        "the secret is masked, the event that isn't JSON dropped and the comment emptied"
    );

    // Ending the session ends the stream, though the product keeps it open.
    let (sarah, active) = sarahs_session(&w).await;
    w.app
        .service()
        .end_session_by(&sarah, active.info().id)
        .await
        .expect("end");
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut rest = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            rest.extend_from_slice(&chunk);
        }
        rest
    })
    .await
    .expect("the stream ends within 10 s");
    assert!(rest.is_empty(), "{rest:?}");
    w.stop().await;
}

/// Opens the gateway's WebSocket at `/live` with the session cookie.
async fn open_live(
    w: &World,
    cookie: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/live", w.gateway.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    let pair = cookie.split(';').next().expect("pair").to_owned();
    request
        .headers_mut()
        .insert("cookie", pair.parse().expect("header"));
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<String> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
        {
            Some(Ok(Message::Text(t))) => return Some(t.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn websockets_pass_only_in_a_session_are_recorded_and_masked() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = world().await;
    assert!(
        open_live(&w, "actas_gw=forged").await.is_err(),
        "no session, no live connection"
    );

    let agent = enter(&w, &[], "read-only").await;
    let mut ws = open_live(&w, &agent.cookie).await.expect("upgrade");
    let first: serde_json::Value =
        serde_json::from_str(&next_text(&mut ws).await.expect("first")).expect("json");
    assert_eq!(
        first,
        serde_json::json!({ "name": "Acme Co", "card": { "number": "•••• 4242" }, "internal": "••• hidden" })
    );
    // The text that isn't JSON and the binary message can't be masked: they never arrive.
    assert_eq!(
        next_text(&mut ws).await.as_deref(),
        Some(r#"{"name":"ready"}"#)
    );
    // Read-only: what the browser sends does not reach the product (no echo comes back).
    ws.send(Message::text("rename the account"))
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), ws.next())
            .await
            .is_err(),
        "nothing was echoed"
    );
    assert!(
        kinds(&w).await.iter().any(|k| k == "session.blocked Sarah Lee, acting as Acme Co, was blocked from sending a message on the live connection to /live: this session is read-only, so nothing can be changed"),
        "the refused message is recorded"
    );

    // Invariant 10 holds for the upgrade too, and the opening is in the ledger.
    let seen = w.seen.last_headers();
    assert!(seen.get("actas-assertion").is_some());
    let cookies = seen
        .get("cookie")
        .map(|v| v.to_str().expect("ascii").to_owned());
    assert!(!cookies.unwrap_or_default().contains("actas_gw"));
    let log = w
        .app
        .service()
        .store()
        .events(&actas_store::EventFilter::default(), 0, 1000)
        .await
        .expect("events");
    assert!(
        log.iter()
            .any(|e| e.body.summary
                == "Sarah Lee, acting as Acme Co, opened a live connection to /live"),
        "the opening is recorded"
    );

    // Ending the session closes the connection.
    let s = w.app.service();
    let (sarah, active) = sarahs_session(&w).await;
    s.end_session_by(&sarah, active.info().id)
        .await
        .expect("end");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("closed within 10 s");
    let frame = closed.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("ended"), "{}", frame.reason);
    assert!(
        open_live(&w, &agent.cookie).await.is_err(),
        "and can't be reopened"
    );
    w.stop().await;
}

#[tokio::test]
async fn browser_messages_reach_the_product_only_in_scope_and_each_is_recorded_first() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = world().await;
    // A live session without the policy's capability for messages: refused, recorded.
    let agent = enter(&w, &[], "live").await;
    let mut ws = open_live(&w, &agent.cookie).await.expect("upgrade");
    next_text(&mut ws).await.expect("first");
    next_text(&mut ws).await.expect("ready");
    ws.send(Message::text(r#"{"text":"close my account"}"#))
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), ws.next())
            .await
            .is_err(),
        "nothing was echoed"
    );
    let k = kinds(&w).await;
    assert!(
        k.iter().any(|k| k == "session.blocked Sarah Lee, acting as Acme Co, was blocked from sending a message on the live connection to /live: this session's scope does not include chat"),
        "{k:#?}"
    );
    let (sarah, active) = sarahs_session(&w).await;
    w.app
        .service()
        .end_session_by(&sarah, active.info().id)
        .await
        .expect("end");

    // With it, each message is recorded (masked) before it is sent on.
    let agent = enter(&w, &["chat"], "live").await;
    let mut ws = open_live(&w, &agent.cookie).await.expect("upgrade");
    next_text(&mut ws).await.expect("first");
    next_text(&mut ws).await.expect("ready");
    for text in [
        r#"{"name":"hello","email":"sarah@acme.com"}"#,
        "plain words",
    ] {
        ws.send(Message::text(text)).await.expect("send");
        next_text(&mut ws).await.expect("echo");
    }
    let k = kinds(&w).await;
    assert!(
        k.iter().any(|k| k == "session.live_message Sarah Lee, acting as Acme Co, sent a message on the live connection to /live setting the email to s•••@acme.com and the name to hello"),
        "{k:#?}"
    );
    assert!(
        k.iter().any(|k| k == "session.live_message Sarah Lee, acting as Acme Co, sent a message on the live connection to /live"),
        "{k:#?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn revoking_consent_mid_session_stops_the_gateway_at_the_next_request() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let page = || async {
        agent
            .get("/")
            .header("accept", "text/html")
            .send()
            .await
            .expect("page")
    };
    assert_eq!(page().await.status(), StatusCode::OK);
    let s = w.app.service();
    let key = s
        .create_app_key(
            &Email::parse("dana@example.com").expect("e"),
            "portal",
            None,
        )
        .await
        .expect("key");
    let r = reqwest::Client::new()
        .put(format!(
            "http://{}/api/v1/accounts/acme/consent",
            w.app.console_addr()
        ))
        .bearer_auth(key.key.expose())
        .json(&serde_json::json!({ "consent": "revoked" }))
        .send()
        .await
        .expect("consent");
    assert_eq!(r.status(), StatusCode::OK);
    let before = w.seen.len();
    let r = page().await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("text").contains("ended"));
    assert_eq!(w.seen.len(), before, "nothing reached the product");
    let ended = kinds(&w).await;
    assert!(
        ended
            .iter()
            .any(|k| k
                == "session.ended Sarah Lee's session on Acme Co ended: Acme Co revoked consent"),
        "{ended:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_session_ended_behind_the_gateways_back_gets_nothing_more() {
    // The gateway remembers a session it saw live; ending it without telling the gateway
    // (as another actas process or the CLI would) must still stop the very next request,
    // whether it is recorded (a page) or not (an asset).
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let get = |path: &'static str, html: bool| {
        let r = agent.get(path);
        if html {
            r.header("accept", "text/html")
        } else {
            r
        }
    };
    assert_eq!(
        get("/", true).send().await.expect("page").status(),
        StatusCode::OK
    );
    let s = w.app.service();
    let (sarah, active) = sarahs_session(&w).await;
    s.store()
        .commit(actas_store::Unit::change(
            actas_store::Change::EndSession {
                id: active.info().id,
                at: Timestamp::now(),
                reason: actas_core::session::EndReason::Manual,
            },
            actas_core::event::NewEvent::new(
                actas_core::event::Actor::System,
                actas_core::event::EventData::StaffDisabled {
                    staff: sarah.to_ref(),
                },
            ),
        ))
        .await
        .expect("ended elsewhere");
    let before = w.seen.len();
    for (path, html) in [("/", true), ("/api/profile", false)] {
        let r = get(path, html).send().await.expect("request");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(r.text().await.expect("text").contains("ended"), "{path}");
    }
    assert_eq!(w.seen.len(), before, "nothing reached the product");
    w.stop().await;
}
