//! RFC 6121 §8.5: delivery of stanzas addressed to a local account, with
//! XEP-0160 offline storage for messages when no resource is available and
//! XEP-0203 delay stamps on what was stored.

use jid::Jid;
use minidom::Element;
use roost_proto::{ns, Condition, Elem, ElementExt, Stanza, StanzaError, StanzaKind};

use super::Account;
use crate::module::Scope;

impl Account {
    pub(super) async fn deliver(&mut self, stanza: Stanza) {
        if !self.exists {
            // §8.5.1: no such account.
            if stanza.kind != StanzaKind::Presence {
                self.server
                    .bounce(&stanza, StanzaError::service_unavailable());
            }
            return;
        }
        // XEP-0191 §3.5: blocked senders reach nobody here.
        if let Some(from) = stanza.from.clone() {
            if from.to_bare() != self.jid && self.is_blocked(&from).await {
                if stanza.kind != StanzaKind::Presence {
                    self.server
                        .bounce(&stanza, StanzaError::service_unavailable());
                }
                return;
            }
        }
        // Account-based MUC: a room the account occupies speaks to it.
        let Some(stanza) = self.rooms_inbound(stanza).await else {
            return;
        };
        match stanza.kind {
            StanzaKind::Presence => self.inbound_presence(stanza).await,
            StanzaKind::Message => {
                // XEP-0357: after delivery, devices that did not hear it.
                let push = match self.push_worthy(&stanza) {
                    Some(p) if self.has_push_registrations().await => Some((p, stanza.el.clone())),
                    _ => None,
                };
                self.deliver_message(stanza).await;
                if let Some(((urgency, sender), el)) = push {
                    self.push_unheard(&el, &sender, urgency).await;
                }
            }
            StanzaKind::Iq if self.push_answer(&stanza).await => {}
            StanzaKind::Iq => self.deliver_iq(stanza),
        }
    }

    /// A one-to-one message from someone else that would notify a person.
    fn push_worthy(&self, stanza: &Stanza) -> Option<(super::push::Urgency, Jid)> {
        if !matches!(stanza.type_attr(), None | Some("chat") | Some("normal")) {
            return None;
        }
        let from = stanza.from.clone()?;
        if from.to_bare() == self.jid {
            return None;
        }
        let urgency = super::push::urgency(&stanza.el);
        (urgency != super::push::Urgency::None).then_some((urgency, from))
    }

    async fn deliver_message(&mut self, mut stanza: Stanza) {
        let kind = stanza.type_attr().unwrap_or("normal").to_string();
        // XEP-0163: PEP notifications (sent by an account's bare JID) only
        // reach resources that want them. A pubsub service's (XEP-0060,
        // from a domain) go to a subscriber like any other message.
        let from_account = stanza.from.as_ref().is_some_and(|f| f.node().is_some());
        if from_account && super::notify::is_event(&stanza.el) {
            let only = stanza
                .to
                .as_ref()
                .and_then(Jid::resource)
                .map(|r| r.to_string());
            self.deliver_event(stanza.el, only.as_deref());
            return;
        }
        // XEP-0313: archived (and given our stanza-id) before anyone sees it.
        if let Some(from) = stanza.from.clone() {
            if kind != "groupchat" && kind != "error" {
                let receipt = stanza.receipt.clone();
                self.archive_message(&mut stanza.el, &from, true, receipt.as_ref())
                    .await;
            }
        }
        if let Some(res) = stanza.to.as_ref().and_then(Jid::resource) {
            if let Some(e) = self.resources.get(res.as_str()) {
                self.carbon_copies("received", &stanza.el, &[res.as_str()]);
                e.handle.send_receipted(stanza.el, stanza.receipt);
                return;
            }
            // §8.5.3.2.1: full JID with no such resource.
            match kind.as_str() {
                "groupchat" => {
                    return self
                        .server
                        .bounce(&stanza, StanzaError::service_unavailable())
                }
                "headline" | "error" => return,
                _ => {}
            }
        }
        match kind.as_str() {
            "error" => {}
            "groupchat" => self
                .server
                .bounce(&stanza, StanzaError::service_unavailable()),
            "headline" => {
                for e in self.resources.message_targets() {
                    e.handle.send(stanza.el.clone());
                }
            }
            _ => {
                let targets = self.resources.message_targets();
                if targets.is_empty() {
                    self.store_offline(stanza).await;
                } else {
                    let reached: Vec<&str> = targets
                        .iter()
                        .map(|e| e.handle.jid.resource().as_str())
                        .collect();
                    self.carbon_copies("received", &stanza.el, &reached);
                    for e in targets {
                        e.handle
                            .send_receipted(stanza.el.clone(), stanza.receipt.clone());
                    }
                }
            }
        }
    }

