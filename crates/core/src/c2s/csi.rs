//! XEP-0352 Client State Indication: while the client says it is inactive,
//! presence updates and chat-state-only messages are held back (only the
//! latest presence per sender is kept) and flushed before anything
//! important, or when the client becomes active again.

use std::collections::VecDeque;

use minidom::Element;

pub const NS: &str = "urn:xmpp:csi:0";

/// Held stanzas beyond this are flushed anyway: memory stays bounded.
const MAX_HELD: usize = 512;

#[derive(Default)]
pub struct Csi {
    pub inactive: bool,
    held: VecDeque<Element>,
}

const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";

/// Stanzas whose delay costs the user nothing.
fn is_noise(el: &Element) -> bool {
    match el.name() {
        "presence" => !matches!(
            el.attr("type"),
            Some("subscribe")
                | Some("subscribed")
                | Some("unsubscribe")
                | Some("unsubscribed")
                | Some("error")
        ),
        "message" => el
            .children()
            .all(|c| c.ns() == CHATSTATES || c.name() == "thread"),
        _ => false,
    }
}

pub enum Outgoing {
    /// Held; nothing to send now.
    Held,
    /// Send these, in order.
    Send(Vec<Element>),
}

impl Csi {
    /// Decide what to send for one outgoing stanza.
    pub fn outgoing(&mut self, el: Element) -> Outgoing {
        if !self.inactive {
            return Outgoing::Send(vec![el]);
        }
        if is_noise(&el) && self.held.len() < MAX_HELD {
            if el.name() == "presence" {
                // A newer presence from the same sender replaces the older one.
                let from = el.attr("from").map(str::to_string);
                self.held.retain(|h| {
                    !(h.name() == "presence" && h.attr("from").map(str::to_string) == from)
                });
            }
            self.held.push_back(el);
            return Outgoing::Held;
        }
        let mut out: Vec<Element> = self.held.drain(..).collect();
        out.push(el);
        Outgoing::Send(out)
    }

    /// The client became active: everything held goes out.
    pub fn activate(&mut self) -> Vec<Element> {
        self.inactive = false;
        self.held.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn presence_is_held_latest_wins_and_flushed_before_a_message() {
        let mut c = Csi {
            inactive: true,
            ..Csi::default()
        };
        assert!(matches!(
            c.outgoing(parse(
                "<presence xmlns='jabber:client' from='a@x/1'><show>away</show></presence>"
            )),
            Outgoing::Held
        ));
        assert!(matches!(
            c.outgoing(parse("<presence xmlns='jabber:client' from='a@x/1'/>")),
            Outgoing::Held
        ));
        assert!(matches!(c.outgoing(parse("<message xmlns='jabber:client'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")), Outgoing::Held));
        match c.outgoing(parse(
            "<message xmlns='jabber:client'><body>hi</body></message>",
        )) {
            Outgoing::Send(v) => {
                assert_eq!(v.len(), 3);
                assert_eq!(v[0].name(), "presence");
                assert!(v[0].children().next().is_none(), "the latest presence wins");
                assert_eq!(v[2].name(), "message");
            }
            Outgoing::Held => panic!("a body must not be held"),
        }
    }

    #[test]
    fn subscription_requests_are_never_held() {
        let mut c = Csi {
            inactive: true,
            ..Csi::default()
        };
        assert!(matches!(
            c.outgoing(parse(
                "<presence xmlns='jabber:client' type='subscribe' from='a@x'/>"
            )),
            Outgoing::Send(_)
        ));
    }
}
