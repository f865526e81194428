//! The Merkle tree, its proofs and signed checkpoints (SPEC §3.5): RFC 6962's SHA-256
//! known answers through the same generic code the ledger uses with blake3; proofs from
//! the in-memory and the stored tree checked against an independent, naive recursive
//! implementation; random sizes; the tree across reopen, backfill and tampering; and
//! checkpoints that verify with the app's key and fail if any byte changes.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use common::*;
use ledger::checkpoint::{self, Checkpoint, CheckpointError};
use ledger::merkle::{
    self, event_leaf, Blake3, MemoryTree, ProofFailure, Sha256, StoredTree, TreeHash,
};
use ledger::store::{MemoryStore, SledStore, Store};
use ledger::{ConsistencyProof, Hash32, InclusionProof, Ledger, PublicKey};
use proptest::prelude::*;

// --- An independent, naive implementation of RFC 6962 §2.1, for cross-checks -------------

fn largest_power_of_two_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth<H: TreeHash>(d: &[Vec<u8>]) -> Hash32 {
    match d.len() {
        0 => H::hash_empty(),
        1 => H::hash_leaf(&d[0]),
        n => {
            let k = largest_power_of_two_below(n);
            H::hash_children(&mth::<H>(&d[..k]), &mth::<H>(&d[k..]))
        }
    }
}

fn naive_path<H: TreeHash>(m: usize, d: &[Vec<u8>]) -> Vec<Hash32> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = largest_power_of_two_below(n);
    if m < k {
        let mut p = naive_path::<H>(m, &d[..k]);
        p.push(mth::<H>(&d[k..]));
        p
    } else {
        let mut p = naive_path::<H>(m - k, &d[k..]);
        p.push(mth::<H>(&d[..k]));
        p
    }
}

fn naive_subproof<H: TreeHash>(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash32> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth::<H>(d)] };
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        let mut p = naive_subproof::<H>(m, &d[..k], b);
        p.push(mth::<H>(&d[k..]));
        p
    } else {
        let mut p = naive_subproof::<H>(m - k, &d[k..], false);
        p.push(mth::<H>(&d[..k]));
        p
    }
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn hashes(s: &[&str]) -> Vec<Hash32> {
    s.iter().map(|h| unhex(h).try_into().unwrap()).collect()
}

// --- RFC 6962 known answers (SHA-256) ------------------------------------------------------

/// The reference leaves of Certificate Transparency's tests.
const RFC_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Their roots for sizes 0 to 8.
const RFC_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, path).
const RFC_INCLUSION: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// (old size, new size, path).
const RFC_CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn rfc_tree() -> (MemoryTree<Sha256>, Vec<Vec<u8>>) {
    let data: Vec<Vec<u8>> = RFC_LEAVES.iter().map(|l| unhex(l)).collect();
    (MemoryTree::<Sha256>::from_leaves(&data), data)
}

