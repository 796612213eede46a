//! XEP-0388 Extensible SASL Profile (SASL2) and XEP-0386 Bind 2: the
//! same mechanisms as RFC 6120 SASL, in the `urn:xmpp:sasl:2` namespace,
//! without a stream restart, with the client's user-agent, and with inline
//! requests processed on success: XEP-0198 resumption (`<resume/>`), or
//! resource binding (`<bind xmlns='urn:xmpp:bind:0'>`) with carbons, client
//! state and stream management enabled inline, and, with account-based MUC
//! joining, the account's rooms (`<rooms xmlns='urn:roost:account-muc:0'/>`,
//! our own inline feature: the new session is joined to every room the
//! account is in, answered from server state as for any later join).
//!
//! This file parses the request and builds the answers; `negotiation.rs`
//! runs the mechanism and hands the bound session to `session.rs`, which
//! writes `<success/>` once stream management is set up.

use minidom::Element;
use roost_proto::{ns, Elem};
use sha2::Digest;

pub const NS: &str = "urn:xmpp:sasl:2";
pub const BIND_NS: &str = "urn:xmpp:bind:0";
/// Our inline Bind 2 feature: join the new session to the account's rooms.
pub const ROOMS_NS: &str = crate::account::ACCOUNT_MUC_FEATURE;
const CSI_NS: &str = "urn:xmpp:csi:0";

