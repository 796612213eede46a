//! Web client helpers: the WebSocket opening handshake (RFC 6455) with the
//! headers a test chooses (subprotocol, Origin, Host), and plain HTTP/1.1
//! GETs for XEP-0156 host-meta. Plain or TLS (ALPN `http/1.1`), bounded.

use std::net::SocketAddr;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

use crate::client::{tls_connector_alpn, Io, WAIT};

pub type WsStream = WebSocketStream<Box<dyn Io>>;

/// What the client puts in its upgrade request.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub path: String,
    /// `Sec-WebSocket-Protocol`; `None` leaves it out.
    pub protocol: Option<String>,
    pub origin: Option<String>,
    /// `Host`; `None`: the address connected to.
    pub host: Option<String>,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake {
            path: "/xmpp-websocket".into(),
            protocol: Some("xmpp".into()),
            origin: None,
            host: None,
        }
    }
}

async fn connect(addr: SocketAddr, tls: bool) -> Box<dyn Io> {
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    if !tls {
        return Box::new(tcp);
    }
    let name = ServerName::try_from("localhost").expect("name");
    let stream = tokio::time::timeout(WAIT, tls_connector_alpn(b"http/1.1").connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake");
    Box::new(stream)
}

/// Open a WebSocket; `Err(status)` when the server answers the upgrade
/// request with another HTTP status than 101.
pub async fn websocket(addr: SocketAddr, tls: bool, hs: &Handshake) -> Result<WsStream, u16> {
    let scheme = if tls { "wss" } else { "ws" };
    let mut req = format!("{scheme}://{addr}{}", hs.path)
        .into_client_request()
        .expect("request");
    let h = req.headers_mut();
    if let Some(p) = &hs.protocol {
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(p).expect("header"),
        );
    }
    if let Some(o) = &hs.origin {
        h.insert("Origin", HeaderValue::from_str(o).expect("header"));
    }
    if let Some(host) = &hs.host {
        h.insert("Host", HeaderValue::from_str(host).expect("header"));
    }
    let io = connect(addr, tls).await;
    let handshake = tokio_tungstenite::client_async_with_config(req, io, None);
    match tokio::time::timeout(WAIT, handshake)
        .await
        .expect("WebSocket handshake timed out")
    {
        // tungstenite checks that the server chose one of our subprotocols.
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("WebSocket handshake failed: {e}"),
    }
}

/// An HTTP response, headers with lower-case names.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with `Connection: close` and the given extra headers
/// (`Host` defaults to the address); reads the whole response.
pub async fn get(
    addr: SocketAddr,
    tls: bool,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    request(addr, tls, "GET", path, headers).await
}

/// Any request without a body, sent as written.
pub async fn request(
    addr: SocketAddr,
    tls: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    send(addr, tls, method, path, headers, None).await
}

/// `POST path` with a body (and `Content-Length`); reads the whole response.
pub async fn post(
    addr: SocketAddr,
    tls: bool,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    send(addr, tls, "POST", path, headers, Some(body)).await
}

async fn send(
    addr: SocketAddr,
    tls: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut io = connect(addr, tls).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body.unwrap_or_default());
    io.write_all(&req).await.expect("write");
    io.flush().await.expect("flush");
    let mut raw = Vec::new();
    // TLS peers may end without close_notify; what was read counts.
    let _ = tokio::time::timeout(WAIT, io.read_to_end(&mut raw))
        .await
        .expect("timed out reading the HTTP response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete HTTP response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
