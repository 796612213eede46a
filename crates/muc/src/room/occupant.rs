//! XEP-0045 §7.2.2–§7.2.4, §7.7, §17.3: occupants, and the presence the
//! room sends about them (extended `muc#user` information, real JIDs only
//! to those allowed to see them, status codes), with XEP-0421 occupant ids.
//!
//! One occupant per nick, and several real JIDs of one bare JID may stand
//! behind it (§7.2.9 refuses a nick only to *another* user; Prosody and
//! ejabberd allow a user's sessions to share one). The occupant shows the
//! presence of its most available session (the most recent change among
//! equals); what the room sends to the occupant reaches every session.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::presence::availability;
use roost_proto::{Elem, ElementExt};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::affiliation::Role;
use super::Room;
use crate::ns;
use crate::user_rooms::UserRooms;

/// One real JID in the room under an occupant's nick.
#[derive(Debug, Clone)]
pub(crate) struct OccupantSession {
    /// The real JID exactly as it joined (full or bare).
    pub jid: Jid,
    /// The last available presence it sent, cleaned (`clean_presence`).
    pub presence: Element,
    /// When that presence was set, in the room's order of changes.
    pub changed: u64,
}

/// One occupant of the room.
#[derive(Debug, Clone)]
pub(crate) struct Occupant {
    pub nick: String,
    /// The real JID shown for the occupant: its most available session's.
    pub jid: Jid,
    pub bare: BareJid,
    pub role: Role,
    /// The presence shown for the occupant (the same session's).
    pub presence: Element,
    /// XEP-0421, stable per real bare JID.
    pub occupant_id: String,
    /// Every real JID behind the nick; never empty while in the room.
    pub sessions: Vec<OccupantSession>,
}

impl Occupant {
    /// The real JIDs the room sends the occupant's traffic to.
    pub fn jids(&self) -> impl Iterator<Item = &Jid> {
        self.sessions.iter().map(|s| &s.jid)
    }

    /// Show the most available session (the latest change among equals);
    /// whether what others see of the occupant changed.
    fn choose_shown(&mut self) -> bool {
        let Some(best) = self
            .sessions
            .iter()
            .max_by_key(|s| (availability(&s.presence), s.changed))
        else {
            return false;
        };
        // Only the presence is news to others: a change of the session
        // behind it alone (same show and status) is not broadcast.
        let changed = best.presence != self.presence;
        self.jid = best.jid.clone();
        self.presence = best.presence.clone();
        changed
    }
}

/// Reports occupants gained and lost to the service's rooms-per-user
/// count (`user_rooms.rs`); none in unit tests of a room alone.
#[derive(Default)]
struct Counted(Option<Arc<UserRooms>>);

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "counted"
        } else {
            "uncounted"
        })
    }
}

/// The occupants by nick and by real JID.
#[derive(Debug, Default)]
pub(crate) struct Occupants {
    counted: Counted,
    by_nick: BTreeMap<String, Occupant>,
    by_jid: HashMap<Jid, String>,
    /// Order of presence changes (`OccupantSession::changed`).
    changes: u64,
}

impl Drop for Occupants {
    fn drop(&mut self) {
        if let Some(c) = &self.counted.0 {
            for o in self.by_nick.values() {
                c.left(&o.bare);
            }
        }
    }
}

impl Occupants {
    /// Occupants counted in the service's rooms per user.
    pub fn counted(rooms: Arc<UserRooms>) -> Occupants {
        let mut o = Occupants::default();
        o.counted = Counted(Some(rooms));
        o
    }

    pub fn len(&self) -> usize {
        self.by_nick.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_nick.is_empty()
    }

    pub fn get(&self, nick: &str) -> Option<&Occupant> {
        self.by_nick.get(nick)
    }

    pub fn get_mut(&mut self, nick: &str) -> Option<&mut Occupant> {
        self.by_nick.get_mut(nick)
    }

