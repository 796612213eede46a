//! XEP-0012 Last Activity: asked of the server's domain, how long the
//! server has been running (§5); asked of an account's bare JID, how long
//! ago it was last available and the status it left with (§3), told only
//! to the account itself and to contacts allowed to see its presence
//! (subscription `from` or `both`, RFC 6121), zero seconds while it has a
//! session. Queries to a full JID go to that client, like any IQ.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jid::BareJid;
use minidom::Element;
use roost_core::account::AccountMsg;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope, Server};
use roost_proto::{Condition, Elem, ElementExt, Stanza, StanzaError};
use roost_store::Subscription;

pub const NS: &str = "jabber:iq:last";
/// Private-store key of an account's last unavailable time and status.
const KEY: &str = "urn:roost:last-activity";

pub struct LastActivity {
    /// When the server started (§5: the server's uptime).
    pub started: Instant,
}

impl Default for LastActivity {
    fn default() -> Self {
        LastActivity {
            started: Instant::now(),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn answer(seconds: u64, status: Option<String>) -> Element {
    let q = Element::bare("query", NS).attr_set("seconds", seconds.to_string());
    match status.filter(|s| !s.is_empty()) {
        Some(s) => q.text_node(s),
        None => q,
    }
}

impl LastActivity {
    /// §3: the requester must be allowed to see the account's presence.
    async fn may_know(&self, ctx: &IqContext<'_>, account: &BareJid) -> Result<bool, StanzaError> {
        if ctx.own {
            return Ok(true);
        }
        let Some(from) = ctx.from else {
            return Ok(false);
        };
        let item = ctx
            .server
            .stores
            .roster
            .roster_item(account, &from.to_bare())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "roster read failed");
                StanzaError::internal()
            })?;
        Ok(item.is_some_and(|i| matches!(i.subscription, Subscription::From | Subscription::Both)))
    }

    async fn has_sessions(server: &Arc<Server>, account: &BareJid) -> bool {
        if !server.router.has_account_task(account) {
            return false;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        server.send_to_account(account, AccountMsg::HasSessions(reply));
        answer.await.unwrap_or(false)
    }
}

#[async_trait]
impl Module for LastActivity {
    fn name(&self) -> &'static str {
        "last_activity"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new("XEP-0012: Last Activity", "2.0")]
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![NS]
    }
    fn account_features(&self) -> Vec<&'static str> {
        vec![NS]
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::new(Scope::Server, NS, "query"),
            IqRoute::new(Scope::Account, NS, "query"),
        ]
    }

    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        if iq.type_attr() != Some("get") {
            return Err(StanzaError::bad_request("last activity is only read"));
        }
        let Some(account) = ctx.account else {
            // §5: the server's uptime.
            return Ok(Some(answer(self.started.elapsed().as_secs(), None)));
        };
        if !self.may_know(&ctx, account).await? {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        if Self::has_sessions(ctx.server, account).await {
            return Ok(Some(answer(0, None)));
        }
        let stored = ctx
            .server
            .stores
            .private
            .get_private(account, KEY)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "last activity read failed");
                StanzaError::internal()
            })?;
        let Some(el) = stored.and_then(|x| x.parse::<Element>().ok()) else {
            // Never seen since this server kept track.
            return Err(StanzaError::new(Condition::ItemNotFound));
        };
        let stamp: u64 = el.attr("stamp").and_then(|s| s.parse().ok()).unwrap_or(0);
        let status = el.get_child("status", KEY).map(|s| s.text());
        Ok(Some(answer(now_secs().saturating_sub(stamp), status)))
    }

    fn wants_account_unavailable(&self) -> bool {
        true
    }

    /// §3: remember when and with which status the account left.
    async fn account_unavailable(
        &self,
        server: &Arc<Server>,
        account: &BareJid,
        status: Option<String>,
    ) {
        let mut el = Element::bare("last", KEY).attr_set("stamp", now_secs().to_string());
        if let Some(s) = status.filter(|s| !s.is_empty()) {
            el.append_child(Element::bare("status", KEY).text_node(s));
        }
        if let Err(e) = server
            .stores
            .private
            .set_private(account, KEY, Some(&el.to_xml()))
            .await
        {
            tracing::error!(%account, error = %e, "storing last activity failed");
        }
    }
}
