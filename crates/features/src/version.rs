//! XEP-0092: Software Version of the server.

use async_trait::async_trait;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{ns, Elem, Stanza, StanzaError};

pub struct Version;

#[async_trait]
impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new("XEP-0092: Software Version", "1.1")]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![ns::VERSION]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::new(Scope::Server, ns::VERSION, "query")]
    }
    async fn handle_iq(&self, _ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        if iq.type_attr() != Some("get") {
            return Err(StanzaError::bad_request("version is read-only"));
        }
        // The OS is left out on purpose: it helps attackers more than users.
        Ok(Some(
            Element::bare("query", ns::VERSION)
                .child(Element::bare("name", ns::VERSION).text_node("Roost"))
                .child(Element::bare("version", ns::VERSION).text_node(env!("CARGO_PKG_VERSION"))),
        ))
    }
}
