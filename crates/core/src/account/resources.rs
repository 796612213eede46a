//! The account's bound resources (RFC 6120 §7) and what the account knows
//! about each: its session handle, its presence (RFC 6121 §4) and where it
//! sent directed presence.

use std::collections::HashSet;
use std::sync::Arc;

use jid::{FullJid, Jid};
use minidom::Element;
use roost_proto::{ElementExt, StreamError};

use crate::mailbox::{self, TrySendError};

/// What a session task receives (boxed: a queue's slots are a pointer each).
/// Stanzas carry their estimated size, weighed once when queued
/// (`limits/queue_budget.rs`).
pub enum SessionMsg {
    Stanza(Box<Element>, u32),
    /// A stanza whose sender's stream management waits until it is
    /// written to this session's connection (c2s/receipts.rs).
    Receipted(Box<(Element, roost_proto::stanza::Receipt)>, u32),
    /// A room's stanza the account forks to several of its sessions: one
    /// tree for all of them, each writing it with its own JID as `to`.
    Forked(Arc<Element>, u32),
    /// The device of this session registered for push notifications (or
    /// no longer has any): it may hibernate for `resume_timeout_push`.
    PushRegistered(bool),
}

impl SessionMsg {
    /// Bytes counted against the session's queue budget.
    pub fn weight(&self) -> usize {
        match self {
            SessionMsg::Stanza(_, w) | SessionMsg::Receipted(_, w) | SessionMsg::Forked(_, w) => {
                *w as usize
            }
            SessionMsg::PushRegistered(_) => 0,
        }
    }
}

fn weigh(el: &Element) -> u32 {
    u32::try_from(roost_proto::serialize::estimated_len(el)).unwrap_or(u32::MAX)
}

/// A session's queue: `limits.session_queue` stanzas and
/// `limits.session_queue_bytes` bytes.
pub fn session_queue(
    limits: &crate::config::LimitsConfig,
) -> (mailbox::Sender<SessionMsg>, mailbox::Receiver<SessionMsg>) {
    mailbox::weighed_channel(
        limits.session_queue,
        mailbox::Weigher {
            weigh: SessionMsg::weight,
            max: limits.session_queue_bytes,
        },
    )
}

/// Why a session is closed from outside (boxed for the same reason).
pub type KillReason = Box<(StreamError, String)>;

/// The way to reach one session: a bounded queue for stanzas and a separate
/// one-slot channel to close it, which works even when the queue is full.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: u64,
    pub jid: FullJid,
    link: Link,
}

/// Where the session runs: in this process, or on another node of the
/// cluster (its messages then cross the bus, cluster/links.rs).
#[derive(Clone)]
enum Link {
    Local {
        tx: mailbox::Sender<SessionMsg>,
        kill: mailbox::Sender<KillReason>,
    },
    Remote(Arc<crate::cluster::RemoteSession>),
}

impl SessionHandle {
    pub fn new(
        id: u64,
        jid: FullJid,
        tx: mailbox::Sender<SessionMsg>,
        kill: mailbox::Sender<KillReason>,
    ) -> SessionHandle {
        SessionHandle {
            id,
            jid,
            link: Link::Local { tx, kill },
        }
    }

    /// A session of another node, reached over the bus.
    pub(crate) fn remote(
        id: u64,
        jid: FullJid,
        remote: Arc<crate::cluster::RemoteSession>,
    ) -> SessionHandle {
        SessionHandle {
            id,
            jid,
            link: Link::Remote(remote),
        }
    }

    /// The node the session runs on, when it is not this one.
    pub fn remote_node(&self) -> Option<&str> {
        match &self.link {
            Link::Local { .. } => None,
            Link::Remote(r) => Some(r.node()),
        }
    }

    /// Queue a stanza. A session that cannot keep up is closed with
    /// `policy-violation` rather than allowed to grow without bound.
    pub fn send(&self, el: Element) {
        let w = weigh(&el);
        self.queue(SessionMsg::Stanza(Box::new(el), w));
    }

    /// Queue a stanza that may carry its sender's receipt, released once
    /// the stanza is written to this session's connection.
    pub fn send_receipted(&self, el: Element, receipt: Option<roost_proto::stanza::Receipt>) {
        match receipt {
            Some(r) => {
                let w = weigh(&el);
                self.queue(SessionMsg::Receipted(Box::new((el, r)), w))
            }
            None => self.send(el),
        }
    }

    pub(crate) fn queue(&self, msg: SessionMsg) {
        let tx = match &self.link {
            Link::Local { tx, .. } => tx,
            Link::Remote(r) => return r.send(self.id, msg),
        };
        match tx.try_send(msg) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(session = %self.jid, "outbound queue full, closing session");
                crate::counters::SESSION_QUEUE_OVERFLOWS
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::limits::hit(crate::limits::Limit::SessionQueue);
                self.close(StreamError::PolicyViolation, "too many stanzas queued");
            }
        }
    }

    /// Queue a forked stanza (see `SessionMsg::Forked`).
    pub fn send_forked(&self, el: Arc<Element>) {
        let w = weigh(&el);
        self.queue(SessionMsg::Forked(el, w));
    }

    pub fn close(&self, err: StreamError, text: &str) {
        match &self.link {
            Link::Local { kill, .. } => {
                let _ = kill.try_send(Box::new((err, text.to_string())));
            }
            Link::Remote(r) => r.close(self.id, err, text),
        }
    }
}

