//! XEP-0045 §8.2–§8.5, §9.1–§9.8 and §10.3–§10.8: the `muc#admin`
//! protocol. Roles change by nick (kick, voice, moderator), affiliations by
//! bare JID (ban, member, admin, owner lists), with the permission rules of
//! §5 and §17.4 #4–#6. A request changes everything it asks or nothing.

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{Condition, Elem, Stanza, StanzaError};

use super::affiliation::{default_role, Affiliation, AffiliationEntry, Role};
use super::occupant::Notice;
use super::{IqResult, Room};
use crate::ns;

/// One change a `muc#admin` set asks for.
#[derive(Debug)]
enum Change {
    Role {
        nick: String,
        role: Role,
        reason: Option<String>,
    },
    Affiliation {
        jid: BareJid,
        affiliation: Affiliation,
        /// `Some("")` clears the reserved nick (§9.5).
        nick: Option<String>,
        reason: Option<String>,
    },
}

fn forbidden(text: &str) -> StanzaError {
    StanzaError::new(Condition::Forbidden).with_text(text)
}

fn not_allowed(text: &str) -> StanzaError {
    StanzaError::new(Condition::NotAllowed).with_text(text)
}

impl Room {
    pub(super) async fn admin_iq(
        &mut self,
        stanza: &Stanza,
        from: &Jid,
        query: &Element,
    ) -> IqResult {
        let items: Vec<&Element> = query
            .children()
            .filter(|c| c.is("item", ns::MUC_ADMIN))
            .collect();
        if items.is_empty() {
            return Err(StanzaError::bad_request("no item"));
        }
        match stanza.type_attr() {
            Some("get") => match items.as_slice() {
                [item] => self.admin_get(from, item),
                _ => Err(StanzaError::bad_request("one item per list request")),
            },
            Some("set") => self.admin_set(from, &items).await,
            _ => Err(StanzaError::bad_request("get or set")),
        }
    }

    /// The highest role the sender's bare JID has in the room.
    fn role_of(&self, bare: &BareJid) -> Role {
        self.occupants
            .iter()
            .filter(|o| &o.bare == bare)
            .map(|o| o.role)
            .max()
            .unwrap_or(Role::None)
    }

    /// The sender's nick, for `<actor nick/>`.
    fn actor_nick(&self, from: &Jid) -> Option<String> {
        self.occupants
            .by_jid(from)
            .or_else(|| self.occupants.iter().find(|o| o.bare == from.to_bare()))
            .map(|o| o.nick.clone())
    }

    /// §8.5, §9.2, §9.5, §9.8, §10.5, §10.8: the lists.
    fn admin_get(&self, from: &Jid, item: &Element) -> IqResult {
        let bare = from.to_bare();
        let mine = self.affiliation_of(&bare);
        let mut out = Element::bare("query", ns::MUC_ADMIN);
        match (item.attr("role"), item.attr("affiliation")) {
            (Some(role), None) => {
                let role = Role::parse(role)
                    .filter(|r| *r != Role::None)
                    .ok_or_else(|| StanzaError::bad_request("unknown role"))?;
                if self.role_of(&bare) != Role::Moderator {
                    return Err(forbidden("only moderators may see this list"));
                }
                for o in self.occupants.iter().filter(|o| o.role == role) {
                    out.append_child(
                        Element::bare("item", ns::MUC_ADMIN)
                            .attr_set("affiliation", self.affiliation_of(&o.bare).as_str())
                            .attr_set("jid", o.jid.as_str())
                            .attr_set("nick", o.nick.as_str())
                            .attr_set("role", o.role.as_str()),
                    );
                }
            }
            (None, Some(affiliation)) => {
                let affiliation = Affiliation::parse(affiliation)
                    .filter(|a| *a != Affiliation::None)
                    .ok_or_else(|| StanzaError::bad_request("unknown affiliation"))?;
                let allowed = match affiliation {
                    Affiliation::Outcast => mine >= Affiliation::Admin,
                    // §9.5 note: members may see members in non-anonymous rooms.
                    Affiliation::Member => {
                        mine >= Affiliation::Admin
                            || (mine == Affiliation::Member && self.config.non_anonymous())
                    }
                    // §10.5, §10.8
                    _ => {
                        mine == Affiliation::Owner
                            || (mine == Affiliation::Admin && self.config.non_anonymous())
                    }
                };
                if !allowed {
                    return Err(forbidden("you may not see this list"));
                }
                let mut entries: Vec<(&BareJid, &AffiliationEntry)> = self
                    .affiliations
                    .iter()
                    .filter(|(_, e)| e.affiliation == affiliation)
                    .collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (jid, e) in entries {
                    let mut i = Element::bare("item", ns::MUC_ADMIN)
                        .attr_set("affiliation", affiliation.as_str())
                        .attr_set("jid", jid.as_str())
                        .attr_opt("nick", e.nick.clone());
                    if let Some(r) = &e.reason {
                        i.append_child(
                            Element::bare("reason", ns::MUC_ADMIN).text_node(r.as_str()),
                        );
                    }
                    out.append_child(i);
                }
            }
            _ => {
                return Err(StanzaError::bad_request(
                    "an item has either a role or an affiliation",
                ))
            }
        }
        Ok(Some(out))
    }

