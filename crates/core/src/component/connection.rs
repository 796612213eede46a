//! One external component's connection (XEP-0114 §3): the component
//! opens a `jabber:component:accept` stream to its domain, we answer with
//! a stream id, it proves the shared secret with `<handshake/>`, and then
//! stanzas flow both ways. A stanza from the component must come from its
//! domain or a subdomain (else `invalid-from`) and name a recipient (else
//! `improper-addressing`); an unknown domain gets `host-unknown`, a wrong
//! secret `not-authorized`. A newer stream of the same component replaces
//! this one, which ends with `conflict`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use roost_proto::{ns, Stanza, StreamError};
use roost_stream::StreamEvent;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Component;
use crate::s2s::stream::{S2sError, S2sStream};
use crate::server::Server;

/// Time for the header and the handshake.
const SETUP: Duration = Duration::from_secs(30);
/// Silence after which a whitespace keepalive is sent.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// How long an authenticated component may stay silent: components are
/// often quiet for hours; the keepalives find dead connections.
const QUIET: Duration = Duration::from_secs(24 * 3600);

/// The configured components, by domain.
pub type Components = HashMap<String, Arc<Component>>;

pub async fn serve_connection(
    server: Arc<Server>,
    components: Arc<Components>,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let mut st = S2sStream::component(tcp, peer, server.config.limits.max_stanza_size);
    match run(&server, &components, &mut st).await {
        Ok(()) => st.close().await,
        Err(S2sError::Refused(why)) => tracing::info!(%peer, reason = %why, "component refused"),
        Err(e) => tracing::debug!(%peer, error = %e, "component stream ended"),
    }
}

async fn run(
    server: &Arc<Server>,
    components: &Components,
    st: &mut S2sStream,
) -> Result<(), S2sError> {
    let header = match st.next(SETUP).await? {
        StreamEvent::Header(h) => h,
        _ => {
            st.fail(StreamError::NotWellFormed, None).await;
            return Err(S2sError::Refused("no stream header".into()));
        }
    };
    let to = header.to.clone().unwrap_or_default();
    let Some(component) = components.get(&to).cloned() else {
        st.open(&server.config.domain, None, None).await?;
        st.fail(StreamError::HostUnknown, None).await;
        return Err(S2sError::Refused(format!("no component {to:?}")));
    };
    let id = roost_proto::id::random_token(16);
    st.open(&component.domain, None, Some(&id)).await?;
    let handshake = match st.next(SETUP).await? {
        StreamEvent::Element(el) if el.name() == "handshake" => el,
        _ => {
            st.fail(StreamError::NotAuthorized, None).await;
            return Err(S2sError::Refused("no handshake".into()));
        }
    };
    if !component.handshake_ok(&id, &handshake.text()) {
        st.fail(StreamError::NotAuthorized, None).await;
        return Err(S2sError::Refused(format!(
            "wrong secret for {}",
            component.domain
        )));
    }
    st.send(&Element::bare("handshake", ns::CLIENT)).await?;
    let (generation, mut outbound, mut replaced) = component.attach();
    tracing::info!(domain = %component.domain, peer = %st.peer, "component connected");
    let result = pump(server, &component, st, &mut outbound, &mut replaced).await;
    component.detach(generation);
    // What was queued for this stream goes back through the router: to a
    // newer stream, or bounced.
    outbound.close();
    while let Ok(s) = outbound.try_recv() {
        server.route(s);
    }
    tracing::info!(domain = %component.domain, "component disconnected");
    result
}

async fn pump(
    server: &Arc<Server>,
    component: &Component,
    st: &mut S2sStream,
    outbound: &mut tokio::sync::mpsc::Receiver<Stanza>,
    replaced: &mut tokio::sync::oneshot::Receiver<()>,
) -> Result<(), S2sError> {
    let mut shutdown = server.shutdown_signal();
    let mut last_write = Instant::now();
    loop {
        tokio::select! {
            ev = st.next(QUIET) => {
                let Some(el) = st.element_or_end(ev).await? else {
                    return Ok(());
                };
                if let Err(e) = admit(component, el).map(|s| server.route(s)) {
                    st.fail(e, None).await;
                    return Err(S2sError::Refused(format!("{e}")));
                }
            }
            s = outbound.recv() => {
                // The queue closes only when a newer stream took over.
                let Some(s) = s else {
                    st.fail(StreamError::Conflict, Some("replaced by a new connection")).await;
                    return Ok(());
                };
                if let Err(e) = st.send(&s.el).await {
                    server.route(s);
                    return Err(e);
                }
                last_write = Instant::now();
            }
            _ = tokio::time::sleep_until(last_write + KEEPALIVE) => {
                st.send_bytes(b" ").await?;
                last_write = Instant::now();
            }
            _ = &mut *replaced => {
                st.fail(StreamError::Conflict, Some("replaced by a new connection")).await;
                return Ok(());
            }
            _ = crate::server::until_shutdown(&mut shutdown) => {
                st.fail(StreamError::SystemShutdown, None).await;
                return Ok(());
            }
        }
    }
}

/// A stanza from the component, checked before it is routed.
fn admit(component: &Component, el: Element) -> Result<Stanza, StreamError> {
    let stanza = Stanza::parse(el).map_err(|_| StreamError::UnsupportedStanzaType)?;
    if !stanza
        .from
        .as_ref()
        .is_some_and(|f| component.serves(f.domain().as_str()))
    {
        return Err(StreamError::InvalidFrom);
    }
    if stanza.to.is_none() {
        return Err(StreamError::ImproperAddressing);
    }
    Ok(stanza)
}
