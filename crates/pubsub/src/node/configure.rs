//! XEP-0060: Publish-Subscribe — §8.2 configure a node (get the form, submit or cancel it) and
//! §8.3 the default configuration. A smaller `max_items` trims the stored
//! items; with `notify_config` subscribers hear of the change (§8.2.5.4).

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::data_form::Form;
use roost_proto::{Condition, Elem, StanzaError};

use crate::errors::{nodeid_required, store_error};
use crate::node::config_form::NodeConfig;
use crate::request::Request;
use crate::{notify, ns};

/// §8.2.1: the configuration form.
pub(crate) async fn form(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let node = req.owned_node(name).await?;
    Ok(Some(
        Element::bare("pubsub", ns::OWNER).child(
            Element::bare("configure", ns::OWNER)
                .attr_set("node", name)
                .child(node.config().to_form("form")),
        ),
    ))
}

/// §8.2.4–§8.2.5: apply a submitted form (all fields or none).
pub(crate) async fn submit(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let mut node = req.owned_node(name).await?;
    // §8.2.4: cancelling changes nothing.
    if Form::is_cancel(verb) {
        return Ok(None);
    }
    let form = Form::inside(verb).ok_or_else(|| StanzaError::bad_request("no data form"))?;
    let shared = req.shared;
    let mut config = node.config().clone();
    // §8.2.5.3
    config
        .apply(&form, ns::FORM_NODE_CONFIG, &shared.limits)
        .map_err(|e| StanzaError::new(Condition::NotAcceptable).with_text(e.to_string()))?;
    let old_cap = node.config().item_cap(&shared.limits);
    node.record.config = config;
    shared
        .store
        .set_node_config(&shared.jid, name, &node.record.to_text())
        .await
        .map_err(store_error)?;
    let cfg = node.config();
    let cap = if cfg.persist_items {
        cfg.item_cap(&shared.limits)
    } else {
        0
    };
    if cap < old_cap {
        shared
            .store
            .trim_items(&shared.jid, name, cap)
            .await
            .map_err(store_error)?;
    }
    if cfg.notify_config {
        let mut change = Element::bare("configuration", ns::EVENT).attr_set("node", name);
        if cfg.deliver_payloads {
            change = change.child(cfg.to_form("result"));
        }
        notify::broadcast(shared, &node, change).await?;
    }
    Ok(None)
}

/// §8.3: the configuration a new node gets.
pub(crate) async fn default(req: &Request<'_>) -> IqResult {
    let defaults = NodeConfig::defaults(&req.shared.limits);
    Ok(Some(Element::bare("pubsub", ns::OWNER).child(
        Element::bare("default", ns::OWNER).child(defaults.to_form("form")),
    )))
}
