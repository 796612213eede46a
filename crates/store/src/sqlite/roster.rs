//! `RosterStore` on SQLite: roster items with their groups, the per-account
//! roster version, and pending inbound subscription requests.

use super::{jid_text, parse_jid, version_from_db, Cached, Db, SqliteStore};
use crate::{Result, RosterItem, RosterStore, StoreError, Subscription};
use async_trait::async_trait;
use jid::BareJid;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::BTreeMap;

/// A `roster_items` row before its text is checked.
struct RawItem {
    contact: String,
    name: Option<String>,
    subscription: String,
    ask: bool,
    approved: bool,
}

impl RawItem {
    fn into_item(self, groups: Vec<String>) -> Result<RosterItem> {
        let subscription = Subscription::parse(&self.subscription).ok_or_else(|| {
            StoreError::Corrupt(format!("stored subscription {:?}", self.subscription))
        })?;
        Ok(RosterItem {
            jid: parse_jid(&self.contact)?,
            name: self.name,
            subscription,
            ask: self.ask,
            approved: self.approved,
            groups,
        })
    }
}

const ITEM_COLUMNS: &str = "contact, name, subscription, ask, approved";

fn read_raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawItem> {
    Ok(RawItem {
        contact: row.get(0)?,
        name: row.get(1)?,
        subscription: row.get(2)?,
        ask: row.get(3)?,
        approved: row.get(4)?,
    })
}

fn version(conn: &Connection, user: &str) -> Result<u64> {
    let v: Option<i64> = conn
        .query_row_cached(
            "SELECT version FROM roster_versions WHERE user = ?1",
            [user],
            |row| row.get(0),
        )
        .optional()
        .db()?;
    v.map_or(Ok(0), version_from_db)
}

/// Increment the user's roster version (from 0 when never written).
fn bump_version(tx: &Transaction<'_>, user: &str) -> Result<u64> {
    let v: i64 = tx
        .query_row_cached(
            "INSERT INTO roster_versions (user, version) VALUES (?1, 1) \
             ON CONFLICT (user) DO UPDATE SET version = version + 1 \
             RETURNING version",
            [user],
            |row| row.get(0),
        )
        .db()?;
    version_from_db(v)
}

