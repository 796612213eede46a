//! XEP-0115 entity capabilities for test clients: announce a feature set in
//! presence and answer the server's disco#info query for it, so that PEP
//! notifications (XEP-0163 §4.2, `<node>+notify`) reach the client.

use minidom::Element;
use roost_proto::{Elem, ElementExt};

use crate::Client;

const CAPS: &str = "http://jabber.org/protocol/caps";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// The caps node of every test client.
pub const NODE: &str = "http://roost.test";

/// The disco#info answer for `features`, with an identity named `name`.
pub fn disco_info(name: &str, features: &[String]) -> Element {
    Element::bare("query", DISCO_INFO)
        .child(
            Element::bare("identity", DISCO_INFO)
                .attr_set("category", "client")
                .attr_set("type", "pc")
                .attr_set("name", name),
        )
        .children_from(
            features
                .iter()
                .map(|f| Element::bare("feature", DISCO_INFO).attr_set("var", f.as_str())),
        )
}

impl Client {
    /// Send initial presence carrying caps for `features` (plus disco#info),
    /// answer the server's query for them, and wait for the reflected
    /// presence. The identity name is unique per call, so the server never
    /// has the `ver` cached and always asks.
    pub async fn available_with_caps(&mut self, features: &[&str]) {
        let mut all: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        all.push(DISCO_INFO.to_string());
        all.sort();
        all.dedup();
        let name = format!("{} {}", self.jid, roost_proto::id::random_token(8));
        let query = disco_info(&name, &all);
        let ver = roost_core::caps::sha1_ver(&query).expect("hashable caps");
        self.send(&format!(
            "<presence><c xmlns='{CAPS}' hash='sha-1' node='{NODE}' ver='{ver}'/></presence>"
        ))
        .await;
        let asked_node = format!("{NODE}#{ver}");
        let ask = self
            .expect("caps disco#info query", |e| {
                e.name() == "iq"
                    && e.attr("type") == Some("get")
                    && e.get_child("query", DISCO_INFO)
                        .is_some_and(|q| q.attr("node") == Some(asked_node.as_str()))
            })
            .await;
        let mut answer = query.clone();
        answer.set("node", asked_node.as_str());
        let answer = String::from(&answer);
        self.send(&format!(
            "<iq type='result' id='{}' to='{}'>{answer}</iq>",
            ask.attr("id").expect("query id"),
            ask.attr("from").expect("query from"),
        ))
        .await;
        let me = self.jid.clone();
        self.expect("own presence", |e| {
            e.name() == "presence"
                && e.attr("from") == Some(me.as_str())
                && e.attr("type").is_none()
        })
        .await;
    }

    /// [`Client::available_with_caps`] asking for notifications of `nodes`.
    pub async fn available_with_notify(&mut self, nodes: &[&str]) {
        let features: Vec<String> = nodes.iter().map(|n| format!("{n}+notify")).collect();
        let refs: Vec<&str> = features.iter().map(String::as_str).collect();
        self.available_with_caps(&refs).await;
    }
}
