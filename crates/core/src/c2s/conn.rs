//! The connection under a c2s stream, whatever its framing: an XML stream
//! over plain TCP (until STARTTLS) or TLS (after it, or from the start,
//! XEP-0368), one element per message over WebSocket (RFC 7395), or
//! payloads of HTTP requests over BOSH (XEP-0124/XEP-0206). The
//! negotiation and the session read stream events from it and queue what
//! they write; only this file knows how each is framed on the wire.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use minidom::Element;
use roost_proto::{ElementExt, StreamError};
use roost_stream::{writer, Limits, StreamEvent, XmlReader};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::bosh::BoshStream;
use super::tls_stream::TlsStream;
use super::websocket::WebSocket;
use crate::limits::shaper::Shaper;
use crate::limits::{hit, queue_budget, Limit};

/// Bytes read from a TCP or TLS socket at a time. The buffer is on the
/// stack of the read that uses it, so idle connections hold none.
const READ_BUF: usize = 8 * 1024;

/// Room made in the output buffer when the first stanza after a flush is
/// queued; most stanzas fit.
const OUT_START: usize = 1024;

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
    /// Left behind when the socket is moved out (STARTTLS, hand-over to the
    /// session); any I/O on it fails.
    Detached,
}

fn detached() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "transport detached")
}

impl Transport {
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Write a whole buffer and push it out (TLS needs the flush).
    pub async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.write_all(data).await?;
        self.flush().await
    }

    /// Wait until the socket has something to read, without holding a buffer.
    async fn readable(&self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.readable().await,
            Transport::Tls(s) => s.tcp().readable().await,
            Transport::Detached => Err(detached()),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Detached => Poll::Ready(Err(detached())),
        }
    }
}

/// RFC 6120 framing: one XML document per stream, read incrementally.
pub struct XmlFraming {
    transport: Transport,
    reader: XmlReader,
    /// Output queued until the next flush; empty (no allocation) between.
    out: Vec<u8>,
}

impl XmlFraming {
    /// The output buffer to serialise a stanza into.
    fn stanza_out(&mut self) -> &mut Vec<u8> {
        if self.out.capacity() == 0 {
            // One allocation for a usual stanza, not a doubling from
            // 8 bytes up after every flush.
            self.out.reserve(OUT_START);
        }
        &mut self.out
    }
}

/// One non-blocking read attempt.
enum Attempt {
    /// This many bytes were read and fed to the parser.
    Read(usize),
    /// End of stream or an I/O error.
    Closed,
    /// Nothing to read yet.
    WouldBlock,
}

impl XmlFraming {
    /// Read what is available now, into a buffer that lives only for this
    /// call. Not async on purpose: an idle connection waits for
    /// readiness only (`Transport::readable`), so it holds no read buffer.
    /// Bytes TLS already decrypted are returned here before any wait.
    fn try_read(&mut self, out: &mut Vec<StreamEvent>) -> Result<Attempt, StreamError> {
        // Uninitialised: ReadBuf tracks what the read filled, so the
        // buffer needs no zeroing on every call.
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); READ_BUF];
        let mut rb = ReadBuf::uninit(&mut buf);
        // A wake-up registered here would be lost; `readable()` registers
        // the real one after a `WouldBlock`.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut self.transport).poll_read(&mut cx, &mut rb) {
            Poll::Pending => Ok(Attempt::WouldBlock),
            Poll::Ready(Err(_)) => Ok(Attempt::Closed),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Ok(Attempt::Closed),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.reader.feed(rb.filled(), out)?;
                Ok(Attempt::Read(n))
            }
        }
    }
}

enum Framing {
    Xml(Box<XmlFraming>),
    WebSocket(Box<WebSocket>),
    Bosh(Box<BoshStream>),
    /// Moved out (hand-over to a resumed session).
    Detached,
}

