//! XEP-0045 §7.4 (messages to all occupants, stamped with an XEP-0359
//! stanza-id and an XEP-0421 occupant-id, archived per XEP-0313), §8.1 and
//! §7.2.15 (the subject), §7.5 (private messages), §7.8.2 (mediated
//! invitations and declines) and the message business rules of §17.2.
//! Direct invitations (XEP-0249) go from user to user and never reach here.

use std::time::SystemTime;

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{Condition, Elem, ElementExt, Stanza, StanzaError};
use roost_store::{ArchivedMessage, StoredSubject};

use super::affiliation::{Affiliation, Role};
use super::history::HistoryEntry;
use super::occupant::Occupant;
use super::{millis, time_of, Room, MAX_INVITES};
use crate::ns;

/// Children a client may not put in what the room reflects: the room's own
/// ids (XEP-0359 §3.1, XEP-0421 §4) and extended `muc#user` information
/// (§17.3 #6).
fn strip_room_only(el: &Element, room: &str) -> Element {
    let mut out = el.shallow_clone();
    for c in el.children() {
        let forged = (c.is("stanza-id", ns::SID) && c.attr("by") == Some(room))
            || c.is("occupant-id", ns::OCCUPANT_ID)
            || c.is("x", ns::MUC_USER);
        if forged {
            continue;
        }
        if c.is("retract", ns::RETRACT) && c.has_child("moderated", ns::MODERATE) {
            // XEP-0425 §6: only the room itself moderates.
            let mut retract = c.shallow_clone();
            for r in c.children().filter(|r| !r.is("moderated", ns::MODERATE)) {
                retract.append_child(r.clone());
            }
            out.append_child(retract);
        } else {
            out.append_child(c.clone());
        }
    }
    out
}

impl Room {
    pub(super) async fn on_message(&mut self, stanza: &Stanza, from: &Jid, nick: Option<String>) {
        let kind = stanza.type_attr().unwrap_or("normal");
        if kind == "error" {
            // A bounce of something the room sent: forward it if it answers
            // a private message, and drop ghosts (§18.1.3).
            if let Some(nick) = &nick {
                self.forward_error(stanza, from, nick);
            }
            return self.occupant_error(stanza, from).await;
        }
        if !self.visible_to(&from.to_bare()) {
            // §17.2 #3
            return self.not_found(stanza);
        }
        match (nick, kind) {
            (Some(nick), _) => self.private_message(stanza, from, &nick),
            (None, "groupchat") => self.groupchat(stanza, from).await,
            (None, _) => {
                if let Some(x) = stanza.el.get_child("x", ns::MUC_USER) {
                    if x.get_child("invite", ns::MUC_USER).is_some() {
                        return self.invite(stanza, from, x).await;
                    }
                    if let Some(decline) = x.get_child("decline", ns::MUC_USER) {
                        return self.decline(stanza, from, decline);
                    }
                }
                if let Some(x) = stanza
                    .el
                    .get_child("x", ns::DATA_FORMS)
                    .filter(|x| crate::forms::Form::parse(x).form_type() == Some(ns::MUC_REQUEST))
                {
                    // §7.13 voice requests and §8.6 their approval.
                    return self.voice_form(stanza, from, &x.clone());
                }
                // §17.2 #1
                self.error(
                    stanza,
                    StanzaError::bad_request("messages to the room must be of type groupchat"),
                );
            }
        }
    }

