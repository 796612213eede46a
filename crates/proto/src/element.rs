//! Small conveniences over minidom's `Element`, so handlers read as XML.

use minidom::Element;
use rxml::{Namespace, NcName};

fn ncname(name: &str) -> NcName {
    // Attribute names used by the server are compile-time constants; a bad
    // one is a programming error caught by the tests.
    NcName::try_from(name).unwrap_or_else(|_| panic!("invalid attribute name {name:?}"))
}

/// Builder-style helpers; every method consumes and returns the element.
pub trait Elem: Sized {
    fn attr_set(self, name: &str, value: impl Into<String>) -> Self;
    fn attr_opt(self, name: &str, value: Option<impl Into<String>>) -> Self;
    fn child(self, child: Element) -> Self;
    fn children_from(self, children: impl IntoIterator<Item = Element>) -> Self;
    fn text_node(self, text: impl Into<String>) -> Self;
}

impl Elem for Element {
    fn attr_set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }
    fn attr_opt(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.attr_set(name, v),
            None => self,
        }
    }
    fn child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }
    fn children_from(mut self, children: impl IntoIterator<Item = Element>) -> Self {
        for c in children {
            self.append_child(c);
        }
        self
    }
    fn text_node(mut self, text: impl Into<String>) -> Self {
        self.append_text_node(text);
        self
    }
}

/// In-place helpers.
pub trait ElementExt {
    /// Set (or replace) an attribute without a namespace.
    fn set(&mut self, name: &str, value: impl Into<String>);
    /// Remove an attribute without a namespace; returns its old value.
    fn unset(&mut self, name: &str) -> Option<String>;
    /// The `xml:lang` attribute.
    fn lang(&self) -> Option<&str>;
    /// Text of the named child in the given namespace.
    fn child_text(&self, name: &str, ns: &str) -> Option<String>;
    /// Serialise to a string (for logs in tests and for storage).
    fn to_xml(&self) -> String;
    /// Element with the same name and attributes but no children.
    fn shallow_clone(&self) -> Element;
}

impl ElementExt for Element {
    fn set(&mut self, name: &str, value: impl Into<String>) {
        // `xml:lang` is the one prefixed attribute stanzas carry.
        if let Some(local) = name.strip_prefix("xml:") {
            self.attrs_mut()
                .insert(Namespace::XML, ncname(local), value.into());
            return;
        }
        self.attrs_mut()
            .insert(Namespace::NONE, ncname(name), value.into());
    }
    fn unset(&mut self, name: &str) -> Option<String> {
        self.attrs_mut().remove(&Namespace::NONE, name)
    }
    fn lang(&self) -> Option<&str> {
        self.attrs()
            .get(&Namespace::XML, "lang")
            .map(String::as_str)
    }
    fn child_text(&self, name: &str, ns: &str) -> Option<String> {
        self.get_child(name, ns).map(|c| c.text())
    }
    fn to_xml(&self) -> String {
        let mut out = Vec::with_capacity(256);
        crate::serialize::element_into(self, &mut out);
        // Made of `&str` pieces and ASCII markup, so always UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
    fn shallow_clone(&self) -> Element {
        let mut e = Element::bare(self.name(), self.ns());
        *e.attrs_mut() = self.attrs().clone();
        e
    }
}

/// Parse an element from a string; used for constants and tests.
pub fn parse(xml: &str) -> Result<Element, minidom::Error> {
    xml.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_can_be_set_replaced_and_removed() {
        let mut e = Element::bare("message", crate::ns::CLIENT).attr_set("to", "a@b");
        assert_eq!(e.attr("to"), Some("a@b"));
        e.set("to", "c@d");
        assert_eq!(e.attr("to"), Some("c@d"));
        assert_eq!(e.unset("to").as_deref(), Some("c@d"));
        assert_eq!(e.attr("to"), None);
    }

    #[test]
    fn shallow_clone_keeps_attributes_only() {
        let e = Element::bare("iq", crate::ns::CLIENT)
            .attr_set("id", "1")
            .child(Element::bare("ping", crate::ns::PING));
        let s = e.shallow_clone();
        assert_eq!(s.attr("id"), Some("1"));
        assert_eq!(s.children().count(), 0);
    }
}
