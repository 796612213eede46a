//! One server-to-server XML stream (RFC 6120 §4, content namespace
//! `jabber:server`): the socket (plain until STARTTLS, or TLS from the
//! first byte with XEP-0368), the incremental reader, and the
//! translation of stanzas between `jabber:server` on the wire and
//! `jabber:client`, the namespace every stanza has inside the server.
//!
//! Server streams are few and long-lived, so this uses tokio-rustls'
//! buffered streams rather than the lean per-connection TLS of c2s.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use minidom::Element;
use roost_proto::{ns, StreamError};
use roost_stream::{Limits, StreamEvent, XmlReader};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::dialback;

pub const NS_SERVER: &str = "jabber:server";
/// The content namespace of external component streams (XEP-0114).
pub const NS_COMPONENT: &str = "jabber:component:accept";

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum S2sError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad input: {0:?}")]
    Stream(StreamError),
    #[error("the peer sent a stream error: {0}")]
    Remote(String),
    #[error("the stream was closed")]
    Closed,
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Refused(String),
}

enum Io {
    Plain(TcpStream),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// While the socket is being wrapped in TLS.
    Gone,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "socket moved")
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
}

pub struct S2sStream {
    io: Io,
    reader: XmlReader,
    events: VecDeque<StreamEvent>,
    pub peer: SocketAddr,
    limits: Limits,
    /// Outgoing streams: the peer may send stanzas back on this one
    /// (XEP-0288).
    pub bidi: bool,
    /// `jabber:server`, or `jabber:component:accept` for components.
    content_ns: &'static str,
    /// Outgoing streams: the id the peer gave the current stream, and
    /// whether it takes dialback (for more domains on this stream,
    /// XEP-0220 §2.4).
    pub stream_id: Option<String>,
    pub dialback_offered: bool,
}

impl S2sStream {
    pub fn new(tcp: TcpStream, peer: SocketAddr, max_stanza: usize) -> S2sStream {
        let _ = tcp.set_nodelay(true);
        let limits = Limits {
            max_stanza_bytes: max_stanza,
            ..Limits::default()
        };
        S2sStream {
            io: Io::Plain(tcp),
            reader: XmlReader::new(limits),
            events: VecDeque::new(),
            peer,
            limits,
            bidi: false,
            content_ns: NS_SERVER,
            stream_id: None,
            dialback_offered: false,
        }
    }

    /// An external component's stream (XEP-0114): the same XML stream in
    /// the `jabber:component:accept` namespace.
    pub fn component(tcp: TcpStream, peer: SocketAddr, max_stanza: usize) -> S2sStream {
        S2sStream {
            content_ns: NS_COMPONENT,
            ..S2sStream::new(tcp, peer, max_stanza)
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Client(_) | Io::Server(_))
    }

    /// The certificate chain the peer presented (incoming streams).
    pub fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        match &self.io {
            Io::Server(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// TLS as the connecting side, SNI = the peer's domain.
    pub async fn client_tls(
        &mut self,
        cfg: Arc<rustls::ClientConfig>,
        domain: &str,
    ) -> Result<(), S2sError> {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(S2sError::Refused("TLS over TLS".into()));
        };
        let name = ServerName::try_from(domain.to_string())
            .map_err(|_| S2sError::Refused(format!("{domain:?} is not a server name")))?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await?;
        self.io = Io::Client(Box::new(tls));
        self.restart();
        Ok(())
    }

    /// TLS as the accepting side.
    pub async fn server_tls(&mut self, cfg: Arc<rustls::ServerConfig>) -> Result<(), S2sError> {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(S2sError::Refused("TLS over TLS".into()));
        };
        let tls = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await?;
        self.io = Io::Server(Box::new(tls));
        self.restart();
        Ok(())
    }

    /// A new stream on the same connection (after TLS or SASL).
    pub fn restart(&mut self) {
        self.reader.reset();
        self.events.clear();
    }

    /// Our stream header (RFC 6120 §4.7), declaring the dialback prefix;
    /// for a component, the XEP-0114 header (no version, no features).
    pub async fn open(
        &mut self,
        from: &str,
        to: Option<&str>,
        id: Option<&str>,
    ) -> Result<(), S2sError> {
        use roost_proto::serialize::attr_escaped as a;
        let mut header = if self.content_ns == NS_COMPONENT {
            format!(
                "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='{}' from='{}'",
                ns::STREAM,
                a(from)
            )
        } else {
            format!(
                "<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' xmlns:stream='{}' xmlns:db='{}' version='1.0' from='{}'",
                ns::STREAM,
                dialback::NS,
                a(from)
            )
        };
        if let Some(to) = to {
            header.push_str(&format!(" to='{}'", a(to)));
        }
        if let Some(id) = id {
            header.push_str(&format!(" id='{}'", a(id)));
        }
        header.push('>');
        self.send_bytes(header.as_bytes()).await
    }

