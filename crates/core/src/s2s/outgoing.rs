//! Outgoing server streams (RFC 6120 §4–§6 as the initiating entity): one
//! task per (our domain, their domain), started by the first stanza. It
//! finds the peer (`resolve.rs`), connects with STARTTLS or direct TLS,
//! authenticates with SASL EXTERNAL when the peer's certificate proves its
//! domain (XEP-0178) or else with Server Dialback (XEP-0220), then writes
//! stanzas until the stream has been idle for `[s2s] idle_timeout`.
//!
//! Dialback verification requests (`<db:verify/>`) to the same peer go
//! over this stream too, also before it is authenticated: two servers
//! dialling each other back at once must not wait on each other.
//!
//! When the peer cannot be reached, every queued stanza bounces with
//! `remote-server-not-found` (or `remote-server-timeout`), and later ones
//! bounce at once during a back-off that doubles up to five minutes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};
use roost_stream::StreamEvent;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::resolve::Target;
use super::stream::{S2sError, S2sStream};
use super::{bounce, dialback, S2s, VerifyRequest};
use crate::server::Server;

/// Silence after which a whitespace keepalive is sent (RFC 6120 §4.6.1).
const KEEPALIVE: Duration = Duration::from_secs(60);
/// First retry delay after a failed connection; doubles to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Verification answers awaited: stream id -> who asked.
type Waiting = HashMap<String, oneshot::Sender<bool>>;

struct Ctx {
    server: Arc<Server>,
    s2s: Arc<S2s>,
    local: String,
    remote: String,
}

pub(super) async fn run(
    server: Arc<Server>,
    s2s: Arc<S2s>,
    local: String,
    remote: String,
    generation: u64,
    mut stanzas: mpsc::Receiver<Stanza>,
    mut verifies: mpsc::Receiver<VerifyRequest>,
) {
    let ctx = Ctx {
        server,
        s2s,
        local,
        remote,
    };
    let idle = Duration::from_secs(ctx.s2s.config.idle_timeout);
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    let mut shutdown = ctx.server.shutdown_signal();
    loop {
        // Nothing to do until something is queued.
        let first = tokio::select! {
            s = stanzas.recv() => match s {
                Some(s) => Some(s),
                None => break,
            },
            v = verifies.recv() => {
                let Some(v) = v else { break };
                if retry_at.is_some_and(|at| Instant::now() < at) {
                    let _ = v.answer.send(false);
                    continue;
                }
                // Connect to verify; the request goes out once the stream is up.
                if verifies_first(&ctx, v, &mut stanzas, &mut verifies).await {
                    failures = 0;
                    retry_at = None;
                }
                continue;
            }
            _ = tokio::time::sleep(idle) => {
                if ctx.s2s.retire(&ctx.local, &ctx.remote, generation) {
                    drain_after_retire(&ctx, &mut stanzas, &mut verifies);
                    break;
                }
                continue;
            }
            _ = crate::server::until_shutdown(&mut shutdown) => break,
        };
        let Some(first) = first else { continue };
        if retry_at.is_some_and(|at| Instant::now() < at) {
            bounce(&ctx.server, &first, unreachable_error(false));
            continue;
        }
        let mut waiting = Waiting::new();
        match connect(&ctx, &mut verifies, &mut waiting).await {
            Ok(stream) => {
                failures = 0;
                retry_at = None;
                pump(
                    &ctx,
                    stream,
                    Some(first),
                    &mut stanzas,
                    &mut verifies,
                    waiting,
                )
                .await;
            }
            Err(timed_out) => {
                failures += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << failures.min(8).saturating_sub(1))
                    .min(MAX_BACKOFF);
                retry_at = Some(Instant::now() + backoff);
                let err = unreachable_error(timed_out);
                bounce(&ctx.server, &first, err.clone());
                while let Ok(s) = stanzas.try_recv() {
                    bounce(&ctx.server, &s, err.clone());
                }
                for (_, w) in waiting.drain() {
                    let _ = w.send(false);
                }
            }
        }
    }
    ctx.s2s.retire(&ctx.local, &ctx.remote, generation);
}

