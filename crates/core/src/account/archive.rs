//! XEP-0313 Message Archive Management for the account: one-to-one messages
//! are archived on arrival and on sending, inbound ones stamped with an
//! XEP-0359 stanza-id; queries (with RSM paging, XEP-0059), preferences and
//! metadata are answered here, in the account task, so that the result
//! messages reach the session before the IQ result.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jid::Jid;
use minidom::Element;
use roost_proto::{datetime, ns, Condition, Elem, ElementExt, Stanza, StanzaError};
use roost_store::ArchivedMessage;

use super::Account;

const PREFS_KEY: &str = "mam-prefs";
/// XEP-0313 §5.2 preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    pub default: String,
    pub always: Vec<String>,
    pub never: Vec<String>,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            default: "always".into(),
            always: Vec::new(),
            never: Vec::new(),
        }
    }
}

impl Prefs {
    fn to_element(&self) -> Element {
        let list = |name: &str, jids: &[String]| {
            Element::bare(name, ns::MAM).children_from(
                jids.iter()
                    .map(|j| Element::bare("jid", ns::MAM).text_node(j.clone())),
            )
        };
        Element::bare("prefs", ns::MAM)
            .attr_set("default", self.default.clone())
            .child(list("always", &self.always))
            .child(list("never", &self.never))
    }

