//! The HTTP listener for web clients: XMPP over WebSocket (RFC 7395) at
//! `/xmpp-websocket`, BOSH (XEP-0124/XEP-0206) at `/http-bind`, and XEP-0156 connection discovery at
//! `/.well-known/host-meta` and `/.well-known/host-meta.json`, and XEP-0363
//! file uploads under `/upload/` (`crate::upload::http`). HTTP/1.1 only
//! (hyper), plain or TLS.
//!
//! Limits: request headers are bounded in size and count, an HTTP
//! connection must upgrade (or finish its requests) within
//! `request_timeout` (plus `wait` while a BOSH request is held), WebSocket
//! messages and BOSH bodies are bounded by the stanza limit, and every
//! connection, upgraded or not, and every BOSH session holds one of the
//! server's connection permits, shared with the c2s ports.

pub mod bosh;
pub mod host_meta;
pub mod origin;
pub mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::server::Server;

/// The WebSocket endpoint's path.
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";

/// `[http]`: settings of the HTTP listeners (`listen.http`, `listen.https`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Web origins (`scheme://host[:port]`) whose pages may open a
    /// WebSocket; `"*"` allows every origin. Empty: requests without an
    /// Origin (non-browser clients), pages on loopback hosts (`localhost`,
    /// 127.0.0.0/8, `[::1]`) and pages of the endpoint's own origin.
    pub allowed_origins: Vec<String>,
    /// Seconds of WebSocket silence after which the server pings; a ping
    /// unanswered for as long again means the connection is lost.
    pub ping_interval: u64,
    /// Seconds an HTTP connection may take, TLS handshake included, to
    /// send its requests or upgrade to a WebSocket.
    pub request_timeout: u64,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_size: usize,
    /// `[http.bosh]`: BOSH at `/http-bind` (XEP-0124/XEP-0206).
    pub bosh: bosh::BoshConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allowed_origins: Vec::new(),
            ping_interval: 30,
            request_timeout: 30,
            max_header_size: 16 * 1024,
            bosh: bosh::BoshConfig::default(),
        }
    }
}

/// Request headers at most (hyper's default is 100).
const MAX_HEADERS: usize = 64;

impl HttpConfig {
    /// The offending key and why, for the server's config validation.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for o in &self.allowed_origins {
            if o != "*" && origin::Origin::parse(o).is_none() {
                return Err((
                    "http.allowed_origins",
                    format!("{o:?} is not \"*\" or scheme://host[:port]"),
                ));
            }
        }
        if self.ping_interval < 1 {
            return Err(("http.ping_interval", "value too small".into()));
        }
        if self.request_timeout < 1 {
            return Err(("http.request_timeout", "value too small".into()));
        }
        // hyper's read buffer cannot be smaller than 8 KiB.
        if self.max_header_size < 8192 {
            return Err((
                "http.max_header_size",
                "value too small (at least 8192)".into(),
            ));
        }
        self.bosh.validate()
    }
}

/// One HTTP listener: its settings, its TLS config (https) and address.
pub struct HttpEndpoint {
    pub config: HttpConfig,
    /// `Some` on the https listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The bound address, for URLs when a request's Host is unusable.
    pub local: SocketAddr,
    /// The listener's BOSH sessions; `None` when BOSH is off.
    pub(crate) bosh: Option<Arc<bosh::Sessions>>,
}

