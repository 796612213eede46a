//! XEP-0402 PEP native bookmarks kept in step with XEP-0048 bookmarks in
//! XEP-0049 private XML and on the legacy PEP node (XEP-0411), and generic
//! XEP-0049 private XML storage, over real sockets.

use std::time::Duration;

use jid::BareJid;
use minidom::Element;
use roost_store::{RosterItem, Subscription};
use roost_testkit::{Client, TestServer};

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
const LEGACY: &str = "storage:bookmarks";
const PRIVATE: &str = "jabber:iq:private";

/// XEP-0402 §3.3 publish-options.
const PRIVATE_OPTIONS: &str = "<publish-options><x xmlns='jabber:x:data' type='submit'>\
    <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
    <field var='pubsub#persist_items'><value>true</value></field>\
    <field var='pubsub#max_items'><value>max</value></field>\
    <field var='pubsub#send_last_published_item'><value>never</value></field>\
    <field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>";

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(r));
}

fn condition(r: &Element) -> String {
    assert_eq!(r.attr("type"), Some("error"), "{}", String::from(r));
    r.get_child("error", "jabber:client")
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == STANZAS && c.name() != "text")
        })
        .map(|c| c.name().to_string())
        .unwrap_or_default()
}

async fn add_bookmark(c: &mut Client, room: &str, conference: &str) {
    let r = c
        .iq(
            "set",
            None,
            &format!("<pubsub xmlns='{PUBSUB}'><publish node='{BOOKMARKS}'><item id='{room}'>{conference}</item></publish>{PRIVATE_OPTIONS}</pubsub>"),
        )
        .await;
    ok(&r);
}

async fn set_legacy(c: &mut Client, storage_inner: &str) -> Element {
    c.iq(
        "set",
        None,
        &format!(
            "<query xmlns='{PRIVATE}'><storage xmlns='{LEGACY}'>{storage_inner}</storage></query>"
        ),
    )
    .await
}

/// The XEP-0048 conferences read through XEP-0049.
async fn legacy_conferences(c: &mut Client) -> Vec<Element> {
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVATE}'><storage xmlns='{LEGACY}'/></query>"),
        )
        .await;
    ok(&r);
    r.get_child("query", PRIVATE)
        .and_then(|q| q.get_child("storage", LEGACY))
        .expect("storage")
        .children()
        .filter(|c| c.name() == "conference")
        .cloned()
        .collect()
}

