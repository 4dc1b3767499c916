//! The ledger's Merkle tree, exactly as RFC 6962 (and RFC 9162 §2.1) defines it:
//! leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right).
//!
//! Written here rather than taken from `ct-merkle`: that crate keeps the whole tree in
//! memory, while actas keeps every *perfect* subtree's hash in the database and needs
//! proofs computed from O(log n) stored nodes. So this module separates the plan (which
//! stored nodes a proof needs, [`NodeId`]) from the arithmetic (combining them), and the
//! store fetches exactly the planned nodes in one query. The results are checked against
//! the published RFC 6962 test vectors in `tests/rfc6962_vectors.rs`.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a leaf: SHA-256(0x00 ‖ data).
///
/// ```
/// // RFC 6962's first reference leaf is the empty string.
/// let h = actas_core::merkle::leaf_hash(b"");
/// assert_eq!(hex::encode(h), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
/// ```
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// A perfect subtree: `2^level` leaves starting at leaf `index << level`.
/// Level 0 nodes are the leaves' hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves.
    pub level: u8,
    /// Position among the nodes of that level.
    pub index: u64,
}

/// A contiguous run of leaves `[start, start + len)` whose RFC 6962 hash a proof needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafRange {
    /// First leaf.
    pub start: u64,
    /// Number of leaves (at least 1).
    pub len: u64,
}

impl LeafRange {
    /// The perfect subtrees whose hashes, folded right to left, give this range's hash:
    /// one per set bit of `len`, largest first. Ranges that occur in RFC 6962 proofs are
    /// always aligned so that each piece is a stored node.
    pub fn pieces(self) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(self.len.count_ones() as usize);
        let mut at = self.start;
        for level in (0..64u8).rev() {
            let size = 1u64 << level;
            if self.len & size != 0 {
                out.push(NodeId {
                    level,
                    index: at >> level,
                });
                at += size;
            }
        }
        out
    }

    /// The range as one stored node, when it is a perfect subtree (most proof ranges are:
    /// only those along the tree's right edge are not). Saves building [`Self::pieces`].
    pub fn as_node(self) -> Option<NodeId> {
        (self.len.is_power_of_two() && self.start.is_multiple_of(self.len)).then(|| NodeId {
            level: self.len.trailing_zeros() as u8,
            index: self.start / self.len,
        })
    }
}

/// Folds perfect-subtree hashes (largest first) into the hash of their range.
pub fn fold_pieces(pieces: &[Hash]) -> Option<Hash> {
    let (last, rest) = pieces.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The ranges whose hashes form the inclusion proof of leaf `index` in a tree of `size`,
/// in proof order (RFC 9162 §2.1.3.1).
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<LeafRange> {
    fn path(m: u64, start: u64, n: u64, out: &mut Vec<LeafRange>) {
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(m, start, k, out);
            out.push(LeafRange {
                start: start + k,
                len: n - k,
            });
        } else {
            path(m - k, start + k, n - k, out);
            out.push(LeafRange { start, len: k });
        }
    }
    let mut out = Vec::new();
    if index < size {
        path(index, 0, size, &mut out);
    }
    out
}

/// The ranges whose hashes form the consistency proof from a tree of `old` leaves to one
/// of `new` leaves, in proof order (RFC 9162 §2.1.4.1). Empty when `old` is 0 or equal.
pub fn consistency_ranges(old: u64, new: u64) -> Vec<LeafRange> {
    fn sub(m: u64, start: u64, n: u64, whole: bool, out: &mut Vec<LeafRange>) {
        if m == n {
            if !whole {
                out.push(LeafRange { start, len: n });
            }
            return;
        }
        let k = split(n);
        if m <= k {
            sub(m, start, k, whole, out);
            out.push(LeafRange {
                start: start + k,
                len: n - k,
            });
        } else {
            sub(m - k, start + k, n - k, false, out);
            out.push(LeafRange { start, len: k });
        }
    }
    let mut out = Vec::new();
    if old > 0 && old < new {
        sub(old, 0, new, true, &mut out);
    }
    out
}

