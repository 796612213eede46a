//! What each fuzz target feeds untrusted bytes to: the parsers that face
//! clients and servers first. Each function must return for any input
//! without panicking; where a property holds (the same events for one
//! read and for split reads, serialising a parsed stanza and parsing it
//! again gives the same XML), it asserts it, so that a breach is a crash
//! the fuzzer finds. `fuzz/` wraps them for libFuzzer; `tests/corpus.rs`
//! replays the corpus and past crashes on the stable toolchain.

mod server;

use minidom::Element;
use roost_proto::ElementExt;
use roost_stream::{Limits, StreamEvent, XmlReader};

/// Small limits, so that the fuzzer reaches them.
fn limits() -> Limits {
    Limits {
        max_stanza_bytes: 4096,
        max_depth: 16,
    }
}

fn describe(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            StreamEvent::Header(h) => format!("header {h:?}"),
            StreamEvent::Element(el) => el.to_xml(),
            StreamEvent::End => "end".to_string(),
        })
        .collect()
}

/// RFC 6120 §4 stream reader: XML framing, size and depth limits, read in
/// one go and in two pieces split where the first byte says.
pub fn stream_reader(data: &[u8]) {
    let mut whole = Vec::new();
    let one = XmlReader::new(limits()).feed(data, &mut whole);
    let cut = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut split = Vec::new();
    let mut reader = XmlReader::new(limits());
    let two = reader
        .feed(&data[..cut], &mut split)
        .and_then(|()| reader.feed(&data[cut..], &mut split));
    if one.is_ok() && two.is_ok() {
        assert_eq!(describe(&whole), describe(&split), "split at {cut}");
    }
}

/// RFC 7395: one WebSocket text message, one element or framing element.
pub fn websocket(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = roost_stream::websocket::read_message(text, limits());
    }
}

/// XEP-0124/XEP-0206: a BOSH request body and the events it carries.
pub fn bosh_body(data: &[u8]) {
    if let Ok((el, _rid)) = roost_core::http::bosh::parse_body(data, limits()) {
        let _ = roost_core::http::bosh::events(&el);
    }
}

/// RFC 4616 PLAIN.
pub fn sasl_plain(data: &[u8]) {
    let _ = roost_sasl::parse_plain(data);
}

/// RFC 5802/7677 SCRAM, server side: the client-first message, the
/// server-first answer, and the rest of the input as the client-final one.
pub fn sasl_scram(data: &[u8]) {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (first, last) = data.split_at(split);
    for hash in [roost_sasl::Hash::Sha1, roost_sasl::Hash::Sha256] {
        let mut server = roost_sasl::ScramServer::new(hash);
        if server.client_first(first).is_ok() {
            let keys = roost_sasl::derive_with_salt("pencil", b"salt", 1, hash);
            let _ = server.server_first(Some(&keys));
            let _ = server.client_final(last.get(1..).unwrap_or_default());
        }
    }
}

/// XEP-0484 FAST (HT-*) initial messages.
pub fn sasl_ht(data: &[u8]) {
    let _ = roost_sasl::ht::parse_initial(data);
}

/// RFC 7622 JIDs: what parses prints back to something that parses the same.
pub fn jid(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(j) = jid::Jid::new(text) {
            let again = jid::Jid::new(j.as_str()).expect("a printed JID parses");
            assert_eq!(j, again);
        }
    }
}

fn element(data: &[u8]) -> Option<Element> {
    XmlReader::read_document(data, limits()).ok().flatten()
}

/// Stanzas: the envelope check, and serialise-then-parse giving the same XML.
pub fn stanza(data: &[u8]) {
    let Some(el) = element(data) else {
        return;
    };
    let xml = el.to_xml();
    let again = XmlReader::read_document(xml.as_bytes(), Limits::default())
        .expect("serialised XML parses")
        .expect("one element");
    assert_eq!(xml, again.to_xml());
    let _ = roost_proto::Stanza::parse(el);
}

/// XEP-0004 data forms as the server reads submitted ones.
pub fn data_form(data: &[u8]) {
    if let Some(el) = element(data) {
        let form = roost_proto::data_form::Form::parse(&el);
        let _ = form.value("FORM_TYPE");
        let _ = roost_proto::data_form::Form::inside(&el);
    }
}

/// XEP-0313 queries with XEP-0059 paging.
pub fn mam_query(data: &[u8]) {
    if let Some(el) = element(data) {
        let _ = roost_core::mam_query::parse(&el, |_| Ok(()));
    }
}

/// XEP-0045 §10.2 room configuration forms, applied and stored.
pub fn room_config(data: &[u8]) {
    if let Some(el) = element(data) {
        roost_muc::fuzz_room_config(&el);
    }
}

/// Stanzas sent to a running server by a logged-in client (`server.rs`).
pub fn server_stanza(data: &[u8]) {
    if let Some(el) = element(data) {
        if matches!(el.name(), "message" | "presence" | "iq") && el.ns() == "jabber:client" {
            server::send(&el);
        }
    }
}

/// A target: a name (its folder under `fuzz/corpus/`) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name, for the corpus replay and the fuzz script.
pub const TARGETS: &[Target] = &[
    ("stream_reader", stream_reader),
    ("websocket", websocket),
    ("bosh_body", bosh_body),
    ("sasl_plain", sasl_plain),
    ("sasl_scram", sasl_scram),
    ("sasl_ht", sasl_ht),
    ("jid", jid),
    ("stanza", stanza),
    ("data_form", data_form),
    ("mam_query", mam_query),
    ("room_config", room_config),
    ("server_stanza", server_stanza),
];
