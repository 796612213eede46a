//! ACCOUNT-MUC rule 15: the server itself checks, with XEP-0410 self-pings
//! on a schedule and after "not in room" errors, that the account is still
//! in each room, and rejoins transparently when it is not — no client has to.

use std::time::{Duration, UNIX_EPOCH};

use jid::BareJid;
use minidom::Element;
use roost_proto::{datetime, ns, Condition, Elem, Stanza, StanzaError};

use super::{from_room, Phase, MUC};
use crate::account::Account;

impl Account {
    /// Ping every room the account is in (called on the schedule).
    pub(in crate::account) fn self_ping_rooms(&mut self) {
        self.resend_stale_joins();
        let rooms: Vec<(BareJid, String)> = self
            .rooms
            .map
            .iter()
            .filter(|(_, s)| s.phase == Phase::Joined)
            .map(|(j, s)| (j.clone(), s.nick.clone()))
            .collect();
        for (room, nick) in rooms {
            let id = format!("amuc-ping-{}", roost_proto::id::random_token(12));
            self.rooms.pings.insert(id.clone(), room.clone());
            let ping = Element::bare("iq", ns::CLIENT)
                .attr_set("type", "get")
                .attr_set("id", id)
                .attr_set("from", self.jid.as_str())
                .attr_set("to", from_room(&room, &nick))
                .child(Element::bare("ping", ns::PING));
            self.server.route_element(ping);
        }
        // Unanswered pings from earlier rounds are forgotten.
        if self.rooms.pings.len() > 4 * self.rooms.map.len().max(1) {
            self.rooms.pings.clear();
        }
    }

    /// XEP-0410 §4: a result (or an error saying the room cannot answer
    /// pings) means we are in; `not-acceptable` and friends mean we are not.
    pub(super) fn self_ping_answer(&mut self, room: &BareJid, answer: &Stanza) {
        if answer.type_attr() == Some("result") {
            return;
        }
        let condition = StanzaError::from_stanza(&answer.el).map(|e| e.condition);
        let joined = matches!(
            condition,
            Some(Condition::ServiceUnavailable) | Some(Condition::FeatureNotImplemented)
        );
        let transient = matches!(
            condition,
            Some(Condition::RemoteServerTimeout) | Some(Condition::RemoteServerNotFound)
        );
        if !joined && !transient {
            self.rejoin(room);
        }
    }

    /// Join again from the bare JID with the same nick, asking only for the
    /// history missed since the last message; sessions stay joined.
    pub(super) fn rejoin(&mut self, room: &BareJid) {
        let Some(state) = self.rooms.map.get_mut(room) else {
            return;
        };
        if state.phase == Phase::Joining {
            return;
        }
        tracing::info!(account = %self.jid, %room, "not in the room any more; rejoining");
        state.phase = Phase::Joining;
        state.rejoining = true;
        self.send_join(room);
    }

    /// Joins left unanswered for three ping intervals (at most a minute)
    /// are sent again: the room's server may have gone down between our
    /// join and its answer.
    fn resend_stale_joins(&mut self) {
        let every = self.server.config.account_muc.self_ping_interval.max(1);
        let stale_after = std::time::Duration::from_secs((every * 3).min(60));
        let stale: Vec<BareJid> = self
            .rooms
            .map
            .iter()
            .filter(|(_, s)| {
                s.phase == Phase::Joining && s.join_sent.is_some_and(|t| t.elapsed() >= stale_after)
            })
            .map(|(j, _)| j.clone())
            .collect();
        for room in stale {
            tracing::info!(account = %self.jid, %room, "no answer to our join; sending it again");
            self.send_join(&room);
        }
    }

    /// The account's join presence for a room it is (re)joining.
    fn send_join(&mut self, room: &BareJid) {
        let Some(state) = self.rooms.map.get_mut(room) else {
            return;
        };
        state.join_sent = Some(std::time::Instant::now());
        let mut x = Element::bare("x", MUC);
        if let Some(pw) = &state.password {
            x.append_child(Element::bare("password", MUC).text_node(pw.clone()));
        }
        let history = match state.last_message_ms {
            Some(ms) => Element::bare("history", MUC).attr_set(
                "since",
                datetime::to_xep82(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)),
            ),
            None => Element::bare("history", MUC).attr_set("maxstanzas", "0"),
        };
        x.append_child(history);
        let nick = state.nick.clone();
        let mut p = Element::bare("presence", ns::CLIENT)
            .attr_set("from", self.jid.as_str())
            .attr_set("to", from_room(room, &nick));
        if let Some(agg) = self.aggregate_presence(room) {
            for c in agg.children() {
                p.append_child(c.clone());
            }
        }
        p.append_child(x);
        self.server.route_element(p);
    }
}
