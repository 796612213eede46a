//! XEP-0398 §4 (and XEP-0153 §3.2) for the account: the hash of the
//! account's avatar is put into every available presence its sessions
//! send — broadcast, directed, and through account-based joining into its
//! rooms — unless the client's own `<photo/>` says something already. The
//! hash is read once per account task (a small private-store row written by
//! the vCard/PEP avatar conversion) and then told to the task when it
//! changes.

use minidom::Element;
use roost_proto::{ns, vcard_photo, ElementExt};

use super::Account;

/// Private-store key of the account's avatar hash.
pub const HASH_KEY: &str = "urn:roost:avatar-hash";

/// The stored form of a hash (`None`: no avatar).
pub fn stored(hash: Option<&str>) -> String {
    let el = Element::bare("avatar", HASH_KEY);
    match hash {
        Some(h) => {
            let mut el = el;
            el.set("hash", h);
            el.to_xml()
        }
        None => el.to_xml(),
    }
}

fn parse(xml: &str) -> Option<String> {
    xml.parse::<Element>()
        .ok()
        .and_then(|el| el.attr("hash").map(str::to_string))
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
    /// The hash, read from the store on first use.
    async fn avatar_hash(&mut self) -> Option<&str> {
        if self.avatar.is_none() {
            let stored = self
                .server
                .stores
                .private
                .get_private(&self.jid, HASH_KEY)
                .await;
            let hash = match stored {
                Ok(xml) => xml.as_deref().and_then(parse),
                Err(e) => {
                    tracing::error!(account = %self.jid, error = %e, "reading the avatar hash failed");
                    None
                }
            };
            self.avatar = Some(hash.map(String::into_boxed_str));
        }
        self.avatar.as_ref().and_then(|h| h.as_deref())
    }

    /// Put the hash into an available presence from a session.
    pub(super) async fn stamp_avatar(&mut self, presence: &mut Element) {
        if presence.attr("type").is_some() {
            return;
        }
        if let Some(hash) = self.avatar_hash().await.map(str::to_string) {
            stamp(presence, &hash);
        }
    }

    /// The conversion changed the avatar.
    pub(super) fn avatar_changed(&mut self, hash: Option<String>) {
        self.avatar = Some(hash.map(String::into_boxed_str));
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
        assert_eq!(parse(&stored(Some("abc"))).as_deref(), Some("abc"));
        assert_eq!(parse(&stored(None)), None);
    }
}
