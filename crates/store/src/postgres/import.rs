//! Filling a PostgreSQL database from another store (`roost storage
//! migrate`, transfer.rs): every table copied in one transaction, so that
//! a copy that fails half-way leaves the target as it was. Ids that clients
//! or the server may hold keep their values (offline ids, the order of
//! archives and items); the sequences then continue after them.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::{Db, PostgresStore};
use crate::transfer::{Counts, Export};
use crate::{Result, StoreError};

/// Rows read from the source at a time.
const CHUNK: usize = 5_000;

fn counted(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn count<C: GenericClient>(c: &C, table: &str) -> Result<u64> {
    let n: i64 = c
        .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
        .await
        .db()?
        .get(0);
    Ok(counted(n))
}

async fn counts<C: GenericClient>(c: &C) -> Result<Counts> {
    Ok(Counts {
        accounts: count(c, "accounts").await?,
        roster_items: count(c, "roster_items").await?,
        roster_versions: count(c, "roster_versions").await?,
        pending_in: count(c, "pending_in").await?,
        offline: count(c, "offline").await?,
        private: count(c, "private").await?,
        archive: count(c, "archive").await?,
        rooms: count(c, "muc_rooms").await?,
        room_affiliations: count(c, "muc_affiliations").await?,
        pubsub_nodes: count(c, "pubsub_nodes").await?,
        pubsub_items: count(c, "pubsub_items").await?,
        pubsub_subscriptions: count(c, "pubsub_subscriptions").await?,
        pubsub_affiliations: count(c, "pubsub_affiliations").await?,
    })
}

impl PostgresStore {
    /// The rows each table holds (counted: this reads every table, for the
    /// migrate command rather than the server).
    pub async fn table_counts(&self) -> Result<Counts> {
        self.archive_writer.settle().await?;
        let client = self.client().await?;
        counts(&client).await
    }

    /// Copy everything `source` holds into this database, in one
    /// transaction. A database that holds anything is refused unless
    /// `replace` is set, which empties it first (in the same transaction).
    /// Fails, changing nothing, when the source's tables change during the
    /// copy (a server still running on it). Returns the rows copied.
    pub async fn import(&self, source: &dyn Export, replace: bool) -> Result<Counts> {
        self.archive_writer.settle().await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // Nobody else writes while the copy runs (the lock ends with it).
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            super::migrations::DATA_TABLES.join(", ")
        ))
        .await
        .db()?;
        let before = counts(&tx).await?;
        if before.total() > 0 {
            if !replace {
                return Err(StoreError::Backend(format!(
                    "the target database is not empty ({} rows); \
                     use --force to replace its contents",
                    before.total()
                )));
            }
            tx.batch_execute(&format!(
                "TRUNCATE {} RESTART IDENTITY",
                super::migrations::DATA_TABLES.join(", ")
            ))
            .await
            .db()?;
        }
        let expected = source.export_counts().await?;
        let copied = copy(&tx, source).await?;
        if copied != expected {
            return Err(StoreError::Backend(format!(
                "the source changed during the copy (is a server still using it?): \
                 it held\n{expected}and the copy read\n{copied}"
            )));
        }
        let stored = counts(&tx).await?;
        if stored != copied {
            return Err(StoreError::Backend(format!(
                "the target holds other rows than were copied:\n{stored}against\n{copied}"
            )));
        }
        tx.commit().await.db()?;
        Ok(copied)
    }
}

