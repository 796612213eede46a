//! XEP-0045 §7.2 (entering, with room creation §10.1.1), §7.6 (changing
//! nick), §7.7 (changing availability), §7.14 (exiting) and the presence
//! business rules of §17.3.

use std::time::SystemTime;

use jid::Jid;
use roost_proto::{Condition, Elem, Stanza, StanzaError};

use super::affiliation::{default_role, Affiliation, AffiliationEntry, Role};
use super::config_form::Settings;
use super::history::HistoryRequest;
use super::occupant::{clean_presence, Notice, Occupant, OccupantSession};
use super::Room;
use crate::ns;

/// Admins and owners may enter a full room, up to this many extra (§7.2.9).
const ADMIN_EXTRA_OCCUPANTS: usize = 10;

/// Delivery-related errors that mean an occupant is gone (§18.1.3 "Ghost
/// Users"), and `service-unavailable`, which the occupant's server sends
/// for a resource that is no longer there (RFC 6121 §8.5.3.2.1).
const GONE_CONDITIONS: [Condition; 7] = [
    Condition::Gone,
    Condition::ItemNotFound,
    Condition::RecipientUnavailable,
    Condition::Redirect,
    Condition::RemoteServerNotFound,
    Condition::RemoteServerTimeout,
    Condition::ServiceUnavailable,
];

/// The nick as the client wrote it in `to` (before resourceprep).
fn raw_nick(stanza: &Stanza) -> Option<&str> {
    stanza
        .el
        .attr("to")
        .and_then(|to| to.split_once('/'))
        .map(|(_, n)| n)
}

impl Room {
    pub(super) async fn on_presence(&mut self, stanza: &Stanza, from: &Jid, nick: Option<String>) {
        match stanza.type_attr() {
            None => {
                let Some(nick) = nick else {
                    // §7.2.1: no nick.
                    return self.error(
                        stanza,
                        StanzaError::new(Condition::JidMalformed)
                            .with_text("the room JID needs a nick to join"),
                    );
                };
                let current = self.occupants.by_jid(from).map(|o| o.nick.clone());
                match current {
                    None => self.enter(stanza, from, nick).await,
                    Some(current) if current == nick => {
                        self.update_presence(stanza, from, &current);
                    }
                    Some(current) => self.change_nick(stanza, from, &current, nick),
                }
            }
            Some("unavailable") => {
                // §17.3 #5: ignored from non-occupants.
                if let Some(nick) = self.occupants.by_jid(from).map(|o| o.nick.clone()) {
                    self.exit(stanza, from, &nick).await;
                }
            }
            Some("error") => self.occupant_error(stanza, from).await,
            // §17.3 #1, #2: probes and subscriptions neither join nor leave.
            _ => {}
        }
    }