fn unreachable_error(timed_out: bool) -> StanzaError {
    if timed_out {
        StanzaError::new(Condition::RemoteServerTimeout)
    } else {
        StanzaError::new(Condition::RemoteServerNotFound)
    }
}

/// What slipped into the queues after this task left the map goes through
/// a fresh task.
fn drain_after_retire(
    ctx: &Ctx,
    stanzas: &mut mpsc::Receiver<Stanza>,
    verifies: &mut mpsc::Receiver<VerifyRequest>,
) {
    stanzas.close();
    verifies.close();
    while let Ok(s) = stanzas.try_recv() {
        ctx.s2s.send(&ctx.server, s);
    }
    while let Ok(v) = verifies.try_recv() {
        let _ = v.answer.send(false);
    }
}

/// A verification request arrived with no stream up: connect, ask, and
/// keep the stream for what follows. `true` if the stream came up.
async fn verifies_first(
    ctx: &Ctx,
    v: VerifyRequest,
    stanzas: &mut mpsc::Receiver<Stanza>,
    verifies: &mut mpsc::Receiver<VerifyRequest>,
) -> bool {
    let mut waiting = Waiting::new();
    // Re-queue it in front: `connect` sends what `verifies` holds, so
    // send this one by hand once connected.
    match connect_with(ctx, verifies, &mut waiting, Some(v)).await {
        Ok(stream) => {
            pump(ctx, stream, None, stanzas, verifies, waiting).await;
            true
        }
        Err(_) => {
            for (_, w) in waiting.drain() {
                let _ = w.send(false);
            }
            false
        }
    }
}

async fn connect(
    ctx: &Ctx,
    verifies: &mut mpsc::Receiver<VerifyRequest>,
    waiting: &mut Waiting,
) -> Result<S2sStream, bool> {
    connect_with(ctx, verifies, waiting, None).await
}

/// Set up and authenticate a stream within `connect_timeout`; `Err(true)`
/// when the time ran out, `Err(false)` for any other failure.
async fn connect_with(
    ctx: &Ctx,
    verifies: &mut mpsc::Receiver<VerifyRequest>,
    waiting: &mut Waiting,
    mut first_verify: Option<VerifyRequest>,
) -> Result<S2sStream, bool> {
    let wait = Duration::from_secs(ctx.s2s.config.connect_timeout);
    let attempt = async {
        let targets = ctx.s2s.resolver.targets(&ctx.remote).await;
        if targets.is_empty() {
            tracing::info!(remote = %ctx.remote, "no address for the server");
        }
        for target in targets {
            match try_target(ctx, &target, verifies, waiting, &mut first_verify).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    tracing::info!(remote = %ctx.remote, addr = %target.addr, error = %e, "server stream failed")
                }
            }
        }
        if let Some(v) = first_verify.take() {
            let _ = v.answer.send(false);
        }
        Err(false)
    };
    match tokio::time::timeout(wait, attempt).await {
        Ok(r) => r,
        Err(_) => {
            tracing::info!(remote = %ctx.remote, "server stream set-up timed out");
            Err(true)
        }
    }
}

