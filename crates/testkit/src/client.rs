//! A minimal XMPP client for tests: STARTTLS or direct TLS, SCRAM or PLAIN,
//! resource binding, then raw stanzas in and parsed elements out. Every
//! wait is bounded so that a broken server fails a test instead of hanging.
//! A `Conn` can also run over WebSocket (RFC 7395, `Conn::websocket`): one
//! element per message, `<open/>` and `<close/>` for the stream's ends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use minidom::Element;
use roost_sasl::{Hash, ScramClient};
use roost_stream::{writer, Limits, StreamEvent, XmlReader};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub const NS_CLIENT: &str = "jabber:client";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    ScramSha256,
    ScramSha1,
    Plain,
}

#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
    pub mech: Mech,
    pub resource: Option<String>,
    pub direct_tls: bool,
    pub domain: String,
}

impl Login {
    pub fn new(user: &str, password: &str) -> Login {
        Login {
            user: user.into(),
            password: password.into(),
            mech: Mech::ScramSha256,
            resource: None,
            direct_tls: false,
            domain: "localhost".into(),
        }
    }
    pub fn mech(mut self, m: Mech) -> Login {
        self.mech = m;
        self
    }
    pub fn resource(mut self, r: &str) -> Login {
        self.resource = Some(r.into());
        self
    }
    pub fn direct_tls(mut self) -> Login {
        self.direct_tls = true;
        self
    }
    pub fn domain(mut self, d: &str) -> Login {
        self.domain = d.into();
        self
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    tls_connector_alpn(b"xmpp-client")
}

/// A connector that accepts any certificate and offers one ALPN protocol.
pub(crate) fn tls_connector_alpn(alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let cfg = roost_insecure_tls::client_config(&[alpn]).expect("tls versions");
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A byte stream under a connection (TCP, TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection at any stage of negotiation.
pub struct Conn {
    io: Box<dyn Io>,
    tcp_only: Option<TcpStream>,
    reader: XmlReader,
    queue: VecDeque<StreamEvent>,
    buf: Vec<u8>,
    pub domain: String,
    /// The last `<stream:features/>` received.
    pub features: Option<Element>,
    pub closed: bool,
    /// Set for RFC 7395 framing.
    ws: Option<crate::web::WsStream>,
    /// The server's certificate (DER), once TLS is up.
    pub peer_certificate: Option<Vec<u8>>,
    /// RFC 9266 tls-exporter data of the TLS session (TLS 1.3).
    pub exporter: Option<Vec<u8>>,
}

impl Conn {
    /// TCP connect; with `direct_tls`, TLS right away (XEP-0368).
    pub async fn connect(addr: SocketAddr, direct_tls: bool) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut conn = Conn {
            io: Box::new(tokio::io::empty()),
            tcp_only: None,
            reader: XmlReader::new(Limits {
                max_stanza_bytes: 16 << 20,
                max_depth: 256,
            }),
            queue: VecDeque::new(),
            buf: vec![0; 65536],
            domain: "localhost".into(),
            features: None,
            closed: false,
            ws: None,
            peer_certificate: None,
            exporter: None,
        };
        if direct_tls {
            let name = ServerName::try_from("localhost").expect("name");
            let tls = tls_connector().connect(name, tcp).await?;
            conn.peer_certificate = leaf(&tls);
            conn.exporter = exporter(&tls);
            conn.io = Box::new(tls);
        } else {
            conn.tcp_only = Some(tcp);
        }
        Ok(conn)
    }

    /// RFC 7395: a WebSocket to `/xmpp-websocket` asking for the `xmpp`
    /// subprotocol, `wss` when `tls`.
    pub async fn websocket(addr: SocketAddr, tls: bool) -> Conn {
        let ws = crate::web::websocket(addr, tls, &crate::web::Handshake::default())
            .await
            .unwrap_or_else(|status| panic!("WebSocket handshake refused with HTTP {status}"));
        Conn::over_websocket(ws)
    }

    /// A connection over an established WebSocket.
    pub fn over_websocket(ws: crate::web::WsStream) -> Conn {
        Conn {
            io: Box::new(tokio::io::empty()),
            tcp_only: None,
            reader: XmlReader::new(Limits::default()),
            queue: VecDeque::new(),
            buf: Vec::new(),
            domain: "localhost".into(),
            features: None,
            closed: false,
            ws: Some(ws),
            peer_certificate: None,
            exporter: None,
        }
    }

    pub fn is_websocket(&self) -> bool {
        self.ws.is_some()
    }

    /// The next WebSocket message as sent, for framing checks; `None` when
    /// the connection closed.
    pub async fn next_message(&mut self) -> Option<String> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let ws = self.ws.as_mut().expect("a WebSocket connection");
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("timed out waiting for the server");
            match msg {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    self.closed = true;
                    return None;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Close the stream: `</stream:stream>`, or `<close/>` over WebSocket.
    pub async fn send_stream_end(&mut self) {
        if self.ws.is_some() {
            self.send(&roost_stream::websocket::close()).await;
        } else {
            self.send_raw(writer::STREAM_END).await;
        }
    }

    async fn write_bytes(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some(ws) = self.ws.as_mut() {
            use futures_util::SinkExt;
            let text = String::from_utf8_lossy(data).into_owned();
            return ws
                .send(tokio_tungstenite::tungstenite::Message::text(text))
                .await
                .map_err(std::io::Error::other);
        }
        if let Some(tcp) = self.tcp_only.as_mut() {
            tcp.write_all(data).await?;
            return tcp.flush().await;
        }
        self.io.write_all(data).await?;
        self.io.flush().await
    }

    async fn read_some(&mut self) -> std::io::Result<usize> {
        let n = if let Some(tcp) = self.tcp_only.as_mut() {
            tcp.read(&mut self.buf).await?
        } else {
            self.io.read(&mut self.buf).await?
        };
        Ok(n)
    }

    /// Send raw bytes, for malformed input.
    pub async fn send_raw(&mut self, data: &[u8]) {
        self.write_bytes(data).await.expect("write");
    }

    pub async fn send(&mut self, xml: &str) {
        self.send_raw(xml.as_bytes()).await;
    }

    /// Send, telling whether the write went through (the crash tests write
    /// until the server is gone).
    pub async fn try_send(&mut self, xml: &str) -> bool {
        self.write_bytes(xml.as_bytes()).await.is_ok()
    }

    /// Next stream event, or `None` when the server closed the connection.
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            if self.closed {
                return None;
            }
            if self.ws.is_some() {
                let text = self.next_message().await?;
                let limits = Limits {
                    max_stanza_bytes: 16 << 20,
                    max_depth: 256,
                };
                match roost_stream::websocket::read_message(&text, limits) {
                    Ok(Some(ev)) => self.queue.push_back(ev),
                    Ok(None) => {}
                    Err(e) => panic!("server sent bad XML ({e}): {text}"),
                }
                continue;
            }
            let n = tokio::time::timeout(WAIT, self.read_some())
                .await
                .expect("timed out waiting for the server")
                .unwrap_or(0);
            if n == 0 {
                self.closed = true;
                return None;
            }
            let mut evs = Vec::new();
            let data = self.buf[..n].to_vec();
            if let Err(e) = self.reader.feed(&data, &mut evs) {
                panic!(
                    "server sent bad XML ({e}): {}",
                    String::from_utf8_lossy(&data)
                );
            }
            self.queue.extend(evs);
        }
    }

    pub async fn next_element(&mut self) -> Option<Element> {
        loop {
            match self.next_event().await? {
                StreamEvent::Element(e) => return Some(e),
                StreamEvent::End => return None,
                StreamEvent::Header(_) => {}
            }
        }
    }

    /// Read until the server closes; returns the stream error's condition
    /// (or "" for a clean close).
    pub async fn stream_error(&mut self) -> String {
        while let Some(ev) = self.next_event().await {
            if let StreamEvent::Element(e) = ev {
                if e.name() == "error" && e.ns() == "http://etherx.jabber.org/streams" {
                    let cond = e
                        .children()
                        .find(|c| c.name() != "text")
                        .map(|c| c.name().to_string())
                        .unwrap_or_default();
                    // Drain to the close.
                    while self.next_event().await.is_some() {}
                    return cond;
                }
            }
        }
        String::new()
    }

    /// Open (or restart) the stream and read the features.
    pub async fn open_stream(&mut self) -> Element {
        self.reader.reset();
        let header = if self.ws.is_some() {
            format!(
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{}' version='1.0' xml:lang='en'/>",
                self.domain
            )
        } else {
            format!(
            "<?xml version='1.0'?><stream:stream to='{}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>",
            self.domain
        )
        };
        self.send(&header).await;
        self.read_features().await
    }

    /// The peer's stream header (skipped) and features.
    async fn read_features(&mut self) -> Element {
        loop {
            match self
                .next_event()
                .await
                .expect("stream closed before features")
            {
                StreamEvent::Header(_) => {}
                StreamEvent::Element(e) if e.name() == "features" => {
                    self.features = Some(e.clone());
                    return e;
                }
                StreamEvent::Element(e) => panic!("expected features, got {}", String::from(&e)),
                StreamEvent::End => panic!("stream ended before features"),
            }
        }
    }

    pub async fn starttls(&mut self) {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let proceed = self.next_element().await.expect("proceed");
        assert_eq!(proceed.name(), "proceed");
        let tcp = self.tcp_only.take().expect("plain tcp");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = tls_connector()
            .connect(name, tcp)
            .await
            .expect("tls handshake");
        self.peer_certificate = leaf(&tls);
        self.exporter = exporter(&tls);
        self.io = Box::new(tls);
    }

    /// STARTTLS with a client configuration of the test's own (a peer
    /// server presenting a certificate).
    pub async fn starttls_with(&mut self, cfg: Arc<rustls::ClientConfig>) {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let proceed = self.next_element().await.expect("proceed");
        assert_eq!(proceed.name(), "proceed", "{}", String::from(&proceed));
        let tcp = self.tcp_only.take().expect("plain tcp");
        let name = ServerName::try_from(self.domain.clone()).expect("name");
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .expect("tls handshake");
        self.io = Box::new(tls);
    }

    /// Open (or restart) a server-to-server stream (`jabber:server`, with
    /// the dialback prefix) from `from`; the features.
    pub async fn open_server_stream(&mut self, from: &str) -> Element {
        self.reader.reset();
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{from}' to='{}' version='1.0'>",
            self.domain
        );
        self.send(&header).await;
        self.read_features().await
    }