    /// Read the items of a set (§17.4 #4–#6).
    fn parse_changes(&self, items: &[&Element]) -> Result<Vec<Change>, StanzaError> {
        items
            .iter()
            .map(|item| {
                let reason = item
                    .get_child("reason", ns::MUC_ADMIN)
                    .map(|r| r.text().chars().take(1024).collect());
                match (item.attr("role"), item.attr("affiliation")) {
                    (Some(role), None) => {
                        let role = Role::parse(role)
                            .ok_or_else(|| StanzaError::bad_request("unknown role"))?;
                        let nick = item.attr("nick").ok_or_else(|| {
                            StanzaError::bad_request("a role change needs a nick")
                        })?;
                        Ok(Change::Role {
                            nick: nick.to_string(),
                            role,
                            reason,
                        })
                    }
                    (None, Some(affiliation)) => {
                        let affiliation = Affiliation::parse(affiliation)
                            .ok_or_else(|| StanzaError::bad_request("unknown affiliation"))?;
                        // §10.3: full JIDs count as their bare JID; an
                        // occupant's nick is accepted too.
                        let jid = match (item.attr("jid"), item.attr("nick")) {
                            (Some(j), _) => Jid::new(j)
                                .map_err(|_| StanzaError::new(Condition::JidMalformed))?
                                .to_bare(),
                            (None, Some(n)) => self
                                .occupants
                                .get(n)
                                .map(|o| o.bare.clone())
                                .ok_or_else(|| {
                                    StanzaError::new(Condition::ItemNotFound)
                                        .with_text("no such occupant")
                                })?,
                            (None, None) => {
                                return Err(StanzaError::bad_request(
                                    "an affiliation change needs a jid",
                                ))
                            }
                        };
                        let nick = match item.attr("nick") {
                            Some(_) if item.attr("jid").is_none() => None,
                            Some("") => Some(String::new()),
                            Some(n) => Some(
                                self.jid
                                    .with_resource_str(n)
                                    .map_err(|_| StanzaError::new(Condition::JidMalformed))?
                                    .resource()
                                    .to_string(),
                            ),
                            None => None,
                        };
                        Ok(Change::Affiliation {
                            jid,
                            affiliation,
                            nick,
                            reason,
                        })
                    }
                    // §17.4 #4
                    _ => Err(StanzaError::bad_request(
                        "an item has either a role or an affiliation",
                    )),
                }
            })
            .collect()
    }

