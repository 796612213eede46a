//! XEP-0060: Publish-Subscribe — event notifications: what subscribers hear about items (§7.1.2,
//! §7.2.2), configuration (§8.2.5.4), deletion (§8.4.2) and purges
//! (§8.5.2); what entities hear about their subscription (§8.6, §8.8.4)
//! and affiliation (§8.9.4); what owners hear about subscribers
//! (`pubsub#notify_sub`); and what a bounced notification does (§12.5).

use jid::BareJid;
use minidom::Element;
use roost_proto::{ns as core_ns, Condition, Elem, ErrorType, Stanza, StanzaError};
use roost_store::{StoredItem, StoredSubscription};

use crate::affiliation::Affiliation;
use crate::errors::store_error;
use crate::node::config_form::{ItemReply, NotificationType};
use crate::node::Node;
use crate::ns;
use crate::options::SubscribeOptions;
use crate::service::Shared;
use crate::subscription::{subscription_element, SubState};

/// The id prefix of event notifications, so that their bounces are known
/// (§12.5: ids unique within the service).
const NOTIFICATION_ID: &str = "notify-";

/// A message from the service carrying one `<event/>` child.
fn event_message(shared: &Shared, to: &str, kind: NotificationType, child: Element) -> Element {
    let kind = match kind {
        NotificationType::Headline => "headline",
        NotificationType::Normal => "normal",
    };
    Element::bare("message", core_ns::CLIENT)
        .attr_set("from", shared.jid.as_str())
        .attr_set("to", to)
        .attr_set("type", kind)
        .attr_set(
            "id",
            format!("{NOTIFICATION_ID}{}", roost_proto::id::random_token(16)),
        )
        .child(Element::bare("event", ns::EVENT).child(child))
}

/// §12.5: a notification came back with an error of type "cancel" (such
/// as `item-not-found`, `service-unavailable`) or `gone`: the JID it went
/// to loses its subscriptions to every node. Other errors (auth, wait,
/// modify) are passing troubles and change nothing.
pub(crate) async fn bounced(shared: &Shared, error: &Stanza) -> Result<(), StanzaError> {
    let (Some(from), Some(id)) = (error.from.as_ref(), error.id()) else {
        return Ok(());
    };
    let Some(err) = StanzaError::from_stanza(&error.el) else {
        return Ok(());
    };
    if !id.starts_with(NOTIFICATION_ID)
        || !(err.kind == ErrorType::Cancel || err.condition == Condition::Gone)
    {
        return Ok(());
    }
    let subs = shared
        .store
        .subscriptions_of(&shared.jid, &from.to_bare())
        .await
        .map_err(store_error)?;
    for (node, sub) in subs.into_iter().filter(|(_, s)| s.jid == *from) {
        tracing::info!(%node, subscriber = %sub.jid, condition = err.condition.as_str(), "notification bounced; subscription ended");
        shared
            .store
            .remove_subscription(&shared.jid, &node, &sub.jid)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// The subscribers that receive notifications: subscribed (not pending)
/// and not having turned delivery off (§6.3 `pubsub#deliver`).
pub(crate) async fn receivers(
    shared: &Shared,
    node: &str,
) -> Result<Vec<StoredSubscription>, StanzaError> {
    Ok(shared
        .store
        .subscriptions(&shared.jid, node)
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|s| s.state == SubState::Subscribed.as_str())
        .filter(|s| SubscribeOptions::from_text(&s.options).deliver)
        .collect())
}

/// Send `child` in an event to every receiver of the node, unless the node
/// delivers no notifications.
pub(crate) async fn broadcast(
    shared: &Shared,
    node: &Node,
    child: Element,
) -> Result<(), StanzaError> {
    broadcast_to(shared, node, &receivers(shared, &node.name).await?, child);
    Ok(())
}

/// Like [`broadcast`], to receivers read before a change (node deletion).
pub(crate) fn broadcast_to(
    shared: &Shared,
    node: &Node,
    to: &[StoredSubscription],
    child: Element,
) {
    if !node.config().deliver_notifications {
        return;
    }
    for sub in to {
        shared.send(event_message(
            shared,
            &sub.jid.to_string(),
            node.config().notification_type,
            child.clone(),
        ));
    }
}

/// `<items node><item id [publisher]>payload</item></items>` for one
/// published item; without payload when the node says so (§7.1.2.2).
pub(crate) fn published_items(node: &Node, item: &StoredItem) -> Element {
    let cfg = node.config();
    let mut el = Element::bare("item", ns::EVENT).attr_set("id", item.id.as_str());
    if cfg.itemreply == ItemReply::Publisher {
        // §7.1.2.3
        el = el.attr_set("publisher", item.publisher.as_str());
    }
    if cfg.deliver_payloads {
        if let Ok(payload) = item.xml.parse::<Element>() {
            el = el.child(payload);
        }
    }
    Element::bare("items", ns::EVENT)
        .attr_set("node", node.name.as_str())
        .child(el)
}

/// §7.2.2.1: `<items node><retract id/></items>`.
pub(crate) fn retracted(node: &str, ids: &[String]) -> Element {
    Element::bare("items", ns::EVENT)
        .attr_set("node", node)
        .children_from(
            ids.iter()
                .map(|id| Element::bare("retract", ns::EVENT).attr_set("id", id.as_str())),
        )
}

/// §7.1.2, §6.1.7: the last published item sent to one new subscriber.
pub(crate) fn last_item_to(shared: &Shared, node: &Node, to: &str, item: &StoredItem) -> Element {
    let stamp = roost_proto::datetime::to_xep82(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(item.stamp_ms.max(0) as u64),
    );
    event_message(
        shared,
        to,
        node.config().notification_type,
        published_items(node, item),
    )
    // XEP-0203: it was published earlier.
    .child(
        Element::bare("delay", core_ns::DELAY)
            .attr_set("from", shared.jid.as_str())
            .attr_set("stamp", stamp),
    )
}

/// §8.6, §8.8.4: tell an entity its subscription changed (state "none"
/// when it ended).
pub(crate) fn subscription_changed(
    shared: &Shared,
    node: &str,
    sub: &StoredSubscription,
) -> Element {
    event_message(
        shared,
        &sub.jid.to_string(),
        NotificationType::Normal,
        subscription_element(ns::EVENT, Some(node), sub),
    )
}

/// `pubsub#notify_sub`: tell the owners that someone subscribed or left.
pub(crate) fn to_owners(shared: &Shared, node: &Node, sub: &StoredSubscription) {
    if !node.config().notify_sub {
        return;
    }
    for owner in node.with_affiliation(Affiliation::Owner) {
        shared.send(event_message(
            shared,
            owner.as_str(),
            node.config().notification_type,
            subscription_element(ns::EVENT, Some(&node.name), sub),
        ));
    }
}

/// §8.9.4: tell an entity its affiliation changed.
pub(crate) fn affiliation_changed(
    shared: &Shared,
    node: &str,
    jid: &BareJid,
    affiliation: Affiliation,
) -> Element {
    Element::bare("message", core_ns::CLIENT)
        .attr_set("from", shared.jid.as_str())
        .attr_set("to", jid.as_str())
        .attr_set("id", roost_proto::id::random_token(16))
        .child(
            Element::bare("pubsub", ns::PUBSUB).child(
                Element::bare("affiliations", ns::PUBSUB)
                    .attr_set("node", node)
                    .child(
                        Element::bare("affiliation", ns::PUBSUB)
                            .attr_set("jid", jid.as_str())
                            .attr_set("affiliation", affiliation.as_str()),
                    ),
            ),
        )
}