    /// The occupant a real JID is in the room as.
    pub fn by_jid(&self, jid: &Jid) -> Option<&Occupant> {
        self.by_jid.get(jid).and_then(|n| self.by_nick.get(n))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Occupant> {
        self.by_nick.values()
    }

    /// Nicks of the occupants with this real bare JID.
    pub fn nicks_of(&self, bare: &BareJid) -> Vec<String> {
        self.iter()
            .filter(|o| &o.bare == bare)
            .map(|o| o.nick.clone())
            .collect()
    }

    fn next_change(&mut self) -> u64 {
        self.changes += 1;
        self.changes
    }

    /// A new occupant (or a renamed one, with all of its sessions).
    pub fn insert(&mut self, occ: Occupant) {
        for s in &occ.sessions {
            self.by_jid.insert(s.jid.clone(), occ.nick.clone());
        }
        if let Some(c) = &self.counted.0 {
            c.entered(&occ.bare);
        }
        if let Some(replaced) = self.by_nick.insert(occ.nick.clone(), occ) {
            if let Some(c) = &self.counted.0 {
                c.left(&replaced.bare);
            }
        }
    }

    /// Another real JID of the same user joins under an occupant's nick;
    /// whether what others see of the occupant changed.
    pub fn add_session(&mut self, nick: &str, jid: Jid, presence: Element) -> bool {
        let changed = self.next_change();
        let Some(occ) = self.by_nick.get_mut(nick) else {
            return false;
        };
        occ.sessions.retain(|s| s.jid != jid);
        occ.sessions.push(OccupantSession {
            jid: jid.clone(),
            presence,
            changed,
        });
        self.by_jid.insert(jid, nick.to_string());
        occ.choose_shown()
    }

    /// A session's new presence (§7.7); whether what others see changed.
    pub fn set_presence(&mut self, jid: &Jid, presence: Element) -> bool {
        let changed = self.next_change();
        let Some(occ) = self.by_jid.get(jid).and_then(|n| self.by_nick.get_mut(n)) else {
            return false;
        };
        if let Some(s) = occ.sessions.iter_mut().find(|s| &s.jid == jid) {
            s.presence = presence;
            s.changed = changed;
        }
        occ.choose_shown()
    }

    /// One session leaves an occupant that keeps others; whether what
    /// others see changed. `None` when it was the last (remove the
    /// occupant instead) or is not in the room.
    pub fn remove_session(&mut self, jid: &Jid) -> Option<bool> {
        let nick = self.by_jid.get(jid)?.clone();
        let occ = self.by_nick.get_mut(&nick)?;
        if occ.sessions.len() < 2 {
            return None;
        }
        occ.sessions.retain(|s| &s.jid != jid);
        self.by_jid.remove(jid);
        Some(occ.choose_shown())
    }

    pub fn remove(&mut self, nick: &str) -> Option<Occupant> {
        let occ = self.by_nick.remove(nick)?;
        for j in occ.jids() {
            self.by_jid.remove(j);
        }
        if let Some(c) = &self.counted.0 {
            c.left(&occ.bare);
        }
        Some(occ)
    }

    pub fn rename(&mut self, old: &str, new: &str) {
        if let Some(mut occ) = self.remove(old) {
            occ.nick = new.to_string();
            self.insert(occ);
        }
    }

    /// All occupants, leaving (each is counted out of its rooms).
    pub fn into_occupants(mut self) -> impl Iterator<Item = Occupant> {
        let all = std::mem::take(&mut self.by_nick);
        if let Some(c) = &self.counted.0 {
            for o in all.values() {
                c.left(&o.bare);
            }
        }
        all.into_values()
    }
}

/// What a presence about an occupant says besides its role and affiliation.
#[derive(Debug, Default, Clone)]
pub(crate) struct Notice {
    pub unavailable: bool,
    /// Children of an unavailable presence (the occupant's `<status/>`).
    pub status: Vec<Element>,
    /// Status codes for every recipient.
    pub codes: Vec<u16>,
    /// Status codes for the occupant itself (110 is always added).
    pub self_codes: Vec<u16>,
    /// §7.6: the new nick (with 303).
    pub new_nick: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// §10.9.
    pub destroy: Option<Element>,
    /// The `id` of the stanza that caused it, reflected in self-presence.
    pub self_id: Option<String>,
}

impl Notice {
    pub fn unavailable() -> Notice {
        Notice {
            unavailable: true,
            ..Notice::default()
        }
    }
}

/// `<status code='…'/>` (§15.6 registry).
pub(crate) fn status(code: u16) -> Element {
    Element::bare("status", ns::MUC_USER).attr_set("code", code.to_string())
}

/// §17.3 #6: an occupant's presence without what only the room may say
/// (`muc` and `muc#user` extensions, occupant ids) and without addresses.
pub(crate) fn clean_presence(el: &Element) -> Element {
    let mut p = Element::bare("presence", ns::CLIENT);
    for c in el.children() {
        let room_only =
            c.is("x", ns::MUC) || c.is("x", ns::MUC_USER) || c.is("occupant-id", ns::OCCUPANT_ID);
        if !room_only {
            p.append_child(c.clone());
        }
    }
    p
}

impl Room {
    pub(super) fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{}", self.jid, nick)
    }

