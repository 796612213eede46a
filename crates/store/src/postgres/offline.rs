//! `OfflineStore` on PostgreSQL: the `offline` table, oldest message first.

use super::{jid_text, to_i64, Db, PostgresStore};
use crate::{OfflineStore, Result};
use async_trait::async_trait;
use jid::BareJid;

#[async_trait]
impl OfflineStore for PostgresStore {
    async fn push_offline(&self, user: &BareJid, stanza: &str, limit: usize) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let user = jid_text(user);
        // Concurrent pushes for one account take turns (a lock held until
        // commit), so that together they cannot exceed the limit; other
        // accounts' pushes do not wait.
        let lock = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(hashtextextended('roost offline ' || $1, 0))",
            )
            .await
            .db()?;
        tx.execute(&lock, &[&user]).await.db()?;
        // Counting stops at the limit: the index is read no further.
        let count = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM offline WHERE account = $1 LIMIT $2) t",
            )
            .await
            .db()?;
        let n: i64 = tx
            .query_one(&count, &[&user, &to_i64(limit)])
            .await
            .db()?
            .get(0);
        if n >= to_i64(limit) {
            tx.rollback().await.db()?;
            return Ok(false);
        }
        let insert = tx
            .prepare_cached("INSERT INTO offline (account, stanza) VALUES ($1, $2)")
            .await
            .db()?;
        tx.execute(&insert, &[&user, &stanza]).await.db()?;
        tx.commit().await.db()?;
        Ok(true)
    }

    async fn offline(&self, user: &BareJid) -> Result<Vec<(i64, String)>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT id, stanza FROM offline WHERE account = $1 ORDER BY id")
            .await
            .db()?;
        Ok(client
            .query(&st, &[&jid_text(user)])
            .await
            .db()?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn ack_offline(&self, user: &BareJid, up_to_id: i64) -> Result<()> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("DELETE FROM offline WHERE account = $1 AND id <= $2")
            .await
            .db()?;
        client
            .execute(&st, &[&jid_text(user), &up_to_id])
            .await
            .db()?;
        Ok(())
    }
}
