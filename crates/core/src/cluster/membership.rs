//! Who is in the cluster: every node sends a heartbeat on the bus each
//! `heartbeat_ms`, and holds a lease of `lease_ms` from its last one. A
//! node whose lease ran out is gone: its sessions vanish and what it
//! owned moves (takeover.rs). A node stopping cleanly says goodbye, so
//! nobody waits for its lease.
//!
//! Leases live in each node's memory, fed by the bus, rather than in
//! JetStream KV or PostgreSQL: every stanza routed asks who owns its
//! account or room, which must be a lookup in memory, and a KV bucket's
//! TTL expiry tells no watcher, so nodes would have to poll it anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::frame::Entry;
use super::rendezvous;

/// What a heartbeat says about its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: Arc<str>,
    pub draining: bool,
    /// Sessions connected to the node.
    pub sessions: usize,
    /// External components (XEP-0114) connected to the node, by domain.
    pub components: Vec<String>,
    /// Random per process: a node restarted under the same name within
    /// its lease is a new node that lost the old one's sessions and tasks.
    pub incarnation: u64,
}

impl NodeInfo {
    pub fn to_entry(&self) -> Entry {
        let sessions = self.sessions.to_string();
        let components = self.components.join(",");
        let incarnation = self.incarnation.to_string();
        Entry::new(
            "HB",
            &[
                &self.name,
                if self.draining { "1" } else { "0" },
                &sessions,
                &components,
                &incarnation,
            ],
            Vec::new(),
        )
    }

    pub fn from_entry(e: &Entry) -> Option<NodeInfo> {
        if e.kind != "HB" || e.field(0).is_empty() {
            return None;
        }
        Some(NodeInfo {
            name: Arc::from(e.field(0)),
            draining: e.field(1) == "1",
            sessions: e.field(2).parse().unwrap_or(0),
            components: e
                .field(3)
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            incarnation: e.field(4).parse().unwrap_or(0),
        })
    }
}

/// The cluster as one node sees it at a moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Nodes holding a lease, sorted by name.
    pub live: Vec<Arc<str>>,
    /// Those of them that may own accounts and rooms (not draining).
    pub owners: Vec<Arc<str>>,
    /// Component domains and the node each is connected to.
    pub components: Vec<(String, Arc<str>)>,
    /// Each live node's incarnation, sorted by name.
    pub incarnations: Vec<(Arc<str>, u64)>,
}

impl View {
    /// The node owning `key` (an account's or a room's bare JID).
    pub fn owner(&self, key: &str) -> Option<&Arc<str>> {
        rendezvous::owner(&self.owners, key)
    }

    pub fn is_live(&self, node: &str) -> bool {
        self.live.iter().any(|n| n.as_ref() == node)
    }

    /// The owner of `key` if `node` were gone: next in line after it.
    pub fn next_after(&self, node: &str, key: &str) -> Option<&Arc<str>> {
        self.owners
            .iter()
            .filter(|n| n.as_ref() != node)
            .max_by_key(|n| (rendezvous::weight(n, key), n.as_ref().to_string()))
    }

    /// The incarnation of a live node.
    pub fn incarnation(&self, node: &str) -> Option<u64> {
        self.incarnations
            .iter()
            .find(|(n, _)| n.as_ref() == node)
            .map(|(_, i)| *i)
    }

    /// Whether `node` of `older` is still the same process here.
    pub fn still_has(&self, older: &View, node: &str) -> bool {
        self.is_live(node) && self.incarnation(node) == older.incarnation(node)
    }

    /// The owner of `key` here, as (name, incarnation).
    pub fn owner_instance(&self, key: &str) -> Option<(Arc<str>, Option<u64>)> {
        self.owner(key).map(|n| (n.clone(), self.incarnation(n)))
    }

    pub fn component_node(&self, domain: &str) -> Option<&Arc<str>> {
        self.components
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, n)| n)
    }
}

struct Known {
    info: NodeInfo,
    last: Instant,
}

pub struct Membership {
    me: Arc<str>,
    lease: Duration,
    nodes: Mutex<HashMap<Arc<str>, Known>>,
    view: watch::Sender<Arc<View>>,
}

