//! Incremental stream reader (RFC 6120 §4, §11): rxml does the parsing and
//! rejects what restricted XML forbids; this module turns its events into a
//! stream header, whole top-level elements (stanzas and nonzas) and the end
//! of the stream, and enforces the size and depth limits *while* parsing so
//! that an oversized stanza is never buffered whole.

use minidom::Element;
use roost_proto::{ns, StreamError};
use rxml::{Event, Parse, Parser, WithOptions};

/// Parsing limits. Both are enforced before the offending element is built.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest top-level element, in bytes of input (RFC 6120 §13.12).
    pub max_stanza_bytes: usize,
    /// Deepest nesting inside a stanza; keeps recursion in later tree walks bounded.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 256 * 1024,
            max_depth: 64,
        }
    }
}

/// The opening `<stream:stream>` tag's attributes (RFC 6120 §4.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub to: Option<String>,
    pub from: Option<String>,
    pub version: Option<String>,
    pub lang: Option<String>,
    pub id: Option<String>,
    /// The default namespace the header declares (the content namespace,
    /// RFC 6120 §4.8.2), when it declares one; over WebSocket and BOSH
    /// the framing fixes it and this is `None`.
    pub content_ns: Option<String>,
}

#[derive(Debug, Clone)]
pub enum StreamEvent {
    Header(StreamHeader),
    /// A complete top-level element: a stanza or a nonza such as `<auth/>`.
    Element(Element),
    /// `</stream:stream>`.
    End,
}

/// Reader state for one stream; `reset` starts a new stream on the same
/// connection (after STARTTLS and SASL success, RFC 6120 §5.4.3.3, §6.4.6).
pub struct XmlReader {
    parser: Parser,
    limits: Limits,
    /// Elements open inside the current top-level element.
    stack: Vec<Element>,
    /// Bytes spent on the current top-level element so far.
    stanza_bytes: usize,
    in_stream: bool,
    ended: bool,
    /// Last bytes fed, to tell restricted XML from malformed XML on error;
    /// until the stream header is read, its first KiB, to find the
    /// namespace declarations rxml resolves away.
    recent: Vec<u8>,
    /// Something other than whitespace arrived for this stream.
    started: bool,
}

/// The longest stream header (with the XML declaration) accepted; a read
/// brings at most 8 KiB, so a legitimate first read always fits.
const MAX_HEADER: usize = 16 * 1024;

/// Input kept between stanzas to classify an error that starts there.
const IDLE_KEEP: usize = 16;

/// Longest element name, attribute value or text chunk handed over at once.
const MAX_TOKEN: usize = 8 * 1024;

fn new_parser(limits: &Limits) -> Parser {
    // Names and attribute values are single tokens; text longer than this
    // is split by rxml, so the size limit still sees every byte.
    Parser::with_options(rxml::parser::Options {
        // rxml reserves this much per parser up front, so keep it to what
        // a name or attribute value may reasonably need.
        max_token_length: limits.max_stanza_bytes.clamp(1024, MAX_TOKEN),
        ..Default::default()
    })
}

impl XmlReader {
    pub fn new(limits: Limits) -> XmlReader {
        XmlReader {
            parser: new_parser(&limits),
            limits,
            stack: Vec::new(),
            stanza_bytes: 0,
            in_stream: false,
            ended: false,
            recent: Vec::new(),
            started: false,
        }
    }

    /// Forget everything and expect a new stream header.
    pub fn reset(&mut self) {
        *self = XmlReader::new(self.limits);
    }

