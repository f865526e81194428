//! What every request shares: the ledger, the projections, the credential store, the clock
//! and the configuration, plus the helpers handlers use to append, to check permissions
//! (recording refusals as `access.denied` events) and to read records.

use std::sync::{Arc, Mutex};

use ledger::{Actor, AppendRequest, Appended, Clock, Command, Ledger};
use metrics::counter;
use projections::{At, Projections, Record};

use crate::auth::permissions::{rules, ClassRules, Op};
use crate::auth::store::AuthStore;
use crate::auth::users::Users;
use crate::auth::Caller;
use crate::config::ServerConfig;
use crate::error::{code, unknown_app, ApiError, ApiResult};

/// Where a request is being decided. On a thread that may block (the blocking pool) every
/// check decides: a refusal is recorded in place (an `access.denied` append, awaited) and
/// a read may wait for the projections to catch up. On the async runtime nothing may
/// wait, so a check that would refuse, flush, or wait (for the projections to catch up, or
/// for their writer's lock) leaves the request undecided (`Ok(None)`) and the server redoes
/// it on the blocking pool, where the same checks decide it and record what they must.
/// (Point reads of sled's cached pages are done on the runtime.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decide {
    /// On a thread that may block.
    Blocking,
    /// On the async runtime: only what needs no wait.
    OnRuntime,
}

impl Decide {
    /// What a check made with [`Decide::Blocking`] came to: such a check always decides,
    /// so an undecided one is an internal error naming `what`.
    pub fn decided<T>(what: &str, checked: ApiResult<Option<T>>) -> ApiResult<T> {
        checked?.ok_or_else(|| {
            ApiError::internal(format!("{what} on the blocking pool left undecided"))
        })
    }
}

/// The shared state of a running server.
pub struct State {
    /// Its configuration.
    pub config: ServerConfig,
    /// The log.
    pub ledger: Arc<Ledger>,
    /// The current views and past reads.
    pub projections: Arc<Projections>,
    /// Passwords, sessions, failed logins.
    pub auth: AuthStore,
    /// Signed-in users' usernames and roles, while no user record changes.
    pub users: Users,
    /// Where "now" comes from (the ledger's clock).
    pub clock: Arc<dyn Clock>,
    /// Serialises account creation (username uniqueness) and read-modify-write updates
    /// (`Increment`, `Add`…), so concurrent writers never lose an update.
    pub write_lock: Mutex<()>,
}

impl State {
    /// `app` if this server has it, else the unknown-app error.
    pub fn known_app(&self, app: Option<&str>) -> ApiResult<String> {
        let app = app.ok_or_else(|| {
            ApiError::forbidden(
                "no application id: send the X-Parse-Application-Id header (or _ApplicationId) naming an app",
            )
        })?;
        if self.ledger.head(app).is_some() {
            Ok(app.to_string())
        } else {
            Err(unknown_app(app))
        }
    }

    /// The class's definition in the app's current schema, or a 400 naming it.
    pub fn class_def(&self, app: &str, class: &str) -> ApiResult<ledger::schema::ClassDef> {
        let schema = self.ledger.schema(app).ok_or_else(|| unknown_app(app))?;
        schema.class(class).cloned().ok_or_else(|| {
            ApiError::bad(
                code::INVALID_CLASS_NAME,
                format!("class {class} does not exist in app {app}"),
            )
        })
    }

    /// Appends, acknowledging only once durable.
    pub fn append(
        &self,
        app: &str,
        actor: Actor,
        idempotency_key: Option<String>,
        reason: Option<String>,
        command: Command,
    ) -> ApiResult<Appended> {
        let r = self.ledger.append(AppendRequest {
            app: app.to_string(),
            actor,
            idempotency_key,
            reason,
            command,
        });
        count_append(app, &r);
        Ok(r?)
    }

    /// [`State::append`] for async callers: the request is queued at once and the caller
    /// awaits its acknowledgement without holding a thread.
    pub async fn submit(&self, request: AppendRequest) -> ApiResult<Appended> {
        let app = request.app.clone();
        let r = self.ledger.submit(request).await;
        count_append(&app, &r);
        Ok(r?)
    }

    /// Allows `op` on `class` for the caller, or records an `access.denied` event and
    /// refuses with 403 naming the role and who may.
    pub fn permit(
        &self,
        caller: &Caller,
        op: Op,
        class: &str,
        object_id: Option<&str>,
    ) -> ApiResult<ClassRules> {
        match self.allows(caller, op, class) {
            Some(r) => Ok(r),
            None => Err(self.deny(caller, op, class, object_id, &rules(&caller.app, class))),
        }
    }

    /// The class's rules if the caller may do `op` on it; records nothing either way.
    pub fn allows(&self, caller: &Caller, op: Op, class: &str) -> Option<ClassRules> {
        let r = rules(&caller.app, class);
        caller
            .role
            .is_some_and(|role| r.roles(op).contains(role))
            .then_some(r)
    }

    /// Records the refusal and builds its error.
    pub fn deny(
        &self,
        caller: &Caller,
        op: Op,
        class: &str,
        object_id: Option<&str>,
        r: &ClassRules,
    ) -> ApiError {
        let allowed = r.roles(op).names();
        let who = match caller.role {
            Some(role) => format!("role {role}"),
            None => format!("user {} (no role granted yet)", caller.username),
        };
        let message = if allowed.is_empty() {
            format!(
                "{who} may not {} {class}: nobody may ({class} is append-only)",
                op.name()
            )
        } else {
            format!(
                "{who} may not {} {class} (allowed: {})",
                op.name(),
                allowed.join(", ")
            )
        };
        self.record_denial(caller, op.name(), Some(class), object_id);
        ApiError::forbidden(message)
    }

    /// Appends an `access.denied` event (best effort: a failure is logged, the refusal
    /// stands either way).
    pub fn record_denial(
        &self,
        caller: &Caller,
        operation: &str,
        class: Option<&str>,
        object_id: Option<&str>,
    ) {
        counter!("access_denied_total").increment(1);
        let r = self.append(
            &caller.app,
            caller.actor(),
            None,
            None,
            Command::AccessDenied {
                operation: operation.to_string(),
                class: class.map(str::to_string),
                object_id: object_id.map(str::to_string),
            },
        );
        if let Err(e) = r {
            tracing::warn!(error = %e, "recording an access.denied event failed");
        }
    }

    /// One record as it stands now.
    pub fn record(&self, app: &str, class: &str, object_id: &str) -> ApiResult<Option<Record>> {
        Ok(self.projections.get(app, class, object_id, At::Now)?.value)
    }
}

/// Counts an append's outcome in the metrics.
fn count_append(app: &str, r: &Result<Appended, ledger::AppendError>) {
    match r {
        Ok(a) if !a.duplicate => {
            counter!("ledger_appends_total", "app" => app.to_string()).increment(1)
        }
        Ok(_) => counter!("ledger_idempotent_replays_total").increment(1),
        Err(_) => counter!("ledger_append_refusals_total").increment(1),
    }
}
