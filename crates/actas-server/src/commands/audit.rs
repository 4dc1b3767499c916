//! `actas audit log` and `actas audit verify`.

use super::{Opened, when};
use crate::cli::{AuditCommand, Failure};
use crate::config::DataDir;
use actas_core::Timestamp;
use actas_core::ids::{AccountId, SessionId};
use actas_core::tree_head::PublicKey;
use actas_store::EventFilter;

fn time_arg(text: Option<String>, field: &str) -> Result<Option<Timestamp>, Failure> {
    text.map(|t| {
        Timestamp::parse(&t).ok_or_else(|| {
            Failure::input(format!(
                "{field}: {t:?} is not a date; write 2026-11-23 or 2026-11-23T10:15:00Z"
            ))
        })
    })
    .transpose()
}

pub(super) async fn run(data: &DataDir, command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::RotateKey => rotate_key(data).await,
        AuditCommand::VerifyExtract { file, key, since } => {
            verify_extract(&file, key.as_deref(), since.as_deref())
        }
        AuditCommand::VerifyReceipt { file, key, keys } => {
            verify_receipt(&file, &key, keys.as_deref())
        }
        AuditCommand::Log {
            account,
            session,
            kind,
            since,
            until,
            limit,
        } => {
            let filter = EventFilter {
                account: account
                    .map(|a| {
                        AccountId::parse(&a).map_err(|e| Failure::input(format!("account: {e}")))
                    })
                    .transpose()?,
                session: session
                    .map(|s| {
                        SessionId::parse(&s).map_err(|e| Failure::input(format!("session: {e}")))
                    })
                    .transpose()?,
                kind,
                since: time_arg(since, "since")?,
                until: time_arg(until, "until")?,
            };
            let opened = Opened::open(data).await?;
            let mut after = 0;
            let mut printed = 0u32;
            while printed < limit {
                let page = opened
                    .store
                    .events(&filter, after, (limit - printed).min(1000))
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.body.seq;
                for e in &page {
                    println!(
                        "#{:<6} {}  {}",
                        e.body.seq,
                        when(e.body.time),
                        e.body.summary
                    );
                }
                printed += page.len() as u32;
            }
            opened.finish_reading().await;
            if printed == 0 {
                println!("No events match.");
            }
            Ok(())
        }
        AuditCommand::Verify { key } => {
            let opened = Opened::open(data).await?;
            let key = match key {
                Some(k) => PublicKey::parse(&k).map_err(|e| Failure::input(format!("key: {e}")))?,
                None => opened.loaded.key.public(),
            };
            // Nothing is signed here: verification reads the ledger as found.
            let total = opened.store.ledger_size().await?;
            let bar = (total >= 10_000).then(|| {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} events checked ({eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar
            });
            let result = opened
                .store
                .verify(&key, &mut |done, _| {
                    if let Some(b) = &bar {
                        b.set_position(done);
                    }
                })
                .await;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let heads = opened.store.tree_heads().await;
            opened.finish_reading().await;
            match result? {
                Ok(report) => {
                    println!("{report}.");
                    if let Some(h) = heads?.last() {
                        println!(
                            "Newest signed head: events #1–#{} at {}, root {}, key {}.",
                            h.head.size,
                            when(h.head.time),
                            hex_short(&h.head.root),
                            h.key_id
                        );
                    }
                    Ok(())
                }
                Err(problem) => {
                    let first = problem
                        .first_bad_seq()
                        .map(|s| format!(" First bad event: #{s}."))
                        .unwrap_or_default();
                    Err(Failure::check(format!(
                        "the ledger does not verify: {problem}.{first}"
                    )))
                }
            }
        }
    }
}

