//! XEP-0060 §6.5 retrieving items from a PEP node: all of them, the most
//! recent N (§6.5.7) or particular ones (§6.5.8), for whoever the node's
//! access model admits (§6.5.9; XEP-0163 §4.1 auto-subscription).

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::{Condition, Elem, StanzaError};
use roost_store::StoredItem;

use super::{may_read, node_attr, store_error, Request, NS_PUBSUB};
use crate::bookmarks;

/// Most item ids one request may name.
const MAX_IDS: usize = 256;

/// `<items node max_items?><item id/>*</items>`.
pub async fn items(req: &Request<'_>, verb: &Element) -> IqResult {
    let node = node_attr(verb, req.limits())?;
    if node == bookmarks::LEGACY_NODE {
        return bookmarks::legacy_node_items(req, verb).await;
    }
    let cfg = req
        .node(&node)
        .await?
        // §6.5.9.11
        .ok_or_else(|| StanzaError::new(Condition::ItemNotFound))?;
    may_read(&cfg, req.relation().await?)?;
    let ids: Vec<String> = verb
        .children()
        .filter(|c| c.is("item", NS_PUBSUB))
        .filter_map(|c| c.attr("id"))
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_IDS {
        return Err(StanzaError::new(Condition::PolicyViolation).with_text("too many item ids"));
    }
    let max = match verb.attr("max_items") {
        None => None,
        Some(m) => match m.trim().parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => return Err(StanzaError::bad_request("max_items is a number")),
        },
    };
    let store = &req.server.stores.pubsub;
    let stored = if ids.is_empty() {
        store.items(req.owner, &node, max).await
    } else {
        // §6.5.8; §6.5.9.12: ids that do not exist are simply absent.
        store.items_by_id(req.owner, &node, &ids).await
    }
    .map_err(store_error)?;
    Ok(Some(
        Element::bare("pubsub", NS_PUBSUB).child(items_element(&node, stored)),
    ))
}

/// `<items node>` with the stored items in publication order (the store
/// answers newest first).
fn items_element(node: &str, mut stored: Vec<StoredItem>) -> Element {
    stored.reverse();
    let mut items = Element::bare("items", NS_PUBSUB).attr_set("node", node);
    for item in stored {
        match item.xml.parse::<Element>() {
            Ok(payload) => items.append_child(
                Element::bare("item", NS_PUBSUB)
                    .attr_set("id", item.id)
                    .child(payload),
            ),
            Err(e) => {
                tracing::warn!(node, id = %item.id, error = %e, "unreadable pep item skipped");
                continue;
            }
        };
    }
    items
}
