//! XEP-0313 on the room JID (§6.1.1 of XEP-0313: MUC archives) with
//! XEP-0059 RSM paging: the room's archive, which is also where join history
//! comes from after a restart. Messages are stored by `message.rs` with the
//! room's XEP-0359 stanza-id; `with` is the sender's occupant JID.

use jid::Jid;
use minidom::Element;
use roost_proto::{datetime, Condition, Elem, Stanza, StanzaError};
use roost_store::ArchiveQuery;

use super::affiliation::Affiliation;
use super::{millis, time_of, IqResult, Room};
use crate::forms::{self, Form};
use crate::ns;

/// Page size when the client gives none, and the most returned at once.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 250;

fn ms_of(value: &str) -> Result<i64, StanzaError> {
    datetime::parse_xep82(value)
        .map(millis)
        .ok_or_else(|| StanzaError::bad_request("invalid timestamp"))
}

/// The query a `<query xmlns='urn:xmpp:mam:2'/>` asks for.
fn parse_query(query: &Element, room: &str) -> Result<ArchiveQuery, StanzaError> {
    let mut q = ArchiveQuery {
        max: DEFAULT_PAGE,
        ..ArchiveQuery::default()
    };
    if let Some(x) = query.get_child("x", ns::DATA_FORMS) {
        let form = Form::parse(x);
        for (var, values) in &form.fields {
            let value = values.first().map(|v| v.trim()).unwrap_or_default();
            match var.as_str() {
                "FORM_TYPE" => {
                    if value != ns::MAM {
                        return Err(StanzaError::bad_request("unknown FORM_TYPE"));
                    }
                }
                // In a room archive, `with` is an occupant JID.
                "with" => {
                    let j =
                        Jid::new(value).map_err(|_| StanzaError::new(Condition::JidMalformed))?;
                    if j.to_bare().as_str() != room || j.resource().is_none() {
                        return Err(StanzaError::bad_request(
                            "with must be an occupant JID of this room",
                        ));
                    }
                    q.with = Some(j.to_string());
                }
                "start" => q.start_ms = Some(ms_of(value)?),
                "end" => q.end_ms = Some(ms_of(value)?),
                "after-id" => q.after_id = Some(value.to_string()),
                "before-id" => q.before_id = Some(value.to_string()),
                "ids" => q.ids = values.iter().map(|v| v.trim().to_string()).collect(),
                other => {
                    return Err(StanzaError::new(Condition::FeatureNotImplemented)
                        .with_text(format!("unsupported field {other}")))
                }
            }
        }
    }
    if let Some(set) = query.get_child("set", ns::RSM) {
        if let Some(max) = set.get_child("max", ns::RSM) {
            q.max = max
                .text()
                .trim()
                .parse::<usize>()
                .map_err(|_| StanzaError::bad_request("max is not a number"))?;
        }
        if let Some(after) = set.get_child("after", ns::RSM) {
            q.after_id = Some(after.text().trim().to_string());
        }
        if let Some(before) = set.get_child("before", ns::RSM) {
            // XEP-0059 §2.5: an empty <before/> asks for the last page.
            let id = before.text().trim().to_string();
            q.from_end = true;
            if !id.is_empty() {
                q.before_id = Some(id);
            }
        }
    }
    if q.before_id.is_some() {
        q.from_end = true;
    }
    q.max = q.max.min(MAX_PAGE);
    Ok(q)
}

/// XEP-0313 §4.1.1: the fields a client may use.
fn query_form() -> Element {
    Element::bare("query", ns::MAM).child(
        Element::bare("x", ns::DATA_FORMS)
            .attr_set("type", "form")
            .child(forms::form_type(ns::MAM))
            .child(forms::field("with", "jid-single", "", []))
            .child(forms::field("start", "text-single", "", []))
            .child(forms::field("end", "text-single", "", []))
            .child(forms::field("before-id", "text-single", "", []))
            .child(forms::field("after-id", "text-single", "", []))
            .child(forms::field("ids", "text-multi", "", [])),
    )
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
            Some("get") => Ok(Some(query_form())),
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
        assert_eq!(q.max, DEFAULT_PAGE);
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
        assert_eq!(q.max, MAX_PAGE);
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
