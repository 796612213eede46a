//! The SQLite schema as an ordered list of migrations, applied at open.
//!
//! `PRAGMA user_version` holds how many migrations a database has had. Never
//! edit or reorder a released migration: append a new one instead, since
//! existing databases only run the ones past their version.

use super::Db;
use crate::{Result, StoreError};
use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "
    CREATE TABLE accounts (
        jid TEXT PRIMARY KEY NOT NULL,
        -- Duplicated out of jid so list_accounts(domain) can use an index.
        domain TEXT NOT NULL,
        sha1_salt BLOB NOT NULL,
        sha1_iterations INTEGER NOT NULL,
        sha1_stored_key BLOB NOT NULL,
        sha1_server_key BLOB NOT NULL,
        sha256_salt BLOB NOT NULL,
        sha256_iterations INTEGER NOT NULL,
        sha256_stored_key BLOB NOT NULL,
        sha256_server_key BLOB NOT NULL
    );
    CREATE INDEX accounts_domain ON accounts (domain, jid);

    CREATE TABLE roster_items (
        user TEXT NOT NULL,
        contact TEXT NOT NULL,
        name TEXT,
        subscription TEXT NOT NULL
            CHECK (subscription IN ('none', 'to', 'from', 'both')),
        ask INTEGER NOT NULL,
        approved INTEGER NOT NULL,
        PRIMARY KEY (user, contact)
    );

    -- A table rather than an encoding: group names are arbitrary text.
    -- position keeps the order the client gave.
    CREATE TABLE roster_groups (
        user TEXT NOT NULL,
        contact TEXT NOT NULL,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (user, contact, position),
        FOREIGN KEY (user, contact) REFERENCES roster_items (user, contact)
            ON DELETE CASCADE
    );

    -- Absent row = version 0 (RFC 6121 §2.6: a roster never written).
    CREATE TABLE roster_versions (
        user TEXT PRIMARY KEY NOT NULL,
        version INTEGER NOT NULL
    );

    CREATE TABLE pending_in (
        user TEXT NOT NULL,
        contact TEXT NOT NULL,
        stanza TEXT NOT NULL,
        PRIMARY KEY (user, contact)
    );

    -- AUTOINCREMENT so ids are never reused: an ack for old ids must not
    -- delete a message stored after the ones it acknowledges.
    CREATE TABLE offline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        stanza TEXT NOT NULL
    );
    CREATE INDEX offline_user ON offline (user, id);

    CREATE TABLE private (
        user TEXT NOT NULL,
        key TEXT NOT NULL,
        xml TEXT NOT NULL,
        PRIMARY KEY (user, key)
    );
    ",
    // 2: XEP-0313 archives (personal and room). `seq` is the archive order;
    // every query is a range of it found through one of these indexes.
    "
    CREATE TABLE archive (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        stanza_id TEXT NOT NULL,
        with_jid TEXT NOT NULL,
        with_bare TEXT NOT NULL,
        stamp INTEGER NOT NULL,
        xml TEXT NOT NULL
    );
    CREATE UNIQUE INDEX archive_owner_id ON archive (owner, stanza_id);
    CREATE INDEX archive_owner_seq ON archive (owner, seq);
    CREATE INDEX archive_owner_with ON archive (owner, with_bare, seq);
    CREATE INDEX archive_owner_stamp ON archive (owner, stamp);
    CREATE INDEX archive_stamp ON archive (stamp);
    ",
    // 3: XEP-0045 rooms and affiliations (reserved nicks ride on them). A
    // room's archive is in `archive`, owned by the room's JID.
    "
    CREATE TABLE muc_rooms (
        id INTEGER PRIMARY KEY,
        jid TEXT NOT NULL UNIQUE,
        -- The domain of jid, so that one service's rooms come from an index.
        service TEXT NOT NULL,
        persistent INTEGER NOT NULL,
        settings TEXT NOT NULL,
        subject TEXT,
        subject_nick TEXT,
        subject_stamp INTEGER
    );
    CREATE INDEX muc_rooms_service ON muc_rooms (service, persistent, jid);

    CREATE TABLE muc_affiliations (
        room INTEGER NOT NULL REFERENCES muc_rooms (id) ON DELETE CASCADE,
        jid TEXT NOT NULL,
        affiliation TEXT NOT NULL
            CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
        nick TEXT,
        reason TEXT,
        PRIMARY KEY (room, jid)
    );
    ",
    // 4: XEP-0060 nodes of the accounts' PEP services (XEP-0163). `seq` is
    // the publication order; a republished item is deleted and inserted
    // again, so it becomes the newest.
    "
    CREATE TABLE pubsub_nodes (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        UNIQUE (owner, name)
    );

    CREATE TABLE pubsub_items (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        node INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
        item_id TEXT NOT NULL,
        publisher TEXT NOT NULL,
        stamp INTEGER NOT NULL,
        xml TEXT NOT NULL,
        UNIQUE (node, item_id)
    );
    CREATE INDEX pubsub_items_node_seq ON pubsub_items (node, seq);
    ",
    // 5: XEP-0060 subscriptions and affiliations of the pubsub service's
    // nodes. `account` is the bare JID of a subscription's JID, so that an
    // account's subscriptions are found (and removed with it) by index.
    "
    CREATE TABLE pubsub_subscriptions (
        node INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
        jid TEXT NOT NULL,
        account TEXT NOT NULL,
        subid TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'unconfigured', 'subscribed')),
        options TEXT NOT NULL,
        PRIMARY KEY (node, jid)
    );
    CREATE INDEX pubsub_subscriptions_account ON pubsub_subscriptions (account);

    CREATE TABLE pubsub_affiliations (
        node INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
        jid TEXT NOT NULL,
        affiliation TEXT NOT NULL
            CHECK (affiliation IN ('owner', 'publisher', 'publish-only', 'member', 'outcast')),
        PRIMARY KEY (node, jid)
    );
    CREATE INDEX pubsub_affiliations_jid ON pubsub_affiliations (jid);
    ",
];

pub(crate) fn current_version(conn: &Connection) -> Result<usize> {
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .db()?;
    usize::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))
}

/// Apply the migrations the database lacks, all in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    // Cheap check first so an up-to-date database is not even write-locked.
    if current_version(conn)? == MIGRATIONS.len() {
        return Ok(());
    }
    // Immediate: another process (the CLI, a second server) may be opening
    // the same file; it waits here and then sees the new version.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let from = current_version(&tx)?;
    if from > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "database schema version {from} is newer than this build supports ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Backend(format!("migration {}: {e}", i + 1)))?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .db()?;
    tx.commit().db()?;
    if from < MIGRATIONS.len() {
        tracing::info!(from, to = MIGRATIONS.len(), "migrated database schema");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first migration");
        assert_eq!(current_version(&conn).expect("version"), MIGRATIONS.len());
        // A second run must skip everything (CREATE TABLE would fail).
        migrate(&mut conn).expect("second migration");
        assert_eq!(current_version(&conn).expect("version"), MIGRATIONS.len());
    }

    #[test]
    fn refuses_newer_schema() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .expect("set version");
        assert!(migrate(&mut conn).is_err());
    }
}
