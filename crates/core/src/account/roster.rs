//! RFC 6121 §2: roster get, set and remove, roster versioning (§2.6) and
//! roster pushes to the resources that asked for the roster (§2.1.6).

use std::collections::BTreeMap;

use jid::BareJid;
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};
use roost_store::RosterItem;

use super::Account;

/// The account's roster as last read from or written to the store. All
/// roster writes go through the account task, so the cache stays exact.
#[derive(Default)]
pub struct RosterCache {
    loaded: Option<(u64, BTreeMap<BareJid, RosterItem>)>,
}

impl RosterCache {
    /// The cached items; none while the roster was never loaded.
    pub(super) fn items(&self) -> impl Iterator<Item = &RosterItem> {
        self.loaded.iter().flat_map(|(_, m)| m.values())
    }
}

const MAX_NAME: usize = 1024;
const MAX_GROUPS: usize = 64;

pub fn item_element(item: &RosterItem) -> Element {
    Element::bare("item", ns::ROSTER)
        .attr_set("jid", item.jid.as_str())
        .attr_opt("name", item.name.clone())
        .attr_set("subscription", item.subscription.as_str())
        .attr_opt("ask", item.ask.then_some("subscribe"))
        .attr_opt("approved", item.approved.then_some("true"))
        .children_from(
            item.groups
                .iter()
                .map(|g| Element::bare("group", ns::ROSTER).text_node(g.clone())),
        )
}

impl Account {
    pub(super) async fn roster_items(
        &mut self,
    ) -> Result<&BTreeMap<BareJid, RosterItem>, StanzaError> {
        Ok(&self.roster_loaded().await?.1)
    }

    async fn roster_loaded(
        &mut self,
    ) -> Result<&mut (u64, BTreeMap<BareJid, RosterItem>), StanzaError> {
        if self.roster.loaded.is_none() {
            let (ver, items) = self
                .server
                .stores
                .roster
                .roster(&self.jid)
                .await
                .map_err(|e| {
                    tracing::error!(account = %self.jid, error = %e, "roster load failed");
                    StanzaError::internal()
                })?;
            let map = items.into_iter().map(|i| (i.jid.clone(), i)).collect();
            self.roster.loaded = Some((ver, map));
        }
        // Just filled above when it was empty.
        self.roster
            .loaded
            .as_mut()
            .ok_or_else(StanzaError::internal)
    }

    pub(super) async fn roster_item(&mut self, contact: &BareJid) -> Option<RosterItem> {
        self.roster_items().await.ok()?.get(contact).cloned()
    }

    /// Store an item, update the cache and push it to interested resources.
    pub(super) async fn roster_put(&mut self, item: RosterItem) -> Result<(), StanzaError> {
        let max = self.server.config.limits.max_roster_items;
        let items = self.roster_items().await?;
        if items.len() >= max && !items.contains_key(&item.jid) {
            // A roster bomb stops here: changes to existing items go on.
            crate::limits::hit(crate::limits::Limit::RosterItems);
            return Err(StanzaError::new(Condition::ResourceConstraint)
                .with_text(format!("the roster is full ({max} items)")));
        }
        let ver = self
            .server
            .stores
            .roster
            .put_roster_item(&self.jid, &item)
            .await
            .map_err(|e| {
                tracing::error!(account = %self.jid, error = %e, "roster write failed");
                StanzaError::internal()
            })?;
        let el = item_element(&item);
        let cache = self.roster_loaded().await?;
        cache.0 = ver;
        cache.1.insert(item.jid.clone(), item);
        self.roster_push(el, ver);
        Ok(())
    }

    pub(super) async fn roster_delete(&mut self, contact: &BareJid) -> Result<(), StanzaError> {
        let ver = self
            .server
            .stores
            .roster
            .remove_roster_item(&self.jid, contact)
            .await
            .map_err(|e| {
                tracing::error!(account = %self.jid, error = %e, "roster write failed");
                StanzaError::internal()
            })?;
        let cache = self.roster_loaded().await?;
        cache.1.remove(contact);
        if let Some(ver) = ver {
            cache.0 = ver;
            let el = Element::bare("item", ns::ROSTER)
                .attr_set("jid", contact.as_str())
                .attr_set("subscription", "remove");
            self.roster_push(el, ver);
        }
        Ok(())
    }