    /// §7.2: someone not in the room asks to enter.
    async fn enter(&mut self, stanza: &Stanza, from: &Jid, nick: String) {
        let Some(muc) = stanza.el.get_child("x", ns::MUC) else {
            // §7.2.18: presence without <x/> from a non-occupant is not a
            // join; tell the sender it is not in the room (110, 307, 333).
            let occ = self.occupant(from, nick, Role::None, stanza);
            let n = Notice {
                codes: vec![307, 333],
                reason: Some("You are not in the room.".into()),
                ..Notice::unavailable()
            };
            self.send(self.presence_of(&occ, from, Role::None, true, &n));
            return;
        };
        // §17.1: no empty or invisible nicks.
        if nick.trim().is_empty() {
            return self.error(
                stanza,
                StanzaError::new(Condition::JidMalformed).with_text("the nick is empty"),
            );
        }
        if self.too_large(stanza) {
            return self.error(stanza, self.size_error());
        }
        let bare = from.to_bare();
        let mut created = false;
        if !self.exists {
            if let Err(e) = self.create(&bare).await {
                return self.error(stanza, e);
            }
            created = true;
        }
        let affiliation = self.affiliation_of(&bare);
        let given = muc.get_child("password", ns::MUC).map(|p| p.text());
        let count = self.occupants.len();
        // §7.2.9 forbids a nick only to another user: a session of the
        // same user joins the occupant it already is.
        let same_user = self.occupants.get(&nick).is_some_and(|o| o.bare == bare);
        let check = if self.locked && affiliation != Affiliation::Owner {
            // §7.2.10
            Err(StanzaError::new(Condition::ItemNotFound).with_text("the room is locked"))
        } else if affiliation == Affiliation::Outcast {
            // §7.2.7
            Err(StanzaError::new(Condition::Forbidden).with_text("you are banned from this room"))
        } else if self.config.members_only && affiliation < Affiliation::Member {
            // §7.2.6
            Err(StanzaError::new(Condition::RegistrationRequired)
                .with_text("the room is members-only"))
        } else if (self.occupants.get(&nick).is_some() && !same_user)
            || self
                .nick_reserved_by(&nick)
                .is_some_and(|owner| *owner != bare)
        {
            // §7.2.8
            Err(StanzaError::new(Condition::Conflict).with_text("that nick is taken"))
        } else if self.config.password.is_some()
            && affiliation < Affiliation::Admin
            && given.as_deref() != self.config.password.as_deref()
        {
            // §7.2.5
            Err(StanzaError::new(Condition::NotAuthorized).with_text("a password is required"))
        } else if !same_user
            && count >= self.config.max_users
            && (affiliation < Affiliation::Admin
                || count >= self.config.max_users + ADMIN_EXTRA_OCCUPANTS)
        {
            // §7.2.9
            roost_core::limits::hit(roost_core::limits::Limit::RoomOccupants);
            Err(StanzaError::service_unavailable().with_text("the room is full"))
        } else if !same_user && !self.shared.user_rooms.allows(&bare) {
            // Rooms per user (README "Limits"), as ejabberd answers it.
            roost_core::limits::hit(roost_core::limits::Limit::RoomsPerUser);
            Err(
                StanzaError::new(Condition::ResourceConstraint).with_text(format!(
                    "you are in too many rooms ({} at most)",
                    self.shared.config.max_rooms_per_user
                )),
            )
        } else {
            Ok(())
        };
        if let Err(e) = check {
            return self.error(stanza, e);
        }
        if same_user {
            return self.enter_as_session(stanza, from, &nick, muc);
        }
        let role = default_role(affiliation, self.config.moderated);
        let occ = self.occupant(from, nick, role, stanza);
        // §7.2.2: everyone else first, then the newcomer to everyone, its own
        // self-presence last (with 100, 170, 201, 210 as they apply).
        self.send_occupants_to(&occ, from);
        self.occupants.insert(occ.clone());
        // §10.1.1: 201 for the creator (also of an instant room), and for
        // an owner entering a room that is still locked (lasting codes),
        // so that its client offers configuration.
        let n = self.join_notice(stanza, &occ, created && !self.locked);
        self.broadcast_presence(&occ, &n);
        self.send_history_and_subject(from, muc);
        tracing::debug!(room = %self.jid, nick = %occ.nick, "occupant entered");
    }

    /// The self-presence notice of a join: the room's lasting codes, 201
    /// for a creator (`created`), 210 when the nick was normalised.
    fn join_notice(&self, stanza: &Stanza, occ: &Occupant, created: bool) -> Notice {
        let mut self_codes = self.lasting_join_codes();
        if created {
            self_codes.push(201);
        }
        if raw_nick(stanza).is_some_and(|raw| raw != occ.nick) {
            self_codes.push(210);
        }
        Notice {
            self_codes,
            self_id: stanza.id().map(str::to_string),
            ..Notice::default()
        }
    }

    /// §7.2.13–§7.2.15: the end of a join sequence, for one session.
    fn send_history_and_subject(&self, to: &Jid, muc: &minidom::Element) {
        let request = HistoryRequest::parse(muc.get_child("history", ns::MUC), SystemTime::now());
        self.send_history(to, &request);
        self.send_subject(to);
    }

    /// Codes of a self-presence at join that the room's settings give.
    fn lasting_join_codes(&self) -> Vec<u16> {
        let mut codes = Vec::new();
        if self.config.non_anonymous() {
            codes.push(100);
        }
        if self.config.archiving {
            codes.push(170);
        }
        if self.locked {
            codes.push(201);
        }
        codes
    }

