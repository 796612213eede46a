//! `PrivateStore` on SQLite: the `private` table of XML per account and key.

use super::{jid_text, Cached, Db, SqliteStore};
use crate::{PrivateStore, Result};
use async_trait::async_trait;
use jid::BareJid;
use rusqlite::{params, OptionalExtension};

#[async_trait]
impl PrivateStore for SqliteStore {
    async fn get_private(&self, user: &BareJid, key: &str) -> Result<Option<String>> {
        let user = user.clone();
        let key = key.to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                "SELECT xml FROM private WHERE user = ?1 AND key = ?2",
                params![jid_text(&user), key],
                |row| row.get(0),
            )
            .optional()
            .db()
        })
        .await
    }

    async fn private_by_key(&self, key: &str) -> Result<Vec<(BareJid, String)>> {
        let key = key.to_owned();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT user, xml FROM private WHERE key = ?1")
                .db()?;
            let rows = stmt
                .query_map(params![key], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .db()?;
            let mut out = Vec::new();
            for row in rows {
                let (user, xml) = row.db()?;
                // Rows of an unreadable JID are skipped, not fatal.
                if let Ok(jid) = BareJid::new(&user) {
                    out.push((jid, xml));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn set_private(&self, user: &BareJid, key: &str, xml: Option<&str>) -> Result<()> {
        let user = user.clone();
        let key = key.to_owned();
        let xml = xml.map(str::to_owned);
        self.write(move |tx| {
            let user = jid_text(&user);
            match xml {
                Some(xml) => tx.execute_cached(
                    "INSERT INTO private (user, key, xml) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (user, key) DO UPDATE SET xml = excluded.xml",
                    params![user, key, xml],
                ),
                None => tx.execute_cached(
                    "DELETE FROM private WHERE user = ?1 AND key = ?2",
                    params![user, key],
                ),
            }
            .db()?;
            Ok(())
        })
        .await
    }
}
