//! `PubsubStore` on SQLite: `pubsub_nodes` per owner and name, and
//! `pubsub_items` whose `seq` is the publication order (a republished id
//! is deleted and inserted again, so it becomes the newest).

use super::{jid_text, Cached, Db, SqliteStore};
use crate::pubsub::{PubsubStore, StoredItem, StoredNode};
use crate::Result;
use async_trait::async_trait;
use jid::BareJid;
use rusqlite::{params, Connection, OptionalExtension};

fn node_id(conn: &Connection, owner: &str, node: &str) -> Result<Option<i64>> {
    conn.query_row_cached(
        "SELECT id FROM pubsub_nodes WHERE owner = ?1 AND name = ?2",
        params![owner, node],
        |r| r.get(0),
    )
    .optional()
    .db()
}

fn item(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredItem> {
    Ok(StoredItem {
        id: row.get(0)?,
        publisher: row.get(1)?,
        stamp_ms: row.get(2)?,
        xml: row.get(3)?,
    })
}

/// Delete all but the newest `keep` items of a node; the ids deleted.
fn trim(conn: &Connection, node: i64, keep: usize) -> Result<Vec<String>> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let gone: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT seq, item_id FROM pubsub_items WHERE node = ?1 \
             ORDER BY seq DESC LIMIT -1 OFFSET ?2",
        )
        .db()?
        .query_map(params![node, keep], |r| Ok((r.get(0)?, r.get(1)?)))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    if let Some((newest_gone, _)) = gone.first() {
        conn.execute_cached(
            "DELETE FROM pubsub_items WHERE node = ?1 AND seq <= ?2",
            params![node, newest_gone],
        )
        .db()?;
    }
    Ok(gone.into_iter().map(|(_, id)| id).collect())
}

#[async_trait]
impl PubsubStore for SqliteStore {
    async fn create_node(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool> {
        let owner = owner.clone();
        let (node, config) = (node.to_owned(), config.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute_cached(
                    "INSERT INTO pubsub_nodes (owner, name, config) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (owner, name) DO NOTHING",
                    params![jid_text(&owner), node, config],
                )
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn node(&self, owner: &BareJid, node: &str) -> Result<Option<StoredNode>> {
        let owner = owner.clone();
        let node = node.to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                "SELECT name, config FROM pubsub_nodes WHERE owner = ?1 AND name = ?2",
                params![jid_text(&owner), node],
                |r| {
                    Ok(StoredNode {
                        name: r.get(0)?,
                        config: r.get(1)?,
                    })
                },
            )
            .optional()
            .db()
        })
        .await
    }

