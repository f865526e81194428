//! Proof files (docs/FORMAT.md §8.7): what `prove` writes and `check-proof` checks,
//! offline, with nothing but the file and the app's public key.
//!
//! - `inclusion`: one event (its export line), its inclusion proof and the signed
//!   checkpoint it leads to;
//! - `record`: every event of one record's history, each with its inclusion proof, and
//!   the one checkpoint they all lead to: a sampled record checked without the log;
//! - `consistency`: a consistency proof between two checkpoints: the newer log extends
//!   the older one (or the one the checker kept).
//!
//! Checking recomputes each event's payload digest and hash from its content
//! (docs/FORMAT.md §3), so an edited event fails even when the proof and checkpoint are
//! genuine.

use ledger::export::parse_event;
use ledger::{Checkpoint, ConsistencyProof, InclusionProof, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One event with its inclusion proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProvedEvent {
    /// The event as an export line (docs/FORMAT.md §4.3).
    pub event: Value,
    /// Its inclusion proof (§8.4).
    pub proof: InclusionProof,
}

/// A proof file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "proof", rename_all = "snake_case")]
pub enum ProofFile {
    /// One event is in the log the checkpoint signs.
    Inclusion {
        /// The event as an export line (docs/FORMAT.md §4.3).
        event: Value,
        /// Its inclusion proof (§8.4), its fields beside `event`.
        #[serde(flatten)]
        inclusion: InclusionProof,
        /// The signed checkpoint (C2SP text).
        checkpoint: String,
    },
    /// Every event of one record is in the log the checkpoint signs.
    Record {
        /// The app.
        app: String,
        /// The record's class.
        class: String,
        /// The record's objectId.
        object_id: String,
        /// Its events in order, each with its proof.
        events: Vec<ProvedEvent>,
        /// The signed checkpoint (C2SP text).
        checkpoint: String,
    },
    /// The newer checkpoint's log extends the older one's.
    Consistency {
        /// The proof (§8.4), its fields beside the checkpoints.
        #[serde(flatten)]
        consistency: ConsistencyProof,
        /// The older checkpoint, when the source kept one of that size (the checker may
        /// use the one they kept instead).
        old_checkpoint: Option<String>,
        /// The newer checkpoint.
        checkpoint: String,
    },
}

/// Why a proof file does not check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A checkpoint is malformed or not signed by any key given.
    #[error("{which} checkpoint: {why}")]
    Checkpoint {
        /// Which one ("the", "the old", "the new").
        which: &'static str,
        /// Why.
        why: String,
    },
    /// An event line is malformed, or its content does not hash to what it claims.
    #[error("event {seq}: {why}")]
    Event {
        /// The event.
        seq: u64,
        /// Why.
        why: String,
    },
    /// A proof does not lead to the checkpoint.
    #[error("{0}")]
    Proof(String),
}

/// What a proof file showed, when it checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// The app.
    pub app: String,
    /// What was proved, in words.
    pub statement: String,
}

