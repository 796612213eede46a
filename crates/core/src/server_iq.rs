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

/// The cluster node named in one of our request ids (`roost-<node>.<token>`).
fn asking_node(id: &str) -> Option<&str> {
    id.strip_prefix("roost-")?
        .split_once('.')
        .map(|(node, _)| node)
}

impl Server {
    /// Send an IQ from the server's domain and wait for its result; an
    /// error response or a timeout becomes a `StanzaError`.
    pub async fn request_iq(
        self: &Arc<Self>,
        mut iq: Element,
        timeout: Duration,
    ) -> Result<Element, StanzaError> {
        // In a cluster the answer may reach another node (the session the
        // request went to is there): the id says which node asked.
        let id = match self.cluster.get() {
            Some(c) => format!("roost-{}.{}", c.node, roost_proto::id::random_token(16)),
            None => format!("roost-{}", roost_proto::id::random_token(16)),
        };
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
            None => match (self.cluster.get(), asking_node(&id)) {
                (Some(c), Some(node)) if node != c.node.as_ref() => {
                    c.forward_iq_response(node, &el);
                    true
                }
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_name_the_asking_node() {
        assert_eq!(super::asking_node("roost-n2.abc123"), Some("n2"));
        assert_eq!(super::asking_node("roost-abc123"), None);
        assert_eq!(super::asking_node("other.id"), None);
    }
}
