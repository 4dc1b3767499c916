//! `actas serve`: the real server on port 0, spoken to over real HTTP.

use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn data() -> (tempfile::TempDir, DataDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = DataDir::new(dir.path().join("data"));
    data.init().expect("init");
    (dir, data)
}

async fn start(data: &DataDir) -> Application {
    Application::build(data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
        .await
        .expect("server starts")
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_on_a_random_port() {
    let (_dir, data) = data();
    let app = start(&data).await;
    let base = format!("http://{}", app.console_addr());
    assert_ne!(app.console_addr().port(), 0, "the bound port is reported");
    let client = reqwest::Client::new();

    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["ledger"], "writable");

    let r = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.expect("text");
    for needle in [
        "actas_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        "actas_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1",
        "actas_sessions_active 0",
        "actas_approvals_pending 0",
        "actas_ledger_appends_total 0",
        // One batch and no event: the assertion keys stored at the first start (an idle
        // outbox is only read, so nothing else writes).
        "actas_ledger_batch_size_bucket{le=\"+Inf\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let r = client
        .get(format!("{base}/nowhere"))
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), 404);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn readiness_fails_when_the_ledger_cannot_be_written() {
    let (_dir, data) = data();
    let app = start(&data).await;
    let base = format!("http://{}", app.console_addr());
    app.service()
        .store()
        .close()
        .await
        .expect("stop the writer");
    let r = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(r.status(), 503);
    let r = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200, "alive, just not ready");
    app.stop().await.expect("stop");
}

#[test]
fn the_binary_prints_its_bound_address_and_stops_cleanly_on_sigterm() {
    let (_dir, data) = data();
    let mut child = Command::new(env!("CARGO_BIN_EXE_actas"))
        .arg("--data")
        .arg(data.path())
        .args([
            "serve",
            "--console-addr",
            "127.0.0.1:0",
            "--gateway-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("a line").expect("utf-8");
        if let Some(a) = line.trim().strip_prefix("console and API: http://") {
            break a.to_owned();
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let status = rt.block_on(async {
        reqwest::get(format!("http://{addr}/readyz"))
            .await
            .expect("readyz")
            .status()
    });
    assert_eq!(status, 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().expect("exit").success());
    assert!(rest.iter().any(|l| l == "Stopped cleanly."), "{rest:?}");
}

#[tokio::test]
async fn the_assertion_keys_are_published_and_kept_private_on_disk() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, data) = data();
    let app = start(&data).await;
    let mode = std::fs::metadata(data.path().join("assertion.key"))
        .expect("generated at first start")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let jwks: serde_json::Value = reqwest::get(format!(
        "http://{}/.well-known/jwks.json",
        app.console_addr()
    ))
    .await
    .expect("jwks")
    .json()
    .await
    .expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert_eq!(key["kid"].as_str().map(str::len), Some(16));
    assert!(
        jwks.to_string().find("\"d\"").is_none(),
        "no private part is published"
    );
    app.stop().await.expect("stop");
}

/// Runs `actas demo` on port 0 with `data` (or a temporary directory), checks the portal
/// answers, stops it with SIGTERM and returns everything it printed.
fn run_demo(data: Option<&std::path::Path>) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_actas"));
    if let Some(d) = data {
        cmd.arg("--data").arg(d);
    }
    let mut child = cmd
        .args([
            "demo",
            "--console-addr",
            "127.0.0.1:0",
            "--gateway-addr",
            "127.0.0.1:0",
            "--portal-addr",
            "127.0.0.1:0",
        ])
        .env_remove("ACTAS_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let portal = loop {
        let line = lines.next().expect("a line").expect("utf-8");
        seen.push(line.clone());
        if let Some(rest) = line.trim().strip_prefix("Portal    http://") {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    for line in lines.by_ref() {
        let line = line.expect("utf-8");
        seen.push(line.clone());
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let status = rt.block_on(async {
        reqwest::get(format!("http://{portal}/sign-in"))
            .await
            .expect("portal")
            .status()
    });
    assert_eq!(status, 200, "the portal answers");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    seen.extend(lines.map_while(Result::ok));
    assert!(child.wait().expect("exit").success(), "{seen:?}");
    assert!(seen.iter().any(|l| l == "Stopped cleanly."), "{seen:?}");
    seen
}

#[test]
fn the_demo_command_prints_where_and_who_and_keeps_data_only_when_asked() {
    let said = run_demo(None);
    let text = said.join("\n");
    for expected in [
        "Console   http://127.0.0.1:",
        "Gateway   http://127.0.0.1:",
        "dana@northwind.example",
        "ola@northwind.example",
        "not on the allow-list",
        "acme     / acme-demo",
        "(temporary; removed when you stop",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    let temp = said
        .iter()
        .find_map(|l| l.strip_prefix("Data: "))
        .and_then(|l| l.split(" (").next())
        .expect("the data directory is named");
    assert!(
        !std::path::Path::new(temp).exists(),
        "the temporary data is removed at stop"
    );

    // With --data it is kept, and a second start reuses it.
    let dir = tempfile::tempdir().expect("tmp");
    let kept = dir.path().join("demo");
    run_demo(Some(&kept));
    assert!(kept.join("actas.toml").exists(), "the data is kept");
    let again = run_demo(Some(&kept)).join("\n");
    assert!(again.contains("(kept)"), "{again}");

    // A real installation's directory is never taken over by the demo.
    let (_real, data) = data();
    let out = Command::new(env!("CARGO_BIN_EXE_actas"))
        .arg("--data")
        .arg(data.path())
        .args([
            "demo",
            "--console-addr",
            "127.0.0.1:0",
            "--gateway-addr",
            "127.0.0.1:0",
            "--portal-addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a demo's"));
}
