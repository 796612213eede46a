//! XEP-0133 §4.23–§4.25: the message of the day. Set, edited or deleted by
//! admins (commands in `adhoc.rs`); sent at once to the accounts online
//! when it is set, and to every other account at its next login, once per
//! account and message (a "standing announcement"). Stored in the private
//! store: the message under the server's JID, and for each account the id
//! of the last one it was sent.

use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid};
use minidom::Element;
use roost_core::{Module, Server};
use roost_proto::{ns, Elem, ElementExt};
use roost_store::{StoreError, Stores};
use tokio::sync::{OnceCell, RwLock};

const KEY: &str = "urn:roost:motd";
const SEEN_KEY: &str = "urn:roost:motd-seen";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Changes with every set or edit, so that an edit is sent again.
    pub id: String,
    pub text: String,
}

/// The current message, loaded from the store on first use.
#[derive(Default)]
pub struct Motd {
    current: OnceCell<RwLock<Option<Message>>>,
}

fn server_jid(server: &Server) -> Option<BareJid> {
    BareJid::new(&server.config.domain).ok()
}

impl Motd {
    async fn cell(&self, server: &Server) -> &RwLock<Option<Message>> {
        self.current
            .get_or_init(|| async {
                let stored = match server_jid(server) {
                    Some(owner) => server.stores.private.get_private(&owner, KEY).await,
                    None => Ok(None),
                };
                let message = match stored {
                    Ok(Some(xml)) => xml.parse::<Element>().ok().map(|el| Message {
                        id: el.attr("id").unwrap_or_default().to_string(),
                        text: el.text(),
                    }),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the message of the day failed");
                        None
                    }
                };
                RwLock::new(message)
            })
            .await
    }

    pub async fn get(&self, server: &Server) -> Option<Message> {
        self.cell(server).await.read().await.clone()
    }

    /// Set (or with `None` delete) the message; a new one goes to the
    /// accounts online now. Returns how many were sent it.
    pub async fn set(
        &self,
        server: &Arc<Server>,
        text: Option<String>,
    ) -> Result<usize, StoreError> {
        let Some(owner) = server_jid(server) else {
            return Ok(0);
        };
        let message = text.map(|text| Message {
            id: roost_proto::id::random_token(12),
            text,
        });
        let xml = message.as_ref().map(|m| {
            Element::bare("motd", KEY)
                .attr_set("id", m.id.as_str())
                .text_node(m.text.as_str())
                .to_xml()
        });
        server
            .stores
            .private
            .set_private(&owner, KEY, xml.as_deref())
            .await?;
        *self.cell(server).await.write().await = message.clone();
        let Some(m) = message else {
            return Ok(0);
        };
        let online = server.router.active_accounts();
        let sent = online.len();
        for account in &online {
            send(server, account.as_str(), &m);
        }
        // Marked as sent in the background: admins do not wait for one
        // store write per online account.
        let stores = server.stores.clone();
        tokio::spawn(async move {
            for account in online {
                mark_seen(&stores, &account, &m.id).await;
            }
        });
        Ok(sent)
    }
}

fn send(server: &Arc<Server>, to: &str, m: &Message) {
    let msg = Element::bare("message", ns::CLIENT)
        .attr_set("type", "headline")
        .attr_set("from", server.config.domain.as_str())
        .attr_set("to", to)
        .attr_set("id", roost_proto::id::random_token(12))
        .child(Element::bare("subject", ns::CLIENT).text_node("Message of the day"))
        .child(Element::bare("body", ns::CLIENT).text_node(m.text.as_str()));
    server.route_element(msg);
}

async fn mark_seen(stores: &Stores, account: &BareJid, id: &str) {
    let el = Element::bare("seen", SEEN_KEY).attr_set("id", id);
    if let Err(e) = stores
        .private
        .set_private(account, SEEN_KEY, Some(&el.to_xml()))
        .await
    {
        tracing::error!(%account, error = %e, "storing that the message of the day was sent failed");
    }
}

/// The module: delivers the message at login.
pub struct MotdDelivery {
    pub motd: Arc<Motd>,
}

#[async_trait]
impl Module for MotdDelivery {
    fn name(&self) -> &'static str {
        "motd"
    }

    fn wants_session_available(&self) -> bool {
        true
    }

    /// The first session of an account that becomes available after the
    /// message changed gets it; later ones and later logins do not.
    async fn session_available(&self, server: &Arc<Server>, account: &BareJid, resource: &FullJid) {
        let Some(m) = self.motd.get(server).await else {
            return;
        };
        let seen = match server.stores.private.get_private(account, SEEN_KEY).await {
            Ok(xml) => xml
                .and_then(|x| x.parse::<Element>().ok())
                .and_then(|el| el.attr("id").map(str::to_string)),
            Err(e) => {
                tracing::error!(%account, error = %e, "reading the message of the day state failed");
                return;
            }
        };
        if seen.as_deref() == Some(m.id.as_str()) {
            return;
        }
        mark_seen(&server.stores, account, &m.id).await;
        send(server, resource.as_str(), &m);
    }
}
