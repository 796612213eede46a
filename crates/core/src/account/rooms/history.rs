//! Rule 2 and rule 14: a later session's join history comes from the
//! account's own archive, which holds every groupchat message the account
//! received from the room, honouring `<history/>` (XEP-0045 §7.2.14).

use std::time::{Duration, UNIX_EPOCH};

use jid::BareJid;
use minidom::Element;
use roost_proto::{datetime, ns, Elem, ElementExt};
use roost_store::ArchiveQuery;

use crate::account::Account;

/// When neither the request nor the first join tells: XEP-0045's example.
const FALLBACK: usize = 20;
/// More than this is never replayed at once.
const CAP: usize = 200;

impl Account {
    pub(super) async fn room_history(
        &self,
        room: &BareJid,
        request: Option<&Element>,
        default: usize,
    ) -> Vec<Element> {
        let attr = |name: &'static str| request.and_then(|h| h.attr(name));
        let number = |name: &'static str| attr(name).and_then(|v| v.trim().parse::<i64>().ok());
        let mut max = if default > 0 { default } else { FALLBACK };
        if let Some(n) = number("maxstanzas") {
            max = n.max(0) as usize;
        }
        let mut start_ms = None;
        if let Some(seconds) = number("seconds") {
            start_ms = Some(super::super::archive::now_ms() - seconds.max(0) * 1000);
        }
        if let Some(since) = attr("since").and_then(datetime::parse_xep82) {
            let ms = since
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            start_ms = Some(start_ms.map_or(ms, |s: i64| s.max(ms)));
        }
        let max = max.min(CAP);
        if max == 0 {
            return Vec::new();
        }
        let q = ArchiveQuery {
            with: Some(room.to_string()),
            start_ms,
            max,
            from_end: true,
            ..ArchiveQuery::default()
        };
        let page = match self
            .server
            .stores
            .archive
            .query_archive(&self.jid, &q)
            .await
        {
            Ok(Some(p)) => p,
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for m in page.messages {
            let Ok(mut el) = m.xml.parse::<Element>() else {
                continue;
            };
            if el.attr("type") != Some("groupchat") || el.has_child("subject", ns::CLIENT) {
                continue;
            }
            if !el.has_child("delay", roost_proto::ns::DELAY) {
                let stamp = datetime::to_xep82(
                    UNIX_EPOCH + Duration::from_millis(m.stamp_ms.max(0) as u64),
                );
                el.append_child(
                    Element::bare("delay", roost_proto::ns::DELAY)
                        .attr_set("from", room.as_str())
                        .attr_set("stamp", stamp),
                );
            }
            el.unset("to");
            out.push(el);
        }
        // maxchars counts the characters of the whole stanzas (§7.2.14).
        if let Some(maxchars) = number("maxchars") {
            let mut budget = maxchars.max(0) as usize;
            let mut kept: Vec<Element> = Vec::new();
            for el in out.into_iter().rev() {
                let len = el.to_xml().chars().count();
                if len > budget {
                    break;
                }
                budget -= len;
                kept.push(el);
            }
            kept.reverse();
            out = kept;
        }
        out
    }
}
