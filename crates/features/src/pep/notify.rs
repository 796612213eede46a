//! XEP-0163 §4.3 generating notifications: one `headline` message from the
//! owner's bare JID (§4.3.1) to the owner and to every contact the node's
//! access model lets read it and who has a presence subscription to the
//! owner (§4.1). The receiving account delivers it to the resources whose
//! XEP-0115 caps carry `<node>+notify` (§4.2, §4.3.2), so nothing here
//! knows about caps.

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use roost_core::account::blocking::blocks;
use roost_core::Server;
use roost_proto::{ns, Elem};

use super::node_config::{AccessModel, NodeConfig, SendLast};
use super::{config_of, may_read, PepService, Relation, NS_EVENT};

/// `<item id>payload</item>` in the event namespace.
pub fn item_element(id: &str, payload: Element) -> Element {
    Element::bare("item", NS_EVENT)
        .attr_set("id", id)
        .child(payload)
}

/// XEP-0060 §7.1.2.1 / §7.2.2.1 / §8.4.2 / §8.5.2: the event message.
pub fn event_message(owner: &BareJid, to: &str, child: Element) -> Element {
    Element::bare("message", ns::CLIENT)
        .attr_set("from", owner.as_str())
        .attr_set("to", to)
        .attr_set("type", "headline")
        .attr_set("id", roost_proto::id::random_token(16))
        .child(Element::bare("event", NS_EVENT).child(child))
}

/// Who hears about changes on a node with this configuration: the owner
/// and, unless it is private, its presence subscribers the owner has not
/// blocked (§4.3.3: never to blocked contacts).
pub async fn recipients(server: &Server, owner: &BareJid, cfg: &NodeConfig) -> Vec<BareJid> {
    let mut to = vec![owner.clone()];
    if cfg.access_model == AccessModel::Whitelist {
        return to;
    }
    let roster = match server.stores.roster.roster(owner).await {
        Ok((_, items)) => items,
        Err(e) => {
            tracing::error!(account = %owner, error = %e, "roster unreadable; notifying the owner only");
            return to;
        }
    };
    let blocklist = blocklist(server, owner).await;
    to.extend(
        roster
            .into_iter()
            .filter(|i| i.subscription.has_from())
            .map(|i| i.jid)
            .filter(|j| {
                let jid = Jid::from(j.clone());
                j != owner && !blocklist.iter().any(|b| blocks(b, &jid))
            }),
    );
    to
}

async fn broadcast(server: &Arc<Server>, owner: &BareJid, cfg: &NodeConfig, child: Element) {
    for to in recipients(server, owner, cfg).await {
        server.route_element(event_message(owner, to.as_str(), child.clone()));
    }
}

/// New or replaced items.
pub async fn items(
    server: &Arc<Server>,
    owner: &BareJid,
    node: &str,
    cfg: &NodeConfig,
    items: Vec<Element>,
) {
    let child = Element::bare("items", NS_EVENT)
        .attr_set("node", node)
        .children_from(items);
    broadcast(server, owner, cfg, child).await;
}

/// §7.2.2.1: `<retract id/>`.
pub async fn retract(
    server: &Arc<Server>,
    owner: &BareJid,
    node: &str,
    cfg: &NodeConfig,
    id: &str,
) {
    let child = Element::bare("items", NS_EVENT)
        .attr_set("node", node)
        .child(Element::bare("retract", NS_EVENT).attr_set("id", id));
    broadcast(server, owner, cfg, child).await;
}

/// §8.4.2: `<delete node/>`, when the node notifies deletions.
pub async fn deleted(server: &Arc<Server>, owner: &BareJid, node: &str, cfg: &NodeConfig) {
    if cfg.notify_delete {
        let child = Element::bare("delete", NS_EVENT).attr_set("node", node);
        broadcast(server, owner, cfg, child).await;
    }
}

/// §8.5.2: `<purge node/>`.
pub async fn purged(server: &Arc<Server>, owner: &BareJid, node: &str, cfg: &NodeConfig) {
    if cfg.notify_retract {
        let child = Element::bare("purge", NS_EVENT).attr_set("node", node);
        broadcast(server, owner, cfg, child).await;
    }
}

/// XEP-0163 §4.3.4: the last item of every node `rel` may read, to one
/// newly available resource, stamped (XEP-0203) with its publication time.
pub async fn send_last_items(
    server: &Arc<Server>,
    service: &PepService,
    owner: &BareJid,
    to: &FullJid,
    rel: Relation,
) {
    let store = &server.stores.pubsub;
    let nodes = match store.nodes(owner).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(account = %owner, error = %e, "pep nodes unreadable");
            return;
        }
    };
    for node in nodes {
        let cfg = config_of(&node, service.limits());
        if cfg.send_last == SendLast::Never || may_read(&cfg, rel).is_err() {
            continue;
        }
        let last = match store.items(owner, &node.name, Some(1)).await {
            Ok(mut items) => items.pop(),
            Err(e) => {
                tracing::error!(account = %owner, error = %e, "pep items unreadable");
                None
            }
        };
        let Some(last) = last else { continue };
        let Ok(payload) = last.xml.parse::<Element>() else {
            tracing::warn!(account = %owner, node = %node.name, "unreadable pep item skipped");
            continue;
        };
        let child = Element::bare("items", NS_EVENT)
            .attr_set("node", node.name.as_str())
            .child(item_element(&last.id, payload));
        let mut msg = event_message(owner, to.as_str(), child);
        let stamp =
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(last.stamp_ms.max(0) as u64);
        msg.append_child(
            Element::bare("delay", ns::DELAY)
                .attr_set("from", owner.as_str())
                .attr_set("stamp", roost_proto::datetime::to_xep82(stamp)),
        );
        server.route_element(msg);
    }
}

/// Whether the owner's XEP-0191 block list blocks `who`.
pub async fn blocked(server: &Server, owner: &BareJid, who: &BareJid) -> bool {
    let who = Jid::from(who.clone());
    blocklist(server, owner)
        .await
        .iter()
        .any(|b| blocks(b, &who))
}

async fn blocklist(server: &Server, owner: &BareJid) -> Vec<Jid> {
    roost_core::account::blocking::stored_blocklist(server, owner).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_matches_bare_jids_and_domains_only() {
        let who = Jid::new("bob@example.org").unwrap();
        assert!(blocks(&Jid::new("bob@example.org").unwrap(), &who));
        assert!(blocks(&Jid::new("example.org").unwrap(), &who));
        assert!(!blocks(&Jid::new("bob@example.org/phone").unwrap(), &who));
        assert!(!blocks(&Jid::new("carol@example.org").unwrap(), &who));
        assert!(!blocks(&Jid::new("example.com").unwrap(), &who));
    }

    #[test]
    fn event_messages_come_from_the_owner_as_headlines() {
        let owner = BareJid::new("juliet@capulet.lit").unwrap();
        let m = event_message(
            &owner,
            "romeo@montague.lit",
            Element::bare("items", NS_EVENT).attr_set("node", "n"),
        );
        assert_eq!(m.attr("from"), Some("juliet@capulet.lit"));
        assert_eq!(m.attr("type"), Some("headline"));
        assert!(m
            .get_child("event", NS_EVENT)
            .unwrap()
            .has_child("items", NS_EVENT));
    }
}