    /// XEP-0160: keep the message, stamped with when it arrived.
    async fn store_offline(&mut self, stanza: Stanza) {
        // Messages with nothing to show (chat states alone) are not kept.
        let worth = stanza.el.children().any(|c| c.ns() != ns::CHATSTATES);
        if !worth {
            return;
        }
        let mut el = stanza.el.clone();
        el.append_child(
            Element::bare("delay", ns::DELAY)
                .attr_set("from", self.server.config.domain.as_str())
                .attr_set("stamp", crate::server::now_stamp())
                .text_node("Offline storage"),
        );
        let limit = self.server.config.limits.max_offline_messages;
        match self
            .server
            .stores
            .offline
            .push_offline(&self.jid, &el.to_xml(), limit)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                crate::limits::hit(crate::limits::Limit::OfflineMessages);
                self.server.bounce(
                    &stanza,
                    // XEP-0160 §2: a full offline store is service-unavailable.
                    StanzaError::new(Condition::ServiceUnavailable)
                        .with_text("the recipient's offline storage is full"),
                )
            }
            Err(e) => {
                tracing::error!(account = %self.jid, error = %e, "offline store failed");
                self.server.bounce(&stanza, StanzaError::internal());
            }
        }
    }

    /// Deliver stored messages to a resource that just became available,
    /// and only then delete them.
    pub(super) async fn deliver_offline(&self, resource: &str) {
        let Some(entry) = self.resources.get(resource) else {
            return;
        };
        let stored = match self.server.stores.offline.offline(&self.jid).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(account = %self.jid, error = %e, "offline read failed");
                return;
            }
        };
        let Some(last) = stored.last().map(|(id, _)| *id) else {
            return;
        };
        for (_, xml) in stored {
            match xml.parse::<Element>() {
                Ok(mut el) => {
                    el.set("to", entry.handle.jid.as_str());
                    entry.handle.send(el);
                }
                Err(e) => {
                    tracing::warn!(account = %self.jid, error = %e, "unreadable offline message dropped")
                }
            }
        }
        if let Err(e) = self
            .server
            .stores
            .offline
            .ack_offline(&self.jid, last)
            .await
        {
            tracing::error!(account = %self.jid, error = %e, "offline ack failed");
        }
    }

    /// XEP-0386: a Bind 2 session gets no offline messages; the archive
    /// has them.
    pub(super) async fn drop_offline(&self) {
        let stored = match self.server.stores.offline.offline(&self.jid).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(account = %self.jid, error = %e, "offline read failed");
                return;
            }
        };
        if let Some((last, _)) = stored.last() {
            if let Err(e) = self
                .server
                .stores
                .offline
                .ack_offline(&self.jid, *last)
                .await
            {
                tracing::error!(account = %self.jid, error = %e, "offline ack failed");
            }
        }
    }

    fn deliver_iq(&self, stanza: Stanza) {
        const OWN_DATA_IQS: &[&str] = &[
            roost_proto::ns::ROSTER,
            roost_proto::ns::MAM,
            roost_proto::ns::BLOCKING,
            roost_proto::ns::CARBONS,
            super::PUSH_NS,
        ];
        match stanza.to.as_ref().and_then(Jid::resource) {
            Some(res) => match self.resources.get(res.as_str()) {
                Some(e) => e.handle.send(stanza.el),
                // §8.5.3.2.1: IQ to a resource that is not bound.
                None if stanza.is_iq_request() => self
                    .server
                    .bounce(&stanza, StanzaError::service_unavailable()),
                None => {}
            },
            // RFC 6121 §2.3.3, XEP-0313 §8.1 and the like: an account's own
            // data (roster, archive, block list, carbons, push) is not
            // another entity's to read or change.
            None if stanza.is_iq_request()
                && stanza
                    .el
                    .children()
                    .next()
                    .is_some_and(|p| OWN_DATA_IQS.iter().any(|n| p.has_ns(*n))) =>
            {
                self.server.bounce(
                    &stanza,
                    StanzaError::new(Condition::Forbidden)
                        .with_text("only the account itself may do this"),
                );
            }
            // §8.5.2.1.3: the server answers IQs to the bare JID for the account.
            None if stanza.is_iq_request() => {
                let server = self.server.clone();
                let account = self.jid.clone();
                tokio::spawn(async move {
                    server
                        .answer_iq(Scope::Account, Some(&account), stanza, false)
                        .await;
                });
            }
            None => {}
        }
    }
}
