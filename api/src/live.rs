//! Live changes over Server-Sent Events: `GET /ledger/{app}/changes?from=N&class=C`.
//!
//! A catch-up subscription: it replays the log from sequence number `from` (default:
//! the next event to be appended), then follows new events as they become durable. Each
//! SSE message is one event: `id` its sequence number, `event` its kind, `data` its
//! export line (docs/FORMAT.md §4.3), so a client can verify what it receives. A client
//! that reconnects with `Last-Event-ID` resumes after that event (the browser's
//! `EventSource` does this by itself).
//!
//! Events are filtered by the caller's read permissions: record events (created,
//! updated, deleted, signed, reviewed) of classes the caller's role reads; everything
//! else (accounts, sessions, schema, keys, refusals) only for audit roles. Skipped events
//! still advance the position. The session is checked again every
//! [`RECHECK`]; when it ends, the stream sends an `end` message and closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State as Extract};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::{AppPath, ErrorBody};
use ledger::schema::USER_CLASS;
use ledger::{Event, EventKind};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::accounts;
use crate::auth::permissions::{rules, Op};
use crate::auth::Caller;
use crate::error::{code, ApiError, ApiResult};
use crate::native::{audit_roles, blocking, token};
use crate::state::State;

/// How often a live stream checks that its session is still valid.
pub const RECHECK: Duration = Duration::from_secs(30);
/// How long a caught-up stream waits before looking for new events.
const POLL: Duration = Duration::from_millis(50);
/// Most events read from the log in one step.
const CHUNK: u64 = 256;

/// The live route, nested at `/ledger`.
pub fn routes() -> OpenApiRouter<Arc<State>> {
    OpenApiRouter::new().routes(routes!(changes))
}

#[derive(Deserialize)]
struct Params {
    from: Option<u64>,
    class: Option<String>,
}

/// What one subscriber may see.
#[derive(Clone)]
struct Filter {
    caller: Caller,
    class: Option<String>,
}

impl Filter {
    fn shows(&self, e: &Event) -> bool {
        let class = e.subject.as_ref().map(|s| s.class.as_str());
        if self.class.is_some() && class != self.class.as_deref() {
            return false;
        }
        let Some(role) = self.caller.role else {
            return false;
        };
        if audit_roles().contains(role) {
            return true;
        }
        let record_kind = e.kind.is_record_change()
            || matches!(
                e.kind,
                EventKind::RecordSigned | EventKind::AuditTrailReviewed
            );
        match class {
            Some(c) if record_kind && c != USER_CLASS => {
                rules(&self.caller.app, c).roles(Op::Read).contains(role)
            }
            _ => false,
        }
    }
}

/// `GET /ledger/{app}/changes`.
#[utoipa::path(get, path = "/{app}/changes", tag = "live", params(AppPath,
        ("from" = Option<u64>, Query, description = "The first sequence number to send (default: the head, new events only)"),
        ("class" = Option<String>, Query, description = "Only this class"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event (sent by EventSource on reconnect)")),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "Server-Sent Events: `id: seq`, `event: kind`, `data: export line`; from the log, then following new events", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A bad parameter, named", body = ErrorBody),
        (status = 401, description = "No valid session (209)", body = ErrorBody),
        (status = 403, description = "Not permitted to read the class (119)", body = ErrorBody)))]
async fn changes(
    Extract(state): Extract<Arc<State>>,
    Path(app): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad(
                        code::INVALID_QUERY,
                        format!("Last-Event-ID: {v:?} is not a sequence number"),
                    )
                })
        })
        .transpose();
    let resume = match resume {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let s = state.clone();
    let class = p.class.clone();
    let setup = blocking(s, move |s| -> ApiResult<(Filter, u64)> {
        s.known_app(Some(&app))?;
        let caller = accounts::caller(s, &app, token(&headers).as_deref())?;
        if let Some(c) = &class {
            s.class_def(&app, c)?;
            s.permit(&caller, Op::Read, c, None)?;
        }
        let head = s.ledger.head(&app).map_or(0, |h| h.seq);
        let next = match (resume, p.from) {
            (Some(last), _) => last + 1,
            (None, Some(from)) => from.max(1),
            (None, None) => head + 1,
        };
        Ok((Filter { caller, class }, next))
    })
    .await;
    let (filter, next) = match setup {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(follow(state, filter, next, tx));
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

type Tx = mpsc::Sender<Result<SseEvent, Infallible>>;

/// Reads the visible events from `next` on (at most [`CHUNK`]): the messages and the
/// position after them.
fn read_from(state: &State, f: &Filter, next: u64) -> ApiResult<(Vec<SseEvent>, u64)> {
    let app = &f.caller.app;
    let head = state.ledger.head(app).map_or(0, |h| h.seq);
    if next > head {
        return Ok((Vec::new(), next));
    }
    let to = head.min(next + CHUNK - 1);
    let mut out = Vec::new();
    for e in state
        .ledger
        .events(app, next, to)
        .map_err(|e| ApiError::internal(e.to_string()))?
    {
        let e = e.map_err(|e| ApiError::internal(e.to_string()))?;
        if f.shows(&e) {
            out.push(
                SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.kind.name())
                    .data(ledger::export::event_line(&e)),
            );
        }
    }
    Ok((out, to + 1))
}

/// Feeds one subscriber until it goes away or its session ends.
async fn follow(state: Arc<State>, mut f: Filter, mut next: u64, tx: Tx) {
    let mut checked = Instant::now();
    loop {
        let (s, filter) = (state.clone(), f.clone());
        let r = tokio::task::spawn_blocking(move || read_from(&s, &filter, next)).await;
        let (events, after) = match r {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                let _ = tx
                    .send(Ok(SseEvent::default().event("error").data(e.message)))
                    .await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "live stream reader failed");
                return;
            }
        };
        let caught_up = after == next;
        next = after;
        for e in events {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
        if checked.elapsed() >= RECHECK {
            checked = Instant::now();
            let (s, c) = (state.clone(), f.caller.clone());
            let again =
                tokio::task::spawn_blocking(move || accounts::caller(&s, &c.app, Some(&c.token)))
                    .await;
            match again {
                Ok(Ok(caller)) => f.caller = caller,
                Ok(Err(e)) => {
                    let _ = tx
                        .send(Ok(SseEvent::default().event("end").data(e.message)))
                        .await;
                    return;
                }
                Err(_) => return,
            }
        }
        if caught_up {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