    /// §5.1, §8.2–§8.4, §9.6–§9.7: may `actor` give `nick` this role?
    fn check_role(&self, actor: &BareJid, nick: &str, role: Role) -> Result<(), StanzaError> {
        let actor_affiliation = self.affiliation_of(actor);
        if self.role_of(actor) != Role::Moderator {
            return Err(forbidden("only moderators may change roles"));
        }
        let target = self.occupants.get(nick).ok_or_else(|| {
            StanzaError::new(Condition::ItemNotFound).with_text("no such occupant")
        })?;
        let target_affiliation = self.affiliation_of(&target.bare);
        match role {
            // §8.2: not by a moderator of lower affiliation.
            Role::None => {
                if target_affiliation > actor_affiliation {
                    return Err(not_allowed("you may not kick someone above you"));
                }
            }
            // §9.6
            Role::Moderator => {
                if actor_affiliation < Affiliation::Admin {
                    return Err(forbidden("only admins may grant moderator status"));
                }
            }
            Role::Participant | Role::Visitor => {
                if target.role == Role::Moderator {
                    // §9.7
                    if actor_affiliation < Affiliation::Admin {
                        return Err(forbidden("only admins may revoke moderator status"));
                    }
                    if target_affiliation >= Affiliation::Admin {
                        return Err(not_allowed("admins and owners stay moderators"));
                    }
                } else if target_affiliation >= Affiliation::Admin
                    || target_affiliation > actor_affiliation
                {
                    // §8.4: never the voice of admins, owners or those above.
                    return Err(not_allowed("you may not change this occupant's voice"));
                }
            }
        }
        Ok(())
    }

    /// §9, §10.3–§10.8: may `actor` give `jid` this affiliation?
    fn check_affiliation(
        &self,
        actor: &BareJid,
        jid: &BareJid,
        affiliation: Affiliation,
        nick: Option<&str>,
    ) -> Result<(), StanzaError> {
        let actor_affiliation = self.affiliation_of(actor);
        if actor_affiliation < Affiliation::Admin {
            return Err(forbidden("only admins and owners may change affiliations"));
        }
        let current = self
            .affiliations
            .get(jid)
            .map(|e| e.affiliation)
            .unwrap_or(Affiliation::None);
        if actor_affiliation < Affiliation::Owner {
            // §10.3, §10.5, §10.6: only owners edit the admin and owner lists.
            if affiliation >= Affiliation::Admin {
                return Err(forbidden("only owners may grant admin or owner status"));
            }
            // §9.1: an admin may not ban (or otherwise touch) an owner or admin.
            if current >= Affiliation::Admin {
                return Err(not_allowed("only owners may change admins and owners"));
            }
        }
        // §9.1: nobody bans themselves.
        if affiliation == Affiliation::Outcast && jid == actor {
            return Err(StanzaError::new(Condition::Conflict).with_text("you may not ban yourself"));
        }
        // §10.4: the last owner stays.
        if current == Affiliation::Owner
            && affiliation != Affiliation::Owner
            && self.owner_count() <= 1
        {
            return Err(
                StanzaError::new(Condition::Conflict).with_text("a room needs at least one owner")
            );
        }
        if let Some(n) = nick.filter(|n| !n.is_empty()) {
            if self.nick_reserved_by(n).is_some_and(|owner| owner != jid) {
                return Err(StanzaError::new(Condition::Conflict)
                    .with_text("that nick is reserved by someone else"));
            }
        }
        Ok(())
    }

    async fn admin_set(&mut self, from: &Jid, items: &[&Element]) -> IqResult {
        let changes = self.parse_changes(items)?;
        let actor = from.to_bare();
        // All or nothing (§9.2): check everything first.
        for change in &changes {
            match change {
                Change::Role { nick, role, .. } => self.check_role(&actor, nick, *role)?,
                Change::Affiliation {
                    jid,
                    affiliation,
                    nick,
                    ..
                } => self.check_affiliation(&actor, jid, *affiliation, nick.as_deref())?,
            }
        }
        let actor_nick = self.actor_nick(from);
        for change in changes {
            match change {
                Change::Role { nick, role, reason } => {
                    self.apply_role(&nick, role, reason, actor_nick.clone())
                }
                Change::Affiliation {
                    jid,
                    affiliation,
                    nick,
                    reason,
                } => {
                    self.apply_affiliation(&jid, affiliation, nick, reason, actor_nick.clone())
                        .await?
                }
            }
        }
        self.after_departure().await;
        Ok(None)
    }

