//! The `[muc]` configuration section: the XEP-0045 service's domain, its
//! limits and who may create rooms (XEP-0045 §10.1.1).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MucConfig {
    /// Run the service at all.
    pub enabled: bool,
    /// The service's domain; default `conference.<domain>`.
    pub domain: Option<String>,
    /// The service's name in service discovery.
    pub name: String,
    /// Rooms that may exist at once (persistent and temporary).
    pub max_rooms: usize,
    /// Occupants per room at most; also the default of a new room.
    pub max_occupants: usize,
    /// Rooms one user (real bare JID) may be an occupant of at once; 0
    /// for no limit.
    pub max_rooms_per_user: usize,
    /// Messages of history sent on join when the client asks for no limit;
    /// also the most a room may be configured to send.
    pub max_history: usize,
    /// Largest message or presence an occupant may send, in bytes.
    pub max_message_size: usize,
    /// When true, only `room_creators` may create rooms; otherwise every
    /// local account may.
    pub restrict_room_creation: bool,
    /// Bare JIDs allowed to create rooms when creation is restricted.
    pub room_creators: Vec<String>,
    /// Seconds an empty persistent room stays loaded before its task stops.
    pub idle_room_seconds: u64,
    /// XEP-0045 §10.1.2: a new room is locked until its owner configures
    /// it (status 201). `false` creates instant rooms (§10.1.3) at once.
    pub lock_new_rooms: bool,
    /// Seconds a locked, unconfigured room lives before it is destroyed,
    /// so an owner whose client never configured it does not leave it
    /// unreachable for everyone else forever.
    pub lock_timeout: u64,
}

impl Default for MucConfig {
    fn default() -> Self {
        MucConfig {
            enabled: true,
            domain: None,
            name: "Chatrooms".into(),
            max_rooms: 10_000,
            max_occupants: 200,
            max_rooms_per_user: 100,
            max_history: 50,
            max_message_size: 16_384,
            restrict_room_creation: false,
            room_creators: Vec::new(),
            idle_room_seconds: 300,
            lock_new_rooms: true,
            lock_timeout: 300,
        }
    }
}

impl MucConfig {
    /// The domain the service answers on, for a server serving `host`.
    pub fn service_domain(&self, host: &str) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| format!("conference.{host}"))
    }

    /// Check the values; the error names the key (under `muc.`).
    pub fn validate(&self, host: &str) -> Result<(), (&'static str, String)> {
        let domain = self.service_domain(host);
        let valid = jid::BareJid::new(&domain)
            .ok()
            .is_some_and(|j| j.node().is_none() && j.as_str() == domain);
        if !valid {
            return Err(("muc.domain", format!("{domain:?} is not a valid domain")));
        }
        if domain == host {
            return Err((
                "muc.domain",
                "must differ from the server's own domain".into(),
            ));
        }
        for (key, ok) in [
            ("muc.max_rooms", self.max_rooms >= 1),
            ("muc.max_occupants", self.max_occupants >= 1),
            ("muc.max_message_size", self.max_message_size >= 256),
            ("muc.idle_room_seconds", self.idle_room_seconds >= 1),
            ("muc.lock_timeout", self.lock_timeout >= 1),
        ] {
            if !ok {
                return Err((key, "value too small".into()));
            }
        }
        for c in &self.room_creators {
            if jid::BareJid::new(c).is_err() {
                return Err(("muc.room_creators", format!("{c:?} is not a bare JID")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_defaults_to_conference_subdomain() {
        let c = MucConfig::default();
        assert_eq!(c.service_domain("example.org"), "conference.example.org");
        assert!(c.validate("example.org").is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = MucConfig {
            domain: Some("a@b".into()),
            ..MucConfig::default()
        };
        assert_eq!(c.validate("example.org").unwrap_err().0, "muc.domain");
        let c = MucConfig {
            domain: Some("example.org".into()),
            ..MucConfig::default()
        };
        assert_eq!(c.validate("example.org").unwrap_err().0, "muc.domain");
        let c = MucConfig {
            max_occupants: 0,
            ..MucConfig::default()
        };
        assert_eq!(
            c.validate("example.org").unwrap_err().0,
            "muc.max_occupants"
        );
    }
}
