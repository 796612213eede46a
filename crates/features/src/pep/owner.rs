//! XEP-0060 §8 owner use cases on a PEP node — create (§8.1, with
//! create-and-configure §8.1.3), configure (§8.2), default configuration
//! (§8.3), delete (§8.4), purge (§8.5), and the subscription and
//! affiliation lists (§8.8, §8.9; §5.6, §5.7), which in PEP hold only the
//! owner since contacts are subscribed by presence.

use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::{Condition, Elem, StanzaError};

use super::node_config::{configure_element, default_element, Form, NodeConfig, FORM_NODE_CONFIG};
use super::publish::create_node;
use super::{
    node_attr, notify, pubsub_error, store_error, unsupported, Request, NS_OWNER, NS_PUBSUB,
};
use crate::bookmarks;

/// Requests in the `pubsub#owner` namespace; only the owner may make them.
pub async fn handle(req: &Request<'_>, set: bool, verb: &Element) -> IqResult {
    req.require_owner()?;
    match (set, verb.name()) {
        (false, "configure") => configure_get(req, verb).await,
        (true, "configure") => configure_set(req, verb).await,
        (false, "default") => Ok(Some(
            Element::bare("pubsub", NS_OWNER)
                .child(default_element(verb.attr("node"), req.limits())),
        )),
        (true, "delete") => delete(req, verb).await,
        (true, "purge") => purge(req, verb).await,
        (false, "subscriptions") => {
            let node = existing(req, verb).await?.0;
            Ok(Some(Element::bare("pubsub", NS_OWNER).child(
                Element::bare("subscriptions", NS_OWNER).attr_set("node", node),
            )))
        }
        (false, "affiliations") => {
            let node = existing(req, verb).await?.0;
            Ok(Some(
                Element::bare("pubsub", NS_OWNER).child(
                    Element::bare("affiliations", NS_OWNER)
                        .attr_set("node", node)
                        .child(
                            Element::bare("affiliation", NS_OWNER)
                                .attr_set("jid", req.owner.as_str())
                                .attr_set("affiliation", "owner"),
                        ),
                ),
            ))
        }
        // §8.8.2, §8.9.2: PEP has one publisher and presence subscribers.
        (true, "subscriptions") => Err(unsupported("manage-subscriptions")),
        (true, "affiliations") => Err(unsupported("modify-affiliations")),
        _ => Err(StanzaError::new(Condition::FeatureNotImplemented)),
    }
}

/// The named node and its configuration; `item-not-found` when absent.
async fn existing(req: &Request<'_>, verb: &Element) -> Result<(String, NodeConfig), StanzaError> {
    let node = node_attr(verb, req.limits())?;
    if node == bookmarks::LEGACY_NODE {
        return Err(bookmarks::legacy_node_refusal());
    }
    match req.node(&node).await? {
        Some(cfg) => Ok((node, cfg)),
        None => Err(StanzaError::new(Condition::ItemNotFound)),
    }
}

/// §8.1: `<create node/>`, optionally followed by `<configure><x/></configure>`.
pub async fn create(req: &Request<'_>, pubsub: &Element, verb: &Element) -> IqResult {
    req.require_owner()?;
    let node = match verb.attr("node") {
        Some(n) if !n.is_empty() => node_attr(verb, req.limits())?,
        // §8.1.1: instant nodes are not supported.
        _ => return Err(pubsub_error(Condition::NotAcceptable, "nodeid-required")),
    };
    if node == bookmarks::LEGACY_NODE {
        return Err(StanzaError::new(Condition::Conflict));
    }
    let mut cfg = NodeConfig::defaults_for(&node);
    if let Some(form) = pubsub
        .get_child("configure", NS_PUBSUB)
        .and_then(Form::inside)
    {
        check_form_type(&form)?;
        cfg = cfg
            .apply(&form, &node, req.limits())
            .map_err(|e| StanzaError::new(Condition::NotAcceptable).with_text(e.to_string()))?;
    }
    if req.node(&node).await?.is_some() {
        // §8.1.1: the NodeID exists.
        return Err(StanzaError::new(Condition::Conflict));
    }
    match create_node(req.server, req.service, req.owner, &node, &cfg).await? {
        None => Ok(None),
        Some(_) => Err(StanzaError::new(Condition::Conflict)),
    }
}

fn check_form_type(form: &Form) -> Result<(), StanzaError> {
    match form.form_type.as_deref() {
        None | Some(FORM_NODE_CONFIG) => Ok(()),
        Some(_) => Err(StanzaError::bad_request(
            "FORM_TYPE must be pubsub#node_config",
        )),
    }
}

