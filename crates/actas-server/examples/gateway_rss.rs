//! Peak-memory benchmark for the gateway (run by `cargo xtask bench-gateway`): a 100 MiB
//! HTML page, with a card number to mask in every row, streamed from a product through the
//! gateway in a live session, in one process. It reads the process's peak resident set
//! (`VmHWM`), resetting it between runs (`/proc/self/clear_refs`), for three runs in the
//! same process: the page fetched directly (the baseline), the page through the gateway,
//! and, for scale, the page read whole into memory. Prints a Markdown table.

#[path = "support/mod.rs"]
mod support;

use anyhow::{Context, Result, bail};
use axum::body::{Body, Bytes};
use futures_util::StreamExt;

/// The page's size.
const PAGE_BYTES: usize = 100 * 1024 * 1024;

fn row(i: usize) -> String {
    format!(
        "<tr><td>{i:08}</td><td class=\"card-number\">4111 1111 1111 4242</td><td>{}</td></tr>\n",
        "x".repeat(180)
    )
}

/// The page, generated as it is sent, so the product itself holds almost nothing.
fn page() -> Body {
    let rows = PAGE_BYTES.div_ceil(row(0).len()).next_multiple_of(64);
    let head = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(Bytes::from_static(b"<!doctype html><html><body><table>\n"))
    });
    let body = futures_util::stream::iter(0..rows / 64).map(|block| {
        let chunk: String = (block * 64..block * 64 + 64).map(row).collect();
        Ok(Bytes::from(chunk))
    });
    let tail =
        futures_util::stream::once(async { Ok(Bytes::from_static(b"</table></body></html>\n")) });
    Body::from_stream(head.chain(body).chain(tail))
}

/// Peak resident set of this process so far, in KiB.
fn peak_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

/// Resets the peak to the current resident set.
fn reset_peak() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("could not reset the peak (clear_refs)")
}

/// Streams `url` and returns the bytes received and the growth of the peak (KiB).
async fn stream(client: &reqwest::Client, url: &str, cookie: Option<&str>) -> Result<(usize, u64)> {
    reset_peak()?;
    let before = peak_kib()?;
    let mut req = client.get(url).header("accept", "text/html");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("{url} answered {}", resp.status());
    }
    let mut body = resp.bytes_stream();
    let mut bytes = 0;
    while let Some(chunk) = body.next().await {
        bytes += chunk?.len();
    }
    Ok((bytes, peak_kib()?.saturating_sub(before)))
}

#[tokio::main]
async fn main() -> Result<()> {
    let product = axum::Router::new().route(
        "/big",
        axum::routing::get(|| async { ([("content-type", "text/html; charset=utf-8")], page()) }),
    );
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

    let (direct_bytes, direct_kib) =
        stream(&client, &format!("http://{product_addr}/big"), None).await?;
    let (gw_bytes, gw_kib) = stream(
        &client,
        &format!("{}/big", session.gateway),
        Some(&session.cookie),
    )
    .await?;
    reset_peak()?;
    let before = peak_kib()?;
    let whole = client
        .get(format!("http://{product_addr}/big"))
        .send()
        .await?
        .bytes()
        .await?;
    let whole_kib = peak_kib()?.saturating_sub(before);
    let whole_len = whole.len();
    drop(whole);
    session.app.stop().await?;
    // Masking shortens each card number by 6 bytes; anything much shorter was cut off.
    if direct_bytes < PAGE_BYTES || gw_bytes < direct_bytes / 100 * 95 {
        bail!(
            "the page was cut short: {direct_bytes} bytes direct, {gw_bytes} through the gateway"
        );
    }

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("| 100 MiB HTML page | bytes received | peak RSS growth |");
    println!("| --- | --- | --- |");
    println!(
        "| streamed directly (baseline) | {direct_bytes} | {:.1} MiB |",
        mib(direct_kib)
    );
    println!(
        "| streamed through the gateway, masked | {gw_bytes} | {:.1} MiB |",
        mib(gw_kib)
    );
    println!(
        "| read whole (for scale) | {whole_len} | {:.1} MiB |",
        mib(whole_kib)
    );
    println!();
    println!(
        "gateway peak growth: {:.1} MiB, {:.3}× the page size (target: bounded, under 100 MiB)",
        mib(gw_kib),
        gw_kib as f64 / (PAGE_BYTES / 1024) as f64
    );
    Ok(())
}
