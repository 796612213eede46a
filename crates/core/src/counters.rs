//! Server-wide counters, cheap to bump from any task (relaxed atomics);
//! logged and exported as Prometheus metrics by `metrics.rs`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Sessions closed because their outbound queue was full. Process-wide
/// because the place that notices (`SessionHandle::send`) holds no server
/// reference; one server runs per process outside tests.
pub static SESSION_QUEUE_OVERFLOWS: AtomicU64 = AtomicU64::new(0);

/// Stanza kinds as counted (RFC 6120 §8); anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Presence,
    Iq,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Message, Kind::Presence, Kind::Iq, Kind::Other];

    pub fn of(element_name: &str) -> Kind {
        match element_name {
            "message" => Kind::Message,
            "presence" => Kind::Presence,
            "iq" => Kind::Iq,
            _ => Kind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Presence => "presence",
            Kind::Iq => "iq",
            Kind::Other => "other",
        }
    }
}

/// One counter per stanza kind.
#[derive(Default)]
pub struct PerKind([AtomicU64; 4]);

impl PerKind {
    pub fn bump(&self, kind: Kind) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: Kind) -> u64 {
        self.0[kind as usize].load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Counters {
    /// Stanzas account-based MUC received from rooms (one per account).
    pub account_muc_received: AtomicU64,
    /// Copies of them forked to joined sessions.
    pub account_muc_forked: AtomicU64,
    /// Stanzas read from bound client sessions.
    pub stanzas_in: PerKind,
    /// Stanzas written to bound client sessions (nonzas excluded).
    pub stanzas_out: PerKind,
    /// Bound client sessions alive now (hibernating ones included).
    pub sessions: AtomicI64,
}

impl Counters {
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "account_muc_received",
                self.account_muc_received.load(Ordering::Relaxed),
            ),
            (
                "account_muc_forked",
                self.account_muc_forked.load(Ordering::Relaxed),
            ),
        ]
    }

    pub fn session_started(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_ended(&self) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Bound sessions now (never negative).
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_counted_apart() {
        let c = Counters::default();
        for name in ["message", "message", "presence", "iq", "r"] {
            c.stanzas_in.bump(Kind::of(name));
        }
        assert_eq!(c.stanzas_in.get(Kind::Message), 2);
        assert_eq!(c.stanzas_in.get(Kind::Presence), 1);
        assert_eq!(c.stanzas_in.get(Kind::Iq), 1);
        assert_eq!(c.stanzas_in.get(Kind::Other), 1);
        assert_eq!(c.stanzas_out.get(Kind::Message), 0);
    }

    #[test]
    fn sessions_go_up_and_down() {
        let c = Counters::default();
        c.session_started();
        c.session_started();
        c.session_ended();
        assert_eq!(c.sessions(), 1);
    }
}