async fn try_target(
    ctx: &Ctx,
    target: &Target,
    verifies: &mut mpsc::Receiver<VerifyRequest>,
    waiting: &mut Waiting,
    first_verify: &mut Option<VerifyRequest>,
) -> Result<S2sStream, S2sError> {
    let s2s = &ctx.s2s;
    let tcp = TcpStream::connect(target.addr).await?;
    let max = ctx.server.config.limits.max_stanza_size;
    let mut st = S2sStream::new(tcp, target.addr, max);
    let (tls_cfg, verified) = s2s
        .tls
        .client_config(s2s.dialback_allowed(), target.direct_tls)
        .map_err(|e| S2sError::Refused(e.to_string()))?;
    if target.direct_tls {
        st.client_tls(tls_cfg.clone(), &ctx.remote).await?;
    }
    let (mut header_id, mut features) = open(ctx, &mut st).await?;
    if !st.is_tls() {
        if features.has_child("starttls", ns::TLS) {
            st.send(&Element::bare("starttls", ns::TLS)).await?;
            match next_element(&mut st).await? {
                el if el.is("proceed", ns::TLS) => {}
                _ => return Err(S2sError::Refused("STARTTLS refused".into())),
            }
            st.client_tls(tls_cfg, &ctx.remote).await?;
            (header_id, features) = open(ctx, &mut st).await?;
        } else if s2s.config.require_encryption {
            return Err(S2sError::Refused("the peer offers no TLS".into()));
        }
    }
    // Verification requests may go now, before we are authenticated.
    if let Some(v) = first_verify.take() {
        send_verify(ctx, &mut st, v, waiting).await?;
    }
    let proven = st.is_tls() && verified.load(Ordering::Relaxed);
    let external = features
        .get_child("mechanisms", ns::SASL)
        .is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"));
    if proven && external {
        // XEP-0178: the authorization identity, for older peers.
        let authzid = base64::engine::general_purpose::STANDARD.encode(ctx.local.as_bytes());
        st.send(
            &Element::bare("auth", ns::SASL)
                .attr_set("mechanism", "EXTERNAL")
                .text_node(authzid),
        )
        .await?;
        let answer = serving_verifies(ctx, &mut st, verifies, waiting).await?;
        if answer.is("success", ns::SASL) {
            st.restart();
            open(ctx, &mut st).await?;
            tracing::info!(local = %ctx.local, remote = %ctx.remote, "server stream authenticated (certificate)");
            return Ok(st);
        }
        tracing::info!(remote = %ctx.remote, "SASL EXTERNAL refused");
    }
    if !s2s.dialback_allowed() {
        return Err(S2sError::Refused(
            "the peer's certificate does not prove its domain, and dialback is off".into(),
        ));
    }
    if !s2s.config.require_encryption || st.is_tls() {
        let Some(id) = header_id else {
            return Err(S2sError::Refused("no stream id for dialback".into()));
        };
        let key = s2s.secret.key(&ctx.remote, &ctx.local, &id);
        st.send(
            &Element::bare("result", dialback::NS)
                .attr_set("from", ctx.local.as_str())
                .attr_set("to", ctx.remote.as_str())
                .text_node(key),
        )
        .await?;
        loop {
            let el = serving_verifies(ctx, &mut st, verifies, waiting).await?;
            if !el.is("result", dialback::NS) {
                continue;
            }
            return match el.attr("type") {
                Some("valid") => {
                    tracing::info!(local = %ctx.local, remote = %ctx.remote, "server stream authenticated (dialback)");
                    Ok(st)
                }
                _ => Err(S2sError::Refused("dialback refused".into())),
            };
        }
    }
    Err(S2sError::Refused("no way to authenticate".into()))
}

/// Send our header and read the peer's header and features; the id of
/// the peer's stream (for dialback keys) and the features.
async fn open(ctx: &Ctx, st: &mut S2sStream) -> Result<(Option<String>, Element), S2sError> {
    st.open(&ctx.local, Some(&ctx.remote), None).await?;
    let wait = Duration::from_secs(ctx.s2s.config.connect_timeout);
    let id = match st.next(wait).await? {
        StreamEvent::Header(h) => h.id,
        _ => return Err(S2sError::Refused("expected a stream header".into())),
    };
    let features = next_element(st).await?;
    if !features.is("features", ns::STREAM) {
        return Err(S2sError::Refused("expected stream features".into()));
    }
    Ok((id, features))
}

async fn next_element(st: &mut S2sStream) -> Result<Element, S2sError> {
    match st.next(Duration::from_secs(30)).await? {
        StreamEvent::Element(el) => Ok(el),
        StreamEvent::End => Err(S2sError::Closed),
        StreamEvent::Header(_) => Err(S2sError::Refused("unexpected stream header".into())),
    }
}

