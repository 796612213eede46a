//! RFC 6121 §4: presence broadcast to subscribers and own resources,
//! probes at initial presence, directed presence remembered and undone,
//! and unavailable presence when a session ends however it ends.

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{ns, Elem, ElementExt, Stanza};

use super::resources::{ResourceEntry, StoredPresence};
use super::subscription::is_subscription_type;
use super::Account;

fn priority_of(presence: &Element) -> i8 {
    presence
        .child_text("priority", ns::CLIENT)
        .and_then(|p| p.trim().parse::<i8>().ok())
        .unwrap_or(0)
}

impl Account {
    pub(super) async fn outbound_presence(&mut self, resource: &str, stanza: Stanza) {
        let kind = stanza.type_attr().map(str::to_string);
        if is_subscription_type(kind.as_deref()) {
            if let Some(to) = &stanza.to {
                let done = self
                    .outbound_subscription(kind.as_deref().unwrap_or_default(), to.to_bare())
                    .await;
                if let (Err(e), Some(entry)) = (done, self.resources.get(resource)) {
                    // A full roster (limits.max_roster_items): the request
                    // is not sent, and the client learns why.
                    entry.handle.send(e.reply_to(&stanza.el));
                }
            }
            return;
        }
        match (&stanza.to, kind.as_deref()) {
            // Broadcast presence: no `to`, or addressed to our own bare JID.
            (None, None) => self.broadcast_available(resource, stanza.el).await,
            (None, Some("unavailable")) => self.broadcast_unavailable(resource, Some(stanza.el)),
            (Some(to), _) if to.to_bare() == self.jid && to.resource().is_none() => {
                match kind.as_deref() {
                    None => self.broadcast_available(resource, stanza.el).await,
                    Some("unavailable") => self.broadcast_unavailable(resource, Some(stanza.el)),
                    _ => {}
                }
            }
            (Some(to), None) | (Some(to), Some("unavailable")) => {
                // §4.6: directed presence, remembered so that it can be undone.
                let to = to.clone();
                if let Some(e) = self.resources.get_mut(resource) {
                    if kind.is_none() {
                        e.directed.insert(to.clone());
                    } else {
                        e.directed.remove(&to);
                    }
                }
                self.server.route_element(stanza.el);
            }
            (Some(_), Some("probe")) => self.server.route_element(stanza.el),
            // Errors and unknown types from clients are dropped.
            _ => {}
        }
    }

    async fn broadcast_available(&mut self, resource: &str, mut el: Element) {
        let Some(entry) = self.resources.get_mut(resource) else {
            return;
        };
        let initial = entry.presence.is_none();
        el.unset("to");
        el.set("from", entry.handle.jid.as_str());
        entry.priority = priority_of(&el);
        entry.presence = Some(StoredPresence::new(&el));
        self.caps_from_presence(resource, &el);
        let contacts = self.subscribers().await;
        for contact in &contacts {
            let mut p = el.clone();
            p.set("to", contact.as_str());
            self.server.route_element(p);
        }
        // §4.2.2: own available resources get it too, the sender included.
        for e in self.resources.available() {
            let mut p = el.clone();
            p.set("to", e.handle.jid.as_str());
            e.handle.send(p);
        }
        if initial {
            // §4.3: probe the contacts we are subscribed to.
            for contact in self.subscriptions().await {
                let probe = Element::bare("presence", ns::CLIENT)
                    .attr_set("from", self.jid.as_str())
                    .attr_set("to", contact.as_str())
                    .attr_set("type", "probe");
                self.server.route_element(probe);
            }
            // Other available resources of our own account (§4.2.2).
            for (_, other) in self.resources.iter() {
                if other.handle.jid.resource().as_str() == resource {
                    continue;
                }
                if let Some(mut p) = other.presence.as_ref().and_then(StoredPresence::element) {
                    if let Some(me) = self.resources.get(resource) {
                        p.set("to", me.handle.jid.as_str());
                        me.handle.send(p);
                    }
                }
            }
            self.redeliver_pending(resource).await;
            self.deliver_offline(resource).await;
            if let Some(me) = self.resources.get(resource) {
                let jid = me.handle.jid.clone();
                self.session_available(&jid);
            }
        }
    }

    /// Unavailable broadcast for a resource, explicit or because its
    /// session ended; `el` carries the client's status, if any.
    pub(super) fn broadcast_unavailable(&mut self, resource: &str, el: Option<Element>) {
        let Some(entry) = self.resources.get_mut(resource) else {
            return;
        };
        let was_available = entry.presence.take().is_some();
        let directed: Vec<Jid> = entry.directed.drain().collect();
        let from = entry.handle.jid.clone();
        let mut el = el.unwrap_or_else(|| Element::bare("presence", ns::CLIENT));
        el.set("type", "unavailable");
        el.set("from", from.as_str());
        el.unset("to");
        self.send_unavailable(el, was_available, directed);
    }

