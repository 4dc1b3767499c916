//! Load benchmark for the gateway (run by `cargo xtask bench-gateway`; needs wrk and
//! nginx from Debian). In one run it measures the same small product three ways:
//! directly, behind nginx `proxy_pass` (the baseline), and behind the actas gateway in a
//! live session with the banner, masking and a durable ledger event for every request —
//! and, to show what rewriting costs, the gateway again on the same bytes as plain text.
//! Prints a Markdown table of throughput and p50/p99 latency with ratios.

#[path = "support/mod.rs"]
mod support;

#[path = "support/floor.rs"]
mod floor;

use anyhow::{Context, Result, bail};
use axum::response::Html;
use std::process::{Command, Stdio};
use std::time::Duration;

const PAGE: &str = include_str!("gateway_load_page.html");

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU seconds the measured process spent during the run (see [`cpu_seconds`]).
    cpu: f64,
    /// CPU seconds the whole machine spent during the run (see [`machine_busy_seconds`]).
    machine: f64,
}

impl Run {
    /// CPU microseconds per request, from this run's CPU time and request count.
    fn cpu_us_per_request(&self, seconds: u32) -> f64 {
        self.cpu * 1e6 / (self.rps * f64::from(seconds))
    }

    /// CPU microseconds per request spent outside the measured process: wrk, the
    /// kernel's share, and (behind nginx) the product.
    fn others_us_per_request(&self, seconds: u32) -> f64 {
        (self.machine - self.cpu) * 1e6 / (self.rps * f64::from(seconds))
    }
}

/// CPU time (in seconds) the whole machine has spent busy so far — user, system and
/// interrupt time on every core, from the first line of `/proc/stat`.
fn machine_busy_seconds(ticks_per_second: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("/proc/stat has no cpu line")?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user, nice, system, idle, iowait, irq, softirq: busy is all but idle and iowait.
    let busy: f64 = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0.0))
        .sum();
    Ok(busy / ticks_per_second)
}

/// CPU time (user + system, in seconds) used so far by `pid` and its child processes
/// that are still running (nginx's worker is the master's child), read from `/proc`.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .context(format!("/proc/{pid}/stat has no field {}", i + 3))
    };
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the name.
    let mut total = (ticks(11)? + ticks(12)?) / ticks_per_second;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        total += cpu_seconds(child, ticks_per_second)?;
    }
    Ok(total)
}

/// How hard wrk pushes: saturating (2 threads, 32 connections) for throughput, or light
/// (1 thread, 2 connections, well under any path's capacity) for the latency a request
/// pays when it doesn't queue behind others.
#[derive(Clone, Copy)]
enum Load {
    Saturating,
    Light,
}

