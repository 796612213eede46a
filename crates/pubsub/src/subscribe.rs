//! XEP-0060: Publish-Subscribe — §6.1 subscribe (with options, §6.3.7) and §6.2 unsubscribe.
//! One subscription per JID and node; subscribing again while subscribed
//! answers with the existing subscription.

use jid::Jid;
use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::data_form::Form;
use roost_proto::{Condition, Elem, StanzaError};
use roost_store::StoredSubscription;

use crate::access::{self, Purpose};
use crate::errors::{nodeid_required, pubsub_error, store_error, unsupported};
use crate::node::config_form::{AccessModel, SendLast};
use crate::node::Node;
use crate::options::SubscribeOptions;
use crate::request::Request;
use crate::service::Shared;
use crate::subscription::{new_subscription, of_account, subscription_element, SubState};
use crate::{authorize, notify, ns};

/// The `jid` attribute of a subscribe or unsubscribe request.
fn subscriber_jid(verb: &Element) -> Result<Jid, StanzaError> {
    let jid = verb
        .attr("jid")
        .ok_or_else(|| pubsub_error(Condition::BadRequest, "jid-required"))?;
    Jid::new(jid).map_err(|_| pubsub_error(Condition::BadRequest, "invalid-jid"))
}

/// §6.1: subscribe `jid` (the requester's bare or full JID) to a node.
pub(crate) async fn subscribe(req: &Request<'_>, pubsub: &Element, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let jid = subscriber_jid(verb)?;
    // §6.1.3.1
    if jid.to_bare() != req.requester {
        return Err(pubsub_error(Condition::BadRequest, "invalid-jid"));
    }
    let node = req.node(name).await?;
    // §6.1.3.9
    if !node.config().subscribe {
        return Err(unsupported("subscribe"));
    }
    let shared = req.shared;
    access::check(shared, &node, &req.requester, Purpose::Subscribe).await?;
    if let Some(existing) = of_account(shared, name, &req.requester)
        .await?
        .into_iter()
        .find(|s| s.jid == jid)
    {
        // §6.1.3.7
        if existing.state == SubState::Pending.as_str() {
            return Err(pubsub_error(
                Condition::NotAuthorized,
                "pending-subscription",
            ));
        }
        return Ok(Some(reply(name, &existing)));
    }
    // §6.3.7: subscribe and configure in one request.
    let options = match pubsub
        .get_child("options", ns::PUBSUB)
        .and_then(Form::inside)
    {
        Some(form) => SubscribeOptions::default()
            .apply(&form)
            .ok_or_else(|| pubsub_error(Condition::BadRequest, "invalid-options"))?,
        None => SubscribeOptions::default(),
    };
    let needs_approval = node.config().access_model == AccessModel::Authorize
        && !node.affiliation_of(&req.requester).is_trusted_reader();
    let state = if needs_approval {
        SubState::Pending
    } else {
        SubState::Subscribed
    };
    let sub = new_subscription(jid, state, &options);
    shared
        .store
        .put_subscription(&shared.jid, name, &sub)
        .await
        .map_err(store_error)?;
    if needs_approval {
        // §6.1.2.2, §8.6
        authorize::ask_owners(shared, &node, &sub);
    } else {
        subscribed(shared, &node, &sub).await?;
    }
    Ok(Some(reply(name, &sub)))
}

/// What follows a subscription becoming active: owners are told
/// (`notify_sub`) and the last item may be sent (§6.1.7).
pub(crate) async fn subscribed(
    shared: &Shared,
    node: &Node,
    sub: &StoredSubscription,
) -> Result<(), StanzaError> {
    notify::to_owners(shared, node, sub);
    let cfg = node.config();
    if cfg.send_last_published_item == SendLast::Never || !cfg.persist_items {
        return Ok(());
    }
    let last = shared
        .store
        .items(&shared.jid, &node.name, Some(1))
        .await
        .map_err(store_error)?;
    if let Some(item) = last.first() {
        shared.send(notify::last_item_to(
            shared,
            node,
            &sub.jid.to_string(),
            item,
        ));
    }
    Ok(())
}

fn reply(node: &str, sub: &StoredSubscription) -> Element {
    Element::bare("pubsub", ns::PUBSUB).child(subscription_element(ns::PUBSUB, Some(node), sub))
}

/// §6.2: end a subscription of the requester.
pub(crate) async fn unsubscribe(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let jid = subscriber_jid(verb)?;
    // §6.2.3.3
    if jid.to_bare() != req.requester {
        return Err(StanzaError::new(Condition::Forbidden));
    }
    let node = req.node(name).await?;
    let shared = req.shared;
    // §6.2.3.2
    let sub = of_account(shared, name, &req.requester)
        .await?
        .into_iter()
        .find(|s| s.jid == jid)
        .ok_or_else(|| pubsub_error(Condition::UnexpectedRequest, "not-subscribed"))?;
    // §6.2.3.5
    if verb.attr("subid").is_some_and(|id| id != sub.subid) {
        return Err(pubsub_error(Condition::NotAcceptable, "invalid-subid"));
    }
    shared
        .store
        .remove_subscription(&shared.jid, name, &sub.jid)
        .await
        .map_err(store_error)?;
    notify::to_owners(
        shared,
        &node,
        &StoredSubscription {
            state: "none".into(),
            ..sub
        },
    );
    Ok(None)
}
