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

type RawChunk = Vec<Result<(u64, Vec<u8>), String>>;

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
        let receivers: Vec<mpsc::Receiver<RawChunk>> = (0..READERS)
            .map(|r| {
                let (tx, rx) = mpsc::sync_channel::<RawChunk>(2);
                scope.spawn(move || {
                    let mut k = r;
                    loop {
                        let from = 1 + k * chunk_len;
                        if from > upto {
                            return;
                        }
                        let last = upto.min(from + chunk_len - 1);
                        // Keys are sequence numbers: a chunk is exactly the keys in its
                        // range, whatever is missing or extra in the store.
                        let chunk: RawChunk = store
                            .scan(app, from)
                            .take_while(|r| r.as_ref().map_or(true, |(s, _)| *s <= last))
                            .map(|r| r.map_err(|e| e.to_string()))
                            .collect();
                        if tx.send(chunk).is_err() {
                            return;
                        }
                        k += READERS;
                    }
                });
                rx
            })
            .collect();
        // Chunks arrive in order by taking them from the readers in turn.
        'chunks: for k in 0.. {
            let Ok(chunk) = receivers[(k % READERS) as usize].recv() else {
                break 'chunks;
            };
            push_raw(&mut verifier, chunk);
            if verifier.failed() {
                break;
            }
        }
    });
    verifier.finish()
}

fn push_raw(verifier: &mut ChainVerifier, chunk: RawChunk) {
    verifier.push_with(chunk, |app, r| match r {
        Ok((seq, bytes)) => Item {
            key: Some(seq),
            summary: codec::summarize(app, &bytes),
        },
        Err(e) => Item {
            key: None,
            summary: Err(format!("read error: {e}")),
        },
    });
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
        let (tx, rx) = mpsc::sync_channel::<Vec<Result<(u64, Vec<u8>), String>>>(2);
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            for r in raw {
                chunk.push(r.map_err(|e| e.to_string()));
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send(full).is_err() {
                        return;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
        });
        for chunk in rx {
            push_raw(&mut verifier, chunk);
            if verifier.failed() {
                break;
            }
        }
    });
    verifier.finish()
}
