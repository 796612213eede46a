//! XEP-0004: Data Forms, the parts the rooms use: reading a submitted form
//! and building form fields.

use minidom::Element;
use roost_proto::{Elem, ElementExt};

use crate::ns;

/// A form as submitted: its type and its fields' values, in order.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pub kind: String,
    pub fields: Vec<(String, Vec<String>)>,
}

impl Form {
    /// Read a `<x xmlns='jabber:x:data'/>`.
    pub fn parse(x: &Element) -> Form {
        let fields = x
            .children()
            .filter(|f| f.is("field", ns::DATA_FORMS))
            .filter_map(|f| {
                let var = f.attr("var")?.to_string();
                let values = f
                    .children()
                    .filter(|v| v.is("value", ns::DATA_FORMS))
                    .map(|v| v.text())
                    .collect();
                Some((var, values))
            })
            .collect();
        Form {
            kind: x.attr("type").unwrap_or_default().to_string(),
            fields,
        }
    }

    pub fn values(&self, var: &str) -> Option<&[String]> {
        self.fields
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, values)| values.as_slice())
    }

    /// The first value of a field (empty when the field has none).
    pub fn value(&self, var: &str) -> Option<&str> {
        self.values(var)
            .map(|v| v.first().map(String::as_str).unwrap_or_default())
    }

    pub fn form_type(&self) -> Option<&str> {
        self.value("FORM_TYPE").map(str::trim)
    }
}

/// XEP-0004 §3.3: "0"/"false" and "1"/"true".
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

pub(crate) fn bool_value(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// A `<field/>` with its values.
pub(crate) fn field<'a>(
    var: &str,
    kind: &str,
    label: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Element {
    let mut f = Element::bare("field", ns::DATA_FORMS)
        .attr_set("var", var)
        .attr_set("type", kind);
    if !label.is_empty() {
        f.set("label", label);
    }
    for v in values {
        f.append_child(Element::bare("value", ns::DATA_FORMS).text_node(v));
    }
    f
}

/// A list field's options.
pub(crate) fn with_options(mut f: Element, options: &[(&str, &str)]) -> Element {
    for (value, label) in options {
        f.append_child(
            Element::bare("option", ns::DATA_FORMS)
                .attr_set("label", *label)
                .child(Element::bare("value", ns::DATA_FORMS).text_node(*value)),
        );
    }
    f
}

/// The hidden FORM_TYPE field.
pub(crate) fn form_type(value: &str) -> Element {
    field("FORM_TYPE", "hidden", "", [value])
}

pub(crate) fn required(mut f: Element) -> Element {
    f.append_child(Element::bare("required", ns::DATA_FORMS));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_values() {
        let x: Element = "<x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE'><value>urn:x</value></field>\
            <field var='multi'><value>a</value><value>b</value></field>\
            <field var='empty'/></x>"
            .parse()
            .unwrap();
        let f = Form::parse(&x);
        assert_eq!(f.kind, "submit");
        assert_eq!(f.form_type(), Some("urn:x"));
        assert_eq!(f.values("multi").unwrap(), ["a", "b"]);
        assert_eq!(f.value("empty"), Some(""));
        assert_eq!(f.value("absent"), None);
    }

    #[test]
    fn booleans_follow_xep_0004() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool(" 0 "), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