    /// Another session of an occupant's user joins under its nick: it gets
    /// the join sequence on its own; others see a change only if the
    /// occupant's shown presence changed.
    fn enter_as_session(
        &mut self,
        stanza: &Stanza,
        from: &Jid,
        nick: &str,
        muc: &minidom::Element,
    ) {
        let changed = self
            .occupants
            .add_session(nick, from.clone(), clean_presence(&stanza.el));
        let Some(occ) = self.occupants.get(nick).cloned() else {
            return;
        };
        self.send_occupants_to(&occ, from);
        if changed {
            self.send_presence_to_others(&occ, &Notice::default());
        }
        let n = self.join_notice(stanza, &occ, false);
        self.send_self_presence_to(&occ, from, &n);
        self.send_history_and_subject(from, muc);
        tracing::debug!(room = %self.jid, nick = %occ.nick, sessions = occ.sessions.len(), "another session entered");
    }

    fn occupant(&self, from: &Jid, nick: String, role: Role, stanza: &Stanza) -> Occupant {
        let bare = from.to_bare();
        Occupant {
            occupant_id: self.occupant_id(&bare),
            nick,
            jid: from.clone(),
            bare,
            role,
            presence: clean_presence(&stanza.el),
            sessions: vec![OccupantSession {
                jid: from.clone(),
                presence: clean_presence(&stanza.el),
                changed: 0,
            }],
        }
    }