/// The XEP-0402 items: (id, conference).
async fn native_items(c: &mut Client) -> Vec<(String, Element)> {
    let r = c
        .iq(
            "get",
            None,
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>"),
        )
        .await;
    ok(&r);
    let mut v: Vec<(String, Element)> = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .expect("items")
        .children()
        .map(|i| {
            (
                i.attr("id").unwrap_or_default().to_string(),
                i.get_child("conference", BOOKMARKS)
                    .expect("conference")
                    .clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn bookmark_event(e: &Element) -> bool {
    e.name() == "message"
        && e.get_child("event", EVENT)
            .and_then(|ev| ev.get_child("items", EVENT))
            .is_some_and(|i| i.attr("node") == Some(BOOKMARKS))
}

#[tokio::test]
async fn a_bookmark_published_with_xep_0402_is_read_through_xep_0049() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    let mut c = s.login("juliet", "balcony").await;
    add_bookmark(
        &mut c,
        "theplay@conference.shakespeare.lit",
        &format!("<conference xmlns='{BOOKMARKS}' name='The Play&apos;s the Thing' autojoin='true'><nick>JC</nick><password>pw</password></conference>"),
    )
    .await;
    let confs = legacy_conferences(&mut c).await;
    assert_eq!(confs.len(), 1);
    let conf = &confs[0];
    assert_eq!(conf.attr("jid"), Some("theplay@conference.shakespeare.lit"));
    assert_eq!(conf.attr("name"), Some("The Play's the Thing"));
    assert_eq!(conf.attr("autojoin"), Some("true"));
    assert_eq!(
        conf.get_child("nick", LEGACY).map(|n| n.text()).as_deref(),
        Some("JC")
    );
    assert_eq!(
        conf.get_child("password", LEGACY)
            .map(|n| n.text())
            .as_deref(),
        Some("pw")
    );
}

#[tokio::test]
async fn bookmarks_stored_through_xep_0049_become_xep_0402_items_with_notifications() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    let mut legacy = s.login("juliet", "old").await;
    let mut modern = s.login("juliet", "new").await;
    modern.available_with_notify(&[BOOKMARKS]).await;
    let r = set_legacy(
        &mut legacy,
        "<conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'><nick>Puck</nick></conference>",
    )
    .await;
    ok(&r);
    let m = modern.expect("bookmark event", bookmark_event).await;
    let item = m
        .get_child("event", EVENT)
        .unwrap()
        .get_child("items", EVENT)
        .unwrap()
        .get_child("item", EVENT)
        .unwrap();
    assert_eq!(item.attr("id"), Some("council@conference.underhill.org"));
    let items = native_items(&mut modern).await;
    assert_eq!(items.len(), 1);
    let (id, conf) = &items[0];
    assert_eq!(id, "council@conference.underhill.org");
    assert_eq!(conf.attr("name"), Some("Council of Oberon"));
    assert_eq!(conf.attr("autojoin"), Some("true"));
    assert_eq!(
        conf.get_child("nick", BOOKMARKS)
            .map(|n| n.text())
            .as_deref(),
        Some("Puck")
    );
    // The public API sees the same (for account-based MUC joining).
    let account = BareJid::new("juliet@localhost").unwrap();
    let list = roost_features::bookmarks::bookmarks(&s.running.server, &account)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].autojoin);
    assert_eq!(list[0].nick.as_deref(), Some("Puck"));
}

#[tokio::test]
async fn a_xep_0049_rewrite_retracts_removed_bookmarks_and_leaves_unchanged_ones_alone() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    let mut legacy = s.login("juliet", "old").await;
    let mut modern = s.login("juliet", "new").await;
    modern.available_with_notify(&[BOOKMARKS]).await;
    let a = "<conference jid='a@muc.example' name='A'/>";
    let b = "<conference jid='b@muc.example' name='B'/>";
    ok(&set_legacy(&mut legacy, &format!("{a}{b}")).await);
    for _ in 0..2 {
        modern.expect("publish events", bookmark_event).await;
    }
    // Drop b, keep a unchanged, add c.
    ok(&set_legacy(
        &mut legacy,
        &format!("{a}<conference jid='c@muc.example' name='C'/>"),
    )
    .await);
    let mut events = Vec::new();
    for _ in 0..2 {
        events.push(modern.expect("rewrite events", bookmark_event).await);
    }
    let summary: Vec<String> = events
        .iter()
        .map(|m| {
            let i = m
                .get_child("event", EVENT)
                .unwrap()
                .get_child("items", EVENT)
                .unwrap();
            let c = i.children().next().unwrap();
            format!("{} {}", c.name(), c.attr("id").unwrap_or_default())
        })
        .collect();
    assert_eq!(summary, ["item c@muc.example", "retract b@muc.example"]);
    // Nothing for the unchanged one.
    assert!(modern
        .gets_within(Duration::from_millis(300), bookmark_event)
        .await
        .is_none());
    let ids: Vec<String> = native_items(&mut modern)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["a@muc.example", "c@muc.example"]);
}

#[tokio::test]
async fn a_retracted_xep_0402_bookmark_disappears_from_xep_0049_at_once() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    let mut c = s.login("juliet", "balcony").await;
    add_bookmark(
        &mut c,
        "a@muc.example",
        &format!("<conference xmlns='{BOOKMARKS}'/>"),
    )
    .await;
    add_bookmark(
        &mut c,
        "b@muc.example",
        &format!("<conference xmlns='{BOOKMARKS}'/>"),
    )
    .await;
    assert_eq!(legacy_conferences(&mut c).await.len(), 2);
    let r = c
        .iq("set", None, &format!("<pubsub xmlns='{PUBSUB}'><retract node='{BOOKMARKS}' notify='true'><item id='a@muc.example'/></retract></pubsub>"))
        .await;
    ok(&r);
    let left: Vec<String> = legacy_conferences(&mut c)
        .await
        .iter()
        .filter_map(|c| c.attr("jid").map(str::to_string))
        .collect();
    assert_eq!(left, ["b@muc.example"]);
}

