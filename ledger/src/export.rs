//! The export: NDJSON, one JSON object a line (docs/FORMAT.md §4). A header line, then per
//! app a line with its published keys followed by its events in order. Reading an export
//! and verifying it needs no store.

use std::borrow::Cow;
use std::io::{BufRead, Write};

use serde_json::{json, Value};

use crate::codec;
use crate::event::{Actor, Event, EventKind, KeyId, Subject};
use crate::keys::PublicKey;
use crate::ledger::ReadError;
use crate::store::Store;
use crate::time::Timestamp;
use crate::verify::{
    ChainVerifier, Item, KeyRange, Summary, VerifyMode, VerifyPolicy, VerifyReport,
};

/// The format name in the header line.
pub const FORMAT: &str = "audit-ledger/export";
/// The format version in the header line.
pub const VERSION: u64 = 1;

/// Errors writing or reading an export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing or reading the file failed.
    #[error("export I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A line that is not what the format says.
    #[error("export line {line}: {why}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        why: String,
    },
}

/// An event line, fields in the documented order (docs/FORMAT.md §4.3).
#[derive(serde::Serialize)]
struct EventLine<'a> {
    #[serde(rename = "type")]
    line_type: &'static str,
    app: &'a str,
    seq: u64,
    id: String,
    recorded_at_us: i64,
    recorded_at: String,
    actor: &'a Actor,
    idempotency_key: Option<&'a str>,
    reason: Option<&'a str>,
    kind: &'static str,
    subject: Option<&'a Subject>,
    payload: Option<std::borrow::Cow<'a, str>>,
    payload_digest: String,
    prev_hash: String,
    key_id: String,
    hash: String,
    signature: String,
}

fn event_line_struct(e: &Event) -> EventLine<'_> {
    EventLine {
        line_type: "event",
        app: &e.app,
        seq: e.seq,
        id: hex::encode(e.id),
        recorded_at_us: e.recorded_at.0,
        recorded_at: e.recorded_at.to_rfc3339(),
        actor: &e.actor,
        idempotency_key: e.idempotency_key.as_deref(),
        reason: e.reason.as_deref(),
        kind: e.kind.name(),
        subject: e.subject.as_ref(),
        payload: e.payload.as_deref().map(String::from_utf8_lossy),
        payload_digest: hex::encode(e.payload_digest),
        prev_hash: hex::encode(e.prev_hash),
        key_id: e.key_id.to_string(),
        hash: hex::encode(e.hash),
        signature: hex::encode(e.signature),
    }
}

/// One event as an export line (one JSON object, no newline).
pub fn event_line(e: &Event) -> String {
    serde_json::to_string(&event_line_struct(e)).unwrap_or_default()
}

/// One app's part of an export: its chain up to a head, and its keys.
#[derive(Clone, Debug)]
pub struct Section {
    /// The app.
    pub app: String,
    /// The last event exported.
    pub head_seq: u64,
    /// Its hash.
    pub head_hash: [u8; 32],
    /// The keys the chain declares.
    pub keys: Vec<KeyRange>,
}

/// The line introducing an app's section: its head and its keys as the chain declares them.
pub fn app_line(s: &Section) -> Value {
    let keys = &s.keys;
    json!({
        "type": "app",
        "app": s.app,
        "head_seq": s.head_seq,
        "head_hash": hex::encode(s.head_hash),
        "keys": keys.iter().map(|k| json!({
            "key_id": k.key_id.to_string(),
            "algorithm": "ed25519",
            "public_key": k.public_key,
            "from_seq": k.from_seq,
            "to_seq": k.to_seq,
        })).collect::<Vec<_>>(),
    })
}

/// Writes the header and each (app, last seq, keys) section. Returns the events written.
pub fn write(
    store: &dyn Store,
    sections: &[Section],
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer(&mut out, &json!({"type": "export", "format": FORMAT, "version": VERSION, "apps": sections.iter().map(|s| &s.app).collect::<Vec<_>>()}))
        .map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    let mut n = 0;
    for section in sections {
        let (app, last) = (&section.app, &section.head_seq);
        serde_json::to_writer(&mut out, &app_line(section)).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        for r in store.scan(app, 1) {
            let (seq, bytes) = r.map_err(ReadError::from)?;
            if seq > *last {
                break;
            }
            let e = codec::decode(&bytes).map_err(|detail| ReadError::Corrupt {
                app: app.clone(),
                seq,
                detail,
            })?;
            serde_json::to_writer(&mut out, &event_line_struct(&e))
                .map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}

fn hex_array<const N: usize>(v: &Value, field: &str) -> Result<[u8; N], String> {
    let s = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field:?} must be a string"))?;
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| format!("{field:?} must be {} hex digits", N * 2))?;
    Ok(out)
}