#[async_trait]
impl RosterStore for SqliteStore {
    async fn roster(&self, user: &BareJid) -> Result<(u64, Vec<RosterItem>)> {
        let user = user.clone();
        self.call(move |conn| {
            // One read transaction so the version matches the items.
            let tx = conn.transaction().db()?;
            let user = jid_text(&user);
            let version = version(&tx, user)?;
            let raws = tx
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM roster_items WHERE user = ?1 ORDER BY contact"
                ))
                .db()?
                .query_map([user], read_raw)
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT contact, name FROM roster_groups WHERE user = ?1 \
                         ORDER BY contact, position",
                    )
                    .db()?;
                let rows = stmt
                    .query_map([user], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                    })
                    .db()?;
                for row in rows {
                    let (contact, name) = row.db()?;
                    groups.entry(contact).or_default().push(name);
                }
            }
            let items = raws
                .into_iter()
                .map(|raw| {
                    let g = groups.remove(&raw.contact).unwrap_or_default();
                    raw.into_item(g)
                })
                .collect::<Result<Vec<_>>>()?;
            tx.commit().db()?;
            Ok((version, items))
        })
        .await
    }

    async fn roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>> {
        let user = user.clone();
        let contact = contact.clone();
        self.call(move |conn| {
            let tx = conn.transaction().db()?;
            let (user, contact) = (jid_text(&user), jid_text(&contact));
            let raw = tx
                .query_row_cached(
                    &format!(
                        "SELECT {ITEM_COLUMNS} FROM roster_items \
                         WHERE user = ?1 AND contact = ?2"
                    ),
                    [user, contact],
                    read_raw,
                )
                .optional()
                .db()?;
            let Some(raw) = raw else {
                return Ok(None);
            };
            let groups = tx
                .prepare_cached(
                    "SELECT name FROM roster_groups WHERE user = ?1 AND contact = ?2 \
                     ORDER BY position",
                )
                .db()?
                .query_map([user, contact], |row| row.get(0))
                .db()?
                .collect::<rusqlite::Result<Vec<String>>>()
                .db()?;
            tx.commit().db()?;
            raw.into_item(groups).map(Some)
        })
        .await
    }

    async fn put_roster_item(&self, user: &BareJid, item: &RosterItem) -> Result<u64> {
        let user = user.clone();
        let item = item.clone();
        self.write(move |tx| {
            let (user, contact) = (jid_text(&user), jid_text(&item.jid));
            // An upsert, not INSERT OR REPLACE: replacing would delete the
            // row and leave cascading to the groups up to pragma settings.
            tx.execute_cached(
                "INSERT INTO roster_items (user, contact, name, subscription, ask, approved) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (user, contact) DO UPDATE SET \
                 name = excluded.name, subscription = excluded.subscription, \
                 ask = excluded.ask, approved = excluded.approved",
                params![
                    user,
                    contact,
                    item.name,
                    item.subscription.as_str(),
                    item.ask,
                    item.approved,
                ],
            )
            .db()?;
            tx.execute_cached(
                "DELETE FROM roster_groups WHERE user = ?1 AND contact = ?2",
                [user, contact],
            )
            .db()?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO roster_groups (user, contact, position, name) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .db()?;
            for (position, name) in item.groups.iter().enumerate() {
                let position = i64::try_from(position)
                    .map_err(|_| StoreError::Backend("too many roster groups".into()))?;
                insert
                    .execute(params![user, contact, position, name])
                    .db()?;
            }
            bump_version(tx, user)
        })
        .await
    }

    async fn remove_roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<u64>> {
        let user = user.clone();
        let contact = contact.clone();
        self.write(move |tx| {
            let (user, contact) = (jid_text(&user), jid_text(&contact));
            tx.execute_cached(
                "DELETE FROM roster_groups WHERE user = ?1 AND contact = ?2",
                [user, contact],
            )
            .db()?;
            let removed = tx
                .execute_cached(
                    "DELETE FROM roster_items WHERE user = ?1 AND contact = ?2",
                    [user, contact],
                )
                .db()?;
            if removed == 0 {
                return Ok(None);
            }
            bump_version(tx, user).map(Some)
        })
        .await
    }

    async fn put_pending_in(&self, user: &BareJid, contact: &BareJid, stanza: &str) -> Result<()> {
        let user = user.clone();
        let contact = contact.clone();
        let stanza = stanza.to_owned();
        self.write(move |tx| {
            tx.execute_cached(
                "INSERT INTO pending_in (user, contact, stanza) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user, contact) DO UPDATE SET stanza = excluded.stanza",
                [jid_text(&user), jid_text(&contact), stanza.as_str()],
            )
            .db()?;
            Ok(())
        })
        .await
    }

    async fn remove_pending_in(&self, user: &BareJid, contact: &BareJid) -> Result<bool> {
        let user = user.clone();
        let contact = contact.clone();
        self.write(move |tx| {
            let removed = tx
                .execute_cached(
                    "DELETE FROM pending_in WHERE user = ?1 AND contact = ?2",
                    [jid_text(&user), jid_text(&contact)],
                )
                .db()?;
            Ok(removed == 1)
        })
        .await
    }

    async fn pending_in(&self, user: &BareJid) -> Result<Vec<(BareJid, String)>> {
        let user = user.clone();
        self.call(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT contact, stanza FROM pending_in WHERE user = ?1 ORDER BY contact",
                )
                .db()?
                .query_map([jid_text(&user)], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            rows.into_iter()
                .map(|(contact, stanza)| Ok((parse_jid(&contact)?, stanza)))
                .collect()
        })
        .await
    }
}
