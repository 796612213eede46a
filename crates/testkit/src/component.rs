//! A test external component (XEP-0114): open a `jabber:component:accept`
//! stream to the server's component port and shake hands.

use std::net::SocketAddr;

use roost_stream::StreamEvent;
use sha1::Digest;

use crate::Conn;

/// Open the stream for `domain`; the stream id the server answered with.
pub async fn open(addr: SocketAddr, domain: &str) -> (Conn, Option<String>) {
    let mut c = Conn::connect(addr, false).await.expect("connect");
    c.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
    ))
    .await;
    match c.next_event().await {
        Some(StreamEvent::Header(h)) => (c, h.id),
        other => panic!("expected a stream header, got {other:?}"),
    }
}

/// hex(SHA-1(stream id + secret)), XEP-0114 §3.
pub fn handshake(stream_id: &str, secret: &str) -> String {
    sha1::Sha1::digest(format!("{stream_id}{secret}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A connected, authenticated component for `domain`.
pub async fn connect(addr: SocketAddr, domain: &str, secret: &str) -> Conn {
    let (mut c, id) = open(addr, domain).await;
    let id = id.expect("a stream id");
    c.send(&format!(
        "<handshake>{}</handshake>",
        handshake(&id, secret)
    ))
    .await;
    let ok = c.next_element().await.expect("handshake answer");
    assert_eq!(ok.name(), "handshake", "{}", String::from(&ok));
    c
}
