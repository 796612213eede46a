//! XEP-0065 SOCKS5 Bytestreams proxy over real sockets: disco and the
//! streamhost query; a 2 MiB file relayed between two users, both ways;
//! activation refused to strangers, without a pair, over the per-user
//! limit; SOCKS5 input refused (greeting, address type, third connection);
//! streams closed when idle or never activated.

use std::net::SocketAddr;
use std::time::Duration;

use minidom::Element;
use roost_core::config::ComponentConfig;
use roost_testkit::muc::error_condition;
use roost_testkit::{component, Client, TestServer};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NS: &str = "http://jabber.org/protocol/bytestreams";
const PROXY: &str = "proxy.localhost";
/// Longer than any close the server owes us.
const WAIT: Duration = Duration::from_secs(5);

async fn server(tweak: impl FnOnce(&mut roost_server::Config)) -> TestServer {
    TestServer::start_with(tweak).await
}

/// Alice (requester) and Bob (target), logged in.
async fn alice_and_bob(s: &TestServer) -> (Client, Client) {
    s.user("alice").await;
    s.user("bob").await;
    (
        s.login("alice", "laptop").await,
        s.login("bob", "phone").await,
    )
}

/// XEP-0065 §5.3.2: SHA1(SID + requester JID + target JID), hex.
fn stream_address(sid: &str, requester: &str, target: &str) -> String {
    let digest = Sha1::digest(format!("{sid}{requester}{target}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn connect_request(atyp: u8, name: &[u8]) -> Vec<u8> {
    let mut r = vec![5, 1, 0, atyp, name.len() as u8];
    r.extend_from_slice(name);
    r.extend_from_slice(&[0, 0]);
    r
}

/// RFC 1928 greeting and CONNECT for `address`; the reply's REP.
async fn socks5_connect(proxy: SocketAddr, address: &str) -> (TcpStream, u8) {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0u8; 2];
    tcp.read_exact(&mut method).await.unwrap();
    assert_eq!(method, [5, 0]);
    tcp.write_all(&connect_request(3, address.as_bytes()))
        .await
        .unwrap();
    let mut head = [0u8; 5];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut head))
        .await
        .expect("a SOCKS5 reply")
        .unwrap();
    let mut rest = vec![0u8; usize::from(head[4]) + 2];
    tcp.read_exact(&mut rest).await.unwrap();
    if head[1] == 0 {
        // XEP-0065 §5.3.2: BND.ADDR repeats DST.ADDR.
        assert_eq!(head[3], 3);
        assert_eq!(&rest[..rest.len() - 2], address.as_bytes());
    }
    (tcp, head[1])
}

/// Everything until the server closes the connection, within `WAIT`.
async fn read_until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut got))
        .await
        .expect("the proxy closes the connection")
        .expect("a clean close");
    got
}

async fn activate(requester: &mut Client, sid: &str, target: &str) -> Element {
    requester
        .iq(
            "set",
            Some(PROXY),
            &format!("<query xmlns='{NS}' sid='{sid}'><activate>{target}</activate></query>"),
        )
        .await
}

/// Target, then requester, connect for `sid`; the requester activates.
async fn open_stream(
    s: &TestServer,
    requester: &mut Client,
    target: &Client,
    sid: &str,
) -> (TcpStream, TcpStream) {
    let address = stream_address(sid, &requester.jid, &target.jid);
    let (target_side, rep) = socks5_connect(s.proxy65(), &address).await;
    assert_eq!(rep, 0);
    let (requester_side, rep) = socks5_connect(s.proxy65(), &address).await;
    assert_eq!(rep, 0);
    let r = activate(requester, sid, &target.jid).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    (requester_side, target_side)
}