/// What an `<authenticate/>` asked for besides authentication.
#[derive(Debug, Default)]
pub struct Request {
    /// `<user-agent id=...>`: a stable id of the client installation.
    pub user_agent: Option<String>,
    /// `<resume previd h/>` (XEP-0198 inline).
    pub resume: Option<(String, u32)>,
    pub bind: Option<BindRequest>,
    /// `<fast/>`: this is a FAST login (XEP-0484).
    pub fast: Option<super::fast::Usage>,
    /// `<request-token mechanism/>`: hand out a FAST token on success.
    pub request_token: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct BindRequest {
    pub tag: Option<String>,
    pub carbons: bool,
    /// `Some(true)` inactive, `Some(false)` active (XEP-0352).
    pub csi_inactive: Option<bool>,
    /// `Some(resume)` when stream management is to be enabled.
    pub sm: Option<bool>,
    pub rooms: bool,
}

impl Request {
    pub fn parse(auth: &Element) -> Request {
        let user_agent = auth
            .get_child("user-agent", NS)
            .and_then(|u| u.attr("id"))
            .filter(|id| !id.is_empty() && id.len() <= 128)
            .map(str::to_string);
        let resume = auth.get_child("resume", ns::SM).and_then(|r| {
            Some((
                r.attr("previd")?.to_string(),
                r.attr("h")?.parse::<u32>().ok()?,
            ))
        });
        let bind = auth.get_child("bind", BIND_NS).map(|b| BindRequest {
            tag: b
                .get_child("tag", BIND_NS)
                .map(|t| t.text().trim().to_string())
                .filter(|t| !t.is_empty()),
            carbons: b.has_child("enable", ns::CARBONS),
            csi_inactive: if b.has_child("inactive", CSI_NS) {
                Some(true)
            } else if b.has_child("active", CSI_NS) {
                Some(false)
            } else {
                None
            },
            sm: b
                .get_child("enable", ns::SM)
                .map(|e| matches!(e.attr("resume"), Some("true") | Some("1"))),
            rooms: b.has_child("rooms", ROOMS_NS),
        });
        Request {
            user_agent,
            resume,
            bind,
            fast: auth
                .get_child("fast", super::fast::NS)
                .map(super::fast::Usage::parse),
            request_token: auth
                .get_child("request-token", super::fast::NS)
                .and_then(|r| r.attr("mechanism"))
                .map(str::to_string),
        }
    }
}

/// The `<authentication/>` stream feature: the mechanisms and what may be
/// done inline.
pub fn feature(mechanisms: &[&str], account_muc: bool, fast: &[&str]) -> Element {
    let mut bind_inline = Element::bare("inline", BIND_NS)
        .child(Element::bare("feature", BIND_NS).attr_set("var", ns::CARBONS))
        .child(Element::bare("feature", BIND_NS).attr_set("var", CSI_NS))
        .child(Element::bare("feature", BIND_NS).attr_set("var", ns::SM));
    if account_muc {
        bind_inline.append_child(Element::bare("feature", BIND_NS).attr_set("var", ROOMS_NS));
    }
    let mut inline = Element::bare("inline", NS)
        .child(Element::bare("sm", ns::SM))
        .child(Element::bare("bind", BIND_NS).child(bind_inline));
    if !fast.is_empty() {
        inline.append_child(
            Element::bare("fast", super::fast::NS).children_from(
                fast.iter()
                    .map(|m| Element::bare("mechanism", super::fast::NS).text_node(*m)),
            ),
        );
    }
    Element::bare("authentication", NS)
        .children_from(
            mechanisms
                .iter()
                .map(|m| Element::bare("mechanism", NS).text_node(*m)),
        )
        .child(inline)
}

/// XEP-0386 §2.2: `[tag]/[id]`, stable for the same user-agent id (which
/// it does not reveal) and account; random without a user-agent id.
pub fn resource(account: &str, tag: Option<&str>, user_agent: Option<&str>) -> String {
    let id = match user_agent {
        Some(ua) => {
            let digest = sha2::Sha256::digest(format!("{account}\0{ua}").as_bytes());
            crate::s2s::dialback::hex(&digest[..6])
        }
        None => roost_proto::id::random_token(12),
    };
    match tag {
        // Resources are at most 1023 bytes; a tag is meant to be short.
        Some(t) => format!("{}/{id}", t.chars().take(64).collect::<String>()),
        None => id,
    }
}

pub fn success(authz: &str, additional: Option<String>) -> Element {
    success_for_resumption(additional).child(authorization(authz))
}

/// A `<success/>` still without its authorization identifier: the
/// resumed session adds its full JID (XEP-0388 §2.6.1).
pub fn success_for_resumption(additional: Option<String>) -> Element {
    let mut s = Element::bare("success", NS);
    if let Some(d) = additional {
        s.append_child(Element::bare("additional-data", NS).text_node(d));
    }
    s
}

pub fn authorization(jid: &str) -> Element {
    Element::bare("authorization-identifier", NS).text_node(jid)
}

pub fn failure(condition: &str, text: Option<&str>) -> Element {
    let mut f = Element::bare("failure", NS).child(Element::bare(condition, ns::SASL));
    if let Some(t) = text {
        f.append_child(Element::bare("text", NS).text_node(t));
    }
    f
}

pub fn challenge(data: String) -> Element {
    Element::bare("challenge", NS).text_node(data)
}

/// What a bound session writes first (`session.rs`): `<success/>` with
/// its `<bound/>`, completed with what stream management and the other
/// inline features answered.
pub struct Inline {
    pub success: Element,
    pub bind: BindRequest,
    /// Rooms the session was joined to (our inline feature), for `<bound/>`.
    pub rooms: Vec<(String, String)>,
}

impl Inline {
    /// The finished `<success/>`, given stream management's answer.
    pub fn finish(mut self, sm_answer: Option<Element>) -> Element {
        let mut bound = Element::bare("bound", BIND_NS);
        if let Some(a) = sm_answer {
            bound.append_child(a);
        }
        if self.bind.rooms {
            bound.append_child(Element::bare("rooms", ROOMS_NS).children_from(
                self.rooms.iter().map(|(room, nick)| {
                    Element::bare("room", ROOMS_NS)
                        .attr_set("jid", room.as_str())
                        .attr_set("nick", nick.as_str())
                }),
            ));
        }
        self.success.append_child(bound);
        self.success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authenticate_request_with_inline_bind() {
        let auth: Element = "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'>\
            <initial-response>x</initial-response>\
            <user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>A</software></user-agent>\
            <bind xmlns='urn:xmpp:bind:0'><tag>AwesomeXMPP</tag><enable xmlns='urn:xmpp:carbons:2'/>\
            <enable xmlns='urn:xmpp:sm:3' resume='true'/><inactive xmlns='urn:xmpp:csi:0'/>\
            <rooms xmlns='urn:roost:account-muc:0'/></bind></authenticate>"
            .parse()
            .unwrap();
        let r = Request::parse(&auth);
        assert_eq!(
            r.user_agent.as_deref(),
            Some("d4565fa7-4d72-4749-b3d3-740edbf87770")
        );
        let b = r.bind.unwrap();
        assert_eq!(b.tag.as_deref(), Some("AwesomeXMPP"));
        assert!(b.carbons && b.rooms);
        assert_eq!((b.csi_inactive, b.sm), (Some(true), Some(true)));
    }

    #[test]
    fn resources_are_stable_per_client_and_do_not_show_its_id() {
        let a = resource("alice@example.org", Some("App"), Some("ua-1"));
        assert_eq!(a, resource("alice@example.org", Some("App"), Some("ua-1")));
        assert_ne!(a, resource("alice@example.org", Some("App"), Some("ua-2")));
        assert_ne!(a, resource("bob@example.org", Some("App"), Some("ua-1")));
        assert!(a.starts_with("App/") && !a.contains("ua-1"));
        assert_ne!(
            resource("alice@example.org", None, None),
            resource("alice@example.org", None, None)
        );
    }
}
