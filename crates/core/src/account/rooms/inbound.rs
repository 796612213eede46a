//! ACCOUNT-MUC rules 1, 4, 10, 11, 12 and 14 from the room's side: the
//! join answer, everything the room sends forked to the joined sessions,
//! the mirrored state kept in step, removals, and groupchat archived once
//! (retractions tombstone the archived copy: `retraction.rs`).

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{ns, Elem, ElementExt, Stanza, StanzaError};
use roost_store::ArchivedMessage;

use super::{is_self_presence, nick_of, status_codes, Phase, MUC_USER};
use crate::account::Account;

/// Status codes of a self-presence that mean we are out of the room
/// (XEP-0045: 301 ban, 307 kick, 321 affiliation, 322 members-only,
/// 332 shutdown) — or a plain unavailable 110 (we left, or destruction).
fn removal(presence: &Element) -> bool {
    presence.attr("type") == Some("unavailable")
        && !status_codes(presence).iter().any(|c| c == "303")
}

impl Account {
    fn fork(&self, room: &BareJid, el: &Element) {
        self.fork_owned(room, el.clone());
    }

    /// `fork`, taking the element: one session gets it as it is; several
    /// share one tree, each writing it with its own `to`, so the account
    /// copies nothing per session.
    fn fork_owned(&self, room: &BareJid, el: Element) {
        let Some(state) = self.rooms.map.get(room) else {
            return;
        };
        // While joining, the room's join sequence goes to the pending
        // sessions; during a transparent rejoin the joined ones keep getting it.
        let mut targets = state
            .joined
            .iter()
            .chain(state.pending.iter().map(|p| &p.resource));
        if state.joined.len() + state.pending.len() == 1 {
            if let Some(r) = targets.next() {
                self.to_session(r, el);
            }
            return;
        }
        let shared = std::sync::Arc::new(el);
        for r in targets {
            self.to_session_forked(r, shared.clone());
        }
    }

    pub(super) async fn room_presence_in(&mut self, room: &BareJid, from: &Jid, stanza: Stanza) {
        let el = stanza.el;
        let nick = nick_of(from);
        if el.attr("type") == Some("error") {
            return self.room_presence_error(room, nick.as_deref(), el);
        }
        let own_nick = self.rooms.map.get(room).map(|s| s.nick.clone());
        // Our own nick is us, even when a room leaves out status 110 (as
        // XEP-0045 §10.9 does when the room is destroyed).
        let ours = nick.is_some()
            && nick == own_nick
            && matches!(el.attr("type"), None | Some("unavailable"));
        if is_self_presence(&el) || ours {
            return self.room_self_presence(room, el).await;
        }
        let Some(nick) = nick else { return };
        // Rule 10: others come and go; the mirror follows.
        if let Some(state) = self.rooms.map.get_mut(room) {
            if el.attr("type") == Some("unavailable") {
                state.occupants.remove(&nick);
                if status_codes(&el).iter().any(|c| c == "303") {
                    // The new presence under the new nick follows.
                }
            } else {
                let mut stored = el.clone();
                stored.unset("to");
                state.occupants.insert(nick, stored);
            }
        }
        self.fork(room, &el);
    }

    fn room_presence_error(&mut self, room: &BareJid, nick: Option<&str>, el: Element) {
        let Some(state) = self.rooms.map.get_mut(room) else {
            return;
        };
        // Rule 12: a failed nick change goes only to the session that asked.
        if let Some((resource, wanted)) = state.nick_change.clone() {
            if nick == Some(wanted.as_str()) {
                state.nick_change = None;
                self.to_session(&resource, el);
                return;
            }
        }
        if state.phase == Phase::Joining {
            // Rule 13/15: the room's server is unreachable (restarting,
            // say); a bookmarked room is tried again later.
            let unreachable = roost_proto::StanzaError::from_stanza(&el).is_some_and(|e| {
                matches!(
                    e.condition,
                    roost_proto::Condition::RemoteServerNotFound
                        | roost_proto::Condition::RemoteServerTimeout
                )
            });
            if unreachable {
                self.schedule_rejoin(room);
            }
            let Some(state) = self.rooms.map.get_mut(room) else {
                return;
            };
            // Rule 1: every pending session gets the error; nothing is left
            // behind. A failed rejoin ends the membership for the joined ones too.
            let targets: Vec<String> = state
                .pending
                .iter()
                .map(|p| p.resource.clone())
                .chain(state.joined.iter().cloned())
                .collect();
            self.rooms.map.remove(room);
            for r in targets {
                self.to_session(&r, el.clone());
            }
            return;
        }
        self.fork(room, &el);
    }

