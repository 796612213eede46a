//! Roost cluster: several nodes serving one domain, joined by a NATS bus
//! (ARCHITECTURE.md: "a cluster adds one seam, not a rewrite").
//!
//! Each account and each room has one owner node at a time, chosen by
//! rendezvous hashing over the nodes holding a lease (rendezvous.rs,
//! membership.rs); its task runs there, as on a single node. Sessions
//! connect to any node: their messages to their account cross the bus to
//! the owner, and the account reaches them through a remote session
//! handle (links.rs). Each node listens on a subject of its own; what it
//! sends another node in a burst travels as one bus message, and a room
//! message forked to several sessions of one node crosses once.
//!
//! When a node dies its lease runs out: the owners of accounts with
//! sessions there unbind them (contacts see them go), and what it owned
//! moves to the next node by the hash (takeover.rs): rooms start again
//! from storage, sessions bind again to their account's new owner with
//! their presence and rooms, and accounts rejoin their rooms.
//!
//! Storage is shared (PostgreSQL); nothing here is stored.

mod account_wire;
pub mod control;
pub mod frame;
mod inbound;
mod links;
pub mod membership;
pub mod rendezvous;
pub mod secrets;
mod takeover;

pub use links::RemoteSession;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use jid::BareJid;
use minidom::Element;

use crate::account::{AccountMsg, BindInline, SessionHandle};
use crate::config::ClusterConfig;
use crate::server::Server;
use membership::{Membership, NodeInfo, View};

/// Subjects of one cluster: `roost.<domain>.…` so that clusters of
/// different domains can share a NATS server.
#[derive(Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub(crate) fn new(domain: &str) -> Subjects {
        let token: String = domain
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Subjects {
            prefix: format!("roost.{token}"),
        }
    }
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}.node.{node}", self.prefix)
    }
    pub(crate) fn heartbeat(&self) -> String {
        format!("{}.heartbeat", self.prefix)
    }
    pub(crate) fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }
}

/// A session connected to this node, and what a new owner of its account
/// needs to bind it again: its last presence and the rooms it joined.
pub(crate) struct LocalSession {
    pub handle: SessionHandle,
    pub account: BareJid,
    pub resource: String,
    pub inline: Option<BindInline>,
    pub presence: Option<Element>,
    /// Room (bare JID) -> the join presence the session sent.
    pub rooms: BTreeMap<String, Element>,
}

/// Sessions of other nodes known here, by node: session id -> (account,
/// resource).
pub(crate) type SessionsByNode = HashMap<Arc<str>, HashMap<u64, (BareJid, String)>>;

#[derive(Default)]
pub(crate) struct LocalSessions {
    pub by_id: HashMap<u64, LocalSession>,
    pub by_resource: HashMap<(BareJid, String), u64>,
}

pub struct Cluster {
    pub node: Arc<str>,
    pub(crate) config: ClusterConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) subjects: Subjects,
    pub(crate) membership: Membership,
    draining: AtomicBool,
    incarnation: u64,
    pub(crate) server: Weak<Server>,
    pub(crate) local: Mutex<LocalSessions>,
    /// Sessions of other nodes bound to accounts owned here, by node:
    /// session id -> (account, resource); unbound when the node dies.
    pub(crate) remote_bound: Mutex<SessionsByNode>,
    /// Sessions other nodes hold for accounts they own themselves, kept
    /// here because this node is next in line for those accounts: when
    /// such a node dies, nobody else knows these sessions existed.
    pub(crate) backups: Mutex<SessionsByNode>,
    pub(crate) links: links::Links,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {url}: {error}")]
    Connect { url: String, error: String },
    #[error("NATS: {0}")]
    Bus(String),
}

/// Connect to the bus with this node's name.
pub(crate) async fn connect(
    config: &ClusterConfig,
    name: &str,
) -> Result<async_nats::Client, ClusterError> {
    let addrs: Vec<async_nats::ServerAddr> = config
        .nats
        .split(',')
        .map(|u| u.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| ClusterError::Connect {
            url: config.nats.clone(),
            error: e.to_string(),
        })?;
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(addrs)
        .await
        .map_err(|e| ClusterError::Connect {
            url: config.nats.clone(),
            error: e.to_string(),
        })
}

