//! ACCOUNT-MUC rules 1, 2, 7, 8 and 12 from the session's side: joining
//! (first join from the bare JID, later joins answered from state),
//! presence updates, nick changes and leaving.

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{ns, Elem, ElementExt, Stanza};

use super::{from_room, muc_user_status, nick_of, PendingJoin, Phase, RoomState, MUC};
use super::{presence_key, room_view};
use crate::account::Account;

impl Account {
    pub(super) async fn room_presence_from_session(
        &mut self,
        resource: &str,
        room: &BareJid,
        to: &Jid,
        stanza: Stanza,
    ) {
        let unavailable = stanza.type_attr() == Some("unavailable");
        if unavailable {
            // The status text goes with the account if it leaves for real.
            if let Some(state) = self.rooms.map.get_mut(room) {
                state.leave_status = stanza.el.child_text("status", ns::CLIENT);
            }
            self.session_leaves(room, resource, true);
            return;
        }
        if stanza.type_attr().is_some() {
            // Errors and subscription requests to a room: not ours to fork.
            self.server.route(stanza);
            return;
        }
        let Some(nick) = nick_of(to) else {
            return;
        };
        // The nick as the client wrote it, before resourceprep: a room that
        // normalises it must be reported with 210 (XEP-0045 §7.2.10).
        let asked = stanza
            .el
            .attr("to")
            .and_then(|t| t.split_once('/'))
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| nick.clone());
        let joined = self
            .rooms
            .map
            .get(room)
            .is_some_and(|s| s.joined.contains(resource));
        if joined {
            let current = self
                .rooms
                .map
                .get(room)
                .map(|s| s.nick.clone())
                .unwrap_or_default();
            if let Some(state) = self.rooms.map.get_mut(room) {
                state.set_session_presence(resource, room_view(&stanza.el));
            }
            if nick != current {
                self.change_nick(resource, room, nick);
            } else if stanza.el.has_child("x", MUC) {
                // A join from a joined session asks for the room again
                // (XEP-0045 §7.2): answered from state.
                let history = stanza
                    .el
                    .get_child("x", MUC)
                    .and_then(|x| x.get_child("history", MUC))
                    .cloned();
                self.answer_join_locally(resource, room, &asked, history.as_ref())
                    .await;
                self.update_room_presence(room);
            } else {
                // A plain presence update (rule 7).
                self.update_room_presence(room);
            }
            return;
        }
        self.join(resource, room, nick, &asked, &stanza.el).await;
    }

    async fn join(
        &mut self,
        resource: &str,
        room: &BareJid,
        nick: String,
        asked: &str,
        request: &Element,
    ) {
        let muc_x = request.get_child("x", MUC);
        let phase = self.rooms.map.get(room).map(|s| s.phase);
        match phase {
            None => {
                // Rule 1: the account joins, from its bare JID.
                let mut state = RoomState::new(nick.clone());
                state.password = muc_x.and_then(|x| x.child_text("password", MUC));
                // The join carries this session's presence: the room has it.
                state.set_session_presence(resource, room_view(request));
                state.sent_presence = Some(presence_key(request));
                state.counting_history = true;
                state.pending.push(PendingJoin {
                    resource: resource.to_string(),
                    requested_nick: asked.to_string(),
                });
                self.rooms.map.insert(room.clone(), state);
                let mut join = Element::bare("presence", ns::CLIENT)
                    .attr_set("from", self.jid.as_str())
                    .attr_set("to", from_room(room, &nick));
                for c in request.children() {
                    join.append_child(c.clone());
                }
                if muc_x.is_none() {
                    join.append_child(Element::bare("x", MUC));
                }
                self.server.route_element(join);
            }
            Some(Phase::Joining) => {
                if let Some(state) = self.rooms.map.get_mut(room) {
                    state.set_session_presence(resource, room_view(request));
                    state.leave_when_joined = false;
                    state.pending.push(PendingJoin {
                        resource: resource.to_string(),
                        requested_nick: asked.to_string(),
                    });
                }
            }
            Some(Phase::Joined) => {
                // Rule 2: answered from state, nothing sent to the room.
                let history = muc_x.and_then(|x| x.get_child("history", MUC)).cloned();
                self.answer_join_locally(resource, room, asked, history.as_ref())
                    .await;
                if let Some(state) = self.rooms.map.get_mut(room) {
                    state.joined.insert(resource.to_string());
                    state.set_session_presence(resource, room_view(request));
                }
                self.update_room_presence(room);
            }
        }
    }

    /// Our Bind 2 inline feature: the new session joins every room the
    /// account is in, as a later join answered from state (rule 2), with
    /// no history (the client catches up from the archive). The rooms
    /// joined, with the account's nick in each.
    pub(in crate::account) async fn join_session_to_rooms(
        &mut self,
        resource: &str,
    ) -> Vec<(String, String)> {
        let rooms: Vec<(BareJid, String)> = self
            .rooms
            .map
            .iter()
            .map(|(room, s)| (room.clone(), s.nick.clone()))
            .collect();
        let mut joined = Vec::new();
        for (room, nick) in rooms {
            let request = Element::bare("presence", ns::CLIENT).child(
                Element::bare("x", MUC)
                    .child(Element::bare("history", MUC).attr_set("maxstanzas", "0")),
            );
            self.join(resource, &room, nick.clone(), &nick, &request)
                .await;
            joined.push((room.to_string(), nick));
        }
        joined
    }

    /// Others' presences, own self-presence last (110 + join codes, 210
    /// when the nick differs from the one asked for), history from the
    /// account's archive, then the subject.
    async fn answer_join_locally(
        &mut self,
        resource: &str,
        room: &BareJid,
        requested: &str,
        history: Option<&Element>,
    ) {
        let Some(state) = self.rooms.map.get(room) else {
            return;
        };
        let others: Vec<Element> = state.occupants.values().cloned().collect();
        let mut own = state
            .self_presence
            .clone()
            .unwrap_or_else(|| Element::bare("presence", ns::CLIENT));
        let nick = state.nick.clone();
        // The room's lasting codes (100 non-anonymous, 170 logged, ...);
        // 110/210 belong to the first join only. 201 stays while the room
        // is not configured (XEP-0045 §10.1.1), so a later session's client
        // offers the configuration the first one never finished.
        let mut codes: Vec<String> = state
            .join_codes
            .iter()
            .filter(|c| !matches!(c.as_str(), "110" | "210"))
            .cloned()
            .collect();
        if requested != nick && !codes.iter().any(|c| c == "210") {
            codes.push("210".into());
        }
        let subject = state.subject.clone();
        let default_history = state.default_history;
        for p in others {
            self.to_session(resource, p);
        }
        // Self-presence: the room's item, our codes, 110 last.
        let item = own
            .get_child("x", super::MUC_USER)
            .and_then(|x| x.get_child("item", super::MUC_USER))
            .cloned();
        own.remove_child("x", super::MUC_USER);
        let mut x = Element::bare("x", super::MUC_USER);
        if let Some(item) = item {
            x.append_child(item);
        }
        for c in codes.iter().filter(|c| *c != "110") {
            x.append_child(Element::bare("status", super::MUC_USER).attr_set("code", c.as_str()));
        }
        x.append_child(Element::bare("status", super::MUC_USER).attr_set("code", "110"));
        own.append_child(x);
        own.set("from", from_room(room, &nick));
        own.unset("type");
        self.to_session(resource, own);
        for m in self.room_history(room, history, default_history).await {
            self.to_session(resource, m);
        }
        // The subject comes last, empty when there is none (XEP-0045 §7.2.15).
        let subject = subject.unwrap_or_else(|| {
            Element::bare("message", ns::CLIENT)
                .attr_set("type", "groupchat")
                .attr_set("from", room.as_str())
                .child(Element::bare("subject", ns::CLIENT))
        });
        self.to_session(resource, subject);
    }

    /// Rule 12: the account's nick changes; the room's answer goes to
    /// every joined session, an error only to the asking one.
    fn change_nick(&mut self, resource: &str, room: &BareJid, nick: String) {
        let Some(state) = self.rooms.map.get_mut(room) else {
            return;
        };
        state.nick_change = Some((resource.to_string(), nick.clone()));
        let mut p = Element::bare("presence", ns::CLIENT)
            .attr_set("from", self.jid.as_str())
            .attr_set("to", from_room(room, &nick));
        if let Some(best) = self.aggregate_presence(room) {
            for c in best.children() {
                p.append_child(c.clone());
            }
        }
        self.server.route_element(p);
    }

    /// Rule 8: a session leaves (explicitly, or because it ended when
    /// `explicit` is false and nothing is sent to it).
    pub(super) fn session_leaves(&mut self, room: &BareJid, resource: &str, explicit: bool) {
        let Some(state) = self.rooms.map.get_mut(room) else {
            return;
        };
        let was_joined = state.joined.remove(resource);
        state.session_presence.remove(resource);
        let was_pending = state.pending.iter().any(|p| p.resource == resource);
        state.pending.retain(|p| p.resource != resource);
        if !was_joined && !was_pending {
            return;
        }
        let nick = state.nick.clone();
        let nobody = state.joined.is_empty() && state.pending.is_empty();
        let persistent = state.persistent;
        let phase = state.phase;
        if explicit {
            let p = Element::bare("presence", ns::CLIENT)
                .attr_set("type", "unavailable")
                .attr_set("from", from_room(room, &nick))
                .child(
                    muc_user_status(&["110"]).child(
                        Element::bare("item", super::MUC_USER)
                            .attr_set("affiliation", "none")
                            .attr_set("role", "none"),
                    ),
                );
            self.to_session(resource, p);
        }
        if !nobody {
            self.update_room_presence(room);
            return;
        }
        if persistent {
            // Rule 7: kept with no session, shown as xa.
            self.update_room_presence(room);
            return;
        }
        match phase {
            Phase::Joining => {
                if let Some(s) = self.rooms.map.get_mut(room) {
                    s.leave_when_joined = true;
                }
            }
            Phase::Joined => self.leave_room(room),
        }
    }

    /// The account leaves the room for real; others see it go.
    pub(super) fn leave_room(&mut self, room: &BareJid) {
        let Some(state) = self.rooms.map.remove(room) else {
            return;
        };
        let p = Element::bare("presence", ns::CLIENT)
            .attr_set("type", "unavailable")
            .attr_set("from", self.jid.as_str())
            .attr_set("to", from_room(room, &state.nick))
            .children_from(
                state
                    .leave_status
                    .map(|t| Element::bare("status", ns::CLIENT).text_node(t)),
            );
        self.server.route_element(p);
    }
}
