//! XEP-0060: Publish-Subscribe — the service on its own domain. The router hands it every
//! stanza for that domain; one task takes them in order from a bounded
//! queue, so that the read-check-write of one request never interleaves
//! with another's. Requests read the node's state from the store each
//! time (nothing is cached), so removals made elsewhere (an account
//! deleted with its subscriptions) are seen at once. What a request sends
//! (reply first, then notifications) leaves through the server's router.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use jid::{BareJid, Jid};
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::router::Service;
use roost_core::server::{iq_reply, until_shutdown};
use roost_core::Server;
use roost_proto::{ns as core_ns, Condition, Stanza, StanzaError, StanzaKind};
use roost_store::{PubsubStore, RosterStore, Stores};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::config::PubsubConfig;
use crate::node::config_form::Limits;
use crate::node::{configure, create, delete, purge};
use crate::request::Request;
use crate::{
    affiliation, authorize, disco, items, notify, ns, options, publish, retract, subscribe,
    subscription,
};

/// Stanzas waiting for the service; more are refused with
/// `resource-constraint`.
const QUEUE: usize = 1024;

/// What the use cases share.
pub(crate) struct Shared {
    pub config: PubsubConfig,
    pub limits: Limits,
    /// The service's JID: also the owner key of its nodes in the store.
    pub jid: BareJid,
    /// The server's domain: its accounts are the local users.
    pub host: String,
    pub admins: Vec<BareJid>,
    pub store: Arc<dyn PubsubStore>,
    pub roster: Arc<dyn RosterStore>,
    server: OnceLock<Weak<Server>>,
    /// What the stanza being handled sends, in order, after its reply.
    outgoing: Mutex<Vec<Element>>,
}

impl Shared {
    /// Queue a stanza to send once the current request is answered.
    pub(crate) fn send(&self, el: Element) {
        self.outgoing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(el);
    }

    fn flush(&self) {
        let out = std::mem::take(&mut *self.outgoing.lock().unwrap_or_else(|p| p.into_inner()));
        let Some(server) = self.server.get().and_then(Weak::upgrade) else {
            return;
        };
        for el in out {
            server.route_element(el);
        }
    }
}

/// The publish-subscribe service, registered with the router for its
/// domain.
pub struct PubsubService {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Stanza>,
    inbox: Mutex<Option<mpsc::Receiver<Stanza>>>,
}

impl PubsubService {
    /// The service for a server serving `host`, with its administrators
    /// (`creators = "admins"`).
    pub fn open(
        config: PubsubConfig,
        host: &str,
        admins: &[String],
        stores: &Stores,
    ) -> Result<Arc<PubsubService>, String> {
        let domain = config.service_domain(host);
        let jid = BareJid::new(&domain).map_err(|e| format!("pubsub.domain {domain:?}: {e}"))?;
        let admins = admins.iter().filter_map(|a| BareJid::new(a).ok()).collect();
        let (queue, inbox) = mpsc::channel(QUEUE);
        Ok(Arc::new(PubsubService {
            shared: Arc::new(Shared {
                limits: Limits {
                    default_max_items: config.default_max_items,
                    max_items: config.max_items,
                    max_payload_size: config.max_payload_size,
                },
                config,
                jid,
                host: host.to_string(),
                admins,
                store: stores.pubsub.clone(),
                roster: stores.roster.clone(),
                server: OnceLock::new(),
                outgoing: Mutex::new(Vec::new()),
            }),
            queue,
            inbox: Mutex::new(Some(inbox)),
        }))
    }

    /// The domain the service answers on.
    pub fn domain(&self) -> &str {
        self.shared.jid.as_str()
    }

    /// Start the task on the first stanza, when the server is known.
    fn start(&self, server: &Arc<Server>) {
        let Some(inbox) = self.inbox.lock().ok().and_then(|mut i| i.take()) else {
            return;
        };
        let _ = self.shared.server.set(Arc::downgrade(server));
        let shared = self.shared.clone();
        let mut shutdown = server.shutdown_signal();
        tokio::spawn(async move {
            let mut inbox = inbox;
            loop {
                tokio::select! {
                    stanza = inbox.recv() => match stanza {
                        Some(stanza) => {
                            shared.handle(stanza).await;
                            shared.flush();
                        }
                        None => return,
                    },
                    _ = until_shutdown(&mut shutdown) => return,
                }
            }
        });
    }
}

