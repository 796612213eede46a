//! External components (XEP-0114) over a real socket: the handshake,
//! routing both ways (the component's domain and its subdomains), a
//! reconnect replacing the old stream, and the errors: wrong secret,
//! unknown domain, forged sender, component not connected.

use std::time::Duration;

use minidom::Element;
use roost_core::config::ComponentConfig;
use roost_testkit::client::body;
use roost_testkit::muc::error_condition;
use roost_testkit::{component, Conn, TestServer};

const SECRET: &str = "component secret";

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.component = vec![ComponentConfig {
            domain: "push.localhost".into(),
            secret: SECRET.into(),
        }]
    })
    .await
}

fn addr(s: &TestServer) -> std::net::SocketAddr {
    s.running.component.expect("component listener")
}

async fn next_message(c: &mut Conn) -> Element {
    loop {
        let el = c.next_element().await.expect("a stanza for the component");
        if el.name() == "message" {
            return el;
        }
    }
}

#[tokio::test]
async fn a_component_shakes_hands_and_exchanges_stanzas_with_accounts() {
    let s = server().await;
    let mut comp = component::connect(addr(&s), "push.localhost", SECRET).await;
    s.user("alice").await;
    let mut alice = s.login("alice", "phone").await;
    alice.available().await;
    // To the component's domain and to a JID of a subdomain.
    for to in ["app@push.localhost", "gw@eu.push.localhost"] {
        alice
            .send(&format!(
                "<message to='{to}' type='chat'><body>to {to}</body></message>"
            ))
            .await;
        let m = next_message(&mut comp).await;
        assert_eq!(m.attr("to"), Some(to));
        assert_eq!(m.attr("from"), Some("alice@localhost/phone"));
        assert_eq!(m.ns(), "jabber:component:accept", "{}", String::from(&m));
        let text = m
            .get_child("body", "jabber:component:accept")
            .map(|b| b.text());
        assert_eq!(text, Some(format!("to {to}")));
    }
    // From the component (any JID of its domains) to the account.
    comp.send("<message from='app@push.localhost' to='alice@localhost/phone' type='chat'><body>from the component</body></message>")
        .await;
    let m = alice
        .expect("the component's message", |e| {
            body(e).as_deref() == Some("from the component")
        })
        .await;
    assert_eq!(m.attr("from"), Some("app@push.localhost"));
    comp.send("<iq type='get' id='v1' from='eu.push.localhost' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    let r = comp.next_element().await.expect("version answer");
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(r.attr("to"), Some("eu.push.localhost"));
    // The server lists the component among its services.
    let items = alice
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .await;
    assert!(
        String::from(&items).contains("jid='push.localhost'"),
        "{}",
        String::from(&items)
    );
}

#[tokio::test]
async fn a_wrong_secret_gets_not_authorized_and_an_unknown_domain_host_unknown() {
    let s = server().await;
    let (mut c, id) = component::open(addr(&s), "push.localhost").await;
    let wrong = component::handshake(&id.unwrap(), "not the secret");
    c.send(&format!("<handshake>{wrong}</handshake>")).await;
    assert_eq!(c.stream_error().await, "not-authorized");
    let (mut c, _) = component::open(addr(&s), "other.localhost").await;
    assert_eq!(c.stream_error().await, "host-unknown");
}

#[tokio::test]
async fn a_reconnecting_component_replaces_its_old_stream() {
    let s = server().await;
    let mut old = component::connect(addr(&s), "push.localhost", SECRET).await;
    let mut new = component::connect(addr(&s), "push.localhost", SECRET).await;
    assert_eq!(old.stream_error().await, "conflict");
    s.user("alice").await;
    let mut alice = s.login("alice", "phone").await;
    alice
        .send("<message to='push.localhost' type='chat'><body>to the new one</body></message>")
        .await;
    let m = next_message(&mut new).await;
    assert!(String::from(&m).contains("to the new one"));
}

#[tokio::test]
async fn a_forged_sender_ends_the_component_stream() {
    let s = server().await;
    let mut comp = component::connect(addr(&s), "push.localhost", SECRET).await;
    s.user("alice").await;
    let mut alice = s.login("alice", "phone").await;
    comp.send("<message from='admin@localhost' to='alice@localhost' type='chat'><body>forged</body></message>")
        .await;
    assert_eq!(comp.stream_error().await, "invalid-from");
    assert!(alice
        .gets_within(Duration::from_millis(300), |e| body(e).as_deref()
            == Some("forged"))
        .await
        .is_none());
}

#[tokio::test]
async fn stanzas_to_a_component_that_is_not_connected_bounce() {
    let s = server().await;
    s.user("alice").await;
    let mut alice = s.login("alice", "phone").await;
    alice
        .send("<message to='push.localhost' type='chat' id='nobody'><body>anyone?</body></message>")
        .await;
    let e = alice
        .expect("bounce", |e| e.attr("id") == Some("nobody"))
        .await;
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
    // After it disconnects, the same.
    let comp = component::connect(addr(&s), "push.localhost", SECRET).await;
    drop(comp);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = alice
        .iq(
            "get",
            Some("push.localhost"),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}