fn opt_string(v: &Value, field: &str) -> Result<Option<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{field:?} must be a string or null")),
    }
}

fn string(v: &Value, field: &str) -> Result<String, String> {
    opt_string(v, field)?.ok_or_else(|| format!("{field:?} is missing"))
}

/// An event line as read: borrowed where the JSON has no escapes (docs/FORMAT.md §4.3).
/// Read by [`crate::export_line::read`] when the line has the exporter's layout, by
/// serde_json otherwise.
#[derive(serde::Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventLineIn<'a> {
    #[serde(rename = "type")]
    pub(crate) line_type: &'a str,
    #[serde(borrow)]
    pub(crate) app: Cow<'a, str>,
    pub(crate) seq: u64,
    pub(crate) id: &'a str,
    pub(crate) recorded_at_us: i64,
    #[serde(borrow)]
    pub(crate) recorded_at: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) actor: ActorIn<'a>,
    #[serde(borrow)]
    pub(crate) idempotency_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) reason: Option<Cow<'a, str>>,
    pub(crate) kind: &'a str,
    #[serde(borrow)]
    pub(crate) subject: Option<SubjectIn<'a>>,
    #[serde(borrow)]
    pub(crate) payload: Option<Cow<'a, str>>,
    pub(crate) payload_digest: &'a str,
    pub(crate) prev_hash: &'a str,
    pub(crate) key_id: &'a str,
    pub(crate) hash: &'a str,
    pub(crate) signature: &'a str,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActorIn<'a> {
    #[serde(borrow)]
    pub(crate) user_id: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) username: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) role: Cow<'a, str>,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubjectIn<'a> {
    #[serde(borrow)]
    pub(crate) class: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) object_id: Cow<'a, str>,
}

/// Exactly `2 N` hex digits (no `0x` prefix) into N bytes; on every event line's hot path,
/// hence the SIMD decoder.
fn hex_field<const N: usize>(s: &str, field: &str) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    if s.len() != 2 * N || const_hex::decode_to_slice(s, &mut out).is_err() {
        return Err(format!("{field:?} must be {} hex digits", N * 2));
    }
    Ok(out)
}

/// An event line read and checked, its fields borrowed from the line (strings with
/// escapes, such as the payload, unescaped into their own buffers).
struct LineView<'a> {
    l: EventLineIn<'a>,
    recorded_at: Timestamp,
    kind: EventKind,
    id: [u8; 16],
    payload_digest: [u8; 32],
    prev_hash: [u8; 32],
    key_id: [u8; 8],
    hash: [u8; 32],
    signature: [u8; 64],
}

