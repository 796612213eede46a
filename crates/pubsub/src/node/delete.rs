//! XEP-0060: Publish-Subscribe — §8.4: the owner deletes a node with its items, subscriptions
//! and affiliations; with `notify_delete`, its subscribers hear of it,
//! with the redirect URI the owner gave (§8.4.2).

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::Elem;

use crate::errors::{no_such_node, nodeid_required, store_error};
use crate::request::Request;
use crate::{notify, ns};

pub(crate) async fn delete(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let node = req.owned_node(name).await?;
    let shared = req.shared;
    // Read before the subscriptions go with the node.
    let receivers = notify::receivers(shared, name).await?;
    let deleted = shared
        .store
        .delete_node(&shared.jid, name)
        .await
        .map_err(store_error)?;
    if !deleted {
        return Err(no_such_node());
    }
    if node.config().notify_delete {
        let mut event = Element::bare("delete", ns::EVENT).attr_set("node", name);
        if let Some(uri) = verb
            .get_child("redirect", ns::OWNER)
            .and_then(|r| r.attr("uri"))
        {
            event = event.child(Element::bare("redirect", ns::EVENT).attr_set("uri", uri));
        }
        notify::broadcast_to(shared, &node, &receivers, event);
    }
    Ok(None)
}
