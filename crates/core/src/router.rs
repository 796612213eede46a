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
    /// Hand a message to an account's task, retrying once if the task was
    /// just exiting; a full queue bounces the stanza instead of blocking.
    pub fn send_to_account(self: &Arc<Self>, jid: &BareJid, msg: AccountMsg) {
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
            service.deliver(self, stanza);
        } else if let Some(s2s) = self.s2s.get() {
            // RFC 6120 §10.4: another server's domain.
            s2s.clone().send(self, stanza);
        } else if stanza.kind != StanzaKind::Presence {
            // Federation is off: every other domain is unreachable.
            self.bounce(&stanza, StanzaError::new(Condition::RemoteServerNotFound));
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