/// A client connection: reads stream events, queues and flushes output.
pub struct Connection {
    peer: SocketAddr,
    framing: Framing,
    /// `limits.stanzas_per_second` and `bytes_per_second` (none when off).
    shaper: Option<Box<Shaper>>,
}

impl Connection {
    /// An XML stream over TCP or TLS.
    pub fn xml(transport: Transport, peer: SocketAddr, limits: Limits) -> Connection {
        Connection {
            peer,
            shaper: None,
            framing: Framing::Xml(Box::new(XmlFraming {
                transport,
                reader: XmlReader::new(limits),
                out: Vec::new(),
            })),
        }
    }

    /// An RFC 7395 stream over an upgraded HTTP connection.
    pub fn websocket(ws: WebSocket, peer: SocketAddr) -> Connection {
        Connection {
            peer,
            shaper: None,
            framing: Framing::WebSocket(Box::new(ws)),
        }
    }

    /// A BOSH session (XEP-0206) fed by HTTP requests.
    pub fn bosh(stream: BoshStream, peer: SocketAddr) -> Connection {
        Connection {
            peer,
            shaper: None,
            framing: Framing::Bosh(Box::new(stream)),
        }
    }

    /// What is left after the connection was handed over.
    pub fn detached(peer: SocketAddr) -> Connection {
        Connection {
            peer,
            shaper: None,
            framing: Framing::Detached,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_websocket(&self) -> bool {
        matches!(self.framing, Framing::WebSocket(_))
    }

    /// The BOSH session id, for a BOSH connection.
    pub fn bosh_sid(&self) -> Option<&str> {
        match &self.framing {
            Framing::Bosh(b) => Some(b.sid()),
            _ => None,
        }
    }

    /// Framed over HTTP (WebSocket or BOSH): TLS, if any, is the HTTP
    /// listener's, and STARTTLS is not offered.
    pub fn is_http(&self) -> bool {
        matches!(self.framing, Framing::WebSocket(_) | Framing::Bosh(_))
    }

    /// Encrypted: TLS on the socket (STARTTLS, direct TLS or `wss`).
    pub fn is_tls(&self) -> bool {
        match &self.framing {
            Framing::Xml(x) => x.transport.is_tls(),
            Framing::WebSocket(ws) => ws.is_tls(),
            Framing::Bosh(b) => b.is_tls(),
            Framing::Detached => false,
        }
    }

    /// Good enough for credentials: TLS, or plain WebSocket or BOSH from a
    /// loopback address (a browser on this machine, or a local reverse
    /// proxy that terminates TLS). A plain TCP stream is never secure,
    /// since it can still negotiate STARTTLS.
    pub fn is_secure(&self) -> bool {
        self.is_tls() || (self.is_http() && self.peer.ip().to_canonical().is_loopback())
    }

    /// RFC 9266 `tls-exporter` data of this connection's TLS 1.3 session
    /// (client TCP streams; not WebSocket, whose TLS is the HTTP layer's).
    pub fn tls_exporter(&self) -> Option<&[u8]> {
        match &self.framing {
            Framing::Xml(x) => match &x.transport {
                Transport::Tls(t) => t.exporter_binding(),
                _ => None,
            },
            _ => None,
        }
    }

    /// STARTTLS (RFC 6120 §5) is possible on plain TCP only.
    pub fn can_starttls(&self) -> bool {
        match &self.framing {
            Framing::Xml(x) => matches!(x.transport, Transport::Plain(_)),
            _ => false,
        }
    }

    /// Run the TLS handshake on a plain TCP stream; the XML stream starts
    /// over. On failure the connection is left detached.
    pub async fn starttls(
        &mut self,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> std::io::Result<()> {
        let Framing::Xml(x) = &mut self.framing else {
            return Err(detached());
        };
        let Transport::Plain(tcp) = std::mem::replace(&mut x.transport, Transport::Detached) else {
            return Err(detached());
        };
        // Boxed: the handshake's state is large and short-lived.
        let tls = Box::pin(TlsStream::accept(tcp, config)).await?;
        x.transport = Transport::Tls(Box::new(tls));
        x.reader.reset();
        x.out.clear();
        Ok(())
    }

    /// A new stream starts on this connection (after STARTTLS or SASL):
    /// the XML reader expects a new header. Over WebSocket every message
    /// stands alone, so there is nothing to forget.
    pub fn restart(&mut self) {
        if let Framing::Xml(x) = &mut self.framing {
            x.reader.reset();
        }
    }

    /// Apply the per-stream rates of `[limits]` to what this connection
    /// reads from now on.
    pub fn shape(&mut self, rates: Option<&std::sync::Arc<crate::limits::shaper::Rates>>) {
        self.shaper = rates.map(|r| Box::new(Shaper::new(r.clone())));
    }

    /// Wait for input and append the stream events it completes (maybe
    /// none) to `out`. `Ok(false)`: the connection closed, failed, or was
    /// silent for `idle`. `Err`: bad input, to be sent as a stream error.
    /// Cancel-safe: nothing read is lost when the future is dropped.
    ///
    /// Reads wait first while the stream is over its rates (`shaper.rs`)
    /// and while the server's queues are nearly full (`queue_budget.rs`):
    /// both push back on the client through TCP instead of dropping.
    pub async fn read(
        &mut self,
        idle: Duration,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, StreamError> {
        if let Some(s) = &mut self.shaper {
            s.ready().await;
        }
        if queue_budget::paused() {
            hit(Limit::QueuedBytesTotal);
            while queue_budget::paused() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let before = out.len();
        let (open, bytes) = match self.read_framed(idle, out).await {
            Ok(r) => r,
            Err(e) => {
                if e == StreamError::PolicyViolation {
                    hit(Limit::StanzaSize);
                }
                return Err(e);
            }
        };
        if let Some(s) = &mut self.shaper {
            let stanzas = out[before..]
                .iter()
                .filter(|e| matches!(e, StreamEvent::Element(_)))
                .count();
            // WebSocket and BOSH say nothing of their frames' sizes here:
            // their stanzas are weighed instead.
            let bytes = bytes.unwrap_or_else(|| {
                out[before..]
                    .iter()
                    .map(|e| match e {
                        StreamEvent::Element(el) => roost_proto::serialize::estimated_len(el),
                        _ => 0,
                    })
                    .sum()
            });
            s.charge(bytes, stanzas);
        }
        Ok(open)
    }

    /// One read of the framing; the bytes it took when it knows them.
    async fn read_framed(
        &mut self,
        idle: Duration,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(bool, Option<usize>), StreamError> {
        match &mut self.framing {
            Framing::Xml(x) => {
                let deadline = tokio::time::Instant::now() + idle;
                loop {
                    match x.try_read(out)? {
                        Attempt::Read(n) => return Ok((true, Some(n))),
                        Attempt::Closed => return Ok((false, Some(0))),
                        Attempt::WouldBlock => {}
                    }
                    match tokio::time::timeout_at(deadline, x.transport.readable()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) | Err(_) => return Ok((false, Some(0))),
                    }
                }
            }
            Framing::WebSocket(ws) => ws.read(idle, out).await.map(|o| (o, None)),
            Framing::Bosh(b) => b.read(idle, out).await.map(|o| (o, None)),
            Framing::Detached => Ok((false, Some(0))),
        }
    }

    /// Queue our stream header (RFC 6120 §4.7, RFC 7395 §3.4).
    pub fn queue_header(&mut self, from: &str, id: &str, lang: &str) {
        match &mut self.framing {
            Framing::Xml(x) => x.out.extend(writer::stream_header(from, id, None, lang)),
            Framing::WebSocket(ws) => ws.queue(roost_stream::websocket::open(from, id, lang)),
            // XEP-0206 §5: the session creation and restart answers stand
            // for the stream header.
            Framing::Bosh(_) => {}
            Framing::Detached => {}
        }
    }

    pub fn queue_features(&mut self, features: &[Element]) {
        match &mut self.framing {
            Framing::Xml(x) => x.out.extend(writer::features(features)),
            Framing::WebSocket(ws) => ws.queue(roost_stream::websocket::features(features)),
            // XEP-0206 §6: features declare their prefix as over WebSocket.
            Framing::Bosh(b) => b.queue(&roost_stream::websocket::features(features)),
            Framing::Detached => {}
        }
    }

    /// Queue a stanza with `to` as its addressee, whatever `to` it has.
    pub fn queue_element_to(&mut self, el: &Element, to: &str) {
        match &mut self.framing {
            Framing::Xml(x) => roost_proto::serialize::element_to_into(el, to, x.stanza_out()),
            Framing::WebSocket(_) | Framing::Bosh(_) => {
                // Rare enough (a web client in a room with several
                // sessions) to take a copy.
                let mut own = el.clone();
                own.set("to", to);
                self.queue_element(&own);
            }
            Framing::Detached => {}
        }
    }

    /// Queue a stanza or nonza.
    pub fn queue_element(&mut self, el: &Element) {
        match &mut self.framing {
            Framing::Xml(x) => writer::element_into(el, x.stanza_out()),
            Framing::WebSocket(ws) => ws.queue(roost_stream::websocket::element(el)),
            Framing::Bosh(b) => b.queue(&roost_stream::websocket::element(el)),
            Framing::Detached => {}
        }
    }

    /// Queue a stream error and the end of the stream (RFC 6120 §4.9.1.1,
    /// RFC 7395 §3.6).
    pub fn queue_stream_error(&mut self, err: StreamError, text: Option<&str>) {
        self.queue_stream_error_with(err, text, None);
    }

    /// The same with an application-specific condition (RFC 6120 §4.9.4).
    pub fn queue_stream_error_with(
        &mut self,
        err: StreamError,
        text: Option<&str>,
        app: Option<&Element>,
    ) {
        match &mut self.framing {
            Framing::Xml(x) => x.out.extend(writer::stream_error_with(err, text, app)),
            Framing::WebSocket(ws) => {
                ws.queue(roost_stream::websocket::stream_error_with(err, text, app));
                ws.queue(roost_stream::websocket::close());
            }
            Framing::Bosh(b) => {
                b.queue_stream_error(&roost_stream::websocket::stream_error_with(err, text, app));
            }
            Framing::Detached => {}
        }
    }

    /// Queue the end of the stream.
    pub fn queue_end(&mut self) {
        match &mut self.framing {
            Framing::Xml(x) => x.out.extend_from_slice(writer::STREAM_END),
            Framing::WebSocket(ws) => ws.queue(roost_stream::websocket::close()),
            Framing::Bosh(b) => b.queue_end(),
            Framing::Detached => {}
        }
    }

    /// Write what was queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.framing {
            Framing::Xml(x) => {
                if x.out.is_empty() {
                    return Ok(());
                }
                let r = x.transport.send(&x.out).await;
                // Freed rather than kept: most connections are idle most
                // of the time, and a busy one refills it in one step.
                x.out = Vec::new();
                r
            }
            Framing::WebSocket(ws) => ws.flush().await,
            Framing::Bosh(b) => {
                b.flush();
                Ok(())
            }
            Framing::Detached => Err(detached()),
        }
    }

    /// Queue one element and write it with everything queued before.
    pub async fn send_element(&mut self, el: &Element) -> std::io::Result<()> {
        self.queue_element(el);
        self.flush().await
    }

    /// Flush and close the connection (TLS close_notify, WebSocket close
    /// handshake, bounded).
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        match &mut self.framing {
            Framing::Xml(x) => {
                let _ = x.transport.shutdown().await;
            }
            Framing::WebSocket(ws) => ws.shutdown().await,
            Framing::Bosh(b) => b.shutdown(),
            Framing::Detached => {}
        }
    }
}
