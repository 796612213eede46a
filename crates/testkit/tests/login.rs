//! RFC 6120 negotiation over real sockets: STARTTLS and direct TLS, each
//! SASL mechanism, wrong credentials, resource binding and conflicts.

use roost_testkit::{client::body, Client, Conn, Login, Mech, TestServer};

#[tokio::test]
async fn login_with_each_mechanism_over_starttls() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    for mech in [Mech::ScramSha256, Mech::ScramSha1, Mech::Plain] {
        let c = Client::login(s.c2s(), Login::new("alice", "wonderland").mech(mech))
            .await
            .unwrap_or_else(|e| panic!("{mech:?}: {e}"));
        assert!(c.jid.starts_with("alice@localhost/"), "{}", c.jid);
        c.close().await;
    }
}

#[tokio::test]
async fn login_with_each_mechanism_over_direct_tls() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    for mech in [Mech::ScramSha256, Mech::ScramSha1, Mech::Plain] {
        let c = Client::login(
            s.c2s_tls(),
            Login::new("alice", "wonderland").mech(mech).direct_tls(),
        )
        .await
        .unwrap_or_else(|e| panic!("{mech:?}: {e}"));
        c.close().await;
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_not_authorized() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    for (user, mech) in [
        ("alice", Mech::ScramSha256),
        ("alice", Mech::ScramSha1),
        ("alice", Mech::Plain),
        ("nobody", Mech::ScramSha256),
        ("nobody", Mech::Plain),
    ] {
        let err = Client::login(s.c2s(), Login::new(user, "wrong").mech(mech))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} {mech:?} logged in with a wrong password"));
        assert_eq!(err, "not-authorized", "{user} {mech:?}");
    }
}

#[tokio::test]
async fn starttls_is_required_before_authentication() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    let mut c = Conn::connect(s.c2s(), false).await.unwrap();
    let features = c.open_stream().await;
    let starttls = features
        .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
        .expect("starttls offered");
    assert!(starttls.has_child("required", "urn:ietf:params:xml:ns:xmpp-tls"));
    assert!(features
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .is_none());
    let err = c
        .authenticate("alice", "wonderland", Mech::ScramSha256)
        .await;
    assert_eq!(err, Err("encryption-required".into()));
}

#[tokio::test]
async fn plain_is_offered_only_over_tls_and_scram_first() {
    let s = TestServer::start().await;
    let c = Conn::secured(s.c2s(), false).await;
    let mechs: Vec<String> = c
        .features
        .as_ref()
        .unwrap()
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .unwrap()
        .children()
        .map(|m| m.text())
        .collect();
    // Channel-bound SCRAM first (over TLS), then SCRAM, PLAIN last.
    assert_eq!(
        mechs,
        [
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN"
        ]
    );
}

#[tokio::test]
async fn server_generates_a_resource_when_none_is_requested() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut conn = Conn::secured(s.c2s(), false).await;
    conn.authenticate("alice", "pw-alice", Mech::ScramSha256)
        .await
        .unwrap();
    conn.open_stream().await;
    let jid = conn.bind(None).await;
    assert!(jid.starts_with("alice@localhost/") && jid.len() > "alice@localhost/".len());
}

#[tokio::test]
async fn binding_the_same_resource_replaces_the_older_session_with_conflict() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut first = s.login("alice", "phone").await;
    let mut second = s.login("alice", "phone").await;
    assert_eq!(first.conn.stream_error().await, "conflict");
    // The new session works.
    second
        .send("<message to='alice@localhost/phone'><body>still here</body></message>")
        .await;
    let m = second.expect("message", |e| e.name() == "message").await;
    assert_eq!(body(&m).as_deref(), Some("still here"));
}

#[tokio::test]
async fn legacy_session_request_is_accepted() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "r").await;
    let r = a
        .iq(
            "set",
            None,
            "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
}

#[tokio::test]
async fn wrong_host_in_stream_header_is_host_unknown() {
    let s = TestServer::start().await;
    let mut c = Conn::connect(s.c2s(), false).await.unwrap();
    c.send("<?xml version='1.0'?><stream:stream to='elsewhere.example' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").await;
    assert_eq!(c.stream_error().await, "host-unknown");
}

#[tokio::test]
async fn repeated_failures_close_the_stream() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    let mut c = Conn::secured(s.c2s(), false).await;
    for _ in 0..5 {
        assert_eq!(
            c.authenticate("alice", "bad", Mech::Plain).await,
            Err("not-authorized".into())
        );
    }
    assert_eq!(c.stream_error().await, "policy-violation");
}
