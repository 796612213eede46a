//! `PrivateStore` on PostgreSQL: the `private` table of XML per account and
//! key.

use super::{jid_text, Db, PostgresStore};
use crate::{PrivateStore, Result};
use async_trait::async_trait;
use jid::BareJid;

#[async_trait]
impl PrivateStore for PostgresStore {
    async fn get_private(&self, user: &BareJid, key: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT xml FROM private WHERE account = $1 AND key = $2")
            .await
            .db()?;
        Ok(client
            .query_opt(&st, &[&jid_text(user), &key])
            .await
            .db()?
            .map(|r| r.get(0)))
    }

    async fn private_by_key(&self, key: &str) -> Result<Vec<(BareJid, String)>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT account, xml FROM private WHERE key = $1")
            .await
            .db()?;
        let rows = client.query(&st, &[&key]).await.db()?;
        // Rows of an unreadable JID are skipped, not fatal.
        Ok(rows
            .iter()
            .filter_map(|r| Some((BareJid::new(r.get(0)).ok()?, r.get(1))))
            .collect())
    }

    async fn set_private(&self, user: &BareJid, key: &str, xml: Option<&str>) -> Result<()> {
        let client = self.client().await?;
        let user = jid_text(user);
        match xml {
            Some(xml) => {
                let st = client
                    .prepare_cached(
                        "INSERT INTO private (account, key, xml) VALUES ($1, $2, $3) \
                         ON CONFLICT (account, key) DO UPDATE SET xml = EXCLUDED.xml",
                    )
                    .await
                    .db()?;
                client.execute(&st, &[&user, &key, &xml]).await.db()?;
            }
            None => {
                let st = client
                    .prepare_cached("DELETE FROM private WHERE account = $1 AND key = $2")
                    .await
                    .db()?;
                client.execute(&st, &[&user, &key]).await.db()?;
            }
        }
        Ok(())
    }
}
