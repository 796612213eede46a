//! What a soak run counts: latency per operation kind (RFC 6120/6121
//! logins, XEP-0045 fan-out, XEP-0313 queries, XEP-0363 transfers,
//! XEP-0198 resumptions), over the whole run and per reporting window,
//! errors by kind with a first example each, and the deliveries still
//! awaited (every message sent names the sessions that must receive it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::stats::{Histogram, Summary};

/// The kinds of timed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Connect, TLS, SASL, bind, initial presence, ping answered.
    Login,
    /// `</stream:stream>` until the server's own closing tag.
    Logout,
    /// FAST token login with an inline XEP-0198 `<resume/>`.
    Resume,
    /// A one-to-one message, send to receipt.
    Chat,
    /// A groupchat message, send to receipt by one occupant session.
    Muc,
    /// Anything that spanned a dropped connection and its resumption
    /// (its latency includes the time the phone was away).
    ViaResume,
    /// XEP-0313 query by archive id for a message the session received.
    MamLookup,
    /// XEP-0313 last page of the conversation with the partner (RSM).
    MamPage,
    /// XEP-0363 slot request over XMPP.
    UploadSlot,
    /// HTTP PUT of the file to the slot.
    UploadPut,
    /// HTTP GET of the file, compared with what was sent.
    UploadGet,
}

pub const OPS: [Op; 11] = [
    Op::Login,
    Op::Logout,
    Op::Resume,
    Op::Chat,
    Op::Muc,
    Op::ViaResume,
    Op::MamLookup,
    Op::MamPage,
    Op::UploadSlot,
    Op::UploadPut,
    Op::UploadGet,
];

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Logout => "logout",
            Op::Resume => "resume",
            Op::Chat => "chat",
            Op::Muc => "muc",
            Op::ViaResume => "via_resume",
            Op::MamLookup => "mam_lookup",
            Op::MamPage => "mam_page",
            Op::UploadSlot => "upload_slot",
            Op::UploadPut => "upload_put",
            Op::UploadGet => "upload_get",
        }
    }

    fn index(self) -> usize {
        OPS.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// Latencies (µs) and errors of a run; shared by every task.
pub struct Tally {
    total: Vec<Histogram>,
    window: Vec<Mutex<Arc<Histogram>>>,
    errors: Mutex<BTreeMap<String, (u64, String)>>,
    errors_total: AtomicU64,
    /// The slowest of each kind: latency, who, when.
    slowest: Vec<Mutex<Option<Slowest>>>,
}

/// The slowest operation of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slowest {
    pub us: u64,
    pub who: String,
    pub at: Instant,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            total: OPS.iter().map(|_| Histogram::new()).collect(),
            window: OPS
                .iter()
                .map(|_| Mutex::new(Arc::new(Histogram::new())))
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
            errors_total: AtomicU64::new(0),
            slowest: OPS.iter().map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl Tally {
    /// One operation of `op` took `us`; `who` did it (or received it).
    pub fn record(&self, op: Op, us: u64, who: &str) {
        let i = op.index();
        if us > self.total[i].max() {
            let mut s = self.slowest[i].lock().unwrap_or_else(|p| p.into_inner());
            if s.as_ref().is_none_or(|s| us > s.us) {
                *s = Some(Slowest {
                    us,
                    who: who.to_string(),
                    at: Instant::now(),
                });
            }
        }
        self.total[i].record(us);
        let w = self.window[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        w.record(us);
    }

    pub fn slowest(&self, op: Op) -> Option<Slowest> {
        self.slowest[op.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Count an error of `kind` ("chat:lost", "upload_put:status 500");
    /// the first `detail` of each kind is kept for the report.
    pub fn error(&self, kind: &str, detail: &str) {
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let e = errors
            .entry(kind.to_string())
            .or_insert_with(|| (0, detail.chars().take(300).collect()));
        e.0 += 1;
    }

    pub fn errors_total(&self) -> u64 {
        self.errors_total.load(Ordering::Relaxed)
    }

    /// Errors by kind: count and first example.
    pub fn errors(&self) -> Vec<(String, u64, String)> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, (n, ex))| (k.clone(), *n, ex.clone()))
            .collect()
    }

    /// Operations completed over the whole run.
    pub fn ops_total(&self) -> u64 {
        self.total.iter().map(|h| h.count()).sum()
    }

    pub fn total(&self, op: Op) -> Summary {
        self.total[op.index()].summary()
    }

    /// The window's latencies per kind; a new window starts.
    pub fn take_window(&self) -> Vec<(Op, Summary)> {
        OPS.iter()
            .map(|&op| {
                let old = std::mem::replace(
                    &mut *self.window[op.index()]
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()),
                    Arc::new(Histogram::new()),
                );
                (op, old.summary())
            })
            .collect()
    }
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Muc,
}

impl Kind {
    pub fn tag(self) -> char {
        match self {
            Kind::Chat => 'c',
            Kind::Muc => 'g',
        }
    }

    pub fn op(self) -> Op {
        match self {
            Kind::Chat => Op::Chat,
            Kind::Muc => Op::Muc,
        }
    }

