//! XEP-0045 §7.13 (a visitor requests voice) and §8.6 (moderators approve
//! or deny): the request becomes an approval form sent to every moderator;
//! a moderator who submits it with `muc#request_allow` true grants the
//! occupant the participant role (§8.3), with the usual presence update.

use jid::Jid;
use minidom::Element;
use roost_proto::{Condition, Elem, Stanza, StanzaError};

use super::affiliation::Role;
use super::Room;
use crate::forms::{self, Form};
use crate::ns;

/// Open requests remembered per room, so a visitor cannot flood the
/// moderators: a second request while one is pending is not passed on.
pub(super) const MAX_PENDING: usize = 256;

impl Room {
    /// A `muc#request` form sent to the room: a visitor's request, or a
    /// moderator's answer to one.
    pub(super) fn voice_form(&mut self, stanza: &Stanza, from: &Jid, x: &Element) {
        let form = Form::parse(x);
        let Some(occ) = self.occupants.by_jid(from).cloned() else {
            return self.error(
                stanza,
                StanzaError::new(Condition::NotAcceptable).with_text("you are not in the room"),
            );
        };
        if form.value("muc#request_allow").is_some() {
            if occ.role != Role::Moderator {
                return self.error(
                    stanza,
                    StanzaError::new(Condition::Forbidden)
                        .with_text("only moderators answer voice requests"),
                );
            }
            return self.voice_answer(stanza, &occ.nick, &form);
        }
        if form.value("muc#role").map(str::trim) != Some("participant") {
            return self.error(
                stanza,
                StanzaError::bad_request("a voice request asks for the participant role"),
            );
        }
        if occ.role != Role::Visitor {
            // Nothing to grant: participants and moderators have voice.
            return;
        }
        if self.voice_requests.contains(&occ.nick) {
            return;
        }
        if self.voice_requests.len() >= MAX_PENDING {
            return self.error(
                stanza,
                StanzaError::new(Condition::ResourceConstraint)
                    .with_text("too many voice requests are waiting"),
            );
        }
        self.voice_requests.insert(occ.nick.clone());
        let approval = Element::bare("message", ns::CLIENT)
            .attr_set("from", self.jid.as_str())
            .attr_set("id", roost_proto::id::random_token(12))
            .child(
                Element::bare("x", ns::DATA_FORMS)
                    .attr_set("type", "form")
                    .child(Element::bare("title", ns::DATA_FORMS).text_node("Voice request"))
                    .child(Element::bare("instructions", ns::DATA_FORMS).text_node(
                        "To grant voice to this occupant, check the box and submit the form.",
                    ))
                    .child(forms::form_type(ns::MUC_REQUEST))
                    .child(forms::field(
                        "muc#role",
                        "list-single",
                        "Requested role",
                        ["participant"],
                    ))
                    .child(forms::field(
                        "muc#jid",
                        "jid-single",
                        "User ID",
                        [occ.jid.as_str()],
                    ))
                    .child(forms::field(
                        "muc#roomnick",
                        "text-single",
                        "Room Nickname",
                        [occ.nick.as_str()],
                    ))
                    .child(forms::field(
                        "muc#request_allow",
                        "boolean",
                        "Grant voice to this person?",
                        ["false"],
                    )),
            );
        for m in self.occupants.iter().filter(|o| o.role == Role::Moderator) {
            self.send_to_occupant(m, &approval);
        }
    }

    /// §8.6: the moderator's submitted approval form.
    fn voice_answer(&mut self, stanza: &Stanza, moderator: &str, form: &Form) {
        if form.kind != "submit" {
            return self.error(stanza, StanzaError::bad_request("submit the approval form"));
        }
        let nick = match form.value("muc#roomnick").map(str::trim) {
            Some(n) if !n.is_empty() => Some(n.to_string()),
            _ => form
                .value("muc#jid")
                .and_then(|j| Jid::new(j.trim()).ok())
                .and_then(|j| self.occupants.by_jid(&j).map(|o| o.nick.clone())),
        };
        let Some(nick) = nick else {
            return self.error(stanza, StanzaError::bad_request("no occupant named"));
        };
        let allow = form
            .value("muc#request_allow")
            .and_then(forms::parse_bool)
            .unwrap_or(false);
        // Answered either way: a denied request may be made again.
        self.voice_requests.remove(&nick);
        if !allow {
            return;
        }
        let Some(occ) = self.occupants.get(&nick) else {
            return self.error(
                stanza,
                StanzaError::new(Condition::ItemNotFound).with_text("no such occupant"),
            );
        };
        if occ.role == Role::Visitor {
            self.apply_role(&nick, Role::Participant, None, Some(moderator.to_string()));
        }
    }
}