/// Runs wrk against `url` and measures the CPU time `pid` (the process serving that
/// path) spends meanwhile.
fn wrk(
    url: &str,
    cookie: Option<&str>,
    seconds: u32,
    load: Load,
    (pid, ticks_per_second): (u32, f64),
) -> Result<Run> {
    let cpu_before = cpu_seconds(pid, ticks_per_second)?;
    let machine_before = machine_busy_seconds(ticks_per_second)?;
    let mut cmd = Command::new("wrk");
    let (threads, connections) = match load {
        Load::Saturating => ("-t2", "-c32"),
        Load::Light => ("-t1", "-c2"),
    };
    cmd.args([
        threads,
        connections,
        &format!("-d{seconds}s"),
        "--latency",
        "-H",
        "Sec-Fetch-Dest: document",
    ]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: {c}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .context("wrk is not installed (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context(format!("wrk printed no throughput:\n{text}"))?;
    let pct = |p: &str| -> Result<f64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(p))
            .context(format!("no {p} in wrk output"))?;
        let v = line.split_whitespace().nth(1).context("no value")?;
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse()?;
        Ok(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            _ => n,
        })
    };
    if text.contains("Non-2xx") {
        bail!("some requests failed:\n{text}");
    }
    Ok(Run {
        rps,
        p50_ms: pct("50%")?,
        p99_ms: pct("99%")?,
        cpu: cpu_seconds(pid, ticks_per_second)? - cpu_before,
        machine: machine_busy_seconds(ticks_per_second)? - machine_before,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // The product.
    // The product: the page as HTML, and the same bytes as plain text, which the gateway
    // records like any page view but does not rewrite (a diagnostic: what rewriting costs).
    let product = axum::Router::new()
        .route("/", axum::routing::get(|| async { Html(PAGE) }))
        .route(
            "/plain",
            axum::routing::get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; charset=utf-8",
                    )],
                    PAGE,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let product_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, product).await });

    // nginx in front of it, as the baseline.
    let dir = tempfile::tempdir()?;
    let nginx_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let conf = dir.path().join("nginx.conf");
    let p = dir.path().display();
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1; daemon off; pid {p}/nginx.pid; error_log {p}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {p}/b; proxy_temp_path {p}/p; fastcgi_temp_path {p}/f; uwsgi_temp_path {p}/u; scgi_temp_path {p}/s;
  upstream product {{ server {product_addr}; keepalive 64; }}
  server {{ listen 127.0.0.1:{nginx_port}; location / {{ proxy_pass http://product; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}"
        ),
    )?;
    let mut nginx = Command::new("nginx")
        .args(["-c", &conf.display().to_string(), "-p", &p.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nginx is not installed (apt-get install nginx)")?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // actas, with the gateway pointed at the product, and a live session.
    let session = support::gateway_session(
        &dir.path().join("actas"),
        &format!("http://{product_addr}"),
        None,
    )
    .await?;
    let (app, gateway, cookie) = (session.app, session.gateway, session.cookie);
    let ticks_per_second: f64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .context("getconf is missing")?
            .stdout,
    )?
    .trim()
    .parse()
    .context("getconf CLK_TCK printed no number")?;
    let (me, nginx_pid) = (std::process::id(), nginx.id());
    let s = app.service();
    let stats = s.store().ledger_stats();

    // Each path under saturating load, then each under light load.
    // Each path with the process whose CPU time it costs: the product and the gateway
    // share this process, nginx is its own.
    let paths = [
        (format!("http://{product_addr}/"), None, me),
        (format!("http://127.0.0.1:{nginx_port}/"), None, nginx_pid),
        (format!("{gateway}/"), Some(cookie.clone()), me),
    ];
    let mut runs = Vec::new();
    let (mut recorded, mut batches, mut busy) = (0, 0, Duration::ZERO);
    for load in [Load::Saturating, Load::Light] {
        for (url, cookie, pid) in &paths {
            let (url, cookie, pid) = (url.clone(), cookie.clone(), *pid);
            let gateway = cookie.is_some();
            let before = (
                s.store().ledger_size().await?,
                stats.batches(),
                stats.busy(),
            );
            runs.push(
                tokio::task::spawn_blocking(move || {
                    wrk(
                        &url,
                        cookie.as_deref(),
                        seconds,
                        load,
                        (pid, ticks_per_second),
                    )
                })
                .await??,
            );
            // The ledger's work during the saturating gateway run.
            if gateway && matches!(load, Load::Saturating) {
                recorded = s.store().ledger_size().await? - before.0;
                batches = stats.batches() - before.1;
                busy = stats.busy() - before.2;
            }
        }
    }
    // The diagnostic: the gateway without rewriting, saturating.
    let plain = {
        let (url, cookie) = (format!("{gateway}/plain"), cookie.clone());
        tokio::task::spawn_blocking(move || {
            wrk(
                &url,
                Some(&cookie),
                seconds,
                Load::Saturating,
                (me, ticks_per_second),
            )
        })
        .await??
    };
    let [
        direct,
        proxied,
        through,
        light_direct,
        light_proxied,
        light_through,
    ] = <[Run; 6]>::try_from(runs).map_err(|_| anyhow::anyhow!("six runs expected"))?;
    let _ = nginx.kill();
    app.stop().await?;
    // Measured in the same run, with the machine otherwise idle: lol_html's floor for
    // this policy's selectors on this page, and one durable write on the ledger's disk.
    let floor_us = lol_html_floor_us()?;
    let fsync_us = fdatasync_p50_us(&dir.path().join("actas"))?;

    println!("| path | requests/s | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    for (name, r) in [
        ("product direct", &direct),
        ("behind nginx (baseline)", &proxied),
        ("behind the actas gateway", &through),
        (
            "behind the gateway, not rewritten (text/plain, still recorded)",
            &plain,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            r.rps, r.p50_ms, r.p99_ms
        );
    }
    println!();
    println!(
        "gateway / nginx throughput: {:.2}×",
        through.rps / proxied.rps
    );
    println!(
        "gateway p99 added over direct: {:.2} ms (nginx: {:.2} ms)",
        through.p99_ms - direct.p99_ms,
        proxied.p99_ms - direct.p99_ms
    );
    // CPU per request under saturation. The gateway's process also runs the product, so
    // the product's own cost (measured direct) is taken off; nginx's process is nginx alone.
    let product_cpu = direct.cpu_us_per_request(seconds);
    let nginx_cpu = proxied.cpu_us_per_request(seconds);
    let gateway_cpu = through.cpu_us_per_request(seconds) - product_cpu;
    let plain_cpu = plain.cpu_us_per_request(seconds) - product_cpu;
    println!(
        "CPU per request (saturating): the product {product_cpu:.1} µs; nginx {nginx_cpu:.1} µs; the gateway {gateway_cpu:.1} µs ({:.1}× nginx's), or {plain_cpu:.1} µs not rewriting ({:.2}× nginx's throughput)",
        gateway_cpu / nginx_cpu,
        plain.rps / proxied.rps
    );
    // The budget at the target: at half nginx's rate the machine's cores give each request
    // this much CPU; what wrk, the product and the kernel took per request behind nginx
    // is not the proxy's to spend.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let budget = cores * 1e6 / (0.5 * proxied.rps) - proxied.others_us_per_request(seconds);
    println!(
        "at 0.5× nginx's throughput the proxy has about {budget:.0} µs of CPU per request ({cores} cores ÷ half nginx's rate, less {:.1} µs that wrk, the product and the kernel take per request behind nginx); the gateway spends {gateway_cpu:.0} µs, {:.0} µs of it rewriting",
        proxied.others_us_per_request(seconds),
        gateway_cpu - plain_cpu
    );
    println!(
        "the floor (lol_html with the policy's selectors, {floor_us:.1} µs a page, plus nginx's {nginx_cpu:.1} µs of proxying): {:.1} µs; the gateway spends {:.2}× that",
        floor_us + nginx_cpu,
        gateway_cpu / (floor_us + nginx_cpu)
    );
    println!(
        "requests recorded durably in the ledger during the gateway run: {recorded} (about {:.0} per second)",
        recorded as f64 / f64::from(seconds)
    );
    println!();
    println!("Light load (1 wrk thread, 2 connections): the latency a request pays on its own.");
    println!();
    println!("| path | requests/s | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    for (name, r) in [
        ("product direct", &light_direct),
        ("behind nginx (baseline)", &light_proxied),
        ("behind the actas gateway", &light_through),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            r.rps, r.p50_ms, r.p99_ms
        );
    }
    println!();
    println!(
        "light load: gateway p99 added over direct: {:.2} ms (nginx: {:.2} ms)",
        light_through.p99_ms - light_direct.p99_ms,
        light_proxied.p99_ms - light_direct.p99_ms
    );
    let added_p50 = light_through.p50_ms - light_direct.p50_ms;
    println!(
        "one fdatasync on the ledger's disk: {:.3} ms (p50 of 500); the gateway's added p50 at light load, {added_p50:.2} ms, is {:.1}× it",
        fsync_us / 1000.0,
        added_p50 * 1000.0 / fsync_us
    );
    if batches > 0 {
        let per_tx_ms = busy.as_secs_f64() * 1000.0 / batches as f64;
        println!(
            "ledger transactions at saturation: {batches}, {:.1} events each on average, the writer busy {:.0}% of the run ({per_tx_ms:.2} ms per transaction); requests arriving at {:.0}/s during one transaction: {:.1}",
            recorded as f64 / batches as f64,
            busy.as_secs_f64() / f64::from(seconds) * 100.0,
            recorded as f64 / f64::from(seconds),
            recorded as f64 / f64::from(seconds) * per_tx_ms / 1000.0
        );
    }
    Ok(())
}

/// lol_html's least cost for the gateway's selectors on the benchmark's page, in µs per
/// page: the median of 15 rounds of 200 pages.
fn lol_html_floor_us() -> Result<f64> {
    let policy = actas_core::policy::Policy::starter();
    let masker = actas_server::gateway::rewrite::HtmlMasker::new(&policy)?;
    let mut rounds: Vec<f64> = (0..15)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..200 {
                std::hint::black_box(floor::floor_rewrite(&masker, PAGE.as_bytes()));
            }
            start.elapsed().as_secs_f64() * 1e6 / 200.0
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[rounds.len() / 2])
}

/// One durable 4 KiB write on the disk that holds the ledger, in µs: the median of 500
/// `write` + `fdatasync` pairs on a file in the data directory. It is the physical limit
/// under "recorded before forwarded": no request can be answered sooner than one of these.
fn fdatasync_p50_us(data: &std::path::Path) -> Result<f64> {
    use std::io::Write;
    let path = data.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [7u8; 4096];
    let mut times: Vec<f64> = Vec::with_capacity(500);
    for _ in 0..500 {
        let start = std::time::Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    std::fs::remove_file(&path)?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
