//! `actas app-key create | list | revoke`.

use super::Opened;
use crate::cli::{AppKeyCommand, Failure};
use crate::config::DataDir;
use actas_core::staff::Email;

fn email(text: &str) -> Result<Email, Failure> {
    Email::parse(text).map_err(|e| Failure::input(format!("by: {e}")))
}

pub(super) async fn run(data: &DataDir, command: AppKeyCommand) -> Result<(), Failure> {
    match command {
        AppKeyCommand::Create { name, by, webhook } => {
            let by = email(&by)?;
            let opened = Opened::open(data).await?;
            let result = opened
                .service
                .create_app_key(&by, &name, webhook.as_deref())
                .await;
            opened.close().await?;
            let created = result?;
            println!(
                "Created the app key {}. It is shown only now:",
                created.app.name
            );
            println!();
            println!("  {}", created.key.expose());
            println!();
            if let Some(secret) = created.webhook_secret {
                println!(
                    "Session notifications are signed with this secret (HMAC-SHA256), also shown only now:"
                );
                println!();
                println!("  {}", secret.expose());
                println!();
            }
            println!("The product sends the key as `Authorization: Bearer <key>`.");
            Ok(())
        }
        AppKeyCommand::List => {
            let opened = Opened::open(data).await?;
            let keys = opened.service.app_keys().await;
            opened.finish_reading().await;
            let keys = keys?;
            if keys.is_empty() {
                println!(
                    "No app keys yet. Create one with `actas app-key create NAME --by EMAIL`."
                );
            }
            for k in keys {
                println!(
                    "{:<20} created {}  {}  {}",
                    k.app.name,
                    k.created_at,
                    match k.revoked_at {
                        Some(t) => format!("revoked {t}"),
                        None => "active".to_owned(),
                    },
                    k.webhook_url
                        .map(|u| format!("webhook {u}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        AppKeyCommand::Revoke { name, by } => {
            let by = email(&by)?;
            let opened = Opened::open(data).await?;
            let result = opened.service.revoke_app_key(&by, &name).await;
            opened.close().await?;
            let app = result?;
            println!(
                "Revoked the app key {}. The product can no longer use it.",
                app.name
            );
            Ok(())
        }
    }
}
