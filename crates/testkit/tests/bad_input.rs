//! Hostile and broken input gets the error RFC 6120 defines, and never
//! disturbs other sessions.

use std::time::Duration;

use roost_testkit::{client::body, Conn, TestServer};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// Open a plain stream, send `after` and return the stream error.
async fn error_for(s: &TestServer, after: &str) -> String {
    let mut c = Conn::connect(s.c2s(), false).await.unwrap();
    c.send(HEADER).await;
    c.send(after).await;
    c.stream_error().await
}

#[tokio::test]
async fn malformed_xml_is_not_well_formed() {
    let s = TestServer::start().await;
    assert_eq!(
        error_for(&s, "<message><body></message>").await,
        "not-well-formed"
    );
    assert_eq!(error_for(&s, "<a x='1' x='2'/>").await, "not-well-formed");
}

#[tokio::test]
async fn dtds_comments_entities_and_pis_are_restricted_xml() {
    let s = TestServer::start().await;
    for bad in [
        "<!DOCTYPE x [<!ENTITY boom 'boom'>]>",
        "<!-- a comment -->",
        "<?php echo 1; ?>",
        "<message>&boom;</message>",
    ] {
        assert_eq!(error_for(&s, bad).await, "restricted-xml", "{bad}");
    }
}

#[tokio::test]
async fn stanzas_before_authentication_are_not_authorized() {
    let s = TestServer::start().await;
    assert_eq!(
        error_for(&s, "<message to='a@localhost'><body>x</body></message>").await,
        "not-authorized"
    );
    let mut c = Conn::secured(s.c2s(), false).await;
    c.send("<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    assert_eq!(c.stream_error().await, "not-authorized");
}

#[tokio::test]
async fn unknown_top_level_element_is_unsupported_stanza_type() {
    let s = TestServer::start().await;
    assert_eq!(
        error_for(&s, "<foo xmlns='urn:example:bar'/>").await,
        "unsupported-stanza-type"
    );
}

#[tokio::test]
async fn wrong_stream_namespace_is_invalid_namespace() {
    let s = TestServer::start().await;
    let mut c = Conn::connect(s.c2s(), false).await.unwrap();
    c.send("<?xml version='1.0'?><stream:stream to='localhost' xmlns:stream='urn:not-streams' version='1.0'>").await;
    assert_eq!(c.stream_error().await, "invalid-namespace");
}

#[tokio::test]
async fn oversized_stanza_is_a_policy_violation_and_others_keep_working() {
    let s = TestServer::start_with(|c| c.limits.max_stanza_size = 8 * 1024).await;
    s.user("alice").await;
    s.user("bob").await;
    s.user("mallory").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    b.available().await;
    let mut m = s.login("mallory", "evil").await;
    let big = "x".repeat(64 * 1024);
    m.send(&format!(
        "<message to='bob@localhost'><body>{big}</body></message>"
    ))
    .await;
    assert_eq!(m.conn.stream_error().await, "policy-violation");
    a.send("<message to='bob@localhost/work'><body>fine</body></message>")
        .await;
    let got = b.expect("message", |e| e.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("fine"));
}

#[tokio::test]
async fn spoofed_from_is_invalid_from() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.send("<message from='bob@localhost/x' to='alice@localhost'><body>x</body></message>")
        .await;
    assert_eq!(a.conn.stream_error().await, "invalid-from");
}

#[tokio::test]
async fn malformed_to_gets_jid_malformed() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.send("<message to='a@b@c' id='bad'><body>x</body></message>")
        .await;
    let e = a.expect("error", |e| e.attr("id") == Some("bad")).await;
    assert_eq!(e.attr("type"), Some("error"));
    assert!(e
        .get_child("error", "jabber:client")
        .unwrap()
        .children()
        .any(|c| c.name() == "jid-malformed"));
}

#[tokio::test]
async fn idle_unauthenticated_connections_time_out() {
    let s = TestServer::start_with(|c| c.limits.auth_timeout = 1).await;
    let mut c = Conn::connect(s.c2s(), false).await.unwrap();
    c.send(HEADER).await;
    let err = tokio::time::timeout(Duration::from_secs(5), c.stream_error())
        .await
        .expect("closed in time");
    assert_eq!(err, "connection-timeout");
}

#[tokio::test]
async fn whitespace_keepalives_are_accepted() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    a.send(" \n \t ").await;
    let r = a
        .iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(r.attr("type"), Some("result"));
}

#[tokio::test]
async fn unknown_iq_gets_service_unavailable() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = a
        .iq("get", None, "<query xmlns='urn:example:nothing'/>")
        .await;
    assert_eq!(r.attr("type"), Some("error"));
    assert!(r
        .get_child("error", "jabber:client")
        .unwrap()
        .children()
        .any(|c| c.name() == "service-unavailable"));
    let r = a.iq("get", None, "").await;
    assert!(r
        .get_child("error", "jabber:client")
        .unwrap()
        .children()
        .any(|c| c.name() == "bad-request"));
}

#[tokio::test]
async fn shutdown_closes_streams_with_system_shutdown() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let server = s.running.server.clone();
    let stop = tokio::spawn(async move { server.shutdown(Duration::from_secs(3)).await });
    assert_eq!(a.conn.stream_error().await, "system-shutdown");
    stop.await.unwrap();
}
