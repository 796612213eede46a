//! XEP-0402: PEP Native Bookmarks, unified (§5.3 "Compatibility") with
//! XEP-0048 bookmarks, which legacy clients keep in XEP-0049 private XML
//! or on the `storage:bookmarks` PEP node (XEP-0411 conversion).
//!
//! The XEP-0402 node `urn:xmpp:bookmarks:1` is the one source of truth:
//! reading the XEP-0048 forms builds them from its items, so XEP-0402
//! changes show at once; writing a XEP-0048 list publishes the changed
//! conferences and retracts the removed ones, notifying as XEP-0402 clients
//! expect (§5.3.2: nothing for unchanged ones). XEP-0048 URL bookmarks,
//! which XEP-0402 cannot hold, are kept beside it in private storage.
//!
//! For other features (account-based MUC joining with `autojoin`),
//! [`bookmarks`] reads an account's bookmarks and [`BookmarkEvents`]
//! announces every change.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use jid::BareJid;
use minidom::Element;
use roost_core::{Module, Protocol, Server};
use roost_proto::{Condition, Elem, StanzaError};
use roost_store::StoreError;
use tokio::sync::broadcast;

use crate::pep::node_config::{Form, NodeConfig, FORM_PUBLISH_OPTIONS};
use crate::pep::{
    load_node, may_read, notify, publish, pubsub_error, store_error, PepService, Request, NS_PUBSUB,
};

/// XEP-0402 namespace and node.
pub const NS: &str = "urn:xmpp:bookmarks:1";
/// XEP-0048 namespace, also its PEP node (XEP-0411).
pub const LEGACY_NS: &str = "storage:bookmarks";
pub const LEGACY_NODE: &str = "storage:bookmarks";
/// XEP-0048 §3.1: the single item of the legacy PEP node.
pub const LEGACY_ITEM: &str = "current";
/// Private storage of the XEP-0048 children XEP-0402 has no place for.
const EXTRA_KEY: &str = "bookmarks:legacy-extra";

/// One bookmarked room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    /// The room (the XEP-0402 item id).
    pub jid: BareJid,
    pub name: Option<String>,
    /// Join the room when the account comes online.
    pub autojoin: bool,
    pub nick: Option<String>,
    pub password: Option<String>,
    /// XEP-0402 `<extensions/>` children, kept as they were published.
    pub extensions: Vec<Element>,
}

fn truthy(v: Option<&str>) -> bool {
    // xs:boolean (XEP-0402 §2, XEP-0048 §2.1).
    matches!(v, Some("true" | "1"))
}

impl Bookmark {
    /// XEP-0402 §2: an item whose id is the room JID and whose payload is
    /// a `<conference/>`; `None` when it is not one.
    pub fn from_item(id: &str, payload: &Element) -> Option<Bookmark> {
        if !payload.is("conference", NS) {
            return None;
        }
        let jid = BareJid::new(id).ok()?;
        Some(Bookmark {
            jid,
            name: payload.attr("name").map(str::to_string),
            autojoin: truthy(payload.attr("autojoin")),
            nick: payload.get_child("nick", NS).map(|n| n.text()),
            password: payload.get_child("password", NS).map(|n| n.text()),
            extensions: payload
                .get_child("extensions", NS)
                .map(|e| e.children().cloned().collect())
                .unwrap_or_default(),
        })
    }

    /// The XEP-0402 payload.
    pub fn to_payload(&self) -> Element {
        let mut c = Element::bare("conference", NS)
            .attr_opt("name", self.name.clone())
            .attr_opt("autojoin", self.autojoin.then_some("true"));
        if let Some(nick) = &self.nick {
            c.append_child(Element::bare("nick", NS).text_node(nick.clone()));
        }
        if let Some(password) = &self.password {
            c.append_child(Element::bare("password", NS).text_node(password.clone()));
        }
        if !self.extensions.is_empty() {
            c.append_child(
                Element::bare("extensions", NS).children_from(self.extensions.iter().cloned()),
            );
        }
        c
    }

    /// XEP-0048 §2.1 `<conference jid name autojoin><nick/><password/>`;
    /// other children become XEP-0402 extensions.
    fn from_legacy(conf: &Element) -> Option<Bookmark> {
        let jid = BareJid::new(conf.attr("jid")?).ok()?;
        Some(Bookmark {
            jid,
            name: conf.attr("name").map(str::to_string),
            autojoin: truthy(conf.attr("autojoin")),
            nick: conf.get_child("nick", LEGACY_NS).map(|n| n.text()),
            password: conf.get_child("password", LEGACY_NS).map(|n| n.text()),
            extensions: conf
                .children()
                .filter(|c| !(c.ns() == LEGACY_NS && matches!(c.name(), "nick" | "password")))
                .cloned()
                .collect(),
        })
    }