#[tokio::test]
async fn bookmarks_survive_a_restart() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    let mut c = s.login("juliet", "balcony").await;
    add_bookmark(
        &mut c,
        "a@muc.example",
        &format!("<conference xmlns='{BOOKMARKS}' name='A' autojoin='true'/>"),
    )
    .await;
    ok(&set_legacy(
        &mut c,
        "<conference jid='a@muc.example' name='A' autojoin='true'/><conference jid='b@muc.example' name='B'/><url name='Site' url='https://example.org/'/>",
    )
    .await);
    c.close().await;
    let s = s.restart().await;
    let mut c = s.login("juliet", "balcony").await;
    let ids: Vec<String> = native_items(&mut c)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["a@muc.example", "b@muc.example"]);
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVATE}'><storage xmlns='{LEGACY}'/></query>"),
        )
        .await;
    let xml = String::from(&r);
    assert!(
        xml.contains("https://example.org/"),
        "URL bookmarks are kept: {xml}"
    );
    assert_eq!(legacy_conferences(&mut c).await.len(), 2);
}

#[tokio::test]
async fn the_bookmarks_node_is_private_to_the_account() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    s.user("romeo").await;
    let stores = &s.running.server.stores;
    for (x, y) in [("juliet", "romeo"), ("romeo", "juliet")] {
        let item = RosterItem {
            subscription: Subscription::Both,
            ..RosterItem::new(BareJid::new(&format!("{y}@localhost")).unwrap())
        };
        stores
            .roster
            .put_roster_item(&BareJid::new(&format!("{x}@localhost")).unwrap(), &item)
            .await
            .unwrap();
    }
    let mut juliet = s.login("juliet", "balcony").await;
    let mut romeo = s.login("romeo", "garden").await;
    romeo.available_with_notify(&[BOOKMARKS]).await;
    // Stored through XEP-0049 without any publish-options.
    ok(&set_legacy(
        &mut juliet,
        "<conference jid='secret@muc.example' name='Secret'/>",
    )
    .await);
    let r = romeo
        .iq(
            "get",
            Some("juliet@localhost"),
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>"),
        )
        .await;
    assert_eq!(condition(&r), "not-allowed");
    assert!(r
        .get_child("error", "jabber:client")
        .is_some_and(|e| e.has_child("closed-node", ERRORS)));
    assert!(romeo
        .gets_within(Duration::from_millis(500), bookmark_event)
        .await
        .is_none());
}

#[tokio::test]
async fn the_legacy_pep_node_shows_and_takes_the_same_bookmarks() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    let mut c = s.login("juliet", "balcony").await;
    add_bookmark(
        &mut c,
        "a@muc.example",
        &format!("<conference xmlns='{BOOKMARKS}' name='A'/>"),
    )
    .await;
    let r = c
        .iq(
            "get",
            None,
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{LEGACY}'/></pubsub>"),
        )
        .await;
    ok(&r);
    let storage = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .and_then(|i| i.get_child("item", PUBSUB))
        .filter(|i| i.attr("id") == Some("current"))
        .and_then(|i| i.get_child("storage", LEGACY))
        .expect("storage item");
    assert_eq!(storage.children().count(), 1);
    // Publishing the legacy node replaces the XEP-0402 items.
    let r = c
        .iq(
            "set",
            None,
            &format!("<pubsub xmlns='{PUBSUB}'><publish node='{LEGACY}'><item id='current'><storage xmlns='{LEGACY}'><conference jid='b@muc.example' name='B'/></storage></item></publish></pubsub>"),
        )
        .await;
    ok(&r);
    let ids: Vec<String> = native_items(&mut c)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["b@muc.example"]);
}

