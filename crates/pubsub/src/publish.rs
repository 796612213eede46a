//! XEP-0060: Publish-Subscribe — §7.1 publish: permissions by `pubsub#publish_model`, the
//! payload rules of the node's event type (§7.1.3.5–§7.1.3.6), item ids
//! generated when absent, `max_items` trimming, notifications with or
//! without payload, publish-options preconditions (§7.1.5) and automatic
//! node creation with those options (§7.1.4).

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::data_form::Form;
use roost_proto::{Condition, Elem, ElementExt, StanzaError};
use roost_store::StoredItem;

use crate::affiliation::Affiliation;
use crate::errors::{no_such_node, nodeid_required, pubsub_error, store_error};
use crate::node::config_form::{NodeConfig, PublishModel};
use crate::node::{create, Node};
use crate::request::Request;
use crate::subscription::{of_account, SubState};
use crate::{notify, ns};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// §7.1.5: the preconditions of `<publish-options/>`, when given.
fn preconditions(pubsub: &Element) -> Result<Option<Form>, StanzaError> {
    let Some(options) = pubsub.get_child("publish-options", ns::PUBSUB) else {
        return Ok(None);
    };
    let Some(form) = Form::inside(options) else {
        return Ok(None);
    };
    if form.form_type.as_deref() != Some(ns::FORM_PUBLISH_OPTIONS) {
        return Err(StanzaError::bad_request(
            "publish-options needs its FORM_TYPE",
        ));
    }
    Ok(Some(form))
}

/// The node to publish to: existing and meeting the preconditions, or
/// created for the publisher when it may create nodes.
async fn target_node(
    req: &Request<'_>,
    name: &str,
    pre: Option<&Form>,
) -> Result<Node, StanzaError> {
    let shared = req.shared;
    let not_met = || pubsub_error(Condition::Conflict, "precondition-not-met");
    if let Some(node) = shared.load_node(name).await? {
        if let Some(form) = pre {
            node.config()
                .meets(form, &shared.limits)
                .map_err(|_| not_met())?;
        }
        return Ok(node);
    }
    // §7.1.3.3 without auto-create rights; §7.1.4 with them.
    if create::may_create(shared, &req.requester).is_err() {
        return Err(no_such_node());
    }
    let mut config = NodeConfig::defaults(&shared.limits);
    if let Some(form) = pre {
        config
            .apply(form, ns::FORM_PUBLISH_OPTIONS, &shared.limits)
            .map_err(|_| not_met())?;
    }
    create::create_node(req, name, config).await
}

/// Whether the requester may publish under the node's publish model.
async fn may_publish(req: &Request<'_>, node: &Node) -> Result<bool, StanzaError> {
    let affiliation = node.affiliation_of(&req.requester);
    if affiliation == Affiliation::Outcast {
        return Ok(false);
    }
    Ok(match node.config().publish_model {
        PublishModel::Publishers => affiliation.publishes(),
        PublishModel::Open => true,
        PublishModel::Subscribers => {
            affiliation.publishes()
                || of_account(req.shared, &node.name, &req.requester)
                    .await?
                    .iter()
                    .any(|s| s.state == SubState::Subscribed.as_str())
        }
    })
}

/// §7.1.3.5–§7.1.3.6: the payload of the published item, checked against
/// the node's event type and limits.
fn payload<'e>(
    cfg: &NodeConfig,
    item: Option<&'e Element>,
) -> Result<Option<&'e Element>, StanzaError> {
    let modify = |app| pubsub_error(Condition::BadRequest, app);
    let Some(item) = item else {
        if cfg.persist_items {
            return Err(modify("item-required"));
        }
        if cfg.deliver_payloads {
            return Err(modify("payload-required"));
        }
        return Ok(None);
    };
    if !cfg.persist_items && !cfg.deliver_payloads {
        return Err(modify("item-forbidden"));
    }
    let mut children = item.children();
    let payload = children.next();
    if children.next().is_some() {
        return Err(modify("invalid-payload"));
    }
    let Some(payload) = payload else {
        if cfg.deliver_payloads {
            return Err(modify("payload-required"));
        }
        return Ok(None);
    };
    if !cfg.payload_type.is_empty() && payload.ns() != cfg.payload_type {
        return Err(modify("invalid-payload"));
    }
    if payload.to_xml().len() > cfg.max_payload_size {
        roost_core::limits::hit(roost_core::limits::Limit::Pubsub);
        return Err(pubsub_error(Condition::NotAcceptable, "payload-too-big"));
    }
    Ok(Some(payload))
}

/// §7.1: publish one item (or, on a transient notification node, none).
pub(crate) async fn publish(req: &Request<'_>, pubsub: &Element, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let items: Vec<&Element> = verb
        .children()
        .filter(|c| c.is("item", ns::PUBSUB))
        .collect();
    if items.len() > 1 {
        // Batch publishing left the spec in version 1.13.
        return Err(StanzaError::bad_request("one item per publish request"));
    }
    let pre = preconditions(pubsub)?;
    let node = target_node(req, name, pre.as_ref()).await?;
    // §7.1.3.1
    if !may_publish(req, &node).await? {
        return Err(StanzaError::new(Condition::Forbidden));
    }
    let cfg = node.config();
    let item = items.first().copied();
    let payload = payload(cfg, item)?;
    let id = item
        .and_then(|i| i.attr("id"))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| roost_proto::id::random_token(20));
    let stored = StoredItem {
        id: id.clone(),
        publisher: req.from.to_string(),
        stamp_ms: now_ms(),
        xml: payload.map(ElementExt::to_xml).unwrap_or_default(),
    };
    let shared = req.shared;
    if cfg.persist_items {
        shared
            .store
            .publish_item(&shared.jid, name, &stored, cfg.item_cap(&shared.limits))
            .await
            .map_err(store_error)?
            .ok_or_else(no_such_node)?;
    }
    notify::broadcast(shared, &node, notify::published_items(&node, &stored)).await?;
    Ok(Some(
        Element::bare("pubsub", ns::PUBSUB).child(
            Element::bare("publish", ns::PUBSUB)
                .attr_set("node", name)
                .child(Element::bare("item", ns::PUBSUB).attr_set("id", id)),
        ),
    ))
}
