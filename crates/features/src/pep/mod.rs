//! XEP-0163: Personal Eventing Protocol — every account is a virtual
//! XEP-0060 pubsub service whose nodes only the account publishes to, and
//! whose contacts are subscribed through their presence subscription.
//!
//! `publish.rs` (publish, retract), `items.rs` (retrieval and who may
//! read), `owner.rs` (create, configure, delete, purge), `notify.rs`
//! (event notifications and last published items), `node_config.rs` (the
//! configuration forms), `disco.rs` (nodes in XEP-0030). The receiving
//! account filters notifications by `+notify` (roost-core `account/notify`).

pub mod disco;
pub mod items;
pub mod node_config;
pub mod notify;
pub mod owner;
pub mod publish;

use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope, Server};
use roost_proto::{Condition, Elem, Stanza, StanzaError};
use roost_store::{StoreError, StoredNode};

use crate::bookmarks::BookmarkEvents;
use node_config::NodeConfig;

pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

/// XEP-0084 avatar data may be larger than other payloads.
pub const NS_AVATAR_DATA: &str = "urn:xmpp:avatar:data";

/// What one account may store.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest payload, serialised, in bytes (XEP-0060 §7.1.3.5).
    pub max_item_bytes: usize,
    /// Largest payload on the XEP-0084 avatar data node.
    pub max_avatar_bytes: usize,
    /// Most items a node keeps ("max").
    pub max_items: usize,
    /// Most items the XEP-0402 bookmarks node keeps ("max").
    pub max_bookmarks: usize,
    /// Most nodes per account.
    pub max_nodes: usize,
    /// Longest node name and item id, in bytes.
    pub max_name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_item_bytes: 64 * 1024,
            max_avatar_bytes: 256 * 1024,
            max_items: 256,
            max_bookmarks: 1000,
            max_nodes: 256,
            max_name_bytes: 1024,
        }
    }
}

impl Limits {
    /// What "max" items means on `node`.
    pub fn item_cap(&self, node: &str) -> usize {
        if node == crate::bookmarks::NS {
            self.max_bookmarks
        } else {
            self.max_items
        }
    }

    pub fn item_bytes(&self, node: &str) -> usize {
        if node == NS_AVATAR_DATA {
            self.max_avatar_bytes
        } else {
            self.max_item_bytes
        }
    }
}

/// The PEP service of one server: its limits and the channel on which
/// bookmark changes are announced. Shared (cheaply cloned) by the PEP and
/// private XML modules, which both write bookmarks.
#[derive(Clone, Default)]
pub struct PepService {
    inner: Arc<ServiceInner>,
}

#[derive(Default)]
struct ServiceInner {
    limits: Limits,
    bookmarks: BookmarkEvents,
}