async fn send_verify(
    ctx: &Ctx,
    st: &mut S2sStream,
    v: VerifyRequest,
    waiting: &mut Waiting,
) -> Result<(), S2sError> {
    st.send(
        &Element::bare("verify", dialback::NS)
            .attr_set("from", v.receiving.as_str())
            .attr_set("to", ctx.remote.as_str())
            .attr_set("id", v.stream_id.as_str())
            .text_node(v.key),
    )
    .await?;
    waiting.insert(v.stream_id, v.answer);
    Ok(())
}

/// A `<db:verify type=…/>` answer for a request we sent.
fn verify_answer(el: &Element, waiting: &mut Waiting) -> bool {
    if !el.is("verify", dialback::NS) {
        return false;
    }
    if let Some(w) = el.attr("id").and_then(|id| waiting.remove(id)) {
        let _ = w.send(el.attr("type") == Some("valid"));
    }
    true
}

/// The next element that is not a verification answer, sending
/// verification requests as they come.
async fn serving_verifies(
    ctx: &Ctx,
    st: &mut S2sStream,
    verifies: &mut mpsc::Receiver<VerifyRequest>,
    waiting: &mut Waiting,
) -> Result<Element, S2sError> {
    loop {
        tokio::select! {
            ev = st.next(Duration::from_secs(ctx.s2s.config.connect_timeout)) => match ev? {
                StreamEvent::Element(el) if verify_answer(&el, waiting) => {}
                StreamEvent::Element(el) => return Ok(el),
                StreamEvent::End => return Err(S2sError::Closed),
                StreamEvent::Header(_) => return Err(S2sError::Refused("unexpected header".into())),
            },
            Some(v) = verifies.recv() => send_verify(ctx, st, v, waiting).await?,
        }
    }
}

/// The authenticated stream: write stanzas as they come, answer keepalive
/// needs, collect verification answers; end when idle or broken.
async fn pump(
    ctx: &Ctx,
    mut st: S2sStream,
    first: Option<Stanza>,
    stanzas: &mut mpsc::Receiver<Stanza>,
    verifies: &mut mpsc::Receiver<VerifyRequest>,
    mut waiting: Waiting,
) {
    let idle = Duration::from_secs(ctx.s2s.config.idle_timeout);
    let mut last_stanza = Instant::now();
    let mut last_write = Instant::now();
    let mut shutdown = ctx.server.shutdown_signal();
    if let Some(s) = first {
        if let Err(e) = st.send(&s.el).await {
            tracing::info!(remote = %ctx.remote, error = %e, "server stream broke");
            bounce(&ctx.server, &s, unreachable_error(false));
            return;
        }
    }
    loop {
        let keepalive_at = last_write + KEEPALIVE;
        let idle_at = last_stanza + idle;
        tokio::select! {
            s = stanzas.recv() => {
                let Some(s) = s else { break };
                if let Err(e) = st.send(&s.el).await {
                    tracing::info!(remote = %ctx.remote, error = %e, "server stream broke");
                    bounce(&ctx.server, &s, unreachable_error(false));
                    break;
                }
                last_stanza = Instant::now();
                last_write = last_stanza;
            }
            Some(v) = verifies.recv() => {
                if send_verify(ctx, &mut st, v, &mut waiting).await.is_err() {
                    break;
                }
                last_write = Instant::now();
            }
            ev = st.next(idle) => match ev {
                Ok(StreamEvent::Element(el)) => {
                    if !verify_answer(&el, &mut waiting) {
                        tracing::debug!(remote = %ctx.remote, name = el.name(), "ignored on an outgoing stream");
                    }
                }
                Ok(StreamEvent::End) | Err(_) => break,
                Ok(StreamEvent::Header(_)) => break,
            },
            _ = tokio::time::sleep_until(keepalive_at) => {
                if st.send_bytes(b" ").await.is_err() {
                    break;
                }
                last_write = Instant::now();
            }
            _ = tokio::time::sleep_until(idle_at) => {
                tracing::debug!(remote = %ctx.remote, "idle server stream closed");
                break;
            }
            _ = crate::server::until_shutdown(&mut shutdown) => {
                st.fail(roost_proto::StreamError::SystemShutdown, None).await;
                return;
            }
        }
    }
    for (_, w) in waiting.drain() {
        let _ = w.send(false);
    }
    st.close().await;
}
