//! Limits an operator sets (README "Limits"): what one address, one
//! session or one account may take of the server, so that a hostile or
//! broken client slows down or gets the spec's error, and the others go on.
//!
//! - `per_address.rs`: open connections and new connections per second per
//!   client address (IPv6 by prefix), refused at accept.
//! - `shaper.rs`: stanzas and bytes per second per stream, enforced by
//!   reading more slowly (TCP pushes back on the client), never by dropping.
//! - `queue_budget.rs`: bytes of stanzas waiting in session queues, per
//!   session and for the whole server; readers pause before memory runs out.
//! - The rest (roster size, rooms per user, offline queue, PEP, pubsub,
//!   upload quota, MAM page size, timeouts) is checked where the data lives
//!   and reported here.
//!
//! Every limit reached is counted (`roost_limit_hits_total{limit=...}` in
//! /metrics), process-wide like `counters::SESSION_QUEUE_OVERFLOWS`: the
//! places that notice often hold no server reference.

pub mod per_address;
pub mod queue_budget;
pub mod shaper;
pub mod token_bucket;

use std::sync::atomic::{AtomicU64, Ordering};

/// The limits counted in /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.max_connections`: the server-wide connection count.
    Connections,
    /// `limits.max_connections_per_ip`.
    ConnectionsPerAddress,
    /// `limits.connections_per_second` per address.
    ConnectionRate,
    /// `limits.stanzas_per_second` or `limits.bytes_per_second`: a reader
    /// was slowed down.
    Shaped,
    /// `limits.queued_bytes_total`: readers paused for the queues to drain.
    QueuedBytesTotal,
    /// `limits.session_queue` or `limits.session_queue_bytes`: a session
    /// that could not keep up was closed.
    SessionQueue,
    /// `limits.handshake_timeout`: no TLS handshake or stream header in time.
    HandshakeTimeout,
    /// `limits.max_roster_items`.
    RosterItems,
    /// `muc.max_rooms_per_user`.
    RoomsPerUser,
    /// `limits.max_offline_messages`.
    OfflineMessages,
    /// `limits.max_mam_page`: a MAM page asked for more was cut to it.
    MamPage,
    /// `limits.max_pep_nodes` and `limits.max_pep_items`.
    Pep,
    /// `limits.max_resources`: resource binding refused.
    Resources,
    /// `limits.max_stanza_size` (and the parser's depth and token sizes):
    /// a stream closed with `policy-violation`.
    StanzaSize,
    /// `limits.auth_timeout`: not authenticated and bound in time.
    AuthTimeout,
    /// `muc.max_occupants` (a room's `maxusers`): a join refused.
    RoomOccupants,
    /// `upload.max_file_size` and `upload.quota`.
    Upload,
    /// `pubsub.max_payload_size` and `pubsub.max_nodes_per_user`.
    Pubsub,
    /// `proxy65.max_streams_per_user`.
    Proxy65,
    /// `s2s.max_incoming`, `s2s.max_outgoing` and `s2s.max_queue`.
    S2s,
}

impl Limit {
    pub const ALL: [Limit; 20] = [
        Limit::Connections,
        Limit::ConnectionsPerAddress,
        Limit::ConnectionRate,
        Limit::Shaped,
        Limit::QueuedBytesTotal,
        Limit::SessionQueue,
        Limit::HandshakeTimeout,
        Limit::RosterItems,
        Limit::RoomsPerUser,
        Limit::OfflineMessages,
        Limit::MamPage,
        Limit::Pep,
        Limit::Resources,
        Limit::StanzaSize,
        Limit::AuthTimeout,
        Limit::RoomOccupants,
        Limit::Upload,
        Limit::Pubsub,
        Limit::Proxy65,
        Limit::S2s,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::ConnectionsPerAddress => "connections_per_ip",
            Limit::ConnectionRate => "connections_per_second",
            Limit::Shaped => "shaper",
            Limit::QueuedBytesTotal => "queued_bytes_total",
            Limit::SessionQueue => "session_queue",
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::RosterItems => "roster_items",
            Limit::RoomsPerUser => "rooms_per_user",
            Limit::OfflineMessages => "offline_messages",
            Limit::MamPage => "mam_page",
            Limit::Pep => "pep",
            Limit::Resources => "resources",
            Limit::StanzaSize => "stanza_size",
            Limit::AuthTimeout => "auth_timeout",
            Limit::RoomOccupants => "room_occupants",
            Limit::Upload => "upload",
            Limit::Pubsub => "pubsub",
            Limit::Proxy65 => "proxy65",
            Limit::S2s => "s2s",
        }
    }
}

static HITS: [AtomicU64; Limit::ALL.len()] = [const { AtomicU64::new(0) }; Limit::ALL.len()];

/// Count one hit of a limit.
pub fn hit(limit: Limit) {
    HITS[limit as usize].fetch_add(1, Ordering::Relaxed);
}

/// Hits of a limit since the process started.
pub fn hits(limit: Limit) -> u64 {
    HITS[limit as usize].load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_has_its_own_counter_and_name() {
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
        }
        let names: std::collections::HashSet<_> = Limit::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names.len(), Limit::ALL.len());
        let before = hits(Limit::Pep);
        hit(Limit::Pep);
        assert!(hits(Limit::Pep) > before);
    }
}