#[test]
fn rfc6962_known_answers_pass_through_the_ledgers_code_with_sha256() {
    let (t, data) = rfc_tree();
    assert_eq!(hex::encode(Sha256::hash_empty()), RFC_ROOTS[0]);
    for n in 0..=8u64 {
        assert_eq!(
            hex::encode(t.root(n).unwrap()),
            RFC_ROOTS[n as usize],
            "root {n}"
        );
        assert_eq!(
            hex::encode(mth::<Sha256>(&data[..n as usize])),
            RFC_ROOTS[n as usize]
        );
    }
    for (index, size, want) in RFC_INCLUSION {
        let want = hashes(want);
        let path = t.inclusion_path(*index, *size).unwrap();
        assert_eq!(path, want, "inclusion {index} in {size}");
        let root: Hash32 = unhex(RFC_ROOTS[*size as usize]).try_into().unwrap();
        let leaf = Sha256::hash_leaf(&data[*index as usize]);
        merkle::verify_inclusion::<Sha256>(&leaf, *index, *size, &path, &root).unwrap();
        for probe in inclusion_probes(*index, *size, &path, &root, &leaf) {
            assert!(
                merkle::verify_inclusion::<Sha256>(
                    &probe.leaf,
                    probe.index,
                    probe.size,
                    &probe.path,
                    &probe.root
                )
                .is_err(),
                "a corrupted inclusion proof verified: {} ({index} in {size})",
                probe.what
            );
        }
    }
    for (old, new, want) in RFC_CONSISTENCY {
        let want = hashes(want);
        let path = t.consistency_path(*old, *new).unwrap();
        assert_eq!(path, want, "consistency {old} -> {new}");
        let r1: Hash32 = unhex(RFC_ROOTS[*old as usize]).try_into().unwrap();
        let r2: Hash32 = unhex(RFC_ROOTS[*new as usize]).try_into().unwrap();
        merkle::verify_consistency::<Sha256>(*old, *new, &path, &r1, &r2).unwrap();
        if path.is_empty() {
            continue;
        }
        for probe in consistency_probes(*old, *new, &path, &r1, &r2) {
            assert!(
                merkle::verify_consistency::<Sha256>(
                    probe.old,
                    probe.new,
                    &probe.path,
                    &probe.r1,
                    &probe.r2
                )
                .is_err(),
                "a corrupted consistency proof verified: {} ({old} -> {new})",
                probe.what
            );
        }
    }
}

struct InclusionProbe {
    what: &'static str,
    index: u64,
    size: u64,
    path: Vec<Hash32>,
    root: Hash32,
    leaf: Hash32,
}

/// Corruptions of a valid inclusion proof, after transparency-dev/merkle's verifier tests.
fn inclusion_probes(
    index: u64,
    size: u64,
    path: &[Hash32],
    root: &Hash32,
    leaf: &Hash32,
) -> Vec<InclusionProbe> {
    let p = |what, index, size, path: Vec<Hash32>, root, leaf| InclusionProbe {
        what,
        index,
        size,
        path,
        root,
        leaf,
    };
    let some = [0xab; 32];
    let mut out = vec![
        p(
            "index - 1",
            index.wrapping_sub(1),
            size,
            path.to_vec(),
            *root,
            *leaf,
        ),
        p("index + 1", index + 1, size, path.to_vec(), *root, *leaf),
        p("index ^ 2", index ^ 2, size, path.to_vec(), *root, *leaf),
        p("size * 2", index, size * 2, path.to_vec(), *root, *leaf),
        p("size / 2", index, size / 2, path.to_vec(), *root, *leaf),
        p("wrong leaf", index, size, path.to_vec(), *root, some),
        p("wrong root", index, size, path.to_vec(), some, *leaf),
        p(
            "trailing root",
            index,
            size,
            [path, &[*root]].concat(),
            *root,
            *leaf,
        ),
        p(
            "preceding root",
            index,
            size,
            [&[*root], path].concat(),
            *root,
            *leaf,
        ),
    ];
    for i in 0..path.len() {
        let mut q = path.to_vec();
        q[i][0] ^= 8;
        out.push(p("a flipped bit", index, size, q, *root, *leaf));
    }
    if !path.is_empty() {
        out.push(p(
            "a removed hash",
            index,
            size,
            path[..path.len() - 1].to_vec(),
            *root,
            *leaf,
        ));
    }
    out
}

struct ConsistencyProbe {
    what: &'static str,
    old: u64,
    new: u64,
    path: Vec<Hash32>,
    r1: Hash32,
    r2: Hash32,
}

