//! `GET /metrics` on the HTTP listener: the Prometheus text exposition of
//! sessions, stanzas by kind and the account-based MUC counters, fetched
//! over loopback with a plain HTTP/1.1 request, before and after traffic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use roost_testkit::muc::{self, is_presence_from, room};
use roost_testkit::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status line, headers and body of one `GET` over a fresh connection.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("metrics answered in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    (head.to_string(), body.to_string())
}

/// The samples of the exposition, keyed by name with labels.
async fn metrics(s: &TestServer) -> HashMap<String, f64> {
    let (head, body) = get(s.http(), "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("name value");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

fn delta(a: &HashMap<String, f64>, b: &HashMap<String, f64>, k: &str) -> f64 {
    b[k] - a[k]
}

const IN_MESSAGE: &str = "roost_stanzas_in_total{kind=\"message\"}";
const OUT_MESSAGE: &str = "roost_stanzas_out_total{kind=\"message\"}";

#[tokio::test]
async fn metrics_count_sessions_stanzas_and_the_rooms_stanzas_per_account() {
    // The defaults: MUC service on, account-based joining on.
    let s = TestServer::start().await;
    let m0 = metrics(&s).await;
    for name in [
        "roost_connections",
        "roost_connections_max",
        "roost_sessions",
        "roost_account_tasks",
        IN_MESSAGE,
        "roost_stanzas_in_total{kind=\"presence\"}",
        "roost_stanzas_in_total{kind=\"iq\"}",
        OUT_MESSAGE,
        "roost_account_muc_received_total",
        "roost_account_muc_forked_total",
        "roost_session_queue_overflows_total",
    ] {
        assert!(m0.contains_key(name), "{name} missing from {m0:?}");
    }
    assert_eq!(m0["roost_sessions"], 0.0);
    let (_, body) = get(s.http(), "/metrics").await;
    assert!(
        body.contains("# TYPE roost_stanzas_in_total counter"),
        "{body}"
    );
    assert!(body.contains("# TYPE roost_sessions gauge"), "{body}");

    // bob's room, with alice on two devices.
    s.user("alice").await;
    s.user("bob").await;
    let mut home = s.login("alice", "home").await;
    let mut phone = s.login("alice", "phone").await;
    let mut bob = s.login("bob", "desk").await;
    // Account-based joining applies to available sessions.
    for c in [&mut home, &mut phone, &mut bob] {
        c.available().await;
    }
    let r = room("metered");
    bob.create_room(&r, "bob").await;
    home.join_room(&r, "alice").await;
    phone.join_room(&r, "alice").await;
    bob.expect("alice enters", |e| {
        is_presence_from(e, &format!("{r}/alice"))
    })
    .await;
    let m1 = metrics(&s).await;
    assert_eq!(m1["roost_sessions"], 3.0);
    assert!(m1["roost_connections"] >= 3.0);
    assert!(m1["roost_account_tasks"] >= 2.0);

    bob.say(&r, "counted once per account").await;
    for c in [&mut home, &mut phone, &mut bob] {
        c.expect("the message", |e| {
            muc::is_groupchat_with_body(e, "counted once per account")
        })
        .await;
    }
    let m2 = metrics(&s).await;
    // The room sent one stanza per account (alice, bob), forked to three sessions.
    assert_eq!(delta(&m1, &m2, "roost_account_muc_received_total"), 2.0);
    assert_eq!(delta(&m1, &m2, "roost_account_muc_forked_total"), 3.0);
    assert_eq!(delta(&m1, &m2, IN_MESSAGE), 1.0);
    assert_eq!(delta(&m1, &m2, OUT_MESSAGE), 3.0);
    assert_eq!(delta(&m1, &m2, "roost_session_queue_overflows_total"), 0.0);

    // A session that ends is no longer counted.
    phone.close().await;
    let mut sessions = 3.0;
    for _ in 0..100 {
        sessions = metrics(&s).await["roost_sessions"];
        if sessions == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sessions, 2.0);
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let s = TestServer::start().await;
    let (head, _) = get(s.http(), "/metrics/extra").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}