    /// XEP-0421 §4: stable per room and real bare JID, and not reversible.
    pub(super) fn occupant_id(&self, bare: &BareJid) -> String {
        let mut h = Sha256::new();
        h.update(self.salt.as_bytes());
        h.update([0]);
        h.update(self.jid.as_str().as_bytes());
        h.update([0]);
        h.update(bare.as_str().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    }

    /// The presence of `occ` as the occupant at `to` (of role
    /// `recipient_role`) receives it.
    pub(super) fn presence_of(
        &self,
        occ: &Occupant,
        to: &Jid,
        recipient_role: Role,
        is_self: bool,
        n: &Notice,
    ) -> Element {
        let mut p = if n.unavailable {
            let mut p = Element::bare("presence", ns::CLIENT).attr_set("type", "unavailable");
            for s in &n.status {
                p.append_child(s.clone());
            }
            p
        } else {
            occ.presence.clone()
        };
        p.set("from", self.occupant_jid(&occ.nick));
        p.set("to", to.as_str());
        if let (true, Some(id)) = (is_self, n.self_id.as_deref()) {
            p.set("id", id);
        }
        let mut item = Element::bare("item", ns::MUC_USER)
            .attr_set("affiliation", self.affiliation_of(&occ.bare).as_str())
            .attr_set("role", occ.role.as_str());
        // §7.2.3 / §7.2.4: real JIDs to everyone, or to moderators only.
        // A session's own copy names that session's real JID.
        if is_self {
            item.set("jid", to.as_str());
        } else if self.config.non_anonymous() || recipient_role == Role::Moderator {
            item.set("jid", occ.jid.as_str());
        }
        if let Some(nick) = &n.new_nick {
            item.set("nick", nick.as_str());
        }
        if let Some(actor) = &n.actor {
            item.append_child(
                Element::bare("actor", ns::MUC_USER).attr_set("nick", actor.as_str()),
            );
        }
        if let Some(reason) = &n.reason {
            item.append_child(Element::bare("reason", ns::MUC_USER).text_node(reason.as_str()));
        }
        let mut x = Element::bare("x", ns::MUC_USER).child(item);
        if let Some(d) = &n.destroy {
            x.append_child(d.clone());
        }
        let mut codes = n.codes.clone();
        if is_self {
            codes.push(110);
            codes.extend(&n.self_codes);
        }
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            x.append_child(status(code));
        }
        p.append_child(x);
        p.append_child(
            Element::bare("occupant-id", ns::OCCUPANT_ID).attr_set("id", occ.occupant_id.as_str()),
        );
        p
    }

    /// `occ`'s own copy (with 110), to each of its sessions.
    pub(super) fn send_self_presence(&self, occ: &Occupant, n: &Notice) {
        for jid in occ.jids() {
            self.send(self.presence_of(occ, jid, occ.role, true, n));
        }
    }

    /// `occ`'s own copy to one of its sessions (joining or leaving alone).
    pub(super) fn send_self_presence_to(&self, occ: &Occupant, jid: &Jid, n: &Notice) {
        self.send(self.presence_of(occ, jid, occ.role, true, n));
    }

    /// Everyone else's copy, to each of their sessions.
    pub(super) fn send_presence_to_others(&self, occ: &Occupant, n: &Notice) {
        for other in self.occupants.iter().filter(|o| o.nick != occ.nick) {
            for jid in other.jids() {
                self.send(self.presence_of(occ, jid, other.role, false, n));
            }
        }
    }

    /// Everyone's copy, the occupant's own last.
    pub(super) fn broadcast_presence(&self, occ: &Occupant, n: &Notice) {
        self.send_presence_to_others(occ, n);
        self.send_self_presence(occ, n);
    }

    /// A copy of `el` to each session of `occ`.
    pub(super) fn send_to_occupant(&self, occ: &Occupant, el: &Element) {
        for jid in occ.jids() {
            let mut m = el.clone();
            m.set("to", jid.as_str());
            self.send(m);
        }
    }

