//! `OfflineStore` on SQLite: the `offline` table, oldest message first.

use super::{jid_text, Cached, Db, SqliteStore};
use crate::{OfflineStore, Result};
use async_trait::async_trait;
use jid::BareJid;
use rusqlite::params;

#[async_trait]
impl OfflineStore for SqliteStore {
    async fn push_offline(&self, user: &BareJid, stanza: &str, limit: usize) -> Result<bool> {
        let user = user.clone();
        let stanza = stanza.to_owned();
        // Count and insert in one immediate transaction so concurrent pushes
        // cannot together exceed the limit.
        self.write(move |tx| {
            let user = jid_text(&user);
            let count: i64 = tx
                .query_row_cached(
                    "SELECT COUNT(*) FROM offline WHERE user = ?1",
                    [user],
                    |row| row.get(0),
                )
                .db()?;
            // A count that doesn't fit usize can only be at or over the limit.
            if usize::try_from(count).map_or(true, |count| count >= limit) {
                return Ok(false);
            }
            tx.execute_cached(
                "INSERT INTO offline (user, stanza) VALUES (?1, ?2)",
                params![user, stanza],
            )
            .db()?;
            Ok(true)
        })
        .await
    }

    async fn offline(&self, user: &BareJid) -> Result<Vec<(i64, String)>> {
        let user = user.clone();
        self.call(move |conn| {
            conn.prepare_cached("SELECT id, stanza FROM offline WHERE user = ?1 ORDER BY id")
                .db()?
                .query_map([jid_text(&user)], |row| Ok((row.get(0)?, row.get(1)?)))
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()
        })
        .await
    }

    async fn ack_offline(&self, user: &BareJid, up_to_id: i64) -> Result<()> {
        let user = user.clone();
        self.write(move |tx| {
            tx.execute_cached(
                "DELETE FROM offline WHERE user = ?1 AND id <= ?2",
                params![jid_text(&user), up_to_id],
            )
            .db()?;
            Ok(())
        })
        .await
    }
}
