//! Signed actions at the gateway, against the test product: what is held is exactly
//! what is sent (its body and the headers it was made with), a JSON change shows every
//! member it replaces, and what can't be shown for certain — a file upload, JSON that
//! names a member twice, a page the scope doesn't allow reading — is refused and
//! recorded, as is a send link that is wrong or used.

use super::common;
use super::world::*;
use actas_core::Timestamp;
use reqwest::StatusCode;

/// The held action's id, from a 428's `Link` header.
fn held_id(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::PRECONDITION_REQUIRED, "held");
    r.headers()["link"]
        .to_str()
        .expect("ascii")
        .split("/actions/")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .expect("the confirm link")
        .to_owned()
}

/// Confirms the held action as Sarah (as the console does after her password), and
/// the link that sends it.
async fn confirmed(w: &World, id: &str) -> String {
    let sarah = common::staff(w.app.service(), "sarah@example.com").await;
    let token = w
        .app
        .service()
        .confirm_action(sarah.id, id, "their password", Timestamp::now())
        .await
        .expect("confirmed");
    format!("/__actas/send/{id}?token={}", token.expose())
}

/// What the held action `id` changes, as (field, from, to).
async fn changes_of(w: &World, id: &str) -> Vec<(String, Option<String>, Option<String>)> {
    w.app
        .store()
        .held_action(id)
        .await
        .expect("read")
        .expect("held")
        .changes
        .into_iter()
        .map(|c| (c.field, c.from, c.to))
        .collect()
}

/// (field, from, to) as [`changes_of`] gives them.
fn triples(
    want: &[(&str, Option<&str>, Option<&str>)],
) -> Vec<(String, Option<String>, Option<String>)> {
    want.iter()
        .map(|(f, from, to)| {
            (
                (*f).to_owned(),
                from.map(str::to_owned),
                to.map(str::to_owned),
            )
        })
        .collect()
}

/// The product's requests of `method path`.
fn served(w: &World, method: &str, path: &str) -> Vec<Served> {
    w.seen
        .all()
        .into_iter()
        .filter(|s| s.method == method && s.path == path)
        .collect()
}

async fn blocked(w: &World) -> Vec<String> {
    events(w)
        .await
        .into_iter()
        .filter(|e| e.body.kind() == "session.blocked")
        .map(|e| e.body.summary)
        .collect()
}

#[tokio::test]
async fn a_held_change_is_sent_with_the_headers_it_was_made_with_then_forgotten() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let held = agent
        .post("/contact")
        .header("x-csrf-token", "t0k3n-from-the-page")
        .header("origin", &w.gateway)
        .header("user-agent", "agent-browser/1")
        .header("sec-fetch-mode", "navigate")
        .form(&[("name", "Acme Trading"), ("city", "Lyon")])
        .send()
        .await
        .expect("post");
    let id = held_id(&held);
    assert!(served(&w, "POST", "/contact").is_empty(), "nothing sent");
    let send = confirmed(&w, &id).await;
    // The link is followed as a browser follows a redirect: other headers, no CSRF one.
    let sent = agent
        .get(&send)
        .header("user-agent", "another-client/2")
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "the product's answer");
    let posts = served(&w, "POST", "/contact");
    assert_eq!(posts.len(), 1, "sent once");
    let h = &posts[0].headers;
    assert_eq!(h["x-csrf-token"], "t0k3n-from-the-page");
    assert_eq!(h["user-agent"], "agent-browser/1");
    assert_eq!(h["origin"], w.gateway.as_str());
    assert!(h.contains_key("actas-receipt") && h.contains_key("actas-assertion"));
    assert!(
        !h.contains_key("cookie"),
        "no actas cookie reaches the product"
    );
    // What it would have sent is not kept once sent; what it changed is.
    let kept = w
        .app
        .store()
        .held_action(&id)
        .await
        .expect("read")
        .expect("kept");
    assert!(kept.body.is_empty() && kept.headers.is_empty(), "{kept:?}");
    assert_eq!(kept.changes.len(), 1, "{:?}", kept.changes);
    assert_eq!(kept.changes[0].field, "name");
    w.stop().await;
}

