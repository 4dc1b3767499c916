//! Benchmark of the two backends (run by `cargo xtask bench-backends`), in one run:
//! durable ingestion through `POST /api/v1/events` over real HTTP at 1, 16 and 256
//! clients on SQLite, on PostgreSQL with one instance, and on PostgreSQL with two
//! instances (the clients split between them, as a load balancer would). For
//! PostgreSQL it also reports how long each batch held the ledger's tip lock, and the
//! ceiling that implies for one ledger however many machines share it (events per batch
//! ÷ hold time). Every event is durable before it is answered; wrk counts only 201s.
//!
//! Needs wrk and a PostgreSQL server (`ACTAS_BENCH_POSTGRES`, default the local one).
//! Prints Markdown tables for BENCHMARKS.md.

use actas_core::event::Actor;
use actas_core::staff::{DisplayName, Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::password::Password;
use anyhow::{Context, Result, bail};
use sqlx::Connection;
use std::path::Path;

/// An installation in `dir`, on `url` (SQLite when `None`), with its first instance
/// started: a director, an account and an app key.
async fn installation(dir: &Path, url: Option<&str>) -> Result<(Application, String)> {
    let data = DataDir::new(dir.to_path_buf());
    data.init()?;
    if let Some(url) = url {
        let config = dir.join("actas.toml");
        let text = std::fs::read_to_string(&config)?;
        std::fs::write(
            &config,
            text.replacen("[store]\n", &format!("[store]\nurl = \"{url}\"\n"), 1),
        )?;
    }
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
    Ok((app, key.key.expose().to_owned()))
}

/// A second instance on the same installation: the same data directory files.
async fn another(first: &Path, dir: &Path) -> Result<Application> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(first)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
    }
    let data = DataDir::new(dir.to_path_buf());
    Ok(Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into())).await?)
}

/// Each request a new event with its own idempotency key (a per-run, per-thread prefix).
const SCRIPT: &str = r#"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  prefix = "RUN-t" .. id .. "-"
  counter = 0
end
function request()
  counter = counter + 1
  local key = prefix .. counter
  local body = '{"account":"acme","kind":"document_uploaded","details":{"document":"statement ' .. key .. '"},"idempotency_key":"' .. key .. '"}'
  return wrk.format("POST", "/api/v1/events", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer APP_KEY"}, body)
end
"#;

/// Starts wrk with `clients` connections against `origin` for `seconds`.
fn wrk(
    dir: &Path,
    run: &str,
    origin: &str,
    key: &str,
    clients: usize,
    seconds: u64,
) -> Result<std::process::Child> {
    let script = dir.join(format!("{run}.lua"));
    std::fs::write(&script, SCRIPT.replace("APP_KEY", key).replace("RUN", run))?;
    std::process::Command::new("wrk")
        .args([
            &format!("-t{}", clients.min(2)),
            &format!("-c{clients}"),
            &format!("-d{seconds}s"),
            "-s",
        ])
        .arg(&script)
        .arg(format!("{origin}/"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("wrk is not installed (apt-get install wrk)")
}

fn rate(child: std::process::Child) -> Result<f64> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if text.contains("Non-2xx") {
        bail!("some events were refused:\n{text}");
    }
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context(format!("wrk printed no throughput:\n{text}"))
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
    let before: Vec<_> = apps
        .iter()
        .map(|a| {
            let s = a.store().ledger_stats();
            (s.batches(), s.events(), s.lock_held())
        })
        .collect();
    let share = (clients / apps.len()).max(1);
    let children = apps
        .iter()
        .enumerate()
        .take(clients)
        .map(|(i, a)| {
            wrk(
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
        total += rate(c)?;
    }
    let (mut batches, mut events, mut held) = (0, 0, std::time::Duration::ZERO);
    for (a, (b0, e0, h0)) in apps.iter().zip(before) {
        let s = a.store().ledger_stats();
        batches += s.batches() - b0;
        events += s.events() - e0;
        held += s.lock_held() - h0;
    }
    Ok((total, batches, events, held))
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

/// The measurements, printed as one Markdown table, on the database at `url`.
async fn measure(url: &str, seconds: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (lite, lite_key) = installation(&dir.path().join("sqlite"), None).await?;
    let (pg_a, pg_key) = installation(&dir.path().join("pg-a"), Some(url)).await?;
    let pg_b = another(&dir.path().join("pg-a"), &dir.path().join("pg-b")).await?;
    println!(
        "| clients | SQLite (events/s) | PostgreSQL, 1 instance | ratio to SQLite | PostgreSQL, 2 instances | ratio to 1 | events per batch (2 inst.) | lock held per batch | ceiling (events/s) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for clients in [1usize, 16, 256] {
        let d = dir.path().to_path_buf();
        let (l, _, _, _) = ingest(
            &d,
            &format!("l{clients}"),
            &[&lite],
            &lite_key,
            clients,
            seconds,
        )?;
        let (one, _, _, _) = ingest(
            &d,
            &format!("p{clients}"),
            &[&pg_a],
            &pg_key,
            clients,
            seconds,
        )?;
        let (two, batches, events, held) = ingest(
            &d,
            &format!("q{clients}"),
            &[&pg_a, &pg_b],
            &pg_key,
            clients,
            seconds,
        )?;
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
    lite.stop().await?;
    pg_a.stop().await?;
    pg_b.stop().await?;
    Ok(())
}
