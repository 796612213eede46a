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

fn last(r: &minidom::Element) -> Option<(u64, String)> {
    let q = r.get_child("query", "jabber:iq:last")?;
    Some((q.attr("seconds")?.parse().ok()?, q.text()))
}

fn condition(r: &minidom::Element) -> Option<String> {
    r.get_child("error", "jabber:client")?
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_string())
}

#[tokio::test]
async fn last_activity_tells_uptime_and_when_a_contact_left_to_those_who_may_know() {
    let s = TestServer::start().await;
    for u in ["alice", "bob", "eve"] {
        s.user(u).await;
    }
    let mut a = s.login("alice", "phone").await;
    a.available().await;
    // XEP-0012 §5: the server's uptime.
    let r = a
        .iq("get", Some("localhost"), "<query xmlns='jabber:iq:last'/>")
        .await;
    let (uptime, _) = last(&r).expect("uptime");
    assert!(uptime < 60, "{uptime}");
    // bob lets alice see his presence.
    let mut b = s.login("bob", "laptop").await;
    b.available().await;
    roost_testkit::federation::subscribe(&mut a, &mut b, "bob@localhost").await;
    a.expect("subscribed", |e| e.attr("type") == Some("subscribed"))
        .await;
    // Online: zero seconds (§3).
    let r = a
        .iq(
            "get",
            Some("bob@localhost"),
            "<query xmlns='jabber:iq:last'/>",
        )
        .await;
    assert_eq!(last(&r), Some((0, String::new())), "{}", String::from(&r));
    // bob leaves with a status.
    b.send("<presence type='unavailable'><status>Heading home</status></presence>")
        .await;
    a.expect("bob leaves", |e| {
        e.attr("type") == Some("unavailable")
            && e.attr("from").is_some_and(|f| f.starts_with("bob@"))
    })
    .await;
    drop(b);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = a
        .iq(
            "get",
            Some("bob@localhost"),
            "<query xmlns='jabber:iq:last'/>",
        )
        .await;
    let (secs, status) = last(&r).expect("last activity");
    assert!((1..30).contains(&secs), "{secs}");
    assert_eq!(status, "Heading home");
    // eve has no subscription: forbidden (§3).
    let mut e = s.login("eve", "x").await;
    let r = e
        .iq(
            "get",
            Some("bob@localhost"),
            "<query xmlns='jabber:iq:last'/>",
        )
        .await;
    assert_eq!(
        condition(&r).as_deref(),
        Some("forbidden"),
        "{}",
        String::from(&r)
    );
    // It survives a restart.
    drop((a, e));
    let s = s.restart().await;
    let mut b = s.login("bob", "laptop").await;
    let r = b
        .iq(
            "get",
            Some("bob@localhost"),
            "<query xmlns='jabber:iq:last'/>",
        )
        .await;
    // bob asks about himself while connected: zero.
    assert_eq!(last(&r).map(|l| l.0), Some(0));
    let mut a = s.login("alice", "phone").await;
    drop(b);
    // Until the session is gone the account still has one; wait for it.
    let mut found = None;
    for _ in 0..20 {
        let r = a
            .iq(
                "get",
                Some("bob@localhost"),
                "<query xmlns='jabber:iq:last'/>",
            )
            .await;
        if let Some((secs, status)) = last(&r) {
            if secs > 0 {
                found = Some(status);
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found.as_deref(), Some("Heading home"));
}
