//! The Merkle tree (SPEC §3.5; issue 7): what maintaining it costs durable appends
//! (target: ≤ 10%), and proofs in a 1,000,000-event log (target: ≤ 1 ms each).
//!
//! - `merkle_append_durable/{without,with}_tree_64_clients`: the `append` bench's set-up
//!   (64 clients, durable, group-committed) on a store wrapper that drops, or keeps, the
//!   tree nodes of every batch before sled sees them. Both variants go through the same
//!   wrapper (one batch copy each), so the difference is the cost of writing the nodes.
//!   The builder's frontier hashing runs in both: `merkle_frontier/push` measures it.
//! - `merkle_proof_1m/*`: proofs from a 1,000,000-leaf tree built directly in a sled store
//!   configured as the ledger's (`StoredTree::extend`), random leaves and sizes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledger::merkle::{Blake3, Frontier, StoredTree};
use ledger::store::{
    AppBatch, Mark, RawEvents, RecordState, SledStore, Store, StoreResult, TreeNodes,
};
use ledger::{FileKeyStore, Ledger, LedgerConfig, SystemClock};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The sled store, with tree-node writes switchable: for measuring their cost only.
struct Switch {
    inner: SledStore,
    keep_tree: AtomicBool,
}

impl Store for Switch {
    fn apps(&self) -> StoreResult<Vec<String>> {
        self.inner.apps()
    }
    fn event(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<u8>>> {
        self.inner.event(app, seq)
    }
    fn last_event(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        self.inner.last_event(app)
    }
    fn scan(&self, app: &str, from: u64) -> RawEvents<'_> {
        self.inner.scan(app, from)
    }
    fn versions(&self, app: &str, class: &str, object_id: &str) -> StoreResult<Vec<(u64, u8)>> {
        self.inner.versions(app, class, object_id)
    }
    fn record_state(&self, app: &str, class: &str, id: &str) -> StoreResult<Option<RecordState>> {
        self.inner.record_state(app, class, id)
    }
    fn idempotent(&self, app: &str, key: &str) -> StoreResult<Option<u64>> {
        self.inner.idempotent(app, key)
    }
    fn head_record(&self, app: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
        self.inner.head_record(app)
    }
    fn marked(&self, app: &str, mark: Mark) -> StoreResult<Vec<u64>> {
        self.inner.marked(app, mark)
    }
    fn write(&self, batches: &[AppBatch]) -> StoreResult<()> {
        let keep = self.keep_tree.load(Ordering::Relaxed);
        let copies: Vec<AppBatch> = batches
            .iter()
            .map(|b| {
                let mut c = b.clone();
                if !keep {
                    for e in &mut c.events {
                        e.tree_nodes.clear();
                    }
                }
                c
            })
            .collect();
        self.inner.write(&copies)
    }
    fn sync(&self) -> StoreResult<()> {
        self.inner.sync()
    }
    fn tree_size(&self, app: &str) -> StoreResult<Option<u64>> {
        self.inner.tree_size(app)
    }
    fn tree_nodes(&self, app: &str, seq: u64) -> StoreResult<Option<Vec<[u8; 32]>>> {
        self.inner.tree_nodes(app, seq)
    }
    fn write_tree(&self, app: &str, nodes: &[TreeNodes], size: u64) -> StoreResult<()> {
        self.inner.write_tree(app, nodes, size)
    }
    fn put_checkpoint(&self, app: &str, size: u64, note: &[u8]) -> StoreResult<()> {
        self.inner.put_checkpoint(app, size, note)
    }
    fn checkpoints(&self, app: &str, from: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.inner.checkpoints(app, from)
    }
    fn last_checkpoint(&self, app: &str) -> StoreResult<Option<(u64, Vec<u8>)>> {
        self.inner.last_checkpoint(app)
    }
}

/// `benches::sled_ledger`, on the switchable store.
fn switch_ledger(keep_tree: bool) -> (Arc<Ledger>, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Switch {
        inner: SledStore::open(&dir.path().join("store")).expect("store"),
        keep_tree: AtomicBool::new(keep_tree),
    };
    let config = LedgerConfig {
        store: Arc::new(store),
        keys: Arc::new(FileKeyStore::new(dir.path().join("keys"))),
        clock: Arc::new(SystemClock),
        seed: None,
        max_group: 4096,
        checkpoints: Default::default(),
    };
    let l = Ledger::open(config).expect("open");
    l.ensure_builtin_apps().expect("apps");
    let u = l
        .append(benches::create_request(
            "_User",
            json!({"username": "bench.manager", "role": "manager", "email": "bench@example.com"}),
        ))
        .expect("user");
    let id = u.event.subject.expect("subject").object_id;
    (Arc::new(l), dir, id)
}

fn append_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("merkle_append_durable");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(3));
    let batch: u64 = 20_000;
    g.throughput(Throughput::Elements(batch));
    for keep in [false, true] {
        let (l, _dir, approver) = switch_ledger(keep);
        let name = if keep { "with_tree" } else { "without_tree" };
        g.bench_function(format!("{name}_64_clients"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    benches::append_concurrently(&l, &approver, 64, batch);
                }
                start.elapsed()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("merkle_frontier");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push", |b| {
        let mut f = Frontier::new();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let h = *blake3::hash(&i.to_be_bytes()).as_bytes();
            f.push::<Blake3>(&h)
        })
    });
    g.finish();
}

const LEAVES: u64 = 1_000_000;

/// A small deterministic generator (so runs are comparable without a rand dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) % n
    }
}

fn proofs(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("store");
    let tree = StoredTree::new(&store, "gxp");
    let start = Instant::now();
    tree.extend(
        (1..=LEAVES).map(|i| Ok(*blake3::hash(&i.to_be_bytes()).as_bytes())),
        65_536,
    )
    .expect("build");
    store.sync().expect("sync");
    eprintln!("built a {LEAVES}-leaf tree in {:?}", start.elapsed());
    let root = tree.root(LEAVES).expect("root");

    let mut g = c.benchmark_group("merkle_proof_1m");
    g.sample_size(50);
    let mut rng = Lcg(7);
    g.bench_function("root", |b| b.iter(|| tree.root(LEAVES).expect("root")));
    g.bench_function("inclusion", |b| {
        b.iter_batched(
            || rng.below(LEAVES) + 1,
            |seq| tree.inclusion_path(seq, LEAVES).expect("path"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("consistency", |b| {
        b.iter_batched(
            || rng.below(LEAVES - 1) + 1,
            |old| tree.consistency_path(old, LEAVES).expect("proof"),
            BatchSize::SmallInput,
        )
    });
    // Verification, offline (no store): a proof of a random leaf.
    let seq = 777_777;
    let path = tree.inclusion_path(seq, LEAVES).expect("path");
    let leaf = ledger::merkle::event_leaf(blake3::hash(&seq.to_be_bytes()).as_bytes());
    g.bench_function("verify_inclusion", |b| {
        b.iter(|| {
            ledger::merkle::verify_inclusion::<Blake3>(&leaf, seq - 1, LEAVES, &path, &root)
                .expect("verifies")
        })
    });
    g.finish();
}

criterion_group!(benches, proofs, append_cost);
criterion_main!(benches);