    /// Connect, TLS, and stop at the SASL features.
    pub async fn secured(addr: SocketAddr, direct_tls: bool) -> Conn {
        Conn::secured_for(addr, direct_tls, "localhost").await
    }

    /// `secured`, for a server whose domain is `domain`.
    pub async fn secured_for(addr: SocketAddr, direct_tls: bool, domain: &str) -> Conn {
        let mut c = Conn::connect(addr, direct_tls).await.expect("connect");
        c.domain = domain.to_string();
        c.open_stream().await;
        if !direct_tls {
            c.starttls().await;
            c.open_stream().await;
        }
        c
    }

    /// SASL; `Ok` on success, `Err(condition)` on failure.
    pub async fn authenticate(
        &mut self,
        user: &str,
        password: &str,
        mech: Mech,
    ) -> Result<(), String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        match mech {
            Mech::Plain => {
                let payload = format!("\0{user}\0{password}");
                self.send(&format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
                    b64.encode(payload)
                ))
                .await;
                let r = self.next_element().await.ok_or("closed")?;
                sasl_outcome(&r)
            }
            Mech::ScramSha1 | Mech::ScramSha256 => {
                let hash = if mech == Mech::ScramSha1 {
                    Hash::Sha1
                } else {
                    Hash::Sha256
                };
                let mut scram = ScramClient::new(hash, user, password);
                self.send(&format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{}</auth>",
                    hash.mechanism(),
                    b64.encode(scram.client_first())
                ))
                .await;
                let challenge = self.next_element().await.ok_or("closed")?;
                if challenge.name() != "challenge" {
                    return sasl_outcome(&challenge);
                }
                let data = b64
                    .decode(challenge.text().trim())
                    .map_err(|e| e.to_string())?;
                let fin = scram
                    .handle_server_first(&data)
                    .map_err(|e| e.to_string())?;
                self.send(&format!(
                    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                    b64.encode(fin)
                ))
                .await;
                let r = self.next_element().await.ok_or("closed")?;
                sasl_outcome(&r)?;
                let v = b64.decode(r.text().trim()).map_err(|e| e.to_string())?;
                scram
                    .verify_server_final(&v)
                    .map_err(|e| format!("server signature: {e}"))
            }
        }
    }

    /// SASL2 (XEP-0388) with SCRAM-SHA-256 and `inline` requests (XML put
    /// inside `<authenticate/>`: user-agent, Bind 2, resume). The server's
    /// last answer: `<success/>` (its signature checked) or `<failure/>`.
    pub async fn authenticate2(&mut self, user: &str, password: &str, inline: &str) -> Element {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut scram = ScramClient::new(Hash::Sha256, user, password);
        self.send(&format!(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>{}</initial-response>{inline}</authenticate>",
            b64.encode(scram.client_first())
        ))
        .await;
        let challenge = self.next_element().await.expect("SASL2 answer");
        if challenge.name() != "challenge" {
            return challenge;
        }
        let data = b64.decode(challenge.text().trim()).expect("base64");
        let fin = scram.handle_server_first(&data).expect("server-first");
        self.send(&format!(
            "<response xmlns='urn:xmpp:sasl:2'>{}</response>",
            b64.encode(fin)
        ))
        .await;
        let r = self.next_element().await.expect("SASL2 outcome");
        if r.name() == "success" {
            let extra = r
                .get_child("additional-data", "urn:xmpp:sasl:2")
                .map(|d| d.text())
                .unwrap_or_default();
            let v = b64.decode(extra.trim()).expect("base64");
            scram.verify_server_final(&v).expect("server signature");
        }
        r
    }

    /// XEP-0198 resumption on an authenticated, restarted stream; returns
    /// the `<resumed/>` or `<failed/>` answer.
    pub async fn resume(&mut self, previd: &str, h: u32) -> Element {
        self.send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>"
        ))
        .await;
        self.next_element().await.expect("resume answer")
    }

    /// Bind a resource; returns the full JID.
    pub async fn bind(&mut self, resource: Option<&str>) -> String {
        let res = resource
            .map(|r| format!("<resource>{r}</resource>"))
            .unwrap_or_default();
        self.send(&format!(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{res}</bind></iq>"
        ))
        .await;
        let r = self.next_element().await.expect("bind result");
        assert_eq!(
            r.attr("type"),
            Some("result"),
            "bind failed: {}",
            String::from(&r)
        );
        r.get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .and_then(|b| b.get_child("jid", "urn:ietf:params:xml:ns:xmpp-bind"))
            .map(|j| j.text())
            .expect("bound jid")
    }
}

