//! A server in memory for the HTTP tests: an in-memory ledger on a manual clock, temporary
//! projections and credential store, cheap password hashing, and requests sent straight
//! to the router (no sockets).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;

use api::accounts::{create_user, NewUser};
use api::auth::store::AuthStore;
use api::{PasswordCost, Server, ServerConfig};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use ledger::{Actor, Event, Ledger, LedgerConfig, ManualClock, Timestamp};
use projections::Projections;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

/// The password of every test user.
pub const PASSWORD: &str = "correct-horse-battery";

/// A test server.
pub struct T {
    pub server: Server,
    pub router: Router,
    pub clock: Arc<ManualClock>,
}

/// An answer: status, headers, JSON body (`Null` if not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> Option<u64> {
        self.body.get("code").and_then(Value::as_u64)
    }
    pub fn error(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or("")
    }
    pub fn seq(&self) -> Option<u64> {
        self.headers
            .get("x-ledger-seq")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

impl T {
    pub fn new() -> T {
        Self::with_config(|_| {})
    }

    pub fn with_config(f: impl FnOnce(&mut ServerConfig)) -> T {
        let clock = Arc::new(ManualClock::new(Timestamp(1_795_435_200_000_000)));
        let ledger =
            Arc::new(Ledger::open(LedgerConfig::in_memory([7; 32], clock.clone())).unwrap());
        // Appends block until durable: not on the async test's thread.
        let l = ledger.clone();
        std::thread::spawn(move || l.ensure_builtin_apps().unwrap())
            .join()
            .unwrap();
        let projections = Arc::new(Projections::temporary(ledger.clone()).unwrap());
        let mut config = ServerConfig::new("/nonexistent");
        config.password_cost = PasswordCost::for_tests();
        // Reasons for change are tested on their own (tests/esign.rs); elsewhere gxp
        // updates need none.
        config.default_policy.require_reason = Some(vec![]);
        f(&mut config);
        let server = Server::from_parts(
            config,
            ledger,
            projections,
            AuthStore::temporary().unwrap(),
            clock.clone(),
        );
        let router = server.router();
        T {
            server,
            router,
            clock,
        }
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.server.state().ledger
    }

    /// The app's head sequence number.
    pub fn head(&self, app: &str) -> u64 {
        self.ledger().head(app).unwrap().seq
    }

    /// The app's last event.
    pub fn last_event(&self, app: &str) -> Event {
        self.ledger().event(app, self.head(app)).unwrap().unwrap()
    }

    /// Creates a user with a role (by the system), returning its objectId.
    pub async fn user(&self, app: &str, username: &str, role: &str) -> String {
        let mut fields = Map::new();
        if !role.is_empty() {
            fields.insert("role".into(), json!(role));
        }
        let state = self.server.state().clone();
        let (app, username) = (app.to_string(), username.to_string());
        tokio::task::spawn_blocking(move || {
            create_user(
                &state,
                &app,
                Some(Actor::system()),
                None,
                NewUser {
                    username,
                    password: PASSWORD.into(),
                    fields,
                },
            )
            .unwrap()
            .0
        })
        .await
        .unwrap()
    }

    /// Sends a raw request.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends `method path` to app `app` with a session token (if any) and a JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        app: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("X-Parse-Application-Id", app)
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            b = b.header("X-Parse-Session-Token", t);
        }
        let body = body.map_or(Body::empty(), |v| Body::from(v.to_string()));
        self.send(b.body(body).unwrap()).await
    }

    /// A ValidationLog (`validation_log()`) created in gxp by the holder of `token`.
    pub async fn create_log(&self, token: &str) -> Answer {
        self.call(
            "POST",
            "/parse/classes/ValidationLog",
            "gxp",
            Some(token),
            Some(validation_log()),
        )
        .await
    }

    /// Logs a user in, returning the session token.
    pub async fn login(&self, app: &str, username: &str) -> String {
        let a = self
            .call(
                "POST",
                "/parse/login",
                app,
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "login {username}: {}", a.body);
        a.body["sessionToken"].as_str().unwrap().to_string()
    }

    /// An admin (`admin_token`) gives the user `user_id` of `app` the role `role`.
    pub async fn set_role(
        &self,
        app: &str,
        admin_token: &str,
        user_id: &str,
        role: &str,
    ) -> Answer {
        self.call(
            "PUT",
            &format!("/parse/users/{user_id}"),
            app,
            Some(admin_token),
            Some(json!({ "role": role })),
        )
        .await
    }

    /// Asserts that exactly one event was appended to `app` since its head was `before`,
    /// and that it records a refusal (`access.denied`); returns it.
    pub fn assert_one_denial(&self, app: &str, before: u64) -> Event {
        assert_eq!(self.head(app), before + 1, "one event appended");
        let e = self.last_event(app);
        assert_eq!(e.kind.name(), "access.denied");
        e
    }

    /// A user with `role` in gxp, logged in: (objectId, token).
    pub async fn session(&self, app: &str, role: &str) -> (String, String) {
        let name = format!("{role}.user");
        let id = self.user(app, &name, role).await;
        (id, self.login(app, &name).await)
    }
}

/// A valid ValidationLog body.
pub fn validation_log() -> Value {
    json!({
        "protocolId": "IQ-001",
        "testedSystem": "LIMS",
        "result": "pass",
        "executedAt": {"__type": "Date", "iso": "2026-11-20T10:00:00.000Z"},
    })
}
