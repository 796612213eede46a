//! One behavioural suite run against every backend, so features can rely on
//! the trait contracts rather than on one backend's quirks.
//!
//! Each check is a generic async fn; `backend_tests!` turns the list into one
//! `#[tokio::test]` per check inside a module per backend, each on a fresh
//! store. The PostgreSQL checks run against the database named by
//! `ROOST_TEST_POSTGRES_URL` (scripts/with-postgres.sh), each in a schema of
//! its own.

use crate::{
    AccountStore, ArchiveQuery, ArchiveStore, ArchivedMessage, OfflineStore, PrivateStore,
    RosterItem, RosterStore, ScramKeys, StoredCredentials, Subscription,
};
use crate::{MucAffiliation, MucStore, StoredAffiliation, StoredSubject};
use crate::{PubsubStore, StoredItem, StoredNodeAffiliation, StoredSubscription};
use jid::BareJid;

/// Everything a backend must implement.
trait Backend:
    AccountStore + RosterStore + OfflineStore + PrivateStore + ArchiveStore + MucStore + PubsubStore
{
}
impl<B> Backend for B where
    B: AccountStore
        + RosterStore
        + OfflineStore
        + PrivateStore
        + ArchiveStore
        + MucStore
        + PubsubStore
{
}

fn archived(i: usize, with: &str) -> ArchivedMessage {
    ArchivedMessage {
        id: format!("id{i}"),
        with: with.to_string(),
        stamp_ms: 1_000 * i as i64,
        xml: format!("<message xmlns='jabber:client'><body>{i}</body></message>"),
    }
}

fn ids(page: &crate::ArchivePage) -> Vec<String> {
    page.messages.iter().map(|m| m.id.clone()).collect()
}

async fn archive_keeps_a_stanza_id_once_and_takes_concurrent_writers<B: Backend>(b: &B) {
    let owner = jid("owner@example.com");
    b.archive(&owner, &archived(1, "a@example.com"))
        .await
        .unwrap();
    b.archive(&owner, &archived(1, "a@example.com"))
        .await
        .unwrap();
    let q = ArchiveQuery {
        max: 1000,
        ..ArchiveQuery::default()
    };
    assert_eq!(
        b.query_archive(&owner, &q)
            .await
            .unwrap()
            .unwrap()
            .messages
            .len(),
        1
    );
    // Many writers at once, as when a room message reaches many accounts.
    let writes = (0..200).map(|i| {
        let owner = jid(&format!("user{}@example.com", i % 20));
        async move {
            b.archive(&owner, &archived(1000 + i, "room@muc.example.com/x"))
                .await
        }
    });
    for r in futures_join(writes).await {
        r.unwrap();
    }
    for u in 0..20 {
        let page = b
            .query_archive(&jid(&format!("user{u}@example.com")), &q)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(page.messages.len(), 10);
    }
}

/// Rows queued without waiting keep their order, are each kept once, and
/// every later query sees them; `settle_archive` returns once they are
/// stored. Removing an archive also removes what was queued before.
async fn archive_queued_rows_are_seen_by_later_queries_in_order<B: Backend>(b: &B) {
    let owner = jid("owner@example.com");
    for i in 0..300 {
        b.archive_queued(&owner, archived(i, "room@muc.example.com/n"));
    }
    // A duplicate stanza-id (a room's history replayed) is dropped.
    b.archive_queued(&owner, archived(7, "room@muc.example.com/n"));
    let q = ArchiveQuery {
        max: 1000,
        ..ArchiveQuery::default()
    };
    let page = b.query_archive(&owner, &q).await.unwrap().unwrap();
    let expected: Vec<String> = (0..300).map(|i| format!("id{i}")).collect();
    assert_eq!(ids(&page), expected);
    let (first, last) = b.archive_bounds(&owner).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), last.id.as_str()), ("id0", "id299"));
    b.archive_queued(&owner, archived(300, "room@muc.example.com/n"));
    b.settle_archive().await.unwrap();
    b.archive_queued(&owner, archived(301, "room@muc.example.com/n"));
    b.remove_archive(&owner).await.unwrap();
    assert!(b.archive_bounds(&owner).await.unwrap().is_none());
}

/// A tombstone replaces a message's XML in place: same id, same order,
/// other owners untouched; an unknown id changes nothing.
async fn archive_replaces_a_message_in_place<B: Backend>(b: &B) {
    let owner = jid("room@muc.example.com");
    let other = jid("other@muc.example.com");
    for i in 0..3 {
        b.archive_queued(&owner, archived(i, "room@muc.example.com/n"));
    }
    b.archive(&other, &archived(1, "other@muc.example.com/n"))
        .await
        .unwrap();
    let tombstone =
        "<message xmlns='jabber:client'><retracted xmlns='urn:xmpp:message-retract:1'/></message>";
    assert!(b.replace_archived(&owner, "id1", tombstone).await.unwrap());
    assert!(!b.replace_archived(&owner, "nope", tombstone).await.unwrap());
    let q = ArchiveQuery {
        max: 10,
        ..ArchiveQuery::default()
    };
    let page = b.query_archive(&owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), ["id0", "id1", "id2"]);
    assert_eq!(page.messages[1].xml, tombstone);
    assert_eq!(page.messages[1].stamp_ms, 1_000);
    assert!(page.messages[0].xml.contains("<body>0</body>"));
    let theirs = b.query_archive(&other, &q).await.unwrap().unwrap();
    assert!(theirs.messages[0].xml.contains("<body>1</body>"));
}

/// A backend that keeps a message count keeps it exact: duplicates are not
/// counted, and purges and removals take their rows off.
async fn archive_counts_follow_inserts_and_deletes<B: Backend>(b: &B) {
    let owner = jid("owner@example.com");
    let other = jid("other@example.com");
    if b.archive_count(&owner).await.unwrap().is_none() {
        return;
    }
    assert_eq!(b.archive_count(&owner).await.unwrap(), Some(0));
    for i in 0..10 {
        b.archive_queued(&owner, archived(i, "a@example.com"));
    }
    b.archive_queued(&owner, archived(3, "a@example.com"));
    b.archive(&other, &archived(20, "a@example.com"))
        .await
        .unwrap();
    assert_eq!(b.archive_count(&owner).await.unwrap(), Some(10));
    assert_eq!(b.archive_count(&other).await.unwrap(), Some(1));
    assert_eq!(b.purge_archive_before(4_000).await.unwrap(), 4);
    assert_eq!(b.archive_count(&owner).await.unwrap(), Some(6));
    assert_eq!(b.archive_count(&other).await.unwrap(), Some(1));
    b.remove_archive(&owner).await.unwrap();
    assert_eq!(b.archive_count(&owner).await.unwrap(), Some(0));
    b.archive(&owner, &archived(30, "a@example.com"))
        .await
        .unwrap();
    assert_eq!(b.archive_count(&owner).await.unwrap(), Some(1));
    b.create_account(&other, &creds(1)).await.unwrap();
    assert!(b.remove_account(&other).await.unwrap());
    assert_eq!(b.archive_count(&other).await.unwrap(), Some(0));
}

/// Run futures concurrently on the current task (no extra dependency).
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

