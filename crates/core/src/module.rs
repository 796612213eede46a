//! The module API: a feature declares the specs it implements, its disco
//! features and the IQs it answers; the registry is built once at start from
//! the ordered list in `server/modules.rs`, and a duplicate IQ key is a
//! start-up error. Whatever no module claims gets `service-unavailable`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{Stanza, StanzaError};

use crate::server::Server;

/// A spec a module implements, for `docs/xeps.md` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// "XEP-0199: XMPP Ping", "RFC 6121: Instant Messaging and Presence".
    pub spec: &'static str,
    /// The version of the spec implemented, when it has one.
    pub version: &'static str,
}

impl Protocol {
    pub const fn new(spec: &'static str, version: &'static str) -> Protocol {
        Protocol { spec, version }
    }
}

/// Where an IQ is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// To the server's domain (or with no `to`).
    Server,
    /// To an account's bare JID, answered by the server on its behalf.
    Account,
    /// Before authentication, on the stream itself (XEP-0077 registration).
    PreAuth,
}

/// An IQ a module answers: scope, payload namespace and element name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IqRoute {
    pub scope: Scope,
    pub ns: &'static str,
    pub name: &'static str,
}

impl IqRoute {
    pub const fn new(scope: Scope, ns: &'static str, name: &'static str) -> IqRoute {
        IqRoute { scope, ns, name }
    }
}

/// What a handler knows about the request.
pub struct IqContext<'a> {
    pub server: &'a Arc<Server>,
    /// Where the IQ was dispatched: an IQ without `to` from a session is
    /// `Scope::Account` (RFC 6120 §10.3.3) whenever an account handler exists.
    pub scope: Scope,
    /// The requesting entity (full JID for local sessions; absent pre-auth).
    pub from: Option<&'a Jid>,
    /// For `Scope::Account`: the account addressed.
    pub account: Option<&'a BareJid>,
    /// The requester is the addressed account itself (or, for
    /// `Scope::Server`, an authenticated local user).
    pub own: bool,
    /// Pre-auth only: the peer connects from a loopback address.
    pub peer_is_loopback: bool,
}

/// A handler's answer: the payload of the result (or none), or an error.
pub type IqResult = Result<Option<Element>, StanzaError>;

#[async_trait]
pub trait Module: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The specs this module implements.
    fn protocols(&self) -> Vec<Protocol> {
        Vec::new()
    }
    /// Disco#info features on the server's domain.
    fn server_features(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Disco#info features on account JIDs.
    fn account_features(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// XEP-0128 data forms in the server's disco#info (e.g. XEP-0157).
    fn server_info_forms(&self) -> Vec<Element> {
        Vec::new()
    }
    /// Disco#info or #items of a node on the server's domain (XEP-0050
    /// commands); `None` when the node is not this module's.
    async fn server_node(
        &self,
        _ctx: &IqContext<'_>,
        _node: &str,
        _items: bool,
    ) -> Option<IqResult> {
        None
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        Vec::new()
    }
    async fn handle_iq(&self, _ctx: IqContext<'_>, _iq: &Stanza) -> IqResult {
        Err(StanzaError::service_unavailable())
    }
    /// One of `account`'s resources is available and its features (XEP-0115)
    /// are known; PEP sends it the account's own last items here.
    async fn resource_ready(
        &self,
        _server: &Arc<Server>,
        _account: &BareJid,
        _resource: &jid::FullJid,
    ) {
    }
    /// Whether `session_available` does anything: modules that say no cost
    /// no task at a login.
    fn wants_session_available(&self) -> bool {
        false
    }
    /// A session of `account` sent its initial presence (RFC 6121 §4.2).
    async fn session_available(
        &self,
        _server: &Arc<Server>,
        _account: &BareJid,
        _resource: &jid::FullJid,
    ) {
    }
    /// Whether `account_unavailable` does anything.
    fn wants_account_unavailable(&self) -> bool {
        false
    }
    /// The last available session of `account` went unavailable (or
    /// ended), with the status text of its unavailable presence.
    async fn account_unavailable(
        &self,
        _server: &Arc<Server>,
        _account: &BareJid,
        _status: Option<String>,
    ) {
    }
    /// A contact's resource that may see `account`'s presence came online.
    async fn contact_available(
        &self,
        _server: &Arc<Server>,
        _account: &BareJid,
        _contact: &jid::FullJid,
    ) {
    }
}

#[derive(Debug, thiserror::Error)]
#[error("modules {first} and {second} both claim IQ {ns} {name} ({scope:?})")]
pub struct DuplicateRoute {
    pub first: &'static str,
    pub second: &'static str,
    pub ns: &'static str,
    pub name: &'static str,
    pub scope: Scope,
}

/// scope -> payload namespace -> payload element name -> module
type RouteTable = HashMap<Scope, HashMap<&'static str, HashMap<&'static str, Arc<dyn Module>>>>;

/// The modules of one server, in their declared order.
#[derive(Default)]
pub struct Registry {
    modules: Vec<Arc<dyn Module>>,
    routes: RouteTable,
}

impl Registry {
    pub fn new(modules: Vec<Arc<dyn Module>>) -> Result<Registry, DuplicateRoute> {
        let mut routes = RouteTable::new();
        for m in &modules {
            for r in m.iq_routes() {
                let by_name = routes.entry(r.scope).or_default().entry(r.ns).or_default();
                if let Some(prev) = by_name.insert(r.name, m.clone()) {
                    return Err(DuplicateRoute {
                        first: prev.name(),
                        second: m.name(),
                        ns: r.ns,
                        name: r.name,
                        scope: r.scope,
                    });
                }
            }
        }
        Ok(Registry { modules, routes })
    }

    pub fn modules(&self) -> &[Arc<dyn Module>] {
        &self.modules
    }

    /// The module answering an IQ with this payload in this scope.
    pub fn iq_handler(&self, scope: Scope, payload: &Element) -> Option<Arc<dyn Module>> {
        self.routes
            .get(&scope)?
            .get(payload.ns().as_str())?
            .get(payload.name())
            .cloned()
    }

    pub fn server_features(&self) -> Vec<&'static str> {
        let mut f: Vec<_> = self
            .modules
            .iter()
            .flat_map(|m| m.server_features())
            .collect();
        f.sort_unstable();
        f.dedup();
        f
    }

    /// The module that answers for a node on the server's domain.
    pub async fn server_node(
        &self,
        ctx: &IqContext<'_>,
        node: &str,
        items: bool,
    ) -> Option<IqResult> {
        for m in &self.modules {
            if let Some(r) = m.server_node(ctx, node, items).await {
                return Some(r);
            }
        }
        None
    }

    pub fn server_info_forms(&self) -> Vec<Element> {
        self.modules
            .iter()
            .flat_map(|m| m.server_info_forms())
            .collect()
    }

    pub fn account_features(&self) -> Vec<&'static str> {
        let mut f: Vec<_> = self
            .modules
            .iter()
            .flat_map(|m| m.account_features())
            .collect();
        f.sort_unstable();
        f.dedup();
        f
    }
}
