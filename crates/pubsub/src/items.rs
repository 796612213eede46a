//! XEP-0060: Publish-Subscribe — §6.5: retrieve items, all of them, the newest `max_items`, or
//! some by id, in publication order. Nodes configured without payloads
//! return the ids only (§6.5.6); missing items give an empty list
//! (§6.5.9.11).

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::{Condition, Elem, StanzaError};

use crate::access::{self, Purpose};
use crate::errors::{nodeid_required, pubsub_error, store_error};
use crate::ns;
use crate::request::Request;
use crate::subscription::of_account;

pub(crate) async fn retrieve(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let node = req.node(name).await?;
    let shared = req.shared;
    access::check(shared, &node, &req.requester, Purpose::Retrieve).await?;
    // §6.5.9.2
    if let Some(subid) = verb.attr("subid") {
        let known = of_account(shared, name, &req.requester)
            .await?
            .iter()
            .any(|s| s.subid == subid);
        if !known {
            return Err(pubsub_error(Condition::NotAcceptable, "invalid-subid"));
        }
    }
    let max = match verb.attr("max_items") {
        None => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| StanzaError::bad_request("max_items is not a number"))?,
        ),
    };
    let ids: Vec<String> = verb
        .children()
        .filter(|c| c.is("item", ns::PUBSUB))
        .filter_map(|c| c.attr("id").map(str::to_owned))
        .collect();
    let mut stored = if ids.is_empty() {
        shared.store.items(&shared.jid, name, max).await
    } else {
        shared.store.items_by_id(&shared.jid, name, &ids).await
    }
    .map_err(store_error)?;
    // The store answers newest first.
    stored.reverse();
    let with_payloads = node.config().deliver_payloads;
    let items = Element::bare("items", ns::PUBSUB)
        .attr_set("node", name)
        .children_from(stored.into_iter().map(|item| {
        let mut el = Element::bare("item", ns::PUBSUB).attr_set("id", item.id.as_str());
        if with_payloads {
            match item.xml.parse::<Element>() {
                Ok(payload) => el = el.child(payload),
                Err(_) if item.xml.is_empty() => {}
                Err(e) => {
                    tracing::warn!(node = name, id = %item.id, error = %e, "unreadable pubsub item")
                }
            }
        }
        el
    }));
    Ok(Some(Element::bare("pubsub", ns::PUBSUB).child(items)))
}
