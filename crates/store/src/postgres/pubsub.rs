//! `PubsubStore` on PostgreSQL: `pubsub_nodes` per owner and name, and
//! `pubsub_items` whose `seq` is the publication order (a republished id
//! is deleted and inserted again, so it becomes the newest), with
//! `pubsub_subscriptions` and `pubsub_affiliations` per node. Writes to a
//! node's items lock its node row first, so that concurrent publishers
//! trim one after the other.

use super::{jid_text, parse_jid, to_i64, Db, PostgresStore};
use crate::pubsub::{
    PubsubStore, StoredItem, StoredNode, StoredNodeAffiliation, StoredSubscription,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use jid::{BareJid, Jid};

/// The node's id, its row locked until the transaction ends.
async fn lock_node<C: GenericClient>(c: &C, owner: &str, node: &str) -> Result<Option<i64>> {
    let st = c
        .prepare_cached("SELECT id FROM pubsub_nodes WHERE owner = $1 AND name = $2 FOR UPDATE")
        .await
        .db()?;
    Ok(c.query_opt(&st, &[&owner, &node])
        .await
        .db()?
        .map(|r| r.get(0)))
}

async fn node_id<C: GenericClient>(c: &C, owner: &str, node: &str) -> Result<Option<i64>> {
    let st = c
        .prepare_cached("SELECT id FROM pubsub_nodes WHERE owner = $1 AND name = $2")
        .await
        .db()?;
    Ok(c.query_opt(&st, &[&owner, &node])
        .await
        .db()?
        .map(|r| r.get(0)))
}

/// An item row: item_id, publisher, stamp, xml.
pub(super) fn read_item(row: &tokio_postgres::Row) -> StoredItem {
    StoredItem {
        id: row.get(0),
        publisher: row.get(1),
        stamp_ms: row.get(2),
        xml: row.get(3),
    }
}

/// A subscription row: jid, subid, state, options.
pub(super) fn read_subscription(
    row: &tokio_postgres::Row,
    first: usize,
) -> Result<StoredSubscription> {
    let jid: &str = row.get(first);
    Ok(StoredSubscription {
        jid: Jid::new(jid)
            .map_err(|e| StoreError::Corrupt(format!("stored subscriber {jid:?}: {e}")))?,
        subid: row.get(first + 1),
        state: row.get(first + 2),
        options: row.get(first + 3),
    })
}

/// Delete all but the newest `keep` items of a (locked) node; the ids
/// deleted, newest first.
async fn trim<C: GenericClient>(c: &C, node: i64, keep: usize) -> Result<Vec<String>> {
    let st = c
        .prepare_cached(
            "DELETE FROM pubsub_items WHERE node = $1 AND seq IN ( \
               SELECT seq FROM pubsub_items WHERE node = $1 ORDER BY seq DESC OFFSET $2 \
             ) RETURNING seq, item_id",
        )
        .await
        .db()?;
    let mut gone: Vec<(i64, String)> = c
        .query(&st, &[&node, &to_i64(keep)])
        .await
        .db()?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    gone.sort_by_key(|g| std::cmp::Reverse(g.0));
    Ok(gone.into_iter().map(|(_, id)| id).collect())
}

#[async_trait]
impl PubsubStore for PostgresStore {
    async fn create_node(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "INSERT INTO pubsub_nodes (owner, name, config) VALUES ($1, $2, $3) \
                 ON CONFLICT (owner, name) DO NOTHING",
            )
            .await
            .db()?;
        let n = client
            .execute(&st, &[&jid_text(owner), &node, &config])
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn node(&self, owner: &BareJid, node: &str) -> Result<Option<StoredNode>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT name, config FROM pubsub_nodes WHERE owner = $1 AND name = $2")
            .await
            .db()?;
        Ok(client
            .query_opt(&st, &[&jid_text(owner), &node])
            .await
            .db()?
            .map(|r| StoredNode {
                name: r.get(0),
                config: r.get(1),
            }))
    }

    async fn nodes(&self, owner: &BareJid) -> Result<Vec<StoredNode>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT name, config FROM pubsub_nodes WHERE owner = $1 ORDER BY name")
            .await
            .db()?;
        Ok(client
            .query(&st, &[&jid_text(owner)])
            .await
            .db()?
            .iter()
            .map(|r| StoredNode {
                name: r.get(0),
                config: r.get(1),
            })
            .collect())
    }

    async fn set_node_config(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("UPDATE pubsub_nodes SET config = $3 WHERE owner = $1 AND name = $2")
            .await
            .db()?;
        let n = client
            .execute(&st, &[&jid_text(owner), &node, &config])
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn delete_node(&self, owner: &BareJid, node: &str) -> Result<bool> {
        let client = self.client().await?;
        // Items, subscriptions and affiliations go by ON DELETE CASCADE.
        let st = client
            .prepare_cached("DELETE FROM pubsub_nodes WHERE owner = $1 AND name = $2")
            .await
            .db()?;
        Ok(client.execute(&st, &[&jid_text(owner), &node]).await.db()? == 1)
    }

    async fn publish_item(
        &self,
        owner: &BareJid,
        node: &str,
        item: &StoredItem,
        max_items: usize,
    ) -> Result<Option<Vec<String>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let Some(id) = lock_node(&tx, jid_text(owner), node).await? else {
            tx.rollback().await.db()?;
            return Ok(None);
        };
        let delete = tx
            .prepare_cached("DELETE FROM pubsub_items WHERE node = $1 AND item_id = $2")
            .await
            .db()?;
        tx.execute(&delete, &[&id, &item.id]).await.db()?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO pubsub_items (node, item_id, publisher, stamp, xml) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await
            .db()?;
        tx.execute(
            &insert,
            &[&id, &item.id, &item.publisher, &item.stamp_ms, &item.xml],
        )
        .await
        .db()?;
        let gone = trim(&tx, id, max_items).await?;
        tx.commit().await.db()?;
        Ok(Some(gone))
    }

    async fn retract_item(&self, owner: &BareJid, node: &str, item_id: &str) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "DELETE FROM pubsub_items i USING pubsub_nodes n \
                 WHERE n.owner = $1 AND n.name = $2 AND i.node = n.id AND i.item_id = $3",
            )
            .await
            .db()?;
        let n = client
            .execute(&st, &[&jid_text(owner), &node, &item_id])
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn trim_items(&self, owner: &BareJid, node: &str, keep: usize) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let Some(id) = lock_node(&tx, jid_text(owner), node).await? else {
            tx.rollback().await.db()?;
            return Ok(0);
        };
        let gone = trim(&tx, id, keep).await?;
        tx.commit().await.db()?;
        Ok(gone.len() as u64)
    }

    async fn items(
        &self,
        owner: &BareJid,
        node: &str,
        max: Option<usize>,
    ) -> Result<Vec<StoredItem>> {
        let client = self.client().await?;
        // LIMIT NULL is no limit.
        let st = client
            .prepare_cached(
                "SELECT i.item_id, i.publisher, i.stamp, i.xml \
                 FROM pubsub_items i JOIN pubsub_nodes n ON n.id = i.node \
                 WHERE n.owner = $1 AND n.name = $2 ORDER BY i.seq DESC LIMIT $3",
            )
            .await
            .db()?;
        let limit: Option<i64> = max.map(to_i64);
        Ok(client
            .query(&st, &[&jid_text(owner), &node, &limit])
            .await
            .db()?
            .iter()
            .map(read_item)
            .collect())
    }

    async fn items_by_id(
        &self,
        owner: &BareJid,
        node: &str,
        ids: &[String],
    ) -> Result<Vec<StoredItem>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT i.item_id, i.publisher, i.stamp, i.xml \
                 FROM pubsub_items i JOIN pubsub_nodes n ON n.id = i.node \
                 WHERE n.owner = $1 AND n.name = $2 AND i.item_id = ANY($3) \
                 ORDER BY i.seq DESC",
            )
            .await
            .db()?;
        Ok(client
            .query(&st, &[&jid_text(owner), &node, &ids])
            .await
            .db()?
            .iter()
            .map(read_item)
            .collect())
    }

    async fn remove_pubsub(&self, owner: &BareJid) -> Result<()> {
        let client = self.client().await?;
        remove_owner(&client, jid_text(owner)).await
    }

    async fn put_subscription(
        &self,
        owner: &BareJid,
        node: &str,
        sub: &StoredSubscription,
    ) -> Result<bool> {
        let client = self.client().await?;
        // One statement: a node deleted meanwhile inserts nothing.
        let st = client
            .prepare_cached(
                "INSERT INTO pubsub_subscriptions (node, jid, account, subid, state, options) \
                 SELECT id, $3, $4, $5, $6, $7 FROM pubsub_nodes WHERE owner = $1 AND name = $2 \
                 ON CONFLICT (node, jid) DO UPDATE SET \
                 subid = EXCLUDED.subid, state = EXCLUDED.state, options = EXCLUDED.options",
            )
            .await
            .db()?;
        let account = sub.jid.to_bare();
        let n = client
            .execute(
                &st,
                &[
                    &jid_text(owner),
                    &node,
                    &sub.jid.as_str(),
                    &account.as_str(),
                    &sub.subid,
                    &sub.state,
                    &sub.options,
                ],
            )
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn remove_subscription(&self, owner: &BareJid, node: &str, jid: &Jid) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "DELETE FROM pubsub_subscriptions s USING pubsub_nodes n \
                 WHERE n.owner = $1 AND n.name = $2 AND s.node = n.id AND s.jid = $3",
            )
            .await
            .db()?;
        let n = client
            .execute(&st, &[&jid_text(owner), &node, &jid.as_str()])
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn subscriptions(&self, owner: &BareJid, node: &str) -> Result<Vec<StoredSubscription>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT s.jid, s.subid, s.state, s.options \
                 FROM pubsub_subscriptions s JOIN pubsub_nodes n ON n.id = s.node \
                 WHERE n.owner = $1 AND n.name = $2 ORDER BY s.jid",
            )
            .await
            .db()?;
        client
            .query(&st, &[&jid_text(owner), &node])
            .await
            .db()?
            .iter()
            .map(|r| read_subscription(r, 0))
            .collect()
    }

    async fn subscriptions_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, StoredSubscription)>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT n.name, s.jid, s.subid, s.state, s.options \
                 FROM pubsub_subscriptions s JOIN pubsub_nodes n ON n.id = s.node \
                 WHERE n.owner = $1 AND s.account = $2 ORDER BY n.name, s.jid",
            )
            .await
            .db()?;
        client
            .query(&st, &[&jid_text(owner), &jid_text(account)])
            .await
            .db()?
            .iter()
            .map(|r| Ok((r.get(0), read_subscription(r, 1)?)))
            .collect()
    }

    async fn set_node_affiliation(
        &self,
        owner: &BareJid,
        node: &str,
        jid: &BareJid,
        affiliation: Option<&str>,
    ) -> Result<bool> {
        let client = self.client().await?;
        let Some(id) = node_id(&client, jid_text(owner), node).await? else {
            return Ok(false);
        };
        match affiliation {
            Some(a) => {
                let st = client
                    .prepare_cached(
                        "INSERT INTO pubsub_affiliations (node, jid, affiliation) \
                         VALUES ($1, $2, $3) \
                         ON CONFLICT (node, jid) DO UPDATE SET affiliation = EXCLUDED.affiliation",
                    )
                    .await
                    .db()?;
                client.execute(&st, &[&id, &jid_text(jid), &a]).await.db()?;
            }
            None => {
                let st = client
                    .prepare_cached("DELETE FROM pubsub_affiliations WHERE node = $1 AND jid = $2")
                    .await
                    .db()?;
                client.execute(&st, &[&id, &jid_text(jid)]).await.db()?;
            }
        }
        Ok(true)
    }

    async fn node_affiliations(
        &self,
        owner: &BareJid,
        node: &str,
    ) -> Result<Vec<StoredNodeAffiliation>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT a.jid, a.affiliation \
                 FROM pubsub_affiliations a JOIN pubsub_nodes n ON n.id = a.node \
                 WHERE n.owner = $1 AND n.name = $2 ORDER BY a.jid",
            )
            .await
            .db()?;
        client
            .query(&st, &[&jid_text(owner), &node])
            .await
            .db()?
            .iter()
            .map(|r| {
                Ok(StoredNodeAffiliation {
                    jid: parse_jid(r.get(0))?,
                    affiliation: r.get(1),
                })
            })
            .collect()
    }

    async fn affiliations_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT n.name, a.affiliation \
                 FROM pubsub_affiliations a JOIN pubsub_nodes n ON n.id = a.node \
                 WHERE n.owner = $1 AND a.jid = $2 ORDER BY n.name",
            )
            .await
            .db()?;
        Ok(client
            .query(&st, &[&jid_text(owner), &jid_text(account)])
            .await
            .db()?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}

/// Delete every node of an owner; items, subscriptions and affiliations
/// follow by cascade (also used by account removal).
pub(super) async fn remove_owner<C: GenericClient>(c: &C, owner: &str) -> Result<()> {
    let st = c
        .prepare_cached("DELETE FROM pubsub_nodes WHERE owner = $1")
        .await
        .db()?;
    c.execute(&st, &[&owner]).await.db()?;
    Ok(())
}

/// Delete an account's subscriptions and affiliations in every node (of
/// every owner): they go with the account.
pub(super) async fn remove_member<C: GenericClient>(c: &C, account: &str) -> Result<()> {
    let subs = c
        .prepare_cached("DELETE FROM pubsub_subscriptions WHERE account = $1")
        .await
        .db()?;
    c.execute(&subs, &[&account]).await.db()?;
    let affs = c
        .prepare_cached("DELETE FROM pubsub_affiliations WHERE jid = $1")
        .await
        .db()?;
    c.execute(&affs, &[&account]).await.db()?;
    Ok(())
}
