//! XEP-0060 §17.4 node configuration (`pubsub#node_config`), the subset a
//! PEP service needs, read from and written to XEP-0004 data forms: the
//! configure form (§8.2), create-and-configure (§8.1.3), publish-options
//! preconditions (§7.1.5) and the stored form of each node.

use minidom::Element;
pub use roost_proto::data_form::Form;
use roost_proto::data_form::{bool_str, boolean, field, options, single};
use roost_proto::{ns, Elem};

use super::{Limits, NS_PUBSUB};

pub const FORM_NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
pub const FORM_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// XEP-0060 §4.5 access models. `Roster` is kept as configured but checked
/// like `Presence`: roster groups are not configurable here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessModel {
    Open,
    Presence,
    Roster,
    Whitelist,
}

impl AccessModel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessModel::Open => "open",
            AccessModel::Presence => "presence",
            AccessModel::Roster => "roster",
            AccessModel::Whitelist => "whitelist",
        }
    }
    fn parse(s: &str) -> Option<AccessModel> {
        Some(match s {
            "open" => AccessModel::Open,
            "presence" => AccessModel::Presence,
            "roster" => AccessModel::Roster,
            "whitelist" => AccessModel::Whitelist,
            _ => return None,
        })
    }
}

/// `pubsub#max_items`: a number, or "max" for the largest the service allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxItems {
    Max,
    Count(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLast {
    Never,
    OnSub,
    OnSubAndPresence,
}

impl SendLast {
    fn as_str(self) -> &'static str {
        match self {
            SendLast::Never => "never",
            SendLast::OnSub => "on_sub",
            SendLast::OnSubAndPresence => "on_sub_and_presence",
        }
    }
    fn parse(s: &str) -> Option<SendLast> {
        Some(match s {
            "never" => SendLast::Never,
            "on_sub" => SendLast::OnSub,
            "on_sub_and_presence" => SendLast::OnSubAndPresence,
            _ => return None,
        })
    }
}

pub use roost_proto::data_form::FieldError;

/// One node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub title: Option<String>,
    pub access_model: AccessModel,
    pub max_items: MaxItems,
    pub persist_items: bool,
    pub send_last: SendLast,
    pub notify_retract: bool,
    pub notify_delete: bool,
}

/// Fields whose value is fixed by this service: they may be asked for as
/// preconditions or submitted, but only with this value.
const FIXED: &[(&str, &str)] = &[
    ("pubsub#deliver_payloads", "true"),
    ("pubsub#deliver_notifications", "true"),
    ("pubsub#publish_model", "publishers"),
];

impl NodeConfig {
    /// XEP-0163 §5 defaults (presence access, last item on presence), a
    /// singleton node; XEP-0402 bookmarks default to private storage
    /// (XEP-0223) so that a client forgetting publish-options leaks nothing.
    pub fn defaults_for(node: &str) -> NodeConfig {
        if node == crate::bookmarks::NS {
            return NodeConfig {
                title: None,
                access_model: AccessModel::Whitelist,
                max_items: MaxItems::Max,
                persist_items: true,
                send_last: SendLast::Never,
                notify_retract: true,
                notify_delete: true,
            };
        }
        NodeConfig {
            title: None,
            access_model: AccessModel::Presence,
            max_items: MaxItems::Count(1),
            persist_items: true,
            send_last: SendLast::OnSubAndPresence,
            notify_retract: true,
            notify_delete: true,
        }
    }

    /// The number of items the node keeps. XEP-0060 §7.1.2: a node that
    /// does not persist items still keeps the last one for PEP's
    /// last-published-item delivery (XEP-0163 §4.3.4).
    pub fn keep(&self, node: &str, limits: &Limits) -> usize {
        if !self.persist_items {
            return 1;
        }
        match self.max_items {
            MaxItems::Max => limits.item_cap(node),
            MaxItems::Count(n) => n.min(limits.item_cap(node)),
        }
    }