#[tokio::test]
async fn a_json_change_shows_every_member_it_replaces_emptied_and_shortened_too() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let held = agent
        .put("/api/contact")
        .json(&serde_json::json!({ "name": "Acme Co", "tags": ["vip"], "address": {} }))
        .send()
        .await
        .expect("put");
    let id = held_id(&held);
    let by = changes_of(&w, &id).await;
    assert_eq!(
        by,
        triples(&[
            ("address", Some(r#"{"city":"Lyon"}"#), Some("{}")),
            ("tags", Some(r#"["vip","eu"]"#), Some(r#"["vip"]"#)),
        ]),
        "the name is unchanged; the emptied address and the shortened list are changes"
    );
    // A PUT is the whole resource: a member it leaves out is removed, and shown so.
    let held = agent
        .put("/api/contact")
        .json(&serde_json::json!({ "name": "Acme Co", "tags": ["vip", "eu"] }))
        .send()
        .await
        .expect("put");
    let id = held_id(&held);
    let by = changes_of(&w, &id).await;
    assert_eq!(
        by,
        triples(&[("address", Some(r#"{"city":"Lyon"}"#), None)])
    );
    w.stop().await;
}

#[tokio::test]
async fn what_cannot_be_shown_for_certain_is_refused_and_recorded() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    // JSON naming a member twice: a product may take either.
    let twice = agent
        .put("/api/contact")
        .header("content-type", "application/json")
        .body(r#"{"name":"Acme Co","name":"Mallory Ltd"}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(twice.status(), StatusCode::FORBIDDEN);
    let page = twice.text().await.expect("page");
    assert!(page.contains("names the member “name” twice"), "{page}");
    // A file upload.
    let upload = reqwest::multipart::Form::new()
        .text("name", "Acme Trading")
        .part(
            "logo",
            reqwest::multipart::Part::bytes(b"GIF89a".to_vec()).file_name("logo.gif"),
        );
    let r = agent
        .post("/contact")
        .multipart(upload)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("page").contains("not a file upload"));
    // A change whose current page the scope doesn't allow reading: not read at all.
    let r = agent
        .post("/access/contact")
        .form(&[("email", "new@acme.example")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .expect("page")
            .contains("reading /access is refused"),
        "the current page is decided as a read"
    );
    assert!(served(&w, "GET", "/access").is_empty(), "never read");
    for path in ["/api/contact", "/contact", "/access/contact"] {
        assert!(
            served(&w, "PUT", path).is_empty() && served(&w, "POST", path).is_empty(),
            "nothing sent to {path}"
        );
    }
    let said = blocked(&w).await;
    assert_eq!(said.len(), 3, "{said:#?}");
    assert!(
        said[0].contains("names the member “name” twice"),
        "{said:#?}"
    );
    assert!(said[1].contains("not a file upload"), "{said:#?}");
    assert!(said[2].contains("reading /access is refused"), "{said:#?}");
    w.stop().await;
}

#[tokio::test]
async fn a_wrong_or_used_send_link_is_refused_in_words_and_recorded() {
    let w = world().await;
    let agent = enter(&w, &["edit_settings"], "live").await;
    let held = agent
        .post("/contact")
        .form(&[("name", "Acme Trading"), ("city", "Lyon")])
        .send()
        .await
        .expect("post");
    let id = held_id(&held);
    let send = confirmed(&w, &id).await;
    let wrong = agent
        .get(&format!("/__actas/send/{id}?token=not-the-token"))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let page = wrong.text().await.expect("page");
    assert!(
        page.contains("this confirmed change was not sent"),
        "{page}"
    );
    assert!(served(&w, "POST", "/contact").is_empty());
    assert_eq!(
        agent.get(&send).send().await.expect("send").status(),
        StatusCode::SEE_OTHER
    );
    let again = agent.get(&send).send().await.expect("send");
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert!(
        again
            .text()
            .await
            .expect("page")
            .contains("has already been sent"),
        "a used link says so"
    );
    assert_eq!(served(&w, "POST", "/contact").len(), 1, "sent once");
    let said = blocked(&w).await;
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said.iter()
            .all(|s| s.contains("this confirmed change was not sent"))
    );
    assert!(
        said.iter().all(|s| !s.contains("not-the-token")),
        "no token in the ledger"
    );
    w.stop().await;
}
