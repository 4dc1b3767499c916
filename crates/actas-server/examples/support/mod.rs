//! What the gateway benchmarks share: an actas server with its gateway pointed at a
//! product, one agent and one account, and a live session already entered.

use actas_core::Timestamp;
use actas_core::event::Actor;
use actas_core::scope::Risk;
use actas_core::staff::{DisplayName, Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::config::DataDir;
use actas_server::password::Password;
use actas_server::service::{AllowChange, RequestInput};
use anyhow::{Context, Result};
use std::path::Path;

/// A running server and a gateway session in it.
pub(crate) struct GatewaySession {
    /// The server (stop it at the end).
    pub(crate) app: Application,
    /// The gateway's base URL.
    pub(crate) gateway: String,
    /// The `name=value` gateway cookie.
    pub(crate) cookie: String,
}

/// Starts actas in `data` with the gateway in front of `upstream`, its store at `store`
/// (the data directory's SQLite file when `None`), and enters a session.
pub(crate) async fn gateway_session(
    data: &Path,
    upstream: &str,
    store: Option<&str>,
) -> Result<GatewaySession> {
    let data = DataDir::new(data.to_path_buf());
    data.init()?;
    let config = data.path().join("actas.toml");
    let mut text = std::fs::read_to_string(&config)?.replace(
        "upstream = \"http://127.0.0.1:8082\"",
        &format!("upstream = \"{upstream}\""),
    );
    if let Some(url) = store {
        text = text.replacen("[store]\n", &format!("[store]\nurl = \"{url}\"\n"), 1);
    }
    std::fs::write(&config, text)?;
    // The load benchmark's diagnostic page is plain text, which the gateway passes only
    // where the policy says it may.
    let policy = data.path().join("policy.toml");
    let mut text = std::fs::read_to_string(&policy)?;
    text.push_str(
        "\n[[gateway.pass_through]]\nroute = \"GET /plain\"\ncontent_types = [\"text/plain\"]\n",
    );
    // `ACTAS_BENCH_KEEP_PAGES=0` turns page copies off, to measure what they cost with
    // the same binary.
    if std::env::var("ACTAS_BENCH_KEEP_PAGES").is_ok_and(|v| v == "0") {
        text = text.replacen("keep_days = 90", "keep_days = 0", 1);
    }
    std::fs::write(&policy, text)?;
    let settings = ServeSettings {
        gateway_addr: Some(([127, 0, 0, 1], 0).into()),
        ..ServeSettings::on(([127, 0, 0, 1], 0).into())
    };
    let app = Application::build(&data, settings).await?;
    let s = app.service();
    let pw = || Password::new("a-long-password".into());
    s.add_staff(
        Email::parse("dana@example.com")?,
        DisplayName::parse("Dana Park")?,
        Role::Director,
        pw()?,
        None,
    )
    .await?;
    s.add_staff(
        Email::parse("sarah@example.com")?,
        DisplayName::parse("Sarah Lee")?,
        Role::Agent,
        pw()?,
        None,
    )
    .await?;
    s.change_allow_list(
        &Email::parse("sarah@example.com")?,
        AllowChange::Grant(Risk::Low),
        &Email::parse("dana@example.com")?,
        "Load benchmark",
    )
    .await?;
    s.put_account("acme", "Acme Co", &[], Actor::System).await?;
    let sarah = s
        .store()
        .staff_by_email(&Email::parse("sarah@example.com")?)
        .await?
        .context("staff")?;
    let input = RequestInput {
        account: "acme".into(),
        ticket: "#1".into(),
        reason: "Load benchmark of the gateway pipeline".into(),
        capabilities: vec![],
        minutes: Some(30),
        mode: None,
        for_session: None,
    };
    let request = s.create_request(&sarah, input).await?;
    let (_, token) = s
        .start_session(&sarah, request.id, Timestamp::now())
        .await?;
    let gateway = format!("http://{}", app.gateway_addr().context("gateway")?);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let entered = client
        .get(format!("{gateway}/__actas/enter?token={}", token.expose()))
        .send()
        .await?;
    let cookie = entered
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no gateway cookie")?
        .to_owned();
    Ok(GatewaySession {
        app,
        gateway,
        cookie,
    })
}