    /// RFC 6121 §2.1.6: a push goes to every interested resource.
    fn roster_push(&self, item: Element, ver: u64) {
        for (_, entry) in self.resources.iter().filter(|(_, e)| e.interested) {
            let push = Element::bare("iq", ns::CLIENT)
                .attr_set("type", "set")
                .attr_set("id", roost_proto::id::random_token(12))
                .attr_set("to", entry.handle.jid.as_str())
                .child(
                    Element::bare("query", ns::ROSTER)
                        .attr_set("ver", ver.to_string())
                        .child(item.clone()),
                );
            entry.handle.send(push);
        }
    }

    /// Roster IQs from one of the account's sessions.
    pub(super) async fn roster_iq(
        &mut self,
        resource: &str,
        iq: &Stanza,
    ) -> Result<Option<Element>, StanzaError> {
        let query = iq
            .el
            .get_child("query", ns::ROSTER)
            .ok_or_else(|| StanzaError::bad_request("no roster query"))?;
        match iq.type_attr() {
            Some("get") => self.roster_get(resource, query).await,
            Some("set") => self.roster_set(query).await.map(|()| None),
            _ => Err(StanzaError::bad_request("roster IQ must be get or set")),
        }
    }

    async fn roster_get(
        &mut self,
        resource: &str,
        query: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        if let Some(e) = self.resources.get_mut(resource) {
            e.interested = true;
        }
        let (ver, items) = self.roster_loaded().await?;
        let ver = *ver;
        // §2.6.3: an up-to-date cache gets an empty result.
        if query.attr("ver") == Some(ver.to_string().as_str()) {
            return Ok(None);
        }
        Ok(Some(
            Element::bare("query", ns::ROSTER)
                .attr_set("ver", ver.to_string())
                .children_from(items.values().map(item_element)),
        ))
    }

    async fn roster_set(&mut self, query: &Element) -> Result<(), StanzaError> {
        let mut items = query.children().filter(|c| c.is("item", ns::ROSTER));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(StanzaError::bad_request(
                "a roster set has exactly one item",
            ));
        };
        let contact = item
            .attr("jid")
            .and_then(|j| BareJid::new(j).ok())
            .ok_or_else(|| StanzaError::new(Condition::JidMalformed))?;
        if item.attr("subscription") == Some("remove") {
            return self.roster_remove(&contact).await;
        }
        if contact == self.jid {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("your own JID cannot be a roster item"));
        }
        let name = item.attr("name").map(str::to_string);
        if name.as_ref().is_some_and(|n| n.len() > MAX_NAME) {
            return Err(StanzaError::new(Condition::NotAcceptable).with_text("name too long"));
        }
        let mut groups: Vec<String> = Vec::new();
        for g in item.children().filter(|c| c.is("group", ns::ROSTER)) {
            let g = g.text();
            // §2.3.3: empty or duplicate groups are refused.
            if g.is_empty() || g.len() > MAX_NAME {
                return Err(StanzaError::new(Condition::NotAcceptable)
                    .with_text("empty or overlong group name"));
            }
            if groups.contains(&g) {
                return Err(StanzaError::bad_request("duplicate group"));
            }
            groups.push(g);
        }
        if groups.len() > MAX_GROUPS {
            return Err(StanzaError::new(Condition::PolicyViolation).with_text("too many groups"));
        }
        let mut stored = self
            .roster_item(&contact)
            .await
            .unwrap_or_else(|| RosterItem::new(contact.clone()));
        stored.name = name.filter(|n| !n.is_empty());
        stored.groups = groups;
        self.roster_put(stored).await
    }

    /// §2.5.2: removing an item also cancels the subscriptions both ways.
    async fn roster_remove(&mut self, contact: &BareJid) -> Result<(), StanzaError> {
        let Some(item) = self.roster_item(contact).await else {
            return Err(StanzaError::new(Condition::ItemNotFound));
        };
        if item.subscription.has_to() || item.ask {
            self.send_subscription(contact, "unsubscribe");
        }
        if item.subscription.has_from() {
            self.send_subscription(contact, "unsubscribed");
            self.send_unavailable_from_all(contact);
        }
        let _ = self
            .server
            .stores
            .roster
            .remove_pending_in(&self.jid, contact)
            .await;
        self.roster_delete(contact).await
    }
}