impl<'a> LineView<'a> {
    fn read(line: &'a str) -> Result<Self, String> {
        let l: EventLineIn<'a> = match crate::export_line::read(line) {
            Some(l) => l,
            None => serde_json::from_str(line).map_err(|e| format!("not an event line: {e}"))?,
        };
        if l.line_type != "event" {
            return Err(format!("\"type\" is {:?}, not \"event\"", l.line_type));
        }
        let recorded_at = Timestamp(l.recorded_at_us);
        // The text form is informative, but it must not say something else than the hashed one.
        if !recorded_at.is_rfc3339(&l.recorded_at) {
            return Err(format!(
                "\"recorded_at\" {} is not recorded_at_us {} formatted ({recorded_at})",
                l.recorded_at, l.recorded_at_us
            ));
        }
        Ok(LineView {
            recorded_at,
            kind: EventKind::from_name(l.kind)
                .ok_or_else(|| format!("unknown kind {:?}", l.kind))?,
            id: hex_field::<16>(l.id, "id")?,
            payload_digest: hex_field::<32>(l.payload_digest, "payload_digest")?,
            prev_hash: hex_field::<32>(l.prev_hash, "prev_hash")?,
            key_id: hex_field::<8>(l.key_id, "key_id")?,
            hash: hex_field::<32>(l.hash, "hash")?,
            signature: hex_field::<64>(l.signature, "signature")?,
            l,
        })
    }

    /// The hashed fields, as [`crate::canonical::Fields::of`] gives them for the event.
    fn fields(&self) -> crate::canonical::Fields<'_> {
        crate::canonical::Fields {
            app: &self.l.app,
            seq: self.l.seq,
            id: &self.id,
            recorded_at: self.recorded_at.0,
            actor: (
                &self.l.actor.user_id,
                &self.l.actor.username,
                &self.l.actor.role,
            ),
            idempotency_key: self.l.idempotency_key.as_deref(),
            reason: self.l.reason.as_deref(),
            kind: self.kind.name(),
            subject: self
                .l
                .subject
                .as_ref()
                .map(|s| (s.class.as_ref(), s.object_id.as_ref())),
            payload_digest: &self.payload_digest,
            prev_hash: &self.prev_hash,
            key_id: &self.key_id,
        }
    }

    fn into_event(self) -> Event {
        let l = self.l;
        Event {
            app: l.app.into_owned(),
            seq: l.seq,
            id: self.id,
            recorded_at: self.recorded_at,
            actor: Actor {
                user_id: l.actor.user_id.into_owned(),
                username: l.actor.username.into_owned(),
                role: l.actor.role.into_owned(),
            },
            idempotency_key: l.idempotency_key.map(Cow::into_owned),
            reason: l.reason.map(Cow::into_owned),
            kind: self.kind,
            subject: l.subject.map(|s| Subject {
                class: s.class.into_owned(),
                object_id: s.object_id.into_owned(),
            }),
            payload: l.payload.map(|p| p.into_owned().into_bytes()),
            payload_digest: self.payload_digest,
            prev_hash: self.prev_hash,
            key_id: KeyId(self.key_id),
            hash: self.hash,
            signature: self.signature,
        }
    }
}

/// Whether the fast reader of event lines ([`crate::export_line`]) reads `line` to the same
/// fields as serde_json does, or declines it. Always true; checked by the fuzz target
/// `export_reader` and by unit tests.
pub fn fast_reader_agrees(line: &str) -> bool {
    match crate::export_line::read(line) {
        None => true,
        Some(fast) => serde_json::from_str::<EventLineIn<'_>>(line).is_ok_and(|slow| slow == fast),
    }
}

/// Reads one event line (the text of a line) into an event.
pub fn parse_event_line(line: &str) -> Result<Event, String> {
    LineView::read(line).map(LineView::into_event)
}

/// Reads one event line straight into what verification needs, without building the
/// event: the same checks as [`parse_event_line`] and the same summary as
/// [`Summary::of_event`] on its result.
fn summarize_line(app: &str, line: &str) -> Result<Summary, String> {
    let v = LineView::read(line)?;
    Ok(Summary::new(
        app,
        v.fields(),
        v.kind,
        v.l.payload.as_deref().map(str::as_bytes),
        v.hash,
        v.signature,
    ))
}

/// Reads an event line, already parsed as JSON, into an event.
pub fn parse_event(v: &Value) -> Result<Event, String> {
    parse_event_line(&v.to_string())
}

fn parse_keys(v: &Value) -> Result<Vec<PublicKey>, String> {
    let list = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("\"keys\" must be an array")?;
    list.iter()
        .map(|k| {
            let bytes = hex_array::<32>(k, "public_key")?;
            let pk = PublicKey::from_bytes(bytes);
            let id = string(k, "key_id")?;
            if id != pk.key_id.to_string() {
                return Err(format!(
                    "key_id {id} is not the id of its public key ({})",
                    pk.key_id
                ));
            }
            Ok(pk)
        })
        .collect()
}

/// An app line as read: the section's app, its declared head and published keys.
pub(crate) struct AppLine {
    /// 1-based line number.
    pub(crate) line: u64,
    pub(crate) app: String,
    pub(crate) head: (u64, [u8; 32]),
    pub(crate) published: Vec<PublicKey>,
}

/// What a pass over an export meets after the header: a section's start, or an event
/// line (with its 1-based line number), left unparsed (and its UTF-8 unchecked) so that
/// callers parse in bulk. The line is lent from the reader's own buffer: a caller that
/// keeps it copies it.
pub(crate) enum Line<'a> {
    App(AppLine),
    Event(u64, &'a [u8]),
}