    /// Set one field from a submitted form; `Err` for unknown fields and
    /// values this service cannot take.
    fn set(
        &mut self,
        var: &str,
        values: &[String],
        node: &str,
        limits: &Limits,
    ) -> Result<(), FieldError> {
        let bad = |reason| FieldError {
            var: var.to_string(),
            reason,
        };
        match var {
            "pubsub#title" => {
                let title = values.concat();
                self.title = (!title.is_empty()).then_some(title);
            }
            "pubsub#access_model" => {
                self.access_model = single(values)
                    .and_then(AccessModel::parse)
                    .ok_or(bad("unsupported access model"))?;
            }
            "pubsub#max_items" => {
                self.max_items = match single(values).map(str::trim) {
                    Some("max") => MaxItems::Max,
                    Some(n) => match n.parse::<usize>() {
                        Ok(n) if (1..=limits.item_cap(node)).contains(&n) => MaxItems::Count(n),
                        Ok(_) => return Err(bad("out of range")),
                        Err(_) => return Err(bad("not a number")),
                    },
                    None => return Err(bad("one value expected")),
                };
            }
            "pubsub#persist_items" => {
                self.persist_items = boolean(values).ok_or(bad("not a boolean"))?;
            }
            "pubsub#send_last_published_item" => {
                self.send_last = single(values)
                    .and_then(SendLast::parse)
                    .ok_or(bad("unsupported value"))?;
            }
            "pubsub#notify_retract" => {
                self.notify_retract = boolean(values).ok_or(bad("not a boolean"))?;
            }
            "pubsub#notify_delete" => {
                self.notify_delete = boolean(values).ok_or(bad("not a boolean"))?;
            }
            _ => {
                let Some((_, fixed)) = FIXED.iter().find(|(v, _)| *v == var) else {
                    return Err(bad("unknown field"));
                };
                if !fixed_matches(fixed, values) {
                    return Err(bad("fixed by this service"));
                }
            }
        }
        Ok(())
    }

    /// Apply a submitted configuration (XEP-0060 §8.2.4, §8.1.3): all of
    /// it or nothing.
    pub fn apply(
        &self,
        form: &Form,
        node: &str,
        limits: &Limits,
    ) -> Result<NodeConfig, FieldError> {
        let mut next = self.clone();
        for (var, values) in &form.fields {
            next.set(var, values, node, limits)?;
        }
        Ok(next)
    }

    /// XEP-0060 §7.1.5: every publish-options field is a precondition that
    /// the node's configuration must meet; unknown fields are not met.
    pub fn meets(&self, form: &Form, node: &str, limits: &Limits) -> Result<(), FieldError> {
        for (var, values) in &form.fields {
            let mut probe = self.clone();
            probe.set(var, values, node, limits)?;
            if probe != *self {
                return Err(FieldError {
                    var: var.clone(),
                    reason: "differs from the node configuration",
                });
            }
        }
        Ok(())
    }

    /// The configuration as a data form of `form_type`, `kind` being "form"
    /// (§8.2.2, with options to choose from) or "submit" (for storage).
    pub fn to_form(&self, kind: &str, node: &str, limits: &Limits) -> Element {
        let max_items = match self.max_items {
            MaxItems::Max => "max".to_string(),
            MaxItems::Count(n) => n.to_string(),
        };
        let with_options = kind == "form";
        let mut access = field(
            "pubsub#access_model",
            "list-single",
            with_options.then_some("Who may subscribe and retrieve items"),
            &[self.access_model.as_str()],
        );
        let mut send_last = field(
            "pubsub#send_last_published_item",
            "list-single",
            with_options.then_some("When to send the last published item"),
            &[self.send_last.as_str()],
        );
        if with_options {
            access = access.children_from(options(&["open", "presence", "roster", "whitelist"]));
            send_last =
                send_last.children_from(options(&["never", "on_sub", "on_sub_and_presence"]));
        }
        let cap = limits.item_cap(node).to_string();
        let mut fields = vec![
            field("FORM_TYPE", "hidden", None, &[FORM_NODE_CONFIG]),
            field(
                "pubsub#title",
                "text-single",
                with_options.then_some("A friendly name for the node"),
                &[self.title.as_deref().unwrap_or_default()],
            ),
            access,
            field(
                "pubsub#max_items",
                "text-single",
                with_options.then_some(&*format!(
                    "Max # of items to persist (at most {cap}, or 'max')"
                )),
                &[&max_items],
            ),
            field(
                "pubsub#persist_items",
                "boolean",
                with_options.then_some("Persist items to storage"),
                &[bool_str(self.persist_items)],
            ),
            send_last,
            field(
                "pubsub#notify_retract",
                "boolean",
                with_options.then_some("Notify subscribers when items are removed from the node"),
                &[bool_str(self.notify_retract)],
            ),
            field(
                "pubsub#notify_delete",
                "boolean",
                with_options.then_some("Notify subscribers when the node is deleted"),
                &[bool_str(self.notify_delete)],
            ),
        ];
        if with_options {
            for (var, value) in FIXED {
                fields.push(field(var, "fixed", None, &[value]));
            }
        }
        Element::bare("x", ns::DATA_FORMS)
            .attr_set("type", kind)
            .children_from(fields)
    }

    /// The configuration as stored (a submitted form, so that reading it
    /// back goes through the same code as a client's submission).
    pub fn to_stored(&self, node: &str, limits: &Limits) -> String {
        String::from(&self.to_form("submit", node, limits))
    }

    /// Read a stored configuration; fields that no longer parse keep their
    /// defaults rather than making the node unusable.
    pub fn from_stored(text: &str, node: &str, limits: &Limits) -> NodeConfig {
        let mut cfg = NodeConfig::defaults_for(node);
        match text.parse::<Element>() {
            Ok(x) => {
                for (var, values) in Form::parse(&x).fields {
                    if let Err(e) = cfg.set(&var, &values, node, limits) {
                        tracing::warn!(node, error = %e, "stored node configuration field ignored");
                    }
                }
            }
            Err(e) => tracing::warn!(node, error = %e, "stored node configuration unreadable"),
        }
        cfg
    }
}

