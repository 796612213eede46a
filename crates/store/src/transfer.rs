//! Copying a whole store into another backend (`roost storage migrate`):
//! the rows of every table as stored, read in chunks in key order so that
//! archives of millions of rows never sit in memory at once.
//!
//! A source implements [`Export`] (the SQLite backend does); a target
//! imports from any `Export` (the PostgreSQL backend does, in one
//! transaction: `PostgresStore::import`). Rows carry JIDs as the stored
//! text, so nothing is normalised again or dropped on the way. Everything
//! else the server keeps (FAST tokens, push registrations, disabled
//! accounts, blocking lists, MAM preferences, vCards, bookmarks' extra
//! data, the message of the day) lives in private XML rows and travels
//! with them.

use std::fmt;

use async_trait::async_trait;

use crate::archive::ArchivedMessage;
use crate::muc::{StoredAffiliation, StoredRoom};
use crate::pubsub::{StoredItem, StoredNode, StoredNodeAffiliation, StoredSubscription};
use crate::{Result, RosterItem, StoredCredentials};

/// An account with its SCRAM credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub jid: String,
    pub credentials: StoredCredentials,
}

/// One roster item of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterRow {
    pub user: String,
    pub item: RosterItem,
}

/// An account's roster version (RFC 6121 §2.6); rosters never written have
/// none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterVersionRow {
    pub user: String,
    pub version: u64,
}

/// An inbound subscription request awaiting an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub user: String,
    pub contact: String,
    pub stanza: String,
}

/// An offline message with its id (ids only grow; the copy keeps them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineRow {
    pub id: i64,
    pub user: String,
    pub stanza: String,
}

/// Private XML of one account (or of the server's domain) under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateRow {
    pub user: String,
    pub key: String,
    pub xml: String,
}

/// An archived message; `seq` is its place in the source's archive order,
/// which the copy keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRow {
    pub seq: i64,
    pub owner: String,
    pub msg: ArchivedMessage,
}

/// A MUC room with its affiliations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub room: StoredRoom,
    pub affiliations: Vec<StoredAffiliation>,
}

/// A pubsub or PEP node with its subscriptions and affiliations (its items
/// come separately, they can be many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub owner: String,
    pub node: StoredNode,
    pub subscriptions: Vec<StoredSubscription>,
    pub affiliations: Vec<StoredNodeAffiliation>,
}

/// A published item of a node; `seq` is its place in publication order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub seq: i64,
    pub owner: String,
    pub node: String,
    pub item: StoredItem,
}

/// Rows per table, to print and to check a copy against its source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accounts: u64,
    pub roster_items: u64,
    pub roster_versions: u64,
    pub pending_in: u64,
    pub offline: u64,
    pub private: u64,
    pub archive: u64,
    pub rooms: u64,
    pub room_affiliations: u64,
    pub pubsub_nodes: u64,
    pub pubsub_items: u64,
    pub pubsub_subscriptions: u64,
    pub pubsub_affiliations: u64,
}

impl Counts {
    /// (name, rows) for each table, in copy order.
    pub fn rows(&self) -> [(&'static str, u64); 13] {
        [
            ("accounts", self.accounts),
            ("roster items", self.roster_items),
            ("roster versions", self.roster_versions),
            ("pending subscription requests", self.pending_in),
            ("offline messages", self.offline),
            ("private XML entries", self.private),
            ("archived messages", self.archive),
            ("MUC rooms", self.rooms),
            ("MUC affiliations", self.room_affiliations),
            ("pubsub/PEP nodes", self.pubsub_nodes),
            ("pubsub/PEP items", self.pubsub_items),
            ("pubsub subscriptions", self.pubsub_subscriptions),
            ("pubsub affiliations", self.pubsub_affiliations),
        ]
    }

    pub fn total(&self) -> u64 {
        self.rows().iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, n) in self.rows() {
            writeln!(f, "{n:>12}  {name}")?;
        }
        Ok(())
    }
}

/// Reading every row of a store, table by table. Each method returns up to
/// `limit` rows whose key is greater than `after`, in key order, each with
/// its key; an empty chunk ends the table. Keys are the source's own
/// (SQLite's rowids): only their order means anything.
#[async_trait]
pub trait Export: Send + Sync {
    /// The rows each table holds now.
    async fn export_counts(&self) -> Result<Counts>;
    async fn export_accounts(&self, after: i64, limit: usize) -> Result<Vec<(i64, AccountRow)>>;
    async fn export_roster_items(&self, after: i64, limit: usize) -> Result<Vec<(i64, RosterRow)>>;
    async fn export_roster_versions(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RosterVersionRow)>>;
    async fn export_pending_in(&self, after: i64, limit: usize) -> Result<Vec<(i64, PendingRow)>>;
    async fn export_offline(&self, after: i64, limit: usize) -> Result<Vec<(i64, OfflineRow)>>;
    async fn export_private(&self, after: i64, limit: usize) -> Result<Vec<(i64, PrivateRow)>>;
    /// In archive order.
    async fn export_archive(&self, after: i64, limit: usize) -> Result<Vec<(i64, ArchiveRow)>>;
    async fn export_rooms(&self, after: i64, limit: usize) -> Result<Vec<(i64, RoomRow)>>;
    async fn export_pubsub_nodes(&self, after: i64, limit: usize) -> Result<Vec<(i64, NodeRow)>>;
    /// In publication order.
    async fn export_pubsub_items(&self, after: i64, limit: usize) -> Result<Vec<(i64, ItemRow)>>;
}
