//! A lean c2s client for load (RFC 6120): plain TCP, STARTTLS or direct
//! TLS (XEP-0368), SASL SCRAM-SHA-1/-256 or PLAIN with roost-sasl, resource
//! binding, XEP-0077 registration and XEP-0045 joins; SASL2 with Bind 2,
//! FAST token logins and inline XEP-0198 resumption (XEP-0388/0386/0484). One task per
//! connection, no thread; a small read buffer; the incremental reader of
//! roost-stream. Certificates are not verified: benchmarks only.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine;
use minidom::Element;
use roost_sasl::{Hash, SaltedPassword, ScramClient};

type SaltedKey = (&'static str, String, String);

/// SaltedPasswords of earlier successful logins, by mechanism, user and password.
fn salted_cache() -> &'static std::sync::Mutex<std::collections::HashMap<SaltedKey, SaltedPassword>>
{
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<SaltedKey, SaltedPassword>>,
    > = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// After a successful exchange, keep its SaltedPassword for the next login.
fn keep_salted(key: SaltedKey, scram: &ScramClient) {
    if let Some(salted) = scram.salted_password() {
        salted_cache().lock().unwrap().insert(key, salted.clone());
    }
}
use roost_stream::{writer, Limits, StreamEvent, XmlReader};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const NS_CLIENT: &str = "jabber:client";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_SASL2: &str = "urn:xmpp:sasl:2";
pub const NS_SM: &str = "urn:xmpp:sm:3";

/// Bytes read from the socket at a time; small, since 20,000 idle
/// connections each keep one.
const READ_BUF: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// No TLS (only where the server allows authentication without it).
    Plain,
    /// STARTTLS on the client port (RFC 6120 §5).
    Starttls,
    /// TLS from the first byte (XEP-0368).
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mech {
    #[value(name = "SCRAM-SHA-1")]
    ScramSha1,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "PLAIN")]
    Plain,
}

impl Mech {
    pub fn name(self) -> &'static str {
        match self {
            Mech::ScramSha1 => "SCRAM-SHA-1",
            Mech::ScramSha256 => "SCRAM-SHA-256",
            Mech::Plain => "PLAIN",
        }
    }
}

/// Where and how to connect; shared by every connection of a run.
pub struct Target {
    pub addr: SocketAddr,
    /// Further nodes of a cluster: connections go to `addr` and these in
    /// turn (`--server a,b,c`).
    pub more: Vec<SocketAddr>,
    turn: Arc<std::sync::atomic::AtomicUsize>,
    pub domain: String,
    pub tls: TlsMode,
    pub mech: Mech,
    pub timeout: Duration,
    tls_config: Arc<rustls::ClientConfig>,
}

impl Target {
    pub fn new(
        addr: SocketAddr,
        domain: &str,
        tls: TlsMode,
        mech: Mech,
        timeout: Duration,
    ) -> Target {
        // Benchmarks run against self-signed certificates on loopback.
        let alpn: &[&[u8]] = if tls == TlsMode::Direct {
            &[b"xmpp-client"]
        } else {
            &[]
        };
        let cfg =
            roost_insecure_tls::client_config(alpn).expect("rustls supports its default versions");
        Target {
            addr,
            more: Vec::new(),
            turn: Arc::default(),
            domain: domain.to_string(),
            tls,
            mech,
            timeout,
            tls_config: Arc::new(cfg),
        }
    }
}

impl Target {
    /// The same target, every connection to `addr` (a client coming back
    /// to the node it was connected to, as one that cached the address).
    pub fn pinned(&self, addr: SocketAddr) -> Target {
        Target {
            addr,
            more: Vec::new(),
            turn: Arc::default(),
            domain: self.domain.clone(),
            tls: self.tls,
            mech: self.mech,
            timeout: self.timeout,
            tls_config: self.tls_config.clone(),
        }
    }

    /// Spread connections over these nodes too.
    pub fn with_more(mut self, more: Vec<SocketAddr>) -> Target {
        self.more = more;
        self
    }

