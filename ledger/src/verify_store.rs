//! Verifying a store's chain: one thread reads raw events in order while the verifier
//! decodes, hashes and checks signatures of the previous chunk in parallel.

use std::sync::mpsc;

use crate::codec;
use crate::store::Store;
use crate::verify::{ChainVerifier, Item, VerifyMode, VerifyPolicy, VerifyReport};

/// Events per chunk handed from the reader to the verifier.
pub(crate) const CHUNK: usize = 8192;

/// Verifies events `1..=upto` of `app` as stored (every stored event if `upto` is `u64::MAX`).
pub fn verify_store(
    store: &dyn Store,
    app: &str,
    mode: VerifyMode,
    policy: VerifyPolicy,
    upto: u64,
) -> VerifyReport {
    verify_raw(
        app,
        mode,
        policy,
        store
            .scan(app, 1)
            .take_while(|r| r.as_ref().map_or(true, |(s, _)| *s <= upto)),
    )
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
            if verifier.failed() {
                break;
            }
        }
    });
    verifier.finish()
}
