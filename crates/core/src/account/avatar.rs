//! XEP-0398 §4 (and XEP-0153 §3.2) for accounts: the hash of each
//! account's avatar is put into every available presence its sessions send
//! — broadcast, directed, and through account-based joining into its rooms
//! — unless the client's own `<photo/>` says something already.
//!
//! The hashes of all accounts with an avatar are read once at start (one
//! small private-store row each, written by the vCard/PEP conversion) and
//! kept in memory, so a login or a presence never waits for the store for
//! them (measured: one read per account task showed in the login and idle
//! figures). About a hundred bytes per account that has an avatar.

use std::collections::HashMap;
use std::sync::RwLock;

use jid::BareJid;
use minidom::Element;
use roost_proto::{ns, vcard_photo, ElementExt};
use roost_store::{StoreError, Stores};

use super::Account;

/// Private-store key of an account's avatar hash.
pub const HASH_KEY: &str = "urn:roost:avatar-hash";

fn parse(xml: &str) -> Option<String> {
    xml.parse::<Element>()
        .ok()
        .and_then(|el| el.attr("hash").map(str::to_string))
}

/// The avatar hashes of the server's accounts.
#[derive(Debug, Default)]
pub struct AvatarHashes {
    map: RwLock<HashMap<BareJid, Box<str>>>,
}

impl AvatarHashes {
    /// Read every stored hash (at start).
    pub async fn load(&self, stores: &Stores) -> Result<(), StoreError> {
        let rows = stores.private.private_by_key(HASH_KEY).await?;
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for (account, xml) in rows {
            if let Some(hash) = parse(&xml) {
                map.insert(account, hash.into_boxed_str());
            }
        }
        Ok(())
    }

    pub fn get(&self, account: &BareJid) -> Option<String> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(account).map(|h| h.to_string())
    }

    /// Store an account's new hash (`None`: no avatar), then use it.
    pub async fn set(
        &self,
        stores: &Stores,
        account: &BareJid,
        hash: Option<String>,
    ) -> Result<(), StoreError> {
        let xml = hash.as_deref().map(|h| {
            let mut el = Element::bare("avatar", HASH_KEY);
            el.set("hash", h);
            el.to_xml()
        });
        stores
            .private
            .set_private(account, HASH_KEY, xml.as_deref())
            .await?;
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        match hash {
            Some(h) => map.insert(account.clone(), h.into_boxed_str()),
            None => map.remove(account),
        };
        Ok(())
    }
}

/// XEP-0398 §4: what to do with a presence's own update element.
fn stamp(presence: &mut Element, hash: &str) {
    if let Some(x) = presence.get_child("x", ns::VCARD_UPDATE) {
        // A photo the client set (even the empty "no avatar") stays.
        if x.get_child("photo", ns::VCARD_UPDATE).is_some() {
            return;
        }
    }
    // An `x` without a photo is overwritten.
    let kept: Vec<Element> = presence
        .children()
        .filter(|c| !c.is("x", ns::VCARD_UPDATE))
        .cloned()
        .collect();
    let mut out = presence.shallow_clone();
    for c in kept {
        out.append_child(c);
    }
    out.append_child(vcard_photo::update_element(Some(hash)));
    *presence = out;
}

impl Account {
    /// Put the account's hash into an available presence from a session.
    pub(super) fn stamp_avatar(&self, presence: &mut Element) {
        if presence.attr("type").is_some() {
            return;
        }
        if let Some(hash) = self.server.avatars.get(&self.jid) {
            stamp(presence, &hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn presences_get_the_hash_unless_the_client_gave_a_photo() {
        let mut bare = p("<presence xmlns='jabber:client'><show>away</show></presence>");
        stamp(&mut bare, "abc");
        assert_eq!(
            bare.get_child("x", ns::VCARD_UPDATE)
                .and_then(|x| x.get_child("photo", ns::VCARD_UPDATE))
                .map(|p| p.text())
                .as_deref(),
            Some("abc")
        );
        assert!(bare.has_child("show", ns::CLIENT));
        // An empty x is overwritten.
        let mut empty_x =
            p("<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'/></presence>");
        stamp(&mut empty_x, "abc");
        assert_eq!(empty_x.children().count(), 1);
        assert!(empty_x.to_xml().contains("abc"));
        // "No avatar" and the client's own hash stay.
        for xml in [
            "<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'><photo/></x></presence>",
            "<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'><photo>def</photo></x></presence>",
        ] {
            let mut el = p(xml);
            stamp(&mut el, "abc");
            assert!(!el.to_xml().contains("abc"), "{xml}");
        }
    }

    #[tokio::test]
    async fn hashes_are_stored_and_read_back_at_start() {
        let stores = Stores::from_backend(std::sync::Arc::new(roost_store::MemoryStore::default()));
        let alice = BareJid::new("alice@example.org").unwrap();
        let a = AvatarHashes::default();
        a.set(&stores, &alice, Some("abc".into())).await.unwrap();
        assert_eq!(a.get(&alice).as_deref(), Some("abc"));
        let b = AvatarHashes::default();
        b.load(&stores).await.unwrap();
        assert_eq!(b.get(&alice).as_deref(), Some("abc"));
        a.set(&stores, &alice, None).await.unwrap();
        let c = AvatarHashes::default();
        c.load(&stores).await.unwrap();
        assert_eq!(c.get(&alice), None);
    }
}
