//! Signing keys: one ed25519 key per app, its id, where it is kept, and how it signs.
//!
//! A key is generated when its app is created (and at each rotation), kept by a
//! [`KeyStore`] — on disk as a 0600 file in a 0700 folder — and never logged: `Debug` on
//! [`AppKey`] shows only the key id. Which key is active is decided by the chain itself
//! (the genesis event and each `key.rotated` event name it), never by the key store.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::canonical::{key_id, signature_message};
use crate::event::{Hash32, KeyId};

/// A public key as published: its id and its 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// `key_id(bytes)`.
    pub key_id: KeyId,
    /// The ed25519 public key.
    pub bytes: [u8; 32],
}

impl PublicKey {
    /// The key from its 32 bytes, with its derived id.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PublicKey {
            key_id: key_id(&bytes),
            bytes,
        }
    }

    /// The dalek verifying key, if the bytes are a valid curve point.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.bytes).ok()
    }

    /// The key as lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.bytes)
    }
}

/// An app's private signing key. `Debug` never shows the secret.
pub struct AppKey {
    signing: SigningKey,
    public: PublicKey,
}

impl AppKey {
    /// The key from its 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let public = PublicKey::from_bytes(signing.verifying_key().to_bytes());
        AppKey { signing, public }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The key id.
    pub fn id(&self) -> KeyId {
        self.public.key_id
    }

    /// The signature over `SIGNATURE_DOMAIN ‖ hash`.
    pub fn sign_hash(&self, hash: &Hash32) -> [u8; 64] {
        self.signing.sign(&signature_message(hash)).to_bytes()
    }

    /// An Ed25519 signature over a signed-note body (a checkpoint, docs/FORMAT.md §8.3).
    /// Note bodies are text without NUL bytes, so they can never equal an event signature's
    /// message, whose domain prefix ends in a zero byte.
    pub(crate) fn sign_note(&self, body: &[u8]) -> [u8; 64] {
        self.signing.sign(body).to_bytes()
    }

    fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppKey({}, secret withheld)", self.public.key_id)
    }
}

/// Errors of a key store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// Reading or writing a key file failed.
    #[error("key store I/O at {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file does not hold a valid key.
    #[error("key file {path} is not a 32-byte ed25519 secret")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds a different key than its name says.
    #[error("key file {path} holds key {found}, not the key its name gives")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The id of the key found inside.
        found: KeyId,
    },
    /// The ledger was opened read-only and holds no keys.
    #[error("the ledger was opened read-only: it holds no signing key")]
    ReadOnly,
}

/// The key store of a read-only ledger: it holds no key and creates none.
#[derive(Debug, Default)]
pub(crate) struct NoKeys;

impl KeyStore for NoKeys {
    fn create(&self, _app: &str) -> Result<AppKey, KeyStoreError> {
        Err(KeyStoreError::ReadOnly)
    }
    fn load(&self, _app: &str, _id: KeyId) -> Result<Option<AppKey>, KeyStoreError> {
        Err(KeyStoreError::ReadOnly)
    }
    fn retire(&self, _app: &str, _id: KeyId) -> Result<(), KeyStoreError> {
        Err(KeyStoreError::ReadOnly)
    }
}

/// Where apps' private keys are kept.
pub trait KeyStore: Send + Sync + 'static {
    /// Generates, stores durably and returns a new key for `app`.
    fn create(&self, app: &str) -> Result<AppKey, KeyStoreError>;
    /// The key of `app` with id `id`, if the store holds it.
    fn load(&self, app: &str, id: KeyId) -> Result<Option<AppKey>, KeyStoreError>;
    /// Destroys a key that a durable rotation has replaced.
    fn retire(&self, app: &str, id: KeyId) -> Result<(), KeyStoreError>;
}

/// Keys as files: `<dir>/<app>/<key id>.ed25519`, 64 hex digits, mode 0600, folder 0700.
#[derive(Debug)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    /// A key store rooted at `dir` (created 0700 when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileKeyStore { dir: dir.into() }
    }

    fn path(&self, app: &str, id: KeyId) -> PathBuf {
        self.dir.join(app).join(format!("{id}.ed25519"))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(unix)]
