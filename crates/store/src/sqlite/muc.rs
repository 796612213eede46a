//! `MucStore` on SQLite: the `muc_rooms` table (one row per room, found by
//! its JID or its service through indexes) and `muc_affiliations`, removed
//! with their room by `ON DELETE CASCADE`.

use super::{jid_text, parse_jid, Cached, Db, SqliteStore};
use crate::muc::{MucAffiliation, MucStore, StoredAffiliation, StoredRoom, StoredSubject};
use crate::{Result, StoreError};
use async_trait::async_trait;
use jid::BareJid;
use rusqlite::{params, Connection, OptionalExtension};

const ROOM_COLUMNS: &str = "jid, persistent, settings, subject, subject_nick, subject_stamp";

/// A `muc_rooms` row before its text is checked.
struct RawRoom {
    jid: String,
    persistent: bool,
    settings: String,
    subject: Option<String>,
    subject_nick: Option<String>,
    subject_stamp: Option<i64>,
}

fn read_room(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRoom> {
    Ok(RawRoom {
        jid: row.get(0)?,
        persistent: row.get(1)?,
        settings: row.get(2)?,
        subject: row.get(3)?,
        subject_nick: row.get(4)?,
        subject_stamp: row.get(5)?,
    })
}

impl RawRoom {
    fn into_room(self) -> Result<StoredRoom> {
        Ok(StoredRoom {
            jid: parse_jid(&self.jid)?,
            persistent: self.persistent,
            settings: self.settings,
            subject: self.subject.map(|text| StoredSubject {
                text,
                nick: self.subject_nick.unwrap_or_default(),
                stamp_ms: self.subject_stamp.unwrap_or_default(),
            }),
        })
    }
}

fn room_id(conn: &Connection, room: &BareJid) -> Result<Option<i64>> {
    conn.query_row_cached(
        "SELECT id FROM muc_rooms WHERE jid = ?1",
        [jid_text(room)],
        |row| row.get(0),
    )
    .optional()
    .db()
}

fn service_of(room: &BareJid) -> &str {
    room.domain().as_str()
}

#[async_trait]
impl MucStore for SqliteStore {
    async fn room(&self, room: &BareJid) -> Result<Option<StoredRoom>> {
        let room = room.clone();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {ROOM_COLUMNS} FROM muc_rooms WHERE jid = ?1"),
                [jid_text(&room)],
                read_room,
            )
            .optional()
            .db()?
            .map(RawRoom::into_room)
            .transpose()
        })
        .await
    }

    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>> {
        let service = service.to_owned();
        self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ROOM_COLUMNS} FROM muc_rooms WHERE service = ?1 ORDER BY jid"
            ))
            .db()?
            .query_map([service], read_room)
            .db()?
            .map(|r| r.db().and_then(RawRoom::into_room))
            .collect()
        })
        .await
    }

    async fn count_rooms(&self, service: &str) -> Result<usize> {
        let service = service.to_owned();
        self.call(move |conn| {
            let n: i64 = conn
                .query_row_cached(
                    "SELECT COUNT(*) FROM muc_rooms WHERE service = ?1",
                    [service],
                    |row| row.get(0),
                )
                .db()?;
            usize::try_from(n).map_err(|_| StoreError::Corrupt(format!("room count {n}")))
        })
        .await
    }

    async fn put_room(&self, room: &BareJid, persistent: bool, settings: &str) -> Result<()> {
        let room = room.clone();
        let settings = settings.to_owned();
        self.write(move |tx| {
            tx.execute_cached(
                "INSERT INTO muc_rooms (jid, service, persistent, settings) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (jid) DO UPDATE SET \
                 persistent = excluded.persistent, settings = excluded.settings",
                params![jid_text(&room), service_of(&room), persistent, settings],
            )
            .db()?;
            Ok(())
        })
        .await
    }

    async fn set_room_subject(
        &self,
        room: &BareJid,
        subject: Option<&StoredSubject>,
    ) -> Result<bool> {
        let room = room.clone();
        let subject = subject.cloned();
        self.write(move |tx| {
            let (text, nick, stamp) = match subject {
                Some(s) => (Some(s.text), Some(s.nick), Some(s.stamp_ms)),
                None => (None, None, None),
            };
            let n = tx
                .execute_cached(
                    "UPDATE muc_rooms SET subject = ?2, subject_nick = ?3, subject_stamp = ?4 \
                     WHERE jid = ?1",
                    params![jid_text(&room), text, nick, stamp],
                )
                .db()?;
            Ok(n > 0)
        })
        .await
    }

    async fn remove_room(&self, room: &BareJid) -> Result<bool> {
        let room = room.clone();
        self.write(move |tx| {
            let n = tx
                .execute_cached("DELETE FROM muc_rooms WHERE jid = ?1", [jid_text(&room)])
                .db()?;
            Ok(n > 0)
        })
        .await
    }

    async fn remove_temporary_rooms(&self, service: &str) -> Result<Vec<BareJid>> {
        let service = service.to_owned();
        self.write(move |tx| {
            let jids: Vec<String> = tx
                .prepare_cached("SELECT jid FROM muc_rooms WHERE service = ?1 AND persistent = 0")
                .db()?
                .query_map([&service], |row| row.get(0))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            tx.execute_cached(
                "DELETE FROM muc_rooms WHERE service = ?1 AND persistent = 0",
                [&service],
            )
            .db()?;
            jids.iter().map(|j| parse_jid(j)).collect()
        })
        .await
    }

    async fn room_affiliations(&self, room: &BareJid) -> Result<Vec<StoredAffiliation>> {
        let room = room.clone();
        self.call(move |conn| {
            let Some(id) = room_id(conn, &room)? else {
                return Ok(Vec::new());
            };
            let rows: Vec<(String, String, Option<String>, Option<String>)> = conn
                .prepare_cached(
                    "SELECT jid, affiliation, nick, reason FROM muc_affiliations \
                     WHERE room = ?1 ORDER BY jid",
                )
                .db()?
                .query_map([id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            rows.into_iter()
                .map(|(jid, affiliation, nick, reason)| {
                    Ok(StoredAffiliation {
                        jid: parse_jid(&jid)?,
                        affiliation: MucAffiliation::parse(&affiliation).ok_or_else(|| {
                            StoreError::Corrupt(format!("stored affiliation {affiliation:?}"))
                        })?,
                        nick,
                        reason,
                    })
                })
                .collect()
        })
        .await
    }

    async fn set_room_affiliation(
        &self,
        room: &BareJid,
        entry: &StoredAffiliation,
    ) -> Result<bool> {
        let room = room.clone();
        let entry = entry.clone();
        self.write(move |tx| {
            let Some(id) = room_id(tx, &room)? else {
                return Ok(false);
            };
            tx.execute_cached(
                "INSERT INTO muc_affiliations (room, jid, affiliation, nick, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, \
                 nick = excluded.nick, reason = excluded.reason",
                params![
                    id,
                    jid_text(&entry.jid),
                    entry.affiliation.as_str(),
                    entry.nick,
                    entry.reason
                ],
            )
            .db()?;
            Ok(true)
        })
        .await
    }

    async fn remove_room_affiliation(&self, room: &BareJid, jid: &BareJid) -> Result<bool> {
        let room = room.clone();
        let jid = jid.clone();
        self.write(move |tx| {
            let Some(id) = room_id(tx, &room)? else {
                return Ok(false);
            };
            let n = tx
                .execute_cached(
                    "DELETE FROM muc_affiliations WHERE room = ?1 AND jid = ?2",
                    params![id, jid_text(&jid)],
                )
                .db()?;
            Ok(n > 0)
        })
        .await
    }
}
