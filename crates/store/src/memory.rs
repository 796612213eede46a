//! In-memory backend for unit tests: every trait over maps behind one mutex.
//!
//! Nothing survives the process; behaviour matches the SQLite backend (both
//! run the same conformance suite), so tests written against it hold for the
//! real server.

use crate::archive::{ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage};
use crate::muc::{MucStore, StoredAffiliation, StoredRoom, StoredSubject};
use crate::pubsub::{
    PubsubStore, StoredItem, StoredNode, StoredNodeAffiliation, StoredSubscription,
};
use crate::{
    AccountStore, OfflineStore, PrivateStore, Result, RosterItem, RosterStore, StoreError,
    StoredCredentials,
};
use async_trait::async_trait;
use jid::{BareJid, Jid};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// One account's roster state.
#[derive(Default)]
struct Roster {
    /// 0 until the first write, like the SQLite backend.
    version: u64,
    items: BTreeMap<BareJid, RosterItem>,
    pending_in: BTreeMap<BareJid, String>,
}

#[derive(Default)]
struct Inner {
    accounts: BTreeMap<BareJid, StoredCredentials>,
    rosters: HashMap<BareJid, Roster>,
    offline: HashMap<BareJid, Vec<(i64, String)>>,
    /// Ids are never reused, so an ack can't hit a message stored after it.
    last_offline_id: i64,
    private: HashMap<BareJid, HashMap<String, String>>,
    archives: HashMap<BareJid, Vec<ArchivedMessage>>,
    muc_rooms: BTreeMap<BareJid, MemoryRoom>,
    /// Owner -> node name -> node.
    pubsub: HashMap<BareJid, BTreeMap<String, MemoryNode>>,
}

