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

pub use config::MucConfig;
pub use service::{MucService, Outbox};
