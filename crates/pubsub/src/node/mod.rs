//! XEP-0060: Publish-Subscribe — §8.1–§8.5: a leaf node as stored (creator, creation time and
//! configuration in the store's node text) together with its affiliations,
//! and the owner use cases that create, configure, delete and purge it.

pub(crate) mod config_form;
pub(crate) mod configure;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod purge;

use jid::BareJid;
use roost_store::StoredNodeAffiliation;
use serde::{Deserialize, Serialize};

use crate::affiliation::Affiliation;
use config_form::NodeConfig;

/// What the store keeps as a node's configuration text (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    /// §5.4 `pubsub#creator`.
    pub creator: String,
    /// §5.4 `pubsub#creation_date`, milliseconds since the Unix epoch.
    pub created_ms: i64,
    #[serde(default)]
    pub config: NodeConfig,
}

impl NodeRecord {
    pub fn to_text(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// A record that cannot be read keeps the node usable with the default
    /// configuration rather than losing it.
    pub fn from_text(name: &str, text: &str) -> NodeRecord {
        toml::from_str(text).unwrap_or_else(|e| {
            tracing::warn!(node = name, error = %e, "unreadable pubsub node record");
            NodeRecord {
                creator: String::new(),
                created_ms: 0,
                config: NodeConfig::default(),
            }
        })
    }
}

/// A node loaded for one request.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: String,
    pub record: NodeRecord,
    pub affiliations: Vec<StoredNodeAffiliation>,
}

impl Node {
    pub fn config(&self) -> &NodeConfig {
        &self.record.config
    }

    /// §4.1: the affiliation of a bare JID ("none" when it has no row).
    pub fn affiliation_of(&self, jid: &BareJid) -> Affiliation {
        self.affiliations
            .iter()
            .find(|a| a.jid == *jid)
            .and_then(|a| Affiliation::parse(&a.affiliation))
            .unwrap_or(Affiliation::None)
    }

    /// The JIDs with this affiliation.
    pub fn with_affiliation(&self, affiliation: Affiliation) -> Vec<BareJid> {
        self.affiliations
            .iter()
            .filter(|a| a.affiliation == affiliation.as_str())
            .map(|a| a.jid.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_bad_text_falls_back_to_defaults() {
        let record = NodeRecord {
            creator: "alice@example.org".into(),
            created_ms: 42,
            config: NodeConfig {
                title: "News".into(),
                ..NodeConfig::default()
            },
        };
        assert_eq!(NodeRecord::from_text("n", &record.to_text()), record);
        assert_eq!(
            NodeRecord::from_text("n", "not toml [").config,
            NodeConfig::default()
        );
    }
}
