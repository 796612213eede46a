//! XEP-0163 §4 filtered notifications on the receiving side: a PEP event
//! reaches only those of the account's resources whose entity capabilities
//! (XEP-0115) include `<node>+notify`. While a resource's caps are being
//! resolved its events wait, so nothing published at login is lost.

use std::sync::Arc;

use jid::FullJid;
use minidom::Element;
use roost_proto::{ns, ElementExt};

use super::{Account, AccountMsg};
use crate::caps::{Caps, Features};

pub const PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

/// Events held for one resource while its caps are unknown.
const MAX_WAITING: usize = 256;

pub enum FeatureState {
    /// No caps in the presence (or not yet sent): no notifications.
    None,
    /// Being resolved; events wait here.
    Pending(Vec<Element>),
    Known(Features),
}

/// The PEP node an event message is about.
pub fn event_node(msg: &Element) -> Option<String> {
    let event = msg.get_child("event", PUBSUB_EVENT)?;
    event
        .children()
        .find_map(|c| c.attr("node"))
        .map(str::to_string)
}

fn wants(features: &Features, node: &str) -> bool {
    let notify = format!("{node}+notify");
    features.iter().any(|f| f == &notify)
}

impl Account {
    /// A resource sent presence: find out what its caps stand for.
    pub(super) fn caps_from_presence(&mut self, resource: &str, presence: &Element) {
        let Some(entry) = self.resources.get_mut(resource) else {
            return;
        };
        let caps = Caps::from_presence(presence);
        if entry.caps == caps {
            return;
        }
        entry.caps = caps.clone();
        let Some(caps) = caps else {
            entry.features = FeatureState::None;
            return;
        };
        if let Some(f) = self.server.caps.get(&caps.ver) {
            entry.features = FeatureState::Known(f);
            let jid = entry.handle.jid.clone();
            self.resource_ready(jid);
            return;
        }
        if !matches!(entry.features, FeatureState::Pending(_)) {
            entry.features = FeatureState::Pending(Vec::new());
        }
        let server = self.server.clone();
        let jid = entry.handle.jid.clone();
        let session_id = entry.handle.id;
        let account = self.jid.clone();
        let resource = resource.to_string();
        tokio::spawn(async move {
            let features = server.resolve_caps(&jid, &caps).await;
            server.send_to_account(
                &account,
                AccountMsg::CapsResolved {
                    resource,
                    session_id,
                    features,
                },
            );
        });
    }

    pub(super) fn caps_resolved(
        &mut self,
        resource: &str,
        session_id: u64,
        features: Option<Features>,
    ) {
        let Some(entry) = self.resources.get_mut(resource) else {
            return;
        };
        if entry.handle.id != session_id {
            return;
        }
        let features = features.unwrap_or_else(|| Arc::new(Vec::new()));
        let waiting =
            match std::mem::replace(&mut entry.features, FeatureState::Known(features.clone())) {
                FeatureState::Pending(w) => w,
                _ => Vec::new(),
            };
        for ev in waiting {
            if event_node(&ev).is_some_and(|n| wants(&features, &n)) {
                entry.handle.send(ev);
            }
        }
        let jid = entry.handle.jid.clone();
        self.resource_ready(jid);
    }

    /// Modules learn that a resource's features are known (PEP then sends
    /// the account's own last published items, XEP-0163 §6.1).
    fn resource_ready(&self, jid: FullJid) {
        for m in self.server.registry.modules() {
            let m = m.clone();
            let server = self.server.clone();
            let account = self.jid.clone();
            let jid = jid.clone();
            tokio::spawn(async move { m.resource_ready(&server, &account, &jid).await });
        }
    }

    /// A session sent its initial presence: the modules that care hear it.
    pub(super) fn session_available(&self, jid: &FullJid) {
        let modules = self.server.registry.modules();
        for m in modules.iter().filter(|m| m.wants_session_available()) {
            let m = m.clone();
            let server = self.server.clone();
            let account = self.jid.clone();
            let jid = jid.clone();
            tokio::spawn(async move { m.session_available(&server, &account, &jid).await });
        }
    }

    /// The account's last available session went unavailable.
    pub(super) fn account_unavailable(&self, status: Option<String>) {
        let modules = self.server.registry.modules();
        for m in modules.iter().filter(|m| m.wants_account_unavailable()) {
            let m = m.clone();
            let server = self.server.clone();
            let account = self.jid.clone();
            let status = status.clone();
            tokio::spawn(async move { m.account_unavailable(&server, &account, status).await });
        }
    }

    /// A contact's resource came online and may see our PEP data (§6.2).
    pub(super) fn contact_available(&self, contact: FullJid) {
        for m in self.server.registry.modules() {
            let m = m.clone();
            let server = self.server.clone();
            let account = self.jid.clone();
            let contact = contact.clone();
            tokio::spawn(async move { m.contact_available(&server, &account, &contact).await });
        }
    }

    /// Deliver a PEP event to the resources that asked for its node.
    pub(super) fn deliver_event(&mut self, msg: Element, only: Option<&str>) {
        let Some(node) = event_node(&msg) else { return };
        for (resource, entry) in self.resources.iter_mut() {
            if only.is_some_and(|o| o != resource) || entry.presence.is_none() && only.is_none() {
                continue;
            }
            match &mut entry.features {
                FeatureState::Known(f) if wants(f, &node) => {
                    let mut m = msg.clone();
                    m.set("to", entry.handle.jid.as_str());
                    entry.handle.send(m);
                }
                FeatureState::Pending(waiting) if waiting.len() < MAX_WAITING => {
                    let mut m = msg.clone();
                    m.set("to", entry.handle.jid.as_str());
                    waiting.push(m);
                }
                _ => {}
            }
        }
    }
}

/// Whether a message is a PEP/pubsub event notification.
pub fn is_event(msg: &Element) -> bool {
    msg.has_child("event", PUBSUB_EVENT) && msg.ns() == ns::CLIENT
}
