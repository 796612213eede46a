//! The WebSocket opening handshake (RFC 6455 §4.2) for RFC 7395: a GET to
//! `/xmpp-websocket` that asks for the `xmpp` subprotocol (refused without
//! it, §3.1) from an allowed origin. After the 101 response the upgraded
//! connection becomes a c2s stream with the same negotiation and session as
//! TCP, holding the HTTP connection's permit.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use roost_stream::websocket::SUBPROTOCOL;
use sha1::{Digest, Sha1};

use super::{host_meta, origin, plain, Body, ConnInfo};
use crate::c2s::conn::Connection;
use crate::c2s::websocket::WebSocket;

/// RFC 6455 §1.3: appended to the client's key for Sec-WebSocket-Accept.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub(crate) fn upgrade(info: &Arc<ConnInfo>, req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    if req.method() != Method::GET {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "WebSocket upgrades use GET");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let is_upgrade = has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket");
    if !is_upgrade {
        let mut r = plain(
            StatusCode::UPGRADE_REQUIRED,
            "this is an XMPP WebSocket endpoint (RFC 7395)",
        );
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return r;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        != Some("13")
    {
        let mut r = plain(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    // §4.2.1 says the key is 16 random bytes, base64-encoded, but the
    // accept value is a hash of whatever was sent, and clients and
    // compliance checkers send other lengths; like Prosody and ejabberd we
    // only require a key to be present.
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.trim().is_empty());
    let Some(key) = key else {
        return plain(StatusCode::BAD_REQUEST, "missing or bad Sec-WebSocket-Key");
    };
    // RFC 7395 §3.1: the client asks for "xmpp"; we speak nothing else.
    if !has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
        return plain(
            StatusCode::BAD_REQUEST,
            "the \"xmpp\" WebSocket subprotocol (RFC 7395) is required",
        );
    }
    let endpoint = &info.endpoint;
    let authority = host_meta::request_authority(info, &req);
    let own = origin::Origin::parse(&format!(
        "{}://{authority}",
        if endpoint.is_tls() { "https" } else { "http" }
    ));
    let origin_header = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    if !origin::allowed(
        origin_header,
        &endpoint.config.allowed_origins,
        own.as_ref(),
    ) {
        tracing::info!(peer = %info.peer, origin = ?origin_header, "WebSocket origin refused");
        return plain(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let accept = accept_key(key);

    let info = info.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(peer = %info.peer, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let server = info.server.clone();
        let ping = Duration::from_secs(info.endpoint.config.ping_interval);
        let ws = WebSocket::accept(
            Box::new(TokioIo::new(upgraded)),
            info.endpoint.is_tls(),
            crate::c2s::limits(&server),
            ping,
        )
        .await;
        // `info` holds the connection's permit until the stream ends.
        crate::c2s::run(server, Connection::websocket(ws, info.peer)).await;
        drop(info);
    });

    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455() {
        // RFC 6455 §1.3 example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