    async fn nodes(&self, owner: &BareJid) -> Result<Vec<StoredNode>> {
        let owner = owner.clone();
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT name, config FROM pubsub_nodes WHERE owner = ?1 ORDER BY name",
            )
            .db()?
            .query_map([jid_text(&owner)], |r| {
                Ok(StoredNode {
                    name: r.get(0)?,
                    config: r.get(1)?,
                })
            })
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()
        })
        .await
    }

    async fn set_node_config(&self, owner: &BareJid, node: &str, config: &str) -> Result<bool> {
        let owner = owner.clone();
        let (node, config) = (node.to_owned(), config.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute_cached(
                    "UPDATE pubsub_nodes SET config = ?3 WHERE owner = ?1 AND name = ?2",
                    params![jid_text(&owner), node, config],
                )
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_node(&self, owner: &BareJid, node: &str) -> Result<bool> {
        let owner = owner.clone();
        let node = node.to_owned();
        self.write(move |tx| {
            let Some(id) = node_id(tx, jid_text(&owner), &node)? else {
                return Ok(false);
            };
            // Explicit, so removal does not depend on the foreign-key pragma.
            tx.execute_cached("DELETE FROM pubsub_items WHERE node = ?1", [id])
                .db()?;
            tx.execute_cached("DELETE FROM pubsub_nodes WHERE id = ?1", [id])
                .db()?;
            Ok(true)
        })
        .await
    }

    async fn publish_item(
        &self,
        owner: &BareJid,
        node: &str,
        item: &StoredItem,
        max_items: usize,
    ) -> Result<Option<Vec<String>>> {
        let owner = owner.clone();
        let node = node.to_owned();
        let item = item.clone();
        self.write(move |tx| {
            let Some(id) = node_id(tx, jid_text(&owner), &node)? else {
                return Ok(None);
            };
            tx.execute_cached(
                "DELETE FROM pubsub_items WHERE node = ?1 AND item_id = ?2",
                params![id, item.id],
            )
            .db()?;
            tx.execute_cached(
                "INSERT INTO pubsub_items (node, item_id, publisher, stamp, xml) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, item.id, item.publisher, item.stamp_ms, item.xml],
            )
            .db()?;
            Ok(Some(trim(tx, id, max_items)?))
        })
        .await
    }

    async fn retract_item(&self, owner: &BareJid, node: &str, item_id: &str) -> Result<bool> {
        let owner = owner.clone();
        let (node, item_id) = (node.to_owned(), item_id.to_owned());
        self.write(move |tx| {
            let Some(id) = node_id(tx, jid_text(&owner), &node)? else {
                return Ok(false);
            };
            let n = tx
                .execute_cached(
                    "DELETE FROM pubsub_items WHERE node = ?1 AND item_id = ?2",
                    params![id, item_id],
                )
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn trim_items(&self, owner: &BareJid, node: &str, keep: usize) -> Result<u64> {
        let owner = owner.clone();
        let node = node.to_owned();
        self.write(move |tx| {
            let Some(id) = node_id(tx, jid_text(&owner), &node)? else {
                return Ok(0);
            };
            Ok(trim(tx, id, keep)?.len() as u64)
        })
        .await
    }

    async fn items(
        &self,
        owner: &BareJid,
        node: &str,
        max: Option<usize>,
    ) -> Result<Vec<StoredItem>> {
        let owner = owner.clone();
        let node = node.to_owned();
        self.call(move |conn| {
            let Some(id) = node_id(conn, jid_text(&owner), &node)? else {
                return Ok(Vec::new());
            };
            let limit = max.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
            conn.prepare_cached(
                "SELECT item_id, publisher, stamp, xml FROM pubsub_items \
                 WHERE node = ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .db()?
            .query_map(params![id, limit], item)
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()
        })
        .await
    }

    async fn items_by_id(
        &self,
        owner: &BareJid,
        node: &str,
        ids: &[String],
    ) -> Result<Vec<StoredItem>> {
        let owner = owner.clone();
        let node = node.to_owned();
        let ids = ids.to_vec();
        self.call(move |conn| {
            let Some(id) = node_id(conn, jid_text(&owner), &node)? else {
                return Ok(Vec::new());
            };
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = (0..ids.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT item_id, publisher, stamp, xml FROM pubsub_items \
                 WHERE node = ?1 AND item_id IN ({}) ORDER BY seq DESC",
                marks.join(",")
            );
            let mut args: Vec<rusqlite::types::Value> = vec![id.into()];
            args.extend(ids.into_iter().map(Into::into));
            conn.prepare_cached(&sql)
                .db()?
                .query_map(rusqlite::params_from_iter(args), item)
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()
        })
        .await
    }

    async fn remove_pubsub(&self, owner: &BareJid) -> Result<()> {
        let owner = owner.clone();
        self.write(move |tx| remove_owner(tx, jid_text(&owner)))
            .await
    }
}

/// Delete every node and item of an owner (also used by account removal).
pub(super) fn remove_owner(conn: &Connection, owner: &str) -> Result<()> {
    conn.execute_cached(
        "DELETE FROM pubsub_items WHERE node IN (SELECT id FROM pubsub_nodes WHERE owner = ?1)",
        [owner],
    )
    .db()?;
    conn.execute_cached("DELETE FROM pubsub_nodes WHERE owner = ?1", [owner])
        .db()?;
    Ok(())
}
