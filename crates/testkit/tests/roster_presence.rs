//! RFC 6121 between two accounts over real sockets: roster get/set/remove
//! with pushes, versioning, the subscription handshake, presence broadcast,
//! probes, directed presence and unavailable on disconnect.

use std::time::Duration;

use minidom::Element;
use roost_testkit::{Client, TestServer};

const ROSTER: &str = "jabber:iq:roster";

fn items(r: &Element) -> Vec<(String, String, Option<String>)> {
    r.get_child("query", ROSTER)
        .map(|q| {
            q.children()
                .map(|i| {
                    (
                        i.attr("jid").unwrap_or_default().to_string(),
                        i.attr("subscription").unwrap_or_default().to_string(),
                        i.attr("ask").map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_presence(from_prefix: &'static str, kind: Option<&'static str>) -> impl Fn(&Element) -> bool {
    move |e: &Element| {
        e.name() == "presence"
            && e.attr("from").is_some_and(|f| f.starts_with(from_prefix))
            && e.attr("type") == kind
    }
}

/// `x` asks `y` for a subscription and `y` approves it.
async fn subscribe(x: &mut Client, y: &mut Client) {
    let target = y.bare();
    x.send(&format!("<presence to='{target}' type='subscribe'/>"))
        .await;
    let req = y
        .expect("subscribe", is_presence("", Some("subscribe")))
        .await;
    let from = req.attr("from").unwrap().to_string();
    y.send(&format!("<presence to='{from}' type='subscribed'/>"))
        .await;
}

/// alice and bob subscribe to each other; both online and available.
async fn friends(s: &TestServer) -> (Client, Client) {
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    a.roster().await;
    b.roster().await;
    a.available().await;
    b.available().await;
    subscribe(&mut a, &mut b).await;
    subscribe(&mut b, &mut a).await;
    // Each sees the other's presence once subscribed.
    a.expect("bob available", is_presence("bob@localhost/work", None))
        .await;
    b.expect("alice available", is_presence("alice@localhost/home", None))
        .await;
    (a, b)
}

#[tokio::test]
async fn roster_set_is_pushed_to_every_interested_session_and_versioned() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a1 = s.login("alice", "one").await;
    let mut a2 = s.login("alice", "two").await;
    let r = a1.roster().await;
    let ver0 = r
        .get_child("query", ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_string();
    a2.roster().await;
    let set = a1
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='carol@localhost' name='Carol'><group>Friends</group></item></query>",
        )
        .await;
    assert_eq!(set.attr("type"), Some("result"));
    for c in [&mut a1, &mut a2] {
        let push = c
            .expect("push", |e| {
                e.name() == "iq" && e.attr("type") == Some("set")
            })
            .await;
        let q = push.get_child("query", ROSTER).unwrap();
        assert_ne!(q.attr("ver"), Some(ver0.as_str()));
        let item = q.get_child("item", ROSTER).unwrap();
        assert_eq!(item.attr("jid"), Some("carol@localhost"));
        assert_eq!(item.attr("name"), Some("Carol"));
        assert_eq!(item.get_child("group", ROSTER).unwrap().text(), "Friends");
    }
    // §2.6.3: a current version gets an empty result.
    let r = a1.roster().await;
    let ver1 = r
        .get_child("query", ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_string();
    let same = a1
        .iq(
            "get",
            None,
            &format!("<query xmlns='jabber:iq:roster' ver='{ver1}'/>"),
        )
        .await;
    assert_eq!(same.attr("type"), Some("result"));
    assert!(same.get_child("query", ROSTER).is_none());
    // Remove.
    let rm = a2
        .iq("set", None, "<query xmlns='jabber:iq:roster'><item jid='carol@localhost' subscription='remove'/></query>")
        .await;
    assert_eq!(rm.attr("type"), Some("result"));
    let push = a1
        .expect("remove push", |e| {
            e.name() == "iq"
                && e.get_child("query", ROSTER)
                    .and_then(|q| q.get_child("item", ROSTER))
                    .is_some_and(|i| i.attr("subscription") == Some("remove"))
        })
        .await;
    assert!(push.attr("id").is_some());
    assert!(items(&a1.roster().await).is_empty());
}

#[tokio::test]
async fn bad_roster_sets_get_errors() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "one").await;
    for (payload, cond) in [
        ("<query xmlns='jabber:iq:roster'><item jid='x@localhost'/><item jid='y@localhost'/></query>", "bad-request"),
        ("<query xmlns='jabber:iq:roster'><item jid='x@localhost'><group>a</group><group>a</group></item></query>", "bad-request"),
        ("<query xmlns='jabber:iq:roster'><item jid='x@localhost'><group></group></item></query>", "not-acceptable"),
        ("<query xmlns='jabber:iq:roster'><item jid='nobody@localhost' subscription='remove'/></query>", "item-not-found"),
        ("<query xmlns='jabber:iq:roster'><item jid='@@'/></query>", "jid-malformed"),
    ] {
        let r = a.iq("set", None, payload).await;
        assert_eq!(r.attr("type"), Some("error"), "{payload}");
        let err = r.get_child("error", "jabber:client").unwrap();
        assert!(
            err.children().any(|c| c.name() == cond),
            "{payload}: {}",
            String::from(&r)
        );
    }
}

#[tokio::test]
async fn mutual_subscription_ends_in_both_and_presence_flows() {
    let s = TestServer::start().await;
    let (mut a, mut b) = friends(&s).await;
    let ra = items(&a.roster().await);
    assert_eq!(ra, vec![("bob@localhost".into(), "both".into(), None)]);
    let rb = items(&b.roster().await);
    assert_eq!(rb, vec![("alice@localhost".into(), "both".into(), None)]);
    // Presence updates are broadcast.
    a.send("<presence><show>away</show><status>lunch</status></presence>")
        .await;
    let p = b
        .expect("away", is_presence("alice@localhost/home", None))
        .await;
    assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "away");
    // Disconnecting without closing counts as unavailable.
    a.drop_connection();
    b.expect(
        "alice unavailable",
        is_presence("alice@localhost/home", Some("unavailable")),
    )
    .await;
}

#[tokio::test]
async fn a_later_login_is_probed_and_sees_contacts_presence() {
    let s = TestServer::start().await;
    let (a, mut b) = friends(&s).await;
    a.close().await;
    b.expect(
        "alice gone",
        is_presence("alice@localhost/home", Some("unavailable")),
    )
    .await;
    let mut a2 = s.login("alice", "laptop").await;
    a2.send("<presence/>").await;
    a2.expect(
        "bob's presence from the probe",
        is_presence("bob@localhost/work", None),
    )
    .await;
    b.expect("alice back", is_presence("alice@localhost/laptop", None))
        .await;
}

#[tokio::test]
async fn pending_subscription_request_is_redelivered_at_login() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    a.send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    // Bob is offline; the request waits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = s.login("bob", "work").await;
    b.send("<presence/>").await;
    let req = b
        .expect(
            "stored subscribe",
            is_presence("alice@localhost", Some("subscribe")),
        )
        .await;
    assert_eq!(req.attr("from"), Some("alice@localhost"));
    // Alice's roster shows the pending request.
    let r = items(&a.roster().await);
    assert_eq!(
        r,
        vec![(
            "bob@localhost".into(),
            "none".into(),
            Some("subscribe".into())
        )]
    );
}

#[tokio::test]
async fn directed_presence_is_undone_when_the_session_ends() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    a.available().await;
    b.available().await;
    a.send("<presence to='bob@localhost/work'><status>hi</status></presence>")
        .await;
    b.expect("directed", is_presence("alice@localhost/home", None))
        .await;
    a.close().await;
    b.expect(
        "directed unavailable",
        is_presence("alice@localhost/home", Some("unavailable")),
    )
    .await;
}

#[tokio::test]
async fn unsubscribing_cancels_and_the_contact_sees_unavailable() {
    let s = TestServer::start().await;
    let (mut a, mut b) = friends(&s).await;
    // Bob stops letting alice see him.
    b.send("<presence to='alice@localhost' type='unsubscribed'/>")
        .await;
    a.expect(
        "bob unavailable to alice",
        is_presence("bob@localhost/work", Some("unavailable")),
    )
    .await;
    let ra = items(&a.roster().await);
    assert_eq!(ra, vec![("bob@localhost".into(), "from".into(), None)]);
    let rb = items(&b.roster().await);
    assert_eq!(rb, vec![("alice@localhost".into(), "to".into(), None)]);
}

#[tokio::test]
async fn roster_and_subscriptions_survive_a_restart() {
    let s = TestServer::start().await;
    let (a, b) = friends(&s).await;
    a.close().await;
    b.close().await;
    let s = s.restart().await;
    let mut a = s.login("alice", "home").await;
    assert_eq!(
        items(&a.roster().await),
        vec![("bob@localhost".into(), "both".into(), None)]
    );
}

#[tokio::test]
async fn blocking_a_contact_ends_presence_both_ways() {
    let s = TestServer::start().await;
    let (mut a, mut b) = friends(&s).await;
    let r = a
        .iq(
            "set",
            None,
            "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    // XEP-0191 §3.3: alice's client sees bob go, and bob sees alice go.
    a.expect(
        "bob unavailable",
        is_presence("bob@localhost/work", Some("unavailable")),
    )
    .await;
    b.expect(
        "alice unavailable",
        is_presence("alice@localhost/home", Some("unavailable")),
    )
    .await;
}

#[tokio::test]
async fn roster_pushes_of_removed_and_changed_items_carry_their_state_and_ver() {
    let s = TestServer::start().await;
    let (mut a, mut b) = friends(&s).await;
    let push_for = |jid: &'static str| {
        move |e: &Element| {
            e.name() == "iq"
                && e.attr("type") == Some("set")
                && e.get_child("query", ROSTER)
                    .and_then(|q| q.get_child("item", ROSTER))
                    .is_some_and(|i| i.attr("jid") == Some(jid))
        }
    };
    let before = |c: &Element| {
        c.get_child("query", ROSTER)
            .and_then(|q| q.attr("ver"))
            .map(str::to_string)
    };
    let ver_b0 = before(&b.roster().await).expect("ver");
    // Pushes from making friends are behind us: drop what is held.
    while b
        .gets_within(Duration::from_millis(200), push_for("alice@localhost"))
        .await
        .is_some()
    {}
    // A changed item keeps its exact subscription state.
    a.iq(
        "set",
        None,
        "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bobby'/></query>",
    )
    .await;
    let p = a
        .expect("rename push", |e| {
            push_for("bob@localhost")(e)
                && e.get_child("query", ROSTER)
                    .and_then(|q| q.get_child("item", ROSTER))
                    .is_some_and(|i| i.attr("name") == Some("Bobby"))
        })
        .await;
    let q = p.get_child("query", ROSTER).unwrap();
    let item = q.get_child("item", ROSTER).unwrap();
    assert_eq!(item.attr("subscription"), Some("both"));
    assert_eq!(item.attr("name"), Some("Bobby"));
    assert!(q.attr("ver").is_some());
    // Removal: alice gets subscription='remove'; bob's item becomes 'none'.
    a.iq(
        "set",
        None,
        "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query>",
    )
    .await;
    let p = a
        .expect("remove push", |e| {
            push_for("bob@localhost")(e)
                && e.get_child("query", ROSTER)
                    .and_then(|q| q.get_child("item", ROSTER))
                    .is_some_and(|i| i.attr("subscription") == Some("remove"))
        })
        .await;
    let q = p.get_child("query", ROSTER).unwrap();
    assert_eq!(
        q.get_child("item", ROSTER).unwrap().attr("subscription"),
        Some("remove")
    );
    let ver_a = q.attr("ver").expect("ver on the removal push").to_string();
    let r = a.roster().await;
    assert_eq!(before(&r).as_deref(), Some(ver_a.as_str()));
    assert!(items(&r).is_empty());
    // bob's side: pushes until his item for alice has no subscription left.
    let mut last = None;
    for _ in 0..2 {
        let p = b.expect("push", push_for("alice@localhost")).await;
        let q = p.get_child("query", ROSTER).unwrap().clone();
        last = Some(q);
        if last
            .as_ref()
            .and_then(|q| q.get_child("item", ROSTER))
            .and_then(|i| i.attr("subscription"))
            == Some("none")
        {
            break;
        }
    }
    let q = last.unwrap();
    assert_eq!(
        q.get_child("item", ROSTER).unwrap().attr("subscription"),
        Some("none")
    );
    let ver_b = q.attr("ver").expect("ver").to_string();
    assert_ne!(ver_b, ver_b0);
    assert_eq!(before(&b.roster().await).as_deref(), Some(ver_b.as_str()));
}