/// Every stored node a list of ranges needs, without repeats.
pub fn nodes_needed(ranges: &[LeafRange]) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match r.as_node() {
            Some(id) => ids.push(id),
            None => ids.extend(r.pieces()),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A hash as 64 lowercase hex digits, written through a fixed buffer: proofs for a
/// large audit extract encode millions of them.
pub fn hash_hex(hash: &Hash) -> String {
    let mut buf = [0u8; 64];
    // A 32-byte input always fits a 64-byte buffer, and hex digits are ASCII.
    match hex::encode_to_slice(hash, &mut buf) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => hex::encode(hash),
    }
}

/// Why a proof could not be built from stored nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored tree has no node at level {}, index {}", .0.level, .0.index)]
pub struct MissingNode(pub NodeId);

/// Turns ranges into proof hashes using fetched nodes.
pub fn assemble<S: std::hash::BuildHasher>(
    ranges: &[LeafRange],
    nodes: &HashMap<NodeId, Hash, S>,
) -> Result<Vec<Hash>, MissingNode> {
    ranges
        .iter()
        .map(|r| {
            if let Some(id) = r.as_node() {
                return nodes.get(&id).copied().ok_or(MissingNode(id));
            }
            let hashes = r
                .pieces()
                .into_iter()
                .map(|id| nodes.get(&id).copied().ok_or(MissingNode(id)))
                .collect::<Result<Vec<_>, _>>()?;
            fold_pieces(&hashes).ok_or(MissingNode(NodeId {
                level: 0,
                index: r.start,
            }))
        })
        .collect()
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    OutOfRange {
        /// The leaf.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has the wrong number of hashes for these tree sizes")]
    WrongLength,
    /// The hashes do not lead to the expected root.
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    /// The newer tree is smaller than the older one.
    #[error("a tree of {new} leaves can't extend one of {old}")]
    Shrunk {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
}

/// Computes the root an inclusion proof leads to (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Verifies that `leaf` is leaf `index` of the tree of `size` with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `new` leaves with `new_root` extends the tree of `old`
/// leaves with `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if new < old {
        return Err(ProofError::Shrunk { old, new });
    }
    if old == new {
        return if !proof.is_empty() {
            Err(ProofError::WrongLength)
        } else if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The ranges whose hashes make up one multi-leaf proof for the (sorted, distinct) leaf
/// `indices` of a tree of `size`: every maximal subtree holding none of them, in the
/// order a depth-first, left-to-right walk of the RFC 9162 tree meets them. Nodes shared
/// between the leaves' paths are in it once. Both sides walk the same tree, so the proof
/// needs no positions: see [`root_from_multi`].
pub fn multi_proof_ranges(indices: &[u64], size: u64) -> Vec<LeafRange> {
    fn walk(start: u64, n: u64, idx: &[u64], out: &mut Vec<LeafRange>) {
        if idx.is_empty() {
            out.push(LeafRange { start, len: n });
            return;
        }
        if n == 1 {
            return;
        }
        let k = split(n);
        let cut = idx.partition_point(|&i| i < start + k);
        walk(start, k, &idx[..cut], out);
        walk(start + k, n - k, &idx[cut..], out);
    }
    let mut out = Vec::new();
    if size > 0 && !indices.is_empty() {
        walk(0, size, indices, &mut out);
    }
    out
}

/// Why a multi-leaf proof did not give a root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultiProofError {
    /// The leaves are not in increasing order, or one is outside the tree.
    #[error("leaf {index} is out of order or not in a tree of {size} leaves")]
    Leaves {
        /// The offending leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof ran out of hashes, or has some left over.
    #[error("the proof has the wrong number of hashes for these leaves")]
    WrongLength,
}

/// The root a multi-leaf proof leads to: `leaves` are `(index, leaf hash)` in increasing
/// index order, `proof` the hashes of [`multi_proof_ranges`] in that order. The caller
/// compares the result with the signed root.
pub fn root_from_multi(
    size: u64,
    leaves: &[(u64, Hash)],
    proof: &[Hash],
) -> Result<Hash, MultiProofError> {
    fn walk(
        start: u64,
        n: u64,
        leaves: &[(u64, Hash)],
        proof: &mut std::slice::Iter<'_, Hash>,
    ) -> Result<Hash, MultiProofError> {
        if leaves.is_empty() {
            return proof.next().copied().ok_or(MultiProofError::WrongLength);
        }
        if n == 1 {
            return Ok(leaves[0].1);
        }
        let k = split(n);
        let cut = leaves.partition_point(|&(i, _)| i < start + k);
        let left = walk(start, k, &leaves[..cut], proof)?;
        let right = walk(start + k, n - k, &leaves[cut..], proof)?;
        Ok(node_hash(&left, &right))
    }
    let mut last = None;
    for &(index, _) in leaves {
        if index >= size || last.is_some_and(|l| index <= l) {
            return Err(MultiProofError::Leaves { index, size });
        }
        last = Some(index);
    }
    if leaves.is_empty() {
        return Err(MultiProofError::WrongLength);
    }
    let mut it = proof.iter();
    let root = walk(0, size, leaves, &mut it)?;
    if it.next().is_some() {
        return Err(MultiProofError::WrongLength);
    }
    Ok(root)
}

/// The right edge of a tree: the hashes of the perfect subtrees that make up `[0, size)`,
/// largest first. Enough to append leaves and compute the root without reading anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of a tree of `size` from its stored pieces
    /// (`LeafRange { start: 0, len: size }.pieces()`, in that order).
    pub fn from_pieces(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Self { size, hashes })
    }

    /// The nodes a frontier of `size` is made of.
    pub fn pieces_of(size: u64) -> Vec<NodeId> {
        LeafRange {
            start: 0,
            len: size,
        }
        .pieces()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of its pieces, largest first: what [`Frontier::from_pieces`] takes back.
    pub fn pieces(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash, reporting every node it completes (the leaf itself at level 0,
    /// then each parent that became perfect) so the caller can store them.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, &Hash)) {
        let mut index = self.size;
        let mut level = 0u8;
        let mut h = leaf;
        completed(NodeId { level, index }, &h);
        while index & 1 == 1 {
            let Some(left) = self.hashes.pop() else { break };
            h = node_hash(&left, &h);
            index >>= 1;
            level += 1;
            completed(NodeId { level, index }, &h);
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The tree's root hash (the empty root for no leaves).
    pub fn root(&self) -> Hash {
        fold_pieces(&self.hashes).unwrap_or_else(empty_root)
    }
}

/// A whole tree in memory: for tests, benchmarks and offline tools. Production proofs
/// come from stored nodes through [`inclusion_ranges`] and [`assemble`].
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    frontier: Frontier,
    nodes: HashMap<NodeId, Hash>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf's data.
    pub fn push_data(&mut self, data: &[u8]) {
        self.push(leaf_hash(data));
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let nodes = &mut self.nodes;
        self.frontier.push(leaf, |id, h| {
            nodes.insert(id, *h);
        });
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, MissingNode> {
        if size == 0 {
            return Ok(empty_root());
        }
        let r = [LeafRange {
            start: 0,
            len: size,
        }];
        Ok(assemble(&r, &self.nodes)?[0])
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MissingNode> {
        assemble(&inclusion_ranges(index, size), &self.nodes)
    }

    /// The multi-leaf proof of `indices` in the tree of the first `size` leaves.
    pub fn multi_proof(&self, indices: &[u64], size: u64) -> Result<Vec<Hash>, MissingNode> {
        assemble(&multi_proof_ranges(indices, size), &self.nodes)
    }

    /// Consistency proof from the first `old` leaves to the first `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, MissingNode> {
        assemble(&consistency_ranges(old, new), &self.nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(n: u64) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push_data(&i.to_be_bytes());
        }
        t
    }

    #[test]
    fn stored_roots_agree_with_the_frontier_at_every_size() {
        let t = tree(70);
        let mut f = Frontier::new();
        for i in 0..70u64 {
            f.push(leaf_hash(&i.to_be_bytes()), |_, _| {});
            assert_eq!(t.root_at(i + 1), Ok(f.root()), "size {}", i + 1);
        }
    }

    #[test]
    fn a_range_is_one_node_exactly_when_it_is_a_perfect_subtree() {
        for start in 0..64u64 {
            for len in 1..=64u64 {
                let r = LeafRange { start, len };
                let pieces = r.pieces();
                match r.as_node() {
                    Some(id) => assert_eq!(pieces, vec![id], "{r:?}"),
                    None => assert!(
                        pieces.len() > 1 || !start.is_multiple_of(len) || !len.is_power_of_two(),
                        "{r:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn proofs_need_only_a_logarithmic_number_of_nodes() {
        let size = 1_000_003u64;
        for index in [0, 1, 500_000, size - 1] {
            let nodes = nodes_needed(&inclusion_ranges(index, size));
            assert!(nodes.len() <= 2 * 21, "{} nodes", nodes.len());
        }
        let nodes = nodes_needed(&consistency_ranges(333_333, size));
        assert!(nodes.len() <= 3 * 21, "{} nodes", nodes.len());
    }

    #[test]
    fn a_multi_leaf_proof_sends_shared_nodes_once() {
        let size = 1_000_000u64;
        let indices: Vec<u64> = (0..size).step_by(10).collect();
        let ranges = multi_proof_ranges(&indices, size);
        // A fifth of one full proof (20 hashes) per leaf, or less.
        assert!(ranges.len() <= 4 * indices.len(), "{}", ranges.len());
        // A single leaf's multi-leaf proof holds the same hashes as its inclusion proof.
        let t = tree(37);
        let single = t.multi_proof(&[11], 37).expect("nodes");
        let mut path = t.inclusion_proof(11, 37).expect("nodes");
        let mut sorted = single.clone();
        sorted.sort();
        path.sort();
        assert_eq!(sorted, path);
    }

    proptest! {
        #[test]
        fn every_multi_leaf_proof_verifies_and_any_change_fails(size in 1u64..200, picks in proptest::collection::vec(0u64..200, 1..20)) {
            let t = tree(size);
            let mut indices: Vec<u64> = picks.iter().map(|p| p % size).collect();
            indices.sort_unstable();
            indices.dedup();
            let proof = t.multi_proof(&indices, size).expect("nodes");
            let leaves: Vec<(u64, Hash)> = indices.iter().map(|&i| (i, leaf_hash(&i.to_be_bytes()))).collect();
            prop_assert_eq!(root_from_multi(size, &leaves, &proof), Ok(t.root()));
            // A changed leaf, a missing or extra hash, or a leaf moved: another root or an error.
            let mut changed = leaves.clone();
            changed[0].1[0] ^= 1;
            prop_assert_ne!(root_from_multi(size, &changed, &proof), Ok(t.root()));
            if !proof.is_empty() {
                prop_assert!(root_from_multi(size, &leaves, &proof[1..]).is_err());
            }
            let mut extra = proof.clone();
            extra.push([0; 32]);
            prop_assert!(root_from_multi(size, &leaves, &extra).is_err());
            if leaves.len() > 1 {
                prop_assert!(root_from_multi(size, &leaves[1..], &proof) != Ok(t.root()));
            }
        }

        #[test]
        fn every_inclusion_and_consistency_proof_verifies(size in 1u64..300, a in 0u64..300, b in 0u64..300) {
            let t = tree(size);
            let index = a % size;
            let root = t.root();
            let proof = t.inclusion_proof(index, size).expect("nodes");
            let leaf = leaf_hash(&index.to_be_bytes());
            prop_assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));
            let wrong = leaf_hash(b"not the leaf");
            prop_assert!(verify_inclusion(index, size, &wrong, &proof, &root).is_err());

            let old = 1 + b % size;
            let old_root = t.root_at(old).expect("root");
            let c = t.consistency_proof(old, size).expect("nodes");
            prop_assert_eq!(verify_consistency(old, size, &old_root, &root, &c), Ok(()));
            if old < size {
                prop_assert!(verify_consistency(old, size, &wrong, &root, &c).is_err());
            }
        }
    }
}