/// An event line's text, checked to be UTF-8 (the check [`walk`] leaves to its callers;
/// simdutf8 checks a kilobyte of ASCII several times faster than the standard library).
pub(crate) fn line_text(line: &[u8]) -> Result<&str, String> {
    // The faster check; the one that says where, only for a line that fails it.
    simdutf8::basic::from_utf8(line)
        .or_else(|_| simdutf8::compat::from_utf8(line).map_err(|e| format!("not UTF-8: {e}")))
}

/// Walks an export: checks the header, reads each app line, hands every line to `on`,
/// and checks at the end that the sections are the apps the header names. Shared by
/// [`verify_export`] and [`crate::import`].
///
/// Lines are found with `memchr` in the reader's buffer and lent from it; only a line
/// that straddles two fills of the buffer is copied (into one reused spill buffer).
pub(crate) fn walk(
    mut input: impl BufRead,
    mut on: impl FnMut(Line<'_>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut sections = Sections::default();
    let mut spill: Vec<u8> = Vec::new();
    let mut n = 0u64;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            if !spill.is_empty() {
                n += 1;
                sections.line(n, &spill, &mut on)?;
            }
            break;
        }
        let Some(end) = memchr::memchr(b'\n', buf) else {
            let len = buf.len();
            spill.extend_from_slice(buf);
            input.consume(len);
            continue;
        };
        n += 1;
        if spill.is_empty() {
            sections.line(n, &buf[..end], &mut on)?;
        } else {
            spill.extend_from_slice(&buf[..end]);
            sections.line(n, &spill, &mut on)?;
            spill.clear();
        }
        input.consume(end + 1);
    }
    sections.finish()
}

/// What [`walk`] knows of the file's structure so far.
#[derive(Default)]
struct Sections {
    saw_header: bool,
    in_section: bool,
    header_apps: Vec<String>,
    section_apps: Vec<String>,
}

impl Sections {
    /// One line, without its `\n`.
    fn line(
        &mut self,
        n: u64,
        line: &[u8],
        on: &mut impl FnMut(Line<'_>) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Event lines are the bulk: they are recognised by their first field and parsed
        // later (in parallel, by the verifier); other lines are parsed here.
        if line.starts_with(br#"{"type":"event""#) {
            return self.event(n, line, on);
        }
        // A blank line (any Unicode white space) is skipped.
        if std::str::from_utf8(line).is_ok_and(|text| text.trim().is_empty()) {
            return Ok(());
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| ExportError::Malformed {
            line: n,
            why: format!("not JSON: {e}"),
        })?;
        match v.get("type").and_then(Value::as_str) {
            Some("event") => self.event(n, line, on),
            Some("export") => {
                if v.get("format").and_then(Value::as_str) != Some(FORMAT)
                    || v.get("version").and_then(Value::as_u64) != Some(VERSION)
                {
                    return Err(ExportError::Malformed {
                        line: n,
                        why: format!("not an {FORMAT} version {VERSION} file"),
                    });
                }
                self.saw_header = true;
                self.header_apps = v
                    .get("apps")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .ok_or_else(|| ExportError::Malformed {
                        line: n,
                        why: "\"apps\" must be an array of app names".into(),
                    })?;
                Ok(())
            }
            Some("app") => {
                if !self.saw_header {
                    return Err(ExportError::Malformed {
                        line: n,
                        why: "the first line must be the export header".into(),
                    });
                }
                let malformed = |why| ExportError::Malformed { line: n, why };
                let app = string(&v, "app").map_err(malformed)?;
                let published = parse_keys(&v).map_err(malformed)?;
                let head_seq = v
                    .get("head_seq")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| malformed("\"head_seq\" must be an integer".into()))?;
                let head_hash = hex_array::<32>(&v, "head_hash").map_err(malformed)?;
                self.section_apps.push(app.clone());
                self.in_section = true;
                on(Line::App(AppLine {
                    line: n,
                    app,
                    head: (head_seq, head_hash),
                    published,
                }))
            }
            _ => Err(ExportError::Malformed {
                line: n,
                why: "unknown or missing \"type\"".into(),
            }),
        }
    }

    fn event(
        &self,
        n: u64,
        line: &[u8],
        on: &mut impl FnMut(Line<'_>) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        if !self.in_section {
            return Err(ExportError::Malformed {
                line: n,
                why: "an event line before any app line".into(),
            });
        }
        on(Line::Event(n, line))
    }