impl PepService {
    pub fn new(limits: Limits) -> PepService {
        PepService {
            inner: Arc::new(ServiceInner {
                limits,
                bookmarks: BookmarkEvents::default(),
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Where bookmark changes are announced; see [`BookmarkEvents`].
    pub fn bookmark_events(&self) -> &BookmarkEvents {
        &self.inner.bookmarks
    }
}

/// The requester's standing towards the PEP service it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Owner,
    /// Has a presence subscription to the owner (`from` or `both` in the
    /// owner's roster): XEP-0163 §4.1 auto-subscription.
    Subscriber,
    Stranger,
}

/// One request to an account's PEP service.
pub struct Request<'a> {
    pub server: &'a Arc<Server>,
    pub service: &'a PepService,
    pub owner: &'a BareJid,
    pub from: Option<&'a Jid>,
    pub own: bool,
}

impl Request<'_> {
    pub fn is_owner(&self) -> bool {
        self.own || self.from.is_some_and(|f| f.to_bare() == *self.owner)
    }

    /// XEP-0163 §2.2 "one publisher per node": only the owner publishes,
    /// retracts and configures.
    pub fn require_owner(&self) -> Result<(), StanzaError> {
        if self.is_owner() {
            Ok(())
        } else {
            Err(StanzaError::new(Condition::Forbidden))
        }
    }

    pub async fn relation(&self) -> Result<Relation, StanzaError> {
        if self.is_owner() {
            return Ok(Relation::Owner);
        }
        let Some(from) = self.from else {
            return Ok(Relation::Stranger);
        };
        relation_of(self.server, self.owner, &from.to_bare()).await
    }

    /// Who publishes: the requesting resource.
    pub fn publisher(&self) -> String {
        match self.from {
            Some(f) => f.to_string(),
            None => self.owner.to_string(),
        }
    }

    pub fn limits(&self) -> &Limits {
        self.service.limits()
    }

    /// The node and its configuration, or `None`.
    pub async fn node(&self, node: &str) -> Result<Option<NodeConfig>, StanzaError> {
        load_node(self.server, self.service, self.owner, node).await
    }
}

pub async fn relation_of(
    server: &Server,
    owner: &BareJid,
    who: &BareJid,
) -> Result<Relation, StanzaError> {
    if who == owner {
        return Ok(Relation::Owner);
    }
    let item = server
        .stores
        .roster
        .roster_item(owner, who)
        .await
        .map_err(store_error)?;
    Ok(match item {
        Some(i) if i.subscription.has_from() => Relation::Subscriber,
        _ => Relation::Stranger,
    })
}

pub async fn load_node(
    server: &Server,
    service: &PepService,
    owner: &BareJid,
    node: &str,
) -> Result<Option<NodeConfig>, StanzaError> {
    let stored = server
        .stores
        .pubsub
        .node(owner, node)
        .await
        .map_err(store_error)?;
    Ok(stored.map(|n| config_of(&n, service.limits())))
}

pub fn config_of(node: &StoredNode, limits: &Limits) -> NodeConfig {
    NodeConfig::from_stored(&node.config, &node.name, limits)
}

/// XEP-0060 §6.5.9 (retrieval) and §5.2 (discovery): may this requester
/// read the node? The errors are those of §6.5.9.6–8.
pub fn may_read(cfg: &NodeConfig, rel: Relation) -> Result<(), StanzaError> {
    use node_config::AccessModel::*;
    match (rel, cfg.access_model) {
        (Relation::Owner, _) | (_, Open) => Ok(()),
        (Relation::Subscriber, Presence | Roster) => Ok(()),
        (Relation::Stranger, Presence) => Err(pubsub_error(
            Condition::NotAuthorized,
            "presence-subscription-required",
        )),
        (Relation::Stranger, Roster) => Err(pubsub_error(
            Condition::NotAuthorized,
            "not-in-roster-group",
        )),
        (_, Whitelist) => Err(pubsub_error(Condition::NotAllowed, "closed-node")),
    }
}

/// A stanza error with a pubsub-specific condition (XEP-0060 §7 tables).
pub fn pubsub_error(condition: Condition, app: &str) -> StanzaError {
    StanzaError::new(condition).with_app(Element::bare(app, NS_ERRORS))
}

/// `<unsupported feature='...'/>` with `feature-not-implemented`.
pub fn unsupported(feature: &str) -> StanzaError {
    StanzaError::new(Condition::FeatureNotImplemented)
        .with_app(Element::bare("unsupported", NS_ERRORS).attr_set("feature", feature))
}

pub fn store_error(e: StoreError) -> StanzaError {
    tracing::error!(error = %e, "pep storage failed");
    StanzaError::internal()
}

/// The XEP-0060 node name of a request element (§7.2.3.3: required).
pub fn node_attr(e: &Element, limits: &Limits) -> Result<String, StanzaError> {
    match e.attr("node") {
        Some(n) if !n.is_empty() && n.len() <= limits.max_name_bytes => Ok(n.to_string()),
        Some(n) if !n.is_empty() => {
            Err(StanzaError::new(Condition::NotAcceptable).with_text("node name too long"))
        }
        _ => Err(pubsub_error(Condition::BadRequest, "nodeid-required")),
    }
}

/// The PEP module: XEP-0060 requests to an account's bare JID.
pub struct Pep {
    service: PepService,
}

impl Pep {
    pub fn new(service: PepService) -> Pep {
        Pep { service }
    }
}

/// XEP-0060 §11 features this service supports, advertised on accounts
/// (XEP-0163 §6.1).
const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub",
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
];

