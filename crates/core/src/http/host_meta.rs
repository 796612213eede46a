//! XEP-0156: Discovering Alternative XMPP Connection Methods, HTTP lookup
//! (RFC 6415 host-meta): the WebSocket endpoint, and the BOSH endpoint when
//! it is on, as an XRD document and as JRD (JSON). The URLs are built from
//! the request's Host when it looks like `host[:port]`, else from the
//! listener's address, and use `wss`/`https` on the https listener. Readable from any origin (XEP-0156 implementation notes: CORS).

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};

use super::{bosh, origin, Body, ConnInfo, WEBSOCKET_PATH};

pub const XRD_PATH: &str = "/.well-known/host-meta";
pub const JRD_PATH: &str = "/.well-known/host-meta.json";
/// XEP-0156 link relation for RFC 7395.
pub const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";
/// XEP-0156 link relation for XEP-0206 (BOSH).
pub const REL_BOSH: &str = "urn:xmpp:alt-connections:xbosh";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xrd,
    Jrd,
}

/// The `host[:port]` clients reach this listener at, as the request says.
pub(crate) fn request_authority(info: &ConnInfo, req: &Request<Incoming>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        Some(h) if origin::valid_authority(h) => h.to_string(),
        _ => fallback_authority(info),
    }
}

fn fallback_authority(info: &ConnInfo) -> String {
    let local = info.endpoint.local;
    if local.ip().is_unspecified() {
        // Bound to every address: the domain is the best guess.
        format!("{}:{}", info.server.config.domain, local.port())
    } else {
        local.to_string()
    }
}

/// The WebSocket URL for this request.
pub fn websocket_url(tls: bool, authority: &str) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    format!("{scheme}://{authority}{WEBSOCKET_PATH}")
}

/// The BOSH URL for this request.
pub fn bosh_url(tls: bool, authority: &str) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{authority}{}", bosh::PATH)
}

/// Links as (relation, URL).
pub fn xrd(links: &[(&str, String)]) -> String {
    let mut s = String::from(
        "<?xml version='1.0' encoding='utf-8'?>\n\
         <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n",
    );
    for (rel, url) in links {
        s.push_str(&format!("  <Link rel='{rel}' href='{url}'/>\n"));
    }
    s.push_str("</XRD>\n");
    s
}

pub fn jrd(links: &[(&str, String)]) -> String {
    // URLs hold only URL-safe characters (validated authority), so no
    // JSON escaping is needed.
    let links: Vec<String> = links
        .iter()
        .map(|(rel, url)| format!("{{\"rel\":\"{rel}\",\"href\":\"{url}\"}}"))
        .collect();
    format!("{{\"links\":[{}]}}\n", links.join(","))
}

pub(crate) fn respond(info: &ConnInfo, req: &Request<Incoming>, format: Format) -> Response<Body> {
    let tls = info.endpoint.is_tls();
    let authority = request_authority(info, req);
    let mut links = vec![(REL_WEBSOCKET, websocket_url(tls, &authority))];
    if info.endpoint.bosh.is_some() {
        links.push((REL_BOSH, bosh_url(tls, &authority)));
    }
    let (body, content_type) = match format {
        Format::Xrd => (xrd(&links), "application/xrd+xml; charset=utf-8"),
        Format::Jrd => (jrd(&links), "application/json"),
    };
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("max-age=300"),
    );
    r
}

/// CORS preflight for the host-meta documents.
pub(crate) fn preflight() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        header::HeaderValue::from_static("86400"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_the_websocket_and_bosh_links() {
        let url = websocket_url(true, "chat.example.org:5281");
        assert_eq!(url, "wss://chat.example.org:5281/xmpp-websocket");
        let bosh = bosh_url(true, "chat.example.org:5281");
        assert_eq!(bosh, "https://chat.example.org:5281/http-bind");
        let links = [(REL_WEBSOCKET, url.clone()), (REL_BOSH, bosh.clone())];
        let x: minidom::Element = xrd(&links)
            .trim_start_matches("<?xml version='1.0' encoding='utf-8'?>\n")
            .parse()
            .unwrap();
        let link = x
            .get_child("Link", "http://docs.oasis-open.org/ns/xri/xrd-1.0")
            .unwrap();
        assert_eq!(link.attr("rel"), Some(REL_WEBSOCKET));
        assert_eq!(link.attr("href"), Some(url.as_str()));
        let bosh_link = x
            .children()
            .find(|l| l.attr("rel") == Some(REL_BOSH))
            .unwrap();
        assert_eq!(bosh_link.attr("href"), Some(bosh.as_str()));
        assert_eq!(
            jrd(&[(REL_WEBSOCKET, "ws://localhost:5280/xmpp-websocket".into())]),
            "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"ws://localhost:5280/xmpp-websocket\"}]}\n"
        );
    }
}
