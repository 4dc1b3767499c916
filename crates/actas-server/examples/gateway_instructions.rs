//! A fixed number of page requests through the gateway, one after another, for counting
//! instructions with `valgrind --tool=callgrind` (run by `cargo xtask bench-gateway-cpu`).
//! Instruction counts repeat exactly for the same binary and input, where times on this
//! machine don't; running it for two request counts and taking the difference gives the
//! instructions one request costs — the gateway, the product and the client together, all
//! in this process — without the set-up (password hashing, key loading).
//!
//! `GATEWAY_REQUESTS` sets the count (default 500).

#[path = "support/mod.rs"]
mod support;

use anyhow::{Context, Result, bail};
use axum::response::Html;

const PAGE: &str = include_str!("gateway_load_page.html");

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::var("GATEWAY_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let product = axum::Router::new().route("/", axum::routing::get(|| async { Html(PAGE) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let product_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, product).await });
    let dir = tempfile::tempdir()?;
    let session = support::gateway_session(
        &dir.path().join("actas"),
        &format!("http://{product_addr}"),
        None,
    )
    .await?;
    let client = reqwest::Client::new();
    for _ in 0..n {
        let r = client
            .get(format!("{}/", session.gateway))
            .header("cookie", &session.cookie)
            .header("sec-fetch-dest", "document")
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("the gateway answered {}", r.status());
        }
        r.bytes().await.context("body")?;
    }
    let recorded = session.app.service().store().ledger_size().await?;
    session.app.stop().await?;
    println!("{n} requests; ledger size {recorded}");
    Ok(())
}
