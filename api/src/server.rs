//! The HTTP server: opening the data directory, the axum router (`/health`, `/metrics`,
//! `/parse/…`), request ids and tracing, CORS for browser clients, Prometheus metrics,
//! the projection catch-up task, and a graceful shutdown that finishes in-flight writes
//! and flushes before exiting.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State as Extract;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use ledger::{Clock, Ledger, LedgerConfig, SystemClock};
use metrics::gauge;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use projections::Projections;
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::store::AuthStore;
use crate::config::ServerConfig;
use crate::edge::EdgeLayer;
use crate::error::{code, ApiError};
use crate::parse::objects::PreparedCreate;
use crate::parse::request::ParseRequest;
use crate::parse::{self, dispatch_step, Reply, Step};
use crate::state::{Decide, State};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The ledger could not be opened.
    #[error("opening the ledger in {dir}: {error}")]
    Ledger {
        /// The data directory.
        dir: String,
        /// Why (in the message, not repeated as a source).
        error: ledger::OpenError,
    },
    /// The built-in apps could not be created.
    #[error("creating the built-in apps: {0}")]
    Apps(ledger::AppendError),
    /// The projections could not be opened.
    #[error("opening the projections: {0}")]
    Projections(#[from] projections::ProjectionError),
    /// The credential store could not be opened.
    #[error("opening the credential store: {0}")]
    Auth(#[from] crate::auth::store::AuthStoreError),
}

/// The header carrying the sequence number an answer reflects.
pub const SEQ_HEADER: &str = "x-ledger-seq";
pub use crate::edge::REQUEST_ID_HEADER;

/// A server ready to serve: its shared state.
pub struct Server {
    state: Arc<State>,
}

impl Server {
    /// Opens the data directory (creating it and the five built-in apps as needed) with
    /// the system clock.
    pub fn open(config: ServerConfig) -> Result<Server, StartError> {
        let dir = config.data_dir.clone();
        let ledger_err = |error| StartError::Ledger {
            dir: dir.display().to_string(),
            error,
        };
        let mut lc = LedgerConfig::in_dir(&dir).map_err(|e| ledger_err(e.into()))?;
        lc.checkpoints.interval = config.checkpoint_interval;
        lc.min_free_bytes = config.min_free_bytes;
        let ledger = Arc::new(Ledger::open(lc).map_err(ledger_err)?);
        ledger.ensure_builtin_apps().map_err(StartError::Apps)?;
        let projections = Arc::new(Projections::open_dir(
            ledger.clone(),
            &dir.join("projections"),
        )?);
        let auth = AuthStore::open(&dir.join("auth"))?;
        Ok(Server::from_parts(
            config,
            ledger,
            projections,
            auth,
            Arc::new(SystemClock),
        ))
    }

    /// A server over parts already open (tests use an in-memory ledger and a manual clock).
    pub fn from_parts(
        config: ServerConfig,
        ledger: Arc<Ledger>,
        projections: Arc<Projections>,
        auth: AuthStore,
        clock: Arc<dyn Clock>,
    ) -> Server {
        Server {
            state: Arc::new(State {
                config,
                ledger,
                projections,
                auth,
                users: Default::default(),
                clock,
                write_lock: Mutex::new(()),
            }),
        }
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The routes and the OpenAPI document describing them, built together: every
    /// annotated handler is registered in both at once (`crate::openapi`). The Parse
    /// routes are one dispatcher here and are described route by route in the document.
    fn documented_routes() -> (Router<Arc<State>>, utoipa::openapi::OpenApi) {
        let (router, mut doc) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
            .routes(routes!(health))
            .routes(routes!(metrics_text))
            .nest("/ledger", crate::native::routes())
            .split_for_parts();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        let router = router
            .route("/parse", any(parse_route))
            .route("/parse/{*rest}", any(parse_route));
        (router, doc)
    }

    /// The router, with its middleware.
    pub fn router(&self) -> Router {
        // Any origin, method and header: no answer depends on the request's, so no `Vary`.
        let cors = CorsLayer::new()
            .allow_origin(Any)
            .allow_methods(Any)
            .allow_headers(Any)
            .vary(Vec::<HeaderName>::new());
        let (routed, doc) = Self::documented_routes();
        let doc = Arc::new(doc);
        routed
            .route(
                "/openapi.json",
                get(move || {
                    let doc = doc.clone();
                    async move { Json(doc.as_ref().clone()).into_response() }
                }),
            )
            .fallback(not_found)
            .with_state(self.state.clone())
            .layer(EdgeLayer::default())
            .layer(cors)
    }

    /// Serves on `listener` until `shutdown` resolves; then stops accepting, lets
    /// in-flight requests finish, and flushes the projections and credential store. The
    /// ledger is flushed on every acknowledged write and closed when the last handle drops.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (stop_catch_up, catch_up_stopped) = std::sync::mpsc::channel::<()>();
        let state = self.state.clone();
        let syncer = std::thread::Builder::new()
            .name("projection-sync".into())
            .spawn(move || catch_up(&state, &catch_up_stopped))?;
        let checkpointer = tokio::spawn(checkpoints(self.state.clone(), stopped));
        let router = self.router();
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        let _ = stop.send(true);
        drop(stop_catch_up);
        let _ = tokio::task::spawn_blocking(move || syncer.join()).await;
        let _ = checkpointer.await;
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // The last acknowledged writes get a signed checkpoint before the process ends.
            if state.ledger.checkpoint_interval().is_some() {
                cut_checkpoints(&state);
            }
            if let Err(e) = state.projections.flush() {
                tracing::warn!(error = %e, "flushing projections at shutdown");
            }
            if let Err(e) = state.auth.flush() {
                tracing::warn!(error = %e, "flushing the credential store at shutdown");
            }
        })
        .await;
        Ok(())
    }
}