impl Membership {
    pub fn new(me: NodeInfo, lease: Duration) -> Membership {
        let name = me.name.clone();
        let mut nodes = HashMap::new();
        nodes.insert(
            name.clone(),
            Known {
                info: me,
                last: Instant::now(),
            },
        );
        let m = Membership {
            me: name,
            lease,
            nodes: Mutex::new(nodes),
            view: watch::channel(Arc::new(View::default())).0,
        };
        m.recompute();
        m
    }

    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.view.subscribe()
    }

    /// Every node's last heartbeat, this one's included.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut list: Vec<NodeInfo> = self.lock().values().map(|k| k.info.clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Known>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A heartbeat arrived (ours too, from the ticker).
    pub fn heard(&self, info: NodeInfo) {
        let changed = {
            let mut nodes = self.lock();
            let now = Instant::now();
            match nodes.get_mut(&info.name) {
                Some(k) => {
                    let changed = k.info.draining != info.draining
                        || k.info.components != info.components
                        || k.info.incarnation != info.incarnation;
                    if k.info.incarnation != info.incarnation {
                        tracing::warn!(node = %info.name, "cluster node restarted");
                    }
                    k.info = info;
                    k.last = now;
                    changed
                }
                None => {
                    nodes.insert(info.name.clone(), Known { info, last: now });
                    true
                }
            }
        };
        if changed {
            self.recompute();
        }
    }

    /// A node said goodbye.
    pub fn left(&self, name: &str) {
        if name == self.me.as_ref() {
            return;
        }
        let removed = self.lock().remove(name).is_some();
        if removed {
            tracing::info!(node = name, "cluster node left");
            self.recompute();
        }
    }

    /// Drop the nodes whose lease ran out.
    pub fn expire(&self) {
        let gone: Vec<Arc<str>> = {
            let mut nodes = self.lock();
            let now = Instant::now();
            let gone: Vec<Arc<str>> = nodes
                .iter()
                .filter(|(n, k)| **n != self.me && now.duration_since(k.last) > self.lease)
                .map(|(n, _)| n.clone())
                .collect();
            for n in &gone {
                nodes.remove(n);
            }
            gone
        };
        if !gone.is_empty() {
            for n in &gone {
                tracing::warn!(node = %n, "cluster node's lease ran out");
            }
            self.recompute();
        }
    }

    fn recompute(&self) {
        let view = {
            let nodes = self.lock();
            let mut live: Vec<Arc<str>> = nodes.keys().cloned().collect();
            live.sort();
            let owners = live
                .iter()
                .filter(|n| nodes.get(*n).is_some_and(|k| !k.info.draining))
                .cloned()
                .collect();
            let mut components: Vec<(String, Arc<str>)> = nodes
                .values()
                .flat_map(|k| {
                    k.info
                        .components
                        .iter()
                        .map(|c| (c.clone(), k.info.name.clone()))
                })
                .collect();
            components.sort();
            let incarnations = live
                .iter()
                .map(|n| (n.clone(), nodes.get(n).map_or(0, |k| k.info.incarnation)))
                .collect();
            View {
                live,
                owners,
                components,
                incarnations,
            }
        };
        self.view.send_if_modified(|v| {
            if **v == view {
                false
            } else {
                *v = Arc::new(view);
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, draining: bool) -> NodeInfo {
        NodeInfo {
            name: Arc::from(name),
            draining,
            sessions: 0,
            components: vec![],
            incarnation: 1,
        }
    }

    #[test]
    fn heartbeats_make_nodes_live_and_draining_ones_own_nothing() {
        let m = Membership::new(info("n1", false), Duration::from_secs(5));
        m.heard(info("n2", false));
        m.heard(info("n3", true));
        let v = m.view();
        assert_eq!(v.live.len(), 3);
        assert_eq!(v.owners.len(), 2);
        for i in 0..200 {
            assert_ne!(v.owner(&format!("a{i}@x")).unwrap().as_ref(), "n3");
        }
        m.left("n2");
        assert_eq!(m.view().live.len(), 2);
    }

    #[test]
    fn a_restart_under_the_same_name_changes_the_view() {
        let m = Membership::new(info("n1", false), Duration::from_secs(5));
        m.heard(info("n2", false));
        let before = m.view();
        let mut again = info("n2", false);
        again.incarnation = 2;
        m.heard(again);
        let after = m.view();
        assert_ne!(before, after);
        assert_eq!(before.live, after.live);
        assert!(!after.still_has(&before, "n2"));
        assert!(after.still_has(&before, "n1"));
    }

    #[test]
    fn leases_run_out_but_not_our_own() {
        let m = Membership::new(info("n1", false), Duration::from_millis(10));
        m.heard(info("n2", false));
        std::thread::sleep(Duration::from_millis(30));
        m.expire();
        let v = m.view();
        assert_eq!(v.live, vec![Arc::<str>::from("n1")]);
    }

    #[test]
    fn heartbeats_round_trip() {
        let mut i = info("n7", true);
        i.sessions = 42;
        i.components = vec!["gw.example.org".into(), "bot.example.org".into()];
        i.incarnation = 987654321;
        assert_eq!(NodeInfo::from_entry(&i.to_entry()), Some(i));
    }
}
