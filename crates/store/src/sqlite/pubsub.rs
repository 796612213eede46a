//! `PubsubStore` on SQLite: `pubsub_nodes` per owner and name, and
//! `pubsub_items` whose `seq` is the publication order (a republished id
//! is deleted and inserted again, so it becomes the newest), with
//! `pubsub_subscriptions` and `pubsub_affiliations` per node.

use super::{jid_text, parse_jid, Cached, Db, SqliteStore};
use crate::pubsub::{
    PubsubStore, StoredItem, StoredNode, StoredNodeAffiliation, StoredSubscription,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use jid::{BareJid, Jid};
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
            for table in NODE_TABLES {
                tx.execute_cached(&format!("DELETE FROM {table} WHERE node = ?1"), [id])
                    .db()?;
            }
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

    async fn put_subscription(
        &self,
        owner: &BareJid,
        node: &str,
        sub: &StoredSubscription,
    ) -> Result<bool> {
        let owner = owner.clone();
        let node = node.to_owned();
        let sub = sub.clone();
        self.write(move |tx| {
            let Some(id) = node_id(tx, jid_text(&owner), &node)? else {
                return Ok(false);
            };
            tx.execute_cached(
                "INSERT INTO pubsub_subscriptions (node, jid, account, subid, state, options) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (node, jid) DO UPDATE SET \
                 subid = excluded.subid, state = excluded.state, options = excluded.options",
                params![
                    id,
                    sub.jid.as_str(),
                    sub.jid.to_bare().as_str(),
                    sub.subid,
                    sub.state,
                    sub.options
                ],
            )
            .db()?;
            Ok(true)
        })
        .await
    }

    async fn remove_subscription(&self, owner: &BareJid, node: &str, jid: &Jid) -> Result<bool> {
        let owner = owner.clone();
        let (node, jid) = (node.to_owned(), jid.to_string());
        self.write(move |tx| {
            let Some(id) = node_id(tx, jid_text(&owner), &node)? else {
                return Ok(false);
            };
            let n = tx
                .execute_cached(
                    "DELETE FROM pubsub_subscriptions WHERE node = ?1 AND jid = ?2",
                    params![id, jid],
                )
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn subscriptions(&self, owner: &BareJid, node: &str) -> Result<Vec<StoredSubscription>> {
        let owner = owner.clone();
        let node = node.to_owned();
        self.call(move |conn| {
            let Some(id) = node_id(conn, jid_text(&owner), &node)? else {
                return Ok(Vec::new());
            };
            let rows: Vec<(String, String, String, String)> = conn
                .prepare_cached(
                    "SELECT jid, subid, state, options FROM pubsub_subscriptions \
                     WHERE node = ?1 ORDER BY jid",
                )
                .db()?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            rows.into_iter().map(subscription).collect()
        })
        .await
    }

    async fn subscriptions_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, StoredSubscription)>> {
        let (owner, account) = (owner.clone(), account.clone());
        self.call(move |conn| {
            let rows: Vec<(String, (String, String, String, String))> = conn
                .prepare_cached(
                    "SELECT n.name, s.jid, s.subid, s.state, s.options \
                     FROM pubsub_subscriptions s JOIN pubsub_nodes n ON n.id = s.node \
                     WHERE n.owner = ?1 AND s.account = ?2 ORDER BY n.name, s.jid",
                )
                .db()?
                .query_map(params![jid_text(&owner), jid_text(&account)], |r| {
                    Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                })
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            rows.into_iter()
                .map(|(node, row)| Ok((node, subscription(row)?)))
                .collect()
        })
        .await
    }

    async fn set_node_affiliation(
        &self,
        owner: &BareJid,
        node: &str,
        jid: &BareJid,
        affiliation: Option<&str>,
    ) -> Result<bool> {
        let (owner, jid) = (owner.clone(), jid.clone());
        let node = node.to_owned();
        let affiliation = affiliation.map(str::to_owned);
        self.write(move |tx| {
            let Some(id) = node_id(tx, jid_text(&owner), &node)? else {
                return Ok(false);
            };
            match affiliation {
                Some(a) => tx.execute_cached(
                    "INSERT INTO pubsub_affiliations (node, jid, affiliation) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (node, jid) DO UPDATE SET affiliation = excluded.affiliation",
                    params![id, jid_text(&jid), a],
                ),
                None => tx.execute_cached(
                    "DELETE FROM pubsub_affiliations WHERE node = ?1 AND jid = ?2",
                    params![id, jid_text(&jid)],
                ),
            }
            .db()?;
            Ok(true)
        })
        .await
    }

    async fn node_affiliations(
        &self,
        owner: &BareJid,
        node: &str,
    ) -> Result<Vec<StoredNodeAffiliation>> {
        let owner = owner.clone();
        let node = node.to_owned();
        self.call(move |conn| {
            let Some(id) = node_id(conn, jid_text(&owner), &node)? else {
                return Ok(Vec::new());
            };
            let rows: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT jid, affiliation FROM pubsub_affiliations WHERE node = ?1 ORDER BY jid",
                )
                .db()?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            rows.into_iter()
                .map(|(jid, affiliation)| {
                    Ok(StoredNodeAffiliation {
                        jid: parse_jid(&jid)?,
                        affiliation,
                    })
                })
                .collect()
        })
        .await
    }

    async fn affiliations_of(
        &self,
        owner: &BareJid,
        account: &BareJid,
    ) -> Result<Vec<(String, String)>> {
        let (owner, account) = (owner.clone(), account.clone());
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT n.name, a.affiliation \
                 FROM pubsub_affiliations a JOIN pubsub_nodes n ON n.id = a.node \
                 WHERE n.owner = ?1 AND a.jid = ?2 ORDER BY n.name",
            )
            .db()?
            .query_map(params![jid_text(&owner), jid_text(&account)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()
        })
        .await
    }
}

/// The tables whose rows belong to one node.
const NODE_TABLES: [&str; 3] = [
    "pubsub_items",
    "pubsub_subscriptions",
    "pubsub_affiliations",
];

fn subscription(
    (jid, subid, state, options): (String, String, String, String),
) -> Result<StoredSubscription> {
    let jid = Jid::new(&jid)
        .map_err(|e| StoreError::Corrupt(format!("stored subscriber {jid:?}: {e}")))?;
    Ok(StoredSubscription {
        jid,
        subid,
        state,
        options,
    })
}

/// Delete every node of an owner with its items, subscriptions and
/// affiliations (also used by account removal).
pub(super) fn remove_owner(conn: &Connection, owner: &str) -> Result<()> {
    for table in NODE_TABLES {
        conn.execute_cached(
            &format!(
                "DELETE FROM {table} WHERE node IN (SELECT id FROM pubsub_nodes WHERE owner = ?1)"
            ),
            [owner],
        )
        .db()?;
    }
    conn.execute_cached("DELETE FROM pubsub_nodes WHERE owner = ?1", [owner])
        .db()?;
    Ok(())
}

/// Delete an account's subscriptions and affiliations in every node (of
/// every owner): they go with the account.
pub(super) fn remove_member(conn: &Connection, account: &str) -> Result<()> {
    conn.execute_cached(
        "DELETE FROM pubsub_subscriptions WHERE account = ?1",
        [account],
    )
    .db()?;
    conn.execute_cached("DELETE FROM pubsub_affiliations WHERE jid = ?1", [account])
        .db()?;
    Ok(())
}
