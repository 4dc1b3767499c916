//! Pages as the agent saw them: the bytes the agent's client received are the bytes the
//! ledger hashed and the copy a reviewer opens; a changed copy is refused; a page past the
//! session's limit keeps its hash but no copy; copies go after the policy's retention.

use crate::common::{self, Person};
use crate::world::{BIG_ROWS, World, enter, events, world};
use actas_core::event::EventData;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Every page recorded in `session.pages_kept` events so far, with its event's summary.
async fn pages(w: &World) -> Vec<(actas_core::event::KeptPage, String)> {
    events(w)
        .await
        .into_iter()
        .filter_map(|e| match e.body.data {
            EventData::PagesKept { pages, .. } => Some(
                pages
                    .into_iter()
                    .map(|p| (p, e.body.summary.clone()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The first recorded page for `path` (number, hash, kept, bytes), once the gateway has
/// recorded it (pages are recorded about once a second).
async fn kept(w: &World, path: &str) -> (u64, String, bool, u64) {
    for _ in 0..100 {
        if let Some((p, _)) = pages(w).await.into_iter().find(|(p, _)| p.path == path) {
            return (p.page, p.sha256, p.kept, p.bytes);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no session.pages_kept for {path}: {:?}",
        crate::world::kinds(w).await
    );
}

#[tokio::test]
async fn the_copy_a_reviewer_opens_is_the_page_the_agent_got_and_the_ledger_hashed() {
    let w = world().await;
    let agent = enter(&w, &[], "read-only").await;
    let got = agent
        .get("/")
        .header("accept", "text/html")
        .send()
        .await
        .expect("page")
        .bytes()
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("•••• 4242") && !text.contains("4111 1111 1111 4242"));
    let (page, sha256, was_kept, bytes) = kept(&w, "/").await;
    assert!(was_kept);
    assert_eq!(bytes, got.len() as u64);
    assert_eq!(
        sha256,
        hex::encode(Sha256::digest(&got)),
        "the ledger hashed what was sent"
    );
    let (_, session) = crate::world::sarahs_session(&w).await;
    let id = session.info().id;

    common::add_staff(
        w.app.service(),
        &[
            (
                "audrey@example.com",
                "Audrey Kim",
                actas_core::staff::Role::Auditor,
            ),
            (
                "ola@example.com",
                "Ola Nowak",
                actas_core::staff::Role::Agent,
            ),
        ],
    )
    .await;
    let console = format!("http://{}", w.app.console_addr());
    let lee = Person::sign_in(&console, "lee@example.com").await;
    // The timeline links the copy; its page says it matches the ledger.
    let (_, timeline) = lee.get(&format!("/sessions/{id}")).await;
    assert!(
        timeline.contains(&format!("/sessions/{id}/pages/{page}")),
        "{timeline}"
    );
    let (status, wrapper) = lee.get(&format!("/sessions/{id}/pages/{page}")).await;
    assert_eq!(status, 200, "{wrapper}");
    assert!(
        wrapper.contains("matches the ledger") && wrapper.contains(&sha256),
        "{wrapper}"
    );
    // The copy is byte for byte what the agent got, served so it can't act: sandboxed,
    // loading nothing.
    let r = lee
        .http
        .get(format!("{console}/sessions/{id}/pages/{page}/copy"))
        .header("cookie", &lee.cookie)
        .send()
        .await
        .expect("copy");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.starts_with("sandbox;") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(r.bytes().await.expect("copy"), got);
    // The same over the API, for the agent herself and an auditor; not for another agent.
    let audrey = Person::sign_in(&console, "audrey@example.com").await;
    let (status, api) = audrey
        .get(&format!("/api/v1/sessions/{id}/pages/{page}"))
        .await;
    assert_eq!(status, 200, "{api}");
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    assert_eq!(api["matches"], true);
    assert_eq!(api["sha256"], sha256.as_str());
    assert_eq!(api["html"].as_str().map(str::as_bytes), Some(&got[..]));
    // Opening the copy itself is recorded, on the customer's account.
    let opened = events(&w)
        .await
        .into_iter()
        .find(|e| e.body.kind() == "session.page_copy_opened")
        .expect("the opening is recorded");
    assert_eq!(
        opened.body.summary,
        "Lee Chen opened the kept copy of / as Sarah Lee saw it"
    );
    assert_eq!(
        opened.body.account.as_ref().map(|a| a.as_str()),
        Some("acme")
    );
    let ola = Person::sign_in(&console, "ola@example.com").await;
    let (status, _) = ola.get(&format!("/sessions/{id}/pages/{page}")).await;
    assert_eq!(status, 403);
    let (status, _) = lee.get(&format!("/sessions/{id}/pages/999999")).await;
    assert_eq!(status, 404);

    // A copy changed in the database no longer matches: it is named, and not shown.
    let forged = {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(
            &text
                .replace("•••• 4242", "4111 1111 1111 4242")
                .into_bytes(),
        )
        .expect("gzip");
        z.finish().expect("gzip")
    };
    let db = common::BackDoor::open(&w.dir.path().join("data")).await;
    db.execute(
        "UPDATE page_copies SET gzip = $1 WHERE page_seq = $2",
        vec![common::Bind::Bytes(forged), common::Bind::Int(page as i64)],
    )
    .await;
    let (_, wrapper) = lee.get(&format!("/sessions/{id}/pages/{page}")).await;
    assert!(wrapper.contains("does not match the ledger"), "{wrapper}");
    let (status, copy) = lee.get(&format!("/sessions/{id}/pages/{page}/copy")).await;
    assert_eq!(status, 409);
    assert!(!copy.contains("4111 1111 1111 4242"), "{copy}");

    // A page fetched by a script (or curl) is kept as well as one navigated to: the
    // client's headers don't decide it.
    let fetched = agent
        .get("/links")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-dest", "empty")
        .send()
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("body");
    let (links_seq, links_sha, links_kept, _) = kept(&w, "/links").await;
    assert!(links_kept);
    assert_eq!(links_sha, hex::encode(Sha256::digest(&fetched)));
    let read = events(&w)
        .await
        .into_iter()
        .find(|e| e.body.seq == links_seq)
        .expect("the request's event");
    assert_eq!(read.body.kind(), "session.data_read");
    // Not UTF-8: served back in the page's own encoding.
    let latin = agent
        .get("/latin1")
        .header("accept", "text/html")
        .send()
        .await
        .expect("latin1");
    let agent_type = latin.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let latin = latin.bytes().await.expect("body");
    assert!(
        std::str::from_utf8(&latin).is_err(),
        "the page stays in its own encoding"
    );
    let (latin_seq, _, _, _) = kept(&w, "/latin1").await;
    let r = lee
        .http
        .get(format!("{console}/sessions/{id}/pages/{latin_seq}/copy"))
        .header("cookie", &lee.cookie)
        .send()
        .await
        .expect("copy");
    let served_type = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(served_type, agent_type);
    assert_eq!(r.bytes().await.expect("copy"), latin);

    // A page past the session's limit (64 KB here) keeps its hash, not its copy.
    let big = agent
        .get("/big")
        .header("accept", "text/html")
        .send()
        .await
        .expect("big")
        .bytes()
        .await
        .expect("body");
    assert!(big.len() > BIG_ROWS * 200);
    let (big_page, big_sha, big_kept, _) = kept(&w, "/big").await;
    assert!(!big_kept, "over the limit");
    assert_eq!(big_sha, hex::encode(Sha256::digest(&big)));
    let (status, page_text) = lee.get(&format!("/sessions/{id}/pages/{big_page}")).await;
    assert_eq!(status, 404);
    assert!(
        page_text.contains("No copy of this page is kept"),
        "{page_text}"
    );

    // A client that stops reading leaves the hash of what was sent, marked cut short.
    let mut partial = agent
        .get("/big")
        .header("accept", "text/html")
        .send()
        .await
        .expect("big again");
    let first = partial.chunk().await.expect("a chunk").expect("some bytes");
    assert!(!first.is_empty());
    drop(partial);
    let mut cut = None;
    for _ in 0..200 {
        cut = pages(&w).await.into_iter().find(|(p, _)| p.cut_short);
        if cut.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cut_page, cut_summary) = cut.expect("a cut-short page is recorded");
    assert!(!cut_page.kept && cut_page.path == "/big");
    assert!(
        cut_page.bytes < big.len() as u64,
        "what was sent until then"
    );
    assert!(
        cut_summary.contains("cut short when the browser stopped reading"),
        "{cut_summary}"
    );

    // After the policy's retention (90 days) the copies go; the ledger keeps the hashes.
    let later = actas_core::Timestamp::now().plus(Duration::from_secs(91 * 86_400));
    let gone = w
        .app
        .service()
        .prune_page_copies(later)
        .await
        .expect("prune");
    assert!(gone >= 1, "{gone}");
    let (status, _) = lee.get(&format!("/sessions/{id}/pages/{page}")).await;
    assert_eq!(status, 404);
    let left = db.number("SELECT count(*) FROM page_copies").await;
    assert_eq!(left, 0);
    db.close().await;
}