    fn to_legacy(&self) -> Element {
        let mut c = Element::bare("conference", LEGACY_NS)
            .attr_set("jid", self.jid.as_str())
            .attr_opt("name", self.name.clone())
            .attr_set("autojoin", if self.autojoin { "true" } else { "false" });
        if let Some(nick) = &self.nick {
            c.append_child(Element::bare("nick", LEGACY_NS).text_node(nick.clone()));
        }
        if let Some(password) = &self.password {
            c.append_child(Element::bare("password", LEGACY_NS).text_node(password.clone()));
        }
        c.children_from(self.extensions.iter().cloned())
    }
}

/// What changed in an account's bookmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookmarkChange {
    /// Added or edited.
    Set(Bookmark),
    Removed(BareJid),
    /// Several may have changed (node deleted, purged or trimmed): read
    /// them again with [`bookmarks`].
    Reset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookmarkEvent {
    pub account: BareJid,
    pub change: BookmarkChange,
}

/// Announces every change of every account's bookmarks, whichever protocol
/// made it (XEP-0402 publish or retract, XEP-0049 or legacy PEP writes,
/// node deletion), after it is stored.
///
/// Get it from [`PepService::bookmark_events`] (one per server, built in
/// `server/modules.rs`) and call [`BookmarkEvents::subscribe`]: a
/// `tokio::sync::broadcast` receiver. A receiver that falls behind gets
/// `RecvError::Lagged` and should then re-read with [`bookmarks`].
#[derive(Clone)]
pub struct BookmarkEvents {
    tx: broadcast::Sender<BookmarkEvent>,
}

