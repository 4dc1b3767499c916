//! The CLI commands. Each parses its arguments into domain types, calls the service layer,
//! and prints plain sentences. Commands that append close the store at the end, which
//! signs a tree head over everything they wrote.

mod apps;
mod audit;
mod demo;
mod policy;
mod staff;
mod store;

use crate::cli::{Cli, Command, Failure};
use crate::config::{DataDir, Loaded};
use crate::service::Service;
use actas_store::Store;
use std::sync::Arc;

/// An opened data directory: its settings and a running store.
pub(crate) struct Opened {
    pub(crate) loaded: Loaded,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) service: Service,
}

impl Opened {
    pub(crate) async fn open(data: &DataDir) -> Result<Self, Failure> {
        let loaded = data.load()?;
        let key = actas_core::tree_head::LedgerKey::from_bytes(&loaded.key.to_bytes())
            .map_err(Failure::input)?;
        let store = actas_store::open(&loaded.location, key, loaded.config.store_options()).await?;
        let service = Service::new(store.clone(), Arc::new(loaded.policy.clone()));
        Ok(Self {
            loaded,
            store,
            service,
        })
    }

    /// Finishes a command that only read: nothing is signed, so reading never vouches
    /// for events that were not checked.
    pub(crate) async fn finish_reading(self) {
        self.store.close_reads().await;
    }

    /// Closes the store: drains the writer and signs a final head.
    pub(crate) async fn close(self) -> Result<(), Failure> {
        self.store.close().await?;
        Ok(())
    }
}

/// Runs one command.
pub async fn dispatch(cli: Cli) -> Result<(), Failure> {
    if let Command::Demo {
        console_addr,
        gateway_addr,
        portal_addr,
    } = cli.command
    {
        return demo::run(crate::demo::DemoSettings {
            data: cli.data,
            console_addr,
            gateway_addr,
            portal_addr,
            policy: None,
            gateway_url: None,
            database_url: None,
        })
        .await;
    }
    let data = DataDir::new(
        cli.data
            .unwrap_or_else(|| std::path::PathBuf::from("./actas-data")),
    );
    match cli.command {
        Command::Demo { .. } => Ok(()),
        Command::Init => init(&data).await,
        Command::Migrate => migrate(&data).await,
        Command::Store { command } => store::run(&data, command).await,
        Command::Serve {
            console_addr,
            gateway_addr,
        } => serve(&data, console_addr, gateway_addr).await,
        Command::Staff { command } => staff::run(&data, command).await,
        Command::Allow { command } => staff::run_allow(&data, command).await,
        Command::AppKey { command } => apps::run(&data, command).await,
        Command::Account { command } => account(&data, command).await,
        Command::Audit { command } => audit::run(&data, command).await,
        Command::Policy { command } => policy::run(&data, command).await,
    }
}

/// `actas migrate`: the migrations the database lacks, applied and named.
async fn migrate(data: &DataDir) -> Result<(), Failure> {
    let loaded = data.load()?;
    let applied = actas_store::migrate(&loaded.location).await?;
    if applied.is_empty() {
        println!("Nothing to migrate: {} is up to date.", loaded.location);
    } else {
        println!(
            "Applied {} to {}:",
            actas_core::words::count(applied.len() as u64, "migration", "migrations"),
            loaded.location
        );
        for m in applied {
            println!("  {m}");
        }
    }
    Ok(())
}

async fn init(data: &DataDir) -> Result<(), Failure> {
    let key = data.init()?;
    // Create the database now, so a broken setup shows at once rather than later.
    let opened = Opened::open(data).await?;
    opened.close().await?;
    println!(
        "Created the actas data directory at {}.",
        data.path().display()
    );
    println!(
        "  configuration: {}",
        data.path().join(crate::config::CONFIG_FILE).display()
    );
    println!(
        "  policy:        {}",
        data.path().join("policy.toml").display()
    );
    println!(
        "  signing key:   {} (readable only by you)",
        data.path().join(crate::config::KEY_FILE).display()
    );
    println!(
        "Ledger public key (for `actas audit verify --key`): {}",
        key.public().to_base64()
    );
    println!("Next: add a director with `actas staff add EMAIL --name NAME --role director`.");
    Ok(())
}

async fn serve(
    data: &DataDir,
    console_addr: Option<std::net::SocketAddr>,
    gateway_addr: Option<std::net::SocketAddr>,
) -> Result<(), Failure> {
    let config = data.load()?.config;
    let settings = crate::app::ServeSettings {
        console_addr: console_addr.unwrap_or(config.server.console_addr),
        gateway_addr: Some(gateway_addr.unwrap_or(config.server.gateway_addr)),
        console_url: std::env::var("ACTAS_CONSOLE_URL")
            .ok()
            .or(config.server.console_url),
        delivery: crate::notify::DeliveryTiming::default(),
        gateway_url: std::env::var("ACTAS_GATEWAY_URL")
            .ok()
            .or(config.server.gateway_url),
    };
    let app = crate::app::Application::build(data, settings)
        .await
        .map_err(Failure::input)?;
    println!("actas is running.");
    println!("  console and API: http://{}", app.console_addr());
    if let Some(g) = app.gateway_addr() {
        println!(
            "  gateway:         http://{g} (to the product at {})",
            config.gateway.upstream
        );
    }
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    println!("Stopping: finishing requests and signing the ledger.");
    app.stop().await?;
    println!("Stopped cleanly.");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn account(data: &DataDir, command: crate::cli::AccountCommand) -> Result<(), Failure> {
    use crate::cli::AccountCommand;
    match command {
        AccountCommand::Add { id, name, flags } => {
            let opened = Opened::open(data).await?;
            let result = opened
                .service
                .put_account(&id, &name, &flags, actas_core::event::Actor::System)
                .await;
            opened.close().await?;
            let a = result?;
            let flags: Vec<&str> = a.flags.iter().map(|f| f.as_str()).collect();
            println!(
                "Saved the account {} ({}){}.",
                a.name,
                a.id,
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(" with flags: {}", flags.join(", "))
                }
            );
            Ok(())
        }
        AccountCommand::List => {
            let opened = Opened::open(data).await?;
            let accounts = opened.store.list_accounts().await?;
            opened.finish_reading().await;
            if accounts.is_empty() {
                println!("No accounts yet. Add one with `actas account add ID --name NAME`.");
            }
            for a in accounts {
                let flags: Vec<&str> = a.flags.iter().map(|f| f.as_str()).collect();
                println!(
                    "{:<24} {:<28} consent: {:<14} {}",
                    a.id,
                    a.name,
                    a.consent,
                    flags.join(", ")
                );
            }
            Ok(())
        }
    }
}

/// Formats a moment as `2026-11-23 10:15:00` (UTC).
pub(crate) fn when(t: actas_core::Timestamp) -> String {
    let s = t.to_rfc3339();
    format!("{} {}", &s[..10], &s[11..19])
}
