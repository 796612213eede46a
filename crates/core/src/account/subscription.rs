//! RFC 6121 §3: the presence subscription state machine, both for requests
//! the account sends (outbound, §3.1.2, §3.2.2, §3.3.2, §3.4) and for those
//! it receives (inbound, §3.1.3, §3.2.3, §3.3.3), with pending inbound
//! requests stored until answered and re-delivered at login.

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{ns, Elem, ElementExt, Stanza};
use roost_store::{RosterItem, Subscription};

use super::resources::StoredPresence;
use super::Account;

pub fn is_subscription_type(t: Option<&str>) -> bool {
    matches!(
        t,
        Some("subscribe") | Some("subscribed") | Some("unsubscribe") | Some("unsubscribed")
    )
}

impl Account {
    /// Send a subscription-related presence from the account's bare JID.
    pub(super) fn send_subscription(&self, contact: &BareJid, kind: &str) {
        let el = Element::bare("presence", ns::CLIENT)
            .attr_set("from", self.jid.as_str())
            .attr_set("to", contact.as_str())
            .attr_set("type", kind);
        self.server.route_element(el);
    }

    /// After approving a subscription the contact gets our current presence
    /// from every available resource (§3.1.5).
    pub(super) fn send_presence_from_all(&self, contact: &BareJid) {
        for entry in self.resources.available() {
            if let Some(mut p) = entry.presence.as_ref().and_then(StoredPresence::element) {
                p.set("from", entry.handle.jid.as_str());
                p.set("to", contact.as_str());
                self.server.route_element(p);
            }
        }
    }

    /// After cancelling a subscription the contact sees us go (§3.2.2).
    pub(super) fn send_unavailable_from_all(&self, contact: &BareJid) {
        for entry in self.resources.available() {
            let p = Element::bare("presence", ns::CLIENT)
                .attr_set("from", entry.handle.jid.as_str())
                .attr_set("to", contact.as_str())
                .attr_set("type", "unavailable");
            self.server.route_element(p);
        }
    }

    /// Outbound subscription presence from one of our sessions.
    pub(super) async fn outbound_subscription(
        &mut self,
        kind: &str,
        contact: BareJid,
    ) -> Result<(), roost_proto::StanzaError> {
        let mut item = self
            .roster_item(&contact)
            .await
            .unwrap_or_else(|| RosterItem::new(contact.clone()));
        let before = item.clone();
        let mut forward = true;
        match kind {
            "subscribe" => {
                // §3.1.2: remember the request unless already subscribed.
                if !item.subscription.has_to() {
                    item.ask = true;
                }
            }
            "subscribed" => {
                let pending = self
                    .server
                    .stores
                    .roster
                    .remove_pending_in(&self.jid, &contact)
                    .await
                    .unwrap_or(false);
                if pending {
                    item.subscription = Subscription::from_flags(item.subscription.has_to(), true);
                } else if !item.subscription.has_from() {
                    // §3.4: no request yet, so this pre-approves one.
                    item.approved = true;
                    forward = false;
                } else {
                    forward = false;
                }
            }
            "unsubscribe" => {
                item.ask = false;
                item.subscription = Subscription::from_flags(false, item.subscription.has_from());
            }
            "unsubscribed" => {
                let pending = self
                    .server
                    .stores
                    .roster
                    .remove_pending_in(&self.jid, &contact)
                    .await
                    .unwrap_or(false);
                item.approved = false;
                forward = pending || item.subscription.has_from();
                item.subscription = Subscription::from_flags(item.subscription.has_to(), false);
            }
            _ => return Ok(()),
        }
        let known = self.roster_item(&contact).await.is_some();
        if item != before && (known || kind == "subscribe" || kind == "subscribed") {
            if let Err(e) = self.roster_put(item).await {
                tracing::warn!(account = %self.jid, error = %e, "subscription not stored");
                return Err(e);
            }
        }
        if forward {
            self.send_subscription(&contact, kind);
            match kind {
                "subscribed" => self.send_presence_from_all(&contact),
                "unsubscribed" => self.send_unavailable_from_all(&contact),
                _ => {}
            }
        }
        Ok(())
    }

    /// Inbound subscription presence from a contact.
    pub(super) async fn inbound_subscription(&mut self, stanza: Stanza) {
        let kind = stanza.type_attr().unwrap_or_default().to_string();
        let Some(contact) = stanza.from.as_ref().map(Jid::to_bare) else {
            return;
        };
        let existing = self.roster_item(&contact).await;
        match kind.as_str() {
            "subscribe" => {
                let item = existing.unwrap_or_else(|| RosterItem::new(contact.clone()));
                if item.subscription.has_from() {
                    // §3.1.3: already subscribed, answer on the user's behalf.
                    self.send_subscription(&contact, "subscribed");
                    return;
                }
                if item.approved {
                    let mut item = item;
                    item.approved = false;
                    item.subscription = Subscription::from_flags(item.subscription.has_to(), true);
                    if self.roster_put(item).await.is_ok() {
                        self.send_subscription(&contact, "subscribed");
                        self.send_presence_from_all(&contact);
                    }
                    return;
                }
                // Stored first, so the request survives until answered.
                let mut el = stanza.el.clone();
                el.set("from", contact.as_str());
                el.set("to", self.jid.as_str());
                if let Err(e) = self
                    .server
                    .stores
                    .roster
                    .put_pending_in(&self.jid, &contact, &el.to_xml())
                    .await
                {
                    tracing::error!(account = %self.jid, error = %e, "pending subscription not stored");
                    return;
                }
                self.deliver_to_available(&el);
            }
            "subscribed" => {
                let Some(mut item) = existing else { return };
                if !item.ask {
                    return;
                }
                item.ask = false;
                item.subscription = Subscription::from_flags(true, item.subscription.has_from());
                if self.roster_put(item).await.is_ok() {
                    self.deliver_to_available(&stanza.el);
                }
            }
            "unsubscribe" => {
                let had_pending = self
                    .server
                    .stores
                    .roster
                    .remove_pending_in(&self.jid, &contact)
                    .await
                    .unwrap_or(false);
                let Some(mut item) = existing else { return };
                if !item.subscription.has_from() && !had_pending && !item.approved {
                    return;
                }
                item.approved = false;
                item.subscription = Subscription::from_flags(item.subscription.has_to(), false);
                if self.roster_put(item).await.is_ok() {
                    self.deliver_to_available(&stanza.el);
                    self.send_unavailable_from_all(&contact);
                }
            }
            "unsubscribed" => {
                let Some(mut item) = existing else { return };
                if !item.subscription.has_to() && !item.ask {
                    return;
                }
                item.ask = false;
                item.subscription = Subscription::from_flags(false, item.subscription.has_from());
                if self.roster_put(item).await.is_ok() {
                    self.deliver_to_available(&stanza.el);
                }
            }
            _ => {}
        }
    }

    /// Re-deliver stored subscription requests to a resource (§3.1.3).
    pub(super) async fn redeliver_pending(&self, resource: &str) {
        let Some(entry) = self.resources.get(resource) else {
            return;
        };
        match self.server.stores.roster.pending_in(&self.jid).await {
            Ok(pending) => {
                for (_, xml) in pending {
                    if let Ok(el) = xml.parse::<Element>() {
                        entry.handle.send(el);
                    }
                }
            }
            Err(e) => {
                tracing::error!(account = %self.jid, error = %e, "pending subscriptions unreadable")
            }
        }
    }
}