    /// Parse one top-level element that stands alone (RFC 7395 §3.3.3:
    /// every WebSocket message is one complete element), with the same
    /// restrictions and limits as inside a stream. It is read as if it
    /// followed a stream header, so `jabber:client` is the default
    /// namespace and the `stream` prefix is declared: senders must declare
    /// both (§3.3.3), and we forgive one that relies on them. `None` for
    /// input that is only whitespace.
    pub fn read_document(data: &[u8], limits: Limits) -> Result<Option<Element>, StreamError> {
        const CONTEXT: &[u8] = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
        let data = strip_xml_declaration(data);
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let mut r = XmlReader::new(limits);
        let mut out = Vec::new();
        r.feed(CONTEXT, &mut out)?;
        out.clear();
        r.feed(data, &mut out)?;
        if !r.stack.is_empty() {
            // Truncated: the element did not end within the message.
            return Err(StreamError::NotWellFormed);
        }
        // Closing the context flushes text rxml still holds back.
        r.feed(b"</stream:stream>", &mut out)?;
        let mut events = out.into_iter();
        match (events.next(), events.next(), events.next()) {
            (Some(StreamEvent::Element(el)), Some(StreamEvent::End), None) => Ok(Some(el)),
            // Several elements, or the stream's closing tag.
            _ => Err(StreamError::NotWellFormed),
        }
    }

