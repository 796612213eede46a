//! XEP-0060: Publish-Subscribe — §7 error tables: stanza errors with their pubsub-specific
//! conditions (`http://jabber.org/protocol/pubsub#errors`).

use minidom::Element;
use roost_proto::{Condition, Elem, StanzaError};
use roost_store::StoreError;

use crate::ns;

/// A stanza error with a pubsub-specific condition element.
pub fn pubsub_error(condition: Condition, app: &str) -> StanzaError {
    StanzaError::new(condition).with_app(Element::bare(app, ns::ERRORS))
}

/// `feature-not-implemented` with `<unsupported feature='...'/>`.
pub fn unsupported(feature: &str) -> StanzaError {
    StanzaError::new(Condition::FeatureNotImplemented)
        .with_app(Element::bare("unsupported", ns::ERRORS).attr_set("feature", feature))
}

/// The node named in a request does not exist (§6.1.3.12, §7.1.3.3, ...).
pub fn no_such_node() -> StanzaError {
    StanzaError::new(Condition::ItemNotFound)
}

/// §7.2.3.3, §8.2.3.3: a request without its `node` attribute.
pub fn nodeid_required() -> StanzaError {
    pubsub_error(Condition::BadRequest, "nodeid-required")
}

/// Storage failures are logged and become `internal-server-error`.
pub fn store_error(e: StoreError) -> StanzaError {
    tracing::error!(error = %e, "pubsub storage failed");
    StanzaError::internal()
}