    /// The address of the next connection.
    fn next_addr(&self) -> SocketAddr {
        if self.more.is_empty() {
            return self.addr;
        }
        let i =
            self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (self.more.len() + 1);
        if i == 0 {
            self.addr
        } else {
            self.more[i - 1]
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Between taking the TCP stream for the TLS handshake and getting it back.
    Gone,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// One client connection at any stage.
pub struct Conn {
    /// The server address this connection went to (a cluster's node).
    pub addr: SocketAddr,
    stream: Stream,
    reader: XmlReader,
    buf: Box<[u8]>,
    queue: VecDeque<StreamEvent>,
    domain: String,
    /// The full JID once bound.
    pub jid: String,
    next_id: u64,
    /// XEP-0198: stanzas received since stream management was enabled
    /// (the `h` a resumption reports), when it is.
    pub handled: Option<u32>,
    /// Times the client waited for the server after writing: XMPP round
    /// trips (the TCP and TLS handshakes not included).
    pub round_trips: u32,
    wrote: bool,
}

fn reader_limits() -> Limits {
    Limits {
        max_stanza_bytes: 16 << 20,
        max_depth: 256,
    }
}

impl Conn {
    /// TCP connect (and TLS for direct TLS), then the first stream's features.
    pub async fn connect(t: &Target) -> anyhow::Result<(Conn, Element)> {
        let deadline = Instant::now() + t.timeout;
        let addr = t.next_addr();
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connect {addr}"))?;
        tcp.set_nodelay(true)?;
        let mut c = Conn {
            addr,
            stream: Stream::Tcp(tcp),
            reader: XmlReader::new(reader_limits()),
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            queue: VecDeque::new(),
            domain: t.domain.clone(),
            jid: String::new(),
            next_id: 0,
            handled: None,
            round_trips: 0,
            wrote: false,
        };
        if t.tls == TlsMode::Direct {
            c.handshake(t, deadline).await?;
        }
        let mut features = c.open_stream(deadline).await?;
        if t.tls == TlsMode::Starttls {
            if features.get_child("starttls", NS_TLS).is_none() {
                bail!("the server offers no STARTTLS");
            }
            c.send_str("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                .await?;
            let proceed = c.next_element(deadline).await?;
            if proceed.name() != "proceed" {
                bail!("STARTTLS refused: {}", String::from(&proceed));
            }
            c.handshake(t, deadline).await?;
            features = c.open_stream(deadline).await?;
        }
        Ok((c, features))
    }

    async fn handshake(&mut self, t: &Target, deadline: Instant) -> anyhow::Result<()> {
        let Stream::Tcp(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            bail!("TLS twice");
        };
        let name = ServerName::try_from(t.domain.clone()).context("server name")?;
        let connector = tokio_rustls::TlsConnector::from(t.tls_config.clone());
        let tls = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
            .await
            .context("TLS handshake timed out")?
            .context("TLS handshake")?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Full login: connect, TLS, SASL, bind. No presence is sent.
    pub async fn login(
        t: &Target,
        user: &str,
        password: &str,
        resource: &str,
    ) -> anyhow::Result<Conn> {
        let deadline = Instant::now() + t.timeout;
        let (mut c, features) = Conn::connect(t).await?;
        c.authenticate(t.mech, &features, user, password, deadline)
            .await?;
        let features = c.open_stream(deadline).await?;
        c.bind(resource, &features, deadline).await?;
        Ok(c)
    }

    /// SASL2 (XEP-0388) with SCRAM and `inline` requests (Bind 2, a FAST
    /// token request, ...); the server's `<success/>`. With a Bind 2
    /// request that enables stream management, counting starts here.
    pub async fn sasl2_login(
        t: &Target,
        user: &str,
        password: &str,
        inline: &str,
    ) -> anyhow::Result<(Conn, Element)> {
        let deadline = Instant::now() + t.timeout;
        let (mut c, _features) = Conn::connect(t).await?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let (hash, name) = match t.mech {
            Mech::ScramSha1 => (Hash::Sha1, "SCRAM-SHA-1"),
            _ => (Hash::Sha256, "SCRAM-SHA-256"),
        };
        let cache_key = (name, user.to_string(), password.to_string());
        let mut scram = ScramClient::new(hash, user, password);
        if let Some(kept) = salted_cache().lock().unwrap().get(&cache_key) {
            scram = scram.with_salted_password(kept.clone());
        }
        c.send_str(&format!(
            "<authenticate xmlns='{NS_SASL2}' mechanism='{name}'><initial-response>{}</initial-response>{inline}</authenticate>",
            b64.encode(scram.client_first())
        ))
        .await?;
        let ch = c.next_element(deadline).await?;
        if ch.name() != "challenge" {
            bail!("SASL2 refused: {}", String::from(&ch));
        }
        let fin = scram
            .handle_server_first(&b64.decode(ch.text().trim())?)
            .map_err(|e| anyhow!("SCRAM: {e}"))?;
        c.send_str(&format!(
            "<response xmlns='{NS_SASL2}'>{}</response>",
            b64.encode(fin)
        ))
        .await?;
        let ok = c.next_element(deadline).await?;
        if ok.name() != "success" {
            bail!("SASL2 failed: {}", String::from(&ok));
        }
        let v = ok
            .get_child("additional-data", NS_SASL2)
            .map(|d| d.text())
            .unwrap_or_default();
        scram
            .verify_server_final(&b64.decode(v.trim())?)
            .map_err(|e| anyhow!("server signature: {e}"))?;
        keep_salted(cache_key, &scram);
        c.after_sasl2_success(&ok, deadline).await?;
        Ok((c, ok))
    }

    /// XEP-0484 token login with `inline` requests (a resumption, ...):
    /// one round trip; the server's `<success/>`.
    pub async fn fast_login(
        t: &Target,
        user: &str,
        token: &str,
        inline: &str,
    ) -> anyhow::Result<(Conn, Element)> {
        let deadline = Instant::now() + t.timeout;
        let (mut c, _features) = Conn::connect(t).await?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut msg = format!("{user}\0").into_bytes();
        msg.extend(roost_sasl::ht::initiator(token.as_bytes(), b""));
        c.send_str(&format!(
            "<authenticate xmlns='{NS_SASL2}' mechanism='HT-SHA-256-NONE'><initial-response>{}</initial-response>{inline}<fast xmlns='urn:xmpp:fast:0'/></authenticate>",
            b64.encode(msg)
        ))
        .await?;
        let ok = c.next_element(deadline).await?;
        if ok.name() != "success" {
            bail!("FAST login failed: {}", String::from(&ok));
        }
        c.after_sasl2_success(&ok, deadline).await?;
        Ok((c, ok))
    }

    /// What a SASL2 `<success/>` set up: the bound JID, stream
    /// management; the features that follow it are read.
    async fn after_sasl2_success(&mut self, ok: &Element, deadline: Instant) -> anyhow::Result<()> {
        if let Some(a) = ok.get_child("authorization-identifier", NS_SASL2) {
            self.jid = a.text();
        }
        let sm_on = ok
            .get_child("bound", "urn:xmpp:bind:0")
            .is_some_and(|b| b.has_child("enabled", NS_SM));
        if sm_on {
            self.handled = Some(0);
        }
        let f = self.next_element(deadline).await?;
        if f.name() != "features" {
            bail!("expected features after success, got {}", String::from(&f));
        }
        Ok(())
    }

    /// Drop the connection without closing the stream, as a phone losing
    /// its network does.
    pub fn lose(self) {}

    pub async fn send_str(&mut self, s: &str) -> std::io::Result<()> {
        self.send_bytes(s.as_bytes()).await
    }

    pub async fn send_bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.wrote = true;
        self.stream.write_all(b).await?;
        self.stream.flush().await
    }

    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("l{}", self.next_id)
    }

    /// Read once from the socket (cancel-safe), parse, queue the events.
    /// `Ok(false)` when the server closed the connection.
    pub async fn read_some(&mut self) -> anyhow::Result<bool> {
        if std::mem::take(&mut self.wrote) {
            self.round_trips += 1;
        }
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            return Ok(false);
        }
        let mut evs = Vec::new();
        self.reader
            .feed(&self.buf[..n], &mut evs)
            .map_err(|e| anyhow!("server sent bad XML: {e}"))?;
        self.queue.extend(evs);
        Ok(true)
    }

    pub async fn next_event(&mut self, deadline: Instant) -> anyhow::Result<StreamEvent> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(ev);
            }
            let open = tokio::time::timeout_at(deadline, self.read_some())
                .await
                .context("timed out waiting for the server")??;
            if !open {
                bail!("the server closed the connection");
            }
        }
    }

    /// The next top-level element; a stream error or the end is an error.
    pub async fn next_element(&mut self, deadline: Instant) -> anyhow::Result<Element> {
        loop {
            match self.next_event(deadline).await? {
                StreamEvent::Element(e) if e.name() == "error" && e.ns() == STREAM_NS => {
                    bail!("stream error: {}", first_child_name(&e))
                }
                StreamEvent::Element(e) => {
                    if let Some(h) = self.handled.as_mut() {
                        if matches!(e.name(), "message" | "presence" | "iq") {
                            *h = h.wrapping_add(1);
                        }
                    }
                    return Ok(e);
                }
                StreamEvent::End => bail!("the server closed the stream"),
                StreamEvent::Header(_) => {}
            }
        }
    }

    /// Wait for an element matching `pred`, dropping the others.
    pub async fn wait_for(
        &mut self,
        deadline: Instant,
        mut pred: impl FnMut(&Element) -> bool,
    ) -> anyhow::Result<Element> {
        loop {
            let e = self.next_element(deadline).await?;
            if pred(&e) {
                return Ok(e);
            }
        }
    }

    /// Open (or restart) the stream; returns its features.
    async fn open_stream(&mut self, deadline: Instant) -> anyhow::Result<Element> {
        self.reader.reset();
        self.queue.clear();
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>",
            self.domain
        );
        self.send_str(&header).await?;
        let f = self.next_element(deadline).await?;
        if f.name() != "features" {
            bail!("expected stream features, got {}", String::from(&f));
        }
        Ok(f)
    }

    async fn authenticate(
        &mut self,
        mech: Mech,
        features: &Element,
        user: &str,
        password: &str,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let offered: Vec<String> = features
            .get_child("mechanisms", NS_SASL)
            .map(|m| m.children().map(|c| c.text().trim().to_string()).collect())
            .unwrap_or_default();
        if !offered.iter().any(|m| m == mech.name()) {
            let offered = if offered.is_empty() {
                "none; TLS first?".to_string()
            } else {
                offered.join(" ")
            };
            bail!("{} not offered (offered: {offered})", mech.name());
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let hash = match mech {
            Mech::Plain => {
                let payload = format!("\0{user}\0{password}");
                self.send_str(&format!(
                    "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
                    b64.encode(payload)
                ))
                .await?;
                let r = self.next_element(deadline).await?;
                return sasl_outcome(&r);
            }
            Mech::ScramSha1 => Hash::Sha1,
            Mech::ScramSha256 => Hash::Sha256,
        };
        // Like real clients, keep the SaltedPassword between logins (RFC
        // 5802 §5.1), so that the tool's own PBKDF2 does not eat the
        // cores it shares with the server under test.
        let cache_key = (mech.name(), user.to_string(), password.to_string());
        let mut scram = ScramClient::new(hash, user, password);
        if let Some(kept) = salted_cache().lock().unwrap().get(&cache_key) {
            scram = scram.with_salted_password(kept.clone());
        }
        self.send_str(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{}</auth>",
            mech.name(),
            b64.encode(scram.client_first())
        ))
        .await?;
        let challenge = self.next_element(deadline).await?;
        if challenge.name() != "challenge" {
            return sasl_outcome(&challenge).and(Err(anyhow!("no SCRAM challenge")));
        }
        let data = b64.decode(challenge.text().trim())?;
        let fin = scram
            .handle_server_first(&data)
            .map_err(|e| anyhow!("SCRAM: {e}"))?;
        self.send_str(&format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            b64.encode(fin)
        ))
        .await?;
        let mut r = self.next_element(deadline).await?;
        // Some servers send the server-final-message as a challenge.
        if r.name() == "challenge" {
            let v = b64.decode(r.text().trim())?;
            scram
                .verify_server_final(&v)
                .map_err(|e| anyhow!("server signature: {e}"))?;
            self.send_str(&format!("<response xmlns='{NS_SASL}'/>"))
                .await?;
            r = self.next_element(deadline).await?;
            sasl_outcome(&r)?;
            keep_salted(cache_key, &scram);
            return Ok(());
        }
        sasl_outcome(&r)?;
        let v = b64.decode(r.text().trim())?;
        scram
            .verify_server_final(&v)
            .map_err(|e| anyhow!("server signature: {e}"))?;
        keep_salted(cache_key, &scram);
        Ok(())
    }

    async fn bind(
        &mut self,
        resource: &str,
        features: &Element,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        if features.get_child("bind", NS_BIND).is_none() {
            bail!("the server offers no resource binding");
        }
        self.send_str(&format!(
            "<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
            escape(resource)
        ))
        .await?;
        let r = self
            .wait_for(deadline, |e| {
                e.name() == "iq" && e.attr("id") == Some("bind")
            })
            .await?;
        if r.attr("type") != Some("result") {
            bail!("bind failed: {}", String::from(&r));
        }
        self.jid = r
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child("jid", NS_BIND))
            .map(|j| j.text())
            .context("no bound JID")?;
        // RFC 3921 sessions, for servers that still require them.
        if let Some(s) = features.get_child("session", NS_SESSION) {
            if !s.has_child("optional", NS_SESSION) {
                let r = self
                    .iq(
                        deadline,
                        "set",
                        None,
                        &format!("<session xmlns='{NS_SESSION}'/>"),
                    )
                    .await?;
                if r.attr("type") != Some("result") {
                    bail!("session failed: {}", String::from(&r));
                }
            }
        }
        Ok(())
    }

    /// Send an IQ and wait for its answer (other elements are dropped).
    pub async fn iq(
        &mut self,
        deadline: Instant,
        kind: &str,
        to: Option<&str>,
        payload: &str,
    ) -> anyhow::Result<Element> {
        self.iq_after(deadline, "", kind, to, payload).await
    }

    /// `iq`, with `before` (other stanzas) sent in the same write.
    async fn iq_after(
        &mut self,
        deadline: Instant,
        before: &str,
        kind: &str,
        to: Option<&str>,
        payload: &str,
    ) -> anyhow::Result<Element> {
        let id = self.new_id();
        let to = to
            .map(|t| format!(" to='{}'", escape(t)))
            .unwrap_or_default();
        self.send_str(&format!(
            "{before}<iq type='{kind}' id='{id}'{to}>{payload}</iq>"
        ))
        .await?;
        self.wait_for(deadline, |e| {
            e.name() == "iq"
                && e.attr("id") == Some(id.as_str())
                && matches!(e.attr("type"), Some("result") | Some("error"))
        })
        .await
    }

    /// Initial presence, then an XMPP ping whose answer proves the server
    /// processed the presence (same stream, in order).
    /// Both go in one write, as a client that has both ready sends them.
    pub async fn available_and_ping(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let r = self
            .iq_after(
                deadline,
                "<presence/>",
                "get",
                None,
                "<ping xmlns='urn:xmpp:ping'/>",
            )
            .await?;
        if r.attr("type") != Some("result") {
            bail!("ping failed: {}", String::from(&r));
        }
        Ok(())
    }

    /// Join a room (XEP-0045 §7.2) and wait for the self-presence (status
    /// 110). A new, locked room (201) is made an instant room (§10.1.2).
    /// An error presence is returned as `Err(JoinError)`.
    pub async fn join_room(
        &mut self,
        room: &str,
        nick: &str,
        deadline: Instant,
    ) -> anyhow::Result<Result<Element, String>> {
        self.send_str(&format!(
            "<presence to='{}/{}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>",
            escape(room),
            escape(nick)
        ))
        .await?;
        let room_prefix = format!("{room}/");
        let p = self
            .wait_for(deadline, |e| {
                e.name() == "presence"
                    && e.attr("from").is_some_and(|f| f.starts_with(&room_prefix))
                    && (e.attr("type") == Some("error") || is_self_presence(e))
            })
            .await?;
        if p.attr("type") == Some("error") {
            return Ok(Err(error_condition(&p)));
        }
        if has_status(&p, "201") {
            let r = self
                .iq(
                    deadline,
                    "set",
                    Some(room),
                    &format!(
                        "<query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"
                    ),
                )
                .await?;
            if r.attr("type") != Some("result") {
                bail!("instant room refused: {}", String::from(&r));
            }
        }
        Ok(Ok(p))
    }

    /// Close the stream without waiting for the server's answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.send_bytes(writer::STREAM_END).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