fn private_dir(path: &Path) -> Result<(), KeyStoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err(path))
}

#[cfg(not(unix))]
fn private_dir(path: &Path) -> Result<(), KeyStoreError> {
    fs::create_dir_all(path).map_err(io_err(path))
}

fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), KeyStoreError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    Ok(())
}

impl KeyStore for FileKeyStore {
    fn create(&self, app: &str) -> Result<AppKey, KeyStoreError> {
        let app_dir = self.dir.join(app);
        private_dir(&self.dir)?;
        private_dir(&app_dir)?;
        // Make the folders' own entries durable too: a key whose folder vanishes in a
        // power loss would leave the app unable to sign.
        for d in [self.dir.parent(), Some(self.dir.as_path())]
            .into_iter()
            .flatten()
        {
            fs::File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(io_err(d))?;
        }
        let key = AppKey::generate();
        let path = self.path(app, key.id());
        let mut text = hex::encode(key.seed()).into_bytes();
        text.push(b'\n');
        write_private_file(&path, &text)?;
        Ok(key)
    }

    fn load(&self, app: &str, id: KeyId) -> Result<Option<AppKey>, KeyStoreError> {
        let path = self.path(app, id);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .map_err(|_| KeyStoreError::Corrupt { path: path.clone() })?;
        let key = AppKey::from_seed(&seed);
        if key.id() != id {
            return Err(KeyStoreError::Mismatch {
                path,
                found: key.id(),
            });
        }
        Ok(Some(key))
    }

    fn retire(&self, app: &str, id: KeyId) -> Result<(), KeyStoreError> {
        let path = self.path(app, id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

/// Keys in memory, derived deterministically from a seed: for tests and test vectors.
#[derive(Debug)]
pub struct MemoryKeyStore {
    seed: [u8; 32],
    keys: Mutex<Vec<(String, [u8; 32])>>,
    /// Keys ever created per app (retired ones included), so n never repeats.
    created: Mutex<std::collections::HashMap<String, u64>>,
}

impl MemoryKeyStore {
    /// A store whose n-th key for an app is blake3(seed ‖ app ‖ n).
    pub fn new(seed: [u8; 32]) -> Self {
        MemoryKeyStore {
            seed,
            keys: Mutex::new(Vec::new()),
            created: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, [u8; 32])>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyStore for MemoryKeyStore {
    fn create(&self, app: &str) -> Result<AppKey, KeyStoreError> {
        let mut keys = self.lock();
        let n = {
            let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
            let c = created.entry(app.to_string()).or_insert(0);
            *c += 1;
            *c - 1
        };
        let mut h = blake3::Hasher::new();
        h.update(&self.seed);
        h.update(app.as_bytes());
        h.update(&n.to_be_bytes());
        let seed = *h.finalize().as_bytes();
        keys.push((app.to_string(), seed));
        Ok(AppKey::from_seed(&seed))
    }

    fn load(&self, app: &str, id: KeyId) -> Result<Option<AppKey>, KeyStoreError> {
        Ok(self
            .lock()
            .iter()
            .filter(|(a, _)| a == app)
            .map(|(_, s)| AppKey::from_seed(s))
            .find(|k| k.id() == id))
    }

    fn retire(&self, app: &str, id: KeyId) -> Result<(), KeyStoreError> {
        self.lock()
            .retain(|(a, s)| !(a == app && AppKey::from_seed(s).id() == id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let k = AppKey::from_seed(&[7u8; 32]);
        let shown = format!("{k:?}");
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(shown.contains(&k.id().to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn file_keys_are_private_and_reload() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileKeyStore::new(dir.path().join("keys"));
        let k = store.create("gxp").expect("create");
        let path = store.path("gxp", k.id());
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.path().join("keys"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let again = store.load("gxp", k.id()).expect("load").expect("present");
        assert_eq!(again.public(), k.public());
        store.retire("gxp", k.id()).expect("retire");
        assert!(store.load("gxp", k.id()).expect("load").is_none());
    }
}
