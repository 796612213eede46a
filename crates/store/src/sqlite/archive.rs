//! `ArchiveStore` on SQLite: rows in arrival order (the INTEGER PRIMARY KEY),
//! every filter turned into a range of that key through an index, so no
//! query scans an archive.

use super::{jid_text, Cached, Db, SqliteStore};
use crate::archive::{ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage};
use crate::Result;
use async_trait::async_trait;
use jid::BareJid;
use rusqlite::{params, Connection, OptionalExtension};

fn row_of(conn: &Connection, owner: &str, id: &str) -> Result<Option<i64>> {
    conn.query_row_cached(
        "SELECT seq FROM archive WHERE owner = ?1 AND stanza_id = ?2",
        params![owner, id],
        |r| r.get(0),
    )
    .optional()
    .db()
}

fn message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ArchivedMessage> {
    Ok(ArchivedMessage {
        id: row.get(0)?,
        with: row.get(1)?,
        stamp_ms: row.get(2)?,
        xml: row.get(3)?,
    })
}

fn query(conn: &Connection, owner: &str, q: &ArchiveQuery) -> Result<Option<ArchivePage>> {
    let mut low = i64::MIN;
    let mut high = i64::MAX;
    if let Some(id) = &q.after_id {
        match row_of(conn, owner, id)? {
            Some(seq) => low = low.max(seq + 1),
            None => return Ok(None),
        }
    }
    if let Some(id) = &q.before_id {
        match row_of(conn, owner, id)? {
            Some(seq) => high = high.min(seq - 1),
            None => return Ok(None),
        }
    }
    // Time bounds become key bounds through the (owner, stamp) index.
    if let Some(start) = q.start_ms {
        let seq: Option<i64> = conn
            .query_row_cached(
                "SELECT MIN(seq) FROM archive WHERE owner = ?1 AND stamp >= ?2",
                params![owner, start],
                |r| r.get(0),
            )
            .db()?;
        low = low.max(seq.unwrap_or(i64::MAX));
    }
    if let Some(end) = q.end_ms {
        let seq: Option<i64> = conn
            .query_row_cached(
                "SELECT MAX(seq) FROM archive WHERE owner = ?1 AND stamp <= ?2",
                params![owner, end],
                |r| r.get(0),
            )
            .db()?;
        high = high.min(seq.unwrap_or(i64::MIN));
    }
    let order = if q.from_end { "DESC" } else { "ASC" };
    let limit = (q.max as i64).saturating_add(1);
    let mut sql = String::from(
        "SELECT stanza_id, with_jid, stamp, xml FROM archive WHERE owner = ?1 AND seq BETWEEN ?2 AND ?3",
    );
    let mut args: Vec<rusqlite::types::Value> =
        vec![owner.to_string().into(), low.into(), high.into()];
    if let Some(with) = &q.with {
        if with.contains('/') {
            sql.push_str(" AND with_jid = ?4");
        } else {
            sql.push_str(" AND with_bare = ?4");
        }
        args.push(with.clone().into());
    }
    if !q.ids.is_empty() {
        let first = args.len() + 1;
        let marks: Vec<String> = (0..q.ids.len())
            .map(|i| format!("?{}", first + i))
            .collect();
        sql.push_str(&format!(" AND stanza_id IN ({})", marks.join(",")));
        args.extend(q.ids.iter().map(|i| i.clone().into()));
    }
    sql.push_str(&format!(" ORDER BY seq {order} LIMIT {limit}"));
    let mut rows: Vec<ArchivedMessage> = conn
        .prepare_cached(&sql)
        .db()?
        .query_map(rusqlite::params_from_iter(args), message)
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    let complete = rows.len() <= q.max;
    rows.truncate(q.max);
    if q.from_end {
        rows.reverse();
    }
    Ok(Some(ArchivePage {
        messages: rows,
        complete,
    }))
}

#[async_trait]
impl ArchiveStore for SqliteStore {
    async fn archive(&self, owner: &BareJid, msg: &ArchivedMessage) -> Result<()> {
        // Batched with other writers' rows: see group_commit.rs.
        self.archive_writer
            .archive(jid_text(owner).to_string(), msg.clone())
            .await
    }

    fn archive_queued(&self, owner: &BareJid, msg: ArchivedMessage) {
        self.archive_writer.queue(jid_text(owner).to_string(), msg);
    }

    fn hold_until_archived(&self, token: Box<dyn std::any::Any + Send>) {
        self.archive_writer.hold(token);
    }

    async fn settle_archive(&self) -> Result<()> {
        self.archive_writer.settle().await
    }

    async fn query_archive(
        &self,
        owner: &BareJid,
        q: &ArchiveQuery,
    ) -> Result<Option<ArchivePage>> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let owner = owner.clone();
        let q = q.clone();
        self.call(move |conn| query(conn, jid_text(&owner), &q))
            .await
    }

    async fn archive_bounds(
        &self,
        owner: &BareJid,
    ) -> Result<Option<(ArchivedMessage, ArchivedMessage)>> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let owner = owner.clone();
        self.call(move |conn| {
            let one = |order: &str| {
                conn.query_row_cached(
                    &format!("SELECT stanza_id, with_jid, stamp, xml FROM archive WHERE owner = ?1 ORDER BY seq {order} LIMIT 1"),
                    [jid_text(&owner)],
                    message,
                )
                .optional()
                .db()
            };
            Ok(match (one("ASC")?, one("DESC")?) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            })
        })
        .await
    }

    async fn purge_archive_before(&self, stamp_ms: i64) -> Result<u64> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        self.write(move |tx| {
            let n = tx
                .execute_cached("DELETE FROM archive WHERE stamp < ?1", [stamp_ms])
                .db()?;
            Ok(n as u64)
        })
        .await
    }

    async fn replace_archived(&self, owner: &BareJid, id: &str, xml: &str) -> Result<bool> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let (owner, id, xml) = (owner.clone(), id.to_string(), xml.to_string());
        self.write(move |tx| {
            let n = tx
                .execute_cached(
                    "UPDATE archive SET xml = ?3 WHERE owner = ?1 AND stanza_id = ?2",
                    rusqlite::params![jid_text(&owner), id, xml],
                )
                .db()?;
            Ok(n > 0)
        })
        .await
    }

    async fn remove_archive(&self, owner: &BareJid) -> Result<()> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let owner = owner.clone();
        self.write(move |tx| {
            tx.execute_cached("DELETE FROM archive WHERE owner = ?1", [jid_text(&owner)])
                .db()?;
            Ok(())
        })
        .await
    }
}
