//! XEP-0280 carbons, XEP-0352 client state indication and XEP-0191
//! blocking over real sockets.

use std::time::Duration;

use minidom::Element;
use roost_testkit::{client::body, Client, TestServer};

async fn enable_carbons(c: &mut Client) {
    let r = c
        .iq("set", None, "<enable xmlns='urn:xmpp:carbons:2'/>")
        .await;
    assert_eq!(r.attr("type"), Some("result"));
}

fn carbon(direction: &'static str) -> impl Fn(&Element) -> bool {
    move |e| e.name() == "message" && e.has_child(direction, "urn:xmpp:carbons:2")
}

fn forwarded_body(e: &Element, direction: &str) -> Option<String> {
    e.get_child(direction, "urn:xmpp:carbons:2")?
        .get_child("forwarded", "urn:xmpp:forward:0")?
        .get_child("message", "jabber:client")
        .and_then(body)
}

#[tokio::test]
async fn second_session_gets_received_and_sent_carbons() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut one = s.login("alice", "one").await;
    let mut two = s.login("alice", "two").await;
    one.available().await;
    two.available().await;
    enable_carbons(&mut two).await;
    let mut b = s.login("bob", "desk").await;
    b.send("<message to='alice@localhost/one' type='chat'><body>to one</body></message>")
        .await;
    one.expect("direct", |e| e.name() == "message" && body(e).is_some())
        .await;
    let c = two.expect("received carbon", carbon("received")).await;
    assert_eq!(c.attr("from"), Some("alice@localhost"));
    assert_eq!(forwarded_body(&c, "received").as_deref(), Some("to one"));
    one.send("<message to='bob@localhost/desk' type='chat'><body>from one</body></message>")
        .await;
    let c = two.expect("sent carbon", carbon("sent")).await;
    assert_eq!(forwarded_body(&c, "sent").as_deref(), Some("from one"));
    // Private messages are not copied.
    one.send("<message to='bob@localhost/desk' type='chat'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>").await;
    assert!(two
        .gets_within(Duration::from_millis(300), carbon("sent"))
        .await
        .is_none());
}

#[tokio::test]
async fn sessions_without_carbons_get_no_copies() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut one = s.login("alice", "one").await;
    let mut two = s.login("alice", "two").await;
    one.available().await;
    two.available().await;
    let mut b = s.login("bob", "desk").await;
    b.send("<message to='alice@localhost/one' type='chat'><body>x</body></message>")
        .await;
    one.expect("direct", |e| e.name() == "message").await;
    assert!(two
        .gets_within(Duration::from_millis(300), carbon("received"))
        .await
        .is_none());
}

#[tokio::test]
async fn inactive_client_gets_presence_late_but_messages_at_once() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "phone").await;
    let mut b = s.login("bob", "desk").await;
    a.available().await;
    b.available().await;
    a.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.send("<presence to='alice@localhost/phone'><status>s1</status></presence>")
        .await;
    b.send("<presence to='alice@localhost/phone'><status>s2</status></presence>")
        .await;
    assert!(a
        .gets_within(Duration::from_millis(400), |e| e.name() == "presence")
        .await
        .is_none());
    b.send("<message to='alice@localhost/phone' type='chat'><body>wake up</body></message>")
        .await;
    // The held presence (only the latest) comes first, then the message.
    let p = a.recv().await;
    assert_eq!(p.name(), "presence");
    assert_eq!(p.get_child("status", "jabber:client").unwrap().text(), "s2");
    let m = a.recv().await;
    assert_eq!(body(&m).as_deref(), Some("wake up"));
}

#[tokio::test]
async fn becoming_active_flushes_held_presence() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "phone").await;
    let mut b = s.login("bob", "desk").await;
    a.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.send("<presence to='alice@localhost/phone'/>").await;
    assert!(a
        .gets_within(Duration::from_millis(300), |e| e.name() == "presence")
        .await
        .is_none());
    a.send("<active xmlns='urn:xmpp:csi:0'/>").await;
    a.expect("flushed presence", |e| e.name() == "presence")
        .await;
}

fn condition(e: &Element) -> Vec<String> {
    e.get_child("error", "jabber:client")
        .map(|err| err.children().map(|c| c.name().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn blocked_contact_cannot_reach_the_account_and_is_not_reached() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "phone").await;
    let mut a2 = s.login("alice", "tablet").await;
    a.available().await;
    let list = a2
        .iq("get", None, "<blocklist xmlns='urn:xmpp:blocking'/>")
        .await;
    assert!(list
        .get_child("blocklist", "urn:xmpp:blocking")
        .unwrap()
        .children()
        .next()
        .is_none());
    let r = a
        .iq(
            "set",
            None,
            "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    // The other session that fetched the list gets the push.
    a2.expect("block push", |e| {
        e.name() == "iq" && e.has_child("block", "urn:xmpp:blocking")
    })
    .await;
    let mut b = s.login("bob", "desk").await;
    b.send("<message to='alice@localhost' id='m' type='chat'><body>let me in</body></message>")
        .await;
    let e = b.expect("bounce", |e| e.attr("id") == Some("m")).await;
    assert_eq!(e.attr("type"), Some("error"));
    assert!(condition(&e).contains(&"service-unavailable".to_string()));
    assert!(a
        .gets_within(Duration::from_millis(300), |e| e.name() == "message")
        .await
        .is_none());
    a.send("<message to='bob@localhost' id='o' type='chat'><body>hi</body></message>")
        .await;
    let e = a.expect("refused", |e| e.attr("id") == Some("o")).await;
    let c = condition(&e);
    assert!(
        c.contains(&"not-acceptable".to_string()) && c.contains(&"blocked".to_string()),
        "{c:?}"
    );
    // Unblock everything; messages flow again; the list survives in storage.
    a.iq("set", None, "<unblock xmlns='urn:xmpp:blocking'/>")
        .await;
    b.send("<message to='alice@localhost/phone' type='chat'><body>thanks</body></message>")
        .await;
    a.expect("after unblock", |e| {
        e.name() == "message" && body(e).is_some()
    })
    .await;
}

#[tokio::test]
async fn block_list_is_persistent() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    a.iq(
        "set",
        None,
        "<block xmlns='urn:xmpp:blocking'><item jid='spam.example'/></block>",
    )
    .await;
    a.close().await;
    let s = s.restart().await;
    let mut a = s.login("alice", "phone").await;
    let list = a
        .iq("get", None, "<blocklist xmlns='urn:xmpp:blocking'/>")
        .await;
    let items: Vec<String> = list
        .get_child("blocklist", "urn:xmpp:blocking")
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_string))
        .collect();
    assert_eq!(items, ["spam.example"]);
}
