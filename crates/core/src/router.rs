//! The router (RFC 6120 §10): `JID -> handle` maps only, and the decision
//! where a stanza goes: the server itself, a local account's task, a
//! service on its own domain (MUC), or another server (`s2s`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jid::BareJid;
use roost_proto::{Condition, Stanza, StanzaError, StanzaKind};

use crate::account::{Account, AccountHandle, AccountMsg};
use crate::module::Scope;
use crate::server::Server;

/// A service living on its own domain, such as the MUC service.
pub trait Service: Send + Sync {
    fn deliver(&self, server: &Arc<Server>, stanza: Stanza);
    /// The name shown for the service in the server's disco#items.
    fn name(&self) -> Option<String> {
        None
    }
    /// Also the JIDs of subdomains of the service's domain (components).
    fn covers_subdomains(&self) -> bool {
        false
    }
    /// In a cluster, each of the service's addresses (a room) has one
    /// owner node, and stanzas to it go there (MUC, publish-subscribe).
    fn owned_per_address(&self) -> bool {
        false
    }
    /// An external component: it lives on the node it connected to.
    fn is_component(&self) -> bool {
        false
    }
    /// Whether it can take stanzas on this node now (a component: it is
    /// connected here).
    fn available_here(&self) -> bool {
        true
    }
    /// Stop the tasks of addresses `keep` says are not this node's any
    /// more (their state is in storage; the new owner starts them).
    fn release(&self, _keep: &dyn Fn(&str) -> bool) {}
    /// Addresses whose task runs here (rooms), for `roost cluster status`.
    fn running(&self) -> Vec<String> {
        Vec::new()
    }
}

pub struct Router {
    domain: String,
    accounts: Mutex<HashMap<BareJid, AccountHandle>>,
    generation: AtomicU64,
    services: RwLock<HashMap<String, Arc<dyn Service>>>,
}

impl Router {
    pub fn new(domain: &str) -> Router {
        Router {
            domain: domain.to_string(),
            accounts: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(1),
            services: RwLock::new(HashMap::new()),
        }
    }

    pub fn add_service(&self, domain: &str, service: Arc<dyn Service>) {
        if let Ok(mut s) = self.services.write() {
            s.insert(domain.to_string(), service);
        }
    }

    /// The service for `domain`: its own, or that of the nearest parent
    /// domain whose service covers subdomains.
    fn service(&self, domain: &str) -> Option<Arc<dyn Service>> {
        let services = self.services.read().ok()?;
        if let Some(s) = services.get(domain) {
            return Some(s.clone());
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(s) = services.get(parent).filter(|s| s.covers_subdomains()) {
                return Some(s.clone());
            }
            rest = parent;
        }
        None
    }

    pub fn has_service(&self, domain: &str) -> bool {
        self.service(domain).is_some()
    }

    /// The services' domains and names, sorted by domain (XEP-0030 items of
    /// the server).
    pub fn services(&self) -> Vec<(String, Option<String>)> {
        let mut list: Vec<(String, Option<String>)> = self
            .services
            .read()
            .map(|s| s.iter().map(|(d, svc)| (d.clone(), svc.name())).collect())
            .unwrap_or_default();
        list.sort();
        list
    }

