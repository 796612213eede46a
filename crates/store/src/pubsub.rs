//! Publish-subscribe nodes and items (XEP-0060), as used by PEP (XEP-0163):
//! every node belongs to an owner (an account's bare JID) and is named
//! within it. Items keep their publication order; republishing an id
//! replaces the item and makes it the newest.
//!
//! The node configuration is opaque text to the store: the feature that
//! owns the nodes decides its format (PEP keeps an XEP-0004 form).
//!
//! Subscriptions (§4.2) and affiliations (§4.1) are rows of their own, used
//! by the XEP-0060 service on `pubsub.<domain>` (PEP derives both from the
//! owner's roster): a subscription is written without rewriting its node,
//! and removing an account removes its subscriptions and affiliations in
//! every node.

use async_trait::async_trait;
use jid::{BareJid, Jid};

use crate::Result;

/// A node of one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNode {
    pub name: String,
    /// The node configuration, in the format of the feature owning it.
    pub config: String,
}

/// One published item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The ItemID, unique within its node.
    pub id: String,
    /// Who published it (a full or bare JID).
    pub publisher: String,
    /// Milliseconds since the Unix epoch, when it was published.
    pub stamp_ms: i64,
    /// The payload as XML.
    pub xml: String,
}

/// One subscription to a node: one per subscriber JID (bare or full, as it
/// subscribed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    pub jid: Jid,
    /// The SubID given to the subscriber (§6.1.6).
    pub subid: String,
    /// `pending`, `unconfigured` or `subscribed` (§4.2); "none" is no row.
    pub state: String,
    /// The subscription options, in the format of the feature owning them.
    pub options: String,
}

/// One affiliation with a node other than "none" (§4.1), always of a bare
/// JID: `owner`, `publisher`, `publish-only`, `member` or `outcast`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNodeAffiliation {
    pub jid: BareJid,
    pub affiliation: String,
}

#[async_trait]
pub trait PubsubStore: Send + Sync {
    /// Create a node; `false` (and nothing changed) when it already exists.
    async fn create_node(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool>;
    async fn node(&self, owner: &BareJid, node: &str) -> Result<Option<StoredNode>>;
    /// Every node of an owner, sorted by name.
    async fn nodes(&self, owner: &BareJid) -> Result<Vec<StoredNode>>;
    /// Replace a node's configuration; `false` when there is no such node.
    async fn set_node_config(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool>;
    /// Delete a node and its items; `false` when there was no such node.
    async fn delete_node(&self, owner: &BareJid, node: &str) -> Result<bool>;
    /// Publish an item (replacing one with the same id, which then counts
    /// as the newest), then delete the oldest items beyond `max_items`.
    /// Returns the ids so deleted, or `None` when the node does not exist.
    async fn publish_item(
        &self,
        owner: &BareJid,
        node: &str,
        item: &StoredItem,
        max_items: usize,
    ) -> Result<Option<Vec<String>>>;
    /// Delete one item; `false` when there was no such item (or node).
    async fn retract_item(&self, owner: &BareJid, node: &str, id: &str) -> Result<bool>;
    /// Delete every item of a node but the newest `keep`; returns how many
    /// were deleted.
    async fn trim_items(&self, owner: &BareJid, node: &str, keep: usize) -> Result<u64>;
    /// Items newest first; at most `max` of them when given.
    async fn items(
        &self,
        owner: &BareJid,
        node: &str,
        max: Option<usize>,
    ) -> Result<Vec<StoredItem>>;
    /// The items with these ids that exist, newest first.
    async fn items_by_id(
        &self,
        owner: &BareJid,
        node: &str,
        ids: &[String],
    ) -> Result<Vec<StoredItem>>;
    /// Delete every node and item of an owner.
    async fn remove_pubsub(&self, owner: &BareJid) -> Result<()>;

    /// Insert or replace the subscription of `sub.jid`; `false` when there
    /// is no such node.
    async fn put_subscription(
        &self,
        owner: &BareJid,
        node: &str,
        sub: &StoredSubscription,
    ) -> Result<bool>;
    /// Delete the subscription of exactly this JID; `false` when absent.
    async fn remove_subscription(&self, owner: &BareJid, node: &str, jid: &Jid) -> Result<bool>;
    /// A node's subscriptions, sorted by JID.
    async fn subscriptions(&self, owner: &BareJid, node: &str) -> Result<Vec<StoredSubscription>>;
    /// The subscriptions of an account (its bare JID and its full JIDs) to
    /// every node of the owner, as (node, subscription), sorted by node then
    /// JID.
    async fn subscriptions_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, StoredSubscription)>>;
    /// Set an affiliation, or delete it with `None` ("none"); `false` when
    /// there is no such node.
    async fn set_node_affiliation(
        &self,
        owner: &BareJid,
        node: &str,
        jid: &BareJid,
        affiliation: Option<&str>,
    ) -> Result<bool>;
    /// A node's affiliations, sorted by JID.
    async fn node_affiliations(
        &self,
        owner: &BareJid,
        node: &str,
    ) -> Result<Vec<StoredNodeAffiliation>>;
    /// The affiliations of an account with every node of the owner, as
    /// (node, affiliation), sorted by node.
    async fn affiliations_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, String)>>;
}
