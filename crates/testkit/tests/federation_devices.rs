//! What an account's several devices see across servers: message carbons
//! (XEP-0280) of chats with a contact on another server, and PEP
//! notifications (XEP-0163) from a remote contact filtered by each
//! device's caps (XEP-0115 `+notify`).

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::federation::{online, pair, subscribe, TestCa};
use roost_testkit::Client;

const CARBONS: &str = "urn:xmpp:carbons:2";
const FORWARD: &str = "urn:xmpp:forward:0";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const TUNE: &str = "http://jabber.org/protocol/tune";

async fn carbons_on(c: &mut Client) {
    let r = c
        .iq("set", None, &format!("<enable xmlns='{CARBONS}'/>"))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

/// The message a carbon wraps.
fn carried(e: &Element, kind: &str) -> Option<Element> {
    e.get_child(kind, CARBONS)?
        .get_child("forwarded", FORWARD)?
        .get_child("message", "jabber:client")
        .cloned()
}

#[tokio::test]
async fn carbons_copy_chats_with_a_contact_on_another_server() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut home = online(&sa, "alice", "home").await;
    let mut phone = sa.login("alice", "phone").await;
    phone.available().await;
    carbons_on(&mut home).await;
    carbons_on(&mut phone).await;
    let mut bob = online(&sb, "bob", "desk").await;

    // bob -> alice/home: phone gets a received carbon.
    bob.send("<message to='alice@a.test/home' type='chat' id='in1'><body>to your laptop</body></message>")
        .await;
    home.expect("the message", |e| {
        body(e).as_deref() == Some("to your laptop")
    })
    .await;
    let c = phone
        .expect("received carbon", |e| e.has_child("received", CARBONS))
        .await;
    assert_eq!(c.attr("from"), Some("alice@a.test"));
    let m = carried(&c, "received").expect("forwarded message");
    assert_eq!(m.attr("from"), Some("bob@b.test/desk"));
    assert_eq!(body(&m).as_deref(), Some("to your laptop"));

    // alice/home -> bob: bob gets it once, phone a sent carbon.
    home.send(
        "<message to='bob@b.test' type='chat' id='out1'><body>from the laptop</body></message>",
    )
    .await;
    bob.expect("alice's message", |e| {
        body(e).as_deref() == Some("from the laptop")
    })
    .await;
    let c = phone
        .expect("sent carbon", |e| e.has_child("sent", CARBONS))
        .await;
    let m = carried(&c, "sent").expect("forwarded message");
    assert_eq!(m.attr("to"), Some("bob@b.test"));
    assert!(bob
        .gets_within(Duration::from_millis(300), |e| body(e).as_deref()
            == Some("from the laptop"))
        .await
        .is_none());
    // bob -> bare alice: both devices get it (no carbon copy on top).
    bob.send(
        "<message to='alice@a.test' type='chat' id='in2'><body>to all of you</body></message>",
    )
    .await;
    for c in [&mut home, &mut phone] {
        c.expect("the message", |e| {
            body(e).as_deref() == Some("to all of you")
        })
        .await;
        assert!(c
            .gets_within(Duration::from_millis(300), |e| e
                .has_child("received", CARBONS))
            .await
            .is_none());
    }
}

#[tokio::test]
async fn pep_events_from_a_remote_contact_reach_the_devices_that_asked() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut alice = online(&sa, "alice", "home").await;
    sb.user("bob").await;
    let mut wants = sb.login("bob", "wants").await;
    let mut ignores = sb.login("bob", "ignores").await;
    wants
        .available_with_caps(&[&format!("{TUNE}+notify")])
        .await;
    ignores
        .available_with_caps(&["urn:example:other+notify"])
        .await;
    alice.roster().await;
    wants.roster().await;
    subscribe(&mut wants, &mut alice, "alice@a.test").await;
    subscribe(&mut alice, &mut wants, "bob@b.test").await;
    // alice publishes her tune: the event crosses to b.test, where only
    // the device whose caps ask for tunes gets it.
    let r = alice
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{TUNE}'><item id='now'>\
                 <tune xmlns='{TUNE}'><title>Across</title></tune></item></publish></pubsub>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let is_tune = |e: &Element| {
        e.name() == "message"
            && e.get_child("event", EVENT)
                .and_then(|ev| ev.get_child("items", EVENT))
                .is_some_and(|i| i.attr("node") == Some(TUNE))
    };
    let ev = wants.expect("tune event", is_tune).await;
    assert_eq!(ev.attr("from"), Some("alice@a.test"));
    assert!(String::from(&ev).contains("Across"));
    assert!(ignores
        .gets_within(Duration::from_millis(500), is_tune)
        .await
        .is_none());
}

/// A push for a mention in a bookmarked room on another server, with no
/// session of the account online (XEP-0357 through account-based joining).
#[tokio::test]
async fn a_mention_in_a_room_on_another_server_pushes() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let room = "hall@conference.b.test";
    let mut bob = online(&sb, "bob", "desk").await;
    bob.join_room(room, "Bob").await;
    bob.configure_room(room, &[("muc#roomconfig_persistentroom", "1")])
        .await;
    let mut app = online(&sa, "pusher", "app").await;
    let mut phone = online(&sa, "alice", "phone").await;
    let r = phone
        .iq(
            "set",
            None,
            "<enable xmlns='urn:xmpp:push:0' jid='pusher@a.test/app' node='n1'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let r = phone
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='{room}'>\
                 <conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>Al</nick></conference></item></publish>\
                 <publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
                 <field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    bob.expect("Al joins", |e| {
        e.name() == "presence" && e.attr("from") == Some("hall@conference.b.test/Al")
    })
    .await;
    phone.close().await;
    bob.send(&format!(
        "<message to='{room}' type='groupchat'><body>Al, are you there?</body></message>"
    ))
    .await;
    let push = app
        .expect("a push", |e| {
            e.name() == "iq"
                && e.attr("type") == Some("set")
                && e.has_child("pubsub", "http://jabber.org/protocol/pubsub")
        })
        .await;
    assert_eq!(push.attr("from"), Some("alice@a.test"));
    assert!(
        String::from(&push).contains("hall@conference.b.test/Bob"),
        "{}",
        String::from(&push)
    );
}
