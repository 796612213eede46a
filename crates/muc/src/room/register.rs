//! XEP-0045 §7.10 with XEP-0077: registering with a room makes the user a
//! member with a reserved nick (§7.12 discovers it); `<remove/>` undoes it.

use jid::Jid;
use minidom::Element;
use roost_proto::{Condition, Elem, Stanza, StanzaError};

use super::affiliation::{default_role, Affiliation, AffiliationEntry};
use super::occupant::Notice;
use super::{IqResult, Room};
use crate::forms::{self, Form};
use crate::ns;

impl Room {
    pub(super) async fn register_iq(
        &mut self,
        stanza: &Stanza,
        from: &Jid,
        query: &Element,
    ) -> IqResult {
        let bare = from.to_bare();
        let affiliation = self.affiliation_of(&bare);
        if affiliation == Affiliation::Outcast {
            return Err(StanzaError::new(Condition::Forbidden).with_text("you are banned"));
        }
        match stanza.type_attr() {
            Some("get") => {
                let mut q = Element::bare("query", ns::REGISTER);
                if let (true, Some(nick)) = (
                    affiliation >= Affiliation::Member,
                    self.reserved_nick(&bare),
                ) {
                    // XEP-0077 §3.2.1: already registered.
                    q.append_child(Element::bare("registered", ns::REGISTER));
                    q.append_child(Element::bare("username", ns::REGISTER).text_node(nick));
                    return Ok(Some(q));
                }
                if !self.may_register(affiliation) {
                    return Err(StanzaError::new(Condition::NotAllowed)
                        .with_text("members are added by the room's admins"));
                }
                q.append_child(
                    Element::bare("instructions", ns::REGISTER)
                        .text_node("Choose the nick to reserve in this room."),
                );
                q.append_child(
                    Element::bare("x", ns::DATA_FORMS)
                        .attr_set("type", "form")
                        .child(
                            Element::bare("title", ns::DATA_FORMS)
                                .text_node(format!("Registration with {}", self.jid)),
                        )
                        .child(forms::form_type(ns::MUC_REGISTER))
                        .child(forms::required(forms::field(
                            "muc#register_roomnick",
                            "text-single",
                            "Desired Nickname",
                            [],
                        ))),
                );
                Ok(Some(q))
            }
            Some("set") => {
                if query.get_child("remove", ns::REGISTER).is_some() {
                    return self.unregister(&bare, affiliation).await;
                }
                if !self.may_register(affiliation) {
                    return Err(StanzaError::new(Condition::NotAllowed)
                        .with_text("members are added by the room's admins"));
                }
                let form = query
                    .get_child("x", ns::DATA_FORMS)
                    .map(Form::parse)
                    .filter(|f| f.kind == "submit")
                    .ok_or_else(|| StanzaError::bad_request("a submitted form is required"))?;
                if form.form_type().is_some_and(|t| t != ns::MUC_REGISTER) {
                    return Err(StanzaError::bad_request("FORM_TYPE must be muc#register"));
                }
                let wanted = form
                    .value("muc#register_roomnick")
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| StanzaError::bad_request("muc#register_roomnick is required"))?;
                let nick = self
                    .jid
                    .with_resource_str(wanted)
                    .map_err(|_| {
                        StanzaError::new(Condition::JidMalformed).with_text("invalid nick")
                    })?
                    .resource()
                    .to_string();
                let taken = self.nick_reserved_by(&nick).is_some_and(|o| *o != bare)
                    || self.occupants.get(&nick).is_some_and(|o| o.bare != bare);
                if taken {
                    return Err(
                        StanzaError::new(Condition::Conflict).with_text("that nick is taken")
                    );
                }
                let new = affiliation.max(Affiliation::Member);
                let reason = self.affiliations.get(&bare).and_then(|e| e.reason.clone());
                self.put_affiliation(
                    &bare,
                    AffiliationEntry {
                        affiliation: new,
                        nick: Some(nick),
                        reason,
                    },
                )
                .await?;
                if new != affiliation {
                    self.announce_affiliation(&bare);
                }
                Ok(None)
            }
            _ => Err(StanzaError::bad_request("get or set")),
        }
    }

    /// §7.10: unaffiliated users may register with open rooms; members-only
    /// rooms get their members from admins.
    fn may_register(&self, affiliation: Affiliation) -> bool {
        affiliation >= Affiliation::Member || !self.config.members_only
    }

    /// XEP-0077 §3.2: cancel the registration (members only; admins and
    /// owners just lose the reserved nick).
    async fn unregister(&mut self, bare: &jid::BareJid, affiliation: Affiliation) -> IqResult {
        let Some(entry) = self.affiliations.get(bare).cloned() else {
            return Err(StanzaError::new(Condition::ItemNotFound).with_text("not registered"));
        };
        let new = if affiliation == Affiliation::Member {
            Affiliation::None
        } else {
            affiliation
        };
        self.put_affiliation(
            bare,
            AffiliationEntry {
                affiliation: new,
                nick: None,
                reason: entry.reason,
            },
        )
        .await?;
        if new != affiliation {
            self.announce_affiliation(bare);
        }
        Ok(None)
    }

    /// §7.10: the occupants of `bare` show their new affiliation (after the
    /// IQ result); out of a members-only room if no longer a member (321).
    fn announce_affiliation(&mut self, bare: &jid::BareJid) {
        self.defer();
        let now = self.affiliation_of(bare);
        for nick in self.occupants.nicks_of(bare) {
            if self.config.members_only && now < Affiliation::Member {
                self.remove_occupant(
                    &nick,
                    &Notice {
                        codes: vec![321],
                        ..Notice::unavailable()
                    },
                );
                continue;
            }
            let Some(occ) = self.occupants.get_mut(&nick) else {
                continue;
            };
            occ.role = occ.role.max(default_role(now, self.config.moderated));
            let occ = occ.clone();
            self.broadcast_presence(&occ, &Notice::default());
        }
    }
}