fn consistency_probes(
    old: u64,
    new: u64,
    path: &[Hash32],
    r1: &Hash32,
    r2: &Hash32,
) -> Vec<ConsistencyProbe> {
    let p = |what, old, new, path: Vec<Hash32>, r1, r2| ConsistencyProbe {
        what,
        old,
        new,
        path,
        r1,
        r2,
    };
    let some = [0xcd; 32];
    let mut out = vec![
        p("old - 1", old - 1, new, path.to_vec(), *r1, *r2),
        p("old + 1", old + 1, new, path.to_vec(), *r1, *r2),
        p("old ^ 2", old ^ 2, new, path.to_vec(), *r1, *r2),
        p("new * 2", old, new * 2, path.to_vec(), *r1, *r2),
        p("new / 2", old, new / 2, path.to_vec(), *r1, *r2),
        p("wrong old root", old, new, path.to_vec(), some, *r2),
        p("wrong new root", old, new, path.to_vec(), *r1, some),
        p("swapped roots", old, new, path.to_vec(), *r2, *r1),
        p("empty proof", old, new, vec![], *r1, *r2),
        p(
            "trailing old root",
            old,
            new,
            [path, &[*r1]].concat(),
            *r1,
            *r2,
        ),
        p(
            "preceding new root",
            old,
            new,
            [&[*r2], path].concat(),
            *r1,
            *r2,
        ),
        p(
            "truncated",
            old,
            new,
            path[..path.len() - 1].to_vec(),
            *r1,
            *r2,
        ),
    ];
    for i in 0..path.len() {
        let mut q = path.to_vec();
        q[i][0] ^= 16;
        out.push(p("a flipped bit", old, new, q, *r1, *r2));
    }
    out
}

#[test]
fn every_proof_of_small_trees_matches_the_naive_recursion_and_verifies() {
    fn check<H: TreeHash>() {
        let data: Vec<Vec<u8>> = (0u32..70).map(|i| i.to_be_bytes().to_vec()).collect();
        let t = MemoryTree::<H>::from_leaves(&data);
        for n in 1..=data.len() {
            let d = &data[..n];
            let root = t.root(n as u64).unwrap();
            assert_eq!(root, mth::<H>(d), "{} root {n}", H::NAME);
            for m in 0..n {
                let path = t.inclusion_path(m as u64, n as u64).unwrap();
                assert_eq!(path, naive_path::<H>(m, d), "{} path {m} of {n}", H::NAME);
                assert_eq!(
                    merkle::inclusion_path_len(m as u64, n as u64),
                    Some(path.len())
                );
                merkle::verify_inclusion::<H>(
                    &H::hash_leaf(&d[m]),
                    m as u64,
                    n as u64,
                    &path,
                    &root,
                )
                .unwrap();
            }
            for m in 1..=n {
                let proof = t.consistency_path(m as u64, n as u64).unwrap();
                assert_eq!(
                    proof,
                    naive_subproof::<H>(m, d, true),
                    "{} proof {m} -> {n}",
                    H::NAME
                );
                assert_eq!(
                    merkle::consistency_path_len(m as u64, n as u64),
                    Some(proof.len())
                );
                let old = t.root(m as u64).unwrap();
                merkle::verify_consistency::<H>(m as u64, n as u64, &proof, &old, &root).unwrap();
            }
        }
    }
    check::<Sha256>();
    check::<Blake3>();
}

#[test]
fn out_of_range_requests_are_errors_not_panics() {
    let t = MemoryTree::<Blake3>::from_leaves([b"a", b"b", b"c"]);
    assert!(t.inclusion_path(3, 3).is_err());
    assert!(t.inclusion_path(0, 4).is_err());
    assert!(t.consistency_path(0, 3).is_err());
    assert!(t.consistency_path(3, 2).is_err());
    let r = t.root(3).unwrap();
    assert!(matches!(
        merkle::verify_inclusion::<Blake3>(&r, 5, 3, &[], &r),
        Err(ProofFailure::OutOfRange(_))
    ));
    assert!(matches!(
        merkle::verify_consistency::<Blake3>(0, 3, &[], &r, &r),
        Err(ProofFailure::OutOfRange(_))
    ));
    assert!(merkle::verify_inclusion::<Blake3>(&r, 0, u64::MAX, &[], &r).is_err());
    assert!(merkle::verify_consistency::<Blake3>(u64::MAX - 1, u64::MAX, &[r], &r, &r).is_err());
}

// --- The stored (disk-resident) tree, with random sizes ------------------------------------

fn sled_store() -> &'static SledStore {
    static STORE: OnceLock<(tempfile::TempDir, SledStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path()).unwrap();
            (dir, store)
        })
        .1
}