async fn archive_pages_both_ways_with_filters<B: Backend>(b: &B) {
    let owner = jid("owner@example.com");
    let other = jid("other@example.com");
    for i in 0..10 {
        let with = if i % 2 == 0 {
            "a@example.com/phone"
        } else {
            "b@example.com"
        };
        b.archive(&owner, &archived(i, with)).await.unwrap();
    }
    b.archive(&other, &archived(99, "a@example.com"))
        .await
        .unwrap();
    let q = |f: &dyn Fn(&mut ArchiveQuery)| {
        let mut q = ArchiveQuery {
            max: 3,
            ..ArchiveQuery::default()
        };
        f(&mut q);
        q
    };
    let first = b.query_archive(&owner, &q(&|_| {})).await.unwrap().unwrap();
    assert_eq!(ids(&first), ["id0", "id1", "id2"]);
    assert!(!first.complete);
    let next = b
        .query_archive(&owner, &q(&|q| q.after_id = Some("id2".into())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&next), ["id3", "id4", "id5"]);
    let last = b
        .query_archive(&owner, &q(&|q| q.from_end = true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&last), ["id7", "id8", "id9"]);
    assert!(!last.complete);
    let before = b
        .query_archive(
            &owner,
            &q(&|q| {
                q.from_end = true;
                q.before_id = Some("id2".into());
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&before), ["id0", "id1"]);
    assert!(before.complete);
    let with_a = b
        .query_archive(
            &owner,
            &q(&|q| {
                q.with = Some("a@example.com".into());
                q.max = 100;
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&with_a), ["id0", "id2", "id4", "id6", "id8"]);
    assert!(with_a.complete);
    let full = b
        .query_archive(
            &owner,
            &q(&|q| {
                q.with = Some("a@example.com/laptop".into());
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(full.messages.is_empty());
    let window = b
        .query_archive(
            &owner,
            &q(&|q| {
                q.start_ms = Some(2_000);
                q.end_ms = Some(4_000);
                q.max = 100;
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&window), ["id2", "id3", "id4"]);
    let picked = b
        .query_archive(&owner, &q(&|q| q.ids = vec!["id9".into(), "id1".into()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&picked), ["id1", "id9"]);
    assert!(b
        .query_archive(&owner, &q(&|q| q.after_id = Some("nope".into())))
        .await
        .unwrap()
        .is_none());
    let (lo, hi) = b.archive_bounds(&owner).await.unwrap().unwrap();
    assert_eq!((lo.id.as_str(), hi.id.as_str()), ("id0", "id9"));
    assert_eq!(b.purge_archive_before(5_000).await.unwrap(), 5);
    let rest = b
        .query_archive(&owner, &q(&|q| q.max = 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest.messages.len(), 5);
    b.remove_archive(&owner).await.unwrap();
    assert!(b.archive_bounds(&owner).await.unwrap().is_none());
    assert!(b.archive_bounds(&other).await.unwrap().is_some());
}

fn jid(s: &str) -> BareJid {
    BareJid::new(s).expect("valid test JID")
}

/// Distinct credentials per `seed`.
fn creds(seed: u8) -> StoredCredentials {
    let keys = |len: usize, iterations: u32| ScramKeys {
        salt: vec![seed; 16],
        iterations,
        stored_key: (0..len).map(|i| seed ^ i as u8).collect(),
        server_key: (0..len).map(|i| seed.wrapping_add(i as u8)).collect(),
    };
    StoredCredentials {
        sha1: keys(20, 4096 + u32::from(seed)),
        sha256: keys(32, 8192 + u32::from(seed)),
    }
}

fn item(contact: &str, name: Option<&str>, groups: &[&str]) -> RosterItem {
    RosterItem {
        name: name.map(str::to_owned),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..RosterItem::new(jid(contact))
    }
}

/// The roster as a map-like sorted list: the traits don't promise an order.
async fn roster_sorted<B: Backend>(b: &B, user: &BareJid) -> (u64, Vec<RosterItem>) {
    let (version, mut items) = b.roster(user).await.expect("roster");
    items.sort_by(|x, y| x.jid.cmp(&y.jid));
    (version, items)
}

async fn pending_sorted<B: Backend>(b: &B, user: &BareJid) -> Vec<(BareJid, String)> {
    let mut pending = b.pending_in(user).await.expect("pending_in");
    pending.sort();
    pending
}

async fn account_create_twice<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    assert!(!b.account_exists(&alice).await.unwrap());
    assert!(b.create_account(&alice, &creds(1)).await.unwrap());
    assert!(!b.create_account(&alice, &creds(2)).await.unwrap());
    assert!(b.account_exists(&alice).await.unwrap());
    // The refused second create must not have overwritten anything.
    assert_eq!(b.credentials(&alice).await.unwrap(), Some(creds(1)));
    assert!(!b.account_exists(&jid("bob@a.example")).await.unwrap());
}

async fn credentials_round_trip<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@a.example");
    assert_eq!(b.credentials(&alice).await.unwrap(), None);
    b.create_account(&alice, &creds(1)).await.unwrap();
    b.create_account(&bob, &creds(2)).await.unwrap();
    assert_eq!(b.credentials(&alice).await.unwrap(), Some(creds(1)));
    assert!(b.set_credentials(&alice, &creds(3)).await.unwrap());
    assert_eq!(b.credentials(&alice).await.unwrap(), Some(creds(3)));
    assert_eq!(b.credentials(&bob).await.unwrap(), Some(creds(2)));
}

async fn set_credentials_missing<B: Backend>(b: &B) {
    let ghost = jid("ghost@a.example");
    assert!(!b.set_credentials(&ghost, &creds(1)).await.unwrap());
    assert!(!b.account_exists(&ghost).await.unwrap());
    assert_eq!(b.credentials(&ghost).await.unwrap(), None);
}

async fn remove_account_removes_everything<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@a.example");
    for user in [&alice, &bob] {
        b.create_account(user, &creds(1)).await.unwrap();
        b.put_roster_item(user, &item("carol@c.example", Some("Carol"), &["Friends"]))
            .await
            .unwrap();
        b.put_pending_in(user, &jid("dave@d.example"), "<presence type='subscribe'/>")
            .await
            .unwrap();
        assert!(b.push_offline(user, "<message/>", 10).await.unwrap());
        b.set_private(user, "vcard-temp", Some("<vCard/>"))
            .await
            .unwrap();
    }

    assert!(b.remove_account(&alice).await.unwrap());
    assert!(!b.remove_account(&alice).await.unwrap());
    assert!(!b.account_exists(&alice).await.unwrap());
    assert_eq!(b.credentials(&alice).await.unwrap(), None);
    assert_eq!(b.roster(&alice).await.unwrap(), (0, Vec::new()));
    assert_eq!(
        b.roster_item(&alice, &jid("carol@c.example"))
            .await
            .unwrap(),
        None
    );
    assert!(b.pending_in(&alice).await.unwrap().is_empty());
    assert!(b.offline(&alice).await.unwrap().is_empty());
    assert_eq!(b.get_private(&alice, "vcard-temp").await.unwrap(), None);

    // A re-created account starts empty.
    assert!(b.create_account(&alice, &creds(2)).await.unwrap());
    assert_eq!(b.roster(&alice).await.unwrap(), (0, Vec::new()));
    assert!(b.offline(&alice).await.unwrap().is_empty());

    // Bob is untouched.
    assert!(b.account_exists(&bob).await.unwrap());
    assert_eq!(b.roster(&bob).await.unwrap().1.len(), 1);
    assert_eq!(b.pending_in(&bob).await.unwrap().len(), 1);
    assert_eq!(b.offline(&bob).await.unwrap().len(), 1);
    assert_eq!(
        b.get_private(&bob, "vcard-temp").await.unwrap().as_deref(),
        Some("<vCard/>")
    );
}

async fn list_accounts_by_domain_sorted<B: Backend>(b: &B) {
    assert!(b.list_accounts(None).await.unwrap().is_empty());
    // Created out of order, across domains; a domain-only JID included.
    for name in [
        "zed@a.example",
        "bob@b.example",
        "alice@a.example",
        "a.example",
        "mallory@a.example.org",
        "carol@a.example",
    ] {
        assert!(b.create_account(&jid(name), &creds(1)).await.unwrap());
    }
    let mut all: Vec<BareJid> = [
        "zed@a.example",
        "bob@b.example",
        "alice@a.example",
        "a.example",
        "mallory@a.example.org",
        "carol@a.example",
    ]
    .iter()
    .map(|s| jid(s))
    .collect();
    all.sort();
    assert_eq!(b.list_accounts(None).await.unwrap(), all);

    let mut in_a: Vec<BareJid> = [
        "zed@a.example",
        "alice@a.example",
        "a.example",
        "carol@a.example",
    ]
    .iter()
    .map(|s| jid(s))
    .collect();
    in_a.sort();
    assert_eq!(b.list_accounts(Some("a.example")).await.unwrap(), in_a);
    assert_eq!(
        b.list_accounts(Some("b.example")).await.unwrap(),
        vec![jid("bob@b.example")]
    );
    assert!(b
        .list_accounts(Some("none.example"))
        .await
        .unwrap()
        .is_empty());
}

async fn roster_versions_increase<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    assert_eq!(b.roster(&alice).await.unwrap(), (0, Vec::new()));
    let v1 = b
        .put_roster_item(&alice, &item("bob@b.example", None, &[]))
        .await
        .unwrap();
    let v2 = b
        .put_roster_item(&alice, &item("carol@c.example", None, &[]))
        .await
        .unwrap();
    let v3 = b
        .put_roster_item(&alice, &item("bob@b.example", Some("Bob"), &[]))
        .await
        .unwrap();
    let v4 = b
        .remove_roster_item(&alice, &jid("carol@c.example"))
        .await
        .unwrap()
        .expect("carol was on the roster");
    assert!(v1 > 0, "first write must move past the initial version 0");
    assert!(v1 < v2 && v2 < v3 && v3 < v4, "{v1} {v2} {v3} {v4}");
    assert_eq!(b.roster(&alice).await.unwrap().0, v4);

    // Another user's roster has its own counter.
    let bob = jid("bob@b.example");
    assert_eq!(b.roster(&bob).await.unwrap().0, 0);
    b.put_roster_item(&bob, &item("alice@a.example", None, &[]))
        .await
        .unwrap();
    assert_eq!(b.roster(&alice).await.unwrap().0, v4);
}

async fn roster_put_replaces<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@b.example");
    let first = RosterItem {
        subscription: Subscription::To,
        ask: true,
        ..item("bob@b.example", Some("Bob"), &["Friends", "Work"])
    };
    b.put_roster_item(&alice, &first).await.unwrap();
    assert_eq!(b.roster_item(&alice, &bob).await.unwrap(), Some(first));

    let second = RosterItem {
        subscription: Subscription::Both,
        approved: true,
        ..item("bob@b.example", None, &["Family"])
    };
    b.put_roster_item(&alice, &second).await.unwrap();
    assert_eq!(
        b.roster_item(&alice, &bob).await.unwrap(),
        Some(second.clone())
    );
    let (_, items) = roster_sorted(b, &alice).await;
    assert_eq!(items, vec![second]);
    // Items belong to their user only.
    assert_eq!(b.roster_item(&bob, &bob).await.unwrap(), None);
    assert!(b.roster(&bob).await.unwrap().1.is_empty());
}

async fn roster_fields_round_trip<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let groups = [
        "Friends",
        "Équipe café ☕",
        "日本語のグループ",
        "  spaced  ",
        "tab\tinside",
        "line\nbreak",
        "a,b;c|d",
    ];
    let subs = [
        Subscription::None,
        Subscription::To,
        Subscription::From,
        Subscription::Both,
    ];
    let mut expected = Vec::new();
    for (i, sub) in subs.into_iter().enumerate() {
        let it = RosterItem {
            subscription: sub,
            ask: i % 2 == 0,
            approved: i % 3 == 0,
            ..item(
                &format!("contact{i}@c.example"),
                (i % 2 == 1).then_some("Zoë ✓"),
                if i == 0 { &[] } else { &groups[..i * 2 - 1] },
            )
        };
        b.put_roster_item(&alice, &it).await.unwrap();
        expected.push(it);
    }
    let everything = item("all@c.example", Some("All"), &groups);
    b.put_roster_item(&alice, &everything).await.unwrap();
    expected.push(everything.clone());
    expected.sort_by(|x, y| x.jid.cmp(&y.jid));

    assert_eq!(roster_sorted(b, &alice).await.1, expected);
    assert_eq!(
        b.roster_item(&alice, &jid("all@c.example")).await.unwrap(),
        Some(everything)
    );
}

async fn roster_remove_absent<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@b.example");
    assert_eq!(b.remove_roster_item(&alice, &bob).await.unwrap(), None);
    assert_eq!(b.roster(&alice).await.unwrap().0, 0);
    let v = b
        .put_roster_item(&alice, &item("carol@c.example", None, &["G"]))
        .await
        .unwrap();
    assert_eq!(b.remove_roster_item(&alice, &bob).await.unwrap(), None);
    assert_eq!(b.roster(&alice).await.unwrap().0, v, "no-op must not bump");
    let removed = b
        .remove_roster_item(&alice, &jid("carol@c.example"))
        .await
        .unwrap();
    assert!(removed.is_some_and(|r| r > v));
    assert_eq!(
        b.remove_roster_item(&alice, &jid("carol@c.example"))
            .await
            .unwrap(),
        None
    );
    assert!(b.roster(&alice).await.unwrap().1.is_empty());
}

async fn pending_in_lifecycle<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@b.example");
    let carol = jid("carol@c.example");
    assert!(b.pending_in(&alice).await.unwrap().is_empty());
    b.put_pending_in(
        &alice,
        &bob,
        "<presence from='bob@b.example' type='subscribe'/>",
    )
    .await
    .unwrap();
    b.put_pending_in(&alice, &carol, "<presence type='subscribe'/>")
        .await
        .unwrap();
    // Put replaces the stanza of the same contact.
    b.put_pending_in(
        &alice,
        &bob,
        "<presence type='subscribe'><status>hi ☺</status></presence>",
    )
    .await
    .unwrap();
    assert_eq!(
        pending_sorted(b, &alice).await,
        vec![
            (
                bob.clone(),
                "<presence type='subscribe'><status>hi ☺</status></presence>".to_owned()
            ),
            (carol.clone(), "<presence type='subscribe'/>".to_owned()),
        ]
    );
    // Pending requests don't touch the roster version.
    assert_eq!(b.roster(&alice).await.unwrap().0, 0);

    assert!(b.remove_pending_in(&alice, &bob).await.unwrap());
    assert!(!b.remove_pending_in(&alice, &bob).await.unwrap());
    assert!(!b.remove_pending_in(&bob, &carol).await.unwrap());
    assert_eq!(
        pending_sorted(b, &alice).await,
        vec![(carol.clone(), "<presence type='subscribe'/>".to_owned())]
    );
    assert!(b.pending_in(&bob).await.unwrap().is_empty());
}

