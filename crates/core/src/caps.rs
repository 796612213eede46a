//! XEP-0115 Entity Capabilities: what a client's `<c/>` stands for, found
//! by asking the client once per `ver` and cached server-wide when the
//! answer hashes to the advertised `ver` (§5.1), so a client cannot poison
//! the cache for others. Used for PEP `+notify` filtering (XEP-0163 §4).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use jid::FullJid;
use minidom::Element;
use roost_proto::{ns, Elem, ElementExt};
use sha1::{Digest, Sha1};

use crate::server::Server;

pub const NS: &str = "http://jabber.org/protocol/caps";

/// The features of a client.
pub type Features = Arc<Vec<String>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    pub node: String,
    pub ver: String,
    pub hash: String,
}

impl Caps {
    pub fn from_presence(presence: &Element) -> Option<Caps> {
        let c = presence.get_child("c", NS)?;
        Some(Caps {
            node: c.attr("node")?.to_string(),
            ver: c.attr("ver")?.to_string(),
            hash: c.attr("hash").unwrap_or("sha-1").to_string(),
        })
    }
}

/// Bounded: past this many distinct `ver`s the cache starts over.
const MAX_CACHED: usize = 10_000;

#[derive(Default)]
pub struct CapsCache {
    map: Mutex<HashMap<String, Features>>,
}

impl CapsCache {
    pub fn get(&self, ver: &str) -> Option<Features> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ver)
            .cloned()
    }
    fn put(&self, ver: &str, features: Features) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_CACHED {
            m.clear();
        }
        m.insert(ver.to_string(), features);
    }
}

/// XEP-0115 §5.1: the verification string of a disco#info answer, or
/// `None` when it cannot be hashed reliably (duplicate identities, features
/// or forms make the answer invalid per §5.4).
pub fn verification_string(query: &Element) -> Option<String> {
    let mut identities: Vec<String> = query
        .children()
        .filter(|c| c.is("identity", ns::DISCO_INFO))
        .map(|i| {
            format!(
                "{}/{}/{}/{}<",
                i.attr("category").unwrap_or_default(),
                i.attr("type").unwrap_or_default(),
                i.lang().unwrap_or_default(),
                i.attr("name").unwrap_or_default()
            )
        })
        .collect();
    identities.sort();
    let mut features: Vec<String> = query
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|f| f.attr("var").map(|v| format!("{v}<")))
        .collect();
    features.sort();
    let n = features.len();
    features.dedup();
    if features.len() != n {
        return None;
    }
    let mut forms: Vec<(String, String)> = Vec::new();
    for x in query.children().filter(|c| c.is("x", ns::DATA_FORMS)) {
        let mut form_type = None;
        let mut fields: Vec<String> = Vec::new();
        for f in x.children().filter(|c| c.name() == "field") {
            let mut values: Vec<String> = f
                .children()
                .filter(|v| v.name() == "value")
                .map(|v| format!("{}<", v.text()))
                .collect();
            values.sort();
            if f.attr("var") == Some("FORM_TYPE") {
                form_type = values.first().cloned();
            } else {
                fields.push(format!(
                    "{}<{}",
                    f.attr("var").unwrap_or_default(),
                    values.concat()
                ));
            }
        }
        fields.sort();
        let ft = form_type?;
        forms.push((ft.clone(), format!("{ft}{}", fields.concat())));
    }
    forms.sort();
    Some(format!(
        "{}{}{}",
        identities.concat(),
        features.concat(),
        forms.into_iter().map(|(_, s)| s).collect::<String>()
    ))
}

pub fn sha1_ver(query: &Element) -> Option<String> {
    let s = verification_string(query)?;
    Some(base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes())))
}

/// XEP-0030 §3.1: an `<identity/>`.
pub fn disco_identity(category: &str, kind: &str, name: Option<&str>) -> Element {
    Element::bare("identity", ns::DISCO_INFO)
        .attr_set("category", category)
        .attr_set("type", kind)
        .attr_opt("name", name)
}

/// XEP-0030 §3.1: a disco#info answer with these identities and features
/// (disco#info and disco#items always among them, sorted, once each).
pub fn disco_info(
    identities: Vec<Element>,
    mut features: Vec<&'static str>,
    node: Option<&str>,
) -> Element {
    features.push(ns::DISCO_INFO);
    features.push(ns::DISCO_ITEMS);
    features.sort_unstable();
    features.dedup();
    Element::bare("query", ns::DISCO_INFO)
        .attr_opt("node", node)
        .children_from(identities)
        .children_from(
            features
                .into_iter()
                .map(|f| Element::bare("feature", ns::DISCO_INFO).attr_set("var", f)),
        )
}

