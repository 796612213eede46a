//! XEP-0220 §2.1.3–§2.1.4 as the receiving server: is the key a peer gave
//! us really its domain's? We ask the authoritative server for that
//! domain, found through DNS as for any outgoing stream, over a connection
//! of its own that carries nothing but the `<db:verify/>` (some servers,
//! ejabberd among them, do not answer it on a stream already
//! authenticated with SASL, and a stanza stream should not wait on it).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::outgoing::{next_element, open, secure};
use super::resolve::Target;
use super::stream::{S2sError, S2sStream};
use super::{dialback, S2s};

/// What the authoritative server said of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid,
    Invalid,
    /// No authoritative server answered (XEP-0220 §2.5: the receiving
    /// server then answers with `<remote-server-not-found/>`).
    Unreachable,
}

/// `Valid` only when the authoritative server says the key is valid.
pub(super) async fn ask(
    s2s: &Arc<S2s>,
    max_stanza: usize,
    receiving: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> Verdict {
    let wait = Duration::from_secs(s2s.config.connect_timeout);
    let attempt = async {
        for target in s2s.resolver.targets(originating).await {
            let r = try_target(
                s2s,
                &target,
                max_stanza,
                receiving,
                originating,
                stream_id,
                key,
            );
            match r.await {
                Ok(true) => return Verdict::Valid,
                Ok(false) => return Verdict::Invalid,
                Err(e) => {
                    tracing::info!(%originating, addr = %target.addr, error = %e, "dialback verification failed")
                }
            }
        }
        Verdict::Unreachable
    };
    tokio::time::timeout(wait, attempt)
        .await
        .unwrap_or(Verdict::Unreachable)
}

async fn try_target(
    s2s: &Arc<S2s>,
    target: &Target,
    max_stanza: usize,
    receiving: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> Result<bool, S2sError> {
    let tcp = TcpStream::connect(target.addr).await?;
    let mut st = S2sStream::new(tcp, target.addr, max_stanza);
    // Dialback trusts DNS, not the peer's certificate.
    let (tls_cfg, _) = s2s
        .tls
        .client_config(true, target.direct_tls)
        .map_err(|e| S2sError::Refused(e.to_string()))?;
    if target.direct_tls {
        st.client_tls(tls_cfg.clone(), originating).await?;
    }
    let wait = Duration::from_secs(s2s.config.connect_timeout);
    let opened = open(&mut st, receiving, originating, wait).await?;
    secure(&mut st, s2s, tls_cfg, receiving, originating, opened).await?;
    let key = roost_proto::serialize::text_escaped(key);
    st.send_db(
        "verify",
        &[("from", receiving), ("to", originating), ("id", stream_id)],
        Some(&key),
    )
    .await?;
    loop {
        let el = next_element(&mut st).await?;
        if el.is("verify", dialback::NS) && el.attr("id") == Some(stream_id) {
            let valid = el.attr("type") == Some("valid");
            st.close().await;
            return Ok(valid);
        }
        if matches!(el.name(), "error") {
            return Err(S2sError::Refused("stream error".into()));
        }
    }
}
