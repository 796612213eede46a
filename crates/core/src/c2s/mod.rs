//! Client-to-server streams (RFC 6120): one task per connection that first
//! negotiates (TLS, SASL, resource binding) and then runs the session. The
//! connection is an XML stream over TCP/TLS, RFC 7395 over WebSocket or
//! XEP-0206 over BOSH (`conn.rs`); the negotiation and the session do not
//! care which.

pub mod bosh;
pub mod channel_binding;
pub mod conn;
pub mod csi;
pub mod fast;
pub mod negotiation;
pub mod receipts;
pub mod sasl2;
pub mod session;
pub mod stream_management;
pub mod throttle;
pub mod tls_exporter;
pub mod tls_stream;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use roost_stream::Limits;
use tokio::net::TcpStream;

use crate::server::Server;
use conn::{Connection, Transport};
use tls_stream::TlsStream;

/// The parsing limits of every client stream.
pub fn limits(server: &Server) -> Limits {
    Limits {
        max_stanza_bytes: server.config.limits.max_stanza_size,
        ..Limits::default()
    }
}

/// Serve one accepted TCP connection until it ends. `direct_tls` is XEP-0368.
pub async fn serve_connection(
    server: Arc<Server>,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
    _permit: crate::listener::ConnectionPermit,
) {
    let _ = tcp.set_nodelay(true);
    let transport = if direct_tls {
        let handshake = tokio::time::timeout(
            std::time::Duration::from_secs(server.config.limits.handshake_timeout),
            // Boxed: the handshake's state is large and short-lived.
            Box::pin(TlsStream::accept(tcp, server.tls.clone())),
        )
        .await;
        match handshake {
            Ok(Ok(tls)) => Transport::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                crate::limits::hit(crate::limits::Limit::HandshakeTimeout);
                return;
            }
        }
    } else {
        Transport::Plain(tcp)
    };
    let conn = Connection::xml(transport, peer, limits(&server));
    // Boxed: the task keeps only what the stage it is in needs, not the
    // largest of the handshake, negotiation and session states.
    Box::pin(run(server, conn)).await;
}

/// Negotiate and run a session on a connection of any framing.
pub async fn run(server: Arc<Server>, mut conn: Connection) {
    use tracing::Instrument;
    conn.shape(server.shaper_rates.as_ref());
    let peer = conn.peer();
    let span = if conn.is_websocket() {
        tracing::info_span!("c2s", %peer, framing = "websocket")
    } else if let Some(sid) = conn.bosh_sid() {
        tracing::info_span!("c2s", %peer, framing = "bosh", sid)
    } else {
        tracing::info_span!("c2s", %peer)
    };
    async move {
        let negotiated = Box::pin(negotiation::negotiate(&server, conn)).await;
        if let Some(negotiated) = negotiated {
            Box::pin(session::run(server, negotiated)).await;
        }
    }
    .instrument(span)
    .await;
}
