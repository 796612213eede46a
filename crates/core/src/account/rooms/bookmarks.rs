//! ACCOUNT-MUC rule 13: bookmarks with autojoin (XEP-0402) are persistent
//! memberships. The account joins when such a bookmark appears, at server
//! start and after losing the room; it stays with no session joined (shown
//! as `xa`); removing the bookmark or clearing autojoin makes it leave once
//! no session is joined; a nick change in the room is written back.
//!
//! The bookmarks themselves live in the PEP module (features); the server
//! crate forwards their changes here and provides the nick write-back.

use std::collections::BTreeMap;
use std::sync::Arc;

use jid::BareJid;
use minidom::Element;
use roost_proto::{ns, Elem};

use super::{from_room, Phase, RoomState, MUC};
use crate::account::Account;
use crate::server::Server;

/// A bookmarked room, as the account needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomBookmark {
    pub room: BareJid,
    pub nick: Option<String>,
    pub password: Option<String>,
    pub autojoin: bool,
    /// When the room's messages push (XEP-0357), if the bookmark says.
    pub push: Option<crate::account::push::RoomPolicy>,
}

/// Writes a nick the account got in a room back to its bookmark.
pub trait BookmarkNicks: Send + Sync + 'static {
    fn nick_changed(&self, server: Arc<Server>, account: BareJid, room: BareJid, nick: String);
}

impl Account {
    /// Make the persistent memberships match the bookmarks.
    pub(in crate::account) fn sync_bookmarks(&mut self, list: Vec<RoomBookmark>) {
        let cfg = &self.server.config.account_muc;
        if !cfg.enabled || !cfg.persist_bookmarked {
            return;
        }
        self.rooms.push_policy = list
            .iter()
            .filter_map(|b| Some((b.room.clone(), b.push?)))
            .collect();
        let wanted: BTreeMap<BareJid, RoomBookmark> = list
            .into_iter()
            .filter(|b| b.autojoin)
            .map(|b| (b.room.clone(), b))
            .collect();
        self.rooms.bookmarked = wanted.clone();
        // Memberships whose bookmark went away end once no session holds them.
        let dropped: Vec<BareJid> = self
            .rooms
            .map
            .iter()
            .filter(|(room, s)| s.persistent && !wanted.contains_key(*room))
            .map(|(room, _)| room.clone())
            .collect();
        for room in dropped {
            let Some(state) = self.rooms.map.get_mut(&room) else {
                continue;
            };
            state.persistent = false;
            if state.joined.is_empty() && state.pending.is_empty() {
                match state.phase {
                    Phase::Joined => self.leave_room(&room),
                    Phase::Joining => state.leave_when_joined = true,
                }
            }
        }
        for (room, bm) in wanted {
            match self.rooms.map.get_mut(&room) {
                Some(state) => {
                    state.persistent = true;
                    if state.password.is_none() {
                        state.password = bm.password.clone();
                    }
                }
                None => self.join_persistently(&room, &bm),
            }
        }
    }

    fn join_persistently(&mut self, room: &BareJid, bm: &RoomBookmark) {
        let nick = bm
            .nick
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.jid.node().map(|n| n.to_string()).unwrap_or_default());
        if room.with_resource_str(&nick).is_err() {
            tracing::warn!(account = %self.jid, %room, "bookmark nick unusable; not joining");
            return;
        }
        let mut state = RoomState::new(nick.clone());
        state.persistent = true;
        state.password = bm.password.clone();
        state.counting_history = true;
        state.sent_presence = Some(("xa".into(), String::new()));
        self.rooms.map.insert(room.clone(), state);
        let mut x = Element::bare("x", MUC);
        if let Some(pw) = &bm.password {
            x.append_child(Element::bare("password", MUC).text_node(pw.clone()));
        }
        let join = Element::bare("presence", ns::CLIENT)
            .attr_set("from", self.jid.as_str())
            .attr_set("to", from_room(room, &nick))
            .child(Element::bare("show", ns::CLIENT).text_node("xa"))
            .child(x);
        tracing::info!(account = %self.jid, %room, "joining a bookmarked room");
        self.server.route_element(join);
    }

    /// A bookmarked room dropped the account for a reason that is not a
    /// removal (shutdown 332, technical 333): try again later (rule 13).
    pub(super) fn schedule_rejoin(&self, room: &BareJid) {
        if !self.rooms.bookmarked.contains_key(room) {
            return;
        }
        let delay = std::time::Duration::from_secs(
            self.server.config.account_muc.self_ping_interval.max(1),
        );
        let server = self.server.clone();
        let account = self.jid.clone();
        let room = room.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            server.send_to_account(&account, crate::account::AccountMsg::RejoinBookmarked(room));
        });
    }

    /// The delayed retry: join again if still bookmarked and not in.
    pub(in crate::account) fn rejoin_bookmarked(&mut self, room: &BareJid) {
        if self.rooms.map.contains_key(room) {
            return;
        }
        if let Some(bm) = self.rooms.bookmarked.get(room).cloned() {
            self.join_persistently(room, &bm);
        }
    }

    /// The account's nick in a bookmarked room changed: keep the bookmark in step.
    pub(super) fn write_back_nick(&self, room: &BareJid, nick: &str) {
        let persistent = self.rooms.map.get(room).is_some_and(|s| s.persistent);
        if !persistent {
            return;
        }
        if let Some(writer) = self.server.bookmark_nicks.get() {
            writer.nick_changed(
                self.server.clone(),
                self.jid.clone(),
                room.clone(),
                nick.to_string(),
            );
        }
    }
}
