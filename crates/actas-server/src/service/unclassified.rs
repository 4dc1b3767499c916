//! Counting the JSON fields the gateway hid because no masking rule classifies them
//! (invariant 6 hides them; these counts tell the team what to classify next, through
//! `actas policy unclassified`). Counts are kept in memory on the request path and written
//! in one batch by the background task, so the gateway never waits on them.

use super::{Service, ServiceResult};
use actas_core::Timestamp;
use actas_store::{Change, UnclassifiedField, Unit};
use std::collections::{BTreeSet, HashMap};
use std::sync::PoisonError;

impl Service {
    /// Notes the unclassified paths one response carried.
    pub fn note_unclassified(&self, paths: BTreeSet<String>) {
        if paths.is_empty() {
            return;
        }
        let mut tally = self
            .unclassified
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for p in paths {
            *tally.entry(p).or_insert(0) += 1;
        }
    }

    /// Writes the counts noted since the last flush. On failure they are kept for the next.
    pub async fn flush_unclassified(&self) -> ServiceResult<usize> {
        let taken: HashMap<String, u64> = std::mem::take(
            &mut *self
                .unclassified
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if taken.is_empty() {
            return Ok(0);
        }
        let paths: Vec<(String, u64)> = taken.into_iter().collect();
        let n = paths.len();
        let unit = Unit::new(
            vec![Change::CountUnclassified {
                paths: paths.clone(),
                at: Timestamp::now(),
            }],
            |_| vec![],
        );
        if let Err(e) = self.store.commit(unit).await {
            let mut tally = self
                .unclassified
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (p, seen) in paths {
                *tally.entry(p).or_insert(0) += seen;
            }
            return Err(e.into());
        }
        Ok(n)
    }

    /// What has been counted so far, most often seen first.
    pub async fn unclassified_fields(&self) -> ServiceResult<Vec<UnclassifiedField>> {
        Ok(self.store.unclassified_fields().await?)
    }
}