async fn offline_limit_order_ack<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@b.example");
    assert!(b.offline(&alice).await.unwrap().is_empty());
    assert!(!b.push_offline(&alice, "<message/>", 0).await.unwrap());
    for n in 1..=3 {
        assert!(b
            .push_offline(&alice, &format!("<message id='{n}'/>"), 3)
            .await
            .unwrap());
    }
    assert!(!b
        .push_offline(&alice, "<message id='4'/>", 3)
        .await
        .unwrap());
    // The limit is per account.
    assert!(b.push_offline(&bob, "<message id='b'/>", 3).await.unwrap());

    let stored = b.offline(&alice).await.unwrap();
    let stanzas: Vec<&str> = stored.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        stanzas,
        [
            "<message id='1'/>",
            "<message id='2'/>",
            "<message id='3'/>"
        ]
    );
    assert!(stored.windows(2).all(|w| w[0].0 < w[1].0), "{stored:?}");

    // Acking up to the second id leaves the third.
    b.ack_offline(&alice, stored[1].0).await.unwrap();
    assert_eq!(b.offline(&alice).await.unwrap(), vec![stored[2].clone()]);
    // Room again; a new message sorts after the survivors with a fresh id.
    assert!(b
        .push_offline(&alice, "<message id='5'/>", 3)
        .await
        .unwrap());
    let now = b.offline(&alice).await.unwrap();
    assert_eq!(now.len(), 2);
    assert_eq!(now[0], stored[2]);
    assert_eq!(now[1].1, "<message id='5'/>");
    assert!(now[1].0 > stored[2].0);

    // Acking old ids again, or another user's, changes nothing.
    b.ack_offline(&alice, stored[1].0).await.unwrap();
    b.ack_offline(&bob, 0).await.unwrap();
    assert_eq!(b.offline(&alice).await.unwrap(), now);
    // An ack of alice's ids must not reach bob's older message.
    b.ack_offline(&alice, i64::MAX).await.unwrap();
    assert!(b.offline(&alice).await.unwrap().is_empty());
    assert_eq!(b.offline(&bob).await.unwrap().len(), 1);
}

