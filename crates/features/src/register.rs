//! XEP-0077: In-Band Registration — account creation on the stream before
//! authentication (when `[registration]` allows it for this peer), password
//! change and account removal by the logged-in user.

use async_trait::async_trait;
use jid::BareJid;
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError};

pub struct Register;

/// Shortest password accepted; weak passwords are an operator's problem
/// later, so refuse the obviously useless ones now.
const MIN_PASSWORD: usize = 4;
const MAX_PASSWORD: usize = 1024;

fn form(registered: Option<&BareJid>) -> Element {
    let mut q = Element::bare("query", ns::REGISTER);
    match registered {
        Some(user) => {
            q.append_child(Element::bare("registered", ns::REGISTER));
            q.append_child(
                Element::bare("username", ns::REGISTER)
                    .text_node(user.node().map(|n| n.to_string()).unwrap_or_default()),
            );
            q.append_child(Element::bare("password", ns::REGISTER));
        }
        None => {
            q.append_child(
                Element::bare("instructions", ns::REGISTER)
                    .text_node("Choose a username and password to register with this server."),
            );
            q.append_child(Element::bare("username", ns::REGISTER));
            q.append_child(Element::bare("password", ns::REGISTER));
        }
    }
    q
}

fn field(query: &Element, name: &str) -> Option<String> {
    query.get_child(name, ns::REGISTER).map(|c| c.text())
}

fn credentials(password: &str) -> Result<roost_sasl::StoredCredentials, StanzaError> {
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(
            StanzaError::new(Condition::NotAcceptable).with_text("password too short or too long")
        );
    }
    roost_sasl::credentials::derive(password, roost_sasl::credentials::DEFAULT_ITERATIONS)
        .map_err(|_| StanzaError::new(Condition::NotAcceptable).with_text("password not allowed"))
}

fn internal(e: roost_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "registration storage failed");
    StanzaError::internal()
}

impl Register {
    async fn pre_auth(&self, ctx: &IqContext<'_>, iq: &Stanza, query: &Element) -> IqResult {
        if iq.type_attr() == Some("get") {
            return Ok(Some(form(None)));
        }
        if query.has_child("remove", ns::REGISTER) {
            return Err(StanzaError::new(Condition::NotAuthorized));
        }
        let (Some(username), Some(password)) = (field(query, "username"), field(query, "password"))
        else {
            return Err(StanzaError::new(Condition::NotAcceptable)
                .with_text("username and password are required"));
        };
        let domain = &ctx.server.config.domain;
        let user = BareJid::new(&format!("{}@{domain}", username.trim()))
            .ok()
            .filter(|j| j.node().is_some())
            .ok_or_else(|| {
                StanzaError::new(Condition::JidMalformed).with_text("invalid username")
            })?;
        let creds = credentials(&password)?;
        let created = ctx
            .server
            .stores
            .accounts
            .create_account(&user, &creds)
            .await
            .map_err(internal)?;
        if !created {
            return Err(StanzaError::new(Condition::Conflict).with_text("username taken"));
        }
        tracing::info!(account = %user, "registered in-band");
        Ok(None)
    }

    async fn own(&self, ctx: &IqContext<'_>, iq: &Stanza, query: &Element) -> IqResult {
        let Some(user) = ctx.account.filter(|_| ctx.own) else {
            return Err(StanzaError::new(Condition::Forbidden));
        };
        if iq.type_attr() == Some("get") {
            return Ok(Some(form(Some(user))));
        }
        let accounts = &ctx.server.stores.accounts;
        if query.has_child("remove", ns::REGISTER) {
            // §3.2: cancellation. Sessions end as their streams fail to
            // authenticate next time; data is removed now.
            accounts.remove_account(user).await.map_err(internal)?;
            tracing::info!(account = %user, "account removed in-band");
            return Ok(None);
        }
        if !ctx.server.config.registration.allow_password_change {
            return Err(StanzaError::new(Condition::NotAllowed));
        }
        let username = field(query, "username");
        if username.is_some_and(|u| Some(u.trim()) != user.node().map(|n| n.as_str())) {
            return Err(StanzaError::bad_request(
                "username does not match the account",
            ));
        }
        let Some(password) = field(query, "password") else {
            return Err(StanzaError::bad_request("password missing"));
        };
        let creds = credentials(&password)?;
        accounts
            .set_credentials(user, &creds)
            .await
            .map_err(internal)?;
        tracing::info!(account = %user, "password changed");
        Ok(None)
    }
}

#[async_trait]
impl Module for Register {
    fn name(&self) -> &'static str {
        "register"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new("XEP-0077: In-Band Registration", "2.4")]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![ns::REGISTER]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::new(Scope::PreAuth, ns::REGISTER, "query"),
            IqRoute::new(Scope::Server, ns::REGISTER, "query"),
        ]
    }
    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        let Some(query) = iq.el.get_child("query", ns::REGISTER) else {
            return Err(StanzaError::bad_request("no query"));
        };
        if ctx.from.is_some() && ctx.own {
            self.own(&ctx, iq, query).await
        } else if ctx.from.is_none() || !ctx.own {
            if ctx.account.is_some() {
                return Err(StanzaError::new(Condition::Forbidden));
            }
            self.pre_auth(&ctx, iq, query).await
        } else {
            Err(StanzaError::service_unavailable())
        }
    }
}
