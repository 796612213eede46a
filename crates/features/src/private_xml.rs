//! XEP-0049: Private XML Storage — an account keeps arbitrary XML, one
//! element per namespace and name, readable and writable only by itself.
//! XEP-0048 bookmarks (`storage:bookmarks`) are not stored here but kept
//! in step with XEP-0402 PEP bookmarks (see `bookmarks.rs`).

use async_trait::async_trait;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};

use crate::bookmarks;
use crate::pep::{store_error, PepService, Request};

pub const NS: &str = "jabber:iq:private";

/// XEP-0049 §2.3: namespaces that are not private data. Stanza namespaces
/// and this protocol's own make no sense as payloads.
const RESERVED: &[&str] = &[ns::CLIENT, ns::SERVER, NS, ns::STREAM];

/// The private store key of a payload: its namespace and name, prefixed
/// so it never meets the keys of other features (`vcard-temp`, ...).
fn key(payload: &Element) -> String {
    format!("private:{}:{}", payload.ns(), payload.name())
}

pub struct PrivateXml {
    pep: PepService,
}

impl PrivateXml {
    pub fn new(pep: PepService) -> PrivateXml {
        PrivateXml { pep }
    }
}

#[async_trait]
impl Module for PrivateXml {
    fn name(&self) -> &'static str {
        "private-xml"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new("XEP-0049: Private XML Storage", "1.2")]
    }
    fn account_features(&self) -> Vec<&'static str> {
        vec![NS]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::new(Scope::Account, NS, "query")]
    }

    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        let Some(account) = ctx.account else {
            return Err(StanzaError::service_unavailable());
        };
        let req = Request {
            server: ctx.server,
            service: &self.pep,
            owner: account,
            from: ctx.from,
            own: ctx.own,
        };
        // §2.3: another user's private data is forbidden.
        if !req.is_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let Some(query) = iq.el.children().next() else {
            return Err(StanzaError::bad_request("no query"));
        };
        let payloads: Vec<&Element> = query.children().collect();
        // §2.3: at least one child with its own namespace.
        if payloads.is_empty() {
            return Err(StanzaError::new(Condition::NotAcceptable).with_text("no payload"));
        }
        if let Some(p) = payloads
            .iter()
            .find(|p| RESERVED.contains(&p.ns().as_str()))
        {
            return Err(StanzaError::new(Condition::NotAcceptable)
                .with_text(format!("{} is a reserved namespace", p.ns())));
        }
        match iq.type_attr() {
            Some("get") => {
                // §2.3: one namespace per get.
                let [payload] = payloads.as_slice() else {
                    return Err(StanzaError::bad_request("one element per get"));
                };
                let found = get(&req, payload).await?;
                Ok(Some(Element::bare("query", NS).child(found)))
            }
            Some("set") => {
                for payload in payloads {
                    set(&req, payload).await?;
                }
                Ok(None)
            }
            _ => Err(StanzaError::bad_request("get or set")),
        }
    }
}

/// The stored element, or the empty one asked for when nothing is stored.
async fn get(req: &Request<'_>, payload: &Element) -> Result<Element, StanzaError> {
    if payload.is("storage", bookmarks::LEGACY_NS) {
        return bookmarks::legacy_storage(req.server, req.owner).await;
    }
    let stored = req
        .server
        .stores
        .private
        .get_private(req.owner, &key(payload))
        .await
        .map_err(store_error)?;
    Ok(match stored.and_then(|x| x.parse::<Element>().ok()) {
        Some(e) => e,
        None => Element::bare(payload.name(), payload.ns()),
    })
}

async fn set(req: &Request<'_>, payload: &Element) -> Result<(), StanzaError> {
    if payload.is("storage", bookmarks::LEGACY_NS) {
        // XEP-0411 §3, XEP-0402 §5.3.2: the list becomes XEP-0402 items.
        return bookmarks::replace_from_legacy(req, payload).await;
    }
    req.server
        .stores
        .private
        .set_private(req.owner, &key(payload), Some(&String::from(payload)))
        .await
        .map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_namespace_and_element() {
        let e: Element = "<exodus xmlns='exodus:prefs'/>".parse().unwrap();
        assert_eq!(key(&e), "private:exodus:prefs:exodus");
        let v: Element = "<vCard xmlns='vcard-temp'/>".parse().unwrap();
        assert_ne!(key(&v), "vcard-temp", "never the vcard-temp module's key");
    }
}