/// One key across accounts, as read at start.
async fn private_values_are_listed_by_key<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@b.example");
    assert!(b.private_by_key("urn:x:hash").await.unwrap().is_empty());
    b.set_private(&alice, "urn:x:hash", Some("<a/>"))
        .await
        .unwrap();
    b.set_private(&bob, "urn:x:hash", Some("<b/>"))
        .await
        .unwrap();
    b.set_private(&bob, "vcard-temp", Some("<vCard/>"))
        .await
        .unwrap();
    let mut all = b.private_by_key("urn:x:hash").await.unwrap();
    all.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
    assert_eq!(
        all,
        vec![
            (alice.clone(), "<a/>".to_string()),
            (bob.clone(), "<b/>".to_string())
        ]
    );
    b.set_private(&alice, "urn:x:hash", None).await.unwrap();
    assert_eq!(b.private_by_key("urn:x:hash").await.unwrap().len(), 1);
}

async fn private_set_get_delete<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@b.example");
    assert_eq!(b.get_private(&alice, "vcard-temp").await.unwrap(), None);
    b.set_private(&alice, "vcard-temp", Some("<vCard xmlns='vcard-temp'/>"))
        .await
        .unwrap();
    b.set_private(&alice, "storage:bookmarks", Some("<storage/>"))
        .await
        .unwrap();
    assert_eq!(
        b.get_private(&alice, "vcard-temp")
            .await
            .unwrap()
            .as_deref(),
        Some("<vCard xmlns='vcard-temp'/>")
    );
    // Replace.
    b.set_private(&alice, "vcard-temp", Some("<vCard><FN>Zoë</FN></vCard>"))
        .await
        .unwrap();
    assert_eq!(
        b.get_private(&alice, "vcard-temp")
            .await
            .unwrap()
            .as_deref(),
        Some("<vCard><FN>Zoë</FN></vCard>")
    );
    assert_eq!(b.get_private(&bob, "vcard-temp").await.unwrap(), None);

    // None deletes that key only; deleting a missing key is fine.
    b.set_private(&alice, "vcard-temp", None).await.unwrap();
    b.set_private(&alice, "vcard-temp", None).await.unwrap();
    b.set_private(&bob, "nothing", None).await.unwrap();
    assert_eq!(b.get_private(&alice, "vcard-temp").await.unwrap(), None);
    assert_eq!(
        b.get_private(&alice, "storage:bookmarks")
            .await
            .unwrap()
            .as_deref(),
        Some("<storage/>")
    );
}

fn affiliation(who: &str, affiliation: MucAffiliation, nick: Option<&str>) -> StoredAffiliation {
    StoredAffiliation {
        jid: jid(who),
        affiliation,
        nick: nick.map(str::to_owned),
        reason: None,
    }
}

async fn muc_room_lifecycle<B: Backend>(b: &B) {
    let room = jid("coven@chat.example");
    assert_eq!(b.room(&room).await.unwrap(), None);
    assert!(!b.remove_room(&room).await.unwrap());
    assert!(!b
        .set_room_subject(
            &room,
            Some(&StoredSubject {
                text: "x".into(),
                nick: String::new(),
                stamp_ms: 1,
            })
        )
        .await
        .unwrap());

    b.put_room(&room, false, "locked = true").await.unwrap();
    let stored = b.room(&room).await.unwrap().expect("created");
    assert_eq!(stored.jid, room);
    assert!(!stored.persistent);
    assert_eq!(stored.settings, "locked = true");
    assert_eq!(stored.subject, None);

    let subject = StoredSubject {
        text: "Fire Burn and Cauldron Bubble! ☕".into(),
        nick: "secondwitch".into(),
        stamp_ms: 1_700_000_000_123,
    };
    assert!(b.set_room_subject(&room, Some(&subject)).await.unwrap());
    // Replacing the settings keeps the subject and affiliations.
    b.set_room_affiliation(
        &room,
        &affiliation("crone@a.example", MucAffiliation::Owner, None),
    )
    .await
    .unwrap();
    b.put_room(&room, true, "name = \"A Dark Cave\"")
        .await
        .unwrap();
    let stored = b.room(&room).await.unwrap().expect("still there");
    assert!(stored.persistent);
    assert_eq!(stored.settings, "name = \"A Dark Cave\"");
    assert_eq!(stored.subject, Some(subject));
    assert_eq!(b.room_affiliations(&room).await.unwrap().len(), 1);

    // An empty subject is a subject ("cleared"); None forgets it.
    let cleared = StoredSubject {
        text: String::new(),
        nick: String::new(),
        stamp_ms: 5,
    };
    assert!(b.set_room_subject(&room, Some(&cleared)).await.unwrap());
    assert_eq!(b.room(&room).await.unwrap().unwrap().subject, Some(cleared));
    assert!(b.set_room_subject(&room, None).await.unwrap());
    assert_eq!(b.room(&room).await.unwrap().unwrap().subject, None);

    // Removal takes the affiliations along; a new room starts empty.
    assert!(b.remove_room(&room).await.unwrap());
    assert_eq!(b.room(&room).await.unwrap(), None);
    assert!(b.room_affiliations(&room).await.unwrap().is_empty());
    b.put_room(&room, false, "").await.unwrap();
    assert!(b.room_affiliations(&room).await.unwrap().is_empty());
    assert_eq!(b.room(&room).await.unwrap().unwrap().subject, None);
}