    /// §7.4: reflect to every occupant, the sender included.
    async fn groupchat(&mut self, stanza: &Stanza, from: &Jid) {
        let Some(occ) = self.occupants.by_jid(from).cloned() else {
            return self.error(
                stanza,
                StanzaError::new(Condition::NotAcceptable).with_text("you are not in the room"),
            );
        };
        if self.too_large(stanza) {
            return self.error(stanza, self.size_error());
        }
        let el = &stanza.el;
        let has_body = el.get_child("body", ns::CLIENT).is_some();
        if let Some(subject) = el.get_child("subject", ns::CLIENT) {
            // §8.1: a subject without body or thread is a subject change.
            if !has_body && el.get_child("thread", ns::CLIENT).is_none() {
                return self.change_subject(stanza, &occ, subject.text()).await;
            }
        }
        if occ.role < Role::Participant {
            // §7.4: visitors have no voice.
            return self.error(
                stanza,
                StanzaError::new(Condition::Forbidden).with_text("you have no voice in this room"),
            );
        }
        let mut out = strip_room_only(el, self.jid.as_str());
        out.set("from", self.occupant_jid(&occ.nick));
        out.unset("to");
        // §7.4: the same id on every reflection.
        if out.attr("id").is_none() {
            out.set("id", roost_proto::id::random_token(16));
        }
        let now = SystemTime::now();
        // XEP-0424: retractions are kept too, for clients catching up.
        let retracts = roost_proto::retraction::is_retraction(el);
        let archive =
            (has_body || retracts) && self.config.archiving && !el.has_child("no-store", ns::HINTS);
        if retracts {
            self.author_retraction(el, &occ.occupant_id).await;
        }
        let stanza_id = roost_proto::id::archive_id();
        if archive {
            out.append_child(
                Element::bare("stanza-id", ns::SID)
                    .attr_set("id", stanza_id.clone())
                    .attr_set("by", self.jid.as_str()),
            );
        }
        out.append_child(
            Element::bare("occupant-id", ns::OCCUPANT_ID).attr_set("id", occ.occupant_id.as_str()),
        );
        if archive {
            let message = ArchivedMessage {
                id: stanza_id,
                with: self.occupant_jid(&occ.nick),
                stamp_ms: millis(now),
                xml: out.to_xml(),
            };
            // Queued, not awaited, so the room never waits for a disk
            // flush before it broadcasts; archive queries still see it.
            self.shared.archive.archive_queued(&self.jid, message);
            // XEP-0198: the sender's ack waits for the room's archive row.
            if let Some(r) = &stanza.receipt {
                self.shared.archive.hold_until_archived(Box::new(r.clone()));
            }
        }
        if has_body {
            let limit = self.config.history_length;
            self.history.push(
                HistoryEntry {
                    stamp: now,
                    el: out.clone(),
                },
                limit,
            );
        }
        for o in self.occupants.iter() {
            self.send_to_occupant(o, &out);
        }
    }