    pub fn name(self) -> &'static str {
        self.op().name()
    }
}

/// A delivery still awaited.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub sent_us: u64,
    pub kind: Kind,
    /// Connection epochs of sender and receiver when it was sent: a
    /// change means the delivery spanned a drop and a resumption.
    pub sender_epoch: u64,
    pub receiver_epoch: u64,
}

/// (receiver, sender, sequence number of the sender).
pub type Key = (usize, usize, u64);

/// Deliveries awaited, by receiver, sender and sequence number.
#[derive(Default)]
pub struct Expect {
    map: Mutex<HashMap<Key, Pending>>,
    /// Counted lost: an arrival after that is late, not a duplicate.
    lost: Mutex<HashSet<Key>>,
}

impl Expect {
    pub fn insert(&self, key: Key, p: Pending) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, p);
    }

    pub fn remove(&self, key: &Key) -> Option<Pending> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Remove and return what was sent before `cutoff_us`.
    pub fn expire(&self, cutoff_us: u64) -> Vec<(Key, Pending)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let old: Vec<Key> = map
            .iter()
            .filter(|(_, p)| p.sent_us < cutoff_us)
            .map(|(k, _)| *k)
            .collect();
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        lost.extend(old.iter().copied());
        old.into_iter()
            .filter_map(|k| map.remove(&k).map(|p| (k, p)))
            .collect()
    }

    /// Whether an arrival not awaited had been counted lost (once).
    pub fn was_lost(&self, key: &Key) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }
}

/// The body of a soak message: kind, sender, sequence number, send time
/// (µs since the run's base), then padding to the wanted size.
pub fn body(kind: Kind, sender: usize, seq: u64, ts_us: u64, size: usize) -> String {
    let mut b = format!("sk {} {sender} {seq} {ts_us}", kind.tag());
    if b.len() < size {
        b.push(' ');
        let pad = size - b.len();
        b.extend((0..pad).map(|i| char::from(b'a' + (i % 26) as u8)));
    }
    b
}

/// Kind, sender, sequence number and send time of a soak body.
pub fn parse_body(body: &str) -> Option<(Kind, usize, u64, u64)> {
    let mut f = body.strip_prefix("sk ")?.split(' ');
    let kind = match f.next()? {
        "c" => Kind::Chat,
        "g" => Kind::Muc,
        _ => return None,
    };
    let sender = f.next()?.parse().ok()?;
    let seq = f.next()?.parse().ok()?;
    let ts = f.next()?.parse().ok()?;
    Some((kind, sender, seq, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_at_any_size() {
        for size in [0, 10, 100, 1000] {
            let b = body(Kind::Muc, 7, 42, 123_456, size);
            assert!(b.len() >= size.min(20), "{size}: {b}");
            if size >= 30 {
                assert_eq!(b.len(), size, "{b}");
            }
            assert_eq!(parse_body(&b), Some((Kind::Muc, 7, 42, 123_456)), "{b}");
        }
        assert_eq!(parse_body("lg 1 2 3"), None);
        assert_eq!(parse_body("sk x 1 2 3"), None);
    }

    #[test]
    fn errors_are_counted_by_kind_with_their_first_example() {
        let t = Tally::default();
        t.error("chat:lost", "first");
        t.error("chat:lost", "second");
        t.error("upload_put:status 500", "x");
        assert_eq!(t.errors_total(), 3);
        let e = t.errors();
        assert_eq!(e[0], ("chat:lost".to_string(), 2, "first".to_string()));
        assert_eq!(e[1].1, 1);
    }

    #[test]
    fn windows_restart_and_totals_keep_everything() {
        let t = Tally::default();
        t.record(Op::Chat, 1_000, "a");
        t.record(Op::Chat, 3_000, "b");
        let w = t.take_window();
        let chat = w.iter().find(|(op, _)| *op == Op::Chat).unwrap().1;
        assert_eq!(chat.count, 2);
        t.record(Op::Chat, 5_000, "c");
        let w = t.take_window();
        let chat = w.iter().find(|(op, _)| *op == Op::Chat).unwrap().1;
        assert_eq!(chat.count, 1);
        assert_eq!(t.total(Op::Chat).count, 3);
        let slow = t.slowest(Op::Chat).unwrap();
        assert_eq!((slow.us, slow.who.as_str()), (5_000, "c"));
        assert!(t.slowest(Op::Muc).is_none());
        assert_eq!(t.ops_total(), 3);
    }

    #[test]
    fn expired_deliveries_are_handed_back_once() {
        let e = Expect::default();
        let p = |sent_us| Pending {
            sent_us,
            kind: Kind::Chat,
            sender_epoch: 0,
            receiver_epoch: 0,
        };
        e.insert((1, 2, 3), p(100));
        e.insert((1, 2, 4), p(900));
        assert_eq!(e.expire(500).len(), 1);
        assert_eq!(e.expire(500).len(), 0);
        assert!(e.was_lost(&(1, 2, 3)));
        assert!(!e.was_lost(&(1, 2, 3)));
        assert_eq!(e.len(), 1);
        assert!(e.remove(&(1, 2, 4)).is_some());
    }
}