fn fresh_app() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("p{}", N.fetch_add(1, Ordering::SeqCst))
}

fn event_hashes(n: u64, salt: u64) -> Vec<Hash32> {
    (1..=n)
        .map(|i| *blake3::hash(&[salt.to_be_bytes(), i.to_be_bytes()].concat()).as_bytes())
        .collect()
}

fn check_stored(
    store: &dyn Store,
    n: u64,
    m: u64,
    idx: u64,
    salt: u64,
) -> Result<(), TestCaseError> {
    let app = fresh_app();
    let hs = event_hashes(n, salt);
    let stored = StoredTree::new(store, &app);
    // In two steps, so that extending a tree that already has nodes is exercised too.
    stored
        .extend(hs[..m as usize].iter().map(|h| Ok(*h)), 7)
        .unwrap();
    stored
        .extend(hs[m as usize..].iter().map(|h| Ok(*h)), 64)
        .unwrap();
    prop_assert_eq!(stored.size().unwrap(), n);
    let mem = MemoryTree::<Blake3>::from_leaves(&hs);
    let (root_n, root_m) = (stored.root(n).unwrap(), stored.root(m).unwrap());
    prop_assert_eq!(root_n, mem.root(n).unwrap());
    prop_assert_eq!(root_m, mem.root(m).unwrap());
    let seq = idx + 1;
    // Inclusion of event seq in the tree of size m.
    let path = stored.inclusion_path(seq, m).unwrap();
    prop_assert_eq!(&path, &mem.inclusion_path(idx, m).unwrap());
    let proof = InclusionProof {
        app: app.clone(),
        seq,
        tree_size: m,
        path,
    };
    proof.verify_root(&hs[idx as usize], &root_m).unwrap();
    // A different leaf, index, size or root fails.
    let other_leaf = if n > 1 {
        hs[((idx + 1) % n) as usize]
    } else {
        [7; 32]
    };
    prop_assert!(proof.verify_root(&other_leaf, &root_m).is_err());
    if m > 1 {
        let moved = InclusionProof {
            seq: (idx + 1) % m + 1,
            ..proof.clone()
        };
        prop_assert!(moved.verify_root(&hs[idx as usize], &root_m).is_err());
    }
    if n > m {
        let resized = InclusionProof {
            tree_size: n,
            ..proof.clone()
        };
        prop_assert!(resized.verify_root(&hs[idx as usize], &root_n).is_err());
        prop_assert!(proof.verify_root(&hs[idx as usize], &root_n).is_err());
    }
    // Consistency from m to n.
    let cpath = stored.consistency_path(m, n).unwrap();
    prop_assert_eq!(&cpath, &mem.consistency_path(m, n).unwrap());
    let cproof = ConsistencyProof {
        app: app.clone(),
        old_size: m,
        new_size: n,
        path: cpath,
    };
    cproof.verify_roots(&root_m, &root_n).unwrap();
    let wrong = [0x5a; 32];
    prop_assert!(cproof.verify_roots(&wrong, &root_n).is_err());
    prop_assert!(cproof.verify_roots(&root_m, &wrong).is_err());
    if n > m {
        prop_assert!(cproof.verify_roots(&root_n, &root_m).is_err());
        let resized = ConsistencyProof {
            old_size: m + 1,
            ..cproof.clone()
        };
        prop_assert!(resized.verify_roots(&root_m, &root_n).is_err());
    }
    if m > 1 {
        let resized = ConsistencyProof {
            old_size: m - 1,
            ..cproof.clone()
        };
        prop_assert!(resized
            .verify_roots(&mem.root(m - 1).unwrap(), &root_n)
            .is_err());
    }
    // The JSON form carries the same proof.
    let back: ConsistencyProof =
        serde_json::from_str(&serde_json::to_string(&cproof).unwrap()).unwrap();
    prop_assert_eq!(back, cproof);
    Ok(())
}

