//! XEP-0198 over real sockets: acks both ways, a dropped session resumed
//! on a new connection gets exactly what it missed, and one that is never
//! resumed loses nothing.

use std::time::Duration;

use minidom::Element;
use roost_testkit::{client::body, Client, Conn, Mech, TestServer};

fn is_chat(e: &Element) -> bool {
    e.name() == "message" && e.attr("type") == Some("chat")
}

fn is_presence_from(prefix: &'static str, kind: Option<&'static str>) -> impl Fn(&Element) -> bool {
    move |e| {
        e.name() == "presence"
            && e.attr("from").is_some_and(|f| f.starts_with(prefix))
            && e.attr("type") == kind
    }
}

async fn send_chat(c: &mut Client, to: &str, text: &str) {
    c.send(&format!(
        "<message to='{to}' type='chat'><body>{text}</body></message>"
    ))
    .await;
}

/// Reconnect as alice and resume `previd` having handled `h` stanzas.
async fn reconnect_and_resume(s: &TestServer, previd: &str, h: u32) -> (Conn, Element) {
    let mut c = Conn::secured(s.c2s(), false).await;
    c.authenticate("alice", "pw-alice", Mech::ScramSha256)
        .await
        .unwrap();
    let f = c.open_stream().await;
    assert!(f.has_child("sm", "urn:xmpp:sm:3"));
    let answer = c.resume(previd, h).await;
    (c, answer)
}

#[tokio::test]
async fn enabled_stream_counts_handled_stanzas() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    a.enable_sm().await;
    for _ in 0..3 {
        a.iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
            .await;
    }
    assert_eq!(a.server_handled().await, 3);
}

#[tokio::test]
async fn dropped_session_resumes_and_gets_exactly_what_it_missed() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "phone").await;
    let previd = a.enable_sm().await;
    let mut b = s.login("bob", "desk").await;
    send_chat(&mut b, "alice@localhost/phone", "one").await;
    a.expect("one", is_chat).await;
    // Alice acknowledges "one" (the first stanza the server counted).
    a.send("<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.drop_connection();
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_chat(&mut b, "alice@localhost/phone", "two").await;
    send_chat(&mut b, "alice@localhost/phone", "three").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut c, answer) = reconnect_and_resume(&s, &previd, 1).await;
    assert_eq!(answer.name(), "resumed", "{}", String::from(&answer));
    assert_eq!(answer.attr("previd"), Some(previd.as_str()));
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let e = c.next_element().await.expect("missed messages");
        if e.name() == "message" {
            bodies.push(body(&e).unwrap_or_default());
        }
    }
    assert_eq!(bodies, ["two", "three"]);
    // Nothing else: "one" is not sent again.
    c.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = c.next_element().await.expect("ping result");
        assert_ne!(e.name(), "message", "duplicate: {}", String::from(&e));
        if e.attr("id") == Some("p") {
            break;
        }
    }
}

#[tokio::test]
async fn contacts_do_not_see_a_resumable_session_go_offline() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "phone").await;
    let mut b = s.login("bob", "desk").await;
    b.available().await;
    a.send("<presence to='bob@localhost/desk'/>").await;
    b.expect(
        "alice directed presence",
        is_presence_from("alice@localhost/phone", None),
    )
    .await;
    a.enable_sm().await;
    a.drop_connection();
    assert!(b
        .gets_within(
            Duration::from_millis(500),
            is_presence_from("alice@localhost/phone", Some("unavailable"))
        )
        .await
        .is_none());
}

#[tokio::test]
async fn session_never_resumed_loses_nothing() {
    let s = TestServer::start_with(|c| c.stream_management.resume_timeout = 1).await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "phone").await;
    a.available().await;
    a.enable_sm().await;
    let mut b = s.login("bob", "desk").await;
    send_chat(&mut b, "alice@localhost", "unacked").await;
    a.expect("delivered but never acknowledged", is_chat).await;
    a.drop_connection();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let mut a2 = s.login("alice", "laptop").await;
    a2.send("<presence/>").await;
    let m = a2
        .expect("the unacknowledged message, from offline storage", is_chat)
        .await;
    assert_eq!(body(&m).as_deref(), Some("unacked"));
}

#[tokio::test]
async fn resuming_an_unknown_session_fails_with_item_not_found() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let (_c, answer) = reconnect_and_resume(&s, "no-such-id", 0).await;
    assert_eq!(answer.name(), "failed");
    assert!(answer.has_child("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas"));
}

#[tokio::test]
async fn another_account_cannot_resume_a_session() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("mallory").await;
    let mut a = s.login("alice", "phone").await;
    let previd = a.enable_sm().await;
    a.drop_connection();
    let mut c = Conn::secured(s.c2s(), false).await;
    c.authenticate("mallory", "pw-mallory", Mech::Plain)
        .await
        .unwrap();
    c.open_stream().await;
    let answer = c.resume(&previd, 0).await;
    assert_eq!(answer.name(), "failed");
}

#[tokio::test]
async fn acknowledging_more_than_was_sent_is_a_stream_error() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    a.enable_sm().await;
    a.send("<a xmlns='urn:xmpp:sm:3' h='99'/>").await;
    assert_eq!(a.conn.stream_error().await, "undefined-condition");
}

#[tokio::test]
async fn a_flood_of_ack_requests_is_a_policy_violation() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    a.enable_sm().await;
    a.send(&"<r xmlns='urn:xmpp:sm:3'/>".repeat(100)).await;
    assert_eq!(a.conn.stream_error().await, "policy-violation");
}
