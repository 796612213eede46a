//! `ArchiveStore` on PostgreSQL: rows in arrival order (`seq`), every
//! filter turned into a range of `(owner, seq)` through an index, so no
//! query reads more of an archive than the page it returns, however many
//! millions of rows the owner has.
//!
//! - An RSM id (`after_id`, `before_id`) becomes a `seq` through the
//!   unique `(owner, stanza_id) INCLUDE (seq)` index, read alone.
//! - A time bound becomes a `seq` through `(owner, stamp, seq)`, read
//!   alone: the first row at or after `start`, the last at or before
//!   `end`. This is the SQLite backend's `MIN(seq)`/`MAX(seq)` whenever
//!   stamps do not go backwards, which the trait asks of writers; it
//!   reads one index entry where `MIN` would read every row of the range.
//! - The page is `LIMIT max + 1` rows of `(owner, seq)` (or of
//!   `(owner, with_bare, seq)` with a `with` filter) in either direction;
//!   the extra row only tells whether the page is complete.
//! - The message count comes from `archive_counts`, kept in the same
//!   transaction as every insert and delete: one row read, no scan.

use super::{jid_text, Db, PostgresStore};
use crate::archive::{ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage};
use crate::Result;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use jid::BareJid;
use tokio_postgres::types::ToSql;

fn message(row: &tokio_postgres::Row) -> ArchivedMessage {
    ArchivedMessage {
        id: row.get(0),
        with: row.get(1),
        stamp_ms: row.get(2),
        xml: row.get(3),
    }
}

async fn seq_of<C: GenericClient>(c: &C, owner: &str, id: &str) -> Result<Option<i64>> {
    let st = c
        .prepare_cached("SELECT seq FROM archive WHERE owner = $1 AND stanza_id = $2")
        .await
        .db()?;
    Ok(c.query_opt(&st, &[&owner, &id])
        .await
        .db()?
        .map(|r| r.get(0)))
}

/// One seq found by a bounded index read, or `None`.
async fn one_seq<C: GenericClient>(
    c: &C,
    sql: &str,
    owner: &str,
    stamp: i64,
) -> Result<Option<i64>> {
    let st = c.prepare_cached(sql).await.db()?;
    Ok(c.query_opt(&st, &[&owner, &stamp])
        .await
        .db()?
        .map(|r| r.get(0)))
}

