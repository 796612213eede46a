//! Accept loops for client connections: STARTTLS on `listen.c2s`, direct
//! TLS on `listen.c2s_tls` (XEP-0368), HTTP and HTTPS for web clients on
//! `listen.http` and `listen.https` (RFC 7395 WebSocket, XEP-0156), and
//! other servers on `listen.s2s` and `listen.s2s_tls` (federation), external
//! components on `listen.component` (XEP-0114), SOCKS5 bytestreams on
//! `listen.proxy65` (XEP-0065). A
//! listener takes an already bound socket, so tests bind port 0; every
//! client connection takes one of the `max_connections` permits, shared by all
//! listeners, and a place among its address's connections
//! (`limits/per_address.rs`); connections beyond either are refused at once,
//! with a `policy-violation` stream error on the plain c2s port and HTTP 503
//! (server full) or 429 (this address) on the plain HTTP port.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::c2s;
use crate::http::{self, HttpEndpoint};
use crate::limits::per_address::{AddressGuard, Refusal};
use crate::limits::{hit, Limit};
use crate::server::Server;

/// What a client connection holds while it is open: its place in
/// `limits.max_connections` and among its address's connections.
pub struct ConnectionPermit {
    _server: OwnedSemaphorePermit,
    _address: AddressGuard,
}

/// How a listener tells a refused client why.
#[derive(Clone, Copy)]
enum Refuse {
    /// RFC 6120 §4.9.1.1: our stream header and a stream error, at once
    /// (allowed before the client's header).
    StreamError,
    /// An HTTP response.
    Http,
    /// TLS from the first byte: nothing can be said in clear.
    Close,
}

pub async fn serve_c2s(server: Arc<Server>, listener: TcpListener, direct_tls: bool) {
    let refuse = if direct_tls {
        Refuse::Close
    } else {
        Refuse::StreamError
    };
    accept_loop(
        server,
        listener,
        refuse,
        move |server, tcp, peer, permit| {
            tokio::spawn(c2s::serve_connection(server, tcp, peer, direct_tls, permit));
        },
    )
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
    let refuse = if endpoint.is_tls() {
        Refuse::Close
    } else {
        Refuse::Http
    };
    accept_loop(
        server,
        listener,
        refuse,
        move |server, tcp, peer, permit| {
            tokio::spawn(http::serve_connection(
                server,
                endpoint.clone(),
                tcp,
                peer,
                permit,
            ));
        },
    )
    .await
}

async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    refuse: Refuse,
    spawn: impl Fn(Arc<Server>, TcpStream, SocketAddr, ConnectionPermit),
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
        if server.cluster.get().is_some_and(|c| c.is_draining()) {
            // A drained node takes no new clients: they go to another.
            send_refusal(
                &server,
                tcp,
                refuse,
                roost_proto::StreamError::SystemShutdown,
                "this node is being drained; connect to another",
                "503 Service Unavailable",
            );
            continue;
        }
        let Ok(global) = server.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            hit(Limit::Connections);
            tell_refused(&server, tcp, refuse, None);
            continue;
        };
        let address = match server.addresses.admit(peer.ip()) {
            Ok(g) => g,
            Err(why) => {
                tracing::info!(%peer, ?why, "per-address connection limit; refusing");
                tell_refused(&server, tcp, refuse, Some(why));
                continue;
            }
        };
        let permit = ConnectionPermit {
            _server: global,
            _address: address,
        };
        spawn(server.clone(), tcp, peer, permit);
    }
}

/// Tell a refused client why, briefly and without holding a permit, then
/// close. `why` is `None` when the whole server is full.
fn tell_refused(server: &Server, tcp: TcpStream, refuse: Refuse, why: Option<Refusal>) {
    let text = match why {
        None => "the server has too many connections",
        Some(Refusal::TooMany) => "too many connections from your address",
        Some(Refusal::TooFast) => "too many new connections from your address",
    };
    let condition = match why {
        None => roost_proto::StreamError::ResourceConstraint,
        Some(_) => roost_proto::StreamError::PolicyViolation,
    };
    // RFC 6585 §4 for one client's excess, RFC 9110 §15.6.4 for a full
    // server.
    let status = match why {
        None => "503 Service Unavailable",
        Some(_) => "429 Too Many Requests",
    };
    send_refusal(server, tcp, refuse, condition, text, status);
}

fn send_refusal(
    server: &Server,
    mut tcp: TcpStream,
    refuse: Refuse,
    condition: roost_proto::StreamError,
    text: &str,
    status: &str,
) {
    let answer = match refuse {
        Refuse::Close => return,
        Refuse::StreamError => {
            let mut out = roost_stream::writer::stream_header(
                &server.config.domain,
                &roost_proto::id::stream_id(),
                None,
                "en",
            );
            out.extend(roost_stream::writer::stream_error(condition, Some(text)));
            out
        }
        Refuse::Http => {
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 10\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
            .into_bytes()
        }
    };
    tokio::spawn(async move {
        let write = async {
            tcp.write_all(&answer).await?;
            tcp.shutdown().await
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), write).await;
    });
}
