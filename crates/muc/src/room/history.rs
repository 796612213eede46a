//! XEP-0045 §7.2.13–§7.2.14: the discussion history sent on join, stamped
//! with XEP-0203 delays, limited by the room (`muc#maxhistoryfetch`) and by
//! the client's `<history/>` (maxchars, maxstanzas, seconds, since). The
//! recent messages are kept in memory, loaded from the room's archive when
//! the room starts, so history survives restarts.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use minidom::Element;
use roost_proto::{datetime, Elem, ElementExt};

use super::Room;
use crate::ns;
use jid::Jid;

/// A message as the room reflected it, without `to`.
#[derive(Debug, Clone)]
pub(crate) struct HistoryEntry {
    pub stamp: SystemTime,
    pub el: Element,
}

#[derive(Debug, Default)]
pub(crate) struct History {
    entries: VecDeque<HistoryEntry>,
}

impl History {
    /// Keep a message; the oldest go beyond `limit`.
    pub fn push(&mut self, entry: HistoryEntry, limit: usize) {
        self.entries.push_back(entry);
        while self.entries.len() > limit {
            self.entries.pop_front();
        }
    }

    /// Put `tombstone` in place of the message the room stamped with
    /// `stanza_id` (XEP-0425 §5), if it is still in the history.
    pub fn replace_by_stanza_id(&mut self, room: &str, stanza_id: &str, tombstone: &Element) {
        let stamped = |el: &Element| {
            el.children().any(|c| {
                c.is("stanza-id", ns::SID)
                    && c.attr("by") == Some(room)
                    && c.attr("id") == Some(stanza_id)
            })
        };
        for entry in self.entries.iter_mut().filter(|e| stamped(&e.el)) {
            entry.el = tombstone.clone();
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// What to send for `request`, oldest first, each rendered by `render`
    /// (so that `maxchars` counts the stanzas as sent).
    pub fn select(
        &self,
        request: &HistoryRequest,
        room_limit: usize,
        render: impl Fn(&HistoryEntry) -> Element,
    ) -> Vec<Element> {
        let max = request.maxstanzas.unwrap_or(usize::MAX).min(room_limit);
        let mut chars = 0usize;
        let mut picked = Vec::new();
        for entry in self.entries.iter().rev() {
            if picked.len() >= max || request.since.is_some_and(|s| entry.stamp < s) {
                break;
            }
            let el = render(entry);
            // §7.2.14: whole stanzas only, as many as fit in maxchars.
            if let Some(limit) = request.maxchars {
                chars += el.to_xml().chars().count();
                if chars > limit {
                    break;
                }
            }
            picked.push(el);
        }
        picked.reverse();
        picked
    }
}

/// The client's `<history/>` (§7.2.14); absent attributes do not limit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct HistoryRequest {
    pub maxchars: Option<usize>,
    pub maxstanzas: Option<usize>,
    /// From `since` and `seconds`, whichever is later.
    pub since: Option<SystemTime>,
}

impl HistoryRequest {
    /// Unreadable attributes are ignored rather than refused: history is a
    /// courtesy, and the join itself must not fail over it.
    pub fn parse(history: Option<&Element>, now: SystemTime) -> HistoryRequest {
        let Some(h) = history else {
            return HistoryRequest::default();
        };
        let num = |name: &str| h.attr(name).and_then(|v| v.trim().parse::<u64>().ok());
        let mut since = h.attr("since").and_then(datetime::parse_xep82);
        if let Some(secs) = num("seconds") {
            let from = now
                .checked_sub(Duration::from_secs(secs))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            since = Some(since.map_or(from, |s| s.max(from)));
        }
        HistoryRequest {
            maxchars: num("maxchars").map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            maxstanzas: num("maxstanzas").map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            since,
        }
    }
}

impl Room {
    /// §7.2.13: history to a joining occupant, after presence, before the
    /// subject.
    pub(super) fn send_history(&self, to: &Jid, request: &HistoryRequest) {
        let render = |entry: &HistoryEntry| {
            let mut el = entry.el.clone();
            el.set("to", to.as_str());
            // XEP-0203; §7.2.13: `from` is the room itself.
            el.append_child(
                Element::bare("delay", ns::DELAY)
                    .attr_set("from", self.jid.as_str())
                    .attr_set("stamp", datetime::to_xep82(entry.stamp)),
            );
            el
        };
        for el in self
            .history
            .select(request, self.config.history_length, render)
        {
            self.send(el);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(n: u64) -> History {
        let mut h = History::default();
        for i in 0..n {
            let el = Element::bare("message", ns::CLIENT)
                .attr_set("id", format!("m{i}"))
                .child(Element::bare("body", ns::CLIENT).text_node(format!("message {i}")));
            h.push(
                HistoryEntry {
                    stamp: SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + i * 60),
                    el,
                },
                100,
            );
        }
        h
    }

    fn ids(v: &[Element]) -> Vec<&str> {
        v.iter().filter_map(|e| e.attr("id")).collect()
    }

    #[test]
    fn without_a_request_the_room_limit_applies_to_the_newest() {
        let h = history(10);
        let got = h.select(&HistoryRequest::default(), 3, |e| e.el.clone());
        assert_eq!(ids(&got), ["m7", "m8", "m9"]);
    }

    #[test]
    fn maxstanzas_and_since_limit_further() {
        let h = history(10);
        let req = HistoryRequest {
            maxstanzas: Some(2),
            ..HistoryRequest::default()
        };
        assert_eq!(ids(&h.select(&req, 50, |e| e.el.clone())), ["m8", "m9"]);
        let req = HistoryRequest {
            since: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + 6 * 60)),
            ..HistoryRequest::default()
        };
        assert_eq!(
            ids(&h.select(&req, 50, |e| e.el.clone())),
            ["m6", "m7", "m8", "m9"]
        );
    }

    #[test]
    fn maxchars_sends_whole_stanzas_only() {
        let h = history(10);
        let one = h.entries[0].el.to_xml().chars().count();
        let req = HistoryRequest {
            maxchars: Some(one * 2 + 1),
            ..HistoryRequest::default()
        };
        assert_eq!(ids(&h.select(&req, 50, |e| e.el.clone())), ["m8", "m9"]);
        let none = HistoryRequest {
            maxchars: Some(0),
            ..HistoryRequest::default()
        };
        assert!(h.select(&none, 50, |e| e.el.clone()).is_empty());
    }

    #[test]
    fn request_attributes_are_read_and_combined() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let el: Element = "<history xmlns='http://jabber.org/protocol/muc' maxchars='65000' \
            maxstanzas='x' seconds='180' since='1970-01-01T00:00:00Z'/>"
            .parse()
            .unwrap();
        let r = HistoryRequest::parse(Some(&el), now);
        assert_eq!(r.maxchars, Some(65000));
        assert_eq!(r.maxstanzas, None);
        assert_eq!(r.since, Some(now - Duration::from_secs(180)));
        assert_eq!(HistoryRequest::parse(None, now), HistoryRequest::default());
    }

    #[test]
    fn the_buffer_keeps_only_the_newest() {
        let mut h = history(10);
        h.push(
            HistoryEntry {
                stamp: SystemTime::UNIX_EPOCH,
                el: Element::bare("message", ns::CLIENT).attr_set("id", "new"),
            },
            3,
        );
        let got = h.select(&HistoryRequest::default(), 50, |e| e.el.clone());
        assert_eq!(ids(&got), ["m8", "m9", "new"]);
    }
}