async fn muc_rooms_by_service<B: Backend>(b: &B) {
    for (name, persistent) in [
        ("zeta@chat.example", true),
        ("alpha@chat.example", false),
        ("mid@chat.example", true),
        ("other@chat.example.org", false),
        ("kept@chat.example.org", true),
    ] {
        b.put_room(&jid(name), persistent, name).await.unwrap();
    }
    let names = |rooms: Vec<crate::StoredRoom>| -> Vec<String> {
        rooms.iter().map(|r| r.jid.to_string()).collect()
    };
    assert_eq!(
        names(b.rooms("chat.example").await.unwrap()),
        [
            "alpha@chat.example",
            "mid@chat.example",
            "zeta@chat.example"
        ]
    );
    assert_eq!(b.count_rooms("chat.example").await.unwrap(), 3);
    assert_eq!(b.count_rooms("chat.example.org").await.unwrap(), 2);
    assert_eq!(b.count_rooms("none.example").await.unwrap(), 0);

    // Only the temporary rooms of that one service go.
    b.set_room_affiliation(
        &jid("alpha@chat.example"),
        &affiliation("crone@a.example", MucAffiliation::Owner, None),
    )
    .await
    .unwrap();
    assert_eq!(
        b.remove_temporary_rooms("chat.example").await.unwrap(),
        vec![jid("alpha@chat.example")]
    );
    assert!(b
        .remove_temporary_rooms("chat.example")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        names(b.rooms("chat.example").await.unwrap()),
        ["mid@chat.example", "zeta@chat.example"]
    );
    assert!(b
        .room_affiliations(&jid("alpha@chat.example"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.count_rooms("chat.example.org").await.unwrap(), 2);
}

async fn muc_affiliations_set_replace_remove<B: Backend>(b: &B) {
    let room = jid("coven@chat.example");
    let other = jid("heath@chat.example");
    let crone = affiliation("crone@a.example", MucAffiliation::Owner, Some("firstwitch"));
    // No room: nothing is stored.
    assert!(!b.set_room_affiliation(&room, &crone).await.unwrap());
    assert!(!b.remove_room_affiliation(&room, &crone.jid).await.unwrap());
    b.put_room(&room, true, "").await.unwrap();
    b.put_room(&other, true, "").await.unwrap();

    let hag = affiliation(
        "hag@a.example",
        MucAffiliation::Member,
        Some("Thirdwitch ✓"),
    );
    let mut banned = affiliation("b.example", MucAffiliation::Outcast, None);
    banned.reason = Some("Treason".into());
    for a in [&crone, &hag, &banned] {
        assert!(b.set_room_affiliation(&room, a).await.unwrap());
    }
    let mut all = b.room_affiliations(&room).await.unwrap();
    all.sort_by(|x, y| x.jid.cmp(&y.jid));
    let mut expected = vec![crone.clone(), hag.clone(), banned.clone()];
    expected.sort_by(|x, y| x.jid.cmp(&y.jid));
    assert_eq!(all, expected);
    assert!(b.room_affiliations(&other).await.unwrap().is_empty());

    // Replace: the nick goes with the new entry.
    let promoted = affiliation("hag@a.example", MucAffiliation::Admin, None);
    assert!(b.set_room_affiliation(&room, &promoted).await.unwrap());
    let now = b.room_affiliations(&room).await.unwrap();
    assert_eq!(now.iter().find(|a| a.jid == promoted.jid), Some(&promoted));
    assert_eq!(now.len(), 3);

    assert!(b.remove_room_affiliation(&room, &hag.jid).await.unwrap());
    assert!(!b.remove_room_affiliation(&room, &hag.jid).await.unwrap());
    assert_eq!(b.room_affiliations(&room).await.unwrap().len(), 2);
}

fn pub_item(id: &str, n: i64) -> StoredItem {
    StoredItem {
        id: id.to_string(),
        publisher: "owner@a.example/phone".to_string(),
        stamp_ms: n,
        xml: format!("<x xmlns='urn:test'>{n}</x>"),
    }
}

async fn pub_ids<B: Backend>(
    b: &B,
    owner: &BareJid,
    node: &str,
    max: Option<usize>,
) -> Vec<String> {
    b.items(owner, node, max)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

async fn pubsub_nodes_create_configure_delete<B: Backend>(b: &B) {
    let owner = jid("owner@a.example");
    let other = jid("other@a.example");
    assert!(b.node(&owner, "n").await.unwrap().is_none());
    assert!(b.create_node(&owner, "zeta", "cfg-z").await.unwrap());
    assert!(b.create_node(&owner, "alpha", "cfg-a").await.unwrap());
    // A second create changes nothing.
    assert!(!b.create_node(&owner, "alpha", "other").await.unwrap());
    assert_eq!(
        b.node(&owner, "alpha").await.unwrap().unwrap().config,
        "cfg-a"
    );
    // Same name, other owner: another node.
    assert!(b.create_node(&other, "alpha", "cfg-o").await.unwrap());
    let names: Vec<String> = b
        .nodes(&owner)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert!(b.set_node_config(&owner, "alpha", "cfg-2").await.unwrap());
    assert!(!b.set_node_config(&owner, "missing", "x").await.unwrap());
    assert_eq!(
        b.node(&owner, "alpha").await.unwrap().unwrap().config,
        "cfg-2"
    );
    assert_eq!(
        b.node(&other, "alpha").await.unwrap().unwrap().config,
        "cfg-o"
    );
    // Deleting a node deletes its items; a re-created node starts empty.
    b.publish_item(&owner, "alpha", &pub_item("i1", 1), 10)
        .await
        .unwrap();
    assert!(b.delete_node(&owner, "alpha").await.unwrap());
    assert!(!b.delete_node(&owner, "alpha").await.unwrap());
    assert!(b.node(&owner, "alpha").await.unwrap().is_none());
    assert!(b.items(&owner, "alpha", None).await.unwrap().is_empty());
    assert!(b.create_node(&owner, "alpha", "cfg-3").await.unwrap());
    assert!(b.items(&owner, "alpha", None).await.unwrap().is_empty());
    assert!(b.node(&other, "alpha").await.unwrap().is_some());
}

async fn pubsub_items_upsert_trim_retract<B: Backend>(b: &B) {
    let owner = jid("owner@a.example");
    // No node: nothing is stored.
    assert_eq!(
        b.publish_item(&owner, "n", &pub_item("a", 1), 10)
            .await
            .unwrap(),
        None
    );
    b.create_node(&owner, "n", "").await.unwrap();
    b.create_node(&owner, "m", "").await.unwrap();
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let trimmed = b
            .publish_item(&owner, "n", &pub_item(id, i as i64), 10)
            .await
            .unwrap();
        assert_eq!(trimmed, Some(Vec::new()));
    }
    b.publish_item(&owner, "m", &pub_item("a", 99), 10)
        .await
        .unwrap();
    assert_eq!(pub_ids(b, &owner, "n", None).await, ["c", "b", "a"]);
    // Republishing an id replaces the item and makes it the newest.
    b.publish_item(&owner, "n", &pub_item("a", 7), 10)
        .await
        .unwrap();
    assert_eq!(pub_ids(b, &owner, "n", None).await, ["a", "c", "b"]);
    let newest = b.items(&owner, "n", Some(1)).await.unwrap();
    assert_eq!(newest, vec![pub_item("a", 7)]);
    assert_eq!(pub_ids(b, &owner, "n", Some(2)).await, ["a", "c"]);
    // Publishing past max_items deletes the oldest, newest of them first.
    let trimmed = b
        .publish_item(&owner, "n", &pub_item("d", 8), 2)
        .await
        .unwrap();
    assert_eq!(trimmed, Some(vec!["c".to_string(), "b".to_string()]));
    assert_eq!(pub_ids(b, &owner, "n", None).await, ["d", "a"]);
    let picked = b
        .items_by_id(&owner, "n", &["a".into(), "zz".into(), "d".into()])
        .await
        .unwrap();
    assert_eq!(picked, vec![pub_item("d", 8), pub_item("a", 7)]);
    assert!(b.items_by_id(&owner, "n", &[]).await.unwrap().is_empty());
    assert!(b.retract_item(&owner, "n", "a").await.unwrap());
    assert!(!b.retract_item(&owner, "n", "a").await.unwrap());
    assert!(!b.retract_item(&owner, "missing", "a").await.unwrap());
    assert_eq!(pub_ids(b, &owner, "n", None).await, ["d"]);
    for (i, id) in ["e", "f", "g"].iter().enumerate() {
        b.publish_item(&owner, "n", &pub_item(id, 10 + i as i64), 10)
            .await
            .unwrap();
    }
    assert_eq!(b.trim_items(&owner, "n", 2).await.unwrap(), 2);
    assert_eq!(pub_ids(b, &owner, "n", None).await, ["g", "f"]);
    assert_eq!(b.trim_items(&owner, "missing", 0).await.unwrap(), 0);
    // The other node was never touched.
    assert_eq!(
        b.items(&owner, "m", None).await.unwrap(),
        vec![pub_item("a", 99)]
    );
}

async fn pubsub_goes_with_the_account<B: Backend>(b: &B) {
    let alice = jid("alice@a.example");
    let bob = jid("bob@a.example");
    for user in [&alice, &bob] {
        b.create_account(user, &creds(1)).await.unwrap();
        b.create_node(user, "urn:xmpp:avatar:metadata", "")
            .await
            .unwrap();
        b.publish_item(user, "urn:xmpp:avatar:metadata", &pub_item("x", 1), 1)
            .await
            .unwrap();
    }
    assert!(b.remove_account(&alice).await.unwrap());
    assert!(b.nodes(&alice).await.unwrap().is_empty());
    assert!(b
        .items(&alice, "urn:xmpp:avatar:metadata", None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.nodes(&bob).await.unwrap().len(), 1);
    b.remove_pubsub(&bob).await.unwrap();
    assert!(b.nodes(&bob).await.unwrap().is_empty());
    assert!(b
        .items(&bob, "urn:xmpp:avatar:metadata", None)
        .await
        .unwrap()
        .is_empty());
}

fn sub(jid: &str, state: &str) -> StoredSubscription {
    StoredSubscription {
        jid: jid::Jid::new(jid).unwrap(),
        subid: format!("sub-{jid}"),
        state: state.into(),
        options: String::new(),
    }
}

async fn pubsub_subscriptions_and_affiliations<B: Backend>(b: &B) {
    let service = jid("pubsub.a.example");
    let alice = jid("alice@a.example");
    let other = sub("alice@a.examplex", "subscribed");
    b.create_node(&service, "news", "").await.unwrap();
    b.create_node(&service, "blog", "").await.unwrap();
    assert!(!b
        .put_subscription(&service, "none", &sub("alice@a.example", "subscribed"))
        .await
        .unwrap());
    for (node, s) in [
        ("news", sub("alice@a.example/phone", "pending")),
        ("news", sub("alice@a.example", "subscribed")),
        ("news", other.clone()),
        ("blog", sub("alice@a.example", "unconfigured")),
    ] {
        assert!(b.put_subscription(&service, node, &s).await.unwrap());
    }
    // Replacing keeps one row per JID.
    let mut changed = sub("alice@a.example/phone", "subscribed");
    changed.options = "<x/>".into();
    b.put_subscription(&service, "news", &changed)
        .await
        .unwrap();
    assert_eq!(
        b.subscriptions(&service, "news").await.unwrap(),
        vec![
            sub("alice@a.example", "subscribed"),
            changed.clone(),
            other.clone()
        ]
    );
    let of: Vec<(String, String)> = b
        .subscriptions_of(&service, &alice)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, s)| (n, s.jid.to_string()))
        .collect();
    assert_eq!(
        of,
        [
            ("blog".to_string(), "alice@a.example".to_string()),
            ("news".into(), "alice@a.example".into()),
            ("news".into(), "alice@a.example/phone".into()),
        ]
    );
    assert!(b
        .remove_subscription(&service, "news", &changed.jid)
        .await
        .unwrap());
    assert!(!b
        .remove_subscription(&service, "news", &changed.jid)
        .await
        .unwrap());

    b.set_node_affiliation(&service, "news", &alice, Some("owner"))
        .await
        .unwrap();
    b.set_node_affiliation(&service, "news", &alice, Some("publisher"))
        .await
        .unwrap();
    b.set_node_affiliation(&service, "blog", &jid("bob@a.example"), Some("outcast"))
        .await
        .unwrap();
    assert_eq!(
        b.node_affiliations(&service, "news").await.unwrap(),
        vec![StoredNodeAffiliation {
            jid: alice.clone(),
            affiliation: "publisher".into()
        }]
    );
    assert_eq!(
        b.affiliations_of(&service, &alice).await.unwrap(),
        vec![("news".to_string(), "publisher".to_string())]
    );
    b.set_node_affiliation(&service, "news", &alice, None)
        .await
        .unwrap();
    assert!(b
        .node_affiliations(&service, "news")
        .await
        .unwrap()
        .is_empty());

    // A deleted node takes its rows along; a new node of that name is empty.
    b.delete_node(&service, "blog").await.unwrap();
    b.create_node(&service, "blog", "").await.unwrap();
    assert!(b.subscriptions(&service, "blog").await.unwrap().is_empty());
    assert!(b
        .node_affiliations(&service, "blog")
        .await
        .unwrap()
        .is_empty());
}

async fn pubsub_subscriptions_go_with_the_account<B: Backend>(b: &B) {
    let service = jid("pubsub.a.example");
    let alice = jid("alice@a.example");
    b.create_account(&alice, &creds(1)).await.unwrap();
    b.create_node(&service, "news", "").await.unwrap();
    b.put_subscription(
        &service,
        "news",
        &sub("alice@a.example/phone", "subscribed"),
    )
    .await
    .unwrap();
    b.put_subscription(&service, "news", &sub("bob@a.example", "subscribed"))
        .await
        .unwrap();
    b.set_node_affiliation(&service, "news", &alice, Some("owner"))
        .await
        .unwrap();
    assert!(b.remove_account(&alice).await.unwrap());
    assert!(b
        .subscriptions_of(&service, &alice)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .affiliations_of(&service, &alice)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.subscriptions(&service, "news").await.unwrap().len(), 1);
}

/// One `#[tokio::test]` per check, each on a fresh store from the
/// invoking module's `make(test_name)`, which returns a guard to keep alive
/// and the store, or `None` when the backend is not available here (it
/// says so itself).
macro_rules! backend_tests {
    () => {
        backend_tests!(@
            account_create_twice,
            credentials_round_trip,
            set_credentials_missing,
            remove_account_removes_everything,
            list_accounts_by_domain_sorted,
            roster_versions_increase,
            roster_put_replaces,
            roster_fields_round_trip,
            roster_remove_absent,
            pending_in_lifecycle,
            offline_limit_order_ack,
            private_set_get_delete,
            private_values_are_listed_by_key,
            archive_pages_both_ways_with_filters,
            archive_keeps_a_stanza_id_once_and_takes_concurrent_writers,
            archive_queued_rows_are_seen_by_later_queries_in_order,
            archive_replaces_a_message_in_place,
            archive_counts_follow_inserts_and_deletes,
            muc_room_lifecycle,
            muc_rooms_by_service,
            muc_affiliations_set_replace_remove,
            pubsub_nodes_create_configure_delete,
            pubsub_items_upsert_trim_retract,
            pubsub_goes_with_the_account,
            pubsub_subscriptions_and_affiliations,
            pubsub_subscriptions_go_with_the_account,
        );
    };
    (@ $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some((_guard, store)) = make(stringify!($check)).await else {
                    return;
                };
                super::super::$check(&store).await;
            }
        )*
    };
}

