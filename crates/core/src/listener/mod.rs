//! Accept loops for client connections: STARTTLS on `listen.c2s`, direct
//! TLS on `listen.c2s_tls` (XEP-0368), HTTP and HTTPS for web clients on
//! `listen.http` and `listen.https` (RFC 7395 WebSocket, XEP-0156), and
//! other servers on `listen.s2s` and `listen.s2s_tls` (federation), external
//! components on `listen.component` (XEP-0114), SOCKS5 bytestreams on
//! `listen.proxy65` (XEP-0065). A
//! listener takes an already bound socket, so tests bind port 0; every
//! client connection takes one of the `max_connections` permits, shared by all
//! listeners, and connections beyond it are refused at once.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::c2s;
use crate::http::{self, HttpEndpoint};
use crate::server::Server;

pub async fn serve_c2s(server: Arc<Server>, listener: TcpListener, direct_tls: bool) {
    accept_loop(server, listener, move |server, tcp, peer, permit| {
        tokio::spawn(c2s::serve_connection(server, tcp, peer, direct_tls, permit));
    })
    .await
}

/// Server-to-server streams (federation): STARTTLS on `listen.s2s`,
/// direct TLS on `listen.s2s_tls`. They do not take client permits: the
/// federation has its own limit (`s2s.max_incoming`).
pub async fn serve_s2s(server: Arc<Server>, listener: TcpListener, direct_tls: bool) {
    accept_each(server, listener, move |server, tcp, peer| {
        tokio::spawn(crate::s2s::serve_connection(server, tcp, peer, direct_tls));
    })
    .await
}

/// External components (XEP-0114) on `[listen] component`.
pub async fn serve_component(
    server: Arc<Server>,
    listener: TcpListener,
    components: Arc<crate::component::Components>,
) {
    accept_each(server, listener, move |server, tcp, peer| {
        tokio::spawn(crate::component::serve_connection(
            server,
            components.clone(),
            tcp,
            peer,
        ));
    })
    .await
}

/// SOCKS5 connections for the XEP-0065 proxy on `[listen] proxy65`; the
/// proxy keeps its own connection limit.
pub async fn serve_proxy65(
    server: Arc<Server>,
    listener: TcpListener,
    proxy: Arc<crate::proxy65::Proxy65>,
) {
    accept_each(server, listener, move |_, tcp, peer| {
        tokio::spawn(proxy.clone().serve_connection(tcp, peer));
    })
    .await
}

/// Accept until shutdown, handing each connection to `spawn`; the
/// services behind these listeners keep their own limits.
async fn accept_each(
    server: Arc<Server>,
    listener: TcpListener,
    spawn: impl Fn(Arc<Server>, TcpStream, SocketAddr),
) {
    let mut shutdown = server.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::server::until_shutdown(&mut shutdown) => return,
        };
        match accepted {
            Ok((tcp, peer)) => spawn(server.clone(), tcp, peer),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

pub async fn serve_http(server: Arc<Server>, listener: TcpListener, endpoint: Arc<HttpEndpoint>) {
    accept_loop(server, listener, move |server, tcp, peer, permit| {
        tokio::spawn(http::serve_connection(
            server,
            endpoint.clone(),
            tcp,
            peer,
            permit,
        ));
    })
    .await
}

async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    spawn: impl Fn(Arc<Server>, TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    let mut shutdown = server.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::server::until_shutdown(&mut shutdown) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = server.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(tcp);
            continue;
        };
        spawn(server.clone(), tcp, peer, permit);
    }
}
