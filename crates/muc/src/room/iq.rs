//! XEP-0045 §6.4–§6.5, §7.12 and §17.4: IQs to the room (dispatched by
//! payload to disco, `muc#admin`, `muc#owner`, registration, the archive,
//! ping) and to occupants: XEP-0410 self-pings are answered by the room,
//! other requests are passed to the occupant's real JID under a fresh id and
//! the response is passed back, so neither side learns the other's JID.

use std::collections::{HashMap, VecDeque};

use jid::Jid;
use minidom::Element;
use roost_core::server::iq_reply;
use roost_proto::{Condition, Elem, ElementExt, Stanza, StanzaError};

use super::Room;
use crate::disco::{feature, identity};
use crate::forms;
use crate::ns;

/// Requests between occupants awaiting their response, per room.
const MAX_PENDING_IQS: usize = 256;

/// An IQ passed from one occupant to another.
#[derive(Debug)]
struct PendingIq {
    /// The requester's id.
    id: String,
    requester: Jid,
    requester_nick: String,
    /// The bare JID that must answer.
    responder: jid::BareJid,
    responder_nick: String,
}

#[derive(Debug, Default)]
pub(crate) struct PendingIqs {
    by_id: HashMap<String, PendingIq>,
    order: VecDeque<String>,
}

impl PendingIqs {
    fn insert(&mut self, id: String, p: PendingIq) {
        self.by_id.insert(id.clone(), p);
        self.order.push_back(id);
        while self.order.len() > MAX_PENDING_IQS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    fn take(&mut self, id: &str) -> Option<PendingIq> {
        let p = self.by_id.remove(id)?;
        self.order.retain(|i| i != id);
        Some(p)
    }
}

impl Room {
    pub(super) async fn on_iq(&mut self, stanza: &Stanza, from: &Jid, nick: Option<String>) {
        if !stanza.is_iq_request() {
            if let Some(nick) = nick {
                self.iq_response(stanza, from, &nick);
            }
            return;
        }
        let result = match &nick {
            None => self.room_iq(stanza, from).await,
            Some(nick) => match self.occupant_iq(stanza, from, nick) {
                Some(result) => result,
                None => return,
            },
        };
        // The result goes before whatever the handler held back (§8.2: the
        // kicked occupant, then the moderator's result, then the others).
        self.env.out.send(iq_reply(&stanza.el, result));
    }

    /// IQs to the room itself.
    async fn room_iq(&mut self, stanza: &Stanza, from: &Jid) -> super::IqResult {
        let mut children = stanza.el.children();
        let (Some(payload), None) = (children.next(), children.next()) else {
            return Err(StanzaError::bad_request(
                "an IQ request has exactly one child",
            ));
        };
        let get = stanza.type_attr() == Some("get");
        let pns = payload.ns();
        let known = matches!(
            pns.as_str(),
            ns::DISCO_INFO
                | ns::DISCO_ITEMS
                | ns::MUC_ADMIN
                | ns::MUC_OWNER
                | ns::REGISTER
                | ns::MAM
                | ns::PING
                | ns::MODERATE
                | ns::VCARD
        );
        if !known {
            return Err(StanzaError::service_unavailable());
        }
        if !self.visible_to(&from.to_bare()) {
            return Err(StanzaError::new(Condition::ItemNotFound).with_text("no such room"));
        }
        match (get, pns.as_str(), payload.name()) {
            (true, ns::DISCO_INFO, "query") => self.disco_info(from, payload.attr("node")),
            (true, ns::DISCO_ITEMS, "query") => {
                if payload.attr("node").is_some() {
                    return Err(StanzaError::new(Condition::ItemNotFound));
                }
                Ok(Some(self.disco_items(from)))
            }
            (_, ns::MUC_ADMIN, "query") => self.admin_iq(stanza, from, payload).await,
            (_, ns::MUC_OWNER, "query") => self.owner_iq(stanza, from, payload).await,
            (_, ns::REGISTER, "query") => self.register_iq(stanza, from, payload).await,
            (_, ns::MAM, "query") => self.archive_iq(stanza, from, payload).await,
            (true, ns::PING, "ping") => Ok(None),
            (_, ns::MODERATE, "moderate") => self.moderate_iq(stanza, from, payload).await,
            (_, ns::VCARD, "vCard") => self.vcard_iq(stanza, from, payload).await,
            _ => Err(StanzaError::new(Condition::FeatureNotImplemented)),
        }
    }

