//! Account-based MUC joining (../shared/ACCOUNT-MUC.md): the account's bare
//! JID is the one occupant of a room; sessions still believe they join
//! themselves. This module owns, per account, the rooms it occupies and the
//! room state it mirrors, and is the one place where room traffic for the
//! account is forked to the sessions that joined.
//!
//! Nothing here assumes the room is on this server: everything goes through
//! the router and follows XEP-0045 on the wire.

mod bookmarks;
mod history;
mod inbound;
mod join;
mod outbound;
mod retraction;
mod self_ping;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{ns, Elem, ElementExt, Stanza};

use super::Account;
use roost_proto::presence::availability;

pub use bookmarks::{BookmarkNicks, RoomBookmark};

pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// Our own namespace, advertised on accounts (disco#info) when on.
pub const FEATURE: &str = "urn:roost:account-muc:0";

/// A session waiting for the room's answer to the account's first join.
pub(super) struct PendingJoin {
    pub resource: String,
    /// The `<history/>` it asked for (answered by the room itself).
    pub requested_nick: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Join sent from the bare JID; waiting for the self-presence (110).
    Joining,
    Joined,
}

/// What the account knows about one room it occupies (rule 10: kept in step
/// with what the room sends, so a later join shows the room as it is now).
pub(super) struct RoomState {
    pub phase: Phase,
    /// The account's nick in the room.
    pub nick: String,
    /// Sessions that joined and receive the room's traffic (rule 4).
    pub joined: BTreeSet<String>,
    pub pending: Vec<PendingJoin>,
    /// Other occupants' current presence, by nick.
    pub occupants: BTreeMap<String, Element>,
    /// The room's last self-presence to us, with its status codes.
    pub self_presence: Option<Element>,
    /// Status codes the room gave at join (100, 170, 201...), repeated to
    /// later sessions (rule 2).
    pub join_codes: Vec<String>,
    /// The last subject message.
    pub subject: Option<Element>,
    /// History messages the room sent at our first join: our default for
    /// later joins that do not say.
    pub default_history: usize,
    /// Persistent membership (rule 13: bookmarked with autojoin).
    pub persistent: bool,
    /// Password, for transparent rejoins.
    pub password: Option<String>,
    /// The aggregate presence last sent to the room (rule 7).
    pub sent_presence: Option<(String, String)>,
    /// A nick change a session asked for: (resource, new nick).
    pub nick_change: Option<(String, String)>,
    /// Every pending session left before the room answered: leave once in.
    pub leave_when_joined: bool,
    /// Counting history messages of the first join.
    pub counting_history: bool,
    /// When the last groupchat message arrived (ms), so a transparent
    /// rejoin asks only for what was missed (rule 15).
    pub last_message_ms: Option<i64>,
    /// A transparent rejoin is under way: sessions stay joined.
    pub rejoining: bool,
    /// When the last join we sent went out (a join unanswered for long is
    /// sent again, self_ping.rs).
    pub join_sent: Option<std::time::Instant>,
    /// The presence each joined session last sent to the room (rule 7),
    /// with the order of the change: among equally available sessions the
    /// most recent change wins.
    pub session_presence: BTreeMap<String, (u64, Element)>,
    /// Counter behind the orders in `session_presence`.
    pub presence_changes: u64,
    /// Status text of the last session that left, for the account's leave.
    pub leave_status: Option<String>,
}

impl RoomState {
    fn new(nick: String) -> RoomState {
        RoomState {
            phase: Phase::Joining,
            nick,
            joined: BTreeSet::new(),
            pending: Vec::new(),
            occupants: BTreeMap::new(),
            self_presence: None,
            join_codes: Vec::new(),
            subject: None,
            default_history: 0,
            persistent: false,
            password: None,
            sent_presence: None,
            nick_change: None,
            leave_when_joined: false,
            counting_history: false,
            last_message_ms: None,
            rejoining: false,
            join_sent: Some(std::time::Instant::now()),
            session_presence: BTreeMap::new(),
            presence_changes: 0,
            leave_status: None,
        }
    }

    /// Record what a session shows in the room now (rule 7).
    pub fn set_session_presence(&mut self, resource: &str, presence: Element) {
        self.presence_changes += 1;
        self.session_presence
            .insert(resource.to_string(), (self.presence_changes, presence));
    }
}