    fn send_unavailable(&self, el: Element, was_available: bool, directed: Vec<Jid>) {
        if was_available && self.resources.available().next().is_none() {
            self.account_unavailable(el.child_text("status", ns::CLIENT));
        }
        let cached: Vec<BareJid> = self.cached_subscribers();
        let mut sent: Vec<Jid> = Vec::new();
        if was_available {
            for contact in cached {
                let mut p = el.clone();
                p.set("to", contact.as_str());
                self.server.route_element(p);
                sent.push(Jid::from(contact));
            }
            for e in self.resources.available() {
                let mut p = el.clone();
                p.set("to", e.handle.jid.as_str());
                e.handle.send(p);
            }
        }
        for to in directed {
            if sent.iter().any(|s| s == &to) {
                continue;
            }
            let mut p = el.clone();
            p.set("to", to.as_str());
            self.server.route_element(p);
        }
    }

    /// A session is gone: it counts as unavailable (§4.5.2).
    pub(super) async fn session_gone(&mut self, entry: ResourceEntry) {
        let _ = self.roster_items().await;
        let was_available = entry.presence.is_some();
        let el = Element::bare("presence", ns::CLIENT)
            .attr_set("type", "unavailable")
            .attr_set("from", entry.handle.jid.as_str());
        self.send_unavailable(el, was_available, entry.directed.into_iter().collect());
    }

    /// A resource bound on a cluster node that died together with the
    /// account's previous owner: this task never had it, so all it can do
    /// is tell the contacts with a subscription that it is gone.
    pub(super) async fn vanished(&mut self, resource: &str) {
        let _ = self.roster_items().await;
        let from = format!("{}/{resource}", self.jid);
        let el = Element::bare("presence", ns::CLIENT)
            .attr_set("type", "unavailable")
            .attr_set("from", from);
        self.send_unavailable(el, true, Vec::new());
    }

    /// Contacts that receive our presence (subscription from/both).
    async fn subscribers(&mut self) -> Vec<BareJid> {
        let _ = self.roster_items().await;
        self.cached_subscribers()
    }

    fn cached_subscribers(&self) -> Vec<BareJid> {
        self.roster
            .items()
            .filter(|i| i.subscription.has_from())
            .map(|i| i.jid.clone())
            .collect()
    }

    /// Contacts whose presence we receive (subscription to/both).
    async fn subscriptions(&mut self) -> Vec<BareJid> {
        match self.roster_items().await {
            Ok(items) => items
                .values()
                .filter(|i| i.subscription.has_to())
                .map(|i| i.jid.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Inbound presence (not subscription-related) for this account.
    pub(super) async fn inbound_presence(&mut self, stanza: Stanza) {
        let kind = stanza.type_attr().map(str::to_string);
        if is_subscription_type(kind.as_deref()) {
            return self.inbound_subscription(stanza).await;
        }
        if kind.as_deref() == Some("probe") {
            return self.answer_probe(stanza).await;
        }
        if kind.as_deref() == Some("error")
            && stanza.to.as_ref().is_some_and(|t| t.resource().is_none())
        {
            return self.deliver_to_available(&stanza.el);
        }
        self.track_contact(&stanza, kind.as_deref()).await;
        match stanza.to.as_ref().and_then(|t| t.resource()) {
            // §8.5.2.1.2 / §8.5.3.2.3: to a full JID only that resource, if bound.
            Some(res) => {
                if let Some(e) = self.resources.get(res.as_str()) {
                    e.handle.send(stanza.el);
                }
            }
            None => self.deliver_to_available(&stanza.el),
        }
    }

    /// Remember which contact resources are online; a newly seen one that
    /// may see our presence is offered our PEP data (XEP-0163 §6.2).
    async fn track_contact(&mut self, stanza: &Stanza, kind: Option<&str>) {
        let Some(Ok(full)) = stanza.from.clone().map(|f| f.try_into_full()) else {
            return;
        };
        if full.to_bare() == self.jid {
            return;
        }
        match kind {
            None => {
                let offered = self.contact_resources.get(&full).copied();
                if offered == Some(true) {
                    return;
                }
                if offered.is_none() && self.contact_resources.len() >= 10_000 {
                    return;
                }
                let allowed = self
                    .roster_item(&full.to_bare())
                    .await
                    .is_some_and(|i| i.subscription.has_from());
                self.contact_resources.insert(full.clone(), allowed);
                if allowed {
                    self.contact_available(full);
                }
            }
            Some("unavailable") => {
                self.contact_resources.remove(&full);
            }
            _ => {}
        }
    }

    /// §4.3.2: answer a probe with the presence of every available resource,
    /// if the prober is subscribed to us.
    async fn answer_probe(&mut self, stanza: Stanza) {
        let Some(prober) = stanza.from.as_ref().map(Jid::to_bare) else {
            return;
        };
        let allowed = prober == self.jid
            || self
                .roster_item(&prober)
                .await
                .is_some_and(|i| i.subscription.has_from());
        if !allowed {
            return;
        }
        let to = stanza
            .from
            .clone()
            .map(|j| j.to_string())
            .unwrap_or_default();
        for e in self.resources.available() {
            if let Some(mut p) = e.presence.as_ref().and_then(StoredPresence::element) {
                p.set("to", to.as_str());
                self.server.route_element(p);
            }
        }
    }

    /// Send a copy to every available resource, addressed to its full JID.
    pub(super) fn deliver_to_available(&self, el: &Element) {
        for e in self.resources.available() {
            let mut p = el.clone();
            p.set("to", e.handle.jid.as_str());
            e.handle.send(p);
        }
    }
}
