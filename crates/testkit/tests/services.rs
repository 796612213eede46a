//! Server services over sockets: disco (XEP-0030), ping (XEP-0199),
//! version (XEP-0092), vcard-temp (XEP-0054) and in-band registration and
//! password change (XEP-0077).

use roost_testkit::{Client, Conn, Login, Mech, TestServer};

fn error_condition(e: &minidom::Element) -> Option<String> {
    e.get_child("error", "jabber:client").and_then(|err| {
        err.children()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_string())
    })
}

#[tokio::test]
async fn server_disco_lists_identity_and_features() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = a
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let id = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("server"), Some("im"))
    );
    let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        "urn:xmpp:ping",
        "jabber:iq:version",
        "vcard-temp",
        "jabber:iq:register",
    ] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
}

#[tokio::test]
async fn account_disco_answers_for_the_account() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let r = a
        .iq(
            "get",
            Some("bob@localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert_eq!(r.attr("from"), Some("bob@localhost"));
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let id = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(id.attr("category"), Some("account"));
}

#[tokio::test]
async fn ping_and_version_are_answered() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = a
        .iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let r = a
        .iq("get", None, "<query xmlns='jabber:iq:version'/>")
        .await;
    let q = r.get_child("query", "jabber:iq:version").unwrap();
    assert_eq!(
        q.get_child("name", "jabber:iq:version").unwrap().text(),
        "Roost"
    );
}

#[tokio::test]
async fn vcard_is_stored_and_readable_by_others_but_writable_only_by_its_owner() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login("alice", "home").await;
    let mut b = s.login("bob", "work").await;
    let empty = b
        .iq(
            "get",
            Some("alice@localhost"),
            "<vCard xmlns='vcard-temp'/>",
        )
        .await;
    assert_eq!(empty.attr("type"), Some("result"));
    let r = a
        .iq(
            "set",
            None,
            "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let got = b
        .iq(
            "get",
            Some("alice@localhost"),
            "<vCard xmlns='vcard-temp'/>",
        )
        .await;
    let v = got.get_child("vCard", "vcard-temp").expect("vcard");
    assert_eq!(
        v.get_child("FN", "vcard-temp").unwrap().text(),
        "Alice Liddell"
    );
    let own = a.iq("get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert!(own
        .get_child("vCard", "vcard-temp")
        .unwrap()
        .has_child("NICKNAME", "vcard-temp"));
    let forged = b
        .iq(
            "set",
            Some("alice@localhost"),
            "<vCard xmlns='vcard-temp'><FN>Bob was here</FN></vCard>",
        )
        .await;
    assert_eq!(error_condition(&forged).as_deref(), Some("forbidden"));
}

async fn register(s: &TestServer, user: &str, pw: &str) -> minidom::Element {
    let mut c = Conn::secured(s.c2s(), false).await;
    c.send(&format!(
        "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{user}</username><password>{pw}</password></query></iq>"
    ))
    .await;
    c.next_element().await.expect("registration answer")
}

#[tokio::test]
async fn in_band_registration_creates_an_account_that_can_log_in() {
    let s = TestServer::start_with(|c| c.registration.open = true).await;
    let c = Conn::secured(s.c2s(), false).await;
    assert!(c
        .features
        .unwrap()
        .has_child("register", "http://jabber.org/features/iq-register"));
    let r = register(&s, "newbie", "fresh-pass").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    Client::login(s.c2s(), Login::new("newbie", "fresh-pass"))
        .await
        .unwrap();
    let again = register(&s, "newbie", "other-pass").await;
    assert_eq!(error_condition(&again).as_deref(), Some("conflict"));
}

#[tokio::test]
async fn registration_is_closed_unless_allowed() {
    // Not the localhost domain, so loopback does not open it by default.
    let s = TestServer::start_with(|c| c.domain = "example.test".into()).await;
    let mut c = Conn::connect(s.c2s(), false).await.unwrap();
    c.domain = "example.test".into();
    c.open_stream().await;
    c.starttls().await;
    let f = c.open_stream().await;
    assert!(!f.has_child("register", "http://jabber.org/features/iq-register"));
    c.send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>x</username><password>yyyy</password></query></iq>").await;
    let r = c.next_element().await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[tokio::test]
async fn loopback_registration_is_open_on_the_default_localhost_domain() {
    let s = TestServer::start().await;
    let r = register(&s, "local", "local-pass").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
}

#[tokio::test]
async fn password_change_in_band_takes_effect() {
    let s = TestServer::start().await;
    s.add_user("alice", "old-pass").await;
    let mut a = Client::login(s.c2s(), Login::new("alice", "old-pass"))
        .await
        .unwrap();
    let r = a
        .iq("set", None, "<query xmlns='jabber:iq:register'><username>alice</username><password>new-pass</password></query>")
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let old = Client::login(
        s.c2s(),
        Login::new("alice", "old-pass").mech(Mech::ScramSha1),
    )
    .await;
    assert!(old.is_err());
    Client::login(
        s.c2s(),
        Login::new("alice", "new-pass").mech(Mech::ScramSha1),
    )
    .await
    .unwrap();
}
