//! `AccountStore` on PostgreSQL: the `accounts` table, and account removal
//! across every table in one transaction.

use super::{jid_text, parse_jid, Db, PostgresStore};
use crate::{AccountStore, Result, ScramKeys, StoreError, StoredCredentials};
use async_trait::async_trait;
use jid::BareJid;

/// Every table holding per-account rows, keyed by an `account` column.
const ACCOUNT_TABLES: &[&str] = &[
    "roster_items",
    "roster_versions",
    "pending_in",
    "offline",
    "private",
];

/// Credential columns, in the order `read_credentials` expects them.
pub(super) const CREDENTIAL_COLUMNS: &str =
    "sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key, \
     sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key";

fn read_keys(row: &tokio_postgres::Row, first: usize) -> Result<ScramKeys> {
    let iterations: i64 = row.get(first + 1);
    Ok(ScramKeys {
        salt: row.get(first),
        iterations: u32::try_from(iterations)
            .map_err(|_| StoreError::Corrupt(format!("stored iteration count {iterations}")))?,
        stored_key: row.get(first + 2),
        server_key: row.get(first + 3),
    })
}

pub(super) fn read_credentials(
    row: &tokio_postgres::Row,
    first: usize,
) -> Result<StoredCredentials> {
    Ok(StoredCredentials {
        sha1: read_keys(row, first)?,
        sha256: read_keys(row, first + 4)?,
    })
}

#[async_trait]
impl AccountStore for PostgresStore {
    async fn create_account(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "INSERT INTO accounts (jid, domain, {CREDENTIAL_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (jid) DO NOTHING"
            ))
            .await
            .db()?;
        let (a, b) = (&creds.sha1, &creds.sha256);
        let (ai, bi) = (i64::from(a.iterations), i64::from(b.iterations));
        let n = client
            .execute(
                &st,
                &[
                    &jid_text(user),
                    &user.domain().as_str(),
                    &a.salt,
                    &ai,
                    &a.stored_key,
                    &a.server_key,
                    &b.salt,
                    &bi,
                    &b.stored_key,
                    &b.server_key,
                ],
            )
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn account_exists(&self, user: &BareJid) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE jid = $1)")
            .await
            .db()?;
        Ok(client.query_one(&st, &[&jid_text(user)]).await.db()?.get(0))
    }

    async fn credentials(&self, user: &BareJid) -> Result<Option<StoredCredentials>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM accounts WHERE jid = $1"
            ))
            .await
            .db()?;
        client
            .query_opt(&st, &[&jid_text(user)])
            .await
            .db()?
            .map(|row| read_credentials(&row, 0))
            .transpose()
    }

    async fn set_credentials(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "UPDATE accounts SET \
                 sha1_salt = $2, sha1_iterations = $3, \
                 sha1_stored_key = $4, sha1_server_key = $5, \
                 sha256_salt = $6, sha256_iterations = $7, \
                 sha256_stored_key = $8, sha256_server_key = $9 \
                 WHERE jid = $1",
            )
            .await
            .db()?;
        let (a, b) = (&creds.sha1, &creds.sha256);
        let (ai, bi) = (i64::from(a.iterations), i64::from(b.iterations));
        let n = client
            .execute(
                &st,
                &[
                    &jid_text(user),
                    &a.salt,
                    &ai,
                    &a.stored_key,
                    &a.server_key,
                    &b.salt,
                    &bi,
                    &b.stored_key,
                    &b.server_key,
                ],
            )
            .await
            .db()?;
        Ok(n == 1)
    }

    async fn remove_account(&self, user: &BareJid) -> Result<bool> {
        // Archive rows still queued for this account must not land after
        // its archive is deleted (group_commit.rs).
        self.archive_writer.settle().await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let user = jid_text(user);
        // Leftover rows are removed even when the account row is gone, so
        // a half-removed account can be cleaned up by retrying.
        for table in ACCOUNT_TABLES {
            let st = tx
                .prepare_cached(&format!("DELETE FROM {table} WHERE account = $1"))
                .await
                .db()?;
            tx.execute(&st, &[&user]).await.db()?;
        }
        super::archive::remove_owner(&tx, user).await?;
        super::pubsub::remove_owner(&tx, user).await?;
        super::pubsub::remove_member(&tx, user).await?;
        let st = tx
            .prepare_cached("DELETE FROM accounts WHERE jid = $1")
            .await
            .db()?;
        let removed = tx.execute(&st, &[&user]).await.db()?;
        tx.commit().await.db()?;
        Ok(removed == 1)
    }

    async fn list_accounts(&self, domain: Option<&str>) -> Result<Vec<BareJid>> {
        let client = self.client().await?;
        let rows = match domain {
            Some(domain) => {
                let st = client
                    .prepare_cached("SELECT jid FROM accounts WHERE domain = $1")
                    .await
                    .db()?;
                client.query(&st, &[&domain]).await.db()?
            }
            None => {
                let st = client
                    .prepare_cached("SELECT jid FROM accounts")
                    .await
                    .db()?;
                client.query(&st, &[]).await.db()?
            }
        };
        let mut jids = rows
            .iter()
            .map(|r| parse_jid(r.get(0)))
            .collect::<Result<Vec<_>>>()?;
        // Sorted here so the order is exactly BareJid's Ord.
        jids.sort();
        Ok(jids)
    }
}
