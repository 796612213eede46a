//! XEP-0060: Publish-Subscribe — §16.4.4 `pubsub#node_config`: a leaf node's configuration,
//! read from and written to XEP-0004 forms (configure §8.2, create-and-
//! configure §8.1.3, defaults §8.3, publish-options preconditions §7.1.5).
//!
//! Every field of the registry for leaf nodes is kept. Most act; these are
//! stored and shown but have no effect yet: `pubsub#item_expire`,
//! `pubsub#purge_offline` and `pubsub#presence_based_delivery` (the service
//! does not follow publishers' and subscribers' presence), and
//! `on_sub_and_presence` of `pubsub#send_last_published_item` acts as
//! `on_sub`. `pubsub#itemreply` = `publisher` adds the `publisher`
//! attribute to notified items (§7.1.2.3). `pubsub#body_xslt` and
//! `pubsub#dataform_xslt` are not offered.

use minidom::Element;
use roost_proto::data_form::{bool_str, boolean, field, form, form_type, options, single, Form};
use roost_proto::Elem;
use serde::{Deserialize, Serialize};

use crate::ns;

/// §4.5 access models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessModel {
    Open,
    Presence,
    Roster,
    Authorize,
    Whitelist,
}

/// Who may publish (`pubsub#publish_model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishModel {
    Publishers,
    Subscribers,
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendLast {
    Never,
    OnSub,
    OnSubAndPresence,
}

/// The message type of notifications (`pubsub#notification_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationType {
    Headline,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemReply {
    Owner,
    Publisher,
}

/// `pubsub#max_items`: a number, or "max" for the service's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxItems {
    Max,
    Count(usize),
}

/// What the service allows, which bounds what a node may be configured to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub default_max_items: usize,
    pub max_items: usize,
    pub max_payload_size: usize,
}

pub use roost_proto::data_form::FieldError;

/// One leaf node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    pub title: String,
    pub description: String,
    /// `pubsub#type`: the payload's namespace, when the owner says.
    pub payload_type: String,
    pub language: String,
    pub contact: Vec<String>,
    pub deliver_payloads: bool,
    pub deliver_notifications: bool,
    pub notify_config: bool,
    pub notify_delete: bool,
    pub notify_retract: bool,
    pub notify_sub: bool,
    pub persist_items: bool,
    pub max_items: MaxItems,
    /// Stored, inert.
    pub item_expire: String,
    pub subscribe: bool,
    pub access_model: AccessModel,
    pub roster_groups_allowed: Vec<String>,
    pub publish_model: PublishModel,
    /// Stored, inert.
    pub purge_offline: bool,
    pub send_last_published_item: SendLast,
    /// Stored, inert.
    pub presence_based_delivery: bool,
    pub notification_type: NotificationType,
    pub max_payload_size: usize,
    pub itemreply: ItemReply,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            title: String::new(),
            description: String::new(),
            payload_type: String::new(),
            language: String::new(),
            contact: Vec::new(),
            deliver_payloads: true,
            deliver_notifications: true,
            notify_config: false,
            notify_delete: false,
            notify_retract: false,
            notify_sub: false,
            persist_items: true,
            max_items: MaxItems::Count(10),
            item_expire: String::new(),
            subscribe: true,
            access_model: AccessModel::Open,
            roster_groups_allowed: Vec::new(),
            publish_model: PublishModel::Publishers,
            purge_offline: false,
            send_last_published_item: SendLast::Never,
            presence_based_delivery: false,
            notification_type: NotificationType::Headline,
            max_payload_size: 65_536,
            itemreply: ItemReply::Owner,
        }
    }
}

