//! Property tests (proptest) of the round trips the server relies on:
//! what Roost serialises parses back to the same thing, through the same
//! reader client streams use (RFC 6120 §4 framing, XML 1.0 escaping), and
//! JIDs (RFC 7622) and data forms (XEP-0004) keep their values.

use minidom::Element;
use proptest::prelude::*;
use roost_proto::ElementExt;
use roost_stream::{Limits, XmlReader};

/// Text of any characters XML 1.0 allows, markup characters included.
fn xml_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('<'),
            Just('>'),
            Just('&'),
            Just('\''),
            Just('"'),
            Just(']'),
            Just('\t'),
            Just('\n'),
            Just('\r'),
            proptest::char::range(' ', '~'),
            proptest::char::range('\u{a0}', '\u{d7ff}'),
            proptest::char::range('\u{e000}', '\u{fffd}'),
            proptest::char::range('\u{10000}', '\u{10ffff}'),
        ],
        0..24,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,7}"
}

fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("jabber:client".to_string()),
        Just("urn:xmpp:example:0".to_string()),
        Just("http://jabber.org/protocol/muc#user".to_string()),
        "urn:x:[a-z]{1,6}",
    ]
}

/// Trees of elements with attributes and mixed text.
fn element() -> impl Strategy<Value = Element> {
    let leaf = (
        name(),
        namespace(),
        proptest::collection::btree_map(name(), xml_text(), 0..4),
        xml_text(),
    )
        .prop_map(|(n, ns, attrs, text)| {
            let mut e = Element::bare(n, ns);
            for (k, v) in attrs {
                e.set(&k, v);
            }
            if !text.is_empty() {
                e.append_text_node(text);
            }
            e
        });
    leaf.prop_recursive(4, 32, 4, |inner| {
        (
            name(),
            namespace(),
            proptest::collection::vec(inner, 0..4),
            xml_text(),
        )
            .prop_map(|(n, ns, children, text)| {
                let mut e = Element::bare(n, ns);
                for c in children {
                    e.append_child(c);
                }
                if !text.is_empty() {
                    e.append_text_node(text);
                }
                e
            })
    })
}

fn read_back(xml: &str) -> Element {
    XmlReader::read_document(xml.as_bytes(), Limits::default())
        .expect("our XML parses")
        .expect("one element")
}

/// Text with adjacent text nodes merged, as a parser sees it.
fn texts(e: &Element) -> Vec<String> {
    let mut out = vec![e.text()];
    for c in e.children() {
        out.extend(texts(c));
    }
    out
}

proptest! {
    // Failures print their minimal input; nothing is written to the tree.
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn serialised_elements_parse_back_the_same(el in element()) {
        let xml = el.to_xml();
        let again = read_back(&xml);
        prop_assert_eq!(again.name(), el.name());
        prop_assert_eq!(again.ns(), el.ns());
        prop_assert_eq!(texts(&again), texts(&el));
        // And the second serialisation is identical to the first.
        prop_assert_eq!(again.to_xml(), xml);
    }

    #[test]
    fn attributes_keep_every_character(v in xml_text()) {
        let mut el = Element::bare("message", "jabber:client");
        el.set("id", v.clone());
        let again = read_back(&el.to_xml());
        // XML normalises attribute whitespace unless it is escaped; ours is.
        prop_assert_eq!(again.attr("id"), Some(v.as_str()));
    }

    #[test]
    fn printed_jids_parse_to_the_same_jid(
        local in "[a-z0-9._-]{1,12}",
        domain in "[a-z0-9-]{1,12}(\\.[a-z]{2,6})?",
        resource in proptest::option::of("[ -~]{1,16}"),
    ) {
        let text = match &resource {
            Some(r) => format!("{local}@{domain}/{r}"),
            None => format!("{local}@{domain}"),
        };
        if let Ok(j) = jid::Jid::new(&text) {
            let again = jid::Jid::new(j.as_str()).expect("a printed JID parses");
            prop_assert_eq!(again, j);
        }
    }

    #[test]
    fn data_form_values_survive_serialisation(
        fields in proptest::collection::btree_map("[a-z#_]{1,12}", proptest::collection::vec(xml_text(), 1..3), 1..6)
    ) {
        let mut x = Element::bare("x", "jabber:x:data");
        x.set("type", "submit");
        for (var, values) in &fields {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            x.append_child(roost_proto::data_form::field(var, "text-multi", None, &refs));
        }
        let form = roost_proto::data_form::Form::parse(&read_back(&x.to_xml()));
        for (var, values) in &fields {
            prop_assert_eq!(form.values(var), Some(values.as_slice()));
        }
    }
}