    pub async fn send_bytes(&mut self, data: &[u8]) -> Result<(), S2sError> {
        self.io.write_all(data).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// A stanza or nonza; stanzas go out in `jabber:server`.
    pub async fn send(&mut self, el: &Element) -> Result<(), S2sError> {
        let mut out = Vec::with_capacity(512);
        roost_proto::serialize::element_into_content_ns(el, self.content_ns, &mut out);
        self.send_bytes(&out).await
    }

    /// A dialback element, written with the `db:` prefix our stream header
    /// declares: the form XEP-0220 shows, and the only one some servers
    /// (ejabberd) recognise, since they match element names literally.
    /// `inner` is written as it is (escaped text, or XML).
    pub async fn send_db(
        &mut self,
        name: &str,
        attrs: &[(&str, &str)],
        inner: Option<&str>,
    ) -> Result<(), S2sError> {
        use roost_proto::serialize::attr_escaped as a;
        let mut out = format!("<db:{name}");
        for (k, v) in attrs {
            out.push_str(&format!(" {k}='{}'", a(v)));
        }
        match inner {
            Some(i) => out.push_str(&format!(">{i}</db:{name}>")),
            None => out.push_str("/>"),
        }
        self.send_bytes(out.as_bytes()).await
    }

    /// A stream error, then the end of the stream (RFC 6120 §4.9).
    pub async fn fail(&mut self, err: StreamError, text: Option<&str>) {
        // The error comes with the closing tag.
        let out = roost_stream::writer::stream_error(err, text);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.send_bytes(&out)).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.io.shutdown()).await;
    }

    /// Close the stream cleanly.
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.send_bytes(b"</stream:stream>"))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.io.shutdown()).await;
    }

    /// The next event, waiting at most `wait`. Stanzas come back in
    /// `jabber:client`; a stream error from the peer ends the stream.
    pub async fn next(&mut self, wait: Duration) -> Result<StreamEvent, S2sError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(ev) = self.events.pop_front() {
                return self.inbound(ev);
            }
            let mut buf = [0u8; 8192];
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await {
                Err(_) => return Err(S2sError::Timeout),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(S2sError::Closed);
            }
            let mut out = Vec::new();
            self.reader
                .feed(&buf[..n], &mut out)
                .map_err(S2sError::Stream)?;
            self.events.extend(out);
        }
    }

    /// What `next` returned, inside an established stream: an element;
    /// `None` when the peer ended the stream; a stream error sent to the
    /// peer for a second header, bad XML (and silence, as
    /// `connection-timeout`).
    pub async fn element_or_end(
        &mut self,
        next: Result<StreamEvent, S2sError>,
    ) -> Result<Option<Element>, S2sError> {
        match next {
            Ok(StreamEvent::Element(el)) => Ok(Some(el)),
            Ok(StreamEvent::End) => Ok(None),
            Ok(StreamEvent::Header(_)) => {
                self.fail(StreamError::NotWellFormed, None).await;
                Err(S2sError::Refused("header inside the stream".into()))
            }
            Err(S2sError::Stream(e)) => {
                self.fail(e, None).await;
                Err(S2sError::Stream(e))
            }
            Err(S2sError::Timeout) => {
                self.fail(StreamError::ConnectionTimeout, None).await;
                Err(S2sError::Timeout)
            }
            Err(e) => Err(e),
        }
    }

    fn inbound(&self, ev: StreamEvent) -> Result<StreamEvent, S2sError> {
        match ev {
            StreamEvent::Element(el) if el.is("error", ns::STREAM) => Err(S2sError::Remote(
                el.children()
                    .next()
                    .map(|c| c.name().to_string())
                    .unwrap_or_default(),
            )),
            StreamEvent::Element(el) if el.ns() == self.content_ns => {
                Ok(StreamEvent::Element(self.to_client_ns(&el)?))
            }
            other => Ok(other),
        }
    }

    /// A `jabber:server` stanza as the rest of the server keeps it.
    fn to_client_ns(&self, el: &Element) -> Result<Element, S2sError> {
        let mut out = Vec::with_capacity(512);
        roost_proto::serialize::element_into_content_ns(el, ns::CLIENT, &mut out);
        XmlReader::read_document(&out, self.limits)
            .map_err(S2sError::Stream)?
            .ok_or(S2sError::Stream(StreamError::NotWellFormed))
    }
}
