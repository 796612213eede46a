//! Regression tests for defects real clients hit (issue "Interop"): each
//! over a real socket against a started server.
//!
//! - RFC 6120 §10.3.3: IQs without `to` are answered for the account.
//! - XEP-0115 §6.3: the server's own caps in stream features, resolvable.
//! - RFC 6455 §4.2.1: a `Sec-WebSocket-Key` of another length is accepted.
//! - `[listen]` lists: one key, several addresses (IPv4 and IPv6 loopback).

use roost_testkit::{Client, Conn, Login, TestServer};

const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

fn features(q: &minidom::Element) -> Vec<String> {
    q.children()
        .filter(|c| c.name() == "feature")
        .filter_map(|f| f.attr("var").map(str::to_string))
        .collect()
}

fn identities(q: &minidom::Element) -> Vec<(String, String)> {
    q.children()
        .filter(|c| c.name() == "identity")
        .map(|i| {
            (
                i.attr("category").unwrap_or_default().to_string(),
                i.attr("type").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn disco_info_without_to_answers_for_the_account_with_pep() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let r = a
        .iq(
            "get",
            None,
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let q = r.get_child("query", DISCO_INFO).expect("query");
    let ids = identities(q);
    assert!(
        ids.contains(&("account".into(), "registered".into())),
        "{ids:?}"
    );
    assert!(ids.contains(&("pubsub".into(), "pep".into())), "{ids:?}");
    assert!(
        !ids.iter().any(|(c, _)| c == "server"),
        "the server answered instead of the account: {ids:?}"
    );
    let f = features(q);
    assert!(
        f.iter()
            .any(|v| v == "http://jabber.org/protocol/pubsub#publish"),
        "{f:?}"
    );
    // The same question to the own bare JID gets the same answer.
    let r2 = a
        .iq(
            "get",
            Some("alice@localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let q2 = r2.get_child("query", DISCO_INFO).expect("query");
    assert_eq!(identities(q2), ids);
    assert_eq!(features(q2), f);
}

#[tokio::test]
async fn server_level_iqs_without_to_are_still_answered() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login("alice", "home").await;
    let ping = a.iq("get", None, "<ping xmlns='urn:xmpp:ping'/>").await;
    assert_eq!(ping.attr("type"), Some("result"), "{}", String::from(&ping));
    let version = a
        .iq("get", None, "<query xmlns='jabber:iq:version'/>")
        .await;
    assert_eq!(version.attr("type"), Some("result"));
    // Disco items of the account (its PEP nodes), not the server's services.
    let items = a
        .iq(
            "get",
            None,
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .await;
    assert_eq!(items.attr("type"), Some("result"));
    let q = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap();
    assert!(
        !q.children()
            .any(|i| i.attr("jid") == Some("conference.localhost")),
        "{}",
        String::from(&items)
    );
}

#[tokio::test]
async fn stream_features_carry_server_caps_that_hash_to_the_disco_answer() {
    let s = TestServer::start().await;
    s.user("alice").await;
    // Before authentication...
    let mut conn = Conn::connect(s.c2s(), false).await.expect("connect");
    let f = conn.open_stream().await;
    let c = f
        .get_child("c", "http://jabber.org/protocol/caps")
        .expect("caps in the first features");
    let (node, ver) = (
        c.attr("node").unwrap().to_string(),
        c.attr("ver").unwrap().to_string(),
    );
    assert_eq!(c.attr("hash"), Some("sha-1"));
    // ...and after binding.
    let mut a = Client::login(s.c2s(), Login::new("alice", "pw-alice"))
        .await
        .expect("login");
    let bound = a
        .conn
        .features
        .clone()
        .expect("features after authentication");
    let c2 = bound
        .get_child("c", "http://jabber.org/protocol/caps")
        .expect("caps after authentication");
    assert_eq!(c2.attr("ver"), Some(ver.as_str()));
    // XEP-0115 §6.2: node#ver resolves to the server's info, hashing to ver.
    let r = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{DISCO_INFO}' node='{node}#{ver}'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let q = r.get_child("query", DISCO_INFO).unwrap();
    assert_eq!(q.attr("node"), Some(format!("{node}#{ver}").as_str()));
    assert_eq!(roost_core::caps::sha1_ver(q).as_deref(), Some(ver.as_str()));
    // A wrong ver is not a node of ours.
    let r = a
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{DISCO_INFO}' node='{node}#nope'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("error"));
}

/// The status line and headers of an upgrade request (the connection
/// stays open after a 101, so only the head is read).
async fn upgrade_head(addr: std::net::SocketAddr, key: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n"
    );
    if let Some(k) = key {
        req.push_str(&format!("Sec-WebSocket-Key: {k}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("response within 10 s")
            .expect("read");
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_websocket_key_of_another_length_is_accepted() {
    let s = TestServer::start().await;
    for key in [
        "c2hvcnQ=",
        "dGhpcyBrZXkgaXMgbG9uZ2VyIHRoYW4gc2l4dGVlbiBieXRlcw==",
    ] {
        let head = upgrade_head(s.http(), Some(key)).await;
        assert!(head.starts_with("HTTP/1.1 101"), "key {key}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("sec-websocket-accept:"),
            "{head}"
        );
    }
    // No key at all is still refused.
    let head = upgrade_head(s.http(), None).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[tokio::test]
async fn a_listener_key_with_a_list_listens_on_ipv4_and_ipv6_loopback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let v4 = format!("127.0.0.1:{port}");
    let v6 = format!("[::1]:{port}");
    let s = TestServer::start_with(|c| {
        c.listen.c2s = roost_server::config::Addresses(vec![v4.clone(), v6.clone()]);
    })
    .await;
    s.user("alice").await;
    for addr in [&v4, &v6] {
        let client = Client::login(addr.parse().unwrap(), Login::new("alice", "pw-alice"))
            .await
            .unwrap_or_else(|e| panic!("login over {addr}: {e}"));
        client.close().await;
    }
}