    /// After the last line: the header was there and named exactly the sections.
    fn finish(self) -> Result<(), ExportError> {
        if !self.saw_header {
            return Err(ExportError::Malformed {
                line: 1,
                why: "empty file or no export header".into(),
            });
        }
        if self.section_apps != self.header_apps {
            return Err(ExportError::Malformed {
                line: 1,
                why: format!(
                    "the header names the apps {:?}, but the file holds sections for {:?}",
                    self.header_apps, self.section_apps
                ),
            });
        }
        Ok(())
    }
}

/// Event lines packed into one buffer: `text` holds them end to end, `lines` their line
/// numbers and places. Buffers go back to the reader to be reused, so reading a large
/// export allocates a few buffers, not one string per line.
#[derive(Default)]
struct Chunk {
    text: Vec<u8>,
    lines: Vec<(u64, std::ops::Range<usize>)>,
}

impl Chunk {
    fn push(&mut self, n: u64, line: &[u8]) {
        let start = self.text.len();
        self.text.extend_from_slice(line);
        self.lines.push((n, start..self.text.len()));
    }
}

/// Event lines per chunk handed from the reading thread to verification: enough to
/// spread over the cores, few enough that each chunk buffer (at most four) stays about
/// 2 MiB (each first touch of a buffer's memory costs a page zeroed by the kernel).
const LINES_PER_CHUNK: usize = 2048;

/// What the reading thread of [`verify_export`] hands over.
enum Batch {
    App(AppLine),
    Events(Chunk),
}

