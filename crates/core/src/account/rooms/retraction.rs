//! XEP-0424/XEP-0425 for account-based MUC joining (ACCOUNT-MUC rule 14):
//! when a room retracts a message (a moderator's, announced by the room
//! itself) or an author retracts their own (same XEP-0421 occupant-id),
//! the copy in the account's personal archive becomes the same tombstone
//! as in the room's archive. The retraction itself is forked to the joined
//! sessions and archived like any groupchat message.

use jid::BareJid;
use minidom::Element;
use roost_proto::retraction::{self, Retraction};
use roost_proto::{datetime, ElementExt};
use roost_store::ArchiveQuery;

use crate::account::Account;

impl Account {
    pub(super) async fn apply_room_retraction(&mut self, room: &BareJid, el: &Element) {
        if !self.server.config.archive.enabled {
            return;
        }
        let Some(r) = Retraction::of_message(el) else {
            return;
        };
        // XEP-0425 §6: a moderation counts only from the room itself; an
        // author's retraction only for that author's message.
        let author = match &r.moderated {
            Some(_) if retraction::from_room(el, room.as_str()) => None,
            Some(_) => return,
            None => match retraction::occupant_id(el) {
                Some(id) => Some(id),
                None => return,
            },
        };
        let q = ArchiveQuery {
            ids: vec![r.id.clone()],
            max: 1,
            ..ArchiveQuery::default()
        };
        let archive = &self.server.stores.archive;
        let stored = match archive.query_archive(&self.jid, &q).await {
            Ok(page) => page.and_then(|p| p.messages.into_iter().next()),
            Err(e) => {
                tracing::error!(account = %self.jid, error = %e, "archive lookup failed");
                return;
            }
        };
        let Some(stored) = stored else {
            return;
        };
        // The copy must be this room's message (its stanza-id is the key).
        let in_room = stored
            .with
            .split_once('/')
            .is_some_and(|(bare, _)| bare == room.as_str());
        let Ok(original) = stored.xml.parse::<Element>() else {
            return;
        };
        if !in_room
            || retraction::is_tombstone(&original)
            || author.is_some_and(|a| retraction::occupant_id(&original).as_deref() != Some(&a))
        {
            return;
        }
        let stamp = datetime::to_xep82(std::time::SystemTime::now());
        let tombstone = r.tombstone(&original, &stamp);
        if let Err(e) = archive
            .replace_archived(&self.jid, &r.id, &tombstone.to_xml())
            .await
        {
            tracing::error!(account = %self.jid, error = %e, "storing a tombstone failed");
        }
    }
}
