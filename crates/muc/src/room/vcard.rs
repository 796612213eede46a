//! XEP-0054 vcard-temp on room JIDs and XEP-0486 MUC Avatars: anyone who
//! may see the room reads its vCard (an empty one when none is set), owners
//! set it; the avatar's XEP-0153 hash goes into the room's
//! `muc#roominfo_avatarhash` (disco#info), and occupants are told of the
//! change with status 104 so that they look again. Setting an empty vCard
//! removes the avatar. Stored with the room's settings.

use jid::Jid;
use minidom::Element;
use roost_proto::vcard_photo::Photo;
use roost_proto::{Condition, Elem, ElementExt, Stanza, StanzaError};

use super::affiliation::Affiliation;
use super::{IqResult, Room};
use crate::ns;

/// Largest room vCard stored, in bytes of XML (avatars included).
const MAX_VCARD_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct RoomVcard {
    pub xml: String,
    /// XEP-0153 hash of its photo, if it has one.
    pub avatar_hash: Option<String>,
}

impl RoomVcard {
    pub fn parse(xml: &str) -> Option<RoomVcard> {
        let el = xml.parse::<Element>().ok()?;
        Some(RoomVcard {
            xml: xml.to_string(),
            avatar_hash: Photo::of_vcard(&el).map(|p| p.hash()),
        })
    }
}

impl Room {
    pub(super) fn avatar_hash(&self) -> Option<&str> {
        self.vcard.as_ref().and_then(|v| v.avatar_hash.as_deref())
    }

    pub(super) async fn vcard_iq(
        &mut self,
        stanza: &Stanza,
        from: &Jid,
        vcard: &Element,
    ) -> IqResult {
        match stanza.type_attr() {
            Some("get") => Ok(Some(
                self.vcard
                    .as_ref()
                    .and_then(|v| v.xml.parse::<Element>().ok())
                    .unwrap_or_else(|| Element::bare("vCard", ns::VCARD)),
            )),
            Some("set") => {
                if self.affiliation_of(&from.to_bare()) != Affiliation::Owner {
                    // XEP-0486 §3.2
                    return Err(StanzaError::new(Condition::Forbidden)
                        .with_text("only owners may set the room's vCard"));
                }
                let xml = vcard.to_xml();
                if xml.len() > MAX_VCARD_BYTES {
                    return Err(StanzaError::new(Condition::NotAcceptable)
                        .with_text("the vCard is too large"));
                }
                let before = self.avatar_hash().map(str::to_string);
                let empty = vcard.children().next().is_none();
                let old = std::mem::replace(
                    &mut self.vcard,
                    (!empty).then(|| RoomVcard::parse(&xml)).flatten(),
                );
                let config = self.config.clone();
                if let Err(e) = self.save_settings(&config, self.locked).await {
                    self.vcard = old;
                    return Err(e);
                }
                if self.avatar_hash() != before.as_deref() {
                    self.announce_avatar_change();
                }
                Ok(None)
            }
            _ => Err(StanzaError::bad_request("get or set")),
        }
    }

    /// XEP-0486 §3.2: status 104, as for a configuration change.
    fn announce_avatar_change(&self) {
        let m = Element::bare("message", ns::CLIENT)
            .attr_set("type", "groupchat")
            .attr_set("id", roost_proto::id::random_token(12))
            .attr_set("from", self.jid.as_str())
            .child(Element::bare("x", ns::MUC_USER).child(super::occupant::status(104)));
        for occ in self.occupants.iter() {
            self.send_to_occupant(occ, &m);
        }
    }
}
