//! XEP-0280 Message Carbons: sessions that enabled carbons get a copy of
//! the account's one-to-one messages that were sent by, or delivered to,
//! another session; XEP-0334 `no-copy` and carbons `private` opt out.

use minidom::Element;
use roost_proto::{ns, Elem, Stanza, StanzaError};

use super::Account;

/// XEP-0280 §6: which messages are copied.
pub fn eligible(msg: &Element) -> bool {
    let chat_or_normal_body = match msg.attr("type") {
        Some("chat") => true,
        None | Some("normal") => msg.has_child("body", ns::CLIENT),
        _ => false,
    };
    chat_or_normal_body
        && !msg.has_child("private", ns::CARBONS)
        && !msg.has_child("no-copy", ns::HINTS)
        && !msg.has_child("x", ns::MUC_USER)
        && !msg.has_child("received", ns::CARBONS)
        && !msg.has_child("sent", ns::CARBONS)
}

pub(super) fn wrap(direction: &str, from: &str, to: &str, msg: &Element) -> Element {
    Element::bare("message", ns::CLIENT)
        .attr_set("from", from)
        .attr_set("to", to)
        .attr_opt("type", msg.attr("type"))
        .child(
            Element::bare(direction, ns::CARBONS)
                .child(Element::bare("forwarded", ns::FORWARD).child(msg.clone())),
        )
}

impl Account {
    /// Copy to carbons-enabled sessions other than those in `skip`.
    pub(super) fn carbon_copies(&self, direction: &str, msg: &Element, skip: &[&str]) {
        if !eligible(msg) {
            return;
        }
        for (resource, e) in self.resources.iter() {
            if e.carbons && !skip.contains(&resource.as_str()) {
                e.handle.send(wrap(
                    direction,
                    self.jid.as_str(),
                    e.handle.jid.as_str(),
                    msg,
                ));
            }
        }
    }

    /// `<enable/>` and `<disable/>` (XEP-0280 §4, §5).
    pub(super) fn carbons_iq(
        &mut self,
        resource: &str,
        iq: &Stanza,
    ) -> Result<Option<Element>, StanzaError> {
        if iq.type_attr() != Some("set") {
            return Err(StanzaError::bad_request("carbons are set, not get"));
        }
        let on = if iq.el.has_child("enable", ns::CARBONS) {
            true
        } else if iq.el.has_child("disable", ns::CARBONS) {
            false
        } else {
            return Err(StanzaError::bad_request("enable or disable"));
        };
        if let Some(e) = self.resources.get_mut(resource) {
            e.carbons = on;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn chat_is_copied_but_private_no_copy_groupchat_and_bodiless_normal_are_not() {
        assert!(eligible(&p(
            "<message xmlns='jabber:client' type='chat'><body>x</body></message>"
        )));
        assert!(eligible(&p(
            "<message xmlns='jabber:client'><body>x</body></message>"
        )));
        assert!(!eligible(&p(
            "<message xmlns='jabber:client'><x xmlns='jabber:x:conference'/></message>"
        )));
        assert!(!eligible(&p(
            "<message xmlns='jabber:client' type='groupchat'><body>x</body></message>"
        )));
        assert!(!eligible(&p("<message xmlns='jabber:client' type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>")));
        assert!(!eligible(&p("<message xmlns='jabber:client' type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>")));
    }
}
