//! XEP-0045 §5: roles and affiliations, their ranks, the default role of
//! each affiliation, and the room's affiliation list (kept in memory and
//! written through to storage), including nicks reserved by registration
//! (§7.10) and domain bans (§9.2).

use jid::BareJid;
use roost_proto::StanzaError;
use roost_store::{MucAffiliation, StoredAffiliation};

use super::Room;

/// §5.2, in rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }

    fn from_stored(a: MucAffiliation) -> Affiliation {
        match a {
            MucAffiliation::Owner => Affiliation::Owner,
            MucAffiliation::Admin => Affiliation::Admin,
            MucAffiliation::Member => Affiliation::Member,
            MucAffiliation::Outcast => Affiliation::Outcast,
        }
    }

    fn to_stored(self) -> Option<MucAffiliation> {
        match self {
            Affiliation::Owner => Some(MucAffiliation::Owner),
            Affiliation::Admin => Some(MucAffiliation::Admin),
            Affiliation::Member => Some(MucAffiliation::Member),
            Affiliation::Outcast => Some(MucAffiliation::Outcast),
            Affiliation::None => None,
        }
    }
}

/// §5.1, in rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }
}

/// §5.1.2: the role an affiliation enters with.
pub(crate) fn default_role(affiliation: Affiliation, moderated: bool) -> Role {
    match affiliation {
        Affiliation::Owner | Affiliation::Admin => Role::Moderator,
        Affiliation::Member => Role::Participant,
        Affiliation::None if moderated => Role::Visitor,
        Affiliation::None => Role::Participant,
        Affiliation::Outcast => Role::None,
    }
}

/// One entry of the affiliation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AffiliationEntry {
    pub affiliation: Affiliation,
    /// The nick reserved by this bare JID (§7.10, §9.3).
    pub nick: Option<String>,
    pub reason: Option<String>,
}

impl AffiliationEntry {
    pub fn from_stored(s: StoredAffiliation) -> (BareJid, AffiliationEntry) {
        (
            s.jid,
            AffiliationEntry {
                affiliation: Affiliation::from_stored(s.affiliation),
                nick: s.nick,
                reason: s.reason,
            },
        )
    }
}

impl Room {
    /// §5.2 for a bare JID; §9.2: a ban of a domain covers its users.
    pub(super) fn affiliation_of(&self, bare: &BareJid) -> Affiliation {
        if let Some(e) = self.affiliations.get(bare) {
            return e.affiliation;
        }
        if bare.node().is_some() {
            let domain = BareJid::from_parts(None, bare.domain());
            if self
                .affiliations
                .get(&domain)
                .is_some_and(|e| e.affiliation == Affiliation::Outcast)
            {
                return Affiliation::Outcast;
            }
        }
        Affiliation::None
    }

    /// The nick `bare` reserved, if any.
    pub(super) fn reserved_nick(&self, bare: &BareJid) -> Option<&str> {
        self.affiliations.get(bare).and_then(|e| e.nick.as_deref())
    }

    /// Who reserved `nick`, if anyone (§7.2.8: reserved nicks conflict).
    pub(super) fn nick_reserved_by(&self, nick: &str) -> Option<&BareJid> {
        self.affiliations
            .iter()
            .find(|(_, e)| e.nick.as_deref() == Some(nick))
            .map(|(jid, _)| jid)
    }

    pub(super) fn owner_count(&self) -> usize {
        self.affiliations
            .values()
            .filter(|e| e.affiliation == Affiliation::Owner)
            .count()
    }

    /// Write an affiliation through to storage, then to memory. "none"
    /// removes the entry with its reserved nick.
    pub(super) async fn put_affiliation(
        &mut self,
        jid: &BareJid,
        entry: AffiliationEntry,
    ) -> Result<(), StanzaError> {
        let result = match entry.affiliation.to_stored() {
            Some(affiliation) => self
                .shared
                .rooms_store
                .set_room_affiliation(
                    &self.jid,
                    &StoredAffiliation {
                        jid: jid.clone(),
                        affiliation,
                        nick: entry.nick.clone(),
                        reason: entry.reason.clone(),
                    },
                )
                .await
                .map(drop),
            None => self
                .shared
                .rooms_store
                .remove_room_affiliation(&self.jid, jid)
                .await
                .map(drop),
        };
        if let Err(e) = result {
            tracing::error!(room = %self.jid, error = %e, "storing an affiliation failed");
            return Err(StanzaError::internal());
        }
        if entry.affiliation == Affiliation::None {
            self.affiliations.remove(jid);
        } else {
            self.affiliations.insert(jid.clone(), entry);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_hierarchy() {
        assert!(Affiliation::Owner > Affiliation::Admin);
        assert!(Affiliation::Member > Affiliation::None);
        assert!(Affiliation::None > Affiliation::Outcast);
        assert!(Role::Moderator > Role::Participant);
        assert!(Role::Visitor > Role::None);
    }

    #[test]
    fn default_roles_match_section_5_1_2() {
        assert_eq!(default_role(Affiliation::None, true), Role::Visitor);
        assert_eq!(default_role(Affiliation::None, false), Role::Participant);
        assert_eq!(default_role(Affiliation::Member, true), Role::Participant);
        assert_eq!(default_role(Affiliation::Admin, false), Role::Moderator);
        assert_eq!(default_role(Affiliation::Owner, true), Role::Moderator);
    }

    #[test]
    fn names_round_trip() {
        for a in [
            Affiliation::Outcast,
            Affiliation::None,
            Affiliation::Member,
            Affiliation::Admin,
            Affiliation::Owner,
        ] {
            assert_eq!(Affiliation::parse(a.as_str()), Some(a));
        }
        for r in [
            Role::None,
            Role::Visitor,
            Role::Participant,
            Role::Moderator,
        ] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("king"), None);
    }
}
