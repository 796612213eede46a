//! The account's bound resources (RFC 6120 §7) and what the account knows
//! about each: its session handle, its presence (RFC 6121 §4) and where it
//! sent directed presence.

use std::collections::{BTreeMap, HashSet};

use jid::{FullJid, Jid};
use minidom::Element;
use roost_proto::StreamError;
use tokio::sync::mpsc;

/// What a session task receives.
pub enum SessionMsg {
    Stanza(Element),
}

/// The way to reach one session: a bounded queue for stanzas and a separate
/// one-slot channel to close it, which works even when the queue is full.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: u64,
    pub jid: FullJid,
    tx: mpsc::Sender<SessionMsg>,
    kill: mpsc::Sender<(StreamError, String)>,
}

impl SessionHandle {
    pub fn new(
        id: u64,
        jid: FullJid,
        tx: mpsc::Sender<SessionMsg>,
        kill: mpsc::Sender<(StreamError, String)>,
    ) -> SessionHandle {
        SessionHandle { id, jid, tx, kill }
    }

    /// Queue a stanza. A session that cannot keep up is closed with
    /// `policy-violation` rather than allowed to grow without bound.
    pub fn send(&self, el: Element) {
        match self.tx.try_send(SessionMsg::Stanza(el)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(session = %self.jid, "outbound queue full, closing session");
                crate::counters::SESSION_QUEUE_OVERFLOWS
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.close(StreamError::PolicyViolation, "too many stanzas queued");
            }
        }
    }

    pub fn close(&self, err: StreamError, text: &str) {
        let _ = self.kill.try_send((err, text.to_string()));
    }
}

pub struct ResourceEntry {
    pub handle: SessionHandle,
    /// Last available presence broadcast by the resource; `None` until
    /// initial presence and after unavailable.
    pub presence: Option<Element>,
    pub priority: i8,
    /// Requested the roster, so gets roster pushes (RFC 6121 §2.1.6).
    pub interested: bool,
    /// Entities that got directed presence and must get unavailable later.
    pub directed: HashSet<Jid>,
    /// XEP-0280 carbons enabled.
    pub carbons: bool,
    /// Retrieved the XEP-0191 block list, so gets its pushes.
    pub blocklist_interested: bool,
    /// XEP-0115 caps last announced, and what they stand for.
    pub caps: Option<crate::caps::Caps>,
    pub features: super::notify::FeatureState,
}

#[derive(Default)]
pub struct Resources {
    map: BTreeMap<String, ResourceEntry>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bind; returns the entry it replaced.
    pub fn insert(&mut self, resource: String, handle: SessionHandle) -> Option<ResourceEntry> {
        self.map.insert(
            resource,
            ResourceEntry {
                handle,
                presence: None,
                priority: 0,
                interested: false,
                directed: HashSet::new(),
                carbons: false,
                blocklist_interested: false,
                caps: None,
                features: super::notify::FeatureState::None,
            },
        )
    }

    /// Remove the entry only if it still belongs to that session (a replaced
    /// session's late unbind must not remove its successor).
    pub fn remove_if(&mut self, resource: &str, session_id: u64) -> Option<ResourceEntry> {
        if self.map.get(resource)?.handle.id == session_id {
            self.map.remove(resource)
        } else {
            None
        }
    }

    pub fn get(&self, resource: &str) -> Option<&ResourceEntry> {
        self.map.get(resource)
    }

    pub fn get_mut(&mut self, resource: &str) -> Option<&mut ResourceEntry> {
        self.map.get_mut(resource)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ResourceEntry)> {
        self.map.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut ResourceEntry)> {
        self.map.iter_mut()
    }

    /// Resources that sent initial presence and are still available.
    pub fn available(&self) -> impl Iterator<Item = &ResourceEntry> {
        self.map.values().filter(|e| e.presence.is_some())
    }

    /// RFC 6121 §8.5.2.1.1: the available resources with the highest
    /// non-negative priority receive a message to the bare JID.
    pub fn message_targets(&self) -> Vec<&ResourceEntry> {
        let best = self
            .available()
            .map(|e| e.priority)
            .filter(|p| *p >= 0)
            .max();
        match best {
            None => Vec::new(),
            Some(best) => self.available().filter(|e| e.priority == best).collect(),
        }
    }
}
