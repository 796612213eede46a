//! XEP-0060 §7.1 publishing an item and §7.2 deleting (retracting) one, on
//! a PEP node: automatic node creation (§7.1.4, required by XEP-0163 §3)
//! and publish-options preconditions (§7.1.5).

use std::time::{SystemTime, UNIX_EPOCH};

use jid::BareJid;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::Server;
use roost_proto::{Condition, Elem, StanzaError};
use roost_store::StoredItem;

use super::node_config::{Form, NodeConfig, FORM_PUBLISH_OPTIONS};
use super::{
    load_node, node_attr, notify, pubsub_error, store_error, PepService, Request, NS_PUBSUB,
};
use crate::bookmarks;

/// `<publish node><item id?>payload</item></publish>` (§7.1.1).
pub async fn publish(req: &Request<'_>, pubsub: &Element, verb: &Element) -> IqResult {
    req.require_owner()?;
    let node = node_attr(verb, req.limits())?;
    // §7.1.3.6–7: persistent nodes need an item, payload nodes a payload,
    // and an item holds exactly one payload.
    let mut items = verb.children().filter(|c| c.is("item", NS_PUBSUB));
    let item = match (items.next(), items.next()) {
        (Some(i), None) => i,
        (None, _) => return Err(pubsub_error(Condition::BadRequest, "item-required")),
        (Some(_), Some(_)) => {
            return Err(pubsub_error(Condition::BadRequest, "invalid-payload")
                .with_text("one item per publish"))
        }
    };
    let mut payloads = item.children();
    let payload = match (payloads.next(), payloads.next()) {
        (Some(p), None) => p.clone(),
        (None, _) => return Err(pubsub_error(Condition::BadRequest, "payload-required")),
        (Some(_), Some(_)) => return Err(pubsub_error(Condition::BadRequest, "invalid-payload")),
    };
    let options = publish_options(pubsub)?;
    if node == bookmarks::LEGACY_NODE {
        // XEP-0411: the XEP-0048 node is a view of the XEP-0402 one.
        bookmarks::publish_legacy_node(req, &payload, options.as_ref()).await?;
        return Ok(Some(published(&node, bookmarks::LEGACY_ITEM)));
    }
    let metadata = (node == crate::avatar::NS_METADATA).then(|| payload.clone());
    let id = publish_item(
        req.server,
        req.service,
        req.owner,
        &node,
        item.attr("id"),
        payload,
        options.as_ref(),
        &req.publisher(),
    )
    .await?;
    if node == bookmarks::NS {
        bookmarks::legacy_notify(req.server, req.owner).await;
    }
    if let Some(m) = metadata {
        // XEP-0398 §3.1: the vCard follows the PEP avatar.
        crate::avatar::pep_to_vcard(req.server, req.owner, &m).await;
    }
    Ok(Some(published(&node, &id)))
}

/// §7.1.2: the result names the item, since its id may be generated.
fn published(node: &str, id: &str) -> Element {
    Element::bare("pubsub", NS_PUBSUB).child(
        Element::bare("publish", NS_PUBSUB)
            .attr_set("node", node)
            .child(Element::bare("item", NS_PUBSUB).attr_set("id", id)),
    )
}

/// §7.1.5: the form inside `<publish-options/>`, whose FORM_TYPE must be
/// `pubsub#publish-options`.
fn publish_options(pubsub: &Element) -> Result<Option<Form>, StanzaError> {
    let Some(po) = pubsub.get_child("publish-options", NS_PUBSUB) else {
        return Ok(None);
    };
    let Some(form) = Form::inside(po) else {
        return Ok(None);
    };
    if form.form_type.as_deref() != Some(FORM_PUBLISH_OPTIONS) {
        return Err(pubsub_error(Condition::BadRequest, "invalid-options")
            .with_text("FORM_TYPE must be pubsub#publish-options"));
    }
    Ok(Some(form))
}

