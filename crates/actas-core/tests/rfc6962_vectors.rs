//! The Merkle code checked against the published RFC 6962 / Certificate Transparency test
//! vectors (the eight reference leaves, their node hashes and roots, and the reference
//! inclusion and consistency proofs, as used by the CT reference implementations).

use actas_core::merkle::{
    Hash, MemoryTree, empty_root, leaf_hash, verify_consistency, verify_inclusion,
};

fn h(text: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).expect("hex");
    out
}

fn leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|x| hex::decode(x).expect("hex"))
    .collect()
}

/// Roots of the trees of 1..=8 reference leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Leaf hashes (level 0) of the reference leaves.
const LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

fn tree() -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in leaves() {
        t.push_data(&l);
    }
    t
}

#[test]
fn empty_tree_root_is_the_hash_of_nothing() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

#[test]
fn leaf_hashes_match_the_vectors() {
    for (l, want) in leaves().iter().zip(LEAF_HASHES) {
        assert_eq!(leaf_hash(l), h(want));
    }
}

#[test]
fn roots_of_every_size_match_the_vectors() {
    let t = tree();
    for (i, want) in ROOTS.iter().enumerate() {
        assert_eq!(
            t.root_at(i as u64 + 1).expect("root"),
            h(want),
            "size {}",
            i + 1
        );
    }
}

/// (leaf number counted from 1, tree size, proof)
fn inclusion_vectors() -> Vec<(u64, u64, Vec<&'static str>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            vec![
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            3,
            3,
            vec!["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            2,
            5,
            vec![
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ]
}

/// (old size, new size, proof)
fn consistency_vectors() -> Vec<(u64, u64, Vec<&'static str>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            vec![
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            vec![
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            vec![
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ]
}

#[test]
fn generated_inclusion_proofs_equal_the_vectors_and_verify() {
    let t = tree();
    let leaves = leaves();
    for (leaf, size, proof) in inclusion_vectors() {
        let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
        let got = t.inclusion_proof(leaf - 1, size).expect("nodes");
        assert_eq!(got, want, "leaf {leaf} of {size}");
        let root = h(ROOTS[size as usize - 1]);
        let lh = leaf_hash(&leaves[leaf as usize - 1]);
        assert_eq!(verify_inclusion(leaf - 1, size, &lh, &want, &root), Ok(()));
    }
}

#[test]
fn corrupted_inclusion_proofs_are_refused() {
    let leaves = leaves();
    for (leaf, size, proof) in inclusion_vectors().into_iter().filter(|v| !v.2.is_empty()) {
        let proof: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
        let root = h(ROOTS[size as usize - 1]);
        let lh = leaf_hash(&leaves[leaf as usize - 1]);
        let i = leaf - 1;
        assert!(verify_inclusion(i + 1, size, &lh, &proof, &root).is_err());
        assert!(verify_inclusion(i, size * 2, &lh, &proof, &root).is_err());
        assert!(verify_inclusion(i, size, &leaf_hash(b"WrongLeaf"), &proof, &root).is_err());
        assert!(verify_inclusion(i, size, &lh, &proof, &empty_root()).is_err());
        let mut longer = proof.clone();
        longer.push(root);
        assert!(verify_inclusion(i, size, &lh, &longer, &root).is_err());
        assert!(verify_inclusion(i, size, &lh, &proof[..proof.len() - 1], &root).is_err());
        for k in 0..proof.len() {
            let mut flipped = proof.clone();
            flipped[k][0] ^= 8;
            assert!(verify_inclusion(i, size, &lh, &flipped, &root).is_err());
        }
    }
}

#[test]
fn generated_consistency_proofs_equal_the_vectors_and_verify() {
    let t = tree();
    for (old, new, proof) in consistency_vectors() {
        let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
        assert_eq!(
            t.consistency_proof(old, new).expect("nodes"),
            want,
            "{old}→{new}"
        );
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        assert_eq!(
            verify_consistency(old, new, &r1, &r2, &want),
            Ok(()),
            "{old}→{new}"
        );
        if !want.is_empty() {
            assert!(
                verify_consistency(old, new, &r2, &r1, &want).is_err(),
                "swapped roots"
            );
            assert!(
                verify_consistency(old, new, &r1, &r2, &[]).is_err(),
                "empty proof"
            );
            assert!(verify_consistency(old, new, &r1, &r2, &want[..want.len() - 1]).is_err());
            let mut flipped = want.clone();
            flipped[0][0] ^= 16;
            assert!(verify_consistency(old, new, &r1, &r2, &flipped).is_err());
        }
    }
}

#[test]
fn edge_cases_of_consistency_follow_the_rfc() {
    let a = h(ROOTS[0]);
    let b = h(ROOTS[1]);
    assert!(verify_consistency(0, 0, &a, &a, &[]).is_ok());
    assert!(verify_consistency(0, 1, &a, &b, &[]).is_ok());
    assert!(verify_consistency(1, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(2, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 1, &a, &a, &[empty_root()]).is_err());
}