/// All storage traits over process memory. A single lock keeps multi-map
/// operations such as `remove_account` atomic.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store mutex poisoned".into()))
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_account(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool> {
        let mut inner = self.lock()?;
        if inner.accounts.contains_key(user) {
            return Ok(false);
        }
        inner.accounts.insert(user.clone(), creds.clone());
        Ok(true)
    }

    async fn account_exists(&self, user: &BareJid) -> Result<bool> {
        Ok(self.lock()?.accounts.contains_key(user))
    }

    async fn credentials(&self, user: &BareJid) -> Result<Option<StoredCredentials>> {
        Ok(self.lock()?.accounts.get(user).cloned())
    }

    async fn set_credentials(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool> {
        match self.lock()?.accounts.get_mut(user) {
            Some(stored) => {
                *stored = creds.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn remove_account(&self, user: &BareJid) -> Result<bool> {
        let mut inner = self.lock()?;
        let existed = inner.accounts.remove(user).is_some();
        inner.rosters.remove(user);
        inner.offline.remove(user);
        inner.private.remove(user);
        inner.archives.remove(user);
        inner.pubsub.remove(user);
        // Its subscriptions and affiliations in other owners' nodes too.
        for node in inner.pubsub.values_mut().flat_map(|n| n.values_mut()) {
            node.subscriptions.retain(|_, s| s.jid.to_bare() != *user);
            node.affiliations.remove(user.as_str());
        }
        Ok(existed)
    }

    async fn list_accounts(&self, domain: Option<&str>) -> Result<Vec<BareJid>> {
        // BTreeMap iteration is already in BareJid order.
        Ok(self
            .lock()?
            .accounts
            .keys()
            .filter(|jid| domain.is_none_or(|d| jid.domain().as_str() == d))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl RosterStore for MemoryStore {
    async fn roster(&self, user: &BareJid) -> Result<(u64, Vec<RosterItem>)> {
        let inner = self.lock()?;
        Ok(match inner.rosters.get(user) {
            Some(r) => (r.version, r.items.values().cloned().collect()),
            None => (0, Vec::new()),
        })
    }

    async fn roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>> {
        let inner = self.lock()?;
        Ok(inner
            .rosters
            .get(user)
            .and_then(|r| r.items.get(contact))
            .cloned())
    }

    async fn put_roster_item(&self, user: &BareJid, item: &RosterItem) -> Result<u64> {
        let mut inner = self.lock()?;
        let roster = inner.rosters.entry(user.clone()).or_default();
        roster.items.insert(item.jid.clone(), item.clone());
        roster.version += 1;
        Ok(roster.version)
    }

    async fn remove_roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<u64>> {
        let mut inner = self.lock()?;
        let Some(roster) = inner.rosters.get_mut(user) else {
            return Ok(None);
        };
        if roster.items.remove(contact).is_none() {
            return Ok(None);
        }
        roster.version += 1;
        Ok(Some(roster.version))
    }

    async fn put_pending_in(&self, user: &BareJid, contact: &BareJid, stanza: &str) -> Result<()> {
        let mut inner = self.lock()?;
        let roster = inner.rosters.entry(user.clone()).or_default();
        roster.pending_in.insert(contact.clone(), stanza.to_owned());
        Ok(())
    }

    async fn remove_pending_in(&self, user: &BareJid, contact: &BareJid) -> Result<bool> {
        let mut inner = self.lock()?;
        Ok(inner
            .rosters
            .get_mut(user)
            .is_some_and(|r| r.pending_in.remove(contact).is_some()))
    }

    async fn pending_in(&self, user: &BareJid) -> Result<Vec<(BareJid, String)>> {
        let inner = self.lock()?;
        Ok(inner
            .rosters
            .get(user)
            .map(|r| {
                r.pending_in
                    .iter()
                    .map(|(jid, stanza)| (jid.clone(), stanza.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl OfflineStore for MemoryStore {
    async fn push_offline(&self, user: &BareJid, stanza: &str, limit: usize) -> Result<bool> {
        let mut inner = self.lock()?;
        if inner.offline.get(user).map_or(0, Vec::len) >= limit {
            return Ok(false);
        }
        inner.last_offline_id += 1;
        let id = inner.last_offline_id;
        inner
            .offline
            .entry(user.clone())
            .or_default()
            .push((id, stanza.to_owned()));
        Ok(true)
    }

    async fn offline(&self, user: &BareJid) -> Result<Vec<(i64, String)>> {
        Ok(self.lock()?.offline.get(user).cloned().unwrap_or_default())
    }

    async fn ack_offline(&self, user: &BareJid, up_to_id: i64) -> Result<()> {
        let mut inner = self.lock()?;
        if let Some(messages) = inner.offline.get_mut(user) {
            messages.retain(|(id, _)| *id > up_to_id);
            if messages.is_empty() {
                inner.offline.remove(user);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl PrivateStore for MemoryStore {
    async fn get_private(&self, user: &BareJid, key: &str) -> Result<Option<String>> {
        let inner = self.lock()?;
        Ok(inner.private.get(user).and_then(|m| m.get(key)).cloned())
    }

    async fn private_by_key(&self, key: &str) -> Result<Vec<(BareJid, String)>> {
        let inner = self.lock()?;
        Ok(inner
            .private
            .iter()
            .filter_map(|(user, m)| m.get(key).map(|xml| (user.clone(), xml.clone())))
            .collect())
    }

    async fn set_private(&self, user: &BareJid, key: &str, xml: Option<&str>) -> Result<()> {
        let mut inner = self.lock()?;
        match xml {
            Some(xml) => {
                inner
                    .private
                    .entry(user.clone())
                    .or_default()
                    .insert(key.to_owned(), xml.to_owned());
            }
            None => {
                if let Some(m) = inner.private.get_mut(user) {
                    m.remove(key);
                    if m.is_empty() {
                        inner.private.remove(user);
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ArchiveStore for MemoryStore {
    async fn archive(&self, owner: &BareJid, msg: &ArchivedMessage) -> Result<()> {
        let mut inner = self.lock()?;
        let archive = inner.archives.entry(owner.clone()).or_default();
        // A stanza-id seen before is kept once, as in SQLite.
        if !archive.iter().any(|m| m.id == msg.id) {
            archive.push(msg.clone());
        }
        Ok(())
    }

    fn archive_queued(&self, owner: &BareJid, msg: ArchivedMessage) {
        // Nothing to wait for in memory: stored at once.
        let Ok(mut inner) = self.lock() else { return };
        let archive = inner.archives.entry(owner.clone()).or_default();
        if !archive.iter().any(|m| m.id == msg.id) {
            archive.push(msg);
        }
    }

    async fn settle_archive(&self) -> Result<()> {
        Ok(())
    }

    async fn query_archive(
        &self,
        owner: &BareJid,
        q: &ArchiveQuery,
    ) -> Result<Option<ArchivePage>> {
        let inner = self.lock()?;
        let empty = Vec::new();
        let all = inner.archives.get(owner).unwrap_or(&empty);
        let position = |id: &str| all.iter().position(|m| m.id == id);
        let mut low = 0usize;
        let mut high = all.len();
        if let Some(id) = &q.after_id {
            match position(id) {
                Some(p) => low = low.max(p + 1),
                None => return Ok(None),
            }
        }
        if let Some(id) = &q.before_id {
            match position(id) {
                Some(p) => high = high.min(p),
                None => return Ok(None),
            }
        }
        let matches = |m: &&ArchivedMessage| {
            q.start_ms.is_none_or(|s| m.stamp_ms >= s)
                && q.end_ms.is_none_or(|e| m.stamp_ms <= e)
                && q.with.as_ref().is_none_or(|w| {
                    if w.contains('/') {
                        &m.with == w
                    } else {
                        m.with.split('/').next() == Some(w.as_str())
                    }
                })
                && (q.ids.is_empty() || q.ids.contains(&m.id))
        };
        let range = if low < high {
            &all[low..high]
        } else {
            &all[0..0]
        };
        let selected: Vec<&ArchivedMessage> = range.iter().filter(matches).collect();
        let complete = selected.len() <= q.max;
        let page: Vec<ArchivedMessage> = if q.from_end {
            selected[selected.len().saturating_sub(q.max)..]
                .iter()
                .map(|m| (*m).clone())
                .collect()
        } else {
            selected.iter().take(q.max).map(|m| (*m).clone()).collect()
        };
        Ok(Some(ArchivePage {
            messages: page,
            complete,
        }))
    }

    async fn archive_bounds(
        &self,
        owner: &BareJid,
    ) -> Result<Option<(ArchivedMessage, ArchivedMessage)>> {
        let inner = self.lock()?;
        Ok(inner
            .archives
            .get(owner)
            .and_then(|a| Some((a.first()?.clone(), a.last()?.clone()))))
    }

    async fn archive_count(&self, owner: &BareJid) -> Result<Option<u64>> {
        let inner = self.lock()?;
        Ok(Some(
            inner.archives.get(owner).map_or(0, |a| a.len() as u64),
        ))
    }

    async fn purge_archive_before(&self, stamp_ms: i64) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut n = 0u64;
        for a in inner.archives.values_mut() {
            let before = a.len();
            a.retain(|m| m.stamp_ms >= stamp_ms);
            n += (before - a.len()) as u64;
        }
        Ok(n)
    }

    async fn replace_archived(&self, owner: &BareJid, id: &str, xml: &str) -> Result<bool> {
        let mut inner = self.lock()?;
        let found = inner
            .archives
            .get_mut(owner)
            .and_then(|a| a.iter_mut().find(|m| m.id == id));
        Ok(match found {
            Some(m) => {
                m.xml = xml.to_string();
                true
            }
            None => false,
        })
    }

    async fn remove_archive(&self, owner: &BareJid) -> Result<()> {
        self.lock()?.archives.remove(owner);
        Ok(())
    }
}

/// A room with its affiliations, like a `muc_rooms` row and its
/// `muc_affiliations`.
struct MemoryRoom {
    room: StoredRoom,
    affiliations: BTreeMap<BareJid, StoredAffiliation>,
}

#[async_trait]
impl MucStore for MemoryStore {
    async fn room(&self, room: &BareJid) -> Result<Option<StoredRoom>> {
        Ok(self.lock()?.muc_rooms.get(room).map(|r| r.room.clone()))
    }

    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>> {
        Ok(self
            .lock()?
            .muc_rooms
            .values()
            .filter(|r| r.room.jid.domain().as_str() == service)
            .map(|r| r.room.clone())
            .collect())
    }

    async fn count_rooms(&self, service: &str) -> Result<usize> {
        Ok(self
            .lock()?
            .muc_rooms
            .keys()
            .filter(|jid| jid.domain().as_str() == service)
            .count())
    }

    async fn put_room(&self, room: &BareJid, persistent: bool, settings: &str) -> Result<()> {
        let mut inner = self.lock()?;
        let entry = inner
            .muc_rooms
            .entry(room.clone())
            .or_insert_with(|| MemoryRoom {
                room: StoredRoom {
                    jid: room.clone(),
                    persistent,
                    settings: String::new(),
                    subject: None,
                },
                affiliations: BTreeMap::new(),
            });
        entry.room.persistent = persistent;
        entry.room.settings = settings.to_owned();
        Ok(())
    }

    async fn set_room_subject(
        &self,
        room: &BareJid,
        subject: Option<&StoredSubject>,
    ) -> Result<bool> {
        let mut inner = self.lock()?;
        Ok(match inner.muc_rooms.get_mut(room) {
            Some(r) => {
                r.room.subject = subject.cloned();
                true
            }
            None => false,
        })
    }

    async fn remove_room(&self, room: &BareJid) -> Result<bool> {
        Ok(self.lock()?.muc_rooms.remove(room).is_some())
    }

    async fn remove_temporary_rooms(&self, service: &str) -> Result<Vec<BareJid>> {
        let mut inner = self.lock()?;
        let gone: Vec<BareJid> = inner
            .muc_rooms
            .values()
            .filter(|r| !r.room.persistent && r.room.jid.domain().as_str() == service)
            .map(|r| r.room.jid.clone())
            .collect();
        for jid in &gone {
            inner.muc_rooms.remove(jid);
        }
        Ok(gone)
    }

    async fn room_affiliations(&self, room: &BareJid) -> Result<Vec<StoredAffiliation>> {
        Ok(self
            .lock()?
            .muc_rooms
            .get(room)
            .map(|r| r.affiliations.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn set_room_affiliation(
        &self,
        room: &BareJid,
        entry: &StoredAffiliation,
    ) -> Result<bool> {
        let mut inner = self.lock()?;
        Ok(match inner.muc_rooms.get_mut(room) {
            Some(r) => {
                r.affiliations.insert(entry.jid.clone(), entry.clone());
                true
            }
            None => false,
        })
    }

    async fn remove_room_affiliation(&self, room: &BareJid, jid: &BareJid) -> Result<bool> {
        let mut inner = self.lock()?;
        Ok(inner
            .muc_rooms
            .get_mut(room)
            .is_some_and(|r| r.affiliations.remove(jid).is_some()))
    }
}

/// A pubsub node with its items, oldest first (like `seq` order in SQLite).
struct MemoryNode {
    config: String,
    items: Vec<StoredItem>,
    /// By subscriber JID text, so iteration is in the SQLite order.
    subscriptions: BTreeMap<String, StoredSubscription>,
    /// Bare JID text -> affiliation.
    affiliations: BTreeMap<String, String>,
}

impl MemoryNode {
    /// Keep the newest `keep` items; the ids deleted.
    fn trim(&mut self, keep: usize) -> Vec<String> {
        let excess = self.items.len().saturating_sub(keep);
        let mut gone: Vec<String> = self.items.drain(..excess).map(|i| i.id).collect();
        gone.reverse();
        gone
    }
}

#[async_trait]
impl PubsubStore for MemoryStore {
    async fn create_node(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool> {
        let mut inner = self.lock()?;
        let nodes = inner.pubsub.entry(owner.clone()).or_default();
        if nodes.contains_key(node) {
            return Ok(false);
        }
        nodes.insert(
            node.to_owned(),
            MemoryNode {
                config: config.to_owned(),
                items: Vec::new(),
                subscriptions: BTreeMap::new(),
                affiliations: BTreeMap::new(),
            },
        );
        Ok(true)
    }

    async fn node(&self, owner: &BareJid, node: &str) -> Result<Option<StoredNode>> {
        Ok(self
            .lock()?
            .pubsub
            .get(owner)
            .and_then(|n| n.get(node))
            .map(|n| StoredNode {
                name: node.to_owned(),
                config: n.config.clone(),
            }))
    }

    async fn nodes(&self, owner: &BareJid) -> Result<Vec<StoredNode>> {
        Ok(self
            .lock()?
            .pubsub
            .get(owner)
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|(name, n)| StoredNode {
                        name: name.clone(),
                        config: n.config.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn set_node_config(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool> {
        let mut inner = self.lock()?;
        Ok(
            match inner.pubsub.get_mut(owner).and_then(|n| n.get_mut(node)) {
                Some(n) => {
                    n.config = config.to_owned();
                    true
                }
                None => false,
            },
        )
    }

    async fn delete_node(&self, owner: &BareJid, node: &str) -> Result<bool> {
        let mut inner = self.lock()?;
        Ok(inner
            .pubsub
            .get_mut(owner)
            .is_some_and(|n| n.remove(node).is_some()))
    }

    async fn publish_item(
        &self,
        owner: &BareJid,
        node: &str,
        item: &StoredItem,
        max_items: usize,
    ) -> Result<Option<Vec<String>>> {
        let mut inner = self.lock()?;
        let Some(n) = inner.pubsub.get_mut(owner).and_then(|n| n.get_mut(node)) else {
            return Ok(None);
        };
        n.items.retain(|i| i.id != item.id);
        n.items.push(item.clone());
        Ok(Some(n.trim(max_items)))
    }

    async fn retract_item(&self, owner: &BareJid, node: &str, id: &str) -> Result<bool> {
        let mut inner = self.lock()?;
        let Some(n) = inner.pubsub.get_mut(owner).and_then(|n| n.get_mut(node)) else {
            return Ok(false);
        };
        let before = n.items.len();
        n.items.retain(|i| i.id != id);
        Ok(n.items.len() != before)
    }

    async fn trim_items(&self, owner: &BareJid, node: &str, keep: usize) -> Result<u64> {
        let mut inner = self.lock()?;
        Ok(inner
            .pubsub
            .get_mut(owner)
            .and_then(|n| n.get_mut(node))
            .map_or(0, |n| n.trim(keep).len() as u64))
    }

    async fn items(
        &self,
        owner: &BareJid,
        node: &str,
        max: Option<usize>,
    ) -> Result<Vec<StoredItem>> {
        let inner = self.lock()?;
        let Some(n) = inner.pubsub.get(owner).and_then(|n| n.get(node)) else {
            return Ok(Vec::new());
        };
        Ok(n.items
            .iter()
            .rev()
            .take(max.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn items_by_id(
        &self,
        owner: &BareJid,
        node: &str,
        ids: &[String],
    ) -> Result<Vec<StoredItem>> {
        let inner = self.lock()?;
        let Some(n) = inner.pubsub.get(owner).and_then(|n| n.get(node)) else {
            return Ok(Vec::new());
        };
        Ok(n.items
            .iter()
            .rev()
            .filter(|i| ids.contains(&i.id))
            .cloned()
            .collect())
    }

    async fn remove_pubsub(&self, owner: &BareJid) -> Result<()> {
        self.lock()?.pubsub.remove(owner);
        Ok(())
    }

    async fn put_subscription(
        &self,
        owner: &BareJid,
        node: &str,
        sub: &StoredSubscription,
    ) -> Result<bool> {
        let mut inner = self.lock()?;
        let Some(n) = inner.pubsub.get_mut(owner).and_then(|n| n.get_mut(node)) else {
            return Ok(false);
        };
        n.subscriptions.insert(sub.jid.to_string(), sub.clone());
        Ok(true)
    }

    async fn remove_subscription(&self, owner: &BareJid, node: &str, jid: &Jid) -> Result<bool> {
        let mut inner = self.lock()?;
        Ok(inner
            .pubsub
            .get_mut(owner)
            .and_then(|n| n.get_mut(node))
            .is_some_and(|n| n.subscriptions.remove(jid.as_str()).is_some()))
    }

    async fn subscriptions(&self, owner: &BareJid, node: &str) -> Result<Vec<StoredSubscription>> {
        let inner = self.lock()?;
        Ok(inner
            .pubsub
            .get(owner)
            .and_then(|n| n.get(node))
            .map(|n| n.subscriptions.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn subscriptions_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, StoredSubscription)>> {
        let inner = self.lock()?;
        let Some(nodes) = inner.pubsub.get(owner) else {
            return Ok(Vec::new());
        };
        Ok(nodes
            .iter()
            .flat_map(|(name, n)| {
                n.subscriptions
                    .values()
                    .filter(|s| s.jid.to_bare() == *account)
                    .map(|s| (name.clone(), s.clone()))
            })
            .collect())
    }

    async fn set_node_affiliation(
        &self,
        owner: &BareJid,
        node: &str,
        jid: &BareJid,
        affiliation: Option<&str>,
    ) -> Result<bool> {
        let mut inner = self.lock()?;
        let Some(n) = inner.pubsub.get_mut(owner).and_then(|n| n.get_mut(node)) else {
            return Ok(false);
        };
        match affiliation {
            Some(a) => {
                n.affiliations.insert(jid.to_string(), a.to_owned());
            }
            None => {
                n.affiliations.remove(jid.as_str());
            }
        }
        Ok(true)
    }

    async fn node_affiliations(
        &self,
        owner: &BareJid,
        node: &str,
    ) -> Result<Vec<StoredNodeAffiliation>> {
        let inner = self.lock()?;
        let Some(n) = inner.pubsub.get(owner).and_then(|n| n.get(node)) else {
            return Ok(Vec::new());
        };
        n.affiliations
            .iter()
            .map(|(jid, affiliation)| {
                Ok(StoredNodeAffiliation {
                    jid: BareJid::new(jid)
                        .map_err(|e| StoreError::Corrupt(format!("affiliated JID {jid:?}: {e}")))?,
                    affiliation: affiliation.clone(),
                })
            })
            .collect()
    }

    async fn affiliations_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, String)>> {
        let inner = self.lock()?;
        Ok(inner
            .pubsub
            .get(owner)
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|(name, n)| {
                        n.affiliations
                            .get(account.as_str())
                            .map(|a| (name.clone(), a.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}
