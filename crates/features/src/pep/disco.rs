//! XEP-0060 §5.2–5.5 discovery of an account's PEP nodes: the nodes as
//! disco#items of the account, a node's identity, and a node's items by
//! id. XEP-0163 §6.2: only nodes the requester may read are shown.

use jid::{BareJid, Jid};
use minidom::Element;
use roost_core::Server;
use roost_proto::{ns, Condition, Elem, StanzaError};

use super::{config_of, load_node, may_read, relation_of, store_error, PepService, Relation};

async fn relation(
    server: &Server,
    owner: &BareJid,
    from: Option<&Jid>,
    own: bool,
) -> Result<Relation, StanzaError> {
    match from {
        _ if own => Ok(Relation::Owner),
        Some(f) => relation_of(server, owner, &f.to_bare()).await,
        None => Ok(Relation::Stranger),
    }
}

/// §5.2: `<item jid='owner' node='N' name='title'/>` per readable node.
pub async fn node_items(
    server: &Server,
    service: &PepService,
    owner: &BareJid,
    from: Option<&Jid>,
    own: bool,
) -> Result<Vec<Element>, StanzaError> {
    let rel = relation(server, owner, from, own).await?;
    let nodes = server
        .stores
        .pubsub
        .nodes(owner)
        .await
        .map_err(store_error)?;
    Ok(nodes
        .iter()
        .filter_map(|n| {
            let cfg = config_of(n, service.limits());
            may_read(&cfg, rel).ok()?;
            Some(
                Element::bare("item", ns::DISCO_ITEMS)
                    .attr_set("jid", owner.as_str())
                    .attr_set("node", n.name.as_str())
                    .attr_opt("name", cfg.title),
            )
        })
        .collect())
}

/// §5.5: `<item jid='owner' name='ItemID'/>` per item of a readable node.
pub async fn item_ids(
    server: &Server,
    service: &PepService,
    owner: &BareJid,
    from: Option<&Jid>,
    own: bool,
    node: &str,
) -> Result<Vec<Element>, StanzaError> {
    let cfg = load_node(server, service, owner, node)
        .await?
        .ok_or_else(|| StanzaError::new(Condition::ItemNotFound))?;
    may_read(&cfg, relation(server, owner, from, own).await?)?;
    let mut items = server
        .stores
        .pubsub
        .items(owner, node, None)
        .await
        .map_err(store_error)?;
    items.reverse();
    Ok(items
        .into_iter()
        .map(|i| {
            Element::bare("item", ns::DISCO_ITEMS)
                .attr_set("jid", owner.as_str())
                .attr_set("name", i.id)
        })
        .collect())
}

/// §5.3: a node's identity (a leaf node) and the pubsub feature.
pub async fn node_info(
    server: &Server,
    service: &PepService,
    owner: &BareJid,
    from: Option<&Jid>,
    own: bool,
    node: &str,
) -> Result<Vec<Element>, StanzaError> {
    let cfg = load_node(server, service, owner, node)
        .await?
        .ok_or_else(|| StanzaError::new(Condition::ItemNotFound))?;
    may_read(&cfg, relation(server, owner, from, own).await?)?;
    Ok(vec![
        Element::bare("identity", ns::DISCO_INFO)
            .attr_set("category", "pubsub")
            .attr_set("type", "leaf")
            .attr_opt("name", cfg.title),
        Element::bare("feature", ns::DISCO_INFO).attr_set("var", super::NS_PUBSUB),
    ])
}