impl Cluster {
    /// Join the cluster: connect, listen, announce this node and wait a
    /// little more than a heartbeat, so that the others are known before
    /// the first client arrives. Sets `server.cluster`.
    pub async fn start(server: &Arc<Server>) -> Result<Arc<Cluster>, ClusterError> {
        let config = server.config.cluster.clone();
        let node: Arc<str> = Arc::from(config.node.as_str());
        let client = connect(&config, &node).await?;
        let incarnation: u64 = rand::random::<u64>() | 1;
        let me = NodeInfo {
            name: node.clone(),
            draining: false,
            sessions: 0,
            components: vec![],
            incarnation,
        };
        let cluster = Arc::new(Cluster {
            membership: Membership::new(me, Duration::from_millis(config.lease_ms)),
            subjects: Subjects::new(&server.config.domain),
            node,
            client,
            draining: AtomicBool::new(false),
            incarnation,
            server: Arc::downgrade(server),
            local: Mutex::new(LocalSessions::default()),
            remote_bound: Mutex::new(HashMap::new()),
            backups: Mutex::new(HashMap::new()),
            links: Default::default(),
            config,
        });
        server.seed_session_ids(session_id_base(&cluster.node));
        inbound::listen(&cluster).await?;
        cluster.heartbeat().await;
        // Ask the others to announce themselves now rather than within
        // a heartbeat.
        let hello = frame::Entry::new("HELLO", &[&cluster.node], Vec::new());
        cluster
            .publish_entry(&cluster.subjects.heartbeat(), &hello)
            .await;
        tokio::time::sleep(Duration::from_millis(cluster.config.heartbeat_ms * 3 / 2)).await;
        let _ = server.cluster.set(cluster.clone());
        takeover::spawn(&cluster);
        spawn_ticker(&cluster);
        let view = cluster.view();
        tracing::info!(node = %cluster.node, nodes = ?view.live, "joined the cluster");
        Ok(cluster)
    }

    pub fn view(&self) -> Arc<View> {
        self.membership.view()
    }

    /// Changes of the view (for what other crates keep per owner).
    pub fn subscribe_view(&self) -> tokio::sync::watch::Receiver<Arc<View>> {
        self.membership.subscribe()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The owner of an account or a room when it is another node.
    pub fn remote_owner(&self, key: &str) -> Option<Arc<str>> {
        let view = self.membership.view();
        match view.owner(key) {
            Some(n) if *n != self.node => Some(n.clone()),
            _ => None,
        }
    }

    /// Whether this node owns `key` now.
    pub fn owns(&self, key: &str) -> bool {
        self.remote_owner(key).is_none()
    }

    fn local(&self) -> std::sync::MutexGuard<'_, LocalSessions> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn local_session_count(&self) -> usize {
        self.local().by_id.len()
    }

    pub(crate) fn local_handle(&self, id: u64) -> Option<SessionHandle> {
        self.local().by_id.get(&id).map(|s| s.handle.clone())
    }

    async fn heartbeat(&self) {
        let info = NodeInfo {
            name: self.node.clone(),
            draining: self.is_draining(),
            sessions: self.local_session_count(),
            components: self
                .server
                .upgrade()
                .map(|s| s.router.component_domains())
                .unwrap_or_default(),
            incarnation: self.incarnation,
        };
        self.membership.heard(info.clone());
        self.publish_entry(&self.subjects.heartbeat(), &info.to_entry())
            .await;
    }

    pub(crate) async fn publish_entry(&self, subject: &str, e: &frame::Entry) {
        let mut out = Vec::new();
        e.write(&mut out);
        if let Err(err) = self.client.publish(subject.to_string(), out.into()).await {
            tracing::warn!(error = %err, "cluster bus publish failed");
        }
    }

    /// Stop taking work: this node owns nothing any more and its sessions
    /// are asked to reconnect (to another node), for a rolling upgrade.
    pub async fn drain(self: &Arc<Self>) {
        if self.draining.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(node = %self.node, "draining: ownership moves, sessions are closed");
        self.heartbeat().await;
        let cluster = self.clone();
        tokio::spawn(async move {
            // Let the others take the accounts and rooms over first, so
            // that the clients reconnecting find them.
            tokio::time::sleep(Duration::from_millis(cluster.config.heartbeat_ms)).await;
            let handles: Vec<SessionHandle> = cluster
                .local()
                .by_id
                .values()
                .map(|s| s.handle.clone())
                .collect();
            for h in handles {
                h.close(
                    roost_proto::StreamError::SystemShutdown,
                    "this node is being drained; connect again",
                );
            }
        });
    }

