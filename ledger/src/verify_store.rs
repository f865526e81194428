//! Verifying a store's chain: reader threads fetch raw events in chunks while the
//! verifier decodes, hashes and checks signatures of earlier chunks in parallel.

use std::sync::mpsc;

use crate::codec;
use crate::store::Store;
use crate::verify::{ChainVerifier, Item, VerifyMode, VerifyPolicy, VerifyReport};

/// Events per chunk handed from a reader to the verifier.
pub(crate) const CHUNK: usize = 8192;

/// Reader threads over a store: chunk k (events 1 + k·CHUNK …) is read by reader k mod
/// READERS, so a scan of sled's B-tree, the slowest serial step, runs on several cores.
const READERS: u64 = 2;

/// Raw stored events packed into one buffer: `bytes` holds them end to end, `records`
/// each one's sequence number and place (or why it could not be read). Buffers go back to
/// their reader to be reused: a scan then allocates a few buffers, not one per event, and
/// no event is allocated on one thread and freed on another (which left the allocator
/// returning pages to the kernel and zeroing fresh ones: a fifth of the CPU of a
/// links-only check).
#[derive(Default)]
struct RawChunk {
    bytes: Vec<u8>,
    records: Vec<Result<(u64, std::ops::Range<usize>), String>>,
}

impl RawChunk {
    fn push(&mut self, raw: Result<(u64, &[u8]), String>) {
        self.records.push(raw.map(|(seq, event)| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(event);
            (seq, start..self.bytes.len())
        }));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}

/// Empty chunks for a reader: one sent back by the verifier if any, else a new one, at
/// most `BUFFERS` in all (two queued, one being verified, one being filled).
struct Buffers {
    reuse: mpsc::Receiver<RawChunk>,
    made: usize,
}

impl Buffers {
    const BUFFERS: usize = 4;

    fn fresh(&mut self) -> RawChunk {
        let reused = match self.reuse.try_recv() {
            Ok(c) => Some(c),
            Err(_) if self.made >= Self::BUFFERS => self.reuse.recv().ok(),
            Err(_) => None,
        };
        let mut c = reused.unwrap_or_else(|| {
            self.made += 1;
            // Sized once for a chunk of typical events: growing by doubling would touch
            // (and have the kernel zero) fresh pages at every step.
            RawChunk {
                bytes: Vec::with_capacity(CHUNK * 512),
                records: Vec::with_capacity(CHUNK),
            }
        });
        c.clear();
        c
    }
}

/// Verifies events `1..=upto` of `app` as stored.
pub fn verify_store(
    store: &dyn Store,
    app: &str,
    mode: VerifyMode,
    policy: VerifyPolicy,
    upto: u64,
) -> VerifyReport {
    let mut verifier = ChainVerifier::new(app, mode, policy);
    let chunk_len = CHUNK as u64;
    std::thread::scope(|scope| {
        let readers: Vec<(mpsc::Receiver<RawChunk>, mpsc::Sender<RawChunk>)> = (0..READERS)
            .map(|r| {
                let (tx, rx) = mpsc::sync_channel::<RawChunk>(2);
                let (recycle, reuse) = mpsc::channel::<RawChunk>();
                scope.spawn(move || {
                    let mut buffers = Buffers { reuse, made: 0 };
                    let mut k = r;
                    loop {
                        let from = 1 + k * chunk_len;
                        if from > upto {
                            return;
                        }
                        let last = upto.min(from + chunk_len - 1);
                        // Keys are sequence numbers: a chunk is exactly the keys in its
                        // range, whatever is missing or extra in the store.
                        let mut chunk = buffers.fresh();
                        store.read_range(app, from, last, &mut |r| {
                            chunk.push(r.map_err(|e| e.to_string()))
                        });
                        if tx.send(chunk).is_err() {
                            return;
                        }
                        k += READERS;
                    }
                });
                (rx, recycle)
            })
            .collect();
        // Chunks arrive in order by taking them from the readers in turn.
        'chunks: for k in 0.. {
            let (chunks, recycle) = &readers[(k % READERS) as usize];
            let Ok(mut chunk) = chunks.recv() else {
                break 'chunks;
            };
            push_raw(&mut verifier, &mut chunk);
            let _ = recycle.send(chunk);
            if verifier.failed() {
                break;
            }
        }
    });
    verifier.finish()
}

fn push_raw(verifier: &mut ChainVerifier, chunk: &mut RawChunk) {
    let bytes = chunk.bytes.as_slice();
    // Drained, not moved: the chunk keeps its record list for reuse.
    verifier.push_with(
        rayon::iter::ParallelDrainRange::par_drain(&mut chunk.records, ..),
        |app, r| match r {
            Ok((seq, at)) => Item {
                key: Some(seq),
                summary: bytes
                    .get(at)
                    .ok_or_else(|| "a record outside its chunk".to_string())
                    .and_then(|event| codec::summarize(app, event)),
            },
            Err(e) => Item {
                key: None,
                summary: Err(format!("read error: {e}")),
            },
        },
    );
}

/// Verifies raw stored records `(key seq, bytes)` in key order. Read errors count as
/// undecodable records at the next expected position.
pub fn verify_raw<I, E>(app: &str, mode: VerifyMode, policy: VerifyPolicy, raw: I) -> VerifyReport
where
    I: Iterator<Item = Result<(u64, Vec<u8>), E>> + Send,
    E: std::fmt::Display,
{
    let mut verifier = ChainVerifier::new(app, mode, policy);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<RawChunk>(2);
        let (recycle, reuse) = mpsc::channel::<RawChunk>();
        scope.spawn(move || {
            let mut buffers = Buffers { reuse, made: 0 };
            let mut chunk = buffers.fresh();
            for r in raw {
                chunk.push(
                    r.as_ref()
                        .map(|(seq, bytes)| (*seq, bytes.as_slice()))
                        .map_err(|e| e.to_string()),
                );
                if chunk.records.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, buffers.fresh());
                    if tx.send(full).is_err() {
                        return;
                    }
                }
            }
            if !chunk.records.is_empty() {
                let _ = tx.send(chunk);
            }
        });
        for mut chunk in rx {
            push_raw(&mut verifier, &mut chunk);
            let _ = recycle.send(chunk);
            if verifier.failed() {
                break;
            }
        }
    });
    verifier.finish()
}