    /// §10.1.1: the first to enter a room that does not exist creates it,
    /// locked until configured, and owns it.
    async fn create(&mut self, creator: &jid::BareJid) -> Result<(), StanzaError> {
        if !self.may_create(creator) {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("you may not create rooms on this service"));
        }
        let service = &self.shared.config;
        let count = self
            .shared
            .rooms_store
            .count_rooms(&self.shared.domain)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "counting rooms failed");
                StanzaError::internal()
            })?;
        if count >= service.max_rooms {
            return Err(StanzaError::new(Condition::ResourceConstraint)
                .with_text("the service has reached its number of rooms"));
        }
        self.salt = roost_proto::id::random_token(24);
        self.config = super::config_form::RoomConfig::new(service);
        // `[muc] lock_new_rooms = false`: an instant room (§10.1.3).
        let locked = service.lock_new_rooms;
        self.vcard = None;
        let settings = Settings {
            locked,
            salt: self.salt.clone(),
            config: self.config.clone(),
            vcard: None,
        };
        self.save_settings(&settings.config, locked).await?;
        self.exists = true;
        self.locked = locked;
        if locked {
            self.start_lock_timer();
        }
        self.put_affiliation(
            creator,
            AffiliationEntry {
                affiliation: Affiliation::Owner,
                nick: None,
                reason: None,
            },
        )
        .await?;
        tracing::debug!(room = %self.jid, owner = %creator, "room created");
        Ok(())
    }

    /// §7.7 and §17.3 #3: new presence for the room, or (with `<x/>`) a
    /// client that lost track and joins again: it gets the whole join
    /// sequence again, the others an update only if something changed.
    fn update_presence(&mut self, stanza: &Stanza, from: &Jid, nick: &str) {
        if self.too_large(stanza) {
            return self.error(stanza, self.size_error());
        }
        let changed = self
            .occupants
            .set_presence(from, clean_presence(&stanza.el));
        let Some(occ) = self.occupants.get(nick).cloned() else {
            return;
        };
        let n = Notice {
            self_id: stanza.id().map(str::to_string),
            ..Notice::default()
        };
        let rejoin = stanza.el.get_child("x", ns::MUC);
        if let Some(muc) = rejoin {
            if changed {
                self.send_presence_to_others(&occ, &n);
            }
            self.send_occupants_to(&occ, from);
            let mut codes = n.clone();
            codes.self_codes = self.lasting_join_codes();
            self.send_self_presence_to(&occ, from, &codes);
            self.send_history_and_subject(from, muc);
        } else if changed || occ.sessions.len() == 1 {
            self.broadcast_presence(&occ, &n);
        } else {
            // Hidden behind a more available session: only it hears back.
            self.send_self_presence_to(&occ, from, &n);
        }
    }

    /// §7.6: unavailable from the old nick with the new one and 303, then
    /// available from the new nick, to everyone.
    /// With several sessions behind the nick, all of them move: the
    /// occupant is one.
    fn change_nick(&mut self, stanza: &Stanza, from: &Jid, old: &str, new: String) {
        if new.trim().is_empty() {
            return self.error(
                stanza,
                StanzaError::new(Condition::JidMalformed).with_text("the nick is empty"),
            );
        }
        if self.too_large(stanza) {
            return self.error(stanza, self.size_error());
        }
        let Some(occ) = self.occupants.get(old).cloned() else {
            return;
        };
        if self.occupants.get(&new).is_some()
            || self
                .nick_reserved_by(&new)
                .is_some_and(|owner| *owner != occ.bare)
        {
            return self.error(
                stanza,
                StanzaError::new(Condition::Conflict).with_text("that nick is taken"),
            );
        }
        let leaving = Notice {
            codes: vec![303],
            new_nick: Some(new.clone()),
            ..Notice::unavailable()
        };
        self.broadcast_presence(&occ, &leaving);
        self.occupants.rename(old, &new);
        self.occupants
            .set_presence(from, clean_presence(&stanza.el));
        let Some(renamed) = self.occupants.get(&new).cloned() else {
            return;
        };
        let mut self_codes = Vec::new();
        if raw_nick(stanza).is_some_and(|raw| raw != new) {
            self_codes.push(210);
        }
        self.broadcast_presence(
            &renamed,
            &Notice {
                self_codes,
                self_id: stanza.id().map(str::to_string),
                ..Notice::default()
            },
        );
    }

    /// §7.14: the occupant leaves, with its status text if any. One of
    /// several sessions leaving is not a leave for the others: it alone
    /// gets the unavailable self-presence.
    async fn exit(&mut self, stanza: &Stanza, from: &Jid, nick: &str) {
        if let Some(changed) = self.occupants.remove_session(from) {
            let Some(occ) = self.occupants.get(nick).cloned() else {
                return;
            };
            let mut gone = occ.clone();
            gone.role = Role::None;
            let n = Notice {
                self_id: stanza.id().map(str::to_string),
                ..Notice::unavailable()
            };
            self.send_self_presence_to(&gone, from, &n);
            if changed {
                self.broadcast_presence(&occ, &Notice::default());
            }
            return;
        }
        let Some(mut occ) = self.occupants.remove(nick) else {
            return;
        };
        self.voice_requests.remove(nick);
        occ.role = Role::None;
        let status: Vec<_> = stanza
            .el
            .children()
            .filter(|c| c.is("status", ns::CLIENT))
            .take(1)
            .map(|c| {
                let mut s = c.clone();
                // An exit message is a line, not a document.
                if s.text().chars().count() > 1024 {
                    let short: String = s.text().chars().take(1024).collect();
                    s = minidom::Element::bare("status", ns::CLIENT).text_node(short);
                }
                s
            })
            .collect();
        let n = Notice {
            status,
            self_id: stanza.id().map(str::to_string),
            ..Notice::unavailable()
        };
        self.send_self_presence(&occ, &n);
        self.send_presence_to_others(&occ, &n);
        tracing::debug!(room = %self.jid, nick = %occ.nick, "occupant left");
        self.after_departure().await;
    }

    /// §18.1.3: a delivery error from an occupant's real JID means it is
    /// gone (333); other errors change nothing.
    pub(super) async fn occupant_error(&mut self, stanza: &Stanza, from: &Jid) {
        let Some(nick) = self.occupants.by_jid(from).map(|o| o.nick.clone()) else {
            return;
        };
        let gone = StanzaError::from_stanza(&stanza.el)
            .is_some_and(|e| GONE_CONDITIONS.contains(&e.condition));
        if gone {
            // One of several sessions: only it is gone, silently.
            if let Some(changed) = self.occupants.remove_session(from) {
                if changed {
                    if let Some(occ) = self.occupants.get(&nick).cloned() {
                        self.broadcast_presence(&occ, &Notice::default());
                    }
                }
                return;
            }
            self.remove_occupant(
                &nick,
                &Notice {
                    codes: vec![333],
                    ..Notice::unavailable()
                },
            );
            self.after_departure().await;
        }
    }

    pub(super) fn size_error(&self) -> StanzaError {
        StanzaError::new(Condition::PolicyViolation).with_text(format!(
            "stanzas to rooms are limited to {} bytes",
            self.shared.config.max_message_size
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_nick_is_what_follows_the_first_slash() {
        let el: minidom::Element = "<presence xmlns='jabber:client' to='room@muc.example/a/b'/>"
            .parse()
            .unwrap();
        let s = Stanza::parse(el).unwrap();
        assert_eq!(raw_nick(&s), Some("a/b"));
    }
}