impl HttpEndpoint {
    /// `tls`: the c2s TLS config, whose certificate https shares; its ALPN
    /// ("xmpp-client") is replaced by `http/1.1` on a copy.
    pub fn new(
        config: HttpConfig,
        tls: Option<&Arc<rustls::ServerConfig>>,
        local: SocketAddr,
    ) -> HttpEndpoint {
        let tls = tls.map(|t| {
            let mut cfg = (**t).clone();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(cfg)
        });
        let bosh = config
            .bosh
            .enabled
            .then(|| Arc::new(bosh::Sessions::default()));
        HttpEndpoint {
            config,
            tls,
            local,
            bosh,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// What a request handler knows about its connection.
pub(crate) struct ConnInfo {
    pub server: Arc<Server>,
    pub endpoint: Arc<HttpEndpoint>,
    pub peer: SocketAddr,
    /// Held by the HTTP connection and, after an upgrade, by the stream
    /// (both hold this `ConnInfo`).
    _permit: crate::listener::ConnectionPermit,
    /// When the connection is cut unless it is still moving data (an
    /// upload extends it, see `extend_deadline`).
    deadline: std::sync::Mutex<tokio::time::Instant>,
}

impl ConnInfo {
    /// An upload in progress keeps its connection for another
    /// `request_timeout` after each chunk.
    pub(crate) fn extend_deadline(&self) {
        let next =
            tokio::time::Instant::now() + Duration::from_secs(self.endpoint.config.request_timeout);
        if let Ok(mut d) = self.deadline.lock() {
            *d = next;
        }
    }

    /// A held BOSH request keeps its connection for `held` more than
    /// usual; `Duration::ZERO` after the answer.
    pub(crate) fn keep_open_for(&self, held: Duration) {
        let next = tokio::time::Instant::now()
            + held
            + Duration::from_secs(self.endpoint.config.request_timeout);
        if let Ok(mut d) = self.deadline.lock() {
            *d = next;
        }
    }

    fn deadline(&self) -> tokio::time::Instant {
        self.deadline
            .lock()
            .map(|d| *d)
            .unwrap_or_else(|_| tokio::time::Instant::now())
    }
}

pub(crate) type Body = Full<Bytes>;

/// Serve one accepted TCP connection until it ends or upgrades.
pub async fn serve_connection(
    server: Arc<Server>,
    endpoint: Arc<HttpEndpoint>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: crate::listener::ConnectionPermit,
) {
    let _ = tcp.set_nodelay(true);
    let limit = Duration::from_secs(endpoint.config.request_timeout);
    let mut shutdown = server.shutdown_signal();
    let info = Arc::new(ConnInfo {
        server: server.clone(),
        endpoint: endpoint.clone(),
        peer,
        _permit: permit,
        deadline: std::sync::Mutex::new(tokio::time::Instant::now() + limit),
    });
    let watch = info.clone();
    let served = async {
        match &endpoint.tls {
            Some(tls) => {
                // The same TLS stream as c2s: a WebSocket session is as
                // long-lived and as idle as a TCP one.
                match crate::c2s::tls_stream::TlsStream::accept(tcp, tls.clone()).await {
                    Ok(stream) => serve_http(info, stream).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                }
            }
            None => serve_http(info, tcp).await,
        }
    };
    let expired = async {
        loop {
            let at = watch.deadline();
            tokio::time::sleep_until(at).await;
            if watch.deadline() <= at {
                return;
            }
        }
    };
    tokio::select! {
        _ = served => {}
        _ = expired => tracing::debug!(%peer, "HTTP connection timed out"),
        _ = crate::server::until_shutdown(&mut shutdown) => {}
    }
}

async fn serve_http<S>(info: Arc<ConnInfo>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &info.endpoint.config;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.request_timeout))
        .max_buf_size(cfg.max_header_size.max(8192))
        .max_header_size(cfg.max_header_size)
        .max_headers(MAX_HEADERS);
    let handler_info = info.clone();
    let service = hyper::service::service_fn(move |req| {
        let info = handler_info.clone();
        async move { Ok::<_, Infallible>(route(&info, req).await) }
    });
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(peer = %info.peer, error = %e, "HTTP connection failed");
    }
}

async fn route(
    info: &Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<crate::upload::http::ResBody> {
    let path = req.uri().path().to_string();
    tracing::debug!(peer = %info.peer, method = %req.method(), %path, "HTTP request");
    if path.starts_with(crate::upload::PATH_PREFIX) {
        return crate::upload::http::handle(info, req).await;
    }
    if path == bosh::PATH && info.endpoint.bosh.is_some() {
        return bosh::handle(info, req)
            .await
            .map(|b| b.map_err(|never| match never {}).boxed_unsync());
    }
    route_small(info, req, &path).map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

/// The answers that fit in memory.
fn route_small(info: &Arc<ConnInfo>, req: Request<Incoming>, path: &str) -> Response<Body> {
    match (req.method(), path) {
        (_, WEBSOCKET_PATH) => websocket::upgrade(info, req),
        (&Method::GET | &Method::HEAD, crate::metrics::PATH) => crate::metrics::respond(info),
        (&Method::GET | &Method::HEAD, host_meta::XRD_PATH) => {
            host_meta::respond(info, &req, host_meta::Format::Xrd)
        }
        (&Method::GET | &Method::HEAD, host_meta::JRD_PATH) => {
            host_meta::respond(info, &req, host_meta::Format::Jrd)
        }
        (&Method::OPTIONS, host_meta::XRD_PATH | host_meta::JRD_PATH) => host_meta::preflight(),
        (_, host_meta::XRD_PATH | host_meta::JRD_PATH) => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here");
            r.headers_mut().insert(
                header::ALLOW,
                header::HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            r
        }
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

/// A short text response.
pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_key() {
        let mut c = HttpConfig::default();
        c.validate().unwrap();
        c.allowed_origins = vec!["https://chat.example.org".into(), "*".into()];
        c.validate().unwrap();
        c.allowed_origins = vec!["chat.example.org".into()];
        assert_eq!(c.validate().unwrap_err().0, "http.allowed_origins");
        let c = HttpConfig {
            max_header_size: 100,
            ..HttpConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "http.max_header_size");
    }

    #[test]
    fn https_gets_its_own_alpn() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let mut c2s = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        c2s.alpn_protocols = vec![b"xmpp-client".to_vec()];
        let c2s = Arc::new(c2s);
        let e = HttpEndpoint::new(
            HttpConfig::default(),
            Some(&c2s),
            "127.0.0.1:5281".parse().unwrap(),
        );
        assert_eq!(e.tls.unwrap().alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(c2s.alpn_protocols, vec![b"xmpp-client".to_vec()]);
    }
}
