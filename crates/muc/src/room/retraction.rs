//! XEP-0425 Moderated Message Retraction (`urn:xmpp:message-moderate:1`,
//! with XEP-0424 `urn:xmpp:message-retract:1`): a moderator retracts an
//! archived groupchat message for everyone; the room tells every occupant,
//! keeps that announcement in its archive for clients catching up, and
//! replaces the message in its archive and join history with a tombstone.
//! Also XEP-0424 retractions by the author: the room relays them like any
//! message and tombstones the author's own message.

use std::time::SystemTime;

use jid::Jid;
use minidom::Element;
use roost_proto::retraction::{self, Moderated, Retraction};
use roost_proto::{datetime, Condition, Elem, ElementExt, Stanza, StanzaError};
use roost_store::{ArchiveQuery, ArchivedMessage};

use super::affiliation::Role;
use super::{millis, IqResult, Room};
use crate::ns;

impl Room {
    /// XEP-0425 §3: `<moderate id='stanza-id'><retract/><reason/></moderate>`.
    pub(super) async fn moderate_iq(
        &mut self,
        stanza: &Stanza,
        from: &Jid,
        payload: &Element,
    ) -> IqResult {
        if stanza.type_attr() != Some("set") {
            return Err(StanzaError::bad_request("moderation is an IQ of type set"));
        }
        let Some(moderator) = self.occupants.by_jid(from).cloned() else {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only moderators in the room may moderate messages"));
        };
        if moderator.role != Role::Moderator {
            // XEP-0425 §3.2
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only moderators may moderate other participants' messages"));
        }
        let Some(id) = payload.attr("id").filter(|i| !i.is_empty()) else {
            return Err(StanzaError::bad_request(
                "the id of the message to moderate is missing",
            ));
        };
        if !payload.has_child("retract", ns::RETRACT) {
            return Err(StanzaError::new(Condition::FeatureNotImplemented)
                .with_text("retraction is the only moderation action"));
        }
        let reason = payload
            .get_child("reason", ns::MODERATE)
            .map(|r| r.text())
            .filter(|r| !r.trim().is_empty());
        let r = Retraction {
            id: id.to_string(),
            moderated: Some(Moderated {
                by: Some(self.occupant_jid(&moderator.nick)),
                occupant_id: Some(moderator.occupant_id.clone()),
            }),
            reason,
        };
        match self.tombstone(&r, None).await? {
            Tombstoned::Done | Tombstoned::Already => {}
            Tombstoned::NotFound | Tombstoned::NotTheAuthor => {
                return Err(StanzaError::new(Condition::ItemNotFound)
                    .with_text("no message with that id in this room's archive"));
            }
        }
        self.announce_moderation(&r);
        Ok(None)
    }

    /// XEP-0425 §3.1: the room's message to everyone, archived with a
    /// stanza-id of its own so that clients syncing later apply it too.
    fn announce_moderation(&mut self, r: &Retraction) {
        let mut out = r.announcement();
        out.set("from", self.jid.as_str());
        out.set("id", roost_proto::id::random_token(16));
        if self.config.archiving {
            let stanza_id = roost_proto::id::archive_id();
            out.append_child(
                Element::bare("stanza-id", ns::SID)
                    .attr_set("id", stanza_id.clone())
                    .attr_set("by", self.jid.as_str()),
            );
            let message = ArchivedMessage {
                id: stanza_id,
                with: self.jid.to_string(),
                stamp_ms: millis(SystemTime::now()),
                xml: out.to_xml(),
            };
            self.shared.archive.archive_queued(&self.jid, message);
        }
        for o in self.occupants.iter() {
            self.send_to_occupant(o, &out);
        }
    }

    /// XEP-0424 in a room: an occupant retracts one of its own messages
    /// (same XEP-0421 occupant-id); the retraction itself is reflected by
    /// `groupchat` like any message.
    pub(super) async fn author_retraction(&mut self, el: &Element, occupant_id: &str) {
        let Some(r) = Retraction::of_message(el) else {
            return;
        };
        let r = Retraction {
            moderated: None,
            ..r
        };
        if let Err(e) = self.tombstone(&r, Some(occupant_id)).await {
            tracing::warn!(room = %self.jid, error = ?e.condition, "retraction not stored");
        }
    }

    /// Replace the retracted message in the archive and in the join history
    /// (XEP-0425 §5). With `author`, only a message of that occupant-id.
    async fn tombstone(
        &mut self,
        r: &Retraction,
        author: Option<&str>,
    ) -> Result<Tombstoned, StanzaError> {
        let q = ArchiveQuery {
            ids: vec![r.id.clone()],
            max: 1,
            ..ArchiveQuery::default()
        };
        let found = self
            .shared
            .archive
            .query_archive(&self.jid, &q)
            .await
            .map_err(|e| {
                tracing::error!(room = %self.jid, error = %e, "archive lookup failed");
                StanzaError::internal()
            })?
            .and_then(|page| page.messages.into_iter().next());
        let Some(original) = found.and_then(|m| m.xml.parse::<Element>().ok()) else {
            return Ok(Tombstoned::NotFound);
        };
        if retraction::is_tombstone(&original) {
            return Ok(Tombstoned::Already);
        }
        // Only messages people wrote: not the room's own announcements.
        if original.attr("from") == Some(self.jid.as_str()) {
            return Ok(Tombstoned::NotFound);
        }
        if author.is_some() && retraction::occupant_id(&original).as_deref() != author {
            return Ok(Tombstoned::NotTheAuthor);
        }
        let stamp = datetime::to_xep82(SystemTime::now());
        let tombstone = r.tombstone(&original, &stamp);
        let replaced = self
            .shared
            .archive
            .replace_archived(&self.jid, &r.id, &tombstone.to_xml())
            .await
            .map_err(|e| {
                tracing::error!(room = %self.jid, error = %e, "storing a tombstone failed");
                StanzaError::internal()
            })?;
        if !replaced {
            return Ok(Tombstoned::NotFound);
        }
        let room = self.jid.to_string();
        self.history.replace_by_stanza_id(&room, &r.id, &tombstone);
        Ok(Tombstoned::Done)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tombstoned {
    Done,
    Already,
    NotFound,
    NotTheAuthor,
}
