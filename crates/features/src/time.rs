//! XEP-0202 Entity Time: the server tells its time (UTC, offset +00:00).

use async_trait::async_trait;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{Elem, Stanza, StanzaError};

pub const NS: &str = "urn:xmpp:time";

pub struct EntityTime;

#[async_trait]
impl Module for EntityTime {
    fn name(&self) -> &'static str {
        "time"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new("XEP-0202: Entity Time", "2.0")]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![NS]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::new(Scope::Server, NS, "time")]
    }
    async fn handle_iq(&self, _ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        if iq.type_attr() != Some("get") {
            return Err(StanzaError::new(roost_proto::Condition::BadRequest));
        }
        // The server keeps UTC; its offset is zero.
        Ok(Some(
            Element::bare("time", NS)
                .child(Element::bare("tzo", NS).text_node("+00:00"))
                .child(
                    Element::bare("utc", NS)
                        .text_node(roost_proto::datetime::to_xep82(std::time::SystemTime::now())),
                ),
        ))
    }
}
