//! XEP-0424 (Message Retraction) and XEP-0425 (Moderated Message
//! Retraction) as archives see them: what a retraction asks for, and the
//! tombstone (XEP-0425 §5, XEP-0424 §5) that replaces the retracted
//! message. Used by room archives and by the personal archive copies of
//! account-based MUC joining, so both store the same tombstone.

use minidom::Element;

use crate::element::{Elem, ElementExt};
use crate::ns;

/// A retraction found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retraction {
    /// The retracted message's id (in a room: the room's stanza-id).
    pub id: String,
    /// XEP-0425: the moderator's occupant JID (`by`) and occupant-id.
    pub moderated: Option<Moderated>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moderated {
    pub by: Option<String>,
    pub occupant_id: Option<String>,
}

impl Retraction {
    /// The `<retract/>` child of a message, if it has one with an id.
    pub fn of_message(message: &Element) -> Option<Retraction> {
        let retract = message.get_child("retract", ns::RETRACT)?;
        let id = retract.attr("id").filter(|i| !i.is_empty())?.to_string();
        let moderated = retract
            .get_child("moderated", ns::MODERATE)
            .map(|m| Moderated {
                by: m.attr("by").map(str::to_string),
                occupant_id: occupant_id(m),
            });
        let reason = retract
            .get_child("reason", ns::RETRACT)
            .or_else(|| retract.get_child("reason", ns::MODERATE))
            .map(|r| r.text());
        Some(Retraction {
            id,
            moderated,
            reason,
        })
    }

    /// `<moderated/>` as the room's announcement and tombstones carry it.
    fn moderated_element(m: &Moderated) -> Element {
        Element::bare("moderated", ns::MODERATE)
            .attr_opt("by", m.by.clone())
            .children_from(
                m.occupant_id
                    .iter()
                    .map(|id| Element::bare("occupant-id", ns::OCCUPANT_ID).attr_set("id", id)),
            )
    }

    /// XEP-0425 §3.1: the message a room sends to every occupant.
    pub fn announcement(&self) -> Element {
        let mut retract = Element::bare("retract", ns::RETRACT).attr_set("id", self.id.as_str());
        if let Some(m) = &self.moderated {
            retract.append_child(Self::moderated_element(m));
        }
        if let Some(reason) = &self.reason {
            retract.append_child(Element::bare("reason", ns::RETRACT).text_node(reason.as_str()));
        }
        Element::bare("message", ns::CLIENT)
            .attr_set("type", "groupchat")
            .child(retract)
    }

    /// The tombstone of `original`: its envelope, XEP-0359 stanza-ids and
    /// XEP-0421 occupant-id kept (clients match the tombstone with the
    /// message they hold by them), every other child (body, fallbacks,
    /// files) replaced by `<retracted/>` (XEP-0425 §5).
    pub fn tombstone(&self, original: &Element, stamp: &str) -> Element {
        let mut out = original.shallow_clone();
        for c in original.children() {
            if c.is("occupant-id", ns::OCCUPANT_ID) || c.is("stanza-id", ns::SID) {
                out.append_child(c.clone());
            }
        }
        let mut retracted = Element::bare("retracted", ns::RETRACT).attr_set("stamp", stamp);
        if let Some(m) = &self.moderated {
            retracted.append_child(Self::moderated_element(m));
        }
        if let Some(reason) = &self.reason {
            retracted.append_child(Element::bare("reason", ns::RETRACT).text_node(reason.as_str()));
        }
        out.append_child(retracted);
        out
    }
}

/// The XEP-0421 occupant-id child of an element.
pub fn occupant_id(el: &Element) -> Option<String> {
    el.get_child("occupant-id", ns::OCCUPANT_ID)
        .and_then(|o| o.attr("id"))
        .map(str::to_string)
}

/// A message that is already a tombstone.
pub fn is_tombstone(el: &Element) -> bool {
    el.has_child("retracted", ns::RETRACT)
}

/// Whether the message's `from` is `room` itself (XEP-0425 §6: only
/// moderation messages from the room are legitimate).
pub fn from_room(message: &Element, room: &str) -> bool {
    message.attr("from") == Some(room)
}

/// A body-less message that only retracts: kept in archives so clients
/// catching up learn of it.
pub fn is_retraction(el: &Element) -> bool {
    el.has_child("retract", ns::RETRACT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moderation_is_read_with_moderator_and_reason() {
        let m: Element = "<message xmlns='jabber:client' from='r@m.example' type='groupchat'>\
            <retract xmlns='urn:xmpp:message-retract:1' id='s1'>\
            <moderated xmlns='urn:xmpp:message-moderate:1' by='r@m.example/mod'>\
            <occupant-id xmlns='urn:xmpp:occupant-id:0' id='o2'/></moderated>\
            <reason>spam</reason></retract></message>"
            .parse()
            .unwrap();
        let r = Retraction::of_message(&m).unwrap();
        assert_eq!(r.id, "s1");
        assert_eq!(r.reason.as_deref(), Some("spam"));
        let moderated = r.moderated.clone().unwrap();
        assert_eq!(moderated.by.as_deref(), Some("r@m.example/mod"));
        assert_eq!(moderated.occupant_id.as_deref(), Some("o2"));
        assert!(from_room(&m, "r@m.example"));
        // The announcement carries the same facts.
        assert_eq!(Retraction::of_message(&r.announcement()), Some(r));
    }

    #[test]
    fn a_retract_without_id_is_no_retraction() {
        let m: Element = "<message xmlns='jabber:client'>\
            <retract xmlns='urn:xmpp:message-retract:1'/></message>"
            .parse()
            .unwrap();
        assert_eq!(Retraction::of_message(&m), None);
        let old: Element = "<message xmlns='jabber:client'>\
            <retract xmlns='urn:xmpp:message-retract:0' id='x'/></message>"
            .parse()
            .unwrap();
        assert_eq!(Retraction::of_message(&old), None);
    }

    #[test]
    fn the_tombstone_keeps_the_envelope_and_occupant_id_only() {
        let original: Element = "<message xmlns='jabber:client' from='r@m.example/old' \
            type='groupchat' id='m1'><body>DM me</body>\
            <stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='r@m.example'/>\
            <occupant-id xmlns='urn:xmpp:occupant-id:0' id='o1'/>\
            <x xmlns='jabber:x:oob'><url>https://e.example/f</url></x></message>"
            .parse()
            .unwrap();
        let r = Retraction {
            id: "s1".into(),
            moderated: Some(Moderated {
                by: Some("r@m.example/mod".into()),
                occupant_id: Some("o2".into()),
            }),
            reason: Some("spam".into()),
        };
        let t = r.tombstone(&original, "2026-12-06T18:00:00Z");
        assert_eq!(t.attr("id"), Some("m1"));
        assert_eq!(t.attr("from"), Some("r@m.example/old"));
        assert!(t.get_child("body", ns::CLIENT).is_none());
        assert!(t.get_child("x", "jabber:x:oob").is_none());
        assert_eq!(occupant_id(&t).as_deref(), Some("o1"));
        assert!(t.has_child("stanza-id", ns::SID));
        assert!(is_tombstone(&t));
        let retracted = t.get_child("retracted", ns::RETRACT).unwrap();
        assert_eq!(retracted.attr("stamp"), Some("2026-12-06T18:00:00Z"));
        let m = retracted.get_child("moderated", ns::MODERATE).unwrap();
        assert_eq!(m.attr("by"), Some("r@m.example/mod"));
        assert!(t.to_xml().contains("spam"));
    }
}
