//! XEP-0060: Publish-Subscribe — §7.2: delete an item from a node. Owners and publishers may
//! retract any item, anyone else only the items they published.
//! Subscribers hear of it when the node says `notify_retract` or the
//! request says `notify='true'`.

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::{Condition, StanzaError};

use crate::affiliation::Affiliation;
use crate::errors::{nodeid_required, pubsub_error, store_error, unsupported};
use crate::request::Request;
use crate::{notify, ns};

pub(crate) async fn retract(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    // §7.2.3.4
    let id = verb
        .get_child("item", ns::PUBSUB)
        .and_then(|i| i.attr("id"))
        .ok_or_else(|| pubsub_error(Condition::BadRequest, "item-required"))?;
    let node = req.node(name).await?;
    // §7.2.3.5
    if !node.config().persist_items {
        return Err(unsupported("persistent-items"));
    }
    let shared = req.shared;
    let existing = shared
        .store
        .items_by_id(&shared.jid, name, &[id.to_string()])
        .await
        .map_err(store_error)?;
    let Some(item) = existing.first() else {
        return Err(StanzaError::new(Condition::ItemNotFound));
    };
    let affiliation = node.affiliation_of(&req.requester);
    let own_item = jid::Jid::new(&item.publisher).is_ok_and(|p| p.to_bare() == req.requester);
    let allowed = match affiliation {
        Affiliation::Owner | Affiliation::Publisher => true,
        Affiliation::Outcast => false,
        _ => own_item,
    };
    // §7.2.3.1
    if !allowed {
        return Err(StanzaError::new(Condition::Forbidden));
    }
    shared
        .store
        .retract_item(&shared.jid, name, id)
        .await
        .map_err(store_error)?;
    let asked = matches!(verb.attr("notify"), Some("true" | "1"));
    if asked || node.config().notify_retract {
        notify::broadcast(shared, &node, notify::retracted(name, &[id.to_string()])).await?;
    }
    Ok(None)
}