/// Keeps the projections close to the head, so reads rarely wait for a catch-up; until
/// `stop` is dropped. Runs on a thread of its own at a lower scheduling priority (nice 10,
/// which needs no privilege): the catch-up is background work, and takes the CPU the
/// request path leaves idle instead of competing with it for the two cores.
fn catch_up(state: &State, stop: &std::sync::mpsc::Receiver<()>) {
    if let Err(e) = rustix::process::nice(10) {
        tracing::debug!(error = %e, "the projection catch-up keeps the default priority");
    }
    loop {
        for app in state.ledger.apps() {
            let head = state.ledger.head(&app).map_or(0, |h| h.seq);
            let applied = state.projections.applied(&app).unwrap_or(0);
            gauge!("projection_lag_events", "app" => app.clone())
                .set(head.saturating_sub(applied) as f64);
            if applied < head {
                if let Err(e) = state.projections.sync(&app) {
                    tracing::error!(app, error = %e, "projection catch-up failed");
                }
            }
        }
        match stop.recv_timeout(Duration::from_millis(20)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Signs a checkpoint of every app that grew (docs/FORMAT.md §8.3), logging failures:
/// an inconsistency means the log was altered behind the ledger's back.
fn cut_checkpoints(state: &State) {
    for (app, r) in state.ledger.checkpoint_all() {
        match r {
            Ok(cp) => gauge!("checkpoint_tree_size", "app" => app).set(cp.size() as f64),
            Err(e) => tracing::error!(app, error = %e, "signing a checkpoint failed"),
        }
    }
}

/// Cuts checkpoints on the ledger's configured interval (none if it has none).
async fn checkpoints(state: Arc<State>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(every) = state.ledger.checkpoint_interval() else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(every) => {}
        }
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || cut_checkpoints(&s)).await;
    }
}

