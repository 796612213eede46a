//! `Export` on SQLite: every table read in rowid order, in chunks, for
//! `roost storage migrate` (transfer.rs).

use super::{Cached, Db, SqliteStore};
use crate::muc::{MucAffiliation, StoredAffiliation, StoredRoom, StoredSubject};
use crate::pubsub::{StoredItem, StoredNode, StoredNodeAffiliation, StoredSubscription};
use crate::transfer::{
    AccountRow, ArchiveRow, Counts, Export, ItemRow, NodeRow, OfflineRow, PendingRow, PrivateRow,
    RoomRow, RosterRow, RosterVersionRow,
};
use crate::{
    ArchivedMessage, Result, RosterItem, ScramKeys, StoreError, StoredCredentials, Subscription,
};
use async_trait::async_trait;
use rusqlite::{params, Connection};

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Rows of `sql` (whose parameters are `after` and `limit`), each mapped.
fn chunk<T>(
    conn: &Connection,
    sql: &str,
    after: i64,
    limit: usize,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<(i64, T)>,
) -> Result<Vec<(i64, T)>> {
    conn.prepare_cached(sql)
        .db()?
        .query_map(params![after, limit_of(limit)], f)
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

fn parse_jid(text: &str) -> Result<jid::BareJid> {
    super::parse_jid(text)
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("stored {what} {value:?}"))
}

