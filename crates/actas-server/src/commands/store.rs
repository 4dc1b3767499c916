//! `actas store copy`: moving an installation from its SQLite file to PostgreSQL, the
//! ledger verified before and after.

use crate::cli::{Failure, StoreCommand};
use crate::config::DataDir;
use actas_core::tree_head::{LedgerKey, PublicKey};
use actas_store::{Location, OpenOptions};

pub(crate) async fn run(data: &DataDir, command: StoreCommand) -> Result<(), Failure> {
    match command {
        StoreCommand::Copy { from, to } => copy(data, &from, &to).await,
    }
}

/// Verifies the ledger at `location` against `public` without signing anything, and
/// says how many events it holds and the newest head's size.
async fn verified(
    location: &Location,
    key: &LedgerKey,
    public: &PublicKey,
) -> Result<(u64, u64), Failure> {
    let key = LedgerKey::from_bytes(&key.to_bytes()).map_err(Failure::input)?;
    let store = actas_store::open(
        location,
        key,
        OpenOptions {
            migrate: false,
            ..OpenOptions::default()
        },
    )
    .await?;
    let report = store.verify(public, &mut |_, _| {}).await;
    let heads = store.tree_heads().await;
    store.close_reads().await;
    match report? {
        Ok(report) => Ok((report.events, heads?.last().map_or(0, |h| h.head.size))),
        Err(problem) => Err(Failure::check(format!(
            "the ledger in {location} does not verify: {problem}; nothing was copied past this point"
        ))),
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
    let public = loaded.key.public();
    let (events, head) = verified(&from, &loaded.key, &public).await?;
    println!("The ledger in {from} verifies: {events} events, newest signed head over {head}.");
    let copied = actas_store::copy::copy(path, url).await?;
    let rows: u64 = copied.tables.iter().map(|(_, n)| n).sum();
    println!(
        "Copied {} in {} tables to {to}.",
        actas_core::words::count(rows, "row", "rows"),
        copied.tables.len()
    );
    let (copied_events, copied_head) = verified(&to, &loaded.key, &public).await?;
    if (copied_events, copied_head) != (events, head) {
        return Err(Failure::check(format!(
            "the copy holds {copied_events} events (newest head over {copied_head}), not the {events} (over {head}) of the original: don't use it"
        )));
    }
    println!(
        "The ledger in {to} verifies too: the same {events} events under the same signed heads."
    );
    println!(
        "Next: set [store] url (or ACTAS_DATABASE_URL) to the PostgreSQL database on every instance, then start them. Keep {} as the backup of the move.",
        path.display()
    );
    Ok(())
}
