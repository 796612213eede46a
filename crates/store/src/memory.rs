//! In-memory backend for unit tests: every trait over maps behind one mutex.
//!
//! Nothing survives the process; behaviour matches the SQLite backend (both
//! run the same conformance suite), so tests written against it hold for the
//! real server.

use crate::archive::{ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage};
use crate::{
    AccountStore, OfflineStore, PrivateStore, Result, RosterItem, RosterStore, StoreError,
    StoredCredentials,
};
use async_trait::async_trait;
use jid::BareJid;
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
        self.lock()?
            .archives
            .entry(owner.clone())
            .or_default()
            .push(msg.clone());
        Ok(())
    }

    async fn query_archive(&self, owner: &BareJid, q: &ArchiveQuery) -> Result<Option<ArchivePage>> {
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
        let range = if low < high { &all[low..high] } else { &all[0..0] };
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

    async fn archive_bounds(&self, owner: &BareJid) -> Result<Option<(ArchivedMessage, ArchivedMessage)>> {
        let inner = self.lock()?;
        Ok(inner
            .archives
            .get(owner)
            .and_then(|a| Some((a.first()?.clone(), a.last()?.clone()))))
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

    async fn remove_archive(&self, owner: &BareJid) -> Result<()> {
        self.lock()?.archives.remove(owner);
        Ok(())
    }
}