    async fn room_self_presence(&mut self, room: &BareJid, el: Element) {
        let codes = status_codes(&el);
        let Some(state) = self.rooms.map.get_mut(room) else {
            return;
        };
        if removal(&el) {
            // Rule 11 (or the answer to our own leave): everyone joined
            // learns, the state goes, and nothing rejoins by itself.
            let mut targets: Vec<String> = state.joined.iter().cloned().collect();
            targets.extend(state.pending.iter().map(|p| p.resource.clone()));
            self.rooms.map.remove(room);
            for r in targets {
                self.to_session(&r, el.clone());
            }
            // Rule 13: a disconnection that is not a removal (shutdown,
            // technical reasons) brings a bookmarked room back later.
            if codes.iter().any(|c| c == "332" || c == "333") {
                self.schedule_rejoin(room);
            }
            return;
        }
        if codes.iter().any(|c| c == "303") {
            // Rule 12: our nick changed; the old nick's unavailable.
            if let Some(new) = el
                .get_child("x", MUC_USER)
                .and_then(|x| x.get_child("item", MUC_USER))
                .and_then(|i| i.attr("nick"))
            {
                state.nick = new.to_string();
                state.nick_change = None;
                self.fork(room, &el);
                // Rule 13: the bookmark follows the nick.
                self.write_back_nick(room, new);
                return;
            }
            state.nick_change = None;
            self.fork(room, &el);
            return;
        }
        if let Some(nick) = el
            .attr("from")
            .and_then(|f| Jid::new(f).ok())
            .and_then(|j| nick_of(&j))
        {
            state.nick = nick;
        }
        let mut stored = el.clone();
        stored.unset("to");
        state.self_presence = Some(stored);
        if state.phase == Phase::Joining && std::mem::take(&mut state.rejoining) {
            // A transparent rejoin: sessions never noticed we were out.
            state.phase = Phase::Joined;
            state.sent_presence = None;
            self.fork(room, &el);
            self.update_room_presence(room);
            return;
        }
        if state.phase == Phase::Joining {
            state.join_codes = codes;
            // The joining sessions get the self-presence, then become joined.
            let pending: Vec<_> = std::mem::take(&mut state.pending);
            state.phase = Phase::Joined;
            let leave = state.leave_when_joined && pending.is_empty();
            for p in &pending {
                state.joined.insert(p.resource.clone());
            }
            let nick = state.nick.clone();
            for p in pending {
                let mut el = el.clone();
                if p.requested_nick != nick && !status_codes(&el).iter().any(|c| c == "210") {
                    if let Some(x) = el.get_child_mut("x", MUC_USER) {
                        x.append_child(Element::bare("status", MUC_USER).attr_set("code", "210"));
                    }
                }
                self.to_session(&p.resource, el);
            }
            if leave {
                self.leave_room(room);
            } else {
                // Only if sessions joining meanwhile changed the aggregate.
                self.update_room_presence(room);
            }
            return;
        }
        self.fork(room, &el);
    }

    pub(super) async fn room_message_in(&mut self, room: &BareJid, stanza: Stanza) {
        let mut el = stanza.el;
        let groupchat = el.attr("type") == Some("groupchat");
        // Rule 15: "not in the room" errors trigger a transparent rejoin.
        if el.attr("type") == Some("error") {
            let not_in_room = roost_proto::StanzaError::from_stanza(&el)
                .is_some_and(|e| e.condition == roost_proto::Condition::NotAcceptable);
            if not_in_room {
                self.rejoin(room);
            }
        }
        if let Some(state) = self.rooms.map.get_mut(room) {
            if groupchat && !el.has_child("delay", ns::DELAY) {
                state.last_message_ms = Some(crate::account::archive::now_ms());
            }
            if groupchat && el.has_child("subject", ns::CLIENT) && !el.has_child("body", ns::CLIENT)
            {
                let mut s = el.clone();
                s.unset("to");
                state.subject = Some(s);
                state.counting_history = false;
            } else if groupchat && state.counting_history && el.has_child("delay", ns::DELAY) {
                state.default_history += 1;
            }
        }
        let push = self.room_push_worthy(room, &el).await.then(|| el.clone());
        let retracts = groupchat && roost_proto::retraction::is_retraction(&el);
        if retracts {
            self.apply_room_retraction(room, &el).await;
        }
        if groupchat && (el.has_child("body", ns::CLIENT) || retracts) {
            // Stored without the account as addressee; each session's copy
            // gets its own `to` when forked.
            el.unset("to");
            // Only queued: the sessions do not wait for the disk.
            self.archive_groupchat(room, &el);
        } else if !groupchat && el.attr("type") != Some("error") {
            // A private message from an occupant: in the account's archive
            // with the occupant's JID (XEP-0313), like any chat message.
            if let Some(from) = el.attr("from").and_then(|f| Jid::new(f).ok()) {
                if from.resource().is_some() {
                    let receipt = stanza.receipt.clone();
                    self.archive_message(&mut el, &from, true, receipt.as_ref())
                        .await;
                }
            }
        }
        self.fork_owned(room, el);
        // XEP-0357, after the sessions have it: devices that cannot hear.
        if let Some(msg) = push {
            if let Some(sender) = msg.attr("from").and_then(|f| Jid::new(f).ok()) {
                let urgency = crate::account::push::urgency(&msg);
                self.push_unheard(&msg, &sender, urgency).await;
            }
        }
    }