fn sizes() -> impl Strategy<Value = (u64, u64, u64)> {
    (1u64..400)
        .prop_flat_map(|n| (Just(n), 1..=n))
        .prop_flat_map(|(n, m)| (Just(n), Just(m), 0..m))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn proofs_from_the_sled_tree_verify_and_wrong_ones_do_not((n, m, idx) in sizes(), salt in any::<u64>()) {
        check_stored(sled_store(), n, m, idx, salt)?;
    }

    #[test]
    fn proofs_from_the_memory_store_tree_verify_and_wrong_ones_do_not((n, m, idx) in sizes(), salt in any::<u64>()) {
        check_stored(&MemoryStore::new(), n, m, idx, salt)?;
    }

    #[test]
    fn every_inclusion_proof_of_a_random_tree_verifies(n in 1u64..200, salt in any::<u64>()) {
        let store = MemoryStore::new();
        let hs = event_hashes(n, salt);
        let t = StoredTree::new(&store, "a");
        t.extend(hs.iter().map(|h| Ok(*h)), 50).unwrap();
        let root = t.root(n).unwrap();
        for (i, h) in hs.iter().enumerate() {
            let seq = i as u64 + 1;
            let path = t.inclusion_path(seq, n).unwrap();
            merkle::verify_inclusion::<Blake3>(&event_leaf(h), i as u64, n, &path, &root).unwrap();
        }
        for m in 1..=n {
            let path = t.consistency_path(m, n).unwrap();
            merkle::verify_consistency::<Blake3>(m, n, &path, &t.root(m).unwrap(), &root).unwrap();
        }
    }
}

// --- The ledger: checkpoints and proofs ----------------------------------------------------

fn active_key(l: &Ledger, app: &str) -> PublicKey {
    let k = l.public_keys(app).unwrap();
    PublicKey::from_bytes(
        hex::decode(&k.last().unwrap().public_key)
            .unwrap()
            .try_into()
            .unwrap(),
    )
}

fn fill(l: &Ledger, n: usize) {
    let u = user(l, "gxp", &format!("mgr{n}"));
    for _ in 0..n {
        create(l, "gxp", "ValidationLog", validation_log(&u)).unwrap();
    }
}

