//! Benchmark of the customer side (run by `cargo xtask bench-customer`), in one run:
//!
//! 1. Durable ingestion through `POST /api/v1/events` over real HTTP, at 1, 16 and 256
//!    concurrent clients, against a baseline of the very same server with group commit
//!    off (`[ledger] max_batch = 1`: one transaction, one fsync, per event).
//! 2. The audit extract of an account with 100,000 events in a ledger of 1,000,000:
//!    events, inclusion proofs and JSON.
//!
//! Prints Markdown tables for BENCHMARKS.md.

use actas_core::activity::ActivityKind;
use actas_core::app::{AppName, AppRef};
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::staff::{DisplayName, Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::password::Password;
use actas_store::Unit;
use anyhow::{Context, Result, bail};

// This benchmark posts events only; the page-view run is the backends benchmark's.
#[allow(dead_code)]
#[path = "support/load.rs"]
mod load;
use std::time::Instant;

/// Starts a server in `dir` with `max_batch`, a director, an app key and an account.
async fn server(dir: &std::path::Path, max_batch: usize) -> Result<(Application, String, String)> {
    let data = DataDir::new(dir.to_path_buf());
    data.init()?;
    let config = data.path().join("actas.toml");
    let text = std::fs::read_to_string(&config)?;
    let set = text.replace("max_batch = 1024", &format!("max_batch = {max_batch}"));
    if set == text && max_batch != 1024 {
        bail!("actas init no longer writes `max_batch = 1024`; update this benchmark");
    }
    std::fs::write(&config, set)?;
    let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into())).await?;
    let s = app.service();
    s.add_staff(
        Email::parse("dana@example.com")?,
        DisplayName::parse("Dana Park")?,
        Role::Director,
        Password::new("a-long-password".into())?,
        None,
    )
    .await?;
    s.put_account("acme", "Acme Co", &[], Actor::System).await?;
    let key = s
        .create_app_key(&Email::parse("dana@example.com")?, "bench", None)
        .await?;
    let base = format!("http://{}/api/v1", app.console_addr());
    Ok((app, base, key.key.expose().to_owned()))
}

