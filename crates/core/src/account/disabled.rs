//! XEP-0133 §4.5–§4.6 (disable and re-enable a user) with RFC 6120 §6.5.1:
//! a disabled account keeps its data but cannot log in (SASL
//! `<account-disabled/>`, after its credentials were proven). The set is
//! kept in memory, so the login path pays a hash lookup and no store
//! read, and is stored in the private store under the server's own JID.

use std::collections::BTreeSet;
use std::sync::RwLock;

use jid::BareJid;
use minidom::Element;
use roost_proto::{Elem, ElementExt};
use roost_store::StoreError;

use roost_store::Stores;

const KEY: &str = "urn:roost:disabled-accounts";

#[derive(Debug, Default)]
pub struct DisabledAccounts {
    set: RwLock<BTreeSet<BareJid>>,
}

fn server_jid(domain: &str) -> Option<BareJid> {
    BareJid::new(domain).ok()
}

impl DisabledAccounts {
    /// Read the stored set (at start).
    pub async fn load(&self, stores: &Stores, domain: &str) -> Result<(), StoreError> {
        let Some(owner) = server_jid(domain) else {
            return Ok(());
        };
        let Some(xml) = stores.private.get_private(&owner, KEY).await? else {
            return Ok(());
        };
        let Ok(el) = xml.parse::<Element>() else {
            tracing::error!("the stored list of disabled accounts is unreadable");
            return Ok(());
        };
        let accounts = el
            .children()
            .filter_map(|c| c.attr("jid"))
            .filter_map(|j| BareJid::new(j).ok());
        self.write().extend(accounts);
        Ok(())
    }

    pub fn contains(&self, account: &BareJid) -> bool {
        self.read().contains(account)
    }

    pub fn list(&self) -> Vec<BareJid> {
        self.read().iter().cloned().collect()
    }

    /// Disable (`true`) or enable an account; stored before it counts for
    /// anyone else. Returns whether anything changed.
    pub async fn set(
        &self,
        stores: &Stores,
        domain: &str,
        account: &BareJid,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let Some(owner) = server_jid(domain) else {
            return Ok(false);
        };
        let mut next = self.read().clone();
        let changed = if disabled {
            next.insert(account.clone())
        } else {
            next.remove(account)
        };
        if !changed {
            return Ok(false);
        }
        let el = Element::bare("disabled", KEY).children_from(
            next.iter()
                .map(|j| Element::bare("account", KEY).attr_set("jid", j.as_str())),
        );
        stores
            .private
            .set_private(&owner, KEY, Some(&el.to_xml()))
            .await?;
        *self.write() = next;
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<BareJid>> {
        self.set.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<BareJid>> {
        self.set.write().unwrap_or_else(|p| p.into_inner())
    }
}