/// The feature disco looks for to add the `pubsub/pep` identity.
pub const PEP_FEATURE: &str = "http://jabber.org/protocol/pubsub#publish";

#[async_trait]
impl Module for Pep {
    fn name(&self) -> &'static str {
        "pep"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![
            Protocol::new("XEP-0060: Publish-Subscribe", "1.30.0"),
            Protocol::new("XEP-0163: Personal Eventing Protocol", "1.2.2"),
            // Payload specs the service stores and relays; their versions
            // do not matter to the server.
            Protocol::new(
                "XEP-0223: Persistent Storage of Private Data via PubSub",
                "",
            ),
            Protocol::new("XEP-0084: User Avatar", ""),
            Protocol::new("XEP-0172: User Nickname", ""),
            Protocol::new("XEP-0384: OMEMO Encryption", ""),
        ]
    }
    fn account_features(&self) -> Vec<&'static str> {
        FEATURES.to_vec()
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::new(Scope::Account, NS_PUBSUB, "pubsub"),
            IqRoute::new(Scope::Account, NS_OWNER, "pubsub"),
        ]
    }

    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        let Some(owner) = ctx.account else {
            return Err(StanzaError::service_unavailable());
        };
        let Some(pubsub) = iq.el.children().next() else {
            return Err(StanzaError::bad_request("no pubsub element"));
        };
        let req = Request {
            server: ctx.server,
            service: &self.service,
            owner,
            from: ctx.from,
            own: ctx.own,
        };
        let set = match iq.type_attr() {
            Some("set") => true,
            Some("get") => false,
            _ => return Err(StanzaError::bad_request("get or set")),
        };
        // XEP-0060 §7.1.1, §8.1.3: one verb, which publish-options (with
        // publish) or configure (with create) accompany.
        let owner_ns = pubsub.ns() == NS_OWNER;
        let Some(verb) = pubsub
            .children()
            .find(|c| owner_ns || !matches!(c.name(), "publish-options" | "configure" | "options"))
        else {
            return Err(StanzaError::bad_request("no pubsub verb"));
        };
        if owner_ns {
            return owner::handle(&req, set, verb).await;
        }
        match (set, verb.name()) {
            (true, "publish") => publish::publish(&req, pubsub, verb).await,
            (true, "retract") => publish::retract(&req, verb).await,
            (true, "create") => owner::create(&req, pubsub, verb).await,
            (false, "items") => items::items(&req, verb).await,
            (false, "subscriptions") => owner::own_subscriptions(&req, verb).await,
            (false, "affiliations") => owner::own_affiliations(&req, verb).await,
            // XEP-0163 §4.1: contacts are subscribed by their presence
            // subscription; explicit subscriptions are not kept.
            (true, "subscribe" | "unsubscribe") | (_, "options") => Err(unsupported("subscribe")),
            _ => Err(StanzaError::new(Condition::FeatureNotImplemented)),
        }
    }

    /// XEP-0163 §4.3.4: the account's own new resource gets the last item
    /// of every node (the account task keeps only what it asked for).
    async fn resource_ready(&self, server: &Arc<Server>, account: &BareJid, resource: &FullJid) {
        notify::send_last_items(server, &self.service, account, resource, Relation::Owner).await;
    }

    /// XEP-0163 §4.3.3 (2): a contact's newly available resource gets the
    /// last item of every node it may read.
    async fn contact_available(&self, server: &Arc<Server>, account: &BareJid, contact: &FullJid) {
        let rel = match relation_of(server, account, &contact.to_bare()).await {
            Ok(r) => r,
            Err(_) => return,
        };
        if notify::blocked(server, account, &contact.to_bare()).await {
            return;
        }
        notify::send_last_items(server, &self.service, account, contact, rel).await;
    }
}
