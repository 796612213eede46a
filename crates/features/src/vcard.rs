//! XEP-0054: vcard-temp — each account stores one vCard, readable by
//! anyone who asks its bare JID and writable only by the account itself.
//! A photo set here becomes the account's PEP avatar too (XEP-0398,
//! `avatar.rs`).

use async_trait::async_trait;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{ns, Condition, ElementExt, Stanza, StanzaError};

pub struct Vcard {
    /// The PEP service, for the XEP-0398 conversion (none: no conversion).
    pub pep: Option<crate::pep::PepService>,
}

const KEY: &str = crate::avatar::VCARD_KEY;

#[async_trait]
impl Module for Vcard {
    fn name(&self) -> &'static str {
        "vcard"
    }
    fn protocols(&self) -> Vec<Protocol> {
        let mut p = vec![Protocol::new("XEP-0054: vcard-temp", "1.2")];
        if self.pep.is_some() {
            p.push(Protocol::new("XEP-0153: vCard-Based Avatars", "1.1"));
            p.push(Protocol::new(
                "XEP-0398: User Avatar to vCard-Based Avatars Conversion",
                "1.0.0",
            ));
        }
        p
    }
    fn account_features(&self) -> Vec<&'static str> {
        if self.pep.is_some() {
            vec![ns::VCARD, crate::avatar::FEATURE]
        } else {
            vec![ns::VCARD]
        }
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![ns::VCARD]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::new(Scope::Account, ns::VCARD, "vCard")]
    }
    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        let Some(account) = ctx.account else {
            return Err(StanzaError::service_unavailable());
        };
        let store = &ctx.server.stores.private;
        match iq.type_attr() {
            Some("get") => {
                let stored = store.get_private(account, KEY).await.map_err(|e| {
                    tracing::error!(error = %e, "vcard read failed");
                    StanzaError::internal()
                })?;
                match stored.and_then(|x| x.parse::<Element>().ok()) {
                    Some(v) => Ok(Some(v)),
                    // §3.1: no vCard yet is an empty one.
                    None => Ok(Some(Element::bare("vCard", ns::VCARD))),
                }
            }
            Some("set") => {
                if !ctx.own {
                    return Err(StanzaError::new(Condition::Forbidden));
                }
                let Some(vcard) = iq.el.get_child("vCard", ns::VCARD) else {
                    return Err(StanzaError::bad_request("no vCard"));
                };
                store
                    .set_private(account, KEY, Some(&vcard.to_xml()))
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "vcard write failed");
                        StanzaError::internal()
                    })?;
                if let Some(pep) = &self.pep {
                    crate::avatar::vcard_to_pep(ctx.server, pep, account, vcard).await;
                }
                Ok(None)
            }
            _ => Err(StanzaError::bad_request("get or set")),
        }
    }
}
