//! XEP-0045: Multi-User Chat, the server's built-in room service.
//!
//! Path of a stanza: the router hands whatever is addressed to the service's
//! domain to `service.rs`, which answers the service itself (disco) or
//! passes the stanza to the task of the addressed room (`room/`), started on
//! demand and stopped when empty and idle. A room task owns its occupants,
//! affiliations, configuration and history; everything it sends leaves
//! through an [`Outbox`] (the server's router in production), so that the
//! account layer can see and fork room traffic. An occupant's real JID is
//! kept exactly as it joined, full or bare.

mod config;
mod disco;
mod forms;
mod ns;
mod room;
mod service;
mod user_rooms;

pub use config::MucConfig;
pub use service::{MucService, Outbox};

/// Fuzzing entry (crates/fuzz-targets, `room_config`): a submitted
/// XEP-0045 §10.2 configuration form applied to a new room, then stored
/// and read back as a room's settings are; what was accepted must stay
/// within the service's limits and survive storage unchanged.
#[doc(hidden)]
pub fn fuzz_room_config(form: &minidom::Element) {
    use room::config_form::{apply_form, RoomConfig, Settings};
    let service = MucConfig::default();
    let current = RoomConfig::new(&service);
    let parsed = forms::Form::parse(form);
    if let Ok(c) = apply_form(&current, &service, &parsed) {
        assert!(c.max_users >= 1 && c.max_users <= service.max_occupants);
        assert!(c.history_length <= service.max_history);
        assert!(c.password.as_ref().is_none_or(|p| !p.is_empty()));
        let stored = Settings {
            config: c.clone(),
            ..Settings::default()
        };
        let again = Settings::parse(&stored.to_text());
        assert_eq!(again.config, c, "room settings survive storage");
    }
}
