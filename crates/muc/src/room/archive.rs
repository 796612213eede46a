//! XEP-0313 on the room JID (§6.1.1 of XEP-0313: MUC archives) with
//! XEP-0059 RSM paging: the room's archive, which is also where join history
//! comes from after a restart. Messages are stored by `message.rs` with the
//! room's XEP-0359 stanza-id; `with` is the sender's occupant JID.

use jid::Jid;
use minidom::Element;
use roost_proto::{datetime, Condition, Elem, Stanza, StanzaError};
use roost_store::ArchiveQuery;

use super::affiliation::Affiliation;
use super::{time_of, IqResult, Room};
use crate::ns;

/// The query a `<query xmlns='urn:xmpp:mam:2'/>` asks for; in a room
/// archive `with` must be an occupant JID of this room.
fn parse_query(query: &Element, room: &str) -> Result<ArchiveQuery, StanzaError> {
    roost_core::mam_query::parse(query, |j: &Jid| {
        if j.to_bare().as_str() != room || j.resource().is_none() {
            return Err(StanzaError::bad_request(
                "with must be an occupant JID of this room",
            ));
        }
        Ok(())
    })
}

impl Room {
    /// Who may read the archive: not outcasts; for members-only rooms
    /// members; for password-protected rooms occupants and members.
    fn may_read_archive(&self, from: &Jid) -> bool {
        let affiliation = self.affiliation_of(&from.to_bare());
        let member = affiliation >= Affiliation::Member;
        let occupant = self.occupants.by_jid(from).is_some();
        affiliation != Affiliation::Outcast
            && (!self.config.members_only || member)
            && (self.config.password.is_none() || member || occupant)
    }

    pub(super) async fn archive_iq(
        &mut self,
        stanza: &Stanza,
        from: &Jid,
        query: &Element,
    ) -> IqResult {
        if !self.may_read_archive(from) {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("you may not read this room's archive"));
        }
        match stanza.type_attr() {
            Some("get") => Ok(Some(roost_core::mam_query::form())),
            Some("set") => self.archive_query(from, query).await,
            _ => Err(StanzaError::bad_request("get or set")),
        }
    }

    /// XEP-0313 §4: one page as result messages, then `<fin/>`.
    async fn archive_query(&mut self, from: &Jid, query: &Element) -> IqResult {
        let q = parse_query(query, self.jid.as_str())?;
        let page = self
            .shared
            .archive
            .query_archive(&self.jid, &q)
            .await
            .map_err(|e| {
                tracing::error!(room = %self.jid, error = %e, "archive query failed");
                StanzaError::internal()
            })?
            .ok_or_else(|| {
                StanzaError::new(Condition::ItemNotFound).with_text("no message with that id")
            })?;
        let queryid = query.attr("queryid");
        let mut messages = page.messages;
        if query.has_child("flip-page", ns::MAM) {
            messages.reverse();
        }
        for m in &messages {
            let Ok(original) = m.xml.parse::<Element>() else {
                tracing::warn!(room = %self.jid, id = %m.id, "unreadable archived message");
                continue;
            };
            self.send(
                Element::bare("message", ns::CLIENT)
                    .attr_set("from", self.jid.as_str())
                    .attr_set("to", from.as_str())
                    .attr_set("id", roost_proto::id::random_token(12))
                    .child(
                        Element::bare("result", ns::MAM)
                            .attr_opt("queryid", queryid)
                            .attr_set("id", m.id.as_str())
                            .child(
                                Element::bare("forwarded", ns::FORWARD)
                                    .child(
                                        Element::bare("delay", ns::DELAY).attr_set(
                                            "stamp",
                                            datetime::to_xep82(time_of(m.stamp_ms)),
                                        ),
                                    )
                                    .child(original),
                            ),
                    ),
            );
        }
        let mut set = Element::bare("set", ns::RSM);
        if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
            set.append_child(Element::bare("first", ns::RSM).text_node(first.id.as_str()));
            set.append_child(Element::bare("last", ns::RSM).text_node(last.id.as_str()));
        }
        let fin = Element::bare("fin", ns::MAM)
            .attr_opt("complete", page.complete.then_some("true"))
            .child(set);
        Ok(Some(fin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(xml: &str) -> Result<ArchiveQuery, StanzaError> {
        parse_query(&xml.parse::<Element>().unwrap(), "room@muc.example")
    }

    #[test]
    fn rsm_before_pages_from_the_end() {
        let q = query(
            "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>\
             <max>10</max><before/></set></query>",
        )
        .unwrap();
        assert!(q.from_end);
        assert_eq!(q.max, 10);
        assert_eq!(q.before_id, None);
        let q = query(
            "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>\
             <before>abc</before></set></query>",
        )
        .unwrap();
        assert!(q.from_end);
        assert_eq!(q.before_id.as_deref(), Some("abc"));
        assert_eq!(q.max, roost_core::mam_query::DEFAULT_PAGE);
    }

    #[test]
    fn form_fields_are_read_and_bad_ones_refused() {
        let q = query(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>\
             <field var='start'><value>2001-09-09T01:46:40Z</value></field>\
             <field var='with'><value>room@muc.example/crone</value></field>\
             </x><set xmlns='http://jabber.org/protocol/rsm'><max>100000</max></set></query>",
        )
        .unwrap();
        assert_eq!(q.start_ms, Some(1_000_000_000_000));
        assert_eq!(q.with.as_deref(), Some("room@muc.example/crone"));
        assert_eq!(q.max, roost_core::mam_query::MAX_PAGE);
        let bad_date = query(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='end'><value>yesterday</value></field></x></query>",
        );
        assert_eq!(bad_date.unwrap_err().condition, Condition::BadRequest);
        let other_room = query(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='with'><value>other@muc.example/x</value></field></x></query>",
        );
        assert_eq!(other_room.unwrap_err().condition, Condition::BadRequest);
        let unknown = query(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='fulltext'><value>x</value></field></x></query>",
        );
        assert_eq!(
            unknown.unwrap_err().condition,
            Condition::FeatureNotImplemented
        );
    }
}