/// The reading half of a logged-in connection, for the measured phase.
pub struct ReadSide {
    rd: tokio::io::ReadHalf<Stream>,
    reader: XmlReader,
    buf: Box<[u8]>,
    queue: VecDeque<StreamEvent>,
}

/// The writing half; senders own it so that writing never waits on reading.
pub struct WriteSide {
    wr: tokio::io::WriteHalf<Stream>,
}

impl Conn {
    /// Split for concurrent reading and writing (events already read are kept).
    pub fn split(self) -> (ReadSide, WriteSide) {
        let (rd, wr) = tokio::io::split(self.stream);
        (
            ReadSide {
                rd,
                reader: self.reader,
                buf: self.buf,
                queue: self.queue,
            },
            WriteSide { wr },
        )
    }
}

impl ReadSide {
    /// See `Conn::read_some`.
    pub async fn read_some(&mut self) -> anyhow::Result<bool> {
        let n = self.rd.read(&mut self.buf).await?;
        if n == 0 {
            return Ok(false);
        }
        let mut evs = Vec::new();
        self.reader
            .feed(&self.buf[..n], &mut evs)
            .map_err(|e| anyhow!("server sent bad XML: {e}"))?;
        self.queue.extend(evs);
        Ok(true)
    }

    pub fn pop_event(&mut self) -> Option<StreamEvent> {
        self.queue.pop_front()
    }
}