/// Verifies every app section of an export. `trusted_genesis`, if given, pins the genesis
/// keys. A malformed structure (no header, an event outside a section) is an error; a bad
/// event is a failure in that app's report.
///
/// One thread reads and splits the file while the calling thread (with rayon) verifies
/// the previous chunk, so reading overlaps hashing and signature checks.
pub fn verify_export(
    input: impl BufRead + Send,
    mode: VerifyMode,
    trusted_genesis: Option<Vec<PublicKey>>,
) -> Result<Vec<VerifyReport>, ExportError> {
    std::thread::scope(|scope| {
        // Both channels live in the scope, so that if verification panics, dropping them
        // stops the reader (a send fails; a wait for a buffer ends) before the join.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
        let (recycle, reuse) = std::sync::mpsc::channel::<Chunk>();
        let reader = scope.spawn(move || {
            // At most BUFFERS chunks exist: two queued, one being verified, one being
            // filled; then the reader waits for one to come back instead of allocating.
            const BUFFERS: usize = 4;
            let mut made = 0;
            let mut fresh = |hint: usize| {
                let reused = match reuse.try_recv() {
                    Ok(c) => Some(c),
                    Err(_) if made >= BUFFERS => reuse.recv().ok(),
                    Err(_) => None,
                };
                let mut c = reused.unwrap_or_else(|| {
                    made += 1;
                    Chunk {
                        text: Vec::with_capacity(hint),
                        lines: Vec::with_capacity(LINES_PER_CHUNK),
                    }
                });
                c.text.clear();
                c.lines.clear();
                c
            };
            let mut chunk = fresh(LINES_PER_CHUNK * 1024);
            // A send fails only once the verifier is gone (it panicked: the scope then
            // resumes that panic, not this error): stop reading.
            let gone = |_| ExportError::Io(std::io::Error::other("export verification stopped"));
            walk(input, |line| {
                match line {
                    Line::Event(n, text) => {
                        chunk.push(n, text);
                        if chunk.lines.len() == LINES_PER_CHUNK {
                            let hint = chunk.text.len() + chunk.text.len() / 8;
                            let full = std::mem::replace(&mut chunk, fresh(hint));
                            tx.send(Batch::Events(full)).map_err(gone)?;
                        }
                    }
                    Line::App(a) => {
                        if !chunk.lines.is_empty() {
                            let hint = chunk.text.capacity();
                            let full = std::mem::replace(&mut chunk, fresh(hint));
                            tx.send(Batch::Events(full)).map_err(gone)?;
                        }
                        tx.send(Batch::App(a)).map_err(gone)?;
                    }
                }
                Ok(())
            })?;
            if !chunk.lines.is_empty() {
                tx.send(Batch::Events(chunk)).map_err(gone)?;
            }
            Ok::<(), ExportError>(())
        });
        let mut reports = Vec::new();
        let mut current: Option<ChainVerifier> = None;
        for batch in rx {
            match batch {
                Batch::Events(mut chunk) => {
                    if let Some(verifier) = current.as_mut() {
                        let text = chunk.text.as_slice();
                        // Drained, not moved: the chunk keeps its line list for reuse.
                        verifier.push_with(
                            rayon::iter::ParallelDrainRange::par_drain(&mut chunk.lines, ..),
                            |app, (n, at)| Item {
                                key: None,
                                summary: text
                                    .get(at)
                                    .ok_or_else(|| "a line outside its chunk".to_string())
                                    .and_then(|line| summarize_line(app, line_text(line)?))
                                    .map_err(|e| format!("line {n}: {e}")),
                            },
                        );
                    }
                    let _ = recycle.send(chunk);
                }
                Batch::App(a) => {
                    if let Some(v) = current.take() {
                        reports.push(v.finish());
                    }
                    // A head of 0 declares an empty chain: then any event is beyond it.
                    let policy = VerifyPolicy {
                        expected_head: Some(a.head),
                        exact_head: true,
                        trusted_genesis: trusted_genesis.clone(),
                        published: Some(a.published),
                    };
                    current = Some(ChainVerifier::new(&a.app, mode, policy));
                }
            }
        }
        if let Some(v) = current.take() {
            reports.push(v.finish());
        }
        match reader.join() {
            Ok(read) => read.map(|()| reports),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed golden export of the replay tool's tests: 400 events of every kind.
    const LOG: &str = include_str!("../../fixtures/golden/replay/log.ndjson");

    /// A reader that is interrupted before every read, as a pipe can be.
    struct Interrupting<R> {
        inner: R,
        interrupt: bool,
    }

    impl<R: std::io::Read> std::io::Read for Interrupting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            self.inner.read(buf)
        }
    }

    #[test]
    fn blank_lines_and_interrupted_reads_change_nothing() {
        let clean = verify_export(LOG.as_bytes(), VerifyMode::LinksOnly, None).expect("read");
        assert!(clean.iter().all(VerifyReport::ok));
        // Blank lines of any white space, after the header and between events.
        let mut lines: Vec<&str> = LOG.lines().collect();
        lines.insert(1, "\u{3000}\u{a0} \t");
        lines.insert(50, "");
        lines.insert(51, " \r");
        let spaced = lines.join("\n") + "\n";
        let r = verify_export(spaced.as_bytes(), VerifyMode::LinksOnly, None).expect("read");
        assert_eq!(format!("{r:?}"), format!("{clean:?}"));
        // A reader interrupted before every read, through a small buffer.
        let interrupted = std::io::BufReader::with_capacity(
            64,
            Interrupting {
                inner: LOG.as_bytes(),
                interrupt: false,
            },
        );
        let r = verify_export(interrupted, VerifyMode::LinksOnly, None).expect("read");
        assert_eq!(format!("{r:?}"), format!("{clean:?}"));
    }

    #[test]
    fn summarizing_a_line_equals_summarizing_the_event_it_parses_to() {
        let mut lines = 0;
        for line in LOG.lines().filter(|l| l.starts_with(r#"{"type":"event""#)) {
            // The line as written, and copies with a changed payload and a changed hash,
            // so that failing digests and hashes are compared too.
            let changed_payload =
                line.replacen(r#"\"result\":\"Pass\""#, r#"\"result\":\"Fail\""#, 1);
            let v: Value = serde_json::from_str(line).expect("json");
            let hash = v["hash"].as_str().expect("hash");
            let other = format!("{}{}", &hash[1..], &hash[..1]);
            let changed_hash = line.replacen(hash, &other, 1);
            for text in [line, changed_payload.as_str(), changed_hash.as_str()] {
                for app in ["gxp", "hipaa"] {
                    let direct = summarize_line(app, text).expect("summary");
                    let event = parse_event_line(text).expect("event");
                    let via_event = Summary::of_event(app, &event);
                    assert_eq!(format!("{direct:?}"), format!("{via_event:?}"), "{text}");
                }
            }
            lines += 1;
        }
        assert!(lines >= 400, "{lines} event lines");
        for bad in ["{", r#"{"type":"app"}"#, r#"{"type":"event","app":"gxp"}"#] {
            assert_eq!(
                summarize_line("gxp", bad).map(|_| ()),
                parse_event_line(bad).map(|_| ())
            );
        }
    }
}