    /// §6.4: identity, features and the `muc#roominfo` form; §7.12: the
    /// reserved nick on node `x-roomuser-item`.
    fn disco_info(&self, from: &Jid, node: Option<&str>) -> super::IqResult {
        match node {
            None => {}
            Some("x-roomuser-item") => {
                let mut q =
                    Element::bare("query", ns::DISCO_INFO).attr_set("node", "x-roomuser-item");
                if let Some(nick) = self.reserved_nick(&from.to_bare()) {
                    q.append_child(identity(nick));
                }
                return Ok(Some(q));
            }
            // §18.1.2: we pass every extension through.
            Some("http://jabber.org/protocol/muc#traffic") => {
                return Err(StanzaError::service_unavailable())
            }
            Some(_) => return Err(StanzaError::new(Condition::ItemNotFound)),
        }
        let c = &self.config;
        let pick = |b: bool, yes: &'static str, no: &'static str| if b { yes } else { no };
        let mut features = vec![
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            ns::MUC,
            ns::MUC_STABLE_ID,
            ns::MUC_SELF_PING,
            ns::OCCUPANT_ID,
            ns::SID,
            ns::REGISTER,
            ns::MUC_REQUEST,
            // XEP-0486 §3.1
            ns::VCARD,
            pick(c.persistent, "muc_persistent", "muc_temporary"),
            pick(c.members_only, "muc_membersonly", "muc_open"),
            pick(c.public, "muc_public", "muc_hidden"),
            pick(
                c.password.is_some(),
                "muc_passwordprotected",
                "muc_unsecured",
            ),
            pick(c.moderated, "muc_moderated", "muc_unmoderated"),
            pick(c.non_anonymous(), "muc_nonanonymous", "muc_semianonymous"),
        ];
        if c.archiving {
            // XEP-0425 §2: messages are moderated by their archive ids.
            features.extend([ns::MAM, ns::MODERATE]);
        }
        features.sort_unstable();
        let name = if c.name.is_empty() {
            self.jid.node().map(|n| n.to_string()).unwrap_or_default()
        } else {
            c.name.clone()
        };
        let subject = self
            .subject
            .as_ref()
            .map(|s| s.text.as_str())
            .unwrap_or_default();
        let occupants = self.occupants.len().to_string();
        let history = c.history_length.to_string();
        let form = Element::bare("x", ns::DATA_FORMS)
            .attr_set("type", "result")
            .child(forms::form_type(ns::MUC_ROOMINFO))
            .child(forms::field(
                "muc#roomconfig_roomname",
                "text-single",
                "Name",
                [name.as_str()],
            ))
            .child(forms::field(
                "muc#roominfo_description",
                "text-single",
                "Description",
                [c.description.as_str()],
            ))
            .child(forms::field(
                "muc#roominfo_subject",
                "text-single",
                "Current Discussion Topic",
                [subject],
            ))
            .child(forms::field(
                "muc#roominfo_occupants",
                "text-single",
                "Number of occupants",
                [occupants.as_str()],
            ))
            .child(forms::field(
                "muc#roomconfig_changesubject",
                "boolean",
                "Subject can be modified",
                [forms::bool_value(c.change_subject)],
            ))
            .child(forms::field(
                "muc#maxhistoryfetch",
                "text-single",
                "Maximum Number of History Messages Returned by Room",
                [history.as_str()],
            ));
        // XEP-0486 §3.3: the avatar's hash, for those not in the room too.
        let form = match self.avatar_hash() {
            Some(hash) => form.child(forms::field(
                "muc#roominfo_avatarhash",
                "text-multi",
                "Avatar Hash",
                [hash],
            )),
            None => form,
        };
        Ok(Some(
            Element::bare("query", ns::DISCO_INFO)
                .child(identity(&name))
                .children_from(features.into_iter().map(feature))
                .child(form),
        ))
    }

