//! Where the log comes from: an export file (the auditor's own copy), a data directory no
//! server holds, or a running server reached over its HTTP API. Each answers the same
//! questions ([`Source`]) with the same types, so every command and every output format
//! works the same on all three, and the tests can compare them.

mod local;
mod remote;

use std::io::Write;

use ledger::verify::VerifyReport;
use ledger::{ConsistencyProof, InclusionProof, PublicKey, Timestamp, VerifyMode};
use projections::report::{DayReport, Diff, History};
use projections::when::Day;
use serde::Serialize;
use serde_json::{Map, Value};

pub use local::Local;
pub use remote::{Credentials, Remote};

/// A key the chain declared, as the `keys` command and the reports show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRow {
    /// The app.
    pub app: String,
    /// The key id (hex).
    pub key_id: String,
    /// The ed25519 public key (hex).
    pub public_key: String,
    /// The event that declared it.
    pub from_seq: u64,
    /// The last event it signed, once a rotation replaced it.
    pub to_seq: Option<u64>,
}

/// The records of one class as they stood at an instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassAt {
    /// The class.
    pub class: String,
    /// Its records as Parse objects, in objectId order.
    pub records: Vec<Map<String, Value>>,
}

/// An app's records (every class, or one) as they stood at an instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AtReport {
    /// The app.
    pub app: String,
    /// The instant asked for (RFC 3339, UTC).
    pub at: String,
    /// The last event at or before it: the answer reflects events 1 to this one.
    pub seq: u64,
    /// The filter applied, if any.
    #[serde(rename = "where")]
    pub where_: Option<Value>,
    /// The classes, by name.
    pub classes: Vec<ClassAt>,
}

/// What every source answers.
pub trait Source {
    /// What the source is, for messages and reports ("export file x.ndjson"…).
    fn describe(&self) -> String;
    /// The apps it holds.
    fn apps(&self) -> anyhow::Result<Vec<String>>;
    /// The classes of an app's current schema.
    fn classes(&self, app: &str) -> anyhow::Result<Vec<String>>;
    /// Verifies each app's chain. `trusted` pins the genesis keys; `progress` is shown
    /// on long runs.
    fn verify(
        &self,
        apps: &[String],
        mode: VerifyMode,
        trusted: Option<Vec<PublicKey>>,
    ) -> anyhow::Result<Vec<VerifyReport>>;
    /// The keys an app's chain declares.
    fn keys(&self, app: &str) -> anyhow::Result<Vec<KeyRow>>;
    /// A class's records (those matching `where_`) as they stood at `t`.
    fn class_at(
        &self,
        app: &str,
        class: &str,
        where_: Option<&Value>,
        t: Timestamp,
    ) -> anyhow::Result<(u64, Vec<Map<String, Value>>)>;
    /// Everything recorded in a day.
    fn day(&self, app: &str, day: &Day) -> anyhow::Result<DayReport>;
    /// What changed between two instants.
    fn diff(
        &self,
        app: &str,
        class: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> anyhow::Result<Diff>;
    /// A record's history.
    fn history(&self, app: &str, class: &str, object_id: &str) -> anyhow::Result<History>;
    /// Writes an export of `apps` (docs/FORMAT.md §4). Returns the events written.
    fn export(&self, apps: &[String], out: &mut dyn Write) -> anyhow::Result<u64>;
    /// Event `seq` of an app as its export line (docs/FORMAT.md §4.3).
    fn event_line(&self, app: &str, seq: u64) -> anyhow::Result<Value>;
    /// A proof that event `seq` is in the tree of `size` events (default: the latest
    /// kept checkpoint's, which must cover it), and the checkpoint kept at that size.
    fn inclusion(
        &self,
        app: &str,
        seq: u64,
        size: Option<u64>,
    ) -> anyhow::Result<(InclusionProof, Option<String>)>;
    /// A proof that the tree of `from` events is a prefix of the tree of `to` (default:
    /// the latest kept checkpoint's), and the checkpoints kept at both sizes.
    fn consistency(
        &self,
        app: &str,
        from: u64,
        to: Option<u64>,
    ) -> anyhow::Result<(ConsistencyProof, Option<String>, Option<String>)>;
}

/// The strings of the array at `key` of a JSON object (an export header's or `/health`'s
/// `apps`), or `None` if there is no such array.
fn strings(v: &Value, key: &str) -> Option<Vec<String>> {
    v.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}