#[test]
fn checkpoints_are_signed_kept_and_prove_every_event_and_each_other() {
    let (l, clock) = mem_ledger();
    fill(&l, 10);
    let first = l.checkpoint("gxp").unwrap();
    let head = l.head("gxp").unwrap();
    assert_eq!(first.size(), head.seq);
    assert_eq!(first.origin(), "audit-ledger/gxp");
    assert!(first.time() >= head.recorded_at);
    first.verify(&active_key(&l, "gxp")).unwrap();
    // Not grown: the same checkpoint, nothing new signed.
    clock.advance(1_000_000);
    assert_eq!(l.checkpoint("gxp").unwrap(), first);
    fill(&l, 7);
    clock.advance(1_000_000);
    let second = l.checkpoint("gxp").unwrap();
    assert!(second.size() > first.size() && second.time() > first.time());
    second.verify(&active_key(&l, "gxp")).unwrap();
    assert_eq!(
        l.checkpoints("gxp", 0).unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(l.latest_checkpoint("gxp").unwrap(), Some(second.clone()));
    assert_eq!(
        l.checkpoint_at("gxp", first.size()).unwrap(),
        Some(first.clone())
    );
    assert_eq!(l.checkpoint_at("gxp", first.size() + 1).unwrap(), None);

    // Every event is in the second checkpoint, by its hash; JSON round trip on the way.
    for e in l.events("gxp", 1, second.size()).unwrap() {
        let e = e.unwrap();
        let proof = l.inclusion_proof("gxp", e.seq, second.size()).unwrap();
        let json = serde_json::to_string(&proof).unwrap();
        let proof: InclusionProof = serde_json::from_str(&json).unwrap();
        proof.verify(&e.hash, &second).unwrap();
        assert!(proof.verify(&e.prev_hash, &second).is_err());
        assert!(matches!(
            proof.verify(&e.hash, &first),
            Err(ProofFailure::SizeMismatch { .. })
        ));
    }
    // The second extends the first.
    let c = l
        .consistency_proof("gxp", first.size(), second.size())
        .unwrap();
    c.verify(&first, &second).unwrap();
    assert!(c.verify(&second, &first).is_err());
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["app"], "gxp");
    assert!(json["path"][0].as_str().unwrap().len() == 64);
    // Another app's checkpoint proves nothing about gxp.
    let other = l.checkpoint("hipaa").unwrap();
    assert!(matches!(
        l.inclusion_proof("gxp", 1, other.size())
            .unwrap()
            .verify(&l.event("gxp", 1).unwrap().unwrap().hash, &other),
        Err(ProofFailure::LogMismatch { .. })
    ));
    // Beyond the durable head, or an unknown app: errors.
    assert!(l.inclusion_proof("gxp", 1, second.size() + 1).is_err());
    assert!(l.consistency_proof("gxp", 0, 3).is_err());
    assert!(l.checkpoint("nope").is_err());
    // The periodic schedule: every app, the interval from the config.
    let all = l.checkpoint_all();
    assert_eq!(all.len(), l.apps().len());
    assert!(all.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(
        l.checkpoint_interval(),
        Some(std::time::Duration::from_secs(300))
    );
    l.verify_tree("gxp").unwrap();
}

#[test]
fn a_checkpoint_verifies_with_the_apps_key_and_fails_if_any_byte_changes() {
    let (l, _) = mem_ledger();
    fill(&l, 3);
    let cp = l.checkpoint("gxp").unwrap();
    let key = active_key(&l, "gxp");
    cp.verify(&key).unwrap();
    let text = cp.text().as_bytes().to_vec();
    for i in 0..text.len() {
        for replacement in [text[i] ^ 0x01, b'A', b'\n'] {
            if replacement == text[i] {
                continue;
            }
            let mut t = text.clone();
            t[i] = replacement;
            let ok = std::str::from_utf8(&t)
                .ok()
                .and_then(|s| Checkpoint::parse(s).ok())
                .is_some_and(|c| c.verify(&key).is_ok());
            assert!(!ok, "byte {i} changed to {replacement:#x} still verifies");
        }
    }
    // Another app's key does not verify it.
    let other = active_key(&l, "hipaa");
    assert!(matches!(
        cp.verify(&other),
        Err(CheckpointError::UnknownKey { .. })
    ));
}

#[test]
fn after_a_key_rotation_checkpoints_are_signed_by_the_new_key_and_stay_consistent() {
    let (l, _) = mem_ledger();
    fill(&l, 3);
    let before = l.checkpoint("gxp").unwrap();
    let old_key = active_key(&l, "gxp");
    l.rotate_key("gxp", actor(), Some("yearly".into())).unwrap();
    let after = l.checkpoint("gxp").unwrap();
    let new_key = active_key(&l, "gxp");
    assert_ne!(old_key, new_key);
    before.verify(&old_key).unwrap();
    after.verify(&new_key).unwrap();
    assert!(after.verify(&old_key).is_err());
    l.consistency_proof("gxp", before.size(), after.size())
        .unwrap()
        .verify(&before, &after)
        .unwrap();
}

#[test]
fn the_origin_prefix_is_configurable_and_checked() {
    let clock = Arc::new(ledger::ManualClock::new(ledger::Timestamp(T0)));
    let mut config = ledger::LedgerConfig::in_memory([9; 32], clock.clone());
    config.checkpoints.origin_prefix = "ledger.example.com".into();
    let l = Ledger::open(config).unwrap();
    l.ensure_builtin_apps().unwrap();
    assert_eq!(
        l.checkpoint("gxp").unwrap().origin(),
        "ledger.example.com/gxp"
    );
    let mut bad = ledger::LedgerConfig::in_memory([9; 32], clock);
    bad.checkpoints.origin_prefix = "two words".into();
    assert!(Ledger::open(bad).is_err());
    assert!(checkpoint::verifier_key("ledger.example.com/gxp", &[1; 32])
        .starts_with("ledger.example.com/gxp+"));
}

// --- On disk: reopen, backfill of an older store, tampering --------------------------------

fn raw(dir: &std::path::Path) -> SledStore {
    SledStore::open(&dir.join("store")).unwrap()
}

/// Removes an app's tree (its size record, and its nodes zeroed) behind the ledger's back:
/// what a store written before trees existed looks like.
fn strip_tree(dir: &std::path::Path, app: &str) {
    let store = raw(dir);
    let (last, _) = store.last_event(app).unwrap().unwrap();
    for seq in 1..=last {
        store
            .tamper_tree_nodes(app, seq, |nodes| nodes.fill([0; 32]))
            .unwrap();
    }
    let t = store.raw_tree(app).unwrap();
    let keys: Vec<_> = t
        .iter()
        .keys()
        .map(|k| k.unwrap())
        .filter(|k| k[0] == b'N' || &k[..] == b"T")
        .collect();
    assert!(!keys.is_empty());
    for k in keys {
        t.remove(k).unwrap();
    }
    t.flush().unwrap();
}

#[test]
fn the_tree_survives_a_reopen_and_is_rebuilt_for_a_store_written_before_trees() {
    let dir = tempfile::tempdir().unwrap();
    let (root, size, proof) = {
        let l = Ledger::open_dir(dir.path()).unwrap();
        l.ensure_builtin_apps().unwrap();
        fill(&l, 40);
        let size = l.head("gxp").unwrap().seq;
        (
            l.tree_root("gxp", size).unwrap(),
            size,
            l.inclusion_proof("gxp", 17, size).unwrap(),
        )
    };
    {
        let l = Ledger::open_dir(dir.path()).unwrap();
        assert_eq!(l.tree_root("gxp", size).unwrap(), root);
        assert_eq!(l.inclusion_proof("gxp", 17, size).unwrap(), proof);
        l.verify_tree("gxp").unwrap();
    }
    for app in ["gxp", "hipaa"] {
        strip_tree(dir.path(), app);
    }
    assert_eq!(raw(dir.path()).tree_size("gxp").unwrap(), None);
    let l = Ledger::open_dir(dir.path()).unwrap();
    assert_eq!(l.tree_root("gxp", size).unwrap(), root);
    assert_eq!(l.inclusion_proof("gxp", 17, size).unwrap(), proof);
    for app in l.apps() {
        l.verify_tree(&app).unwrap();
    }
    // And appends carry on from the rebuilt tree.
    fill(&l, 5);
    l.verify_tree("gxp").unwrap();
    let cp = l.checkpoint("gxp").unwrap();
    l.consistency_proof("gxp", size, cp.size())
        .unwrap()
        .verify_roots(&root, cp.root())
        .unwrap();
}

#[test]
fn a_tree_that_disagrees_with_the_head_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let size = {
        let l = Ledger::open_dir(dir.path()).unwrap();
        l.ensure_builtin_apps().unwrap();
        fill(&l, 4);
        l.head("gxp").unwrap().seq
    };
    {
        let store = raw(dir.path());
        store
            .tamper_tree_nodes("gxp", size, |nodes| nodes[0][0] ^= 1)
            .unwrap();
    }
    let err = Ledger::open_dir(dir.path()).err().expect("must refuse");
    assert!(err.to_string().contains("last leaf"), "{err}");
}

