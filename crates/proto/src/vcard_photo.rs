//! XEP-0153 §2 and XEP-0054: the photo of a vCard and its avatar hash
//! (hex SHA-1 of the image bytes), shared by room avatars (XEP-0486) and
//! the PEP/vCard avatar conversion (XEP-0398).

use base64::Engine;
use minidom::Element;
use sha1::{Digest, Sha1};

use crate::element::Elem;
use crate::ns;

/// An inline vCard photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// The MIME type (`TYPE`); empty when the vCard gives none.
    pub mime: String,
    pub data: Vec<u8>,
}

impl Photo {
    /// The `PHOTO` of a vCard with inline data (`BINVAL`); `None` for no
    /// photo, an external one (`EXTVAL`) or undecodable data.
    pub fn of_vcard(vcard: &Element) -> Option<Photo> {
        let photo = vcard.get_child("PHOTO", ns::VCARD)?;
        let binval = photo.get_child("BINVAL", ns::VCARD)?.text();
        // Line breaks and spaces are common in vCard base64.
        let compact: String = binval.chars().filter(|c| !c.is_whitespace()).collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .ok()
            .filter(|d| !d.is_empty())?;
        let mime = photo
            .get_child("TYPE", ns::VCARD)
            .map(|t| t.text().trim().to_string())
            .unwrap_or_default();
        Some(Photo { mime, data })
    }

    /// XEP-0153 §2: the hex SHA-1 of the image (also the XEP-0084 id).
    pub fn hash(&self) -> String {
        hash_of(&self.data)
    }

    /// A `PHOTO` element for a vCard.
    pub fn element(&self) -> Element {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.data);
        let mut p = Element::bare("PHOTO", ns::VCARD);
        if !self.mime.is_empty() {
            p.append_child(Element::bare("TYPE", ns::VCARD).text_node(self.mime.as_str()));
        }
        p.child(Element::bare("BINVAL", ns::VCARD).text_node(b64))
    }
}

/// The hex SHA-1 of some bytes.
pub fn hash_of(data: &[u8]) -> String {
    let digest = Sha1::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>` (XEP-0153 §3.2;
/// an empty `photo` says "no avatar").
pub fn update_element(hash: Option<&str>) -> Element {
    let photo = Element::bare("photo", ns::VCARD_UPDATE);
    Element::bare("x", ns::VCARD_UPDATE).child(match hash {
        Some(h) => photo.text_node(h),
        None => photo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_is_read_hashed_and_written_back() {
        // "abc" in base64, with a line break inside.
        let v: Element = "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>\
            <BINVAL>YW\nJj</BINVAL></PHOTO></vCard>"
            .parse()
            .unwrap();
        let p = Photo::of_vcard(&v).unwrap();
        assert_eq!(p.data, b"abc");
        assert_eq!(p.mime, "image/png");
        // SHA-1("abc"), FIPS 180 test vector.
        assert_eq!(p.hash(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let back = Element::bare("vCard", ns::VCARD).child(p.element());
        assert_eq!(Photo::of_vcard(&back), Some(p));
    }

    #[test]
    fn no_photo_external_or_garbage_is_none() {
        for xml in [
            "<vCard xmlns='vcard-temp'/>",
            "<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>https://e.example/a.png</EXTVAL></PHOTO></vCard>",
            "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!!</BINVAL></PHOTO></vCard>",
            "<vCard xmlns='vcard-temp'><PHOTO><BINVAL></BINVAL></PHOTO></vCard>",
        ] {
            let v: Element = xml.parse().unwrap();
            assert_eq!(Photo::of_vcard(&v), None, "{xml}");
        }
    }
}