/// Events per second from `clients` connections posting one event per request for
/// `seconds`. Every request must be answered 201.
fn ingest(
    dir: &std::path::Path,
    base: &str,
    key: &str,
    clients: usize,
    seconds: u64,
) -> Result<f64> {
    let origin = base.trim_end_matches("/api/v1");
    load::rate(load::ingest(
        dir,
        &format!("events-{clients}"),
        origin,
        key,
        clients,
        seconds,
    )?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let (grouped, grouped_base, grouped_key) = server(&dir.path().join("grouped"), 1024).await?;
    let (single, single_base, single_key) = server(&dir.path().join("single"), 1).await?;
    println!(
        "| clients | group commit (events/s) | one transaction per event (events/s) | ratio |"
    );
    println!("| --- | --- | --- | --- |");
    // BENCH_EXTRACT_ONLY=1 skips the ingestion rows (to work on the extract alone).
    let clients: &[usize] = if std::env::var_os("BENCH_EXTRACT_ONLY").is_some() {
        &[]
    } else {
        &[1, 16, 256]
    };
    for &clients in clients {
        // wrk blocks; run it off the runtime that serves the requests.
        let run = |base: String, key: String| {
            let dir = dir.path().to_path_buf();
            tokio::task::spawn_blocking(move || ingest(&dir, &base, &key, clients, seconds))
        };
        let g = run(grouped_base.clone(), grouped_key.clone()).await??;
        let b = run(single_base.clone(), single_key.clone()).await??;
        println!("| {clients} | {g:.0} | {b:.0} | {:.2}× |", g / b);
    }
    grouped.stop().await?;
    single.stop().await?;

    // The extract: 100,000 of 1,000,000 events belong to one account. BENCH_EXTRACT_DIR
    // keeps that ledger in a directory and reuses it on the next run (to work on the
    // extract without filling it again).
    let kept = std::env::var_os("BENCH_EXTRACT_DIR").map(std::path::PathBuf::from);
    let extract_dir = kept.clone().unwrap_or_else(|| dir.path().join("extract"));
    let reuse = kept.is_some() && extract_dir.join("filled").exists();
    let app = if reuse {
        let data = DataDir::new(extract_dir.clone());
        Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into())).await?
    } else {
        server(&extract_dir, 1024).await?.0
    };
    let s = app.service();
    if !reuse {
        s.put_account("big", "Big Co", &[], Actor::System).await?;
    }
    let big = s.account_ref("big").await?;
    let other = s.account_ref("acme").await?;
    let app_ref = AppRef {
        id: 1,
        name: AppName::parse("bench")?,
    };
    let kind = ActivityKind::parse("document_uploaded")?;
    let total: u64 = if reuse { 0 } else { 1_000_000 };
    let started = Instant::now();
    let mut next = 0u64;
    while next < total {
        let (from, to) = (next, (next + 5_000).min(total));
        let (big, other, app_ref, kind) =
            (big.clone(), other.clone(), app_ref.clone(), kind.clone());
        s.store()
            .commit(Unit::new(vec![], move |_| {
                (from..to)
                    .map(|n| {
                        let account = if n % 10 == 0 {
                            big.clone()
                        } else {
                            other.clone()
                        };
                        NewEvent::new(
                            Actor::Customer(account.clone()),
                            EventData::CustomerActivity {
                                account,
                                activity: kind.clone(),
                                description: format!("uploaded statement {n}"),
                                changes: vec![],
                                reported_by: app_ref.clone(),
                            },
                        )
                    })
                    .collect()
            }))
            .await?;
        next = to;
    }
    let filled = started.elapsed();
    if kept.is_some() {
        std::fs::write(extract_dir.join("filled"), "")?;
    }
    // The two halves of building an extract, timed apart.
    let t = Instant::now();
    let seqs = s.store().account_event_seqs(&big.id, u64::MAX).await?;
    s.store().account_event_texts(&big.id, &seqs).await?;
    let read = t.elapsed();
    let t = Instant::now();
    let size = s.store().ledger_size().await?;
    s.store().multi_proof(&seqs, size).await?;
    let proved = t.elapsed();
    let t = Instant::now();
    let extract = s.audit_extract("big", None).await?;
    let built = t.elapsed();
    let t = Instant::now();
    let json = serde_json::to_string(&extract)?;
    let serialized = t.elapsed();
    let t = Instant::now();
    let packed = actas_server::service::extract::compress(json.as_bytes())?;
    let compressed = t.elapsed();
    let t = Instant::now();
    let report = actas_core::extract::verify_extract(&json, None)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the extract must verify")?;
    let verified = t.elapsed();
    app.stop().await?;
    println!();
    println!(
        "ledger of {} events built in {:.1} s; extract of account `big`:",
        extract.tree_head.head.size,
        filled.as_secs_f64()
    );
    println!();
    println!("| step | time |");
    println!("| --- | --- |");
    println!(
        "| (alone) reading the account's events | {:.2} s |",
        read.as_secs_f64()
    );
    println!(
        "| (alone) their multi-leaf proof | {:.2} s |",
        proved.as_secs_f64()
    );
    println!(
        "| {} events, their proof and the signed checkpoint, as `audit_extract` builds them (target under 0.5 s) | {:.2} s |",
        extract.events.len(),
        built.as_secs_f64()
    );
    println!(
        "| JSON ({:.1} MB; target at most 40 MB) | {:.2} s |",
        json.len() as f64 / 1e6,
        serialized.as_secs_f64()
    );
    println!(
        "| the same JSON gzip-compressed, as `?format=json.gz` sends it ({:.1} MB; target at most 40 MB) | {:.2} s |",
        packed.len() as f64 / 1e6,
        compressed.as_secs_f64()
    );
    println!("| total | {:.2} s |", (built + serialized).as_secs_f64());
    println!(
        "| offline verification of all {} events (target under 0.5 s) | {:.2} s |",
        report.events,
        verified.as_secs_f64()
    );
    Ok(())
}