/// Rewrites event `target`'s payload and re-chains and re-signs every event after it with
/// the app's own key (an insider with the key file), then removes the tree so that the
/// ledger rebuilds it from the rewritten events at open: a log that verifies on its own.
fn rewrite_history(dir: &std::path::Path, app: &str, target: u64) {
    use ledger::KeyStore;
    let store = raw(dir);
    let keys = ledger::FileKeyStore::new(dir.join("keys"));
    let t = store.raw_tree(app).unwrap();
    let (last, _) = store.last_event(app).unwrap().unwrap();
    let mut prev = None;
    for seq in target..=last {
        store
            .tamper_event(app, seq, |bytes| {
                let mut e = ledger::stored::decode(bytes).unwrap();
                if seq == target {
                    let p = String::from_utf8(e.payload.take().unwrap())
                        .unwrap()
                        .replace("pass", "fail");
                    assert!(p.contains("fail"));
                    e.payload_digest = ledger::canonical::payload_digest(p.as_bytes());
                    e.payload = Some(p.into_bytes());
                }
                if let Some(h) = prev {
                    e.prev_hash = h;
                }
                e.hash = ledger::canonical::event_hash(&e);
                e.signature = keys
                    .load(app, e.key_id)
                    .unwrap()
                    .unwrap()
                    .sign_hash(&e.hash);
                prev = Some(e.hash);
                *bytes = ledger::stored::encode(&e).unwrap();
            })
            .unwrap();
    }
    t.insert(
        ledger::store::layout::HEAD,
        ledger::store::layout::head_value(last, &prev.unwrap()),
    )
    .unwrap();
    t.flush().unwrap();
    drop(t);
    drop(store);
    strip_tree(dir, app);
}

