//! XEP-0398: User Avatar (XEP-0084, PEP) to vCard-Based Avatars
//! (XEP-0153) conversion. A metadata publication to `urn:xmpp:avatar:metadata`
//! puts the image of its inline `info` (from `urn:xmpp:avatar:data`, its
//! SHA-1 checked) into the account's vCard as `PHOTO` (§3.1); a vCard set
//! with a photo publishes the data and then the metadata item (§3.2); an
//! empty metadata element or a vCard without photo removes the other side's
//! avatar. Either way the account's avatar hash is stored and kept in
//! memory for the presences of its sessions (§4, `roost_core::account::avatar`).

use std::sync::Arc;

use base64::Engine;
use jid::BareJid;
use minidom::Element;
use roost_core::Server;
use roost_proto::vcard_photo::Photo;
use roost_proto::{ns, Elem, ElementExt};

use crate::pep::{publish, PepService};

pub const NS_DATA: &str = "urn:xmpp:avatar:data";
pub const NS_METADATA: &str = "urn:xmpp:avatar:metadata";
/// §2: advertised on accounts.
pub const FEATURE: &str = "urn:xmpp:pep-vcard-conversion:0";
/// The private-store key of the vCard (the `vcard` module's).
pub const VCARD_KEY: &str = "vcard-temp";

fn stored_hash(server: &Server, owner: &BareJid) -> Option<String> {
    server.avatars.get(owner)
}

/// Store the hash; presences use it from now on.
async fn set_hash(server: &Arc<Server>, owner: &BareJid, hash: Option<String>) {
    if let Err(e) = server.avatars.set(&server.stores, owner, hash).await {
        tracing::error!(account = %owner, error = %e, "storing the avatar hash failed");
    }
}

/// §3.1: the metadata the account published, mirrored into its vCard.
pub async fn pep_to_vcard(server: &Arc<Server>, owner: &BareJid, metadata: &Element) {
    // "MUST pick the info element that does not point to an external URL".
    let info = metadata
        .children()
        .find(|c| c.is("info", NS_METADATA) && c.attr("url").is_none());
    let photo = match info {
        None => None,
        Some(info) => {
            let Some(id) = info.attr("id") else {
                return;
            };
            match avatar_data(server, owner, id).await {
                Some(data) => Some(Photo {
                    mime: info.attr("type").unwrap_or_default().to_string(),
                    data,
                }),
                // No such data item, or not the image the id names.
                None => return,
            }
        }
    };
    let hash = photo.as_ref().map(Photo::hash);
    if hash == stored_hash(server, owner) && hash.is_some() {
        return;
    }
    let store = &server.stores.private;
    let current = match store.get_private(owner, VCARD_KEY).await {
        Ok(v) => v.and_then(|x| x.parse::<Element>().ok()),
        Err(e) => {
            tracing::error!(account = %owner, error = %e, "reading the vCard failed");
            return;
        }
    };
    let vcard = with_photo(
        current.unwrap_or_else(|| Element::bare("vCard", ns::VCARD)),
        photo.as_ref(),
    );
    if let Err(e) = store
        .set_private(owner, VCARD_KEY, Some(&vcard.to_xml()))
        .await
    {
        tracing::error!(account = %owner, error = %e, "storing the vCard failed");
        return;
    }
    set_hash(server, owner, hash).await;
}

/// The image of the data item `id`, if its SHA-1 is `id` (§3.1 SHOULD).
async fn avatar_data(server: &Server, owner: &BareJid, id: &str) -> Option<Vec<u8>> {
    let items = server
        .stores
        .pubsub
        .items_by_id(owner, NS_DATA, &[id.to_string()])
        .await
        .ok()?;
    let el = items.first()?.xml.parse::<Element>().ok()?;
    let b64: String = el.text().chars().filter(|c| !c.is_whitespace()).collect();
    let data = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    (roost_proto::vcard_photo::hash_of(&data) == id.to_ascii_lowercase()).then_some(data)
}

/// `vcard` with its `PHOTO` replaced (or removed).
fn with_photo(vcard: Element, photo: Option<&Photo>) -> Element {
    let mut out = vcard.shallow_clone();
    for c in vcard.children().filter(|c| !c.is("PHOTO", ns::VCARD)) {
        out.append_child(c.clone());
    }
    if let Some(p) = photo {
        out.append_child(p.element());
    }
    out
}

/// §3.2: a vCard the account stored, mirrored into its PEP avatar.
pub async fn vcard_to_pep(
    server: &Arc<Server>,
    pep: &PepService,
    owner: &BareJid,
    vcard: &Element,
) {
    let photo = Photo::of_vcard(vcard);
    let hash = photo.as_ref().map(Photo::hash);
    if hash == stored_hash(server, owner) {
        return;
    }
    let publisher = owner.to_string();
    let metadata = match &photo {
        Some(p) => {
            let id = p.hash();
            let b64 = base64::engine::general_purpose::STANDARD.encode(&p.data);
            let data = Element::bare("data", NS_DATA).text_node(b64);
            let published = publish::publish_item(
                server,
                pep,
                owner,
                NS_DATA,
                Some(&id),
                data,
                None,
                &publisher,
            )
            .await;
            if let Err(e) = published {
                tracing::warn!(account = %owner, error = ?e.condition, "publishing the avatar data failed");
                return;
            }
            let mime = if p.mime.is_empty() {
                "image/png"
            } else {
                p.mime.as_str()
            };
            Element::bare("metadata", NS_METADATA).child(
                Element::bare("info", NS_METADATA)
                    .attr_set("bytes", p.data.len().to_string())
                    .attr_set("id", id)
                    .attr_set("type", mime),
            )
        }
        // XEP-0084 §4.2: an empty metadata element disables the avatar.
        None => Element::bare("metadata", NS_METADATA),
    };
    let item_id = hash.clone().unwrap_or_else(|| "none".to_string());
    let published = publish::publish_item(
        server,
        pep,
        owner,
        NS_METADATA,
        Some(&item_id),
        metadata,
        None,
        &publisher,
    )
    .await;
    if let Err(e) = published {
        tracing::warn!(account = %owner, error = ?e.condition, "publishing the avatar metadata failed");
        return;
    }
    set_hash(server, owner, hash).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_is_replaced_and_the_rest_kept() {
        let v: Element =
            "<vCard xmlns='vcard-temp'><FN>Juliet</FN><PHOTO><BINVAL>eA==</BINVAL></PHOTO></vCard>"
                .parse()
                .unwrap();
        let p = Photo {
            mime: "image/png".into(),
            data: b"abc".to_vec(),
        };
        let out = with_photo(v.clone(), Some(&p));
        assert!(out.has_child("FN", ns::VCARD));
        assert_eq!(Photo::of_vcard(&out), Some(p));
        let none = with_photo(v, None);
        assert!(none.has_child("FN", ns::VCARD));
        assert!(!none.has_child("PHOTO", ns::VCARD));
    }
}