    /// Out of the room: the occupant hears now, the others after the
    /// result (§8.2, §9.1).
    fn eject(&mut self, nick: &str, n: &Notice) {
        let Some(mut occ) = self.occupants.remove(nick) else {
            return;
        };
        occ.role = Role::None;
        self.send_self_presence(&occ, n);
        self.defer();
        self.send_presence_to_others(&occ, n);
    }

    pub(super) fn apply_role(
        &mut self,
        nick: &str,
        role: Role,
        reason: Option<String>,
        actor: Option<String>,
    ) {
        if role == Role::None {
            // §8.2: kick.
            let n = Notice {
                codes: vec![307],
                actor,
                reason,
                ..Notice::unavailable()
            };
            return self.eject(nick, &n);
        }
        let Some(occ) = self.occupants.get_mut(nick) else {
            return;
        };
        let was = occ.role;
        occ.role = role;
        let occ = occ.clone();
        self.defer();
        if was != role {
            self.broadcast_presence(
                &occ,
                &Notice {
                    reason,
                    ..Notice::default()
                },
            );
        }
        // A new moderator of a semi-anonymous room now sees real JIDs.
        if role == Role::Moderator && was != Role::Moderator && !self.config.non_anonymous() {
            for jid in occ.jids() {
                self.send_occupants_to(&occ, jid);
            }
        }
    }

    async fn apply_affiliation(
        &mut self,
        jid: &BareJid,
        affiliation: Affiliation,
        nick: Option<String>,
        reason: Option<String>,
        actor: Option<String>,
    ) -> Result<(), StanzaError> {
        let previous = self.affiliations.get(jid).cloned();
        // §9.1: outcasts keep no reserved nick; otherwise the nick stays
        // unless the item changes it.
        let reserved = match affiliation {
            Affiliation::Outcast | Affiliation::None => None,
            _ => match nick {
                Some(n) if n.is_empty() => None,
                Some(n) => Some(n),
                None => previous.as_ref().and_then(|p| p.nick.clone()),
            },
        };
        let entry = AffiliationEntry {
            affiliation,
            nick: reserved,
            reason: (affiliation == Affiliation::Outcast)
                .then_some(reason.clone())
                .flatten(),
        };
        let before: Vec<(String, Affiliation, Role)> = self
            .occupants
            .iter()
            .filter(|o| &o.bare == jid || (jid.node().is_none() && o.bare.domain() == jid.domain()))
            .map(|o| (o.nick.clone(), self.affiliation_of(&o.bare), o.role))
            .collect();
        self.put_affiliation(jid, entry).await?;
        for (nick, old_affiliation, old_role) in before {
            let Some(bare) = self.occupants.get(&nick).map(|o| o.bare.clone()) else {
                continue;
            };
            let now = self.affiliation_of(&bare);
            if now == Affiliation::Outcast {
                // §9.1: ban.
                let n = Notice {
                    codes: vec![301],
                    actor: actor.clone(),
                    reason: reason.clone(),
                    ..Notice::unavailable()
                };
                self.eject(&nick, &n);
            } else if self.config.members_only && now < Affiliation::Member {
                // §9.4: out of a members-only room.
                let n = Notice {
                    codes: vec![321],
                    actor: actor.clone(),
                    reason: reason.clone(),
                    ..Notice::unavailable()
                };
                self.eject(&nick, &n);
            } else if now != old_affiliation {
                let role = if now >= Affiliation::Admin {
                    Role::Moderator
                } else if old_affiliation >= Affiliation::Admin {
                    default_role(now, self.config.moderated)
                } else {
                    old_role.max(default_role(now, self.config.moderated))
                };
                self.apply_role_silently(&nick, role);
                let Some(occ) = self.occupants.get(&nick).cloned() else {
                    continue;
                };
                self.defer();
                self.broadcast_presence(
                    &occ,
                    &Notice {
                        reason: reason.clone(),
                        ..Notice::default()
                    },
                );
                if role == Role::Moderator
                    && old_role != Role::Moderator
                    && !self.config.non_anonymous()
                {
                    for jid in occ.jids() {
                        self.send_occupants_to(&occ, jid);
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_role_silently(&mut self, nick: &str, role: Role) {
        if let Some(o) = self.occupants.get_mut(nick) {
            o.role = role;
        }
    }
}