fn checkpoint(
    text: &str,
    keys: &[PublicKey],
    which: &'static str,
) -> Result<Checkpoint, CheckError> {
    let cp = Checkpoint::parse(text).map_err(|e| CheckError::Checkpoint {
        which,
        why: e.to_string(),
    })?;
    let mut last = None;
    for k in keys {
        match cp.verify(k) {
            Ok(()) => return Ok(cp),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(CheckError::Checkpoint {
        which,
        why: format!(
            "not signed by the key{} given ({})",
            if keys.len() == 1 { "" } else { "s" },
            last.unwrap_or_else(|| "no key given".into())
        ),
    })
}

/// Checks one event: its content hashes to the proved hash, and the proof leads from it
/// to the checkpoint. Returns the event.
fn event_in(
    event: &Value,
    proof: &InclusionProof,
    cp: &Checkpoint,
) -> Result<ledger::Event, CheckError> {
    let seq = proof.seq;
    let e = parse_event(event).map_err(|why| CheckError::Event { seq, why })?;
    if e.seq != seq || e.app != proof.app {
        return Err(CheckError::Event {
            seq,
            why: format!(
                "the line is event {} of app {}, the proof is for event {seq} of {}",
                e.seq, e.app, proof.app
            ),
        });
    }
    // The hash commits to the payload's digest (so a payload can be lawfully removed,
    // docs/FORMAT.md §6); a payload that is present must match it.
    if let Some(payload) = &e.payload {
        let digest = ledger::canonical::payload_digest(payload);
        if digest != e.payload_digest {
            return Err(CheckError::Event {
                seq,
                why: format!(
                    "its payload digests to {}, not to the digest it states ({}): the event was altered",
                    hex::encode(digest),
                    hex::encode(e.payload_digest)
                ),
            });
        }
    }
    let hash = ledger::canonical::event_hash(&e);
    if hash != e.hash {
        return Err(CheckError::Event {
            seq,
            why: format!(
                "its content hashes to {}, not to the hash it states ({}): the event was altered",
                hex::encode(hash),
                hex::encode(e.hash)
            ),
        });
    }
    proof
        .verify(&hash, cp)
        .map_err(|f| CheckError::Proof(format!("event {seq}: {f}")))?;
    Ok(e)
}

/// Checks a proof file against the app's public keys (any of them may have signed the
/// checkpoints). `kept`: a checkpoint the checker kept, to use as the older one of a
/// consistency proof instead of the file's.
pub fn check(
    file: &ProofFile,
    keys: &[PublicKey],
    kept: Option<&str>,
) -> Result<Checked, CheckError> {
    match file {
        ProofFile::Inclusion {
            event,
            inclusion,
            checkpoint: text,
        } => {
            let cp = checkpoint(text, keys, "the")?;
            let e = event_in(event, inclusion, &cp)?;
            Ok(Checked {
                app: e.app.clone(),
                statement: format!(
                    "event {} ({}, recorded {}) is in the log of {} events signed at {}",
                    e.seq,
                    e.kind,
                    e.recorded_at,
                    cp.size(),
                    cp.time().to_rfc3339()
                ),
            })
        }
        ProofFile::Record {
            app,
            class,
            object_id,
            events,
            checkpoint: text,
        } => {
            let cp = checkpoint(text, keys, "the")?;
            if events.is_empty() {
                return Err(CheckError::Proof("the file proves no event".into()));
            }
            let mut last = 0;
            for p in events {
                let e = event_in(&p.event, &p.proof, &cp)?;
                let about = e
                    .subject
                    .as_ref()
                    .is_some_and(|s| &s.class == class && &s.object_id == object_id);
                if e.app != *app || !about {
                    return Err(CheckError::Event {
                        seq: e.seq,
                        why: format!("it is not an event of {app} {class} {object_id}"),
                    });
                }
                if e.seq <= last {
                    return Err(CheckError::Event {
                        seq: e.seq,
                        why: "events are not in increasing order".into(),
                    });
                }
                last = e.seq;
            }
            Ok(Checked {
                app: app.clone(),
                statement: format!(
                    "{} events of {class} {object_id} (the last is event {last}) are in the log of {} events signed at {}",
                    events.len(),
                    cp.size(),
                    cp.time().to_rfc3339()
                ),
            })
        }
        ProofFile::Consistency {
            consistency: proof,
            old_checkpoint,
            checkpoint: text,
        } => {
            let old_text = kept.or(old_checkpoint.as_deref()).ok_or_else(|| {
                CheckError::Proof(
                    "the file has no older checkpoint: give the one you kept (--old-checkpoint)"
                        .into(),
                )
            })?;
            let old = checkpoint(old_text, keys, "the old")?;
            let new = checkpoint(text, keys, "the new")?;
            proof
                .verify(&old, &new)
                .map_err(|f| CheckError::Proof(f.to_string()))?;
            Ok(Checked {
                app: proof.app.clone(),
                statement: format!(
                    "the log of {} events signed at {} extends the log of {} events signed at {}: nothing before was rewritten",
                    new.size(),
                    new.time().to_rfc3339(),
                    old.size(),
                    old.time().to_rfc3339()
                ),
            })
        }
    }
}
