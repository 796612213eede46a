//! XEP-0191 Blocking Command: the account's block list, stored in the
//! private store, enforced on what arrives for the account and on what its
//! sessions send, and pushed to sessions that asked for it.

use jid::Jid;
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};

use super::Account;

const KEY: &str = "blocklist";

/// XEP-0191 §3.2 (as privacy lists, XEP-0016 §2.1): an item blocks by full
/// JID, bare JID, domain/resource or domain.
pub fn blocks(item: &Jid, other: &Jid) -> bool {
    let same_domain = item.domain() == other.domain();
    match (item.node(), item.resource()) {
        (Some(_), Some(_)) => item == other,
        (Some(_), None) => item.node() == other.node() && same_domain,
        (None, Some(r)) => same_domain && other.node().is_none() && other.resource() == Some(r),
        (None, None) => same_domain,
    }
}

/// The block list as stored, for other components (PEP notifications)
/// that must honour it outside the account task.
pub async fn stored_blocklist(server: &crate::server::Server, owner: &jid::BareJid) -> Vec<Jid> {
    match server.stores.private.get_private(owner, KEY).await {
        Ok(Some(text)) => text.lines().filter_map(|l| Jid::new(l).ok()).collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::error!(account = %owner, error = %e, "block list unreadable");
            Vec::new()
        }
    }
}

pub fn blocked_error() -> StanzaError {
    StanzaError::new(Condition::NotAcceptable)
        .with_app(Element::bare("blocked", ns::BLOCKING_ERRORS))
}

impl Account {
    async fn blocklist(&mut self) -> &Vec<Jid> {
        if self.blocklist.is_none() {
            let stored = self
                .server
                .stores
                .private
                .get_private(&self.jid, KEY)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(account = %self.jid, error = %e, "block list unreadable");
                    None
                });
            let list = stored
                .unwrap_or_default()
                .lines()
                .filter_map(|l| Jid::new(l).ok())
                .collect();
            self.blocklist = Some(list);
        }
        self.blocklist.get_or_insert_with(Vec::new)
    }

    /// Whether `other` is blocked by this account.
    pub(super) async fn is_blocked(&mut self, other: &Jid) -> bool {
        self.blocklist().await.iter().any(|i| blocks(i, other))
    }

    async fn save_blocklist(&mut self, list: Vec<Jid>) -> Result<(), StanzaError> {
        let text: Vec<&str> = list.iter().map(|j| j.as_str()).collect();
        let text = text.join("\n");
        self.server
            .stores
            .private
            .set_private(&self.jid, KEY, (!text.is_empty()).then_some(text.as_str()))
            .await
            .map_err(|e| {
                tracing::error!(account = %self.jid, error = %e, "block list not stored");
                StanzaError::internal()
            })?;
        self.blocklist = Some(list);
        Ok(())
    }

    fn items(query: &Element) -> Result<Vec<Jid>, StanzaError> {
        query
            .children()
            .filter(|c| c.is("item", ns::BLOCKING))
            .map(|i| {
                i.attr("jid")
                    .and_then(|j| Jid::new(j).ok())
                    .ok_or_else(|| StanzaError::new(Condition::JidMalformed))
            })
            .collect()
    }

    pub(super) async fn blocking_iq(
        &mut self,
        resource: &str,
        iq: &Stanza,
    ) -> Result<Option<Element>, StanzaError> {
        let payload = iq
            .el
            .children()
            .next()
            .ok_or_else(|| StanzaError::bad_request("empty"))?;
        match (iq.type_attr(), payload.name()) {
            (Some("get"), "blocklist") => {
                if let Some(e) = self.resources.get_mut(resource) {
                    e.blocklist_interested = true;
                }
                let list = self.blocklist().await.clone();
                Ok(Some(
                    Element::bare("blocklist", ns::BLOCKING).children_from(
                        list.iter().map(|j| {
                            Element::bare("item", ns::BLOCKING).attr_set("jid", j.as_str())
                        }),
                    ),
                ))
            }
            (Some("set"), "block") => {
                let items = Self::items(payload)?;
                if items.is_empty() {
                    return Err(StanzaError::bad_request("block needs at least one item"));
                }
                let mut list = self.blocklist().await.clone();
                for j in &items {
                    if !list.contains(j) {
                        list.push(j.clone());
                    }
                }
                self.save_blocklist(list).await?;
                // §3.3: blocked contacts see us go offline...
                for j in &items {
                    for e in self.resources.available() {
                        let p = Element::bare("presence", ns::CLIENT)
                            .attr_set("from", e.handle.jid.as_str())
                            .attr_set("to", j.as_str())
                            .attr_set("type", "unavailable");
                        self.server.route_element(p);
                    }
                }
                // ...and our sessions see them go: nothing of theirs
                // arrives any more, so what the clients show must end now.
                self.blocked_contacts_go_offline(&items);
                self.push_blocking(payload.clone());
                Ok(None)
            }
            (Some("set"), "unblock") => {
                let items = Self::items(payload)?;
                let mut list = self.blocklist().await.clone();
                if items.is_empty() {
                    list.clear();
                } else {
                    list.retain(|j| !items.contains(j));
                }
                self.save_blocklist(list).await?;
                self.push_blocking(payload.clone());
                Ok(None)
            }
            _ => Err(StanzaError::bad_request("unknown blocking request")),
        }
    }

    /// Unavailable presence from every resource of a newly blocked entity
    /// we saw available (or from the blocked JID itself when we saw none),
    /// to each of our sessions that sent initial presence.
    fn blocked_contacts_go_offline(&mut self, items: &[Jid]) {
        let mut senders: Vec<String> = Vec::new();
        for item in items {
            let seen: Vec<String> = self
                .contact_resources
                .keys()
                .filter(|full| blocks(item, &Jid::from((*full).clone())))
                .map(|full| full.to_string())
                .collect();
            if seen.is_empty() {
                senders.push(item.to_string());
            }
            senders.extend(seen);
        }
        let gone = |full: &jid::FullJid| items.iter().any(|i| blocks(i, &Jid::from(full.clone())));
        self.contact_resources.retain(|full, _| !gone(full));
        for e in self.resources.available() {
            for from in &senders {
                e.handle.send(
                    Element::bare("presence", ns::CLIENT)
                        .attr_set("from", from.as_str())
                        .attr_set("to", e.handle.jid.as_str())
                        .attr_set("type", "unavailable"),
                );
            }
        }
    }

    /// §3.3, §3.4: every session that retrieved the list learns the change.
    fn push_blocking(&self, payload: Element) {
        for (_, e) in self
            .resources
            .iter()
            .filter(|(_, e)| e.blocklist_interested)
        {
            let push = Element::bare("iq", ns::CLIENT)
                .attr_set("type", "set")
                .attr_set("id", roost_proto::id::random_token(12))
                .attr_set("to", e.handle.jid.as_str())
                .child(payload.clone());
            e.handle.send(push);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Jid {
        Jid::new(s).unwrap()
    }

    #[test]
    fn items_match_as_the_xep_describes() {
        assert!(blocks(&j("a@x"), &j("a@x/r")));
        assert!(blocks(&j("a@x"), &j("a@x")));
        assert!(!blocks(&j("a@x/r"), &j("a@x/s")));
        assert!(blocks(&j("x"), &j("b@x/r")));
        assert!(!blocks(&j("x"), &j("b@y")));
        assert!(blocks(&j("x/r"), &j("x/r")));
        assert!(!blocks(&j("x/r"), &j("a@x/r")));
    }
}
