//! `MucStore` on PostgreSQL: the `muc_rooms` table (one row per room, found
//! by its JID or its service through indexes) and `muc_affiliations`,
//! removed with their room by `ON DELETE CASCADE`.

use super::{jid_text, parse_jid, Db, PostgresStore};
use crate::muc::{MucAffiliation, MucStore, StoredAffiliation, StoredRoom, StoredSubject};
use crate::{Result, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use jid::BareJid;

pub(super) const ROOM_COLUMNS: &str =
    "jid, persistent, settings, subject, subject_nick, subject_stamp";

/// A `muc_rooms` row, columns in `ROOM_COLUMNS` order.
pub(super) fn read_room(row: &tokio_postgres::Row) -> Result<StoredRoom> {
    let subject: Option<String> = row.get(3);
    Ok(StoredRoom {
        jid: parse_jid(row.get(0))?,
        persistent: row.get(1),
        settings: row.get(2),
        subject: subject.map(|text| StoredSubject {
            text,
            nick: row.get::<_, Option<String>>(4).unwrap_or_default(),
            stamp_ms: row.get::<_, Option<i64>>(5).unwrap_or_default(),
        }),
    })
}

/// An affiliation row: jid, affiliation, nick, reason.
pub(super) fn read_affiliation(row: &tokio_postgres::Row) -> Result<StoredAffiliation> {
    let affiliation: &str = row.get(1);
    Ok(StoredAffiliation {
        jid: parse_jid(row.get(0))?,
        affiliation: MucAffiliation::parse(affiliation)
            .ok_or_else(|| StoreError::Corrupt(format!("stored affiliation {affiliation:?}")))?,
        nick: row.get(2),
        reason: row.get(3),
    })
}

async fn room_id<C: GenericClient>(c: &C, room: &BareJid) -> Result<Option<i64>> {
    let st = c
        .prepare_cached("SELECT id FROM muc_rooms WHERE jid = $1")
        .await
        .db()?;
    Ok(c.query_opt(&st, &[&jid_text(room)])
        .await
        .db()?
        .map(|r| r.get(0)))
}

fn service_of(room: &BareJid) -> &str {
    room.domain().as_str()
}

#[async_trait]
impl MucStore for PostgresStore {
    async fn room(&self, room: &BareJid) -> Result<Option<StoredRoom>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "SELECT {ROOM_COLUMNS} FROM muc_rooms WHERE jid = $1"
            ))
            .await
            .db()?;
        client
            .query_opt(&st, &[&jid_text(room)])
            .await
            .db()?
            .map(|r| read_room(&r))
            .transpose()
    }

    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "SELECT {ROOM_COLUMNS} FROM muc_rooms WHERE service = $1 ORDER BY jid"
            ))
            .await
            .db()?;
        client
            .query(&st, &[&service])
            .await
            .db()?
            .iter()
            .map(read_room)
            .collect()
    }

    async fn count_rooms(&self, service: &str) -> Result<usize> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT COUNT(*) FROM muc_rooms WHERE service = $1")
            .await
            .db()?;
        let n: i64 = client.query_one(&st, &[&service]).await.db()?.get(0);
        usize::try_from(n).map_err(|_| StoreError::Corrupt(format!("room count {n}")))
    }

    async fn put_room(&self, room: &BareJid, persistent: bool, settings: &str) -> Result<()> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "INSERT INTO muc_rooms (jid, service, persistent, settings) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (jid) DO UPDATE SET \
                 persistent = EXCLUDED.persistent, settings = EXCLUDED.settings",
            )
            .await
            .db()?;
        client
            .execute(
                &st,
                &[&jid_text(room), &service_of(room), &persistent, &settings],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn set_room_subject(
        &self,
        room: &BareJid,
        subject: Option<&StoredSubject>,
    ) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "UPDATE muc_rooms SET subject = $2, subject_nick = $3, subject_stamp = $4 \
                 WHERE jid = $1",
            )
            .await
            .db()?;
        let (text, nick, stamp) = match subject {
            Some(s) => (
                Some(s.text.as_str()),
                Some(s.nick.as_str()),
                Some(s.stamp_ms),
            ),
            None => (None, None, None),
        };
        let n = client
            .execute(&st, &[&jid_text(room), &text, &nick, &stamp])
            .await
            .db()?;
        Ok(n > 0)
    }

    async fn remove_room(&self, room: &BareJid) -> Result<bool> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("DELETE FROM muc_rooms WHERE jid = $1")
            .await
            .db()?;
        Ok(client.execute(&st, &[&jid_text(room)]).await.db()? > 0)
    }

    async fn remove_temporary_rooms(&self, service: &str) -> Result<Vec<BareJid>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "DELETE FROM muc_rooms WHERE service = $1 AND NOT persistent RETURNING jid",
            )
            .await
            .db()?;
        let mut jids = client
            .query(&st, &[&service])
            .await
            .db()?
            .iter()
            .map(|r| parse_jid(r.get(0)))
            .collect::<Result<Vec<_>>>()?;
        jids.sort();
        Ok(jids)
    }

    async fn room_affiliations(&self, room: &BareJid) -> Result<Vec<StoredAffiliation>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT a.jid, a.affiliation, a.nick, a.reason \
                 FROM muc_affiliations a JOIN muc_rooms r ON r.id = a.room \
                 WHERE r.jid = $1 ORDER BY a.jid",
            )
            .await
            .db()?;
        client
            .query(&st, &[&jid_text(room)])
            .await
            .db()?
            .iter()
            .map(read_affiliation)
            .collect()
    }

    async fn set_room_affiliation(
        &self,
        room: &BareJid,
        entry: &StoredAffiliation,
    ) -> Result<bool> {
        let client = self.client().await?;
        // One statement: a room removed meanwhile inserts nothing.
        let st = client
            .prepare_cached(
                "INSERT INTO muc_affiliations (room, jid, affiliation, nick, reason) \
                 SELECT id, $2, $3, $4, $5 FROM muc_rooms WHERE jid = $1 \
                 ON CONFLICT (room, jid) DO UPDATE SET affiliation = EXCLUDED.affiliation, \
                 nick = EXCLUDED.nick, reason = EXCLUDED.reason",
            )
            .await
            .db()?;
        let n = client
            .execute(
                &st,
                &[
                    &jid_text(room),
                    &jid_text(&entry.jid),
                    &entry.affiliation.as_str(),
                    &entry.nick,
                    &entry.reason,
                ],
            )
            .await
            .db()?;
        Ok(n > 0)
    }

    async fn remove_room_affiliation(&self, room: &BareJid, jid: &BareJid) -> Result<bool> {
        let client = self.client().await?;
        let Some(id) = room_id(&client, room).await? else {
            return Ok(false);
        };
        let st = client
            .prepare_cached("DELETE FROM muc_affiliations WHERE room = $1 AND jid = $2")
            .await
            .db()?;
        Ok(client.execute(&st, &[&id, &jid_text(jid)]).await.db()? > 0)
    }
}
