//! Publish-subscribe nodes and items (XEP-0060), as used by PEP (XEP-0163):
//! every node belongs to an owner (an account's bare JID) and is named
//! within it. Items keep their publication order; republishing an id
//! replaces the item and makes it the newest.
//!
//! The node configuration is opaque text to the store: the feature that
//! owns the nodes decides its format (PEP keeps an XEP-0004 form).

use async_trait::async_trait;
use jid::BareJid;

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
}
