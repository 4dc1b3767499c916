//! An account's verifiable audit extract: every event of the account, each with its
//! inclusion proof against one signed tree head, and the public key (the format is in
//! `docs/extract-format.md`; `actas audit verify-extract` checks one offline).

use super::{Service, ServiceError, ServiceResult};
use actas_core::Timestamp;
use actas_core::extract::{EXTRACT_FORMAT, Extract, ExtractEvent};
use actas_core::ids::AccountId;
use actas_store::StoreError;

impl Service {
    /// Builds the extract of account `id`. If no signed head covers the newest events yet,
    /// one is signed now, so the extract is complete up to this moment.
    pub async fn audit_extract(&self, id: &str) -> ServiceResult<Extract> {
        let id = AccountId::parse(id).map_err(|e| ServiceError::invalid("id", e))?;
        let account = self.account(&id).await?;
        let size = self.store.ledger_size().await?;
        let latest = self
            .store
            .tree_heads()
            .await?
            .into_iter()
            .max_by_key(|h| h.head.size);
        let head = match latest {
            Some(h) if h.head.size >= size && size > 0 => h,
            _ => self.store.sign_head_now().await?.ok_or_else(|| {
                ServiceError::Unexpected(StoreError::Unexpected(
                    "no tree head could be signed for the extract".into(),
                ))
            })?,
        };
        // The texts and the proofs are read at the same time, on different connections.
        let seqs = self
            .store
            .account_event_seqs(&account.id, head.head.size)
            .await?;
        let (events, proofs) = futures_util::future::try_join(
            self.store.account_event_texts(&account.id, head.head.size),
            self.store.inclusion_proofs(&seqs, head.head.size),
        )
        .await?;
        if events.len() != seqs.len() || events.iter().zip(&seqs).any(|((a, _), b)| a != b) {
            return Err(ServiceError::Unexpected(StoreError::Unexpected(
                "the account's events changed while the extract was built".into(),
            )));
        }
        Ok(Extract {
            format: EXTRACT_FORMAT.to_owned(),
            account: account.id,
            generated_at: Timestamp::now(),
            public_key: self.store.public_key().to_base64(),
            tree_head: head,
            events: events
                .into_iter()
                .zip(proofs)
                .map(|((seq, body), proof)| ExtractEvent::new(seq, body, &proof))
                .collect(),
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
    let mut out = String::from("seq,time,kind,summary\n");
    for e in &extract.events {
        let Ok(body) = actas_core::event::EventBody::decode(&e.body) else {
            continue;
        };
        let cell = csv_cell;
        out.push_str(&format!(
            "{},{},{},{}\n",
            body.seq,
            cell(&body.time.to_rfc3339()),
            cell(body.kind()),
            cell(&body.summary)
        ));
    }
    out
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
