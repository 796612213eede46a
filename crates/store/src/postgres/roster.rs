//! `RosterStore` on PostgreSQL: roster items with their groups (an array in
//! the client's order), the per-account roster version, and pending inbound
//! subscription requests.

use super::{jid_text, parse_jid, version_from_db, Db, PostgresStore};
use crate::{Result, RosterItem, RosterStore, StoreError, Subscription};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use jid::BareJid;

const ITEM_COLUMNS: &str = "contact, name, subscription, ask, approved, groups";

/// A `roster_items` row, columns in `ITEM_COLUMNS` order from `first`.
pub(super) fn read_item(row: &tokio_postgres::Row, first: usize) -> Result<RosterItem> {
    let subscription: &str = row.get(first + 2);
    Ok(RosterItem {
        jid: parse_jid(row.get(first))?,
        name: row.get(first + 1),
        subscription: Subscription::parse(subscription)
            .ok_or_else(|| StoreError::Corrupt(format!("stored subscription {subscription:?}")))?,
        ask: row.get(first + 3),
        approved: row.get(first + 4),
        groups: row.get(first + 5),
    })
}

/// Increment the account's roster version (from 0 when never written);
/// the upsert's row lock orders concurrent writers.
async fn bump_version<C: GenericClient>(c: &C, user: &str) -> Result<u64> {
    let st = c
        .prepare_cached(
            "INSERT INTO roster_versions (account, version) VALUES ($1, 1) \
             ON CONFLICT (account) DO UPDATE SET version = roster_versions.version + 1 \
             RETURNING version",
        )
        .await
        .db()?;
    version_from_db(c.query_one(&st, &[&user]).await.db()?.get(0))
}

#[async_trait]
impl RosterStore for PostgresStore {
    async fn roster(&self, user: &BareJid) -> Result<(u64, Vec<RosterItem>)> {
        let client = self.client().await?;
        // One statement, so one snapshot: the version matches the items.
        // The outer row exists even for an empty roster, to carry the
        // version.
        let st = client
            .prepare_cached(
                "SELECT v.version, i.contact, i.name, i.subscription, i.ask, i.approved, i.groups \
                 FROM (SELECT $1::text AS account) q \
                 LEFT JOIN roster_versions v ON v.account = q.account \
                 LEFT JOIN roster_items i ON i.account = q.account \
                 ORDER BY i.contact",
            )
            .await
            .db()?;
        let rows = client.query(&st, &[&jid_text(user)]).await.db()?;
        let version = match rows.first().and_then(|r| r.get::<_, Option<i64>>(0)) {
            Some(v) => version_from_db(v)?,
            None => 0,
        };
        let items = rows
            .iter()
            .filter(|r| r.get::<_, Option<&str>>(1).is_some())
            .map(|r| read_item(r, 1))
            .collect::<Result<Vec<_>>>()?;
        Ok((version, items))
    }

    async fn roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM roster_items WHERE account = $1 AND contact = $2"
            ))
            .await
            .db()?;
        client
            .query_opt(&st, &[&jid_text(user), &jid_text(contact)])
            .await
            .db()?
            .map(|r| read_item(&r, 0))
            .transpose()
    }

    async fn put_roster_item(&self, user: &BareJid, item: &RosterItem) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let user = jid_text(user);
        let st = tx
            .prepare_cached(
                "INSERT INTO roster_items (account, contact, name, subscription, ask, approved, groups) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (account, contact) DO UPDATE SET \
                 name = EXCLUDED.name, subscription = EXCLUDED.subscription, \
                 ask = EXCLUDED.ask, approved = EXCLUDED.approved, groups = EXCLUDED.groups",
            )
            .await
            .db()?;
        tx.execute(
            &st,
            &[
                &user,
                &jid_text(&item.jid),
                &item.name,
                &item.subscription.as_str(),
                &item.ask,
                &item.approved,
                &item.groups,
            ],
        )
        .await
        .db()?;
        let version = bump_version(&tx, user).await?;
        tx.commit().await.db()?;
        Ok(version)
    }

    async fn remove_roster_item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<u64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let user = jid_text(user);
        let st = tx
            .prepare_cached("DELETE FROM roster_items WHERE account = $1 AND contact = $2")
            .await
            .db()?;
        if tx.execute(&st, &[&user, &jid_text(contact)]).await.db()? == 0 {
            // Nothing changed: the version stays.
            tx.rollback().await.db()?;
            return Ok(None);
        }
        let version = bump_version(&tx, user).await?;
        tx.commit().await.db()?;
        Ok(Some(version))
    }

    async fn put_pending_in(&self, user: &BareJid, contact: &BareJid, stanza: &str) -> Result<()> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "INSERT INTO pending_in (account, contact, stanza) VALUES ($1, $2, $3) \
                 ON CONFLICT (account, contact) DO UPDATE SET stanza = EXCLUDED.stanza",
            )
            .await
            .db()?;
        client
            .execute(&st, &[&jid_text(user), &jid_text(contact), &stanza])
            .await
            .db()?;
        Ok(())
    }

    async fn remove_pending_in(&self, user: &BareJid, contact: &BareJid) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("DELETE FROM pending_in WHERE account = $1 AND contact = $2")
            .await
            .db()?;
        let n = client
            .execute(&st, &[&jid_text(user), &jid_text(contact)])
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn pending_in(&self, user: &BareJid) -> Result<Vec<(BareJid, String)>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT contact, stanza FROM pending_in WHERE account = $1 ORDER BY contact",
            )
            .await
            .db()?;
        client
            .query(&st, &[&jid_text(user)])
            .await
            .db()?
            .iter()
            .map(|r| Ok((parse_jid(r.get(0))?, r.get(1))))
            .collect()
    }
}