impl WriteSide {
    pub async fn send_str(&mut self, s: &str) -> std::io::Result<()> {
        self.wr.write_all(s.as_bytes()).await?;
        self.wr.flush().await
    }

    /// Close the stream without waiting for the server's answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.wr.write_all(writer::STREAM_END).await;
            let _ = self.wr.flush().await;
            let _ = self.wr.shutdown().await;
        })
        .await;
    }
}

const STREAM_NS: &str = "http://etherx.jabber.org/streams";

fn first_child_name(e: &Element) -> String {
    e.children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap_or_default()
}

fn sasl_outcome(r: &Element) -> anyhow::Result<()> {
    match r.name() {
        "success" => Ok(()),
        "failure" => bail!("SASL failure: {}", first_child_name(r)),
        other => bail!("unexpected SASL answer <{other}/>"),
    }
}

/// The condition of an error stanza (`conflict`, `forbidden`, ...).
pub fn error_condition(e: &Element) -> String {
    e.get_child("error", NS_CLIENT)
        .and_then(|err| {
            err.children()
                .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        })
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn has_status(p: &Element, code: &str) -> bool {
    p.get_child("x", NS_MUC_USER).is_some_and(|x| {
        x.children()
            .any(|s| s.name() == "status" && s.attr("code") == Some(code))
    })
}

pub fn is_self_presence(p: &Element) -> bool {
    p.attr("type").is_none() && has_status(p, "110")
}

/// XML-escape text or an attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// XEP-0077 §3.1 in-band registration. `Ok(true)` when created,
/// `Ok(false)` when the account already existed (`conflict`).
pub async fn register(t: &Target, user: &str, password: &str) -> anyhow::Result<bool> {
    let deadline = Instant::now() + t.timeout;
    let (mut c, _features) = Conn::connect(t).await?;
    let r = c
        .iq(
            deadline,
            "set",
            None,
            &format!(
                "<query xmlns='jabber:iq:register'><username>{}</username><password>{}</password></query>",
                escape(user),
                escape(password)
            ),
        )
        .await?;
    c.close().await;
    match r.attr("type") {
        Some("result") => Ok(true),
        _ if error_condition(&r) == "conflict" => Ok(false),
        _ => bail!("registration of {user} refused: {}", error_condition(&r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn self_presence_and_status_codes() {
        let p = el("<presence xmlns='jabber:client' from='r@m/n'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/><status code='110'/><status code='201'/></x></presence>");
        assert!(is_self_presence(&p));
        assert!(has_status(&p, "201"));
        let other = el("<presence xmlns='jabber:client' from='r@m/o'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>");
        assert!(!is_self_presence(&other));
    }

    #[test]
    fn error_conditions_are_named() {
        let e = el("<presence xmlns='jabber:client' type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text></error></presence>");
        assert_eq!(error_condition(&e), "conflict");
        assert_eq!(
            error_condition(&el("<iq xmlns='jabber:client'/>")),
            "unknown"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
    }
}