#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, description = "`{status, apps, writes_refused}` once the server is ready: status is \"ok\", or \"read_only\" while writes are refused (the data directory is below its free-space reserve or read-only, or an fsync failed), with the reason in writes_refused; reads are still served", body = Object)))]
async fn health(Extract(state): Extract<Arc<State>>) -> Response {
    let refusal = state.ledger.write_refusal();
    let status = if refusal.is_some() { "read_only" } else { "ok" };
    Json(json!({"status": status, "apps": state.ledger.apps(), "writes_refused": refusal}))
        .into_response()
}

/// The process-wide Prometheus recorder (installed once, shared by every server).
fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        })
        .as_ref()
}

/// Installs the metrics recorder (call before serving so early metrics are kept).
pub fn install_metrics() {
    let _ = prometheus();
}

#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus metrics (text exposition format)", body = String, content_type = "text/plain")))]
async fn metrics_text(Extract(state): Extract<Arc<State>>) -> Response {
    for app in state.ledger.apps() {
        if let Some(h) = state.ledger.head(&app) {
            gauge!("ledger_head_seq", "app" => app.clone()).set(h.seq as f64);
        }
    }
    match prometheus() {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => ApiError::internal("metrics recorder unavailable").into_response(),
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        code::INVALID_JSON,
        format!("no such route: {method} {}", uri.path()),
    )
    .into_response()
}

pub(crate) fn reply_response(r: Reply) -> Response {
    let mut resp = (r.status, Json(r.body)).into_response();
    if let Some(seq) = r.seq {
        resp.headers_mut()
            .insert(SEQ_HEADER, HeaderValue::from(seq));
    }
    if let Some(l) = r.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp
}

/// Everything under `/parse`: read the body within the limit, normalise, dispatch off the
/// async runtime (a small record create is checked on it: [`Decide::OnRuntime`]).
async fn parse_route(
    Extract(state): Extract<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::OBJECT_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
        .into_response()
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return too_large();
    };
    let path = uri.path().strip_prefix("/parse").unwrap_or("").to_string();
    let query = uri.query().map(str::to_string);
    let depth = state.config.max_json_depth;
    // A small POST is read here, and a record create in it checked on the runtime (the
    // hot write path: no hand-off to the blocking pool); whatever would block there, and
    // every other request, is decided on the blocking pool.
    let mut parsed = None;
    if method == Method::POST && bytes.len() <= RUNTIME_BODY_LIMIT {
        let req = match ParseRequest::from_http(
            method.clone(),
            &path,
            query.as_deref(),
            &headers,
            &bytes,
            depth,
        ) {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
        if let Some(class) = parse::record_create_class(&req) {
            match parse::prepare_record_create(&state, &req, class, Decide::OnRuntime) {
                Ok(Some(p)) => return append_create(&state, p).await,
                Ok(None) => {}
                Err(e) => return e.into_response(),
            }
        }
        parsed = Some(req);
    }
    let result = tokio::task::spawn_blocking(move || {
        let req = match parsed {
            Some(req) => req,
            None => {
                ParseRequest::from_http(method, &path, query.as_deref(), &headers, &bytes, depth)?
            }
        };
        dispatch_step(&state, &req).map(|step| (step, state))
    })
    .await;
    match result {
        Ok(Ok((Step::Reply(reply), _))) => reply_response(reply),
        Ok(Ok((Step::Create(p), state))) => append_create(&state, *p).await,
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(format!("request handler failed: {e}")).into_response(),
    }
}

/// The largest body a POST may have to be read on the async runtime (a create is a few
/// hundred bytes; a larger body is parsed on the blocking pool).
const RUNTIME_BODY_LIMIT: usize = 16 * 1024;

/// Queues a checked create and answers once it is durable.
async fn append_create(state: &State, p: PreparedCreate) -> Response {
    let (request, answer) = p.split();
    match state.submit(request).await {
        Ok(a) => reply_response(answer.reply(&a)),
        Err(e) => e.into_response(),
    }
}