fn count(conn: &Connection, table: &str) -> Result<u64> {
    let n: i64 = conn
        .query_row_cached(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl Export for SqliteStore {
    async fn export_counts(&self) -> Result<Counts> {
        // Queued archive rows are part of what is copied.
        self.archive_writer.settle().await?;
        self.call(|conn| {
            // One read transaction: the counts are of one moment.
            let tx = conn.transaction().db()?;
            let counts = Counts {
                accounts: count(&tx, "accounts")?,
                roster_items: count(&tx, "roster_items")?,
                roster_versions: count(&tx, "roster_versions")?,
                pending_in: count(&tx, "pending_in")?,
                offline: count(&tx, "offline")?,
                private: count(&tx, "private")?,
                archive: count(&tx, "archive")?,
                rooms: count(&tx, "muc_rooms")?,
                room_affiliations: count(&tx, "muc_affiliations")?,
                pubsub_nodes: count(&tx, "pubsub_nodes")?,
                pubsub_items: count(&tx, "pubsub_items")?,
                pubsub_subscriptions: count(&tx, "pubsub_subscriptions")?,
                pubsub_affiliations: count(&tx, "pubsub_affiliations")?,
            };
            tx.commit().db()?;
            Ok(counts)
        })
        .await
    }

    async fn export_accounts(&self, after: i64, limit: usize) -> Result<Vec<(i64, AccountRow)>> {
        self.call(move |conn| {
            let keys = |r: &rusqlite::Row<'_>, first: usize| -> rusqlite::Result<ScramKeys> {
                Ok(ScramKeys {
                    salt: r.get(first)?,
                    iterations: r.get(first + 1)?,
                    stored_key: r.get(first + 2)?,
                    server_key: r.get(first + 3)?,
                })
            };
            chunk(
                conn,
                "SELECT rowid, jid, sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key, \
                 sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key \
                 FROM accounts WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        AccountRow {
                            jid: r.get(1)?,
                            credentials: StoredCredentials {
                                sha1: keys(r, 2)?,
                                sha256: keys(r, 6)?,
                            },
                        },
                    ))
                },
            )
        })
        .await
    }

    async fn export_roster_items(&self, after: i64, limit: usize) -> Result<Vec<(i64, RosterRow)>> {
        self.call(move |conn| {
            let tx = conn.transaction().db()?;
            let raw: Vec<(i64, (String, String, Option<String>, String, bool, bool))> = chunk(
                &tx,
                "SELECT rowid, user, contact, name, subscription, ask, approved \
                 FROM roster_items WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        (
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ),
                    ))
                },
            )?;
            let mut out = Vec::with_capacity(raw.len());
            for (key, (user, contact, name, subscription, ask, approved)) in raw {
                let groups = tx
                    .prepare_cached(
                        "SELECT name FROM roster_groups WHERE user = ?1 AND contact = ?2 \
                         ORDER BY position",
                    )
                    .db()?
                    .query_map([&user, &contact], |r| r.get(0))
                    .db()?
                    .collect::<rusqlite::Result<Vec<String>>>()
                    .db()?;
                let item = RosterItem {
                    jid: parse_jid(&contact)?,
                    name,
                    subscription: Subscription::parse(&subscription)
                        .ok_or_else(|| corrupt("subscription", &subscription))?,
                    ask,
                    approved,
                    groups,
                };
                out.push((key, RosterRow { user, item }));
            }
            tx.commit().db()?;
            Ok(out)
        })
        .await
    }

    async fn export_roster_versions(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RosterVersionRow)>> {
        self.call(move |conn| {
            let raw: Vec<(i64, (String, i64))> = chunk(
                conn,
                "SELECT rowid, user, version FROM roster_versions \
                 WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                after,
                limit,
                |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))),
            )?;
            raw.into_iter()
                .map(|(key, (user, version))| {
                    Ok((
                        key,
                        RosterVersionRow {
                            user,
                            version: super::version_from_db(version)?,
                        },
                    ))
                })
                .collect()
        })
        .await
    }

    async fn export_pending_in(&self, after: i64, limit: usize) -> Result<Vec<(i64, PendingRow)>> {
        self.call(move |conn| {
            chunk(
                conn,
                "SELECT rowid, user, contact, stanza FROM pending_in \
                 WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        PendingRow {
                            user: r.get(1)?,
                            contact: r.get(2)?,
                            stanza: r.get(3)?,
                        },
                    ))
                },
            )
        })
        .await
    }

    async fn export_offline(&self, after: i64, limit: usize) -> Result<Vec<(i64, OfflineRow)>> {
        self.call(move |conn| {
            chunk(
                conn,
                "SELECT id, user, stanza FROM offline WHERE id > ?1 ORDER BY id LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        OfflineRow {
                            id: r.get(0)?,
                            user: r.get(1)?,
                            stanza: r.get(2)?,
                        },
                    ))
                },
            )
        })
        .await
    }

    async fn export_private(&self, after: i64, limit: usize) -> Result<Vec<(i64, PrivateRow)>> {
        self.call(move |conn| {
            chunk(
                conn,
                "SELECT rowid, user, key, xml FROM private WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        PrivateRow {
                            user: r.get(1)?,
                            key: r.get(2)?,
                            xml: r.get(3)?,
                        },
                    ))
                },
            )
        })
        .await
    }

    async fn export_archive(&self, after: i64, limit: usize) -> Result<Vec<(i64, ArchiveRow)>> {
        // Queued rows are part of what is copied.
        self.archive_writer.settle().await?;
        self.call(move |conn| {
            chunk(
                conn,
                "SELECT seq, owner, stanza_id, with_jid, stamp, xml FROM archive \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        ArchiveRow {
                            seq: r.get(0)?,
                            owner: r.get(1)?,
                            msg: ArchivedMessage {
                                id: r.get(2)?,
                                with: r.get(3)?,
                                stamp_ms: r.get(4)?,
                                xml: r.get(5)?,
                            },
                        },
                    ))
                },
            )
        })
        .await
    }

    async fn export_rooms(&self, after: i64, limit: usize) -> Result<Vec<(i64, RoomRow)>> {
        self.call(move |conn| {
            let tx = conn.transaction().db()?;
            type Raw = (
                String,
                bool,
                String,
                Option<String>,
                Option<String>,
                Option<i64>,
            );
            let raw: Vec<(i64, Raw)> = chunk(
                &tx,
                "SELECT id, jid, persistent, settings, subject, subject_nick, subject_stamp \
                 FROM muc_rooms WHERE id > ?1 ORDER BY id LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        (
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ),
                    ))
                },
            )?;
            let mut out = Vec::with_capacity(raw.len());
            for (id, (jid, persistent, settings, subject, nick, stamp)) in raw {
                let affs: Vec<(String, String, Option<String>, Option<String>)> = tx
                    .prepare_cached(
                        "SELECT jid, affiliation, nick, reason FROM muc_affiliations \
                         WHERE room = ?1 ORDER BY jid",
                    )
                    .db()?
                    .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .db()?
                    .collect::<rusqlite::Result<_>>()
                    .db()?;
                let affiliations = affs
                    .into_iter()
                    .map(|(jid, affiliation, nick, reason)| {
                        Ok(StoredAffiliation {
                            jid: parse_jid(&jid)?,
                            affiliation: MucAffiliation::parse(&affiliation)
                                .ok_or_else(|| corrupt("affiliation", &affiliation))?,
                            nick,
                            reason,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let room = StoredRoom {
                    jid: parse_jid(&jid)?,
                    persistent,
                    settings,
                    subject: subject.map(|text| StoredSubject {
                        text,
                        nick: nick.unwrap_or_default(),
                        stamp_ms: stamp.unwrap_or_default(),
                    }),
                };
                out.push((id, RoomRow { room, affiliations }));
            }
            tx.commit().db()?;
            Ok(out)
        })
        .await
    }

    async fn export_pubsub_nodes(&self, after: i64, limit: usize) -> Result<Vec<(i64, NodeRow)>> {
        self.call(move |conn| {
            let tx = conn.transaction().db()?;
            let raw: Vec<(i64, (String, String, String))> = chunk(
                &tx,
                "SELECT id, owner, name, config FROM pubsub_nodes \
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
                after,
                limit,
                |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
            )?;
            let mut out = Vec::with_capacity(raw.len());
            for (id, (owner, name, config)) in raw {
                let subs: Vec<(String, String, String, String)> = tx
                    .prepare_cached(
                        "SELECT jid, subid, state, options FROM pubsub_subscriptions \
                         WHERE node = ?1 ORDER BY jid",
                    )
                    .db()?
                    .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .db()?
                    .collect::<rusqlite::Result<_>>()
                    .db()?;
                let subscriptions = subs
                    .into_iter()
                    .map(|(jid, subid, state, options)| {
                        Ok(StoredSubscription {
                            jid: jid::Jid::new(&jid).map_err(|_| corrupt("subscriber", &jid))?,
                            subid,
                            state,
                            options,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let affs: Vec<(String, String)> = tx
                    .prepare_cached(
                        "SELECT jid, affiliation FROM pubsub_affiliations \
                         WHERE node = ?1 ORDER BY jid",
                    )
                    .db()?
                    .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .db()?
                    .collect::<rusqlite::Result<_>>()
                    .db()?;
                let affiliations = affs
                    .into_iter()
                    .map(|(jid, affiliation)| {
                        Ok(StoredNodeAffiliation {
                            jid: parse_jid(&jid)?,
                            affiliation,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.push((
                    id,
                    NodeRow {
                        owner,
                        node: StoredNode { name, config },
                        subscriptions,
                        affiliations,
                    },
                ));
            }
            tx.commit().db()?;
            Ok(out)
        })
        .await
    }

    async fn export_pubsub_items(&self, after: i64, limit: usize) -> Result<Vec<(i64, ItemRow)>> {
        self.call(move |conn| {
            chunk(
                conn,
                "SELECT i.seq, n.owner, n.name, i.item_id, i.publisher, i.stamp, i.xml \
                 FROM pubsub_items i JOIN pubsub_nodes n ON n.id = i.node \
                 WHERE i.seq > ?1 ORDER BY i.seq LIMIT ?2",
                after,
                limit,
                |r| {
                    Ok((
                        r.get(0)?,
                        ItemRow {
                            seq: r.get(0)?,
                            owner: r.get(1)?,
                            node: r.get(2)?,
                            item: StoredItem {
                                id: r.get(3)?,
                                publisher: r.get(4)?,
                                stamp_ms: r.get(5)?,
                                xml: r.get(6)?,
                            },
                        },
                    ))
                },
            )
        })
        .await
    }
}
