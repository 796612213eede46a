//! Rooms per user (`[muc] max_rooms_per_user`, README "Limits"; ejabberd's
//! `max_user_conferences`): how many rooms of this service each real bare
//! JID is an occupant of, so that one account cannot join thousands of
//! rooms and have each of them send it presence. With account-based
//! joining the account is one occupant per room whatever its sessions.
//!
//! Counted by each room's occupant list (`room/occupant.rs`), which
//! reports every occupant it gains and loses, however it loses it.

use std::collections::HashMap;
use std::sync::Mutex;

use jid::BareJid;

pub(crate) struct UserRooms {
    max: usize,
    counts: Mutex<HashMap<BareJid, u32>>,
}

impl UserRooms {
    /// `max` 0: no limit (the counts are still kept).
    pub fn new(max: usize) -> UserRooms {
        UserRooms {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BareJid, u32>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user` may become an occupant of one more room.
    pub fn allows(&self, user: &BareJid) -> bool {
        self.max == 0 || (self.count(user) as usize) < self.max
    }

    pub fn count(&self, user: &BareJid) -> u32 {
        self.lock().get(user).copied().unwrap_or(0)
    }

    pub fn entered(&self, user: &BareJid) {
        *self.lock().entry(user.clone()).or_insert(0) += 1;
    }

    pub fn left(&self, user: &BareJid) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_up_and_down_and_the_limit_applies() {
        let r = UserRooms::new(2);
        let a: BareJid = "a@example.org".parse().unwrap();
        assert!(r.allows(&a));
        r.entered(&a);
        r.entered(&a);
        assert!(!r.allows(&a));
        r.left(&a);
        assert!(r.allows(&a));
        r.left(&a);
        r.left(&a);
        assert_eq!(r.count(&a), 0);
        assert!(UserRooms::new(0).allows(&a));
    }
}
