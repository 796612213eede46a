//! RFC 7395 XMPP over WebSocket framing: every text message carries one
//! complete XML element (§3.3.3); `<open/>` and `<close/>` in the framing
//! namespace stand for the stream header and the end of the stream (§3.3.1),
//! and `stream:features` and `stream:error` declare their own prefix.

use minidom::Element;
use roost_proto::serialize::{attr_escaped as escape_attr, text_escaped as escape_text};
use roost_proto::{ns, ElementExt, StreamError};

use crate::reader::{Limits, StreamEvent, StreamHeader, XmlReader};

/// `urn:ietf:params:xml:ns:xmpp-framing` (RFC 7395 §3.3.1).
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// The WebSocket subprotocol name (RFC 7395 §3.1).
pub const SUBPROTOCOL: &str = "xmpp";

/// Read one message. `Ok(None)` for a message of whitespace only, which
/// carries nothing (§3.4 forbids whitespace keepalives; ignoring them is
/// the lenient reading).
pub fn read_message(text: &str, limits: Limits) -> Result<Option<StreamEvent>, StreamError> {
    let Some(el) = XmlReader::read_document(text.as_bytes(), limits)? else {
        return Ok(None);
    };
    if el.ns() != NS_FRAMING {
        return Ok(Some(StreamEvent::Element(el)));
    }
    match el.name() {
        "open" => Ok(Some(StreamEvent::Header(StreamHeader {
            to: el.attr("to").map(str::to_string),
            from: el.attr("from").map(str::to_string),
            version: el.attr("version").map(str::to_string),
            id: el.attr("id").map(str::to_string),
            lang: xml_lang(&el),
            content_ns: None,
        }))),
        "close" => Ok(Some(StreamEvent::End)),
        _ => Err(StreamError::UnsupportedStanzaType),
    }
}

fn xml_lang(el: &Element) -> Option<String> {
    el.attrs()
        .get(&rxml::Namespace::XML, "lang")
        .map(|v: &String| v.to_string())
}

/// The server's `<open/>` (§3.4), the equivalent of the response header.
pub fn open(from: &str, id: &str, lang: &str) -> String {
    format!(
        "<open xmlns='{NS_FRAMING}' from='{}' id='{}' version='1.0' xml:lang='{}'/>",
        escape_attr(from),
        escape_attr(id),
        escape_attr(lang)
    )
}

/// `<stream:features/>` with the prefix declared (§3.3.3).
pub fn features(children: &[Element]) -> String {
    let mut s = format!("<stream:features xmlns:stream='{}'>", ns::STREAM);
    for c in children {
        s.push_str(&element(c));
    }
    s.push_str("</stream:features>");
    s
}

/// A stream error with its prefix declared; `close()` follows it (§3.6).
pub fn stream_error(err: StreamError, text: Option<&str>) -> String {
    stream_error_with(err, text, None)
}

/// The same with an application-specific condition (RFC 6120 §4.9.4).
pub fn stream_error_with(err: StreamError, text: Option<&str>, app: Option<&Element>) -> String {
    let mut s = format!(
        "<stream:error xmlns:stream='{}'><{} xmlns='{}'/>",
        ns::STREAM,
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
    if let Some(app) = app {
        s.push_str(&app.to_xml());
    }
    s.push_str("</stream:error>");
    s
}

/// The end of the stream (§3.6).
pub fn close() -> String {
    format!("<close xmlns='{NS_FRAMING}'/>")
}

/// One element, with its namespace declared, as one message.
pub fn element(el: &Element) -> String {
    el.to_xml()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<Option<StreamEvent>, StreamError> {
        read_message(s, Limits::default())
    }

    #[test]
    fn open_is_the_header_and_close_the_end() {
        let ev = read("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0' xml:lang='de'/>")
            .unwrap()
            .unwrap();
        match ev {
            StreamEvent::Header(h) => {
                assert_eq!(h.to.as_deref(), Some("localhost"));
                assert_eq!(h.version.as_deref(), Some("1.0"));
                assert_eq!(h.lang.as_deref(), Some("de"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
            Ok(Some(StreamEvent::End))
        ));
        assert!(read(" ").unwrap().is_none());
    }

    #[test]
    fn stanzas_are_elements_and_garbage_is_refused() {
        match read("<message xmlns='jabber:client' to='a@b'><body>hi</body></message>") {
            Ok(Some(StreamEvent::Element(e))) => assert_eq!(e.name(), "message"),
            other => panic!("{other:?}"),
        }
        // A sender that forgets the namespace gets the stream's default.
        match read("<presence/>") {
            Ok(Some(StreamEvent::Element(e))) => assert_eq!(e.ns(), ns::CLIENT),
            other => panic!("{other:?}"),
        }
        assert_eq!(read("hello").unwrap_err(), StreamError::NotWellFormed);
        assert_eq!(
            read("<message xmlns='jabber:client'>").unwrap_err(),
            StreamError::NotWellFormed
        );
        assert_eq!(
            read("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>").unwrap_err(),
            StreamError::NotWellFormed
        );
        assert_eq!(
            read("<bogus xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>").unwrap_err(),
            StreamError::UnsupportedStanzaType
        );
    }

    #[test]
    fn what_we_write_parses_as_standalone_documents() {
        let limits = Limits::default();
        let open = open("localhost", "i<d", "en");
        match read_message(&open, limits).unwrap().unwrap() {
            StreamEvent::Header(h) => {
                assert_eq!(h.from.as_deref(), Some("localhost"));
                assert_eq!(h.id.as_deref(), Some("i<d"));
                assert_eq!(h.lang.as_deref(), Some("en"));
            }
            other => panic!("{other:?}"),
        }
        let f = features(&[Element::bare("bind", ns::BIND)]);
        let f = XmlReader::read_document(f.as_bytes(), limits)
            .unwrap()
            .unwrap();
        assert!(f.is("features", ns::STREAM) && f.has_child("bind", ns::BIND));
        let e = stream_error(StreamError::PolicyViolation, Some("too <big>"));
        let e = XmlReader::read_document(e.as_bytes(), limits)
            .unwrap()
            .unwrap();
        assert!(e.is("error", ns::STREAM) && e.has_child("policy-violation", ns::STREAMS_ERR));
        assert!(matches!(
            read_message(&close(), limits),
            Ok(Some(StreamEvent::End))
        ));
    }
}