/// Per-account state of all rooms, plus IQs in flight to rooms.
#[derive(Default)]
pub struct Rooms {
    pub(super) map: HashMap<BareJid, RoomState>,
    /// Our IQ id -> (session resource, its original id) (rule 6).
    pub(super) iqs: HashMap<String, (String, String)>,
    /// Self-pings in flight: IQ id -> room (rule 15).
    pub(super) pings: HashMap<String, BareJid>,
    /// The autojoin bookmarks last synchronised (rule 13), so the account
    /// can rejoin a bookmarked room it was disconnected from on its own.
    pub(super) bookmarked: BTreeMap<BareJid, bookmarks::RoomBookmark>,
    /// Push policies set in bookmarks (XEP-0357; default: mentions).
    pub(super) push_policy: HashMap<BareJid, crate::account::push::RoomPolicy>,
}

impl Rooms {
    /// Rooms kept without any session (persistent memberships).
    pub fn has_persistent(&self) -> bool {
        self.map.values().any(|r| r.persistent) || !self.bookmarked.is_empty()
    }
}

/// Status codes of a MUC presence.
pub fn status_codes(presence: &Element) -> Vec<String> {
    presence
        .get_child("x", MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// XEP-0045 presence of ourselves (status 110).
pub fn is_self_presence(presence: &Element) -> bool {
    status_codes(presence).iter().any(|c| c == "110")
}

impl Account {
    pub(super) fn account_muc_enabled(&self) -> bool {
        self.server.config.account_muc.enabled
    }

    /// Send a stanza to a joined session, counting the fork.
    pub(super) fn to_session(&self, resource: &str, mut el: Element) {
        if let Some(e) = self.resources.get(resource) {
            el.set("to", e.handle.jid.as_str());
            e.handle.send(el);
            self.server
                .counters
                .account_muc_forked
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `to_session` for a tree shared by several sessions.
    pub(super) fn to_session_forked(&self, resource: &str, el: std::sync::Arc<Element>) {
        if let Some(e) = self.resources.get(resource) {
            e.handle.send_forked(el);
            self.server
                .counters
                .account_muc_forked
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The presence the room should see for the account (rule 7): the most
    /// available joined session's, or `xa` when only a persistent
    /// membership holds the room.
    pub(super) fn aggregate_presence(&self, room: &BareJid) -> Option<Element> {
        let state = self.rooms.map.get(room)?;
        let best = state
            .joined
            .iter()
            .filter_map(|r| state.session_presence.get(r))
            .max_by_key(|(order, p)| (availability(p), *order))
            .map(|(_, p)| p);
        let mut p = Element::bare("presence", ns::CLIENT);
        match best {
            Some(best) => {
                for c in best.children() {
                    let shown = matches!(c.name(), "show" | "status") && c.ns() == ns::CLIENT;
                    // XEP-0153/XEP-0398: the avatar hash reaches the room too.
                    if shown || c.is("x", ns::VCARD_UPDATE) {
                        p.append_child(c.clone());
                    }
                }
            }
            None if state.persistent || !state.joined.is_empty() => {
                if state.joined.is_empty() {
                    p.append_child(Element::bare("show", ns::CLIENT).text_node("xa"));
                }
            }
            None => return None,
        }
        Some(p)
    }

    /// Send the aggregate presence to the room if it changed.
    pub(super) fn update_room_presence(&mut self, room: &BareJid) {
        let Some(p) = self.aggregate_presence(room) else {
            return;
        };
        let key = (
            p.child_text("show", ns::CLIENT).unwrap_or_default(),
            p.child_text("status", ns::CLIENT).unwrap_or_default(),
        );
        let Some(state) = self.rooms.map.get_mut(room) else {
            return;
        };
        if state.phase != Phase::Joined || state.sent_presence.as_ref() == Some(&key) {
            return;
        }
        state.sent_presence = Some(key);
        let mut p = p;
        p.set("from", self.jid.as_str());
        p.set("to", format!("{room}/{}", state.nick));
        self.server.route_element(p);
    }

    /// Whether the session joined (or is joining) any room.
    pub(super) fn rooms_joined_by(&self, resource: &str) -> bool {
        self.rooms.map.values().any(|s| {
            s.joined.contains(resource) || s.pending.iter().any(|p| p.resource == resource)
        })
    }

    /// A session broadcast its presence (RFC 6121 §4.4): the rooms it
    /// joined show the new aggregate (rule 7). Unavailable takes the
    /// session out of its rooms, as it would leave them in plain XEP-0045
    /// (its directed presences end).
    pub(super) fn session_presence_changed(&mut self, resource: &str, presence: &Element) {
        if presence.attr("type") == Some("unavailable") {
            self.rooms_session_gone(resource);
            return;
        }
        if presence.attr("type").is_some() {
            return;
        }
        let view = room_view(presence);
        let rooms: Vec<BareJid> = self
            .rooms
            .map
            .iter()
            .filter(|(_, s)| s.joined.contains(resource))
            .map(|(j, _)| j.clone())
            .collect();
        for room in rooms {
            if let Some(state) = self.rooms.map.get_mut(&room) {
                state.set_session_presence(resource, view.clone());
            }
            self.update_room_presence(&room);
        }
    }

    /// Is this stanza from the session about a room the account is in, or
    /// a join? Returns the stanza back when it is not ours to handle.
    pub(super) async fn rooms_outbound(
        &mut self,
        resource: &str,
        stanza: Stanza,
    ) -> Option<Stanza> {
        if !self.account_muc_enabled() {
            return Some(stanza);
        }
        let Some(to) = stanza.to.clone() else {
            return Some(stanza);
        };
        let room = to.to_bare();
        if room == self.jid || room.node().is_none() {
            return Some(stanza);
        }
        let known = self.rooms.map.contains_key(&room);
        let is_join = stanza.kind == roost_proto::StanzaKind::Presence
            && stanza.type_attr().is_none()
            && to.resource().is_some()
            && (stanza.el.has_child("x", MUC) || known);
        if !known && !is_join {
            return Some(stanza);
        }
        match stanza.kind {
            roost_proto::StanzaKind::Presence => {
                self.room_presence_from_session(resource, &room, &to, stanza)
                    .await
            }
            roost_proto::StanzaKind::Message => {
                self.room_message_from_session(resource, &room, stanza)
                    .await
            }
            roost_proto::StanzaKind::Iq => self.room_iq_from_session(resource, &room, &to, stanza),
        }
        None
    }

    /// Is this inbound stanza from a room the account is in?
    pub(super) async fn rooms_inbound(&mut self, stanza: Stanza) -> Option<Stanza> {
        let Some(from) = stanza.from.as_ref() else {
            return Some(stanza);
        };
        let room = from.to_bare();
        // Only stanzas addressed to the bare JID are the account's; a
        // session that joined on its own (feature off) keeps its traffic.
        let to_bare = stanza.to.as_ref().is_some_and(|t| t.resource().is_none());
        // Responses to IQs we sent for a session, or to our self-pings.
        if to_bare && stanza.kind == roost_proto::StanzaKind::Iq && !stanza.is_iq_request() {
            if let Some(id) = stanza.id().map(str::to_string) {
                if self.rooms.iqs.contains_key(&id) {
                    self.room_iq_response(stanza);
                    return None;
                }
                if let Some(room) = self.rooms.pings.remove(&id) {
                    self.self_ping_answer(&room, &stanza);
                    return None;
                }
            }
        }
        if !to_bare || !self.rooms.map.contains_key(&room) {
            return Some(stanza);
        }
        self.server
            .counters
            .account_muc_received
            .fetch_add(1, Ordering::Relaxed);
        let from = from.clone();
        match stanza.kind {
            roost_proto::StanzaKind::Presence => self.room_presence_in(&room, &from, stanza).await,
            roost_proto::StanzaKind::Message => self.room_message_in(&room, stanza).await,
            roost_proto::StanzaKind::Iq => self.room_iq_in(&room, stanza),
        }
        None
    }

    /// A session ended (rule 9): it leaves every room it joined, silently.
    pub(super) fn rooms_session_gone(&mut self, resource: &str) {
        let rooms: Vec<BareJid> = self.rooms.map.keys().cloned().collect();
        for room in rooms {
            self.session_leaves(&room, resource, false);
        }
        self.rooms.iqs.retain(|_, (r, _)| r != resource);
    }
}

/// What the room is shown of a presence: its show and status.
pub(super) fn presence_key(p: &Element) -> (String, String) {
    (
        p.child_text("show", ns::CLIENT)
            .unwrap_or_default()
            .trim()
            .to_string(),
        p.child_text("status", ns::CLIENT).unwrap_or_default(),
    )
}

/// Only what a room should see of a session's presence.
pub(super) fn room_view(p: &Element) -> Element {
    let mut out = Element::bare("presence", ns::CLIENT);
    for c in p.children() {
        let shown = matches!(c.name(), "show" | "status" | "priority") && c.ns() == ns::CLIENT;
        if shown || c.is("x", ns::VCARD_UPDATE) {
            out.append_child(c.clone());
        }
    }
    out
}

/// A presence from the room to one of our sessions, addressed correctly.
pub(super) fn from_room(room: &BareJid, nick: &str) -> String {
    format!("{room}/{nick}")
}

pub(super) fn muc_user_status(codes: &[&str]) -> Element {
    Element::bare("x", MUC_USER).children_from(
        codes
            .iter()
            .map(|c| Element::bare("status", MUC_USER).attr_set("code", *c)),
    )
}

/// Parse a room occupant JID's nick.
pub(super) fn nick_of(jid: &Jid) -> Option<String> {
    jid.resource().map(|r| r.to_string())
}