async fn query<C: GenericClient>(
    c: &C,
    owner: &str,
    q: &ArchiveQuery,
) -> Result<Option<ArchivePage>> {
    let mut low = i64::MIN;
    let mut high = i64::MAX;
    if let Some(id) = &q.after_id {
        match seq_of(c, owner, id).await? {
            Some(seq) => low = low.max(seq.saturating_add(1)),
            None => return Ok(None),
        }
    }
    if let Some(id) = &q.before_id {
        match seq_of(c, owner, id).await? {
            Some(seq) => high = high.min(seq.saturating_sub(1)),
            None => return Ok(None),
        }
    }
    if let Some(start) = q.start_ms {
        let seq = one_seq(
            c,
            "SELECT seq FROM archive WHERE owner = $1 AND stamp >= $2 \
             ORDER BY stamp, seq LIMIT 1",
            owner,
            start,
        )
        .await?;
        low = low.max(seq.unwrap_or(i64::MAX));
    }
    if let Some(end) = q.end_ms {
        let seq = one_seq(
            c,
            "SELECT seq FROM archive WHERE owner = $1 AND stamp <= $2 \
             ORDER BY stamp DESC, seq DESC LIMIT 1",
            owner,
            end,
        )
        .await?;
        high = high.min(seq.unwrap_or(i64::MIN));
    }
    if low > high {
        return Ok(Some(ArchivePage {
            messages: Vec::new(),
            complete: true,
        }));
    }
    let limit = super::to_i64(q.max).saturating_add(1);
    let mut sql = String::from(
        "SELECT stanza_id, with_jid, stamp, xml FROM archive \
         WHERE owner = $1 AND seq BETWEEN $2 AND $3",
    );
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> =
        vec![Box::new(owner.to_string()), Box::new(low), Box::new(high)];
    if let Some(with) = &q.with {
        // A full JID is also looked for by its bare JID, so that the
        // (owner, with_bare, seq) index serves both.
        let bare = with.split('/').next().unwrap_or(with).to_string();
        args.push(Box::new(bare));
        sql.push_str(&format!(" AND with_bare = ${}", args.len()));
        if with.contains('/') {
            args.push(Box::new(with.clone()));
            sql.push_str(&format!(" AND with_jid = ${}", args.len()));
        }
    }
    if !q.ids.is_empty() {
        args.push(Box::new(q.ids.clone()));
        sql.push_str(&format!(" AND stanza_id = ANY(${})", args.len()));
    }
    args.push(Box::new(limit));
    let order = if q.from_end { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY seq {order} LIMIT ${}", args.len()));
    let st = c.prepare_cached(&sql).await.db()?;
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let mut rows: Vec<ArchivedMessage> = c
        .query(&st, &params)
        .await
        .db()?
        .iter()
        .map(message)
        .collect();
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

async fn purge(
    c: &deadpool_postgres::Object,
    stamp_ms: i64,
) -> std::result::Result<i64, tokio_postgres::Error> {
    let st = c
        .prepare_cached(
            "WITH gone AS ( \
               DELETE FROM archive WHERE stamp < $1 RETURNING owner \
             ), per_owner AS ( \
               SELECT owner, COUNT(*) AS n FROM gone GROUP BY owner \
             ), updated AS ( \
               UPDATE archive_counts c SET messages = c.messages - p.n \
               FROM per_owner p WHERE c.owner = p.owner \
             ) \
             SELECT COALESCE(SUM(n), 0)::bigint FROM per_owner",
        )
        .await?;
    Ok(c.query_one(&st, &[&stamp_ms]).await?.get(0))
}

/// Delete an owner's archive and its count (also used by account removal).
pub(super) async fn remove_owner<C: GenericClient>(c: &C, owner: &str) -> Result<()> {
    let rows = c
        .prepare_cached("DELETE FROM archive WHERE owner = $1")
        .await
        .db()?;
    c.execute(&rows, &[&owner]).await.db()?;
    let count = c
        .prepare_cached("DELETE FROM archive_counts WHERE owner = $1")
        .await
        .db()?;
    c.execute(&count, &[&owner]).await.db()?;
    Ok(())
}

#[async_trait]
impl ArchiveStore for PostgresStore {
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
        let mut client = self.client().await?;
        // The bounds and the page from one snapshot, so that a purge
        // between them cannot shift the range.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .db()?;
        let page = query(&tx, jid_text(owner), q).await?;
        tx.commit().await.db()?;
        Ok(page)
    }

    async fn archive_bounds(
        &self,
        owner: &BareJid,
    ) -> Result<Option<(ArchivedMessage, ArchivedMessage)>> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let client = self.client().await?;
        // Both ends in one statement: one snapshot, one round trip.
        let st = client
            .prepare_cached(
                "(SELECT stanza_id, with_jid, stamp, xml FROM archive WHERE owner = $1 \
                  ORDER BY seq ASC LIMIT 1) \
                 UNION ALL \
                 (SELECT stanza_id, with_jid, stamp, xml FROM archive WHERE owner = $1 \
                  ORDER BY seq DESC LIMIT 1)",
            )
            .await
            .db()?;
        let rows = client.query(&st, &[&jid_text(owner)]).await.db()?;
        Ok(match rows.as_slice() {
            [first, last] => Some((message(first), message(last))),
            _ => None,
        })
    }

    async fn archive_count(&self, owner: &BareJid) -> Result<Option<u64>> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT messages FROM archive_counts WHERE owner = $1")
            .await
            .db()?;
        let n: i64 = client
            .query_opt(&st, &[&jid_text(owner)])
            .await
            .db()?
            .map_or(0, |r| r.get(0));
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }

    async fn purge_archive_before(&self, stamp_ms: i64) -> Result<u64> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let client = self.client().await?;
        // One statement: the rows go and the owners' counts drop by what
        // each lost. Its locks on counts may meet the archive writer's in
        // another order; PostgreSQL then aborts one of the two, and it is
        // tried again.
        let mut attempt = 1;
        loop {
            match purge(&client, stamp_ms).await {
                Ok(n) => return Ok(u64::try_from(n).unwrap_or(0)),
                Err(e) if attempt < super::ATTEMPTS && super::retryable(&e) => {
                    tracing::warn!(error = %super::describe(&e), "archive purge retried");
                    attempt += 1;
                }
                Err(e) => return Err(crate::StoreError::Backend(super::describe(&e))),
            }
        }
    }

    async fn replace_archived(&self, owner: &BareJid, id: &str, xml: &str) -> Result<bool> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let client = self.client().await?;
        let st = client
            .prepare_cached("UPDATE archive SET xml = $3 WHERE owner = $1 AND stanza_id = $2")
            .await
            .db()?;
        let n = client
            .execute(&st, &[&jid_text(owner), &id, &xml])
            .await
            .db()?;
        Ok(n > 0)
    }

    async fn remove_archive(&self, owner: &BareJid) -> Result<()> {
        // Rows queued before this call come first (group_commit.rs).
        self.archive_writer.settle().await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        remove_owner(&tx, jid_text(owner)).await?;
        tx.commit().await.db()
    }
}