pub fn precondition_not_met(e: &super::node_config::FieldError) -> StanzaError {
    pubsub_error(Condition::Conflict, "precondition-not-met").with_text(e.to_string())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Create `node` with `cfg`, within the per-account node limit. When a
/// concurrent request created it first, its configuration is returned.
pub async fn create_node(
    server: &Server,
    service: &PepService,
    owner: &BareJid,
    node: &str,
    cfg: &NodeConfig,
) -> Result<Option<NodeConfig>, StanzaError> {
    let store = &server.stores.pubsub;
    let limits = service.limits();
    let count = store.nodes(owner).await.map_err(store_error)?.len();
    if count >= limits.max_nodes {
        roost_core::limits::hit(roost_core::limits::Limit::Pep);
        return Err(StanzaError::new(Condition::PolicyViolation)
            .with_text(format!("at most {} nodes per account", limits.max_nodes)));
    }
    let created = store
        .create_node(owner, node, &cfg.to_stored(node, limits))
        .await
        .map_err(store_error)?;
    if created {
        Ok(None)
    } else {
        load_node(server, service, owner, node).await
    }
}

/// The node's configuration, creating the node when it does not exist:
/// §7.1.5 — an existing node must meet the preconditions; a new one takes
/// the defaults except where the preconditions say otherwise.
pub async fn ensure_node(
    server: &Server,
    service: &PepService,
    owner: &BareJid,
    node: &str,
    options: Option<&Form>,
) -> Result<NodeConfig, StanzaError> {
    let limits = service.limits();
    let check = |cfg: NodeConfig| -> Result<NodeConfig, StanzaError> {
        if let Some(form) = options {
            cfg.meets(form, node, limits)
                .map_err(|e| precondition_not_met(&e))?;
        }
        Ok(cfg)
    };
    if let Some(cfg) = load_node(server, service, owner, node).await? {
        return check(cfg);
    }
    let mut cfg = NodeConfig::defaults_for(node);
    if let Some(form) = options {
        cfg = cfg
            .apply(form, node, limits)
            .map_err(|e| precondition_not_met(&e))?;
    }
    match create_node(server, service, owner, node, &cfg).await? {
        None => Ok(cfg),
        Some(existing) => check(existing),
    }
}

/// Publish `payload` on `owner`'s `node` and notify (§7.1.2); returns the
/// item id. Used by the publish request and by the XEP-0049 bookmarks
/// conversion.
#[allow(clippy::too_many_arguments)]
pub async fn publish_item(
    server: &std::sync::Arc<Server>,
    service: &PepService,
    owner: &BareJid,
    node: &str,
    id: Option<&str>,
    payload: Element,
    options: Option<&Form>,
    publisher: &str,
) -> Result<String, StanzaError> {
    let limits = service.limits();
    let xml = String::from(&payload);
    if xml.len() > limits.item_bytes(node) {
        roost_core::limits::hit(roost_core::limits::Limit::Pep);
        return Err(pubsub_error(Condition::NotAcceptable, "payload-too-big"));
    }
    let id = match id {
        Some(id) if id.len() > limits.max_name_bytes => {
            return Err(StanzaError::new(Condition::NotAcceptable).with_text("item id too long"))
        }
        Some(id) if !id.is_empty() => id.to_string(),
        // §7.1.3.7: the service generates missing ItemIDs.
        _ => roost_proto::id::random_token(20),
    };
    let bookmark = if node == bookmarks::NS {
        Some(
            bookmarks::Bookmark::from_item(&id, &payload).ok_or_else(|| {
                pubsub_error(Condition::BadRequest, "invalid-payload")
                    .with_text("XEP-0402: the item id is the room JID, the payload a conference")
            })?,
        )
    } else {
        None
    };
    let cfg = ensure_node(server, service, owner, node, options).await?;
    let item = StoredItem {
        id: id.clone(),
        publisher: publisher.to_string(),
        stamp_ms: now_ms(),
        xml,
    };
    let trimmed = server
        .stores
        .pubsub
        .publish_item(owner, node, &item, cfg.keep(node, limits))
        .await
        .map_err(store_error)?
        // Deleted between the check and the write.
        .ok_or_else(|| StanzaError::new(Condition::ItemNotFound))?;
    notify::items(
        server,
        owner,
        node,
        &cfg,
        vec![notify::item_element(&id, payload)],
    )
    .await;
    if let Some(b) = bookmark {
        bookmarks::changed(service, owner, bookmarks::BookmarkChange::Set(b));
        for gone in trimmed {
            if let Ok(jid) = BareJid::new(&gone) {
                bookmarks::changed(service, owner, bookmarks::BookmarkChange::Removed(jid));
            }
        }
    }
    Ok(id)
}

/// `<retract node notify?><item id/></retract>` (§7.2.1).
pub async fn retract(req: &Request<'_>, verb: &Element) -> IqResult {
    req.require_owner()?;
    let node = node_attr(verb, req.limits())?;
    let id = verb
        .get_child("item", NS_PUBSUB)
        .and_then(|i| i.attr("id"))
        .filter(|id| !id.is_empty())
        // §7.2.3.4
        .ok_or_else(|| pubsub_error(Condition::BadRequest, "item-required"))?;
    if node == bookmarks::LEGACY_NODE {
        return Err(bookmarks::legacy_node_refusal());
    }
    let cfg = req
        .node(&node)
        .await?
        // §7.2.3.2
        .ok_or_else(|| StanzaError::new(Condition::ItemNotFound))?;
    // §7.2.2.1: `notify` asks for notifications even when the node would
    // not send them.
    let asked = matches!(verb.attr("notify"), Some("1" | "true"));
    retract_item(req.server, req.service, req.owner, &node, &cfg, id, asked).await?;
    if node == bookmarks::NS {
        bookmarks::legacy_notify(req.server, req.owner).await;
    }
    Ok(None)
}

/// Delete one item and notify (§7.2.2); `item-not-found` when absent.
pub async fn retract_item(
    server: &std::sync::Arc<Server>,
    service: &PepService,
    owner: &BareJid,
    node: &str,
    cfg: &NodeConfig,
    id: &str,
    notify: bool,
) -> Result<(), StanzaError> {
    let gone = server
        .stores
        .pubsub
        .retract_item(owner, node, id)
        .await
        .map_err(store_error)?;
    if !gone {
        return Err(StanzaError::new(Condition::ItemNotFound));
    }
    if notify || cfg.notify_retract {
        notify::retract(server, owner, node, cfg, id).await;
    }
    if node == bookmarks::NS {
        if let Ok(jid) = BareJid::new(id) {
            bookmarks::changed(service, owner, bookmarks::BookmarkChange::Removed(jid));
        }
    }
    Ok(())
}
