//! Client-to-server streams (RFC 6120): one task per connection that first
//! negotiates (TLS, SASL, resource binding) and then runs the session.

pub mod conn;
pub mod csi;
pub mod negotiation;
pub mod session;
pub mod stream_management;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::server::Server;
use conn::Transport;

/// Serve one accepted connection until it ends. `direct_tls` is XEP-0368.
pub async fn serve_connection(
    server: Arc<Server>,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
    _permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let transport = if direct_tls {
        let acceptor = tokio_rustls::TlsAcceptor::from(server.tls.clone());
        let handshake = tokio::time::timeout(
            std::time::Duration::from_secs(server.config.limits.auth_timeout),
            acceptor.accept(tcp),
        )
        .await;
        match handshake {
            Ok(Ok(tls)) => Transport::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        }
    } else {
        Transport::Plain(tcp)
    };
    use tracing::Instrument;
    async move {
        if let Some(negotiated) = negotiation::negotiate(&server, transport, peer).await {
            session::run(server, negotiated).await;
        }
    }
    .instrument(tracing::info_span!("c2s", %peer))
    .await;
}