    /// §6.5: occupants are listed to occupants only (advised private).
    fn disco_items(&self, from: &Jid) -> Element {
        let mut q = Element::bare("query", ns::DISCO_ITEMS);
        if self.occupants.by_jid(from).is_some() {
            for o in self.occupants.iter() {
                q.append_child(
                    Element::bare("item", ns::DISCO_ITEMS)
                        .attr_set("jid", self.occupant_jid(&o.nick))
                        .attr_set("name", o.nick.as_str()),
                );
            }
        }
        q
    }

    /// A request to an occupant JID. `None` when it was passed on (its
    /// response comes later).
    fn occupant_iq(&mut self, stanza: &Stanza, from: &Jid, nick: &str) -> Option<super::IqResult> {
        if !self.visible_to(&from.to_bare()) {
            return Some(Err(
                StanzaError::new(Condition::ItemNotFound).with_text("no such room")
            ));
        }
        let Some(requester) = self.occupants.by_jid(from) else {
            // XEP-0410 §3: "you are not joined"; §17.4: nothing for others.
            return Some(Err(
                StanzaError::new(Condition::NotAcceptable).with_text("you are not in the room")
            ));
        };
        let is_ping = stanza
            .el
            .children()
            .next()
            .is_some_and(|p| p.is("ping", ns::PING));
        if is_ping && requester.nick == nick {
            // XEP-0410 §4: self-ping answered by the room.
            return Some(Ok(None));
        }
        let Some(target) = self.occupants.get(nick) else {
            return Some(Err(
                StanzaError::new(Condition::ItemNotFound).with_text("no such occupant")
            ));
        };
        let id = roost_proto::id::random_token(16);
        let mut out = stanza.el.clone();
        out.set("id", id.as_str());
        out.set("from", self.occupant_jid(&requester.nick));
        out.set("to", target.jid.as_str());
        let pending = PendingIq {
            id: stanza.id().unwrap_or_default().to_string(),
            // The session that asked, of the several behind a nick.
            requester: from.clone(),
            requester_nick: requester.nick.clone(),
            responder: target.bare.clone(),
            responder_nick: target.nick.clone(),
        };
        self.pending_iqs.insert(id, pending);
        self.send(out);
        None
    }

    /// The response to a request passed on by `occupant_iq`.
    fn iq_response(&mut self, stanza: &Stanza, from: &Jid, nick: &str) {
        let Some(id) = stanza.id() else {
            return;
        };
        let matches = self
            .pending_iqs
            .by_id
            .get(id)
            .is_some_and(|p| p.responder == from.to_bare() && p.requester_nick == nick);
        if !matches {
            return;
        }
        let Some(p) = self.pending_iqs.take(id) else {
            return;
        };
        let mut out = stanza.el.clone();
        out.set("id", p.id.as_str());
        out.set("from", self.occupant_jid(&p.responder_nick));
        out.set("to", p.requester.as_str());
        self.send(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_requests_are_bounded_and_taken_once() {
        let mut p = PendingIqs::default();
        let jid = Jid::new("a@b.example/c").unwrap();
        for i in 0..(MAX_PENDING_IQS + 5) {
            p.insert(
                format!("id{i}"),
                PendingIq {
                    id: format!("orig{i}"),
                    requester: jid.clone(),
                    requester_nick: "a".into(),
                    responder: jid.to_bare(),
                    responder_nick: "b".into(),
                },
            );
        }
        assert_eq!(p.by_id.len(), MAX_PENDING_IQS);
        assert!(p.take("id0").is_none());
        let last = format!("id{}", MAX_PENDING_IQS + 4);
        assert_eq!(
            p.take(&last).map(|x| x.id),
            Some(format!("orig{}", MAX_PENDING_IQS + 4))
        );
        assert!(p.take(&last).is_none());
    }
}