    /// A room message that pushes under the room's policy: a live
    /// groupchat message (not history, not our own) that mentions the
    /// account, or any one with `always`; a private message from an
    /// occupant unless `never`.
    async fn room_push_worthy(&mut self, room: &BareJid, el: &Element) -> bool {
        use crate::account::push::{self, RoomPolicy, Urgency};
        if push::urgency(el) == Urgency::None || el.has_child("delay", ns::DELAY) {
            return false;
        }
        let policy = self
            .rooms
            .push_policy
            .get(room)
            .copied()
            .unwrap_or_default();
        let Some(state) = self.rooms.map.get(room) else {
            return false;
        };
        let from_nick = el
            .attr("from")
            .and_then(|f| Jid::new(f).ok())
            .and_then(|j| j.resource().map(|r| r.to_string()));
        let Some(from_nick) = from_nick else {
            return false;
        };
        let worthy = match el.attr("type") {
            Some("groupchat") => {
                from_nick != state.nick
                    && match policy {
                        RoomPolicy::Always => true,
                        RoomPolicy::Never => false,
                        RoomPolicy::Mentions => {
                            let occupant = format!("{room}/{}", state.nick);
                            push::mentions(el, &state.nick, &occupant, self.jid.as_str())
                        }
                    }
            }
            Some("error") | Some("headline") => false,
            _ => policy != RoomPolicy::Never,
        };
        worthy && self.has_push_registrations().await
    }

    /// Rule 14: stored once, under the room's stanza-id, so history replays
    /// and duplicates (the room's join history) are recognised.
    fn archive_groupchat(&mut self, room: &BareJid, el: &Element) {
        if !self.server.config.archive.enabled {
            return;
        }
        let room_id = el
            .children()
            .find(|c| c.is("stanza-id", ns::SID) && c.attr("by") == Some(room.as_str()))
            .and_then(|c| c.attr("id"))
            .map(str::to_string);
        let id = room_id.unwrap_or_else(roost_proto::id::archive_id);
        let msg = ArchivedMessage {
            id,
            with: el.attr("from").unwrap_or(room.as_str()).to_string(),
            stamp_ms: crate::account::archive::now_ms(),
            xml: el.to_xml(),
        };
        // A duplicate id (history we already hold) is refused by the store.
        // Queued, not awaited: the account moves on to the next stanza, and
        // its own archive queries still see this row (ArchiveStore).
        self.server.stores.archive.archive_queued(&self.jid, msg);
    }

    /// Rule 6: IQs the room or an occupant sends to the account.
    pub(super) fn room_iq_in(&mut self, room: &BareJid, stanza: Stanza) {
        if !stanza.is_iq_request() {
            return;
        }
        let payload = stanza.el.children().next();
        // XEP-0410 pings and disco of the account are answered by the
        // server itself; disco of a node (a client's caps) only the client knows.
        let server_answers = payload.is_some_and(|p| {
            p.is("ping", ns::PING)
                || ((p.is("query", ns::DISCO_INFO) || p.is("query", ns::DISCO_ITEMS))
                    && p.attr("node").is_none())
        });
        if server_answers {
            let result = if payload.is_some_and(|p| p.is("ping", ns::PING)) {
                Ok(None)
            } else {
                Err(StanzaError::service_unavailable())
            };
            if result.is_ok() {
                self.server
                    .route_element(crate::server::iq_reply(&stanza.el, result));
                return;
            }
            let server = self.server.clone();
            let account = self.jid.clone();
            tokio::spawn(async move {
                server
                    .answer_iq(crate::module::Scope::Account, Some(&account), stanza, false)
                    .await;
            });
            return;
        }
        // Otherwise one joined session answers; its reply leaves from the bare JID.
        let Some(resource) = self
            .rooms
            .map
            .get(room)
            .and_then(|s| s.joined.iter().next().cloned())
        else {
            self.server
                .bounce(&stanza, StanzaError::service_unavailable());
            return;
        };
        self.to_session(&resource, stanza.el);
    }
}