    /// Take an occupant out of the room (kick, ban, affiliation change,
    /// shutdown, error): it hears first, then everyone else.
    pub(super) fn remove_occupant(&mut self, nick: &str, n: &Notice) -> Option<Occupant> {
        let mut occ = self.occupants.remove(nick)?;
        occ.role = Role::None;
        self.send_self_presence(&occ, n);
        self.send_presence_to_others(&occ, n);
        Some(occ)
    }

    /// Every current occupant's presence to one session of `to` (§7.2.2),
    /// for a newcomer or a new moderator of a semi-anonymous room.
    pub(super) fn send_occupants_to(&self, to: &Occupant, jid: &Jid) {
        for other in self.occupants.iter().filter(|o| o.nick != to.nick) {
            self.send(self.presence_of(other, jid, to.role, false, &Notice::default()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(nick: &str, jid: &str) -> Occupant {
        let jid = Jid::new(jid).unwrap();
        Occupant {
            nick: nick.into(),
            bare: jid.to_bare(),
            jid: jid.clone(),
            role: Role::Participant,
            presence: Element::bare("presence", ns::CLIENT),
            occupant_id: String::new(),
            sessions: vec![OccupantSession {
                jid,
                presence: Element::bare("presence", ns::CLIENT),
                changed: 0,
            }],
        }
    }

    #[test]
    fn occupants_are_found_by_nick_and_by_real_jid() {
        let mut o = Occupants::default();
        o.insert(occ("hag", "hag@a.example/pda"));
        o.insert(occ("crone", "crone@a.example"));
        let bare = Jid::new("crone@a.example").unwrap();
        assert_eq!(o.by_jid(&bare).map(|x| x.nick.as_str()), Some("crone"));
        // A bare JID occupant is not the same as one of its full JIDs.
        assert!(o.by_jid(&Jid::new("crone@a.example/x").unwrap()).is_none());
        o.rename("hag", "oldhag");
        assert!(o.get("hag").is_none());
        let full = Jid::new("hag@a.example/pda").unwrap();
        assert_eq!(o.by_jid(&full).map(|x| x.nick.as_str()), Some("oldhag"));
        assert_eq!(o.remove("oldhag").map(|x| x.nick), Some("oldhag".into()));
        assert!(o.by_jid(&full).is_none());
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn sessions_of_one_user_share_a_nick_and_the_most_available_is_shown() {
        let mut o = Occupants::default();
        o.insert(occ("hag", "hag@a.example/pda"));
        let pc = Jid::new("hag@a.example/pc").unwrap();
        let pda = Jid::new("hag@a.example/pda").unwrap();
        let away: Element = "<presence xmlns='jabber:client'><show>away</show></presence>"
            .parse()
            .unwrap();
        // An away second session changes nothing others see.
        assert!(!o.add_session("hag", pc.clone(), away.clone()));
        assert_eq!(o.by_jid(&pc).map(|x| x.nick.as_str()), Some("hag"));
        assert_eq!(o.get("hag").unwrap().jid, pda);
        // The first goes away too: equal, the latest change is shown.
        assert!(o.set_presence(&pda, away.clone()));
        assert_eq!(o.get("hag").unwrap().jid, pda);
        assert!(
            !o.set_presence(&pc, away.clone()),
            "same presence, other session"
        );
        assert_eq!(o.get("hag").unwrap().jid, pc);
        // One session leaving keeps the occupant; the last does not.
        assert_eq!(o.remove_session(&pda), Some(false));
        assert!(o.by_jid(&pda).is_none());
        assert_eq!(o.get("hag").unwrap().jid, pc);
        assert_eq!(o.remove_session(&pc), None);
        assert!(o.remove("hag").is_some());
        assert!(o.by_jid(&pc).is_none());
    }

    #[test]
    fn cleaned_presence_keeps_show_and_drops_room_extensions() {
        let p: Element = "<presence xmlns='jabber:client' to='r@s/n' id='1'>\
            <show>away</show>\
            <x xmlns='http://jabber.org/protocol/muc'><password>pw</password></x>\
            <x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x>\
            <occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>\
            </presence>"
            .parse()
            .unwrap();
        let c = clean_presence(&p);
        assert_eq!(c.attr("to"), None);
        assert_eq!(c.attr("id"), None);
        assert_eq!(c.children().count(), 1);
        assert_eq!(c.child_text("show", ns::CLIENT).as_deref(), Some("away"));
    }
}
