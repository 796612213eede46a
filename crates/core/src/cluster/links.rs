//! Sending to another node: one queue per peer, drained by a writer task
//! that packs whatever is queued into one bus message (a frame), so a
//! burst — a presence broadcast, a room message forked to several of the
//! peer's sessions — crosses the bus once per node, not once per session.
//!
//! A stanza carrying its sender's XEP-0198 receipt keeps it here until
//! the peer says the stanza is safe there (an `K` entry back): until then
//! the sender's `h` does not count it. If the peer dies first, the stanza
//! is routed again, to whoever owns its address now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jid::BareJid;
use minidom::Element;
use roost_proto::{ElementExt, Stanza, StreamError};
use tokio::sync::mpsc;

use super::frame::Entry;
use super::Cluster;
use crate::account::{AccountMsg, SessionMsg};

/// Items queued for a peer at most; past that the peer is too slow and
/// what does not fit is refused (counted as `session_queue`).
const LINK_QUEUE: usize = 65_536;
/// Frames are cut at about this size (NATS refuses messages over 1 MiB
/// by default).
const FRAME_BYTES: usize = 256 * 1024;

/// What to do with a stanza again when the peer that took it dies before
/// making it safe.
pub(crate) enum Redo {
    /// `FromSession` (with the resource) or `Deliver` to an account.
    Account(BareJid, Option<String>, Stanza),
    /// Route it again (to a room, or to a session's full JID).
    Route(Stanza),
}

impl Redo {
    fn stanza(&self) -> &Stanza {
        match self {
            Redo::Account(_, _, s) | Redo::Route(s) => s,
        }
    }
}

pub(crate) enum Out {
    Entry(Entry),
    /// A room's stanza forked to one session of the peer: consecutive
    /// forks of the same tree are sent as one entry.
    Fork(u64, Arc<Element>),
    /// An entry whose payload is `redo`'s stanza and whose last field is
    /// the receipt token, given when it is written.
    Receipted(Entry, Box<Redo>),
}

struct Pending {
    node: Arc<str>,
    redo: Redo,
}

#[derive(Default)]
pub(crate) struct Links {
    queues: Mutex<HashMap<Arc<str>, mpsc::Sender<Out>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_token: AtomicU64,
}

/// A session on another node, as its account's task sees it.
pub struct RemoteSession {
    node: Arc<str>,
    cluster: std::sync::Weak<Cluster>,
}

