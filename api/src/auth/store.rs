//! The credential store: what must never enter the ledger. Password hashes (argon2id,
//! PHC strings), the username → objectId index of accounts that have a password, session
//! tokens (kept only as their blake3 digest, so a copy of the store yields no live token)
//! and failed-login counters. A sled database in `<data-dir>/auth`, separate from the log.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthStoreError {
    /// sled failed.
    #[error("credential store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored entry cannot be decoded.
    #[error("credential store entry {key} is corrupt: {detail}")]
    Corrupt {
        /// Which entry.
        key: String,
        /// Why.
        detail: String,
    },
}

type Result<T> = std::result::Result<T, AuthStoreError>;

/// A password credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The username it was set for.
    pub username: String,
    /// The argon2id PHC string.
    pub phc: String,
}

/// A session, keyed by the digest of its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The app.
    pub app: String,
    /// The user's objectId.
    pub user_id: String,
    /// When it was created (µs since the epoch).
    pub created_us: i64,
    /// When it ends whatever happens (µs).
    pub expires_us: i64,
    /// The last request seen (µs; written at most once a minute).
    pub last_seen_us: i64,
}

/// Failed logins of one account since its last success.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// Consecutive failures.
    pub count: u32,
    /// Locked until (µs), if locked.
    pub locked_until_us: Option<i64>,
}

/// The credential store.
pub struct AuthStore {
    db: sled::Db,
    creds: sled::Tree,
    names: sled::Tree,
    sessions: sled::Tree,
    signers: sled::Tree,
    failures: sled::Tree,
    meta: sled::Tree,
}

fn key(app: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(app.len() + 1 + id.len());
    k.extend_from_slice(app.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| AuthStoreError::Corrupt {
        key: what.to_string(),
        detail: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain structs of strings and integers always serialise.
    postcard::to_allocvec(v).unwrap_or_default()
}

/// The digest under which a session token is stored.
pub fn token_digest(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl AuthStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::from_db(sled::Config::new().path(dir).open()?)
    }

    /// A store in memory, for tests.
    pub fn temporary() -> Result<Self> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self> {
        Ok(AuthStore {
            creds: db.open_tree("cred")?,
            names: db.open_tree("name")?,
            sessions: db.open_tree("session")?,
            signers: db.open_tree("signer")?,
            failures: db.open_tree("fail")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// The objectId of the account with a password named `username` in `app`.
    pub fn user_by_name(&self, app: &str, username: &str) -> Result<Option<String>> {
        Ok(self
            .names
            .get(key(app, username))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The password credential of a user.
    pub fn credential(&self, app: &str, user_id: &str) -> Result<Option<Credential>> {
        self.creds
            .get(key(app, user_id))?
            .map(|v| decode("credential", &v))
            .transpose()
    }

    /// Sets a user's password (and its username index entry), durably.
    pub fn set_credential(&self, app: &str, user_id: &str, cred: &Credential) -> Result<()> {
        if let Some(old) = self.credential(app, user_id)? {
            if old.username != cred.username {
                self.names.remove(key(app, &old.username))?;
            }
        }
        self.creds.insert(key(app, user_id), encode(cred))?;
        self.names
            .insert(key(app, &cred.username), user_id.as_bytes())?;
        self.flush()
    }

    /// Removes a user's password (the account can no longer log in).
    pub fn remove_credential(&self, app: &str, user_id: &str) -> Result<()> {
        if let Some(old) = self.credential(app, user_id)? {
            self.names.remove(key(app, &old.username))?;
        }
        self.creds.remove(key(app, user_id))?;
        self.flush()
    }

    /// The session a token opens, if stored.
    pub fn session(&self, token: &str) -> Result<Option<Session>> {
        self.sessions
            .get(token_digest(token))?
            .map(|v| decode("session", &v))
            .transpose()
    }

    /// Stores a session under a token, durably.
    pub fn put_session(&self, token: &str, s: &Session) -> Result<()> {
        self.sessions.insert(token_digest(token), encode(s))?;
        self.flush()
    }

    /// Updates a session's last-seen time (not flushed: losing it only ends a session early).
    pub fn touch_session(&self, token: &str, s: &Session) -> Result<()> {
        self.sessions.insert(token_digest(token), encode(s))?;
        Ok(())
    }

    /// Ends a session.
    pub fn remove_session(&self, token: &str) -> Result<()> {
        self.sessions.remove(token_digest(token))?;
        self.signers.remove(token_digest(token))?;
        self.flush()
    }

    /// Whether the session's user has signed in it (so later signatures in the same
    /// session need only the password; 21 CFR 11.200(a)(1)(i)).
    pub fn has_signed(&self, token: &str) -> Result<bool> {
        Ok(self.signers.contains_key(token_digest(token))?)
    }

    /// Records that the session's user signed in it (not flushed: losing it only asks
    /// for the username again).
    pub fn mark_signed(&self, token: &str) -> Result<()> {
        self.signers.insert(token_digest(token), &[1u8])?;
        Ok(())
    }

    /// Ends every session of a user (password change, deactivation).
    pub fn remove_sessions_of(&self, app: &str, user_id: &str) -> Result<usize> {
        let mut n = 0;
        for kv in self.sessions.iter() {
            let (k, v) = kv?;
            let s: Session = decode("session", &v)?;
            if s.app == app && s.user_id == user_id {
                self.signers.remove(&k)?;
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        self.flush()?;
        Ok(n)
    }

    /// The failed-login state of a user.
    pub fn failures(&self, app: &str, user_id: &str) -> Result<Failures> {
        Ok(self
            .failures
            .get(key(app, user_id))?
            .map(|v| decode("failures", &v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Stores the failed-login state of a user, durably (a lock must survive a restart).
    pub fn set_failures(&self, app: &str, user_id: &str, f: &Failures) -> Result<()> {
        if *f == Failures::default() {
            self.failures.remove(key(app, user_id))?;
        } else {
            self.failures.insert(key(app, user_id), encode(f))?;
        }
        self.flush()
    }

    /// A flag in the store's meta tree.
    pub fn flag(&self, name: &str) -> Result<bool> {
        Ok(self.meta.get(name)?.is_some())
    }

    /// Sets a flag, durably.
    pub fn set_flag(&self, name: &str) -> Result<()> {
        self.meta.insert(name, &[1u8])?;
        self.flush()
    }
}
