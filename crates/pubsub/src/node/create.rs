//! XEP-0060: Publish-Subscribe — §8.1: create a node, with the default configuration (§8.1.1),
//! with a configure form (§8.1.3), or as an instant node whose NodeID the
//! service chooses (§8.1.2). Who may create is `[pubsub] creators`; the
//! creator becomes the node's owner.

use jid::BareJid;
use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::data_form::Form;
use roost_proto::{Condition, Elem, StanzaError};

use crate::affiliation::Affiliation;
use crate::config::Creators;
use crate::errors::store_error;
use crate::node::config_form::NodeConfig;
use crate::node::{Node, NodeRecord};
use crate::ns;
use crate::request::Request;
use crate::service::Shared;

/// NodeIDs are opaque (§4.2) but bounded.
const MAX_NODE_ID: usize = 1024;

/// `Ok` when `who` may create nodes (§8.1.3.3: `forbidden` otherwise).
pub(crate) fn may_create(shared: &Shared, who: &BareJid) -> Result<(), StanzaError> {
    let allowed = match shared.config.creators {
        Creators::Anyone => true,
        Creators::Local => who.node().is_some() && who.domain().as_str() == shared.host,
        Creators::Admins => shared.admins.contains(who),
    };
    if allowed {
        Ok(())
    } else {
        Err(StanzaError::new(Condition::Forbidden).with_text("you may not create nodes here"))
    }
}

/// Store a new node owned by the requester; `conflict` when the NodeID is
/// taken (§8.1.3.4).
pub(crate) async fn create_node(
    req: &Request<'_>,
    name: &str,
    config: NodeConfig,
) -> Result<Node, StanzaError> {
    let shared = req.shared;
    if shared.config.max_nodes_per_user > 0 {
        let owned = shared
            .store
            .affiliations_of(&shared.jid, &req.requester)
            .await
            .map_err(store_error)?
            .iter()
            .filter(|(_, a)| a == Affiliation::Owner.as_str())
            .count();
        if owned >= shared.config.max_nodes_per_user {
            roost_core::limits::hit(roost_core::limits::Limit::Pubsub);
            return Err(StanzaError::new(Condition::PolicyViolation)
                .with_text("you own as many nodes as allowed"));
        }
    }
    let record = NodeRecord {
        creator: req.requester.to_string(),
        created_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
        config,
    };
    let created = shared
        .store
        .create_node(&shared.jid, name, &record.to_text())
        .await
        .map_err(store_error)?;
    if !created {
        return Err(StanzaError::new(Condition::Conflict));
    }
    shared
        .store
        .set_node_affiliation(
            &shared.jid,
            name,
            &req.requester,
            Some(Affiliation::Owner.as_str()),
        )
        .await
        .map_err(store_error)?;
    tracing::debug!(node = name, owner = %req.requester, "pubsub node created");
    Ok(Node {
        name: name.to_string(),
        record,
        affiliations: vec![roost_store::StoredNodeAffiliation {
            jid: req.requester.clone(),
            affiliation: Affiliation::Owner.as_str().into(),
        }],
    })
}

/// §8.1: `<create node?/>` with an optional `<configure/>` sibling.
pub(crate) async fn create(req: &Request<'_>, pubsub: &Element, verb: &Element) -> IqResult {
    let shared = req.shared;
    may_create(shared, &req.requester)?;
    let requested = verb.attr("node").filter(|n| !n.is_empty());
    if requested.is_some_and(|n| n.len() > MAX_NODE_ID) {
        return Err(StanzaError::new(Condition::NotAcceptable).with_text("NodeID too long"));
    }
    let mut config = NodeConfig::defaults(&shared.limits);
    // §8.1.3: create and configure.
    if let Some(form) = pubsub
        .get_child("configure", ns::PUBSUB)
        .and_then(Form::inside)
    {
        config
            .apply(&form, ns::FORM_NODE_CONFIG, &shared.limits)
            .map_err(|e| StanzaError::new(Condition::NotAcceptable).with_text(e.to_string()))?;
    }
    match requested {
        Some(name) => {
            create_node(req, name, config).await?;
            Ok(None)
        }
        // §8.1.2: instant node; the result names it.
        None => {
            let name = roost_proto::id::random_token(24);
            create_node(req, &name, config).await?;
            Ok(Some(Element::bare("pubsub", ns::PUBSUB).child(
                Element::bare("create", ns::PUBSUB).attr_set("node", name),
            )))
        }
    }
}