/// The name of a list value, as forms and the store show it.
pub(crate) fn text_of<T: Serialize>(v: &T) -> String {
    // A unit variant serialises to its name; nothing else is passed here.
    toml::Value::try_from(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_list<T: for<'de> Deserialize<'de>>(s: &str) -> Option<T> {
    T::deserialize(toml::Value::String(s.to_owned())).ok()
}

impl NodeConfig {
    /// §8.3: the configuration of a new node.
    pub fn defaults(limits: &Limits) -> NodeConfig {
        NodeConfig {
            max_items: MaxItems::Count(limits.default_max_items),
            max_payload_size: limits.max_payload_size,
            ..NodeConfig::default()
        }
    }

    /// How many items the node keeps.
    pub fn item_cap(&self, limits: &Limits) -> usize {
        match self.max_items {
            MaxItems::Max => limits.max_items,
            MaxItems::Count(n) => n.min(limits.max_items),
        }
    }

    /// Set one field from its submitted values.
    fn set(&mut self, var: &str, values: &[String], limits: &Limits) -> Result<(), FieldError> {
        let bad = |reason| FieldError {
            var: var.to_string(),
            reason,
        };
        let flag = || boolean(values).ok_or_else(|| bad("not a boolean"));
        let text = || Ok::<String, FieldError>(single(values).unwrap_or_default().to_string());
        let one = || single(values).ok_or_else(|| bad("one value expected"));
        match var {
            "pubsub#title" => self.title = text()?,
            "pubsub#description" => self.description = text()?,
            "pubsub#type" => self.payload_type = text()?,
            "pubsub#language" => self.language = text()?,
            "pubsub#contact" => {
                if values.iter().any(|v| jid::Jid::new(v).is_err()) {
                    return Err(bad("not a JID"));
                }
                self.contact = values.to_vec();
            }
            "pubsub#node_type" => {
                // Collections (XEP-0248) are not supported.
                if one()? != "leaf" {
                    return Err(bad("only leaf nodes"));
                }
            }
            "pubsub#deliver_payloads" => self.deliver_payloads = flag()?,
            "pubsub#deliver_notifications" => self.deliver_notifications = flag()?,
            "pubsub#notify_config" => self.notify_config = flag()?,
            "pubsub#notify_delete" => self.notify_delete = flag()?,
            "pubsub#notify_retract" => self.notify_retract = flag()?,
            "pubsub#notify_sub" => self.notify_sub = flag()?,
            "pubsub#persist_items" => self.persist_items = flag()?,
            "pubsub#max_items" => {
                self.max_items = match one()? {
                    "max" => MaxItems::Max,
                    n => match n.parse::<usize>() {
                        Ok(n) if n <= limits.max_items => MaxItems::Count(n),
                        Ok(_) => return Err(bad("above the service's limit")),
                        Err(_) => return Err(bad("not a number")),
                    },
                }
            }
            "pubsub#item_expire" => self.item_expire = text()?,
            "pubsub#subscribe" => self.subscribe = flag()?,
            "pubsub#access_model" => {
                self.access_model = parse_list(one()?).ok_or_else(|| bad("unknown access model"))?
            }
            "pubsub#roster_groups_allowed" => self.roster_groups_allowed = values.to_vec(),
            "pubsub#publish_model" => {
                self.publish_model =
                    parse_list(one()?).ok_or_else(|| bad("unknown publish model"))?
            }
            "pubsub#purge_offline" => self.purge_offline = flag()?,
            "pubsub#send_last_published_item" => {
                self.send_last_published_item =
                    parse_list(one()?).ok_or_else(|| bad("unknown value"))?
            }
            "pubsub#presence_based_delivery" => self.presence_based_delivery = flag()?,
            "pubsub#notification_type" => {
                self.notification_type = parse_list(one()?).ok_or_else(|| bad("unknown value"))?
            }
            "pubsub#max_payload_size" => {
                self.max_payload_size = match one()?.parse::<usize>() {
                    Ok(n) if n <= limits.max_payload_size => n,
                    Ok(_) => return Err(bad("above the service's limit")),
                    Err(_) => return Err(bad("not a number")),
                }
            }
            "pubsub#itemreply" => {
                self.itemreply = parse_list(one()?).ok_or_else(|| bad("unknown value"))?
            }
            _ => return Err(bad("unknown field")),
        }
        Ok(())
    }

    /// §8.2.5: apply a submitted configuration form; nothing changes when
    /// one field is wrong. `form_type` is the FORM_TYPE the form must have.
    pub fn apply(
        &mut self,
        form: &Form,
        form_type: &str,
        limits: &Limits,
    ) -> Result<(), FieldError> {
        if form.form_type.as_deref().is_some_and(|t| t != form_type) {
            return Err(FieldError {
                var: "FORM_TYPE".into(),
                reason: "wrong form type",
            });
        }
        let mut next = self.clone();
        for (var, values) in &form.fields {
            next.set(var, values, limits)?;
        }
        *self = next;
        Ok(())
    }

    /// §7.1.5: every precondition equals the configured value (compared as
    /// typed values, so "1" meets `true`); the first that does not, else.
    pub fn meets(&self, form: &Form, limits: &Limits) -> Result<(), FieldError> {
        for (var, values) in &form.fields {
            let mut probe = self.clone();
            probe.set(var, values, limits)?;
            if probe != *self {
                return Err(FieldError {
                    var: var.clone(),
                    reason: "differs from the node configuration",
                });
            }
        }
        Ok(())
    }

    /// The configuration as a form of `kind` (`form` to fill in, `result`
    /// in notifications).
    pub fn to_form(&self, kind: &str) -> Element {
        let max_items = match self.max_items {
            MaxItems::Max => "max".to_string(),
            MaxItems::Count(n) => n.to_string(),
        };
        let payload_size = self.max_payload_size.to_string();
        let list = |var: &str, label: &str, value: String, choices: &[&str]| {
            field(var, "list-single", Some(label), &[&value]).children_from(options(choices))
        };
        let boolean =
            |var: &str, label: &str, b: bool| field(var, "boolean", Some(label), &[bool_str(b)]);
        let contact: Vec<&str> = self.contact.iter().map(String::as_str).collect();
        let groups: Vec<&str> = self
            .roster_groups_allowed
            .iter()
            .map(String::as_str)
            .collect();
        form(
            kind,
            [
                form_type(ns::FORM_NODE_CONFIG),
                field(
                    "pubsub#title",
                    "text-single",
                    Some("A friendly name for the node"),
                    &[&self.title],
                ),
                field(
                    "pubsub#description",
                    "text-single",
                    Some("A description of the node"),
                    &[&self.description],
                ),
                field(
                    "pubsub#type",
                    "text-single",
                    Some("Payload semantic type information"),
                    &[&self.payload_type],
                ),
                field(
                    "pubsub#language",
                    "text-single",
                    Some("The default language of the node"),
                    &[&self.language],
                ),
                field(
                    "pubsub#contact",
                    "jid-multi",
                    Some("The JIDs of those to contact with questions"),
                    &contact,
                ),
                list(
                    "pubsub#node_type",
                    "Whether the node is a leaf (default) or a collection",
                    "leaf".into(),
                    &["leaf"],
                ),
                boolean(
                    "pubsub#deliver_notifications",
                    "Whether to deliver event notifications",
                    self.deliver_notifications,
                ),
                boolean(
                    "pubsub#deliver_payloads",
                    "Whether to deliver payloads with event notifications",
                    self.deliver_payloads,
                ),
                boolean(
                    "pubsub#notify_config",
                    "Notify subscribers when the node configuration changes",
                    self.notify_config,
                ),
                boolean(
                    "pubsub#notify_delete",
                    "Notify subscribers when the node is deleted",
                    self.notify_delete,
                ),
                boolean(
                    "pubsub#notify_retract",
                    "Notify subscribers when items are removed from the node",
                    self.notify_retract,
                ),
                boolean(
                    "pubsub#notify_sub",
                    "Notify owners about new subscribers and unsubscribes",
                    self.notify_sub,
                ),
                boolean(
                    "pubsub#persist_items",
                    "Persist items to storage",
                    self.persist_items,
                ),
                field(
                    "pubsub#max_items",
                    "text-single",
                    Some("Max number of items to persist (or max)"),
                    &[&max_items],
                ),
                field(
                    "pubsub#item_expire",
                    "text-single",
                    Some("Seconds after which to purge items (not enforced)"),
                    &[&self.item_expire],
                ),
                boolean(
                    "pubsub#subscribe",
                    "Whether to allow subscriptions",
                    self.subscribe,
                ),
                list(
                    "pubsub#access_model",
                    "Specify the subscriber model",
                    text_of(&self.access_model),
                    &["authorize", "open", "presence", "roster", "whitelist"],
                ),
                field(
                    "pubsub#roster_groups_allowed",
                    "list-multi",
                    Some("Roster groups allowed to subscribe"),
                    &groups,
                )
                .children_from(options(&groups)),
                list(
                    "pubsub#publish_model",
                    "Specify the publisher model",
                    text_of(&self.publish_model),
                    &["publishers", "subscribers", "open"],
                ),
                boolean(
                    "pubsub#purge_offline",
                    "Purge all items when the relevant publisher goes offline (not enforced)",
                    self.purge_offline,
                ),
                list(
                    "pubsub#send_last_published_item",
                    "When to send the last published item",
                    text_of(&self.send_last_published_item),
                    &["never", "on_sub", "on_sub_and_presence"],
                ),
                boolean(
                    "pubsub#presence_based_delivery",
                    "Deliver notifications only to available users (not enforced)",
                    self.presence_based_delivery,
                ),
                list(
                    "pubsub#notification_type",
                    "Specify the delivery style for notifications",
                    text_of(&self.notification_type),
                    &["normal", "headline"],
                ),
                field(
                    "pubsub#max_payload_size",
                    "text-single",
                    Some("Max payload size in bytes"),
                    &[&payload_size],
                ),
                list(
                    "pubsub#itemreply",
                    "Whether owners or publisher should receive replies to items",
                    text_of(&self.itemreply),
                    &["owner", "publisher"],
                ),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            default_max_items: 10,
            max_items: 100,
            max_payload_size: 4096,
        }
    }

    fn submitted(fields: &[(&str, &str)]) -> Form {
        Form {
            form_type: Some(ns::FORM_NODE_CONFIG.into()),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
        }
    }

    #[test]
    fn the_form_round_trips_through_apply() {
        let mut cfg = NodeConfig::defaults(&limits());
        cfg.apply(
            &submitted(&[
                ("pubsub#access_model", "authorize"),
                ("pubsub#max_items", "max"),
                ("pubsub#send_last_published_item", "on_sub"),
                ("pubsub#title", "News"),
            ]),
            ns::FORM_NODE_CONFIG,
            &limits(),
        )
        .unwrap();
        let shown = Form::parse(&cfg.to_form("form"));
        let mut again = NodeConfig::defaults(&limits());
        again
            .apply(&shown, ns::FORM_NODE_CONFIG, &limits())
            .unwrap();
        assert_eq!(again, cfg);
        assert_eq!(cfg.item_cap(&limits()), 100);
    }

    #[test]
    fn wrong_values_change_nothing_and_name_the_field() {
        let mut cfg = NodeConfig::defaults(&limits());
        let before = cfg.clone();
        let err = cfg
            .apply(
                &submitted(&[("pubsub#title", "x"), ("pubsub#max_items", "1000")]),
                ns::FORM_NODE_CONFIG,
                &limits(),
            )
            .unwrap_err();
        assert_eq!(err.var, "pubsub#max_items");
        assert_eq!(cfg, before);
        for (var, value) in [
            ("pubsub#access_model", "secret"),
            ("pubsub#deliver_payloads", "perhaps"),
            ("pubsub#node_type", "collection"),
            ("pubsub#no_such_field", "1"),
        ] {
            assert!(cfg
                .apply(&submitted(&[(var, value)]), ns::FORM_NODE_CONFIG, &limits())
                .is_err());
        }
    }

    #[test]
    fn preconditions_compare_typed_values() {
        let cfg = NodeConfig::defaults(&limits());
        let form = |f: &[(&str, &str)]| Form {
            form_type: Some(ns::FORM_PUBLISH_OPTIONS.into()),
            ..submitted(f)
        };
        assert!(cfg
            .meets(&form(&[("pubsub#persist_items", "1")]), &limits())
            .is_ok());
        assert!(cfg
            .meets(&form(&[("pubsub#access_model", "open")]), &limits())
            .is_ok());
        let err = cfg
            .meets(&form(&[("pubsub#access_model", "whitelist")]), &limits())
            .unwrap_err();
        assert_eq!(err.var, "pubsub#access_model");
    }

    #[test]
    fn the_stored_text_round_trips() {
        let mut cfg = NodeConfig::defaults(&limits());
        cfg.max_items = MaxItems::Max;
        cfg.contact = vec!["a@example.org".into()];
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), cfg);
    }
}
