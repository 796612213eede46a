//! Several of our domains over one outgoing server stream (RFC 6120 §4.1,
//! XEP-0220 §2.4 "piggybacking"): when `conference.example.org` has
//! stanzas for a server that `example.org` already has an authenticated
//! stream to, it asks that stream to carry it too: the stream sends
//! `<db:result from='conference.example.org'/>` with a key for its own
//! stream id, the peer checks it like any dialback key (or by our
//! certificate), and once it answers `valid` the stream writes stanzas
//! from both domains. The joining domain's task relays its stanzas to the
//! host stream's task; when the peer refuses, or the host stream ends, the
//! domain gets a stream of its own as before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use roost_proto::{Condition, Stanza, StanzaError};
use tokio::sync::{mpsc, oneshot};

use super::stream::{S2sError, S2sStream};
use super::{bounce, S2s};
use crate::server::Server;

pub(super) enum MuxMsg {
    /// Carry `local`'s stanzas too; answered once the peer said.
    Join {
        local: String,
        reply: oneshot::Sender<bool>,
    },
    Stanza(Stanza),
}

/// The way to a stream that takes more domains.
#[derive(Clone)]
pub(super) struct HostHandle {
    tx: mpsc::Sender<MuxMsg>,
    generation: u64,
}

/// An outgoing stream's side of multiplexing (`outgoing.rs` pump).
pub(super) struct Host {
    remote: String,
    stream_id: String,
    generation: u64,
    /// `None`: this stream takes no other domain (no dialback offered).
    rx: Option<mpsc::Receiver<MuxMsg>>,
    /// Our domains this stream carries, its own first.
    carried: HashSet<String>,
    /// Joins waiting for the peer's answer, by our domain.
    pending: HashMap<String, oneshot::Sender<bool>>,
}

impl Host {
    /// Offer an authenticated stream from `local` to `remote` to our other
    /// domains, if the peer takes dialback and no other stream to it does.
    pub(super) fn open(s2s: &Arc<S2s>, local: &str, remote: &str, st: &S2sStream) -> Host {
        let mut host = Host {
            remote: remote.to_string(),
            stream_id: st.stream_id.clone().unwrap_or_default(),
            generation: 0,
            rx: None,
            carried: HashSet::from([local.to_string()]),
            pending: HashMap::new(),
        };
        if !(s2s.dialback_allowed() && st.dialback_offered && st.stream_id.is_some()) {
            return host;
        }
        let mut hosts = s2s.mux_hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts.get(remote).is_some_and(|h| !h.tx.is_closed()) {
            return host;
        }
        let (tx, rx) = mpsc::channel(s2s.config.max_queue);
        host.generation = s2s
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hosts.insert(
            remote.to_string(),
            HostHandle {
                tx,
                generation: host.generation,
            },
        );
        host.rx = Some(rx);
        host
    }

    /// A request from another of our domains' tasks.
    pub(super) async fn handle(
        &mut self,
        server: &Arc<Server>,
        s2s: &Arc<S2s>,
        st: &mut S2sStream,
        m: MuxMsg,
    ) -> Result<(), S2sError> {
        match m {
            MuxMsg::Join { local, reply } => {
                if self.carried.contains(&local) {
                    let _ = reply.send(true);
                    return Ok(());
                }
                let key = s2s.secret.key(&self.remote, &local, &self.stream_id);
                st.send_db(
                    "result",
                    &[("from", &local), ("to", &self.remote)],
                    Some(&key),
                )
                .await?;
                self.pending.insert(local, reply);
                Ok(())
            }
            MuxMsg::Stanza(s) => {
                let ours = s
                    .from
                    .as_ref()
                    .is_some_and(|f| self.carried.contains(f.domain().as_str()));
                if !ours {
                    bounce(
                        server,
                        &s,
                        StanzaError::new(Condition::RemoteServerNotFound),
                    );
                    return Ok(());
                }
                if let Err(e) = st.send(&s.el).await {
                    bounce(
                        server,
                        &s,
                        StanzaError::new(Condition::RemoteServerNotFound),
                    );
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    /// The peer's answer to one of our joins (`true` when it was one).
    pub(super) fn answer(&mut self, el: &Element) -> bool {
        let (Some(from), Some(to), Some(kind)) = (el.attr("from"), el.attr("to"), el.attr("type"))
        else {
            return false;
        };
        if from != self.remote {
            return false;
        }
        let Some(reply) = self.pending.remove(to) else {
            return false;
        };
        let valid = kind == "valid";
        if valid {
            tracing::info!(local = %to, remote = %from, "server stream multiplexed: one more domain of ours (dialback)");
            self.carried.insert(to.to_string());
        } else {
            tracing::info!(local = %to, remote = %from, "the peer refused one more domain on the stream");
        }
        let _ = reply.send(valid);
        true
    }

    /// The stream ends: leave the registry; what was waiting goes out
    /// through fresh streams.
    pub(super) fn close(&mut self, server: &Arc<Server>, s2s: &Arc<S2s>) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        {
            let mut hosts = s2s.mux_hosts.lock().unwrap_or_else(|p| p.into_inner());
            if hosts
                .get(&self.remote)
                .is_some_and(|h| h.generation == self.generation)
            {
                hosts.remove(&self.remote);
            }
        }
        rx.close();
        let mut left = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let MuxMsg::Stanza(s) = m {
                left.push(s);
            }
        }
        self.pending.clear();
        for s in left {
            s2s.send(server, s);
        }
    }
}

/// The next request for a host stream; never, for a stream that is none.
pub(super) async fn next(host: &mut Host) -> MuxMsg {
    match host.rx.as_mut() {
        Some(rx) => match rx.recv().await {
            Some(m) => m,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Ask the stream another domain of ours has to `remote` to carry `local`.
pub(super) async fn join(s2s: &Arc<S2s>, local: &str, remote: &str) -> Option<HostHandle> {
    if !s2s.dialback_allowed() {
        return None;
    }
    let host = s2s
        .mux_hosts
        .lock()
        .ok()?
        .get(remote)
        .filter(|h| !h.tx.is_closed())
        .cloned()?;
    let (reply, answer) = oneshot::channel();
    host.tx
        .send(MuxMsg::Join {
            local: local.to_string(),
            reply,
        })
        .await
        .ok()?;
    let wait = Duration::from_secs(s2s.config.connect_timeout);
    match tokio::time::timeout(wait, answer).await {
        Ok(Ok(true)) => Some(host),
        _ => None,
    }
}

/// Hand `first` and what follows to the host stream until this domain's
/// queue has been quiet for the idle time; a stanza the host could no
/// longer take is given back (the host stream ended).
pub(super) async fn relay(
    server: &Arc<Server>,
    s2s: &Arc<S2s>,
    host: &HostHandle,
    first: Stanza,
    stanzas: &mut mpsc::Receiver<Stanza>,
) -> Option<Stanza> {
    s2s.multiplexed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let idle = Duration::from_secs(s2s.config.idle_timeout);
    let mut shutdown = server.shutdown_signal();
    let mut next = Some(first);
    let left = loop {
        let s = match next.take() {
            Some(s) => s,
            None => tokio::select! {
                r = tokio::time::timeout(idle, stanzas.recv()) => match r {
                    Ok(Some(s)) => s,
                    Ok(None) | Err(_) => break None,
                },
                _ = crate::server::until_shutdown(&mut shutdown) => break None,
            },
        };
        if let Err(mpsc::error::SendError(MuxMsg::Stanza(s))) =
            host.tx.send(MuxMsg::Stanza(s)).await
        {
            break Some(s);
        }
    };
    s2s.multiplexed
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    left
}
