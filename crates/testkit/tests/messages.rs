//! RFC 6121 §8 message routing and XEP-0160 offline storage over sockets.

use std::time::Duration;

use roost_testkit::{client::body, TestServer};

fn is_message(e: &minidom::Element) -> bool {
    e.name() == "message"
}

#[tokio::test]
async fn messages_flow_both_ways_between_full_jids() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    a.available().await;
    b.available().await;
    a.send("<message to='bob@localhost/work' type='chat' id='m1'><body>hello bob</body></message>")
        .await;
    let m = b.expect("message", is_message).await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"));
    assert_eq!(m.attr("id"), Some("m1"));
    assert_eq!(body(&m).as_deref(), Some("hello bob"));
    b.send(
        "<message to='alice@localhost/home' type='chat'><body>hi alice &amp; co</body></message>",
    )
    .await;
    let m = a.expect("reply", is_message).await;
    assert_eq!(body(&m).as_deref(), Some("hi alice & co"));
}

#[tokio::test]
async fn bare_jid_message_goes_to_highest_priority_sessions() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut hi = s.login("bob", "hi").await;
    let mut lo = s.login("bob", "lo").await;
    hi.send("<presence><priority>5</priority></presence>").await;
    lo.send("<presence><priority>1</priority></presence>").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.send("<message to='bob@localhost' type='chat'><body>to the best</body></message>")
        .await;
    hi.expect("message to hi", is_message).await;
    assert!(lo
        .gets_within(Duration::from_millis(300), is_message)
        .await
        .is_none());
}

#[tokio::test]
async fn message_to_unbound_resource_falls_back_to_the_bare_jid() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    b.available().await;
    a.send("<message to='bob@localhost/gone' type='chat'><body>fallback</body></message>")
        .await;
    let m = b.expect("fallback", is_message).await;
    assert_eq!(body(&m).as_deref(), Some("fallback"));
}

#[tokio::test]
async fn message_to_unknown_account_is_service_unavailable() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.send("<message to='ghost@localhost' id='x'><body>anyone?</body></message>")
        .await;
    let e = a.expect("error", is_message).await;
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(e.attr("from"), Some("ghost@localhost"));
    assert!(e
        .get_child("error", "jabber:client")
        .unwrap()
        .children()
        .any(|c| c.name() == "service-unavailable"));
}

#[tokio::test]
async fn message_to_other_domain_is_remote_server_not_found() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.send("<message to='x@elsewhere.example' id='y'><body>?</body></message>")
        .await;
    let e = a.expect("error", is_message).await;
    assert!(e
        .get_child("error", "jabber:client")
        .unwrap()
        .children()
        .any(|c| c.name() == "remote-server-not-found"));
}

#[tokio::test]
async fn offline_message_is_delivered_at_initial_presence_with_delay() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    a.send("<message to='bob@localhost' type='chat'><body>while you were out</body></message>")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = s.login("bob", "work").await;
    // Not before initial presence.
    assert!(b
        .gets_within(Duration::from_millis(200), is_message)
        .await
        .is_none());
    b.send("<presence/>").await;
    let m = b.expect("offline message", is_message).await;
    assert_eq!(body(&m).as_deref(), Some("while you were out"));
    assert!(m.get_child("delay", "urn:xmpp:delay").is_some());
    // Delivered once: a new session does not get it again.
    let mut b2 = s.login("bob", "second").await;
    b2.send("<presence/>").await;
    assert!(b2
        .gets_within(Duration::from_millis(300), is_message)
        .await
        .is_none());
}

#[tokio::test]
async fn offline_message_survives_a_restart() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    a.send("<message to='bob@localhost' type='chat'><body>persisted</body></message>")
        .await;
    // Stopped right away: shutdown drains the account tasks into storage.
    let s = s.restart().await;
    let mut b = s.login("bob", "work").await;
    b.send("<presence/>").await;
    let m = b.expect("offline message after restart", is_message).await;
    assert_eq!(body(&m).as_deref(), Some("persisted"));
}

#[tokio::test]
async fn groupchat_to_an_account_is_refused() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    b.available().await;
    a.send("<message to='bob@localhost' type='groupchat'><body>no</body></message>")
        .await;
    let e = a.expect("error", is_message).await;
    assert_eq!(e.attr("type"), Some("error"));
    assert!(b
        .gets_within(Duration::from_millis(200), is_message)
        .await
        .is_none());
}
