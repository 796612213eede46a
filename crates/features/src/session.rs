//! RFC 3921 §3 session establishment, kept by RFC 6121 as optional: the
//! `<session/>` request is accepted and does nothing.

use async_trait::async_trait;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Scope};
use roost_proto::{ns, Stanza};

pub struct LegacySession;

#[async_trait]
impl Module for LegacySession {
    fn name(&self) -> &'static str {
        "legacy-session"
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::new(Scope::Server, ns::SESSION, "session")]
    }
    async fn handle_iq(&self, _ctx: IqContext<'_>, _iq: &Stanza) -> IqResult {
        Ok(None)
    }
}