impl Service for PubsubService {
    fn deliver(&self, server: &Arc<Server>, stanza: Stanza) {
        self.start(server);
        match self.queue.try_send(stanza) {
            Ok(()) => {}
            Err(TrySendError::Full(stanza)) => {
                tracing::warn!("pubsub queue full; stanza refused");
                server.bounce(
                    &stanza,
                    StanzaError::new(Condition::ResourceConstraint)
                        .with_text("the service is overloaded"),
                );
            }
            Err(TrySendError::Closed(stanza)) => {
                server.bounce(&stanza, StanzaError::service_unavailable());
            }
        }
    }

    fn name(&self) -> Option<String> {
        Some(self.shared.config.name.clone())
    }
}

impl Shared {
    async fn handle(&self, stanza: Stanza) {
        let Some(from) = stanza.from.clone() else {
            return;
        };
        match stanza.kind {
            StanzaKind::Iq if stanza.is_iq_request() => {
                let reply = iq_reply(&stanza.el, self.answer_iq(&stanza, from).await);
                // The reply goes before what the request caused.
                self.outgoing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(0, reply);
            }
            StanzaKind::Message if !stanza.is_error() => {
                if authorize::is_answer(&stanza.el) {
                    authorize::answer(self, &stanza).await;
                } else {
                    self.send(StanzaError::service_unavailable().reply_to(&stanza.el));
                }
            }
            StanzaKind::Message => {
                if let Err(e) = notify::bounced(self, &stanza).await {
                    tracing::debug!(error = %e, "bounced notification not handled");
                }
            }
            // Presence and IQ responses need no answer.
            _ => {}
        }
    }

    async fn answer_iq(&self, stanza: &Stanza, from: Jid) -> IqResult {
        let Some(payload) = stanza.el.children().next() else {
            return Err(StanzaError::bad_request("empty IQ"));
        };
        let is_set = stanza.type_attr() == Some("set");
        let req = Request {
            shared: self,
            requester: from.to_bare(),
            from,
        };
        match (payload.ns().as_str(), payload.name(), is_set) {
            (core_ns::DISCO_INFO, "query", false) => disco::info(&req, payload).await,
            (core_ns::DISCO_ITEMS, "query", false) => disco::items(&req, payload).await,
            (core_ns::PING, "ping", false) => Ok(None),
            (ns::PUBSUB, "pubsub", _) => pubsub_request(&req, payload, is_set).await,
            (ns::OWNER, "pubsub", _) => owner_request(&req, payload, is_set).await,
            _ => Err(StanzaError::service_unavailable()),
        }
    }
}

/// The first child of `<pubsub/>` names the use case; `<configure/>`,
/// `<options/>` and `<publish-options/>` may follow it.
fn verb(pubsub: &Element) -> Result<&Element, StanzaError> {
    pubsub
        .children()
        .next()
        .ok_or_else(|| StanzaError::bad_request("empty pubsub request"))
}

async fn pubsub_request(req: &Request<'_>, pubsub: &Element, is_set: bool) -> IqResult {
    let verb = verb(pubsub)?;
    match (verb.name(), is_set) {
        ("create", true) => create::create(req, pubsub, verb).await,
        ("publish", true) => publish::publish(req, pubsub, verb).await,
        ("retract", true) => retract::retract(req, verb).await,
        ("subscribe", true) => subscribe::subscribe(req, pubsub, verb).await,
        ("unsubscribe", true) => subscribe::unsubscribe(req, verb).await,
        ("options", false) => options::get(req, verb).await,
        ("options", true) => options::set(req, verb).await,
        ("default", false) => options::default(req, verb).await,
        ("items", false) => items::retrieve(req, verb).await,
        ("subscriptions", false) => subscription::own(req, verb).await,
        ("affiliations", false) => affiliation::own_affiliations(req, verb).await,
        _ => Err(StanzaError::bad_request("unknown pubsub request")),
    }
}

async fn owner_request(req: &Request<'_>, pubsub: &Element, is_set: bool) -> IqResult {
    let verb = verb(pubsub)?;
    match (verb.name(), is_set) {
        ("configure", false) => configure::form(req, verb).await,
        ("configure", true) => configure::submit(req, verb).await,
        ("default", false) => configure::default(req).await,
        ("delete", true) => delete::delete(req, verb).await,
        ("purge", true) => purge::purge(req, verb).await,
        ("subscriptions", false) => subscription::list(req, verb).await,
        ("subscriptions", true) => subscription::modify(req, verb).await,
        ("affiliations", false) => affiliation::list(req, verb).await,
        ("affiliations", true) => affiliation::modify(req, verb).await,
        _ => Err(StanzaError::bad_request("unknown pubsub#owner request")),
    }
}
