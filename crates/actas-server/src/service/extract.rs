//! An account's verifiable audit extract: every event of the account, one multi-leaf
//! proof against a signed tree head, and a signed account checkpoint that makes it
//! provably complete (the format is in `docs/extract-format.md`; `actas audit
//! verify-extract` and the `/verify` page check one offline).

use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::checkpoint::AccountCheckpoint;
use actas_core::extract::{ConsistencyProof, EXTRACT_FORMAT, Extract, ExtractEvent};
use actas_core::ids::AccountId;
use actas_core::merkle::leaf_hash;

impl Service {
    /// Builds the extract of account `id`; with `since` (an earlier extract's tree size),
    /// it also carries the consistency proof from that size, so the two can be compared.
    pub async fn audit_extract(&self, id: &str, since: Option<u64>) -> ServiceResult<Extract> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        let account = self.account(&id).await?;
        let head = self.current_head().await?;
        let size = head.head.size;
        if let Some(from) = since
            && (from == 0 || from > size)
        {
            return Err(ServiceError::invalid(
                "since",
                format!("give the tree size of an earlier extract, from 1 to {size}"),
            ));
        }
        // The texts and the proof are read at the same time, on different connections.
        let seqs = self.store.account_event_seqs(&account.id, size).await?;
        let (events, proof) = futures_util::future::try_join(
            self.store.account_event_texts(&account.id, &seqs),
            self.store.multi_proof(&seqs, size),
        )
        .await?;
        let consistency = match since {
            Some(from) => Some(ConsistencyProof {
                from,
                to: size,
                proof: self.store.consistency_proof(from, size).await?,
            }),
            None => None,
        };
        let key = self.store.ledger_key();
        let checkpoint = key.sign_checkpoint(AccountCheckpoint {
            account: account.id.clone(),
            events: events.len() as u64,
            last_leaf: events
                .last()
                .map_or([0; 32], |(_, body)| leaf_hash(body.as_bytes())),
            tree_size: size,
            root: head.head.root,
            time: Timestamp::now(),
        });
        Ok(Extract {
            format: EXTRACT_FORMAT.to_owned(),
            account: account.id,
            public_key: key.public().to_base64(),
            tree_head: head,
            checkpoint,
            events: events
                .into_iter()
                .map(|(seq, body)| ExtractEvent { seq, body })
                .collect(),
            proof,
            consistency,
        })
    }
}

/// One CSV cell, quoted, that a spreadsheet shows as text: a leading `=`, `+`, `-`, `@`,
/// tab or carriage return (which spreadsheets read as the start of a formula) gets a `'`
/// in front.
pub fn csv_cell(s: &str) -> String {
    // Spreadsheets skip leading blanks and read full-width signs as formulas in some
    // locales.
    let lead = s.trim_start_matches([' ', '\u{3000}']);
    let risky = lead.starts_with(['=', '+', '-', '@', '＝', '＋', '－', '＠'])
        || s.starts_with(|c: char| c.is_control());
    let s = if risky { format!("'{s}") } else { s.to_owned() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The extract as CSV for people: one row per event (sequence number, time, kind, who,
/// summary). It carries no proofs; the JSON form is the one to verify.
pub fn extract_csv(extract: &Extract) -> String {
    let mut out = String::from("\"seq\",\"time\",\"kind\",\"summary\"\n");
    for e in &extract.events {
        let cell = csv_cell;
        let Ok(body) = actas_core::event::EventBody::decode(&e.body) else {
            out.push_str(&format!(
                "{},\"\",\"\",{}\n",
                cell(&e.seq.to_string()),
                cell(
                    "This event's text could not be read here; the JSON extract holds it exactly."
                )
            ));
            continue;
        };
        out.push_str(&format!(
            "{},{},{},{}\n",
            cell(&body.seq.to_string()),
            cell(&body.time.to_rfc3339()),
            cell(body.kind()),
            cell(&body.summary)
        ));
    }
    out
}

/// An extract's JSON gzip-compressed (`?format=json.gz`), at the fast level: an extract
/// is large and made on demand, and its bodies, which repeat their field names, shrink
/// well even so. Both verifiers open it as it is.
pub fn compress(json: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut out = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    out.write_all(json)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_stay_text() {
        for formula in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "\n=1",
            "  =1",
            "＝1",
            "\u{3000}＋1",
        ] {
            let cell = csv_cell(formula);
            assert!(cell.starts_with("\"'"), "{formula:?} became {cell}");
        }
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
