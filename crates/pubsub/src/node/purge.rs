//! XEP-0060: Publish-Subscribe — §8.5: the owner removes every item of a node; with
//! `notify_retract`, subscribers get one `<purge/>` event (§8.5.2) rather
//! than a retraction per item.

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::Elem;

use crate::errors::{nodeid_required, store_error, unsupported};
use crate::request::Request;
use crate::{notify, ns};

pub(crate) async fn purge(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let node = req.owned_node(name).await?;
    // §8.5.3.3
    if !node.config().persist_items {
        return Err(unsupported("persistent-items"));
    }
    let shared = req.shared;
    shared
        .store
        .trim_items(&shared.jid, name, 0)
        .await
        .map_err(store_error)?;
    if node.config().notify_retract {
        notify::broadcast(
            shared,
            &node,
            Element::bare("purge", ns::EVENT).attr_set("node", name),
        )
        .await?;
    }
    Ok(None)
}