    fn from_element(el: &Element) -> Result<Prefs, StanzaError> {
        let default = el.attr("default").unwrap_or("always").to_string();
        if !matches!(default.as_str(), "always" | "never" | "roster") {
            return Err(StanzaError::bad_request(
                "default must be always, never or roster",
            ));
        }
        // XEP-0313 §6.1: JIDs are compared as JIDs, so they are kept in
        // their normalised (stringprep) form, and one that is not a JID is
        // refused rather than stored as text that never matches.
        let list = |name: &str| -> Result<Vec<String>, StanzaError> {
            let mut out: Vec<String> = Vec::new();
            for j in el
                .get_child(name, ns::MAM)
                .into_iter()
                .flat_map(|l| l.children())
                .filter(|c| c.name() == "jid")
            {
                let jid = Jid::new(j.text().trim()).map_err(|_| {
                    StanzaError::new(Condition::JidMalformed)
                        .with_text("a preference names something that is not a JID")
                })?;
                let text = jid.to_string();
                if !out.contains(&text) {
                    out.push(text);
                }
            }
            Ok(out)
        };
        Ok(Prefs {
            default,
            always: list("always")?,
            never: list("never")?,
        })
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn stamp_of(ms: i64) -> String {
    datetime::to_xep82(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// XEP-0313 §5.1.1: what is worth keeping.
pub fn archivable(msg: &Element) -> bool {
    matches!(msg.attr("type"), None | Some("chat") | Some("normal"))
        && msg.has_child("body", ns::CLIENT)
        && !msg.has_child("no-store", ns::HINTS)
}

impl Account {
    async fn prefs(&mut self) -> Prefs {
        if self.mam_prefs.is_none() {
            let stored = self
                .server
                .stores
                .private
                .get_private(&self.jid, PREFS_KEY)
                .await
                .ok()
                .flatten()
                .and_then(|x| x.parse::<Element>().ok())
                .and_then(|e| Prefs::from_element(&e).ok());
            self.mam_prefs = Some(stored.unwrap_or_default());
        }
        self.mam_prefs.clone().unwrap_or_default()
    }

    async fn should_archive(&mut self, with: &Jid) -> bool {
        if !self.server.config.archive.enabled {
            return false;
        }
        let prefs = self.prefs().await;
        let bare = with.to_bare().to_string();
        if prefs.never.iter().any(|j| j == &bare || j == with.as_str()) {
            return false;
        }
        if prefs
            .always
            .iter()
            .any(|j| j == &bare || j == with.as_str())
        {
            return true;
        }
        match prefs.default.as_str() {
            "never" => false,
            "roster" => self.roster_item(&with.to_bare()).await.is_some(),
            _ => true,
        }
    }

    /// Archive a message; for inbound ones, stamp it with our stanza-id
    /// (removing any claiming to be ours, XEP-0359 §3.1).
    ///
    /// `receipt` (the sender's stream management, c2s/receipts.rs) is held
    /// until the row is durable.
    pub(super) async fn archive_message(
        &mut self,
        el: &mut Element,
        with: &Jid,
        inbound: bool,
        receipt: Option<&roost_proto::stanza::Receipt>,
    ) {
        if !archivable(el) || !self.should_archive(with).await {
            return;
        }
        let id = roost_proto::id::archive_id();
        if inbound {
            let mine = self.jid.to_string();
            let kept: Vec<Element> = el
                .children()
                .filter(|c| !(c.is("stanza-id", ns::SID) && c.attr("by") == Some(mine.as_str())))
                .cloned()
                .collect();
            let mut clean = el.shallow_clone();
            for c in kept {
                clean.append_child(c);
            }
            clean.append_child(
                Element::bare("stanza-id", ns::SID)
                    .attr_set("id", id.clone())
                    .attr_set("by", mine),
            );
            *el = clean;
        }
        let msg = ArchivedMessage {
            id,
            with: with.to_string(),
            stamp_ms: now_ms(),
            xml: el.to_xml(),
        };
        // Queued, not awaited: the message goes on at once, and later
        // queries still see it (ArchiveStore::archive_queued).
        self.server.stores.archive.archive_queued(&self.jid, msg);
        if let Some(r) = receipt {
            self.server
                .stores
                .archive
                .hold_until_archived(Box::new(r.clone()));
        }
    }

    /// `urn:xmpp:mam:2` IQs from one of the account's sessions.
    pub(super) async fn mam_iq(
        &mut self,
        resource: &str,
        iq: &Stanza,
    ) -> Result<Option<Element>, StanzaError> {
        let payload = iq
            .el
            .children()
            .next()
            .ok_or_else(|| StanzaError::bad_request("empty"))?;
        match (iq.type_attr(), payload.name()) {
            (Some("get"), "prefs") => Ok(Some(self.prefs().await.to_element())),
            (Some("set"), "prefs") => {
                let prefs = Prefs::from_element(payload)?;
                self.server
                    .stores
                    .private
                    .set_private(&self.jid, PREFS_KEY, Some(&prefs.to_element().to_xml()))
                    .await
                    .map_err(|_| StanzaError::internal())?;
                let answer = prefs.to_element();
                self.mam_prefs = Some(prefs);
                Ok(Some(answer))
            }
            (Some("get"), "query") => Ok(Some(crate::mam_query::form())),
            (Some("get"), "metadata") => self.metadata().await,
            (Some("set"), "query") => self.query(resource, payload).await,
            _ => Err(StanzaError::new(Condition::FeatureNotImplemented)),
        }
    }

    async fn metadata(&self) -> Result<Option<Element>, StanzaError> {
        let bounds = self
            .server
            .stores
            .archive
            .archive_bounds(&self.jid)
            .await
            .map_err(|_| StanzaError::internal())?;
        let mut m = Element::bare("metadata", ns::MAM);
        if let Some((first, last)) = bounds {
            for (name, msg) in [("start", first), ("end", last)] {
                m.append_child(
                    Element::bare(name, ns::MAM)
                        .attr_set("id", msg.id)
                        .attr_set("timestamp", stamp_of(msg.stamp_ms)),
                );
            }
        }
        Ok(Some(m))
    }

    async fn query(
        &mut self,
        resource: &str,
        query: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let q = crate::mam_query::parse(query, |_| Ok(()))?;
        let flip = query.has_child("flip-page", ns::MAM);
        let page = self
            .server
            .stores
            .archive
            .query_archive(&self.jid, &q)
            .await
            .map_err(|e| {
                tracing::error!(account = %self.jid, error = %e, "archive query failed");
                StanzaError::internal()
            })?
            .ok_or_else(|| {
                StanzaError::new(Condition::ItemNotFound).with_text("no message with that id")
            })?;
        let Some(entry) = self.resources.get(resource) else {
            return Ok(None);
        };
        let queryid = query.attr("queryid");
        let mut messages = page.messages.clone();
        if flip {
            messages.reverse();
        }
        for m in &messages {
            let Ok(original) = m.xml.parse::<Element>() else {
                continue;
            };
            let result = Element::bare("message", ns::CLIENT)
                .attr_set("to", entry.handle.jid.as_str())
                .attr_set("from", self.jid.as_str())
                .attr_set("id", roost_proto::id::random_token(12))
                .child(
                    Element::bare("result", ns::MAM)
                        .attr_opt("queryid", queryid)
                        .attr_set("id", m.id.clone())
                        .child(
                            Element::bare("forwarded", ns::FORWARD)
                                .child(
                                    Element::bare("delay", ns::DELAY)
                                        .attr_set("stamp", stamp_of(m.stamp_ms)),
                                )
                                .child(original),
                        ),
                );
            entry.handle.send(result);
        }
        let mut set = Element::bare("set", ns::RSM);
        if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
            set.append_child(Element::bare("first", ns::RSM).text_node(first.id.clone()));
            set.append_child(Element::bare("last", ns::RSM).text_node(last.id.clone()));
        }
        let mut fin = Element::bare("fin", ns::MAM).child(set);
        if page.complete {
            fin.set("complete", "true");
        }
        Ok(Some(fin))
    }
}
