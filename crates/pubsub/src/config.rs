//! XEP-0060: Publish-Subscribe — the `[pubsub]` configuration section: the
//! service's domain, who may create nodes (§8.1.1 leaves it to the
//! service) and its limits.

use serde::{Deserialize, Serialize};

/// Who may create nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Creators {
    /// Accounts of the server's own domain.
    Local,
    /// Only the accounts of the top-level `admins` list.
    Admins,
    /// Any entity, local or remote.
    Anyone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PubsubConfig {
    /// Run the service at all.
    pub enabled: bool,
    /// The service's domain; default `pubsub.<domain>`.
    pub domain: Option<String>,
    /// The service's name in service discovery.
    pub name: String,
    /// Who may create nodes: "local", "admins" or "anyone".
    pub creators: Creators,
    /// Items a new node keeps (`pubsub#max_items`) unless configured.
    pub default_max_items: usize,
    /// The most items a node may be configured to keep; also what "max"
    /// means.
    pub max_items: usize,
    /// The largest payload a node accepts, in bytes; also the default and
    /// the limit of `pubsub#max_payload_size`.
    pub max_payload_size: usize,
    /// Nodes one entity may own; 0 for no limit.
    pub max_nodes_per_user: usize,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        PubsubConfig {
            enabled: true,
            domain: None,
            name: "Publish-Subscribe".into(),
            creators: Creators::Local,
            default_max_items: 10,
            max_items: 1000,
            max_payload_size: 65_536,
            max_nodes_per_user: 100,
        }
    }
}

impl PubsubConfig {
    /// The domain the service answers on, for a server serving `host`.
    pub fn service_domain(&self, host: &str) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| format!("pubsub.{host}"))
    }

    /// Check the values; the error names the key (under `pubsub.`).
    pub fn validate(&self, host: &str) -> Result<(), (&'static str, String)> {
        let domain = self.service_domain(host);
        let valid = jid::BareJid::new(&domain)
            .ok()
            .is_some_and(|j| j.node().is_none() && j.as_str() == domain);
        if !valid {
            return Err(("pubsub.domain", format!("{domain:?} is not a valid domain")));
        }
        if domain == host {
            return Err((
                "pubsub.domain",
                "must differ from the server's own domain".into(),
            ));
        }
        if self.max_items == 0 {
            return Err(("pubsub.max_items", "must be at least 1".into()));
        }
        if self.default_max_items > self.max_items {
            return Err((
                "pubsub.default_max_items",
                "must not exceed pubsub.max_items".into(),
            ));
        }
        if self.max_payload_size < 1024 {
            return Err(("pubsub.max_payload_size", "value too small".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_the_domain_follows_the_host() {
        let c = PubsubConfig::default();
        c.validate("example.org").unwrap();
        assert_eq!(c.service_domain("example.org"), "pubsub.example.org");
        assert_eq!(c.creators, Creators::Local);
    }

    #[test]
    fn creators_parse_from_lowercase_words() {
        let c: PubsubConfig = toml::from_str("creators = \"admins\"").unwrap();
        assert_eq!(c.creators, Creators::Admins);
        assert!(toml::from_str::<PubsubConfig>("creators = \"nobody\"").is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = PubsubConfig {
            domain: Some("example.org".into()),
            ..Default::default()
        };
        assert_eq!(c.validate("example.org").unwrap_err().0, "pubsub.domain");
        c.domain = None;
        c.default_max_items = c.max_items + 1;
        assert_eq!(
            c.validate("example.org").unwrap_err().0,
            "pubsub.default_max_items"
        );
    }
}
