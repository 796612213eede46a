//! XEP-0065: SOCKS5 Bytestreams — the proxy's streams, keyed by stream
//! address (the SHA-1 of §5.3.2): the target's connection waits (§6.3.2),
//! the requester's pairs with it (§6.3.4), activation (§6.3.5) hands both to
//! a relay task. A stream not activated within `pending_timeout` is dropped,
//! which closes its connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jid::BareJid;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::relay::{self, RelayLimits};
use super::socks5::{Reply, StreamAddress};

/// A connection that finished its SOCKS5 handshake, with the proxy
/// connection permit it holds.
pub struct Parked {
    pub stream: TcpStream,
    pub permit: OwnedSemaphorePermit,
}

struct Entry {
    /// Tells this entry from a later one with the same address.
    id: u64,
    /// Connections admitted whose success reply is being written.
    reserved: usize,
    /// Connections answered, in order of arrival: target, then requester.
    parked: Vec<Parked>,
    /// The requester, once activated (counted by `max_streams_per_user`).
    owner: Option<BareJid>,
}

impl Entry {
    fn connections(&self) -> usize {
        self.reserved + self.parked.len()
    }
}

/// Why an activation request fails (XEP-0065 §6.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationError {
    /// No connection used this address: unknown SID, target or requester.
    Unknown,
    /// Only one party is connected (or the second is still being answered).
    OnlyOneParty,
    AlreadyActive,
    /// The requester has `max_streams_per_user` streams active already.
    TooManyStreams,
}

#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub pending_timeout: Duration,
    pub max_streams_per_user: usize,
    pub relay: RelayLimits,
}

pub struct Streams {
    entries: Mutex<HashMap<StreamAddress, Entry>>,
    next_id: AtomicU64,
    limits: StreamLimits,
    shutdown: watch::Receiver<bool>,
    pub bytes_relayed: AtomicU64,
    pub activated: AtomicU64,
}

/// A place in a stream, held while the success reply is written; dropped
/// unused, it gives the place back.
pub struct Reservation {
    streams: Arc<Streams>,
    address: StreamAddress,
    id: u64,
    parked: bool,
}

impl Reservation {
    /// The connection is answered: it waits in its stream.
    pub fn park(mut self, connection: Parked) {
        self.parked = true;
        let mut entries = self.streams.lock();
        match entries.get_mut(&self.address) {
            Some(e) if e.id == self.id => {
                e.reserved -= 1;
                e.parked.push(connection);
            }
            // Expired meanwhile: the connection is dropped, hence closed.
            _ => {}
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.parked {
            return;
        }
        let mut entries = self.streams.lock();
        if let Some(e) = entries.get_mut(&self.address).filter(|e| e.id == self.id) {
            e.reserved -= 1;
            if e.connections() == 0 && e.owner.is_none() {
                entries.remove(&self.address);
            }
        }
    }
}

impl Streams {
    pub fn new(limits: StreamLimits, shutdown: watch::Receiver<bool>) -> Arc<Streams> {
        Arc::new(Streams {
            entries: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            limits,
            shutdown,
            bytes_relayed: AtomicU64::new(0),
            activated: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamAddress, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit a connection that asked for `address`: the first or second
    /// one, never a third, never one for a stream already active.
    pub fn reserve(self: &Arc<Self>, address: &StreamAddress) -> Result<Reservation, Reply> {
        let mut entries = self.lock();
        let id = match entries.get_mut(address) {
            None => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                entries.insert(
                    address.clone(),
                    Entry {
                        id,
                        reserved: 1,
                        parked: Vec::new(),
                        owner: None,
                    },
                );
                self.spawn_expiry(address.clone(), id);
                id
            }
            // XEP-0065 §9.1: one target per stream (no multicast).
            Some(e) if e.owner.is_none() && e.connections() < 2 => {
                e.reserved += 1;
                e.id
            }
            Some(_) => return Err(Reply::NotAllowedByRuleset),
        };
        Ok(Reservation {
            streams: self.clone(),
            address: address.clone(),
            id,
            parked: false,
        })
    }

    /// Drop the stream unless activated, after `pending_timeout` or at
    /// shutdown.
    fn spawn_expiry(self: &Arc<Self>, address: StreamAddress, id: u64) {
        let streams = self.clone();
        let mut shutdown = self.shutdown.clone();
        let wait = self.limits.pending_timeout;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = crate::server::until_shutdown(&mut shutdown) => {}
            }
            let mut entries = streams.lock();
            if entries
                .get(&address)
                .is_some_and(|e| e.id == id && e.owner.is_none())
            {
                tracing::debug!(%address, "bytestream not activated in time");
                entries.remove(&address);
            }
        });
    }

    /// XEP-0065 §6.3.5: start relaying between the two connections of
    /// `address` for `owner`.
    pub fn activate(
        self: &Arc<Self>,
        address: &StreamAddress,
        owner: &BareJid,
    ) -> Result<(), ActivationError> {
        let (id, mut parked) = {
            let mut entries = self.lock();
            let owned = entries
                .values()
                .filter(|e| e.owner.as_ref() == Some(owner))
                .count();
            let entry = entries.get_mut(address).ok_or(ActivationError::Unknown)?;
            if entry.owner.is_some() {
                return Err(ActivationError::AlreadyActive);
            }
            if entry.parked.len() < 2 {
                return Err(ActivationError::OnlyOneParty);
            }
            if owned >= self.limits.max_streams_per_user {
                return Err(ActivationError::TooManyStreams);
            }
            entry.owner = Some(owner.clone());
            (entry.id, std::mem::take(&mut entry.parked))
        };
        let (Some(requester), Some(target)) = (parked.pop(), parked.pop()) else {
            return Err(ActivationError::OnlyOneParty);
        };
        // XEP-0065 §9.1: bytes sent before activation are ignored.
        discard_pending_input(&target.stream);
        discard_pending_input(&requester.stream);
        self.activated.fetch_add(1, Ordering::Relaxed);
        let streams = self.clone();
        let address = address.clone();
        tokio::spawn(async move {
            let end = relay::relay(
                target.stream,
                requester.stream,
                streams.limits.relay,
                &streams.bytes_relayed,
                streams.shutdown.clone(),
            )
            .await;
            tracing::debug!(%address, ?end, "bytestream closed");
            let mut entries = streams.lock();
            if entries.get(&address).is_some_and(|e| e.id == id) {
                entries.remove(&address);
            }
            // The permits go with the connections.
            drop((target.permit, requester.permit));
        });
        Ok(())
    }

    /// Streams waiting for activation, and streams relaying.
    pub fn counts(&self) -> (usize, usize) {
        let entries = self.lock();
        let active = entries.values().filter(|e| e.owner.is_some()).count();
        (entries.len() - active, active)
    }
}

/// Read and drop what a connection already sent (never waits).
fn discard_pending_input(stream: &TcpStream) {
    let mut buf = [0u8; 4096];
    // Bounded: a client cannot keep the activating task busy.
    for _ in 0..64 {
        match stream.try_read(&mut buf) {
            Ok(n) if n > 0 => continue,
            _ => return,
        }
    }
}
