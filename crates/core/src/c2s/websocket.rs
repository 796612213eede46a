//! RFC 7395 framing under a c2s stream: one text message per element, read
//! with the stanza size and depth limits (the WebSocket message limit is the
//! stanza limit, so an oversized message is refused before it is buffered).
//! Browsers send no whitespace keepalives: we ping after a quiet interval
//! and count the connection as lost when a ping goes unanswered.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use roost_proto::StreamError;
use roost_stream::{websocket as framing, Limits, StreamEvent};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// How long closing waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Any byte stream a WebSocket runs on (an upgraded HTTP/1.1 connection,
/// with or without TLS; a duplex pipe in tests).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Stream = WebSocketStream<Box<dyn Io>>;

pub struct WebSocket {
    /// Never locked: the mutex only makes the connection `Sync` (an
    /// upgraded HTTP connection is `Send` only), access goes through
    /// `get_mut`, which `&mut self` makes exclusive anyway.
    ws: std::sync::Mutex<Stream>,
    tls: bool,
    limits: Limits,
    out: Vec<String>,
    ping_interval: Duration,
    last_input: Instant,
    ping_sent: bool,
    /// The close code our close frame will carry (RFC 6455 §7.4.1).
    close_code: CloseCode,
}

impl WebSocket {
    /// Take over a connection whose upgrade handshake is done.
    pub async fn accept(
        io: Box<dyn Io>,
        tls: bool,
        limits: Limits,
        ping_interval: Duration,
    ) -> WebSocket {
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(limits.max_stanza_bytes))
            .max_frame_size(Some(limits.max_stanza_bytes))
            .read_buffer_size(16 * 1024)
            .write_buffer_size(16 * 1024);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        WebSocket {
            ws: std::sync::Mutex::new(ws),
            tls,
            limits,
            out: Vec::new(),
            ping_interval: ping_interval.max(Duration::from_secs(1)),
            last_input: Instant::now(),
            ping_sent: false,
            close_code: CloseCode::Normal,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    fn stream(ws: &mut std::sync::Mutex<Stream>) -> &mut Stream {
        ws.get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// See `Connection::read`. Cancel-safe: the deadlines live in `self`
    /// and tungstenite keeps partial frames.
    pub async fn read(
        &mut self,
        idle: Duration,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, StreamError> {
        let ws = Self::stream(&mut self.ws);
        loop {
            // Silent for `idle`, or a ping unanswered for a whole interval.
            let lost_at = self.last_input + idle.min(self.ping_interval * 2);
            let ping_at = self.last_input + self.ping_interval;
            tokio::select! {
                msg = ws.next() => {
                    self.last_input = Instant::now();
                    self.ping_sent = false;
                    return match msg {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(ev) = framing::read_message(&text, self.limits)? {
                                out.push(ev);
                            }
                            Ok(true)
                        }
                        // XMPP travels in text messages only (RFC 7395 §3.2).
                        Some(Ok(Message::Binary(_))) => {
                            self.close_code = CloseCode::Unsupported;
                            Err(StreamError::UnsupportedEncoding)
                        }
                        // Pings are answered by tungstenite at the next read.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                            Ok(true)
                        }
                        Some(Ok(Message::Close(_))) | None => Ok(false),
                        Some(Err(tungstenite::Error::Capacity(_))) => {
                            Err(StreamError::PolicyViolation)
                        }
                        // RFC 6455 §8.1: invalid UTF-8 fails the connection
                        // with 1007; RFC 6120 §11.6 names the stream error.
                        Some(Err(tungstenite::Error::Utf8(_))) => {
                            self.close_code = CloseCode::Invalid;
                            Err(StreamError::UnsupportedEncoding)
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "WebSocket read failed");
                            Ok(false)
                        }
                    };
                }
                _ = tokio::time::sleep_until(ping_at), if !self.ping_sent => {
                    self.ping_sent = true;
                    if ws.send(Message::Ping(Bytes::new())).await.is_err() {
                        return Ok(false);
                    }
                }
                _ = tokio::time::sleep_until(lost_at) => return Ok(false),
            }
        }
    }

    pub fn queue(&mut self, message: String) {
        self.out.push(message);
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let ws = Self::stream(&mut self.ws);
        let out = &mut self.out;
        let result = async {
            for m in out.drain(..) {
                ws.feed(Message::text(m)).await?;
            }
            ws.flush().await
        }
        .await;
        self.out.clear();
        result.map_err(std::io::Error::other)
    }

    /// Close handshake (RFC 6455 §7): our close frame, the peer's answer
    /// awaited for a bounded time, then the socket closed from our side.
    pub async fn shutdown(&mut self) {
        let ws = Self::stream(&mut self.ws);
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            let frame = CloseFrame {
                code: self.close_code,
                reason: "".into(),
            };
            if ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
            let _ = ws.get_mut().shutdown().await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    async fn pair(limits: Limits, ping: Duration) -> (WebSocket, WebSocketStream<Box<dyn Io>>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = WebSocket::accept(Box::new(a), false, limits, ping).await;
        let client = WebSocketStream::from_raw_socket(
            Box::new(b) as Box<dyn Io>,
            Role::Client,
            Some(WebSocketConfig::default()),
        )
        .await;
        (server, client)
    }

    #[tokio::test]
    async fn each_message_is_one_event() {
        let (mut server, mut client) = pair(Limits::default(), Duration::from_secs(30)).await;
        client
            .send(Message::text(
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
            ))
            .await
            .unwrap();
        client
            .send(Message::text(
                "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
            ))
            .await
            .unwrap();
        let mut evs = Vec::new();
        let idle = Duration::from_secs(5);
        assert!(server.read(idle, &mut evs).await.unwrap());
        assert!(server.read(idle, &mut evs).await.unwrap());
        assert!(matches!(evs[0], StreamEvent::Header(_)));
        assert!(matches!(&evs[1], StreamEvent::Element(e) if e.name() == "iq"));
        server.queue(framing::close());
        server.flush().await.unwrap();
        match client.next().await {
            Some(Ok(Message::Text(t))) => assert!(t.contains("close")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_oversized_message_is_a_policy_violation() {
        let limits = Limits {
            max_stanza_bytes: 2048,
            max_depth: 16,
        };
        let (mut server, mut client) = pair(limits, Duration::from_secs(30)).await;
        let big = format!(
            "<message xmlns='jabber:client'><body>{}</body></message>",
            "x".repeat(4096)
        );
        client.send(Message::text(big)).await.unwrap();
        let mut evs = Vec::new();
        assert_eq!(
            server.read(Duration::from_secs(5), &mut evs).await,
            Err(StreamError::PolicyViolation)
        );
    }

    #[tokio::test]
    async fn a_silent_peer_is_pinged_then_dropped() {
        let (mut server, mut client) = pair(Limits::default(), Duration::from_secs(1)).await;
        let mut evs = Vec::new();
        let started = Instant::now();
        // The client does not read, so it never answers the ping.
        assert!(!server
            .read(Duration::from_secs(600), &mut evs)
            .await
            .unwrap());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
        assert!(matches!(client.next().await, Some(Ok(Message::Ping(_)))));
    }
}