fn fixed_matches(fixed: &str, values: &[String]) -> bool {
    match single(values) {
        Some(v) if v == fixed => true,
        // Booleans may be spelled either way.
        Some("1") => fixed == "true",
        Some("0") => fixed == "false",
        _ => false,
    }
}

/// `<configure/>` (§8.2.2) holding the form for `node`.
pub fn configure_element(ns_: &str, node: &str, form: Element) -> Element {
    Element::bare("configure", ns_)
        .attr_set("node", node)
        .child(form)
}

/// `<default/>` (§8.3) holding the default configuration form.
pub fn default_element(node: Option<&str>, limits: &Limits) -> Element {
    let node = node.unwrap_or_default();
    Element::bare("default", super::NS_OWNER)
        .child(NodeConfig::defaults_for(node).to_form("form", node, limits))
}

/// Whether an element is the pubsub `<configure/>` of create-and-configure.
pub fn is_create_configure(e: &Element) -> bool {
    e.is("configure", NS_PUBSUB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            form_type: Some(FORM_PUBLISH_OPTIONS.into()),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
        }
    }

    #[test]
    fn defaults_follow_xep_0163_and_bookmarks_are_private() {
        let d = NodeConfig::defaults_for("urn:xmpp:avatar:metadata");
        assert_eq!(d.access_model, AccessModel::Presence);
        assert_eq!(d.send_last, SendLast::OnSubAndPresence);
        let b = NodeConfig::defaults_for(crate::bookmarks::NS);
        assert_eq!(b.access_model, AccessModel::Whitelist);
        assert_eq!(b.max_items, MaxItems::Max);
        assert_eq!(
            b.keep(crate::bookmarks::NS, &limits()),
            limits().max_bookmarks
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let mut c = NodeConfig::defaults_for("n");
        c.title = Some("Über <title>".into());
        c.access_model = AccessModel::Open;
        c.max_items = MaxItems::Count(17);
        c.notify_retract = false;
        let stored = c.to_stored("n", &limits());
        assert_eq!(NodeConfig::from_stored(&stored, "n", &limits()), c);
    }

    #[test]
    fn preconditions_compare_typed_values() {
        let c = NodeConfig::defaults_for(crate::bookmarks::NS);
        let node = crate::bookmarks::NS;
        assert!(c
            .meets(
                &form(&[
                    ("pubsub#persist_items", "1"),
                    ("pubsub#max_items", "max"),
                    ("pubsub#send_last_published_item", "never"),
                    ("pubsub#access_model", "whitelist"),
                    ("pubsub#deliver_payloads", "1"),
                ]),
                node,
                &limits()
            )
            .is_ok());
        assert_eq!(
            c.meets(&form(&[("pubsub#access_model", "open")]), node, &limits())
                .unwrap_err()
                .var,
            "pubsub#access_model"
        );
        assert!(c
            .meets(&form(&[("pubsub#whatever", "x")]), node, &limits())
            .is_err());
        assert!(c
            .meets(&form(&[("pubsub#max_items", "10")]), node, &limits())
            .is_err());
    }

    #[test]
    fn out_of_range_and_unknown_values_are_refused() {
        let c = NodeConfig::defaults_for("n");
        for (var, value) in [
            ("pubsub#max_items", "0"),
            ("pubsub#max_items", "100000"),
            ("pubsub#max_items", "many"),
            ("pubsub#access_model", "authorize"),
            ("pubsub#persist_items", "yes"),
            ("pubsub#deliver_payloads", "false"),
            ("pubsub#type", "urn:x"),
        ] {
            assert!(
                c.apply(&form(&[(var, value)]), "n", &limits()).is_err(),
                "{var}={value}"
            );
        }
        let applied = c
            .apply(
                &form(&[
                    ("pubsub#max_items", "max"),
                    ("pubsub#access_model", "roster"),
                ]),
                "n",
                &limits(),
            )
            .unwrap();
        assert_eq!(applied.max_items, MaxItems::Max);
        assert_eq!(applied.access_model, AccessModel::Roster);
        assert_eq!(applied.keep("n", &limits()), limits().max_items);
    }

    #[test]
    fn forms_are_parsed_with_their_type() {
        let x: Element = "<x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
            <field var='pubsub#access_model'><value>open</value></field></x>"
            .parse()
            .unwrap();
        let f = Form::parse(&x);
        assert_eq!(f.form_type.as_deref(), Some(FORM_PUBLISH_OPTIONS));
        assert_eq!(
            f.fields,
            vec![("pubsub#access_model".to_string(), vec!["open".to_string()])]
        );
    }
}
