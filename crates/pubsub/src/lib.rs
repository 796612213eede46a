//! XEP-0060: Publish-Subscribe — the server's generic pubsub service on
//! `pubsub.<domain>`, beside the account-based PEP of `roost-features`.
//!
//! Path of a stanza: the router hands whatever is addressed to the
//! service's domain to `service.rs`, whose single task answers it in order:
//! node life cycle in `node/` (create, configure, delete, purge), entity
//! use cases in `subscribe.rs`, `options.rs`, `items.rs`, `publish.rs`,
//! `retract.rs`, owner management in `subscription.rs`, `affiliation.rs`
//! and `authorize.rs`, permissions in `access.rs`, and everything
//! subscribers hear in `notify.rs`. Nodes and items live in the store under
//! the service's JID as owner; subscriptions and affiliations are rows of
//! their own.

mod access;
mod affiliation;
mod authorize;
mod config;
mod disco;
mod errors;
mod items;
mod node;
mod notify;
mod ns;
mod options;
mod publish;
mod request;
mod retract;
mod service;
mod subscribe;
mod subscription;

pub use config::{Creators, PubsubConfig};
pub use service::PubsubService;

/// The specification this crate implements, for `docs/xeps.md`.
pub const PROTOCOL: roost_core::module::Protocol =
    roost_core::module::Protocol::new("XEP-0060: Publish-Subscribe", "1.30.0");
