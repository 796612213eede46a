//! The Roost kernel: listeners, c2s streams, the router and the per-account
//! tasks. It knows no optional feature; those register as modules. Web
//! clients arrive through `http` (RFC 7395 WebSocket) into the same c2s code.
//!
//! Path of a stanza: `listener` accepts -> `c2s::negotiation` (TLS, SASL,
//! bind) -> `c2s::session` reads it -> local IQs go to `module` handlers,
//! everything else to `router` -> `account` task of the addressee (or a
//! service) -> the addressee's session -> socket. Stanzas for other
//! domains leave through `s2s` (outgoing streams); other servers' stanzas
//! arrive through `s2s` (incoming streams) into the same `router`.

pub mod account;
pub mod c2s;
pub mod caps;
pub mod cluster;
pub mod component;
pub mod config;
pub mod counters;
pub mod http;
pub mod limits;
pub mod listener;
pub mod mailbox;
pub mod mam_query;
pub mod metrics;
pub mod module;
pub mod proxy65;
pub mod router;
pub mod s2s;
pub mod server;
pub mod server_iq;
pub mod tls;
pub mod upload;

pub use module::{IqContext, IqRoute, Module, Protocol, Scope};
pub use server::Server;
