//! TLS on a client socket (after STARTTLS, or from the start with
//! XEP-0368), with buffers that exist only while they hold something.
//!
//! rustls's buffered connection keeps a receive buffer of at least 4 KiB
//! for the connection's whole life. Most client connections are idle most
//! of the time, and that buffer was the largest single cost of an idle
//! session. This stream drives rustls's unbuffered API instead, so the
//! ciphertext in, the plaintext not yet read and the ciphertext not yet
//! written are each a `Vec` that is freed as soon as it is drained. An idle
//! connection keeps only the TLS keys and state.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Room made for one socket read. TLS records are at most about 16 KiB,
/// so a burst of small stanzas usually arrives in one read.
const READ_SIZE: usize = 8 * 1024;

/// Bytes of record framing and AEAD tag per record, a first guess at the
/// room an encryption needs (rustls says how much if it is not enough).
const RECORD_OVERHEAD: usize = 64;
const MAX_FRAGMENT: usize = 16 * 1024;

/// Ciphertext held while a record or a handshake message is incomplete.
/// rustls's buffered API allows handshake messages up to 64 KiB; one more
/// read's worth on top is allowed, and a peer that sends more is cut off.
const MAX_PENDING: usize = 64 * 1024 + READ_SIZE + MAX_FRAGMENT;

/// A server-side TLS stream over TCP.
pub struct TlsStream {
    tcp: TcpStream,
    tls: UnbufferedServerConnection,
    /// RFC 9266 tls-exporter binding data (TLS 1.3), once handshaken; the
    /// exporter secret rustls logs is held only until then.
    exporter: Option<Box<[u8]>>,
    /// Ciphertext read from the socket; `incoming[consumed..]` is not yet
    /// processed (between reads, at most the start of one record).
    incoming: Vec<u8>,
    consumed: usize,
    /// Decrypted application data; `plaintext[delivered..]` is not yet read.
    plaintext: Vec<u8>,
    delivered: usize,
    /// Ciphertext to write; `outgoing[sent..]` is not yet written.
    outgoing: Vec<u8>,
    sent: usize,
    /// The peer sent close_notify or closed the socket: reads return EOF.
    read_closed: bool,
    close_notify_queued: bool,
    /// rustls reported a fatal error: the connection is unusable.
    failed: bool,
}

/// What a call to `drive` is for.
enum Want<'a> {
    Read,
    Write(&'a [u8]),
    CloseNotify,
}

enum Failure {
    /// The peer broke the protocol; rustls has an alert for it.
    Tls(rustls::Error),
    Io(io::Error),
}

/// Where processing the received records stopped.
enum Stop {
    /// rustls needs more ciphertext from the peer.
    NeedInput,
    /// Both sides sent close_notify.
    Closed,
}