    /// Say goodbye (a clean stop), so the others take over at once.
    pub async fn leave(&self) {
        let bye = frame::Entry::new("BYE", &[&self.node], Vec::new());
        self.publish_entry(&self.subjects.heartbeat(), &bye).await;
        let _ = self.client.flush().await;
    }

    /// What the account seam records about this node's own sessions
    /// (whoever owns their accounts), so that they can bind again.
    pub(crate) fn note_session(&self, account: &BareJid, msg: &AccountMsg) {
        match msg {
            AccountMsg::Bind {
                resource,
                handle,
                inline,
                ..
            } if handle.remote_node().is_none() => {
                let mut local = self.local();
                let (presence, rooms) = match local.by_id.remove(&handle.id) {
                    Some(old) => (old.presence, old.rooms),
                    None => (None, BTreeMap::new()),
                };
                local
                    .by_resource
                    .insert((account.clone(), resource.clone()), handle.id);
                local.by_id.insert(
                    handle.id,
                    LocalSession {
                        handle: handle.clone(),
                        account: account.clone(),
                        resource: resource.clone(),
                        inline: inline.as_deref().copied(),
                        presence,
                        rooms,
                    },
                );
            }
            AccountMsg::Unbind {
                resource,
                session_id,
            } => {
                let mut local = self.local();
                if local.by_id.remove(session_id).is_some() {
                    let key = (account.clone(), resource.clone());
                    if local.by_resource.get(&key) == Some(session_id) {
                        local.by_resource.remove(&key);
                    }
                }
            }
            AccountMsg::FromSession { resource, stanza }
                if stanza.kind == roost_proto::StanzaKind::Presence =>
            {
                let mut local = self.local();
                let Some(id) = local
                    .by_resource
                    .get(&(account.clone(), resource.clone()))
                    .copied()
                else {
                    return;
                };
                let Some(s) = local.by_id.get_mut(&id) else {
                    return;
                };
                let unavailable = stanza.type_attr() == Some("unavailable");
                match &stanza.to {
                    None if stanza.type_attr().is_none() || unavailable => {
                        s.presence = (!unavailable).then(|| stanza.el.clone());
                    }
                    Some(to) if to.resource().is_some() && to.node().is_some() => {
                        let room = to.to_bare().to_string();
                        if unavailable {
                            s.rooms.remove(&room);
                        } else if stanza.type_attr().is_none()
                            && stanza.el.get_child("x", crate::account::MUC_NS).is_some()
                        {
                            s.rooms.insert(room, stanza.el.clone());
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl Cluster {
    /// The node next in line for `account` after this one.
    pub(crate) fn backup_of(&self, view: &View, account: &str) -> Option<Arc<str>> {
        view.next_after(&self.node, account).cloned()
    }

    /// A session of this node bound to (or leaving) an account this node
    /// owns: tell the node next in line (see `backups`).
    pub(crate) fn back_up(self: &Arc<Self>, account: &BareJid, msg: &AccountMsg) {
        let (kind, resource, id) = match msg {
            AccountMsg::Bind {
                resource, handle, ..
            } if handle.remote_node().is_none() => ("RB", resource, handle.id),
            AccountMsg::Unbind {
                resource,
                session_id,
            } => ("RU", resource, *session_id),
            _ => return,
        };
        if let Some(backup) = self.backup_of(&self.view(), account.as_str()) {
            let e = frame::Entry::new(
                kind,
                &[account.as_str(), resource, &id.to_string()],
                Vec::new(),
            );
            self.push(&backup, links::Out::Entry(e));
        }
    }

    pub(crate) fn backups(&self) -> std::sync::MutexGuard<'_, SessionsByNode> {
        self.backups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Session ids are unique in the cluster: the node's name picks the top
/// 24 bits, a counter the rest.
fn session_id_base(node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((h >> 40) | 1) << 40
}

fn spawn_ticker(cluster: &Arc<Cluster>) {
    let c = cluster.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(c.config.heartbeat_ms.max(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(server) = c.server.upgrade() else {
                return;
            };
            if server.is_shutting_down() {
                return;
            }
            drop(server);
            c.heartbeat().await;
            c.membership.expire();
        }
    });
}
