//! ACCOUNT-MUC rules 5 and 6 from the session's side: messages to the room
//! or to occupants leave from the bare JID with their ids kept; IQs leave
//! from the bare JID under an id of ours and their answer returns to the
//! session that asked; self-pings are answered by the server.

use jid::{BareJid, Jid};
use roost_proto::{ns, ElementExt, Stanza};

use super::Phase;
use crate::account::Account;
use crate::server::iq_reply;

impl Account {
    pub(super) fn room_message_from_session(
        &mut self,
        _resource: &str,
        _room: &BareJid,
        stanza: Stanza,
    ) {
        let mut el = stanza.el;
        el.set("from", self.jid.as_str());
        self.server.route_element(el);
    }

    pub(super) fn room_iq_from_session(
        &mut self,
        resource: &str,
        room: &BareJid,
        to: &Jid,
        stanza: Stanza,
    ) {
        if !stanza.is_iq_request() {
            // A session answering an IQ the room sent us: from the bare JID.
            let mut el = stanza.el;
            el.set("from", self.jid.as_str());
            self.server.route_element(el);
            return;
        }
        // XEP-0410 self-ping: we know whether the account is in.
        let is_ping = stanza
            .el
            .children()
            .next()
            .is_some_and(|p| p.is("ping", ns::PING));
        let own_nick = self.rooms.map.get(room).map(|s| (s.phase, s.nick.clone()));
        if is_ping {
            if let Some((Phase::Joined, nick)) = &own_nick {
                if to.resource().map(|r| r.as_str()) == Some(nick.as_str()) {
                    let mut reply = iq_reply(&stanza.el, Ok(None));
                    reply.set("from", to.as_str());
                    self.to_session(resource, reply);
                    return;
                }
            }
        }
        let ours = format!("amuc-{}", roost_proto::id::random_token(14));
        let original = stanza.id().unwrap_or_default().to_string();
        self.rooms
            .iqs
            .insert(ours.clone(), (resource.to_string(), original));
        let mut el = stanza.el;
        el.set("id", ours);
        el.set("from", self.jid.as_str());
        self.server.route_element(el);
    }

    /// Rule 6: the answer goes back to the one session that asked.
    pub(super) fn room_iq_response(&mut self, stanza: Stanza) {
        let Some(id) = stanza.id().map(str::to_string) else {
            return;
        };
        let Some((resource, original)) = self.rooms.iqs.remove(&id) else {
            return;
        };
        let mut el = stanza.el;
        el.set("id", original);
        self.to_session(&resource, el);
    }
}