    /// The task of a local account, started if it is not running.
    pub(crate) fn account(&self, server: &Arc<Server>, jid: &BareJid) -> AccountHandle {
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(jid) {
            if !h.tx.is_closed() {
                return h.clone();
            }
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let handle = Account::spawn(server, jid.clone(), generation);
        map.insert(jid.clone(), handle.clone());
        handle
    }

    /// The task of a local account if it is running (none is started).
    pub(crate) fn running_account(&self, jid: &BareJid) -> Option<AccountHandle> {
        let map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        map.get(jid).filter(|h| !h.tx.is_closed()).cloned()
    }

    /// The domains of the external components connected to this node.
    pub fn component_domains(&self) -> Vec<String> {
        let mut list: Vec<String> = self
            .services
            .read()
            .map(|s| {
                s.iter()
                    .filter(|(_, svc)| svc.is_component() && svc.available_here())
                    .map(|(d, _)| d.clone())
                    .collect()
            })
            .unwrap_or_default();
        list.sort();
        list
    }

    /// Let the services stop what this node no longer owns.
    pub(crate) fn release_services(&self, keep: &dyn Fn(&str) -> bool) {
        let services: Vec<Arc<dyn Service>> = self
            .services
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for s in services.iter().filter(|s| s.owned_per_address()) {
            s.release(keep);
        }
    }

    /// The rooms (and other addresses) whose tasks run on this node.
    pub fn owned_rooms(&self) -> Vec<String> {
        let services: Vec<Arc<dyn Service>> = self
            .services
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        let mut list: Vec<String> = services.iter().flat_map(|s| s.running()).collect();
        list.sort();
        list.dedup();
        list
    }

    /// Called by an idle account task; `false` if a newer task replaced it.
    pub(crate) fn remove_account(&self, jid: &BareJid, generation: u64) -> bool {
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(jid) {
            Some(h) if h.generation == generation => {
                map.remove(jid);
                true
            }
            _ => false,
        }
    }

    /// Wait until every account task has handled what was queued before.
    pub async fn flush_accounts(&self) {
        let handles: Vec<AccountHandle> = self
            .accounts
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut waits = Vec::new();
        for h in handles {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if h.tx.send(Box::new(AccountMsg::Flush(tx))).await.is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = w.await;
        }
    }

    /// The accounts whose tasks are alive: those online (or holding
    /// rooms without a session).
    pub fn active_accounts(&self) -> Vec<BareJid> {
        self.accounts
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `jid`'s account task is alive (it has sessions, or rooms).
    pub fn has_account_task(&self, jid: &BareJid) -> bool {
        self.accounts
            .lock()
            .map(|m| m.contains_key(jid))
            .unwrap_or(false)
    }

    /// Number of account tasks alive (for logs and metrics).
    pub fn account_tasks(&self) -> usize {
        self.accounts.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl Server {
    /// Hand a message to an account's task: on this node, or through the
    /// bus on the node owning the account (cluster/).
    pub fn send_to_account(self: &Arc<Self>, jid: &BareJid, msg: AccountMsg) {
        if let Some(c) = self.cluster.get() {
            c.note_session(jid, &msg);
            if let Some(owner) = c.remote_owner(jid.as_str()) {
                c.send_account(owner, jid, msg);
                return;
            }
            c.back_up(jid, &msg);
        }
        self.send_to_local_account(jid, msg);
    }

    /// Hand a message to the account's task on this node, retrying once if
    /// the task was just exiting; a full queue bounces the stanza instead
    /// of blocking.
    pub(crate) fn send_to_local_account(self: &Arc<Self>, jid: &BareJid, msg: AccountMsg) {
        let mut msg = msg;
        for _ in 0..3 {
            let handle = self.router.account(self, jid);
            match handle.send(msg) {
                Ok(()) => return,
                Err(back) => {
                    msg = back;
                    if !handle.tx.is_closed() {
                        break;
                    }
                }
            }
        }
        tracing::warn!(account = %jid, "account queue full; stanza refused");
        if let AccountMsg::Deliver(stanza) = msg {
            self.bounce(
                &stanza,
                StanzaError::new(Condition::ResourceConstraint)
                    .with_text("recipient is overloaded"),
            );
        }
    }

    /// Route a stanza whose `from` is already stamped.
    pub fn route(self: &Arc<Self>, stanza: Stanza) {
        let Some(to) = stanza.to.clone() else {
            tracing::debug!("dropping a stanza without destination");
            return;
        };
        let domain = to.domain().as_str();
        if self.is_local_domain(domain) {
            if to.node().is_some() {
                self.send_to_account(&to.to_bare(), AccountMsg::Deliver(stanza));
            } else {
                self.to_server(stanza);
            }
        } else if let Some(service) = self.router.service(domain) {
            if let Some(c) = self.cluster.get() {
                // A component configured everywhere but connected to
                // another node.
                if service.is_component() && !service.available_here() {
                    if let Some(node) = c.view().component_node(domain).cloned() {
                        c.forward_service(node, stanza);
                        return;
                    }
                }
            }
            if let (Some(c), true, Some(_)) =
                (self.cluster.get(), service.owned_per_address(), to.node())
            {
                if let Some(owner) = c.remote_owner(to.to_bare().as_str()) {
                    c.forward_service(owner, stanza);
                    return;
                }
            }
            service.deliver(self, stanza);
        } else if let Some(node) = self
            .cluster
            .get()
            .and_then(|c| c.view().component_node(domain).cloned())
        {
            // An external component connected to another node.
            if let Some(c) = self.cluster.get() {
                c.forward_service(node, stanza);
            }
        } else if let Some(s2s) = self.s2s.get() {
            // RFC 6120 §10.4: another server's domain.
            s2s.clone().send(self, stanza);
        } else if stanza.kind != StanzaKind::Presence {
            // Federation is off: every other domain is unreachable.
            self.bounce(&stanza, StanzaError::new(Condition::RemoteServerNotFound));
        }
    }

    /// A stanza another node sent to one of our services: delivered here
    /// whatever this node thinks of ownership, so two nodes whose views
    /// differ for a moment never bounce a stanza between them.
    pub(crate) fn deliver_to_local_service(self: &Arc<Self>, stanza: Stanza) {
        let service = stanza
            .to
            .as_ref()
            .and_then(|to| self.router.service(to.domain().as_str()));
        match service {
            Some(s) => s.deliver(self, stanza),
            None => self.bounce(&stanza, StanzaError::service_unavailable()),
        }
    }

    /// Stanzas to the server's own domain (RFC 6120 §10.5.3.1 ... §10.5.3.2).
    fn to_server(self: &Arc<Self>, stanza: Stanza) {
        match stanza.kind {
            StanzaKind::Iq if stanza.is_iq_request() => {
                let server = self.clone();
                tokio::spawn(async move {
                    server.answer_iq(Scope::Server, None, stanza, false).await;
                });
            }
            StanzaKind::Iq => {
                self.iq_response(stanza.el);
            }
            StanzaKind::Message if !stanza.is_error() => {
                self.bounce(&stanza, StanzaError::service_unavailable());
            }
            _ => {}
        }
    }
}
