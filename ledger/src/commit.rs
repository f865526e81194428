//! Group commit: the four threads an append goes through.
//!
//! 1. The **builder** takes every request waiting, checks each against the app's schema,
//!    its records (store plus events still in flight) and idempotency keys, and chains
//!    the accepted ones: sequence number, recorded time, previous hash, hash. It never
//!    waits on signing or the disk.
//! 2. The **signer** signs the groups' events in parallel (ed25519 is most of an append's
//!    CPU) and encodes them.
//! 3. The **writer** writes them to the store, one batch per app.
//! 4. The **syncer** makes everything written durable (`Store::sync`), publishes the
//!    durable heads, and only then answers each request.
//!
//! While the syncer waits on the disk, the writer writes the next group, the signer signs
//! the one after and the builder checks the next: many appends share each fsync. If a write fails, the
//! writer refuses every group built on it and asks the builder to reload its state from
//! the store; if an fsync fails, the ledger refuses all writes until it is reopened.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use rand::{Rng, RngCore};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::canonical::{event_hash, payload_digest, GENESIS_PREV_HASH};
use crate::codec;
use crate::command::*;
use crate::event::{Actor, Event, EventKind, Hash32, KeyId, Subject};
use crate::keys::{AppKey, PublicKey};
use crate::ledger::{load_app, read_event, AppState, AppView, Head, Shared};
use crate::schema::validate::{self, is_valid_object_id};
use crate::schema::{AppSchema, ClassDef, SchemaChange, USER_CLASS};
use crate::store::{AppBatch, EventWrite, Mark};
use crate::time::{Clock, Timestamp};

/// Where an append's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<Appended, AppendError>>;

/// What the ledger handle asks the builder for.
pub(crate) enum Job {
    Append(Box<AppendRequest>, Reply),
    CreateApp {
        app: String,
        source: String,
        classes: Vec<ClassDef>,
        reply: Reply,
    },
    RotateKey {
        app: String,
        actor: Actor,
        reason: Option<String>,
        reply: Reply,
    },
}

impl Job {
    /// Where the job's answer goes.
    fn reply(self) -> Reply {
        match self {
            Job::Append(_, r)
            | Job::CreateApp { reply: r, .. }
            | Job::RotateKey { reply: r, .. } => r,
        }
    }
}

/// A size in MiB, one decimal, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Coordination between the threads.
#[derive(Default)]
pub(crate) struct Pipeline {
    /// The highest group the writer has written (the builder drops its overlay up to it).
    applied_group: AtomicU64,
    /// Set by the writer when a write failed: the builder must reload from the store.
    reset: AtomicBool,
    /// The builder's epoch: groups built before a reset belong to an older one.
    epoch: AtomicU64,
}

struct Built {
    event: Event,
    key: Arc<AppKey>,
    write: EventWrite,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordState {
    Absent,
    Live,
    Deleted,
}

/// How a request is answered once its group is durable.
enum Outcome {
    /// With the group's event at this index.
    New(usize),
    /// With an event already stored (a repeated idempotency key).
    Existing(Box<Event>),
    /// With an event still in flight (a repeated idempotency key): read after the sync.
    InFlight { app: String, seq: u64 },
}

/// One builder pass: the events chained and who waits for them.
#[derive(Default)]
struct Group {
    built: Vec<Built>,
    replies: Vec<(Reply, Outcome)>,
    touched: HashSet<String>,
    retire: Vec<(String, KeyId)>,
}

/// A group on its way to the signer, then the writer.
pub(crate) struct Unsigned {
    id: u64,
    epoch: u64,
    group: Group,
    views: Vec<(String, AppView)>,
    /// Set by the signer: the apps whose events could not be encoded, and why (their
    /// writes fail).
    unencodable: Vec<(String, String)>,
}

/// An answer, ready or to be read from the store once durable.
enum Answer {
    Ready(Box<Result<Appended, AppendError>>),
    Lookup { app: String, seq: u64 },
}

/// Written groups on their way to the syncer.
pub(crate) struct Synced {
    replies: Vec<(Reply, Answer)>,
    views: Vec<(String, AppView)>,
    retire: Vec<(String, KeyId)>,
}

/// The last in-flight event of a record (written or not, not yet dropped from the overlay).
struct InFlightRecord {
    group: u64,
    kind: EventKind,
    /// The record's latest data version among in-flight events.
    last_data: Option<u64>,
}

/// What the builder knows that the store may not show yet.
#[derive(Default)]
struct Overlay {
    records: HashMap<(String, String, String), InFlightRecord>,
    idempotency: HashMap<(String, String), (u64, u64)>,
    hashes: HashMap<(String, u64), (u64, Hash32)>,
}

impl Overlay {
    fn prune(&mut self, applied: u64) {
        self.records.retain(|_, r| r.group > applied);
        self.idempotency.retain(|_, (g, _)| *g > applied);
        self.hashes.retain(|_, (g, _)| *g > applied);
    }
}

pub(crate) struct Builder {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) apps: HashMap<String, AppState>,
    pub(crate) max_group: usize,
    pub(crate) to_signer: mpsc::Sender<Unsigned>,
    overlay: Overlay,
    next_group: u64,
}

