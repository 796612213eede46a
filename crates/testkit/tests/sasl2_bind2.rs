//! Modern login (XEP-0388 SASL2, XEP-0386 Bind 2) over a real socket:
//! authentication without a stream restart, a stable resource from the
//! client's tag and user-agent, inline carbons, client state and stream
//! management, inline resumption, our inline feature that joins the new
//! session to the account's rooms, and refusals.

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::{Client, Conn, TestServer};

const SASL2: &str = "urn:xmpp:sasl:2";
const BIND2: &str = "urn:xmpp:bind:0";
const SM: &str = "urn:xmpp:sm:3";
const UA: &str = "<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>Test</software><device>Phone</device></user-agent>";

/// Connected over direct TLS; the stream's first features.
async fn connected(s: &TestServer) -> (Conn, Element) {
    let mut c = Conn::connect(s.c2s_tls(), true).await.expect("connect");
    c.domain = "localhost".into();
    let f = c.open_stream().await;
    (c, f)
}

fn authz(success: &Element) -> String {
    success
        .get_child("authorization-identifier", SASL2)
        .map(|a| a.text())
        .unwrap_or_default()
}

/// The features that follow `<success/>` (no stream restart).
async fn features_after(c: &mut Conn) -> Element {
    let f = c.next_element().await.expect("features after success");
    assert_eq!(f.name(), "features", "{}", String::from(&f));
    f
}

#[tokio::test]
async fn sasl2_is_offered_with_bind2_and_its_inline_features() {
    let s = TestServer::start().await;
    let (_c, f) = connected(&s).await;
    let auth = f.get_child("authentication", SASL2).expect("SASL2 offered");
    let mechs: Vec<String> = auth
        .children()
        .filter(|m| m.name() == "mechanism")
        .map(|m| m.text())
        .collect();
    assert!(mechs.contains(&"SCRAM-SHA-256".to_string()), "{mechs:?}");
    let inline = auth.get_child("inline", SASL2).expect("inline");
    assert!(inline.has_child("sm", SM));
    let bind = inline.get_child("bind", BIND2).expect("Bind 2");
    let vars: Vec<&str> = bind
        .get_child("inline", BIND2)
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var"))
        .collect();
    for v in [
        "urn:xmpp:carbons:2",
        "urn:xmpp:csi:0",
        SM,
        "urn:roost:account-muc:0",
    ] {
        assert!(vars.contains(&v), "{v} in {vars:?}");
    }
}

#[tokio::test]
async fn bind2_binds_a_stable_resource_and_enables_features_inline() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let (mut c, _) = connected(&s).await;
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{UA}<bind xmlns='{BIND2}'><tag>TestApp</tag><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='{SM}' resume='true'/></bind>"),
        )
        .await;
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    let jid = authz(&ok);
    assert!(jid.starts_with("alice@localhost/TestApp/"), "{jid}");
    assert!(!jid.contains("d4565fa7"), "the user-agent id stays private");
    let bound = ok.get_child("bound", BIND2).expect("bound");
    let enabled = bound.get_child("enabled", SM).expect("SM enabled inline");
    assert_eq!(enabled.attr("resume"), Some("true"));
    let f = features_after(&mut c).await;
    assert!(!f.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
    // The session works, carbons included.
    let mut app = Client::from_bound(c, jid.clone());
    app.available().await;
    let mut other = s.login("alice", "laptop").await;
    other.available().await;
    let mut bob = s.login("bob", "desk").await;
    bob.send(
        "<message to='alice@localhost/laptop' type='chat'><body>to the laptop</body></message>",
    )
    .await;
    app.expect("carbon", |e| e.has_child("received", "urn:xmpp:carbons:2"))
        .await;
    // The same client again: the same resource, the old session replaced.
    let (mut c2, _) = connected(&s).await;
    let ok2 = c2
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{UA}<bind xmlns='{BIND2}'><tag>TestApp</tag></bind>"),
        )
        .await;
    assert_eq!(authz(&ok2), jid);
    assert_eq!(app.conn.stream_error().await, "conflict");
}

#[tokio::test]
async fn sasl2_without_bind_continues_on_the_same_stream() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let (mut c, _) = connected(&s).await;
    let ok = c.authenticate2("alice", "pw-alice", UA).await;
    assert_eq!(ok.name(), "success");
    assert_eq!(authz(&ok), "alice@localhost");
    let f = features_after(&mut c).await;
    assert!(f.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
    let jid = c.bind(Some("legacy")).await;
    assert_eq!(jid, "alice@localhost/legacy");
}

