//! Storage behind traits (ARCHITECTURE.md "store"): feature code sees only
//! these traits; `sqlite` is the embedded backend, `postgres` the one for
//! larger and clustered deployments, `memory` serves tests.
//!
//! Durability rule (issue "server core"): every write a client is told about
//! is committed before the call returns.

pub mod archive;
pub mod memory;
pub mod muc;
pub mod postgres;
pub mod pubsub;
pub mod sqlite;
pub mod transfer;
pub mod types;

#[cfg(test)]
mod conformance;

use async_trait::async_trait;
use jid::BareJid;
use std::sync::Arc;

pub use archive::{ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage};
pub use memory::MemoryStore;
pub use muc::{MucAffiliation, MucStore, StoredAffiliation, StoredRoom, StoredSubject};
pub use postgres::PostgresStore;
pub use pubsub::{PubsubStore, StoredItem, StoredNode, StoredNodeAffiliation, StoredSubscription};
pub use sqlite::SqliteStore;
pub use types::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Accounts and their SCRAM credentials (never passwords).
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Create an account; `false` when it already exists.
    async fn create_account(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool>;
    async fn account_exists(&self, user: &BareJid) -> Result<bool>;
    async fn credentials(&self, user: &BareJid) -> Result<Option<StoredCredentials>>;
    /// Replace the credentials; `false` when there is no such account.
    async fn set_credentials(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool>;
    /// Remove the account and everything stored for it; `false` when absent.
    async fn remove_account(&self, user: &BareJid) -> Result<bool>;
    /// Accounts, optionally only those of one domain, sorted.
    async fn list_accounts(&self, domain: Option<&str>) -> Result<Vec<BareJid>>;
}

/// RFC 6121 rosters, with a per-account version counter (§2.6) and the
/// inbound subscription requests awaiting an answer (§3.1.3).
#[async_trait]
pub trait RosterStore: Send + Sync {
    /// The whole roster and its current version.
    async fn roster(&self, user: &BareJid) -> Result<(u64, Vec<RosterItem>)>;
    async fn roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>>;
    /// Insert or replace an item; returns the new roster version.
    async fn put_roster_item(&self, user: &BareJid, item: &RosterItem) -> Result<u64>;
    /// Remove an item; the new roster version, or `None` when it was absent.
    async fn remove_roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<u64>>;
    /// Remember an inbound subscription request (the stanza as XML).
    async fn put_pending_in(&self, user: &BareJid, contact: &BareJid, stanza: &str) -> Result<()>;
    /// Forget it; `true` when one was stored.
    async fn remove_pending_in(&self, user: &BareJid, contact: &BareJid) -> Result<bool>;
    async fn pending_in(&self, user: &BareJid) -> Result<Vec<(BareJid, String)>>;
}

/// XEP-0160 offline messages, oldest first.
#[async_trait]
pub trait OfflineStore: Send + Sync {
    /// Store a message unless the account already holds `limit`; `false` then.
    async fn push_offline(&self, user: &BareJid, stanza: &str, limit: usize) -> Result<bool>;
    /// The stored messages, oldest first, with their ids for `ack_offline`.
    async fn offline(&self, user: &BareJid) -> Result<Vec<(i64, String)>>;
    /// Delete delivered messages up to and including `up_to_id`.
    async fn ack_offline(&self, user: &BareJid, up_to_id: i64) -> Result<()>;
}

/// Private XML stored per account: vcard-temp (XEP-0054) and similar.
#[async_trait]
pub trait PrivateStore: Send + Sync {
    async fn get_private(&self, user: &BareJid, key: &str) -> Result<Option<String>>;
    async fn set_private(&self, user: &BareJid, key: &str, xml: Option<&str>) -> Result<()>;
    /// Every account's value under `key`, read once at start (the avatar
    /// hashes XEP-0398 puts into presence).
    async fn private_by_key(&self, key: &str) -> Result<Vec<(BareJid, String)>>;
}

/// All stores of one backend, as features receive them.
#[derive(Clone)]
pub struct Stores {
    pub accounts: Arc<dyn AccountStore>,
    pub roster: Arc<dyn RosterStore>,
    pub offline: Arc<dyn OfflineStore>,
    pub private: Arc<dyn PrivateStore>,
    pub archive: Arc<dyn ArchiveStore>,
    pub muc: Arc<dyn MucStore>,
    pub pubsub: Arc<dyn PubsubStore>,
}

impl Stores {
    /// One backend serving every trait.
    pub fn from_backend<B>(backend: Arc<B>) -> Stores
    where
        B: AccountStore
            + RosterStore
            + OfflineStore
            + PrivateStore
            + ArchiveStore
            + MucStore
            + PubsubStore
            + 'static,
    {
        Stores {
            accounts: backend.clone(),
            roster: backend.clone(),
            offline: backend.clone(),
            private: backend.clone(),
            archive: backend.clone(),
            muc: backend.clone(),
            pubsub: backend,
        }
    }
}