/// What a command turns into before it is chained.
struct Draft {
    kind: EventKind,
    subject: Option<Subject>,
    payload: Value,
    /// For a schema change: the app's schema after it.
    schema: Option<Arc<AppSchema>>,
}

/// A draft whose payload is serialised and within limits: chaining it cannot fail.
struct Prepared {
    draft: Draft,
    payload: Vec<u8>,
}

fn prepare(draft: Draft) -> Result<Prepared, AppendError> {
    let payload = serde_json::to_vec(&draft.payload).map_err(|e| bad("payload", e.to_string()))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(bad(
            "payload",
            format!(
                "{} bytes, more than the {MAX_PAYLOAD}-byte limit",
                payload.len()
            ),
        ));
    }
    Ok(Prepared { draft, payload })
}

/// Checks a schema change against `schema` and that its payload reads back as the same
/// change (the ledger rebuilds schemas from these payloads when it opens).
fn next_schema(schema: &AppSchema, change: &SchemaChange) -> Result<Arc<AppSchema>, AppendError> {
    let mut next = schema.clone();
    next.apply(change)?;
    match SchemaChange::from_json(&change.to_json()) {
        Ok(back) if back == *change => Ok(Arc::new(next)),
        Ok(_) => Err(crate::schema::SchemaError::Invalid(
            "the change does not survive its own encoding".into(),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

fn bad(field: &'static str, why: impl Into<String>) -> AppendError {
    AppendError::BadRequest {
        field,
        why: why.into(),
    }
}

fn check_text(
    field: &'static str,
    v: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), AppendError> {
    if !allow_empty && v.is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if v.len() > max {
        return Err(bad(field, format!("longer than {max} bytes")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(bad(field, "contains control characters"));
    }
    Ok(())
}

fn is_valid_app_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

impl Builder {
    pub(crate) fn new(
        shared: Arc<Shared>,
        pipeline: Arc<Pipeline>,
        clock: Arc<dyn Clock>,
        rng: ChaCha20Rng,
        apps: HashMap<String, AppState>,
        max_group: usize,
        to_signer: mpsc::Sender<Unsigned>,
    ) -> Self {
        Builder {
            shared,
            pipeline,
            clock,
            rng,
            apps,
            max_group,
            to_signer,
            overlay: Overlay::default(),
            next_group: 0,
        }
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_group {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            if self.pipeline.reset.load(Ordering::Acquire) {
                self.reload();
            }
            self.overlay
                .prune(self.pipeline.applied_group.load(Ordering::Acquire));
            self.build_group(jobs);
        }
    }

    /// After a failed write: forget everything in flight and take each app's state from
    /// the store again. Groups built before are refused by the writer (older epoch).
    fn reload(&mut self) {
        let apps: Vec<String> = self.apps.keys().cloned().collect();
        for app in apps {
            match load_app(&*self.shared.store, &*self.shared.keys, &app) {
                Ok(state) => {
                    self.apps.insert(app, state);
                }
                Err(e) => {
                    // An app whose genesis never reached the store is simply gone.
                    if !matches!(self.shared.store.last_event(&app), Ok(Some(_))) {
                        self.apps.remove(&app);
                    } else {
                        tracing::error!(app = %app, error = %e, "cannot reload app state after a failed write");
                        self.shared
                            .poisoned
                            .set(&format!("reloading {app} after a failed write: {e}"));
                    }
                }
            }
        }
        self.overlay = Overlay::default();
        self.pipeline.epoch.fetch_add(1, Ordering::AcqRel);
        self.pipeline.reset.store(false, Ordering::Release);
    }

    /// Why nothing may be written now for want of room or writability: the store's file
    /// system, checked once per group, is read-only or below the reserve. A failed check
    /// refuses nothing (the write itself then decides). Transitions are logged once.
    fn storage_refusal(&self) -> Option<String> {
        if self.shared.min_free_bytes == 0 {
            return None;
        }
        let refusal = match self.shared.store.space() {
            Ok(Some(s)) if s.read_only => Some(format!(
                "the data directory {} is on a read-only file system",
                s.path
            )),
            Ok(Some(s)) if s.available < self.shared.min_free_bytes => Some(format!(
                "the data directory {} has {} free, below the {} kept in reserve",
                s.path,
                mib(s.available),
                mib(self.shared.min_free_bytes)
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's free space");
                None
            }
        };
        let mut current = self
            .shared
            .storage_refusal
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match (&*current, &refusal) {
            (None, Some(why)) => tracing::error!(reason = %why, "refusing writes"),
            (Some(_), None) => tracing::warn!("the data directory has room again: writes resume"),
            _ => {}
        }
        current.clone_from(&refusal);
        refusal
    }

    fn build_group(&mut self, jobs: Vec<Job>) {
        if let Some(why) = self.storage_refusal() {
            for job in jobs {
                let _ = job
                    .reply()
                    .send(Err(AppendError::StorageUnavailable(why.clone())));
            }
            return;
        }
        self.next_group += 1;
        let mut g = Group::default();
        for job in jobs {
            if self.shared.poisoned.is_set() {
                let _ = job.reply().send(Err(self.shared.poisoned.refusal()));
                continue;
            }
            let (reply, outcome) = match job {
                Job::Append(req, reply) => (reply, self.append(&mut g, *req)),
                Job::CreateApp {
                    app,
                    source,
                    classes,
                    reply,
                } => (reply, self.create_app(&mut g, &app, &source, classes)),
                Job::RotateKey {
                    app,
                    actor,
                    reason,
                    reply,
                } => (reply, self.rotate(&mut g, &app, actor, reason)),
            };
            match outcome {
                Ok(o) => g.replies.push((reply, o)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        if g.replies.is_empty() {
            return;
        }
        let views = g
            .touched
            .iter()
            .filter_map(|app| {
                let s = self.apps.get(app)?;
                Some((
                    app.clone(),
                    AppView {
                        head: s.head,
                        schema: s.schema.clone(),
                        users_changed: s.users_changed,
                    },
                ))
            })
            .collect();
        let unsigned = Unsigned {
            id: self.next_group,
            epoch: self.pipeline.epoch.load(Ordering::Acquire),
            group: g,
            views,
            unencodable: Vec::new(),
        };
        // If the signer is gone the ledger is closing: the replies drop and callers see Closed.
        let _ = self.to_signer.send(unsigned);
    }

    fn state(&self, app: &str) -> Result<&AppState, AppendError> {
        self.apps
            .get(app)
            .ok_or_else(|| AppendError::UnknownApp(app.to_string()))
    }

    /// Whether a record exists, and whether it was deleted, counting events in flight.
    /// Nothing follows a deletion, so the last in-flight event on a record decides.
    fn record_state(&self, app: &str, class: &str, id: &str) -> Result<RecordState, AppendError> {
        if let Some(r) =
            self.overlay
                .records
                .get(&(app.to_string(), class.to_string(), id.to_string()))
        {
            return Ok(if r.kind.deletes_subject() {
                RecordState::Deleted
            } else {
                RecordState::Live
            });
        }
        Ok(match self.shared.store.record_state(app, class, id)? {
            None => RecordState::Absent,
            Some(s) if s.deleted => RecordState::Deleted,
            Some(_) => RecordState::Live,
        })
    }

    fn live(&self, app: &str, class: &str, id: &str) -> Result<bool, AppendError> {
        Ok(self.record_state(app, class, id)? == RecordState::Live)
    }

    fn require_live(&self, app: &str, class: &str, id: &str) -> Result<(), AppendError> {
        match self.record_state(app, class, id)? {
            RecordState::Absent => Err(AppendError::NotFound {
                class: class.into(),
                object_id: id.into(),
            }),
            RecordState::Deleted => Err(AppendError::Deleted {
                class: class.into(),
                object_id: id.into(),
            }),
            RecordState::Live => Ok(()),
        }
    }

    fn check_pointers(
        &self,
        app: &str,
        class: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), AppendError> {
        for (field, target, id) in validate::pointers(fields) {
            if !self.live(app, target, id)? {
                return Err(AppendError::PointerTargetMissing {
                    class: class.into(),
                    field: field.into(),
                    target_class: target.into(),
                    object_id: id.into(),
                });
            }
        }
        Ok(())
    }

    /// A new objectId in Parse's form (10 characters of `[0-9A-Za-z]`): the first six are
    /// the sequence number of the event that creates it, in base 62 with digits in byte
    /// order, the last four random. Ids then sort in creation order, so a create writes
    /// its record-state and version entries at the end of its class's key range, where
    /// the index pages are already in memory, instead of at a random place in a large
    /// index (see docs/ARCHITECTURE.md, "objectIds in creation order").
    fn new_object_id(&mut self, app: &str, class: &str) -> Result<String, AppendError> {
        /// Base 62, its digits in ASCII order, so that byte order is numeric order.
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        const BASE: u64 = DIGITS.len() as u64;
        /// Tries with the ordered prefix before ids fully random: ids a caller chose could
        /// fill a prefix's 62⁴ suffixes, and must not make the builder spin.
        const ORDERED_TRIES: u32 = 8;
        let next = self.apps.get(app).map_or(1, |s| s.head.seq + 1);
        let mut attempt = 0;
        loop {
            let mut id = [0u8; 10];
            let mut n = next;
            let random_from = if attempt < ORDERED_TRIES {
                for place in id[..6].iter_mut().rev() {
                    *place = DIGITS[(n % BASE) as usize];
                    n /= BASE;
                }
                6
            } else {
                0
            };
            for place in id[random_from..].iter_mut() {
                *place = DIGITS[self.rng.gen_range(0..DIGITS.len())];
            }
            let id: String = id.iter().map(|&b| char::from(b)).collect();
            if self.record_state(app, class, &id)? == RecordState::Absent {
                return Ok(id);
            }
            attempt += 1;
        }
    }

    fn append(&mut self, g: &mut Group, req: AppendRequest) -> Result<Outcome, AppendError> {
        let app = req.app.as_str();
        self.state(app)?;
        check_text("actor.user_id", &req.actor.user_id, MAX_ACTOR_FIELD, false)?;
        check_text(
            "actor.username",
            &req.actor.username,
            MAX_ACTOR_FIELD,
            false,
        )?;
        check_text("actor.role", &req.actor.role, MAX_ACTOR_FIELD, true)?;
        if let Some(r) = &req.reason {
            check_text("reason", r, MAX_REASON, false)?;
        }
        if let Some(k) = &req.idempotency_key {
            check_text("idempotency_key", k, MAX_IDEMPOTENCY_KEY, false)?;
            if let Some(&(_, seq)) = self.overlay.idempotency.get(&(app.to_string(), k.clone())) {
                return Ok(Outcome::InFlight {
                    app: app.to_string(),
                    seq,
                });
            }
            if let Some(seq) = self.shared.store.idempotent(app, k)? {
                let e = read_event(&*self.shared.store, app, seq)
                    .map_err(|e| AppendError::WriteFailed(e.to_string()))?;
                return Ok(Outcome::Existing(Box::new(e)));
            }
        }
        let prepared = prepare(self.draft(app, req.command)?)?;
        let i = self.chain(
            g,
            app,
            req.actor,
            req.idempotency_key,
            req.reason,
            prepared,
            None,
        )?;
        Ok(Outcome::New(i))
    }

    fn draft(&mut self, app: &str, cmd: Command) -> Result<Draft, AppendError> {
        let subject = |class: &str, id: &str| {
            Some(Subject {
                class: class.into(),
                object_id: id.into(),
            })
        };
        let schema = self.state(app)?.schema.clone();
        Ok(match cmd {
            Command::CreateRecord {
                class,
                object_id,
                fields,
            } => {
                let fields = validate::check_create(&schema, &class, &fields)?;
                self.check_pointers(app, &class, &fields)?;
                let id = match object_id {
                    Some(id) => {
                        if !is_valid_object_id(&id) {
                            return Err(bad(
                                "objectId",
                                format!("{id:?} is not 1 to 64 of [A-Za-z0-9_-]"),
                            ));
                        }
                        if self.record_state(app, &class, &id)? != RecordState::Absent {
                            return Err(AppendError::AlreadyExists {
                                class,
                                object_id: id,
                            });
                        }
                        id
                    }
                    None => self.new_object_id(app, &class)?,
                };
                let kind = if class == USER_CLASS {
                    EventKind::UserCreated
                } else {
                    EventKind::RecordCreated
                };
                Draft {
                    kind,
                    subject: subject(&class, &id),
                    payload: json!({"fields": fields}),
                    schema: None,
                }
            }
            Command::UpdateRecord {
                class,
                object_id,
                set,
                unset,
            } => {
                let (set, unset) = validate::check_update(&schema, &class, &set, &unset)?;
                self.require_live(app, &class, &object_id)?;
                self.check_pointers(app, &class, &set)?;
                let kind = if class == USER_CLASS {
                    EventKind::UserUpdated
                } else {
                    EventKind::RecordUpdated
                };
                Draft {
                    kind,
                    subject: subject(&class, &object_id),
                    payload: json!({"set": set, "unset": unset}),
                    schema: None,
                }
            }
            Command::DeleteRecord { class, object_id } => {
                if schema.class(&class).is_none() {
                    return Err(validate::ValidationError::UnknownClass { class }.into());
                }
                self.require_live(app, &class, &object_id)?;
                let kind = if class == USER_CLASS {
                    EventKind::UserDeleted
                } else {
                    EventKind::RecordDeleted
                };
                Draft {
                    kind,
                    subject: subject(&class, &object_id),
                    payload: json!({}),
                    schema: None,
                }
            }
            Command::SignRecord {
                class,
                object_id,
                version_seq,
                meaning,
                printed_name,
            } => {
                check_text("printed_name", &printed_name, MAX_ACTOR_FIELD, false)?;
                self.require_live(app, &class, &object_id)?;
                let latest = self.latest_data_version(app, &class, &object_id)?;
                if latest != version_seq {
                    return Err(AppendError::OutdatedVersion {
                        class,
                        object_id,
                        given: version_seq,
                        latest,
                    });
                }
                let version_hash = self.event_hash_of(app, version_seq)?;
                Draft {
                    kind: EventKind::RecordSigned,
                    subject: subject(&class, &object_id),
                    payload: json!({"version_seq": version_seq, "version_hash": hex::encode(version_hash), "meaning": meaning, "printed_name": printed_name}),
                    schema: None,
                }
            }
            Command::ChangeSchema(change) => Draft {
                kind: EventKind::SchemaChanged,
                subject: None,
                payload: change.to_json(),
                schema: Some(next_schema(&schema, &change)?),
            },
            Command::ChangeRole {
                user_id,
                role,
                granted,
            } => {
                check_text("role", &role, MAX_ACTOR_FIELD, false)?;
                self.require_live(app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::RoleChanged,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({"role": role, "granted": granted}),
                    schema: None,
                }
            }
            Command::Login { user_id } => {
                self.require_live(app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::LoginSucceeded,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({}),
                    schema: None,
                }
            }
            Command::LoginFailed { username, detail } => {
                check_text("username", &username, MAX_ACTOR_FIELD, true)?;
                check_text("detail", &detail, MAX_REASON, true)?;
                Draft {
                    kind: EventKind::LoginFailed,
                    subject: None,
                    payload: json!({"username": username, "detail": detail}),
                    schema: None,
                }
            }
            Command::Logout { user_id } => {
                self.require_live(app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::Logout,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({}),
                    schema: None,
                }
            }
            Command::AccessDenied {
                operation,
                class,
                object_id,
            } => {
                check_text("operation", &operation, MAX_ACTOR_FIELD, false)?;
                if let Some(c) = &class {
                    check_text("class", c, MAX_ACTOR_FIELD, false)?;
                }
                if let Some(o) = &object_id {
                    if !is_valid_object_id(o) {
                        return Err(bad(
                            "objectId",
                            format!("{o:?} is not 1 to 64 of [A-Za-z0-9_-]"),
                        ));
                    }
                }
                let subj = match (&class, &object_id) {
                    (Some(c), Some(o)) => subject(c, o),
                    (None, Some(_)) => return Err(bad("class", "an objectId needs its class")),
                    _ => None,
                };
                Draft {
                    kind: EventKind::AccessDenied,
                    subject: subj,
                    payload: json!({"operation": operation, "class": class, "object_id": object_id}),
                    schema: None,
                }
            }
            Command::ReviewAuditTrail {
                scope,
                through_seq,
                printed_name,
            } => {
                check_text("printed_name", &printed_name, MAX_ACTOR_FIELD, false)?;
                let head = self.apps.get(app).map_or(0, |s| s.head.seq);
                if through_seq > head {
                    return Err(bad(
                        "through_seq",
                        format!("event {through_seq} does not exist (the head is {head})"),
                    ));
                }
                let through_hash = match through_seq {
                    0 => None,
                    n => Some(hex::encode(self.event_hash_of(app, n)?)),
                };
                match scope {
                    ReviewScope::Record { class, object_id } => {
                        if matches!(
                            self.record_state(app, &class, &object_id)?,
                            RecordState::Absent
                        ) {
                            return Err(AppendError::NotFound { class, object_id });
                        }
                        if through_seq == 0 {
                            return Err(bad(
                                "through_seq",
                                "a record's review names the last event examined",
                            ));
                        }
                        Draft {
                            kind: EventKind::AuditTrailReviewed,
                            subject: subject(&class, &object_id),
                            payload: json!({"scope": "record", "through_seq": through_seq,
                                "through_hash": through_hash, "printed_name": printed_name}),
                            schema: None,
                        }
                    }
                    ReviewScope::Day {
                        date,
                        tz,
                        first_seq,
                    } => {
                        if chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_err() {
                            return Err(bad(
                                "date",
                                format!("{date:?} is not a date (YYYY-MM-DD)"),
                            ));
                        }
                        check_text("tz", &tz, MAX_ACTOR_FIELD, false)?;
                        match first_seq {
                            Some(f) if f == 0 || f > through_seq => {
                                return Err(bad(
                                    "first_seq",
                                    format!("{f} is not between 1 and through_seq {through_seq}"),
                                ))
                            }
                            None if through_seq != 0 => {
                                return Err(bad("first_seq", "a day with events names its first"))
                            }
                            _ => {}
                        }
                        Draft {
                            kind: EventKind::AuditTrailReviewed,
                            subject: None,
                            payload: json!({"scope": "day", "date": date, "tz": tz,
                                "first_seq": first_seq, "through_seq": through_seq,
                                "through_hash": through_hash, "printed_name": printed_name}),
                            schema: None,
                        }
                    }
                }
            }
            Command::AccountLocked {
                user_id,
                failed_attempts,
            } => {
                self.require_live(app, USER_CLASS, &user_id)?;
                Draft {
                    kind: EventKind::AccountLocked,
                    subject: subject(USER_CLASS, &user_id),
                    payload: json!({"failed_attempts": failed_attempts}),
                    schema: None,
                }
            }
        })
    }

    /// The hash of event `seq` of `app` (in flight or stored); `seq` must exist.
    fn event_hash_of(&self, app: &str, seq: u64) -> Result<Hash32, AppendError> {
        match self.overlay.hashes.get(&(app.to_string(), seq)) {
            Some((_, h)) => Ok(*h),
            None => Ok(read_event(&*self.shared.store, app, seq)
                .map_err(|e| AppendError::WriteFailed(e.to_string()))?
                .hash),
        }
    }

    fn latest_data_version(&self, app: &str, class: &str, id: &str) -> Result<u64, AppendError> {
        let key = (app.to_string(), class.to_string(), id.to_string());
        if let Some(seq) = self.overlay.records.get(&key).and_then(|r| r.last_data) {
            return Ok(seq);
        }
        Ok(self
            .shared
            .store
            .versions(app, class, id)?
            .into_iter()
            .rev()
            .find(|(_, k)| EventKind::from_code(*k).is_some_and(EventKind::is_data_change))
            .map_or(0, |(s, _)| s))
    }

    /// Chains a prepared draft onto the app: next seq, time, hash. Nothing in it can fail
    /// once the app's state starts to move. Signing happens in the writer.
    #[allow(clippy::too_many_arguments)]
    fn chain(
        &mut self,
        g: &mut Group,
        app: &str,
        actor: Actor,
        idempotency_key: Option<String>,
        reason: Option<String>,
        prepared: Prepared,
        new_state: Option<AppState>,
    ) -> Result<usize, AppendError> {
        let Prepared { draft, payload } = prepared;
        if new_state.is_none() && !self.apps.contains_key(app) {
            return Err(AppendError::UnknownApp(app.to_string()));
        }
        let now = self.clock.now();
        let mut id = [0u8; 16];
        self.rng.fill_bytes(&mut id);
        let prior = match new_state {
            Some(s) => {
                self.apps.insert(app.to_string(), s);
                None
            }
            None => self.apps.get(app).map(|s| s.head),
        };
        g.touched.insert(app.to_string());
        let state = self
            .apps
            .get_mut(app)
            .ok_or_else(|| AppendError::UnknownApp(app.to_string()))?;
        let (seq, prev_hash, recorded_at) = match prior {
            Some(p) => (p.seq + 1, p.hash, now.max(p.recorded_at)),
            None => (1, GENESIS_PREV_HASH, now),
        };
        let mut event = Event {
            app: app.to_string(),
            seq,
            id,
            recorded_at,
            actor,
            idempotency_key,
            reason,
            kind: draft.kind,
            subject: draft.subject,
            payload_digest: payload_digest(&payload),
            payload: Some(payload),
            prev_hash,
            key_id: state.key.id(),
            hash: [0; 32],
            signature: [0; 64],
        };
        event.hash = event_hash(&event);
        // The event's leaf and the subtrees it completes: written in the same batch.
        let tree_nodes = state.tree.push::<crate::merkle::Blake3>(&event.hash);
        state.head = Head {
            seq,
            hash: event.hash,
            recorded_at,
        };
        if let Some(next) = draft.schema {
            state.schema = next;
        }
        if event
            .subject
            .as_ref()
            .is_some_and(|s| s.class == USER_CLASS)
        {
            state.users_changed = seq;
        }
        let key = state.key.clone();
        let sets_state = draft.kind.sets_state(seq);
        let group = self.next_group;
        self.overlay
            .hashes
            .insert((app.to_string(), seq), (group, event.hash));
        let version = match (&event.subject, draft.kind.in_version_index()) {
            (Some(s), true) => {
                let key = (app.to_string(), s.class.clone(), s.object_id.clone());
                let earlier_data = self.overlay.records.get(&key).and_then(|r| r.last_data);
                let last_data = if draft.kind.is_data_change() {
                    Some(seq)
                } else {
                    earlier_data
                };
                self.overlay.records.insert(
                    key,
                    InFlightRecord {
                        group,
                        kind: draft.kind,
                        last_data,
                    },
                );
                Some((s.class.clone(), s.object_id.clone(), draft.kind.code()))
            }
            _ => None,
        };
        if let Some(k) = &event.idempotency_key {
            self.overlay
                .idempotency
                .insert((app.to_string(), k.clone()), (group, seq));
        }
        g.built.push(Built {
            write: EventWrite {
                seq,
                bytes: Vec::new(),
                version,
                sets_state,
                idempotency_key: event.idempotency_key.clone(),
                mark: draft.kind.mark(),
                tree_nodes,
            },
            event,
            key,
        });
        Ok(g.built.len() - 1)
    }

    fn create_app(
        &mut self,
        g: &mut Group,
        app: &str,
        source: &str,
        classes: Vec<ClassDef>,
    ) -> Result<Outcome, AppendError> {
        if !is_valid_app_name(app) {
            return Err(bad(
                "app",
                format!("{app:?} must be 1 to 64 of [a-z0-9_-], starting with a letter"),
            ));
        }
        if self.apps.contains_key(app) || !self.shared.store.marked(app, Mark::Key)?.is_empty() {
            return Err(AppendError::AppExists(app.to_string()));
        }
        check_text("source", source, MAX_ACTOR_FIELD, false)?;
        let change = SchemaChange::Define {
            source: source.to_string(),
            classes,
        };
        let schema = next_schema(&AppSchema::default(), &change)?;
        // Everything that can fail is checked before the genesis event is chained, so a
        // refused app leaves nothing behind.
        let define = prepare(Draft {
            kind: EventKind::SchemaChanged,
            subject: None,
            payload: change.to_json(),
            schema: Some(schema),
        })?;
        let key = Arc::new(self.shared.keys.create(app)?);
        let pk: PublicKey = key.public();
        let genesis = Draft {
            kind: EventKind::AppCreated,
            subject: None,
            payload: json!({"app": app, "format": "audit-ledger/v1", "key": {"key_id": pk.key_id.to_string(), "public_key": pk.hex()}}),
            schema: None,
        };
        let genesis = prepare(genesis)?;
        let placeholder = Head {
            seq: 0,
            hash: GENESIS_PREV_HASH,
            recorded_at: Timestamp(i64::MIN),
        };
        let state = AppState {
            head: placeholder,
            schema: Arc::new(AppSchema::default()),
            key,
            tree: crate::merkle::Frontier::new(),
            users_changed: 0,
        };
        self.chain(g, app, Actor::system(), None, None, genesis, Some(state))?;
        let i = self.chain(g, app, Actor::system(), None, None, define, None)?;
        Ok(Outcome::New(i))
    }

    fn rotate(
        &mut self,
        g: &mut Group,
        app: &str,
        actor: Actor,
        reason: Option<String>,
    ) -> Result<Outcome, AppendError> {
        let old = self.state(app)?.key.id();
        if let Some(r) = &reason {
            check_text("reason", r, MAX_REASON, false)?;
        }
        let new_key = Arc::new(self.shared.keys.create(app)?);
        let pk = new_key.public();
        let draft = Draft {
            kind: EventKind::KeyRotated,
            subject: None,
            payload: json!({"key": {"key_id": pk.key_id.to_string(), "public_key": pk.hex()}, "previous_key_id": old.to_string()}),
            schema: None,
        };
        let i = self.chain(g, app, actor, None, reason, prepare(draft)?, None)?;
        if let Some(s) = self.apps.get_mut(app) {
            s.key = new_key;
        }
        g.retire.push((app.to_string(), old));
        Ok(Outcome::New(i))
    }
}

/// The signer: signs and encodes each group's events while the writer writes the groups
/// before it. The hash chain is fixed, so signatures are independent of one another and
/// are made in parallel.
pub(crate) fn run_signer(rx: mpsc::Receiver<Unsigned>, to_writer: mpsc::Sender<Vec<Unsigned>>) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        groups.extend(rx.try_iter());
        // An event that cannot be encoded fails its app's write (its bytes stay empty).
        let sign = |b: &mut Built| -> Option<(String, String)> {
            b.event.signature = b.key.sign_hash(&b.event.hash);
            match codec::encode(&b.event) {
                Ok(bytes) => {
                    b.write.bytes = bytes;
                    None
                }
                Err(e) => Some((b.event.app.clone(), e)),
            }
        };
        let mut all: Vec<&mut Built> = groups
            .iter_mut()
            .flat_map(|u| u.group.built.iter_mut())
            .collect();
        let failures: Vec<Option<(String, String)>> = if all.len() > 1 {
            all.par_iter_mut().map(|b| sign(b)).collect()
        } else {
            all.iter_mut().map(|b| sign(b)).collect()
        };
        let mut failures = failures.into_iter();
        for u in &mut groups {
            u.unencodable = failures
                .by_ref()
                .take(u.group.built.len())
                .flatten()
                .collect();
        }
        // If the writer is gone the ledger is closing: the replies drop and callers see Closed.
        if to_writer.send(groups).is_err() {
            return;
        }
    }
}

pub(crate) fn run_writer(
    shared: &Shared,
    pipeline: &Pipeline,
    rx: mpsc::Receiver<Vec<Unsigned>>,
    to_syncer: mpsc::Sender<Synced>,
) {
    // Groups of this epoch or older are built on a failed write and are refused.
    let mut failed_epoch: Option<u64> = None;
    loop {
        let Ok(first) = rx.recv() else { break };
        let groups: Vec<Unsigned> = std::iter::once(first)
            .chain(rx.try_iter())
            .flatten()
            .collect();
        let mut live = Vec::with_capacity(groups.len());
        let poisoned = shared.poisoned.is_set();
        for u in groups {
            if poisoned {
                for (reply, _) in u.group.replies {
                    let _ = reply.send(Err(shared.poisoned.refusal()));
                }
            } else if failed_epoch.is_some_and(|f| u.epoch <= f) {
                for (reply, _) in u.group.replies {
                    let _ = reply.send(Err(AppendError::WriteFailed(
                        "an earlier write failed; this request was not recorded".into(),
                    )));
                }
            } else {
                live.push(u);
            }
        }
        if live.is_empty() {
            continue;
        }
        let unencodable: Vec<(String, String)> = live
            .iter_mut()
            .flat_map(|u| std::mem::take(&mut u.unencodable))
            .collect();
        let all = live.iter_mut().flat_map(|u| u.group.built.iter_mut());
        let mut batches: Vec<AppBatch> = Vec::new();
        for b in all {
            let head = (b.event.seq, b.event.hash);
            // Moved out, not cloned: the built event keeps only what the answers need.
            let write = std::mem::take(&mut b.write);
            match batches.iter_mut().find(|x| x.app == b.event.app) {
                Some(x) => {
                    x.events.push(write);
                    x.head = head;
                }
                None => batches.push(AppBatch {
                    app: b.event.app.clone(),
                    events: vec![write],
                    head,
                }),
            }
        }
        // One app at a time: an app's batch is written whole or its error says what it
        // left, and an app whose batch was written is answered as written even if a later
        // app's batch fails.
        let mut failed_apps: HashMap<String, String> = unencodable.into_iter().collect();
        // Apps whose write failed with an outcome the store could not settle.
        let mut unknown_apps: HashSet<String> = HashSet::new();
        for batch in &batches {
            if failed_apps.contains_key(&batch.app) {
                continue;
            }
            if let Err(e) = shared.store.write(std::slice::from_ref(batch)) {
                let msg = e.to_string();
                tracing::error!(app = %batch.app, error = %msg, "write failed; the builder reloads from the store");
                // Neither recorded nor surely not.
                if matches!(e, crate::store::StoreError::OutcomeUnknown(_)) {
                    unknown_apps.insert(batch.app.clone());
                }
                // A store that refuses every later write: the ledger refuses them first,
                // until it is restarted (groups written before stay acknowledged when
                // the store made them durable as it wrote them).
                if let Some(why) = shared.store.refuses_writes() {
                    shared.poisoned.set(&why);
                }
                failed_apps.insert(batch.app.clone(), msg);
            }
        }
        if !failed_apps.is_empty() {
            failed_epoch = live.iter().map(|u| u.epoch).max();
            pipeline.reset.store(true, Ordering::Release);
        }
        if let Some(max) = live.iter().map(|u| u.id).max() {
            pipeline.applied_group.fetch_max(max, Ordering::AcqRel);
        }
        let mut synced = Synced {
            replies: Vec::new(),
            views: Vec::new(),
            retire: Vec::new(),
        };
        for u in live {
            // Each new event answers exactly one request, so events are moved, not cloned.
            let mut events: Vec<Option<Event>> =
                u.group.built.into_iter().map(|b| Some(b.event)).collect();
            for (reply, o) in u.group.replies {
                let app = match &o {
                    Outcome::New(i) => events.get(*i).and_then(Option::as_ref).map(|e| &e.app),
                    Outcome::InFlight { app, .. } => Some(app),
                    Outcome::Existing(_) => None,
                };
                if let Some((app, msg)) = app.and_then(|a| Some((a, failed_apps.get(a)?))) {
                    let _ = reply.send(Err(if unknown_apps.contains(app) {
                        AppendError::Durability(msg.clone())
                    } else {
                        AppendError::WriteFailed(msg.clone())
                    }));
                    continue;
                }
                let answer = match o {
                    Outcome::New(i) => {
                        Answer::Ready(Box::new(match events.get_mut(i).and_then(Option::take) {
                            Some(event) => Ok(Appended {
                                event,
                                duplicate: false,
                            }),
                            None => Err(AppendError::WriteFailed(
                                "internal: an event answered two requests".into(),
                            )),
                        }))
                    }
                    Outcome::Existing(e) => Answer::Ready(Box::new(Ok(Appended {
                        event: *e,
                        duplicate: true,
                    }))),
                    Outcome::InFlight { app, seq } => Answer::Lookup { app, seq },
                };
                synced.replies.push((reply, answer));
            }
            let written = |app: &String| !failed_apps.contains_key(app);
            synced
                .views
                .extend(u.views.into_iter().filter(|(app, _)| written(app)));
            synced
                .retire
                .extend(u.group.retire.into_iter().filter(|(app, _)| written(app)));
        }
        let _ = to_syncer.send(synced);
    }
}

/// The syncer: makes written groups durable, publishes heads, answers.
pub(crate) fn run_syncer(shared: &Shared, rx: mpsc::Receiver<Synced>) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        groups.extend(rx.try_iter());
        // After a failed fsync nothing may be acknowledged: the kernel may have dropped
        // pages that an earlier write depended on, even if a later fsync succeeds. A store
        // whose writes were durable when they returned answers for those already written.
        let result = if shared.poisoned.is_set() && !shared.store.writes_durable() {
            Err(())
        } else {
            shared.store.sync_appends().map_err(|e| {
                let why = e.to_string();
                shared.poisoned.set(&why);
                tracing::error!(error = %why, "making writes durable failed; refusing further writes");
            })
        };
        if result.is_err() {
            for g in groups {
                for (reply, _) in g.replies {
                    let _ = reply.send(Err(shared.poisoned.refusal()));
                }
            }
            continue;
        }
        {
            let mut durable = shared.durable.write().unwrap_or_else(|p| p.into_inner());
            for g in &groups {
                for (app, view) in &g.views {
                    durable.insert(app.clone(), view.clone());
                }
            }
        }
        for g in groups {
            for (reply, answer) in g.replies {
                let r = match answer {
                    Answer::Ready(r) => *r,
                    Answer::Lookup { app, seq } => read_event(&*shared.store, &app, seq)
                        .map(|event| Appended {
                            event,
                            duplicate: true,
                        })
                        .map_err(|e| AppendError::WriteFailed(e.to_string())),
                };
                let _ = reply.send(r);
            }
            for (app, key) in g.retire {
                if let Err(e) = shared.keys.retire(&app, key) {
                    tracing::warn!(app = %app, key = %key, error = %e, "could not destroy a rotated-out key");
                }
            }
        }
    }
    // Closing: everything written made durable in full, so that the next open has
    // nothing to restore.
    if !shared.poisoned.is_set() {
        if let Err(e) = shared.store.sync() {
            tracing::warn!(error = %e, "the closing sync failed; the next open restores what it can");
        }
    }
}
