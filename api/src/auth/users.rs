//! Who each signed-in user is, remembered between requests: a user's username and role as
//! their `_User` record gives them, kept until any user record of the app changes.
//!
//! Finding out afresh costs every request a scan of the user's versions in the ledger's
//! index and a read of their record in the projections. The ledger tells, in one atomic
//! read, whether any of an app's user records changed since a reading
//! ([`ledger::Ledger::users_changed`]): a remembered user counts only while that reading
//! is unchanged. The reading is taken before the user is read, so a change that lands
//! while they are read makes the next request read them again.

use std::collections::HashMap;
use std::sync::RwLock;

use ledger::Actor;

/// Users remembered at most, over all apps; past this the memory starts empty again.
const MAX_USERS: usize = 10_000;

/// The users remembered, by app and objectId, each with the ledger's reading it holds for.
#[derive(Default)]
pub struct Users {
    known: RwLock<Known>,
}

/// App → objectId → (reading, the user as read).
type Known = HashMap<String, HashMap<String, (u64, Actor)>>;

impl Users {
    /// The user as remembered, if the app's users have not changed since: `changed` is
    /// the ledger's reading now.
    pub fn get(&self, app: &str, user_id: &str, changed: u64) -> Option<Actor> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        match known.get(app)?.get(user_id) {
            Some((at, actor)) if *at == changed => Some(actor.clone()),
            _ => None,
        }
    }

    /// Remembers what a user was read as, after the ledger's reading `changed`.
    pub fn put(&self, app: &str, user_id: &str, changed: u64, actor: &Actor) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.values().map(HashMap::len).sum::<usize>() >= MAX_USERS {
            known.clear();
        }
        known
            .entry(app.to_string())
            .or_default()
            .insert(user_id.to_string(), (changed, actor.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: &str) -> Actor {
        Actor {
            user_id: "u1".into(),
            username: "ana".into(),
            role: role.into(),
        }
    }

    #[test]
    fn a_user_counts_only_while_the_reading_is_unchanged() {
        let users = Users::default();
        assert_eq!(users.get("gxp", "u1", 7), None);
        users.put("gxp", "u1", 7, &actor("manager"));
        assert_eq!(users.get("gxp", "u1", 7), Some(actor("manager")));
        assert_eq!(
            users.get("gxp", "u1", 9),
            None,
            "a user record changed since"
        );
        assert_eq!(users.get("hipaa", "u1", 7), None, "another app's user");
        users.put("gxp", "u1", 9, &actor("viewer"));
        assert_eq!(users.get("gxp", "u1", 9), Some(actor("viewer")));
    }

    #[test]
    fn past_the_bound_it_starts_empty() {
        let users = Users::default();
        for i in 0..MAX_USERS {
            users.put("gxp", &format!("u{i}"), 1, &actor("manager"));
        }
        assert!(users.get("gxp", "u0", 1).is_some());
        users.put("gxp", "late", 1, &actor("manager"));
        assert!(users.get("gxp", "u0", 1).is_none());
        assert!(users.get("gxp", "late", 1).is_some());
    }
}
