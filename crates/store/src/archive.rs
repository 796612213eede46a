//! Message archives (XEP-0313): one archive per owner (an account's bare
//! JID, or a room's). Queries are ranges over the archive's own order, so
//! paging stays cheap however large an archive grows.

use async_trait::async_trait;
use jid::BareJid;

use crate::Result;

/// One archived message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The XEP-0359 stanza-id given on arrival; unique per owner.
    pub id: String,
    /// The other party, as a full or bare JID.
    pub with: String,
    /// Milliseconds since the Unix epoch.
    pub stamp_ms: i64,
    /// The message as XML.
    pub xml: String,
}

/// XEP-0313 §4.1 filters and XEP-0059 paging, already validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Bare JID: all of its resources; full JID: exactly that one.
    pub with: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Only messages after / before the one with this id.
    pub after_id: Option<String>,
    pub before_id: Option<String>,
    /// Only these ids (XEP-0313 `ids` field); other filters still apply.
    pub ids: Vec<String>,
    /// Page size.
    pub max: usize,
    /// Take the page from the end of the range (RSM `<before/>`).
    pub from_end: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    /// Oldest first.
    pub messages: Vec<ArchivedMessage>,
    /// No more messages in the direction of paging.
    pub complete: bool,
}

#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Append a message; the stamp should not go backwards. Returns once
    /// the message is stored.
    async fn archive(&self, owner: &BareJid, msg: &ArchivedMessage) -> Result<()>;
    /// Append a message without waiting for it to be durable. Messages
    /// queued this way keep their order, and every later query of this
    /// store sees them; a failure is logged, not returned.
    fn archive_queued(&self, owner: &BareJid, msg: ArchivedMessage);
    /// Keep `token` until every message queued before this call is
    /// durable, then drop it. The server hangs a client's stream
    /// management receipt here (XEP-0198: acknowledge only what is safe)
    /// without waiting for the commit itself. A store that stores at once
    /// drops it at once.
    fn hold_until_archived(&self, token: Box<dyn std::any::Any + Send>) {
        drop(token);
    }
    /// Wait until every message queued so far is stored (shutdown).
    async fn settle_archive(&self) -> Result<()>;
    /// A page, or `None` when `after_id`/`before_id` names no message.
    async fn query_archive(&self, owner: &BareJid, q: &ArchiveQuery)
        -> Result<Option<ArchivePage>>;
    /// The first and last messages (XEP-0313 §6 metadata).
    async fn archive_bounds(
        &self,
        owner: &BareJid,
    ) -> Result<Option<(ArchivedMessage, ArchivedMessage)>>;
    /// How many messages the owner's archive holds (the XEP-0059 `<count/>`
    /// of a query without filters), when the backend keeps that number
    /// without scanning the archive; `None` when it does not.
    async fn archive_count(&self, owner: &BareJid) -> Result<Option<u64>> {
        let _ = owner;
        Ok(None)
    }
    /// Delete every message older than `stamp_ms` (retention); returns how many.
    async fn purge_archive_before(&self, stamp_ms: i64) -> Result<u64>;
    /// Delete an owner's whole archive.
    async fn remove_archive(&self, owner: &BareJid) -> Result<()>;
    /// Replace one message's XML, keeping its id, place and stamp
    /// (XEP-0424/XEP-0425 tombstones); `false` when there is no such
    /// message.
    async fn replace_archived(&self, owner: &BareJid, id: &str, xml: &str) -> Result<bool>;
}
