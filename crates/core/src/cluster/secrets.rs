//! Secrets every node of a cluster must share, kept in the shared storage
//! (the private XML store, under the domain's own JID):
//!
//! - the XEP-0220 dialback secret: a peer server checks a key by
//!   connecting back to the domain, and may reach any node;
//! - the XEP-0484 FAST key: a token one node issued is used at another.
//!
//! The first node to start makes each secret; a node starting at the
//! same moment may write its own too, so every node reads the stored one
//! back after a pause and uses that.

use std::time::Duration;

use jid::BareJid;
use roost_store::{StoreError, Stores};

const NS: &str = "urn:roost:cluster:0";

fn key(name: &str) -> String {
    format!("{NS}#secret-{name}")
}

fn parse(xml: &str) -> Option<[u8; 32]> {
    let el = roost_proto::element::parse(xml).ok()?;
    let hex = el.text();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// The cluster's secret `name`, made and stored by the first node.
pub async fn shared(stores: &Stores, domain: &str, name: &str) -> Result<[u8; 32], StoreError> {
    let owner = BareJid::new(domain).map_err(|e| StoreError::Backend(e.to_string()))?;
    let k = key(name);
    if let Some(s) = stores
        .private
        .get_private(&owner, &k)
        .await?
        .as_deref()
        .and_then(parse)
    {
        return Ok(s);
    }
    let fresh: [u8; 32] = rand::random();
    let hex: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    let xml = format!("<secret xmlns='{NS}'>{hex}</secret>");
    stores.private.set_private(&owner, &k, Some(&xml)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = stores.private.get_private(&owner, &k).await?;
    Ok(stored.as_deref().and_then(parse).unwrap_or(fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_read_back() {
        let hex: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
        let parsed = parse(&format!("<secret xmlns='{NS}'>{hex}</secret>")).unwrap();
        assert_eq!(parsed[31], 31);
        assert!(parse(&format!("<secret xmlns='{NS}'>abc</secret>")).is_none());
    }
}
