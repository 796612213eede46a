//! XEP-0060: Publish-Subscribe — §4.2 subscriptions: their states and options as stored, an
//! entity's own subscriptions (§5.6) and the owner's management of a
//! node's subscriptions (§8.8).

use jid::{BareJid, Jid};
use minidom::Element;
use roost_core::module::IqResult;
use roost_proto::{Condition, Elem, StanzaError};
use roost_store::StoredSubscription;

use crate::errors::{nodeid_required, pubsub_error, store_error};
use crate::options::SubscribeOptions;
use crate::request::Request;
use crate::service::Shared;
use crate::{notify, ns};

/// §4.2 subscription states; "none" is the absence of a subscription and
/// "unconfigured" is not used: options are never required first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubState {
    Pending,
    Subscribed,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Pending => "pending",
            SubState::Subscribed => "subscribed",
        }
    }
}

/// A new subscription with a fresh SubID (§6.1.6).
pub(crate) fn new_subscription(
    jid: Jid,
    state: SubState,
    options: &SubscribeOptions,
) -> StoredSubscription {
    StoredSubscription {
        jid,
        subid: roost_proto::id::random_token(16),
        state: state.as_str().to_string(),
        options: options.to_text(),
    }
}

/// `<subscription node jid subid subscription/>` in namespace `ns_`.
pub(crate) fn subscription_element(
    ns_: &str,
    node: Option<&str>,
    sub: &StoredSubscription,
) -> Element {
    Element::bare("subscription", ns_)
        .attr_opt("node", node)
        .attr_set("jid", sub.jid.to_string())
        .attr_set("subid", sub.subid.as_str())
        .attr_set("subscription", sub.state.as_str())
}

/// The subscriptions of one bare JID (itself and its full JIDs) to a node.
pub(crate) async fn of_account(
    shared: &Shared,
    node: &str,
    account: &BareJid,
) -> Result<Vec<StoredSubscription>, StanzaError> {
    Ok(shared
        .store
        .subscriptions(&shared.jid, node)
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|s| s.jid.to_bare() == *account)
        .collect())
}

/// Remove every subscription of an account to a node (outcasts, §4.1).
pub(crate) async fn remove_account(
    shared: &Shared,
    node: &str,
    account: &BareJid,
) -> Result<(), StanzaError> {
    for sub in of_account(shared, node, account).await? {
        shared
            .store
            .remove_subscription(&shared.jid, node, &sub.jid)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// §5.6: the requester's subscriptions, to every node or to one.
pub(crate) async fn own(req: &Request<'_>, verb: &Element) -> IqResult {
    let shared = req.shared;
    let mut subs = shared
        .store
        .subscriptions_of(&shared.jid, &req.requester)
        .await
        .map_err(store_error)?;
    if let Some(node) = verb.attr("node") {
        subs.retain(|(n, _)| n == node);
    }
    let list = Element::bare("subscriptions", ns::PUBSUB)
        .attr_opt("node", verb.attr("node"))
        .children_from(
            subs.iter()
                .map(|(node, s)| subscription_element(ns::PUBSUB, Some(node), s)),
        );
    Ok(Some(Element::bare("pubsub", ns::PUBSUB).child(list)))
}

/// §8.8.1: the owner reads a node's subscriptions.
pub(crate) async fn list(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    req.owned_node(name).await?;
    let subs = req
        .shared
        .store
        .subscriptions(&req.shared.jid, name)
        .await
        .map_err(store_error)?;
    let list = Element::bare("subscriptions", ns::OWNER)
        .attr_set("node", name)
        .children_from(
            subs.iter()
                .map(|s| subscription_element(ns::OWNER, None, s)),
        );
    Ok(Some(Element::bare("pubsub", ns::OWNER).child(list)))
}

/// §8.8.2: the owner sets subscriptions: `subscribed` (approving a pending
/// one or adding one), `none` (removing it). The entity is told (§8.8.4).
pub(crate) async fn modify(req: &Request<'_>, verb: &Element) -> IqResult {
    let name = verb.attr("node").ok_or_else(nodeid_required)?;
    let node = req.owned_node(name).await?;
    let mut changes = Vec::new();
    for entry in verb.children().filter(|c| c.is("subscription", ns::OWNER)) {
        let jid = entry
            .attr("jid")
            .and_then(|j| Jid::new(j).ok())
            .ok_or_else(|| pubsub_error(Condition::BadRequest, "invalid-jid"))?;
        let state = match entry.attr("subscription") {
            Some("subscribed") => Some(SubState::Subscribed),
            Some("pending") => Some(SubState::Pending),
            Some("none") => None,
            _ => return Err(StanzaError::bad_request("unknown subscription state")),
        };
        changes.push((jid, state));
    }
    let shared = req.shared;
    let current = shared
        .store
        .subscriptions(&shared.jid, name)
        .await
        .map_err(store_error)?;
    for (jid, state) in changes {
        let existing = current.iter().find(|s| s.jid == jid).cloned();
        let changed = match (state, existing) {
            (None, Some(sub)) => {
                shared
                    .store
                    .remove_subscription(&shared.jid, name, &sub.jid)
                    .await
                    .map_err(store_error)?;
                Some(StoredSubscription {
                    state: "none".into(),
                    ..sub
                })
            }
            (None, None) => None,
            (Some(state), existing) => {
                let sub = match existing {
                    Some(sub) => StoredSubscription {
                        state: state.as_str().into(),
                        ..sub
                    },
                    None => new_subscription(jid, state, &SubscribeOptions::default()),
                };
                shared
                    .store
                    .put_subscription(&shared.jid, name, &sub)
                    .await
                    .map_err(store_error)?;
                Some(sub)
            }
        };
        if let Some(sub) = changed {
            shared.send(notify::subscription_changed(shared, name, &sub));
            if sub.state == SubState::Subscribed.as_str() {
                crate::subscribe::subscribed(shared, &node, &sub).await?;
            }
        }
    }
    Ok(None)
}
