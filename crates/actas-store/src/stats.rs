//! Counters from the ledger writer, read by `/metrics` and the benchmarks. Plain atomics,
//! so the store needs no metrics library; the server renders them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the batch-size histogram buckets.
pub const BATCH_BUCKETS: [u64; 7] = [1, 4, 16, 64, 256, 1024, u64::MAX];

/// What the ledger writer has done since the store was opened.
#[derive(Debug, Default)]
pub struct LedgerStats {
    batches: AtomicU64,
    units: AtomicU64,
    events: AtomicU64,
    busy_micros: AtomicU64,
    held_micros: AtomicU64,
    buckets: [AtomicU64; 7],
}

impl LedgerStats {
    pub(crate) fn record_batch(&self, units: usize, events: u64, took: Duration, held: Duration) {
        let units = units as u64;
        self.held_micros
            .fetch_add(held.as_micros() as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.units.fetch_add(units, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.busy_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Some(i) = BATCH_BUCKETS.iter().position(|b| units <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Transactions committed by the writer.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Units committed (each a state change with its events, or a lone event).
    pub fn units(&self) -> u64 {
        self.units.load(Ordering::Relaxed)
    }

    /// Events appended.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Time spent committing batches.
    pub fn busy(&self) -> Duration {
        Duration::from_micros(self.busy_micros.load(Ordering::Relaxed))
    }

    /// Time batches held the ledger's lock: from reading the tip (once the lock was
    /// granted) to the commit. With several instances this, not CPU, bounds how many
    /// events per second one ledger takes: events per batch ÷ hold time per batch.
    pub fn lock_held(&self) -> Duration {
        Duration::from_micros(self.held_micros.load(Ordering::Relaxed))
    }

    /// Batches per size bucket (not cumulative), in [`BATCH_BUCKETS`] order.
    pub fn batch_sizes(&self) -> [u64; 7] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }
}