mod memory {
    use crate::memory::MemoryStore;

    async fn make(_test: &str) -> Option<((), MemoryStore)> {
        Some(((), MemoryStore::new()))
    }

    mod checks {
        use super::make;
        backend_tests!();
    }
}

mod sqlite {
    use super::{creds, item, jid, roster_sorted};
    use crate::sqlite::SqliteStore;
    use crate::{AccountStore, OfflineStore, PrivateStore, RosterStore};
    use std::path::PathBuf;
    use tempfile::TempDir;

    /// A store on a file in a fresh directory; the parent directory does not
    /// exist yet, so `open` must create it.
    async fn make(_test: &str) -> Option<(TempDir, SqliteStore)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&db_path(&dir)).await.expect("open");
        Some((dir, store))
    }

    fn db_path(dir: &TempDir) -> PathBuf {
        dir.path().join("data").join("roost.db")
    }

    mod checks {
        use super::make;
        backend_tests!();
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let alice = jid("alice@a.example");
        let bob = jid("bob@b.example");
        let rich = item("bob@b.example", Some("Bob ✓"), &["Friends", "日本"]);

        let store = SqliteStore::open(&path).await.expect("open");
        assert_eq!(
            store.schema_version().await.unwrap(),
            crate::sqlite::migrations::MIGRATIONS.len()
        );
        store.create_account(&alice, &creds(7)).await.unwrap();
        let version = store.put_roster_item(&alice, &rich).await.unwrap();
        store
            .put_pending_in(&alice, &bob, "<presence type='subscribe'/>")
            .await
            .unwrap();
        store.push_offline(&alice, "<message/>", 10).await.unwrap();
        store
            .set_private(&alice, "vcard-temp", Some("<vCard/>"))
            .await
            .unwrap();
        let offline = store.offline(&alice).await.unwrap();
        drop(store);

        // Reopen twice: the second and third opens find the schema current
        // and must not re-run migrations (they would fail on CREATE TABLE).
        for _ in 0..2 {
            let store = SqliteStore::open(&path).await.expect("reopen");
            assert_eq!(
                store.schema_version().await.unwrap(),
                crate::sqlite::migrations::MIGRATIONS.len()
            );
            assert_eq!(store.credentials(&alice).await.unwrap(), Some(creds(7)));
            assert_eq!(
                store.list_accounts(None).await.unwrap(),
                vec![alice.clone()]
            );
            assert_eq!(
                roster_sorted(&store, &alice).await,
                (version, vec![rich.clone()])
            );
            assert_eq!(store.pending_in(&alice).await.unwrap().len(), 1);
            assert_eq!(store.offline(&alice).await.unwrap(), offline);
            assert_eq!(
                store
                    .get_private(&alice, "vcard-temp")
                    .await
                    .unwrap()
                    .as_deref(),
                Some("<vCard/>")
            );
        }

        // Offline ids keep growing across reopen, even after all were acked.
        let store = SqliteStore::open(&path).await.expect("reopen");
        store.ack_offline(&alice, i64::MAX).await.unwrap();
        drop(store);
        let store = SqliteStore::open(&path).await.expect("reopen");
        store.push_offline(&alice, "<message/>", 10).await.unwrap();
        let again = store.offline(&alice).await.unwrap();
        assert!(again[0].0 > offline[0].0, "{again:?} vs {offline:?}");
    }

    #[tokio::test]
    async fn muc_rooms_survive_reopen() {
        use crate::{MucAffiliation, MucStore, StoredAffiliation, StoredSubject};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let room = jid("coven@chat.example");
        let subject = StoredSubject {
            text: "Spells".into(),
            nick: "crone".into(),
            stamp_ms: 42,
        };
        let owner = StoredAffiliation {
            jid: jid("crone@a.example"),
            affiliation: MucAffiliation::Owner,
            nick: Some("crone".into()),
            reason: None,
        };
        let store = SqliteStore::open(&path).await.expect("open");
        store.put_room(&room, true, "name = 'x'").await.unwrap();
        store.set_room_subject(&room, Some(&subject)).await.unwrap();
        store.set_room_affiliation(&room, &owner).await.unwrap();
        drop(store);

        let store = SqliteStore::open(&path).await.expect("reopen");
        let stored = store.room(&room).await.unwrap().expect("room kept");
        assert!(stored.persistent);
        assert_eq!(stored.settings, "name = 'x'");
        assert_eq!(stored.subject, Some(subject));
        assert_eq!(store.room_affiliations(&room).await.unwrap(), vec![owner]);
    }

    #[tokio::test]
    async fn pubsub_items_survive_reopen() {
        use crate::PubsubStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db_path(&dir);
        let owner = jid("owner@a.example");
        let node = "urn:xmpp:bookmarks:1";
        let store = SqliteStore::open(&path).await.expect("open");
        store.create_node(&owner, node, "<x/>").await.unwrap();
        for (i, id) in ["a", "b"].iter().enumerate() {
            store
                .publish_item(&owner, node, &super::pub_item(id, i as i64), 10)
                .await
                .unwrap();
        }
        drop(store);
        let store = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(
            store.node(&owner, node).await.unwrap().unwrap().config,
            "<x/>"
        );
        // Publication order survives too: a new item is the newest.
        store
            .publish_item(&owner, node, &super::pub_item("c", 5), 10)
            .await
            .unwrap();
        let ids: Vec<String> = store
            .items(&owner, node, None)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
    }

    /// The CLI writes while the server holds the database open.
    #[tokio::test]
    async fn two_connections_share_the_file() {
        let (dir, server) = make("").await.expect("sqlite store");
        let cli = SqliteStore::open(&db_path(&dir))
            .await
            .expect("second open");
        let alice = jid("alice@a.example");
        assert!(cli.create_account(&alice, &creds(1)).await.unwrap());
        assert!(server.account_exists(&alice).await.unwrap());
        assert!(!server.create_account(&alice, &creds(2)).await.unwrap());
        assert!(server.remove_account(&alice).await.unwrap());
        assert!(!cli.account_exists(&alice).await.unwrap());
    }

    #[tokio::test]
    async fn in_memory_store_works() {
        let store = SqliteStore::open_in_memory().expect("open");
        let alice = jid("alice@a.example");
        assert!(store.create_account(&alice, &creds(1)).await.unwrap());
        assert_eq!(store.credentials(&alice).await.unwrap(), Some(creds(1)));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn new_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _store) = make("").await.expect("sqlite store");
        let mode = std::fs::metadata(db_path(&dir))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}

