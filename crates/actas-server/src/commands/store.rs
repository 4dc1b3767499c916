//! `actas store copy`: moving an installation from its SQLite file to PostgreSQL, the
//! ledger verified before and after (see `actas_store::copy`).

use crate::cli::{Failure, StoreCommand};
use crate::config::DataDir;
use actas_store::Location;

pub(crate) async fn run(data: &DataDir, command: StoreCommand) -> Result<(), Failure> {
    match command {
        StoreCommand::Copy { from, to } => copy(data, &from, &to).await,
    }
}

async fn copy(data: &DataDir, from: &str, to: &str) -> Result<(), Failure> {
    let loaded = data.load()?;
    let from =
        Location::parse(from, data.path()).map_err(|e| Failure::input(format!("--from: {e}")))?;
    let to = Location::parse(to, data.path()).map_err(|e| Failure::input(format!("--to: {e}")))?;
    let (Location::Sqlite(path), Location::Postgres(url)) = (&from, &to) else {
        return Err(Failure::input(
            "actas store copy moves a SQLite file into PostgreSQL: give --from sqlite://… and --to postgres://…",
        ));
    };
    let copied = actas_store::copy::copy(path, url, &loaded.key.public()).await?;
    let rows: u64 = copied.tables.iter().map(|(_, n)| n).sum();
    println!(
        "The ledger in {from} verifies: {} events, newest signed head over {}.",
        copied.events, copied.head
    );
    println!(
        "Copied {} in {} tables to {to}.",
        actas_core::words::count(rows, "row", "rows"),
        copied.tables.len()
    );
    println!(
        "The ledger in {to} verifies too: the same {} events under the same signed heads.",
        copied.events
    );
    println!(
        "Next: set [store] url (or ACTAS_DATABASE_URL) to the PostgreSQL database on every instance, then start them. Keep {} as the backup of the move.",
        path.display()
    );
    Ok(())
}
