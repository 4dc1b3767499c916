//! wrk runs the load benchmarks share (`customer_bench`, `backends_bench`): durable
//! ingestion through `POST /api/v1/events`, and gateway page views. wrk is a C load
//! generator, so the clients cost the shared cores as little as possible.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Each request a new event with its own idempotency key (a per-run, per-thread prefix and
/// a counter), so every one is written.
const INGEST: &str = r#"
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

fn wrk(clients: usize, seconds: u64) -> Command {
    let mut cmd = Command::new("wrk");
    cmd.args([
        &format!("-t{}", clients.min(2)),
        &format!("-c{clients}"),
        &format!("-d{seconds}s"),
    ])
    .stdout(Stdio::piped());
    cmd
}

/// Starts wrk posting events to `origin` with app key `key` (`run` names the script in
/// `dir` and prefixes the idempotency keys, so runs never collide).
pub(crate) fn ingest(
    dir: &Path,
    run: &str,
    origin: &str,
    key: &str,
    clients: usize,
    seconds: u64,
) -> Result<Child> {
    let script = dir.join(format!("{run}.lua"));
    std::fs::write(&script, INGEST.replace("APP_KEY", key).replace("RUN", run))?;
    wrk(clients, seconds)
        .arg("-s")
        .arg(&script)
        .arg(format!("{origin}/"))
        .spawn()
        .context("wrk is not installed (apt-get install wrk)")
}

/// Starts wrk fetching `url` with the gateway `cookie` (`name=value`).
pub(crate) fn pages(url: &str, cookie: &str, clients: usize, seconds: u64) -> Result<Child> {
    wrk(clients, seconds)
        .args(["-H", &format!("Cookie: {cookie}"), url])
        .spawn()
        .context("wrk is not installed (apt-get install wrk)")
}

/// Requests per second wrk reports; an error if any answer was not 2xx.
pub(crate) fn rate(child: Child) -> Result<f64> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if text.contains("Non-2xx") {
        bail!("some requests were refused:\n{text}");
    }
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context(format!("wrk printed no throughput:\n{text}"))
}