mod postgres {
    use super::{creds, item, jid, roster_sorted};
    use crate::postgres::migrations::MIGRATIONS;
    use crate::postgres::testing::{scratch_store, test_url, Scratch};
    use crate::postgres::PostgresStore;
    use crate::{
        AccountStore, ArchiveQuery, ArchiveStore, MucStore, OfflineStore, PrivateStore,
        PubsubStore, RosterStore,
    };

    async fn make(test: &str) -> Option<(Scratch, PostgresStore)> {
        scratch_store(&format!("postgres::{test}")).await
    }

    mod checks {
        use super::make;
        backend_tests!();
    }

    /// Reopening finds the schema current (migrations would fail on
    /// CREATE TABLE if run again) and the data in place.
    #[tokio::test]
    async fn postgres_data_survives_reopen() {
        let Some(url) = test_url("postgres_data_survives_reopen") else {
            return;
        };
        let (_scratch, config) = Scratch::new(&url).await;
        let alice = jid("alice@a.example");
        let rich = item("bob@b.example", Some("Bob ✓"), &["Friends", "日本"]);
        let store = PostgresStore::open_config(config.clone(), 2)
            .await
            .expect("open");
        assert_eq!(store.schema_version().await.unwrap(), MIGRATIONS.len());
        store.create_account(&alice, &creds(7)).await.unwrap();
        let version = store.put_roster_item(&alice, &rich).await.unwrap();
        store.push_offline(&alice, "<message/>", 10).await.unwrap();
        store
            .set_private(&alice, "vcard-temp", Some("<vCard/>"))
            .await
            .unwrap();
        store
            .archive(&alice, &super::archived(1, "bob@b.example/x"))
            .await
            .unwrap();
        store
            .put_room(&jid("room@chat.example"), true, "x")
            .await
            .unwrap();
        store.create_node(&alice, "n", "<x/>").await.unwrap();
        let offline = store.offline(&alice).await.unwrap();
        drop(store);
        for _ in 0..2 {
            let store = PostgresStore::open_config(config.clone(), 2)
                .await
                .expect("reopen");
            assert_eq!(store.schema_version().await.unwrap(), MIGRATIONS.len());
            assert_eq!(store.credentials(&alice).await.unwrap(), Some(creds(7)));
            assert_eq!(
                roster_sorted(&store, &alice).await,
                (version, vec![rich.clone()])
            );
            assert_eq!(store.offline(&alice).await.unwrap(), offline);
            assert_eq!(
                store
                    .get_private(&alice, "vcard-temp")
                    .await
                    .unwrap()
                    .as_deref(),
                Some("<vCard/>")
            );
            let page = store
                .query_archive(
                    &alice,
                    &ArchiveQuery {
                        max: 10,
                        ..ArchiveQuery::default()
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(page.messages.len(), 1);
            assert!(store
                .room(&jid("room@chat.example"))
                .await
                .unwrap()
                .is_some());
            assert_eq!(store.nodes(&alice).await.unwrap().len(), 1);
        }
    }

    /// Servers starting together on a new database: one migrates, the
    /// others wait for it and find the schema current.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_concurrent_opens_migrate_once() {
        let Some(url) = test_url("postgres_concurrent_opens_migrate_once") else {
            return;
        };
        let (_scratch, config) = Scratch::new(&url).await;
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let config = config.clone();
                tokio::spawn(async move { PostgresStore::open_config(config, 1).await })
            })
            .collect();
        for open in opens {
            let store = open.await.expect("task").expect("open");
            assert_eq!(store.schema_version().await.unwrap(), MIGRATIONS.len());
        }
    }

    /// A database migrated by a newer build is refused, not damaged.
    #[tokio::test]
    async fn postgres_refuses_a_newer_schema() {
        let Some(url) = test_url("postgres_refuses_a_newer_schema") else {
            return;
        };
        let (_scratch, config) = Scratch::new(&url).await;
        let store = PostgresStore::open_config(config.clone(), 1)
            .await
            .expect("open");
        let next = i32::try_from(MIGRATIONS.len() + 1).unwrap();
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .execute("INSERT INTO schema_version (version) VALUES ($1)", &[&next])
            .await
            .unwrap();
        drop(store);
        let err = PostgresStore::open_config(config, 1).await.unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    /// Concurrent pushes for one account stop at the limit together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_concurrent_offline_pushes_respect_the_limit() {
        let Some((_scratch, store)) =
            scratch_store("postgres_concurrent_offline_pushes_respect_the_limit").await
        else {
            return;
        };
        let alice = jid("alice@a.example");
        let pushes: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                let alice = alice.clone();
                tokio::spawn(async move {
                    store
                        .push_offline(&alice, &format!("<message id='{i}'/>"), 10)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut stored = 0;
        for p in pushes {
            stored += usize::from(p.await.unwrap());
        }
        assert_eq!(stored, 10);
        assert_eq!(store.offline(&alice).await.unwrap().len(), 10);
    }

    /// Concurrent publishers to one node keep it at its maximum.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_concurrent_publishers_keep_max_items() {
        let Some((_scratch, store)) =
            scratch_store("postgres_concurrent_publishers_keep_max_items").await
        else {
            return;
        };
        let owner = jid("owner@a.example");
        store.create_node(&owner, "n", "").await.unwrap();
        let pubs: Vec<_> = (0..30)
            .map(|i| {
                let store = store.clone();
                let owner = owner.clone();
                tokio::spawn(async move {
                    store
                        .publish_item(&owner, "n", &super::pub_item(&format!("i{i}"), i), 5)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for p in pubs {
            assert!(p.await.unwrap().is_some());
        }
        assert_eq!(store.items(&owner, "n", None).await.unwrap().len(), 5);
    }
}