/// §8.2.2: the configuration form of a node.
async fn configure_get(req: &Request<'_>, verb: &Element) -> IqResult {
    let (node, cfg) = existing(req, verb).await?;
    let form = cfg.to_form("form", &node, req.limits());
    Ok(Some(
        Element::bare("pubsub", NS_OWNER).child(configure_element(NS_OWNER, &node, form)),
    ))
}

/// §8.2.4: a submitted configuration, all of it applied or none (§8.2.5).
async fn configure_set(req: &Request<'_>, verb: &Element) -> IqResult {
    let (node, cfg) = existing(req, verb).await?;
    if Form::is_cancel(verb) {
        return Ok(None);
    }
    let form = Form::inside(verb).ok_or_else(|| StanzaError::bad_request("no data form"))?;
    check_form_type(&form)?;
    let limits = req.limits();
    let next = cfg
        .apply(&form, &node, limits)
        .map_err(|e| StanzaError::new(Condition::NotAcceptable).with_text(e.to_string()))?;
    let store = &req.server.stores.pubsub;
    let updated = store
        .set_node_config(req.owner, &node, &next.to_stored(&node, limits))
        .await
        .map_err(store_error)?;
    if !updated {
        return Err(StanzaError::new(Condition::ItemNotFound));
    }
    // A smaller max_items takes effect at once.
    if next.keep(&node, limits) < cfg.keep(&node, limits) {
        let trimmed = store
            .trim_items(req.owner, &node, next.keep(&node, limits))
            .await
            .map_err(store_error)?;
        if trimmed > 0 && node == bookmarks::NS {
            bookmarks::changed(req.service, req.owner, bookmarks::BookmarkChange::Reset);
            bookmarks::legacy_notify(req.server, req.owner).await;
        }
    }
    Ok(None)
}

/// §8.4: delete the node and its items; subscribers hear `<delete/>`.
async fn delete(req: &Request<'_>, verb: &Element) -> IqResult {
    let (node, cfg) = existing(req, verb).await?;
    let deleted = req
        .server
        .stores
        .pubsub
        .delete_node(req.owner, &node)
        .await
        .map_err(store_error)?;
    if !deleted {
        return Err(StanzaError::new(Condition::ItemNotFound));
    }
    notify::deleted(req.server, req.owner, &node, &cfg).await;
    if node == bookmarks::NS {
        bookmarks::changed(req.service, req.owner, bookmarks::BookmarkChange::Reset);
        bookmarks::legacy_notify(req.server, req.owner).await;
    }
    Ok(None)
}

/// §8.5: delete every item; subscribers hear `<purge/>`.
async fn purge(req: &Request<'_>, verb: &Element) -> IqResult {
    let (node, cfg) = existing(req, verb).await?;
    req.server
        .stores
        .pubsub
        .trim_items(req.owner, &node, 0)
        .await
        .map_err(store_error)?;
    notify::purged(req.server, req.owner, &node, &cfg).await;
    if node == bookmarks::NS {
        bookmarks::changed(req.service, req.owner, bookmarks::BookmarkChange::Reset);
        bookmarks::legacy_notify(req.server, req.owner).await;
    }
    Ok(None)
}

/// §5.6: the requester's subscriptions — none are kept explicitly.
pub async fn own_subscriptions(_req: &Request<'_>, verb: &Element) -> IqResult {
    Ok(Some(Element::bare("pubsub", NS_PUBSUB).child(
        Element::bare("subscriptions", NS_PUBSUB).attr_opt("node", verb.attr("node")),
    )))
}

/// §5.7: the requester's affiliations — the owner owns every node, others
/// have none.
pub async fn own_affiliations(req: &Request<'_>, verb: &Element) -> IqResult {
    let mut list = Element::bare("affiliations", NS_PUBSUB).attr_opt("node", verb.attr("node"));
    if req.is_owner() {
        let nodes = req
            .server
            .stores
            .pubsub
            .nodes(req.owner)
            .await
            .map_err(store_error)?;
        for n in nodes
            .iter()
            .filter(|n| verb.attr("node").is_none_or(|only| only == n.name))
        {
            list.append_child(
                Element::bare("affiliation", NS_PUBSUB)
                    .attr_set("node", n.name.as_str())
                    .attr_set("affiliation", "owner"),
            );
        }
    }
    Ok(Some(Element::bare("pubsub", NS_PUBSUB).child(list)))
}
