//! Benchmark of the two backends (run by `cargo xtask bench-backends`), in one run, on
//! SQLite, on PostgreSQL with one instance, and on PostgreSQL with two instances (the
//! clients split between them, as a load balancer with nothing sticky would):
//!
//! 1. durable ingestion through `POST /api/v1/events` over real HTTP at 1, 16 and 256
//!    clients, with how long each PostgreSQL batch held the ledger's tip lock and the
//!    ceiling that implies for one ledger however many machines share it (events per
//!    batch ÷ hold time). Every event is durable before it is answered; wrk counts only
//!    201s;
//! 2. gateway page views (each one recorded in the ledger) of the load benchmark's page,
//!    through one live session, at 16 clients.
//!
//! Needs wrk and a PostgreSQL server (`ACTAS_BENCH_POSTGRES`, default the local one).
//! Prints Markdown tables for BENCHMARKS.md.

#[path = "support/load.rs"]
mod load;
mod support;

use actas_core::staff::Email;
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use anyhow::{Context, Result};
use axum::response::Html;
use sqlx::Connection;
use std::path::Path;

/// The page the gateway serves in the page-view runs (the gateway load benchmark's).
const PAGE: &str = include_str!("gateway_load_page.html");

/// An installation's first instance, its gateway session and an app key.
struct Installation {
    app: Application,
    gateway: String,
    cookie: String,
    key: String,
}

/// An installation in `dir`, on `url` (SQLite when `None`), with its gateway in front of
/// `upstream`: a director, an agent in a live session, an account and an app key.
async fn installation(dir: &Path, upstream: &str, url: Option<&str>) -> Result<Installation> {
    let session = support::gateway_session(dir, upstream, url).await?;
    let key = session
        .app
        .service()
        .create_app_key(&Email::parse("dana@example.com")?, "bench", None)
        .await?;
    Ok(Installation {
        app: session.app,
        gateway: session.gateway,
        cookie: session.cookie,
        key: key.key.expose().to_owned(),
    })
}

/// A second instance on the same installation: the same data directory files.
async fn another(first: &Path, dir: &Path) -> Result<(Application, String)> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(first)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
    }
    let data = DataDir::new(dir.to_path_buf());
    let settings = ServeSettings {
        gateway_addr: Some(([127, 0, 0, 1], 0).into()),
        ..ServeSettings::on(([127, 0, 0, 1], 0).into())
    };
    let app = Application::build(&data, settings).await?;
    let gateway = format!("http://{}", app.gateway_addr().context("gateway")?);
    Ok((app, gateway))
}

/// What the writers of `apps` did between two readings: batches, events, lock held.
fn writers(apps: &[&Application]) -> Vec<(u64, u64, std::time::Duration)> {
    apps.iter()
        .map(|a| {
            let s = a.store().ledger_stats();
            (s.batches(), s.events(), s.lock_held())
        })
        .collect()
}

/// Events per second through `apps` (the clients split between them), and what their
/// writers did meanwhile: batches, events, lock held.
fn ingest(
    dir: &Path,
    run: &str,
    apps: &[&Application],
    key: &str,
    clients: usize,
    seconds: u64,
) -> Result<(f64, u64, u64, std::time::Duration)> {
    let before = writers(apps);
    let share = (clients / apps.len()).max(1);
    let children = apps
        .iter()
        .enumerate()
        .take(clients)
        .map(|(i, a)| {
            load::ingest(
                dir,
                &format!("{run}-{i}"),
                &format!("http://{}", a.console_addr()),
                key,
                share,
                seconds,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut total = 0.0;
    for c in children {
        total += load::rate(c)?;
    }
    let (mut batches, mut events, mut held) = (0, 0, std::time::Duration::ZERO);
    for ((b1, e1, h1), (b0, e0, h0)) in writers(apps).into_iter().zip(before) {
        batches += b1 - b0;
        events += e1 - e0;
        held += h1 - h0;
    }
    Ok((total, batches, events, held))
}

/// Page views per second through the gateways at `origins` (the clients split between
/// them), all in the session `cookie` names.
fn views(origins: &[&str], cookie: &str, clients: usize, seconds: u64) -> Result<f64> {
    let share = (clients / origins.len()).max(1);
    let children = origins
        .iter()
        .map(|o| load::pages(&format!("{o}/"), cookie, share, seconds))
        .collect::<Result<Vec<_>>>()?;
    let mut total = 0.0;
    for c in children {
        total += load::rate(c)?;
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let server = std::env::var("ACTAS_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let name = format!("actas_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let url = format!("{server}/{name}");
    // The database goes whatever happens in the run.
    let outcome = measure(&url, seconds).await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    outcome
}

/// The measurements, printed as Markdown tables, on the database at `url`.
async fn measure(url: &str, seconds: u64) -> Result<()> {
    let product = axum::Router::new().route("/", axum::routing::get(|| async { Html(PAGE) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, product).await });

    let dir = tempfile::tempdir()?;
    let lite = installation(&dir.path().join("sqlite"), &upstream, None).await?;
    let pg = installation(&dir.path().join("pg-a"), &upstream, Some(url)).await?;
    let (pg_b, pg_b_gateway) = another(&dir.path().join("pg-a"), &dir.path().join("pg-b")).await?;
    println!(
        "| clients | SQLite (events/s) | PostgreSQL, 1 instance | ratio to SQLite | PostgreSQL, 2 instances | ratio to 1 | events per batch (2 inst.) | lock held per batch | ceiling (events/s) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for clients in [1usize, 16, 256] {
        let d = dir.path().to_path_buf();
        let run = |name: &str, apps: &[&Application], key: &str| {
            ingest(&d, &format!("{name}{clients}"), apps, key, clients, seconds)
        };
        let (l, _, _, _) = run("l", &[&lite.app], &lite.key)?;
        let (one, _, _, _) = run("p", &[&pg.app], &pg.key)?;
        let (two, batches, events, held) = run("q", &[&pg.app, &pg_b], &pg.key)?;
        let per_batch = events as f64 / batches.max(1) as f64;
        let hold = held.as_secs_f64() / batches.max(1) as f64;
        println!(
            "| {clients} | {l:.0} | {one:.0} | {:.2}× | {two:.0} | {:.2}× | {per_batch:.1} | {:.2} ms | {:.0} |",
            one / l,
            two / one,
            hold * 1000.0,
            per_batch / hold.max(1e-9)
        );
    }
    println!();
    println!(
        "| gateway page views, 16 clients | SQLite (views/s) | PostgreSQL, 1 instance | ratio to SQLite | PostgreSQL, 2 instances | ratio to 1 |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let l = views(&[&lite.gateway], &lite.cookie, 16, seconds)?;
    let one = views(&[&pg.gateway], &pg.cookie, 16, seconds)?;
    let two = views(&[&pg.gateway, &pg_b_gateway], &pg.cookie, 16, seconds)?;
    println!(
        "| page views | {l:.0} | {one:.0} | {:.2}× | {two:.0} | {:.2}× |",
        one / l,
        two / one
    );
    lite.app.stop().await?;
    pg.app.stop().await?;
    pg_b.stop().await?;
    Ok(())
}
