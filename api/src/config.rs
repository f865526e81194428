//! What the server can be told: where it listens, its request limits, and each app's
//! account policy (session lifetime, inactivity timeout, lock after failed logins,
//! sign-up). Defaults suit a regulated deployment; an optional JSON file overrides them
//! per app (see docs/API.md, "Configuration").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// An app's account and session policy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppPolicy {
    /// A session ends this long after login, whatever happens (seconds).
    pub session_ttl_secs: u64,
    /// A session ends after this long without a request (seconds).
    pub idle_timeout_secs: u64,
    /// Consecutive failed logins that lock an account.
    pub max_failed_logins: u32,
    /// How long a lock lasts (seconds); an admin may lift it sooner.
    pub lock_secs: u64,
    /// Whether `POST /users` (sign-up) is open. Signed-up accounts have no role until an
    /// admin grants one, so they can read nothing but themselves.
    pub allow_signup: bool,
    /// Classes whose updates and deletes need a reason for change (`X-Audit-Reason` or
    /// `_Reason`); `["*"]` for every class. `None` (the default): every class of the
    /// `gxp` app (GxP record-keeping asks why data changed), none elsewhere.
    pub require_reason: Option<Vec<String>>,
}

impl AppPolicy {
    /// Whether changing or deleting a record of `class` in `app` needs a reason.
    pub fn reason_required(&self, app: &str, class: &str) -> bool {
        match &self.require_reason {
            Some(classes) => classes.iter().any(|c| c == "*" || c == class),
            None => app == "gxp" && !class.starts_with('_'),
        }
    }
}

impl Default for AppPolicy {
    fn default() -> Self {
        AppPolicy {
            session_ttl_secs: 12 * 3600,
            idle_timeout_secs: 30 * 60,
            max_failed_logins: 5,
            lock_secs: 30 * 60,
            allow_signup: true,
            require_reason: None,
        }
    }
}

/// The cost of argon2id password hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
}

impl Default for PasswordCost {
    /// OWASP's argon2id minimum: 19 MiB, 2 iterations.
    fn default() -> Self {
        PasswordCost {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

impl PasswordCost {
    /// A cheap cost for tests only (never for stored production passwords).
    pub fn for_tests() -> Self {
        PasswordCost {
            memory_kib: 64,
            iterations: 1,
        }
    }
}

/// The server's configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The data directory (`store/`, `keys/`, `projections/`, `auth/`).
    pub data_dir: PathBuf,
    /// Where to listen.
    pub bind: SocketAddr,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a request body or `where`.
    pub max_json_depth: usize,
    /// Most sub-requests in one `POST /batch`.
    pub max_batch: usize,
    /// Policy for apps not named in `policies`.
    pub default_policy: AppPolicy,
    /// Per-app policies.
    pub policies: HashMap<String, AppPolicy>,
    /// Password hashing cost.
    pub password_cost: PasswordCost,
    /// How often every app that grew gets a signed checkpoint (`None`: on demand only).
    pub checkpoint_interval: Option<std::time::Duration>,
    /// Room kept free on the data directory's file system: below it writes are refused
    /// (503) until space returns ([`ledger::LedgerConfig::min_free_bytes`]; 0: no check).
    pub min_free_bytes: u64,
}

impl ServerConfig {
    /// Defaults, for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_batch: 100,
            default_policy: AppPolicy::default(),
            policies: HashMap::new(),
            password_cost: PasswordCost::default(),
            checkpoint_interval: Some(std::time::Duration::from_secs(300)),
            min_free_bytes: ledger::DEFAULT_MIN_FREE_BYTES,
        }
    }

    /// The policy of `app`.
    pub fn policy(&self, app: &str) -> &AppPolicy {
        self.policies.get(app).unwrap_or(&self.default_policy)
    }

    /// Reads per-app policies from a JSON file:
    /// `{"default": {…AppPolicy…}, "apps": {"hipaa": {"idle_timeout_secs": 600}}}`.
    pub fn load_policies(&mut self, path: &Path) -> Result<(), ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            default: Option<AppPolicy>,
            #[serde(default)]
            apps: HashMap<String, AppPolicy>,
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        let file: File = serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            source: e,
        })?;
        if let Some(d) = file.default {
            self.default_policy = d;
        }
        self.policies.extend(file.apps);
        Ok(())
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the expected JSON.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}
