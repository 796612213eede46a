//! XEP-0060: Publish-Subscribe — §8.6: subscriptions to nodes with the "authorize" access model
//! wait for an owner. Each owner gets a `pubsub#subscribe_authorization`
//! form in a message; the first owner to submit it decides, and the
//! subscriber is told the outcome.

use jid::Jid;
use minidom::Element;
use roost_proto::data_form::{bool_str, boolean, field, form, form_type, Form};
use roost_proto::{ns as core_ns, Condition, Elem, Stanza, StanzaError};
use roost_store::StoredSubscription;

use crate::affiliation::Affiliation;
use crate::errors::{no_such_node, store_error};
use crate::node::Node;
use crate::service::Shared;
use crate::subscription::SubState;
use crate::{notify, ns, subscribe};

/// §8.6.1: ask every owner to approve a pending subscription.
pub(crate) fn ask_owners(shared: &Shared, node: &Node, sub: &StoredSubscription) {
    let subscriber = sub.jid.to_string();
    for owner in node.with_affiliation(Affiliation::Owner) {
        let x = form(
            "form",
            [
                form_type(ns::FORM_SUBSCRIBE_AUTHORIZATION),
                field("pubsub#subid", "hidden", None, &[&sub.subid]),
                field("pubsub#node", "text-single", Some("Node ID"), &[&node.name]),
                field(
                    "pubsub#subscriber_jid",
                    "jid-single",
                    Some("Subscriber Address"),
                    &[&subscriber],
                ),
                field(
                    "pubsub#allow",
                    "boolean",
                    Some("Allow this JID to subscribe to this pubsub node?"),
                    &[bool_str(false)],
                ),
            ],
        )
        .child(Element::bare("title", core_ns::DATA_FORMS).text_node("PubSub subscriber request"))
        .child(
            Element::bare("instructions", core_ns::DATA_FORMS).text_node(
                "To approve this subscription request, set pubsub#allow to true and submit the form.",
            ),
        );
        shared.send(
            Element::bare("message", core_ns::CLIENT)
                .attr_set("from", shared.jid.as_str())
                .attr_set("to", owner.as_str())
                .attr_set("id", roost_proto::id::random_token(16))
                .child(x),
        );
    }
}

/// Whether a message carries a submitted authorization form.
pub(crate) fn is_answer(message: &Element) -> bool {
    message
        .get_child("x", core_ns::DATA_FORMS)
        .is_some_and(|x| {
            Form::parse(x).form_type.as_deref() == Some(ns::FORM_SUBSCRIBE_AUTHORIZATION)
        })
}

/// §8.6.2: an owner's answer. Errors go back to the owner as message
/// errors.
pub(crate) async fn answer(shared: &Shared, stanza: &Stanza) {
    if let Err(e) = decide(shared, stanza).await {
        shared.send(e.reply_to(&stanza.el));
    }
}

async fn decide(shared: &Shared, stanza: &Stanza) -> Result<(), StanzaError> {
    let Some(owner) = stanza.from.as_ref().map(Jid::to_bare) else {
        return Ok(());
    };
    let Some(x) = stanza.el.get_child("x", core_ns::DATA_FORMS) else {
        return Ok(());
    };
    // §8.6.3: the owner cancelled; the request stays pending.
    if x.attr("type") == Some("cancel") {
        return Ok(());
    }
    let form = Form::parse(x);
    let bad = || StanzaError::bad_request("incomplete authorization form");
    let name = form.value("pubsub#node").ok_or_else(bad)?;
    let subscriber = form
        .value("pubsub#subscriber_jid")
        .and_then(|j| Jid::new(j).ok())
        .ok_or_else(bad)?;
    let allow = form
        .values("pubsub#allow")
        .and_then(boolean)
        .ok_or_else(bad)?;
    let node = shared.load_node(name).await?.ok_or_else(no_such_node)?;
    if node.affiliation_of(&owner) != Affiliation::Owner {
        return Err(StanzaError::new(Condition::Forbidden));
    }
    let pending = shared
        .store
        .subscriptions(&shared.jid, name)
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|s| s.jid == subscriber && s.state == SubState::Pending.as_str())
        .filter(|s| form.value("pubsub#subid").is_none_or(|id| id == s.subid))
        .ok_or_else(|| {
            StanzaError::new(Condition::ItemNotFound).with_text("no such pending subscription")
        })?;
    if allow {
        let sub = StoredSubscription {
            state: SubState::Subscribed.as_str().into(),
            ..pending
        };
        shared
            .store
            .put_subscription(&shared.jid, name, &sub)
            .await
            .map_err(store_error)?;
        shared.send(notify::subscription_changed(shared, name, &sub));
        subscribe::subscribed(shared, &node, &sub).await?;
    } else {
        shared
            .store
            .remove_subscription(&shared.jid, name, &pending.jid)
            .await
            .map_err(store_error)?;
        shared.send(notify::subscription_changed(
            shared,
            name,
            &StoredSubscription {
                state: "none".into(),
                ..pending
            },
        ));
    }
    Ok(())
}