    /// Feed bytes; complete events are appended to `out`. An error is final:
    /// the caller sends it as a stream error and closes.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        if self.ended {
            // Nothing may follow the closing tag.
            return if data.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(())
            } else {
                Err(StreamError::NotWellFormed)
            };
        }
        self.remember(data);
        if !self.in_stream {
            self.before_header(data)?;
        }
        loop {
            match self.parser.parse(&mut data, false) {
                Ok(Some(ev)) => self.handle(ev, out)?,
                Ok(None) => {
                    self.ended = true;
                    return Ok(());
                }
                Err(rxml::error::EndOrError::NeedMoreData) => {
                    if self.stack.is_empty() && self.in_stream {
                        // Between stanzas: most streams now wait a long
                        // time, so give back the parser's token buffer and
                        // keep only a little context for error reports.
                        self.parser.release_temporaries();
                        self.stack = Vec::new();
                        let cut = self.recent.len().saturating_sub(IDLE_KEEP);
                        self.recent.drain(..cut);
                        self.recent.shrink_to_fit();
                    }
                    return Ok(());
                }
                Err(rxml::error::EndOrError::Error(e)) => return Err(self.classify(e)),
            }
            if self.ended {
                return Ok(());
            }
        }
    }

    /// RFC 6120 §4.9.1.2: what comes before the header must start one. A
    /// stream that starts with anything but `<` (an HTTP request, say) is
    /// `not-well-formed` at once instead of waiting for a `<` that never
    /// comes; UTF-16 and other encodings are `unsupported-encoding`
    /// (§11.6). A header beyond `MAX_HEADER` is a `policy-violation`.
    fn before_header(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if !self.started {
            let mut rest = data;
            // A UTF-8 byte order mark is allowed before the declaration.
            while let Some((b, tail)) = rest.split_first() {
                if b.is_ascii_whitespace() || [0xEF, 0xBB, 0xBF].contains(b) {
                    rest = tail;
                    continue;
                }
                let utf16 = match (b, tail.first()) {
                    // Byte order marks, and `<` in UTF-16 either way.
                    (0xFE, Some(0xFF)) | (0xFF, Some(0xFE)) | (0x00, Some(b'<')) => true,
                    _ => false,
                };
                match b {
                    b'<' if tail.first() == Some(&0x00) => {
                        return Err(StreamError::UnsupportedEncoding)
                    }
                    b'<' => break,
                    _ if utf16 => return Err(StreamError::UnsupportedEncoding),
                    _ => return Err(StreamError::NotWellFormed),
                }
            }
            self.started = !rest.is_empty();
        }
        // Before the header, `stanza_bytes` counts the header's bytes.
        self.stanza_bytes = self.stanza_bytes.saturating_add(data.len());
        if self.stanza_bytes > MAX_HEADER {
            return Err(StreamError::PolicyViolation);
        }
        Ok(())
    }

    fn remember(&mut self, data: &[u8]) {
        // Before the header: enough for any usual header's start tag (a
        // longer one is read without its content namespace checked).
        let keep = if self.in_stream { 256 } else { 1024 };
        self.recent
            .extend_from_slice(&data[data.len().saturating_sub(keep)..]);
        if self.recent.len() > keep {
            let cut = self.recent.len() - keep;
            self.recent.drain(..cut);
        }
    }

    /// RFC 6120 §11.1: DTDs, entity declarations, comments and processing
    /// instructions are `restricted-xml`; anything else broken is
    /// `not-well-formed`. rxml reports some of the former as plain syntax
    /// errors, so look at what was fed.
    fn classify(&self, e: rxml::Error) -> StreamError {
        match e {
            // A name or attribute value longer than the parser's token
            // (`MAX_TOKEN`): a size limit (§13.12), not restricted XML.
            rxml::Error::RestrictedXml("long name or reference") => {
                return StreamError::PolicyViolation
            }
            // §11.6: UTF-8 only.
            rxml::Error::RestrictedXml("only utf-8 encoding is allowed")
            | rxml::Error::InvalidUtf8Byte(..) => return StreamError::UnsupportedEncoding,
            rxml::Error::RestrictedXml(_) => return StreamError::RestrictedXml,
            _ => {}
        }
        let r = &self.recent;
        let restricted = r.windows(2).enumerate().any(|(i, w)| {
            (w == b"<!" && r.get(i + 2).is_some_and(|c| c.is_ascii_uppercase()))
                || (w == b"<?" && r.get(i + 2..i + 6) != Some(b"xml "))
        });
        // Custom entities are declared in DTDs, which are restricted too.
        if restricted || matches!(e, rxml::Error::UndeclaredEntity) {
            StreamError::RestrictedXml
        } else {
            StreamError::NotWellFormed
        }
    }

    fn handle(&mut self, ev: Event, out: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        if !self.stack.is_empty() {
            self.stanza_bytes += ev.metrics().len();
            if self.stanza_bytes > self.limits.max_stanza_bytes {
                return Err(StreamError::PolicyViolation);
            }
        }
        match ev {
            Event::XmlDeclaration(..) => Ok(()),
            Event::StartElement(metrics, (ns, name), attrs) => {
                if !self.in_stream {
                    return self.open_stream(ns.as_str(), name.as_str(), &attrs, out);
                }
                if self.stack.is_empty() {
                    self.stanza_bytes = metrics.len();
                    if self.stanza_bytes > self.limits.max_stanza_bytes {
                        return Err(StreamError::PolicyViolation);
                    }
                }
                if self.stack.len() >= self.limits.max_depth {
                    return Err(StreamError::PolicyViolation);
                }
                let mut el = Element::bare(name.as_str(), ns.as_str());
                *el.attrs_mut() = attrs;
                self.stack.push(el);
                Ok(())
            }
            Event::EndElement(_) => {
                match self.stack.pop() {
                    None => {
                        // The stream's own closing tag.
                        self.ended = true;
                        out.push(StreamEvent::End);
                    }
                    Some(el) => match self.stack.last_mut() {
                        Some(parent) => {
                            parent.append_child(el);
                        }
                        None => out.push(StreamEvent::Element(el)),
                    },
                }
                Ok(())
            }
            Event::Text(_, text) => {
                // Whitespace between stanzas is keepalive (RFC 6120 §4.6.1).
                if let Some(top) = self.stack.last_mut() {
                    top.append_text(text);
                } else if !text.trim().is_empty() {
                    return Err(StreamError::NotWellFormed);
                }
                Ok(())
            }
        }
    }

    fn open_stream(
        &mut self,
        ns: &str,
        name: &str,
        attrs: &rxml::AttrMap,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamError> {
        if name != "stream" || ns != ns::STREAM {
            return Err(StreamError::InvalidNamespace);
        }
        let get = |n: &str| {
            attrs
                .get(&rxml::Namespace::NONE, n)
                .map(|s: &String| s.to_string())
        };
        let header = StreamHeader {
            to: get("to"),
            from: get("from"),
            version: get("version"),
            id: get("id"),
            lang: attrs
                .get(&rxml::Namespace::XML, "lang")
                .map(|s: &String| s.to_string()),
            content_ns: default_namespace(&self.recent),
        };
        self.stanza_bytes = 0;
        self.in_stream = true;
        out.push(StreamEvent::Header(header));
        Ok(())
    }
}

