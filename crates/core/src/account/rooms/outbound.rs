//! ACCOUNT-MUC rules 5 and 6 from the session's side: messages to the room
//! or to occupants leave from the bare JID with their ids kept; IQs leave
//! from the bare JID under an id of ours and their answer returns to the
//! session that asked; self-pings are answered by the server.

use jid::{BareJid, Jid};
use roost_proto::{ns, Condition, ElementExt, Stanza, StanzaError};

use super::Phase;
use crate::account::Account;
use crate::server::iq_reply;

/// Our id prefix for a room configuration IQ sent for a session.
const CONFIG_IQ: &str = "amuc-cfg-";

impl Account {
    pub(super) async fn room_message_from_session(
        &mut self,
        resource: &str,
        room: &BareJid,
        stanza: Stanza,
    ) {
        // A session that did not join gets what the room gives a
        // non-occupant (XEP-0045 §7.4, §7.5: not-acceptable), so that its
        // client notices it is out and rejoins; nothing reaches the room.
        let joined = self
            .rooms
            .map
            .get(room)
            .is_some_and(|s| s.phase == Phase::Joined && s.joined.contains(resource));
        let to_occupant = stanza.to.as_ref().is_some_and(|t| t.resource().is_some());
        let is_chat = stanza.type_attr() == Some("groupchat") || to_occupant;
        if !joined && is_chat && !stanza.is_error() {
            let reply = StanzaError::new(Condition::NotAcceptable)
                .with_text("this session is not in the room")
                .reply_to(&stanza.el);
            self.to_session(resource, reply);
            return;
        }
        let is_error = stanza.is_error();
        let mut el = stanza.el;
        el.set("from", self.jid.as_str());
        if to_occupant && !is_error {
            // A private message: every device sees it like the rest of the
            // room (XEP-0280 §9: a sent carbon to the other sessions that
            // joined), and it is archived once for the account (XEP-0313).
            self.private_message_sent(resource, room, &el, stanza.receipt.as_ref())
                .await;
        }
        let mut out = match Stanza::parse(el) {
            Ok(s) => s,
            Err(_) => return,
        };
        // XEP-0198: the sender's ack waits for where the message goes.
        out.receipt = stanza.receipt;
        self.server.route(out);
    }

    async fn private_message_sent(
        &mut self,
        resource: &str,
        room: &BareJid,
        el: &minidom::Element,
        receipt: Option<&roost_proto::stanza::Receipt>,
    ) {
        // The message as the sending session wrote it (from its full JID),
        // for the carbons and the archive.
        let mut sent = el.clone();
        if let Some(e) = self.resources.get(resource) {
            sent.set("from", e.handle.jid.as_str());
        }
        if !el.has_child("private", ns::CARBONS) {
            let others: Vec<String> = self
                .rooms
                .map
                .get(room)
                .map(|s| {
                    s.joined
                        .iter()
                        .filter(|r| *r != resource)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for r in others {
                let Some(e) = self.resources.get(&r).filter(|e| e.carbons) else {
                    continue;
                };
                let copy = crate::account::carbons::wrap(
                    "sent",
                    self.jid.as_str(),
                    e.handle.jid.as_str(),
                    &sent,
                );
                self.to_session(&r, copy);
            }
        }
        if let Some(to) = el.attr("to").and_then(|t| Jid::new(t).ok()) {
            self.archive_message(&mut sent, &to, false, receipt).await;
        }
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
        let original = stanza.id().unwrap_or_default().to_string();
        // XEP-0045 §10.1: the owner's configuration (or instant-room) form;
        // marked in our id, so its result needs no state of its own.
        let configures = stanza.type_attr() == Some("set")
            && stanza.el.children().next().is_some_and(|q| {
                q.is("query", "http://jabber.org/protocol/muc#owner")
                    && q.has_child("x", "jabber:x:data")
            });
        let prefix = if configures { CONFIG_IQ } else { "amuc-" };
        let ours = format!("{prefix}{}", roost_proto::id::random_token(14));
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
        if id.starts_with(CONFIG_IQ) && stanza.type_attr() == Some("result") {
            // Configured: the room is no longer locked (201 is history).
            let room = stanza.from.as_ref().map(|f| f.to_bare());
            if let Some(state) = room.and_then(|r| self.rooms.map.get_mut(&r)) {
                state.join_codes.retain(|c| c != "201");
            }
        }
        let mut el = stanza.el;
        el.set("id", original);
        self.to_session(&resource, el);
    }
}