    /// §8.1: moderators may change the subject, participants too if the
    /// room allows it.
    async fn change_subject(&mut self, stanza: &Stanza, occ: &Occupant, text: String) {
        let allowed = occ.role == Role::Moderator
            || (self.config.change_subject && occ.role >= Role::Participant);
        if !allowed {
            return self.error(
                stanza,
                StanzaError::new(Condition::Forbidden).with_text("you may not change the subject"),
            );
        }
        let subject = StoredSubject {
            text,
            nick: occ.nick.clone(),
            stamp_ms: millis(SystemTime::now()),
        };
        match self
            .shared
            .rooms_store
            .set_room_subject(&self.jid, Some(&subject))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(room = %self.jid, error = %e, "storing the subject failed");
                return self.error(stanza, StanzaError::internal());
            }
        }
        let mut out = strip_room_only(&stanza.el, self.jid.as_str());
        out.set("from", self.occupant_jid(&occ.nick));
        out.unset("to");
        if out.attr("id").is_none() {
            out.set("id", roost_proto::id::random_token(16));
        }
        out.append_child(
            Element::bare("occupant-id", ns::OCCUPANT_ID).attr_set("id", occ.occupant_id.as_str()),
        );
        self.subject = Some(subject);
        for o in self.occupants.iter() {
            self.send_to_occupant(o, &out);
        }
    }

    /// §7.2.15: the subject ends the join sequence; an empty `<subject/>`
    /// when there is none, delayed (XEP-0203) when it was set.
    pub(super) fn send_subject(&self, to: &Jid) {
        let mut m = Element::bare("message", ns::CLIENT)
            .attr_set("type", "groupchat")
            .attr_set("id", roost_proto::id::random_token(12))
            .attr_set("to", to.as_str());
        match &self.subject {
            Some(s) => {
                let from = if s.nick.is_empty() {
                    self.jid.to_string()
                } else {
                    self.occupant_jid(&s.nick)
                };
                m.set("from", from);
                m.append_child(Element::bare("subject", ns::CLIENT).text_node(s.text.as_str()));
                m.append_child(
                    Element::bare("delay", ns::DELAY)
                        .attr_set("from", self.jid.as_str())
                        .attr_set(
                            "stamp",
                            roost_proto::datetime::to_xep82(time_of(s.stamp_ms)),
                        ),
                );
            }
            None => {
                m.set("from", self.jid.as_str());
                m.append_child(Element::bare("subject", ns::CLIENT));
            }
        }
        self.send(m);
    }

    /// §7.5: from one occupant to another, through the room.
    fn private_message(&mut self, stanza: &Stanza, from: &Jid, to_nick: &str) {
        if stanza.type_attr() == Some("groupchat") {
            return self.error(
                stanza,
                StanzaError::bad_request("private messages may not be of type groupchat"),
            );
        }
        let Some(sender) = self.occupants.by_jid(from) else {
            return self.error(
                stanza,
                StanzaError::new(Condition::NotAcceptable).with_text("you are not in the room"),
            );
        };
        let Some(recipient) = self.occupants.get(to_nick) else {
            return self.error(
                stanza,
                StanzaError::new(Condition::ItemNotFound).with_text("no such occupant"),
            );
        };
        if !self.config.allow_pm.allows(sender.role) {
            return self.error(
                stanza,
                StanzaError::new(Condition::Forbidden)
                    .with_text("private messages are not allowed in this room"),
            );
        }
        if self.too_large(stanza) {
            return self.error(stanza, self.size_error());
        }
        let mut out = stanza.el.shallow_clone();
        for c in stanza.el.children() {
            if !c.is("occupant-id", ns::OCCUPANT_ID) {
                out.append_child(c.clone());
            }
        }
        out.set("from", self.occupant_jid(&sender.nick));
        // §7.5: for carbons (XEP-0280), mark it as coming through a room.
        if !out.has_child("x", ns::MUC_USER) {
            out.append_child(Element::bare("x", ns::MUC_USER));
        }
        out.append_child(
            Element::bare("occupant-id", ns::OCCUPANT_ID)
                .attr_set("id", sender.occupant_id.as_str()),
        );
        // Every session behind the nick gets it.
        self.send_to_occupant(recipient, &out);
    }

    /// An error an occupant's client returned for a private message is
    /// passed back to the occupant who sent it.
    fn forward_error(&self, stanza: &Stanza, from: &Jid, to_nick: &str) {
        let (Some(sender), Some(recipient)) =
            (self.occupants.by_jid(from), self.occupants.get(to_nick))
        else {
            return;
        };
        let mut out = stanza.el.clone();
        out.set("from", self.occupant_jid(&sender.nick));
        out.set("to", recipient.jid.as_str());
        self.send(out);
    }

    /// §7.8.2: the room passes an invitation on, with the inviter's bare
    /// JID and the room's password; in a members-only room the invitee
    /// becomes a member.
    async fn invite(&mut self, stanza: &Stanza, from: &Jid, x: &Element) {
        let bare = from.to_bare();
        let affiliation = self.affiliation_of(&bare);
        let inviter = self.occupants.by_jid(from).cloned();
        if inviter.is_none() && affiliation < Affiliation::Admin {
            return self.error(
                stanza,
                StanzaError::new(Condition::NotAcceptable).with_text("you are not in the room"),
            );
        }
        if affiliation == Affiliation::Outcast {
            return self.error(stanza, StanzaError::new(Condition::Forbidden));
        }
        // §9.5: in members-only rooms only admins invite, unless members may.
        if self.config.members_only
            && affiliation < Affiliation::Admin
            && !(self.config.allow_invites && affiliation >= Affiliation::Member)
        {
            return self.error(
                stanza,
                StanzaError::new(Condition::Forbidden)
                    .with_text("only admins may invite to this room"),
            );
        }
        let mut invitees = Vec::new();
        for invite in x.children().filter(|c| c.is("invite", ns::MUC_USER)) {
            match invite.attr("to").map(Jid::new) {
                Some(Ok(to)) => invitees.push((
                    to,
                    invite.get_child("reason", ns::MUC_USER).map(|r| r.text()),
                )),
                _ => {
                    return self.error(
                        stanza,
                        StanzaError::new(Condition::JidMalformed)
                            .with_text("an invitation needs a valid 'to'"),
                    )
                }
            }
        }
        for (to, reason) in invitees {
            let invitee = to.to_bare();
            if self.config.members_only && self.affiliation_of(&invitee) == Affiliation::None {
                let entry = super::affiliation::AffiliationEntry {
                    affiliation: Affiliation::Member,
                    nick: None,
                    reason: None,
                };
                if let Err(e) = self.put_affiliation(&invitee, entry).await {
                    return self.error(stanza, e);
                }
            }
            let mut inv = Element::bare("invite", ns::MUC_USER).attr_set("from", bare.as_str());
            if let Some(r) = &reason {
                inv.append_child(Element::bare("reason", ns::MUC_USER).text_node(r.as_str()));
            }
            let mut ux = Element::bare("x", ns::MUC_USER).child(inv);
            if let Some(pw) = &self.config.password {
                ux.append_child(Element::bare("password", ns::MUC_USER).text_node(pw.as_str()));
            }
            let body = format!(
                "{bare} invites you to the room {}{}",
                self.jid,
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            let mut m = Element::bare("message", ns::CLIENT)
                .attr_set("from", self.jid.as_str())
                .attr_set("to", to.as_str())
                .attr_set(
                    "id",
                    stanza
                        .id()
                        .map(str::to_string)
                        .unwrap_or_else(|| roost_proto::id::random_token(12)),
                )
                .child(ux)
                .child(Element::bare("body", ns::CLIENT).text_node(body));
            // XEP-0249 compatibility for clients that only know direct ones.
            m.append_child(
                Element::bare("x", "jabber:x:conference")
                    .attr_set("jid", self.jid.as_str())
                    .attr_opt("reason", reason.clone())
                    .attr_opt("password", self.config.password.clone()),
            );
            self.send(m);
            self.invites.push_back((invitee, Jid::from(bare.clone())));
            while self.invites.len() > MAX_INVITES {
                self.invites.pop_front();
            }
        }
    }

    /// §7.8.2: a decline goes to whoever invited the decliner; the room
    /// relays declines only for invitations it passed on.
    fn decline(&mut self, stanza: &Stanza, from: &Jid, decline: &Element) {
        let decliner: BareJid = from.to_bare();
        let asked = decline
            .attr("to")
            .and_then(|t| Jid::new(t).ok())
            .map(|j| j.to_bare());
        let Some(pos) = self.invites.iter().rposition(|(invitee, inviter)| {
            *invitee == decliner && asked.as_ref().is_none_or(|a| inviter.to_bare() == *a)
        }) else {
            return self.error(
                stanza,
                StanzaError::new(Condition::NotAcceptable)
                    .with_text("no invitation from this room to decline"),
            );
        };
        let Some((_, inviter)) = self.invites.remove(pos) else {
            return;
        };
        let mut d = Element::bare("decline", ns::MUC_USER).attr_set("from", decliner.as_str());
        if let Some(r) = decline.get_child("reason", ns::MUC_USER) {
            d.append_child(Element::bare("reason", ns::MUC_USER).text_node(r.text()));
        }
        self.send(
            Element::bare("message", ns::CLIENT)
                .attr_set("from", self.jid.as_str())
                .attr_set("to", inviter.as_str())
                .attr_opt("id", stanza.id())
                .child(Element::bare("x", ns::MUC_USER).child(d)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_room_ids_are_removed_but_others_kept() {
        let el: Element = "<message xmlns='jabber:client' type='groupchat'>\
            <body>hi</body>\
            <stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='room@muc.example'/>\
            <stanza-id xmlns='urn:xmpp:sid:0' id='other' by='someone@else.example'/>\
            <origin-id xmlns='urn:xmpp:sid:0' id='o1'/>\
            <occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>\
            <x xmlns='http://jabber.org/protocol/muc#user'><status code='201'/></x>\
            </message>"
            .parse()
            .unwrap();
        let out = strip_room_only(&el, "room@muc.example");
        let names: Vec<String> = out
            .children()
            .map(|c| format!("{}:{}", c.name(), c.attr("id").unwrap_or_default()))
            .collect();
        assert_eq!(names, ["body:", "stanza-id:other", "origin-id:o1"]);
    }
}
