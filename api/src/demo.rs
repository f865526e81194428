//! `serve --demo`: realistic demo data, once. Fresh apps get a deterministic history from
//! `fixtures` (users, records of every class, updates with reasons, approvals, deletions)
//! recorded over the past days; every app gets one demo account per role whose username
//! is the role's name. Data already in a directory is never rewritten: on a used
//! directory only the missing demo accounts are added.

use std::path::Path;
use std::sync::Arc;

use fixtures::generate::{generate, GenConfig, GenStats};
use ledger::{Actor, Ledger, LedgerConfig, ManualClock, OpenError, Timestamp};
use serde_json::{json, Map};

use crate::accounts::{create_user, NewUser};
use crate::auth::permissions::Role;
use crate::error::ApiError;
use crate::state::State;

/// The demo password when `--demo-password` is not given.
pub const DEFAULT_DEMO_PASSWORD: &str = "audit-ledger-demo";
/// Events of demo history generated into fresh apps, by default.
pub const DEMO_EVENTS: u64 = 20_000;
/// Days of demo history, ending shortly before now.
pub const DEMO_DAYS: u32 = 30;

/// Events an app has right after it is created from its template (genesis and schema).
const FRESH_APP_EVENTS: u64 = 2;

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The ledger could not be opened.
    #[error("opening the ledger for demo data: {0}")]
    Open(#[from] OpenError),
    /// Generating failed.
    #[error("generating demo data: {0}")]
    Generate(String),
    /// Creating an account failed.
    #[error("creating demo account {username} in {app}: {source}")]
    Account {
        /// The app.
        app: String,
        /// The username.
        username: String,
        /// Why.
        source: ApiError,
    },
}

/// Generates demo history into the data directory if every app is fresh. Runs before the
/// server opens the directory (it uses its own clock, set to past days). Returns what was
/// generated, or `None` when the apps already hold data.
pub fn seed_history(
    data_dir: &Path,
    now: Timestamp,
    events: u64,
) -> Result<Option<GenStats>, DemoError> {
    let start = Timestamp(now.0 - (DEMO_DAYS as i64 + 1) * 86_400 * 1_000_000);
    let clock = Arc::new(ManualClock::new(start));
    let mut config = LedgerConfig::in_dir(data_dir).map_err(OpenError::from)?;
    config.clock = clock.clone();
    let ledger = Ledger::open(config)?;
    ledger
        .ensure_builtin_apps()
        .map_err(|e| DemoError::Generate(e.to_string()))?;
    let fresh = ledger
        .apps()
        .iter()
        .all(|a| ledger.head(a).is_some_and(|h| h.seq <= FRESH_APP_EVENTS));
    if !fresh {
        return Ok(None);
    }
    let cfg = GenConfig {
        seed: 2026,
        events,
        days: DEMO_DAYS,
        start,
    };
    let stats = generate(&ledger, &clock, &cfg).map_err(|e| DemoError::Generate(e.to_string()))?;
    ledger.close();
    Ok(Some(stats))
}

/// Creates, in every app, the demo accounts that are missing: one per role, username =
/// role name, password `password`. Returns how many were created.
pub fn ensure_accounts(state: &State, password: &str) -> Result<usize, DemoError> {
    let mut created = 0;
    for app in state.ledger.apps() {
        for role in Role::ALL {
            let username = role.name().to_string();
            let exists = state
                .auth
                .user_by_name(&app, &username)
                .map_err(|e| DemoError::Generate(e.to_string()))?
                .is_some();
            if exists {
                continue;
            }
            let mut fields = Map::new();
            fields.insert("role".into(), json!(role.name()));
            fields.insert(
                "email".into(),
                json!(format!("{username}@{app}.demo.invalid")),
            );
            let r = create_user(
                state,
                &app,
                Some(Actor::system()),
                None,
                NewUser {
                    username: username.clone(),
                    password: password.to_string(),
                    fields,
                },
            );
            match r {
                Ok(_) => created += 1,
                Err(source) => {
                    return Err(DemoError::Account {
                        app: app.clone(),
                        username,
                        source,
                    })
                }
            }
        }
    }
    Ok(created)
}