#[tokio::test]
async fn a_wrong_password_fails_and_nothing_inline_happens() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let (mut c, _) = connected(&s).await;
    let b64 = base64_encode("n,,n=alice,r=abcdefghijklmnop");
    c.send(&format!("<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'><initial-response>{b64}</initial-response><bind xmlns='{BIND2}'/></authenticate>"))
        .await;
    let ch = c.next_element().await.unwrap();
    assert_eq!(ch.name(), "challenge");
    c.send(&format!(
        "<response xmlns='{SASL2}'>{}</response>",
        base64_encode("c=biws,r=abcdefghijklmnopXX,p=AAAA")
    ))
    .await;
    let f = c.next_element().await.unwrap();
    assert_eq!(f.name(), "failure", "{}", String::from(&f));
    assert_eq!(f.ns(), SASL2);
    // Still unauthenticated: a real login works after it.
    let ok = c.authenticate2("alice", "pw-alice", "").await;
    assert_eq!(ok.name(), "success");
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_session_resumes_inline_with_sasl2() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let (mut c, _) = connected(&s).await;
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{UA}<bind xmlns='{BIND2}'><enable xmlns='{SM}' resume='true'/></bind>"),
        )
        .await;
    let previd = ok
        .get_child("bound", BIND2)
        .and_then(|b| b.get_child("enabled", SM))
        .and_then(|e| e.attr("id"))
        .expect("resumable")
        .to_string();
    let jid = authz(&ok);
    features_after(&mut c).await;
    let mut phone = Client::from_bound(c, jid.clone());
    phone.available().await;
    phone.drop_connection();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bob = s.login("bob", "desk").await;
    bob.send(&format!(
        "<message to='{jid}' type='chat'><body>while away</body></message>"
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut c, _) = connected(&s).await;
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{UA}<resume xmlns='{SM}' previd='{previd}' h='0'/>"),
        )
        .await;
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    assert!(ok.has_child("resumed", SM), "{}", String::from(&ok));
    features_after(&mut c).await;
    loop {
        let el = c.next_element().await.expect("the queued message");
        if body(&el).as_deref() == Some("while away") {
            break;
        }
    }
    // A resumption that cannot happen fails inside success, and the bind goes on.
    let (mut c, _) = connected(&s).await;
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{UA}<resume xmlns='{SM}' previd='nope' h='0'/><bind xmlns='{BIND2}'/>"),
        )
        .await;
    assert!(ok.has_child("failed", SM), "{}", String::from(&ok));
    assert!(ok.has_child("bound", BIND2));
}

#[tokio::test]
async fn the_rooms_inline_feature_joins_the_session_to_the_accounts_rooms() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let room = "hall@conference.localhost";
    let mut bob = s.login("bob", "desk").await;
    bob.available().await;
    bob.join_room(room, "Bob").await;
    bob.configure_room(room, &[]).await;
    let mut phone = s.login("alice", "phone").await;
    phone.available().await;
    phone.join_room(room, "Al").await;
    bob.expect("Al's join", |e| {
        e.name() == "presence" && e.attr("from") == Some("hall@conference.localhost/Al")
    })
    .await;
    let (mut c, _) = connected(&s).await;
    let ok = c
        .authenticate2(
            "alice",
            "pw-alice",
            &format!("{UA}<bind xmlns='{BIND2}'><rooms xmlns='urn:roost:account-muc:0'/></bind>"),
        )
        .await;
    let rooms = ok
        .get_child("bound", BIND2)
        .and_then(|b| b.get_child("rooms", "urn:roost:account-muc:0"))
        .expect("rooms in bound");
    let listed: Vec<(Option<&str>, Option<&str>)> = rooms
        .children()
        .map(|r| (r.attr("jid"), r.attr("nick")))
        .collect();
    assert_eq!(listed, vec![(Some(room), Some("Al"))]);
    features_after(&mut c).await;
    // The join sequence, answered from state: bob, then our own (110), subject.
    let mut saw_bob = false;
    loop {
        let el = c.next_element().await.expect("join sequence");
        if el.name() == "presence" && el.attr("from") == Some("hall@conference.localhost/Bob") {
            saw_bob = true;
        }
        if el.name() == "presence"
            && el.attr("from") == Some("hall@conference.localhost/Al")
            && String::from(&el).contains("code='110'")
        {
            break;
        }
    }
    assert!(saw_bob);
    // Bob saw no second join of alice.
    assert!(bob
        .gets_within(Duration::from_millis(300), |e| e.name() == "presence"
            && e.attr("from") == Some("hall@conference.localhost/Al"))
        .await
        .is_none());
}
