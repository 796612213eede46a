//! XEP-0199: XMPP Ping — the server answers pings addressed to it.

use async_trait::async_trait;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{ns, Stanza};

pub struct Ping;

#[async_trait]
impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new("XEP-0199: XMPP Ping", "2.0.1")]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![ns::PING]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::new(Scope::Server, ns::PING, "ping")]
    }
    async fn handle_iq(&self, _ctx: IqContext<'_>, _iq: &Stanza) -> IqResult {
        Ok(None)
    }
}