impl RemoteSession {
    pub(crate) fn new(node: Arc<str>, cluster: &Arc<Cluster>) -> RemoteSession {
        RemoteSession {
            node,
            cluster: Arc::downgrade(cluster),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn send(&self, id: u64, msg: SessionMsg) {
        let Some(c) = self.cluster.upgrade() else {
            return;
        };
        let sid = id.to_string();
        let out = match msg {
            SessionMsg::Stanza(el, _) => Out::Entry(Entry::new("S", &[&sid], el.to_xml())),
            SessionMsg::Forked(el, _) => Out::Fork(id, el),
            SessionMsg::Receipted(b, _) => {
                let (el, receipt) = *b;
                match Stanza::parse(el) {
                    Ok(mut s) => {
                        s.receipt = Some(receipt);
                        Out::Receipted(
                            Entry::new("SR", &[&sid], Vec::new()),
                            Box::new(Redo::Route(s)),
                        )
                    }
                    Err(_) => return,
                }
            }
            SessionMsg::PushRegistered(on) => Out::Entry(Entry::new(
                "SP",
                &[&sid, if on { "1" } else { "0" }],
                Vec::new(),
            )),
        };
        c.push(&self.node, out);
    }

    pub(crate) fn close(&self, id: u64, err: StreamError, text: &str) {
        if let Some(c) = self.cluster.upgrade() {
            let e = Entry::new(
                "SC",
                &[&id.to_string(), err.as_str()],
                text.as_bytes().to_vec(),
            );
            c.push(&self.node, Out::Entry(e));
        }
    }
}

impl Cluster {
    /// Queue something for `node`, starting its writer if needed.
    pub(crate) fn push(self: &Arc<Self>, node: &Arc<str>, out: Out) {
        let tx = {
            let mut queues = self.links.queues.lock().unwrap_or_else(|p| p.into_inner());
            match queues.get(node) {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    // Only to live peers, and only inside the runtime (an
                    // `AckOnDrop` may be dropped while the process ends).
                    if !self.view().is_live(node) || tokio::runtime::Handle::try_current().is_err()
                    {
                        return;
                    }
                    let (tx, rx) = mpsc::channel(LINK_QUEUE);
                    queues.insert(node.clone(), tx.clone());
                    tokio::spawn(self.clone().write(node.clone(), rx));
                    tx
                }
            }
        };
        if let Err(e) = tx.try_send(out) {
            tracing::warn!(node = %node, "cluster link full or closed; dropping");
            crate::limits::hit(crate::limits::Limit::SessionQueue);
            if let mpsc::error::TrySendError::Full(Out::Receipted(_, redo))
            | mpsc::error::TrySendError::Closed(Out::Receipted(_, redo)) = e
            {
                // Not sent: the stanza must not count as done.
                drop(redo);
            }
        }
    }

    /// Forget the link to a node that is gone, and take back what it had
    /// not made safe.
    pub(crate) fn node_gone(self: &Arc<Self>, node: &str) -> Vec<Redo> {
        self.links
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
        let mut pending = self.links.pending.lock().unwrap_or_else(|p| p.into_inner());
        let tokens: Vec<u64> = pending
            .iter()
            .filter(|(_, p)| p.node.as_ref() == node)
            .map(|(t, _)| *t)
            .collect();
        tokens
            .into_iter()
            .filter_map(|t| pending.remove(&t).map(|p| p.redo))
            .collect()
    }

    /// The peer made the stanza of `token` safe: its receipt is released.
    pub(crate) fn acked(&self, token: u64) {
        let done = self
            .links
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
        drop(done);
    }

    /// Stanzas sent to peers and not yet made safe there.
    pub fn pending_receipts(&self) -> usize {
        self.links.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    async fn write(self: Arc<Self>, node: Arc<str>, mut rx: mpsc::Receiver<Out>) {
        let subject = self.subjects.node(&node);
        let origin = Entry::new("N", &[&self.node], Vec::new());
        while let Some(first) = rx.recv().await {
            let mut frame = Vec::with_capacity(1024);
            origin.write(&mut frame);
            let mut fork: Option<(Arc<Element>, Vec<u64>)> = None;
            let mut next = Some(first);
            while let Some(out) = next.take() {
                match out {
                    Out::Fork(id, el) => match &mut fork {
                        Some((tree, ids)) if Arc::ptr_eq(tree, &el) => ids.push(id),
                        _ => {
                            flush_fork(&mut fork, &mut frame);
                            fork = Some((el, vec![id]));
                        }
                    },
                    Out::Entry(e) => {
                        flush_fork(&mut fork, &mut frame);
                        e.write(&mut frame);
                    }
                    Out::Receipted(mut e, redo) => {
                        flush_fork(&mut fork, &mut frame);
                        let token = self.links.next_token.fetch_add(1, Ordering::Relaxed) + 1;
                        e.payload = redo.stanza().el.to_xml().into_bytes();
                        e.fields.push(token.to_string());
                        e.write(&mut frame);
                        self.links
                            .pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(
                                token,
                                Pending {
                                    node: node.clone(),
                                    redo: *redo,
                                },
                            );
                    }
                }
                if frame.len() < FRAME_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            flush_fork(&mut fork, &mut frame);
            if let Err(e) = self.client.publish(subject.clone(), frame.into()).await {
                tracing::warn!(node = %node, error = %e, "cluster bus publish failed");
            }
        }
    }
}

fn flush_fork(fork: &mut Option<(Arc<Element>, Vec<u64>)>, frame: &mut Vec<u8>) {
    if let Some((el, ids)) = fork.take() {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        Entry::new("F", &[&ids.join(",")], el.to_xml()).write(frame);
    }
}

/// A receipt made on the receiving node: when the stanza is safe here and
/// the last clone is dropped, the sending node hears of it.
pub(crate) struct AckOnDrop {
    pub cluster: std::sync::Weak<Cluster>,
    pub node: Arc<str>,
    pub token: String,
}

impl Drop for AckOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.cluster.upgrade() {
            c.push(
                &self.node,
                Out::Entry(Entry::new("K", &[&self.token], Vec::new())),
            );
        }
    }
}

/// Run again what a dead node had not made safe.
pub(crate) fn redo(server: &Arc<crate::server::Server>, redo: Redo) {
    match redo {
        Redo::Account(account, Some(resource), stanza) => {
            server.send_to_account(&account, AccountMsg::FromSession { resource, stanza })
        }
        Redo::Account(account, None, stanza) => {
            server.send_to_account(&account, AccountMsg::Deliver(stanza))
        }
        Redo::Route(stanza) => server.route(stanza),
    }
}

impl Cluster {
    /// An answer to an IQ another node sent (server_iq.rs).
    pub(crate) fn forward_iq_response(self: &Arc<Self>, node: &str, el: &Element) {
        let node: Arc<str> = Arc::from(node);
        self.push(&node, Out::Entry(Entry::new("Q", &[], el.to_xml())));
    }

    /// A stanza for a room (or a component) whose node is `node`.
    pub(crate) fn forward_service(self: &Arc<Self>, node: Arc<str>, stanza: Stanza) {
        let out = if stanza.receipt.is_some() {
            Out::Receipted(
                Entry::new("V", &[], Vec::new()),
                Box::new(Redo::Route(stanza)),
            )
        } else {
            Out::Entry(Entry::new("V", &[""], stanza.el.to_xml()))
        };
        self.push(&node, out);
    }
}