#[tokio::test]
async fn the_proxy_is_listed_by_the_server_and_identifies_as_bytestreams() {
    let s = server(|_| {}).await;
    s.user("alice").await;
    let mut a = s.login("alice", "laptop").await;
    let items = a
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .await;
    assert!(
        String::from(&items).contains("jid='proxy.localhost'"),
        "{}",
        String::from(&items)
    );
    let info = a
        .iq(
            "get",
            Some(PROXY),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let q = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("disco#info");
    assert!(q.children().any(|c| c.name() == "identity"
        && c.attr("category") == Some("proxy")
        && c.attr("type") == Some("bytestreams")));
    assert!(q
        .children()
        .any(|c| c.name() == "feature" && c.attr("var") == Some(NS)));
}

#[tokio::test]
async fn a_local_user_gets_the_streamhost_address() {
    let s = server(|_| {}).await;
    s.user("alice").await;
    let mut a = s.login("alice", "laptop").await;
    let r = a
        .iq("get", Some(PROXY), &format!("<query xmlns='{NS}'/>"))
        .await;
    let host = r
        .get_child("query", NS)
        .and_then(|q| q.get_child("streamhost", NS))
        .unwrap_or_else(|| panic!("{}", String::from(&r)));
    assert_eq!(host.attr("jid"), Some(PROXY));
    assert_eq!(host.attr("host"), Some("127.0.0.1"));
    assert_eq!(
        host.attr("port"),
        Some(s.proxy65().port().to_string().as_str())
    );
}

#[tokio::test]
async fn a_remote_entity_is_forbidden_to_use_the_proxy() {
    let s = server(|c| {
        c.component = vec![ComponentConfig {
            domain: "gateway.localhost".into(),
            secret: "secret".into(),
        }]
    })
    .await;
    let addr = s.running.component.expect("component listener");
    let mut gateway = component::connect(addr, "gateway.localhost", "secret").await;
    gateway
        .send(&format!(
            "<iq type='get' id='s1' from='user@gateway.localhost/x' to='{PROXY}'><query xmlns='{NS}'/></iq>"
        ))
        .await;
    let r = loop {
        let el = gateway.next_element().await.expect("an answer");
        if el.name() == "iq" {
            break el;
        }
    };
    assert_eq!(r.attr("type"), Some("error"));
    assert!(
        String::from(&r).contains("<forbidden"),
        "{}",
        String::from(&r)
    );
}

#[tokio::test]
async fn two_users_relay_a_two_mebibyte_file_both_ways() {
    let s = server(|_| {}).await;
    let (mut alice, bob) = alice_and_bob(&s).await;
    let (mut requester_side, mut target_side) = open_stream(&s, &mut alice, &bob, "file-1").await;
    let file: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sent = file.clone();
    let writer = tokio::spawn(async move {
        requester_side.write_all(&sent).await.unwrap();
        requester_side.shutdown().await.unwrap();
        let mut answer = Vec::new();
        requester_side.read_to_end(&mut answer).await.unwrap();
        answer
    });
    let mut received = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        target_side.read_to_end(&mut received),
    )
    .await
    .expect("the file arrives")
    .unwrap();
    assert_eq!(received.len(), file.len());
    assert!(received == file, "the bytes differ");
    target_side.write_all(b"thanks").await.unwrap();
    target_side.shutdown().await.unwrap();
    let answer = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    assert_eq!(answer, b"thanks");
    let metrics = roost_core::metrics::render(&s.running.server);
    assert!(
        metrics.contains("roost_proxy65_activated_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("roost_proxy65_bytes_total {}", file.len() + 6)),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stranger_cannot_activate_someone_elses_stream() {
    let s = server(|_| {}).await;
    let (alice, bob) = alice_and_bob(&s).await;
    s.user("mallory").await;
    let mut mallory = s.login("mallory", "evil").await;
    let address = stream_address("sid-2", &alice.jid, &bob.jid);
    let (_t, _) = socks5_connect(s.proxy65(), &address).await;
    let (_r, _) = socks5_connect(s.proxy65(), &address).await;
    // XEP-0065 §6.3.5: the from address is not the requester's.
    let r = activate(&mut mallory, "sid-2", &bob.jid).await;
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    // Nor can the target activate it.
    let mut bob = bob;
    let r = activate(&mut bob, "sid-2", &alice.jid).await;
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn activation_needs_both_parties_connected() {
    let s = server(|_| {}).await;
    let (mut alice, bob) = alice_and_bob(&s).await;
    let r = activate(&mut alice, "sid-3", &bob.jid).await;
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    let address = stream_address("sid-3", &alice.jid, &bob.jid);
    let (_target, rep) = socks5_connect(s.proxy65(), &address).await;
    assert_eq!(rep, 0);
    // XEP-0065 §6.3.5: only one party is connected.
    let r = activate(&mut alice, "sid-3", &bob.jid).await;
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
}

#[tokio::test]
async fn activation_without_sid_or_target_is_a_bad_request() {
    let s = server(|_| {}).await;
    let (mut alice, bob) = alice_and_bob(&s).await;
    let no_sid = alice
        .iq(
            "set",
            Some(PROXY),
            &format!(
                "<query xmlns='{NS}'><activate>{}</activate></query>",
                bob.jid
            ),
        )
        .await;
    assert_eq!(error_condition(&no_sid).as_deref(), Some("bad-request"));
    let no_target = alice
        .iq(
            "set",
            Some(PROXY),
            &format!("<query xmlns='{NS}' sid='x'/>"),
        )
        .await;
    assert_eq!(error_condition(&no_target).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn a_stream_already_active_cannot_be_activated_again() {
    let s = server(|_| {}).await;
    let (mut alice, bob) = alice_and_bob(&s).await;
    let _sockets = open_stream(&s, &mut alice, &bob, "sid-again").await;
    let r = activate(&mut alice, "sid-again", &bob.jid).await;
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
}

#[tokio::test]
async fn streams_beyond_the_per_user_limit_get_resource_constraint() {
    let s = server(|c| c.proxy65.max_streams_per_user = 1).await;
    let (mut alice, bob) = alice_and_bob(&s).await;
    let _first = open_stream(&s, &mut alice, &bob, "one").await;
    let address = stream_address("two", &alice.jid, &bob.jid);
    let (_t, _) = socks5_connect(s.proxy65(), &address).await;
    let (_r, _) = socks5_connect(s.proxy65(), &address).await;
    let r = activate(&mut alice, "two", &bob.jid).await;
    assert_eq!(error_condition(&r).as_deref(), Some("resource-constraint"));
}

#[tokio::test]
async fn a_greeting_without_no_authentication_gets_ff_and_is_closed() {
    let s = server(|_| {}).await;
    let mut tcp = TcpStream::connect(s.proxy65()).await.unwrap();
    // Only USERNAME/PASSWORD (RFC 1929) offered.
    tcp.write_all(&[5, 1, 2]).await.unwrap();
    assert_eq!(read_until_closed(&mut tcp).await, [5, 0xFF]);
    // Not SOCKS5 at all: closed without an answer.
    let mut tcp = TcpStream::connect(s.proxy65()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(read_until_closed(&mut tcp).await.is_empty());
}

#[tokio::test]
async fn connect_requests_other_than_a_stream_address_are_refused() {
    let s = server(|_| {}).await;
    for (request, rep) in [
        // IPv4 address: address type not supported.
        (connect_request(1, &[127, 0, 0, 1]), 0x08),
        // A host name rather than a hash.
        (connect_request(3, b"example.org"), 0x04),
        // BIND: command not supported.
        (
            {
                let mut r = connect_request(3, &[b'a'; 40]);
                r[1] = 2;
                r
            },
            0x07,
        ),
    ] {
        let mut tcp = TcpStream::connect(s.proxy65()).await.unwrap();
        tcp.write_all(&[5, 1, 0]).await.unwrap();
        tcp.write_all(&request).await.unwrap();
        let got = read_until_closed(&mut tcp).await;
        assert_eq!(&got[..2], &[5, 0], "method chosen");
        assert_eq!(got[2], 5, "a SOCKS5 reply");
        assert_eq!(got[3], rep, "{got:?}");
    }
}

#[tokio::test]
async fn a_third_connection_for_a_stream_is_refused() {
    let s = server(|_| {}).await;
    let address = stream_address("sid-4", "a@localhost/x", "b@localhost/y");
    let (_target, first) = socks5_connect(s.proxy65(), &address).await;
    let (_requester, second) = socks5_connect(s.proxy65(), &address).await;
    let (mut third, rep) = socks5_connect(s.proxy65(), &address).await;
    assert_eq!((first, second, rep), (0, 0, 0x02));
    assert!(read_until_closed(&mut third).await.is_empty());
}

#[tokio::test]
async fn an_idle_stream_is_closed() {
    let s = server(|c| c.proxy65.idle_timeout = 1).await;
    let (mut alice, bob) = alice_and_bob(&s).await;
    let (mut requester_side, mut target_side) = open_stream(&s, &mut alice, &bob, "idle").await;
    // One byte crosses, then silence.
    requester_side.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    target_side.read_exact(&mut one).await.unwrap();
    assert!(read_until_closed(&mut target_side).await.is_empty());
    assert!(read_until_closed(&mut requester_side).await.is_empty());
}

#[tokio::test]
async fn a_stream_never_activated_is_closed() {
    let s = server(|c| c.proxy65.pending_timeout = 1).await;
    let address = stream_address("sid-5", "a@localhost/x", "b@localhost/y");
    let (mut target, rep) = socks5_connect(s.proxy65(), &address).await;
    assert_eq!(rep, 0);
    assert!(read_until_closed(&mut target).await.is_empty());
    // The address is free again afterwards.
    let (_again, rep) = socks5_connect(s.proxy65(), &address).await;
    assert_eq!(rep, 0);
}

#[tokio::test]
async fn a_silent_socks_client_is_closed() {
    let s = server(|c| c.proxy65.pending_timeout = 1).await;
    let mut tcp = TcpStream::connect(s.proxy65()).await.unwrap();
    tcp.write_all(&[5]).await.unwrap();
    assert!(read_until_closed(&mut tcp).await.is_empty());
}

#[tokio::test]
async fn with_the_proxy_off_there_is_no_service_and_no_listener() {
    let s = server(|c| c.proxy65.enabled = false).await;
    assert!(s.running.proxy65.is_none());
    s.user("alice").await;
    let mut a = s.login("alice", "laptop").await;
    let r = a
        .iq("get", Some(PROXY), &format!("<query xmlns='{NS}'/>"))
        .await;
    assert_eq!(r.attr("type"), Some("error"), "{}", String::from(&r));
}
