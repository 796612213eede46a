//! `AccountStore` on SQLite: the `accounts` table, and account removal
//! across every table.

use super::{jid_text, parse_jid, Cached, Db, SqliteStore};
use crate::{AccountStore, Result, ScramKeys, StoredCredentials};
use async_trait::async_trait;
use jid::BareJid;
use rusqlite::{params, OptionalExtension, Row};

/// Every table holding per-account rows, keyed by a `user` column.
/// `roster_groups` follows `roster_items` by cascade but is listed anyway so
/// removal does not depend on the foreign-key pragma.
const USER_TABLES: &[&str] = &[
    "roster_groups",
    "roster_items",
    "roster_versions",
    "pending_in",
    "offline",
    "private",
];

/// Credential columns, in the order `read_credentials` expects them.
const CREDENTIAL_COLUMNS: &str = "sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key, \
     sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key";

fn read_keys(row: &Row<'_>, first: usize) -> rusqlite::Result<ScramKeys> {
    Ok(ScramKeys {
        salt: row.get(first)?,
        iterations: row.get(first + 1)?,
        stored_key: row.get(first + 2)?,
        server_key: row.get(first + 3)?,
    })
}

fn read_credentials(row: &Row<'_>) -> rusqlite::Result<StoredCredentials> {
    Ok(StoredCredentials {
        sha1: read_keys(row, 0)?,
        sha256: read_keys(row, 4)?,
    })
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool> {
        let user = user.clone();
        let creds = creds.clone();
        self.write(move |tx| {
            let (a, b) = (&creds.sha1, &creds.sha256);
            let inserted = tx
                .execute_cached(
                    &format!(
                        "INSERT INTO accounts (jid, domain, {CREDENTIAL_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                         ON CONFLICT (jid) DO NOTHING"
                    ),
                    params![
                        jid_text(&user),
                        user.domain().as_str(),
                        a.salt,
                        a.iterations,
                        a.stored_key,
                        a.server_key,
                        b.salt,
                        b.iterations,
                        b.stored_key,
                        b.server_key,
                    ],
                )
                .db()?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn account_exists(&self, user: &BareJid) -> Result<bool> {
        let user = user.clone();
        self.call(move |conn| {
            conn.query_row_cached(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE jid = ?1)",
                [jid_text(&user)],
                |row| row.get(0),
            )
            .db()
        })
        .await
    }

    async fn credentials(&self, user: &BareJid) -> Result<Option<StoredCredentials>> {
        let user = user.clone();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {CREDENTIAL_COLUMNS} FROM accounts WHERE jid = ?1"),
                [jid_text(&user)],
                read_credentials,
            )
            .optional()
            .db()
        })
        .await
    }

    async fn set_credentials(&self, user: &BareJid, creds: &StoredCredentials) -> Result<bool> {
        let user = user.clone();
        let creds = creds.clone();
        self.write(move |tx| {
            let (a, b) = (&creds.sha1, &creds.sha256);
            let updated = tx
                .execute_cached(
                    "UPDATE accounts SET \
                     sha1_salt = ?2, sha1_iterations = ?3, \
                     sha1_stored_key = ?4, sha1_server_key = ?5, \
                     sha256_salt = ?6, sha256_iterations = ?7, \
                     sha256_stored_key = ?8, sha256_server_key = ?9 \
                     WHERE jid = ?1",
                    params![
                        jid_text(&user),
                        a.salt,
                        a.iterations,
                        a.stored_key,
                        a.server_key,
                        b.salt,
                        b.iterations,
                        b.stored_key,
                        b.server_key,
                    ],
                )
                .db()?;
            Ok(updated == 1)
        })
        .await
    }

    async fn remove_account(&self, user: &BareJid) -> Result<bool> {
        // Archive rows still queued for this account must not land after
        // its archive is deleted (group_commit.rs).
        self.archive_writer.settle().await?;
        let user = user.clone();
        self.write(move |tx| {
            let user = jid_text(&user);
            // Leftover rows are removed even when the account row is gone,
            // so a half-removed account can be cleaned up by retrying.
            for table in USER_TABLES {
                tx.execute_cached(&format!("DELETE FROM {table} WHERE user = ?1"), [user])
                    .db()?;
            }
            tx.execute_cached("DELETE FROM archive WHERE owner = ?1", [user])
                .db()?;
            super::pubsub::remove_owner(tx, user)?;
            super::pubsub::remove_member(tx, user)?;
            let removed = tx
                .execute_cached("DELETE FROM accounts WHERE jid = ?1", [user])
                .db()?;
            Ok(removed == 1)
        })
        .await
    }

    async fn list_accounts(&self, domain: Option<&str>) -> Result<Vec<BareJid>> {
        let domain = domain.map(str::to_owned);
        self.call(move |conn| {
            // Two statements rather than `?1 IS NULL OR ...`, which would
            // keep the domain index from being used.
            let texts = match &domain {
                Some(domain) => conn
                    .prepare_cached("SELECT jid FROM accounts WHERE domain = ?1")
                    .db()?
                    .query_map([domain], |row| row.get::<_, String>(0))
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>(),
                None => conn
                    .prepare_cached("SELECT jid FROM accounts")
                    .db()?
                    .query_map([], |row| row.get::<_, String>(0))
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>(),
            }
            .db()?;
            let mut jids = texts
                .iter()
                .map(|t| parse_jid(t))
                .collect::<Result<Vec<_>>>()?;
            // Sorted here so the order is exactly BareJid's Ord.
            jids.sort();
            Ok(jids)
        })
        .await
    }
}