/// XEP-0115 §6.3: the node naming this software in the server's own caps.
pub const SERVER_NODE: &str = "urn:xmpp:roost:server";

impl Server {
    /// XEP-0030: the server domain's disco#info, from the module registry
    /// (with `node` echoed, for the caps node `SERVER_NODE#ver`).
    pub fn server_disco_info(&self, node: Option<&str>) -> Element {
        disco_info(
            vec![disco_identity("server", "im", Some("Roost"))],
            self.registry.server_features(),
            node,
        )
        .children_from(self.registry.server_info_forms())
    }

    /// XEP-0115 §6.3: the server's own `<c/>` for stream features, so
    /// clients can cache what the server supports. Computed once: the
    /// registry does not change after start.
    pub fn stream_caps(&self) -> Element {
        Element::bare("c", NS)
            .attr_set("hash", "sha-1")
            .attr_set("node", SERVER_NODE)
            .attr_set("ver", self.own_caps_ver())
    }

    fn own_caps_ver(&self) -> &str {
        self.own_caps_ver
            .get_or_init(|| sha1_ver(&self.server_disco_info(None)).unwrap_or_default())
    }

    /// Whether `node` is the node of the server's own caps (`node#ver`).
    pub fn is_own_caps_node(&self, node: &str) -> bool {
        node.strip_prefix(SERVER_NODE)
            .and_then(|r| r.strip_prefix('#'))
            .is_some_and(|v| v == self.own_caps_ver())
    }

    /// The features behind a client's caps: from the cache, or by asking
    /// the client. `None` when the client does not answer.
    pub async fn resolve_caps(self: &Arc<Self>, client: &FullJid, caps: &Caps) -> Option<Features> {
        if let Some(f) = self.caps.get(&caps.ver) {
            return Some(f);
        }
        let iq = Element::bare("iq", ns::CLIENT)
            .attr_set("type", "get")
            .attr_set("to", client.as_str())
            .child(
                Element::bare("query", ns::DISCO_INFO)
                    .attr_set("node", format!("{}#{}", caps.node, caps.ver)),
            );
        let answer = self.request_iq(iq, Duration::from_secs(10)).await.ok()?;
        let query = answer.get_child("query", ns::DISCO_INFO)?;
        let features: Features = Arc::new(
            query
                .children()
                .filter(|c| c.is("feature", ns::DISCO_INFO))
                .filter_map(|f| f.attr("var").map(str::to_string))
                .collect(),
        );
        if caps.hash == "sha-1" && sha1_ver(query).as_deref() == Some(caps.ver.as_str()) {
            self.caps.put(&caps.ver, features.clone());
        }
        Some(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep_0115_simple_example_hashes_to_its_ver() {
        // XEP-0115 §5.2 example.
        let q: Element = "<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>\
            <identity category='client' name='Exodus 0.9.1' type='pc'/>\
            <feature var='http://jabber.org/protocol/caps'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/disco#items'/>\
            <feature var='http://jabber.org/protocol/muc'/></query>"
            .parse()
            .unwrap();
        assert_eq!(
            sha1_ver(&q).as_deref(),
            Some("QgayPKawpkPSDYmwT/WM94uAlu0=")
        );
    }

    #[test]
    fn xep_0115_complex_example_with_forms_hashes_to_its_ver() {
        // XEP-0115 §5.3 example.
        let q: Element = "<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>\
            <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
            <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
            <feature var='http://jabber.org/protocol/caps'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/disco#items'/>\
            <feature var='http://jabber.org/protocol/muc'/>\
            <x xmlns='jabber:x:data' type='result'>\
              <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
              <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
              <field var='os'><value>Mac</value></field>\
              <field var='os_version'><value>10.5.1</value></field>\
              <field var='software'><value>Psi</value></field>\
              <field var='software_version'><value>0.11</value></field>\
            </x></query>"
            .parse()
            .unwrap();
        assert_eq!(
            sha1_ver(&q).as_deref(),
            Some("q07IKJEyjvHSyhy//CH0CxmKi8w=")
        );
    }

    #[test]
    fn duplicate_features_are_not_hashable() {
        let q: Element = "<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><feature var='a'/></query>"
            .parse()
            .unwrap();
        assert!(verification_string(&q).is_none());
    }
}
