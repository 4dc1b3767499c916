//! Proofs and verification, written once over a backend's raw ledger reads (events by
//! range, nodes by position, heads), so a backend implements storage, not ledger logic.

use crate::{StoreError, StoreResult};
use actas_core::merkle::{self, Hash, LeafRange, NodeId};
use actas_core::tree_head::{PublicKey, SignedTreeHead};
use actas_core::verify::{Problem, Report, StoredEvent, Verifier};
use async_trait::async_trait;
use std::collections::HashMap;

/// Stored Merkle nodes by position, hashed with FxHash: an extract looks up millions.
pub(crate) type NodeMap = HashMap<NodeId, Hash, rustc_hash::FxBuildHasher>;

/// One stored event as verification reads it.
pub(crate) struct EventRow {
    pub(crate) seq: i64,
    pub(crate) time: i64,
    pub(crate) kind: String,
    pub(crate) account: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) body: String,
    pub(crate) leaf: Vec<u8>,
}

/// What a backend reads from its ledger tables.
#[async_trait]
pub(crate) trait RawLedger: Send + Sync {
    /// Number of committed events.
    async fn size(&self) -> StoreResult<u64>;
    /// These nodes (a proof's few), each of which must exist.
    async fn nodes(&self, ids: &[NodeId]) -> StoreResult<NodeMap>;
    /// Many nodes at once (thousands of proofs built together).
    async fn many_nodes(&self, ids: &[NodeId]) -> StoreResult<NodeMap> {
        self.nodes(ids).await
    }
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn event_rows(&self, after: u64, limit: u32) -> StoreResult<Vec<EventRow>>;
    /// Every signed tree head, oldest first.
    async fn heads(&self) -> StoreResult<Vec<SignedTreeHead>>;
}

async fn proof(r: &impl RawLedger, ranges: Vec<LeafRange>) -> StoreResult<Vec<Hash>> {
    let nodes = r.nodes(&merkle::nodes_needed(&ranges)).await?;
    merkle::assemble(&ranges, &nodes).map_err(StoreError::unexpected)
}

/// The inclusion proof of event `seq` in the tree of the first `size` events.
pub(crate) async fn inclusion_proof(
    r: &impl RawLedger,
    seq: u64,
    size: u64,
) -> StoreResult<Vec<Hash>> {
    if seq == 0 || seq > size || size > r.size().await? {
        return Err(StoreError::NotFound(format!(
            "event #{seq} in a ledger of {size} events"
        )));
    }
    proof(r, merkle::inclusion_ranges(seq - 1, size)).await
}

/// The consistency proof from the first `old` events to the first `new`.
pub(crate) async fn consistency_proof(
    r: &impl RawLedger,
    old: u64,
    new: u64,
) -> StoreResult<Vec<Hash>> {
    if old > new || new > r.size().await? {
        return Err(StoreError::NotFound(format!(
            "a ledger of {new} events extending {old}"
        )));
    }
    proof(r, merkle::consistency_ranges(old, new)).await
}

/// One multi-leaf proof for the events `seqs` (increasing) in the tree of the first
/// `size` events: one fetch of every node it needs, then assembled off the runtime.
pub(crate) async fn multi_proof(
    r: &impl RawLedger,
    seqs: &[u64],
    size: u64,
) -> StoreResult<Vec<Hash>> {
    if size > r.size().await? {
        return Err(StoreError::NotFound(format!("a ledger of {size} events")));
    }
    let mut indices = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        if seq == 0 || seq > size || indices.last().is_some_and(|&l| seq - 1 <= l) {
            return Err(StoreError::NotFound(format!(
                "event #{seq} in order in a ledger of {size} events"
            )));
        }
        indices.push(seq - 1);
    }
    let ranges = merkle::multi_proof_ranges(&indices, size);
    let nodes = r.many_nodes(&merkle::nodes_needed(&ranges)).await?;
    tokio::task::spawn_blocking(move || {
        merkle::assemble(&ranges, &nodes).map_err(StoreError::unexpected)
    })
    .await
    .map_err(StoreError::unexpected)?
}

/// Checks the whole ledger against its signed heads; `progress(done, total)` is called
/// as it goes. The outer error is a storage failure, the inner one a finding.
pub(crate) async fn verify(
    r: &impl RawLedger,
    key: &PublicKey,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> StoreResult<Result<Report, Problem>> {
    let heads = r.heads().await?;
    let total = r.size().await?;
    let mut verifier = match Verifier::new(key, heads) {
        Ok(v) => v,
        Err(p) => return Ok(Err(p)),
    };
    const CHUNK: u32 = 20_000;
    let mut after = 0;
    loop {
        let rows = r.event_rows(after, CHUNK).await?;
        let Some(last) = rows.last() else { break };
        after = u64::try_from(last.seq).unwrap_or(u64::MAX);
        for row in &rows {
            let leaf_hash: Hash = row.leaf.as_slice().try_into().unwrap_or([0; 32]);
            let ev = StoredEvent {
                seq: u64::try_from(row.seq).unwrap_or(0),
                time: row.time,
                kind: &row.kind,
                account: row.account.as_deref(),
                session: row.session.as_deref(),
                body: &row.body,
                leaf_hash,
            };
            if let Err(p) = verifier.push(ev) {
                return Ok(Err(p));
            }
        }
        progress(verifier.checked(), total.max(verifier.checked()));
    }
    Ok(verifier.finish())
}