fn hex_short(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// `actas audit verify-receipt FILE (--key PUB… | --keys KEYS.json)`: offline.
fn verify_receipt(
    file: &std::path::Path,
    key: &[String],
    keys: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let read = |file: &std::path::Path| {
        std::fs::read_to_string(file)
            .map_err(|e| Failure::input(format!("{}: {e}", file.display())))
    };
    let mut trusted: Vec<actas_core::checkpoint::TrustedKey> = Vec::new();
    for k in key {
        trusted.push(
            PublicKey::parse(k)
                .map_err(|e| Failure::input(format!("key: {e}")))?
                .into(),
        );
    }
    if let Some(path) = keys {
        #[derive(serde::Deserialize)]
        struct Published {
            keys: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            key: String,
            /// A replaced key signs nothing past its replacement.
            #[serde(default)]
            signs_up_to: Option<u64>,
        }
        let published: Published = serde_json::from_str(&read(path)?).map_err(|e| {
            Failure::input(format!(
                "{}: not the ledger keys as /.well-known/actas-ledger-keys publishes them ({e})",
                path.display()
            ))
        })?;
        for entry in published.keys {
            trusted.push(actas_core::checkpoint::TrustedKey {
                key: PublicKey::parse(&entry.key)
                    .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?,
                up_to: entry.signs_up_to,
            });
        }
    }
    if trusted.is_empty() {
        return Err(Failure::input(
            "give the ledger's key with --key, or its published keys with --keys: a receipt only proves something against the key of the ledger that signed it",
        ));
    }
    let receipt = actas_core::receipt::verify_receipt(&read(file)?, &trusted)
        .map_err(|problem| Failure::check(format!("The receipt does not hold: {problem}.")))?;
    let body = &receipt.body;
    println!(
        "Genuine: the ledger key {} signed this receipt for event {} of the ledger, recorded at {}.",
        receipt.key_id,
        grouped(body.seq),
        body.time.to_rfc3339()
    );
    println!("{}.", body.summary);
    if let actas_core::event::EventData::SignedAction {
        method,
        path,
        body_sha256,
        ..
    } = &body.data
    {
        println!(
            "The product received {method} {path} with a body whose SHA-256 is {body_sha256}."
        );
    }
    println!(
        "Its leaf hash is {}: the account's audit extract holds the same event.",
        hex::encode(receipt.leaf_hash)
    );
    Ok(())
}

/// An extract file's text: as it is, or opened if it is the compressed form
/// (`?format=json.gz`, gzip).
fn extract_text(bytes: Vec<u8>) -> Result<String, String> {
    /// The most an opened extract may weigh (a million events come to under 1 GB): a
    /// small file that opens to more is not an extract.
    const LIMIT: u64 = 2 << 30;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        let mut opened = flate2::bufread::GzDecoder::new(&bytes[..]);
        (&mut opened)
            .take(LIMIT + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("it is compressed, but could not be opened: {e}"))?;
        if out.len() as u64 > LIMIT {
            return Err("it opens to more than 2 GiB, which no extract is".into());
        }
        // One compressed file, as actas writes it (and as the browser's verifier reads).
        if !opened.into_inner().is_empty() {
            return Err("it holds more after its compressed extract".into());
        }
        out
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
}

/// `actas audit verify-extract FILE [--key PUB] [--since OLD]`: offline, from the files
/// alone.
fn verify_extract(
    file: &std::path::Path,
    key: Option<&str>,
    since: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let read = |file: &std::path::Path| {
        let bytes =
            std::fs::read(file).map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
        extract_text(bytes).map_err(|e| Failure::input(format!("{}: {e}", file.display())))
    };
    let text = read(file)?;
    let key = key
        .map(|k| PublicKey::parse(k).map_err(|e| Failure::input(format!("key: {e}"))))
        .transpose()?;
    let checked = match since {
        Some(old) => actas_core::extract::verify_extends(&read(old)?, &text, key.as_ref()),
        None => actas_core::extract::verify_extract(&text, key.as_ref()),
    };
    let r = checked
        .map_err(|problem| Failure::check(format!("The extract does not hold: {problem}.")))?;
    let head = &r.tree_head.head;
    match &r.checkpoint {
        Some(cp) => println!(
            "Complete: all {} events of account {} are exactly as recorded, and there are no others, up to its checkpoint of {}, in the ledger's first {} events.",
            grouped(r.events as u64),
            r.account,
            cp.checkpoint.time.to_rfc3339(),
            grouped(head.size)
        ),
        None => println!(
            "Genuine: each of the {} events of account {} is exactly as recorded in the ledger's first {} events. This is a format 1 extract, which can't show that none is missing: download a new one for that.",
            grouped(r.events as u64),
            r.account,
            grouped(head.size)
        ),
    }
    println!(
        "The tree head was signed at {} by key {}.",
        head.time.to_rfc3339(),
        r.key_id
    );
    if since.is_some() {
        println!(
            "It extends the older extract: that one's events are the first here, unchanged, and this ledger contains the older one."
        );
    }
    if let Some((first, last)) = r.span {
        println!(
            "The events run from {} to {}.",
            first.to_rfc3339(),
            last.to_rfc3339()
        );
    }
    if key.is_none() {
        println!(
            "Checked with the key inside the extract. To know it comes from your provider, run again with --key and the key they publish at /.well-known/actas-ledger-keys."
        );
    }
    Ok(())
}

/// `actas audit rotate-key`: stage a new key, record the replacement (the old key signs
/// a head over it), then put the new key in place.
async fn rotate_key(data: &DataDir) -> Result<(), Failure> {
    let new = data.staged_ledger_key()?;
    let opened = Opened::open(data).await?;
    let old = opened.store.public_key();
    let rotations = opened.service.ledger_rotations().await?;
    let head = if rotations
        .iter()
        .any(|r| r.old == old && r.new == new.public())
    {
        // A rotation cut short after it was recorded: only the key is left to put in place.
        opened.finish_reading().await;
        None
    } else {
        opened.service.check_ledger_key_current().await?;
        let seal = crate::service::keys::SealKey::from_ledger_key(&opened.loaded.key.to_bytes());
        let head = opened
            .service
            .clone()
            .with_assertion_seal(seal)
            .rotate_ledger_key(&new)
            .await?;
        opened.close().await?;
        Some(head)
    };
    data.install_staged_ledger_key()?;
    // The new key signs its first head at once, so what is built on the newest head (an
    // extract, a checkpoint) is signed by the key in force.
    let opened = Opened::open(data).await?;
    opened
        .store
        .append(actas_core::event::NewEvent::new(
            actas_core::event::Actor::System,
            actas_core::event::EventData::LedgerKeyStarted {
                key: new.public().to_base64(),
            },
        ))
        .await?;
    opened.close().await?;
    if let Some(h) = head {
        println!(
            "Key {} signed the ledger up to event #{} (its last head, {}); key {} signs it from now on.",
            old.key_id(),
            h.head.size,
            h.head.time.to_rfc3339(),
            new.public().key_id()
        );
    }
    println!(
        "The new ledger.key is in {}. Copy it to every other actas instance before starting them; both keys are published at /.well-known/actas-ledger-keys.",
        data.path().display()
    );
    Ok(())
}

/// A count with thousands separated by commas: 1,204.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
