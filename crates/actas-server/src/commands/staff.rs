//! `actas staff …` and `actas allow …`.

use super::{Opened, when};
use crate::cli::{AllowCommand, Failure, StaffCommand};
use crate::config::DataDir;
use crate::password::Password;
use crate::service::AllowChange;
use actas_core::scope::Risk;
use actas_core::staff::{DisplayName, Email, Role};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};

fn email(text: &str, field: &str) -> Result<Email, Failure> {
    Email::parse(text).map_err(|e| Failure::input(format!("{field}: {e}")))
}

fn read_password() -> Result<Password, Failure> {
    let stdin = std::io::stdin();
    let text = if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password (at least 12 characters): ")
            .map_err(|e| Failure::input(format!("could not read the password: {e}")))?;
        let again = rpassword::prompt_password("The same password again: ")
            .map_err(|e| Failure::input(format!("could not read the password: {e}")))?;
        if first != again {
            return Err(Failure::input(
                "the two passwords differ; nothing was changed",
            ));
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| {
            Failure::input(format!(
                "could not read the password from standard input: {e}"
            ))
        })?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Password::new(text).map_err(|e| Failure::input(format!("password: {e}")))
}

pub(super) async fn run(data: &DataDir, command: StaffCommand) -> Result<(), Failure> {
    match command {
        StaffCommand::Add {
            email: e,
            name,
            role,
            no_password,
            by,
        } => {
            let email = email(&e, "email")?;
            let name =
                DisplayName::parse(&name).map_err(|e| Failure::input(format!("name: {e}")))?;
            let role: Role = role
                .parse()
                .map_err(|e| Failure::input(format!("role: {e}")))?;
            let by = by.map(|b| email_of(&b)).transpose()?;
            let password = if no_password {
                None
            } else {
                Some(read_password()?)
            };
            let opened = Opened::open(data).await?;
            let result = match password {
                Some(password) => {
                    opened
                        .service
                        .add_staff(email, name, role, password, by.as_ref())
                        .await
                }
                None => {
                    opened
                        .service
                        .add_staff_without_password(email, name, role, by.as_ref())
                        .await
                }
            };
            opened.close().await?;
            let staff = result?;
            println!(
                "Added {} ({}) as {} {}.",
                staff.name,
                staff.email,
                article(role),
                role
            );
            Ok(())
        }
        StaffCommand::List => {
            let opened = Opened::open(data).await?;
            let staff = opened.store.list_staff().await?;
            let allow: HashMap<_, _> = opened
                .store
                .allow_list()
                .await?
                .into_iter()
                .filter(|a| a.revoked.is_none())
                .map(|a| (a.staff.id, a.max_risk))
                .collect();
            opened.finish_reading().await;
            if staff.is_empty() {
                println!(
                    "No staff yet. Add one with `actas staff add EMAIL --name NAME --role director`."
                );
                return Ok(());
            }
            println!(
                "{:<32} {:<24} {:<9} {:<12} allow-list",
                "email", "name", "role", "status"
            );
            for s in staff {
                let level = allow
                    .get(&s.id)
                    .map_or("—".to_owned(), |r| format!("up to {r} risk"));
                let status = if s.active { "active" } else { "deactivated" };
                println!(
                    "{:<32} {:<24} {:<9} {:<12} {}",
                    s.email, s.name, s.role, status, level
                );
            }
            Ok(())
        }
        StaffCommand::Disable { email: e, by } => {
            let email = email(&e, "email")?;
            let by = by.map(|b| email_of(&b)).transpose()?;
            let opened = Opened::open(data).await?;
            let result = opened.service.disable_staff(&email, by.as_ref()).await;
            opened.close().await?;
            let staff = result?;
            println!(
                "Deactivated {} ({}); any active session of theirs has ended.",
                staff.name, staff.email
            );
            Ok(())
        }
    }
}

fn email_of(text: &str) -> Result<Email, Failure> {
    email(text, "by")
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Agent | Role::Auditor => "an",
        Role::Lead | Role::Director => "a",
    }
}

pub(super) async fn run_allow(data: &DataDir, command: AllowCommand) -> Result<(), Failure> {
    match command {
        AllowCommand::Grant {
            email: e,
            max_risk,
            by,
            reason,
        } => {
            let email = email(&e, "email")?;
            let by = email_of(&by)?;
            let risk: Risk = max_risk
                .parse()
                .map_err(|e| Failure::input(format!("max-risk: {e}")))?;
            let opened = Opened::open(data).await?;
            let result = opened
                .service
                .change_allow_list(&email, AllowChange::Grant(risk), &by, &reason)
                .await;
            opened.close().await?;
            result?;
            println!("{email} may now act as customers up to {risk} risk (granted by {by}).");
            Ok(())
        }
        AllowCommand::Revoke {
            email: e,
            by,
            reason,
        } => {
            let email = email(&e, "email")?;
            let by = email_of(&by)?;
            let opened = Opened::open(data).await?;
            let result = opened
                .service
                .change_allow_list(&email, AllowChange::Revoke, &by, &reason)
                .await;
            opened.close().await?;
            result?;
            println!("{email} is no longer on the allow-list (removed by {by}).");
            Ok(())
        }
        AllowCommand::List => {
            let opened = Opened::open(data).await?;
            let entries = opened.store.allow_list().await?;
            opened.finish_reading().await;
            if entries.is_empty() {
                println!("The allow-list is empty: nobody can act as a customer yet.");
                return Ok(());
            }
            for a in entries {
                match &a.revoked {
                    None => println!(
                        "{} ({}): up to {} risk — granted by {} on {}: “{}”",
                        a.staff.name,
                        a.staff.email,
                        a.max_risk,
                        a.granted_by.name,
                        when(a.granted_at),
                        a.reason
                    ),
                    Some((by, at, why)) => println!(
                        "{} ({}): revoked by {} on {}: “{}” (was up to {} risk)",
                        a.staff.name,
                        a.staff.email,
                        by.name,
                        when(*at),
                        why,
                        a.max_risk
                    ),
                }
            }
            Ok(())
        }
    }
}