async fn copy(tx: &Transaction<'_>, source: &dyn Export) -> Result<Counts> {
    let mut n = Counts::default();

    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO accounts (jid, domain, {}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            super::accounts::CREDENTIAL_COLUMNS
        ))
        .await
        .db()?;
    let mut after = i64::MIN;
    loop {
        let rows = source.export_accounts(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        for (_, row) in &rows {
            let (a, b) = (&row.credentials.sha1, &row.credentials.sha256);
            let (ai, bi) = (i64::from(a.iterations), i64::from(b.iterations));
            let domain = super::parse_jid(&row.jid)?.domain().to_string();
            tx.execute(
                &insert,
                &[
                    &row.jid,
                    &domain,
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
        }
        n.accounts += rows.len() as u64;
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO roster_items (account, contact, name, subscription, ask, approved, groups) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .db()?;
    let mut after = i64::MIN;
    loop {
        let rows = source.export_roster_items(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        for (_, row) in &rows {
            let it = &row.item;
            tx.execute(
                &insert,
                &[
                    &row.user,
                    &it.jid.as_str(),
                    &it.name,
                    &it.subscription.as_str(),
                    &it.ask,
                    &it.approved,
                    &it.groups,
                ],
            )
            .await
            .db()?;
        }
        n.roster_items += rows.len() as u64;
    }

    let insert = tx
        .prepare_cached("INSERT INTO roster_versions (account, version) VALUES ($1, $2)")
        .await
        .db()?;
    let mut after = i64::MIN;
    loop {
        let rows = source.export_roster_versions(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        for (_, row) in &rows {
            let version = i64::try_from(row.version)
                .map_err(|_| StoreError::Corrupt(format!("roster version {}", row.version)))?;
            tx.execute(&insert, &[&row.user, &version]).await.db()?;
        }
        n.roster_versions += rows.len() as u64;
    }

    let insert = tx
        .prepare_cached(
            "INSERT INTO pending_in (account, contact, stanza) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        )
        .await
        .db()?;
    let mut after = i64::MIN;
    loop {
        let rows = source.export_pending_in(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        let users: Vec<&str> = rows.iter().map(|(_, r)| r.user.as_str()).collect();
        let contacts: Vec<&str> = rows.iter().map(|(_, r)| r.contact.as_str()).collect();
        let stanzas: Vec<&str> = rows.iter().map(|(_, r)| r.stanza.as_str()).collect();
        tx.execute(&insert, &[&users, &contacts, &stanzas])
            .await
            .db()?;
        n.pending_in += rows.len() as u64;
    }

    let insert = tx
        .prepare_cached(
            "INSERT INTO offline (id, account, stanza) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
        )
        .await
        .db()?;
    let mut after = i64::MIN;
    let mut max_offline = 0i64;
    loop {
        let rows = source.export_offline(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        let ids: Vec<i64> = rows.iter().map(|(_, r)| r.id).collect();
        let users: Vec<&str> = rows.iter().map(|(_, r)| r.user.as_str()).collect();
        let stanzas: Vec<&str> = rows.iter().map(|(_, r)| r.stanza.as_str()).collect();
        max_offline = max_offline.max(ids.iter().copied().max().unwrap_or(0));
        tx.execute(&insert, &[&ids, &users, &stanzas]).await.db()?;
        n.offline += rows.len() as u64;
    }
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('offline', 'id'), $1, false)",
        &[&max_offline.saturating_add(1)],
    )
    .await
    .db()?;

    let insert = tx
        .prepare_cached(
            "INSERT INTO private (account, key, xml) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        )
        .await
        .db()?;
    let mut after = i64::MIN;
    loop {
        let rows = source.export_private(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        let users: Vec<&str> = rows.iter().map(|(_, r)| r.user.as_str()).collect();
        let keys: Vec<&str> = rows.iter().map(|(_, r)| r.key.as_str()).collect();
        let xmls: Vec<&str> = rows.iter().map(|(_, r)| r.xml.as_str()).collect();
        tx.execute(&insert, &[&users, &keys, &xmls]).await.db()?;
        n.private += rows.len() as u64;
    }

    n.archive = copy_archive(tx, source).await?;
    copy_rooms(tx, source, &mut n).await?;
    copy_pubsub(tx, source, &mut n).await?;
    Ok(n)
}

async fn copy_archive(tx: &Transaction<'_>, source: &dyn Export) -> Result<u64> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO archive (owner, seq, stanza_id, with_jid, with_bare, stamp, xml) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                                  $6::bigint[], $7::text[])",
        )
        .await
        .db()?;
    let mut after = i64::MIN;
    let mut max_seq = 0i64;
    let mut copied = 0u64;
    loop {
        let rows = source.export_archive(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        let owners: Vec<&str> = rows.iter().map(|(_, r)| r.owner.as_str()).collect();
        let seqs: Vec<i64> = rows.iter().map(|(_, r)| r.seq).collect();
        let ids: Vec<&str> = rows.iter().map(|(_, r)| r.msg.id.as_str()).collect();
        let withs: Vec<&str> = rows.iter().map(|(_, r)| r.msg.with.as_str()).collect();
        let bares: Vec<&str> = withs
            .iter()
            .map(|w| w.split('/').next().unwrap_or(w))
            .collect();
        let stamps: Vec<i64> = rows.iter().map(|(_, r)| r.msg.stamp_ms).collect();
        let xmls: Vec<&str> = rows.iter().map(|(_, r)| r.msg.xml.as_str()).collect();
        max_seq = max_seq.max(seqs.iter().copied().max().unwrap_or(0));
        tx.execute(
            &insert,
            &[&owners, &seqs, &ids, &withs, &bares, &stamps, &xmls],
        )
        .await
        .db()?;
        copied += rows.len() as u64;
    }
    tx.execute(
        "SELECT setval('archive_seq', $1, false)",
        &[&max_seq.saturating_add(1)],
    )
    .await
    .db()?;
    tx.execute(
        "INSERT INTO archive_counts (owner, messages) \
         SELECT owner, COUNT(*) FROM archive GROUP BY owner",
        &[],
    )
    .await
    .db()?;
    Ok(copied)
}

async fn copy_rooms(tx: &Transaction<'_>, source: &dyn Export, n: &mut Counts) -> Result<()> {
    let room = tx
        .prepare_cached(
            "INSERT INTO muc_rooms (jid, service, persistent, settings, subject, subject_nick, \
             subject_stamp) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .await
        .db()?;
    let affiliation = tx
        .prepare_cached(
            "INSERT INTO muc_affiliations (room, jid, affiliation, nick, reason) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .db()?;
    let mut after = i64::MIN;
    loop {
        let rows = source.export_rooms(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        for (_, row) in &rows {
            let r = &row.room;
            let subject = r.subject.as_ref();
            let id: i64 = tx
                .query_one(
                    &room,
                    &[
                        &r.jid.as_str(),
                        &r.jid.domain().as_str(),
                        &r.persistent,
                        &r.settings,
                        &subject.map(|s| s.text.as_str()),
                        &subject.map(|s| s.nick.as_str()),
                        &subject.map(|s| s.stamp_ms),
                    ],
                )
                .await
                .db()?
                .get(0);
            for a in &row.affiliations {
                tx.execute(
                    &affiliation,
                    &[
                        &id,
                        &a.jid.as_str(),
                        &a.affiliation.as_str(),
                        &a.nick,
                        &a.reason,
                    ],
                )
                .await
                .db()?;
            }
            n.room_affiliations += row.affiliations.len() as u64;
        }
        n.rooms += rows.len() as u64;
    }
    Ok(())
}

async fn copy_pubsub(tx: &Transaction<'_>, source: &dyn Export, n: &mut Counts) -> Result<()> {
    let node = tx
        .prepare_cached(
            "INSERT INTO pubsub_nodes (owner, name, config) VALUES ($1, $2, $3) RETURNING id",
        )
        .await
        .db()?;
    let subscription = tx
        .prepare_cached(
            "INSERT INTO pubsub_subscriptions (node, jid, account, subid, state, options) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .db()?;
    let affiliation = tx
        .prepare_cached(
            "INSERT INTO pubsub_affiliations (node, jid, affiliation) VALUES ($1, $2, $3)",
        )
        .await
        .db()?;
    // (owner, node name) -> the new node id, for the items.
    let mut ids: HashMap<(String, String), i64> = HashMap::new();
    let mut after = i64::MIN;
    loop {
        let rows = source.export_pubsub_nodes(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        for (_, row) in &rows {
            let id: i64 = tx
                .query_one(&node, &[&row.owner, &row.node.name, &row.node.config])
                .await
                .db()?
                .get(0);
            for s in &row.subscriptions {
                let account = s.jid.to_bare();
                tx.execute(
                    &subscription,
                    &[
                        &id,
                        &s.jid.as_str(),
                        &account.as_str(),
                        &s.subid,
                        &s.state,
                        &s.options,
                    ],
                )
                .await
                .db()?;
            }
            for a in &row.affiliations {
                tx.execute(&affiliation, &[&id, &a.jid.as_str(), &a.affiliation])
                    .await
                    .db()?;
            }
            n.pubsub_subscriptions += row.subscriptions.len() as u64;
            n.pubsub_affiliations += row.affiliations.len() as u64;
            ids.insert((row.owner.clone(), row.node.name.clone()), id);
        }
        n.pubsub_nodes += rows.len() as u64;
    }

    let insert = tx
        .prepare_cached(
            "INSERT INTO pubsub_items (node, seq, item_id, publisher, stamp, xml) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
                                  $5::bigint[], $6::text[])",
        )
        .await
        .db()?;
    let mut after = i64::MIN;
    let mut max_seq = 0i64;
    loop {
        let rows = source.export_pubsub_items(after, CHUNK).await?;
        let Some((last, _)) = rows.last() else { break };
        after = *last;
        let nodes = rows
            .iter()
            .map(|(_, r)| {
                ids.get(&(r.owner.clone(), r.node.clone()))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "item {:?} of a node not copied: {} {:?}",
                            r.item.id, r.owner, r.node
                        ))
                    })
            })
            .collect::<Result<Vec<i64>>>()?;
        let seqs: Vec<i64> = rows.iter().map(|(_, r)| r.seq).collect();
        let item_ids: Vec<&str> = rows.iter().map(|(_, r)| r.item.id.as_str()).collect();
        let publishers: Vec<&str> = rows
            .iter()
            .map(|(_, r)| r.item.publisher.as_str())
            .collect();
        let stamps: Vec<i64> = rows.iter().map(|(_, r)| r.item.stamp_ms).collect();
        let xmls: Vec<&str> = rows.iter().map(|(_, r)| r.item.xml.as_str()).collect();
        max_seq = max_seq.max(seqs.iter().copied().max().unwrap_or(0));
        tx.execute(
            &insert,
            &[&nodes, &seqs, &item_ids, &publishers, &stamps, &xmls],
        )
        .await
        .db()?;
        n.pubsub_items += rows.len() as u64;
    }
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('pubsub_items', 'seq'), $1, false)",
        &[&max_seq.saturating_add(1)],
    )
    .await
    .db()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::scratch_store;
    use crate::muc::{MucAffiliation, StoredAffiliation, StoredSubject};
    use crate::pubsub::{StoredItem, StoredSubscription};
    use crate::sqlite::SqliteStore;
    use crate::transfer::Export;
    use crate::{
        AccountStore, ArchiveQuery, ArchiveStore, ArchivedMessage, MucStore, OfflineStore,
        PrivateStore, PubsubStore, RosterItem, RosterStore, ScramKeys, StoredCredentials,
        Subscription,
    };
    use jid::BareJid;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    fn creds(seed: u8) -> StoredCredentials {
        let keys = |len: usize, iterations: u32| ScramKeys {
            salt: vec![seed; 16],
            iterations,
            stored_key: (0..len).map(|i| seed ^ i as u8).collect(),
            server_key: (0..len).map(|i| seed.wrapping_add(i as u8)).collect(),
        };
        StoredCredentials {
            sha1: keys(20, 4096 + u32::from(seed)),
            sha256: keys(32, u32::MAX - u32::from(seed)),
        }
    }

    fn message(i: usize, with: &str) -> ArchivedMessage {
        ArchivedMessage {
            id: format!("sid-{i}"),
            with: with.into(),
            stamp_ms: 1_700_000_000_000 + i as i64,
            xml: format!("<message xmlns='jabber:client'><body>{i} ☕</body></message>"),
        }
    }

    const USERS: [&str; 3] = ["alice@a.example", "bob@a.example", "carol@b.example"];
    const ROOMS: [&str; 3] = [
        "coven@chat.a.example",
        "heath@chat.a.example",
        "temp@chat.a.example",
    ];

    /// Something of every kind the SQLite schema holds, written through the
    /// traits as the server would.
    async fn fill(s: &SqliteStore) {
        for (i, u) in USERS.iter().enumerate() {
            assert!(s.create_account(&jid(u), &creds(i as u8)).await.unwrap());
        }
        // A domain-only account (a component's, say).
        s.create_account(&jid("a.example"), &creds(9))
            .await
            .unwrap();
        let alice = jid("alice@a.example");
        let bob = jid("bob@a.example");
        let item = RosterItem {
            name: Some("Bob ✓".into()),
            subscription: Subscription::Both,
            ask: true,
            approved: true,
            groups: vec!["Friends".into(), "日本".into(), "line\nbreak".into()],
            ..RosterItem::new(bob.clone())
        };
        s.put_roster_item(&alice, &item).await.unwrap();
        s.put_roster_item(&alice, &RosterItem::new(jid("carol@b.example")))
            .await
            .unwrap();
        s.put_roster_item(&bob, &RosterItem::new(jid("dave@d.example")))
            .await
            .unwrap();
        // A version with no items left.
        s.remove_roster_item(&bob, &jid("dave@d.example"))
            .await
            .unwrap();
        s.put_pending_in(
            &alice,
            &jid("eve@e.example"),
            "<presence type='subscribe'/>",
        )
        .await
        .unwrap();
        for n in 0..5 {
            s.push_offline(&alice, &format!("<message id='{n}'/>"), 100)
                .await
                .unwrap();
        }
        let first = s.offline(&alice).await.unwrap()[1].0;
        s.ack_offline(&alice, first).await.unwrap();
        s.push_offline(&bob, "<message id='b'/>", 100)
            .await
            .unwrap();
        // Private XML: vCards, and what other features keep there (FAST
        // tokens, push registrations, a disabled account, the MOTD).
        for (owner, key, xml) in [
            (
                "alice@a.example",
                "vcard-temp",
                "<vCard xmlns='vcard-temp'/>",
            ),
            ("alice@a.example", "urn:xmpp:fast:0", "<tokens/>"),
            ("alice@a.example", "urn:xmpp:push:0", "<push/>"),
            ("bob@a.example", "urn:roost:disabled", "<disabled/>"),
            ("a.example", "motd", "<motd>Hi</motd>"),
        ] {
            s.set_private(&jid(owner), key, Some(xml)).await.unwrap();
        }
        for i in 0..2_500 {
            let owner = USERS[i % 2];
            s.archive_queued(&jid(owner), message(i, "carol@b.example/phone"));
        }
        for i in 0..40 {
            s.archive_queued(
                &jid(ROOMS[0]),
                message(10_000 + i, "coven@chat.a.example/crone"),
            );
        }
        s.settle_archive().await.unwrap();
        s.replace_archived(&alice, "sid-4", "<message><retracted/></message>")
            .await
            .unwrap();
        for (i, room) in ROOMS.iter().enumerate() {
            s.put_room(&jid(room), i < 2, &format!("settings {i}"))
                .await
                .unwrap();
        }
        s.set_room_subject(
            &jid(ROOMS[0]),
            Some(&StoredSubject {
                text: "Spells".into(),
                nick: "crone".into(),
                stamp_ms: 42,
            }),
        )
        .await
        .unwrap();
        for (who, aff, nick, reason) in [
            (
                "alice@a.example",
                MucAffiliation::Owner,
                Some("crone"),
                None,
            ),
            ("b.example", MucAffiliation::Outcast, None, Some("Treason")),
        ] {
            s.set_room_affiliation(
                &jid(ROOMS[0]),
                &StoredAffiliation {
                    jid: jid(who),
                    affiliation: aff,
                    nick: nick.map(Into::into),
                    reason: reason.map(Into::into),
                },
            )
            .await
            .unwrap();
        }
        // PEP nodes and the pubsub service's, with a republished item.
        let service = jid("pubsub.a.example");
        s.create_node(&alice, "urn:xmpp:avatar:metadata", "<x/>")
            .await
            .unwrap();
        s.create_node(&service, "news", "").await.unwrap();
        for id in ["a", "b", "c", "a"] {
            s.publish_item(
                &alice,
                "urn:xmpp:avatar:metadata",
                &StoredItem {
                    id: id.into(),
                    publisher: "alice@a.example/phone".into(),
                    stamp_ms: 7,
                    xml: format!("<p>{id}</p>"),
                },
                10,
            )
            .await
            .unwrap();
        }
        s.put_subscription(
            &service,
            "news",
            &StoredSubscription {
                jid: jid::Jid::new("bob@a.example/laptop").unwrap(),
                subid: "s1".into(),
                state: "subscribed".into(),
                options: "<options/>".into(),
            },
        )
        .await
        .unwrap();
        s.set_node_affiliation(&service, "news", &alice, Some("owner"))
            .await
            .unwrap();
    }

    /// Everything readable through the traits, as comparable text.
    async fn read_all<S>(s: &S) -> Vec<String>
    where
        S: AccountStore
            + RosterStore
            + OfflineStore
            + PrivateStore
            + ArchiveStore
            + MucStore
            + PubsubStore,
    {
        let mut out = Vec::new();
        let accounts = s.list_accounts(None).await.unwrap();
        out.push(format!("{accounts:?}"));
        for a in &accounts {
            out.push(format!("{a}: {:?}", s.credentials(a).await.unwrap()));
            out.push(format!("{a}: {:?}", s.roster(a).await.unwrap()));
            out.push(format!("{a}: {:?}", s.pending_in(a).await.unwrap()));
            out.push(format!("{a}: {:?}", s.offline(a).await.unwrap()));
            for key in [
                "vcard-temp",
                "urn:xmpp:fast:0",
                "urn:xmpp:push:0",
                "urn:roost:disabled",
                "motd",
            ] {
                out.push(format!(
                    "{a} {key}: {:?}",
                    s.get_private(a, key).await.unwrap()
                ));
            }
        }
        let all = ArchiveQuery {
            max: 10_000,
            ..ArchiveQuery::default()
        };
        for owner in USERS.iter().chain(ROOMS.iter()) {
            let owner = jid(owner);
            out.push(format!(
                "{owner}: {:?}",
                s.query_archive(&owner, &all).await.unwrap()
            ));
            out.push(format!(
                "{owner}: {:?}",
                s.archive_bounds(&owner).await.unwrap()
            ));
        }
        out.push(format!("{:?}", s.rooms("chat.a.example").await.unwrap()));
        for room in ROOMS {
            out.push(format!(
                "{:?}",
                s.room_affiliations(&jid(room)).await.unwrap()
            ));
        }
        for owner in ["alice@a.example", "pubsub.a.example"] {
            let owner = jid(owner);
            for node in s.nodes(&owner).await.unwrap() {
                out.push(format!("{owner} {node:?}"));
                out.push(format!(
                    "{:?}",
                    s.items(&owner, &node.name, None).await.unwrap()
                ));
                out.push(format!(
                    "{:?}",
                    s.subscriptions(&owner, &node.name).await.unwrap()
                ));
                out.push(format!(
                    "{:?}",
                    s.node_affiliations(&owner, &node.name).await.unwrap()
                ));
            }
        }
        out
    }

    #[tokio::test]
    async fn postgres_import_from_sqlite_copies_everything() {
        let Some((_scratch, pg)) =
            scratch_store("postgres_import_from_sqlite_copies_everything").await
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("roost.sqlite"))
            .await
            .unwrap();
        fill(&sqlite).await;
        let expected = sqlite.export_counts().await.unwrap();
        assert_eq!(expected.archive, 2_540);
        assert_eq!(expected.accounts, 4);

        let copied = pg.import(&sqlite, false).await.unwrap();
        assert_eq!(copied, expected);
        assert_eq!(pg.table_counts().await.unwrap(), expected);
        let (from, to) = (read_all(&sqlite).await, read_all(&pg).await);
        for (f, t) in from.iter().zip(&to) {
            assert_eq!(f, t);
        }
        assert_eq!(from.len(), to.len());
        let alice = jid("alice@a.example");
        assert_eq!(pg.archive_count(&alice).await.unwrap(), Some(1_250));
        assert_eq!(
            pg.list_accounts(Some("a.example")).await.unwrap().len(),
            3,
            "domains are derived from the copied JIDs"
        );

        // The copy goes on where the source stopped: new rows come after.
        let last_offline = pg.offline(&alice).await.unwrap().last().unwrap().0;
        pg.push_offline(&alice, "<message id='new'/>", 100)
            .await
            .unwrap();
        assert!(pg.offline(&alice).await.unwrap().last().unwrap().0 > last_offline);
        pg.archive(&alice, &message(99_999, "bob@a.example"))
            .await
            .unwrap();
        let (_, last) = pg.archive_bounds(&alice).await.unwrap().unwrap();
        assert_eq!(last.id, "sid-99999");
        pg.publish_item(
            &alice,
            "urn:xmpp:avatar:metadata",
            &StoredItem {
                id: "z".into(),
                publisher: "alice@a.example".into(),
                stamp_ms: 8,
                xml: "<p/>".into(),
            },
            10,
        )
        .await
        .unwrap();
        let newest = pg
            .items(&alice, "urn:xmpp:avatar:metadata", Some(1))
            .await
            .unwrap();
        assert_eq!(newest[0].id, "z");

        // A database that holds something is refused, then replaced on
        // request.
        let err = pg.import(&sqlite, false).await.unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(pg.import(&sqlite, true).await.unwrap(), expected);
        let again = read_all(&pg).await;
        assert_eq!(again, from);
    }
}