fn tls_error(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// Run the server side of a TLS handshake on `tcp`.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let tls = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut stream = TlsStream {
            tcp,
            tls,
            exporter: None,
            incoming: Vec::new(),
            consumed: 0,
            plaintext: Vec::new(),
            delivered: 0,
            outgoing: Vec::new(),
            sent: 0,
            read_closed: false,
            close_notify_queued: false,
            failed: false,
        };
        match std::future::poll_fn(|cx| stream.poll_handshake(cx)).await {
            Ok(()) => Ok(stream),
            Err(e) => {
                stream.send_alert().await;
                Err(e)
            }
        }
    }

    /// RFC 9266 `tls-exporter` binding data (TLS 1.3 only).
    pub fn exporter_binding(&self) -> Option<&[u8]> {
        self.exporter.as_deref()
    }

    /// The socket under the TLS layer.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let stop = self.drive(Want::Read)?;
            // Our flight goes out before we wait for the peer's.
            ready!(self.poll_send(cx))?;
            if !self.tls.is_handshaking() {
                // The secret becomes the binding data; the secret goes.
                if let Some(secret) = self.exporter.take() {
                    let sha384 = self.tls.negotiated_cipher_suite().is_some_and(|s| {
                        s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
                    });
                    let cb = super::tls_exporter::channel_binding(&secret, sha384);
                    self.exporter = Some(cb.into_boxed_slice());
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(stop, Stop::Closed) || self.read_closed {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            if ready!(self.poll_receive(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// After a failed handshake the peer gets the alert that says why, if
    /// the socket takes it at once.
    async fn send_alert(&mut self) {
        let bounded = std::time::Duration::from_secs(1);
        let _ = tokio::time::timeout(bounded, std::future::poll_fn(|cx| self.poll_send(cx))).await;
    }

    /// Process every complete record received (application data goes to
    /// `plaintext`; handshake and alert records rustls wants to send go to
    /// `outgoing`) until rustls waits for input, or, for a write, until
    /// the data is encrypted into `outgoing`.
    fn drive(&mut self, want: Want<'_>) -> io::Result<Stop> {
        let mut incoming = std::mem::take(&mut self.incoming);
        let result = self.drive_in(&mut incoming[self.consumed..], want);
        self.incoming = incoming;
        let (stop, consumed) = result?;
        self.discard(consumed);
        Ok(stop)
    }

    /// `drive` over ciphertext in `buf`, which is not `incoming`; also
    /// says how many bytes of it were processed.
    fn drive_in(&mut self, buf: &mut [u8], want: Want<'_>) -> io::Result<(Stop, usize)> {
        // rustls logs the TLS 1.3 exporter secret from somewhere in this
        // synchronous stretch (processing or encoding a handshake step):
        // take it before anything else can run on this thread.
        let handshaking = self.tls.is_handshaking();
        if handshaking {
            super::tls_exporter::clear();
        }
        let result = self.drive_in_steps(buf, want);
        if handshaking {
            if let Some(secret) = super::tls_exporter::take() {
                self.exporter = Some(secret.into_boxed_slice());
            }
        }
        result
    }

    fn drive_in_steps(&mut self, buf: &mut [u8], want: Want<'_>) -> io::Result<(Stop, usize)> {
        if self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS failed"));
        }
        let mut consumed = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.tls.process_tls_records(&mut buf[consumed..]);
            let mut discard = discard;
            let step = match state {
                Err(e) => Err(Failure::Tls(e)),
                Ok(ConnectionState::ReadTraffic(mut records)) => loop {
                    match records.next_record() {
                        None => break Ok(None),
                        Some(Err(e)) => break Err(Failure::Tls(e)),
                        Some(Ok(record)) => {
                            discard += record.discard;
                            self.plaintext.extend_from_slice(record.payload);
                        }
                    }
                },
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    encode_into(&mut self.outgoing, |buf| data.encode(buf))
                        .map(|()| None)
                        .map_err(Failure::Io)
                }
                // What was encoded is in `outgoing`, which is written in
                // order before anything encrypted later.
                Ok(ConnectionState::TransmitTlsData(data)) => {
                    data.done();
                    Ok(None)
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.read_closed = true;
                    Ok(None)
                }
                Ok(ConnectionState::Closed) => {
                    self.read_closed = true;
                    match want {
                        Want::Read => Ok(Some(Stop::Closed)),
                        _ => Err(Failure::Io(io::ErrorKind::BrokenPipe.into())),
                    }
                }
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let out = &mut self.outgoing;
                    let encrypted = match want {
                        Want::Read => Ok(()),
                        Want::Write(data) => {
                            encrypt_into(out, data.len(), |buf| traffic.encrypt(data, buf))
                        }
                        Want::CloseNotify => {
                            encrypt_into(out, 0, |buf| traffic.queue_close_notify(buf))
                        }
                    };
                    encrypted
                        .map(|()| Some(Stop::NeedInput))
                        .map_err(Failure::Io)
                }
                Ok(ConnectionState::BlockedHandshake) => match want {
                    Want::Read => Ok(Some(Stop::NeedInput)),
                    _ => Err(Failure::Io(io::ErrorKind::NotConnected.into())),
                },
                // Early data (never enabled in our configs, so rustls does
                // not accept it) and states of later rustls versions (the
                // enum is non-exhaustive) cannot be handled safely.
                Ok(_) => Err(Failure::Io(io::Error::other("unexpected TLS state"))),
            };
            match step {
                Ok(stop) => {
                    consumed += discard;
                    if let Some(stop) = stop {
                        return Ok((stop, consumed));
                    }
                }
                Err(Failure::Io(e)) => return Err(e),
                Err(Failure::Tls(e)) => {
                    self.failed = true;
                    self.queue_alert(&mut buf[consumed..]);
                    return Err(tls_error(e));
                }
            }
        }
    }

    /// After a fatal error rustls has queued an alert that says why. It is
    /// asked for it once only: asked again, it would process the same bad
    /// input again and fail a second time.
    fn queue_alert(&mut self, buf: &mut [u8]) {
        let UnbufferedStatus { state, .. } = self.tls.process_tls_records(buf);
        if let Ok(ConnectionState::EncodeTlsData(mut alert)) = state {
            let _ = encode_into(&mut self.outgoing, |buf| alert.encode(buf));
        }
    }

    /// Forget ciphertext rustls has processed; free the buffer once empty.
    fn discard(&mut self, n: usize) {
        self.consumed += n;
        if self.consumed >= self.incoming.len() {
            self.incoming = Vec::new();
            self.consumed = 0;
        }
    }

    /// Read what the socket has into `incoming`. `Ok(0)`: end of stream.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.consumed > 0 {
            self.incoming.drain(..self.consumed);
            self.consumed = 0;
        }
        if self.incoming.len() > MAX_PENDING {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS message too large",
            )));
        }
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            self.incoming.reserve(READ_SIZE);
            match self.tcp.try_read_buf(&mut self.incoming) {
                Ok(n) => {
                    if self.incoming.is_empty() {
                        self.incoming = Vec::new();
                    }
                    return Poll::Ready(Ok(n));
                }
                // Readiness was stale; tokio cleared it, so wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Read what the socket has into a buffer on the stack and process it
    /// there; only the start of a record cut off at the end of the read is
    /// kept, in `incoming`. The usual read so allocates nothing, and a
    /// busy connection does not allocate and free a large buffer per read.
    fn poll_receive_on_stack(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); READ_SIZE];
        let mut buf = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if n > 0 {
            let data = buf.filled_mut();
            let (_, consumed) = self.drive_in(data, Want::Read)?;
            self.incoming = data[consumed..].to_vec();
            self.consumed = 0;
        }
        Poll::Ready(Ok(n))
    }

    /// Write out `outgoing`; ready once all of it is written, and then
    /// the buffer is freed.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

