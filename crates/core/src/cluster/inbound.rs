//! What a node receives from the bus: frames from its peers on its own
//! subject (handled in order, as they came), requests that want an
//! answer (binding a session, questions to an account), heartbeats, and
//! the operators' control requests (control.rs).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jid::{BareJid, FullJid};
use minidom::Element;
use roost_proto::{Stanza, StreamError};
use tokio::sync::oneshot;

use super::account_wire;
use super::frame::{self, Entry};
use super::links::AckOnDrop;
use super::membership::NodeInfo;
use super::{Cluster, ClusterError, RemoteSession};
use crate::account::{AccountMsg, SessionHandle, SessionMsg};
use crate::server::Server;

pub(super) async fn listen(cluster: &Arc<Cluster>) -> Result<(), ClusterError> {
    let bus = |e: async_nats::SubscribeError| ClusterError::Bus(e.to_string());
    let mut own = cluster
        .client
        .subscribe(cluster.subjects.node(&cluster.node))
        .await
        .map_err(bus)?;
    let mut beats = cluster
        .client
        .subscribe(cluster.subjects.heartbeat())
        .await
        .map_err(bus)?;
    let mut control = cluster
        .client
        .subscribe(cluster.subjects.control())
        .await
        .map_err(bus)?;
    let c = cluster.clone();
    tokio::spawn(async move {
        while let Some(msg) = own.next().await {
            let Some(server) = c.server.upgrade() else {
                return;
            };
            match msg.reply {
                Some(reply) => {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let answer = request(&c, &server, &msg.payload).await;
                        let _ = c.client.publish(reply, answer.into()).await;
                    });
                }
                None => frame_in(&c, &server, &msg.payload),
            }
        }
    });
    let c = cluster.clone();
    tokio::spawn(async move {
        while let Some(msg) = beats.next().await {
            for e in frame::read(&msg.payload).unwrap_or_default() {
                match e.kind.as_str() {
                    "HB" => {
                        if let Some(info) = NodeInfo::from_entry(&e) {
                            if info.name != c.node {
                                c.membership.heard(info);
                            }
                        }
                    }
                    "BYE" => c.membership.left(e.field(0)),
                    "HELLO" if e.field(0) != c.node.as_ref() => c.heartbeat().await,
                    _ => {}
                }
            }
        }
    });
    let c = cluster.clone();
    tokio::spawn(async move {
        while let Some(msg) = control.next().await {
            if let Some(reply) = msg.reply {
                let answer = super::control::answer(&c, &msg.payload).await;
                if let Some(answer) = answer {
                    let _ = c.client.publish(reply, answer.into()).await;
                }
            }
        }
    });
    Ok(())
}

pub(super) fn parse_stanza(payload: &[u8]) -> Option<Stanza> {
    let xml = std::str::from_utf8(payload).ok()?;
    let el: Element = roost_proto::element::parse(xml).ok()?;
    Stanza::parse(el).ok()
}

fn parse_element(payload: &[u8]) -> Option<Element> {
    roost_proto::element::parse(std::str::from_utf8(payload).ok()?).ok()
}

/// A receipt whose release tells `node` that its stanza is safe here.
pub(super) fn receipt(
    c: &Arc<Cluster>,
    node: &Arc<str>,
    token: &str,
) -> Option<roost_proto::stanza::Receipt> {
    if token.is_empty() {
        return None;
    }
    Some(Arc::new(AckOnDrop {
        cluster: Arc::downgrade(c),
        node: node.clone(),
        token: token.to_string(),
    }))
}

fn frame_in(c: &Arc<Cluster>, server: &Arc<Server>, payload: &[u8]) {
    let Some(entries) = frame::read(payload) else {
        tracing::warn!("dropping a damaged frame from the cluster bus");
        return;
    };
    let mut origin: Arc<str> = Arc::from("");
    for e in entries {
        match e.kind.as_str() {
            "N" => origin = Arc::from(e.field(0)),
            "K" => {
                if let Ok(t) = e.field(0).parse() {
                    c.acked(t);
                }
            }
            "S" | "SR" | "SP" | "SC" => session_entry(c, &origin, &e),
            "RB" | "RU" => {
                let (Ok(account), Ok(id)) = (BareJid::new(e.field(0)), e.field(2).parse::<u64>())
                else {
                    continue;
                };
                let mut backups = c.backups();
                let of_node = backups.entry(origin.clone()).or_default();
                if e.kind == "RB" {
                    of_node.insert(id, (account, e.field(1).to_string()));
                } else {
                    of_node.remove(&id);
                }
            }
            "F" => {
                let Some(el) = parse_element(&e.payload) else {
                    continue;
                };
                let el = Arc::new(el);
                for id in e.field(0).split(',').filter_map(|i| i.parse().ok()) {
                    if let Some(h) = c.local_handle(id) {
                        h.send_forked(el.clone());
                    }
                }
            }
            "Q" => {
                if let Some(el) = parse_element(&e.payload) {
                    server.iq_response(el);
                }
            }
            "V" => {
                let Some(mut stanza) = parse_stanza(&e.payload) else {
                    continue;
                };
                stanza.receipt = receipt(c, &origin, e.field(0));
                server.deliver_to_local_service(stanza);
            }
            _ if e.kind.starts_with('A') => {
                if let Some((account, msg)) = account_wire::decode(c, &origin, &e) {
                    if let AccountMsg::Unbind { session_id, .. } = &msg {
                        c.forget_remote(&origin, *session_id);
                    }
                    server.send_to_local_account(&account, msg);
                }
            }
            other => tracing::debug!(kind = other, "unknown cluster entry"),
        }
    }
}