fn sasl_outcome(r: &Element) -> Result<(), String> {
    match r.name() {
        "success" => Ok(()),
        "failure" => Err(r
            .children()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_string())
            .unwrap_or_default()),
        other => Err(format!("unexpected {other}")),
    }
}

/// The server's leaf certificate on a client TLS stream.
fn leaf(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> Option<Vec<u8>> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
}

/// RFC 9266 tls-exporter data, as the client computes it.
fn exporter(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> Option<Vec<u8>> {
    tls.get_ref()
        .1
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .ok()
        .map(|k| k.to_vec())
}

/// A logged-in session.
pub struct Client {
    pub conn: Conn,
    pub jid: String,
    /// Elements read while waiting for something else.
    held: VecDeque<Element>,
    next_id: u64,
}

impl Client {
    /// A session bound some other way (SASL2 and Bind 2).
    pub fn from_bound(conn: Conn, jid: String) -> Client {
        Client {
            conn,
            jid,
            held: VecDeque::new(),
            next_id: 1,
        }
    }

    pub async fn login(addr: SocketAddr, login: Login) -> Result<Client, String> {
        let mut conn = Conn::secured_for(addr, login.direct_tls, &login.domain).await;
        conn.authenticate(&login.user, &login.password, login.mech)
            .await?;
        conn.open_stream().await;
        let jid = conn.bind(login.resource.as_deref()).await;
        Ok(Client {
            conn,
            jid,
            held: VecDeque::new(),
            next_id: 1,
        })
    }

    /// Log in over WebSocket (RFC 7395; `wss` when `tls`) and bind.
    pub async fn login_ws(addr: SocketAddr, tls: bool, login: Login) -> Result<Client, String> {
        let mut conn = Conn::websocket(addr, tls).await;
        conn.domain = login.domain.clone();
        conn.open_stream().await;
        conn.authenticate(&login.user, &login.password, login.mech)
            .await?;
        conn.open_stream().await;
        let jid = conn.bind(login.resource.as_deref()).await;
        Ok(Client {
            conn,
            jid,
            held: VecDeque::new(),
            next_id: 1,
        })
    }

    pub fn bare(&self) -> String {
        self.jid.split('/').next().unwrap_or_default().to_string()
    }

    pub async fn send(&mut self, xml: &str) {
        self.conn.send(xml).await;
    }

    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("t{}", self.next_id)
    }

    /// The next element, whatever it is.
    pub async fn recv(&mut self) -> Element {
        if let Some(e) = self.held.pop_front() {
            return e;
        }
        self.conn.next_element().await.expect("connection closed")
    }

    /// The first element matching `pred`; others are kept for later.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
        if let Some(i) = self.held.iter().position(&pred) {
            return self.held.remove(i).expect("held");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.conn.next_element()).await;
            match next {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(e)) => self.held.push_back(e),
                Ok(None) => panic!(
                    "{}: connection closed while waiting for {what}; held: {}",
                    self.jid,
                    self.dump()
                ),
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; held: {}",
                    self.jid,
                    self.dump()
                ),
            }
        }
    }

    /// Whether anything matching arrives within `wait`.
    pub async fn gets_within(
        &mut self,
        wait: Duration,
        pred: impl Fn(&Element) -> bool,
    ) -> Option<Element> {
        if let Some(i) = self.held.iter().position(&pred) {
            return self.held.remove(i);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.conn.next_element()).await {
                Ok(Some(e)) if pred(&e) => return Some(e),
                Ok(Some(e)) => self.held.push_back(e),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Where a stanza already received (and held) matching `pred` is.
    pub fn held_position(&self, pred: impl Fn(&Element) -> bool) -> Option<usize> {
        self.held.iter().position(pred)
    }

    /// Take the held stanza at `i` (from `held_position`).
    pub fn take_held(&mut self, i: usize) -> Element {
        self.held.remove(i).expect("held")
    }

    /// Read (and hold) whatever arrives within `wait`.
    pub async fn collect_for(&mut self, wait: Duration) {
        let _ = self.gets_within(wait, |_| false).await;
    }

    fn dump(&self) -> String {
        self.held
            .iter()
            .map(String::from)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Send an IQ and wait for its response.
    pub async fn iq(&mut self, kind: &str, to: Option<&str>, payload: &str) -> Element {
        let id = self.new_id();
        let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
        self.send(&format!("<iq type='{kind}' id='{id}'{to}>{payload}</iq>"))
            .await;
        self.expect(&format!("iq {id}"), |e| {
            e.name() == "iq" && e.attr("id") == Some(id.as_str())
        })
        .await
    }

    /// Get the roster (marks the session interested in pushes).
    pub async fn roster(&mut self) -> Element {
        let r = self
            .iq("get", None, "<query xmlns='jabber:iq:roster'/>")
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
        r
    }

    /// Send initial presence and wait for its reflection.
    pub async fn available(&mut self) {
        self.send("<presence/>").await;
        let me = self.jid.clone();
        self.expect("own presence", |e| {
            e.name() == "presence"
                && e.attr("from") == Some(me.as_str())
                && e.attr("type").is_none()
        })
        .await;
    }

    /// XEP-0198: enable with resumption; returns the resumption id.
    pub async fn enable_sm(&mut self) -> String {
        self.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            .await;
        let e = self
            .expect("enabled", |e| e.name() == "enabled" || e.name() == "failed")
            .await;
        assert_eq!(e.name(), "enabled", "{}", String::from(&e));
        e.attr("id").expect("resumption id").to_string()
    }

    /// Ask the server how many of our stanzas it handled.
    pub async fn server_handled(&mut self) -> u32 {
        self.send("<r xmlns='urn:xmpp:sm:3'/>").await;
        let a = self
            .expect("ack", |e| e.name() == "a" && e.ns() == "urn:xmpp:sm:3")
            .await;
        a.attr("h").and_then(|h| h.parse().ok()).expect("h")
    }

    /// Close the stream politely and wait for the server's close.
    pub async fn close(mut self) {
        self.conn.send_stream_end().await;
        let _ = tokio::time::timeout(WAIT, async {
            while self.conn.next_event().await.is_some() {}
        })
        .await;
    }

    /// Drop the TCP connection without closing the stream.
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// Child text helper for assertions.
pub fn body(e: &Element) -> Option<String> {
    e.get_child("body", NS_CLIENT).map(|b| b.text())
}
