//! XEP-0060: Publish-Subscribe — one IQ addressed to the service: who asks (RFC
//! 6120 §8.1.2.1 `from`, stamped by the server) and the node lookups the
//! use cases share.

use jid::{BareJid, Jid};
use roost_proto::{Condition, StanzaError};

use crate::affiliation::Affiliation;
use crate::errors::{no_such_node, store_error};
use crate::node::{Node, NodeRecord};
use crate::service::Shared;

pub(crate) struct Request<'a> {
    pub shared: &'a Shared,
    /// The requesting entity, as it sent the request.
    pub from: Jid,
    /// Its bare JID: affiliations are held by bare JIDs (§4.1).
    pub requester: BareJid,
}

impl Request<'_> {
    /// The node, or `item-not-found`.
    pub async fn node(&self, name: &str) -> Result<Node, StanzaError> {
        self.shared.load_node(name).await?.ok_or_else(no_such_node)
    }

    /// The node when the requester owns it: `item-not-found`, then
    /// `forbidden` (§8.2.3.2, §8.4.3.1, §8.5.3.2, §8.8.1.3, §8.9.1.3).
    pub async fn owned_node(&self, name: &str) -> Result<Node, StanzaError> {
        let node = self.node(name).await?;
        if node.affiliation_of(&self.requester) != Affiliation::Owner {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        Ok(node)
    }
}

impl Shared {
    /// A node with its affiliations, `None` when it does not exist.
    pub(crate) async fn load_node(&self, name: &str) -> Result<Option<Node>, StanzaError> {
        let Some(stored) = self
            .store
            .node(&self.jid, name)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let affiliations = self
            .store
            .node_affiliations(&self.jid, name)
            .await
            .map_err(store_error)?;
        Ok(Some(Node {
            record: NodeRecord::from_text(name, &stored.config),
            name: stored.name,
            affiliations,
        }))
    }
}