/// A resource's last available presence, kept as its XML. A parsed
/// element costs a B-tree node (about half a KiB) for each attribute and
/// namespace map, for as long as the resource is online; a copy is needed
/// only when a probe, a new subscription or a new resource of the account
/// asks for it.
pub struct StoredPresence(Box<str>);

impl StoredPresence {
    pub fn new(el: &Element) -> StoredPresence {
        StoredPresence(el.to_xml().into_boxed_str())
    }

    /// A copy to send.
    pub fn element(&self) -> Option<Element> {
        match self.0.parse::<Element>() {
            Ok(el) => Some(el),
            Err(e) => {
                // Written by our own serialiser, so this is a bug.
                tracing::error!(error = %e, "stored presence does not parse");
                None
            }
        }
    }
}

/// Whether a session's device hears what it is sent (XEP-0357 decides
/// from this whom to push).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Connected and active.
    Live,
    /// Connected, but said it is inactive (XEP-0352).
    Inactive,
    /// Connection lost, waiting for resumption (XEP-0198).
    Hibernated,
}

pub struct ResourceEntry {
    pub handle: SessionHandle,
    pub device: DeviceState,
    /// Last available presence broadcast by the resource; `None` until
    /// initial presence and after unavailable.
    pub presence: Option<StoredPresence>,
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

/// The bound resources, sorted by name. A vector rather than a map: an
/// account has a handful of resources at most, and a B-tree's first node
/// alone would hold room for eleven entries, idle accounts included.
#[derive(Default)]
pub struct Resources {
    list: Vec<(String, ResourceEntry)>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bound resources, hibernating ones included.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    fn position(&self, resource: &str) -> Result<usize, usize> {
        self.list
            .binary_search_by(|(name, _)| name.as_str().cmp(resource))
    }

    /// Bind; returns the entry it replaced.
    pub fn insert(&mut self, resource: String, handle: SessionHandle) -> Option<ResourceEntry> {
        let entry = ResourceEntry {
            handle,
            device: DeviceState::Live,
            presence: None,
            priority: 0,
            interested: false,
            directed: HashSet::new(),
            carbons: false,
            blocklist_interested: false,
            caps: None,
            features: super::notify::FeatureState::None,
        };
        match self.position(&resource) {
            Ok(i) => Some(std::mem::replace(&mut self.list[i].1, entry)),
            Err(i) => {
                // One at a time: the first push would otherwise make room for four.
                self.list.reserve_exact(1);
                self.list.insert(i, (resource, entry));
                None
            }
        }
    }

    /// Remove the entry only if it still belongs to that session (a replaced
    /// session's late unbind must not remove its successor).
    pub fn remove_if(&mut self, resource: &str, session_id: u64) -> Option<ResourceEntry> {
        let i = self.position(resource).ok()?;
        if self.list[i].1.handle.id != session_id {
            return None;
        }
        let (_, entry) = self.list.remove(i);
        if self.list.is_empty() {
            // Give the memory back: the account may stay idle for long.
            self.list = Vec::new();
        }
        Some(entry)
    }

    pub fn get(&self, resource: &str) -> Option<&ResourceEntry> {
        self.position(resource).ok().map(|i| &self.list[i].1)
    }

    pub fn get_mut(&mut self, resource: &str) -> Option<&mut ResourceEntry> {
        self.position(resource).ok().map(|i| &mut self.list[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ResourceEntry)> {
        self.list.iter().map(|(name, entry)| (name, entry))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut ResourceEntry)> {
        self.list.iter_mut().map(|(name, entry)| (&*name, entry))
    }

    /// Resources that sent initial presence and are still available.
    pub fn available(&self) -> impl Iterator<Item = &ResourceEntry> {
        self.list
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.presence.is_some())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_presence_gives_back_the_same_element() {
        let xml = "<presence xmlns='jabber:client' from='a@localhost/phone' xml:lang='de'>\
            <show>away</show><status>&lt;tea &amp; cake&gt; \u{1F375}</status>\
            <priority>-3</priority>\
            <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/>\
            <x xmlns='vcard-temp:x:update'><photo/></x></presence>";
        let el: Element = xml.parse().unwrap();
        let stored = StoredPresence::new(&el);
        assert_eq!(stored.element(), Some(el));
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A session handle is kept per bound resource: the remote form (a
    /// cluster) must not make every local one larger.
    #[test]
    fn the_remote_form_costs_local_handles_nothing() {
        let local = std::mem::size_of::<mailbox::Sender<SessionMsg>>()
            + std::mem::size_of::<mailbox::Sender<KillReason>>();
        assert_eq!(std::mem::size_of::<Link>(), local);
    }
}
