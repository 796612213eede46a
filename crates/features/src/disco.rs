//! XEP-0030: Service Discovery on the server's domain and on accounts.
//! Features come from the module registry, so the answer always matches
//! what is loaded.

use async_trait::async_trait;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};

pub struct Disco;

fn identity(category: &str, kind: &str, name: Option<&str>) -> Element {
    Element::bare("identity", ns::DISCO_INFO)
        .attr_set("category", category)
        .attr_set("type", kind)
        .attr_opt("name", name)
}

fn info(identities: Vec<Element>, mut features: Vec<&'static str>, node: Option<&str>) -> Element {
    features.push(ns::DISCO_INFO);
    features.push(ns::DISCO_ITEMS);
    features.sort_unstable();
    features.dedup();
    Element::bare("query", ns::DISCO_INFO)
        .attr_opt("node", node)
        .children_from(identities)
        .children_from(
            features
                .into_iter()
                .map(|f| Element::bare("feature", ns::DISCO_INFO).attr_set("var", f)),
        )
}

#[async_trait]
impl Module for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new("XEP-0030: Service Discovery", "2.5rc3")]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![ns::DISCO_INFO, ns::DISCO_ITEMS]
    }
    fn account_features(&self) -> Vec<&'static str> {
        vec![ns::DISCO_INFO, ns::DISCO_ITEMS]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::new(Scope::Server, ns::DISCO_INFO, "query"),
            IqRoute::new(Scope::Server, ns::DISCO_ITEMS, "query"),
            IqRoute::new(Scope::Account, ns::DISCO_INFO, "query"),
            IqRoute::new(Scope::Account, ns::DISCO_ITEMS, "query"),
        ]
    }
    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        if iq.type_attr() != Some("get") {
            return Err(StanzaError::new(Condition::NotAllowed));
        }
        let Some(query) = iq.el.children().next() else {
            return Err(StanzaError::bad_request("no query"));
        };
        let node = query.attr("node");
        if node.is_some() {
            return Err(StanzaError::new(Condition::ItemNotFound));
        }
        let to_account = iq.to.as_ref().is_some_and(|t| t.node().is_some())
            || (iq.to.is_none() && ctx.account.is_some() && !ctx.own);
        let items_query = query.ns() == ns::DISCO_ITEMS;
        if to_account {
            if items_query {
                return Ok(Some(Element::bare("query", ns::DISCO_ITEMS)));
            }
            let features = ctx.server.registry.account_features();
            return Ok(Some(info(
                vec![identity("account", "registered", None)],
                features,
                None,
            )));
        }
        if items_query {
            return Ok(Some(Element::bare("query", ns::DISCO_ITEMS)));
        }
        let features = ctx.server.registry.server_features();
        Ok(Some(info(
            vec![identity("server", "im", Some("Roost"))],
            features,
            None,
        )))
    }
}
