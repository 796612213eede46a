//! IQ requests the server itself sends (caps queries, later self-pings):
//! each gets a fresh id, waits for its response with a timeout, and the
//! response is matched when it arrives addressed to the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minidom::Element;
use roost_proto::{Condition, ElementExt, StanzaError};
use tokio::sync::oneshot;

use crate::server::Server;

#[derive(Default)]
pub struct PendingIqs {
    map: Mutex<HashMap<String, oneshot::Sender<Element>>>,
}

impl PendingIqs {
    fn insert(&self, id: String, tx: oneshot::Sender<Element>) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
    }
    fn remove(&self, id: &str) -> Option<oneshot::Sender<Element>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }
}

impl Server {
    /// Send an IQ from the server's domain and wait for its result; an
    /// error response or a timeout becomes a `StanzaError`.
    pub async fn request_iq(
        self: &Arc<Self>,
        mut iq: Element,
        timeout: Duration,
    ) -> Result<Element, StanzaError> {
        let id = format!("roost-{}", roost_proto::id::random_token(16));
        iq.set("id", id.clone());
        iq.set("from", self.config.domain.as_str());
        let (tx, rx) = oneshot::channel();
        self.pending_iqs.insert(id.clone(), tx);
        self.route_element(iq);
        let answer = tokio::time::timeout(timeout, rx).await;
        self.pending_iqs.remove(&id);
        match answer {
            Ok(Ok(el)) if el.attr("type") == Some("result") => Ok(el),
            Ok(Ok(el)) => Err(StanzaError::from_stanza(&el)
                .unwrap_or_else(|| StanzaError::new(Condition::UndefinedCondition))),
            _ => Err(StanzaError::new(Condition::RemoteServerTimeout)),
        }
    }

    /// A result or error addressed to the server; `true` when it answered
    /// one of our requests.
    pub fn iq_response(&self, el: Element) -> bool {
        let Some(id) = el.attr("id").map(str::to_string) else {
            return false;
        };
        match self.pending_iqs.remove(&id) {
            Some(tx) => {
                let _ = tx.send(el);
                true
            }
            None => false,
        }
    }
}