#[tokio::test]
async fn invalid_xep_0402_items_are_refused() {
    let s = TestServer::start().await;
    s.user("juliet").await;
    let mut c = s.login("juliet", "balcony").await;
    for (id, payload) in [
        ("not a jid@@", format!("<conference xmlns='{BOOKMARKS}'/>")),
        (
            "room@muc.example",
            "<conference xmlns='storage:bookmarks'/>".to_string(),
        ),
    ] {
        let r = c
            .iq("set", None, &format!("<pubsub xmlns='{PUBSUB}'><publish node='{BOOKMARKS}'><item id='{id}'>{payload}</item></publish></pubsub>"))
            .await;
        assert_eq!(condition(&r), "bad-request", "{id}");
    }
}

#[tokio::test]
async fn generic_private_xml_round_trips() {
    let s = TestServer::start().await;
    s.user("hamlet").await;
    let mut c = s.login("hamlet", "denmark").await;
    // Nothing stored: the empty element comes back.
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVATE}'><exodus xmlns='exodus:prefs'/></query>"),
        )
        .await;
    ok(&r);
    let e = r
        .get_child("query", PRIVATE)
        .and_then(|q| q.get_child("exodus", "exodus:prefs"))
        .expect("exodus");
    assert_eq!(e.children().count(), 0);
    let r = c
        .iq("set", None, &format!("<query xmlns='{PRIVATE}'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query>"))
        .await;
    ok(&r);
    let r = c
        .iq(
            "get",
            Some("hamlet@localhost"),
            &format!("<query xmlns='{PRIVATE}'><exodus xmlns='exodus:prefs'/></query>"),
        )
        .await;
    let nick = r
        .get_child("query", PRIVATE)
        .and_then(|q| q.get_child("exodus", "exodus:prefs"))
        .and_then(|e| e.get_child("defaultnick", "exodus:prefs"))
        .map(|n| n.text());
    assert_eq!(nick.as_deref(), Some("Hamlet"));
}

#[tokio::test]
async fn private_xml_of_another_account_is_forbidden() {
    let s = TestServer::start().await;
    s.user("hamlet").await;
    s.user("macbeth").await;
    let mut c = s.login("macbeth", "castle").await;
    for kind in ["get", "set"] {
        let r = c
            .iq(kind, Some("hamlet@localhost"), &format!("<query xmlns='{PRIVATE}'><exodus xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus></query>"))
            .await;
        assert_eq!(condition(&r), "forbidden", "{kind}");
    }
}

#[tokio::test]
async fn private_xml_without_payload_or_in_reserved_namespaces_is_not_acceptable() {
    let s = TestServer::start().await;
    s.user("hamlet").await;
    let mut c = s.login("hamlet", "denmark").await;
    for (kind, inner) in [
        ("get", String::new()),
        ("set", "<message xmlns='jabber:client'/>".to_string()),
        ("get", format!("<query xmlns='{PRIVATE}'/>")),
    ] {
        let r = c
            .iq(
                kind,
                None,
                &format!("<query xmlns='{PRIVATE}'>{inner}</query>"),
            )
            .await;
        assert_eq!(condition(&r), "not-acceptable", "{kind} {inner}");
    }
}

#[tokio::test]
async fn the_legacy_pep_node_without_bookmarks_does_not_exist() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    for node in [LEGACY, BOOKMARKS, "urn:xmpp:avatar:metadata"] {
        let r = a
            .iq(
                "get",
                None,
                &format!("<pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub>"),
            )
            .await;
        assert_eq!(
            r.attr("type"),
            Some("error"),
            "{node}: {}",
            String::from(&r)
        );
        assert_eq!(condition(&r), "item-not-found", "{node}");
    }
    // Once a bookmark exists the view has its item.
    add_bookmark(
        &mut a,
        "room@conference.localhost",
        "<conference xmlns='urn:xmpp:bookmarks:1' autojoin='false'/>",
    )
    .await;
    let r = a
        .iq(
            "get",
            None,
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{LEGACY}'/></pubsub>"),
        )
        .await;
    ok(&r);
}
