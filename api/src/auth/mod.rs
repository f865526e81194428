//! Users, sessions and roles (SPEC §6.1): password hashing, session tokens, who the caller
//! of a request is, and whether their role allows what they ask.
//!
//! Accounts are `_User` records in the ledger (their creation and every change are events;
//! the password never is); the password hash, sessions and failed-login counters live in
//! the credential store ([`store`]). Logins, failed logins, logouts and account locks are
//! ledger events.

pub mod permissions;
pub mod store;
pub mod users;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ledger::Actor;
use rand::RngCore;

use crate::config::PasswordCost;
use permissions::Role;

/// The caller of a request: a user with a live session in one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The app.
    pub app: String,
    /// The user's objectId.
    pub user_id: String,
    /// The username now.
    pub username: String,
    /// The role now (`None`: an account no role was granted to).
    pub role: Option<Role>,
    /// The session token used.
    pub token: String,
}

impl Caller {
    /// The caller as the actor of the events their request causes.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            role: self.role.map_or("none", Role::name).to_string(),
        }
    }
}

fn argon2(cost: PasswordCost) -> Argon2<'static> {
    // The parameters are within argon2's bounds by construction; fall back to defaults.
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with argon2id and a random salt (CPU-heavy: call off the runtime).
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2(cost)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a stored PHC string (parameters are read from it).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A new session token: `r:` and 128 random bits in hex (the Parse SDK only logs out
/// tokens that start with `r:`).
pub fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("r:{}", hex::encode(b))
}

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD: usize = 1024;

/// Checks a new password's length.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!(
            "password: must be at least {MIN_PASSWORD} characters, given {n}"
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("password: must be at most {MAX_PASSWORD} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let cost = PasswordCost::for_tests();
        let a = hash_password("correct horse", cost).unwrap_or_default();
        let b = hash_password("correct horse", cost).unwrap_or_default();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "random salts");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("correct horsf", &a));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_are_revocable_style_and_unique() {
        let t = new_token();
        assert!(t.starts_with("r:") && t.len() == 34);
        assert_ne!(t, new_token());
    }
}
