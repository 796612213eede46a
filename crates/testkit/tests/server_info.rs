//! What the server says about itself: XEP-0202 entity time and XEP-0157
//! contact addresses in its disco#info (whose XEP-0115 hash covers them).

use roost_features::contact_info::ContactConfig;
use roost_testkit::TestServer;

#[tokio::test]
async fn the_server_tells_its_time() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    let r = a
        .iq("get", Some("localhost"), "<time xmlns='urn:xmpp:time'/>")
        .await;
    let t = r.get_child("time", "urn:xmpp:time").expect("time");
    assert_eq!(
        t.get_child("tzo", "urn:xmpp:time").map(|e| e.text()),
        Some("+00:00".into())
    );
    let utc = t.get_child("utc", "urn:xmpp:time").unwrap().text();
    let when = roost_proto::datetime::parse_xep82(&utc).expect("XEP-0082 time");
    let skew = std::time::SystemTime::now()
        .duration_since(when)
        .unwrap_or_default();
    assert!(skew.as_secs() < 5, "{utc}");
    let r = a
        .iq("set", Some("localhost"), "<time xmlns='urn:xmpp:time'/>")
        .await;
    assert_eq!(r.attr("type"), Some("error"));
}

#[tokio::test]
async fn contact_addresses_are_in_the_server_disco_and_its_caps() {
    let s = TestServer::start_with(|c| {
        c.contact = ContactConfig {
            abuse: vec!["mailto:abuse@example.org".into()],
            admin: vec![
                "xmpp:admin@localhost".into(),
                "mailto:admin@example.org".into(),
            ],
            ..Default::default()
        }
    })
    .await;
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
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
    let form = q.get_child("x", "jabber:x:data").expect("XEP-0128 form");
    let values = |var: &str| -> Vec<String> {
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .map(|f| f.children().map(|v| v.text()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        values("FORM_TYPE"),
        ["http://jabber.org/network/serverinfo"]
    );
    assert_eq!(values("abuse-addresses"), ["mailto:abuse@example.org"]);
    assert_eq!(values("admin-addresses").len(), 2);
    assert!(values("support-addresses").is_empty());
    // The server's caps (XEP-0115) hash this disco#info, form included.
    let ver = roost_core::caps::sha1_ver(q).expect("hashable");
    let caps = s.running.server.stream_caps();
    assert_eq!(caps.attr("ver"), Some(ver.as_str()));
}
