//! Command-line arguments and the dispatcher. Exit codes: 0 done, 1 the check failed
//! (tampering found, policy invalid), 2 bad input or unusable setup.

use crate::commands;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// actas: support staff act as a customer, on the record.
#[derive(Debug, Parser)]
#[command(name = "actas", version, about, long_about = None)]
pub struct Cli {
    /// The data directory (configuration, policy, signing key, database); `./actas-data`
    /// when not given. For `demo`, giving it keeps the demo's data there.
    #[arg(long, global = true, env = "ACTAS_DATA")]
    pub data: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory: configuration, starter policy and a new signing key.
    Init,
    /// Run the whole product on its own to try it: actas (console and gateway) and the
    /// Northwind Lending demo portal, with seeded staff and customers.
    Demo {
        /// Console and API address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        console_addr: std::net::SocketAddr,
        /// Gateway address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        gateway_addr: std::net::SocketAddr,
        /// Demo portal address.
        #[arg(long, default_value = "127.0.0.1:8082")]
        portal_addr: std::net::SocketAddr,
    },
    /// Apply the database migrations this version knows and the database lacks, and say
    /// which (needed before `serve` when `[store] migrate_on_start = false`).
    Migrate,
    /// Move the installation's database (see `actas store copy --help`).
    Store {
        /// What to do with the database.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Run the server: the console and JSON API, and the gateway.
    Serve {
        /// Console and API address (port 0 picks a free port); default from actas.toml.
        #[arg(long, env = "ACTAS_CONSOLE_ADDR")]
        console_addr: Option<std::net::SocketAddr>,
        /// Gateway address (port 0 picks a free port); default from actas.toml.
        #[arg(long, env = "ACTAS_GATEWAY_ADDR")]
        gateway_addr: Option<std::net::SocketAddr>,
    },
    /// Add, list and deactivate staff.
    Staff {
        /// What to do with staff.
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Add and list customer accounts (small set-ups; products sync them through the API).
    Account {
        /// What to do with accounts.
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Create, list and revoke the product's app keys (for the customer-side API).
    #[command(name = "app-key")]
    AppKey {
        /// What to do with app keys.
        #[command(subcommand)]
        command: AppKeyCommand,
    },
    /// Keep the allow-list of who may act as customers.
    Allow {
        /// What to do with the allow-list.
        #[command(subcommand)]
        command: AllowCommand,
    },
    /// Read and verify the audit ledger.
    Audit {
        /// What to do with the ledger.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check a policy file.
    Policy {
        /// What to do with policies.
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// Staff commands.
#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff member. The password is read from standard input (or asked for).
    Add {
        /// Their email address, which names them everywhere.
        email: String,
        /// Their display name, e.g. "Sarah Lee".
        #[arg(long)]
        name: String,
        /// agent, lead, director or auditor.
        #[arg(long)]
        role: String,
        /// They sign in only through the identity provider: no actas password is asked
        /// for or kept.
        #[arg(long)]
        no_password: bool,
        /// The director adding them (omit when setting up actas).
        #[arg(long)]
        by: Option<String>,
    },
    /// List staff with their role and allow-list level.
    List,
    /// Deactivate a staff member; their active session ends at once.
    Disable {
        /// Their email address.
        email: String,
        /// The director doing it.
        #[arg(long)]
        by: Option<String>,
    },
}

/// Account commands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account, or update its name and flags.
    Add {
        /// The product's id for the account, e.g. acme-co.
        id: String,
        /// Its display name, e.g. "Acme Co".
        #[arg(long)]
        name: String,
        /// A flag such as sensitive, billing_owner or workspace_admin (repeat for more).
        #[arg(long = "flag")]
        flags: Vec<String>,
    },
    /// List accounts with their flags and consent setting.
    List,
}

/// App key commands.
#[derive(Debug, Subcommand)]
pub enum AppKeyCommand {
    /// Create an app key; it is printed once and only its hash is kept.
    Create {
        /// A short name for the app, e.g. portal.
        name: String,
        /// The director creating it.
        #[arg(long)]
        by: String,
        /// Where to send signed notifications when a session on an account starts and ends.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// List app keys.
    List,
    /// Revoke an app key; from then on the product gets 401 with it.
    Revoke {
        /// Its name.
        name: String,
        /// The director revoking it.
        #[arg(long)]
        by: String,
    },
}

/// Allow-list commands.
#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Allow a staff member to act as customers, up to a risk level.
    Grant {
        /// Their email address.
        email: String,
        /// low, medium or high.
        #[arg(long)]
        max_risk: String,
        /// The director granting it.
        #[arg(long)]
        by: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Remove a staff member from the allow-list.
    Revoke {
        /// Their email address.
        email: String,
        /// The director revoking it.
        #[arg(long)]
        by: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Show the allow-list, with who granted each entry and why.
    List,
}

/// Database commands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy everything from a SQLite file into an empty PostgreSQL database, verifying the
    /// ledger on both sides against this data directory's key. Stop every `actas serve`
    /// using the file first; then point `[store] url` (or ACTAS_DATABASE_URL) at the
    /// PostgreSQL database.
    Copy {
        /// The SQLite file, as `sqlite://path` (relative to the data directory).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database, as `postgres://user:password@host:port/database`.
        #[arg(long)]
        to: String,
    },
}

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print ledger events in plain language, oldest first.
    Log {
        /// Only this account's events.
        #[arg(long)]
        account: Option<String>,
        /// Only this session's events.
        #[arg(long)]
        session: Option<String>,
        /// Only this kind of event, e.g. session.started.
        #[arg(long)]
        kind: Option<String>,
        /// From this date or time (2026-11-23 or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Before this date or time.
        #[arg(long)]
        until: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Check every event against the hash chain, the Merkle tree and the signed heads.
    Verify {
        /// Check against this public key (base64url, which may start with `-`) instead of
        /// the one in the data directory.
        #[arg(long, allow_hyphen_values = true)]
        key: Option<String>,
    },
    /// Replace the key that signs the ledger. Stop every actas instance first; then copy
    /// the new `ledger.key` to each of them. The replacement is recorded in the ledger,
    /// endorsed by the new key, and the old key signs a last head over it: extracts and
    /// heads signed with either key keep verifying.
    #[command(name = "rotate-key")]
    RotateKey,
    /// Check an account's audit extract offline: its events against the proof, the
    /// signed tree head and the signed account checkpoint, so that every event is exactly
    /// as recorded and none is missing. Needs nothing but the file (and, to know who made
    /// it, the key).
    #[command(name = "verify-extract")]
    VerifyExtract {
        /// The extract (JSON, as downloaded).
        file: PathBuf,
        /// The instance's public key (base64url), as its operator publishes it at
        /// `/.well-known/actas-ledger-keys`. Without it the key inside the extract is
        /// used, which shows the extract is consistent but not who made it.
        #[arg(long, allow_hyphen_values = true)]
        key: Option<String>,
        /// An older extract of the same account: check that this one extends it (its
        /// events unchanged, the ledger grown from it). Download the newer one with
        /// `?since=` the older one's tree size.
        #[arg(long)]
        since: Option<PathBuf>,
    },
    /// Check a signed action's receipt offline (the `Actas-Receipt` a product got with a
    /// change support made and confirmed): that the ledger key signed it, and what it
    /// records.
    #[command(name = "verify-receipt")]
    VerifyReceipt {
        /// The receipt, as text (a file holding the header's value).
        file: PathBuf,
        /// A ledger public key (base64url) to check it with; give it more than once for
        /// several.
        #[arg(long, allow_hyphen_values = true)]
        key: Vec<String>,
        /// The ledger's keys as published at `/.well-known/actas-ledger-keys` (JSON).
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file and summarise it.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// List the JSON fields the gateway hid because no masking rule classifies them, most
    /// often seen first, so the team can add rules for them.
    Unclassified,
}

/// A command's failure, with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// 1: the check failed; 2: bad input or setup.
    pub code: u8,
    /// What to tell the person.
    pub message: String,
}

impl Failure {
    /// Bad input or setup (exit 2).
    pub fn input(message: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }

    /// The check failed (exit 1).
    pub fn check(message: impl std::fmt::Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<crate::service::ServiceError> for Failure {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError as E;
        match &e {
            E::Unavailable(_) | E::Unexpected(_) => {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(&format!(": {s}"));
                    source = s.source();
                }
                Failure {
                    code: 1,
                    message: msg,
                }
            }
            _ => Failure::input(e),
        }
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::input(e)
    }
}

impl From<actas_store::StoreError> for Failure {
    fn from(e: actas_store::StoreError) -> Self {
        match e {
            // A setup to fix, said in plain words (exit 2).
            actas_store::StoreError::Schema(why) => Failure::input(why),
            e => crate::service::ServiceError::from(e).into(),
        }
    }
}

/// Runs a parsed command line and returns the process's exit code.
pub fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACTAS_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::Parser;

    #[test]
    fn a_key_that_starts_with_a_hyphen_is_a_value_not_a_flag() {
        // A base64url Ed25519 key starts with `-` one time in 64.
        let cases: [&[&str]; 3] = [
            &[
                "actas",
                "audit",
                "verify-extract",
                "x.json",
                "--key",
                "-3abc",
            ],
            &[
                "actas",
                "audit",
                "verify-receipt",
                "x.jws",
                "--key",
                "-3abc",
            ],
            &["actas", "audit", "verify", "--key", "-3abc"],
        ];
        for args in cases {
            let parsed = Cli::try_parse_from(args);
            assert!(parsed.is_ok(), "{args:?}: {:?}", parsed.err());
        }
    }
}