#[test]
fn a_rewritten_event_breaks_consistency_with_an_older_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (old, target, head) = {
        let l = Ledger::open_dir(dir.path()).unwrap();
        l.ensure_builtin_apps().unwrap();
        fill(&l, 12);
        let old = l.checkpoint("gxp").unwrap();
        fill(&l, 5);
        let target = old.size() - 3;
        let e = l.event("gxp", target).unwrap().unwrap();
        assert_eq!(e.kind, ledger::EventKind::RecordCreated);
        (old, e, l.head("gxp").unwrap())
    };
    rewrite_history(dir.path(), "gxp", target.seq);
    let l = Ledger::open_dir(dir.path()).unwrap();
    // The rewritten log is self-consistent: same size, every hash and signature verifies.
    let now = l.head("gxp").unwrap();
    assert_eq!(now.seq, head.seq);
    assert_ne!(now.hash, head.hash);
    assert!(l
        .verify("gxp", ledger::VerifyMode::Full, Default::default())
        .unwrap()
        .ok());
    l.verify_tree("gxp").unwrap();
    // But it does not extend what the auditor's checkpoint signed.
    let proof = l.consistency_proof("gxp", old.size(), now.seq).unwrap();
    let new_root = l.tree_root("gxp", now.seq).unwrap();
    assert_eq!(
        proof.verify_roots(old.root(), &new_root),
        Err(ProofFailure::OldRootMismatch)
    );
    // The original event is no longer provably in the log either.
    let incl = l.inclusion_proof("gxp", target.seq, old.size()).unwrap();
    assert!(incl.verify(&target.hash, &old).is_err());
    // And the ledger refuses to sign a checkpoint that contradicts the one it kept.
    match l.checkpoint("gxp") {
        Err(CheckpointError::Inconsistent { previous_size, .. }) => {
            assert_eq!(previous_size, old.size())
        }
        other => panic!("expected Inconsistent, got {other:?}"),
    }
    assert_eq!(l.latest_checkpoint("gxp").unwrap(), Some(old));
}

#[test]
fn a_rewritten_event_without_a_rebuilt_tree_is_caught_by_the_tree_check() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, target) = {
        let l = Ledger::open_dir(dir.path()).unwrap();
        l.ensure_builtin_apps().unwrap();
        fill(&l, 6);
        let cp = l.checkpoint("gxp").unwrap();
        (cp, 5u64)
    };
    {
        let store = raw(dir.path());
        store
            .tamper_event("gxp", target, |bytes| {
                let mut e = ledger::stored::decode(bytes).unwrap();
                e.reason = Some("edited".into());
                e.hash = ledger::canonical::event_hash(&e);
                *bytes = ledger::stored::encode(&e).unwrap();
            })
            .unwrap();
    }
    let l = Ledger::open_dir(dir.path()).unwrap();
    assert!(l.verify_tree("gxp").is_err());
    let edited = l.event("gxp", target).unwrap().unwrap();
    let proof = l.inclusion_proof("gxp", target, cp.size()).unwrap();
    assert!(proof.verify(&edited.hash, &cp).is_err());
}
