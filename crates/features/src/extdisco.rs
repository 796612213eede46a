//! XEP-0215 External Service Discovery (`urn:xmpp:extdisco:2`): the STUN
//! and TURN servers of `[extdisco]`, so that clients (Conversations, Dino,
//! Monal) can place calls. TURN servers get time-limited credentials made
//! from a secret shared with them, the scheme of coturn's
//! `use-auth-secret` ("TURN REST API"): username `expiry:account`,
//! password base64(HMAC-SHA1(secret, username)). Local accounts only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use minidom::Element;
use roost_core::module::IqResult;
use roost_core::{IqContext, IqRoute, Module, Protocol, Scope};
use roost_proto::{Elem, Stanza, StanzaError};
use serde::{Deserialize, Serialize};

pub const NS: &str = "urn:xmpp:extdisco:2";

/// One STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalService {
    /// `stun`, `stuns`, `turn` or `turns`.
    #[serde(rename = "type")]
    pub kind: String,
    pub host: String,
    pub port: u16,
    /// `udp` or `tcp`.
    #[serde(default = "udp")]
    pub transport: String,
}

fn udp() -> String {
    "udp".into()
}

/// `[extdisco]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtdiscoConfig {
    pub services: Vec<ExternalService>,
    /// The secret shared with the TURN servers (coturn `static-auth-secret`);
    /// without it TURN servers are listed without credentials.
    pub turn_secret: Option<String>,
    /// Seconds TURN credentials stay valid.
    pub credential_lifetime: u64,
}

impl Default for ExtdiscoConfig {
    fn default() -> Self {
        ExtdiscoConfig {
            services: Vec::new(),
            turn_secret: None,
            credential_lifetime: 86_400,
        }
    }
}

impl ExtdiscoConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for s in &self.services {
            if !matches!(s.kind.as_str(), "stun" | "stuns" | "turn" | "turns") {
                return Err(("extdisco.services", format!("unknown type {:?}", s.kind)));
            }
            if !matches!(s.transport.as_str(), "udp" | "tcp") {
                return Err((
                    "extdisco.services",
                    format!("unknown transport {:?}", s.transport),
                ));
            }
            if s.host.is_empty() {
                return Err(("extdisco.services", "a service without host".into()));
            }
        }
        Ok(())
    }
}

pub struct Extdisco {
    pub config: ExtdiscoConfig,
}

/// coturn's REST API credentials for `account`, valid until `expires`.
pub fn turn_credentials(secret: &str, account: &str, expires: u64) -> (String, String) {
    let username = format!("{expires}:{account}");
    let password = match Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, password)
}

impl Extdisco {
    fn service(&self, s: &ExternalService, account: &str) -> Element {
        let mut el = Element::bare("service", NS)
            .attr_set("type", s.kind.as_str())
            .attr_set("host", s.host.as_str())
            .attr_set("port", s.port.to_string())
            .attr_set("transport", s.transport.as_str());
        let turn = s.kind.starts_with("turn");
        if let (true, Some(secret)) = (turn, self.config.turn_secret.as_deref()) {
            let expires = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                + self.config.credential_lifetime;
            let (username, password) = turn_credentials(secret, account, expires);
            el = el
                .attr_set("restricted", "1")
                .attr_set("username", username)
                .attr_set("password", password)
                .attr_set(
                    "expires",
                    roost_proto::datetime::to_xep82(UNIX_EPOCH + Duration::from_secs(expires)),
                );
        }
        el
    }
}

#[async_trait]
impl Module for Extdisco {
    fn name(&self) -> &'static str {
        "extdisco"
    }
    fn protocols(&self) -> Vec<Protocol> {
        vec![Protocol::new(
            "XEP-0215: External Service Discovery",
            "1.0.0",
        )]
    }
    fn server_features(&self) -> Vec<&'static str> {
        if self.config.services.is_empty() {
            Vec::new()
        } else {
            vec![NS]
        }
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::new(Scope::Server, NS, "services"),
            IqRoute::new(Scope::Server, NS, "credentials"),
        ]
    }
    async fn handle_iq(&self, ctx: IqContext<'_>, iq: &Stanza) -> IqResult {
        // Credentials are for the server's own users.
        let Some(from) = ctx.from.filter(|_| ctx.own) else {
            return Err(StanzaError::new(roost_proto::Condition::Forbidden));
        };
        if iq.type_attr() != Some("get") {
            return Err(StanzaError::new(roost_proto::Condition::BadRequest));
        }
        let account = from.to_bare().to_string();
        let payload = iq.el.children().next().cloned();
        let Some(payload) = payload else {
            return Err(StanzaError::new(roost_proto::Condition::BadRequest));
        };
        let wanted: Vec<&ExternalService> = if payload.name() == "credentials" {
            // XEP-0215 §3.3: credentials for the services named.
            let asked: Vec<(Option<String>, Option<String>)> = payload
                .children()
                .map(|s| {
                    (
                        s.attr("host").map(str::to_string),
                        s.attr("type").map(str::to_string),
                    )
                })
                .collect();
            self.config
                .services
                .iter()
                .filter(|s| {
                    asked.iter().any(|(h, t)| {
                        h.as_deref() == Some(s.host.as_str())
                            && t.as_deref().is_none_or(|t| t == s.kind)
                    })
                })
                .collect()
        } else {
            let kind = payload.attr("type");
            self.config
                .services
                .iter()
                .filter(|s| kind.is_none_or(|k| k == s.kind))
                .collect()
        };
        let name = if payload.name() == "credentials" {
            "credentials"
        } else {
            "services"
        };
        Ok(Some(Element::bare(name, NS).children_from(
            wanted.into_iter().map(|s| self.service(s, &account)),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_follow_the_rest_api_scheme() {
        // Computed independently: printf '1700000000:alice@example.org' |
        //   openssl dgst -sha1 -hmac s3cret -binary | base64
        let (u, p) = turn_credentials("s3cret", "alice@example.org", 1_700_000_000);
        assert_eq!(u, "1700000000:alice@example.org");
        assert_eq!(p, "DTKvmY+vZ0UPwC3r7FrA5q50qEI=");
        let (_, again) = turn_credentials("s3cret", "alice@example.org", 1_700_000_000);
        assert_eq!(p, again);
        let (_, other) = turn_credentials("other", "alice@example.org", 1_700_000_000);
        assert_ne!(p, other);
    }
}
