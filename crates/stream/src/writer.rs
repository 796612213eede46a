//! The writing side of a stream: header, features, stream errors and the
//! closing tag are framed here because they carry the `stream:` prefix;
//! stanzas are serialised by `roost_proto::serialize`.

use minidom::Element;
use roost_proto::serialize::{attr_escaped as escape_attr, text_escaped as escape_text};
use roost_proto::{ns, StreamError};

/// The response stream header (RFC 6120 §4.7), `from` our domain.
pub fn stream_header(from: &str, id: &str, to: Option<&str>, lang: &str) -> Vec<u8> {
    let mut s = String::with_capacity(256);
    s.push_str("<?xml version='1.0'?><stream:stream xmlns='");
    s.push_str(ns::CLIENT);
    s.push_str("' xmlns:stream='");
    s.push_str(ns::STREAM);
    s.push_str("' version='1.0' from='");
    s.push_str(&escape_attr(from));
    s.push_str("' id='");
    s.push_str(&escape_attr(id));
    if let Some(to) = to {
        s.push_str("' to='");
        s.push_str(&escape_attr(to));
    }
    s.push_str("' xml:lang='");
    s.push_str(&escape_attr(lang));
    s.push_str("'>");
    s.into_bytes()
}

/// `<stream:features>` around the given feature elements.
pub fn features(children: &[Element]) -> Vec<u8> {
    let mut out = b"<stream:features>".to_vec();
    for c in children {
        element_into(c, &mut out);
    }
    out.extend_from_slice(b"</stream:features>");
    out
}

/// A stream error followed by the closing tag (RFC 6120 §4.9.1.1).
pub fn stream_error(err: StreamError, text: Option<&str>) -> Vec<u8> {
    stream_error_with(err, text, None)
}

/// A stream error with an application-specific condition (RFC 6120
/// §4.9.4), such as XEP-0198's `<handled-count-too-high/>`.
pub fn stream_error_with(err: StreamError, text: Option<&str>, app: Option<&Element>) -> Vec<u8> {
    let mut s = format!(
        "<stream:error><{} xmlns='{}'/>",
        err.as_str(),
        ns::STREAMS_ERR
    );
    if let Some(t) = text {
        s.push_str(&format!(
            "<text xmlns='{}'>{}</text>",
            ns::STREAMS_ERR,
            escape_text(t)
        ));
    }
    let mut out = s.into_bytes();
    if let Some(app) = app {
        roost_proto::serialize::element_into(app, &mut out);
    }
    out.extend_from_slice(b"</stream:error></stream:stream>");
    out
}

pub const STREAM_END: &[u8] = b"</stream:stream>";

/// Serialise one element.
pub fn element(el: &Element) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    element_into(el, &mut out);
    out
}

/// Serialise one element at the end of `out`.
pub fn element_into(el: &Element, out: &mut Vec<u8>) {
    roost_proto::serialize::element_into(el, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::{Limits, StreamEvent, XmlReader};

    #[test]
    fn what_we_write_our_reader_reads() {
        let mut bytes = stream_header("localhost", "abc", Some("u@localhost"), "en");
        bytes.extend(features(&[Element::bare("bind", ns::BIND)]));
        let msg: Element =
            "<message xmlns='jabber:client' to='a@b'><body>&lt;3 &amp; 'x'</body></message>"
                .parse()
                .unwrap();
        bytes.extend(element(&msg));
        bytes.extend(stream_error(
            StreamError::Conflict,
            Some("replaced <by> another"),
        ));
        let mut r = XmlReader::new(Limits::default());
        let mut out = Vec::new();
        r.feed(&bytes, &mut out).unwrap();
        assert!(matches!(&out[0], StreamEvent::Header(h) if h.id.as_deref() == Some("abc")));
        assert!(
            matches!(&out[1], StreamEvent::Element(e) if e.name() == "features" && e.has_child("bind", ns::BIND))
        );
        assert!(matches!(&out[2], StreamEvent::Element(e) if e == &msg));
        assert!(
            matches!(&out[3], StreamEvent::Element(e) if e.name() == "error" && e.has_child("conflict", ns::STREAMS_ERR))
        );
        assert!(matches!(out[4], StreamEvent::End));
    }
}
