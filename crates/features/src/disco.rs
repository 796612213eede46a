//! XEP-0030: Service Discovery on the server's domain and on accounts.
//! Features come from the module registry, so the answer always matches
//! what is loaded. With PEP loaded, accounts are also `pubsub/pep`
//! services whose nodes are their items (XEP-0163 §6, XEP-0060 §5).

use async_trait::async_trait;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};

use crate::pep::{self, PepService};

#[derive(Default)]
pub struct Disco {
    /// The PEP service, when loaded: accounts then list their nodes.
    pub pep: Option<PepService>,
}

use roost_core::caps::{disco_identity as identity, disco_info as info};

impl Disco {
    /// Disco on an account's bare JID; nodes are PEP nodes.
    async fn account(
        &self,
        ctx: &IqContext<'_>,
        node: Option<&str>,
        items_query: bool,
    ) -> IqResult {
        let (Some(pep), Some(owner)) = (&self.pep, ctx.account) else {
            if node.is_some() {
                return Err(StanzaError::new(Condition::ItemNotFound));
            }
            if items_query {
                return Ok(Some(Element::bare("query", ns::DISCO_ITEMS)));
            }
            return Ok(Some(info(
                vec![identity("account", "registered", None)],
                ctx.server.registry.account_features(),
                None,
            )));
        };
        let (server, from, own) = (ctx.server, ctx.from, ctx.own);
        match (items_query, node) {
            // XEP-0060 §5.2, XEP-0163 §6.2: the nodes the requester may read.
            (true, None) => Ok(Some(Element::bare("query", ns::DISCO_ITEMS).children_from(
                pep::disco::node_items(server, pep, owner, from, own).await?,
            ))),
            // XEP-0060 §5.5: a node's items.
            (true, Some(n)) => Ok(Some(
                Element::bare("query", ns::DISCO_ITEMS)
                    .attr_set("node", n)
                    .children_from(pep::disco::item_ids(server, pep, owner, from, own, n).await?),
            )),
            // XEP-0060 §5.3: a node's identity.
            (false, Some(n)) => Ok(Some(
                Element::bare("query", ns::DISCO_INFO)
                    .attr_set("node", n)
                    .children_from(pep::disco::node_info(server, pep, owner, from, own, n).await?),
            )),
            // XEP-0163 §6.1: the account is a PEP service.
            (false, None) => Ok(Some(info(
                vec![
                    identity("account", "registered", None),
                    identity("pubsub", "pep", None),
                ],
                ctx.server.registry.account_features(),
                None,
            ))),
        }
    }
}

#[async_trait]
impl Module for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![
            Protocol::new("XEP-0030: Service Discovery", "2.5rc3"),
            // The server's own hash in its stream features and presence
            // of accounts; clients' hashes resolved and cached (core/caps.rs).
            Protocol::new("XEP-0115: Entity Capabilities", "1.6.0"),
        ]
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
        let to_account = ctx.scope == Scope::Account && ctx.account.is_some();
        let items_query = query.ns() == ns::DISCO_ITEMS;
        if to_account {
            return self.account(&ctx, node, items_query).await;
        }
        if let Some(node) = node {
            // XEP-0115 §6.3: the node of the caps in our stream features.
            if !items_query && ctx.server.is_own_caps_node(node) {
                return Ok(Some(ctx.server.server_disco_info(Some(node))));
            }
            if let Some(r) = ctx
                .server
                .registry
                .server_node(&ctx, node, items_query)
                .await
            {
                return r;
            }
            return Err(StanzaError::new(Condition::ItemNotFound));
        }
        if items_query {
            // XEP-0030 §4: the services on their own domains (XEP-0045 §6.1:
            // this is how clients find the MUC service).
            let items = ctx.server.router.services().into_iter().map(|(jid, name)| {
                Element::bare("item", ns::DISCO_ITEMS)
                    .attr_set("jid", jid)
                    .attr_opt("name", name)
            });
            return Ok(Some(
                Element::bare("query", ns::DISCO_ITEMS).children_from(items),
            ));
        }
        Ok(Some(ctx.server.server_disco_info(None)))
    }
}