fn session_entry(c: &Arc<Cluster>, origin: &Arc<str>, e: &Entry) {
    let Some(h) = e.field(0).parse().ok().and_then(|id| c.local_handle(id)) else {
        return;
    };
    match e.kind.as_str() {
        "S" => {
            if let Some(el) = parse_element(&e.payload) {
                h.send(el);
            }
        }
        "SR" => {
            if let Some(el) = parse_element(&e.payload) {
                h.send_receipted(el, receipt(c, origin, e.field(1)));
            }
        }
        "SP" => h.queue(SessionMsg::PushRegistered(e.field(1) == "1")),
        "SC" => h.close(stream_error(e.field(1)), e.payload_str()),
        _ => {}
    }
}

pub(super) fn stream_error(name: &str) -> StreamError {
    use StreamError::*;
    [
        Conflict,
        ConnectionTimeout,
        NotAuthorized,
        PolicyViolation,
        ResourceConstraint,
        SystemShutdown,
        InternalServerError,
    ]
    .into_iter()
    .find(|e| e.as_str() == name)
    .unwrap_or(UndefinedCondition)
}

/// Requests: one entry, answered with a frame of entries.
async fn request(c: &Arc<Cluster>, server: &Arc<Server>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(e) = frame::read(payload).and_then(|mut v| v.pop()) else {
        Entry::new("ERR", &["bad request"], Vec::new()).write(&mut out);
        return out;
    };
    let account: Option<BareJid> = BareJid::new(e.field(0)).ok();
    let Some(account) = account else {
        Entry::new("ERR", &["bad account"], Vec::new()).write(&mut out);
        return out;
    };
    let wait = Duration::from_secs(8);
    match e.kind.as_str() {
        // BIND account resource session-id node carbons rooms
        "BIND" => {
            let node: Arc<str> = Arc::from(e.field(3));
            let (Ok(id), Ok(jid)) = (
                e.field(2).parse::<u64>(),
                FullJid::new(&format!("{}/{}", account, e.field(1))),
            ) else {
                Entry::new("ERR", &["bad bind"], Vec::new()).write(&mut out);
                return out;
            };
            let handle =
                SessionHandle::remote(id, jid, Arc::new(RemoteSession::new(node.clone(), c)));
            let inline = (e.field(4) == "1" || e.field(5) == "1").then(|| {
                Box::new(crate::account::BindInline {
                    carbons: e.field(4) == "1",
                    rooms: e.field(5) == "1",
                })
            });
            let (tx, rx) = oneshot::channel();
            c.remember_remote(&node, id, &account, e.field(1));
            server.send_to_local_account(
                &account,
                AccountMsg::Bind {
                    resource: e.field(1).to_string(),
                    handle,
                    inline,
                    reply: tx,
                },
            );
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(Some(rooms))) => {
                    Entry::new("OK", &[], Vec::new()).write(&mut out);
                    for (room, nick) in rooms {
                        Entry::new("ROOM", &[&room, &nick], Vec::new()).write(&mut out);
                    }
                }
                Ok(Ok(None)) => Entry::new("FULL", &[], Vec::new()).write(&mut out),
                _ => {
                    c.forget_remote(&node, id);
                    Entry::new("ERR", &["account gone"], Vec::new()).write(&mut out)
                }
            }
        }
        "END" => {
            let (tx, rx) = oneshot::channel();
            server.send_to_local_account(
                &account,
                AccountMsg::EndSessions {
                    reason: stream_error(e.field(1)),
                    text: e.payload_str().to_string(),
                    reply: tx,
                },
            );
            let n = tokio::time::timeout(wait, rx)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            Entry::new("OK", &[&n.to_string()], Vec::new()).write(&mut out);
        }
        "HAS" => {
            let (tx, rx) = oneshot::channel();
            server.send_to_local_account(&account, AccountMsg::HasSessions(tx));
            let has = tokio::time::timeout(wait, rx)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false);
            Entry::new("OK", &[if has { "1" } else { "0" }], Vec::new()).write(&mut out);
        }
        "PUSHREG" => {
            let revoke = e
                .payload_str()
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            let (tx, rx) = oneshot::channel();
            server.send_to_local_account(
                &account,
                AccountMsg::PushRegistrations { revoke, reply: tx },
            );
            let list = tokio::time::timeout(wait, rx)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            Entry::new("OK", &[], Vec::new()).write(&mut out);
            for (a, b, d) in list {
                Entry::new("REG", &[&a, &b, &d], Vec::new()).write(&mut out);
            }
        }
        other => {
            Entry::new("ERR", &[&format!("unknown request {other}")], Vec::new()).write(&mut out)
        }
    }
    out
}

impl Cluster {
    fn remote_bound(&self) -> std::sync::MutexGuard<'_, super::SessionsByNode> {
        self.remote_bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn remember_remote(
        &self,
        node: &Arc<str>,
        id: u64,
        account: &BareJid,
        resource: &str,
    ) {
        self.remote_bound()
            .entry(node.clone())
            .or_default()
            .insert(id, (account.clone(), resource.to_string()));
    }

    pub(crate) fn forget_remote(&self, node: &str, id: u64) {
        if let Some(m) = self.remote_bound().get_mut(node) {
            m.remove(&id);
        }
    }

    /// The sessions `node` had bound to accounts owned here.
    pub(crate) fn take_remote(&self, node: &str) -> Vec<(u64, BareJid, String)> {
        self.remote_bound()
            .remove(node)
            .map(|m| m.into_iter().map(|(id, (a, r))| (id, a, r)).collect())
            .unwrap_or_default()
    }

    /// Forget remote sessions of accounts this node no longer owns.
    pub(crate) fn retain_remote(&self, keep: impl Fn(&BareJid) -> bool) {
        for m in self.remote_bound().values_mut() {
            m.retain(|_, (a, _)| keep(a));
        }
    }
}
