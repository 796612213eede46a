//! XEP-0198 Stream Management: counting handled stanzas both ways, the
//! queue of stanzas the client has not acknowledged, and the registry that
//! lets a new connection resume a session that lost its socket.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jid::BareJid;
use minidom::Element;
use roost_proto::Elem;
use tokio::sync::mpsc;

use super::conn::Connection;
use super::receipts::Receipts;

pub const NS: &str = "urn:xmpp:sm:3";

/// What a resuming connection hands to the hibernating session: the
/// connection itself, TCP or WebSocket, whatever the session had before.
pub struct Resumption {
    pub conn: Connection,
    /// Stanzas the client says it handled (`<resume h=.../>`).
    pub h: u32,
    /// Resumed inline with SASL2 (XEP-0388): `<resumed/>` goes inside
    /// this `<success/>`, which the stream's features follow.
    pub sasl2_success: Option<minidom::Element>,
}

/// Sessions that can be resumed: id -> (account, hand-over channel).
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, (BareJid, mpsc::Sender<Resumption>)>>,
}

impl Registry {
    pub fn register(&self, id: String, account: BareJid, tx: mpsc::Sender<Resumption>) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(id, (account, tx));
    }

    pub fn remove(&self, id: &str) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(id);
    }

    /// The session with this id, if it belongs to `account`.
    pub fn find(&self, id: &str, account: &BareJid) -> Option<mpsc::Sender<Resumption>> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.get(id)
            .filter(|(a, _)| a == account)
            .map(|(_, tx)| tx.clone())
    }
}

/// Counters and queue of one session with stream management enabled.
pub struct StreamManagement {
    /// Resumption id; `None` when the client did not ask for resumption.
    pub id: Option<String>,
    /// Stanzas received from the client and whether their effects are
    /// safe: the `h` we report (receipts.rs).
    pub receipts: Receipts,
    /// The client asked for an ack while stanzas were still in flight:
    /// answer once they are done, or at this deadline with what is done.
    pub ack_due: Option<tokio::time::Instant>,
    /// Count of outbound stanzas the client acknowledged.
    acked_out: u32,
    /// Sent (or queued while detached) and not yet acknowledged, in order.
    unacked: VecDeque<Element>,
    /// An `<r/>` is outstanding; do not ask again until answered.
    pub requested: bool,
    /// `<r/>`s received since the last stanza, to stop ack-request floods.
    pub requests_in_a_row: u32,
}

/// The client acknowledged more than was sent (XEP-0198 §4).
#[derive(Debug)]
pub struct HandledCountTooHigh;

impl StreamManagement {
    pub fn new(id: Option<String>) -> StreamManagement {
        StreamManagement {
            id,
            receipts: Receipts::default(),
            ack_due: None,
            acked_out: 0,
            unacked: VecDeque::new(),
            requested: false,
            requests_in_a_row: 0,
        }
    }

    pub fn sent(&mut self, el: Element) {
        self.unacked.push_back(el);
    }

    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Apply an acknowledgement of `h` stanzas in total. An `h` below one
    /// acknowledged before (a client that reset its count, as xmpp.js
    /// 0.14 does when its own `<enable/>` round trip ends late) is stale:
    /// it acknowledges nothing new and is not an error; XEP-0198 §4 asks
    /// for one only when `h` exceeds what was sent.
    pub fn ack(&mut self, h: u32) -> Result<(), HandledCountTooHigh> {
        let newly = h.wrapping_sub(self.acked_out);
        if newly > u32::MAX / 2 {
            tracing::debug!(
                h,
                acked = self.acked_out,
                "stale stream management ack ignored"
            );
            self.requested = false;
            return Ok(());
        }
        let newly = newly as usize;
        if newly > self.unacked.len() {
            return Err(HandledCountTooHigh);
        }
        self.unacked.drain(..newly);
        self.acked_out = h;
        self.requested = false;
        Ok(())
    }

    /// Stanzas to send again after a resumption.
    pub fn unacked(&self) -> impl Iterator<Item = &Element> {
        self.unacked.iter()
    }

    /// Take what was never acknowledged, when the session ends for good.
    pub fn take_unacked(&mut self) -> Vec<Element> {
        self.unacked.drain(..).collect()
    }

    /// `h`: the stanzas from the client whose effects are safe.
    /// XEP-0198 §6 (the stream error's detail): the client acknowledged
    /// `h` while we had sent fewer.
    pub fn too_high(&self, h: u32) -> Element {
        let sent = self.acked_out.wrapping_add(self.unacked.len() as u32);
        Element::bare("handled-count-too-high", NS)
            .attr_set("h", h.to_string())
            .attr_set("send-count", sent.to_string())
    }

    pub fn handled_in(&self) -> u32 {
        self.receipts.h()
    }

    pub fn ack_element(&self) -> Element {
        Element::bare("a", NS).attr_set("h", self.handled_in().to_string())
    }
}

pub fn request() -> Element {
    Element::bare("r", NS)
}

/// `<failed/>` with a stanza error condition (XEP-0198 §3, §5).
pub fn failed(condition: &str, h: Option<u32>) -> Element {
    Element::bare("failed", NS)
        .attr_opt("h", h.map(|h| h.to_string()))
        .child(Element::bare(condition, roost_proto::ns::STANZAS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(n: u32) -> Element {
        Element::bare("message", "jabber:client").attr_set("id", n.to_string())
    }

    #[test]
    fn acks_drop_handled_stanzas_and_refuse_too_high_counts() {
        let mut sm = StreamManagement::new(None);
        for i in 0..5 {
            sm.sent(el(i));
        }
        sm.ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 3);
        assert_eq!(sm.unacked().next().unwrap().attr("id"), Some("2"));
        sm.ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 3);
        assert!(sm.ack(9).is_err());
        sm.ack(5).unwrap();
        assert_eq!(sm.unacked_len(), 0);
    }

    #[test]
    fn a_lower_h_than_before_is_stale_not_an_error() {
        let mut sm = StreamManagement::new(None);
        for i in 0..3 {
            sm.sent(el(i));
        }
        sm.ack(2).unwrap();
        sm.ack(1).unwrap();
        sm.ack(0).unwrap();
        assert_eq!(sm.unacked_len(), 1);
        sm.ack(3).unwrap();
        assert_eq!(sm.unacked_len(), 0);
        assert!(sm.ack(4).is_err());
    }

    #[test]
    fn counters_wrap_around() {
        let mut sm = StreamManagement::new(None);
        sm.acked_out = u32::MAX - 1;
        for i in 0..4 {
            sm.sent(el(i));
        }
        sm.ack(1).unwrap(); // MAX-1 -> MAX -> 0 -> 1: three handled
        assert_eq!(sm.unacked_len(), 1);
    }
}
