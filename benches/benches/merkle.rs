//! The Merkle tree (SPEC §3.5; issue 7): what maintaining it costs durable appends
//! (target: ≤ 10%), and proofs in a 1,000,000-event log (target: ≤ 1 ms each).
//!
//! - `merkle_append_durable/{without,with}_tree_64_clients`: the `append` bench's set-up
//!   (64 clients, durable, group-committed) on a store wrapper that drops, or keeps, the
//!   tree nodes of every batch before sled sees them. Both variants go through the same
//!   wrapper (one batch copy each), so the difference is the cost of writing the nodes.
//!   The builder's frontier hashing runs in both: `merkle_frontier/push` measures it.
//! - `merkle_batch_write/*`: the writer's part alone: one app batch of 64 realistic events
//!   (as a 64-client group commit writes them: event, version index, record state, head)
//!   applied to sled, with and without their tree nodes; `*_synced` adds the flush and
//!   fsync each group pays. Timed by the writing thread's CPU time.
//! - with `MERKLE_INTERLEAVED=1`, also 12 rounds alternating between the two ledgers
//!   (printed medians): the fairest comparison on a machine whose load drifts.
//! - `*_cpu_time`: the same work timed by the process's CPU time (all threads), which
//!   other processes on a shared machine disturb far less than the wall clock.
//! - `merkle_proof_1m/*`: proofs from a 1,000,000-leaf tree built directly in a sled store
//!   configured as the ledger's (`StoredTree::extend`), random leaves and sizes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledger::merkle::{Blake3, Frontier, StoredTree};
use ledger::store::{
    AppBatch, EventWrite, Mark, RawEvents, RecordState, SledStore, Store, StoreResult, TreeNodes,
};
use ledger::{FileKeyStore, Ledger, LedgerConfig, SystemClock};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU time of the whole process (all threads), from `/proc/self/stat` (utime + stime,
/// in clock ticks of 1/100 s): less disturbed than wall time by other processes on a
/// shared machine. Long runs only (10 ms resolution).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces; fields after the closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    Duration::from_millis((f[11] + f[12]) * 10)
}

/// CPU time of the calling thread, in nanoseconds, from `/proc/thread-self/schedstat`.
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    Duration::from_nanos(
        s.split_whitespace()
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0),
    )
}

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
    fn sync_appends(&self) -> StoreResult<()> {
        self.inner.sync_appends()
    }
    fn writes_durable(&self) -> bool {
        self.inner.writes_durable()
    }
    fn refuses_writes(&self) -> Option<String> {
        self.inner.refuses_writes()
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
        min_free_bytes: 0,
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
        // The same work, timed by the process's CPU time instead of the wall clock.
        g.bench_function(format!("{name}_64_clients_cpu_time"), |b| {
            b.iter_custom(|iters| {
                let start = process_cpu();
                for _ in 0..iters {
                    benches::append_concurrently(&l, &approver, 64, batch);
                }
                process_cpu().saturating_sub(start)
            })
        });
    }
    g.finish();

    if std::env::var_os("MERKLE_INTERLEAVED").is_some() {
        interleaved();
    }

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

/// One group's batch: `n` events from `first`, shaped like the `append` bench's.
fn group_batch(first: u64, n: u64, frontier: &mut Frontier, with_tree: bool) -> AppBatch {
    let mut events = Vec::with_capacity(n as usize);
    let mut head = (0, [0u8; 32]);
    for seq in first..first + n {
        let hash = *blake3::hash(&seq.to_be_bytes()).as_bytes();
        let nodes = frontier.push::<Blake3>(&hash);
        let object_id = format!("{:010x}", blake3::hash(&hash).as_bytes()[0] as u64 * seq);
        events.push(EventWrite {
            seq,
            bytes: vec![0x5a; 700],
            version: Some(("ValidationLog".into(), object_id.clone(), 3)),
            sets_state: Some(RecordState {
                deleted: false,
                since: seq,
            }),
            idempotency_key: None,
            mark: None,
            tree_nodes: if with_tree { nodes } else { Vec::new() },
        });
        head = (seq, hash);
    }
    AppBatch {
        app: "gxp".into(),
        events,
        head,
    }
}

fn batch_writes(c: &mut Criterion) {
    const GROUP: u64 = 64;
    let mut g = c.benchmark_group("merkle_batch_write");
    g.throughput(Throughput::Elements(GROUP));
    g.sample_size(30);
    for synced in [false, true] {
        for with_tree in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = SledStore::open(dir.path()).expect("store");
            let mut frontier = Frontier::new();
            let mut next = 1u64;
            let name = format!(
                "{}{}",
                if with_tree {
                    "events_and_tree"
                } else {
                    "events_only"
                },
                if synced { "_synced" } else { "" }
            );
            // Timed by the writing thread's CPU time (the fsync's wait is not CPU).
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let batches: Vec<AppBatch> = (0..iters)
                        .map(|_| {
                            let batch = group_batch(next, GROUP, &mut frontier, with_tree);
                            next += GROUP;
                            batch
                        })
                        .collect();
                    let start = thread_cpu();
                    for batch in &batches {
                        store.write(std::slice::from_ref(batch)).expect("write");
                        if synced {
                            store.sync().expect("sync");
                        }
                    }
                    thread_cpu().saturating_sub(start)
                })
            });
        }
    }
    g.finish();
}

/// With `MERKLE_INTERLEAVED=1`: rounds of 20,000 appends by 64 clients alternating between
/// the two ledgers, so that the machine's load drifts over both alike; prints the median
/// wall-clock rate and CPU time per event of each.
fn interleaved() {
    const ROUNDS: usize = 12;
    const BATCH: u64 = 20_000;
    let ledgers = [switch_ledger(false), switch_ledger(true)];
    let mut wall = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    for round in 0..=ROUNDS {
        for (i, (l, _dir, approver)) in ledgers.iter().enumerate() {
            let (t0, c0) = (Instant::now(), process_cpu());
            benches::append_concurrently(l, approver, 64, BATCH);
            let (t, c) = (t0.elapsed(), process_cpu().saturating_sub(c0));
            if round > 0 {
                // Round 0 warms both up.
                wall[i].push(BATCH as f64 / t.as_secs_f64());
                cpu[i].push(c.as_secs_f64() * 1e6 / BATCH as f64);
            }
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    // Each round's two runs saw about the same load: their ratio is the fairest figure.
    let ratios: Vec<f64> = wall[1].iter().zip(&wall[0]).map(|(w, wo)| w / wo).collect();
    eprintln!(
        "interleaved: median rate ratio with/without tree {:.3} (per round: {:?})",
        median(&ratios),
        ratios
            .iter()
            .map(|r| (r * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    for (i, name) in ["without_tree", "with_tree"].iter().enumerate() {
        eprintln!(
            "interleaved {name}: median {:.0} events/s wall, {:.1} µs CPU per event (rounds: {:?})",
            median(&wall[i]),
            median(&cpu[i]),
            wall[i].iter().map(|x| x.round()).collect::<Vec<_>>()
        );
    }
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

criterion_group!(benches, proofs, batch_writes, append_cost);
criterion_main!(benches);