/// Why a write into a slice given by `write_at_end` did not complete.
enum Short {
    /// It needs this many bytes of room.
    Room(usize),
    /// There was nothing (more) to write.
    Nothing,
    Failed(io::Error),
}

/// Let `write` put bytes at the end of `out`, starting with `room` bytes
/// of space and growing it to the size rustls asks for.
fn write_at_end(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Short>,
) -> io::Result<()> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        let result = write(&mut out[start..]);
        match result {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Short::Room(needed)) if needed > room => room = needed,
            Err(short) => {
                out.truncate(start);
                return match short {
                    Short::Nothing => Ok(()),
                    Short::Failed(e) => Err(e),
                    Short::Room(_) => Err(io::Error::other("TLS asked for less room than it had")),
                };
            }
        }
    }
}

/// Let `encode` write handshake or alert records at the end of `out`.
fn encode_into(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> io::Result<()> {
    write_at_end(out, 512, |buf| {
        encode(buf).map_err(|e| match e {
            EncodeError::InsufficientSize(e) => Short::Room(e.required_size),
            EncodeError::AlreadyEncoded => Short::Nothing,
        })
    })
}

/// Let `encrypt` write `len` bytes of plaintext as records at the end of
/// `out`.
fn encrypt_into(
    out: &mut Vec<u8>,
    len: usize,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> io::Result<()> {
    let room = len + (len / MAX_FRAGMENT + 1) * RECORD_OVERHEAD;
    write_at_end(out, room, |buf| {
        encrypt(buf).map_err(|e| match e {
            EncryptError::InsufficientSize(e) => Short::Room(e.required_size),
            e => Short::Failed(tls_error(e)),
        })
    })
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.delivered < this.plaintext.len() {
                let pending = &this.plaintext[this.delivered..];
                let n = pending.len().min(buf.remaining());
                buf.put_slice(&pending[..n]);
                this.delivered += n;
                if this.delivered == this.plaintext.len() {
                    this.plaintext = Vec::new();
                    this.delivered = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let stop = this.drive(Want::Read)?;
            // Handshake messages after the handshake (a key update's
            // answer) go out when the socket takes them; a later write
            // sends them otherwise, ahead of its own data.
            if !this.outgoing.is_empty() {
                if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            if this.delivered < this.plaintext.len() {
                continue;
            }
            if matches!(stop, Stop::Closed) {
                continue;
            }
            let received = if this.incoming.is_empty() {
                ready!(this.poll_receive_on_stack(cx))?
            } else {
                ready!(this.poll_receive(cx))?
            };
            if received == 0 {
                // TCP closed without close_notify: for a stream of XML
                // the parser tells whether anything was cut short.
                this.read_closed = true;
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was encrypted before goes out first, so at most one write's
        // worth of ciphertext waits in memory.
        ready!(this.poll_send(cx))?;
        if this.close_notify_queued {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.drive(Want::Write(data))?;
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_notify_queued {
            ready!(this.poll_send(cx))?;
            this.close_notify_queued = true;
            // A connection that already failed has nothing to close.
            let _ = this.drive(Want::CloseNotify);
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn server_config(dir: &std::path::Path) -> Arc<ServerConfig> {
        crate::tls::server_config(None, None, "localhost", dir).unwrap()
    }

    fn connector() -> tokio_rustls::TlsConnector {
        let cfg = roost_insecure_tls::client_config(&[]).unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    }

    /// A loopback TCP pair: (client side, server side).
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    async fn handshake(
        dir: &std::path::Path,
    ) -> (tokio_rustls::client::TlsStream<TcpStream>, TlsStream) {
        let (client, server) = tcp_pair().await;
        let name = ServerName::try_from("localhost").unwrap();
        let (c, s) = tokio::join!(
            connector().connect(name, client),
            TlsStream::accept(server, server_config(dir))
        );
        (c.unwrap(), s.unwrap())
    }

    #[tokio::test]
    async fn carries_data_both_ways_and_frees_buffers_when_drained() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, mut server) = handshake(dir.path()).await;
        assert!(server.incoming.is_empty() && server.outgoing.capacity() == 0);

        // More than one record each way (records hold at most 16 KiB).
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let send = big.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&send).await.unwrap();
            client.flush().await.unwrap();
            client
        });
        let mut got = vec![0u8; big.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        let mut client = writer.await.unwrap();

        server.write_all(&big).await.unwrap();
        server.flush().await.unwrap();
        let mut back = vec![0u8; big.len()];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, big);

        // Everything was read and written: nothing is held.
        assert_eq!(server.incoming.capacity(), 0);
        assert_eq!(server.plaintext.capacity(), 0);
        assert_eq!(server.outgoing.capacity(), 0);
    }

    #[tokio::test]
    async fn close_notify_ends_the_stream_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, mut server) = handshake(dir.path()).await;
        client.write_all(b"last words").await.unwrap();
        client.shutdown().await.unwrap();
        let mut all = Vec::new();
        server.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"last words");

        server.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn garbage_instead_of_a_client_hello_fails_the_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, server) = tcp_pair().await;
        client
            .write_all(b"<stream:stream to='localhost'>")
            .await
            .unwrap();
        let err = TlsStream::accept(server, server_config(dir.path()))
            .await
            .err()
            .expect("not TLS");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // The server said why (an alert record, content type 21) and closed.
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        assert_eq!(answer.first(), Some(&21));
    }

    #[tokio::test]
    async fn a_forged_record_fails_the_connection_once_with_an_alert() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, mut server) = handshake(dir.path()).await;
        // An application-data record that was never encrypted by the peer.
        let mut forged = vec![23, 3, 3, 0, 40];
        forged.resize(5 + 40, 7);
        client.get_mut().0.write_all(&forged).await.unwrap();
        let mut buf = [0u8; 64];
        let err = server.read(&mut buf).await.expect_err("forged");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Later use fails the same way, and closing still works.
        assert!(server.read(&mut buf).await.is_err());
        assert!(server.write_all(b"x").await.is_err());
        let _ = server.shutdown().await;
        // The client learns why: rustls reports the alert it received.
        let err = client.read(&mut buf).await.expect_err("alert");
        assert!(err.to_string().contains("BadRecordMac"), "{err}");
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_mid_handshake_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, server) = tcp_pair().await;
        // The first bytes of a handshake record, then nothing.
        client.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap();
        client.shutdown().await.unwrap();
        let err = TlsStream::accept(server, server_config(dir.path()))
            .await
            .err()
            .expect("cut short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn an_endless_handshake_message_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, server) = tcp_pair().await;
        let feeder = tokio::spawn(async move {
            // A ClientHello header claiming 16 MiB, then filler records.
            let mut first = vec![22, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff];
            first.resize(5 + 0x4000, 0);
            let _ = client.write_all(&first).await;
            let mut more = vec![22, 3, 3, 0x40, 0x00];
            more.resize(5 + 0x4000, 0);
            for _ in 0..16 {
                if client.write_all(&more).await.is_err() {
                    break;
                }
            }
            client
        });
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            TlsStream::accept(server, server_config(dir.path())),
        )
        .await
        .expect("bounded");
        assert!(res.is_err());
        drop(feeder.await);
    }
}
