//! XEP-0004: Data Forms, the generic parts: reading a submitted form and
//! building the fields of one. What a form means belongs to its user (PEP
//! node configuration, the pubsub service's forms).

use minidom::Element;

use crate::{ns, Elem};

/// A submitted data form: its FORM_TYPE and its fields with their values,
/// in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub form_type: Option<String>,
    pub fields: Vec<(String, Vec<String>)>,
}

impl Form {
    /// XEP-0004 §3.1: the fields of an `<x xmlns='jabber:x:data'/>`.
    pub fn parse(x: &Element) -> Form {
        let mut form = Form::default();
        for f in x.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
            let Some(var) = f.attr("var") else { continue };
            let values: Vec<String> = f
                .children()
                .filter(|v| v.is("value", ns::DATA_FORMS))
                .map(|v| v.text())
                .collect();
            if var == "FORM_TYPE" {
                form.form_type = values.into_iter().next();
            } else {
                form.fields.push((var.to_string(), values));
            }
        }
        form
    }

    /// The data form inside `parent` (`<publish-options/>`, `<configure/>`).
    pub fn inside(parent: &Element) -> Option<Form> {
        parent.get_child("x", ns::DATA_FORMS).map(Form::parse)
    }

    /// `type='cancel'` (XEP-0004 §3.1): the submitter gave up.
    pub fn is_cancel(parent: &Element) -> bool {
        parent
            .get_child("x", ns::DATA_FORMS)
            .is_some_and(|x| x.attr("type") == Some("cancel"))
    }

    /// The values of one field, when the form has it.
    pub fn values(&self, var: &str) -> Option<&[String]> {
        self.fields
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, values)| values.as_slice())
    }

    /// The single value of one field.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.values(var).and_then(single)
    }
}

/// XEP-0004 §3.3: a boolean is "0"/"false" or "1"/"true".
pub fn boolean(values: &[String]) -> Option<bool> {
    match single(values)? {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The value of a single-valued field.
pub fn single(values: &[String]) -> Option<&str> {
    match values {
        [v] => Some(v.as_str()),
        _ => None,
    }
}

/// The form text of a boolean.
pub fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// A `<field/>` of the given type with its values.
pub fn field(var: &str, kind: &str, label: Option<&str>, values: &[&str]) -> Element {
    Element::bare("field", ns::DATA_FORMS)
        .attr_set("var", var)
        .attr_set("type", kind)
        .attr_opt("label", label)
        .children_from(
            values
                .iter()
                .map(|v| Element::bare("value", ns::DATA_FORMS).text_node(*v)),
        )
}

/// The `<option/>` children of a list field.
pub fn options(values: &[&str]) -> Vec<Element> {
    values
        .iter()
        .map(|v| {
            Element::bare("option", ns::DATA_FORMS)
                .child(Element::bare("value", ns::DATA_FORMS).text_node(*v))
        })
        .collect()
}

/// The hidden FORM_TYPE field (XEP-0068).
pub fn form_type(value: &str) -> Element {
    field("FORM_TYPE", "hidden", None, &[value])
}

/// An `<x xmlns='jabber:x:data'/>` of the given type (form, submit, result).
pub fn form(kind: &str, fields: impl IntoIterator<Item = Element>) -> Element {
    Element::bare("x", ns::DATA_FORMS)
        .attr_set("type", kind)
        .children_from(fields)
}

/// Why a submitted form could not be applied: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub var: String,
    pub reason: &'static str,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.var, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_read_with_its_type_and_values() {
        let x = crate::element::parse(
            "<x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>urn:t</value></field>\
             <field var='a'><value>1</value></field>\
             <field var='b'><value>x</value><value>y</value></field>\
             <field><value>no var</value></field></x>",
        )
        .unwrap();
        let f = Form::parse(&x);
        assert_eq!(f.form_type.as_deref(), Some("urn:t"));
        assert_eq!(f.value("a"), Some("1"));
        assert_eq!(f.value("b"), None);
        assert_eq!(f.values("b").unwrap(), ["x", "y"]);
        assert_eq!(boolean(f.values("a").unwrap()), Some(true));
        assert_eq!(boolean(&["maybe".to_string()]), None);
    }

    #[test]
    fn built_fields_read_back() {
        let x = form(
            "form",
            [form_type("urn:t"), field("c", "boolean", None, &["false"])],
        );
        let f = Form::parse(&x);
        assert_eq!(f.form_type.as_deref(), Some("urn:t"));
        assert_eq!(f.value("c"), Some("false"));
    }
}