impl Default for BookmarkEvents {
    fn default() -> BookmarkEvents {
        BookmarkEvents {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl BookmarkEvents {
    pub fn subscribe(&self) -> broadcast::Receiver<BookmarkEvent> {
        self.tx.subscribe()
    }

    fn send(&self, event: BookmarkEvent) {
        // No receivers is not an error.
        let _ = self.tx.send(event);
    }
}

/// An account's bookmarks in the order they were (last) published.
pub async fn bookmarks(server: &Server, account: &BareJid) -> Result<Vec<Bookmark>, StoreError> {
    Ok(stored(server, account)
        .await?
        .into_iter()
        .map(|(_, b)| b)
        .collect())
}

/// The bookmarks with the item ids they are stored under, oldest first.
async fn stored(server: &Server, account: &BareJid) -> Result<Vec<(String, Bookmark)>, StoreError> {
    let mut items = server.stores.pubsub.items(account, NS, None).await?;
    items.reverse();
    Ok(items
        .into_iter()
        .filter_map(|i| {
            let payload = i.xml.parse::<Element>().ok()?;
            let b = Bookmark::from_item(&i.id, &payload)?;
            Some((i.id, b))
        })
        .collect())
}

/// Announce a change (called by the PEP code after storing it).
pub fn changed(service: &PepService, account: &BareJid, change: BookmarkChange) {
    service.bookmark_events().send(BookmarkEvent {
        account: account.clone(),
        change,
    });
}

/// The XEP-0048 `<storage/>` built from the XEP-0402 items and the kept
/// URL bookmarks.
pub async fn legacy_storage(server: &Server, account: &BareJid) -> Result<Element, StanzaError> {
    let mut storage = Element::bare("storage", LEGACY_NS).children_from(
        stored(server, account)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|(_, b)| b.to_legacy()),
    );
    let extra = server
        .stores
        .private
        .get_private(account, EXTRA_KEY)
        .await
        .map_err(store_error)?;
    if let Some(extra) = extra.and_then(|x| x.parse::<Element>().ok()) {
        for c in extra.children() {
            storage.append_child(c.clone());
        }
    }
    Ok(storage)
}

/// XEP-0411 §3: holders of the legacy PEP node hear of every change, as
/// the single item `current` (to the owner only: the node is private).
pub async fn legacy_notify(server: &Arc<Server>, account: &BareJid) {
    let storage = match legacy_storage(server, account).await {
        Ok(s) => s,
        Err(_) => return,
    };
    let child = Element::bare("items", crate::pep::NS_EVENT)
        .attr_set("node", LEGACY_NODE)
        .child(notify::item_element(LEGACY_ITEM, storage));
    server.route_element(notify::event_message(account, account.as_str(), child));
}

/// Replace the account's bookmarks with a XEP-0048 `<storage/>` (XEP-0402
/// §5.3.2, XEP-0411 §3): publish what is new or changed, retract what is
/// gone, keep the URL bookmarks; then tell legacy PEP clients.
pub async fn replace_from_legacy(req: &Request<'_>, storage: &Element) -> Result<(), StanzaError> {
    let limits = req.limits();
    let mut wanted: Vec<Bookmark> = Vec::new();
    let mut extra: Vec<Element> = Vec::new();
    for c in storage.children() {
        if c.is("conference", LEGACY_NS) {
            match Bookmark::from_legacy(c) {
                // The last entry for a room wins.
                Some(b) => {
                    wanted.retain(|w| w.jid != b.jid);
                    wanted.push(b);
                }
                None => {
                    tracing::debug!(account = %req.owner, "legacy bookmark without a valid jid skipped")
                }
            }
        } else {
            extra.push(c.clone());
        }
    }
    if wanted.len() > limits.max_bookmarks {
        return Err(StanzaError::new(Condition::NotAcceptable)
            .with_text(format!("at most {} bookmarks", limits.max_bookmarks)));
    }
    let current = stored(req.server, req.owner).await.map_err(store_error)?;
    // XEP-0411 §5: converted bookmarks must stay private to the account.
    let private = Form {
        form_type: Some(FORM_PUBLISH_OPTIONS.into()),
        fields: vec![("pubsub#access_model".into(), vec!["whitelist".into()])],
    };
    let publisher = req.publisher();
    for mut b in wanted.iter().cloned() {
        let old = current.iter().find(|(_, c)| c.jid == b.jid);
        if b.extensions.is_empty() {
            // A legacy client cannot know them; XEP-0402 §3.4: preserve.
            if let Some((_, o)) = old {
                b.extensions = o.extensions.clone();
            }
        }
        if old.is_some_and(|(_, o)| *o == b) {
            continue;
        }
        let id = old.map_or_else(|| b.jid.to_string(), |(id, _)| id.clone());
        publish::publish_item(
            req.server,
            req.service,
            req.owner,
            NS,
            Some(&id),
            b.to_payload(),
            Some(&private),
            &publisher,
        )
        .await?;
    }
    let keep: HashSet<&BareJid> = wanted.iter().map(|b| &b.jid).collect();
    let gone: Vec<&(String, Bookmark)> = current
        .iter()
        .filter(|(_, b)| !keep.contains(&b.jid))
        .collect();
    if !gone.is_empty() {
        if let Some(cfg) = load_node(req.server, req.service, req.owner, NS).await? {
            for (id, _) in gone {
                match publish::retract_item(req.server, req.service, req.owner, NS, &cfg, id, true)
                    .await
                {
                    // Retracted meanwhile by another session.
                    Ok(())
                    | Err(StanzaError {
                        condition: Condition::ItemNotFound,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let extra_xml = (!extra.is_empty())
        .then(|| String::from(&Element::bare("storage", LEGACY_NS).children_from(extra)));
    req.server
        .stores
        .private
        .set_private(req.owner, EXTRA_KEY, extra_xml.as_deref())
        .await
        .map_err(store_error)?;
    legacy_notify(req.server, req.owner).await;
    Ok(())
}

/// The legacy node's configuration as far as preconditions go: private.
fn legacy_node_config() -> NodeConfig {
    NodeConfig::defaults_for(NS)
}

/// A publish to the legacy PEP node (XEP-0048 §3.1 over XEP-0163).
pub async fn publish_legacy_node(
    req: &Request<'_>,
    payload: &Element,
    options: Option<&Form>,
) -> Result<(), StanzaError> {
    if !payload.is("storage", LEGACY_NS) {
        return Err(pubsub_error(Condition::BadRequest, "invalid-payload"));
    }
    if let Some(form) = options {
        // Only privacy matters for a view; item counts and last-item
        // delivery of the legacy node are whatever its clients ask.
        let relevant = Form {
            form_type: form.form_type.clone(),
            fields: form
                .fields
                .iter()
                .filter(|(var, _)| {
                    !matches!(
                        var.as_str(),
                        "pubsub#max_items" | "pubsub#send_last_published_item"
                    )
                })
                .cloned()
                .collect(),
        };
        legacy_node_config()
            .meets(&relevant, LEGACY_NODE, req.limits())
            .map_err(|e| publish::precondition_not_met(&e))?;
    }
    replace_from_legacy(req, payload).await
}

/// Items of the legacy PEP node: the one item `current`.
pub async fn legacy_node_items(req: &Request<'_>, verb: &Element) -> roost_core::module::IqResult {
    may_read(&legacy_node_config(), req.relation().await?)?;
    let wants_current = verb
        .children()
        .filter(|c| c.is("item", NS_PUBSUB))
        .filter_map(|c| c.attr("id"))
        .all(|id| id == LEGACY_ITEM);
    let storage = legacy_storage(req.server, req.owner).await?;
    // XEP-0060 §6.5.9.11: a view of nothing is a node that does not exist;
    // inventing an empty item would tell clients bookmarks are stored here.
    if storage.children().next().is_none() && req.node(NS).await?.is_none() {
        return Err(roost_proto::StanzaError::new(
            roost_proto::Condition::ItemNotFound,
        ));
    }
    let mut items = Element::bare("items", NS_PUBSUB).attr_set("node", LEGACY_NODE);
    if wants_current {
        items.append_child(
            Element::bare("item", NS_PUBSUB)
                .attr_set("id", LEGACY_ITEM)
                .child(storage),
        );
    }
    Ok(Some(Element::bare("pubsub", NS_PUBSUB).child(items)))
}

/// The legacy PEP node is a view: it is not configured, retracted from or
/// deleted on its own.
pub fn legacy_node_refusal() -> StanzaError {
    StanzaError::new(Condition::NotAllowed)
        .with_text("storage:bookmarks is a view of urn:xmpp:bookmarks:1; change that node instead")
}

/// Declares the unification; the work is done by the PEP and private XML
/// modules.
pub struct Bookmarks;

#[async_trait]
impl Module for Bookmarks {
    fn name(&self) -> &'static str {
        "bookmarks"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![
            Protocol::new("XEP-0402: PEP Native Bookmarks", "1.2.0"),
            Protocol::new("XEP-0048: Bookmarks", "1.2"),
            Protocol::new("XEP-0411: Bookmarks Conversion", "1.1.0"),
        ]
    }
    fn account_features(&self) -> Vec<&'static str> {
        // XEP-0402 §5.3 / §6, XEP-0411 §2.
        vec![
            "urn:xmpp:bookmarks:1#compat",
            "urn:xmpp:bookmarks:1#compat-pep",
            "urn:xmpp:bookmarks-conversion:0",
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn xep_0402_items_parse_and_serialise() {
        let p = el("<conference xmlns='urn:xmpp:bookmarks:1' name='The Orcard' autojoin='1'>\
            <nick>JC</nick><extensions><state xmlns='http://myclient.example/bookmark/state' minimized='true'/></extensions>\
            </conference>");
        let b = Bookmark::from_item("orchard@conference.shakespeare.lit", &p).unwrap();
        assert_eq!(b.jid.as_str(), "orchard@conference.shakespeare.lit");
        assert!(b.autojoin);
        assert_eq!(b.nick.as_deref(), Some("JC"));
        assert_eq!(b.password, None);
        assert_eq!(b.extensions.len(), 1);
        let again =
            Bookmark::from_item("orchard@conference.shakespeare.lit", &b.to_payload()).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn minimal_conference_is_a_bookmark_and_bad_ones_are_not() {
        let minimal = el("<conference xmlns='urn:xmpp:bookmarks:1'/>");
        let b = Bookmark::from_item("room@muc.example", &minimal).unwrap();
        assert!(!b.autojoin);
        assert_eq!(b.name, None);
        assert!(Bookmark::from_item("room@muc.example/nick", &minimal).is_none());
        assert!(Bookmark::from_item(
            "room@muc.example",
            &el("<conference xmlns='storage:bookmarks'/>")
        )
        .is_none());
    }

    #[tokio::test]
    async fn changes_reach_every_subscriber_of_the_service() {
        let service = PepService::new(crate::pep::Limits::default());
        let mut one = service.bookmark_events().subscribe();
        let mut two = service.bookmark_events().clone().subscribe();
        let account = BareJid::new("juliet@capulet.lit").unwrap();
        let room = BareJid::new("room@muc.example").unwrap();
        changed(&service, &account, BookmarkChange::Removed(room.clone()));
        for rx in [&mut one, &mut two] {
            let ev = rx.recv().await.unwrap();
            assert_eq!(ev.account, account);
            assert_eq!(ev.change, BookmarkChange::Removed(room.clone()));
        }
        // Another server's service is another channel.
        let other = PepService::new(crate::pep::Limits::default());
        let mut three = other.bookmark_events().subscribe();
        changed(&service, &account, BookmarkChange::Reset);
        assert!(three.try_recv().is_err());
    }

    #[test]
    fn legacy_conferences_convert_both_ways() {
        let legacy = el("<conference xmlns='storage:bookmarks' jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'>\
            <nick>Puck</nick><password>pass</password><x xmlns='urn:example'/></conference>");
        let b = Bookmark::from_legacy(&legacy).unwrap();
        assert_eq!(b.name.as_deref(), Some("Council of Oberon"));
        assert_eq!(b.password.as_deref(), Some("pass"));
        assert_eq!(b.extensions.len(), 1, "unknown children become extensions");
        assert_eq!(Bookmark::from_legacy(&b.to_legacy()).unwrap(), b);
        assert!(
            Bookmark::from_legacy(&el("<conference xmlns='storage:bookmarks' name='x'/>"))
                .is_none()
        );
    }
}
