//! Outgoing server streams (RFC 6120 §4–§6 as the initiating entity): one
//! task per (our domain, their domain), started by the first stanza. It
//! finds the peer (`resolve.rs`), connects with STARTTLS or direct TLS,
//! authenticates with SASL EXTERNAL when the peer's certificate proves its
//! domain (XEP-0178) or else with Server Dialback (XEP-0220), then writes
//! stanzas until the stream has been idle for `[s2s] idle_timeout`.
//!
//! Dialback verification requests (`<db:verify/>`) do not use this
//! stream: they get a connection of their own (`verify.rs`).
//!
//! When the peer cannot be reached, every queued stanza bounces with
//! `remote-server-not-found` (or `remote-server-timeout`), and later ones
//! bounce at once during a back-off that doubles up to five minutes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};
use roost_stream::StreamEvent;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::resolve::Target;
use super::stream::{S2sError, S2sStream};
use super::{bidi, bounce, dialback, multiplex, S2s};
use crate::server::Server;

/// Silence after which a whitespace keepalive is sent (RFC 6120 §4.6.1).
const KEEPALIVE: Duration = Duration::from_secs(60);
/// First retry delay after a failed connection; doubles to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

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
                Some(s) => s,
                None => break,
            },
            _ = tokio::time::sleep(idle) => {
                if ctx.s2s.retire(&ctx.local, &ctx.remote, generation) {
                    drain_after_retire(&ctx, &mut stanzas);
                    break;
                }
                continue;
            }
            _ = crate::server::until_shutdown(&mut shutdown) => break,
        };
        if retry_at.is_some_and(|at| Instant::now() < at) {
            bounce(&ctx.server, &first, unreachable_error(false));
            continue;
        }
        // XEP-0220 §2.4: another of our domains may already have a stream
        // to this server that takes one more domain.
        let first = match multiplex::join(&ctx.s2s, &ctx.local, &ctx.remote).await {
            Some(host) => {
                failures = 0;
                retry_at = None;
                match multiplex::relay(&ctx.server, &ctx.s2s, &host, first, &mut stanzas).await {
                    None => continue,
                    // The host stream went away: our own stream, then.
                    Some(left) => left,
                }
            }
            None => first,
        };
        match connect(&ctx).await {
            Ok(stream) => {
                failures = 0;
                retry_at = None;
                pump(&ctx, stream, first, &mut stanzas).await;
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

/// What slipped into the queue after this task left the map goes through
/// a fresh task.
fn drain_after_retire(ctx: &Ctx, stanzas: &mut mpsc::Receiver<Stanza>) {
    stanzas.close();
    while let Ok(s) = stanzas.try_recv() {
        ctx.s2s.send(&ctx.server, s);
    }
}

/// Set up and authenticate a stream within `connect_timeout`; `Err(true)`
/// when the time ran out, `Err(false)` for any other failure.
async fn connect(ctx: &Ctx) -> Result<S2sStream, bool> {
    let wait = Duration::from_secs(ctx.s2s.config.connect_timeout);
    let attempt = async {
        let targets = ctx.s2s.resolver.targets(&ctx.remote).await;
        if targets.is_empty() {
            tracing::info!(remote = %ctx.remote, "no address for the server");
        }
        for target in targets {
            match try_target(ctx, &target).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    tracing::info!(remote = %ctx.remote, addr = %target.addr, error = %e, "server stream failed")
                }
            }
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

async fn try_target(ctx: &Ctx, target: &Target) -> Result<S2sStream, S2sError> {
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
    let wait = Duration::from_secs(s2s.config.connect_timeout);
    let opened = open(&mut st, &ctx.local, &ctx.remote, wait).await?;
    let (header_id, features) =
        secure(&mut st, s2s, tls_cfg, &ctx.local, &ctx.remote, opened).await?;
    // XEP-0288 §2: ask before authenticating, once TLS is on.
    if s2s.config.bidi
        && bidi::offered(&features)
        && (st.is_tls() || !s2s.config.require_encryption)
    {
        st.send(&bidi::request()).await?;
        st.bidi = true;
    }
    let proven = st.is_tls() && verified.load(Ordering::Relaxed);
    let mechanisms = features.get_child("mechanisms", ns::SASL);
    let external = mechanisms.is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"));
    // EXTERNAL proves *our* domain with our certificate; it works whenever
    // the peer trusts it. Whether *we* could verify the peer's certificate
    // matters only when certificates are required (the handshake failed
    // already if not); otherwise we trust the peer as far as DNS took us,
    // exactly as dialback would.
    if st.is_tls() && external && (proven || s2s.dialback_allowed()) {
        // XEP-0178: the authorization identity, for older peers.
        let authzid = base64::engine::general_purpose::STANDARD.encode(ctx.local.as_bytes());
        st.send(
            &Element::bare("auth", ns::SASL)
                .attr_set("mechanism", "EXTERNAL")
                .text_node(authzid),
        )
        .await?;
        let answer = next_element(&mut st).await?;
        if answer.is("success", ns::SASL) {
            st.restart();
            let (id, after) = open(&mut st, &ctx.local, &ctx.remote, wait).await?;
            st.stream_id = id;
            st.dialback_offered = after.has_child("dialback", dialback::FEATURE_NS);
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
    // XEP-0220 §2.4: only with a peer that offers it (or an old one that
    // offers no SASL at all).
    let offers_dialback =
        features.has_child("dialback", dialback::FEATURE_NS) || mechanisms.is_none();
    st.dialback_offered = features.has_child("dialback", dialback::FEATURE_NS);
    st.stream_id = header_id.clone();
    if offers_dialback && (!s2s.config.require_encryption || st.is_tls()) {
        let Some(id) = header_id else {
            return Err(S2sError::Refused("no stream id for dialback".into()));
        };
        let key = s2s.secret.key(&ctx.remote, &ctx.local, &id);
        st.send_db(
            "result",
            &[("from", &ctx.local), ("to", &ctx.remote)],
            Some(&key),
        )
        .await?;
        loop {
            let el = next_element(&mut st).await?;
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
pub(super) async fn open(
    st: &mut S2sStream,
    local: &str,
    remote: &str,
    wait: Duration,
) -> Result<(Option<String>, Element), S2sError> {
    st.open(local, Some(remote), None).await?;
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

/// TLS for a stream that has none yet: STARTTLS when offered; refused
/// when the peer offers none and encryption is required. The features
/// after the restart (or the same ones without TLS).
pub(super) async fn secure(
    st: &mut S2sStream,
    s2s: &S2s,
    tls_cfg: std::sync::Arc<rustls::ClientConfig>,
    local: &str,
    remote: &str,
    opened: (Option<String>, Element),
) -> Result<(Option<String>, Element), S2sError> {
    if st.is_tls() {
        return Ok(opened);
    }
    if opened.1.has_child("starttls", ns::TLS) {
        st.send(&Element::bare("starttls", ns::TLS)).await?;
        match next_element(st).await? {
            el if el.is("proceed", ns::TLS) => {}
            _ => return Err(S2sError::Refused("STARTTLS refused".into())),
        }
        st.client_tls(tls_cfg, remote).await?;
        let wait = Duration::from_secs(s2s.config.connect_timeout);
        return open(st, local, remote, wait).await;
    }
    if s2s.config.require_encryption {
        return Err(S2sError::Refused("the peer offers no TLS".into()));
    }
    Ok(opened)
}

pub(super) async fn next_element(st: &mut S2sStream) -> Result<Element, S2sError> {
    match st.next(Duration::from_secs(30)).await? {
        StreamEvent::Element(el) => Ok(el),
        StreamEvent::End => Err(S2sError::Closed),
        StreamEvent::Header(_) => Err(S2sError::Refused("unexpected stream header".into())),
    }
}

/// The authenticated stream: write stanzas as they come, answer keepalive
/// needs, collect verification answers; end when idle or broken.
async fn pump(ctx: &Ctx, mut st: S2sStream, first: Stanza, stanzas: &mut mpsc::Receiver<Stanza>) {
    let idle = Duration::from_secs(ctx.s2s.config.idle_timeout);
    let mut last_stanza = Instant::now();
    let mut last_write = Instant::now();
    let mut shutdown = ctx.server.shutdown_signal();
    let mut heard_back = false;
    // Other domains of ours may join this stream (XEP-0220 §2.4).
    let mut host = multiplex::Host::open(&ctx.s2s, &ctx.local, &ctx.remote, &st);
    if let Err(e) = st.send(&first.el).await {
        tracing::info!(remote = %ctx.remote, error = %e, "server stream broke");
        bounce(&ctx.server, &first, unreachable_error(false));
        return;
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
            m = multiplex::next(&mut host) => {
                if host.handle(&ctx.server, &ctx.s2s, &mut st, m).await.is_err() {
                    break;
                }
                last_stanza = Instant::now();
                last_write = last_stanza;
            }
            ev = st.next(idle) => match ev {
                Ok(StreamEvent::Element(el)) if el.is("result", dialback::NS) && host.answer(&el) => {}
                Ok(StreamEvent::Element(el)) if st.bidi => {
                    if !heard_back {
                        heard_back = true;
                        tracing::info!(local = %ctx.local, remote = %ctx.remote, "bidirectional stream: the peer sends over it too");
                    }
                    if let Err(e) = inbound(ctx, &mut st, el).await {
                        st.fail(e, None).await;
                        tracing::info!(remote = %ctx.remote, error = %e, "server stream refused a stanza");
                        break;
                    }
                    last_stanza = Instant::now();
                }
                Ok(StreamEvent::Element(el)) => {
                    tracing::debug!(remote = %ctx.remote, name = el.name(), "ignored on an outgoing stream");
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
                host.close(&ctx.server, &ctx.s2s);
                st.fail(roost_proto::StreamError::SystemShutdown, None).await;
                return;
            }
        }
    }
    host.close(&ctx.server, &ctx.s2s);
    st.close().await;
}

/// Something the peer sent back on a bidirectional outgoing stream
/// (XEP-0288): stanzas from the domain we connected to, for domains we
/// host. We do not take dialback requests for further domains here (the
/// peer gets a dialback error, XEP-0220 §2.4), and answers to requests we
/// never made are ignored rather than believed (XEP-0288 §4).
async fn inbound(
    ctx: &Ctx,
    st: &mut S2sStream,
    el: Element,
) -> Result<(), roost_proto::StreamError> {
    if el.is("result", dialback::NS) || el.is("verify", dialback::NS) {
        if el.attr("type").is_none() {
            let (from, to) = (el.attr("from").unwrap_or(""), el.attr("to").unwrap_or(""));
            let error = format!(
                "<error type='cancel'><feature-not-implemented xmlns='{}'/></error>",
                ns::STANZAS
            );
            let mut attrs = vec![("from", to), ("to", from), ("type", "error")];
            if let Some(id) = el.attr("id") {
                attrs.push(("id", id));
            }
            let _ = st.send_db(el.name(), &attrs, Some(&error)).await;
        }
        return Ok(());
    }
    let stanza = super::admit(&ctx.server, el, |d| d == ctx.remote, true)?;
    ctx.server.route(stanza);
    Ok(())
}