/// The value of the first `xmlns='...'` (not `xmlns:prefix`) in the start
/// tag that `raw` begins with, an XML declaration skipped.
fn default_namespace(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let start = text.find("<stream")?;
    let tag = &text[start..];
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    let mut rest = tag;
    while let Some(i) = rest.find("xmlns") {
        let after = rest[i + 5..].trim_start();
        if let Some(value) = after.strip_prefix('=') {
            let value = value.trim_start();
            let quote = value.chars().next()?;
            if quote != '\'' && quote != '"' {
                return None;
            }
            let body = &value[1..];
            return body.find(quote).map(|end| body[..end].to_string());
        }
        rest = &rest[i + 5..];
    }
    None
}

/// Skip leading whitespace and an XML declaration, which may open a
/// standalone document but not the content of a stream.
fn strip_xml_declaration(data: &[u8]) -> &[u8] {
    let trimmed = match data.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => &data[i..],
        None => return data,
    };
    if trimmed.starts_with(b"<?xml ") {
        if let Some(end) = trimmed.windows(2).position(|w| w == b"?>") {
            return &trimmed[end + 2..];
        }
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>";

    fn feed_all(r: &mut XmlReader, chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, StreamError> {
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn header_stanza_and_end_are_read() {
        let mut r = XmlReader::new(Limits::default());
        let doc =
            format!("{OPEN}<message to='a@b'><body>hi &amp; bye</body></message> </stream:stream>");
        let evs = feed_all(&mut r, &[doc.as_bytes()]).unwrap();
        assert!(
            matches!(&evs[0], StreamEvent::Header(h) if h.to.as_deref() == Some("localhost") && h.lang.as_deref() == Some("en") && h.version.as_deref() == Some("1.0"))
        );
        match &evs[1] {
            StreamEvent::Element(e) => {
                assert_eq!(e.name(), "message");
                assert_eq!(e.ns(), "jabber:client");
                assert_eq!(
                    e.get_child("body", "jabber:client").unwrap().text(),
                    "hi & bye"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(evs[2], StreamEvent::End));
    }

    #[test]
    fn input_split_at_every_byte_gives_the_same_events() {
        let doc = format!("{OPEN}<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
        let mut r = XmlReader::new(Limits::default());
        let chunks: Vec<&[u8]> = doc.as_bytes().chunks(1).collect();
        let evs = feed_all(&mut r, &chunks).unwrap();
        assert_eq!(evs.len(), 2);
        match &evs[1] {
            StreamEvent::Element(e) => assert!(e.has_child("ping", "urn:xmpp:ping")),
            other => panic!("{other:?}"),
        }
        // The content namespace is found however the header arrives.
        match &evs[0] {
            StreamEvent::Header(h) => assert_eq!(h.content_ns.as_deref(), Some(ns::CLIENT)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_comes_before_the_header_must_start_one() {
        let err = |input: &[u8]| XmlReader::new(Limits::default()).feed(input, &mut Vec::new());
        assert_eq!(err(b"GET / HTTP/1.1\r\n"), Err(StreamError::NotWellFormed));
        assert_eq!(err(b"\xff\xfe<\x00"), Err(StreamError::UnsupportedEncoding));
        assert_eq!(err(b"<\x00s\x00"), Err(StreamError::UnsupportedEncoding));
        assert_eq!(err(b"<?xml version='1.0'?>"), Ok(()));
        let mut r = XmlReader::new(Limits::default());
        let mut out = Vec::new();
        r.feed(b"<stream:stream xmlns='jabber:client' x='", &mut out)
            .unwrap();
        let pad = vec![b'a'; 8 * 1024];
        r.feed(&pad, &mut out).unwrap();
        assert_eq!(r.feed(&pad, &mut out), Err(StreamError::PolicyViolation));
    }

    #[test]
    fn oversized_stanza_is_a_policy_violation_before_it_completes() {
        let mut r = XmlReader::new(Limits {
            max_stanza_bytes: 2048,
            max_depth: 16,
        });
        let mut out = Vec::new();
        r.feed(OPEN.as_bytes(), &mut out).unwrap();
        r.feed(b"<message><body>", &mut out).unwrap();
        let big = vec![b'a'; 4096];
        assert_eq!(
            r.feed(&big, &mut out).unwrap_err(),
            StreamError::PolicyViolation
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut r = XmlReader::new(Limits {
            max_stanza_bytes: 1 << 20,
            max_depth: 8,
        });
        let doc = format!("{OPEN}{}", "<a>".repeat(20));
        assert_eq!(
            feed_all(&mut r, &[doc.as_bytes()]).unwrap_err(),
            StreamError::PolicyViolation
        );
    }

    #[test]
    fn doctype_entities_comments_and_pis_are_restricted() {
        for bad in [
            "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY x 'y'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>".to_string(),
            format!("{OPEN}<message><!-- c --></message>"),
            format!("{OPEN}<?target data?>"),
            format!("{OPEN}<message>&custom;</message>"),
        ] {
            let mut r = XmlReader::new(Limits::default());
            assert_eq!(
                feed_all(&mut r, &[bad.as_bytes()]).unwrap_err(),
                StreamError::RestrictedXml,
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_xml_is_not_well_formed() {
        for bad in [
            format!("{OPEN}<message></iq>"),
            format!("{OPEN}<message a='1' a='2'/>"),
            format!("{OPEN}<x:message/>"),
            format!("{OPEN}text at top level<iq/>"),
        ] {
            let mut r = XmlReader::new(Limits::default());
            assert_eq!(
                feed_all(&mut r, &[bad.as_bytes()]).unwrap_err(),
                StreamError::NotWellFormed,
                "{bad}"
            );
        }
    }

    #[test]
    fn wrong_stream_namespace_is_invalid_namespace() {
        let mut r = XmlReader::new(Limits::default());
        let doc = "<stream:stream xmlns:stream='urn:wrong'>";
        assert_eq!(
            feed_all(&mut r, &[doc.as_bytes()]).unwrap_err(),
            StreamError::InvalidNamespace
        );
    }

    #[test]
    fn a_document_is_one_complete_element() {
        let el = XmlReader::read_document(
            b"<message xmlns='jabber:client' to='a@b'><body>x</body></message>",
            Limits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(el.name(), "message");
        assert_eq!(el.ns(), "jabber:client");
        let el = XmlReader::read_document(
            b"<?xml version='1.0'?> <presence><show>away</show></presence>",
            Limits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(el.ns(), "jabber:client");
        assert!(el.has_child("show", "jabber:client"));
        assert!(XmlReader::read_document(b"  \n", Limits::default())
            .unwrap()
            .is_none());
        for bad in [
            &b"<message xmlns='jabber:client'>"[..],
            b"<a xmlns='x'/><b xmlns='x'/>",
            b"not xml",
            b"<a xmlns='x'/>trailing",
            b"</stream:stream>",
            b"<stream:stream>",
        ] {
            assert_eq!(
                XmlReader::read_document(bad, Limits::default()).unwrap_err(),
                StreamError::NotWellFormed,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            XmlReader::read_document(b"<a xmlns='x'><!-- c --></a>", Limits::default())
                .unwrap_err(),
            StreamError::RestrictedXml
        );
        let deep = "<a xmlns='x'>".repeat(20);
        assert_eq!(
            XmlReader::read_document(
                deep.as_bytes(),
                Limits {
                    max_stanza_bytes: 1 << 20,
                    max_depth: 8
                }
            )
            .unwrap_err(),
            StreamError::PolicyViolation
        );
        let big = format!("<a xmlns='x'>{}</a>", "b".repeat(4096));
        assert_eq!(
            XmlReader::read_document(
                big.as_bytes(),
                Limits {
                    max_stanza_bytes: 2048,
                    max_depth: 8
                }
            )
            .unwrap_err(),
            StreamError::PolicyViolation
        );
    }

    #[test]
    fn reset_accepts_a_new_stream_header() {
        let mut r = XmlReader::new(Limits::default());
        feed_all(&mut r, &[OPEN.as_bytes()]).unwrap();
        r.reset();
        let evs = feed_all(&mut r, &[OPEN.as_bytes()]).unwrap();
        assert!(matches!(evs[0], StreamEvent::Header(_)));
    }
}
