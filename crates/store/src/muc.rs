//! XEP-0045 rooms as the MUC service stores them: settings (opaque to the
//! store), subject, and affiliations with reserved nicks (§7.10). A room's
//! XEP-0313 archive lives in the `ArchiveStore`, owned by the room's JID.

use async_trait::async_trait;
use jid::BareJid;

use crate::Result;

/// XEP-0045 §5.2: the affiliations that are stored ("none" is the absence
/// of a row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MucAffiliation {
    Owner,
    Admin,
    Member,
    Outcast,
}

impl MucAffiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            MucAffiliation::Owner => "owner",
            MucAffiliation::Admin => "admin",
            MucAffiliation::Member => "member",
            MucAffiliation::Outcast => "outcast",
        }
    }

    pub fn parse(s: &str) -> Option<MucAffiliation> {
        Some(match s {
            "owner" => MucAffiliation::Owner,
            "admin" => MucAffiliation::Admin,
            "member" => MucAffiliation::Member,
            "outcast" => MucAffiliation::Outcast,
            _ => return None,
        })
    }
}

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    /// The room's bare JID (`room@service`).
    pub jid: BareJid,
    /// Persistent rooms outlive their last occupant and restarts; the
    /// others are removed by the service at start (`remove_temporary_rooms`).
    pub persistent: bool,
    /// The room configuration as the MUC service serialised it.
    pub settings: String,
    pub subject: Option<StoredSubject>,
}

/// The current subject (XEP-0045 §8.1); an empty text means "cleared".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubject {
    pub text: String,
    /// Nick of the occupant who set it; empty when the room set it.
    pub nick: String,
    /// Milliseconds since the Unix epoch.
    pub stamp_ms: i64,
}

/// One affiliation of a bare JID (or a domain, for bans) with a room, and
/// the nick it reserved, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAffiliation {
    pub jid: BareJid,
    pub affiliation: MucAffiliation,
    pub nick: Option<String>,
    pub reason: Option<String>,
}

/// Rooms of a MUC service. Writes are committed before the call returns.
#[async_trait]
pub trait MucStore: Send + Sync {
    async fn room(&self, room: &BareJid) -> Result<Option<StoredRoom>>;
    /// The rooms of one service (the domain of their JIDs), sorted by JID.
    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>>;
    async fn count_rooms(&self, service: &str) -> Result<usize>;
    /// Create a room or replace its persistence and settings; the subject,
    /// and affiliations of an existing room are kept.
    async fn put_room(&self, room: &BareJid, persistent: bool, settings: &str) -> Result<()>;
    /// Set or clear the subject; `false` when there is no such room.
    async fn set_room_subject(
        &self,
        room: &BareJid,
        subject: Option<&StoredSubject>,
    ) -> Result<bool>;
    /// Remove a room with its affiliations; `false` when absent. (Its archive
    /// is removed through `ArchiveStore::remove_archive`.)
    async fn remove_room(&self, room: &BareJid) -> Result<bool>;
    /// Remove every temporary room of a service (left over by a stop);
    /// returns their JIDs, so that their archives can be removed too.
    async fn remove_temporary_rooms(&self, service: &str) -> Result<Vec<BareJid>>;
    async fn room_affiliations(&self, room: &BareJid) -> Result<Vec<StoredAffiliation>>;
    /// Insert or replace the affiliation of `entry.jid`; `false` when there
    /// is no such room.
    async fn set_room_affiliation(&self, room: &BareJid, entry: &StoredAffiliation)
        -> Result<bool>;
    /// Back to "none"; `true` when there was a row.
    async fn remove_room_affiliation(&self, room: &BareJid, jid: &BareJid) -> Result<bool>;
}
